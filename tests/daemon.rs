//! The daemon against a real etcd: convergence, coalescing, transactions, reloads,
//! template changes, signals, and recovery from an etcd restart and from compaction.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
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

#[tokio::test]
async fn update_reaches_target_and_sigterm_exits_0() {
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (json, target) = tree_entry(dir.path(), "a", "/a", "");
    let cfg = cfgdir(dir.path(), &[("a", json)], &[("tree.tmpl", TREE_TMPL)]);
    etcd.put_all([("/a/1", "one")]).await;
    let mut daemon = Daemon::start(daemon_args(&cfg, &etcd), &dir.path().join("log"));
    wait_for_content(&target, "/a/1=one\n", LIMIT, || daemon.log()).await;

    etcd.put_all([("/a/2", "two")]).await;
    wait_for_content(&target, "/a/1=one\n/a/2=two\n", LIMIT, || daemon.log()).await;
    let mut client = etcd.client().await;
    client.delete("/a/1", None).await.unwrap();
    wait_for_content(&target, "/a/2=two\n", LIMIT, || daemon.log()).await;

    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(LIMIT).await, Some(0), "{}", daemon.log());
}

#[tokio::test]
async fn a_burst_ends_in_the_final_state_after_few_renders() {
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (json, target) = tree_entry(dir.path(), "b", "/b", "");
    let json = json.replace("echo x >>", "sleep 0.05; echo x >>");
    let cfg = cfgdir(dir.path(), &[("b", json)], &[("tree.tmpl", TREE_TMPL)]);
    etcd.put_all([("/b/k", "start")]).await;
    let daemon = Daemon::start(daemon_args(&cfg, &etcd), &dir.path().join("log"));
    wait_for_content(&target, "/b/k=start\n", LIMIT, || daemon.log()).await;

    let writes = 2000;
    let mut client = etcd.client().await;
    for i in 1..=writes {
        client.put("/b/k", format!("v{i}"), None).await.unwrap();
    }
    wait_for_content(&target, &format!("/b/k=v{writes}\n"), LIMIT, || {
        daemon.log()
    })
    .await;
    let renders = reloads(dir.path(), "b");
    assert!(
        renders <= 60,
        "{renders} reloads for {writes} writes: not coalesced"
    );
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
    let renders = |entry: &str| {
        let tag = format!("[{entry}] ");
        daemon
            .log()
            .lines()
            .filter(|l| l.contains(&tag) && (l.contains("updated") || l.contains("unchanged")))
            .count()
    };
    assert!(eventually(LIMIT, || renders("t") == 1 && renders("m") == 1).await);

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
    assert!(eventually(LIMIT, || renders("t") == 2 && renders("m") == 2).await);
    // A second render would follow within milliseconds: watch a while for one.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(renders("t"), 2, "one txn, one render\n{}", daemon.log());
    assert_eq!(
        renders("m"),
        2,
        "one txn over two watched keys, one render\n{}",
        daemon.log()
    );
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

#[tokio::test]
async fn survives_etcd_restart_and_compaction_without_losing_an_update() {
    let mut etcd = EtcdServer::start().await;
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
