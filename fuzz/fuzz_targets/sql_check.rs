//! Coverage-guided fuzzing of the SQL check: any input, no panic; whatever is accepted is
//! accepted again, unchanged, after its own rewrite (see `pgward::sql::roundtrip`).
//!
//! `cargo +nightly fuzz run sql_check fuzz/corpus/sql_check` (from the repository root).

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pgward::policy::Policy;
use pgward::sql::roundtrip::{roundtrip, sample_policy};

fn policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(sample_policy)
}

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = roundtrip(policy(), data) {
        panic!("{broken}");
    }
});
