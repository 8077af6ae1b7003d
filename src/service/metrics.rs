//! The monitoring endpoints of `--metrics-addr`: Prometheus `/metrics` and the `/healthz`
//! report, both read from the process's [`Status`].
//!
//! `/healthz` answers 200 with the JSON report while healthy and 503 with the same report
//! once etcd has been unreachable, or an entry failing, longer than `--unhealthy-after`, so
//! load balancers and probes can use the status code and people the body.
//!
//! They are served by the bounded server of [`super::server`]; bound beyond loopback they
//! can be read from the network, which is logged as a warning.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tracing::{info, warn};

use super::server;
use super::status::Status;

/// The content type of the OpenMetrics text format Prometheus scrapes.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Why the endpoints cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The address is taken, not local, or not allowed.
    #[error("cannot serve metrics on {addr}: {source}")]
    Bind {
        /// The `--metrics-addr` given.
        addr: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
}

/// Binds `addr` (port 0: any free port) and serves the endpoints from a background task
/// for the rest of the process's life; returns the address actually bound.
pub async fn serve(addr: SocketAddr, status: Arc<Status>) -> Result<SocketAddr, MetricsError> {
    let bind_error = |source| MetricsError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    if !bound.ip().to_canonical().is_loopback() {
        warn!(
            "--metrics-addr {addr} is not a loopback address: /metrics and /healthz can be \
             read from the network"
        );
    }
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(status);
    info!("serving http://{bound}/metrics and http://{bound}/healthz");
    tokio::spawn(server::serve(listener, app));
    Ok(bound)
}

async fn metrics(State(status): State<Arc<Status>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, OPENMETRICS)], status.metrics_text())
}

async fn healthz(State(status): State<Arc<Status>>) -> impl IntoResponse {
    let health = status.health();
    let code = if health.healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = serde_json::to_string_pretty(&health).expect("the health report is plain data");
    body.push('\n');
    (code, [(header::CONTENT_TYPE, "application/json")], body)
}
