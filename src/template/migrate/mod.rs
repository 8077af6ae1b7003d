//! `reconfig migrate`: a reconfig.rb configuration directory converted for reconfig. The
//! `conf.d` entries are kept byte for byte, except that one with a `reloadcmd` and no
//! `splay` gets reconfig.rb's default reload jitter written out (`splay`, a note in the
//! report); in each template the Ruby inside the tags becomes Tera with Ruby's meaning,
//! inside the same delimiters, so that reconfig renders what reconfig.rb rendered. What
//! cannot be converted is reported, one line per tag, and left in Ruby (reconfig then
//! refuses the template rather than render it differently).
//!
//! The parts, each with one job: `tree` reads the configuration directory without
//! following a link, `erubis` finds the tags as Erubis did, `lexer` and `parser` read their
//! Ruby into `ast`, `emit` writes Tera (`tera` expressions, `regex` patterns), guided by the
//! Ruby classes `types` knows, `convert` puts one template back together, `splay` adds the
//! jitter to an entry, and `output` writes them, never through a link.

mod ast;
mod convert;
mod emit;
mod erubis;
mod lexer;
mod output;
mod parser;
mod regex;
mod splay;
mod tera;
mod tree;
mod types;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::cli::{Exit, Fatal};
use crate::config::Pattern;
use output::OutDir;
pub use output::OutRefusal;
use tree::{Found, Tree};

/// Why the migration could not run at all (problems with single templates are in the
/// [`Report`] instead).
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The configuration directory lacks `conf.d/` or `templates/`.
    #[error("{0}: not a reconfig.rb configuration directory (it needs conf.d/ and templates/)")]
    NotAConfigDir(PathBuf),
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

impl Fatal for MigrateError {
    fn exit(&self) -> Exit {
        Exit::Usage
    }
}

/// One thing a person has to look at: `FILE:LINE: the construct: what to write instead`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file, as found under the configuration directory.
    pub file: PathBuf,
    /// The line in that file, when it is about one.
    pub line: Option<usize>,
    /// The Ruby construct (or other trouble) and what to write instead.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// What happened to one template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The template's original path.
    pub source: PathBuf,
    /// Where the result was written; `None` when it was not.
    pub written: Option<PathBuf>,
    /// Whether every tag converted.
    pub converted: bool,
}

/// The result of a migration: per template, and every problem found.
#[derive(Debug, Default)]
pub struct Report {
    /// Every template, in path order.
    pub templates: Vec<Outcome>,
    /// Every problem, in file and line order.
    pub problems: Vec<Problem>,
    /// What was changed beyond the templates' Ruby, for a person to know (not a failure):
    /// one line per entry given a `splay`.
    pub notes: Vec<Problem>,
}

impl Report {
    /// How many templates converted completely.
    pub fn converted(&self) -> usize {
        self.templates.iter().filter(|t| t.converted).count()
    }

    /// How many templates (or entries) need a person.
    pub fn need_attention(&self) -> usize {
        let mut files: Vec<&Path> = self.problems.iter().map(|p| p.file.as_path()).collect();
        files.sort();
        files.dedup();
        files.len()
    }

    /// Every line of the report, problems and notes, in file and line order.
    pub fn lines(&self) -> Vec<&Problem> {
        let mut lines: Vec<&Problem> = self.problems.iter().chain(&self.notes).collect();
        lines.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        lines
    }

    /// Whether everything converted.
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
}

/// How the entries use a template: its pattern, and whether all of them are recursive.
struct Use {
    pattern: Pattern,
    recursive: bool,
}

/// Converts the configuration in `cfgdir` into `out`, or in place (keeping each original as
/// `NAME.orig`) when there is none, and reports what happened.
pub fn migrate(cfgdir: &Path, out: Option<&Path>) -> Result<Report, MigrateError> {
    let config = tree::read_config(cfgdir)?;
    if let Some(out) = out.filter(|out| same_dir(out, cfgdir)) {
        return Err(MigrateError::OutIsCfgdir(out.to_path_buf()));
    }
    let mut out = out.map(|out| OutDir::open(out, config.meta)).transpose()?;
    let mut report = Report::default();
    for tree in [&config.confd, &config.templates] {
        report
            .problems
            .extend(tree.skipped.iter().map(|skipped| Problem {
                file: tree.path.join(&skipped.rel),
                line: None,
                message: skipped.reason.clone(),
            }));
    }
    let uses = read_entries(&config.confd, out.as_mut(), &mut report)?;
    for found in &config.templates.files {
        if out.is_none() && found.rel.extension().is_some_and(|x| x == "orig") {
            continue;
        }
        let template_use = uses.get(&found.rel);
        let pattern = template_use.map_or_else(Pattern::default, |u| u.pattern.clone());
        let recursive = template_use.is_some_and(|u| u.recursive);
        let templates = &config.templates;
        migrate_template(
            templates,
            found,
            out.as_mut(),
            &pattern,
            recursive,
            &mut report,
        )?;
    }
    if let Some(out) = out {
        out.finish()?;
    }
    report
        .problems
        .sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    Ok(report)
}

/// Copies the entries (with `--out`) and reads which pattern and data each template has.
fn read_entries(
    confd: &Tree,
    mut out: Option<&mut OutDir>,
    report: &mut Report,
) -> Result<BTreeMap<PathBuf, Use>, MigrateError> {
    let mut uses: BTreeMap<PathBuf, Use> = BTreeMap::new();
    for found in &confd.files {
        let path = confd.path.join(&found.rel);
        let splayed = with_splay(&path, &found.bytes, report);
        let bytes = splayed.as_deref().unwrap_or(&found.bytes);
        if let Some(out) = out.as_deref_mut() {
            out.write("conf.d", confd, found, bytes)?;
        } else if splayed.is_some() && !output::has_orig(found, &path)? {
            output::replace(found, &path, bytes)?;
        }
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let problem = |message: String| Problem {
            file: path.clone(),
            line: None,
            message,
        };
        let entry: Value = match serde_json::from_slice(bytes) {
            Ok(entry) => entry,
            Err(e) => {
                report.problems.push(problem(format!(
                    "not valid JSON ({e}): fix the entry; its template is converted with the default pattern"
                )));
                continue;
            }
        };
        let Some(source) = entry.get("source").and_then(Value::as_str) else {
            continue;
        };
        let pattern = match entry.get("pattern").and_then(Value::as_str) {
            None => Pattern::default(),
            Some(text) => match Pattern::parse(text) {
                Ok(p) => p,
                Err(e) => {
                    report
                        .problems
                        .push(problem(format!("{e}: fix the entry's pattern")));
                    continue;
                }
            },
        };
        if regex_special(&pattern) {
            report.problems.push(problem(format!(
                "pattern \"{pattern}\" holds regexp characters, which Erubis read as a regexp: \
                 use delimiters without . * + ? ( ) [ ] {{ }} | ^ $ \\"
            )));
        }
        let recursive = entry
            .get("recursive")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let rel = PathBuf::from(source);
        match uses.get_mut(&rel) {
            Some(existing) if existing.pattern != pattern => {
                report.problems.push(problem(format!(
                    "template {source} is also used with pattern \"{}\": give each pattern its own template",
                    existing.pattern
                )));
            }
            Some(existing) => existing.recursive &= recursive,
            None => {
                uses.insert(rel, Use { pattern, recursive });
            }
        }
    }
    Ok(uses)
}

/// An entry file's bytes with reconfig.rb's reload jitter written out, when it needs it
/// (noted in the report); None when it stays as it is.
fn with_splay(path: &Path, bytes: &[u8], report: &mut Report) -> Option<Vec<u8>> {
    if path.extension().is_none_or(|x| x != "json") {
        return None;
    }
    let entry: Value = serde_json::from_slice(bytes).ok()?;
    let splayed = splay::with_default(bytes, &entry)?;
    report.notes.push(Problem {
        file: path.to_path_buf(),
        line: None,
        message: format!(
            "reloadcmd without splay: \"splay\": \"{}\" added, as reconfig.rb waited a random \
             1-10 s before each reload",
            splay::DEFAULT
        ),
    });
    Some(splayed)
}

/// Whether Erubis, which puts the delimiters into a regexp unescaped, read them otherwise.
fn regex_special(pattern: &Pattern) -> bool {
    let special = |s: &str| s.chars().any(|c| ".*+?()[]{}|^$\\".contains(c));
    special(&pattern.open) || special(&pattern.close)
}

/// Converts the template `found` in `tree` and writes it into `out`, or in its place when
/// there is none.
fn migrate_template(
    tree: &Tree,
    found: &Found,
    out: Option<&mut OutDir>,
    pattern: &Pattern,
    recursive: bool,
    report: &mut Report,
) -> Result<(), MigrateError> {
    let path = tree.path.join(&found.rel);
    let path = path.as_path();
    let problem = |line: Option<usize>, message: String| Problem {
        file: path.to_path_buf(),
        line,
        message,
    };
    if out.is_none() && output::has_orig(found, path)? {
        report.problems.push(problem(
            None,
            format!(
                "{}.orig exists: already migrated, left alone",
                path.display()
            ),
        ));
        report.templates.push(Outcome {
            source: path.to_path_buf(),
            written: None,
            converted: false,
        });
        return Ok(());
    }
    let Ok(text) = std::str::from_utf8(&found.bytes) else {
        report
            .problems
            .push(problem(None, "not UTF-8: convert it to UTF-8 first".into()));
        let written = match out {
            Some(out) => Some(out.write("templates", tree, found, &found.bytes)?),
            None => None,
        };
        report.templates.push(Outcome {
            source: path.to_path_buf(),
            written,
            converted: false,
        });
        return Ok(());
    };
    let converted = convert::convert(text, pattern, recursive);
    let mut problems: Vec<Problem> = converted
        .problems
        .iter()
        .map(|u| problem(Some(u.line), u.to_string()))
        .collect();
    let compiles = super::compile(&path.display().to_string(), &converted.text, pattern);
    let mut writable = true;
    match (&compiles, problems.is_empty()) {
        (Err(e), true) => problems.push(problem(
            e.line(),
            format!("the converted template does not compile ({e}): please report this"),
        )),
        (Ok(_), false) => {
            // The Ruby left in place happens to be valid Tera: writing it would render
            // something else, so the template is not written.
            writable = false;
            problems.push(problem(
                None,
                "not written: the Ruby left in it would be read as Tera".into(),
            ));
        }
        _ => {}
    }
    problems.extend(
        converted
            .notes
            .iter()
            .map(|u| problem(Some(u.line), u.to_string())),
    );
    let clean = problems.is_empty();
    report.problems.extend(problems);
    let bytes = converted.text.as_bytes();
    let written = match out {
        _ if !writable => None,
        Some(out) => Some(out.write("templates", tree, found, bytes)?),
        None => {
            output::replace(found, path, bytes)?;
            Some(path.to_path_buf())
        }
    };
    report.templates.push(Outcome {
        source: path.to_path_buf(),
        written,
        converted: clean,
    });
    Ok(())
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
