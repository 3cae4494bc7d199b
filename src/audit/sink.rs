//! EDGE: where sealed audit events are written. One [`AuditLog`] per process seals each event
//! into the chain ([`super::chain`]) and writes the same line to every configured sink, in
//! order, before the call's answer leaves.
//!
//! - **stderr**: one JSON line per event.
//! - **postgres**: one row per event in `pgward_audit.events`, through its own connection and
//!   an INSERT-only role ([`super::postgres`]).
//! - **file**: JSON Lines, one `write` per event on a file opened for appending (so the
//!   kernel has the line before the call's answer leaves), created `0600`. When a write would
//!   grow the file past `audit.file_max_bytes`, it is renamed to `<file>.1` (older ones shift
//!   up to `audit.file_keep`) and a new file continues the same chain. The newest event's `seq`
//!   and `hash` are kept in `<file>.head`, overwritten in place after each event with one
//!   positioned write of a fixed-size record, so deleting the end of the log shows up at
//!   start-up and in `pgward audit verify`. These small writes are made inline, under the
//!   audit lock every event takes anyway: a hop to a blocking thread per write would cost more
//!   than the write.
//!
//! At start the chain resumes after the last event of the file (or of `<file>.1` when the file
//! is empty). A file whose last line is incomplete, that ends before its recorded head, or
//! whose last event does not verify stops start-up: pgward never writes on after a log it
//! cannot vouch for.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value};

use super::chain::{self, Chain, Head};
use super::postgres::{PgSink, PgSinkError};
use crate::config::types::{AuditConfig, FailurePolicy};

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit.file `{path}`: {reason}")]
    File { path: String, reason: String },
    #[error("audit chain: {0}")]
    Chain(#[from] chain::ChainError),
    #[error("audit stderr: {0}")]
    Stderr(String),
    #[error("audit.postgres_url: {0}")]
    Postgres(#[from] PgSinkError),
    #[error("{0}")]
    Setup(String),
}

impl AuditError {
    /// The sink that failed, as a metrics label.
    pub fn sink(&self) -> &'static str {
        match self {
            AuditError::File { .. } => "file",
            AuditError::Chain(_) => "chain",
            AuditError::Stderr(_) => "stderr",
            AuditError::Postgres(_) => "postgres",
            AuditError::Setup(_) => "setup",
        }
    }
}

struct FileSink {
    path: PathBuf,
    file: std::fs::File,
    /// Which file `file` is, to notice the path now naming another file or none.
    file_id: FileId,
    /// `<file>.head`, open for overwriting in place once the first event is written.
    head: Option<(std::fs::File, FileId)>,
    /// The head file's length (longer than a record only when an older pgward wrote it).
    head_len: u64,
    size: u64,
    max_bytes: u64,
    keep: u32,
}

struct State {
    chain: Chain,
    file: Option<FileSink>,
    stderr: bool,
    postgres: Option<PgSink>,
}

/// The process's audit log: the chain and its sinks.
pub struct AuditLog {
    state: tokio::sync::Mutex<State>,
    policy: FailurePolicy,
    failures: AtomicU64,
    /// Whether the last event was written to every sink.
    healthy: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("policy", &self.policy)
            .field("failures", &self.failures.load(Ordering::Relaxed))
            .finish()
    }
}

impl AuditLog {
    /// Opens the sinks and resumes the chain after the newest event already written. With
    /// both a file and a PostgreSQL table, their newest events must be the same one.
    pub async fn open(cfg: &AuditConfig) -> Result<Self, AuditError> {
        let key = cfg.hmac_key.as_deref().map(str::as_bytes);
        let (file_last, file) = match &cfg.file {
            Some(path) => {
                let path = PathBuf::from(path);
                let last = last_event(&path).await?;
                let file = open_append(&path)?;
                let meta = file.metadata().map_err(|e| file_error(&path, e))?;
                let sink = FileSink {
                    path,
                    file,
                    file_id: FileId::of(&meta),
                    head: None,
                    head_len: 0,
                    size: meta.len(),
                    max_bytes: cfg.file_max_bytes,
                    keep: cfg.file_keep,
                };
                (last, Some(sink))
            }
            None => (None, None),
        };
        let (pg_last, postgres) = match &cfg.postgres_url {
            Some(url) => {
                let pg = PgSink::connect(url, &cfg.postgres_tls_settings()).await?;
                // INVARIANT: the audit role can only append. A role that can rewrite the table
                // could also rewrite the evidence, so pgward does not start with one.
                let powers = pg.rewrite_powers().await?;
                if !powers.is_empty() {
                    return Err(AuditError::Setup(format!(
                        "audit.postgres_url: the role can {} the audit table; use a role that is only a member of pgward_audit_writer (see migrations/002_audit.sql)",
                        powers.join(", ")
                    )));
                }
                (pg.head().await?, Some(pg))
            }
            None => (None, None),
        };
        let seq_of = |e: &Option<Map<String, Value>>| {
            e.as_ref()
                .and_then(|e| e.get("seq"))
                .and_then(Value::as_u64)
        };
        let hash_of = |e: &Option<Map<String, Value>>| {
            e.as_ref()
                .and_then(|e| e.get("hash"))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let last = match (file.is_some(), postgres.is_some()) {
            (true, true) => {
                // INVARIANT: both sinks hold the same chain; writing on after two different
                // ends would leave one of them unverifiable from its start.
                if seq_of(&file_last) != seq_of(&pg_last)
                    || hash_of(&file_last) != hash_of(&pg_last)
                {
                    return Err(AuditError::Setup(format!(
                        "audit: the file ends at seq {} but the PostgreSQL table at seq {}; both sinks must hold the same chain (start both empty, or restore the one that is behind)",
                        seq_of(&file_last).unwrap_or(0),
                        seq_of(&pg_last).unwrap_or(0)
                    )));
                }
                file_last
            }
            (true, false) => file_last,
            (false, _) => pg_last,
        };
        let chain = match &last {
            Some(event) => Chain::resume(event, key)
                .map_err(|e| AuditError::Setup(format!("audit: cannot continue the chain: {e}")))?,
            None => Chain::new(key)?,
        };
        Ok(Self {
            state: tokio::sync::Mutex::new(State {
                chain,
                file,
                stderr: cfg.stderr,
                postgres,
            }),
            policy: cfg.failure_policy,
            failures: AtomicU64::new(0),
            healthy: std::sync::atomic::AtomicBool::new(true),
        })
    }

    pub fn policy(&self) -> FailurePolicy {
        self.policy
    }

    /// Events that could not be written to every sink.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Seals `event` and writes it to every sink. On error the failure is counted and logged
    /// (without the event); the caller applies the failure policy.
    pub async fn record(&self, event: Map<String, Value>) -> Result<(), AuditError> {
        let result = self.write(event).await;
        self.healthy.store(result.is_ok(), Ordering::Relaxed);
        if let Err(e) = &result {
            self.failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "audit event not written");
        }
        result
    }

    async fn write(&self, event: Map<String, Value>) -> Result<(), AuditError> {
        let mut state = self.state.lock().await;
        let sealed = state.chain.seal(event)?;
        let line = chain::encode_line(&sealed);
        let head = state.chain.head().cloned();
        let mut first_error = None;
        if let Some(file) = state.file.as_mut()
            && let Err(e) = file.append(line.as_bytes(), head.as_ref())
        {
            first_error.get_or_insert(e);
        }
        if state.stderr
            && let Err(e) = write_stderr(line.as_bytes())
        {
            first_error.get_or_insert(e);
        }
        if let (Some(pg), Some(head)) = (state.postgres.as_ref(), head.as_ref())
            && let Err(e) = pg.append(head.seq, &head.hash, &line).await
        {
            first_error.get_or_insert(e.into());
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// For `/readyz`: the last event reached every sink, and the file (if any) is still there.
    pub async fn writable(&self) -> bool {
        if !self.healthy.load(Ordering::Relaxed) {
            return false;
        }
        let state = self.state.lock().await;
        let file_ok = match &state.file {
            Some(f) => tokio::fs::try_exists(&f.path).await.unwrap_or(false),
            None => true,
        };
        let pg_ok = match &state.postgres {
            Some(pg) => pg.reachable().await,
            None => true,
        };
        file_ok && pg_ok
    }
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> AuditError {
    AuditError::File {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn write_stderr(line: &[u8]) -> Result<(), AuditError> {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    err.write_all(line)
        .and_then(|()| err.flush())
        .map_err(|e| AuditError::Stderr(e.kind().to_string()))
}

fn open_append(path: &Path) -> Result<std::fs::File, AuditError> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(|e| file_error(path, e))
}

/// Opens `<file>.head` for overwriting in place (created `0600`, never truncated on open: a
/// record is only ever replaced by the next one).
fn open_head(path: &Path) -> Result<std::fs::File, AuditError> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).truncate(false).read(true).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(|e| file_error(path, e))
}

/// The size of a head record: `{"seq":…,"hash":"…"}` padded with spaces and ended by a newline,
/// so each write replaces the whole previous record (JSON readers skip the padding).
const HEAD_RECORD_BYTES: usize = 160;

/// A head record as written: the head and a check over it, so a record read while it is being
/// overwritten, or cut by a crash during its write, is told apart from a recorded head.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct HeadRecord {
    seq: u64,
    hash: String,
    /// Absent in the records of older pgward versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    check: Option<String>,
}

/// The first 16 hex digits of SHA-256 over `seq:hash`.
fn head_check(seq: u64, hash: &str) -> String {
    let mut check = chain::digest(None, &format!("{seq}:{hash}")).unwrap_or_default();
    check.truncate(16);
    check
}

/// The head as a fixed-size record.
fn head_record(head: &Head) -> Result<Vec<u8>, serde_json::Error> {
    let mut record = serde_json::to_vec(&HeadRecord {
        seq: head.seq,
        hash: head.hash.clone(),
        check: Some(head_check(head.seq, &head.hash)),
    })?;
    if record.len() < HEAD_RECORD_BYTES {
        record.resize(HEAD_RECORD_BYTES - 1, b' ');
    }
    record.push(b'\n');
    Ok(record)
}

/// A file's identity (device and inode), to tell whether a path still names an open file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId(u64, u64);

impl FileId {
    #[cfg(unix)]
    fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self(meta.dev(), meta.ino())
    }

    #[cfg(not(unix))]
    fn of(_meta: &std::fs::Metadata) -> Self {
        Self(0, 0)
    }

    /// The identity of the file `path` names now, if any.
    fn at(path: &Path) -> Option<Self> {
        std::fs::metadata(path).ok().map(|m| Self::of(&m))
    }
}

impl FileSink {
    fn append(&mut self, line: &[u8], head: Option<&Head>) -> Result<(), AuditError> {
        use std::io::Write;
        // INVARIANT: events go only to the file the path names. Appending to a file deleted
        // or moved away under pgward would lose them without a trace.
        if FileId::at(&self.path) != Some(self.file_id) {
            return Err(file_error(
                &self.path,
                "the log file was deleted, moved or replaced while pgward had it open (pgward rotates it itself: audit.file_max_bytes); pgward writes no further events to it",
            ));
        }
        let len = line.len() as u64;
        if self.size > 0 && self.size.saturating_add(len) > self.max_bytes {
            self.rotate()?;
        }
        // One write: the file is unbuffered, so the line is with the kernel when this returns.
        self.file
            .write_all(line)
            .map_err(|e| file_error(&self.path, e))?;
        self.size = self.size.saturating_add(len);
        if let Some(head) = head {
            self.write_head(head)?;
        }
        Ok(())
    }

    /// Overwrites the recorded head in place.
    fn write_head(&mut self, head: &Head) -> Result<(), AuditError> {
        let target = head_path(&self.path);
        let record = head_record(head).map_err(|e| file_error(&target, e))?;
        // A head file deleted or replaced is written anew at its path, never into the old one.
        if let Some((_, id)) = &self.head
            && FileId::at(&target) != Some(*id)
        {
            self.head = None;
        }
        let file = match &mut self.head {
            Some((file, _)) => file,
            None => {
                let file = open_head(&target)?;
                let meta = file.metadata().map_err(|e| file_error(&target, e))?;
                self.head_len = meta.len();
                &self.head.insert((file, FileId::of(&meta))).0
            }
        };
        write_at_start(file, &record).map_err(|e| file_error(&target, e))?;
        let written = record.len() as u64;
        if self.head_len > written {
            file.set_len(written).map_err(|e| file_error(&target, e))?;
        }
        self.head_len = written;
        Ok(())
    }

    /// `<file>` becomes `<file>.1`, `<file>.1` becomes `<file>.2`, ... up to `keep`; the chain
    /// continues in the new file.
    fn rotate(&mut self) -> Result<(), AuditError> {
        let rotated = |n: u32| PathBuf::from(format!("{}.{n}", self.path.display()));
        for n in (1..self.keep).rev() {
            let from = rotated(n);
            if from.try_exists().unwrap_or(false) {
                std::fs::rename(&from, rotated(n + 1)).map_err(|e| file_error(&from, e))?;
            }
        }
        std::fs::rename(&self.path, rotated(1)).map_err(|e| file_error(&self.path, e))?;
        self.file = open_append(&self.path)?;
        let meta = self
            .file
            .metadata()
            .map_err(|e| file_error(&self.path, e))?;
        self.file_id = FileId::of(&meta);
        self.size = 0;
        Ok(())
    }
}

/// Writes `bytes` at offset 0 with positioned writes (the file's cursor is never used).
#[cfg(unix)]
fn write_at_start(file: &std::fs::File, bytes: &[u8]) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, bytes, 0)
}

#[cfg(not(unix))]
fn write_at_start(mut file: &std::fs::File, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::{Seek, Write};
    file.seek(std::io::SeekFrom::Start(0))?;
    file.write_all(bytes)
}

/// `<file>.head`: the path of the recorded head.
pub fn head_path(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.head", path.display()))
}

/// Why a head file's text is not a recorded head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadHead {
    /// Not a head record at all.
    NotAHead,
    /// A head record whose check does not hold: read while being overwritten, or cut short by
    /// a crash during its write. (The check is not keyed: it tells an accident, not an edit.)
    Torn,
}

impl BadHead {
    pub fn reason(self) -> &'static str {
        match self {
            BadHead::NotAHead => "not a recorded head",
            BadHead::Torn => {
                "the recorded head does not match its check (caught mid-write, or cut short by a crash during its write)"
            }
        }
    }
}

/// A head file's record; `None` when it is empty (created, but stopped before its first
/// record was written).
pub fn parse_head(text: &str) -> Result<Option<Head>, BadHead> {
    if text.is_empty() {
        return Ok(None);
    }
    let record: HeadRecord = serde_json::from_str(text).map_err(|_| BadHead::NotAHead)?;
    if record
        .check
        .is_some_and(|check| check != head_check(record.seq, &record.hash))
    {
        return Err(BadHead::Torn);
    }
    Ok(Some(Head {
        seq: record.seq,
        hash: record.hash,
    }))
}

/// How often `pgward audit verify` reads a head file that it caught mid-write.
pub const HEAD_READ_ATTEMPTS: usize = 5;

/// Reads and parses a head file, up to `attempts` times. pgward overwrites the record in place
/// while it runs, so a reader (`pgward audit verify` from a cron job) can catch a record half
/// written: failing its check, or not even JSON when the new record is a byte longer. Such a
/// record is read again, a few milliseconds later, before it is reported.
pub fn read_head_file(
    target: &Path,
    attempts: usize,
) -> std::io::Result<Result<Option<Head>, BadHead>> {
    let mut attempt = 1;
    loop {
        let parsed = parse_head(&std::fs::read_to_string(target)?);
        if parsed.is_ok() || attempt >= attempts {
            return Ok(parsed);
        }
        attempt += 1;
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// Reads the recorded head of `path`, if there is one (at start-up, before any event is
/// written, when nothing else writes it: read once).
pub fn read_head(path: &Path) -> Result<Option<Head>, AuditError> {
    let target = head_path(path);
    match read_head_file(&target, 1) {
        Ok(parsed) => parsed.map_err(|bad| file_error(&target, bad.reason())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(file_error(&target, e)),
    }
}

/// The last [`TAIL_BYTES`] of a file (enough for its last event; the whole file is never
/// read into memory).
const TAIL_BYTES: u64 = 1024 * 1024;

async fn read_tail(path: &Path) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut file = tokio::fs::File::open(path).await?;
    let len = file.metadata().await?.len();
    let start = len.saturating_sub(TAIL_BYTES);
    file.seek(std::io::SeekFrom::Start(start)).await?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).await?;
    // A window that starts mid-line keeps only whole lines (and so never a split character).
    if start > 0 {
        let cut = bytes
            .iter()
            .position(|b| *b == b'\n')
            .map_or(bytes.len(), |i| i + 1);
        bytes.drain(..cut);
    }
    String::from_utf8(bytes)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"))
}

/// The newest event already written: the last line of `path`, or of `<path>.1` when `path` is
/// empty or missing. Refuses a torn last line and a log that ends before its recorded head.
async fn last_event(path: &Path) -> Result<Option<Map<String, Value>>, AuditError> {
    let mut last = None;
    for candidate in [
        path.to_path_buf(),
        PathBuf::from(format!("{}.1", path.display())),
    ] {
        let text = match read_tail(&candidate).await {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(file_error(&candidate, e)),
        };
        if text.is_empty() {
            continue;
        }
        if !text.ends_with('\n') {
            return Err(file_error(
                &candidate,
                "the last line is incomplete (a torn write?); check it with `pgward audit verify` and move the file aside",
            ));
        }
        let line = text
            .trim_end_matches('\n')
            .rsplit('\n')
            .next()
            .unwrap_or("");
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(event)) => {
                last = Some(event);
                break;
            }
            _ => {
                return Err(file_error(
                    &candidate,
                    "the last line is not an audit event; check it with `pgward audit verify`",
                ));
            }
        }
    }
    if let Some(head) = read_head(path)? {
        let seq = last
            .as_ref()
            .and_then(|e| e.get("seq"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if seq < head.seq {
            return Err(file_error(
                path,
                format!(
                    "the log ends at seq {seq} but its recorded head is seq {}: events were deleted; check it with `pgward audit verify`",
                    head.seq
                ),
            ));
        }
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u64) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("kind".into(), Value::from("test"));
        m.insert("n".into(), Value::from(n));
        m
    }

    fn config(file: &Path) -> AuditConfig {
        AuditConfig {
            stderr: false,
            file: Some(file.display().to_string()),
            ..AuditConfig::default()
        }
    }

    fn recorded_head(file: &Path) -> Head {
        let text = std::fs::read_to_string(head_path(file)).unwrap();
        assert_eq!(text.len(), HEAD_RECORD_BYTES, "{text:?}");
        parse_head(&text).unwrap().unwrap()
    }

    #[tokio::test]
    async fn the_head_is_a_fixed_size_record_overwritten_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("audit.jsonl");
        // A longer head, as an older pgward could have left it, is replaced whole.
        let older = format!("{{\"seq\":0,\"hash\":\"{}\"}}\n", "0".repeat(400));
        std::fs::write(head_path(&file), older).unwrap();
        let log = AuditLog::open(&config(&file)).await.unwrap();
        for n in 1..=12 {
            log.record(event(n)).await.unwrap();
        }
        let head = recorded_head(&file);
        assert_eq!(head.seq, 12);
        let last = std::fs::read_to_string(&file).unwrap();
        let last: Value = serde_json::from_str(last.lines().last().unwrap()).unwrap();
        assert_eq!(last["hash"], Value::from(head.hash.clone()));
        // A deleted head file is written anew at its path with the next event.
        std::fs::remove_file(head_path(&file)).unwrap();
        log.record(event(13)).await.unwrap();
        assert_eq!(recorded_head(&file).seq, 13);
        // Created by pgward: owner-only.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(head_path(&file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    /// A record caught half overwritten (the start of the new one, the rest of the old one)
    /// fails its check, start-up refuses it with that reason, and a record without a check, as
    /// older pgward versions wrote, is still read.
    #[tokio::test]
    async fn a_head_record_caught_mid_write_fails_its_check() {
        let head = |seq: u64| Head {
            seq,
            hash: format!("{seq:064x}"),
        };
        let (old, new) = (
            head_record(&head(99)).unwrap(),
            head_record(&head(100)).unwrap(),
        );
        assert_eq!(
            parse_head(std::str::from_utf8(&new).unwrap()),
            Ok(Some(head(100)))
        );
        let mut torn = new[..8].to_vec();
        torn.extend_from_slice(&old[8..]);
        let torn = String::from_utf8(torn).unwrap();
        assert!(torn.starts_with("{\"seq\":19,"), "{torn}");
        assert_eq!(parse_head(&torn), Err(BadHead::Torn));
        assert_eq!(
            parse_head(&format!("{{\"seq\":7,\"hash\":\"{}\"}}\n", "a".repeat(64))),
            Ok(Some(Head {
                seq: 7,
                hash: "a".repeat(64)
            }))
        );
        assert_eq!(parse_head("{\"seq\":7}"), Err(BadHead::NotAHead));

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&config(&file)).await.unwrap();
        log.record(event(1)).await.unwrap();
        drop(log);
        std::fs::write(head_path(&file), &torn).unwrap();
        let err = AuditLog::open(&config(&file)).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("the recorded head does not match its check"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_deleted_end_of_the_log_stops_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&config(&file)).await.unwrap();
        for n in 1..=3 {
            log.record(event(n)).await.unwrap();
        }
        drop(log);
        // The untouched log resumes after its last event.
        let log = AuditLog::open(&config(&file)).await.unwrap();
        log.record(event(4)).await.unwrap();
        drop(log);
        let text = std::fs::read_to_string(&file).unwrap();
        let kept: String = text.lines().take(3).map(|l| format!("{l}\n")).collect();
        std::fs::write(&file, kept).unwrap();
        let err = AuditLog::open(&config(&file)).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("the log ends at seq 3 but its recorded head is seq 4"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn events_are_never_written_to_a_log_file_deleted_under_pgward() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&config(&file)).await.unwrap();
        log.record(event(1)).await.unwrap();
        std::fs::rename(&file, dir.path().join("moved.jsonl")).unwrap();
        let err = log.record(event(2)).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("the log file was deleted, moved or replaced while pgward had it open"),
            "{err}"
        );
        assert_eq!(log.failures(), 1);
        // Nothing was appended to the moved file.
        let moved = std::fs::read_to_string(dir.path().join("moved.jsonl")).unwrap();
        assert_eq!(moved.lines().count(), 1);
    }
}
