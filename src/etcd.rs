//! etcd access: the one client connection of a process, and consistent reads.
//!
//! Every render reads from a [`Snapshot`] taken at a single etcd revision, so a template
//! never mixes values from before and after a transaction.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, ConnectOptions as ClientOptions, GetOptions, KeyValue, KvClient, Txn, TxnOp,
    TxnOpResponse, WatchClient,
};

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::connect::{ConnectError, ConnectOptions};
use crate::snapshot::{in_tree_bytes, tree_range, Snapshot};

/// etcd refuses transactions with more operations than this (`--max-txn-ops`, default 128).
const MAX_TXN_OPS: usize = 128;

/// Keys per page of a tree read: a tree of any size is read in requests of bounded size,
/// every page at the revision of the first.
const PAGE_KEYS: i64 = 500;

/// The largest message taken from etcd. A value may be 1.5 MiB and a page or a watch
/// response holds many: gRPC's default of 4 MiB would fail reads and break watches for
/// good. etcd's own Go client accepts up to 2 GiB; so does reconfig.
pub const MAX_MESSAGE_BYTES: usize = i32::MAX as usize;

/// Longest wait between two attempts of a retried read.
const RETRY_CAP: Duration = Duration::from_secs(5);

/// Why talking to etcd failed; each message names the endpoints or the key.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// Nothing answered, or not in time.
    #[error("etcd unreachable at {endpoints}: {reason}")]
    Unreachable {
        /// The endpoints tried.
        endpoints: String,
        /// Refused, timed out, TLS handshake failed, ...
        reason: String,
    },
    /// The TLS handshake failed: a certificate or a name is wrong, not etcd away.
    #[error("TLS with {endpoints} failed: {reason}")]
    Tls {
        /// The endpoints tried.
        endpoints: String,
        /// rustls's reason, or what etcd's hang-up likely means.
        reason: String,
    },
    /// etcd answered with an error (compaction, too many requests, ...).
    #[error("etcd at {endpoints}: {message}")]
    Request {
        /// The endpoints tried.
        endpoints: String,
        /// etcd's or the transport's reason.
        message: String,
    },
    /// etcd refused the credentials (or wants some): retrying cannot help.
    #[error("etcd at {endpoints} refused {}: {message}", who(user.as_deref()))]
    Auth {
        /// The endpoints tried.
        endpoints: String,
        /// The user name given, if any (never the password).
        user: Option<String>,
        /// etcd's reason.
        message: String,
    },
    /// etcd's RBAC refused the request: the user's role does not cover the key.
    #[error(
        "etcd at {endpoints}: permission denied{} for {} (the role does not cover it)",
        key.as_deref().map(|k| format!(" reading {k}")).unwrap_or_default(),
        who(user.as_deref())
    )]
    PermissionDenied {
        /// The endpoints tried.
        endpoints: String,
        /// The user name given, if any.
        user: Option<String>,
        /// The key refused, when known.
        key: Option<String>,
    },
    /// The connection cannot be set up (bad endpoint URL, TLS configuration).
    #[error("cannot set up the connection to {endpoints}: {message}")]
    Config {
        /// The endpoints.
        endpoints: String,
        /// The client library's reason.
        message: String,
    },
    /// Endpoints, SRV records or TLS files could not be worked out.
    #[error(transparent)]
    Setup(#[from] ConnectError),
}

impl EtcdError {
    /// Whether waiting may help: etcd (or the DNS server) was unreachable. Credentials,
    /// files, records and permissions stay wrong until someone fixes them.
    pub fn is_transient(&self) -> bool {
        match self {
            EtcdError::Unreachable { .. } => true,
            EtcdError::Setup(e) => e.is_transient(),
            _ => false,
        }
    }
}

/// The subject of an auth message.
fn who(user: Option<&str>) -> String {
    match user {
        Some(name) => format!("user {name:?}"),
        None => "the request without a user (set ETCD_USERNAME and ETCD_PASSWORD)".into(),
    }
}

/// The process's connection to etcd, cheap to clone (clones share the connection; a
/// clone is one pointer, which matters with hundreds of entry workers holding one).
#[derive(Clone)]
pub struct Etcd {
    shared: Arc<Shared>,
}

/// What every clone of [`Etcd`] shares.
struct Shared {
    client: Client,
    endpoints: String,
    user: Option<String>,
    timeout: Duration,
}

impl Etcd {
    /// Opens the connection within the connect timeout: logs in when a user is set (so a
    /// wrong password is one [`EtcdError::Auth`] at once, not a retry storm), else reads
    /// one key, so an unreachable etcd, a failed TLS handshake or an etcd that wants a
    /// user shows here rather than at the first read.
    pub async fn connect(options: &ConnectOptions) -> Result<Etcd, EtcdError> {
        let opened = Self::open(options).await;
        match options.tls {
            Some(_) => opened.map_err(refused_tls),
            None => opened,
        }
    }

    async fn open(options: &ConnectOptions) -> Result<Etcd, EtcdError> {
        debug!("connecting to etcd: {options:?}");
        let endpoints = options.endpoints.join(",");
        let mut client_options = ClientOptions::new()
            .with_connect_timeout(options.connect_timeout)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_keep_alive_while_idle(false)
            .with_require_leader(true);
        if let Some((name, password)) = &options.user {
            client_options = client_options
                .with_user(name.clone(), password.expose())
                .with_auto_token_refresh(true);
        }
        if let Some(tls) = &options.tls {
            client_options = client_options.with_tls(tls.options());
        }
        let user = options.user.as_ref().map(|(name, _)| name.clone());
        let connecting = Client::connect(&options.endpoints, Some(client_options));
        let client = tokio::time::timeout(options.connect_timeout, connecting)
            .await
            .map_err(|_| timed_out(&endpoints, options.connect_timeout))?
            .map_err(|e| match e {
                etcd_client::Error::GRpcStatus(_) => request_error(&endpoints, user.as_deref(), e),
                setup => EtcdError::Config {
                    endpoints: endpoints.clone(),
                    message: one_line(&setup),
                },
            })?;
        let etcd = Etcd {
            shared: Arc::new(Shared {
                client,
                endpoints,
                user,
                timeout: options.connect_timeout,
            }),
        };
        if options.user.is_none() {
            // A read, not a status request: it also finds out that etcd wants a user.
            let probe = GetOptions::new().with_count_only();
            etcd.bounded(etcd.shared.client.kv_client().get("/", Some(probe)))
                .await?;
        }
        Ok(etcd)
    }

    /// The underlying client, for watches and the etcd-util operations.
    pub fn client(&self) -> &Client {
        &self.shared.client
    }

    /// The time limit of one request (the connect timeout).
    pub fn timeout(&self) -> Duration {
        self.shared.timeout
    }

    /// The endpoints, comma-separated, for messages.
    pub fn endpoints(&self) -> &str {
        &self.shared.endpoints
    }

    /// A KV client that takes messages up to [`MAX_MESSAGE_BYTES`].
    pub fn kv(&self) -> KvClient {
        self.shared
            .client
            .kv_client()
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// A watch client that takes messages up to [`MAX_MESSAGE_BYTES`].
    pub fn watch_client(&self) -> WatchClient {
        self.shared
            .client
            .watch_client()
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// Gets a fresh auth token when a user is set. A watch stream carries the token it was
    /// opened with, and etcd's simple tokens die with a restart or after their TTL: every
    /// new stream needs a token that is valid now.
    pub async fn refresh_auth(&self) -> Result<(), EtcdError> {
        if self.shared.user.is_some() {
            self.bounded(self.shared.client.refresh_token()).await?;
        }
        Ok(())
    }

    /// Reads the trees of `keys` (each key and everything below it) at one revision, in
    /// pages. Keys that are not UTF-8 are kept apart in the snapshot: they fail only the
    /// entries whose trees hold them.
    pub async fn snapshot<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a str>,
    ) -> Result<Snapshot, EtcdError> {
        let mut keys: Vec<&str> = keys.into_iter().collect();
        keys.sort_unstable();
        keys.dedup();
        let mut revision = 0;
        let mut pairs = Vec::new();
        for chunk in keys.chunks(MAX_TXN_OPS) {
            let (read_at, pages) = match self.first_pages(chunk, revision).await {
                Err(EtcdError::PermissionDenied { .. }) => {
                    let keys = chunk.iter().map(|k| k.to_string()).collect();
                    return Err(self.refused(keys).await);
                }
                other => other?,
            };
            if revision == 0 {
                revision = read_at;
            }
            for (key, mut page) in chunk.iter().zip(pages) {
                loop {
                    let next = page.next_start();
                    pairs.extend(
                        page.kvs
                            .into_iter()
                            .map(KeyValue::into_key_value)
                            .filter(|(name, _)| in_tree_bytes(key, name)),
                    );
                    let Some(start) = next else { break };
                    page = self.page(start, tree_range(key).1, revision).await?;
                }
            }
        }
        let mut snapshot = Snapshot::at(revision);
        for (key, value) in pairs {
            snapshot.insert_raw(key, value);
        }
        Ok(snapshot)
    }

    /// Finds which of `keys` the user may not read, so the message can name it.
    async fn refused(&self, keys: Vec<String>) -> EtcdError {
        let mut kv = self.shared.client.kv_client();
        for key in keys {
            let (start, end) = tree_range(&key);
            let count = GetOptions::new().with_range(end).with_count_only();
            match self.bounded(kv.get(start, Some(count))).await {
                Ok(_) => {}
                Err(EtcdError::PermissionDenied { .. }) => {
                    return self.denied(Some(key));
                }
                Err(other) => return other,
            }
        }
        self.denied(None)
    }

    fn denied(&self, key: Option<String>) -> EtcdError {
        EtcdError::PermissionDenied {
            endpoints: self.shared.endpoints.clone(),
            user: self.shared.user.clone(),
            key,
        }
    }

    /// The first page of the tree range of each of `keys` (at `revision`, or the current
    /// one when 0), with the revision read at. One key is one range request; several go
    /// in one transaction. Pairs are moved out of the response, never copied.
    async fn first_pages(
        &self,
        keys: &[&str],
        revision: i64,
    ) -> Result<(i64, Vec<Page>), EtcdError> {
        let mut kv = self.kv();
        if let [key] = keys {
            let (start, end) = tree_range(key);
            let mut response = self
                .bounded(kv.get(start, Some(page_options(end, revision))))
                .await?;
            let read_at = response.header().map_or(0, |h| h.revision());
            let page = Page {
                more: response.more(),
                kvs: response.take_kvs(),
            };
            return Ok((read_at, vec![page]));
        }
        let ops: Vec<TxnOp> = keys
            .iter()
            .map(|key| {
                let (start, end) = tree_range(key);
                TxnOp::get(start, Some(page_options(end, revision)))
            })
            .collect();
        let response = self.bounded(kv.txn(Txn::new().and_then(ops))).await?;
        let read_at = response.header().map_or(0, |h| h.revision());
        let pages = response
            .op_responses()
            .into_iter()
            .map(|op| match op {
                TxnOpResponse::Get(mut get) => Page {
                    more: get.more(),
                    kvs: get.take_kvs(),
                },
                _ => Page::default(),
            })
            .collect();
        Ok((read_at, pages))
    }

    /// The page of `[start, end)` at `revision`.
    async fn page(&self, start: Vec<u8>, end: Vec<u8>, revision: i64) -> Result<Page, EtcdError> {
        let mut response = self
            .bounded(self.kv().get(start, Some(page_options(end, revision))))
            .await?;
        Ok(Page {
            more: response.more(),
            kvs: response.take_kvs(),
        })
    }

    /// [`Self::snapshot`], retried with backoff while it fails (logging only the change
    /// of state, not every attempt); None when cancelled first.
    pub async fn snapshot_retrying(
        &self,
        keys: &[&str],
        cancel: &CancellationToken,
    ) -> Option<Snapshot> {
        let mut backoff = Backoff::new(RETRY_CAP);
        let mut failing = false;
        loop {
            let attempt = tokio::select! {
                r = self.snapshot(keys.iter().copied()) => r,
                () = cancel.cancelled() => return None,
            };
            match attempt {
                Ok(snapshot) => {
                    if failing {
                        info!("etcd readable again at {}", self.shared.endpoints);
                    }
                    return Some(snapshot);
                }
                Err(e) => {
                    if !failing {
                        warn!("{e}; keeping the current files and retrying");
                        failing = true;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(backoff.next_delay()) => {}
                        () = cancel.cancelled() => return None,
                    }
                }
            }
        }
    }

    /// An error of a request on this connection as [`EtcdError`].
    pub fn error(&self, error: etcd_client::Error) -> EtcdError {
        request_error(&self.shared.endpoints, self.shared.user.as_deref(), error)
    }

    /// Runs one request with the time limit, mapping failures to [`EtcdError`].
    pub async fn bounded<T>(
        &self,
        request: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, EtcdError> {
        tokio::time::timeout(self.shared.timeout, request)
            .await
            .map_err(|_| timed_out(&self.shared.endpoints, self.shared.timeout))?
            .map_err(|e| self.error(e))
    }
}

/// One page of a range read.
#[derive(Default)]
struct Page {
    kvs: Vec<KeyValue>,
    /// etcd has more pairs in the range after these.
    more: bool,
}

impl Page {
    /// Where the next page starts (right after the last key), when there is one.
    fn next_start(&self) -> Option<Vec<u8>> {
        let last = self.kvs.last().filter(|_| self.more)?;
        let mut start = last.key().to_vec();
        start.push(0);
        Some(start)
    }
}

/// A page of at most [`PAGE_KEYS`] pairs up to `end`, at `revision` (0: the current one).
fn page_options(end: Vec<u8>, revision: i64) -> GetOptions {
    let options = GetOptions::new().with_range(end).with_limit(PAGE_KEYS);
    if revision > 0 {
        options.with_revision(revision)
    } else {
        options
    }
}

fn timed_out(endpoints: &str, after: Duration) -> EtcdError {
    EtcdError::Unreachable {
        endpoints: endpoints.to_string(),
        reason: format!("no answer within {after:?}"),
    }
}

/// An etcd-client error as [`EtcdError`]: refused credentials and permissions apart,
/// transport failures as unreachable, anything else as etcd's own message.
fn request_error(endpoints: &str, user: Option<&str>, error: etcd_client::Error) -> EtcdError {
    let endpoints = endpoints.to_string();
    let user = user.map(str::to_string);
    let text = one_line(&error);
    let transport = match &error {
        // A status etcd sent has no source; one made from a broken connection has.
        etcd_client::Error::GRpcStatus(status) => {
            status.code() == tonic::Code::Unavailable || std::error::Error::source(status).is_some()
        }
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        _ => false,
    };
    if transport {
        return if TLS_FAILURES.iter().any(|m| text.contains(m)) {
            EtcdError::Tls {
                endpoints,
                reason: text,
            }
        } else {
            EtcdError::Unreachable {
                endpoints,
                reason: text,
            }
        };
    }
    match &error {
        etcd_client::Error::GRpcStatus(status) => match status.code() {
            tonic::Code::PermissionDenied => EtcdError::PermissionDenied {
                endpoints,
                user,
                key: None,
            },
            code if code == tonic::Code::Unauthenticated || is_auth_failure(status.message()) => {
                EtcdError::Auth {
                    endpoints,
                    user,
                    message: text,
                }
            }
            _ => EtcdError::Request {
                endpoints,
                message: text,
            },
        },
        _ => EtcdError::Request {
            endpoints,
            message: text,
        },
    }
}

/// rustls's words for a handshake that failed on a certificate or a name.
const TLS_FAILURES: [&str; 3] = [
    "invalid peer certificate",
    "received fatal alert",
    "peer sent no certificates",
];

/// etcd refuses a client certificate with an alert or, as TLS 1.3 ends the handshake
/// before the server checks it, by hanging up: at connect time over TLS, say what it means.
fn refused_tls(error: EtcdError) -> EtcdError {
    let hung_up = |reason: &str| {
        ["broken pipe", "connection closed", "connection reset"]
            .iter()
            .any(|m| reason.contains(m))
    };
    let (endpoints, reason) = match error {
        EtcdError::Unreachable { endpoints, reason } if hung_up(&reason) => (endpoints, reason),
        EtcdError::Tls { endpoints, reason } if reason.contains("received fatal alert") => {
            (endpoints, reason)
        }
        other => return other,
    };
    EtcdError::Tls {
        endpoints,
        reason: format!(
            "{reason}: etcd ended the connection, so it likely refuses the client certificate \
             (give --ssl_cert/--ssl_key signed by a CA in etcd's --trusted-ca-file)"
        ),
    }
}

/// etcd's messages for refused credentials, which come with several status codes
/// (InvalidArgument for a wrong password, FailedPrecondition when auth is off, ...).
fn is_auth_failure(message: &str) -> bool {
    [
        "authentication failed",
        "authentication is not enabled",
        "user name is empty",
        "invalid auth token",
    ]
    .iter()
    .any(|m| message.contains(m))
}

/// One line from an etcd-client error: etcd's own message, or the transport's reason with
/// its causes (connection refused, TLS failure, ...).
fn one_line(error: &etcd_client::Error) -> String {
    let mut text = match error {
        etcd_client::Error::GRpcStatus(status) if !status.message().is_empty() => {
            status.message().to_string()
        }
        other => other.to_string(),
    };
    let mut source = match error {
        etcd_client::Error::GRpcStatus(status) => std::error::Error::source(status),
        other => std::error::Error::source(other),
    };
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::{Code, Status};

    fn from_etcd(code: Code, message: &str, user: Option<&str>) -> EtcdError {
        let status = etcd_client::Error::GRpcStatus(Status::new(code, message));
        request_error("http://e:1", user, status)
    }

    #[test]
    fn refused_credentials_are_auth_errors_naming_the_user_only() {
        let wrong = from_etcd(
            Code::InvalidArgument,
            "etcdserver: authentication failed, invalid user ID or password",
            Some("app"),
        );
        assert!(matches!(wrong, EtcdError::Auth { .. }) && !wrong.is_transient());
        assert_eq!(
            wrong.to_string(),
            "etcd at http://e:1 refused user \"app\": etcdserver: authentication failed, \
             invalid user ID or password"
        );
        let anonymous = from_etcd(
            Code::InvalidArgument,
            "etcdserver: user name is empty",
            None,
        );
        assert!(
            anonymous.to_string().contains("set ETCD_USERNAME"),
            "{anonymous}"
        );
        let other = from_etcd(
            Code::InvalidArgument,
            "etcdserver: too many operations",
            None,
        );
        assert!(matches!(other, EtcdError::Request { .. }), "{other}");
    }

    #[test]
    fn permission_denied_and_unavailable_are_told_apart() {
        let denied = from_etcd(
            Code::PermissionDenied,
            "etcdserver: permission denied",
            Some("a"),
        );
        assert!(matches!(
            denied,
            EtcdError::PermissionDenied { key: None, .. }
        ));
        let away = from_etcd(Code::Unavailable, "connection refused", Some("a"));
        assert!(matches!(away, EtcdError::Unreachable { .. }) && away.is_transient());
    }

    #[test]
    fn a_hang_up_over_tls_points_at_the_client_certificate() {
        let hung_up = EtcdError::Unreachable {
            endpoints: "https://e:1".into(),
            reason: "transport error: connection error: broken pipe".into(),
        };
        let explained = refused_tls(hung_up);
        assert!(matches!(explained, EtcdError::Tls { .. }) && !explained.is_transient());
        assert!(
            explained.to_string().contains("client certificate"),
            "{explained}"
        );
        let refused = EtcdError::Unreachable {
            endpoints: "https://e:1".into(),
            reason: "tcp connect error: Connection refused".into(),
        };
        assert!(matches!(
            refused_tls(refused),
            EtcdError::Unreachable { .. }
        ));
    }
}
