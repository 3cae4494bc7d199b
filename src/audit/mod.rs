//! The audit trail: one event per tool call, allowed or denied, written before the answer
//! leaves.
//!
//! - [`chain`]: CORE. Seals events into a tamper-evident hash chain and verifies a log of
//!   sealed events, naming the first line that was edited, deleted, reordered or cut short.

pub mod chain;
