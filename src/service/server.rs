//! The HTTP/1 server behind `--metrics-addr`, bounded against the clients any local user
//! can open: a connection that has not sent a complete request head [`IDLE_TIMEOUT`] after
//! it was accepted, or after its last answer, is closed; none is served longer than
//! [`LIFETIME`]; at most [`MAX_CONNECTIONS`] are served at once, and one more is closed as
//! soon as it is accepted. Clients never hold the descriptors reconfig's own work needs,
//! nor keep the endpoints from others for good.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::timeout;
use tracing::{debug, warn};

/// How long a connection may take to send a complete request head, from its start or
/// from its last answer: an idle or trickling (slowloris) client is closed after this.
const IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one connection is served: then it is closed after the answer in flight, and
/// cut [`IDLE_TIMEOUT`] later if that answer is still not taken (a client that asks and
/// never reads would otherwise hold its connection for good). Scrapers and probes ask
/// once, or every few seconds, and reconnect.
const LIFETIME: Duration = Duration::from_secs(30);

/// Connections served at once: a few scrapers and probes, far below any descriptor limit.
const MAX_CONNECTIONS: usize = 64;

/// The pause after an accept failed for want of descriptors or memory: the connection
/// waits in the backlog meanwhile, and the log gets one line per pause at most.
const ACCEPT_PAUSE: Duration = Duration::from_secs(1);

/// One client's connection, as hyper serves it.
type Connection = http1::Connection<TokioIo<TcpStream>, TowerToHyperService<Router>>;

/// Serves the connections `listener` accepts, each on a task of its own, within the
/// limits: [`IDLE_TIMEOUT`] per request head, [`LIFETIME`] each, [`MAX_CONNECTIONS`] at
/// once.
pub async fn serve(listener: TcpListener, app: Router) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(IDLE_TIMEOUT);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) if gone(&e) => continue,
            Err(e) => {
                warn!("cannot accept a metrics connection: {e}");
                tokio::time::sleep(ACCEPT_PAUSE).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            debug!("metrics connection from {peer} closed: {MAX_CONNECTIONS} are open");
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = http.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            serve_for_lifetime(connection, peer).await;
            drop(slot);
        });
    }
}

/// Serves one connection for [`LIFETIME`] at most: then closes it after the answer in
/// flight, or [`IDLE_TIMEOUT`] later without it.
async fn serve_for_lifetime(connection: Connection, peer: SocketAddr) {
    let mut connection = pin!(connection);
    let served = match timeout(LIFETIME, connection.as_mut()).await {
        Ok(served) => served,
        Err(_) => {
            connection.as_mut().graceful_shutdown();
            let last = timeout(IDLE_TIMEOUT, connection).await;
            last.unwrap_or_else(|_| {
                debug!("metrics connection from {peer} cut: its answer was not read");
                Ok(())
            })
        }
    };
    if let Err(e) = served {
        debug!("metrics connection from {peer}: {e}");
    }
}

/// Whether an accept failed for the connection alone (its client gave up before it was
/// taken), not for want of the process's resources.
fn gone(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    )
}
