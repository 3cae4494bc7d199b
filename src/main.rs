//! The `pgward` binary: parse the command line, set up logging (stderr only: stdout belongs to
//! the MCP protocol), run, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;
use pgward::cli::{AuditCommand, Cli, Command, ConfigCommand, LogFormat};

/// pgward's own messages from `info` up. The MCP library logs a session's start and end at
/// `info`, and over HTTP every stateless request is a session of its own: three lines a call,
/// one with the client's whole `initialize` parameters, which say nothing the audit event does
/// not. Its warnings and errors still show.
const DEFAULT_LOG_FILTER: &str = "info,rmcp=warn";

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("PGWARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(filter);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        // One JSON object per line, with the fields of the enclosing spans (the request id of
        // a tool call), so log lines join the audit event of their call.
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
    match cli.command {
        Command::Check { config, sql } => match pgward::app::check(&config, &sql) {
            Ok(Ok(canonical)) => {
                println!("{canonical}");
                ExitCode::SUCCESS
            }
            Ok(Err(violations)) => {
                for v in violations {
                    println!("{v}");
                }
                ExitCode::from(1)
            }
            Err(e) => fail(&e),
        },
        Command::Config {
            command: ConfigCommand::Check { config },
        } => match pgward::app::load_settings(&config) {
            Ok(s) => {
                println!(
                    "config ok: {} table(s), {} lookup tool(s)",
                    s.policy.tables.len(),
                    s.tools.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("pgward: {e}");
                ExitCode::from(1)
            }
        },
        Command::Serve { config } => run(move || async move { pgward::app::serve(&config).await }),
        Command::HashKey { stdin } => hash_key(stdin),
        Command::Demo { no_serve } => run(move || pgward::demo::run(no_serve)),
        Command::Health { url } => health(&url),
        Command::Migrate {
            url_env,
            print,
            tls,
        } => {
            if print {
                print!("{}", pgward::audit::postgres::AUDIT_MIGRATION);
                return ExitCode::SUCCESS;
            }
            match std::env::var(&url_env) {
                Ok(url) if !url.is_empty() => run(move || async move {
                    pgward::app::migrate_audit(&url, &tls.settings()).await?;
                    println!("audit schema applied");
                    Ok::<(), pgward::app::AppError>(())
                }),
                _ => fail(&format!(
                    "environment variable `{url_env}` is not set (the audit database's superuser URL)"
                )),
            }
        }
        Command::Audit {
            command:
                AuditCommand::Verify {
                    files,
                    postgres_env,
                    key_env,
                    head,
                    no_head,
                    from_anywhere,
                    tls,
                },
        } => audit_verify(
            files,
            postgres_env,
            key_env,
            head,
            no_head,
            from_anywhere,
            tls.settings(),
        ),
    }
}

fn health(url: &str) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    match runtime.block_on(pgward::app::probe(url)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pgward: {e}");
            ExitCode::from(1)
        }
    }
}

fn audit_verify(
    files: Vec<std::path::PathBuf>,
    postgres_env: Option<String>,
    key_env: Option<String>,
    head: Option<std::path::PathBuf>,
    no_head: bool,
    from_anywhere: bool,
    postgres_tls: pgward::config::types::TlsSettings,
) -> ExitCode {
    if postgres_env.is_none() && postgres_tls != pgward::config::types::TlsSettings::default() {
        return fail(&"--tls and --tls-ca-file apply only with --postgres-env");
    }
    let postgres_url = match postgres_env {
        Some(var) => match std::env::var(&var) {
            Ok(url) if !url.is_empty() => Some(url),
            _ => return fail(&format!("environment variable `{var}` is not set")),
        },
        None => None,
    };
    let key = match key_env {
        Some(var) => match std::env::var(&var) {
            Ok(k) if !k.is_empty() => Some(k.into_bytes()),
            _ => return fail(&format!("environment variable `{var}` is not set")),
        },
        None => None,
    };
    let req = pgward::app::VerifyRequest {
        files,
        postgres_url,
        postgres_tls,
        key,
        head,
        default_head: !no_head,
        from_anywhere,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    match runtime.block_on(pgward::app::audit_verify(&req)) {
        Ok(report) => match &report.problem {
            None => {
                println!(
                    "ok: {} event(s), seq {}..{}, head {}{}",
                    report.events,
                    report.first_seq.unwrap_or(0),
                    report.last_seq.unwrap_or(0),
                    report.head.as_ref().map_or("-", |h| h.hash.as_str()),
                    if report.head_recorded {
                        ", the recorded head"
                    } else {
                        " (no recorded head was read: an end cut off would not show)"
                    }
                );
                ExitCode::SUCCESS
            }
            Some(problem) => {
                println!("{problem}");
                println!("{} event(s) verified before it", report.events);
                ExitCode::from(1)
            }
        },
        Err(e) => fail(&e),
    }
}

/// Stack size of the runtime's threads: headroom for the SQL check's recursive steps over
/// deeply nested (but bounded) trees.
const STACK_BYTES: usize = 8 * 1024 * 1024;

/// `PGWARD_WORKER_THREADS`: how many threads serve calls. Unset, one: every call's work
/// (pipes, sockets, the database connections) is driven by one thread, which on a small
/// machine shared with PostgreSQL costs the least per call. More threads let an HTTP server
/// use more cores. Anything but a whole number from 1 to [`MAX_WORKER_THREADS`] stops start-up.
fn worker_threads() -> Result<usize, String> {
    match std::env::var(WORKER_THREADS_ENV) {
        Err(std::env::VarError::NotPresent) => Ok(1),
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if (1..=MAX_WORKER_THREADS).contains(&n) => Ok(n),
            _ => Err(format!(
                "{WORKER_THREADS_ENV} must be a whole number from 1 to {MAX_WORKER_THREADS}, got `{v}`"
            )),
        },
        Err(std::env::VarError::NotUnicode(_)) => Err(format!(
            "{WORKER_THREADS_ENV} must be a whole number from 1 to {MAX_WORKER_THREADS}"
        )),
    }
}

const WORKER_THREADS_ENV: &str = "PGWARD_WORKER_THREADS";
const MAX_WORKER_THREADS: usize = 64;

fn run<E, F, Fut>(make: F) -> ExitCode
where
    E: std::fmt::Display,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), E>>,
{
    let threads = match worker_threads() {
        Ok(n) => n,
        Err(e) => return fail(&e),
    };
    let body = move || {
        let runtime = if threads <= 1 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_stack_size(STACK_BYTES)
                .enable_all()
                .build()
        };
        let runtime = match runtime {
            Ok(r) => r,
            Err(e) => return fail(&e),
        };
        match runtime.block_on(make()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        }
    };
    // The runtime runs on a thread of known stack size (the main thread's depends on the
    // environment's limits).
    let thread = std::thread::Builder::new()
        .name("pgward".into())
        .stack_size(STACK_BYTES)
        .spawn(body);
    match thread {
        Ok(handle) => handle.join().unwrap_or_else(|_| ExitCode::from(3)),
        Err(e) => fail(&e),
    }
}

fn hash_key(from_stdin: bool) -> ExitCode {
    let key = if from_stdin {
        let mut line = String::new();
        if let Err(e) = std::io::stdin().read_line(&mut line) {
            return fail(&e);
        }
        line.trim().to_string()
    } else {
        match pgward::auth::generate_api_key() {
            Ok(k) => {
                println!("key (give it to the client; it is not stored): {k}");
                k
            }
            Err(e) => return fail(&e),
        }
    };
    if key.is_empty() {
        eprintln!("pgward: no key given");
        return ExitCode::from(1);
    }
    println!("key_sha256 = \"{}\"", pgward::auth::hash_api_key(&key));
    ExitCode::SUCCESS
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("pgward: {e}");
    ExitCode::from(3)
}
