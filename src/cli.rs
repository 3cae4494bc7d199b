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
    #[command(subcommand)]
    pub command: Command,
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
