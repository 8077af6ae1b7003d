//! The etcd side of the fleet benchmark: the members' URLs, their counters (RPCs started,
//! watch streams and watchers, summed over the members), their health, the grpc-proxy in
//! front of them, and a client timing puts of a key nobody watches.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions};
use serde_json::{json, Value};

use crate::common::{free_port, http_get, EtcdServer};
use crate::measure::{etcd_metrics, metric, ms, quantile};

/// The key the put-latency probe writes: outside every tree the daemons watch.
const PROBE_KEY: &str = "/bench/probe";

/// The members' client URLs (`http://127.0.0.1:PORT`).
pub fn member_urls(etcd: &EtcdServer) -> Vec<String> {
    etcd.endpoint.split(',').map(str::to_string).collect()
}

/// The port of `http://HOST:PORT` (or `HOST:PORT`).
pub fn port(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

/// etcd's counters and gauges, summed over the members.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    pub range: f64,
    pub txn: f64,
    pub watch: f64,
    pub put: f64,
    /// Every gRPC call or stream started, of any method.
    pub all: f64,
    /// Watch streams open now (gauge).
    pub watch_streams: f64,
    /// Watchers on those streams now (gauge).
    pub watchers: f64,
}

impl Counters {
    /// Reads every member's `/metrics` (a member that does not answer counts zero).
    pub async fn scrape(urls: &[String]) -> Counters {
        let urls = urls.to_vec();
        let pages = tokio::task::spawn_blocking(move || {
            urls.iter().map(|u| etcd_metrics(u)).collect::<Vec<_>>()
        })
        .await
        .unwrap();
        let sum = |prefix: &str| pages.iter().map(|p| metric(p, prefix)).sum::<f64>();
        let started = |method: &str| {
            sum(&format!(
                "grpc_server_started_total{{grpc_method=\"{method}\""
            ))
        };
        Counters {
            range: started("Range"),
            txn: started("Txn"),
            watch: started("Watch"),
            put: started("Put"),
            all: sum("grpc_server_started_total"),
            watch_streams: sum("etcd_debugging_mvcc_watch_stream_total"),
            watchers: sum("etcd_debugging_mvcc_watcher_total"),
        }
    }

    /// The RPCs started since `before`, as JSON.
    pub fn since(&self, before: &Counters) -> Value {
        json!({
            "range": self.range - before.range,
            "txn": self.txn - before.txn,
            "watch": self.watch - before.watch,
            "put": self.put - before.put,
            "all": self.all - before.all,
        })
    }
}

/// Whether every member's `/health` says healthy (a leader, no alarm).
pub async fn all_healthy(urls: &[String]) -> bool {
    for url in urls {
        let address = url.trim_start_matches("http://");
        match http_get(address, "/health").await {
            Some((200, body)) if body.contains(r#""health":"true""#) => {}
            _ => return false,
        }
    }
    true
}

/// Polls the members' `/health` (nothing to wait on instead) until all are healthy; when
/// they were, or None after `limit`.
pub async fn wait_healthy(urls: &[String], limit: Duration) -> Option<Instant> {
    let deadline = Instant::now() + limit;
    loop {
        if all_healthy(urls).await {
            return Some(Instant::now());
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A client of one endpoint that fails fast while it does not answer.
pub async fn client_of(endpoints: &[String]) -> Option<Client> {
    let options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(1))
        .with_timeout(Duration::from_secs(2));
    Client::connect(endpoints, Some(options)).await.ok()
}

/// Lines of a server log saying a client connection was closed for pinging too often
/// (gRPC's keepalive enforcement: GOAWAY "too_many_pings").
pub fn too_many_pings(log: &str) -> usize {
    log.lines()
        .filter(|l| l.to_lowercase().contains("too many pings"))
        .count()
}

/// `etcd grpc-proxy start` in front of the cluster; killed on drop.
pub struct Proxy {
    _child: tokio::process::Child,
    /// `http://127.0.0.1:PORT`, the daemons' only endpoint.
    pub endpoint: String,
    log: PathBuf,
}

impl Proxy {
    /// Starts a proxy of every member, logging to `dir/proxy.log`, and waits until a read
    /// through it succeeds.
    pub async fn start(etcd: &EtcdServer, dir: &Path) -> Proxy {
        let members: Vec<String> = member_urls(etcd)
            .iter()
            .map(|u| u.trim_start_matches("http://").to_string())
            .collect();
        for _attempt in 0..5 {
            let listen = format!("127.0.0.1:{}", free_port());
            let log = std::fs::File::create(dir.join("proxy.log")).unwrap();
            let mut child = tokio::process::Command::new(etcd.version.binary())
                .args(["grpc-proxy", "start", "--endpoints", &members.join(",")])
                .args(["--listen-addr", &listen, "--data-dir"])
                .arg(dir.join("proxy.data"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .unwrap_or_else(|e| panic!("{}: {e}", etcd.version.binary().display()));
            let endpoint = format!("http://{listen}");
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                if let Some(mut c) = client_of(std::slice::from_ref(&endpoint)).await {
                    if c.get("/", None).await.is_ok() {
                        return Proxy {
                            _child: child,
                            endpoint,
                            log: dir.join("proxy.log"),
                        };
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            eprintln!(
                "grpc-proxy did not start:\n{}",
                std::fs::read_to_string(dir.join("proxy.log")).unwrap_or_default()
            );
        }
        panic!("could not start etcd grpc-proxy");
    }

    /// What the proxy logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Latencies as JSON: count, p50, p90, p99, max (ms); nulls without samples.
pub fn latency_json(mut samples: Vec<Duration>) -> Value {
    samples.sort();
    let Some(max) = samples.last().copied() else {
        return json!({ "count": 0, "p50_ms": null, "p90_ms": null, "p99_ms": null, "max_ms": null });
    };
    json!({
        "count": samples.len(),
        "p50_ms": ms(quantile(&samples, 0.5)),
        "p90_ms": ms(quantile(&samples, 0.9)),
        "p99_ms": ms(quantile(&samples, 0.99)),
        "max_ms": ms(max),
    })
}

/// etcd's put latency as a client sees it: `puts` sequential puts of [`PROBE_KEY`] to the
/// leader (after 20 not counted), each timed from request to response.
pub async fn put_latency(etcd: &EtcdServer, puts: usize) -> Value {
    latency_json(put_samples(etcd, puts).await)
}

/// The samples of [`put_latency`].
pub async fn put_samples(etcd: &EtcdServer, puts: usize) -> Vec<Duration> {
    let urls = member_urls(etcd);
    let leader = etcd.leader().await.unwrap_or(0);
    let mut client = client_of(&urls[leader..=leader])
        .await
        .expect("connect to the leader");
    let warmup = 20;
    let mut samples = Vec::with_capacity(puts);
    for i in 0..warmup + puts {
        let started = Instant::now();
        client
            .put(PROBE_KEY, format!("v{i}"), None)
            .await
            .expect("probe put");
        if i >= warmup {
            samples.push(started.elapsed());
        }
    }
    samples
}
