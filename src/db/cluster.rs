//! A throwaway PostgreSQL cluster for `pgward demo` and the test harness.
//!
//! [`TempCluster::start`] runs `initdb` into a fresh private directory under the system
//! temporary directory, starts the server on a free loopback port and hands back URLs to
//! connect with. Dropping the value stops the server and deletes the directory.
//!
//! This is an EDGE module: it shells out to the PostgreSQL server binaries with blocking
//! `std::process` calls, which is fine because it runs once, at start-up.
//!
//! Running as root: `initdb` and `postgres` refuse to run as root, so when the effective user
//! id is 0 every server binary runs as the `postgres` user (through `runuser`, or `su` when
//! `runuser` is missing) and the directory is handed to that user with `chown -R`.
//!
//! Authentication is `trust`, on the Unix socket and on `127.0.0.1` only: any local user who
//! can reach the port can connect as any role, so the cluster must only ever hold
//! throwaway data.

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs::{self, DirBuilder};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tokio_postgres::NoTls;

/// The address the server listens on; never anything reachable from another machine.
const HOST: &str = "127.0.0.1";
/// Environment variable that names the directory holding `initdb` and `pg_ctl`.
const BINDIR_ENV: &str = "PGWARD_PG_BINDIR";
/// The OS user that owns the cluster when we run as root.
const PG_OS_USER: &str = "postgres";
/// How many log or stderr lines an error message carries.
const TAIL_LINES: usize = 25;
/// How often `start` retries when the picked port was taken before the server bound it.
const PORT_ATTEMPTS: usize = 5;
/// Binaries a directory must hold to count as a server installation.
const REQUIRED_BINARIES: [&str; 3] = ["initdb", "pg_ctl", "postgres"];

/// Everything that can go wrong while creating, running or tearing down a [`TempCluster`].
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No PostgreSQL server installation was found.
    #[error(
        "no postgresql server binaries found (looked in: {searched}); install them \
         (e.g. `apt-get install postgresql`) or set PGWARD_PG_BINDIR to the directory \
         that holds `initdb` and `pg_ctl`"
    )]
    NoBinaries {
        /// The places that were searched, for the message.
        searched: String,
    },
    /// `PGWARD_PG_BINDIR` is set but does not point at a server installation.
    #[error(
        "PGWARD_PG_BINDIR is `{path}`, which does not hold `initdb`, `pg_ctl` and `postgres`; \
         point it at the server binary directory (see `pg_config --bindir`) or unset it"
    )]
    BadBinDirEnv {
        /// The value of the variable.
        path: String,
    },
    /// We are root and there is no `postgres` OS user to run the server as.
    #[error(
        "running as root, but there is no `postgres` user to run the server as; \
         install the postgresql package (it creates the user) or run as a non-root user"
    )]
    NoPostgresUser,
    /// We are root and neither `runuser` nor `su` is available.
    #[error(
        "running as root, but neither `runuser` nor `su` was found to run the server as \
         `postgres`; install util-linux or run as a non-root user"
    )]
    NoRunAs,
    /// A path could not be passed through `su -c` because it is not UTF-8.
    #[error("path `{path}` is not valid utf-8 and cannot be passed to `su`")]
    NonUtf8Path {
        /// The offending path, lossily decoded.
        path: String,
    },
    /// A file system or process-spawning operation failed.
    #[error("could not {action}: {source}")]
    Io {
        /// What we were doing, e.g. "create directory `/tmp/x`".
        action: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An external command exited unsuccessfully.
    #[error("`{command}` failed ({status}); its output ends with:\n{tail}")]
    CommandFailed {
        /// The command name and subcommand, e.g. "pg_ctl stop".
        command: String,
        /// The exit status.
        status: String,
        /// The last lines of its stderr and stdout.
        tail: String,
    },
    /// The server did not start; the log is about to be deleted, so its tail is kept here.
    #[error("postgresql did not start ({reason}); the server log ends with:\n{log_tail}")]
    StartFailed {
        /// Why we think it failed.
        reason: String,
        /// The last lines of the server log.
        log_tail: String,
    },
    /// No free port could be found or kept.
    #[error("could not find a free tcp port on 127.0.0.1 after {attempts} attempts")]
    NoFreePort {
        /// How many ports were tried.
        attempts: usize,
    },
    /// Connecting to the cluster failed.
    #[error("could not connect to the cluster: {message}")]
    Connect {
        /// The driver error and its cause.
        message: String,
        /// The underlying driver error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The setup SQL failed.
    #[error("setup sql failed: {message}")]
    Sql {
        /// The server's message, with DETAIL and HINT (this is trusted setup SQL).
        message: String,
        /// The underlying driver error, e.g. to read its SQLSTATE.
        #[source]
        source: tokio_postgres::Error,
    },
}

/// How server binaries are launched.
#[derive(Debug, Clone)]
enum RunAs {
    /// Directly, as the current (non-root) user.
    CurrentUser,
    /// `runuser -u postgres -- <program> <args>`.
    Runuser(PathBuf),
    /// `su postgres -s /bin/sh -c '<program> <args>'`.
    Su(PathBuf),
}

/// A running, throwaway PostgreSQL cluster; dropping it stops the server and deletes its files.
#[derive(Debug)]
pub struct TempCluster {
    /// The private directory that holds everything below; removed on drop.
    root: PathBuf,
    /// The data directory (`<root>/data`).
    data_dir: PathBuf,
    /// The Unix socket directory (`<root>/socket`), so we never touch `/var/run/postgresql`.
    socket_dir: PathBuf,
    /// The server log (`<root>/server.log`).
    log_file: PathBuf,
    /// Where `initdb`, `pg_ctl` and `postgres` live.
    bindir: PathBuf,
    /// The TCP port on 127.0.0.1; kept across restarts.
    port: u16,
    /// How to launch the server binaries.
    run_as: RunAs,
}

impl TempCluster {
    /// Finds the server binaries: the directory in env `PGWARD_PG_BINDIR` (an error if it is
    /// set but wrong), then `pg_config --bindir`, then the newest `/usr/lib/postgresql/*/bin`.
    pub fn find_bindir() -> Result<PathBuf, ClusterError> {
        find_bindir_from(
            std::env::var_os(BINDIR_ENV),
            pg_config_bindir,
            Path::new("/usr/lib/postgresql"),
        )
    }

    /// Creates and starts a fresh cluster: `initdb` (trust auth on the socket and 127.0.0.1
    /// only, `--no-sync`, superuser `postgres`, UTF8, locale C) into a new 0700 directory under
    /// the system temporary directory, then `pg_ctl start -w` on a free loopback port with
    /// durability switched off, and waits until it accepts TCP connections. Blocking.
    pub fn start() -> Result<TempCluster, ClusterError> {
        Self::start_as(detect_run_as()?)
    }

    /// [`TempCluster::start`] with the launch method chosen by the caller (tests use it to
    /// exercise the `su` fallback).
    fn start_as(run_as: RunAs) -> Result<TempCluster, ClusterError> {
        let bindir = Self::find_bindir()?;
        let root = create_private_dir()?;
        // From here on, `Drop` cleans up whatever a failing step leaves behind.
        let mut cluster = TempCluster {
            data_dir: root.join("data"),
            socket_dir: root.join("socket"),
            log_file: root.join("server.log"),
            root,
            bindir,
            port: 0,
            run_as,
        };
        mkdir_private(&cluster.socket_dir)?;
        if !matches!(cluster.run_as, RunAs::CurrentUser) {
            cluster.chown_to_postgres()?;
        }
        cluster.initdb()?;
        cluster.write_hba()?;
        let base_conf = read_file(&cluster.data_dir.join("postgresql.conf"))?;

        // Binding port 0 and releasing it leaves a window in which another process can take
        // the port, so a bind failure in the server log means "pick another and retry".
        for attempt in 1..=PORT_ATTEMPTS {
            cluster.port = free_port()?;
            cluster.write_conf(&base_conf)?;
            let log_offset = file_len(&cluster.log_file);
            match cluster.start_server() {
                Ok(()) => {
                    cluster.wait_for_tcp(Duration::from_secs(30))?;
                    return Ok(cluster);
                }
                Err(err) => {
                    let fresh_log = read_from(&cluster.log_file, log_offset);
                    let port_taken = fresh_log.contains("could not bind")
                        || fresh_log.contains("Address already in use");
                    if !port_taken {
                        return Err(err);
                    }
                    tracing::debug!(attempt, port = cluster.port, "port taken, retrying");
                }
            }
        }
        Err(ClusterError::NoFreePort {
            attempts: PORT_ATTEMPTS,
        })
    }

    /// The TCP port the server listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The host the server listens on: always `127.0.0.1`.
    pub fn host(&self) -> &str {
        HOST
    }

    /// A libpq-style URL, `postgres://user[:password]@127.0.0.1:PORT/db`, with user,
    /// password and database percent-encoded.
    pub fn url(&self, user: &str, password: Option<&str>, db: &str) -> String {
        let mut url = format!("postgres://{}", percent_encode(user));
        if let Some(password) = password {
            url.push(':');
            url.push_str(&percent_encode(password));
        }
        let _ = write!(url, "@{HOST}:{}/{}", self.port, percent_encode(db));
        url
    }

    /// The superuser URL: user `postgres`, database `postgres`, no password.
    pub fn superuser_url(&self) -> String {
        self.url(PG_OS_USER, None, "postgres")
    }

    /// Stops the server with `pg_ctl stop -m fast`, keeping the data directory and port so
    /// that [`TempCluster::restart`] can bring it back.
    pub fn stop(&self) -> Result<(), ClusterError> {
        let output = self.pg_ctl(&["stop", "-m", "fast", "-w", "-t", "60"])?;
        check_output("pg_ctl stop", &output)
    }

    /// Starts the server again on the same port and data directory, stopping it first
    /// (`-m fast`) if it is running; waits until it accepts TCP connections.
    pub fn restart(&self) -> Result<(), ClusterError> {
        if self.is_running()? {
            self.stop()?;
        }
        self.start_server()?;
        self.wait_for_tcp(Duration::from_secs(30))
    }

    /// Serves TLS from now on with the certificate chain `cert_pem` and its key `key_pem`,
    /// written into the data directory (the key 0600, both owned by the server's user), and
    /// restarts the server. Plain-text connections are still accepted. Blocking.
    pub fn enable_tls(&self, cert_pem: &str, key_pem: &str) -> Result<(), ClusterError> {
        let key = self.data_dir.join("server.key");
        write_file(&self.data_dir.join("server.crt"), cert_pem)?;
        write_file(&key, key_pem)?;
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).map_err(|source| {
            ClusterError::Io {
                action: format!("restrict `{}`", key.display()),
                source,
            }
        })?;
        let conf = self.data_dir.join("postgresql.conf");
        let base = read_file(&conf)?;
        write_file(
            &conf,
            &format!("{base}ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"),
        )?;
        if !matches!(self.run_as, RunAs::CurrentUser) {
            self.chown_to_postgres()?;
        }
        self.restart()
    }

    /// Whether `pg_ctl status` sees a running server (exit code 0; 3 means stopped).
    fn is_running(&self) -> Result<bool, ClusterError> {
        let output = self.pg_ctl(&["status"])?;
        Ok(output.status.success())
    }

    /// Runs `initdb` with the settings of a throwaway cluster.
    fn initdb(&self) -> Result<(), ClusterError> {
        let mut args: Vec<OsString> = vec!["-D".into(), self.data_dir.clone().into_os_string()];
        for arg in [
            "-U",
            PG_OS_USER,
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "--auth-local=trust",
            "--auth-host=trust",
        ] {
            args.push(arg.into());
        }
        let output = self.run_pg_binary("initdb", &args)?;
        check_output("initdb", &output)
    }

    /// Replaces the generated `pg_hba.conf`: trust on the socket and on 127.0.0.1 only
    /// (initdb also opens `::1` and replication, which nothing here needs).
    fn write_hba(&self) -> Result<(), ClusterError> {
        let hba = "# written by pgward: throwaway cluster, loopback only\n\
                   # TYPE  DATABASE  USER  ADDRESS       METHOD\n\
                   local   all       all                 trust\n\
                   host    all       all   127.0.0.1/32  trust\n";
        // Overwriting an existing file keeps its owner, so this stays `postgres`-owned.
        write_file(&self.data_dir.join("pg_hba.conf"), hba)
    }

    /// Writes `postgresql.conf` as the initdb original plus our settings, port included.
    fn write_conf(&self, base: &str) -> Result<(), ClusterError> {
        let socket_dir = self.socket_dir.to_string_lossy().replace('\'', "''");
        let conf = format!(
            "{base}\n# --- written by pgward: throwaway cluster, durability off ---\n\
             listen_addresses = '{HOST}'\n\
             port = {port}\n\
             unix_socket_directories = '{socket_dir}'\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             max_connections = 100\n\
             shared_buffers = 32MB\n",
            port = self.port,
        );
        write_file(&self.data_dir.join("postgresql.conf"), &conf)
    }

    /// `pg_ctl start -w`, turning a failure into an error that carries the log tail.
    fn start_server(&self) -> Result<(), ClusterError> {
        let output = self.pg_ctl(&["start", "-w", "-t", "60"])?;
        if output.status.success() {
            return Ok(());
        }
        Err(ClusterError::StartFailed {
            reason: format!(
                "`pg_ctl start` exited with {}: {}",
                output.status,
                tail(&String::from_utf8_lossy(&output.stderr), 3)
            ),
            log_tail: tail(&read_from(&self.log_file, 0), TAIL_LINES),
        })
    }

    /// Polls the TCP port until it accepts a connection (pg_ctl -w already waited for the
    /// postmaster to report ready; this confirms the socket we hand out works).
    fn wait_for_tcp(&self, timeout: Duration) -> Result<(), ClusterError> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + timeout;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ClusterError::StartFailed {
                    reason: format!(
                        "port {} did not accept connections within {}s",
                        self.port,
                        timeout.as_secs()
                    ),
                    log_tail: tail(&read_from(&self.log_file, 0), TAIL_LINES),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `pg_ctl <args> -D <data> -l <log>`.
    fn pg_ctl(&self, args: &[&str]) -> Result<Output, ClusterError> {
        let mut all: Vec<OsString> = args.iter().map(OsString::from).collect();
        all.push("-D".into());
        all.push(self.data_dir.clone().into_os_string());
        all.push("-l".into());
        all.push(self.log_file.clone().into_os_string());
        self.run_pg_binary("pg_ctl", &all)
    }

    /// Runs a server binary from the bin dir, as `postgres` when we are root, from inside the
    /// cluster directory (the `postgres` user may not be able to read our working directory).
    fn run_pg_binary(&self, name: &str, args: &[OsString]) -> Result<Output, ClusterError> {
        let program = self.bindir.join(name);
        let mut command = match &self.run_as {
            RunAs::CurrentUser => {
                let mut command = Command::new(&program);
                command.args(args);
                command
            }
            RunAs::Runuser(runuser) => {
                let mut command = Command::new(runuser);
                command
                    .args(["-u", PG_OS_USER, "--"])
                    .arg(&program)
                    .args(args);
                command
            }
            RunAs::Su(su) => {
                let mut line = shell_quote(&program)?;
                for arg in args {
                    line.push(' ');
                    line.push_str(&shell_quote(arg)?);
                }
                let mut command = Command::new(su);
                command.args([PG_OS_USER, "-s", "/bin/sh", "-c"]).arg(line);
                command
            }
        };
        command
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| ClusterError::Io {
                action: format!("run `{}`", program.display()),
                source,
            })
    }

    /// Hands the cluster directory to the `postgres` user.
    fn chown_to_postgres(&self) -> Result<(), ClusterError> {
        let output = Command::new("chown")
            .arg("-R")
            .arg(format!("{PG_OS_USER}:"))
            .arg(&self.root)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| ClusterError::Io {
                action: "run `chown`".to_owned(),
                source,
            })?;
        check_output("chown", &output)
    }
}

impl Drop for TempCluster {
    /// Stops the server (`-m immediate`: the data is about to be deleted) and removes the
    /// directory; failures are logged, never raised.
    fn drop(&mut self) {
        if self.data_dir.join("postmaster.pid").exists() {
            match self.pg_ctl(&["stop", "-m", "immediate", "-w", "-t", "30"]) {
                Ok(output) if !output.status.success() => tracing::warn!(
                    stderr = %tail(&String::from_utf8_lossy(&output.stderr), 5),
                    "could not stop the throwaway postgresql cluster"
                ),
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "could not stop the throwaway postgresql cluster");
                }
            }
        }
        if let Err(err) = fs::remove_dir_all(&self.root) {
            tracing::warn!(
                error = %err,
                dir = %self.root.display(),
                "could not remove the throwaway postgresql cluster directory"
            );
        }
    }
}

/// Connects with tokio-postgres (no TLS; the cluster is loopback only) and runs `sql` with
/// the simple query protocol, so it may hold many statements. For trusted setup SQL only.
pub async fn run_sql(url: &str, sql: &str) -> Result<(), ClusterError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|source| ClusterError::Connect {
            message: describe_pg_error(&source),
            source,
        })?;
    let connection_task = tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::warn!(error = %err, "setup connection ended with an error");
        }
    });
    let result = client
        .batch_execute(sql)
        .await
        .map_err(|source| ClusterError::Sql {
            message: describe_pg_error(&source),
            source,
        });
    drop(client);
    // The task ends once the client is gone; a join error (a panic inside it) changes nothing.
    let _ = connection_task.await;
    result
}

/// The driver's `Display` says only "db error"; the server's message is in the cause.
fn describe_pg_error(err: &tokio_postgres::Error) -> String {
    if let Some(db) = err.as_db_error() {
        return format!("{db} (sqlstate {})", db.code().code());
    }
    match std::error::Error::source(err) {
        Some(cause) => format!("{err}: {cause}"),
        None => err.to_string(),
    }
}

/// `pg_config --bindir`, when `pg_config` runs and says something.
fn pg_config_bindir() -> Option<PathBuf> {
    let output = Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let dir = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    (output.status.success() && !dir.is_empty()).then(|| PathBuf::from(dir))
}

/// The search behind [`TempCluster::find_bindir`], with its inputs passed in for tests.
fn find_bindir_from(
    env: Option<OsString>,
    pg_config: impl FnOnce() -> Option<PathBuf>,
    versions_root: &Path,
) -> Result<PathBuf, ClusterError> {
    if let Some(dir) = env.filter(|dir| !dir.is_empty()) {
        let dir = PathBuf::from(dir);
        return if has_server_binaries(&dir) {
            Ok(dir)
        } else {
            Err(ClusterError::BadBinDirEnv {
                path: dir.display().to_string(),
            })
        };
    }
    let mut searched = vec![format!("${BINDIR_ENV} (unset)")];

    // On Debian, `pg_config` can come from libpq-dev alone, naming a directory without
    // the server binaries; that is why the result is checked, not trusted.
    match pg_config() {
        Some(dir) if has_server_binaries(&dir) => return Ok(dir),
        Some(dir) => searched.push(format!("`pg_config --bindir` ({})", dir.display())),
        None => searched.push("`pg_config --bindir` (not available)".to_owned()),
    }

    // Newest major version first: 17 before 16 before 9.6.
    let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir(versions_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let key: Option<Vec<u32>> = name.split('.').map(|part| part.parse().ok()).collect();
            key.map(|key| (key, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    if let Some((_, dir)) = versions
        .into_iter()
        .find(|(_, dir)| has_server_binaries(dir))
    {
        return Ok(dir);
    }
    searched.push(format!("{}/*/bin", versions_root.display()));
    Err(ClusterError::NoBinaries {
        searched: searched.join(", "),
    })
}

/// Whether `dir` holds everything needed to create and run a cluster.
fn has_server_binaries(dir: &Path) -> bool {
    REQUIRED_BINARIES
        .iter()
        .all(|name| dir.join(name).is_file())
}

/// Decides how to launch server binaries: directly, or as `postgres` when we are root.
fn detect_run_as() -> Result<RunAs, ClusterError> {
    if !is_root() {
        return Ok(RunAs::CurrentUser);
    }
    let user_exists = Command::new("id")
        .args(["-u", PG_OS_USER])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !user_exists {
        return Err(ClusterError::NoPostgresUser);
    }
    if let Some(runuser) = find_program("runuser") {
        return Ok(RunAs::Runuser(runuser));
    }
    if let Some(su) = find_program("su") {
        return Ok(RunAs::Su(su));
    }
    Err(ClusterError::NoRunAs)
}

/// Whether the effective user id is 0, asked of `id -u` (no libc, no `unsafe`).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|output| output.status.success() && output.stdout.trim_ascii() == b"0")
}

/// Looks a program up in `PATH`, then in the sbin/bin directories root's PATH usually has.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Creates `<tmp>/pgward-<16 random hex digits>` with mode 0700. `create` (not
/// `create_dir_all`) fails if the name exists, so nobody can pre-plant it in a shared `/tmp`.
fn create_private_dir() -> Result<PathBuf, ClusterError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|err| ClusterError::Io {
        action: "get random bytes for the cluster directory name".to_owned(),
        source: io::Error::other(err.to_string()),
    })?;
    let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let dir = std::env::temp_dir().join(format!("pgward-{suffix}"));
    mkdir_private(&dir)?;
    Ok(dir)
}

/// Creates one directory with mode 0700.
fn mkdir_private(dir: &Path) -> Result<(), ClusterError> {
    DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .map_err(|source| ClusterError::Io {
            action: format!("create directory `{}`", dir.display()),
            source,
        })
}

/// Asks the OS for a free port on 127.0.0.1 by binding port 0, then releases it.
fn free_port() -> Result<u16, ClusterError> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|source| ClusterError::Io {
            action: "bind a tcp port on 127.0.0.1".to_owned(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ClusterError::Io {
        action: "read the bound tcp port".to_owned(),
        source,
    })?;
    Ok(addr.port())
}

/// Turns a failed command's output into an error carrying its last lines.
fn check_output(command: &str, output: &Output) -> Result<(), ClusterError> {
    if output.status.success() {
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Err(ClusterError::CommandFailed {
        command: command.to_owned(),
        status: output.status.to_string(),
        tail: tail(&text, TAIL_LINES),
    })
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    let joined = all.get(start..).unwrap_or_default().join("\n");
    if joined.is_empty() {
        "(no output)".to_owned()
    } else {
        joined
    }
}

/// Reads a whole text file.
fn read_file(path: &Path) -> Result<String, ClusterError> {
    fs::read_to_string(path).map_err(|source| ClusterError::Io {
        action: format!("read `{}`", path.display()),
        source,
    })
}

/// Writes a whole text file.
fn write_file(path: &Path, contents: &str) -> Result<(), ClusterError> {
    fs::write(path, contents).map_err(|source| ClusterError::Io {
        action: format!("write `{}`", path.display()),
        source,
    })
}

/// The length of a file, or 0 when it does not exist yet.
fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map(|meta| meta.len()).unwrap_or(0)
}

/// The text of a file from byte `offset` on; empty when unreadable (used for diagnostics).
fn read_from(path: &Path, offset: u64) -> String {
    let bytes = fs::read(path).unwrap_or_default();
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    String::from_utf8_lossy(bytes.get(start..).unwrap_or_default()).into_owned()
}

/// Quotes one argument for `/bin/sh -c` (only used on the `su` fallback path).
fn shell_quote(arg: impl AsRef<OsStr>) -> Result<String, ClusterError> {
    let arg = arg.as_ref();
    let text = arg.to_str().ok_or_else(|| ClusterError::NonUtf8Path {
        path: arg.to_string_lossy().into_owned(),
    })?;
    Ok(format!("'{}'", text.replace('\'', r"'\''")))
}

/// Percent-encodes everything outside RFC 3986's unreserved set, which is always safe in
/// the user, password and path parts of a URL.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_postgres::error::SqlState;

    const SCHEMA_SQL: &str = include_str!("../../demo/schema.sql");
    const READONLY_ROLE_SQL: &str = include_str!("../../migrations/001_readonly_role.sql");

    async fn connect(url: &str) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(url, NoTls)
            .await
            .unwrap_or_else(|err| panic!("connect: {}", describe_pg_error(&err)));
        tokio::spawn(connection);
        client
    }

    async fn select_one(url: &str) -> i32 {
        let client = connect(url).await;
        let row = client.query_one("SELECT 1", &[]).await.expect("select 1");
        row.get(0)
    }

    /// The SQLSTATE of a statement that must fail.
    async fn failing_code(client: &tokio_postgres::Client, sql: &str) -> SqlState {
        let err = client
            .batch_execute(sql)
            .await
            .expect_err(&format!("`{sql}` should have failed"));
        err.code()
            .unwrap_or_else(|| panic!("`{sql}` failed without a sqlstate: {err}"))
            .clone()
    }

    #[tokio::test]
    async fn starts_restarts_and_cleans_up() {
        let cluster = TempCluster::start().unwrap_or_else(|err| panic!("{err}"));
        let root = cluster.root.clone();
        assert!(root.is_dir());
        assert_eq!(cluster.host(), "127.0.0.1");
        assert_ne!(cluster.port(), 0);
        assert_eq!(select_one(&cluster.superuser_url()).await, 1);

        let port = cluster.port();
        cluster.restart().unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(cluster.port(), port);
        assert_eq!(select_one(&cluster.superuser_url()).await, 1);

        cluster.stop().unwrap_or_else(|err| panic!("{err}"));
        assert!(
            tokio_postgres::connect(&cluster.superuser_url(), NoTls)
                .await
                .is_err()
        );
        cluster.restart().unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(select_one(&cluster.superuser_url()).await, 1);

        drop(cluster);
        assert!(
            !root.exists(),
            "cluster directory {} survived drop",
            root.display()
        );
    }

    #[tokio::test]
    async fn only_loopback_with_the_configured_settings() {
        let cluster = TempCluster::start().unwrap_or_else(|err| panic!("{err}"));
        let client = connect(&cluster.superuser_url()).await;
        for (name, expected) in [
            ("listen_addresses", "127.0.0.1"),
            ("fsync", "off"),
            ("synchronous_commit", "off"),
            ("full_page_writes", "off"),
            ("max_connections", "100"),
            ("shared_buffers", "32MB"),
            ("server_encoding", "UTF8"),
            ("lc_collate", "C"),
        ] {
            let row = client
                .query_one("SELECT current_setting($1)", &[&name])
                .await
                .expect("current_setting");
            assert_eq!(row.get::<_, String>(0), expected, "setting {name}");
        }
        let rules = client
            .query(
                "SELECT type, coalesce(address, '') FROM pg_hba_file_rules ORDER BY line_number",
                &[],
            )
            .await
            .expect("pg_hba_file_rules");
        let rules: Vec<(String, String)> = rules.iter().map(|r| (r.get(0), r.get(1))).collect();
        assert_eq!(
            rules,
            [
                ("local".to_owned(), String::new()),
                ("host".to_owned(), "127.0.0.1".to_owned())
            ]
        );
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &fs::metadata(&cluster.root).expect("metadata").permissions(),
        );
        assert_eq!(mode & 0o777, 0o700);
    }

    #[tokio::test]
    async fn demo_data_and_reader_role_hold() {
        let cluster = TempCluster::start().unwrap_or_else(|err| panic!("{err}"));
        let su = cluster.superuser_url();
        run_sql(&su, SCHEMA_SQL)
            .await
            .unwrap_or_else(|err| panic!("{err}"));
        run_sql(&su, READONLY_ROLE_SQL)
            .await
            .unwrap_or_else(|err| panic!("{err}"));
        // Re-applying the recipe converges instead of failing.
        run_sql(&su, READONLY_ROLE_SQL)
            .await
            .unwrap_or_else(|err| panic!("{err}"));
        run_sql(
            &su,
            "ALTER ROLE pgward_reader PASSWORD 'reader-test-password'",
        )
        .await
        .unwrap_or_else(|err| panic!("{err}"));

        // The data set has the promised shape.
        let admin = connect(&su).await;
        for (table, rows) in [
            ("public.customers", 200_i64),
            ("public.products", 50),
            ("public.orders", 2000),
            ("public.support_tickets", 100),
            ("public.staff_passwords", 3),
            ("internal.api_keys", 3),
            ("internal.employees_salaries", 4),
        ] {
            let row = admin
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                .await
                .expect("count");
            assert_eq!(row.get::<_, i64>(0), rows, "rows in {table}");
        }
        let statuses = admin
            .query_one("SELECT count(DISTINCT status) FROM orders", &[])
            .await
            .expect("statuses");
        assert_eq!(statuses.get::<_, i64>(0), 4);
        let injected = admin
            .query(
                "SELECT id FROM support_tickets WHERE body LIKE '%IGNORE ALL PREVIOUS INSTRUCTIONS%'",
                &[],
            )
            .await
            .expect("injection");
        let injected: Vec<i64> = injected.iter().map(|r| r.get(0)).collect();
        assert_eq!(injected, [42]);

        // Deterministic: a second load into another database produces identical data.
        run_sql(&su, "CREATE DATABASE demo_again")
            .await
            .unwrap_or_else(|err| panic!("{err}"));
        let again_url = cluster.url("postgres", None, "demo_again");
        run_sql(&again_url, SCHEMA_SQL)
            .await
            .unwrap_or_else(|err| panic!("{err}"));
        let fingerprint = "SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM ( \
               SELECT c::text AS t FROM customers c UNION ALL SELECT p::text FROM products p \
               UNION ALL SELECT o::text FROM orders o UNION ALL SELECT s::text FROM support_tickets s \
             ) AS x(t)";
        let first: String = admin.query_one(fingerprint, &[]).await.expect("md5").get(0);
        let again = connect(&again_url).await;
        let second: String = again.query_one(fingerprint, &[]).await.expect("md5").get(0);
        assert_eq!(first, second);

        // The reader role: attributes.
        let reader =
            connect(&cluster.url("pgward_reader", Some("reader-test-password"), "postgres")).await;
        let attrs = reader
            .query_one(
                "SELECT rolsuper, rolbypassrls, rolcreatedb, rolcreaterole, rolreplication, \
                        rolinherit, current_setting('default_transaction_read_only') \
                 FROM pg_roles WHERE rolname = current_user",
                &[],
            )
            .await
            .expect("role attributes");
        let flags: Vec<bool> = (0..6).map(|i| attrs.get(i)).collect();
        assert_eq!(flags, [false; 6]);
        assert_eq!(attrs.get::<_, String>(6), "on");

        // Granted columns read fine.
        let row = reader
            .query_one("SELECT count(id), count(email) FROM customers", &[])
            .await
            .expect("granted columns");
        assert_eq!(row.get::<_, i64>(0), 200);
        for sql in [
            "SELECT id, sku, name, category, price, in_stock, tags, attributes, thumbnail FROM products",
            "SELECT * FROM orders",
            "SELECT * FROM support_tickets WHERE id = 42",
        ] {
            reader
                .query(sql, &[])
                .await
                .unwrap_or_else(|err| panic!("`{sql}`: {}", describe_pg_error(&err)));
        }

        // Everything else is refused by PostgreSQL itself.
        for sql in [
            "SELECT ssn FROM customers",
            "SELECT id FROM customers WHERE ssn LIKE '9%'",
            "SELECT * FROM customers",
            "SELECT * FROM staff_passwords",
            "SELECT * FROM internal.api_keys",
            "SELECT * FROM internal.employees_salaries",
        ] {
            assert_eq!(
                failing_code(&reader, sql).await,
                SqlState::INSUFFICIENT_PRIVILEGE,
                "{sql}"
            );
        }

        // Writes: refused by the read-only default, and by the grants once that is lifted.
        let insert = "INSERT INTO orders (id, customer_id, product_id, quantity, total, status, ordered_at) \
                      VALUES (9999, 1, 1, 1, 1.00, 'pending', now())";
        assert_eq!(
            failing_code(&reader, insert).await,
            SqlState::READ_ONLY_SQL_TRANSACTION
        );
        reader
            .batch_execute("SET default_transaction_read_only = off")
            .await
            .expect("a session may lift its own default");
        for sql in [
            insert,
            "UPDATE customers SET full_name = 'x' WHERE id = 1",
            "DELETE FROM support_tickets WHERE id = 42",
            "TRUNCATE orders",
            "CREATE TABLE public.planted (x int)",
            "CREATE SCHEMA planted",
        ] {
            assert_eq!(
                failing_code(&reader, sql).await,
                SqlState::INSUFFICIENT_PRIVILEGE,
                "{sql}"
            );
        }
    }

    #[test]
    fn urls_are_percent_encoded() {
        let cluster = TempCluster {
            root: PathBuf::new(),
            data_dir: PathBuf::new(),
            socket_dir: PathBuf::new(),
            log_file: PathBuf::new(),
            bindir: PathBuf::new(),
            port: 5433,
            run_as: RunAs::CurrentUser,
        };
        assert_eq!(
            cluster.url("pgward_reader", Some("p@ss:w/rd %"), "my db"),
            "postgres://pgward_reader:p%40ss%3Aw%2Frd%20%25@127.0.0.1:5433/my%20db"
        );
        assert_eq!(cluster.url("u", None, "d"), "postgres://u@127.0.0.1:5433/d");
        assert_eq!(
            cluster.superuser_url(),
            "postgres://postgres@127.0.0.1:5433/postgres"
        );
        // Nothing to stop or delete: keep Drop away from the empty paths.
        std::mem::forget(cluster);
    }

    #[test]
    fn bindir_env_must_point_at_server_binaries() {
        let err = find_bindir_from(
            Some(OsString::from("/nonexistent/pgward/bin")),
            || None,
            Path::new("/nonexistent"),
        )
        .expect_err("bad env dir");
        let message = err.to_string();
        assert!(message.contains("PGWARD_PG_BINDIR"), "{message}");
        assert!(message.contains("/nonexistent/pgward/bin"), "{message}");
    }

    #[test]
    fn missing_binaries_message_is_actionable() {
        let err = ClusterError::NoBinaries {
            searched: "x".to_owned(),
        };
        let message = err.to_string();
        assert!(message.contains("apt-get install postgresql"), "{message}");
        assert!(message.contains("PGWARD_PG_BINDIR"), "{message}");
    }

    #[test]
    fn finds_the_newest_versioned_bindir() {
        let dir = tempfile::tempdir().expect("tempdir");
        for version in ["9.6", "15", "16"] {
            let bin = dir.path().join(version).join("bin");
            fs::create_dir_all(&bin).expect("mkdir");
            if version != "16" {
                for name in REQUIRED_BINARIES {
                    fs::write(bin.join(name), "").expect("touch");
                }
            }
        }
        fs::create_dir_all(dir.path().join("not-a-version").join("bin")).expect("mkdir");
        // 16 is newest but incomplete, 9.6 is older: 15 wins; a useless pg_config is skipped.
        let found = find_bindir_from(None, || Some(dir.path().join("16").join("bin")), dir.path())
            .expect("found");
        assert_eq!(found, dir.path().join("15").join("bin"));

        let err =
            find_bindir_from(None, || None, &dir.path().join("16")).expect_err("nothing usable");
        let message = err.to_string();
        assert!(message.contains("apt-get install postgresql"), "{message}");
        assert!(message.contains("pg_config --bindir"), "{message}");
    }

    #[test]
    fn start_failure_carries_the_server_log() {
        let cluster = TempCluster::start().unwrap_or_else(|err| panic!("{err}"));
        cluster.stop().unwrap_or_else(|err| panic!("{err}"));
        let conf = cluster.data_dir.join("postgresql.conf");
        let mut text = fs::read_to_string(&conf).expect("read conf");
        text.push_str("shared_buffers = 'not-a-size'\n");
        fs::write(&conf, text).expect("write conf");
        let message = cluster.restart().expect_err("bad config").to_string();
        assert!(message.contains("did not start"), "{message}");
        assert!(message.contains("shared_buffers"), "{message}");
    }

    #[tokio::test]
    async fn su_fallback_works_when_root() {
        let RunAs::Runuser(_) = detect_run_as().unwrap_or_else(|err| panic!("{err}")) else {
            return; // not root: nothing to fall back from
        };
        let su = find_program("su").expect("su");
        let cluster = TempCluster::start_as(RunAs::Su(su)).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(select_one(&cluster.superuser_url()).await, 1);
        cluster.restart().unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(select_one(&cluster.superuser_url()).await, 1);
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("", 2), "(no output)");
        assert_eq!(shell_quote("it's").expect("utf-8"), r"'it'\''s'");
    }
}
