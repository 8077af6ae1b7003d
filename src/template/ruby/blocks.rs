//! The Ruby-compatible filters that take a block — `rb_map`, `rb_select`, `rb_reject`,
//! `rb_sort_by` — given as a Tera expression over the block's parameters, which each item
//! is rendered through with a Tera instance of the template's own kind.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use serde_json::{Map, Value};
use tera::{Context, Tera};

use super::compat::{each_items, param, sorted, truthy};
use crate::template::args::Args;
use crate::template::limits;

/// The filters, by the name templates use.
const BLOCK_FILTERS: &[(&str, BlockKind)] = &[
    ("rb_map", BlockKind::Map),
    ("rb_select", BlockKind::Select),
    ("rb_reject", BlockKind::Reject),
    ("rb_sort_by", BlockKind::SortBy),
];

/// Registers the filters; `engine` builds the Tera instance a block expression is compiled
/// with (one with every filter and function of a template, these included).
pub fn register(tera: &mut Tera, engine: fn() -> Tera) {
    for &(name, kind) in BLOCK_FILTERS {
        tera.register_filter(name, Block { name, kind, engine });
    }
}

/// What a block filter does with the block's results.
#[derive(Clone, Copy)]
enum BlockKind {
    Map,
    Select,
    Reject,
    SortBy,
}

/// `rb_map`, `rb_select`, `rb_reject`, `rb_sort_by`: Ruby's methods with a block, the
/// block given as `params` (its parameter names, `"x"` or `"k, v"`) and `expr` (a Tera
/// expression over them); every other argument is a variable the expression can read.
struct Block {
    name: &'static str,
    kind: BlockKind,
    engine: fn() -> Tera,
}

impl Block {
    /// The compiled `{% set r = EXPR %}{{ r | json_encode }}`, once per expression and
    /// thread.
    fn compiled(&self, a: &Args<'_>, expr: &str) -> tera::Result<Rc<Tera>> {
        thread_local! {
            static CACHE: RefCell<HashMap<String, Rc<Tera>>> = RefCell::new(HashMap::new());
        }
        if let Some(tera) = CACHE.with(|c| c.borrow().get(expr).cloned()) {
            return Ok(tera);
        }
        let mut tera = (self.engine)();
        tera.add_raw_template(
            "block",
            &format!("{{% set r = {expr} %}}{{{{ r | json_encode }}}}"),
        )
        .map_err(|e| a.error(format!("invalid expr: {e}")))?;
        let tera = Rc::new(tera);
        CACHE.with(|c| c.borrow_mut().insert(expr.to_string(), Rc::clone(&tera)));
        Ok(tera)
    }
}

impl tera::Filter for Block {
    fn filter(&self, value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
        let known: Vec<&str> = args.keys().map(String::as_str).collect();
        let a = Args::new(self.name, args, &known)?;
        let params: Vec<&str> = a.string("params")?.split(',').map(str::trim).collect();
        let expr = a.string("expr")?;
        let tera = self.compiled(&a, expr)?;
        let mut context = Context::new();
        for (name, v) in args {
            if name != "params" && name != "expr" {
                context.insert(name, v);
            }
        }
        let mut call = |yielded: &[Value]| -> tera::Result<Value> {
            limits::step(&a)?;
            match (params.as_slice(), yielded) {
                ([one], [first, ..]) => context.insert(*one, first),
                (_, [item]) => {
                    for (i, name) in params.iter().enumerate() {
                        context.insert(*name, &param(item, i));
                    }
                }
                (_, values) => {
                    for (i, name) in params.iter().enumerate() {
                        context.insert(*name, values.get(i).unwrap_or(&Value::Null));
                    }
                }
            }
            let text = tera.render("block", &context)?;
            serde_json::from_str(&text).map_err(|e| a.error(e))
        };
        match (self.kind, value) {
            (BlockKind::Select | BlockKind::Reject, Value::Object(map)) => {
                let keep = matches!(self.kind, BlockKind::Select);
                let mut out = Map::new();
                for (k, v) in map {
                    if truthy(&call(&[Value::String(k.clone()), v.clone()])?) == keep {
                        out.insert(k.clone(), v.clone());
                    }
                }
                Ok(Value::Object(out))
            }
            (kind, value) => {
                let items = each_items(&a, value)?;
                match kind {
                    BlockKind::Map => items
                        .iter()
                        .map(|i| call(std::slice::from_ref(i)))
                        .collect(),
                    BlockKind::Select | BlockKind::Reject => {
                        let keep = matches!(kind, BlockKind::Select);
                        let mut out = vec![];
                        for item in items {
                            if truthy(&call(std::slice::from_ref(&item))?) == keep {
                                out.push(item);
                            }
                        }
                        Ok(Value::Array(out))
                    }
                    BlockKind::SortBy => {
                        let keyed = items
                            .into_iter()
                            .map(|item| Ok((call(std::slice::from_ref(&item))?, item)))
                            .collect::<tera::Result<Vec<_>>>()?;
                        sorted(&a, keyed).map(Value::Array)
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use crate::etcd::Snapshot;
    use crate::template::{compile, Pattern, RenderInput};

    fn render(text: &str, data: serde_json::Value) -> String {
        let t = compile("t", text, &Pattern::default()).unwrap();
        let input = RenderInput {
            data: data.into(),
            altdata: json!({}),
            watched: "/w",
            snapshot: &Arc::new(Snapshot::default()),
            prefix: None,
            read: &[],
        };
        t.render(input, &Default::default(), None).unwrap()
    }

    #[test]
    fn blocks_see_their_parameters_and_the_variables_passed() {
        let data = json!({"/a": "1", "/b": "22", "/c": ""});
        let select = r#"<%= data | rb_select(params="k, v", expr="v | rb_start_with(s=p)", p="2") | rb_keys | rb_join(sep=",") %>"#;
        assert_eq!(render(select, data.clone()), "/b");
        let map = r#"<%= data | rb_map(params="k, v", expr="v | length") | rb_join(sep=",") %>"#;
        assert_eq!(render(map, data.clone()), "1,2,0");
        let sort =
            r#"<%= data | rb_values | rb_sort_by(params="v", expr="v | length") | rb_inspect %>"#;
        assert_eq!(render(sort, data), r#"["", "1", "22"]"#);
    }

    #[test]
    fn select_keeps_what_ruby_finds_true() {
        let list = r#"<%= data | rb_reject(params="x", expr="x | rb_empty") | rb_join(sep="+") %>"#;
        assert_eq!(render(list, json!(["", "a", "", "b"])), "a+b");
        let empty_is_true = r#"<%= data | rb_select(params="x", expr="x") | length %>"#;
        assert_eq!(render(empty_is_true, json!(["", "a"])), "2");
    }
}
