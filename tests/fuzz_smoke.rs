//! A bounded run of the fuzz target's logic in CI (`pgward::sql::roundtrip`, the same function
//! `fuzz/fuzz_targets/sql_check.rs` calls): every seed of `fuzz/corpus/sql_check`, then
//! deterministic mutations of them (byte flips, truncations, splices of two seeds, repeated
//! tokens). Long, coverage-guided runs use `cargo +nightly fuzz run sql_check` (README).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

use pgward::sql::roundtrip::{roundtrip, sample_policy};

/// A small deterministic PRNG (xorshift64*), so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const TOKENS: &[&str] = &[
    " UNION SELECT ",
    " WHERE ",
    " OR 1=1",
    "(",
    ")",
    " JOIN tasks t ON true",
    ", ",
    "*",
    "'",
    "\"",
    " LIMIT 5",
    " ORDER BY 1",
    " GROUP BY 1",
    "::text",
    " LATERAL ",
    " WITH x AS (",
    "$1",
    ";",
    "--",
    "/*",
    "*/",
    " ARRAY[1,2]",
    " CASE WHEN ",
    " END",
    "E'\\\\'",
];

#[test]
fn the_fuzz_logic_holds_on_seeds_and_mutations() {
    let policy = sample_policy();
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir("fuzz/corpus/sql_check")
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (p.display().to_string(), std::fs::read(&p).unwrap())
        })
        .collect();
    seeds.sort();
    assert!(seeds.len() > 100, "the seed corpus is missing");
    let mut accepted = 0usize;
    for (name, seed) in &seeds {
        if let Err(broken) = roundtrip(&policy, seed) {
            panic!("seed {name}: {broken}");
        }
        if std::str::from_utf8(seed)
            .ok()
            .is_some_and(|s| pgward::sql::check(&policy, s, pgward::sql::ParamMode::None).is_ok())
        {
            accepted += 1;
        }
    }
    // The corpus exercises the accepting path too, not only refusals.
    assert!(accepted > 50, "only {accepted} seeds are accepted");

    let iterations: usize = std::env::var("PGWARD_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for i in 0..iterations {
        let (_, a) = &seeds[rng.below(seeds.len())];
        let mut input = a.clone();
        match rng.below(5) {
            0 if !input.is_empty() => {
                let at = rng.below(input.len());
                input[at] ^= 1 << rng.below(8);
            }
            1 => input.truncate(rng.below(input.len() + 1)),
            2 => {
                let (_, b) = &seeds[rng.below(seeds.len())];
                let cut = rng.below(input.len() + 1);
                input.truncate(cut);
                input.extend_from_slice(&b[rng.below(b.len() + 1)..]);
            }
            _ => {
                let at = rng.below(input.len() + 1);
                let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                input.splice(at..at, token.iter().copied());
            }
        }
        if let Err(broken) = roundtrip(&policy, &input) {
            panic!(
                "mutation {i} ({:?}): {broken}",
                String::from_utf8_lossy(&input)
            );
        }
    }
}
