//! Command-line interface.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "pgward",
    version,
    about = "A security-first MCP server for read-only PostgreSQL access"
)]
pub struct Cli {
    /// Log line format on stderr: `text` or `json` (one object per line). Also
    /// `PGWARD_LOG_FORMAT`.
    #[arg(long, global = true, env = "PGWARD_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve MCP with the given config: Streamable HTTP when `[http]` is set, else stdio.
    Serve {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check one SQL statement against the config's policy, offline (no database needed).
    /// Exit 0 and print the canonical SQL when allowed; exit 1 and print every violation.
    Check {
        #[arg(long, short)]
        config: PathBuf,
        /// The SQL to check.
        sql: String,
    },
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print a new API key and the hash that goes in the config (`auth.api_keys`). With
    /// `--stdin`, hash a key read from standard input instead.
    HashKey {
        #[arg(long)]
        stdin: bool,
    },
    /// Apply the audit table's schema and roles (`migrations/002_audit.sql`) to the audit
    /// database, as a superuser whose URL is in the environment (never on the command line).
    Migrate {
        /// Environment variable holding the superuser connection URL of the audit database.
        #[arg(long, default_value = "PGWARD_MIGRATE_URL")]
        url_env: String,
        /// Print the SQL instead of applying it (to review it, or run it with psql).
        #[arg(long)]
        print: bool,
        #[command(flatten)]
        tls: DbTlsArgs,
    },
    /// Probe a running pgward's admin listener (for container health checks, where no curl
    /// is installed): exit 0 when `GET <url>` answers 200 within 3 seconds, 1 otherwise.
    Health {
        #[arg(long, default_value = "http://127.0.0.1:9090/healthz")]
        url: String,
    },
    /// Audit trail commands.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Start a throwaway PostgreSQL with sample data and serve it over stdio.
    Demo {
        /// Print the client configuration and exit after setting up, without serving.
        #[arg(long)]
        no_serve: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load and validate a config file (environment variables included), reporting every problem.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the hash chain of audit files (rotated files oldest first, e.g. `audit.jsonl.2
    /// audit.jsonl.1 audit.jsonl`). Exit 0 when the chain holds, 1 at the first edited,
    /// deleted, reordered or truncated event, which is named; 3 when the files cannot be read.
    Verify {
        /// The files, oldest first.
        #[arg(required_unless_present = "postgres_env")]
        files: Vec<PathBuf>,
        /// Verify the PostgreSQL audit table instead: the name of the environment variable
        /// holding a connection URL of a `pgward_audit_reader` role.
        #[arg(long, conflicts_with = "files")]
        postgres_env: Option<String>,
        /// Name of the environment variable holding the chain's HMAC key (`audit.hmac_key`);
        /// the key itself never goes on the command line.
        #[arg(long)]
        key_env: Option<String>,
        /// The recorded head to check the end of the log against. Default: `<last file>.head`
        /// when it exists (for the table: none unless given; the file sink's head fits it when
        /// both sinks run).
        #[arg(long, conflicts_with = "no_head")]
        head: Option<PathBuf>,
        /// Do not check the end of the log against a recorded head.
        #[arg(long)]
        no_head: bool,
        /// The first file does not start the chain (older files were removed by retention):
        /// trust its first event's link.
        #[arg(long)]
        from_anywhere: bool,
        #[command(flatten)]
        tls: DbTlsArgs,
    },
}

/// TLS to the audit database, as `audit.postgres_tls` and `audit.postgres_tls_ca_file` set it
/// for `pgward serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct DbTlsArgs {
    /// `verify-full` (the server's certificate and name verified) or `off`. Unset:
    /// `verify-full` when the URL says sslmode=require or a CA file is given, plain text to a
    /// server on this machine, and a remote server refused.
    #[arg(long, value_parser = ["verify-full", "off"])]
    pub tls: Option<String>,
    /// CA certificates (PEM) the server's certificate must chain to, instead of the system
    /// trust store.
    #[arg(long)]
    pub tls_ca_file: Option<String>,
}

impl DbTlsArgs {
    /// The settings the flags give.
    pub fn settings(&self) -> crate::config::types::TlsSettings {
        use crate::config::types::DatabaseTls;
        crate::config::types::TlsSettings {
            mode: match self.tls.as_deref() {
                Some("verify-full") => Some(DatabaseTls::VerifyFull),
                Some(_) => Some(DatabaseTls::Off),
                None => None,
            },
            ca_file: self.tls_ca_file.clone(),
        }
    }
}
