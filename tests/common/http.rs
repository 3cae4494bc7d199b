//! Harness for the Streamable HTTP suites: the real `pgward serve` binary listening on a free
//! loopback port, configured with an HS256 issuer, an RS256 issuer (key pair made by
//! `openssl`), an API key and an admin-only lookup tool; token minting; raw JSON-RPC over
//! `reqwest`.
//!
//! Included with `#[path = "common/http.rs"]` next to `mod common;`, so the shared harness
//! stays untouched.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use crate::common::{
    DB_PASSWORD_ENV, Fixture, HASH_KEY, HASH_KEY_ENV, READER_PASSWORD, TestConfig,
};

/// The HS256 issuer's secret, given to the child through `${PGWARD_TEST_JWT_SECRET}`.
pub const JWT_SECRET: &str = "pgward-test-hs256-secret-0123456789-abcdef";
pub const JWT_SECRET_ENV: &str = "PGWARD_TEST_JWT_SECRET";
/// The HS256 issuer.
pub const ISSUER: &str = "https://idp.test";
/// The RS256 issuer.
pub const RSA_ISSUER: &str = "https://rsa.test";
/// The `etl-bot` API key (only its SHA-256 is in the config).
pub const API_KEY: &str = "pgw_test_etl_bot_0123456789abcdefghijklmnopqrstuv";
/// The stateless protocol revision.
pub const STATELESS: &str = "2026-07-28";
/// The newest handshake (legacy) revision.
pub const LEGACY: &str = "2025-11-25";

/// An RSA key pair for the RS256 issuer, made once per test binary.
pub struct RsaKeys {
    pub private_pem: String,
    pub public_pem: String,
}

pub fn rsa_keys() -> &'static RsaKeys {
    static KEYS: OnceLock<RsaKeys> = OnceLock::new();
    KEYS.get_or_init(generate_rsa_keys)
}

/// Another RSA key pair (a rotated key, or a forger's).
pub fn other_rsa_keys() -> &'static RsaKeys {
    static KEYS: OnceLock<RsaKeys> = OnceLock::new();
    KEYS.get_or_init(generate_rsa_keys)
}

fn generate_rsa_keys() -> RsaKeys {
    let dir = tempfile::tempdir().expect("tempdir");
    let private = dir.path().join("rsa_priv.pem");
    let public = dir.path().join("rsa_pub.pem");
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        private.to_str().unwrap(),
    ]);
    openssl(&[
        "pkey",
        "-pubout",
        "-in",
        private.to_str().unwrap(),
        "-out",
        public.to_str().unwrap(),
    ]);
    RsaKeys {
        private_pem: std::fs::read_to_string(&private).unwrap(),
        public_pem: std::fs::read_to_string(&public).unwrap(),
    }
}

/// Runs `openssl ARGS`, failing the test with its output if it fails.
pub fn openssl(args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl (is it installed?)");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A throwaway certificate authority (P-256) in `dir`, issuing leaf certificates.
pub struct TestCa {
    pub dir: std::path::PathBuf,
    /// `ca.pem`: the CA certificate (what a verifier trusts).
    pub cert: std::path::PathBuf,
    key: std::path::PathBuf,
}

impl TestCa {
    /// A new CA named `name` (its files are `<name>.pem` and `<name>.key`).
    pub fn new(dir: &std::path::Path, name: &str) -> TestCa {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ]);
        TestCa {
            dir: dir.to_path_buf(),
            cert,
            key,
        }
    }

    /// A leaf certificate and key (`<file>.pem`, `<file>.key`) with subject `subject` (e.g.
    /// `/CN=reporting-bot/O=Example`), for `serverAuth` (with an IP SAN of 127.0.0.1) or
    /// `clientAuth`.
    pub fn issue(
        &self,
        file: &str,
        subject: &str,
        client: bool,
    ) -> (std::path::PathBuf, std::path::PathBuf) {
        let cert = self.dir.join(format!("{file}.pem"));
        let key = self.dir.join(format!("{file}.key"));
        let csr = self.dir.join(format!("{file}.csr"));
        let ext = self.dir.join(format!("{file}.ext"));
        let usage = if client {
            "extendedKeyUsage=clientAuth\n"
        } else {
            "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n"
        };
        std::fs::write(
            &ext,
            format!("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n{usage}"),
        )
        .unwrap();
        openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            subject,
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            csr.to_str().unwrap(),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            csr.to_str().unwrap(),
            "-CA",
            self.cert.to_str().unwrap(),
            "-CAkey",
            self.key.to_str().unwrap(),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            ext.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ]);
        (cert, key)
    }

    /// A CRL (PEM) signed by this CA that revokes `certs`.
    pub fn revoke(&self, certs: &[&std::path::Path]) -> std::path::PathBuf {
        let index = self.dir.join("crl-index.txt");
        let number = self.dir.join("crl-number");
        let cnf = self.dir.join("crl-ca.cnf");
        let crl = self.dir.join("crl.pem");
        std::fs::write(&index, "").unwrap();
        std::fs::write(&number, "01\n").unwrap();
        std::fs::write(
            &cnf,
            format!(
                "[ca]\ndefault_ca = d\n[d]\ndatabase = {}\ncrlnumber = {}\ndefault_md = sha256\ndefault_crl_days = 2\n",
                index.display(),
                number.display()
            ),
        )
        .unwrap();
        let ca = [
            "-keyfile",
            self.key.to_str().unwrap(),
            "-cert",
            self.cert.to_str().unwrap(),
        ];
        for cert in certs {
            let mut args = vec![
                "ca",
                "-config",
                cnf.to_str().unwrap(),
                "-revoke",
                cert.to_str().unwrap(),
            ];
            args.extend(ca);
            openssl(&args);
        }
        let mut args = vec![
            "ca",
            "-config",
            cnf.to_str().unwrap(),
            "-gencrl",
            "-out",
            crl.to_str().unwrap(),
        ];
        args.extend(ca);
        openssl(&args);
        crl
    }
}

/// Lower-case hex SHA-256, computed here independently of pgward.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Unpadded base64url (for hand-built tokens).
pub fn b64url(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Signs `claims` with HS256 and `secret`.
pub fn hs256(claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

/// Signs `claims` with RS256 and the test RSA private key.
pub fn rs256(claims: &Value) -> String {
    let key = EncodingKey::from_rsa_pem(rsa_keys().private_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), claims, &key).unwrap()
}

/// `alg: none`, no signature.
pub fn unsigned(claims: &Value) -> String {
    let header = json!({"alg": "none", "typ": "JWT"});
    format!(
        "{}.{}.",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    )
}

/// What varies between the tests' servers.
#[derive(Debug, Clone)]
pub struct Knobs {
    /// `host` part of `http.listen` (the port is always a free one).
    pub listen_host: String,
    pub tls_terminated_by_proxy: bool,
    pub failed_auth_per_minute: u32,
    /// `rate_per_principal` and `burst_per_principal` (5 unless a test needs more).
    pub rate_per_principal: u32,
    pub max_body_bytes: Option<usize>,
    /// `max_in_flight_per_principal`, when set.
    pub max_in_flight: Option<u32>,
    /// `rate_global` and `burst_global`, when set.
    pub rate_global: Option<u32>,
    /// `trusted_proxies`.
    pub trusted_proxies: Vec<String>,
    /// Allow `http://127.0.0.1:<port>` as a browser origin.
    pub allow_own_origin: bool,
    /// `max_connections`, when set.
    pub max_connections: Option<u32>,
    /// Serve HTTPS with a self-signed certificate made for 127.0.0.1 (written as `cert.pem`
    /// next to the config).
    pub tls: bool,
    /// Appended verbatim to the config (more `[[auth.issuers]]`, ...).
    pub extra_toml: String,
    /// Appended to `[http.tls]` when `tls` is set (client certificate settings).
    pub tls_extra: String,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            listen_host: "127.0.0.1".into(),
            tls_terminated_by_proxy: false,
            failed_auth_per_minute: 3,
            rate_per_principal: 5,
            max_body_bytes: None,
            max_in_flight: None,
            rate_global: None,
            trusted_proxies: Vec::new(),
            allow_own_origin: false,
            tls: false,
            max_connections: None,
            extra_toml: String::new(),
            tls_extra: String::new(),
        }
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A config file with the standard test policy plus `[http]`, `[auth]`, `[scopes]` and the
/// admin-only tool, in a fresh temporary directory (with the RSA public key next to it).
pub fn write_http_config(
    f: &Fixture,
    port: u16,
    knobs: &Knobs,
) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let pub_path = dir.path().join("rsa_pub.pem");
    std::fs::write(&pub_path, &rsa_keys().public_pem).unwrap();
    let scheme = if knobs.tls { "https" } else { "http" };
    let mut http = format!(
        "listen = \"{}:{port}\"\npublic_url = \"{scheme}://127.0.0.1:{port}/mcp\"\n\
         rate_per_principal = {rate}\nburst_per_principal = {rate}\nfailed_auth_per_minute = {}\n",
        knobs.listen_host,
        knobs.failed_auth_per_minute,
        rate = knobs.rate_per_principal,
    );
    if knobs.tls_terminated_by_proxy {
        http.push_str("tls_terminated_by_proxy = true\n");
    }
    if let Some(n) = knobs.max_body_bytes {
        http.push_str(&format!("max_body_bytes = {n}\n"));
    }
    if let Some(n) = knobs.max_connections {
        http.push_str(&format!("max_connections = {n}\n"));
    }
    if let Some(n) = knobs.rate_global {
        http.push_str(&format!("rate_global = {n}\nburst_global = {n}\n"));
    }
    if let Some(n) = knobs.max_in_flight {
        http.push_str(&format!("max_in_flight_per_principal = {n}\n"));
    }
    if !knobs.trusted_proxies.is_empty() {
        http.push_str(&format!("trusted_proxies = {:?}\n", knobs.trusted_proxies));
    }
    if knobs.allow_own_origin {
        http.push_str(&format!(
            "allowed_origins = [\"http://127.0.0.1:{port}\"]\n"
        ));
    }
    if knobs.tls {
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let out = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args([
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("run openssl");
        assert!(out.status.success(), "openssl: {out:?}");
        http.push_str(&format!(
            "[http.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n{}\n",
            cert.display(),
            key.display(),
            knobs.tls_extra
        ));
    }
    let extra = format!(
        r#"[http]
{http}
[auth]
leeway_secs = 5

[[auth.issuers]]
issuer = "{ISSUER}"
algorithms = ["HS256"]
hs256_secret = "${{{JWT_SECRET_ENV}}}"

[[auth.issuers]]
issuer = "{RSA_ISSUER}"
algorithms = ["RS256"]
public_key_file = "{pub_key}"

[[auth.api_keys]]
subject = "etl-bot"
key_sha256 = "{key_hash}"
scopes = ["db:read"]

[scopes]
implies = {{ "db:admin" = ["db:read"] }}

[[tools]]
name = "admin_orders"
description = "One order by id, for administrators"
sql = "SELECT id FROM orders WHERE id = $1"
scope = "db:admin"

[[tools.params]]
name = "id"
type = "integer"

{extra_toml}
"#,
        extra_toml = knobs.extra_toml,
        pub_key = pub_path.display(),
        key_hash = sha256_hex(API_KEY.as_bytes()),
    );
    let cfg = TestConfig {
        extra,
        ..TestConfig::default()
    };
    let path = dir.path().join("pgward.toml");
    std::fs::write(&path, cfg.toml(f)).unwrap();
    (dir, path)
}

/// `pgward ARGS` with the test secrets in the environment.
pub fn pgward_command(args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pgward"));
    cmd.args(args)
        .env(DB_PASSWORD_ENV, READER_PASSWORD)
        .env(HASH_KEY_ENV, HASH_KEY)
        .env(JWT_SECRET_ENV, JWT_SECRET)
        .env("PGWARD_LOG", "info")
        // The HTTP suites run on two worker threads, the stdio suites on the default one, so
        // both runtimes are exercised.
        .env("PGWARD_WORKER_THREADS", "2")
        .kill_on_drop(true);
    cmd
}

/// An HTTP response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map_or("", |v| v.to_str().expect("ascii header"))
    }

    /// The JSON-RPC message in the body (plain JSON, or the last `data:` event of an SSE
    /// stream).
    pub fn json(&self) -> Value {
        if let Ok(v) = serde_json::from_str(&self.body) {
            return v;
        }
        self.body
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .next_back()
            .unwrap_or_else(|| panic!("no JSON in the body: {self:?}"))
    }

    /// Tool names of a `tools/list` result.
    pub fn tool_names(&self) -> Vec<String> {
        let v = self.json();
        v["result"]["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("not a tools/list result: {self:?}"))
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// Everything a client sees: status line, headers and body.
    pub fn everything(&self) -> String {
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(v.as_bytes())))
            .collect();
        format!("{}\n{}\n\n{}", self.status, headers.join("\n"), self.body)
    }
}

/// The real binary serving Streamable HTTP; killed on drop.
pub struct HttpServer {
    pub port: u16,
    pub http: reqwest::Client,
    pub child: tokio::process::Child,
    pub stderr: Arc<Mutex<String>>,
    pub dir: tempfile::TempDir,
}

impl HttpServer {
    pub async fn start(f: &Fixture, knobs: Knobs) -> HttpServer {
        let port = free_port();
        let (dir, path) = write_http_config(f, port, &knobs);
        Self::start_with(port, dir, &path).await
    }

    /// Serves the config at `path` (written for `port`, living in `dir`).
    pub async fn start_with(
        port: u16,
        dir: tempfile::TempDir,
        path: &std::path::Path,
    ) -> HttpServer {
        let mut child = pgward_command(&["serve", "--config", path.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pgward");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        tokio::spawn(async move {
            let mut buf = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        // reqwest is built without a default TLS provider (pgward configures its own).
        let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
        let mut server = HttpServer {
            port,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            child,
            stderr,
            dir,
        };
        server.wait_until_listening().await;
        server
    }

    async fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the drain task catch up with the last lines.
                tokio::time::sleep(Duration::from_millis(100)).await;
                panic!(
                    "pgward exited ({status}) before listening on port {}\nstderr:\n{}",
                    self.port,
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "pgward did not listen on port {} within 20 s\nstderr:\n{}",
                self.port,
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The MCP endpoint, which is also `http.public_url` (the token audience).
    pub fn url(&self) -> String {
        format!("{}/mcp", self.base())
    }

    pub fn metadata_url(&self) -> String {
        format!("{}/.well-known/oauth-protected-resource/mcp", self.base())
    }

    /// Claims the HS256 issuer would put in a valid token for this server.
    pub fn claims(&self, sub: &str, scope: &str) -> Value {
        let now = now();
        json!({
            "iss": ISSUER,
            "aud": self.url(),
            "sub": sub,
            "iat": now,
            "exp": now + 300,
            "scope": scope,
        })
    }

    /// A valid HS256 token.
    pub fn token(&self, sub: &str, scope: &str) -> String {
        hs256(&self.claims(sub, scope), JWT_SECRET.as_bytes())
    }

    /// POSTs `body` to the MCP endpoint with the usual MCP headers, `Authorization: Bearer
    /// <token>` when given, and `extra` headers (which may override Host).
    pub async fn post_raw(
        &self,
        token: Option<&str>,
        body: impl Into<reqwest::Body>,
        extra: &[(&str, String)],
    ) -> Reply {
        let mut req = self
            .http
            .post(self.url())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in extra {
            req = req.header(*k, v);
        }
        let resp = req.body(body).send().await.unwrap_or_else(|e| {
            panic!(
                "POST {} failed: {e}\nstderr:\n{}",
                self.url(),
                self.stderr()
            )
        });
        Reply {
            status: resp.status(),
            headers: resp.headers().clone(),
            body: resp.text().await.unwrap(),
        }
    }

    pub async fn post(&self, token: Option<&str>, msg: &Value, extra: &[(&str, String)]) -> Reply {
        self.post_raw(token, msg.to_string(), extra).await
    }

    /// GET a path on this server (no auth).
    pub async fn get(&self, path: &str, extra: &[(&str, String)]) -> Reply {
        let mut req = self.http.get(format!("{}{path}", self.base()));
        for (k, v) in extra {
            req = req.header(*k, v);
        }
        let resp = req.send().await.unwrap();
        Reply {
            status: resp.status(),
            headers: resp.headers().clone(),
            body: resp.text().await.unwrap(),
        }
    }

    /// A stateless 2026-07-28 request: `_meta` in the params, `MCP-Protocol-Version`,
    /// `Mcp-Method` and (for a tool call) `Mcp-Name` headers.
    pub async fn stateless(
        &self,
        token: Option<&str>,
        id: u64,
        method: &str,
        params: Value,
    ) -> Reply {
        let mut params = params;
        params["_meta"] = stateless_meta();
        let mut headers = vec![
            ("mcp-protocol-version", STATELESS.to_string()),
            ("mcp-method", method.to_string()),
        ];
        if let Some(name) = params.get("name").and_then(Value::as_str) {
            headers.push(("mcp-name", name.to_string()));
        }
        self.post(
            token,
            &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
            &headers,
        )
        .await
    }

    pub async fn list_tools(&self, token: &str) -> Reply {
        self.list_tools_with(token, &[]).await
    }

    /// `tools/list` (stateless) with extra headers.
    pub async fn list_tools_with(&self, token: &str, extra: &[(&str, String)]) -> Reply {
        let mut headers = vec![
            ("mcp-protocol-version", STATELESS.to_string()),
            ("mcp-method", "tools/list".to_string()),
        ];
        headers.extend_from_slice(extra);
        let msg = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list",
            "params": {"_meta": stateless_meta()}});
        self.post(Some(token), &msg, &headers).await
    }

    pub async fn call_tool(&self, token: &str, tool: &str, args: Value) -> Reply {
        self.stateless(
            Some(token),
            2,
            "tools/call",
            json!({"name": tool, "arguments": args}),
        )
        .await
    }

    pub async fn query(&self, token: &str, sql: &str) -> Reply {
        self.call_tool(token, "query", json!({ "sql": sql })).await
    }
}

pub fn stateless_meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": STATELESS,
        "io.modelcontextprotocol/clientInfo": {"name": "e2e-http", "version": "0"},
        "io.modelcontextprotocol/clientCapabilities": {}
    })
}
