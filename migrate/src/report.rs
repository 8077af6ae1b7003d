//! The report and output model every front end shares: findings printed as
//! `FILE:LINE: message`, an outcome per converted file, and the files to write.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// Why a migration could not run at all (trouble with single files is in the [`Report`]).
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The directory is not the tool's configuration directory.
    #[error("{path}: not a {tool} configuration directory ({needs})", path = .path.display())]
    NotAConfigDir {
        /// The directory given.
        path: PathBuf,
        /// Which tool's layout was expected.
        tool: &'static str,
        /// What it lacks.
        needs: &'static str,
    },
    /// The output directory is not one to write into.
    #[error("--out {}: {reason}", .path.display())]
    OutRefused {
        /// The directory given.
        path: PathBuf,
        /// Why (a link, not empty, another user's).
        reason: String,
    },
    /// A file or directory could not be read.
    #[error("{}: cannot read: {source}", .path.display())]
    Read {
        /// What was read.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file or directory could not be written.
    #[error("{}: cannot write: {source}", .path.display())]
    Write {
        /// What was written.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// One line of the report: a file, the line in it when the finding is about one, and the
/// message (the construct, and what to do).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    /// The file, as found under the input directory.
    pub file: PathBuf,
    /// The line in that file.
    pub line: Option<usize>,
    /// What was found and what to do about it.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// What happened to one input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The input file.
    pub source: PathBuf,
    /// Where the result goes, relative to the output directory; `None` when nothing is
    /// written for it.
    pub written: Option<PathBuf>,
    /// Whether it converted with nothing left for a person.
    pub converted: bool,
}

/// The result of a migration: per file, every problem and every note.
#[derive(Debug, Default)]
pub struct Report {
    /// Every input file converted (or not), in path order.
    pub outcomes: Vec<Outcome>,
    /// What needs a person; a file with a problem is not written as something that would
    /// behave differently.
    pub problems: Vec<Finding>,
    /// What converted but is worth knowing.
    pub notes: Vec<Finding>,
}

impl Report {
    /// How many files converted completely.
    pub fn converted(&self) -> usize {
        self.outcomes.iter().filter(|t| t.converted).count()
    }

    /// How many files need a person.
    pub fn need_attention(&self) -> usize {
        let mut files: Vec<&Path> = self.problems.iter().map(|p| p.file.as_path()).collect();
        files.sort();
        files.dedup();
        files.len()
    }

    /// Whether nothing needs a person.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// The closing line: `N converted, M need attention`.
    pub fn summary(&self) -> String {
        format!(
            "{} converted, {} need attention",
            self.converted(),
            self.need_attention()
        )
    }

    /// Puts problems and notes in file and line order.
    pub fn sort(&mut self) {
        self.problems.sort();
        self.problems.dedup();
        self.notes.sort();
        self.notes.dedup();
    }
}

/// The files a migration writes, by path relative to the output directory.
#[derive(Debug, Default)]
pub struct Output {
    /// Path → content.
    pub files: BTreeMap<PathBuf, Vec<u8>>,
    /// The files only their owner may read (mode 0600 from their creation), such as one
    /// holding a password.
    pub secret: BTreeSet<PathBuf>,
}

impl Output {
    /// Writes every file under `dir`, a directory the caller made or checked to be an
    /// empty one of its own: each file is created new (an existing one, or a link in its
    /// place, is an error, never followed).
    pub fn write_to(&self, dir: &Path) -> Result<(), MigrateError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        for (rel, bytes) in &self.files {
            let path = dir.join(rel);
            let error = |source| MigrateError::Write {
                path: path.clone(),
                source,
            };
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(error)?;
            }
            let mode = if self.secret.contains(rel) {
                0o600
            } else {
                0o644
            };
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&path)
                .and_then(|mut f| f.write_all(bytes))
                .map_err(error)?;
        }
        Ok(())
    }
}
