//! The reconfig.rb front end: a reconfig.rb configuration directory converted for
//! reconfig. The `conf.d` entries are kept byte for byte, except that one with a
//! `reloadcmd` and no `splay` gets reconfig.rb's default reload jitter written out
//! (`splay`, a note in the report); in each template the Ruby inside the tags becomes Tera
//! with Ruby's meaning, inside the same delimiters, so that reconfig renders what
//! reconfig.rb rendered. What cannot be converted is reported, one line per tag, and left
//! in Ruby (reconfig then refuses the template rather than render it differently).
//!
//! The parts, each with one job: `erubis` finds the tags as Erubis did, `lexer` and
//! `parser` read their Ruby into `ast`, `emit` writes Tera (`tera` expressions, `regex`
//! patterns), guided by the Ruby classes `types` knows, `convert` puts one template back
//! together, and `splay` adds the jitter to an entry. The crate's `tree` reads the
//! directory and its `output` writes the result, neither following a link.

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
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::output::has_orig;
use crate::tree::{self, Found, Tree};
use crate::{Delimiters, Destination, Engine, Finding, MigrateError, Migration, Outcome, Report};

/// Whose configuration this front end reads, for messages.
const TOOL: &str = "reconfig.rb";

/// How the entries use a template: its delimiters, and whether all of them are recursive.
struct Use {
    pattern: Delimiters,
    recursive: bool,
}

/// Converts the configuration in `cfgdir` `into` a new directory, or in place (keeping
/// each original as `NAME.orig`), and reports what happened; `engine` reads the entries'
/// patterns and compiles the converted templates.
pub fn migrate(
    cfgdir: &Path,
    into: &Destination,
    engine: &dyn Engine,
) -> Result<Report, MigrateError> {
    let config = tree::read_config(cfgdir, TOOL, &[])?;
    if let Destination::Out(out) = into {
        if same_dir(out, cfgdir) {
            return Err(MigrateError::OutIsCfgdir(out.clone()));
        }
    }
    let in_place = *into == Destination::InPlace;
    let mut m = Migration::of(&config);
    let uses = read_entries(&config.confd, in_place, engine, &mut m)?;
    for found in &config.templates.files {
        if in_place && found.rel.extension().is_some_and(|x| x == "orig") {
            continue;
        }
        let template_use = uses.get(&found.rel);
        let pattern = template_use.map_or_else(Delimiters::default, |u| u.pattern.clone());
        let recursive = template_use.is_some_and(|u| u.recursive);
        let templates = &config.templates;
        migrate_template(
            templates, found, in_place, &pattern, recursive, engine, &mut m,
        )?;
    }
    m.finish(into)
}

/// Copies the entries (with `--out`; in place, only those given a `splay`) and reads which
/// pattern and data each template has.
fn read_entries(
    confd: &Tree,
    in_place: bool,
    engine: &dyn Engine,
    m: &mut Migration,
) -> Result<BTreeMap<PathBuf, Use>, MigrateError> {
    let mut uses: BTreeMap<PathBuf, Use> = BTreeMap::new();
    for found in &confd.files {
        let path = confd.path.join(&found.rel);
        let splayed = with_splay(&path, &found.bytes, &mut m.report);
        let bytes = splayed.as_deref().unwrap_or(&found.bytes);
        if !in_place {
            m.output
                .copy("conf.d", confd, &found.rel, &found.meta, bytes.to_vec());
        } else if splayed.is_some() && !has_orig(found, &path)? {
            m.output.replace(found, &path, bytes.to_vec());
        }
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let mut problem =
            |message: String| m.report.problems.push(Finding::new(&path, None, message));
        let entry: Value = match serde_json::from_slice(bytes) {
            Ok(entry) => entry,
            Err(e) => {
                problem(format!(
                    "not valid JSON ({e}): fix the entry; its template is converted with the default pattern"
                ));
                continue;
            }
        };
        let Some(source) = entry.get("source").and_then(Value::as_str) else {
            continue;
        };
        let pattern = match entry.get("pattern").and_then(Value::as_str) {
            None => Delimiters::default(),
            Some(text) => match engine.delimiters(text) {
                Ok(p) => p,
                Err(e) => {
                    problem(format!("{e}: fix the entry's pattern"));
                    continue;
                }
            },
        };
        if regex_special(&pattern) {
            problem(format!(
                "pattern \"{pattern}\" holds regexp characters, which Erubis read as a regexp: \
                 use delimiters without . * + ? ( ) [ ] {{ }} | ^ $ \\"
            ));
        }
        let recursive = entry
            .get("recursive")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let rel = PathBuf::from(source);
        match uses.get_mut(&rel) {
            Some(existing) if existing.pattern != pattern => {
                problem(format!(
                    "template {source} is also used with pattern \"{}\": give each pattern its own template",
                    existing.pattern
                ));
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
    report.notes.push(Finding::new(
        path,
        None,
        format!(
            "reloadcmd without splay: \"splay\": \"{}\" added, as reconfig.rb waited a random \
             1-10 s before each reload",
            splay::DEFAULT
        ),
    ));
    Some(splayed)
}

/// Whether Erubis, which puts the delimiters into a regexp unescaped, read them otherwise.
fn regex_special(pattern: &Delimiters) -> bool {
    let special = |s: &str| s.chars().any(|c| ".*+?()[]{}|^$\\".contains(c));
    special(&pattern.open) || special(&pattern.close)
}

/// Converts the template `found` in `tree` into the output, under `OUT` or in its place.
fn migrate_template(
    tree: &Tree,
    found: &Found,
    in_place: bool,
    pattern: &Delimiters,
    recursive: bool,
    engine: &dyn Engine,
    m: &mut Migration,
) -> Result<(), MigrateError> {
    let path = tree.path.join(&found.rel);
    let path = path.as_path();
    let problem = |line: Option<usize>, message: String| Finding::new(path, line, message);
    let outcome = |written: Option<PathBuf>, converted: bool| Outcome {
        source: path.to_path_buf(),
        written,
        converted,
    };
    if in_place && has_orig(found, path)? {
        m.report.problems.push(problem(
            None,
            format!(
                "{}.orig exists: already migrated, left alone",
                path.display()
            ),
        ));
        m.report.outcomes.push(outcome(None, false));
        return Ok(());
    }
    let Ok(text) = std::str::from_utf8(&found.bytes) else {
        m.report
            .problems
            .push(problem(None, "not UTF-8: convert it to UTF-8 first".into()));
        let written = (!in_place).then(|| {
            m.output.copy(
                "templates",
                tree,
                &found.rel,
                &found.meta,
                found.bytes.clone(),
            )
        });
        m.report.outcomes.push(outcome(written, false));
        return Ok(());
    };
    let converted = convert::convert(text, pattern, recursive);
    let mut problems: Vec<Finding> = converted
        .problems
        .iter()
        .map(|u| problem(Some(u.line), u.to_string()))
        .collect();
    let compiles = engine.compiles(&path.display().to_string(), &converted.text, pattern);
    let mut writable = true;
    match (compiles, problems.is_empty()) {
        (Err(e), true) => problems.push(problem(
            e.line,
            format!(
                "the converted template does not compile ({}): please report this",
                e.message
            ),
        )),
        (Ok(()), false) => {
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
    m.report.problems.extend(problems);
    let bytes = converted.text.into_bytes();
    let written = match in_place {
        _ if !writable => None,
        false => Some(
            m.output
                .copy("templates", tree, &found.rel, &found.meta, bytes),
        ),
        true => {
            m.output.replace(found, path, bytes);
            Some(path.to_path_buf())
        }
    };
    m.report.outcomes.push(outcome(written, clean));
    Ok(())
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
