//! Redaction of result values: per-column strategies, and a key-pattern safety net over
//! column names and nested JSON object keys.
//!
//! CORE: pure functions of values; the hash key is passed in, never read here.

use hmac::{Hmac, KeyInit, Mac};
use regex::RegexSet;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

/// What happens to a redacted column's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Replaced by a fixed marker; NULL stays NULL so the model can still count missing values.
    Mask,
    /// Replaced by a keyed HMAC-SHA256 digest: equal values stay equal (joins by eye, counting
    /// distinct people) without revealing the value.
    Hash,
    /// Removed from the result entirely (and left out of `*`).
    Drop,
}

/// The marker a masked value becomes.
pub const MASK: &str = "[REDACTED]";

/// Key patterns applied when the config names none.
pub const DEFAULT_KEY_PATTERNS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "api[_-]?key",
    "ssn",
    "social[_-]?security",
    "credit[_-]?card",
    "card[_-]?number",
    "cvv",
];

#[derive(Debug, thiserror::Error)]
pub enum RedactError {
    #[error("invalid key pattern `{pattern}`: {reason}")]
    Pattern { pattern: String, reason: String },
}

/// The compiled redaction settings.
#[derive(Debug, Clone)]
pub struct Redactor {
    key_patterns: RegexSet,
    hash_key: Vec<u8>,
}

/// What redaction did to one result, for the result's metadata and the audit.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct RedactionReport {
    /// Columns masked, hashed or dropped by a column strategy.
    pub columns: Vec<String>,
    /// Keys masked by the key-pattern safety net (column names or nested JSON keys).
    pub keys: Vec<String>,
}

impl Redactor {
    /// Builds a redactor; patterns are case-insensitive regular expressions matched anywhere
    /// in a key (after removing spaces, so "api key" matches "api_key" and "ApiKey").
    pub fn new(patterns: &[String], hash_key: Vec<u8>) -> Result<Self, RedactError> {
        let compiled: Vec<String> = patterns.iter().map(|p| format!("(?i){p}")).collect();
        let key_patterns = RegexSet::new(&compiled).map_err(|e| RedactError::Pattern {
            pattern: patterns.join(", "),
            reason: e.to_string(),
        })?;
        Ok(Self {
            key_patterns,
            hash_key,
        })
    }

    /// Whether a key name looks sensitive.
    pub fn key_is_sensitive(&self, key: &str) -> bool {
        let squashed: String = key.chars().filter(|c| !c.is_whitespace()).collect();
        self.key_patterns.is_match(&squashed)
    }

    /// Applies a column strategy to one value. `Drop` is handled by the caller (the column
    /// disappears); here it masks, so a caller mistake can never leak.
    pub fn apply(&self, strategy: Strategy, value: &Value) -> Value {
        match (strategy, value) {
            (_, Value::Null) => Value::Null,
            (Strategy::Hash, v) => Value::String(self.hash(v)),
            (Strategy::Mask | Strategy::Drop, _) => Value::String(MASK.to_string()),
        }
    }

    fn hash(&self, value: &Value) -> String {
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(&self.hash_key) {
            Ok(m) => m,
            // HMAC takes keys of any length; this arm cannot be reached, and masking is the
            // safe answer if it ever were.
            Err(_) => return MASK.to_string(),
        };
        mac.update(text.as_bytes());
        let digest = mac.finalize().into_bytes();
        let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        format!("hmac:{hex}")
    }

    /// The safety net: masks the values of nested JSON object keys that look sensitive.
    /// Returns the paths it masked.
    pub fn scrub_json(&self, value: &mut Value, path: &str, hits: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    let p = format!("{path}.{k}");
                    if self.key_is_sensitive(k) && !v.is_null() {
                        *v = Value::String(MASK.to_string());
                        hits.push(p);
                    } else {
                        self.scrub_json(v, &p, hits);
                    }
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter_mut().enumerate() {
                    self.scrub_json(v, &format!("{path}[{i}]"), hits);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn redactor() -> Redactor {
        let pats: Vec<String> = DEFAULT_KEY_PATTERNS.iter().map(|s| s.to_string()).collect();
        Redactor::new(&pats, b"k".to_vec()).unwrap()
    }

    #[test]
    fn mask_keeps_null_and_hides_value() {
        let r = redactor();
        assert_eq!(r.apply(Strategy::Mask, &json!("a@b.c")), json!(MASK));
        assert_eq!(r.apply(Strategy::Mask, &Value::Null), Value::Null);
    }

    #[test]
    fn hash_is_keyed_stable_and_hides_value() {
        let r = redactor();
        let a = r.apply(Strategy::Hash, &json!("alice"));
        assert_eq!(a, r.apply(Strategy::Hash, &json!("alice")));
        assert_ne!(a, r.apply(Strategy::Hash, &json!("bob")));
        let other = Redactor::new(&[], b"other".to_vec()).unwrap();
        assert_ne!(a, other.apply(Strategy::Hash, &json!("alice")));
        assert!(!a.to_string().contains("alice"));
        assert!(a.as_str().unwrap().starts_with("hmac:"));
    }

    #[test]
    fn key_patterns_match_common_spellings() {
        let r = redactor();
        for k in [
            "password",
            "User_Password",
            "api key",
            "ApiKey",
            "SSN",
            "credit_card",
        ] {
            assert!(r.key_is_sensitive(k), "{k}");
        }
        for k in ["email", "name", "total"] {
            assert!(!r.key_is_sensitive(k), "{k}");
        }
    }

    #[test]
    fn nested_json_keys_are_scrubbed() {
        let r = redactor();
        let mut v = json!({"a": {"password": "p", "ok": 1}, "list": [{"token": "t"}]});
        let mut hits = vec![];
        r.scrub_json(&mut v, "col", &mut hits);
        assert_eq!(
            v,
            json!({"a": {"password": MASK, "ok": 1}, "list": [{"token": MASK}]})
        );
        assert_eq!(hits, vec!["col.a.password", "col.list[0].token"]);
    }
}
