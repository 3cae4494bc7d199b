//! Findings of the security review, each pinned by a test against real PostgreSQL: result
//! width and redaction positions agree with PostgreSQL, a huge computed row is refused by the
//! database before pgward buffers it, database error text is framed and scanned like data, key
//! paths taken from data stay inside the frame, and the posture check sees powerful roles.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

use std::future::pending;

use common::{TestConfig, boundary_of, error_code, fixture, sql_args};
use pgward::db::{CallLimits, Database, DbError};
use serde_json::json;

#[tokio::test]
async fn redaction_positions_hold_when_a_recursive_cte_keeps_extra_columns() {
    let f = fixture();
    let su = f.superuser().await;
    let engine = f.engine(&TestConfig::default()).await;
    // PostgreSQL keeps the body's columns beyond the CTE's column list: r has two columns.
    let out = engine
        .call(
            "query",
            sql_args(
                "WITH RECURSIVE r(a) AS (SELECT 1, 2) \
                 SELECT r.*, email, phone FROM customers, r ORDER BY customers.id LIMIT 1",
            ),
            pending(),
        )
        .await;
    assert!(!out.is_error, "{}", out.text);
    let row = &out.structured["rows"][0];
    assert_eq!(row[0], json!(1));
    assert_eq!(row[1], json!(2));
    assert_eq!(row[2], json!("[REDACTED]"));
    assert!(row[3].as_str().unwrap().starts_with("hmac:"), "{row}");
    let phone: String = su
        .query_one("SELECT phone FROM customers ORDER BY id LIMIT 1", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!out.text.contains(&phone), "the phone number leaked");
}

#[tokio::test]
async fn a_result_of_another_width_than_the_check_counted_is_refused() {
    let f = fixture();
    let db = Database::connect(&f.settings(&TestConfig::default()).database).unwrap();
    let limits = CallLimits {
        max_rows: 10,
        max_bytes: 1 << 20,
        width: Some(3),
        plan_each_call: false,
    };
    let r = db
        .run("SELECT 1 AS a LIMIT 1", &[], limits, pending())
        .await;
    assert!(
        matches!(&r, Err(DbError::Mismatch(m)) if m == "the check counted 3 result column(s), PostgreSQL returns 1"),
        "{r:?}"
    );
    let ok = CallLimits {
        width: Some(1),
        plan_each_call: false,
        ..limits
    };
    let out = db
        .run("SELECT 1 AS a LIMIT 1", &[], ok, pending())
        .await
        .unwrap();
    assert_eq!(out.rows, vec![vec![json!(1)]]);
}

/// A result without rows has no row description: its columns come from describing the
/// statement, with the same width and type checks.
#[tokio::test]
async fn an_empty_result_keeps_its_column_names_and_its_checks() {
    let f = fixture();
    let db = Database::connect(&f.settings(&TestConfig::default()).database).unwrap();
    let limits = CallLimits {
        max_rows: 10,
        max_bytes: 1 << 20,
        width: Some(2),
        plan_each_call: false,
    };
    let out = db
        .run(
            "SELECT id, status FROM public.orders WHERE id < 0 LIMIT 5",
            &[],
            limits,
            pending(),
        )
        .await
        .unwrap();
    assert_eq!(out.columns, vec!["id".to_string(), "status".to_string()]);
    assert!(out.rows.is_empty());
    assert_eq!(out.truncated, None);
    let r = db
        .run(
            "SELECT id FROM public.orders WHERE id < 0 LIMIT 5",
            &[],
            limits,
            pending(),
        )
        .await;
    assert!(
        matches!(&r, Err(DbError::Mismatch(m)) if m == "the check counted 2 result column(s), PostgreSQL returns 1"),
        "{r:?}"
    );
    // A type without a JSON mapping is refused whether or not a row came back.
    for sql in [
        "SELECT point(1, 2) AS span LIMIT 1",
        "SELECT point(1, 2) AS span WHERE false LIMIT 1",
    ] {
        let r = db
            .run(
                sql,
                &[],
                CallLimits {
                    width: None,
                    plan_each_call: false,
                    ..limits
                },
                pending(),
            )
            .await;
        assert!(
            matches!(&r, Err(DbError::Value(pgward::db::values::ValueError::Unsupported { column, .. })) if column == "span"),
            "{sql}: {r:?}"
        );
    }
}

#[tokio::test]
async fn a_huge_computed_row_is_refused_by_the_database() {
    let f = fixture();
    let engine = f.engine(&TestConfig::default()).await;
    let out = engine
        .call(
            "query",
            sql_args("SELECT format('%2000000s', 'x') AS padded"),
            pending(),
        )
        .await;
    assert!(out.is_error, "{}", out.text);
    assert_eq!(
        error_code(&out.structured),
        Some("row_too_large"),
        "{}",
        out.text
    );
    // A row within the limit is served as usual.
    let out = engine
        .call(
            "query",
            sql_args("SELECT length(format('%2000s', 'x')) AS n, format('%20s', 'x') AS s"),
            pending(),
        )
        .await;
    assert!(!out.is_error, "{}", out.text);
    assert_eq!(out.structured["rows"][0][0], json!(2000));
}

#[tokio::test]
async fn database_error_text_is_framed_and_scanned() {
    let f = fixture();
    let engine = f.engine(&TestConfig::default()).await;
    let out = engine
        .call(
            "query",
            sql_args("SELECT body::int FROM support_tickets WHERE id = 42"),
            pending(),
        )
        .await;
    assert!(out.is_error);
    assert_eq!(error_code(&out.structured), Some("database_error"));
    let boundary = boundary_of(&out.text);
    let open = format!("<untrusted-data-{boundary}>");
    let before = &out.text[..out.text.find(&open).unwrap()];
    assert!(before.contains("SQLSTATE 22P02"), "{}", out.text);
    assert!(
        !before.contains("IGNORE"),
        "data outside the frame: {}",
        out.text
    );
    assert!(out.text.contains("IGNORE ALL PREVIOUS INSTRUCTIONS"));
    let flags = out.meta["pgward/injection_warnings"].as_array().unwrap();
    assert_eq!(flags[0]["column"], json!("error_message"), "{flags:?}");
}

#[tokio::test]
async fn key_paths_from_data_stay_inside_the_frame() {
    let f = fixture();
    let engine = f.engine(&TestConfig::default()).await;
    // The ticket's text becomes a JSON key that the key-pattern net masks ("api_keys").
    let out = engine
        .call(
            "query",
            sql_args("SELECT jsonb_build_object(body, 1) AS j FROM support_tickets WHERE id = 42"),
            pending(),
        )
        .await;
    assert!(!out.is_error, "{}", out.text);
    let boundary = boundary_of(&out.text);
    let before = &out.text[..out
        .text
        .find(&format!("<untrusted-data-{boundary}>"))
        .unwrap()];
    assert!(
        before.contains("1 nested JSON value(s) masked by key name"),
        "{before}"
    );
    assert!(
        !before.contains("IGNORE"),
        "data outside the frame: {before}"
    );
}

#[tokio::test]
async fn posture_check_sees_powerful_role_memberships() {
    let f = fixture();
    let su = f.superuser().await;
    su.batch_execute(
        "DROP ROLE IF EXISTS pgward_test_reader_all; \
         CREATE ROLE pgward_test_reader_all LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE; \
         GRANT pg_read_all_data TO pgward_test_reader_all",
    )
    .await
    .unwrap();
    let mut settings = f.settings(&TestConfig::default()).database;
    settings.url = f.url_for("pgward_test_reader_all");
    let db = Database::connect(&settings).unwrap();
    let findings = db.posture().await.unwrap();
    su.batch_execute("DROP ROLE pgward_test_reader_all")
        .await
        .unwrap();
    assert!(
        findings
            .contains(&"role `pgward_test_reader_all` is a member of pg_read_all_data".to_string()),
        "{findings:?}"
    );
}

/// The writable-table scan narrows `pg_class` to the reported schemas before it tests
/// privileges: it must still find a column-level write grant and tables outside `public`
/// (listed by name), and a reader with SELECT only has no finding.
#[tokio::test]
async fn posture_check_finds_column_write_grants_in_any_schema() {
    let f = fixture();
    let su = f.superuser().await;
    su.batch_execute(
        "DROP SCHEMA IF EXISTS pgward_posture CASCADE; \
         DROP ROLE IF EXISTS pgward_test_column_writer; \
         CREATE ROLE pgward_test_column_writer LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE; \
         CREATE SCHEMA pgward_posture; \
         CREATE TABLE pgward_posture.notes (id int PRIMARY KEY, body text); \
         CREATE TABLE pgward_posture.alpha (id int PRIMARY KEY); \
         GRANT USAGE ON SCHEMA pgward_posture, public TO pgward_test_column_writer; \
         GRANT SELECT ON public.orders, pgward_posture.notes TO pgward_test_column_writer",
    )
    .await
    .unwrap();
    let mut settings = f.settings(&TestConfig::default()).database;
    settings.url = f.url_for("pgward_test_column_writer");
    let db = Database::connect(&settings).unwrap();
    let read_only = db.posture().await.unwrap();
    su.batch_execute(
        "GRANT UPDATE (body) ON pgward_posture.notes TO pgward_test_column_writer; \
         GRANT INSERT ON pgward_posture.alpha TO pgward_test_column_writer",
    )
    .await
    .unwrap();
    let writable = db.posture().await.unwrap();
    su.batch_execute(
        "DROP SCHEMA pgward_posture CASCADE; \
         REVOKE ALL ON public.orders FROM pgward_test_column_writer; \
         REVOKE ALL ON SCHEMA public FROM pgward_test_column_writer; \
         DROP ROLE pgward_test_column_writer",
    )
    .await
    .unwrap();
    assert_eq!(read_only, Vec::<String>::new());
    assert_eq!(
        writable,
        vec![
            // Sorted by name (alpha was created after notes).
            "role `pgward_test_column_writer` can write to 2 table(s), e.g. pgward_posture.alpha, pgward_posture.notes"
                .to_string()
        ]
    );
}

/// Found in the HTTP review: a lookup tool reading a table whose scope the caller lacks must be
/// refused and hidden, like `query` on that table.
#[tokio::test]
async fn lookup_tools_need_the_scopes_of_the_tables_they_read() {
    let f = fixture();
    let cfg = TestConfig {
        customers_scope: Some("db:pii".into()),
        extra: r#"
[[tools]]
name = "customer_by_id"
description = "One customer"
sql = "SELECT id, full_name FROM customers WHERE id = $1"

[[tools.params]]
name = "id"
type = "integer"
"#
        .into(),
        ..TestConfig::default()
    };
    let engine = f.engine(&cfg).await;
    let reader = pgward::auth::Principal {
        subject: "reader".into(),
        issuer: None,
        method: pgward::auth::AuthMethod::Jwt,
        scopes: ["db:read".to_string()].into(),
        claims: Default::default(),
    };
    let out = engine
        .call_as(
            &as_caller(&reader),
            "customer_by_id",
            json!({"id": 1}).as_object().unwrap().clone(),
            pending(),
        )
        .await;
    assert!(out.is_error, "{}", out.text);
    assert_eq!(error_code(&out.structured), Some("insufficient_scope"));
    assert!(out.text.contains("db:pii"), "{}", out.text);
    let names: Vec<String> = engine
        .tools_for(&reader)
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(!names.contains(&"customer_by_id".to_string()), "{names:?}");
    assert!(
        names.contains(&"orders_for_customer".to_string()),
        "{names:?}"
    );
    // With the table's scope, the same call works.
    let pii = pgward::auth::Principal {
        scopes: ["db:read".to_string(), "db:pii".to_string()].into(),
        ..reader
    };
    let out = engine
        .call_as(
            &as_caller(&pii),
            "customer_by_id",
            json!({"id": 1}).as_object().unwrap().clone(),
            pending(),
        )
        .await;
    assert!(!out.is_error, "{}", out.text);
    assert_eq!(out.structured["rows"][0][0], json!(1));
}

/// An in-process call context for `principal`.
fn as_caller(principal: &pgward::auth::Principal) -> pgward::engine::CallContext {
    pgward::engine::CallContext {
        principal: principal.clone(),
        client: "test".into(),
        request_id: pgward::engine::request_id(),
        session_id: None,
    }
}

/// The HTTP scope gate asks `has_tool` instead of building the tool list per request; both
/// must name the same tools.
#[tokio::test]
async fn has_tool_names_exactly_the_listed_tools() {
    let f = fixture();
    let engine = f.engine(&TestConfig::default()).await;
    let names: Vec<String> = engine.tools().into_iter().map(|t| t.name).collect();
    assert!(
        names.len() > 3,
        "the test config has lookup tools: {names:?}"
    );
    for name in &names {
        assert!(engine.has_tool(name), "{name}");
    }
    for name in ["", "Query", "query ", "list_tables2", "drop_table"] {
        assert!(!engine.has_tool(name), "{name:?}");
    }
}

fn one_connection(f: &common::Fixture) -> Database {
    let mut settings = f.settings(&TestConfig::default()).database;
    settings.pool_size = 1;
    Database::connect(&settings).unwrap()
}

const LIMITS: CallLimits = CallLimits {
    max_rows: 100,
    max_bytes: 1 << 20,
    width: None,
    plan_each_call: false,
};

async fn rows_of(db: &Database, sql: &str) -> Vec<Vec<serde_json::Value>> {
    db.run(sql, &[], LIMITS, pending()).await.unwrap().rows
}

/// A connection describes a statement once and keeps at most `STATEMENTS_PER_CONNECTION`
/// of them, so model-written SQL cannot grow a backend's memory without bound.
#[tokio::test]
async fn a_connection_keeps_a_bounded_set_of_prepared_statements() {
    let f = fixture();
    let db = one_connection(&f);
    let count = "SELECT pg_catalog.count(*)::int8 AS total, \
                 pg_catalog.count(*) FILTER (WHERE pg_catalog.strpos(statement, 'cache_probe' || '_a') > 0)::int8 AS a \
                 FROM pg_catalog.pg_prepared_statements LIMIT 1";
    for _ in 0..3 {
        assert_eq!(
            rows_of(&db, "SELECT 'cache_probe_a' AS v LIMIT 1").await,
            vec![vec![json!("cache_probe_a")]]
        );
    }
    // The count's own statement is prepared too.
    assert_eq!(rows_of(&db, count).await, vec![vec![json!(2), json!(1)]]);
    for i in 0..40 {
        let sql = format!("SELECT 'cache_probe_{i}' AS v LIMIT 1");
        assert_eq!(
            rows_of(&db, &sql).await,
            vec![vec![json!(format!("cache_probe_{i}"))]]
        );
    }
    let bound = pgward::db::STATEMENTS_PER_CONNECTION as i64;
    assert_eq!(
        rows_of(&db, count).await,
        vec![vec![json!(bound), json!(0)]]
    );
}

/// A statement kept from an earlier call is described again when a migration changed its
/// result type: the call after the change answers with the new type, not an error.
#[tokio::test]
async fn a_kept_statement_follows_a_column_type_change() {
    let f = fixture();
    let su = f.superuser().await;
    su.batch_execute(
        "CREATE TABLE public.stmt_cache_probe (v int4); \
         INSERT INTO public.stmt_cache_probe VALUES (7); \
         GRANT SELECT ON public.stmt_cache_probe TO pgward_reader",
    )
    .await
    .unwrap();
    let db = one_connection(&f);
    let sql = "SELECT v FROM public.stmt_cache_probe LIMIT 1";
    for _ in 0..2 {
        assert_eq!(rows_of(&db, sql).await, vec![vec![json!(7)]]);
    }
    su.batch_execute("ALTER TABLE public.stmt_cache_probe ALTER v TYPE text USING v::text")
        .await
        .unwrap();
    assert_eq!(rows_of(&db, sql).await, vec![vec![json!("7")]]);
    assert_eq!(rows_of(&db, sql).await, vec![vec![json!("7")]]);
    su.batch_execute("DROP TABLE public.stmt_cache_probe")
        .await
        .unwrap();
}

/// A kept statement is sent in the same round trip as BEGIN; when the BEGIN batch fails (here
/// SET LOCAL ROLE), PostgreSQL refuses the statement in the aborted transaction: the call
/// reports the batch's error without running the statement, and the pool serves the next call.
#[tokio::test]
async fn a_failed_begin_batch_stops_a_kept_statement() {
    let f = fixture();
    let db = one_connection(&f);
    // Under the tests' one-second statement timeout.
    let sql = "SELECT 1 AS one FROM pg_catalog.pg_sleep(0.9) LIMIT 1";
    assert_eq!(rows_of(&db, sql).await, vec![vec![json!(1)]]);
    let started = std::time::Instant::now();
    let r = db
        .run_as(
            Some("pgward_no_such_role"),
            sql,
            &[],
            &[],
            &[],
            LIMITS,
            pending(),
        )
        .await;
    assert!(
        matches!(&r, Err(DbError::Postgres { message, .. }) if message == "role \"pgward_no_such_role\" does not exist"),
        "{r:?}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_millis(600),
        "the statement ran: {:?}",
        started.elapsed()
    );
    assert_eq!(
        rows_of(&db, "SELECT 2 AS two LIMIT 1").await,
        vec![vec![json!(2)]]
    );
}

/// Every connection starts read only, under the statement timeout: a backstop behind the
/// BEGIN batch that sets both again for each call.
#[tokio::test]
async fn connections_start_read_only_under_the_statement_timeout() {
    let f = fixture();
    let settings = f.settings(&TestConfig::default()).database;
    let db = Database::connect(&settings).unwrap();
    let rows = rows_of(
        &db,
        "SELECT s.name::text, s.reset_val FROM pg_catalog.pg_settings s \
         WHERE s.name IN ('default_transaction_read_only', 'statement_timeout', 'search_path') \
         ORDER BY s.name LIMIT 3",
    )
    .await;
    assert_eq!(
        rows,
        vec![
            vec![json!("default_transaction_read_only"), json!("on")],
            vec![
                json!("search_path"),
                json!(r#"pg_catalog,"public",pg_temp"#)
            ],
            vec![
                json!("statement_timeout"),
                json!(settings.statement_timeout_ms.to_string())
            ],
        ]
    );
}

/// The statement runs inside the call's transaction whether it is described in the call or
/// kept from an earlier one: it sees the call's transaction-local setting, which exists only
/// in the transaction BEGIN opened (without it, each request would be its own transaction).
#[tokio::test]
async fn every_call_runs_inside_its_transaction() {
    let f = fixture();
    let db = one_connection(&f);
    let sql = "SELECT pg_catalog.current_setting('pgward.probe', true) AS probe LIMIT 1";
    for i in 0..3 {
        let context = [("pgward.probe".to_string(), format!("call {i}"))];
        let out = db
            .run_in_context(sql, &[], &[], &context, LIMITS, pending())
            .await
            .unwrap();
        assert_eq!(out.rows, vec![vec![json!(format!("call {i}"))]]);
    }
    // And its value is not left for the next call on the connection (PostgreSQL keeps the
    // name of a custom setting once used, with an empty value).
    assert_eq!(rows_of(&db, sql).await, vec![vec![json!("")]]);
}

/// A kept statement is described again when its parameter types no longer fit: when the
/// arguments no longer convert to the kept types (refused before anything is sent), and when
/// PostgreSQL refuses the Bind because the kept types no longer fit the column (planned again
/// against the current catalog). Either way the answer is the fresh description's.
#[tokio::test]
async fn a_kept_statement_follows_a_parameter_type_change() {
    let f = fixture();
    let su = f.superuser().await;
    su.batch_execute(
        "CREATE TABLE public.stmt_param_probe (v int4, w text); \
         INSERT INTO public.stmt_param_probe VALUES (7, 'seven'); \
         GRANT SELECT ON public.stmt_param_probe TO pgward_reader",
    )
    .await
    .unwrap();
    let db = one_connection(&f);
    let sql = "SELECT w FROM public.stmt_param_probe WHERE v = $1 LIMIT 1";
    let call = async |arg: serde_json::Value| {
        db.run(sql, &[("v".to_string(), arg)], LIMITS, pending())
            .await
            .map(|out| out.rows)
    };
    for _ in 0..2 {
        assert_eq!(call(json!(7)).await.unwrap(), vec![vec![json!("seven")]]);
    }
    // The kept parameter is int4; "7" does not convert to it, but does to the new text.
    su.batch_execute("ALTER TABLE public.stmt_param_probe ALTER v TYPE text USING v::text")
        .await
        .unwrap();
    assert_eq!(call(json!("7")).await.unwrap(), vec![vec![json!("seven")]]);
    su.batch_execute("ALTER TABLE public.stmt_param_probe ALTER v TYPE int4 USING v::int4")
        .await
        .unwrap();
    assert_eq!(call(json!(7)).await.unwrap(), vec![vec![json!("seven")]]);
    // The kept int4 parameter binds 1, but PostgreSQL has no boolean = integer: it refuses the
    // Bind, and the fresh description (a boolean parameter) is the one that answers.
    su.batch_execute("ALTER TABLE public.stmt_param_probe ALTER v TYPE bool USING v <> 0")
        .await
        .unwrap();
    let r = call(json!(1)).await;
    assert!(
        matches!(&r, Err(DbError::Param(m)) if m == "parameter `v` cannot be converted to `bool`"),
        "{r:?}"
    );
    assert_eq!(call(json!(true)).await.unwrap(), vec![vec![json!("seven")]]);
    su.batch_execute("DROP TABLE public.stmt_param_probe")
        .await
        .unwrap();
}

/// The SQL pgward sends runs only inside a call's transaction: were the BEGIN batch ever not
/// to take effect, the model's SQL would not run on its own. Outside, the in-call test stops
/// the statement before its first row (no row-size error for a row far over the limit); inside,
/// the same statement runs and the row guard refuses that row.
#[tokio::test]
async fn the_sent_sql_runs_only_inside_a_call() {
    let f = fixture();
    let settings = f.settings(&TestConfig::default()).database;
    let (client, conn) = tokio_postgres::connect(&settings.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let small = pgward::db::guarded("SELECT 1 AS one LIMIT 1", 1 << 20);
    let huge = pgward::db::guarded("SELECT repeat('x', 100000) AS big LIMIT 1", 1000);
    assert_eq!(client.query(&small, &[]).await.unwrap().len(), 0);
    assert_eq!(client.query(&huge, &[]).await.unwrap().len(), 0);
    client
        .batch_execute(&pgward::db::begin_sql(&settings))
        .await
        .unwrap();
    assert_eq!(client.query(&small, &[]).await.unwrap().len(), 1);
    client.batch_execute("ROLLBACK").await.unwrap();
    client
        .batch_execute(&pgward::db::begin_sql(&settings))
        .await
        .unwrap();
    let e = client.query(&huge, &[]).await.unwrap_err();
    assert!(
        e.as_db_error()
            .is_some_and(|d| d.message().contains("bytes exceed the row size limit")),
        "{e:?}"
    );
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(client.query(&small, &[]).await.unwrap().len(), 0);
}

/// URL settings pgward cannot honour stop start-up with the reason; the URL's own options are
/// kept, before pgward's.
#[tokio::test]
async fn urls_pgward_cannot_honour_are_refused() {
    let f = fixture();
    let settings = f.settings(&TestConfig::default()).database;
    let with = |query: &str| {
        let mut s = settings.clone();
        s.url = format!(
            "{}{}{query}",
            s.url,
            if s.url.contains('?') { '&' } else { '?' }
        );
        s
    };
    for (query, reason) in [
        (
            "target_session_attrs=read-write",
            "target_session_attrs cannot tell servers apart",
        ),
        (
            "target_session_attrs=read-only",
            "target_session_attrs cannot tell servers apart",
        ),
        (
            "options=-c%20application_name%3Dx%5C",
            "its options end in a lone backslash",
        ),
    ] {
        let r = Database::connect(&with(query));
        assert!(
            matches!(&r, Err(DbError::Url(m)) if m.starts_with(reason)),
            "{query}: {:?}",
            r.err()
        );
    }
    let db = Database::connect(&with("options=-c%20work_mem%3D7MB")).unwrap();
    assert_eq!(
        rows_of(
            &db,
            "SELECT pg_catalog.current_setting('work_mem') AS w, \
             pg_catalog.current_setting('default_transaction_read_only') AS ro LIMIT 1"
        )
        .await,
        vec![vec![json!("7MB"), json!("on")]]
    );
}

/// The catalog of several tables is read in one round trip, each table's columns in order and
/// once (a table listed twice is read once), a missing table with none.
#[tokio::test]
async fn the_columns_of_several_tables_match_one_table_at_a_time() {
    let f = fixture();
    let db = Database::connect(&f.settings(&TestConfig::default()).database).unwrap();
    let t = |schema: &str, name: &str| pgward::policy::QualifiedName {
        schema: schema.into(),
        name: name.into(),
    };
    let (customers, orders, missing) = (
        t("public", "customers"),
        t("public", "orders"),
        t("public", "no_such_table"),
    );
    let all = db
        .columns_of(&[
            customers.clone(),
            missing.clone(),
            orders.clone(),
            customers.clone(),
        ])
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    for table in [&customers, &orders] {
        let one = db.columns(table).await.unwrap();
        assert!(one.len() > 3, "{table}: {one:?}");
        assert_eq!(all[table], one, "{table}");
    }
    // As demo/schema.sql declares them.
    let orders_columns: Vec<(&str, &str, bool)> = all[&orders]
        .iter()
        .map(|c| (c.name.as_str(), c.data_type.as_str(), c.nullable))
        .collect();
    assert_eq!(
        orders_columns,
        vec![
            ("id", "bigint", false),
            ("customer_id", "bigint", false),
            ("product_id", "bigint", false),
            ("quantity", "integer", false),
            ("total", "numeric(12,2)", false),
            ("status", "text", false),
            ("ordered_at", "timestamp with time zone", false),
        ]
    );
    assert!(all[&missing].is_empty());
}

/// Model-written SQL runs with its compared integers bound as typed parameters
/// (`pgward::sql::literals`). That changes no answer: each query gives the same rows run with
/// its literals in the text, compared with columns of other types (bigint, int, numeric), as
/// negatives, past int4, in IN lists, BETWEEN, HAVING, JOIN ON, CASE and a CTE.
#[tokio::test]
async fn lifted_literals_give_the_rows_of_the_literal_text() {
    let f = fixture();
    let engine = f.engine(&TestConfig::default()).await;
    let policy = engine.settings().policy.clone();
    let db = one_connection(&f);
    // (query, how many literals are lifted)
    let cases = [
        ("SELECT id, status FROM orders WHERE id = 7", 1),
        (
            "SELECT id FROM orders WHERE id IN (3, 1, 2) AND quantity >= 1 ORDER BY id",
            3,
        ),
        (
            "SELECT count(*) FROM orders WHERE total > 100 AND total <= 100000",
            2,
        ),
        (
            "SELECT id FROM orders WHERE id BETWEEN -5 AND 4 ORDER BY id DESC",
            2,
        ),
        (
            "SELECT count(*) FROM orders WHERE id < 3000000000 AND id > -3000000000",
            2,
        ),
        (
            "SELECT status, count(*) FROM orders GROUP BY 1 HAVING count(*) > 1 ORDER BY 1",
            0,
        ),
        (
            "SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id AND c.id = 1 ORDER BY 1",
            1,
        ),
        (
            "SELECT id = 5 AS five, CASE WHEN quantity > 2 THEN 'many' END AS q FROM orders \
             WHERE 1 = 1 ORDER BY id LIMIT 10",
            3,
        ),
        (
            "WITH big AS (SELECT id FROM orders WHERE quantity <> 1) \
             SELECT count(*) FROM big WHERE id > (SELECT 10)",
            1,
        ),
        (
            "SELECT name FROM products WHERE in_stock >= 0 AND price < 1000 AND id NOT IN (2) ORDER BY id",
            3,
        ),
        // A constant comparison decides an OR or AND in the literal text's plan, so its
        // subquery (here failing on a second row) never runs; planned per call, lifting
        // keeps that.
        (
            "SELECT id FROM orders WHERE id = 1 AND \
             (customer_id = (SELECT customer_id FROM orders LIMIT 2) OR 1 = 1)",
            1,
        ),
        (
            "SELECT id, (customer_id = (SELECT customer_id FROM orders) AND 0 = 1) AS never \
             FROM orders WHERE id = 1",
            2,
        ),
        // The same expression twice: equal values share a parameter.
        (
            "SELECT CASE WHEN total > 100 THEN 'big' ELSE 'small' END AS size FROM orders \
             WHERE total > 100 OR id = 1 ORDER BY total > 100, id LIMIT 5",
            2,
        ),
        // Where PostgreSQL matches expressions by tree (and folds `(2)`, `2::int`, `'2'` and
        // `= ANY(ARRAY[2])` into the constant `2`), nothing is lifted.
        (
            "SELECT CASE WHEN total > 100 THEN 'big' ELSE 'small' END AS size, count(*) FROM orders \
             GROUP BY CASE WHEN total > 100 THEN 'big' ELSE 'small' END ORDER BY 1",
            0,
        ),
        (
            "SELECT quantity > (2) AS many, count(*) FROM orders GROUP BY quantity > 2 ORDER BY 1",
            0,
        ),
        (
            "SELECT DISTINCT quantity > 2::int AS many FROM orders ORDER BY quantity > 2",
            0,
        ),
        (
            "SELECT quantity > '2' AS many, count(*) FROM orders GROUP BY quantity > 2 ORDER BY 1",
            0,
        ),
        (
            "SELECT DISTINCT quantity IN (2, 3) AS q FROM orders ORDER BY quantity = ANY(ARRAY[2, 3])",
            0,
        ),
        (
            "SELECT DISTINCT ON (quantity > 2) id FROM orders ORDER BY quantity > 2, id",
            0,
        ),
    ];
    let mut planned = [0, 0];
    for (sql, lifted) in cases {
        let checked = pgward::sql::check(&policy, sql, pgward::sql::ParamMode::None).unwrap();
        assert_eq!(checked.literals.len(), lifted, "{sql}: {}", checked.run_sql);
        assert_eq!(checked.run_sql == checked.sql, lifted == 0, "{sql}");
        assert!(!checked.plan_each_call || lifted > 0, "{sql}");
        let args: Vec<(String, serde_json::Value)> = checked
            .literals
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("${}", i + 1), json!(v)))
            .collect();
        let literal = db.run(&checked.sql, &[], LIMITS, pending()).await.unwrap();
        assert!(!literal.rows.is_empty(), "{sql}");
        // As the engine runs it, seven times on one connection: past the fifth call,
        // PostgreSQL may reuse a plan made without the values unless each call is planned.
        let limits = CallLimits {
            plan_each_call: checked.plan_each_call,
            ..LIMITS
        };
        planned[usize::from(checked.plan_each_call)] += usize::from(lifted > 0);
        for call in 1..=7 {
            let bound = db
                .run(&checked.run_sql, &args, limits, pending())
                .await
                .unwrap();
            assert_eq!(bound.columns, literal.columns, "{sql}");
            assert_eq!(bound.rows, literal.rows, "{sql}: call {call}");
        }
    }
    // Both kinds of lifted statement are here: planned per call, and left to PostgreSQL.
    assert!(planned[0] >= 5 && planned[1] >= 3, "{planned:?}");
}

/// Why the shapes above lift nothing: written by hand with their literals lifted, PostgreSQL
/// refuses them: it matches these expressions by tree, and a parameter never matches the same
/// constant written another way. Lifting would turn a working query into an error.
#[tokio::test]
async fn grouping_shapes_fail_when_their_literals_are_lifted() {
    let f = fixture();
    let engine = f.engine(&TestConfig::default()).await;
    let policy = engine.settings().policy.clone();
    let db = one_connection(&f);
    // (the model's query, the same with its compared integers lifted, the SQLSTATE)
    let cases = [
        (
            "SELECT quantity > '2' AS many, count(*) FROM orders GROUP BY quantity > 2 ORDER BY 1",
            "SELECT quantity > '2' AS many, count(*) FROM orders \
             GROUP BY quantity > $1::INTEGER ORDER BY 1",
            "42803",
        ),
        (
            "SELECT quantity > (2) AS many, count(*) FROM orders GROUP BY quantity > 2 ORDER BY 1",
            "SELECT quantity > (2) AS many, count(*) FROM orders \
             GROUP BY quantity > $1::INTEGER ORDER BY 1",
            "42803",
        ),
        (
            "SELECT quantity > 2::int AS many, count(*) FROM orders \
             GROUP BY ROLLUP (quantity > 2) ORDER BY 1",
            "SELECT quantity > 2::int AS many, count(*) FROM orders \
             GROUP BY ROLLUP (quantity > $1::INTEGER) ORDER BY 1",
            "42803",
        ),
        (
            "SELECT DISTINCT quantity > 2::int AS many FROM orders ORDER BY quantity > 2",
            "SELECT DISTINCT quantity > 2::int AS many FROM orders ORDER BY quantity > $1::INTEGER",
            "42P10",
        ),
        (
            "SELECT DISTINCT ON (quantity > 2) id FROM orders ORDER BY quantity > 2, id",
            "SELECT DISTINCT ON (quantity > $1::INTEGER) id FROM orders \
             ORDER BY quantity > 2, id",
            "42P10",
        ),
    ];
    for (sql, by_hand, code) in cases {
        let checked = pgward::sql::check(&policy, sql, pgward::sql::ParamMode::None).unwrap();
        assert!(checked.literals.is_empty(), "{sql}: {}", checked.run_sql);
        assert_eq!(checked.run_sql, checked.sql, "{sql}");
        let out = db
            .run(&checked.run_sql, &[], LIMITS, pending())
            .await
            .unwrap();
        assert!(!out.rows.is_empty(), "{sql}");
        let err = db
            .run(
                by_hand,
                &[("$1".to_string(), json!(2))],
                PLAN_EACH_CALL,
                pending(),
            )
            .await
            .expect_err(by_hand);
        match err {
            DbError::Postgres { code: got, .. } => assert_eq!(got, code, "{by_hand}"),
            other => panic!("{by_hand}: {other}"),
        }
    }
}

/// Lookups that differ only in a compared integer are one statement to PostgreSQL: the
/// connection describes it once and keeps it, where each literal text was a new statement.
#[tokio::test]
async fn lookups_differing_in_a_literal_share_one_kept_statement() {
    let f = fixture();
    let engine = f.engine(&TestConfig::default()).await;
    let policy = engine.settings().policy.clone();
    let db = one_connection(&f);
    let mut texts = std::collections::BTreeSet::new();
    for id in 1..=6i64 {
        let sql = format!("SELECT id, status FROM orders WHERE id = {id}");
        let checked = pgward::sql::check(&policy, &sql, pgward::sql::ParamMode::None).unwrap();
        assert_eq!(checked.literals, vec![id]);
        let out = db
            .run(
                &checked.run_sql,
                &[("$1".to_string(), json!(id))],
                LIMITS,
                pending(),
            )
            .await
            .unwrap();
        assert_eq!(out.rows.len(), 1, "{sql}");
        assert_eq!(out.rows[0][0], json!(id), "{sql}");
        texts.insert(checked.run_sql);
    }
    assert_eq!(texts.len(), 1, "{texts:?}");
    // One statement, its parameter typed as PostgreSQL types the literal `1`.
    let kept = "SELECT parameter_types::text[] AS types FROM pg_catalog.pg_prepared_statements \
                WHERE pg_catalog.strpos(statement, 'WHERE id = $1' || '::INTEGER') > 0 LIMIT 5";
    assert_eq!(rows_of(&db, kept).await, vec![vec![json!(["integer"])]]);
}

/// Limits as the engine sets them for model SQL with lifted literals.
const PLAN_EACH_CALL: CallLimits = CallLimits {
    plan_each_call: true,
    ..LIMITS
};

/// A call whose literals were lifted is planned with its values (`SET LOCAL plan_cache_mode =
/// force_custom_plan`), as its literal text is. Without that, after five executions of a kept
/// statement PostgreSQL builds a generic plan, which folds `1 / 0` in a branch the values rule
/// out, and fails at plan time; with the literals in the text the branch is dropped first.
#[tokio::test]
async fn a_lifted_call_is_planned_with_its_values() {
    let f = fixture();
    // One connection, so the engine's calls below all reuse one kept statement.
    let engine = f
        .engine(&TestConfig {
            pool_size: 1,
            ..TestConfig::default()
        })
        .await;
    let policy = engine.settings().policy.clone();
    let sql = "SELECT id, CASE WHEN 0 = 1 THEN 1 / 0 END AS never FROM orders WHERE id = 1";
    let checked = pgward::sql::check(&policy, sql, pgward::sql::ParamMode::None).unwrap();
    assert_eq!(checked.literals, vec![0, 1]);
    assert!(checked.plan_each_call);
    let args = [("$1".to_string(), json!(0)), ("$2".to_string(), json!(1))];
    let db = one_connection(&f);
    for call in 1..=8 {
        let out = db
            .run(&checked.run_sql, &args, PLAN_EACH_CALL, pending())
            .await
            .unwrap_or_else(|e| panic!("call {call}: {e}"));
        assert_eq!(out.rows, vec![vec![json!(1), json!(null)]], "call {call}");
    }
    // The same statement on a connection left to choose its plans: the sixth call fails.
    let db = one_connection(&f);
    for call in 1..=5 {
        assert!(
            db.run(&checked.run_sql, &args, LIMITS, pending())
                .await
                .is_ok(),
            "call {call}"
        );
    }
    let sixth = db.run(&checked.run_sql, &args, LIMITS, pending()).await;
    assert!(
        sixth
            .as_ref()
            .is_err_and(|e| e.to_string().contains("division by zero")),
        "{:?}",
        sixth.map(|o| o.rows)
    );
    // And the engine plans each call of model SQL so.
    for call in 1..=8 {
        let out = engine.call("query", common::sql_args(sql), pending()).await;
        assert!(!out.is_error, "call {call}: {}", out.text);
        assert_eq!(out.structured["rows"], json!([[1, null]]), "call {call}");
    }
}
