//! Why a migration could not run at all (trouble with single files goes into the
//! [`Report`](crate::Report) instead), one line each.

use std::path::PathBuf;

/// Why a migration could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The directory lacks `conf.d/` or `templates/`.
    #[error("{path}: not a {tool} configuration directory (it needs conf.d/ and templates/)")]
    NotAConfigDir {
        /// The directory given.
        path: PathBuf,
        /// Whose layout was expected (`reconfig.rb`, `confd`).
        tool: &'static str,
    },
    /// `--out` names the configuration directory itself.
    #[error("--out {0} is the configuration directory; use --in-place to convert it where it is")]
    OutIsCfgdir(PathBuf),
    /// `conf.d/` or `templates/` is a link, which migrate does not follow.
    #[error(
        "{0}: a symbolic link, not followed: migrate reads only what is inside the \
         configuration directory; put the directory itself there"
    )]
    Linked(PathBuf),
    /// `--out` names a directory migrate does not write into.
    #[error("--out {path}: {reason}")]
    OutRefused {
        /// The directory given.
        path: PathBuf,
        /// Why it is not written into.
        reason: OutRefusal,
    },
    /// A file was replaced by another while migrate read or converted it.
    #[error("{0}: changed while migrate read it; nothing written for it, run migrate again")]
    Changed(PathBuf),
    /// A file or directory could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// What was read.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file or directory could not be written.
    #[error("{path}: cannot write: {source}")]
    Write {
        /// What was written.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Why a directory given as `--out` is not written into.
#[derive(Debug, thiserror::Error)]
pub enum OutRefusal {
    /// A link, wherever it leads.
    #[error("a symbolic link; give a new directory, or an empty one that is not a link")]
    Link,
    /// A file, FIFO or the like.
    #[error("not a directory")]
    NotADirectory,
    /// Something is already in it.
    #[error("not empty; give a new directory, or an empty one")]
    NotEmpty,
    /// Another user's directory.
    #[error(
        "owned by uid {owner}, not by the running user (uid {me}); give a new directory, \
         or an empty one of your own"
    )]
    NotOwn {
        /// The directory's owner.
        owner: u32,
        /// The running user.
        me: u32,
    },
}
