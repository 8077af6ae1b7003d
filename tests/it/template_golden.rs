//! Golden tests of the template layer.
//!
//! Expected outputs under `tests/golden/` were produced by Ruby (Erubis, json < 2.8, Psych)
//! with `tests/golden/generate.rb` and are committed; see `tests/golden/README.md`. Each
//! Erubis case keeps the Ruby original (`NAME.ruby`) beside its reconfig port (`NAME.tmpl`).
//! Function, plain-Tera and error tests state their expected output inline.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use reconfig::{
    altdata_model, compile, data_model, Pattern, RenderInput, Snapshot, Template, TemplateError,
    TemplateSet,
};
use serde_json::{json, Map, Value};

fn golden(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(path)
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn snapshot(pairs: &[(&str, &[u8])]) -> Arc<Snapshot> {
    Arc::new(Snapshot::new(
        1,
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect(),
    ))
}

/// `data`, `altdata`, `watched` and the snapshot a render reads.
struct Input {
    data: Value,
    altdata: Value,
    watched: String,
    snapshot: Arc<Snapshot>,
}

impl Input {
    /// From a `{"data", "altdata", "watched"}` file; the snapshot holds every key in it.
    fn from_file(path: &Path) -> Input {
        let model = read_json(path);
        let mut kvs = BTreeMap::new();
        let trees = std::iter::once(&model["data"]).chain(
            model["altdata"]
                .as_object()
                .into_iter()
                .flat_map(Map::values),
        );
        for tree in trees {
            for (k, v) in tree.as_object().expect("trees are objects") {
                kvs.insert(
                    k.clone(),
                    v.as_str().expect("values are strings").as_bytes().to_vec(),
                );
            }
        }
        Input {
            data: model["data"].clone(),
            altdata: model["altdata"].clone(),
            watched: model["watched"]
                .as_str()
                .expect("watched is a string")
                .to_string(),
            snapshot: Arc::new(Snapshot::new(1, kvs)),
        }
    }

    fn with_snapshot(snapshot: Arc<Snapshot>) -> Input {
        Input {
            data: json!({"/k": "v"}),
            altdata: json!({}),
            watched: "/k".to_string(),
            snapshot,
        }
    }

    fn render(&self, template: &Template) -> Result<String, TemplateError> {
        template.render(
            RenderInput {
                data: self.data.clone().into(),
                altdata: self.altdata.clone(),
                watched: &self.watched,
                snapshot: &self.snapshot,
                prefix: None,
                read: &[],
            },
            &Default::default(),
            None,
        )
    }
}

fn render_with(input: &Input, text: &str) -> Result<String, TemplateError> {
    input.render(&compile("t.erb", text, &Pattern::default())?)
}

fn render(text: &str) -> String {
    render_with(&Input::from_file(&golden("erubis/data.json")), text)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn render_error(input: &Input, name: &str, text: &str) -> String {
    compile(name, text, &Pattern::default())
        .and_then(|t| input.render(&t))
        .expect_err("the template must fail")
        .to_string()
}

/// Renders `erubis/DIR/NAME.tmpl` with `pattern` and compares it with Erubis's `NAME.out`.
fn check_erubis(dir: &str, name: &str, pattern: &str) {
    let base = golden(&format!("erubis/{dir}/{name}"));
    let own_data = base.with_extension("json");
    let data = if own_data.exists() {
        own_data
    } else {
        golden("erubis/data.json")
    };
    let tmpl = base.with_extension("tmpl");
    let template = compile(
        &tmpl.display().to_string(),
        &read(&tmpl),
        &Pattern::parse(pattern).unwrap(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let got = Input::from_file(&data)
        .render(&template)
        .unwrap_or_else(|e| panic!("{e}"));
    let want = read(&base.with_extension("out"));
    assert_eq!(got, want, "{dir}/{name}: output differs from Erubis");
}

macro_rules! erubis_golden {
    ($($test:ident: $dir:literal / $name:literal with $pattern:literal;)*) => {$(
        #[test]
        fn $test() {
            check_erubis($dir, $name, $pattern);
        }
    )*};
}

erubis_golden! {
    erubis_trim_lines: "angle" / "trim_lines" with "<% %>";
    erubis_trim_not: "angle" / "trim_not" with "<% %>";
    erubis_no_newline_at_end: "angle" / "no_newline_at_end" with "<% %>";
    erubis_crlf: "angle" / "crlf" with "<% %>";
    erubis_multiline_tags: "angle" / "multiline_tags" with "<% %>";
    erubis_comments: "angle" / "comments" with "<% %>";
    erubis_literal_tags: "angle" / "literal_tags" with "<% %>";
    erubis_expression_lines: "angle" / "expression_lines" with "<% %>";
    erubis_markup_in_text: "angle" / "markup_in_text" with "<% %>";
    erubis_values: "angle" / "values" with "<% %>";
    erubis_open_without_close: "angle" / "open_without_close" with "<% %>";
    erubis_idioms: "angle" / "idioms" with "<% %>";
    erubis_empty_data: "angle" / "empty" with "<% %>";
    erubis_alt_pattern: "hash" / "alt_pattern" with "#% %#";
}

/// Renders `<%= data | FILTER %>` for every value of `DIR/cases.json` and compares the
/// outputs with the `DIR/NAME.EXT` files, for each `(EXT, FILTER)`.
fn check_cases(dir: &str, outputs: &[(&str, &str)]) {
    let cases = read_json(&golden(&format!("{dir}/cases.json")));
    let cases = cases.as_object().expect("cases.json is an object");
    assert!(!cases.is_empty());
    let mut failures = Vec::new();
    for (name, value) in cases {
        let input = Input {
            data: value.clone(),
            altdata: json!({}),
            watched: "/".into(),
            snapshot: snapshot(&[]),
        };
        for (ext, filter) in outputs {
            let want = read(&golden(&format!("{dir}/{name}.{ext}")));
            let got = render_with(&input, &format!("<%= data | {filter} %>")).unwrap();
            if got != want {
                failures.push(format!("{name}.{ext}:\n--- want\n{want}\n--- got\n{got}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn to_json_matches_ruby_generate_and_pretty_generate() {
    check_cases(
        "json",
        &[("compact", "to_json"), ("pretty", "to_json(pretty=true)")],
    );
}

#[test]
fn to_yaml_matches_psych() {
    check_cases("yaml", &[("yaml", "to_yaml")]);
}

/// The cfgtest/ entries: each template against cfgtest/snapshot.json, with the data model
/// of src/snapshot.rs, compared with Erubis's output of the original reconfig.rb samples.
#[test]
fn cfgtest_samples_render_like_reconfig_rb() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("cfgtest");
    let flat = read_json(&root.join("snapshot.json"));
    let kvs = flat
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().as_bytes().to_vec()))
        .collect();
    let snapshot = Arc::new(Snapshot::new(1, kvs));
    let mut entries: Vec<PathBuf> = fs::read_dir(root.join("conf.d"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    assert_eq!(entries.len(), 5);
    for conf in entries {
        let entry = read_json(&conf);
        let id = entry["id"].as_str().unwrap();
        let key = entry["key"].as_str().unwrap();
        let altkeys: BTreeMap<String, String> =
            serde_json::from_value(entry.get("altkeys").cloned().unwrap_or(json!({}))).unwrap();
        let pattern = Pattern::parse(entry["pattern"].as_str().unwrap_or("<% %>")).unwrap();
        let template = Template::load(
            &root
                .join("templates")
                .join(entry["source"].as_str().unwrap()),
            &pattern,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let input = Input {
            data: data_model(
                &snapshot,
                key,
                entry["recursive"].as_bool().unwrap_or(false),
            )
            .unwrap(),
            altdata: altdata_model(&snapshot, &altkeys).unwrap(),
            watched: key.to_string(),
            snapshot: Arc::clone(&snapshot),
        };
        let got = input.render(&template).unwrap_or_else(|e| panic!("{e}"));
        let want = read(&golden(&format!("cfgtest/{id}.out")));
        assert_eq!(got, want, "cfgtest entry {id}");
    }
}

// ---- plain Tera ----------------------------------------------------------------------------

#[test]
fn plain_tera_pattern_uses_the_file_untranslated() {
    let input = Input::from_file(&golden("erubis/data.json"));
    let text =
        "{% for k, v in altdata.limits %}{{ k }}={{ v }}\n{% endfor %}<% kept %>{# gone #}\n";
    let template = compile("t.tera", text, &Pattern::parse("{{ }}").unwrap()).unwrap();
    assert_eq!(
        input.render(&template).unwrap(),
        "/limits/cpu=2\n/limits/mem=512M\n<% kept %>\n"
    );
}

#[test]
fn plain_tera_errors_name_the_file() {
    let err = compile(
        "t.tera",
        "a\n{{ oops( }}",
        &Pattern::parse("{{ }}").unwrap(),
    )
    .err()
    .unwrap();
    assert_eq!(err.line(), Some(2));
    let input = Input::with_snapshot(snapshot(&[]));
    let template = compile("t.tera", "{{ nope }}", &Pattern::parse("{{ }}").unwrap()).unwrap();
    assert_eq!(
        input.render(&template).unwrap_err().to_string(),
        "t.tera: Variable `nope` not found in context"
    );
}

// ---- context and language ------------------------------------------------------------------

#[test]
fn context_has_reconfig_and_top_level_names() {
    assert_eq!(
        render("<%= reconfig.watched %> <%= watched %> <%= reconfig.data[\"/app/db/port\"] %> <%= data[\"/app/db/port\"] %> <%= reconfig.altdata.limits[\"/limits/cpu\"] %>"),
        "/app /app 5432 5432 2"
    );
}

#[test]
fn objects_iterate_sorted_by_key() {
    let input = Input {
        data: serde_json::from_str(r#"{"/z": "1", "/a": "2", "/m": "3"}"#).unwrap(),
        altdata: json!({}),
        watched: "/".into(),
        snapshot: snapshot(&[]),
    };
    assert_eq!(
        render_with(&input, "<% for k, v in data %><%= k %> <% endfor %>").unwrap(),
        "/a /m /z "
    );
}

#[test]
fn nothing_is_html_escaped() {
    let input = Input {
        data: json!({"/x": "<a href=\"&\">'</a>"}),
        altdata: json!({}),
        watched: "/x".into(),
        snapshot: snapshot(&[]),
    };
    assert_eq!(
        render_with(&input, "<%= data[\"/x\"] %>").unwrap(),
        "<a href=\"&\">'</a>"
    );
}

#[test]
fn keys_with_dots_and_variables_as_subscripts() {
    let input = Input {
        data: json!({"/hosts/example.com": "1.2.3.4"}),
        altdata: json!({}),
        watched: "/hosts".into(),
        snapshot: snapshot(&[]),
    };
    assert_eq!(
        render_with(
            &input,
            "<%= data[\"/hosts/example.com\"] %> <% for k, v in data %><%= data[k] %><% endfor %>"
        )
        .unwrap(),
        "1.2.3.4 1.2.3.4"
    );
}

#[test]
fn tera_whitespace_control_works_inside_tags() {
    assert_eq!(
        render("a\n  <%- if true -%>  \n  b\n<%- endif %>\nc"),
        "abc"
    );
    assert_eq!(
        render("x {{ y }}\n  <%=- watched -%>\n {z}"),
        "x {{ y }}/app{z}"
    );
}

#[test]
fn rendering_is_deterministic_and_repeatable() {
    let input = Input::from_file(&golden("erubis/data.json"));
    let template = compile(
        "t.erb",
        "<% for k, v in data %><%= k %>=<%= v %>;<% endfor %><%= data | to_yaml %>",
        &Pattern::default(),
    )
    .unwrap();
    let first = input.render(&template).unwrap();
    for _ in 0..3 {
        assert_eq!(input.render(&template).unwrap(), first);
    }
}

#[test]
fn template_is_send_and_sync_and_renders_from_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Template>();
    let template =
        Arc::new(compile("t.erb", "<%= getv(key=\"/k\") %>", &Pattern::default()).unwrap());
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let template = Arc::clone(&template);
            std::thread::spawn(move || {
                let value = format!("v{i}");
                let input = Input::with_snapshot(snapshot(&[("/k", value.as_bytes())]));
                assert_eq!(input.render(&template).unwrap(), value);
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

// ---- filters -------------------------------------------------------------------------------

#[test]
fn filter_to_json_compact_and_pretty() {
    assert_eq!(
        render("<%= altdata.limits | to_json %>"),
        r#"{"/limits/cpu":"2","/limits/mem":"512M"}"#
    );
    assert_eq!(
        render("<%= altdata | to_json(pretty=true) %>"),
        "{\n  \"limits\": {\n    \"/limits/cpu\": \"2\",\n    \"/limits/mem\": \"512M\"\n  },\n  \"none\": {\n  }\n}"
    );
}

#[test]
fn filter_to_yaml() {
    assert_eq!(
        render("<%= altdata.limits | to_yaml %>"),
        "---\n\"/limits/cpu\": '2'\n\"/limits/mem\": 512M\n"
    );
}

#[test]
fn filter_from_json() {
    let input = Input {
        data: json!({"/cfg": "{\"b\": [1, 2], \"a\": \"x\"}"}),
        altdata: json!({}),
        watched: "/cfg".into(),
        snapshot: snapshot(&[]),
    };
    assert_eq!(
        render_with(
            &input,
            "<% set cfg = data[\"/cfg\"] | from_json %><%= cfg.a %> <%= cfg.b | length %> <%= cfg | to_json %>"
        )
        .unwrap(),
        r#"x 2 {"a":"x","b":[1,2]}"#
    );
}

#[test]
fn filters_base_and_dir() {
    assert_eq!(
        render("<%= \"/services/apache/web1\" | base %> <%= \"/services/apache/web1\" | dir %>"),
        "web1 /services/apache"
    );
}

#[test]
fn tera_builtin_filters_remain() {
    assert_eq!(
        render("<%= watched | upper %> <%= \"a,b\" | split(pat=\",\") | join(sep=\"+\") %>"),
        "/APP a+b"
    );
}

// ---- functions -----------------------------------------------------------------------------

fn services() -> Input {
    Input::with_snapshot(snapshot(&[
        ("/services/apache/web2", b"127.0.0.1:8002"),
        ("/services/apache/web1", b"127.0.0.1:8001"),
        ("/services/apache/old/x", b"10.0.0.9:80"),
        ("/services/apache-x/y", b"no"),
        ("/services/db", b"db:5432"),
        ("/bin", &[0xff, 0xfe]),
    ]))
}

fn fn_output(text: &str) -> String {
    render_with(&services(), text).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn function_getv() {
    assert_eq!(
        fn_output("<%= getv(key=\"/services/db\") %> <%= getv(key=\"/nope\", default=\"d\") %>"),
        "db:5432 d"
    );
}

#[test]
fn function_getvs_sorted_values_of_glob() {
    assert_eq!(
        fn_output("<%= getvs(pattern=\"/services/apache/*\") | join(sep=\",\") %>"),
        "127.0.0.1:8001,127.0.0.1:8002"
    );
    assert_eq!(
        fn_output("<%= getvs(pattern=\"/services/*/web?\") | length %> <%= getvs(pattern=\"/none/*\") | length %>"),
        "2 0"
    );
}

#[test]
fn function_gets_pairs_of_glob() {
    assert_eq!(
        fn_output("<% for p in gets(pattern=\"/services/apache/*\") %><%= p.key %>=<%= p.value %>;<% endfor %>"),
        "/services/apache/web1=127.0.0.1:8001;/services/apache/web2=127.0.0.1:8002;"
    );
}

#[test]
fn function_ls_and_lsdir() {
    assert_eq!(
        fn_output("<%= ls(dir=\"/services/apache\") | join(sep=\",\") %>"),
        "old,web1,web2"
    );
    assert_eq!(
        fn_output("<%= lsdir(dir=\"/services/apache\") | join(sep=\",\") %>"),
        "old"
    );
    assert_eq!(
        fn_output(
            "<%= ls(dir=\"/services\") | join(sep=\",\") %> <%= ls(dir=\"/nothing\") | length %>"
        ),
        "apache,apache-x,db 0"
    );
}

#[test]
fn function_exists() {
    assert_eq!(
        fn_output("<%= exists(key=\"/services/db\") %> <%= exists(key=\"/services\") %> <% if exists(key=\"/x\") %>x<% else %>no x<% endif %>"),
        "true false no x"
    );
}

#[test]
fn functions_base_dir_split_join() {
    assert_eq!(
        fn_output("<%= base(path=\"/a/b/\") %> <%= dir(path=\"/a/b\") %> <%= split(s=\"a:b::c\", sep=\":\") | length %> <%= join(list=split(s=\"x y z\", sep=\" \"), sep=\"-\") %> <%= split(s=\"héj\", sep=\"\") | join(sep=\".\") %>"),
        "b /a 4 x-y-z h.é.j"
    );
}

#[test]
fn function_getenv() {
    // A variable every test process has, and one no environment defines.
    let path = std::env::var("PATH").unwrap();
    assert_eq!(
        fn_output("<%= getenv(name=\"PATH\") %>|<%= getenv(name=\"RECONFIG_TEST_UNSET_VARIABLE\", default=\"fallback\") %>"),
        format!("{path}|fallback")
    );
}

#[test]
fn function_hostname() {
    let want = nix::unistd::gethostname().unwrap().into_string().unwrap();
    assert_eq!(fn_output("<%= hostname() %>"), want);
}

// ---- errors --------------------------------------------------------------------------------

#[test]
fn error_template_file_missing() {
    let err = Template::load(Path::new("templates/missing.conf.erb"), &Pattern::default())
        .err()
        .unwrap();
    assert!(matches!(err, TemplateError::Read { .. }));
    assert_eq!(
        err.to_string(),
        "templates/missing.conf.erb: cannot read template: No such file or directory (os error 2)"
    );
}

#[test]
fn error_syntax_names_the_original_line() {
    let text = "line 1\n<%# a comment\nover two lines %>\n  <% if true %>\n{{ literal }}\n<%= data | to_json( %>\n<% endif %>\n";
    let err = compile("templates/x.conf.erb", text, &Pattern::default())
        .err()
        .unwrap();
    assert!(matches!(err, TemplateError::Syntax { .. }));
    assert_eq!(err.line(), Some(6));
    let message = err.to_string();
    assert!(
        message.starts_with("templates/x.conf.erb:6: syntax error: expected "),
        "{message}"
    );
    assert!(!message.contains('\n'), "{message}");
}

#[test]
fn error_syntax_at_the_end_of_a_trimmed_statement_names_its_own_line() {
    for (text, line) in [
        ("line one\n<% for x in %>\n<% endfor %>\n", 2),
        ("a\n  <% if -%>  \r\n<% endif %>\n", 2),
    ] {
        let err = compile("t.erb", text, &Pattern::default()).err().unwrap();
        assert_eq!(err.line(), Some(line), "{text:?}: {err}");
    }
}

#[test]
fn error_syntax_line_survives_every_construct_that_moves_newlines() {
    // Each construct before the error keeps its line ends somewhere else in the Tera
    // source: CRLF text, markup text (literal table), a literal tag, a multi-line expression,
    // trimmed statements and comments, a multi-line statement.
    let text = "a\r\n{{ x }}\n{% y %}\r\n<%% z\n%>\n<%= watched\n %>\n  <% if true %>  \r\n\
                <%# c\nc %>\n<% set n =\n 1 %>\n<% endif %>\n<%= oops( %>\n";
    let err = compile("t.erb", text, &Pattern::default()).err().unwrap();
    assert_eq!(err.line(), Some(14), "{err}");
    let runtime = text.replace("oops(", "nope");
    let input = Input::from_file(&golden("erubis/data.json"));
    assert_eq!(
        render_error(&input, "t.erb", &runtime),
        "t.erb:14: Variable `nope` not found in context"
    );
    let hash = text.replace("<%", "#%").replace("%>", "%#");
    let err = compile("t.erb", &hash, &Pattern::parse("#% %#").unwrap())
        .err()
        .unwrap();
    assert_eq!(err.line(), Some(14), "{err}");
}

/// The line of a failure after an include of another template of the configuration: the
/// twin that finds the line sees the same templates as the render.
#[test]
fn error_line_after_an_include_of_another_template() {
    let mut set = TemplateSet::default();
    let pattern = Pattern::default();
    set.add("inc.erb", "included\n", &pattern).unwrap();
    let text = "<% include \"inc.erb\" %>\nline 2\n<%= nope %>\n";
    set.add("t.erb", text, &pattern).unwrap();
    let template = set.finish().pop().unwrap();
    let input = Input::from_file(&golden("erubis/data.json"));
    let err = input.render(&template).expect_err("the template must fail");
    assert_eq!(
        err.to_string(),
        "t.erb:3: Variable `nope` not found in context"
    );
}

/// A walked template that left the shared engine: when its walk stops, Tera renders it on
/// an engine of its own, every time; one that another includes stays for it.
#[test]
fn walked_templates_fall_back_to_tera_and_stay_includable() {
    let input = Input::from_file(&golden("erubis/data.json"));
    let mut set = TemplateSet::default();
    let pattern = Pattern::default();
    let chars = "<% for c in watched %><%= c %>.<% endfor %>\n";
    set.add("chars.erb", chars, &pattern).unwrap();
    set.add("inc.erb", "[<%= watched %>]\n", &pattern).unwrap();
    let text = "<% include \"inc.erb\" %><%= watched | upper %>\n";
    set.add("t.erb", text, &pattern).unwrap();
    let templates = set.finish();
    let watched = input.watched.clone();
    let dotted: String = watched.chars().map(|c| format!("{c}.")).collect();
    for _ in 0..2 {
        assert_eq!(input.render(&templates[0]).unwrap(), format!("{dotted}\n"));
    }
    assert_eq!(
        input.render(&templates[2]).unwrap(),
        format!("[{watched}]\n{}\n", watched.to_uppercase())
    );
}

#[test]
fn error_unclosed_block_is_reported() {
    let err = compile("t.erb", "<% for x in data %>\nbody\n", &Pattern::default())
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "t.erb:3: syntax error: expected tag or some content"
    );
}

#[test]
fn error_undefined_variable_in_a_loop_names_its_line() {
    let input = Input::from_file(&golden("erubis/data.json"));
    let text = "# header\n<%# comment\n%>\n<% for k, v in data %>\n  <% if k is starting_with(\"/app/db\") %>\n{{ <%= k %> }}\n  <%= v %>:<%= v.port %>\n  <% endif %>\n<% endfor %>\n";
    assert_eq!(
        render_error(&input, "templates/x.conf.erb", text),
        "templates/x.conf.erb:7: Variable `v.port` not found in context"
    );
}

#[test]
fn error_undefined_variable_after_a_block_on_the_same_line() {
    let input = Input::from_file(&golden("erubis/data.json"));
    assert_eq!(
        render_error(
            &input,
            "t.erb",
            "<% for k, v in data %>\n<%= k %>\n<% endfor %><%= nope %>\n"
        ),
        "t.erb:3: Variable `nope` not found in context"
    );
    assert_eq!(
        render_error(
            &input,
            "t.erb",
            "<% for k in [] %>\n<%= k %>\n<% endfor %><%= nope %>\n"
        ),
        "t.erb:3: Variable `nope` not found in context"
    );
}

#[test]
fn error_in_elif_names_the_elif_line() {
    let input = services();
    assert_eq!(
        render_error(
            &input,
            "t.erb",
            "<% if false %>\nno\n<% elif getv(key=\"/x\") == \"1\" %>\nyes\n<% endif %>\n"
        ),
        "t.erb:3: getv: key /x not found (and no default)"
    );
}

#[test]
fn error_missing_data_key_with_subscript() {
    let input = Input::from_file(&golden("erubis/data.json"));
    let message = render_error(&input, "t.erb", "ok\n<%= data[\"/app/missing\"] %>\n");
    assert!(
        message.starts_with("t.erb:2: Variable `data[\"/app/missing\"]` not found in context"),
        "{message}"
    );
}

#[test]
fn error_getv_missing_key() {
    assert_eq!(
        render_error(
            &services(),
            "t.erb",
            "a\nb <%= getv(key=\"/services/nope\") %>\n"
        ),
        "t.erb:2: getv: key /services/nope not found (and no default)"
    );
}

#[test]
fn error_getenv_missing() {
    assert_eq!(
        render_error(&services(), "t.erb", "<%= getenv(name=\"RECONFIG_TEST_UNSET_VARIABLE\") %>"),
        "t.erb:1: getenv: environment variable RECONFIG_TEST_UNSET_VARIABLE is not set (and no default)"
    );
}

#[test]
fn error_non_utf8_value_names_the_key() {
    assert_eq!(
        render_error(&services(), "t.erb", "\n\n<%= getv(key=\"/bin\") %>"),
        "t.erb:3: getv: value of key /bin is not valid UTF-8"
    );
    assert_eq!(
        render_error(
            &services(),
            "t.erb",
            "<% for v in getvs(pattern=\"/*\") %><% endfor %>"
        ),
        "t.erb:1: getvs: value of key /bin is not valid UTF-8"
    );
}

#[test]
fn error_bad_arguments_name_the_function() {
    assert_eq!(
        render_error(
            &services(),
            "t.erb",
            "<%= getv(key=\"/services/db\", defualt=\"x\") %>"
        ),
        "t.erb:1: getv: unknown argument `defualt` (takes: key, default)"
    );
    assert_eq!(
        render_error(
            &services(),
            "t.erb",
            "<%= getvs(pattern=\"/services/[\") %>"
        ),
        "t.erb:1: getvs: syntax error in pattern \"/services/[\""
    );
    assert_eq!(
        render_error(&services(), "t.erb", "<%= \"{\" | from_json %>"),
        "t.erb:1: from_json: invalid JSON: EOF while parsing an object at line 1 column 1"
    );
}

#[test]
fn error_in_alt_pattern_names_the_line() {
    let input = Input::from_file(&golden("erubis/data.json"));
    let template = compile(
        "t.erb",
        "#% for k, v in data %#\n#%= nope %#\n#% endfor %#\n",
        &Pattern::parse("#% %#").unwrap(),
    )
    .unwrap();
    assert_eq!(
        input.render(&template).unwrap_err().to_string(),
        "t.erb:2: Variable `nope` not found in context"
    );
}

#[test]
fn error_names_a_go_value_for_what_it_is() {
    let input = Input::from_file(&golden("erubis/data.json"));
    let text = "a\n<%= go_split(a=[\"x,y\", \",\"]) | upper %>\n";
    assert_eq!(
        render_error(&input, "t.erb", text),
        "t.erb:2: Filter `upper` was called on an incorrect value: got a Go value but expected a String"
    );
}
