//! CORE: checks a parsed config and builds what the engine runs on. Every problem is reported
//! at once, each naming its key; the server does not start on any of them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::types::{
    AuditConfig, ColumnsConfig, Config, DatabaseConfig, HttpConfig, ParamConfig, ToolConfig,
};
use crate::auth::config::AuthConfig;
use crate::policy::scopes::ScopePolicy;
use crate::policy::{
    ColumnRule, Columns, FunctionAllowlist, Policy, QualifiedName, RowFilter, TableRule,
};
use crate::redact::{DEFAULT_KEY_PATTERNS, Redactor, Strategy};
use crate::sql::fingerprint::{Fingerprint, FingerprintError, fingerprint};
use crate::sql::{self, Checked, DEFAULT_FUNCTIONS, DENIED_FUNCTIONS, ParamMode};

/// Names of the built-in tools; lookup tools may not take them.
pub const BUILTIN_TOOLS: &[&str] = &["query", "list_tables", "describe_table"];

/// A lookup tool parameter's JSON type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    String,
    Integer,
    Number,
    Boolean,
}

impl ParamType {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "string" => Some(Self::String),
            "integer" => Some(Self::Integer),
            "number" => Some(Self::Number),
            "boolean" => Some(Self::Boolean),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Integer => "integer",
            Self::Number => "number",
            Self::Boolean => "boolean",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    pub kind: ParamType,
    pub default: Option<Value>,
    /// Bound to this claim of the caller: never from the model.
    pub claim: Option<String>,
}

/// A validated lookup tool.
#[derive(Clone)]
pub struct ToolDef {
    pub name: String,
    pub description: String,
    pub checked: Checked,
    pub params: Vec<Param>,
    pub input_schema: Map<String, Value>,
    pub validator: Arc<jsonschema::Validator>,
    /// The audit trail's record of `checked.sql`: the same text on every call, so it is
    /// normalized and fingerprinted once, here.
    pub fingerprint: Result<Fingerprint, FingerprintError>,
}

impl std::fmt::Debug for ToolDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolDef")
            .field("name", &self.name)
            .field("sql", &self.checked.sql)
            .finish_non_exhaustive()
    }
}

/// Everything the server runs on, derived from a valid config.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server_name: String,
    pub stdio_principal: String,
    pub database: DatabaseConfig,
    pub policy: Policy,
    pub redactor: Redactor,
    pub max_result_bytes: usize,
    pub tools: Vec<ToolDef>,
    /// Tables declared with `columns = "all"`, whose columns the server reads at start-up.
    pub all_column_tables: Vec<QualifiedName>,
    /// Which scopes tools and tables need.
    pub scopes: ScopePolicy,
    /// The scopes of the stdio principal.
    pub stdio_scopes: BTreeSet<String>,
    /// Streamable HTTP settings, when pgward serves over the network.
    pub http: Option<HttpConfig>,
    pub auth: AuthConfig,
    pub audit: AuditConfig,
    pub admin: Option<crate::admin::AdminConfig>,
    /// Reload the config when its file changes.
    pub watch_config: bool,
    /// Claims of the stdio principal.
    pub stdio_claims: BTreeMap<String, String>,
    /// `(setting, claim)`: transaction-local settings made from the caller's claims.
    pub session_settings: Vec<(String, String)>,
    /// `(scope, role)` in config order: a call runs as the first role whose scope the caller
    /// holds; with roles configured, a caller holding none is refused.
    pub roles: Vec<(String, String)>,
}

/// Validates `config`. `catalog` gives the real column list of tables declared with
/// `columns = "all"` (the server reads it at start-up); offline it is empty and such tables
/// accept any column name.
pub fn validate(
    config: &Config,
    catalog: &BTreeMap<QualifiedName, Vec<String>>,
) -> Result<Settings, Vec<String>> {
    let mut problems: Vec<String> = config
        .unknown_keys
        .iter()
        .map(|k| format!("{k}: unknown key"))
        .collect();
    let db = &config.database;
    if db.url.trim().is_empty() {
        problems.push("database.url: must not be empty".into());
    } else if let Some(problem) =
        crate::db::tls::check_url(&db.url, &db.tls_settings(), &crate::db::tls::DATABASE_KEYS)
    {
        problems.push(problem);
    }
    if db.pool_size == 0 || db.pool_size > 256 {
        problems.push(format!(
            "database.pool_size: must be between 1 and 256, got {}",
            db.pool_size
        ));
    }
    for (key, value, max) in [
        (
            "database.statement_timeout_ms",
            db.statement_timeout_ms,
            600_000,
        ),
        ("database.lock_timeout_ms", db.lock_timeout_ms, 600_000),
        (
            "database.idle_in_transaction_timeout_ms",
            db.idle_in_transaction_timeout_ms,
            3_600_000,
        ),
        (
            "database.connect_timeout_ms",
            db.connect_timeout_ms,
            600_000,
        ),
    ] {
        // Zero means "no timeout" to PostgreSQL: a weakening setting, so it is refused.
        if value == 0 || value > max {
            problems.push(format!("{key}: must be between 1 and {max}, got {value}"));
        }
    }
    let mut schemas = Vec::new();
    if db.schemas.is_empty() {
        problems.push("database.schemas: name at least one schema".into());
    }
    for s in &db.schemas {
        if is_system_schema(s) || s.is_empty() {
            problems.push(format!(
                "database.schemas: `{s}` cannot be used; system schemas are never searched for model tables"
            ));
        } else {
            schemas.push(s.clone());
        }
    }
    let limits = &config.limits;
    if limits.max_rows == 0 || limits.max_rows > 100_000 {
        problems.push(format!(
            "limits.max_rows: must be between 1 and 100000, got {}",
            limits.max_rows
        ));
    }
    if limits.max_result_bytes < 1024 || limits.max_result_bytes > 64 * 1024 * 1024 {
        problems.push(format!(
            "limits.max_result_bytes: must be between 1024 and 67108864, got {}",
            limits.max_result_bytes
        ));
    }
    // The parser builds one tree node per operator of a long chain and frees the tree
    // recursively, so the text length is bounded well below what a worker stack can free.
    if limits.max_sql_length < 16 || limits.max_sql_length > 65_536 {
        problems.push(format!(
            "limits.max_sql_length: must be between 16 and 65536, got {}",
            limits.max_sql_length
        ));
    }

    // Functions.
    let mut extra = BTreeSet::new();
    for f in &config.functions.allow {
        let lower = f.to_ascii_lowercase();
        let base = lower.rsplit('.').next().unwrap_or("");
        if DENIED_FUNCTIONS.contains(&base) {
            problems.push(format!(
                "functions.allow: `{f}` is on pgward's deny list (it reads files, sleeps, changes settings, takes locks or runs SQL text) and cannot be allowed"
            ));
        } else if lower.split('.').count() > 2 || base.is_empty() {
            problems.push(format!(
                "functions.allow: `{f}` must be `name` or `schema.name`"
            ));
        } else {
            extra.insert(lower);
        }
    }

    // Tables.
    let mut tables = BTreeMap::new();
    let mut all_column_tables = Vec::new();
    let mut uses_hash = false;
    for (i, t) in config.tables.iter().enumerate() {
        let key = format!("tables[{i}] (`{}`)", t.name);
        let name = match t.name.split('.').collect::<Vec<_>>().as_slice() {
            [table] if !table.is_empty() => schemas.first().map(|s| QualifiedName {
                schema: s.clone(),
                name: (*table).to_string(),
            }),
            [schema, table] if !schema.is_empty() && !table.is_empty() => Some(QualifiedName {
                schema: (*schema).to_string(),
                name: (*table).to_string(),
            }),
            _ => None,
        };
        let Some(name) = name else {
            problems.push(format!("{key}.name: must be `table` or `schema.table`"));
            continue;
        };
        if is_system_schema(&name.schema) {
            problems.push(format!(
                "{key}.name: system catalog tables cannot be allowlisted; schema browsing is served by list_tables and describe_table"
            ));
            continue;
        }
        if !schemas.contains(&name.schema) {
            problems.push(format!(
                "{key}.name: schema `{}` is not in database.schemas",
                name.schema
            ));
        }
        if tables.contains_key(&name) {
            problems.push(format!("{key}.name: `{name}` is listed twice"));
            continue;
        }
        let mut redact_rules = Vec::new();
        for (col, strategy) in &t.redact {
            uses_hash |= *strategy == Strategy::Hash;
            redact_rules.push(ColumnRule {
                name: col.clone(),
                redact: Some(*strategy),
            });
        }
        let columns = match &t.columns {
            ColumnsConfig::Keyword(k) if k == "all" => {
                all_column_tables.push(name.clone());
                match catalog.get(&name) {
                    Some(cols) => {
                        for r in &redact_rules {
                            if !cols.contains(&r.name) {
                                problems.push(format!(
                                    "{key}.redact: column `{}` does not exist in the table",
                                    r.name
                                ));
                            }
                        }
                        column_list(cols, &t.redact)
                    }
                    None => Columns::All {
                        redacted: redact_rules,
                    },
                }
            }
            ColumnsConfig::Keyword(k) => {
                problems.push(format!(
                    "{key}.columns: must be a list of column names or \"all\", got \"{k}\""
                ));
                continue;
            }
            ColumnsConfig::List(cols) => {
                if cols.is_empty() {
                    problems.push(format!("{key}.columns: list at least one column"));
                }
                let mut seen = BTreeSet::new();
                for c in cols {
                    if !seen.insert(c) {
                        problems.push(format!("{key}.columns: `{c}` is listed twice"));
                    }
                }
                for r in &redact_rules {
                    if !cols.contains(&r.name) {
                        problems.push(format!(
                            "{key}.redact: column `{}` is not in columns; a redacted column must be listed as visible",
                            r.name
                        ));
                    }
                }
                column_list(cols, &t.redact)
            }
        };
        tables.insert(name.clone(), {
            if let Some(f) = &t.row_filter {
                if !valid_claim_name(&f.claim) {
                    problems.push(format!(
                        "{key}.row_filter.claim: `{}` is not a claim name",
                        f.claim
                    ));
                }
                if f.column.is_empty()
                    || f.column.len() > 63
                    || !f
                        .column
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                {
                    problems.push(format!(
                        "{key}.row_filter.column: `{}` must be a lower-case column name",
                        f.column
                    ));
                }
            }
            TableRule {
                name,
                columns,
                description: t.description.clone(),
                row_filter: t.row_filter.as_ref().map(|f| RowFilter {
                    column: f.column.clone(),
                    claim: f.claim.clone(),
                }),
            }
        });
    }
    if tables.is_empty() {
        problems.push("tables: allowlist at least one table".into());
    }

    // Redaction.
    let hash_key = config.redaction.hash_key.clone().unwrap_or_default();
    if uses_hash && hash_key.is_empty() {
        problems
            .push("redaction.hash_key: required because a column uses the `hash` strategy".into());
    }
    let patterns: Vec<String> = match &config.redaction.key_patterns {
        Some(p) => p.clone(),
        None => DEFAULT_KEY_PATTERNS.iter().map(|s| s.to_string()).collect(),
    };
    let redactor = match Redactor::new(&patterns, hash_key.into_bytes()) {
        Ok(r) => Some(r),
        Err(e) => {
            problems.push(format!("redaction.key_patterns: {e}"));
            None
        }
    };

    let policy = Policy {
        schemas,
        tables,
        functions: FunctionAllowlist {
            builtin: DEFAULT_FUNCTIONS.iter().map(|s| s.to_string()).collect(),
            extra,
        },
        max_rows: limits.max_rows.max(1),
        max_sql_length: limits.max_sql_length,
    };

    // Tools.
    let mut tools = Vec::new();
    let mut names = BTreeSet::new();
    for (i, t) in config.tools.iter().enumerate() {
        let key = format!("tools[{i}] (`{}`)", t.name);
        if !names.insert(t.name.clone()) {
            problems.push(format!("{key}.name: `{}` is defined twice", t.name));
        }
        match build_tool(t, &policy, &key) {
            Ok(tool) => tools.push(tool),
            Err(mut p) => problems.append(&mut p),
        }
    }

    let scopes = build_scopes(config, &tables_scopes(config, &policy), &mut problems);
    let stdio_scopes: BTreeSet<String> = match &config.scopes.stdio {
        Some(list) => list.iter().cloned().collect(),
        None => scopes.all_scopes(),
    };
    if let Some(http) = &config.http {
        validate_http(http, config, &mut problems);
    }
    validate_audit(&config.audit, &mut problems);
    let mut role_scopes = BTreeSet::new();
    for (i, r) in config.roles.iter().enumerate() {
        let key = format!("roles[{i}]");
        if r.scope.trim().is_empty() {
            problems.push(format!("{key}.scope: must not be empty"));
        } else if !role_scopes.insert(r.scope.clone()) {
            problems.push(format!("{key}.scope: `{}` is mapped twice", r.scope));
        }
        let plain = r.role.len() <= 63
            && r.role
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && r.role
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !plain {
            problems.push(format!(
                "{key}.role: `{}` must be a plain lower-case role name",
                r.role
            ));
        }
    }
    for (setting, claim) in &config.session.settings {
        let part = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        // A custom setting (`prefix.name`) only: never one of PostgreSQL's own, which could
        // change how the query runs.
        let custom = matches!(setting.split_once('.'), Some((a, b)) if part(a) && part(b));
        if !custom {
            problems.push(format!(
                "session.settings: `{setting}` must be a custom setting like `pgward.tenant`"
            ));
        }
        if setting == crate::db::IN_CALL_SETTING {
            problems.push(format!(
                "session.settings: `{setting}` is pgward's own setting; choose another name"
            ));
        }
        if !valid_claim_name(claim) {
            problems.push(format!(
                "session.settings.\"{setting}\": `{claim}` is not a claim name"
            ));
        }
    }
    if let Some(admin) = &config.admin {
        problems.extend(admin.validate());
        if let Some(http) = &config.http
            && admin.listen == http.listen
        {
            problems.push(format!(
                "admin.listen: `{}` is also http.listen; the admin listener needs its own port",
                admin.listen
            ));
        }
    }

    match redactor {
        Some(redactor) if problems.is_empty() => Ok(Settings {
            server_name: config.server.name.clone(),
            stdio_principal: config.server.stdio_principal.clone(),
            database: config.database.clone(),
            policy,
            redactor,
            max_result_bytes: limits.max_result_bytes,
            tools,
            all_column_tables,
            scopes,
            stdio_scopes,
            http: config.http.clone(),
            auth: config.auth.clone(),
            audit: config.audit.clone(),
            admin: config.admin.clone(),
            watch_config: config.server.watch_config,
            stdio_claims: config.server.stdio_claims.clone(),
            session_settings: config
                .session
                .settings
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            roles: config
                .roles
                .iter()
                .map(|r| (r.scope.clone(), r.role.clone()))
                .collect(),
        }),
        _ => Err(problems),
    }
}

/// `schema.table` to its scope, for tables that declare one.
fn tables_scopes(config: &Config, policy: &Policy) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for t in &config.tables {
        let Some(scope) = &t.scope else { continue };
        let qualified = if t.name.contains('.') {
            t.name.clone()
        } else {
            format!(
                "{}.{}",
                policy.schemas.first().cloned().unwrap_or_default(),
                t.name
            )
        };
        out.insert(qualified, scope.clone());
    }
    out
}

fn valid_scope(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')
}

fn build_scopes(
    config: &Config,
    tables: &BTreeMap<String, String>,
    problems: &mut Vec<String>,
) -> ScopePolicy {
    let sc = &config.scopes;
    let mut tools = BTreeMap::new();
    tools.insert("query".to_string(), sc.query.clone());
    tools.insert("list_tables".to_string(), sc.list_tables.clone());
    tools.insert("describe_table".to_string(), sc.describe_table.clone());
    for t in &config.tools {
        tools.insert(t.name.clone(), t.scope.clone());
    }
    for (tool, scope) in &tools {
        if !valid_scope(scope) {
            problems.push(format!(
                "scopes (`{tool}`): `{scope}` is not a valid scope (printable ASCII, no spaces or quotes)"
            ));
        }
    }
    for (table, scope) in tables {
        if !valid_scope(scope) {
            problems.push(format!(
                "tables (`{table}`).scope: `{scope}` is not a valid scope"
            ));
        }
    }
    let mut implies = BTreeMap::new();
    for (k, v) in &sc.implies {
        for s in std::iter::once(k).chain(v.iter()) {
            if !valid_scope(s) {
                problems.push(format!("scopes.implies: `{s}` is not a valid scope"));
            }
        }
        implies.insert(k.clone(), v.iter().cloned().collect());
    }
    ScopePolicy {
        tools,
        tables: tables.clone(),
        implies,
    }
}

fn validate_audit(audit: &AuditConfig, problems: &mut Vec<String>) {
    let tls = audit.postgres_tls_settings();
    match &audit.postgres_url {
        Some(url) => {
            if let Some(problem) = crate::db::tls::check_url(url, &tls, &crate::db::tls::AUDIT_KEYS)
            {
                problems.push(problem);
            }
        }
        None if tls != super::types::TlsSettings::default() => problems.push(
            "audit.postgres_tls and audit.postgres_tls_ca_file apply only with audit.postgres_url"
                .into(),
        ),
        None => {}
    }
    if !audit.stderr && audit.file.is_none() && audit.postgres_url.is_none() {
        problems.push(
            "audit: no sink is configured; set audit.stderr = true, audit.file or audit.postgres_url (every call must leave an event)"
                .into(),
        );
    }
    if let Some(file) = &audit.file
        && file.trim().is_empty()
    {
        problems.push("audit.file: must not be empty".into());
    }
    if audit.file_max_bytes < 64 * 1024 {
        problems.push(format!(
            "audit.file_max_bytes: must be at least 65536, got {}",
            audit.file_max_bytes
        ));
    }
    if audit.file_keep == 0 || audit.file_keep > 1000 {
        problems.push(format!(
            "audit.file_keep: must be between 1 and 1000, got {}",
            audit.file_keep
        ));
    }
    if let Some(key) = &audit.hmac_key
        && !key.contains("${")
        && key.len() < 32
    {
        problems.push("audit.hmac_key: shorter than 32 bytes".into());
    }
}

fn validate_http(http: &HttpConfig, config: &Config, problems: &mut Vec<String>) {
    match http.listen.parse::<core::net::SocketAddr>() {
        Err(_) => problems.push(format!(
            "http.listen: `{}` is not an address like 127.0.0.1:8080",
            http.listen
        )),
        Ok(addr)
            if !addr.ip().is_loopback()
                && !http.tls_terminated_by_proxy
                && http.tls.is_none() =>
        {
            problems.push(format!(
                "http.listen: `{}` is not a loopback address; pgward does not serve plain HTTP on the network: configure http.tls, or terminate TLS at a trusted proxy and set http.tls_terminated_by_proxy = true",
                http.listen
            ))
        }
        Ok(_) => {}
    }
    if !http.path.starts_with('/') || http.path.len() < 2 || http.path.contains(['?', '#', ' ']) {
        problems.push(format!(
            "http.path: `{}` must be a path like /mcp",
            http.path
        ));
    }
    // http:// only on a loopback host, compared exactly (not as a prefix: that would let
    // `http://localhost.example.com` through).
    let loopback_http = http
        .public_url
        .strip_prefix("http://")
        .map(|rest| rest.split('/').next().unwrap_or(""))
        .is_some_and(|authority| {
            let host = match authority.rsplit_once(':') {
                Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => h,
                _ => authority,
            };
            matches!(host, "localhost" | "127.0.0.1" | "[::1]")
        });
    let url_ok = (http.public_url.starts_with("https://") || loopback_http)
        && !http.public_url.contains(['#', '?', ' ']);
    if !url_ok {
        problems.push(format!(
            "http.public_url: `{}` must be this server's canonical URL (https://..., or http:// on loopback), without query or fragment",
            http.public_url
        ));
    }
    if http.tls.is_some() && http.tls_terminated_by_proxy {
        problems.push(
            "http.tls: set either http.tls (pgward terminates TLS) or http.tls_terminated_by_proxy, not both".into(),
        );
    }
    if http.tls.is_some() && !http.public_url.starts_with("https://") {
        problems.push(format!(
            "http.public_url: `{}` must be https:// when pgward serves TLS",
            http.public_url
        ));
    }
    if http.max_body_bytes < 1024 || http.max_body_bytes > 16 * 1024 * 1024 {
        problems.push(format!(
            "http.max_body_bytes: must be between 1024 and 16777216, got {}",
            http.max_body_bytes
        ));
    }
    if http.request_timeout_ms == 0 || http.request_timeout_ms > 600_000 {
        problems.push(format!(
            "http.request_timeout_ms: must be between 1 and 600000, got {}",
            http.request_timeout_ms
        ));
    }
    for (key, v) in [
        ("http.rate_per_principal", http.rate_per_principal),
        ("http.burst_per_principal", http.burst_per_principal),
        ("http.rate_global", http.rate_global),
        ("http.burst_global", http.burst_global),
        ("http.failed_auth_per_minute", http.failed_auth_per_minute),
        (
            "http.max_in_flight_per_principal",
            http.max_in_flight_per_principal,
        ),
        ("http.max_connections", http.max_connections),
    ] {
        if v == 0 {
            problems.push(format!("{key}: must be at least 1"));
        }
    }
    for p in &http.trusted_proxies {
        let net = p
            .parse::<ipnet::IpNet>()
            .ok()
            .or_else(|| p.parse::<core::net::IpAddr>().ok().map(ipnet::IpNet::from));
        match net {
            None => problems.push(format!(
                "http.trusted_proxies: `{p}` is not an IP address or a network like 10.0.0.0/8"
            )),
            // Trusting every address would let any client name its own address.
            Some(n) if n.prefix_len() == 0 => problems.push(format!(
                "http.trusted_proxies: `{p}` trusts every address; list the proxies' addresses or network"
            )),
            Some(_) => {}
        }
    }
    if http.allowed_origins.iter().any(|o| o == "*") {
        problems.push("http.allowed_origins: `*` is not allowed; list the origins".into());
    }
    let client_ca = http
        .tls
        .as_ref()
        .is_some_and(|t| t.client_ca_file.is_some());
    if let Some(tls) = &http.tls
        && tls.client_ca_file.is_none()
    {
        if tls.client_auth.is_some() {
            problems.push("http.tls.client_auth: only used with http.tls.client_ca_file".into());
        }
        if !tls.client_crl_files.is_empty() {
            problems
                .push("http.tls.client_crl_files: only used with http.tls.client_ca_file".into());
        }
    }
    if !config.auth.client_certs.is_empty() && !client_ca {
        problems.push(
            "auth.client_certs: client certificates need http.tls with client_ca_file (pgward must terminate TLS itself to verify them)"
                .into(),
        );
    }
    if config.auth.issuers.is_empty()
        && config.auth.api_keys.is_empty()
        && config.auth.client_certs.is_empty()
    {
        problems.push(
            "auth: serving over HTTP needs at least one token issuer, API key or client certificate; pgward never serves anonymous network clients"
                .into(),
        );
    }
}

/// A claim name pgward can look up: a short plain name (no paths into nested claims).
pub fn valid_claim_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
}

fn column_list(cols: &[String], redact: &BTreeMap<String, Strategy>) -> Columns {
    Columns::List(
        cols.iter()
            .map(|c| ColumnRule {
                name: c.clone(),
                redact: redact.get(c).copied(),
            })
            .collect(),
    )
}

fn is_system_schema(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    l == "information_schema" || l.starts_with("pg_")
}

fn build_tool(t: &ToolConfig, policy: &Policy, key: &str) -> Result<ToolDef, Vec<String>> {
    let mut problems = Vec::new();
    let valid_name = !t.name.is_empty()
        && t.name.len() <= 64
        && t.name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid_name {
        problems.push(format!("{key}.name: use 1-64 letters, digits, `_` or `-`"));
    }
    if BUILTIN_TOOLS.contains(&t.name.as_str()) {
        problems.push(format!("{key}.name: `{}` is a built-in tool", t.name));
    }
    if t.description.trim().is_empty() {
        problems.push(format!("{key}.description: must not be empty"));
    }
    let mut properties = Map::new();
    let mut required = Vec::new();
    let mut params = Vec::new();
    let mut seen = BTreeSet::new();
    for (j, p) in t.params.iter().enumerate() {
        let pkey = format!("{key}.params[{j}] (`{}`)", p.name);
        if !seen.insert(p.name.clone()) {
            problems.push(format!("{pkey}.name: defined twice"));
        }
        match param_schema(p, &pkey) {
            Ok((kind, schema, default)) => {
                if let Some(claim) = &p.claim {
                    // INVARIANT: a claim-bound parameter is not in the input schema; the
                    // model never sees it and cannot supply it.
                    if !valid_claim_name(claim) {
                        problems.push(format!(
                            "{pkey}.claim: `{claim}` is not a claim name (letters, digits, `_`, `-`, `.`, `:`)"
                        ));
                    }
                    if default.is_some() {
                        problems.push(format!(
                            "{pkey}.default: a claim-bound parameter has no default (a caller without the claim is refused)"
                        ));
                    }
                    if !matches!(kind, ParamType::String | ParamType::Integer) {
                        problems.push(format!(
                            "{pkey}.type: a claim-bound parameter is a string or an integer"
                        ));
                    }
                } else {
                    if default.is_none() {
                        required.push(Value::String(p.name.clone()));
                    }
                    properties.insert(p.name.clone(), schema);
                }
                params.push(Param {
                    name: p.name.clone(),
                    kind,
                    default,
                    claim: p.claim.clone(),
                });
            }
            Err(mut e) => problems.append(&mut e),
        }
    }
    let mut input_schema = Map::new();
    input_schema.insert("type".into(), json!("object"));
    input_schema.insert("properties".into(), Value::Object(properties));
    input_schema.insert("required".into(), Value::Array(required));
    input_schema.insert("additionalProperties".into(), json!(false));
    let validator = match jsonschema::validator_for(&Value::Object(input_schema.clone())) {
        Ok(v) => Some(Arc::new(v)),
        Err(e) => {
            problems.push(format!("{key}.params: {}", e.masked()));
            None
        }
    };
    let checked = match sql::check(
        policy,
        &t.sql,
        ParamMode::Tool {
            count: t.params.len(),
        },
    ) {
        Ok(c) => {
            if c.placeholders != t.params.len() {
                problems.push(format!(
                    "{key}.sql: declares {} parameter(s) but the SQL uses up to ${}; every parameter must be used",
                    t.params.len(),
                    c.placeholders
                ));
            }
            Some(c)
        }
        Err(violations) => {
            for v in violations {
                problems.push(format!("{key}.sql: {v}"));
            }
            None
        }
    };
    match (checked, validator) {
        (Some(checked), Some(validator)) if problems.is_empty() => Ok(ToolDef {
            name: t.name.clone(),
            description: t.description.clone(),
            fingerprint: fingerprint(&checked.sql),
            checked,
            params,
            input_schema,
            validator,
        }),
        _ => Err(problems),
    }
}

type ParamParts = (ParamType, Value, Option<Value>);

fn param_schema(p: &ParamConfig, key: &str) -> Result<ParamParts, Vec<String>> {
    let mut problems = Vec::new();
    let Some(kind) = ParamType::parse(&p.kind) else {
        return Err(vec![format!(
            "{key}.type: must be string, integer, number or boolean, got `{}`",
            p.kind
        )]);
    };
    let mut schema = Map::new();
    schema.insert("type".into(), json!(kind.as_str()));
    if let Some(d) = &p.description {
        schema.insert("description".into(), json!(d));
    }
    let is_string = kind == ParamType::String;
    let is_numeric = matches!(kind, ParamType::Integer | ParamType::Number);
    for (name, value, applies) in [
        ("pattern", p.pattern.as_ref().map(|v| json!(v)), is_string),
        ("minLength", p.min_length.map(|v| json!(v)), is_string),
        ("maxLength", p.max_length.map(|v| json!(v)), is_string),
        ("minimum", p.minimum.map(|v| json!(v)), is_numeric),
        ("maximum", p.maximum.map(|v| json!(v)), is_numeric),
    ] {
        if let Some(v) = value {
            if applies {
                schema.insert(name.into(), v);
            } else {
                problems.push(format!(
                    "{key}: `{name}` does not apply to a {} parameter",
                    kind.as_str()
                ));
            }
        }
    }
    if let (Some(a), Some(b)) = (p.min_length, p.max_length)
        && a > b
    {
        problems.push(format!("{key}: min_length is greater than max_length"));
    }
    if let (Some(a), Some(b)) = (p.minimum, p.maximum)
        && a > b
    {
        problems.push(format!("{key}: minimum is greater than maximum"));
    }
    if is_string && p.max_length.is_none() && p.allowed.is_none() {
        // Unbounded strings are a needless resource risk; pgward bounds them by default.
        schema.insert("maxLength".into(), json!(1024));
    }
    if let Some(values) = &p.allowed {
        let vals: Vec<Value> = values.iter().map(toml_to_json).collect();
        if vals.is_empty() {
            problems.push(format!("{key}.enum: list at least one value"));
        }
        schema.insert("enum".into(), Value::Array(vals));
    }
    let schema = Value::Object(schema);
    match jsonschema::validator_for(&schema) {
        Err(e) => problems.push(format!("{key}: invalid constraint: {}", e.masked())),
        Ok(v) => {
            if let Some(Value::Array(vals)) = schema.get("enum") {
                for val in vals {
                    let mut bare = schema.clone();
                    if let Some(o) = bare.as_object_mut() {
                        o.remove("enum");
                    }
                    if !jsonschema::is_valid(&bare, val) {
                        problems.push(format!(
                            "{key}.enum: value {val} does not satisfy the parameter's type and constraints"
                        ));
                    }
                }
            }
            if let Some(d) = &p.default {
                let d = toml_to_json(d);
                if !v.is_valid(&d) {
                    problems.push(format!(
                        "{key}.default: {d} does not satisfy the parameter's type and constraints"
                    ));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok((kind, schema, p.default.as_ref().map(toml_to_json)))
    } else {
        Err(problems)
    }
}

fn toml_to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => json!(s),
        toml::Value::Integer(i) => json!(i),
        toml::Value::Float(f) => json!(f),
        toml::Value::Boolean(b) => json!(b),
        toml::Value::Datetime(d) => json!(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}
