//! The signals a long-running mode handles, received as one stream so one `select!`
//! branch serves them all.

use std::ffi::OsString;
use std::future::poll_fn;
use std::io;
use std::task::Poll;

use nix::sys::signal::Signal;
use tokio::signal::unix::{signal, SignalKind};

use super::child::FORWARDED;

/// A signal handler could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("cannot handle {signal}: {source}")]
pub struct SignalError {
    /// The signal.
    signal: Signal,
    /// The operating system's reason.
    source: io::Error,
}

/// Signals sent to this process, received as one stream, so one `select!` branch serves
/// them all.
pub struct Signals {
    streams: Vec<(Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    /// Installs handlers for `signals`; from then on they no longer have their default
    /// action.
    pub fn new(signals: &[Signal]) -> Result<Signals, SignalError> {
        let streams = signals
            .iter()
            .map(|&s| {
                signal(SignalKind::from_raw(s as i32))
                    .map(|stream| (s, stream))
                    .map_err(|source| SignalError { signal: s, source })
            })
            .collect::<Result<_, _>>()?;
        Ok(Signals { streams })
    }

    /// The signals of a process that may supervise `command`: all that are forwarded to a
    /// child when there is one, else only the process's `own`.
    pub fn for_command(command: &[OsString], own: &[Signal]) -> Result<Signals, SignalError> {
        Signals::new(if command.is_empty() { own } else { &FORWARDED })
    }

    /// Waits for the next signal.
    pub async fn recv(&mut self) -> Signal {
        poll_fn(|cx| {
            for (signal, stream) in &mut self.streams {
                if let Poll::Ready(Some(())) = stream.poll_recv(cx) {
                    return Poll::Ready(*signal);
                }
            }
            Poll::Pending
        })
        .await
    }
}
