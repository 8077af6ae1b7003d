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

mod diff;
mod staged;

use std::fmt;
use std::fs::{self, File, Metadata, OpenOptions, Permissions};
use std::io::{self, Read};
use std::os::unix::fs::{fchown, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::unistd::{getegid, geteuid, getgroups, Gid, Group, User};
use rand::Rng;

use crate::command::{self, CommandError};
use crate::config::Entry;
pub use diff::unified_diff;
use staged::{parent_dir, Perms, StageError, Staged};

/// Mode of a new target when the entry names none.
const DEFAULT_MODE: u32 = 0o644;
/// Links followed from a target before giving up, as the kernel does (`ELOOP`).
const MAX_LINKS: usize = 40;
/// The mode bits of a directory where anyone may add links but only remove their own.
const STICKY_WORLD_WRITABLE: u32 = 0o1002;
/// The placeholder in `checkcmd` for the staged file's path.
const SRC_PLACEHOLDER: &str = "{{src}}";

/// How [`apply`] should treat a change; set from the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyOptions {
    /// `--notreally`: describe the change as a diff, write nothing and run nothing.
    pub notreally: bool,
    /// Colour the diff with ANSI escapes (the caller knows about terminals and `NO_COLOR`).
    pub color: bool,
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
    /// The target was replaced, checked and (if configured) the service reloaded.
    Changed,
    /// The content was right but the mode, owner or group was not: fixed in place, no reload.
    Adjusted {
        /// What changed, e.g. `mode 0644 → 0600`.
        change: String,
    },
}

/// What happened to the target when a check after the swap failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restored {
    /// The previous content, mode and owner are back.
    Previous,
    /// There was no previous file, so the new one was removed.
    Removed,
}

impl std::fmt::Display for Restored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Restored::Previous => "previous content restored",
            Restored::Removed => "new file removed",
        })
    }
}

/// Why an entry's target could not be brought up to date; one line naming the target, the
/// cause and the state the target was left in.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The target's directory is missing or not a directory; it is never created.
    #[error("{}: target directory {} {problem}", .target.display(), .dir.display())]
    TargetDir {
        /// The entry's target.
        target: PathBuf,
        /// The directory that should hold it.
        dir: PathBuf,
        /// `does not exist` or `is not a directory`.
        problem: &'static str,
    },
    /// The current target exists but cannot be read.
    #[error("{}: cannot read the current file: {source}", .target.display())]
    Read {
        /// The entry's target.
        target: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
    /// The target is a symlink another user could have planted; it was not followed.
    #[error(
        "{}: symlink {} not followed: it belongs to uid {link_owner}, in {}, a sticky \
         world-writable directory of uid {dir_owner}; nothing read or written through it",
        .target.display(), .link.display(), .dir.display()
    )]
    UnsafeLink {
        /// The entry's target.
        target: PathBuf,
        /// The link refused (the target, or a link it leads to).
        link: PathBuf,
        /// The link's owner.
        link_owner: u32,
        /// The directory holding the link.
        dir: PathBuf,
        /// The directory's owner.
        dir_owner: u32,
    },
    /// A FIFO, socket, device or directory is where the file should be; it is not opened.
    #[error("{}: {} is a {kind}, not a regular file; left alone", .target.display(), .path.display())]
    NotAFile {
        /// The entry's target.
        target: PathBuf,
        /// The path found (the target, or the file a followed link leads to).
        path: PathBuf,
        /// `FIFO`, `socket`, `character device`, `block device` or `directory`.
        kind: &'static str,
    },
    /// The owner or group could not be given to the new or the current file.
    #[error("{}: cannot give the file to {ids}: {source}; target left unchanged", .target.display())]
    Chown {
        /// The entry's target.
        target: PathBuf,
        /// The owner and group asked for, e.g. `owner "root" (uid 0)`.
        ids: String,
        /// The operating system's reason.
        source: io::Error,
    },
    /// The mode of a target whose content was right could not be changed in place.
    #[error("{}: cannot set mode {mode:04o} on the current file: {source}", .target.display())]
    Chmod {
        /// The entry's target.
        target: PathBuf,
        /// The mode asked for.
        mode: u32,
        /// The operating system's reason.
        source: io::Error,
    },
    /// The entry's `owner` or `group` names no user or group.
    #[error("{}: unknown {kind} {name:?}", .target.display())]
    UnknownId {
        /// The entry's target.
        target: PathBuf,
        /// `owner` or `group`.
        kind: &'static str,
        /// The name in the entry.
        name: String,
    },
    /// The user or group database could not be consulted.
    #[error("{}: cannot look up {kind} {name:?}: {source}", .target.display())]
    IdLookup {
        /// The entry's target.
        target: PathBuf,
        /// `owner` or `group`.
        kind: &'static str,
        /// The name in the entry.
        name: String,
        /// The lookup's error.
        source: nix::Error,
    },
    /// The staged file could not be created, owned, written or synced; target untouched.
    #[error("{}: cannot write staged file in {}: {source}", .target.display(), .dir.display())]
    Stage {
        /// The entry's target.
        target: PathBuf,
        /// The directory the staged file goes in.
        dir: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
    /// `checkcmd` with `{{src}}` rejected the staged file; target untouched, no reload.
    #[error("{}: check command {source}; target left unchanged", .target.display())]
    Check {
        /// The entry's target.
        target: PathBuf,
        /// How the check failed.
        source: CommandError,
    },
    /// The rename over the target failed; target untouched, no reload.
    #[error("{}: cannot rename the staged file over the target: {source}; target left unchanged", .target.display())]
    Swap {
        /// The entry's target.
        target: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
    /// `checkcmd` without `{{src}}` rejected the swapped-in file, which was rolled back.
    #[error("{}: check command {source} after the swap; {restored}", .target.display())]
    CheckAfterSwap {
        /// The entry's target.
        target: PathBuf,
        /// How the check failed.
        source: CommandError,
        /// What the rollback did.
        restored: Restored,
    },
    /// The post-swap check failed and so did the rollback: the rejected content is live.
    #[error("{}: check command {check} after the swap, and the rollback failed: {source}; the rejected new content is in place", .target.display())]
    Rollback {
        /// The entry's target.
        target: PathBuf,
        /// How the check failed.
        check: CommandError,
        /// Why the previous state could not be put back.
        source: io::Error,
    },
    /// The target was changed but `reloadcmd` failed: the service may run the old config.
    #[error("{}: file changed, but reload command {source}", .target.display())]
    Reload {
        /// The entry's target.
        target: PathBuf,
        /// How the reload failed.
        source: CommandError,
    },
}

/// Brings `entry.target` up to date with `new`, running the entry's check and reload
/// commands; see the module documentation for the steps.
pub async fn apply(entry: &Entry, new: &[u8], opts: &ApplyOptions) -> Result<Outcome, ApplyError> {
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
        let diff = drift_line + &unified_diff(target, old, new, opts.color);
        return Ok(Outcome::Preview { diff });
    }

    let perms = wanted_perms(entry, &asked, current.as_ref());
    let staged = blocking({
        let (path, new) = (path.clone(), new.to_vec());
        move || Staged::write(&path, &new, &perms)
    })
    .await
    .map_err(|e| match e {
        StageError::Chown(source) => ApplyError::Chown {
            target: target.clone(),
            ids: describe_ids(entry, &perms),
            source,
        },
        StageError::Io(source) => ApplyError::Stage {
            target: target.clone(),
            dir: dir.to_path_buf(),
            source,
        },
    })?;
    let (staged_check, target_check) = match entry.checkcmd.as_deref() {
        Some(cmd) if cmd.contains(SRC_PLACEHOLDER) => (Some(cmd), None),
        other => (None, other),
    };
    if let Some(cmd) = staged_check {
        let cmd = cmd.replace(SRC_PLACEHOLDER, &shell_quote(staged.path()));
        // On failure `staged` is dropped here, which removes it.
        command::run(entry, &cmd, entry.check_timeout)
            .await
            .map_err(|source| ApplyError::Check {
                target: target.clone(),
                source,
            })?;
    }
    blocking(move || staged.commit())
        .await
        .map_err(|source| ApplyError::Swap {
            target: target.clone(),
            source,
        })?;

    if let Some(cmd) = target_check {
        if let Err(check) = command::run(entry, cmd, entry.check_timeout).await {
            return Err(match roll_back(&path, current) {
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

    if let Some(cmd) = &entry.reloadcmd {
        let delay = splay_delay(entry.splay);
        if !delay.is_zero() {
            tracing::debug!(entry = %entry.id, "waiting {delay:?} (splay) before reloading");
            tokio::time::sleep(delay).await;
        }
        command::run(entry, cmd, entry.reload_timeout)
            .await
            .map_err(|source| ApplyError::Reload {
                target: target.clone(),
                source,
            })?;
    }
    Ok(Outcome::Changed)
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

/// Runs file I/O that syncs to disk on tokio's blocking pool: many entries syncing at
/// once then share the filesystem's journal commits instead of queueing behind the two
/// runtime threads (500 new files: ~300 ms → a fraction of it on ext4).
async fn blocking<T: Send + 'static, E: From<io::Error> + Send + 'static>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, E> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e).into()))
}

/// The target before the change: its content, mode and ids, and the open file, through
/// which a permission fix is made.
struct Current {
    bytes: Vec<u8>,
    mode: u32,
    uid: u32,
    gid: u32,
    file: File,
}

/// The owner and group ids the entry asks for.
struct Asked {
    uid: Option<u32>,
    gid: Option<u32>,
}

/// A permission of the target other than the entry asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drift {
    Mode { from: u32, to: u32 },
    Owner { from: u32, to: u32 },
    Group { from: u32, to: u32 },
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Drift::Mode { from, to } => write!(f, "mode {from:04o} → {to:04o}"),
            Drift::Owner { from, to } => write!(f, "owner {} → {}", user_name(from), user_name(to)),
            Drift::Group { from, to } => {
                write!(f, "group {} → {}", group_name(from), group_name(to))
            }
        }
    }
}

/// A user's name, or its id when it has none.
fn user_name(uid: u32) -> String {
    match User::from_uid(uid.into()) {
        Ok(Some(user)) => user.name,
        _ => uid.to_string(),
    }
}

/// A group's name, or its id when it has none.
fn group_name(gid: u32) -> String {
    match Group::from_gid(gid.into()) {
        Ok(Some(group)) => group.name,
        _ => gid.to_string(),
    }
}

/// The file to replace: a symlinked target resolves, link by link, to the file it points
/// to, each link followed only where [`may_follow`] allows. A dangling link cannot be
/// followed and is replaced by the file itself.
fn real_path(target: &Path) -> Result<PathBuf, ApplyError> {
    let read_error = |source| ApplyError::Read {
        target: target.to_path_buf(),
        source,
    };
    let mut path = target.to_path_buf();
    for _ in 0..MAX_LINKS {
        let link = match fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound && path != *target => {
                return Ok(target.to_path_buf());
            }
            // Anything else (a missing or unreadable target) is for the steps that follow.
            _ => return Ok(path),
        };
        let dir = parent_dir(&path);
        let dir_meta = fs::metadata(dir).map_err(read_error)?;
        if !may_follow(
            link.uid(),
            dir_meta.mode(),
            dir_meta.uid(),
            geteuid().as_raw(),
        ) {
            return Err(ApplyError::UnsafeLink {
                target: target.to_path_buf(),
                link_owner: link.uid(),
                dir: dir.to_path_buf(),
                dir_owner: dir_meta.uid(),
                link: path,
            });
        }
        path = dir.join(fs::read_link(&path).map_err(read_error)?);
    }
    Err(read_error(io::Error::from_raw_os_error(nix::libc::ELOOP)))
}

/// The kernel's `protected_symlinks` rule, whatever the sysctl says: a link is followed
/// when its directory is not sticky and world-writable, or when it belongs to the user
/// following it or to the directory's owner.
fn may_follow(link_owner: u32, dir_mode: u32, dir_owner: u32, euid: u32) -> bool {
    dir_mode & STICKY_WORLD_WRITABLE != STICKY_WORLD_WRITABLE
        || link_owner == euid
        || link_owner == dir_owner
}

/// Refuses a missing or non-directory parent up front, with a message saying exactly that.
fn check_dir(target: &Path, dir: &Path) -> Result<(), ApplyError> {
    let problem = match fs::metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => "does not exist",
        Ok(meta) if !meta.is_dir() => "is not a directory",
        // Anything else (permissions, say) surfaces with its own reason at the first access.
        _ => return Ok(()),
    };
    Err(ApplyError::TargetDir {
        target: target.to_path_buf(),
        dir: dir.to_path_buf(),
        problem,
    })
}

/// Reads the regular file at `path`, or `None` when there is none (or only the dangling
/// link [`real_path`] leaves to be replaced). Anything but a regular file is refused before
/// it is opened, and it is opened so that neither a link nor a FIFO put there meanwhile is
/// followed or waited on.
fn read_current(target: &Path, path: &Path) -> Result<Option<Current>, ApplyError> {
    let read_error = |source| ApplyError::Read {
        target: target.to_path_buf(),
        source,
    };
    let not_a_file = |meta: &Metadata| {
        special_kind(meta).map(|kind| ApplyError::NotAFile {
            target: target.to_path_buf(),
            path: path.to_path_buf(),
            kind,
        })
    };
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_error(e)),
        Ok(meta) if meta.file_type().is_symlink() => return Ok(None),
        Ok(meta) => not_a_file(&meta).map_or(Ok(()), Err)?,
    }
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
        .open(path)
        .map_err(read_error)?;
    let meta = file.metadata().map_err(read_error)?;
    not_a_file(&meta).map_or(Ok(()), Err)?;
    let mut bytes = Vec::with_capacity(meta.len().try_into().unwrap_or(0));
    file.read_to_end(&mut bytes).map_err(read_error)?;
    Ok(Some(Current {
        bytes,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        file,
    }))
}

/// What a file that is not a regular file is, for the message refusing it.
fn special_kind(meta: &Metadata) -> Option<&'static str> {
    let kind = meta.file_type();
    match () {
        () if kind.is_file() => None,
        () if kind.is_fifo() => Some("FIFO"),
        () if kind.is_socket() => Some("socket"),
        () if kind.is_char_device() => Some("character device"),
        () if kind.is_block_device() => Some("block device"),
        () if kind.is_dir() => Some("directory"),
        () => Some("special file"),
    }
}

/// The ids of the entry's `owner` and `group`.
fn asked_ids(entry: &Entry) -> Result<Asked, ApplyError> {
    let uid = entry
        .owner
        .as_deref()
        .map(|name| {
            let found = User::from_name(name).map(|u| u.map(|u| u.uid.as_raw()));
            resolve_id(&entry.target, "owner", name, found)
        })
        .transpose()?;
    let gid = entry
        .group
        .as_deref()
        .map(|name| {
            let found = Group::from_name(name).map(|g| g.map(|g| g.gid.as_raw()));
            resolve_id(&entry.target, "group", name, found)
        })
        .transpose()?;
    Ok(Asked { uid, gid })
}

/// The mode, owner and group of the new file: the entry's, else [`kept_ids`] and the
/// current file's mode, else 0644.
fn wanted_perms(entry: &Entry, asked: &Asked, current: Option<&Current>) -> Perms {
    let mode = entry
        .mode
        .or(current.map(|c| c.mode))
        .unwrap_or(DEFAULT_MODE);
    let (uid, gid) = kept_ids(current);
    Perms {
        mode,
        uid: asked.uid.or(uid),
        gid: asked.gid.or(gid),
    }
}

/// The owner and group a new file gets unasked: as root, the current file's (else root's
/// own); as any other user, only the current file's group, when it belongs to it.
fn kept_ids(current: Option<&Current>) -> (Option<u32>, Option<u32>) {
    if geteuid().is_root() {
        (
            Some(current.map_or_else(|| geteuid().as_raw(), |c| c.uid)),
            Some(current.map_or_else(|| getegid().as_raw(), |c| c.gid)),
        )
    } else {
        (
            None,
            current.map(|c| c.gid).filter(|&gid| in_my_groups(gid)),
        )
    }
}

/// Whether the running process may give a file it owns to group `gid`.
fn in_my_groups(gid: u32) -> bool {
    getegid().as_raw() == gid
        || getgroups().is_ok_and(|groups| groups.contains(&Gid::from_raw(gid)))
}

/// The permissions of `current` that differ from what the entry asks for.
fn drift(entry: &Entry, asked: &Asked, current: &Current) -> Vec<Drift> {
    let mode = entry
        .mode
        .filter(|&to| to != current.mode)
        .map(|to| Drift::Mode {
            from: current.mode,
            to,
        });
    let owner = asked
        .uid
        .filter(|&to| to != current.uid)
        .map(|to| Drift::Owner {
            from: current.uid,
            to,
        });
    let group = asked
        .gid
        .filter(|&to| to != current.gid)
        .map(|to| Drift::Group {
            from: current.gid,
            to,
        });
    [mode, owner, group].into_iter().flatten().collect()
}

/// Gives the current file the owner, group and mode the entry asks for.
fn fix_in_place(entry: &Entry, current: &Current, drift: &[Drift]) -> Result<(), ApplyError> {
    let mut perms = Perms {
        mode: entry.mode.unwrap_or(current.mode),
        uid: None,
        gid: None,
    };
    for change in drift {
        match *change {
            Drift::Owner { to, .. } => perms.uid = Some(to),
            Drift::Group { to, .. } => perms.gid = Some(to),
            Drift::Mode { .. } => {}
        }
    }
    if perms.uid.is_some() || perms.gid.is_some() {
        fchown(&current.file, perms.uid, perms.gid).map_err(|source| ApplyError::Chown {
            target: entry.target.clone(),
            ids: describe_ids(entry, &perms),
            source,
        })?;
    }
    // Also after a chown alone, which may have cleared set-id bits.
    current
        .file
        .set_permissions(Permissions::from_mode(perms.mode))
        .and_then(|()| current.file.sync_all())
        .map_err(|source| ApplyError::Chmod {
            target: entry.target.clone(),
            mode: perms.mode,
            source,
        })
}

/// `owner "www" (uid 33) and group 4`: the ids in `perms`, named as the entry names them.
fn describe_ids(entry: &Entry, perms: &Perms) -> String {
    let owner = perms.uid.map(|uid| match &entry.owner {
        Some(name) => format!("owner {name:?} (uid {uid})"),
        None => format!("owner {uid}"),
    });
    let group = perms.gid.map(|gid| match &entry.group {
        Some(name) => format!("group {name:?} (gid {gid})"),
        None => format!("group {gid}"),
    });
    [owner, group]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" and ")
}

/// Turns a user or group database answer into an id; an unknown name that is a number is
/// taken as the id itself, as `chown` does.
fn resolve_id(
    target: &Path,
    kind: &'static str,
    name: &str,
    found: nix::Result<Option<u32>>,
) -> Result<u32, ApplyError> {
    match found {
        Ok(Some(id)) => Ok(id),
        Ok(None) => name.parse().map_err(|_| ApplyError::UnknownId {
            target: target.to_path_buf(),
            kind,
            name: name.to_string(),
        }),
        Err(source) => Err(ApplyError::IdLookup {
            target: target.to_path_buf(),
            kind,
            name: name.to_string(),
            source,
        }),
    }
}

/// Puts back the state from before the swap: the previous file with its mode and owner
/// (as far as the running user may give them), or no file at all.
fn roll_back(path: &Path, previous: Option<Current>) -> io::Result<Restored> {
    match previous {
        Some(previous) => {
            let (uid, gid) = kept_ids(Some(&previous));
            let perms = Perms {
                mode: previous.mode,
                uid,
                gid,
            };
            Staged::write(path, &previous.bytes, &perms)?.commit()?;
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
