//! CORE: integer literals that are compared with a value, lifted out of checked model SQL as
//! typed parameters.
//!
//! A model looks rows up by writing the value into the SQL (`... WHERE id = 42`), so every
//! lookup is new SQL text to PostgreSQL: parsed, described and planned again, in two round
//! trips. With the compared integers lifted out (`... WHERE id = $1::INTEGER`, 42 bound), lookups
//! that differ only in those values are one statement, which a connection keeps: one round
//! trip, no parse.
//!
//! Only what cannot change the query's meaning is lifted: a decimal integer literal (or its
//! negation) that is a direct operand of a comparison (`=`, `<>`, `<`, `<=`, `>`, `>=`), an
//! item of an `IN (...)` list or an operand of `BETWEEN`. It becomes a parameter cast to the
//! type PostgreSQL gives that literal (`INTEGER` (int4) when it fits, else `BIGINT` (int8);
//! larger ones stay literal; both names are grammar keywords, so no schema can shadow them), so
//! operator and type resolution are exactly as before. Equal values share one parameter:
//! PostgreSQL matches a GROUP BY, ORDER BY or DISTINCT ON expression against the select list by
//! comparing trees, and two equal constants compare equal where two parameters would not.
//! Positions where a constant means something else (`ORDER BY 1`, `GROUP BY 1`, LIMIT, window
//! frames) are never comparison operands, and strings, decimals and typed literals are left
//! alone (a string's type comes from its context, which a parameter would not always get).
//! Nothing is lifted from a statement that groups or removes duplicates anywhere (GROUP BY,
//! HAVING, DISTINCT, DISTINCT ON, an aggregate's DISTINCT): there PostgreSQL matches
//! expressions by tree, and it folds `(2)`, `2::int`, `'2'` or `= ANY(ARRAY[2])` into the same
//! constant as a bare `2`, which a parameter would no longer match.
//! A call is planned with its values (`plan_cache_mode = force_custom_plan` for the call,
//! `CallLimits::plan_each_call`) wherever the literal text's planning could have decided
//! something with them: a function, an operator, CASE, a cast, a scalar subquery, a comparison
//! of constants ([`plan_with_values`]). A statement of columns compared with values keeps
//! PostgreSQL's default planning, which after five calls may reuse a plan made without them.

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, CastKind, DataType, DuplicateTreatment, Expr, FunctionArguments, GroupByExpr,
    InTarget, Query, SetExpr, Statement, UnaryOperator, Value, Visitor, VisitorMut,
};

/// At most this many values are lifted from one statement; a value first met after that stays
/// in the text wherever it occurs (a long `IN` list is rarely repeated with the same length
/// anyway).
pub const MAX_LIFTED: usize = 64;

/// Replaces the compared integer literals of `statement` by `$first`, `$first + 1`, ... (one
/// placeholder per distinct value) and returns the values in placeholder order.
pub fn lift(statement: &mut Statement, first: usize) -> Vec<i64> {
    if matches_expressions(statement) {
        return Vec::new();
    }
    let mut lifter = Lifter {
        first,
        values: Vec::new(),
    };
    let _ = sqlparser::ast::VisitMut::visit(statement, &mut lifter);
    lifter.values
}

struct Lifter {
    first: usize,
    values: Vec<i64>,
}

impl Lifter {
    fn lift(&mut self, expr: &mut Expr) {
        let Some(value) = integer_literal(expr) else {
            return;
        };
        let index = match self.values.iter().position(|v| *v == value) {
            Some(i) => i,
            None if self.values.len() < MAX_LIFTED => {
                self.values.push(value);
                self.values.len() - 1
            }
            None => return,
        };
        let data_type = if i32::try_from(value).is_ok() {
            DataType::Integer(None)
        } else {
            DataType::BigInt(None)
        };
        let placeholder = format!("${}", self.first + index);
        *expr = Expr::Cast {
            kind: CastKind::DoubleColon,
            expr: Box::new(Expr::value(Value::Placeholder(placeholder))),
            data_type,
            format: None,
        };
    }
}

impl VisitorMut for Lifter {
    type Break = ();

    // Pre-visit: the operands are replaced before the walk reaches them, and a placeholder is
    // never an integer literal, so nothing is lifted twice.
    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        for_each_operand(expr, |operand| self.lift(operand));
        ControlFlow::Continue(())
    }
}

/// Calls `f` on each operand of `expr` that may be lifted: both sides of a comparison, the
/// tested value and items of an `IN (...)` list, and the three operands of `BETWEEN`.
pub fn for_each_operand(expr: &mut Expr, mut f: impl FnMut(&mut Expr)) {
    match expr {
        Expr::BinaryOp { left, op, right } if is_comparison(op) => {
            f(left);
            f(right);
        }
        Expr::In {
            expr,
            target: InTarget::List(list),
            ..
        } => {
            f(expr);
            list.iter_mut().for_each(f);
        }
        Expr::Between {
            expr, low, high, ..
        } => {
            f(expr);
            f(low);
            f(high);
        }
        _ => {}
    }
}

/// Whether the lifted `statement` must be planned with each call's values.
///
/// PostgreSQL folds constant subexpressions when it plans. With the values known it decides
/// what they decide and prunes what that makes unreachable; a plan made without them
/// (PostgreSQL's generic plan, which a kept statement gets after five calls) keeps it, and
/// evaluates it. That can fail where the literal text does not:
/// - `CASE WHEN 0 = 1 THEN 1 / 0 END`: the generic plan folds `1 / 0`;
/// - `(a = (SELECT b FROM t LIMIT 2) OR 1 = 1)`: the literal text never runs the subquery,
///   the generic plan runs it and fails on its second row.
///
/// So a statement keeps PostgreSQL's default planning only when both hold:
/// - every expression is a column, a constant, a parameter, a comparison, AND, OR, NOT, an IN
///   list, BETWEEN, IS [NOT] NULL, EXISTS or IN over a subquery: nothing that can fail when
///   folded or run (a scalar subquery fails on a second row);
/// - every comparison, IN list or BETWEEN with a lifted value also has a column (or a
///   subquery) among its operands, so it is no constant the literal text's planning decides.
///
/// Anything else (a function, an operator, CASE, a cast, a scalar subquery, `1 = 1`) asks for
/// a plan per call.
pub fn plan_with_values(statement: &Statement) -> bool {
    struct Finder(bool);
    impl Visitor for Finder {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            if folds_nothing(expr) && !decided_by_values(expr) {
                return ControlFlow::Continue(());
            }
            self.0 = true;
            ControlFlow::Break(())
        }
    }
    let mut finder = Finder(false);
    let _ = sqlparser::ast::Visit::visit(statement, &mut finder);
    finder.0
}

/// Whether `expr` itself (its operands are visited on their own) is one that can neither be
/// folded into an error nor fail when it runs.
fn folds_nothing(expr: &Expr) -> bool {
    match expr {
        Expr::Identifier(_)
        | Expr::CompoundIdentifier(_)
        | Expr::Value(_)
        | Expr::Nested(_)
        | Expr::IsNull(_)
        | Expr::IsNotNull(_)
        | Expr::Between { .. }
        | Expr::Exists { .. }
        | Expr::In {
            target: InTarget::List(_) | InTarget::Subquery(_),
            ..
        } => true,
        Expr::BinaryOp { op, .. } => {
            is_comparison(op) || matches!(op, BinaryOperator::And | BinaryOperator::Or)
        }
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            ..
        } => true,
        // A signed number: a constant PostgreSQL reads as one.
        Expr::UnaryOp {
            op: UnaryOperator::Minus | UnaryOperator::Plus,
            expr,
        } => matches!(expr.as_ref(), Expr::Value(v) if matches!(v.value, Value::Number(..))),
        _ => is_lifted(expr),
    }
}

/// A lifted value: `$n::INTEGER` or `$n::BIGINT`.
fn is_lifted(expr: &Expr) -> bool {
    matches!(
        expr,
        Expr::Cast {
            kind: CastKind::DoubleColon,
            expr,
            data_type: DataType::Integer(None) | DataType::BigInt(None),
            format: None,
        } if matches!(expr.as_ref(), Expr::Value(v) if matches!(v.value, Value::Placeholder(_)))
    )
}

/// Whether `expr` is a comparison, IN list or BETWEEN (the operands [`for_each_operand`] lifts
/// from) with a lifted value among its operands and no column or subquery: a constant in the
/// literal text, which its planning decides.
fn decided_by_values(expr: &Expr) -> bool {
    let operands: Vec<&Expr> = match expr {
        Expr::BinaryOp { left, op, right } if is_comparison(op) => vec![left, right],
        Expr::In {
            expr,
            target: InTarget::List(list),
            ..
        } => std::iter::once(expr.as_ref()).chain(list).collect(),
        Expr::Between {
            expr, low, high, ..
        } => vec![expr, low, high],
        _ => return false,
    };
    operands.iter().any(|o| is_lifted(o)) && !operands.iter().any(|o| reads_something(o))
}

/// Whether `expr` reads a column or runs a subquery anywhere in it.
fn reads_something(expr: &Expr) -> bool {
    struct Reader(bool);
    impl Visitor for Reader {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            if matches!(
                expr,
                Expr::Identifier(_)
                    | Expr::CompoundIdentifier(_)
                    | Expr::Subquery(_)
                    | Expr::Exists { .. }
                    | Expr::In {
                        target: InTarget::Subquery(_),
                        ..
                    }
            ) {
                self.0 = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    let mut reader = Reader(false);
    let _ = sqlparser::ast::Visit::visit(expr, &mut reader);
    reader.0
}

/// `=`, `<>`, `<`, `<=`, `>`, `>=`: the operators whose operands may be lifted.
fn is_comparison(op: &BinaryOperator) -> bool {
    matches!(
        op,
        BinaryOperator::Eq
            | BinaryOperator::NotEq
            | BinaryOperator::Lt
            | BinaryOperator::LtEq
            | BinaryOperator::Gt
            | BinaryOperator::GtEq
    )
}

/// Whether any query in `statement` groups or removes duplicates, where PostgreSQL matches
/// expressions against each other by tree.
pub fn matches_expressions(statement: &Statement) -> bool {
    struct Finder(bool);
    impl Visitor for Finder {
        type Break = ();
        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
            if set_matches(&query.body) {
                self.0 = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            if let Expr::Function(f) = expr
                && let FunctionArguments::List(list) = &f.args
                && list.duplicate_treatment == Some(DuplicateTreatment::Distinct)
            {
                self.0 = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    fn set_matches(body: &SetExpr) -> bool {
        match body {
            SetExpr::Select(select) => {
                select.distinct.is_some()
                    || select.having.is_some()
                    || !matches!(&select.group_by, GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty())
            }
            SetExpr::SetOperation { left, right, .. } => set_matches(left) || set_matches(right),
            // A nested query is visited on its own.
            _ => false,
        }
    }
    let mut finder = Finder(false);
    let _ = sqlparser::ast::Visit::visit(statement, &mut finder);
    finder.0
}

/// The value of a decimal integer literal, or of one negated (PostgreSQL folds `-5` into the
/// constant, typed by the negated value), when it fits `int8`.
fn integer_literal(expr: &Expr) -> Option<i64> {
    match expr {
        Expr::Value(v) => digits(&v.value).and_then(|d| d.parse::<i64>().ok()),
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match expr.as_ref() {
            Expr::Value(v) => digits(&v.value)
                .and_then(|d| d.parse::<i128>().ok())
                .and_then(|n| i64::try_from(-n).ok()),
            _ => None,
        },
        _ => None,
    }
}

/// The text of a number literal written in decimal digits only (not `1.5`, `1e3`, `0x1F`,
/// `1_000`, or one with sqlparser's `L` suffix).
fn digits(value: &Value) -> Option<&str> {
    match value {
        Value::Number(text, false)
            if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Some(text.as_str())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    use super::{MAX_LIFTED, lift, plan_with_values};

    fn lifted(sql: &str, first: usize) -> (String, Vec<i64>) {
        let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap_or_default();
        assert_eq!(statements.len(), 1, "{sql}");
        let mut statement = statements.remove(0);
        let values = lift(&mut statement, first);
        (statement.to_string(), values)
    }

    #[test]
    fn compared_integers_become_typed_parameters() {
        assert_eq!(
            lifted("SELECT id FROM t WHERE id = 42 AND 7 < n", 1),
            (
                "SELECT id FROM t WHERE id = $1::INTEGER AND $2::INTEGER < n".into(),
                vec![42, 7]
            )
        );
        assert_eq!(
            lifted(
                "SELECT a FROM t WHERE a IN (1, -2) AND b BETWEEN 3 AND 4 AND c <> 5",
                3
            ),
            (
                "SELECT a FROM t WHERE a IN ($3::INTEGER, $4::INTEGER) AND b BETWEEN $5::INTEGER AND $6::INTEGER AND c <> $7::INTEGER"
                    .into(),
                vec![1, -2, 3, 4, 5]
            )
        );
    }

    #[test]
    fn equal_values_share_one_parameter() {
        assert_eq!(
            lifted(
                "SELECT CASE WHEN total > 100 THEN 'big' END FROM t \
                 WHERE total > 100 OR n = 1 ORDER BY total > 100",
                1
            ),
            (
                "SELECT CASE WHEN total > $1::INTEGER THEN 'big' END FROM t \
                 WHERE total > $1::INTEGER OR n = $2::INTEGER ORDER BY total > $1::INTEGER"
                    .into(),
                vec![100, 1]
            )
        );
    }

    #[test]
    fn nothing_is_lifted_where_expressions_are_matched() {
        for sql in [
            "SELECT quantity > (2) AS many, count(*) FROM t GROUP BY quantity > 2",
            "SELECT DISTINCT quantity > 2::int AS many FROM t ORDER BY quantity > 2",
            "SELECT DISTINCT ON (a > 2) id FROM t ORDER BY a > 2, id",
            "SELECT count(*) FROM t HAVING count(*) > 1",
            "SELECT count(DISTINCT a > 2) FROM t WHERE id = 1",
            "SELECT a FROM t WHERE id = 1 UNION SELECT a FROM u GROUP BY a",
            "SELECT a FROM t WHERE id IN (SELECT DISTINCT b FROM u WHERE c = 3)",
            "WITH g AS (SELECT a FROM t GROUP BY a) SELECT a FROM g WHERE a = 1",
            "SELECT a > 2, count(*) FROM t WHERE id = 1 GROUP BY ROLLUP (a > 2)",
            "SELECT a > 2, count(*) FROM t GROUP BY GROUPING SETS ((a > 2), ())",
            "SELECT a > 2, b, count(*) FROM t GROUP BY CUBE (a > 2, b)",
            "SELECT a FROM t WHERE a = (SELECT max(b) FROM u GROUP BY c HAVING c > 1 LIMIT 1)",
            "SELECT a, (SELECT count(DISTINCT b) FROM u) FROM t WHERE id = 1",
        ] {
            let (text, values) = lifted(sql, 1);
            assert_eq!(values, Vec::<i64>::new(), "{sql}");
            assert!(!text.contains('$'), "{text}");
        }
    }

    /// Whether the statement, lifted, must be planned with each call's values.
    fn plans_per_call(sql: &str) -> bool {
        let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap_or_default();
        assert_eq!(statements.len(), 1, "{sql}");
        let mut statement = statements.remove(0);
        assert!(!lift(&mut statement, 1).is_empty(), "{sql}");
        plan_with_values(&statement)
    }

    #[test]
    fn only_statements_with_nothing_to_fold_keep_default_planning() {
        for sql in [
            "SELECT id, status FROM t WHERE id = 42",
            "SELECT -5, id FROM t WHERE id IN (1, 2) AND (total > 5 OR total IS NULL) \
             AND NOT id BETWEEN 3 AND 4 AND name = 'x' AND flag IS NOT NULL",
            "SELECT id FROM t WHERE id = 1 AND EXISTS (SELECT 1 FROM u WHERE u.a = t.id) \
             AND b IN (SELECT c FROM v WHERE d <> 2) ORDER BY id LIMIT 10",
            "SELECT id = 5 AS five FROM t WHERE 7 IN (a, b)",
        ] {
            assert!(!plans_per_call(sql), "{sql}");
        }
        for sql in [
            "SELECT CASE WHEN 0 = 1 THEN 1 / 0 END FROM t WHERE id = 1",
            "SELECT total * 2 FROM t WHERE id = 1",
            "SELECT id FROM t WHERE lower(name) = 'x' AND id = 1",
            "SELECT id FROM t WHERE id = 1 AND name LIKE 'a%'",
            "SELECT id::text FROM t WHERE id = 1",
            "SELECT id FROM t WHERE id + 0 = 1",
            "SELECT id FROM t WHERE id = 1 AND flag IS TRUE",
            // A scalar subquery fails on a second row; the literal text may never run it.
            "SELECT id FROM t WHERE id = 1 AND (a = (SELECT b FROM u LIMIT 2) OR 1 = 1)",
            "SELECT id FROM t WHERE id = 1 AND a = (SELECT b FROM u LIMIT 1)",
            // Constants the literal text's planning decides.
            "SELECT id FROM t WHERE id = 1 OR 1 = 1",
            "SELECT id FROM t WHERE a > 2 AND 0 <> 1",
            "SELECT id FROM t WHERE 5 IN (1, 2) OR a = 3",
            "SELECT id FROM t WHERE 5 BETWEEN 1 AND 9 OR a = 3",
        ] {
            assert!(plans_per_call(sql), "{sql}");
        }
    }

    #[test]
    fn each_literal_keeps_the_type_postgresql_gives_it() {
        // int4 when it fits (the negated minimum too, as PostgreSQL folds the sign in), int8
        // when only that fits, and a literal past int8 stays in the text (numeric).
        assert_eq!(
            lifted(
                "SELECT a FROM t WHERE a = 2147483647 OR a = -2147483648 OR a = 2147483648 \
                 OR a = -9223372036854775808 OR a = 9223372036854775808",
                1
            ),
            (
                "SELECT a FROM t WHERE a = $1::INTEGER OR a = $2::INTEGER OR a = $3::BIGINT \
                 OR a = $4::BIGINT OR a = 9223372036854775808"
                    .into(),
                vec![2147483647, -2147483648, 2147483648, i64::MIN]
            )
        );
    }

    #[test]
    fn constants_that_mean_something_else_stay_in_the_text() {
        for sql in [
            "SELECT a, count(*) FROM t GROUP BY 1 ORDER BY 2 DESC LIMIT 10 OFFSET 5",
            "SELECT a FROM t WHERE a = 1.5 OR a = 1e3 OR a = 0x1F OR b = 'x' OR c = '5'",
            "SELECT a + 1, sum(b) OVER (ORDER BY a ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) FROM t",
            "SELECT a FROM t WHERE a = DATE '2024-01-01' OR b = +5 OR c = -(5) OR d = 1 + 2",
            "SELECT substring(a FROM 1 FOR 3) FROM t WHERE a IN (SELECT 1)",
        ] {
            let (text, values) = lifted(sql, 1);
            assert_eq!(values, Vec::<i64>::new(), "{sql}");
            assert!(!text.contains('$'), "{text}");
        }
    }

    #[test]
    fn lifting_stops_at_the_cap_but_lifted_values_stay_lifted() {
        let items: Vec<String> = (0..MAX_LIFTED + 3).map(|i| i.to_string()).collect();
        let sql = format!(
            "SELECT a FROM t WHERE a IN ({}) OR b = 0 OR b = 64",
            items.join(", ")
        );
        let (text, values) = lifted(&sql, 1);
        assert_eq!(values.len(), MAX_LIFTED);
        assert!(
            text.ends_with(&format!(
                "${MAX_LIFTED}::INTEGER, 64, 65, 66) OR b = $1::INTEGER OR b = 64"
            )),
            "{text}"
        );
    }
}
