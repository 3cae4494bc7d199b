//! Criterion bench of the policy check (parse + check + rewrite + re-serialize) over a
//! realistic analytics corpus. Prints the time per query; the target is a median under 50 µs
//! for a typical analytics query. A second group times the audit fingerprint of each accepted
//! query's checked SQL.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use pgward::config::load::parse;
use pgward::config::validate;
use pgward::sql::fingerprint::fingerprint;
use pgward::sql::{ParamMode, check};

const CONFIG: &str = r#"
[database]
url = "postgres://reader@localhost/shop"

[[tables]]
name = "customers"
columns = ["id", "full_name", "email", "phone", "country", "created_at", "lifetime_value"]
redact = { email = "mask" }

[[tables]]
name = "orders"
columns = ["id", "customer_id", "product_id", "quantity", "total", "status", "ordered_at"]

[[tables]]
name = "products"
columns = ["id", "sku", "name", "category", "price", "in_stock", "tags", "attributes"]
"#;

const CORPUS: &[(&str, &str)] = &[
    (
        "point_lookup",
        "SELECT id, full_name, country FROM customers WHERE id = 42",
    ),
    (
        "typical_analytics",
        "SELECT c.country, date_trunc('month', o.ordered_at) AS month, count(*) AS orders, \
         sum(o.total) AS revenue FROM orders o JOIN customers c ON c.id = o.customer_id \
         WHERE o.status <> 'refunded' AND o.ordered_at >= DATE '2024-01-01' \
         GROUP BY 1, 2 ORDER BY revenue DESC LIMIT 20",
    ),
    (
        "cte_window",
        "WITH ranked AS (SELECT p.category, p.name, sum(o.quantity) AS units, \
         rank() OVER (PARTITION BY p.category ORDER BY sum(o.quantity) DESC) AS r \
         FROM orders o JOIN products p ON p.id = o.product_id GROUP BY p.category, p.name) \
         SELECT category, name, units FROM ranked WHERE r <= 3 ORDER BY category, r",
    ),
    (
        "subqueries",
        "SELECT id, full_name FROM customers c WHERE EXISTS (SELECT 1 FROM orders o \
         WHERE o.customer_id = c.id AND o.total > (SELECT avg(total) FROM orders)) \
         AND country IN ('DE', 'FR', 'SE')",
    ),
    ("star", "SELECT * FROM customers ORDER BY created_at DESC"),
    ("refused_hidden_column", "SELECT ssn FROM customers"),
];

fn bench(c: &mut Criterion) {
    let cfg = match parse(CONFIG) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bench config: {e}");
            return;
        }
    };
    let settings = match validate(&cfg, &BTreeMap::new()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bench config: {e:?}");
            return;
        }
    };
    let mut group = c.benchmark_group("sql_check");
    for (name, sql) in CORPUS {
        group.bench_function(*name, |b| {
            b.iter(|| check(black_box(&settings.policy), black_box(sql), ParamMode::None))
        });
    }
    group.finish();
    // The audit trail's normalization and fingerprint of the checked SQL, per call of model
    // SQL (a lookup tool's is taken once, at load).
    let mut group = c.benchmark_group("fingerprint");
    for (name, sql) in CORPUS {
        let Ok(checked) = check(&settings.policy, sql, ParamMode::None) else {
            continue;
        };
        group.bench_function(*name, |b| b.iter(|| fingerprint(black_box(&checked.sql))));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
