//! `reconfig migrate`: a reconfig.rb configuration directory converted for reconfig. The
//! `conf.d` entries are kept byte for byte, except that one with a `reloadcmd` and no
//! `splay` gets reconfig.rb's default reload jitter written out (`splay`, a note in the
//! report); in each template the Ruby inside the tags becomes Tera with Ruby's meaning,
//! inside the same delimiters, so that reconfig renders what reconfig.rb rendered. What
//! cannot be converted is reported, one line per tag, and left in Ruby (reconfig then
//! refuses the template rather than render it differently).
//!
//! The parts, each with one job: `erubis` finds the tags as Erubis did, `lexer` and
//! `parser` read their Ruby into `ast`, `emit` writes Tera (`tera` expressions, `regex`
//! patterns), guided by the Ruby classes `types` knows, and `convert` puts one template back
//! together; `splay` adds the jitter to an entry.

mod ast;
mod convert;
mod emit;
mod erubis;
mod lexer;
mod parser;
mod regex;
mod splay;
mod tera;
mod types;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::cli::{Exit, Fatal};
use crate::config::Pattern;

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
    let in_place = out.is_none();
    let confd = cfgdir.join("conf.d");
    let templates = cfgdir.join("templates");
    if !confd.is_dir() || !templates.is_dir() {
        return Err(MigrateError::NotAConfigDir(cfgdir.to_path_buf()));
    }
    if let Some(out) = out.filter(|out| same_dir(out, cfgdir)) {
        return Err(MigrateError::OutIsCfgdir(out.to_path_buf()));
    }
    let mut report = Report::default();
    let uses = read_entries(&confd, out, &mut report)?;
    for path in files(&templates)? {
        let rel = path.strip_prefix(&templates).unwrap_or(&path).to_path_buf();
        if in_place && rel.extension().is_some_and(|x| x == "orig") {
            continue;
        }
        let template_use = uses.get(&rel);
        let pattern = template_use.map_or_else(Pattern::default, |u| u.pattern.clone());
        let recursive = template_use.is_some_and(|u| u.recursive);
        let target = match out {
            Some(out) => out.join("templates").join(&rel),
            None => path.clone(),
        };
        migrate_template(&path, &target, &pattern, recursive, in_place, &mut report)?;
    }
    report
        .problems
        .sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    Ok(report)
}

/// Copies the entries (with `--out`) and reads which pattern and data each template has.
fn read_entries(
    confd: &Path,
    out: Option<&Path>,
    report: &mut Report,
) -> Result<BTreeMap<PathBuf, Use>, MigrateError> {
    let mut uses: BTreeMap<PathBuf, Use> = BTreeMap::new();
    for path in files(confd)? {
        let bytes = std::fs::read(&path).map_err(|source| MigrateError::Read {
            path: path.clone(),
            source,
        })?;
        let splayed = with_splay(&path, &bytes, report);
        if let Some(out) = out {
            let rel = path.strip_prefix(confd).unwrap_or(&path);
            write(
                &out.join("conf.d").join(rel),
                splayed.as_deref().unwrap_or(&bytes),
            )?;
        } else if let Some(splayed) = &splayed {
            let orig = with_suffix(&path, ".orig");
            let kept = std::fs::rename(&path, &orig);
            kept.map_err(|source| MigrateError::Write { path: orig, source })?;
            write(&path, splayed)?;
        }
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let problem = |message: String| Problem {
            file: path.clone(),
            line: None,
            message,
        };
        let entry: Value = match serde_json::from_slice(&bytes) {
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

/// Converts one template and writes it to `target`.
fn migrate_template(
    path: &Path,
    target: &Path,
    pattern: &Pattern,
    recursive: bool,
    in_place: bool,
    report: &mut Report,
) -> Result<(), MigrateError> {
    let problem = |line: Option<usize>, message: String| Problem {
        file: path.to_path_buf(),
        line,
        message,
    };
    let bytes = std::fs::read(path).map_err(|source| MigrateError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let orig = with_suffix(path, ".orig");
    if in_place && orig.exists() {
        report.problems.push(problem(
            None,
            format!("{} exists: already migrated, left alone", orig.display()),
        ));
        report.templates.push(Outcome {
            source: path.to_path_buf(),
            written: None,
            converted: false,
        });
        return Ok(());
    }
    let Ok(text) = String::from_utf8(bytes.clone()) else {
        report
            .problems
            .push(problem(None, "not UTF-8: convert it to UTF-8 first".into()));
        if !in_place {
            write(target, &bytes)?;
        }
        report.templates.push(Outcome {
            source: path.to_path_buf(),
            written: (!in_place).then(|| target.to_path_buf()),
            converted: false,
        });
        return Ok(());
    };
    let converted = convert::convert(&text, pattern, recursive);
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
    let written = if writable {
        if in_place {
            std::fs::rename(path, &orig).map_err(|source| MigrateError::Write {
                path: orig.clone(),
                source,
            })?;
        }
        write(target, converted.text.as_bytes())?;
        Some(target.to_path_buf())
    } else {
        None
    };
    report.templates.push(Outcome {
        source: path.to_path_buf(),
        written,
        converted: clean,
    });
    Ok(())
}

/// The regular files under `dir`, recursively, sorted.
fn files(dir: &Path) -> Result<Vec<PathBuf>, MigrateError> {
    let mut out = vec![];
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let read = std::fs::read_dir(&dir).map_err(|source| MigrateError::Read {
            path: dir.clone(),
            source,
        })?;
        for entry in read {
            let entry = entry.map_err(|source| MigrateError::Read {
                path: dir.clone(),
                source,
            })?;
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.is_file() {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), MigrateError> {
    let error = |source| MigrateError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(error)?;
    }
    std::fs::write(path, bytes).map_err(error)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
