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
use reconfig::{Conversion, Report};
use serde_json::{json, Value};

use crate::common::run_jobs;

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
    let mut harness = Command::new(harness());
    harness.env(ENV.0, ENV.1);
    let results = run_jobs(harness, &list);
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
fn convert(confdir: &Path, out: &Path) -> Report {
    let conversion = Conversion::Confd {
        cfgdir: confdir.to_path_buf(),
        out: out.to_path_buf(),
    };
    reconfig::migrate(&conversion).unwrap()
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
fn compare(jobs: &[(&Resource, &Path)], out: &dyn Fn(&Resource) -> PathBuf, what: &str) -> usize {
    let expected = go_render(jobs);
    let mut failures = String::new();
    let mut outputs = 0;
    for ((r, data), want) in jobs.iter().zip(&expected) {
        let out = out(r);
        let got = reconfig_render(&out, &r.stem, data);
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
    let problems: Vec<String> = m.problems.iter().map(|p| p.to_string()).collect();
    assert!(problems.is_empty(), "{problems:#?}");
    let resources = resources(&corpus);
    let sets = datasets();
    let jobs: Vec<(&Resource, &Path)> = resources
        .iter()
        .flat_map(|r| sets.iter().map(move |s| (r, s.as_path())))
        .collect();
    let outputs = compare(&jobs, &|_| out.path().to_path_buf(), "corpus");
    // Most renders produce output; a comparison of failures only would prove nothing.
    assert!(
        outputs >= jobs.len() / 2,
        "only {outputs} of {} outputs",
        jobs.len()
    );
}

/// Go templates from the grammar the converter supports, with the values confd's
/// functions give: a seeded random walk over text, actions (trimmed or not), comments,
/// `if`/`else if`/`else`, `range` with variables, `else`, `break` and `continue`,
/// `with`/`else`, declarations and assignments, `define`/`template`/`block`, pipelines,
/// and Go's and confd's functions with constants of every kind.
struct Generator {
    rng: StdRng,
    /// Variables in scope, with the loop depth of their declaration.
    vars: Vec<(String, usize)>,
    loops: usize,
    depth: usize,
    counter: usize,
    defines: Vec<String>,
}

impl Generator {
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.rng.random_range(0..items.len())]
    }

    fn chance(&mut self, percent: u32) -> bool {
        self.rng.random_range(0..100) < percent
    }

    fn text(&mut self) -> String {
        let mut s = String::new();
        for _ in 0..self.rng.random_range(1..5) {
            let piece = self.pick(&[
                "a",
                " ",
                "\n",
                "  ",
                "{",
                "}",
                "x{y",
                "%",
                "#",
                "é",
                "\t",
                "{%",
                "{#",
                "; ",
                "\r\n",
                "\"'`",
                "-",
                "<no value>",
            ]);
            // Two braces would open a Go action.
            if s.ends_with('{') && piece.starts_with('{') {
                s.push('.');
            }
            s.push_str(piece);
        }
        if s.ends_with('{') {
            s.push('.');
        }
        s
    }

    fn string_value(&mut self) -> String {
        let key = self.pick(&[
            "/gen/a",
            "/gen/b",
            "/gen/e",
            "/gen/u",
            "/gen/c/d",
            "/gen/nope",
        ]);
        match self.rng.random_range(0..9) {
            0 => format!("(getv {key:?} \"dflt\")"),
            1 => format!(
                "{:?}",
                self.pick(&["x", "", "a,b,,c", "Hé", "/a/b/", "%d", "10"])
            ),
            2 => "(base \"/gen/c/d\")".into(),
            3 => format!(
                "(printf \"%s-%d\" {key:?} {})",
                self.rng.random_range(-3..40)
            ),
            4 => format!("(toUpper (getv {key:?} \"x\"))"),
            5 => "(getv \"/gen/a\")".into(),
            6 => match self.var() {
                Some(v) => format!("(print {v})"),
                None => "\"v\"".into(),
            },
            7 => "(index (split (getv \"/gen/c/d\" \"\") \",\") 0)".into(),
            _ => format!("(join (getvs \"/gen/*\") {:?})", self.pick(&[",", " ", ""])),
        }
    }

    fn list_value(&mut self) -> String {
        match self.rng.random_range(0..10) {
            0 => "(getvs \"/gen/*\")".into(),
            1 => "(gets \"/gen/*\")".into(),
            2 => format!("(ls {:?})", self.pick(&["/gen", "/gen/c", "/", "/none"])),
            3 => "(lsdir \"/gen\")".into(),
            4 => format!(
                "(split {} {:?})",
                self.string_value(),
                self.pick(&[",", "", "/"])
            ),
            5 => format!(
                "(seq {} {})",
                self.rng.random_range(-2..3),
                self.rng.random_range(0..4)
            ),
            6 => "(jsonArray (getv \"/gen/list\" \"[]\"))".into(),
            7 => "(json (getv \"/gen/json\" \"{}\"))".into(),
            8 => "(sortByLength (getvs \"/gen/*\"))".into(),
            _ => "(map \"k\" 1 \"j\" \"two\" \"n\" nil)".into(),
        }
    }

    fn var(&mut self) -> Option<String> {
        if self.vars.is_empty() {
            return None;
        }
        let i = self.rng.random_range(0..self.vars.len());
        Some(self.vars[i].0.clone())
    }

    fn constant(&mut self) -> String {
        self.pick(&[
            "1", "0", "-2", "3.5", "0x10", "'a'", "1e3", "true", "false", "\"s\"", "\"\"", "nil",
            "2.0", "1_000",
        ])
        .to_string()
    }

    fn operand(&mut self) -> String {
        match self.rng.random_range(0..8) {
            0 => self.constant(),
            1 => ".".into(),
            2 => self.pick(&[".Key", ".Value", ".k", "$.x"]).into(),
            3 => self.var().unwrap_or_else(|| "$".into()),
            4 => self.list_value(),
            5 => self.string_value(),
            6 if self.depth < 3 => {
                self.depth += 1;
                let p = format!("({})", self.pipeline());
                self.depth -= 1;
                p
            }
            _ => format!("(len {})", self.list_value()),
        }
    }

    fn int_value(&mut self) -> String {
        match self.rng.random_range(0..4) {
            0 => self
                .pick(&["1", "0", "-2", "'a'", "2.0", "0x10", "1_000"])
                .into(),
            1 => format!("(len {})", self.list_value()),
            2 => "(atoi (getv \"/gen/b\" \"3\"))".into(),
            _ => format!("(add {} 1)", self.pick(&["1", "-1", "7"])),
        }
    }

    fn command(&mut self) -> String {
        // Mostly arguments of the types the functions take, sometimes anything (which
        // exercises Go's errors).
        let any = self.chance(25);
        let a = self.operand();
        let b = self.operand();
        let s1 = if any { a.clone() } else { self.string_value() };
        let s2 = if any { b.clone() } else { self.string_value() };
        let l = if any { a.clone() } else { self.list_value() };
        let (i1, i2) = if any {
            (a.clone(), b.clone())
        } else {
            (self.int_value(), self.int_value())
        };
        match self.rng.random_range(0..22) {
            0 => a,
            1 => format!(
                "printf {:?} {a} {b}",
                self.pick(&[
                    "%v|%s",
                    "%d %q",
                    "%5.2f",
                    "%-4v.",
                    "%x %T",
                    "%+v",
                    "%#v",
                    "%[2]v %[1]v",
                    "%c%%"
                ])
            ),
            2 => format!("print {a} {b}"),
            3 => format!("println {a}"),
            4 => format!("eq {a} {b}"),
            5 => format!("ne {s1} {s2}"),
            6 => format!("{} {i1} {i2}", self.pick(&["lt", "le", "gt", "ge"])),
            7 => format!("and {a} {b}"),
            8 => format!("or {a} {b}"),
            9 => format!("not {a}"),
            10 => format!("len {l}"),
            11 => format!(
                "index {l} {}",
                self.pick(&["0", "1", "\"k\"", "\"/gen/a\"", "5"])
            ),
            12 => format!(
                "{} {i1} {i2}",
                self.pick(&["add", "sub", "mul", "div", "mod"])
            ),
            13 => format!(
                "{} {s1}",
                self.pick(&[
                    "base",
                    "dir",
                    "toUpper",
                    "toLower",
                    "atoi",
                    "parseBool",
                    "base64Encode",
                    "html",
                    "js",
                    "urlquery"
                ])
            ),
            14 => format!("getv {s1} \"d\""),
            15 => format!("exists {s1}"),
            16 => format!("contains {s1} {s2}"),
            17 => format!("replace {s1} \"a\" \"A\" {}", self.pick(&["-1", "1", "0"])),
            18 => format!("reverse {l}"),
            // Slices of ASCII only: Go cuts UTF-8 characters in two, which reconfig
            // refuses (docs/templates.md).
            19 => format!(
                "slice {} {}",
                self.pick(&[
                    "\"abc\"",
                    "(getv \"/gen/a\" \"xy\")",
                    "(getvs \"/gen/*\")",
                    "(ls \"/gen\")"
                ]),
                self.pick(&["0", "1", "1 2", "0 0"])
            ),
            20 => format!("join {l} {s2}"),
            _ => format!("trimSuffix {s1} {s2}"),
        }
    }

    fn pipeline(&mut self) -> String {
        let mut p = self.command();
        if self.chance(20) {
            p.push_str(" | ");
            p.push_str(self.pick(&[
                "print",
                "printf \"%v!\"",
                "len",
                "not",
                "eq \"x\"",
                "toUpper",
                "and 1",
                "or 0",
                "index (map \"k\" 2)",
            ]));
        }
        p
    }

    fn open(&mut self) -> &'static str {
        if self.chance(25) {
            "{{- "
        } else {
            "{{"
        }
    }

    fn close(&mut self) -> &'static str {
        if self.chance(25) {
            " -}}"
        } else {
            "}}"
        }
    }

    fn declare(&mut self) -> String {
        self.counter += 1;
        let name = format!("$v{}", self.counter);
        self.vars.push((name.clone(), self.loops));
        name
    }

    fn item(&mut self, out: &mut String) {
        let (o, c) = (self.open(), self.close());
        let nested = self.depth < 2;
        match self.rng.random_range(0..11) {
            0 | 1 => out.push_str(&self.text()),
            2 | 3 => {
                let p = self.pipeline();
                out.push_str(&format!("{o}{p}{c}"));
            }
            4 => out.push_str(&format!("{o}/* a comment */{c}")),
            5 => {
                let p = self.pipeline();
                let v = self.declare();
                out.push_str(&format!("{o}{v} := {p}{c}"));
            }
            6 => {
                let assignable: Vec<String> = self
                    .vars
                    .iter()
                    .filter(|(_, d)| *d == self.loops || *d == 0)
                    .map(|(v, _)| v.clone())
                    .collect();
                if let Some(v) = assignable.first() {
                    let p = self.pipeline();
                    out.push_str(&format!("{o}{v} = {p}{c}"));
                }
            }
            7 if nested => {
                let p = self.pipeline();
                self.depth += 1;
                let scope = self.vars.len();
                out.push_str(&format!("{o}if {p}{c}"));
                self.body(out);
                if self.chance(40) {
                    let q = self.pipeline();
                    out.push_str(&format!("{{{{else if {q}}}}}"));
                    self.body(out);
                }
                if self.chance(50) {
                    out.push_str("{{else}}");
                    self.body(out);
                }
                out.push_str(&format!("{}end{}", self.open(), self.close()));
                self.vars.truncate(scope);
                self.depth -= 1;
            }
            8 if nested => {
                let l = self.list_value();
                self.depth += 1;
                let scope = self.vars.len();
                let decl = match self.rng.random_range(0..3) {
                    0 => String::new(),
                    1 => format!("{} := ", self.declare()),
                    _ => format!("{}, {} := ", self.declare(), self.declare()),
                };
                self.loops += 1;
                for v in &mut self.vars[scope..] {
                    v.1 = self.loops;
                }
                out.push_str(&format!("{o}range {decl}{l}{c}"));
                if self.chance(30) {
                    out.push_str(&format!(
                        "{{{{if {}}}}}{{{{{}}}}}{{{{end}}}}",
                        self.operand(),
                        self.pick(&["break", "continue"])
                    ));
                }
                self.body(out);
                self.loops -= 1;
                for v in &mut self.vars[scope..] {
                    v.1 = self.loops;
                }
                if self.chance(40) {
                    out.push_str("{{else}}");
                    self.body(out);
                }
                out.push_str("{{end}}");
                self.vars.truncate(scope);
                self.depth -= 1;
            }
            9 if nested => {
                let p = self.pipeline();
                self.depth += 1;
                let scope = self.vars.len();
                out.push_str(&format!("{o}with {p}{c}"));
                self.body(out);
                if self.chance(40) {
                    out.push_str("{{else}}");
                    self.body(out);
                }
                out.push_str("{{end}}");
                self.vars.truncate(scope);
                self.depth -= 1;
            }
            _ => {
                if let Some(name) = self.defines.first().cloned() {
                    let p = self.operand();
                    out.push_str(&format!("{o}template {name:?} {p}{c}"));
                }
            }
        }
    }

    fn body(&mut self, out: &mut String) {
        for _ in 0..self.rng.random_range(1..4) {
            self.item(out);
        }
    }

    fn template(&mut self) -> String {
        self.vars.clear();
        self.defines.clear();
        let mut out = String::new();
        if self.chance(30) {
            let outer = std::mem::take(&mut self.vars);
            out.push_str("{{define \"d1\"}}");
            self.depth = 1;
            self.body(&mut out);
            self.depth = 0;
            out.push_str("{{end}}");
            self.vars = outer;
            self.defines.push("d1".into());
        }
        for _ in 0..self.rng.random_range(2..9) {
            self.item(&mut out);
        }
        if self.chance(10) {
            out.push_str("{{block \"b1\" .}}[{{.}}]{{end}}");
        }
        out
    }
}

#[test]
fn generated_templates_render_as_go_did() {
    const CASES: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let confdir = dir.path().join("confd");
    let out = dir.path().join("out");
    fs::create_dir_all(confdir.join("conf.d")).unwrap();
    fs::create_dir_all(confdir.join("templates")).unwrap();
    let seed = std::env::var("RECONFIG_GEN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(25);
    eprintln!("RECONFIG_GEN_SEED={seed} replays it");
    let mut g = Generator {
        rng: StdRng::seed_from_u64(seed),
        vars: vec![],
        loops: 0,
        depth: 0,
        counter: 0,
        defines: vec![],
    };
    for i in 0..CASES {
        fs::write(
            confdir.join("templates").join(format!("gen{i:03}.tmpl")),
            g.template(),
        )
        .unwrap();
        let prefix = if i % 3 == 0 {
            "prefix = \"/pre\"\n"
        } else {
            ""
        };
        fs::write(
            confdir.join("conf.d").join(format!("gen{i:03}.toml")),
            format!(
                "[template]\n{prefix}src = \"gen{i:03}.tmpl\"\ndest = \"/tmp/gen{i:03}\"\nkeys = [\"/gen\"]\n"
            ),
        )
        .unwrap();
    }
    let m = convert(&confdir, &out);
    let problems: Vec<String> = m.problems.iter().map(|p| p.to_string()).collect();
    assert!(
        problems.is_empty(),
        "the supported grammar converts completely: {problems:#?}"
    );
    let data = |pre: &str, pairs: &[(&str, &str)]| -> Value {
        Value::Object(
            pairs
                .iter()
                .flat_map(|(k, v)| [(k.to_string(), json!(v)), (format!("{pre}{k}"), json!(v))])
                .collect(),
        )
    };
    let mut sets = vec![];
    for (name, pairs) in [
        (
            "plain",
            vec![
                ("/gen/a", "alpha"),
                ("/gen/b", "10"),
                ("/gen/c/d", "x,y,,"),
                ("/gen/json", r#"{"k":"v","n":2.5,"z":null,"l":[1,"a"]}"#),
                ("/gen/list", r#"[3,"b",null,{"k":1}]"#),
                ("/gen/e", ""),
                ("/gen/u", "é/ü:1"),
            ],
        ),
        (
            "tricky",
            vec![
                ("/gen/a", "{{x}} \"q\" %d"),
                ("/gen/b", "-7"),
                ("/gen/z", "true"),
                ("/gen/json", "{}"),
                ("/gen/list", "null"),
                ("/gen/u", "ᾳ İ ß"),
            ],
        ),
        ("sparse", vec![("/gen/b", "0"), ("/other", "x")]),
    ] {
        let path = dir.path().join(format!("{name}.json"));
        fs::write(&path, data("/pre", &pairs).to_string()).unwrap();
        sets.push(path);
    }
    let resources = resources(&confdir);
    let jobs: Vec<(&Resource, &Path)> = resources
        .iter()
        .flat_map(|r| sets.iter().map(move |s| (r, s.as_path())))
        .collect();
    // One configuration directory per template: `reconfig render` compiles every entry.
    for r in &resources {
        let own = dir.path().join("one").join(&r.stem);
        fs::create_dir_all(own.join("conf.d")).unwrap();
        fs::create_dir_all(own.join("templates")).unwrap();
        let entry = format!("conf.d/{}.json", r.stem);
        let template = format!("templates/{}.tmpl", r.stem);
        fs::copy(out.join(&entry), own.join(&entry)).unwrap();
        fs::copy(out.join(&template), own.join(&template)).unwrap();
    }
    let one = dir.path().join("one");
    let outputs = compare(&jobs, &|r| one.join(&r.stem), "generated templates");
    assert!(
        outputs >= jobs.len() / 3,
        "only {outputs} of {} renders produced output",
        jobs.len()
    );
}

#[test]
fn needs_a_person_is_reported_by_line_and_never_written() {
    let cfgdir = here("needs-person");
    let out = tempfile::tempdir().unwrap();
    let m = convert(&cfgdir, out.path());
    let expected: BTreeSet<String> = fs::read_to_string(cfgdir.join("expected.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let mut reported = BTreeSet::new();
    for p in &m.problems {
        let rel = p.file.strip_prefix(&cfgdir).unwrap().display().to_string();
        let at = match p.line {
            Some(line) => format!("{rel}:{line}"),
            None => rel,
        };
        assert!(
            p.message.len() > 20,
            "{p}: a problem says what to do about it"
        );
        reported.insert(at);
    }
    assert_eq!(reported, expected, "problems: {:#?}", m.problems);
    // What needs a person is not written: no entry for a resource with a problem, no
    // template with a problem.
    for p in &m.problems {
        let rel = p.file.strip_prefix(&cfgdir).unwrap();
        let written = match rel.extension().and_then(|x| x.to_str()) {
            Some("toml") => rel.with_extension("json"),
            _ => rel.to_path_buf(),
        };
        assert!(
            !out.path().join(&written).exists(),
            "{} was written despite: {p}",
            written.display()
        );
    }
    assert!(out.path().join("templates/fine.tmpl").exists());
    assert!(!m.is_clean());
}

#[test]
fn a_key_outside_the_entry_says_which_keys_the_entry_has() {
    let dir = tempfile::tempdir().unwrap();
    let confdir = dir.path().join("confd");
    fs::create_dir_all(confdir.join("conf.d")).unwrap();
    fs::create_dir_all(confdir.join("templates")).unwrap();
    fs::write(
        confdir.join("conf.d/app.toml"),
        "[template]\nprefix = \"/p\"\nsrc = \"app.tmpl\"\ndest = \"/tmp/app\"\nkeys = [\"/a\", \"/b\"]\n",
    )
    .unwrap();
    fs::write(
        confdir.join("templates/app.tmpl"),
        "{{getv \"/a/x\"}} {{getv \"/c/y\"}}\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    convert(&confdir, &out);
    let data = dir.path().join("data.json");
    fs::write(&data, r#"{"/p/a/x": "1", "/p/c/y": "2"}"#).unwrap();
    let Rendered::Failed(error) = reconfig_render(&out, "app", &data) else {
        panic!("/c/y is not under the entry's keys: confd fails too");
    };
    assert!(
        error.contains("key does not exist: /c/y (outside the entry's keys: /a, /b)"),
        "{error}"
    );
}

/// `reconfig migrate --from confd --cfgdir IN --out OUT`: exit code and stdout.
fn migrate_cli(confdir: &Path, out: &Path) -> (i32, String) {
    let run = Command::new(env!("CARGO_BIN_EXE_reconfig"))
        .args(["migrate", "--from", "confd", "--cfgdir"])
        .arg(confdir)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    (
        run.status.code().unwrap(),
        String::from_utf8(run.stdout).unwrap(),
    )
}

#[test]
fn the_command_converts_reports_and_exits_by_what_needs_a_person() {
    let out = tempfile::tempdir().unwrap();
    let (code, report) = migrate_cli(&here("corpus"), out.path());
    assert_eq!(code, 0, "{report}");
    assert!(
        report.ends_with("19 converted, 0 need attention\n"),
        "{report}"
    );
    assert!(
        report.contains("app.yaml.tmpl:31: note: getenv"),
        "{report}"
    );
    assert!(out.path().join("conf.d/myapp-nginx.json").is_file());
    assert!(out.path().join("templates/nginx.tmpl").is_file());
    // An output directory that is not empty is not written into.
    let (code, _) = migrate_cli(&here("corpus"), out.path());
    assert_eq!(code, 2);

    let needs = here("needs-person");
    let (code, report) = migrate_cli(&needs, &out.path().join("np"));
    assert_eq!(code, 1, "{report}");
    for at in fs::read_to_string(needs.join("expected.txt"))
        .unwrap()
        .lines()
    {
        let at = format!("{}", needs.join(at).display());
        assert!(
            report.lines().any(|l| l.starts_with(&format!("{at}:"))),
            "{at} not reported:\n{report}"
        );
    }
}

/// A confd configuration in `root/confd` holding what an attacker or a careless operator
/// leaves there, and the files outside it those links point to (`root/outside`, with
/// [`secrets_outside`](crate::migrate::secrets_outside)):
/// `confd.toml` a link to settings with a password, `conf.d/evil.toml` a link to a
/// resource, `templates/shadow.tmpl` a link to a secret used by `conf.d/shadow.toml`,
/// beside `app.toml` (0640) whose template is nobody's and 0600, and `sub/b.tmpl` (0640) in
/// a 0750 directory, in a 0750 `confd`.
fn hostile_confd(root: &Path) -> (PathBuf, PathBuf) {
    use crate::migrate::{chmod, nobody, secrets_outside};
    use std::os::unix::fs::symlink;

    let outside = secrets_outside(root);
    fs::write(
        outside.join("confd.toml"),
        "backend = \"etcdv3\"\nusername = \"u\"\npassword = \"s3cret\"\nbasic_auth = true\n",
    )
    .unwrap();
    fs::write(
        outside.join("evil.toml"),
        "[template]\nsrc = \"app.tmpl\"\ndest = \"/tmp/evil\"\nkeys = [\"/a\"]\n",
    )
    .unwrap();

    let confd = root.join("confd");
    fs::create_dir_all(confd.join("conf.d")).unwrap();
    fs::create_dir_all(confd.join("templates/sub")).unwrap();
    let resource = |name: &str, src: &str| {
        fs::write(
            confd.join("conf.d").join(name),
            format!("[template]\nsrc = \"{src}\"\ndest = \"/tmp/{name}\"\nkeys = [\"/a\"]\n"),
        )
        .unwrap();
    };
    resource("app.toml", "app.tmpl");
    chmod(&confd.join("conf.d/app.toml"), 0o640);
    resource("b.toml", "sub/b.tmpl");
    resource("shadow.toml", "shadow.tmpl");
    symlink(outside.join("evil.toml"), confd.join("conf.d/evil.toml")).unwrap();
    symlink(outside.join("confd.toml"), confd.join("confd.toml")).unwrap();
    let app = confd.join("templates/app.tmpl");
    fs::write(&app, "password={{getv \"/a\"}}\n").unwrap();
    chmod(&app, 0o600);
    let (uid, gid) = nobody();
    std::os::unix::fs::chown(&app, Some(uid), Some(gid)).unwrap();
    fs::write(confd.join("templates/sub/b.tmpl"), "b={{getv \"/a\"}}\n").unwrap();
    chmod(&confd.join("templates/sub/b.tmpl"), 0o640);
    chmod(&confd.join("templates/sub"), 0o750);
    symlink(outside.join("shadow"), confd.join("templates/shadow.tmpl")).unwrap();
    chmod(&confd, 0o750);
    (confd, outside)
}

#[test]
fn links_are_never_followed_and_modes_and_owners_kept() {
    use crate::common::{names, tree_state};
    use crate::migrate::{assert_links_reported, mode_of, nobody};
    use std::os::unix::fs::MetadataExt as _;

    let dir = tempfile::tempdir().unwrap();
    let (confd, outside) = hostile_confd(dir.path());
    let before = tree_state(&outside);
    let out = dir.path().join("new");
    let (code, report) = migrate_cli(&confd, &out);
    assert_eq!(code, 1, "{report}");
    let links = ["confd.toml", "conf.d/evil.toml", "templates/shadow.tmpl"];
    assert_links_reported(&confd, &links, &report);
    let shadow = confd.join("conf.d/shadow.toml");
    assert!(
        report.contains(&format!(
            "{}: template shadow.tmpl not found",
            shadow.display()
        )),
        "{report}"
    );
    assert_eq!(tree_state(&outside), before, "nothing outside is touched");
    assert_eq!(names(&out), ["conf.d", "templates"], "no reconfig.env");
    assert_eq!(names(&out.join("conf.d")), ["app.json", "b.json"]);
    assert_eq!(names(&out.join("templates")), ["app.tmpl", "sub"]);
    assert_eq!(names(&out.join("templates/sub")), ["b.tmpl"]);
    let meta = fs::symlink_metadata(out.join("templates/app.tmpl")).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o600);
    assert_eq!((meta.uid(), meta.gid()), nobody());
    assert_eq!(
        mode_of(&out),
        0o750,
        "OUT, made by migrate, as confd's directory"
    );
    assert_eq!(mode_of(&out.join("templates/sub")), 0o750);
    assert_eq!(mode_of(&out.join("templates/sub/b.tmpl")), 0o640);
    assert_eq!(mode_of(&out.join("conf.d/app.json")), 0o640, "as app.toml");
}

#[test]
fn out_is_written_only_into_a_new_or_empty_directory_of_ones_own() {
    let dir = tempfile::tempdir().unwrap();
    let (confd, _) = hostile_confd(dir.path());
    let args = ["--from", "confd", "--cfgdir", confd.to_str().unwrap()];
    crate::migrate::assert_out_refused(dir.path(), &args);
}

#[test]
fn confds_flags_are_answered_with_reconfigs() {
    for (args, ours) in [
        (&["-onetime"][..], "--onetime"),
        (&["-noop"], "--notreally"),
        (&["-confdir", "/etc/confd"], "--cfgdir"),
        (&["-node=http://127.0.0.1:2379"], "--endpoints"),
        (&["-interval", "600"], "watches"),
    ] {
        let run = Command::new(env!("CARGO_BIN_EXE_reconfig"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(run.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8(run.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("is confd's flag") && stderr.contains(ours),
            "{args:?}: {stderr}"
        );
    }
}

/// confd's quick-start template (docs/quick-start-guide.md), as it is.
const TUTORIAL_TMPL: &str = r#"upstream {{getv "/subdomain"}} {
{{range getvs "/upstream/*"}}
    server {{.}};
{{end}}
}

server {
    server_name  {{getv "/subdomain"}}.example.com;
    location / {
        proxy_pass        http://{{getv "/subdomain"}};
        proxy_redirect    off;
        proxy_set_header  Host             $host;
        proxy_set_header  X-Real-IP        $remote_addr;
        proxy_set_header  X-Forwarded-For  $proxy_add_x_forwarded_for;
   }
}
"#;

#[tokio::test]
async fn the_tutorial_converted_and_run_by_the_daemon_writes_what_confd_writes() {
    use crate::common::{wait_for_content, Daemon, EtcdServer};
    use etcd_client::PutOptions;
    use std::time::Duration;

    const LIMIT: Duration = Duration::from_secs(30);
    let dir = tempfile::tempdir().unwrap();
    let confdir = dir.path().join("confd");
    fs::create_dir_all(confdir.join("conf.d")).unwrap();
    fs::create_dir_all(confdir.join("templates")).unwrap();
    let target = dir.path().join("nginx.conf");
    fs::write(
        confdir.join("conf.d/nginx.toml"),
        format!(
            "[template]\nprefix = \"/services/apache\"\nsrc = \"nginx.tmpl\"\ndest = \"{}\"\n\
             mode = \"0644\"\nkeys = [\n  \"/subdomain\",\n  \"/upstream\",\n]\n",
            target.display()
        ),
    )
    .unwrap();
    fs::write(confdir.join("templates/nginx.tmpl"), TUTORIAL_TMPL).unwrap();
    let out = dir.path().join("reconfig");
    let (code, report) = migrate_cli(&confdir, &out);
    assert_eq!(code, 0, "{report}");

    // What confd writes at each step, from Go's harness.
    let steps: [&[(&str, &str)]; 3] = [
        &[
            ("/services/apache/subdomain", "apache"),
            ("/services/apache/upstream/a", "127.0.0.1:8081"),
        ],
        &[
            ("/services/apache/subdomain", "apache"),
            ("/services/apache/upstream/a", "127.0.0.1:8081"),
            ("/services/apache/upstream/b", "127.0.0.1:8080"),
        ],
        &[
            ("/services/apache/subdomain", "apache"),
            ("/services/apache/upstream/a", "127.0.0.1:8081"),
        ],
    ];
    let resource = resources(&confdir).remove(0);
    let files: Vec<PathBuf> = steps
        .iter()
        .enumerate()
        .map(|(i, pairs)| {
            let path = dir.path().join(format!("step{i}.json"));
            let flat: serde_json::Map<String, Value> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect();
            fs::write(&path, Value::Object(flat).to_string()).unwrap();
            path
        })
        .collect();
    let jobs: Vec<(&Resource, &Path)> = files.iter().map(|f| (&resource, f.as_path())).collect();
    let expected: Vec<String> = go_render(&jobs)
        .into_iter()
        .map(|r| match r {
            Rendered::Output(b) => String::from_utf8(b).unwrap(),
            Rendered::Failed(e) => panic!("Go failed: {e}"),
        })
        .collect();
    assert_ne!(expected[0], expected[1]);

    let etcd = EtcdServer::start().await;
    let mut client = etcd.client().await;
    etcd.put_all([
        ("/services/apache/subdomain", "apache"),
        ("/services/apache/upstream/a", "127.0.0.1:8081"),
    ])
    .await;
    let mut daemon = Daemon::start(
        [
            "--cfgdir".to_string(),
            out.display().to_string(),
            "--endpoints".into(),
            etcd.endpoint.clone(),
        ],
        &dir.path().join("log"),
    );
    wait_for_content(&target, &expected[0], LIMIT, || daemon.log()).await;
    // A backend registers with a lease and is not renewed: it comes, then goes (the lease
    // revoked once the daemon has written it, as its expiry would, whatever the machine's speed).
    let lease = client.lease_grant(300, None).await.unwrap().id();
    client
        .put(
            "/services/apache/upstream/b",
            "127.0.0.1:8080",
            Some(PutOptions::new().with_lease(lease)),
        )
        .await
        .unwrap();
    wait_for_content(&target, &expected[1], LIMIT, || daemon.log()).await;
    client.lease_revoke(lease).await.unwrap();
    wait_for_content(&target, &expected[2], LIMIT, || daemon.log()).await;
    // Without the subdomain confd's getv fails: the target keeps its last good content.
    client
        .delete("/services/apache/subdomain", None)
        .await
        .unwrap();
    let failed = crate::common::eventually(LIMIT, || {
        daemon.log().contains("key does not exist: /subdomain")
    })
    .await;
    assert!(failed, "{}", daemon.log());
    assert_eq!(fs::read_to_string(&target).unwrap(), expected[2]);
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(LIMIT).await, Some(0), "{}", daemon.log());
}

#[test]
fn confd_toml_becomes_the_units_environment_and_its_prefix_every_resources() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let confdir = dir.path().join("confd");
    fs::create_dir_all(confdir.join("conf.d")).unwrap();
    fs::create_dir_all(confdir.join("templates")).unwrap();
    fs::write(
        confdir.join("confd.toml"),
        "backend = \"etcdv3\"\nnodes = [\"127.0.0.1:2379\"]\nprefix = \"/production\"\n\
         basic_auth = true\nusername = \"confd\"\npassword = \"s3cret\"\n\
         client_cakeys = \"/etc/ssl/ca.pem\"\nwatch = true\n",
    )
    .unwrap();
    fs::write(
        confdir.join("conf.d/app.toml"),
        "[template]\nprefix = \"/ignored\"\nsrc = \"app.tmpl\"\ndest = \"/tmp/app\"\nkeys = [\"/a\"]\n",
    )
    .unwrap();
    fs::write(confdir.join("templates/app.tmpl"), "{{getv \"/a\"}}\n").unwrap();
    let out = dir.path().join("out");
    let (code, report) = migrate_cli(&confdir, &out);
    assert_eq!(code, 0, "{report}");
    assert!(report.contains("reconfig.env"), "{report}");
    let env = out.join("reconfig.env");
    assert_eq!(
        fs::metadata(&env).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let env = fs::read_to_string(&env).unwrap();
    for line in [
        "ETCD_ENDPOINTS=http://127.0.0.1:2379",
        "ETCD_USERNAME=confd",
        "ETCD_PASSWORD=s3cret",
        "RECONFIG_SSL_CAFILE=/etc/ssl/ca.pem",
    ] {
        assert!(env.lines().any(|l| l == line), "{line} in:\n{env}");
    }
    let entry: Value =
        serde_json::from_str(&fs::read_to_string(out.join("conf.d/app.json")).unwrap()).unwrap();
    assert_eq!(
        entry["prefix"], "/production",
        "confd's global prefix replaces the resource's"
    );
    let data = dir.path().join("data.json");
    fs::write(
        &data,
        r#"{"/production/a": "from production", "/ignored/a": "no"}"#,
    )
    .unwrap();
    assert_eq!(
        reconfig_render(&out, "app", &data),
        Rendered::Output(b"from production\n".to_vec())
    );
}
