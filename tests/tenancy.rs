//! Identity reaches the data: two callers with different `tenant` claims run the same SQL and
//! the same lookup tool against a real PostgreSQL and each sees only its own tenant's rows,
//! through pgward's injected row filters (projects, tasks) and through row-level security on a
//! setting pgward sets per transaction (tenant_notes). The model cannot supply a bound
//! parameter, read or change the settings, or switch roles; a caller without the claim is
//! refused.

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
use std::future::pending;

use common::{TestConfig, error_code, fixture};
use pgward::auth::{AuthMethod, Principal};
use pgward::engine::{CallContext, Engine, Outcome};
use serde_json::{Value, json};

const TENANCY: &str = r#"
[[tables]]
name = "public.projects"
columns = ["id", "name"]
row_filter = { column = "tenant", claim = "tenant" }

[[tables]]
name = "public.tasks"
columns = "all"
row_filter = { column = "tenant", claim = "tenant" }

[[tables]]
name = "public.tenant_notes"
columns = ["id", "body"]

[session]
settings = { "pgward.tenant" = "tenant" }

[[tools]]
name = "my_tasks"
description = "The caller's tenant's tasks, done or not"
sql = "SELECT id, title FROM tasks WHERE tenant = $1 AND done = $2 ORDER BY id"

[[tools.params]]
name = "tenant"
type = "string"
claim = "tenant"

[[tools.params]]
name = "done"
type = "boolean"
"#;

fn caller(subject: &str, tenant: Option<&str>) -> CallContext {
    let mut claims = BTreeMap::new();
    if let Some(t) = tenant {
        claims.insert("tenant".to_string(), t.to_string());
    }
    CallContext {
        principal: Principal {
            subject: subject.into(),
            issuer: Some("https://idp.test".into()),
            method: AuthMethod::Jwt,
            scopes: ["db:read".to_string()].into(),
            claims,
        },
        client: "test".into(),
        request_id: pgward::engine::request_id(),
        session_id: None,
    }
}

async fn engine() -> (std::sync::Arc<common::Fixture>, std::sync::Arc<Engine>) {
    let f = fixture();
    let engine = f
        .engine(&TestConfig {
            extra: TENANCY.into(),
            ..TestConfig::default()
        })
        .await;
    (f, engine)
}

async fn sql(engine: &Engine, who: &CallContext, text: &str) -> Outcome {
    engine
        .call_as(
            who,
            "query",
            json!({ "sql": text }).as_object().unwrap().clone(),
            pending(),
        )
        .await
}

/// The rows of a successful call.
fn rows(out: &Outcome) -> Vec<Value> {
    assert!(!out.is_error, "{}", out.text);
    out.structured["rows"].as_array().unwrap().clone()
}

/// The first column of every row, as text.
fn firsts(out: &Outcome) -> Vec<String> {
    rows(out)
        .iter()
        .map(|r| match &r[0] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

fn code(out: &Outcome) -> String {
    assert!(out.is_error, "expected a refusal: {}", out.text);
    error_code(&out.structured).unwrap_or_default().to_string()
}

#[tokio::test]
async fn each_tenant_sees_only_its_rows_whatever_the_query_shape() {
    let (_f, engine) = engine().await;
    let acme = caller("ann", Some("acme"));
    let globex = caller("gus", Some("globex"));

    // (query, what acme sees, what globex sees)
    let cases: [(&str, Vec<&str>, Vec<&str>); 11] = [
        (
            "SELECT name FROM projects ORDER BY id",
            vec!["Rocket skates", "Giant magnet"],
            vec!["Doomsday device"],
        ),
        (
            "SELECT t.title FROM projects p JOIN tasks t ON t.project_id = p.id ORDER BY t.id",
            vec!["Order wheels", "Test on a cliff", "Find a big horseshoe"],
            vec!["Hire henchmen", "Build volcano lair"],
        ),
        (
            "SELECT count(*) FROM tasks WHERE project_id IN (SELECT id FROM projects)",
            vec!["3"],
            vec!["2"],
        ),
        (
            "WITH mine AS (SELECT * FROM tasks) SELECT count(*) FROM mine",
            vec!["3"],
            vec!["2"],
        ),
        (
            "SELECT tenant, count(*) FROM tasks GROUP BY tenant ORDER BY tenant",
            vec!["acme"],
            vec!["globex"],
        ),
        (
            "SELECT title FROM tasks UNION ALL SELECT name FROM projects ORDER BY 1",
            vec![
                "Find a big horseshoe",
                "Giant magnet",
                "Order wheels",
                "Rocket skates",
                "Test on a cliff",
            ],
            vec!["Build volcano lair", "Doomsday device", "Hire henchmen"],
        ),
        // Escape attempts: an OR in the model's WHERE, a self-join through another alias, a
        // filter on the other tenant, a scalar subquery.
        (
            "SELECT title FROM tasks WHERE tenant = 'globex' OR true ORDER BY id",
            vec!["Order wheels", "Test on a cliff", "Find a big horseshoe"],
            vec!["Hire henchmen", "Build volcano lair"],
        ),
        (
            "SELECT DISTINCT b.tenant FROM tasks a JOIN tasks b ON true",
            vec!["acme"],
            vec!["globex"],
        ),
        (
            "SELECT (SELECT count(*) FROM tasks x WHERE x.tenant <> 'acme') AS others",
            vec!["0"],
            vec!["2"],
        ),
        // Compared integers are bound as parameters ahead of the claim (`sql::literals`).
        (
            "SELECT count(*) FROM tasks WHERE id > 0 AND id <> -1",
            vec!["3"],
            vec!["2"],
        ),
        (
            "SELECT title FROM tasks WHERE id BETWEEN -1 AND 3000000000 AND id NOT IN (0) ORDER BY id",
            vec!["Order wheels", "Test on a cliff", "Find a big horseshoe"],
            vec!["Hire henchmen", "Build volcano lair"],
        ),
    ];
    for (query, want_acme, want_globex) in cases {
        assert_eq!(
            firsts(&sql(&engine, &acme, query).await),
            want_acme,
            "acme: {query}"
        );
        assert_eq!(
            firsts(&sql(&engine, &globex, query).await),
            want_globex,
            "globex: {query}"
        );
    }

    // The SQL shown names the filter, with the claim bound, never written into the text.
    let out = sql(&engine, &acme, "SELECT name FROM projects").await;
    let ran = out.meta["pgward/sql"].as_str().unwrap();
    assert!(
        ran.contains("WHERE \"tenant\" = $1) AS \"projects\""),
        "{ran}"
    );
    assert!(!ran.contains("acme"), "{ran}");
}

#[tokio::test]
async fn row_level_security_filters_through_the_session_setting() {
    let (_f, engine) = engine().await;
    let q = "SELECT body FROM tenant_notes ORDER BY id";
    assert_eq!(
        firsts(&sql(&engine, &caller("ann", Some("acme")), q).await),
        vec!["acme: quarterly plan", "acme: supplier list"]
    );
    assert_eq!(
        firsts(&sql(&engine, &caller("gus", Some("globex")), q).await),
        vec!["globex: world domination memo"]
    );
    // The setting is transaction-local: a later call on the same pooled connection by
    // another tenant never sees the first one's value (pool_size is 2; run several).
    for _ in 0..4 {
        assert_eq!(
            firsts(&sql(&engine, &caller("gus", Some("globex")), q).await).len(),
            1
        );
        assert_eq!(
            firsts(&sql(&engine, &caller("ann", Some("acme")), q).await).len(),
            2
        );
    }
}

#[tokio::test]
async fn the_model_cannot_read_or_change_the_settings_or_the_role() {
    let (_f, engine) = engine().await;
    let acme = caller("ann", Some("acme"));
    for (text, want) in [
        (
            "SELECT current_setting('pgward.tenant')",
            "function_not_allowed",
        ),
        (
            "SELECT pg_catalog.current_setting('pgward.tenant', true)",
            "function_not_allowed",
        ),
        (
            "SELECT set_config('pgward.tenant', 'globex', false)",
            "function_not_allowed",
        ),
        ("SET pgward.tenant = 'globex'", "not_select"),
        ("SET ROLE postgres", "not_select"),
        ("RESET ROLE", "not_select"),
        ("SET SESSION AUTHORIZATION postgres", "not_select"),
        ("SHOW pgward.tenant", "not_select"),
        ("SELECT * FROM pg_settings", "table_not_allowed"),
    ] {
        let out = sql(&engine, &acme, text).await;
        assert_eq!(code(&out), want, "{text}: {}", out.text);
    }
    // The legitimate query right after still works, for the right tenant.
    assert_eq!(
        firsts(&sql(&engine, &acme, "SELECT count(*) FROM tenant_notes").await),
        vec!["2"]
    );
}

#[tokio::test]
async fn claim_bound_parameters_come_from_the_identity_only() {
    let (_f, engine) = engine().await;
    // The model never sees the bound parameter.
    let tool = engine
        .tools()
        .into_iter()
        .find(|t| t.name == "my_tasks")
        .unwrap();
    let schema = Value::Object(tool.input_schema.clone());
    assert_eq!(
        schema["properties"].as_object().unwrap().len(),
        1,
        "{schema}"
    );
    assert!(schema["properties"].get("tenant").is_none(), "{schema}");
    assert_eq!(schema["required"], json!(["done"]));

    let call = |who: CallContext, args: Value| {
        let engine = std::sync::Arc::clone(&engine);
        async move {
            engine
                .call_as(
                    &who,
                    "my_tasks",
                    args.as_object().unwrap().clone(),
                    pending(),
                )
                .await
        }
    };
    let out = call(caller("ann", Some("acme")), json!({"done": false})).await;
    assert_eq!(firsts(&out), vec!["2", "3"]);
    let out = call(caller("gus", Some("globex")), json!({"done": false})).await;
    assert_eq!(firsts(&out), vec!["5"]);

    // A value the model supplies is refused, not ignored or used.
    let out = call(
        caller("ann", Some("acme")),
        json!({"done": false, "tenant": "globex"}),
    )
    .await;
    assert_eq!(code(&out), "bound_parameter");
    assert!(
        out.text
            .contains("`tenant` is bound to the caller's identity"),
        "{}",
        out.text
    );
}

#[tokio::test]
async fn a_caller_without_the_claim_is_refused() {
    let (_f, engine) = engine().await;
    let nobody = caller("nina", None);
    for text in [
        "SELECT count(*) FROM tasks",
        "SELECT count(*) FROM tenant_notes",
        "SELECT count(*) FROM orders",
    ] {
        let out = sql(&engine, &nobody, text).await;
        assert_eq!(code(&out), "missing_claim", "{text}");
        assert!(out.text.contains("no `tenant` claim"), "{}", out.text);
    }
    let out = engine
        .call_as(
            &nobody,
            "my_tasks",
            json!({"done": true}).as_object().unwrap().clone(),
            pending(),
        )
        .await;
    assert_eq!(code(&out), "missing_claim");
    // Schema browsing reads no rows and needs no claim.
    let out = engine
        .call_as(&nobody, "list_tables", serde_json::Map::new(), pending())
        .await;
    assert!(!out.is_error, "{}", out.text);
}

/// Roles for the per-scope role tests: `tenancy_basic` reads a few customer columns,
/// `tenancy_pii` more, `tenancy_writer` could write (and must never be accepted); the login
/// role `pgward_reader` is a member of all three (it does not inherit their rights).
async fn create_roles(f: &common::Fixture) {
    // Once per test binary: concurrent GRANTs on the same objects can fail with "tuple
    // concurrently updated".
    static DONE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    DONE.get_or_init(|| create_roles_once(f)).await;
}

async fn create_roles_once(f: &common::Fixture) {
    let admin = f.superuser().await;
    admin
        .batch_execute(
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tenancy_basic') THEN CREATE ROLE tenancy_basic; END IF;
               IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tenancy_pii') THEN CREATE ROLE tenancy_pii; END IF;
               IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tenancy_writer') THEN CREATE ROLE tenancy_writer; END IF;
             END $$;
             GRANT USAGE ON SCHEMA public TO tenancy_basic, tenancy_pii, tenancy_writer;
             GRANT SELECT (id, full_name, country) ON public.customers TO tenancy_basic;
             GRANT SELECT (id, full_name, country, created_at, lifetime_value) ON public.customers TO tenancy_pii;
             GRANT SELECT ON public.orders TO tenancy_writer;
             GRANT INSERT ON public.orders TO tenancy_writer;
             GRANT tenancy_basic, tenancy_pii, tenancy_writer TO pgward_reader;",
        )
        .await
        .unwrap();
}

fn with_scopes(subject: &str, scopes: &[&str]) -> CallContext {
    let mut c = caller(subject, None);
    c.principal.scopes = scopes.iter().map(|s| (*s).to_string()).collect();
    c
}

const ROLES: &str = r#"
[scopes]
implies = { "db:pii" = ["db:read"] }

[[roles]]
scope = "db:pii"
role = "tenancy_pii"

[[roles]]
scope = "db:read"
role = "tenancy_basic"
"#;

#[tokio::test]
async fn each_scope_runs_as_its_database_role() {
    let f = fixture();
    create_roles(&f).await;
    let engine = f
        .engine(&TestConfig {
            extra: ROLES.into(),
            ..TestConfig::default()
        })
        .await;
    let reader = with_scopes("ann", &["db:read"]);
    let pii = with_scopes("pia", &["db:pii"]);
    let q = "SELECT lifetime_value FROM customers WHERE id = 1";
    // The column the basic role lacks: PostgreSQL itself refuses it.
    let out = sql(&engine, &reader, q).await;
    assert_eq!(code(&out), "database_error", "{}", out.text);
    assert!(out.text.contains("42501"), "{}", out.text);
    // The pii role has it.
    assert_eq!(rows(&sql(&engine, &pii, q).await).len(), 1);
    // Both can read what the basic role may.
    for who in [&reader, &pii] {
        assert_eq!(
            firsts(&sql(&engine, who, "SELECT full_name FROM customers WHERE id = 1").await).len(),
            1
        );
    }
    // The role never outlives a call: the same pooled connections serve the basic role right
    // after the pii role (pool_size is 2).
    for _ in 0..3 {
        assert_eq!(rows(&sql(&engine, &pii, q).await).len(), 1);
        assert_eq!(code(&sql(&engine, &reader, q).await), "database_error");
    }
}

#[tokio::test]
async fn a_caller_without_a_mapped_scope_is_refused_and_unsafe_roles_stop_start_up() {
    let f = fixture();
    create_roles(&f).await;
    let only_pii = "[scopes]\nimplies = { \"db:pii\" = [\"db:read\"] }\n[[roles]]\nscope = \"db:pii\"\nrole = \"tenancy_pii\"\n";
    let engine = f
        .engine(&TestConfig {
            extra: only_pii.into(),
            ..TestConfig::default()
        })
        .await;
    let out = sql(
        &engine,
        &with_scopes("ann", &["db:read"]),
        "SELECT 1 AS one",
    )
    .await;
    assert_eq!(code(&out), "no_database_role");
    assert_eq!(
        rows(&sql(&engine, &with_scopes("pia", &["db:pii"]), "SELECT 1 AS one").await).len(),
        1
    );

    // A role that can write is refused by the start-up (and reload) checks, like the login
    // role would be.
    let writer = TestConfig {
        extra: "[[roles]]\nscope = \"db:read\"\nrole = \"tenancy_writer\"\n".into(),
        ..TestConfig::default()
    };
    let err = engine
        .check_against_database(&f.settings(&writer))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("role `tenancy_writer` can write to"), "{err}");
    // A role the login role cannot switch to is named.
    let stranger = TestConfig {
        extra: "[[roles]]\nscope = \"db:read\"\nrole = \"no_such_role\"\n".into(),
        ..TestConfig::default()
    };
    let err = engine
        .check_against_database(&f.settings(&stranger))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("roles (`db:read` → `no_such_role`): cannot switch to it"),
        "{err}"
    );
}

#[tokio::test]
async fn over_http_the_claims_come_from_the_token_or_the_api_key() {
    let f = fixture();
    let key = "pgw_acme_bot_key_0123456789abcdef0123456789abcdef";
    let extra = format!(
        "[[tables]]\nname = \"public.projects\"\ncolumns = [\"id\", \"name\"]\nrow_filter = {{ column = \"tenant\", claim = \"tenant\" }}\n\
         [[auth.api_keys]]\nsubject = \"acme-bot\"\nkey_sha256 = \"{}\"\nscopes = [\"db:read\"]\nclaims = {{ tenant = \"acme\" }}\n",
        http::sha256_hex(key.as_bytes())
    );
    let server = http::HttpServer::start(
        &f,
        http::Knobs {
            extra_toml: extra,
            rate_per_principal: 50,
            ..http::Knobs::default()
        },
    )
    .await;
    let token = |sub: &str, tenant: Option<&str>| {
        let mut claims = server.claims(sub, "db:read");
        if let Some(t) = tenant {
            claims["tenant"] = json!(t);
        }
        http::hs256(&claims, http::JWT_SECRET.as_bytes())
    };
    let names = |reply: &http::Reply| -> Vec<String> {
        let result = &reply.json()["result"];
        assert_eq!(result["isError"], json!(false), "{result}");
        result["structuredContent"]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r[0].as_str().unwrap().to_string())
            .collect()
    };
    let q = json!({"sql": "SELECT name FROM projects ORDER BY id"});
    let acme = server
        .call_tool(&token("ann", Some("acme")), "query", q.clone())
        .await;
    assert_eq!(names(&acme), vec!["Rocket skates", "Giant magnet"]);
    let globex = server
        .call_tool(&token("gus", Some("globex")), "query", q.clone())
        .await;
    assert_eq!(names(&globex), vec!["Doomsday device"]);
    let bot = server.call_tool(key, "query", q.clone()).await;
    assert_eq!(names(&bot), vec!["Rocket skates", "Giant magnet"]);
    let none = server.call_tool(&token("nina", None), "query", q).await;
    let result = &none.json()["result"];
    assert_eq!(result["isError"], json!(true));
    assert_eq!(
        result["structuredContent"]["error"]["code"],
        json!("missing_claim")
    );
}
