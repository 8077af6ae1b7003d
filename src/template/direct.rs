//! The render of the templates that use only Tera's plain part — text, values printed as
//! they are, `for` over an object or an array, `if` on a value, reconfig's own counting and
//! literal calls — done by walking a compact form of Tera's parse of them ([`Program`]) over
//! borrowed data, instead of by Tera. The data is the context's, or, for `data`, a recursive entry's tree read straight
//! from the snapshot ([`Tree`]), so that no model of it is built.
//!
//! Tera copies every key of an object it loops over, looks each name up through its frames
//! by string, and calls even a function that prints nothing through a map of boxed
//! closures with a map of arguments: on a 500-key tree that was most of the CPU a change
//! cost. This walk borrows every key and value, keeps one small frame per loop, and counts
//! iterations and nesting against the same limits ([`limits`]) — a loop's iterations all at
//! once as it starts, since its length is known then.
//!
//! Whether a template is covered is decided once, when it is compiled ([`compile`]); within
//! that subset the walk gives the bytes Tera gives (the tests render the same templates both
//! ways). Whatever it cannot finish — a name not found, a value of another kind, a limit
//! hit — stops it ([`Fallback`]) and the render is done again by Tera, which gives its own
//! output or its own error with the line, as before.

use std::io::Write;

use serde_json::{Map, Value};
use tera::ast::{Expr, ExprVal, Forloop, FunctionCall, If, Node};

use super::limits::{self, Output, ENTER_FN, LEAVE_FN, STEP_FN};
use super::scope::LITERAL_FN;
use crate::etcd::Snapshot;

/// The walk stopped: Tera must do this render.
#[derive(Debug)]
pub struct Fallback;

/// A covered template in a form of its own, kept instead of Tera's parse: a node here is
/// 24 bytes where Tera's is 232, and comments, raw blocks, string literals and the loops'
/// leading counts are settled once, when it is compiled.
#[derive(Debug)]
pub struct Program(Body);

type Body = Box<[Op]>;

#[derive(Debug)]
enum Op {
    Text(Box<str>),
    /// A plain dotted name's value.
    Print(Box<str>),
    /// `__lit(i=N)`: chunk N.
    Literal(usize),
    Enter,
    Leave,
    Step,
    For(Box<Loop>),
    If(Box<Choice>),
}

#[derive(Debug)]
struct Loop {
    key: Option<Box<str>>,
    value: Box<str>,
    container: Box<str>,
    /// The body began with a `__step`: the loop's iterations are charged as it starts.
    counted: bool,
    body: Body,
    empty: Option<Body>,
}

#[derive(Debug)]
struct Choice {
    /// Each branch's name, whether it is negated (`not`), and its body.
    branches: Box<[(Box<str>, bool, Body)]>,
    otherwise: Option<Body>,
}

/// The walk's form of `template` (its parse, after the instrumentation), when the walk
/// covers it.
pub fn compile(template: &tera::Template) -> Option<Program> {
    let plain = template.parent.is_none()
        && template.macros.is_empty()
        && template.imported_macro_files.is_empty()
        && template.blocks.is_empty();
    plain.then(|| body(&template.ast).map(Program))?
}

fn body(nodes: &[Node]) -> Option<Body> {
    let mut ops = Vec::with_capacity(nodes.len());
    for node in nodes {
        match node {
            Node::Comment(..) => {}
            Node::Text(text) | Node::Raw(_, text, _) => ops.push(Op::Text(text.as_str().into())),
            Node::VariableBlock(_, expr) => ops.push(printed(expr)?),
            Node::Forloop(_, forloop, _) => ops.push(Op::For(Box::new(looped(forloop)?))),
            Node::If(choice, _) => ops.push(Op::If(Box::new(chosen(choice)?))),
            _ => return None,
        }
    }
    Some(ops.into_boxed_slice())
}

/// The form of a body that may be missing (`None` when it is there and not covered).
fn optional(nodes: Option<&[Node]>) -> Option<Option<Body>> {
    match nodes {
        Some(nodes) => body(nodes).map(Some),
        None => Some(None),
    }
}

/// What `{{ … }}` may hold: a name, a string, or one of reconfig's own calls.
fn printed(expr: &Expr) -> Option<Op> {
    if expr.negated || !expr.filters.is_empty() {
        return None;
    }
    match &expr.val {
        ExprVal::Ident(_) => name(expr).map(|name| Op::Print(name.into())),
        ExprVal::String(text) => Some(Op::Text(text.as_str().into())),
        ExprVal::FunctionCall(call) if call.args.is_empty() => match call.name.as_str() {
            STEP_FN => Some(Op::Step),
            ENTER_FN => Some(Op::Enter),
            LEAVE_FN => Some(Op::Leave),
            _ => None,
        },
        ExprVal::FunctionCall(call) => literal_index(call).map(Op::Literal),
        _ => None,
    }
}

fn looped(forloop: &Forloop) -> Option<Loop> {
    if forloop.container.negated {
        return None;
    }
    let (nodes, counted) = counted(&forloop.body);
    Some(Loop {
        key: forloop.key.as_deref().map(Into::into),
        value: forloop.value.as_str().into(),
        container: name(&forloop.container)?.into(),
        counted,
        body: body(nodes)?,
        empty: optional(forloop.empty_body.as_deref())?,
    })
}

fn chosen(choice: &If) -> Option<Choice> {
    let branches = choice
        .conditions
        .iter()
        .map(|(_, condition, nodes)| {
            Some((name(condition)?.into(), condition.negated, body(nodes)?))
        })
        .collect::<Option<_>>()?;
    Some(Choice {
        branches,
        otherwise: optional(choice.otherwise.as_ref().map(|(_, nodes)| &nodes[..]))?,
    })
}

/// The name an expression reads, when it is a plain dotted path (`a`, `a.b.0`) with no
/// filter: quoting, brackets and `~` escapes are Tera's alone.
fn name(expr: &Expr) -> Option<&str> {
    let ExprVal::Ident(name) = &expr.val else {
        return None;
    };
    let plain = expr.filters.is_empty()
        && name != "__tera_context"
        && name.split('.').all(|segment| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        });
    plain.then_some(name)
}

/// `__lit(i=N)`: the chunk it prints.
fn literal_index(call: &FunctionCall) -> Option<usize> {
    if call.name != LITERAL_FN || call.args.len() != 1 {
        return None;
    }
    match call.args.get("i")? {
        Expr {
            val: ExprVal::Int(i),
            negated: false,
            filters,
        } if filters.is_empty() => usize::try_from(*i).ok(),
        _ => None,
    }
}

/// What a walk reads.
pub struct Sources<'a> {
    /// The render's context.
    pub context: &'a Map<String, Value>,
    /// `data`, when it is read from the snapshot rather than from `context`.
    pub tree: Option<Tree<'a>>,
    /// The chunks `__lit` prints.
    pub literals: &'a [String],
}

/// A tree read from the snapshot as `data`, in place of its model: the same keys in the
/// same order, each value a string (checked UTF-8 before the render).
#[derive(Clone, Copy)]
pub struct Tree<'a> {
    /// The snapshot holding it.
    pub snapshot: &'a Snapshot,
    /// The watched key.
    pub key: &'a str,
}

/// Renders `program` from `sources` into `out`.
pub fn render(program: &Program, sources: Sources<'_>, out: &mut Output) -> Result<(), Fallback> {
    let mut walk = Walk {
        context: sources.context,
        tree: sources.tree,
        literals: sources.literals,
        frames: Vec::new(),
        out,
    };
    walk.ops(&program.0)
}

/// One loop in progress: its names and where it is.
struct Frame<'a> {
    key_name: Option<&'a str>,
    value_name: &'a str,
    key: &'a str,
    value: Item<'a>,
    index: usize,
    len: usize,
}

/// A loop's current value: one of the model, or a value of a tree read from the snapshot.
#[derive(Clone, Copy)]
enum Item<'a> {
    Value(&'a Value),
    Text(&'a str),
}

/// What a name stands for: a value of the model, a string (a loop's key, a tree's value),
/// a tree read from the snapshot, or one of `loop.*`.
enum Found<'a> {
    Value(&'a Value),
    Text(&'a str),
    Tree(Tree<'a>),
    Index(usize),
    Bool(bool),
}

struct Walk<'a, 'o> {
    context: &'a Map<String, Value>,
    tree: Option<Tree<'a>>,
    literals: &'a [String],
    frames: Vec<Frame<'a>>,
    out: &'o mut Output,
}

impl<'a> Walk<'a, '_> {
    fn ops(&mut self, ops: &'a [Op]) -> Result<(), Fallback> {
        ops.iter().try_for_each(|op| self.op(op))
    }

    fn op(&mut self, op: &'a Op) -> Result<(), Fallback> {
        match op {
            Op::Text(text) => self.write(text),
            Op::Print(name) => self.print(name),
            Op::Literal(i) => self.write(self.literals.get(*i).ok_or(Fallback)?),
            Op::Step => limits::count_steps(1).map_err(|_| Fallback),
            Op::Enter => limits::enter().map_err(|_| Fallback),
            Op::Leave => {
                limits::leave();
                Ok(())
            }
            Op::For(forloop) => self.forloop(forloop),
            Op::If(choice) => self.choose(choice),
        }
    }

    fn print(&mut self, name: &str) -> Result<(), Fallback> {
        match self.lookup(name).ok_or(Fallback)? {
            Found::Value(value) => self.value(value),
            Found::Text(text) => self.write(text),
            Found::Tree(_) => self.write("[object]"),
            Found::Index(index) => self.write(&index.to_string()),
            Found::Bool(b) => self.write(if b { "true" } else { "false" }),
        }
    }

    /// A value as Tera prints it.
    fn value(&mut self, value: &Value) -> Result<(), Fallback> {
        match value {
            Value::String(text) => self.write(text),
            Value::Number(n) => {
                let text = if let Some(v) = n.as_i64() {
                    v.to_string()
                } else if let Some(v) = n.as_u64() {
                    v.to_string()
                } else {
                    n.as_f64().ok_or(Fallback)?.to_string()
                };
                self.write(&text)
            }
            Value::Bool(b) => self.write(if *b { "true" } else { "false" }),
            Value::Null => Ok(()),
            Value::Array(items) => {
                self.write("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.write(", ")?;
                    }
                    self.value(item)?;
                }
                self.write("]")
            }
            Value::Object(_) => self.write("[object]"),
        }
    }

    fn forloop(&mut self, forloop: &'a Loop) -> Result<(), Fallback> {
        let container = self.lookup(&forloop.container).ok_or(Fallback)?;
        match (container, forloop.key.is_some()) {
            (Found::Value(Value::Object(map)), true) => {
                let items = map.iter().map(|(k, v)| Ok((k.as_str(), Item::Value(v))));
                self.each(forloop, map.len(), items)
            }
            (Found::Value(Value::Array(values)), false) => {
                let items = values.iter().map(|v| Ok(("", Item::Value(v))));
                self.each(forloop, values.len(), items)
            }
            (Found::Tree(tree), true) => {
                let items = tree.pairs().map(|(k, v)| {
                    let text = std::str::from_utf8(v).map_err(|_| Fallback)?;
                    Ok((k, Item::Text(text)))
                });
                self.each(forloop, tree.pairs().count(), items)
            }
            _ => Err(Fallback),
        }
    }

    /// Runs `forloop`'s body over its `len` items (its `else` body when there are none).
    fn each(
        &mut self,
        forloop: &'a Loop,
        len: usize,
        items: impl Iterator<Item = Result<(&'a str, Item<'a>), Fallback>>,
    ) -> Result<(), Fallback> {
        if len == 0 {
            return match &forloop.empty {
                Some(body) => self.ops(body),
                None => Ok(()),
            };
        }
        if forloop.counted {
            let count = u64::try_from(len).unwrap_or(u64::MAX);
            limits::count_steps(count).map_err(|_| Fallback)?;
        }
        self.frames.push(Frame {
            key_name: forloop.key.as_deref(),
            value_name: &forloop.value,
            key: "",
            value: Item::Text(""),
            index: 0,
            len,
        });
        for (index, item) in items.enumerate() {
            let (key, value) = item?;
            self.enter_item(index, key, value)?;
            self.ops(&forloop.body)?;
        }
        self.frames.pop();
        Ok(())
    }

    /// Enters iteration `index` of the innermost loop; every [`limits::CLOCK_EVERY`]
    /// iterations, the render's clock is read, as a count one at a time would.
    fn enter_item(&mut self, index: usize, key: &'a str, value: Item<'a>) -> Result<(), Fallback> {
        if index > 0 && index % limits::CLOCK_EVERY as usize == 0 {
            limits::check_clock().map_err(|_| Fallback)?;
        }
        let frame = self.frames.last_mut().expect("a loop's frame");
        frame.index = index;
        frame.key = key;
        frame.value = value;
        Ok(())
    }

    fn choose(&mut self, choice: &'a Choice) -> Result<(), Fallback> {
        for (name, negated, body) in &choice.branches {
            // Tera's: a name not found is false, `not` of it true.
            let truthy = self.lookup(name).is_some_and(|found| truthy(&found));
            if truthy != *negated {
                return self.ops(body);
            }
        }
        match &choice.otherwise {
            Some(body) => self.ops(body),
            None => Ok(()),
        }
    }

    /// Tera's lookup: the loops from the innermost (a loop's key, `loop.*`, its value and
    /// paths below it), then the context.
    fn lookup(&self, name: &str) -> Option<Found<'a>> {
        let (head, tail) = name.split_once('.').unwrap_or((name, ""));
        for frame in self.frames.iter().rev() {
            if tail.is_empty() && frame.key_name == Some(name) {
                return Some(Found::Text(frame.key));
            }
            if head == "loop" {
                match tail {
                    "index" => return Some(Found::Index(frame.index + 1)),
                    "index0" => return Some(Found::Index(frame.index)),
                    "first" => return Some(Found::Bool(frame.index == 0)),
                    "last" => return Some(Found::Bool(frame.index + 1 == frame.len)),
                    _ => continue,
                }
            }
            if head == frame.value_name {
                let found = match frame.value {
                    Item::Value(value) => below(value, tail).map(Found::Value),
                    // A string has nothing below it.
                    Item::Text(text) => tail.is_empty().then_some(Found::Text(text)),
                };
                if found.is_some() {
                    return found;
                }
            }
        }
        match self.tree.filter(|_| head == "data") {
            Some(tree) => tree.below(tail),
            None => below(self.context.get(head)?, tail).map(Found::Value),
        }
    }

    fn write(&mut self, text: &str) -> Result<(), Fallback> {
        self.out.write_all(text.as_bytes()).map_err(|_| Fallback)
    }
}

impl<'a> Tree<'a> {
    fn pairs(self) -> impl Iterator<Item = (&'a str, &'a [u8])> {
        self.snapshot.tree(self.key)
    }

    /// What dotted `path` below the tree names, as in its model: a key of it (a path of one
    /// segment), whose value is a string with nothing below it.
    fn below(self, path: &str) -> Option<Found<'a>> {
        if path.is_empty() {
            return Some(Found::Tree(self));
        }
        if path.contains('.') {
            return None;
        }
        let (_, value) = self.pairs().find(|(key, _)| *key == path)?;
        std::str::from_utf8(value).ok().map(Found::Text)
    }
}

/// A loop's body to run each iteration, without its leading `__step` if it has one, and
/// whether it had: a loop over a container of known length charges all its iterations at
/// once, before the first.
fn counted(body: &[Node]) -> (&[Node], bool) {
    match body.split_first() {
        Some((Node::VariableBlock(_, expr), rest)) if matches!(&expr.val, ExprVal::FunctionCall(call) if call.name == STEP_FN) => {
            (rest, true)
        }
        _ => (body, false),
    }
}

/// The value at dotted `path` below `value` (itself when empty), as Tera finds it.
fn below<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(value);
    }
    path.split('.')
        .try_fold(value, |value, segment| match value {
            Value::Object(map) => map.get(segment),
            Value::Array(items) => index(segment).and_then(|i| items.get(i)),
            _ => None,
        })
}

/// An array index as Tera reads one: digits, no sign, no leading zero.
fn index(segment: &str) -> Option<usize> {
    if segment.starts_with('+') || (segment.starts_with('0') && segment.len() != 1) {
        return None;
    }
    segment.parse().ok()
}

/// Tera's truth of a value.
fn truthy(found: &Found<'_>) -> bool {
    match found {
        Found::Value(Value::Number(n)) => {
            if let Some(v) = n.as_i64() {
                v != 0
            } else if let Some(v) = n.as_u64() {
                v != 0
            } else {
                n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan())
            }
        }
        Found::Value(Value::Bool(b)) | Found::Bool(b) => *b,
        Found::Value(Value::Null) => false,
        Found::Value(Value::String(s)) => !s.is_empty(),
        Found::Text(s) => !s.is_empty(),
        Found::Tree(tree) => tree.pairs().next().is_some(),
        Found::Value(Value::Array(items)) => !items.is_empty(),
        Found::Value(Value::Object(map)) => !map.is_empty(),
        Found::Index(i) => *i != 0,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;
    use tera::{Context, Tera};

    use super::*;
    use crate::config::{Pattern, RenderLimits};
    use crate::etcd::Snapshot;

    /// An engine as the configuration's is for these purposes: autoescape off, the
    /// counting functions registered, the template instrumented.
    fn engine(source: &str) -> Tera {
        let mut tera = Tera::default();
        tera.autoescape_on(vec![]);
        limits::register(&mut tera);
        tera.add_raw_template("t", source).unwrap();
        limits::instrument(&mut tera);
        tera
    }

    fn walked(tera: &Tera, context: &Value) -> Result<String, Fallback> {
        walked_with(tera, context, None)
    }

    fn walked_with(
        tera: &Tera,
        context: &Value,
        tree: Option<Tree<'_>>,
    ) -> Result<String, Fallback> {
        let mut out = Output::new(0, &RenderLimits::default());
        let sources = Sources {
            context: context.as_object().unwrap(),
            tree,
            literals: &[],
        };
        let program = compile(&tera.templates["t"]).expect("a covered template");
        render(&program, sources, &mut out)?;
        Ok(String::from_utf8(out.into_bytes()).unwrap())
    }

    /// Tera's bytes, or its error when it fails.
    fn by_tera(tera: &Tera, context: &Value) -> Result<String, String> {
        let context = Context::from_value(context.clone()).unwrap();
        tera.render("t", &context).map_err(|e| format!("{e:?}"))
    }

    fn context() -> Value {
        json!({
            "s": "text", "empty": "", "int": -42, "big": u64::MAX, "float": 2.5, "yes": true,
            "no": false, "null": null, "list": ["a", 1, [true, null], {"x": 1}],
            "nothing": [], "none": {},
            "map": {"b": "2", "a": "1", "c": "3"},
            "servers": [
                {"host": "h1", "ports": [80, 443], "up": true},
                {"host": "h2", "ports": [8080], "up": false},
            ],
            "v": {"x": "outer"},
            "data": {"/b/k1": "v1", "/b/k2": "v2"},
        })
    }

    #[test]
    fn covered_templates_give_teras_bytes() {
        let templates = [
            "plain text only\n",
            "{{ s }}|{{ empty }}|{{ int }}|{{ big }}|{{ float }}|{{ yes }}|{{ no }}|{{ null }}|",
            "{{ list }}|{{ nothing }}|{{ none }}|{{ map }}|{{ \"a literal\" }}",
            "{% for k, v in map %}{{ k }}={{ v }};{% endfor %}",
            "{% for k, v in data %}\n{{ k }}={{ v }}\n{% endfor %}\n",
            "{%- for k, v in data -%}\n  {{ k }}={{ v }}\n{%- endfor %}\nend",
            "{% for k, v in none %}x{% else %}empty{% endfor %}",
            "{% for x in nothing %}x{% else %}empty{% endfor %}{% for x in nothing %}y{% endfor %}",
            "{% for x in list %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.first }}/\
             {{ loop.last }}:{{ x }} {% endfor %}",
            "{% for s in servers %}{{ s.host }}{% for p in s.ports %} {{ s.host }}:{{ p }}\
             ({{ loop.index }}){% endfor %}{% if s.up %} up{% else %} down{% endif %}\n\
             {% endfor %}",
            "{% for s in servers %}{{ s.ports.0 }}{{ servers.1.host }}{% endfor %}",
            "{% for k, v in map %}{{ v.x }}{% endfor %}",
            "{% for v in servers %}{% for k, v in map %}{{ v }}{% endfor %}{{ v.host }}{% endfor %}",
            "{% if s %}a{% endif %}{% if empty %}b{% endif %}{% if int %}c{% endif %}\
             {% if float %}d{% endif %}{% if no %}e{% endif %}{% if null %}f{% endif %}\
             {% if nothing %}g{% endif %}{% if none %}h{% endif %}{% if list %}i{% endif %}\
             {% if missing %}j{% endif %}{% if not missing %}k{% endif %}\
             {% if not s %}l{% elif yes %}m{% else %}n{% endif %}",
            "{% for k, v in map %}{% if loop.first %}[{% endif %}{{ k }}{% if not loop.last %},\
             {% endif %}{% if k %}!{% endif %}{% endfor %}]",
            "{% raw %}{{ not rendered }}{% endraw %}{# a comment #}after",
        ];
        let context = context();
        for source in templates {
            let tera = engine(source);
            assert!(
                compile(&tera.templates["t"]).is_some(),
                "{source} is covered"
            );
            let expected = by_tera(&tera, &context).unwrap();
            assert_eq!(walked(&tera, &context).ok(), Some(expected), "{source}");
        }
    }

    #[test]
    fn a_tree_read_from_the_snapshot_gives_what_its_model_gives() {
        let snapshot = Snapshot::of(
            3,
            &[
                ("/other", "x"),
                ("/t", "top"),
                ("/t-sibling", "no"),
                ("/t/a", "1"),
                ("/t/b/c", ""),
                ("t", "a key without a slash"),
                ("t/u", "below it"),
            ],
        );
        let templates = [
            "{% for k, v in data %}{{ loop.index }}:{{ k }}={{ v }}{% if v %}+{% endif %}\
             {% if loop.last %}.{% endif %}\n{% else %}none{% endfor %}",
            "{{ data }}|{% if data %}some{% else %}none{% endif %}|{% if not data %}!{% endif %}",
            "{{ data.t }}|{% if data.missing %}found{% endif %}|{% if data.t.x %}x{% endif %}",
            "{% for k, v in data %}{% for k2, v2 in data %}{{ k }}{{ v2 }}{% endfor %}{% endfor %}",
            "{% for k, v in data %}{{ v.x }}{% endfor %}",
            "{{ watched }}{% for k, v in altdata %}{{ k }}{% endfor %}",
        ];
        for key in ["/t", "t", "/nothing", "/"] {
            let model = crate::template::model::data(&snapshot, key, true).unwrap();
            let with_model = json!({"data": model, "altdata": {"a": {}}, "watched": key});
            let without = json!({"altdata": {"a": {}}, "watched": key});
            let tree = Tree {
                snapshot: &snapshot,
                key,
            };
            for source in templates {
                let tera = engine(source);
                let expected = by_tera(&tera, &with_model);
                let walked = walked_with(&tera, &without, Some(tree));
                assert_eq!(walked.ok(), expected.ok(), "{source} over {key}");
            }
        }
    }

    #[test]
    fn what_tera_refuses_stops_the_walk() {
        let templates = [
            "{{ missing }}",
            "{{ map.missing }}",
            "{% for k, v in s %}{% endfor %}",
            "{% for x in map %}{% endfor %}",
            "{% for k, v in list %}{% endfor %}",
            "{% for k, v in nothing %}{% endfor %}",
            "{% for x in int %}{% endfor %}",
            "{% for loop in list %}{{ loop }}{% endfor %}",
        ];
        let context = context();
        for source in templates {
            let tera = engine(source);
            assert!(
                compile(&tera.templates["t"]).is_some(),
                "{source} is covered"
            );
            assert!(by_tera(&tera, &context).is_err(), "Tera refuses {source}");
            assert!(
                walked(&tera, &context).is_err(),
                "the walk stops on {source}"
            );
        }
    }

    #[test]
    fn what_only_tera_does_is_left_to_it() {
        let templates = [
            "{{ s | upper }}",
            "{{ not s }}",
            "{{ 1 + 2 }}",
            "{{ list[0] }}",
            "{{ map[\"a\"] }}",
            "{% set x = 1 %}",
            "{% if s == \"text\" %}{% endif %}",
            "{% if s | length %}{% endif %}",
            "{% for x in list | reverse %}{% endfor %}",
            "{% for x in list %}{% break %}{% endfor %}",
            "{% macro m() %}{% endmacro %}",
            "{{ range(end=3) }}",
            "{{ __tera_context }}",
            "{% filter upper %}x{% endfilter %}",
        ];
        for source in templates {
            let tera = engine(source);
            assert!(
                compile(&tera.templates["t"]).is_none(),
                "{source} is Tera's"
            );
        }
    }

    #[test]
    fn loops_are_held_to_the_iteration_limit() {
        // `list` has 4 items, `servers` 2 with 3 ports between them: 9 iterations in all.
        let tera = engine(
            "{% for x in list %}{% endfor %}{% for s in servers %}\
                           {% for p in s.ports %}{% endfor %}{% endfor %}",
        );
        let context = context();
        for (limit, finishes) in [(8, false), (9, true)] {
            let limits = RenderLimits {
                iterations: limit,
                ..RenderLimits::default()
            };
            let budget = limits::Budget::open(limits, None);
            assert_eq!(walked(&tera, &context).is_ok(), finishes, "limit {limit}");
            let exceeded = (!finishes).then_some(limits::Exceeded::Iterations(limit));
            assert_eq!(budget.exceeded(), exceeded);
        }
    }

    #[test]
    fn a_long_loop_still_stops_when_its_time_slice_runs_out() {
        // Charged all at once, a loop's iterations no longer read the clock one by one:
        // a render on the daemon's shared thread must still stop within its slice.
        let tera = engine("{% for x in items %}{{ x }}{% endfor %}");
        let context = json!({ "items": vec![1; 10_000] });
        let budget = limits::Budget::open(RenderLimits::default(), Some(Duration::ZERO));
        assert!(walked(&tera, &context).is_err());
        assert_eq!(budget.exceeded(), Some(limits::Exceeded::Slice));
    }

    #[test]
    fn a_string_looped_over_is_tera_s() {
        // Tera walks a string's characters; the walk leaves that to it.
        let tera = engine("{% for c in s %}{{ c }}.{% endfor %}");
        let context = context();
        assert!(walked(&tera, &context).is_err());
        assert_eq!(by_tera(&tera, &context).unwrap(), "t.e.x.t.");
    }

    #[test]
    fn reconfig_templates_of_every_style_are_walked() {
        let erubis = Pattern::default();
        let walked = [
            (
                "<% for k, v in data %>\n<%= k %>=<%= v %>\n<% endfor %>\n",
                &erubis,
            ),
            ("<%# a comment %>\nport <%= data %> {{ kept }}\n", &erubis),
        ];
        for (source, pattern) in walked {
            let template = super::super::compile("t", source, pattern).unwrap();
            assert!(template.parts.walk.is_some(), "{source} is walked");
        }
        let with_filter = super::super::compile("t", "<%= data | upper %>", &erubis).unwrap();
        assert!(with_filter.parts.walk.is_none());
    }

    #[test]
    fn a_walked_template_leaves_the_engine_unless_another_names_it() {
        let erubis = Pattern::default();
        let mut set = super::super::TemplateSet::default();
        for (name, text) in [
            ("walked", "<%= watched %>\n"),
            ("included", "<%= watched %>\n"),
            (
                "includes",
                "<% include \"included\" %><%= watched | upper %>\n",
            ),
        ] {
            set.add(name, text, &erubis).unwrap();
        }
        let templates = set.finish();
        let engine = &templates[0].tera;
        let kept: Vec<bool> = ["walked", "included", "includes"]
            .iter()
            .map(|name| engine.templates.contains_key(*name))
            .collect();
        assert_eq!(kept, [false, true, true]);
        let walked: Vec<bool> = templates.iter().map(|t| t.parts.walk.is_some()).collect();
        assert_eq!(walked, [true, true, false]);
        assert!(templates[0].parts.source.is_some() && templates[1].parts.source.is_none());
    }
}
