//! End-to-end load bench: the real `pgward serve` binary against a real PostgreSQL, compared
//! in the same run with a raw tokio-postgres loop running the same SQL as the same
//! least-privilege role.
//!
//! `cargo bench --bench load` builds `pgward` in the bench profile (release settings), starts
//! a throwaway cluster (`TempCluster`) loaded with `demo/schema.sql` and
//! `migrations/001_readonly_role.sql`, and measures five workloads (a point lookup by primary
//! key written by the model, the same lookup through a parameterized lookup tool, a GROUP BY
//! aggregate, a 100-row join, a 1000-row result) in five modes:
//!
//! - `raw seq`, `raw x8`: tokio-postgres as `pgward_reader`, `client.query(sql, params)` per call
//!   (the driver prepares the statement, binds and executes it: two round trips), with the
//!   canonical SQL pgward itself runs; x8 is eight connections with one call in flight each.
//! - `stdio seq`: MCP `tools/call` (`query`, or the lookup tool) over the child's stdio,
//!   JSON-RPC lines written and read by hand (the 2025-11-25 handshake first), one call at a
//!   time.
//! - `http seq`, `http x8`: stateless 2026-07-28 MCP requests over Streamable HTTP with an
//!   HS256 bearer token (verified on every request), one call at a time or eight in flight.
//!
//! Each workload's calls are split into rounds, and the modes take turns round by round (the
//! sequential ones among themselves, then `raw x8` and `http x8`), so that pgward and the raw
//! driver meet the same machine: on a shared virtual machine everything's speed drifts by tens
//! of percent over minutes, which would otherwise land on whichever mode ran at the time.
//!
//! An informational `raw+txn` row runs what pgward sends PostgreSQL per call (its `BEGIN READ
//! ONLY; SET LOCAL ...` batch, the row-size-guarded SQL, `ROLLBACK`) from the raw driver, so
//! the overhead splits into "protocol pgward needs" and "everything else". An informational
//! `raw kept` row is the fastest a direct driver client gets with pgward's statement strategy:
//! the SQL pgward runs (model SQL with its compared integers bound as parameters, the lookup
//! tool's SQL), each text prepared once on the connection and then executed in one round trip,
//! where `raw seq` prepares every call; the overhead table shows pgward against both. It runs
//! in PostgreSQL's default plan mode, as a direct client would, so after five calls a statement
//! may run a generic plan, where pgward plans each call of model SQL with its values. Audit is
//! ON in the measured path (a JSON Lines file sink, flushed per event); audit to stderr is off.
//!
//! It also reports the CPU time per call of the pgward process and of the bench itself
//! (`/proc/<pid>/stat`), the resident memory of the HTTP server under the eight-in-flight load
//! (`/proc/<pid>/status`) and the cold start (spawn to the `initialize` answer over stdio).
//!
//! Environment: `PGWARD_BIN` (the binary to measure; default: the one cargo built for this
//! bench), `PGWARD_BENCH_SCALE` (multiplies every iteration count; default 1),
//! `PGWARD_BENCH_COLD_STARTS` (default 10), `PGWARD_BENCH_AUDIT=stderr` (audit to the stderr
//! sink instead of a file: a diagnostic, not the measured configuration).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pgward::db::cluster::{TempCluster, run_sql};
use pgward::sql::{ParamMode, check};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Res<T> = Result<T, BoxError>;

const SCHEMA_SQL: &str = include_str!("../demo/schema.sql");
const ROLE_SQL: &str = include_str!("../migrations/001_readonly_role.sql");

const READER_PASSWORD: &str = "bench-reader-pw";
const JWT_SECRET: &str = "pgward-bench-hs256-secret-0123456789-abcdefghij";
const DB_PASSWORD_ENV: &str = "PGWARD_BENCH_DB_PASSWORD";
const JWT_SECRET_ENV: &str = "PGWARD_BENCH_JWT_SECRET";
const ISSUER: &str = "https://idp.bench.invalid";
const STATELESS: &str = "2026-07-28";
const HANDSHAKE: &str = "2025-11-25";
/// Calls in flight in the concurrent modes, and pgward's pool size.
const LANES: usize = 8;
const POOL_SIZE: usize = 8;

// The issue's targets, and the best comparable server on this machine.
const TARGET_OVERHEAD_US: f64 = 150.0;
const TARGET_HTTP_SHARE: f64 = 60.0;
const TARGET_RSS_MIB: f64 = 16.0;
const TARGET_COLD_MS: f64 = 20.0;
const RIVAL_P50_MS: f64 = 1.4;
const RIVAL_RSS_MIB: f64 = 12.0;
const RIVAL_COLD_MS: f64 = 19.0;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("load bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn err(msg: impl Into<String>) -> BoxError {
    msg.into().into()
}

fn env_f64(name: &str, default: f64) -> Res<f64> {
    match std::env::var(name) {
        Ok(v) => v
            .parse::<f64>()
            .ok()
            .filter(|x| *x > 0.0)
            .ok_or_else(|| err(format!("{name}: `{v}` is not a positive number"))),
        Err(_) => Ok(default),
    }
}

fn run() -> Res<()> {
    let bin = std::env::var_os("PGWARD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_pgward")));
    if !bin.is_file() {
        return Err(err(format!("pgward binary `{}` not found", bin.display())));
    }
    let scale = env_f64("PGWARD_BENCH_SCALE", 1.0)?;
    let cold_starts = env_f64("PGWARD_BENCH_COLD_STARTS", 10.0)?.round().max(1.0) as usize;

    eprintln!("load bench: starting a throwaway PostgreSQL ...");
    // Blocking start and stop: outside the runtime. Declared first, so it is dropped last.
    let cluster = TempCluster::start()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(bench(&cluster, &bin, scale, cold_starts));
    drop(runtime);
    drop(cluster);
    result
}

// ------------------------------------------------------------------------------------------
// Workloads
// ------------------------------------------------------------------------------------------

struct Workload {
    name: &'static str,
    iterations: usize,
    expected_rows: u64,
    /// Used round-robin.
    calls: Vec<Call>,
}

impl Workload {
    fn call(&self, i: usize) -> &Call {
        &self.calls[i % self.calls.len()]
    }
}

/// One tool call, and the same query for the raw loop.
struct Call {
    /// The MCP tool and its arguments.
    tool: &'static str,
    arguments: Value,
    /// What the model sends: the `query` tool's SQL, or the lookup tool's call.
    shown: String,
    /// The SQL pgward runs (its canonical form), and the parameter pgward binds to it.
    canonical: String,
    param: Option<i64>,
    /// The text pgward sends PostgreSQL (`Checked::run_sql`) and the values it binds to it:
    /// the lifted literals of model SQL, or the lookup tool's parameter.
    run: String,
    run_params: Vec<i64>,
}

impl Call {
    fn params(&self) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
        self.param
            .as_ref()
            .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
            .into_iter()
            .collect()
    }
}

/// The lookup tool of the `point_tool` workload (configured in [`config_toml`]).
const LOOKUP_TOOL: &str = "get_order";
const LOOKUP_SQL: &str = "SELECT id, status, total FROM orders WHERE id = $1";

const GROUP_BY_SQL: &str = "SELECT status, count(*), sum(total) FROM orders GROUP BY status";
/// Every customer has exactly ten orders in the demo data, so customers 1..10 give 100 rows.
const JOIN_SQL: &str = "SELECT o.id, o.ordered_at, o.total, c.full_name, c.country, p.name \
     FROM orders o JOIN customers c ON c.id = o.customer_id \
     JOIN products p ON p.id = o.product_id WHERE o.customer_id <= 10 ORDER BY o.id";
const ROWS_SQL: &str = "SELECT id, customer_id, product_id, quantity, total, status, ordered_at \
     FROM orders ORDER BY id LIMIT 1000";

fn workloads(policy: &pgward::policy::Policy, scale: f64) -> Res<Vec<Workload>> {
    let canonical = |sql: &str, mode: ParamMode| -> Res<pgward::sql::Checked> {
        let checked = check(policy, sql, mode).map_err(|v| {
            err(format!(
                "the policy refuses `{sql}`: {}",
                v.iter()
                    .map(|x| format!("{x:?}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
        })?;
        Ok(checked)
    };
    let query = |sql: &str| -> Res<Call> {
        let checked = canonical(sql, ParamMode::None)?;
        Ok(Call {
            tool: "query",
            arguments: json!({"sql": sql}),
            shown: sql.to_string(),
            canonical: checked.sql,
            param: None,
            run: checked.run_sql,
            run_params: checked.literals,
        })
    };
    let lookup = canonical(LOOKUP_SQL, ParamMode::Tool { count: 1 })?.sql;
    let n = |base: f64| ((base * scale).round() as usize).max(LANES * 4);
    // 2000 orders; a stride coprime with 2000 visits every id in a scattered order.
    let ids = (0..2000i64).map(|i| 1 + (i * 7919) % 2000);
    let mut point = Vec::with_capacity(2000);
    let mut point_tool = Vec::with_capacity(2000);
    for id in ids {
        point.push(query(&format!(
            "SELECT id, status, total FROM orders WHERE id = {id}"
        ))?);
        point_tool.push(Call {
            tool: LOOKUP_TOOL,
            arguments: json!({"id": id}),
            shown: format!("{LOOKUP_TOOL} {{\"id\": {id}}} runs {LOOKUP_SQL}"),
            canonical: lookup.clone(),
            param: Some(id),
            run: lookup.clone(),
            run_params: vec![id],
        });
    }
    Ok(vec![
        Workload {
            name: "point_lookup",
            iterations: n(4000.0),
            expected_rows: 1,
            calls: point,
        },
        Workload {
            name: "point_tool",
            iterations: n(4000.0),
            expected_rows: 1,
            calls: point_tool,
        },
        Workload {
            name: "group_by",
            iterations: n(1500.0),
            expected_rows: 4,
            calls: vec![query(GROUP_BY_SQL)?],
        },
        Workload {
            name: "join_100",
            iterations: n(1000.0),
            expected_rows: 100,
            calls: vec![query(JOIN_SQL)?],
        },
        Workload {
            name: "rows_1000",
            iterations: n(300.0),
            expected_rows: 1000,
            calls: vec![query(ROWS_SQL)?],
        },
    ])
}

// ------------------------------------------------------------------------------------------
// Configs
// ------------------------------------------------------------------------------------------

/// The `[audit]` section: a JSON Lines file (the default), or with `PGWARD_BENCH_AUDIT=stderr`
/// the stderr sink only (a diagnostic, to see what the file sink costs).
fn audit_toml(audit_file: &Path) -> String {
    if audit_to_stderr() {
        "stderr = true".into()
    } else {
        format!("stderr = false\nfile = \"{}\"", audit_file.display())
    }
}

fn audit_to_stderr() -> bool {
    std::env::var("PGWARD_BENCH_AUDIT").is_ok_and(|v| v == "stderr")
}

fn config_toml(pg_port: u16, audit_file: &Path, http_port: Option<u16>) -> String {
    let mut http = String::new();
    if let Some(port) = http_port {
        http = format!(
            r#"
[http]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}/mcp"
rate_per_principal = 100000
burst_per_principal = 100000
rate_global = 100000
burst_global = 100000
max_in_flight_per_principal = 64

[[auth.issuers]]
issuer = "{ISSUER}"
algorithms = ["HS256"]
hs256_secret = "${{{JWT_SECRET_ENV}}}"
"#
        );
    }
    format!(
        r#"[server]
name = "pgward-bench"

[database]
url = "postgres://pgward_reader:${{{DB_PASSWORD_ENV}}}@127.0.0.1:{pg_port}/postgres"
pool_size = {POOL_SIZE}
connect_timeout_ms = 5000
statement_timeout_ms = 10000

[limits]
max_rows = 1000
max_result_bytes = 4194304

[audit]
{audit}
{http}
[[tables]]
name = "public.customers"
columns = ["id", "full_name", "email", "phone", "country", "created_at", "lifetime_value"]
description = "Customers of the shop"
redact = {{ email = "mask" }}

[[tables]]
name = "public.orders"
columns = ["id", "customer_id", "product_id", "quantity", "total", "status", "ordered_at"]
description = "Orders, one product per order"

[[tables]]
name = "public.products"
columns = ["id", "sku", "name", "category", "price", "in_stock"]

[[tools]]
name = "{LOOKUP_TOOL}"
description = "One order by its id"
sql = "{LOOKUP_SQL}"

[[tools.params]]
name = "id"
type = "integer"
description = "The order's id"
minimum = 1
"#,
        audit = audit_toml(audit_file),
    )
}

fn settings_of(toml_text: &str) -> Res<pgward::config::Settings> {
    let parsed = pgward::config::load::parse(toml_text)?;
    let resolved = pgward::config::load::resolve_env(parsed, &|name| match name {
        DB_PASSWORD_ENV => Some(READER_PASSWORD.to_string()),
        JWT_SECRET_ENV => Some(JWT_SECRET.to_string()),
        _ => None,
    })?;
    pgward::config::validate(&resolved, &BTreeMap::new())
        .map_err(|problems| err(format!("bench config: {}", problems.join("; "))))
}

fn free_port() -> Res<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

// ------------------------------------------------------------------------------------------
// Child processes
// ------------------------------------------------------------------------------------------

/// `pgward serve --config FILE` with the secrets in its environment and stderr drained into a
/// buffer (shown when something fails).
fn spawn_pgward(bin: &Path, config: &Path) -> Res<(Child, Arc<Mutex<String>>)> {
    let mut child = Command::new(bin)
        .arg("serve")
        .arg("--config")
        .arg(config)
        .env(DB_PASSWORD_ENV, READER_PASSWORD)
        .env(JWT_SECRET_ENV, JWT_SECRET)
        // pgward's default log filter, as deployed.
        .env_remove("PGWARD_LOG")
        // `cargo bench` points LD_LIBRARY_PATH at every build-script output and toolchain
        // directory; the dynamic loader would search them all for libgcc_s and libc at every
        // start. A deployed pgward runs without them, and so does the one measured here.
        .env_remove("LD_LIBRARY_PATH")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stderr = Arc::new(Mutex::new(String::new()));
    if let Some(mut pipe) = child.stderr.take() {
        let sink = Arc::clone(&stderr);
        tokio::spawn(async move {
            let mut buf = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let mut text = sink.lock().unwrap_or_else(PoisonError::into_inner);
                text.push_str(&String::from_utf8_lossy(&buf[..n]));
                // Keep the tail only (audit events can go to stderr in the diagnostic mode).
                if text.len() > 256 * 1024 {
                    let mut cut = text.len() - 64 * 1024;
                    while !text.is_char_boundary(cut) {
                        cut += 1;
                    }
                    text.drain(..cut);
                }
            }
        });
    }
    Ok((child, stderr))
}

fn tail(buf: &Mutex<String>) -> String {
    let text = buf.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

async fn stop(mut child: Child) {
    let _ = child.kill().await;
}

/// An MCP client over a child's stdio: JSON-RPC lines written and read by hand.
struct StdioClient {
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    line: String,
    next_id: u64,
}

impl StdioClient {
    fn new(child: &mut Child) -> Res<StdioClient> {
        Ok(StdioClient {
            stdin: child.stdin.take().ok_or_else(|| err("no stdin pipe"))?,
            stdout: BufReader::new(child.stdout.take().ok_or_else(|| err("no stdout pipe"))?),
            line: String::new(),
            next_id: 0,
        })
    }

    async fn send(&mut self, msg: &Value) -> Res<()> {
        let mut bytes = serde_json::to_vec(msg)?;
        bytes.push(b'\n');
        self.stdin.write_all(&bytes).await?;
        self.stdin.flush().await?;
        Ok(())
    }

    /// Sends a request and reads lines until its answer.
    async fn request(&mut self, method: &str, params: Value) -> Res<Value> {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await?;
        loop {
            self.line.clear();
            if self.stdout.read_line(&mut self.line).await? == 0 {
                return Err(err("pgward closed its stdout"));
            }
            let v: Value = serde_json::from_str(&self.line)?;
            if v.get("id").and_then(Value::as_u64) == Some(id) {
                return Ok(v);
            }
        }
    }

    async fn initialize(&mut self) -> Res<Value> {
        let answer = self
            .request(
                "initialize",
                json!({
                    "protocolVersion": HANDSHAKE,
                    "capabilities": {},
                    "clientInfo": {"name": "pgward-load-bench", "version": "0"}
                }),
            )
            .await?;
        if answer.get("result").is_none() {
            return Err(err(format!("initialize failed: {answer}")));
        }
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await?;
        Ok(answer)
    }

    async fn call(&mut self, call: &Call) -> Res<Value> {
        self.request(
            "tools/call",
            json!({"name": call.tool, "arguments": call.arguments}),
        )
        .await
    }
}

/// Checks a `tools/call` answer: a result, not an error, with the expected rows, not truncated.
fn check_answer(answer: &Value, expected_rows: u64) -> Res<()> {
    let result = answer
        .get("result")
        .ok_or_else(|| err(format!("not a result: {answer}")))?;
    let s = &result["structuredContent"];
    if result["isError"] == json!(true)
        || s["row_count"].as_u64() != Some(expected_rows)
        || s["truncated"] != json!(false)
    {
        let mut shown = answer.to_string();
        shown.truncate(600);
        return Err(err(format!(
            "unexpected answer (wanted {expected_rows} rows): {shown}"
        )));
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// HTTP
// ------------------------------------------------------------------------------------------

struct Http {
    client: reqwest::Client,
    url: String,
    authorization: String,
    next_id: AtomicU64,
}

impl Http {
    async fn call(&self, call: &Call) -> Res<Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({
            "jsonrpc": "2.0",
            "id": id,
            "method": "tools/call",
            "params": {
                "name": call.tool,
                "arguments": call.arguments,
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": STATELESS,
                    "io.modelcontextprotocol/clientInfo": {"name": "pgward-load-bench", "version": "0"},
                    "io.modelcontextprotocol/clientCapabilities": {}
                }
            }
        });
        let resp = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("authorization", &self.authorization)
            .header("mcp-protocol-version", STATELESS)
            .header("mcp-method", "tools/call")
            .header("mcp-name", call.tool)
            .body(body.to_string())
            .send()
            .await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            return Err(err(format!("http {status}: {text}")));
        }
        if let Ok(v) = serde_json::from_str::<Value>(&text) {
            return Ok(v);
        }
        // An SSE stream: the last `data:` event holds the answer.
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .next_back()
            .ok_or_else(|| err(format!("no JSON in the answer: {text}")))
    }
}

fn hs256_token(audience: &str) -> Res<String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = json!({
        "iss": ISSUER, "aud": audience, "sub": "load-bench",
        "iat": now, "exp": now + 6 * 3600, "scope": "db:read",
    });
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )?)
}

async fn wait_listening(port: u16, child: &mut Child, stderr: &Mutex<String>) -> Res<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            tokio::time::sleep(Duration::from_millis(100)).await;
            return Err(err(format!(
                "pgward (http) exited with {status}:\n{}",
                tail(stderr)
            )));
        }
        if Instant::now() > deadline {
            return Err(err(format!(
                "pgward (http) did not listen within 30 s:\n{}",
                tail(stderr)
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ------------------------------------------------------------------------------------------
// Raw driver
// ------------------------------------------------------------------------------------------

async fn connect(url: &str) -> Res<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

async fn raw_call(client: &tokio_postgres::Client, call: &Call, expected_rows: u64) -> Res<()> {
    let rows = client.query(&call.canonical, &call.params()).await?;
    if rows.len() as u64 != expected_rows {
        return Err(err(format!(
            "raw: {} rows, wanted {expected_rows}",
            rows.len()
        )));
    }
    Ok(())
}

/// The statements a `raw kept` client has prepared on its connection, by text.
type Kept = Mutex<BTreeMap<String, tokio_postgres::Statement>>;

/// The SQL pgward runs, prepared once per text on this connection, then one round trip a call.
async fn raw_kept_call(
    client: &tokio_postgres::Client,
    kept: &Kept,
    call: &Call,
    expected_rows: u64,
) -> Res<()> {
    let known = kept
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&call.run)
        .cloned();
    let stmt = match known {
        Some(s) => s,
        None => {
            let s = client.prepare(&call.run).await?;
            kept.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(call.run.clone(), s.clone());
            s
        }
    };
    // Each value as the type the statement takes (a lifted literal may be `int4`).
    let mut values: Vec<Box<dyn tokio_postgres::types::ToSql + Sync>> = Vec::new();
    for (v, ty) in call.run_params.iter().zip(stmt.params()) {
        if *ty == tokio_postgres::types::Type::INT4 {
            values.push(Box::new(i32::try_from(*v)?));
        } else {
            values.push(Box::new(*v));
        }
    }
    let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
        values.iter().map(|b| &**b).collect();
    let rows = client.query(&stmt, &refs).await?;
    if rows.len() as u64 != expected_rows {
        return Err(err(format!(
            "raw kept: {} rows, wanted {expected_rows}",
            rows.len()
        )));
    }
    Ok(())
}

/// What pgward sends PostgreSQL for one call: its session batch, the checked SQL wrapped in the
/// row-size guard (`pgward::db::guarded`, with the bench's 4 MiB result cap), ROLLBACK.
async fn raw_txn_call(
    client: &tokio_postgres::Client,
    begin: &str,
    call: &Call,
    expected_rows: u64,
) -> Res<()> {
    client.batch_execute(begin).await?;
    let guarded = pgward::db::guarded(&call.canonical, 4194304);
    let rows = client.query(&guarded, &call.params()).await?;
    client.batch_execute("ROLLBACK").await?;
    if rows.len() as u64 != expected_rows {
        return Err(err(format!(
            "raw+txn: {} rows, wanted {expected_rows}",
            rows.len()
        )));
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// Measuring
// ------------------------------------------------------------------------------------------

struct Measured {
    latencies: Vec<Duration>,
    wall: Duration,
    /// CPU time (user + system, all threads) per call of the pgward process, when one served.
    server_cpu_us: Option<f64>,
    /// CPU time per call of this bench process (the client side).
    client_cpu_us: Option<f64>,
    /// CPU time per call of PostgreSQL (the postmaster and all its processes).
    postgres_cpu_us: Option<f64>,
}

/// The postmaster of the bench's cluster, found once the cluster runs.
static POSTMASTER: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

/// The fields of `/proc/<pid>/stat` after the command name (which may hold spaces): the
/// state is `[0]`, the parent `[1]`, utime and stime `[11]` and `[12]`, the reaped children's
/// cutime and cstime `[13]` and `[14]`.
fn stat_fields(pid: &str) -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(
        rest.split_whitespace()
            .skip(1)
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

/// CPU time of PostgreSQL in microseconds: the postmaster with the children it has reaped,
/// and every child still running (its backends, walwriter, checkpointer, ...).
fn postgres_cpu_us() -> Option<u64> {
    let postmaster = *POSTMASTER.get()?;
    let own = stat_fields(&postmaster.to_string())?;
    let mut ticks = own.get(10..14)?.iter().sum::<u64>();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if let Some(f) = stat_fields(pid)
            && f.first() == Some(&u64::from(postmaster))
        {
            ticks += f.get(10).unwrap_or(&0) + f.get(11).unwrap_or(&0);
        }
    }
    Some(ticks * 10_000)
}

/// CPU time (user + system, all threads) of a process, or of this one, in microseconds.
/// `/proc/<pid>/stat` counts in USER_HZ ticks, which are 1/100 s on Linux.
fn cpu_us(pid: Option<u32>) -> Option<u64> {
    let path = pid.map_or_else(
        || "/proc/self/stat".to_string(),
        |p| format!("/proc/{p}/stat"),
    );
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3; utime and stime
    // are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * 10_000)
}

/// CPU of the server (if any) and of this client, sampled at the start of a measured phase.
struct CpuMark {
    server: Option<u32>,
    server_start: Option<u64>,
    client_start: Option<u64>,
    postgres_start: Option<u64>,
}

impl CpuMark {
    fn now(server: Option<u32>) -> CpuMark {
        CpuMark {
            server,
            server_start: server.and_then(|p| cpu_us(Some(p))),
            client_start: cpu_us(None),
            postgres_start: postgres_cpu_us(),
        }
    }

    fn finish(self, latencies: Vec<Duration>, wall: Duration) -> Measured {
        let calls = latencies.len().max(1) as f64;
        let per_call = |start: Option<u64>, end: Option<u64>| match (start, end) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / calls),
            _ => None,
        };
        let server_cpu_us = per_call(self.server_start, self.server.and_then(|p| cpu_us(Some(p))));
        let client_cpu_us = per_call(self.client_start, cpu_us(None));
        let postgres_cpu_us = per_call(self.postgres_start, postgres_cpu_us());
        Measured::sorted(
            latencies,
            wall,
            [server_cpu_us, client_cpu_us, postgres_cpu_us],
        )
    }
}

impl Measured {
    /// One measurement of the calls of all `parts` (a mode's rounds): every latency, the wall
    /// time summed, and the CPU per call over all the calls.
    fn merge(parts: Vec<Measured>) -> Measured {
        let calls: usize = parts.iter().map(|p| p.latencies.len()).sum();
        let per_call = |f: fn(&Measured) -> Option<f64>| -> Option<f64> {
            let mut total = 0.0;
            for p in &parts {
                total += f(p)? * p.latencies.len() as f64;
            }
            Some(total / calls.max(1) as f64)
        };
        let server_cpu_us = per_call(|p| p.server_cpu_us);
        let client_cpu_us = per_call(|p| p.client_cpu_us);
        let postgres_cpu_us = per_call(|p| p.postgres_cpu_us);
        let wall = parts.iter().map(|p| p.wall).sum();
        let latencies = parts.into_iter().flat_map(|p| p.latencies).collect();
        Measured::sorted(
            latencies,
            wall,
            [server_cpu_us, client_cpu_us, postgres_cpu_us],
        )
    }

    /// The measurement of `latencies` over `wall`, with the CPU per call of the server, the
    /// client and PostgreSQL.
    fn sorted(mut latencies: Vec<Duration>, wall: Duration, cpu: [Option<f64>; 3]) -> Measured {
        latencies.sort_unstable();
        let [server_cpu_us, client_cpu_us, postgres_cpu_us] = cpu;
        Measured {
            latencies,
            wall,
            server_cpu_us,
            client_cpu_us,
            postgres_cpu_us,
        }
    }

    /// Nearest-rank percentile, in microseconds.
    fn pct_us(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * self.latencies.len() as f64).ceil() as usize).max(1);
        self.latencies[rank.min(self.latencies.len()) - 1].as_secs_f64() * 1e6
    }
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.wall.as_secs_f64()
    }
}

/// Rounds each workload's calls are split into. The modes take turns, one round each, so every
/// mode meets the same machine: on a shared virtual machine the speed of everything drifts by
/// tens of percent over minutes, and modes run one after the other would each meet another.
const ROUNDS: usize = 8;

fn warmup_of(n: usize) -> usize {
    (n / 5).max(LANES * 4)
}

/// The calls of round `round` of [`ROUNDS`], out of `n`.
fn round_range(n: usize, round: usize) -> std::ops::Range<usize> {
    n * round / ROUNDS..n * (round + 1) / ROUNDS
}

/// The first round warms up (unmeasured calls), the others do not.
fn warmup_in(n: usize, round: usize) -> usize {
    if round == 0 { warmup_of(n) } else { 0 }
}

/// One call at a time: `warmup` unmeasured calls, then the calls of `range`, measured.
async fn sequential(
    range: std::ops::Range<usize>,
    warmup: usize,
    server: Option<u32>,
    mut call: impl AsyncFnMut(usize) -> Res<()>,
) -> Res<Measured> {
    for i in 0..warmup {
        call(i).await?;
    }
    let mut latencies = Vec::with_capacity(range.len());
    let cpu = CpuMark::now(server);
    let start = Instant::now();
    for i in range {
        let t = Instant::now();
        call(i).await?;
        latencies.push(t.elapsed());
    }
    let wall = start.elapsed();
    Ok(cpu.finish(latencies, wall))
}

/// `LANES` tasks, each with one call in flight, sharing the calls of `range` (closed loop);
/// `warmup` calls the same way first.
async fn concurrent<F, Fut>(
    range: std::ops::Range<usize>,
    warmup: usize,
    server: Option<u32>,
    call: Arc<F>,
) -> Res<Measured>
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Res<()>> + Send + 'static,
{
    let mut measured = None;
    for (first, count, record) in [(0, warmup, false), (range.start, range.end, true)] {
        if count <= first && !record {
            continue;
        }
        let next = Arc::new(AtomicUsize::new(first));
        let cpu = CpuMark::now(server);
        let start = Instant::now();
        let mut tasks = Vec::with_capacity(LANES);
        for lane in 0..LANES {
            let call = Arc::clone(&call);
            let next = Arc::clone(&next);
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(count.saturating_sub(first) / LANES + 1);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        return Ok::<_, BoxError>(latencies);
                    }
                    let t = Instant::now();
                    call(lane, i).await?;
                    latencies.push(t.elapsed());
                }
            }));
        }
        let mut all = Vec::with_capacity(count.saturating_sub(first));
        for task in tasks {
            all.extend(task.await??);
        }
        let wall = start.elapsed();
        if record {
            measured = Some(cpu.finish(all, wall));
        }
    }
    measured.ok_or_else(|| err("nothing measured"))
}

/// Samples VmRSS of a process every 10 ms while running; `peak_kib` holds the largest value
/// since the last reset.
struct RssSampler {
    peak_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let peak_kib = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (peak, halt) = (Arc::clone(&peak_kib), Arc::clone(&stop));
        tokio::spawn(async move {
            while !halt.load(Ordering::Relaxed) {
                if let Some(kib) = proc_status_kib(pid, "VmRSS:") {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        RssSampler { peak_kib, stop }
    }
    fn take(&self) -> u64 {
        self.peak_kib.swap(0, Ordering::Relaxed)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

// ------------------------------------------------------------------------------------------
// The run
// ------------------------------------------------------------------------------------------

struct Row {
    workload: &'static str,
    mode: &'static str,
    m: Measured,
    rss_kib: Option<u64>,
}

async fn bench(cluster: &TempCluster, bin: &Path, scale: f64, cold_starts: usize) -> Res<()> {
    // Data and role, exactly as the test fixture loads them.
    let su = cluster.superuser_url();
    run_sql(&su, SCHEMA_SQL).await?;
    run_sql(&su, ROLE_SQL).await?;
    run_sql(
        &su,
        &format!("ALTER ROLE pgward_reader PASSWORD '{READER_PASSWORD}'"),
    )
    .await?;
    let reader_url = cluster.url("pgward_reader", Some(READER_PASSWORD), "postgres");
    // The postmaster is the parent of any backend.
    let su_client = connect(&su).await?;
    let backend: i32 = su_client
        .query_one("SELECT pg_backend_pid()", &[])
        .await?
        .get(0);
    let parent = stat_fields(&backend.to_string())
        .and_then(|f| f.first().copied())
        .and_then(|p| u32::try_from(p).ok())
        .ok_or_else(|| err("cannot read the postmaster's pid"))?;
    let _ = POSTMASTER.set(parent);
    drop(su_client);

    let dir = tempfile::tempdir()?;
    let stdio_cfg = dir.path().join("stdio.toml");
    let stdio_text = config_toml(cluster.port(), &dir.path().join("audit-stdio.jsonl"), None);
    std::fs::write(&stdio_cfg, &stdio_text)?;
    let http_port = free_port()?;
    let http_cfg = dir.path().join("http.toml");
    std::fs::write(
        &http_cfg,
        config_toml(
            cluster.port(),
            &dir.path().join("audit-http.jsonl"),
            Some(http_port),
        ),
    )?;

    let settings = settings_of(&stdio_text)?;
    let begin = pgward::db::begin_sql(&settings.database);
    let workloads = workloads(&settings.policy, scale)?;

    let probe = connect(&reader_url).await?;
    let pg_version: String = probe.query_one("SHOW server_version", &[]).await?.get(0);

    let loadavg_start = loadavg();
    // Cold start first, on a quiet machine: spawn -> the answer to `initialize`.
    eprintln!("load bench: cold starts ...");
    let mut cold = Vec::with_capacity(cold_starts);
    for k in 0..cold_starts {
        // A fresh audit file each time: a first start, not a resume of a long chain.
        let cfg = dir.path().join(format!("cold-{k}.toml"));
        std::fs::write(
            &cfg,
            config_toml(
                cluster.port(),
                &dir.path().join(format!("audit-cold-{k}.jsonl")),
                None,
            ),
        )?;
        let t = Instant::now();
        let (mut child, stderr) = spawn_pgward(bin, &cfg)?;
        let mut io = StdioClient::new(&mut child)?;
        let answer = tokio::time::timeout(Duration::from_secs(20), io.initialize()).await;
        let elapsed = t.elapsed();
        match answer {
            Ok(Ok(_)) => cold.push(elapsed),
            Ok(Err(e)) => return Err(err(format!("cold start: {e}\n{}", tail(&stderr)))),
            Err(_) => return Err(err(format!("cold start timed out\n{}", tail(&stderr)))),
        }
        drop(io);
        stop(child).await;
    }
    cold.sort_unstable();
    let cold_ms = cold[cold.len() / 2].as_secs_f64() * 1e3;
    let cold_min_ms = cold[0].as_secs_f64() * 1e3;
    let cold_max_ms = cold[cold.len() - 1].as_secs_f64() * 1e3;

    // The servers under load.
    eprintln!("load bench: starting pgward over stdio and over HTTP ...");
    let (mut stdio_child, stdio_err) = spawn_pgward(bin, &stdio_cfg)?;
    let mut stdio = StdioClient::new(&mut stdio_child)?;
    tokio::time::timeout(Duration::from_secs(30), stdio.initialize())
        .await
        .map_err(|_| err(format!("stdio initialize timed out\n{}", tail(&stdio_err))))?
        .map_err(|e| err(format!("{e}\n{}", tail(&stdio_err))))?;
    let (mut http_child, http_err) = spawn_pgward(bin, &http_cfg)?;
    wait_listening(http_port, &mut http_child, &http_err).await?;
    let http_pid = http_child.id().ok_or_else(|| err("no pid"))?;
    let stdio_pid = stdio_child.id().ok_or_else(|| err("no pid"))?;
    // reqwest is built without a default TLS provider; plain http needs none, but the
    // builder wants one installed.
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let url = format!("http://127.0.0.1:{http_port}/mcp");
    let http = Arc::new(Http {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(LANES * 2)
            .build()?,
        authorization: format!("Bearer {}", hs256_token(&url)?),
        url,
        next_id: AtomicU64::new(1),
    });

    let kept: Kept = Mutex::new(BTreeMap::new());
    let mut cross_checked = true;
    // Correctness first: every path returns the expected rows, and pgward reports running the
    // canonical SQL the raw loop runs.
    for w in &workloads {
        let c = w.call(0);
        raw_call(&probe, c, w.expected_rows).await?;
        raw_txn_call(&probe, &begin, c, w.expected_rows).await?;
        raw_kept_call(&probe, &kept, c, w.expected_rows).await?;
        let a = stdio
            .call(c)
            .await
            .map_err(|e| err(format!("{e}\n{}", tail(&stdio_err))))?;
        check_answer(&a, w.expected_rows)?;
        let ran = a["result"]["_meta"]["pgward/sql"].as_str();
        cross_checked &= ran.is_some();
        if ran.is_some_and(|s| s != c.canonical) {
            return Err(err(format!(
                "{}: pgward ran `{}`, the bench computed `{}`",
                w.name,
                ran.unwrap_or_default(),
                c.canonical
            )));
        }
        let a = http
            .call(c)
            .await
            .map_err(|e| err(format!("{e}\n{}", tail(&http_err))))?;
        check_answer(&a, w.expected_rows)?;
    }

    let mut raw8 = Vec::with_capacity(LANES);
    for _ in 0..LANES {
        raw8.push(connect(&reader_url).await?);
    }
    let raw8 = Arc::new(raw8);
    let sampler = RssSampler::start(http_pid);
    let workloads = Arc::new(workloads);
    let mut rows: Vec<Row> = Vec::new();
    let mut http8_peak_kib = 0u64;

    for wi in 0..workloads.len() {
        let w = &workloads[wi];
        let exp = w.expected_rows;
        eprintln!(
            "load bench: {} ({} calls per mode) ...",
            w.name, w.iterations
        );
        let mut push = |mode, m, rss_kib| {
            rows.push(Row {
                workload: w.name,
                mode,
                m,
                rss_kib,
            })
        };

        // The modes take turns, round by round (see [`ROUNDS`]).
        let n = w.iterations;
        let mut seq: [Vec<Measured>; 5] = Default::default();
        for r in 0..ROUNDS {
            let (range, warm) = (round_range(n, r), warmup_in(n, r));
            seq[0].push(
                sequential(range.clone(), warm, None, async |i| {
                    raw_call(&probe, w.call(i), exp).await
                })
                .await?,
            );
            seq[1].push(
                sequential(range.clone(), warm, None, async |i| {
                    raw_txn_call(&probe, &begin, w.call(i), exp).await
                })
                .await?,
            );
            seq[2].push(
                sequential(range.clone(), warm, None, async |i| {
                    raw_kept_call(&probe, &kept, w.call(i), exp).await
                })
                .await?,
            );
            seq[3].push(
                sequential(range.clone(), warm, Some(stdio_pid), async |i| {
                    check_answer(&stdio.call(w.call(i)).await?, exp)
                })
                .await
                .map_err(|e| err(format!("{e}\n{}", tail(&stdio_err))))?,
            );
            seq[4].push(
                sequential(range, warm, Some(http_pid), async |i| {
                    check_answer(&http.call(w.call(i)).await?, exp)
                })
                .await
                .map_err(|e| err(format!("{e}\n{}", tail(&http_err))))?,
            );
        }
        let [raw, txn, raw_kept, stdio_seq, http_seq] = seq;
        push("raw seq", Measured::merge(raw), None);
        push("raw+txn seq (info)", Measured::merge(txn), None);
        push("raw kept seq (info)", Measured::merge(raw_kept), None);
        push("stdio seq", Measured::merge(stdio_seq), None);
        push("http seq", Measured::merge(http_seq), None);

        let (clients, ws) = (Arc::clone(&raw8), Arc::clone(&workloads));
        let raw8_call = Arc::new(move |lane: usize, i: usize| {
            let (clients, ws) = (Arc::clone(&clients), Arc::clone(&ws));
            async move {
                let w = &ws[wi];
                raw_call(&clients[lane], w.call(i), w.expected_rows).await
            }
        });
        let (h, ws) = (Arc::clone(&http), Arc::clone(&workloads));
        let http8_call = Arc::new(move |_lane: usize, i: usize| {
            let (h, ws) = (Arc::clone(&h), Arc::clone(&ws));
            async move {
                let w = &ws[wi];
                check_answer(&h.call(w.call(i)).await?, w.expected_rows)
            }
        });
        let (mut raw8_parts, mut http8_parts) = (Vec::new(), Vec::new());
        // pgward idles while the raw driver runs, so the peak over the rounds is the peak
        // under its own load.
        sampler.take();
        for r in 0..ROUNDS {
            let (range, warm) = (round_range(n, r), warmup_in(n, r));
            raw8_parts.push(concurrent(range.clone(), warm, None, Arc::clone(&raw8_call)).await?);
            http8_parts.push(
                concurrent(range, warm, Some(http_pid), Arc::clone(&http8_call))
                    .await
                    .map_err(|e| err(format!("{e}\n{}", tail(&http_err))))?,
            );
        }
        push("raw x8", Measured::merge(raw8_parts), None);
        let peak = sampler.take();
        http8_peak_kib = http8_peak_kib.max(peak);
        push("http x8", Measured::merge(http8_parts), Some(peak));
    }
    drop(sampler);
    let http_hwm = proc_status_kib(http_pid, "VmHWM:").unwrap_or(0);
    let http_rss_now = proc_status_kib(http_pid, "VmRSS:").unwrap_or(0);
    // What the resident memory is: the binary's code and read-only data mapped from the file,
    // or pgward's own heap and stacks.
    let http_rss_file = proc_status_kib(http_pid, "RssFile:").unwrap_or(0);
    let http_rss_anon = proc_status_kib(http_pid, "RssAnon:").unwrap_or(0);
    let stdio_hwm = proc_status_kib(stdio_pid, "VmHWM:").unwrap_or(0);

    drop(stdio);
    stop(stdio_child).await;
    stop(http_child).await;

    report(&Report {
        bin,
        loadavg_start: &loadavg_start,
        cross_checked,
        pg_version: &pg_version,
        scale,
        workloads: &workloads,
        rows: &rows,
        http8_peak_kib,
        http_hwm,
        http_rss_now,
        http_rss_file,
        http_rss_anon,
        stdio_hwm,
        cold_ms,
        cold_min_ms,
        cold_max_ms,
        cold_starts,
    });
    Ok(())
}

/// The 1-, 5- and 15-minute load averages.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

struct Report<'a> {
    bin: &'a Path,
    loadavg_start: &'a str,
    cross_checked: bool,
    pg_version: &'a str,
    scale: f64,
    workloads: &'a [Workload],
    rows: &'a [Row],
    http8_peak_kib: u64,
    http_hwm: u64,
    http_rss_now: u64,
    http_rss_file: u64,
    http_rss_anon: u64,
    stdio_hwm: u64,
    cold_ms: f64,
    cold_min_ms: f64,
    cold_max_ms: f64,
    cold_starts: usize,
}

fn mark(ok: bool) -> &'static str {
    if ok { "pass" } else { "FAIL" }
}

fn report(r: &Report<'_>) {
    let find = |workload: &str, mode: &str| {
        r.rows
            .iter()
            .find(|x| x.workload == workload && x.mode == mode)
            .map(|x| &x.m)
    };
    let mut out = String::new();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let _ = writeln!(out, "\npgward load bench");
    let _ = writeln!(
        out,
        "  binary     {} ({})",
        r.bin.display(),
        if std::env::var_os("PGWARD_BIN").is_some() {
            "from PGWARD_BIN"
        } else {
            "built by cargo for this bench: bench profile = release settings"
        }
    );
    let _ = writeln!(
        out,
        "  machine    {cores} cores shared by this client, pgward and PostgreSQL {}",
        r.pg_version
    );
    let _ = writeln!(
        out,
        "  pgward     pool_size {POOL_SIZE}, max_rows 1000, default log filter (info, MCP library at warn), audit ON: {}",
        if audit_to_stderr() {
            "stderr sink only (PGWARD_BENCH_AUDIT=stderr, diagnostic; stderr drained by the bench)"
        } else {
            "JSON Lines file sink, flushed per event, with its .head file (stderr sink off)"
        }
    );
    let _ = writeln!(
        out,
        "  clients    raw = tokio-postgres `query(sql, params)` per call as pgward_reader (prepare + execute, no transaction);"
    );
    let _ = writeln!(
        out,
        "             raw+txn = the same plus pgward's BEGIN READ ONLY/SET LOCAL batch, row-size guard and ROLLBACK;"
    );
    let _ = writeln!(
        out,
        "             raw kept = the SQL pgward runs (literals lifted), each text prepared once, then one round trip a call (default plan mode);"
    );
    let _ = writeln!(
        out,
        "             stdio = JSON-RPC lines over the child's pipes; http = stateless {STATELESS} POSTs with an HS256 bearer token;"
    );
    let _ = writeln!(
        out,
        "             x8 = {LANES} calls in flight (8 connections / 8 tasks); every answer is parsed and its row count checked"
    );
    let _ = writeln!(
        out,
        "  rounds     each workload's calls in {ROUNDS} rounds; the sequential modes, then raw x8 and http x8, take turns round by round"
    );
    let _ = writeln!(out, "  scale      {} (PGWARD_BENCH_SCALE)", r.scale);
    let _ = writeln!(
        out,
        "  loadavg    {} at the start, {} at the end (other work on the machine skews every figure)",
        r.loadavg_start,
        loadavg()
    );
    let _ = writeln!(
        out,
        "\n  workload SQL (as the model sends it; the raw loop runs pgward's canonical form{}):",
        if r.cross_checked {
            ", checked equal to the SQL pgward reports running"
        } else {
            "; pgward did not report its SQL, so it was not cross-checked"
        }
    );
    for w in r.workloads {
        let _ = writeln!(
            out,
            "    {:<13} {} rows  {}",
            w.name,
            w.expected_rows,
            if w.calls.len() > 1 {
                format!(
                    "{}  (id varies over {} keys)",
                    w.call(0).shown,
                    w.calls.len()
                )
            } else {
                w.call(0).shown.clone()
            }
        );
    }
    let _ = writeln!(
        out,
        "\n  {:<13} {:<19} {:>6} {:>9} {:>9} {:>9} {:>11} {:>11} {:>11} {:>8}",
        "workload",
        "mode",
        "calls",
        "p50 µs",
        "p99 µs",
        "calls/s",
        "pgward CPU",
        "client CPU",
        "postgres",
        "rss MiB"
    );
    let _ = writeln!(
        out,
        "  {:<13} {:<19} {:>6} {:>9} {:>9} {:>9} {:>11} {:>11} {:>11}",
        "", "", "", "", "", "", "µs/call", "µs/call", "CPU µs/call"
    );
    let _ = writeln!(out, "  {}", "-".repeat(115));
    let mut last = "";
    for row in r.rows {
        let name = if row.workload == last {
            ""
        } else {
            row.workload
        };
        last = row.workload;
        let _ = writeln!(
            out,
            "  {:<13} {:<19} {:>6} {:>9.0} {:>9.0} {:>9.0} {:>11} {:>11} {:>11} {:>8}",
            name,
            row.mode,
            row.m.latencies.len(),
            row.m.pct_us(0.50),
            row.m.pct_us(0.99),
            row.m.rate(),
            row.m
                .server_cpu_us
                .map_or(String::new(), |c| format!("{c:.0}")),
            row.m
                .client_cpu_us
                .map_or(String::new(), |c| format!("{c:.0}")),
            row.m
                .postgres_cpu_us
                .map_or(String::new(), |c| format!("{c:.0}")),
            row.rss_kib
                .map_or(String::new(), |k| format!("{:.1}", mib(k)))
        );
    }

    let _ = writeln!(out, "\n  overhead over the raw driver");
    let _ = writeln!(
        out,
        "  {:<13} {:>16} {:>16} {:>18} {:>22}",
        "workload", "stdio p50 - raw", "http p50 - raw", "http x8 / raw x8", "stdio p50 - raw kept"
    );
    for w in r.workloads {
        let (Some(raw), Some(kept), Some(stdio), Some(http), Some(raw8), Some(http8)) = (
            find(w.name, "raw seq"),
            find(w.name, "raw kept seq (info)"),
            find(w.name, "stdio seq"),
            find(w.name, "http seq"),
            find(w.name, "raw x8"),
            find(w.name, "http x8"),
        ) else {
            continue;
        };
        let _ = writeln!(
            out,
            "  {:<13} {:>13.0} µs {:>13.0} µs {:>17.0}% {:>19.0} µs",
            w.name,
            stdio.pct_us(0.5) - raw.pct_us(0.5),
            http.pct_us(0.5) - raw.pct_us(0.5),
            100.0 * http8.rate() / raw8.rate(),
            stdio.pct_us(0.5) - kept.pct_us(0.5)
        );
    }

    let _ = writeln!(
        out,
        "\n  targets (issue 6)                                    measured     target     mark   comparable server"
    );
    let _ = writeln!(out, "  {}", "-".repeat(104));
    // The point lookup two ways: model SQL through `query` (a new text for each id, which
    // pgward runs as one statement with the id lifted out as a parameter), and the `get_order`
    // lookup tool (one statement, the id bound as a parameter).
    for name in ["point_lookup", "point_tool"] {
        let (Some(raw), Some(stdio)) = (find(name, "raw seq"), find(name, "stdio seq")) else {
            continue;
        };
        let overhead = stdio.pct_us(0.5) - raw.pct_us(0.5);
        let _ = writeln!(
            out,
            "  {:<50} {:>8.0} µs  {:>9}  {:>5}",
            format!("{name}: stdio p50 overhead over raw p50"),
            overhead,
            "< 150 µs",
            mark(overhead < TARGET_OVERHEAD_US)
        );
        let p50_ms = stdio.pct_us(0.5) / 1e3;
        let _ = writeln!(
            out,
            "  {:<50} {:>8.3} ms  {:>9}  {:>5}   {RIVAL_P50_MS} ms ({})",
            format!("{name}: stdio p50 (absolute)"),
            p50_ms,
            "",
            "",
            if p50_ms < RIVAL_P50_MS {
                "beaten"
            } else {
                "NOT beaten"
            }
        );
    }
    for w in r.workloads {
        if let (Some(raw8), Some(http8)) = (find(w.name, "raw x8"), find(w.name, "http x8")) {
            let share = 100.0 * http8.rate() / raw8.rate();
            let _ = writeln!(
                out,
                "  {:<50} {:>9.0} %  {:>9}  {:>5}",
                format!("{}: http x8 throughput / raw x8", w.name),
                share,
                ">= 60 %",
                mark(share >= TARGET_HTTP_SHARE)
            );
        }
    }
    let rss = mib(r.http_hwm.max(r.http8_peak_kib));
    let _ = writeln!(
        out,
        "  {:<50} {:>7.1} MiB  {:>9}  {:>5}   {RIVAL_RSS_MIB} MB ({})",
        "resident memory, http server, peak (VmHWM)",
        rss,
        "<= 16 MB",
        mark(rss <= TARGET_RSS_MIB),
        if rss < RIVAL_RSS_MIB {
            "beaten"
        } else {
            "NOT beaten"
        }
    );
    let _ = writeln!(
        out,
        "  {:<50} {:>8.1} ms  {:>9}  {:>5}   {RIVAL_COLD_MS} ms ({})",
        format!(
            "cold start to first MCP answer (median of {})",
            r.cold_starts
        ),
        r.cold_ms,
        "< 20 ms",
        mark(r.cold_ms < TARGET_COLD_MS),
        if r.cold_ms < RIVAL_COLD_MS {
            "beaten"
        } else {
            "NOT beaten"
        }
    );
    let _ = writeln!(
        out,
        "\n  CPU: user + system time of the pgward process (all threads), of this bench process and of\n  PostgreSQL (the postmaster and all its processes) over each measured phase, divided by its\n  calls (/proc/<pid>/stat, 10 ms ticks)"
    );
    let _ = writeln!(
        out,
        "  memory: http server VmRSS sampled every 10 ms under x8 load peaked at {:.1} MiB, VmHWM {:.1} MiB, VmRSS at the end {:.1} MiB ({:.1} MiB mapped from files: the code of the binary and its libraries; {:.1} MiB heap and stacks); stdio server VmHWM {:.1} MiB",
        mib(r.http8_peak_kib),
        mib(r.http_hwm),
        mib(r.http_rss_now),
        mib(r.http_rss_file),
        mib(r.http_rss_anon),
        mib(r.stdio_hwm)
    );
    let _ = writeln!(
        out,
        "  cold start: min {:.1} ms, median {:.1} ms, max {:.1} ms (includes connecting to PostgreSQL and the start-up posture and catalog checks; pgward runs without cargo's LD_LIBRARY_PATH, as a deployed binary does)",
        r.cold_min_ms, r.cold_ms, r.cold_max_ms
    );
    println!("{out}");
}
