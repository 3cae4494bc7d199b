//! The example config loads, and a bad config reports every problem at once, each naming its
//! key.

use std::collections::BTreeMap;

use pgward::config::load::{parse, resolve_env};
use pgward::config::validate;

fn env(name: &str) -> Option<String> {
    match name {
        "PGWARD_DB_PASSWORD" => Some("pw".into()),
        "PGWARD_HASH_KEY" => Some("hash-key".into()),
        _ => None,
    }
}

#[test]
fn example_config_loads_and_validates() {
    let text = std::fs::read_to_string("config/example.toml").unwrap();
    let cfg = resolve_env(parse(&text).unwrap(), &env).unwrap();
    assert_eq!(
        cfg.database.url,
        "postgres://pgward_reader:pw@127.0.0.1:5432/shop"
    );
    let settings = validate(&cfg, &BTreeMap::new()).unwrap();
    assert_eq!(settings.policy.tables.len(), 3);
    assert_eq!(settings.tools.len(), 1);
    assert_eq!(settings.policy.max_rows, 1000);
    assert_eq!(settings.policy.schemas, vec!["public".to_string()]);
    assert_eq!(
        settings.audit.file.as_deref(),
        Some("/var/log/pgward/audit.jsonl")
    );
    assert_eq!(
        settings.admin.as_ref().map(|a| a.listen.as_str()),
        Some("127.0.0.1:9090")
    );
    let tool = &settings.tools[0];
    assert_eq!(tool.name, "orders_for_customer");
    assert_eq!(
        tool.checked.sql,
        "SELECT id, product_id, quantity, total, status, ordered_at FROM \"public\".\"orders\" WHERE customer_id = $1 AND status = ANY(pg_catalog.string_to_array($2, ',')) ORDER BY ordered_at DESC LIMIT 50"
    );
    assert_eq!(
        serde_json::Value::Object(tool.input_schema.clone())["required"],
        serde_json::json!(["customer_id"])
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = r#"
[database]
url = "postgres://r@127.0.0.1/db"
statement_timeout_ms = 0
schemas = ["public", "pg_catalog"]

[limits]
max_rows = 0

[functions]
allow = ["pg_sleep", "public.fine"]

[[tables]]
name = "public.customers"
columns = ["id", "email"]
redact = { ssn = "mask", email = "hash" }

[[tables]]
name = "pg_catalog.pg_authid"
columns = "all"

[[tools]]
name = "query"
description = "clashes with a built-in"
sql = "SELECT id FROM customers WHERE id = $1"
[[tools.params]]
name = "id"
type = "integer"
pattern = "^x$"

[[tools]]
name = "writer"
description = "tries to write"
sql = "DELETE FROM customers"

[session]
settings = { "pgward.in_call" = "tenant", "statement_timeout" = "tenant" }
"#;
    let cfg = parse(text).unwrap();
    let problems = validate(&cfg, &BTreeMap::new()).unwrap_err();
    let expected = [
        "database.statement_timeout_ms: must be between 1 and 600000, got 0",
        "database.schemas: `pg_catalog` cannot be used",
        "limits.max_rows: must be between 1 and 100000, got 0",
        "functions.allow: `pg_sleep` is on pgward's deny list",
        "tables[0] (`public.customers`).redact: column `ssn` is not in columns",
        "tables[1] (`pg_catalog.pg_authid`).name: system catalog tables cannot be allowlisted",
        "redaction.hash_key: required because a column uses the `hash` strategy",
        "tools[0] (`query`).name: `query` is a built-in tool",
        "tools[0] (`query`).params[0] (`id`): `pattern` does not apply to a integer parameter",
        "tools[1] (`writer`).sql: data_modifying:",
        "session.settings: `pgward.in_call` is pgward's own setting; choose another name",
        "session.settings: `statement_timeout` must be a custom setting like `pgward.tenant`",
    ];
    for e in expected {
        assert!(
            problems.iter().any(|p| p.starts_with(e)),
            "missing `{e}` in:\n{}",
            problems.join("\n")
        );
    }
    assert_eq!(problems.len(), expected.len(), "{}", problems.join("\n"));
}

#[test]
fn unknown_keys_stop_start_up_and_are_all_reported_with_other_problems() {
    let cfg = parse(
        "[database]\nurl = \"x\"\npool_sise = 2\n[limits]\nmax_rowz = 5\nmax_rows = 0\n\
         [[tables]]\nname = \"t\"\ncolumns = [\"a\"]\nredakt = { a = \"mask\" }\n",
    )
    .unwrap();
    let problems = validate(&cfg, &BTreeMap::new()).unwrap_err();
    assert_eq!(
        problems,
        vec![
            "database.pool_sise: unknown key",
            "limits.max_rowz: unknown key",
            "tables.0.redakt: unknown key",
            "limits.max_rows: must be between 1 and 100000, got 0",
        ]
    );
}

#[test]
fn http_example_config_loads_and_validates() {
    let text = std::fs::read_to_string("config/example-http.toml").unwrap();
    let cfg = resolve_env(parse(&text).unwrap(), &env).unwrap();
    assert!(cfg.unknown_keys.is_empty(), "{:?}", cfg.unknown_keys);
    let settings = validate(&cfg, &BTreeMap::new()).unwrap();
    let http = settings.http.expect("http section");
    assert_eq!(http.public_url, "https://db-mcp.example.com/mcp");
    assert_eq!(settings.auth.issuers.len(), 1);
    assert_eq!(settings.auth.api_keys.len(), 1);
    assert_eq!(
        settings.scopes.tools.get("order_by_id").map(String::as_str),
        Some("db:admin")
    );
    let scopes: Vec<String> = settings.scopes.all_scopes().into_iter().collect();
    assert_eq!(scopes, vec!["db:admin", "db:read"]);
}

#[test]
fn network_listeners_need_tls_in_front_and_credentials() {
    let text = "[database]\nurl = \"postgres://r@127.0.0.1/db\"\n[[tables]]\nname = \"t\"\ncolumns = [\"a\"]\n\
                [http]\nlisten = \"0.0.0.0:8080\"\npublic_url = \"https://x.example/mcp\"\n";
    let problems = validate(&parse(text).unwrap(), &BTreeMap::new()).unwrap_err();
    assert!(
        problems[0].starts_with("http.listen: `0.0.0.0:8080` is not a loopback address"),
        "{problems:?}"
    );
    assert!(
        problems[1].starts_with(
            "auth: serving over HTTP needs at least one token issuer, API key or client certificate"
        ),
        "{problems:?}"
    );
    assert_eq!(problems.len(), 2, "{problems:?}");
}

#[test]
fn tls_settings_are_consistent() {
    let base = "[database]\nurl = \"postgres://r@127.0.0.1/db\"\n[[tables]]\nname = \"t\"\ncolumns = [\"a\"]\n\
                [[auth.api_keys]]\nsubject = \"s\"\nkey_sha256 = \"00\"\nscopes = []\n";
    // TLS served by pgward: a network address is fine, the URL must be https.
    let ok = format!(
        "{base}[http]\nlisten = \"0.0.0.0:8443\"\npublic_url = \"https://db.example/mcp\"\n\
         [http.tls]\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\n"
    );
    assert!(validate(&parse(&ok).unwrap(), &BTreeMap::new()).is_ok());
    let both = format!(
        "{base}[http]\nlisten = \"0.0.0.0:8443\"\npublic_url = \"http://127.0.0.1/mcp\"\n\
         tls_terminated_by_proxy = true\n[http.tls]\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\n"
    );
    let problems = validate(&parse(&both).unwrap(), &BTreeMap::new()).unwrap_err();
    assert_eq!(
        problems,
        vec![
            "http.tls: set either http.tls (pgward terminates TLS) or http.tls_terminated_by_proxy, not both",
            "http.public_url: `http://127.0.0.1/mcp` must be https:// when pgward serves TLS",
        ]
    );
}

#[test]
fn tls_to_the_databases_is_chosen_for_remote_servers() {
    let tables = "[[tables]]\nname = \"t\"\ncolumns = [\"a\"]\n";
    let check = |text: String| validate(&parse(&text).unwrap(), &BTreeMap::new()).err();
    // Remote servers with nothing chosen: both named, with what to set.
    let problems = check(format!(
        "[database]\nurl = \"postgres://r@db.internal/db\"\n{tables}\
         [audit]\npostgres_url = \"postgres://w@audit.internal/a\"\n"
    ))
    .unwrap();
    assert_eq!(
        problems,
        [
            "the server `db.internal` is not on this machine and database.tls is not set: set database.tls to \"verify-full\" (with database.tls_ca_file for a private CA), or to \"off\" for a network you trust",
            "the server `audit.internal` is not on this machine and audit.postgres_tls is not set: set audit.postgres_tls to \"verify-full\" (with audit.postgres_tls_ca_file for a private CA), or to \"off\" for a network you trust",
        ]
    );
    // Chosen either way, they pass.
    assert_eq!(
        check(format!(
            "[database]\nurl = \"postgres://r@db.internal/db\"\ntls = \"verify-full\"\n{tables}\
             [audit]\npostgres_url = \"postgres://w@audit.internal/a\"\npostgres_tls = \"off\"\n"
        )),
        None
    );
    // Settings that cannot apply.
    let problems = check(format!(
        "[database]\nurl = \"postgres://r@127.0.0.1/db\"\ntls = \"off\"\ntls_ca_file = \"/ca.pem\"\n\
         {tables}[audit]\npostgres_tls = \"verify-full\"\n"
    ))
    .unwrap();
    assert_eq!(
        problems,
        [
            "database.tls_ca_file is set but database.tls is \"off\"",
            "audit.postgres_tls and audit.postgres_tls_ca_file apply only with audit.postgres_url",
        ]
    );
}

#[test]
fn audit_and_admin_settings_are_checked() {
    let base = "[database]\nurl = \"postgres://r@127.0.0.1/db\"\n[[tables]]\nname = \"t\"\ncolumns = [\"a\"]\n";
    let bad = format!(
        "{base}[audit]\nstderr = false\nfile_max_bytes = 10\nfile_keep = 0\nfailure_policy = \"fail_closed\"\n\
         [admin]\nlisten = \"0.0.0.0:9090\"\n"
    );
    let problems = validate(&parse(&bad).unwrap(), &BTreeMap::new()).unwrap_err();
    assert_eq!(problems.len(), 4, "{problems:?}");
    assert!(
        problems[0].starts_with("audit: no sink is configured"),
        "{problems:?}"
    );
    assert_eq!(
        problems[1],
        "audit.file_max_bytes: must be at least 65536, got 10"
    );
    assert_eq!(
        problems[2],
        "audit.file_keep: must be between 1 and 1000, got 0"
    );
    assert!(
        problems[3].starts_with("admin.listen: `0.0.0.0:9090`"),
        "{problems:?}"
    );
    // Secrets of the audit section come from the environment only.
    let literal = format!("{base}[audit]\nhmac_key = \"a-literal-key-0123456789abcdef0123\"\n");
    let err = resolve_env(parse(&literal).unwrap(), &env)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("audit.hmac_key: write it as `${ENV_VAR}`"),
        "{err}"
    );
    assert!(!err.contains("a-literal-key"), "{err}");
    // An unknown policy names the value.
    let policy = format!("{base}[audit]\nfailure_policy = \"best_effort\"\n");
    assert!(
        parse(&policy)
            .unwrap_err()
            .to_string()
            .contains("best_effort")
    );
}

#[test]
fn trusted_proxies_are_addresses_or_networks_but_never_everyone() {
    let base = "[database]\nurl = \"postgres://r@127.0.0.1/db\"\n[[tables]]\nname = \"t\"\ncolumns = [\"a\"]\n\
                [[auth.api_keys]]\nsubject = \"s\"\nkey_sha256 = \"00\"\nscopes = []\n[http]\n\
                public_url = \"http://127.0.0.1/mcp\"\n";
    let ok = format!("{base}trusted_proxies = [\"10.0.0.7\", \"10.244.0.0/16\", \"fd00::/8\"]\n");
    assert!(validate(&parse(&ok).unwrap(), &BTreeMap::new()).is_ok());
    let bad = format!("{base}trusted_proxies = [\"proxy.local\", \"0.0.0.0/0\", \"::/0\"]\n");
    let problems = validate(&parse(&bad).unwrap(), &BTreeMap::new()).unwrap_err();
    assert_eq!(
        problems,
        vec![
            "http.trusted_proxies: `proxy.local` is not an IP address or a network like 10.0.0.0/8",
            "http.trusted_proxies: `0.0.0.0/0` trusts every address; list the proxies' addresses or network",
            "http.trusted_proxies: `::/0` trusts every address; list the proxies' addresses or network",
        ]
    );
}

#[test]
fn client_certificate_settings_are_consistent() {
    let base = "[database]\nurl = \"postgres://r@127.0.0.1/db\"\n[[tables]]\nname = \"t\"\ncolumns = [\"a\"]\n\
                [[auth.client_certs]]\ncommon_name = \"bot\"\nscopes = [\"db:read\"]\n\
                [http]\nlisten = \"0.0.0.0:8443\"\npublic_url = \"https://db.example/mcp\"\n";
    // A client certificate is the only credential: fine with a client CA.
    let ok = format!(
        "{base}[http.tls]\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\nclient_ca_file = \"ca.pem\"\n\
         client_auth = \"optional\"\nclient_crl_files = [\"crl.pem\"]\n"
    );
    assert!(validate(&parse(&ok).unwrap(), &BTreeMap::new()).is_ok());
    // Without a client CA, neither the mapping nor the client settings mean anything.
    let no_ca = format!(
        "{base}[http.tls]\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\nclient_auth = \"required\"\n\
         client_crl_files = [\"crl.pem\"]\n"
    );
    let problems = validate(&parse(&no_ca).unwrap(), &BTreeMap::new()).unwrap_err();
    assert_eq!(
        problems,
        vec![
            "http.tls.client_auth: only used with http.tls.client_ca_file",
            "http.tls.client_crl_files: only used with http.tls.client_ca_file",
            "auth.client_certs: client certificates need http.tls with client_ca_file (pgward must terminate TLS itself to verify them)",
        ]
    );
    // Behind a TLS-terminating proxy pgward never sees the certificate.
    let proxy = format!("{base}tls_terminated_by_proxy = true\n");
    let problems = validate(&parse(&proxy).unwrap(), &BTreeMap::new()).unwrap_err();
    assert_eq!(
        problems,
        vec![
            "auth.client_certs: client certificates need http.tls with client_ca_file (pgward must terminate TLS itself to verify them)"
        ]
    );
    // An unknown mode is a parse error naming the value.
    let bad = format!(
        "{base}[http.tls]\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\nclient_ca_file = \"ca.pem\"\n\
         client_auth = \"sometimes\"\n"
    );
    let err = parse(&bad).unwrap_err().to_string();
    assert!(err.contains("sometimes"), "{err}");
}

#[test]
fn plain_http_public_urls_must_name_a_loopback_host_exactly() {
    let base = "[database]\nurl = \"postgres://r@127.0.0.1/db\"\n[[tables]]\nname = \"t\"\ncolumns = [\"a\"]\n\
                [[auth.api_keys]]\nsubject = \"s\"\nkey_sha256 = \"00\"\nscopes = []\n[http]\n";
    for (url, ok) in [
        ("http://127.0.0.1:8080/mcp", true),
        ("http://localhost/mcp", true),
        ("http://[::1]:9000/mcp", true),
        ("https://db.example.com/mcp", true),
        ("http://localhost.evil.example/mcp", false),
        ("http://127.0.0.1.evil.example/mcp", false),
        ("http://db.example.com/mcp", false),
    ] {
        let text = format!("{base}public_url = \"{url}\"\n");
        let result = validate(&parse(&text).unwrap(), &BTreeMap::new());
        assert_eq!(result.is_ok(), ok, "{url}: {:?}", result.err());
    }
}
