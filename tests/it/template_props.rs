//! Properties of the template layer: text outside tags, and values, come out byte for byte,
//! whatever Tera or Erubis markup they contain; and no template or value makes compiling or
//! rendering panic.

use std::sync::Arc;

use proptest::prelude::*;
use reconfig::{compile, Pattern, RenderInput, Snapshot};
use serde_json::{json, Value};

/// Pieces that are markup to Tera, Erubis or YAML/JSON, mixed with any characters.
fn tricky_text() -> impl Strategy<Value = String> {
    let fragment = prop_oneof![
        prop::sample::select(vec![
            "{{",
            "{%",
            "{#",
            "}}",
            "%}",
            "#}",
            "{{-",
            "-}}",
            "{%-",
            "-%}",
            "{",
            "}",
            "%",
            "#",
            "<",
            ">",
            "%>",
            "%#",
            "=",
            "-",
            "\r\n",
            "\n",
            "\r",
            " ",
            "\t",
            "é",
            "😀",
            "日本",
            "{% raw %}",
            "{% endraw %}",
            "__lit(i=0)",
            "__line(n=1)",
            "\\",
            "\"",
            "'",
        ])
        .prop_map(str::to_string),
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(fragment, 0..40).prop_map(|parts| parts.concat())
}

fn render(pattern: &Pattern, text: &str, data: &Value) -> String {
    let template = compile("prop.erb", text, pattern).unwrap_or_else(|e| panic!("{e}"));
    template
        .render(
            RenderInput {
                data: data.clone().into(),
                altdata: json!({}),
                watched: "/k",
                snapshot: &Arc::new(Snapshot::default()),
                prefix: None,
                read: &[],
            },
            &Default::default(),
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"))
}

proptest! {
    #[test]
    fn text_without_open_renders_to_itself_angle(text in tricky_text()) {
        prop_assume!(!text.contains("<%"));
        prop_assert_eq!(render(&Pattern::default(), &text, &json!({})), text);
    }

    #[test]
    fn text_without_open_renders_to_itself_hash(text in tricky_text()) {
        let pattern = Pattern::parse("#% %#").unwrap();
        prop_assume!(!text.contains("#%"));
        prop_assert_eq!(render(&pattern, &text, &json!({})), text);
    }

    #[test]
    fn text_around_a_tag_and_values_stay_verbatim(
        before in tricky_text(),
        value in tricky_text(),
        after in tricky_text(),
    ) {
        prop_assume!(!before.contains("<%") && !after.contains("<%"));
        let text = format!("{before}<%= data[\"/k\"] %>{after}");
        let data = json!({"/k": value});
        prop_assert_eq!(render(&Pattern::default(), &text, &data), format!("{before}{value}{after}"));
    }
}

/// Templates built of Tera's statements over values, filters, tests and arithmetic,
/// reconfig's, Ruby's and confd's functions among them, with numbers at the edges of what
/// floats and integers hold: most compile, many fail as they render.
fn statements() -> impl Strategy<Value = String> {
    let atom = prop::sample::select(vec![
        "data[\"/k\"]",
        "data[\"/k/a\"]",
        "data",
        "altdata",
        "watched",
        "k",
        "v",
        "x",
        "loop.index",
        "1",
        "-1",
        "0",
        "1.5e308",
        "-1.5e308",
        "9223372036854775807",
        "0.0",
        "\"s\"",
        "\"\"",
        "[1]",
        "[]",
        "true",
        "none",
        "range(end=3)",
        "range(end=-1)",
        "rb_range(end=3)",
        "go_getv(a=[\"/k\"])",
        "go_ls(a=[\"/k\"])",
        "getv(key=\"/k\")",
    ]);
    let filter = prop::sample::select(vec![
        " | float",
        " | int",
        " | length",
        " | upper",
        " | default(value=1)",
        " | join(sep=\",\")",
        " | first",
        " | last",
        " | slice(start=1)",
        " | reverse",
        " | split(pat=\"/\")",
        " | round",
        " | abs",
        " | rb_to_json",
        " | rb_to_yaml",
        " | json_encode",
        " | nth(n=5)",
        " | truncate(length=1)",
        " | filesizeformat",
    ]);
    let op = prop::sample::select(vec![
        " + ", " - ", " * ", " / ", " % ", " ~ ", " == ", " != ", " < ", " >= ", " and ", " or ",
        " in ",
    ]);
    let test = prop::sample::select(vec![
        "",
        " is defined",
        " is defined([1])",
        " is number",
        " is containing(\"a\")",
        " is starting_with(1)",
        " is not iterable",
        " is divisibleby(0)",
    ]);
    // A value and a filter, each half the time on its own.
    let filtered = (atom.clone(), prop::option::of(filter))
        .prop_map(|(a, f)| format!("{a}{}", f.unwrap_or_default()));
    let expr =
        (filtered.clone(), prop::option::of((op, filtered))).prop_map(|(a, rest)| match rest {
            Some((op, b)) => format!("{a}{op}{b}"),
            None => a,
        });
    let statement = (0..6usize, atom, expr.clone(), test, expr);
    let statement = statement.prop_map(|(form, a, e, t, f)| match form {
        0 => format!("{{{{ {e} }}}}"),
        1 => format!("{{% if {a}{t} %}}y{{% elif {e} %}}{{{{ {f} }}}}{{% endif %}}"),
        2 => format!("{{% for k, v in {e} %}}{{{{ {f} }}}};{{% endfor %}}"),
        3 => format!("{{% for x in {e} %}}{{{{ x }}}}{{% else %}}none{{% endfor %}}"),
        4 => format!("{{% set x = {e} %}}{{{{ x + x }}}}{{{{ x * x }}}}{{{{ {f} }}}}"),
        _ => format!("{{% filter upper %}}{{{{ {e} }}}}{{% endfilter %}}"),
    });
    prop::collection::vec(statement, 1..4).prop_map(|parts| parts.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Whatever a template holds and whatever the values are, compiling and rendering
    /// return, with an error or without: nothing panics (a panic here fails the case).
    #[test]
    fn any_template_compiles_and_renders_or_fails_with_an_error(
        text in statements(),
        value in prop::sample::select(vec!["1", "1.5e308", "-1", "x", "", "[1]", "{\"a\":1}"]),
        plain in any::<bool>(),
    ) {
        let (pattern, text) = if plain {
            (Pattern::parse("{{ }}").unwrap(), text)
        } else {
            let erb = text.replace("{{", "<%=").replace("{%", "<%").replace("}}", "%>").replace("%}", "%>");
            (Pattern::default(), erb)
        };
        let Ok(template) = compile("soup.erb", &text, &pattern) else { return Ok(()) };
        let pairs = [("/k", value), ("/k/a", value)].map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()));
        let snapshot = Arc::new(Snapshot::new(1, pairs.into_iter().collect()));
        for data in [
            reconfig::Data::Tree("/k"),
            json!({"/k": value, "/k/a": value}).into(),
        ] {
            let limits = reconfig::RenderLimits {
                timeout: std::time::Duration::from_secs(5),
                iterations: 100_000,
                output: 1 << 20,
                depth: 16,
            };
            let _ = template.render(
                RenderInput {
                    data,
                    altdata: json!({}),
                    watched: "/k",
                    snapshot: &snapshot,
                    prefix: None,
                    read: &["/k"],
                },
                &limits,
                None,
            );
        }
    }
}
