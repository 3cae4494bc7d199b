//! pgward: a security-first MCP server that gives AI models safe, read-only access to
//! PostgreSQL.

pub mod config;
pub mod db;
pub mod policy;
pub mod redact;
pub mod sql;
