//! Issuers whose keys come from a JWKS URL: pgward fetches the set over HTTPS at start-up
//! (and does not start without it), picks the key by `kid`, fetches again early when a token
//! names a key the cached set lacks (the provider rotated), and limits those early fetches so
//! made-up `kid`s cannot make it hammer the provider.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;
#[path = "common/http.rs"]
mod http;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::fixture;
use http::{HttpServer, Knobs, TestCa, now, other_rsa_keys, pgward_command, rsa_keys};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};

const JWKS_ISSUER: &str = "https://jwks.test";

/// An HTTPS server on 127.0.0.1 publishing a JWKS at `/jwks.json` (whatever `body` holds when
/// asked) and counting the fetches.
struct JwksServer {
    port: u16,
    body: Arc<Mutex<String>>,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl JwksServer {
    async fn start(cert: &std::path::Path, key: &std::path::Path, body: Value) -> JwksServer {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let body = Arc::new(Mutex::new(body.to_string()));
        let hits = Arc::new(AtomicUsize::new(0));
        let app = {
            let body = Arc::clone(&body);
            let hits = Arc::clone(&hits);
            axum::Router::new().route(
                "/jwks.json",
                axum::routing::get(move || {
                    hits.fetch_add(1, Ordering::SeqCst);
                    let text = body.lock().unwrap().clone();
                    async move { ([("content-type", "application/json")], text) }
                }),
            )
        };
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let app = app.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
                });
            }
        });
        JwksServer {
            port,
            body,
            hits,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    fn publish(&self, set: Value) {
        *self.body.lock().unwrap() = set.to_string();
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn rsa(n: u8) -> EncodingKey {
    let pem = if n == 1 {
        &rsa_keys().private_pem
    } else {
        &other_rsa_keys().private_pem
    };
    EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap()
}

/// The public JWK of test key `n` under `kid`.
fn jwk(n: u8, kid: &str) -> Value {
    let mut jwk =
        serde_json::to_value(Jwk::from_encoding_key(&rsa(n), Algorithm::RS256).unwrap()).unwrap();
    jwk["kid"] = json!(kid);
    jwk["use"] = json!("sig");
    jwk
}

fn token(server: &HttpServer, key: u8, kid: &str, sub: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    let claims = json!({
        "iss": JWKS_ISSUER,
        "aud": server.url(),
        "sub": sub,
        "iat": now(),
        "exp": now() + 300,
        "scope": "db:read",
    });
    jsonwebtoken::encode(&header, &claims, &rsa(key)).unwrap()
}

fn issuer_toml(url: &str, ca: Option<&std::path::Path>) -> String {
    let ca = ca
        .map(|p| format!("jwks_ca_file = \"{}\"\n", p.display()))
        .unwrap_or_default();
    format!(
        "[[auth.issuers]]\nissuer = \"{JWKS_ISSUER}\"\nalgorithms = [\"RS256\"]\njwks_url = \"{url}\"\n{ca}"
    )
}

/// A CA and a JWKS server whose certificate it issued.
async fn jwks_server(dir: &std::path::Path, set: Value) -> (TestCa, JwksServer) {
    let ca = TestCa::new(dir, "idp-ca");
    let (cert, key) = ca.issue("idp", "/CN=127.0.0.1", false);
    let server = JwksServer::start(&cert, &key, set).await;
    (ca, server)
}

#[tokio::test]
async fn keys_are_fetched_by_kid_and_refetched_once_when_the_provider_rotates() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let (ca, idp) = jwks_server(dir.path(), json!({"keys": [jwk(1, "k1")]})).await;
    let server = HttpServer::start(
        &f,
        Knobs {
            extra_toml: issuer_toml(&idp.url("/jwks.json"), Some(&ca.cert)),
            rate_per_principal: 50,
            failed_auth_per_minute: 10,
            ..Knobs::default()
        },
    )
    .await;
    assert_eq!(idp.hits(), 1, "one fetch at start-up");

    let ok = server.list_tools(&token(&server, 1, "k1", "ann")).await;
    assert_eq!(ok.status, StatusCode::OK, "{ok:?}");
    assert!(ok.tool_names().contains(&"query".to_string()));
    assert_eq!(idp.hits(), 1, "a known kid needs no fetch");

    // A token signed by key 2 but naming kid k1: the signature does not verify.
    let forged = server.list_tools(&token(&server, 2, "k1", "mallory")).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        idp.hits(),
        1,
        "a known kid with a bad signature needs no fetch"
    );

    // The provider rotates: key 2 is published as k2 and a token names it. pgward fetches once
    // and accepts it.
    idp.publish(json!({"keys": [jwk(1, "k1"), jwk(2, "k2")]}));
    let rotated = server.list_tools(&token(&server, 2, "k2", "bob")).await;
    assert_eq!(rotated.status, StatusCode::OK, "{rotated:?}");
    assert_eq!(idp.hits(), 2, "one early fetch for the new kid");

    // Made-up kids right after: refused without another fetch (at most one early fetch per
    // interval).
    for kid in ["k3", "k4", "k5"] {
        let r = server.list_tools(&token(&server, 1, kid, "eve")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(
            r.header("www-authenticate")
                .starts_with("Bearer resource_metadata="),
            "{r:?}"
        );
    }
    assert_eq!(idp.hits(), 2, "early fetches are rate limited");

    let log = server.stderr();
    assert!(log.contains("bad_signature"), "{log}");
    assert!(log.contains("unknown_key"), "{log}");
}

/// Runs `pgward serve` expecting it to refuse to start; returns its stderr.
async fn refused_start(f: &common::Fixture, extra_toml: String) -> String {
    let port = http::free_port();
    let knobs = Knobs {
        extra_toml,
        ..Knobs::default()
    };
    let (_dir, path) = http::write_http_config(f, port, &knobs);
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        pgward_command(&["serve", "--config", path.to_str().unwrap()])
            .stdin(std::process::Stdio::null())
            .output(),
    )
    .await
    .expect("pgward should exit")
    .unwrap();
    assert!(!out.status.success(), "pgward started: {out:?}");
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
    );
    String::from_utf8(out.stderr).unwrap()
}

#[tokio::test]
async fn pgward_does_not_start_without_a_usable_key_set() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let (ca, idp) = jwks_server(dir.path(), json!({"keys": [jwk(1, "k1")]})).await;

    // The provider's certificate is not trusted (the system store does not hold the test CA).
    let err = refused_start(&f, issuer_toml(&idp.url("/jwks.json"), None)).await;
    assert!(
        err.contains(&format!(
            "auth.issuers[2] (`{JWKS_ISSUER}`).jwks_url: cannot use `{}`",
            idp.url("/jwks.json")
        )),
        "{err}"
    );
    assert!(err.to_lowercase().contains("certificate"), "{err}");

    // Trusted, but the URL answers 404.
    let err = refused_start(&f, issuer_toml(&idp.url("/missing"), Some(&ca.cert))).await;
    assert!(err.contains("the server answered 404 Not Found"), "{err}");

    // Trusted and found, but the set holds no RS256 key.
    idp.publish(json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "k"}]}));
    let err = refused_start(&f, issuer_toml(&idp.url("/jwks.json"), Some(&ca.cert))).await;
    assert!(
        err.contains("the key set holds no key usable with `RS256`"),
        "{err}"
    );

    // Plain HTTP is refused before anything is fetched.
    let before = idp.hits();
    let err = refused_start(
        &f,
        issuer_toml(&format!("http://127.0.0.1:{}/jwks.json", idp.port), None),
    )
    .await;
    assert!(err.contains("must start with `https://`"), "{err}");
    assert_eq!(idp.hits(), before);
}
