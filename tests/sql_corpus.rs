//! Table-driven corpus and property tests for the SQL check (`pgward::sql::check`).
//!
//! The policy is a demo shop (see [`demo_policy`]): `public.customers` with `email` masked and
//! `phone` hashed (its `ssn` column exists in the database but is not listed, so it is hidden),
//! `public.orders`, `public.products`; schema `internal` exists in the database but nothing in
//! it is allowlisted.
//!
//! Layout of this file:
//! - `allowed_corpus`: queries that must be accepted; many with their exact canonical SQL and
//!   every one with its exact redactions; each canonical SQL must be accepted again unchanged.
//! - `refused_corpus`: queries that must be refused, each with its exact set of codes.
//! - focused tests (quoting, placeholders, limits, hostile inputs, deep nesting).
//! - property tests (never panics; accepted queries are idempotent under the rewrite).
//! - `bug_*` tests: each documents one defect in `src/sql/check.rs` found by this corpus. They
//!   hold the correct expectation and fail until the defect is fixed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

use std::collections::{BTreeMap, BTreeSet};

use pgward::policy::{ColumnRule, Columns, FunctionAllowlist, Policy, QualifiedName, TableRule};
use pgward::redact::Strategy;
use pgward::sql::{
    Checked, Code, DEFAULT_FUNCTIONS, KeptParses, ParamMode, Violation, check, check_keeping,
};

// ---------------------------------------------------------------------------------------------
// The policy
// ---------------------------------------------------------------------------------------------

fn column(name: &str, redact: Option<Strategy>) -> ColumnRule {
    ColumnRule {
        name: name.to_string(),
        redact,
    }
}

fn table(name: &str, columns: Vec<ColumnRule>) -> (QualifiedName, TableRule) {
    let q = QualifiedName {
        schema: "public".to_string(),
        name: name.to_string(),
    };
    let rule = TableRule {
        name: q.clone(),
        columns: Columns::List(columns),
        description: None,
        row_filter: None,
    };
    (q, rule)
}

fn plain(names: &[&str]) -> Vec<ColumnRule> {
    names.iter().map(|n| column(n, None)).collect()
}

/// The demo shop. `customers.ssn` exists in the database but is not listed; schema `internal`
/// (with `internal.api_keys`) exists but has nothing allowlisted.
fn demo_policy() -> Policy {
    let tables: BTreeMap<QualifiedName, TableRule> = [
        table(
            "customers",
            vec![
                column("id", None),
                column("full_name", None),
                column("email", Some(Strategy::Mask)),
                column("phone", Some(Strategy::Hash)),
                column("country", None),
                column("created_at", None),
                column("lifetime_value", None),
            ],
        ),
        table(
            "orders",
            plain(&[
                "id",
                "customer_id",
                "product_id",
                "quantity",
                "total",
                "status",
                "ordered_at",
            ]),
        ),
        table(
            "products",
            plain(&[
                "id",
                "sku",
                "name",
                "category",
                "price",
                "in_stock",
                "tags",
                "attributes",
            ]),
        ),
    ]
    .into_iter()
    .collect();
    Policy {
        schemas: vec!["public".to_string()],
        tables,
        functions: FunctionAllowlist {
            builtin: DEFAULT_FUNCTIONS.iter().map(|s| s.to_string()).collect(),
            extra: BTreeSet::new(),
        },
        max_rows: 100,
        max_sql_length: 10_000,
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn run(sql: &str) -> Result<Checked, Vec<Violation>> {
    check(&demo_policy(), sql, ParamMode::None)
}

fn codes_of(violations: &[Violation]) -> BTreeSet<Code> {
    violations.iter().map(|v| v.code).collect()
}

fn show(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(" | ")
}

type Redaction = (usize, &'static str, Strategy);

fn redactions_of(checked: &Checked) -> Vec<(usize, String, Strategy)> {
    checked
        .redactions
        .iter()
        .map(|r| (r.index, r.column.clone(), r.strategy))
        .collect()
}

/// Every code, with an exhaustive match so a new `Code` variant stops this file compiling
/// until the corpus covers it.
fn all_codes() -> Vec<Code> {
    use Code::*;
    let all = vec![
        SqlTooLong,
        ParseError,
        EmptyStatement,
        MultipleStatements,
        NotSelect,
        SelectInto,
        LockingClause,
        DataModifying,
        TableNotAllowed,
        ThreePartName,
        ColumnNotAllowed,
        AmbiguousColumn,
        WholeRowReference,
        FunctionNotAllowed,
        TableFunctionNotAllowed,
        RedactedColumnUse,
        NonConstantLimit,
        NaturalJoin,
        TypeNotAllowed,
        OperatorNotAllowed,
        PlaceholderNotAllowed,
        IdentifierTooLong,
        UnsupportedSyntax,
    ];
    for c in &all {
        match c {
            SqlTooLong
            | ParseError
            | EmptyStatement
            | MultipleStatements
            | NotSelect
            | SelectInto
            | LockingClause
            | DataModifying
            | TableNotAllowed
            | ThreePartName
            | ColumnNotAllowed
            | AmbiguousColumn
            | WholeRowReference
            | FunctionNotAllowed
            | TableFunctionNotAllowed
            | RedactedColumnUse
            | NonConstantLimit
            | NaturalJoin
            | TypeNotAllowed
            | OperatorNotAllowed
            | PlaceholderNotAllowed
            | IdentifierTooLong
            | UnsupportedSyntax => {}
        }
    }
    all
}

/// Checks one accepted case; returns a description of every mismatch.
fn verify_allowed(
    sql: &str,
    canonical: Option<&str>,
    redactions: &[Redaction],
    limit: Option<u64>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let checked = match run(sql) {
        Ok(c) => c,
        Err(v) => return vec![format!("REFUSED {sql}\n    -> {}", show(&v))],
    };
    if let Some(want) = canonical.filter(|w| *w != checked.sql) {
        problems.push(format!(
            "CANONICAL {sql}\n    want: {want}\n    got:  {}",
            checked.sql
        ));
    }
    let want_red: Vec<(usize, String, Strategy)> = redactions
        .iter()
        .map(|(i, c, s)| (*i, c.to_string(), *s))
        .collect();
    let got_red = redactions_of(&checked);
    if got_red != want_red {
        problems.push(format!(
            "REDACTIONS {sql}\n    want: {want_red:?}\n    got:  {got_red:?}"
        ));
    }
    if let Some(want) = limit.filter(|w| *w != checked.limit) {
        problems.push(format!("LIMIT {sql}: want {want}, got {}", checked.limit));
    }
    // Idempotence: the canonical SQL is accepted again and re-serializes to itself.
    match run(&checked.sql) {
        Ok(again) => {
            if again.sql != checked.sql
                || redactions_of(&again) != got_red
                || again.limit != checked.limit
            {
                problems.push(format!(
                    "NOT IDEMPOTENT {sql}\n    first:  {}\n    second: {}",
                    checked.sql, again.sql
                ));
            }
        }
        Err(v) => problems.push(format!(
            "CANONICAL REFUSED {sql}\n    canonical: {}\n    -> {}",
            checked.sql,
            show(&v)
        )),
    }
    problems
}

/// Checks one refused case; returns a description of the mismatch, if any.
fn verify_refused(sql: &str, want: &[Code]) -> Option<String> {
    let want: BTreeSet<Code> = want.iter().copied().collect();
    match run(sql) {
        Ok(c) => Some(format!(
            "ACCEPTED {sql}\n    want {want:?}\n    canonical: {}",
            c.sql
        )),
        Err(v) => {
            let got = codes_of(&v);
            if got != want {
                Some(format!(
                    "CODES {sql}\n    want {want:?}\n    got  {got:?}\n    {}",
                    show(&v)
                ))
            } else {
                None
            }
        }
    }
}

fn assert_no_problems(what: &str, problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{} {what} case(s) failed:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Allowed corpus
// ---------------------------------------------------------------------------------------------

const M: Strategy = Strategy::Mask;
const H: Strategy = Strategy::Hash;

/// (sql, exact canonical SQL if asserted, exact redactions)
const ALLOWED: &[(&str, Option<&str>, &[Redaction])] = &[
    // --- plain, qualified and unqualified, limits ---
    (
        "SELECT id, full_name FROM customers",
        Some(r#"SELECT id, full_name FROM "public"."customers" LIMIT 101"#),
        &[],
    ),
    (
        "SELECT id, full_name FROM public.customers",
        Some(r#"SELECT id, full_name FROM "public"."customers" LIMIT 101"#),
        &[],
    ),
    (
        "select ID from Customers",
        Some(r#"SELECT ID FROM "public"."customers" LIMIT 101"#),
        &[],
    ),
    (
        r#"SELECT "id" FROM "customers""#,
        Some(r#"SELECT "id" FROM "public"."customers" LIMIT 101"#),
        &[],
    ),
    (
        r#"SELECT id, full_name FROM "public"."customers" WHERE "full_name" IS NOT NULL"#,
        Some(
            r#"SELECT id, full_name FROM "public"."customers" WHERE "full_name" IS NOT NULL LIMIT 101"#,
        ),
        &[],
    ),
    (
        "SELECT customers.id FROM customers",
        Some(r#"SELECT customers.id FROM "public"."customers" LIMIT 101"#),
        &[],
    ),
    (
        "SELECT public.customers.id FROM public.customers",
        Some(r#"SELECT public.customers.id FROM "public"."customers" LIMIT 101"#),
        &[],
    ),
    (
        "SELECT * FROM orders LIMIT 10",
        Some(
            r#"SELECT "orders"."id", "orders"."customer_id", "orders"."product_id", "orders"."quantity", "orders"."total", "orders"."status", "orders"."ordered_at" FROM "public"."orders" LIMIT 10"#,
        ),
        &[],
    ),
    (
        "SELECT * FROM products LIMIT 1000",
        Some(
            r#"SELECT "products"."id", "products"."sku", "products"."name", "products"."category", "products"."price", "products"."in_stock", "products"."tags", "products"."attributes" FROM "public"."products" LIMIT 101"#,
        ),
        &[],
    ),
    (
        "SELECT id FROM orders LIMIT 101",
        Some(r#"SELECT id FROM "public"."orders" LIMIT 101"#),
        &[],
    ),
    (
        "SELECT id FROM orders LIMIT 10 OFFSET 20",
        Some(r#"SELECT id FROM "public"."orders" LIMIT 10 OFFSET 20"#),
        &[],
    ),
    (
        "SELECT id FROM customers OFFSET 5",
        Some(r#"SELECT id FROM "public"."customers" LIMIT 101 OFFSET 5"#),
        &[],
    ),
    (
        "SELECT id FROM orders LIMIT ALL",
        Some(r#"SELECT id FROM "public"."orders" LIMIT 101"#),
        &[],
    ),
    (
        "SELECT id FROM orders LIMIT 0",
        Some(r#"SELECT id FROM "public"."orders" LIMIT 0"#),
        &[],
    ),
    ("SELECT 1", Some("SELECT 1 LIMIT 101"), &[]),
    ("SELECT 1;", Some("SELECT 1 LIMIT 101"), &[]),
    (
        "SELECT now()",
        Some("SELECT pg_catalog.now() LIMIT 101"),
        &[],
    ),
    ("VALUES (1, 'a')", Some("VALUES (1, 'a') LIMIT 101"), &[]),
    ("SELECT count(*) FROM customers", None, &[]),
    // --- star expansion and redactions ---
    (
        "SELECT * FROM customers",
        Some(
            r#"SELECT "customers"."id", "customers"."full_name", "customers"."email", "customers"."phone", "customers"."country", "customers"."created_at", "customers"."lifetime_value" FROM "public"."customers" LIMIT 101"#,
        ),
        &[(2, "email", M), (3, "phone", H)],
    ),
    (
        "SELECT c.* FROM customers c LIMIT 5",
        Some(
            r#"SELECT "c"."id", "c"."full_name", "c"."email", "c"."phone", "c"."country", "c"."created_at", "c"."lifetime_value" FROM "public"."customers" c LIMIT 5"#,
        ),
        &[(2, "email", M), (3, "phone", H)],
    ),
    (
        "SELECT * FROM customers c JOIN orders o ON o.customer_id = c.id LIMIT 3",
        Some(
            r#"SELECT "c"."id", "c"."full_name", "c"."email", "c"."phone", "c"."country", "c"."created_at", "c"."lifetime_value", "o"."id", "o"."customer_id", "o"."product_id", "o"."quantity", "o"."total", "o"."status", "o"."ordered_at" FROM "public"."customers" c JOIN "public"."orders" o ON o.customer_id = c.id LIMIT 3"#,
        ),
        &[(2, "email", M), (3, "phone", H)],
    ),
    (
        "SELECT o.*, c.email FROM orders o JOIN customers c ON c.id = o.customer_id",
        Some(
            r#"SELECT "o"."id", "o"."customer_id", "o"."product_id", "o"."quantity", "o"."total", "o"."status", "o"."ordered_at", c.email FROM "public"."orders" o JOIN "public"."customers" c ON c.id = o.customer_id LIMIT 101"#,
        ),
        &[(7, "email", M)],
    ),
    (
        "SELECT o.id, c.*, o.total FROM orders o JOIN customers c ON c.id = o.customer_id",
        None,
        &[(3, "email", M), (4, "phone", H)],
    ),
    (
        "SELECT email FROM customers",
        Some(r#"SELECT email FROM "public"."customers" LIMIT 101"#),
        &[(0, "email", M)],
    ),
    (
        "SELECT c.email AS e FROM customers c",
        Some(r#"SELECT c.email AS e FROM "public"."customers" c LIMIT 101"#),
        &[(0, "e", M)],
    ),
    (
        "SELECT id, phone, email FROM customers",
        Some(r#"SELECT id, phone, email FROM "public"."customers" LIMIT 101"#),
        &[(1, "phone", H), (2, "email", M)],
    ),
    (
        "SELECT email, phone FROM customers WHERE country = 'DE' ORDER BY created_at DESC LIMIT 20",
        Some(
            r#"SELECT email, phone FROM "public"."customers" WHERE country = 'DE' ORDER BY created_at DESC LIMIT 20"#,
        ),
        &[(0, "email", M), (1, "phone", H)],
    ),
    (
        "SELECT public.customers.phone FROM customers",
        Some(r#"SELECT public.customers.phone FROM "public"."customers" LIMIT 101"#),
        &[(0, "phone", H)],
    ),
    // --- joins ---
    (
        "SELECT o.id, c.full_name FROM orders o JOIN customers c ON c.id = o.customer_id",
        Some(
            r#"SELECT o.id, c.full_name FROM "public"."orders" o JOIN "public"."customers" c ON c.id = o.customer_id LIMIT 101"#,
        ),
        &[],
    ),
    (
        "SELECT o.id, c.full_name FROM orders o INNER JOIN customers c ON c.id = o.customer_id",
        Some(
            r#"SELECT o.id, c.full_name FROM "public"."orders" o INNER JOIN "public"."customers" c ON c.id = o.customer_id LIMIT 101"#,
        ),
        &[],
    ),
    (
        "SELECT o.id, p.name FROM orders o LEFT JOIN products p ON p.id = o.product_id",
        Some(
            r#"SELECT o.id, p.name FROM "public"."orders" o LEFT JOIN "public"."products" p ON p.id = o.product_id LIMIT 101"#,
        ),
        &[],
    ),
    (
        "SELECT o.id, p.name FROM orders o LEFT OUTER JOIN products p ON p.id = o.product_id",
        None,
        &[],
    ),
    (
        "SELECT o.id, p.name FROM orders o RIGHT JOIN products p ON p.id = o.product_id",
        Some(
            r#"SELECT o.id, p.name FROM "public"."orders" o RIGHT JOIN "public"."products" p ON p.id = o.product_id LIMIT 101"#,
        ),
        &[],
    ),
    (
        "SELECT o.id, c.id FROM orders o FULL OUTER JOIN customers c ON c.id = o.customer_id",
        Some(
            r#"SELECT o.id, c.id FROM "public"."orders" o FULL JOIN "public"."customers" c ON c.id = o.customer_id LIMIT 101"#,
        ),
        &[],
    ),
    (
        "SELECT c.country, p.category FROM customers c CROSS JOIN products p",
        Some(
            r#"SELECT c.country, p.category FROM "public"."customers" c CROSS JOIN "public"."products" p LIMIT 101"#,
        ),
        &[],
    ),
    (
        "SELECT c.id, o.id FROM customers c, orders o WHERE o.customer_id = c.id",
        Some(
            r#"SELECT c.id, o.id FROM "public"."customers" c, "public"."orders" o WHERE o.customer_id = c.id LIMIT 101"#,
        ),
        &[],
    ),
    (
        "SELECT o.status FROM orders o JOIN products p USING (id)",
        Some(
            r#"SELECT o.status FROM "public"."orders" o JOIN "public"."products" p USING(id) LIMIT 101"#,
        ),
        &[],
    ),
    (
        "SELECT c.full_name, o.total FROM customers c JOIN orders o USING (id) WHERE o.total > 5",
        None,
        &[],
    ),
    (
        "SELECT c.id, o.id FROM customers c JOIN orders o ON o.customer_id = c.id JOIN products p ON p.id = o.product_id WHERE p.in_stock",
        None,
        &[],
    ),
    (
        "SELECT o.id FROM orders o JOIN products p ON p.id = o.product_id AND p.in_stock",
        None,
        &[],
    ),
    // --- subqueries ---
    (
        "SELECT c.full_name FROM customers AS c WHERE c.id IN (SELECT customer_id FROM orders WHERE total > 100)",
        Some(
            r#"SELECT c.full_name FROM "public"."customers" AS c WHERE c.id IN (SELECT customer_id FROM "public"."orders" WHERE total > 100) LIMIT 101"#,
        ),
        &[],
    ),
    (
        "SELECT c.full_name, (SELECT count(*) FROM orders o WHERE o.customer_id = c.id) AS n FROM customers c",
        Some(
            r#"SELECT c.full_name, (SELECT pg_catalog.count(*) FROM "public"."orders" o WHERE o.customer_id = c.id) AS n FROM "public"."customers" c LIMIT 101"#,
        ),
        &[],
    ),
    (
        "SELECT t.customer_id, t.s FROM (SELECT customer_id, sum(total) AS s FROM orders GROUP BY customer_id) t WHERE t.s > 10",
        Some(
            r#"SELECT t.customer_id, t.s FROM (SELECT customer_id, pg_catalog.sum(total) AS s FROM "public"."orders" GROUP BY customer_id) t WHERE t.s > 10 LIMIT 101"#,
        ),
        &[],
    ),
    (
        "SELECT * FROM (SELECT id, total FROM orders) AS t(a, b)",
        Some(
            r#"SELECT "t".* FROM (SELECT id, total FROM "public"."orders") AS t (a, b) LIMIT 101"#,
        ),
        &[],
    ),
    (
        "SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS v(n, s)",
        Some(r#"SELECT "v".* FROM (VALUES (1, 'a'), (2, 'b')) AS v (n, s) LIMIT 101"#),
        &[],
    ),
    (
        "SELECT id FROM orders WHERE EXISTS (SELECT 1 FROM customers c WHERE c.id = orders.customer_id AND c.country = 'DE')",
        Some(
            r#"SELECT id FROM "public"."orders" WHERE EXISTS (SELECT 1 FROM "public"."customers" c WHERE c.id = orders.customer_id AND c.country = 'DE') LIMIT 101"#,
        ),
        &[],
    ),
    (
        "SELECT id FROM customers c WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id)",
        None,
        &[],
    ),
    (
        "SELECT id FROM orders WHERE total > (SELECT avg(total) FROM orders)",
        Some(
            r#"SELECT id FROM "public"."orders" WHERE total > (SELECT pg_catalog.avg(total) FROM "public"."orders") LIMIT 101"#,
        ),
        &[],
    ),
    (
        "SELECT id FROM orders WHERE total > ANY (SELECT price FROM products)",
        Some(
            r#"SELECT id FROM "public"."orders" WHERE total > ANY(SELECT price FROM "public"."products") LIMIT 101"#,
        ),
        &[],
    ),
    (
        "SELECT (SELECT o.status FROM customers LIMIT 1) FROM orders o",
        None,
        &[],
    ),
    // --- LATERAL ---
    (
        "SELECT c.id, l.total FROM customers c CROSS JOIN LATERAL (SELECT o.total FROM orders o WHERE o.customer_id = c.id ORDER BY o.ordered_at DESC LIMIT 3) l",
        Some(
            r#"SELECT c.id, l.total FROM "public"."customers" c CROSS JOIN LATERAL (SELECT o.total FROM "public"."orders" o WHERE o.customer_id = c.id ORDER BY o.ordered_at DESC LIMIT 3) l LIMIT 101"#,
        ),
        &[],
    ),
    (
        "SELECT c.id, l.total FROM customers c LEFT JOIN LATERAL (SELECT o.total FROM orders o WHERE o.customer_id = c.id LIMIT 1) l ON true",
        None,
        &[],
    ),
    (
        "SELECT c.id, l.n FROM customers c, LATERAL (SELECT count(*) AS n FROM orders o WHERE o.customer_id = c.id) l",
        None,
        &[],
    ),
    // --- CTEs ---
    (
        "WITH big AS (SELECT customer_id, sum(total) AS spent FROM orders GROUP BY customer_id) SELECT * FROM big WHERE spent > 1000",
        Some(
            r#"WITH big AS (SELECT customer_id, pg_catalog.sum(total) AS spent FROM "public"."orders" GROUP BY customer_id) SELECT "big".* FROM big WHERE spent > 1000 LIMIT 101"#,
        ),
        &[],
    ),
    (
        // A CTE shadows a table of the same name, as in PostgreSQL.
        "WITH customers AS (SELECT id, status FROM orders) SELECT * FROM customers",
        Some(
            r#"WITH customers AS (SELECT id, status FROM "public"."orders") SELECT "customers".* FROM customers LIMIT 101"#,
        ),
        &[],
    ),
    (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10) SELECT i FROM n",
        Some(
            "WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10) SELECT i FROM n LIMIT 101",
        ),
        &[],
    ),
    (
        "WITH a AS (SELECT id FROM customers), b AS (SELECT customer_id FROM orders) SELECT a.id FROM a JOIN b ON b.customer_id = a.id",
        None,
        &[],
    ),
    (
        "WITH x(k) AS (SELECT id FROM customers) SELECT k FROM x",
        Some(r#"WITH x (k) AS (SELECT id FROM "public"."customers") SELECT k FROM x LIMIT 101"#),
        &[],
    ),
    // --- set operations ---
    (
        "SELECT id FROM customers UNION SELECT customer_id FROM orders ORDER BY id",
        Some(
            r#"SELECT id FROM "public"."customers" UNION SELECT customer_id FROM "public"."orders" ORDER BY id LIMIT 101"#,
        ),
        &[],
    ),
    (
        "SELECT country FROM customers INTERSECT SELECT category FROM products",
        Some(
            r#"SELECT country FROM "public"."customers" INTERSECT SELECT category FROM "public"."products" LIMIT 101"#,
        ),
        &[],
    ),
    (
        "SELECT id FROM customers EXCEPT SELECT customer_id FROM orders",
        Some(
            r#"SELECT id FROM "public"."customers" EXCEPT SELECT customer_id FROM "public"."orders" LIMIT 101"#,
        ),
        &[],
    ),
    (
        "SELECT id FROM customers UNION ALL SELECT id FROM orders ORDER BY 1 LIMIT 50",
        Some(
            r#"SELECT id FROM "public"."customers" UNION ALL SELECT id FROM "public"."orders" ORDER BY 1 LIMIT 50"#,
        ),
        &[],
    ),
    (
        "(SELECT id FROM customers LIMIT 5) UNION (SELECT id FROM orders LIMIT 5)",
        Some(
            r#"(SELECT id FROM "public"."customers" LIMIT 5) UNION (SELECT id FROM "public"."orders" LIMIT 5) LIMIT 101"#,
        ),
        &[],
    ),
    (
        "SELECT id FROM customers WHERE id IN (SELECT customer_id FROM orders UNION SELECT id FROM products)",
        None,
        &[],
    ),
    // --- aggregates, grouping, windows ---
    (
        "SELECT country, count(*), avg(lifetime_value) FROM customers GROUP BY country HAVING count(*) > 5 ORDER BY 2 DESC",
        Some(
            r#"SELECT country, pg_catalog.count(*), pg_catalog.avg(lifetime_value) FROM "public"."customers" GROUP BY country HAVING pg_catalog.count(*) > 5 ORDER BY 2 DESC LIMIT 101"#,
        ),
        &[],
    ),
    (
        "SELECT customer_id, sum(total) FROM orders GROUP BY customer_id HAVING sum(total) > 100 ORDER BY sum(total) DESC LIMIT 5",
        None,
        &[],
    ),
    (
        "SELECT p.category, count(DISTINCT o.customer_id) FROM orders o JOIN products p ON p.id = o.product_id GROUP BY p.category",
        None,
        &[],
    ),
    (
        "SELECT status, count(*) FROM orders GROUP BY ROLLUP (status)",
        Some(
            r#"SELECT status, pg_catalog.count(*) FROM "public"."orders" GROUP BY ROLLUP (status) LIMIT 101"#,
        ),
        &[],
    ),
    (
        "SELECT date_trunc('month', ordered_at) AS m, count(*) FROM orders GROUP BY 1 ORDER BY 1",
        Some(
            r#"SELECT pg_catalog.date_trunc('month', ordered_at) AS m, pg_catalog.count(*) FROM "public"."orders" GROUP BY 1 ORDER BY 1 LIMIT 101"#,
        ),
        &[],
    ),
    (
        "SELECT id, total, row_number() OVER (PARTITION BY customer_id ORDER BY ordered_at) AS rn FROM orders",
        Some(
            r#"SELECT id, total, pg_catalog.row_number() OVER (PARTITION BY customer_id ORDER BY ordered_at) AS rn FROM "public"."orders" LIMIT 101"#,
        ),
        &[],
    ),
    (
        "SELECT id, sum(total) OVER (ORDER BY ordered_at ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) FROM orders",
        None,
        &[],
    ),
    (
        "SELECT id, lag(total) OVER (PARTITION BY customer_id ORDER BY ordered_at), rank() OVER (ORDER BY total DESC) FROM orders",
        None,
        &[],
    ),
    (
        "SELECT string_agg(name, ', ' ORDER BY name) FROM products",
        Some(
            r#"SELECT pg_catalog.string_agg(name, ', ' ORDER BY name) FROM "public"."products" LIMIT 101"#,
        ),
        &[],
    ),
    (
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY total) FROM orders",
        None,
        &[],
    ),
    (
        "SELECT count(*) FILTER (WHERE status = 'paid') FROM orders",
        Some(
            r#"SELECT pg_catalog.count(*) FILTER (WHERE status = 'paid') FROM "public"."orders" LIMIT 101"#,
        ),
        &[],
    ),
    (
        "SELECT array_agg(DISTINCT country) FROM customers",
        None,
        &[],
    ),
    ("SELECT pg_catalog.count(*) FROM orders", None, &[]),
    // --- expressions ---
    (
        "SELECT id, CASE WHEN total > 100 THEN 'big' WHEN total > 10 THEN 'mid' ELSE 'small' END AS size FROM orders",
        Some(
            r#"SELECT id, CASE WHEN total > 100 THEN 'big' WHEN total > 10 THEN 'mid' ELSE 'small' END AS size FROM "public"."orders" LIMIT 101"#,
        ),
        &[],
    ),
    (
        "SELECT CASE status WHEN 'paid' THEN 1 ELSE 0 END FROM orders",
        None,
        &[],
    ),
    (
        "SELECT ordered_at::date AS day, CAST(total AS numeric) FROM orders",
        Some(
            r#"SELECT ordered_at::DATE AS day, CAST(total AS NUMERIC) FROM "public"."orders" LIMIT 101"#,
        ),
        &[],
    ),
    (
        "SELECT ordered_at::timestamptz, total::float8, quantity::bigint, status::varchar(10), CAST(tags AS text[]) FROM orders, products",
        None,
        &[],
    ),
    (
        "SELECT round(avg(total)::numeric, 2) FROM orders",
        Some(
            r#"SELECT pg_catalog.round(pg_catalog.avg(total)::NUMERIC, 2) FROM "public"."orders" LIMIT 101"#,
        ),
        &[],
    ),
    (
        "SELECT attributes->>'color' AS color, attributes->'dims'->>'w', attributes #>> '{a,b}' FROM products WHERE attributes ? 'color'",
        Some(
            r#"SELECT attributes ->> 'color' AS color, attributes -> 'dims' ->> 'w', attributes #>> '{a,b}' FROM "public"."products" WHERE attributes ? 'color' LIMIT 101"#,
        ),
        &[],
    ),
    (
        r#"SELECT id FROM products WHERE attributes @> '{"color": "red"}'"#,
        Some(
            r#"SELECT id FROM "public"."products" WHERE attributes @> '{"color": "red"}' LIMIT 101"#,
        ),
        &[],
    ),
    (
        "SELECT tags[1], tags[1:2] FROM products",
        Some(r#"SELECT tags[1], tags[1:2] FROM "public"."products" LIMIT 101"#),
        &[],
    ),
    (
        "SELECT id FROM products WHERE 'sale' = ANY (tags) AND tags && ARRAY['a']::text[]",
        None,
        &[],
    ),
    (
        "SELECT COALESCE(status, 'none'), NULLIF(quantity, 0), GREATEST(total, 0), LEAST(total, 100) FROM orders",
        Some(
            r#"SELECT COALESCE(status, 'none'), NULLIF(quantity, 0), GREATEST(total, 0), LEAST(total, 100) FROM "public"."orders" LIMIT 101"#,
        ),
        &[],
    ),
    (
        "SELECT EXTRACT(YEAR FROM ordered_at) FROM orders",
        Some(r#"SELECT EXTRACT(YEAR FROM ordered_at) FROM "public"."orders" LIMIT 101"#),
        &[],
    ),
    (
        "SELECT date_part('dow', ordered_at), age(ordered_at), to_char(ordered_at, 'YYYY-MM') FROM orders",
        None,
        &[],
    ),
    (
        "SELECT id FROM orders WHERE status IN ('paid', 'shipped') AND total BETWEEN 10 AND 100",
        Some(
            r#"SELECT id FROM "public"."orders" WHERE status IN ('paid', 'shipped') AND total BETWEEN 10 AND 100 LIMIT 101"#,
        ),
        &[],
    ),
    (
        "SELECT id FROM customers WHERE full_name LIKE 'A%' OR full_name ILIKE '%smith%'",
        Some(
            r#"SELECT id FROM "public"."customers" WHERE full_name LIKE 'A%' OR full_name ILIKE '%smith%' LIMIT 101"#,
        ),
        &[],
    ),
    (
        "SELECT id FROM customers WHERE id NOT IN (1, 2, 3) AND full_name NOT LIKE '%x%' AND country NOT ILIKE 'de'",
        None,
        &[],
    ),
    (
        "SELECT id FROM orders WHERE ordered_at > now() - interval '30 days'",
        Some(
            r#"SELECT id FROM "public"."orders" WHERE ordered_at > pg_catalog.now() - INTERVAL '30 days' LIMIT 101"#,
        ),
        &[],
    ),
    (
        "SELECT id FROM customers WHERE created_at >= DATE '2024-01-01' AND created_at > CURRENT_DATE - 7",
        None,
        &[],
    ),
    (
        "SELECT lower(full_name), upper(country), length(full_name), id::text || ':' || full_name FROM customers",
        None,
        &[],
    ),
    (
        "SELECT substring(full_name from 1 for 3), trim(both ' ' from full_name), position('a' in full_name) FROM customers",
        None,
        &[],
    ),
    (
        "SELECT json_build_object('id', id, 'n', full_name) FROM customers",
        None,
        &[],
    ),
    (
        "SELECT id FROM orders WHERE status IS DISTINCT FROM 'x' AND total IS NOT NULL",
        None,
        &[],
    ),
    (
        "SELECT id FROM customers WHERE full_name ~ '^A' AND country = ANY (ARRAY['DE', 'FR'])",
        None,
        &[],
    ),
    (
        "SELECT sku, price * 1.19 AS gross FROM products WHERE category SIMILAR TO '(a|b)%'",
        None,
        &[],
    ),
    (
        "SELECT id FROM customers ORDER BY full_name COLLATE \"C\"",
        None,
        &[],
    ),
    (
        "SELECT id FROM orders ORDER BY total DESC NULLS LAST",
        Some(r#"SELECT id FROM "public"."orders" ORDER BY total DESC NULLS LAST LIMIT 101"#),
        &[],
    ),
    // --- DISTINCT ---
    (
        "SELECT DISTINCT country FROM customers",
        Some(r#"SELECT DISTINCT country FROM "public"."customers" LIMIT 101"#),
        &[],
    ),
    (
        "SELECT DISTINCT ON (customer_id) customer_id, total FROM orders ORDER BY customer_id, ordered_at DESC",
        Some(
            r#"SELECT DISTINCT ON (customer_id) customer_id, total FROM "public"."orders" ORDER BY customer_id, ordered_at DESC LIMIT 101"#,
        ),
        &[],
    ),
    (
        "SELECT DISTINCT ON (c.country) c.country, c.full_name FROM customers c ORDER BY c.country, c.lifetime_value DESC",
        None,
        &[],
    ),
];

#[test]
fn allowed_corpus() {
    let mut problems = Vec::new();
    for (sql, canonical, redactions) in ALLOWED {
        problems.extend(verify_allowed(sql, *canonical, redactions, None));
    }
    assert_no_problems("allowed", problems);
    assert!(ALLOWED.len() >= 60, "{} allowed cases", ALLOWED.len());
}

#[test]
fn allowed_limits_are_forced_clamped_or_kept() {
    let cases: &[(&str, u64)] = &[
        ("SELECT id FROM orders", 101),
        ("SELECT id FROM orders LIMIT 1000", 101),
        ("SELECT id FROM orders LIMIT 7", 7),
        ("SELECT id FROM orders LIMIT 101", 101),
        ("SELECT id FROM orders LIMIT 102", 101),
        ("SELECT id FROM orders LIMIT ALL", 101),
        ("SELECT id FROM orders OFFSET 3", 101),
        ("SELECT id FROM customers UNION SELECT id FROM orders", 101),
        (
            "SELECT id FROM customers UNION SELECT id FROM orders LIMIT 5",
            5,
        ),
        // Inner limits stay as written; the outermost query gets the cap.
        ("SELECT x.id FROM (SELECT id FROM orders LIMIT 5000) x", 101),
    ];
    let mut problems = Vec::new();
    for (sql, limit) in cases {
        problems.extend(verify_allowed(sql, None, &[], Some(*limit)));
    }
    assert_no_problems("limit", problems);
    let inner = run("SELECT x.id FROM (SELECT id FROM orders LIMIT 5000) x").expect("accepted");
    assert_eq!(
        inner.sql,
        r#"SELECT x.id FROM (SELECT id FROM "public"."orders" LIMIT 5000) x LIMIT 101"#
    );
}

#[test]
fn allowed_reports_tables_read() {
    let c = run("SELECT o.id FROM orders o WHERE o.customer_id IN (SELECT id FROM customers)")
        .expect("accepted");
    let names: Vec<String> = c.tables.iter().map(|t| t.to_string()).collect();
    assert_eq!(names, vec!["public.customers", "public.orders"]);
    // A CTE that shadows a table is not the table.
    let c = run("WITH customers AS (SELECT id FROM orders) SELECT id FROM customers")
        .expect("accepted");
    let names: Vec<String> = c.tables.iter().map(|t| t.to_string()).collect();
    assert_eq!(names, vec!["public.orders"]);
}

#[test]
fn quoted_identifiers_are_case_sensitive() {
    // Unquoted names fold to lower case; quoted names are exact.
    assert!(run(r#"SELECT id FROM "customers""#).is_ok());
    assert!(run("SELECT id FROM CUSTOMERS").is_ok());
    assert!(run(r#"SELECT "id" FROM "public"."customers""#).is_ok());
    let refused: &[(&str, &[Code])] = &[
        (
            r#"SELECT id FROM "Customers""#,
            &[Code::TableNotAllowed, Code::ColumnNotAllowed],
        ),
        (
            r#"SELECT "Customers".id FROM customers"#,
            &[Code::ColumnNotAllowed],
        ),
        (r#"SELECT "ID" FROM customers"#, &[Code::ColumnNotAllowed]),
        (
            r#"SELECT id FROM "PUBLIC".customers"#,
            &[Code::TableNotAllowed, Code::ColumnNotAllowed],
        ),
        (
            r#"SELECT "Email" FROM customers"#,
            &[Code::ColumnNotAllowed],
        ),
    ];
    let problems: Vec<String> = refused
        .iter()
        .filter_map(|(sql, want)| verify_refused(sql, want))
        .collect();
    assert_no_problems("quoting", problems);
}

// ---------------------------------------------------------------------------------------------
// Refused corpus
// ---------------------------------------------------------------------------------------------

use Code::{
    AmbiguousColumn as Amb, ColumnNotAllowed as Col, DataModifying as Dml, EmptyStatement as Empty,
    FunctionNotAllowed as Fun, IdentifierTooLong as Long, LockingClause as Lock,
    MultipleStatements as Multi, NaturalJoin as Natural, NonConstantLimit as Lim,
    NotSelect as NotSel, OperatorNotAllowed as Op, ParseError as Parse,
    PlaceholderNotAllowed as Ph, RedactedColumnUse as Red, SelectInto as Into,
    TableFunctionNotAllowed as TabFn, TableNotAllowed as Tab, ThreePartName as Three,
    TypeNotAllowed as Type, UnsupportedSyntax as Unsup, WholeRowReference as Whole,
};

/// (sql, exact set of codes)
const REFUSED: &[(&str, &[Code])] = &[
    // --- statements other than a query ---
    ("INSERT INTO orders (id) VALUES (1)", &[Dml]),
    ("UPDATE orders SET total = 0", &[Dml]),
    ("DELETE FROM orders", &[Dml]),
    (
        "MERGE INTO orders o USING products p ON o.product_id = p.id WHEN MATCHED THEN DELETE",
        &[Dml],
    ),
    ("DROP TABLE customers", &[NotSel]),
    ("CREATE TABLE x (id int)", &[NotSel]),
    ("CREATE TABLE x AS SELECT id FROM customers", &[NotSel]),
    ("ALTER TABLE customers ADD COLUMN x int", &[NotSel]),
    ("GRANT SELECT ON customers TO public", &[NotSel]),
    ("COPY customers TO '/tmp/x'", &[NotSel]),
    ("COPY (SELECT 1) TO PROGRAM 'id'", &[NotSel]),
    ("SET search_path = pg_catalog", &[NotSel]),
    ("SET ROLE postgres", &[NotSel]),
    ("RESET ALL", &[NotSel]),
    ("DO $$ BEGIN PERFORM 1; END $$", &[Parse]),
    ("CALL my_proc()", &[NotSel]),
    ("VACUUM customers", &[NotSel]),
    ("EXPLAIN ANALYZE SELECT id FROM customers", &[NotSel]),
    ("EXPLAIN SELECT id FROM customers", &[NotSel]),
    ("LISTEN ch", &[NotSel]),
    ("NOTIFY ch, 'x'", &[NotSel]),
    ("PREPARE p AS SELECT 1", &[NotSel]),
    ("EXECUTE p", &[NotSel]),
    ("DEALLOCATE p", &[NotSel]),
    ("BEGIN", &[NotSel]),
    ("START TRANSACTION READ WRITE", &[NotSel]),
    ("COMMIT", &[NotSel]),
    ("ROLLBACK", &[NotSel]),
    ("LOCK TABLE customers", &[NotSel]),
    ("TRUNCATE orders", &[NotSel]),
    ("SHOW search_path", &[NotSel]),
    ("DISCARD ALL", &[NotSel]),
    // --- several statements ---
    ("SELECT 1; SELECT 2", &[Multi]),
    ("SELECT 1; DROP TABLE x", &[Multi]),
    ("SELECT id FROM customers; DELETE FROM orders", &[Multi]),
    // --- SELECT INTO, locking, data-modifying CTE ---
    ("SELECT id INTO t FROM customers", &[Into]),
    ("SELECT id FROM customers FOR UPDATE", &[Lock]),
    ("SELECT id FROM customers FOR SHARE", &[Lock]),
    ("SELECT id FROM customers FOR UPDATE SKIP LOCKED", &[Lock]),
    (
        "SELECT c.id FROM customers c JOIN orders o ON o.customer_id = c.id FOR SHARE OF c NOWAIT",
        &[Lock],
    ),
    (
        "WITH x AS (DELETE FROM orders RETURNING *) SELECT * FROM x",
        &[Dml],
    ),
    (
        "WITH x AS (UPDATE orders SET total = 0 RETURNING id) SELECT count(*) FROM x",
        &[Dml],
    ),
    (
        "WITH x AS (INSERT INTO orders (id) VALUES (1) RETURNING id) SELECT count(*) FROM x",
        &[Dml],
    ),
    (
        "SELECT id FROM customers WHERE id IN (WITH d AS (DELETE FROM orders RETURNING id) SELECT 1)",
        &[Dml],
    ),
    // --- hidden tables anywhere in the tree ---
    ("SELECT id FROM internal.api_keys", &[Tab, Col]),
    ("SELECT k.id FROM internal.api_keys k", &[Tab, Col]),
    (
        "SELECT c.id FROM customers c JOIN internal.api_keys k ON k.id = c.id",
        &[Tab, Col],
    ),
    (
        "SELECT id FROM customers WHERE id IN (SELECT k.id FROM internal.api_keys k)",
        &[Tab, Col],
    ),
    (
        "SELECT (SELECT count(*) FROM internal.api_keys) FROM customers",
        &[Tab],
    ),
    (
        "WITH k AS (SELECT count(*) FROM internal.api_keys) SELECT 1 FROM k",
        &[Tab],
    ),
    (
        "SELECT id FROM customers UNION SELECT id FROM internal.api_keys",
        &[Tab, Col],
    ),
    (
        "SELECT c.id FROM customers c CROSS JOIN LATERAL (SELECT count(*) AS n FROM internal.api_keys) k",
        &[Tab],
    ),
    (
        "SELECT id FROM customers WHERE EXISTS (SELECT 1 FROM internal.api_keys)",
        &[Tab],
    ),
    (
        "SELECT x.n FROM (SELECT count(*) AS n FROM internal.api_keys) x",
        &[Tab],
    ),
    ("SELECT rolpassword FROM pg_catalog.pg_authid", &[Tab, Col]),
    ("SELECT count(*) FROM pg_authid", &[Tab]),
    ("SELECT passwd FROM pg_shadow", &[Tab, Col]),
    (
        "SELECT table_name FROM information_schema.tables",
        &[Tab, Col],
    ),
    ("SELECT relname FROM pg_class", &[Tab, Col]),
    ("SELECT count(*) FROM pg_catalog.pg_class", &[Tab]),
    ("SELECT count(*) FROM users", &[Tab]),
    ("SELECT count(*) FROM public.users", &[Tab]),
    ("SELECT count(*) FROM db.public.customers", &[Three]),
    ("SELECT count(*) FROM a.b.c.d", &[Three]),
    ("SELECT db.public.customers.id FROM customers", &[Three]),
    (
        "SELECT count(*) FROM customers c JOIN db.public.orders o ON true",
        &[Three],
    ),
    // --- hidden columns ---
    ("SELECT ssn FROM customers", &[Col]),
    ("SELECT c.ssn FROM customers c", &[Col]),
    ("SELECT id FROM customers WHERE ssn = '123-45-6789'", &[Col]),
    ("SELECT id FROM customers ORDER BY ssn", &[Col]),
    (
        "SELECT o.id FROM orders o JOIN customers c ON c.ssn = o.status",
        &[Col],
    ),
    ("SELECT length(ssn) FROM customers", &[Col]),
    (
        "SELECT id FROM orders WHERE customer_id IN (SELECT id FROM customers WHERE ssn LIKE '1%')",
        &[Col],
    ),
    ("SELECT count(*) FROM customers GROUP BY ssn", &[Col]),
    // The correlated-subquery trick: PostgreSQL binds `ssn` to customers (innermost).
    (
        "SELECT (SELECT ssn FROM customers LIMIT 1) FROM orders",
        &[Col],
    ),
    // The inner-binding trick: `status` is allowed on orders (outer) but not listed on
    // customers (inner), where a hidden column of that name would win.
    (
        "SELECT (SELECT status FROM customers LIMIT 1) FROM orders",
        &[Col],
    ),
    (
        "SELECT o.id FROM orders o WHERE EXISTS (SELECT 1 FROM customers c WHERE status = 'x')",
        &[Col],
    ),
    (
        "SELECT x.ssn FROM (SELECT '1' AS ssn) x WHERE EXISTS (SELECT 1 FROM customers WHERE ssn = x.ssn)",
        &[Col],
    ),
    ("SELECT id FROM orders o, customers c", &[Amb]),
    // --- whole-row references ---
    ("SELECT c FROM customers c", &[Whole]),
    ("SELECT customers FROM customers", &[Whole]),
    ("SELECT row_to_json(c) FROM customers c", &[Fun, Whole]),
    ("SELECT to_json(c) FROM customers c", &[Whole]),
    ("SELECT to_json(c.*) FROM customers c", &[Whole]),
    ("SELECT count(c.*) FROM customers c", &[Whole]),
    ("SELECT json_agg(c) FROM customers c", &[Whole]),
    (
        "SELECT c.id FROM customers c WHERE c.* IS NOT NULL",
        &[Whole],
    ),
    ("SELECT (c).id FROM customers c", &[Whole, Unsup]),
    ("SELECT s FROM (SELECT id FROM orders) s", &[Whole]),
    // --- functions ---
    ("SELECT pg_sleep(10)", &[Fun]),
    ("SELECT pg_catalog.pg_sleep(10)", &[Fun]),
    ("SELECT pg_read_file('/etc/passwd')", &[Fun]),
    (
        "SELECT set_config('search_path', 'pg_catalog', true)",
        &[Fun],
    ),
    ("SELECT current_setting('data_directory')", &[Fun]),
    ("SELECT lo_import('/etc/passwd')", &[Fun]),
    ("SELECT dblink('host=x', 'SELECT 1')", &[Fun]),
    ("SELECT nextval('orders_id_seq')", &[Fun]),
    (
        "SELECT query_to_xml('SELECT * FROM internal.api_keys', true, true, '')",
        &[Fun],
    ),
    ("SELECT pg_advisory_lock(1)", &[Fun]),
    ("SELECT version()", &[Fun]),
    ("SELECT current_user", &[Fun]),
    (
        "SELECT id FROM customers WHERE id = pg_backend_pid()",
        &[Fun],
    ),
    ("SELECT public.lower(full_name) FROM customers", &[Fun]),
    ("SELECT repeat('x', 1000000)", &[Fun]),
    // --- functions in FROM ---
    ("SELECT x FROM generate_series(1, 10) AS x", &[TabFn, Col]),
    ("SELECT count(*) FROM generate_series(1, 10)", &[TabFn]),
    ("SELECT count(*) FROM unnest(ARRAY[1, 2])", &[TabFn]),
    (
        "SELECT count(*) FROM customers c, LATERAL unnest(ARRAY[1]) u",
        &[TabFn],
    ),
    ("SELECT count(*) FROM pg_ls_dir('/')", &[TabFn]),
    // --- redacted columns used other than bare in the outermost select list ---
    ("SELECT id FROM customers WHERE email = 'a@b.c'", &[Red]),
    ("SELECT id FROM customers WHERE email LIKE 'a%'", &[Red]),
    ("SELECT id FROM customers WHERE email IS NULL", &[Red]),
    ("SELECT id FROM customers WHERE phone > '5'", &[Red]),
    (
        "SELECT o.id FROM orders o JOIN customers c ON c.email = o.status",
        &[Red],
    ),
    (
        "SELECT email, count(*) FROM customers GROUP BY email",
        &[Red],
    ),
    ("SELECT count(*) FROM customers GROUP BY email", &[Red]),
    ("SELECT email, count(*) FROM customers GROUP BY 1", &[Red]),
    ("SELECT email FROM customers ORDER BY email", &[Red]),
    ("SELECT email FROM customers ORDER BY 1", &[Red]),
    ("SELECT email FROM customers ORDER BY (1)", &[Red]),
    ("SELECT id, email AS e FROM customers ORDER BY e", &[Red]),
    ("SELECT id FROM customers ORDER BY email", &[Red]),
    ("SELECT id FROM customers c ORDER BY c.email DESC", &[Red]),
    ("SELECT * FROM customers ORDER BY email", &[Red]),
    ("SELECT * FROM customers ORDER BY 3", &[Red]),
    (
        "SELECT email FROM customers ORDER BY email COLLATE \"C\"",
        &[Red],
    ),
    ("SELECT lower(email) FROM customers", &[Red]),
    ("SELECT length(email) FROM customers", &[Red]),
    ("SELECT md5(phone) FROM customers", &[Red]),
    ("SELECT email::text FROM customers", &[Red]),
    ("SELECT (email) FROM customers", &[Red]),
    (
        "SELECT CASE WHEN email LIKE '%@gmail.com' THEN 1 ELSE 0 END FROM customers",
        &[Red],
    ),
    ("SELECT email = 'a@b.c' FROM customers", &[Red]),
    ("SELECT email || '' FROM customers", &[Red]),
    ("SELECT (id, email) FROM customers", &[Red]),
    ("SELECT max(email) FROM customers", &[Red]),
    ("SELECT count(DISTINCT email) FROM customers", &[Red]),
    (
        "SELECT string_agg(full_name, ',' ORDER BY email) FROM customers",
        &[Red],
    ),
    (
        "SELECT count(*) FILTER (WHERE email LIKE 'a%') FROM customers",
        &[Red],
    ),
    (
        "SELECT id, row_number() OVER (ORDER BY email) FROM customers",
        &[Red],
    ),
    (
        "SELECT id, count(*) OVER (PARTITION BY phone) FROM customers",
        &[Red],
    ),
    ("SELECT DISTINCT email FROM customers", &[Red]),
    ("SELECT DISTINCT * FROM customers", &[Red]),
    ("SELECT DISTINCT ON (email) id FROM customers", &[Red]),
    (
        "SELECT country FROM customers GROUP BY country HAVING max(email) > 'm'",
        &[Red],
    ),
    (
        "WITH x AS (SELECT email FROM customers) SELECT email FROM x",
        &[Red],
    ),
    (
        "WITH x AS (SELECT * FROM customers) SELECT id FROM x",
        &[Red],
    ),
    ("SELECT e FROM (SELECT email AS e FROM customers) s", &[Red]),
    (
        "SELECT (SELECT c2.email FROM customers c2 WHERE c2.id = c.id) FROM customers c",
        &[Red],
    ),
    (
        "SELECT id FROM customers WHERE id IN (SELECT id FROM customers WHERE email LIKE 'a%')",
        &[Red],
    ),
    (
        "SELECT email FROM customers UNION SELECT status FROM orders",
        &[Red],
    ),
    (
        "SELECT status FROM orders UNION ALL SELECT email FROM customers",
        &[Red],
    ),
    ("(SELECT email FROM customers)", &[Red]),
    (
        "SELECT c.id FROM customers c JOIN customers d USING (email)",
        &[Red],
    ),
    (
        "SELECT c.id FROM customers c CROSS JOIN LATERAL (SELECT c.email AS e) l",
        &[Red],
    ),
    // --- LIMIT / OFFSET ---
    ("SELECT id FROM customers LIMIT (SELECT 1)", &[Lim]),
    ("SELECT id FROM customers LIMIT 1+1", &[Lim]),
    ("SELECT id FROM customers LIMIT -1", &[Lim]),
    ("SELECT id FROM customers LIMIT 5 OFFSET id", &[Lim]),
    (
        "SELECT id FROM customers OFFSET (SELECT count(*) FROM orders)",
        &[Lim],
    ),
    ("SELECT id FROM customers LIMIT $1", &[Lim]),
    // --- joins, types, operators, placeholders ---
    (
        "SELECT o.id FROM orders o NATURAL JOIN customers c",
        &[Natural],
    ),
    (
        "SELECT o.id FROM orders o NATURAL LEFT JOIN products p",
        &[Natural],
    ),
    ("SELECT 'pg_authid'::regclass", &[Type]),
    ("SELECT CAST('pg_sleep' AS regproc)", &[Type]),
    ("SELECT 'x'::pg_catalog.regclass", &[Type]),
    ("SELECT id::oid FROM customers", &[Type]),
    (
        "SELECT id FROM customers WHERE full_name::my_type IS NULL",
        &[Type],
    ),
    (
        "SELECT o.id FROM orders o WHERE o.total OPERATOR(pg_catalog.>) 1",
        &[Op],
    ),
    ("SELECT id FROM customers WHERE id = $1", &[Ph]),
    ("SELECT $1", &[Ph]),
    // --- identifiers longer than 63 bytes ---
    (
        "SELECT id AS aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa FROM customers",
        &[Long],
    ),
    (
        "SELECT id FROM customers aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        &[Long],
    ),
    (
        "SELECT customersxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx FROM customers",
        &[Long],
    ),
    // --- unsupported shapes ---
    ("SELECT id FROM customers FETCH FIRST 5 ROWS ONLY", &[Unsup]),
    (
        "SELECT id, count(*) OVER w FROM customers WINDOW w AS (ORDER BY id)",
        &[Unsup],
    ),
    ("SELECT id FROM ONLY customers", &[Unsup]),
    ("SELECT id FROM customers AS c(a, b)", &[Unsup]),
    ("SELECT id FROM customers TABLESAMPLE SYSTEM (10)", &[Unsup]),
    ("WITH RECURSIVE r AS (SELECT 1) SELECT 1 FROM r", &[Unsup]),
    ("SELECT id FROM customers ORDER BY 5", &[Unsup]),
    (
        "SELECT id FROM customers UNION SELECT id FROM orders ORDER BY id + 1",
        &[Unsup],
    ),
    ("SELECT * FROM (SELECT id FROM orders)", &[Unsup]),
    ("SELECT *", &[Unsup]),
    // --- empty and malformed ---
    ("", &[Empty]),
    ("   \n\t  ", &[Empty]),
    ("-- just a comment", &[Empty]),
    ("/* block comment */", &[Empty]),
    (";", &[Empty]),
    ("SELEC id FROM customers", &[Parse]),
    ("SELECT id FROM customers WHERE", &[Parse]),
    ("SELECT `id` FROM customers", &[Parse]),
    ("TABLE customers", &[Parse]),
    ("SELECT 1\0", &[Parse]),
];

#[test]
fn refused_corpus() {
    let problems: Vec<String> = REFUSED
        .iter()
        .filter_map(|(sql, want)| verify_refused(sql, want))
        .collect();
    assert_no_problems("refused", problems);
    assert!(REFUSED.len() >= 100, "{} refused cases", REFUSED.len());
}

#[test]
fn refused_corpus_covers_every_code() {
    let mut seen: BTreeSet<Code> = REFUSED
        .iter()
        .flat_map(|(_, codes)| codes.iter().copied())
        .collect();
    // Covered by dedicated tests below.
    seen.insert(Code::SqlTooLong);
    let missing: Vec<Code> = all_codes()
        .into_iter()
        .filter(|c| !seen.contains(c))
        .collect();
    assert!(
        missing.is_empty(),
        "codes without a refused case: {missing:?}"
    );
}

#[test]
fn sql_longer_than_the_limit_is_refused_before_parsing() {
    let policy = demo_policy();
    let long = format!(
        "SELECT id FROM customers WHERE full_name = '{}'",
        "x".repeat(10_000)
    );
    let err = check(&policy, &long, ParamMode::None).expect_err("refused");
    assert_eq!(codes_of(&err), BTreeSet::from([Code::SqlTooLong]));
    // Exactly at the limit is fine as far as length goes.
    let pad = 10_000 - "SELECT 1 -- ".len();
    let at_limit = format!("SELECT 1 -- {}", "x".repeat(pad));
    assert_eq!(at_limit.len(), 10_000);
    assert!(check(&policy, &at_limit, ParamMode::None).is_ok());
    let over = format!("{at_limit}x");
    let err = check(&policy, &over, ParamMode::None).expect_err("refused");
    assert_eq!(codes_of(&err), BTreeSet::from([Code::SqlTooLong]));
}

#[test]
fn tool_mode_accepts_declared_placeholders_only() {
    let policy = demo_policy();
    let mode = ParamMode::Tool { count: 2 };
    let c = check(
        &policy,
        "SELECT id, email FROM customers WHERE id = $1 OR country = $2",
        mode,
    )
    .expect("declared placeholders are accepted");
    assert_eq!(c.placeholders, 2);
    assert_eq!(
        c.sql,
        r#"SELECT id, email FROM "public"."customers" WHERE id = $1 OR country = $2 LIMIT 101"#
    );
    assert_eq!(
        redactions_of(&c),
        vec![(1, "email".to_string(), Strategy::Mask)]
    );
    let c = check(&policy, "SELECT id FROM customers WHERE id = $1", mode).expect("accepted");
    assert_eq!(c.placeholders, 1);
    for sql in [
        "SELECT id FROM customers WHERE id = $3",
        "SELECT id FROM customers WHERE id = $0",
        "SELECT id FROM customers WHERE id = $1 OR id = $3",
    ] {
        let err = check(&policy, sql, mode).expect_err(sql);
        assert_eq!(
            codes_of(&err),
            BTreeSet::from([Code::PlaceholderNotAllowed]),
            "{sql}: {}",
            show(&err)
        );
    }
    // `?` is not PostgreSQL.
    let err = check(&policy, "SELECT id FROM customers WHERE id = ?", mode).expect_err("refused");
    assert_eq!(codes_of(&err), BTreeSet::from([Code::ParseError]));
    // Model SQL never takes placeholders.
    let err = check(
        &policy,
        "SELECT id FROM customers WHERE id = $1",
        ParamMode::None,
    )
    .expect_err("refused");
    assert_eq!(
        codes_of(&err),
        BTreeSet::from([Code::PlaceholderNotAllowed])
    );
}

/// No message may leak an internal detail.
fn assert_clean_messages(sql: &str, violations: &[Violation]) {
    for v in violations {
        let m = &v.message;
        for needle in [
            "panicked",
            "src/",
            ".rs:",
            "/root",
            "/home",
            "RUST_BACKTRACE",
        ] {
            assert!(
                !m.contains(needle),
                "{sql:?}: message leaks {needle:?}: {m}"
            );
        }
    }
}

#[test]
fn hostile_inputs_are_refused_cleanly() {
    let huge = "A".repeat(100_000);
    let inputs: Vec<String> = vec![
        "'; DROP TABLE users; --".into(),
        "SELECT * FROM users UNION SELECT * FROM passwords".into(),
        "../../../etc/passwd".into(),
        "{{7*7}}".into(),
        "<script>alert('xss')</script>".into(),
        huge,
        "\x00\x01\x02".into(),
        r#"{"__proto__": {"admin": true}}"#.into(),
        "\u{feff}SELECT 1; SELECT 2".into(),
        "SELECT '\u{0}'".into(),
        "%00".into(),
        "${jndi:ldap://x/a}".into(),
    ];
    let policy = demo_policy();
    for sql in &inputs {
        let result = std::panic::catch_unwind(|| check(&policy, sql, ParamMode::None));
        let Ok(result) = result else {
            panic!("check panicked on {sql:?}");
        };
        match result {
            Ok(c) => panic!("hostile input accepted: {sql:?} -> {}", c.sql),
            Err(v) => {
                assert!(!v.is_empty(), "{sql:?}: refused without a reason");
                assert_clean_messages(sql, &v);
            }
        }
    }
    // The specific codes for the recognisable ones.
    let specific: &[(&str, &[Code])] = &[
        ("'; DROP TABLE users; --", &[Parse]),
        ("\x00\x01\x02", &[Parse]),
        ("../../../etc/passwd", &[Parse]),
        ("{{7*7}}", &[Parse]),
    ];
    let problems: Vec<String> = specific
        .iter()
        .filter_map(|(sql, want)| verify_refused(sql, want))
        .collect();
    assert_no_problems("hostile", problems);
    let err = check(
        &policy,
        "SELECT * FROM users UNION SELECT * FROM passwords",
        ParamMode::None,
    )
    .expect_err("refused");
    assert!(
        codes_of(&err).contains(&Code::TableNotAllowed),
        "{}",
        show(&err)
    );
    let err = check(&policy, &"A".repeat(100_000), ParamMode::None).expect_err("refused");
    assert_eq!(codes_of(&err), BTreeSet::from([Code::SqlTooLong]));
}

#[test]
fn deep_nesting_is_refused_without_overflow() {
    let policy = demo_policy();
    // Run on a thread with the stack size of a tokio worker, where the server runs the check.
    let handle = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || {
            let mut out = Vec::new();
            for depth in [100usize, 1000, 4990] {
                let parens = format!("SELECT {}1{}", "(".repeat(depth), ")".repeat(depth));
                out.push((parens.clone(), check(&policy, &parens, ParamMode::None)));
                let subqueries = format!(
                    "SELECT {}1{}",
                    "(SELECT ".repeat(depth.min(1200)),
                    ")".repeat(depth.min(1200))
                );
                out.push((
                    subqueries.clone(),
                    check(&policy, &subqueries, ParamMode::None),
                ));
                let nots = format!("SELECT {}true", "NOT ".repeat(depth.min(2400)));
                out.push((nots.clone(), check(&policy, &nots, ParamMode::None)));
            }
            out.into_iter()
                .map(|(sql, r)| (sql.len(), r.map(|c| c.sql).map_err(|v| codes_of(&v))))
                .collect::<Vec<_>>()
        })
        .expect("spawn");
    let results = handle.join().expect("no panic, no overflow");
    for (len, result) in results {
        match result {
            Err(codes) => assert!(
                codes == BTreeSet::from([Code::ParseError])
                    || codes == BTreeSet::from([Code::SqlTooLong]),
                "input of {len} bytes: {codes:?}"
            ),
            Ok(sql) => panic!("deeply nested input of {len} bytes accepted: {sql:.80}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------------

mod properties {
    use super::{ParamMode, assert_clean_messages, check, demo_policy, show};
    use proptest::prelude::*;
    use proptest::test_runner::Config;

    const TOKENS: &[&str] = &[
        "SELECT",
        "FROM",
        "WHERE",
        "JOIN",
        "LEFT",
        "RIGHT",
        "FULL",
        "CROSS",
        "NATURAL",
        "ON",
        "USING",
        "LATERAL",
        "WITH",
        "RECURSIVE",
        "AS",
        "UNION",
        "ALL",
        "INTERSECT",
        "EXCEPT",
        "GROUP",
        "BY",
        "HAVING",
        "ORDER",
        "LIMIT",
        "OFFSET",
        "DISTINCT",
        "CASE",
        "WHEN",
        "THEN",
        "ELSE",
        "END",
        "AND",
        "OR",
        "NOT",
        "IN",
        "EXISTS",
        "BETWEEN",
        "LIKE",
        "ILIKE",
        "IS",
        "NULL",
        "TRUE",
        "FALSE",
        "CAST",
        "INTO",
        "FOR",
        "UPDATE",
        "SHARE",
        "INSERT",
        "DELETE",
        "VALUES",
        "OVER",
        "PARTITION",
        "ROWS",
        "FILTER",
        "WITHIN",
        "ROLLUP",
        "CUBE",
        "ANY",
        "ARRAY",
        "INTERVAL",
        "ONLY",
        "TABLE",
        "ASC",
        "DESC",
        "NULLS",
        "FIRST",
        "FETCH",
        "customers",
        "orders",
        "products",
        "public",
        "internal",
        "api_keys",
        "pg_catalog",
        "pg_authid",
        "c",
        "o",
        "p",
        "x",
        "id",
        "full_name",
        "email",
        "phone",
        "country",
        "created_at",
        "lifetime_value",
        "ssn",
        "customer_id",
        "product_id",
        "quantity",
        "total",
        "status",
        "ordered_at",
        "sku",
        "name",
        "category",
        "price",
        "in_stock",
        "tags",
        "attributes",
        "count",
        "sum",
        "lower",
        "row_to_json",
        "pg_sleep",
        "generate_series",
        "now",
        "*",
        ",",
        ".",
        "(",
        ")",
        "(",
        ")",
        ";",
        "=",
        "<>",
        "<",
        ">",
        "+",
        "-",
        "/",
        "||",
        "::",
        "->",
        "->>",
        "#>",
        "@>",
        "?",
        "[",
        "]",
        ":",
        "$1",
        "0",
        "1",
        "2",
        "42",
        "0x1",
        "1.5",
        "'a'",
        "'%x%'",
        "E'\\n'",
        "$$x$$",
        "\"customers\"",
        "\"Email\"",
        "U&\"x\"",
        "-- c\n",
        "/* c */",
        "text",
        "regclass",
        "date",
        "int",
    ];

    fn token_soup() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(TOKENS), 0..40).prop_map(|t| t.join(" "))
    }

    /// A generated accepted query: SQL text only; the property re-derives everything else.
    fn query() -> impl Strategy<Value = String> {
        // Non-redacted columns per table alias.
        const C: &[&str] = &["id", "full_name", "country", "created_at", "lifetime_value"];
        const O: &[&str] = &[
            "id",
            "customer_id",
            "product_id",
            "quantity",
            "total",
            "status",
            "ordered_at",
        ];
        const P: &[&str] = &[
            "id",
            "sku",
            "name",
            "category",
            "price",
            "in_stock",
            "tags",
            "attributes",
        ];
        const OPS: &[&str] = &["=", "<>", "<", "<=", ">", ">=", "IS DISTINCT FROM"];
        const LITS: &[&str] = &["1", "42", "'x'", "'2024-01-01'", "NULL", "0.5", "true"];
        // (from clause, aliases in it)
        const FROMS: &[(&str, &[&str])] = &[
            ("customers c", &["c"]),
            ("orders o", &["o"]),
            ("products p", &["p"]),
            ("public.customers c", &["c"]),
            (
                "orders o JOIN customers c ON c.id = o.customer_id",
                &["o", "c"],
            ),
            (
                "orders o LEFT JOIN products p ON p.id = o.product_id",
                &["o", "p"],
            ),
            (
                "orders o RIGHT JOIN products p ON p.id = o.product_id",
                &["o", "p"],
            ),
            (
                "customers c FULL JOIN orders o ON o.customer_id = c.id",
                &["c", "o"],
            ),
            ("customers c CROSS JOIN products p", &["c", "p"]),
            ("customers c, orders o", &["c", "o"]),
            (
                "orders o JOIN customers c ON c.id = o.customer_id JOIN products p ON p.id = o.product_id",
                &["o", "c", "p"],
            ),
        ];
        fn cols(alias: &str) -> &'static [&'static str] {
            match alias {
                "c" => C,
                "o" => O,
                _ => P,
            }
        }
        (
            0..FROMS.len(),
            prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 1..5),
            prop::option::of(prop::collection::vec(
                (
                    any::<prop::sample::Index>(),
                    any::<prop::sample::Index>(),
                    prop::sample::select(OPS),
                    prop::sample::select(LITS),
                ),
                1..4,
            )),
            0u8..6,
            prop::option::of(0u64..500),
            any::<bool>(),
            any::<bool>(),
            0u8..6,
        )
            .prop_map(|(from_i, picks, wheres, shape, limit, desc, distinct, wrap)| {
                let (from, aliases) = FROMS[from_i];
                let pick = |a: &prop::sample::Index, c: &prop::sample::Index| {
                    let alias = aliases[a.index(aliases.len())];
                    let cs = cols(alias);
                    format!("{alias}.{}", cs[c.index(cs.len())])
                };
                let picked: Vec<String> = picks.iter().map(|(a, c)| pick(a, c)).collect();
                let mut conds: Vec<String> = wheres
                    .map(|ws| {
                        ws.iter()
                            .map(|(a, c, op, lit)| format!("{} {op} {lit}", pick(a, c)))
                            .collect()
                    })
                    .unwrap_or_default();
                if wrap == 4 {
                    conds.push(format!(
                        "EXISTS (SELECT 1 FROM orders o2 WHERE o2.id = {}.id AND o2.total > 10)",
                        aliases[0]
                    ));
                    conds.push(format!(
                        "{}.id IN (SELECT p2.id FROM products p2 WHERE p2.in_stock)",
                        aliases[aliases.len() - 1]
                    ));
                }
                let where_clause = if conds.is_empty() {
                    String::new()
                } else {
                    format!(" WHERE {}", conds.join(" AND "))
                };
                let limit_clause = limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default();
                let dir = if desc { " DESC" } else { "" };
                if matches!(wrap, 1..=3) {
                    // No redacted column may flow through a CTE, a derived table or a set
                    // operation, so these wrap plain picked columns under unique aliases.
                    let list: Vec<String> = picked
                        .iter()
                        .enumerate()
                        .map(|(i, c)| format!("{c} AS k{i}"))
                        .collect();
                    let inner = format!("SELECT {} FROM {from}{where_clause}", list.join(", "));
                    return match wrap {
                        1 => format!(
                            "WITH q AS ({inner}) SELECT * FROM q WHERE q.k0 IS NOT NULL ORDER BY 1{dir}{limit_clause}"
                        ),
                        2 => format!(
                            "SELECT d.k0, count(*) FROM ({inner}) AS d GROUP BY d.k0 ORDER BY 2{dir}{limit_clause}"
                        ),
                        _ => format!(
                            "SELECT {p0} FROM {from}{where_clause} UNION ALL SELECT {p0} FROM {from} ORDER BY 1{dir}{limit_clause}",
                            p0 = picked[0]
                        ),
                    };
                }
                let mut sql = String::from("SELECT ");
                let mut order: Option<String> = None;
                let mut group: Option<String> = None;
                match shape {
                    // star, or star of one alias
                    0 => sql.push('*'),
                    1 => sql.push_str(&format!("{}.*", aliases[0])),
                    // aggregates grouped by the first picked column
                    2 => {
                        let key = picked[0].clone();
                        sql.push_str(&format!(
                            "{key}, count(*), max({}) AS m",
                            picked.last().cloned().unwrap_or_default()
                        ));
                        group = Some(key);
                        order = Some("2".into());
                    }
                    // plain columns, perhaps DISTINCT, ordered by one of them
                    3 => {
                        if distinct {
                            sql.push_str("DISTINCT ");
                        }
                        sql.push_str(&picked.join(", "));
                        order = Some(picked[0].clone());
                    }
                    // columns plus a redacted one (bare, outermost) when customers is present
                    4 => {
                        sql.push_str(&picked.join(", "));
                        if aliases.contains(&"c") {
                            sql.push_str(", c.email, c.phone AS ph");
                        }
                        order = Some("1".into());
                    }
                    // expressions and a window function
                    _ => {
                        sql.push_str(&format!(
                            "{} AS a, COALESCE({}, NULL) AS b, row_number() OVER (ORDER BY {}) AS rn",
                            picked[0],
                            picked.last().cloned().unwrap_or_default(),
                            picked[0]
                        ));
                    }
                }
                sql.push_str(" FROM ");
                sql.push_str(from);
                sql.push_str(&where_clause);
                if let Some(g) = group {
                    sql.push_str(" GROUP BY ");
                    sql.push_str(&g);
                }
                if let Some(o) = order {
                    sql.push_str(" ORDER BY ");
                    sql.push_str(&o);
                    sql.push_str(dir);
                }
                sql.push_str(&limit_clause);
                sql
            })
    }

    proptest! {
        #![proptest_config(Config { cases: 256, failure_persistence: None, ..Config::default() })]

        #[test]
        fn never_panics_on_arbitrary_text(sql in "\\PC{0,200}") {
            let _ = check(&demo_policy(), &sql, ParamMode::None);
        }

        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let sql = String::from_utf8_lossy(&bytes);
            let _ = check(&demo_policy(), &sql, ParamMode::None);
        }

        #[test]
        fn never_panics_on_token_soup(sql in token_soup()) {
            if let Err(v) = check(&demo_policy(), &sql, ParamMode::None) {
                prop_assert!(!v.is_empty());
                assert_clean_messages(&sql, &v);
            }
        }

        #[test]
        fn token_soup_that_is_accepted_is_idempotent(sql in token_soup()) {
            if let Ok(first) = check(&demo_policy(), &sql, ParamMode::None) {
                let second = check(&demo_policy(), &first.sql, ParamMode::None);
                prop_assert!(second.is_ok(), "canonical refused: {} -> {:?}", first.sql, second);
                let second = second.unwrap_or_else(|_| unreachable!());
                prop_assert_eq!(&second.sql, &first.sql);
                prop_assert_eq!(&second.redactions, &first.redactions);
            }
        }

        #[test]
        fn generated_queries_are_accepted_and_idempotent(sql in query()) {
            let first = check(&demo_policy(), &sql, ParamMode::None);
            prop_assert!(first.is_ok(), "refused: {sql}\n{}", first.as_ref().err().map(|v| show(v)).unwrap_or_default());
            let first = first.unwrap_or_else(|_| unreachable!());
            prop_assert!(first.limit <= 101);
            prop_assert!(first.sql.ends_with(&format!("LIMIT {}", first.limit)), "{}", first.sql);
            prop_assert!(!first.sql.contains(" FROM customers"), "unqualified table: {}", first.sql);
            let second = check(&demo_policy(), &first.sql, ParamMode::None);
            prop_assert!(second.is_ok(), "canonical refused: {}\n{}", first.sql, second.as_ref().err().map(|v| show(v)).unwrap_or_default());
            let second = second.unwrap_or_else(|_| unreachable!());
            prop_assert_eq!(&second.sql, &first.sql);
            prop_assert_eq!(&second.redactions, &first.redactions);
            prop_assert_eq!(second.limit, first.limit);
            prop_assert_eq!(&second.tables, &first.tables);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Bugs found by this corpus. Each test holds the correct expectation and fails until fixed.
// ---------------------------------------------------------------------------------------------

fn assert_refused_exactly(cases: &[(&str, &[Code])]) {
    let problems: Vec<String> = cases
        .iter()
        .filter_map(|(sql, want)| verify_refused(sql, want))
        .collect();
    assert_no_problems("bug", problems);
}

/// Found in review (security, hidden-column oracle), now fixed: an ON condition is resolved against every FROM item
/// of the level, but PostgreSQL resolves it only against the two sides of its own join. With
/// `ssn` supplied by an item outside the join (an earlier comma item, or the outer side of a
/// parenthesized join), the check binds `ssn` to that item while PostgreSQL binds it to the
/// hidden `customers.ssn`, so `count(*)` tells whether a given SSN exists. (Verified on
/// PostgreSQL 15: both queries below count the rows whose hidden ssn matches.)
#[test]
fn on_clause_sees_only_its_own_join() {
    assert_refused_exactly(&[
        (
            "SELECT count(*) FROM (SELECT 1 AS ssn) z, customers JOIN orders ON ssn = '123-45-6789'",
            &[Col],
        ),
        (
            "SELECT count(*) FROM (SELECT 1 AS ssn) z JOIN (customers JOIN orders ON ssn = '123-45-6789') ON true",
            &[Col],
        ),
        // Not a leak, same cause: PostgreSQL rejects the reference to `c` from this ON clause
        // ("invalid reference to FROM-clause entry"), so the check must not accept it.
        (
            "SELECT count(*) FROM customers c, orders o JOIN products p ON p.id = o.product_id AND c.id = 1",
            &[Col],
        ),
    ]);
    // Joins whose ON clauses only use their own sides stay accepted.
    for sql in [
        "SELECT count(*) FROM (SELECT 1 AS k) z, orders o JOIN customers c ON c.id = o.customer_id",
        "SELECT o.id FROM customers c JOIN (orders o JOIN products p ON p.id = o.product_id) ON o.customer_id = c.id",
    ] {
        assert!(run(sql).is_ok(), "{sql}");
    }
}

/// Found in review (security, hidden-column oracle), now fixed: `USING (c)` is checked against every earlier FROM
/// item of the level, but PostgreSQL matches `c` only in the left side of that join. Here
/// the left side is `customers` alone, whose `c` is the hidden `ssn`. (Verified on PostgreSQL
/// 15: both return 1 when a customer has that SSN, else 0.)
#[test]
fn using_sees_only_its_own_join_sides() {
    assert_refused_exactly(&[
        (
            "SELECT count(*) FROM (SELECT 1 AS ssn) z, customers JOIN (SELECT '123-45-6789' AS ssn) s USING (ssn)",
            &[Col],
        ),
        (
            "SELECT count(*) FROM (SELECT 1 AS ssn) z JOIN (customers JOIN (SELECT '123-45-6789' AS ssn) s USING (ssn)) ON true",
            &[Col],
        ),
    ]);
}

/// Found as a redacted-column oracle: PostgreSQL 16+ reads `0x1`, `0o1`, `0b1` and `0_1` as
/// the integer 1, so `ORDER BY 0x1` / `GROUP BY 0x1` are positions, exactly like
/// `ORDER BY 1`. The check now refuses any position that is not a plain decimal integer.
#[test]
fn non_decimal_integer_positions_are_refused() {
    assert_refused_exactly(&[
        ("SELECT email FROM customers ORDER BY 0x1", &[Unsup]),
        ("SELECT email FROM customers ORDER BY 0X1", &[Unsup]),
        ("SELECT email FROM customers ORDER BY (0x1)", &[Unsup]),
        ("SELECT email FROM customers ORDER BY 0o1", &[Unsup]),
        ("SELECT email FROM customers ORDER BY 0b1 DESC", &[Unsup]),
        ("SELECT email FROM customers ORDER BY 0_1", &[Unsup]),
        (
            "SELECT id, full_name, email FROM customers ORDER BY 0_3",
            &[Unsup],
        ),
        ("SELECT * FROM customers ORDER BY 0x3", &[Unsup]),
        (
            "SELECT email, count(*) FROM customers GROUP BY 0x1",
            &[Unsup],
        ),
        (
            "SELECT email, phone FROM customers GROUP BY 0b1, 0o2",
            &[Unsup],
        ),
    ]);
}

/// Found as a redacted-column oracle (now fixed): integer constants inside `ROLLUP`, `CUBE` and
/// `GROUPING SETS` are output positions in PostgreSQL (transformGroupClauseExpr applies the
/// SQL92 rules to every grouping-set element), but the check walks them as plain expressions.
/// (Verified on PostgreSQL 15: `GROUP BY ROLLUP (1)` groups by email.)
#[test]
fn positions_inside_grouping_sets_are_checked() {
    assert_refused_exactly(&[
        (
            "SELECT email, count(*) FROM customers GROUP BY ROLLUP (1)",
            &[Red],
        ),
        (
            "SELECT email, count(*) FROM customers GROUP BY CUBE (1)",
            &[Red],
        ),
        (
            "SELECT email, count(*) FROM customers GROUP BY GROUPING SETS ((1), ())",
            &[Red],
        ),
        (
            "SELECT email, count(*) FROM customers GROUP BY GROUPING SETS (1)",
            &[Red],
        ),
        (
            "SELECT id, email, count(*) FROM customers GROUP BY ROLLUP (id, 2)",
            &[Red],
        ),
    ]);
}

/// Found in review (policy bypass, information disclosure), now fixed: `current_role`, `current_schema` and (PG16+)
/// `system_user` are reserved SQL value functions in PostgreSQL, never column references;
/// sqlparser parses them as identifiers, so a derived column of that name makes the check
/// accept them, and PostgreSQL returns the role name / schema (`current_user` and
/// `current_schema` are on DENIED_FUNCTIONS). (Verified on PostgreSQL 15: returns `postgres`
/// and `public`.)
#[test]
fn sql_value_keywords_are_refused_as_session_functions() {
    assert_refused_exactly(&[
        (
            "SELECT current_role FROM (SELECT 1 AS current_role) t",
            &[Fun],
        ),
        (
            "SELECT current_schema FROM (SELECT 1 AS current_schema) t",
            &[Fun],
        ),
        (
            "SELECT system_user FROM (SELECT 1 AS system_user) t",
            &[Fun],
        ),
        (
            "SELECT count(*) FROM (SELECT 'x' AS current_role) t WHERE current_role LIKE 'p%'",
            &[Fun],
        ),
    ]);
    // Qualified, they are ordinary columns in PostgreSQL too.
    assert!(run("SELECT t.current_role FROM (SELECT 1 AS current_role) t").is_ok());
}

/// Environment variable that turns [`deep_chain_child_process`] on.
const DEEP_CHILD: &str = "PGWARD_SQL_CORPUS_DEEP_CHILD";

/// Runs the deep left-associative chains in-process; only when the parent test asks, because
/// a stack overflow aborts the whole test binary.
#[test]
fn deep_chain_child_process() {
    if std::env::var_os(DEEP_CHILD).is_none() {
        return;
    }
    let mut policy = demo_policy();
    // The config default (config/types.rs); the check runs on a tokio worker (2 MiB stack).
    policy.max_sql_length = 20_000;
    let handle = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || {
            let inputs = [
                format!("SELECT 1{}", "+1".repeat(9_990)),
                format!("SELECT 1{}", "::int".repeat(3_990)),
                format!("SELECT 'a'{}", "||'a'".repeat(3_990)),
                format!(
                    "SELECT id FROM customers WHERE true{}",
                    " AND true".repeat(1_990)
                ),
                format!("SELECT 1{}", " UNION SELECT 1".repeat(1_300)),
            ];
            for sql in &inputs {
                assert!(sql.len() <= 20_000);
                let _ = check(&policy, sql, ParamMode::None);
            }
        })
        .expect("spawn");
    handle.join().expect("no panic");
}

/// Found in review (denial of service), now fixed: the parser's recursion limit bounds nesting, not the depth of
/// left-associative chains (`1+1+1+...`, `x::int::int...`, `'a'||'a'||...`), which sqlparser
/// builds iteratively. `Checker::check_expr` then recurses once per operator and overflows a
/// 2 MiB stack (a tokio worker's) at about 2,000 terms in a debug build and about 10,000 in
/// release; `SELECT 1+1+...` within the default max_sql_length of 20,000 bytes aborts the
/// whole server process. Runs in a child process so the overflow cannot take down this binary.
#[test]
fn left_deep_expression_chains_do_not_overflow_the_stack() {
    let exe = std::env::current_exe().expect("test binary path");
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "deep_chain_child_process",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(DEEP_CHILD, "1")
        .output()
        .expect("run child");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "check crashed on a deep left-associative chain ({}): {}",
        out.status,
        stderr
            .lines()
            .filter(|l| l.contains("overflow") || l.contains("panicked"))
            .collect::<Vec<_>>()
            .join(" / ")
    );
}

/// Found in review (legitimate query refused), now fixed: after `JOIN ... USING (id)` PostgreSQL exposes one merged
/// `id`, so an unqualified `id` is valid; the check reports `ambiguous_column`.
#[test]
fn using_merged_column_resolves() {
    let mut problems = Vec::new();
    for sql in [
        "SELECT id FROM orders JOIN customers USING (id)",
        "SELECT id, o.total FROM orders o JOIN products p USING (id)",
        "SELECT id FROM orders o LEFT JOIN products p USING (id) WHERE id > 3 ORDER BY id",
    ] {
        problems.extend(verify_allowed(sql, None, &[], None));
    }
    assert_no_problems("USING", problems);
}

/// A GROUP BY name resolves against input columns before output aliases in PostgreSQL, and a
/// table in FROM may hold a hidden input column of that name: grouping by an output alias is
/// refused while a table is in scope (group by the expression or its position instead), and
/// allowed over subqueries, whose columns are all known.
#[test]
fn group_by_output_alias_is_refused_when_a_hidden_column_could_shadow_it() {
    assert_refused_exactly(&[
        (
            "SELECT date_trunc('month', ordered_at) AS m, count(*) FROM orders GROUP BY m",
            &[Col],
        ),
        (
            "SELECT country AS ssn, count(*) FROM customers GROUP BY ssn",
            &[Col],
        ),
        (
            "SELECT email AS e, count(*) FROM customers GROUP BY e",
            &[Red],
        ),
    ]);
    let problems = verify_allowed(
        "SELECT date_trunc('month', o) AS m, count(*) FROM (SELECT ordered_at AS o FROM orders) s GROUP BY m ORDER BY m",
        None,
        &[],
        None,
    );
    assert_no_problems("GROUP BY alias over a subquery", problems);
    let problems = verify_allowed(
        "SELECT date_trunc('month', ordered_at) AS m, count(*) FROM orders GROUP BY 1 ORDER BY m",
        None,
        &[],
        None,
    );
    assert_no_problems("GROUP BY position", problems);
}

/// Found in review (minor, invariant "longer names are refused"), now fixed: identifiers longer than 63 bytes in a
/// CTE or derived-table column list are dropped by `filter_map(|c| fold(&c.name).ok())`
/// instead of being refused, so PostgreSQL silently truncates them and the check's idea of
/// the column list shifts.
#[test]
fn long_identifiers_in_column_alias_lists_are_refused() {
    let long = "a".repeat(64);
    let cte = format!("WITH x({long}) AS (SELECT id FROM customers) SELECT 1 FROM x");
    let derived = format!("SELECT 1 FROM (SELECT id FROM customers) s({long})");
    assert_refused_exactly(&[(&cte, &[Long]), (&derived, &[Long])]);
}

/// When the only FROM item is refused, the refusal alone explains why: `*` must not add a
/// misleading "`*` needs a FROM clause".
#[test]
fn star_over_a_refused_from_item_reports_only_the_refusal() {
    assert_refused_exactly(&[
        ("SELECT * FROM internal.api_keys", &[Tab]),
        ("SELECT * FROM pg_catalog.pg_authid", &[Tab]),
        ("SELECT * FROM db.public.customers", &[Three]),
        ("SELECT * FROM generate_series(1, 10)", &[TabFn]),
        ("SELECT * FROM users UNION SELECT * FROM passwords", &[Tab]),
    ]);
}

/// Found in review (legitimate query broken by the rewrite), now fixed: `*` over a subquery or CTE is expanded to
/// `"t"."<name>"` using `output_name`'s guess of each column's name, which differs from
/// PostgreSQL's for common shapes (`tags[1]` is named `tags`, `EXTRACT(...)` `extract`, a cast
/// constant by its type, a scalar subquery by its column) and cannot tell duplicate names
/// apart. The check accepts, and PostgreSQL then rejects the rewritten SQL (verified on
/// PostgreSQL 15: "column t.?column? does not exist", "column reference "id" is ambiguous").
/// Derived columns never carry redacted values, so keeping `"t".*` unexpanded for derived
/// items (or naming columns exactly as PostgreSQL does) would be correct.
#[test]
fn star_over_derived_columns_is_kept_as_written() {
    let cases: &[(&str, &[&str])] = &[
        (
            "SELECT * FROM (SELECT tags[1] FROM products) t",
            &[
                r#"SELECT "t".* FROM (SELECT tags[1] FROM "public"."products") t LIMIT 101"#,
                r#"SELECT "t"."tags" FROM (SELECT tags[1] FROM "public"."products") t LIMIT 101"#,
            ],
        ),
        (
            "SELECT * FROM (SELECT EXTRACT(YEAR FROM ordered_at) FROM orders) t",
            &[
                r#"SELECT "t".* FROM (SELECT EXTRACT(YEAR FROM ordered_at) FROM "public"."orders") t LIMIT 101"#,
                r#"SELECT "t"."extract" FROM (SELECT EXTRACT(YEAR FROM ordered_at) FROM "public"."orders") t LIMIT 101"#,
            ],
        ),
        (
            "WITH x AS (SELECT (SELECT max(total) FROM orders)) SELECT * FROM x",
            &[
                r#"WITH x AS (SELECT (SELECT pg_catalog.max(total) FROM "public"."orders")) SELECT "x".* FROM x LIMIT 101"#,
            ],
        ),
        (
            "SELECT * FROM (SELECT o.id, c.id FROM orders o JOIN customers c ON c.id = o.customer_id) t",
            &[
                r#"SELECT "t".* FROM (SELECT o.id, c.id FROM "public"."orders" o JOIN "public"."customers" c ON c.id = o.customer_id) t LIMIT 101"#,
            ],
        ),
    ];
    let mut problems = Vec::new();
    for (sql, acceptable) in cases {
        match run(sql) {
            Ok(c) if acceptable.contains(&c.sql.as_str()) => {}
            Ok(c) => problems.push(format!(
                "{sql}\n    rewritten to SQL PostgreSQL rejects: {}",
                c.sql
            )),
            Err(v) => problems.push(format!("{sql}\n    refused: {}", show(&v))),
        }
    }
    assert_no_problems("star over derived", problems);
}

/// Found in the security review, now fixed: `pg_typeof` returns `regtype`, whose output reads
/// the catalog; `ORDER BY ... USING <operator>` names an operator the allowlist never sees;
/// quoted or qualified grammar keywords (`"coalesce"(...)`) are ordinary function lookups
/// through the search path.
#[test]
fn catalog_and_operator_side_doors_are_refused() {
    assert_refused_exactly(&[
        ("SELECT pg_typeof(1)", &[Fun]),
        ("SELECT pg_catalog.pg_typeof(id) FROM orders", &[Fun]),
        (
            "SELECT id FROM orders ORDER BY id USING OPERATOR(pg_catalog.>)",
            &[Op],
        ),
        ("SELECT id FROM orders ORDER BY id USING >", &[Op]),
        (
            "SELECT string_agg(status, ',' ORDER BY status USING <) FROM orders",
            &[Op],
        ),
        ("SELECT \"coalesce\"(status, 'x') FROM orders", &[Fun]),
        (
            "SELECT pg_catalog.coalesce(status, 'x') FROM orders",
            &[Fun],
        ),
    ]);
    let ok = check(
        &demo_policy(),
        "SELECT coalesce(status, 'x') AS s, upper(status) AS u FROM orders",
        ParamMode::None,
    )
    .unwrap();
    assert_eq!(
        ok.sql,
        "SELECT coalesce(status, 'x') AS s, pg_catalog.upper(status) AS u FROM \"public\".\"orders\" LIMIT 101"
    );
    assert_eq!(ok.width, Some(2));
}

/// sqlparser leaves a quote inside a string value undoubled when it follows a backslash or
/// another quote, so the canonical text of such a query would not mean the checked tree: here
/// the first literal would end early in the text and the "string" after it would run as SQL,
/// unchecked. The check parses its own output again and refuses the query.
#[test]
fn a_literal_the_serializer_cannot_reproduce_is_refused() {
    let message = "a string literal in this query cannot be passed on exactly (a quote after a \
                   backslash, or two quotes in a row, inside a string); write it another way, \
                   e.g. with chr(39) for a quote";
    for sql in [
        // Smuggling: in the canonical text the first literal would close after `AS c, `.
        "SELECT 'a\\''' AS c, ' || (SELECT ssn FROM customers LIMIT 1) || ' AS d FROM orders",
        "SELECT 'a\\'''",
        // Two quotes in a row inside the value would come out as one.
        "SELECT 'a''''b'",
        "SELECT E'unt'''''''''''''''''/'''%'''''''''''''''''",
    ] {
        // Also twice with kept parses: the second compares with the kept parse of the text.
        let kept = KeptParses::default();
        for violations in [
            run(sql).expect_err(sql),
            kept_run(&kept, sql).expect_err(sql),
            kept_run(&kept, sql).expect_err(sql),
        ] {
            assert_eq!(
                violations
                    .iter()
                    .map(|v| (v.code, v.message.as_str()))
                    .collect::<Vec<_>>(),
                vec![(Code::UnsupportedSyntax, message)],
                "{sql}"
            );
        }
    }
    // A quote alone, a backslash alone, and an escape string keep working.
    for (sql, canonical) in [
        ("SELECT 'it''s'", "SELECT 'it''s' LIMIT 101"),
        ("SELECT 'C:\\dir'", "SELECT 'C:\\dir' LIMIT 101"),
        ("SELECT E'it\\'s'", "SELECT E'it\\'s' LIMIT 101"),
    ] {
        let kept = KeptParses::default();
        assert_eq!(run(sql).expect(sql).sql, canonical);
        for _ in 0..2 {
            assert_eq!(kept_run(&kept, sql).expect(sql).sql, canonical);
        }
    }
}

fn kept_run(kept: &KeptParses, sql: &str) -> Result<Checked, Vec<Violation>> {
    check_keeping(&demo_policy(), sql, ParamMode::None, kept)
}

/// The engine's check keeps the parses of the texts it runs; its decisions are those of the
/// plain check, whether the parse was kept, just made, dropped when the store filled up, or
/// never kept (a text past the length bound).
#[test]
fn kept_parses_give_the_plain_checks_decisions() {
    let padding = (0..60)
        .map(|i| format!("id = {i}"))
        .collect::<Vec<_>>()
        .join(" OR ");
    let long = format!("SELECT id, status FROM orders WHERE {padding}");
    assert!(
        run(&long).expect(&long).run_sql.len() > 512,
        "past the bound"
    );
    let mut corpus: Vec<String> = (1..=12)
        .map(|n| format!("SELECT id, total FROM orders WHERE customer_id = {n} LIMIT {n}"))
        .collect();
    corpus.extend(
        [
            "SELECT 'a\\''' AS c, ' || (SELECT ssn FROM customers LIMIT 1) || ' AS d FROM orders",
            "SELECT 'it''s'",
            "SELECT o.id, c.full_name FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.id = 7",
            "SELECT ssn FROM customers",
            "DELETE FROM orders",
        ]
        .map(String::from),
    );
    corpus.push(long);
    let kept = KeptParses::default();
    // Three rounds over more texts than the store holds: kept, dropped and kept again.
    for _ in 0..3 {
        for sql in &corpus {
            assert_eq!(
                format!("{:?}", kept_run(&kept, sql)),
                format!("{:?}", run(sql)),
                "{sql}"
            );
        }
    }
}

/// Lifting puts a typed parameter where an integer stood, which must not make a query that
/// checks at the edge of the parser's nesting limit fall back to running with its literals in
/// the text (the fallback exists, but only as a guard).
#[test]
fn lifting_holds_up_to_the_nesting_limit() {
    let policy = demo_policy();
    let mut deepest = [0usize; 3];
    for n in 1..60 {
        let shapes = [
            format!(
                "SELECT id FROM orders WHERE {}id = 1{}",
                "(".repeat(n),
                ")".repeat(n)
            ),
            format!(
                "SELECT id FROM orders WHERE {}1 < id{}",
                "NOT (".repeat(n),
                ")".repeat(n)
            ),
            format!(
                "SELECT id FROM orders WHERE {}id IN (1, 2){}",
                "EXISTS (SELECT 1 WHERE ".repeat(n),
                ")".repeat(n)
            ),
        ];
        for (shape, sql) in shapes.iter().enumerate() {
            match check(&policy, sql, ParamMode::None) {
                Ok(checked) => {
                    assert!(
                        !checked.literals.is_empty(),
                        "not lifted at depth {n}: {sql}"
                    );
                    assert!(
                        checked.run_sql.contains("$1::INTEGER"),
                        "{}",
                        checked.run_sql
                    );
                    deepest[shape] = n;
                }
                Err(v) => assert_eq!(codes_of(&v), BTreeSet::from([Code::ParseError]), "{sql}"),
            }
        }
    }
    // Each shape is accepted some way down and refused past the limit: the edge was crossed.
    for (shape, n) in deepest.iter().enumerate() {
        assert!((10..59).contains(n), "shape {shape}: deepest accepted {n}");
    }
}
