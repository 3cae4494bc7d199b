//! EDGE: the admin listener, a second HTTP listener apart from MCP, for the operator's
//! monitoring: `GET /metrics` (Prometheus text, see [`crate::metrics`]), `GET /healthz` (the
//! process is up) and `GET /readyz` (the checks the composition root supplies through
//! [`Readiness`] pass). Only `GET` and `HEAD`; every other path is 404.
//!
//! It has no authentication, so it listens on loopback unless the operator sets
//! `admin.allow_network = true`; and nothing it serves carries a secret: metric labels are
//! bounded codes, and readiness names each check with a fixed word (`ok`, `timeout`, or the
//! check's own static failure word), never an error message or a connection string.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::metrics::{self, Metrics};

/// Default `admin.listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9090";

/// How long one readiness check may take before it counts as failed (`timeout`), so a hung
/// database cannot hang the probe.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a client has to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Open connections at once; past it new ones are closed (a scraper needs one or two).
const MAX_CONNECTIONS: usize = 32;
/// How long requests in flight get to finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed accept, so a persistent failure (out of descriptors) does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The `[admin]` config section. Every key is optional.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct AdminConfig {
    /// Address and port to listen on (an IP address, not a host name). Default
    /// `127.0.0.1:9090`.
    pub listen: String,
    /// Allow a non-loopback `listen`. The admin endpoints have no authentication, so exposing
    /// them is an explicit choice. Default `false`.
    pub allow_network: bool,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_string(),
            allow_network: false,
        }
    }
}

impl AdminConfig {
    /// Every problem with this section, each naming its key; empty when it is usable.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match self.listen.parse::<SocketAddr>() {
            Err(_) => problems.push(format!(
                "admin.listen: `{}` is not an IP address and port, such as `{DEFAULT_LISTEN}`",
                self.listen
            )),
            Ok(addr) if !addr.ip().is_loopback() && !self.allow_network => {
                problems.push(format!(
                    "admin.listen: `{addr}` is not a loopback address; the admin endpoints \
                     have no authentication, so set admin.allow_network = true to serve them \
                     beyond this host"
                ));
            }
            Ok(_) => {}
        }
        problems
    }
}

/// Errors of the admin listener.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("invalid admin config: {}", .0.join("; "))]
    Config(Vec<String>),
    #[error("admin.listen: cannot listen on {addr}: {reason}")]
    Bind {
        addr: SocketAddr,
        reason: std::io::Error,
    },
}

/// The result of one readiness check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStatus {
    Ok,
    /// Failed, described by one short static snake_case word (such as `unreachable` or
    /// `unwritable`). Static, so no error text or connection string can reach the body; a
    /// word that is not snake_case is shown as `failed`.
    Failed(&'static str),
}

/// One readiness check in progress.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = CheckStatus> + Send + 'a>>;

/// What `/readyz` asks; the composition root implements it (database reachable, audit sink
/// writable, ...). The checks of one probe run concurrently, each bounded by
/// [`CHECK_TIMEOUT`].
pub trait Readiness: Send + Sync {
    /// The checks to run for one probe, each named by a short, unique, static key that becomes
    /// a key of the JSON body.
    fn checks(&self) -> Vec<(&'static str, CheckFuture<'_>)>;
}

/// What the handlers share.
struct AdminState {
    metrics: Arc<Metrics>,
    readiness: Arc<dyn Readiness>,
    check_timeout: Duration,
}

/// The admin listener, bound but not yet serving: binding first lets the caller report a bad
/// address before anything starts, and learn the port when it asked for port 0.
#[derive(Debug)]
pub struct AdminListener {
    listener: tokio::net::TcpListener,
    local: SocketAddr,
    check_timeout: Duration,
}

impl AdminListener {
    /// Validates `cfg` (refusing to start on any problem) and binds its address.
    pub async fn bind(cfg: &AdminConfig) -> Result<Self, AdminError> {
        let problems = cfg.validate();
        if !problems.is_empty() {
            return Err(AdminError::Config(problems));
        }
        let addr: SocketAddr = cfg.listen.parse().map_err(|_| {
            AdminError::Config(vec![format!(
                "admin.listen: `{}` is not an IP address and port",
                cfg.listen
            )])
        })?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|reason| AdminError::Bind { addr, reason })?;
        let local = listener
            .local_addr()
            .map_err(|reason| AdminError::Bind { addr, reason })?;
        Ok(Self {
            listener,
            local,
            check_timeout: CHECK_TIMEOUT,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Serves until `shutdown` resolves, then lets requests in flight finish (bounded).
    pub async fn serve(
        self,
        metrics: Arc<Metrics>,
        readiness: Arc<dyn Readiness>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AdminError> {
        let app = router(AdminState {
            metrics,
            readiness,
            check_timeout: self.check_timeout,
        });
        tracing::info!(address = %self.local, "pgward serving admin endpoints");
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        // HTTP/1.1 only: the HTTP/2 server is not built in (TLS offers only `http/1.1` by ALPN).
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT);
        tokio::pin!(shutdown);
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "admin accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            // Past the cap a connection is closed at once, never queued.
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                tracing::warn!(client = %peer, "admin connection refused: too many open");
                drop(tcp);
                continue;
            };
            let service = hyper_util::service::TowerToHyperService::new(app.clone());
            let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
            let watched = graceful.watch(connection);
            tokio::spawn(async move {
                let _slot = slot;
                if let Err(e) = watched.await {
                    tracing::debug!(client = %peer, error = %e, "admin connection ended with an error");
                }
            });
        }
        drop(self.listener);
        if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("admin requests still in flight after the drain timeout; closing");
        }
        Ok(())
    }
}

/// Validates `cfg`, binds it and serves the admin endpoints until `shutdown` resolves.
pub async fn serve_admin(
    cfg: AdminConfig,
    metrics: Arc<Metrics>,
    readiness: Arc<dyn Readiness>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AdminError> {
    AdminListener::bind(&cfg)
        .await?
        .serve(metrics, readiness, shutdown)
        .await
}

fn router(state: AdminState) -> Router {
    // `get` answers HEAD too (without a body); other methods on these paths get 405.
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .with_state(Arc::new(state))
}

/// A response that no cache keeps (health answers go stale at once) and no browser sniffs.
fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Body>) -> Response {
    let mut response = (status, body.into()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";

async fn metrics_handler(State(state): State<Arc<AdminState>>) -> Response {
    match state.metrics.render() {
        Ok(text) => respond(StatusCode::OK, metrics::CONTENT_TYPE, text),
        Err(e) => {
            tracing::warn!(error = %e, "metrics scrape failed");
            respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                TEXT,
                "metrics unavailable",
            )
        }
    }
}

async fn healthz() -> Response {
    respond(StatusCode::OK, TEXT, "ok")
}

/// A failure word fit for the body: snake_case and short, else `failed`.
fn failure_word(word: &'static str) -> &'static str {
    let ok = !word.is_empty()
        && word.len() <= 32
        && word.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    if ok { word } else { "failed" }
}

async fn readyz(State(state): State<Arc<AdminState>>) -> Response {
    let limit = state.check_timeout;
    let checks = state.readiness.checks();
    let results =
        futures_util::future::join_all(checks.into_iter().map(|(name, check)| async move {
            let status = match tokio::time::timeout(limit, check).await {
                Ok(CheckStatus::Ok) => "ok",
                Ok(CheckStatus::Failed(word)) => failure_word(word),
                Err(_) => "timeout",
            };
            (name, status)
        }))
        .await;
    let ready = results.iter().all(|(_, status)| *status == "ok");
    let body: Map<String, Value> = results
        .into_iter()
        .map(|(name, status)| (name.to_string(), Value::from(status)))
        .collect();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    respond(status, JSON, Value::Object(body).to_string())
}

async fn not_found() -> Response {
    respond(StatusCode::NOT_FOUND, TEXT, "not found")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Outcome;
    use crate::metrics::tests::parse;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;

    #[derive(Clone, Copy)]
    enum Behaviour {
        Pass,
        Fail(&'static str),
        Hang,
    }

    struct FakeReadiness(Vec<(&'static str, Behaviour)>);

    impl Readiness for FakeReadiness {
        fn checks(&self) -> Vec<(&'static str, CheckFuture<'_>)> {
            self.0
                .iter()
                .map(|&(name, behaviour)| {
                    let check: CheckFuture<'_> = match behaviour {
                        Behaviour::Pass => Box::pin(async { CheckStatus::Ok }),
                        Behaviour::Fail(word) => Box::pin(async move { CheckStatus::Failed(word) }),
                        Behaviour::Hang => Box::pin(std::future::pending()),
                    };
                    (name, check)
                })
                .collect()
        }
    }

    struct Server {
        addr: SocketAddr,
        metrics: Arc<Metrics>,
        stop: oneshot::Sender<()>,
        task: JoinHandle<Result<(), AdminError>>,
    }

    impl Server {
        async fn stop(self) {
            self.stop.send(()).unwrap();
            tokio::time::timeout(Duration::from_secs(10), self.task)
                .await
                .expect("admin listener stops on shutdown")
                .unwrap()
                .unwrap();
        }
    }

    async fn start_with(checks: Vec<(&'static str, Behaviour)>, check_timeout: Duration) -> Server {
        let cfg = AdminConfig {
            listen: "127.0.0.1:0".into(),
            allow_network: false,
        };
        let mut listener = AdminListener::bind(&cfg).await.unwrap();
        listener.check_timeout = check_timeout;
        let addr = listener.local_addr();
        let metrics = Arc::new(Metrics::new(&["query".to_string()]));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(listener.serve(
            Arc::clone(&metrics),
            Arc::new(FakeReadiness(checks)),
            async move {
                let _ = stopped.await;
            },
        ));
        Server {
            addr,
            metrics,
            stop,
            task,
        }
    }

    async fn start(checks: Vec<(&'static str, Behaviour)>) -> Server {
        start_with(checks, CHECK_TIMEOUT).await
    }

    struct Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        }
    }

    /// One raw HTTP/1.1 request on a fresh connection.
    async fn send(addr: SocketAddr, method: &str, path: &str) -> Reply {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        );
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut raw))
            .await
            .expect("reply in time")
            .unwrap();
        let raw = String::from_utf8(raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").expect("a full response head");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let status = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line `{status_line}`"));
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (k, v) = l.split_once(':').unwrap();
                (k.trim().to_ascii_lowercase(), v.trim().to_string())
            })
            .collect();
        let reply = Reply {
            status,
            headers,
            body: body.to_string(),
        };
        assert!(
            reply.header("transfer-encoding").is_none(),
            "bodies have a known length"
        );
        if method != "HEAD" {
            let length: usize = reply.header("content-length").unwrap().parse().unwrap();
            assert_eq!(length, reply.body.len());
        }
        reply
    }

    #[tokio::test]
    async fn healthz_answers_ok() {
        let server = start(vec![("database", Behaviour::Fail("unreachable"))]).await;
        // Health is the process alone: a failing readiness check does not touch it.
        let reply = send(server.addr, "GET", "/healthz").await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, "ok");
        assert_eq!(reply.header("cache-control"), Some("no-store"));
        let head = send(server.addr, "HEAD", "/healthz").await;
        assert_eq!(head.status, 200);
        assert_eq!(head.body, "");
        server.stop().await;
    }

    #[tokio::test]
    async fn readyz_is_200_when_every_check_passes() {
        let server = start(vec![
            ("database", Behaviour::Pass),
            ("audit", Behaviour::Pass),
        ])
        .await;
        let reply = send(server.addr, "GET", "/readyz").await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let body: Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(body, serde_json::json!({"database": "ok", "audit": "ok"}));
        server.stop().await;
    }

    #[tokio::test]
    async fn readyz_is_503_and_names_the_failing_check() {
        let server = start(vec![
            ("database", Behaviour::Pass),
            ("audit", Behaviour::Fail("unwritable")),
            // A word that could carry detail is replaced.
            (
                "cache",
                Behaviour::Fail("connect to postgres://u:pw@db failed"),
            ),
        ])
        .await;
        let reply = send(server.addr, "GET", "/readyz").await;
        assert_eq!(reply.status, 503);
        let body: Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"database": "ok", "audit": "unwritable", "cache": "failed"})
        );
        assert!(!reply.body.contains("postgres"));
        server.stop().await;
    }

    #[tokio::test]
    async fn readyz_bounds_a_hung_check_by_the_timeout() {
        let server = start_with(
            vec![("database", Behaviour::Hang), ("audit", Behaviour::Pass)],
            Duration::from_millis(200),
        )
        .await;
        let started = std::time::Instant::now();
        let reply = send(server.addr, "GET", "/readyz").await;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(reply.status, 503);
        let body: Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"database": "timeout", "audit": "ok"})
        );
        server.stop().await;
    }

    #[tokio::test]
    async fn metrics_is_prometheus_text_with_the_recorded_calls() {
        let server = start(vec![]).await;
        server.metrics.call(
            "query",
            Outcome::Success,
            &[],
            Duration::from_millis(5),
            3,
            120,
        );
        let reply = send(server.addr, "GET", "/metrics").await;
        assert_eq!(reply.status, 200);
        let content_type = reply.header("content-type").unwrap();
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{content_type}"
        );
        let exposition = parse(&reply.body).unwrap();
        assert_eq!(
            exposition.value(
                "pgward_tool_calls_total",
                &[("tool", "query"), ("outcome", "success")]
            ),
            Some(1.0)
        );
        assert_eq!(
            exposition.value("pgward_rows_returned_total", &[("tool", "query")]),
            Some(3.0)
        );
        server.stop().await;
    }

    #[tokio::test]
    async fn other_paths_are_404_and_other_methods_are_refused() {
        let server = start(vec![]).await;
        for path in ["/", "/metrics/", "/health", "/admin", "/readyz/x", "/mcp"] {
            let reply = send(server.addr, "GET", path).await;
            assert_eq!(reply.status, 404, "{path}");
        }
        for (method, path) in [
            ("POST", "/metrics"),
            ("PUT", "/healthz"),
            ("DELETE", "/readyz"),
            ("POST", "/other"),
        ] {
            let reply = send(server.addr, method, path).await;
            assert!(
                reply.status == 405 || reply.status == 404,
                "{method} {path}: {}",
                reply.status
            );
        }
        assert_eq!(send(server.addr, "POST", "/metrics").await.status, 405);
        server.stop().await;
    }

    #[tokio::test]
    async fn serve_admin_refuses_a_non_loopback_address() {
        let cfg = AdminConfig {
            listen: "0.0.0.0:0".into(),
            allow_network: false,
        };
        let result = serve_admin(
            cfg,
            Arc::new(Metrics::new(&[])),
            Arc::new(FakeReadiness(vec![])),
            std::future::pending(),
        )
        .await;
        match result {
            Err(AdminError::Config(problems)) => {
                assert!(problems[0].starts_with("admin.listen:"), "{problems:?}");
            }
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn validate_refuses_a_non_loopback_listen_without_allow_network() {
        for listen in ["0.0.0.0:9090", "[::]:9090", "192.0.2.10:9090"] {
            let cfg = AdminConfig {
                listen: listen.into(),
                allow_network: false,
            };
            let problems = cfg.validate();
            assert_eq!(problems.len(), 1, "{listen}");
            assert!(problems[0].starts_with("admin.listen:"), "{problems:?}");
            assert!(problems[0].contains("admin.allow_network"), "{problems:?}");
            let allowed = AdminConfig {
                allow_network: true,
                ..cfg
            };
            assert!(allowed.validate().is_empty(), "{listen}");
        }
    }

    #[test]
    fn validate_accepts_loopback_and_refuses_what_is_not_an_address() {
        assert!(AdminConfig::default().validate().is_empty());
        for listen in ["127.0.0.1:9191", "[::1]:9090"] {
            let cfg = AdminConfig {
                listen: listen.into(),
                allow_network: false,
            };
            assert!(cfg.validate().is_empty(), "{listen}");
        }
        for listen in ["localhost:9090", "127.0.0.1", "", "9090"] {
            let cfg = AdminConfig {
                listen: listen.into(),
                allow_network: true,
            };
            let problems = cfg.validate();
            assert_eq!(problems.len(), 1, "{listen}");
            assert!(problems[0].starts_with("admin.listen:"), "{problems:?}");
        }
    }

    #[test]
    fn an_empty_section_takes_the_documented_defaults() {
        let cfg: AdminConfig = toml::from_str("").unwrap();
        assert_eq!(cfg, AdminConfig::default());
        assert_eq!(cfg.listen, "127.0.0.1:9090");
        assert!(!cfg.allow_network);
        let cfg: AdminConfig = toml::from_str("listen = \"127.0.0.1:9999\"").unwrap();
        assert_eq!(cfg.listen, "127.0.0.1:9999");
    }
}
