//! Running check and reload commands with a time limit, and the scrubbed environment (and
//! open-file limit) of every process reconfig starts.
//!
//! A command is a shell line run as `/bin/sh -c CMD` with stdin from `/dev/null` and
//! `RECONFIG_ID`, `RECONFIG_TARGET`, `RECONFIG_KEY` in its environment, and none of
//! reconfig's secrets ([`scrubbed`]). It runs in a process group of its own, so that a
//! timeout (or a cancelled caller) can kill everything it started, not just the shell; if
//! reconfig dies first, the kernel tells the shell, which kills the group ([`GUARD`]). Of its stdout and stderr, the
//! last 64 KiB of each are kept and logged at info level under the entry's id (with
//! how much came before), so reconfig's memory and log stay bounded whatever a command
//! prints; the last few lines travel in the error of a failed command so the operator sees
//! why without digging through the log.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::{getpid, getppid, Pid};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinHandle;

use crate::config::Entry;
use crate::etcd::SECRET_ENV;
use crate::fdlimit;

/// How many trailing output lines a [`CommandError::Failed`] carries.
const TAIL_LINES: usize = 5;
/// Longest output line kept in the error's tail, in characters.
const TAIL_LINE_CHARS: usize = 200;
/// Bytes of a line kept while it is read: enough for [`TAIL_LINE_CHARS`] characters.
const LINE_BYTES: usize = TAIL_LINE_CHARS * 4;
/// Bytes of each output stream kept for the log: its end.
const TAIL_BYTES: usize = 64 << 10;
/// Bytes read from a stream at a time.
const CHUNK_BYTES: usize = 8 << 10;
/// How long to keep collecting output after the shell exited while a process it started
/// still runs in its group: such a background process may hold the pipes open for good,
/// and what it writes later is logged on without holding up the caller.
const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// The shell that runs every command: the command runs as its job, and when the kernel
/// tells it reconfig died (SIGTERM, its parent-death signal) it kills its whole process
/// group — the command and everything the command started, not just one shell.
const GUARD: &str = r#"trap 'kill -KILL 0' TERM; /bin/sh -c "$1" & wait $!"#;

/// A command for `program` whose environment is reconfig's without its secrets, and whose
/// open-file limit is the one reconfig was given: what every process reconfig starts
/// (check and reload commands, the supervised child) gets.
pub fn scrubbed(program: impl AsRef<OsStr>) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(program);
    for var in SECRET_ENV {
        command.env_remove(var);
    }
    fdlimit::hand_back(&mut command);
    command
}

/// Why a check or reload command did not succeed; shown on one line naming the command.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The shell could not be started or waited for (no `/bin/sh`, out of processes, ...).
    #[error("`{}` could not be run: {source}", one_line(.command))]
    Spawn {
        /// The command line.
        command: String,
        /// The operating system's reason.
        source: io::Error,
    },
    /// The command ran and exited unsuccessfully.
    #[error("`{}` failed ({}){}", one_line(.command), describe_status(.status), tail_suffix(.tail))]
    Failed {
        /// The command line.
        command: String,
        /// How the shell ended.
        status: ExitStatus,
        /// The last lines of its stdout and stderr, in arrival order.
        tail: Vec<String>,
    },
    /// The command outlived its time limit; its whole process group was killed.
    #[error("`{}` timed out after {after:?}", one_line(.command))]
    TimedOut {
        /// The command line.
        command: String,
        /// The time limit it exceeded.
        after: Duration,
    },
}

/// Runs `command` for `entry` and waits for it, killing its process group after `timeout`.
///
/// Dropping the returned future before it finishes kills the process group too, so a
/// cancelled caller never leaves a command running unsupervised.
pub async fn run(entry: &Entry, command: &str, timeout: Duration) -> Result<(), CommandError> {
    let mut shell = scrubbed("/bin/sh");
    shell
        .args(["-c", GUARD, "reconfig-command", command])
        .env("RECONFIG_ID", &entry.id)
        .env("RECONFIG_TARGET", &entry.target)
        .env("RECONFIG_KEY", &entry.key)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let parent = getpid();
    // SAFETY: the closure runs in the child between fork and exec and only makes
    // async-signal-safe system calls (prctl, getppid).
    unsafe {
        shell.pre_exec(move || die_with_parent(parent));
    }
    let mut child = shell.spawn().map_err(|source| CommandError::Spawn {
        command: command.to_string(),
        source,
    })?;
    let mut group = GroupGuard(child.id().map(|pid| Pid::from_raw(pid as i32)));
    let lines = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL_LINES)));
    let id: Arc<str> = Arc::from(entry.id.as_str());
    let readers = [
        child
            .stdout
            .take()
            .map(|s| spawn_reader(s, "stdout", &id, &lines)),
        child
            .stderr
            .take()
            .map(|s| spawn_reader(s, "stderr", &id, &lines)),
    ];

    let started = tokio::time::Instant::now();
    let waited = tokio::time::timeout(timeout, child.wait()).await;
    let status = match waited {
        Ok(Ok(status)) => {
            // The shell is done; anything it left running in the background was started on
            // purpose (a daemon, say) and is not ours to kill.
            let pgid = group.0.take();
            // With nobody left in the group, every writer of the pipes is gone: the output
            // ends at once, however long the machine takes to get to reading it.
            let alone = pgid.is_some_and(|pgid| killpg(pgid, None).is_err());
            let limit = if alone {
                timeout.saturating_sub(started.elapsed()).max(DRAIN_GRACE)
            } else {
                DRAIN_GRACE
            };
            drain(readers, limit).await;
            status
        }
        Ok(Err(source)) => {
            return Err(CommandError::Spawn {
                command: command.to_string(),
                source,
            })
        }
        Err(_) => {
            drop(group);
            // Reap the shell; SIGKILL leaves it no way to linger.
            let _ = child.wait().await;
            drain(readers, DRAIN_GRACE).await;
            return Err(CommandError::TimedOut {
                command: command.to_string(),
                after: timeout,
            });
        }
    };
    if status.success() {
        return Ok(());
    }
    let lines = lines.lock().unwrap_or_else(|e| e.into_inner());
    Err(CommandError::Failed {
        command: command.to_string(),
        status,
        tail: lines.iter().cloned().collect(),
    })
}

/// Kills the command's whole process group when dropped while still armed.
struct GroupGuard(Option<Pid>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            // ESRCH (everyone already gone) is the only expected failure and needs no action.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

/// In the shell, before exec: asks the kernel to send it SIGTERM when reconfig dies (the
/// thread that started it, in fact: commands start on the runtime's thread, which lives as
/// long as the process), on which [`GUARD`] kills the group; gives up if reconfig already
/// died after the fork.
fn die_with_parent(parent: Pid) -> io::Result<()> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)?;
    if getppid() != parent {
        return Err(io::Error::other(
            "reconfig exited before the command started",
        ));
    }
    Ok(())
}

/// Reads `stream` to its end, keeping its tail and feeding complete lines to `lines`; logs
/// the tail at the end.
fn spawn_reader(
    mut stream: impl AsyncRead + Unpin + Send + 'static,
    name: &'static str,
    id: &Arc<str>,
    lines: &Arc<Mutex<VecDeque<String>>>,
) -> JoinHandle<()> {
    let id = Arc::clone(id);
    let lines = Arc::clone(lines);
    tokio::spawn(async move {
        let mut output = Output::default();
        let mut chunk = vec![0; CHUNK_BYTES];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => output.push(&chunk[..n], &lines),
            }
        }
        output.finish(&lines);
        output.log(&id, name);
    })
}

/// What is kept of one output stream: its last [`TAIL_BYTES`], how many bytes came before
/// them, and the start of the line being read.
#[derive(Debug, Default)]
struct Output {
    tail: VecDeque<u8>,
    dropped: u64,
    line: Vec<u8>,
}

impl Output {
    /// Takes in `chunk`; each line it completes goes to `lines`, the last [`TAIL_LINES`] of
    /// which are kept.
    fn push(&mut self, chunk: &[u8], lines: &Mutex<VecDeque<String>>) {
        self.tail.extend(chunk);
        let overflow = self.tail.len().saturating_sub(TAIL_BYTES);
        self.tail.drain(..overflow);
        self.dropped += overflow as u64;
        for (i, piece) in chunk.split(|&b| b == b'\n').enumerate() {
            if i > 0 {
                self.end_line(lines);
            }
            let room = LINE_BYTES - self.line.len();
            self.line.extend_from_slice(&piece[..piece.len().min(room)]);
        }
    }

    /// Counts a last line without a newline, as `read_line` would.
    fn finish(&mut self, lines: &Mutex<VecDeque<String>>) {
        if !self.line.is_empty() {
            self.end_line(lines);
        }
    }

    fn end_line(&mut self, lines: &Mutex<VecDeque<String>>) {
        let text = String::from_utf8_lossy(&self.line);
        let line = text.trim_end_matches('\r').chars().take(TAIL_LINE_CHARS);
        let mut lines = lines.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() == TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(line.collect());
        self.line.clear();
    }

    /// Logs the tail line by line under the entry's id, after a line saying how much of the
    /// output was dropped, if any.
    fn log(&self, id: &str, stream: &'static str) {
        if self.tail.is_empty() {
            return;
        }
        if self.dropped > 0 {
            tracing::info!(
                entry = %id,
                stream,
                "{} bytes of output dropped; the last {} follow",
                self.dropped,
                self.tail.len()
            );
        }
        let bytes: Vec<u8> = self.tail.iter().copied().collect();
        let text = String::from_utf8_lossy(&bytes);
        for line in text.strip_suffix('\n').unwrap_or(&text).split('\n') {
            tracing::info!(entry = %id, stream, "{}", line.trim_end_matches('\r'));
        }
    }
}

/// Waits for the output loggers, but no longer than `limit`; late ones run on.
async fn drain(readers: [Option<JoinHandle<()>>; 2], limit: Duration) {
    let all = async {
        for reader in readers.into_iter().flatten() {
            let _ = reader.await;
        }
    };
    if tokio::time::timeout(limit, all).await.is_err() {
        tracing::debug!("a background process still holds the command's output open");
    }
}

/// `exit 3`, or `killed by SIGKILL`.
fn describe_status(status: &ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(signal)) => match Signal::try_from(signal) {
            Ok(name) => format!("killed by {name}"),
            Err(_) => format!("killed by signal {signal}"),
        },
        (None, None) => status.to_string(),
    }
}

/// `: line | line` for a non-empty tail, else nothing.
fn tail_suffix(tail: &[String]) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!(": {}", tail.join(" | "))
    }
}

/// A multi-line shell script as one line, statements joined the way `sh` would read them.
fn one_line(command: &str) -> String {
    command.trim().lines().collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Instant;

    use super::*;

    /// Whether `pid` is gone: no such process, or a zombie nobody has reaped yet.
    fn is_dead(pid: &str) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit(") ")
                .next()
                .is_some_and(|rest| rest.starts_with('Z')),
        }
    }

    #[tokio::test]
    async fn success_sees_the_entry_in_its_environment() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("env");
        let cmd = format!(
            "printf '%s|%s|%s' \"$RECONFIG_ID\" \"$RECONFIG_TARGET\" \"$RECONFIG_KEY\" > '{}'",
            out.display()
        );
        run(
            &Entry::for_test(Path::new("/etc/x.conf")),
            &cmd,
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        let seen = std::fs::read_to_string(out).unwrap();
        assert_eq!(seen, "test-entry|/etc/x.conf|/test/key");
    }

    #[tokio::test]
    async fn failure_carries_status_and_last_lines_on_one_line() {
        let cmd = "for i in 1 2 3 4 5 6 7; do echo line$i; done; echo oops >&2; exit 3";
        let err = run(
            &Entry::for_test(Path::new("/x")),
            cmd,
            Duration::from_secs(10),
        )
        .await
        .unwrap_err();
        let CommandError::Failed { status, tail, .. } = &err else {
            panic!("expected Failed, got {err:?}");
        };
        assert_eq!(status.code(), Some(3));
        assert_eq!(tail.len(), TAIL_LINES);
        assert_eq!(tail.last().map(String::as_str), Some("oops"));
        assert!(!tail.iter().any(|l| l == "line1"), "{tail:?}");
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("`{cmd}` failed (exit 3): ")),
            "{message}"
        );
        assert!(message.ends_with("line7 | oops"), "{message}");
        assert!(!message.contains('\n'));
    }

    #[tokio::test]
    async fn multi_line_command_is_named_on_one_line() {
        let err = run(
            &Entry::for_test(Path::new("/x")),
            "true\nfalse\n",
            Duration::from_secs(10),
        )
        .await
        .unwrap_err();
        assert_eq!(err.to_string(), "`true; false` failed (exit 1)");
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let marker = dir.path().join("marker");
        // A background child that would leave a marker long after the timeout, and a
        // foreground one that would outlive it; both record their pid first.
        let cmd = format!(
            "(sleep 30; touch '{marker}') & echo $! > '{pids}.tmp'; \
             sleep 1000 & echo $! >> '{pids}.tmp'; mv '{pids}.tmp' '{pids}'; wait",
            marker = marker.display(),
            pids = pids.display()
        );
        let limit = Duration::from_secs(1);
        let err = run(&Entry::for_test(Path::new("/x")), &cmd, limit)
            .await
            .unwrap_err();
        assert!(
            matches!(err, CommandError::TimedOut { after, .. } if after == limit),
            "{err:?}"
        );
        assert!(err.to_string().ends_with("timed out after 1s"), "{err}");

        let pids = std::fs::read_to_string(&pids).expect("the command wrote its pids in time");
        let deadline = Instant::now() + Duration::from_secs(20);
        for pid in pids.split_whitespace() {
            while !is_dead(pid) {
                assert!(
                    Instant::now() < deadline,
                    "process {pid} survived the timeout"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // The subshell that would have made the marker is dead: it never can.
        assert!(
            !marker.exists(),
            "a child of the timed-out command kept running"
        );
    }

    #[tokio::test]
    async fn background_process_holding_the_output_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        let pid = dir.path().join("pid");
        let cmd = format!("sleep 1000 & echo $! > '{}'; echo done", pid.display());
        run(
            &Entry::for_test(Path::new("/x")),
            &cmd,
            Duration::from_secs(2000),
        )
        .await
        .unwrap();
        let pid = std::fs::read_to_string(pid).unwrap();
        // The command returned while its background process still holds the output open.
        assert!(
            !is_dead(pid.trim()),
            "run waited for the background process"
        );
        // Not ours to kill, but the test should not leave it behind.
        let pid = Pid::from_raw(pid.trim().parse().unwrap());
        nix::sys::signal::kill(pid, Signal::SIGKILL).unwrap();
    }

    #[test]
    fn output_keeps_a_bounded_tail_and_counts_what_it_dropped() {
        let lines = Mutex::new(VecDeque::new());
        let mut output = Output::default();
        let endless = vec![b'x'; CHUNK_BYTES];
        let chunks = 3 * TAIL_BYTES / CHUNK_BYTES;
        for _ in 0..chunks {
            output.push(&endless, &lines);
            assert!(output.tail.len() <= TAIL_BYTES);
            assert!(output.line.len() <= LINE_BYTES);
        }
        let end = b"\r\nlast";
        output.push(end, &lines);
        output.finish(&lines);
        let printed = (chunks * CHUNK_BYTES + end.len()) as u64;
        assert_eq!(output.tail.len(), TAIL_BYTES);
        assert_eq!(output.dropped, printed - TAIL_BYTES as u64);
        assert!(output.tail.iter().rev().take(4).eq(b"tsal"));
        let lines = lines.into_inner().unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0], "x".repeat(TAIL_LINE_CHARS));
        assert_eq!(lines[1], "last");
    }

    #[test]
    fn output_is_logged_line_by_line_with_the_entry_id() {
        #[derive(Clone, Default)]
        struct Captured(Arc<Mutex<Vec<u8>>>);
        impl io::Write for Captured {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }

        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        tracing::subscriber::with_default(subscriber, || {
            runtime.block_on(async {
                run(
                    &Entry::for_test(Path::new("/x")),
                    "echo first; echo second >&2",
                    Duration::from_secs(10),
                )
                .await
                .unwrap();
            })
        });
        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert_eq!(log.lines().count(), 2, "{log}");
        for (stream, text) in [("stdout", "first"), ("stderr", "second")] {
            let stream = format!("stream=\"{stream}\"");
            let logged = log.lines().any(|line| {
                line.contains(" INFO ")
                    && line.contains("entry=test-entry")
                    && line.contains(&stream)
                    && line.contains(text)
            });
            assert!(logged, "{stream} {text} missing in {log}");
        }
    }
}
