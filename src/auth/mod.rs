//! Authentication: who is calling. [`verify`] is CORE (token and key checks as pure functions of
//! values); the HTTP edge reads key files and secrets and passes them in, and [`jwks`] (EDGE)
//! fetches the key sets of `jwks_url` issuers into it; [`mtls`] (EDGE) verifies client
//! certificates and reads their common name.

pub mod config;
pub mod jwks;
pub mod live;
pub mod mtls;
pub mod verify;

pub use verify::*;
