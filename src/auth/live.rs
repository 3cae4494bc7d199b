//! EDGE: the credentials the HTTP gate checks against, swappable by a config reload. A request
//! takes one snapshot ([`LiveAuth::current`]) and is judged by it alone; a reload installs a
//! new authenticator and JWKS fetcher (already fetched) and moves the background refresh over
//! to the new fetcher.

use std::sync::{Arc, Mutex, PoisonError, RwLock};

use crate::auth::Authenticator;
use crate::auth::jwks::JwksFetcher;

/// The verifier and the key-set fetcher of one config.
#[derive(Debug)]
pub struct Credentials {
    pub verify: Arc<Authenticator>,
    pub jwks: Arc<JwksFetcher>,
}

/// The credentials in force now.
#[derive(Debug)]
pub struct LiveAuth {
    current: RwLock<Arc<Credentials>>,
    refresher: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl LiveAuth {
    /// Installs `credentials` and starts refreshing their key sets in the background.
    pub fn new(credentials: Credentials) -> Arc<Self> {
        let live = Arc::new(Self {
            current: RwLock::new(Arc::new(credentials)),
            refresher: Mutex::new(None),
        });
        live.restart_refresh();
        live
    }

    /// The credentials a request is judged by.
    pub fn current(&self) -> Arc<Credentials> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Makes `credentials` the ones every request from now on is judged by.
    pub fn replace(&self, credentials: Credentials) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(credentials);
        self.restart_refresh();
    }

    /// Stops the background refresh (at shutdown).
    pub fn stop(&self) {
        if let Some(task) = self
            .refresher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }

    fn restart_refresh(&self) {
        let jwks = Arc::clone(&self.current().jwks);
        let task = tokio::spawn(jwks.refresh_periodically(std::future::pending()));
        if let Some(old) = self
            .refresher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(task)
        {
            old.abort();
        }
    }
}
