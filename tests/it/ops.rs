//! Operations against a real etcd: Prometheus metrics and `/healthz` following renders,
//! check failures and an etcd outage; the metrics server's limits against idle, slow and
//! too many clients, and the open-file limit; systemd readiness, watchdog and stopping over
//! a real notify socket; JSON logs; shell completions and the manual page.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixDatagram};

const LIMIT: Duration = Duration::from_secs(20);

/// An entry rendering `key`'s tree as `k=v` lines into `root/NAME.conf`.
fn entry(root: &Path, name: &str, key: &str, extra: &str) -> String {
    format!(
        r#"{{"id":"{name}","key":"{key}","recursive":true,"source":"tree.tmpl",
            "target":"{}/{name}.conf"{extra}}}"#,
        root.display()
    )
}

const TREE_TMPL: &str = "<% for k, v in data %>\n<%= k %>=<%= v %>\n<% endfor %>\n";

/// The value of a series (`name{labels}`) in a metrics text.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_and_healthz_follow_renders_failures_and_etcd() {
    let mut etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let good = entry(root, "good", "/good", r#","reloadcmd":"true""#);
    let picky = entry(
        root,
        "picky",
        "/picky",
        r#","checkcmd":"grep -q ok {{src}}""#,
    );
    let cfg = cfgdir(
        root,
        &[("good", good), ("picky", picky)],
        &[("tree.tmpl", TREE_TMPL)],
    );
    etcd.put_all([("/good/a", "1"), ("/picky/a", "bad")]).await;
    let args = [
        "--cfgdir",
        cfg.to_str().unwrap(),
        "--endpoints",
        &etcd.endpoint,
        "--metrics-addr",
        "127.0.0.1:0",
        "--unhealthy-after",
        "500ms",
    ];
    let daemon = Daemon::start(args, &root.join("log"));
    let addr = metrics_addr(&daemon).await;
    wait_for_content(&root.join("good.conf"), "/good/a=1\n", LIMIT, || {
        daemon.log()
    })
    .await;

    // Reloads run beside the renders: wait for good's too.
    let (_, metrics) = poll_get(&addr, "/metrics", &daemon, |_, body| {
        body.contains(r#"reconfig_check_failures_total{entry="picky"} 1"#)
            && body.contains(r#"reconfig_reloads_total{entry="good"} 1"#)
    })
    .await;
    let revision = etcd.client().await.get("/", None).await.unwrap();
    let revision = revision.header().unwrap().revision() as f64;
    for (series, value) in [
        (r#"reconfig_renders_total{entry="good"}"#, 1.0),
        (r#"reconfig_reloads_total{entry="good"}"#, 1.0),
        (r#"reconfig_renders_total{entry="picky"}"#, 1.0),
        (r#"reconfig_render_failures_total{entry="picky"}"#, 1.0),
        (r#"reconfig_entry_failing{entry="picky"}"#, 1.0),
        (r#"reconfig_entry_failing{entry="good"}"#, 0.0),
        ("reconfig_watch_reconnects_total", 0.0),
        ("reconfig_etcd_up", 1.0),
        ("reconfig_revision", revision),
    ] {
        assert_eq!(sample(&metrics, series), Some(value), "{series}\n{metrics}");
    }
    // Every per-entry series exists from start-up, at 0 until its first event.
    for series in [
        r#"reconfig_render_failures_total{entry="good"}"#,
        r#"reconfig_check_failures_total{entry="good"}"#,
        r#"reconfig_reload_failures_total{entry="good"}"#,
        r#"reconfig_reloads_total{entry="picky"}"#,
        r#"reconfig_reload_failures_total{entry="picky"}"#,
    ] {
        assert_eq!(sample(&metrics, series), Some(0.0), "{series}\n{metrics}");
    }

    // picky has been failing longer than --unhealthy-after.
    let (_, body) = poll_get(&addr, "/healthz", &daemon, |code, _| code == 503).await;
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["healthy"], false, "{body}");
    assert_eq!(health["etcd"]["up"], true, "{body}");
    assert_eq!(health["entries"]["good"]["healthy"], true, "{body}");
    assert_eq!(
        health["entries"]["good"]["last_outcome"], "changed",
        "{body}"
    );
    assert_eq!(
        health["entries"]["good"]["revision"], revision as i64,
        "{body}"
    );
    assert!(
        health["entries"]["good"]["last_success"].is_string(),
        "{body}"
    );
    let picky = &health["entries"]["picky"];
    assert_eq!(picky["healthy"], false, "{body}");
    assert_eq!(picky["last_error"]["kind"], "check", "{body}");
    assert!(picky["last_success"].is_null(), "{body}");
    let problems = health["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{body}");
    assert!(problems[0]
        .as_str()
        .unwrap()
        .starts_with("picky: failing for"));

    // A value the check accepts heals the entry; the last error stays on record.
    etcd.put_all([("/picky/a", "ok")]).await;
    wait_for_content(&root.join("picky.conf"), "/picky/a=ok\n", LIMIT, || {
        daemon.log()
    })
    .await;
    let (_, body) = poll_get(&addr, "/healthz", &daemon, |code, _| code == 200).await;
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        health["entries"]["picky"]["last_outcome"], "changed",
        "{body}"
    );
    assert_eq!(health["entries"]["picky"]["last_error"]["kind"], "check");
    let (_, metrics) = http_get(&addr, "/metrics").await.unwrap();
    let failing = sample(&metrics, r#"reconfig_entry_failing{entry="picky"}"#);
    assert_eq!(failing, Some(0.0), "{metrics}");

    // etcd away longer than --unhealthy-after, then back.
    etcd.kill(0);
    let (_, body) = poll_get(&addr, "/healthz", &daemon, |code, _| code == 503).await;
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["etcd"]["up"], false, "{body}");
    let problem = health["problems"][0].as_str().unwrap();
    assert!(problem.starts_with("etcd unreachable for"), "{body}");
    let (_, metrics) = http_get(&addr, "/metrics").await.unwrap();
    assert_eq!(sample(&metrics, "reconfig_etcd_up"), Some(0.0), "{metrics}");

    etcd.restart(0);
    poll_get(&addr, "/metrics", &daemon, |_, body| {
        sample(body, "reconfig_etcd_up") == Some(1.0)
            && sample(body, "reconfig_watch_reconnects_total") == Some(1.0)
    })
    .await;
    let (_, body) = poll_get(&addr, "/healthz", &daemon, |code, _| code == 200).await;
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["etcd"]["watch_reconnects"], 1, "{body}");
}

#[tokio::test]
async fn a_taken_metrics_address_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfgdir(
        dir.path(),
        &[("a", entry(dir.path(), "a", "/a", ""))],
        &[("tree.tmpl", TREE_TMPL)],
    );
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let args = ["--cfgdir", cfg.to_str().unwrap(), "--metrics-addr", &addr];
    let run = run_reconfig(args).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("cannot serve metrics on {addr}")),
        "{}",
        run.stderr
    );
}

/// Receives the next notification on `socket`, as its lines; panics after `LIMIT`.
async fn next_notification(socket: &UnixDatagram, daemon: &Daemon) -> Vec<String> {
    let mut buf = vec![0; 4096];
    let received = tokio::time::timeout(LIMIT, socket.recv(&mut buf)).await;
    let Ok(Ok(len)) = received else {
        panic!("no notification from the daemon:\n{}", daemon.log());
    };
    let text = String::from_utf8_lossy(&buf[..len]);
    text.lines().map(str::to_string).collect()
}

/// Receives notifications until one holds `wanted`; returns how many watchdog pings came
/// meanwhile.
async fn wait_notification(socket: &UnixDatagram, daemon: &Daemon, wanted: &str) -> usize {
    let mut pings = 0;
    loop {
        let lines = next_notification(socket, daemon).await;
        if lines.iter().any(|l| l == wanted) {
            return pings;
        }
        pings += lines.iter().filter(|l| *l == "WATCHDOG=1").count();
    }
}

#[tokio::test]
async fn systemd_hears_ready_after_the_first_sync_watchdog_pings_and_stopping() {
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // The slow check keeps the first sync busy for a while: READY must wait for it.
    let slow = entry(
        root,
        "slow",
        "/s",
        r#","checkcmd":"sleep 0.3 && test -s {{src}}""#,
    );
    let quick = entry(root, "quick", "/q", "");
    let cfg = cfgdir(
        root,
        &[("slow", slow), ("quick", quick)],
        &[("tree.tmpl", TREE_TMPL)],
    );
    etcd.put_all([("/s/k", "slow"), ("/q/k", "quick")]).await;
    let socket_path = root.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let mut cmd = reconfig();
    cmd.env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "200000");
    let args = [
        "--cfgdir",
        cfg.to_str().unwrap(),
        "--endpoints",
        &etcd.endpoint,
    ];
    let mut daemon = Daemon::spawn(cmd, args, &root.join("log"));

    wait_notification(&socket, &daemon, "READY=1").await;
    let read = |name: &str| std::fs::read_to_string(root.join(format!("{name}.conf"))).ok();
    assert_eq!(
        read("slow").as_deref(),
        Some("/s/k=slow\n"),
        "{}",
        daemon.log()
    );
    assert_eq!(
        read("quick").as_deref(),
        Some("/q/k=quick\n"),
        "{}",
        daemon.log()
    );

    // Pings every WATCHDOG_USEC/2 while it runs.
    let mut pings = 0;
    while pings < 3 {
        let lines = next_notification(&socket, &daemon).await;
        assert_eq!(lines, ["WATCHDOG=1"], "{}", daemon.log());
        pings += 1;
    }

    daemon.signal(Signal::SIGTERM);
    wait_notification(&socket, &daemon, "STOPPING=1").await;
    assert_eq!(daemon.wait_exit(LIMIT).await, Some(0), "{}", daemon.log());
}

#[tokio::test]
async fn dispense_serves_metrics_and_tells_systemd_it_is_ready() {
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out");
    std::fs::create_dir(&target).unwrap();
    etcd.put_all([("/cfg/a", "alpha")]).await;
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let mut cmd = reconfig();
    cmd.env("NOTIFY_SOCKET", &socket_path);
    let args = [
        "dispense",
        "-p",
        "/cfg",
        "-t",
        target.to_str().unwrap(),
        "--endpoints",
        &etcd.endpoint,
        "--metrics-addr",
        "127.0.0.1:0",
    ];
    let mut daemon = Daemon::spawn(cmd, args, &dir.path().join("log"));
    let addr = metrics_addr(&daemon).await;
    wait_notification(&socket, &daemon, "READY=1").await;
    let published = std::fs::read_to_string(target.join("a")).ok();
    assert_eq!(published.as_deref(), Some("alpha"), "{}", daemon.log());

    etcd.put_all([("/cfg/b", "beta")]).await;
    let (_, metrics) = poll_get(&addr, "/metrics", &daemon, |_, body| {
        sample(body, r#"reconfig_renders_total{entry="/cfg"}"#) == Some(2.0)
    })
    .await;
    assert_eq!(sample(&metrics, "reconfig_etcd_up"), Some(1.0), "{metrics}");
    let (code, body) = http_get(&addr, "/healthz").await.unwrap();
    assert_eq!(code, 200, "{body}");
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        health["entries"]["/cfg"]["last_outcome"], "changed",
        "{body}"
    );

    daemon.signal(Signal::SIGTERM);
    wait_notification(&socket, &daemon, "STOPPING=1").await;
    assert_eq!(daemon.wait_exit(LIMIT).await, Some(0), "{}", daemon.log());
}

#[tokio::test]
async fn json_logs_are_objects_with_level_message_and_entry() {
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let web = entry(dir.path(), "web", "/web", r#","reloadcmd":"echo reloaded""#);
    let cfg = cfgdir(dir.path(), &[("web", web)], &[("tree.tmpl", TREE_TMPL)]);
    etcd.put_all([("/web/port", "80")]).await;
    let args = [
        "--onetime",
        "--log-format",
        "json",
        "--cfgdir",
        cfg.to_str().unwrap(),
        "--endpoints",
        &etcd.endpoint,
    ];
    let run = run_reconfig(args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<Value> = run
        .stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(!lines.is_empty());
    for line in &lines {
        assert!(line["level"].is_string(), "{line}");
        assert!(line["timestamp"].is_string(), "{line}");
        assert!(line["fields"]["message"].is_string(), "{line}");
    }
    let of_web = |start: &str| {
        lines.iter().any(|line| {
            line["fields"]["entry"] == "web"
                && line["level"] == "INFO"
                && line["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(start))
        })
    };
    assert!(of_web("updated"), "{}", run.stderr);
    assert!(
        of_web("reloaded"),
        "command output carries the entry:\n{}",
        run.stderr
    );
}

#[tokio::test]
async fn completions_and_man_page_come_from_the_flags() {
    for (shell, marker) in [
        ("bash", "_reconfig()"),
        ("zsh", "#compdef reconfig"),
        ("fish", "complete -c reconfig"),
    ] {
        let run = run_reconfig(["completions", shell]).await;
        assert_eq!(run.code, 0, "{shell}: {}", run.stderr);
        assert!(run.stdout.contains(marker), "{shell}:\n{}", run.stdout);
        assert!(
            run.stdout.contains("metrics-addr"),
            "{shell}:\n{}",
            run.stdout
        );
    }
    let run = run_reconfig(["completions", "tcsh"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);

    let run = run_reconfig(["man"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.starts_with(".ie"), "{}", run.stdout);
    assert!(run.stdout.contains(".TH reconfig 1"), "{}", run.stdout);
    for flag in [r"\-\-cfgdir", r"\-\-metrics\-addr", r"\-\-unhealthy\-after"] {
        assert!(run.stdout.contains(flag), "{flag} missing:\n{}", run.stdout);
    }
}

/// How long the metrics server waits for a complete request (docs/operations.md).
const IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the metrics server serves one connection (docs/operations.md).
const LIFETIME: Duration = Duration::from_secs(30);
/// The connections the metrics server serves at once (docs/operations.md).
const MAX_CONNECTIONS: usize = 64;
/// More idle connections than the usual 1,024 descriptors allow.
const FLOOD: usize = 1_100;
/// Descriptors the daemon may hold beyond its idle ones and its connections: one just
/// accepted over the cap, a staged file, the target, a reload command's pipes.
const SLACK: usize = 16;
/// How long the server may take to close every connection: the idle timeout, many times.
const CLOSE_LIMIT: Duration = Duration::from_secs(60);

/// The soft and hard open-file limits of process `pid`.
fn open_file_limits(pid: Pid) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .unwrap();
    let mut numbers = line.split_whitespace().map(|n| n.parse().unwrap());
    (numbers.next().unwrap(), numbers.next().unwrap())
}

/// How many descriptors process `pid` holds.
fn open_descriptors(pid: Pid) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |fds| fds.count())
}

/// Lets this test process hold `needed` descriptors, whatever soft limit it was started with.
fn allow_own_descriptors(needed: u64) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    assert!(
        hard >= needed,
        "the test needs {needed} descriptors, the hard limit is {hard}"
    );
    if soft < needed {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    }
}

/// Starts `reconfig ARGS` with the open-file limits `nofile` (`SOFT:HARD`, `SOFT:` keeps
/// the hard limit), as `prlimit --nofile` sets them.
fn start_limited(nofile: &str, args: &[&str], log: &Path) -> Daemon {
    let mut cmd = binary("prlimit");
    cmd.arg(format!("--nofile={nofile}"))
        .arg(env!("CARGO_BIN_EXE_reconfig"));
    Daemon::spawn(cmd, args, log)
}

/// Reads until the server closes `stream`; what it sent.
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buf = [0; 4096];
    while let Ok(n @ 1..) = stream.read(&mut buf).await {
        received.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&received).into_owned()
}

/// 1,100 idle connections to the metrics port of a daemon started with the open-file limits
/// `nofile`: the daemon holds no more of them than the cap, the next put still lands,
/// every connection is closed by the server, and `/healthz` answers again.
async fn updates_flow_past_a_flood_of_idle_metrics_connections(nofile: &str) {
    allow_own_descriptors(FLOOD as u64 + 1024);
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let limit = root.join("limit");
    let reload = format!(r#","reloadcmd":"ulimit -Sn > {}""#, limit.display());
    let cfg = cfgdir(
        root,
        &[("a", entry(root, "a", "/a", &reload))],
        &[("tree.tmpl", TREE_TMPL)],
    );
    etcd.put_all([("/a/x", "1")]).await;
    let args = [
        "--cfgdir",
        cfg.to_str().unwrap(),
        "--endpoints",
        &etcd.endpoint,
        "--metrics-addr",
        "127.0.0.1:0",
    ];
    let daemon = start_limited(nofile, &args, &root.join("log"));
    let addr = metrics_addr(&daemon).await;
    let target = root.join("a.conf");
    wait_for_content(&target, "/a/x=1\n", LIMIT, || daemon.log()).await;
    // reconfig lifts its own soft limit to the hard one; its commands get the usual one.
    wait_for_content(&limit, "1024\n", LIMIT, || daemon.log()).await;
    let pid = daemon.pid();
    let (soft, hard) = open_file_limits(pid);
    assert_eq!(soft, hard, "the soft limit was not raised");

    let before = open_descriptors(pid);
    let mut most = before;
    let mut idle = Vec::with_capacity(FLOOD);
    for _ in 0..FLOOD {
        idle.push(TcpStream::connect(&addr).await.unwrap());
        most = most.max(open_descriptors(pid));
    }
    etcd.put_all([("/a/x", "2")]).await;
    wait_for_content(&target, "/a/x=2\n", LIMIT, || daemon.log()).await;
    most = most.max(open_descriptors(pid));
    assert!(
        most <= before + MAX_CONNECTIONS + SLACK,
        "the daemon held {most} descriptors, {before} before the connections"
    );
    assert!(
        !daemon.log().contains("Too many open files"),
        "{}",
        daemon.log()
    );

    // Over the cap at once, the others after the idle timeout: none stays open for good,
    // however long its client keeps it.
    let closed = futures_util::future::join_all(idle.iter_mut().map(until_closed));
    let closed = tokio::time::timeout(CLOSE_LIMIT, closed).await;
    assert!(
        closed.is_ok(),
        "idle connections stayed open\n{}",
        daemon.log()
    );
    poll_get(&addr, "/healthz", &daemon, |code, _| code == 200).await;
}

#[tokio::test]
async fn idle_metrics_connections_never_stop_updates_under_a_1024_soft_limit() {
    updates_flow_past_a_flood_of_idle_metrics_connections("1024:").await;
}

#[tokio::test]
async fn idle_metrics_connections_never_stop_updates_under_a_1024_hard_limit() {
    updates_flow_past_a_flood_of_idle_metrics_connections("1024:1024").await;
}

/// A daemon with one entry and no etcd to reach, serving the endpoints on `bind` while it
/// waits for etcd, logging to `dir/LOG`; and the address it serves on.
async fn waiting_daemon(dir: &Path, bind: &str, log: &str) -> (Daemon, String) {
    let cfg = cfgdir(
        dir,
        &[("a", entry(dir, "a", "/a", ""))],
        &[("tree.tmpl", TREE_TMPL)],
    );
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let args = [
        "--cfgdir",
        cfg.to_str().unwrap(),
        "--endpoints",
        &endpoint,
        "--metrics-addr",
        bind,
    ];
    let daemon = Daemon::start(args, &dir.join(log));
    let addr = metrics_addr(&daemon).await;
    (daemon, addr)
}

#[tokio::test]
async fn idle_and_slow_metrics_clients_are_closed_after_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (daemon, addr) = waiting_daemon(dir.path(), "127.0.0.1:0", "log").await;

    // Connected, never a byte.
    let silent = async {
        let start = Instant::now();
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        until_closed(&mut stream).await;
        start.elapsed()
    };
    // A request head that never ends, a byte at a time (slowloris).
    let slow = async {
        let start = Instant::now();
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        let (mut read, mut write) = stream.split();
        let head = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nX-Slow: ");
        write.write_all(head.as_bytes()).await.unwrap();
        let mut buf = [0; 4096];
        loop {
            tokio::select! {
                n = read.read(&mut buf) => if !matches!(n, Ok(1..)) { break },
                () = tokio::time::sleep(Duration::from_millis(200)) => {
                    if write.write_all(b"s").await.is_err() {
                        break;
                    }
                }
            }
        }
        start.elapsed()
    };
    // One request answered, then idle on the kept-alive connection.
    let kept_alive = async {
        let start = Instant::now();
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let answer = until_closed(&mut stream).await;
        (start.elapsed(), answer)
    };
    let all = async { tokio::join!(silent, slow, kept_alive) };
    let Ok((silent, slow, (kept_alive, answer))) = tokio::time::timeout(CLOSE_LIMIT, all).await
    else {
        panic!("a connection stayed open\n{}", daemon.log());
    };
    assert!(answer.starts_with("HTTP/1.1 "), "{answer}");
    for (client, open) in [
        ("silent", silent),
        ("slow", slow),
        ("kept alive", kept_alive),
    ] {
        assert!(
            open >= IDLE_TIMEOUT,
            "the {client} client was closed after {open:?}"
        );
    }
    poll_get(&addr, "/healthz", &daemon, |_, _| true).await;
}

#[tokio::test]
async fn a_metrics_client_that_asks_and_never_reads_is_cut_after_the_lifetime() {
    let dir = tempfile::tempdir().unwrap();
    let (daemon, addr) = waiting_daemon(dir.path(), "127.0.0.1:0", "log").await;

    // Requests pipelined without end and no answer read: the answers fill the socket, the
    // server's write waits, and no request head is ever late. Only the cut ends the writes.
    let start = Instant::now();
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let requests = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").repeat(1000);
    let cut = async { while stream.write_all(requests.as_bytes()).await.is_ok() {} };
    let limit = LIFETIME + IDLE_TIMEOUT + CLOSE_LIMIT;
    let cut = tokio::time::timeout(limit, cut).await;
    assert!(cut.is_ok(), "the connection stayed open\n{}", daemon.log());
    let open = start.elapsed();
    assert!(open >= LIFETIME, "the connection was cut after {open:?}");
    poll_get(&addr, "/healthz", &daemon, |_, _| true).await;
}

#[tokio::test]
async fn metrics_beyond_loopback_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let warning = "/metrics and /healthz can be read from the network";
    for (bind, warned) in [("0.0.0.0:0", true), ("127.0.0.1:0", false)] {
        // The warning comes before the address served.
        let (daemon, _) = waiting_daemon(dir.path(), bind, &format!("log-{warned}")).await;
        let log = daemon.log();
        let line = log.lines().find(|line| line.contains(warning));
        assert_eq!(line.is_some(), warned, "{bind}:\n{log}");
        if let Some(line) = line {
            assert!(line.contains("WARN"), "{line}");
            assert!(line.contains("--metrics-addr 0.0.0.0:0"), "{line}");
        }
    }
}

#[tokio::test]
async fn dispense_raises_its_open_file_limit_and_gives_its_child_the_usual_one() {
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out");
    std::fs::create_dir(&target).unwrap();
    etcd.put_all([("/l/a", "alpha")]).await;
    let limit = dir.path().join("limit");
    let child = format!("ulimit -Sn > {}; exec sleep 600", limit.display());
    let args = [
        "dispense",
        "-p",
        "/l",
        "-t",
        target.to_str().unwrap(),
        "--endpoints",
        &etcd.endpoint,
        "--",
        "sh",
        "-c",
        &child,
    ];
    let mut daemon = start_limited("1024:", &args, &dir.path().join("log"));
    wait_for_content(&limit, "1024\n", LIMIT, || daemon.log()).await;
    let (soft, hard) = open_file_limits(daemon.pid());
    assert!(hard > 1024, "the test needs a hard limit above 1024");
    assert_eq!(soft, hard, "the soft limit was not raised");
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(LIMIT).await.is_some(), "{}", daemon.log());
}

/// Every `NAME(N)` a roff page refers to, in clap_mangen's SUBCOMMANDS (`reconfig\-render(1)`)
/// and the manual's SEE ALSO (`\fBreconfig\fR(1)`).
fn page_references(page: &str) -> BTreeSet<String> {
    let text = page
        .replace("\\fB", "")
        .replace("\\fR", "")
        .replace("\\-", "-");
    let reference = regex::Regex::new(r"([a-z][a-z0-9-]*)\((\d)\)").unwrap();
    reference
        .captures_iter(&text)
        .map(|c| format!("{}.{}", &c[1], &c[2]))
        .collect()
}

#[tokio::test]
async fn every_manual_page_is_written_and_refers_only_to_pages_that_exist() {
    let dir = tempfile::tempdir().unwrap();
    // A page's name planted as a link: the page replaces the link, never writes through it.
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "keep").unwrap();
    std::os::unix::fs::symlink(&victim, dir.path().join("reconfig.1")).unwrap();

    let run = run_reconfig(["man", "--dir", dir.path().to_str().unwrap()]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    let mut pages = BTreeMap::new();
    for path in run.stdout.lines().map(Path::new) {
        assert_eq!(path.parent(), Some(dir.path()), "{path:?}");
        assert!(path.symlink_metadata().unwrap().is_file(), "{path:?}");
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        pages.insert(name, std::fs::read_to_string(path).unwrap());
    }
    let util = run_command(binary(&etcd_util()), ["--man"]).await;
    assert_eq!(util.code, 0, "{}", util.stderr);
    pages.insert("etcd-util.1".to_string(), util.stdout);

    // A page for reconfig, each subcommand its help lists (but `help`), theirs in turn
    // (`reconfig-rollout-status`), and etcd-util.
    let mut expected = BTreeSet::new();
    let mut todo = vec![Vec::<String>::new()];
    while let Some(path) = todo.pop() {
        let mut args = path.clone();
        args.push("--help".to_string());
        let help = run_reconfig(args).await.stdout;
        for name in help
            .lines()
            .skip_while(|line| line.trim_end() != "Commands:")
            .skip(1)
            .take_while(|line| !line.trim().is_empty())
            .filter(|line| line.len() - line.trim_start().len() == 2)
            .filter_map(|line| line.split_whitespace().next())
            .filter(|name| *name != "help")
        {
            let mut sub = path.clone();
            sub.push(name.to_string());
            expected.insert(format!("reconfig-{}.1", sub.join("-")));
            todo.push(sub);
        }
    }
    let help = run_reconfig(["--help"]).await.stdout;
    assert!(expected.contains("reconfig-render.1"), "{help}");
    assert!(
        expected.contains("reconfig-rollout-status.1"),
        "{expected:?}"
    );
    expected.extend(["reconfig.1".to_string(), "etcd-util.1".to_string()]);
    let names: BTreeSet<String> = pages.keys().cloned().collect();
    assert_eq!(names, expected);

    for (name, page) in &pages {
        for section in ["EXIT STATUS", "ENVIRONMENT", "SEE ALSO"] {
            assert!(
                page.contains(&format!(".SH {section}\n"))
                    || page.contains(&format!(".SH \"{section}\"\n")),
                "{name} has no {section}:\n{page}"
            );
        }
        let dangling: Vec<String> = page_references(page)
            .into_iter()
            .filter(|reference| !names.contains(reference))
            .collect();
        assert!(dangling.is_empty(), "{name} refers to {dangling:?}");
    }
    assert!(page_references(&pages["reconfig.1"]).contains("reconfig-dispense.1"));
    assert!(page_references(&pages["etcd-util.1"]).contains("reconfig.1"));

    let render = run_reconfig(["man", "render"]).await;
    assert_eq!(render.code, 0, "{}", render.stderr);
    assert_eq!(render.stdout, pages["reconfig-render.1"]);

    let run = run_reconfig(["man", "nope"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("\"nope\""), "{}", run.stderr);
    let missing = dir.path().join("missing");
    let run = run_reconfig(["man", "--dir", missing.to_str().unwrap()]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(missing.to_str().unwrap()),
        "{}",
        run.stderr
    );
}
