//! The process-wide metrics registry, rendered in the Prometheus text exposition format
//! (version 0.0.4) for the admin listener's `/metrics`.
//!
//! Built on `prometheus-client` (the Prometheus project's own Rust client): counters and gauges
//! are atomics, each histogram is a small mutex, and a label set is looked up under a read
//! lock, so recording from the call path costs a few atomic operations. Its `prometheus_text`
//! encoder writes the 0.0.4 format (not OpenMetrics: no `# EOF`, counter families declared
//! with their `_total` name) and escapes label values.
//!
//! # Metrics
//!
//! | name | type | labels |
//! | --- | --- | --- |
//! | `pgward_tool_calls_total` | counter | `tool`, `outcome` (`success`, `error`, `denied`) |
//! | `pgward_refusals_total` | counter | `code` (a refusal reason code) |
//! | `pgward_tool_call_duration_seconds` | histogram | `tool` ([`DURATION_BUCKETS`]) |
//! | `pgward_rows_returned_total` | counter | `tool` |
//! | `pgward_response_bytes_total` | counter | `tool` |
//! | `pgward_rate_limited_total` | counter | `reason` |
//! | `pgward_auth_failures_total` | counter | `reason` |
//! | `pgward_audit_sink_failures_total` | counter | `sink` |
//! | `pgward_config_reloads_total` | counter | `result` (`ok`, `error`) |
//! | `pgward_db_pool_size`, `pgward_db_pool_available`, `pgward_db_pool_waiters` | gauge | none |
//!
//! Every known tool's `tool_calls`, duration, rows and bytes series and both reload results
//! exist from the start at 0; series of codes and reasons appear with their first event. The
//! pool gauges are read at scrape time from the probe given to
//! [`Metrics::set_pool_probe`] (or set with [`Metrics::set_pool`]); they are 0 until then.
//!
//! # Bounded labels
//!
//! INVARIANT: every label value comes from a bounded set, so no client can grow the registry
//! (each new label value is a new time series kept for the life of the process), and no label
//! ever carries a principal, SQL or an argument value.
//!
//! - `tool` is taken only from the operator's known tool list ([`Metrics::new`],
//!   [`Metrics::set_known_tools`]); any other name, such as an unknown tool a client asked for,
//!   is counted as [`UNKNOWN_TOOL`]. At most [`MAX_TOOLS`] names are kept, each cut to
//!   [`MAX_LABEL_LEN`] bytes.
//! - `code`, `reason` and `sink` are stable snake_case identifiers chosen by the code (refusal
//!   codes, failure codes, sink names). A value that is not one (`[a-z][a-z0-9_]*`, at most
//!   [`MAX_LABEL_LEN`] bytes) is counted as `invalid`, and past [`MAX_VALUES_PER_LABEL`]
//!   distinct values per metric new ones are counted as `other`.
//! - `outcome` and `result` are enums.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder, prometheus_text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// The `tool` label of a call to a tool the operator did not configure.
pub const UNKNOWN_TOOL: &str = "unknown";

/// Longest label value, in bytes; longer tool names are cut (at a character boundary).
pub const MAX_LABEL_LEN: usize = 64;

/// Most tool names given their own label; the rest count as [`UNKNOWN_TOOL`].
pub const MAX_TOOLS: usize = 256;

/// Most distinct values of one `code`, `reason` or `sink` label; later ones count as `other`.
pub const MAX_VALUES_PER_LABEL: usize = 64;

/// Upper bounds (seconds) of the call duration histogram: 1 ms to 30 s, roughly 1-2.5-5 per
/// decade, so both a cached lookup and a query near the statement timeout land in a bucket.
pub const DURATION_BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0,
];

/// Label value of a code that is not a snake_case identifier.
const INVALID: &str = "invalid";
/// Label value of a code past [`MAX_VALUES_PER_LABEL`].
const OVERFLOW: &str = "other";

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot encode metrics")]
    Encode,
}

/// How a tool call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The call ran and its result went back.
    Success,
    /// The call was allowed but failed (database error, timeout, internal error).
    Error,
    /// The call was refused (policy, scope, limits); its codes go to `pgward_refusals_total`.
    Denied,
}

impl Outcome {
    /// The `outcome` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Error => "error",
            Outcome::Denied => "denied",
        }
    }
}

/// The database pool as seen at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStatus {
    /// Connections open (idle and in use).
    pub size: u64,
    /// Idle connections ready for a call.
    pub available: u64,
    /// Calls waiting for a connection.
    pub waiters: u64,
}

/// Reads the pool's status at scrape time. It runs on the scraping task, so it must not block
/// (deadpool's `Pool::status` is a few atomic loads).
pub type PoolProbe = Box<dyn Fn() -> PoolStatus + Send + Sync>;

/// A label value: shared, so recording a call clones a pointer rather than a string. Hashes and
/// compares as its text, so a set of labels can be searched with a `&str`.
#[derive(Clone, Debug)]
struct Label(Arc<str>);

impl Label {
    fn new(text: &str) -> Self {
        Label(Arc::from(text))
    }
}

impl PartialEq for Label {
    fn eq(&self, other: &Self) -> bool {
        *self.0 == *other.0
    }
}

impl Eq for Label {}

impl Hash for Label {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Must hash exactly as `str` does, for `Borrow<str>` lookups.
        (*self.0).hash(state);
    }
}

impl Borrow<str> for Label {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl EncodeLabelValue for Label {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        // The encoder escapes `\`, `"` and newlines.
        fmt::Write::write_str(encoder, &self.0)
    }
}

type OneLabel = [(&'static str, Label); 1];
type TwoLabels = [(&'static str, Label); 2];
type HistogramFamily = Family<OneLabel, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// Whether `s` is a stable code: snake_case ASCII, short.
fn is_code(s: &str) -> bool {
    let mut bytes = s.bytes();
    s.len() <= MAX_LABEL_LEN
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `s` cut to at most [`MAX_LABEL_LEN`] bytes at a character boundary.
fn capped(s: &str) -> &str {
    let mut end = s.len().min(MAX_LABEL_LEN);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The values one free-form label (`code`, `reason`, `sink`) has taken, capped.
#[derive(Default)]
struct Vocabulary {
    seen: RwLock<HashSet<Label>>,
}

impl Vocabulary {
    /// The label to record `raw` under.
    fn admit(&self, raw: &str) -> Label {
        if !is_code(raw) {
            return Label::new(INVALID);
        }
        if let Some(label) = self
            .seen
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(raw)
        {
            return label.clone();
        }
        let mut seen = self.seen.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(label) = seen.get(raw) {
            return label.clone();
        }
        if seen.len() >= MAX_VALUES_PER_LABEL {
            return Label::new(OVERFLOW);
        }
        let label = Label::new(raw);
        seen.insert(label.clone());
        label
    }
}

/// The known tool names and the label each is recorded under.
fn tool_labels(known: &[String]) -> HashMap<String, Label> {
    if known.len() > MAX_TOOLS {
        tracing::warn!(
            tools = known.len(),
            kept = MAX_TOOLS,
            "more tools than metrics keep apart; the rest are counted as `unknown`"
        );
    }
    known
        .iter()
        .take(MAX_TOOLS)
        .map(|name| (name.clone(), Label::new(capped(name))))
        .collect()
}

/// The metrics registry. Share it as `Arc<Metrics>`; every method takes `&self`.
pub struct Metrics {
    registry: Registry,
    known_tools: RwLock<HashMap<String, Label>>,
    unknown_tool: Label,
    outcomes: [Label; 3],
    results: [Label; 2],
    tool_calls: Family<TwoLabels, Counter>,
    refusals: Family<OneLabel, Counter>,
    durations: HistogramFamily,
    rows: Family<OneLabel, Counter>,
    bytes: Family<OneLabel, Counter>,
    rate_limited: Family<OneLabel, Counter>,
    auth_failures: Family<OneLabel, Counter>,
    sink_failures: Family<OneLabel, Counter>,
    reloads: Family<OneLabel, Counter>,
    refusal_codes: Vocabulary,
    rate_limit_reasons: Vocabulary,
    auth_reasons: Vocabulary,
    sinks: Vocabulary,
    pool_size: Gauge,
    pool_available: Gauge,
    pool_waiters: Gauge,
    pool_probe: RwLock<Option<PoolProbe>>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A registry whose `tool` label takes the names in `known_tools` (the configured tools,
    /// built-in and lookup) and [`UNKNOWN_TOOL`].
    pub fn new(known_tools: &[String]) -> Self {
        let mut registry = Registry::with_prefix("pgward");
        let tool_calls = Family::<TwoLabels, Counter>::default();
        registry.register(
            "tool_calls",
            "Tool calls by tool and outcome",
            tool_calls.clone(),
        );
        let refusals = Family::<OneLabel, Counter>::default();
        registry.register(
            "refusals",
            "Reason codes of refused tool calls, each counted once per call",
            refusals.clone(),
        );
        let durations: HistogramFamily = Family::new_with_constructor(duration_histogram);
        registry.register_with_unit(
            "tool_call_duration",
            "Tool call duration from check to answer",
            Unit::Seconds,
            durations.clone(),
        );
        let rows = Family::<OneLabel, Counter>::default();
        registry.register("rows_returned", "Rows returned to clients", rows.clone());
        let bytes = Family::<OneLabel, Counter>::default();
        registry.register(
            "response_bytes",
            "Bytes of tool results returned to clients",
            bytes.clone(),
        );
        let rate_limited = Family::<OneLabel, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests refused by a rate or concurrency limit",
            rate_limited.clone(),
        );
        let auth_failures = Family::<OneLabel, Counter>::default();
        registry.register(
            "auth_failures",
            "Failed authentications by reason",
            auth_failures.clone(),
        );
        let sink_failures = Family::<OneLabel, Counter>::default();
        registry.register(
            "audit_sink_failures",
            "Audit events a sink failed to write",
            sink_failures.clone(),
        );
        let reloads = Family::<OneLabel, Counter>::default();
        registry.register(
            "config_reloads",
            "Configuration reloads by result",
            reloads.clone(),
        );
        let pool_size = Gauge::default();
        registry.register(
            "db_pool_size",
            "Database connections open",
            pool_size.clone(),
        );
        let pool_available = Gauge::default();
        registry.register(
            "db_pool_available",
            "Idle database connections",
            pool_available.clone(),
        );
        let pool_waiters = Gauge::default();
        registry.register(
            "db_pool_waiters",
            "Calls waiting for a database connection",
            pool_waiters.clone(),
        );
        let metrics = Self {
            registry,
            known_tools: RwLock::new(HashMap::new()),
            unknown_tool: Label::new(UNKNOWN_TOOL),
            outcomes: [
                Label::new(Outcome::Success.as_str()),
                Label::new(Outcome::Error.as_str()),
                Label::new(Outcome::Denied.as_str()),
            ],
            results: [Label::new("ok"), Label::new("error")],
            tool_calls,
            refusals,
            durations,
            rows,
            bytes,
            rate_limited,
            auth_failures,
            sink_failures,
            reloads,
            refusal_codes: Vocabulary::default(),
            rate_limit_reasons: Vocabulary::default(),
            auth_reasons: Vocabulary::default(),
            sinks: Vocabulary::default(),
            pool_size,
            pool_available,
            pool_waiters,
            pool_probe: RwLock::new(None),
        };
        for result in &metrics.results {
            drop(metrics.reloads.get_or_create(&[("result", result.clone())]));
        }
        metrics.set_known_tools(known_tools);
        metrics
    }

    /// Replaces the known tool names (after a config reload). Series already recorded for a
    /// tool that is gone stay, as counters must not go backwards; its new calls count as
    /// [`UNKNOWN_TOOL`].
    pub fn set_known_tools(&self, known_tools: &[String]) {
        let labels = tool_labels(known_tools);
        // Every known tool's series exist from the start at 0, so a rate over them is defined
        // before the first call and an absent series means a tool that is not configured.
        for tool in labels.values().chain([&self.unknown_tool]) {
            for outcome in &self.outcomes {
                drop(
                    self.tool_calls
                        .get_or_create(&[("tool", tool.clone()), ("outcome", outcome.clone())]),
                );
            }
            let key = [("tool", tool.clone())];
            drop(self.durations.get_or_create(&key));
            drop(self.rows.get_or_create(&key));
            drop(self.bytes.get_or_create(&key));
        }
        *self
            .known_tools
            .write()
            .unwrap_or_else(PoisonError::into_inner) = labels;
    }

    /// The `tool` label for a name a client sent.
    fn tool_label(&self, tool: &str) -> Label {
        self.known_tools
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(tool)
            .cloned()
            .unwrap_or_else(|| self.unknown_tool.clone())
    }

    /// Records one finished tool call: `codes` are the reason codes of a refused call (each
    /// counted once however often it occurs; empty for an accepted call), `duration` the time
    /// from check to answer, `rows` and `bytes` what went back to the client.
    pub fn call(
        &self,
        tool: &str,
        outcome: Outcome,
        codes: &[&str],
        duration: Duration,
        rows: u64,
        bytes: u64,
    ) {
        let tool = self.tool_label(tool);
        let outcome = match outcome {
            Outcome::Success => &self.outcomes[0],
            Outcome::Error => &self.outcomes[1],
            Outcome::Denied => &self.outcomes[2],
        };
        self.tool_calls
            .get_or_create(&[("tool", tool.clone()), ("outcome", outcome.clone())])
            .inc();
        for (i, code) in codes.iter().enumerate() {
            // A call refused for two columns names `column_not_allowed` twice; count it once so
            // the counter reads "calls refused for this reason".
            if codes[..i].contains(code) {
                continue;
            }
            let code = self.refusal_codes.admit(code);
            self.refusals.get_or_create(&[("code", code)]).inc();
        }
        let key = [("tool", tool)];
        self.durations
            .get_or_create(&key)
            .observe(duration.as_secs_f64());
        self.rows.get_or_create(&key).inc_by(rows);
        self.bytes.get_or_create(&key).inc_by(bytes);
    }

    /// A request refused by a rate or concurrency limit; `reason` is a stable code such as
    /// `rate_limited` or `global_rate_limited`.
    pub fn rate_limited(&self, reason: &str) {
        let reason = self.rate_limit_reasons.admit(reason);
        self.rate_limited.get_or_create(&[("reason", reason)]).inc();
    }

    /// A failed authentication; `reason` is the failure's stable code (never the credential).
    pub fn auth_failure(&self, reason: &str) {
        let reason = self.auth_reasons.admit(reason);
        self.auth_failures
            .get_or_create(&[("reason", reason)])
            .inc();
    }

    /// An audit event that the sink named `sink` (its kind, such as `file`) failed to write.
    pub fn audit_sink_failure(&self, sink: &str) {
        let sink = self.sinks.admit(sink);
        self.sink_failures.get_or_create(&[("sink", sink)]).inc();
    }

    /// A configuration reload, applied (`ok`) or refused (`error`).
    pub fn reload(&self, ok: bool) {
        let result = if ok {
            &self.results[0]
        } else {
            &self.results[1]
        };
        self.reloads
            .get_or_create(&[("result", result.clone())])
            .inc();
    }

    /// Sets the pool gauges now (for a caller without a probe).
    pub fn set_pool(&self, status: PoolStatus) {
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.pool_size.set(gauge(status.size));
        self.pool_available.set(gauge(status.available));
        self.pool_waiters.set(gauge(status.waiters));
    }

    /// Reads the pool gauges from `probe` at every [`render`](Self::render), replacing any
    /// earlier probe.
    pub fn set_pool_probe(&self, probe: PoolProbe) {
        *self
            .pool_probe
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(probe);
    }

    /// Every metric in the Prometheus text format, version 0.0.4 (served as [`CONTENT_TYPE`]).
    pub fn render(&self) -> Result<String, MetricsError> {
        let status = self
            .pool_probe
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|probe| probe());
        if let Some(status) = status {
            self.set_pool(status);
        }
        let mut out = String::new();
        prometheus_text::encode(&mut out, &self.registry).map_err(|_| MetricsError::Encode)?;
        Ok(out)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// One sample line.
    #[derive(Debug, Clone, PartialEq)]
    pub(crate) struct Sample {
        pub name: String,
        pub labels: Vec<(String, String)>,
        pub value: f64,
    }

    /// One metric family: its `# HELP`, `# TYPE` and samples.
    #[derive(Debug, Clone)]
    pub(crate) struct MetricFamily {
        pub name: String,
        pub kind: String,
        pub samples: Vec<Sample>,
    }

    /// A parsed exposition.
    #[derive(Debug)]
    pub(crate) struct Exposition {
        pub families: Vec<MetricFamily>,
    }

    impl Exposition {
        pub(crate) fn family(&self, name: &str) -> Option<&MetricFamily> {
            self.families.iter().find(|f| f.name == name)
        }

        /// The value of the sample `name` whose labels are exactly `labels` (any order).
        pub(crate) fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
            let mut want: Vec<(String, String)> = labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            want.sort();
            self.families
                .iter()
                .flat_map(|f| &f.samples)
                .find(|s| {
                    let mut have = s.labels.clone();
                    have.sort();
                    s.name == name && have == want
                })
                .map(|s| s.value)
        }

        /// Every label value of every sample.
        fn label_values(&self) -> Vec<&str> {
            self.families
                .iter()
                .flat_map(|f| &f.samples)
                .flat_map(|s| &s.labels)
                .map(|(_, v)| v.as_str())
                .collect()
        }
    }

    fn is_metric_name(s: &str) -> bool {
        let mut chars = s.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }

    fn is_label_name(s: &str) -> bool {
        let mut chars = s.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    }

    fn parse_value(s: &str) -> Result<f64, String> {
        match s {
            "+Inf" => Ok(f64::INFINITY),
            "-Inf" => Ok(f64::NEG_INFINITY),
            "NaN" => Ok(f64::NAN),
            _ => s.parse::<f64>().map_err(|_| format!("bad value `{s}`")),
        }
    }

    type Labels = Vec<(String, String)>;

    /// `{k="v",...}` at the start of `s`; returns the labels and the rest after `}`.
    fn parse_labels(s: &str) -> Result<(Labels, &str), String> {
        let mut labels = Vec::new();
        let mut rest = s.strip_prefix('{').ok_or("expected `{`")?;
        loop {
            if let Some(r) = rest.strip_prefix('}') {
                return Ok((labels, r));
            }
            let eq = rest.find('=').ok_or("label without `=`")?;
            let name = &rest[..eq];
            if !is_label_name(name) {
                return Err(format!("bad label name `{name}`"));
            }
            rest = rest[eq + 1..]
                .strip_prefix('"')
                .ok_or("label value not quoted")?;
            let mut value = String::new();
            let mut chars = rest.char_indices();
            let end = loop {
                match chars.next() {
                    None => return Err("unterminated label value".into()),
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        other => return Err(format!("bad escape {other:?}")),
                    },
                    Some((_, '\n')) => return Err("raw newline in label value".into()),
                    Some((_, c)) => value.push(c),
                }
            };
            if labels.iter().any(|(k, _)| k == name) {
                return Err(format!("label `{name}` repeated"));
            }
            labels.push((name.to_string(), value));
            rest = &rest[end + 1..];
            if let Some(r) = rest.strip_prefix(',') {
                rest = r;
            } else if !rest.starts_with('}') {
                return Err("expected `,` or `}` after a label".into());
            }
        }
    }

    /// A strict parser of the Prometheus text format 0.0.4, as far as pgward uses it: every
    /// family is announced by `# HELP` then `# TYPE` before its samples and only once; every
    /// sample belongs to the family above it; histogram buckets are cumulative, end in `+Inf`
    /// and agree with `_count`, and have a `_sum`.
    pub(crate) fn parse(text: &str) -> Result<Exposition, String> {
        if !text.is_empty() && !text.ends_with('\n') {
            return Err("text does not end in a newline".into());
        }
        let mut families: Vec<MetricFamily> = Vec::new();
        let mut pending_help: Option<String> = None;
        for (n, line) in text.lines().enumerate() {
            let at = |e: String| format!("line {}: {e}: `{line}`", n + 1);
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap_or_default();
                if !is_metric_name(name) || pending_help.is_some() {
                    return Err(at("misplaced HELP".into()));
                }
                if families.iter().any(|f| f.name == name) {
                    return Err(at("family declared twice".into()));
                }
                pending_help = Some(name.to_string());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').ok_or_else(|| at("bad TYPE".into()))?;
                if pending_help.take().as_deref() != Some(name) {
                    return Err(at("TYPE without its HELP".into()));
                }
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                    return Err(at(format!("unknown type `{kind}`")));
                }
                families.push(MetricFamily {
                    name: name.to_string(),
                    kind: kind.to_string(),
                    samples: Vec::new(),
                });
            } else if line.starts_with('#') || line.is_empty() {
                return Err(at("unexpected comment or blank line".into()));
            } else {
                if pending_help.is_some() {
                    return Err(at("sample between HELP and TYPE".into()));
                }
                let family = families
                    .last_mut()
                    .ok_or_else(|| at("sample before any TYPE".into()))?;
                let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
                let name = &line[..name_end];
                let (labels, rest) = if line[name_end..].starts_with('{') {
                    parse_labels(&line[name_end..]).map_err(at)?
                } else {
                    (Vec::new(), &line[name_end..])
                };
                let value = rest
                    .strip_prefix(' ')
                    .ok_or_else(|| at("no space before the value".into()))?;
                if value.contains(' ') {
                    return Err(at("timestamps or extra fields".into()));
                }
                let value = parse_value(value).map_err(at)?;
                let belongs = if family.kind == "histogram" {
                    ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name == format!("{}{s}", family.name))
                } else {
                    name == family.name
                };
                if !belongs {
                    return Err(at(format!("sample not of family `{}`", family.name)));
                }
                family.samples.push(Sample {
                    name: name.to_string(),
                    labels,
                    value,
                });
            }
        }
        if pending_help.is_some() {
            return Err("HELP without TYPE at the end".into());
        }
        for f in families.iter().filter(|f| f.kind == "histogram") {
            check_histogram(f)?;
        }
        Ok(Exposition { families })
    }

    fn check_histogram(f: &MetricFamily) -> Result<(), String> {
        let without_le = |s: &Sample| {
            let mut l: Vec<_> = s
                .labels
                .iter()
                .filter(|(k, _)| k != "le")
                .cloned()
                .collect();
            l.sort();
            l
        };
        let mut series: Vec<Vec<(String, String)>> = Vec::new();
        for s in &f.samples {
            let key = without_le(s);
            if !series.contains(&key) {
                series.push(key);
            }
        }
        for key in series {
            let of = |suffix: &str| -> Vec<&Sample> {
                f.samples
                    .iter()
                    .filter(|s| s.name == format!("{}{suffix}", f.name) && without_le(s) == key)
                    .collect()
            };
            let buckets = of("_bucket");
            let count = of("_count");
            let sum = of("_sum");
            if count.len() != 1 || sum.len() != 1 || buckets.is_empty() {
                return Err(format!(
                    "{} {key:?}: needs buckets, one _sum, one _count",
                    f.name
                ));
            }
            let mut last = (f64::NEG_INFINITY, 0.0);
            for b in &buckets {
                let le = b
                    .labels
                    .iter()
                    .find(|(k, _)| k == "le")
                    .ok_or(format!("{}: bucket without le", f.name))?;
                let le = parse_value(&le.1)?;
                if le <= last.0 || b.value < last.1 {
                    return Err(format!("{} {key:?}: buckets not cumulative", f.name));
                }
                last = (le, b.value);
            }
            if last.0 != f64::INFINITY || last.1 != count[0].value {
                return Err(format!("{} {key:?}: +Inf bucket != _count", f.name));
            }
        }
        Ok(())
    }

    fn tools(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn scrape(m: &Metrics) -> Exposition {
        let text = m.render().unwrap();
        parse(&text).unwrap_or_else(|e| panic!("{e}\n---\n{text}"))
    }

    #[test]
    fn render_parses_and_declares_every_family_with_its_type() {
        let m = Metrics::new(&tools(&["query", "list_tables"]));
        // Known tools and reload results are there at 0 before anything happened; families
        // whose labels come only with events appear with their first one.
        let e = scrape(&m);
        for tool in ["query", "list_tables", "unknown"] {
            for outcome in ["success", "error", "denied"] {
                let labels = [("tool", tool), ("outcome", outcome)];
                assert_eq!(e.value("pgward_tool_calls_total", &labels), Some(0.0));
            }
            let t = [("tool", tool)];
            assert_eq!(e.value("pgward_rows_returned_total", &t), Some(0.0));
            assert_eq!(
                e.value("pgward_tool_call_duration_seconds_count", &t),
                Some(0.0)
            );
        }
        assert_eq!(
            e.value("pgward_config_reloads_total", &[("result", "ok")]),
            Some(0.0)
        );
        assert!(e.family("pgward_refusals_total").is_none());

        m.call(
            "query",
            Outcome::Denied,
            &["not_select"],
            Duration::ZERO,
            0,
            0,
        );
        m.rate_limited("rate_limited");
        m.auth_failure("expired_token");
        m.audit_sink_failure("file");
        let e = scrape(&m);
        for (name, kind) in [
            ("pgward_tool_calls_total", "counter"),
            ("pgward_refusals_total", "counter"),
            ("pgward_tool_call_duration_seconds", "histogram"),
            ("pgward_rows_returned_total", "counter"),
            ("pgward_response_bytes_total", "counter"),
            ("pgward_rate_limited_total", "counter"),
            ("pgward_auth_failures_total", "counter"),
            ("pgward_audit_sink_failures_total", "counter"),
            ("pgward_config_reloads_total", "counter"),
            ("pgward_db_pool_size", "gauge"),
            ("pgward_db_pool_available", "gauge"),
            ("pgward_db_pool_waiters", "gauge"),
        ] {
            let f = e.family(name).unwrap_or_else(|| panic!("{name} missing"));
            assert_eq!(f.kind, kind, "{name}");
        }
        assert_eq!(e.families.len(), 12);
        assert!(CONTENT_TYPE.starts_with("text/plain; version=0.0.4"));
    }

    #[test]
    fn counters_and_histogram_move_exactly_as_calls_are_recorded() {
        let m = Metrics::new(&tools(&["query", "list_tables"]));
        m.call(
            "query",
            Outcome::Success,
            &[],
            Duration::from_millis(3),
            10,
            1000,
        );
        m.call(
            "query",
            Outcome::Success,
            &[],
            Duration::from_millis(40),
            5,
            500,
        );
        m.call(
            "query",
            Outcome::Denied,
            &[
                "table_not_allowed",
                "column_not_allowed",
                "table_not_allowed",
            ],
            Duration::from_micros(500),
            0,
            0,
        );
        m.call(
            "list_tables",
            Outcome::Error,
            &[],
            Duration::from_secs(45),
            0,
            0,
        );
        let e = scrape(&m);
        let calls = "pgward_tool_calls_total";
        assert_eq!(
            e.value(calls, &[("tool", "query"), ("outcome", "success")]),
            Some(2.0)
        );
        assert_eq!(
            e.value(calls, &[("tool", "query"), ("outcome", "denied")]),
            Some(1.0)
        );
        assert_eq!(
            e.value(calls, &[("tool", "query"), ("outcome", "error")]),
            Some(0.0)
        );
        assert_eq!(
            e.value(calls, &[("tool", "list_tables"), ("outcome", "error")]),
            Some(1.0)
        );
        // A code named twice in one call counts once.
        let refusals = "pgward_refusals_total";
        assert_eq!(
            e.value(refusals, &[("code", "table_not_allowed")]),
            Some(1.0)
        );
        assert_eq!(
            e.value(refusals, &[("code", "column_not_allowed")]),
            Some(1.0)
        );
        let q = [("tool", "query")];
        assert_eq!(e.value("pgward_rows_returned_total", &q), Some(15.0));
        assert_eq!(e.value("pgward_response_bytes_total", &q), Some(1500.0));

        let bucket = |tool: &str, le: &str| {
            e.value(
                "pgward_tool_call_duration_seconds_bucket",
                &[("tool", tool), ("le", le)],
            )
        };
        assert_eq!(bucket("query", "0.001"), Some(1.0));
        assert_eq!(bucket("query", "0.0025"), Some(1.0));
        assert_eq!(bucket("query", "0.005"), Some(2.0));
        assert_eq!(bucket("query", "0.025"), Some(2.0));
        assert_eq!(bucket("query", "0.05"), Some(3.0));
        assert_eq!(bucket("query", "+Inf"), Some(3.0));
        assert_eq!(
            e.value("pgward_tool_call_duration_seconds_count", &q),
            Some(3.0)
        );
        let sum = e
            .value("pgward_tool_call_duration_seconds_sum", &q)
            .unwrap();
        assert!((sum - 0.0435).abs() < 1e-9, "{sum}");
        // 45 s is past the last bound: only +Inf holds it.
        assert_eq!(bucket("list_tables", "30"), Some(0.0));
        assert_eq!(bucket("list_tables", "+Inf"), Some(1.0));
        let buckets = e
            .family("pgward_tool_call_duration_seconds")
            .unwrap()
            .samples
            .iter()
            .filter(|s| {
                s.name.ends_with("_bucket") && s.labels.contains(&("tool".into(), "query".into()))
            })
            .count();
        assert_eq!(buckets, DURATION_BUCKETS.len() + 1);

        // Recording more moves the counters by exactly that much.
        m.call(
            "query",
            Outcome::Success,
            &[],
            Duration::from_millis(1),
            1,
            1,
        );
        let e = scrape(&m);
        assert_eq!(
            e.value(calls, &[("tool", "query"), ("outcome", "success")]),
            Some(3.0)
        );
        assert_eq!(e.value("pgward_rows_returned_total", &q), Some(16.0));
        assert_eq!(e.value("pgward_response_bytes_total", &q), Some(1501.0));
    }

    #[test]
    fn unknown_tool_names_collapse_to_unknown() {
        let m = Metrics::new(&tools(&["query"]));
        m.call(
            "drop_everything",
            Outcome::Denied,
            &["unknown_tool"],
            Duration::ZERO,
            0,
            0,
        );
        m.call("Query", Outcome::Denied, &[], Duration::ZERO, 0, 0);
        let e = scrape(&m);
        let calls = "pgward_tool_calls_total";
        assert_eq!(
            e.value(calls, &[("tool", "unknown"), ("outcome", "denied")]),
            Some(2.0)
        );
        assert!(
            !e.label_values()
                .iter()
                .any(|v| v.contains("drop") || *v == "Query")
        );

        // A reload brings a new tool in and takes an old one out.
        m.set_known_tools(&tools(&["drop_everything"]));
        m.call(
            "drop_everything",
            Outcome::Success,
            &[],
            Duration::ZERO,
            0,
            0,
        );
        m.call("query", Outcome::Success, &[], Duration::ZERO, 0, 0);
        let e = scrape(&m);
        assert_eq!(
            e.value(
                calls,
                &[("tool", "drop_everything"), ("outcome", "success")]
            ),
            Some(1.0)
        );
        assert_eq!(
            e.value(calls, &[("tool", "unknown"), ("outcome", "success")]),
            Some(1.0)
        );
        // Its series stays (counters never go back) but no longer moves.
        assert_eq!(
            e.value(calls, &[("tool", "query"), ("outcome", "success")]),
            Some(0.0)
        );
    }

    #[test]
    fn label_values_are_escaped_and_round_trip() {
        let odd = "we\"ird\\tool\nname";
        let m = Metrics::new(&tools(&[odd]));
        m.call(odd, Outcome::Success, &[], Duration::ZERO, 1, 1);
        let text = m.render().unwrap();
        assert!(
            text.contains(r#"tool="we\"ird\\tool\nname""#),
            "not escaped:\n{text}"
        );
        let e = parse(&text).unwrap();
        assert_eq!(
            e.value("pgward_rows_returned_total", &[("tool", odd)]),
            Some(1.0)
        );
    }

    #[test]
    fn tool_labels_are_capped_in_length_and_number() {
        let long = format!("{}é", "t".repeat(MAX_LABEL_LEN - 1));
        let mut names = vec![long.clone()];
        names.extend((0..MAX_TOOLS + 10).map(|i| format!("tool_{i}")));
        let m = Metrics::new(&names);
        m.call(&long, Outcome::Success, &[], Duration::ZERO, 0, 0);
        let last = format!("tool_{}", MAX_TOOLS + 5);
        m.call(&last, Outcome::Success, &[], Duration::ZERO, 0, 0);
        let e = scrape(&m);
        // Cut at a character boundary: the two-byte `é` does not fit.
        let cut = "t".repeat(MAX_LABEL_LEN - 1);
        let calls = "pgward_tool_calls_total";
        assert_eq!(
            e.value(calls, &[("tool", &cut), ("outcome", "success")]),
            Some(1.0)
        );
        assert_eq!(
            e.value(calls, &[("tool", "unknown"), ("outcome", "success")]),
            Some(1.0)
        );
        assert!(e.label_values().iter().all(|v| v.len() <= MAX_LABEL_LEN));
    }

    #[test]
    fn free_form_labels_accept_only_codes_and_are_capped() {
        let m = Metrics::new(&[]);
        m.rate_limited("rate_limited");
        m.rate_limited("rate_limited");
        m.auth_failure("expired_token");
        // Not codes: a principal, SQL, a token, something long.
        m.auth_failure("alice@example.com");
        m.auth_failure("SELECT * FROM users");
        m.auth_failure("eyJhbGciOi");
        m.auth_failure(&"a".repeat(MAX_LABEL_LEN + 1));
        m.auth_failure("");
        for i in 0..MAX_VALUES_PER_LABEL + 20 {
            m.audit_sink_failure(&format!("sink_{i}"));
        }
        let e = scrape(&m);
        assert_eq!(
            e.value("pgward_rate_limited_total", &[("reason", "rate_limited")]),
            Some(2.0)
        );
        let auth = "pgward_auth_failures_total";
        assert_eq!(e.value(auth, &[("reason", "expired_token")]), Some(1.0));
        assert_eq!(e.value(auth, &[("reason", "invalid")]), Some(5.0));
        let sinks = &e
            .family("pgward_audit_sink_failures_total")
            .unwrap()
            .samples;
        assert_eq!(sinks.len(), MAX_VALUES_PER_LABEL + 1);
        assert_eq!(
            e.value("pgward_audit_sink_failures_total", &[("sink", "other")]),
            Some(20.0)
        );
        assert_eq!(
            e.value("pgward_audit_sink_failures_total", &[("sink", "sink_0")]),
            Some(1.0)
        );
    }

    #[test]
    fn reloads_are_counted_by_result() {
        let m = Metrics::new(&[]);
        m.reload(true);
        m.reload(false);
        m.reload(true);
        let e = scrape(&m);
        let r = "pgward_config_reloads_total";
        assert_eq!(e.value(r, &[("result", "ok")]), Some(2.0));
        assert_eq!(e.value(r, &[("result", "error")]), Some(1.0));
    }

    #[test]
    fn pool_gauges_are_read_from_the_probe_at_scrape_time() {
        let m = Metrics::new(&[]);
        let e = scrape(&m);
        assert_eq!(e.value("pgward_db_pool_size", &[]), Some(0.0));
        m.set_pool(PoolStatus {
            size: 3,
            available: 1,
            waiters: 0,
        });
        assert_eq!(scrape(&m).value("pgward_db_pool_available", &[]), Some(1.0));

        let waiting = Arc::new(AtomicU64::new(2));
        let probe_waiting = Arc::clone(&waiting);
        m.set_pool_probe(Box::new(move || PoolStatus {
            size: 8,
            available: 0,
            waiters: probe_waiting.load(Ordering::Relaxed),
        }));
        let e = scrape(&m);
        assert_eq!(e.value("pgward_db_pool_size", &[]), Some(8.0));
        assert_eq!(e.value("pgward_db_pool_available", &[]), Some(0.0));
        assert_eq!(e.value("pgward_db_pool_waiters", &[]), Some(2.0));
        waiting.store(7, Ordering::Relaxed);
        assert_eq!(scrape(&m).value("pgward_db_pool_waiters", &[]), Some(7.0));
    }

    #[test]
    fn strict_parser_rejects_malformed_expositions() {
        let ok = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 1\n";
        assert!(parse(ok).is_ok());
        for bad in [
            // Sample before its family is declared.
            "a_total 1\n",
            // TYPE without HELP, and a family declared twice.
            "# TYPE a_total counter\na_total 1\n",
            "# HELP a A.\n# TYPE a gauge\n# HELP a A.\n# TYPE a gauge\n",
            // A sample of another family.
            "# HELP a A.\n# TYPE a gauge\nb 1\n",
            // Bad escape, unterminated value, missing value, timestamp.
            "# HELP a A.\n# TYPE a gauge\na{x=\"\\t\"} 1\n",
            "# HELP a A.\n# TYPE a gauge\na{x=\"1} 1\n",
            "# HELP a A.\n# TYPE a gauge\na{x=\"1\"}\n",
            "# HELP a A.\n# TYPE a gauge\na 1 1700000000\n",
            // Buckets not cumulative; +Inf not equal to _count; no +Inf.
            "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
            "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 2\n",
            "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
            // No trailing newline.
            "# HELP a A.\n# TYPE a gauge\na 1",
        ] {
            assert!(parse(bad).is_err(), "accepted:\n{bad}");
        }
    }
}
