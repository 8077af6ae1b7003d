//! Where etcd is and how to reach it: the connection flags and environment shared by
//! `reconfig` (every mode) and `etcd-util`, resolved into [`ConnectOptions`].
//!
//! Where the endpoints come from, first match wins (flag > environment > default):
//! `--endpoints`, then `--srv RECORD`, then `--srv-domain DOMAIN` (those three exclude each
//! other), then `--host`/`--port`, then `ETCD_ENDPOINTS`, then `127.0.0.1:2379`.
//!
//! TLS is on when `--ssl`, `--ssl_cafile` or `--ssl_cert` is given, an endpoint is
//! `https://`, or discovery found `_etcd-client-ssl` records. Then `host:port` endpoints
//! become `https://`, and an explicit `http://` endpoint is an error rather than a silent
//! downgrade. Servers are always verified: against `--ssl_cafile`, else the system roots.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::secret::Secret;
use super::srv::{self, Dns, SrvError};
use super::tls::{ClientTls, TlsError, TlsFiles};
use crate::config::parse_duration;

/// The environment variables of the connection, for the manual pages of every program that
/// connects (flags beat them).
pub const CONNECT_ENVIRONMENT: &[(&str, &str)] = &[
    (
        "ETCD_ENDPOINTS",
        "Comma-separated etcd endpoints, used when no --endpoints, --srv, --srv-domain, \
         --host or --port is given.",
    ),
    (
        "ETCD_USERNAME",
        "etcd user, as --username; auth is off when unset or empty.",
    ),
    (
        "ETCD_PASSWORD",
        "etcd password, as --password (which shows up in ps; this does not).",
    ),
    (
        "RECONFIG_DNS_SERVER",
        "DNS server for the SRV look-ups, as --dns-server.",
    ),
];

/// Connection flags, flattened into every program that talks to etcd. `--ssl` has no
/// short flag here because `reconfig dispense` uses `-s` for `--signal`; the programs that
/// want reconfig.rb's `-s` add it with `mut_arg`.
#[derive(Debug, Clone, Default, Args)]
pub struct ConnectArgs {
    /// etcd host (used with --port when no other endpoint source is given) [default: 127.0.0.1]
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// etcd client port (etcd v3 no longer serves 4001) [default: 2379]
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// Comma-separated etcd endpoints, e.g. https://10.0.0.1:2379,https://10.0.0.2:2379
    /// [env: ETCD_ENDPOINTS, used when no endpoint flag is given]
    #[arg(long, value_name = "URL,...", value_delimiter = ',')]
    pub endpoints: Vec<String>,
    /// Find etcd through this DNS SRV record (all targets, by priority and weight),
    /// e.g. _etcd-client._tcp.example.com
    #[arg(long, value_name = "RECORD", conflicts_with_all = ["endpoints", "srv_domain"])]
    pub srv: Option<String>,
    /// Find etcd through etcd's SRV records of DOMAIN: _etcd-client-ssl._tcp.DOMAIN (TLS),
    /// else _etcd-client._tcp.DOMAIN
    #[arg(long, value_name = "DOMAIN", conflicts_with = "endpoints")]
    pub srv_domain: Option<String>,
    /// DNS server for the SRV look-ups [default: the system's resolver]
    #[arg(
        long,
        env = "RECONFIG_DNS_SERVER",
        value_name = "IP:PORT",
        value_parser = srv::parse_dns_server
    )]
    pub dns_server: Option<SocketAddr>,
    /// Give up connecting, and on each request (then the next endpoint is tried), after
    /// this long (seconds or 500ms/5s/1m)
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// Also send HTTP/2 pings this often while a watch is open (--watch-check already
    /// notices a silent server); etcd grpc-proxy closes connections pinged more often than
    /// every 5 minutes, etcd itself allows every 5 s; 0: never
    #[arg(long, value_name = "DURATION", default_value = "6m", value_parser = parse_duration)]
    pub keepalive: Duration,
    /// Check a watch stream that brought nothing for this long with a read on its
    /// connection; no answer within --connect-timeout and the watch moves to the next
    /// endpoint; 0: never
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub watch_check: Duration,
    /// Talk to etcd over TLS (host:port endpoints become https://)
    #[arg(long)]
    pub ssl: bool,
    /// CA certificate(s) (PEM) to verify etcd with, instead of the system's roots; implies --ssl
    #[arg(long = "ssl_cafile", visible_alias = "ssl-cafile", value_name = "FILE")]
    pub ssl_cafile: Option<PathBuf>,
    /// Client certificate (PEM) for etcd's --client-cert-auth; implies --ssl, needs --ssl_key
    #[arg(
        long = "ssl_cert",
        visible_alias = "ssl-cert",
        value_name = "FILE",
        requires = "ssl_key"
    )]
    pub ssl_cert: Option<PathBuf>,
    /// Private key (PEM: PKCS#8, encrypted PKCS#8, RSA or EC) of --ssl_cert
    #[arg(
        long = "ssl_key",
        visible_alias = "ssl-key",
        value_name = "FILE",
        requires = "ssl_cert"
    )]
    pub ssl_key: Option<PathBuf>,
    /// Passphrase of an encrypted PKCS#8 --ssl_key
    #[arg(
        long = "ssl_passphrase",
        visible_alias = "ssl-passphrase",
        value_name = "PASSPHRASE",
        value_parser = Secret::parse
    )]
    pub ssl_passphrase: Option<Secret>,
    /// etcd user name (auth is off when unset or empty)
    #[arg(
        long,
        env = "ETCD_USERNAME",
        value_name = "NAME",
        hide_env_values = true
    )]
    pub username: Option<String>,
    /// etcd password (prefer the environment: flags show up in `ps`)
    #[arg(
        long,
        env = "ETCD_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true,
        value_parser = Secret::parse
    )]
    pub password: Option<Secret>,
}

/// Everything needed to open the one etcd connection of a process.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Endpoint URLs (all `http://` or all `https://`), tried in turn.
    pub endpoints: Vec<String>,
    /// Limit for establishing the connection (and the first request of `--onetime`).
    pub connect_timeout: Duration,
    /// HTTP/2 ping interval while a stream is open (zero: no pings).
    pub keepalive: Duration,
    /// Silence after which a watch stream is checked (zero: never).
    pub watch_check: Duration,
    /// Whether the endpoints are in order of preference (DNS SRV), rather than a list
    /// whose start is any.
    pub in_order: bool,
    /// etcd user and password when auth is on.
    pub user: Option<(String, Secret)>,
    /// The TLS configuration when the endpoints are `https://`.
    pub tls: Option<ClientTls>,
}

/// Why the connection options cannot be worked out; each message names the flag, file,
/// record or endpoint.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A certificate or key file is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// SRV discovery failed.
    #[error(transparent)]
    Srv(#[from] SrvError),
    /// One connection cannot mix plain and TLS endpoints.
    #[error(
        "endpoint {0} is plain http:// but TLS is on (--ssl, --ssl_cafile, --ssl_cert, an \
         https:// endpoint or _etcd-client-ssl records); use https:// or host:port"
    )]
    PlainWithTls(String),
}

impl ConnectError {
    /// Whether trying again later may help (a DNS server that did not answer).
    pub fn is_transient(&self) -> bool {
        matches!(self, ConnectError::Srv(e) if e.is_transient())
    }
}

/// Where the endpoints come from, after precedence.
#[derive(Debug, PartialEq, Eq)]
enum Source {
    /// `--endpoints`, `--host`/`--port`, `ETCD_ENDPOINTS` or the default.
    Listed(Vec<String>),
    /// `--srv RECORD`.
    Srv(String),
    /// `--srv-domain DOMAIN`.
    SrvDomain(String),
}

impl ConnectArgs {
    /// Resolves flags and environment (and SRV records) into connection options.
    pub async fn resolve(&self) -> Result<ConnectOptions, ConnectError> {
        let env = std::env::var("ETCD_ENDPOINTS").ok();
        self.resolve_with_env(env.as_deref()).await
    }

    /// [`Self::resolve`] with the value of `ETCD_ENDPOINTS` passed in.
    pub async fn resolve_with_env(
        &self,
        env_endpoints: Option<&str>,
    ) -> Result<ConnectOptions, ConnectError> {
        let source = self.source(env_endpoints);
        let in_order = !matches!(source, Source::Listed(_));
        let (addresses, discovered_tls) = match source {
            Source::Listed(list) => (list, false),
            Source::Srv(record) => {
                let found = self.dns()?.record(&record).await?;
                (found.addresses, found.tls)
            }
            Source::SrvDomain(domain) => {
                let found = self.dns()?.domain(&domain).await?;
                (found.addresses, found.tls)
            }
        };
        let tls_wanted =
            discovered_tls || self.ssl || self.ssl_cafile.is_some() || self.ssl_cert.is_some();
        let (endpoints, tls_on) = with_scheme(addresses, tls_wanted)?;
        let tls = if tls_on {
            Some(ClientTls::load(&self.tls_files())?)
        } else {
            None
        };
        let user = match (&self.username, &self.password) {
            (Some(name), password) if !name.is_empty() => {
                Some((name.clone(), password.clone().unwrap_or_default()))
            }
            _ => None,
        };
        Ok(ConnectOptions {
            endpoints,
            connect_timeout: self.connect_timeout,
            keepalive: self.keepalive,
            watch_check: self.watch_check,
            in_order,
            user,
            tls,
        })
    }

    /// Applies the precedence between the endpoint flags and the environment.
    fn source(&self, env_endpoints: Option<&str>) -> Source {
        let listed = |list: Vec<&str>| -> Vec<String> {
            list.into_iter()
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(str::to_string)
                .collect()
        };
        let from_flag = listed(self.endpoints.iter().map(String::as_str).collect());
        let from_env = listed(env_endpoints.unwrap_or("").split(',').collect());
        if !from_flag.is_empty() {
            Source::Listed(from_flag)
        } else if let Some(record) = &self.srv {
            Source::Srv(record.clone())
        } else if let Some(domain) = &self.srv_domain {
            Source::SrvDomain(domain.clone())
        } else if self.host.is_some() || self.port.is_some() {
            let host = self.host.as_deref().unwrap_or("127.0.0.1");
            Source::Listed(vec![format!("{host}:{}", self.port.unwrap_or(2379))])
        } else if !from_env.is_empty() {
            Source::Listed(from_env)
        } else {
            Source::Listed(vec!["127.0.0.1:2379".into()])
        }
    }

    fn dns(&self) -> Result<Dns, SrvError> {
        Dns::new(self.dns_server, self.connect_timeout)
    }

    /// The TLS configuration of the flags, whether or not the endpoints turn TLS on: for
    /// another URL of the same etcd that is `https://` (the v2 API's).
    pub fn client_tls(&self) -> Result<ClientTls, TlsError> {
        ClientTls::load(&self.tls_files())
    }

    fn tls_files(&self) -> TlsFiles {
        TlsFiles {
            ca: self.ssl_cafile.clone(),
            client: self.ssl_cert.clone().zip(self.ssl_key.clone()),
            passphrase: self.ssl_passphrase.clone(),
        }
    }
}

/// Gives every endpoint its scheme; returns the URLs and whether TLS is on. TLS is on when
/// wanted or when any endpoint is `https://`; bare `host:port` then becomes `https://`.
fn with_scheme(
    endpoints: Vec<String>,
    tls_wanted: bool,
) -> Result<(Vec<String>, bool), ConnectError> {
    let tls = tls_wanted || endpoints.iter().any(|e| e.starts_with("https://"));
    let scheme = if tls { "https" } else { "http" };
    let urls = endpoints
        .into_iter()
        .map(|e| {
            if tls && e.starts_with("http://") {
                Err(ConnectError::PlainWithTls(e))
            } else if e.contains("://") {
                Ok(e)
            } else {
                Ok(format!("{scheme}://{e}"))
            }
        })
        .collect::<Result<_, _>>()?;
    Ok((urls, tls))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// Every variable clap reads for a flag is in the manual's list.
    #[test]
    fn the_manual_lists_every_variable() {
        #[derive(Parser)]
        struct Program {
            #[command(flatten)]
            connect: ConnectArgs,
        }
        let documented: Vec<&str> = CONNECT_ENVIRONMENT.iter().map(|(name, _)| *name).collect();
        let command = <Program as clap::CommandFactory>::command();
        let read: Vec<String> = command
            .get_arguments()
            .filter_map(|arg| arg.get_env())
            .map(|name| name.to_string_lossy().into_owned())
            .collect();
        assert!(!read.is_empty());
        for name in read {
            assert!(documented.contains(&name.as_str()), "{name} is not listed");
        }
    }

    fn args() -> ConnectArgs {
        ConnectArgs {
            connect_timeout: Duration::from_secs(5),
            ..Default::default()
        }
    }

    fn listed(list: &[&str]) -> Source {
        Source::Listed(list.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn default_is_local_2379() {
        assert_eq!(args().source(None), listed(&["127.0.0.1:2379"]));
    }

    #[test]
    fn precedence_is_endpoints_srv_host_port_environment() {
        let mut a = args();
        let env = Some("e1:1, https://e2:2");
        assert_eq!(a.source(env), listed(&["e1:1", "https://e2:2"]));
        a.port = Some(4000);
        assert_eq!(a.source(env), listed(&["127.0.0.1:4000"]));
        a.srv_domain = Some("example.com".into());
        assert_eq!(a.source(env), Source::SrvDomain("example.com".into()));
        a.srv = Some("_etcd._tcp.example.com".into());
        assert_eq!(a.source(env), Source::Srv("_etcd._tcp.example.com".into()));
        a.endpoints = vec!["a:1".into()];
        assert_eq!(a.source(env), listed(&["a:1"]));
    }

    #[test]
    fn schemes_follow_tls() {
        let list = |l: &[&str]| l.iter().map(|e| e.to_string()).collect::<Vec<_>>();
        assert_eq!(
            with_scheme(list(&["a:1", "http://b:2"]), false).unwrap(),
            (list(&["http://a:1", "http://b:2"]), false)
        );
        assert_eq!(
            with_scheme(list(&["a:1"]), true).unwrap(),
            (list(&["https://a:1"]), true)
        );
        assert_eq!(
            with_scheme(list(&["a:1", "https://b:2"]), false).unwrap(),
            (list(&["https://a:1", "https://b:2"]), true),
            "an https:// endpoint turns TLS on for all"
        );
        let mixed = with_scheme(list(&["http://a:1", "https://b:2"]), false).unwrap_err();
        assert!(
            mixed
                .to_string()
                .starts_with("endpoint http://a:1 is plain"),
            "{mixed}"
        );
    }

    #[tokio::test]
    async fn resolve_applies_scheme_and_user() {
        let mut a = args();
        a.ssl = true;
        a.endpoints = vec!["e:1".into()];
        a.username = Some("root".into());
        a.password = Some(Secret::new("hunter2".into()));
        let options = a.resolve_with_env(None).await.unwrap();
        assert_eq!(options.endpoints, ["https://e:1"]);
        assert!(options.tls.is_some());
        assert_eq!(options.user.as_ref().map(|u| u.0.as_str()), Some("root"));
        let debug = format!("{options:?} {a:?}");
        assert!(!debug.contains("hunter2"), "{debug}");

        a.username = Some(String::new());
        assert!(a.resolve_with_env(None).await.unwrap().user.is_none());
    }

    #[tokio::test]
    async fn a_missing_ca_file_is_named() {
        let mut a = args();
        a.ssl_cafile = Some("/nonexistent/ca.pem".into());
        let err = a.resolve_with_env(None).await.unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read /nonexistent/ca.pem"),
            "{err}"
        );
    }

    /// A program flattening [`ConnectArgs`] as reconfig and etcd-util do.
    #[derive(Debug, Parser)]
    #[command(mut_arg("ssl", |a| a.short('s')))]
    struct Program {
        #[command(flatten)]
        connect: ConnectArgs,
    }

    #[test]
    fn flags_keep_reconfig_rb_spellings_with_kebab_aliases() {
        let parsed = Program::try_parse_from([
            "p",
            "-s",
            "--ssl_cafile",
            "ca",
            "--ssl-cert",
            "c",
            "--ssl_key",
            "k",
            "--ssl-passphrase",
            "pw",
        ])
        .unwrap()
        .connect;
        assert!(parsed.ssl);
        assert_eq!(parsed.ssl_cafile, Some("ca".into()));
        assert_eq!(parsed.ssl_passphrase, Some(Secret::new("pw".into())));
        let lone_cert = Program::try_parse_from(["p", "--ssl_cert", "c"]).unwrap_err();
        assert_eq!(lone_cert.exit_code(), 2);
        let both = Program::try_parse_from(["p", "--srv", "r", "--endpoints", "e:1"]).unwrap_err();
        assert_eq!(both.exit_code(), 2);
    }
}
