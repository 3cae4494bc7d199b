//! Composition root: builds the pool, the engine and the transport from a config.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::audit::sink::{AuditError, AuditLog};
use crate::auth::config::AuthConfig;
use crate::auth::jwks::JwksFetcher;
use crate::auth::{Authenticator, IssuerKeys};
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
    let result = serve_engine(engine).await;
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

async fn serve_engine(engine: Arc<Engine>) -> Result<(), AppError> {
    let s = engine.settings();
    if let Some(http) = s.http.clone() {
        let auth = Arc::new(build_authenticator(&s.auth, &http.public_url)?);
        let jwks =
            Arc::new(JwksFetcher::new(&s.auth, auth.jwks_handles()).map_err(ConfigError::Invalid)?);
        jwks.fetch_all().await.map_err(ConfigError::Invalid)?;
        tracing::info!(
            tables = s.policy.tables.len(),
            tools = s.tools.len(),
            issuers = auth.issuers().len(),
            "pgward starting Streamable HTTP"
        );
        mcp::http::serve_http(engine, auth, jwks, http, shutdown_signal()).await?;
        return Ok(());
    }
    tracing::info!(
        tables = s.policy.tables.len(),
        tools = s.tools.len(),
        "pgward serving MCP over stdio"
    );
    mcp::serve_stdio(engine, shutdown_signal()).await?;
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
    /// The chain's HMAC key, if it is keyed.
    pub key: Option<Vec<u8>>,
    /// Check the end against this head file; `None` with `default_head` uses `<last>.head`.
    pub head: Option<std::path::PathBuf>,
    pub default_head: bool,
    pub from_anywhere: bool,
}

/// `pgward audit verify`: reads the files (and the recorded head) and verifies the chain.
pub fn audit_verify(req: &VerifyRequest) -> Result<crate::audit::chain::Report, AppError> {
    use crate::audit::chain::{Head, Line, Start, lines_of, verify_lines};
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|e| {
            AppError::Audit(AuditError::File {
                path: path.display().to_string(),
                reason: e.kind().to_string(),
            })
        })
    };
    let mut contents = Vec::with_capacity(req.files.len());
    for f in &req.files {
        contents.push((f.display().to_string(), read(f)?));
    }
    let head_file = match (&req.head, req.default_head, req.files.last()) {
        (Some(h), _, _) => Some(h.clone()),
        (None, true, Some(last)) => {
            let h = crate::audit::sink::head_path(last);
            h.exists().then_some(h)
        }
        _ => None,
    };
    let head: Option<Head> = match head_file {
        Some(h) => Some(serde_json::from_str(&read(&h)?).map_err(|_| {
            AppError::Audit(AuditError::File {
                path: h.display().to_string(),
                reason: "not a recorded head".into(),
            })
        })?),
        None => None,
    };
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
