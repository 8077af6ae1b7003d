//! Which endpoint each request goes to. Every endpoint has a channel of its own (one
//! HTTP/2 connection, opened when it is first used); every request goes to the current
//! endpoint, and a failure to answer there (no answer in time, refused, broken) makes the
//! next one current. A request may be pinned to an endpoint: the checks of a watch stream
//! must ask the member that serves it, over the stream's own connection.
//!
//! One endpoint at a time, rather than gRPC's balancing over all of them, is what lets a
//! process leave a member that stopped answering without a word (a frozen process, a
//! paused VM, a firewall dropping packets): such a member keeps its connections open and
//! even accepts new ones (the kernel completes the handshake), so a balancer keeps sending
//! it requests, while here the first request it leaves unanswered moves every later one
//! to another member.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rand::Rng;
use tonic::transport::{Channel, Endpoint};
use tower::util::BoxCloneSyncService;
use tower::{BoxError, Service, ServiceExt};
use tracing::debug;

use super::options::ConnectOptions;

/// How long a keepalive ping may go unanswered before the connection counts as dead.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

tokio::task_local! {
    /// The endpoint the requests of the current task are pinned to.
    static PINNED: usize;
}

/// The endpoints and which of them is current, shared by every request of a process.
#[derive(Debug)]
pub(super) struct Route {
    urls: Vec<String>,
    current: AtomicUsize,
}

impl Route {
    /// A route over `urls` (non-empty), starting at the first when they are in order of
    /// preference, else at a random one, so a fleet given the same list spreads over it.
    fn new(urls: Vec<String>, in_order: bool) -> Route {
        let start = if in_order {
            0
        } else {
            rand::rng().random_range(0..urls.len())
        };
        Route {
            urls,
            current: AtomicUsize::new(start),
        }
    }

    /// The endpoint requests go to now.
    pub(super) fn current(&self) -> usize {
        self.current.load(Ordering::Acquire)
    }

    /// The URL of `endpoint`.
    pub(super) fn url(&self, endpoint: usize) -> &str {
        &self.urls[endpoint]
    }

    /// `endpoint` did not answer: unless another request found that out first, the next
    /// endpoint becomes current.
    pub(super) fn failed(&self, endpoint: usize) {
        let next = (endpoint + 1) % self.urls.len();
        let moved = self
            .current
            .compare_exchange(endpoint, next, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if moved && next != endpoint {
            debug!(
                "{} did not answer; requests go to {} now",
                self.urls[endpoint], self.urls[next]
            );
        }
    }
}

/// Runs `request` with every call it makes sent to `endpoint`.
pub(super) async fn pinned<F: Future>(endpoint: usize, request: F) -> F::Output {
    PINNED.scope(endpoint, request).await
}

type HttpRequest = http::Request<tonic::body::Body>;
type HttpResponse = http::Response<tonic::body::Body>;

/// The channel etcd-client sends through: each call to the endpoint it is pinned to, or
/// to the current one.
#[derive(Clone)]
struct Router {
    channels: Arc<[Channel]>,
    route: Arc<Route>,
}

impl Service<HttpRequest> for Router {
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, BoxError>> + Send>>;

    /// Always ready: readiness is the chosen endpoint's channel's, awaited in the call.
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        let endpoint = PINNED
            .try_with(|pinned| *pinned)
            .unwrap_or_else(|_| self.route.current());
        let channel = self.channels[endpoint].clone();
        Box::pin(async move { Ok(channel.oneshot(request).await?) })
    }
}

/// A channel per endpoint of `options`, each connected when first used, behind one
/// route; `Err` for an endpoint URL or TLS setting that cannot be used.
pub(super) fn channel(
    options: &ConnectOptions,
) -> Result<(etcd_client::Channel, Arc<Route>), tonic::transport::Error> {
    let channels = options
        .endpoints
        .iter()
        .map(|url| Ok(endpoint(url, options)?.connect_lazy()))
        .collect::<Result<Arc<[Channel]>, tonic::transport::Error>>()?;
    let route = Arc::new(Route::new(options.endpoints.clone(), options.in_order));
    let router = Router {
        channels,
        route: route.clone(),
    };
    Ok((
        etcd_client::Channel::Custom(BoxCloneSyncService::new(router)),
        route,
    ))
}

/// One endpoint's connection settings: connect timeout, keepalive pings, TLS.
fn endpoint(url: &str, options: &ConnectOptions) -> Result<Endpoint, tonic::transport::Error> {
    let mut endpoint =
        Endpoint::from_shared(url.to_string())?.connect_timeout(options.connect_timeout);
    if !options.keepalive.is_zero() {
        endpoint = endpoint
            .http2_keep_alive_interval(options.keepalive)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(false);
    }
    if let Some(tls) = &options.tls {
        endpoint = endpoint.tls_config(tls.options())?;
    }
    Ok(endpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(n: usize) -> Route {
        let urls = (0..n).map(|i| format!("http://e{i}:2379")).collect();
        Route::new(urls, true)
    }

    #[test]
    fn a_failure_moves_on_once() {
        let route = route(3);
        assert_eq!(route.current(), 0);
        route.failed(0);
        assert_eq!(route.current(), 1);
        // A second request that failed at endpoint 0 meanwhile: already moved on.
        route.failed(0);
        assert_eq!(route.current(), 1);
        route.failed(1);
        route.failed(2);
        assert_eq!(route.current(), 0, "round the list");
    }

    #[test]
    fn one_endpoint_stays() {
        let route = route(1);
        route.failed(0);
        assert_eq!(route.current(), 0);
    }

    #[test]
    fn a_list_starts_anywhere_an_ordered_one_at_its_head() {
        let urls: Vec<String> = (0..50).map(|i| format!("http://e{i}:2379")).collect();
        let starts: std::collections::BTreeSet<usize> = (0..20)
            .map(|_| Route::new(urls.clone(), false).current())
            .collect();
        assert!(starts.len() > 1, "{starts:?}");
        assert_eq!(Route::new(urls, true).current(), 0);
    }
}
