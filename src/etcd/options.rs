//! Where etcd is and how to reach it: what the connection flags and environment shared by
//! `reconfig` (every mode) and `etcd-util` say ([`Connection`]), resolved into
//! [`ConnectOptions`].
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

use super::secret::Secret;
use super::srv::{Dns, SrvError};
use super::tls::{ClientTls, TlsError, TlsFiles};

/// What a program was told about where etcd is and how to reach it (the flags and the
/// environment they read, parsed by `cli`): resolved, with `ETCD_ENDPOINTS` and SRV
/// records, into [`ConnectOptions`].
#[derive(Debug, Clone)]
pub struct Connection {
    /// `--host`.
    pub host: Option<String>,
    /// `--port`.
    pub port: Option<u16>,
    /// `--endpoints`.
    pub endpoints: Vec<String>,
    /// `--srv`: a DNS SRV record naming the endpoints.
    pub srv: Option<String>,
    /// `--srv-domain`: a domain with etcd's SRV records.
    pub srv_domain: Option<String>,
    /// `--dns-server`: the DNS server of the SRV look-ups (the system's when none).
    pub dns_server: Option<SocketAddr>,
    /// `--connect-timeout`: for connecting, and for each request.
    pub connect_timeout: Duration,
    /// `--keepalive`: HTTP/2 pings while a watch is open (zero: none).
    pub keepalive: Duration,
    /// `--watch-check`: silence after which a watch stream is checked (zero: never).
    pub watch_check: Duration,
    /// `--ssl`.
    pub ssl: bool,
    /// `--ssl_cafile`.
    pub ssl_cafile: Option<PathBuf>,
    /// `--ssl_cert`.
    pub ssl_cert: Option<PathBuf>,
    /// `--ssl_key`.
    pub ssl_key: Option<PathBuf>,
    /// `--ssl_passphrase`.
    pub ssl_passphrase: Option<Secret>,
    /// `--username` / `ETCD_USERNAME`.
    pub username: Option<String>,
    /// `--password` / `ETCD_PASSWORD`.
    pub password: Option<Secret>,
}

impl Default for Connection {
    /// Local etcd, the flags' defaults.
    fn default() -> Connection {
        Connection {
            host: None,
            port: None,
            endpoints: Vec::new(),
            srv: None,
            srv_domain: None,
            dns_server: None,
            connect_timeout: Duration::from_secs(5),
            keepalive: Duration::from_secs(360),
            watch_check: Duration::from_secs(5),
            ssl: false,
            ssl_cafile: None,
            ssl_cert: None,
            ssl_key: None,
            ssl_passphrase: None,
            username: None,
            password: None,
        }
    }
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

impl Connection {
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

    fn args() -> Connection {
        Connection::default()
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
}
