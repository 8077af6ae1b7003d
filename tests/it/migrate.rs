//! `reconfig migrate` against reconfig.rb itself.
//!
//! The corpus under `tests/migrate/corpus` is a reconfig.rb configuration (haproxy, nginx,
//! varnish with `#% %#`, /etc/hosts, JSON and YAML app configs, pg_hba from altkeys, feature
//! flags, numbered lists, directory listings). Each entry is rendered over every dataset
//! under `tests/migrate/datasets` by Ruby — Debian's `ruby` and `ruby-erubis`, installed by
//! `scripts/deps` — with reconfig.rb's data model (`tests/migrate/render.rb`, one process for
//! all), then converted by `reconfig migrate` and rendered by reconfig: the bytes must be the
//! same (YAML compared as data), and a render must fail in reconfig exactly when it failed in
//! Ruby. Templates generated from the supported grammar are compared the same way. The
//! "needs a person" corpus must be reported tag by tag, and what it reports must not be
//! written as something that renders.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reconfig::{
    altdata_model, compile, data_model, ModelError, Pattern, RenderInput, RenderLimits, Snapshot,
    Template,
};
use serde_json::{json, Value};

use crate::common::{names, run_jobs, tree_state};

fn here(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/migrate")
        .join(path)
}

fn read_json(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `reconfig migrate ARGS`: exit code and stdout.
fn migrate(args: &[&str]) -> (i32, String) {
    let (code, stdout, _) = migrate_logged(args);
    (code, stdout)
}

/// `reconfig migrate ARGS`: exit code, stdout (the report) and stderr (a fatal error).
fn migrate_logged(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_reconfig"))
        .arg("migrate")
        .args(args)
        .output()
        .expect("reconfig runs");
    (
        out.status.code().expect("exited"),
        String::from_utf8(out.stdout).expect("UTF-8 report"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One `conf.d` entry, as the tests need it.
struct Entry {
    id: String,
    key: String,
    recursive: bool,
    altkeys: BTreeMap<String, String>,
    source: String,
    pattern: Option<String>,
}

fn entries(cfgdir: &Path) -> Vec<Entry> {
    let mut files: Vec<PathBuf> = fs::read_dir(cfgdir.join("conf.d"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let e = read_json(f);
            Entry {
                id: e["id"].as_str().unwrap().to_string(),
                key: e["key"].as_str().unwrap().to_string(),
                recursive: e["recursive"].as_bool().unwrap_or(false),
                altkeys: serde_json::from_value(e["altkeys"].clone()).unwrap_or_default(),
                source: e["source"].as_str().unwrap().to_string(),
                pattern: e["pattern"].as_str().map(str::to_string),
            }
        })
        .collect()
}

fn datasets() -> Vec<PathBuf> {
    let mut sets: Vec<PathBuf> = fs::read_dir(here("datasets"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    sets.sort();
    sets
}

/// What a render gave.
#[derive(Debug, PartialEq)]
enum Rendered {
    Output(String),
    Failed(String),
    /// Nothing at the watched key: reconfig.rb and reconfig leave the target alone.
    Missing,
}

/// A render job: an entry's template (in `cfgdir`) over a snapshot file.
struct Job<'a> {
    entry: &'a Entry,
    cfgdir: &'a Path,
    snapshot: &'a Path,
}

/// Renders the jobs with Ruby and Erubis, all in one Ruby process.
fn ruby_render(jobs: &[Job<'_>]) -> Vec<Rendered> {
    let list: Vec<Value> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| {
            json!({
                "id": i,
                "template": j.cfgdir.join("templates").join(&j.entry.source),
                "pattern": j.entry.pattern,
                "key": j.entry.key,
                "recursive": j.entry.recursive,
                "altkeys": j.entry.altkeys,
                "snapshot": j.snapshot,
            })
        })
        .collect();
    let mut ruby = Command::new("ruby");
    ruby.arg(here("render.rb"));
    let results = run_jobs(ruby, &list);
    results
        .into_iter()
        .map(|r| {
            if r["missing"] == json!(true) {
                Rendered::Missing
            } else if let Some(e) = r["error"].as_str() {
                Rendered::Failed(e.to_string())
            } else {
                Rendered::Output(r["output"].as_str().unwrap().to_string())
            }
        })
        .collect()
}

fn snapshot(path: &Path) -> Snapshot {
    let flat = read_json(path);
    Snapshot::new(
        1,
        flat.as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().as_bytes().to_vec()))
            .collect(),
    )
}

/// Renders a job with reconfig's library: the entry's data model from the snapshot.
fn reconfig_render(job: &Job<'_>) -> Rendered {
    let pattern = Pattern::parse(job.entry.pattern.as_deref().unwrap_or("<% %>")).unwrap();
    let path = job.cfgdir.join("templates").join(&job.entry.source);
    let template = match Template::load(&path, &pattern) {
        Ok(t) => t,
        Err(e) => return Rendered::Failed(e.to_string()),
    };
    let snapshot = snapshot(job.snapshot);
    let data = match data_model(&snapshot, &job.entry.key, job.entry.recursive) {
        Ok(data) => data,
        Err(ModelError::Missing(_)) => return Rendered::Missing,
        Err(e) => return Rendered::Failed(e.to_string()),
    };
    let altdata = altdata_model(&snapshot, &job.entry.altkeys).unwrap();
    let input = RenderInput {
        data: data.into(),
        altdata,
        watched: &job.entry.key,
        snapshot: &Arc::new(snapshot.clone()),
        prefix: None,
        read: &[],
    };
    match template.render(input, &Default::default(), None) {
        Ok(text) => Rendered::Output(text),
        Err(e) => Rendered::Failed(e.to_string()),
    }
}

/// Compares Ruby's and reconfig's renders of the same jobs; returns how many produced
/// output, or panics listing every difference.
fn compare(ruby_jobs: &[Job<'_>], ours: &[Job<'_>], what: &str) -> usize {
    let expected = ruby_render(ruby_jobs);
    let mut failures = String::new();
    let mut outputs = 0;
    for ((ruby_job, job), want) in ruby_jobs.iter().zip(ours).zip(&expected) {
        let got = reconfig_render(job);
        let name = format!(
            "{} ({}) over {}",
            ruby_job.entry.id,
            ruby_job.entry.source,
            job.snapshot.file_name().unwrap().to_string_lossy()
        );
        let yaml = job.entry.source.ends_with(".yaml.erb");
        match (want, &got) {
            (Rendered::Output(a), Rendered::Output(b)) if yaml => {
                let a: serde_yaml_ng::Value = serde_yaml_ng::from_str(a).unwrap();
                match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(b) {
                    Ok(b) if a == b => outputs += 1,
                    _ => writeln!(failures, "{name}: YAML differs:\n{a:?}\n---\n{b}").unwrap(),
                }
            }
            (Rendered::Output(a), Rendered::Output(b)) if a == b => outputs += 1,
            (Rendered::Failed(_), Rendered::Failed(_)) | (Rendered::Missing, Rendered::Missing) => {
            }
            _ => writeln!(
                failures,
                "{name}:\n  Ruby:     {want:?}\n  reconfig: {got:?}\n  template: {}",
                job.cfgdir
                    .join("templates")
                    .join(&job.entry.source)
                    .display()
            )
            .unwrap(),
        }
    }
    assert!(failures.is_empty(), "{what}: renders differ:\n{failures}");
    outputs
}

#[test]
fn corpus_renders_as_reconfig_rb_did() {
    let corpus = here("corpus");
    let out = tempfile::tempdir().unwrap();
    let (code, report) = migrate(&[
        "--cfgdir",
        corpus.to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
    ]);
    let entries = entries(&corpus);
    assert_eq!(code, 0, "{report}");
    let splayed = ["haproxy.json", "nginx.json"];
    let mut expected: Vec<String> = splayed
        .iter()
        .map(|name| {
            let entry = corpus.join("conf.d").join(name);
            format!("{}: reloadcmd without splay: ", entry.display())
        })
        .collect();
    expected.push(format!("{} converted, 0 need attention", entries.len()));
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), expected.len(), "{report}");
    for (line, start) in lines.iter().zip(&expected) {
        assert!(line.starts_with(start.as_str()), "{line}");
    }
    for name in fs::read_dir(corpus.join("conf.d")).unwrap() {
        let name = name.unwrap().file_name();
        let original = read_json(&corpus.join("conf.d").join(&name));
        let written = read_json(&out.path().join("conf.d").join(&name));
        if splayed.contains(&name.to_str().unwrap()) {
            let mut with_splay = original;
            with_splay["splay"] = json!("10s");
            assert_eq!(written, with_splay, "{name:?} gets reconfig.rb's jitter");
        } else {
            assert_eq!(
                fs::read(corpus.join("conf.d").join(&name)).unwrap(),
                fs::read(out.path().join("conf.d").join(&name)).unwrap(),
                "other conf.d entries are copied as they are"
            );
        }
    }
    let sets = datasets();
    let mut ruby_jobs = vec![];
    let mut ours = vec![];
    for entry in &entries {
        for set in &sets {
            ruby_jobs.push(Job {
                entry,
                cfgdir: &corpus,
                snapshot: set,
            });
            ours.push(Job {
                entry,
                cfgdir: out.path(),
                snapshot: set,
            });
        }
    }
    let outputs = compare(&ruby_jobs, &ours, "corpus");
    // Every entry renders over most datasets; a broken comparison would show up here.
    assert!(
        outputs >= entries.len() * sets.len() * 3 / 4,
        "only {outputs} outputs"
    );
}

#[test]
fn needs_a_person_is_reported_by_line_and_never_renders() {
    let cfgdir = here("needs-person");
    let out = tempfile::tempdir().unwrap();
    let (code, report) = migrate(&[
        "--cfgdir",
        cfgdir.to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{report}");
    let expected: BTreeSet<String> = fs::read_to_string(cfgdir.join("expected.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let mut reported = BTreeSet::new();
    let lines: Vec<&str> = report.lines().collect();
    let (summary, problems) = lines.split_last().unwrap();
    assert_eq!(*summary, "0 converted, 4 need attention");
    for line in problems {
        // FILE:LINE: the construct: what to write instead
        let rest = line
            .strip_prefix(&format!("{}/", cfgdir.display()))
            .unwrap_or_else(|| panic!("{line}"));
        let mut parts = rest.splitn(3, ": ");
        let place = parts.next().unwrap();
        let (construct, instead) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        assert!(!construct.is_empty() && !instead.is_empty(), "{line}");
        reported.insert(place.to_string());
    }
    assert_eq!(reported, expected);
    // `\r\n` in the text is reported, the template converted: Erubis printed `\n`.
    let crlf = "templates/crlf.conf.erb";
    for place in expected.iter().filter(|p| !p.starts_with(crlf)) {
        let (file, line) = place.rsplit_once(':').unwrap();
        let line: usize = line.parse().unwrap();
        let original = fs::read_to_string(cfgdir.join(file)).unwrap();
        let written = fs::read_to_string(out.path().join(file)).unwrap();
        if let Some(text) = original.lines().nth(line - 1).filter(|t| t.contains("<%")) {
            assert!(
                written.lines().any(|w| w == text),
                "{place}: the reported tag keeps its Ruby: {text}"
            );
        }
    }
    // Converted tags around the reported ones are converted all the same.
    let unsupported =
        fs::read_to_string(out.path().join("templates/unsupported.conf.erb")).unwrap();
    assert!(
        unsupported.contains("still converted: <%= data | length %>"),
        "{unsupported}"
    );
    let crlf_entry = entries(&cfgdir)
        .into_iter()
        .find(|e| e.id == "crlf")
        .unwrap();
    let job = Job {
        entry: &crlf_entry,
        cfgdir: out.path(),
        snapshot: &here("datasets/basic.json"),
    };
    assert_eq!(
        reconfig_render(&job),
        Rendered::Output("server /motd\r\nport 80\r\n".into())
    );
    // A template left with Ruby in it is refused by reconfig, pointing at the migration.
    for entry in entries(&cfgdir).iter().filter(|e| e.id != "crlf") {
        let pattern = Pattern::parse(entry.pattern.as_deref().unwrap_or("<% %>")).unwrap();
        let error = Template::load(&out.path().join("templates").join(&entry.source), &pattern)
            .err()
            .unwrap_or_else(|| panic!("{} must not load", entry.source));
        assert!(error.to_string().contains("syntax error"), "{error}");
    }
}

#[test]
fn ruby_templates_given_to_reconfig_point_to_migrate() {
    let sample = here("corpus/templates/nginx-upstream.conf.erb");
    let error = Template::load(&sample, &Pattern::default())
        .err()
        .expect("Ruby is not Tera");
    let message = error.to_string();
    assert!(message.contains("syntax error"), "{message}");
    assert!(message.contains("`reconfig migrate`"), "{message}");
}

#[test]
fn in_place_keeps_each_original_as_orig() {
    let dir = tempfile::tempdir().unwrap();
    let cfgdir = dir.path().join("reconfig");
    for sub in ["conf.d", "templates"] {
        fs::create_dir_all(cfgdir.join(sub)).unwrap();
        for file in fs::read_dir(here("corpus").join(sub)).unwrap() {
            let file = file.unwrap();
            fs::copy(file.path(), cfgdir.join(sub).join(file.file_name())).unwrap();
        }
    }
    let (code, report) = migrate(&["--cfgdir", cfgdir.to_str().unwrap(), "--in-place"]);
    assert_eq!(code, 0, "{report}");
    let side = tempfile::tempdir().unwrap();
    let (code, _) = migrate(&[
        "--cfgdir",
        here("corpus").to_str().unwrap(),
        "--out",
        side.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    for entry in entries(&cfgdir) {
        let name = &entry.source;
        assert_eq!(
            fs::read(cfgdir.join("templates").join(format!("{name}.orig"))).unwrap(),
            fs::read(here("corpus/templates").join(name)).unwrap()
        );
        assert_eq!(
            fs::read(cfgdir.join("templates").join(name)).unwrap(),
            fs::read(side.path().join("templates").join(name)).unwrap()
        );
    }
    // A second run leaves everything alone and says why.
    let before = fs::read(cfgdir.join("templates/hosts.erb")).unwrap();
    let (code, report) = migrate(&["--cfgdir", cfgdir.to_str().unwrap(), "--in-place"]);
    assert_eq!(code, 1);
    assert!(
        report.contains("hosts.erb.orig exists: already migrated"),
        "{report}"
    );
    assert_eq!(
        fs::read(cfgdir.join("templates/hosts.erb")).unwrap(),
        before
    );
}

#[test]
fn usage_errors_exit_2() {
    let corpus = here("corpus");
    let corpus = corpus.to_str().unwrap();
    assert_eq!(
        migrate(&["--cfgdir", corpus]).0,
        2,
        "--out or --in-place is required"
    );
    assert_eq!(
        migrate(&["--cfgdir", corpus, "--out", "x", "--in-place"]).0,
        2
    );
    assert_eq!(migrate(&["--cfgdir", "/nonexistent", "--out", "x"]).0, 2);
    assert_eq!(migrate(&["--cfgdir", corpus, "--out", corpus]).0, 2);
}

/// The user `nobody`'s uid and gid, to own files root does not.
pub(crate) fn nobody() -> (u32, u32) {
    let user = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("user nobody exists");
    (user.uid.as_raw(), user.gid.as_raw())
}

pub(crate) fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

pub(crate) fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

/// `root/outside`, what links planted in a configuration directory point to: a directory
/// `secret` holding a 0600 `id_rsa`, and a 0640 `shadow`.
pub(crate) fn secrets_outside(root: &Path) -> PathBuf {
    let outside = root.join("outside");
    fs::create_dir_all(outside.join("secret")).unwrap();
    fs::write(
        outside.join("secret/id_rsa"),
        "-----BEGIN KEY-----\nsecret\n",
    )
    .unwrap();
    chmod(&outside.join("secret/id_rsa"), 0o600);
    fs::write(
        outside.join("shadow"),
        "root:$6$salt$hash:19000:0:99999:7:::\n",
    )
    .unwrap();
    chmod(&outside.join("shadow"), 0o640);
    outside
}

/// A reconfig.rb configuration in `root/cfg` holding what an attacker or a careless
/// operator leaves there, and the files outside it those links point to (`root/outside`):
/// `templates/dirlink` to a directory holding a 0600 `id_rsa`, `templates/shadowlink` and
/// `conf.d/evil.json` to a secret, `templates/sub/up` back to `templates/` (a loop), beside
/// a 0600 template of nobody's and a 0640 one in a 0750 directory, in a 0750 `cfg`.
fn hostile_config(root: &Path) -> (PathBuf, PathBuf) {
    let outside = secrets_outside(root);
    let cfg = root.join("cfg");
    fs::create_dir_all(cfg.join("conf.d")).unwrap();
    fs::create_dir_all(cfg.join("templates/sub")).unwrap();
    fs::write(
        cfg.join("conf.d/a.json"),
        r#"{"id":"a","key":"/a","source":"a.erb","target":"/tmp/a"}"#,
    )
    .unwrap();
    symlink(outside.join("shadow"), cfg.join("conf.d/evil.json")).unwrap();
    let secret = cfg.join("templates/a.erb");
    fs::write(&secret, "password=<%= @reconfig[\"data\"] %>\n").unwrap();
    chmod(&secret, 0o600);
    let (uid, gid) = nobody();
    std::os::unix::fs::chown(&secret, Some(uid), Some(gid)).unwrap();
    fs::write(
        cfg.join("templates/sub/b.erb"),
        "b=<%= @reconfig[\"data\"] %>\n",
    )
    .unwrap();
    chmod(&cfg.join("templates/sub/b.erb"), 0o640);
    chmod(&cfg.join("templates/sub"), 0o750);
    symlink(outside.join("secret"), cfg.join("templates/dirlink")).unwrap();
    symlink(outside.join("shadow"), cfg.join("templates/shadowlink")).unwrap();
    symlink("..", cfg.join("templates/sub/up")).unwrap();
    chmod(&cfg, 0o750);
    (cfg, outside)
}

/// Asserts the report has one line for each link `hostile_config` planted, naming it, and
/// that the links are still what they were.
fn assert_links_refused(cfg: &Path, report: &str) {
    let links = [
        "conf.d/evil.json",
        "templates/dirlink",
        "templates/shadowlink",
        "templates/sub/up",
    ];
    assert_links_reported(cfg, &links, report);
}

/// Asserts the report has one line for each of `links` (paths in `cfg`), naming it, and
/// that they are still links.
pub(crate) fn assert_links_reported(cfg: &Path, links: &[&str], report: &str) {
    for link in links {
        let path = cfg.join(link);
        let lines: Vec<&str> = report
            .lines()
            .filter(|l| l.starts_with(&format!("{}: ", path.display())))
            .collect();
        assert_eq!(lines.len(), 1, "{link}:\n{report}");
        assert!(lines[0].contains("symbolic link"), "{report}");
        assert!(fs::symlink_metadata(&path).unwrap().is_symlink(), "{link}");
    }
}

#[test]
fn in_place_never_follows_a_link_and_keeps_modes_and_owners() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, outside) = hostile_config(dir.path());
    let before = tree_state(&outside);
    let (code, report) = migrate(&["--cfgdir", cfg.to_str().unwrap(), "--in-place"]);
    assert_eq!(code, 1, "{report}");
    assert_links_refused(&cfg, &report);
    assert!(
        report.ends_with("2 converted, 4 need attention\n"),
        "{report}"
    );
    assert_eq!(tree_state(&outside), before, "nothing outside is touched");
    assert_eq!(names(&outside.join("secret")), ["id_rsa"]);

    let (uid, gid) = nobody();
    for name in ["a.erb", "a.erb.orig"] {
        let path = cfg.join("templates").join(name);
        let meta = fs::symlink_metadata(&path).unwrap();
        assert!(meta.is_file(), "{name}");
        assert_eq!(meta.mode() & 0o7777, 0o600, "{name}");
        assert_eq!((meta.uid(), meta.gid()), (uid, gid), "{name}");
    }
    assert_eq!(
        fs::read_to_string(cfg.join("templates/a.erb.orig")).unwrap(),
        "password=<%= @reconfig[\"data\"] %>\n"
    );
    assert_ne!(
        fs::read(cfg.join("templates/a.erb")).unwrap(),
        fs::read(cfg.join("templates/a.erb.orig")).unwrap(),
        "converted"
    );
    assert_eq!(mode_of(&cfg.join("templates/sub/b.erb")), 0o640);
    assert_eq!(mode_of(&cfg.join("templates/sub/b.erb.orig")), 0o640);
    assert_eq!(
        names(&cfg.join("templates")),
        ["a.erb", "a.erb.orig", "dirlink", "shadowlink", "sub"],
        "no staged file left behind"
    );
}

#[test]
fn out_copies_only_real_files_with_their_modes_and_owners() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, outside) = hostile_config(dir.path());
    let before = tree_state(&outside);
    let out = dir.path().join("new");
    let (code, report) = migrate(&[
        "--cfgdir",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{report}");
    assert_links_refused(&cfg, &report);
    assert_eq!(tree_state(&outside), before, "nothing outside is touched");
    assert_eq!(names(&out.join("conf.d")), ["a.json"]);
    assert_eq!(names(&out.join("templates")), ["a.erb", "sub"]);
    assert_eq!(
        names(&out.join("templates/sub")),
        ["b.erb"],
        "the loop is not followed"
    );
    let meta = fs::symlink_metadata(out.join("templates/a.erb")).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o600);
    assert_eq!((meta.uid(), meta.gid()), nobody());
    assert_eq!(
        mode_of(&out),
        0o750,
        "OUT, made by migrate, as the configuration directory"
    );
    assert_eq!(mode_of(&out.join("templates/sub")), 0o750);
    assert_eq!(mode_of(&out.join("templates/sub/b.erb")), 0o640);
    assert_eq!(
        mode_of(&out.join("conf.d/a.json")),
        mode_of(&cfg.join("conf.d/a.json"))
    );
}

#[test]
fn out_is_written_only_into_a_new_or_empty_directory_of_ones_own() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, _) = hostile_config(dir.path());
    assert_out_refused(dir.path(), &["--cfgdir", cfg.to_str().unwrap()]);
}

/// Runs `reconfig migrate ARGS --out OUT` for each `OUT` under `dir` that migrate must not
/// write into (a link planted in it, a link, a file, another user's): exit 2, one line
/// naming `OUT` and the reason, nothing written anywhere under `dir`.
pub(crate) fn assert_out_refused(dir: &Path, args: &[&str]) {
    let victim = dir.join("victim");
    fs::write(&victim, "precious\n").unwrap();
    let elsewhere = dir.join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();

    // Each OUT, set up as a careless operator or another user left it, and what the one
    // line of the refusal says.
    type SetUp<'a> = &'a dyn Fn(&Path);
    let cases: [(&str, SetUp<'_>, &str); 6] = [
        (
            "a link planted at OUT/templates/a.erb",
            &|out| {
                fs::create_dir_all(out.join("templates")).unwrap();
                symlink(&victim, out.join("templates/a.erb")).unwrap();
            },
            "not empty",
        ),
        (
            "OUT/templates a link",
            &|out| {
                fs::create_dir(out).unwrap();
                symlink(&elsewhere, out.join("templates")).unwrap();
            },
            "not empty",
        ),
        (
            "OUT holding a file",
            &|out| {
                fs::create_dir(out).unwrap();
                fs::write(out.join("notes"), "mine\n").unwrap();
            },
            "not empty",
        ),
        (
            "OUT owned by nobody",
            &|out| {
                fs::create_dir(out).unwrap();
                let (uid, gid) = nobody();
                std::os::unix::fs::chown(out, Some(uid), Some(gid)).unwrap();
            },
            "owned by uid",
        ),
        (
            "OUT a link to an empty directory",
            &|out| symlink(&elsewhere, out).unwrap(),
            "a symbolic link",
        ),
        (
            "OUT a file",
            &|out| fs::write(out, "a file\n").unwrap(),
            "not a directory",
        ),
    ];
    for (i, (what, set_up, reason)) in cases.iter().enumerate() {
        let out = dir.join(format!("out{i}"));
        set_up(&out);
        let before = tree_state(dir);
        let argv = [args, &["--out", out.to_str().unwrap()]].concat();
        let (code, report, log) = migrate_logged(&argv);
        assert_eq!(code, 2, "{what}: {report}{log}");
        assert_eq!(report, "", "{what}");
        let line = format!("--out {}: {reason}", out.display());
        assert!(log.contains(&line), "{what}: {log}");
        assert_eq!(log.trim_end().lines().count(), 1, "{what}: {log}");
        assert_eq!(tree_state(dir), before, "{what}: nothing written");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
        assert!(names(&elsewhere).is_empty(), "{what}");
    }
}

#[test]
fn string_filters_match_ruby_on_every_character() {
    // Every character Ruby 3.1 knows (Unicode 13, no surrogates or line ends), between
    // letters and spaces: its upcase, downcase, capitalize, strip, split and inspect.
    let ruby = r#"
        require 'json'
        data = {}
        (0..0x1FFFF).each do |cp|
          next if (0xD800..0xDFFF).include?(cp) || cp == 10
          c = [cp].pack('U')
          next if c =~ /\p{Cn}/
          data[format('/c/%06X', cp)] = " #{c}aB#{c}\0 "
        end
        expected = data.keys.sort.map do |k|
          s = data[k]
          [s.upcase, s.downcase, s.capitalize, s.strip, s.split, s.inspect]
        end
        puts JSON.generate('data' => data, 'expected' => expected)
    "#;
    let out = Command::new("ruby")
        .args(["-e", ruby])
        .output()
        .expect("ruby runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ruby: Value = serde_json::from_slice(&out.stdout).unwrap();
    let template = "[<% for k, v in data %>[<%= v | rb_upcase | to_json %>, \
        <%= v | rb_downcase | to_json %>, <%= v | rb_capitalize | to_json %>, \
        <%= v | rb_strip | to_json %>, <%= v | rb_split | to_json %>, \
        <%= v | rb_inspect | to_json %>]<% if not loop.last %>,<% endif %><% endfor %>]";
    let template = compile("chars", template, &Pattern::default()).unwrap();
    let input = RenderInput {
        data: ruby["data"].clone().into(),
        altdata: json!({}),
        watched: "/c",
        snapshot: &Arc::new(Snapshot::default()),
        prefix: None,
        read: &[],
    };
    // 80,000 characters through six filters: longer than the default time limit in a
    // debug build.
    let limits = RenderLimits {
        timeout: Duration::from_secs(3600),
        ..RenderLimits::default()
    };
    let ours: Value =
        serde_json::from_str(&template.render(input, &limits, None).unwrap()).unwrap();
    let (ours, expected) = (
        ours.as_array().unwrap(),
        ruby["expected"].as_array().unwrap(),
    );
    assert_eq!(ours.len(), expected.len());
    assert!(ours.len() > 80_000, "only {} characters", ours.len());
    let keys: Vec<&String> = ruby["data"].as_object().unwrap().keys().collect();
    let differences: Vec<String> = ours
        .iter()
        .zip(expected)
        .zip(keys)
        .filter(|((a, b), _)| a != b)
        .map(|((a, b), k)| format!("{k}: Ruby {b}, reconfig {a}"))
        .collect();
    assert!(
        differences.is_empty(),
        "{} differ:\n{}",
        differences.len(),
        differences[..differences.len().min(20)].join("\n")
    );
}

/// Generates reconfig.rb templates from the grammar `reconfig migrate` supports: loops,
/// conditions, assignments, the converted methods and operators, strings with
/// interpolation, blocks, the trim layouts (tags alone on their line, `-%>`, `<%-`),
/// comments and literals, in either pattern.
struct Generator {
    rng: StdRng,
    /// Variables in scope: Ruby name → kind.
    vars: Vec<(String, Kind)>,
    /// How many loops the current line is in.
    loops: usize,
    depth: usize,
    counter: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Str,
    Int,
    Bool,
    /// A String, or nil.
    MaybeStr,
    List,
    Hash,
}

const WORDS: &[&str] = &[
    "web", "a", "", "/", ":", "1", "é", "x y", "true", ",", "-", "0",
];

impl Generator {
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.random_range(0..items.len())]
    }

    fn chance(&mut self, percent: u32) -> bool {
        self.rng.random_range(0..100) < percent
    }

    fn var(&mut self, kind: Kind) -> Option<String> {
        let names: Vec<String> = self
            .vars
            .iter()
            .filter(|(_, k)| *k == kind)
            .map(|(n, _)| n.clone())
            .collect();
        (!names.is_empty()).then(|| self.pick(&names).clone())
    }

    fn fresh(&mut self, base: &str) -> String {
        self.counter += 1;
        format!("{base}{}", self.counter)
    }

    fn lit(&mut self) -> String {
        let word = *self.pick(WORDS);
        if self.chance(30) {
            format!("'{word}'")
        } else {
            format!("\"{word}\"")
        }
    }

    fn hash(&mut self) -> String {
        let base = match self.rng.random_range(0..4) {
            0 => "@reconfig[\"altdata\"][\"extra\"]".to_string(),
            1 => self
                .var(Kind::Hash)
                .unwrap_or_else(|| "@reconfig[\"data\"]".into()),
            _ => "@reconfig[\"data\"]".to_string(),
        };
        if self.depth > 2 || !self.chance(25) {
            return base;
        }
        self.depth += 1;
        let cond = self.block_cond("k", "v");
        let method = *self.pick(&["select", "reject"]);
        self.depth -= 1;
        format!("{base}.{method} {{ |k, v| {cond} }}")
    }

    fn block_cond(&mut self, k: &str, v: &str) -> String {
        let lit = self.lit();
        match self.rng.random_range(0..5) {
            0 => format!("{k}.include?({lit})"),
            1 => format!("{v}.empty?"),
            2 => format!("{v} == {lit}"),
            3 => format!("!{k}.end_with?({lit})"),
            _ => format!("{v}.length > 2"),
        }
    }

    fn list(&mut self) -> String {
        if self.depth > 3 {
            return "@reconfig[\"data\"].keys".into();
        }
        self.depth += 1;
        let out = match self.rng.random_range(0..11) {
            0 => format!("{}.keys", self.hash()),
            1 => format!("{}.values", self.hash()),
            2 => format!("{}.keys.sort", self.hash()),
            3 => {
                let sep = self.pick(&["\",\"", "\"/\"", "\" \"", ""]).to_string();
                let s = self.string();
                if sep.is_empty() {
                    format!("{s}.split")
                } else {
                    format!("{s}.split({sep})")
                }
            }
            4 => format!("{}.map {{ |x| x.upcase }}", self.list()),
            5 => format!("{}.reject {{ |x| x.empty? }}", self.list()),
            6 => format!("{}.sort_by {{ |x| x.length }}", self.list()),
            7 => format!("{}.reverse", self.list()),
            8 => format!("{}.map {{ |k, v| \"#{{k}}=#{{v}}\" }}", self.hash()),
            9 => format!("{}.sort_by {{ |k, v| v }}.map {{ |k, v| k }}", self.hash()),
            _ => self
                .var(Kind::List)
                .unwrap_or_else(|| "@reconfig[\"data\"].values".into()),
        };
        self.depth -= 1;
        out
    }

    fn maybe_str(&mut self) -> String {
        match self.rng.random_range(0..4) {
            0 => {
                let key = *self.pick(&["\"/gen/a\"", "\"/gen/b\"", "\"/gen/none\""]);
                format!("@reconfig[\"data\"][{key}]")
            }
            1 => format!("{}.first", self.list()),
            2 => self
                .var(Kind::MaybeStr)
                .unwrap_or_else(|| "@reconfig[\"data\"][\"/gen/c\"]".into()),
            _ => {
                let h = self.hash();
                let k = self.string();
                format!("{h}[{k}]")
            }
        }
    }

    fn int(&mut self) -> String {
        if self.depth > 3 {
            return "1".into();
        }
        self.depth += 1;
        let out = match self.rng.random_range(0..9) {
            0 => format!("{}.to_i", self.string()),
            1 => format!("{}.length", self.list()),
            2 => format!("{}.size", self.hash()),
            3 => {
                let (a, b) = (self.int(), self.int());
                let op = *self.pick(&["+", "-", "*"]);
                format!("({a} {op} {b})")
            }
            4 => format!("{}.to_i", self.maybe_str()),
            5 => self.var(Kind::Int).unwrap_or_else(|| "3".into()),
            6 => {
                let (a, b) = (self.int(), self.int());
                let op = *self.pick(&["/", "%"]);
                format!("({a} {op} ({b} + 1))")
            }
            7 => format!("{}.count", self.list()),
            _ => self.rng.random_range(0..20).to_string(),
        };
        self.depth -= 1;
        out
    }

    fn string(&mut self) -> String {
        if self.depth > 3 {
            return self.lit();
        }
        self.depth += 1;
        let out = match self.rng.random_range(0..30) {
            0 | 1 => self.lit(),
            2 => self
                .var(Kind::Str)
                .unwrap_or_else(|| "@reconfig[\"watched\"]".into()),
            3 => format!(
                "{}.{}",
                self.string(),
                self.pick(&["strip", "upcase", "downcase", "capitalize", "chomp", "to_s"])
            ),
            4 => format!("({} + {})", self.string(), self.string()),
            5 => format!("\"<#{{{}}}|#{{{}}}>\"", self.string(), self.int()),
            6 => {
                let sep = self.lit();
                format!("{}.join({sep})", self.list())
            }
            7 => format!("File.basename({})", self.string()),
            8 => format!("File.dirname({})", self.string()),
            9 => {
                let (from, to) = (self.lit(), self.lit());
                format!("{}.gsub({from}, {to})", self.string())
            }
            10 => format!("{}.sub(/[0-9]+/, \"#\")", self.string()),
            11 => format!("{}.to_json", self.maybe_str()),
            12 => format!("JSON.pretty_generate({})", self.hash()),
            13 => format!("{}.to_s", self.int()),
            14 => {
                let (c, a, b) = (self.cond(), self.string(), self.string());
                format!("({c} ? {a} : {b})")
            }
            15 => {
                let (m, d) = (self.maybe_str(), self.lit());
                format!("({m} || {d})")
            }
            16 => format!("{}.to_json", self.list()),
            17 => format!("{}.{}", self.string(), self.pick(&["lstrip", "rstrip"])),
            18 => format!("\"#{{{}}}\"", self.list()),
            19 => format!("{}.to_yaml", self.hash()),
            20 => format!("({} * 2)", self.string()),
            21 => format!("{}.join", self.list()),
            22 => format!("{}.split(/[,:]/).join(\"|\")", self.string()),
            23 => format!(
                "{}.gsub(/([a-z])([0-9]?)/, \"<\\\\1\\\\2>\")",
                self.string()
            ),
            24 => format!("{}.sort.map {{ |k, v| k + v }}.join(\";\")", self.hash()),
            25 => format!("{}.first.to_s", self.hash()),
            26 => format!("{}.first(2).join(\"+\")", self.list()),
            27 => format!("{}.uniq.last.to_s", self.list()),
            28 => format!("{}.to_s", self.hash()),
            _ => format!("File.basename({}, \".*\")", self.string()),
        };
        self.depth -= 1;
        out
    }

    fn cond(&mut self) -> String {
        if self.depth > 3 {
            return "true".into();
        }
        self.depth += 1;
        let out = match self.rng.random_range(0..20) {
            0 => format!("{}.empty?", self.string()),
            1 => format!("{}.nil?", self.maybe_str()),
            2 => format!("{} == {}", self.string(), self.lit()),
            3 => format!("{} != {}", self.maybe_str(), self.lit()),
            4 => format!("{}.include?({})", self.string(), self.lit()),
            5 => format!("{}.start_with?(\"/\")", self.string()),
            6 => format!("{} > {}", self.int(), self.int()),
            7 => format!("{} && {}", self.cond(), self.cond()),
            8 => format!("({} || {})", self.cond(), self.cond()),
            9 => format!("!{}", self.cond()),
            10 => self.maybe_str(),
            11 => format!("{} < {}", self.string(), self.lit()),
            12 => format!("{}.include?({})", self.list(), self.lit()),
            13 => format!("{}.key?({})", self.hash(), self.lit()),
            14 => format!("{}.empty?", self.hash()),
            15 => format!("{} == nil", self.maybe_str()),
            16 => format!("{} != nil", self.maybe_str()),
            17 => format!("{}.end_with?({})", self.string(), self.lit()),
            18 => format!("{} <= {}", self.int(), self.int()),
            _ => self.var(Kind::Bool).unwrap_or_else(|| "false".into()),
        };
        self.depth -= 1;
        out
    }

    /// A value to print.
    fn printable(&mut self) -> String {
        match self.rng.random_range(0..8) {
            0 => self.int(),
            1 => self.cond(),
            2 => self.maybe_str(),
            3 => {
                let (s, c) = (self.string(), self.cond());
                format!("{s} if {c}")
            }
            4 if self.chance(30) => self.list(),
            _ => self.string(),
        }
    }

    /// Literal text, with characters Tera or Ruby would read as code.
    fn text(&mut self) -> String {
        let pieces = [
            "text",
            " {{ not tera }} ",
            "\t",
            "é",
            "100% ",
            "\"q\"",
            "#{x}",
            "'",
        ];
        let mut s = String::new();
        for _ in 0..self.rng.random_range(0..3) {
            let piece = self.pick(&pieces[..]).to_string();
            s.push_str(&piece);
        }
        s
    }

    /// A body of `n` lines at block depth `nesting`.
    fn body(&mut self, out: &mut String, open: &str, close: &str, nesting: usize, lines: usize) {
        for _ in 0..lines {
            let indent = if self.chance(30) { "  " } else { "" };
            let trail = if self.chance(10) { " \t" } else { "" };
            let stmt = |g: &mut Self, code: &str, out: &mut String| {
                let (o, c) = if g.chance(15) {
                    (format!("{open}-"), format!("-{close}"))
                } else {
                    (open.to_string(), close.to_string())
                };
                let text = g.text();
                if g.chance(80) {
                    let _ = writeln!(out, "{indent}{o} {code} {c}{trail}");
                } else {
                    let _ = writeln!(out, "{text}{o} {code} {c}{text}");
                }
            };
            match self.rng.random_range(0..11) {
                0..=2 => {
                    let (e, t1, t2) = (self.printable(), self.text(), self.text());
                    let tail = if self.chance(10) { "-" } else { "" };
                    let _ = writeln!(out, "{indent}{t1}{open}= {e} {tail}{close}{t2}");
                }
                3 if nesting < 2 => {
                    let (k, v) = (self.fresh("k"), self.fresh("v"));
                    let h = self.hash();
                    let each = *self.pick(&["each", "each_pair"]);
                    stmt(self, &format!("{h}.{each} do |{k}, {v}|"), out);
                    self.vars.push((k, Kind::Str));
                    self.vars.push((v, Kind::Str));
                    let n = self.rng.random_range(1..4);
                    self.loops += 1;
                    self.body(out, open, close, nesting + 1, n);
                    self.loops -= 1;
                    self.vars.truncate(self.vars.len() - 2);
                    stmt(self, "end", out);
                }
                4 if nesting < 2 => {
                    let x = self.fresh("x");
                    let l = self.list();
                    let with_index = self.chance(40);
                    let i = self.fresh("i");
                    if with_index {
                        stmt(self, &format!("{l}.each_with_index do |{x}, {i}|"), out);
                        self.vars.push((i.clone(), Kind::Int));
                    } else {
                        stmt(self, &format!("{l}.each do |{x}|"), out);
                    }
                    self.vars.push((x, Kind::Str));
                    let n = self.rng.random_range(1..4);
                    self.loops += 1;
                    self.body(out, open, close, nesting + 1, n);
                    self.loops -= 1;
                    self.vars.pop();
                    if with_index {
                        self.vars.pop();
                    }
                    stmt(self, "end", out);
                }
                5 if nesting < 3 => {
                    let c = self.cond();
                    let keyword = if self.chance(25) { "unless" } else { "if" };
                    stmt(self, &format!("{keyword} {c}"), out);
                    let n = self.rng.random_range(1..3);
                    self.body(out, open, close, nesting + 1, n);
                    if keyword == "if" && self.chance(40) {
                        let c = self.cond();
                        stmt(self, &format!("elsif {c}"), out);
                        self.body(out, open, close, nesting + 1, 1);
                    }
                    if self.chance(40) {
                        stmt(self, "else", out);
                        self.body(out, open, close, nesting + 1, 1);
                    }
                    stmt(self, "end", out);
                }
                6 if nesting == 0 => {
                    let (kind, value) = match self.rng.random_range(0..5) {
                        0 => (Kind::Int, self.int()),
                        1 => (Kind::Bool, self.cond()),
                        2 => (Kind::List, self.list()),
                        3 => (Kind::Hash, self.hash()),
                        _ => (Kind::Str, self.string()),
                    };
                    let name = self.fresh("var");
                    stmt(self, &format!("{name} = {value}"), out);
                    self.vars.push((name, kind));
                }
                7 if self.loops > 0 && self.chance(50) => {
                    let c = self.cond();
                    let word = *self.pick(&["next", "break"]);
                    let modifier = *self.pick(&["if", "unless"]);
                    stmt(self, &format!("{word} {modifier} {c}"), out);
                }
                7 => {
                    let t = self.text();
                    let _ = writeln!(out, "{indent}{open}# a comment {close}{t}");
                }
                10 if nesting == 0 => {
                    // A counter assigned outside a loop and updated inside it.
                    let (n, x) = (self.fresh("count"), self.fresh("x"));
                    stmt(self, &format!("{n} = 0"), out);
                    let each = match self.rng.random_range(0..4) {
                        0 => format!("{}.each do |{x}|", self.hash()),
                        1 => format!("for {x} in {}", self.list()),
                        2 => format!("{}.times do |{x}|", self.int()),
                        _ => format!("{}.each_with_index do |{x}|", self.hash()),
                    };
                    stmt(self, &each, out);
                    stmt(self, &format!("{n} += 1"), out);
                    let e = self.printable();
                    let _ = writeln!(out, "{open}= {x} {close}:{open}= {e} {close}");
                    stmt(self, "end", out);
                    let _ = writeln!(out, "{n}={open}= {n} {close}");
                }
                8 => {
                    let _ = writeln!(out, "{open}% literal {close} and text");
                }
                _ => {
                    let t = self.text();
                    let _ = writeln!(out, "{t}");
                }
            }
        }
    }

    fn template(&mut self, open: &str, close: &str) -> String {
        self.vars.clear();
        let mut out = String::new();
        let lines = self.rng.random_range(2..8);
        self.body(&mut out, open, close, 0, lines);
        if self.chance(20) {
            out.pop();
        }
        out
    }
}

#[test]
fn generated_templates_render_as_reconfig_rb_did() {
    const CASES: usize = 400;
    let dir = tempfile::tempdir().unwrap();
    let cfgdir = dir.path().join("rb");
    let out = dir.path().join("out");
    fs::create_dir_all(cfgdir.join("conf.d")).unwrap();
    fs::create_dir_all(cfgdir.join("templates")).unwrap();
    let mut g = Generator {
        rng: StdRng::seed_from_u64(16),
        vars: vec![],
        loops: 0,
        depth: 0,
        counter: 0,
    };
    for i in 0..CASES {
        let (pattern, open, close) = if i % 4 == 3 {
            (Some("#% %#"), "#%", "%#")
        } else {
            (None, "<%", "%>")
        };
        let text = g.template(open, close);
        let name = format!("gen{i:03}.erb");
        fs::write(cfgdir.join("templates").join(&name), text).unwrap();
        let mut entry = json!({
            "id": format!("gen{i:03}"),
            "key": "/gen",
            "recursive": i % 5 != 4,
            "source": name,
            "target": format!("/tmp/gen{i:03}"),
            "altkeys": {"extra": "/extra"},
        });
        if let Some(p) = pattern {
            entry["pattern"] = json!(p);
        }
        fs::write(
            cfgdir.join("conf.d").join(format!("gen{i:03}.json")),
            entry.to_string(),
        )
        .unwrap();
    }
    let snapshots: Vec<(String, Value)> = vec![
        (
            "plain".into(),
            json!({"/gen/a": "alpha", "/gen/b": "10", "/gen/c/d": "x,y,,", "/extra/e": "e1"}),
        ),
        (
            "tricky".into(),
            json!({"/gen/a": "", "/gen/b": " 7 apples ", "/gen/web": "é/ü:1", "/gen/z": "true"}),
        ),
        (
            "lonely".into(),
            json!({"/gen": "root value", "/extra/a": "", "/extra/b": "1,2"}),
        ),
    ];
    let mut snapshot_files = vec![];
    for (name, kv) in &snapshots {
        let path = dir.path().join(format!("{name}.json"));
        fs::write(&path, kv.to_string()).unwrap();
        snapshot_files.push(path);
    }
    let (code, report) = migrate(&[
        "--cfgdir",
        cfgdir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        code, 0,
        "the supported grammar converts completely:\n{report}"
    );
    let entries = entries(&cfgdir);
    let mut ruby_jobs = vec![];
    let mut ours = vec![];
    for entry in &entries {
        for set in &snapshot_files {
            ruby_jobs.push(Job {
                entry,
                cfgdir: &cfgdir,
                snapshot: set,
            });
            ours.push(Job {
                entry,
                cfgdir: &out,
                snapshot: set,
            });
        }
    }
    let outputs = compare(&ruby_jobs, &ours, "generated templates");
    assert!(
        outputs >= CASES,
        "only {outputs} of {} renders produced output",
        ruby_jobs.len()
    );
}

/// reconfig.rb waited a random 1-10 s before every reload of an entry without `splay`;
/// migrated entries keep that jitter written out, and the report says so, entry by entry.
#[test]
fn entries_with_a_reloadcmd_and_no_splay_keep_reconfig_rb_reload_jitter() {
    let dir = tempfile::tempdir().unwrap();
    let cfgdir = dir.path().join("reconfig");
    let entries: [(&str, &str); 5] = [
        (
            "a.json",
            "{\n  \"id\": \"a\",\n  \"key\": \"/a\",\n  \"source\": \"t\",\n  \"target\": \"/tmp/a\",\n  \"reloadcmd\": \"systemctl reload a\"\n}\n",
        ),
        (
            "b.json",
            r#"{"key":"/b","source":"t","target":"/tmp/b","reloadcmd":"kill -HUP 1"}"#,
        ),
        (
            "c.json",
            "{\r\n    \"key\": \"/c\",\r\n    \"source\": \"t\",\r\n    \"target\": \"/tmp/c\",\r\n    \"reloadcmd\": \"r\",\r\n    \"altkeys\": {\r\n        \"x\": \"/x\"\r\n    }\r\n}",
        ),
        (
            "splayed.json",
            "{\n  \"key\": \"/s\",\n  \"source\": \"t\",\n  \"target\": \"/tmp/s\",\n  \"reloadcmd\": \"r\",\n  \"splay\": 3\n}\n",
        ),
        (
            "quiet.json",
            "{\n  \"key\": \"/q\",\n  \"source\": \"t\",\n  \"target\": \"/tmp/q\"\n}\n",
        ),
    ];
    let expected: [(&str, &str); 3] = [
        (
            "a.json",
            "{\n  \"id\": \"a\",\n  \"key\": \"/a\",\n  \"source\": \"t\",\n  \"target\": \"/tmp/a\",\n  \"reloadcmd\": \"systemctl reload a\",\n  \"splay\": \"10s\"\n}\n",
        ),
        (
            "b.json",
            r#"{"key":"/b","source":"t","target":"/tmp/b","reloadcmd":"kill -HUP 1", "splay": "10s"}"#,
        ),
        (
            "c.json",
            "{\r\n    \"key\": \"/c\",\r\n    \"source\": \"t\",\r\n    \"target\": \"/tmp/c\",\r\n    \"reloadcmd\": \"r\",\r\n    \"altkeys\": {\r\n        \"x\": \"/x\"\r\n    },\r\n    \"splay\": \"10s\"\r\n}",
        ),
    ];
    fs::create_dir_all(cfgdir.join("conf.d")).unwrap();
    fs::create_dir_all(cfgdir.join("templates")).unwrap();
    for (name, text) in entries {
        fs::write(cfgdir.join("conf.d").join(name), text).unwrap();
    }
    fs::write(
        cfgdir.join("templates/t"),
        "<%= @reconfig[\"watched\"] %>\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let (code, report) = migrate(&[
        "--cfgdir",
        cfgdir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "a note is no failure: {report}");
    let note = |name: &str| {
        format!(
            "{}: reloadcmd without splay: \"splay\": \"10s\" added, as reconfig.rb waited a \
             random 1-10 s before each reload",
            cfgdir.join("conf.d").join(name).display()
        )
    };
    let mut lines: Vec<String> = ["a.json", "b.json", "c.json"].map(note).to_vec();
    lines.push("1 converted, 0 need attention".into());
    assert_eq!(report.lines().collect::<Vec<_>>(), lines);
    for (name, text) in expected {
        let written = fs::read_to_string(out.join("conf.d").join(name)).unwrap();
        assert_eq!(written, text, "{name}: the rest of its bytes as they were");
    }
    for name in ["splayed.json", "quiet.json"] {
        assert_eq!(
            fs::read(out.join("conf.d").join(name)).unwrap(),
            fs::read(cfgdir.join("conf.d").join(name)).unwrap(),
            "{name} is copied as it is"
        );
    }
    let data = dir.path().join("data.json");
    fs::write(
        &data,
        r#"{"/a": "1", "/b": "1", "/c": "1", "/s": "1", "/q": "1"}"#,
    )
    .unwrap();
    let render = Command::new(env!("CARGO_BIN_EXE_reconfig"))
        .args([
            "render",
            "--data",
            data.to_str().unwrap(),
            "-c",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        render.status.success(),
        "reconfig loads the migrated entries"
    );

    // In place: the entry is rewritten and its original kept beside it, where reconfig
    // does not read it; a second run finds the splay and leaves the entry alone.
    let (code, report) = migrate(&["--cfgdir", cfgdir.to_str().unwrap(), "--in-place"]);
    assert_eq!(code, 0, "{report}");
    assert!(report.contains(&note("a.json")), "{report}");
    let a = cfgdir.join("conf.d/a.json");
    assert_eq!(fs::read_to_string(&a).unwrap(), expected[0].1);
    assert_eq!(
        fs::read_to_string(cfgdir.join("conf.d/a.json.orig")).unwrap(),
        entries[0].1
    );
    let (_, again) = migrate(&["--cfgdir", cfgdir.to_str().unwrap(), "--in-place"]);
    assert!(!again.contains("reloadcmd without splay"), "{again}");
    assert_eq!(fs::read_to_string(&a).unwrap(), expected[0].1);
}
