//! The pool's connections. Each keeps the statements it has described, so a repeated call
//! (a lookup tool, a query the model runs again) is bound and executed in the same round trip
//! as its BEGIN and ROLLBACK, its checks done against the description it was prepared with.

use std::collections::VecDeque;

use deadpool::managed::{self, Metrics, Object, RecycleResult};
use tokio_postgres::Statement;

use super::DbError;

/// How many prepared statements one connection keeps. The least recently used is closed (its
/// `Statement` dropped, which sends PostgreSQL a Close) when a new one would pass this, so
/// model-written SQL cannot grow a backend's memory without bound.
pub const STATEMENTS_PER_CONNECTION: usize = 32;

/// A pooled connection and the statements prepared on it.
pub struct Connection {
    client: deadpool_postgres::ClientWrapper,
    statements: Statements,
}

/// deadpool-postgres's manager, with a statement cache of pgward's own on each connection:
/// bounded, and read without preparing (deadpool-postgres's own cache prepares on a miss and
/// grows without bound).
pub struct Manager {
    inner: deadpool_postgres::Manager,
    /// The `(name, value)` settings every connection must start with (`session_options`).
    settings: Vec<(&'static str, String)>,
}

impl Manager {
    pub fn new(inner: deadpool_postgres::Manager, settings: Vec<(&'static str, String)>) -> Self {
        Self { inner, settings }
    }
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error(
        "the connection did not start with pgward's settings ({0}): a connection pooler in front of PostgreSQL must pass on the `options` startup parameter, and transaction or statement pooling is not supported"
    )]
    Settings(String),
}

/// What a new connection reports for the settings pgward asked for at its start (`reported`,
/// in the order of `expected`), checked against them: a proxy that dropped or rewrote the
/// `options` parameter would otherwise leave a connection writable by default, without its
/// timeouts, or with another search path.
pub fn settings_hold(
    expected: &[(&str, String)],
    reported: &[Option<String>],
) -> Result<(), String> {
    let wrong: Vec<String> = expected
        .iter()
        .zip(reported.iter().chain(std::iter::repeat(&None)))
        .filter(|((_, want), got)| got.as_deref() != Some(want.as_str()))
        .map(|((name, _), got)| match got {
            Some(got) => format!("{name} is `{got}`"),
            None => format!("{name} is not set"),
        })
        .collect();
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join(", "))
    }
}

/// A duration as PostgreSQL shows a setting (`5s`, `1min`, `250ms`, `0`) in milliseconds, as
/// pgward sets it; any other value as it is.
pub fn in_milliseconds(shown: &str) -> String {
    let digits = shown.len() - shown.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (number, unit) = shown.split_at(digits);
    let factor: u64 = match unit {
        "" | "ms" => 1,
        "s" => 1_000,
        "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return shown.to_string(),
    };
    match number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
    {
        Some(ms) => ms.to_string(),
        None => shown.to_string(),
    }
}

impl managed::Manager for Manager {
    type Type = Connection;
    type Error = ConnectError;

    async fn create(&self) -> Result<Connection, ConnectError> {
        let client = managed::Manager::create(&self.inner).await?;
        // One simple-protocol query of pgward's own constant names (current_setting touches
        // no catalog table, so a new backend answers it without warming its caches).
        let columns: Vec<String> = self
            .settings
            .iter()
            .map(|(name, _)| format!("pg_catalog.current_setting('{name}', true)"))
            .collect();
        let answer = client
            .simple_query(&format!("SELECT {}", columns.join(", ")))
            .await?;
        let reported: Vec<Option<String>> = answer
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                    self.settings
                        .iter()
                        .enumerate()
                        .map(|(i, (name, _))| {
                            let shown = row.try_get(i).ok().flatten();
                            // Durations come back in the largest unit that divides them.
                            if name.ends_with("_timeout") {
                                shown.map(in_milliseconds)
                            } else {
                                shown.map(str::to_string)
                            }
                        })
                        .collect(),
                ),
                _ => None,
            })
            .unwrap_or_default();
        settings_hold(&self.settings, &reported).map_err(ConnectError::Settings)?;
        Ok(Connection {
            client,
            statements: Statements::default(),
        })
    }

    async fn recycle(
        &self,
        conn: &mut Connection,
        metrics: &Metrics,
    ) -> RecycleResult<ConnectError> {
        managed::Manager::recycle(&self.inner, &mut conn.client, metrics)
            .await
            .map_err(|e| match e {
                managed::RecycleError::Message(m) => managed::RecycleError::Message(m),
                managed::RecycleError::Backend(e) => managed::RecycleError::Backend(e.into()),
            })
    }

    fn detach(&self, conn: &mut Connection) {
        managed::Manager::detach(&self.inner, &mut conn.client);
    }
}

pub type Pool = managed::Pool<Manager>;

/// Prepared statements by their SQL, most recently used first.
#[derive(Default)]
pub struct Statements {
    entries: VecDeque<(String, Statement)>,
}

impl Statements {
    /// The statement prepared for `sql`, now the most recently used.
    pub fn get(&mut self, sql: &str) -> Option<Statement> {
        let at = self.entries.iter().position(|(s, _)| s == sql)?;
        let entry = self.entries.remove(at)?;
        let stmt = entry.1.clone();
        self.entries.push_front(entry);
        Some(stmt)
    }

    /// Keeps `stmt` for `sql` (a statement that passed `check_statement`), closing the least
    /// recently used statement past the bound.
    pub fn insert(&mut self, sql: &str, stmt: Statement) {
        self.remove(sql);
        self.entries.push_front((sql.to_string(), stmt));
        self.entries.truncate(STATEMENTS_PER_CONNECTION);
    }

    /// Forgets (and so closes) the statement for `sql`.
    pub fn remove(&mut self, sql: &str) {
        self.entries.retain(|(s, _)| s != sql);
    }
}

/// A pooled connection inside pgward's transaction. If the call ends without a clean
/// ROLLBACK (an error, a dropped future), the connection is detached from the pool and closed,
/// so no later call can inherit an open transaction.
pub struct Session {
    object: Option<Object<Manager>>,
    clean: bool,
}

impl Session {
    pub fn new(object: Object<Manager>) -> Self {
        Self {
            object: Some(object),
            clean: false,
        }
    }

    /// The connection's client and the statements prepared on it.
    pub fn parts(&mut self) -> Result<(&tokio_postgres::Client, &mut Statements), DbError> {
        let conn = self
            .object
            .as_deref_mut()
            .ok_or_else(|| DbError::Unavailable("connection already released".into()))?;
        Ok((&*conn.client, &mut conn.statements))
    }

    pub fn client(&mut self) -> Result<&tokio_postgres::Client, DbError> {
        self.parts().map(|(client, _)| client)
    }

    /// Marks the session as ended by a successful ROLLBACK: its connection may be reused.
    pub fn mark_clean(&mut self) {
        self.clean = true;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.clean
            && let Some(obj) = self.object.take()
        {
            drop(Object::take(obj));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{in_milliseconds, settings_hold};

    #[test]
    fn durations_read_in_milliseconds() {
        for (shown, ms) in [
            ("0", "0"),
            ("250ms", "250"),
            ("5s", "5000"),
            ("1min", "60000"),
            ("2h", "7200000"),
            ("1d", "86400000"),
            ("on", "on"),
            (
                "pg_catalog,\"public\",pg_temp",
                "pg_catalog,\"public\",pg_temp",
            ),
            ("5weeks", "5weeks"),
            ("", ""),
        ] {
            assert_eq!(in_milliseconds(shown), ms, "{shown}");
        }
    }

    #[test]
    fn a_connection_without_pgwards_start_up_settings_is_refused() {
        let expected: Vec<(&str, String)> = [
            ("default_transaction_read_only", "on"),
            ("statement_timeout", "5000"),
            ("search_path", r#"pg_catalog,"public",pg_temp"#),
            ("pgward.in_call", "off"),
        ]
        .iter()
        .map(|(n, v)| (*n, v.to_string()))
        .collect();
        let got = |v: &[Option<&str>]| -> Vec<Option<String>> {
            v.iter().map(|s| s.map(str::to_string)).collect()
        };
        let all = [
            Some("on"),
            Some("5000"),
            Some(r#"pg_catalog,"public",pg_temp"#),
            Some("off"),
        ];
        assert_eq!(settings_hold(&expected, &got(&all)), Ok(()));
        assert_eq!(
            settings_hold(
                &expected,
                &got(&[Some("off"), Some("0"), Some("\"$user\", public"), None])
            ),
            Err(
                "default_transaction_read_only is `off`, statement_timeout is `0`, \
                 search_path is `\"$user\", public`, pgward.in_call is not set"
                    .to_string()
            )
        );
        // Fewer answers than settings: the missing ones are not set.
        assert_eq!(
            settings_hold(&expected, &got(&all[..3])),
            Err("pgward.in_call is not set".to_string())
        );
    }
}
