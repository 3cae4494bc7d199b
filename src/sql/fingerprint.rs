//! CORE: the shape of a query for the audit log, with every data value taken out.
//!
//! An audit event must say which SQL ran without holding any value the model wrote: a literal
//! can be a secret, an e-mail address, a card number. [`fingerprint`] parses the SQL pgward
//! produced (the checked, re-serialized query), replaces every literal in the tree with a
//! marker, re-serializes it, and hashes the result, so the same query shape always yields the
//! same [`Fingerprint`] and no value ever reaches the log.
//!
//! # Normalization rules
//!
//! - Every literal value becomes the marker [`LITERAL_MARKER`] (`$0`): numbers (a leading `-`
//!   or `+` is folded into the marker), strings of every kind (`'...'`, `E'...'`, `U&'...'`,
//!   `N'...'`, `X'...'`, `B'...'`, `$$...$$`, `$tag$...$tag$`), booleans, and the values of
//!   typed literals (`DATE '2024-01-01'` becomes `DATE $0`, `INTERVAL '1 day'` becomes
//!   `INTERVAL $0`: the type stays, the value goes). Booleans are replaced too: `is_vip = true`
//!   says which rows were wanted, which is a value, not a shape.
//! - LIMIT, OFFSET and FETCH counts, window frame offsets and `ORDER BY 2` / `GROUP BY 2`
//!   positions are literals and are replaced like any other: one rule with no exceptions is the
//!   one that cannot leak, and `LIMIT 10` and `LIMIT 11` are the same query shape.
//! - `NULL` stays: it is the absence of a value and carries no data.
//! - `$n` parameters of lookup tools stay (canonically written, `$01` becomes `$1`): they name
//!   a position, not a value. A number past PostgreSQL's 65535 bind parameters cannot be a
//!   parameter and becomes the marker; so does any other placeholder form.
//! - In an `IN (...)` list, an `ARRAY[...]` literal and the rows of a `VALUES` list,
//!   consecutive items that are identical after the replacement collapse into one, so
//!   `id IN (1, 2, 3)` and `id IN (4)` both read `id IN ($0)`.
//! - Identifiers (tables, columns, aliases, CTE names), operators, casts and type modifiers
//!   such as `varchar(20)` stay: they are the shape of the query, not data. So do the
//!   predicates `IS [NOT] TRUE` / `IS [NOT] FALSE`, which are operators like `IS NULL`.
//!   Comments are gone, because the text is re-serialized from the tree. An alias is free text,
//!   so a model set on writing a value into the log can spell it as one; what this module
//!   guarantees is that no value the query *uses* gets there.
//!
//! The marker is `$0` rather than `?`: with the PostgreSQL dialect `?` is the jsonb
//! "key exists" operator, so `data ? ?` would be ambiguous and the text would not parse again.
//! `$0` parses, and PostgreSQL numbers parameters from `$1`, so it can never be mistaken for a
//! real one.
//!
//! # The fingerprint
//!
//! Lowercase hex of the first 8 bytes (16 hex characters) of SHA-256 over the normalized text,
//! so an operator can recompute it with `sha256sum`. It identifies a query shape for grouping
//! and search; it is not a security boundary (nothing is secret in the normalized text, and a
//! collision only merges two shapes in a report). 64 bits make an accidental collision among a
//! billion distinct shapes about a 3% event (birthday bound n²/2⁶⁵) and among a million shapes
//! negligible, while keeping log lines short.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::{Mutex, PoisonError};

use sha2::{Digest, Sha256};
use sqlparser::ast::{
    Expr, InTarget, Query, SetExpr, Statement, UnaryOperator, Value, ValueWithSpan, Visit,
    VisitMut, Visitor, VisitorMut,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use super::Checked;

/// What every literal value becomes in the normalized text.
pub const LITERAL_MARKER: &str = "$0";
/// Length of [`Fingerprint::fingerprint`] in hex characters (64 bits).
pub const FINGERPRINT_HEX_LEN: usize = 16;
/// Parser nesting limit. The input already passed the check's tighter limit; the headroom
/// covers its rewrite, and a bound keeps deep input an error instead of a stack overflow.
const RECURSION_LIMIT: usize = 64;
/// Deepest expression and query nesting walked. Left-associative chains (`1+1+...`) nest
/// without tripping the parser's limit; this bounds the walk and the re-serialization. It sits
/// above the check's own bound (200), so whatever the check accepted fits.
const MAX_DEPTH: usize = 256;
/// PostgreSQL's extended protocol carries at most this many bind parameters.
const MAX_PARAMETER: u32 = 65_535;

/// A query shape without its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// The SQL re-serialized with every literal replaced by [`LITERAL_MARKER`].
    pub normalized: String,
    /// [`FINGERPRINT_HEX_LEN`] lowercase hex characters of SHA-256 over `normalized`.
    pub fingerprint: String,
}

/// Why no fingerprint could be made. No variant carries the SQL or the parser's message: both
/// can quote a literal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FingerprintError {
    #[error("the SQL could not be parsed")]
    Parse,
    #[error("expected one statement, found {0}")]
    StatementCount(usize),
    #[error("the SQL nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("the normalized SQL could not be parsed again")]
    Reparse,
    #[error("a literal value survived normalization")]
    LiteralSurvived,
}

/// Normalizes one statement of pgward-produced SQL and fingerprints it.
pub fn fingerprint(sql: &str) -> Result<Fingerprint, FingerprintError> {
    let mut statement = parse_one(sql).map_err(|e| match e {
        ParseOne::Parse => FingerprintError::Parse,
        ParseOne::Count(n) => FingerprintError::StatementCount(n),
    })?;
    let mut normalizer = Normalizer { depth: 0 };
    if VisitMut::visit(&mut statement, &mut normalizer).is_break() {
        return Err(FingerprintError::TooDeep);
    }
    let normalized = statement.to_string();
    // INVARIANT: no literal value reaches `normalized`. The normalizer replaces every value in
    // the tree (the parser's visitor reaches each one, wherever it sits); this re-reads the
    // text that will be logged and refuses it if anything but NULL, the marker or a `$n`
    // parameter parses back as a value. A miss is a bug, and it fails closed.
    verify(&normalized)?;
    let fingerprint = hex_prefix(&Sha256::digest(normalized.as_bytes()));
    Ok(Fingerprint {
        normalized,
        fingerprint,
    })
}

/// Most entries [`Recent`] keeps; when full it starts over.
const RECENT_ENTRIES: usize = 128;
/// Longest text [`Recent`] keeps a fingerprint for; longer SQL is fingerprinted every time.
const RECENT_TEXT_BYTES: usize = 1024;

/// The fingerprints of statements that ran recently, by the text that ran
/// ([`Checked::run_sql`]), so that a model's lookups that differ only in a compared integer
/// (one text to run, with the values bound) are normalized once.
///
/// Kept by `run_sql`, the fingerprint is that of `sql`, the text with the literals in place.
/// Two checked statements with one `run_sql` differ only in the lifted values (the fuzz
/// invariant in `roundtrip` holds `sql` to `run_sql` with its values put back), and the
/// normalization turns every one of those values, signed or not, into the marker; the same
/// invariant checks that other values give the same fingerprint.
#[derive(Debug, Default)]
pub struct Recent {
    entries: Mutex<HashMap<String, Fingerprint>>,
}

impl Recent {
    /// [`fingerprint`] of `checked.sql`, kept for the next statement with its `run_sql`.
    pub fn of(&self, checked: &Checked) -> Result<Fingerprint, FingerprintError> {
        let key = &checked.run_sql;
        if key.len() > RECENT_TEXT_BYTES {
            return fingerprint(&checked.sql);
        }
        if let Some(known) = self.lock().get(key) {
            return Ok(known.clone());
        }
        let made = fingerprint(&checked.sql)?;
        let mut entries = self.lock();
        if entries.len() >= RECENT_ENTRIES {
            entries.clear();
        }
        entries.insert(key.clone(), made.clone());
        Ok(made)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Fingerprint>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

enum ParseOne {
    Parse,
    Count(usize),
}

fn parse_one(sql: &str) -> Result<Statement, ParseOne> {
    let dialect = PostgreSqlDialect {};
    // The parser's error quotes the offending token, which may be a literal: it is dropped.
    let mut statements = Parser::new(&dialect)
        .with_recursion_limit(RECURSION_LIMIT)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements())
        .map_err(|_| ParseOne::Parse)?;
    if statements.len() != 1 {
        return Err(ParseOne::Count(statements.len()));
    }
    statements.pop().ok_or(ParseOne::Count(0))
}

/// Parses the normalized text again and checks every value in it.
fn verify(normalized: &str) -> Result<(), FingerprintError> {
    let statement = parse_one(normalized).map_err(|_| FingerprintError::Reparse)?;
    let mut verifier = Verifier {
        depth: 0,
        outcome: Ok(()),
    };
    let _ = statement.visit(&mut verifier);
    verifier.outcome
}

/// What one value becomes.
enum Replacement {
    Keep,
    Marker,
    Parameter(u32),
}

fn replacement(value: &Value) -> Replacement {
    // Exhaustive on purpose: a literal kind added by a parser upgrade stops the build until it
    // is classified here.
    match value {
        Value::Null => Replacement::Keep,
        Value::Placeholder(p) => match parameter_index(p) {
            Some(n) => Replacement::Parameter(n),
            None => Replacement::Marker,
        },
        Value::Number(..)
        | Value::SingleQuotedString(_)
        | Value::DollarQuotedString(_)
        | Value::TripleSingleQuotedString(_)
        | Value::TripleDoubleQuotedString(_)
        | Value::EscapedStringLiteral(_)
        | Value::UnicodeStringLiteral(_)
        | Value::SingleQuotedByteStringLiteral(_)
        | Value::DoubleQuotedByteStringLiteral(_)
        | Value::TripleSingleQuotedByteStringLiteral(_)
        | Value::TripleDoubleQuotedByteStringLiteral(_)
        | Value::SingleQuotedRawStringLiteral(_)
        | Value::DoubleQuotedRawStringLiteral(_)
        | Value::TripleSingleQuotedRawStringLiteral(_)
        | Value::TripleDoubleQuotedRawStringLiteral(_)
        | Value::NationalStringLiteral(_)
        | Value::QuoteDelimitedStringLiteral(_)
        | Value::NationalQuoteDelimitedStringLiteral(_)
        | Value::HexStringLiteral(_)
        | Value::DoubleQuotedString(_)
        | Value::Boolean(_) => Replacement::Marker,
    }
}

/// The parameter a `$n` placeholder names, if it can name one (1..=65535). `$0`, the marker,
/// is not a parameter.
fn parameter_index(placeholder: &str) -> Option<u32> {
    let digits = placeholder.strip_prefix('$')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let trimmed = digits.trim_start_matches('0');
    // More than five significant digits is past the limit; checked before parsing so a long
    // run of digits cannot overflow.
    if trimmed.is_empty() || trimmed.len() > 5 {
        return None;
    }
    let n: u32 = trimmed.parse().ok()?;
    (n <= MAX_PARAMETER).then_some(n)
}

fn marker() -> Value {
    Value::Placeholder(LITERAL_MARKER.to_string())
}

fn is_marker(expr: &Expr) -> bool {
    matches!(expr, Expr::Value(v) if v.value == marker())
}

/// Drops each item identical (as it would be written) to the one before it. Compared as text
/// because the tree's equality is not guaranteed to ignore source positions.
fn collapse_runs(items: &mut Vec<Expr>) {
    items.dedup_by(|b, a| a.to_string() == b.to_string());
}

fn rendered(row: &[Expr]) -> Vec<String> {
    row.iter().map(ToString::to_string).collect()
}

/// Rewrites the tree in place: literals to the marker, lists collapsed.
struct Normalizer {
    depth: usize,
}

impl Normalizer {
    fn enter(&mut self) -> ControlFlow<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}

impl VisitorMut for Normalizer {
    type Break = ();

    fn pre_visit_query(&mut self, _query: &mut Query) -> ControlFlow<()> {
        self.enter()
    }

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        self.depth -= 1;
        // VALUES rows are collapsed here, after their expressions were normalized. A stack
        // rather than recursion: set operations chain without bound.
        let mut pending: Vec<&mut SetExpr> = vec![query.body.as_mut()];
        while let Some(body) = pending.pop() {
            match body {
                SetExpr::Values(values) => {
                    values
                        .rows
                        .dedup_by(|b, a| rendered(&a.content) == rendered(&b.content));
                }
                SetExpr::SetOperation { left, right, .. } => {
                    pending.push(left.as_mut());
                    pending.push(right.as_mut());
                }
                // Nested queries are visited as queries of their own.
                _ => {}
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, _expr: &mut Expr) -> ControlFlow<()> {
        self.enter()
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        self.depth -= 1;
        match expr {
            // `-5` is a minus applied to `5`; after replacement `-$0` and `$0` are one shape.
            Expr::UnaryOp {
                op: UnaryOperator::Minus | UnaryOperator::Plus,
                expr: inner,
            } if is_marker(inner) => {
                let inner = std::mem::replace(inner.as_mut(), Expr::Value(marker().into()));
                *expr = inner;
            }
            Expr::In {
                target: InTarget::List(list),
                ..
            } => collapse_runs(list),
            Expr::Array(array) => collapse_runs(&mut array.elem),
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_value(&mut self, value: &mut ValueWithSpan) -> ControlFlow<()> {
        match replacement(&value.value) {
            Replacement::Keep => {}
            Replacement::Marker => value.value = marker(),
            Replacement::Parameter(n) => value.value = Value::Placeholder(format!("${n}")),
        }
        ControlFlow::Continue(())
    }
}

/// Reads the re-parsed normalized tree and stops at the first value that is not allowed.
struct Verifier {
    depth: usize,
    outcome: Result<(), FingerprintError>,
}

impl Verifier {
    fn stop(&mut self, error: FingerprintError) -> ControlFlow<()> {
        self.outcome = Err(error);
        ControlFlow::Break(())
    }

    fn enter(&mut self) -> ControlFlow<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.stop(FingerprintError::TooDeep);
        }
        ControlFlow::Continue(())
    }
}

impl Visitor for Verifier {
    type Break = ();

    fn pre_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
        self.enter()
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
        self.enter()
    }

    fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_value(&mut self, value: &ValueWithSpan) -> ControlFlow<()> {
        let allowed = match &value.value {
            Value::Null => true,
            // Only the canonical spellings the normalizer writes.
            Value::Placeholder(p) => {
                p == LITERAL_MARKER || parameter_index(p).is_some_and(|n| *p == format!("${n}"))
            }
            _ => false,
        };
        if allowed {
            ControlFlow::Continue(())
        } else {
            self.stop(FingerprintError::LiteralSurvived)
        }
    }
}

fn hex_prefix(digest: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    digest
        .iter()
        .take(FINGERPRINT_HEX_LEN / 2)
        .flat_map(|b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 0x0f)]])
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::policy::{ColumnRule, Columns, FunctionAllowlist, Policy, QualifiedName, TableRule};
    use crate::sql::{DEFAULT_FUNCTIONS, ParamMode, check};

    fn fp(sql: &str) -> Fingerprint {
        match fingerprint(sql) {
            Ok(f) => f,
            Err(e) => panic!("no fingerprint for {sql}: {e}"),
        }
    }

    fn normalized(sql: &str) -> String {
        fp(sql).normalized
    }

    /// Fails if `text` holds anything that looks like a literal: a quote, a digit that is not
    /// part of a `$n` placeholder, a boolean keyword, or one of the test's secrets.
    fn assert_no_literal(sql: &str, text: &str) {
        let lower = text.to_ascii_lowercase();
        for secret in ["s3cr3t", "4242", "beef", "2024", "1010"] {
            assert!(
                !lower.contains(secret),
                "`{secret}` survived in {text} (from {sql})"
            );
        }
        assert!(
            !text.contains('\''),
            "a quote survived in {text} (from {sql})"
        );
        let mut previous = ' ';
        let mut in_placeholder = false;
        for c in text.chars() {
            if c.is_ascii_digit() {
                if previous == '$' {
                    in_placeholder = true;
                }
                assert!(in_placeholder, "a digit survived in {text} (from {sql})");
            } else {
                in_placeholder = false;
            }
            previous = c;
        }
        for word in lower.split(|c: char| !c.is_ascii_alphanumeric() && c != '_') {
            assert!(
                word != "true" && word != "false",
                "a boolean survived in {text} (from {sql})"
            );
        }
    }

    /// Every place a literal can sit, each case with its distinctive values (`s3cr3t`, `4242`,
    /// dates in 2024, `X'BEEF'`, `B'1010'`); none may reach the normalized text, which must
    /// parse again and normalize to itself.
    #[test]
    fn no_literal_survives_anywhere() {
        let cases = [
            // select list, every literal kind
            "SELECT 's3cr3t', 4242, 42.42, .4242, 4242., 4.242e3, 4242e-2, -4242, +4242, TRUE, FALSE FROM t",
            "SELECT E's3cr3t\\n', U&'s3cr3t', N's3cr3t', X'BEEF', B'1010', $$s3cr3t$$, $tag$s3cr3t$tag$ FROM t",
            "SELECT 0x4242, 4_242 FROM t",
            // WHERE, boolean logic, comparisons
            "SELECT a FROM t WHERE b = 's3cr3t' AND c > 4242 OR NOT d <> E's3cr3t' AND e = TRUE",
            "SELECT a FROM t WHERE b IS DISTINCT FROM 's3cr3t' AND c IS NOT DISTINCT FROM 4242",
            // JOIN ON, LATERAL, USING
            "SELECT t.a FROM t JOIN u ON u.id = t.id AND u.k = 's3cr3t' LEFT JOIN v USING (id)",
            "SELECT t.a FROM t CROSS JOIN LATERAL (SELECT x FROM u WHERE u.y = 's3cr3t' LIMIT 4242) AS l",
            // CASE
            "SELECT CASE WHEN a = 4242 THEN 's3cr3t' WHEN a = 4243 THEN NULL ELSE 'x4242' END FROM t",
            "SELECT CASE a WHEN 's3cr3t' THEN 4242 END FROM t",
            // function arguments, special function syntax
            "SELECT coalesce(a, 's3cr3t'), round(b, 4242), lower('s3cr3t'), concat(a, 's3cr3t', 4242) FROM t",
            "SELECT substring(c FROM 4242 FOR 4242), trim(BOTH 's3cr3t' FROM c), position('s3cr3t' IN c) FROM t",
            "SELECT overlay(c PLACING 's3cr3t' FROM 4242 FOR 4242), extract(YEAR FROM ts) FROM t",
            "SELECT string_agg(a, 's3cr3t' ORDER BY b), count(*) FILTER (WHERE b = 's3cr3t') FROM t",
            "SELECT ts AT TIME ZONE 's3cr3t', a COLLATE \"C\" FROM t",
            // IN lists, BETWEEN, LIKE and friends
            "SELECT a FROM t WHERE b IN ('s3cr3t', 's3cr3t2', 'x') AND c NOT IN (4242, 4243)",
            "SELECT a FROM t WHERE b BETWEEN 4242 AND 4243 AND c NOT BETWEEN 's3cr3t' AND 'z'",
            "SELECT a FROM t WHERE b LIKE '%s3cr3t%' ESCAPE '!' AND c ILIKE 's3cr3t' AND d NOT LIKE '4242%'",
            "SELECT a FROM t WHERE b SIMILAR TO 's3cr3t' AND c ~ 's3cr3t' AND d ~* '4242'",
            // arrays, subscripts, ANY/ALL
            "SELECT ARRAY['s3cr3t', 'x'], ARRAY[[4242, 4243], [1, 2]], a[4242], a[4242:4243] FROM t",
            "SELECT a FROM t WHERE b = ANY(ARRAY[4242, 4243]) AND c <> ALL(ARRAY['s3cr3t'])",
            "SELECT '{4242}'::INT[], tags && ARRAY['s3cr3t'] FROM t",
            // typed literals and casts
            "SELECT DATE '2024-04-24', TIMESTAMP '2024-04-24 12:00', TIME '12:42:42', UUID 'beef4242-0000-0000-0000-000000000000' FROM t",
            "SELECT INTERVAL '4242 days', INTERVAL '4242' DAY, ts - INTERVAL '4242 hours' FROM t",
            "SELECT 's3cr3t'::TEXT, CAST(4242 AS BIGINT), CAST('s3cr3t' AS VARCHAR), '4242'::NUMERIC FROM t",
            // CTE bodies, subqueries of every kind
            "WITH c AS (SELECT a FROM t WHERE b = 's3cr3t') SELECT a FROM c WHERE a > 4242",
            "SELECT (SELECT max(x) FROM u WHERE u.y = 's3cr3t') FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.z = 4242)",
            "SELECT a FROM t WHERE b IN (SELECT x FROM u WHERE y = 's3cr3t') AND c > (SELECT 4242)",
            "SELECT d.a FROM (SELECT a FROM t WHERE b = 's3cr3t' OFFSET 4242) AS d",
            // set operations
            "SELECT 's3cr3t' UNION ALL SELECT 4242 EXCEPT SELECT a FROM t WHERE b = 's3cr3t' INTERSECT SELECT '4242'",
            // GROUP BY, HAVING, ORDER BY, DISTINCT ON, windows
            "SELECT a, count(*) FROM t GROUP BY a, 4242 HAVING count(*) > 4242 AND max(b) <> 's3cr3t'",
            "SELECT a FROM t ORDER BY a <-> 4242, CASE WHEN b = 's3cr3t' THEN 0 ELSE 1 END DESC, 2",
            "SELECT DISTINCT ON (a, 4242) a FROM t ORDER BY a, 4242",
            "SELECT sum(a) OVER (PARTITION BY b = 's3cr3t' ORDER BY c ROWS BETWEEN 4242 PRECEDING AND 4242 FOLLOWING) FROM t",
            "SELECT sum(a) OVER (ORDER BY ts RANGE BETWEEN INTERVAL '4242 days' PRECEDING AND CURRENT ROW) FROM t",
            // LIMIT, OFFSET, FETCH
            "SELECT a FROM t LIMIT 4242 OFFSET 4242",
            "SELECT a FROM t OFFSET 4242 ROWS FETCH FIRST 4242 ROWS ONLY",
            // VALUES lists, table functions
            "SELECT v.a FROM (VALUES (4242, 's3cr3t'), (4243, 'x')) AS v (a, b)",
            "SELECT g FROM generate_series(4242, 4243) AS g",
            "SELECT x FROM unnest(ARRAY['s3cr3t']) AS x",
            // JSON operators and paths
            "SELECT data ->> 's3cr3t_key', data -> 's3cr3t', data -> 4242, data #>> '{s3cr3t,4242}', data #> '{s3cr3t}' FROM t",
            "SELECT a FROM t WHERE data @> '{\"k\": \"s3cr3t\"}' AND data ? 's3cr3t' AND data ?| ARRAY['s3cr3t'] AND data ?& ARRAY['s3cr3t']",
            "SELECT jsonb_path_query(data, '$.s3cr3t[4242]'), data['s3cr3t'] FROM t",
            // everything at once, the way a real query mixes it
            "WITH recent AS (SELECT id, total FROM orders WHERE ordered_at > DATE '2024-01-01' - INTERVAL '4242 days' AND status IN ('s3cr3t', 'paid')) \
             SELECT c.email, sum(r.total) FILTER (WHERE r.total > 4242.42) AS big \
             FROM customers AS c JOIN recent AS r ON r.id = c.id AND c.country <> 's3cr3t' \
             WHERE c.email LIKE E'%s3cr3t%' AND c.note = $q$s3cr3t$q$ AND c.flags = B'1010' AND c.vip = FALSE \
             GROUP BY c.email HAVING count(*) >= 4242 \
             UNION SELECT 's3cr3t@example.com', -4242 \
             ORDER BY 2 DESC LIMIT 4242 OFFSET 4242",
        ];
        for sql in cases {
            let f = fp(sql);
            assert_no_literal(sql, &f.normalized);
            // The normalized text parses again (fingerprint re-reads it) and is a fixed point.
            let again = fp(&f.normalized);
            assert_eq!(again, f, "normalizing {sql} twice changed it");
        }
    }

    #[test]
    fn the_normalized_form_reads_like_the_query() {
        let cases = [
            (
                "SELECT id, email FROM public.customers WHERE country = 'DE' AND lifetime_value > 100 ORDER BY id LIMIT 50",
                "SELECT id, email FROM public.customers WHERE country = $0 AND lifetime_value > $0 ORDER BY id LIMIT $0",
            ),
            (
                "SELECT a FROM t WHERE ts > DATE '2024-01-01' - INTERVAL '1 day' AND b > -5",
                "SELECT a FROM t WHERE ts > DATE $0 - INTERVAL $0 AND b > $0",
            ),
            (
                "SELECT data->>'key', 'x'::text FROM t WHERE data ? 'k'",
                "SELECT data ->> $0, $0::TEXT FROM t WHERE data ? $0",
            ),
        ];
        for (sql, expected) in cases {
            assert_eq!(normalized(sql), expected, "for {sql}");
        }
    }

    #[test]
    fn same_shape_with_other_values_has_the_same_fingerprint() {
        let pairs = [
            (
                "SELECT a FROM t WHERE email = 'alice@example.com'",
                "SELECT a FROM t WHERE email = 'bob@example.org'",
            ),
            (
                "SELECT a FROM t WHERE b > 5",
                "SELECT a FROM t WHERE b > 50000.25",
            ),
            (
                "SELECT a FROM t WHERE b > -5",
                "SELECT a FROM t WHERE b > 5",
            ),
            (
                "SELECT a FROM t WHERE b = TRUE",
                "SELECT a FROM t WHERE b = FALSE",
            ),
            (
                "SELECT a FROM t WHERE b IN (1)",
                "SELECT a FROM t WHERE b IN (1, 2, 3, 4)",
            ),
            (
                "SELECT a FROM t WHERE b = ANY(ARRAY['x'])",
                "SELECT a FROM t WHERE b = ANY(ARRAY['x', 'y', 'z'])",
            ),
            (
                "SELECT v.a FROM (VALUES (1)) AS v (a)",
                "SELECT v.a FROM (VALUES (1), (2), (3)) AS v (a)",
            ),
            ("SELECT a FROM t LIMIT 10", "SELECT a FROM t LIMIT 11"),
            (
                "SELECT a FROM t OFFSET 0 LIMIT 1",
                "SELECT a FROM t OFFSET 100 LIMIT 1000",
            ),
            (
                "SELECT a FROM t WHERE d = DATE '2024-01-01'",
                "SELECT a FROM t WHERE d = DATE '1999-12-31'",
            ),
            // String spellings are one literal kind to PostgreSQL and to the fingerprint.
            (
                "SELECT a FROM t WHERE b = 'x'",
                "SELECT a FROM t WHERE b = E'y\\n'",
            ),
            (
                "SELECT a FROM t WHERE b = 'x'",
                "SELECT a FROM t WHERE b = $$y$$",
            ),
            // Whitespace, case of keywords and comments are gone after re-serialization.
            (
                "SELECT a FROM t WHERE b = 1",
                "select   a\nfrom t -- a comment\nwhere b = 2",
            ),
        ];
        for (a, b) in pairs {
            let (fa, fb) = (fp(a), fp(b));
            assert_eq!(fa, fb, "{a} and {b} should share a fingerprint");
        }
    }

    #[test]
    fn different_shapes_have_different_fingerprints() {
        let shapes = [
            "SELECT a FROM t WHERE b = 'x'",
            "SELECT a FROM t WHERE c = 'x'",
            "SELECT a FROM u WHERE b = 'x'",
            "SELECT b FROM t WHERE b = 'x'",
            "SELECT a FROM t WHERE b <> 'x'",
            "SELECT a FROM t WHERE b = $1",
            "SELECT a FROM t WHERE b = $2",
            "SELECT a FROM t WHERE b IS NULL",
            "SELECT a FROM t WHERE b = NULL",
            "SELECT a FROM t WHERE b IN ('x')",
            "SELECT a FROM t WHERE b IN ('x', $1)",
            "SELECT a FROM t WHERE b = DATE '2024-01-01'",
            "SELECT a FROM t WHERE b = TIMESTAMP '2024-01-01'",
            "SELECT a FROM t WHERE b = 'x' ORDER BY a",
            "SELECT a FROM t WHERE b = 'x' LIMIT 5",
            "SELECT a FROM t WHERE b = 'x' OR b = 'y'",
        ];
        let fingerprints: std::collections::BTreeSet<String> =
            shapes.iter().map(|s| fp(s).fingerprint).collect();
        assert_eq!(fingerprints.len(), shapes.len(), "two shapes collided");
    }

    #[test]
    fn parameters_are_kept_and_canonical() {
        assert_eq!(
            normalized("SELECT a FROM t WHERE id = $1 AND country = $2 AND x = 'y' AND y = -$1"),
            "SELECT a FROM t WHERE id = $1 AND country = $2 AND x = $0 AND y = -$1"
        );
        // `$01` is parameter 1; past 65535 or not a number, it cannot be a parameter.
        assert_eq!(
            normalized("SELECT $01, $65535, $65536, $99999999999999999999, $abc, $0"),
            "SELECT $1, $65535, $0, $0, $0, $0"
        );
    }

    /// NULL is the absence of a value; `IS [NOT] TRUE` / `IS [NOT] FALSE` are predicates like
    /// `IS NULL`, not literals.
    #[test]
    fn null_and_truth_predicates_stay() {
        assert_eq!(
            normalized("SELECT coalesce(a, NULL) FROM t WHERE b IS NULL AND c = NULLIF(d, 'x')"),
            "SELECT coalesce(a, NULL) FROM t WHERE b IS NULL AND c = NULLIF(d, $0)"
        );
        assert_eq!(
            normalized("SELECT a FROM t WHERE b IS NOT FALSE AND c IS TRUE AND d = TRUE"),
            "SELECT a FROM t WHERE b IS NOT FALSE AND c IS TRUE AND d = $0"
        );
    }

    #[test]
    fn lists_of_literals_collapse() {
        let cases = [
            (
                "SELECT a FROM t WHERE b IN (1, 2, 3)",
                "SELECT a FROM t WHERE b IN ($0)",
            ),
            (
                "SELECT a FROM t WHERE b NOT IN ($1, 'a', 'b', $2, 'c')",
                "SELECT a FROM t WHERE b NOT IN ($1, $0, $2, $0)",
            ),
            ("SELECT ARRAY[1, 2, 3]", "SELECT ARRAY[$0]"),
            ("SELECT ARRAY[[1, 2], [3, 4]]", "SELECT ARRAY[[$0]]"),
            (
                "SELECT a FROM t WHERE (a, b) IN ((1, 'x'), (2, 'y'))",
                "SELECT a FROM t WHERE (a, b) IN (($0, $0))",
            ),
            (
                "SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS v (a, b)",
                "SELECT * FROM (VALUES ($0, $0)) AS v (a, b)",
            ),
            // Items that differ after the replacement stay apart.
            (
                "SELECT a FROM t WHERE b IN (c, 1, d)",
                "SELECT a FROM t WHERE b IN (c, $0, d)",
            ),
        ];
        for (sql, expected) in cases {
            assert_eq!(normalized(sql), expected, "for {sql}");
        }
    }

    #[test]
    fn type_modifiers_stay_as_part_of_the_type() {
        assert_eq!(
            normalized("SELECT CAST(a AS VARCHAR(20)), b::NUMERIC(10, 2) FROM t"),
            "SELECT CAST(a AS VARCHAR(20)), b::NUMERIC(10,2) FROM t"
        );
    }

    #[test]
    fn fingerprint_is_16_lowercase_hex_of_sha256() {
        let f = fp("SELECT a FROM t WHERE b = 'x'");
        assert_eq!(f.fingerprint.len(), FINGERPRINT_HEX_LEN);
        assert!(
            f.fingerprint
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        // The known SHA-256 of "abc" starts ba7816bf8f01cfea: the encoding is the digest's.
        assert_eq!(hex_prefix(&Sha256::digest(b"abc")), "ba7816bf8f01cfea");
    }

    /// Pins the scheme: if this changes, every stored fingerprint stops matching, so it must
    /// only change on purpose. Recompute with
    /// `printf %s '<normalized>' | sha256sum | cut -c1-16`.
    #[test]
    fn fingerprint_is_stable() {
        let f = fp(
            "SELECT id, email FROM public.customers WHERE country = 'DE' AND lifetime_value > 100 ORDER BY id LIMIT 50",
        );
        assert_eq!(
            f.normalized,
            "SELECT id, email FROM public.customers WHERE country = $0 AND lifetime_value > $0 ORDER BY id LIMIT $0"
        );
        assert_eq!(f.fingerprint, "dae3378504367bea");
    }

    fn policy() -> Policy {
        let name = QualifiedName {
            schema: "public".to_string(),
            name: "customers".to_string(),
        };
        let columns = ["id", "email", "country", "lifetime_value", "created_at"]
            .iter()
            .map(|c| ColumnRule {
                name: (*c).to_string(),
                redact: None,
            })
            .collect();
        let rule = TableRule {
            name: name.clone(),
            columns: Columns::List(columns),
            description: None,
            row_filter: None,
        };
        Policy {
            schemas: vec!["public".to_string()],
            tables: BTreeMap::from([(name, rule)]),
            functions: FunctionAllowlist {
                builtin: DEFAULT_FUNCTIONS.iter().map(|f| (*f).to_string()).collect(),
                extra: Default::default(),
            },
            max_rows: 1000,
            max_sql_length: 100_000,
        }
    }

    /// Lookups that differ only in a compared integer run one text and share its fingerprint,
    /// which is the fingerprint of each one's own SQL.
    #[test]
    fn recent_fingerprints_are_kept_by_the_text_that_ran() {
        let policy = policy();
        let recent = Recent::default();
        let checked = |sql: &str| {
            check(&policy, sql, ParamMode::None).unwrap_or_else(|v| panic!("{sql}: {v:?}"))
        };
        let first = checked("SELECT email FROM customers WHERE id = 42 AND lifetime_value > 7");
        let second = checked("SELECT email FROM customers WHERE id = -9 AND lifetime_value > 1");
        assert_eq!(first.run_sql, second.run_sql);
        assert_ne!(first.sql, second.sql);
        let kept = recent.of(&first).unwrap();
        assert_eq!(kept, fingerprint(&first.sql).unwrap());
        assert_eq!(recent.lock().len(), 1);
        assert_eq!(
            recent.of(&second).unwrap(),
            fingerprint(&second.sql).unwrap()
        );
        assert_eq!(
            recent.lock().len(),
            1,
            "the second came from the first's entry"
        );
        assert!(!kept.normalized.contains("42"), "{}", kept.normalized);

        // A text too long to keep is fingerprinted each time; a full set starts over.
        let long = checked(&format!(
            "SELECT email FROM customers WHERE id = 1 AND country IN ({})",
            vec!["'DE'"; 300].join(", ")
        ));
        assert!(long.run_sql.len() > RECENT_TEXT_BYTES);
        assert_eq!(recent.of(&long).unwrap(), fingerprint(&long.sql).unwrap());
        assert_eq!(recent.lock().len(), 1);
        for n in 0..RECENT_ENTRIES {
            let other = checked(&format!(
                "SELECT email FROM customers WHERE country = 'c{n}'"
            ));
            assert_eq!(recent.of(&other).unwrap(), fingerprint(&other.sql).unwrap());
        }
        assert_eq!(recent.lock().len(), 1, "started over once full");
    }

    /// The real input: what the check accepted and re-serialized, forced LIMIT included.
    #[test]
    fn fingerprints_what_the_check_produces() {
        let policy = policy();
        let run = |sql: &str, mode: ParamMode| match check(&policy, sql, mode) {
            Ok(c) => fp(&c.sql),
            Err(v) => panic!("the check refused {sql}: {v:?}"),
        };
        let a = run(
            "SELECT id FROM customers WHERE email LIKE '%@s3cr3t.example' AND lifetime_value > 4242",
            ParamMode::None,
        );
        let b = run(
            "SELECT id FROM customers WHERE email LIKE '%@other.example' AND lifetime_value > 1 LIMIT 3",
            ParamMode::None,
        );
        assert_no_literal("checked SQL", &a.normalized);
        assert_eq!(a, b, "the forced LIMIT and the model's LIMIT are one shape");
        let tool = run(
            "SELECT id, email FROM customers WHERE id = $1 AND created_at > now() - INTERVAL '4242 days'",
            ParamMode::Tool { count: 1 },
        );
        assert_no_literal("checked SQL", &tool.normalized);
        assert!(tool.normalized.contains("= $1"), "{}", tool.normalized);
    }

    #[test]
    fn errors_say_what_failed_without_the_sql() {
        let cases = [
            ("SELECT 's3cr3t' FROM WHERE", FingerprintError::Parse),
            ("SELECT E'unterminated s3cr3t", FingerprintError::Parse),
            (
                "SELECT 's3cr3t'; SELECT 4242",
                FingerprintError::StatementCount(2),
            ),
            ("", FingerprintError::StatementCount(0)),
        ];
        for (sql, expected) in cases {
            assert_eq!(fingerprint(sql), Err(expected), "for {sql}");
        }
        for error in [
            FingerprintError::Parse,
            FingerprintError::StatementCount(2),
            FingerprintError::TooDeep,
            FingerprintError::Reparse,
            FingerprintError::LiteralSurvived,
        ] {
            let message = error.to_string();
            assert!(!message.contains("s3cr3t") && !message.contains("4242"));
            assert!(
                message.starts_with(|c: char| c.is_ascii_lowercase()),
                "{message}"
            );
            assert!(!message.ends_with('.'), "{message}");
        }
    }

    /// The safety net itself: a value left in the text is refused, not logged.
    #[test]
    fn the_verification_refuses_a_surviving_literal() {
        assert_eq!(
            verify("SELECT a FROM t WHERE b = 's3cr3t'"),
            Err(FingerprintError::LiteralSurvived)
        );
        assert_eq!(
            verify("SELECT 4242"),
            Err(FingerprintError::LiteralSurvived)
        );
        assert_eq!(
            verify("SELECT TRUE"),
            Err(FingerprintError::LiteralSurvived)
        );
        assert_eq!(verify("SELECT $01"), Err(FingerprintError::LiteralSurvived));
        assert_eq!(verify("SELECT FROM ("), Err(FingerprintError::Reparse));
        assert_eq!(verify("SELECT $0, $1, NULL"), Ok(()));
    }

    #[test]
    fn deep_input_is_an_error_not_a_crash() {
        let chain = format!("SELECT 1{}", " + 1".repeat(1000));
        assert_eq!(fingerprint(&chain), Err(FingerprintError::TooDeep));
        let parens = format!("SELECT {}1{}", "(".repeat(500), ")".repeat(500));
        assert_eq!(fingerprint(&parens), Err(FingerprintError::Parse));
        // As deep as the check lets through still fits.
        let accepted = format!("SELECT 1{}", " + 1".repeat(199));
        assert!(fingerprint(&accepted).is_ok());
    }
}
