//! The fleet: N daemons, each with its own config dir holding two entries — `shared` on the
//! tree every node watches and `own` on the node's private tree — and its own target dir.
//! One recursive inotify watch on the common parent of the target dirs wakes the waits.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{binary, tcp_connections_to, Daemon};
use crate::fixture::{config, entry, read, render};
use crate::measure::{cpu_seconds, memory, DirWatch, Memory};

/// The tree every daemon's `shared` entry renders.
pub const SHARED: &str = "/fleet/shared";
/// Keys in the shared tree.
pub const SHARED_KEYS: usize = 10;

/// Node `i`'s private tree, rendered by its `own` entry.
pub fn own_prefix(i: usize) -> String {
    format!("/fleet/node/{i:03}")
}

/// A key of the shared tree.
pub fn shared_key(k: usize) -> String {
    format!("{SHARED}/k{:02}", k % SHARED_KEYS)
}

/// The key of node `i`'s tree the benchmark changes.
pub fn own_key(i: usize) -> String {
    format!("{}/name", own_prefix(i))
}

/// What the fleet should hold: the shared tree and every node's tree, as put to etcd.
#[derive(Clone)]
pub struct Trees {
    pub shared: BTreeMap<String, String>,
    pub own: Vec<BTreeMap<String, String>>,
}

impl Trees {
    /// The first state: a 10-key shared tree and two keys per node.
    pub fn initial(n: usize) -> Trees {
        let shared = (0..SHARED_KEYS)
            .map(|k| (shared_key(k), format!("s{k}")))
            .collect();
        let own = (0..n)
            .map(|i| {
                BTreeMap::from([
                    (own_key(i), format!("node{i:03}")),
                    (format!("{}/role", own_prefix(i)), "web".to_string()),
                ])
            })
            .collect();
        Trees { shared, own }
    }

    /// Every key of every tree.
    pub fn all_pairs(&self) -> BTreeMap<String, String> {
        let mut all = self.shared.clone();
        for tree in &self.own {
            all.extend(tree.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        all
    }
}

/// The daemons, their files and the watch on them.
pub struct Fleet {
    pub n: usize,
    root: PathBuf,
    out: PathBuf,
    watch: DirWatch,
    daemons: Vec<Daemon>,
    pids: Vec<u32>,
}

/// When targets became right, and which never did.
pub struct Converged {
    /// When the last one did (None: some never did within the limit).
    pub all: Option<Instant>,
    /// When each one was first seen right.
    pub at: BTreeMap<PathBuf, Instant>,
    /// How many never were.
    pub missing: usize,
}

impl Fleet {
    /// Lays out `n` nodes under `root`: `nodes/NNN/cfg` (conf.d, templates) and the
    /// daemon's log there, and `out/NNN/` for its two targets; starts the watch on `out`.
    pub fn prepare(root: &Path, n: usize) -> Fleet {
        assert!(n <= 1000, "node names have three digits");
        let out = root.join("out");
        for i in 0..n {
            let node = root.join(format!("nodes/{i:03}"));
            let targets = out.join(format!("{i:03}"));
            std::fs::create_dir_all(&node).unwrap();
            std::fs::create_dir_all(&targets).unwrap();
            config(
                &node,
                &[
                    entry(&targets, "shared", SHARED, ""),
                    entry(&targets, "own", &own_prefix(i), ""),
                ],
            );
        }
        let watch = DirWatch::recursive(&out);
        Fleet {
            n,
            root: root.to_path_buf(),
            out,
            watch,
            daemons: Vec::new(),
            pids: Vec::new(),
        }
    }

    /// Node `i`'s `shared` target.
    pub fn shared_target(&self, i: usize) -> PathBuf {
        self.out.join(format!("{i:03}/shared.conf"))
    }

    /// Node `i`'s `own` target.
    pub fn own_target(&self, i: usize) -> PathBuf {
        self.out.join(format!("{i:03}/own.conf"))
    }

    /// A new directory `name` beside the nodes, on the targets' file system.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let dir = self.root.join(name);
        std::fs::create_dir(&dir).expect("scratch directory");
        dir
    }

    /// Every `shared` target with the render of `trees.shared`.
    pub fn expect_shared(&self, trees: &Trees) -> BTreeMap<PathBuf, String> {
        let text = render(&trees.shared);
        (0..self.n)
            .map(|i| (self.shared_target(i), text.clone()))
            .collect()
    }

    /// All 2N targets with their renders of `trees`.
    pub fn expect_all(&self, trees: &Trees) -> BTreeMap<PathBuf, String> {
        let mut all = self.expect_shared(trees);
        for (i, tree) in trees.own.iter().enumerate() {
            all.insert(self.own_target(i), render(tree));
        }
        all
    }

    /// Starts every daemon (`bin --cfgdir ... --endpoints endpoints`), one after another.
    pub fn start(&mut self, bin: &str, endpoints: &str) {
        for i in 0..self.n {
            let node = self.root.join(format!("nodes/{i:03}"));
            let cfg = node.join("cfg");
            let daemon = Daemon::spawn(
                binary(bin),
                ["--cfgdir", cfg.to_str().unwrap(), "--endpoints", endpoints],
                &node.join("daemon.log"),
            );
            self.pids.push(daemon.pid().as_raw() as u32);
            self.daemons.push(daemon);
        }
    }

    /// Waits, woken by inotify, until every target in `expected` holds its text; notes
    /// when each first did.
    pub fn wait_right(&self, expected: &BTreeMap<PathBuf, String>, limit: Duration) -> Converged {
        let mut pending: BTreeSet<&PathBuf> = expected.keys().collect();
        let mut at = BTreeMap::new();
        let all = tokio::task::block_in_place(|| {
            self.watch.wait_until(limit, |changed| {
                // Nothing changed: the first call, or no event for a while; look at all.
                // A batch can name a file many times (events queued while nobody waited).
                let candidates: BTreeSet<&PathBuf> = if changed.is_empty() {
                    pending.clone()
                } else {
                    changed
                        .iter()
                        .filter_map(|p| pending.get(p).copied())
                        .collect()
                };
                let now = Instant::now();
                for path in candidates {
                    if read(path) == expected[path] {
                        pending.remove(path);
                        at.insert(path.clone(), now);
                    }
                }
                pending.is_empty()
            })
        });
        Converged {
            all,
            missing: pending.len(),
            at,
        }
    }

    /// CPU seconds (user + system) all daemons used since they started.
    pub fn cpu(&self) -> f64 {
        self.pids.iter().map(|&p| cpu_seconds(p)).sum()
    }

    /// Each daemon's memory now.
    pub fn memory(&self) -> Vec<Memory> {
        self.pids.iter().map(|&p| memory(p)).collect()
    }

    /// Each daemon's established TCP connections to any of `ports`.
    pub fn connections(&self, ports: &[u16]) -> Vec<usize> {
        self.pids
            .iter()
            .map(|&pid| {
                ports
                    .iter()
                    .map(|&port| tcp_connections_to(pid, port))
                    .sum()
            })
            .collect()
    }

    /// Kills every daemon still running and waits for it to exit (its connections closed).
    pub async fn stop(&mut self) {
        for daemon in &mut self.daemons {
            if daemon.alive() {
                daemon.signal(nix::sys::signal::Signal::SIGKILL);
                daemon.wait_exit(Duration::from_secs(10)).await;
            }
        }
    }

    /// How many daemons still run.
    pub fn alive(&mut self) -> usize {
        self.daemons
            .iter_mut()
            .map(|d| usize::from(d.alive()))
            .sum()
    }

    /// What the daemons logged: lines per level, lost watches, and the most frequent
    /// warning and error messages (digits masked) with how many daemons logged them.
    pub fn log_survey(&self) -> Value {
        let mut levels: BTreeMap<&str, usize> =
            ["ERROR", "WARN", "INFO", "DEBUG"].map(|l| (l, 0)).into();
        let (mut lost, mut daemons_lost) = (0, 0);
        let mut messages: BTreeMap<String, (usize, BTreeSet<usize>)> = BTreeMap::new();
        for (i, daemon) in self.daemons.iter().enumerate() {
            let log = daemon.log();
            let lost_here = log.lines().filter(|l| l.contains("watch lost")).count();
            lost += lost_here;
            daemons_lost += usize::from(lost_here > 0);
            for line in log.lines() {
                let Some(level) = ["ERROR", "WARN", "INFO", "DEBUG"]
                    .into_iter()
                    .find(|l| line.contains(&format!(" {l} ")))
                else {
                    continue;
                };
                *levels.entry(level).or_default() += 1;
                if level == "ERROR" || level == "WARN" {
                    let text = line.split_once(&format!(" {level} ")).unwrap().1;
                    let masked: String = text
                        .chars()
                        .map(|c| if c.is_ascii_digit() { '#' } else { c })
                        .collect();
                    let slot = messages.entry(format!("{level} {masked}")).or_default();
                    slot.0 += 1;
                    slot.1.insert(i);
                }
            }
        }
        let mut top: Vec<_> = messages.into_iter().collect();
        top.sort_by_key(|(_, (count, _))| std::cmp::Reverse(*count));
        let top: Vec<Value> = top
            .into_iter()
            .take(8)
            .map(|(message, (lines, daemons))| {
                json!({ "message": message, "lines": lines, "daemons": daemons.len() })
            })
            .collect();
        json!({
            "lines_per_level": levels,
            "watch_lost_lines": lost,
            "daemons_with_watch_lost": daemons_lost,
            "top_warnings": top,
        })
    }
}
