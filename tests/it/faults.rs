//! The daemon against a 3-member etcd cluster under faults: a random writer (puts,
//! deletes, multi-key transactions, bursts) runs while members are killed (leader
//! included) and restarted, paused, the whole cluster goes down, and the history the
//! daemon needs is compacted away. After every fault the writer pauses and the daemon must
//! catch up with the unchanged cluster by itself, with no further fault to force a
//! reconnect (the lag is measured). At the end every target must equal the render of
//! etcd's final state, the daemon must be alive, and no target may ever have been seen
//! half-written. Variants: etcd with auth and tokens that expire after 2 s, and trees
//! holding 1 MB values.
//!
//! `RECONFIG_FAULT_SEED` replays a run; `cargo test --test it faults:: -- --ignored` runs the
//! longer soaks (`RECONFIG_SOAK_ROUNDS`, default 10).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use etcd_client::{Client, GetOptions, Txn, TxnOp};
use nix::sys::signal::Signal;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const TREES: [&str; 4] = ["/f/a", "/f/b", "/f/c", "/f/d"];
const LIMIT: Duration = Duration::from_secs(30);
const TEMPLATE: &str = "BEGIN <%= watched %>
<% for k, v in data %>
<%= k %>=<%= v %>
<% endfor %>
<% for name, tree in altdata %>
<% for k, v in tree %>
<%= name %>:<%= k %>=<%= v %>
<% endfor %>
<% endfor %>
END
";

/// (id, key, extra JSON) of the entries: two share a key, one watches an altkey.
const ENTRIES: [(&str, &str, &str); 4] = [
    ("a1", "/f/a", ""),
    ("a2", "/f/a", ""),
    (
        "b",
        "/f/b",
        r#","altkeys":{"c":"/f/c"},"watchaltkeys":true"#,
    ),
    ("d", "/f/d", ""),
];

fn config(root: &Path) -> (PathBuf, Vec<(String, PathBuf)>) {
    let mut entries = Vec::new();
    let mut targets = Vec::new();
    for (id, key, extra) in ENTRIES {
        let target = root.join(format!("{id}.conf"));
        entries.push((
            id,
            format!(
                r#"{{"id":"{id}","key":"{key}","recursive":true,"source":"t.tmpl","target":"{}"{extra}}}"#,
                target.display()
            ),
        ));
        targets.push((id.to_string(), target));
    }
    (cfgdir(root, &entries, &[("t.tmpl", TEMPLATE)]), targets)
}

async fn bounded<T>(
    f: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Option<T> {
    tokio::time::timeout(Duration::from_secs(2), f)
        .await
        .ok()?
        .ok()
}

/// What sets a run's cluster and data apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// No auth, small values.
    Plain,
    /// A user and password, simple tokens that expire after 2 s.
    Auth,
    /// Some keys hold 1 MB values.
    Large,
}

/// One random operation; errors are fine (the cluster may be down), the final state decides.
async fn random_op(client: &mut Client, rng: &mut StdRng, counter: &mut u64, variant: Variant) {
    *counter += 1;
    let n = *counter;
    let key = |rng: &mut StdRng| {
        format!(
            "{}/k{}",
            TREES[rng.random_range(0..4)],
            rng.random_range(0..30)
        )
    };
    let value = |n: u64| format!("v{n}-{}", "x".repeat(64));
    match rng.random_range(0..100) {
        // A few keys of /f/a (a replica's tree) and /f/c (an altkey) hold 1 MB.
        0..5 if variant == Variant::Large => {
            let tree = ["/f/a", "/f/c"][rng.random_range(0..2)];
            let key = format!("{tree}/big{}", rng.random_range(0..2));
            bounded(client.put(key, format!("v{n}-{}", "L".repeat(1_000_000)), None)).await;
        }
        0..50 => {
            bounded(client.put(key(rng), value(n), None)).await;
        }
        50..70 => {
            bounded(client.delete(key(rng), None)).await;
        }
        70..95 => {
            let ops: Vec<TxnOp> = (0..rng.random_range(2..5))
                .map(|_| {
                    if rng.random_bool(0.7) {
                        TxnOp::put(key(rng), value(n), None)
                    } else {
                        TxnOp::delete(key(rng), None)
                    }
                })
                .collect();
            bounded(client.txn(Txn::new().and_then(ops))).await;
        }
        _ => {
            for i in 0..200 {
                bounded(client.put(format!("/f/d/k{}", i % 30), value(n * 1000 + i), None)).await;
            }
        }
    }
}

/// Reads every file until stopped; returns the contents that were not whole renders.
async fn observe(targets: Vec<(String, PathBuf)>, stop: Arc<AtomicBool>) -> Vec<String> {
    let mut bad = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        for (_, path) in &targets {
            if let Ok(text) = std::fs::read_to_string(path) {
                if !(text.starts_with("BEGIN ") && text.ends_with("END\n")) {
                    bad.push(text);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    bad
}

async fn final_snapshot(etcd: &EtcdServer, path: &Path) {
    let mut client = etcd.client().await;
    let all = client
        .get("/f/", Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    let map: BTreeMap<String, String> = all
        .kvs()
        .iter()
        .map(|kv| {
            (
                kv.key_str().unwrap().to_string(),
                kv.value_str().unwrap().to_string(),
            )
        })
        .collect();
    std::fs::write(path, serde_json::to_string(&map).unwrap()).unwrap();
}

async fn wait_all_ready(etcd: &mut EtcdServer) {
    assert!(
        etcd.wait_ready(LIMIT).await,
        "cluster did not recover:\n{}",
        etcd.log()
    );
}

/// Each target's render of etcd's state now, through `reconfig render`.
async fn expected(etcd: &EtcdServer, dir: &Path, cfg: &Path) -> Vec<(String, String)> {
    let state = dir.join("state.json");
    final_snapshot(etcd, &state).await;
    let mut renders = Vec::new();
    for (id, _, _) in ENTRIES {
        let rendered = run_reconfig([
            "render",
            "--data",
            state.to_str().unwrap(),
            "--entry",
            id,
            "--cfgdir",
            cfg.to_str().unwrap(),
        ])
        .await;
        assert_eq!(rendered.code, 0, "{}", rendered.stderr);
        renders.push((id.to_string(), rendered.stdout));
    }
    renders
}

/// The daemon under faults, with the cluster, the writer and what was observed.
struct Trial {
    seed: u64,
    etcd: EtcdServer,
    dir: tempfile::TempDir,
    cfg: PathBuf,
    targets: Vec<(String, PathBuf)>,
    daemon: Daemon,
    /// Held to pause the writer between two operations.
    writes: Arc<tokio::sync::Mutex<u64>>,
    /// How long the targets stayed behind a cluster with a leader and no writes, after
    /// each fault.
    lags: Vec<Duration>,
}

impl Trial {
    /// With the writer paused and every member up, waits for every target to show etcd's
    /// state without any fault forcing a reconnect; records how long that took.
    async fn caught_up(&mut self, after: &str) {
        let _paused = self.writes.lock().await;
        wait_all_ready(&mut self.etcd).await;
        let since = Instant::now();
        let expected = expected(&self.etcd, self.dir.path(), &self.cfg).await;
        for ((id, target), (_, text)) in self.targets.iter().zip(&expected) {
            let seed = self.seed;
            let daemon = &self.daemon;
            wait_for_content(target, text, LIMIT, || {
                format!(
                    "seed {seed}: {id} stayed behind after {after}\n{}",
                    daemon.log()
                )
            })
            .await;
        }
        let lag = since.elapsed();
        if lag > Duration::from_secs(5) {
            eprintln!("seed {}: {lag:?} to catch up after {after}", self.seed);
        }
        self.lags.push(lag);
    }
}

/// One fault run at a time: three clusters and writers at once would measure the machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn fault_run(seed: u64, rounds: usize, variant: Variant, version: EtcdVersion) {
    let _serial = SERIAL.lock().await;
    eprintln!(
        "fault test seed {seed}, {variant:?}, etcd {} (RECONFIG_FAULT_SEED={seed} replays it)",
        version.release()
    );
    let etcd = match variant {
        Variant::Auth => version.cluster_args(3, &["--auth-token-ttl", "2"]).await,
        Variant::Plain | Variant::Large => version.cluster(3).await,
    };
    if variant == Variant::Auth {
        etcd.enable_auth().await;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cfg, targets) = config(dir.path());
    let anchors: Vec<(String, String)> = TREES
        .iter()
        .map(|t| (format!("{t}/anchor"), "fixed".to_string()))
        .collect();
    etcd.put_all(anchors).await;

    let mut command = reconfig();
    if variant == Variant::Auth {
        command
            .env("ETCD_USERNAME", "root")
            .env("ETCD_PASSWORD", "root-pw");
    }
    let daemon = Daemon::spawn(
        command,
        [
            "--cfgdir",
            cfg.to_str().unwrap(),
            "--endpoints",
            &etcd.endpoint,
        ],
        &dir.path().join("daemon.log"),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let observer = tokio::spawn(observe(targets.clone(), stop.clone()));
    let writes = Arc::new(tokio::sync::Mutex::new(0u64));
    let writer = {
        let stop = stop.clone();
        let writes = writes.clone();
        let mut client = etcd.client().await;
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed);
            while !stop.load(Ordering::Relaxed) {
                let mut counter = writes.lock().await;
                random_op(&mut client, &mut rng, &mut counter, variant).await;
            }
        })
    };
    let mut run = Trial {
        seed,
        etcd,
        dir,
        cfg,
        targets,
        daemon,
        writes,
        lags: Vec::new(),
    };
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let pause = |ms: u64| tokio::time::sleep(Duration::from_millis(ms));
    for round in 0..rounds {
        eprintln!("round {round}");
        pause(500).await;
        // Kill the leader, then bring it back.
        let leader = run.etcd.leader().await.unwrap_or(0);
        run.etcd.kill(leader);
        pause(800).await;
        run.etcd.restart(leader);
        run.caught_up("a leader restart").await;
        // Pause a member.
        let member = rng.random_range(0..run.etcd.size());
        run.etcd.signal(member, Signal::SIGSTOP);
        pause(1200).await;
        run.etcd.signal(member, Signal::SIGCONT);
        run.caught_up("a paused member").await;
        // The whole cluster goes down for a while.
        (0..run.etcd.size()).for_each(|i| run.etcd.kill(i));
        pause(1500).await;
        (0..run.etcd.size()).for_each(|i| run.etcd.restart(i));
        run.caught_up("a total outage").await;
        // Compaction past the watcher: freeze the daemon, break its stream, write, compact.
        run.daemon.signal(Signal::SIGSTOP);
        (0..run.etcd.size()).for_each(|i| run.etcd.restart(i));
        wait_all_ready(&mut run.etcd).await;
        pause(300).await;
        let mut client = run.etcd.client().await;
        if let Some(r) = bounded(client.get("/f", None)).await {
            let revision = r.header().unwrap().revision();
            bounded(client.compact(revision, None)).await;
        }
        run.daemon.signal(Signal::SIGCONT);
        assert!(run.daemon.alive(), "daemon died:\n{}", run.daemon.log());
        run.caught_up("a compaction").await;
    }
    pause(500).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let half_written = observer.await.unwrap();
    run.caught_up("the last write").await;
    assert!(
        half_written.is_empty(),
        "seed {seed}: saw partial files: {half_written:?}"
    );
    let daemon = &mut run.daemon;
    assert!(
        daemon.alive(),
        "seed {seed}: daemon died:\n{}",
        daemon.log()
    );
    assert!(
        daemon.log().contains("compacted"),
        "seed {seed}: compaction path not taken:\n{}",
        daemon.log()
    );
    eprintln!(
        "seed {seed}, {variant:?}: {} operations in {rounds} round(s), all targets converged; \
         catch-up after each fault: {:?}",
        run.writes.lock().await,
        run.lags
    );
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(LIMIT).await, Some(0), "{}", daemon.log());
}

fn seed() -> u64 {
    std::env::var("RECONFIG_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random())
}

fn soak_rounds() -> usize {
    std::env::var("RECONFIG_SOAK_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converges_under_cluster_faults() {
    fault_run(seed(), 1, Variant::Plain, EtcdVersion::V34).await;
}

async fn converges_under_cluster_faults_with_expiring_auth_tokens(version: EtcdVersion) {
    fault_run(seed(), 1, Variant::Auth, version).await;
}

on_each_etcd!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    converges_under_cluster_faults_with_expiring_auth_tokens
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converges_under_cluster_faults_with_large_values() {
    fault_run(seed(), 1, Variant::Large, EtcdVersion::V34).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long soak; run with --ignored"]
async fn soak_under_cluster_faults() {
    fault_run(seed(), soak_rounds(), Variant::Plain, EtcdVersion::V34).await;
}

async fn soak_under_cluster_faults_with_expiring_auth_tokens(version: EtcdVersion) {
    fault_run(seed(), soak_rounds(), Variant::Auth, version).await;
}

on_each_etcd!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "long soak; run with --ignored"]
    soak_under_cluster_faults_with_expiring_auth_tokens
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long soak; run with --ignored"]
async fn soak_under_cluster_faults_with_large_values() {
    fault_run(seed(), soak_rounds(), Variant::Large, EtcdVersion::V34).await;
}
