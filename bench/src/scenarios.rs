//! The scenarios. Each starts from a fresh etcd, checks that every file it times is
//! byte-for-byte the correct render (a fast wrong file is a failure), and returns figures.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use etcd_client::{EventType, GetOptions, WatchOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::common::{binary, tcp_connections_to, Daemon, EtcdServer};
use crate::fixture::{
    config, config_with, entry, entry_with, load, own_template, read, render, tree_in_etcd,
};
use crate::measure::*;

const LIMIT: Duration = Duration::from_secs(60);

fn start_daemon(bin: &str, cfg: &Path, etcd: &EtcdServer, root: &Path) -> Daemon {
    Daemon::spawn(
        binary(bin),
        [
            "--cfgdir",
            cfg.to_str().unwrap(),
            "--endpoints",
            &etcd.endpoint,
        ],
        &root.join("daemon.log"),
    )
}

fn count_lines(text: &str, needle: &str) -> usize {
    text.lines().filter(|l| l.contains(needle)).count()
}

/// A: one entry on a 10-key tree with a `reloadcmd` (10 ms), 200 sequential updates;
/// latency from the put's response to the file holding the new render, next to a bare
/// etcd-client watch writing a file.
pub async fn latency(bin: &str) -> Value {
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let mut client = etcd.client().await;
    let mut tree: BTreeMap<String, String> = (0..10)
        .map(|i| (format!("/a/k{i}"), "init".to_string()))
        .collect();
    load(&mut client, &tree).await;
    // A reload that takes a while, as real ones do: the file must not wait for it.
    let reload = r#","reloadcmd":"sleep 0.01""#;
    let cfg = config(dir.path(), &[entry(&out, "a", "/a", reload)]);
    let target = out.join("a.conf");
    let floor_file = out.join("floor.txt");
    let watch = DirWatch::new(&out);
    let mut daemon = start_daemon(bin, &cfg, &etcd, dir.path());
    let expected = render(&tree);
    watch
        .wait_until(LIMIT, |_| read(&target) == expected)
        .expect("initial render");

    let (ready_tx, ready) = tokio::sync::oneshot::channel();
    let floor = {
        let mut watch_client = etcd.client().await;
        let floor_file = floor_file.clone();
        tokio::spawn(async move {
            let options = WatchOptions::new().with_prefix();
            let mut stream = watch_client.watch("/a/", Some(options)).await.unwrap();
            let mut ready_tx = Some(ready_tx);
            while let Ok(Some(response)) = stream.message().await {
                if response.created() {
                    ready_tx.take().map(|tx| tx.send(()));
                }
                for event in response.events() {
                    if let (EventType::Put, Some(kv)) = (event.event_type(), event.kv()) {
                        let line = format!("{}={}", kv.key_str().unwrap(), kv.value_str().unwrap());
                        std::fs::write(&floor_file, line).unwrap();
                    }
                }
            }
        })
    };
    ready.await.expect("the floor watch was created");
    let (warmup, updates) = (20, 200);
    let mut reconfig_lat = Vec::new();
    let mut floor_lat = Vec::new();
    for i in 0..warmup + updates {
        let key = format!("/a/k{}", i % 10);
        let value = format!("u{i}");
        tree.insert(key.clone(), value.clone());
        let expected = render(&tree);
        let floor_expected = format!("{key}={value}");
        client.put(key, value, None).await.unwrap();
        let put_done = Instant::now();
        let (mut at_reconfig, mut at_floor) = (None, None);
        watch
            .wait_until(LIMIT, |_| {
                if at_reconfig.is_none() && read(&target) == expected {
                    at_reconfig = Some(Instant::now());
                }
                if at_floor.is_none() && read(&floor_file) == floor_expected {
                    at_floor = Some(Instant::now());
                }
                at_reconfig.is_some() && at_floor.is_some()
            })
            .unwrap_or_else(|| panic!("update {i} never arrived:\n{}", daemon.log()));
        if i >= warmup {
            reconfig_lat.push(at_reconfig.unwrap() - put_done);
            floor_lat.push(at_floor.unwrap() - put_done);
        }
    }
    floor.abort();
    assert!(daemon.alive());
    reconfig_lat.sort();
    floor_lat.sort();
    let row = |s: &[Duration]| {
        json!({
            "p50_ms": ms(quantile(s, 0.5)), "p90_ms": ms(quantile(s, 0.9)),
            "p99_ms": ms(quantile(s, 0.99)), "max_ms": ms(*s.last().unwrap()),
        })
    };
    json!({ "updates": updates, "reconfig": row(&reconfig_lat), "floor": row(&floor_lat) })
}

/// B: 5,000 puts to 500 keys of one tree, paced over about 17 s (a put every 3.4 ms, several
/// in flight); time from the last put to the correct final file, renders, reloads (at
/// the default reload interval, 1 s) and the daemon's own CPU (the reload processes'
/// apart).
pub async fn burst(bin: &str) -> Value {
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let mut client = etcd.client().await;
    let tree: BTreeMap<String, String> = (0..500)
        .map(|i| (format!("/b/k{i:03}"), "0".to_string()))
        .collect();
    load(&mut client, &tree).await;
    let reloads = dir.path().join("reloads");
    let extra = format!(
        r#","reloadcmd":"echo $(date +%s%N) >> {}""#,
        reloads.display()
    );
    let cfg = config(dir.path(), &[entry(&out, "b", "/b", &extra)]);
    let target = out.join("b.conf");
    let watch = DirWatch::new(&out);
    let daemon = start_daemon(bin, &cfg, &etcd, dir.path());
    let expected = render(&tree);
    watch
        .wait_until(LIMIT, |_| read(&target) == expected)
        .expect("initial render");
    watch
        .wait_until(LIMIT, |_| read(&reloads).lines().count() == 1)
        .expect("initial reload");
    let pid = daemon.pid().as_raw() as u32;
    let (cpu_before, writes_before) = (cpu_seconds(pid), count_lines(&daemon.log(), "updated"));

    let puts = 5000;
    let burst = put_burst(&client, puts).await;
    let last_put = Instant::now();
    let expected = render(&tree_in_etcd(&mut client, "/b").await);
    let done = watch
        .wait_until(LIMIT, |_| read(&target) == expected)
        .unwrap_or_else(|| panic!("burst never converged:\n{}", daemon.log()));
    let convergence = done - last_put;
    // Let the reload of the last render (at most one interval away) finish.
    watch.wait_until(Duration::from_secs(2), |_| false);
    let cpu = cpu_seconds(pid) - cpu_before;
    let renders = count_lines(&daemon.log(), "updated") - writes_before;
    let reload_count = read(&reloads).lines().count() - 1;
    let interval = Duration::from_secs(1);
    let allowed = (burst.as_secs_f64() / interval.as_secs_f64()).ceil() as usize + 1;
    // What the same number of durable replacements of a file this size cost by themselves.
    let floor_dir = dir.path().join("floor");
    std::fs::create_dir(&floor_dir).unwrap();
    let final_text = read(&target);
    let every = burst / renders.max(1) as u32;
    let (floor_cpu, paced_cpu) = tokio::task::spawn_blocking(move || {
        let bytes = final_text.as_bytes();
        (
            durable_writes_cpu(&floor_dir, bytes, renders),
            durable_writes_cpu_paced(&floor_dir, bytes, renders, every),
        )
    })
    .await
    .unwrap();
    // The same paced writes again, while etcd takes the same burst of puts (and syncs its
    // log for each) with reconfig stopped: the file work alone in the conditions it had.
    drop(daemon);
    let loaded_dir = dir.path().join("floor-loaded");
    std::fs::create_dir(&loaded_dir).unwrap();
    let text = read(&target);
    let loaded = tokio::task::spawn_blocking(move || {
        durable_writes_cpu_paced(&loaded_dir, text.as_bytes(), renders, every)
    });
    put_burst(&client, puts).await;
    let loaded_cpu = loaded.await.unwrap();
    // Once more, each write now set off by a watch response received the way the daemon
    // receives one (etcd-client, on a one-thread runtime): the file work with the least a
    // daemon must add to it, nothing decoded into a tree or rendered.
    let fed_dir = dir.path().join("floor-fed");
    std::fs::create_dir(&fed_dir).unwrap();
    let fed = FedWrites::start(&etcd.endpoint, "/b/", fed_dir, read(&target).into_bytes());
    put_burst(&client, puts).await;
    let last = client.get("/b/k000", None).await.unwrap();
    let (fed_cpu, fed_writes) = fed.finish(last.header().unwrap().revision()).await;
    // Its responses carry one put or a few: its CPU for as many writes as the daemon made.
    let fed_cpu = fed_cpu * renders as f64 / fed_writes.max(1) as f64;
    json!({
        "puts": puts, "keys": 500, "burst_s": burst.as_secs_f64(),
        "convergence_ms": ms(convergence), "renders": renders, "reloads": reload_count,
        "reloads_allowed": allowed, "cpu_s": cpu, "floor_file_writes_cpu_s": floor_cpu,
        "floor_paced_file_writes_cpu_s": paced_cpu,
        "floor_loaded_file_writes_cpu_s": loaded_cpu,
        "floor_fed_file_writes_cpu_s": fed_cpu, "floor_fed_writes": fed_writes,
    })
}

/// B's burst: `puts` puts to `/b/k000`…`/b/k499` in turn, one every 3.4 ms, several in
/// flight; how long it took.
async fn put_burst(client: &etcd_client::Client, puts: usize) -> Duration {
    let mut tick = tokio::time::interval(Duration::from_micros(3400));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut in_flight = tokio::task::JoinSet::new();
    let started = Instant::now();
    for i in 0..puts {
        tick.tick().await;
        let mut c = client.clone();
        in_flight.spawn(async move {
            c.put(format!("/b/k{:03}", i % 500), format!("v{i}"), None)
                .await
                .unwrap()
        });
        while in_flight.try_join_next().is_some() {}
    }
    while in_flight.join_next().await.is_some() {}
    started.elapsed()
}

/// C: 20,000 keys of ~50 bytes under one recursive entry; `--onetime` wall time and
/// peak RSS (best of three runs, each writing the file anew).
pub async fn cold(bin: &str) -> Value {
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let mut client = etcd.client().await;
    let tree: BTreeMap<String, String> = (0..20_000)
        .map(|i| (format!("/c/k{i:05}"), format!("{i:05}-{}", "x".repeat(44))))
        .collect();
    load(&mut client, &tree).await;
    let cfg = config(dir.path(), &[entry(&out, "c", "/c", "")]);
    let target = out.join("c.conf");
    let expected = render(&tree);
    let mut runs = Vec::new();
    for _ in 0..3 {
        let _ = std::fs::remove_file(&target);
        let mut cmd = std::process::Command::new(bin);
        cmd.args([
            "--onetime",
            "--cfgdir",
            cfg.to_str().unwrap(),
            "--endpoints",
            &etcd.endpoint,
        ]);
        cmd.stderr(std::process::Stdio::null());
        let (status, wall, rss) = run_measured(&mut cmd);
        assert!(status.success(), "--onetime failed");
        assert!(read(&target) == expected, "wrong render of the cold tree");
        runs.push((wall, rss));
    }
    runs.sort_by_key(|r| r.0);
    let peak = runs.iter().map(|r| r.1).fold(0.0, f64::max);
    // etcd's own part: the whole tree in one bare range request from a connected client.
    let mut reads = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let got = client
            .get("/c/", Some(GetOptions::new().with_prefix()))
            .await
            .unwrap();
        reads.push(started.elapsed());
        assert_eq!(got.kvs().len(), tree.len());
    }
    reads.sort();
    json!({
        "keys": tree.len(), "bytes": expected.len(),
        "wall_ms_best": ms(runs[0].0), "wall_ms_median": ms(runs[1].0), "peak_rss_mib": peak,
        "floor_one_range_ms_best": ms(reads[0]),
    })
}

/// D: 500 entries each on its own 5-key tree and with its own template file (as real
/// configurations have: one template per target): time until all files are correct, idle
/// memory and CPU, 50 updates to random entries, and the load one daemon puts on etcd.
pub async fn many(bin: &str) -> Value {
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let mut client = etcd.client().await;
    let n = 500;
    let mut trees: Vec<BTreeMap<String, String>> = (0..n)
        .map(|e| {
            (0..5)
                .map(|k| (format!("/d/e{e:03}/k{k}"), format!("{e}-{k}")))
                .collect()
        })
        .collect();
    let all: BTreeMap<String, String> = trees
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    load(&mut client, &all).await;
    let names: Vec<String> = (0..n).map(|e| format!("e{e:03}")).collect();
    let templates: Vec<(String, String)> = names.iter().map(|name| own_template(name)).collect();
    let entries: Vec<(String, String)> = names
        .iter()
        .zip(&templates)
        .map(|(name, (source, _))| entry_with(&out, name, &format!("/d/{name}"), source, ""))
        .collect();
    let cfg = config_with(dir.path(), &entries, &templates);
    let target = |e: usize| out.join(format!("e{e:03}.conf"));
    let endpoint = etcd.endpoint.clone();
    let metrics_before = etcd_metrics(&endpoint);
    let watch = DirWatch::new(&out);

    let started = Instant::now();
    let daemon = start_daemon(bin, &cfg, &etcd, dir.path());
    let mut remaining: BTreeSet<usize> = (0..n).collect();
    let check = |remaining: &mut BTreeSet<usize>,
                 changed: &[PathBuf],
                 trees: &[BTreeMap<String, String>]| {
        let candidates: Vec<usize> = if changed.is_empty() {
            remaining.iter().copied().collect()
        } else {
            changed
                .iter()
                .filter_map(|p| {
                    p.file_name()?
                        .to_str()?
                        .strip_prefix('e')?
                        .strip_suffix(".conf")?
                        .parse()
                        .ok()
                })
                .collect()
        };
        for e in candidates {
            if remaining.contains(&e) && read(&target(e)) == render(&trees[e]) {
                remaining.remove(&e);
            }
        }
        remaining.is_empty()
    };
    let all_done = watch
        .wait_until(LIMIT, |changed| check(&mut remaining, changed, &trees))
        .unwrap_or_else(|| {
            panic!(
                "{} entries never rendered:\n{}",
                remaining.len(),
                daemon.log()
            )
        });
    let all_correct = all_done - started;

    let pid = daemon.pid().as_raw() as u32;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle_rss = rss_mib(pid);
    let (idle_anon, idle_file) = rss_split_mib(pid);
    let cpu_before = cpu_seconds(pid);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle_cpu = cpu_seconds(pid) - cpu_before;
    let port: u16 = endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let connections = tcp_connections_to(pid, port);

    let mut rng = StdRng::seed_from_u64(9);
    let mut chosen = BTreeSet::new();
    while chosen.len() < 50 {
        chosen.insert(rng.random_range(0..n));
    }
    // 50 updates one after the other, each timed from its put to its target being right.
    let mut latencies = Vec::new();
    for &e in &chosen {
        trees[e].insert(format!("/d/e{e:03}/k0"), "updated".to_string());
        client
            .put(format!("/d/e{e:03}/k0"), "updated", None)
            .await
            .unwrap();
        let put_done = Instant::now();
        let expected = render(&trees[e]);
        let arrived = watch
            .wait_until(LIMIT, |_| read(&target(e)) == expected)
            .unwrap_or_else(|| panic!("update of e{e:03} never arrived:\n{}", daemon.log()));
        latencies.push(arrived - put_done);
    }
    latencies.sort();
    let metrics_after = etcd_metrics(&endpoint);
    let delta = |name: &str| metric(&metrics_after, name) - metric(&metrics_before, name);
    drop(daemon);
    // The floor of start-up: the same 500 files written durably one after the other, in a
    // directory of their own, with nothing read or rendered.
    let floor_dir = dir.path().join("floor");
    std::fs::create_dir(&floor_dir).unwrap();
    let files: Vec<(String, String)> = (0..n)
        .map(|e| (format!("e{e:03}.conf"), render(&trees[e])))
        .collect();
    let floor_all = tokio::task::spawn_blocking(move || durable_files_wall(&floor_dir, &files))
        .await
        .unwrap();
    json!({
        "entries": n,
        "all_correct_ms": ms(all_correct),
        "floor_files_written_ms": ms(floor_all),
        "idle_rss_mib": idle_rss,
        "idle_rss_anon_mib": idle_anon,
        "idle_rss_file_mib": idle_file,
        "idle_cpu_s_10s": idle_cpu,
        "update_p50_ms": ms(quantile(&latencies, 0.5)),
        "update_p99_ms": ms(quantile(&latencies, 0.99)),
        "etcd": {
            "tcp_connections": connections,
            "watch_streams": metric(&metrics_after, "etcd_debugging_mvcc_watch_stream_total"),
            "watchers": metric(&metrics_after, "etcd_debugging_mvcc_watcher_total"),
            "range_rpcs": delta("grpc_server_started_total{grpc_method=\"Range\""),
            "txn_rpcs": delta("grpc_server_started_total{grpc_method=\"Txn\""),
            "watch_rpcs": delta("grpc_server_started_total{grpc_method=\"Watch\""),
        },
    })
}

/// E: `reconfig dispense` mirroring a prefix of 10,000 keys (~50-byte values): time from
/// start to every file correct, then 50 sequential single-key puts, each timed from the
/// put's response to the file under the target resolving to the new value; at the end
/// every file is checked byte for byte and no other name is in the target.
pub async fn dispense(bin: &str) -> Value {
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    std::fs::create_dir_all(&target).unwrap();
    let mut client = etcd.client().await;
    let n = 10_000;
    let name = |i: usize| format!("k{i:05}");
    let mut files: BTreeMap<String, String> = (0..n)
        .map(|i| (name(i), format!("{i:05}-{}", "x".repeat(44))))
        .collect();
    let keys = files.iter().map(|(f, v)| (format!("/e/{f}"), v.clone()));
    load(&mut client, &keys.collect()).await;
    let watch = DirWatch::new(&target);
    let started = Instant::now();
    let daemon = Daemon::spawn(
        binary(bin),
        [
            "dispense",
            "--prefix",
            "/e",
            "--target",
            target.to_str().unwrap(),
            "--endpoints",
            &etcd.endpoint,
        ],
        &dir.path().join("dispense.log"),
    );
    // Stable names appear one by one; a new `..data` may change any of them.
    let mut remaining: BTreeSet<String> = files.keys().cloned().collect();
    let first = watch
        .wait_until(LIMIT, |changed| {
            let all = changed.is_empty() || changed.iter().any(|p| p.ends_with("..data"));
            let candidates: Vec<String> = if all {
                remaining.iter().cloned().collect()
            } else {
                changed
                    .iter()
                    .filter_map(|p| Some(p.file_name()?.to_str()?.to_string()))
                    .collect()
            };
            for f in candidates {
                if files.get(&f).is_some_and(|v| read(&target.join(&f)) == *v) {
                    remaining.remove(&f);
                }
            }
            remaining.is_empty()
        })
        .unwrap_or_else(|| {
            panic!(
                "{} files never published:\n{}",
                remaining.len(),
                daemon.log()
            )
        });
    let first_publish = first - started;

    let pid = daemon.pid().as_raw() as u32;
    let cpu_before = cpu_seconds(pid);
    let (warmup, updates) = (5, 50);
    let mut latencies = Vec::new();
    for i in 0..warmup + updates {
        let f = name(i * 197 % n);
        let value = format!("{f}-update-{i:03}-{}", "y".repeat(30));
        files.insert(f.clone(), value.clone());
        let path = target.join(&f);
        client
            .put(format!("/e/{f}"), value.clone(), None)
            .await
            .unwrap();
        let put_done = Instant::now();
        let published = watch
            .wait_until(LIMIT, |_| read(&path) == value)
            .unwrap_or_else(|| panic!("update {i} never published:\n{}", daemon.log()));
        if i >= warmup {
            latencies.push(published - put_done);
        }
    }
    let cpu = cpu_seconds(pid) - cpu_before;
    let visible: BTreeSet<String> = std::fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| !f.starts_with(".."))
        .collect();
    assert!(
        visible.iter().eq(files.keys()),
        "the target's names are not the keys'"
    );
    let wrong = files
        .iter()
        .filter(|(f, v)| read(&target.join(f)) != **v)
        .count();
    assert_eq!(wrong, 0, "files with the wrong content at the end");
    latencies.sort();
    json!({
        "keys": n,
        "first_publish_ms": ms(first_publish),
        "updates": updates,
        "p50_ms": ms(quantile(&latencies, 0.5)),
        "p99_ms": ms(quantile(&latencies, 0.99)),
        "max_ms": ms(*latencies.last().unwrap()),
        "cpu_s_per_update": cpu / (warmup + updates) as f64,
    })
}
