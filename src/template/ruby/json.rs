//! JSON text byte-identical to Ruby's json gem before 2.8, which reconfig.rb deployments run:
//! `to_json` (compact, `JSON.generate`) and `JSON.pretty_generate`, whose empty containers
//! print as `{` newline `}` and `[` newline newline `]`.

use serde_json::Value;

use super::float::ruby_float;

/// Compact JSON, as Ruby's `obj.to_json` / `JSON.generate(obj)` prints it.
pub fn generate(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, None, 0);
    out
}

/// Indented JSON, as Ruby's `JSON.pretty_generate(obj)` prints it.
pub fn pretty_generate(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, Some("  "), 0);
    out
}

/// Writes `value` at nesting `depth`; `indent` is `None` for compact output.
fn write_value(out: &mut String, value: &Value, indent: Option<&str>, depth: usize) {
    let newline = |out: &mut String, depth: usize| {
        if let Some(unit) = indent {
            out.push('\n');
            out.push_str(&unit.repeat(depth));
        }
    };
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => out.push_str(&ruby_float(f)),
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            if indent.is_some() {
                out.push('\n');
            }
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                    if indent.is_some() {
                        out.push('\n');
                    }
                }
                if let Some(unit) = indent {
                    out.push_str(&unit.repeat(depth + 1));
                }
                write_value(out, item, indent, depth + 1);
            }
            newline(out, depth);
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, depth + 1);
                write_string(out, key);
                out.push_str(if indent.is_some() { ": " } else { ":" });
                write_value(out, item, indent, depth + 1);
            }
            newline(out, depth);
            out.push('}');
        }
    }
}

/// The json gem escapes exactly what serde_json escapes: `"`, `\` and control characters
/// (`\b \f \n \r \t`, others as lowercase `\u00xx`); `/` and non-ASCII stay as they are.
fn write_string(out: &mut String, s: &str) {
    out.push_str(&serde_json::to_string(s).expect("a string always serializes"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_containers_follow_the_old_gem() {
        assert_eq!(pretty_generate(&json!({})), "{\n}");
        assert_eq!(pretty_generate(&json!([])), "[\n\n]");
        assert_eq!(
            pretty_generate(&json!({"a": {}, "b": []})),
            "{\n  \"a\": {\n  },\n  \"b\": [\n\n  ]\n}"
        );
        assert_eq!(generate(&json!({"a": {}, "b": []})), r#"{"a":{},"b":[]}"#);
    }

    #[test]
    fn scalars_print_like_ruby() {
        assert_eq!(
            generate(&json!([1, 2.5, 1e20, null, true])),
            "[1,2.5,1.0e+20,null,true]"
        );
        assert_eq!(generate(&json!("a/b\u{1f}\"é")), "\"a/b\\u001f\\\"é\"");
    }
}
