//! reconfig-bench: measures the reconfig daemon against a real etcd on loopback and prints
//! a table of figures next to the targets (and the incumbent's figures), writing JSON too.
//!
//! Usage: `reconfig-bench --bin target/release/reconfig [--out bench/results.json]
//! [--only A,B,C,D,E]` — `bench/run` builds the release binary and calls this.

// The integration tests' harness (real etcd servers, daemons); the bench uses part of it.
#[allow(dead_code)]
#[path = "../../tests/it/common/mod.rs"]
mod common;
mod fixture;
// Shared with the fleet benchmark (src/fleet/), which uses parts these scenarios do not.
#[allow(dead_code)]
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

/// One table line: scenario, figure, measured, target.
fn line(scenario: &str, what: &str, measured: String, target: &str) {
    println!("{scenario:<3} {what:<40} {measured:>14}   {target}");
}

fn f(v: &Value, path: &[&str]) -> f64 {
    path.iter()
        .fold(v, |v, p| &v[*p])
        .as_f64()
        .unwrap_or(f64::NAN)
}

/// Two figures as `a / b`, with `digits` decimals.
fn pair(v: &Value, a: &[&str], b: &[&str], digits: usize) -> String {
    format!("{:.digits$} / {:.digits$}", f(v, a), f(v, b))
}

/// The floor at `floor`, and how many times it the figure at `figure` is.
fn ratio(v: &Value, figure: &[&str], floor: &[&str]) -> String {
    let (figure, floor) = (f(v, figure), f(v, floor));
    format!("{floor:.3}, x{:.1}", figure / floor)
}

fn report(results: &Value) {
    println!("{:<3} {:<40} {:>14}   target", "", "figure", "measured");
    if let Some(a) = results.get("A") {
        let row = |what: &str, who: &str, target: &str| {
            line(
                "A",
                what,
                pair(a, &[who, "p50_ms"], &[who, "p99_ms"], 3),
                target,
            );
        };
        row(
            "put -> file right, p50 / p99 (ms)",
            "reconfig",
            "<= 1 / <= 3",
        );
        row("floor: raw watch -> file, p50 / p99 (ms)", "floor", "");
        line(
            "A",
            "max (ms)",
            format!("{:.3}", f(a, &["reconfig", "max_ms"])),
            "",
        );
    }
    if let Some(b) = results.get("B") {
        let convergence = format!("{:.2}", f(b, &["convergence_ms"]));
        line("B", "last put -> file right (ms)", convergence, "<= 5");
        line(
            "B",
            "daemon CPU, reloads apart (s)",
            format!("{:.3}", f(b, &["cpu_s"])),
            "",
        );
        line(
            "B",
            "floor: the same file writes alone, CPU (s), ratio",
            ratio(b, &["cpu_s"], &["floor_file_writes_cpu_s"]),
            "x <= 2",
        );
        line(
            "B",
            "floor: the same writes at the puts' pace, CPU (s), ratio",
            ratio(b, &["cpu_s"], &["floor_paced_file_writes_cpu_s"]),
            "",
        );
        line(
            "B",
            "floor: the same, etcd taking the same puts, CPU (s), ratio",
            ratio(b, &["cpu_s"], &["floor_loaded_file_writes_cpu_s"]),
            "",
        );
        line(
            "B",
            "floor: the same, each write set off by a watch response, CPU (s), ratio",
            ratio(b, &["cpu_s"], &["floor_fed_file_writes_cpu_s"]),
            "",
        );
        line(
            "B",
            "floor: tight writes -> watch-fed writes, ratio",
            ratio(
                b,
                &["floor_fed_file_writes_cpu_s"],
                &["floor_file_writes_cpu_s"],
            ),
            "",
        );
        let reloads = format!("{} / {}", b["reloads"], b["reloads_allowed"]);
        line("B", "reloads / one per interval + 1", reloads, "<=");
        line(
            "B",
            "renders for 5000 puts",
            format!("{}", b["renders"]),
            "",
        );
    }
    if let Some(c) = results.get("C") {
        let wall = pair(c, &["wall_ms_best"], &["wall_ms_median"], 1);
        line("C", "--onetime wall, best / median (ms)", wall, "<= 80");
        line(
            "C",
            "peak RSS (MiB)",
            format!("{:.1}", f(c, &["peak_rss_mib"])),
            "<= 12",
        );
        line(
            "C",
            "floor: one bare range of the tree (ms)",
            format!("{:.1}", f(c, &["floor_one_range_ms_best"])),
            "",
        );
    }
    if let Some(d) = results.get("D") {
        let all = format!("{:.1}", f(d, &["all_correct_ms"]));
        line("D", "start -> all 500 files right (ms)", all, "<= 250");
        line(
            "D",
            "floor: the 500 files written alone (ms), ratio",
            ratio(d, &["all_correct_ms"], &["floor_files_written_ms"]),
            "",
        );
        line(
            "D",
            "RSS after 5 s idle (MiB)",
            format!("{:.1}", f(d, &["idle_rss_mib"])),
            "<= 13",
        );
        line(
            "D",
            "of it own (anonymous) / files' (MiB)",
            pair(d, &["idle_rss_anon_mib"], &["idle_rss_file_mib"], 1),
            "",
        );
        line(
            "D",
            "CPU over 10 s idle (s)",
            format!("{:.2}", f(d, &["idle_cpu_s_10s"])),
            "0",
        );
        let updates = pair(d, &["update_p50_ms"], &["update_p99_ms"], 2);
        line(
            "D",
            "update -> its file right, p50 / p99 (ms)",
            updates,
            "p99 <= 5",
        );
        let e = &d["etcd"];
        line(
            "D",
            "TCP connections to etcd",
            format!("{}", e["tcp_connections"]),
            "",
        );
        let streams = format!("{} / {}", e["watch_streams"], e["watchers"]);
        line("D", "watch streams / watchers", streams, "1 / 500");
        let reads = format!("{} + {}", e["range_rpcs"], e["txn_rpcs"]);
        line("D", "start-up Range + Txn RPCs", reads, "");
    }
    if let Some(e) = results.get("E") {
        let first = format!("{:.1}", f(e, &["first_publish_ms"]));
        line("E", "first publish, 10,000 files (ms)", first, "");
        let one = pair(e, &["p50_ms"], &["p99_ms"], 2);
        line("E", "one put -> published, p50 / p99 (ms)", one, "<= 50");
        line("E", "max (ms)", format!("{:.2}", f(e, &["max_ms"])), "");
        let cpu = format!("{:.2}", f(e, &["cpu_s_per_update"]) * 1000.0);
        line("E", "dispense CPU per put (ms)", cpu, "");
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
