//! EDGE: fetches the JSON Web Key Sets of issuers configured with `jwks_url` and installs them
//! in the (pure) [`Authenticator`](crate::auth::Authenticator) through its [`JwksHandle`]s.
//!
//! - At start-up every set must be fetched, or pgward does not start (no issuer is ever served
//!   without keys, and no weaker fallback exists).
//! - A background task fetches each set again every `jwks_refresh_secs`; a failed fetch keeps
//!   the previous set and is logged.
//! - A token whose `kid` the cached set lacks (the provider rotated its keys) triggers one early
//!   fetch, at most one per [`MIN_REFETCH_INTERVAL`] per issuer, so a flood of made-up `kid`s
//!   cannot turn pgward into a request amplifier against the identity provider.
//!
//! Fetches are HTTPS only (no redirects, no plain-HTTP fallback), bounded in time and size, and
//! trust the system's CA store or, with `jwks_ca_file`, only the CAs in that file.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::auth::config::AuthConfig;
use crate::auth::verify::{JWKS_REFRESH_DEFAULT_SECS, JwksHandle};

/// A key set larger than this is refused (providers publish a few kilobytes).
const MAX_JWKS_BYTES: usize = 256 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Early fetches for an unknown `kid` are spaced at least this far apart per issuer.
pub const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(30);

struct Source {
    /// `auth.issuers[i]`, for messages.
    at: String,
    url: reqwest::Url,
    client: reqwest::Client,
    handle: JwksHandle,
    refresh: Duration,
    /// Held across a fetch, so concurrent callers wait for it instead of fetching again.
    times: tokio::sync::Mutex<FetchTimes>,
}

#[derive(Default)]
struct FetchTimes {
    /// The last fetch of any kind (start-up, scheduled, early).
    any: Option<Instant>,
    /// The last early fetch for an unknown `kid`.
    early: Option<Instant>,
}

/// The fetchers of every `jwks_url` issuer.
pub struct JwksFetcher {
    sources: Vec<Source>,
}

impl std::fmt::Debug for JwksFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.sources.iter().map(|s| s.url.as_str()))
            .finish()
    }
}

impl JwksFetcher {
    /// Builds an HTTPS client per issuer (reading `jwks_ca_file`). Every problem is reported,
    /// each naming its key.
    pub fn new(cfg: &AuthConfig, handles: Vec<JwksHandle>) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let mut sources = Vec::with_capacity(handles.len());
        for handle in handles {
            let Some(ic) = cfg.issuers.get(handle.index) else {
                problems.push(format!("auth.issuers[{}]: not configured", handle.index));
                continue;
            };
            let at = format!("auth.issuers[{}] (`{}`)", handle.index, ic.issuer);
            let Some(url) = ic.jwks_url.as_deref() else {
                problems.push(format!("{at}.jwks_url: not set"));
                continue;
            };
            let url = match reqwest::Url::parse(url) {
                Ok(u) if u.scheme() == "https" && u.host().is_some() => u,
                _ => {
                    problems.push(format!("{at}.jwks_url: `{url}` is not an https URL"));
                    continue;
                }
            };
            let client = match https_client(ic.jwks_ca_file.as_deref()) {
                Ok(c) => c,
                Err(why) => {
                    problems.push(format!("{at}.jwks_ca_file: {why}"));
                    continue;
                }
            };
            sources.push(Source {
                at,
                url,
                client,
                handle,
                refresh: Duration::from_secs(
                    ic.jwks_refresh_secs.unwrap_or(JWKS_REFRESH_DEFAULT_SECS),
                ),
                times: tokio::sync::Mutex::default(),
            });
        }
        if problems.is_empty() {
            Ok(Self { sources })
        } else {
            Err(problems)
        }
    }

    /// True when no issuer uses `jwks_url`.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Fetches every set once; start-up fails unless all of them arrive and hold a usable key.
    pub async fn fetch_all(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        for source in &self.sources {
            let mut times = source.times.lock().await;
            times.any = Some(Instant::now());
            match source.fetch_and_install().await {
                Ok(n) => tracing::info!(issuer = %source.handle.issuer, keys = n, "jwks fetched"),
                Err(why) => problems.push(format!(
                    "{}.jwks_url: cannot use `{}`: {why}",
                    source.at, source.url
                )),
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Refetches, on schedule, until `shutdown` resolves.
    pub async fn refresh_periodically(
        self: Arc<Self>,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) {
        if self.sources.is_empty() {
            return;
        }
        let period = self
            .sources
            .iter()
            .map(|s| s.refresh)
            .min()
            .unwrap_or(Duration::from_secs(JWKS_REFRESH_DEFAULT_SECS));
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(period.min(MIN_REFETCH_INTERVAL));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = &mut shutdown => return,
            }
            for source in &self.sources {
                let mut times = source.times.lock().await;
                if times.any.is_none_or(|t| t.elapsed() >= source.refresh) {
                    times.any = Some(Instant::now());
                    source.refetch().await;
                }
            }
        }
    }

    /// A token named a `kid` no cached set holds: fetch again, unless that issuer's last early
    /// fetch was less than [`MIN_REFETCH_INTERVAL`] ago. Returns true if any set was replaced.
    pub async fn refetch_for_unknown_key(&self) -> bool {
        let mut replaced = false;
        for source in &self.sources {
            let mut times = source.times.lock().await;
            if times
                .early
                .is_some_and(|t| t.elapsed() < MIN_REFETCH_INTERVAL)
            {
                continue;
            }
            let now = Instant::now();
            times.early = Some(now);
            times.any = Some(now);
            replaced |= source.refetch().await;
        }
        replaced
    }
}

impl Source {
    /// Fetches and installs; on failure the previous set stays. True if a new set is in use.
    async fn refetch(&self) -> bool {
        match self.fetch_and_install().await {
            Ok(n) => {
                tracing::info!(issuer = %self.handle.issuer, keys = n, "jwks refreshed");
                true
            }
            Err(why) => {
                // INVARIANT: the previous set stays in use; tokens signed by keys it lacks
                // keep failing with `unknown_key` until a fetch succeeds.
                tracing::warn!(
                    issuer = %self.handle.issuer,
                    url = %self.url,
                    reason = %why,
                    "jwks refresh failed; keeping the previous key set"
                );
                false
            }
        }
    }

    async fn fetch_and_install(&self) -> Result<usize, String> {
        let body = fetch(&self.client, &self.url).await?;
        self.handle.install(&body)
    }
}

/// GET `url`: status 200, at most [`MAX_JWKS_BYTES`], within [`FETCH_TIMEOUT`].
async fn fetch(client: &reqwest::Client, url: &reqwest::Url) -> Result<Vec<u8>, String> {
    let mut response = client
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(describe)?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(format!("the server answered {}", response.status()));
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
    {
        return Err(format!("the key set is larger than {MAX_JWKS_BYTES} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(describe)? {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(format!("the key set is larger than {MAX_JWKS_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A fetch error in a few words, with the cause chain (e.g. the certificate problem).
fn describe(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        causes.push(s.to_string());
        source = s.source();
    }
    match causes.last() {
        Some(root) => format!("{kind}: {root}"),
        None => kind.to_string(),
    }
}

/// An HTTPS-only client (ring, TLS 1.2+, no redirects) trusting the system CA store, or only
/// the certificates in `ca_file`.
fn https_client(ca_file: Option<&str>) -> Result<reqwest::Client, String> {
    let mut config = crate::tls::client_config(ca_file)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(FETCH_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("pgward/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("https client: {e}"))
}
