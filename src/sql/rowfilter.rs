//! Row filters (CORE): after the check has accepted a query, every reference to a table that
//! carries a row filter is replaced by a filtered subquery under the same name:
//!
//! ```sql
//! FROM orders o            -- becomes
//! FROM (SELECT "id", "customer_id", ... FROM "public"."orders" WHERE "tenant_id" = $3) AS o
//! ```
//!
//! INVARIANT: the rewrite runs on the checked tree, after every table reference was resolved
//! and rewritten to its schema-qualified name, and it replaces each such reference wherever it
//! is (joins, subqueries, CTE bodies, set operations, LATERAL), so no SQL the model writes can
//! reach an unfiltered row: an `OR` in the model's WHERE, a `UNION` or a self-join under
//! another alias all read the filtered subquery. The claim's value is a bound parameter, never
//! text in the SQL. A CTE named like a table is not a table reference and is left alone (its
//! body's references are wrapped).

use std::ops::ControlFlow;

use sqlparser::ast::{Expr, ObjectNamePart, SetExpr, Statement, TableFactor, VisitMut, VisitorMut};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use crate::policy::{Columns, Policy};

/// Why the rewrite could not be built (it never should: the pieces are pgward's own).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the row filter of `{0}` could not be applied")]
pub struct RowFilterError(pub String);

/// Wraps every filtered table of `statement`; placeholders for the claims start at
/// `first_placeholder`. Returns the claims, in placeholder order (`$first`, `$first + 1`, ...;
/// one per distinct claim).
pub fn inject(
    statement: &mut Statement,
    policy: &Policy,
    first_placeholder: usize,
) -> Result<Vec<String>, RowFilterError> {
    let mut v = Injector {
        policy,
        first: first_placeholder,
        claims: Vec::new(),
        error: None,
    };
    let _ = statement.visit(&mut v);
    match v.error {
        Some(e) => Err(e),
        None => Ok(v.claims),
    }
}

struct Injector<'a> {
    policy: &'a Policy,
    first: usize,
    claims: Vec<String>,
    error: Option<RowFilterError>,
}

/// A name as PostgreSQL folds it: unquoted identifiers to lower case, quoted ones exact.
fn folded(i: &sqlparser::ast::Ident) -> String {
    match i.quote_style {
        Some(_) => i.value.clone(),
        None => i.value.to_ascii_lowercase(),
    }
}

impl VisitorMut for Injector<'_> {
    type Break = ();

    // `schema.table.column` names the table, which is now a subquery under the table's own
    // name: the column becomes `table.column` (PostgreSQL would refuse the schema there).
    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::CompoundIdentifier(parts) = expr
            && let [schema, table, _] = parts.as_slice()
            && self
                .policy
                .table(&folded(schema), &folded(table))
                .is_some_and(|rule| rule.row_filter.is_some())
        {
            parts.remove(0);
        }
        ControlFlow::Continue(())
    }

    // Post-visit: the new subquery is not visited again (it would be wrapped forever).
    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let TableFactor::Table { name, alias, .. } = factor else {
            return ControlFlow::Continue(());
        };
        // The check rewrote every allowlisted table to exactly `"schema"."table"`; anything
        // else here is a CTE reference.
        let parts: Vec<&sqlparser::ast::Ident> = name
            .0
            .iter()
            .filter_map(|p| match p {
                ObjectNamePart::Identifier(i) => Some(i),
                _ => None,
            })
            .collect();
        let ([schema, table], Some('"'), Some('"')) = (
            parts.as_slice(),
            parts.first().and_then(|i| i.quote_style),
            parts.get(1).and_then(|i| i.quote_style),
        ) else {
            return ControlFlow::Continue(());
        };
        let Some(rule) = self.policy.table(&schema.value, &table.value) else {
            return ControlFlow::Continue(());
        };
        let Some(filter) = &rule.row_filter else {
            return ControlFlow::Continue(());
        };
        let index = match self.claims.iter().position(|c| *c == filter.claim) {
            Some(i) => i,
            None => {
                self.claims.push(filter.claim.clone());
                self.claims.len() - 1
            }
        };
        let placeholder = self.first + index;
        let columns = match &rule.columns {
            Columns::List(cols) => cols
                .iter()
                .map(|c| quote(&c.name))
                .collect::<Vec<_>>()
                .join(", "),
            Columns::All { .. } => "*".to_string(),
        };
        let alias = match alias {
            Some(a) => a.to_string(),
            None => quote(&table.value),
        };
        let text = format!(
            "SELECT 1 FROM (SELECT {columns} FROM {}.{} WHERE {} = ${placeholder}) AS {alias}",
            quote(&schema.value),
            quote(&table.value),
            quote(&filter.column),
        );
        match derived(&text) {
            Some(d) => *factor = d,
            None => {
                self.error = Some(RowFilterError(rule.name.to_string()));
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }
}

/// The derived table of `SELECT 1 FROM (<subquery>) AS alias`.
fn derived(text: &str) -> Option<TableFactor> {
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, text).ok()?;
    let Some(Statement::Query(query)) = statements.pop() else {
        return None;
    };
    let SetExpr::Select(select) = *query.body else {
        return None;
    };
    select.from.into_iter().next().map(|t| t.relation)
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::policy::{
        ColumnRule, Columns, FunctionAllowlist, Policy, QualifiedName, RowFilter, TableRule,
    };
    use crate::sql::{DEFAULT_FUNCTIONS, ParamMode, check};

    fn policy() -> Policy {
        let table = |name: &str, cols: &[&str], filter: Option<&str>| {
            let q = QualifiedName {
                schema: "public".into(),
                name: name.into(),
            };
            let rule = TableRule {
                name: q.clone(),
                columns: Columns::List(
                    cols.iter()
                        .map(|c| ColumnRule {
                            name: (*c).into(),
                            redact: None,
                        })
                        .collect(),
                ),
                description: None,
                row_filter: filter.map(|claim| RowFilter {
                    column: "tenant".into(),
                    claim: claim.into(),
                }),
            };
            (q, rule)
        };
        Policy {
            schemas: vec!["public".into()],
            tables: BTreeMap::from([
                table("projects", &["id", "name"], Some("tenant")),
                table("tasks", &["id", "project_id", "title"], Some("org")),
                table("colors", &["id", "name"], None),
            ]),
            functions: FunctionAllowlist {
                builtin: DEFAULT_FUNCTIONS.iter().map(|f| (*f).to_string()).collect(),
                extra: Default::default(),
            },
            max_rows: 10,
            max_sql_length: 10_000,
        }
    }

    fn sql(text: &str) -> (String, Vec<String>) {
        let c = check(&policy(), text, ParamMode::None).unwrap();
        (c.sql, c.claim_params)
    }

    #[test]
    fn every_reference_is_wrapped_and_each_claim_bound_once() {
        let (s, claims) = sql(
            "SELECT p.name FROM projects p JOIN tasks t ON t.project_id = p.id \
             WHERE p.id IN (SELECT project_id FROM tasks) UNION SELECT name FROM colors",
        );
        assert_eq!(
            s,
            "SELECT p.name FROM (SELECT \"id\", \"name\" FROM \"public\".\"projects\" WHERE \"tenant\" = $1) AS p \
             JOIN (SELECT \"id\", \"project_id\", \"title\" FROM \"public\".\"tasks\" WHERE \"tenant\" = $2) AS t ON t.project_id = p.id \
             WHERE p.id IN (SELECT project_id FROM (SELECT \"id\", \"project_id\", \"title\" FROM \"public\".\"tasks\" WHERE \"tenant\" = $2) AS \"tasks\") \
             UNION SELECT name FROM \"public\".\"colors\" LIMIT 11"
        );
        assert_eq!(claims, vec!["tenant", "org"]);
    }

    #[test]
    fn schema_qualified_columns_follow_the_wrapped_table() {
        let (s, _) = sql("SELECT public.projects.name FROM public.projects");
        assert_eq!(
            s,
            "SELECT projects.name FROM (SELECT \"id\", \"name\" FROM \"public\".\"projects\" WHERE \"tenant\" = $1) AS \"projects\" LIMIT 11"
        );
    }

    #[test]
    fn a_cte_named_like_a_table_is_not_wrapped_but_its_body_is() {
        let (s, claims) = sql("WITH projects AS (SELECT id FROM projects) SELECT id FROM projects");
        assert_eq!(
            s,
            "WITH projects AS (SELECT id FROM (SELECT \"id\", \"name\" FROM \"public\".\"projects\" WHERE \"tenant\" = $1) AS \"projects\") SELECT id FROM projects LIMIT 11"
        );
        assert_eq!(claims, vec!["tenant"]);
    }

    #[test]
    fn unfiltered_tables_and_tools_keep_their_placeholders() {
        let (s, claims) = sql("SELECT name FROM colors");
        assert_eq!(s, "SELECT name FROM \"public\".\"colors\" LIMIT 11");
        assert!(claims.is_empty());
        // A tool's own parameters come first; the claims follow.
        let c = check(
            &policy(),
            "SELECT name FROM projects WHERE id = $1",
            ParamMode::Tool { count: 1 },
        )
        .unwrap();
        assert!(
            c.sql
                .contains("WHERE \"tenant\" = $2) AS \"projects\" WHERE id = $1"),
            "{}",
            c.sql
        );
        assert_eq!(c.claim_params, vec!["tenant"]);
        assert_eq!(c.placeholders, 1);
        assert_eq!(c.run_sql, c.sql);
        assert!(c.literals.is_empty());
    }

    #[test]
    fn lifted_literals_come_first_and_the_claims_follow_them() {
        let c = check(
            &policy(),
            "SELECT name FROM projects WHERE id = 5 OR id IN (6, 7)",
            ParamMode::None,
        )
        .unwrap();
        // What the model is shown keeps its literals; what runs binds them.
        assert_eq!(
            c.sql,
            "SELECT name FROM (SELECT \"id\", \"name\" FROM \"public\".\"projects\" WHERE \"tenant\" = $1) AS \"projects\" \
             WHERE id = 5 OR id IN (6, 7) LIMIT 11"
        );
        assert_eq!(
            c.run_sql,
            "SELECT name FROM (SELECT \"id\", \"name\" FROM \"public\".\"projects\" WHERE \"tenant\" = $4) AS \"projects\" \
             WHERE id = $1::INTEGER OR id IN ($2::INTEGER, $3::INTEGER) LIMIT 11"
        );
        assert_eq!(c.literals, vec![5, 6, 7]);
        assert_eq!(c.claim_params, vec!["tenant"]);
    }
}
