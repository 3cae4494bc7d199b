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
use tokio_postgres::config::{Host, SslMode, SslNegotiation};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{CancelToken, Client, Config, NoTls, Socket};
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
                let mut config = crate::tls::client_config(tls.ca_file.as_deref())
                    .map_err(|e| format!("{}: {e}", keys.ca_file))?;
                // PostgreSQL's ALPN name: required by PostgreSQL 17 for direct TLS, ignored by
                // older servers.
                config.alpn_protocols = vec![b"postgresql".to_vec()];
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
            Self::Plain => connect_spawned(pg, NoTls, ended).await,
            Self::Verified(tls) => connect_spawned(pg, tls.clone(), ended).await,
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

/// Connects with `tls` and runs the connection's I/O on a task of its own.
async fn connect_spawned<T>(
    pg: &Config,
    tls: T,
    ended: fn(&tokio_postgres::Error),
) -> Result<Client, tokio_postgres::Error>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
{
    let (client, connection) = pg.connect(tls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            ended(&e);
        }
    });
    Ok(client)
}

/// The problem with `url`'s TLS settings, if there is one, for config validation (which
/// reports every problem at once). A URL that does not parse is left to connecting, which
/// reports it without its text, unless it names one of libpq's sslmodes.
pub fn check_url(url: &str, tls: &TlsSettings, keys: &TlsKeys) -> Option<String> {
    match Config::from_str(url) {
        Ok(pg) => decide(&pg, tls, keys).err(),
        Err(_) => libpq_sslmode(url, keys),
    }
}

/// What to write instead when `url` uses an sslmode of libpq's that the driver does not take
/// (it takes `disable`, `prefer` and `require`). The message quotes only the mode.
pub fn libpq_sslmode(url: &str, keys: &TlsKeys) -> Option<String> {
    let key = keys.mode;
    ["verify-full", "verify-ca", "allow"]
        .into_iter()
        .find(|mode| url.contains(&format!("sslmode={mode}")))
        .map(|mode| match mode {
            "allow" => format!(
                "the URL says sslmode=allow, which pgward does not take: it never switches between plain text and TLS; set {key} to \"verify-full\" or \"off\" and leave sslmode out"
            ),
            _ => format!(
                "the URL says sslmode={mode}, which pgward spells {key} = \"verify-full\" (it always verifies the server's name too); leave sslmode out of the URL"
            ),
        })
}

/// The mode [`Transport::choose`] takes for `pg`, or why there is none (config validation
/// asks too, so that every problem is reported at once). The CA file is not read here.
pub fn decide(pg: &Config, tls: &TlsSettings, keys: &TlsKeys) -> Result<DatabaseTls, String> {
    let TlsKeys {
        mode: key,
        ca_file: ca_key,
    } = keys;
    let has_ca = tls.ca_file.is_some();
    // Direct TLS negotiation (PostgreSQL 17) is TLS from the first byte: it asks for TLS as
    // `sslmode=require` does.
    let direct = pg.get_ssl_negotiation() == SslNegotiation::Direct;
    let url_asks = match pg.get_ssl_mode() {
        SslMode::Disable => Some(false),
        SslMode::Require => Some(true),
        _ if direct => Some(true),
        _ => None,
    };
    let asks_tls = if direct {
        "the URL says sslnegotiation=direct"
    } else {
        "the URL says sslmode=require"
    };
    let (mode, why) = match (tls.mode, url_asks) {
        (Some(DatabaseTls::VerifyFull), Some(false)) => {
            return Err(format!(
                "{key} is \"verify-full\" but the URL says sslmode=disable"
            ));
        }
        (Some(DatabaseTls::Off), Some(true)) => {
            return Err(format!(
                "{asks_tls} but {key} is \"off\"; set {key} to \"verify-full\""
            ));
        }
        (Some(DatabaseTls::VerifyFull), _) => {
            (DatabaseTls::VerifyFull, format!("{key} is \"verify-full\""))
        }
        (Some(DatabaseTls::Off), _) => (DatabaseTls::Off, String::new()),
        (None, Some(false)) if has_ca => {
            return Err(format!("the URL says sslmode=disable but {ca_key} is set"));
        }
        (None, Some(true)) => (DatabaseTls::VerifyFull, asks_tls.to_string()),
        (None, _) if has_ca => (DatabaseTls::VerifyFull, format!("{ca_key} is set")),
        (None, _) => match remote_host(pg) {
            None => (DatabaseTls::Off, String::new()),
            Some(Shown(Some(host))) => {
                return Err(format!(
                    "the server `{host}` is not on this machine and {key} is not set: set {key} to \"verify-full\" (with {ca_key} for a private CA), or to \"off\" for a network you trust"
                ));
            }
            // Not echoed: it may hold part of a password (the URL's user part ends at its
            // first `@`).
            Some(Shown(None)) => {
                return Err(format!(
                    "a host of the URL is not a plain host name or address (an `@` in the password must be written %40), and it is not on this machine with {key} unset"
                ));
            }
        },
    };
    match mode {
        DatabaseTls::Off if has_ca => Err(format!("{ca_key} is set but {key} is \"off\"")),
        DatabaseTls::VerifyFull if pg.get_hosts().iter().any(|h| matches!(h, Host::Unix(_))) => {
            Err(format!(
                "{why}, but a host is a Unix socket, which is never encrypted; connect over TCP or set {key} to \"off\""
            ))
        }
        DatabaseTls::VerifyFull if pg.get_hosts().is_empty() => Err(format!(
            "{why}, but the URL names no host to verify the certificate against (only hostaddr)"
        )),
        mode => Ok(mode),
    }
}

/// A host as a message may show it: `None` when it is not a plain host name or address.
struct Shown(Option<String>);

impl Shown {
    fn of(host: &str) -> Self {
        let plain = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_%".contains(&b));
        Shown(plain.then(|| host.to_string()))
    }
}

/// The first host of `pg` that is not on this machine. With `hostaddr`, the addresses are
/// what is connected to; otherwise the hosts, of which only `localhost`, loopback addresses
/// and Unix sockets are local.
fn remote_host(pg: &Config) -> Option<Shown> {
    let addrs = pg.get_hostaddrs();
    if !addrs.is_empty() {
        return addrs
            .iter()
            .find(|a| !a.is_loopback())
            .map(|a| Shown(Some(a.to_string())));
    }
    pg.get_hosts().iter().find_map(|h| match h {
        Host::Tcp(name) => (!is_local_name(name)).then(|| Shown::of(name)),
        Host::Unix(_) => None,
    })
}

/// `localhost` as the system resolver names it (from `/etc/hosts` on any usual system), or a
/// loopback address.
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
                "postgres://u@db.internal/db?sslmode=disable",
                None,
                Some("/etc/ca.pem")
            ),
            Err("the URL says sslmode=disable but database.tls_ca_file is set".into())
        );
        assert_eq!(
            choose(
                "hostaddr=10.0.0.1 user=u",
                Some(DatabaseTls::VerifyFull),
                None
            ),
            Err("database.tls is \"verify-full\", but the URL names no host to verify the certificate against (only hostaddr)".into())
        );
        assert_eq!(
            choose("host=/var/run/postgresql user=u sslmode=require", None, None),
            Err("the URL says sslmode=require, but a host is a Unix socket, which is never encrypted; connect over TCP or set database.tls to \"off\"".into())
        );
        assert_eq!(
            choose(
                "host=/var/run/postgresql user=u",
                Some(DatabaseTls::VerifyFull),
                None
            ),
            Err("database.tls is \"verify-full\", but a host is a Unix socket, which is never encrypted; connect over TCP or set database.tls to \"off\"".into())
        );
    }

    #[test]
    fn hosts_that_only_look_local_are_remote() {
        for url in [
            "postgres://u@localhost.evil.com/db",
            "postgres://u@127.1/db",
            "postgres://u@[::ffff:127.0.0.1]/db",
            "postgres://u@localhost,db.internal/db",
            "host=/tmp hostaddr=10.0.0.1 user=u",
        ] {
            assert!(
                choose(url, None, None).is_err_and(|e| e.contains("is not on this machine")),
                "{url}: {:?}",
                choose(url, None, None)
            );
        }
    }

    #[test]
    fn a_host_that_may_hold_a_password_is_not_shown() {
        // The driver ends the user part at the first `@`: the rest of the password becomes
        // the host.
        let err = choose("postgres://u:P@ssw0rd-tail@db.internal/db", None, None).unwrap_err();
        assert_eq!(
            err,
            "a host of the URL is not a plain host name or address (an `@` in the password must be written %40), and it is not on this machine with database.tls unset"
        );
        assert!(!err.contains("ssw0rd"));
    }

    #[test]
    fn direct_negotiation_asks_for_tls() {
        assert_eq!(
            choose(
                "postgres://u@127.0.0.1/db?sslnegotiation=direct&sslmode=require",
                None,
                None
            ),
            Ok("Verified Require".into())
        );
        // Direct negotiation with the driver's default sslmode (prefer): TLS, verified.
        assert_eq!(
            choose(
                "postgres://u@127.0.0.1/db?sslnegotiation=direct",
                None,
                None
            ),
            Ok("Verified Require".into())
        );
        assert_eq!(
            choose(
                "postgres://u@db.internal/db?sslnegotiation=direct&sslmode=require",
                Some(DatabaseTls::Off),
                None
            ),
            Err("the URL says sslnegotiation=direct but database.tls is \"off\"; set database.tls to \"verify-full\"".into())
        );
    }

    #[test]
    fn libpq_sslmodes_point_to_the_setting() {
        assert_eq!(
            check_url(
                "postgres://u:secret@db.internal/db?sslmode=verify-full",
                &TlsSettings::default(),
                &DATABASE_KEYS
            ),
            Some("the URL says sslmode=verify-full, which pgward spells database.tls = \"verify-full\" (it always verifies the server's name too); leave sslmode out of the URL".into())
        );
        assert!(
            check_url(
                "postgres://u@db.internal/db?sslmode=allow",
                &TlsSettings::default(),
                &FLAG_KEYS
            )
            .is_some_and(|m| m.starts_with("the URL says sslmode=allow") && m.contains("--tls"))
        );
        // Any other unparsable URL is left to connecting, which reports it without its text.
        assert_eq!(
            check_url(
                "postgres://u@db:notaport/db",
                &TlsSettings::default(),
                &DATABASE_KEYS
            ),
            None
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
