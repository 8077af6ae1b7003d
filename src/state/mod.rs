//! What each entry's changes came to, kept on disk (`--state-dir`) so that a change swapped
//! in is never stranded by a crash: a process killed after a target was replaced and before
//! the service was reloaded reloads it at its next start, and a target replaced before its
//! post-swap check ran is checked (and rolled back if the check fails) at the next start.
//!
//! One small JSON record per entry ([`Record`]), named after the entry's id and target,
//! written like a target: a new file created exclusively, synced, renamed over the old one,
//! the directory synced. A [`Ledger`] keeps an entry's record and writes it at the moments
//! that matter:
//!
//! - before a change is swapped in, when the service was reloaded since the last one: a
//!   reload is now pending (written once per reload, not per change: a burst of changes
//!   between two reloads writes it once);
//! - before a change is swapped in with a check to run after the swap: its hash, and the
//!   previous file (its content in a file beside the record) to put back if the check fails;
//! - after that check passed, or the previous file was put back;
//! - after the reload: the hash of what the service was reloaded with, nothing pending.
//!
//! So the record never says a reload is done for content the target does not hold. An
//! entry with no record (a first start with a state directory, or an entry with neither
//! a reload nor a post-swap check) starts as reconfig.rb did: a target already right runs
//! no command.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use fsx::Perms;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Entry;

/// Random characters in the name of a record being written.
const RANDOM_CHARS: usize = 10;
/// What follows a record's name in the name of its new file, before the random characters.
const NEW_MARK: &str = ".new-";

/// Why the state directory cannot be used, or a record not written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The directory cannot be made or opened.
    #[error("state directory {}: {source}", .path.display())]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
    /// The directory is a link, which could lead anywhere.
    #[error("state directory {}: a symbolic link; give the directory itself", .0.display())]
    Linked(PathBuf),
    /// A record could not be written.
    #[error("{}: cannot write the entry's state: {source}", .path.display())]
    Write {
        /// The record's file.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
}

/// The state of one entry, as kept on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The entry's id.
    pub id: String,
    /// Its target.
    pub target: PathBuf,
    /// A change was swapped in after the last reload: the service may still run an older
    /// configuration.
    #[serde(default)]
    pub reload_pending: bool,
    /// SHA-256 (hex) of the content the service was last reloaded with.
    #[serde(default)]
    pub reloaded: Option<String>,
    /// When that reload ran (RFC 3339).
    #[serde(default)]
    pub reloaded_at: Option<String>,
    /// The etcd revision of the last change swapped in.
    #[serde(default)]
    pub revision: Option<i64>,
    /// A change swapped in whose post-swap check has not passed yet.
    #[serde(default)]
    pub unconfirmed: Option<Unconfirmed>,
    /// When the record was last written (RFC 3339).
    #[serde(default)]
    pub updated: String,
}

/// A change swapped in, waiting for its post-swap check or for its rollout turn to end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unconfirmed {
    /// SHA-256 (hex) of the content swapped in.
    pub sha256: String,
    /// The file it replaced (its content is kept beside the record), or none.
    pub previous: Option<PreviousFile>,
    /// Swapped in by the node's turn in a rollout, confirmed once healthy and baked: one
    /// found unconfirmed at a start is put back, and takes its turn again.
    #[serde(default)]
    pub rollout: bool,
}

/// The mode and owner of a replaced file, to put it back as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousFile {
    /// Mode bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// A change about to be swapped in with a check to run after the swap (or a rollout turn to
/// finish): what a restart needs to finish it.
#[derive(Debug, Clone, Copy)]
pub struct CheckAfter<'a> {
    /// The [`digest`] of the new content.
    pub sha256: &'a str,
    /// The file it replaces, its content and its mode and owner; none when there is none.
    pub previous: Option<(&'a [u8], PreviousFile)>,
    /// Swapped in by a rollout turn ([`Unconfirmed::rollout`]).
    pub rollout: bool,
}

/// SHA-256 of `bytes`, in hex, as records name contents.
pub fn digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    path: PathBuf,
    /// Held while this process has the directory to itself ([`hold`]).
    held: Option<Arc<Flock<File>>>,
}

/// The file a process holds locked while it has the state directory to itself.
const LOCK_FILE: &str = ".lock";

/// Locks `dir`'s lock file unless another process holds it: a `reconfig --onetime` run
/// beside the daemon, or the daemon started beside one, shares the directory.
fn hold(dir: &Path) -> Option<Flock<File>> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(dir.join(LOCK_FILE))
        .ok()?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).ok()
}

impl StateDir {
    /// Opens the directory at `path`, making it (and its parents) readable by its owner
    /// only when it is missing; a link there is refused.
    pub fn open(path: &Path) -> Result<StateDir, StateError> {
        let error = |source| StateError::Dir {
            path: path.to_path_buf(),
            source,
        };
        if Self::existing(path)?.is_none() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(path)
                .map_err(error)?;
            // The new directory's name is durable before any record is written in it.
            fsx::sync_dir(fsx::parent_dir(path)).map_err(error)?;
        }
        // Writable by us: a record that cannot be written is better known now.
        nix::unistd::access(path, nix::unistd::AccessFlags::W_OK)
            .map_err(|e| error(io::Error::from(e)))?;
        let dir = StateDir {
            path: path.to_path_buf(),
            held: hold(path).map(Arc::new),
        };
        if dir.held.is_some() {
            dir.remove_leftovers();
        }
        Ok(dir)
    }

    /// Removes the new files of records that a killed write left (`.NAME.new-RANDOM`);
    /// nothing else in the directory is touched. Only while the directory is this
    /// process's alone: another one's may be a write in flight.
    fn remove_leftovers(&self) {
        let Ok(entries) = std::fs::read_dir(&self.path) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let leftover = name
                .to_str()
                .and_then(|n| n.strip_prefix('.')?.rsplit_once(NEW_MARK))
                .is_some_and(|(_, random)| {
                    random.len() == RANDOM_CHARS
                        && random.bytes().all(|b| b.is_ascii_alphanumeric())
                });
            if !leftover || !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {
                    tracing::info!("removed {}, left by a killed write", entry.path().display())
                }
                Err(e) => tracing::warn!("cannot remove {}: {e}", entry.path().display()),
            }
        }
    }

    /// The directory at `path` for reading only (`reconfig status`): nothing is made, and a
    /// directory that does not exist holds no record (`Ok(None)`); a link there is refused.
    pub fn existing(path: &Path) -> Result<Option<StateDir>, StateError> {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => Err(StateError::Linked(path.into())),
            Ok(meta) if !meta.is_dir() => Err(StateError::Dir {
                path: path.into(),
                source: io::Error::other("not a directory"),
            }),
            Ok(_) => Ok(Some(StateDir {
                path: path.into(),
                held: None,
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateError::Dir {
                path: path.into(),
                source,
            }),
        }
    }

    /// The ledger of `entry`, with its record read (none when there is none or it cannot
    /// be read: the entry then starts as without a state directory).
    pub fn ledger(&self, entry: &Entry) -> Ledger {
        let stem = stem(&entry.id, &entry.target);
        let file = self.path.join(format!("{stem}.json"));
        let record = read_record(&file).unwrap_or_else(|e| {
            tracing::warn!(entry = %entry.id, "{e}; starting without it");
            None
        });
        Ledger {
            dir: self.path.clone(),
            stem,
            id: entry.id.clone(),
            target: entry.target.clone(),
            record: Mutex::new(record.map(Box::new)),
            swaps: AtomicU64::new(0),
        }
    }

    /// The record of `entry`, if it has one, without keeping a ledger (`reconfig status`).
    pub fn record_of(&self, entry: &Entry) -> Result<Option<Record>, String> {
        let file = self
            .path
            .join(format!("{}.json", stem(&entry.id, &entry.target)));
        read_record(&file)
    }
}

/// Reads a record; `Ok(None)` when there is none.
fn read_record(file: &Path) -> Result<Option<Record>, String> {
    match std::fs::read(file) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{}: unreadable state ({e})", file.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: cannot read state: {e}", file.display())),
    }
}

/// The name of an entry's files: its id made safe for a file name, and a hash of its
/// target, so two configurations with the same ids never share a record.
fn stem(id: &str, target: &Path) -> String {
    let safe: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let target = digest(target.as_os_str().as_encoded_bytes());
    format!("{}-{}", safe.trim_start_matches('.'), &target[..16])
}

/// One entry's record, and the writes that keep it true.
#[derive(Debug)]
pub struct Ledger {
    dir: PathBuf,
    stem: String,
    id: String,
    target: PathBuf,
    /// Boxed: most entries (those with neither a reload nor a post-swap check) never have
    /// one, and the ledger of each is kept for the process's life.
    record: Mutex<Option<Box<Record>>>,
    /// Changes swapped in by this process: a reload clears the pending one only when none
    /// came in while it ran.
    swaps: AtomicU64,
}

/// What a reload starts from: the changes swapped in so far and the target's content.
#[derive(Debug)]
pub struct Reloading {
    swaps: u64,
    content: Vec<u8>,
}

impl Ledger {
    /// The record as it stands (none before the entry's first recorded change).
    pub fn record(&self) -> Option<Record> {
        self.lock().as_deref().cloned()
    }

    /// Before a change made at `revision` is swapped in: records that a reload is due (when
    /// `reload` and none was pending yet) and, when a check runs after the swap
    /// (`check_after`), what to put back should the process die before the check passed.
    pub fn swapping(
        &self,
        revision: i64,
        reload: bool,
        check_after: Option<CheckAfter<'_>>,
    ) -> Result<(), StateError> {
        let mut guard = self.lock();
        self.swaps.fetch_add(1, Ordering::AcqRel);
        let pending = reload && !guard.as_ref().is_some_and(|r| r.reload_pending);
        if !pending && check_after.is_none() {
            // Nothing a crash could strand that is not on disk already (and no record made
            // only to hold the revision, which only a written record tells).
            if let Some(record) = guard.as_mut() {
                record.revision = Some(revision);
            }
            return Ok(());
        }
        let record = guard.get_or_insert_with(|| Box::new(self.fresh()));
        let mut next = record.clone();
        next.reload_pending |= reload;
        next.revision = Some(revision);
        if let Some(check) = check_after {
            if let Some((bytes, _)) = check.previous {
                self.write_file(&self.previous_name(), bytes)?;
            }
            next.unconfirmed = Some(Unconfirmed {
                sha256: check.sha256.to_string(),
                previous: check.previous.map(|(_, file)| file),
                rollout: check.rollout,
            });
        }
        self.write(&mut next)?;
        *record = next;
        Ok(())
    }

    /// The change swapped in is confirmed (its post-swap check passed), or the previous file
    /// was put back: nothing waits for a check.
    pub fn confirmed(&self) -> Result<(), StateError> {
        self.settled(false)
    }

    /// The previous file was put back in place of an unconfirmed change after a restart:
    /// nothing waits for a check, and when `reload`, a reload is due (the service may have
    /// been reloaded with the change).
    pub fn put_back(&self, reload: bool) -> Result<(), StateError> {
        self.settled(reload)
    }

    /// Nothing waits for a check any more; a reload is due too when `reload`. One write.
    fn settled(&self, reload: bool) -> Result<(), StateError> {
        let mut guard = self.lock();
        let Some(record) = guard.as_mut().filter(|r| r.unconfirmed.is_some()) else {
            return Ok(());
        };
        let mut next = record.clone();
        next.unconfirmed = None;
        if reload {
            self.swaps.fetch_add(1, Ordering::AcqRel);
            next.reload_pending = true;
        }
        self.write(&mut next)?;
        *record = next;
        // Only after the record no longer names it.
        let _ = std::fs::remove_file(self.dir.join(self.previous_name()));
        Ok(())
    }

    /// The previous file's content kept for a rollback after a restart.
    pub fn previous_content(&self) -> io::Result<Vec<u8>> {
        std::fs::read(self.dir.join(self.previous_name()))
    }

    /// A reload begins: what it starts from, for [`Ledger::reloaded`].
    pub fn reloading(&self) -> Reloading {
        Reloading {
            swaps: self.swaps.load(Ordering::Acquire),
            // Unreadable or gone: recorded as empty, which no content matches.
            content: std::fs::read(&self.target).unwrap_or_default(),
        }
    }

    /// The reload that began with `from` succeeded: it is recorded, and the pending reload
    /// cleared unless another change was swapped in meanwhile.
    pub fn reloaded(&self, from: Reloading) -> Result<(), StateError> {
        let mut guard = self.lock();
        let record = guard.get_or_insert_with(|| Box::new(self.fresh()));
        let mut next = record.clone();
        next.reload_pending = self.swaps.load(Ordering::Acquire) != from.swaps;
        next.reloaded = Some(digest(&from.content));
        next.reloaded_at = Some(now());
        self.write(&mut next)?;
        *record = next;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Box<Record>>> {
        self.record
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn fresh(&self) -> Record {
        Record {
            id: self.id.clone(),
            target: self.target.clone(),
            ..Record::default()
        }
    }

    fn previous_name(&self) -> String {
        format!("{}.previous", self.stem)
    }

    /// Writes `record` durably as the entry's record.
    fn write(&self, record: &mut Record) -> Result<(), StateError> {
        record.updated = now();
        let mut json = serde_json::to_vec_pretty(record).expect("a record is valid JSON");
        json.push(b'\n');
        self.write_file(&format!("{}.json", self.stem), &json)
    }

    /// Replaces the file `name` of the state directory with `bytes`, durably: a new file
    /// synced, renamed over it, the directory synced.
    fn write_file(&self, name: &str, bytes: &[u8]) -> Result<(), StateError> {
        let path = self.dir.join(name);
        let error = |source| StateError::Write {
            path: path.clone(),
            source,
        };
        let perms = Perms {
            mode: 0o600,
            uid: None,
            gid: None,
        };
        let mut prefix = OsString::from(".");
        prefix.push(name);
        prefix.push(NEW_MARK);
        fsx::replace(
            &self.dir,
            name.as_ref(),
            &prefix,
            RANDOM_CHARS,
            bytes,
            &perms,
        )
        .map_err(|e| error(e.into()))?;
        fsx::sync_dir(&self.dir).map_err(error)
    }
}

fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger(dir: &Path) -> Ledger {
        let state = StateDir::open(&dir.join("state")).unwrap();
        state.ledger(&Entry::for_test(&dir.join("target")))
    }

    /// Files in the state directory besides its lock.
    fn records(dir: &Path) -> usize {
        std::fs::read_dir(dir.join("state"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name() != LOCK_FILE)
            .count()
    }

    #[test]
    fn a_pending_reload_is_written_once_and_cleared_by_the_reload() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = ledger(dir.path());
        assert_eq!(ledger.record(), None);
        ledger.swapping(5, true, None).unwrap();
        assert_eq!(records(dir.path()), 1);
        assert!(ledger.record().unwrap().reload_pending);
        // A second change before the reload: the record on disk already says enough.
        ledger.swapping(6, true, None).unwrap();
        let again = ledger_reread(dir.path());
        assert!(again.reload_pending);
        assert_eq!(again.revision, Some(5));
        std::fs::write(dir.path().join("target"), "new").unwrap();
        let reloading = ledger.reloading();
        ledger.reloaded(reloading).unwrap();
        let done = ledger_reread(dir.path());
        assert!(!done.reload_pending);
        assert_eq!(done.reloaded, Some(digest(b"new")));
    }

    #[test]
    fn a_change_swapped_in_during_a_reload_keeps_a_reload_pending() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = ledger(dir.path());
        ledger.swapping(5, true, None).unwrap();
        let reloading = ledger.reloading();
        ledger.swapping(6, true, None).unwrap();
        ledger.reloaded(reloading).unwrap();
        assert!(ledger_reread(dir.path()).reload_pending);
    }

    fn ledger_reread(dir: &Path) -> Record {
        ledger(dir).record().unwrap()
    }

    #[test]
    fn a_change_awaiting_its_check_keeps_the_previous_file_until_confirmed() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = ledger(dir.path());
        let previous = PreviousFile {
            mode: 0o640,
            uid: 0,
            gid: 0,
        };
        ledger
            .swapping(
                7,
                false,
                Some(CheckAfter {
                    sha256: &digest(b"new"),
                    previous: Some((b"old", previous)),
                    rollout: false,
                }),
            )
            .unwrap();
        let record = ledger_reread(dir.path());
        let unconfirmed = record.unconfirmed.unwrap();
        assert_eq!(unconfirmed.sha256, digest(b"new"));
        assert_eq!(unconfirmed.previous, Some(previous));
        assert_eq!(ledger.previous_content().unwrap(), b"old");
        ledger.confirmed().unwrap();
        assert_eq!(ledger_reread(dir.path()).unconfirmed, None);
        assert!(ledger.previous_content().is_err());
    }

    #[test]
    fn nothing_is_written_for_an_entry_without_reload_or_later_check() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = ledger(dir.path());
        ledger.swapping(3, false, None).unwrap();
        assert_eq!(records(dir.path()), 0);
    }

    #[test]
    fn names_are_safe_and_differ_by_target() {
        let a = stem("../a b/c", Path::new("/x"));
        assert!(
            a.starts_with("_a_b_c-") || a.starts_with("_._a_b_c-"),
            "{a}"
        );
        assert!(!a.contains('/'));
        assert_ne!(stem("a", Path::new("/x")), stem("a", Path::new("/y")));
    }

    #[test]
    fn a_link_is_not_a_state_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/tmp", dir.path().join("link")).unwrap();
        assert!(matches!(
            StateDir::open(&dir.path().join("link")),
            Err(StateError::Linked(_))
        ));
    }
}
