//! EDGE: PostgreSQL. A deadpool-postgres pool, the read-only session every call runs in, the
//! start-up posture check, and catalog reads for `describe_table`.

pub mod cluster;
pub mod params;
mod pool;
pub mod tls;
pub mod values;

use std::collections::BTreeMap;
use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{ManagerConfig, RecyclingMethod};
use futures_util::{StreamExt, pin_mut};
use serde_json::Value;
use tokio_postgres::config::TargetSessionAttrs;
use tokio_postgres::types::{ToSql, Type};

use crate::config::types::DatabaseConfig;
use crate::policy::QualifiedName;
use pool::{Pool, Session, Statements};
use tls::Transport;

pub use pool::STATEMENTS_PER_CONNECTION;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid database.url: {0}")]
    Url(String),
    #[error("cannot build the connection pool: {0}")]
    Pool(String),
    /// Shown to the operator (start-up, logs); a client only ever gets a generic message.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// A PostgreSQL error: SQLSTATE and primary message only (never DETAIL or HINT, which
    /// can name hidden columns).
    #[error("postgres error {code}: {message}")]
    Postgres { code: String, message: String },
    #[error("the query was cancelled")]
    Cancelled,
    #[error("{0}")]
    Value(#[from] values::ValueError),
    #[error("{0}")]
    Param(String),
    #[error("refusing to serve: {0}")]
    Posture(String),
    /// The TLS settings for the database: contradictory, incomplete, or a CA file unusable.
    #[error("{0}")]
    Tls(String),
    /// The result does not have the shape the check computed: refused, never shaped.
    #[error("result shape mismatch: {0}")]
    Mismatch(String),
    /// A single row is larger than the result byte limit.
    #[error("a row exceeds the result size limit")]
    RowTooLarge,
}

impl DbError {
    fn from_pg(e: &tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db)
                if db.code().code() == "22P02"
                    && db.message().ends_with(&format!("{ROW_GUARD_MARKER}\"")) =>
            {
                DbError::RowTooLarge
            }
            Some(db) => DbError::Postgres {
                code: db.code().code().to_string(),
                message: db.message().to_string(),
            },
            None => DbError::Unavailable(with_causes(e)),
        }
    }

    /// Whether the error was caused by the query (the model can fix it) rather than the
    /// server.
    pub fn is_query_error(&self) -> bool {
        matches!(
            self,
            DbError::Postgres { .. } | DbError::Value(_) | DbError::Param(_) | DbError::Cancelled
        )
    }
}

/// How many times, and how often, a cancel request is sent for a call the client abandoned.
const CANCEL_ATTEMPTS: usize = 50;
const CANCEL_RETRY: Duration = Duration::from_millis(100);

/// Limits applied to one call.
#[derive(Debug, Clone, Copy)]
pub struct CallLimits {
    pub max_rows: u64,
    pub max_bytes: usize,
    /// The result width the SQL check counted, if known; any other width is refused.
    pub width: Option<usize>,
    /// Plan the statement with this call's values, never with a generic plan
    /// (`SET LOCAL plan_cache_mode = force_custom_plan`): for model SQL whose literals were
    /// lifted out as parameters where the literal text's planning could have decided
    /// something with them (`sql::literals::plan_with_values`), so what the planner folds
    /// away is folded as in the literal text. A generic plan fails where the literal text does
    /// not (`CASE WHEN 0 = 1 THEN 1 / 0 END` is folded at plan time once `0 = 1` is no longer
    /// constant).
    pub plan_each_call: bool,
}

/// The marker of the error the row-size guard raises.
const ROW_GUARD_MARKER: &str = "bytes exceed the row size limit";

/// The setting pgward's BEGIN batch sets for the call's transaction only; a session setting
/// may not be named so.
pub const IN_CALL_SETTING: &str = "pgward.in_call";

/// Wraps checked SQL so PostgreSQL refuses to send any row larger than `max_bytes`: without
/// it, one computed value (a huge `format()` padding, a `string_agg` over a cross join) would be
/// received and buffered whole before any byte limit could apply. The check's SQL always ends
/// in a LIMIT, so the subquery is not flattened and keeps its order.
///
/// It also runs the SQL only inside a call's transaction: the test of [`IN_CALL_SETTING`]
/// references no column, so PostgreSQL evaluates it once before the subquery starts, and
/// outside the transaction the BEGIN batch opens the setting is not `on`. Public so tests and
/// the bench can reproduce what pgward sends.
pub fn guarded(sql: &str, max_bytes: usize) -> String {
    format!(
        "SELECT * FROM ({sql}) AS pgward_result \
         WHERE pg_catalog.current_setting('{IN_CALL_SETTING}', true) = 'on' AND CASE \
         WHEN pg_catalog.pg_column_size(pgward_result.*) <= {max_bytes} THEN true \
         ELSE (pg_catalog.pg_column_size(pgward_result.*)::text || ' {ROW_GUARD_MARKER}')::int4 = 0 END"
    )
}

/// Why a result stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Truncation {
    Rows,
    Bytes,
}

/// Rows as JSON values, in select-list order.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryOutput {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    pub truncated: Option<Truncation>,
    /// JSON-encoded size of the returned rows.
    pub bytes: usize,
}

/// The pool and the per-call session settings.
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    begin: String,
    /// How connections (and cancel requests) reach the server.
    transport: Transport,
}

impl Database {
    /// Builds the pool (connections open lazily).
    pub fn connect(cfg: &DatabaseConfig) -> Result<Self, DbError> {
        let mut pg = tokio_postgres::Config::from_str(&cfg.url).map_err(|e| {
            match tls::libpq_sslmode(&cfg.url, &tls::DATABASE_KEYS) {
                Some(hint) => DbError::Tls(hint),
                None => DbError::Url(strip_secrets(&e.to_string())),
            }
        })?;
        pg.connect_timeout(Duration::from_millis(cfg.connect_timeout_ms));
        pg.application_name("pgward");
        if pg.get_target_session_attrs() != TargetSessionAttrs::Any {
            return Err(DbError::Url(
                "target_session_attrs cannot tell servers apart: every pgward connection is read only, so `read-write` refuses every server and `read-only` accepts a primary; list the server to use".into(),
            ));
        }
        add_options(&mut pg, &session_options(cfg)).map_err(|e| DbError::Url(e.into()))?;
        let transport = Transport::choose(&mut pg, &cfg.tls_settings(), &tls::DATABASE_KEYS)
            .map_err(DbError::Tls)?;
        let recycling = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = pool::Manager::new(transport.manager(pg, recycling), session_settings(cfg));
        let pool = Pool::builder(manager)
            .max_size(cfg.pool_size)
            .runtime(deadpool::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_millis(cfg.connect_timeout_ms)))
            .create_timeout(Some(Duration::from_millis(cfg.connect_timeout_ms)))
            .build()
            .map_err(|e| DbError::Pool(e.to_string()))?;
        Ok(Self {
            pool,
            begin: begin_sql(cfg),
            transport,
        })
    }

    /// The pool's size, idle connections and callers waiting for one (for `/metrics`).
    pub fn pool_status(&self) -> crate::metrics::PoolStatus {
        let s = self.pool.status();
        crate::metrics::PoolStatus {
            size: s.size as u64,
            available: s.available as u64,
            waiters: s.waiting as u64,
        }
    }

    /// Whether the database answers now, through the pool (for `/readyz`).
    pub async fn ping(&self) -> bool {
        let Ok(mut session) = self.checkout().await else {
            return false;
        };
        let answered = match session.client() {
            Ok(client) => client.simple_query("SELECT 1").await.is_ok(),
            Err(_) => false,
        };
        if answered {
            session.mark_clean();
        }
        answered
    }

    /// Takes a pooled connection (no round trip: the pool recycles without a check query).
    async fn checkout(&self) -> Result<Session, DbError> {
        let object = self
            .pool
            .get()
            .await
            .map_err(|e| DbError::Unavailable(with_causes(&e)))?;
        Ok(Session::new(object))
    }

    /// The statements that open a call's transaction, as `role` when one is given.
    ///
    /// INVARIANT: SET LOCAL: the role ends with the transaction, and every call ends in
    /// ROLLBACK, so the next call on this connection starts as the login role again.
    fn begin_as(&self, role: Option<&str>, plan_each_call: bool) -> std::borrow::Cow<'_, str> {
        if role.is_none() && !plan_each_call {
            return self.begin.as_str().into();
        }
        let mut begin = self.begin.clone();
        if plan_each_call {
            begin.push_str("; SET LOCAL plan_cache_mode = force_custom_plan");
        }
        if let Some(role) = role {
            begin.push_str(&format!("; SET LOCAL ROLE {}", quote_ident(role)));
        }
        begin.into()
    }

    /// Pool status: (size, available, waiting).
    pub fn status(&self) -> (usize, usize, usize) {
        let s = self.pool.status();
        (s.size, s.available, s.waiting)
    }

    /// Runs one checked statement in a read-only transaction that is always rolled back.
    ///
    /// INVARIANT: `sql` is pgward's canonical SQL from the policy check (or an operator's tool
    /// SQL, checked the same way). It goes through the extended protocol only: one Parse, one
    /// Bind with `params`, one Execute; never the simple protocol.
    pub async fn run(
        &self,
        sql: &str,
        args: &[(String, Value)],
        limits: CallLimits,
        cancelled: impl Future<Output = ()>,
    ) -> Result<QueryOutput, DbError> {
        self.run_in_context(sql, args, &[], &[], limits, cancelled)
            .await
    }

    /// [`Database::run`] with the caller's `(claim, value)` pairs bound after `args` (the row
    /// filters' parameters), after setting each `(name, value)` of `context` for this
    /// transaction only (`set_config(name, value, true)`, both bound, never interpolated):
    /// row-level security policies written against `current_setting(name)` then filter the
    /// query.
    pub async fn run_in_context(
        &self,
        sql: &str,
        args: &[(String, Value)],
        claims: &[(String, String)],
        context: &[(String, String)],
        limits: CallLimits,
        cancelled: impl Future<Output = ()>,
    ) -> Result<QueryOutput, DbError> {
        self.run_as(None, sql, args, claims, context, limits, cancelled)
            .await
    }

    /// [`Database::run_in_context`] after `SET LOCAL ROLE role` (a role the login role is a
    /// member of), so that role's column grants and row-level security apply to the call.
    #[allow(clippy::too_many_arguments, reason = "one call's whole context")]
    pub async fn run_as(
        &self,
        role: Option<&str>,
        sql: &str,
        args: &[(String, Value)],
        claims: &[(String, String)],
        context: &[(String, String)],
        limits: CallLimits,
        cancelled: impl Future<Output = ()>,
    ) -> Result<QueryOutput, DbError> {
        let mut session = self.checkout().await?;
        let begin = self.begin_as(role, limits.plan_each_call);
        let statement_sql = guarded(sql, limits.max_bytes);
        let (client, statements) = session.parts()?;
        let cancel_token = client.cancel_token();
        let call = Call {
            client,
            begin: &begin,
            context,
            args,
            claims,
            limits,
        };
        let work = async {
            if let Some(stmt) = statements.get(&statement_sql) {
                match call.prepared(&stmt).await {
                    Kept::Done(outcome, clean) => return (outcome, clean),
                    // Refused before anything ran, in a way a fresh description could change
                    // (a migration changed a type the statement uses): describe it again.
                    Kept::Stale => statements.remove(&statement_sql),
                }
            }
            call.describing(&statement_sql, statements).await
        };
        let (outcome, clean) = {
            pin_mut!(work);
            pin_mut!(cancelled);
            tokio::select! {
                done = &mut work => done,
                () = &mut cancelled => {
                    // The client gave up: ask the server to stop the query. A cancel request
                    // that arrives before the statement starts is ignored by PostgreSQL, so it
                    // is repeated until the statement ends.
                    let mut cancel_failed = false;
                    for _ in 0..CANCEL_ATTEMPTS {
                        if let Err(e) = self.transport.cancel(&cancel_token).await
                            && !cancel_failed
                        {
                            cancel_failed = true;
                            tracing::warn!(error = %with_causes(&e), "a cancel request failed");
                        }
                        tokio::select! {
                            _ = &mut work => break,
                            () = tokio::time::sleep(CANCEL_RETRY) => {}
                        }
                    }
                    // The statement may still be running: the session is not marked clean, so
                    // its connection is closed when it drops, which ends the backend's work.
                    (Err(DbError::Cancelled), false)
                }
            }
        };
        // Not clean (cancelled, ROLLBACK failed, a kept statement sent after a failed BEGIN
        // batch, or a describe that may have left a statement behind): the connection is
        // closed on drop.
        if clean {
            session.mark_clean();
        }
        outcome
    }

    /// Runs trusted pgward SQL (catalog reads) in the same read-only session.
    async fn catalog_query(
        &self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Vec<tokio_postgres::Row>, DbError> {
        self.catalog_query_as(None, sql, params).await
    }

    /// [`Database::catalog_query`] after `SET LOCAL ROLE role`. One pipelined round trip:
    /// BEGIN, the query (one message: parse, bind, execute), ROLLBACK.
    async fn catalog_query_as(
        &self,
        role: Option<&str>,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Vec<tokio_postgres::Row>, DbError> {
        let mut session = self.checkout().await?;
        let client = session.client()?;
        let begin = self.begin_as(role, false);
        let (opened, rows, rolled_back) = futures_util::join!(
            client.batch_execute(&begin),
            client.query_typed(sql, params),
            client.batch_execute("ROLLBACK"),
        );
        let clean = rolled_back.is_ok();
        let rows = opened.and(rows).map_err(|e| DbError::from_pg(&e));
        if clean {
            session.mark_clean();
        }
        rows
    }

    /// The parameter types PostgreSQL infers for a statement (used to check lookup tools at
    /// start-up). One pipelined round trip: BEGIN, describe, ROLLBACK.
    pub async fn param_types(
        &self,
        sql: &str,
    ) -> Result<Vec<tokio_postgres::types::Type>, DbError> {
        let mut session = self.checkout().await?;
        let client = session.client()?;
        let begin = self.begin_as(None, false);
        let (opened, stmt, rolled_back) = futures_util::join!(
            client.batch_execute(&begin),
            client.prepare(sql),
            client.batch_execute("ROLLBACK"),
        );
        // A statement whose type lookups failed after PostgreSQL parsed it is never closed.
        let clean = rolled_back.is_ok() && stmt.as_ref().map_or_else(refused_at_parse, |_| true);
        let types = opened
            .and(stmt)
            .map(|stmt| stmt.params().to_vec())
            .map_err(|e| DbError::from_pg(&e));
        if clean {
            session.mark_clean();
        }
        types
    }

    /// Columns of a table from the catalog: name, type, nullable, comment.
    pub async fn columns(&self, table: &QualifiedName) -> Result<Vec<CatalogColumn>, DbError> {
        let mut all = self.columns_of(std::slice::from_ref(table)).await?;
        Ok(all.remove(table).unwrap_or_default())
    }

    /// [`Database::columns`] of every listed table in one round trip; a table that does not
    /// exist (or that the role cannot see) has no columns.
    pub async fn columns_of(
        &self,
        tables: &[QualifiedName],
    ) -> Result<BTreeMap<QualifiedName, Vec<CatalogColumn>>, DbError> {
        if tables.is_empty() {
            // Nothing to ask (a config without `columns = "all"` at start-up): no round trip.
            return Ok(BTreeMap::new());
        }
        // Each table once, so no column is read twice.
        let tables: Vec<&QualifiedName> = tables
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let schemas: Vec<&str> = tables.iter().map(|t| t.schema.as_str()).collect();
        let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
        let rows = self
            .catalog_query(
                "SELECT t.i, a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod), \
                 NOT a.attnotnull, pg_catalog.col_description(a.attrelid, a.attnum) \
                 FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[])) \
                 WITH ORDINALITY AS t(schema, name, i) \
                 JOIN pg_catalog.pg_namespace n ON n.nspname = t.schema \
                 JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = t.name \
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid \
                 WHERE a.attnum > 0 AND NOT a.attisdropped \
                 ORDER BY t.i, a.attnum",
                &[(&schemas, Type::TEXT_ARRAY), (&names, Type::TEXT_ARRAY)],
            )
            .await?;
        let mut out: BTreeMap<QualifiedName, Vec<CatalogColumn>> =
            tables.iter().map(|&t| (t.clone(), Vec::new())).collect();
        for r in &rows {
            let get = |e: tokio_postgres::Error| DbError::from_pg(&e);
            let i: i64 = r.try_get(0).map_err(get)?;
            let Some(table) = usize::try_from(i - 1).ok().and_then(|i| tables.get(i)) else {
                continue;
            };
            let column = CatalogColumn {
                name: r.try_get(1).map_err(get)?,
                data_type: r.try_get(2).map_err(get)?,
                nullable: r.try_get(3).map_err(get)?,
                comment: r.try_get(4).map_err(get)?,
            };
            out.entry((*table).clone()).or_default().push(column);
        }
        Ok(out)
    }

    /// Reads the columns of every listed table (one round trip); a missing table has none.
    pub async fn catalog(
        &self,
        tables: &[QualifiedName],
    ) -> Result<BTreeMap<QualifiedName, Vec<String>>, DbError> {
        Ok(self
            .columns_of(tables)
            .await?
            .into_iter()
            .map(|(t, cols)| (t, cols.into_iter().map(|c| c.name).collect()))
            .collect())
    }

    /// DESIGN invariant 5: what can this role do? Returns every finding that makes it unsafe.
    pub async fn posture(&self) -> Result<Vec<String>, DbError> {
        self.posture_as(None).await
    }

    /// [`Database::posture`] of `role`, as the login role switches to it for a call.
    ///
    /// The writable-table scan first narrows `pg_class` to the schemas it reports on (the
    /// MATERIALIZED fence keeps PostgreSQL from testing privileges on every system catalog
    /// before the schema filter, which made this the slowest query of a cold start: bind and
    /// execute took 5.0–7.2 ms in a fresh backend on the demo database, 2.1 ms with the fence).
    pub async fn posture_as(&self, role: Option<&str>) -> Result<Vec<String>, DbError> {
        let rows = self
            .catalog_query_as(
                role,
                "SELECT r.rolname::text, r.rolsuper, r.rolbypassrls, r.rolcreaterole, r.rolcreatedb, \
                 (WITH seen AS MATERIALIZED ( \
                    SELECT c.oid, n.nspname, c.relname \
                      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                     WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') \
                       AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                       AND n.nspname NOT LIKE 'pg\\_toast%') \
                  SELECT pg_catalog.array_agg(s.nspname::text || '.' || s.relname::text \
                                              ORDER BY s.nspname, s.relname) \
                    FROM seen s \
                   WHERE pg_catalog.has_table_privilege(s.oid, 'INSERT, UPDATE, DELETE, TRUNCATE') \
                      OR pg_catalog.has_any_column_privilege(s.oid, 'INSERT, UPDATE')), \
                 (SELECT pg_catalog.array_agg(n.nspname::text ORDER BY n.nspname) FROM pg_catalog.pg_namespace n \
                   WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
                     AND n.nspname NOT LIKE 'pg\\_%' \
                     AND pg_catalog.has_schema_privilege(n.oid, 'CREATE')) \
                 , r.rolreplication, \
                 (SELECT pg_catalog.array_agg(g ORDER BY g) FROM pg_catalog.unnest(ARRAY['pg_read_all_data', \
                    'pg_write_all_data', 'pg_read_server_files', 'pg_write_server_files', \
                    'pg_execute_server_program', 'pg_signal_backend']) AS g \
                   WHERE pg_catalog.pg_has_role(current_user, g, 'MEMBER')) \
                 FROM pg_catalog.pg_roles r WHERE r.rolname = current_user",
                &[],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Err(DbError::Posture("cannot read the role's attributes".into()));
        };
        let get_bool = |i: usize| row.try_get::<_, bool>(i).unwrap_or(true);
        let role: String = row.try_get(0).unwrap_or_default();
        let mut findings = Vec::new();
        if get_bool(1) {
            findings.push(format!("role `{role}` is a superuser"));
        }
        if get_bool(2) {
            findings.push(format!("role `{role}` can bypass row-level security"));
        }
        if get_bool(3) {
            findings.push(format!("role `{role}` can create roles"));
        }
        if get_bool(4) {
            findings.push(format!("role `{role}` can create databases"));
        }
        let writable: Option<Vec<String>> = row.try_get(5).unwrap_or(None);
        if let Some(tables) = writable.filter(|t| !t.is_empty()) {
            findings.push(format!(
                "role `{role}` can write to {} table(s), e.g. {}",
                tables.len(),
                tables
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let creatable: Option<Vec<String>> = row.try_get(6).unwrap_or(None);
        if let Some(schemas) = creatable.filter(|s| !s.is_empty()) {
            findings.push(format!(
                "role `{role}` can create objects in schema(s) {}",
                schemas.join(", ")
            ));
        }
        if get_bool(7) {
            findings.push(format!("role `{role}` has the replication attribute"));
        }
        let powerful: Option<Vec<String>> = row.try_get(8).unwrap_or(None);
        if let Some(roles) = powerful.filter(|r| !r.is_empty()) {
            findings.push(format!("role `{role}` is a member of {}", roles.join(", ")));
        }
        Ok(findings)
    }
}

/// A column as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CatalogColumn {
    pub name: String,
    pub data_type: String,
    pub nullable: bool,
    pub comment: Option<String>,
}

/// The statements that open every call's transaction (pgward's own constants, sent with the
/// simple protocol; the model's SQL never is): `BEGIN READ ONLY`, then a `SET LOCAL` of each
/// of [`session_settings`] but the read-only default, which BEGIN stands for, with
/// [`IN_CALL_SETTING`] `on`. Public so tests can reproduce the session.
pub fn begin_sql(cfg: &DatabaseConfig) -> String {
    let mut sql = "BEGIN READ ONLY".to_string();
    for (name, value) in session_settings(cfg) {
        let value = match name {
            "default_transaction_read_only" => continue,
            IN_CALL_SETTING => "on".to_string(),
            _ => value,
        };
        sql.push_str(&format!("; SET LOCAL {name} = {value}"));
    }
    sql
}

/// The settings every connection starts with (the `options` startup parameter), behind the
/// BEGIN batch that sets them again for each call: anything that ever ran on a connection
/// outside pgward's transaction would still be read only, under the statement timeout, with
/// pgward's search path. Every call ends in ROLLBACK, which also undoes a session-level SET made
/// during it, so these hold for the connection's whole life.
pub fn session_options(cfg: &DatabaseConfig) -> String {
    session_settings(cfg)
        .iter()
        .map(|(name, value)| format!("-c {}", escape_option(&format!("{name}={value}"))))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `(name, value)` pairs of [`session_options`] (timeouts in milliseconds).
/// standard_conforming_strings is pinned on: the check reads string literals that way, and a
/// role or database default of off would give backslashes another meaning.
/// [`IN_CALL_SETTING`] starts `off`, so a role or database default cannot stand in for the
/// BEGIN batch.
fn session_settings(cfg: &DatabaseConfig) -> Vec<(&'static str, String)> {
    vec![
        ("default_transaction_read_only", "on".into()),
        ("statement_timeout", cfg.statement_timeout_ms.to_string()),
        ("lock_timeout", cfg.lock_timeout_ms.to_string()),
        (
            "idle_in_transaction_session_timeout",
            cfg.idle_in_transaction_timeout_ms.to_string(),
        ),
        ("standard_conforming_strings", "on".into()),
        ("search_path", search_path(cfg)),
        (IN_CALL_SETTING, "off".into()),
    ]
}

/// pg_catalog first, then the allowed schemas, then pg_temp last (unlisted, PostgreSQL would
/// search pg_temp and pg_catalog before everything). Every table in checked SQL is
/// schema-qualified and every built-in function is called as `pg_catalog.name`; with pg_catalog
/// first, built-in operators and types cannot be shadowed either, while extension types
/// installed in an allowed schema still resolve.
fn search_path(cfg: &DatabaseConfig) -> String {
    let mut path = vec!["pg_catalog".to_string()];
    path.extend(cfg.schemas.iter().map(|s| quote_ident(s)));
    path.push("pg_temp".into());
    path.join(",")
}

/// Adds `ours` after any `options` the URL gives, so pgward's settings win. Refuses URL options
/// that end in a lone backslash, which would escape the space before pgward's and join them.
pub(crate) fn add_options(pg: &mut tokio_postgres::Config, ours: &str) -> Result<(), &'static str> {
    let options = match pg.get_options() {
        Some(theirs) if theirs.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1 => {
            return Err(
                "its options end in a lone backslash, which would join them to pgward's own",
            );
        }
        Some(theirs) if !theirs.trim().is_empty() => format!("{theirs} {ours}"),
        _ => ours.to_string(),
    };
    pg.options(options);
    Ok(())
}

/// PostgreSQL splits `options` on white space; a backslash keeps the next character.
fn escape_option(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '\\' || c.is_whitespace() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// An error's text with the causes under it (the driver says "error performing TLS
/// handshake"; the cause says which certificate check failed), for the operator's log.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// Removes anything that looks like a password from a driver message.
fn strip_secrets(msg: &str) -> String {
    if msg.contains("password") {
        "the URL could not be parsed".into()
    } else {
        msg.to_string()
    }
}

/// Sets each `(name, value)` for this transaction only, both bound, never interpolated.
async fn set_context(
    client: &tokio_postgres::Client,
    context: &[(String, String)],
) -> Result<(), tokio_postgres::Error> {
    let settings = futures_util::future::join_all(context.iter().map(|(name, value)| async move {
        // INVARIANT: the settings are transaction-local (`true`), so the ROLLBACK that ends
        // every call clears them before the connection serves anyone else.
        client
            .query_typed(
                "SELECT pg_catalog.set_config($1, $2, true)",
                &[(name, Type::TEXT), (value, Type::TEXT)],
            )
            .await
    }))
    .await;
    settings.into_iter().try_for_each(|r| r.map(drop))
}

/// One call's requests on its connection.
///
/// The requests of a call are pipelined: tokio-postgres sends each when its future is first
/// polled, `join!` polls them in order, and PostgreSQL answers in order. The first error in
/// order is the one reported; tests/db_integration.rs
/// (`writes_fail_in_the_database_even_without_the_policy_check`,
/// `statement_timeout_stops_a_slow_query`) fail if the order ever changes.
struct Call<'a> {
    client: &'a tokio_postgres::Client,
    begin: &'a str,
    context: &'a [(String, String)],
    args: &'a [(String, Value)],
    claims: &'a [(String, String)],
    limits: CallLimits,
}

/// How a call on a kept statement ended.
enum Kept {
    /// The outcome, and whether the connection may be reused.
    Done(Result<QueryOutput, DbError>, bool),
    /// Refused before anything ran, in a way a fresh description could change: by
    /// `check_statement` or argument conversion against the kept description, or by
    /// PostgreSQL at Bind (see [`replannable`]). The transaction, if one was opened, was rolled
    /// back and the connection is clean.
    Stale,
}

/// Where `fetch` failed.
enum FetchError {
    /// Before the statement started: the driver could not send it, or PostgreSQL refused the
    /// Bind (the Execute sent with it is then skipped).
    Bind(tokio_postgres::Error),
    /// While reading the rows.
    Other(DbError),
}

impl From<DbError> for FetchError {
    fn from(e: DbError) -> Self {
        FetchError::Other(e)
    }
}

impl FetchError {
    fn into_db(self) -> DbError {
        match self {
            FetchError::Bind(e) => DbError::from_pg(&e),
            FetchError::Other(e) => e,
        }
    }
}

impl Call<'_> {
    /// [`check_statement`] for this call's arguments and limits: the column names.
    fn check(&self, stmt: &tokio_postgres::Statement) -> Result<Vec<String>, DbError> {
        check_statement(stmt, self.args.len() + self.claims.len(), self.limits)
    }

    /// The arguments, then the row filters' claims, converted for the statement's parameter
    /// types.
    fn bind(&self, stmt: &tokio_postgres::Statement) -> Result<Bound, DbError> {
        let mut bound: Bound = Vec::with_capacity(self.args.len() + self.claims.len());
        for ((name, value), ty) in self.args.iter().zip(stmt.params()) {
            bound.push(params::bind(name, value, ty).map_err(DbError::Param)?);
        }
        let claim_types = stmt.params().iter().skip(self.args.len());
        for ((claim, value), ty) in self.claims.iter().zip(claim_types) {
            bound.push(params::bind_claim(claim, value, ty).map_err(DbError::Param)?);
        }
        Ok(bound)
    }

    /// A statement described earlier on this connection: checked against that description
    /// before anything is sent, then one round trip (BEGIN batch, settings, Bind/Execute,
    /// ROLLBACK).
    ///
    /// Types were resolved when the statement was described, so executing it makes no catalog
    /// lookup of the driver's that could queue behind the ROLLBACK.
    async fn prepared(&self, stmt: &tokio_postgres::Statement) -> Kept {
        // Nothing was sent: the connection is as it was, and a fresh description (other
        // column or parameter types) may pass. Arguments that do not convert to the kept
        // parameter types are refused here for good only when they also fail the fresh ones.
        let Ok(columns) = self.check(stmt) else {
            return Kept::Stale;
        };
        let Ok(bound) = self.bind(stmt) else {
            return Kept::Stale;
        };
        let (opened, set, fetched, rolled_back) = futures_util::join!(
            self.client.batch_execute(self.begin),
            set_context(self.client, self.context),
            fetch(self.client, stmt, columns, bound, self.limits),
            self.client.batch_execute("ROLLBACK"),
        );
        // INVARIANT: the model's SQL runs only inside the call's transaction. A failed SET
        // LOCAL or setting aborts the transaction, and PostgreSQL then refuses the Bind. Had
        // the BEGIN batch not taken effect at all, the statement would run on its own, read
        // only under the connection's start-up settings (`session_options`), and return no
        // row: `guarded` tests the `pgward.in_call` setting only the batch sets. Its outcome
        // is dropped here and the connection closed, never reused.
        let clean = opened.is_ok() && rolled_back.is_ok();
        match (opened.and(set), fetched) {
            (Err(e), _) => Kept::Done(Err(DbError::from_pg(&e)), clean),
            (Ok(()), Err(FetchError::Bind(e))) if clean && replannable(&e) => Kept::Stale,
            (Ok(()), fetched) => Kept::Done(fetched.map_err(FetchError::into_db), clean),
        }
    }

    /// A statement new to this connection: two round trips. The statement is described inside
    /// the transaction first (its column and parameter types resolved, which may take the
    /// driver's own catalog lookups) and checked; only then bound and executed. A description
    /// that passed the checks is kept in `statements` for the next call. Returns the outcome
    /// and whether the connection may be reused.
    async fn describing(
        &self,
        sql: &str,
        statements: &mut Statements,
    ) -> (Result<QueryOutput, DbError>, bool) {
        let (opened, set, prepared) = futures_util::join!(
            self.client.batch_execute(self.begin),
            set_context(self.client, self.context),
            self.client.prepare(sql),
        );
        // The driver closes a statement it dropped, but one whose type lookups failed after
        // PostgreSQL parsed it (a timeout, a lost connection) is never handed back to close.
        let leaves_statement = prepared.as_ref().is_err_and(|e| !refused_at_parse(e));
        let checked = opened
            .and(set)
            .and(prepared)
            .map_err(|e| DbError::from_pg(&e))
            .and_then(|stmt| {
                let columns = self.check(&stmt)?;
                // Kept only when its description passed the checks: a refused one is described
                // again next time, so a migration that makes it pass takes effect.
                statements.insert(sql, stmt.clone());
                let bound = self.bind(&stmt)?;
                Ok((stmt, columns, bound))
            });
        let (stmt, columns, bound) = match checked {
            Ok(checked) => checked,
            Err(e) => {
                let rolled_back = self.client.batch_execute("ROLLBACK").await;
                return (Err(e), rolled_back.is_ok() && !leaves_statement);
            }
        };
        // `fetch` sends its Bind/Execute in its first poll (it awaits nothing before), so they
        // precede the ROLLBACK.
        let (fetched, rolled_back) = futures_util::join!(
            fetch(self.client, &stmt, columns, bound, self.limits),
            self.client.batch_execute("ROLLBACK")
        );
        (fetched.map_err(FetchError::into_db), rolled_back.is_ok())
    }
}

/// An error only Parse raises, so no statement was created: the statement's own mistakes
/// (class 42 but a missing privilege, which a catalog lookup after Parse can raise too; class
/// 22; 0A), or the aborted transaction refusing it (25P02). Anything else may come from the
/// driver's type lookups after PostgreSQL created the statement.
fn refused_at_parse(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| {
        let code = db.code().code();
        (code.starts_with("42") && code != "42501")
            || code.starts_with("22")
            || code.starts_with("0A")
            || code == "25P02"
    })
}

/// A Bind refusal that describing the statement again could resolve. At Bind PostgreSQL plans
/// a kept statement again from its text with the parameter types fixed when it was
/// described, so only what those types decide can differ from a fresh describe: the result
/// type (`0A000`, `cached plan must not change result type`) and the type errors of class 42
/// (an operator or function that no longer matches, a mismatch). A missing privilege (42501)
/// would only repeat.
fn replannable(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| {
        let code = db.code().code();
        code == "0A000" || (code.starts_with("42") && code != "42501")
    })
}

/// The checks a described statement passes before it is executed: the number of parameters
/// given, the width the SQL check counted, and a JSON mapping for every column type (reported
/// before any row is read, never guessed). Returns the column names.
fn check_statement(
    stmt: &tokio_postgres::Statement,
    given: usize,
    limits: CallLimits,
) -> Result<Vec<String>, DbError> {
    if stmt.params().len() != given {
        return Err(DbError::Param(format!(
            "the statement takes {} parameter(s), {given} given",
            stmt.params().len(),
        )));
    }
    let columns = stmt.columns();
    if let Some(width) = limits.width
        && width != columns.len()
    {
        return Err(DbError::Mismatch(format!(
            "the check counted {width} result column(s), PostgreSQL returns {}",
            columns.len()
        )));
    }
    for c in columns {
        if !values::is_supported(c.type_()) {
            return Err(values::ValueError::Unsupported {
                column: c.name().to_string(),
                type_name: c.type_().name().to_string(),
            }
            .into());
        }
    }
    Ok(columns.iter().map(|c| c.name().to_string()).collect())
}

/// A statement's values, converted for its parameter types.
type Bound = Vec<Box<dyn ToSql + Sync + Send>>;

/// Executes `stmt` (which passed [`check_statement`], giving `columns`) with `bound`, and reads
/// rows as JSON values until the result ends, `max_rows` rows are read, or the next row would
/// pass `max_bytes`.
async fn fetch(
    client: &tokio_postgres::Client,
    stmt: &tokio_postgres::Statement,
    columns: Vec<String>,
    bound: Bound,
    limits: CallLimits,
) -> Result<QueryOutput, FetchError> {
    let bound_refs: Vec<&(dyn ToSql + Sync)> =
        bound.iter().map(|b| &**b as &(dyn ToSql + Sync)).collect();
    let stream = client
        .query_raw(stmt, bound_refs.iter().copied())
        .await
        .map_err(FetchError::Bind)?;
    pin_mut!(stream);
    let decoder = values::RowDecoder::new(stmt.columns());
    let mut rows = Vec::new();
    let mut bytes = 0usize;
    let mut truncated = None;
    while let Some(row) = stream.next().await {
        let row = row.map_err(|e| DbError::from_pg(&e))?;
        if rows.len() as u64 >= limits.max_rows {
            truncated = Some(Truncation::Rows);
            break;
        }
        let mut values = Vec::with_capacity(columns.len());
        let mut row_bytes = 2;
        for i in 0..columns.len() {
            let v = decoder.cell(&row, i).map_err(DbError::from)?;
            row_bytes += json_size(&v) + 1;
            values.push(v);
        }
        if bytes + row_bytes > limits.max_bytes {
            truncated = Some(Truncation::Bytes);
            break;
        }
        bytes += row_bytes;
        rows.push(values);
    }
    Ok(QueryOutput {
        columns,
        rows,
        truncated,
        bytes,
    })
}

/// The length of `v` as compact JSON, counted without building the text.
fn json_size(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, v) {
        Ok(()) => count.0,
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::{escape_option, json_size};
    use serde_json::json;

    #[test]
    fn json_size_is_the_length_of_the_compact_text() {
        for v in [
            json!(null),
            json!(-12.5),
            json!("plain"),
            json!("quote \" backslash \\ newline \n control \u{1} é 😀"),
            json!([1, "two", {"k": [true, null]}]),
        ] {
            assert_eq!(json_size(&v), v.to_string().len(), "{v}");
        }
    }

    #[test]
    fn options_keep_spaces_and_backslashes_inside_a_setting() {
        assert_eq!(
            escape_option(r#"search_path=pg_catalog,"my schema\x",pg_temp"#),
            r#"search_path=pg_catalog,"my\ schema\\x",pg_temp"#
        );
        assert_eq!(escape_option("a\tb"), "a\\\tb");
    }
}
