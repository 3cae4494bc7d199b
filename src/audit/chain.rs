//! The tamper-evident audit chain: sealing events into a hash chain, and verifying a log of
//! sealed events written as JSON Lines.
//!
//! CORE: pure functions of values. The sink that writes lines, rotates files and records the
//! head elsewhere lives at the edge; the key is passed in, never read here.
//!
//! # Sealing
//!
//! [`Chain::seal`] adds four fields to an event (and refuses an event that already has one):
//!
//! - `mac`: `"sha256"`, or `"hmac-sha256"` when the chain has a key, so a verifier knows what
//!   it needs; one chain never mixes the two.
//! - `seq`: 1, 2, 3, ... with no gaps.
//! - `prev`: the `hash` of the event before ([`GENESIS`], 64 zeros, before the first one).
//! - `hash`: lowercase hex SHA-256 (or HMAC-SHA256 under the key) of the canonical encoding of
//!   the sealed event without its `hash` field.
//!
//! Rotation does not restart the chain: the first event of a new file continues the last
//! event of the previous file ([`Chain::resume`]), so rotated files concatenated in order
//! verify as one log.
//!
//! # Canonical encoding
//!
//! JSON text without whitespace; object keys sorted by their UTF-8 bytes at every depth;
//! strings escaped as serde_json escapes them (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, other
//! characters below U+0020 as `\u00xx` in lowercase hex, everything else literal UTF-8);
//! integers in plain decimal; `null`, `true`, `false`. The encoding is written here rather
//! than left to serde_json's map order, which a feature turned on by any crate in the build
//! (`preserve_order`) would change. Fractional numbers are refused at sealing: a float that
//! does not survive re-parsing exactly would hash differently when verified.
//!
//! Each line of the log is the canonical encoding of a sealed event ([`encode_line`]), and
//! the verifier refuses a line that is not: duplicate keys or reformatting could make another
//! reader see something other than what was hashed.
//!
//! # What verification sees
//!
//! [`verify_lines`] reports the first problem with its file, line and `seq`. Deleting the
//! newest events of a log leaves a valid, shorter chain; only a head recorded elsewhere
//! (`seq` and `hash` of the newest event, see [`Chain::head`]) reveals it. Without a key,
//! someone who can write the file can also recompute every hash after an edit; a recorded
//! head or a key (HMAC) is what stops that.

use std::fmt;
use std::fmt::Write as _;

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The `prev` of the first event of a chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// The `mac` of an unkeyed chain.
pub const MAC_PLAIN: &str = "sha256";
/// The `mac` of a keyed chain.
pub const MAC_KEYED: &str = "hmac-sha256";
const RESERVED: [&str; 4] = ["mac", "seq", "prev", "hash"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("the event already has `{0}`, which only the audit chain sets")]
    Reserved(&'static str),
    #[error("the event holds a fractional number at `{0}`; audit events hold integers only")]
    Fractional(String),
    #[error("the audit hmac key is empty or unusable")]
    BadKey,
    #[error("the audit sequence number is exhausted")]
    Exhausted,
    #[error("cannot continue the audit chain after the last event: {0}")]
    Resume(String),
}

/// The newest event of a chain: what a sink records elsewhere so that deleting the end of the
/// log can be seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
}

/// The sealing state: the newest sealed event and the optional HMAC key.
pub struct Chain {
    head: Option<Head>,
    key: Option<Vec<u8>>,
}

impl fmt::Debug for Chain {
    // The key is a secret; Debug output ends up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chain")
            .field("head", &self.head)
            .field("keyed", &self.key.is_some())
            .finish()
    }
}

impl Chain {
    /// A fresh chain: its first event gets `seq` 1 and `prev` [`GENESIS`].
    pub fn new(key: Option<&[u8]>) -> Result<Self, ChainError> {
        if key.is_some_and(<[u8]>::is_empty) {
            return Err(ChainError::BadKey);
        }
        Ok(Self {
            head: None,
            key: key.map(<[u8]>::to_vec),
        })
    }

    /// Continues after `last`, the newest sealed event already written (a restart, or the
    /// first event of a rotated file). `last` must verify under `key` and use the same `mac`.
    pub fn resume(last: &Map<String, Value>, key: Option<&[u8]>) -> Result<Self, ChainError> {
        let mut chain = Self::new(key)?;
        let sealed = check_event(last, key).map_err(|f| ChainError::Resume(f.detail()))?;
        chain.head = Some(sealed);
        Ok(chain)
    }

    /// The newest sealed event, or `None` before the first.
    pub fn head(&self) -> Option<&Head> {
        self.head.as_ref()
    }

    /// Seals `event` as the next link. If the sealed event is then not written, the next
    /// one leaves a gap that verifies as `deleted`: rebuild with [`Chain::resume`] instead.
    pub fn seal(
        &mut self,
        mut event: Map<String, Value>,
    ) -> Result<Map<String, Value>, ChainError> {
        if let Some(field) = RESERVED.into_iter().find(|f| event.contains_key(*f)) {
            return Err(ChainError::Reserved(field));
        }
        if let Some(path) = event.iter().find_map(|(k, v)| fractional(k, v)) {
            return Err(ChainError::Fractional(path));
        }
        let (seq, prev) = match &self.head {
            None => (1, GENESIS.to_string()),
            Some(h) => (
                h.seq.checked_add(1).ok_or(ChainError::Exhausted)?,
                h.hash.clone(),
            ),
        };
        let mac = if self.key.is_some() {
            MAC_KEYED
        } else {
            MAC_PLAIN
        };
        event.insert("mac".into(), mac.into());
        event.insert("seq".into(), seq.into());
        event.insert("prev".into(), prev.into());
        let hash = digest(
            self.key.as_deref(),
            &canonical_without(&event, Some("hash")),
        )
        .ok_or(ChainError::BadKey)?;
        event.insert("hash".into(), hash.clone().into());
        // INVARIANT: the head moves only once the event is fully sealed, so a refused event
        // leaves no gap in `seq`.
        self.head = Some(Head { seq, hash });
        Ok(event)
    }
}

/// The canonical encoding of an event (see the module docs).
pub fn canonical(event: &Map<String, Value>) -> String {
    canonical_without(event, None)
}

/// One log line: the canonical encoding of a sealed event and a newline.
pub fn encode_line(event: &Map<String, Value>) -> String {
    let mut line = canonical(event);
    line.push('\n');
    line
}

fn canonical_without(event: &Map<String, Value>, skip: Option<&str>) -> String {
    // Room for a typical event, so the text is not copied as it grows.
    let mut out = String::with_capacity(1024);
    write_object(&mut out, event, skip);
    out
}

fn write_object(out: &mut String, map: &Map<String, Value>, skip: Option<&str>) {
    // Sorted here whatever order the map keeps (see the module docs).
    let mut entries: Vec<(&String, &Value)> = map
        .iter()
        .filter(|(k, _)| Some(k.as_str()) != skip)
        .collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    out.push('{');
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, k);
        out.push(':');
        write_value(out, v);
    }
    out.push('}');
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, v);
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map, None),
    }
}

fn write_str(out: &mut String, s: &str) {
    out.push('"');
    // Runs of characters that need no escape are copied whole. Every escaped character is
    // ASCII, so the positions around it are character boundaries.
    let mut start = 0;
    for (i, byte) in s.bytes().enumerate() {
        let escaped = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            b if b < 0x20 => "",
            _ => continue,
        };
        out.push_str(s.get(start..i).unwrap_or_default());
        if escaped.is_empty() {
            let _ = write!(out, "\\u{byte:04x}");
        } else {
            out.push_str(escaped);
        }
        start = i + 1;
    }
    out.push_str(s.get(start..).unwrap_or_default());
    out.push('"');
}

fn fractional(path: &str, value: &Value) -> Option<String> {
    match value {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => Some(path.to_string()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| fractional(&format!("{path}[{i}]"), v)),
        Value::Object(map) => map
            .iter()
            .find_map(|(k, v)| fractional(&format!("{path}.{k}"), v)),
        _ => None,
    }
}

pub(super) fn digest(key: Option<&[u8]>, text: &str) -> Option<String> {
    let bytes: Vec<u8> = match key {
        None => Sha256::digest(text.as_bytes()).to_vec(),
        Some(key) => {
            // HMAC takes keys of any length, so this refusal is not expected in practice.
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).ok()?;
            mac.update(text.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
    };
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// What is wrong at the first bad place in a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The event's contents do not match its hash, or the line is not canonical.
    Edited,
    /// `seq` jumps forward and the missing events appear nowhere later.
    Deleted,
    /// `seq` goes backwards or repeats, or a missing event appears later.
    Reordered,
    /// The event is intact but its `prev` is not the hash of the event before it: the event
    /// before was replaced by a forged one with a recomputed hash.
    BrokenLink,
    /// A file's last line has no newline: the final write was cut short.
    Truncated,
    /// Not a JSON object, or `mac`, `seq`, `prev` or `hash` is missing or invalid.
    Malformed,
    /// The event is keyed (HMAC) and no key was given.
    KeyRequired,
    /// The first events fail their hash under the given key.
    WrongKey,
    /// A key was given but the event is unkeyed: the log may have been rewritten without it.
    NotKeyed,
    /// The log ends before the expected head.
    TailTruncated,
    /// The event at the expected head's `seq` has another hash: rewritten from there or before.
    HeadMismatch,
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Edited => "edited",
            Self::Deleted => "deleted",
            Self::Reordered => "reordered",
            Self::BrokenLink => "broken link",
            Self::Truncated => "truncated",
            Self::Malformed => "malformed",
            Self::KeyRequired => "key required",
            Self::WrongKey => "wrong key",
            Self::NotKeyed => "not keyed",
            Self::TailTruncated => "tail truncated",
            Self::HeadMismatch => "head mismatch",
        })
    }
}

/// The first problem in a log. For `TailTruncated`, `line` is one past the last line and
/// `seq` the first missing one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    pub file: String,
    pub line: usize,
    pub seq: Option<u64>,
    pub detail: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.kind)?;
        if let Some(seq) = self.seq {
            write!(f, " at seq {seq}")?;
        }
        write!(f, ": {}", self.detail)
    }
}

/// The outcome of [`verify_lines`]. The counts describe the events that verified before the
/// problem, if any.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub events: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub head: Option<Head>,
    pub problem: Option<Problem>,
    /// Whether the end was checked against a recorded head (without one, a log cut short at
    /// its end still verifies).
    pub head_recorded: bool,
}

impl Report {
    pub fn is_ok(&self) -> bool {
        self.problem.is_none()
    }

    fn fail(mut self, problem: Problem) -> Self {
        self.problem = Some(problem);
        self
    }
}

/// Where verification starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// At the first event of the chain (`seq` 1, `prev` [`GENESIS`]).
    Genesis,
    /// Right after this event, for example the head of the previous rotated file.
    After(Head),
    /// Wherever the first line is (older files removed by retention); its links are trusted.
    Anywhere,
}

/// One line of a log file, without its newline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    pub file: &'a str,
    /// 1-based, within `file`.
    pub number: usize,
    pub text: &'a str,
    /// Whether a newline followed; only the last line of a file can lack one.
    pub terminated: bool,
}

/// The lines of one file's contents, labelled `file`. Chain the iterators of rotated files in
/// order to verify them as one log.
pub fn lines_of<'a>(file: &'a str, content: &'a str) -> impl Iterator<Item = Line<'a>> + Clone {
    content
        .split_inclusive('\n')
        .enumerate()
        .map(move |(i, raw)| {
            let text = raw.strip_suffix('\n');
            Line {
                file,
                number: i + 1,
                text: text.unwrap_or(raw),
                terminated: text.is_some(),
            }
        })
}

enum Fault {
    Kind(ProblemKind, String),
    HashMismatch,
}

impl Fault {
    fn detail(self) -> String {
        match self {
            Self::Kind(_, d) => d,
            Self::HashMismatch => "its hash does not match its contents".into(),
        }
    }
}

fn parse(line: &Line<'_>) -> Result<Map<String, Value>, (ProblemKind, String)> {
    if !line.terminated {
        let why = "the file does not end with a newline: the last write was cut short";
        return Err((ProblemKind::Truncated, why.into()));
    }
    match serde_json::from_str::<Value>(line.text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err((ProblemKind::Malformed, "not a json object".into())),
        Err(e) => Err((ProblemKind::Malformed, format!("not json: {e}"))),
    }
}

/// Checks one event on its own: fields, `mac` against the key, and its hash.
fn check_event(event: &Map<String, Value>, key: Option<&[u8]>) -> Result<Head, Fault> {
    let seq = event.get("seq").and_then(Value::as_u64).filter(|s| *s > 0);
    let hex = |f: &str| event.get(f).and_then(Value::as_str).filter(|h| is_hex64(h));
    let (Some(seq), Some(_), Some(hash)) = (seq, hex("prev"), hex("hash")) else {
        let why = "`seq`, `prev` or `hash` is missing or invalid";
        return Err(Fault::Kind(ProblemKind::Malformed, why.into()));
    };
    match (event.get("mac").and_then(Value::as_str), key) {
        (Some(MAC_KEYED), None) => {
            let why = "the event is sealed with `hmac-sha256`: verify it with the audit key";
            return Err(Fault::Kind(ProblemKind::KeyRequired, why.into()));
        }
        (Some(MAC_PLAIN), Some(_)) => {
            let why = "a key was given but the event is sealed with plain `sha256`: the log may \
                       have been rewritten without the key";
            return Err(Fault::Kind(ProblemKind::NotKeyed, why.into()));
        }
        (Some(MAC_KEYED | MAC_PLAIN), _) => {}
        _ => {
            let why = "`mac` is missing or unknown";
            return Err(Fault::Kind(ProblemKind::Malformed, why.into()));
        }
    }
    if digest(key, &canonical_without(event, Some("hash"))).as_deref() != Some(hash) {
        return Err(Fault::HashMismatch);
    }
    Ok(Head {
        seq,
        hash: hash.to_string(),
    })
}

/// Verifies a log: the lines of one file, or of rotated files chained in order (see
/// [`lines_of`]). `key` must be given for a keyed chain; `head`, the newest event recorded
/// elsewhere, makes deleting the end of the log visible. Events after `head` are accepted
/// (the sink may record it less often than it writes).
pub fn verify_lines<'a, I>(
    lines: I,
    key: Option<&[u8]>,
    start: &Start,
    head: Option<&Head>,
) -> Report
where
    I: IntoIterator<Item = Line<'a>>,
    I::IntoIter: Clone,
{
    let mut report = Report {
        head_recorded: head.is_some(),
        ..Report::default()
    };
    // The event before the next line: (its seq, its hash); `None` trusts the first line.
    let mut before: Option<(u64, String)> = match start {
        Start::Genesis => Some((0, GENESIS.into())),
        Start::After(h) => Some((h.seq, h.hash.clone())),
        Start::Anywhere => None,
    };
    let mut lines = lines.into_iter();
    let mut last_line: Option<Line<'a>> = None;
    while let Some(line) = lines.next() {
        last_line = Some(line);
        let fail = |kind, seq, detail: String| Problem {
            kind,
            file: line.file.to_string(),
            line: line.number,
            seq,
            detail,
        };
        let event = match parse(&line) {
            Ok(event) => event,
            Err((kind, why)) => return report.fail(fail(kind, None, why)),
        };
        let seq_field = event.get("seq").and_then(Value::as_u64);
        let sealed = match check_event(&event, key) {
            Ok(sealed) => sealed,
            // A wrong key fails every event; an edit fails one. So the first event failing
            // under a key is blamed on the key unless the next event verifies.
            Err(Fault::HashMismatch) if key.is_some() && report.events == 0 => {
                let next = lines.clone().find_map(|l| parse(&l).ok());
                let (kind, why) = match next.map(|e| check_event(&e, key).is_ok()) {
                    Some(true) => (ProblemKind::Edited, "its hash does not match its contents"),
                    Some(false) => (
                        ProblemKind::WrongKey,
                        "this event and the next fail their hash under the given key: the key \
                         is wrong",
                    ),
                    None => (
                        ProblemKind::WrongKey,
                        "the only event fails its hash under the given key: the key is wrong, \
                         or the event was edited",
                    ),
                };
                return report.fail(fail(kind, seq_field, why.into()));
            }
            Err(Fault::HashMismatch) => {
                let why = "its hash does not match its contents".into();
                return report.fail(fail(ProblemKind::Edited, seq_field, why));
            }
            Err(Fault::Kind(kind, why)) => return report.fail(fail(kind, seq_field, why)),
        };
        let seq = sealed.seq;
        if encode_line(&event).strip_suffix('\n') != Some(line.text) {
            let why = "the line is not in canonical form (duplicate keys or reformatted)".into();
            return report.fail(fail(ProblemKind::Edited, Some(seq), why));
        }
        if let Some((prev_seq, prev_hash)) = &before {
            let prev_seq = *prev_seq;
            if seq <= prev_seq {
                let why = format!("seq {seq} follows seq {prev_seq}: events are out of order");
                return report.fail(fail(ProblemKind::Reordered, Some(seq), why));
            }
            if seq - prev_seq > 1 {
                let missing = (prev_seq + 1)..seq;
                let later = lines.clone().find(|l| {
                    parse(l)
                        .ok()
                        .and_then(|e| e.get("seq").and_then(Value::as_u64))
                        .is_some_and(|s| missing.contains(&s))
                });
                let (kind, why) = match later {
                    Some(l) => (
                        ProblemKind::Reordered,
                        format!(
                            "seq {seq} comes before a missing event at {}:{}",
                            l.file, l.number
                        ),
                    ),
                    None => (
                        ProblemKind::Deleted,
                        if missing.start == seq - 1 {
                            format!("event {} is missing", missing.start)
                        } else {
                            format!("events {} to {} are missing", missing.start, seq - 1)
                        },
                    ),
                };
                return report.fail(fail(kind, Some(seq), why));
            }
            if event.get("prev").and_then(Value::as_str) != Some(prev_hash.as_str()) {
                let why =
                    format!("`prev` is not the hash of seq {prev_seq}: that event was replaced");
                return report.fail(fail(ProblemKind::BrokenLink, Some(seq), why));
            }
        }
        if let Some(h) = head.filter(|h| h.seq == seq && h.hash != sealed.hash) {
            let why = format!(
                "the recorded head has hash {}: the log was rewritten",
                h.hash
            );
            return report.fail(fail(ProblemKind::HeadMismatch, Some(seq), why));
        }
        // INVARIANT: the counts only ever describe events that verified and linked.
        report.events += 1;
        report.first_seq.get_or_insert(seq);
        report.last_seq = Some(seq);
        before = Some((seq, sealed.hash.clone()));
        report.head = Some(sealed);
    }
    let reached = before.map_or(0, |(seq, _)| seq);
    if let Some(h) = head.filter(|h| h.seq > reached) {
        let problem = Problem {
            kind: ProblemKind::TailTruncated,
            file: last_line.map_or_else(String::new, |l| l.file.to_string()),
            line: last_line.map_or(1, |l| l.number + 1),
            seq: Some(reached + 1),
            detail: format!(
                "the log ends at seq {reached} but the recorded head is seq {}",
                h.seq
            ),
        };
        return report.fail(problem);
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY: &[u8] = b"audit-key-for-tests";
    type At = (ProblemKind, usize, Option<u64>);

    fn event(n: u64) -> Map<String, Value> {
        let v = json!({"who": "alice", "n": n, "why": {"b": [true, null], "a": "x"}});
        v.as_object().unwrap().clone()
    }

    /// Events `from..=to` sealed by `chain`, one line each.
    fn log(chain: &mut Chain, from: u64, to: u64) -> Vec<String> {
        (from..=to)
            .map(|n| encode_line(&chain.seal(event(n)).unwrap()))
            .collect()
    }

    fn verify(lines: &[String], key: Option<&[u8]>, head: Option<&Head>) -> Report {
        let text = lines.concat();
        verify_lines(lines_of("a.jsonl", &text), key, &Start::Genesis, head)
    }

    /// (kind, line, seq) of the problem the log must have.
    fn at(lines: &[String], key: Option<&[u8]>, head: Option<&Head>) -> At {
        let p = verify(lines, key, head).problem.unwrap();
        (p.kind, p.line, p.seq)
    }

    /// The log with line `i`'s `field` set to `value`, re-encoded as a careful editor would.
    fn set(lines: &[String], i: usize, field: &str, value: Value) -> Vec<String> {
        let mut e: Map<String, Value> = serde_json::from_str(&lines[i]).unwrap();
        e.insert(field.into(), value);
        let mut lines = lines.to_vec();
        lines[i] = encode_line(&e);
        lines
    }

    #[test]
    fn a_chain_of_n_events_verifies() {
        let mut chain = Chain::new(None).unwrap();
        let lines = log(&mut chain, 1, 6);
        let first: Map<String, Value> = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(
            (&first["seq"], &first["prev"], &first["mac"]),
            (&json!(1), &json!(GENESIS), &json!("sha256"))
        );
        let report = verify(&lines, None, chain.head());
        assert_eq!(report.problem, None);
        assert_eq!(
            (report.events, report.first_seq, report.last_seq),
            (6, Some(1), Some(6))
        );
        assert_eq!(
            (report.head.as_ref(), chain.head().unwrap().seq),
            (chain.head(), 6)
        );
    }

    #[test]
    fn editing_any_field_of_event_k_is_edited_at_k() {
        let lines = log(&mut Chain::new(None).unwrap(), 1, 5);
        let edits = [
            ("who", json!("mallory"), 3),
            ("n", json!(33), 3),
            ("why", json!({"a": "x"}), 3),
            ("prev", json!(GENESIS), 3),
            ("hash", json!("f".repeat(64)), 3),
            ("seq", json!(4), 4),
        ];
        for (field, value, seq) in edits {
            let edited = set(&lines, 2, field, value);
            assert_eq!(
                at(&edited, None, None),
                (ProblemKind::Edited, 3, Some(seq)),
                "{field}"
            );
            assert_eq!(verify(&edited, None, None).events, 2, "{field}");
        }
        // Flipping `mac` to keyed makes the verifier ask for the key instead.
        let keyed = set(&lines, 2, "mac", json!(MAC_KEYED));
        assert_eq!(
            at(&keyed, None, None),
            (ProblemKind::KeyRequired, 3, Some(3))
        );
    }

    #[test]
    fn a_non_canonical_line_is_edited_even_when_its_hash_holds() {
        let mut lines = log(&mut Chain::new(None).unwrap(), 1, 3);
        let original = lines[1].clone();
        // serde_json keeps the last duplicate (the hashed value); another reader may not.
        lines[1] = original.replacen('{', "{\"who\":\"mallory\",", 1);
        assert_eq!(at(&lines, None, None), (ProblemKind::Edited, 2, Some(2)));
        lines[1] = original.replacen(',', ", ", 1);
        assert_eq!(at(&lines, None, None), (ProblemKind::Edited, 2, Some(2)));
    }

    #[test]
    fn a_replaced_event_with_a_recomputed_hash_breaks_the_next_link() {
        let lines = log(&mut Chain::new(None).unwrap(), 1, 5);
        let mut forged: Map<String, Value> = serde_json::from_str(&lines[2]).unwrap();
        forged.insert("who".into(), json!("mallory"));
        let hash = digest(None, &canonical_without(&forged, Some("hash"))).unwrap();
        let lines = set(&lines, 2, "hash", json!(hash));
        let lines = set(&lines, 2, "who", json!("mallory"));
        assert_eq!(
            at(&lines, None, None),
            (ProblemKind::BrokenLink, 4, Some(4))
        );
    }

    #[test]
    fn deleting_event_k_is_deleted_at_k_plus_1() {
        let lines = log(&mut Chain::new(None).unwrap(), 1, 5);
        for k in 1..=4_usize {
            let mut cut = lines.clone();
            cut.remove(k - 1);
            assert_eq!(
                at(&cut, None, None),
                (ProblemKind::Deleted, k, Some(k as u64 + 1))
            );
            assert_eq!(verify(&cut, None, None).events, k as u64 - 1);
        }
    }

    #[test]
    fn swapped_lines_are_reordered_where_the_order_breaks() {
        let lines = log(&mut Chain::new(None).unwrap(), 1, 6);
        let mut swapped = lines.clone();
        swapped.swap(2, 3);
        assert_eq!(
            at(&swapped, None, None),
            (ProblemKind::Reordered, 3, Some(4))
        );
        let mut swapped = lines.clone();
        swapped.swap(1, 4);
        assert_eq!(
            at(&swapped, None, None),
            (ProblemKind::Reordered, 2, Some(5))
        );
        let mut repeated = lines.clone();
        repeated.insert(3, lines[2].clone());
        assert_eq!(
            at(&repeated, None, None),
            (ProblemKind::Reordered, 4, Some(3))
        );
    }

    #[test]
    fn a_final_line_cut_short_is_truncated() {
        let mut lines = log(&mut Chain::new(None).unwrap(), 1, 4);
        let whole = lines[3].clone();
        lines[3] = whole[..whole.len() / 2].to_string();
        assert_eq!(at(&lines, None, None), (ProblemKind::Truncated, 4, None));
        assert_eq!(verify(&lines, None, None).last_seq, Some(3));
        // Cut just before the newline: the event is whole but the write did not finish.
        lines[3] = whole.trim_end().to_string();
        assert_eq!(at(&lines, None, None), (ProblemKind::Truncated, 4, None));
        // A bad line that is not the last is malformed, not truncated.
        lines[3] = whole;
        lines[1] = "{\"seq\":2\n".into();
        assert_eq!(at(&lines, None, None), (ProblemKind::Malformed, 2, None));
    }

    #[test]
    fn malformed_lines_are_named() {
        let good = log(&mut Chain::new(None).unwrap(), 1, 2);
        let short = r#"{"hash":"00","mac":"sha256","prev":"00","seq":2}"#;
        for bad in ["[1,2]", "", short] {
            let lines = [good[0].clone(), format!("{bad}\n")];
            assert_eq!(at(&lines, None, None).0, ProblemKind::Malformed, "{bad}");
        }
        let unknown_mac = set(&good, 1, "mac", json!("md5"));
        assert_eq!(
            at(&unknown_mac, None, None),
            (ProblemKind::Malformed, 2, Some(2))
        );
    }

    #[test]
    fn deleting_the_tail_shows_only_against_a_recorded_head() {
        let mut chain = Chain::new(None).unwrap();
        let mut lines = log(&mut chain, 1, 5);
        lines.truncate(3);
        let report = verify(&lines, None, None);
        assert_eq!((report.problem, report.last_seq), (None, Some(3)));
        assert_eq!(
            at(&lines, None, chain.head()),
            (ProblemKind::TailTruncated, 4, Some(4))
        );
        assert_eq!(verify(&lines, None, chain.head()).events, 3);
        let one_short = log(&mut Chain::new(None).unwrap(), 1, 5)[..4].to_vec();
        let head = Head {
            seq: 5,
            hash: chain.head().unwrap().hash.clone(),
        };
        assert_eq!(
            at(&one_short, None, Some(&head)),
            (ProblemKind::TailTruncated, 5, Some(5))
        );
        assert_eq!(
            at(&[], None, chain.head()),
            (ProblemKind::TailTruncated, 1, Some(1))
        );
    }

    #[test]
    fn an_unkeyed_log_rewritten_from_scratch_fails_the_recorded_head() {
        let mut chain = Chain::new(None).unwrap();
        log(&mut chain, 1, 4);
        let mut forger = Chain::new(None).unwrap();
        let mut forged = log(&mut forger, 1, 3);
        forged.push(encode_line(&forger.seal(event(99)).unwrap()));
        assert!(verify(&forged, None, None).is_ok());
        assert_eq!(
            at(&forged, None, chain.head()),
            (ProblemKind::HeadMismatch, 4, Some(4))
        );
    }

    #[test]
    fn a_keyed_chain_needs_the_right_key() {
        let mut chain = Chain::new(Some(KEY)).unwrap();
        let lines = log(&mut chain, 1, 4);
        assert!(lines[0].contains(r#""mac":"hmac-sha256""#));
        assert!(verify(&lines, Some(KEY), chain.head()).is_ok());
        assert_eq!(
            at(&lines, None, None),
            (ProblemKind::KeyRequired, 1, Some(1))
        );
        let wrong = verify(&lines, Some(b"not-the-key"), None).problem.unwrap();
        assert_eq!(
            (wrong.kind, wrong.line, wrong.seq),
            (ProblemKind::WrongKey, 1, Some(1))
        );
        assert!(wrong.detail.ends_with("the key is wrong"), "{wrong}");
        // One event alone cannot tell a wrong key from an edit; the message says both.
        let only = verify(&lines[..1], Some(b"not-the-key"), None)
            .problem
            .unwrap();
        assert_eq!(
            (only.kind, only.line, only.seq),
            (ProblemKind::WrongKey, 1, Some(1))
        );
        assert!(
            only.detail
                .ends_with("the key is wrong, or the event was edited"),
            "{only}"
        );
        // With the right key, an edit of the first event is an edit.
        let edited = set(&lines, 0, "who", json!("mallory"));
        assert_eq!(
            at(&edited, Some(KEY), None),
            (ProblemKind::Edited, 1, Some(1))
        );
        // An unkeyed log where a keyed one is expected.
        let plain = log(&mut Chain::new(None).unwrap(), 1, 2);
        assert_eq!(
            at(&plain, Some(KEY), None),
            (ProblemKind::NotKeyed, 1, Some(1))
        );
    }

    fn two_files<'a>(a: &'a str, b: &'a str) -> Vec<Line<'a>> {
        lines_of("a.jsonl", a)
            .chain(lines_of("b.jsonl", b))
            .collect()
    }

    #[test]
    fn rotation_keeps_the_chain_across_files() {
        let mut chain = Chain::new(Some(KEY)).unwrap();
        let a = log(&mut chain, 1, 3).concat();
        // A restarted sink resumes from the last line of the previous file.
        let last_a = serde_json::from_str(a.lines().last().unwrap()).unwrap();
        let mut chain = Chain::resume(&last_a, Some(KEY)).unwrap();
        let b = log(&mut chain, 4, 6);
        let b_text = b.concat();
        let report = verify_lines(
            two_files(&a, &b_text),
            Some(KEY),
            &Start::Genesis,
            chain.head(),
        );
        assert_eq!(
            (report.problem, report.events, report.last_seq),
            (None, 6, Some(6))
        );
        // The second file alone continues the first file's head, not the genesis.
        let head_a = Head {
            seq: 3,
            hash: last_a["hash"].as_str().unwrap().into(),
        };
        let b_alone = |start| verify_lines(lines_of("b.jsonl", &b_text), Some(KEY), &start, None);
        assert!(b_alone(Start::After(head_a)).is_ok());
        assert!(b_alone(Start::Anywhere).is_ok());
        let p = b_alone(Start::Genesis).problem.unwrap();
        assert_eq!((p.kind, p.line, p.seq), (ProblemKind::Deleted, 1, Some(4)));
        // A problem in the second file names that file and its own line.
        let b_edited = set(&b, 1, "n", json!(0)).concat();
        let report = verify_lines(two_files(&a, &b_edited), Some(KEY), &Start::Genesis, None);
        let p = report.problem.unwrap();
        assert_eq!(
            p.to_string(),
            "b.jsonl:2: edited at seq 5: its hash does not match its contents"
        );
        assert_eq!(
            (p.kind, p.line, p.seq, report.events),
            (ProblemKind::Edited, 2, Some(5), 4)
        );
    }

    #[test]
    fn sealing_refuses_reserved_fields_fractions_and_empty_keys() {
        let mut chain = Chain::new(None).unwrap();
        for field in RESERVED {
            let mut e = event(1);
            e.insert(field.into(), json!(1));
            assert_eq!(chain.seal(e), Err(ChainError::Reserved(field)));
        }
        let mut e = event(1);
        e.insert("rows".into(), json!([1, {"ms": 1.5}]));
        assert_eq!(
            chain.seal(e),
            Err(ChainError::Fractional("rows[1].ms".into()))
        );
        // Refusals leave no gap.
        assert_eq!(chain.seal(event(1)).unwrap()["seq"], json!(1));
        assert_eq!(Chain::new(Some(b"")).unwrap_err(), ChainError::BadKey);
    }

    #[test]
    fn resume_continues_only_a_verified_event_of_the_same_kind() {
        let last = Chain::new(Some(KEY)).unwrap().seal(event(1)).unwrap();
        let plain = Chain::new(None).unwrap().seal(event(1)).unwrap();
        let mut edited = last.clone();
        edited.insert("who".into(), json!("mallory"));
        let refused = |e: &Map<String, Value>, key| match Chain::resume(e, key) {
            Err(ChainError::Resume(why)) => why,
            other => format!("not refused: {other:?}"),
        };
        assert!(refused(&last, None).contains("`hmac-sha256`"));
        assert!(refused(&plain, Some(KEY)).contains("plain `sha256`"));
        assert_eq!(
            refused(&edited, Some(KEY)),
            "its hash does not match its contents"
        );
        let next = Chain::resume(&last, Some(KEY))
            .unwrap()
            .seal(event(2))
            .unwrap();
        assert_eq!((&next["seq"], &next["prev"]), (&json!(2), &last["hash"]));
    }

    #[test]
    fn the_canonical_encoding_is_sorted_compact_and_escaped_like_serde_json() {
        let v =
            json!({"b": 1, "a": {"z": [-2, "q"], "y": null}, "c": false, "é": "\u{1}\"\\\n\u{7f}"});
        let text = canonical(v.as_object().unwrap());
        assert_eq!(
            text,
            r#"{"a":{"y":null,"z":[-2,"q"]},"b":1,"c":false,"é":"\u0001\"\\\n"#.to_string()
                + "\u{7f}\"}"
        );
        let every_ascii: String = (0u8..0x80).map(char::from).collect();
        let one: Map<String, Value> = [(every_ascii.clone(), json!(every_ascii))]
            .into_iter()
            .collect();
        assert_eq!(canonical(&one), serde_json::to_string(&one).unwrap());
        // Escapes between, before and after multi-byte characters, and none at all.
        for text in ["é\u{1}ü\"ß", "\n日本\t", "\"", "", "plain", "\u{1f}😀\\"] {
            let one: Map<String, Value> = [(text.to_string(), json!(text))].into_iter().collect();
            assert_eq!(
                canonical(&one),
                serde_json::to_string(&one).unwrap(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn debug_output_hides_the_key() {
        let text = format!("{:?}", Chain::new(Some(KEY)).unwrap());
        assert_eq!(text, "Chain { head: None, keyed: true }");
    }
}
