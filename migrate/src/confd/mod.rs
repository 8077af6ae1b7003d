//! The confd front end: a confd configuration directory (`conf.d/*.toml` template
//! resources, `templates/`) becomes reconfig entries (`conf.d/<stem>.json`) and plain-Tera
//! templates with the meaning Go's `text/template` and confd's functions gave them.
//!
//! The parts: `gotmpl` reads Go templates as Go does (lexer, parser, constants), `functions`
//! knows confd's function set, `convert` writes one template as Tera, `resource` reads a
//! TOML resource and writes its entry, `settings` turns `confd.toml` into the unit's
//! environment file (`reconfig.env`).

mod convert;
mod functions;
pub mod gotmpl;
mod resource;
mod settings;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::{Check, Finding, MigrateError, Migration, Outcome};
pub use convert::convert;

/// Converts the confd configuration in `confdir`; `check` says whether a converted
/// template compiles in reconfig.
pub fn migrate(confdir: &Path, check: Check<'_>) -> Result<Migration, MigrateError> {
    let confd = confdir.join("conf.d");
    let templates = confdir.join("templates");
    if !confd.is_dir() || !templates.is_dir() {
        return Err(MigrateError::NotAConfigDir {
            path: confdir.to_path_buf(),
            tool: "confd",
            needs: "it needs conf.d/ and templates/",
        });
    }
    let mut m = Migration::default();
    let prefix = settings_file(&confdir.join("confd.toml"), &mut m)?;
    // The templates the resources use.
    let mut uses: BTreeSet<String> = BTreeSet::new();
    for path in files(&confd)? {
        if path.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        resource_file(&path, &templates, prefix.as_deref(), &mut uses, &mut m)?;
    }
    for src in &uses {
        template_file(&templates.join(src), src, check, &mut m)?;
    }
    m.report.sort();
    Ok(m)
}

fn read(path: &Path) -> Result<Vec<u8>, MigrateError> {
    std::fs::read(path).map_err(|source| MigrateError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn finding(file: &Path, line: Option<usize>, message: impl Into<String>) -> Finding {
    Finding {
        file: file.to_path_buf(),
        line,
        message: message.into(),
    }
}

/// `confd.toml`, when there is one: its settings into `reconfig.env` (mode 0600: it may hold
/// the password); returns confd's global prefix.
fn settings_file(path: &Path, m: &mut Migration) -> Result<Option<String>, MigrateError> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = String::from_utf8(read(path)?).map_err(|_| "not UTF-8".to_string());
    let s = match text.and_then(|t| settings::parse(&t)) {
        Ok(s) => s,
        Err(e) => {
            m.report.problems.push(finding(path, None, e));
            return Ok(None);
        }
    };
    let rel = PathBuf::from("reconfig.env");
    m.output
        .files
        .insert(rel.clone(), settings::env_file(&s.env).into_bytes());
    m.output.secret.insert(rel.clone());
    m.report.notes.push(finding(
        path,
        None,
        "note: the connection settings are in reconfig.env: give it to the unit \
         (EnvironmentFile=)",
    ));
    m.report
        .notes
        .extend(s.notes.into_iter().map(|n| finding(path, None, n)));
    let clean = s.problems.is_empty();
    m.report
        .problems
        .extend(s.problems.into_iter().map(|p| finding(path, None, p)));
    m.report.outcomes.push(Outcome {
        source: path.to_path_buf(),
        written: Some(rel),
        converted: clean,
    });
    Ok(s.prefix)
}

fn resource_file(
    path: &Path,
    templates: &Path,
    global_prefix: Option<&str>,
    uses: &mut BTreeSet<String>,
    m: &mut Migration,
) -> Result<(), MigrateError> {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut outcome = Outcome {
        source: path.to_path_buf(),
        written: None,
        converted: false,
    };
    let text = String::from_utf8(read(path)?).map_err(|_| "not UTF-8".to_string());
    let parsed = text.and_then(|t| resource::parse(&t));
    let mut r = match parsed {
        Ok(r) => r,
        Err(e) => {
            m.report
                .problems
                .push(finding(path, None, format!("{e}: confd refuses it too")));
            m.report.outcomes.push(outcome);
            return Ok(());
        }
    };
    if let Some(prefix) = global_prefix {
        // confd's global prefix replaces the resource's.
        r.prefix = prefix.to_string();
    }
    let mut problems = vec![];
    if r.keys.is_empty() {
        problems.push("no keys: list the keys the template reads".to_string());
    }
    if !templates.join(&r.src).is_file() {
        problems.push(format!("template {} not found", r.src));
    }
    uses.insert(r.src.clone());
    let checkcmd = match r
        .check_cmd
        .as_deref()
        .map(|c| resource::check_cmd(c, &r.dest))
    {
        None => None,
        Some(Ok((cmd, notes))) => {
            for note in notes {
                m.report.notes.push(finding(path, None, note));
            }
            Some(cmd)
        }
        Some(Err(e)) => {
            problems.push(e);
            None
        }
    };
    if problems.is_empty() {
        let entry = resource::entry(&stem, &r, checkcmd);
        let rel = PathBuf::from("conf.d").join(format!("{stem}.json"));
        let mut bytes = serde_json::to_vec_pretty(&entry).expect("JSON");
        bytes.push(b'\n');
        m.output.files.insert(rel.clone(), bytes);
        outcome.written = Some(rel);
        outcome.converted = true;
    }
    for p in problems {
        m.report.problems.push(finding(path, None, p));
    }
    m.report.outcomes.push(outcome);
    Ok(())
}

fn template_file(
    path: &Path,
    src: &str,
    check: Check<'_>,
    m: &mut Migration,
) -> Result<(), MigrateError> {
    let mut outcome = Outcome {
        source: path.to_path_buf(),
        written: None,
        converted: false,
    };
    if !path.is_file() {
        return Ok(());
    }
    let Ok(text) = String::from_utf8(read(path)?) else {
        m.report.problems.push(finding(
            path,
            None,
            "not UTF-8: reconfig templates are text; convert it to UTF-8 first",
        ));
        m.report.outcomes.push(outcome);
        return Ok(());
    };
    let name = Path::new(src)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let converted = convert(&name, &text);
    let mut problems: Vec<Finding> = converted
        .problems
        .iter()
        .map(|(line, msg)| finding(path, Some(*line), msg.clone()))
        .collect();
    if problems.is_empty() {
        if let Err(e) = check(&path.display().to_string(), &converted.text) {
            problems.push(finding(
                path,
                None,
                format!("the converted template does not compile ({e}): please report this"),
            ));
        }
    }
    for (line, note) in &converted.notes {
        m.report
            .notes
            .push(finding(path, Some(*line), note.clone()));
    }
    if problems.is_empty() {
        let rel = PathBuf::from("templates").join(src);
        m.output
            .files
            .insert(rel.clone(), converted.text.into_bytes());
        outcome.written = Some(rel);
        outcome.converted = true;
    }
    m.report.problems.extend(problems);
    m.report.outcomes.push(outcome);
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
            let path = entry
                .map_err(|source| MigrateError::Read {
                    path: dir.clone(),
                    source,
                })?
                .path();
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
