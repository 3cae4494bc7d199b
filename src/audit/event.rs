//! Audit events (CORE): what one tool call, one failed authentication or one rate-limit refusal
//! leaves in the audit trail, built as pure functions of values (the caller passes the clock).
//!
//! INVARIANT (DESIGN §3.9): an event never holds a secret, a token, a redacted value or a
//! literal of model-written SQL. Arguments pass through [`audit_arguments`] (sensitive keys
//! masked, sizes bounded, no fractional numbers); SQL is recorded only in its normalized form
//! (every literal replaced by a placeholder) with its fingerprint.

use serde_json::{Map, Value, json};

use crate::auth::{AuthMethod, Principal};

/// How a call ended, for the audit trail and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Served.
    Success,
    /// Refused by policy: scopes, the SQL check, bad arguments, an unknown tool.
    Denied,
    /// Allowed, but failed: the database, a timeout, a cancellation, an internal error.
    Error,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Success => "success",
            Decision::Denied => "denied",
            Decision::Error => "error",
        }
    }

    /// Classifies a call by its reason codes: any failure code makes it an error, other codes
    /// are refusals, none is a success.
    pub fn from_codes(is_error: bool, codes: &[String]) -> Self {
        const FAILURES: [&str; 8] = [
            "database_error",
            "query_timeout",
            "cancelled",
            "unsupported_type",
            "database_unavailable",
            "row_too_large",
            "internal_error",
            "audit_unavailable",
        ];
        if !is_error {
            Decision::Success
        } else if codes.iter().any(|c| FAILURES.contains(&c.as_str())) {
            Decision::Error
        } else {
            Decision::Denied
        }
    }
}

/// Who made a request, from where.
#[derive(Debug, Clone)]
pub struct Caller<'a> {
    pub principal: Option<&'a Principal>,
    /// The client's address, or `stdio`.
    pub client: &'a str,
    pub request_id: &'a str,
    /// The MCP session, when the transport has one.
    pub session_id: Option<&'a str>,
}

/// The SQL of a call as the audit trail keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlRecord {
    /// Literals replaced by placeholders, and the fingerprint of that text.
    Normalized {
        normalized: String,
        fingerprint: String,
    },
    /// The text did not parse; only its length is kept (it could hold anything).
    Unparsed { length: usize },
}

/// One tool call's facts.
#[derive(Debug, Clone)]
pub struct ToolCall<'a> {
    pub tool: &'a str,
    /// Already passed through [`audit_arguments`].
    pub arguments: Value,
    pub sql: Option<SqlRecord>,
    pub decision: Decision,
    pub codes: Vec<String>,
    pub rows: u64,
    pub truncated: bool,
    pub response_bytes: u64,
    pub duration_ms: u64,
}

/// Longest tool name, argument key or string value kept in an event.
const MAX_TEXT: usize = 256;
/// Longest array kept (the rest is counted).
const MAX_ITEMS: usize = 32;
/// Deepest nesting kept.
const MAX_DEPTH: usize = 4;
const MASK: &str = "[REDACTED]";

fn method(m: &AuthMethod) -> &'static str {
    match m {
        AuthMethod::Jwt => "jwt",
        AuthMethod::ApiKey => "api_key",
        AuthMethod::ClientCert => "client_cert",
        AuthMethod::Stdio => "stdio",
    }
}

fn caller_fields(event: &mut Map<String, Value>, caller: &Caller<'_>) {
    event.insert("request_id".into(), json!(bounded(caller.request_id)));
    if let Some(s) = caller.session_id {
        event.insert("session_id".into(), json!(bounded(s)));
    }
    event.insert("client".into(), json!(bounded(caller.client)));
    if let Some(p) = caller.principal {
        event.insert(
            "principal".into(),
            json!({
                "subject": bounded(&p.subject),
                "issuer": p.issuer.as_deref().map(bounded),
                "method": method(&p.method),
            }),
        );
    }
}

fn base(kind: &str, ts: &str) -> Map<String, Value> {
    let mut event = Map::new();
    event.insert("ts".into(), json!(ts));
    event.insert("kind".into(), json!(kind));
    event
}

/// The event of one tool call, allowed or refused. `ts` is RFC 3339 UTC.
pub fn tool_call(ts: &str, caller: &Caller<'_>, call: &ToolCall<'_>) -> Map<String, Value> {
    let mut event = base("tool_call", ts);
    caller_fields(&mut event, caller);
    event.insert("tool".into(), json!(bounded(call.tool)));
    event.insert("arguments".into(), call.arguments.clone());
    match &call.sql {
        Some(SqlRecord::Normalized {
            normalized,
            fingerprint,
        }) => {
            event.insert("sql".into(), json!(normalized));
            event.insert("sql_fingerprint".into(), json!(fingerprint));
        }
        Some(SqlRecord::Unparsed { length }) => {
            event.insert("sql_unparsed_length".into(), json!(length));
        }
        None => {}
    }
    event.insert("decision".into(), json!(call.decision.as_str()));
    event.insert(
        "codes".into(),
        json!(call.codes.iter().map(|c| bounded(c)).collect::<Vec<_>>()),
    );
    event.insert("rows".into(), json!(call.rows));
    event.insert("truncated".into(), json!(call.truncated));
    event.insert("response_bytes".into(), json!(call.response_bytes));
    event.insert("duration_ms".into(), json!(call.duration_ms));
    event
}

/// A request refused because its credential did not authenticate; `reason` is an
/// [`AuthFailure`](crate::auth::AuthFailure) code. The credential itself is never recorded.
pub fn auth_failure(ts: &str, caller: &Caller<'_>, reason: &str) -> Map<String, Value> {
    let mut event = base("auth_failure", ts);
    caller_fields(&mut event, caller);
    event.insert("decision".into(), json!("denied"));
    event.insert("codes".into(), json!([reason]));
    event
}

/// A request refused by a rate limit, an in-flight cap or the failed-authentication throttle.
pub fn rate_limited(ts: &str, caller: &Caller<'_>, reason: &str) -> Map<String, Value> {
    let mut event = base("rate_limited", ts);
    caller_fields(&mut event, caller);
    event.insert("decision".into(), json!("denied"));
    event.insert("codes".into(), json!([reason]));
    event
}

/// The arguments of a call as the audit trail may keep them: values under keys that look
/// sensitive (per `is_sensitive`, the redaction key patterns) masked, strings cut to 256
/// characters, arrays to 32 items, nesting to 4 levels, and fractional numbers written as
/// strings (the chain hashes integers only).
pub fn audit_arguments(args: &Map<String, Value>, is_sensitive: &dyn Fn(&str) -> bool) -> Value {
    Value::Object(bounded_object(args, is_sensitive, 0))
}

fn bounded_object(
    obj: &Map<String, Value>,
    is_sensitive: &dyn Fn(&str) -> bool,
    depth: usize,
) -> Map<String, Value> {
    let mut out = Map::new();
    for (i, (k, v)) in obj.iter().enumerate() {
        if i >= MAX_ITEMS {
            out.insert("…".into(), json!(format!("{} more keys", obj.len() - i)));
            break;
        }
        let value = if is_sensitive(k) {
            json!(MASK)
        } else {
            bounded_value(v, is_sensitive, depth + 1)
        };
        out.insert(bounded(k), value);
    }
    out
}

fn bounded_value(v: &Value, is_sensitive: &dyn Fn(&str) -> bool, depth: usize) -> Value {
    match v {
        Value::Null | Value::Bool(_) => v.clone(),
        Value::Number(n) if n.is_i64() || n.is_u64() => v.clone(),
        Value::Number(n) => json!(n.to_string()),
        Value::String(s) => json!(bounded(s)),
        _ if depth >= MAX_DEPTH => json!("[nested]"),
        Value::Array(items) => {
            let mut out: Vec<Value> = items
                .iter()
                .take(MAX_ITEMS)
                .map(|i| bounded_value(i, is_sensitive, depth + 1))
                .collect();
            if items.len() > MAX_ITEMS {
                out.push(json!(format!("{} more items", items.len() - MAX_ITEMS)));
            }
            Value::Array(out)
        }
        Value::Object(o) => Value::Object(bounded_object(o, is_sensitive, depth)),
    }
}

/// At most [`MAX_TEXT`] characters, control characters replaced (an event is one line).
fn bounded(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(MAX_TEXT)
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect();
    if s.chars().count() > MAX_TEXT {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn alice() -> Principal {
        Principal {
            subject: "alice".into(),
            issuer: Some("https://idp.example".into()),
            method: AuthMethod::Jwt,
            scopes: BTreeSet::from(["db:read".to_string()]),
            claims: Default::default(),
        }
    }

    #[test]
    fn a_tool_call_event_has_every_field() {
        let p = alice();
        let caller = Caller {
            principal: Some(&p),
            client: "10.0.0.7",
            request_id: "r-1",
            session_id: None,
        };
        let call = ToolCall {
            tool: "query",
            arguments: json!({}),
            sql: Some(SqlRecord::Normalized {
                normalized: "SELECT id FROM public.orders WHERE id = ?".into(),
                fingerprint: "0123456789abcdef".into(),
            }),
            decision: Decision::Success,
            codes: vec![],
            rows: 3,
            truncated: false,
            response_bytes: 512,
            duration_ms: 12,
        };
        let event = tool_call("2026-11-26T16:00:00.000Z", &caller, &call);
        assert_eq!(
            Value::Object(event),
            json!({
                "ts": "2026-11-26T16:00:00.000Z",
                "kind": "tool_call",
                "request_id": "r-1",
                "client": "10.0.0.7",
                "principal": {"subject": "alice", "issuer": "https://idp.example", "method": "jwt"},
                "tool": "query",
                "arguments": {},
                "sql": "SELECT id FROM public.orders WHERE id = ?",
                "sql_fingerprint": "0123456789abcdef",
                "decision": "success",
                "codes": [],
                "rows": 3,
                "truncated": false,
                "response_bytes": 512,
                "duration_ms": 12,
            })
        );
    }

    #[test]
    fn refusals_and_failures_are_told_apart() {
        let codes = |c: &[&str]| c.iter().map(|s| (*s).to_string()).collect::<Vec<_>>();
        assert_eq!(Decision::from_codes(false, &[]), Decision::Success);
        for denied in [
            &["table_not_allowed", "column_not_allowed"][..],
            &["insufficient_scope"],
            &["invalid_arguments"],
            &["unknown_tool"],
        ] {
            assert_eq!(Decision::from_codes(true, &codes(denied)), Decision::Denied);
        }
        for failed in [
            "database_error",
            "query_timeout",
            "cancelled",
            "audit_unavailable",
        ] {
            assert_eq!(
                Decision::from_codes(true, &codes(&[failed])),
                Decision::Error
            );
        }
    }

    #[test]
    fn arguments_are_masked_bounded_and_integral() {
        let sensitive = |k: &str| k.contains("password") || k.contains("token");
        let args = json!({
            "customer_id": 42,
            "ratio": 0.5,
            "api_token": "tok-123",
            "nested": {"password": "hunter2", "deep": {"a": {"b": {"c": 1}}}},
            "long": "x".repeat(300),
            "list": (0..40).collect::<Vec<_>>(),
            "line": "a\nb",
        });
        let Value::Object(args) = args else { panic!() };
        let out = audit_arguments(&args, &sensitive);
        assert_eq!(out["customer_id"], json!(42));
        assert_eq!(out["ratio"], json!("0.5"));
        assert_eq!(out["api_token"], json!(MASK));
        assert_eq!(out["nested"]["password"], json!(MASK));
        assert_eq!(out["nested"]["deep"]["a"]["b"], json!("[nested]"));
        assert_eq!(out["long"].as_str().unwrap().chars().count(), MAX_TEXT + 1);
        assert_eq!(out["list"].as_array().unwrap().len(), MAX_ITEMS + 1);
        assert_eq!(out["list"][MAX_ITEMS], json!("8 more items"));
        assert_eq!(out["line"], json!("a\u{fffd}b"));
        let text = out.to_string();
        assert!(
            !text.contains("tok-123") && !text.contains("hunter2"),
            "{text}"
        );
    }

    #[test]
    fn auth_failures_and_rate_limits_name_the_reason_and_no_credential() {
        let caller = Caller {
            principal: None,
            client: "192.0.2.1",
            request_id: "r-2",
            session_id: None,
        };
        let e = auth_failure("t", &caller, "expired_token");
        assert_eq!(
            Value::Object(e),
            json!({"ts": "t", "kind": "auth_failure", "request_id": "r-2", "client": "192.0.2.1",
                   "decision": "denied", "codes": ["expired_token"]})
        );
        let p = alice();
        let caller = Caller {
            principal: Some(&p),
            ..caller
        };
        let e = rate_limited("t", &caller, "rate_limited");
        assert_eq!(e["kind"], json!("rate_limited"));
        assert_eq!(e["principal"]["subject"], json!("alice"));
        assert_eq!(e["codes"], json!(["rate_limited"]));
    }
}
