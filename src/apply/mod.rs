//! Applying a render to its target file.
//!
//! Given the freshly rendered bytes, [`apply`] compares them with the target, and when they
//! differ either previews the change (`--notreally`) or stages the new file beside the
//! target, checks it, swaps it in atomically, rolls back when a post-swap check fails, and
//! reloads the service. The target is never left half-written, and nothing but the staged
//! file's path is ever put into a command line. Equal content with a mode, owner or group
//! other than the entry asks for is fixed in place, without a reload.
//!
//! A target that is a symlink is followed only where the kernel's `protected_symlinks` rule
//! would follow it: a link in a sticky world-writable directory (`/tmp`) is followed only
//! when it belongs to the running user or to the directory's owner, so no other user can
//! point a target at a file of their choosing. A followed link stays a link and the file it
//! points to is replaced (the `sites-enabled/x -> ../sites-available/x` layout keeps
//! working). A FIFO, socket or device at the target is refused without being opened.
//!
//! Ownership: as root, the staged file gets the entry's owner and group, else the current
//! file's. Any other user can give files to nobody else, so it sets an owner or group only
//! when the entry asks for one (it may ask for its own user and its groups), and otherwise
//! keeps the current file's group when it belongs to that group.

pub mod command;
mod diff;
mod error;
mod perms;
mod staged;
mod target;

use std::io::{self, IsTerminal};
use std::path::Path;
use std::time::Duration;

use fsx::{kept_ids, parent_dir, Perms, WriteError};
use rand::Rng;

use crate::config::Entry;
use crate::state::{digest, CheckAfter, Ledger, PreviousFile};
use diff::unified_diff;
use perms::{asked_ids, describe_ids, drift, fix_in_place, wanted_perms, Drift};
use staged::Staged;
use target::{check_dir, read_current, real_path};

pub use command::scrubbed;
pub use error::{AfterSwap, ApplyError, Restored};

/// The placeholder in `checkcmd` for the staged file's path.
const SRC_PLACEHOLDER: &str = "{{src}}";

/// How [`apply`] should treat a change; set from the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyOptions {
    /// `--notreally`: describe the change as a diff, write nothing and run nothing.
    pub notreally: bool,
    /// Colour the diff with ANSI escapes.
    pub color: bool,
    /// Where the new file is written and synced.
    pub syncs: Syncs,
}

/// Where a write's file work (create, write, sync, rename, sync the directory) runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Syncs {
    /// On the calling thread: nothing handed between threads, the cheapest way to write one
    /// file (a daemon's usual change; 200 daemons on 2 CPUs spend a third less CPU per
    /// change than with the blocking pool). It holds the thread for the file's syncs.
    #[default]
    InPlace,
    /// On tokio's blocking pool, so that many files written at once share the file
    /// system's journal commits instead of syncing one after another (a daemon's first
    /// sync of every entry).
    Shared,
}

impl ApplyOptions {
    /// Writing, or with `notreally` previewing: diffs on stdout are coloured on a terminal
    /// unless `NO_COLOR` is set.
    pub fn new(notreally: bool) -> ApplyOptions {
        ApplyOptions {
            notreally,
            color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
            syncs: Syncs::default(),
        }
    }
}

/// Where a change is recorded as it goes ([`crate::state`]), and the etcd revision it was
/// rendered from.
#[derive(Debug, Clone, Copy)]
pub struct Journal<'a> {
    /// The entry's record.
    pub ledger: &'a Ledger,
    /// The revision of the render.
    pub revision: i64,
    /// The change is a rollout turn's: it stays unconfirmed (to be put back at a restart)
    /// until the turn confirms it, healthy and baked.
    pub rollout: bool,
}

/// What [`apply`] did, so the caller can count, print and signal accordingly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The target already holds these bytes; nothing was written or run.
    Unchanged,
    /// `--notreally`: the change that would have been made, as a unified diff.
    Preview {
        /// The diff text, ready to print.
        diff: String,
    },
    /// The target was replaced and checked; the service is still to be reloaded
    /// ([`reload`]).
    Changed,
    /// The content was right but the mode, owner or group was not: fixed in place, no reload.
    Adjusted {
        /// What changed, e.g. `mode 0644 → 0600`.
        change: String,
    },
}

/// Brings `entry.target` up to date with `new`, running the entry's check command; see the
/// module documentation for the steps. The reload is the caller's ([`reload`]). `new` is
/// taken whole: it goes into the staged file without a copy, wherever that is written.
/// With a `journal`, what a crash could strand is recorded before the file work.
pub async fn apply(
    entry: &Entry,
    new: Vec<u8>,
    opts: &ApplyOptions,
    journal: Option<Journal<'_>>,
) -> Result<Outcome, ApplyError> {
    let target = &entry.target;
    let path = real_path(target)?;
    let dir = parent_dir(&path);
    check_dir(target, dir)?;
    let current = read_current(target, &path)?;
    let asked = asked_ids(entry)?;
    let drift = current
        .as_ref()
        .map_or_else(Vec::new, |c| drift(entry, &asked, c));
    let change = drift
        .iter()
        .map(Drift::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let drift_line = if drift.is_empty() {
        String::new()
    } else {
        format!("{}: {change}\n", target.display())
    };
    if let Some(current) = current.as_ref().filter(|c| c.bytes == new) {
        if drift.is_empty() {
            return Ok(Outcome::Unchanged);
        }
        if opts.notreally {
            return Ok(Outcome::Preview { diff: drift_line });
        }
        fix_in_place(entry, current, &drift)?;
        return Ok(Outcome::Adjusted { change });
    }
    if opts.notreally {
        let old = current.as_ref().map_or(&[][..], |c| &c.bytes);
        let diff = drift_line + &unified_diff(target, old, &new, opts.color);
        return Ok(Outcome::Preview { diff });
    }

    let perms = wanted_perms(entry, &asked, current.as_ref());
    let stage_error = |e| match e {
        WriteError::Chown(source) => ApplyError::Chown {
            target: target.clone(),
            ids: describe_ids(entry, &perms),
            source,
        },
        WriteError::Io(source) => ApplyError::Stage {
            target: target.clone(),
            dir: dir.to_path_buf(),
            source,
        },
    };
    let swap_error = |source| ApplyError::Swap {
        target: target.clone(),
        source,
    };
    let (staged_check, target_check) = match entry.checkcmd.as_deref() {
        Some(cmd) if cmd.contains(SRC_PLACEHOLDER) => (Some(cmd), None),
        other => (None, other),
    };
    let rollout = journal.is_some_and(|j| j.rollout);
    let sha256 = (target_check.is_some() || rollout).then(|| digest(&new));
    // What a crash could strand, recorded before the swap.
    let record = || {
        let Some(journal) = journal else {
            return Ok(());
        };
        let previous = current.as_ref().map(|c| {
            let file = PreviousFile {
                mode: c.mode,
                uid: c.uid,
                gid: c.gid,
            };
            (c.bytes.as_slice(), file)
        });
        let check_after = sha256.as_deref().map(|sha256| CheckAfter {
            sha256,
            previous,
            rollout,
        });
        journal
            .ledger
            .swapping(journal.revision, entry.reloads(), check_after)
            .map_err(|source| ApplyError::State {
                target: target.clone(),
                source,
            })
    };
    let write = {
        let path = path.clone();
        move || Staged::write(&path, &new, &perms)
    };
    match staged_check {
        // Nothing runs between the write and the swap: one piece of file work (a start's
        // hundreds of files go through the blocking pool once each, not twice). Should the
        // write fail after the record, the change is tried again until it lands, and its
        // swap is what the record announced.
        None => {
            record()?;
            file_work(opts.syncs, move || write().map(Staged::commit))
                .await
                .map_err(stage_error)?
                .map_err(swap_error)?;
        }
        // Recorded once the staged file passed its check: a render the check refuses
        // leaves no reload due.
        Some(cmd) => {
            let staged = file_work(opts.syncs, write).await.map_err(stage_error)?;
            let cmd = cmd.replace(SRC_PLACEHOLDER, &shell_quote(staged.path()));
            // On failure `staged` is dropped here, which removes it.
            command::run(entry, &cmd, entry.check_timeout)
                .await
                .map_err(|source| ApplyError::Check {
                    target: target.clone(),
                    source,
                })?;
            record()?;
            file_work(opts.syncs, move || staged.commit())
                .await
                .map_err(swap_error)?;
        }
    }

    if let Some(cmd) = target_check {
        let checked = command::run(entry, cmd, entry.check_timeout).await;
        let restored = match checked {
            Ok(()) => None,
            Err(check) => {
                let restore = path.clone();
                let previous = current.map(|c| (c.bytes, c.mode, c.uid, c.gid));
                let restored = file_work(opts.syncs, move || roll_back(&restore, previous)).await;
                Some((check, restored))
            }
        };
        // Checked, or put back as it was: nothing waits for a check any more (a rollout
        // turn's change waits for its turn to end). A rollback that failed leaves the
        // record as it is, to be tried again at the next start.
        let settled = match &restored {
            None => !rollout,
            Some((_, restored)) => restored.is_ok(),
        };
        if settled {
            if let Some(journal) = journal {
                journal
                    .ledger
                    .confirmed()
                    .map_err(|source| ApplyError::State {
                        target: target.clone(),
                        source,
                    })?;
            }
        }
        if let Some((check, restored)) = restored {
            return Err(match restored {
                Ok(restored) => ApplyError::CheckAfterSwap {
                    target: target.clone(),
                    source: check,
                    restored,
                },
                Err(source) => ApplyError::Rollback {
                    target: target.clone(),
                    check,
                    source,
                },
            });
        }
    }

    Ok(Outcome::Changed)
}

/// A target as it was before a rolled-out change: compared with the render before the node
/// waits for its turn, and put back when the change fails after its swap.
pub struct Before {
    path: std::path::PathBuf,
    previous: Option<(Vec<u8>, u32, u32, u32)>,
}

impl Before {
    /// Reads `entry`'s target as it is now (its content, mode and owner).
    pub fn read(entry: &Entry) -> Result<Before, ApplyError> {
        let path = real_path(&entry.target)?;
        let previous = read_current(&entry.target, &path)?.map(|c| (c.bytes, c.mode, c.uid, c.gid));
        Ok(Before { path, previous })
    }

    /// Whether the target holds `bytes`.
    pub fn holds(&self, bytes: &[u8]) -> bool {
        self.previous.as_ref().is_some_and(|p| p.0 == bytes)
    }

    /// Puts the target back as it was (or removes it when there was none).
    pub async fn put_back(self, syncs: Syncs) -> io::Result<Restored> {
        file_work(syncs, move || roll_back(&self.path, self.previous)).await
    }
}

/// After a restart: a change that was swapped in before its post-swap check passed (the
/// process died in between) is checked now, and the previous file put back if the check
/// fails; one a rollout turn swapped in and did not see healthy and baked is put back (and
/// a reload made due), so that it takes its turn again. A record about content the target
/// no longer holds is cleared.
pub async fn confirm(entry: &Entry, ledger: &Ledger) -> Result<(), ApplyError> {
    let Some(unconfirmed) = ledger.record().and_then(|r| r.unconfirmed) else {
        return Ok(());
    };
    let target = &entry.target;
    let state_error = |source| ApplyError::State {
        target: target.clone(),
        source,
    };
    let path = real_path(target)?;
    let current = read_current(target, &path)?;
    let holds = current
        .as_ref()
        .is_some_and(|c| digest(&c.bytes) == unconfirmed.sha256);
    if holds && unconfirmed.rollout {
        tracing::warn!(
            entry = %entry.id,
            "{}: swapped in by a rollout turn that did not finish (reconfig stopped before it \
             was healthy and baked): putting the previous content back; the change takes its \
             turn again",
            target.display()
        );
        let previous = previous_file(ledger, unconfirmed.previous);
        let restored = previous.and_then(|previous| roll_back(&path, previous));
        restored.map_err(|source| ApplyError::Swap {
            target: target.clone(),
            source,
        })?;
        return ledger.put_back(entry.reloads()).map_err(state_error);
    }
    let check = entry
        .checkcmd
        .as_deref()
        .filter(|cmd| !cmd.contains(SRC_PLACEHOLDER));
    let (true, Some(cmd)) = (holds, check) else {
        return ledger.confirmed().map_err(state_error);
    };
    tracing::info!(
        entry = %entry.id,
        "{}: swapped in before a restart, not checked yet: checking it now",
        target.display()
    );
    let Err(check) = command::run(entry, cmd, entry.check_timeout).await else {
        return ledger.confirmed().map_err(state_error);
    };
    let previous = previous_file(ledger, unconfirmed.previous);
    match previous.and_then(|previous| roll_back(&path, previous)) {
        Ok(restored) => {
            ledger.confirmed().map_err(state_error)?;
            Err(ApplyError::CheckAfterSwap {
                target: target.clone(),
                source: check,
                restored,
            })
        }
        Err(source) => Err(ApplyError::Rollback {
            target: target.clone(),
            check,
            source,
        }),
    }
}

/// The file an unconfirmed change replaced, as [`roll_back`] puts it back: its content kept
/// in the state directory, its mode and owner in the record (none: there was no file).
type Previous = Option<(Vec<u8>, u32, u32, u32)>;

fn previous_file(ledger: &Ledger, file: Option<PreviousFile>) -> io::Result<Previous> {
    match file {
        Some(file) => ledger
            .previous_content()
            .map(|bytes| Some((bytes, file.mode, file.uid, file.gid))),
        None => Ok(None),
    }
}

/// Reloads the entry's service after its target changed: `reloadcmd`, after a random
/// `splay`. Kept apart from [`apply`] so that files follow etcd at once while reloads are
/// paced by whoever calls this.
pub async fn reload(entry: &Entry) -> Result<(), ApplyError> {
    let Some(cmd) = &entry.reloadcmd else {
        return Ok(());
    };
    let delay = splay_delay(entry.splay);
    if !delay.is_zero() {
        tracing::debug!(entry = %entry.id, "waiting {delay:?} (splay) before reloading");
        tokio::time::sleep(delay).await;
    }
    command::run(entry, cmd, entry.reload_timeout)
        .await
        .map_err(|source| ApplyError::Reload {
            target: entry.target.clone(),
            source,
        })
}

/// Removes the staged files that a killed run left beside `entry`'s target (and beside the
/// file a followed link leads to), logging each; nothing else is touched.
pub fn remove_leftovers(entry: &Entry) {
    let mut dests = vec![entry.target.clone()];
    // A link that may not be followed is reported when the entry is applied.
    if let Ok(path) = real_path(&entry.target) {
        if path != entry.target {
            dests.push(path);
        }
    }
    for (path, removed) in dests.iter().flat_map(|d| staged::remove_leftovers(d)) {
        match removed {
            Ok(()) => tracing::info!(
                entry = %entry.id,
                "removed {}: a staged file left by an interrupted run",
                path.display()
            ),
            Err(e) => tracing::warn!(
                entry = %entry.id,
                "cannot remove {}, a staged file left by an interrupted run: {e}",
                path.display()
            ),
        }
    }
}

/// Runs file work that syncs to disk where `syncs` says.
async fn file_work<T: Send + 'static, E: From<io::Error> + Send + 'static>(
    syncs: Syncs,
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, E> {
    match syncs {
        Syncs::InPlace => work(),
        Syncs::Shared => tokio::task::spawn_blocking(work)
            .await
            .unwrap_or_else(|e| Err(io::Error::other(e).into())),
    }
}

/// Puts back the state from before the swap: the previous file (its bytes, mode, owner and
/// group) with its mode and owner (as far as the running user may give them), or no file
/// at all.
fn roll_back(path: &Path, previous: Option<(Vec<u8>, u32, u32, u32)>) -> io::Result<Restored> {
    match previous {
        Some((bytes, mode, uid, gid)) => {
            let (uid, gid) = kept_ids(uid, gid);
            let perms = Perms { mode, uid, gid };
            Staged::write(path, &bytes, &perms)?.commit()?;
            Ok(Restored::Previous)
        }
        None => {
            staged::remove(path)?;
            Ok(Restored::Removed)
        }
    }
}

/// A random delay in `[0, max]`, so a fleet does not reload all at once.
fn splay_delay(max: Duration) -> Duration {
    if max.is_zero() {
        Duration::ZERO
    } else {
        rand::rng().random_range(Duration::ZERO..=max)
    }
}

/// `path` as one single-quoted shell word.
fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.to_string_lossy().replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests;
