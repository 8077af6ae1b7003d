//! No update lost in the deployments operators really run: auth tokens that expire or die
//! with a restart, trees of large values, keys that are not UTF-8, trees that empty, quiet
//! keys whose history is compacted, streams that break as soon as they are made.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;
use nix::sys::signal::Signal;

const LIMIT: Duration = Duration::from_secs(30);

/// Prints every pair of the tree as `key=value`, or `key len=N` for long values.
const TREE_TMPL: &str = "<% for k, v in data %>
<% if v | length > 100 %><%= k %> len=<%= v | length %><% else %><%= k %>=<%= v %><% endif %>
<% endfor %>
";

/// An entry rendering `key`'s tree into `root/NAME.conf`, with `extra` JSON fields.
fn entry(root: &Path, name: &str, key: &str, extra: &str) -> (String, PathBuf) {
    let target = root.join(format!("{name}.conf"));
    let json = format!(
        r#"{{"id":"{name}","key":"{key}","recursive":true,"source":"tree.tmpl",
            "target":"{}"{extra}}}"#,
        target.display()
    );
    (json, target)
}

fn args(cfg: &Path, endpoint: &str) -> Vec<String> {
    [
        "--cfgdir",
        cfg.to_str().unwrap(),
        "--endpoints",
        endpoint,
        "-d",
    ]
    .map(String::from)
    .to_vec()
}

fn as_root(mut cmd: tokio::process::Command) -> tokio::process::Command {
    cmd.env("ETCD_USERNAME", "root")
        .env("ETCD_PASSWORD", "root-pw");
    cmd
}

/// The watch of etcd-util, the daemon and dispense each see one change after `fault`.
struct Watchers {
    daemon: Daemon,
    dispense: Daemon,
    util: Daemon,
    target: PathBuf,
    mirror: PathBuf,
}

impl Watchers {
    fn log(&self) -> String {
        format!(
            "daemon:\n{}\ndispense:\n{}\netcd-util:\n{}",
            self.daemon.log(),
            self.dispense.log(),
            self.util.log()
        )
    }

    /// Puts `/auth/k=value` and waits until all three show it.
    async fn see(&self, etcd: &EtcdServer, value: &str) {
        etcd.put_all([("/auth/k", value)]).await;
        wait_for_content(&self.target, &format!("/auth/k={value}\n"), LIMIT, || {
            self.log()
        })
        .await;
        wait_for_content(&self.mirror.join("k"), value, LIMIT, || self.log()).await;
        let printed = format!(r#""value":"{value}""#);
        assert!(
            eventually(LIMIT, || self.util.log().contains(&printed)).await,
            "{}",
            self.log()
        );
    }
}

async fn auth_tokens_are_renewed_after_a_restart_and_a_pause_past_their_ttl(version: EtcdVersion) {
    let mut etcd = version.start_args(&["--auth-token-ttl", "2"]).await;
    etcd.enable_auth().await;
    etcd.put_all([("/auth/k", "0")]).await;
    let forwarder = Forwarder::start(&etcd.endpoint).await;
    let dir = tempfile::tempdir().unwrap();
    let (json, target) = entry(dir.path(), "a", "/auth", "");
    let cfg = cfgdir(dir.path(), &[("a", json)], &[("tree.tmpl", TREE_TMPL)]);
    let mirror = dir.path().join("mirror");
    std::fs::create_dir(&mirror).unwrap();
    let endpoint = forwarder.endpoint.as_str();
    let watchers = Watchers {
        daemon: Daemon::spawn(
            as_root(reconfig()),
            args(&cfg, endpoint),
            &dir.path().join("daemon.log"),
        ),
        dispense: Daemon::spawn(
            as_root(reconfig()),
            [
                "dispense",
                "-p",
                "/auth",
                "-t",
                mirror.to_str().unwrap(),
                "--endpoints",
                endpoint,
            ],
            &dir.path().join("dispense.log"),
        ),
        util: Daemon::spawn(
            as_root(binary(&etcd_util())),
            ["--endpoints", endpoint, "-o", "watch", "-r", "-k", "/auth"],
            &dir.path().join("util.log"),
        ),
        target,
        mirror,
    };
    wait_for_content(&watchers.target, "/auth/k=0\n", LIMIT, || watchers.log()).await;
    // etcd-util watches from the revision current when its watch is created: put until
    // it prints, then its watch is live.
    let mut round = 0;
    while !watchers.util.log().contains(r#""value":"ready"#) {
        round += 1;
        assert!(round < 100, "etcd-util never watched\n{}", watchers.log());
        etcd.put_all([("/auth/k", format!("ready{round}"))]).await;
        eventually(Duration::from_millis(200), || {
            watchers.util.log().contains(r#""value":"ready"#)
        })
        .await;
    }
    watchers.see(&etcd, "1").await;

    // A restart: every token etcd handed out is gone.
    etcd.restart(0);
    assert!(etcd.wait_ready(LIMIT).await, "{}", etcd.log());
    watchers.see(&etcd, "2").await;

    // A pause past the token TTL that breaks the streams: the tokens expire as etcd
    // resumes, and every watch has to be re-created.
    etcd.signal(0, Signal::SIGSTOP);
    tokio::time::sleep(Duration::from_secs(3)).await;
    forwarder.sever();
    etcd.signal(0, Signal::SIGCONT);
    watchers.see(&etcd, "3").await;
}

on_each_etcd!(
    #[tokio::test]
    auth_tokens_are_renewed_after_a_restart_and_a_pause_past_their_ttl
);

/// A value of `len` bytes.
fn big(len: usize, fill: char) -> String {
    fill.to_string().repeat(len)
}

async fn large_trees_are_read_in_pages_and_caught_up_in_fragments(version: EtcdVersion) {
    const MB: usize = 1_000_000;
    let etcd = version.start().await;
    let dir = tempfile::tempdir().unwrap();
    let gate = dir.path().join("gate");
    let (big_entry, big_target) = entry(dir.path(), "big", "/big", "");
    // The small entry's first reload waits for the gate: the watch starts only after
    // the first render of every entry, so whatever is written meanwhile arrives as one
    // catch-up when it starts.
    let reload = format!(
        r#","reloadcmd":"while [ ! -e {} ]; do sleep 0.05; done""#,
        gate.display()
    );
    let (small_entry, small_target) = entry(dir.path(), "small", "/small", &reload);
    let cfg = cfgdir(
        dir.path(),
        &[("big", big_entry), ("small", small_entry)],
        &[("tree.tmpl", TREE_TMPL)],
    );
    let values: Vec<(String, String)> = (1..=5)
        .map(|i| (format!("/big/{i}"), big(MB, char::from(b'a' + i as u8))))
        .chain([("/small/k".to_string(), "s".to_string())])
        .collect();
    etcd.put_all(values).await;
    let five = (1..=5)
        .map(|i| format!("/big/{i} len={MB}\n"))
        .collect::<String>();

    std::fs::write(&gate, "").unwrap();
    let run = run_reconfig([
        "--onetime",
        "--cfgdir",
        cfg.to_str().unwrap(),
        "--endpoints",
        &etcd.endpoint,
    ])
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&big_target).unwrap(), five);
    assert_eq!(
        std::fs::read_to_string(&small_target).unwrap(),
        "/small/k=s\n"
    );
    for target in [&big_target, &small_target] {
        std::fs::remove_file(target).unwrap();
    }
    std::fs::remove_file(&gate).unwrap();

    let daemon = Daemon::start(args(&cfg, &etcd.endpoint), &dir.path().join("log"));
    wait_for_content(&big_target, &five, LIMIT, || daemon.log()).await;
    wait_for_content(&small_target, "/small/k=s\n", LIMIT, || daemon.log()).await;
    // 6 MB written and deleted while the first reload holds the watch back.
    for i in 1..=6 {
        let key = format!("/big/x{i}");
        etcd.put_all([(key.clone(), big(MB, 'x'))]).await;
        etcd.client().await.delete(key, None).await.unwrap();
    }
    etcd.put_all([("/big/6", "six")]).await;
    std::fs::write(&gate, "").unwrap();
    let expected = format!("{five}/big/6=six\n");
    wait_for_content(&big_target, &expected, LIMIT, || daemon.log()).await;
    let log = daemon.log();
    let broken = log.matches("watch lost").count() + log.matches("watch still down").count();
    assert!(broken <= 2, "{broken} reconnects\n{log}");
}

on_each_etcd!(
    #[tokio::test]
    large_trees_are_read_in_pages_and_caught_up_in_fragments
);

#[tokio::test]
async fn a_key_that_is_not_utf8_fails_only_the_entry_whose_tree_holds_it() {
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (small, small_target) = entry(dir.path(), "small", "/small", "");
    let (bad, bad_target) = entry(dir.path(), "bad", "/bad", "");
    let cfg = cfgdir(
        dir.path(),
        &[("small", small), ("bad", bad)],
        &[("tree.tmpl", TREE_TMPL)],
    );
    let mut client = etcd.client().await;
    client.put("/small/a", "1", None).await.unwrap();
    // Inside the range read for /small, outside its tree.
    client
        .put(b"/small.\xff".to_vec(), "beside", None)
        .await
        .unwrap();
    client.put("/bad/ok", "1", None).await.unwrap();
    client
        .put(b"/bad/\xfe".to_vec(), "inside", None)
        .await
        .unwrap();

    let run = run_reconfig([
        "--onetime",
        "--cfgdir",
        cfg.to_str().unwrap(),
        "--endpoints",
        &etcd.endpoint,
    ])
    .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(
        std::fs::read_to_string(&small_target).unwrap(),
        "/small/a=1\n"
    );
    assert!(!bad_target.exists());
    let lines: Vec<&str> = run.stderr.lines().filter(|l| l.contains("UTF-8")).collect();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert!(
        lines[0].contains("[bad]") && lines[0].contains(r"/bad/\xfe"),
        "{}",
        run.stderr
    );

    // The watch agrees with the read: such a key fails its entry until it is deleted.
    client.delete(b"/bad/\xfe".to_vec(), None).await.unwrap();
    let daemon = Daemon::start(args(&cfg, &etcd.endpoint), &dir.path().join("log"));
    wait_for_content(&bad_target, "/bad/ok=1\n", LIMIT, || daemon.log()).await;
    client
        .put(b"/bad/\xfd".to_vec(), "again", None)
        .await
        .unwrap();
    let failed = eventually(LIMIT, || {
        daemon
            .log()
            .lines()
            .any(|l| l.contains("[bad]") && l.contains(r"/bad/\xfd") && l.contains("UTF-8"))
    })
    .await;
    assert!(failed, "{}", daemon.log());
    client
        .put(b"/small.\xfe".to_vec(), "beside", None)
        .await
        .unwrap();
    client.put("/small/b", "2", None).await.unwrap();
    wait_for_content(&small_target, "/small/a=1\n/small/b=2\n", LIMIT, || {
        daemon.log()
    })
    .await;
    assert_eq!(std::fs::read_to_string(&bad_target).unwrap(), "/bad/ok=1\n");
    client.delete(b"/bad/\xfd".to_vec(), None).await.unwrap();
    client.put("/bad/ok", "2", None).await.unwrap();
    wait_for_content(&bad_target, "/bad/ok=2\n", LIMIT, || daemon.log()).await;
}

#[tokio::test]
async fn an_emptied_tree_renders_with_empty_data() {
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let empty = format!("BEGIN\n{TREE_TMPL}END\n");
    let (json, target) = entry(dir.path(), "e", "/e", "");
    let json = json.replace("tree.tmpl", "framed.tmpl");
    let cfg = cfgdir(dir.path(), &[("e", json)], &[("framed.tmpl", &empty)]);
    etcd.put_all([("/e/a", "1")]).await;
    let daemon = Daemon::start(args(&cfg, &etcd.endpoint), &dir.path().join("log"));
    wait_for_content(&target, "BEGIN\n/e/a=1\nEND\n", LIMIT, || daemon.log()).await;
    // The last backend's key goes (deleted here; a lease running out is the same event).
    etcd.client().await.delete("/e/a", None).await.unwrap();
    wait_for_content(&target, "BEGIN\nEND\n", LIMIT, || daemon.log()).await;
    assert!(
        daemon.log().contains("nothing under /e in etcd"),
        "{}",
        daemon.log()
    );

    // --onetime and `reconfig render` agree.
    std::fs::remove_file(&target).unwrap();
    let run = run_reconfig([
        "--onetime",
        "--cfgdir",
        cfg.to_str().unwrap(),
        "--endpoints",
        &etcd.endpoint,
    ])
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "BEGIN\nEND\n");
    assert!(run.stderr.contains("nothing under /e"), "{}", run.stderr);
    let data = dir.path().join("data.json");
    std::fs::write(&data, r#"{"/other": "x"}"#).unwrap();
    let render = run_reconfig([
        "render",
        "--data",
        data.to_str().unwrap(),
        "--cfgdir",
        cfg.to_str().unwrap(),
    ])
    .await;
    assert_eq!(
        (render.code, render.stdout.as_str()),
        (0, "BEGIN\nEND\n"),
        "{}",
        render.stderr
    );
}

async fn a_quiet_watch_resumes_near_the_current_revision(version: EtcdVersion) {
    let mut etcd = version
        .start_args(&["--experimental-watch-progress-notify-interval", "200ms"])
        .await;
    let dir = tempfile::tempdir().unwrap();
    let (json, target) = entry(dir.path(), "q", "/q", "");
    let cfg = cfgdir(dir.path(), &[("q", json)], &[("tree.tmpl", TREE_TMPL)]);
    etcd.put_all([("/q/k", "1")]).await;
    let daemon = Daemon::start(args(&cfg, &etcd.endpoint), &dir.path().join("log"));
    wait_for_content(&target, "/q/k=1\n", LIMIT, || daemon.log()).await;
    // Much happens elsewhere while /q stays quiet.
    let mut client = etcd.client().await;
    let mut revision = 0;
    for i in 0..50 {
        let put = client.put(format!("/busy/{i}"), "x", None).await.unwrap();
        revision = put.header().unwrap().revision();
    }
    let progressed = format!("watch of /q at revision {revision} (progress)");
    assert!(
        eventually(LIMIT, || daemon.log().contains(&progressed)).await,
        "{}",
        daemon.log()
    );
    client.compact(revision, None).await.unwrap();
    etcd.restart(0);
    assert!(etcd.wait_ready(LIMIT).await);
    etcd.put_all([("/q/k", "2")]).await;
    wait_for_content(&target, "/q/k=2\n", LIMIT, || daemon.log()).await;
    assert!(
        !daemon.log().contains("compacted"),
        "the resume point fell behind the compaction\n{}",
        daemon.log()
    );
}

on_each_etcd!(
    #[tokio::test]
    a_quiet_watch_resumes_near_the_current_revision
);

#[tokio::test]
async fn a_stream_that_breaks_right_after_it_is_made_is_down() {
    let etcd = EtcdServer::start().await;
    let forwarder = Forwarder::start(&etcd.endpoint).await;
    let dir = tempfile::tempdir().unwrap();
    let (json, target) = entry(dir.path(), "h", "/h", "");
    let cfg = cfgdir(dir.path(), &[("h", json)], &[("tree.tmpl", TREE_TMPL)]);
    etcd.put_all([("/h/k", "1")]).await;
    let mut daemon_args = args(&cfg, &forwarder.endpoint);
    daemon_args
        .extend(["--metrics-addr", "127.0.0.1:0", "--unhealthy-after", "1s"].map(String::from));
    let daemon = Daemon::start(daemon_args, &dir.path().join("log"));
    wait_for_content(&target, "/h/k=1\n", LIMIT, || daemon.log()).await;
    let addr = metrics_addr(&daemon).await;

    // Every connection now dies soon after it opens: the watch is re-created each time,
    // and breaks again at once.
    forwarder.cut_after(Some(Duration::from_millis(300)));
    forwarder.sever();
    poll_get(&addr, "/healthz", &daemon, |code, _| code == 503).await;
    // etcd_up as /metrics says, and how often the log said it was re-established.
    let state = || async {
        let (_, metrics) = http_get(&addr, "/metrics").await.unwrap();
        let up = metrics.lines().find_map(|l| {
            l.strip_prefix("reconfig_etcd_up ")?
                .trim()
                .parse::<f64>()
                .ok()
        });
        let log = daemon.log();
        assert_eq!(log.matches("watch lost").count(), 1, "{log}");
        (up, log.matches("re-established").count())
    };
    assert_eq!(state().await, (Some(0.0), 0), "{}", daemon.log());

    // Connections live again: up, once.
    forwarder.cut_after(None);
    etcd.put_all([("/h/k", "2")]).await;
    wait_for_content(&target, "/h/k=2\n", LIMIT, || daemon.log()).await;
    let up = eventually(LIMIT, || daemon.log().contains("re-established")).await;
    assert!(up, "{}", daemon.log());
    assert_eq!(state().await, (Some(1.0), 1), "{}", daemon.log());
}

async fn behind_a_grpc_proxy_every_change_arrives(version: EtcdVersion) {
    let etcd = version.start().await;
    let proxy = GrpcProxy::start(&etcd).await;
    let dir = tempfile::tempdir().unwrap();
    // Several watches on one stream: the proxy numbers them itself.
    let trees = ["a", "b", "c"];
    let entries: Vec<(String, PathBuf)> = trees
        .iter()
        .map(|t| entry(dir.path(), t, &format!("/p/{t}"), ""))
        .collect();
    let named: Vec<(&str, String)> = trees
        .iter()
        .zip(&entries)
        .map(|(t, (json, _))| (*t, json.clone()))
        .collect();
    let cfg = cfgdir(dir.path(), &named, &[("tree.tmpl", TREE_TMPL)]);
    for t in trees {
        etcd.put_all([(format!("/p/{t}/k"), "0")]).await;
    }
    etcd.put_all([("/p/d/k", "0")]).await;
    let mirror = dir.path().join("mirror");
    std::fs::create_dir(&mirror).unwrap();
    let endpoint = proxy.endpoint.as_str();
    let daemon = Daemon::start(args(&cfg, endpoint), &dir.path().join("daemon.log"));
    let dispense = Daemon::start(
        [
            "dispense",
            "-p",
            "/p/d",
            "-t",
            mirror.to_str().unwrap(),
            "--endpoints",
            endpoint,
        ],
        &dir.path().join("dispense.log"),
    );
    let util = Daemon::spawn(
        binary(&etcd_util()),
        ["--endpoints", endpoint, "-o", "watch", "-r", "-k", "/p"],
        &dir.path().join("util.log"),
    );
    let log = || {
        format!(
            "daemon:\n{}\ndispense:\n{}\netcd-util:\n{}",
            daemon.log(),
            dispense.log(),
            util.log()
        )
    };
    for (_, target) in &entries {
        let t = target.file_stem().unwrap().to_str().unwrap();
        wait_for_content(target, &format!("/p/{t}/k=0\n"), LIMIT, log).await;
    }
    wait_for_content(&mirror.join("k"), "0", LIMIT, log).await;
    // etcd-util watches from the revision current when its watch is created.
    let mut round = 0;
    while !util.log().contains(r#""key":"/p/ready""#) {
        round += 1;
        assert!(round < 100, "etcd-util never watched\n{}", log());
        etcd.put_all([("/p/ready", format!("{round}"))]).await;
        eventually(Duration::from_millis(200), || {
            util.log().contains(r#""key":"/p/ready""#)
        })
        .await;
    }
    // Every change to every tree arrives, each under its own watch.
    for value in 1..=3 {
        for t in ["c", "a", "d", "b"] {
            etcd.put_all([(format!("/p/{t}/k"), value.to_string())])
                .await;
        }
        for (_, target) in &entries {
            let t = target.file_stem().unwrap().to_str().unwrap();
            wait_for_content(target, &format!("/p/{t}/k={value}\n"), LIMIT, log).await;
        }
        wait_for_content(&mirror.join("k"), &value.to_string(), LIMIT, log).await;
        let printed = r#""key":"/p/b/k","revision""#;
        let seen = eventually(LIMIT, || util.log().matches(&printed).count() >= value).await;
        assert!(seen, "{}", log());
    }
    assert!(!daemon.log().contains("watch lost"), "{}", log());
}

on_each_etcd!(
    #[tokio::test]
    behind_a_grpc_proxy_every_change_arrives
);
