//! Measuring tools: process CPU and memory from /proc, percentiles, waiting for a file to
//! hold an expected content (woken by inotify, not by polling), and etcd's own counters.

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// CPU seconds (user + system) a process has used so far: its CPU-time clock (to the
/// nanosecond, every thread it ever had), else `/proc/PID/stat` (in clock ticks, which
/// truncates a light process's few milliseconds to nothing).
pub fn cpu_seconds(pid: u32) -> f64 {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: writes the clock id into the local above.
    if unsafe { libc::clock_getcpuclockid(pid as libc::pid_t, &mut clock) } == 0 {
        if let Some(seconds) = clock_seconds(clock) {
            return seconds;
        }
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| {
        f.iter().filter_map(|v| v.parse::<f64>().ok()).sum()
    });
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    ticks / hz
}

/// Resident memory of a process, in MiB.
pub fn rss_mib(pid: u32) -> f64 {
    status_mib(pid, "VmRSS:")
}

/// Of a process's resident memory, its own (anonymous: heap, stacks) and the mapped files'
/// (the binary and libraries, shared with every other process mapping them), in MiB.
pub fn rss_split_mib(pid: u32) -> (f64, f64) {
    (status_mib(pid, "RssAnon:"), status_mib(pid, "RssFile:"))
}

/// A memory figure (`field` with its colon) of `/proc/PID/status`, in MiB.
fn status_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// A process's share of memory from `/proc/PID/smaps_rollup`, in MiB.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    /// Resident pages, each divided by the number of processes mapping it.
    pub pss: f64,
    /// Resident pages no other process maps (Private_Clean + Private_Dirty).
    pub private: f64,
    /// Resident pages, shared ones counted in full.
    pub rss: f64,
}

/// The memory of a process (zeros once it is gone).
pub fn memory(pid: u32) -> Memory {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |name: &str| {
        rollup
            .lines()
            .filter_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .filter_map(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .sum::<f64>()
            / 1024.0
    };
    Memory {
        pss: field("Pss"),
        private: field("Private_Clean") + field("Private_Dirty"),
        rss: field("Rss"),
    }
}

/// The `q` quantile (0..=1) of sorted samples.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index]
}

/// Milliseconds, for tables.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Inotify on a directory: lets a waiter sleep until something in it changes. Only the
/// events that end a change are asked for (a file closed after writing, renamed in or out,
/// created, removed), read on the waiter's own thread: with 200 daemons writing at once,
/// a watcher that took every event (each write's chown, chmod and modify too) through a
/// thread and a channel was a sixth of the machine's CPU, taken from the daemons measured.
pub struct DirWatch {
    inotify: Mutex<Inotify>,
    /// Each watched directory by its watch.
    dirs: HashMap<WatchDescriptor, PathBuf>,
}

impl DirWatch {
    /// Watches `dir` (not recursively).
    pub fn new(dir: &Path) -> DirWatch {
        Self::watching(vec![dir.to_path_buf()])
    }

    /// Watches `dir` and every directory below it now, with one inotify instance.
    pub fn recursive(dir: &Path) -> DirWatch {
        let mut dirs = vec![dir.to_path_buf()];
        let mut next = 0;
        while next < dirs.len() {
            let below: Vec<PathBuf> = std::fs::read_dir(&dirs[next])
                .expect("list watched directory")
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect();
            dirs.extend(below);
            next += 1;
        }
        Self::watching(dirs)
    }

    fn watching(paths: Vec<PathBuf>) -> DirWatch {
        let inotify = Inotify::init().expect("inotify");
        let mask = WatchMask::CLOSE_WRITE
            | WatchMask::MOVED_TO
            | WatchMask::MOVED_FROM
            | WatchMask::CREATE
            | WatchMask::DELETE;
        let dirs = paths
            .into_iter()
            .map(|dir| {
                let wd = inotify.watches().add(&dir, mask).expect("watch dir");
                (wd, dir)
            })
            .collect();
        DirWatch {
            inotify: Mutex::new(inotify),
            dirs,
        }
    }

    /// Calls `done(changed paths)` first with nothing, then after every batch of changes in
    /// the directory (nothing again when events were lost or none came for a while),
    /// until it returns true; the time it did, or None after `limit`.
    pub fn wait_until(
        &self,
        limit: Duration,
        mut done: impl FnMut(&[PathBuf]) -> bool,
    ) -> Option<Instant> {
        let deadline = Instant::now() + limit;
        let mut inotify = self.inotify.lock().unwrap();
        let mut buffer = vec![0; 64 * 1024];
        let mut changed = Vec::new();
        loop {
            if done(&changed) {
                return Some(Instant::now());
            }
            changed.clear();
            let left = deadline.checked_duration_since(Instant::now())?;
            let wait = PollTimeout::try_from(left.min(Duration::from_millis(100)))
                .unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(inotify.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, wait) {
                Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
                Ok(_) => {}
                Err(e) => panic!("poll inotify: {e}"),
            }
            // Everything queued, until the (non-blocking) descriptor has no more.
            let mut lost = false;
            loop {
                let events = match inotify.read_events(&mut buffer) {
                    Ok(events) => events,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("read inotify: {e}"),
                };
                for event in events {
                    lost |= event.mask.contains(EventMask::Q_OVERFLOW);
                    if let (Some(dir), Some(name)) = (self.dirs.get(&event.wd), event.name) {
                        changed.push(dir.join(name));
                    }
                }
            }
            if lost {
                // Some events were dropped: look at everything.
                changed.clear();
            }
        }
    }
}

/// Sum of the samples of a Prometheus metric whose line starts with `prefix`.
pub fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// etcd's `/metrics` page.
pub fn etcd_metrics(endpoint: &str) -> String {
    ureq::get(&format!("{endpoint}/metrics"))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .unwrap_or_default()
}

/// Exit status, wall time and peak resident memory (MiB) of a command run to completion.
/// The peak is the command's own: its `VmHWM`, read while ptrace holds it at its exit.
/// `wait4`'s peak would not do — a child spawned with vfork takes this process's address
/// space to its exec, and the kernel keeps that one's peak too: after the other scenarios
/// have run, this benchmark's own 20 MiB.
pub fn run_measured(cmd: &mut std::process::Command) -> (std::process::ExitStatus, Duration, f64) {
    use std::os::unix::process::{CommandExt, ExitStatusExt};

    use nix::sys::ptrace;
    use nix::sys::signal::Signal;
    use nix::sys::wait::{waitpid, WaitStatus};

    // SAFETY: PTRACE_TRACEME is a single system call, safe between fork and exec.
    unsafe {
        cmd.pre_exec(|| ptrace::traceme().map_err(std::io::Error::from));
    }
    let started = Instant::now();
    let child = cmd.spawn().expect("spawn");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    // Reaped below by waitpid, not by Child::wait.
    drop(child);
    match waitpid(pid, None).expect("waitpid") {
        WaitStatus::Stopped(_, Signal::SIGTRAP) => {}
        other => panic!("the measured command did not stop at its exec: {other:?}"),
    }
    ptrace::setoptions(pid, ptrace::Options::PTRACE_O_TRACEEXIT).expect("ptrace options");
    ptrace::cont(pid, None).expect("ptrace cont");
    let mut peak = 0.0;
    loop {
        match waitpid(pid, None).expect("waitpid") {
            WaitStatus::PtraceEvent(_, _, event)
                if event == ptrace::Event::PTRACE_EVENT_EXIT as i32 =>
            {
                peak = status_mib(pid.as_raw() as u32, "VmHWM:");
                ptrace::cont(pid, None).expect("ptrace cont");
            }
            WaitStatus::Stopped(_, signal) => {
                ptrace::cont(pid, Some(signal)).expect("ptrace cont");
            }
            WaitStatus::Exited(_, code) => {
                let status = std::process::ExitStatus::from_raw(code << 8);
                return (status, started.elapsed(), peak);
            }
            WaitStatus::Signaled(_, signal, _) => {
                let status = std::process::ExitStatus::from_raw(signal as i32);
                return (status, started.elapsed(), peak);
            }
            _ => ptrace::cont(pid, None).expect("ptrace cont"),
        }
    }
}

/// The durability floor of a target update: CPU seconds (user + system, this thread) that
/// the file work alone costs when `bytes` replace a file `count` times the way reconfig
/// replaces a target — a new file created exclusively, written, synced, renamed over the
/// old one, the directory synced — in a tight loop, with nothing received or rendered.
pub fn durable_writes_cpu(dir: &Path, bytes: &[u8], count: usize) -> f64 {
    let started = thread_cpu_seconds();
    for _ in 0..count {
        durable_replace(dir, "floor.conf", bytes);
    }
    thread_cpu_seconds() - started
}

/// The same file work as [`durable_writes_cpu`], one write every `every` as the changes came
/// (the thread sleeping in between), rather than back to back: a write that follows an idle
/// moment costs more CPU than one in a tight loop (caches and the CPU's idle state), and a
/// daemon's changes come spread out.
pub fn durable_writes_cpu_paced(dir: &Path, bytes: &[u8], count: usize, every: Duration) -> f64 {
    let mut cpu = 0.0;
    let mut next = Instant::now();
    for _ in 0..count {
        let started = thread_cpu_seconds();
        durable_replace(dir, "floor.conf", bytes);
        cpu += thread_cpu_seconds() - started;
        next += every;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    cpu
}

/// The file work of [`durable_writes_cpu`] fed by etcd: one write for each watch response
/// with events under a prefix, received on a thread of its own through etcd-client on a
/// one-thread runtime, as the daemon receives them — what any daemon must spend on a change
/// before it decodes, renders or checks anything.
pub struct FedWrites {
    until: tokio::sync::watch::Sender<i64>,
    thread: std::thread::JoinHandle<(f64, usize)>,
}

impl FedWrites {
    /// Starts watching `prefix`; returns once the watch is in place.
    pub fn start(endpoint: &str, prefix: &str, dir: PathBuf, bytes: Vec<u8>) -> FedWrites {
        let (until, mut last) = tokio::sync::watch::channel(i64::MAX);
        let (ready, watching) = std::sync::mpsc::channel();
        let (endpoint, prefix) = (endpoint.to_string(), prefix.to_string());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let mut client = etcd_client::Client::connect([endpoint], None)
                    .await
                    .unwrap();
                let options = etcd_client::WatchOptions::new().with_prefix();
                let mut stream = client.watch(prefix, Some(options)).await.unwrap();
                let (mut writes, mut seen, mut started) = (0, 0, None);
                while seen < *last.borrow_and_update() {
                    tokio::select! {
                        message = stream.message() => {
                            let response = message.unwrap().expect("the watch ended");
                            if response.created() {
                                started = Some(thread_cpu_seconds());
                                ready.send(()).unwrap();
                            } else if !response.events().is_empty() {
                                durable_replace(&dir, "floor.conf", &bytes);
                                writes += 1;
                            }
                            seen = response.header().map_or(seen, |h| h.revision());
                        }
                        _ = last.changed() => {}
                    }
                }
                (thread_cpu_seconds() - started.unwrap(), writes)
            })
        });
        watching.recv().expect("the fed floor's watch was created");
        FedWrites { until, thread }
    }

    /// Waits until every change up to `revision` was written; the CPU seconds the thread
    /// spent from the watch's start, and the number of writes.
    pub async fn finish(self, revision: i64) -> (f64, usize) {
        self.until.send(revision).unwrap();
        let thread = self.thread;
        tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap()
    }
}

/// The durability floor of a start-up: the wall time of writing each of `files` (name,
/// bytes) into `dir` the way reconfig writes a target, one after the other.
pub fn durable_files_wall(dir: &Path, files: &[(String, String)]) -> Duration {
    let started = Instant::now();
    for (name, text) in files {
        durable_replace(dir, name, text.as_bytes());
    }
    started.elapsed()
}

/// One file replaced as reconfig replaces a target: `.NAME.staged` created exclusively,
/// written, synced, renamed over `NAME`, the directory synced.
fn durable_replace(dir: &Path, name: &str, bytes: &[u8]) {
    use std::io::Write;
    let staged = dir.join(format!(".{name}.staged"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&staged)
        .unwrap();
    file.write_all(bytes).unwrap();
    file.sync_all().unwrap();
    drop(file);
    std::fs::rename(&staged, dir.join(name)).unwrap();
    std::fs::File::open(dir).unwrap().sync_all().unwrap();
}

/// CPU seconds the calling thread has used.
fn thread_cpu_seconds() -> f64 {
    clock_seconds(libc::CLOCK_THREAD_CPUTIME_ID).expect("no thread CPU clock")
}

/// The time of `clock`, in seconds.
fn clock_seconds(clock: libc::clockid_t) -> Option<f64> {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes the time into the local above.
    let read = unsafe { libc::clock_gettime(clock, &mut time) };
    (read == 0).then(|| time.tv_sec as f64 + time.tv_nsec as f64 / 1e9)
}
