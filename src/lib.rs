//! pgward: a security-first MCP server that gives AI models safe, read-only access to
//! PostgreSQL.
//!
//! # Layout
//!
//! Every tool call walks one pipeline: transport → check → execute → shape → audit.
//!
//! - [`config`]: TOML types, `${ENV}` loading, validation that reports every problem (CORE
//!   except `load`).
//! - [`sql`]: CORE. The SQL check: parse one statement, resolve every relation, column and
//!   function against the policy, rewrite, re-serialize.
//! - [`policy`]: CORE. Allowlisted tables and columns, function allowlist, limits.
//! - [`redact`]: CORE. Column strategies and the key-pattern safety net.
//! - [`engine`]: the pipeline; [`engine::shape`] (CORE) frames results as untrusted data and
//!   flags prompt-injection text.
//! - [`db`]: EDGE. The pool, the read-only session, value mapping, parameter binding, the
//!   posture check, and the throwaway cluster used by the demo and tests.
//! - [`auth`]: who is calling. [`auth::verify`] (CORE) checks JWTs and API keys as pure
//!   functions of the credential, the keys and the clock; [`policy::scopes`] (CORE) decides
//!   which tools and tables a principal's scopes cover.
//! - [`mcp`]: EDGE. The rmcp server handler, the stdio transport, and [`mcp::http`]: Streamable
//!   HTTP behind one gate (Host/Origin, authentication, throttles, rate limits, scopes).
//! - [`audit`]: the audit trail; [`audit::chain`] (CORE) seals events into a tamper-evident
//!   hash chain and verifies a log, naming the first edited, deleted or reordered line.
//! - [`metrics`]: the process-wide metrics registry (bounded labels), rendered as Prometheus
//!   text.
//! - [`admin`]: EDGE. The admin listener, apart from MCP: `/metrics`, `/healthz`, `/readyz`.
//! - [`app`], [`cli`], [`demo`]: composition root and command line.
//!
//! CORE modules do no I/O and import no async runtime, driver or transport.

pub mod admin;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod demo;
pub mod engine;
pub mod mcp;
pub mod metrics;
pub mod policy;
pub mod redact;
pub mod sql;
pub mod tls;
