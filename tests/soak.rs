//! A test-sized soak run: several clients send mixed allowed and refused calls to the real
//! binary over HTTP for a bounded time (`PGWARD_SOAK_SECS`, default 45) while PostgreSQL is
//! stopped and started again once. pgward must not crash; every request must get an answer
//! (a result, or a clean tool error while the database is down); the pool must recover; no
//! connection may leak; and the audit log must hold exactly one event per call.

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
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fixture;
use serde_json::{Value, json};

/// What one client saw.
#[derive(Default, Debug)]
struct Tally {
    /// Outcome label → count.
    outcomes: BTreeMap<String, u64>,
    /// Tool calls that reached pgward's pipeline (200 answers to tools/call).
    tool_calls: u64,
    /// Successful calls after the database came back.
    ok_after_restart: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_load_survives_a_database_restart() {
    let secs: u64 = std::env::var("PGWARD_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(45);
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let server = Arc::new(
        http::HttpServer::start(
            &f,
            http::Knobs {
                rate_per_principal: 10_000,
                failed_auth_per_minute: 100_000,
                max_in_flight: Some(16),
                rate_global: Some(100_000),
                extra_toml: format!("[audit]\nstderr = false\nfile = \"{}\"\n", audit.display()),
                ..http::Knobs::default()
            },
        )
        .await,
    );
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let restarted_at = Arc::new(std::sync::Mutex::new(None::<Instant>));

    let mut clients = Vec::new();
    for c in 0..4u64 {
        let server = Arc::clone(&server);
        let restarted_at = Arc::clone(&restarted_at);
        clients.push(tokio::spawn(async move {
            let token = server.token(&format!("soak-{c}"), "db:read db:admin");
            let mut tally = Tally::default();
            let mut i = 0u64;
            while Instant::now() < deadline {
                i += 1;
                let (label, reply) = match i % 5 {
                    0 => (
                        "query",
                        server
                            .call_tool(&token, "query", json!({"sql": format!("SELECT id, total FROM orders WHERE id = {}", i % 40 + 1)}))
                            .await,
                    ),
                    1 => (
                        "refused",
                        server
                            .call_tool(&token, "query", json!({"sql": "SELECT * FROM staff_passwords"}))
                            .await,
                    ),
                    2 => (
                        "lookup",
                        server
                            .call_tool(&token, "orders_for_customer", json!({"customer_id": i % 20 + 1}))
                            .await,
                    ),
                    3 => (
                        "aggregate",
                        server
                            .call_tool(&token, "query", json!({"sql": "SELECT status, count(*) FROM orders GROUP BY status"}))
                            .await,
                    ),
                    _ => ("bad_token", server.list_tools("not-a-token").await),
                };
                let outcome = match (label, reply.status.as_u16()) {
                    ("bad_token", 401) => "401".to_string(),
                    (_, 200) => {
                        tally.tool_calls += 1;
                        let result = &reply.json()["result"];
                        if result["isError"] == json!(true) {
                            let code = result["structuredContent"]["error"]["code"]
                                .as_str()
                                .unwrap_or("?")
                                .to_string();
                            format!("{label}:{code}")
                        } else {
                            if restarted_at.lock().unwrap().is_some() && label != "refused" {
                                tally.ok_after_restart += 1;
                            }
                            format!("{label}:ok")
                        }
                    }
                    (_, status) => format!("{label}:http {status}: {}", reply.body),
                };
                *tally.outcomes.entry(outcome).or_default() += 1;
            }
            tally
        }));
    }

    // A third of the way in, the database goes away for a few seconds.
    tokio::time::sleep(Duration::from_secs(secs / 3)).await;
    let fx = Arc::clone(&f);
    tokio::task::spawn_blocking(move || fx.stop_database())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let fx = Arc::clone(&f);
    tokio::task::spawn_blocking(move || fx.start_database())
        .await
        .unwrap();
    *restarted_at.lock().unwrap() = Some(Instant::now());

    let mut total = Tally::default();
    for c in clients {
        let t = c.await.unwrap();
        total.tool_calls += t.tool_calls;
        total.ok_after_restart += t.ok_after_restart;
        for (k, v) in t.outcomes {
            *total.outcomes.entry(k).or_default() += v;
        }
    }
    eprintln!("soak outcomes: {:#?}", total.outcomes);

    // Every answer is one pgward gives by design: results, refusals, 401s, and while the
    // database was down, clean tool errors. Never a transport failure or a 5xx.
    let allowed = |k: &str| {
        k == "401"
            || k.ends_with(":ok")
            || k == "refused:table_not_allowed"
            || k.ends_with(":database_unavailable")
            || k.ends_with(":database_error")
    };
    let odd: Vec<&String> = total.outcomes.keys().filter(|k| !allowed(k)).collect();
    assert!(
        odd.is_empty(),
        "unexpected answers: {odd:?} in {:#?}",
        total.outcomes
    );
    assert!(
        total
            .outcomes
            .keys()
            .any(|k| k.ends_with(":database_unavailable") || k.ends_with(":database_error")),
        "the restart was never noticed: {:#?}",
        total.outcomes
    );
    // The pool recovered: plenty of successful calls after the database came back.
    assert!(total.ok_after_restart >= 20, "{total:?}");

    // pgward is still up, still answering.
    let mut server =
        Arc::try_unwrap(server).unwrap_or_else(|_| panic!("clients still hold the server"));
    assert!(server.child.try_wait().unwrap().is_none(), "pgward exited");
    let token = server.token("after", "db:read");
    let r = server
        .call_tool(
            &token,
            "query",
            json!({"sql": "SELECT count(*) AS n FROM orders"}),
        )
        .await;
    assert_eq!(r.json()["result"]["isError"], json!(false), "{r:?}");

    // No leaked connections: at most the pool's size of pgward's connections remain.
    let admin = f.superuser().await;
    let n: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = 'pgward_reader' AND application_name = 'pgward'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(n <= 2, "{n} connections open (pool_size is 2)");

    // Exactly one audit event per tool call that reached pgward, plus the last one.
    let _ = server.child.kill().await;
    let events: Vec<Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let tool_events = events.iter().filter(|e| e["kind"] == "tool_call").count() as u64;
    assert_eq!(tool_events, total.tool_calls + 1);
    let auth_events = events
        .iter()
        .filter(|e| e["kind"] == "auth_failure")
        .count() as u64;
    assert_eq!(auth_events, total.outcomes.get("401").copied().unwrap_or(0));
}
