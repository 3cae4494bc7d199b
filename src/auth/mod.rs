//! Authentication: who is calling. [`verify`] is CORE (token and key checks as pure functions of
//! values); the HTTP edge reads key files and secrets and passes them in.

pub mod config;
pub mod verify;

pub use verify::*;
