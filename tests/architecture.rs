//! DESIGN: core modules do no I/O. This scans the source of the core modules and fails if one
//! of them imports an async runtime, a driver, a transport, or std's filesystem, network or
//! environment access.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::path::Path;

const CORE: &[&str] = &[
    "src/sql",
    "src/policy",
    "src/redact",
    "src/engine/shape.rs",
    "src/config/types.rs",
    "src/config/validate.rs",
    "src/auth/verify.rs",
    "src/auth/config.rs",
    "src/policy/scopes.rs",
    "src/audit/chain.rs",
    "src/audit/event.rs",
];

const FORBIDDEN: &[&str] = &[
    "tokio",
    "axum",
    "rmcp",
    "tokio_postgres",
    "deadpool",
    "std::fs",
    "std::net",
    "std::env",
    "std::process",
];

fn files(path: &Path, out: &mut Vec<std::path::PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            files(&entry.unwrap().path(), out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

#[test]
fn core_modules_do_no_io() {
    let mut all = Vec::new();
    for c in CORE {
        files(Path::new(c), &mut all);
    }
    assert!(all.len() >= 8, "the core folders moved: {all:?}");
    let mut offences = Vec::new();
    for file in &all {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for f in FORBIDDEN {
                let hit = code.contains(&format!("use {f}"))
                    || code.contains(&format!("{f}::"))
                    || code.contains(&format!("::{f}::"));
                if hit {
                    offences.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        offences.is_empty(),
        "core modules doing I/O:\n{}",
        offences.join("\n")
    );
}

#[test]
fn the_scan_catches_an_import() {
    // The matcher itself: a forbidden import is found, an innocent name is not.
    let code = "use tokio::sync::Mutex;";
    assert!(FORBIDDEN.iter().any(|f| code.contains(&format!("use {f}"))));
    let innocent = "let tokens = 1;";
    assert!(!FORBIDDEN.iter().any(|f| innocent.contains(&format!("use {f}")) || innocent.contains(&format!("{f}::"))));
}
