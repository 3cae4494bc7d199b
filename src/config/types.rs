//! The config file's shape. Every key is documented in `config/example.toml` or
//! `config/example-http.toml`; `tests/config_reference.rs` checks both against these types.
//! Unknown keys are errors: [`super::load::parse`] collects every one of them (rather than
//! stopping at the first, as `deny_unknown_fields` would) and validation reports them with
//! every other problem.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::redact::Strategy;

#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub redaction: RedactionConfig,
    #[serde(default)]
    pub functions: FunctionsConfig,
    #[serde(default)]
    pub tables: Vec<TableConfig>,
    #[serde(default)]
    pub tools: Vec<ToolConfig>,
    /// Serve MCP over Streamable HTTP (with authentication) instead of stdio.
    #[serde(default)]
    pub http: Option<HttpConfig>,
    #[serde(default)]
    pub auth: crate::auth::config::AuthConfig,
    #[serde(default)]
    pub scopes: ScopesConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    /// Claims set as transaction-local settings before each query, for row-level security.
    #[serde(default)]
    pub session: SessionConfig,
    /// Per-scope database roles: the first entry whose scope the caller holds names the role
    /// the call runs as (`SET LOCAL ROLE`).
    #[serde(default)]
    pub roles: Vec<RoleConfig>,
    /// The admin listener (`/metrics`, `/healthz`, `/readyz`); off unless configured.
    #[serde(default)]
    pub admin: Option<crate::admin::AdminConfig>,
    /// Keys the file holds that pgward does not know, as dotted paths; any of them stops
    /// start-up.
    #[serde(skip)]
    pub unknown_keys: Vec<String>,
}

/// One `[[roles]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RoleConfig {
    pub scope: String,
    /// A role the pool's login role is a member of.
    pub role: String,
}

/// The `[session]` section.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SessionConfig {
    /// Setting name (`pgward.tenant`) to claim (`tenant`): before every query pgward runs
    /// `set_config('pgward.tenant', <the caller's tenant claim>, true)`, so PostgreSQL row-level
    /// security policies on `current_setting('pgward.tenant')` filter whatever SQL the model
    /// writes. A caller without the claim is refused.
    pub settings: BTreeMap<String, String>,
}

/// Where audit events go, and what happens when they cannot be written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct AuditConfig {
    /// Write each event as one JSON line to stderr.
    pub stderr: bool,
    /// Append events to this JSON Lines file (rotated by size; the chain continues across
    /// files; the newest event's `seq` and `hash` are kept in `<file>.head`).
    pub file: Option<String>,
    /// Rotate the file when it would grow past this many bytes.
    pub file_max_bytes: u64,
    /// Rotated files kept (`<file>.1` is the newest).
    pub file_keep: u32,
    /// Insert events into `pgward_audit.events` through this connection (its own role, INSERT
    /// only; see `migrations/`); must be written as `${ENV_VAR}`.
    pub postgres_url: Option<String>,
    /// `fail_closed`: a call whose event cannot be written is refused; `fail_open`: it is
    /// served, and the failure is logged and counted.
    pub failure_policy: FailurePolicy,
    /// Key for HMAC-SHA256 chaining instead of plain SHA-256; must be written as `${ENV_VAR}`.
    pub hmac_key: Option<String>,
    /// TLS to the audit database, as `database.tls`.
    pub postgres_tls: Option<DatabaseTls>,
    /// CA certificates for the audit database, as `database.tls_ca_file`.
    pub postgres_tls_ca_file: Option<String>,
}

impl AuditConfig {
    /// `postgres_tls` and `postgres_tls_ca_file`.
    pub fn postgres_tls_settings(&self) -> TlsSettings {
        TlsSettings {
            mode: self.postgres_tls,
            ca_file: self.postgres_tls_ca_file.clone(),
        }
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            stderr: true,
            file: None,
            file_max_bytes: 100 * 1024 * 1024,
            file_keep: 10,
            postgres_url: None,
            failure_policy: FailurePolicy::FailClosed,
            hmac_key: None,
            postgres_tls: None,
            postgres_tls_ca_file: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    FailClosed,
    FailOpen,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    /// Name reported to MCP clients.
    pub name: String,
    /// The principal recorded for stdio sessions.
    pub stdio_principal: String,
    /// Reload the config when the file changes (besides on SIGHUP).
    pub watch_config: bool,
    /// Claims of the stdio principal (row filters, bound parameters, session settings).
    pub stdio_claims: BTreeMap<String, String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            name: "pgward".into(),
            stdio_principal: "stdio:local".into(),
            watch_config: false,
            stdio_claims: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DatabaseConfig {
    /// Connection URL; write secrets as `${ENV_VAR}`.
    pub url: String,
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    #[serde(default = "default_statement_timeout_ms")]
    pub statement_timeout_ms: u64,
    #[serde(default = "default_lock_timeout_ms")]
    pub lock_timeout_ms: u64,
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_in_transaction_timeout_ms: u64,
    /// Schemas unqualified table names resolve to, in order.
    #[serde(default = "default_schemas")]
    pub schemas: Vec<String>,
    /// Serve even if the role is a superuser, bypasses RLS or can write. Logged loudly.
    #[serde(default)]
    pub allow_privileged_role: bool,
    /// TLS to PostgreSQL. Unset: `verify-full` when the URL says `sslmode=require` (or
    /// `sslnegotiation=direct`) or `tls_ca_file` is set, plain text to a server on this
    /// machine, and anything else refused.
    #[serde(default)]
    pub tls: Option<DatabaseTls>,
    /// CA certificates (PEM) the server's certificate must chain to, instead of the system
    /// trust store. Only with TLS.
    #[serde(default)]
    pub tls_ca_file: Option<String>,
}

impl DatabaseConfig {
    /// `tls` and `tls_ca_file`.
    pub fn tls_settings(&self) -> TlsSettings {
        TlsSettings {
            mode: self.tls,
            ca_file: self.tls_ca_file.clone(),
        }
    }
}

/// The TLS settings that go with one connection URL (see `db::tls`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// Unset: `verify-full` for `sslmode=require` or a CA file, plain text to this machine,
    /// a remote server refused.
    pub mode: Option<DatabaseTls>,
    /// CA certificates (PEM) instead of the system trust store.
    pub ca_file: Option<String>,
}

/// How pgward connects to PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum DatabaseTls {
    /// TLS required, the server's certificate verified against the trust store and its name
    /// against the host connected to (libpq's `sslmode=verify-full`).
    #[serde(rename = "verify-full")]
    VerifyFull,
    /// Plain text, for a network the operator trusts.
    #[serde(rename = "off")]
    Off,
}

fn default_pool_size() -> usize {
    4
}
fn default_connect_timeout_ms() -> u64 {
    5_000
}
fn default_statement_timeout_ms() -> u64 {
    5_000
}
fn default_lock_timeout_ms() -> u64 {
    1_000
}
fn default_idle_timeout_ms() -> u64 {
    10_000
}
fn default_schemas() -> Vec<String> {
    vec!["public".into()]
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LimitsConfig {
    pub max_rows: u64,
    pub max_result_bytes: usize,
    pub max_sql_length: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_rows: 1_000,
            max_result_bytes: 1_048_576,
            max_sql_length: 20_000,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RedactionConfig {
    /// Key for the `hash` strategy; required when any column uses it. Write it as `${ENV_VAR}`.
    pub hash_key: Option<String>,
    /// Case-insensitive patterns for sensitive keys; `None` means the built-in list.
    pub key_patterns: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct FunctionsConfig {
    /// Functions added to the default allowlist (`name` for pg_catalog, or `schema.name`).
    pub allow: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ColumnsConfig {
    /// `"all"`.
    Keyword(String),
    List(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct HttpConfig {
    /// Address to listen on.
    pub listen: String,
    /// The endpoint path.
    pub path: String,
    /// This server's canonical URL as clients reach it (the token audience, RFC 8707).
    pub public_url: String,
    /// Listening on a non-loopback address without TLS is refused unless TLS ends at a
    /// trusted proxy in front of pgward.
    pub tls_terminated_by_proxy: bool,
    /// Accepted `Host` values (`host` or `host:port`); default: loopback names.
    pub allowed_hosts: Vec<String>,
    /// Accepted browser `Origin` values; a request with any other Origin is refused.
    pub allowed_origins: Vec<String>,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Longest a request may take, in milliseconds.
    pub request_timeout_ms: u64,
    /// Authorization servers named in the protected resource metadata (RFC 9728).
    pub authorization_servers: Vec<String>,
    /// Requests per second per principal, and the burst above it.
    pub rate_per_principal: u32,
    pub burst_per_principal: u32,
    /// Requests per second for all principals together, and the burst above it.
    pub rate_global: u32,
    pub burst_global: u32,
    /// Failed authentications per minute per client address before it is throttled.
    pub failed_auth_per_minute: u32,
    /// Calls one principal may have in flight at once.
    pub max_in_flight_per_principal: u32,
    /// Proxies whose `X-Forwarded-For` is believed (read from the right); from anyone else
    /// the header is ignored and the connection's address is the client's.
    pub trusted_proxies: Vec<String>,
    /// Open connections at once; more are closed on accept.
    pub max_connections: u32,
    /// Serve HTTPS with this certificate chain and key (PEM files).
    pub tls: Option<TlsConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, leaf first.
    pub cert_file: String,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
    /// PEM file with the CA certificate(s) that client certificates must chain to; setting it
    /// turns on mutual TLS.
    #[serde(default)]
    pub client_ca_file: Option<String>,
    /// With `client_ca_file`: `required` (default; a connection without a valid client
    /// certificate fails the handshake) or `optional` (clients may present a bearer token
    /// instead).
    #[serde(default)]
    pub client_auth: Option<ClientAuth>,
    /// PEM files with certificate revocation lists for client certificates.
    #[serde(default)]
    pub client_crl_files: Vec<String>,
}

/// Whether a client certificate is required in the TLS handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    Required,
    Optional,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            path: "/mcp".into(),
            public_url: String::new(),
            tls_terminated_by_proxy: false,
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into()],
            allowed_origins: vec![],
            max_body_bytes: 1_048_576,
            request_timeout_ms: 60_000,
            authorization_servers: vec![],
            rate_per_principal: 10,
            burst_per_principal: 20,
            rate_global: 100,
            burst_global: 200,
            failed_auth_per_minute: 10,
            max_in_flight_per_principal: 4,
            trusted_proxies: vec![],
            max_connections: 1024,
            tls: None,
        }
    }
}

/// Which scope each tool needs, and how scopes imply each other.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ScopesConfig {
    pub query: String,
    pub list_tables: String,
    pub describe_table: String,
    /// `"db:admin" = ["db:read"]`: holding the key grants the listed scopes too.
    pub implies: BTreeMap<String, Vec<String>>,
    /// Scopes of the stdio principal; default: every scope the config mentions.
    pub stdio: Option<Vec<String>>,
}

impl Default for ScopesConfig {
    fn default() -> Self {
        Self {
            query: "db:read".into(),
            list_tables: "db:read".into(),
            describe_table: "db:read".into(),
            implies: BTreeMap::new(),
            stdio: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct TableConfig {
    /// `schema.table`, or `table` for the first of `database.schemas`.
    pub name: String,
    /// A list of column names, or `"all"`.
    pub columns: ColumnsConfig,
    #[serde(default)]
    pub description: Option<String>,
    /// Column name to strategy (`mask`, `hash`, `drop`).
    #[serde(default)]
    pub redact: BTreeMap<String, Strategy>,
    /// A scope a caller needs to read this table (on top of the tool's scope).
    #[serde(default)]
    pub scope: Option<String>,
    /// Only rows whose `column` equals the caller's `claim`: pgward wraps every reference to
    /// the table in a filtered subquery, so no SQL the model writes can see other rows.
    #[serde(default)]
    pub row_filter: Option<RowFilterConfig>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RowFilterConfig {
    /// The table's column compared (it need not be visible to the model).
    pub column: String,
    /// The claim of the caller's identity it must equal.
    pub claim: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ToolConfig {
    pub name: String,
    pub description: String,
    /// A SELECT with `$1..$n` for the parameters, in declaration order.
    pub sql: String,
    #[serde(default)]
    pub params: Vec<ParamConfig>,
    /// The scope a caller needs to see and call this tool.
    #[serde(default = "default_tool_scope")]
    pub scope: String,
}

fn default_tool_scope() -> String {
    "db:read".into()
}

#[derive(Debug, Clone, Deserialize)]
pub struct ParamConfig {
    pub name: String,
    /// `string`, `integer`, `number` or `boolean`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub pattern: Option<String>,
    #[serde(default)]
    pub min_length: Option<u64>,
    #[serde(default)]
    pub max_length: Option<u64>,
    #[serde(default)]
    pub minimum: Option<f64>,
    #[serde(default)]
    pub maximum: Option<f64>,
    #[serde(default, rename = "enum")]
    pub allowed: Option<Vec<toml::Value>>,
    #[serde(default)]
    pub default: Option<toml::Value>,
    /// Bind this parameter to a claim of the caller's identity: it is not in the tool's input
    /// schema, a value the model supplies is refused, and a caller without the claim is
    /// refused.
    #[serde(default)]
    pub claim: Option<String>,
}
