//! One fleet run, direct or behind a grpc-proxy, on a fresh 3-member etcd: etcd's put
//! latency without daemons, start-up, idle, put → all shared targets right, etcd's put
//! latency with the fleet watching and with it busy, and a total outage.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, Txn, TxnOp};
use serde_json::{json, Value};

use crate::cluster::{
    client_of, latency_json, member_urls, port, put_latency, put_samples, too_many_pings,
    wait_healthy, Counters, Proxy,
};
use crate::common::{EtcdServer, EtcdVersion};
use crate::fixture::{load, render, tree_in_etcd};
use crate::measure::{durable_writes_cpu, ms};
use crate::nodes::{own_key, shared_key, Converged, Fleet, Trees, SHARED};
use crate::Options;

/// Longest wait for one put to reach every shared target.
const PUT_LIMIT: Duration = Duration::from_secs(5);
/// Consecutive puts that reach no daemon at all before the phase gives up.
const SILENT_PUTS: usize = 3;
/// Quiet time after start-up before anything is measured.
const SETTLE: Duration = Duration::from_secs(5);
/// Shortest busy phase.
const BUSY: Duration = Duration::from_secs(10);
/// etcd's put latency samples while the fleet is busy (each put then takes tens of
/// milliseconds, and the busy phase lasts until they are done).
const BUSY_PROBE_PUTS: usize = 200;
/// How long the RPCs etcd receives after an outage are counted.
const AFTER_OUTAGE: Duration = Duration::from_secs(10);
/// Longest wait for the fleet to converge after the outage.
const OUTAGE_LIMIT: Duration = Duration::from_secs(30);

/// Runs the phases on `n` daemons talking to the members directly or to one proxy.
pub async fn run(o: &Options, proxied: bool) -> Value {
    let mode = if proxied { "proxied" } else { "direct" };
    let say = |what: &str| eprintln!("[{mode}] {what}");
    let dir = tempfile::tempdir().unwrap();
    // The outage's changes go in as one transaction of N+1 puts.
    let max_txn_ops = (o.n + 16).max(128).to_string();
    let mut etcd = EtcdVersion::V34
        .cluster_args(3, &["--max-txn-ops", &max_txn_ops])
        .await;
    let urls = member_urls(&etcd);
    let mut client = etcd.client().await;
    let mut trees = Trees::initial(o.n);
    load(&mut client, &trees.all_pairs()).await;
    let proxy = match proxied {
        true => Some(Proxy::start(&etcd, dir.path()).await),
        false => None,
    };
    let (endpoints, ports) = match &proxy {
        Some(p) => (p.endpoint.clone(), vec![port(&p.endpoint)]),
        None => (
            etcd.endpoint.clone(),
            urls.iter().map(|u| port(u)).collect(),
        ),
    };

    say("etcd put latency, no daemons");
    let put_idle_before = put_samples(&etcd, o.probe_puts).await;

    say(&format!("starting {} daemons", o.n));
    let mut fleet = Fleet::prepare(dir.path(), o.n);
    let before = Counters::scrape(&urls).await;
    let started = Instant::now();
    fleet.start(&o.bin, &endpoints);
    let spawned = started.elapsed();
    let limit = Duration::from_secs(30) + Duration::from_millis(150) * o.n as u32;
    let up = fleet.wait_right(&fleet.expect_all(&trees), limit);
    let startup_cpu = fleet.cpu();
    let startup_daemons = per_daemon(&fleet, &up, started);
    tokio::time::sleep(SETTLE).await;
    let settled = Counters::scrape(&urls).await;
    let startup = json!({
        "spawn_ms": ms(spawned),
        "all_right_ms": up.all.map(|t| ms(t - started)),
        "files_right": 2 * o.n - up.missing,
        "files": 2 * o.n,
        "per_daemon": latency_json(startup_daemons),
        "cpu_s": startup_cpu,
        "rpcs": settled.since(&before),
        "watch_streams": settled.watch_streams,
        "watchers": settled.watchers,
    });

    say(&format!("idle for {} s", o.idle.as_secs()));
    let cpu = fleet.cpu();
    tokio::time::sleep(o.idle).await;
    let idle_cpu = fleet.cpu() - cpu;
    let after_idle = Counters::scrape(&urls).await;
    let memory = fleet.memory();
    let connections = fleet.connections(&ports);
    let idle = json!({
        "seconds": o.idle.as_secs_f64(),
        "cpu_s": idle_cpu,
        "rpcs": after_idle.since(&settled),
        "watch_streams": after_idle.watch_streams,
        "watchers": after_idle.watchers,
        "pss_mib": spread(memory.iter().map(|m| m.pss).collect()),
        "private_mib": spread(memory.iter().map(|m| m.private).collect()),
        "rss_mib": spread(memory.iter().map(|m| m.rss).collect()),
        "tcp_connections": spread(connections.iter().map(|&c| c as f64).collect()),
    });

    say("etcd put latency, fleet watching");
    let put_watching = put_latency(&etcd, o.probe_puts).await;

    say(&format!("{} shared puts", o.puts));
    let shared_puts = shared_puts(o, &fleet, &mut client, &mut trees, &urls).await;

    say(&format!("busy: {} shared writes/s", o.rate));
    let (busy, put_busy) = busy(o, &etcd, &fleet, &mut trees, &urls).await;

    let logs_before_outage = fleet.log_survey();
    say(&format!("total outage of {} s", o.outage.as_secs_f64()));
    let outage = outage(o, &mut etcd, &fleet, &mut trees, &urls).await;

    let alive = fleet.alive();
    let logs = fleet.log_survey();
    let closed_for_pings = json!({
        "etcd": too_many_pings(&etcd.log()),
        "proxy": proxy.as_ref().map(|p| too_many_pings(&p.log())),
    });
    // etcd with no daemons once more, now that the fleet is gone: the idle figure pools
    // both, so that the disk's changes over the run weigh on both sides of the ratio.
    say("etcd put latency, no daemons again");
    fleet.stop().await;
    tokio::time::sleep(SETTLE).await;
    let put_idle_after = put_samples(&etcd, o.probe_puts).await;
    let mut put_idle = latency_json([&put_idle_before[..], &put_idle_after[..]].concat());
    put_idle["before_fleet"] = latency_json(put_idle_before);
    put_idle["after_fleet"] = latency_json(put_idle_after);
    if o.keep {
        let kept = dir.keep();
        say(&format!("logs kept in {}", kept.display()));
    }
    json!({
        "mode": mode,
        "n": o.n,
        "endpoints_per_daemon": if proxied { 1 } else { urls.len() },
        "startup": startup,
        "idle": idle,
        "etcd_put": { "idle": put_idle, "watching": put_watching, "busy": put_busy },
        "shared_puts": shared_puts,
        "busy": busy,
        "outage": outage,
        "daemons_alive_at_end": alive,
        "logs_before_outage": logs_before_outage,
        "logs": logs,
        "too_many_pings_closures": closed_for_pings,
    })
}

/// Median and max.
fn spread(mut values: Vec<f64>) -> Value {
    values.sort_by(f64::total_cmp);
    match values.last() {
        Some(&max) => json!({ "median": values[values.len() / 2], "max": max }),
        None => json!({ "median": null, "max": null }),
    }
}

/// For each daemon whose two targets both became right: how long after `since`.
fn per_daemon(fleet: &Fleet, c: &Converged, since: Instant) -> Vec<Duration> {
    (0..fleet.n)
        .filter_map(|i| {
            let shared = c.at.get(&fleet.shared_target(i))?;
            let own = c.at.get(&fleet.own_target(i))?;
            Some(shared.max(own).saturating_duration_since(since))
        })
        .collect()
}

/// Sequential puts to the shared tree, each timed from its response until every shared
/// target holds the new render.
async fn shared_puts(
    o: &Options,
    fleet: &Fleet,
    client: &mut Client,
    trees: &mut Trees,
    urls: &[String],
) -> Value {
    let before = Counters::scrape(urls).await;
    let cpu = fleet.cpu();
    let (mut all, mut each, mut timed_out, mut silent, mut done) = (vec![], vec![], 0, 0, 0);
    for p in 0..o.puts {
        let (key, value) = (shared_key(p), format!("p{p}"));
        trees.shared.insert(key.clone(), value.clone());
        client.put(key, value, None).await.expect("shared put");
        let put_done = Instant::now();
        let c = fleet.wait_right(&fleet.expect_shared(trees), PUT_LIMIT);
        done += 1;
        each.extend(c.at.values().map(|t| t.saturating_duration_since(put_done)));
        match c.all {
            Some(t) => {
                all.push(t - put_done);
                silent = 0;
            }
            None => {
                timed_out += 1;
                silent = if c.at.is_empty() { silent + 1 } else { 0 };
            }
        }
        if silent >= SILENT_PUTS {
            eprintln!("  {silent} puts in a row reached no daemon: giving up on the rest");
            break;
        }
    }
    let after = Counters::scrape(urls).await;
    let cpu = fleet.cpu() - cpu;
    // What the file work alone costs: one durable replacement per daemon and put.
    let (dir, text, writes) = (fleet.scratch("floor"), render(&trees.shared), o.n * done);
    let floor =
        tokio::task::spawn_blocking(move || durable_writes_cpu(&dir, text.as_bytes(), writes))
            .await
            .expect("floor writes");
    let per_put = |cpu: f64| 1000.0 * cpu / done.max(1) as f64;
    json!({
        "puts": done,
        "timed_out": timed_out,
        "limit_ms": ms(PUT_LIMIT),
        "all_right": latency_json(all),
        "per_target": latency_json(each),
        "cpu_s": cpu,
        "cpu_ms_per_put": per_put(cpu),
        "floor_file_writes_cpu_ms_per_put": per_put(floor),
        "cpu_ms_per_render": per_put(cpu) / o.n as f64,
        "floor_cpu_ms_per_render": per_put(floor) / o.n as f64,
        "cpu_to_floor": cpu / floor,
        "rpcs": after.since(&before),
    })
}

/// Shared writes at `o.rate` a second by a client of their own for at least [`BUSY`] —
/// each put sent on its tick without waiting for the one before, so that etcd's latency
/// does not lower the rate — with etcd's put latency measured meanwhile; then the wait for
/// the render of the tree etcd ends up with.
async fn busy(
    o: &Options,
    etcd: &EtcdServer,
    fleet: &Fleet,
    trees: &mut Trees,
    urls: &[String],
) -> (Value, Value) {
    let before = Counters::scrape(urls).await;
    let cpu = fleet.cpu();
    let stop = Arc::new(AtomicBool::new(false));
    let mut client = etcd.client().await;
    let writer = {
        let (client, stop) = (client.clone(), stop.clone());
        let period = Duration::from_secs_f64(1.0 / o.rate);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            let mut puts = tokio::task::JoinSet::new();
            let (mut writes, mut last) = (0, Instant::now());
            while !stop.load(Ordering::Relaxed) {
                ticks.tick().await;
                let (key, value) = (shared_key(writes), format!("b{writes}"));
                let mut client = client.clone();
                puts.spawn(async move {
                    client.put(key, value, None).await.expect("busy put");
                    Instant::now()
                });
                writes += 1;
                while let Some(done) = puts.try_join_next() {
                    last = last.max(done.unwrap());
                }
            }
            while let Some(done) = puts.join_next().await {
                last = last.max(done.unwrap());
            }
            (writes, last)
        })
    };
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let put_busy = put_latency(etcd, BUSY_PROBE_PUTS.min(o.probe_puts)).await;
    tokio::time::sleep(BUSY.saturating_sub(started.elapsed())).await;
    stop.store(true, Ordering::Relaxed);
    let (writes, last) = writer.await.unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let cpu = fleet.cpu() - cpu;
    trees.shared = tree_in_etcd(&mut client, SHARED).await;
    let c = fleet.wait_right(&fleet.expect_shared(trees), Duration::from_secs(10));
    let after = Counters::scrape(urls).await;
    let mut rpcs = after.since(&before);
    // Not the daemons': the benchmark's read of the final tree.
    rpcs["range"] = json!(rpcs["range"].as_f64().unwrap_or(0.0) - 1.0);
    rpcs["all"] = json!(rpcs["all"].as_f64().unwrap_or(0.0) - 1.0);
    let busy = json!({
        "writes": writes,
        "seconds": seconds,
        "writes_per_s": writes as f64 / seconds,
        "cpu_s": cpu,
        "cpu_cores": cpu / seconds,
        "converged_after_last_write_ms": c.all.map(|t| ms(t.saturating_duration_since(last))),
        "shared_targets_wrong": c.missing,
        "rpcs": rpcs,
    });
    (busy, put_busy)
}

/// Kills every member, restarts them after `o.outage`, and as soon as all are healthy
/// changes the shared tree and every node's tree in one transaction; times every daemon
/// from "healthy" until both its targets are right, and counts the RPCs etcd received from
/// its restart (its counters start at zero) until [`AFTER_OUTAGE`] after it was healthy.
async fn outage(
    o: &Options,
    etcd: &mut EtcdServer,
    fleet: &Fleet,
    trees: &mut Trees,
    urls: &[String],
) -> Value {
    let mut next = trees.clone();
    next.shared
        .insert(shared_key(0), "after-outage".to_string());
    for (i, tree) in next.own.iter_mut().enumerate() {
        tree.insert(own_key(i), format!("back{i:03}"));
    }
    let expected = fleet.expect_all(&next);
    for i in 0..etcd.size() {
        etcd.kill(i);
    }
    tokio::time::sleep(o.outage).await;
    for i in 0..etcd.size() {
        etcd.restart(i);
    }
    let restarted = Instant::now();
    let healthy = wait_healthy(urls, Duration::from_secs(60))
        .await
        .expect("the cluster never became healthy after the outage");
    let window = {
        let urls = urls.to_vec();
        let end = tokio::time::Instant::from_std(healthy + AFTER_OUTAGE);
        tokio::spawn(async move {
            tokio::time::sleep_until(end).await;
            Counters::scrape(&urls).await
        })
    };
    let mut ops = vec![TxnOp::put(shared_key(0), "after-outage", None)];
    ops.extend((0..o.n).map(|i| TxnOp::put(own_key(i), format!("back{i:03}"), None)));
    let mut attempts = 0;
    loop {
        attempts += 1;
        if let Some(mut c) = client_of(urls).await {
            match c.txn(Txn::new().and_then(ops.clone())).await {
                Ok(_) => break,
                Err(e) => eprintln!("  the changes after the outage failed ({e}); again"),
            }
        }
        assert!(attempts < 100, "could not write after the outage");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let written = healthy.elapsed();
    let c = fleet.wait_right(&expected, OUTAGE_LIMIT);
    *trees = next;
    let daemons = per_daemon(fleet, &c, healthy);
    let converged = daemons.len();
    let counters = window.await.unwrap();
    let reads = counters.range + counters.txn - attempts as f64;
    json!({
        "outage_s": o.outage.as_secs_f64(),
        "restart_to_healthy_ms": ms(healthy - restarted),
        "changes_written_ms": ms(written),
        "daemons_converged": converged,
        "daemons": o.n,
        "all_converged_ms": c.all.map(|t| ms(t.saturating_duration_since(healthy))),
        "per_daemon": latency_json(daemons),
        "limit_ms": ms(OUTAGE_LIMIT),
        "rpcs_10s": {
            "range": counters.range,
            "txn": counters.txn - attempts as f64,
            "watch": counters.watch,
            "all": counters.all - attempts as f64,
            "note": "from the members' restart until 10 s after healthy; the benchmark's own transaction(s) taken off; behind a proxy, Range includes the proxy's count-only permission check for each watch created",
        },
        "reads_per_entry": reads / (2 * o.n) as f64,
        "watch_streams_10s": counters.watch_streams,
        "watchers_10s": counters.watchers,
    })
}
