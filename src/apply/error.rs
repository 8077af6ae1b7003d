//! Why an entry's target could not be brought up to date: one line naming the target, the
//! cause and the state the target was left in.

use std::io;
use std::path::PathBuf;

use fsx::IdError;

use super::command::CommandError;
use crate::state::StateError;

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
    /// The entry's `owner` or `group` gives no id.
    #[error("{}: {source}", .target.display())]
    Id {
        /// The entry's target.
        target: PathBuf,
        /// The unknown name, or why the database could not tell.
        source: IdError,
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
    /// The change could not be recorded in the state directory, so it was not made: a crash
    /// could have stranded it.
    #[error("{}: {source}; target left unchanged", .target.display())]
    State {
        /// The entry's target.
        target: PathBuf,
        /// Why the record could not be written.
        source: StateError,
    },
    /// The target was changed but `reloadcmd` failed: the service may run the old config.
    #[error("{}: file changed, but reload command {source}", .target.display())]
    Reload {
        /// The entry's target.
        target: PathBuf,
        /// How the reload failed.
        source: CommandError,
    },
    /// A rolled-out change failed after its swap (its reload or its health check): the
    /// previous content was put back and the service reloaded with it.
    #[error("{}: {source} after the swap; {restored} and reloaded", .target.display())]
    Unhealthy {
        /// The entry's target.
        target: PathBuf,
        /// What failed.
        source: AfterSwap,
        /// What putting it back did.
        restored: Restored,
    },
    /// A rolled-out change failed after its swap, and the previous content could not be
    /// put back: the rejected content is in place.
    #[error("{}: {failed} after the swap, and the previous content could not be put back: {source}; the rejected new content is in place", .target.display())]
    NotPutBack {
        /// The entry's target.
        target: PathBuf,
        /// What failed.
        failed: AfterSwap,
        /// Why the previous content could not be put back.
        source: io::Error,
    },
}

/// What failed once a rolled-out change was swapped in.
#[derive(Debug, thiserror::Error)]
pub enum AfterSwap {
    /// `reloadcmd`.
    #[error("reload command {0}")]
    Reload(#[source] CommandError),
    /// The rollout's `healthcmd`.
    #[error("health command {0}")]
    Health(#[source] CommandError),
}
