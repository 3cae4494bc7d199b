//! The admin listener of the real binary: `/metrics` is Prometheus text whose counters move
//! exactly as calls, refusals, failed authentications and rate limits happen; `/healthz` says
//! the process is up; `/readyz` says whether the database answers and the audit log can be
//! written, and turns 503 when the audit sink breaks.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;
#[path = "common/http.rs"]
mod http;

use std::collections::BTreeMap;

use common::{TestConfig, fixture};
use serde_json::{Value, json};

/// GET `path` on the admin port: status, content type and body.
async fn admin_get(port: u16, path: &str) -> (u16, String, String) {
    // reqwest is built without a default TLS provider (pgward configures its own).
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let r = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let ctype = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ctype, r.text().await.unwrap())
}

/// Parses the Prometheus text format strictly: every sample belongs to a family declared by
/// `# HELP` and `# TYPE` before it; values are numbers. Returns `series -> value`, the series
/// written `name{k="v",...}` with labels sorted.
fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    let mut declared: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind),
                "bad type: {line}"
            );
            declared.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment: {line}");
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.strip_suffix('}').unwrap()),
            None => (series, ""),
        };
        let family = declared
            .keys()
            .filter(|f| name.starts_with(f.as_str()))
            .max_by_key(|f| f.len())
            .unwrap_or_else(|| panic!("sample before its # TYPE: {line}"));
        let suffix = &name[family.len()..];
        assert!(
            ["", "_total", "_bucket", "_sum", "_count"].contains(&suffix),
            "{line}"
        );
        let mut pairs: Vec<String> = if labels.is_empty() {
            vec![]
        } else {
            labels
                .split("\",")
                .map(|p| p.trim_end_matches('"').to_string() + "\"")
                .collect()
        };
        pairs.sort();
        samples.insert(format!("{name}{{{}}}", pairs.join(",")), value);
    }
    samples
}

fn get(m: &BTreeMap<String, f64>, series: &str) -> f64 {
    m.get(series).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_move_with_calls_refusals_and_failed_authentication() {
    let f = fixture();
    let admin_port = http::free_port();
    let server = http::HttpServer::start(
        &f,
        http::Knobs {
            extra_toml: format!("[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n"),
            rate_per_principal: 3,
            failed_auth_per_minute: 10,
            ..http::Knobs::default()
        },
    )
    .await;

    let (status, ctype, body) = admin_get(admin_port, "/metrics").await;
    assert_eq!(status, 200);
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    let before = parse_prometheus(&body);
    let ok = r#"pgward_tool_calls_total{outcome="success",tool="query"}"#;
    let denied = r#"pgward_tool_calls_total{outcome="denied",tool="query"}"#;
    assert_eq!(get(&before, ok), 0.0);

    let token = server.token("ann", "db:read");
    for _ in 0..2 {
        let r = server
            .call_tool(
                &token,
                "query",
                json!({"sql": "SELECT id FROM orders ORDER BY id LIMIT 3"}),
            )
            .await;
        assert_eq!(r.status, reqwest::StatusCode::OK);
    }
    let r = server
        .call_tool(
            &token,
            "query",
            json!({"sql": "SELECT * FROM staff_passwords"}),
        )
        .await;
    assert_eq!(r.status, reqwest::StatusCode::OK);
    let forged = http::hs256(
        &server.claims("mallory", "db:read"),
        b"not-the-secret-0123456789abcdef!!",
    );
    assert_eq!(
        server.list_tools(&forged).await.status,
        reqwest::StatusCode::UNAUTHORIZED
    );
    // Over the per-principal rate (3 per second, burst 3): at least one 429.
    let mut limited = 0.0;
    for _ in 0..5 {
        if server.list_tools(&token).await.status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            limited += 1.0;
        }
    }
    assert!(limited >= 1.0);

    let (_, _, body) = admin_get(admin_port, "/metrics").await;
    let after = parse_prometheus(&body);
    assert_eq!(get(&after, ok), 2.0, "{body}");
    assert_eq!(get(&after, denied), 1.0, "{body}");
    assert_eq!(
        get(&after, r#"pgward_refusals_total{code="table_not_allowed"}"#),
        1.0
    );
    assert_eq!(
        get(&after, r#"pgward_rows_returned_total{tool="query"}"#),
        6.0
    );
    assert!(get(&after, r#"pgward_response_bytes_total{tool="query"}"#) > 0.0);
    assert_eq!(
        get(
            &after,
            r#"pgward_tool_call_duration_seconds_count{tool="query"}"#
        ),
        3.0
    );
    assert_eq!(
        get(
            &after,
            r#"pgward_auth_failures_total{reason="bad_signature"}"#
        ),
        1.0
    );
    assert_eq!(
        get(
            &after,
            r#"pgward_rate_limited_total{reason="rate_limited"}"#
        ),
        limited
    );
    assert!(get(&after, "pgward_db_pool_size{}") >= 1.0, "{body}");
    // No principal, token or SQL ever becomes a label.
    for leak in ["ann", "mallory", "staff_passwords", token.as_str()] {
        assert!(!body.contains(leak), "`{leak}` in /metrics");
    }

    let (status, _, body) = admin_get(admin_port, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    let (status, _, body) = admin_get(admin_port, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"database": "ok", "audit": "ok"})
    );
    let (status, _, _) = admin_get(admin_port, "/nothing").await;
    assert_eq!(status, 404);

    // `pgward health`, the container health check, agrees.
    let health = |url: String| {
        std::process::Command::new(env!("CARGO_BIN_EXE_pgward"))
            .args(["health", "--url", &url])
            .output()
            .unwrap()
    };
    let ok = health(format!("http://127.0.0.1:{admin_port}/healthz"));
    assert!(ok.status.success(), "{ok:?}");
    let missing = health(format!("http://127.0.0.1:{admin_port}/nothing"));
    assert_eq!(missing.status.code(), Some(1), "{missing:?}");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("answered 404"));
    let closed = health(format!("http://127.0.0.1:{}/healthz", http::free_port()));
    assert_eq!(closed.status.code(), Some(1), "{closed:?}");
}

#[tokio::test]
async fn readyz_turns_503_when_the_audit_sink_breaks() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let admin_port = http::free_port();
    let server = f
        .serve(&TestConfig {
            extra: format!(
                "[audit]\nstderr = false\nfile = \"{}\"\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n",
                file.display()
            ),
            ..TestConfig::default()
        })
        .await;
    server.call("list_tables", json!({})).await;
    let (status, _, _) = admin_get(admin_port, "/readyz").await;
    assert_eq!(status, 200);

    let head = file.with_extension("jsonl.head");
    std::fs::remove_file(&head).unwrap();
    std::fs::create_dir(&head).unwrap();
    server.call("list_tables", json!({})).await;
    let (status, _, body) = admin_get(admin_port, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"database": "ok", "audit": "unwritable"})
    );
    let (_, _, metrics) = admin_get(admin_port, "/metrics").await;
    assert_eq!(
        get(
            &parse_prometheus(&metrics),
            r#"pgward_audit_sink_failures_total{sink="file"}"#
        ),
        1.0
    );
    // Repaired: the next event is written and the probe recovers.
    std::fs::remove_dir(&head).unwrap();
    server.call("list_tables", json!({})).await;
    let (status, _, _) = admin_get(admin_port, "/readyz").await;
    assert_eq!(status, 200);
}
