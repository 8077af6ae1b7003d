//! The confd front end of the migrator against Go's own `text/template`.
//!
//! `tests/migrate-confd/harness/main.go` renders confd template resources as confd does:
//! Go's `text/template` with confd's functions and key store written out over a flat JSON
//! snapshot (standard library only; built once per run with Debian's `golang-go`, which
//! `scripts/deps` installs). The corpus under `tests/migrate-confd/corpus` (the tutorial's
//! nginx upstream, haproxy backends, vhosts from `lsdir`, /etc/hosts, JSON and YAML app
//! configs, a per-resource `prefix`, several `keys`) is rendered over every dataset in
//! `tests/migrate-confd/datasets` by Go, then converted and rendered by `reconfig render`:
//! the bytes must be the same, and reconfig must fail exactly where Go fails. Templates
//! generated from the supported grammar are compared the same way, and every construct of
//! the "needs a person" corpus must be reported with its file and line.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use base64::Engine as _;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reconfig::{compile, Pattern};
use reconfig_migrate::Migration;
use serde_json::{json, Value};

fn here(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/migrate-confd")
        .join(path)
}

/// The environment both renderers get (the corpus reads it with `getenv`).
const ENV: (&str, &str) = ("RECONFIG_TEST_ENV", "from the environment");

/// The Go harness, built once per test run.
fn harness() -> &'static Path {
    static BUILT: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = BUILT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("harness");
        let out = Command::new("go")
            .current_dir(here("harness"))
            .args(["build", "-o"])
            .arg(&bin)
            .arg("main.go")
            .env("HOME", dir.path())
            .env("GOCACHE", dir.path().join("cache"))
            .env("GOPATH", dir.path().join("gopath"))
            .env("GO111MODULE", "off")
            .env("GOFLAGS", "")
            .output()
            .expect("go is installed (scripts/deps installs golang-go)");
        assert!(
            out.status.success(),
            "go build: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (dir, bin)
    });
    path
}

/// What a render gave: the bytes, or a failure.
#[derive(Debug, PartialEq)]
enum Rendered {
    Output(Vec<u8>),
    Failed(String),
}

/// A confd resource as the harness needs it.
struct Resource {
    stem: String,
    template: PathBuf,
    prefix: String,
    keys: Vec<String>,
}

fn resources(confdir: &Path) -> Vec<Resource> {
    let mut files: Vec<PathBuf> = fs::read_dir(confdir.join("conf.d"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let doc: toml::Table = fs::read_to_string(f).unwrap().parse().unwrap();
            let t = doc["template"].as_table().unwrap();
            Resource {
                stem: f.file_stem().unwrap().to_string_lossy().into_owned(),
                template: confdir.join("templates").join(t["src"].as_str().unwrap()),
                prefix: t
                    .get("prefix")
                    .and_then(|p| p.as_str())
                    .unwrap_or("")
                    .to_string(),
                keys: t
                    .get("keys")
                    .and_then(|k| k.as_array())
                    .map(|k| k.iter().map(|k| k.as_str().unwrap().to_string()).collect())
                    .unwrap_or_default(),
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

/// Renders each (resource, dataset) with Go, all in one harness process.
fn go_render(jobs: &[(&Resource, &Path)]) -> Vec<Rendered> {
    let list: Vec<Value> = jobs
        .iter()
        .enumerate()
        .map(|(i, (r, data))| {
            json!({
                "id": i.to_string(),
                "template": r.template,
                "prefix": r.prefix,
                "keys": r.keys,
                "data": data,
            })
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.json");
    fs::write(&path, serde_json::to_vec(&list).unwrap()).unwrap();
    let out = Command::new(harness())
        .arg(&path)
        .env(ENV.0, ENV.1)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "harness: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(results.len(), jobs.len());
    results
        .iter()
        .map(|r| {
            if r["ok"].as_bool().unwrap() {
                let b64 = r["output"].as_str().unwrap();
                Rendered::Output(
                    base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .unwrap(),
                )
            } else {
                Rendered::Failed(r["error"].as_str().unwrap().to_string())
            }
        })
        .collect()
}

/// Converts a confd directory into `out` with the migrator and reconfig's compiler.
fn convert(confdir: &Path, out: &Path) -> Migration {
    let plain = Pattern::parse("{{ }}").unwrap();
    let check = |name: &str, text: &str| {
        compile(name, text, &plain)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let m = reconfig_migrate::confd::migrate(confdir, &check).unwrap();
    m.output.write_to(out).unwrap();
    m
}

/// `reconfig render --cfgdir OUT --data DATA --entry STEM`.
fn reconfig_render(out: &Path, stem: &str, data: &Path) -> Rendered {
    let run = Command::new(env!("CARGO_BIN_EXE_reconfig"))
        .args(["render", "--cfgdir"])
        .arg(out)
        .arg("--data")
        .arg(data)
        .args(["--entry", stem])
        .env(ENV.0, ENV.1)
        .output()
        .unwrap();
    match run.status.code() {
        Some(0) => Rendered::Output(run.stdout),
        Some(1) => Rendered::Failed(String::from_utf8_lossy(&run.stderr).into_owned()),
        other => panic!(
            "reconfig render exited {other:?}: {}",
            String::from_utf8_lossy(&run.stderr)
        ),
    }
}

/// Renders every job with Go and with reconfig; panics listing every difference, returns
/// how many produced output.
fn compare(jobs: &[(&Resource, &Path)], out: &Path, what: &str) -> usize {
    let expected = go_render(jobs);
    let mut failures = String::new();
    let mut outputs = 0;
    for ((r, data), want) in jobs.iter().zip(&expected) {
        let got = reconfig_render(out, &r.stem, data);
        match (want, &got) {
            (Rendered::Output(a), Rendered::Output(b)) if a == b => outputs += 1,
            (Rendered::Failed(_), Rendered::Failed(_)) => {}
            _ => writeln!(
                failures,
                "{} over {}:\n  Go:       {}\n  reconfig: {}\n  converted: {}",
                r.template.display(),
                data.file_name().unwrap().to_string_lossy(),
                show(want),
                show(&got),
                fs::read_to_string(out.join("templates").join(r.template.file_name().unwrap()))
                    .unwrap_or_default()
            )
            .unwrap(),
        }
    }
    assert!(failures.is_empty(), "{what}: renders differ:\n{failures}");
    outputs
}

fn show(r: &Rendered) -> String {
    match r {
        Rendered::Output(b) => format!("{:?}", String::from_utf8_lossy(b)),
        Rendered::Failed(e) => format!("failed: {}", e.trim()),
    }
}

#[test]
fn corpus_renders_as_go_and_confd_did() {
    let corpus = here("corpus");
    let out = tempfile::tempdir().unwrap();
    let m = convert(&corpus, out.path());
    let problems: Vec<String> = m.report.problems.iter().map(|p| p.to_string()).collect();
    assert!(problems.is_empty(), "{problems:#?}");
    let resources = resources(&corpus);
    let sets = datasets();
    let jobs: Vec<(&Resource, &Path)> = resources
        .iter()
        .flat_map(|r| sets.iter().map(move |s| (r, s.as_path())))
        .collect();
    let outputs = compare(&jobs, out.path(), "corpus");
    // Most renders produce output; a comparison of failures only would prove nothing.
    assert!(
        outputs >= jobs.len() / 2,
        "only {outputs} of {} outputs",
        jobs.len()
    );
}
