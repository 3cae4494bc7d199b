//! The real binary over stdio with raw JSON-RPC: protocol revisions (2026-07-28 stateless and
//! the 2025-11-25 / 2025-06-18 handshakes), cancellation of a running query by the client, and
//! the statement timeout as the model sees it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

use std::time::{Duration, Instant};

use common::{TestConfig, fixture, spawn_pgward};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdin, ChildStdout};

/// A query the policy accepts that runs for minutes (8e9 joined rows); `marker` tells this
/// test's backend apart from other tests running at the same time.
fn slow_sql(marker: &str) -> String {
    format!("SELECT count(*) AS {marker} FROM orders a, orders b, orders c")
}

struct Raw {
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    child: tokio::process::Child,
}

impl Raw {
    fn start(path: &std::path::Path) -> Raw {
        let (mut child, stderr) = spawn_pgward(path);
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Raw {
            stderr,
            stdin,
            lines,
            child,
        }
    }

    async fn send(&mut self, msg: Value) {
        self.stdin
            .write_all(format!("{msg}\n").as_bytes())
            .await
            .unwrap();
    }

    /// The response with this id (notifications and other responses are skipped).
    async fn response(&mut self, id: u64) -> Value {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(20), self.lines.next_line())
                .await
                .expect("a response in time")
                .unwrap()
                .expect("stdout open");
            let msg: Value = serde_json::from_str(&line).unwrap();
            if msg.get("id").and_then(Value::as_u64) == Some(id) {
                return msg;
            }
        }
    }

    async fn initialize(&mut self, version: &str) -> Value {
        self.send(
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": version, "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"}}}),
        )
        .await;
        let r = self.response(1).await;
        self.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        r
    }
}

#[tokio::test]
async fn handshake_revisions_are_echoed_and_older_ones_are_not_offered() {
    let f = fixture();
    let (_dir, path) = f.write_config(&TestConfig::default());
    for (asked, agreed) in [
        ("2025-06-18", "2025-06-18"),
        ("2025-11-25", "2025-11-25"),
        // Older revisions have no structured output or annotations: pgward answers with the
        // newest handshake revision it implements, and the client decides.
        ("2024-11-05", "2025-11-25"),
    ] {
        let mut raw = Raw::start(&path);
        let init = raw.initialize(asked).await;
        assert_eq!(init["result"]["protocolVersion"], json!(agreed), "{init}");
        raw.send(
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "query", "arguments": {"sql": "SELECT id FROM orders ORDER BY id LIMIT 1"}}}),
        )
        .await;
        let r = raw.response(2).await;
        assert_eq!(
            r["result"]["structuredContent"]["rows"],
            json!([[1]]),
            "{r}"
        );
        drop(raw.stdin);
        raw.child.wait().await.unwrap();
    }
}

#[tokio::test]
async fn stateless_2026_07_28_clients_discover_and_call() {
    let f = fixture();
    let (_dir, path) = f.write_config(&TestConfig::default());
    let mut raw = Raw::start(&path);
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"},
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    raw.send(
        json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": meta}}),
    )
    .await;
    let d = raw.response(1).await;
    assert_eq!(
        d["result"]["supportedVersions"],
        json!(["2025-06-18", "2025-11-25", "2026-07-28"]),
        "{d}"
    );
    assert_eq!(d["result"]["capabilities"], json!({"tools": {}}), "{d}");
    raw.send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"_meta": meta}}))
        .await;
    let list = raw.response(2).await;
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "query",
            "list_tables",
            "describe_table",
            "orders_for_customer"
        ]
    );
    raw.send(
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"_meta": meta,
        "name": "query", "arguments": {"sql": "SELECT id FROM orders ORDER BY id LIMIT 2"}}}),
    )
    .await;
    let r = raw.response(3).await;
    assert_eq!(r["result"]["resultType"], json!("complete"), "{r}");
    assert_eq!(
        r["result"]["structuredContent"]["rows"],
        json!([[1], [2]]),
        "{r}"
    );
}

/// Active backends of the reader role running the slow probe.
async fn running_probes(admin: &tokio_postgres::Client, marker: &str) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = 'pgward_reader' \
             AND state = 'active' AND query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid() \
             AND backend_type = 'client backend'",
            &[&marker],
        )
        .await
        .unwrap()
        .get(0)
}

async fn wait_for_probes(admin: &tokio_postgres::Client, marker: &str, want: i64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if running_probes(admin, marker).await == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn a_cancelled_call_cancels_the_query_on_the_server() {
    let f = fixture();
    let admin = f.superuser().await;
    let cfg = TestConfig {
        statement_timeout_ms: 120_000,
        ..TestConfig::default()
    };
    let (_dir, path) = f.write_config(&cfg);
    let mut raw = Raw::start(&path);
    raw.initialize("2025-11-25").await;
    raw.send(
        json!({"jsonrpc": "2.0", "id": 10, "method": "tools/call", "params": {
        "name": "query", "arguments": {"sql": slow_sql("cancel_probe")}}}),
    )
    .await;
    assert!(
        wait_for_probes(&admin, "cancel_probe", 1).await,
        "the slow query never started on the server"
    );
    raw.send(
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {
        "requestId": 10, "reason": "the user gave up"}}),
    )
    .await;
    let started = Instant::now();
    assert!(
        wait_for_probes(&admin, "cancel_probe", 0).await,
        "the query kept running on the server after the client cancelled; server log:\n{}",
        raw.stderr.lock().unwrap()
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // The server and its pool still work.
    raw.send(
        json!({"jsonrpc": "2.0", "id": 11, "method": "tools/call", "params": {
        "name": "query", "arguments": {"sql": "SELECT id FROM orders ORDER BY id LIMIT 1"}}}),
    )
    .await;
    let r = raw.response(11).await;
    assert_eq!(
        r["result"]["structuredContent"]["rows"],
        json!([[1]]),
        "{r}"
    );
    // No connection was left inside a transaction (other tests' calls may be mid-flight for a
    // moment, so this polls briefly).
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let idle_in_tx: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = 'pgward_reader' \
                 AND state LIKE 'idle in transaction%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if idle_in_tx == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{idle_in_tx} connection(s) idle in transaction"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_statement_timeout_stops_a_long_query_with_a_clear_code() {
    let f = fixture();
    let cfg = TestConfig {
        statement_timeout_ms: 300,
        ..TestConfig::default()
    };
    let (_dir, path) = f.write_config(&cfg);
    let mut raw = Raw::start(&path);
    raw.initialize("2025-11-25").await;
    let started = Instant::now();
    raw.send(
        json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {
        "name": "query", "arguments": {"sql": slow_sql("timeout_probe")}}}),
    )
    .await;
    let r = raw.response(5).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(r["result"]["isError"], json!(true), "{r}");
    assert_eq!(
        r["result"]["structuredContent"]["error"]["code"],
        json!("query_timeout"),
        "{r}"
    );
    let text = r["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("57014"), "{text}");
}

#[tokio::test]
async fn a_call_cancelled_before_its_query_starts_never_runs_on() {
    let f = fixture();
    let admin = f.superuser().await;
    let cfg = TestConfig {
        statement_timeout_ms: 120_000,
        ..TestConfig::default()
    };
    let (_dir, path) = f.write_config(&cfg);
    let mut raw = Raw::start(&path);
    raw.initialize("2025-11-25").await;
    // The cancellation follows the call at once, racing the query's start.
    raw.send(
        json!({"jsonrpc": "2.0", "id": 20, "method": "tools/call", "params": {
        "name": "query", "arguments": {"sql": slow_sql("early_probe")}}}),
    )
    .await;
    raw.send(
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {
        "requestId": 20, "reason": "changed my mind"}}),
    )
    .await;
    // Give a wrongly started query time to show up, then require that none is running.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        wait_for_probes(&admin, "early_probe", 0).await,
        "a cancelled call's query is running; server log:\n{}",
        raw.stderr.lock().unwrap()
    );
}
