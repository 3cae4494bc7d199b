//! TLS to PostgreSQL (`tls` and `tls_ca_file` beside a connection URL).
//!
//! pgward never half-uses TLS: a connection is either TLS with the server's certificate and
//! name verified (libpq's `verify-full`; a server that does not offer TLS is refused), or plain
//! text that never attempts TLS. libpq's `prefer`, which falls back to plain text when the
//! server (or anyone in the path) declines, is not one of them. Plain text is the operator's
//! explicit choice (`tls = "off"`) or a server on this machine.

use std::net::IpAddr;
use std::str::FromStr;

use deadpool_postgres::{Manager, ManagerConfig};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::{CancelToken, Client, Config, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::types::{DatabaseTls, TlsSettings};

/// Where an operator sets [`TlsSettings`], to name it in messages.
#[derive(Debug, Clone, Copy)]
pub struct TlsKeys {
    pub mode: &'static str,
    pub ca_file: &'static str,
}

/// `[database]`: the pool the calls run on.
pub const DATABASE_KEYS: TlsKeys = TlsKeys {
    mode: "database.tls",
    ca_file: "database.tls_ca_file",
};
/// `[audit]`: the audit table's database.
pub const AUDIT_KEYS: TlsKeys = TlsKeys {
    mode: "audit.postgres_tls",
    ca_file: "audit.postgres_tls_ca_file",
};
/// The flags of `pgward migrate` and `pgward audit verify`.
pub const FLAG_KEYS: TlsKeys = TlsKeys {
    mode: "--tls",
    ca_file: "--tls-ca-file",
};

/// How a pool's connections reach the server.
#[derive(Clone)]
pub enum Transport {
    /// Plain text.
    Plain,
    /// TLS, the server's certificate verified against the trust store and its name against
    /// the host connected to.
    Verified(MakeRustlsConnect),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Plain => "Plain",
            Self::Verified(_) => "Verified",
        })
    }
}

impl Transport {
    /// Chooses the transport for `pg` (parsed from the URL) from `tls` and `ca_file`, the
    /// settings under the config table `table`, and sets `pg`'s sslmode to match: `require`
    /// with TLS, `disable` without. The URL's own sslmode may agree but not contradict.
    ///
    /// Unset, `tls` is `verify-full` when the URL says `sslmode=require` or a CA file is
    /// given, and plain text only when every host is on this machine (a loopback address,
    /// `localhost` or a Unix socket); a remote server is refused until the operator chooses.
    pub fn choose(pg: &mut Config, tls: &TlsSettings, keys: &TlsKeys) -> Result<Self, String> {
        match decide(pg, tls, keys)? {
            DatabaseTls::Off => {
                pg.ssl_mode(SslMode::Disable);
                Ok(Self::Plain)
            }
            DatabaseTls::VerifyFull => {
                let config = crate::tls::client_config(tls.ca_file.as_deref())
                    .map_err(|e| format!("{}: {e}", keys.ca_file))?;
                pg.ssl_mode(SslMode::Require);
                Ok(Self::Verified(MakeRustlsConnect::new(config)))
            }
        }
    }
}

impl Transport {
    /// A pool manager for `pg` (as [`Transport::choose`] left it) over this transport.
    pub fn manager(&self, pg: Config, config: ManagerConfig) -> Manager {
        match self {
            Self::Plain => Manager::from_config(pg, NoTls, config),
            Self::Verified(tls) => Manager::from_config(pg, tls.clone(), config),
        }
    }

    /// One connection outside any pool; its I/O runs on a task of its own until the client
    /// is dropped, and an error that ends it is passed to `ended`.
    pub async fn connect(
        &self,
        pg: &Config,
        ended: fn(&tokio_postgres::Error),
    ) -> Result<Client, tokio_postgres::Error> {
        match self {
            Self::Plain => {
                let (client, connection) = pg.connect(NoTls).await?;
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        ended(&e);
                    }
                });
                Ok(client)
            }
            Self::Verified(tls) => {
                let (client, connection) = pg.connect(tls.clone()).await?;
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        ended(&e);
                    }
                });
                Ok(client)
            }
        }
    }

    /// Asks the server to cancel what `token`'s connection is running, over this transport.
    pub async fn cancel(&self, token: &CancelToken) -> Result<(), tokio_postgres::Error> {
        match self {
            Self::Plain => token.cancel_query(NoTls).await,
            Self::Verified(tls) => token.cancel_query(tls.clone()).await,
        }
    }
}

/// The problem with `url`'s TLS settings, if there is one, for config validation (which
/// reports every problem at once). A URL that does not parse is left to connecting, which
/// reports it without its text.
pub fn check_url(url: &str, tls: &TlsSettings, keys: &TlsKeys) -> Option<String> {
    let pg = Config::from_str(url).ok()?;
    decide(&pg, tls, keys).err()
}

/// The mode [`Transport::choose`] takes for `pg`, or why there is none (config validation
/// asks too, so that every problem is reported at once). The CA file is not read here.
pub fn decide(pg: &Config, tls: &TlsSettings, keys: &TlsKeys) -> Result<DatabaseTls, String> {
    let TlsKeys {
        mode: key,
        ca_file: ca_key,
    } = keys;
    let has_ca = tls.ca_file.is_some();
    let mode = match (tls.mode, pg.get_ssl_mode()) {
        (Some(DatabaseTls::VerifyFull), SslMode::Disable) => {
            return Err(format!(
                "{key} is \"verify-full\" but the URL says sslmode=disable"
            ));
        }
        (Some(DatabaseTls::Off), SslMode::Require) => {
            return Err(format!(
                "the URL says sslmode=require but {key} is \"off\"; set {key} to \"verify-full\""
            ));
        }
        (Some(mode), _) => mode,
        (None, SslMode::Require) => DatabaseTls::VerifyFull,
        (None, _) if has_ca => DatabaseTls::VerifyFull,
        (None, _) => match remote_host(pg) {
            None => DatabaseTls::Off,
            Some(host) => {
                return Err(format!(
                    "the server `{host}` is not on this machine and {key} is not set: set {key} to \"verify-full\" (with {ca_key} for a private CA), or to \"off\" for a network you trust"
                ));
            }
        },
    };
    match mode {
        DatabaseTls::Off if has_ca => Err(format!("{ca_key} is set but {key} is \"off\"")),
        DatabaseTls::VerifyFull if pg.get_hosts().iter().any(|h| matches!(h, Host::Unix(_))) => {
            Err(format!(
                "{key} is \"verify-full\" but a host is a Unix socket, which is never encrypted; connect over TCP or set {key} to \"off\""
            ))
        }
        mode => Ok(mode),
    }
}

/// The first host of `pg` that is not on this machine. With `hostaddr`, the addresses are
/// what is connected to; otherwise the hosts, of which only `localhost`, loopback addresses
/// and Unix sockets are local.
fn remote_host(pg: &Config) -> Option<String> {
    let addrs = pg.get_hostaddrs();
    if !addrs.is_empty() {
        return addrs
            .iter()
            .find(|a| !a.is_loopback())
            .map(ToString::to_string);
    }
    pg.get_hosts().iter().find_map(|h| match h {
        Host::Tcp(name) => (!is_local_name(name)).then(|| name.clone()),
        Host::Unix(_) => None,
    })
}

fn is_local_name(name: &str) -> bool {
    name.eq_ignore_ascii_case("localhost")
        || name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choose(url: &str, tls: Option<DatabaseTls>, ca: Option<&str>) -> Result<String, String> {
        let mut pg = Config::from_str(url).map_err(|e| e.to_string())?;
        let settings = TlsSettings {
            mode: tls,
            ca_file: ca.map(str::to_string),
        };
        let transport = Transport::choose(&mut pg, &settings, &DATABASE_KEYS)?;
        Ok(format!("{transport:?} {:?}", pg.get_ssl_mode()))
    }

    #[test]
    fn plain_text_only_to_this_machine_unless_chosen() {
        for url in [
            "postgres://u@127.0.0.1:5432/db",
            "postgres://u@localhost/db",
            "postgres://u@[::1]:5432/db",
            "host=/var/run/postgresql user=u",
            "postgres://u@db.internal/db?hostaddr=127.0.0.1",
        ] {
            assert_eq!(choose(url, None, None), Ok("Plain Disable".into()), "{url}");
        }
        for (url, host) in [
            ("postgres://u@db.internal:5432/db", "db.internal"),
            ("postgres://u@10.0.0.5/db", "10.0.0.5"),
            ("postgres://u@127.0.0.1,db.internal/db", "db.internal"),
            ("postgres://u@localhost/db?hostaddr=10.1.2.3", "10.1.2.3"),
        ] {
            assert_eq!(
                choose(url, None, None),
                Err(format!(
                    "the server `{host}` is not on this machine and database.tls is not set: set database.tls to \"verify-full\" (with database.tls_ca_file for a private CA), or to \"off\" for a network you trust"
                )),
                "{url}"
            );
        }
        // The operator's choice, and a URL that asks for plain text or lets it be chosen.
        for url in [
            "postgres://u@db.internal/db",
            "postgres://u@db.internal/db?sslmode=disable",
            "postgres://u@db.internal/db?sslmode=prefer",
        ] {
            assert_eq!(
                choose(url, Some(DatabaseTls::Off), None),
                Ok("Plain Disable".into()),
                "{url}"
            );
        }
    }

    #[test]
    fn tls_is_verified_and_required_never_preferred() {
        for (url, tls) in [
            ("postgres://u@db.internal/db", Some(DatabaseTls::VerifyFull)),
            (
                "postgres://u@db.internal/db?sslmode=prefer",
                Some(DatabaseTls::VerifyFull),
            ),
            // A URL that asks for TLS gets it verified, never less.
            ("postgres://u@db.internal/db?sslmode=require", None),
            ("postgres://u@127.0.0.1/db?sslmode=require", None),
        ] {
            assert_eq!(
                choose(url, tls, None),
                Ok("Verified Require".into()),
                "{url}"
            );
        }
    }

    #[test]
    fn contradictions_are_refused() {
        assert_eq!(
            choose(
                "postgres://u@db.internal/db?sslmode=disable",
                Some(DatabaseTls::VerifyFull),
                None
            ),
            Err("database.tls is \"verify-full\" but the URL says sslmode=disable".into())
        );
        assert_eq!(
            choose(
                "postgres://u@db.internal/db?sslmode=require",
                Some(DatabaseTls::Off),
                None
            ),
            Err("the URL says sslmode=require but database.tls is \"off\"; set database.tls to \"verify-full\"".into())
        );
        assert_eq!(
            choose(
                "postgres://u@db.internal/db",
                Some(DatabaseTls::Off),
                Some("/etc/ca.pem")
            ),
            Err("database.tls_ca_file is set but database.tls is \"off\"".into())
        );
        assert_eq!(
            choose(
                "host=/var/run/postgresql user=u",
                Some(DatabaseTls::VerifyFull),
                None
            ),
            Err("database.tls is \"verify-full\" but a host is a Unix socket, which is never encrypted; connect over TCP or set database.tls to \"off\"".into())
        );
    }

    #[test]
    fn a_ca_file_must_hold_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let empty = empty.to_string_lossy().into_owned();
        assert_eq!(
            choose("postgres://u@db.internal/db", None, Some(&empty)),
            Err(format!(
                "database.tls_ca_file: `{empty}`: no certificate found"
            ))
        );
        let missing = dir
            .path()
            .join("missing.pem")
            .to_string_lossy()
            .into_owned();
        assert!(
            choose("postgres://u@db.internal/db", None, Some(&missing))
                .is_err_and(|e| e.starts_with(&format!("database.tls_ca_file: `{missing}`: "))),
        );
    }
}
