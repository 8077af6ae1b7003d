//! The crash states of a recording, and the invariants checked in each.
//!
//! A crash may come between any two operations: at point `k` the first `k` have returned.
//! An operation is durable at `k` when a sync that covers it (entered after it returned)
//! returned before `k`: an `fsync` of its file for a write, truncation, mode or owner
//! change (`fdatasync`: writes and truncations only), an `fsync` of its directory for a
//! name made, removed or moved (of both directories for a move between two), `sync` for
//! everything. Every other operation before `k` is pending and may independently be lost
//! or kept — and a pending write may also be kept in part (its first half). A crash state
//! is the state before the run with the durable operations and the kept pending ones
//! applied, in the order the run made them.
//!
//! Every combination is enumerated while a point has at most [`EXHAUSTIVE`] of them;
//! beyond, those that lose at most [`BOUND`] pending operations or keep at most
//! [`BOUND`] (the report lists such points). States are told apart by everything
//! reachable in the checked directories, and each distinct state is checked once per
//! point.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};

use super::check::Invariant;
use super::model::{Recording, What};

/// Most combinations of pending operations enumerated at one crash point.
const EXHAUSTIVE: usize = 1 << 16;
/// Beyond [`EXHAUSTIVE`]: most pending operations lost (or kept) in one state.
const BOUND: usize = 3;
/// Violations described in a report, per invariant: the first of each kind.
const EXAMPLES: usize = 3;

/// What became of a pending operation in one crash state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Fate {
    Lost,
    Kept,
    /// A write of which only the first half reached the disk.
    Torn,
}

/// An invariant, and what was found of it.
pub struct Checked {
    invariant: Box<dyn Invariant>,
    /// Distinct states that break it.
    broken: HashSet<u64>,
    /// The first violation of each kind (its message up to the first `;`).
    examples: Vec<String>,
    kinds: HashSet<String>,
}

impl Checked {
    /// `invariant`, to hold in every crash state.
    pub fn new(invariant: impl Invariant + 'static) -> Checked {
        Checked {
            invariant: Box::new(invariant),
            broken: HashSet::new(),
            examples: Vec::new(),
            kinds: HashSet::new(),
        }
    }
}

/// The outcome of one scenario.
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// Operations on the checked directories.
    pub ops: usize,
    /// Crash states enumerated (all points, all combinations).
    pub explored: usize,
    /// Distinct crash states among them.
    pub distinct: usize,
    /// Points where the combinations were bounded: (point, pending operations).
    pub bounded: Vec<(usize, usize)>,
    /// What each invariant found.
    pub checks: Vec<Found>,
}

/// What was found of one invariant.
pub struct Found {
    /// What it checks.
    pub name: String,
    /// Distinct states breaking it.
    pub broken: usize,
    /// The first violation of each kind, described.
    pub examples: Vec<String>,
    /// Whether the run was the one the scenario meant.
    pub finish: Result<(), String>,
}

impl Report {
    /// Prints the report and panics unless every invariant holds in every crash state.
    pub fn assert(&self) {
        eprintln!("{self}");
        for Found {
            name,
            broken,
            examples,
            finish,
        } in &self.checks
        {
            if let Err(e) = finish {
                panic!("{}: {name}: {e}", self.scenario);
            }
            assert!(
                *broken == 0,
                "{}: {name}: {broken} crash state(s) break it:\n{}",
                self.scenario,
                examples.join("\n")
            );
        }
    }

    /// Distinct states breaking the invariant whose name contains `name`.
    pub fn broken(&self, name: &str) -> usize {
        self.checks
            .iter()
            .filter(|c| c.name.contains(name))
            .map(|c| c.broken)
            .sum()
    }

    /// The examples of violations of every invariant.
    pub fn examples(&self) -> Vec<&str> {
        self.checks
            .iter()
            .flat_map(|c| c.examples.iter().map(String::as_str))
            .collect()
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "crash states of {}: {} operations, {} crash points, {} states explored, {} distinct",
            self.scenario,
            self.ops,
            self.ops + 1,
            self.explored,
            self.distinct
        )?;
        if !self.bounded.is_empty() {
            write!(
                f,
                " ({} points bounded to {BOUND} lost or kept, up to {} pending)",
                self.bounded.len(),
                self.bounded.iter().map(|b| b.1).max().unwrap_or(0)
            )?;
        }
        for found in &self.checks {
            write!(f, "\n  {}: {} violation(s)", found.name, found.broken)?;
            for example in &found.examples {
                write!(f, "\n    {}", example.replace('\n', "\n    "))?;
            }
        }
        Ok(())
    }
}

/// Enumerates the crash states of `recording` and checks `checks` in each.
pub fn explore(scenario: &str, recording: &Recording, mut checks: Vec<Checked>) -> Report {
    let ops = &recording.ops;
    let durable_at = durable_at(recording);
    let mut distinct = HashSet::new();
    let mut explored = 0;
    let mut bounded = Vec::new();
    for point in 0..=ops.len() {
        let pending: Vec<usize> = (0..point)
            .filter(|&i| !ops[i].what.is_sync() && durable_at[i] >= point)
            .collect();
        let choices: Vec<&[Fate]> = pending
            .iter()
            .map(|&i| match &ops[i].what {
                What::Write { data, .. } if data.len() >= 2 => {
                    &[Fate::Lost, Fate::Kept, Fate::Torn][..]
                }
                _ => &[Fate::Lost, Fate::Kept][..],
            })
            .collect();
        let fates = combinations(&choices);
        if fates.len() < choices.iter().map(|c| c.len()).product::<usize>() {
            bounded.push((point, pending.len()));
        }
        let state = |fates: &[Fate]| {
            let mut fs = recording.before.clone();
            let mut next = 0;
            for (i, op) in ops[..point].iter().enumerate() {
                if op.what.is_sync() {
                    continue;
                }
                let fate = if pending.get(next) == Some(&i) {
                    next += 1;
                    fates[next - 1]
                } else {
                    Fate::Kept
                };
                if fate != Fate::Lost {
                    fs.apply(op, fate == Fate::Torn);
                }
            }
            fs
        };
        let run = state(&vec![Fate::Kept; pending.len()]);
        let durable = state(&vec![Fate::Lost; pending.len()]);
        for checked in &mut checks {
            checked.invariant.at_point(&run, &durable);
        }
        let mut here = HashSet::new();
        for fates in &fates {
            explored += 1;
            let fs = state(fates);
            let text = fs.render();
            let hash = hash_of(&text);
            distinct.insert(hash);
            if !here.insert(hash) {
                continue;
            }
            for checked in &mut checks {
                if let Err(why) = checked.invariant.check(&fs) {
                    let kind = why.split(';').next().unwrap_or_default().to_string();
                    if checked.broken.insert(hash)
                        && checked.examples.len() < EXAMPLES
                        && checked.kinds.insert(kind)
                    {
                        checked
                            .examples
                            .push(describe(recording, point, &pending, fates, &why, &text));
                    }
                }
            }
        }
    }
    Report {
        scenario: scenario.to_string(),
        ops: ops.len(),
        explored,
        distinct: distinct.len(),
        bounded,
        checks: checks
            .into_iter()
            .map(|c| Found {
                name: c.invariant.name(),
                broken: c.broken.len(),
                finish: c.invariant.finish(),
                examples: c.examples,
            })
            .collect(),
    }
}

/// For each operation, the index of the sync after which it is durable (the number of
/// operations when it never is); syncs themselves get theirs too, unused.
fn durable_at(recording: &Recording) -> Vec<usize> {
    let ops = &recording.ops;
    let never = ops.len();
    let first_sync = |i: usize, covers_it: &dyn Fn(&What) -> bool| {
        (i + 1..ops.len())
            .find(|&s| match ops[s].what {
                What::Sync { covers, .. } | What::SyncAll { covers } if covers > i => {
                    matches!(ops[s].what, What::SyncAll { .. }) || covers_it(&ops[s].what)
                }
                _ => false,
            })
            .unwrap_or(never)
    };
    (0..ops.len())
        .map(|i| {
            let what = &ops[i].what;
            if let Some((ino, data)) = what.inode() {
                first_sync(i, &|sync| {
                    matches!(*sync, What::Sync { ino: s, data_only, .. } if s == ino && (data || !data_only))
                })
            } else {
                what.dirs()
                    .iter()
                    .map(|&dir| {
                        first_sync(i, &|sync| {
                            matches!(*sync, What::Sync { ino, data_only: false, .. } if ino == dir)
                        })
                    })
                    .max()
                    .unwrap_or(never)
            }
        })
        .collect()
}

/// Every combination of one fate per pending operation, or, when there are more than
/// [`EXHAUSTIVE`], those with at most [`BOUND`] operations not kept or at most [`BOUND`]
/// not lost.
fn combinations(choices: &[&[Fate]]) -> Vec<Vec<Fate>> {
    let total = choices
        .iter()
        .try_fold(1usize, |n, c| n.checked_mul(c.len()))
        .unwrap_or(usize::MAX);
    if total <= EXHAUSTIVE {
        let mut all = vec![Vec::new()];
        for choice in choices {
            all = all
                .into_iter()
                .flat_map(|prefix| {
                    choice.iter().map(move |&fate| {
                        let mut next = prefix.clone();
                        next.push(fate);
                        next
                    })
                })
                .collect();
        }
        return all;
    }
    let mut found = HashSet::new();
    for base in [Fate::Kept, Fate::Lost] {
        let start = vec![base; choices.len()];
        deviate(choices, &start, 0, BOUND, &mut found);
    }
    found.into_iter().collect()
}

/// Adds `current` and every variation of it changing at most `left` fates from `from` on.
fn deviate(
    choices: &[&[Fate]],
    current: &[Fate],
    from: usize,
    left: usize,
    found: &mut HashSet<Vec<Fate>>,
) {
    found.insert(current.to_vec());
    if left == 0 {
        return;
    }
    for i in from..choices.len() {
        for &fate in choices[i] {
            if fate != current[i] {
                let mut next = current.to_vec();
                next[i] = fate;
                deviate(choices, &next, i + 1, left - 1, found);
            }
        }
    }
}

fn hash_of(text: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

/// A violation for the report: where the crash came, what was lost, why, and the state.
fn describe(
    recording: &Recording,
    point: usize,
    pending: &[usize],
    fates: &[Fate],
    why: &str,
    state: &str,
) -> String {
    let after = match point {
        0 => "before the first operation".to_string(),
        _ => format!("after #{} {}", point - 1, recording.ops[point - 1].label),
    };
    let lost: Vec<String> = pending
        .iter()
        .zip(fates)
        .filter(|(_, fate)| **fate != Fate::Kept)
        .map(|(&i, fate)| {
            let torn = if *fate == Fate::Torn {
                " (in part)"
            } else {
                ""
            };
            format!("#{i} {}{torn}", recording.ops[i].label)
        })
        .collect();
    format!(
        "crash {after}, lost: [{}]: {why}\n{}",
        lost.join("; "),
        state.trim_end()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crash_states::model::{Fs, Op};

    #[test]
    fn beyond_the_limit_states_lose_or_keep_at_most_the_bound() {
        let two: &[Fate] = &[Fate::Lost, Fate::Kept];
        assert_eq!(combinations(&[two; 16]).len(), 1 << 16);
        let bounded = combinations(&[two; 20]);
        // Up to 3 of 20 lost, or up to 3 of 20 kept: 2 × (1 + 20 + 190 + 1140).
        assert_eq!(bounded.len(), 2 * (1 + 20 + 190 + 1140));
        let count = |c: &Vec<Fate>, f: Fate| c.iter().filter(|&&x| x == f).count();
        assert!(bounded
            .iter()
            .all(|c| count(c, Fate::Lost) <= BOUND || count(c, Fate::Kept) <= BOUND));
    }

    #[test]
    fn a_sync_covers_what_returned_before_it_began_on_its_file_or_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let op = |what: What| Op {
            what,
            label: String::new(),
        };
        let name = |n: &str| std::ffi::OsString::from(n);
        // Inode 0 is the root directory; 1 a file made in the run.
        let ops = vec![
            op(What::Link {
                dir: 0,
                name: name("a"),
                ino: 1,
            }),
            op(What::Write {
                ino: 1,
                offset: 0,
                data: b"x".to_vec(),
            }),
            // Entered before the write returned: it does not cover it.
            op(What::Sync {
                ino: 1,
                data_only: false,
                covers: 1,
            }),
            op(What::Sync {
                ino: 1,
                data_only: true,
                covers: 3,
            }),
            op(What::Chmod {
                ino: 1,
                mode: 0o600,
            }),
            op(What::Rename {
                from: 0,
                from_name: name("a"),
                to: 0,
                to_name: name("b"),
                ino: 1,
            }),
            op(What::Sync {
                ino: 1,
                data_only: true,
                covers: 6,
            }),
            op(What::Sync {
                ino: 0,
                data_only: false,
                covers: 7,
            }),
        ];
        let recording = Recording {
            before: Fs::snapshot(&[root]),
            ops,
        };
        let never = recording.ops.len();
        let at = durable_at(&recording);
        // The name and the rename by the directory's sync; the write by the second file
        // sync; the mode never (an fdatasync does not cover it).
        assert_eq!([at[0], at[1], at[4], at[5]], [7, 3, never, 7]);
    }
}
