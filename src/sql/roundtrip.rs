//! The invariants a fuzzer (and the bounded CI run of the same logic) holds the SQL check to
//! (CORE): on any input it never panics; whatever it accepts it accepts again, unchanged, after
//! its own rewrite (same canonical SQL, same redactions, same width); the SQL it runs is the
//! canonical SQL with only compared integer literals lifted out (putting the bound values back
//! gives the canonical tree); and the audit fingerprint of accepted SQL keeps no literal.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use sqlparser::ast::{CastKind, DataType, Expr, Statement, UnaryOperator, Value, VisitorMut};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use crate::policy::{ColumnRule, Columns, FunctionAllowlist, Policy, QualifiedName, TableRule};
use crate::redact::Strategy;
use crate::sql::{Checked, DEFAULT_FUNCTIONS, ParamMode, check, fingerprint};

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
    lifted_only_literals(&first)?;
    fingerprint::fingerprint(&first.sql)
        .map(|_| ())
        .map_err(|e| format!("accepted SQL has no fingerprint ({e}): {}", first.sql))
}

/// `run_sql` with each lifted value put back (and the claims' placeholders numbered as in
/// `sql`) must be `sql`'s tree; every value must be used, distinct from the others, typed as
/// PostgreSQL types its literal, and stand only as an operand of a comparison, an IN list or
/// BETWEEN; and a statement that matches expressions by tree lifts nothing.
fn lifted_only_literals(checked: &Checked) -> Result<(), String> {
    let parse = |text: &str| {
        Parser::parse_sql(&PostgreSqlDialect {}, text)
            .ok()
            .filter(|s| s.len() == 1)
            .and_then(|mut s| s.pop())
    };
    let (Some(mut run), Some(mut sql)) = (parse(&checked.run_sql), parse(&checked.sql)) else {
        return Err(format!(
            "the SQL to run does not parse: {}",
            checked.run_sql
        ));
    };
    if !checked.literals.is_empty() && crate::sql::literals::matches_expressions(&sql) {
        return Err(format!(
            "literals were lifted where expressions are matched: {}",
            checked.run_sql
        ));
    }
    let distinct: BTreeSet<i64> = checked.literals.iter().copied().collect();
    if distinct.len() != checked.literals.len() {
        return Err(format!("a value was lifted twice: {}", checked.run_sql));
    }
    let mut unlift = Unlift {
        values: &checked.literals,
        used: vec![false; checked.literals.len()],
        fault: None,
    };
    let _ = sqlparser::ast::VisitMut::visit(&mut run, &mut unlift);
    if let Some(fault) = unlift.fault {
        return Err(format!("{fault}: {}", checked.run_sql));
    }
    if unlift.used.contains(&false) {
        return Err(format!("a lifted value is never used: {}", checked.run_sql));
    }
    normalize_integers(&mut run);
    normalize_integers(&mut sql);
    if run != sql {
        return Err(format!(
            "lifting changed more than literals: {} -> {}",
            checked.sql, checked.run_sql
        ));
    }
    same_fingerprint_for_other_values(checked, parse(&checked.run_sql))
}

/// The audit fingerprint of a statement that ran is kept by the text that ran
/// ([`fingerprint::Recent`]), so it must not depend on the lifted values: `run_sql` with other
/// values put back (each value's complement, which keeps its type) fingerprints as `sql` does.
fn same_fingerprint_for_other_values(
    checked: &Checked,
    run: Option<Statement>,
) -> Result<(), String> {
    if checked.literals.is_empty() {
        return Ok(());
    }
    let others: Vec<i64> = checked.literals.iter().map(|v| !v).collect();
    let Some(mut other) = run else {
        return Err(format!(
            "the SQL to run does not parse: {}",
            checked.run_sql
        ));
    };
    let mut unlift = Unlift {
        values: &others,
        used: vec![false; others.len()],
        fault: None,
    };
    let _ = sqlparser::ast::VisitMut::visit(&mut other, &mut unlift);
    if let Some(fault) = unlift.fault {
        return Err(format!("{fault}: {}", checked.run_sql));
    }
    let other = other.to_string();
    if fingerprint::fingerprint(&other) != fingerprint::fingerprint(&checked.sql) {
        return Err(format!(
            "the fingerprint depends on the lifted values: {} and {other}",
            checked.sql
        ));
    }
    Ok(())
}

/// Puts lifted values back in place of their placeholders.
struct Unlift<'a> {
    values: &'a [i64],
    used: Vec<bool>,
    fault: Option<String>,
}

impl Unlift<'_> {
    /// Puts the value back when `operand` is a lifted placeholder.
    fn restore(&mut self, operand: &mut Expr) {
        let Some((n, int4)) = lifted_placeholder(operand, self.values.len()) else {
            return;
        };
        let value = self.values[n - 1];
        if i32::try_from(value).is_ok() != int4 {
            self.fault = Some(format!("${n} has the wrong type for {value}"));
            return;
        }
        self.used[n - 1] = true;
        let digits = Expr::value(Value::Number(value.unsigned_abs().to_string(), false));
        *operand = if value < 0 {
            Expr::UnaryOp {
                op: UnaryOperator::Minus,
                expr: Box::new(digits),
            }
        } else {
            digits
        };
    }
}

impl VisitorMut for Unlift<'_> {
    type Break = ();

    // Pre-visit: a comparison's operands are restored before the walk reaches them, so a lifted
    // placeholder the walk meets is one that stands anywhere else.
    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let lifted = self.values.len();
        crate::sql::literals::for_each_operand(expr, |operand| self.restore(operand));
        if self.fault.is_some() {
            return ControlFlow::Break(());
        }
        if lifted_placeholder(expr, lifted).is_some() {
            self.fault = Some("a lifted value stands outside a comparison".into());
            return ControlFlow::Break(());
        }
        if let Expr::Value(v) = expr
            && let Value::Placeholder(p) = &v.value
        {
            match placeholder_index(p) {
                // A claim's: numbered after the lifted values in the SQL to run.
                Some(n) if n > lifted => v.value = Value::Placeholder(format!("${}", n - lifted)),
                _ => {
                    self.fault = Some(format!("stray placeholder {p}"));
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// `$n::INTEGER` (true) or `$n::BIGINT` (false) with `n` one of the `lifted` values.
fn lifted_placeholder(expr: &Expr, lifted: usize) -> Option<(usize, bool)> {
    let Expr::Cast {
        kind: CastKind::DoubleColon,
        expr: inner,
        data_type,
        format: None,
    } = expr
    else {
        return None;
    };
    let int4 = match data_type {
        DataType::Integer(None) => true,
        DataType::BigInt(None) => false,
        _ => return None,
    };
    let Expr::Value(v) = inner.as_ref() else {
        return None;
    };
    let Value::Placeholder(p) = &v.value else {
        return None;
    };
    let n = placeholder_index(p)?;
    (1..=lifted).contains(&n).then_some((n, int4))
}

fn placeholder_index(text: &str) -> Option<usize> {
    text.strip_prefix('$').and_then(|n| n.parse().ok())
}

/// A literal zero written in digits only (`0`, `00`).
fn is_zero(expr: &Expr) -> bool {
    let Expr::Value(v) = expr else {
        return false;
    };
    matches!(&v.value, Value::Number(t, false) if !t.is_empty() && t.bytes().all(|b| b == b'0'))
}

/// Writes every decimal integer literal in one form (`007` and `7`, `-0` and `0` are the same
/// constant to PostgreSQL), so trees compare by value.
fn normalize_integers(statement: &mut Statement) {
    struct Normalize;
    impl VisitorMut for Normalize {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            if let Expr::UnaryOp {
                op: UnaryOperator::Minus,
                expr: inner,
            } = expr
                && is_zero(inner)
            {
                *expr = Expr::value(Value::Number("0".into(), false));
            }
            if let Expr::Value(v) = expr
                && let Value::Number(text, false) = &mut v.value
                && !text.is_empty()
                && text.bytes().all(|b| b.is_ascii_digit())
            {
                let trimmed = text.trim_start_matches('0');
                *text = if trimmed.is_empty() { "0" } else { trimmed }.to_string();
            }
            ControlFlow::Continue(())
        }
    }
    let _ = sqlparser::ast::VisitMut::visit(statement, &mut Normalize);
}

#[cfg(test)]
mod tests {
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    use super::{
        lifted_only_literals, roundtrip, same_fingerprint_for_other_values, sample_policy,
    };
    use crate::sql::{ParamMode, check};

    #[test]
    fn lifted_sql_gives_back_the_canonical_tree() {
        let policy = sample_policy();
        for sql in [
            "SELECT id FROM orders WHERE id = 007 OR id = -0 OR id IN (1, 2, 1)",
            "SELECT title FROM tasks WHERE id BETWEEN -3 AND 3000000000 AND project_id <> 4",
        ] {
            assert_eq!(roundtrip(&policy, sql.as_bytes()), Ok(()), "{sql}");
            let checked = check(&policy, sql, ParamMode::None).unwrap_or_else(|v| panic!("{v:?}"));
            assert!(!checked.literals.is_empty(), "{sql}");
        }
    }

    #[test]
    fn a_changed_value_type_or_text_is_caught() {
        let policy = sample_policy();
        let sql = "SELECT id FROM orders WHERE id = 5 AND customer_id > 3000000000";
        let checked = check(&policy, sql, ParamMode::None).unwrap_or_else(|v| panic!("{v:?}"));
        assert_eq!(lifted_only_literals(&checked), Ok(()));

        let mut other_value = checked.clone();
        other_value.literals[0] = 6;
        assert!(
            lifted_only_literals(&other_value)
                .is_err_and(|e| e.starts_with("lifting changed more than literals")),
        );
        let mut wrong_type = checked.clone();
        wrong_type.literals.swap(0, 1);
        assert!(
            lifted_only_literals(&wrong_type)
                .is_err_and(|e| e.starts_with("$1 has the wrong type"))
        );
        let mut unused = checked.clone();
        unused.literals.push(7);
        assert!(
            lifted_only_literals(&unused)
                .is_err_and(|e| e.starts_with("a lifted value is never used"))
        );
        let mut twice = checked.clone();
        twice.run_sql = twice.run_sql.replace("id = $1", "id = $3");
        twice.literals.push(5);
        assert!(
            lifted_only_literals(&twice).is_err_and(|e| e.starts_with("a value was lifted twice"))
        );
        let mut outside = checked.clone();
        outside.run_sql = outside
            .run_sql
            .replace("LIMIT 101", "ORDER BY $1::INTEGER LIMIT 101");
        outside.sql = outside.sql.replace("LIMIT 101", "ORDER BY 5 LIMIT 101");
        assert!(
            lifted_only_literals(&outside)
                .is_err_and(|e| e.starts_with("a lifted value stands outside a comparison")),
            "{:?}",
            lifted_only_literals(&outside)
        );
        // Put back with other values, the text that ran must fingerprint as `sql` does.
        let run = |c: &crate::sql::Checked| {
            Parser::parse_sql(&PostgreSqlDialect {}, &c.run_sql)
                .ok()
                .and_then(|mut s| s.pop())
        };
        assert_eq!(
            same_fingerprint_for_other_values(&checked, run(&checked)),
            Ok(())
        );
        let mut other_shape = checked.clone();
        other_shape.sql = other_shape
            .sql
            .replacen("SELECT id", "SELECT customer_id", 1);
        assert!(
            same_fingerprint_for_other_values(&other_shape, run(&other_shape))
                .is_err_and(|e| e.starts_with("the fingerprint depends on the lifted values"))
        );
        let mut edited = checked;
        edited.run_sql = edited.run_sql.replace("id = $1", "id >= $1");
        assert!(
            lifted_only_literals(&edited)
                .is_err_and(|e| e.starts_with("lifting changed more than literals"))
        );
    }
}
