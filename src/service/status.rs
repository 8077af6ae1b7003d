//! What the running process knows about its own health, written by the workers, the watch
//! and the modes, and read by the monitoring endpoints (`metrics`).
//!
//! Every pass over an entry is recorded with its outcome (unchanged, changed, failed and
//! why), its etcd revision and when it happened; the watch loop records whether etcd is
//! reachable and how often the watch had to be re-established. Two views come out of it:
//! Prometheus counters and gauges in the OpenMetrics text format, and a health report that
//! turns unhealthy when etcd has been unreachable, or an entry has been failing, for longer
//! than `--unhealthy-after`. An entry that has not rendered yet counts as failing from the
//! moment it was loaded, so a daemon stuck before its first render turns unhealthy too.
//!
//! Short of unhealthy, an entry is *degraded* while it is not applied — its target does not
//! hold the render of the newest data it saw, or its service's reload keeps failing — and
//! the report says why; the metrics show, per entry, whether it is applied, whether a
//! reload is due or failing, the revision applied and the newest seen, the failures in a
//! row and the time since the last success.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use serde::Serialize;

/// Why a pass over an entry failed, coarsely: what an operator has to look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureKind {
    /// The data or the template: a missing key, a binary value, a template error.
    Render,
    /// The target could not be read, staged or swapped in.
    Write,
    /// `checkcmd` rejected the new file (before or after the swap).
    Check,
    /// The file changed but `reloadcmd` failed.
    Reload,
    /// The node could not take part in its group's rollout: etcd refused a request.
    Rollout,
}

/// The outcome of one pass over an entry, as the status registry counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pass {
    /// The target already held the rendered bytes (or `--notreally` previewed a change).
    Unchanged,
    /// The target was replaced (its reload is recorded on its own, [`Status::record_reload`]).
    Changed,
    /// The pass failed; the target holds the last good content.
    Failed {
        /// What failed.
        kind: FailureKind,
        /// The error, as logged.
        message: String,
    },
}

/// The process-wide series; clones share their values with the registry.
#[derive(Default)]
struct Series {
    watch_reconnects: Counter,
    revision: Gauge,
    etcd_up: Gauge,
}

impl Series {
    /// The registry: these series, and the per-entry ones read from `state` at each scrape.
    fn registry(&self, state: Arc<Mutex<State>>) -> Registry {
        let mut registry = Registry::with_prefix("reconfig");
        registry.register_collector(Box::new(PerEntry(state)));
        registry.register(
            "watch_reconnects",
            "Times the etcd watch was re-established after it broke",
            self.watch_reconnects.clone(),
        );
        registry.register(
            "revision",
            "The newest etcd revision a target was rendered from",
            self.revision.clone(),
        );
        registry.register(
            "etcd_up",
            "1 while etcd answers (connected; after a break, once the watch is re-established and stable), else 0",
            self.etcd_up.clone(),
        );
        registry
    }
}

/// A per-entry series: its name, its help, and how its value is read.
type EntrySeries<T, V> = (&'static str, &'static str, fn(&T) -> V);

/// The per-entry counters: each counted in the entry's state, read at each scrape.
const ENTRY_COUNTERS: [EntrySeries<Counts, u64>; 5] = [
    (
        "renders",
        "Passes over an entry: read, render, apply",
        |c| c.renders,
    ),
    (
        "render_failures",
        "Passes over an entry that failed, whatever failed",
        |c| c.render_failures,
    ),
    (
        "check_failures",
        "Passes that failed because checkcmd rejected the file",
        |c| c.check_failures,
    ),
    (
        "reloads",
        "Reloads asked for after a change: reloadcmd runs and reloadsignals",
        |c| c.reloads,
    ),
    ("reload_failures", "reloadcmd runs that failed", |c| {
        c.reload_failures
    }),
];

/// The per-entry gauges, each derived from the entry's state at each scrape.
const ENTRY_GAUGES: [EntrySeries<EntryState, i64>; 9] = [
    (
        "entry_failing",
        "1 while an entry's last pass failed (or it has not rendered yet), else 0",
        |e| i64::from(e.failing_since.is_some()),
    ),
    (
        "entry_applied",
        "1 while an entry's target holds the render of the newest data it saw, else 0",
        |e| i64::from(e.applied),
    ),
    (
        "entry_reload_pending",
        "1 while a reload of an entry's service is due (waiting, running or retried), else 0",
        |e| i64::from(e.reload != ReloadState::Done),
    ),
    (
        "entry_reload_failing",
        "1 while the last reload of an entry's service failed, else 0",
        |e| i64::from(e.reload == ReloadState::Failing),
    ),
    (
        "entry_revision_applied",
        "The etcd revision an entry's target was last brought up to date from",
        |e| e.revision.unwrap_or(0),
    ),
    (
        "entry_revision_seen",
        "The newest etcd revision an entry rendered from, applied or not",
        |e| e.seen.unwrap_or(0),
    ),
    (
        "entry_consecutive_failures",
        "Passes and reloads of an entry that failed since it was last fully applied",
        |e| i64::from(e.consecutive_failures),
    ),
    (
        "entry_rollout_waiting",
        "1 while an entry's change waits for its turn in its group's rollout, else 0",
        |e| i64::from(e.rollout.as_ref().is_some_and(|r| r.state != "held")),
    ),
    (
        "entry_rollout_held",
        "1 while the rollout of an entry's change is held by a failed node, else 0",
        |e| i64::from(e.rollout.as_ref().is_some_and(|r| r.state == "held")),
    ),
];

/// The per-entry series, written from the entries' states when Prometheus asks: nothing
/// per entry is kept for them in between, and recording a pass touches no series.
#[derive(Debug)]
struct PerEntry(Arc<Mutex<State>>);

impl Collector for PerEntry {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let state = lock(&self.0);
        if state.entries.is_empty() {
            return Ok(());
        }
        for (name, help, value) in ENTRY_COUNTERS {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (id, entry) in &state.entries {
                let counter = ConstCounter::new(value(&entry.counts));
                counter.encode(family.encode_family(&[("entry", id.as_str())])?)?;
            }
        }
        for (name, help, value) in ENTRY_GAUGES {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (id, entry) in &state.entries {
                let gauge = ConstGauge::new(value(entry));
                gauge.encode(family.encode_family(&[("entry", id.as_str())])?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "entry_seconds_since_success",
            "Seconds since an entry's last good pass (since it was loaded, before one)",
            None,
            MetricType::Gauge,
        )?;
        for (id, entry) in &state.entries {
            let gauge = ConstGauge::new(entry.since_success().as_secs_f64());
            gauge.encode(family.encode_family(&[("entry", id.as_str())])?)?;
        }
        Ok(())
    }
}

/// A moment, both for measuring how long ago (monotonic) and for showing (wall clock).
#[derive(Debug, Clone, Copy)]
struct Moment {
    at: Instant,
    wall: SystemTime,
}

impl Moment {
    fn now() -> Moment {
        Moment {
            at: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    fn text(&self) -> String {
        humantime::format_rfc3339_millis(self.wall).to_string()
    }
}

/// The last failure of an entry.
#[derive(Debug, Clone)]
struct Failure {
    when: Moment,
    kind: FailureKind,
    message: String,
}

/// Where an entry's service stands with its reloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReloadState {
    /// No reload is due.
    Done,
    /// A reload is due: waiting for the reload interval, or running.
    Pending,
    /// The last reload failed; it is being retried.
    Failing,
}

/// Where an entry's change stands in its group's rollout, while it is not applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RolloutNote {
    /// The rollout group.
    pub group: String,
    /// The rollout's revision.
    pub revision: i64,
    /// `waiting` (for this node's turn) or `held` (a node failed the change).
    pub state: &'static str,
    /// Waiting: pending nodes before this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ahead: Option<usize>,
    /// Held: the node that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Held: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl RolloutNote {
    /// Waiting for this node's turn in the rollout of `revision`, `ahead` nodes before it.
    pub fn waiting(group: &str, revision: i64, ahead: usize) -> RolloutNote {
        RolloutNote {
            group: group.to_string(),
            revision,
            state: "waiting",
            ahead: Some(ahead),
            node: None,
            reason: None,
        }
    }

    /// The rollout of `revision` is held: `node` failed it for `reason`.
    pub fn held(group: &str, revision: i64, node: &str, reason: &str) -> RolloutNote {
        RolloutNote {
            group: group.to_string(),
            revision,
            state: "held",
            ahead: None,
            node: Some(node.to_string()),
            reason: Some(reason.to_string()),
        }
    }

    fn describe(&self) -> String {
        match (&self.node, &self.reason, self.ahead) {
            (Some(node), Some(reason), _) => format!(
                "rollout held at revision {}: {node}: {reason}",
                self.revision
            ),
            (_, _, ahead) => format!(
                "waiting for its turn in the rollout of revision {} (group {}, {} node(s) ahead)",
                self.revision,
                self.group,
                ahead.unwrap_or(0)
            ),
        }
    }
}

/// What the health report says about one entry.
#[derive(Debug, Clone)]
struct EntryState {
    loaded: Moment,
    last_outcome: Option<&'static str>,
    last_success: Option<Moment>,
    /// Boxed, as `rollout`: most entries have neither, and every entry's slot in the map
    /// would otherwise hold room for both.
    last_error: Option<Box<Failure>>,
    /// Since when the entry has had no good pass: loaded and not rendered yet, or failing.
    failing_since: Option<Moment>,
    revision: Option<i64>,
    seen: Option<i64>,
    reload: ReloadState,
    consecutive_failures: u32,
    rollout: Option<Box<RolloutNote>>,
    /// Whether the last pass left the target holding the render of the newest data.
    applied: bool,
    counts: Counts,
}

/// An entry's counters.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    renders: u64,
    render_failures: u64,
    check_failures: u64,
    reloads: u64,
    reload_failures: u64,
}

impl EntryState {
    fn loaded() -> EntryState {
        let now = Moment::now();
        EntryState {
            loaded: now,
            last_outcome: None,
            last_success: None,
            last_error: None,
            failing_since: Some(now),
            revision: None,
            seen: None,
            reload: ReloadState::Done,
            consecutive_failures: 0,
            rollout: None,
            applied: false,
            counts: Counts::default(),
        }
    }

    /// How long since the entry's last good pass (since it was loaded, before one).
    fn since_success(&self) -> Duration {
        self.last_success
            .as_ref()
            .unwrap_or(&self.loaded)
            .at
            .elapsed()
    }

    /// Why the entry is not applied, if it is not.
    fn degraded(&self) -> Option<String> {
        if self.reload == ReloadState::Failing {
            let error = self.last_error.as_ref().map_or("", |e| e.message.as_str());
            return Some(format!("reload failing: {error}"));
        }
        if let Some(note) = &self.rollout {
            return Some(note.describe());
        }
        match (&self.failing_since, &self.last_error) {
            (Some(_), Some(error)) => Some(format!("not applied: {}", error.message)),
            (Some(_), None) => Some("not rendered yet".to_string()),
            (None, _) => None,
        }
    }
}

/// Whether etcd is reachable, and since when.
#[derive(Debug, Clone, Copy)]
struct EtcdState {
    up: bool,
    since: Moment,
}

/// The mutable part of the registry.
#[derive(Debug)]
struct State {
    etcd: EtcdState,
    entries: BTreeMap<String, EntryState>,
}

impl State {
    /// The state of entry `id`, made when it was not loaded.
    fn entry(&mut self, id: &str) -> &mut EntryState {
        self.entries
            .entry(id.to_string())
            .or_insert_with(EntryState::loaded)
    }
}

/// The registry's state, locked; a panic elsewhere while it was held leaves it usable.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The process's health registry; share it with `Arc`.
pub struct Status {
    unhealthy_after: Duration,
    series: Series,
    registry: Registry,
    state: Arc<Mutex<State>>,
}

impl Status {
    /// A registry with no entry and etcd not reached yet; `unhealthy_after` is how long
    /// etcd may be unreachable, or an entry failing, before the report says unhealthy.
    pub fn new(unhealthy_after: Duration) -> Status {
        let series = Series::default();
        let state = Arc::new(Mutex::new(State {
            etcd: EtcdState {
                up: false,
                since: Moment::now(),
            },
            entries: BTreeMap::new(),
        }));
        Status {
            unhealthy_after,
            registry: series.registry(state.clone()),
            series,
            state,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Makes `ids` the entries reported on (a new configuration was loaded): entries kept
    /// keep their history, removed ones disappear from the report and the metrics.
    pub fn set_entries<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let mut state = self.state();
        // Collected rather than inserted one by one: a map built at once has full nodes, where
        // inserting sorted ids leaves each half empty.
        let entries = ids
            .into_iter()
            .map(|id| {
                let kept = state.entries.remove(id).unwrap_or_else(EntryState::loaded);
                (id.to_string(), kept)
            })
            .collect();
        state.entries = entries;
    }

    /// Records one pass over entry `id` that read etcd at `revision`.
    pub fn record(&self, id: &str, revision: i64, pass: Pass) {
        let now = Moment::now();
        let mut state = self.state();
        let entry = state.entry(id);
        entry.counts.renders += 1;
        let (outcome, failure) = match pass {
            Pass::Unchanged => ("unchanged", None),
            Pass::Changed => ("changed", None),
            Pass::Failed { kind, message } => {
                let failure = Failure {
                    when: now,
                    kind,
                    message,
                };
                ("failed", Some(failure))
            }
        };
        entry.last_outcome = Some(outcome);
        entry.seen = entry.seen.max(Some(revision));
        entry.rollout = None;
        entry.applied = failure.is_none();
        let Some(failure) = failure else {
            entry.last_success = Some(now);
            entry.failing_since = None;
            entry.revision = Some(revision);
            if entry.reload != ReloadState::Failing {
                entry.consecutive_failures = 0;
            }
            let newest = self.series.revision.inner();
            newest.fetch_max(revision, Ordering::Relaxed);
            return;
        };
        entry.counts.render_failures += 1;
        if failure.kind == FailureKind::Check {
            entry.counts.check_failures += 1;
        }
        entry.consecutive_failures += 1;
        entry.failing_since.get_or_insert(now);
        entry.last_error = Some(Box::new(failure));
    }

    /// Records where entry `id`'s change stands in its group's rollout (it rendered, and is
    /// not applied: waiting for its turn, or held); `failed_here`: this node failed it (its
    /// failure stays recorded), else the entry is not failing.
    pub fn rollout(&self, id: &str, revision: i64, note: RolloutNote, failed_here: bool) {
        let mut state = self.state();
        let entry = state.entry(id);
        entry.seen = entry.seen.max(Some(revision));
        if !failed_here {
            entry.failing_since = None;
        }
        entry.applied = false;
        entry.rollout = Some(Box::new(note));
    }

    /// Records that a reload of entry `id`'s service is due (its target changed, or a reload
    /// was still due when the process last stopped).
    pub fn reload_due(&self, id: &str) {
        let mut state = self.state();
        let entry = state.entry(id);
        if entry.reload == ReloadState::Done {
            entry.reload = ReloadState::Pending;
        }
    }

    /// Records a reload of entry `id` (its `reloadcmd` run, its `reloadsignal` sent), or
    /// why it failed: a failed reload makes the entry fail until a reload succeeds.
    pub fn record_reload(&self, id: &str, result: Result<(), String>) {
        let now = Moment::now();
        let mut state = self.state();
        let entry = state.entry(id);
        entry.counts.reloads += 1;
        match result {
            Ok(()) => {
                let by_reload = entry
                    .last_error
                    .as_ref()
                    .is_some_and(|e| e.kind == FailureKind::Reload);
                if by_reload {
                    entry.failing_since = None;
                }
                entry.reload = ReloadState::Done;
                if entry.failing_since.is_none() {
                    entry.consecutive_failures = 0;
                }
            }
            Err(message) => {
                entry.counts.reload_failures += 1;
                entry.last_outcome = Some("failed");
                entry.failing_since.get_or_insert(now);
                entry.last_error = Some(Box::new(Failure {
                    when: now,
                    kind: FailureKind::Reload,
                    message,
                }));
                entry.reload = ReloadState::Failing;
                entry.consecutive_failures += 1;
            }
        }
    }

    /// Records that etcd answers (connected at start-up).
    pub fn etcd_up(&self) {
        self.set_etcd(true);
    }

    /// Records that the watch broke (false) or was re-established after it broke (true).
    pub fn watch_state(&self, up: bool) {
        if up {
            self.series.watch_reconnects.inc();
        }
        self.set_etcd(up);
    }

    fn set_etcd(&self, up: bool) {
        self.series.etcd_up.set(i64::from(up));
        let mut state = self.state();
        if state.etcd.up != up {
            state.etcd = EtcdState {
                up,
                since: Moment::now(),
            };
        }
    }

    /// The metrics in the OpenMetrics text format, for Prometheus.
    pub fn metrics_text(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// The health report at this moment.
    pub fn health(&self) -> Health {
        let state = self.state();
        let too_long = |since: &Moment| since.at.elapsed() >= self.unhealthy_after;
        let mut problems = Vec::new();
        if !state.etcd.up && too_long(&state.etcd.since) {
            problems.push(format!(
                "etcd unreachable for {}s",
                state.etcd.since.at.elapsed().as_secs()
            ));
        }
        let entries = state
            .entries
            .iter()
            .map(|(id, entry)| {
                let failing = entry.failing_since.filter(too_long);
                if let Some(since) = failing {
                    let secs = since.at.elapsed().as_secs();
                    problems.push(match &entry.last_error {
                        Some(error) => format!("{id}: failing for {secs}s: {}", error.message),
                        None => format!("{id}: not rendered for {secs}s"),
                    });
                }
                let degraded = entry.degraded();
                let report = EntryHealth {
                    rollout: entry.rollout.as_deref().cloned(),
                    healthy: failing.is_none(),
                    applied: degraded.is_none(),
                    degraded,
                    reload: entry.reload,
                    revision_seen: entry.seen,
                    consecutive_failures: entry.consecutive_failures,
                    seconds_since_success: entry.since_success().as_secs(),
                    last_outcome: entry.last_outcome,
                    last_success: entry.last_success.as_ref().map(Moment::text),
                    failing_since: entry.failing_since.as_ref().map(Moment::text),
                    last_error: entry.last_error.as_ref().map(|e| ErrorReport {
                        at: e.when.text(),
                        kind: e.kind,
                        message: e.message.clone(),
                    }),
                    revision: entry.revision,
                };
                (id.clone(), report)
            })
            .collect();
        let degraded = entries_degraded(&entries);
        Health {
            healthy: problems.is_empty(),
            status: if !problems.is_empty() {
                "unhealthy"
            } else if degraded {
                "degraded"
            } else {
                "healthy"
            },
            problems,
            unhealthy_after_seconds: self.unhealthy_after.as_secs_f64(),
            etcd: EtcdHealth {
                up: state.etcd.up,
                since: state.etcd.since.text(),
                watch_reconnects: self.series.watch_reconnects.get(),
            },
            revision: self.series.revision.get(),
            entries,
        }
    }
}

/// Whether some entry of the report is not applied.
fn entries_degraded(entries: &BTreeMap<String, EntryHealth>) -> bool {
    entries.values().any(|e| !e.applied)
}

/// The health report served at `/healthz`.
#[derive(Debug, Serialize)]
pub struct Health {
    /// False when etcd has been unreachable, or an entry failing, too long.
    pub healthy: bool,
    /// `healthy`; `degraded` while some entry is not applied; `unhealthy` (HTTP 503) when
    /// etcd has been unreachable, or an entry failing, too long.
    pub status: &'static str,
    /// Why not healthy, one line each.
    pub problems: Vec<String>,
    /// The `--unhealthy-after` threshold.
    pub unhealthy_after_seconds: f64,
    /// The connection to etcd.
    pub etcd: EtcdHealth,
    /// The newest revision a target was rendered from (0: none yet).
    pub revision: i64,
    /// Each entry by id.
    pub entries: BTreeMap<String, EntryHealth>,
}

/// The etcd part of the health report.
#[derive(Debug, Serialize)]
pub struct EtcdHealth {
    /// Whether the watch is established.
    pub up: bool,
    /// When it last came up or went down (RFC 3339).
    pub since: String,
    /// Times the watch was re-established after it broke.
    pub watch_reconnects: u64,
}

/// One entry in the health report.
#[derive(Debug, Serialize)]
pub struct EntryHealth {
    /// False when the entry has been failing (or not rendered) too long.
    pub healthy: bool,
    /// Whether the target holds the render of the newest data seen and the service's reload
    /// is not failing.
    pub applied: bool,
    /// Why not applied.
    pub degraded: Option<String>,
    /// `done`, `pending` (due) or `failing` (being retried).
    pub reload: ReloadState,
    /// The newest etcd revision the entry rendered from, applied or not.
    pub revision_seen: Option<i64>,
    /// Passes and reloads that failed since the entry was last fully applied.
    pub consecutive_failures: u32,
    /// Seconds since the last good pass (since the entry was loaded, before one).
    pub seconds_since_success: u64,
    /// `unchanged`, `changed` or `failed`; null before the first pass.
    pub last_outcome: Option<&'static str>,
    /// When the last good pass ended (RFC 3339).
    pub last_success: Option<String>,
    /// Since when the entry has had no good pass, if it has not.
    pub failing_since: Option<String>,
    /// The last failure, kept after the entry recovers.
    pub last_error: Option<ErrorReport>,
    /// The etcd revision of the last good pass.
    pub revision: Option<i64>,
    /// Where the entry's change stands in its group's rollout, while it waits or is held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutNote>,
}

/// A failure in the health report.
#[derive(Debug, Serialize)]
pub struct ErrorReport {
    /// When it happened (RFC 3339).
    pub at: String,
    /// What failed: render, write, check or reload.
    pub kind: FailureKind,
    /// The error, as logged.
    pub message: String,
}

#[cfg(test)]
mod tests {

    use super::*;

    fn failed(kind: FailureKind) -> Pass {
        Pass::Failed {
            kind,
            message: format!("{kind:?} went wrong"),
        }
    }

    /// The value of the series line starting with `prefix` (name and labels).
    fn sample(status: &Status, prefix: &str) -> Option<f64> {
        status
            .metrics_text()
            .lines()
            .find_map(|line| line.strip_prefix(prefix)?.trim().parse().ok())
    }

    #[test]
    fn passes_are_counted_per_entry_and_kind() {
        let status = Status::new(Duration::from_secs(3600));
        status.set_entries(["a", "b"]);
        status.record("a", 5, Pass::Changed);
        status.record_reload("a", Ok(()));
        status.record("a", 7, Pass::Unchanged);
        status.record("b", 6, failed(FailureKind::Check));
        status.record("b", 6, Pass::Changed);
        status.record_reload("b", Err("reload command failed".into()));
        status.record("b", 6, failed(FailureKind::Render));
        let count = |name: &str, entry: &str| {
            sample(
                &status,
                &format!("reconfig_{name}_total{{entry=\"{entry}\"}}"),
            )
        };
        assert_eq!(count("renders", "a"), Some(2.0));
        assert_eq!(count("reloads", "a"), Some(1.0));
        // Every series exists from start-up, at 0 until its first event.
        assert_eq!(count("render_failures", "a"), Some(0.0));
        assert_eq!(count("reload_failures", "a"), Some(0.0));
        assert_eq!(count("renders", "b"), Some(3.0));
        assert_eq!(count("render_failures", "b"), Some(2.0));
        assert_eq!(count("check_failures", "b"), Some(1.0));
        assert_eq!(count("reloads", "b"), Some(1.0));
        assert_eq!(count("reload_failures", "b"), Some(1.0));
        let failing = |entry: &str| {
            sample(
                &status,
                &format!("reconfig_entry_failing{{entry=\"{entry}\"}}"),
            )
        };
        assert_eq!((failing("a"), failing("b")), (Some(0.0), Some(1.0)));
        assert_eq!(sample(&status, "reconfig_revision "), Some(7.0));
        assert_eq!(sample(&status, "reconfig_etcd_up "), Some(0.0));
        assert!(status.metrics_text().ends_with("# EOF\n"));
    }

    #[test]
    fn revision_only_moves_forward() {
        let status = Status::new(Duration::from_secs(3600));
        status.record("a", 9, Pass::Unchanged);
        status.record("b", 4, Pass::Unchanged);
        assert_eq!(status.health().revision, 9);
        assert_eq!(status.health().entries["b"].revision, Some(4));
    }

    #[test]
    fn failing_longer_than_the_threshold_is_unhealthy_until_a_good_pass() {
        let status = Status::new(Duration::ZERO);
        status.etcd_up();
        status.set_entries(["a"]);
        status.record("a", 3, Pass::Unchanged);
        assert!(status.health().healthy);
        status.record("a", 4, failed(FailureKind::Check));
        let health = status.health();
        assert!(!health.healthy);
        assert!(!health.entries["a"].healthy);
        assert_eq!(health.entries["a"].last_outcome, Some("failed"));
        assert_eq!(health.problems.len(), 1);
        assert!(
            health.problems[0].contains("Check went wrong"),
            "{health:?}"
        );
        let error = health.entries["a"].last_error.as_ref().unwrap();
        assert_eq!(error.kind, FailureKind::Check);
        assert_eq!(health.entries["a"].revision, Some(3));

        status.record("a", 5, Pass::Unchanged);
        let health = status.health();
        assert!(health.healthy, "{health:?}");
        assert!(
            health.entries["a"].last_error.is_some(),
            "the last error is kept"
        );
        assert!(health.entries["a"].failing_since.is_none());
    }

    #[test]
    fn failing_shorter_than_the_threshold_is_still_healthy() {
        let status = Status::new(Duration::from_secs(3600));
        status.set_entries(["a"]);
        status.record("a", 4, failed(FailureKind::Render));
        assert!(status.health().healthy);
        assert!(status.health().entries["a"].failing_since.is_some());
    }

    #[test]
    fn etcd_down_or_an_entry_never_rendered_is_unhealthy() {
        let status = Status::new(Duration::ZERO);
        let health = status.health();
        assert!(!health.healthy && !health.etcd.up);
        status.etcd_up();
        assert!(status.health().healthy);
        status.set_entries(["new"]);
        let failing = sample(&status, "reconfig_entry_failing{entry=\"new\"}");
        assert_eq!(failing, Some(1.0));
        let health = status.health();
        assert!(!health.healthy);
        assert!(
            health.problems[0].contains("new: not rendered"),
            "{health:?}"
        );
        status.record("new", 1, Pass::Unchanged);
        status.watch_state(true);
        status.watch_state(false);
        let health = status.health();
        assert!(!health.healthy && health.etcd.watch_reconnects == 1);
        assert!(
            health.problems[0].contains("etcd unreachable"),
            "{health:?}"
        );
    }

    #[test]
    fn a_waiting_or_held_rollout_is_degraded_not_failing() {
        let status = Status::new(Duration::ZERO);
        status.etcd_up();
        status.set_entries(["a", "b"]);
        status.rollout("a", 7, RolloutNote::waiting("web", 7, 3), false);
        status.record("b", 7, failed(FailureKind::Check));
        status.rollout("b", 7, RolloutNote::held("web", 7, "n2", "boom"), true);
        let health = status.health();
        let a = &health.entries["a"];
        assert!(a.healthy && !a.applied, "{health:?}");
        assert_eq!(
            a.degraded.as_deref(),
            Some("waiting for its turn in the rollout of revision 7 (group web, 3 node(s) ahead)")
        );
        let b = &health.entries["b"];
        assert!(!b.healthy, "the node that failed stays failing: {health:?}");
        assert_eq!(
            b.degraded.as_deref(),
            Some("rollout held at revision 7: n2: boom")
        );
        let gauge = |name: &str, entry: &str| {
            sample(
                &status,
                &format!("reconfig_entry_rollout_{name}{{entry=\"{entry}\"}}"),
            )
        };
        assert_eq!(
            (gauge("waiting", "a"), gauge("held", "a")),
            (Some(1.0), Some(0.0))
        );
        assert_eq!(
            (gauge("waiting", "b"), gauge("held", "b")),
            (Some(0.0), Some(1.0))
        );
        status.record("a", 9, Pass::Changed);
        assert!(status.health().entries["a"].applied);
        assert_eq!(gauge("waiting", "a"), Some(0.0));
    }

    #[test]
    fn removed_entries_leave_report_and_metrics() {
        let status = Status::new(Duration::from_secs(3600));
        status.set_entries(["a", "b"]);
        status.record("a", 1, failed(FailureKind::Check));
        status.record("b", 1, Pass::Unchanged);
        status.set_entries(["b", "c"]);
        let health = status.health();
        assert_eq!(
            health.entries.keys().collect::<Vec<_>>(),
            ["b", "c"],
            "{health:?}"
        );
        assert_eq!(health.entries["b"].last_outcome, Some("unchanged"));
        assert!(!status.metrics_text().contains("entry=\"a\""));
        assert!(status.metrics_text().contains("entry=\"b\""));
    }
}
