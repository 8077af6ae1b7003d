//! A member, or a grpc-proxy, that stops answering while it serves the watch (frozen with
//! `SIGSTOP`, as a paused VM or a thrashing host would be): the daemon, `reconfig dispense`
//! and `etcd-util -o WATCH` each abandon the silent stream for another endpoint while it
//! is still frozen and resume at their revision there, so changes made through another
//! member arrive, none lost. A quiet, healthy stream is kept: no reconnect, direct or
//! behind a proxy, with the default settings.
//!
//! The daemon's run goes through every request a reconnect makes: etcd has auth on with
//! tokens that expire after 2 s (a fresh token for the new stream), and the entry has
//! altkeys (a read at every render).
//!
//! The tests run one at a time: they measure how soon a dead stream is noticed, which a
//! machine busy with several clusters at once would blur. The latency is printed, not
//! bounded (below the freeze): it depends on the machine.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;
use nix::sys::signal::Signal;

const LIMIT: Duration = Duration::from_secs(30);
/// How long the member serving the watch stays frozen.
const FREEZE: Duration = Duration::from_secs(60);
/// How long a healthy stream is left quiet.
const QUIET: Duration = Duration::from_secs(30);

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Every pair of the tree as `key=value`.
const TREE_TMPL: &str = "<% for k, v in data %>
<%= k %>=<%= v %>
<% endfor %>
";

/// The changes made while the member is frozen, one revision each: the second value of
/// `/w/a` must not hide its first from a program that prints every event.
const CHANGES: [(&str, &str); 3] = [("/w/a", "1"), ("/w/b", "1"), ("/w/a", "2")];

/// The programs that follow etcd through the watch loop.
#[derive(Debug, Clone, Copy)]
enum Program {
    Daemon,
    Dispense,
    EtcdUtil,
}

/// One of them, watching `/w`.
struct Watcher {
    program: Program,
    process: Daemon,
    /// The daemon's target, or dispense's directory.
    out: PathBuf,
}

impl Watcher {
    /// Starts `program` on `endpoints`, as etcd's root user when `auth`.
    fn start(program: Program, dir: &Path, endpoints: &str, auth: bool) -> Watcher {
        let log = dir.join(format!("{program:?}.log"));
        let (process, out) = match program {
            Program::Daemon => {
                let target = dir.join("w.conf");
                let entry = format!(
                    r#"{{"id":"w","key":"/w","recursive":true,"source":"tree.tmpl",
                        "target":"{}","altkeys":{{"x":"/x"}}}}"#,
                    target.display()
                );
                let cfg = cfgdir(dir, &[("w", entry)], &[("tree.tmpl", TREE_TMPL)]);
                let args = ["--cfgdir", cfg.to_str().unwrap(), "--endpoints", endpoints];
                let mut daemon = reconfig();
                if auth {
                    daemon
                        .env("ETCD_USERNAME", "root")
                        .env("ETCD_PASSWORD", "root-pw");
                }
                (Daemon::spawn(daemon, args, &log), target)
            }
            Program::Dispense => {
                let mirror = dir.join("mirror");
                std::fs::create_dir(&mirror).unwrap();
                let args = [
                    "dispense",
                    "-p",
                    "/w",
                    "-t",
                    mirror.to_str().unwrap(),
                    "--endpoints",
                    endpoints,
                ];
                (Daemon::start(args, &log), mirror)
            }
            Program::EtcdUtil => {
                let args = ["--endpoints", endpoints, "-o", "watch", "-r", "-k", "/w"];
                (
                    Daemon::spawn(binary(&etcd_util()), args, &log),
                    PathBuf::new(),
                )
            }
        };
        Watcher {
            program,
            process,
            out,
        }
    }

    /// Whether it shows `changes`: every one of them printed, in a row and in order, by
    /// etcd-util, which prints every event; each key's last value for the others.
    fn shows(&self, changes: &[(&str, &str)]) -> bool {
        let read = |path: PathBuf| std::fs::read_to_string(path).unwrap_or_default();
        let last = |key: &str| changes.iter().rev().find(|(k, _)| *k == key).unwrap().1;
        match self.program {
            Program::Daemon => {
                let text = read(self.out.clone());
                changes
                    .iter()
                    .all(|(key, _)| text.lines().any(|l| l == format!("{key}={}", last(key))))
            }
            Program::Dispense => changes
                .iter()
                .all(|(key, _)| read(self.out.join(key.trim_start_matches("/w/"))) == last(key)),
            Program::EtcdUtil => {
                let printed: Vec<(String, String)> = self
                    .process
                    .log()
                    .lines()
                    .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                    .filter_map(|event| {
                        let field = |name: &str| Some(event.get(name)?.as_str()?.to_string());
                        Some((field("key")?, field("value")?))
                    })
                    .collect();
                printed.windows(changes.len()).any(|run| {
                    run.iter()
                        .zip(changes)
                        .all(|((k, v), (key, value))| k == key && v == value)
                })
            }
        }
    }

    /// Waits until it shows `changes`, putting them again for etcd-util, which watches
    /// from the revision current when its watch was created.
    async fn sees(&self, etcd: &EtcdServer, changes: &[(&str, &str)]) {
        for round in 0..100 {
            for (key, value) in changes {
                etcd.put_via(0, key, value).await;
            }
            let limit = match self.program {
                Program::EtcdUtil => Duration::from_millis(300),
                Program::Daemon | Program::Dispense => LIMIT,
            };
            if eventually(limit, || self.shows(changes)).await {
                return;
            }
            assert!(
                round < 99 && matches!(self.program, Program::EtcdUtil),
                "{:?} never showed {changes:?}:\n{}",
                self.program,
                self.process.log()
            );
        }
    }
}

/// Freezes what serves `watcher`'s stream with `freeze`, makes [`CHANGES`] through member
/// `through`, and asserts that they arrive while it is still frozen; `thaw` continues it.
/// Returns how long the changes took to arrive after the last put.
async fn arrives_while_frozen(
    etcd: &EtcdServer,
    watcher: &Watcher,
    through: usize,
    freeze: impl FnOnce(),
    thaw: impl FnOnce(),
) -> Duration {
    freeze();
    let frozen = Instant::now();
    for (key, value) in CHANGES {
        etcd.put_via(through, key, value).await;
    }
    let put = Instant::now();
    let arrived = eventually(FREEZE.saturating_sub(frozen.elapsed()), || {
        watcher.shows(&CHANGES)
    })
    .await;
    let arrival = Instant::now();
    let still_frozen = arrival - frozen < FREEZE;
    thaw();
    assert!(
        arrived && still_frozen,
        "{:?}: the changes did not arrive while the stream's server was frozen ({:?} \
         frozen):\n{}",
        watcher.program,
        frozen.elapsed(),
        watcher.process.log()
    );
    let latency = arrival - put;
    eprintln!(
        "{:?}: the changes arrived {latency:?} after the last put, {:?} after the freeze",
        watcher.program,
        arrival - frozen
    );
    latency
}

/// A 3-member cluster; `program` watches it; the member serving its stream is frozen.
async fn frozen_member(program: Program) {
    let _serial = SERIAL.lock().await;
    let auth = matches!(program, Program::Daemon);
    let etcd = if auth {
        let etcd = EtcdVersion::V34
            .cluster_args(3, &["--auth-token-ttl", "2"])
            .await;
        etcd.enable_auth().await;
        etcd
    } else {
        EtcdServer::cluster(3).await
    };
    let dir = tempfile::tempdir().unwrap();
    let watcher = Watcher::start(program, dir.path(), &etcd.endpoint, auth);
    watcher.sees(&etcd, &[("/w/a", "0")]).await;
    let member = etcd.watch_member().await;
    let other = (member + 1) % etcd.size();
    arrives_while_frozen(
        &etcd,
        &watcher,
        other,
        || etcd.signal(member, Signal::SIGSTOP),
        || etcd.signal(member, Signal::SIGCONT),
    )
    .await;
    // And it goes on following etcd.
    watcher.sees(&etcd, &[("/w/b", "2")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_leaves_a_frozen_member_within_seconds() {
    frozen_member(Program::Daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispense_leaves_a_frozen_member_within_seconds() {
    frozen_member(Program::Dispense).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_util_watch_leaves_a_frozen_member_within_seconds() {
    frozen_member(Program::EtcdUtil).await;
}

/// Two proxies as the endpoints, the second started only after the daemon synced through
/// the first, so the first serves the stream; then the first is frozen. (A member frozen
/// behind a proxy is the proxy's to notice: its clients' streams end at the proxy.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_grpc_proxies_a_frozen_proxy_is_left_within_seconds() {
    let _serial = SERIAL.lock().await;
    let etcd = EtcdServer::cluster(3).await;
    let first = GrpcProxy::start(&etcd).await;
    let second_address = format!("127.0.0.1:{}", free_port());
    let endpoints = format!("{},http://{second_address}", first.endpoint);
    let dir = tempfile::tempdir().unwrap();
    let watcher = Watcher::start(Program::Daemon, dir.path(), &endpoints, false);
    watcher.sees(&etcd, &[("/w/a", "0")]).await;
    let _second = GrpcProxy::start_at(&etcd, &second_address).await;
    arrives_while_frozen(
        &etcd,
        &watcher,
        0,
        || first.signal(Signal::SIGSTOP),
        || first.signal(Signal::SIGCONT),
    )
    .await;
    watcher.sees(&etcd, &[("/w/b", "2")]).await;
}

/// The value of the series `name` in a metrics text.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The port of an endpoint URL.
fn port(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

/// With the default settings, a stream that brings nothing for a while is checked, and
/// kept while its server answers: no reconnect, neither on the members nor behind a proxy;
/// and every request goes over the stream's one connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_healthy_stream_is_kept() {
    let _serial = SERIAL.lock().await;
    let etcd = EtcdServer::cluster(3).await;
    let proxy = GrpcProxy::start(&etcd).await;
    let dir = tempfile::tempdir().unwrap();
    let target = |name: &str| dir.path().join(format!("{name}.conf"));
    let entries: Vec<(&str, String)> = ["direct", "proxied"]
        .map(|name| {
            let json = format!(
                r#"{{"id":"{name}","key":"/w","recursive":true,"source":"tree.tmpl",
                    "target":"{}"}}"#,
                target(name).display()
            );
            (name, json)
        })
        .to_vec();
    let mut daemons = Vec::new();
    for ((name, entry), endpoints) in entries.into_iter().zip([&etcd.endpoint, &proxy.endpoint]) {
        let cfg = cfgdir(
            &dir.path().join(name),
            &[(name, entry)],
            &[("tree.tmpl", TREE_TMPL)],
        );
        // Checked every 5 s of silence as by default, with a generous limit on the answer:
        // what is tested is that an answering server keeps its stream, not how fast a
        // loaded machine answers.
        let args = [
            "--cfgdir",
            cfg.to_str().unwrap(),
            "--endpoints",
            endpoints,
            "--metrics-addr",
            "127.0.0.1:0",
            "--connect-timeout",
            "20s",
        ];
        let daemon = Daemon::start(args, &dir.path().join(format!("{name}.log")));
        let ports: Vec<u16> = endpoints.split(',').map(port).collect();
        daemons.push((name, daemon, ports));
    }
    let all_show = |value: &'static str| {
        let daemons = &daemons;
        let target = &target;
        async move {
            for (name, daemon, _) in daemons {
                let text = format!("/w/a={value}\n");
                wait_for_content(&target(name), &text, LIMIT, || daemon.log()).await;
            }
        }
    };
    etcd.put_via(0, "/w/a", "0").await;
    all_show("0").await;
    // Quiet: nothing to poll for, the point is that nothing happens.
    tokio::time::sleep(QUIET).await;
    for (name, daemon, ports) in &daemons {
        let addr = metrics_addr(daemon).await;
        let (_, metrics) = http_get(&addr, "/metrics").await.unwrap();
        let reconnects = sample(&metrics, "reconfig_watch_reconnects_total");
        let log = daemon.log();
        assert_eq!(reconnects, Some(0.0), "{name}: {metrics}\n{log}");
        assert!(!log.contains("watch lost"), "{name}: {log}");
        let pid = daemon.pid().as_raw() as u32;
        let connections: usize = ports.iter().map(|&p| tcp_connections_to(pid, p)).sum();
        assert_eq!(connections, 1, "{name}: connections to {ports:?}");
    }
    etcd.put_via(0, "/w/a", "1").await;
    all_show("1").await;
}
