//! The command line: the offline `check` verdict, `config check`, and `pgward demo`, run as a
//! user runs them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_pgward");

fn pgward(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env_remove("PGWARD_DB_PASSWORD")
        .env_remove("PGWARD_HASH_KEY")
        .output()
        .unwrap()
}

#[test]
fn check_prints_the_canonical_sql_and_exits_0() {
    let out = pgward(&[
        "check",
        "--config",
        "config/example.toml",
        "SELECT * FROM customers WHERE country = 'SE'",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "SELECT \"customers\".\"id\", \"customers\".\"full_name\", \"customers\".\"email\", \
         \"customers\".\"phone\", \"customers\".\"country\", \"customers\".\"created_at\", \
         \"customers\".\"lifetime_value\" FROM \"public\".\"customers\" WHERE country = 'SE' LIMIT 1001\n"
    );
}

#[test]
fn check_prints_every_violation_and_exits_1() {
    let out = pgward(&[
        "check",
        "--config",
        "config/example.toml",
        "SELECT ssn, pg_sleep(1) FROM customers WHERE email LIKE 'a%'",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let codes: Vec<&str> = text.lines().map(|l| l.split(':').next().unwrap()).collect();
    assert_eq!(
        codes,
        [
            "column_not_allowed",
            "function_not_allowed",
            "redacted_column_use"
        ],
        "{text}"
    );
}

#[test]
fn config_check_names_the_missing_secret() {
    let out = pgward(&["config", "check", "--config", "config/example.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("database.url: environment variable `PGWARD_DB_PASSWORD` is not set"),
        "{err}"
    );
    assert!(
        err.contains("redaction.hash_key: environment variable `PGWARD_HASH_KEY` is not set"),
        "{err}"
    );
    let ok = Command::new(BIN)
        .args(["config", "check", "--config", "config/example.toml"])
        .env("PGWARD_DB_PASSWORD", "x")
        .env("PGWARD_HASH_KEY", "y")
        .output()
        .unwrap();
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    assert_eq!(
        String::from_utf8(ok.stdout).unwrap(),
        "config ok: 3 table(s), 1 lookup tool(s)\n"
    );
}

#[test]
fn a_missing_config_file_is_a_clear_error() {
    let out = pgward(&["serve", "--config", "/nonexistent/pgward.toml"]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("cannot read config file `/nonexistent/pgward.toml`: entity not found"),
        "{err}"
    );
}

#[test]
fn demo_sets_up_and_prints_the_client_configuration() {
    let out = pgward(&["demo", "--no-serve"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stdout.is_empty(), "stdout belongs to MCP");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("\"mcpServers\""), "{err}");
    assert!(err.contains("claude mcp add pgward-demo --"), "{err}");
    assert!(
        err.contains("public.customers, public.orders, public.products, public.projects, public.support_tickets, public.tasks, public.tenant_notes"),
        "{err}"
    );
}

#[tokio::test]
async fn demo_serves_the_sample_data_over_stdio() {
    let mut child = tokio::process::Command::new(BIN)
        .arg("demo")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut send = async |v: Value| stdin.write_all(format!("{v}\n").as_bytes()).await.unwrap();
    send(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "cli-test", "version": "0"}}}),
    )
    .await;
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
    send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "query", "arguments": {"sql": "SELECT id, body FROM support_tickets WHERE id = 42"}}}))
    .await;
    send(
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "query", "arguments": {"sql": "SELECT secret_key FROM internal.api_keys"}}}),
    )
    .await;
    // The demo caller is tenant acme: globex's rows are invisible, through the row filter
    // (projects) and through row-level security (tenant_notes).
    send(json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {
        "name": "query", "arguments": {"sql": "SELECT name FROM projects UNION ALL SELECT body FROM tenant_notes ORDER BY 1"}}}))
    .await;
    let mut got = std::collections::BTreeMap::new();
    while got.len() < 4 {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the demo answers")
            .unwrap()
            .expect("stdout open");
        let msg: Value = serde_json::from_str(&line).unwrap();
        if let Some(id) = msg["id"].as_u64() {
            got.insert(id, msg);
        }
    }
    assert_eq!(
        got[&1]["result"]["serverInfo"]["name"],
        json!("pgward-demo")
    );
    let ticket = &got[&2]["result"];
    assert_eq!(ticket["isError"], json!(false), "{ticket}");
    let warnings = ticket["structuredContent"]["injection_warnings"]
        .as_array()
        .unwrap();
    assert_eq!(warnings.len(), 1, "{ticket}");
    assert_eq!(warnings[0]["column"], json!("body"));
    let hidden = &got[&3]["result"];
    assert_eq!(hidden["isError"], json!(true));
    assert_eq!(
        hidden["structuredContent"]["error"]["code"],
        json!("table_not_allowed")
    );
    let tenant = &got[&4]["result"];
    assert_eq!(tenant["isError"], json!(false), "{tenant}");
    assert_eq!(
        tenant["structuredContent"]["rows"],
        json!([
            ["Giant magnet"],
            ["Rocket skates"],
            ["acme: quarterly plan"],
            ["acme: supplier list"]
        ]),
        "{tenant}"
    );
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the demo exits when the client leaves")
        .unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn a_bad_worker_thread_count_stops_start_up_with_a_clear_error() {
    for bad in ["0", "two", "65", "-1", ""] {
        let out = Command::new(BIN)
            .args(["serve", "--config", "config/example.toml"])
            .env("PGWARD_WORKER_THREADS", bad)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{bad:?}: {out:?}");
        assert_eq!(
            String::from_utf8(out.stderr).unwrap(),
            format!(
                "pgward: PGWARD_WORKER_THREADS must be a whole number from 1 to 64, got `{bad}`\n"
            ),
            "{bad:?}"
        );
    }
    // A valid count gets past it, to the next problem: the missing database password.
    let out = Command::new(BIN)
        .args(["serve", "--config", "config/example.toml"])
        .env("PGWARD_WORKER_THREADS", "4")
        .env_remove("PGWARD_DB_PASSWORD")
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!stderr.contains("PGWARD_WORKER_THREADS"), "{stderr}");
    assert!(stderr.contains("PGWARD_DB_PASSWORD"), "{stderr}");
}

/// The audit database's TLS flags apply to the table; with files they would be ignored, so
/// they are refused. Without them, files verify as before (here: one that does not exist).
#[test]
fn audit_verify_takes_tls_flags_only_for_the_table() {
    let out = pgward(&["audit", "verify", "no-such.jsonl", "--tls", "verify-full"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stderr).unwrap().trim(),
        "pgward: --tls and --tls-ca-file apply only with --postgres-env"
    );
    let out = pgward(&["audit", "verify", "no-such.jsonl", "--tls", "maybe"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("invalid value 'maybe' for '--tls <TLS>'"),
    );
    let out = pgward(&["audit", "verify", "no-such.jsonl"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("no-such.jsonl"),
    );
}
