//! Fleet rollouts with a group of real daemons on a real etcd: the window is never exceeded
//! (from the daemons' own lines and the commands' timestamps), canaries go first, a failing
//! canary holds everyone, a killed slot holder's place comes free with its lease, a newer
//! change supersedes a waiting one, an etcd outage keeps every previous file; `--onetime`
//! takes part; an entry without `rollout` writes nothing to etcd.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::*;
use etcd_client::{GetOptions, Permission};
use nix::sys::signal::Signal;
use serde_json::{json, Value};

/// Generous bound for what must happen eventually.
const LIMIT: Duration = Duration::from_secs(60);
/// The key every node renders.
const KEY: &str = "/app/conf";
const TEMPLATE: &str = "value=<%= data[watched] %>\n";
const GROUP: &str = "web";
const PREFIX: &str = "/reconfig/rollout/web/";

/// One node of a test fleet: its configuration, target, log and daemon.
struct Node {
    name: String,
    root: PathBuf,
    target: PathBuf,
    log: PathBuf,
    daemon: Option<Daemon>,
}

/// A group of nodes, each with one entry on [`KEY`] in group [`GROUP`], whose commands
/// append `NANOS NODE reload|health CONTENT` lines to one events file.
struct Fleet {
    _dir: tempfile::TempDir,
    events: PathBuf,
    nodes: Vec<Node>,
}

/// How the fleet's entries roll out.
struct Plan {
    nodes: usize,
    max_parallel: u32,
    canary: u32,
    bake: &'static str,
    /// Run by the health command after it logged (`$RECONFIG_TARGET` is the target).
    health: String,
}

impl Plan {
    fn new(nodes: usize, max_parallel: u32, canary: u32) -> Plan {
        Plan {
            nodes,
            max_parallel,
            canary,
            bake: "0.2s",
            health: "true".into(),
        }
    }
}

/// `NANOS NODE WHAT CONTENT` into `events`.
fn logging(events: &Path, node: &str, what: &str) -> String {
    format!(
        "echo \"$(date +%s%N) {node} {what} $(cat \"$RECONFIG_TARGET\")\" >> '{}'",
        events.display()
    )
}

impl Fleet {
    fn new(plan: &Plan) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let events = dir.path().join("events");
        let nodes = (0..plan.nodes)
            .map(|i| {
                let name = format!("node{i}");
                let root = dir.path().join(&name);
                let target = root.join("web.conf");
                let rollout = json!({
                    "group": GROUP,
                    "max_parallel": plan.max_parallel,
                    "canary": plan.canary,
                    "bake": plan.bake,
                    "health_timeout": "1h",
                    "healthcmd": format!("{}; {}", logging(&events, &name, "health"), plan.health),
                });
                let entry = json!({
                    "id": "web",
                    "key": KEY,
                    "source": "web.tmpl",
                    "target": target,
                    "reloadcmd": logging(&events, &name, "reload"),
                    "rollout": rollout,
                });
                cfgdir(
                    &root,
                    &[("web", entry.to_string())],
                    &[("web.tmpl", TEMPLATE)],
                );
                std::fs::write(&target, "value=v0\n").unwrap();
                Node {
                    log: root.join("log"),
                    name,
                    root,
                    target,
                    daemon: None,
                }
            })
            .collect();
        Fleet {
            _dir: dir,
            events,
            nodes,
        }
    }

    /// The arguments of node `i`'s daemon (or one-shot run).
    fn args(&self, i: usize, etcd: &EtcdServer, extra: &[&str]) -> Vec<String> {
        let node = &self.nodes[i];
        let mut args: Vec<String> = [
            "--cfgdir",
            node.root.join("cfg").to_str().unwrap(),
            "--endpoints",
            &etcd.endpoint,
            "--state-dir",
            node.root.join("state").to_str().unwrap(),
            "--node-name",
            &node.name,
            "--log-format",
            "json",
        ]
        .map(String::from)
        .to_vec();
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    }

    fn start(&mut self, etcd: &EtcdServer, extra: &[&str]) {
        for i in 0..self.nodes.len() {
            let args = self.args(i, etcd, extra);
            let node = &mut self.nodes[i];
            node.daemon = Some(Daemon::start(args, &node.log));
        }
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.nodes[i].log).unwrap_or_default()
    }

    /// Every log and the events, for failure messages.
    fn logs(&self) -> String {
        let mut all = format!("events:\n{}\n", read(&self.events));
        for (i, node) in self.nodes.iter().enumerate() {
            all += &format!("--- {}:\n{}\n", node.name, self.log(i));
        }
        all
    }

    fn content(&self, i: usize) -> String {
        read(&self.nodes[i].target)
    }

    /// Waits until node `i`'s log holds a message containing `text`.
    async fn wait_log(&self, i: usize, text: &str) {
        let seen = eventually(LIMIT, || self.log(i).contains(text)).await;
        assert!(
            seen,
            "{} never logged {text:?}\n{}",
            self.nodes[i].name,
            self.logs()
        );
    }

    /// Waits until every target holds `value`.
    async fn wait_all(&self, value: &str) {
        let want = format!("value={value}\n");
        let all = eventually(LIMIT, || {
            (0..self.nodes.len()).all(|i| self.content(i) == want)
        })
        .await;
        assert!(all, "not every target became {want:?}\n{}", self.logs());
    }

    /// The events file: `(nanos, node, what, content)`.
    fn events(&self) -> Vec<(u128, String, String, String)> {
        read(&self.events)
            .lines()
            .map(|line| {
                let mut parts = line.splitn(4, ' ');
                let mut next = || parts.next().unwrap_or_default().to_string();
                (next().parse().unwrap(), next(), next(), next())
            })
            .collect()
    }

    /// The nodes whose command logged `what` with `content`.
    fn who(&self, what: &str, content: &str) -> Vec<String> {
        let mut nodes: Vec<String> = self
            .events()
            .into_iter()
            .filter(|(_, _, w, c)| w == what && c == content)
            .map(|(_, node, _, _)| node)
            .collect();
        nodes.sort();
        nodes.dedup();
        nodes
    }

    /// Each node's turns, from its log: when it was given the go (before its swap) and when
    /// it was healthy and baked (before its done marker), by revision.
    fn turns(&self) -> Vec<Turn> {
        let mut turns = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let mut open: BTreeMap<i64, u128> = BTreeMap::new();
            for line in self.log(i).lines() {
                let Ok(event) = serde_json::from_str::<Value>(line) else {
                    continue;
                };
                let message = event["fields"]["message"].as_str().unwrap_or_default();
                let Some(revision) = revision_in(message) else {
                    continue;
                };
                let at = nanos(event["timestamp"].as_str().unwrap());
                if message.contains("this node's turn") {
                    open.insert(revision, at);
                } else if message.contains("reloaded, healthy and baked") {
                    let start = open.remove(&revision).expect("a turn ends after it began");
                    turns.push(Turn {
                        node: node.name.clone(),
                        revision,
                        start,
                        end: Some(at),
                    });
                }
            }
            turns.extend(open.into_iter().map(|(revision, start)| Turn {
                node: node.name.clone(),
                revision,
                start,
                end: None,
            }));
        }
        turns.sort_by_key(|t| t.start);
        turns
    }
}

/// A node between its go and its done (`end`: none when it never got there).
#[derive(Debug, Clone)]
struct Turn {
    node: String,
    revision: i64,
    start: u128,
    end: Option<u128>,
}

/// The revision in a rollout line (`... revision N: ...`).
fn revision_in(message: &str) -> Option<i64> {
    let rest = message.split("revision ").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// An RFC 3339 time in nanoseconds since the epoch.
fn nanos(timestamp: &str) -> u128 {
    humantime::parse_rfc3339(timestamp)
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The most turns open at one moment; a turn without an end lasts until `open_until`.
fn most_at_once(turns: &[Turn], open_until: u128) -> usize {
    // Ends before starts at the same instant: a turn's end was logged before the next began.
    let mut moments: Vec<(u128, i32)> = turns
        .iter()
        .flat_map(|t| [(t.start, 1), (t.end.unwrap_or(open_until), -1)])
        .collect();
    moments.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, step) in moments {
        now += step;
        most = most.max(now);
    }
    usize::try_from(most).unwrap()
}

/// Asserts the window and the canaries over `turns` of one rollout: never more than
/// `max_parallel` between go and done, and every other node's go after every canary's done.
fn assert_window(turns: &[Turn], max_parallel: usize, canary: usize, logs: &dyn Fn() -> String) {
    let most = most_at_once(turns, u128::MAX);
    assert!(
        most <= max_parallel,
        "{most} nodes between swap and baked at once (max {max_parallel}): {turns:#?}\n{}",
        logs()
    );
    let canaries = &turns[..canary.min(turns.len())];
    let canaries_done = canaries.iter().filter_map(|t| t.end).max().unwrap_or(0);
    for other in &turns[canaries.len()..] {
        assert!(
            other.start > canaries_done,
            "{} went before the canaries were done: {turns:#?}\n{}",
            other.node,
            logs()
        );
    }
}

/// Every key under the group's prefix: key → value (retrying while a member is down).
async fn group_keys(etcd: &EtcdServer) -> BTreeMap<String, String> {
    let mut client = etcd.client().await;
    let deadline = Instant::now() + LIMIT;
    let got = loop {
        match client
            .get(PREFIX, Some(GetOptions::new().with_prefix()))
            .await
        {
            Ok(got) => break got,
            Err(e) => assert!(Instant::now() < deadline, "reading {PREFIX}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    got.kvs()
        .iter()
        .map(|kv| {
            (
                kv.key_str().unwrap().to_string(),
                kv.value_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Puts `value` at [`KEY`] (retrying while a member does not answer); the put's revision.
async fn put_value(etcd: &EtcdServer, value: &str) -> i64 {
    let mut client = etcd.client().await;
    let deadline = Instant::now() + LIMIT;
    loop {
        match client.put(KEY, value, None).await {
            Ok(put) => return put.header().unwrap().revision(),
            Err(e) => assert!(Instant::now() < deadline, "put {value}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A directory for the commands' marks and, in it, a `block` file they wait on while it
/// exists.
fn gate() -> (tempfile::TempDir, PathBuf) {
    let gate = tempfile::tempdir().unwrap();
    let block = gate.path().join("block");
    std::fs::write(&block, "").unwrap();
    (gate, block)
}

/// The nodes with a key under `kind` (`done`, `queue`) of rollout `revision`.
async fn nodes_in(etcd: &EtcdServer, kind: &str, revision: i64) -> Vec<String> {
    let dir = format!("{PREFIX}{kind}/{revision:020}/");
    group_keys(etcd)
        .await
        .keys()
        .filter_map(|k| k.strip_prefix(&dir).map(str::to_string))
        .collect()
}

/// The nodes done with rollout `revision`.
async fn done_in(etcd: &EtcdServer, revision: i64) -> Vec<String> {
    nodes_in(etcd, "done", revision).await
}

/// Waits until `count` nodes are done with rollout `revision`.
async fn wait_done(etcd: &EtcdServer, revision: i64, count: usize, fleet: &Fleet) {
    let deadline = Instant::now() + LIMIT;
    while done_in(etcd, revision).await.len() < count {
        assert!(
            Instant::now() < deadline,
            "{:?} done with {revision}, not {count}\n{}",
            done_in(etcd, revision).await,
            fleet.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The nodes queued in rollout `revision`.
async fn queued_in(etcd: &EtcdServer, revision: i64) -> Vec<String> {
    nodes_in(etcd, "queue", revision).await
}

#[tokio::test]
async fn slots_are_never_exceeded_and_canaries_go_first() {
    let etcd = EtcdServer::start().await;
    put_value(&etcd, "v0").await;
    let plan = Plan::new(6, 2, 1);
    let mut fleet = Fleet::new(&plan);
    fleet.start(&etcd, &[]);
    for i in 0..plan.nodes {
        fleet.wait_log(i, "watching").await;
    }
    for value in ["v1", "v2"] {
        let revision = put_value(&etcd, value).await;
        wait_done(&etcd, revision, plan.nodes, &fleet).await;
        fleet.wait_all(value).await;
        let logs = || fleet.logs();
        let turns: Vec<Turn> = fleet
            .turns()
            .into_iter()
            .filter(|t| t.revision == revision)
            .collect();
        assert_eq!(
            turns.len(),
            plan.nodes,
            "one turn per node: {turns:#?}\n{}",
            logs()
        );
        assert_window(&turns, 2, 1, &logs);
        // Every reload and health check of the change ran inside its node's turn.
        for (at, node, _, content) in fleet.events() {
            if content != format!("value={value}") {
                continue;
            }
            let inside = turns
                .iter()
                .any(|t| t.node == node && t.start <= at && t.end.is_some_and(|end| at <= end));
            assert!(inside, "{node} ran a command outside its turn\n{}", logs());
        }
        assert_eq!(
            fleet.who("reload", &format!("value={value}")).len(),
            plan.nodes
        );
        // The rollout is over: every node done, nobody queued.
        let keys = group_keys(&etcd).await;
        let done = format!("{PREFIX}done/{revision:020}/");
        assert_eq!(
            keys.keys().filter(|k| k.starts_with(&done)).count(),
            plan.nodes
        );
        let queue = format!("{PREFIX}queue/");
        assert!(!keys.keys().any(|k| k.starts_with(&queue)), "{keys:#?}");
    }
    // Starting the second rollout cleared the first one's markers.
    let keys = group_keys(&etcd).await;
    assert_eq!(
        keys.keys()
            .filter(|k| k.starts_with(&format!("{PREFIX}rollouts/")))
            .count(),
        1,
        "{keys:#?}"
    );
}

#[tokio::test]
async fn a_failing_canary_holds_the_rest_until_a_good_value() {
    let etcd = EtcdServer::start().await;
    put_value(&etcd, "v0").await;
    let mut plan = Plan::new(4, 3, 1);
    plan.health = "! grep -q bad \"$RECONFIG_TARGET\"".into();
    let mut fleet = Fleet::new(&plan);
    fleet.start(&etcd, &["--metrics-addr", "127.0.0.1:0"]);
    for i in 0..plan.nodes {
        fleet.wait_log(i, "watching").await;
    }
    let held = put_value(&etcd, "bad").await;
    for i in 0..plan.nodes {
        fleet.wait_log(i, &format!("held at revision {held}")).await;
    }
    // The canary swapped, failed its health check, put v0 back and reloaded it; nobody else
    // changed their file or reloaded.
    let canaries = fleet.who("reload", "value=bad");
    assert_eq!(canaries.len(), 1, "{}", fleet.logs());
    let canary = &canaries[0];
    assert_eq!(fleet.who("reload", "value=v0"), [canary.as_str()]);
    for i in 0..plan.nodes {
        assert_eq!(fleet.content(i), "value=v0\n", "{}", fleet.logs());
    }
    // Every node reports it: /healthz degraded with the node and the reason, the metric.
    for (i, node) in fleet.nodes.iter().enumerate() {
        let daemon = node.daemon.as_ref().unwrap();
        let addr = metrics_addr(daemon).await;
        let (_, health) = poll_get(&addr, "/healthz", daemon, |_, body| {
            body.contains(&format!("rollout held at revision {held}: {canary}: "))
        })
        .await;
        let health: Value = serde_json::from_str(&health).unwrap();
        let web = &health["entries"]["web"];
        assert_eq!(web["applied"], false, "{health}");
        assert_eq!(web["rollout"]["state"], "held");
        assert_eq!(web["rollout"]["node"], canary.as_str());
        assert!(web["rollout"]["reason"]
            .as_str()
            .unwrap()
            .contains("health command"));
        assert_eq!(
            health["status"], "degraded",
            "{}: {health}",
            fleet.nodes[i].name
        );
        let (_, metrics) = poll_get(&addr, "/metrics", daemon, |_, body| {
            body.contains("reconfig_entry_rollout_held{entry=\"web\"} 1")
        })
        .await;
        assert!(metrics.contains("reconfig_entry_applied{entry=\"web\"} 0"));
    }
    // reconfig rollout status says so, and exits 1.
    let status = run_reconfig(["rollout", "status", GROUP, "--endpoints", &etcd.endpoint]).await;
    assert_eq!(status.code, 1, "{}{}", status.stdout, status.stderr);
    assert!(
        status.stdout.starts_with(&format!(
            "group {GROUP}: rollout of revision {held}, started by "
        )),
        "{}",
        status.stdout
    );
    assert!(status.stdout.contains(": HELD\n"), "{}", status.stdout);
    assert!(
        status.stdout.contains(&format!("  failed: {canary}: ")),
        "{}",
        status.stdout
    );
    // The next good value rolls out normally.
    let good = put_value(&etcd, "good").await;
    wait_done(&etcd, good, plan.nodes, &fleet).await;
    fleet.wait_all("good").await;
    let turns: Vec<Turn> = fleet
        .turns()
        .into_iter()
        .filter(|t| t.end.is_some())
        .collect();
    assert_eq!(turns.len(), plan.nodes, "{}", fleet.logs());
    assert_window(&turns, 3, 1, &|| fleet.logs());
    let status = run_reconfig(["rollout", "status", GROUP, "--endpoints", &etcd.endpoint]).await;
    assert_eq!(status.code, 0, "{}{}", status.stdout, status.stderr);
    assert!(
        status
            .stdout
            .contains(&format!("  done ({}): ", plan.nodes)),
        "{}",
        status.stdout
    );
    for node in &fleet.nodes {
        let addr = metrics_addr(node.daemon.as_ref().unwrap()).await;
        poll_get(
            &addr,
            "/healthz",
            node.daemon.as_ref().unwrap(),
            |code, body| {
                let health: Value = serde_json::from_str(body).unwrap_or_default();
                code == 200 && health["status"] == "healthy"
            },
        )
        .await;
    }
}

#[tokio::test]
async fn a_killed_slot_holder_frees_its_place_when_its_lease_expires() {
    let etcd = EtcdServer::start().await;
    put_value(&etcd, "v0").await;
    let mut plan = Plan::new(3, 1, 0);
    let (gate, block) = gate();
    // Each node's health check says it started, then waits while `block` exists.
    plan.health = format!(
        "touch '{}/started-'\"$RECONFIG_ID\"\"$$\"; while [ -e '{}' ]; do sleep 0.02; done",
        gate.path().display(),
        block.display()
    );
    let mut fleet = Fleet::new(&plan);
    fleet.start(&etcd, &["--rollout-ttl", "5s"]);
    for i in 0..plan.nodes {
        fleet.wait_log(i, "watching").await;
    }
    let revision = put_value(&etcd, "v1").await;
    let started = |fleet: &Fleet| fleet.who("health", "value=v1");
    let first = eventually(LIMIT, || !started(&fleet).is_empty()).await;
    assert!(first, "nobody started\n{}", fleet.logs());
    let holder = started(&fleet)[0].clone();
    let victim = fleet.nodes.iter().position(|n| n.name == holder).unwrap();
    fleet.nodes[victim]
        .daemon
        .as_ref()
        .unwrap()
        .signal(Signal::SIGKILL);
    let killed = Instant::now();
    let killed_at = now_nanos();
    // The next node's turn comes once the victim's lease expired.
    let next = eventually(LIMIT, || started(&fleet).len() >= 2).await;
    assert!(
        next,
        "the rollout stopped with its slot holder\n{}",
        fleet.logs()
    );
    let waited = killed.elapsed();
    let turns = fleet.turns();
    let second = turns.iter().find(|t| t.node != holder).unwrap();
    assert!(second.start > killed_at, "{turns:#?}");
    eprintln!("the next node's turn came {waited:?} after the kill (--rollout-ttl 5s)");
    std::fs::remove_file(&block).unwrap();
    let survivors: Vec<usize> = (0..plan.nodes).filter(|i| *i != victim).collect();
    wait_done(&etcd, revision, survivors.len(), &fleet).await;
    let all = eventually(LIMIT, || {
        survivors.iter().all(|i| fleet.content(*i) == "value=v1\n")
    })
    .await;
    assert!(all, "{}", fleet.logs());
    // One at a time, the victim's turn ending when it died.
    let mut turns = fleet.turns();
    for turn in &mut turns {
        if turn.node == holder {
            turn.end = Some(killed_at);
        }
    }
    assert_window(&turns, 1, 0, &|| fleet.logs());
    let keys = group_keys(&etcd).await;
    let done = format!("{PREFIX}done/{revision:020}/");
    let done: Vec<&String> = keys.keys().filter(|k| k.starts_with(&done)).collect();
    assert_eq!(done.len(), survivors.len(), "{keys:#?}");
    assert!(!done.iter().any(|k| k.ends_with(&holder)), "{keys:#?}");
}

/// A node killed during its health check leaves a change that was never found healthy: at
/// its next start the previous content is put back, and the change takes its turn again,
/// checked — here it fails, so the rollout is held and the target keeps the old value.
#[tokio::test]
async fn a_node_killed_in_its_health_check_takes_its_turn_again() {
    let etcd = EtcdServer::start().await;
    put_value(&etcd, "v0").await;
    let mut plan = Plan::new(1, 1, 0);
    let (gate, block) = gate();
    let healthy = gate.path().join("healthy");
    // Waits while `block` exists, then passes only once `healthy` exists.
    plan.health = format!(
        "while [ -e '{}' ]; do sleep 0.02; done; test -e '{}'",
        block.display(),
        healthy.display()
    );
    let mut fleet = Fleet::new(&plan);
    fleet.start(&etcd, &["--rollout-ttl", "5s"]);
    fleet.wait_log(0, "watching").await;
    put_value(&etcd, "v1").await;
    let checking = eventually(LIMIT, || fleet.who("health", "value=v1").len() == 1).await;
    assert!(checking, "no health check began\n{}", fleet.logs());
    let mut daemon = fleet.nodes[0].daemon.take().unwrap();
    daemon.signal(Signal::SIGKILL);
    daemon.wait_exit(LIMIT).await;
    assert_eq!(fleet.content(0), "value=v1\n");
    std::fs::remove_file(&block).unwrap();

    fleet.start(&etcd, &["--rollout-ttl", "5s"]);
    let held = eventually(LIMIT, || fleet.log(0).contains("held at revision")).await;
    assert!(held, "the change was not checked again\n{}", fleet.logs());
    let checks = fleet
        .events()
        .into_iter()
        .filter(|(_, _, what, content)| what == "health" && content == "value=v1")
        .count();
    assert_eq!(checks, 2, "{}", fleet.logs());
    assert_eq!(fleet.content(0), "value=v0\n", "{}", fleet.logs());
}

#[tokio::test]
async fn a_newer_change_supersedes_a_waiting_one() {
    let etcd = EtcdServer::start().await;
    put_value(&etcd, "v0").await;
    let mut plan = Plan::new(4, 1, 1);
    let (_gate, block) = gate();
    // v1's canary waits in its health check while `block` exists.
    plan.health = format!(
        "if grep -q v1 \"$RECONFIG_TARGET\"; then while [ -e '{}' ]; do sleep 0.02; done; fi",
        block.display()
    );
    let mut fleet = Fleet::new(&plan);
    fleet.start(&etcd, &[]);
    for i in 0..plan.nodes {
        fleet.wait_log(i, "watching").await;
    }
    put_value(&etcd, "v1").await;
    let canary = eventually(LIMIT, || fleet.who("health", "value=v1").len() == 1).await;
    assert!(canary, "{}", fleet.logs());
    let canary = fleet.who("health", "value=v1")[0].clone();
    let v2 = put_value(&etcd, "v2").await;
    // The waiting nodes move to v2's rollout before the canary is done with v1.
    let moved = async {
        let deadline = Instant::now() + LIMIT;
        while Instant::now() < deadline {
            if queued_in(&etcd, v2).await.len() == plan.nodes - 1 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    };
    assert!(
        moved.await,
        "{:#?}\n{}",
        group_keys(&etcd).await,
        fleet.logs()
    );
    assert!(!queued_in(&etcd, v2).await.contains(&canary));
    std::fs::remove_file(&block).unwrap();
    wait_done(&etcd, v2, plan.nodes, &fleet).await;
    fleet.wait_all("v2").await;
    // Only the canary ever had v1; the window held across both rollouts.
    assert_eq!(
        fleet.who("reload", "value=v1"),
        [canary.as_str()],
        "{}",
        fleet.logs()
    );
    assert_eq!(fleet.who("reload", "value=v2").len(), plan.nodes);
    let turns = fleet.turns();
    assert_eq!(turns.len(), plan.nodes + 1, "{turns:#?}");
    assert_eq!(
        most_at_once(&turns, u128::MAX),
        1,
        "{turns:#?}\n{}",
        fleet.logs()
    );
}

#[tokio::test]
async fn an_etcd_outage_mid_rollout_keeps_every_previous_file() {
    let mut etcd = EtcdServer::cluster(3).await;
    put_value(&etcd, "v0").await;
    let mut plan = Plan::new(4, 1, 1);
    let (_gate, block) = gate();
    plan.health = format!("while [ -e '{}' ]; do sleep 0.02; done", block.display());
    let mut fleet = Fleet::new(&plan);
    fleet.start(&etcd, &[]);
    for i in 0..plan.nodes {
        fleet.wait_log(i, "watching").await;
    }
    let v1 = put_value(&etcd, "v1").await;
    let canary = eventually(LIMIT, || fleet.who("health", "value=v1").len() == 1).await;
    assert!(canary, "{}", fleet.logs());
    let canary = fleet.who("health", "value=v1")[0].clone();
    let c = fleet.nodes.iter().position(|n| n.name == canary).unwrap();
    for i in 0..etcd.size() {
        etcd.kill(i);
    }
    // The canary finishes its turn but cannot say so; the others wait without etcd.
    std::fs::remove_file(&block).unwrap();
    fleet.wait_log(c, "writing that this node is done").await;
    for i in (0..plan.nodes).filter(|i| *i != c) {
        fleet.wait_log(i, "watch lost").await;
    }
    for i in (0..plan.nodes).filter(|i| *i != c) {
        assert_eq!(fleet.content(i), "value=v0\n", "{}", fleet.logs());
    }
    assert_eq!(fleet.who("reload", "value=v1"), [canary.as_str()]);
    for i in 0..etcd.size() {
        etcd.restart(i);
    }
    wait_done(&etcd, v1, plan.nodes, &fleet).await;
    fleet.wait_all("v1").await;
    let turns = fleet.turns();
    assert_eq!(turns.len(), plan.nodes, "{turns:#?}");
    assert_window(&turns, 1, 1, &|| fleet.logs());
}

#[tokio::test]
async fn onetime_takes_part_and_fails_when_held_or_its_turn_does_not_come() {
    let etcd = EtcdServer::start().await;
    put_value(&etcd, "v1").await;
    let mut plan = Plan::new(2, 1, 1);
    plan.health = "! grep -q bad \"$RECONFIG_TARGET\"".into();
    let fleet = Fleet::new(&plan);
    let once = |i: usize, extra: &[&str]| {
        let extra = [&["--onetime"][..], extra].concat();
        run_reconfig(fleet.args(i, &etcd, &extra))
    };
    let run = once(0, &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(fleet.content(0), "value=v1\n");
    assert_eq!(fleet.who("reload", "value=v1"), ["node0"]);
    assert_eq!(fleet.who("health", "value=v1"), ["node0"]);
    // Nothing to do: no turn asked for.
    let before = group_keys(&etcd).await;
    let run = once(0, &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(group_keys(&etcd).await, before);
    // A bad value: node0 fails its health check and holds the rollout; node1 then fails
    // without touching its target.
    let held = put_value(&etcd, "bad").await;
    let run = once(0, &[]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(fleet.content(0), "value=v1\n");
    let run = once(1, &[]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "rollout of group {GROUP} held at revision {held}: node0: "
        )),
        "{}",
        run.stderr
    );
    assert_eq!(fleet.content(1), "value=v0\n");
    // A slot taken by a node that never finishes: the wait ends at --rollout-wait.
    let good = put_value(&etcd, "good").await;
    let mut client = etcd.client().await;
    let lease = client.lease_grant(60, None).await.unwrap().id();
    let options = etcd_client::PutOptions::new().with_lease(lease);
    client
        .put(format!("{PREFIX}rollouts/{good:020}"), "{}", None)
        .await
        .unwrap();
    client
        .put(
            format!("{PREFIX}queue/{good:020}/other"),
            r#"{"state":"running"}"#,
            Some(options),
        )
        .await
        .unwrap();
    let run = once(1, &["--rollout-wait", "1s"]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("no turn within 1s"), "{}", run.stderr);
    assert_eq!(fleet.content(1), "value=v0\n");
    assert_eq!(
        queued_in(&etcd, good).await,
        ["other"],
        "node1 left the queue"
    );
    client.lease_revoke(lease).await.unwrap();
    let run = once(1, &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(fleet.content(1), "value=good\n");
}

#[tokio::test]
async fn an_entry_without_rollout_writes_nothing_to_etcd() {
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("plain.conf");
    let entry = json!({"id": "plain", "key": KEY, "source": "t", "target": target});
    let cfg = cfgdir(
        dir.path(),
        &[("plain", entry.to_string())],
        &[("t", TEMPLATE)],
    );
    put_value(&etcd, "v0").await;
    let args = [
        "--cfgdir",
        cfg.to_str().unwrap(),
        "--endpoints",
        &etcd.endpoint,
    ];
    let daemon = Daemon::start(args, &dir.path().join("log"));
    wait_for_content(&target, "value=v0\n", LIMIT, || daemon.log()).await;
    let last = put_value(&etcd, "v1").await;
    wait_for_content(&target, "value=v1\n", LIMIT, || daemon.log()).await;
    // etcd's revision moves with every write: still at the test's own last put.
    let mut client = etcd.client().await;
    let now = client.get("/", None).await.unwrap();
    assert_eq!(now.header().unwrap().revision(), last, "{}", daemon.log());
    let run = run_reconfig([
        "--onetime",
        "--cfgdir",
        cfg.to_str().unwrap(),
        "--endpoints",
        &etcd.endpoint,
    ])
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let now = client.get("/", None).await.unwrap();
    assert_eq!(now.header().unwrap().revision(), last);
}

/// A preview takes no part in rollouts: `--notreally` prints the change's diff at once and
/// writes nothing to etcd, runs no command and touches no file.
#[tokio::test]
async fn a_notreally_daemon_previews_a_rollout_change_and_writes_nothing() {
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("web.conf");
    std::fs::write(&target, "value=v0\n").unwrap();
    let marks = dir.path().join("marks");
    let entry = json!({
        "id": "web", "key": KEY, "source": "t", "target": target,
        "reloadcmd": format!("echo reload >> '{}'", marks.display()),
        "rollout": {"group": "edge", "healthcmd": format!("echo health >> '{}'", marks.display())},
    });
    let cfg = cfgdir(
        dir.path(),
        &[("web", entry.to_string())],
        &[("t", TEMPLATE)],
    );
    put_value(&etcd, "v0").await;
    let args = [
        "--notreally",
        "--cfgdir",
        cfg.to_str().unwrap(),
        "--endpoints",
        &etcd.endpoint,
    ];
    let daemon = Daemon::start(args, &dir.path().join("log"));
    assert!(
        eventually(LIMIT, || daemon.log().contains("watching")).await,
        "{}",
        daemon.log()
    );
    let last = put_value(&etcd, "v1").await;
    assert!(
        eventually(LIMIT, || daemon.log().contains("-value=v0\n+value=v1\n")).await,
        "{}",
        daemon.log()
    );
    let mut client = etcd.client().await;
    let now = client.get("/", None).await.unwrap();
    assert_eq!(now.header().unwrap().revision(), last, "{}", daemon.log());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "value=v0\n");
    assert!(!marks.exists(), "{}", daemon.log());
}

#[tokio::test]
async fn bad_rollout_fields_are_one_line_each_and_touch_nothing() {
    let etcd = EtcdServer::start().await;
    put_value(&etcd, "v1").await;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("web.conf");
    std::fs::write(&target, "old\n").unwrap();
    let entry = json!({
        "id": "web", "key": KEY, "source": "t", "target": target,
        "rollout": {"max_parallel": 0, "canary": "two", "bake": "soon", "grup": "x"}
    });
    let cfg = cfgdir(
        dir.path(),
        &[("web", entry.to_string())],
        &[("t", TEMPLATE)],
    );
    let run = run_reconfig([
        "--onetime",
        "--cfgdir",
        cfg.to_str().unwrap(),
        "--endpoints",
        &etcd.endpoint,
    ])
    .await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    for field in [
        "rollout.grup",
        "rollout.max_parallel",
        "rollout.canary",
        "rollout.bake",
    ] {
        let lines: Vec<&str> = run.stderr.lines().filter(|l| l.contains(field)).collect();
        assert_eq!(lines.len(), 1, "{field}: {}", run.stderr);
        assert!(lines[0].contains("web.json"), "{}", lines[0]);
    }
    assert_eq!(read(&target), "old\n");
    assert!(group_keys(&etcd).await.is_empty());
}

#[tokio::test]
async fn a_node_needs_readwrite_on_the_rollout_prefix() {
    let etcd = EtcdServer::start().await;
    put_value(&etcd, "v1").await;
    let mut root = etcd.client().await;
    for (user, rollout) in [("node", true), ("reader", false)] {
        root.role_add(user).await.unwrap();
        let data = Permission::read(KEY).with_prefix();
        root.role_grant_permission(user, data).await.unwrap();
        if rollout {
            let keys = Permission::read_write("/reconfig/rollout/").with_prefix();
            root.role_grant_permission(user, keys).await.unwrap();
        }
        root.user_add(user, "pw", None).await.unwrap();
        root.user_grant_role(user, user).await.unwrap();
    }
    etcd.enable_auth().await;
    let plan = Plan::new(2, 1, 1);
    let fleet = Fleet::new(&plan);
    let once = |i: usize, user: &str| {
        let mut args = fleet.args(i, &etcd, &["--onetime", "--username", user]);
        args.extend(["--password".to_string(), "pw".to_string()]);
        run_reconfig(args)
    };
    let run = once(0, "node").await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(fleet.content(0), "value=v1\n");
    let run = once(1, "reader").await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let refused: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("permission denied"))
        .collect();
    assert_eq!(refused.len(), 1, "{}", run.stderr);
    assert!(
        refused[0].contains(&format!("rollout of group {GROUP}")),
        "{}",
        refused[0]
    );
    assert_eq!(fleet.content(1), "value=v0\n");
}
