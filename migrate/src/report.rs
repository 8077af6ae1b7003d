//! The report every front end makes: findings printed as `FILE:LINE: message` (problems,
//! which need a person, and notes), an outcome per converted file, and the summary.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

/// One line of the report: a file, the line in it when the finding is about one, and the
/// message (the construct, and what to do).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    /// The file, as found under the configuration directory.
    pub file: PathBuf,
    /// The line in that file.
    pub line: Option<usize>,
    /// What was found and what to do about it.
    pub message: String,
}

impl Finding {
    /// A finding about `file`, at `line` when it is about one.
    pub fn new(file: &Path, line: Option<usize>, message: impl Into<String>) -> Finding {
        Finding {
            file: file.to_path_buf(),
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// What happened to one file the summary counts (a template; for confd, a resource and
/// `confd.toml` too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The input file.
    pub source: PathBuf,
    /// Where the result goes: a path under the output directory, or the file itself when
    /// converted in place; `None` when nothing is written for it.
    pub written: Option<PathBuf>,
    /// Whether it converted with nothing left for a person.
    pub converted: bool,
}

/// The result of a migration: per file, every problem and every note.
#[derive(Debug, Default)]
pub struct Report {
    /// Every file counted, in the order converted.
    pub outcomes: Vec<Outcome>,
    /// What needs a person, in file and line order; a file with a problem is never written
    /// as something that would behave differently.
    pub problems: Vec<Finding>,
    /// What converted but is worth knowing, in file and line order.
    pub notes: Vec<Finding>,
}

impl Report {
    /// How many files converted completely.
    pub fn converted(&self) -> usize {
        self.outcomes.iter().filter(|t| t.converted).count()
    }

    /// How many files need a person.
    pub fn need_attention(&self) -> usize {
        let files: BTreeSet<&Path> = self.problems.iter().map(|p| p.file.as_path()).collect();
        files.len()
    }

    /// Whether nothing needs a person.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// Every line of the report, problems and notes, in file and line order (a file's
    /// problems before its notes at the same line).
    pub fn lines(&self) -> Vec<&Finding> {
        let mut lines: Vec<&Finding> = self.problems.iter().chain(&self.notes).collect();
        lines.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        lines
    }

    /// The closing line: `N converted, M need attention`.
    pub fn summary(&self) -> String {
        format!(
            "{} converted, {} need attention",
            self.converted(),
            self.need_attention()
        )
    }

    /// Puts problems and notes in file and line order, keeping the order found within a
    /// line, and each finding once.
    pub(crate) fn sort(&mut self) {
        for findings in [&mut self.problems, &mut self.notes] {
            findings.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
            let mut seen = BTreeSet::new();
            findings.retain(|f| seen.insert(f.clone()));
        }
    }
}
