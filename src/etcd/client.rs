//! The one connection of a process to etcd, and the ways to open it: at once for one-shot
//! commands, or waiting for etcd for the daemon and dispense. Every request has a time
//! limit, and one that finds its endpoint silent or unreachable moves the process to the
//! next endpoint (`route`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions as ClientOptions, GetOptions, KvClient, WatchClient};
use tracing::debug;

use super::error::{classify, setup, EtcdError};
use super::options::{ConnectOptions, Connection};
use super::retry::{retry_until, retry_within};
use super::route::{self, Route};

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
    route: Arc<Route>,
    endpoints: String,
    user: Option<String>,
    timeout: Duration,
    watch_check: Duration,
}

impl Etcd {
    /// Resolves the flags and connects, for `--onetime` and etcd-util: an unreachable
    /// endpoint is retried within the connect timeout (a request may have gone to a member
    /// that is down), anything else fails at once.
    pub async fn connect(args: &Connection) -> Result<Etcd, EtcdError> {
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
    pub async fn connect_when_up(args: &Connection) -> Result<Etcd, EtcdError> {
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
        let user = options.user.as_ref().map(|(name, _)| name.clone());
        let (channel, route) = route::channel(options).map_err(|e| {
            setup(
                &endpoints,
                user.as_deref(),
                etcd_client::Error::TransportError(e),
            )
        })?;
        let mut client_options = ClientOptions::new().with_require_leader(true);
        if let Some((name, password)) = &options.user {
            client_options = client_options
                .with_user(name.clone(), password.expose())
                .with_auto_token_refresh(true);
        }
        let start = route.current();
        // Logs in when a user is set, at the endpoint the route starts at.
        let connecting = route::pinned(start, Client::from_channel(channel, Some(client_options)));
        let client = tokio::time::timeout(options.connect_timeout, connecting)
            .await
            .map_err(|_| EtcdError::TimedOut {
                endpoints: route.url(start).to_string(),
                after: options.connect_timeout,
            })?
            .map_err(|e| setup(route.url(start), user.as_deref(), e))?;
        let etcd = Etcd {
            shared: Arc::new(Shared {
                client,
                route,
                endpoints,
                user,
                timeout: options.connect_timeout,
                watch_check: options.watch_check,
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

    /// The endpoint requests go to now (an index into the endpoints).
    pub(super) fn current_endpoint(&self) -> usize {
        self.shared.route.current()
    }

    /// The URL of `endpoint`.
    pub(super) fn url(&self, endpoint: usize) -> &str {
        self.shared.route.url(endpoint)
    }

    /// How long a watch stream may bring nothing before it is checked (`None`: never).
    pub(super) fn watch_check(&self) -> Option<Duration> {
        Some(self.shared.watch_check).filter(|d| !d.is_zero())
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

    /// Asks `endpoint` for something it answers at once (a serializable read of one key,
    /// counting it), within the time limit, over the connection a watch stream there uses:
    /// `Ok` when it answered, even with a refusal; the error when it did not.
    pub(super) async fn check(&self, endpoint: usize, key: &[u8]) -> Result<(), EtcdError> {
        let options = GetOptions::new().with_serializable().with_count_only();
        match self
            .bounded_at(endpoint, self.kv().get(key, Some(options)))
            .await
        {
            Err(e) if e.is_transient() => Err(e),
            _ => Ok(()),
        }
    }

    /// A failure of the watch stream opened at `endpoint` as [`EtcdError`]; a broken
    /// connection moves the requests on to the next endpoint.
    pub(super) fn stream_error(&self, endpoint: usize, error: etcd_client::Error) -> EtcdError {
        let error = classify(self.url(endpoint), self.user(), error);
        if error.is_transient() {
            self.shared.route.failed(endpoint);
        }
        error
    }

    /// Runs one request at the current endpoint with the time limit, mapping failures to
    /// [`EtcdError`]; no answer in time, or none at all, moves the requests on to the next
    /// endpoint.
    pub async fn bounded<T>(
        &self,
        request: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, EtcdError> {
        self.bounded_at(self.current_endpoint(), request).await
    }

    /// [`Self::bounded`] at `endpoint`.
    pub(super) async fn bounded_at<T>(
        &self,
        endpoint: usize,
        request: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, EtcdError> {
        let url = self.url(endpoint);
        let result =
            match tokio::time::timeout(self.shared.timeout, route::pinned(endpoint, request)).await
            {
                Ok(answer) => answer.map_err(|e| classify(url, self.user(), e)),
                Err(_) => Err(EtcdError::TimedOut {
                    endpoints: url.to_string(),
                    after: self.shared.timeout,
                }),
            };
        if result.as_ref().is_err_and(EtcdError::is_transient) {
            self.shared.route.failed(endpoint);
        }
        result
    }
}
