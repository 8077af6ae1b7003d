//! etcd's v2 keys API over HTTP(S), as far as a copy needs it: one recursive read of a
//! tree with the index it was read at, and the long-poll watch for the next change under
//! it. HTTP is hyper's client (the legacy pooled client of hyper-util) with rustls from the
//! same CA and client-certificate flags as the v3 connection.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::{StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;
use tokio::time::Instant;

use crate::etcd::{ClientTls, TlsError};

/// The longest a read of a whole tree may take: a 5,000-key tree is read in milliseconds,
/// a hung server is an error rather than a copy that never ends.
const READ_LIMIT: Duration = Duration::from_secs(60);

/// How long a watch connection may stay silent before the kernel starts probing it, and
/// how often then: a v2 server that vanished without closing the connection is noticed
/// within about a minute, and the watch resumes at the same index.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_PROBES: u32 = 3;

/// The v2 API's error code for a watch index older than the 1,000 events it keeps.
const EVENT_INDEX_CLEARED: u64 = 401;

/// The v2 API's error code for a key that does not exist.
const KEY_NOT_FOUND: u64 = 100;

/// What a key's path keeps as it is in a URL; everything else is percent-encoded.
const PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Why the v2 API could not be used; each message names the URL.
#[derive(Debug, thiserror::Error)]
pub enum V2Error {
    /// The URL given is not a v2 server's base URL.
    #[error("--data-from-v2 {url}: {reason}; give the v2 server's URL, like http://10.0.0.1:4001")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The TLS files cannot be used for the v2 API.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Nothing answered, or the connection broke.
    #[error("etcd v2 at {url} unreachable: {}", causes(.source))]
    Unreachable {
        /// The server's URL.
        url: String,
        /// hyper's error.
        source: hyper_util::client::legacy::Error,
    },
    /// The answer broke off.
    #[error("etcd v2 at {url}: the answer broke off: {source}")]
    Broken {
        /// The server's URL.
        url: String,
        /// hyper's error.
        source: hyper::Error,
    },
    /// Nothing answered in time.
    #[error("etcd v2 at {url}: no answer within {after:?}")]
    TimedOut {
        /// The server's URL.
        url: String,
        /// The time limit.
        after: Duration,
    },
    /// The key asked for does not exist.
    #[error("etcd v2 at {url} has no key or directory {key}")]
    NotFound {
        /// The server's URL.
        url: String,
        /// The key.
        key: String,
        /// The v2 index at which it was not there.
        index: u64,
    },
    /// The v2 API answered with its own error.
    #[error("etcd v2 at {url}: {message} ({cause}, error code {code})")]
    Api {
        /// The server's URL.
        url: String,
        /// The v2 error code.
        code: u64,
        /// The v2 message.
        message: String,
        /// What it is about.
        cause: String,
    },
    /// Something answered that is not the v2 API: etcd without `--enable-v2`, a proxy.
    #[error(
        "etcd v2 at {url}: HTTP {status} for {path}: not the v2 keys API (etcd 3.4 serves it \
         with --enable-v2 only): {body}"
    )]
    NotV2 {
        /// The server's URL.
        url: String,
        /// The request's path.
        path: String,
        /// The HTTP status.
        status: StatusCode,
        /// The start of what came back.
        body: String,
    },
}

impl V2Error {
    /// Whether trying again may help: the server was away or the connection broke.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            V2Error::Unreachable { .. } | V2Error::Broken { .. } | V2Error::TimedOut { .. }
        )
    }
}

/// hyper's error with its causes (connection refused, TLS failure, ...), on one line.
fn causes(error: &dyn std::error::Error) -> String {
    crate::etcd::with_causes(error.to_string(), error.source())
}

/// A node of the v2 tree, as the API sends it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Node {
    /// The full key; the root has none.
    pub key: Option<String>,
    /// The value of a key (absent for a directory).
    pub value: Option<String>,
    /// Whether it is a directory.
    #[serde(default)]
    pub dir: bool,
    /// A directory's children, in key order when read with `sorted=true`.
    #[serde(default)]
    pub nodes: Vec<Node>,
    /// Seconds left before it expires, rounded up, when it has a TTL.
    pub ttl: Option<i64>,
    /// The index of its last change.
    #[serde(rename = "modifiedIndex", default)]
    pub modified_index: u64,
}

/// One change, as the watch delivers it.
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    /// `set`, `create`, `update`, `compareAndSwap`, `delete`, `compareAndDelete`, `expire`.
    pub action: String,
    /// The node after the change (the key alone for a delete or an expiry).
    pub node: Node,
}

/// The v2 API's error body.
#[derive(Deserialize)]
struct ApiError {
    #[serde(rename = "errorCode")]
    code: u64,
    message: String,
    #[serde(default)]
    cause: String,
    index: Option<u64>,
}

/// A tree as read, with the index to watch from and the moment of the read (TTLs count
/// from it).
#[derive(Debug)]
pub struct Read {
    /// The tree's top node.
    pub root: Node,
    /// The v2 index of the read: every change after it has a higher index.
    pub index: u64,
    /// When the answer came.
    pub at: Instant,
}

/// What a watch came back with.
#[derive(Debug)]
pub enum Watched {
    /// The next change at or after the index asked for.
    Event(Event),
    /// The server ended the watch without a change (it does when a watcher falls behind):
    /// watch again from the same index.
    Nothing,
    /// The index asked for is older than the 1,000 events the v2 store keeps.
    Cleared,
}

/// A v2 server.
#[derive(Clone)]
pub struct V2 {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    /// `scheme://authority`, without a trailing slash.
    base: String,
}

impl V2 {
    /// Checks the URL, then sets up the client with the TLS configuration `tls()` loads
    /// (used when the URL is `https://`).
    pub fn new(
        url: &str,
        connect_timeout: Duration,
        tls: impl FnOnce() -> Result<ClientTls, TlsError>,
    ) -> Result<V2, V2Error> {
        let bad = |reason| V2Error::BadUrl {
            url: url.to_string(),
            reason,
        };
        let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(bad("the scheme must be http:// or https://")),
        };
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(bad("it has a path"));
        }
        // Over plain http the configuration is never used; it is the same either way.
        let config = tls()?.rustls_config()?;
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_connect_timeout(Some(connect_timeout));
        tcp.set_keepalive(Some(KEEPALIVE_IDLE));
        tcp.set_keepalive_interval(Some(KEEPALIVE_INTERVAL));
        tcp.set_keepalive_retries(Some(KEEPALIVE_PROBES));
        tcp.set_nodelay(true);
        let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config);
        let connector = if https {
            builder.https_only().enable_http1().wrap_connector(tcp)
        } else {
            builder.https_or_http().enable_http1().wrap_connector(tcp)
        };
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(V2 {
            client,
            base: format!("{}://{authority}", if https { "https" } else { "http" }),
        })
    }

    /// The server's URL, for messages.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Reads `key` and everything below it, sorted, with a quorum read (what the cluster
    /// agreed on, not what one member may not have caught up with yet).
    pub async fn read(&self, key: &str) -> Result<Read, V2Error> {
        let path = keys_path(key);
        let query = format!("{path}?recursive=true&sorted=true&quorum=true");
        let asked = self.get(&query);
        let (status, index, body) =
            tokio::time::timeout(READ_LIMIT, asked)
                .await
                .map_err(|_| V2Error::TimedOut {
                    url: self.base.clone(),
                    after: READ_LIMIT,
                })??;
        let at = Instant::now();
        if status != StatusCode::OK {
            return Err(self.refusal(key, &path, (status, index), &body));
        }
        #[derive(Deserialize)]
        struct Answer {
            node: Node,
        }
        let answer: Answer =
            serde_json::from_slice(&body).map_err(|_| self.not_v2(&path, status, &body))?;
        let index = index.ok_or_else(|| self.not_v2(&path, status, &body))?;
        Ok(Read {
            root: answer.node,
            index,
            at,
        })
    }

    /// Waits for the first change under `key` with an index of `index` or later.
    pub async fn watch(&self, key: &str, index: u64) -> Result<Watched, V2Error> {
        let path = keys_path(key);
        let query = format!("{path}?wait=true&recursive=true&waitIndex={index}");
        let (status, index, body) = self.get(&query).await?;
        if status == StatusCode::OK {
            if body.iter().all(u8::is_ascii_whitespace) {
                return Ok(Watched::Nothing);
            }
            return serde_json::from_slice(&body)
                .map(Watched::Event)
                .map_err(|_| self.not_v2(&path, status, &body));
        }
        match serde_json::from_slice::<ApiError>(&body) {
            Ok(error) if error.code == EVENT_INDEX_CLEARED => Ok(Watched::Cleared),
            _ => Err(self.refusal(key, &path, (status, index), &body)),
        }
    }

    /// One GET: the status, the `X-Etcd-Index` header and the whole body.
    async fn get(&self, path_and_query: &str) -> Result<(StatusCode, Option<u64>, Bytes), V2Error> {
        let uri: Uri = format!("{}{path_and_query}", self.base)
            .parse()
            .expect("a percent-encoded path makes a valid URI");
        let response = self
            .client
            .get(uri)
            .await
            .map_err(|source| V2Error::Unreachable {
                url: self.base.clone(),
                source,
            })?;
        let status = response.status();
        let index = response
            .headers()
            .get("x-etcd-index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|source| V2Error::Broken {
                url: self.base.clone(),
                source,
            })?
            .to_bytes();
        Ok((status, index, body))
    }

    /// The error for an answer other than 200 (with its `X-Etcd-Index`): the v2 API's own,
    /// or not the v2 API.
    fn refusal(
        &self,
        key: &str,
        path: &str,
        (status, index): (StatusCode, Option<u64>),
        body: &[u8],
    ) -> V2Error {
        match serde_json::from_slice::<ApiError>(body) {
            Ok(error) if error.code == KEY_NOT_FOUND => V2Error::NotFound {
                url: self.base.clone(),
                key: key.to_string(),
                index: error.index.or(index).unwrap_or(0),
            },
            Ok(error) => V2Error::Api {
                url: self.base.clone(),
                code: error.code,
                message: error.message,
                cause: error.cause,
            },
            Err(_) => self.not_v2(path, status, body),
        }
    }

    fn not_v2(&self, path: &str, status: StatusCode, body: &[u8]) -> V2Error {
        let text = String::from_utf8_lossy(body);
        let line = text
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(120)
            .collect();
        V2Error::NotV2 {
            url: self.base.clone(),
            path: path.to_string(),
            status,
            body: line,
        }
    }
}

/// `/v2/keys` followed by the key, percent-encoded.
fn keys_path(key: &str) -> String {
    let key = key.trim_end_matches('/');
    format!("/v2/keys{}", utf8_percent_encode(key, PATH))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls() -> Result<ClientTls, TlsError> {
        crate::etcd::Connection::default().client_tls()
    }

    #[test]
    fn keys_are_percent_encoded_in_the_path() {
        assert_eq!(keys_path("/"), "/v2/keys");
        assert_eq!(keys_path("/app/"), "/v2/keys/app");
        assert_eq!(
            keys_path("/a b/c%d+e&f?g#h/ü"),
            "/v2/keys/a%20b/c%25d%2Be%26f%3Fg%23h/%C3%BC"
        );
    }

    #[tokio::test]
    async fn only_a_base_url_is_taken() {
        let timeout = Duration::from_secs(1);
        let v2 = V2::new("http://127.0.0.1:4001/", timeout, tls).unwrap();
        assert_eq!(v2.url(), "http://127.0.0.1:4001");
        for (url, reason) in [
            ("127.0.0.1:4001", "the scheme"),
            ("ftp://h:1", "the scheme"),
            ("http://h:1/v2/keys", "it has a path"),
            ("http://h:1/?x=1", "it has a path"),
            ("not a url", "not a URL"),
        ] {
            let error = V2::new(url, timeout, tls).err().unwrap().to_string();
            assert!(
                error.starts_with(&format!("--data-from-v2 {url}: {reason}")),
                "{error}"
            );
        }
    }
}
