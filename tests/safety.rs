//! Safe files and commands in every deployment, against a real etcd: reconfig as a service
//! user, symlinks other users planted, commands that print without end, secrets, leftovers
//! of a killed run, mode and owner drift, long names, special files and glob patterns.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

/// Time for a condition that holds at once on a quiet machine to hold on a loaded one.
const LIMIT: Duration = Duration::from_secs(60);

/// A conf.d entry `id` reading `key` through the template `t` into `target`, plus the
/// JSON fields in `extra` (each starting with a comma).
fn entry(id: &str, key: &str, target: &Path, extra: &str) -> (String, String) {
    let json = format!(
        r#"{{"id":"{id}","key":"{key}","source":"t","target":"{}"{extra}}}"#,
        target.display()
    );
    (id.to_string(), json)
}

/// A config dir in `root` with `entries`, all rendering `data[KEY]` and a newline.
fn config(root: &Path, entries: &[(String, String)], key: &str) -> PathBuf {
    let entries: Vec<(&str, String)> = entries
        .iter()
        .map(|(id, json)| (id.as_str(), json.clone()))
        .collect();
    let template = format!("<%= data[\"{key}\"] %>\n");
    cfgdir(root, &entries, &[("t", &template)])
}

/// The peak resident memory of `pid` so far, in KiB.
fn peak_rss_kib(pid: nix::unistd::Pid) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/PID/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_command_printing_without_end_keeps_memory_and_log_bounded() {
    let etcd = EtcdServer::start().await;
    etcd.put_all([("/app", "1")]).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let target = dir.path().join("app.conf");
    // Quiet until the flag file exists; then 128 MiB on stdout without a newline and a line
    // on stderr.
    const PRINTED: u64 = 128 << 20;
    let reload = format!(
        r#","reloadcmd":"if test -e {d}/loud; then head -c {PRINTED} /dev/zero | tr '\\000' x; echo done-loud >&2; fi; echo . >> {d}/reloads""#
    );
    let cfg = config(
        dir.path(),
        &[entry("noisy", "/app", &target, &reload)],
        "/app",
    );
    let cfg = cfg.to_str().unwrap();
    let daemon = Daemon::start(
        ["--cfgdir", cfg, "--endpoints", &etcd.endpoint],
        &dir.path().join("daemon.log"),
    );
    let reloads = |n: usize| {
        std::fs::read_to_string(dir.path().join("reloads"))
            .unwrap_or_default()
            .lines()
            .count()
            == n
    };
    assert!(eventually(LIMIT, || reloads(1)).await, "{}", daemon.log());
    let quiet_peak = peak_rss_kib(daemon.pid());

    write(&dir.path().join("loud"), "");
    etcd.put_all([("/app", "2")]).await;
    assert!(eventually(LIMIT, || reloads(2)).await, "{}", daemon.log());
    assert!(
        eventually(LIMIT, || daemon.log().contains("done-loud")).await,
        "{}",
        daemon.log()
    );
    let loud_peak = peak_rss_kib(daemon.pid());
    // Holding the output costs what was printed; a bounded tail costs next to nothing.
    let grown = loud_peak.saturating_sub(quiet_peak) << 10;
    assert!(
        grown < PRINTED / 4,
        "memory grew by {grown} bytes for {PRINTED} printed"
    );
    let log = daemon.log();
    let longest = log.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 128 << 10, "a log line of {longest} bytes");
    assert!(
        (log.len() as u64) < PRINTED / 64,
        "log of {} bytes",
        log.len()
    );
    let dropped = (PRINTED - (64 << 10)).to_string();
    assert!(
        log.lines()
            .any(|l| l.contains("stdout") && l.contains(&dropped)),
        "the log does not say {dropped} bytes were dropped"
    );
}

#[tokio::test]
async fn secrets_reach_no_command_and_no_child() {
    let etcd = EtcdServer::start().await;
    etcd.put_all([("/app/x", "v")]).await;
    etcd.enable_auth().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let target = dir.path().join("app.conf");
    let commands = format!(
        r#","checkcmd":"env > {d}/check.env; : {{{{src}}}}","reloadcmd":"env > {d}/reload.env""#
    );
    let cfg = config(
        dir.path(),
        &[entry("app", "/app/x", &target, &commands)],
        "/app/x",
    );
    let with_credentials = || {
        let mut cmd = reconfig();
        cmd.env("ETCD_USERNAME", "app")
            .env("ETCD_PASSWORD", "app-pw");
        cmd
    };
    let child = format!("env > {d}/child.env");
    let mut daemon = Daemon::spawn(
        with_credentials(),
        [
            "--cfgdir",
            cfg.to_str().unwrap(),
            "--endpoints",
            &etcd.endpoint,
            "--",
            "sh",
            "-c",
            &child,
        ],
        &dir.path().join("daemon.log"),
    );
    assert_eq!(daemon.wait_exit(LIMIT).await, Some(0), "{}", daemon.log());

    let dispensed = format!("env > {d}/dispense.env");
    let mirror = dir.path().join("mirror");
    let mut dispense = Daemon::spawn(
        with_credentials(),
        [
            "dispense",
            "--prefix",
            "/app",
            "--target",
            mirror.to_str().unwrap(),
            "--endpoints",
            &etcd.endpoint,
            "--",
            "sh",
            "-c",
            &dispensed,
        ],
        &dir.path().join("dispense.log"),
    );
    assert_eq!(
        dispense.wait_exit(LIMIT).await,
        Some(0),
        "{}",
        dispense.log()
    );
    assert_eq!(std::fs::read_to_string(mirror.join("x")).unwrap(), "v");

    for name in ["check", "reload", "child", "dispense"] {
        let env = std::fs::read_to_string(dir.path().join(format!("{name}.env"))).unwrap();
        assert!(!env.contains("app-pw"), "{name} saw the password:\n{env}");
        assert!(!env.contains("ETCD_PASSWORD"), "{name}:\n{env}");
        assert!(
            env.contains("ETCD_USERNAME=app"),
            "{name} lost its environment"
        );
    }
    for name in ["check", "reload"] {
        let env = std::fs::read_to_string(dir.path().join(format!("{name}.env"))).unwrap();
        assert!(env.contains("RECONFIG_ID=app"), "{name}:\n{env}");
    }
}

#[tokio::test]
async fn glob_patterns_match_in_linear_time() {
    let etcd = EtcdServer::start().await;
    let long_key = format!("/k/{}", "a".repeat(60));
    etcd.put_all([(long_key.as_str(), "long"), ("/k/ac", "short")])
        .await;
    let dir = tempfile::tempdir().unwrap();
    let run_pattern = |name: &str, pattern: String| {
        let root = dir.path().join(name);
        let target = root.join("out.conf");
        let template = format!("<% for v in getvs(pattern=\"{pattern}\") %><%= v %>\n<% endfor %>");
        let entry = format!(
            r#"{{"id":"{name}","key":"/k","recursive":true,"source":"t","target":"{}"}}"#,
            target.display()
        );
        let cfg = cfgdir(&root, &[(name, entry)], &[("t", &template)]);
        let endpoint = etcd.endpoint.clone();
        async move {
            let started = Instant::now();
            let run = run_reconfig([
                "--onetime",
                "--cfgdir",
                cfg.to_str().unwrap(),
                "--endpoints",
                &endpoint,
            ])
            .await;
            assert_eq!(run.code, 0, "{}", run.stderr);
            (started.elapsed(), std::fs::read_to_string(target).unwrap())
        }
    };
    let (plain_time, plain) = run_pattern("plain", "/k/*".into()).await;
    assert_eq!(plain, "long\nshort\n");
    // Backtracking tries about C(60, 20) ways to place the stars before giving up on the
    // long key: it never finishes.
    let stars = format!("/k/{}c", "*a".repeat(20));
    let (_, starred) = tokio::time::timeout(plain_time * 100, run_pattern("stars", stars))
        .await
        .expect("glob matching took exponential time");
    assert_eq!(starred, "");
    let (_, found) = run_pattern("found", "/k/*ac".to_string()).await;
    assert_eq!(found, "short\n");
}
