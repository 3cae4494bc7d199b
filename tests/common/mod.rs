//! Shared harness for the integration and end-to-end suites: one throwaway PostgreSQL cluster
//! per test binary (loaded with the demo data and the least-privilege role), pgward configs
//! pointing at it, in-process engines, and the real `pgward` binary driven by a real MCP
//! client over stdio.
//!
//! Cluster lifetime: tests hold an `Arc<Fixture>`; the binary-wide static keeps only a `Weak`,
//! so the cluster is stopped and deleted (by `TempCluster`'s `Drop`) when the last test that
//! uses it finishes, panics included. A static that owned the cluster would never be dropped
//! and would leak a postmaster after every `cargo test`. If the running tests all finish
//! before the next one starts, that one simply starts a fresh cluster.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use pgward::config::Settings;
use pgward::db::cluster::{TempCluster, run_sql};
use pgward::engine::Engine;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Map, Value};
use tokio::io::AsyncReadExt;

/// The reader role's password (trust auth ignores it, but the config must carry it through
/// `${ENV}` like a real deployment does).
pub const READER_PASSWORD: &str = "reader-pw";
/// The HMAC key for the `hash` redaction strategy.
pub const HASH_KEY: &str = "test-hash-key-0123456789";
/// Environment variables the configs reference.
pub const DB_PASSWORD_ENV: &str = "PGWARD_TEST_DB_PASSWORD";
pub const HASH_KEY_ENV: &str = "PGWARD_TEST_HASH_KEY";

const SCHEMA_SQL: &str = include_str!("../../demo/schema.sql");
const ROLE_SQL: &str = include_str!("../../migrations/001_readonly_role.sql");
const TENANTS_SQL: &str = include_str!("../../migrations/003_demo_tenants.sql");

/// A running, loaded cluster shared by the tests of one binary.
pub struct Fixture {
    cluster: TempCluster,
    /// Audit files of the in-process engines.
    audit_dir: tempfile::TempDir,
}

static SHARED: Mutex<Weak<Fixture>> = Mutex::new(Weak::new());

/// The binary's cluster, started and loaded on first use. Blocking; call it first in a test
/// and keep the returned value alive (declared first, so it is dropped last).
pub fn fixture() -> Arc<Fixture> {
    let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(f) = shared.upgrade() {
        return f;
    }
    let f = Arc::new(Fixture::start());
    *shared = Arc::downgrade(&f);
    f
}

impl Fixture {
    fn start() -> Fixture {
        let cluster = TempCluster::start().expect("start the throwaway postgresql cluster");
        let url = cluster.superuser_url();
        // The setup is async but `fixture()` is called from inside the tests' runtimes, which
        // cannot be nested: run it on a thread with its own runtime.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                run_sql(&url, SCHEMA_SQL)
                    .await
                    .expect("load demo/schema.sql");
                run_sql(&url, ROLE_SQL)
                    .await
                    .expect("apply migrations/001_readonly_role.sql");
                run_sql(&url, TENANTS_SQL)
                    .await
                    .expect("apply migrations/003_demo_tenants.sql");
                run_sql(
                    &url,
                    &format!("ALTER ROLE pgward_reader PASSWORD '{READER_PASSWORD}'"),
                )
                .await
                .expect("set the reader password");
            });
        })
        .join()
        .expect("cluster setup thread");
        Fixture {
            cluster,
            audit_dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn port(&self) -> u16 {
        self.cluster.port()
    }

    /// Stops PostgreSQL (`pg_ctl stop -m fast`), keeping its data; blocking.
    pub fn stop_database(&self) {
        self.cluster.stop().expect("stop the cluster");
    }

    /// Starts PostgreSQL again on the same port and data; blocking.
    pub fn start_database(&self) {
        self.cluster.restart().expect("start the cluster");
    }

    pub fn superuser_url(&self) -> String {
        self.cluster.superuser_url()
    }

    /// A URL for `user` on database `db`, without a password (loopback is trusted).
    pub fn url_on(&self, user: &str, db: &str) -> String {
        self.cluster.url(user, None, db)
    }

    /// A URL for `user` without a password (the cluster trusts loopback connections).
    pub fn url_for(&self, user: &str) -> String {
        self.cluster.url(user, None, "postgres")
    }

    /// A fresh superuser connection, for setting up and verifying from outside pgward.
    pub async fn superuser(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.superuser_url(), tokio_postgres::NoTls)
            .await
            .expect("superuser connection");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client
    }

    /// Settings resolved and validated offline (no catalog), with the test's secrets.
    pub fn settings(&self, cfg: &TestConfig) -> Settings {
        let config = parse_config(&cfg.toml(self));
        pgward::config::validate(&config, &BTreeMap::new()).expect("valid test config")
    }

    /// An engine built exactly as `pgward::app::build_engine` builds one (catalog read,
    /// revalidation, start-up checks), but with the secrets looked up from the test instead of
    /// the process environment (which an edition-2024 test cannot set without `unsafe`).
    pub async fn engine(&self, cfg: &TestConfig) -> Arc<Engine> {
        let config = parse_config(&cfg.toml(self));
        let offline =
            pgward::config::validate(&config, &BTreeMap::new()).expect("valid test config");
        let db = pgward::db::Database::connect(&offline.database).expect("pool");
        let catalog = db
            .catalog(&offline.all_column_tables)
            .await
            .expect("catalog");
        let mut settings = pgward::config::validate(&config, &catalog).expect("valid with catalog");
        // In-process engines audit to a file of their own (not the test binary's stderr).
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        settings.audit.stderr = false;
        settings.audit.file = Some(
            self.audit_dir
                .path()
                .join(format!("audit-{n}.jsonl"))
                .display()
                .to_string(),
        );
        let audit = pgward::audit::sink::AuditLog::open(&settings.audit)
            .await
            .expect("audit log");
        let engine = Arc::new(Engine::new(Arc::new(settings), db, Arc::new(audit)));
        engine.startup_checks().await.expect("start-up checks pass");
        engine
    }

    /// Writes `cfg` to a config file in a fresh temporary directory.
    pub fn write_config(&self, cfg: &TestConfig) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pgward.toml");
        std::fs::write(&path, cfg.toml(self)).expect("write config");
        (dir, path)
    }

    /// Spawns `pgward serve --config FILE` and connects an MCP client to its stdio.
    pub async fn serve(&self, cfg: &TestConfig) -> Server {
        let (dir, path) = self.write_config(cfg);
        Server::spawn(dir, &path).await
    }
}

fn parse_config(text: &str) -> pgward::config::Config {
    let parsed = pgward::config::load::parse(text).expect("config parses");
    pgward::config::load::resolve_env(parsed, &|name| match name {
        DB_PASSWORD_ENV => Some(READER_PASSWORD.to_string()),
        HASH_KEY_ENV => Some(HASH_KEY.to_string()),
        _ => None,
    })
    .expect("config resolves")
}

/// The knobs a test can turn; everything else is the standard test policy.
#[derive(Debug, Clone)]
pub struct TestConfig {
    pub max_rows: u64,
    pub statement_timeout_ms: u64,
    pub max_result_bytes: usize,
    pub pool_size: usize,
    /// Appended verbatim (more `[[tables]]` or `[[tools]]`, ...).
    pub extra: String,
    /// A scope the `customers` table requires, if any.
    pub customers_scope: Option<String>,
}

impl Default for TestConfig {
    fn default() -> Self {
        Self {
            max_rows: 50,
            statement_timeout_ms: 1000,
            max_result_bytes: 1_048_576,
            pool_size: 2,
            extra: String::new(),
            customers_scope: None,
        }
    }
}

impl TestConfig {
    pub fn toml(&self, fixture: &Fixture) -> String {
        format!(
            r#"[server]
name = "pgward-test"

[database]
url = "postgres://pgward_reader:${{{DB_PASSWORD_ENV}}}@127.0.0.1:{port}/postgres"
pool_size = {pool_size}
connect_timeout_ms = 5000
statement_timeout_ms = {statement_timeout_ms}

[limits]
max_rows = {max_rows}
max_result_bytes = {max_result_bytes}

[redaction]
hash_key = "${{{HASH_KEY_ENV}}}"

[[tables]]
name = "public.customers"
columns = ["id", "full_name", "email", "phone", "country", "created_at", "lifetime_value"]
description = "Customers of the shop"
redact = {{ email = "mask", phone = "hash" }}
{customers_scope}

[[tables]]
name = "orders"
columns = "all"
description = "Orders, one product per order"

[[tables]]
name = "public.products"
columns = "all"

[[tables]]
name = "public.support_tickets"
columns = "all"
description = "Support tickets; bodies are customer-written"

[[tools]]
name = "orders_for_customer"
description = "Orders of one customer, newest first"
sql = "SELECT id, product_id, quantity, total, status, ordered_at FROM orders WHERE customer_id = $1 ORDER BY ordered_at DESC, id LIMIT 50"

[[tools.params]]
name = "customer_id"
type = "integer"
description = "The customer's id"
minimum = 1

{extra}
"#,
            port = fixture.port(),
            pool_size = self.pool_size,
            statement_timeout_ms = self.statement_timeout_ms,
            max_rows = self.max_rows,
            max_result_bytes = self.max_result_bytes,
            extra = self.extra,
            customers_scope = self
                .customers_scope
                .as_ref()
                .map(|s| format!("scope = \"{s}\""))
                .unwrap_or_default(),
        )
    }
}

/// The real binary, serving MCP over its stdio, with a connected client.
pub struct Server {
    pub client: RunningService<RoleClient, ()>,
    pub child: tokio::process::Child,
    /// Everything the server wrote to stderr so far.
    pub stderr: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

/// Spawns `pgward serve --config <path>` with the test secrets in its environment, stdout and
/// stdin piped, stderr drained into a buffer (so a chatty log never blocks the server).
pub fn spawn_pgward(path: &Path) -> (tokio::process::Child, Arc<Mutex<String>>) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pgward"))
        .arg("serve")
        .arg("--config")
        .arg(path)
        .env(DB_PASSWORD_ENV, READER_PASSWORD)
        .env(HASH_KEY_ENV, HASH_KEY)
        .env("PGWARD_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn pgward");
    let stderr = Arc::new(Mutex::new(String::new()));
    let mut pipe = child.stderr.take().expect("stderr pipe");
    let sink = Arc::clone(&stderr);
    tokio::spawn(async move {
        let mut buf = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut buf).await {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    (child, stderr)
}

impl Server {
    /// Spawns `pgward serve --config <path>` (the file lives in `dir`, kept while the server
    /// runs) and connects an MCP client.
    pub async fn spawn(dir: tempfile::TempDir, path: &Path) -> Server {
        let (mut child, stderr) = spawn_pgward(path);
        let stdout = child.stdout.take().expect("stdout pipe");
        let stdin = child.stdin.take().expect("stdin pipe");
        let client =
            match tokio::time::timeout(Duration::from_secs(20), ().serve((stdout, stdin))).await {
                Ok(Ok(client)) => client,
                Ok(Err(e)) => panic!(
                    "mcp initialize failed: {e}\nserver stderr:\n{}",
                    stderr.lock().unwrap_or_else(PoisonError::into_inner)
                ),
                Err(_) => panic!(
                    "mcp initialize timed out\nserver stderr:\n{}",
                    stderr.lock().unwrap_or_else(PoisonError::into_inner)
                ),
            };
        Server {
            client,
            child,
            stderr,
            _dir: dir,
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Calls a tool; a protocol-level failure fails the test (tools must answer with a
    /// result, error or not).
    pub async fn call(&self, tool: &str, args: Value) -> CallToolResult {
        let mut params = CallToolRequestParams::new(tool.to_string());
        if let Value::Object(map) = args {
            params = params.with_arguments(map);
        } else {
            panic!("arguments must be an object");
        }
        match tokio::time::timeout(Duration::from_secs(20), self.client.call_tool(params)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => panic!(
                "tools/call `{tool}` failed at the protocol level: {e}\nserver stderr:\n{}",
                self.stderr()
            ),
            Err(_) => panic!("tools/call `{tool}` timed out"),
        }
    }
}

/// All text content of a tool result, joined.
pub fn text_of(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `{"sql": sql}` as an argument map.
pub fn sql_args(sql: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("sql".into(), Value::String(sql.into()));
    m
}

/// The error code of a refused outcome (`structured.error.code`).
pub fn error_code(structured: &Value) -> Option<&str> {
    structured
        .get("error")
        .and_then(|e| e.get("code"))
        .and_then(Value::as_str)
}

/// The `<untrusted-data-XXXX>` boundary token of a framed text, checking that it opens and
/// closes exactly once each, with the close at the very end.
pub fn boundary_of(text: &str) -> String {
    let re = regex::Regex::new(r"<untrusted-data-([0-9A-Za-z]+)>").unwrap();
    let caps = re
        .captures(text)
        .unwrap_or_else(|| panic!("no untrusted-data frame in:\n{text}"));
    let token = caps[1].to_string();
    let open = format!("<untrusted-data-{token}>");
    let close = format!("</untrusted-data-{token}>");
    assert_eq!(text.matches(&open).count(), 1, "one opening boundary");
    assert_eq!(text.matches(&close).count(), 1, "one closing boundary");
    assert!(
        text.trim_end().ends_with(&close),
        "the frame closes at the end"
    );
    assert!(
        text.find(&open) < text.find(&close),
        "opening before closing"
    );
    token
}
