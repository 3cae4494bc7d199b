//! The invariants a fuzzer (and the bounded CI run of the same logic) holds the SQL check to
//! (CORE): on any input it never panics; whatever it accepts it accepts again, unchanged, after
//! its own rewrite (same canonical SQL, same redactions, same width); and the audit
//! fingerprint of accepted SQL keeps no literal.

use std::collections::{BTreeMap, BTreeSet};

use crate::policy::{ColumnRule, Columns, FunctionAllowlist, Policy, QualifiedName, TableRule};
use crate::redact::Strategy;
use crate::sql::{DEFAULT_FUNCTIONS, ParamMode, check, fingerprint};

/// A demo-shop policy with every feature the rewrite touches: redacted columns, a hidden
/// column, `columns = "all"`, and a row-filtered table.
pub fn sample_policy() -> Policy {
    let q = |name: &str| QualifiedName {
        schema: "public".into(),
        name: name.into(),
    };
    let col = |name: &str, redact: Option<Strategy>| ColumnRule {
        name: name.into(),
        redact,
    };
    let list = |cols: &[&str]| Columns::List(cols.iter().map(|c| col(c, None)).collect());
    let rule = |name: &str, columns: Columns, filter: Option<&str>| {
        (
            q(name),
            TableRule {
                name: q(name),
                columns,
                description: None,
                row_filter: filter.map(|claim| crate::policy::RowFilter {
                    column: "tenant".into(),
                    claim: claim.into(),
                }),
            },
        )
    };
    Policy {
        schemas: vec!["public".into()],
        tables: BTreeMap::from([
            rule(
                "customers",
                Columns::List(vec![
                    col("id", None),
                    col("full_name", None),
                    col("email", Some(Strategy::Mask)),
                    col("phone", Some(Strategy::Hash)),
                    col("country", None),
                ]),
                None,
            ),
            rule(
                "orders",
                list(&["id", "customer_id", "total", "status", "ordered_at"]),
                None,
            ),
            rule(
                "products",
                Columns::All {
                    redacted: Vec::new(),
                },
                None,
            ),
            rule(
                "tasks",
                list(&["id", "project_id", "title", "done"]),
                Some("tenant"),
            ),
        ]),
        functions: FunctionAllowlist {
            builtin: DEFAULT_FUNCTIONS.iter().map(|f| (*f).to_string()).collect(),
            extra: BTreeSet::new(),
        },
        max_rows: 100,
        max_sql_length: 10_000,
    }
}

/// Checks one input against the invariants; `Err` describes the broken one.
pub fn roundtrip(policy: &Policy, input: &[u8]) -> Result<(), String> {
    let Ok(sql) = std::str::from_utf8(input) else {
        // Arbitrary bytes still must not panic the check.
        let _ = check(policy, &String::from_utf8_lossy(input), ParamMode::None);
        return Ok(());
    };
    let Ok(first) = check(policy, sql, ParamMode::None) else {
        return Ok(());
    };
    // Row filters wrap tables in subqueries, which a second check would wrap again; the
    // rewrite is idempotent on queries that read no filtered table.
    if first.claim_params.is_empty() {
        let second = check(policy, &first.sql, ParamMode::None).map_err(|v| {
            format!(
                "the canonical SQL is refused: {}: {}",
                first.sql,
                v.iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        })?;
        if second.sql != first.sql {
            return Err(format!(
                "the rewrite is not stable: {} -> {}",
                first.sql, second.sql
            ));
        }
        if second.redactions != first.redactions || second.width != first.width {
            return Err(format!("redactions or width changed for {}", first.sql));
        }
    }
    fingerprint::fingerprint(&first.sql)
        .map(|_| ())
        .map_err(|e| format!("accepted SQL has no fingerprint ({e}): {}", first.sql))
}
