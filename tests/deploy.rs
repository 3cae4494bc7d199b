//! The deployment artefacts keep their promises: the Dockerfile (multi-stage, locked build,
//! non-root, nothing secret baked in, read-only at run time), the build context allowlist,
//! the compose demo, the reverse-proxy example, the Kubernetes manifests, and the configs
//! they carry (each one passes `pgward config check`). There is no container engine or
//! cluster on the machines that run this suite, so these are static checks of the files
//! against each other and against pgward's own rules; each one fails when the property it
//! names is broken (the detectors are themselves tested on bad input).
//!
//! The docs are held to the code as well: every test that THREAT_MODEL.md cites exists, and
//! every relative link in the operator docs resolves.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use regex::Regex;
use serde_json::{Map, Value, json};
use yaml_rust2::{Yaml, YamlLoader};

// ---------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// Every file under `dir` (relative to the repository), recursively, as relative paths.
fn walk(dir: &str) -> Vec<String> {
    fn go(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                go(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap();
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut out = Vec::new();
    go(&repo(), &repo().join(dir), &mut out);
    out
}

// ---------------------------------------------------------------------------------------
// Secret detectors (tested by `the_secret_detectors_catch_what_they_are_for`)
// ---------------------------------------------------------------------------------------

/// A variable name that says it holds a secret.
fn secret_name(name: &str) -> bool {
    Regex::new(r"(?i)(pass(word|wd)?|secret|token|key|credential|auth|_url$|^url$|dsn)")
        .unwrap()
        .is_match(name)
}

/// A value that is a secret, or carries one. `${VAR}` references are not secrets (they are
/// how a secret is kept out of a file), so they are taken out first.
fn secret_value(value: &str) -> bool {
    let value = Regex::new(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")
        .unwrap()
        .replace_all(value, "");
    let patterns = [
        // A URL with a password in it: scheme://user:password@host.
        r"(?i)[a-z][a-z0-9+.-]*://[^/\s:@]+:[^@\s/]+@",
        // A pgward API key.
        r"pgw_[0-9A-Za-z_]{8,}",
        // PEM private keys and certificates' keys.
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
        // Common live-key shapes.
        r"sk_live_|AKIA[0-9A-Z]{16}|ghp_[0-9A-Za-z]{20,}",
    ];
    patterns
        .iter()
        .any(|p| Regex::new(p).unwrap().is_match(&value))
}

/// `${NAME}` or `${NAME:-default}` / `${NAME-default}` / `${NAME:?message}`: compose
/// interpolation, returning the name and the default when there is one.
fn interpolation(value: &str) -> Option<(String, Option<String>)> {
    let re = Regex::new(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*)|(:?\?)[^}]*)?\}$").unwrap();
    let c = re.captures(value)?;
    Some((c[1].to_string(), c.get(3).map(|m| m.as_str().to_string())))
}

#[test]
fn the_secret_detectors_catch_what_they_are_for() {
    for name in [
        "PGWARD_DB_PASSWORD",
        "POSTGRES_PASSWORD",
        "PGWARD_HASH_KEY",
        "PGWARD_AUDIT_KEY",
        "PGWARD_AUDIT_DB_URL",
        "JWT_SECRET",
        "API_TOKEN",
        "DATABASE_URL",
    ] {
        assert!(secret_name(name), "{name} should look secret");
    }
    for name in [
        "PGWARD_LOG_FORMAT",
        "PGWARD_LOG",
        "RUST_VERSION",
        "POSTGRES_DB",
    ] {
        assert!(!secret_name(name), "{name} should not look secret");
    }
    for value in [
        "postgres://pgward_reader:hunter2@db:5432/shop",
        "postgresql://u:p@localhost/x",
        "pgw_00112233445566778899aabbccddeeff",
        "-----BEGIN PRIVATE KEY-----",
        "-----BEGIN EC PRIVATE KEY-----",
        "sk_live_abcdef",
    ] {
        assert!(secret_value(value), "{value} should look secret");
    }
    for value in [
        "json",
        "postgres://pgward_reader:${PGWARD_DB_PASSWORD}@db:5432/shop",
        "https://db-mcp.example.com/mcp",
        "/etc/pgward/pgward.toml",
    ] {
        assert!(!secret_value(value), "{value} should not look secret");
    }
    assert_eq!(interpolation("${A}"), Some(("A".into(), None)));
    assert_eq!(
        interpolation("${A:-demo-x}"),
        Some(("A".into(), Some("demo-x".into())))
    );
    assert_eq!(interpolation("${A:?set A}"), Some(("A".into(), None)));
    assert_eq!(interpolation("literal"), None);
    assert_eq!(interpolation("x${A}"), None);
}

// ---------------------------------------------------------------------------------------
// Dockerfile
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Instr {
    keyword: String,
    args: String,
}

#[derive(Debug)]
struct Stage {
    image: String,
    name: Option<String>,
    instrs: Vec<Instr>,
}

/// Instructions with continuation lines joined and comments (and parser directives) dropped,
/// as Docker reads them.
fn parse_dockerfile(text: &str) -> Vec<Instr> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') || (cur.is_empty() && trimmed.is_empty()) {
            continue;
        }
        if let Some(part) = line.trim_end().strip_suffix('\\') {
            cur.push_str(part);
            cur.push(' ');
            continue;
        }
        cur.push_str(line);
        let full = std::mem::take(&mut cur);
        let full = full.trim();
        if full.is_empty() {
            continue;
        }
        let (kw, args) = full.split_once(char::is_whitespace).unwrap_or((full, ""));
        out.push(Instr {
            keyword: kw.to_ascii_uppercase(),
            args: args.trim().to_string(),
        });
    }
    assert!(
        cur.trim().is_empty(),
        "Dockerfile ends inside a continuation"
    );
    out
}

fn stages(instrs: &[Instr]) -> Vec<Stage> {
    let mut out: Vec<Stage> = Vec::new();
    for i in instrs {
        if i.keyword == "FROM" {
            let words: Vec<&str> = i
                .args
                .split_whitespace()
                .filter(|w| !w.starts_with("--"))
                .collect();
            let name = match words.as_slice() {
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some(name.to_string()),
                [_] => None,
                other => panic!("unexpected FROM {other:?}"),
            };
            out.push(Stage {
                image: words[0].to_string(),
                name,
                instrs: Vec::new(),
            });
        } else if let Some(stage) = out.last_mut() {
            stage.instrs.push(i.clone());
        } else {
            assert_eq!(i.keyword, "ARG", "only ARG may precede the first FROM");
        }
    }
    out
}

fn dockerfile() -> Vec<Stage> {
    stages(&parse_dockerfile(&read("Dockerfile")))
}

/// Leading `--flag=value` options and the rest of the arguments.
fn flags(args: &str) -> (BTreeMap<String, String>, String) {
    let mut map = BTreeMap::new();
    let mut rest = args.trim();
    while let Some(stripped) = rest.strip_prefix("--") {
        let (word, tail) = stripped
            .split_once(char::is_whitespace)
            .unwrap_or((stripped, ""));
        let (k, v) = word.split_once('=').unwrap_or((word, ""));
        map.insert(k.to_string(), v.to_string());
        rest = tail.trim_start();
    }
    (map, rest.to_string())
}

/// An exec-form (JSON array) argument list; shell form is refused.
fn exec_form(args: &str) -> Vec<String> {
    serde_json::from_str(args)
        .unwrap_or_else(|e| panic!("`{args}` is not exec form (a JSON array): {e}"))
}

/// `KEY=value` pairs of ENV / LABEL / ARG (quotes removed; legacy `ENV KEY value` too).
fn key_values(keyword: &str, args: &str) -> Vec<(String, String)> {
    let mut tokens = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    for c in args.chars() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if !cur.is_empty() {
                    tokens.push(std::mem::take(&mut cur));
                }
            }
            (_, c) => cur.push(c),
        }
    }
    if !cur.is_empty() {
        tokens.push(cur);
    }
    if keyword == "ENV" && tokens.first().is_some_and(|t| !t.contains('=')) {
        let key = tokens.remove(0);
        return vec![(key, tokens.join(" "))];
    }
    tokens
        .into_iter()
        .map(|t| match t.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (t, String::new()),
        })
        .collect()
}

fn final_stage(stages: &[Stage]) -> &Stage {
    stages.last().expect("the Dockerfile has a FROM")
}

fn instrs<'a>(stage: &'a Stage, keyword: &str) -> Vec<&'a Instr> {
    stage
        .instrs
        .iter()
        .filter(|i| i.keyword == keyword)
        .collect()
}

#[test]
fn the_image_is_built_in_its_own_stage_by_the_ci_build_command_with_the_lock_file() {
    let stages = dockerfile();
    assert!(stages.len() >= 2, "the Dockerfile must be multi-stage");
    let runtime = final_stage(&stages);
    let build_runs: Vec<&Instr> = stages[..stages.len() - 1]
        .iter()
        .flat_map(|s| instrs(s, "RUN"))
        .collect();
    assert!(
        build_runs
            .iter()
            .any(|r| r.args.contains("cargo build --release --locked")),
        "a build stage must run exactly CI's `cargo build --release --locked`"
    );
    // Every cargo invocation is locked, and nothing re-resolves or adds dependencies.
    let cargo = Regex::new(r"\bcargo\s+([a-z-]+)([^&;|]*)").unwrap();
    for r in &build_runs {
        for c in cargo.captures_iter(&r.args) {
            let (sub, rest) = (&c[1], &c[2]);
            assert!(
                !matches!(sub, "update" | "install" | "add" | "generate-lockfile"),
                "`cargo {sub}` in the Dockerfile changes what gets built: {}",
                r.args
            );
            assert!(
                rest.contains("--locked") || rest.contains("--frozen"),
                "`cargo {sub}` without --locked: {}",
                r.args
            );
            for flag in ["--features", "--all-features", "--no-default-features"] {
                assert!(
                    !rest.contains(flag),
                    "`cargo {sub} {flag}` builds something CI does not test: {}",
                    r.args
                );
            }
        }
    }
    // The runtime stage takes the binary from a build stage, not a toolchain image.
    assert!(
        !runtime.image.contains("rust"),
        "the runtime image `{}` is a Rust toolchain image",
        runtime.image
    );
    let names: Vec<&str> = stages[..stages.len() - 1]
        .iter()
        .filter_map(|s| s.name.as_deref())
        .collect();
    let copies = instrs(runtime, "COPY");
    assert!(
        copies.iter().any(|c| {
            let (f, rest) = flags(&c.args);
            f.get("from").is_some_and(|s| names.contains(&s.as_str()))
                && rest.contains("/usr/local/bin/pgward")
        }),
        "the runtime stage must copy the pgward binary from a build stage"
    );
}

#[test]
fn the_runtime_stage_is_distroless_and_runs_nothing_at_build_time() {
    let stages = dockerfile();
    let runtime = final_stage(&stages);
    assert!(
        runtime.image.starts_with("gcr.io/distroless/"),
        "the runtime image `{}` is not distroless",
        runtime.image
    );
    assert!(
        !runtime.image.ends_with(":latest") && runtime.image.contains(':'),
        "the runtime image `{}` must name a tag (or a digest), never latest",
        runtime.image
    );
    // A RUN here would need a shell in the image; distroless has none, and it should stay so.
    assert!(
        instrs(runtime, "RUN").is_empty(),
        "the runtime stage runs commands: it would need a shell"
    );
    assert!(
        instrs(runtime, "ADD").is_empty(),
        "ADD can fetch URLs and unpack archives; the runtime stage uses COPY --from only"
    );
}

/// Debian release of an image tag: the builder's and the runtime's must match, since the
/// binary links the builder's glibc dynamically and an older runtime glibc refuses it.
fn debian_release(image: &str) -> Option<u32> {
    [
        ("bullseye", 11),
        ("debian11", 11),
        ("bookworm", 12),
        ("debian12", 12),
        ("trixie", 13),
        ("debian13", 13),
    ]
    .iter()
    .find(|(name, _)| image.contains(name))
    .map(|(_, n)| *n)
}

#[test]
fn the_builder_and_the_runtime_share_a_debian_release() {
    let stages = dockerfile();
    let runtime = final_stage(&stages);
    let runtime_release = debian_release(&runtime.image)
        .unwrap_or_else(|| panic!("cannot tell the Debian release of `{}`", runtime.image));
    let builder = stages
        .iter()
        .find(|s| {
            instrs(s, "RUN")
                .iter()
                .any(|r| r.args.contains("cargo build"))
        })
        .expect("a stage runs cargo build");
    let builder_release = debian_release(&builder.image)
        .unwrap_or_else(|| panic!("cannot tell the Debian release of `{}`", builder.image));
    assert_eq!(
        builder_release, runtime_release,
        "builder `{}` and runtime `{}` are different Debian releases (glibc mismatch)",
        builder.image, runtime.image
    );
    assert_eq!(debian_release("rust:1.95-slim-trixie"), Some(13));
    assert_eq!(debian_release("alpine:3"), None);
}

#[test]
fn the_builder_toolchain_is_at_least_the_crates_rust_version() {
    let manifest: toml::Table = toml::from_str(&read("Cargo.toml")).unwrap();
    let wanted = manifest["package"]["rust-version"].as_str().unwrap();
    let version = |s: &str| -> (u32, u32) {
        let mut parts = s.split('.').map(|p| p.parse::<u32>().unwrap());
        (parts.next().unwrap(), parts.next().unwrap_or(0))
    };
    let stages = dockerfile();
    let builder = stages
        .iter()
        .find(|s| {
            instrs(s, "RUN")
                .iter()
                .any(|r| r.args.contains("cargo build"))
        })
        .unwrap();
    let tag = Regex::new(r"^(?:docker\.io/(?:library/)?)?rust:(\d+\.\d+)")
        .unwrap()
        .captures(&builder.image)
        .unwrap_or_else(|| panic!("the builder `{}` is not a rust:X.Y image", builder.image));
    assert!(
        version(&tag[1]) >= version(wanted),
        "builder Rust {} is older than the crate's rust-version {wanted}",
        &tag[1]
    );
}

#[test]
fn the_image_runs_as_a_numeric_non_root_user() {
    let stages = dockerfile();
    let runtime = final_stage(&stages);
    let user = instrs(runtime, "USER")
        .last()
        .map(|u| u.args.clone())
        .expect("the runtime stage sets USER");
    // Numeric, so the kubelet can verify runAsNonRoot (it cannot resolve a user name).
    let (uid, gid) = user.split_once(':').unwrap_or((&user, ""));
    let uid: u32 = uid
        .parse()
        .unwrap_or_else(|_| panic!("USER `{user}` is not numeric"));
    assert_ne!(uid, 0, "the image runs as root");
    if !gid.is_empty() {
        let gid: u32 = gid
            .parse()
            .unwrap_or_else(|_| panic!("USER `{user}`: the group is not numeric"));
        assert_ne!(gid, 0, "the image runs with group root");
    }
    // And the Kubernetes manifests run it as that same user.
    for (_, doc) in kube_docs() {
        if doc["kind"] == "Deployment" {
            let pod = &doc["spec"]["template"]["spec"];
            assert_eq!(pod["securityContext"]["runAsUser"], json!(uid));
        }
    }
}

#[test]
fn no_env_arg_or_label_in_the_dockerfile_carries_a_secret() {
    let all = parse_dockerfile(&read("Dockerfile"));
    let mut seen = 0;
    for i in &all {
        if !matches!(i.keyword.as_str(), "ENV" | "ARG" | "LABEL") {
            continue;
        }
        for (k, v) in key_values(&i.keyword, &i.args) {
            seen += 1;
            assert!(
                !secret_name(&k),
                "{} {k}: a secret-looking name in the image",
                i.keyword
            );
            assert!(
                !secret_value(&v),
                "{} {k}: a secret-looking value in the image",
                i.keyword
            );
        }
    }
    assert!(seen > 0, "the parser found no ENV, ARG or LABEL at all");
    // The parser reads the forms these checks depend on.
    assert_eq!(
        key_values("ENV", r#"A=1 B="two words""#),
        vec![("A".into(), "1".into()), ("B".into(), "two words".into())]
    );
    assert_eq!(
        key_values("ENV", "PGWARD_DB_PASSWORD hunter2"),
        vec![("PGWARD_DB_PASSWORD".into(), "hunter2".into())]
    );
    assert_eq!(
        key_values("ARG", "RUST_VERSION"),
        vec![("RUST_VERSION".into(), String::new())]
    );
}

#[test]
fn no_config_or_key_file_is_copied_into_the_image() {
    let stages = dockerfile();
    let runtime = final_stage(&stages);
    // The runtime stage takes files from build stages only, never from the build context.
    for c in instrs(runtime, "COPY") {
        let (f, _) = flags(&c.args);
        assert!(
            f.contains_key("from"),
            "the runtime stage copies from the build context: COPY {}",
            c.args
        );
    }
    // Build stages copy from the context only through the .dockerignore allowlist; no COPY
    // names a config, key, certificate or environment file.
    let forbidden =
        Regex::new(r"(?i)(\.toml$|\.pem$|\.key$|\.crt$|\.env$|^\.env|secret|^config/?|^deploy/?)")
            .unwrap();
    for s in &stages {
        for c in instrs(s, "COPY").into_iter().chain(instrs(s, "ADD")) {
            let (f, rest) = flags(&c.args);
            if f.contains_key("from") {
                continue;
            }
            let words: Vec<&str> = rest.split_whitespace().collect();
            for src in &words[..words.len() - 1] {
                let src = src.trim_start_matches("./");
                if matches!(src, "Cargo.toml" | "Cargo.lock") {
                    continue;
                }
                assert!(
                    !forbidden.is_match(src),
                    "COPY of `{src}` could put a config or a secret in the image"
                );
            }
        }
    }
    // The config is mounted at run time, at the documented path.
    let cmd = instrs(runtime, "CMD")
        .last()
        .map(|c| exec_form(&c.args))
        .unwrap();
    assert_eq!(cmd, ["serve", "--config", "/etc/pgward/pgward.toml"]);
    assert!(read("docs/operations.md").contains("/etc/pgward/pgward.toml"));
}

// .dockerignore ---------------------------------------------------------------------------

/// Docker's .dockerignore rules, as far as these files use them: patterns match a path or any
/// of its parent directories; `*` matches within one path segment, `**` across segments; the
/// last matching pattern wins and `!` re-includes.
fn docker_context_includes(patterns: &[(bool, String)], path: &str) -> bool {
    fn glob(p: &[&str], s: &[&str]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(&"**"), _) => glob(&p[1..], s) || (!s.is_empty() && glob(p, &s[1..])),
            (Some(pp), Some(ss)) => segment(pp, ss) && glob(&p[1..], &s[1..]),
            _ => false,
        }
    }
    fn segment(p: &str, s: &str) -> bool {
        let re = format!(
            "^{}$",
            regex::escape(p)
                .replace(r"\*", "[^/]*")
                .replace(r"\?", "[^/]")
        );
        Regex::new(&re).unwrap().is_match(s)
    }
    let parts: Vec<&str> = path.split('/').collect();
    let mut included = true;
    for (negated, pattern) in patterns {
        let pat: Vec<&str> = pattern
            .trim_start_matches('/')
            .trim_end_matches('/')
            .split('/')
            .collect();
        let matches = (1..=parts.len()).any(|n| glob(&pat, &parts[..n]));
        if matches {
            included = *negated;
        }
    }
    included
}

fn dockerignore() -> Vec<(bool, String)> {
    read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l.strip_prefix('!') {
            Some(p) => (true, p.trim().to_string()),
            None => (false, l.to_string()),
        })
        .collect()
}

#[test]
fn the_build_context_is_an_allowlist_that_holds_everything_the_build_reads() {
    let patterns = dockerignore();
    assert_eq!(
        patterns.first(),
        Some(&(false, "*".to_string())),
        ".dockerignore must start by excluding everything"
    );
    // What the build reads: the manifest, the lock file, every source file, every Cargo
    // target, and every file the sources embed.
    let mut needed: BTreeSet<String> = ["Cargo.toml", "Cargo.lock"].map(String::from).into();
    needed.extend(walk("src"));
    let manifest: toml::Table = toml::from_str(&read("Cargo.toml")).unwrap();
    for section in ["bench", "bin", "example"] {
        for target in manifest
            .get(section)
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            let name = target["name"].as_str().unwrap();
            let path = target
                .get("path")
                .and_then(|p| p.as_str())
                .map(String::from)
                .unwrap_or_else(|| match section {
                    "bench" => format!("benches/{name}.rs"),
                    "example" => format!("examples/{name}.rs"),
                    _ => format!("src/bin/{name}.rs"),
                });
            if section != "bin" || repo().join(&path).exists() {
                needed.insert(path);
            }
        }
    }
    if let Some(build) = manifest["package"].get("build").and_then(|b| b.as_str()) {
        needed.insert(build.to_string());
    } else if repo().join("build.rs").exists() {
        needed.insert("build.rs".into());
    }
    if let Some(members) = manifest
        .get("workspace")
        .and_then(|w| w.get("members"))
        .and_then(|m| m.as_array())
    {
        for m in members {
            needed.insert(format!("{}/Cargo.toml", m.as_str().unwrap()));
        }
    }
    let embed = Regex::new(r#"include_(?:str|bytes)!\(\s*"([^"]+)"\s*\)"#).unwrap();
    for file in walk("src") {
        let text = read(&file);
        for c in embed.captures_iter(&text) {
            let dir = Path::new(&file).parent().unwrap();
            let mut parts: Vec<String> = Vec::new();
            for comp in dir.join(&c[1]).components() {
                match comp {
                    std::path::Component::ParentDir => {
                        parts.pop();
                    }
                    std::path::Component::Normal(p) => parts.push(p.to_string_lossy().into()),
                    _ => {}
                }
            }
            needed.insert(parts.join("/"));
        }
    }
    assert!(needed.iter().any(|p| p.starts_with("migrations/")));
    for path in &needed {
        assert!(
            repo().join(path).exists(),
            "the build reads `{path}`, which does not exist"
        );
        assert!(
            docker_context_includes(&patterns, path),
            "the build reads `{path}`, but .dockerignore keeps it out of the build context"
        );
    }
    // What must never be in the build context.
    for path in [
        ".git/config",
        "target/release/pgward",
        ".env",
        "deploy/.env",
        "pgward.toml",
        "config/example.toml",
        "deploy/pgward-behind-proxy.toml",
        "deploy/proxy/certs/server.key",
        "tls/key.pem",
        "Dockerfile",
        "tests/deploy.rs",
    ] {
        assert!(
            !docker_context_includes(&patterns, path),
            "`{path}` would be sent into the image build"
        );
    }
    // The matcher itself follows Docker's rules on the shapes used here.
    let rules = |v: &[&str]| -> Vec<(bool, String)> {
        v.iter()
            .map(|l| match l.strip_prefix('!') {
                Some(p) => (true, p.to_string()),
                None => (false, l.to_string()),
            })
            .collect()
    };
    let r = rules(&["*", "!src/", "!migrations/*.sql"]);
    assert!(docker_context_includes(&r, "src/a/b.rs"));
    assert!(docker_context_includes(&r, "migrations/001.sql"));
    assert!(!docker_context_includes(&r, "migrations/notes.md"));
    assert!(!docker_context_includes(&r, "Cargo.toml"));
    assert!(!docker_context_includes(&rules(&["**/*.pem"]), "a/b/c.pem"));
}

#[test]
fn the_health_check_runs_pgward_health_against_an_exposed_admin_port() {
    let stages = dockerfile();
    let runtime = final_stage(&stages);
    let hc = instrs(runtime, "HEALTHCHECK")
        .last()
        .map(|h| h.args.clone())
        .expect("the runtime stage has a HEALTHCHECK");
    let (_, rest) = flags(&hc);
    let cmd = rest
        .strip_prefix("CMD")
        .unwrap_or_else(|| panic!("HEALTHCHECK `{hc}` has no CMD"))
        .trim();
    // Exec form: distroless has no shell, so a shell-form check could never run.
    let argv = exec_form(cmd);
    assert_eq!(argv[0], "/usr/local/bin/pgward", "{argv:?}");
    assert_eq!(argv[1], "health", "{argv:?}");
    let url = match argv.iter().position(|a| a == "--url") {
        Some(i) => argv[i + 1].clone(),
        None => "http://127.0.0.1:9090/healthz".to_string(),
    };
    let port: u16 = Regex::new(r"^http://127\.0\.0\.1:(\d+)/healthz$")
        .unwrap()
        .captures(&url)
        .unwrap_or_else(|| panic!("the health check URL `{url}` is not the admin /healthz"))[1]
        .parse()
        .unwrap();
    assert!(
        exposed_ports().contains(&port),
        "the health check probes port {port}, which is not the exposed admin port"
    );
    // And the binary accepts exactly this command line.
    let out = Command::new(env!("CARGO_BIN_EXE_pgward"))
        .args(&argv[1..])
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "`pgward {}` is not a valid command line",
        argv[1..].join(" ")
    );
}

fn exposed_ports() -> BTreeSet<u16> {
    let stages = dockerfile();
    instrs(final_stage(&stages), "EXPOSE")
        .iter()
        .flat_map(|e| {
            e.args
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .map(|p| {
            let (port, proto) = p.split_once('/').unwrap_or((&p, "tcp"));
            assert_eq!(proto, "tcp", "EXPOSE {p}");
            port.parse().unwrap()
        })
        .collect()
}

#[test]
fn only_the_mcp_and_admin_ports_are_exposed() {
    assert_eq!(exposed_ports(), BTreeSet::from([8080, 9090]));
    // The deployments use those same ports.
    let proxy_cfg = toml_file("deploy/pgward-behind-proxy.toml");
    assert_eq!(listen_port(&proxy_cfg["http"]["listen"]), 8080);
    let kube_cfg = kube_pgward_config();
    assert_eq!(listen_port(&kube_cfg["http"]["listen"]), 8080);
    assert_eq!(listen_port(&kube_cfg["admin"]["listen"]), 9090);
    let ports: BTreeSet<u16> = deployment_container()["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["containerPort"].as_u64().unwrap() as u16)
        .collect();
    assert_eq!(ports, exposed_ports());
}

#[test]
fn at_run_time_the_image_writes_only_to_its_audit_volume() {
    let stages = dockerfile();
    let runtime = final_stage(&stages);
    let volumes: Vec<String> = instrs(runtime, "VOLUME")
        .iter()
        .flat_map(|v| {
            if v.args.trim_start().starts_with('[') {
                exec_form(&v.args)
            } else {
                v.args.split_whitespace().map(String::from).collect()
            }
        })
        .collect();
    assert_eq!(volumes, ["/var/log/pgward"]);
    // The directory exists in the image, owned by the runtime user, so a fresh named volume
    // mounted there inherits an owner that can write it.
    let user = instrs(runtime, "USER").last().unwrap().args.clone();
    let uid = user.split(':').next().unwrap();
    assert!(
        instrs(runtime, "COPY").iter().any(|c| {
            let (f, rest) = flags(&c.args);
            rest.trim_end().ends_with("/var/log/pgward")
                && f.get("chown")
                    .is_some_and(|o| o.split(':').next() == Some(uid))
        }),
        "/var/log/pgward is not created owned by the runtime user {uid}"
    );
    // Every deployed config that writes an audit file writes it inside that volume, and
    // the compose demo mounts a volume there.
    let cfg = toml_file("deploy/pgward-behind-proxy.toml");
    let file = cfg["audit"]["file"].as_str().unwrap();
    assert!(file.starts_with("/var/log/pgward/"), "audit.file {file}");
    let pgward = &compose()["services"]["pgward"];
    assert!(
        volume_targets(pgward).contains(&"/var/log/pgward".to_string()),
        "compose does not mount a volume at /var/log/pgward"
    );
    let kube = kube_pgward_config();
    if let Some(file) = kube.get("audit").and_then(|a| a.get("file")) {
        let file = file.as_str().unwrap();
        let mounts = deployment_container()["volumeMounts"]
            .as_array()
            .unwrap()
            .clone();
        assert!(
            mounts.iter().any(|m| {
                let at = m["mountPath"].as_str().unwrap();
                file.starts_with(&format!("{at}/")) && m["readOnly"] != json!(true)
            }),
            "the Kubernetes config writes {file}, which no writable volume holds"
        );
    }
}

// ---------------------------------------------------------------------------------------
// YAML
// ---------------------------------------------------------------------------------------

fn to_json(y: &Yaml) -> Value {
    match y {
        Yaml::Real(s) => s
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| Value::String(s.clone()), Value::Number),
        Yaml::Integer(i) => json!(i),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        Yaml::Hash(h) => {
            let mut m = Map::new();
            for (k, v) in h {
                let key = match k {
                    Yaml::String(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    other => panic!("unsupported YAML key {other:?}"),
                };
                m.insert(key, to_json(v));
            }
            Value::Object(m)
        }
        Yaml::Null => Value::Null,
        Yaml::Alias(_) => panic!("YAML aliases are not used in the deployment files"),
        Yaml::BadValue => panic!("bad YAML value"),
    }
}

fn yaml_docs(rel: &str) -> Vec<Value> {
    YamlLoader::load_from_str(&read(rel))
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
        .iter()
        .map(to_json)
        .filter(|v| !v.is_null())
        .collect()
}

fn compose() -> Value {
    let docs = yaml_docs("deploy/compose.yaml");
    assert_eq!(docs.len(), 1);
    docs.into_iter().next().unwrap()
}

/// Every document of every YAML file under deploy/kubernetes, with its file.
fn kube_docs() -> Vec<(String, Value)> {
    let files: Vec<String> = walk("deploy/kubernetes")
        .into_iter()
        .filter(|f| f.ends_with(".yaml") || f.ends_with(".yml"))
        .collect();
    assert!(!files.is_empty());
    files
        .iter()
        .flat_map(|f| yaml_docs(f).into_iter().map(move |d| (f.clone(), d)))
        .collect()
}

fn kube(kind: &str) -> Vec<Value> {
    kube_docs()
        .into_iter()
        .map(|(_, d)| d)
        .filter(|d| d["kind"] == kind)
        .collect()
}

fn one(kind: &str) -> Value {
    let mut all = kube(kind);
    assert_eq!(all.len(), 1, "expected exactly one {kind}");
    all.remove(0)
}

fn deployment_container() -> Value {
    let d = one("Deployment");
    let containers = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    containers
        .iter()
        .find(|c| c["name"] == "pgward")
        .cloned()
        .expect("a container named pgward")
}

fn toml_file(rel: &str) -> toml::Table {
    toml::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn kube_pgward_config_text() -> String {
    one("ConfigMap")["data"]["pgward.toml"]
        .as_str()
        .expect("the ConfigMap holds pgward.toml")
        .to_string()
}

fn kube_pgward_config() -> toml::Table {
    toml::from_str(&kube_pgward_config_text()).unwrap()
}

fn listen_port(v: &toml::Value) -> u16 {
    let s = v.as_str().unwrap();
    s.rsplit_once(':').unwrap().1.parse().unwrap()
}

/// Environment variables a pgward config reads: every `${NAME}` in its string values.
fn env_refs(cfg: &toml::Table) -> BTreeSet<String> {
    fn go(v: &toml::Value, re: &Regex, out: &mut BTreeSet<String>) {
        match v {
            toml::Value::String(s) => {
                for c in re.captures_iter(s) {
                    out.insert(c[1].to_string());
                }
            }
            toml::Value::Array(a) => a.iter().for_each(|x| go(x, re, out)),
            toml::Value::Table(t) => t.values().for_each(|x| go(x, re, out)),
            _ => {}
        }
    }
    let re = Regex::new(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}").unwrap();
    let mut out = BTreeSet::new();
    cfg.values().for_each(|v| go(v, &re, &mut out));
    out
}

// ---------------------------------------------------------------------------------------
// Configs pass `pgward config check`
// ---------------------------------------------------------------------------------------

fn dummy(var: &str) -> String {
    if var.ends_with("_URL") {
        "postgres://pgward_audit:dummy-password@audit-db.invalid:5432/audit".into()
    } else {
        "dummy-value-for-config-check-0123456789abcdef".into()
    }
}

fn config_check(path: &Path, vars: &BTreeSet<String>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgward"));
    cmd.args(["config", "check", "--config"])
        .arg(path)
        .env_clear();
    if let Ok(p) = std::env::var("PATH") {
        cmd.env("PATH", p);
    }
    for v in vars {
        cmd.env(v, dummy(v));
    }
    cmd.output().unwrap()
}

#[test]
fn every_deployment_config_passes_pgward_config_check() {
    let dir = tempfile::tempdir().unwrap();
    let kube_path = dir.path().join("pgward.toml");
    std::fs::write(&kube_path, kube_pgward_config_text()).unwrap();
    let configs = [
        (
            repo().join("deploy/pgward-behind-proxy.toml"),
            toml_file("deploy/pgward-behind-proxy.toml"),
        ),
        (kube_path, kube_pgward_config()),
    ];
    for (path, cfg) in &configs {
        let vars = env_refs(cfg);
        assert!(
            vars.contains("PGWARD_DB_PASSWORD"),
            "{}: the database password must come from the environment",
            path.display()
        );
        let out = config_check(path, &vars);
        assert!(
            out.status.success(),
            "{} fails `pgward config check`:\n{}{}",
            path.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // The check is real: without one of its variables the same file is refused, and the
        // message names the variable.
        for missing in &vars {
            let mut fewer = vars.clone();
            fewer.remove(missing);
            let out = config_check(path, &fewer);
            assert_eq!(
                out.status.code(),
                Some(1),
                "{} without {missing}",
                path.display()
            );
            assert!(
                String::from_utf8_lossy(&out.stderr).contains(missing.as_str()),
                "{} without {missing}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[test]
fn the_documented_demo_api_key_is_the_one_the_compose_config_accepts() {
    let cfg = toml_file("deploy/pgward-behind-proxy.toml");
    let keys = cfg["auth"]["api_keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let hash = keys[0]["key_sha256"].as_str().unwrap();
    let clients = read("docs/clients.md");
    let key = Regex::new(r"pgw_compose_demo_[0-9A-Za-z_]+")
        .unwrap()
        .find(&clients)
        .expect("docs/clients.md gives the compose demo's API key")
        .as_str()
        .to_string();
    assert!(
        key.contains("demo") && key.contains("not_a_secret"),
        "the published key must say it is a demo value"
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_pgward"))
        .args(["hash-key", "--stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{key}").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("key_sha256 = \"{hash}\""),
        "docs/clients.md's key `{key}` does not hash to the compose config's key_sha256"
    );
}

// ---------------------------------------------------------------------------------------
// Compose
// ---------------------------------------------------------------------------------------

fn env_map(service: &Value) -> BTreeMap<String, String> {
    match &service["environment"] {
        Value::Null => BTreeMap::new(),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect(),
        Value::Array(a) => a
            .iter()
            .map(|e| {
                let e = e.as_str().unwrap();
                let (k, v) = e.split_once('=').unwrap_or((e, ""));
                (k.to_string(), v.to_string())
            })
            .collect(),
        other => panic!("environment {other}"),
    }
}

/// (source, target) of each short-syntax or long-syntax volume of a service.
fn volumes(service: &Value) -> Vec<(String, String)> {
    service["volumes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| match v {
                    Value::String(s) => {
                        let parts: Vec<&str> = s.split(':').collect();
                        (parts[0].to_string(), parts[1].to_string())
                    }
                    Value::Object(_) => (
                        v["source"].as_str().unwrap_or("").to_string(),
                        v["target"].as_str().unwrap().to_string(),
                    ),
                    other => panic!("volume {other}"),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn volume_targets(service: &Value) -> Vec<String> {
    volumes(service).into_iter().map(|(_, t)| t).collect()
}

#[test]
fn compose_runs_pgward_read_only_as_non_root_without_capabilities() {
    let c = compose();
    let p = &c["services"]["pgward"];
    assert_eq!(p["read_only"], json!(true), "pgward must run read_only");
    let user = p["user"].as_str().expect("pgward sets user");
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("numeric user");
    assert_ne!(uid, 0);
    let caps: Vec<&str> = p["cap_drop"]
        .as_array()
        .expect("cap_drop")
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(caps.contains(&"ALL"), "cap_drop {caps:?}");
    assert!(p["cap_add"].is_null(), "pgward adds capabilities");
    let opts: Vec<&str> = p["security_opt"]
        .as_array()
        .expect("security_opt")
        .iter()
        .map(|o| o.as_str().unwrap())
        .collect();
    assert!(
        opts.iter()
            .any(|o| *o == "no-new-privileges:true" || *o == "no-new-privileges"),
        "security_opt {opts:?}"
    );
    assert!(p["privileged"].is_null() || p["privileged"] == json!(false));
    // The image's health check stays on (the proxy waits for it).
    assert!(p["healthcheck"]["disable"] != json!(true));
    // The config is mounted read-only at the image's documented path, from this repository.
    let mounts = p["volumes"].as_array().unwrap();
    let config = mounts
        .iter()
        .filter_map(Value::as_str)
        .find(|m| m.contains(":/etc/pgward/pgward.toml"))
        .expect("the config is mounted at /etc/pgward/pgward.toml");
    assert!(config.ends_with(":ro"), "{config} is not read-only");
    assert_eq!(config.split(':').next(), Some("./pgward-behind-proxy.toml"));
}

#[test]
fn compose_secrets_come_from_the_environment_with_obvious_demo_defaults() {
    let c = compose();
    let services = c["services"].as_object().unwrap();
    let mut checked = 0;
    for (name, svc) in services {
        for (k, v) in env_map(svc) {
            if !secret_name(&k) && !secret_value(&v) {
                continue;
            }
            checked += 1;
            let (var, default) = interpolation(&v).unwrap_or_else(|| {
                panic!("{name}.environment.{k}: a literal; write `${{VAR}}` or `${{VAR:-demo...}}`")
            });
            assert_eq!(var, k, "{name}.environment.{k} reads ${{{var}}}");
            if let Some(d) = default {
                assert!(
                    d.contains("demo"),
                    "{name}.environment.{k}: the default `{d}` must say it is a demo value"
                );
                assert!(
                    !secret_value(&d),
                    "{name}.environment.{k}: default looks real"
                );
            }
        }
    }
    assert!(checked >= 3, "only {checked} secret variables found");
    // pgward gets every variable its config reads.
    let cfg = toml_file("deploy/pgward-behind-proxy.toml");
    let provided = env_map(&services["pgward"]);
    for var in env_refs(&cfg) {
        assert!(
            provided.contains_key(&var),
            "pgward-behind-proxy.toml reads ${{{var}}}, which compose does not pass to pgward"
        );
    }
    // The same reader password on both sides.
    let pg = env_map(&services["postgres"]);
    assert_eq!(
        pg.get("PGWARD_DB_PASSWORD"),
        provided.get("PGWARD_DB_PASSWORD")
    );
}

#[test]
fn compose_initialises_postgres_with_the_demo_schema_then_every_migration() {
    let c = compose();
    let pg = &c["services"]["postgres"];
    const INIT: &str = "/docker-entrypoint-initdb.d/";
    let mut init: Vec<(String, String)> = volumes(pg)
        .into_iter()
        .filter(|(_, t)| t.starts_with(INIT))
        .map(|(s, t)| (t.trim_start_matches(INIT).to_string(), s))
        .collect();
    // The entrypoint runs these in name order, and only files directly in the directory.
    init.sort();
    for (target, source) in &init {
        assert!(
            !target.contains('/'),
            "{target}: subdirectories are not run"
        );
        assert!(
            repo().join("deploy").join(source).exists(),
            "{source} (mounted as {target}) does not exist"
        );
    }
    let sources: Vec<String> = init
        .iter()
        .map(|(_, s)| s.trim_start_matches("../").to_string())
        .collect();
    let position = |file: &str| {
        sources
            .iter()
            .position(|s| s == file)
            .unwrap_or_else(|| panic!("{file} is not mounted into {INIT}"))
    };
    let schema = position("demo/schema.sql");
    let mut previous = schema;
    let mut migrations: Vec<String> = walk("migrations")
        .into_iter()
        .filter(|f| f.ends_with(".sql"))
        .collect();
    migrations.sort();
    assert!(!migrations.is_empty());
    for m in &migrations {
        let at = position(m);
        assert!(
            at > previous,
            "{m} runs before {} (the schema, then the migrations in order)",
            sources[previous]
        );
        previous = at;
    }
    // The role's password is set after the role exists.
    let passwords = sources
        .iter()
        .position(|s| s.ends_with(".sh"))
        .expect("a script sets pgward_reader's password");
    assert!(
        passwords > previous,
        "the password script runs before the migrations"
    );
}

#[test]
fn compose_publishes_only_the_proxy_and_only_on_loopback() {
    let c = compose();
    for (name, svc) in c["services"].as_object().unwrap() {
        let Some(ports) = svc["ports"].as_array() else {
            continue;
        };
        assert_eq!(name, "proxy", "{name} publishes ports");
        for p in ports {
            let p = p.as_str().expect("short port syntax");
            assert!(
                p.starts_with("127.0.0.1:"),
                "the proxy publishes {p} beyond this machine"
            );
        }
    }
    assert!(c["services"]["proxy"]["ports"].is_array());
    // The database is on a network with no route out that the proxy does not join.
    let pg_nets = c["services"]["postgres"]["networks"].as_array().unwrap();
    let proxy_nets: Vec<String> = match &c["services"]["proxy"]["networks"] {
        Value::Object(m) => m.keys().cloned().collect(),
        Value::Array(a) => a.iter().map(|n| n.as_str().unwrap().to_string()).collect(),
        other => panic!("proxy networks {other}"),
    };
    for n in pg_nets {
        let n = n.as_str().unwrap();
        assert!(
            !proxy_nets.iter().any(|p| p == n),
            "the proxy shares {n} with PostgreSQL"
        );
        assert_eq!(
            c["networks"][n]["internal"],
            json!(true),
            "{n} is not internal"
        );
    }
}

#[test]
fn pgward_trusts_forwarded_for_only_from_the_compose_proxy_address() {
    let c = compose();
    let proxy_ip = c["services"]["proxy"]["networks"]
        .as_object()
        .and_then(|m| m.values().find_map(|n| n["ipv4_address"].as_str()))
        .expect("the proxy has a fixed address")
        .to_string();
    let cfg = toml_file("deploy/pgward-behind-proxy.toml");
    let trusted: Vec<&str> = cfg["http"]["trusted_proxies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(trusted, [proxy_ip.as_str()]);
    assert_eq!(cfg["http"]["tls_terminated_by_proxy"].as_bool(), Some(true));
    // The proxy's address lies in the network's declared subnet.
    let subnet = c["networks"]
        .as_object()
        .unwrap()
        .values()
        .find_map(|n| n["ipam"]["config"][0]["subnet"].as_str())
        .unwrap();
    let prefix = subnet
        .split('/')
        .next()
        .unwrap()
        .rsplit_once('.')
        .unwrap()
        .0;
    assert!(
        proxy_ip.starts_with(&format!("{prefix}.")),
        "{proxy_ip} not in {subnet}"
    );
}

// ---------------------------------------------------------------------------------------
// Reverse proxy (nginx)
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Directive {
    name: String,
    args: Vec<String>,
    block: Option<Vec<Directive>>,
}

fn parse_nginx(text: &str) -> Vec<Directive> {
    let mut tokens: Vec<String> = Vec::new();
    for line in text.lines() {
        let mut cur = String::new();
        // A quoted token counts even when empty (`proxy_set_header Connection "";`).
        let mut quoted_token = false;
        let mut quote: Option<char> = None;
        let push = |cur: &mut String, quoted_token: &mut bool, tokens: &mut Vec<String>| {
            if !cur.is_empty() || *quoted_token {
                tokens.push(std::mem::take(cur));
            }
            *quoted_token = false;
        };
        for c in line.chars() {
            match (quote, c) {
                (None, '"' | '\'') => {
                    quote = Some(c);
                    quoted_token = true;
                }
                (Some(q), c) if c == q => quote = None,
                (Some(_), c) => cur.push(c),
                (None, '#') => break,
                (None, ';' | '{' | '}') => {
                    push(&mut cur, &mut quoted_token, &mut tokens);
                    tokens.push(c.to_string());
                }
                (None, c) if c.is_whitespace() => push(&mut cur, &mut quoted_token, &mut tokens),
                (None, c) => cur.push(c),
            }
        }
        push(&mut cur, &mut quoted_token, &mut tokens);
    }
    fn block(tokens: &[String], at: &mut usize) -> Vec<Directive> {
        let mut out = Vec::new();
        let mut words: Vec<String> = Vec::new();
        while *at < tokens.len() {
            let t = &tokens[*at];
            *at += 1;
            match t.as_str() {
                ";" => {
                    let name = words.remove(0);
                    out.push(Directive {
                        name,
                        args: std::mem::take(&mut words),
                        block: None,
                    });
                }
                "{" => {
                    let name = words.remove(0);
                    let inner = block(tokens, at);
                    out.push(Directive {
                        name,
                        args: std::mem::take(&mut words),
                        block: Some(inner),
                    });
                }
                "}" => return out,
                _ => words.push(t.clone()),
            }
        }
        assert!(words.is_empty(), "unterminated directive {words:?}");
        out
    }
    let mut at = 0;
    block(&tokens, &mut at)
}

fn children<'a>(ds: &'a [Directive], name: &str) -> Vec<&'a Directive> {
    ds.iter().filter(|d| d.name == name).collect()
}

/// The value of `name` in effect inside the innermost of `scopes` (nginx inheritance: the
/// innermost level that sets it wins).
fn effective(scopes: &[&[Directive]], name: &str) -> Option<Vec<String>> {
    scopes
        .iter()
        .rev()
        .find_map(|s| children(s, name).last().map(|d| d.args.clone()))
}

fn nginx_bytes(v: &str) -> u64 {
    let v = v.to_ascii_lowercase();
    let (n, mult) = match v.chars().last() {
        Some('k') => (&v[..v.len() - 1], 1024),
        Some('m') => (&v[..v.len() - 1], 1024 * 1024),
        Some('g') => (&v[..v.len() - 1], 1024 * 1024 * 1024),
        _ => (v.as_str(), 1),
    };
    n.parse::<u64>().unwrap() * mult
}

fn nginx_millis(v: &str) -> u64 {
    let re = Regex::new(r"^(\d+)(ms|s|m|h)?$").unwrap();
    let c = re.captures(v).unwrap_or_else(|| panic!("time `{v}`"));
    let n: u64 = c[1].parse().unwrap();
    n * match c.get(2).map(|m| m.as_str()) {
        Some("ms") => 1,
        None | Some("s") => 1000,
        Some("m") => 60_000,
        Some("h") => 3_600_000,
        _ => unreachable!(),
    }
}

struct Nginx {
    http: Vec<Directive>,
    server: Vec<Directive>,
    mcp: Vec<Directive>,
}

fn nginx() -> Nginx {
    let top = parse_nginx(&read("deploy/proxy/nginx.conf"));
    let http = children(&top, "http")[0].block.clone().unwrap();
    let servers = children(&http, "server");
    assert_eq!(servers.len(), 1, "one server block");
    let server = servers[0].block.clone().unwrap();
    let mcp = children(&server, "location")
        .into_iter()
        .find(|l| l.args == ["=", "/mcp"] || l.args == ["/mcp"])
        .expect("a location for /mcp")
        .block
        .clone()
        .unwrap();
    Nginx { http, server, mcp }
}

#[test]
fn the_nginx_parser_reads_what_the_proxy_checks_rely_on() {
    let d = parse_nginx(
        "http { a 1; # c\n server { listen 1 ssl; location = /mcp { proxy_set_header X \"a b\"; proxy_set_header C \"\"; } } }",
    );
    let http = d[0].block.as_ref().unwrap();
    assert_eq!(http[0].args, ["1"]);
    let server = http[1].block.as_ref().unwrap();
    assert_eq!(server[0].args, ["1", "ssl"]);
    let loc = &server[1];
    assert_eq!(loc.args, ["=", "/mcp"]);
    assert_eq!(loc.block.as_ref().unwrap()[0].args, ["X", "a b"]);
    assert_eq!(loc.block.as_ref().unwrap()[1].args, ["C", ""]);
    assert_eq!(
        effective(&[http, server, loc.block.as_ref().unwrap()], "a"),
        Some(vec!["1".to_string()])
    );
    assert_eq!(nginx_bytes("1m"), 1_048_576);
    assert_eq!(nginx_bytes("512k"), 524_288);
    assert_eq!(nginx_millis("90s"), 90_000);
    assert_eq!(nginx_millis("90"), 90_000);
    assert_eq!(nginx_millis("2m"), 120_000);
}

#[test]
fn the_proxy_terminates_tls_and_passes_the_client_address_and_token_to_pgward() {
    let n = nginx();
    let listens = children(&n.server, "listen");
    assert!(!listens.is_empty());
    for l in &listens {
        assert!(
            l.args.iter().any(|a| a == "ssl"),
            "listen {:?} serves plain HTTP",
            l.args
        );
    }
    let protocols = effective(&[n.http.as_slice(), n.server.as_slice()], "ssl_protocols")
        .expect("ssl_protocols");
    for p in &protocols {
        assert!(p == "TLSv1.2" || p == "TLSv1.3", "ssl_protocols allows {p}");
    }
    assert!(effective(&[n.http.as_slice(), n.server.as_slice()], "ssl_certificate").is_some());
    // Headers for /mcp: proxy_set_header is inherited only when a level sets none itself.
    let headers: BTreeMap<String, String> = [&n.http, &n.server, &n.mcp]
        .iter()
        .rev()
        .map(|s| children(s.as_slice(), "proxy_set_header"))
        .find(|v| !v.is_empty())
        .unwrap_or_default()
        .iter()
        .map(|d| (d.args[0].to_ascii_lowercase(), d.args[1].clone()))
        .collect();
    assert_eq!(
        headers.get("x-forwarded-for").map(String::as_str),
        Some("$remote_addr"),
        "X-Forwarded-For must be set to the client's address (overwritten, not appended)"
    );
    assert_eq!(
        headers.get("host").map(String::as_str),
        Some("$host"),
        "pgward checks Host against allowed_hosts"
    );
    if let Some(auth) = headers.get("authorization") {
        assert_eq!(
            auth, "$http_authorization",
            "the bearer token must reach pgward"
        );
    }
    assert!(
        effective(
            &[n.http.as_slice(), n.server.as_slice(), n.mcp.as_slice()],
            "proxy_pass_request_headers"
        )
        .is_none_or(|v| v == ["on"]),
        "request headers (the token) must be passed on"
    );
    // The upstream is pgward's MCP listener.
    let pass = children(&n.mcp, "proxy_pass")[0].args[0].clone();
    let upstream_name = pass.trim_start_matches("http://");
    let upstream = children(&n.http, "upstream")
        .into_iter()
        .find(|u| u.args == [upstream_name])
        .expect("proxy_pass names an upstream");
    let server = &children(upstream.block.as_ref().unwrap(), "server")[0].args[0];
    let cfg = toml_file("deploy/pgward-behind-proxy.toml");
    assert_eq!(
        server.rsplit_once(':').unwrap().1.parse::<u16>().unwrap(),
        listen_port(&cfg["http"]["listen"])
    );
    // The Host it forwards ($host: the server_name clients use) is one pgward accepts.
    let names = effective(&[n.server.as_slice()], "server_name").unwrap();
    let allowed: Vec<&str> = cfg["http"]["allowed_hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for name in &names {
        assert!(
            allowed.contains(&name.as_str()),
            "{name} is not in allowed_hosts"
        );
    }
    // Only the MCP endpoint and the metadata are proxied; everything else is refused.
    let catch_all = children(&n.server, "location")
        .into_iter()
        .find(|l| l.args == ["/"])
        .expect("a catch-all location");
    assert!(children(catch_all.block.as_ref().unwrap(), "proxy_pass").is_empty());
}

#[test]
fn the_proxy_streams_responses_and_its_limits_sit_inside_pgwards() {
    let n = nginx();
    let scopes: [&[Directive]; 3] = [&n.http, &n.server, &n.mcp];
    assert_eq!(
        effective(&scopes, "proxy_buffering"),
        Some(vec!["off".to_string()]),
        "text/event-stream responses must not be buffered"
    );
    assert_ne!(
        effective(&scopes, "proxy_cache"),
        None,
        "set proxy_cache off explicitly"
    );
    let cfg = toml_file("deploy/pgward-behind-proxy.toml");
    let max_body = cfg["http"]
        .get("max_body_bytes")
        .and_then(|v| v.as_integer())
        .unwrap_or(1_048_576) as u64;
    let body = effective(&scopes, "client_max_body_size").expect("client_max_body_size");
    let body = nginx_bytes(&body[0]);
    assert!(body > 0, "client_max_body_size 0 means unlimited");
    assert!(
        body <= max_body,
        "the proxy accepts bodies of {body} bytes, more than pgward's max_body_bytes {max_body}"
    );
    let request_timeout = cfg["http"]
        .get("request_timeout_ms")
        .and_then(|v| v.as_integer())
        .unwrap_or(60_000) as u64;
    let read =
        nginx_millis(&effective(&scopes, "proxy_read_timeout").expect("proxy_read_timeout")[0]);
    assert!(
        read > request_timeout,
        "proxy_read_timeout {read} ms does not exceed pgward's request_timeout_ms {request_timeout}"
    );
    // The Kubernetes ingress carries the same limits in its annotations.
    let ingress = one("Ingress");
    let ann = &ingress["metadata"]["annotations"];
    let kcfg = kube_pgward_config();
    let kmax = kcfg["http"]
        .get("max_body_bytes")
        .and_then(|v| v.as_integer())
        .unwrap_or(1_048_576) as u64;
    let ktimeout = kcfg["http"]
        .get("request_timeout_ms")
        .and_then(|v| v.as_integer())
        .unwrap_or(60_000) as u64;
    let size = nginx_bytes(
        ann["nginx.ingress.kubernetes.io/proxy-body-size"]
            .as_str()
            .unwrap(),
    );
    assert!(size > 0 && size <= kmax);
    let read = nginx_millis(
        ann["nginx.ingress.kubernetes.io/proxy-read-timeout"]
            .as_str()
            .unwrap(),
    );
    assert!(read > ktimeout);
    assert_eq!(ann["nginx.ingress.kubernetes.io/proxy-buffering"], "off");
}

// ---------------------------------------------------------------------------------------
// Kubernetes
// ---------------------------------------------------------------------------------------

#[test]
fn every_kubernetes_manifest_parses_and_the_kustomization_applies_them_all() {
    let docs = kube_docs();
    for (file, d) in &docs {
        assert!(d["apiVersion"].is_string(), "{file}: no apiVersion");
        assert!(d["kind"].is_string(), "{file}: no kind");
        if d["kind"] != "Kustomization" {
            assert!(
                d["metadata"]["name"].is_string(),
                "{file}: no metadata.name"
            );
        }
        if !matches!(d["kind"].as_str(), Some("Namespace" | "Kustomization")) {
            assert_eq!(
                d["metadata"]["namespace"], "pgward",
                "{file}: {}",
                d["kind"]
            );
        }
    }
    let kustomization = one("Kustomization");
    let listed: BTreeSet<String> = kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("deploy/kubernetes/{}", r.as_str().unwrap()))
        .collect();
    let files: BTreeSet<String> = docs
        .iter()
        .filter(|(_, d)| d["kind"] != "Kustomization")
        .map(|(f, _)| f.clone())
        .collect();
    assert_eq!(
        listed, files,
        "kustomization.yaml and the manifest files differ"
    );
    // No Secret with values is committed.
    for s in kube("Secret") {
        assert!(
            s["data"].is_null() && s["stringData"].is_null(),
            "a Secret with values is committed"
        );
    }
}

#[test]
fn the_namespace_enforces_the_restricted_pod_security_standard() {
    let ns = one("Namespace");
    assert_eq!(ns["metadata"]["name"], "pgward");
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
}

#[test]
fn the_deployment_runs_non_root_read_only_without_capabilities_or_privilege_escalation() {
    let d = one("Deployment");
    let pod = &d["spec"]["template"]["spec"];
    let psc = &pod["securityContext"];
    assert_eq!(psc["runAsNonRoot"], json!(true), "pod runAsNonRoot");
    assert_eq!(
        psc["seccompProfile"]["type"], "RuntimeDefault",
        "pod seccomp"
    );
    assert_ne!(psc["runAsUser"], json!(0));
    assert_eq!(pod["automountServiceAccountToken"], json!(false));
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        assert_ne!(pod[host], json!(true), "{host}");
    }
    let mut containers = pod["containers"].as_array().unwrap().clone();
    containers.extend(
        pod["initContainers"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
    );
    assert!(!containers.is_empty());
    for c in &containers {
        let name = c["name"].as_str().unwrap();
        let sc = &c["securityContext"];
        // Container settings override the pod's; both must end up safe.
        let eff = |k: &str| {
            if sc[k].is_null() {
                psc[k].clone()
            } else {
                sc[k].clone()
            }
        };
        assert_eq!(eff("runAsNonRoot"), json!(true), "{name}: runAsNonRoot");
        assert_ne!(eff("runAsUser"), json!(0), "{name}: runAsUser 0");
        assert_eq!(
            sc["readOnlyRootFilesystem"],
            json!(true),
            "{name}: readOnlyRootFilesystem"
        );
        assert_eq!(
            sc["allowPrivilegeEscalation"],
            json!(false),
            "{name}: allowPrivilegeEscalation"
        );
        assert_ne!(sc["privileged"], json!(true), "{name}: privileged");
        let drop: Vec<&str> = sc["capabilities"]["drop"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: capabilities.drop"))
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(drop.contains(&"ALL"), "{name}: drop {drop:?}");
        assert!(
            sc["capabilities"]["add"]
                .as_array()
                .is_none_or(|a| a.is_empty()),
            "{name}: adds capabilities"
        );
        assert_eq!(
            eff("seccompProfile")["type"],
            "RuntimeDefault",
            "{name}: seccomp"
        );
    }
}

#[test]
fn the_deployment_probes_healthz_and_readyz_on_the_admin_port() {
    let c = deployment_container();
    let port_number = |p: &Value| -> u64 {
        match p {
            Value::Number(n) => n.as_u64().unwrap(),
            Value::String(name) => c["ports"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["name"] == *name)
                .unwrap_or_else(|| panic!("no container port named {name}"))["containerPort"]
                .as_u64()
                .unwrap(),
            other => panic!("port {other}"),
        }
    };
    let admin = listen_port(&kube_pgward_config()["admin"]["listen"]) as u64;
    let cfg = kube_pgward_config();
    // The kubelet connects to the pod's address: a loopback admin listener would fail every
    // probe, so the config must listen on the network and say so.
    assert_eq!(cfg["admin"]["allow_network"].as_bool(), Some(true));
    assert!(!cfg["admin"]["listen"].as_str().unwrap().starts_with("127."));
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe} path");
        assert_eq!(
            port_number(&get["port"]),
            admin,
            "{probe} is not on the admin port"
        );
        assert!(
            get["scheme"].is_null() || get["scheme"] == "HTTP",
            "{probe}: the admin listener speaks plain HTTP"
        );
    }
    if !c["startupProbe"].is_null() {
        assert_eq!(port_number(&c["startupProbe"]["httpGet"]["port"]), admin);
    }
}

#[test]
fn the_deployment_takes_every_secret_from_a_secret() {
    let c = deployment_container();
    let env = c["env"].as_array().unwrap();
    let mut from_secrets = BTreeSet::new();
    for e in env {
        let name = e["name"].as_str().unwrap();
        if let Some(v) = e["value"].as_str() {
            assert!(!secret_name(name), "env {name} is a literal secret");
            assert!(!secret_value(v), "env {name} holds a secret-looking value");
        } else {
            let sk = &e["valueFrom"]["secretKeyRef"];
            if secret_name(name) {
                assert!(
                    sk.is_object(),
                    "env {name} must come from a Secret (secretKeyRef)"
                );
            }
            if sk.is_object() {
                assert!(
                    sk["name"].is_string() && sk["key"].is_string(),
                    "env {name}"
                );
                assert_ne!(
                    sk["optional"],
                    json!(true),
                    "env {name}: a secret must not be optional"
                );
                from_secrets.insert(name.to_string());
            }
        }
    }
    assert!(
        c["envFrom"]
            .as_array()
            .is_none_or(|a| a.iter().all(|e| e["configMapRef"].is_null())),
        "envFrom a ConfigMap would put values in the environment unreviewed"
    );
    // Every variable the config reads is one of them.
    for var in env_refs(&kube_pgward_config()) {
        assert!(
            from_secrets.contains(&var),
            "the ConfigMap's pgward.toml reads ${{{var}}}, which the Deployment does not take from a Secret"
        );
    }
    // And the ConfigMap itself holds no secret.
    for (k, v) in one("ConfigMap")["data"].as_object().unwrap() {
        assert!(
            !secret_value(v.as_str().unwrap()),
            "ConfigMap key {k} holds a secret"
        );
    }
}

#[test]
fn the_deployment_sets_resource_requests_and_limits() {
    let d = one("Deployment");
    for c in d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
    {
        let r = &c["resources"];
        for k in ["cpu", "memory"] {
            assert!(r["limits"][k].is_string(), "{}: limits.{k}", c["name"]);
            assert!(r["requests"][k].is_string(), "{}: requests.{k}", c["name"]);
        }
    }
}

#[test]
fn the_deployment_mounts_the_config_where_the_image_reads_it_and_follows_updates() {
    let c = deployment_container();
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args, ["serve", "--config", "/etc/pgward/pgward.toml"]);
    let mounts = c["volumeMounts"].as_array().unwrap();
    let config = mounts
        .iter()
        .find(|m| m["mountPath"] == "/etc/pgward")
        .expect("the ConfigMap is mounted at /etc/pgward");
    assert_eq!(config["readOnly"], json!(true));
    assert!(
        config["subPath"].is_null(),
        "a subPath mount never sees ConfigMap updates (server.watch_config would not reload)"
    );
    let d = one("Deployment");
    let volume = d["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == config["name"])
        .unwrap()
        .clone();
    assert_eq!(
        volume["configMap"]["name"],
        one("ConfigMap")["metadata"]["name"]
    );
    // Every file the config names under /etc/pgward is a key of the ConfigMap.
    let keys: BTreeSet<String> = one("ConfigMap")["data"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let file = Regex::new(r#""/etc/pgward/([^"]+)""#).unwrap();
    for cap in file.captures_iter(&kube_pgward_config_text()) {
        assert!(
            keys.contains(&cap[1]),
            "/etc/pgward/{} is not in the ConfigMap",
            &cap[1]
        );
    }
    // One audit chain writer: no second pod while the first still runs.
    if kube_pgward_config()["audit"].get("postgres_url").is_some() {
        assert_eq!(d["spec"]["replicas"], json!(1));
        assert_eq!(d["spec"]["strategy"]["type"], "Recreate");
    }
}

/// The (protocol, port) pairs of a NetworkPolicy rule.
fn rule_ports(rule: &Value) -> BTreeSet<(String, u64)> {
    rule["ports"]
        .as_array()
        .unwrap_or_else(|| panic!("a rule without ports allows every port: {rule}"))
        .iter()
        .map(|p| {
            (
                p["protocol"].as_str().unwrap_or("TCP").to_string(),
                p["port"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("numeric port: {p}")),
            )
        })
        .collect()
}

/// A peer list that names pods or namespaces by label (never everyone, never an open CIDR).
fn peers_are_selected(peers: &Value, what: &str) {
    let peers = peers
        .as_array()
        .unwrap_or_else(|| panic!("{what}: a rule without peers allows everyone"));
    assert!(!peers.is_empty(), "{what}: empty peers allow everyone");
    for p in peers {
        if let Some(cidr) = p["ipBlock"]["cidr"].as_str() {
            assert!(!cidr.ends_with("/0"), "{what}: {cidr} is everyone");
            continue;
        }
        let labelled = |s: &Value| {
            s["matchLabels"].as_object().is_some_and(|m| !m.is_empty())
                || s["matchExpressions"]
                    .as_array()
                    .is_some_and(|m| !m.is_empty())
        };
        assert!(
            labelled(&p["podSelector"]) || labelled(&p["namespaceSelector"]),
            "{what}: peer {p} selects everything"
        );
    }
}

#[test]
fn the_network_policy_admits_only_the_proxy_and_monitoring_and_reaches_only_postgres_and_dns() {
    let np = one("NetworkPolicy");
    let spec = &np["spec"];
    let types: BTreeSet<&str> = spec["policyTypes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(types, BTreeSet::from(["Ingress", "Egress"]));
    // It selects pgward's pods.
    let pod_labels = one("Deployment")["spec"]["template"]["metadata"]["labels"].clone();
    for (k, v) in spec["podSelector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(
            &pod_labels[k], v,
            "the policy does not select pgward's pods"
        );
    }
    let cfg = kube_pgward_config();
    let mcp = listen_port(&cfg["http"]["listen"]) as u64;
    let admin = listen_port(&cfg["admin"]["listen"]) as u64;
    let db_port: u64 = Regex::new(r"@[^/:]+:(\d+)/")
        .unwrap()
        .captures(cfg["database"]["url"].as_str().unwrap())
        .map_or(5432, |c| c[1].parse().unwrap());

    let ingress = spec["ingress"].as_array().unwrap();
    assert!(!ingress.is_empty());
    let mut mcp_from_proxy = false;
    for rule in ingress {
        peers_are_selected(&rule["from"], "ingress");
        let ports = rule_ports(rule);
        for (proto, port) in &ports {
            assert_eq!(proto, "TCP");
            assert!(
                *port == mcp || *port == admin,
                "ingress opens port {port}, neither MCP ({mcp}) nor admin ({admin})"
            );
        }
        let from = rule["from"].to_string();
        if ports.contains(&("TCP".into(), mcp)) {
            assert!(
                from.contains("ingress"),
                "MCP port open to {from}, not the proxy"
            );
            mcp_from_proxy = true;
        }
        if ports.contains(&("TCP".into(), admin)) {
            assert!(
                from.contains("monitoring"),
                "the admin port (no authentication) is open to {from}"
            );
            assert!(
                !ports.contains(&("TCP".into(), mcp)),
                "one rule for both ports"
            );
        }
    }
    assert!(mcp_from_proxy, "no rule lets the proxy reach the MCP port");

    let egress = spec["egress"].as_array().unwrap();
    let mut dns = BTreeSet::new();
    let mut postgres = false;
    for rule in egress {
        peers_are_selected(&rule["to"], "egress");
        let ports = rule_ports(rule);
        for (proto, port) in &ports {
            match (proto.as_str(), *port) {
                ("UDP" | "TCP", 53) => {
                    dns.insert(proto.clone());
                    assert!(
                        rule["to"].to_string().contains("kube-dns")
                            || rule["to"].to_string().contains("kube-system"),
                        "DNS to somewhere other than the cluster's resolver"
                    );
                }
                ("TCP", p) if p == db_port => postgres = true,
                other => panic!("egress to {other:?} is neither PostgreSQL nor DNS"),
            }
        }
    }
    assert!(postgres, "no egress rule reaches PostgreSQL on {db_port}");
    assert_eq!(dns, BTreeSet::from(["TCP".to_string(), "UDP".to_string()]));
}

#[test]
fn the_ingress_routes_only_the_mcp_endpoint_to_the_mcp_port_over_tls() {
    let ing = one("Ingress");
    let cfg = kube_pgward_config();
    let public = cfg["http"]["public_url"].as_str().unwrap();
    let host = public
        .strip_prefix("https://")
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    let tls_hosts: Vec<&str> = ing["spec"]["tls"][0]["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    assert!(tls_hosts.contains(&host), "{host} is not served over TLS");
    let allowed: Vec<&str> = cfg["http"]["allowed_hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    assert!(allowed.contains(&host));
    let svc = one("Service");
    let svc_ports = svc["spec"]["ports"].as_array().unwrap();
    let mcp_port_name = svc_ports
        .iter()
        .find(|p| p["port"].as_u64() == Some(listen_port(&cfg["http"]["listen"]) as u64))
        .and_then(|p| p["name"].as_str())
        .unwrap();
    let mut paths = BTreeSet::new();
    for rule in ing["spec"]["rules"].as_array().unwrap() {
        assert_eq!(rule["host"], host);
        for p in rule["http"]["paths"].as_array().unwrap() {
            let backend = &p["backend"]["service"];
            assert_eq!(backend["name"], svc["metadata"]["name"]);
            assert_eq!(
                backend["port"]["name"], mcp_port_name,
                "{} is routed to a port other than MCP (the admin port must never be)",
                p["path"]
            );
            paths.insert(p["path"].as_str().unwrap().to_string());
        }
    }
    let mcp_path = cfg["http"]
        .get("path")
        .and_then(|p| p.as_str())
        .unwrap_or("/mcp");
    assert_eq!(
        paths,
        BTreeSet::from([
            mcp_path.to_string(),
            "/.well-known/oauth-protected-resource".to_string()
        ])
    );
    assert_eq!(cfg["http"]["tls_terminated_by_proxy"].as_bool(), Some(true));
}

// ---------------------------------------------------------------------------------------
// Docs
// ---------------------------------------------------------------------------------------

/// Whether `file` defines a test function `name`.
fn defines_test(file: &str, name: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(repo().join(file)) else {
        return false;
    };
    let Some(at) = text.find(&format!("fn {name}(")) else {
        return false;
    };
    let before = &text[at.saturating_sub(300)..at];
    let attr = before.rfind("#[").map(|i| &before[i..]).unwrap_or("");
    attr.starts_with("#[test]") || attr.starts_with("#[tokio::test")
}

#[test]
fn the_threat_model_cites_only_tests_that_exist_and_covers_every_risk() {
    let text = read("THREAT_MODEL.md");
    let cite = Regex::new(r"`((?:tests|src)/[A-Za-z0-9_/]+\.rs)::([a-z0-9_]+)`").unwrap();
    let mut cited = 0;
    for c in cite.captures_iter(&text) {
        cited += 1;
        assert!(
            defines_test(&c[1], &c[2]),
            "THREAT_MODEL.md cites {}::{}, which is not a test there",
            &c[1],
            &c[2]
        );
    }
    assert!(cited >= 30, "only {cited} tests cited");
    // Each risk has its section, and each section cites at least one test.
    let mut risks: Vec<String> = (1..=10).map(|n| format!("API{n}:2023")).collect();
    risks.push("LLM01".into());
    let headings: Vec<(usize, &str)> = text
        .match_indices("\n### ")
        .map(|(i, _)| (i, &text[i + 5..]))
        .collect();
    for risk in &risks {
        let (i, _) = headings
            .iter()
            .find(|(_, h)| h.starts_with(risk.as_str()))
            .unwrap_or_else(|| panic!("THREAT_MODEL.md has no `### {risk}` section"));
        let end = headings
            .iter()
            .map(|(j, _)| *j)
            .find(|j| j > i)
            .unwrap_or(text.len());
        assert!(
            cite.is_match(&text[*i..end]),
            "the {risk} section cites no test"
        );
    }
    // The check would notice a made-up name.
    assert!(!defines_test("tests/e2e_http.rs", "no_such_test"));
    assert!(!defines_test("tests/common/http.rs", "hs256"));
    assert!(defines_test(
        "tests/e2e_http.rs",
        "missing_credentials_get_a_401_challenge"
    ));
}

#[test]
fn operator_docs_link_only_to_files_that_exist() {
    let link = Regex::new(r"\]\(([^)\s]+)\)").unwrap();
    let mut docs = vec!["SECURITY.md".to_string(), "THREAT_MODEL.md".to_string()];
    docs.extend(walk("docs").into_iter().filter(|f| f.ends_with(".md")));
    let mut checked = 0;
    for doc in &docs {
        let text = read(doc);
        let dir = Path::new(doc).parent().unwrap();
        for c in link.captures_iter(&text) {
            let target = &c[1];
            if target.contains("://") || target.starts_with('#') || target.starts_with("mailto:") {
                continue;
            }
            let path = target.split('#').next().unwrap();
            checked += 1;
            assert!(
                repo().join(dir).join(path).exists(),
                "{doc} links to {target}, which does not exist"
            );
        }
    }
    assert!(checked > 5, "only {checked} links checked");
}

#[test]
fn the_client_docs_send_the_headers_the_https_test_sends() {
    let clients = read("docs/clients.md");
    let e2e = read("tests/e2e_https.rs");
    for header in [
        "content-type: application/json",
        "accept: application/json, text/event-stream",
        "mcp-protocol-version: 2026-07-28",
        "mcp-method: tools/list",
    ] {
        assert!(
            e2e.contains(header),
            "tests/e2e_https.rs no longer sends `{header}`"
        );
        assert!(
            clients.contains(header),
            "docs/clients.md does not send `{header}`"
        );
    }
}
