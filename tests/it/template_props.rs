//! Properties of the template layer: text outside tags, and values, come out byte for byte,
//! whatever Tera or Erubis markup they contain.

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
