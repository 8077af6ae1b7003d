//! The daemon against a real etcd: convergence, coalescing, transactions, reloads,
//! template changes, signals, and recovery from an etcd restart and from compaction.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;
use etcd_client::{Compare, CompareOp, Txn, TxnOp};
use nix::sys::signal::Signal;

const LIMIT: Duration = Duration::from_secs(20);

/// An entry rendering `key`'s tree as `k=v` lines, counting its reloads in `root/NAME.reloads`.
fn tree_entry(root: &Path, name: &str, key: &str, extra: &str) -> (String, PathBuf) {
    let target = root.join(format!("{name}.conf"));
    let json = format!(
        r#"{{"id":"{name}","key":"{key}","recursive":true,"source":"tree.tmpl","target":"{}",
            "reloadcmd":"echo x >> {}/{name}.reloads"{extra}}}"#,
        target.display(),
        root.display()
    );
    (json, target)
}

const TREE_TMPL: &str = "<% for k, v in data %>\n<%= k %>=<%= v %>\n<% endfor %>\n";

fn reloads(root: &Path, name: &str) -> usize {
    std::fs::read_to_string(root.join(format!("{name}.reloads")))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

fn daemon_args(cfg: &Path, etcd: &EtcdServer) -> Vec<String> {
    vec![
        "--cfgdir".into(),
        cfg.display().to_string(),
        "--endpoints".into(),
        etcd.endpoint.clone(),
        "-d".into(),
    ]
}

/// The daemon run inside this process, as a program embedding the library would: its
/// settings parsed from the command line `args`, stopped by sending on the returned sender
/// (as SIGTERM would), its result from the returned task.
fn in_process(
    args: &[String],
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<reconfig::Exit, String>>,
) {
    use clap::Parser;
    let argv = std::iter::once("reconfig".to_string()).chain(args.iter().cloned());
    let settings = reconfig::Cli::try_parse_from(argv)
        .unwrap()
        .run
        .daemon_settings();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let run = tokio::spawn(async move {
        reconfig::run_daemon(&settings, || false, shutdown)
            .await
            .map_err(|e| e.to_string())
    });
    (stop, run)
}

#[tokio::test]
async fn in_process_an_update_reaches_the_target_and_a_shutdown_ends_the_run() {
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (json, target) = tree_entry(dir.path(), "a", "/a", "");
    let cfg = cfgdir(dir.path(), &[("a", json)], &[("tree.tmpl", TREE_TMPL)]);
    etcd.put_all([("/a/1", "one")]).await;
    let (stop, run) = in_process(&daemon_args(&cfg, &etcd));
    wait_for_content(&target, "/a/1=one\n", LIMIT, String::new).await;
    etcd.put_all([("/a/2", "two")]).await;
    wait_for_content(&target, "/a/1=one\n/a/2=two\n", LIMIT, String::new).await;
    let mut client = etcd.client().await;
    client.delete("/a/1", None).await.unwrap();
    wait_for_content(&target, "/a/2=two\n", LIMIT, String::new).await;
    stop.send(()).unwrap();
    let ended = tokio::time::timeout(LIMIT, run).await.unwrap().unwrap();
    assert_eq!(ended, Ok(reconfig::Exit::Ok));
}

#[tokio::test]
async fn in_process_a_shutdown_runs_the_reload_waiting_for_its_interval() {
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (json, target) = tree_entry(dir.path(), "w", "/w", "");
    let cfg = cfgdir(dir.path(), &[("w", json)], &[("tree.tmpl", TREE_TMPL)]);
    etcd.put_all([("/w/k", "0")]).await;
    // An interval far longer than the test: only the stop can run the second reload.
    let mut args = daemon_args(&cfg, &etcd);
    args.extend(["--reload-interval".into(), "1h".into()]);
    let (stop, run) = in_process(&args);
    wait_for_content(&target, "/w/k=0\n", LIMIT, String::new).await;
    assert!(eventually(LIMIT, || reloads(dir.path(), "w") == 1).await);
    etcd.put_all([("/w/k", "1")]).await;
    wait_for_content(&target, "/w/k=1\n", LIMIT, String::new).await;
    assert_eq!(reloads(dir.path(), "w"), 1, "held back by the interval");
    stop.send(()).unwrap();
    let ended = tokio::time::timeout(LIMIT, run).await.unwrap().unwrap();
    assert_eq!(ended, Ok(reconfig::Exit::Ok));
    assert_eq!(
        reloads(dir.path(), "w"),
        2,
        "the waiting reload ran before the end"
    );
}

/// Wall-clock nanoseconds, comparable with `date +%s%N` in the reload commands.
fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// A command recording when it started and ended into `file`, lasting at least 50 ms.
fn timed(file: &Path) -> String {
    format!(
        "s=$(date +%s%N); sleep 0.05; echo $s $(date +%s%N) >> {}",
        file.display()
    )
}

#[tokio::test]
async fn a_burst_ends_in_the_final_state_with_few_renders_and_reloads_paced_by_the_interval() {
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Renders take at least STEP (a check that waits); reloads are paced by INTERVAL.
    const STEP: Duration = Duration::from_millis(50);
    const INTERVAL: Duration = Duration::from_millis(300);
    let checks = dir.path().join("b.checks");
    let extra = format!(r#","checkcmd":"{}; : {{{{src}}}}""#, timed(&checks));
    let (json, target) = tree_entry(dir.path(), "b", "/b", &extra);
    let json = json.replace(
        "echo x >>",
        "s=$(date +%s%N); sleep 0.05; echo $s $(date +%s%N) >>",
    );
    let cfg = cfgdir(dir.path(), &[("b", json)], &[("tree.tmpl", TREE_TMPL)]);
    etcd.put_all([("/b/k", "start")]).await;
    let mut args = daemon_args(&cfg, &etcd);
    args.extend(["--reload-interval".into(), "300ms".into()]);
    let daemon = Daemon::start(args, &dir.path().join("log"));
    wait_for_content(&target, "/b/k=start\n", LIMIT, || daemon.log()).await;

    let writes = 2000;
    let mut client = etcd.client().await;
    let burst_start = now_ns();
    let started = std::time::Instant::now();
    for i in 1..=writes {
        client.put("/b/k", format!("v{i}"), None).await.unwrap();
    }
    let burst = started.elapsed();
    wait_for_content(&target, &format!("/b/k=v{writes}\n"), LIMIT, || {
        daemon.log()
    })
    .await;
    let landed = now_ns();
    // The final file is reloaded: a reload starts after it landed.
    assert!(
        eventually(LIMIT, || spans(dir.path(), "b.reloads")
            .last()
            .is_some_and(|&(start, _)| start > landed))
        .await,
        "the final file was never reloaded\n{}",
        daemon.log()
    );
    for pair in spans(dir.path(), "b.reloads").windows(2) {
        assert!(pair[0].1 <= pair[1].0, "reloads overlap: {pair:?}");
    }
    // As the daemon started them (its log has millisecond stamps).
    let starts: Vec<u64> = daemon
        .log()
        .lines()
        .filter(|l| l.contains("[b] reloading"))
        .map(log_millis)
        .collect();
    for pair in starts.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap + 1 >= INTERVAL.as_millis() as u64,
            "two reloads {gap} ms apart, less than the interval\n{}",
            daemon.log()
        );
    }
    // Renders are serial and each lasts at least STEP, so while the writes went on at
    // most burst / STEP of them ran. Coalescing leaves no backlog: after the last write,
    // the render in flight and a follow-up that sees the final state (one more if the
    // watch was a render behind), plus the start-up render if it was still checking.
    let renders = spans(dir.path(), "b.checks");
    let during = renders.iter().filter(|s| s.0 >= burst_start).count();
    let bound = (burst.as_secs_f64() / STEP.as_secs_f64()) as usize + 4;
    assert!(
        during <= bound,
        "{during} renders for {writes} writes in {burst:?} (at most {bound}): not coalesced"
    );
}

#[tokio::test]
async fn a_file_does_not_wait_for_the_reload_of_the_change_before_it() {
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gate = dir.path().join("gate");
    let (json, target) = tree_entry(dir.path(), "g", "/g", "");
    // Each reload waits for the gate, then counts itself.
    let json = json.replace(
        "echo x >>",
        &format!(
            "while [ ! -e {} ]; do sleep 0.02; done; echo x >>",
            gate.display()
        ),
    );
    let cfg = cfgdir(dir.path(), &[("g", json)], &[("tree.tmpl", TREE_TMPL)]);
    write(&target, "/g/k=0\n");
    etcd.put_all([("/g/k", "0")]).await;
    let mut args = daemon_args(&cfg, &etcd);
    args.extend(["--reload-interval".into(), "0".into()]);
    let daemon = Daemon::start(args, &dir.path().join("log"));
    assert!(
        eventually(LIMIT, || daemon.log().contains("watching")).await,
        "{}",
        daemon.log()
    );
    etcd.put_all([("/g/k", "1")]).await;
    wait_for_content(&target, "/g/k=1\n", LIMIT, || daemon.log()).await;
    // The reload of 1 hangs at the gate; 2 reaches the file anyway.
    etcd.put_all([("/g/k", "2")]).await;
    wait_for_content(&target, "/g/k=2\n", LIMIT, || daemon.log()).await;
    assert_eq!(reloads(dir.path(), "g"), 0);
    // Opened, the gate lets the reload of 1 finish, and one more follows for 2.
    write(&gate, "");
    assert!(
        eventually(LIMIT, || reloads(dir.path(), "g") == 2).await,
        "{} reload(s)\n{}",
        reloads(dir.path(), "g"),
        daemon.log()
    );
}

#[tokio::test]
async fn a_change_after_a_quiet_interval_reloads_at_once_and_a_stop_runs_the_waiting_reload() {
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (json, target) = tree_entry(dir.path(), "q", "/q", "");
    let cfg = cfgdir(dir.path(), &[("q", json)], &[("tree.tmpl", TREE_TMPL)]);
    write(&target, "/q/k=0\n");
    etcd.put_all([("/q/k", "0")]).await;
    // An interval far longer than the test: a change it held back would never be seen.
    let mut args = daemon_args(&cfg, &etcd);
    args.extend(["--reload-interval".into(), "1h".into()]);
    let mut daemon = Daemon::start(args, &dir.path().join("log"));
    assert!(
        eventually(LIMIT, || daemon.log().contains("watching")).await,
        "{}",
        daemon.log()
    );
    assert_eq!(reloads(dir.path(), "q"), 0, "nothing changed at start-up");
    etcd.put_all([("/q/k", "1")]).await;
    wait_for_content(&target, "/q/k=1\n", LIMIT, || daemon.log()).await;
    assert!(
        eventually(LIMIT, || reloads(dir.path(), "q") == 1).await,
        "the first change waited for the interval\n{}",
        daemon.log()
    );
    etcd.put_all([("/q/k", "2")]).await;
    wait_for_content(&target, "/q/k=2\n", LIMIT, || daemon.log()).await;
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(LIMIT).await, Some(0), "{}", daemon.log());
    assert_eq!(
        reloads(dir.path(), "q"),
        2,
        "the reload waiting for the interval ran before the exit\n{}",
        daemon.log()
    );
}

/// The log line's time stamp (`2026-12-02T01:18:00.428Z`), in milliseconds.
fn log_millis(line: &str) -> u64 {
    let stamp = line.split_whitespace().next().unwrap();
    let at = humantime::parse_rfc3339(stamp).unwrap();
    at.duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// (start, end) of each run of a [`timed`] command, in nanoseconds.
fn spans(root: &Path, file: &str) -> Vec<(u128, u128)> {
    std::fs::read_to_string(root.join(file))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let (s, e) = l.split_once(' ').unwrap();
            (s.parse().unwrap(), e.parse().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn one_transaction_is_one_render() {
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (single, target) = tree_entry(dir.path(), "t", "/t", "");
    let (multi, multi_target) = tree_entry(
        dir.path(),
        "m",
        "/m",
        r#","altkeys":{"alt":"/alt"},"watchaltkeys":true"#,
    );
    let cfg = cfgdir(
        dir.path(),
        &[("t", single), ("m", multi)],
        &[("tree.tmpl", TREE_TMPL)],
    );
    etcd.put_all([("/t/0", "0"), ("/m/0", "0"), ("/alt/0", "0")])
        .await;
    let daemon = Daemon::start(daemon_args(&cfg, &etcd), &dir.path().join("log"));
    wait_for_content(&target, "/t/0=0\n", LIMIT, || daemon.log()).await;
    wait_for_content(&multi_target, "/m/0=0\n", LIMIT, || daemon.log()).await;
    // The revision each render of `entry` saw, in order.
    let renders = |entry: &str| -> Vec<i64> {
        let tag = format!("[{entry}] ");
        daemon
            .log()
            .lines()
            .filter(|l| l.contains(&tag) && (l.contains("updated") || l.contains("unchanged")))
            .map(|l| {
                let (_, revision) = l.rsplit_once("(revision ").unwrap();
                revision.trim_end_matches(')').parse().unwrap()
            })
            .collect()
    };
    assert!(eventually(LIMIT, || renders("t").len() == 1 && renders("m").len() == 1).await);

    let mut client = etcd.client().await;
    let puts: Vec<TxnOp> = (1..=5)
        .map(|i| TxnOp::put(format!("/t/{i}"), "x", None))
        .chain([
            TxnOp::put("/m/1", "y", None),
            TxnOp::put("/alt/1", "z", None),
        ])
        .collect();
    client
        .txn(
            Txn::new()
                .when([Compare::version("/t/0", CompareOp::Greater, 0)])
                .and_then(puts),
        )
        .await
        .unwrap();
    let expected = "/t/0=0\n/t/1=x\n/t/2=x\n/t/3=x\n/t/4=x\n/t/5=x\n";
    wait_for_content(&target, expected, LIMIT, || daemon.log()).await;
    wait_for_content(&multi_target, "/m/0=0\n/m/1=y\n", LIMIT, || daemon.log()).await;
    // A later write to each tree renders after anything the transaction could still have
    // caused: once its render is logged, every render of the transaction is in the log.
    let mut marker = 0;
    for key in ["/t/9", "/m/9"] {
        let put = client.put(key, "end", None).await.unwrap();
        marker = put.header().unwrap().revision();
    }
    let logged = eventually(LIMIT, || {
        ["t", "m"]
            .iter()
            .all(|e| renders(e).last().is_some_and(|&r| r >= marker - 1))
    })
    .await;
    assert!(logged, "{}", daemon.log());
    for entry in ["t", "m"] {
        let seen = renders(entry);
        assert_eq!(
            seen.len(),
            3,
            "{entry}: start-up, the transaction and the later write, one render each: \
             {seen:?}\n{}",
            daemon.log()
        );
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "{entry}: a revision rendered twice: {seen:?}"
        );
    }
}

#[tokio::test]
async fn sighup_and_template_changes_reload_without_restart() {
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (a, a_target) = tree_entry(dir.path(), "a", "/h", "");
    let cfg = cfgdir(dir.path(), &[("a", a)], &[("tree.tmpl", TREE_TMPL)]);
    etcd.put_all([("/h/1", "one")]).await;
    let mut daemon = Daemon::start(daemon_args(&cfg, &etcd), &dir.path().join("log"));
    wait_for_content(&a_target, "/h/1=one\n", LIMIT, || daemon.log()).await;

    // A template rewritten on disk (as Chef does, by rename) re-renders without an etcd change.
    let staged = cfg.join("templates/.tree.tmpl.new");
    write(
        &staged,
        "changed\n<% for k, v in data %>\n<%= k %>=<%= v %>\n<% endfor %>\n",
    );
    std::fs::rename(&staged, cfg.join("templates/tree.tmpl")).unwrap();
    wait_for_content(&a_target, "changed\n/h/1=one\n", LIMIT, || daemon.log()).await;

    // SIGHUP picks up a new entry.
    let (b, b_target) = tree_entry(dir.path(), "b", "/h", "");
    write(&cfg.join("conf.d/b.json"), &b);
    daemon.signal(Signal::SIGHUP);
    wait_for_content(&b_target, "changed\n/h/1=one\n", LIMIT, || daemon.log()).await;
    etcd.put_all([("/h/2", "two")]).await;
    wait_for_content(&b_target, "changed\n/h/1=one\n/h/2=two\n", LIMIT, || {
        daemon.log()
    })
    .await;
    wait_for_content(&a_target, "changed\n/h/1=one\n/h/2=two\n", LIMIT, || {
        daemon.log()
    })
    .await;

    // USR1 toggles debug logging.
    daemon.signal(Signal::SIGUSR1);
    assert!(
        eventually(LIMIT, || daemon.log().contains("debug logging off")).await,
        "{}",
        daemon.log()
    );
    assert!(daemon.alive());
}

async fn survives_etcd_restart_and_compaction_without_losing_an_update(version: EtcdVersion) {
    let mut etcd = version.start().await;
    let dir = tempfile::tempdir().unwrap();
    let (json, target) = tree_entry(dir.path(), "c", "/c", "");
    let cfg = cfgdir(dir.path(), &[("c", json)], &[("tree.tmpl", TREE_TMPL)]);
    etcd.put_all([("/c/k", "1")]).await;
    let mut daemon = Daemon::start(daemon_args(&cfg, &etcd), &dir.path().join("log"));
    wait_for_content(&target, "/c/k=1\n", LIMIT, || daemon.log()).await;

    // etcd goes away: the file stays, the daemon stays.
    etcd.kill(0);
    assert!(
        eventually(LIMIT, || daemon.log().contains("reconnecting")).await,
        "{}",
        daemon.log()
    );
    assert!(daemon.alive());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "/c/k=1\n");
    etcd.restart(0);
    assert!(etcd.wait_ready(LIMIT).await);
    etcd.put_all([("/c/k", "2")]).await;
    wait_for_content(&target, "/c/k=2\n", LIMIT, || daemon.log()).await;

    // The daemon is frozen while its stream breaks and the history it needs is compacted.
    daemon.signal(Signal::SIGSTOP);
    etcd.restart(0);
    assert!(etcd.wait_ready(LIMIT).await);
    etcd.put_all([("/c/k", "3"), ("/c/other", "x")]).await;
    let mut client = etcd.client().await;
    let revision = client
        .get("/c", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    client.compact(revision, None).await.unwrap();
    daemon.signal(Signal::SIGCONT);
    wait_for_content(&target, "/c/k=3\n/c/other=x\n", LIMIT, || daemon.log()).await;
    assert!(daemon.log().contains("compacted"), "{}", daemon.log());
    // The watch goes on after the compaction: later changes still arrive.
    etcd.put_all([("/c/k", "4")]).await;
    wait_for_content(&target, "/c/k=4\n/c/other=x\n", LIMIT, || daemon.log()).await;
    assert!(daemon.alive());
}

on_each_etcd!(
    #[tokio::test]
    survives_etcd_restart_and_compaction_without_losing_an_update
);

#[tokio::test]
async fn notreally_daemon_prints_diffs_and_writes_nothing() {
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (json, target) = tree_entry(dir.path(), "n", "/n", "");
    write(&target, "/n/k=old\n");
    let cfg = cfgdir(dir.path(), &[("n", json)], &[("tree.tmpl", TREE_TMPL)]);
    etcd.put_all([("/n/k", "old")]).await;
    let mut args = daemon_args(&cfg, &etcd);
    args.push("--notreally".into());
    let daemon = Daemon::start(args, &dir.path().join("log"));
    assert!(
        eventually(LIMIT, || daemon.log().contains("watching")).await,
        "{}",
        daemon.log()
    );
    etcd.put_all([("/n/k", "new")]).await;
    assert!(
        eventually(LIMIT, || daemon.log().contains("-/n/k=old\n+/n/k=new\n")).await,
        "{}",
        daemon.log()
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "/n/k=old\n");
    assert_eq!(reloads(dir.path(), "n"), 0);
}

#[tokio::test]
async fn an_entry_with_several_keys_renders_on_a_change_under_any_at_one_revision() {
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("k.conf");
    let json = format!(
        r#"{{"id":"k","prefix":"/p","keys":["/a","/b"],"recursive":true,"source":"k.tmpl",
            "target":"{}"}}"#,
        target.display()
    );
    let tmpl = "<% for k, v in data %><%= k %>=<%= v %>\n<% endfor %>\
                b=<%= getvs(pattern=\"/p/b/*\") | join(sep=\",\") %>\n";
    let cfg = cfgdir(dir.path(), &[("k", json)], &[("k.tmpl", tmpl)]);
    etcd.put_all([("/p/a/1", "one"), ("/p/b/1", "x"), ("/other/1", "o")])
        .await;
    let daemon = Daemon::start(daemon_args(&cfg, &etcd), &dir.path().join("log"));
    wait_for_content(&target, "/p/a/1=one\nb=x\n", LIMIT, || daemon.log()).await;
    let renders = || {
        daemon
            .log()
            .lines()
            .filter(|l| l.contains("[k] ") && (l.contains("updated") || l.contains("unchanged")))
            .map(|l| {
                let (_, revision) = l.rsplit_once("(revision ").unwrap();
                revision.trim_end_matches(')').parse::<i64>().unwrap()
            })
            .collect::<Vec<_>>()
    };

    // A change under the second key alone re-renders.
    etcd.put_all([("/p/b/2", "y")]).await;
    wait_for_content(&target, "/p/a/1=one\nb=x,y\n", LIMIT, || daemon.log()).await;

    // One transaction over both keys (and a key the entry does not read) is one render,
    // which sees all of it.
    let mut client = etcd.client().await;
    let txn = client
        .txn(Txn::new().and_then([
            TxnOp::put("/p/a/2", "two", None),
            TxnOp::put("/p/b/3", "z", None),
            TxnOp::put("/other/2", "o", None),
        ]))
        .await
        .unwrap();
    let revision = txn.header().unwrap().revision();
    wait_for_content(&target, "/p/a/1=one\n/p/a/2=two\nb=x,y,z\n", LIMIT, || {
        daemon.log()
    })
    .await;
    assert!(eventually(LIMIT, || renders().contains(&revision)).await);
    // A later change under the first key marks the end: every render before it is logged.
    let last = client.put("/p/a/3", "three", None).await.unwrap();
    let last = last.header().unwrap().revision();
    assert!(eventually(LIMIT, || renders().last() == Some(&last)).await);
    let seen = renders();
    assert_eq!(
        seen.iter().filter(|&&r| r == revision).count(),
        1,
        "the transaction rendered once: {seen:?}\n{}",
        daemon.log()
    );
    assert_eq!(
        seen.len(),
        4,
        "start, /p/b/2, the transaction, /p/a/3: {seen:?}"
    );
    // Changes outside the entry's keys render nothing.
    client.put("/other/3", "o", None).await.unwrap();
    let marker = client.put("/p/b/4", "w", None).await.unwrap();
    let marker = marker.header().unwrap().revision();
    assert!(eventually(LIMIT, || renders().last() == Some(&marker)).await);
    assert_eq!(renders().len(), 5, "{}", daemon.log());
}
