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
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;

pub use child::{Reloader, SuperviseError, Supervisor};
pub use metrics::MetricsError;
pub use signals::{SignalError, Signals};
pub use status::{FailureKind, Pass, RolloutNote, Status};

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

/// Where a long-running mode serves its health, and when it says it is unhealthy
/// (`--metrics-addr`, `--unhealthy-after`).
#[derive(Debug, Clone, Copy)]
pub struct Monitoring {
    /// Where `/metrics` and `/healthz` are served (none: not served).
    pub metrics_addr: Option<SocketAddr>,
    /// How long etcd may be unreachable, or an entry failing, before `/healthz` says 503.
    pub unhealthy_after: Duration,
}

/// A stop asked for by whoever started the mode (a test, an embedding program): it acts as
/// SIGTERM.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A long-running mode, started: its signals are handled from the first moment, its
/// health registry is served when asked for, systemd's watchdog is fed.
pub struct Service {
    /// The signals the mode handles (all that go to a child when it supervises one).
    signals: Signals,
    /// The stop asked for by the caller, until it came.
    shutdown: Option<Shutdown>,
    /// The health registry.
    pub status: Arc<Status>,
}

impl Service {
    /// Raises the open-file limit, handles `own` signals (or, with a `command` to
    /// supervise, every signal a child gets) and `shutdown` as SIGTERM, serves the health
    /// registry as `monitoring` says, starts the watchdog.
    pub async fn start(
        command: &[OsString],
        own: &[Signal],
        monitoring: Monitoring,
        shutdown: Shutdown,
    ) -> Result<Service, StartError> {
        crate::fdlimit::raise();
        let signals = Signals::for_command(command, own)?;
        let status = Arc::new(Status::new(monitoring.unhealthy_after));
        if let Some(addr) = monitoring.metrics_addr {
            metrics::serve(addr, status.clone()).await?;
        }
        systemd::start_watchdog();
        Ok(Service {
            signals,
            shutdown: Some(shutdown),
            status,
        })
    }

    /// The next signal; the caller's shutdown, once, as SIGTERM.
    pub async fn signal(&mut self) -> Signal {
        match &mut self.shutdown {
            Some(shutdown) => tokio::select! {
                signal = self.signals.recv() => signal,
                () = shutdown => {
                    self.shutdown = None;
                    Signal::SIGTERM
                }
            },
            None => self.signals.recv().await,
        }
    }

    /// Runs `work` (connecting to etcd, the first read) while handling signals: TERM or
    /// INT stop it (None, systemd told); other signals have nobody to go to yet.
    pub async fn unless_stopped<T>(&mut self, work: impl Future<Output = T>) -> Option<T> {
        tokio::pin!(work);
        loop {
            tokio::select! {
                done = &mut work => return Some(done),
                signal = self.signal() => {
                    if matches!(signal, Signal::SIGTERM | Signal::SIGINT) {
                        systemd::stopping();
                        return None;
                    }
                }
            }
        }
    }
}
