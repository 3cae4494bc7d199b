//! pgward's library against a real PostgreSQL: the read-only session, timeouts, caps,
//! cancellation, the posture check, and the engine's shaping (redaction, untrusted-data
//! framing, error hygiene). Some tests call `Database::run` directly, bypassing the SQL
//! check, to prove the database-side walls hold on their own.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

use std::future::pending;
use std::time::{Duration, Instant};

use common::{Fixture, TestConfig, boundary_of, error_code, fixture, sql_args};
use pgward::db::{CallLimits, Database, DbError, QueryOutput, Truncation};
use serde_json::{Value, json};

const LIMITS: CallLimits = CallLimits {
    max_rows: 1000,
    max_bytes: 1_048_576,
    width: None,
    plan_each_call: false,
};

/// A pool for pgward_reader with the test config's session settings.
fn reader_db(f: &Fixture, cfg: &TestConfig) -> Database {
    Database::connect(&f.settings(cfg).database).expect("reader pool")
}

/// A pool for another role, otherwise like the reader's.
fn db_as(f: &Fixture, user: &str) -> Database {
    let mut settings = f.settings(&TestConfig::default()).database;
    settings.url = f.url_for(user);
    Database::connect(&settings).expect("pool")
}

async fn run(db: &Database, sql: &str) -> Result<QueryOutput, DbError> {
    db.run(sql, &[], LIMITS, pending()).await
}

fn sqlstate(r: &Result<QueryOutput, DbError>) -> String {
    match r {
        Err(DbError::Postgres { code, .. }) => code.clone(),
        other => panic!("expected a postgres error, got {other:?}"),
    }
}

async fn backend_pid(db: &Database) -> i64 {
    let out = run(db, "SELECT pg_backend_pid()").await.expect("pid");
    out.rows[0][0].as_i64().expect("pid is a number")
}

async fn orders_fingerprint(su: &tokio_postgres::Client) -> (i64, i64, i64) {
    let row = su
        .query_one(
            "SELECT count(*)::int8, sum(quantity)::int8, max(id)::int8 FROM public.orders",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

// 1 ----------------------------------------------------------------------------------------

/// Runs `sql` on a raw reader connection inside exactly the transaction pgward opens for a
/// call (its `BEGIN READ ONLY` and settings), bypassing the SQL check and the executor's row
/// guard, then rolls back: what the database alone enforces.
async fn in_pgward_session(f: &Fixture, sql: &str) -> Result<(), tokio_postgres::Error> {
    let (client, conn) =
        tokio_postgres::connect(&f.url_for("pgward_reader"), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(conn);
    let begin = pgward::db::begin_sql(&f.settings(&TestConfig::default()).database);
    client.batch_execute(&begin).await.unwrap();
    let result = client.query(sql, &[]).await.map(|_| ());
    client.batch_execute("ROLLBACK").await.unwrap();
    result
}

#[tokio::test]
async fn writes_fail_in_the_database_even_without_the_policy_check() {
    let f = fixture();
    let su = f.superuser().await;
    let db = reader_db(
        &f,
        &TestConfig {
            pool_size: 1,
            ..TestConfig::default()
        },
    );
    let before = orders_fingerprint(&su).await;

    for sql in [
        "INSERT INTO orders (id, customer_id, product_id, quantity, total, status, ordered_at) \
         VALUES (999999, 1, 1, 1, 1.00, 'pending', now())",
        "UPDATE orders SET quantity = quantity + 1",
        "DELETE FROM orders",
        "CREATE TABLE public.pgward_probe (x int)",
        "TRUNCATE orders",
        "WITH d AS (DELETE FROM orders RETURNING id) SELECT count(*) FROM d",
    ] {
        let err = in_pgward_session(&f, sql)
            .await
            .expect_err("the write must fail");
        let code = err.code().map(|c| c.code().to_string()).unwrap_or_default();
        assert!(
            code == "25006" || code == "42501",
            "`{sql}` must fail as read-only (25006) or permission denied (42501), got {code}"
        );
    }
    // Through the executor, a statement that is not a query does not even reach execution:
    // it is wrapped in pgward's row-size guard, which only a query fits.
    assert_eq!(sqlstate(&run(&db, "DELETE FROM orders").await), "42601");
    assert_eq!(orders_fingerprint(&su).await, before, "orders unchanged");
    let probe: Option<String> = su
        .query_one("SELECT to_regclass('public.pgward_probe')::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(probe, None, "no table was created");

    // A session setting changed inside the call does not outlive its transaction: the pool
    // has one connection, so the next call runs on the same backend.
    let pid = backend_pid(&db).await;
    let set = run(&db, "SELECT set_config('pgward.probe', 'leaked', false)")
        .await
        .expect("set_config itself is allowed in a read-only transaction");
    assert_eq!(set.rows, vec![vec![json!("leaked")]]);
    assert_eq!(backend_pid(&db).await, pid, "same connection");
    let after = run(&db, "SELECT current_setting('pgward.probe', true)")
        .await
        .unwrap();
    assert_ne!(
        after.rows[0][0],
        json!("leaked"),
        "the setting was rolled back"
    );
}

// 2 ----------------------------------------------------------------------------------------

#[tokio::test]
async fn statement_timeout_stops_a_slow_query() {
    let f = fixture();
    let db = reader_db(
        &f,
        &TestConfig {
            statement_timeout_ms: 500,
            ..TestConfig::default()
        },
    );
    let started = Instant::now();
    // `pg_sleep` returns `void`, which pgward refuses to map before running anything; read a
    // constant from it instead.
    let r = run(&db, "SELECT 1 AS timeout_probe FROM pg_sleep(5)").await;
    let elapsed = started.elapsed();
    assert_eq!(sqlstate(&r), "57014", "query_canceled by statement_timeout");
    assert!(
        elapsed < Duration::from_secs(2),
        "timed out after {elapsed:?}"
    );
    // The pool still works.
    assert_eq!(
        run(&db, "SELECT 1").await.unwrap().rows,
        vec![vec![json!(1)]]
    );
}

// 3 ----------------------------------------------------------------------------------------

#[tokio::test]
async fn row_and_byte_caps_hold() {
    let f = fixture();
    let db = reader_db(&f, &TestConfig::default());
    let ten = CallLimits {
        max_rows: 10,
        max_bytes: 1_048_576,
        width: None,
        plan_each_call: false,
    };

    let out = db
        .run("SELECT id FROM orders ORDER BY id", &[], ten, pending())
        .await
        .unwrap();
    assert_eq!(out.columns, vec!["id".to_string()]);
    assert_eq!(out.rows.len(), 10);
    assert_eq!(out.truncated, Some(Truncation::Rows));
    assert_eq!(out.rows[0], vec![json!(1)]);
    assert_eq!(out.rows[9], vec![json!(10)]);

    let out = db
        .run(
            "SELECT id FROM orders ORDER BY id LIMIT 5",
            &[],
            ten,
            pending(),
        )
        .await
        .unwrap();
    assert_eq!(out.rows.len(), 5);
    assert_eq!(out.truncated, None);

    // Exactly the cap is not a truncation.
    let out = db
        .run(
            "SELECT id FROM orders ORDER BY id LIMIT 10",
            &[],
            ten,
            pending(),
        )
        .await
        .unwrap();
    assert_eq!(out.rows.len(), 10);
    assert_eq!(out.truncated, None);

    let tiny = CallLimits {
        max_rows: 1000,
        max_bytes: 40,
        width: None,
        plan_each_call: false,
    };
    let out = db
        .run("SELECT id FROM orders ORDER BY id", &[], tiny, pending())
        .await
        .unwrap();
    assert_eq!(out.truncated, Some(Truncation::Bytes));
    assert!(!out.rows.is_empty() && out.rows.len() < 10, "{out:?}");
    assert!(out.bytes <= 40, "{} bytes returned", out.bytes);
    assert!(
        serde_json::to_vec(&out.rows).unwrap().len() <= 40 + 2,
        "the returned rows fit the cap"
    );
}

// 4 ----------------------------------------------------------------------------------------

#[tokio::test]
async fn cancellation_stops_the_query_on_the_server() {
    let f = fixture();
    let su = f.superuser().await;
    let db = reader_db(
        &f,
        &TestConfig {
            statement_timeout_ms: 60_000,
            pool_size: 1,
            ..TestConfig::default()
        },
    );
    let started = Instant::now();
    let r = db
        .run(
            "SELECT 1 AS pgward_cancel_probe FROM pg_sleep(30)",
            &[],
            LIMITS,
            tokio::time::sleep(Duration::from_millis(300)),
        )
        .await;
    let elapsed = started.elapsed();
    assert!(
        matches!(r, Err(DbError::Cancelled)),
        "expected Cancelled, got {r:?}"
    );
    assert!(
        elapsed < Duration::from_secs(5),
        "cancelled after {elapsed:?}"
    );

    // The server is no longer running it.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let active: i64 = su
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE query LIKE '%pgward_cancel_probe%' AND state = 'active' \
                   AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if active == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "pg_sleep still running on the server"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The pool still works afterwards.
    let out = run(&db, "SELECT 42").await.unwrap();
    assert_eq!(out.rows, vec![vec![json!(42)]]);
}

// 5 ----------------------------------------------------------------------------------------

#[tokio::test]
async fn every_call_ends_in_rollback() {
    let f = fixture();
    let su = f.superuser().await;
    let db = reader_db(
        &f,
        &TestConfig {
            pool_size: 1,
            ..TestConfig::default()
        },
    );
    let mut pids = vec![backend_pid(&db).await];
    run(&db, "SELECT id FROM orders LIMIT 3").await.unwrap();
    assert_eq!(sqlstate(&run(&db, "SELECT 1/0").await), "22012");
    pids.push(backend_pid(&db).await);
    assert_eq!(
        sqlstate(&run(&db, "DELETE FROM orders WHERE id = 1").await),
        "42601"
    );
    let _ = run(&db, "SELECT nonexistent_column FROM orders").await;
    // Inside a call, the transaction is read-only and open...
    let inside = run(
        &db,
        "SELECT current_setting('transaction_read_only'), now() = statement_timestamp()",
    )
    .await
    .unwrap();
    assert_eq!(inside.rows[0][0], json!("on"), "calls run READ ONLY");
    assert_eq!(
        inside.rows[0][1],
        json!(false),
        "calls run inside an explicit transaction"
    );
    pids.push(backend_pid(&db).await);
    pids.sort_unstable();
    pids.dedup();
    let pids: Vec<i32> = pids
        .into_iter()
        .map(|p| i32::try_from(p).unwrap())
        .collect();

    // ...and after it, nothing of pgward's is left in a transaction.
    let stuck: i64 = su
        .query_one(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE usename = 'pgward_reader' AND state LIKE 'idle in transaction%' \
               AND pid = ANY($1)",
            &[&pids],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stuck, 0);
    for row in su
        .query(
            "SELECT pid, state, xact_start IS NULL FROM pg_stat_activity WHERE pid = ANY($1)",
            &[&pids],
        )
        .await
        .unwrap()
    {
        let state: Option<String> = row.get(1);
        assert_eq!(
            state.as_deref(),
            Some("idle"),
            "backend {} is idle",
            row.get::<_, i32>(0)
        );
        assert!(row.get::<_, bool>(2), "no transaction open");
    }

    // Across every pgward session in the cluster (other tests run concurrently, so allow a
    // moment for any in-flight call of theirs to finish).
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let n: i64 = su
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE usename = 'pgward_reader' AND state LIKE 'idle in transaction%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if n == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{n} session(s) idle in transaction"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// 6 ----------------------------------------------------------------------------------------

#[tokio::test]
async fn posture_check_reports_unsafe_roles() {
    let f = fixture();
    let su = f.superuser().await;

    let reader = reader_db(&f, &TestConfig::default());
    assert_eq!(reader.posture().await.unwrap(), Vec::<String>::new());

    let superuser = db_as(&f, "postgres");
    let findings = superuser.posture().await.unwrap();
    assert!(
        findings
            .iter()
            .any(|f| f.contains("role `postgres` is a superuser")),
        "{findings:?}"
    );

    su.batch_execute(
        "DO $$ BEGIN \
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pgward_test_writer') THEN \
             CREATE ROLE pgward_test_writer LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE; \
           END IF; \
         END $$; \
         GRANT USAGE ON SCHEMA public TO pgward_test_writer; \
         GRANT SELECT, INSERT ON public.orders TO pgward_test_writer;",
    )
    .await
    .unwrap();
    let writer = db_as(&f, "pgward_test_writer");
    let findings = writer.posture().await.unwrap();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert!(
        findings[0].contains("role `pgward_test_writer` can write to 1 table(s)"),
        "{findings:?}"
    );
    assert!(findings[0].contains("public.orders"), "{findings:?}");
}

#[tokio::test]
async fn build_engine_refuses_a_superuser_unless_overridden() {
    let f = fixture();
    let toml = |allow: bool| {
        format!(
            "[database]\nurl = \"{}\"\nallow_privileged_role = {allow}\n\n\
             [[tables]]\nname = \"public.orders\"\ncolumns = \"all\"\n",
            f.url_for("postgres")
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("su.toml");

    std::fs::write(&path, toml(false)).unwrap();
    let err = match pgward::app::build_engine(&path).await {
        Ok(_) => panic!("a superuser must be refused"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("refusing to serve"), "{err}");
    assert!(err.contains("is a superuser"), "{err}");
    assert!(err.contains("allow_privileged_role"), "{err}");

    std::fs::write(&path, toml(true)).unwrap();
    let engine = pgward::app::build_engine(&path)
        .await
        .unwrap_or_else(|e| panic!("the override must let it serve: {e}"));
    let out = engine
        .call(
            "query",
            sql_args("SELECT id FROM orders ORDER BY id LIMIT 2"),
            pending(),
        )
        .await;
    assert!(!out.is_error, "{}", out.text);
    assert_eq!(out.structured["rows"], json!([[1], [2]]));
}

// 7 ----------------------------------------------------------------------------------------

#[tokio::test]
async fn redaction_holds_end_to_end() {
    let f = fixture();
    let su = f.superuser().await;
    let engine = f.engine(&TestConfig::default()).await;

    let out = engine
        .call(
            "query",
            sql_args("SELECT id, email, phone FROM customers ORDER BY id LIMIT 3"),
            pending(),
        )
        .await;
    assert!(!out.is_error, "{}", out.text);
    assert_eq!(out.structured["columns"], json!(["id", "email", "phone"]));
    let rows = out.structured["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    let mut hashes = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row[0], json!(i + 1), "ids are JSON numbers");
        assert_eq!(row[1], json!("[REDACTED]"));
        let phone = row[2].as_str().expect("hashed phone is a string");
        assert!(phone.starts_with("hmac:"), "{phone}");
        assert!(phone.len() > "hmac:".len() + 16, "{phone}");
        hashes.push(phone.to_string());
    }
    hashes.dedup();
    assert_eq!(hashes.len(), 3, "distinct phones hash differently");

    let everything = format!(
        "{}\n{}\n{}",
        out.text,
        out.structured,
        serde_json::Value::Object(out.meta.clone())
    );
    let real = su
        .query(
            "SELECT email, phone FROM public.customers ORDER BY id LIMIT 3",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(real.len(), 3);
    for row in &real {
        let email: String = row.get(0);
        let phone: String = row.get(1);
        assert!(!everything.contains(&email), "email {email} leaked");
        assert!(!everything.contains(&phone), "phone {phone} leaked");
        let local = email.split('@').next().unwrap();
        assert!(
            !everything.contains(local),
            "the email's local part {local} leaked"
        );
    }

    // The hash is stable (a join key across calls), and the same for the same value.
    let again = engine
        .call(
            "query",
            sql_args("SELECT phone FROM customers ORDER BY id LIMIT 1"),
            pending(),
        )
        .await;
    assert_eq!(again.structured["rows"][0][0], json!(hashes[0]));

    let refused = engine
        .call(
            "query",
            sql_args("SELECT email FROM customers WHERE email LIKE 'a%'"),
            pending(),
        )
        .await;
    assert!(refused.is_error);
    assert_eq!(
        refused.structured["error"]["violations"][0]["code"],
        json!("redacted_column_use"),
        "{}",
        refused.structured
    );
    assert_eq!(error_code(&refused.structured), Some("redacted_column_use"));
    assert!(
        refused.text.contains("redacted_column_use"),
        "{}",
        refused.text
    );
}

// 8 ----------------------------------------------------------------------------------------

#[tokio::test]
async fn prompt_injection_is_flagged_and_framed_not_altered() {
    let f = fixture();
    let su = f.superuser().await;
    let engine = f.engine(&TestConfig::default()).await;
    let body: String = su
        .query_one("SELECT body FROM public.support_tickets WHERE id = 42", &[])
        .await
        .unwrap()
        .get(0);

    let sql = "SELECT id, body FROM support_tickets WHERE id = 42";
    let first = engine.call("query", sql_args(sql), pending()).await;
    assert!(!first.is_error, "{}", first.text);
    let warnings = first.structured["injection_warnings"].as_array().unwrap();
    assert!(!warnings.is_empty(), "ticket 42 is flagged");
    assert_eq!(warnings[0]["column"], json!("body"));
    assert_eq!(warnings[0]["row"], json!(0));
    assert!(
        !warnings[0]["patterns"].as_array().unwrap().is_empty(),
        "the hit names its patterns"
    );
    assert_eq!(
        first.structured["rows"],
        json!([[42, body]]),
        "the value itself is unaltered"
    );
    assert!(first.text.contains("WARNING"), "{}", first.text);
    assert_eq!(
        first.meta["pgward/injection_warnings"],
        first.structured["injection_warnings"]
    );

    let b1 = boundary_of(&first.text);
    let inner = first
        .text
        .split(&format!("<untrusted-data-{b1}>"))
        .nth(1)
        .unwrap();
    assert!(
        inner.contains(&serde_json::to_string(&body).unwrap()[1..20]),
        "the data is inside the frame"
    );

    let second = engine.call("query", sql_args(sql), pending()).await;
    let b2 = boundary_of(&second.text);
    assert_ne!(b1, b2, "a fresh boundary per call");
    assert!(b1.len() >= 16, "the boundary is not guessable: {b1}");
}

// 9 ----------------------------------------------------------------------------------------

#[tokio::test]
async fn postgres_errors_carry_only_sqlstate_and_primary_message() {
    let f = fixture();
    let engine = f.engine(&TestConfig::default()).await;

    let out = engine
        .call("query", sql_args("SELECT 1/0"), pending())
        .await;
    assert!(out.is_error);
    assert_eq!(error_code(&out.structured), Some("database_error"));
    assert!(out.text.contains("22012"), "{}", out.text);
    assert!(out.text.contains("division by zero"), "{}", out.text);

    // Postgres attaches a HINT to this one ("No operator matches the given name and argument
    // types. You might need to add explicit type casts.").
    let hinted = engine
        .call(
            "query",
            sql_args("SELECT id FROM orders WHERE status = 1"),
            pending(),
        )
        .await;
    assert!(hinted.is_error);
    assert!(hinted.text.contains("42883"), "{}", hinted.text);
    assert!(
        hinted.text.contains("operator does not exist"),
        "{}",
        hinted.text
    );

    for o in [&out, &hinted] {
        let all = format!("{}\n{}", o.text, o.structured).to_lowercase();
        for banned in [
            "detail",
            "hint",
            "no operator matches",
            "explicit type casts",
            "postgres://",
            ".rs:",
        ] {
            assert!(!all.contains(banned), "`{banned}` in {all}");
        }
    }
}

// 10 ---------------------------------------------------------------------------------------

#[tokio::test]
async fn describe_table_shows_allowed_columns_and_hides_existence() {
    let f = fixture();
    let engine = f.engine(&TestConfig::default()).await;
    let describe = |table: &str| {
        let mut args = serde_json::Map::new();
        args.insert("table".into(), json!(table));
        engine.call("describe_table", args, pending())
    };

    let out = describe("customers").await;
    assert!(!out.is_error, "{}", out.text);
    assert_eq!(out.structured["table"], json!("public.customers"));
    let cols: Vec<(String, String, Value)> = out.structured["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["type"].as_str().unwrap().to_string(),
                c["redacted"].clone(),
            )
        })
        .collect();
    let expected: Vec<(String, String, Value)> = [
        ("id", "bigint", Value::Null),
        ("full_name", "text", Value::Null),
        ("email", "text", json!("mask")),
        ("phone", "text", json!("hash")),
        ("country", "text", Value::Null),
        ("created_at", "timestamp with time zone", Value::Null),
        ("lifetime_value", "numeric(12,2)", Value::Null),
    ]
    .into_iter()
    .map(|(n, t, r)| (n.to_string(), t.to_string(), r))
    .collect();
    assert_eq!(cols, expected);
    assert!(!out.text.contains("ssn"), "{}", out.text);
    assert!(!out.structured.to_string().contains("ssn"));
    boundary_of(&out.text);

    // Same answer for "hidden" and "does not exist", whatever the spelling.
    let normalize = |o: &pgward::engine::Outcome, name: &str| {
        assert!(o.is_error, "{name}: {}", o.text);
        assert_eq!(
            error_code(&o.structured),
            Some("table_not_allowed"),
            "{name}"
        );
        (
            o.text.replace(name, "<NAME>"),
            o.structured.to_string().replace(name, "<NAME>"),
        )
    };
    let hidden = normalize(&describe("staff_passwords").await, "staff_passwords");
    let missing = normalize(&describe("no_such_table").await, "no_such_table");
    assert_eq!(hidden, missing);
    let hidden = normalize(
        &describe("public.staff_passwords").await,
        "public.staff_passwords",
    );
    let missing = normalize(
        &describe("public.no_such_table").await,
        "public.no_such_table",
    );
    let secret = normalize(&describe("internal.api_keys").await, "internal.api_keys");
    assert_eq!(hidden, missing);
    assert_eq!(secret, missing);
}

// 11 ---------------------------------------------------------------------------------------

#[tokio::test]
async fn values_map_to_faithful_json() {
    let f = fixture();
    let su = f.superuser().await;
    let engine = f.engine(&TestConfig::default()).await;

    let real = su
        .query_one(
            "SELECT full_name, country, lifetime_value::text FROM public.customers WHERE id = 1",
            &[],
        )
        .await
        .unwrap();
    let out = engine
        .call(
            "query",
            sql_args(
                "SELECT id, full_name, country, created_at, lifetime_value FROM customers WHERE id = 1",
            ),
            pending(),
        )
        .await;
    assert!(!out.is_error, "{}", out.text);
    assert_eq!(
        out.structured["rows"],
        json!([[
            1,
            real.get::<_, String>(0),
            real.get::<_, String>(1),
            "2023-01-02T03:17:00Z",
            real.get::<_, String>(2)
        ]])
    );

    let out = engine
        .call(
            "query",
            sql_args("SELECT id, price, thumbnail, tags FROM products WHERE id = 1"),
            pending(),
        )
        .await;
    assert!(!out.is_error, "{}", out.text);
    let price: String = su
        .query_one("SELECT price::text FROM public.products WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        out.structured["rows"],
        json!([[1, price, "\\x89504e4701", ["sale"]]])
    );

    // Bypassing the check to reach exact literals.
    let db = reader_db(&f, &TestConfig::default());
    let out = run(
        &db,
        "SELECT 7::int4, 9007199254740993::int8, 1.50::numeric, 'x'::text, NULL::int4, \
         timestamptz '2024-02-29 12:34:56.5+02', '\\x00ff'::bytea, true",
    )
    .await
    .unwrap();
    assert_eq!(
        out.rows,
        vec![vec![
            json!(7),
            json!("9007199254740993"),
            json!("1.50"),
            json!("x"),
            Value::Null,
            json!("2024-02-29T10:34:56.5Z"),
            json!("\\x00ff"),
            json!(true),
        ]]
    );
}

/// A function in an allowed schema with a built-in's name (public is searched before
/// pg_catalog in the pinned search_path) never stands in for the built-in: pgward calls
/// built-ins as `pg_catalog.name`. Backslashes in literals keep their standard meaning whatever
/// the database's default for standard_conforming_strings.
#[tokio::test]
async fn builtins_cannot_be_shadowed_and_string_literals_are_standard() {
    let f = fixture();
    let su = f.superuser().await;
    su.batch_execute(
        "CREATE OR REPLACE FUNCTION public.upper(text) RETURNS text LANGUAGE sql IMMUTABLE \
         AS $$ SELECT 'shadowed'::text $$; \
         ALTER ROLE pgward_reader SET standard_conforming_strings = off",
    )
    .await
    .unwrap();
    let engine = f.engine(&TestConfig::default()).await;
    let out = engine
        .call(
            "query",
            sql_args(
                "SELECT upper(full_name) AS u, 'a\\b' AS lit FROM customers ORDER BY id LIMIT 1",
            ),
            pending(),
        )
        .await;
    su.batch_execute(
        "DROP FUNCTION public.upper(text); ALTER ROLE pgward_reader RESET standard_conforming_strings",
    )
    .await
    .unwrap();
    assert!(!out.is_error, "{}", out.text);
    let row = &out.structured["rows"][0];
    let name: String = su
        .query_one(
            "SELECT upper(full_name) FROM customers ORDER BY id LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(row[0], json!(name), "the built-in upper() ran");
    assert_ne!(row[0], json!("shadowed"));
    assert_eq!(row[1], json!("a\\b"), "the backslash is a plain character");
    assert!(
        out.meta["pgward/sql"]
            .as_str()
            .unwrap()
            .contains("pg_catalog.upper(full_name)"),
        "{}",
        out.meta["pgward/sql"]
    );
}
