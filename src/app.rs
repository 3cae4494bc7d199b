//! Composition root: builds the pool, the engine and the transport from a config.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::audit::sink::{AuditError, AuditLog};
use crate::auth::config::AuthConfig;
use crate::auth::jwks::JwksFetcher;
use crate::auth::live::{Credentials, LiveAuth};
use crate::auth::{Authenticator, IssuerKeys};
use crate::config::types::TlsSettings;
use crate::config::{self, ConfigError, Settings};
use crate::db::{Database, DbError};
use crate::engine::Engine;
use crate::mcp::{self, McpServeError};
use crate::sql::{self, ParamMode};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Db(#[from] DbError),
    #[error("{0}")]
    Mcp(#[from] McpServeError),
    #[error("{0}")]
    Audit(#[from] AuditError),
    #[error("{0}")]
    Admin(String),
    #[error("{0}")]
    Demo(String),
}

/// Loads, resolves and validates a config without touching the database.
pub fn load_settings(path: &Path) -> Result<Settings, ConfigError> {
    let cfg = config::load(path)?;
    config::validate(&cfg, &BTreeMap::new()).map_err(ConfigError::Invalid)
}

/// Builds the engine against the database: reads the catalog for `columns = "all"` tables,
/// revalidates with it, and runs the start-up posture and tool checks.
pub async fn build_engine(path: &Path) -> Result<Arc<Engine>, AppError> {
    build_engine_from(config::load(path)?).await
}

/// As [`build_engine`], from a config whose `${ENV}` references are already resolved.
pub async fn build_engine_from(cfg: config::Config) -> Result<Arc<Engine>, AppError> {
    let offline = config::validate(&cfg, &BTreeMap::new()).map_err(ConfigError::Invalid)?;
    let db = Database::connect(&offline.database)?;
    let catalog = db.catalog(&offline.all_column_tables).await?;
    let settings = config::validate(&cfg, &catalog).map_err(ConfigError::Invalid)?;
    let audit = Arc::new(AuditLog::open(&settings.audit).await?);
    let engine = Arc::new(Engine::new(Arc::new(settings), db, audit));
    engine.startup_checks().await?;
    Ok(engine)
}

/// `pgward serve`: Streamable HTTP when `[http]` is configured, otherwise stdio until the
/// client leaves. Either way until a signal arrives.
pub async fn serve(path: &Path) -> Result<(), AppError> {
    let engine = build_engine(path).await?;
    let admin = start_admin(&engine).await?;
    let result = serve_engine(engine, path).await;
    if let Some(task) = admin {
        task.abort();
    }
    result
}

/// `/readyz`: the database answers and the audit log can be written.
struct Ready(Arc<Engine>);

impl crate::admin::Readiness for Ready {
    fn checks(&self) -> Vec<(&'static str, crate::admin::CheckFuture<'_>)> {
        use crate::admin::CheckStatus;
        vec![
            (
                "database",
                Box::pin(async move {
                    if self.0.database_ready().await {
                        CheckStatus::Ok
                    } else {
                        CheckStatus::Failed("unreachable")
                    }
                }),
            ),
            (
                "audit",
                Box::pin(async move {
                    if self.0.audit().writable().await {
                        CheckStatus::Ok
                    } else {
                        CheckStatus::Failed("unwritable")
                    }
                }),
            ),
        ]
    }
}

/// Binds the admin listener when `[admin]` is configured (a bad address stops start-up) and
/// serves it in the background.
async fn start_admin(
    engine: &Arc<Engine>,
) -> Result<Option<tokio::task::JoinHandle<()>>, AppError> {
    let Some(cfg) = engine.settings().admin.clone() else {
        return Ok(None);
    };
    let listener = crate::admin::AdminListener::bind(&cfg)
        .await
        .map_err(|e| AppError::Admin(e.to_string()))?;
    tracing::info!(address = %listener.local_addr(), "admin listener (/metrics, /healthz, /readyz)");
    let metrics = Arc::clone(engine.metrics());
    let ready: Arc<dyn crate::admin::Readiness> = Arc::new(Ready(Arc::clone(engine)));
    Ok(Some(tokio::spawn(async move {
        if let Err(e) = listener
            .serve(metrics, ready, std::future::pending::<()>())
            .await
        {
            tracing::error!(error = %e, "admin listener failed");
        }
    })))
}

async fn serve_engine(engine: Arc<Engine>, path: &Path) -> Result<(), AppError> {
    let s = engine.settings();
    if let Some(http) = s.http.clone() {
        let auth = LiveAuth::new(build_credentials(&s.auth, &http.public_url).await?);
        tracing::info!(
            tables = s.policy.tables.len(),
            tools = s.tools.len(),
            issuers = auth.current().verify.issuers().len(),
            "pgward starting Streamable HTTP"
        );
        let reloads = tokio::spawn(reload_on_signal(
            path.to_path_buf(),
            Arc::clone(&engine),
            Some(Arc::clone(&auth)),
        ));
        let result = mcp::http::serve_http(engine, auth, http, shutdown_signal()).await;
        reloads.abort();
        return Ok(result?);
    }
    tracing::info!(
        tables = s.policy.tables.len(),
        tools = s.tools.len(),
        "pgward serving MCP over stdio"
    );
    let reloads = tokio::spawn(reload_on_signal(
        path.to_path_buf(),
        Arc::clone(&engine),
        None,
    ));
    let result = mcp::serve_stdio(engine, shutdown_signal()).await;
    reloads.abort();
    Ok(result?)
}

/// The authenticator (key files read) and the JWKS fetcher (every set fetched) of a config.
pub async fn build_credentials(auth: &AuthConfig, audience: &str) -> Result<Credentials, AppError> {
    let verify = Arc::new(build_authenticator(auth, audience)?);
    let jwks =
        Arc::new(JwksFetcher::new(auth, verify.jwks_handles()).map_err(ConfigError::Invalid)?);
    jwks.fetch_all().await.map_err(ConfigError::Invalid)?;
    Ok(Credentials { verify, jwks })
}

/// Reloads the config on SIGHUP, and when `server.watch_config` is set, whenever the file
/// changes (checked every [`WATCH_INTERVAL`]).
async fn reload_on_signal(
    path: std::path::PathBuf,
    engine: Arc<Engine>,
    auth: Option<Arc<LiveAuth>>,
) {
    #[cfg(unix)]
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reload by signal is off");
            None
        }
    };
    let mut stamp = modified(&path);
    let mut tick = tokio::time::interval(WATCH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        #[cfg(unix)]
        let hangup = async {
            match hup.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let hangup = std::future::pending::<()>();
        let trigger = tokio::select! {
            () = hangup => "signal",
            _ = tick.tick() => {
                let now = modified(&path);
                if !engine.settings().watch_config || now == stamp {
                    continue;
                }
                "file change"
            }
        };
        match reload(&path, &engine, auth.as_deref()).await {
            Ok(()) => {
                engine.metrics().reload(true);
                tracing::info!(trigger, "config reloaded; new calls use it");
            }
            Err(problems) => {
                engine.metrics().reload(false);
                tracing::error!(
                    trigger,
                    problems = %problems.join("; "),
                    "config reload failed; the running config stays"
                );
            }
        }
        stamp = modified(&path);
    }
}

/// How often `server.watch_config` looks at the file.
const WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Loads the config at `path` again and, when it is valid (against the database too: catalog,
/// posture, lookup tools) and changes nothing that needs a restart, makes it the config of
/// every call and request from now on. Otherwise nothing changes; every problem is returned.
pub async fn reload(
    path: &Path,
    engine: &Engine,
    auth: Option<&LiveAuth>,
) -> Result<(), Vec<String>> {
    let invalid = |e: ConfigError| match e {
        ConfigError::Invalid(problems) => problems,
        other => vec![other.to_string()],
    };
    let cfg = config::load(path).map_err(invalid)?;
    let offline = config::validate(&cfg, &BTreeMap::new())?;
    let catalog = engine
        .catalog(&offline.all_column_tables)
        .await
        .map_err(|e| vec![e.to_string()])?;
    let settings = config::validate(&cfg, &catalog)?;
    engine
        .check_against_database(&settings)
        .await
        .map_err(|e| vec![e.to_string()])?;
    // Built (and fetched) before anything is swapped, so a bad key file or an unreachable
    // JWKS URL leaves the running config in force.
    let credentials = match (auth, &settings.http) {
        (Some(_), Some(http)) => Some(
            build_credentials(&settings.auth, &http.public_url)
                .await
                .map_err(|e| match e {
                    AppError::Config(c) => invalid(c),
                    other => vec![other.to_string()],
                })?,
        ),
        _ => None,
    };
    engine.replace_settings(settings)?;
    if let (Some(live), Some(c)) = (auth, credentials) {
        live.replace(c);
    }
    Ok(())
}

/// EDGE: reads each issuer's key file, then builds the (pure) authenticator.
pub fn build_authenticator(auth: &AuthConfig, audience: &str) -> Result<Authenticator, AppError> {
    let mut problems = Vec::new();
    let mut keys = Vec::with_capacity(auth.issuers.len());
    for (i, issuer) in auth.issuers.iter().enumerate() {
        let public_key_pem = match &issuer.public_key_file {
            Some(file) => match std::fs::read(file) {
                Ok(b) => Some(b),
                Err(e) => {
                    problems.push(format!(
                        "auth.issuers[{i}].public_key_file: cannot read `{file}`: {}",
                        e.kind()
                    ));
                    None
                }
            },
            None => None,
        };
        keys.push(IssuerKeys {
            hs256_secret: issuer.hs256_secret.as_ref().map(|s| s.as_bytes().to_vec()),
            public_key_pem,
        });
    }
    if !problems.is_empty() {
        return Err(ConfigError::Invalid(problems).into());
    }
    Authenticator::new(auth, &keys, audience).map_err(|p| ConfigError::Invalid(p).into())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `pgward check`: the offline verdict. Secrets are not needed, so `${ENV}` references are
/// left unresolved.
pub fn check(path: &Path, sql_text: &str) -> Result<Result<String, Vec<String>>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.display().to_string(),
        reason: e.kind().to_string(),
    })?;
    let cfg = config::load::parse(&text)?;
    let settings = config::validate(&cfg, &BTreeMap::new()).map_err(ConfigError::Invalid)?;
    Ok(
        match sql::check(&settings.policy, sql_text, ParamMode::None) {
            Ok(c) => Ok(c.sql),
            Err(v) => Err(v.iter().map(|v| v.to_string()).collect()),
        },
    )
}

/// What `pgward audit verify` was asked to check.
#[derive(Debug, Clone)]
pub struct VerifyRequest {
    /// Oldest first.
    pub files: Vec<std::path::PathBuf>,
    /// Verify the PostgreSQL table at this URL instead of files.
    pub postgres_url: Option<String>,
    /// TLS to that database.
    pub postgres_tls: TlsSettings,
    /// The chain's HMAC key, if it is keyed.
    pub key: Option<Vec<u8>>,
    /// Check the end against this head file; `None` with `default_head` uses `<last>.head`.
    pub head: Option<std::path::PathBuf>,
    pub default_head: bool,
    pub from_anywhere: bool,
}

/// `pgward migrate`: applies the audit migration to the database at `url`.
pub async fn migrate_audit(url: &str, tls: &TlsSettings) -> Result<(), AppError> {
    crate::audit::postgres::migrate(url, tls)
        .await
        .map_err(|e| AppError::Audit(e.into()))
}

/// `pgward audit verify`: reads the files or the table (and the recorded head) and verifies
/// the chain.
pub async fn audit_verify(req: &VerifyRequest) -> Result<crate::audit::chain::Report, AppError> {
    use crate::audit::chain::{Head, Line, Start, lines_of, verify_lines};
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|e| {
            AppError::Audit(AuditError::File {
                path: path.display().to_string(),
                reason: e.kind().to_string(),
            })
        })
    };
    // The head first: pgward writes each line before its head, so files read afterwards reach
    // at least this head even while pgward keeps writing.
    let head_file = match (&req.head, req.default_head, req.files.last()) {
        (Some(h), _, _) => Some(h.clone()),
        (None, true, Some(last)) => {
            let h = crate::audit::sink::head_path(last);
            h.exists().then_some(h)
        }
        _ => None,
    };
    let head: Option<Head> = match head_file {
        Some(h) => {
            let bad = |reason: String| {
                AppError::Audit(AuditError::File {
                    path: h.display().to_string(),
                    reason,
                })
            };
            crate::audit::sink::read_head_file(&h, crate::audit::sink::HEAD_READ_ATTEMPTS)
                .map_err(|e| bad(e.kind().to_string()))?
                .map_err(|b| bad(b.reason().into()))?
        }
        None => None,
    };
    let mut contents = Vec::with_capacity(req.files.len().max(1));
    match &req.postgres_url {
        Some(url) => contents.push((
            "postgres".to_string(),
            crate::audit::postgres::read_lines(url, &req.postgres_tls)
                .await
                .map_err(|e| AppError::Audit(e.into()))?,
        )),
        None => {
            for f in &req.files {
                contents.push((f.display().to_string(), read(f)?));
            }
        }
    }
    let lines: Vec<Line<'_>> = contents
        .iter()
        .flat_map(|(name, text)| lines_of(name, text))
        .collect();
    let start = if req.from_anywhere {
        Start::Anywhere
    } else {
        Start::Genesis
    };
    Ok(verify_lines(
        lines,
        req.key.as_deref(),
        &start,
        head.as_ref(),
    ))
}

/// `pgward health`: `GET url` must answer 200 within 3 seconds. Plain HTTP only: the admin
/// listener is on loopback.
pub async fn probe(url: &str) -> Result<(), String> {
    if !url.starts_with("http://") {
        return Err(format!(
            "`{url}` must be an http:// URL of the admin listener"
        ));
    }
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .https_only(false)
        .tls_backend_preconfigured(
            tokio_rustls::rustls::ClientConfig::builder_with_provider(Arc::new(
                tokio_rustls::rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(tokio_rustls::rustls::RootCertStore::empty())
            .with_no_client_auth(),
        )
        .build()
        .map_err(|e| e.to_string())?;
    let status = client
        .get(url)
        .send()
        .await
        .map_err(|e| {
            format!(
                "`{url}`: {}",
                if e.is_timeout() {
                    "timed out"
                } else {
                    "unreachable"
                }
            )
        })?
        .status();
    if status == reqwest::StatusCode::OK {
        Ok(())
    } else {
        Err(format!("`{url}` answered {status}"))
    }
}
