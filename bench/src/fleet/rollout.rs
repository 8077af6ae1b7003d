//! The rollout scenario: N daemons on one 3-member etcd, each with one entry whose
//! `rollout` object puts them all in one group (`max_parallel`, `canary`, a `bake`), and a
//! `reloadcmd` and `healthcmd` that log when they start and end. One put; then, from the
//! daemons' own lines (the go before the swap, "healthy and baked" before the done marker)
//! and the commands' timestamps: the most nodes between swap and baked at once, the
//! canaries going first, every node applied, the whole rollout against the ideal of
//! ⌈(N − canary) / max_parallel⌉ + 1 rounds of reload + health + bake, and the requests
//! etcd received per node (its own gRPC counters, summed over the members).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::cluster::member_urls;
use crate::common::{binary, cfgdir, Daemon, EtcdVersion};
use crate::fixture::read;
use crate::measure::{etcd_metrics, metric, ms};
use crate::Options;

/// The key every node renders.
const KEY: &str = "/fleet/rollout/conf";
/// The gRPC methods counted.
const METHODS: [&str; 8] = [
    "Range",
    "Txn",
    "Put",
    "DeleteRange",
    "Watch",
    "LeaseGrant",
    "LeaseRevoke",
    "LeaseKeepAlive",
];
/// Longest wait for the rollout.
const LIMIT: Duration = Duration::from_secs(900);
/// How long the quiet fleet's own requests are counted before the put (each daemon's watch
/// check of its quiet stream), to take them off the rollout's.
const QUIET: Duration = Duration::from_secs(20);

/// Calls started at etcd, by method, and keep-alive messages, summed over the members.
async fn rpcs(urls: &[String]) -> BTreeMap<String, f64> {
    let urls = urls.to_vec();
    let pages = tokio::task::spawn_blocking(move || {
        urls.iter().map(|u| etcd_metrics(u)).collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let sum = |prefix: &str| pages.iter().map(|p| metric(p, prefix)).sum::<f64>();
    let mut counts: BTreeMap<String, f64> = METHODS
        .iter()
        .map(|m| {
            let started = format!("grpc_server_started_total{{grpc_method=\"{m}\"");
            (m.to_string(), sum(&started))
        })
        .collect();
    counts.insert("all".into(), sum("grpc_server_started_total"));
    counts.insert(
        "keepalive_messages".into(),
        sum("grpc_server_msg_received_total{grpc_method=\"LeaseKeepAlive\""),
    );
    counts
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// An RFC 3339 time in nanoseconds since the epoch.
fn nanos(timestamp: &str) -> u128 {
    humantime::parse_rfc3339(timestamp)
        .map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_nanos())
        .unwrap_or(0)
}

/// One node's turn from its log: the go (before the swap) and "healthy and baked".
struct Turn {
    start: u128,
    end: Option<u128>,
}

fn turn_of(log: &str) -> Option<Turn> {
    let mut turn: Option<Turn> = None;
    for line in log.lines() {
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let message = event["fields"]["message"].as_str().unwrap_or_default();
        let at = nanos(event["timestamp"].as_str().unwrap_or_default());
        if message.contains("this node's turn") {
            turn = Some(Turn {
                start: at,
                end: None,
            });
        } else if message.contains("reloaded, healthy and baked") {
            if let Some(t) = &mut turn {
                t.end = Some(at);
            }
        }
    }
    turn
}

/// Runs the scenario.
pub async fn run(o: &Options) -> Value {
    let say = |what: &str| eprintln!("[rollout] {what}");
    let dir = tempfile::tempdir().unwrap();
    let etcd = EtcdVersion::V34.cluster(3).await;
    let urls = member_urls(&etcd);
    let mut client = etcd.client().await;
    client.put(KEY, "v0", None).await.unwrap();
    let events = dir.path().join("events");
    let bake = format!("{}ms", o.bake.as_millis());
    let timed = |node: &str, what: &str| {
        format!(
            "s=$(date +%s%N); echo \"$s $(date +%s%N) {node} {what}\" >> '{}'",
            events.display()
        )
    };
    let mut logs: Vec<PathBuf> = Vec::new();
    let mut targets: Vec<PathBuf> = Vec::new();
    let mut daemons: Vec<Daemon> = Vec::new();
    say(&format!("starting {} daemons", o.n));
    for i in 0..o.n {
        let node = format!("node{i:03}");
        let root = dir.path().join(&node);
        let target = root.join("rollout.conf");
        let entry = json!({
            "id": "rollout",
            "key": KEY,
            "source": "t.tmpl",
            "target": target,
            "reloadcmd": timed(&node, "reload"),
            "rollout": {
                "group": "fleet",
                "max_parallel": o.max_parallel,
                "canary": o.canary,
                "healthcmd": timed(&node, "health"),
                "bake": bake,
            },
        });
        let cfg = cfgdir(
            &root,
            &[("rollout", entry.to_string())],
            &[("t.tmpl", "value=<%= data[watched] %>\n")],
        );
        std::fs::write(&target, "value=v0\n").unwrap();
        let log = root.join("log");
        let state = root.join("state");
        let args = [
            "--cfgdir",
            cfg.to_str().unwrap(),
            "--endpoints",
            &etcd.endpoint,
            "--node-name",
            &node,
            "--state-dir",
            state.to_str().unwrap(),
            "--log-format",
            "json",
        ];
        daemons.push(Daemon::spawn(binary(&o.bin), args, &log));
        logs.push(log);
        targets.push(target);
    }
    let watching = wait(|| logs.iter().all(|l| read(l).contains("watching")), LIMIT).await;
    assert!(watching, "not every daemon started");
    tokio::time::sleep(Duration::from_secs(2)).await;
    say(&format!(
        "counting the quiet fleet's requests for {} s",
        QUIET.as_secs()
    ));
    let quiet_from = (rpcs(&urls).await, Instant::now());
    tokio::time::sleep(QUIET).await;
    let before = rpcs(&urls).await;
    let quiet = Quiet {
        requests: diff(&quiet_from.0, &before),
        seconds: quiet_from.1.elapsed().as_secs_f64(),
    };
    let counted = Instant::now();
    say("one put; waiting for every node to be done");
    let put_at = now_ns();
    client.put(KEY, "v1", None).await.unwrap();
    let started = Instant::now();
    let done = wait(
        || {
            logs.iter()
                .all(|l| read(l).contains("reloaded, healthy and baked"))
        },
        LIMIT,
    )
    .await;
    let waited = started.elapsed();
    // The last done markers go in right after their lines; keep-alives end with them.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rpcs(&urls).await;
    let counted = counted.elapsed().as_secs_f64();
    let applied = targets.iter().filter(|t| read(t) == "value=v1\n").count();
    let turns: Vec<Turn> = logs.iter().filter_map(|l| turn_of(&read(l))).collect();
    let requests = Requests {
        during: diff(&before, &after),
        seconds: counted,
        quiet,
    };
    let report = figures(o, &turns, &read(&events), put_at, &requests);
    drop(daemons);
    if o.keep {
        let kept = dir.keep();
        say(&format!("logs kept in {}", kept.display()));
    }
    let mut report = report;
    report["all_done"] = json!(done);
    report["waited_ms"] = json!(ms(waited));
    report["applied"] = json!(applied);
    report
}

/// What etcd received: during the rollout, and from the quiet fleet before it.
struct Requests {
    during: BTreeMap<String, f64>,
    seconds: f64,
    quiet: Quiet,
}

/// The quiet fleet's requests over `seconds`.
struct Quiet {
    requests: BTreeMap<String, f64>,
    seconds: f64,
}

impl Requests {
    /// The rollout's own requests of `what`: those counted during it, less what the quiet
    /// fleet sends in as long.
    fn own(&self, what: &str) -> f64 {
        let during = self.during.get(what).copied().unwrap_or(0.0);
        let quiet = self.quiet.requests.get(what).copied().unwrap_or(0.0);
        during - quiet * self.seconds / self.quiet.seconds
    }
}

/// `after - before`, by key.
fn diff(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .collect()
}

/// Polls `condition` every 100 ms (the logs of N daemons) until it holds or `limit` passes.
async fn wait(condition: impl Fn() -> bool, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while !condition() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    true
}

/// The figures of one rollout.
fn figures(o: &Options, turns: &[Turn], events: &str, put_at: u128, requests: &Requests) -> Value {
    let mut moments: Vec<(u128, i32)> = turns
        .iter()
        .flat_map(|t| [(t.start, 1), (t.end.unwrap_or(u128::MAX), -1)])
        .collect();
    moments.sort();
    let (mut now, mut most) = (0, 0);
    for (_, step) in moments {
        now += step;
        most = most.max(now);
    }
    let mut by_start: Vec<&Turn> = turns.iter().collect();
    by_start.sort_by_key(|t| t.start);
    let canary = o.canary.min(by_start.len());
    let canaries_done = by_start[..canary]
        .iter()
        .filter_map(|t| t.end)
        .max()
        .unwrap_or(0);
    let before_canaries = by_start[canary..]
        .iter()
        .filter(|t| t.start <= canaries_done)
        .count();
    let last = turns.iter().filter_map(|t| t.end).max().unwrap_or(put_at);
    let total = Duration::from_nanos(u64::try_from(last.saturating_sub(put_at)).unwrap_or(0));
    // The commands' own time: the median reload and health command, start to end.
    let mut took: BTreeMap<&str, Vec<u128>> = BTreeMap::new();
    for line in events.lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        if let [start, end, _, what] = parts[..] {
            if let (Ok(s), Ok(e)) = (start.parse::<u128>(), end.parse::<u128>()) {
                took.entry(what).or_default().push(e.saturating_sub(s));
            }
        }
    }
    let median = |what: &str| {
        let mut v = took.get(what).cloned().unwrap_or_default();
        v.sort();
        Duration::from_nanos(u64::try_from(v.get(v.len() / 2).copied().unwrap_or(0)).unwrap_or(0))
    };
    let (reload, health) = (median("reload"), median("health"));
    let rounds = (o.n.saturating_sub(o.canary)).div_ceil(o.max_parallel) + 1;
    let ideal = (reload + health + o.bake) * u32::try_from(rounds).unwrap_or(u32::MAX);
    // The benchmark's own put is one of them.
    let all = requests.own("all") - 1.0;
    let per_method: BTreeMap<&str, f64> = METHODS.iter().map(|m| (*m, requests.own(m))).collect();
    let raw: BTreeMap<&str, f64> = METHODS
        .iter()
        .map(|m| (*m, requests.during.get(*m).copied().unwrap_or(0.0)))
        .collect();
    json!({
        "n": o.n,
        "max_parallel": o.max_parallel,
        "canary": o.canary,
        "bake_ms": ms(o.bake),
        "turns_logged": turns.len(),
        "turns_ended": turns.iter().filter(|t| t.end.is_some()).count(),
        "most_between_swap_and_baked": most,
        "went_before_the_canaries_were_done": before_canaries,
        "total_ms": ms(total),
        "median_reload_ms": ms(reload),
        "median_health_ms": ms(health),
        "rounds": rounds,
        "ideal_ms": ms(ideal),
        "ratio_to_ideal": total.as_secs_f64() / ideal.as_secs_f64(),
        "etcd_requests": all,
        "etcd_requests_per_node": all / o.n as f64,
        "etcd_requests_by_method": per_method,
        "etcd_requests_counted_by_method": raw,
        "counted_s": requests.seconds,
        "quiet_fleet_requests_per_s": requests.quiet.requests.get("all").copied().unwrap_or(0.0)
            / requests.quiet.seconds,
        "requests_note": "the rollout's own: the calls etcd's members started while it ran, less the quiet fleet's (each daemon's check of its quiet watch stream, --watch-check) for as long, less the benchmark's put",
        "keepalive_messages_per_node": requests.own("keepalive_messages") / o.n as f64,
    })
}
