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
pub mod gopath;
pub mod gotmpl;
mod resource;
mod settings;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::tree::{self, Found, Tree};
use crate::{Delimiters, Destination, Engine, Finding, MigrateError, Migration, Outcome, Report};
pub use convert::convert;
pub use functions::converted as converted_functions;

/// confd's own settings, at the top of its directory.
const SETTINGS: &str = "confd.toml";

/// Converts the confd configuration in `confdir` into `out`, a directory migrate creates
/// or an empty one of the running user's; `engine` compiles the converted templates.
pub fn migrate(confdir: &Path, out: &Path, engine: &dyn Engine) -> Result<Report, MigrateError> {
    let config = tree::read_config(confdir, "confd", &[SETTINGS])?;
    let mut m = Migration::of(&config);
    let prefix = match config.top.find(Path::new(SETTINGS)) {
        Some(found) => settings_file(&config.top, found, &mut m),
        None => None,
    };
    // The templates the resources use.
    let mut uses: BTreeSet<PathBuf> = BTreeSet::new();
    for found in &config.confd.files {
        if found.rel.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        let path = config.confd.path.join(&found.rel);
        resource_file(&path, found, &config, prefix.as_deref(), &mut uses, &mut m);
    }
    for src in &uses {
        if let Some(found) = config.templates.find(src) {
            template_file(&config.templates, found, engine, &mut m);
        }
    }
    m.finish(&Destination::Out(out.to_path_buf()))
}

/// A file's text, or why it has none.
fn text(found: &Found) -> Result<&str, String> {
    std::str::from_utf8(&found.bytes).map_err(|_| "not UTF-8".to_string())
}

/// `confd.toml`: its settings into `reconfig.env` (mode 0600: it may hold the password);
/// returns confd's global prefix.
fn settings_file(top: &Tree, found: &Found, m: &mut Migration) -> Option<String> {
    let path = top.path.join(&found.rel);
    let s = match text(found).and_then(settings::parse) {
        Ok(s) => s,
        Err(e) => {
            m.report.problems.push(Finding::new(&path, None, e));
            return None;
        }
    };
    let env = settings::env_file(&s.env).into_bytes();
    let written = m.output.secret(Path::new("reconfig.env"), &found.meta, env);
    m.report.notes.push(Finding::new(
        &path,
        None,
        "note: the connection settings are in reconfig.env: give it to the unit \
         (EnvironmentFile=)",
    ));
    m.report
        .notes
        .extend(s.notes.into_iter().map(|n| Finding::new(&path, None, n)));
    let clean = s.problems.is_empty();
    m.report
        .problems
        .extend(s.problems.into_iter().map(|p| Finding::new(&path, None, p)));
    m.report.outcomes.push(Outcome {
        source: path,
        written: Some(written),
        converted: clean,
    });
    s.prefix
}

/// A resource (`found` at `path`) into its entry, `conf.d/<stem>.json`, with the mode and
/// owner of the resource; the template it uses into `uses`.
fn resource_file(
    path: &Path,
    found: &Found,
    config: &tree::Config,
    global_prefix: Option<&str>,
    uses: &mut BTreeSet<PathBuf>,
    m: &mut Migration,
) {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut outcome = Outcome {
        source: path.to_path_buf(),
        written: None,
        converted: false,
    };
    let mut r = match text(found).and_then(resource::parse) {
        Ok(r) => r,
        Err(e) => {
            m.report.problems.push(Finding::new(
                path,
                None,
                format!("{e}: confd refuses it too"),
            ));
            m.report.outcomes.push(outcome);
            return;
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
    match config.templates.find(Path::new(&r.src)) {
        Some(template) => {
            uses.insert(template.rel.clone());
        }
        None => problems.push(format!(
            "template {} not found (migrate reads only the regular files inside templates/)",
            r.src
        )),
    }
    let checkcmd = match r
        .check_cmd
        .as_deref()
        .map(|c| resource::check_cmd(c, &r.dest))
    {
        None => None,
        Some(Ok((cmd, notes))) => {
            for note in notes {
                m.report.notes.push(Finding::new(path, None, note));
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
        let mut bytes = serde_json::to_vec_pretty(&entry).expect("JSON");
        bytes.push(b'\n');
        let rel = PathBuf::from(format!("{stem}.json"));
        let written = m
            .output
            .copy("conf.d", &config.confd, &rel, &found.meta, bytes);
        outcome.written = Some(written);
        outcome.converted = true;
    }
    for p in problems {
        m.report.problems.push(Finding::new(path, None, p));
    }
    m.report.outcomes.push(outcome);
}

/// A template (`found` in `templates`) into plain Tera, with its mode and owner.
fn template_file(templates: &Tree, found: &Found, engine: &dyn Engine, m: &mut Migration) {
    let path = templates.path.join(&found.rel);
    let mut outcome = Outcome {
        source: path.clone(),
        written: None,
        converted: false,
    };
    let Ok(text) = text(found) else {
        m.report.problems.push(Finding::new(
            &path,
            None,
            "not UTF-8: reconfig templates are text; convert it to UTF-8 first",
        ));
        m.report.outcomes.push(outcome);
        return;
    };
    let name = found.name().to_string_lossy();
    let converted = convert(&name, text);
    let mut problems: Vec<Finding> = converted
        .problems
        .iter()
        .map(|(line, msg)| Finding::new(&path, Some(*line), msg.clone()))
        .collect();
    if problems.is_empty() {
        let name = path.display().to_string();
        if let Err(e) = engine.compiles(&name, &converted.text, &Delimiters::plain()) {
            problems.push(Finding::new(
                &path,
                None,
                format!(
                    "the converted template does not compile ({}): please report this",
                    e.message
                ),
            ));
        }
    }
    for (line, note) in &converted.notes {
        m.report
            .notes
            .push(Finding::new(&path, Some(*line), note.clone()));
    }
    if problems.is_empty() {
        let bytes = converted.text.into_bytes();
        let written = m
            .output
            .copy("templates", templates, &found.rel, &found.meta, bytes);
        outcome.written = Some(written);
        outcome.converted = true;
    }
    m.report.problems.extend(problems);
    m.report.outcomes.push(outcome);
}
