//! EDGE: MCP over Streamable HTTP. Every request passes one gate before rmcp sees it:
//!
//! Host and Origin validation → authentication (JWT bearer or API key; 401 with
//! `WWW-Authenticate` naming the protected resource metadata) → failed-authentication throttle
//! per client address → rate limits per principal and global (429 with `Retry-After`) →
//! per-tool scope check for `tools/call` (403 `insufficient_scope` naming every missing scope).
//! The principal rides on the request's extensions into the handler. Sessions are never
//! issued (stateless serving), so a session can never stand in for authentication.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{Value, json};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use super::{McpServeError, PgwardServer};
use ipnet::IpNet;

use crate::auth::live::LiveAuth;
use crate::auth::mtls::{self, PeerCertificate};
use crate::auth::{AuthFailure, Principal};
use crate::config::types::{HttpConfig, TlsConfig};
use crate::engine::{CallContext, Engine, RefusedRequest, request_id};

/// Everything the gate needs, shared by all requests.
struct Gate {
    engine: Arc<Engine>,
    /// The credentials in force (a config reload swaps them).
    auth: Arc<LiveAuth>,
    cfg: HttpConfig,
    /// URL of this resource's RFC 9728 metadata.
    metadata_url: String,
    per_principal: DefaultKeyedRateLimiter<String>,
    global: DefaultDirectRateLimiter,
    failed_auth: FailedAuth,
    trusted_proxies: Vec<IpNet>,
    in_flight: Mutex<HashMap<String, u32>>,
}

/// Failed authentications per client address in a fixed one-minute window. An address over the
/// limit is refused before its credential is even verified (so a throttled address learns
/// nothing, not even that a guess was right), and stale entries are dropped so a flood of
/// distinct addresses cannot grow the map without bound.
struct FailedAuth {
    limit: u32,
    window: Duration,
    seen: Mutex<HashMap<IpAddr, (u32, std::time::Instant)>>,
}

/// Addresses tracked before stale ones are swept.
const FAILED_AUTH_SWEEP_AT: usize = 10_000;

impl FailedAuth {
    fn new(limit: u32) -> Self {
        Self {
            limit,
            window: Duration::from_secs(60),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// How long `client` must wait, if it is over the limit now.
    fn blocked(&self, client: IpAddr) -> Option<Duration> {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let (count, start) = seen.get(&client)?;
        let elapsed = start.elapsed();
        (*count >= self.limit && elapsed < self.window).then(|| self.window - elapsed)
    }

    fn record(&self, client: IpAddr) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.len() >= FAILED_AUTH_SWEEP_AT {
            let window = self.window;
            seen.retain(|_, (_, start)| start.elapsed() < window);
        }
        let now = std::time::Instant::now();
        let entry = seen.entry(client).or_insert((0, now));
        if entry.1.elapsed() >= self.window {
            *entry = (0, now);
        }
        entry.0 = entry.0.saturating_add(1);
    }
}

/// One call in flight for a principal; the slot is released when dropped.
struct InFlight<'g> {
    gate: &'g Gate,
    subject: String,
}

impl Gate {
    fn enter(&self, subject: &str) -> Option<InFlight<'_>> {
        let mut map = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let n = map.entry(subject.to_string()).or_insert(0);
        if *n >= self.cfg.max_in_flight_per_principal {
            return None;
        }
        *n += 1;
        Some(InFlight {
            gate: self,
            subject: subject.to_string(),
        })
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut map = self
            .gate
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.subject) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.subject);
            }
        }
    }
}

/// The client's address: the connection's, unless it comes from a trusted proxy, in which case
/// the rightmost `X-Forwarded-For` entry that is not itself a trusted proxy.
/// Parses one `http.trusted_proxies` entry: an address or a network in CIDR notation.
pub fn parse_proxy(entry: &str) -> Option<IpNet> {
    entry
        .parse::<IpNet>()
        .ok()
        .or_else(|| entry.parse::<IpAddr>().ok().map(IpNet::from))
}

fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let trusted_hop = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !trusted_hop(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if trusted_hop(&ip) => continue,
            Ok(ip) => return ip,
            // A hop that is not an address cannot be trusted to name the client.
            Err(_) => return peer,
        }
    }
    peer
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

/// Serves until `shutdown` resolves; calls in flight finish first. With `http.tls`, serves
/// HTTPS (rustls) and sets HSTS on every response.
pub async fn serve_http(
    engine: Arc<Engine>,
    auth: Arc<LiveAuth>,
    cfg: HttpConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), McpServeError> {
    let addr: SocketAddr = cfg
        .listen
        .parse()
        .map_err(|_| McpServeError::Start(format!("invalid listen address `{}`", cfg.listen)))?;
    let tls = match &cfg.tls {
        Some(t) => Some(tls_acceptor(t)?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| McpServeError::Start(format!("cannot listen on {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| McpServeError::Start(e.to_string()))?;
    tracing::info!(
        address = %local,
        path = %cfg.path,
        tls = tls.is_some(),
        "pgward serving MCP over Streamable HTTP"
    );
    let max_connections = cfg.max_connections;
    let app = router(Arc::clone(&engine), Arc::clone(&auth), cfg);
    let result = serve_connections(listener, tls, app, max_connections, shutdown).await;
    auth.stop();
    // Calls whose HTTP request timed out may still be finishing (and auditing): give them the
    // drain time too, so every call's audit event is written before the process exits.
    engine.wait_idle(DRAIN_TIMEOUT).await;
    result
}

/// How long a client has to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client has to send a request's headers (slow-header clients are cut off).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long calls in flight get to finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// EDGE: reads the certificate chain and key.
fn tls_acceptor(tls: &TlsConfig) -> Result<TlsAcceptor, McpServeError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert_file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            McpServeError::Start(format!("http.tls.cert_file `{}`: {e}", tls.cert_file))
        })?;
    if certs.is_empty() {
        return Err(McpServeError::Start(format!(
            "http.tls.cert_file `{}`: no certificate found",
            tls.cert_file
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key_file).map_err(|_| {
        McpServeError::Start(format!(
            "http.tls.key_file `{}`: no usable private key",
            tls.key_file
        ))
    })?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let clients =
        mtls::client_verifier(tls, Arc::clone(&provider)).map_err(McpServeError::Start)?;
    let builder = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| McpServeError::Start(format!("tls: {e}")))?;
    let builder = match clients {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        McpServeError::Start(format!("http.tls: the certificate and key do not fit: {e}"))
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts connections (with TLS when an acceptor is given: each handshake in its own task, so
/// a slow client cannot hold up the others, and bounded in time), serves HTTP/1.1 on them with
/// a header read timeout until `shutdown`, then lets calls in flight finish within the drain
/// timeout.
async fn serve_connections(
    listener: tokio::net::TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    max_connections: u32,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), McpServeError> {
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections as usize));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    // HTTP/1.1 only: the HTTP/2 server is not built in (TLS offers only `http/1.1` by ALPN).
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Past the connection cap, a new connection is closed at once (never queued).
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!(client = %peer, "connection refused: too many open connections");
            drop(tcp);
            continue;
        };
        let app = app.clone().layer(axum::Extension(ConnectInfo(peer)));
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let outcome = match tls {
                None => {
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let connection =
                        builder.serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
                    watcher.watch(connection).await
                }
                Some(acceptor) => {
                    let stream =
                        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
                            .await
                        {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(client = %peer, error = %e, "tls handshake failed");
                                return;
                            }
                            Err(_) => return,
                        };
                    // The chain was verified in the handshake; requests learn whose it is.
                    let peer_cert = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .map(|leaf| PeerCertificate::from_der(leaf.as_ref()));
                    let service = hyper_util::service::TowerToHyperService::new(
                        app.layer(axum::Extension(peer_cert)),
                    );
                    let connection =
                        builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                    watcher.watch(connection).await
                }
            };
            if let Err(e) = outcome {
                tracing::debug!(client = %peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("calls still in flight after the drain timeout; closing");
    }
    Ok(())
}

/// The routes: the MCP endpoint behind the gate, and the protected resource metadata.
pub fn router(engine: Arc<Engine>, auth: Arc<LiveAuth>, cfg: HttpConfig) -> Router {
    let metadata_path = format!("/.well-known/oauth-protected-resource{}", cfg.path);
    let gate_tls = cfg.tls.is_some();
    let origin = url_origin(&cfg.public_url);
    let gate = Arc::new(Gate {
        metadata_url: format!("{origin}{metadata_path}"),
        per_principal: RateLimiter::keyed(
            Quota::per_second(nonzero(cfg.rate_per_principal))
                .allow_burst(nonzero(cfg.burst_per_principal)),
        ),
        global: RateLimiter::direct(
            Quota::per_second(nonzero(cfg.rate_global)).allow_burst(nonzero(cfg.burst_global)),
        ),
        failed_auth: FailedAuth::new(cfg.failed_auth_per_minute),
        trusted_proxies: cfg
            .trusted_proxies
            .iter()
            .filter_map(|p| parse_proxy(p))
            .collect(),
        in_flight: Mutex::new(HashMap::new()),
        engine: Arc::clone(&engine),
        auth,
        cfg: cfg.clone(),
    });
    let mcp_engine = Arc::clone(&engine);
    let service = StreamableHttpService::new(
        move || Ok(PgwardServer::per_request(Arc::clone(&mcp_engine))),
        Arc::new(NeverSessionManager::default()),
        StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .with_allowed_hosts(cfg.allowed_hosts.clone())
            .with_allowed_origins(cfg.allowed_origins.clone())
            .with_max_request_body_bytes(cfg.max_body_bytes),
    );
    // Built per request: a config reload may change the scopes.
    let meta_handler = {
        let engine = Arc::clone(&engine);
        let cfg = cfg.clone();
        move || {
            let body = protected_resource_metadata(&engine, &cfg);
            async move { (secure_headers(), axum::Json(body)) }
        }
    };
    let mcp = Router::new()
        .route_service(&cfg.path, service)
        .layer(middleware::from_fn_with_state(Arc::clone(&gate), gated));
    let wellknown = Router::new()
        .route(
            "/.well-known/oauth-protected-resource",
            axum::routing::get(meta_handler.clone()),
        )
        .route(&metadata_path, axum::routing::get(meta_handler))
        .layer(middleware::from_fn_with_state(gate, host_and_origin_only));
    let app = mcp.merge(wellknown);
    if gate_tls {
        app.layer(middleware::map_response(add_hsts))
    } else {
        app
    }
}

/// HSTS on every response served over TLS.
async fn add_hsts(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=63072000; includeSubDomains"),
    );
    response
}

/// RFC 9728 protected resource metadata.
fn protected_resource_metadata(engine: &Engine, cfg: &HttpConfig) -> Value {
    let scopes: Vec<String> = engine.settings().scopes.all_scopes().into_iter().collect();
    json!({
        "resource": cfg.public_url,
        "authorization_servers": cfg.authorization_servers,
        "scopes_supported": scopes,
        "bearer_methods_supported": ["header"],
        "resource_name": engine.settings().server_name,
    })
}

/// `scheme://host[:port]` of a URL.
fn url_origin(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split('/').next().unwrap_or("");
            format!("{scheme}://{authority}")
        }
        None => url.to_string(),
    }
}

fn secure_headers() -> [(header::HeaderName, HeaderValue); 3] {
    [
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-store"),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::VARY, HeaderValue::from_static("Authorization")),
    ]
}

/// A generic JSON-RPC error body: the reason goes to the audit log, not to the client.
fn error_response(
    status: StatusCode,
    message: &str,
    extra: Vec<(header::HeaderName, String)>,
) -> Response {
    let body = json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32001, "message": message}});
    let mut response = (status, secure_headers(), axum::Json(body)).into_response();
    for (name, value) in extra {
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, v);
        }
    }
    response
}

fn retry_after(wait: Duration) -> (header::HeaderName, String) {
    (header::RETRY_AFTER, wait.as_secs().max(1).to_string())
}

impl Gate {
    fn challenge(&self, failure: Option<AuthFailure>) -> Response {
        // The scope a client needs to get started (the `query` tool's, under the config in
        // force now).
        let base_scope = self
            .engine
            .settings()
            .scopes
            .tools
            .get("query")
            .cloned()
            .unwrap_or_else(|| "db:read".into());
        let mut value = format!(
            "Bearer resource_metadata=\"{}\", scope=\"{}\"",
            self.metadata_url, base_scope
        );
        if failure.is_some_and(|f| f != AuthFailure::Missing) {
            value.push_str(", error=\"invalid_token\"");
        }
        // Only the time-based failures are described: the client can act on them (get a fresh
        // token, fix its clock) and they reveal nothing about the server's keys or issuers.
        match failure {
            Some(AuthFailure::Expired) => {
                value.push_str(", error_description=\"the token has expired\"");
            }
            Some(AuthFailure::NotYetValid) => {
                value.push_str(", error_description=\"the token is not valid yet\"");
            }
            _ => {}
        }
        error_response(
            StatusCode::UNAUTHORIZED,
            "authentication required",
            vec![(header::WWW_AUTHENTICATE, value)],
        )
    }

    /// Host must be an allowed name; Origin, when present, an allowed origin (DNS rebinding).
    fn host_or_origin_refusal(&self, headers: &HeaderMap) -> Option<Response> {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        // Exactly one Host header, well formed, naming an allowed host.
        let single = headers.get_all(header::HOST).iter().count() == 1;
        let host_ok = single
            && host_without_port(host).is_some_and(|host_name| {
                self.cfg
                    .allowed_hosts
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(host) || a.eq_ignore_ascii_case(host_name))
            });
        if !host_ok {
            tracing::warn!(target: "pgward::audit", reason = "host_not_allowed", "request refused");
            return Some(error_response(StatusCode::FORBIDDEN, "forbidden", vec![]));
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("");
            if !self.cfg.allowed_origins.iter().any(|a| a == origin) {
                tracing::warn!(target: "pgward::audit", reason = "origin_not_allowed", "request refused");
                return Some(error_response(StatusCode::FORBIDDEN, "forbidden", vec![]));
            }
        }
        None
    }
}

/// The host of a `Host` header value, or None when the value is not `name`, `name:port`,
/// `[v6]` or `[v6]:port` with a numeric port (anything looser is refused, not guessed at).
fn host_without_port(host: &str) -> Option<&str> {
    let port_ok = |p: &str| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit());
    if host.starts_with('[') {
        let end = host.find(']')?;
        let rest = &host[end + 1..];
        return match rest.strip_prefix(':') {
            None if rest.is_empty() => Some(&host[..=end]),
            Some(p) if port_ok(p) => Some(&host[..=end]),
            _ => None,
        };
    }
    match host.split_once(':') {
        None => Some(host),
        Some((h, p)) if port_ok(p) && !h.is_empty() => Some(h),
        Some(_) => None,
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn host_and_origin_only(
    State(gate): State<Arc<Gate>>,
    request: Request,
    next: Next,
) -> Response {
    match gate.host_or_origin_refusal(request.headers()) {
        None => next.run(request).await,
        Some(r) => r,
    }
}

/// The gate in front of the MCP endpoint.
async fn gated(
    State(gate): State<Arc<Gate>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let timeout = Duration::from_millis(gate.cfg.request_timeout_ms);
    match tokio::time::timeout(timeout, admit(&gate, peer, request, next)).await {
        Ok(r) => r,
        Err(_) => error_response(StatusCode::GATEWAY_TIMEOUT, "request timed out", vec![]),
    }
}

async fn admit(gate: &Gate, peer: SocketAddr, request: Request, next: Next) -> Response {
    if let Some(r) = gate.host_or_origin_refusal(request.headers()) {
        return r;
    }
    // An allowed Origin (checked above) is echoed back for CORS; never `*`.
    let origin = request.headers().get(header::ORIGIN).cloned();
    if request.method() == Method::OPTIONS {
        return match origin {
            Some(o) => cors_preflight(o),
            None => error_response(StatusCode::METHOD_NOT_ALLOWED, "method not allowed", vec![]),
        };
    }
    let request_id = request_id();
    let mut response = admit_authenticated(gate, peer, &request_id, request, next).await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", v);
    }
    if let Some(o) = origin {
        response
            .headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        response
            .headers_mut()
            .append(header::VARY, HeaderValue::from_static("Origin"));
        response.headers_mut().insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(
                "www-authenticate, retry-after, mcp-protocol-version, x-request-id",
            ),
        );
    }
    response
}

/// The answer to a CORS preflight from an allowed origin.
fn cors_preflight(origin: HeaderValue) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h = response.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, GET, DELETE"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(
            "authorization, content-type, accept, mcp-protocol-version, mcp-method, mcp-name, last-event-id",
        ),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    response
}

async fn admit_authenticated(
    gate: &Gate,
    peer: SocketAddr,
    request_id: &str,
    request: Request,
    next: Next,
) -> Response {
    let client = client_address(peer.ip(), request.headers(), &gate.trusted_proxies);
    let client_text = client.to_string();
    let credential = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().ok().and_then(bearer));
    if let Some(wait) = gate.failed_auth.blocked(client) {
        gate.engine
            .audit_refused_request(
                RefusedRequest::RateLimited,
                None,
                &client_text,
                request_id,
                "failed_auth_throttled",
            )
            .await;
        return error_response(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed authentication attempts",
            vec![retry_after(wait)],
        );
    }
    let peer_cert = request
        .extensions()
        .get::<Option<PeerCertificate>>()
        .cloned()
        .flatten();
    // An Authorization header, when sent, is the credential; otherwise a verified client
    // certificate is.
    let creds = gate.auth.current();
    let principal = match (credential, peer_cert) {
        (None, Some(cert)) => creds
            .verify
            .authenticate_client_cert(cert.common_name.as_deref()),
        (None, None) => Err(AuthFailure::Missing),
        (Some(None), _) => Err(AuthFailure::Malformed),
        (Some(Some(c)), _) => {
            let mut result = creds.verify.authenticate(c, now_unix());
            // The provider may have rotated its keys since the last fetch.
            if result == Err(AuthFailure::UnknownKey) && creds.jwks.refetch_for_unknown_key().await
            {
                result = creds.verify.authenticate(c, now_unix());
            }
            result
        }
    };
    let principal = match principal {
        Ok(p) => p,
        Err(failure) => {
            // INVARIANT: the reason is audited, never shown; the token never is either.
            gate.engine
                .audit_refused_request(
                    RefusedRequest::AuthFailure,
                    None,
                    &client_text,
                    request_id,
                    failure.code(),
                )
                .await;
            gate.failed_auth.record(client);
            return gate.challenge(Some(failure));
        }
    };
    // Limits are per principal: the same subject from two issuers (or a JWT subject and an
    // API key of the same name) are different callers.
    let key = principal_key(&principal);
    // The limiters' own clocks: making a clock runs CPUID, which a virtual machine traps.
    let refusal = if let Err(not_until) = gate.per_principal.check_key(&key) {
        Some((
            "rate_limited",
            "rate limit exceeded",
            not_until.wait_time_from(gate.per_principal.clock().now()),
        ))
    } else if let Err(not_until) = gate.global.check() {
        Some((
            "global_rate_limited",
            "rate limit exceeded",
            not_until.wait_time_from(gate.global.clock().now()),
        ))
    } else {
        None
    };
    let slot = match refusal {
        Some(r) => Err(r),
        None => gate.enter(&key).ok_or((
            "too_many_in_flight",
            "too many calls in flight",
            Duration::from_secs(1),
        )),
    };
    let _slot = match slot {
        Ok(slot) => slot,
        Err((reason, message, wait)) => {
            gate.engine
                .audit_refused_request(
                    RefusedRequest::RateLimited,
                    Some(&principal),
                    &client_text,
                    request_id,
                    reason,
                )
                .await;
            return error_response(
                StatusCode::TOO_MANY_REQUESTS,
                message,
                vec![retry_after(wait)],
            );
        }
    };
    let (mut parts, body) = request.into_parts();
    let bytes = if parts.method == Method::POST {
        match axum::body::to_bytes(body, gate.cfg.max_body_bytes).await {
            Ok(b) => b,
            Err(_) => {
                return error_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request body too large",
                    vec![],
                );
            }
        }
    } else {
        Bytes::new()
    };
    if parts.method == Method::POST && serde_json::from_slice::<Value>(&bytes).is_err() {
        let body = json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "parse error"}});
        return (StatusCode::BAD_REQUEST, secure_headers(), axum::Json(body)).into_response();
    }
    let ctx = CallContext {
        principal,
        client: client_text,
        request_id: request_id.to_string(),
        session_id: None,
    };
    if let Some((missing, tools)) = missing_scopes(gate, &ctx.principal, &bytes) {
        for tool in &tools {
            gate.engine
                .audit_unfinished_call(&ctx, tool, "insufficient_scope")
                .await;
        }
        return error_response(
            StatusCode::FORBIDDEN,
            "insufficient scope",
            vec![(
                header::WWW_AUTHENTICATE,
                format!(
                    "Bearer error=\"insufficient_scope\", scope=\"{}\", resource_metadata=\"{}\"",
                    missing.join(" "),
                    gate.metadata_url
                ),
            )],
        );
    }
    parts.extensions.insert::<Principal>(ctx.principal.clone());
    parts.extensions.insert::<CallContext>(ctx);
    let mut response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    for (name, value) in secure_headers() {
        response.headers_mut().insert(name, value);
    }
    response
}

fn principal_key(p: &Principal) -> String {
    format!(
        "{:?}\u{1f}{}\u{1f}{}",
        p.method,
        p.issuer.as_deref().unwrap_or(""),
        p.subject
    )
}

/// `Bearer <credential>`, case-insensitive scheme.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once(' ')?;
    let credential = rest.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !credential.is_empty() && !credential.contains(' '))
        .then_some(credential)
}

/// For a `tools/call` (alone or in a batch) of a known tool the principal may not use, every
/// scope it lacks. Unknown tools and other methods pass; the engine answers them.
/// The scopes the tool calls in `body` need and `principal` lacks, and those calls' tools.
fn missing_scopes(
    gate: &Gate,
    principal: &Principal,
    body: &[u8],
) -> Option<(Vec<String>, Vec<String>)> {
    let parsed: Value = serde_json::from_slice(body).ok()?;
    let messages = match parsed {
        Value::Array(items) => items,
        single => vec![single],
    };
    let mut missing: Vec<String> = Vec::new();
    let mut refused: Vec<String> = Vec::new();
    for m in &messages {
        if m.get("method").and_then(Value::as_str) != Some("tools/call") {
            continue;
        }
        let Some(tool) = m.pointer("/params/name").and_then(Value::as_str) else {
            continue;
        };
        let known = gate.engine.has_tool(tool);
        if known {
            let lacking = gate.engine.missing_scopes(principal, tool);
            if !lacking.is_empty() {
                refused.push(tool.to_string());
            }
            for s in lacking {
                if !missing.contains(&s) {
                    missing.push(s);
                }
            }
        }
    }
    (!missing.is_empty()).then_some((missing, refused))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing_is_strict() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer abc"), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(bearer("Bearer a b"), None);
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies_and_read_from_the_right() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let peer: IpAddr = "192.0.2.7".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 198.51.100.9, 10.0.0.1"),
        );
        let proxies = [IpNet::from(proxy)];
        // From an untrusted peer the header is ignored (it could say anything).
        assert_eq!(client_address(peer, &h, &proxies), peer);
        // From the proxy: the rightmost hop that is not a trusted proxy.
        assert_eq!(
            client_address(proxy, &h, &proxies),
            "198.51.100.9".parse::<IpAddr>().unwrap()
        );
        // A trusted network (the pods of an ingress controller): every hop inside it is
        // skipped, the first address outside it is the client.
        let net = [parse_proxy("10.0.0.0/8").unwrap()];
        let mut chain = HeaderMap::new();
        chain.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 198.51.100.9, 10.1.2.3"),
        );
        assert_eq!(
            client_address("10.9.9.9".parse().unwrap(), &chain, &net),
            "198.51.100.9".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_address(peer, &chain, &net), peer);
        let mut bad = HeaderMap::new();
        bad.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.2.3.4, nonsense"),
        );
        assert_eq!(client_address(proxy, &bad, &proxies), proxy);
    }

    #[test]
    fn origins_and_hosts() {
        assert_eq!(
            url_origin("https://db.example.com/mcp"),
            "https://db.example.com"
        );
        assert_eq!(
            url_origin("http://127.0.0.1:8080/mcp"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(host_without_port("127.0.0.1:8080"), Some("127.0.0.1"));
        assert_eq!(host_without_port("[::1]:8080"), Some("[::1]"));
        assert_eq!(host_without_port("[::1]"), Some("[::1]"));
        assert_eq!(host_without_port("localhost"), Some("localhost"));
        assert_eq!(host_without_port("[::1]evil.com"), None);
        assert_eq!(host_without_port("localhost:evil"), None);
        assert_eq!(host_without_port("localhost:"), None);
        assert_eq!(host_without_port(":80"), None);
    }
}
