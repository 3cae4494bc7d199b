//! EDGE: reads the config file and resolves `${ENV_VAR}` references in the keys that hold
//! secrets. Everything after this is pure.

use std::path::Path;

use super::types::Config;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file `{path}`: {reason}")]
    Read { path: String, reason: String },
    #[error("invalid config: {0}")]
    Parse(String),
    #[error("invalid config:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<String>),
}

/// Reads and parses the file, then substitutes environment variables.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.display().to_string(),
        reason: e.kind().to_string(),
    })?;
    let config = parse(&text)?;
    resolve_env(config, &|name| std::env::var(name).ok())
}

/// Parses TOML text (no environment access). Unknown keys do not stop parsing: they are
/// collected in `unknown_keys`, which validation reports with every other problem.
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    let parse_error = |e: toml::de::Error| ConfigError::Parse(e.to_string().trim_end().to_string());
    let deserializer = toml::de::Deserializer::parse(text).map_err(parse_error)?;
    let mut unknown = Vec::new();
    let mut config: Config = serde_ignored::deserialize(deserializer, |path| {
        unknown.push(path.to_string());
    })
    .map_err(parse_error)?;
    config.unknown_keys = unknown;
    Ok(config)
}

/// Substitutes `${NAME}` in `database.url` and `redaction.hash_key` using `lookup`, reporting
/// every missing variable. Before substitution, a password written literally in the URL is
/// refused: secrets belong in the environment, not the file.
pub fn resolve_env(
    mut config: Config,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut problems = Vec::new();
    if url_has_literal_password(&config.database.url) {
        problems.push(
            "database.url: the URL holds a literal password; write it as `${ENV_VAR}` so no secret lives in the file"
                .to_string(),
        );
    }
    match substitute(&config.database.url, lookup) {
        Ok(v) => config.database.url = v,
        Err(var) => problems.push(format!(
            "database.url: environment variable `{var}` is not set"
        )),
    }
    if let Some(key) = &config.redaction.hash_key {
        if !key.contains("${") {
            problems.push(
                "redaction.hash_key: write the key as `${ENV_VAR}`; it must not live in the file"
                    .to_string(),
            );
        }
        match substitute(key, lookup) {
            Ok(v) if v.is_empty() => {
                problems.push("redaction.hash_key: the key is empty".to_string())
            }
            Ok(v) => config.redaction.hash_key = Some(v),
            Err(var) => problems.push(format!(
                "redaction.hash_key: environment variable `{var}` is not set"
            )),
        }
    }
    for (key, slot) in [
        ("audit.hmac_key", &mut config.audit.hmac_key),
        ("audit.postgres_url", &mut config.audit.postgres_url),
    ] {
        let Some(value) = slot.as_ref() else { continue };
        if !value.contains("${") {
            problems.push(format!(
                "{key}: write it as `${{ENV_VAR}}`; secrets must not live in the file"
            ));
            continue;
        }
        match substitute(value, lookup) {
            Ok(v) if v.is_empty() => problems.push(format!("{key}: the value is empty")),
            Ok(v) => *slot = Some(v),
            Err(var) => problems.push(format!("{key}: environment variable `{var}` is not set")),
        }
    }
    for (i, issuer) in config.auth.issuers.iter_mut().enumerate() {
        let Some(secret) = &issuer.hs256_secret else {
            continue;
        };
        let key = format!("auth.issuers[{i}].hs256_secret");
        if !secret.contains("${") {
            problems.push(format!(
                "{key}: write the secret as `${{ENV_VAR}}`; it must not live in the file"
            ));
            continue;
        }
        match substitute(secret, lookup) {
            Ok(v) => issuer.hs256_secret = Some(v),
            Err(var) => problems.push(format!("{key}: environment variable `{var}` is not set")),
        }
    }
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::Invalid(problems))
    }
}

/// Replaces each `${NAME}`; returns the first missing variable's name on failure.
fn substitute(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(after.to_string());
        };
        let name = &after[..end];
        match lookup(name) {
            Some(v) => out.push_str(&v),
            None => return Err(name.to_string()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `postgres://user:secret@host/db` or `password=secret` written in the file itself.
fn url_has_literal_password(url: &str) -> bool {
    if let Some((_, rest)) = url.split_once("://") {
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@')
            && let Some((_, password)) = userinfo.split_once(':')
        {
            return !password.is_empty() && !password.starts_with("${");
        }
    }
    url.split(|c: char| c.is_whitespace() || c == '&' || c == '?')
        .filter_map(|kv| kv.strip_prefix("password="))
        .any(|v| !v.is_empty() && !v.starts_with("${"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[database]\nurl = \"postgres://reader:${PW}@localhost/shop\"\n";

    #[test]
    fn env_is_substituted() {
        let c = resolve_env(parse(BASE).unwrap(), &|n| (n == "PW").then(|| "s3".into())).unwrap();
        assert_eq!(c.database.url, "postgres://reader:s3@localhost/shop");
    }

    #[test]
    fn missing_env_names_key_and_variable() {
        let err = resolve_env(parse(BASE).unwrap(), &|_| None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid config:\n  - database.url: environment variable `PW` is not set"
        );
    }

    #[test]
    fn literal_password_is_refused() {
        let c = parse("[database]\nurl = \"postgres://reader:hunter2@localhost/shop\"\n").unwrap();
        let err = resolve_env(c, &|_| None).unwrap_err().to_string();
        assert!(
            err.contains("database.url: the URL holds a literal password"),
            "{err}"
        );
        assert!(!err.contains("hunter2"));
        let c = parse("[database]\nurl = \"host=x password=hunter2\"\n").unwrap();
        assert!(resolve_env(c, &|_| None).is_err());
    }

    #[test]
    fn unknown_keys_are_all_collected_with_their_paths() {
        let c = parse(
            "[database]\nurl = \"x\"\nsuperuser = true\n[[tables]]\nname = \"t\"\ncolumns = \"all\"\nredakt = {}\n",
        )
        .unwrap();
        assert_eq!(
            c.unknown_keys,
            vec!["database.superuser", "tables.0.redakt"]
        );
    }
}
