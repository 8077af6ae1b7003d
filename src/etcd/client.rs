//! The one connection of a process to etcd, and the ways to open it: at once for one-shot
//! commands, or waiting for etcd for the daemon and dispense.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions as ClientOptions, GetOptions, KvClient, WatchClient};
use tracing::debug;

use super::error::{classify, setup, EtcdError};
use super::options::{ConnectArgs, ConnectOptions};
use super::retry::{retry_until, retry_within};

/// How long a keepalive ping may go unanswered before the connection counts as dead.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest message taken from etcd. A value may be 1.5 MiB and a page or a watch
/// response holds many: gRPC's default of 4 MiB would fail reads and break watches for
/// good. etcd's own Go client accepts up to 2 GiB; so does reconfig.
const MAX_MESSAGE_BYTES: usize = i32::MAX as usize;

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
    /// Resolves the flags and connects, for `--onetime` and etcd-util: an unreachable
    /// endpoint is retried within the connect timeout (a request may have gone to a member
    /// that is down), anything else fails at once.
    pub async fn connect(args: &ConnectArgs) -> Result<Etcd, EtcdError> {
        let options = args.resolve().await?;
        // Every attempt opens a fresh connection: no stale error to go through.
        retry_within(options.connect_timeout, 0, EtcdError::is_transient, || {
            Etcd::open(&options)
        })
        .await
    }

    /// The daemon's and dispense's start-up: like [`Self::connect`], but while etcd (or the
    /// DNS server) is unreachable it waits with backoff, logging once, since a daemon must
    /// outlive an etcd outage. Wrong credentials, files or records come back at once:
    /// waiting cannot fix them.
    pub async fn connect_when_up(args: &ConnectArgs) -> Result<Etcd, EtcdError> {
        retry_until("connecting to etcd", 0, EtcdError::is_transient, || {
            Etcd::connect(args)
        })
        .await
    }

    /// Opens the connection within the connect timeout: logs in when a user is set (so a
    /// wrong password is one [`EtcdError::Auth`] at once, not a retry storm), else reads
    /// one key, so an unreachable etcd, a failed TLS handshake or an etcd that wants a
    /// user shows here rather than at the first read.
    async fn open(options: &ConnectOptions) -> Result<Etcd, EtcdError> {
        let opened = Self::open_plain(options).await;
        match options.tls {
            Some(_) => opened.map_err(EtcdError::at_tls_handshake),
            None => opened,
        }
    }

    async fn open_plain(options: &ConnectOptions) -> Result<Etcd, EtcdError> {
        debug!("connecting to etcd: {options:?}");
        let endpoints = options.endpoints.join(",");
        let mut client_options = ClientOptions::new()
            .with_connect_timeout(options.connect_timeout)
            .with_require_leader(true);
        if !options.keepalive.is_zero() {
            client_options = client_options
                .with_keep_alive(options.keepalive, KEEPALIVE_TIMEOUT)
                .with_keep_alive_while_idle(false);
        }
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
            .map_err(|_| EtcdError::TimedOut {
                endpoints: endpoints.clone(),
                after: options.connect_timeout,
            })?
            .map_err(|e| setup(&endpoints, user.as_deref(), e))?;
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
            etcd.bounded(etcd.kv().get("/", Some(probe))).await?;
        }
        Ok(etcd)
    }

    /// The underlying client, for the etcd-util operations.
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

    /// How many endpoints the connection spreads over.
    pub fn endpoint_count(&self) -> usize {
        self.shared.endpoints.split(',').count()
    }

    /// The user logged in as, if any (never the password).
    pub(super) fn user(&self) -> Option<&str> {
        self.shared.user.as_deref()
    }

    /// A KV client that takes messages up to [`MAX_MESSAGE_BYTES`].
    pub(crate) fn kv(&self) -> KvClient {
        self.shared
            .client
            .kv_client()
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// A watch client that takes messages up to [`MAX_MESSAGE_BYTES`].
    pub(super) fn watch_client(&self) -> WatchClient {
        self.shared
            .client
            .watch_client()
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// Gets a fresh auth token when a user is set. A watch stream carries the token it was
    /// opened with, and etcd's simple tokens die with a restart or after their TTL: every
    /// new stream needs a token that is valid now.
    pub(super) async fn refresh_auth(&self) -> Result<(), EtcdError> {
        if self.shared.user.is_some() {
            self.bounded(self.shared.client.refresh_token()).await?;
        }
        Ok(())
    }

    /// An error of a request on this connection as [`EtcdError`].
    pub(super) fn error(&self, error: etcd_client::Error) -> EtcdError {
        classify(&self.shared.endpoints, self.user(), error)
    }

    /// Runs one request with the time limit, mapping failures to [`EtcdError`].
    pub async fn bounded<T>(
        &self,
        request: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, EtcdError> {
        tokio::time::timeout(self.shared.timeout, request)
            .await
            .map_err(|_| EtcdError::TimedOut {
                endpoints: self.shared.endpoints.clone(),
                after: self.shared.timeout,
            })?
            .map_err(|e| self.error(e))
    }
}
