//! The scoped walk over the parsed tree: resolves every relation, column and function the way
//! PostgreSQL will, records violations, and rewrites in place.

use std::collections::{BTreeSet, HashMap};
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, PoisonError};

use sqlparser::ast::{
    AccessExpr, CastKind, DataType, Distinct, Expr, Function, FunctionArg, FunctionArgExpr,
    FunctionArgumentClause, FunctionArguments, GroupByExpr, Ident, JoinConstraint, JoinOperator,
    LimitClause, ObjectName, ObjectNamePart, OrderByExpr, OrderByKind, OrderBySort, Query, Select,
    SelectFlavor, SelectItem, SelectItemQualifiedWildcardKind, SetExpr, Statement, Subscript,
    TableFactor, TableWithJoins, Value, ValueWithSpan, WildcardAdditionalOptions, WindowFrameBound,
    WindowType,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use super::functions::DENIED_FUNCTIONS;
use super::violation::{Code, Violation};
use crate::policy::{Columns, Policy, QualifiedName, TableRule};
use crate::redact::Strategy;

/// PostgreSQL truncates identifiers longer than this many bytes (NAMEDATALEN - 1); longer
/// names are refused so truncation can never make a name mean something else.
const MAX_IDENT_BYTES: usize = 63;
/// SQL keywords that read like column names but call session functions.
const SESSION_KEYWORDS: &[&str] = &[
    "current_role",
    "current_user",
    "session_user",
    "system_user",
    "user",
    "current_schema",
    "current_catalog",
];
/// Allowlisted names that PostgreSQL's grammar treats as keywords, not catalog functions: they
/// cannot be schema-qualified.
const GRAMMAR_FUNCTIONS: &[&str] = &["coalesce", "nullif", "greatest", "least"];
/// Deepest expression or query nesting the walk accepts. Long left-associative chains
/// (`1+1+...`) nest without tripping the parser's recursion limit; this bounds them before any
/// recursive step (the walk, the visitor, re-serialization) can exhaust the stack.
const MAX_DEPTH: usize = 200;
/// Nesting depth the parser accepts; deeper input is refused, never overflows the stack.
const RECURSION_LIMIT: usize = 48;

/// Whether `$n` placeholders may appear (lookup tools) or not (model SQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamMode {
    /// Model-written SQL: no placeholders.
    None,
    /// An operator's lookup tool with this many declared parameters.
    Tool { count: usize },
}

/// A result column whose values must be redacted, by position in the canonical select list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputRedaction {
    pub index: usize,
    pub column: String,
    pub strategy: Strategy,
}

/// An accepted query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The checked SQL: re-serialized from the checked, rewritten tree, literals in place.
    /// What the model is shown and `pgward check` prints.
    pub sql: String,
    /// The SQL to run: `sql` with the compared integer literals of model-written SQL lifted out
    /// as typed parameters ([`super::literals`]), re-serialized from the same tree. The same as
    /// `sql` for a lookup tool's SQL.
    pub run_sql: String,
    /// The lifted literals' values: bound as `$1`, `$2`, ... ahead of the row filters' claims.
    pub literals: Vec<i64>,
    /// Whether each call must be planned with its values
    /// ([`super::literals::plan_with_values`]); never without lifted literals.
    pub plan_each_call: bool,
    /// Output columns to redact.
    pub redactions: Vec<OutputRedaction>,
    /// The allowlisted tables the query reads.
    pub tables: Vec<QualifiedName>,
    /// The LIMIT in force on the outermost query.
    pub limit: u64,
    /// Highest `$n` used (tools only).
    pub placeholders: usize,
    /// How many columns the result has, as the check counted them (None when a table's
    /// columns are not known offline). The executor refuses a result of any other width:
    /// redaction is by position, so a miscount must never reach a client.
    pub width: Option<usize>,
    /// Claims of the caller bound after the tool's own parameters, or in `run_sql` after the
    /// lifted literals (`$n+1`, ...): the row filters of the tables read.
    pub claim_params: Vec<String>,
}

/// Checks one SQL text against the policy.
pub fn check(policy: &Policy, sql: &str, mode: ParamMode) -> Result<Checked, Vec<Violation>> {
    check_inner(policy, sql, mode, None)
}

/// [`check`], comparing the canonical text's parse with the one `kept` holds for that text
/// when it holds one (and keeping it when it does not): the same decision, without parsing a
/// text to run again. The engine keeps one [`KeptParses`] for all its calls.
pub fn check_keeping(
    policy: &Policy,
    sql: &str,
    mode: ParamMode,
    kept: &KeptParses,
) -> Result<Checked, Vec<Violation>> {
    check_inner(policy, sql, mode, Some(kept))
}

fn check_inner(
    policy: &Policy,
    sql: &str,
    mode: ParamMode,
    kept: Option<&KeptParses>,
) -> Result<Checked, Vec<Violation>> {
    if sql.len() > policy.max_sql_length {
        return Err(vec![Violation::new(
            Code::SqlTooLong,
            format!(
                "the SQL is {} bytes long; the limit is {} bytes",
                sql.len(),
                policy.max_sql_length
            ),
        )]);
    }
    if sql.contains('\0') {
        return Err(vec![Violation::new(
            Code::ParseError,
            "the SQL contains a NUL character",
        )]);
    }
    let dialect = PostgreSqlDialect {};
    let parsed = Parser::new(&dialect)
        .with_recursion_limit(RECURSION_LIMIT)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements());
    let mut statements = match parsed {
        Ok(s) => s,
        Err(e) => {
            return Err(vec![Violation::new(
                Code::ParseError,
                format!(
                    "could not parse the SQL: {}",
                    strip_parser_prefix(&e.to_string())
                ),
            )]);
        }
    };
    if statements.len() > 1 {
        return Err(vec![Violation::new(
            Code::MultipleStatements,
            format!(
                "send exactly one statement; this text holds {}",
                statements.len()
            ),
        )]);
    }
    let Some(mut statement) = statements.pop() else {
        return Err(vec![Violation::new(
            Code::EmptyStatement,
            "the SQL holds no statement",
        )]);
    };
    let mut checker = Checker::new(policy, mode);
    checker.check_statement(&mut statement);
    if checker.violations.is_empty() {
        checker.double_check(&statement);
    }
    if !checker.violations.is_empty() {
        checker.violations.dedup();
        return Err(checker.violations);
    }
    let first = match mode {
        ParamMode::None => 1,
        ParamMode::Tool { count } => count + 1,
    };
    // Model-written SQL only: a tool's SQL is the same text on every call already.
    let mut lifted = match mode {
        ParamMode::None => {
            let mut tree = statement.clone();
            let values = super::literals::lift(&mut tree, first);
            (!values.is_empty()).then_some((tree, values))
        }
        ParamMode::Tool { .. } => None,
    };
    let claim_params = inject_row_filters(&mut statement, policy, first)?;
    // The claims follow the lifted literals: the same claims, in the same order. Should the
    // lifted tree not come out the same way (say its text nests one level too deep to parse
    // back), the query runs with its literals in place instead.
    let run = lifted.as_mut().and_then(|(tree, values)| {
        let claims = inject_row_filters(tree, policy, first + values.len()).ok()?;
        let text = canonical_text(tree, kept).ok()?;
        let plan = super::literals::plan_with_values(tree);
        (claims == claim_params).then(|| (text, std::mem::take(values), plan))
    });
    let (sql, run_sql, literals, plan_each_call) = match run {
        // Only the text that runs must parse back to its tree: the text shown differs from it
        // in integer literals alone, and the fuzz invariant (`roundtrip`) holds the two to
        // that.
        Some((text, values, plan)) => (statement.to_string(), text, values, plan),
        None => {
            let sql = canonical_text(&statement, kept)?;
            (sql.clone(), sql, Vec::new(), false)
        }
    };
    Ok(Checked {
        sql,
        run_sql,
        literals,
        plan_each_call,
        redactions: checker.redactions,
        tables: checker.tables.into_iter().collect(),
        limit: checker.limit,
        placeholders: checker.max_placeholder,
        width: checker.width,
        claim_params,
    })
}

fn inject_row_filters(
    statement: &mut Statement,
    policy: &Policy,
    first: usize,
) -> Result<Vec<String>, Vec<Violation>> {
    super::rowfilter::inject(statement, policy, first)
        .map_err(|e| vec![Violation::new(Code::UnsupportedSyntax, e.to_string())])
}

/// The text of the checked tree.
///
/// INVARIANT: the text PostgreSQL runs means the tree that was checked. sqlparser's serializer
/// leaves a quote inside a string value undoubled when it follows a backslash or another quote
/// (the value `a\'` comes out as `'a\''`), so in the text a literal could end early and what
/// follows it would run unchecked. The text is parsed again and must give back exactly the
/// checked tree; otherwise the query is refused.
fn canonical_text(
    statement: &Statement,
    kept: Option<&KeptParses>,
) -> Result<String, Vec<Violation>> {
    let sql = statement.to_string();
    let parses_back = match kept {
        Some(kept) => kept.parses_back_to(&sql, statement),
        None => reparse(&sql).as_ref() == Some(statement),
    };
    if !parses_back {
        return Err(vec![Violation::new(
            Code::UnsupportedSyntax,
            "a string literal in this query cannot be passed on exactly (a quote after a \
             backslash, or two quotes in a row, inside a string); write it another way, \
             e.g. with chr(39) for a quote",
        )]);
    }
    Ok(sql)
}

/// Most texts [`KeptParses`] holds; when full it starts over.
const KEPT_PARSES: usize = 8;
/// Longest text whose parse [`KeptParses`] keeps; longer texts are parsed every time. A parse
/// tree takes far more memory than its text (up to some 400 bytes a byte for a dense select
/// list), so the two bounds hold the kept trees to about 1.6 MB at worst; a typical query's
/// tree takes some 15 KB.
const KEPT_PARSE_TEXT_BYTES: usize = 512;

/// The parses of recent canonical texts, by text. Model lookups that differ only in a lifted
/// integer share one text to run, so it is parsed once, not on every call.
#[derive(Debug, Default)]
pub struct KeptParses {
    entries: Mutex<HashMap<String, Arc<Option<Statement>>>>,
}

impl KeptParses {
    /// Whether `sql` parses back to exactly `statement`. Parsing is a pure function of the
    /// text (one dialect, one recursion limit), so comparing with a kept parse of the same text
    /// is the same check as parsing it again.
    fn parses_back_to(&self, sql: &str, statement: &Statement) -> bool {
        if sql.len() > KEPT_PARSE_TEXT_BYTES {
            return reparse(sql).as_ref() == Some(statement);
        }
        let known = self.lock().get(sql).cloned();
        let parsed = match known {
            Some(parsed) => parsed,
            None => {
                let parsed = Arc::new(reparse(sql));
                let mut entries = self.lock();
                if entries.len() >= KEPT_PARSES {
                    entries.clear();
                }
                entries.insert(sql.to_owned(), Arc::clone(&parsed));
                parsed
            }
        };
        // Compared outside the lock, so concurrent checks do not wait on each other.
        parsed.as_ref().as_ref() == Some(statement)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Option<Statement>>>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The one statement `sql` holds, parsed as [`check`] parses.
fn reparse(sql: &str) -> Option<Statement> {
    let dialect = PostgreSqlDialect {};
    let mut statements = Parser::new(&dialect)
        .with_recursion_limit(RECURSION_LIMIT)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements())
        .ok()?;
    if statements.len() != 1 {
        return None;
    }
    statements.pop()
}

fn strip_parser_prefix(msg: &str) -> String {
    msg.strip_prefix("sql parser error: ")
        .unwrap_or(msg)
        .to_string()
}

/// How PostgreSQL folds an identifier: unquoted names fold ASCII letters to lower case, double
/// quoted names are exact. Other quote styles are not PostgreSQL and are refused.
fn fold(id: &Ident) -> Result<String, Violation> {
    let name = match id.quote_style {
        None => id.value.to_ascii_lowercase(),
        Some('"') => id.value.clone(),
        Some(q) => {
            return Err(Violation::new(
                Code::UnsupportedSyntax,
                format!("identifiers quoted with `{q}` are not PostgreSQL; use double quotes"),
            ));
        }
    };
    if name.len() > MAX_IDENT_BYTES {
        return Err(Violation::new(
            Code::IdentifierTooLong,
            format!("identifier `{name}` is longer than {MAX_IDENT_BYTES} bytes"),
        ));
    }
    Ok(name)
}

fn quoted(name: &str) -> Ident {
    Ident::with_quote('"', name)
}

/// One FROM-clause item visible to column references.
struct Entry<'p> {
    /// The name a qualifier uses: the alias, or the bare table name.
    refname: String,
    /// Set when the item is a table referenced without alias, so `schema.table.col` works.
    qualified: Option<QualifiedName>,
    kind: EntryKind<'p>,
}

enum EntryKind<'p> {
    Table(&'p TableRule),
    /// A subquery or CTE: its output columns are exactly known (they were checked).
    Derived(Vec<String>),
}

#[derive(Default)]
struct Level<'p> {
    entries: Vec<Entry<'p>>,
    /// Columns merged by `JOIN ... USING`: a bare name refers to the merged column.
    merged: Vec<String>,
}

/// One select-list output, for ORDER BY / GROUP BY references and redaction.
struct Output {
    name: String,
    redacted: bool,
}

struct Checker<'p> {
    policy: &'p Policy,
    mode: ParamMode,
    violations: Vec<Violation>,
    levels: Vec<Level<'p>>,
    /// Visible CTEs, innermost last: name and output columns.
    ctes: Vec<(String, Vec<String>)>,
    redactions: Vec<crate::sql::OutputRedaction>,
    tables: BTreeSet<QualifiedName>,
    limit: u64,
    max_placeholder: usize,
    depth: usize,
    too_deep: bool,
    width: Option<usize>,
    width_unknown: bool,
}

enum ColumnCtx {
    /// A bare column in the outermost select list: the only place a redacted column may be.
    TopBare {
        index: usize,
    },
    Other,
}

impl<'p> Checker<'p> {
    fn new(policy: &'p Policy, mode: ParamMode) -> Self {
        Self {
            policy,
            mode,
            violations: Vec::new(),
            levels: Vec::new(),
            ctes: Vec::new(),
            redactions: Vec::new(),
            tables: BTreeSet::new(),
            limit: 0,
            max_placeholder: 0,
            depth: 0,
            too_deep: false,
            width: None,
            width_unknown: false,
        }
    }

    fn deny(&mut self, code: Code, message: impl Into<String>) {
        self.violations.push(Violation::new(code, message));
    }

    fn unsupported(&mut self, what: &str) {
        self.deny(
            Code::UnsupportedSyntax,
            format!("{what} is not supported; write a plain SELECT"),
        );
    }

    fn fold(&mut self, id: &Ident) -> Option<String> {
        match fold(id) {
            Ok(n) => Some(n),
            Err(v) => {
                self.violations.push(v);
                None
            }
        }
    }

    fn fold_name(&mut self, name: &ObjectName) -> Option<Vec<String>> {
        let mut parts = Vec::with_capacity(name.0.len());
        for part in &name.0 {
            match part {
                ObjectNamePart::Identifier(id) => parts.push(self.fold(id)?),
                ObjectNamePart::Function(_) => {
                    self.unsupported("a function call inside a name");
                    return None;
                }
            }
        }
        Some(parts)
    }

    // INVARIANT: only `Statement::Query` is ever accepted. The match is exhaustive so that a
    // parser upgrade adding a statement kind stops compiling until it is classified here.
    fn check_statement(&mut self, statement: &mut Statement) {
        let keyword = statement
            .to_string()
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_uppercase();
        match statement {
            Statement::Query(query) => {
                let outputs = self.check_query(query, true);
                self.width = Some(outputs.len()).filter(|_| !self.width_unknown);
            }
            Statement::Insert { .. }
            | Statement::Update { .. }
            | Statement::Delete { .. }
            | Statement::Merge { .. } => self.deny(
                Code::DataModifying,
                format!("`{keyword}` changes data; only a read-only SELECT is allowed"),
            ),
            Statement::Analyze { .. }
            | Statement::Set { .. }
            | Statement::Truncate { .. }
            | Statement::Msck { .. }
            | Statement::Install { .. }
            | Statement::Load { .. }
            | Statement::Directory { .. }
            | Statement::Case { .. }
            | Statement::If { .. }
            | Statement::While { .. }
            | Statement::Raise { .. }
            | Statement::Call { .. }
            | Statement::Copy { .. }
            | Statement::CopyIntoSnowflake { .. }
            | Statement::Open { .. }
            | Statement::Close { .. }
            | Statement::CreateView { .. }
            | Statement::CreateTable { .. }
            | Statement::CreateVirtualTable { .. }
            | Statement::CreateIndex { .. }
            | Statement::CreateRole { .. }
            | Statement::CreateSecret { .. }
            | Statement::CreateServer { .. }
            | Statement::CreateForeignTable { .. }
            | Statement::CreateForeignDataWrapper { .. }
            | Statement::CreateUserMapping { .. }
            | Statement::CreatePolicy { .. }
            | Statement::CreateRule { .. }
            | Statement::CreateConnector { .. }
            | Statement::CreateOperator { .. }
            | Statement::CreateOperatorFamily { .. }
            | Statement::CreateOperatorClass { .. }
            | Statement::CreateTextSearch { .. }
            | Statement::CreateAggregate { .. }
            | Statement::AlterTable { .. }
            | Statement::AlterSchema { .. }
            | Statement::AlterIndex { .. }
            | Statement::AlterView { .. }
            | Statement::AlterFunction { .. }
            | Statement::AlterType { .. }
            | Statement::AlterCollation { .. }
            | Statement::AlterOperator { .. }
            | Statement::AlterOperatorFamily { .. }
            | Statement::AlterOperatorClass { .. }
            | Statement::AlterTextSearch { .. }
            | Statement::AlterRole { .. }
            | Statement::AlterPolicy { .. }
            | Statement::AlterTrigger { .. }
            | Statement::AlterConnector { .. }
            | Statement::AlterSession { .. }
            | Statement::AttachDatabase { .. }
            | Statement::AttachDuckDBDatabase { .. }
            | Statement::DetachDuckDBDatabase { .. }
            | Statement::Drop { .. }
            | Statement::DropFunction { .. }
            | Statement::DropDomain { .. }
            | Statement::DropProcedure { .. }
            | Statement::DropSecret { .. }
            | Statement::DropPolicy { .. }
            | Statement::DropRule { .. }
            | Statement::DropConnector { .. }
            | Statement::Declare { .. }
            | Statement::CreateExtension { .. }
            | Statement::CreateCollation { .. }
            | Statement::DropExtension { .. }
            | Statement::DropOperator { .. }
            | Statement::DropOperatorFamily { .. }
            | Statement::DropOperatorClass { .. }
            | Statement::Fetch { .. }
            | Statement::Flush { .. }
            | Statement::Discard { .. }
            | Statement::ShowFunctions { .. }
            | Statement::ShowVariable { .. }
            | Statement::ShowStatus { .. }
            | Statement::ShowVariables { .. }
            | Statement::ShowCreate { .. }
            | Statement::ShowColumns { .. }
            | Statement::ShowCatalogs { .. }
            | Statement::ShowDatabases { .. }
            | Statement::ShowProcessList { .. }
            | Statement::ShowSchemas { .. }
            | Statement::ShowCharset { .. }
            | Statement::ShowObjects { .. }
            | Statement::ShowTables { .. }
            | Statement::ShowViews { .. }
            | Statement::ShowCollation { .. }
            | Statement::Use { .. }
            | Statement::StartTransaction { .. }
            | Statement::Comment { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::CreateSchema { .. }
            | Statement::CreateDatabase { .. }
            | Statement::CreateFunction { .. }
            | Statement::CreateTrigger { .. }
            | Statement::DropTrigger { .. }
            | Statement::CreateProcedure { .. }
            | Statement::CreateMacro { .. }
            | Statement::CreateStage { .. }
            | Statement::CreateFileFormat { .. }
            | Statement::CreateWarehouse { .. }
            | Statement::Assert { .. }
            | Statement::Grant { .. }
            | Statement::GrantRole { .. }
            | Statement::Deny { .. }
            | Statement::Revoke { .. }
            | Statement::RevokeRole { .. }
            | Statement::AlterDefaultPrivileges { .. }
            | Statement::Deallocate { .. }
            | Statement::Execute { .. }
            | Statement::Prepare { .. }
            | Statement::Kill { .. }
            | Statement::ExplainTable { .. }
            | Statement::Explain { .. }
            | Statement::Savepoint { .. }
            | Statement::ReleaseSavepoint { .. }
            | Statement::Cache { .. }
            | Statement::UNCache { .. }
            | Statement::CreateSequence { .. }
            | Statement::CreateDomain { .. }
            | Statement::CreateType { .. }
            | Statement::Pragma { .. }
            | Statement::Lock { .. }
            | Statement::LockTables { .. }
            | Statement::UnlockTables
            | Statement::Unload { .. }
            | Statement::OptimizeTable { .. }
            | Statement::LISTEN { .. }
            | Statement::UNLISTEN { .. }
            | Statement::NOTIFY { .. }
            | Statement::LoadData { .. }
            | Statement::RenameTable { .. }
            | Statement::List { .. }
            | Statement::Put { .. }
            | Statement::Remove { .. }
            | Statement::RaisError { .. }
            | Statement::Throw { .. }
            | Statement::Print { .. }
            | Statement::WaitFor { .. }
            | Statement::Return { .. }
            | Statement::ExportData { .. }
            | Statement::CreateUser { .. }
            | Statement::AlterUser { .. }
            | Statement::Vacuum { .. }
            | Statement::Reset { .. }
            | Statement::RefreshMaterializedView { .. } => self.deny(
                Code::NotSelect,
                format!("`{keyword}` statements are not allowed; only a read-only SELECT is"),
            ),
        }
    }

    /// Checks a query; returns its output column names.
    fn check_query(&mut self, query: &mut Query, top: bool) -> Vec<String> {
        if !self.enter() {
            return Vec::new();
        }
        let outputs = self.check_query_inner(query, top);
        self.depth -= 1;
        outputs
    }

    fn check_query_inner(&mut self, query: &mut Query, top: bool) -> Vec<String> {
        let cte_mark = self.ctes.len();
        if let Some(with) = &mut query.with {
            let recursive = with.recursive;
            for cte in &mut with.cte_tables {
                if cte.from.is_some() {
                    self.unsupported("`FROM` in a CTE definition");
                }
                let Some(name) = self.fold(&cte.alias.name) else {
                    continue;
                };
                let alias_cols: Vec<String> = cte
                    .alias
                    .columns
                    .iter()
                    .filter_map(|c| self.fold(&c.name))
                    .collect();
                if recursive {
                    if alias_cols.is_empty() {
                        self.deny(
                            Code::UnsupportedSyntax,
                            format!(
                                "recursive CTE `{name}` needs a column list, e.g. `WITH RECURSIVE {name}(a, b) AS (...)`"
                            ),
                        );
                    }
                    // The body may refer to itself by the listed names; afterwards the CTE has
                    // every column of its body (PostgreSQL keeps columns beyond the list).
                    self.ctes.push((name.clone(), alias_cols.clone()));
                    let outputs = self.check_query(&mut cte.query, false);
                    if let Some(slot) = self.ctes.last_mut() {
                        slot.1 = rename_outputs(outputs, &alias_cols);
                    }
                } else {
                    let outputs = self.check_query(&mut cte.query, false);
                    let cols = rename_outputs(outputs, &alias_cols);
                    self.ctes.push((name, cols));
                }
            }
        }
        let outputs = match &mut *query.body {
            SetExpr::Select(select) => self.check_select(select, top, query.order_by.as_mut()),
            body => {
                let outputs = self.check_set_expr(body);
                if let Some(order_by) = &mut query.order_by {
                    let outs: Vec<Output> = outputs
                        .iter()
                        .map(|n| Output {
                            name: n.clone(),
                            redacted: false,
                        })
                        .collect();
                    self.check_order_by_outputs_only(order_by, &outs);
                }
                outputs
            }
        };
        self.check_limit(query, top);
        if query.fetch.is_some() {
            self.unsupported("`FETCH FIRST`; use LIMIT");
        }
        if !query.locks.is_empty() {
            self.deny(
                Code::LockingClause,
                "locking clauses (`FOR UPDATE`, `FOR SHARE`, ...) are not allowed",
            );
        }
        if query.for_clause.is_some()
            || query.settings.is_some()
            || query.format_clause.is_some()
            || !query.pipe_operators.is_empty()
        {
            self.unsupported("this query clause");
        }
        self.ctes.truncate(cte_mark);
        outputs
    }

    fn check_limit(&mut self, query: &mut Query, top: bool) {
        let cap = self.policy.max_rows.saturating_add(1);
        match &mut query.limit_clause {
            None => {
                if top {
                    query.limit_clause = Some(LimitClause::LimitOffset {
                        limit: Some(number(cap)),
                        offset: None,
                        limit_by: vec![],
                    });
                    self.limit = cap;
                }
            }
            Some(LimitClause::LimitOffset {
                limit,
                offset,
                limit_by,
            }) => {
                if !limit_by.is_empty() {
                    self.unsupported("`LIMIT BY`");
                }
                if let Some(off) = offset
                    && constant_u64(&off.value).is_none()
                {
                    self.deny(
                        Code::NonConstantLimit,
                        "OFFSET must be a non-negative integer constant",
                    );
                }
                match limit {
                    None => {
                        if top {
                            *limit = Some(number(cap));
                            self.limit = cap;
                        }
                    }
                    Some(expr) => match constant_u64(expr) {
                        None => self.deny(
                            Code::NonConstantLimit,
                            "LIMIT must be a non-negative integer constant",
                        ),
                        Some(n) => {
                            if top {
                                let n = n.min(cap);
                                *expr = number(n);
                                self.limit = n;
                            }
                        }
                    },
                }
            }
            Some(LimitClause::OffsetCommaLimit { .. }) => {
                self.unsupported("`LIMIT offset, count`; use LIMIT ... OFFSET ...");
            }
        }
    }

    fn check_set_expr(&mut self, body: &mut SetExpr) -> Vec<String> {
        match body {
            SetExpr::Select(select) => self.check_select(select, false, None),
            SetExpr::Query(query) => self.check_query(query, false),
            SetExpr::SetOperation { left, right, .. } => {
                if !self.enter() {
                    return Vec::new();
                }
                let outputs = self.check_set_expr(left);
                self.check_set_expr(right);
                self.depth -= 1;
                outputs
            }
            SetExpr::Values(values) => {
                let mut width = 0;
                for row in &mut values.rows {
                    width = width.max(row.len());
                    for expr in row.iter_mut() {
                        self.check_expr(expr);
                    }
                }
                (1..=width).map(|i| format!("column{i}")).collect()
            }
            SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_) => {
                self.deny(
                    Code::DataModifying,
                    "data-modifying statements are not allowed, not even inside WITH",
                );
                vec![]
            }
            SetExpr::Table(_) => {
                self.unsupported("`TABLE name`");
                vec![]
            }
        }
    }

    fn check_select(
        &mut self,
        select: &mut Select,
        top: bool,
        order_by: Option<&mut sqlparser::ast::OrderBy>,
    ) -> Vec<String> {
        if select.into.is_some() {
            self.deny(
                Code::SelectInto,
                "`SELECT INTO` creates a table; it is not allowed",
            );
        }
        if select.top.is_some()
            || !select.optimizer_hints.is_empty()
            || select.select_modifiers.is_some()
            || select.exclude.is_some()
            || !select.lateral_views.is_empty()
            || select.prewhere.is_some()
            || !select.connect_by.is_empty()
            || !select.cluster_by.is_empty()
            || !select.distribute_by.is_empty()
            || !select.sort_by.is_empty()
            || select.qualify.is_some()
            || select.value_table_mode.is_some()
            || !matches!(select.flavor, SelectFlavor::Standard)
        {
            self.unsupported("this SELECT clause");
        }
        if !select.named_window.is_empty() {
            self.unsupported("a `WINDOW` clause; write the window inline with OVER (...)");
        }

        self.levels.push(Level::default());
        for table in &mut select.from {
            self.check_table_with_joins(table);
        }

        let distinct = select.distinct.is_some();
        let outputs = self.check_projection(select, top);
        if top && distinct && outputs.iter().any(|o| o.redacted) {
            self.deny(
                Code::RedactedColumnUse,
                "DISTINCT compares the hidden values of redacted columns; select them without DISTINCT",
            );
        }
        if let Some(Distinct::On(exprs)) = &mut select.distinct {
            for expr in exprs {
                self.check_expr(expr);
            }
        }
        if let Some(selection) = &mut select.selection {
            self.check_expr(selection);
        }
        match &mut select.group_by {
            GroupByExpr::All(_) => self.unsupported("`GROUP BY ALL`"),
            GroupByExpr::Expressions(exprs, modifiers) => {
                if !modifiers.is_empty() {
                    self.unsupported("GROUP BY modifiers");
                }
                for expr in exprs {
                    self.check_group_item(expr, &outputs);
                }
            }
        }
        if let Some(having) = &mut select.having {
            self.check_expr(having);
        }
        if let Some(order_by) = order_by {
            match &mut order_by.kind {
                OrderByKind::All(_) => self.unsupported("`ORDER BY ALL`"),
                OrderByKind::Expressions(items) => {
                    for item in items {
                        self.check_order_item(item, &outputs, true);
                    }
                }
            }
            if order_by.interpolate.is_some() {
                self.unsupported("`INTERPOLATE`");
            }
        }
        self.levels.pop();
        outputs.into_iter().map(|o| o.name).collect()
    }

    fn check_position(&mut self, pos: u64, outputs: &[Output], clause: &str) {
        let index = usize::try_from(pos).unwrap_or(usize::MAX);
        match index.checked_sub(1).and_then(|i| outputs.get(i)) {
            Some(o) if o.redacted => self.deny(
                Code::RedactedColumnUse,
                format!(
                    "{clause} {pos} refers to redacted column `{}`; redacted columns may only be selected",
                    o.name
                ),
            ),
            Some(_) => {}
            None => self.deny(
                Code::UnsupportedSyntax,
                format!("{clause} position {pos} is not in the select list"),
            ),
        }
    }

    /// A numeric constant in ORDER BY or GROUP BY is a position in the select list. Returns
    /// true when `expr` was one (and has been checked).
    fn check_position_literal(&mut self, expr: &Expr, outputs: &[Output], clause: &str) -> bool {
        let Some(text) = number_literal(expr) else {
            return false;
        };
        // Only plain decimal positions are accepted: other integer spellings (0x1, 0b1, 1_0)
        // are positions to newer PostgreSQL releases, and must not slip past this check.
        match text.parse::<u64>() {
            Ok(pos) if text.bytes().all(|b| b.is_ascii_digit()) => {
                self.check_position(pos, outputs, clause)
            }
            _ => self.deny(
                Code::UnsupportedSyntax,
                format!("{clause} `{text}`: write positions as plain decimal integers"),
            ),
        }
        true
    }

    fn check_group_item(&mut self, expr: &mut Expr, outputs: &[Output]) {
        if self.check_position_literal(expr, outputs, "GROUP BY") {
            return;
        }
        match expr {
            Expr::Rollup(sets) | Expr::Cube(sets) | Expr::GroupingSets(sets) => {
                for set in sets {
                    for item in set {
                        self.check_group_item(item, outputs);
                    }
                }
            }
            Expr::Identifier(id) => {
                // PostgreSQL resolves a GROUP BY name against input columns first and output
                // aliases second; an input column may be hidden, so an alias is usable only
                // when no table in FROM could hold a column of that name.
                if let Ok(name) = fold(id)
                    && let Some(o) = outputs.iter().find(|o| o.name == name)
                    && !self.visible_in_current_level(&name)
                {
                    if o.redacted {
                        self.deny(
                            Code::RedactedColumnUse,
                            format!("GROUP BY `{name}` groups by a redacted column; redacted columns may only be selected"),
                        );
                    } else if self.current_level_has_tables() {
                        self.deny(
                            Code::ColumnNotAllowed,
                            format!("GROUP BY `{name}`: PostgreSQL would look for an input column `{name}` before the output alias, and it may be hidden; group by the expression or its position"),
                        );
                    }
                    return;
                }
                self.check_expr(expr);
            }
            _ => self.check_expr(expr),
        }
    }

    fn visible_in_current_level(&self, name: &str) -> bool {
        self.levels.last().is_some_and(|l| {
            l.merged.iter().any(|m| m == name)
                || l.entries.iter().any(|e| match &e.kind {
                    EntryKind::Table(rule) => rule.column(name).is_some(),
                    EntryKind::Derived(cols) => cols.iter().any(|c| c == name),
                })
        })
    }

    fn current_level_has_tables(&self) -> bool {
        self.levels.last().is_some_and(|l| {
            l.entries
                .iter()
                .any(|e| matches!(e.kind, EntryKind::Table(_)))
        })
    }

    /// `ORDER BY x USING <operator>` names an operator the allowlist never sees.
    fn check_order_options(&mut self, item: &OrderByExpr) {
        if matches!(item.options.sort, Some(OrderBySort::Using(_))) {
            self.deny(
                Code::OperatorNotAllowed,
                "`ORDER BY ... USING <operator>` is not allowed; use ASC or DESC",
            );
        }
        if item.with_fill.is_some() {
            self.unsupported("`WITH FILL`");
        }
    }

    fn check_order_item(&mut self, item: &mut OrderByExpr, outputs: &[Output], inputs: bool) {
        self.check_order_options(item);
        if self.check_position_literal(&item.expr, outputs, "ORDER BY") {
            return;
        }
        // A bare name in ORDER BY matches an output column first, as in PostgreSQL.
        if let Expr::Identifier(id) = &item.expr
            && let Ok(name) = fold(id)
            && let Some(o) = outputs.iter().find(|o| o.name == name)
        {
            if o.redacted {
                self.deny(
                            Code::RedactedColumnUse,
                            format!(
                                "ORDER BY `{name}` sorts by a redacted column; redacted columns may only be selected"
                            ),
                        );
            }
            return;
        }
        if inputs {
            self.check_expr(&mut item.expr);
        } else {
            self.deny(
                Code::UnsupportedSyntax,
                "ORDER BY on a UNION/INTERSECT/EXCEPT may only name output columns or positions",
            );
        }
    }

    fn check_order_by_outputs_only(
        &mut self,
        order_by: &mut sqlparser::ast::OrderBy,
        outputs: &[Output],
    ) {
        match &mut order_by.kind {
            OrderByKind::All(_) => self.unsupported("`ORDER BY ALL`"),
            OrderByKind::Expressions(items) => {
                for item in items {
                    self.check_order_item(item, outputs, false);
                }
            }
        }
    }

    fn check_projection(&mut self, select: &mut Select, top: bool) -> Vec<Output> {
        let items = std::mem::take(&mut select.projection);
        let mut projection = Vec::with_capacity(items.len());
        let mut outputs = Vec::with_capacity(items.len());
        for item in items {
            match item {
                SelectItem::Wildcard(opts) => {
                    self.check_wildcard_options(&opts);
                    let count = self.levels.last().map_or(0, |l| l.entries.len());
                    // With a FROM clause whose items were refused, the refusal already says why.
                    if count == 0 && select.from.is_empty() {
                        self.deny(Code::UnsupportedSyntax, "`*` needs a FROM clause");
                    }
                    for i in 0..count {
                        self.expand_entry(i, top, &mut projection, &mut outputs, &opts);
                    }
                }
                SelectItem::QualifiedWildcard(kind, opts) => {
                    self.check_wildcard_options(&opts);
                    let SelectItemQualifiedWildcardKind::ObjectName(name) = &kind else {
                        self.unsupported("`expr.*`");
                        continue;
                    };
                    let Some(parts) = self.fold_name(name) else {
                        continue;
                    };
                    match self.find_entry_current(&parts) {
                        Some(i) => self.expand_entry(i, top, &mut projection, &mut outputs, &opts),
                        None => self.deny(
                            Code::TableNotAllowed,
                            format!(
                                "`{}.*` does not name a table in this FROM clause",
                                parts.join(".")
                            ),
                        ),
                    }
                }
                SelectItem::UnnamedExpr(mut expr) => {
                    let index = outputs.len();
                    let (name, redacted) = self.check_select_expr(&mut expr, top, index);
                    outputs.push(Output { name, redacted });
                    projection.push(SelectItem::UnnamedExpr(expr));
                }
                SelectItem::ExprWithAlias { mut expr, alias } => {
                    let index = outputs.len();
                    let (_, redacted) = self.check_select_expr(&mut expr, top, index);
                    let name = self.fold(&alias).unwrap_or_default();
                    if let Some(r) = self.redactions.last_mut()
                        && redacted
                        && r.index == index
                    {
                        r.column = name.clone();
                    }
                    outputs.push(Output { name, redacted });
                    projection.push(SelectItem::ExprWithAlias { expr, alias });
                }
                SelectItem::ExprWithAliases { .. } => {
                    self.unsupported("several aliases for one select item");
                }
            }
        }
        select.projection = projection;
        outputs
    }

    fn check_wildcard_options(&mut self, opts: &WildcardAdditionalOptions) {
        if opts.opt_ilike.is_some()
            || opts.opt_exclude.is_some()
            || opts.opt_except.is_some()
            || opts.opt_replace.is_some()
            || opts.opt_rename.is_some()
            || opts.opt_alias.is_some()
        {
            self.unsupported("options on `*`");
        }
    }

    /// A select-list expression; a bare column at the top level may be a redacted one.
    fn check_select_expr(&mut self, expr: &mut Expr, top: bool, index: usize) -> (String, bool) {
        let name = output_name(expr);
        let before = self.redactions.len();
        match expr {
            Expr::Identifier(id) if top => {
                let parts = vec![id.clone()];
                self.resolve_column(&parts, ColumnCtx::TopBare { index });
            }
            Expr::CompoundIdentifier(parts) if top => {
                let parts = parts.clone();
                self.resolve_column(&parts, ColumnCtx::TopBare { index });
            }
            _ => self.check_expr(expr),
        }
        (name, self.redactions.len() > before)
    }

    /// Expands `*` or `t.*` for entry `i` of the current level into explicit columns.
    fn expand_entry(
        &mut self,
        i: usize,
        top: bool,
        projection: &mut Vec<SelectItem>,
        outputs: &mut Vec<Output>,
        opts: &WildcardAdditionalOptions,
    ) {
        let Some(entry) = self.levels.last().and_then(|l| l.entries.get(i)) else {
            return;
        };
        let refname = entry.refname.clone();
        let columns: Vec<(String, Option<Strategy>)> = match &entry.kind {
            EntryKind::Derived(cols) => {
                // A subquery's or CTE's columns hold only checked values (never a redacted
                // one), and their names are PostgreSQL's to give: keep `t.*` as written.
                if refname.is_empty() {
                    self.deny(
                        Code::UnsupportedSyntax,
                        "give the subquery in FROM an alias so `*` can name its columns",
                    );
                    return;
                }
                let cols = cols.clone();
                projection.push(SelectItem::QualifiedWildcard(
                    SelectItemQualifiedWildcardKind::ObjectName(ObjectName::from(vec![quoted(
                        &refname,
                    )])),
                    opts.clone(),
                ));
                outputs.extend(cols.into_iter().map(|name| Output {
                    name,
                    redacted: false,
                }));
                return;
            }
            EntryKind::Table(rule) => match &rule.columns {
                Columns::List(cols) => cols
                    .iter()
                    .filter(|c| c.redact != Some(Strategy::Drop))
                    .map(|c| (c.name.clone(), c.redact))
                    .collect(),
                Columns::All { redacted } => {
                    if redacted.is_empty() {
                        // Without the catalog the columns are unknown; every column is
                        // visible, so `t.*` keeps its meaning.
                        self.width_unknown = true;
                        projection.push(SelectItem::QualifiedWildcard(
                            SelectItemQualifiedWildcardKind::ObjectName(ObjectName::from(vec![
                                quoted(&refname),
                            ])),
                            opts.clone(),
                        ));
                        outputs.push(Output {
                            name: "*".into(),
                            redacted: false,
                        });
                    } else {
                        self.deny(
                            Code::UnsupportedSyntax,
                            format!(
                                "`*` over `{refname}` needs its column list, which is read from the database at start-up"
                            ),
                        );
                    }
                    return;
                }
            },
        };
        if refname.is_empty() {
            self.deny(
                Code::UnsupportedSyntax,
                "give the subquery in FROM an alias so `*` can name its columns",
            );
            return;
        }
        for (column, strategy) in columns {
            let index = outputs.len();
            let redacted = strategy.is_some();
            if let Some(strategy) = strategy {
                if top {
                    self.redactions.push(crate::sql::OutputRedaction {
                        index,
                        column: column.clone(),
                        strategy,
                    });
                } else {
                    self.deny(
                        Code::RedactedColumnUse,
                        format!(
                            "`*` here would use redacted column `{refname}.{column}` outside the outermost select list; name the columns you need"
                        ),
                    );
                }
            }
            projection.push(SelectItem::UnnamedExpr(Expr::CompoundIdentifier(vec![
                quoted(&refname),
                quoted(&column),
            ])));
            outputs.push(Output {
                name: column,
                redacted,
            });
        }
    }

    fn find_entry_current(&self, parts: &[String]) -> Option<usize> {
        let level = self.levels.last()?;
        level.entries.iter().position(|e| entry_matches(e, parts))
    }

    fn check_table_with_joins(&mut self, table: &mut TableWithJoins) {
        // A join's ON and USING see only the items of its own join tree (PostgreSQL scoping),
        // not the other comma-separated FROM items of the level.
        let start = self.levels.last().map_or(0, |l| l.entries.len());
        self.check_table_factor(&mut table.relation);
        for join in &mut table.joins {
            let right_start = self.levels.last().map_or(0, |l| l.entries.len());
            self.check_table_factor(&mut join.relation);
            match &mut join.join_operator {
                JoinOperator::Join(c)
                | JoinOperator::Inner(c)
                | JoinOperator::Left(c)
                | JoinOperator::LeftOuter(c)
                | JoinOperator::Right(c)
                | JoinOperator::RightOuter(c)
                | JoinOperator::FullOuter(c)
                | JoinOperator::CrossJoin(c) => self.check_join_constraint(c, start, right_start),
                _ => self.unsupported("this kind of join"),
            }
        }
    }

    /// Runs `f` with only the current level's items from `start` on visible.
    fn with_items_from<T>(&mut self, start: usize, f: impl FnOnce(&mut Self) -> T) -> T {
        let hidden: Vec<Entry<'p>> = match self.levels.last_mut() {
            Some(level) => level
                .entries
                .drain(..start.min(level.entries.len()))
                .collect(),
            None => Vec::new(),
        };
        let merged = self
            .levels
            .last_mut()
            .map(|l| std::mem::take(&mut l.merged))
            .unwrap_or_default();
        let out = f(self);
        if let Some(level) = self.levels.last_mut() {
            let visible = std::mem::replace(&mut level.entries, hidden);
            level.entries.extend(visible);
            let inner = std::mem::replace(&mut level.merged, merged);
            level.merged.extend(inner);
        }
        out
    }

    fn check_join_constraint(
        &mut self,
        constraint: &mut JoinConstraint,
        start: usize,
        right_start: usize,
    ) {
        match constraint {
            JoinConstraint::On(expr) => self.with_items_from(start, |this| this.check_expr(expr)),
            JoinConstraint::Using(names) => {
                for name in names.iter() {
                    let Some(parts) = self.fold_name(name) else {
                        continue;
                    };
                    let [column] = parts.as_slice() else {
                        self.unsupported("a qualified name in USING");
                        continue;
                    };
                    self.check_using_column(column, start, right_start);
                }
            }
            JoinConstraint::Natural => self.deny(
                Code::NaturalJoin,
                "NATURAL JOIN matches every column with the same name, hidden ones included; use JOIN ... ON or USING",
            ),
            JoinConstraint::None => {}
            JoinConstraint::UsingAlias(..) => self.unsupported("`USING (...) AS alias`"),
        }
    }

    /// `USING (c)`: `c` must be visible on the join's left side (items `start..right_start`)
    /// and on its right side (items from `right_start`), and not redacted.
    fn check_using_column(&mut self, column: &str, start: usize, right_start: usize) {
        let Some(level) = self.levels.last() else {
            return;
        };
        let lookup = |e: &Entry<'_>| match &e.kind {
            EntryKind::Table(rule) => rule.column(column).map(|c| c.redact.is_some()),
            EntryKind::Derived(cols) => cols.iter().any(|c| c == column).then_some(false),
        };
        let side = |range: std::ops::Range<usize>| -> Vec<bool> {
            level
                .entries
                .get(range)
                .map(|items| items.iter().filter_map(lookup).collect())
                .unwrap_or_default()
        };
        let left = side(start..right_start);
        let right = side(right_start..level.entries.len());
        if left.is_empty() || right.is_empty() {
            self.deny(
                Code::ColumnNotAllowed,
                format!("USING column `{column}` is not available on both sides of the join"),
            );
        } else if left.contains(&true) || right.contains(&true) {
            self.deny(
                Code::RedactedColumnUse,
                format!("USING compares redacted column `{column}`; redacted columns may only be selected"),
            );
        } else if let Some(level) = self.levels.last_mut() {
            // After USING, a bare `column` names the single merged column.
            level.merged.push(column.to_string());
        }
    }

    fn check_table_factor(&mut self, factor: &mut TableFactor) {
        match factor {
            TableFactor::Table {
                name,
                alias,
                args,
                with_hints,
                version,
                with_ordinality,
                partitions,
                json_path,
                sample,
                index_directives,
                inheritance,
            } => {
                if args.is_some() {
                    self.deny(
                        Code::TableFunctionNotAllowed,
                        "functions in FROM are not allowed; select from allowlisted tables",
                    );
                    return;
                }
                if !with_hints.is_empty()
                    || version.is_some()
                    || *with_ordinality
                    || !partitions.is_empty()
                    || json_path.is_some()
                    || sample.is_some()
                    || !index_directives.is_empty()
                    || inheritance.is_some()
                {
                    self.unsupported("this table option");
                }
                let Some(parts) = self.fold_name(name) else {
                    return;
                };
                let alias_name = match alias {
                    Some(a) => {
                        if !a.columns.is_empty() {
                            self.unsupported(
                                "column aliases on a table; alias columns in the select list",
                            );
                        }
                        self.fold(&a.name)
                    }
                    None => None,
                };
                // A CTE shadows a table of the same unqualified name, as in PostgreSQL.
                if let [single] = parts.as_slice()
                    && let Some((_, cols)) = self.ctes.iter().rev().find(|(n, _)| n == single)
                {
                    let entry = Entry {
                        refname: alias_name.unwrap_or_else(|| single.clone()),
                        qualified: None,
                        kind: EntryKind::Derived(cols.clone()),
                    };
                    self.push_entry(entry);
                    return;
                }
                let rule = match parts.as_slice() {
                    [table] => self.policy.resolve_unqualified(table),
                    [schema, table] => self.policy.table(schema, table),
                    _ => {
                        self.deny(
                            Code::ThreePartName,
                            format!(
                                "`{}`: cross-database names are not allowed; use schema.table",
                                parts.join(".")
                            ),
                        );
                        return;
                    }
                };
                let Some(rule) = rule else {
                    let shown = parts.join(".");
                    let catalog = parts.len() == 2
                        && matches!(
                            parts[0].as_str(),
                            "pg_catalog" | "information_schema" | "pg_toast"
                        )
                        || parts.len() == 1 && parts[0].starts_with("pg_");
                    let hint = if catalog {
                        "system catalogs are not readable; use list_tables and describe_table"
                    } else {
                        "use list_tables to see the tables you may query"
                    };
                    self.deny(
                        Code::TableNotAllowed,
                        format!("table `{shown}` is not available; {hint}"),
                    );
                    return;
                };
                // Rewrite to the fully qualified name so the SQL that runs cannot resolve to
                // anything else, whatever the search_path.
                *name = ObjectName::from(vec![quoted(&rule.name.schema), quoted(&rule.name.name)]);
                self.tables.insert(rule.name.clone());
                let entry = Entry {
                    qualified: if alias_name.is_none() {
                        Some(rule.name.clone())
                    } else {
                        None
                    },
                    refname: alias_name.unwrap_or_else(|| rule.name.name.clone()),
                    kind: EntryKind::Table(rule),
                };
                self.push_entry(entry);
            }
            TableFactor::Derived {
                lateral,
                subquery,
                alias,
                sample,
            } => {
                if sample.is_some() {
                    self.unsupported("TABLESAMPLE");
                }
                // A subquery in FROM sees the items before it only when it is LATERAL.
                let outputs = if *lateral {
                    self.levels.push(Level::default());
                    let outputs = self.check_query_with_lateral(subquery);
                    self.levels.pop();
                    outputs
                } else {
                    let current = self.levels.pop();
                    let outputs = self.check_query(subquery, false);
                    if let Some(current) = current {
                        self.levels.push(current);
                    }
                    outputs
                };
                let (refname, alias_cols) = match alias {
                    Some(a) => (
                        self.fold(&a.name).unwrap_or_default(),
                        a.columns
                            .iter()
                            .filter_map(|c| self.fold(&c.name))
                            .collect(),
                    ),
                    None => (String::new(), vec![]),
                };
                let entry = Entry {
                    refname,
                    qualified: None,
                    kind: EntryKind::Derived(rename_outputs(outputs, &alias_cols)),
                };
                self.push_entry(entry);
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => {
                if alias.is_some() {
                    self.unsupported("an alias on a parenthesized join");
                }
                self.check_table_with_joins(table_with_joins);
            }
            TableFactor::Function { .. }
            | TableFactor::TableFunction { .. }
            | TableFactor::UNNEST { .. }
            | TableFactor::JsonTable { .. } => self.deny(
                Code::TableFunctionNotAllowed,
                "functions in FROM are not allowed; select from allowlisted tables",
            ),
            _ => self.unsupported("this FROM item"),
        }
    }

    /// A LATERAL subquery: the current level's items stay visible (as an outer level).
    fn check_query_with_lateral(&mut self, subquery: &mut Query) -> Vec<String> {
        // The empty level pushed by the caller sits above the current one; remove it so the
        // subquery's own SELECT pushes a fresh level directly above the current items.
        let placeholder = self.levels.pop();
        let outputs = self.check_query(subquery, false);
        if let Some(p) = placeholder {
            self.levels.push(p);
        }
        outputs
    }

    fn push_entry(&mut self, entry: Entry<'p>) {
        if let Some(level) = self.levels.last_mut() {
            level.entries.push(entry);
        }
    }

    /// Resolves a column reference exactly as PostgreSQL would, innermost scope first.
    fn resolve_column(&mut self, idents: &[Ident], ctx: ColumnCtx) {
        // Unquoted SQL value keywords parse as names but are session functions to PostgreSQL.
        if let [id] = idents
            && id.quote_style.is_none()
            && SESSION_KEYWORDS.contains(&id.value.to_ascii_lowercase().as_str())
        {
            self.deny(
                Code::FunctionNotAllowed,
                format!(
                    "`{}` reveals session information and is not allowed",
                    id.value.to_ascii_lowercase()
                ),
            );
            return;
        }
        let mut parts = Vec::with_capacity(idents.len());
        for id in idents {
            match self.fold(id) {
                Some(p) => parts.push(p),
                None => return,
            }
        }
        let found = match parts.as_slice() {
            [column] => self.resolve_unqualified(column),
            [qualifier @ .., column] if qualifier.len() <= 2 => {
                self.resolve_qualified(qualifier, column)
            }
            _ => {
                self.deny(
                    Code::ThreePartName,
                    format!("`{}`: name has too many parts", parts.join(".")),
                );
                return;
            }
        };
        let Some((column, strategy)) = found else {
            return;
        };
        if let Some(strategy) = strategy {
            match ctx {
                ColumnCtx::TopBare { index } => self.redactions.push(crate::sql::OutputRedaction {
                    index,
                    column,
                    strategy,
                }),
                ColumnCtx::Other => self.deny(
                    Code::RedactedColumnUse,
                    format!(
                        "column `{column}` is redacted: it may only be selected as a bare column in the outermost select list, not filtered, joined, grouped, sorted or passed to a function"
                    ),
                ),
            }
        }
    }

    fn resolve_unqualified(&mut self, column: &str) -> Option<(String, Option<Strategy>)> {
        for depth in (0..self.levels.len()).rev() {
            let level = &self.levels[depth];
            if level.merged.iter().any(|m| m == column) {
                return Some((column.to_string(), None));
            }
            let mut matches = Vec::new();
            let mut has_table = false;
            for entry in &level.entries {
                match &entry.kind {
                    EntryKind::Table(rule) => {
                        has_table = true;
                        if let Some(c) = rule.column(column) {
                            matches.push(c.redact);
                        }
                    }
                    EntryKind::Derived(cols) => {
                        if cols.iter().any(|c| c == column) {
                            matches.push(None);
                        }
                    }
                }
            }
            match matches.as_slice() {
                [strategy] => return Some((column.to_string(), *strategy)),
                [] if !has_table => {
                    if level.entries.iter().any(|e| e.refname == column) {
                        self.deny_whole_row(column);
                        return None;
                    }
                    continue;
                }
                [] => {
                    if level.entries.iter().any(|e| e.refname == column) {
                        self.deny_whole_row(column);
                    } else {
                        // A table here may hold a hidden column of this name, which PostgreSQL
                        // would bind to; so the name is refused rather than looked up further out.
                        self.deny(
                            Code::ColumnNotAllowed,
                            format!(
                                "column `{column}` is not available here; use describe_table to see the columns you may query"
                            ),
                        );
                    }
                    return None;
                }
                _ => {
                    self.deny(
                        Code::AmbiguousColumn,
                        format!("column `{column}` is ambiguous; qualify it with its table name or alias"),
                    );
                    return None;
                }
            }
        }
        self.deny(
            Code::ColumnNotAllowed,
            format!("column `{column}` is not available here; use describe_table to see the columns you may query"),
        );
        None
    }

    fn deny_whole_row(&mut self, name: &str) {
        self.deny(
            Code::WholeRowReference,
            format!("`{name}` refers to a whole row; name the columns you need"),
        );
    }

    fn resolve_qualified(
        &mut self,
        qualifier: &[String],
        column: &str,
    ) -> Option<(String, Option<Strategy>)> {
        for depth in (0..self.levels.len()).rev() {
            let level = &self.levels[depth];
            let Some(entry) = level.entries.iter().find(|e| entry_matches(e, qualifier)) else {
                continue;
            };
            let hit = match &entry.kind {
                EntryKind::Table(rule) => rule.column(column).map(|c| c.redact),
                EntryKind::Derived(cols) => cols.iter().any(|c| c == column).then_some(None),
            };
            return match hit {
                Some(strategy) => Some((column.to_string(), strategy)),
                None => {
                    self.deny(
                        Code::ColumnNotAllowed,
                        format!(
                            "column `{}.{column}` is not available; use describe_table to see the columns you may query",
                            qualifier.join(".")
                        ),
                    );
                    None
                }
            };
        }
        self.deny(
            Code::ColumnNotAllowed,
            format!(
                "`{}` is not a table or alias in the FROM clause",
                qualifier.join(".")
            ),
        );
        None
    }

    fn check_exprs(&mut self, exprs: &mut [Expr]) {
        for e in exprs {
            self.check_expr(e);
        }
    }

    fn check_opt(&mut self, expr: &mut Option<Box<Expr>>) {
        if let Some(e) = expr {
            self.check_expr(e);
        }
    }

    /// Every expression shape is listed; anything not known to be safe is refused.
    fn check_expr(&mut self, expr: &mut Expr) {
        if !self.enter() {
            return;
        }
        self.check_expr_inner(expr);
        self.depth -= 1;
    }

    /// Counts one level of nesting; false (and one violation) past [`MAX_DEPTH`].
    fn enter(&mut self) -> bool {
        if self.depth >= MAX_DEPTH {
            if !self.too_deep {
                self.too_deep = true;
                self.deny(
                    Code::UnsupportedSyntax,
                    format!("the query nests deeper than {MAX_DEPTH} levels; simplify it"),
                );
            }
            return false;
        }
        self.depth += 1;
        true
    }

    fn check_expr_inner(&mut self, expr: &mut Expr) {
        match expr {
            Expr::Identifier(id) => {
                let parts = vec![id.clone()];
                self.resolve_column(&parts, ColumnCtx::Other);
            }
            Expr::CompoundIdentifier(parts) => {
                let parts = parts.clone();
                self.resolve_column(&parts, ColumnCtx::Other);
            }
            Expr::CompoundFieldAccess { root, access_chain } => {
                self.check_expr(root);
                for access in access_chain {
                    match access {
                        AccessExpr::Subscript(Subscript::Index { index }) => self.check_expr(index),
                        AccessExpr::Subscript(Subscript::Slice {
                            lower_bound,
                            upper_bound,
                            stride,
                        }) => {
                            for e in [lower_bound, upper_bound, stride].into_iter().flatten() {
                                self.check_expr(e);
                            }
                        }
                        AccessExpr::Dot(_) => self.unsupported("field access on a composite value"),
                    }
                }
            }
            Expr::IsFalse(e)
            | Expr::IsNotFalse(e)
            | Expr::IsTrue(e)
            | Expr::IsNotTrue(e)
            | Expr::IsNull(e)
            | Expr::IsNotNull(e)
            | Expr::IsUnknown(e)
            | Expr::IsNotUnknown(e)
            | Expr::Nested(e) => self.check_expr(e),
            Expr::IsJson { expr, .. } | Expr::IsNormalized { expr, .. } => self.check_expr(expr),
            Expr::IsDistinctFrom(a, b) | Expr::IsNotDistinctFrom(a, b) => {
                self.check_expr(a);
                self.check_expr(b);
            }
            Expr::In { expr, target, .. } => {
                self.check_expr(expr);
                match target {
                    sqlparser::ast::InTarget::List(list) => self.check_exprs(list),
                    sqlparser::ast::InTarget::Subquery(q) => {
                        self.check_query(q, false);
                    }
                    _ => self.unsupported("this IN form"),
                }
            }
            Expr::Between {
                expr, low, high, ..
            } => {
                self.check_expr(expr);
                self.check_expr(low);
                self.check_expr(high);
            }
            Expr::BinaryOp { left, op, right } => {
                if matches!(
                    op,
                    sqlparser::ast::BinaryOperator::PGCustomBinaryOperator(_)
                        | sqlparser::ast::BinaryOperator::Custom(_)
                ) {
                    self.deny(
                        Code::OperatorNotAllowed,
                        format!("operator `{op}` is not allowed"),
                    );
                }
                self.check_expr(left);
                self.check_expr(right);
            }
            Expr::Like {
                expr,
                pattern,
                escape_char,
                ..
            }
            | Expr::ILike {
                expr,
                pattern,
                escape_char,
                ..
            }
            | Expr::SimilarTo {
                expr,
                pattern,
                escape_char,
                ..
            } => {
                self.check_expr(expr);
                self.check_expr(pattern);
                self.check_opt(escape_char);
            }
            Expr::AnyOp { left, right, .. } | Expr::AllOp { left, right, .. } => {
                self.check_expr(left);
                self.check_expr(right);
            }
            Expr::UnaryOp { expr, .. } => self.check_expr(expr),
            Expr::Cast {
                kind,
                expr,
                data_type,
                format,
            } => {
                if !matches!(kind, CastKind::Cast | CastKind::DoubleColon) || format.is_some() {
                    self.unsupported("this cast form");
                }
                self.check_type(data_type);
                self.check_expr(expr);
            }
            Expr::AtTimeZone {
                timestamp,
                time_zone,
            } => {
                self.check_expr(timestamp);
                self.check_expr(time_zone);
            }
            Expr::Extract { expr, .. } | Expr::Ceil { expr, .. } | Expr::Floor { expr, .. } => {
                self.check_expr(expr)
            }
            Expr::Position { expr, r#in } => {
                self.check_expr(expr);
                self.check_expr(r#in);
            }
            Expr::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => {
                self.check_expr(expr);
                self.check_opt(substring_from);
                self.check_opt(substring_for);
            }
            Expr::Trim {
                expr,
                trim_what,
                trim_characters,
                ..
            } => {
                self.check_expr(expr);
                self.check_opt(trim_what);
                if let Some(chars) = trim_characters {
                    self.check_exprs(chars);
                }
            }
            Expr::Overlay {
                expr,
                overlay_what,
                overlay_from,
                overlay_for,
            } => {
                self.check_expr(expr);
                self.check_expr(overlay_what);
                self.check_expr(overlay_from);
                self.check_opt(overlay_for);
            }
            Expr::Collate { expr, .. } => self.check_expr(expr),
            Expr::Value(v) => self.check_value(v),
            Expr::TypedString(ts) => {
                self.check_type(&ts.data_type);
                if ts.uses_odbc_syntax {
                    self.unsupported("ODBC literals");
                }
                self.check_value(&ts.value);
            }
            Expr::Function(f) => self.check_function(f),
            Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                self.check_opt(operand);
                for when in conditions {
                    self.check_expr(&mut when.condition);
                    self.check_expr(&mut when.result);
                }
                self.check_opt(else_result);
            }
            Expr::Exists { subquery, .. } | Expr::Subquery(subquery) => {
                self.check_query(subquery, false);
            }
            Expr::GroupingSets(sets) | Expr::Cube(sets) | Expr::Rollup(sets) => {
                for set in sets {
                    self.check_exprs(set);
                }
            }
            Expr::Tuple(items) => self.check_exprs(items),
            Expr::Array(array) => self.check_exprs(&mut array.elem),
            Expr::Interval(interval) => self.check_expr(&mut interval.value),
            Expr::Wildcard(_) | Expr::QualifiedWildcard(..) => self.deny(
                Code::WholeRowReference,
                "`*` and `t.*` may only stand alone in the select list; name the columns you need",
            ),
            Expr::JsonAccess { .. }
            | Expr::RLike { .. }
            | Expr::Convert { .. }
            | Expr::Prefixed { .. }
            | Expr::Struct { .. }
            | Expr::Named { .. }
            | Expr::Dictionary(_)
            | Expr::Map(_)
            | Expr::MatchAgainst { .. }
            | Expr::OuterJoin(_)
            | Expr::Prior(_)
            | Expr::Lambda(_)
            | Expr::MemberOf(_) => self.unsupported("this expression"),
        }
    }

    fn check_value(&mut self, value: &ValueWithSpan) {
        match &value.value {
            Value::Number(..)
            | Value::SingleQuotedString(_)
            | Value::DollarQuotedString(_)
            | Value::EscapedStringLiteral(_)
            | Value::UnicodeStringLiteral(_)
            | Value::NationalStringLiteral(_)
            | Value::HexStringLiteral(_)
            | Value::Boolean(_)
            | Value::Null => {}
            Value::Placeholder(p) => self.check_placeholder(p),
            _ => self.unsupported("this literal form"),
        }
    }

    fn check_placeholder(&mut self, placeholder: &str) {
        let index = placeholder
            .strip_prefix('$')
            .and_then(|n| n.parse::<usize>().ok());
        match (self.mode, index) {
            (ParamMode::None, _) => self.deny(
                Code::PlaceholderNotAllowed,
                "parameters like `$1` are not allowed in a query; write the values as literals",
            ),
            (ParamMode::Tool { count }, Some(n)) if n >= 1 && n <= count => {
                self.max_placeholder = self.max_placeholder.max(n);
            }
            (ParamMode::Tool { count }, _) => self.deny(
                Code::PlaceholderNotAllowed,
                format!(
                    "placeholder `{placeholder}` does not match a declared parameter ($1..${count})"
                ),
            ),
        }
    }

    fn check_type(&mut self, data_type: &DataType) {
        if !type_allowed(data_type) {
            self.deny(
                Code::TypeNotAllowed,
                format!("casts to `{data_type}` are not allowed"),
            );
        }
    }

    fn check_function(&mut self, function: &mut Function) {
        let Some(parts) = self.fold_name(&function.name) else {
            return;
        };
        let name = parts.join(".");
        let base = parts.last().cloned().unwrap_or_default();
        let denied = DENIED_FUNCTIONS.contains(&base.as_str());
        if denied || !self.policy.functions.allows(&parts) {
            self.deny(
                Code::FunctionNotAllowed,
                format!("function `{name}` is not allowed"),
            );
        } else if GRAMMAR_FUNCTIONS.contains(&base.as_str()) && !is_plain_keyword(&function.name) {
            // Quoted or qualified, these are ordinary function lookups through the search
            // path rather than the grammar's built-in forms.
            self.deny(
                Code::FunctionNotAllowed,
                format!("write `{base}` as the plain keyword, unquoted and unqualified"),
            );
        } else if parts.len() == 1
            && !GRAMMAR_FUNCTIONS.contains(&base.as_str())
            && matches!(function.args, FunctionArguments::List(_))
        {
            // INVARIANT: a built-in is called as `pg_catalog.name`, so a same-named function
            // in an allowed schema (searched before pg_catalog) can never stand in for it.
            function.name =
                ObjectName::from(vec![Ident::new("pg_catalog"), Ident::new(base.clone())]);
        }
        if function.uses_odbc_syntax
            || !matches!(function.parameters, FunctionArguments::None)
            || function.null_treatment.is_some()
        {
            self.unsupported("this function call form");
        }
        match &mut function.args {
            FunctionArguments::None => {}
            FunctionArguments::Subquery(_) => self.unsupported("a subquery as function arguments"),
            FunctionArguments::List(list) => {
                for arg in &mut list.args {
                    let arg_expr = match arg {
                        FunctionArg::Unnamed(a) | FunctionArg::Named { arg: a, .. } => a,
                        FunctionArg::ExprNamed { .. } => {
                            self.unsupported("this named-argument form");
                            continue;
                        }
                    };
                    match arg_expr {
                        FunctionArgExpr::Expr(e) => self.check_expr(e),
                        FunctionArgExpr::Wildcard if base == "count" => {}
                        FunctionArgExpr::Wildcard | FunctionArgExpr::QualifiedWildcard(_) => {
                            self.deny(
                                Code::WholeRowReference,
                                format!("`{name}` over a whole row is not allowed; name the columns you need"),
                            )
                        }
                        FunctionArgExpr::WildcardWithOptions(_) => {
                            self.unsupported("options on `*`")
                        }
                    }
                }
                for clause in &mut list.clauses {
                    match clause {
                        FunctionArgumentClause::OrderBy(items) => {
                            for item in items {
                                self.check_order_options(item);
                                self.check_expr(&mut item.expr);
                            }
                        }
                        _ => self.unsupported("this function argument clause"),
                    }
                }
            }
        }
        for item in &mut function.within_group {
            self.check_order_options(item);
            self.check_expr(&mut item.expr);
        }
        if let Some(filter) = &mut function.filter {
            self.check_expr(filter);
        }
        match &mut function.over {
            None => {}
            Some(WindowType::NamedWindow(_)) => {
                self.unsupported("a named window; write the window inline with OVER (...)")
            }
            Some(WindowType::WindowSpec(spec)) => {
                if spec.window_name.is_some() {
                    self.unsupported("a named window; write the window inline with OVER (...)");
                }
                self.check_exprs(&mut spec.partition_by);
                for item in &mut spec.order_by {
                    self.check_order_options(item);
                    self.check_expr(&mut item.expr);
                }
                if let Some(frame) = &mut spec.window_frame {
                    for bound in
                        std::iter::once(&mut frame.start_bound).chain(frame.end_bound.as_mut())
                    {
                        if let WindowFrameBound::Preceding(Some(e))
                        | WindowFrameBound::Following(Some(e)) = bound
                        {
                            self.check_expr(e);
                        }
                    }
                }
            }
        }
    }

    /// Defense in depth over the rewritten tree, with the parser's own visitor: every relation
    /// is a qualified allowlisted table or a CTE name, every function is allowlisted. The
    /// scoped walk above should already guarantee this; a miss here is a bug, refused.
    fn double_check(&mut self, statement: &Statement) {
        let cte_names: BTreeSet<String> = collect_cte_names(statement);
        let mut problems = Vec::new();
        let _ = sqlparser::ast::visit_relations(statement, |name| {
            let parts: Option<Vec<String>> = name
                .0
                .iter()
                .map(|p| p.as_ident().and_then(|i| fold(i).ok()))
                .collect();
            let ok = match parts.as_deref() {
                Some([schema, table]) => self.policy.table(schema, table).is_some(),
                Some([single]) => cte_names.contains(single),
                _ => false,
            };
            if !ok {
                problems.push(Violation::new(
                    Code::TableNotAllowed,
                    format!("table `{name}` is not available"),
                ));
            }
            ControlFlow::<()>::Continue(())
        });
        let _ = sqlparser::ast::visit_expressions(statement, |expr| {
            if let Expr::Function(f) = expr {
                let parts: Option<Vec<String>> = f
                    .name
                    .0
                    .iter()
                    .map(|p| p.as_ident().and_then(|i| fold(i).ok()))
                    .collect();
                let ok = parts.as_deref().is_some_and(|p| {
                    self.policy.functions.allows(p)
                        && p.last()
                            .is_some_and(|b| !DENIED_FUNCTIONS.contains(&b.as_str()))
                });
                if !ok {
                    problems.push(Violation::new(
                        Code::FunctionNotAllowed,
                        format!("function `{}` is not allowed", f.name),
                    ));
                }
            }
            ControlFlow::<()>::Continue(())
        });
        self.violations.extend(problems);
    }
}

fn collect_cte_names(statement: &Statement) -> BTreeSet<String> {
    use sqlparser::ast::{Visit, Visitor};
    struct Ctes(BTreeSet<String>);
    impl Visitor for Ctes {
        type Break = ();
        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
            if let Some(with) = &query.with {
                for cte in &with.cte_tables {
                    if let Ok(n) = fold(&cte.alias.name) {
                        self.0.insert(n);
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut v = Ctes(BTreeSet::new());
    let _ = statement.visit(&mut v);
    v.0
}

fn entry_matches(entry: &Entry<'_>, parts: &[String]) -> bool {
    match parts {
        [name] => entry.refname == *name,
        [schema, name] => entry
            .qualified
            .as_ref()
            .is_some_and(|q| q.schema == *schema && q.name == *name),
        _ => false,
    }
}

fn rename_outputs(mut outputs: Vec<String>, aliases: &[String]) -> Vec<String> {
    for (slot, alias) in outputs.iter_mut().zip(aliases) {
        slot.clone_from(alias);
    }
    outputs
}

/// The name PostgreSQL gives an unaliased select-list expression (close enough for scoping:
/// derived-table columns hold only checked values, so a wrong guess can only refuse).
fn output_name(expr: &Expr) -> String {
    match expr {
        Expr::Identifier(id) => fold(id).unwrap_or_default(),
        Expr::CompoundIdentifier(parts) => parts
            .last()
            .and_then(|id| fold(id).ok())
            .unwrap_or_default(),
        Expr::Function(f) => f
            .name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .and_then(|id| fold(id).ok())
            .unwrap_or_default(),
        Expr::Cast { expr, .. } | Expr::Nested(expr) => output_name(expr),
        Expr::Case { .. } => "case".into(),
        _ => "?column?".into(),
    }
}

fn number(n: u64) -> Expr {
    Expr::value(Value::Number(n.to_string(), false))
}

fn is_plain_keyword(name: &ObjectName) -> bool {
    matches!(name.0.as_slice(), [ObjectNamePart::Identifier(id)] if id.quote_style.is_none())
}

/// The text of a numeric literal, through parentheses and a unary plus.
fn number_literal(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => Some(n.as_str()),
            _ => None,
        },
        Expr::Nested(e) => number_literal(e),
        _ => None,
    }
}

fn constant_u64(expr: &Expr) -> Option<u64> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Number(n, false) => n.parse().ok(),
            _ => None,
        },
        Expr::Nested(e) => constant_u64(e),
        _ => None,
    }
}

/// Casts are limited to plain value types: no `reg*` types (catalog lookups by name), no
/// user-defined types (their input functions run arbitrary code).
fn type_allowed(data_type: &DataType) -> bool {
    match data_type {
        DataType::Character(_)
        | DataType::Char(_)
        | DataType::CharacterVarying(_)
        | DataType::CharVarying(_)
        | DataType::Varchar(_)
        | DataType::Text
        | DataType::Uuid
        | DataType::Numeric(_)
        | DataType::Decimal(_)
        | DataType::Dec(_)
        | DataType::Float(_)
        | DataType::Int2(_)
        | DataType::SmallInt(_)
        | DataType::Int(_)
        | DataType::Int4(_)
        | DataType::Int8(_)
        | DataType::Integer(_)
        | DataType::BigInt(_)
        | DataType::Float4
        | DataType::Float8
        | DataType::Real
        | DataType::Double(_)
        | DataType::DoublePrecision
        | DataType::Bool
        | DataType::Boolean
        | DataType::Date
        | DataType::Time(..)
        | DataType::Timestamp(..)
        | DataType::Interval { .. }
        | DataType::JSON
        | DataType::JSONB
        | DataType::Bytea => true,
        DataType::Array(elem) => match elem {
            sqlparser::ast::ArrayElemTypeDef::None => false,
            sqlparser::ast::ArrayElemTypeDef::AngleBracket(t)
            | sqlparser::ast::ArrayElemTypeDef::SquareBracket(t, _)
            | sqlparser::ast::ArrayElemTypeDef::Parenthesis(t) => type_allowed(t),
            _ => false,
        },
        DataType::Custom(name, modifiers) => {
            modifiers.is_empty()
                && matches!(
                    name.0.as_slice(),
                    [ObjectNamePart::Identifier(id)]
                        if id.quote_style.is_none()
                            && matches!(
                                id.value.to_ascii_lowercase().as_str(),
                                "citext" | "inet" | "cidr" | "macaddr" | "jsonpath" | "timestamptz" | "timetz"
                            )
                )
        }
        _ => false,
    }
}
