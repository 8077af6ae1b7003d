//! etcd access: the one client connection of a process, and consistent reads.
//!
//! Every render reads from a [`Snapshot`] taken at a single etcd revision, so a template
//! never mixes values from before and after a transaction.

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions as ClientOptions, GetOptions, Txn, TxnOp, TxnOpResponse};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::backoff::Backoff;
use crate::connect::ConnectOptions;
use crate::snapshot::{in_tree, tree_range, Snapshot};

/// etcd refuses transactions with more operations than this (`--max-txn-ops`, default 128).
const MAX_TXN_OPS: usize = 128;

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
        /// Refused, timed out, ...
        reason: String,
    },
    /// etcd answered with an error (auth, permission, compaction, ...).
    #[error("etcd at {endpoints}: {message}")]
    Request {
        /// The endpoints tried.
        endpoints: String,
        /// etcd's or the transport's reason.
        message: String,
    },
    /// Keys become file names and log lines; they must be text.
    #[error("etcd key {0:?} is not valid UTF-8")]
    KeyNotUtf8(String),
}

/// The process's connection to etcd, cheap to clone (clones share the connection).
#[derive(Clone)]
pub struct Etcd {
    client: Client,
    endpoints: String,
    timeout: Duration,
}

impl Etcd {
    /// Opens the connection (and logs in when a user is set) within the connect timeout.
    pub async fn connect(options: &ConnectOptions) -> Result<Etcd, EtcdError> {
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
        let connecting = Client::connect(&options.endpoints, Some(client_options));
        let client = tokio::time::timeout(options.connect_timeout, connecting)
            .await
            .map_err(|_| timed_out(&endpoints, options.connect_timeout))?
            .map_err(|e| request_error(&endpoints, e))?;
        Ok(Etcd {
            client,
            endpoints,
            timeout: options.connect_timeout,
        })
    }

    /// The underlying client, for watches and the etcd-util operations.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The endpoints, comma-separated, for messages.
    pub fn endpoints(&self) -> &str {
        &self.endpoints
    }

    /// Reads the trees of `keys` (each key and everything below it) at one revision.
    pub async fn snapshot<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a str>,
    ) -> Result<Snapshot, EtcdError> {
        let mut keys: Vec<&str> = keys.into_iter().collect();
        keys.sort_unstable();
        keys.dedup();
        let mut revision = 0;
        let mut kvs = BTreeMap::new();
        for chunk in keys.chunks(MAX_TXN_OPS) {
            let ops: Vec<TxnOp> = chunk
                .iter()
                .map(|key| {
                    let (start, end) = tree_range(key);
                    let mut options = GetOptions::new().with_range(end);
                    if revision > 0 {
                        options = options.with_revision(revision);
                    }
                    TxnOp::get(start, Some(options))
                })
                .collect();
            let mut kv = self.client.kv_client();
            let response = self.bounded(kv.txn(Txn::new().and_then(ops))).await?;
            if revision == 0 {
                revision = response.header().map_or(0, |h| h.revision());
            }
            for (key, op) in chunk.iter().zip(response.op_responses()) {
                let TxnOpResponse::Get(get) = op else {
                    continue;
                };
                for pair in get.kvs() {
                    let name = std::str::from_utf8(pair.key()).map_err(|_| {
                        EtcdError::KeyNotUtf8(String::from_utf8_lossy(pair.key()).into_owned())
                    })?;
                    if in_tree(key, name) {
                        kvs.insert(name.to_string(), pair.value().to_vec());
                    }
                }
            }
        }
        Ok(Snapshot::new(revision, kvs))
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
                        info!("etcd readable again at {}", self.endpoints);
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

    /// Runs one request with the time limit, mapping failures to [`EtcdError`].
    pub async fn bounded<T>(
        &self,
        request: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, EtcdError> {
        tokio::time::timeout(self.timeout, request)
            .await
            .map_err(|_| timed_out(&self.endpoints, self.timeout))?
            .map_err(|e| request_error(&self.endpoints, e))
    }
}

fn timed_out(endpoints: &str, after: Duration) -> EtcdError {
    EtcdError::Unreachable {
        endpoints: endpoints.to_string(),
        reason: format!("no answer within {after:?}"),
    }
}

/// One line from an etcd-client error: etcd's own message, or the transport's reason with
/// its causes (connection refused, TLS failure, ...).
fn request_error(endpoints: &str, error: etcd_client::Error) -> EtcdError {
    let mut text = match &error {
        etcd_client::Error::GRpcStatus(status) if !status.message().is_empty() => {
            status.message().to_string()
        }
        other => other.to_string(),
    };
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    let text = text.replace('\n', " ");
    let unreachable = match &error {
        etcd_client::Error::GRpcStatus(status) => status.code() == tonic::Code::Unavailable,
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        _ => false,
    };
    if unreachable {
        EtcdError::Unreachable {
            endpoints: endpoints.to_string(),
            reason: text,
        }
    } else {
        EtcdError::Request {
            endpoints: endpoints.to_string(),
            message: text,
        }
    }
}
