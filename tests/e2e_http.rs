//! The real binary over Streamable HTTP, driven with raw JSON-RPC: the gate in front of MCP
//! (authentication with its challenges, token checks, the failed-authentication throttle,
//! scopes, rate limits, Host/Origin checks, body size), what errors may never carry, the
//! protected resource metadata, both protocol styles without sessions, and the refusal to
//! serve plain HTTP on the network.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;
#[path = "common/http.rs"]
mod http;

use std::time::Duration;

use common::{HASH_KEY, READER_PASSWORD, fixture};
use http::{
    API_KEY, HttpServer, JWT_SECRET, Knobs, LEGACY, RSA_ISSUER, Reply, STATELESS, hs256, now,
    pgward_command, rs256, rsa_keys, unsigned, write_http_config,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

const ROWS_1_2: &str = "SELECT id FROM orders ORDER BY id LIMIT 2";

/// The body of every refusal by the gate: a JSON-RPC error without details.
fn gate_error(message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32001, "message": message}})
}

/// A successful `query` answer with rows `[[1],[2]]`.
fn assert_rows_1_2(r: &Reply) {
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let v = r.json();
    assert_eq!(v["result"]["isError"], json!(false), "{v}");
    assert_eq!(
        v["result"]["structuredContent"]["rows"],
        json!([[1], [2]]),
        "{v}"
    );
}

/// A 401 challenge for a presented but unacceptable token.
fn assert_invalid_token(srv: &HttpServer, r: &Reply, what: &str) {
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: {r:?}");
    let challenge = r.header("www-authenticate");
    // Only time-based failures carry a description (the client can act on them).
    let description = match what {
        w if w.starts_with("expired") => ", error_description=\"the token has expired\"",
        w if w.starts_with("not yet valid") => ", error_description=\"the token is not valid yet\"",
        _ => "",
    };
    assert_eq!(
        challenge,
        format!(
            "Bearer resource_metadata=\"{}\", scope=\"db:read\", error=\"invalid_token\"{description}",
            srv.metadata_url()
        ),
        "{what}"
    );
}

/// 1. No credentials: 401 with a challenge naming the metadata and the scope to ask for, no
///    error code (RFC 6750 §3.1) and a JSON-RPC error body without details.
#[tokio::test]
async fn missing_credentials_get_a_401_challenge() {
    let f = fixture();
    let srv = HttpServer::start(&f, Knobs::default()).await;
    let r = srv
        .post(
            None,
            &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{r:?}");
    let challenge = r.header("www-authenticate");
    let expected_start = format!(
        "Bearer resource_metadata=\"http://127.0.0.1:{}/.well-known/oauth-protected-resource/mcp\"",
        srv.port
    );
    assert!(challenge.starts_with(&expected_start), "{challenge}");
    assert!(challenge.contains("scope=\"db:read\""), "{challenge}");
    assert!(
        !challenge.contains("error="),
        "no error code without credentials: {challenge}"
    );
    assert!(
        r.header("content-type").starts_with("application/json"),
        "{r:?}"
    );
    assert_eq!(r.json(), gate_error("authentication required"), "{r:?}");
    // A token in the query string is not a credential (header only).
    let token = srv.token("query-string", "db:read");
    let r = srv
        .http
        .post(format!("{}?access_token={token}", srv.url()))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A credential that is not a bearer token is refused the same way.
    let r = srv
        .post_raw(
            None,
            "{}",
            &[("authorization", "Basic dXNlcjpwdw==".into())],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{r:?}");
    assert!(
        r.header("www-authenticate").starts_with(&expected_start),
        "{r:?}"
    );
}

/// 2. Token checks: signature with a pinned algorithm, issuer, audience, expiry, not-before.
#[tokio::test]
async fn tokens_are_checked_for_signature_issuer_audience_and_time() {
    let f = fixture();
    let srv = HttpServer::start(
        &f,
        Knobs {
            failed_auth_per_minute: 1000,
            ..Knobs::default()
        },
    )
    .await;
    let secret = JWT_SECRET.as_bytes();
    let now = now();
    let good = srv.claims("alice", "db:read");

    // The valid token works, so the refusals below are about what each one changes.
    let r = srv.list_tools(&hs256(&good, secret)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "valid HS256 token: {r:?}\n{}",
        srv.stderr()
    );

    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let cases: Vec<(&str, String)> = vec![
        ("expired", hs256(&with("exp", json!(now - 120)), secret)),
        (
            "another secret",
            hs256(&good, b"another-secret-of-enough-length-0123456789"),
        ),
        (
            "another issuer",
            hs256(&with("iss", json!("https://evil.test")), secret),
        ),
        (
            "another audience",
            hs256(&with("aud", json!("http://127.0.0.1:1/mcp")), secret),
        ),
        (
            "not yet valid",
            hs256(&with("nbf", json!(now + 120)), secret),
        ),
        ("no exp", {
            let mut c = good.clone();
            c.as_object_mut().unwrap().remove("exp");
            hs256(&c, secret)
        }),
        (
            "audience with a trailing slash",
            hs256(&with("aud", json!(format!("{}/", srv.url()))), secret),
        ),
        ("no audience", {
            let mut c = good.clone();
            c.as_object_mut().unwrap().remove("aud");
            hs256(&c, secret)
        }),
        ("alg none", unsigned(&good)),
        (
            "HS256 with the RSA public key as secret",
            hs256(
                &with("iss", json!(RSA_ISSUER)),
                rsa_keys().public_pem.as_bytes(),
            ),
        ),
        ("RS256 for the HS256 issuer", rs256(&good)),
        ("garbage", "not.a.jwt".into()),
        (
            "unknown API key",
            "pgw_not_a_configured_key_0123456789".into(),
        ),
    ];
    for (what, token) in &cases {
        let r = srv.list_tools(token).await;
        assert_invalid_token(&srv, &r, what);
        assert!(!r.body.contains(token.as_str()), "{what}: token echoed");
    }

    // RS256 signed by the configured key is accepted.
    let rsa_ok = rs256(&with("iss", json!(RSA_ISSUER)));
    let r = srv.list_tools(&rsa_ok).await;
    assert_eq!(r.status, StatusCode::OK, "RS256: {r:?}");
    assert!(r.tool_names().contains(&"query".to_string()), "{r:?}");
    // `aud` may be an array that contains this server.
    let r = srv
        .list_tools(&hs256(
            &with("aud", json!(["https://other.test", srv.url()])),
            secret,
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "aud array: {r:?}");
    // Within the leeway, an expired-just-now token still passes.
    let r = srv
        .list_tools(&hs256(&with("exp", json!(now - 1)), secret))
        .await;
    assert_eq!(r.status, StatusCode::OK, "exp within leeway: {r:?}");
}

/// 3. After `failed_auth_per_minute` failures from one address, the next failure is 429.
#[tokio::test]
async fn failed_authentication_is_throttled_per_address() {
    let f = fixture();
    let srv = HttpServer::start(&f, Knobs::default()).await;
    let bad = hs256(
        &srv.claims("mallory", "db:read"),
        b"guessed-secret-guessed-secret-guessed",
    );
    for i in 0..3 {
        let r = srv.list_tools(&bad).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "attempt {i}: {r:?}");
    }
    let r = srv.list_tools(&bad).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{r:?}");
    let retry: u64 = r
        .header("retry-after")
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After is a number of seconds: {r:?}"));
    assert!((1..=60).contains(&retry), "{retry}");
    let v = r.json();
    assert_eq!(v["error"]["code"], json!(-32001), "{v}");
    assert!(v["error"].get("data").is_none(), "{v}");
    // X-Forwarded-For from an untrusted peer is ignored: no dodging the throttle with it.
    let r = srv
        .list_tools_with(&bad, &[("x-forwarded-for", "203.0.113.9".into())])
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{r:?}");
    // Missing credentials count as failures too.
    let r = srv
        .post(
            None,
            &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{r:?}");
    // While throttled, even a valid credential is not verified: 429 tells a guesser nothing.
    let good = srv.token("alice", "db:read");
    let r = srv.list_tools(&good).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{r:?}");

    // Behind a trusted proxy, the client is the rightmost untrusted X-Forwarded-For hop: one
    // client's failures do not throttle another's, and a forged leftmost hop changes nothing.
    let srv = HttpServer::start(
        &f,
        Knobs {
            trusted_proxies: vec!["127.0.0.1".into()],
            ..Knobs::default()
        },
    )
    .await;
    let bad = hs256(
        &srv.claims("mallory", "db:read"),
        b"guessed-secret-guessed-secret-guessed",
    );
    let attacker = [("x-forwarded-for", "203.0.113.9".to_string())];
    for i in 0..3 {
        let r = srv.list_tools_with(&bad, &attacker).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "attempt {i}: {r:?}");
    }
    let r = srv.list_tools_with(&bad, &attacker).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{r:?}");
    let forged = [("x-forwarded-for", "198.51.100.1, 203.0.113.9".to_string())];
    let r = srv.list_tools_with(&bad, &forged).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "forged hop: {r:?}");
    let bystander = [("x-forwarded-for", "198.51.100.7".to_string())];
    let r = srv.list_tools_with(&bad, &bystander).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "another client: {r:?}");
}

/// 4. Scopes: a tool needing a scope the caller lacks is unlisted and its call is a 403
///    `insufficient_scope`; implied scopes count; API keys carry their scopes.
#[tokio::test]
async fn scopes_hide_and_refuse_tools() {
    let f = fixture();
    let srv = HttpServer::start(&f, Knobs::default()).await;

    let reader = srv.token("reader", "db:read");
    let names = srv.list_tools(&reader).await.tool_names();
    assert_eq!(
        names,
        [
            "query",
            "list_tables",
            "describe_table",
            "orders_for_customer"
        ],
        "db:read sees the read tools only"
    );
    let r = srv
        .call_tool(&reader, "admin_orders", json!({"id": 1}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
    assert_eq!(
        r.header("www-authenticate"),
        format!(
            "Bearer error=\"insufficient_scope\", scope=\"db:admin\", resource_metadata=\"{}\"",
            srv.metadata_url()
        )
    );
    assert_eq!(r.json(), gate_error("insufficient scope"));

    // The scope claim may also be an array; db:admin implies db:read.
    let mut claims = srv.claims("admin", "");
    claims["scope"] = json!(["db:admin"]);
    let admin = hs256(&claims, JWT_SECRET.as_bytes());
    let names = srv.list_tools(&admin).await.tool_names();
    assert!(names.contains(&"admin_orders".to_string()), "{names:?}");
    assert!(names.contains(&"query".to_string()), "{names:?}");
    let r = srv
        .call_tool(&admin, "admin_orders", json!({"id": 1}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let v = r.json();
    assert_eq!(v["result"]["isError"], json!(false), "{v}");
    assert_eq!(
        v["result"]["structuredContent"]["rows"],
        json!([[1]]),
        "{v}"
    );
    assert_rows_1_2(&srv.query(&admin, ROWS_1_2).await);

    // A token with no scope at all sees no tools and may call none.
    let nobody = srv.token("nobody", "");
    assert_eq!(
        srv.list_tools(&nobody).await.tool_names(),
        Vec::<String>::new()
    );
    let r = srv.query(&nobody, ROWS_1_2).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
    assert!(
        r.header("www-authenticate").contains("scope=\"db:read\""),
        "{r:?}"
    );

    // The API key (db:read), whose hash `pgward hash-key --stdin` prints as configured.
    assert_rows_1_2(&srv.query(API_KEY, ROWS_1_2).await);
    let r = srv
        .call_tool(API_KEY, "admin_orders", json!({"id": 1}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
    let mut cmd = pgward_command(&["hash-key", "--stdin"]);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(format!("{API_KEY}\n").as_bytes())
            .await
            .unwrap();
    }
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("key_sha256 = \"{}\"", http::sha256_hex(API_KEY.as_bytes()))
    );
}

/// 5. Per-principal rate limit: a burst beyond `burst_per_principal` is partly refused with
///    429 + Retry-After, never a 5xx; other principals are unaffected; it refills.
#[tokio::test]
async fn requests_beyond_the_burst_are_rate_limited() {
    let f = fixture();
    // The in-flight cap is lifted so that only the rate limiter decides here.
    let srv = HttpServer::start(
        &f,
        Knobs {
            max_in_flight: Some(100),
            ..Knobs::default()
        },
    )
    .await;
    let token = srv.token("greedy", "db:read");
    let replies = futures_util::future::join_all((0..20).map(|_| srv.list_tools(&token))).await;
    let mut ok = 0;
    let mut limited = 0;
    for r in &replies {
        assert!(!r.status.is_server_error(), "{r:?}");
        match r.status {
            StatusCode::OK => {
                assert!(r.tool_names().contains(&"query".to_string()), "{r:?}");
                ok += 1;
            }
            StatusCode::TOO_MANY_REQUESTS => {
                let retry: u64 = r
                    .header("retry-after")
                    .parse()
                    .unwrap_or_else(|_| panic!("Retry-After is a number of seconds: {r:?}"));
                assert!(retry >= 1, "{r:?}");
                assert_eq!(r.json(), gate_error("rate limit exceeded"));
                limited += 1;
            }
            other => panic!("unexpected status {other}: {r:?}"),
        }
    }
    // The burst (5) passes at once; one more may trickle in per 200 ms while the rest arrive.
    assert!((5..=10).contains(&ok), "{ok} allowed, {limited} limited");
    assert!(limited >= 10, "{ok} allowed, {limited} limited");
    // Someone else is not slowed down by the greedy principal.
    let other = srv.token("patient", "db:read");
    assert_eq!(srv.list_tools(&other).await.status, StatusCode::OK);
    // The bucket refills (5 per second).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..3 {
        let r = srv.list_tools(&token).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
    }
}

/// Fails if a client-visible text carries something that must never leave the server.
fn assert_no_leak(what: &str, text: &str, secrets: &[&str]) {
    for needle in [
        "/root",
        "/work",
        ".rs",
        "postgres://",
        "postgresql://",
        "panicked",
        "stack backtrace",
        "RUST_BACKTRACE",
        "DETAIL",
        "HINT",
    ] {
        assert!(
            !text.contains(needle),
            "{what} contains `{needle}`:\n{text}"
        );
    }
    for s in secrets {
        assert!(
            !text.contains(s),
            "{what} contains a secret or token:\n{text}"
        );
    }
}

/// 6. Error responses (and the server's log) never carry traces, paths, connection strings,
///    tokens or secrets.
#[tokio::test]
async fn errors_carry_no_traces_paths_connection_strings_or_secrets() {
    let f = fixture();
    let srv = HttpServer::start(
        &f,
        Knobs {
            failed_auth_per_minute: 1000,
            rate_per_principal: 1000,
            ..Knobs::default()
        },
    )
    .await;
    let token = srv.token("leak-probe", "db:read");
    let expired = {
        let mut c = srv.claims("leak-probe", "db:read");
        c["exp"] = json!(now() - 600);
        hs256(&c, JWT_SECRET.as_bytes())
    };
    let forged = hs256(
        &srv.claims("leak-probe", "db:admin"),
        b"forged-secret-forged-secret-forged!",
    );
    let wrong_key = format!("{API_KEY}x");
    // What each request is, the status it must get, and for 200s whether it is a tool error.
    let replies: Vec<(&str, StatusCode, Reply)> = vec![
        (
            "expired token",
            StatusCode::UNAUTHORIZED,
            srv.list_tools(&expired).await,
        ),
        (
            "forged token",
            StatusCode::UNAUTHORIZED,
            srv.list_tools(&forged).await,
        ),
        (
            "wrong API key",
            StatusCode::UNAUTHORIZED,
            srv.list_tools(&wrong_key).await,
        ),
        (
            "unknown tool",
            StatusCode::OK,
            srv.call_tool(&token, "drop_everything", json!({})).await,
        ),
        (
            "database error",
            StatusCode::OK,
            srv.query(&token, "SELECT id / (id - id) FROM orders").await,
        ),
        (
            "database error, API key",
            StatusCode::OK,
            srv.query(API_KEY, "SELECT id / (id - id) FROM orders")
                .await,
        ),
        (
            "refused SQL",
            StatusCode::OK,
            srv.query(&token, "SELECT rolpassword FROM pg_authid").await,
        ),
        (
            "hidden column",
            StatusCode::OK,
            srv.query(&token, "SELECT ssn FROM customers").await,
        ),
        (
            "bad arguments",
            StatusCode::OK,
            srv.call_tool(
                &token,
                "orders_for_customer",
                json!({"customer_id": "1; DROP"}),
            )
            .await,
        ),
        (
            "insufficient scope",
            StatusCode::FORBIDDEN,
            srv.call_tool(&token, "admin_orders", json!({"id": 1}))
                .await,
        ),
        (
            "bad origin",
            StatusCode::FORBIDDEN,
            srv.post(
                Some(&token),
                &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
                &[("origin", "http://evil.example".into())],
            )
            .await,
        ),
    ];
    let secrets = [
        token.as_str(),
        expired.as_str(),
        forged.as_str(),
        wrong_key.as_str(),
        JWT_SECRET,
        API_KEY,
        READER_PASSWORD,
        HASH_KEY,
    ];
    for (what, status, r) in &replies {
        assert_eq!(r.status, *status, "{what}: {r:?}");
        assert_no_leak(what, &r.everything(), &secrets);
        if r.status == StatusCode::OK {
            // Refusals and failures are tool errors with a code, not protocol failures.
            let v = r.json();
            assert_eq!(v["result"]["isError"], json!(true), "{what}: {v}");
            assert!(
                v["result"]["structuredContent"]["error"]["code"].is_string(),
                "{what}: {v}"
            );
        }
    }
    // Protocol-level refusals (unknown method, malformed body) leak nothing either.
    for (what, r) in [
        (
            "unknown method",
            srv.stateless(Some(&token), 3, "resources/list", json!({}))
                .await,
        ),
        (
            "malformed JSON",
            srv.post_raw(
                Some(&token),
                "{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": ",
                &[],
            )
            .await,
        ),
    ] {
        assert!(r.status.is_client_error(), "{what}: {r:?}");
        assert_no_leak(what, &r.everything(), &secrets);
    }
    // Tokens and secrets are not logged either.
    let log = srv.stderr();
    for s in secrets {
        assert!(
            !log.contains(s),
            "the server log contains a token or secret:\n{log}"
        );
    }
}

/// 7. Plain HTTP on a non-loopback address is refused unless TLS ends at a trusted proxy.
#[tokio::test]
async fn plain_http_on_the_network_is_refused() {
    let f = fixture();
    let port = http::free_port();
    let open = Knobs {
        listen_host: "0.0.0.0".into(),
        ..Knobs::default()
    };
    let (_dir, path) = write_http_config(&f, port, &open);
    let path = path.to_str().unwrap();
    for args in [
        vec!["config", "check", "--config", path],
        vec!["serve", "--config", path],
    ] {
        let out = tokio::time::timeout(
            Duration::from_secs(20),
            pgward_command(&args)
                .stdin(std::process::Stdio::null())
                .output(),
        )
        .await
        .expect("exits in time")
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded:\n{stderr}");
        assert!(stderr.contains("http.listen"), "{args:?}:\n{stderr}");
        assert!(
            stderr.contains("tls_terminated_by_proxy"),
            "{args:?}:\n{stderr}"
        );
    }
    let proxied = Knobs {
        tls_terminated_by_proxy: true,
        ..open
    };
    let (_dir2, path) = write_http_config(&f, port, &proxied);
    let out = pgward_command(&["config", "check", "--config", path.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "with tls_terminated_by_proxy the config is valid:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// 8. Host and Origin are checked (DNS rebinding) before anything else.
#[tokio::test]
async fn bad_origin_and_host_are_refused() {
    let f = fixture();
    let srv = HttpServer::start(
        &f,
        Knobs {
            allow_own_origin: true,
            ..Knobs::default()
        },
    )
    .await;
    let token = srv.token("browser", "db:read");
    let meta = http::stateless_meta();
    let list =
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta}});
    let std_headers = |extra: &[(&'static str, String)]| {
        let mut h = vec![
            ("mcp-protocol-version", STATELESS.to_string()),
            ("mcp-method", "tools/list".to_string()),
        ];
        h.extend_from_slice(extra);
        h
    };
    let port = srv.port;
    for (what, extra) in [
        (
            "evil origin",
            vec![("origin", "http://evil.example".to_string())],
        ),
        ("null origin", vec![("origin", "null".to_string())]),
        (
            "own host, other port",
            vec![("origin", format!("http://127.0.0.1:{}", port + 1))],
        ),
        ("evil host", vec![("host", format!("evil.example:{port}"))]),
        (
            "evil host, no port",
            vec![("host", "evil.example".to_string())],
        ),
    ] {
        let r = srv.post(Some(&token), &list, &std_headers(&extra)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{what}: {r:?}");
        assert!(r.header("www-authenticate").is_empty(), "{what}: {r:?}");
        // Refused before authentication: no token needed to be refused, and no challenge.
        let r = srv.post(None, &list, &std_headers(&extra)).await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "{what} without a token: {r:?}"
        );
    }
    let r = srv
        .get(
            "/.well-known/oauth-protected-resource/mcp",
            &[("host", "evil.example".into())],
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "metadata with a bad host: {r:?}"
    );

    let r = srv.post(Some(&token), &list, &std_headers(&[])).await;
    assert_eq!(r.status, StatusCode::OK, "no Origin: {r:?}");
    let r = srv
        .post(
            Some(&token),
            &list,
            &std_headers(&[("origin", format!("http://127.0.0.1:{port}"))]),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "allowed Origin: {r:?}");
    let r = srv
        .post(
            Some(&token),
            &list,
            &std_headers(&[("host", format!("localhost:{port}"))]),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "Host localhost: {r:?}");
}

/// 9. A body over `max_body_bytes` is refused with 413.
#[tokio::test]
async fn oversize_bodies_get_413() {
    let f = fixture();
    let srv = HttpServer::start(
        &f,
        Knobs {
            max_body_bytes: Some(4096),
            ..Knobs::default()
        },
    )
    .await;
    let token = srv.token("big", "db:read");
    let sql = format!("SELECT id FROM orders WHERE id = 1 {}", " ".repeat(8192));
    let r = srv.query(&token, &sql).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{r:?}");
    assert_eq!(r.json(), gate_error("request body too large"));
    // Just under the limit is fine.
    let sql = format!(
        "SELECT id FROM orders ORDER BY id LIMIT 2{}",
        " ".repeat(3000)
    );
    assert_rows_1_2(&srv.query(&token, &sql).await);
}

/// 10. RFC 9728 protected resource metadata, unauthenticated and not cacheable.
#[tokio::test]
async fn protected_resource_metadata_is_served() {
    let f = fixture();
    let srv = HttpServer::start(&f, Knobs::default()).await;
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let r = srv.get(path, &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {r:?}");
        assert_eq!(r.header("cache-control"), "private, no-store", "{path}");
        assert!(
            r.header("content-type").starts_with("application/json"),
            "{path}"
        );
        let v = r.json();
        assert_eq!(v["resource"], json!(srv.url()), "{v}");
        let scopes: Vec<&str> = v["scopes_supported"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert!(scopes.contains(&"db:read"), "{v}");
        assert!(scopes.contains(&"db:admin"), "{v}");
        assert_eq!(v["bearer_methods_supported"], json!(["header"]), "{v}");
        assert!(v.get("authorization_servers").is_some(), "{v}");
    }
    // MCP answers are not cacheable either, allowed or refused.
    let token = srv.token("cache", "db:read");
    let r = srv.list_tools(&token).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.header("cache-control"), "private, no-store");
    let r = srv
        .post(
            None,
            &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.header("cache-control"), "private, no-store");
}

/// 11. Stateless 2026-07-28 clients and legacy 2025-11-25 clients both work; no session is
///     ever issued.
#[tokio::test]
async fn stateless_and_legacy_clients_work_without_sessions() {
    let f = fixture();
    let srv = HttpServer::start(&f, Knobs::default()).await;
    let mut replies = Vec::new();

    // 2026-07-28: no handshake, metadata on every request.
    let modern = srv.token("modern", "db:read");
    let r = srv.list_tools(&modern).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(
        r.tool_names(),
        [
            "query",
            "list_tables",
            "describe_table",
            "orders_for_customer"
        ]
    );
    replies.push(r);
    let r = srv.query(&modern, ROWS_1_2).await;
    assert_rows_1_2(&r);
    assert_eq!(r.json()["result"]["resultType"], json!("complete"), "{r:?}");
    replies.push(r);

    // 2025-11-25: initialize, initialized, then plain calls with the version header.
    let legacy = srv.token("legacy", "db:read");
    let r = srv
        .post(
            Some(&legacy),
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": LEGACY, "capabilities": {},
                "clientInfo": {"name": "legacy", "version": "0"}}}),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(
        r.json()["result"]["protocolVersion"],
        json!(LEGACY),
        "{r:?}"
    );
    replies.push(r);
    let version = [("mcp-protocol-version", LEGACY.to_string())];
    let r = srv
        .post(
            Some(&legacy),
            &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            &version,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    replies.push(r);
    let r = srv
        .post(
            Some(&legacy),
            &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
            &version,
        )
        .await;
    assert_eq!(
        r.tool_names(),
        [
            "query",
            "list_tables",
            "describe_table",
            "orders_for_customer"
        ]
    );
    replies.push(r);
    let r = srv
        .post(
            Some(&legacy),
            &json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
                "name": "query", "arguments": {"sql": ROWS_1_2}}}),
            &version,
        )
        .await;
    assert_rows_1_2(&r);
    replies.push(r);

    for r in &replies {
        assert!(
            r.headers.get("mcp-session-id").is_none(),
            "a session id was issued: {r:?}"
        );
    }
    // Nor is there a session stream to open or delete.
    let other = srv.token("deleter", "db:read");
    let r = srv
        .http
        .delete(srv.url())
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{r:?}");
    assert!(r.headers().get("mcp-session-id").is_none());
}

/// A body that is not JSON, or not JSON-RPC, is a 400 with a JSON-RPC parse error (-32700),
/// not a 415 (the Content-Type was right) and not a parser message in plain text.
#[tokio::test]
async fn malformed_bodies_are_a_400_parse_error() {
    let f = fixture();
    let srv = HttpServer::start(&f, Knobs::default()).await;
    let token = srv.token("sloppy", "db:read");
    for body in [
        "{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": ",
        "[1, 2",
        "not json",
    ] {
        let r = srv.post_raw(Some(&token), body, &[]).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {r:?}");
        assert!(
            r.header("content-type").starts_with("application/json"),
            "{body}: {r:?}"
        );
        let v = r.json();
        assert_eq!(v["error"]["code"], json!(-32700), "{body}: {v}");
        assert_eq!(v["id"], Value::Null, "{body}: {v}");
    }
}

/// The gate's scope check and the engine's agree whatever the message looks like: duplicate
/// keys, batches, escapes, with and without the 2026-07-28 routing headers. No shape lets a
/// db:read principal run the db:admin tool.
#[tokio::test]
async fn the_scope_check_cannot_be_dodged_by_message_shape() {
    let f = fixture();
    let srv = HttpServer::start(
        &f,
        Knobs {
            rate_per_principal: 100,
            ..Knobs::default()
        },
    )
    .await;
    let token = srv.token("sneaky", "db:read");
    let meta = http::stateless_meta().to_string();
    let call = |params: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"_meta":{meta},{params}}}}}"#
        )
    };
    let admin = r#""name":"admin_orders","arguments":{"id":1}"#;
    let shapes = [
        (
            "duplicate name, admin last",
            call(r#""name":"query","name":"admin_orders","arguments":{"id":1}"#),
        ),
        (
            "duplicate name, admin first",
            call(r#""name":"admin_orders","name":"query","arguments":{"id":1}"#),
        ),
        (
            "escaped name",
            call(r#""name":"admin\u005forders","arguments":{"id":1}"#),
        ),
        ("batch", format!("[{}]", call(admin))),
        (
            "batch behind an allowed call",
            format!(
                "[{}, {}]",
                call(r#""name":"list_tables","arguments":{}"#),
                call(admin)
            ),
        ),
        (
            "duplicate params",
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"_meta":{meta},{admin}}},"params":{{"_meta":{meta},"name":"list_tables","arguments":{{}}}}}}"#
            ),
        ),
        (
            "duplicate method",
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{{"_meta":{meta},{admin}}}}}"#
            ),
        ),
    ];
    for (what, body) in &shapes {
        for name in ["admin_orders", "query"] {
            for headers in [
                vec![
                    ("mcp-protocol-version", STATELESS.to_string()),
                    ("mcp-method", "tools/call".to_string()),
                    ("mcp-name", name.to_string()),
                ],
                vec![("mcp-protocol-version", LEGACY.to_string())],
            ] {
                let r = srv.post_raw(Some(&token), body.clone(), &headers).await;
                assert!(!r.status.is_server_error(), "{what}: {r:?}");
                if r.status == StatusCode::OK {
                    let v = r.json();
                    let results: Vec<&Value> = match &v {
                        Value::Array(items) => items.iter().collect(),
                        single => vec![single],
                    };
                    // Only the admin tool answers with rows here.
                    for m in results {
                        assert!(
                            m["result"]["structuredContent"].get("rows").is_none(),
                            "{what} ({headers:?}) ran the admin tool: {v}"
                        );
                    }
                }
            }
        }
    }
}

/// A principal may have only `max_in_flight_per_principal` calls running at once; the next is
/// refused with 429 + Retry-After, and another principal is not affected.
#[tokio::test]
async fn calls_in_flight_are_capped_per_principal() {
    let f = fixture();
    let srv = HttpServer::start(
        &f,
        Knobs {
            max_in_flight: Some(1),
            ..Knobs::default()
        },
    )
    .await;
    let token = srv.token("impatient", "db:read");
    // Runs until the 1 s statement timeout.
    let slow = "SELECT count(*) AS in_flight_probe FROM orders a, orders b, orders c";
    let first = srv.query(&token, slow);
    let second = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let r = srv.query(&token, ROWS_1_2).await;
        let other = srv
            .query(&srv.token("bystander", "db:read"), ROWS_1_2)
            .await;
        (r, other)
    };
    let (first, (second, other)) = tokio::join!(first, second);
    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    assert_eq!(
        first.json()["result"]["structuredContent"]["error"]["code"],
        json!("query_timeout"),
        "{first:?}"
    );
    assert_eq!(second.status, StatusCode::TOO_MANY_REQUESTS, "{second:?}");
    let retry: u64 = second.header("retry-after").parse().unwrap();
    assert!(retry >= 1, "{second:?}");
    assert_eq!(second.json(), gate_error("too many calls in flight"));
    assert_rows_1_2(&other);
    // The slot is released when the call ends.
    assert_rows_1_2(&srv.query(&token, ROWS_1_2).await);
}

/// CORS only for configured origins, never `*`: a preflight from the allowed origin is
/// answered with that origin, one from another origin is refused, and responses to the allowed
/// origin name it (and expose the auth challenge headers).
#[tokio::test]
async fn cors_is_only_for_configured_origins() {
    let f = fixture();
    let srv = HttpServer::start(
        &f,
        Knobs {
            allow_own_origin: true,
            ..Knobs::default()
        },
    )
    .await;
    let own = format!("http://127.0.0.1:{}", srv.port);
    let preflight = |origin: String| {
        srv.http
            .request(reqwest::Method::OPTIONS, srv.url())
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let ok = preflight(own.clone()).await.unwrap();
    assert_eq!(ok.status(), StatusCode::NO_CONTENT);
    assert_eq!(ok.headers()["access-control-allow-origin"], own.as_str());
    assert!(
        ok.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("authorization")
    );
    let evil = preflight("http://evil.example".into()).await.unwrap();
    assert_eq!(evil.status(), StatusCode::FORBIDDEN);
    assert!(evil.headers().get("access-control-allow-origin").is_none());

    // An unauthenticated request from the allowed origin: 401, readable by that origin only.
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list",
        "params": {"_meta": http::stateless_meta()}});
    let headers = vec![
        ("mcp-protocol-version", STATELESS.to_string()),
        ("mcp-method", "tools/list".to_string()),
        ("origin", own.clone()),
    ];
    let r = srv.post(None, &list, &headers).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.header("access-control-allow-origin"), own);
    assert!(
        r.header("access-control-expose-headers")
            .contains("www-authenticate")
    );
    // Without an Origin (not a browser), no CORS headers at all.
    let token = srv.token("cli", "db:read");
    let r = srv.post(Some(&token), &list, &headers[..2]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("access-control-allow-origin").is_empty());
}

/// Graceful shutdown: on SIGTERM the listener closes, a call in flight still gets its answer,
/// and the process exits cleanly.
#[tokio::test]
async fn shutdown_lets_calls_in_flight_finish() {
    let f = fixture();
    let mut srv = HttpServer::start(&f, Knobs::default()).await;
    let token = srv.token("slow", "db:read");
    let pid = srv.child.id().expect("pid").to_string();
    // The standard test config stops a statement after 1 s: this call takes about that long.
    let slow = srv.query(
        &token,
        "SELECT count(*) AS n FROM orders a, orders b, orders c",
    );
    let signal = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let status = tokio::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(status.success());
    };
    let (reply, ()) = tokio::join!(slow, signal);
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let v = reply.json();
    assert_eq!(
        v["result"]["structuredContent"]["error"]["code"],
        json!("query_timeout"),
        "the call in flight was answered: {v}"
    );
    let status = tokio::time::timeout(Duration::from_secs(10), srv.child.wait())
        .await
        .expect("pgward exits after draining")
        .unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", srv.port))
            .await
            .is_err(),
        "the listener is closed"
    );
}

/// Found in review: a client that sends part of its headers and stops (slowloris) is cut off
/// after the header read timeout instead of holding its connection (and shutdown) forever.
#[tokio::test]
async fn slow_headers_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let f = fixture();
    let srv = HttpServer::start(&f, Knobs::default()).await;
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", srv.port))
        .await
        .unwrap();
    tcp.write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    // The server answers (408) or closes; either way the read ends.
    let read = tokio::time::timeout(Duration::from_secs(20), tcp.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "the half-sent request held its connection open"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(8) && waited < Duration::from_secs(15),
        "cut off after {waited:?}"
    );
}

/// Past `http.max_connections`, a new connection is closed at once; when one closes, new ones
/// are served again.
#[tokio::test]
async fn connections_beyond_the_cap_are_closed() {
    use tokio::io::AsyncReadExt;
    let f = fixture();
    let srv = HttpServer::start(
        &f,
        Knobs {
            max_connections: Some(2),
            ..Knobs::default()
        },
    )
    .await;
    // Let the harness's readiness probe connection finish, so it holds no slot.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut conns = Vec::new();
    for _ in 0..3 {
        conns.push(
            tokio::net::TcpStream::connect(("127.0.0.1", srv.port))
                .await
                .unwrap(),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Exactly the connections beyond the cap are closed by the server; the others stay open.
    let mut closed = Vec::new();
    for c in &mut conns {
        let mut buf = [0u8; 16];
        let r = tokio::time::timeout(Duration::from_secs(2), c.read(&mut buf)).await;
        closed.push(matches!(r, Ok(Ok(0) | Err(_))));
    }
    assert_eq!(closed, vec![false, false, true], "closed: {closed:?}");
    conns.remove(0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = srv
        .get("/.well-known/oauth-protected-resource/mcp", &[])
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "served again once a slot frees: {r:?}"
    );
}
