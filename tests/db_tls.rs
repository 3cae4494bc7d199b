//! TLS to PostgreSQL against a real server: a throwaway cluster serving a certificate from a
//! test CA. `verify-full` connects only when the chain and the name check out, never falls
//! back to plain text, and `off` never attempts TLS.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

use std::collections::BTreeMap;
use std::future::pending;
use std::path::Path;

use pgward::audit::postgres::{PgSink, PgSinkError, migrate};
use pgward::config::load::parse;
use pgward::config::types::{DatabaseTls, TlsSettings};
use pgward::config::validate;
use pgward::db::cluster::TempCluster;
use pgward::db::{CallLimits, Database, DbError};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::json;

const LIMITS: CallLimits = CallLimits {
    max_rows: 10,
    max_bytes: 1 << 16,
    width: None,
    plan_each_call: false,
};

/// What the server says of the connection that asks.
const SSL_OF_THIS_CONNECTION: &str =
    "SELECT ssl, version FROM pg_catalog.pg_stat_ssl WHERE pid = pg_catalog.pg_backend_pid()";

/// A CA named `ca_name`, and a server certificate it signed for `names`: (CA PEM, server
/// certificate PEM, server key PEM).
fn ca_and_server(ca_name: &str, names: &[&str]) -> (String, String, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .unwrap()
        .signed_by(&server_key, &Issuer::new(ca, &ca_key))
        .unwrap();
    (ca_cert.pem(), server.pem(), server_key.serialize_pem())
}

/// A database handle from a real config: `[database]` with `extra` lines.
fn database(url: &str, extra: &str) -> Result<Database, String> {
    let text = format!(
        "[database]\nurl = \"{url}\"\n{extra}\n\n[[tables]]\nname = \"public.t\"\ncolumns = [\"id\"]\n"
    );
    let config = parse(&text).map_err(|e| e.to_string())?;
    let settings = validate(&config, &BTreeMap::new()).map_err(|e| e.join("; "))?;
    Database::connect(&settings.database).map_err(|e| e.to_string())
}

async fn ssl_of(db: &Database) -> Result<serde_json::Value, DbError> {
    let out = db
        .run(SSL_OF_THIS_CONNECTION, &[], LIMITS, pending())
        .await?;
    Ok(json!(out.rows))
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[tokio::test]
async fn verify_full_checks_the_chain_and_the_name_and_never_falls_back() {
    let cluster = TempCluster::start().unwrap();
    let url = cluster.superuser_url();
    let local = url.replace("127.0.0.1", "localhost");
    let dir = tempfile::tempdir().unwrap();
    let (ca, chain, key) = ca_and_server("pgward test database CA", &["127.0.0.1"]);
    let ca_file = write(dir.path(), "ca.pem", &ca);
    let (other_ca, _, _) = ca_and_server("another CA", &["127.0.0.1"]);
    let other_ca_file = write(dir.path(), "other-ca.pem", &other_ca);
    let verify = format!("tls = \"verify-full\"\ntls_ca_file = \"{ca_file}\"");

    // No TLS on the server yet: verify-full is refused, not served in plain text.
    let db = database(&url, &verify).unwrap();
    let err = ssl_of(&db).await.unwrap_err();
    assert!(
        err.to_string().contains("server does not support TLS"),
        "{err}"
    );

    cluster.enable_tls(&chain, &key).unwrap();

    // The right CA and the name in the certificate: TLS.
    let db = database(&url, &verify).unwrap();
    let rows = ssl_of(&db).await.unwrap();
    assert_eq!(rows[0][0], json!(true), "{rows}");
    assert!(rows[0][1].as_str().unwrap().starts_with("TLSv1."), "{rows}");
    // A URL that asks for sslmode=require gets the same verification.
    let db = database(
        &format!("{url}?sslmode=require"),
        &format!("tls_ca_file = \"{ca_file}\""),
    )
    .unwrap();
    assert_eq!(ssl_of(&db).await.unwrap()[0][0], json!(true));

    // Another CA: refused.
    let db = database(
        &url,
        &format!("tls = \"verify-full\"\ntls_ca_file = \"{other_ca_file}\""),
    )
    .unwrap();
    let err = ssl_of(&db).await.unwrap_err();
    assert!(
        matches!(&err, DbError::Unavailable(m) if m.contains("invalid peer certificate") && m.contains("UnknownIssuer")),
        "{err}"
    );
    // The right CA, but a name the certificate does not hold (it names 127.0.0.1 only).
    let db = database(&local, &verify).unwrap();
    let err = ssl_of(&db).await.unwrap_err();
    assert!(
        matches!(&err, DbError::Unavailable(m) if m.ends_with("invalid peer certificate: certificate not valid for name \"localhost\"; certificate is only valid for IpAddress(127.0.0.1)")),
        "{err}"
    );

    // The audit database's connections (the sink's pool, and the one-shot commands with their
    // flags' settings) take the same path.
    let audit_tls = TlsSettings {
        mode: Some(DatabaseTls::VerifyFull),
        ca_file: Some(ca_file.clone()),
    };
    migrate(&url, &audit_tls).await.unwrap();
    let sink = PgSink::connect(&url, &audit_tls).await.unwrap();
    assert_eq!(sink.head().await.unwrap(), None);
    let wrong = TlsSettings {
        mode: Some(DatabaseTls::VerifyFull),
        ca_file: Some(other_ca_file.clone()),
    };
    for err in [
        migrate(&url, &wrong).await.unwrap_err(),
        PgSink::connect(&url, &wrong).await.err().unwrap(),
    ] {
        assert!(
            matches!(&err, PgSinkError::Unavailable(m) if m.contains("invalid peer certificate")),
            "{err}"
        );
    }

    // `off` never attempts TLS, even to a server that offers it.
    let db = database(&url, "tls = \"off\"").unwrap();
    assert_eq!(ssl_of(&db).await.unwrap(), json!([[false, null]]));
    // Nor does a server on this machine with tls unset.
    let db = database(&url, "").unwrap();
    assert_eq!(ssl_of(&db).await.unwrap(), json!([[false, null]]));

    // A call cancelled while it runs over TLS ends as cancelled (the path that sends the
    // cancel request with the TLS connector).
    let db = database(&url, &verify).unwrap();
    let started = std::time::Instant::now();
    let err = db
        .run(
            "SELECT pg_catalog.pg_sleep(5)::text",
            &[],
            LIMITS,
            tokio::time::sleep(std::time::Duration::from_millis(300)),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, DbError::Cancelled), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
}

#[test]
fn a_remote_server_needs_an_explicit_choice() {
    let err = database("postgres://u@db.internal:5432/shop", "")
        .err()
        .unwrap();
    assert_eq!(
        err,
        "the server `db.internal` is not on this machine and database.tls is not set: set database.tls to \"verify-full\" (with database.tls_ca_file for a private CA), or to \"off\" for a network you trust"
    );
    assert!(database("postgres://u@db.internal:5432/shop", "tls = \"off\"").is_ok());
    assert!(
        database(
            "postgres://u@db.internal:5432/shop",
            "tls = \"verify-full\""
        )
        .is_ok()
    );
    let err = database("postgres://u@db.internal:5432/shop", "tls = \"maybe\"")
        .err()
        .unwrap();
    assert!(
        err.contains("unknown variant `maybe`, expected `verify-full` or `off`"),
        "{err}"
    );
}
