//! pgward terminating TLS itself (rustls): HTTPS works with a real client (curl), every
//! response carries HSTS, and plain HTTP on the TLS port gets nothing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;
#[path = "common/http.rs"]
mod http;

use std::process::Command;

use common::fixture;
use http::{HttpServer, ISSUER, JWT_SECRET, Knobs, hs256, now};
use serde_json::json;

/// `curl` against the server, trusting only the test's self-signed certificate. Returns the
/// response head and body.
fn curl(server: &HttpServer, args: &[&str]) -> (String, String) {
    let cert = server.dir.path().join("cert.pem");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-D", "-", "--cacert"])
        .arg(&cert)
        .args(args)
        .output()
        .expect("run curl");
    assert!(out.status.success(), "curl failed: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_ascii_lowercase(), body.to_string())
}

#[tokio::test]
async fn https_serves_mcp_with_hsts_on_every_response() {
    let f = fixture();
    let server = HttpServer::start(
        &f,
        Knobs {
            tls: true,
            ..Knobs::default()
        },
    )
    .await;
    let base = format!("https://127.0.0.1:{}", server.port);

    let (head, body) = curl(
        &server,
        &[&format!("{base}/.well-known/oauth-protected-resource/mcp")],
    );
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains("strict-transport-security: max-age=63072000; includesubdomains"),
        "{head}"
    );
    let meta: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(meta["resource"], json!(format!("{base}/mcp")));

    // Unauthenticated: 401, still with HSTS.
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"curl","version":"0"},"io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    let mcp_args = [
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "-H",
        "accept: application/json, text/event-stream",
        "-H",
        "mcp-protocol-version: 2026-07-28",
        "-H",
        "mcp-method: tools/list",
        "--data",
        list,
    ];
    let url = format!("{base}/mcp");
    let mut args: Vec<&str> = mcp_args.to_vec();
    args.push(&url);
    let (head, _) = curl(&server, &args);
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(head.contains("strict-transport-security"), "{head}");

    // Authenticated (the audience is the https URL): the tools are listed over TLS.
    let token = hs256(
        &json!({"iss": ISSUER, "sub": "tls-user", "aud": url, "exp": now() + 300, "scope": "db:read"}),
        JWT_SECRET.as_bytes(),
    );
    let auth = format!("authorization: Bearer {token}");
    let mut args: Vec<&str> = vec!["-H", &auth];
    args.extend_from_slice(&mcp_args);
    args.push(&url);
    let (head, body) = curl(&server, &args);
    assert!(head.starts_with("http/1.1 200"), "{head}\n{body}");
    assert!(head.contains("strict-transport-security"), "{head}");
    let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = reply["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"query"), "{names:?}");
}

#[tokio::test]
async fn plain_http_on_the_tls_port_gets_no_response() {
    let f = fixture();
    let server = HttpServer::start(
        &f,
        Knobs {
            tls: true,
            ..Knobs::default()
        },
    )
    .await;
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg(format!("http://127.0.0.1:{}/mcp", server.port))
        .output()
        .unwrap();
    assert!(!out.status.success(), "plain HTTP was answered: {out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "000");
}
