//! Live config reload of the real binary: SIGHUP (or a changed file, with
//! `server.watch_config`) loads and validates the config again; a valid one replaces the
//! running one for new calls (allowlists, tools, limits, API keys), an invalid one, or one that
//! changes what only a restart can apply, leaves the running config in force, logged and
//! counted.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;
#[path = "common/http.rs"]
mod http;

use std::time::{Duration, Instant};

use common::{TestConfig, error_code, fixture, text_of};
use serde_json::json;

fn hangup(child: &tokio::process::Child) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits until `stderr()` holds `n` occurrences of `needle`.
async fn wait_for(stderr: impl Fn() -> String, needle: &str, n: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = stderr();
        if log.matches(needle).count() >= n {
            return log;
        }
        assert!(Instant::now() < deadline, "no `{needle}` (x{n}) in:\n{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const EXTRA_TOOL: &str = r#"
[[tools]]
name = "product_by_id"
description = "One product"
sql = "SELECT id, name FROM products WHERE id = $1"

[[tools.params]]
name = "id"
type = "integer"
"#;

#[tokio::test]
async fn sighup_swaps_a_valid_config_and_keeps_the_old_one_otherwise() {
    let f = fixture();
    let base = TestConfig::default();
    let (dir, path) = f.write_config(&base);
    let server = common::Server::spawn(dir, &path).await;
    let log = || server.stderr();

    let r = server
        .call(
            "query",
            json!({"sql": "SELECT id FROM products ORDER BY id LIMIT 1"}),
        )
        .await;
    assert_eq!(r.is_error, Some(false), "{}", text_of(&r));
    let r = server.call("product_by_id", json!({"id": 1})).await;
    assert_eq!(
        error_code(r.structured_content.as_ref().unwrap()),
        Some("unknown_tool")
    );

    // A valid new config: a lookup tool more, a smaller row cap.
    let v2 = TestConfig {
        max_rows: 2,
        extra: EXTRA_TOOL.into(),
        ..TestConfig::default()
    };
    std::fs::write(&path, v2.toml(&f)).unwrap();
    hangup(&server.child);
    wait_for(log, "config reloaded", 1).await;
    let r = server.call("product_by_id", json!({"id": 1})).await;
    assert_eq!(r.is_error, Some(false), "{}", text_of(&r));
    let r = server
        .call("query", json!({"sql": "SELECT id FROM orders ORDER BY id"}))
        .await;
    let s = r.structured_content.unwrap();
    assert_eq!(s["row_count"], json!(2), "{s}");
    assert_eq!(s["truncated"], json!(true), "{s}");

    // An invalid config (a table that does not exist): refused, the running one stays.
    let broken = TestConfig {
        max_rows: 2,
        extra: format!(
            "{EXTRA_TOOL}\n[[tables]]\nname = \"public.no_such_table\"\ncolumns = [\"a\"]\n"
        ),
        ..TestConfig::default()
    };
    std::fs::write(&path, broken.toml(&f)).unwrap();
    hangup(&server.child);
    let log_now = wait_for(log, "config reload failed", 1).await;
    assert!(log_now.contains("no_such_table"), "{log_now}");
    let r = server.call("product_by_id", json!({"id": 2})).await;
    assert_eq!(r.is_error, Some(false), "{}", text_of(&r));

    // A change only a restart can apply (the pool size): refused, named.
    let restart = TestConfig {
        max_rows: 2,
        pool_size: 3,
        extra: EXTRA_TOOL.into(),
        ..TestConfig::default()
    };
    std::fs::write(&path, restart.toml(&f)).unwrap();
    hangup(&server.child);
    let log_now = wait_for(log, "config reload failed", 2).await;
    assert!(
        log_now.contains("database: changed, and only a restart applies it"),
        "{log_now}"
    );
    let r = server
        .call("query", json!({"sql": "SELECT id FROM orders ORDER BY id"}))
        .await;
    assert_eq!(r.structured_content.unwrap()["row_count"], json!(2));

    // Back to the first config: the tool is gone again.
    std::fs::write(&path, base.toml(&f)).unwrap();
    hangup(&server.child);
    wait_for(log, "config reloaded", 2).await;
    let r = server.call("product_by_id", json!({"id": 1})).await;
    assert_eq!(
        error_code(r.structured_content.as_ref().unwrap()),
        Some("unknown_tool")
    );
}

#[tokio::test]
async fn a_watched_file_reloads_without_a_signal_and_api_keys_follow() {
    let f = fixture();
    let admin_port = http::free_port();
    let port = http::free_port();
    let knobs = http::Knobs {
        extra_toml: format!("[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n"),
        ..http::Knobs::default()
    };
    let (dir, path) = http::write_http_config(&f, port, &knobs);
    // `[server]` is already in the harness config: the watch flag goes into it.
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        "[server]\n",
        "[server]\nwatch_config = true\n",
        1,
    );
    std::fs::write(&path, &text).unwrap();
    let server = http::HttpServer::start_with(port, dir, &path).await;

    let key = http::API_KEY;
    let ok = server.list_tools(key).await;
    assert_eq!(ok.status, reqwest::StatusCode::OK);
    let new_key = "pgw_reloaded_key_0123456789abcdef0123456789abcdef";
    let r = server.list_tools(new_key).await;
    assert_eq!(r.status, reqwest::StatusCode::UNAUTHORIZED);

    // Rotate: the new key replaces the old one in the file; no signal is sent.
    let rotated = text.replace(
        &http::sha256_hex(key.as_bytes()),
        &http::sha256_hex(new_key.as_bytes()),
    );
    assert_ne!(rotated, text);
    std::fs::write(&path, &rotated).unwrap();
    wait_for(|| server.stderr(), "config reloaded", 1).await;
    assert_eq!(
        server.list_tools(new_key).await.status,
        reqwest::StatusCode::OK
    );
    assert_eq!(
        server.list_tools(key).await.status,
        reqwest::StatusCode::UNAUTHORIZED
    );
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let metrics = reqwest::get(format!("http://127.0.0.1:{admin_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("pgward_config_reloads_total{result=\"ok\"} 1"),
        "{metrics}"
    );
}
