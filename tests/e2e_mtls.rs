//! Mutual TLS: with `http.tls.client_ca_file`, pgward verifies client certificates in the
//! handshake (chain to the configured CA, validity, revocation) and maps the subject's common
//! name to a principal and scopes through `auth.client_certs`. curl is the client.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;
#[path = "common/http.rs"]
mod http;

use std::path::Path;
use std::process::Command;

use common::fixture;
use http::{HttpServer, Knobs, STATELESS, TestCa};

/// What curl got: the HTTP status and body, or curl's own error (a refused handshake).
fn curl(
    server: &HttpServer,
    cert: Option<(&Path, &Path)>,
    token: Option<&str>,
) -> Result<(u16, String), String> {
    let list = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{{"_meta":{{"io.modelcontextprotocol/protocolVersion":"{STATELESS}","io.modelcontextprotocol/clientInfo":{{"name":"curl","version":"0"}},"io.modelcontextprotocol/clientCapabilities":{{}}}}}}}}"#
    );
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}"])
        .arg("--cacert")
        .arg(server.dir.path().join("cert.pem"))
        .args(["-X", "POST", "-H", "content-type: application/json"])
        .args(["-H", "accept: application/json, text/event-stream"])
        .args(["-H", &format!("mcp-protocol-version: {STATELESS}")])
        .args(["-H", "mcp-method: tools/list", "--data", &list]);
    if let Some((c, k)) = cert {
        cmd.arg("--cert").arg(c).arg("--key").arg(k);
    }
    if let Some(t) = token {
        cmd.args(["-H", &format!("authorization: Bearer {t}")]);
    }
    cmd.arg(format!("https://127.0.0.1:{}/mcp", server.port));
    let out = cmd.output().expect("run curl");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    Ok((code.parse().unwrap(), body.to_string()))
}

fn tool_names(body: &str) -> Vec<String> {
    let json: serde_json::Value = body
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .chain(std::iter::once(body))
        .find_map(|l| serde_json::from_str(l.trim()).ok())
        .unwrap_or_else(|| panic!("no JSON in {body}"));
    json["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("not a tools/list result: {body}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

/// A valid HS256 token for the HTTPS endpoint (the audience is the https:// URL).
fn token(server: &HttpServer, sub: &str, scope: &str) -> String {
    let mut claims = server.claims(sub, scope);
    claims["aud"] = format!("https://127.0.0.1:{}/mcp", server.port).into();
    http::hs256(&claims, http::JWT_SECRET.as_bytes())
}

fn pair(c: &(std::path::PathBuf, std::path::PathBuf)) -> Option<(&Path, &Path)> {
    Some((c.0.as_path(), c.1.as_path()))
}

const MAPPED: &str =
    "[[auth.client_certs]]\ncommon_name = \"reporting-bot\"\nscopes = [\"db:read\"]\n";

#[tokio::test]
async fn required_client_certificates_are_verified_and_mapped() {
    let f = fixture();
    let pki = tempfile::tempdir().unwrap();
    let ca = TestCa::new(pki.path(), "clients-ca");
    let bot = ca.issue("bot", "/O=Example/CN=reporting-bot", true);
    let stranger = ca.issue("stranger", "/CN=stranger", true);
    let revoked = ca.issue("revoked", "/CN=reporting-bot", true);
    let crl = ca.revoke(&[&revoked.0]);
    // Another CA issuing the same name: not trusted.
    let rogue_ca = TestCa::new(pki.path(), "rogue-ca");
    let rogue = rogue_ca.issue("rogue", "/CN=reporting-bot", true);

    let server = HttpServer::start(
        &f,
        Knobs {
            tls: true,
            tls_extra: format!(
                "client_ca_file = \"{}\"\nclient_crl_files = [\"{}\"]\n",
                ca.cert.display(),
                crl.display()
            ),
            extra_toml: MAPPED.into(),
            failed_auth_per_minute: 10,
            ..Knobs::default()
        },
    )
    .await;

    // The mapped certificate alone authenticates, with its configured scopes only.
    let (status, body) = curl(&server, pair(&bot), None).unwrap();
    assert_eq!(status, 200, "{body}\n{}", server.stderr());
    let names = tool_names(&body);
    assert!(names.contains(&"query".to_string()), "{names:?}");
    assert!(!names.contains(&"admin_orders".to_string()), "{names:?}");

    // No certificate: refused in the handshake, even with a valid token.
    let admin = token(&server, "alice", "db:admin");
    let err = curl(&server, None, Some(&admin)).unwrap_err();
    assert!(!err.is_empty());
    // The same name from an untrusted CA, and a revoked certificate: refused in the handshake.
    curl(&server, pair(&rogue), None).unwrap_err();
    curl(&server, pair(&revoked), None).unwrap_err();

    // A trusted certificate whose name is not mapped is no principal: 401 with the challenge.
    let (status, body) = curl(&server, pair(&stranger), None).unwrap();
    assert_eq!(status, 401, "{body}");
    assert!(!body.contains("stranger"), "{body}");

    // A bearer token, when sent, is the credential (here with more scopes than the
    // certificate would give).
    let (status, body) = curl(&server, pair(&stranger), Some(&admin)).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(tool_names(&body).contains(&"admin_orders".to_string()));

    // curl runs blocking: let the stderr drain task catch up.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let log = server.stderr();
    assert!(log.contains("unknown_client_certificate"), "{log}");
}

#[tokio::test]
async fn optional_client_certificates_leave_tokens_working() {
    let f = fixture();
    let pki = tempfile::tempdir().unwrap();
    let ca = TestCa::new(pki.path(), "clients-ca");
    let (bot_cert, bot_key) = ca.issue("bot", "/CN=reporting-bot", true);
    let server = HttpServer::start(
        &f,
        Knobs {
            tls: true,
            tls_extra: format!(
                "client_ca_file = \"{}\"\nclient_auth = \"optional\"\n",
                ca.cert.display()
            ),
            extra_toml: MAPPED.into(),
            ..Knobs::default()
        },
    )
    .await;

    let token = token(&server, "alice", "db:read");
    let (status, body) = curl(&server, None, Some(&token)).unwrap();
    assert_eq!(status, 200, "{body}");
    let (status, _) = curl(&server, None, None).unwrap();
    assert_eq!(status, 401);
    let (status, body) = curl(&server, Some((&bot_cert, &bot_key)), None).unwrap();
    assert_eq!(status, 200, "{body}");
    // A server certificate is not a client certificate (no clientAuth usage): refused.
    let (srv_cert, srv_key) = ca.issue("server-like", "/CN=reporting-bot", false);
    curl(&server, Some((&srv_cert, &srv_key)), None).unwrap_err();
}
