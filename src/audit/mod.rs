//! The audit trail: one event per tool call, allowed or denied, written before the answer
//! leaves.
//!
//! - [`chain`]: CORE. Seals events into a tamper-evident hash chain and verifies a log of
//!   sealed events, naming the first line that was edited, deleted, reordered or cut short.

//! - [`event`]: CORE. What an event holds, built from the facts of a call; arguments masked
//!   and bounded, SQL normalized.
//! - [`sink`]: EDGE. The audit log: seals each event and writes it to stderr and/or a rotated
//!   JSON Lines file before the answer leaves.
//! - [`postgres`]: EDGE. The PostgreSQL sink: an INSERT-only role appending each sealed line to
//!   `pgward_audit.events` (schema in `migrations/002_audit.sql`), and reading it back to verify.

pub mod chain;
pub mod event;
pub mod postgres;
pub mod sink;
