//! What the long-running modes (the daemon and dispense) share around the data path: the
//! signals they handle, the child they may supervise, their health registry served on
//! `--metrics-addr` by a bounded server, systemd's notifications, memory handed back after
//! start-up, how a change that could not be applied is retried — and the one way both start,
//! with the open-file limit raised.

mod child;
pub mod memory;
mod metrics;
pub mod retry;
mod server;
mod signals;
mod status;
pub mod systemd;

use std::ffi::OsString;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;

pub use child::{Reloader, SuperviseError, Supervisor};
pub use metrics::MetricsError;
pub use signals::{SignalError, Signals};
pub use status::{FailureKind, Pass, Status};

/// Why a long-running mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A signal handler could not be installed.
    #[error(transparent)]
    Signals(#[from] SignalError),
    /// `--metrics-addr` cannot be served.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
}

/// A long-running mode, started: its signals are handled from the first moment, its
/// health registry is served when asked for, systemd's watchdog is fed.
pub struct Service {
    /// The signals the mode handles (all that go to a child when it supervises one).
    pub signals: Signals,
    /// The health registry.
    pub status: Arc<Status>,
}

impl Service {
    /// Raises the open-file limit, handles `own` signals (or, with a `command` to
    /// supervise, every signal a child gets), serves the health registry on
    /// `metrics_addr`, starts the watchdog.
    pub async fn start(
        command: &[OsString],
        own: &[Signal],
        metrics_addr: Option<SocketAddr>,
        unhealthy_after: Duration,
    ) -> Result<Service, StartError> {
        crate::fdlimit::raise();
        let signals = Signals::for_command(command, own)?;
        let status = Arc::new(Status::new(unhealthy_after));
        if let Some(addr) = metrics_addr {
            metrics::serve(addr, status.clone()).await?;
        }
        systemd::start_watchdog();
        Ok(Service { signals, status })
    }

    /// Runs `work` (connecting to etcd, the first read) while handling signals: TERM or
    /// INT stop it (None, systemd told); other signals have nobody to go to yet.
    pub async fn unless_stopped<T>(&mut self, work: impl Future<Output = T>) -> Option<T> {
        tokio::pin!(work);
        loop {
            tokio::select! {
                done = &mut work => return Some(done),
                signal = self.signals.recv() => {
                    if matches!(signal, Signal::SIGTERM | Signal::SIGINT) {
                        systemd::stopping();
                        return None;
                    }
                }
            }
        }
    }
}
