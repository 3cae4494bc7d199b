//! The policy a model's SQL is checked against: which tables and columns are visible, which
//! columns are redacted, which functions may be called, and the limits every query obeys.
//!
//! CORE: pure values, built once from the validated config (and, for tables declared with
//! `columns = "all"`, from the catalog at start-up). Nothing here does I/O.

use std::collections::{BTreeMap, BTreeSet};

pub mod scopes;

use crate::redact::Strategy;

/// A schema-qualified relation name, already folded the way PostgreSQL folds it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QualifiedName {
    pub schema: String,
    pub name: String,
}

impl std::fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// One visible column of an allowlisted table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnRule {
    pub name: String,
    pub redact: Option<Strategy>,
}

/// Which columns of a table a model may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Columns {
    /// Exactly these, in this order (the order `*` expands to).
    List(Vec<ColumnRule>),
    /// Every column of the table. Only used before the catalog has been read (offline
    /// `pgward check`); the server replaces it with a list at start-up.
    All { redacted: Vec<ColumnRule> },
}

/// One allowlisted table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRule {
    pub name: QualifiedName,
    pub columns: Columns,
    pub description: Option<String>,
    /// Rows the caller may see: pgward wraps every reference to the table in
    /// `(SELECT ... WHERE column = <the caller's claim>)`.
    pub row_filter: Option<RowFilter>,
}

/// `column = claim(claim)`: the row filter of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowFilter {
    pub column: String,
    pub claim: String,
}

impl TableRule {
    /// The rule for column `name`, if the model may reference it.
    pub fn column(&self, name: &str) -> Option<ColumnRule> {
        match &self.columns {
            Columns::List(cols) => cols.iter().find(|c| c.name == name).cloned(),
            Columns::All { redacted } => Some(
                redacted
                    .iter()
                    .find(|c| c.name == name)
                    .cloned()
                    .unwrap_or_else(|| ColumnRule {
                        name: name.to_string(),
                        redact: None,
                    }),
            ),
        }
    }
}

/// Function allowlist: the built-in default plus what the operator added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionAllowlist {
    /// Unqualified built-in names (resolved in `pg_catalog`).
    pub builtin: BTreeSet<String>,
    /// Operator additions as `schema.name` (or bare names, meaning `pg_catalog`).
    pub extra: BTreeSet<String>,
}

impl FunctionAllowlist {
    /// Whether a function named by folded parts may be called.
    pub fn allows(&self, parts: &[String]) -> bool {
        match parts {
            [name] => self.builtin.contains(name) || self.extra.contains(name),
            [schema, name] if schema == "pg_catalog" => {
                self.builtin.contains(name) || self.extra.contains(name)
            }
            [schema, name] => self.extra.contains(&format!("{schema}.{name}")),
            _ => false,
        }
    }
}

/// Everything the SQL check needs to decide.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Schemas unqualified table names resolve to, in order (the pinned `search_path`).
    pub schemas: Vec<String>,
    pub tables: BTreeMap<QualifiedName, TableRule>,
    pub functions: FunctionAllowlist,
    /// Most rows a call may return; PostgreSQL is asked for one more to detect truncation.
    pub max_rows: u64,
    /// Longest SQL text accepted, in bytes.
    pub max_sql_length: usize,
}

impl Policy {
    /// Looks up an allowlisted table by folded schema and name.
    pub fn table(&self, schema: &str, name: &str) -> Option<&TableRule> {
        self.tables.get(&QualifiedName {
            schema: schema.to_string(),
            name: name.to_string(),
        })
    }

    /// Resolves an unqualified table name the way PostgreSQL would with the pinned search path.
    pub fn resolve_unqualified(&self, name: &str) -> Option<&TableRule> {
        self.schemas.iter().find_map(|s| self.table(s, name))
    }
}
