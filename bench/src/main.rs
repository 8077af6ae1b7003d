//! reconfig-bench: measures the reconfig daemon against a real etcd on loopback and prints
//! a table of figures next to the targets (and the incumbent's figures), writing JSON too.
//!
//! Usage: `reconfig-bench --bin target/release/reconfig [--out bench/results.json]
//! [--only A,B,C,D,E]` — `bench/run` builds the release binary and calls this.

// The integration tests' harness (real etcd servers, daemons); the bench uses part of it.
#[allow(dead_code)]
#[path = "../../tests/it/common/mod.rs"]
mod common;
mod measure;
mod scenarios;

use serde_json::{json, Value};

struct Options {
    bin: String,
    out: String,
    only: String,
}

fn options() -> Options {
    let mut o = Options {
        bin: "target/release/reconfig".into(),
        out: "bench/results.json".into(),
        only: "A,B,C,D,E".into(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--bin" => o.bin = value,
            "--out" => o.out = value,
            "--only" => o.only = value,
            _ => panic!("unknown flag {flag}; use --bin PATH --out FILE --only A,B,C,D,E"),
        }
    }
    o
}

/// One table line: scenario, figure, measured, target, incumbent.
fn line(scenario: &str, what: &str, measured: String, target: &str, incumbent: &str) {
    println!("{scenario:<3} {what:<38} {measured:>12}   {target:<16} {incumbent}");
}

fn f(v: &Value, path: &[&str]) -> f64 {
    path.iter()
        .fold(v, |v, p| &v[*p])
        .as_f64()
        .unwrap_or(f64::NAN)
}

fn report(results: &Value) {
    println!(
        "{:<3} {:<38} {:>12}   {:<16} incumbent",
        "", "figure", "measured", "target"
    );
    if let Some(a) = results.get("A") {
        let (p50, p99) = (f(a, &["reconfig", "p50_ms"]), f(a, &["reconfig", "p99_ms"]));
        line("A", "latency p50 (ms)", format!("{p50:.3}"), "<= 1", "2.3");
        line(
            "A",
            "latency p90 (ms)",
            format!("{:.3}", f(a, &["reconfig", "p90_ms"])),
            "",
            "",
        );
        line("A", "latency p99 (ms)", format!("{p99:.3}"), "<= 3", "14");
        line(
            "A",
            "latency max (ms)",
            format!("{:.3}", f(a, &["reconfig", "max_ms"])),
            "",
            "",
        );
        line(
            "A",
            "floor p50 / p99 (ms)",
            format!(
                "{:.3} / {:.3}",
                f(a, &["floor", "p50_ms"]),
                f(a, &["floor", "p99_ms"])
            ),
            "",
            "",
        );
        line(
            "A",
            "p50 above floor (ms)",
            format!("{:.3}", p50 - f(a, &["floor", "p50_ms"])),
            "<= 1",
            "",
        );
    }
    if let Some(b) = results.get("B") {
        line(
            "B",
            "convergence after last put (ms)",
            format!("{:.2}", f(b, &["convergence_ms"])),
            "<= 5",
            "18",
        );
        line(
            "B",
            "daemon CPU for the burst (s)",
            format!("{:.3}", f(b, &["cpu_s"])),
            "<= 0.7",
            "6.9",
        );
        line(
            "B",
            "renders / reloads for 5000 puts",
            format!("{} / {}", b["renders"], b["reloads"]),
            "a handful",
            "",
        );
    }
    if let Some(c) = results.get("C") {
        line(
            "C",
            "--onetime wall, best (ms)",
            format!("{:.1}", f(c, &["wall_ms_best"])),
            "<= 80",
            "390",
        );
        line(
            "C",
            "--onetime wall, median (ms)",
            format!("{:.1}", f(c, &["wall_ms_median"])),
            "",
            "",
        );
        line(
            "C",
            "peak RSS (MiB)",
            format!("{:.1}", f(c, &["peak_rss_mib"])),
            "<= 12",
            "46",
        );
    }
    if let Some(d) = results.get("D") {
        line(
            "D",
            "all 500 files correct (ms)",
            format!("{:.1}", f(d, &["all_correct_ms"])),
            "<= 250",
            "1300",
        );
        line(
            "D",
            "RSS after 5 s idle (MiB)",
            format!("{:.1}", f(d, &["idle_rss_mib"])),
            "<= 13",
            "52",
        );
        line(
            "D",
            "CPU over 10 s idle (s)",
            format!("{:.2}", f(d, &["idle_cpu_s_10s"])),
            "0.00",
            "0.00",
        );
        line(
            "D",
            "50 updates all correct (ms)",
            format!("{:.2}", f(d, &["fifty_updates_ms"])),
            "<= 10",
            "70",
        );
        let e = &d["etcd"];
        line(
            "D",
            "TCP connections to etcd",
            format!("{}", e["tcp_connections"]),
            "1",
            "",
        );
        line(
            "D",
            "watch streams / watchers",
            format!("{} / {}", e["watch_streams"], e["watchers"]),
            "1 / 500",
            "500 watchers",
        );
        line(
            "D",
            "start-up Range + Txn RPCs",
            format!("{} + {}", e["range_rpcs"], e["txn_rpcs"]),
            "<= 500",
            "500 reads",
        );
    }
    if let Some(e) = results.get("E") {
        line(
            "E",
            "first publish, 10,000 files (ms)",
            format!("{:.1}", f(e, &["first_publish_ms"])),
            "",
            "",
        );
        line(
            "E",
            "one put → published, p50 (ms)",
            format!("{:.2}", f(e, &["p50_ms"])),
            "<= 50",
            "",
        );
        line(
            "E",
            "one put → published, p99 (ms)",
            format!("{:.2}", f(e, &["p99_ms"])),
            "<= 50",
            "",
        );
        line(
            "E",
            "one put → published, max (ms)",
            format!("{:.2}", f(e, &["max_ms"])),
            "",
            "",
        );
        line(
            "E",
            "dispense CPU per put (ms)",
            format!("{:.2}", f(e, &["cpu_s_per_update"]) * 1000.0),
            "",
            "",
        );
    }
}

#[tokio::main]
async fn main() {
    let o = options();
    let mut results = json!({});
    let only: Vec<&str> = o.only.split(',').map(str::trim).collect();
    if only.contains(&"A") {
        results["A"] = scenarios::latency(&o.bin).await;
    }
    if only.contains(&"B") {
        results["B"] = scenarios::burst(&o.bin).await;
    }
    if only.contains(&"C") {
        results["C"] = scenarios::cold(&o.bin).await;
    }
    if only.contains(&"D") {
        results["D"] = scenarios::many(&o.bin).await;
    }
    if only.contains(&"E") {
        results["E"] = scenarios::dispense(&o.bin).await;
    }
    report(&results);
    std::fs::write(
        &o.out,
        serde_json::to_string_pretty(&results).unwrap() + "\n",
    )
    .unwrap();
    eprintln!("figures written to {}", o.out);
}
