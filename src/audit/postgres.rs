//! EDGE: the PostgreSQL audit sink. Sealed events go to `pgward_audit.events` in an audit
//! database reached through its own URL and role, which may be another server than the one
//! the model reads. The schema is `migrations/002_audit.sql` ([`AUDIT_MIGRATION`], applied by
//! [`migrate`]).
//!
//! # Roles
//!
//! - pgward writes as a member of `pgward_audit_writer`: INSERT on the table and nothing else,
//!   so a compromised pgward cannot rewrite or delete what it wrote. Because it cannot SELECT
//!   either, a restarted pgward learns where the chain stands from `pgward_audit.head()`, a
//!   `SECURITY DEFINER` function that returns only the newest event ([`PgSink::head`]).
//! - `pgward audit verify --postgres` reads as a member of `pgward_audit_reader` (SELECT only)
//!   with [`read_lines`], whose text goes through [`super::chain::lines_of`] and
//!   [`super::chain::verify_lines`] exactly like a file.
//!
//! # Rows
//!
//! One row per event: `seq` and `hash` copied from the event, and `line`, the canonical
//! encoding of the sealed event without its newline ([`super::chain::encode_line`] minus the
//! `\n`). [`PgSink::append`] accepts the line with or without that newline. The line is what
//! verification reads; the columns are there for the primary key (two writers on one table
//! collide on `seq` instead of silently forking the chain: [`PgSinkError::Forked`]) and for
//! ordering.
//!
//! # Connections
//!
//! TLS as for the main pool (`audit.postgres_tls`, `audit.postgres_tls_ca_file`; the flags
//! `--tls` and `--tls-ca-file` for the one-shot commands): verified or never attempted, never
//! a fallback from one to the other, and plain text to a remote server only when chosen
//! ([`crate::db::tls`]). Every connection has a connect timeout
//! and, for the sink, a statement timeout, so a hung audit database fails the write (and the
//! failure policy applies) instead of hanging the call.
//!
//! Errors never carry the URL: it may hold a password. A URL that does not parse is reported
//! without any of its text.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{ManagerConfig, Pool, PoolError, RecyclingMethod};
use futures_util::{StreamExt, pin_mut};
use serde_json::{Map, Value};
use tokio_postgres::error::SqlState;

use crate::config::types::TlsSettings;
use crate::db::tls::{AUDIT_KEYS, FLAG_KEYS, TlsKeys, Transport};

/// The audit schema, applied by `pgward migrate` to the audit database.
pub const AUDIT_MIGRATION: &str = include_str!("../../migrations/002_audit.sql");

/// The most event text [`read_lines`] holds in memory (1 GiB, several million events).
pub const MAX_READ_BYTES: usize = 1 << 30;

/// Connections for the sink. Writes are serialized by the audit log, so one would do; the
/// second lets [`PgSink::head`] or a readiness probe run beside a write, and lets a broken
/// connection be replaced while the other is in use.
const POOL_SIZE: usize = 2;
/// How long connecting (and waiting for a pooled connection) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one sink statement may run. An event is written before the call's answer
/// leaves, so a stuck audit database must fail the write rather than hold the call.
const STATEMENT_TIMEOUT_MS: u64 = 5_000;
const APPLICATION_NAME: &str = "pgward-audit";

const INSERT_SQL: &str = "INSERT INTO pgward_audit.events (seq, hash, line) VALUES ($1, $2, $3)";
const HEAD_SQL: &str = "SELECT seq, line FROM pgward_audit.head()";
const READ_SQL: &str = "SELECT line FROM pgward_audit.events ORDER BY seq";
/// What the connected role could use to change or remove stored events. Catalog functions
/// only, so the INSERT-only writer can run it.
const POWERS_SQL: &str = "SELECT r.rolsuper, \
     pg_catalog.pg_has_role(c.relowner, 'USAGE'), \
     pg_catalog.has_table_privilege(c.oid, 'UPDATE'), \
     pg_catalog.has_table_privilege(c.oid, 'DELETE'), \
     pg_catalog.has_table_privilege(c.oid, 'TRUNCATE') \
     FROM pg_catalog.pg_roles AS r, pg_catalog.pg_class AS c \
     WHERE r.rolname = current_user AND c.oid = 'pgward_audit.events'::pg_catalog.regclass";

#[derive(Debug, thiserror::Error)]
pub enum PgSinkError {
    /// The URL's text is not shown: it may hold a password.
    #[error("the audit postgres url could not be parsed (it is not shown: it may hold a password)")]
    Url,
    #[error(
        "the audit postgres url's options end in a lone backslash, which would join them to pgward's own (the url is not shown: it may hold a password)"
    )]
    UrlOptions,
    #[error("the audit database is unavailable: {0}")]
    Unavailable(String),
    #[error(
        "the audit table is missing: apply migrations/002_audit.sql to the audit database \
         (`pgward migrate --audit`)"
    )]
    NotMigrated,
    /// SQLSTATE and primary message only (never DETAIL or HINT).
    #[error("audit postgres error {code}: {message}")]
    Postgres { code: String, message: String },
    #[error(
        "audit seq {seq} is already in the postgres audit table: another pgward process is \
         writing the same table (or this one resumed from an old head), and two writers fork \
         the chain; give each pgward process its own audit database"
    )]
    Forked { seq: u64 },
    #[error("the audit line for seq {seq} cannot be stored: {reason}")]
    BadLine { seq: u64, reason: &'static str },
    #[error(
        "the newest row of the postgres audit table (seq {seq}) does not hold that event; \
         check it with `pgward audit verify --postgres`"
    )]
    CorruptHead { seq: i64 },
    /// The TLS settings for the audit database: contradictory, incomplete, or a CA file
    /// unusable.
    #[error("{0}")]
    Tls(String),
    #[error(
        "the postgres audit table holds more than {limit} bytes of events, more than one \
         verification reads into memory"
    )]
    TooLarge { limit: usize },
}

impl PgSinkError {
    fn from_pg(e: &tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db)
                if [
                    SqlState::UNDEFINED_TABLE,
                    SqlState::INVALID_SCHEMA_NAME,
                    SqlState::UNDEFINED_FUNCTION,
                ]
                .contains(db.code()) =>
            {
                Self::NotMigrated
            }
            _ => Self::from_pg_as_is(e),
        }
    }

    /// Like [`Self::from_pg`] without reading a missing object as a missing migration (the
    /// migration itself reports what the server said).
    fn from_pg_as_is(e: &tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => Self::Postgres {
                code: db.code().code().to_string(),
                message: db.message().to_string(),
            },
            None => Self::Unavailable(describe(e)),
        }
    }

    fn from_pool(e: PoolError) -> Self {
        match e {
            PoolError::Backend(e) => Self::from_pg(&e),
            PoolError::Timeout(_) => Self::Unavailable("timed out waiting for a connection".into()),
            PoolError::Closed => Self::Unavailable("the connection pool is closed".into()),
            PoolError::NoRuntimeSpecified => Self::Unavailable("no async runtime".into()),
            PoolError::PostCreateHook(_) => Self::Unavailable("connection setup failed".into()),
        }
    }
}

/// A driver error that is not a server error: its kind and its cause (an I/O error such as
/// "connection refused"). The driver's own text never holds the configuration.
fn describe(e: &tokio_postgres::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// The URL parsed, with pgward's connect timeout and application name, and `statement_timeout`
/// (milliseconds) added to the URL's own `options` when given; and how to reach the server
/// ([`Transport::choose`], `keys` naming where `tls` is set).
fn config(
    url: &str,
    statement_timeout_ms: Option<u64>,
    tls: &TlsSettings,
    keys: &TlsKeys,
) -> Result<(tokio_postgres::Config, Transport), PgSinkError> {
    // The parser's message can quote a character of the URL, which may be in the password.
    let mut pg = tokio_postgres::Config::from_str(url).map_err(|_| {
        crate::db::tls::libpq_sslmode(url, keys).map_or(PgSinkError::Url, PgSinkError::Tls)
    })?;
    pg.connect_timeout(CONNECT_TIMEOUT);
    pg.application_name(APPLICATION_NAME);
    if let Some(ms) = statement_timeout_ms {
        crate::db::add_options(&mut pg, &format!("-c statement_timeout={ms}"))
            .map_err(|_| PgSinkError::UrlOptions)?;
    }
    let transport = Transport::choose(&mut pg, tls, keys).map_err(PgSinkError::Tls)?;
    Ok((pg, transport))
}

/// One connection outside any pool, for the one-shot commands ([`migrate`], [`read_lines`]),
/// with the TLS settings of their flags.
async fn connect_once(url: &str, tls: &TlsSettings) -> Result<tokio_postgres::Client, PgSinkError> {
    let (pg, transport) = config(url, None, tls, &FLAG_KEYS)?;
    transport
        .connect(&pg, |e| {
            tracing::debug!(error = %describe(e), "audit database connection ended");
        })
        .await
        .map_err(|e| PgSinkError::from_pg(&e))
}

/// The sink: a small pool of connections to the audit database, as the writer role.
pub struct PgSink {
    pool: Pool,
}

impl std::fmt::Debug for PgSink {
    // The pool's configuration holds the password; show only its size.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = self.pool.status();
        f.debug_struct("PgSink")
            .field("connections", &status.size)
            .field("available", &status.available)
            .finish()
    }
}

impl PgSink {
    /// Builds the pool and opens one connection, so an unreachable audit database or a refused
    /// login stops start-up instead of failing the first call.
    pub async fn connect(url: &str, tls: &TlsSettings) -> Result<PgSink, PgSinkError> {
        let (pg, transport) = config(url, Some(STATEMENT_TIMEOUT_MS), tls, &AUDIT_KEYS)?;
        let manager = transport.manager(
            pg,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| PgSinkError::Unavailable(format!("cannot build the pool: {e}")))?;
        drop(pool.get().await.map_err(PgSinkError::from_pool)?);
        Ok(PgSink { pool })
    }

    /// The newest event in the table, parsed, for [`super::chain::Chain::resume`]; `None` when
    /// the table is empty. Refuses a newest row whose line is not an event with that `seq`
    /// (the hash is checked by `Chain::resume`).
    pub async fn head(&self) -> Result<Option<Map<String, Value>>, PgSinkError> {
        let client = self.pool.get().await.map_err(PgSinkError::from_pool)?;
        let row = client
            .query_opt(HEAD_SQL, &[])
            .await
            .map_err(|e| PgSinkError::from_pg(&e))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let seq: i64 = row.try_get(0).map_err(|e| PgSinkError::from_pg(&e))?;
        let line: String = row.try_get(1).map_err(|e| PgSinkError::from_pg(&e))?;
        match serde_json::from_str::<Value>(&line) {
            Ok(Value::Object(event))
                if event.get("seq").and_then(Value::as_u64) == u64::try_from(seq).ok() =>
            {
                Ok(Some(event))
            }
            _ => Err(PgSinkError::CorruptHead { seq }),
        }
    }

    /// Stores one sealed event: `seq` and `hash` from the chain's head, `line` from
    /// [`super::chain::encode_line`] (the trailing newline is dropped). One INSERT with bound
    /// parameters, committed when this returns.
    ///
    /// Do not retry a failed append with the same `seq`: the row may have been committed
    /// before the connection broke, and the retry would be refused as [`PgSinkError::Forked`].
    pub async fn append(&self, seq: u64, hash: &str, line: &str) -> Result<(), PgSinkError> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        check_line(seq, hash, line)?;
        let seq_column = i64::try_from(seq).map_err(|_| PgSinkError::BadLine {
            seq,
            reason: "seq is beyond the range of the bigint column",
        })?;
        let client = self.pool.get().await.map_err(PgSinkError::from_pool)?;
        let statement = client
            .prepare_cached(INSERT_SQL)
            .await
            .map_err(|e| PgSinkError::from_pg(&e))?;
        match client
            .execute(&statement, &[&seq_column, &hash, &line])
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                Err(PgSinkError::Forked { seq })
            }
            Err(e) => Err(PgSinkError::from_pg(&e)),
        }
    }

    /// What the sink's role could use to change or remove events it wrote, among `superuser`,
    /// `owner` (a member of the table's owner), `update`, `delete` and `truncate`; empty for a
    /// member of `pgward_audit_writer` alone. A start-up posture check: a role that can rewrite
    /// the log makes the audit only as trustworthy as pgward itself.
    pub async fn rewrite_powers(&self) -> Result<Vec<&'static str>, PgSinkError> {
        let client = self.pool.get().await.map_err(PgSinkError::from_pool)?;
        let row = client
            .query_one(POWERS_SQL, &[])
            .await
            .map_err(|e| PgSinkError::from_pg(&e))?;
        let mut powers = Vec::new();
        for (i, name) in ["superuser", "owner", "update", "delete", "truncate"]
            .into_iter()
            .enumerate()
        {
            if row.try_get(i).map_err(|e| PgSinkError::from_pg(&e))? {
                powers.push(name);
            }
        }
        Ok(powers)
    }

    /// Whether the audit database answers now: for `/readyz`.
    pub async fn reachable(&self) -> bool {
        match self.pool.get().await {
            Ok(client) => client.check_connection().await.is_ok(),
            Err(_) => false,
        }
    }
}

/// INVARIANT: a stored row's `seq` and `hash` are the line's own, and its line is one line.
/// The primary key then stands for the chain position (so a second writer collides instead of
/// forking silently), and [`read_lines`] can join lines with `\n` and get them back exactly.
fn check_line(seq: u64, hash: &str, line: &str) -> Result<(), PgSinkError> {
    let bad = |reason| Err(PgSinkError::BadLine { seq, reason });
    if line.contains('\n') {
        return bad("the line holds a newline");
    }
    let Ok(Value::Object(event)) = serde_json::from_str::<Value>(line) else {
        return bad("the line is not a json object");
    };
    if event.get("seq").and_then(Value::as_u64) != Some(seq) {
        return bad("the line's `seq` is not the given seq");
    }
    if event.get("hash").and_then(Value::as_str) != Some(hash) {
        return bad("the line's `hash` is not the given hash");
    }
    Ok(())
}

/// Applies [`AUDIT_MIGRATION`] to the database at `url` (run it as a superuser). The file is
/// trusted SQL from this repository with many statements in one transaction, so it goes
/// through the simple query protocol. Safe to run again.
pub async fn migrate(url: &str, tls: &TlsSettings) -> Result<(), PgSinkError> {
    let client = connect_once(url, tls).await?;
    client
        .batch_execute(AUDIT_MIGRATION)
        .await
        .map_err(|e| PgSinkError::from_pg_as_is(&e))
}

/// Every stored line in `seq` order, each followed by `\n`: the text of a log file, for
/// `chain::lines_of("postgres", &text)` and `chain::verify_lines`. Read as a member of
/// `pgward_audit_reader`.
///
/// One SELECT, so one consistent snapshot. Rows are streamed from the server into the text,
/// so memory is the text itself (about the table's size), capped at [`MAX_READ_BYTES`]. No
/// statement timeout: verifying a large table is an operator's command and may take a while.
pub async fn read_lines(url: &str, tls: &TlsSettings) -> Result<String, PgSinkError> {
    let client = connect_once(url, tls).await?;
    let rows = client
        .query_raw(READ_SQL, std::iter::empty::<i64>())
        .await
        .map_err(|e| PgSinkError::from_pg(&e))?;
    pin_mut!(rows);
    let mut text = String::new();
    while let Some(row) = rows.next().await {
        let row = row.map_err(|e| PgSinkError::from_pg(&e))?;
        let line: &str = row.try_get(0).map_err(|e| PgSinkError::from_pg(&e))?;
        if text.len().saturating_add(line.len()).saturating_add(1) > MAX_READ_BYTES {
            return Err(PgSinkError::TooLarge {
                limit: MAX_READ_BYTES,
            });
        }
        text.push_str(line);
        text.push('\n');
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `tls = "off"`: these URLs name a remote host.
    fn plain() -> TlsSettings {
        TlsSettings {
            mode: Some(crate::config::types::DatabaseTls::Off),
            ca_file: None,
        }
    }

    fn options(url: &str, timeout: Option<u64>) -> Option<String> {
        let (pg, _) = config(url, timeout, &plain(), &AUDIT_KEYS).unwrap();
        pg.get_options().map(str::to_string)
    }

    #[test]
    fn a_bad_url_is_reported_without_its_text() {
        let err = config(
            "postgres://audit:s3cr%t@db:notaport/audit",
            None,
            &plain(),
            &AUDIT_KEYS,
        )
        .err()
        .unwrap();
        let text = err.to_string();
        assert!(matches!(err, PgSinkError::Url));
        assert!(!text.contains("s3cr") && !text.contains("db:"), "{text}");
    }

    #[test]
    fn the_statement_timeout_joins_the_urls_own_options() {
        assert_eq!(
            options("postgres://u@h/d?options=-c%20work_mem%3D4MB", Some(5000)).as_deref(),
            Some("-c work_mem=4MB -c statement_timeout=5000")
        );
        assert_eq!(
            options("postgres://u@h/d", Some(5000)).as_deref(),
            Some("-c statement_timeout=5000")
        );
        assert_eq!(options("postgres://u@h/d", None), None);
    }

    #[test]
    fn a_remote_audit_database_needs_a_tls_choice_named_where_it_is_made() {
        for (keys, named) in [(&AUDIT_KEYS, "audit.postgres_tls"), (&FLAG_KEYS, "--tls")] {
            let err = config(
                "postgres://u@audit-db/d",
                None,
                &TlsSettings::default(),
                keys,
            )
            .err()
            .unwrap();
            assert!(
                matches!(&err, PgSinkError::Tls(m) if m.starts_with(&format!("the server `audit-db` is not on this machine and {named} is not set"))),
                "{err}"
            );
        }
        assert!(
            config(
                "postgres://u@127.0.0.1/d",
                None,
                &TlsSettings::default(),
                &AUDIT_KEYS
            )
            .is_ok()
        );
    }

    #[test]
    fn only_a_line_that_matches_its_seq_and_hash_is_stored() {
        let hash = "a".repeat(64);
        let line = format!(r#"{{"hash":"{hash}","seq":3}}"#);
        assert!(check_line(3, &hash, &line).is_ok());
        let reason = |seq, hash: &str, line: &str| match check_line(seq, hash, line) {
            Err(PgSinkError::BadLine { reason, .. }) => reason,
            other => panic!("not refused: {other:?}"),
        };
        assert_eq!(
            reason(4, &hash, &line),
            "the line's `seq` is not the given seq"
        );
        assert_eq!(
            reason(3, &"b".repeat(64), &line),
            "the line's `hash` is not the given hash"
        );
        assert_eq!(reason(3, &hash, "[3]"), "the line is not a json object");
        assert_eq!(
            reason(3, &hash, &format!("{line}\n{line}")),
            "the line holds a newline"
        );
    }
}
