//! The table: one line a figure, the direct and the proxied fleet side by side, the target.

use serde_json::Value;

/// A number at `path` ("a.b.c"), None when missing or null.
fn get(v: &Value, path: &str) -> Option<f64> {
    path.split('.').try_fold(v, |v, p| v.get(p))?.as_f64()
}

/// `paths` formatted with `decimals`, joined by " / "; "-" for what is missing.
fn cell(v: Option<&Value>, paths: &[&str], decimals: usize) -> String {
    let Some(v) = v else {
        return String::new();
    };
    paths
        .iter()
        .map(|p| get(v, p).map_or("-".to_string(), |x| format!("{x:.decimals$}")))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// Prints the table of both runs (a run not made leaves its column empty), and the rollout
/// scenario's figures when it ran.
pub fn table(results: &Value) {
    if let Some(rollout) = results.get("rollout") {
        rollout_table(rollout);
    }
    if results.get("direct").is_none() && results.get("proxied").is_none() {
        return;
    }
    let n = results["n"].as_u64().unwrap_or(0);
    let (direct, proxied) = (results.get("direct"), results.get("proxied"));
    let idle_s = [direct, proxied]
        .iter()
        .find_map(|r| get((*r)?, "idle.seconds"))
        .unwrap_or(0.0);
    let line = |what: &str, paths: &[&str], decimals: usize, target: &str| {
        println!(
            "{what:<46} {:>17} {:>17}   {target}",
            cell(direct, paths, decimals),
            cell(proxied, paths, decimals),
        );
    };
    println!(
        "{:<46} {:>17} {:>17}   target",
        format!("figure ({n} daemons)"),
        "direct",
        "proxied"
    );
    let two_n = format!("{}", 2 * n);
    line(
        &format!("start-up: all {two_n} files right (ms)"),
        &["startup.all_right_ms"],
        0,
        "",
    );
    line(
        "start-up: files right / files",
        &["startup.files_right", "startup.files"],
        0,
        "",
    );
    line("start-up: fleet CPU (s)", &["startup.cpu_s"], 2, "");
    line(
        "start-up: Range / Txn / Watch RPCs at etcd",
        &[
            "startup.rpcs.range",
            "startup.rpcs.txn",
            "startup.rpcs.watch",
        ],
        0,
        "",
    );
    line(
        "idle: Range / Txn / Watch RPCs at etcd",
        &["idle.rpcs.range", "idle.rpcs.txn", "idle.rpcs.watch"],
        0,
        "0",
    );
    line(
        "idle: watch streams / watchers at etcd",
        &["idle.watch_streams", "idle.watchers"],
        0,
        "proxied: 1 stream",
    );
    line(
        "idle: TCP connections per daemon, median / max",
        &["idle.tcp_connections.median", "idle.tcp_connections.max"],
        0,
        "",
    );
    line(
        "idle: Pss per daemon, median / max (MiB)",
        &["idle.pss_mib.median", "idle.pss_mib.max"],
        2,
        "<= 2",
    );
    line(
        "idle: private per daemon, median / max (MiB)",
        &["idle.private_mib.median", "idle.private_mib.max"],
        2,
        "",
    );
    line(
        &format!("idle: fleet CPU over {idle_s:.0} s (s)"),
        &["idle.cpu_s"],
        2,
        "",
    );
    line(
        &format!("put -> all {n} shared right, p50 (ms)"),
        &["shared_puts.all_right.p50_ms"],
        1,
        "",
    );
    line(
        &format!("put -> all {n} shared right, p99 (ms)"),
        &["shared_puts.all_right.p99_ms"],
        1,
        "<= 50",
    );
    line(
        "fleet CPU per shared put (ms)",
        &["shared_puts.cpu_ms_per_put"],
        1,
        "",
    );
    line(
        &format!("floor: {n} durable file writes alone, CPU (ms)"),
        &["shared_puts.floor_file_writes_cpu_ms_per_put"],
        1,
        "",
    );
    line(
        "CPU per render / floor: one durable write (ms)",
        &[
            "shared_puts.cpu_ms_per_render",
            "shared_puts.floor_cpu_ms_per_render",
        ],
        3,
        "",
    );
    line(
        "CPU per render over the floor (x)",
        &["shared_puts.cpu_to_floor"],
        1,
        "<= 2",
    );
    line(
        "put -> one shared target right, p50 / p99 (ms)",
        &[
            "shared_puts.per_target.p50_ms",
            "shared_puts.per_target.p99_ms",
        ],
        1,
        "",
    );
    line(
        "puts timed out / made",
        &["shared_puts.timed_out", "shared_puts.puts"],
        0,
        "0",
    );
    line(
        "etcd put p50 / p99, no daemons (ms)",
        &["etcd_put.idle.p50_ms", "etcd_put.idle.p99_ms"],
        2,
        "",
    );
    line(
        "etcd put p50 / p99, fleet watching (ms)",
        &["etcd_put.watching.p50_ms", "etcd_put.watching.p99_ms"],
        2,
        "",
    );
    println!(
        "{:<46} {:>17} {:>17}   <= 1.5",
        "etcd put p99, watching / no daemons",
        ratio(direct),
        ratio(proxied)
    );
    line(
        "etcd put p50 / p99, fleet busy (ms)",
        &["etcd_put.busy.p50_ms", "etcd_put.busy.p99_ms"],
        2,
        "",
    );
    line(
        "busy: shared writes/s, fleet CPU (cores)",
        &["busy.writes_per_s", "busy.cpu_cores"],
        2,
        "",
    );
    line(
        "busy: all right after the last write (ms)",
        &["busy.converged_after_last_write_ms"],
        1,
        "",
    );
    line(
        "outage: restart -> healthy (ms)",
        &["outage.restart_to_healthy_ms"],
        0,
        "",
    );
    line(
        "outage: daemons converged / daemons",
        &["outage.daemons_converged", "outage.daemons"],
        0,
        "all",
    );
    line(
        "outage: converged p50 / max after healthy (ms)",
        &["outage.per_daemon.p50_ms", "outage.per_daemon.max_ms"],
        0,
        "max <= 2000",
    );
    line(
        "outage: Range / Txn / Watch in 10 s after",
        &[
            "outage.rpcs_10s.range",
            "outage.rpcs_10s.txn",
            "outage.rpcs_10s.watch",
        ],
        0,
        &format!("reads <= {two_n}"),
    );
    line(
        "outage: reads per entry",
        &["outage.reads_per_entry"],
        2,
        "<= 1",
    );
    line(
        "daemons alive at the end",
        &["daemons_alive_at_end"],
        0,
        "all",
    );
    line(
        "closed for too many pings: by etcd / by proxy",
        &[
            "too_many_pings_closures.etcd",
            "too_many_pings_closures.proxy",
        ],
        0,
        "0",
    );
    line(
        "watches lost before the outage / daemons",
        &[
            "logs_before_outage.watch_lost_lines",
            "logs_before_outage.daemons_with_watch_lost",
        ],
        0,
        "0",
    );
    line(
        "log lines WARN / ERROR",
        &["logs.lines_per_level.WARN", "logs.lines_per_level.ERROR"],
        0,
        "",
    );
    let machine = &results["machine"];
    println!(
        "machine: {} CPUs, load average {} before, {} after",
        machine["cpus"],
        machine["loadavg_before"].as_str().unwrap_or("?"),
        machine["loadavg_after"].as_str().unwrap_or("?"),
    );
}

/// The rollout scenario's figures.
fn rollout_table(r: &Value) {
    let n = r["n"].as_u64().unwrap_or(0);
    let line = |what: &str, paths: &[&str], decimals: usize, target: &str| {
        println!(
            "{what:<52} {:>17}   {target}",
            cell(Some(r), paths, decimals)
        );
    };
    println!(
        "{:<52} {:>17}   target",
        format!("rollout ({n} daemons, one group)"),
        ""
    );
    line(
        "max_parallel / canary / bake (ms)",
        &["max_parallel", "canary", "bake_ms"],
        0,
        "",
    );
    line(
        "most nodes between swap and baked at once",
        &["most_between_swap_and_baked"],
        0,
        "<= max_parallel",
    );
    line(
        "nodes that went before the canaries were done",
        &["went_before_the_canaries_were_done"],
        0,
        "0",
    );
    line(
        "nodes applied / turns ended",
        &["applied", "turns_ended"],
        0,
        "n / n",
    );
    line("whole rollout (ms)", &["total_ms"], 0, "");
    line(
        "ideal: rounds x (reload + health + bake) (ms)",
        &["ideal_ms"],
        0,
        "",
    );
    line("rollout / ideal", &["ratio_to_ideal"], 3, "<= 1.2");
    line(
        "etcd requests per node (keep-alive messages apart)",
        &["etcd_requests_per_node"],
        2,
        "<= 8",
    );
    line(
        "Txn / Range / Watch / LeaseGrant / LeaseKeepAlive",
        &[
            "etcd_requests_by_method.Txn",
            "etcd_requests_by_method.Range",
            "etcd_requests_by_method.Watch",
            "etcd_requests_by_method.LeaseGrant",
            "etcd_requests_by_method.LeaseKeepAlive",
        ],
        0,
        "",
    );
    line(
        "lease keep-alive messages per node",
        &["keepalive_messages_per_node"],
        1,
        "",
    );
}

/// etcd's put p99 with the fleet watching over its p99 without daemons.
fn ratio(run: Option<&Value>) -> String {
    let Some(run) = run else {
        return String::new();
    };
    match (
        get(run, "etcd_put.watching.p99_ms"),
        get(run, "etcd_put.idle.p99_ms"),
    ) {
        (Some(w), Some(i)) if i > 0.0 => format!("{:.2}", w / i),
        _ => "-".to_string(),
    }
}
