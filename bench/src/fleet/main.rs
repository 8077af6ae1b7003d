//! reconfig-fleet: N reconfig daemons — each with an entry on a tree they all share and one
//! on a tree of its own — on one 3-member etcd on loopback, first talking to the members
//! directly, then through one `etcd grpc-proxy`; or (`--rollout`) N daemons of one rollout
//! group taking one change (`rollout`). Prints a table of figures next to the targets and
//! writes them as JSON.
//!
//! Usage: `reconfig-fleet [--bin target/release/reconfig] [--n 200] [--direct | --proxy |
//! --rollout] [--idle 60] [--max-parallel 10 --canary 2 --bake 5] [--out
//! bench/fleet-results.json] [--keep]` — `bench/fleet` builds the release binaries, raises
//! `fs.inotify.max_user_instances` (one instance a daemon) and calls this.

// The integration tests' harness (real etcd servers, daemons); the bench uses part of it.
#[allow(dead_code)]
#[path = "../../../tests/it/common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "../fixture.rs"]
mod fixture;
#[allow(dead_code)]
#[path = "../measure.rs"]
mod measure;

mod cluster;
mod nodes;
mod phases;
mod report;
mod rollout;

use std::time::Duration;

use serde_json::{json, Value};

/// What to run.
pub struct Options {
    /// The reconfig binary under test.
    pub bin: String,
    /// Daemons in the fleet.
    pub n: usize,
    pub direct: bool,
    pub proxied: bool,
    /// The rollout scenario.
    pub rollout: bool,
    /// Its group's `max_parallel`.
    pub max_parallel: usize,
    /// Its group's `canary`.
    pub canary: usize,
    /// Its group's `bake`.
    pub bake: Duration,
    /// The idle phase (fleet CPU, then memory).
    pub idle: Duration,
    /// Puts to the shared tree timed until every daemon has them.
    pub puts: usize,
    /// Puts per etcd latency measurement of the quiet fleet (with no daemons, and with the
    /// fleet watching): the p99 of a millisecond-scale latency on a shared disk needs many
    /// samples — with 200, it is the second slowest put, and ratios of two such figures
    /// ranged from 0.2 to 6 between runs.
    pub probe_puts: usize,
    /// Shared writes a second in the busy phase.
    pub rate: f64,
    /// How long etcd is down in the outage.
    pub outage: Duration,
    /// Where the JSON goes.
    pub out: String,
    /// Keep the daemons' logs and files.
    pub keep: bool,
}

const USAGE: &str = "use --bin PATH --n N [--direct | --proxy | --rollout] --idle SECS --puts N \
                     --probe-puts N --rate WRITES_PER_S --outage SECS --max-parallel N \
                     --canary N --bake SECS --out FILE --keep";

fn options() -> Options {
    let mut o = Options {
        bin: "target/release/reconfig".into(),
        n: 200,
        direct: false,
        proxied: false,
        rollout: false,
        max_parallel: 10,
        canary: 2,
        bake: Duration::from_secs(5),
        idle: Duration::from_secs(60),
        puts: 20,
        probe_puts: 1000,
        rate: 20.0,
        outage: Duration::from_secs(3),
        out: "bench/fleet-results.json".into(),
        keep: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--direct" => o.direct = true,
            "--proxy" | "--proxied" => o.proxied = true,
            "--rollout" => o.rollout = true,
            "--keep" => o.keep = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => {
                let value = args
                    .next()
                    .unwrap_or_else(|| panic!("{flag} needs a value; {USAGE}"));
                let number = || -> f64 {
                    value
                        .parse()
                        .unwrap_or_else(|_| panic!("{flag} needs a number"))
                };
                match flag.as_str() {
                    "--bin" => o.bin = value.clone(),
                    "--out" => o.out = value.clone(),
                    "--n" => o.n = number() as usize,
                    "--idle" => o.idle = Duration::from_secs_f64(number()),
                    "--puts" => o.puts = number() as usize,
                    "--probe-puts" => o.probe_puts = number() as usize,
                    "--rate" => o.rate = number(),
                    "--outage" => o.outage = Duration::from_secs_f64(number()),
                    "--max-parallel" => o.max_parallel = number() as usize,
                    "--canary" => o.canary = number() as usize,
                    "--bake" => o.bake = Duration::from_secs_f64(number()),
                    _ => panic!("unknown flag {flag}; {USAGE}"),
                }
            }
        }
    }
    if !o.direct && !o.proxied && !o.rollout {
        (o.direct, o.proxied) = (true, true);
    }
    o
}

/// The first number of a /proc file (inotify limits).
fn proc_number(path: &str) -> usize {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// The load averages, for the note on how busy the machine was.
fn loadavg() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::main]
async fn main() {
    let o = options();
    assert!(
        std::path::Path::new(&o.bin).is_file(),
        "no binary at {} (build it: cargo build --release --bin reconfig)",
        o.bin
    );
    // Each daemon holds one inotify instance (for its templates), the benchmark one.
    let instances = proc_number("/proc/sys/fs/inotify/max_user_instances");
    let needed = o.n + 32;
    if instances < needed {
        eprintln!(
            "fs.inotify.max_user_instances is {instances}; {} daemons need about {needed}: \
             sysctl -w fs.inotify.max_user_instances={} (bench/fleet does it)",
            o.n,
            o.n + 256
        );
        std::process::exit(2);
    }
    let load_before = loadavg();
    let mut results = json!({
        "bin": o.bin,
        "n": o.n,
        "machine": {
            "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "loadavg_before": load_before,
        },
    });
    if o.direct {
        results["direct"] = phases::run(&o, false).await;
    }
    if o.proxied {
        results["proxied"] = phases::run(&o, true).await;
    }
    if o.rollout {
        results["rollout"] = rollout::run(&o).await;
    }
    results["machine"]["loadavg_after"] = Value::from(loadavg());
    report::table(&results);
    std::fs::write(
        &o.out,
        serde_json::to_string_pretty(&results).unwrap() + "\n",
    )
    .unwrap();
    eprintln!("figures written to {}", o.out);
}
