//! Supervising the service whose files reconfig keeps: the `-- CMD ARGS` of
//! `reconfig dispense` and of the daemon.
//!
//! reconfig plays the part tini or dumb-init would play for the child: the child is started
//! after the first sync (so it never starts on missing files), its stdin, stdout and stderr
//! are reconfig's own, its environment is reconfig's without the etcd password
//! ([`crate::apply::scrubbed`]), the usual control signals sent to reconfig
//! ([`FORWARDED`]) are passed on, and when it exits reconfig exits with its status. A child killed by signal N makes
//! reconfig exit with 128+N, as a shell reports it; re-raising the signal on ourselves
//! (etcd-config-dispenser's way) does nothing when reconfig is PID 1 of a container, where
//! the kernel drops signals whose action is the default.
//!
//! The tasks that change files ask for reload signals through a [`Reloader`]. Only the
//! [`Supervisor`], which owns the child, delivers them, and it stops as soon as it has
//! reaped the child, so a signal can never reach a process that re-used the child's pid.
//!
//! Orphaned grandchildren are not reaped: a child that leaves orphans behind while reconfig
//! is PID 1 needs `docker run --init` (or tini) in front of reconfig.

use std::ffi::OsString;
use std::io;
use std::process::{ExitStatus, Stdio};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

/// The signals passed on to the child: those a container runtime or an operator sends to
/// ask a service to stop, reload or reopen its logs.
pub const FORWARDED: [Signal; 7] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// Why supervision could not be set up; each message names the signal or the program.
#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    /// The child could not be started (not found, not executable, ...).
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The command's program.
        program: String,
        /// The operating system's reason.
        source: io::Error,
    },
}

impl SuperviseError {
    /// The exit code a shell would give: 127 for a program not found, 126 when it cannot
    /// be run, 1 for anything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            SuperviseError::Spawn { source, .. } if source.kind() == io::ErrorKind::NotFound => 127,
            SuperviseError::Spawn { .. } => 126,
        }
    }
}

/// Asks the supervisor to send a signal to the child; cheap to clone. Requests made while
/// no child runs are dropped: a child that starts later reads the files as they are.
#[derive(Debug, Clone)]
pub struct Reloader(mpsc::UnboundedSender<Signal>);

impl Reloader {
    /// Queues `signal` for the child.
    pub fn send(&self, signal: Signal) {
        // The supervisor is gone only while the process exits; nothing to signal then.
        let _ = self.0.send(signal);
    }
}

/// The child process, once started, and the reload requests for it.
pub struct Supervisor {
    child: Option<Running>,
    requests: mpsc::UnboundedReceiver<Signal>,
}

/// A started child.
struct Running {
    child: tokio::process::Child,
    program: String,
}

impl Supervisor {
    /// A supervisor with no child yet, and the handle through which reloads are asked for.
    pub fn new() -> (Supervisor, Reloader) {
        let (tx, rx) = mpsc::unbounded_channel();
        let supervisor = Supervisor {
            child: None,
            requests: rx,
        };
        (supervisor, Reloader(tx))
    }

    /// Starts `command` (program and arguments) with reconfig's stdin, stdout and stderr.
    /// Reloads asked for before are dropped: the child reads the current files as it starts.
    pub fn start(&mut self, command: &[OsString]) -> Result<(), SuperviseError> {
        let Some((program, args)) = command.split_first() else {
            return Ok(());
        };
        while self.requests.try_recv().is_ok() {}
        let name = program.to_string_lossy().into_owned();
        let child = crate::apply::scrubbed(program)
            .args(args)
            .stdin(Stdio::inherit())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|source| SuperviseError::Spawn {
                program: name.clone(),
                source,
            })?;
        info!("started {name} (pid {})", child.id().unwrap_or_default());
        self.child = Some(Running {
            child,
            program: name,
        });
        Ok(())
    }

    /// Whether a child runs that signals can be passed on to.
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// Passes `signal` on to the child, if one runs.
    pub fn forward(&self, signal: Signal) {
        match &self.child {
            Some(running) => {
                debug!("passing {signal} on to {}", running.program);
                running.signal(signal);
            }
            None => debug!("{signal} received, no child to pass it on to"),
        }
    }

    /// Delivers reload requests until the child exits, then returns the exit code to leave
    /// with: the child's, or 128+N when signal N killed it. Never returns without a child.
    pub async fn exited(&mut self) -> u8 {
        loop {
            let Some(running) = self.child.as_mut() else {
                match self.requests.recv().await {
                    Some(signal) => debug!("no child to send {signal} to"),
                    None => std::future::pending().await,
                }
                continue;
            };
            tokio::select! {
                Some(signal) = self.requests.recv() => {
                    debug!("sending {signal} to {} after a change", running.program);
                    running.signal(signal);
                }
                status = running.child.wait() => {
                    let code = exit_code(&running.program, status);
                    self.child = None;
                    return code;
                }
            }
        }
    }
}

impl Running {
    /// Signals the child by its pid, which tokio forgets once the child is reaped.
    fn signal(&self, signal: Signal) {
        let Some(pid) = self.child.id() else {
            return;
        };
        let pid = Pid::from_raw(pid as i32);
        if let Err(e) = kill(pid, signal) {
            warn!("cannot send {signal} to {} (pid {pid}): {e}", self.program);
        }
    }
}

/// The exit code passed on for the child's `status`, logged once.
fn exit_code(program: &str, status: io::Result<ExitStatus>) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => {
                info!("{program} exited with status {code}");
                // Exit statuses are 0..=255 on Unix.
                code as u8
            }
            (None, Some(signal)) => {
                let name =
                    Signal::try_from(signal).map_or_else(|_| signal.to_string(), |s| s.to_string());
                let code = 128 + signal as u8;
                info!("{program} was killed by {name}; exiting with {code}");
                code
            }
            (None, None) => {
                error!("{program} ended with an unknown status {status}");
                1
            }
        },
        Err(e) => {
            error!("cannot wait for {program}: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<OsString> {
        ["sh", "-c", script].map(OsString::from).to_vec()
    }

    #[tokio::test]
    async fn exit_status_and_signal_death_become_exit_codes() {
        let (mut supervisor, _reloader) = Supervisor::new();
        supervisor.start(&sh("exit 7")).unwrap();
        assert_eq!(supervisor.exited().await, 7);
        assert!(!supervisor.running());
        supervisor.start(&sh("kill -KILL $$")).unwrap();
        assert_eq!(supervisor.exited().await, 128 + 9);
    }

    #[tokio::test]
    async fn reload_requests_reach_the_running_child_only() {
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("ready");
        let (mut supervisor, reloader) = Supervisor::new();
        // Asked for before the start: dropped, or the child would die of SIGUSR2 at once.
        reloader.send(Signal::SIGUSR2);
        let script = format!(
            "trap 'exit 3' USR1; touch {}; while :; do sleep 0.01; done",
            ready.display()
        );
        supervisor.start(&sh(&script)).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !ready.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "the child never got ready"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        reloader.send(Signal::SIGUSR1);
        assert_eq!(supervisor.exited().await, 3);
    }

    #[test]
    fn spawn_failures_have_shell_exit_codes() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = runtime.enter();
        let (mut supervisor, _reloader) = Supervisor::new();
        let missing = supervisor
            .start(&[OsString::from("/nonexistent/program")])
            .unwrap_err();
        assert_eq!(missing.exit_code(), 127);
        assert!(
            missing.to_string().contains("/nonexistent/program"),
            "{missing}"
        );
        let not_executable = supervisor.start(&[OsString::from("/")]).unwrap_err();
        assert_eq!(not_executable.exit_code(), 126);
    }
}
