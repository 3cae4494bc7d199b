//! The audit trail end to end: the real binary over stdio and HTTP writes exactly one event per
//! tool call (allowed or refused), per failed authentication and per rate-limit refusal, with
//! the documented fields and no secret; the chain verifies with `pgward audit verify`, which
//! names the first edited, deleted, reordered or truncated event; `fail_closed` withholds an
//! answer whose event cannot be written, `fail_open` serves it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;
#[path = "common/http.rs"]
mod http;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{HASH_KEY, READER_PASSWORD, TestConfig, error_code, fixture, sql_args};
use serde_json::{Value, json};
use sha2::Digest;

/// `[audit]` writing only to `file`.
fn audit_toml(file: &Path, extra: &str) -> String {
    format!(
        "[audit]\nstderr = false\nfile = \"{}\"\n{extra}\n",
        file.display()
    )
}

/// `pgward serve --config cfg` over stdio with extra environment (the harness passes only the
/// test secrets), and an MCP client on its stdio. Its stderr is piped when `keep_stderr`.
async fn serve_with_env(
    cfg: &Path,
    env: &[(&str, &str)],
    keep_stderr: bool,
) -> (
    tokio::process::Child,
    rmcp::service::RunningService<rmcp::RoleClient, ()>,
) {
    use rmcp::ServiceExt;
    let mut cmd = http::pgward_command(&["serve", "--config", cfg.to_str().unwrap()]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(if keep_stderr {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .spawn()
        .unwrap();
    let (stdout, stdin) = (child.stdout.take().unwrap(), child.stdin.take().unwrap());
    let client = ().serve((stdout, stdin)).await.unwrap();
    (child, client)
}

fn events(file: &Path) -> Vec<Value> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `pgward audit verify ARGS`: exit code and stdout.
fn verify(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pgward"))
        .args(["audit", "verify"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap() + &String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test]
async fn every_tool_call_leaves_one_event_with_its_fields_and_no_secret() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let server = f
        .serve(&TestConfig {
            extra: audit_toml(&file, ""),
            ..TestConfig::default()
        })
        .await;

    // An allowed query with a distinctive literal; a refused one (hidden table); a lookup
    // tool; the schema tools; an unknown tool; bad arguments; a redacted column.
    let allowed = server
        .call(
            "query",
            json!({"sql": "SELECT id FROM orders WHERE status <> 'literal-s3cr3t-4242' ORDER BY id LIMIT 2"}),
        )
        .await;
    assert_eq!(allowed.is_error, Some(false));
    let refused = server
        .call(
            "query",
            Value::Object(sql_args(
                "SELECT password FROM staff_passwords WHERE login = 'admin-literal-77'",
            )),
        )
        .await;
    assert_eq!(refused.is_error, Some(true));
    let lookup = server
        .call("orders_for_customer", json!({"customer_id": 1}))
        .await;
    assert_eq!(lookup.is_error, Some(false));
    server.call("list_tables", json!({})).await;
    server
        .call("describe_table", json!({"table": "customers"}))
        .await;
    let unknown = server.call("no_such_tool", json!({"x": 1})).await;
    assert_eq!(
        error_code(unknown.structured_content.as_ref().unwrap()),
        Some("unknown_tool")
    );
    server
        .call("orders_for_customer", json!({"customer_id": "one"}))
        .await;
    let masked = server
        .call(
            "query",
            json!({"sql": "SELECT email FROM customers WHERE id = 1"}),
        )
        .await;
    assert_eq!(masked.is_error, Some(false));

    let ev = events(&file);
    assert_eq!(ev.len(), 8, "one event per call: {ev:#?}");
    for (i, e) in ev.iter().enumerate() {
        assert_eq!(e["kind"], json!("tool_call"));
        assert_eq!(e["seq"], json!(i + 1));
        assert_eq!(e["client"], json!("stdio"));
        assert_eq!(
            e["principal"],
            json!({"subject": "stdio:local", "issuer": null, "method": "stdio"})
        );
        assert_eq!(e["mac"], json!("sha256"));
        assert!(e["ts"].as_str().unwrap().ends_with('Z'), "{e}");
        assert!(e["duration_ms"].is_u64() && e["response_bytes"].as_u64().unwrap() > 0);
        assert_eq!(e["request_id"].as_str().unwrap().len(), 24);
        // One stdio session per process.
        assert_eq!(e["session_id"], ev[0]["session_id"]);
    }
    let ids: std::collections::BTreeSet<&str> = ev
        .iter()
        .map(|e| e["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 8, "request ids are unique");

    let q = &ev[0];
    assert_eq!(q["tool"], json!("query"));
    assert_eq!(q["decision"], json!("success"));
    assert_eq!(q["codes"], json!([]));
    assert_eq!(q["rows"], json!(2));
    assert_eq!(q["truncated"], json!(false));
    assert_eq!(q["arguments"], json!({}));
    let sql = q["sql"].as_str().unwrap();
    assert!(sql.contains("FROM \"public\".\"orders\""), "{sql}");
    assert!(!sql.contains("literal-s3cr3t"), "{sql}");
    let fp = q["sql_fingerprint"].as_str().unwrap();
    assert!(
        fp.len() == 16 && fp.bytes().all(|b| b.is_ascii_hexdigit()),
        "{fp}"
    );

    let r = &ev[1];
    assert_eq!(r["decision"], json!("denied"));
    assert_eq!(
        r["codes"],
        json!(["table_not_allowed", "column_not_allowed"])
    );
    assert_eq!(r["rows"], json!(0));

    let l = &ev[2];
    assert_eq!(l["tool"], json!("orders_for_customer"));
    assert_eq!(l["arguments"], json!({"customer_id": 1}));
    assert!(l["sql"].as_str().unwrap().contains("$1"), "{l}");
    assert_eq!(l["decision"], json!("success"));

    assert_eq!(ev[3]["tool"], json!("list_tables"));
    assert_eq!(ev[4]["arguments"], json!({"table": "customers"}));
    assert_eq!(ev[5]["tool"], json!("no_such_tool"));
    assert_eq!(ev[5]["codes"], json!(["unknown_tool"]));
    assert_eq!(ev[6]["codes"], json!(["invalid_arguments"]));
    assert_eq!(ev[6]["decision"], json!("denied"));
    // Both calls of the lookup tool record its SQL, fingerprinted once at load.
    assert_eq!(ev[6]["tool"], l["tool"]);
    assert_eq!(ev[6]["sql"], l["sql"]);
    assert_eq!(ev[6]["sql_fingerprint"], l["sql_fingerprint"]);
    assert_ne!(l["sql_fingerprint"], q["sql_fingerprint"]);
    assert_eq!(l["sql_fingerprint"].as_str().map(str::len), Some(16), "{l}");
    // Each fingerprint is the SHA-256 prefix of the normalized SQL recorded beside it.
    for e in [q, l] {
        let normalized = e["sql"].as_str().unwrap();
        let digest = sha2::Sha256::digest(normalized.as_bytes());
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(e["sql_fingerprint"], json!(hex), "{e}");
    }
    assert_eq!(ev[7]["rows"], json!(1));

    // Nothing secret in the file's bytes: no literal the model wrote, no redacted value, no
    // credential of the process.
    let bytes = std::fs::read_to_string(&file).unwrap();
    let admin = f.superuser().await;
    let email: String = admin
        .query_one("SELECT email FROM customers WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    for secret in [
        "literal-s3cr3t-4242",
        "admin-literal-77",
        email.as_str(),
        READER_PASSWORD,
        HASH_KEY,
    ] {
        assert!(
            !bytes.contains(secret),
            "`{secret}` leaked into the audit log"
        );
    }

    // The chain verifies, and so does its recorded head.
    let (code, out) = verify(&[file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("ok: 8 event(s), seq 1..8, head "), "{out}");
    assert!(out.trim_end().ends_with(", the recorded head"), "{out}");
}

/// Writes `lines` (each with its newline) to `name` next to the original, and its head too.
fn tampered(dir: &Path, original: &Path, name: &str, text: String) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::copy(
        original.with_extension("jsonl.head"),
        path.with_extension("jsonl.head"),
    )
    .unwrap();
    path
}

#[tokio::test]
async fn verify_names_the_first_edited_deleted_reordered_or_truncated_event() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    {
        let server = f
            .serve(&TestConfig {
                extra: audit_toml(&file, ""),
                ..TestConfig::default()
            })
            .await;
        for id in 1..=5 {
            server
                .call("orders_for_customer", json!({"customer_id": id}))
                .await;
        }
    }
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5);
    let join = |ls: &[&str]| ls.iter().map(|l| format!("{l}\n")).collect::<String>();
    let p = |path: &PathBuf| path.to_str().unwrap().to_string();

    // Edited: event 3 claims another customer.
    let edited = lines[2].replace("\"customer_id\":3", "\"customer_id\":4");
    assert_ne!(edited, lines[2]);
    let path = tampered(
        dir.path(),
        &file,
        "edited.jsonl",
        join(&[lines[0], lines[1], &edited, lines[3], lines[4]]),
    );
    let (code, out) = verify(&[&p(&path)]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("edited.jsonl:3: edited at seq 3"), "{out}");

    // Deleted: event 2 is gone.
    let path = tampered(
        dir.path(),
        &file,
        "deleted.jsonl",
        join(&[lines[0], lines[2], lines[3], lines[4]]),
    );
    let (code, out) = verify(&[&p(&path)]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("deleted.jsonl:2: deleted at seq 3"), "{out}");

    // Reordered: events 3 and 4 swapped.
    let path = tampered(
        dir.path(),
        &file,
        "reordered.jsonl",
        join(&[lines[0], lines[1], lines[3], lines[2], lines[4]]),
    );
    let (code, out) = verify(&[&p(&path)]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("reordered.jsonl:3: reordered at seq 4"),
        "{out}"
    );

    // Truncated: the last line cut mid-way.
    let mut cut = join(&lines[..4]);
    cut.push_str(&lines[4][..lines[4].len() / 2]);
    let path = tampered(dir.path(), &file, "cut.jsonl", cut);
    let (code, out) = verify(&[&p(&path)]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("cut.jsonl:5: truncated"), "{out}");

    // The last event deleted cleanly: only the recorded head shows it.
    let path = tampered(dir.path(), &file, "short.jsonl", join(&lines[..4]));
    let (code, out) = verify(&[&p(&path)]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("short.jsonl:5: tail truncated at seq 5"),
        "{out}"
    );
    let (code, out) = verify(&[&p(&path), "--no-head"]);
    assert_eq!(code, 0, "{out}");

    // A restart resumes the chain after the last event.
    {
        let server = f
            .serve(&TestConfig {
                extra: audit_toml(&file, ""),
                ..TestConfig::default()
            })
            .await;
        server.call("list_tables", json!({})).await;
    }
    let ev = events(&file);
    assert_eq!(ev.len(), 6);
    assert_eq!(ev[5]["seq"], json!(6));
    assert_eq!(ev[5]["prev"], ev[4]["hash"]);
    assert_eq!(verify(&[&p(&file)]).0, 0);

    // pgward will not write on after a torn last line.
    let torn = dir.path().join("torn.jsonl");
    std::fs::write(&torn, &text[..text.len() - 10]).unwrap();
    let (cfg_dir, cfg) = f.write_config(&TestConfig {
        extra: audit_toml(&torn, ""),
        ..TestConfig::default()
    });
    let out = http::pgward_command(&["serve", "--config", cfg.to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    drop(cfg_dir);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the last line is incomplete (a torn write?)"),
        "{err}"
    );
}

#[tokio::test]
async fn keyed_chains_need_their_key() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let (cfg_dir, cfg) = f.write_config(&TestConfig {
        extra: audit_toml(&file, "hmac_key = \"${PGWARD_TEST_AUDIT_KEY}\""),
        ..TestConfig::default()
    });
    let (mut child, client) = serve_with_env(
        &cfg,
        &[(
            "PGWARD_TEST_AUDIT_KEY",
            "audit-key-0123456789abcdef0123456789",
        )],
        false,
    )
    .await;
    {
        client
            .call_tool(rmcp::model::CallToolRequestParams::new("list_tables"))
            .await
            .unwrap();
        client.cancel().await.unwrap();
    }
    let _ = child.kill().await;
    drop(cfg_dir);
    assert_eq!(events(&file)[0]["mac"], json!("hmac-sha256"));
    let (code, out) = verify(&[file.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("key required"), "{out}");
    let out = Command::new(env!("CARGO_BIN_EXE_pgward"))
        .args([
            "audit",
            "verify",
            "--key-env",
            "AUDIT_KEY",
            file.to_str().unwrap(),
        ])
        .env("AUDIT_KEY", "audit-key-0123456789abcdef0123456789")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = Command::new(env!("CARGO_BIN_EXE_pgward"))
        .args([
            "audit",
            "verify",
            "--key-env",
            "AUDIT_KEY",
            file.to_str().unwrap(),
        ])
        .env("AUDIT_KEY", "another-key-0123456789abcdef012345678")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

#[tokio::test]
async fn fail_closed_withholds_answers_it_cannot_audit_and_fail_open_serves_them() {
    let f = fixture();
    for policy in ["fail_closed", "fail_open"] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("audit.jsonl");
        let server = f
            .serve(&TestConfig {
                extra: audit_toml(&file, &format!("failure_policy = \"{policy}\"")),
                ..TestConfig::default()
            })
            .await;
        let ok = server
            .call("query", json!({"sql": "SELECT count(*) AS n FROM orders"}))
            .await;
        assert_eq!(ok.is_error, Some(false));
        // The sink breaks: its head file can no longer be replaced (a directory is in the
        // way; permission bits would not stop root).
        let head = file.with_extension("jsonl.head");
        std::fs::remove_file(&head).unwrap();
        std::fs::create_dir(&head).unwrap();
        let r = server
            .call("query", json!({"sql": "SELECT count(*) AS n FROM orders"}))
            .await;
        if policy == "fail_closed" {
            assert_eq!(r.is_error, Some(true), "{r:?}");
            assert_eq!(
                error_code(r.structured_content.as_ref().unwrap()),
                Some("audit_unavailable")
            );
            assert!(!common::text_of(&r).contains("\"n\""), "{r:?}");
        } else {
            assert_eq!(r.is_error, Some(false), "{r:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(
            server.stderr().contains("audit event not written"),
            "{}",
            server.stderr()
        );
    }
}

#[tokio::test]
async fn http_refusals_are_audited_without_credentials() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let server = http::HttpServer::start(
        &f,
        http::Knobs {
            extra_toml: audit_toml(&file, ""),
            rate_per_principal: 2,
            failed_auth_per_minute: 2,
            ..http::Knobs::default()
        },
    )
    .await;
    let reader = server.token("ann", "db:read");
    // Authorized call, then a call of the admin tool: refused at the gate with 403.
    let ok = server
        .call_tool(&reader, "query", json!({"sql": "SELECT 1 AS one"}))
        .await;
    assert_eq!(ok.status, reqwest::StatusCode::OK);
    assert!(!ok.header("x-request-id").is_empty());
    let denied = server
        .call_tool(&reader, "admin_orders", json!({"id": 1}))
        .await;
    assert_eq!(denied.status, reqwest::StatusCode::FORBIDDEN);
    // Over the rate: 429.
    let mut limited = 0;
    for _ in 0..4 {
        if server.list_tools(&reader).await.status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            limited += 1;
        }
    }
    assert!(limited >= 1);
    // Failed authentication: a forged token and no token, from the same address, then the
    // throttle.
    let forged = http::hs256(
        &server.claims("mallory", "db:admin"),
        b"not-the-secret-0123456789abcdef!!",
    );
    for token in [Some(forged.as_str()), None, None] {
        let _ = server
            .post(
                token,
                &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
                &[],
            )
            .await;
    }

    let ev = events(&file);
    let kinds: Vec<&str> = ev.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    let tool_calls: Vec<&Value> = ev.iter().filter(|e| e["kind"] == "tool_call").collect();
    assert_eq!(tool_calls.len(), 2, "{kinds:?}");
    assert_eq!(tool_calls[0]["decision"], json!("success"));
    assert_eq!(tool_calls[0]["principal"]["subject"], json!("ann"));
    assert_eq!(tool_calls[0]["principal"]["issuer"], json!(http::ISSUER));
    assert_eq!(tool_calls[0]["principal"]["method"], json!("jwt"));
    assert_eq!(tool_calls[0]["client"], json!("127.0.0.1"));
    assert_eq!(
        tool_calls[0]["request_id"],
        json!(ok.header("x-request-id"))
    );
    assert_eq!(tool_calls[1]["tool"], json!("admin_orders"));
    assert_eq!(tool_calls[1]["decision"], json!("denied"));
    assert_eq!(tool_calls[1]["codes"], json!(["insufficient_scope"]));
    let limited_events: Vec<&Value> = ev.iter().filter(|e| e["kind"] == "rate_limited").collect();
    assert_eq!(limited_events.len(), limited + 1, "{kinds:?}");
    assert_eq!(limited_events[0]["codes"], json!(["rate_limited"]));
    assert_eq!(limited_events[0]["principal"]["subject"], json!("ann"));
    let auth: Vec<&Value> = ev.iter().filter(|e| e["kind"] == "auth_failure").collect();
    assert_eq!(auth.len(), 2, "{kinds:?}");
    assert_eq!(auth[0]["codes"], json!(["bad_signature"]));
    assert_eq!(auth[1]["codes"], json!(["missing_token"]));
    assert!(auth[0].get("principal").is_none());
    assert_eq!(
        limited_events.last().unwrap()["codes"],
        json!(["failed_auth_throttled"])
    );
    let bytes = std::fs::read_to_string(&file).unwrap();
    for secret in [reader.as_str(), forged.as_str(), http::JWT_SECRET] {
        assert!(
            !bytes.contains(secret),
            "a credential leaked into the audit log"
        );
    }
    assert_eq!(verify(&[file.to_str().unwrap()]).0, 0);
}

#[tokio::test]
async fn json_log_lines_carry_the_request_id_of_their_audit_event() {
    use tokio::io::AsyncReadExt;
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let (cfg_dir, cfg) = f.write_config(&TestConfig {
        extra: format!(
            "[audit]\nstderr = true\nfile = \"{}\"\nfailure_policy = \"fail_open\"\n",
            file.display()
        ),
        ..TestConfig::default()
    });
    let (mut child, client) = serve_with_env(&cfg, &[("PGWARD_LOG_FORMAT", "json")], true).await;
    let mut stderr = child.stderr.take().unwrap();
    // Break the file sink: the call is still served (fail_open), its event still reaches
    // stderr, and the error is logged inside the call.
    let head = file.with_extension("jsonl.head");
    client
        .call_tool(rmcp::model::CallToolRequestParams::new("list_tables"))
        .await
        .unwrap();
    std::fs::remove_file(&head).unwrap();
    std::fs::create_dir(&head).unwrap();
    client
        .call_tool(rmcp::model::CallToolRequestParams::new("list_tables"))
        .await
        .unwrap();
    client.cancel().await.unwrap();
    let _ = child.kill().await;
    drop(cfg_dir);
    let mut text = String::new();
    stderr.read_to_string(&mut text).await.unwrap();
    // Every stderr line is JSON: log lines and audit events alike.
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let events: Vec<&Value> = lines.iter().filter(|l| l["kind"] == "tool_call").collect();
    assert_eq!(events.len(), 2, "{text}");
    let failure = lines
        .iter()
        .find(|l| l["fields"]["message"] == "audit event not written")
        .unwrap_or_else(|| panic!("no failure log line: {text}"));
    assert_eq!(failure["level"], json!("ERROR"));
    assert_eq!(
        failure["span"]["request_id"], events[1]["request_id"],
        "{text}"
    );
}

/// `pgward ARGS` with extra environment; exit code and stdout+stderr.
async fn pgward_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = http::pgward_command(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test]
async fn the_postgres_sink_holds_the_same_chain_through_an_insert_only_role() {
    let f = fixture();
    let admin = f.superuser().await;
    for sql in [
        "DROP DATABASE IF EXISTS audit_e2e",
        "CREATE DATABASE audit_e2e",
    ] {
        admin.batch_execute(sql).await.unwrap();
    }
    let su = f.url_on("postgres", "audit_e2e");
    // `pgward migrate` applies the schema and roles, twice without harm.
    for _ in 0..2 {
        let (code, out) = pgward_env(&["migrate"], &[("PGWARD_MIGRATE_URL", su.as_str())]).await;
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("audit schema applied"), "{out}");
    }
    let (code, out) = pgward_env(&["migrate", "--print"], &[]).await;
    assert_eq!(code, 0);
    assert!(out.contains("pgward_audit_writer"), "{out}");
    admin
        .batch_execute(
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'audit_e2e_w') THEN
                 CREATE ROLE audit_e2e_w LOGIN IN ROLE pgward_audit_writer; END IF;
               IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'audit_e2e_r') THEN
                 CREATE ROLE audit_e2e_r LOGIN IN ROLE pgward_audit_reader; END IF;
             END $$",
        )
        .await
        .unwrap();
    let writer = f.url_on("audit_e2e_w", "audit_e2e");
    let reader = f.url_on("audit_e2e_r", "audit_e2e");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let extra = format!(
        "[audit]\nstderr = false\nfile = \"{}\"\npostgres_url = \"${{PGWARD_TEST_AUDIT_DB}}\"\n",
        file.display()
    );
    let (cfg_dir, cfg) = f.write_config(&TestConfig {
        extra: extra.clone(),
        ..TestConfig::default()
    });

    // A role that could rewrite the table is refused at start-up.
    let (code, out) = pgward_env(
        &["serve", "--config", cfg.to_str().unwrap()],
        &[("PGWARD_TEST_AUDIT_DB", su.as_str())],
    )
    .await;
    assert_ne!(code, 0);
    assert!(
        out.contains("audit.postgres_url: the role can superuser, owner"),
        "{out}"
    );
    assert!(!out.contains(&su), "the URL leaked: {out}");

    let (mut child, client) =
        serve_with_env(&cfg, &[("PGWARD_TEST_AUDIT_DB", writer.as_str())], false).await;
    for id in 1..=3 {
        let mut p = rmcp::model::CallToolRequestParams::new("orders_for_customer");
        p = p.with_arguments(json!({"customer_id": id}).as_object().unwrap().clone());
        client.call_tool(p).await.unwrap();
    }
    client.cancel().await.unwrap();
    let _ = child.kill().await;
    drop(cfg_dir);

    // The table holds exactly the file's lines, and both verify.
    let rows = admin_rows(&f).await;
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(rows, text.lines().map(str::to_string).collect::<Vec<_>>());
    let (code, out) = pgward_env(
        &["audit", "verify", "--postgres-env", "AUDIT_READER"],
        &[("AUDIT_READER", reader.as_str())],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("ok: 3 event(s), seq 1..3"), "{out}");
    // The table has no head of its own: verify says so.
    assert!(
        out.trim_end()
            .ends_with("(no recorded head was read: an end cut off would not show)"),
        "{out}"
    );
    // Checked against the file sink's recorded head, too.
    let head = file.with_extension("jsonl.head");
    let (code, out) = pgward_env(
        &[
            "audit",
            "verify",
            "--postgres-env",
            "AUDIT_READER",
            "--head",
            head.to_str().unwrap(),
        ],
        &[("AUDIT_READER", reader.as_str())],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.trim_end().ends_with(", the recorded head"), "{out}");

    // Someone with more rights than pgward edits a row: verify names it.
    let db = tokio_postgres::connect(&su, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(db.1);
    db.0.execute(
        "UPDATE pgward_audit.events SET line = replace(line, '\"customer_id\":2', '\"customer_id\":9') WHERE seq = 2",
        &[],
    )
    .await
    .unwrap();
    let (code, out) = pgward_env(
        &["audit", "verify", "--postgres-env", "AUDIT_READER"],
        &[("AUDIT_READER", reader.as_str())],
    )
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("postgres:2: edited at seq 2"), "{out}");
}

/// The audit table's lines in seq order, read as the superuser.
async fn admin_rows(f: &common::Fixture) -> Vec<String> {
    let (client, conn) =
        tokio_postgres::connect(&f.url_on("postgres", "audit_e2e"), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(conn);
    client
        .query("SELECT line FROM pgward_audit.events ORDER BY seq", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn rotation_keeps_one_chain_across_files() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let server = f
        .serve(&TestConfig {
            extra: audit_toml(&file, "file_max_bytes = 65536\nfile_keep = 3"),
            ..TestConfig::default()
        })
        .await;
    // Each event is a few hundred bytes: enough calls to rotate at least twice.
    let mut calls = 0;
    while !dir.path().join("audit.jsonl.2").exists() {
        server.call("list_tables", json!({})).await;
        calls += 1;
        assert!(calls < 5000, "never rotated");
    }
    drop(server);
    let rotated: Vec<PathBuf> = ["audit.jsonl.2", "audit.jsonl.1", "audit.jsonl"]
        .iter()
        .map(|n| dir.path().join(n))
        .collect();
    for p in &rotated {
        assert!(
            std::fs::metadata(p).unwrap().len() <= 65536,
            "{p:?} over the cap"
        );
    }
    let total: usize = rotated.iter().map(|p| events(p).len()).sum();
    assert_eq!(total, calls);
    // The newest file continues the chain of the one before it.
    let last_of_1 = events(&rotated[1]).last().unwrap().clone();
    let first_of_0 = events(&rotated[2])
        .first()
        .cloned()
        .unwrap_or_else(|| panic!("empty newest file"));
    assert_eq!(first_of_0["prev"], last_of_1["hash"]);
    let args: Vec<&str> = rotated.iter().map(|p| p.to_str().unwrap()).collect();
    let (code, out) = verify(&args);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with(&format!("ok: {calls} event(s), seq 1..{calls}")),
        "{out}"
    );
    // Without the oldest file the chain does not start at seq 1: named, unless the operator
    // says retention removed it.
    let (code, out) = verify(&args[1..]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("audit.jsonl.1:1: deleted"), "{out}");
    let mut tail_args = args[1..].to_vec();
    tail_args.push("--from-anywhere");
    assert_eq!(verify(&tail_args).0, 0);
}
