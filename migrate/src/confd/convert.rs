//! One Go template converted to plain Tera with Go's meaning. Tera keeps the control flow
//! (`if`, `for`, `set`, `break`), reconfig's `gt_*` and `go_*` functions keep Go's values and rules
//! (truth, printing with `fmt`, field access, the functions' types and errors):
//!
//! - text is copied byte for byte (Go's `{{-`/`-}}` trimming already applied, every `{`
//!   that could open a Tera tag printed through one);
//! - `{{pipeline}}` becomes `{{ gt_print(v=…) }}`, each function call a `go_NAME(a=[…])` call
//!   with the piped value as the last argument, `and`/`or` a chain of `set`s in `if`s so
//!   that only the arguments Go evaluates are evaluated;
//! - each Go variable gets a Tera name of its own (Go's block scoping then needs nothing
//!   more), assigned with `set`, or `set_global` from inside a `for`;
//! - `{{template}}` and `{{block}}` are expanded in place with their own variables, the
//!   called template's `.` and `$` being the argument.
//!
//! What Go rejects when parsing is reported (confd fails on such a template at every
//! render); what Go rejects when executing becomes a `gt_fail` at the same place, so the
//! render fails exactly when confd's did.

use std::fmt::Write as _;

use super::functions::{self, Support};
use super::gotmpl::ast::{Arg, Command, Control, ControlKind, List, Node, Number, Pipe};
use super::gotmpl::parser::{self, Trees};

/// A converted template: the Tera text, and what a person must look at.
pub struct Converted {
    pub text: String,
    /// Constructs that cannot be converted faithfully, by line: the template must not be
    /// written.
    pub problems: Vec<(usize, String)>,
    /// Converted constructs worth knowing about (what depends on the environment).
    pub notes: Vec<(usize, String)>,
}

/// Converts the Go template `source`, parsed as confd does under the name `name` (the
/// file's base name).
pub fn convert(name: &str, source: &str) -> Converted {
    let trees = match parser::parse(name, source, &functions::defined) {
        Ok(trees) => trees,
        Err(e) => {
            return Converted {
                text: String::new(),
                problems: vec![(
                    e.line,
                    format!(
                        "Go cannot parse this template ({}), so confd fails on it at every \
                         render: fix it first",
                        e.message
                    ),
                )],
                notes: vec![],
            }
        }
    };
    let mut e = Emitter {
        trees: &trees,
        out: String::new(),
        next_id: 0,
        vars: vec![],
        loops: 0,
        calls: vec![name.to_string()],
        name: name.to_string(),
        problems: vec![],
        notes: vec![],
    };
    for (tree, list) in &trees {
        e.scan(tree, list);
    }
    e.out.push_str("{% set vroot = gt_nil() %}");
    e.vars.push(Var {
        go: "$".into(),
        tera: "vroot".into(),
        depth: 0,
    });
    let root = trees.get(name).expect("the file's own tree");
    e.list(root, "vroot");
    e.problems.sort();
    e.problems.dedup();
    e.notes.sort();
    e.notes.dedup();
    Converted {
        text: e.out,
        problems: e.problems,
        notes: e.notes,
    }
}

/// A Go variable in scope and the Tera name holding it.
struct Var {
    go: String,
    tera: String,
    /// How many Tera `for` loops enclose its declaration.
    depth: usize,
}

struct Emitter<'t> {
    trees: &'t Trees,
    out: String,
    next_id: usize,
    vars: Vec<Var>,
    loops: usize,
    /// The templates being expanded, outermost first.
    calls: Vec<String>,
    /// The template file's name, for Go's error messages.
    name: String,
    problems: Vec<(usize, String)>,
    notes: Vec<(usize, String)>,
}

/// A Tera string literal of `s` (Tera has no escapes: a string holding all three quote
/// characters is joined with `~` from pieces that each leave one out).
pub fn string(s: &str) -> String {
    let quote = |s: &str| {
        ['"', '\'', '`']
            .into_iter()
            .find(|q| !s.contains(*q))
            .map(|q| format!("{q}{s}{q}"))
    };
    if let Some(q) = quote(s) {
        return q;
    }
    let mut pieces = vec![];
    let mut piece = String::new();
    for c in s.chars() {
        piece.push(c);
        if quote(&piece).is_none() {
            piece.pop();
            pieces.push(quote(&piece).expect("fit before this character"));
            piece = c.to_string();
        }
    }
    pieces.push(quote(&piece).expect("one character fits"));
    format!("({})", pieces.join(" ~ "))
}

/// Text for Tera: printed as it is, except that a `{` which Tera could read as the start of
/// a tag (before `{`, `%`, `#`, or at the end, where a tag follows) is printed by a tag.
fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '{' && matches!(chars.peek(), None | Some('{' | '%' | '#')) {
            out.push_str("{{ \"{\" }}");
        } else {
            out.push(c);
        }
    }
    out
}

impl Emitter<'_> {
    fn id(&mut self, stem: &str) -> String {
        self.next_id += 1;
        format!("{stem}{}", self.next_id)
    }

    fn problem(&mut self, line: usize, message: impl Into<String>) {
        self.problems.push((line, message.into()));
    }

    /// Reports what no conversion can keep: functions whose result depends on the time,
    /// the network or the file system, and numbers Go keeps as complex.
    fn scan(&mut self, _tree: &str, list: &List) {
        for node in list {
            match node {
                Node::Action { pipe, .. } => self.scan_pipe(pipe),
                Node::Control(c) => {
                    self.scan_pipe(&c.pipe);
                    self.scan("", &c.list);
                    if let Some(e) = &c.else_list {
                        self.scan("", e);
                    }
                }
                Node::Template { pipe: Some(p), .. } => self.scan_pipe(p),
                _ => {}
            }
        }
    }

    fn scan_pipe(&mut self, pipe: &Pipe) {
        for cmd in &pipe.cmds {
            for arg in &cmd.args {
                self.scan_arg(cmd.line, arg);
            }
            let last_field = match &cmd.args[0] {
                Arg::Field(names) | Arg::Chain(_, names) => names.last(),
                Arg::Variable(parts) if parts.len() > 1 => parts.last(),
                _ => None,
            };
            if let Some(method) = last_field.filter(|m| *m == "Less" || *m == "Swap") {
                if cmd.args.len() > 1 {
                    self.problem(
                        cmd.line,
                        format!(
                            ".{method} with arguments calls a method of memkv.KVPairs, which \
                             reconfig does not: compare the keys with lt instead"
                        ),
                    );
                }
            }
            if matches!(&cmd.args[0], Arg::Identifier(f) if f == "slice") && cmd.args.len() > 4 {
                self.problem(
                    cmd.line,
                    "slice with three indexes (a capacity) is not supported: use two",
                );
            }
        }
    }

    fn scan_arg(&mut self, line: usize, arg: &Arg) {
        match arg {
            Arg::Identifier(name) => match functions::support(name) {
                Support::Converted => {}
                Support::Noted(note) => self.notes.push((line, note.to_string())),
                Support::Refused(why) => self.problem(line, why),
            },
            Arg::Number(n) if n.is_complex => self.problem(
                line,
                format!("complex number {}: reconfig has no complex numbers", n.text),
            ),
            Arg::Chain(node, _) => self.scan_arg(line, node),
            Arg::Pipe(p) => self.scan_pipe(p),
            _ => {}
        }
    }

    fn list(&mut self, list: &List, dot: &str) {
        let scope = self.vars.len();
        for node in list {
            self.node(node, dot);
        }
        self.vars.truncate(scope);
    }

    fn node(&mut self, node: &Node, dot: &str) {
        match node {
            Node::Text(t) => self.out.push_str(&text(t)),
            Node::Action { pipe, .. } => {
                let value = self.pipeline(pipe, dot);
                if pipe.decl.is_empty() {
                    let value = self.hold(&value);
                    write!(self.out, "{{{{ gt_print(v={value}) }}}}").expect("to a String");
                }
            }
            Node::Control(c) => self.control(c, dot),
            Node::Template { line, name, pipe } => self.template(*line, name, pipe.as_ref(), dot),
            Node::Break { .. } => self.out.push_str("{% break %}"),
            Node::Continue { .. } => self.out.push_str("{% continue %}"),
        }
    }

    fn control(&mut self, c: &Control, dot: &str) {
        let scope = self.vars.len();
        if c.kind == ControlKind::Range {
            self.range(c, dot);
            self.vars.truncate(scope);
            return;
        }
        let value = self.dug(&c.pipe, dot);
        let held = self.hold(&value);
        write!(self.out, "{{% if gt_truth(v={held}) %}}").expect("to a String");
        let inner = if c.kind == ControlKind::With {
            held.clone()
        } else {
            dot.to_string()
        };
        self.list(&c.list, &inner);
        if let Some(else_list) = &c.else_list {
            self.out.push_str("{% else %}");
            self.list(else_list, dot);
        }
        self.out.push_str("{% endif %}");
        self.vars.truncate(scope);
    }

    /// `{{range}}`: the range variables hold the whole value in `{{else}}` (as in Go), and
    /// each element in the body.
    fn range(&mut self, c: &Control, dot: &str) {
        let decl = c.pipe.decl.clone();
        let mut pipe = c.pipe.clone();
        pipe.decl.clear();
        let value = self.dug(&pipe, dot);
        let held = self.hold(&value);
        let names: Vec<String> = decl.iter().map(|d| self.declare(d)).collect();
        for name in &names {
            write!(self.out, "{{% set {name} = {held} %}}").expect("to a String");
        }
        let item = self.id("p");
        write!(self.out, "{{% for {item} in gt_range(v={held}) %}}").expect("to a String");
        self.loops += 1;
        let scope = self.vars.len();
        for (i, go) in decl.iter().enumerate() {
            // One variable: the element; two: the index (or key), then the element.
            let part = if decl.len() == 2 && i == 0 { 0 } else { 1 };
            let tera = names[i].clone();
            write!(self.out, "{{% set {tera} = {item}.{part} %}}").expect("to a String");
            self.vars.push(Var {
                go: go.clone(),
                tera,
                depth: self.loops,
            });
        }
        self.list(&c.list, &format!("{item}.1"));
        self.vars.truncate(scope);
        self.loops -= 1;
        // In `{{else}}` the variables hold the whole value, at the outer depth.
        for (go, tera) in decl.iter().zip(&names) {
            self.vars.push(Var {
                go: go.clone(),
                tera: tera.clone(),
                depth: self.loops,
            });
        }
        if let Some(else_list) = &c.else_list {
            self.out.push_str("{% else %}");
            self.list(else_list, dot);
        }
        self.out.push_str("{% endfor %}");
    }

    /// `{{template "name" pipeline}}`: the named template's body, in place.
    fn template(&mut self, line: usize, name: &str, pipe: Option<&Pipe>, dot: &str) {
        let arg = match pipe {
            Some(p) => {
                let v = self.dug(p, dot);
                self.hold(&v)
            }
            None => "gt_nil()".to_string(),
        };
        let Some(body) = self.trees.get(name) else {
            let message = format!(
                "template: {}:{line}: executing {:?}: template {name:?} not defined",
                self.name,
                self.calls.last().expect("the file's own tree")
            );
            write!(self.out, "{{{{ gt_fail(m={}) }}}}", string(&message)).expect("to a String");
            return;
        };
        if self.calls.iter().any(|c| c == name) {
            self.problem(
                line,
                format!(
                    "template {name:?} calls itself: expand the recursion by hand (Tera \
                     templates here do not recurse)"
                ),
            );
            return;
        }
        let outer = std::mem::replace(
            &mut self.vars,
            vec![Var {
                go: "$".into(),
                tera: arg.clone(),
                depth: self.loops,
            }],
        );
        self.calls.push(name.to_string());
        self.list(body, &arg);
        self.calls.pop();
        self.vars = outer;
    }

    /// `gt_field(v=…, n=[…])`: the fields `names` of `receiver`; `x=true` when arguments
    /// follow (which Go refuses for fields and map keys).
    fn field(&mut self, receiver: &str, names: &[String], has_args: bool) -> String {
        let receiver = self.hold(receiver);
        let names: Vec<String> = names.iter().map(|n| string(n)).collect();
        let args = if has_args { ", x=true" } else { "" };
        format!("gt_field(v={receiver}, n=[{}]{args})", names.join(", "))
    }

    /// A value as an atom: a name or a literal as it is, anything else `set` to a name
    /// first. Every argument of a call is an atom, so no Tera expression nests calls in
    /// calls (Tera's parser takes time exponential in that depth) and arguments are still
    /// evaluated in Go's order.
    fn hold(&mut self, value: &str) -> String {
        if is_atom(value) {
            return value.to_string();
        }
        let name = self.id("t");
        write!(self.out, "{{% set {name} = {value} %}}").expect("to a String");
        name
    }

    /// A new Tera name for the Go variable `go` (`$x` → `x3`).
    fn declare(&mut self, go: &str) -> String {
        let stem: String = go
            .trim_start_matches('$')
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        self.id(&format!("v{stem}_"))
    }

    /// The Tera name of a variable; Go's parser accepts a variable its own pipeline
    /// declares (`{{$x := $x}}`) or an assignment to an undeclared one, which fail when
    /// executed.
    fn lookup(&self, line: usize, go: &str) -> Result<(String, usize), String> {
        self.vars
            .iter()
            .rev()
            .find(|v| v.go == go)
            .map(|v| (v.tera.clone(), v.depth))
            .ok_or_else(|| self.fail(line, &format!("undefined variable: {go}")))
    }

    /// A pipeline's value as Go's `evalPipeline` leaves it: an interface holding nil is
    /// "no value".
    fn dug(&mut self, pipe: &Pipe, dot: &str) -> String {
        let value = self.pipeline(pipe, dot);
        match pipe.cmds.last() {
            Some(cmd) if pipe.decl.is_empty() && may_be_nil_interface(cmd) => {
                let value = self.hold(&value);
                format!("gt_dig(v={value})")
            }
            _ => value,
        }
    }

    /// Evaluates a pipeline; declarations and assignments are written as `set`s and the
    /// value returned is the variable's.
    fn pipeline(&mut self, pipe: &Pipe, dot: &str) -> String {
        let mut value: Option<String> = None;
        let mut last: Option<&Command> = None;
        for cmd in &pipe.cmds {
            let v = self.command(cmd, dot, value.take());
            value = Some(v);
            last = Some(cmd);
        }
        let mut value = value.expect("the parser refuses empty pipelines");
        if pipe.decl.is_empty() {
            return value;
        }
        if last.is_some_and(may_be_nil_interface) {
            let held = self.hold(&value);
            value = format!("gt_dig(v={held})");
        }
        let line = pipe.line;
        for go in &pipe.decl {
            if pipe.is_assign {
                let (tera, depth) = match self.lookup(line, go) {
                    Ok(found) => found,
                    Err(fail) => {
                        write!(self.out, "{{{{ {fail} }}}}").expect("to a String");
                        continue;
                    }
                };
                let tag = if depth == self.loops {
                    "set"
                } else if depth == 0 {
                    "set_global"
                } else {
                    self.problem(
                        line,
                        format!(
                            "{go} is assigned inside a {{{{range}}}} nested in the {{{{range}}}} \
                             that declares it: Tera cannot assign it there; declare it \
                             outside every {{{{range}}}} or restructure by hand"
                        ),
                    );
                    continue;
                };
                write!(self.out, "{{% {tag} {tera} = {value} %}}").expect("to a String");
                value = tera;
            } else {
                let tera = self.declare(go);
                write!(self.out, "{{% set {tera} = {value} %}}").expect("to a String");
                self.vars.push(Var {
                    go: go.clone(),
                    tera: tera.clone(),
                    depth: self.loops,
                });
                value = tera;
            }
        }
        value
    }

    fn fail(&self, line: usize, message: &str) -> String {
        let message = format!("template: {}:{line}: {message}", self.name);
        format!("gt_fail(m={})", string(&message))
    }

    fn command(&mut self, cmd: &Command, dot: &str, fin: Option<String>) -> String {
        let line = cmd.line;
        let has_args = cmd.args.len() > 1 || fin.is_some();
        let not_a_function = |e: &Self, what: &Arg| {
            e.fail(
                line,
                &format!("can't give argument to non-function {}", what.go_string()),
            )
        };
        match &cmd.args[0] {
            Arg::Field(names) => self.field(dot, names, has_args),
            Arg::Chain(node, names) => {
                let receiver = self.arg(line, node, dot);
                let receiver = self.hold(&receiver);
                let dug = self.hold(&format!("gt_dig(v={receiver})"));
                self.field(&dug, names, has_args)
            }
            Arg::Identifier(name) => self.call(line, name, &cmd.args[1..], dot, fin),
            Arg::Pipe(p) => {
                if has_args {
                    return not_a_function(self, &cmd.args[0]);
                }
                self.pipeline(p, dot)
            }
            Arg::Variable(parts) if parts.len() == 1 && has_args => {
                not_a_function(self, &cmd.args[0])
            }
            Arg::Variable(parts) => self.variable(line, parts, has_args),
            other if has_args => not_a_function(self, other),
            Arg::Bool(b) => b.to_string(),
            Arg::Dot => dot.to_string(),
            Arg::Nil => self.fail(line, "nil is not a command"),
            Arg::Number(n) => self.ideal(line, n),
            Arg::Str(s) => string(s),
        }
    }

    /// A number where Go does not know the type it needs (`idealConstant`).
    fn ideal(&self, line: usize, n: &Number) -> String {
        let float_syntax = n.text.contains(['.', 'e', 'E', 'p', 'P'])
            && !(n.text.len() > 2
                && n.text[..2].eq_ignore_ascii_case("0x")
                && !n.text.contains(['p', 'P']))
            && !n.text.starts_with('\'');
        if n.is_complex {
            return self.fail(line, "complex constant");
        }
        if n.is_float && float_syntax {
            return format!("gt_float(s=\"{:?}\")", n.float);
        }
        if n.is_int {
            return n.int.to_string();
        }
        self.fail(line, &format!("{} overflows int", n.text))
    }

    /// A function argument, evaluated as Go's `evalArg` does before the function's types
    /// are applied (by the function itself).
    fn arg(&mut self, line: usize, arg: &Arg, dot: &str) -> String {
        match arg {
            Arg::Dot => dot.to_string(),
            Arg::Nil => "gt_nil()".into(),
            Arg::Field(names) => self.field(dot, names, false),
            Arg::Variable(parts) => self.variable(line, parts, false),
            Arg::Pipe(p) => self.pipeline(p, dot),
            Arg::Identifier(name) => self.call(line, name, &[], dot, None),
            Arg::Chain(node, names) => {
                let receiver = self.arg(line, node, dot);
                let receiver = self.hold(&receiver);
                let dug = self.hold(&format!("gt_dig(v={receiver})"));
                self.field(&dug, names, false)
            }
            Arg::Bool(b) => b.to_string(),
            Arg::Str(s) => string(s),
            Arg::Number(n) => {
                // An untyped constant: the function converts it to the type it takes.
                let mut parts = vec![format!("t={}", string(&n.text))];
                if n.is_int {
                    parts.push(format!("i={}", n.int));
                }
                let ideal = self.ideal(line, n);
                let ideal = self.hold(&ideal);
                parts.push(format!("v={ideal}"));
                format!("gt_num({})", parts.join(", "))
            }
        }
    }

    /// `$x` or `$x.A.B`.
    fn variable(&mut self, line: usize, parts: &[String], has_args: bool) -> String {
        let var = match self.lookup(line, &parts[0]) {
            Ok((tera, _)) => tera,
            Err(fail) => return fail,
        };
        if parts.len() == 1 {
            return var;
        }
        self.field(&var, &parts[1..], has_args)
    }

    /// A function call; `and` and `or` evaluate their arguments only as far as Go does.
    fn call(
        &mut self,
        line: usize,
        name: &str,
        args: &[Arg],
        dot: &str,
        fin: Option<String>,
    ) -> String {
        if name == "and" || name == "or" {
            return self.and_or(line, name, args, dot, fin);
        }
        let mut values = vec![];
        for a in args {
            let v = self.arg(line, a, dot);
            let v = self.hold(&v);
            values.push(v);
        }
        if let Some(f) = fin {
            values.push(self.hold(&f));
        }
        format!("go_{name}(a=[{}])", values.join(", "))
    }

    fn and_or(
        &mut self,
        line: usize,
        name: &str,
        args: &[Arg],
        dot: &str,
        fin: Option<String>,
    ) -> String {
        if args.is_empty() && fin.is_none() {
            return self.fail(
                line,
                &format!("wrong number of args for {name}: want at least 1 got 0"),
            );
        }
        // The piped value is evaluated first, whatever the arguments decide.
        let fin = fin.map(|f| self.hold(&f));
        let result = self.id("t");
        let test = if name == "and" { "" } else { "not " };
        let mut open = 0;
        for (i, a) in args.iter().enumerate() {
            if i > 0 {
                write!(self.out, "{{% if {test}gt_truth(v={result}) %}}").expect("to a String");
                open += 1;
            }
            let v = match a {
                Arg::Number(n) => self.ideal(line, n),
                other => self.arg(line, other, dot),
            };
            write!(self.out, "{{% set {result} = {v} %}}").expect("to a String");
        }
        if let Some(f) = fin {
            if !args.is_empty() {
                write!(self.out, "{{% if {test}gt_truth(v={result}) %}}").expect("to a String");
                open += 1;
            }
            write!(self.out, "{{% set {result} = {f} %}}").expect("to a String");
        }
        for _ in 0..open {
            self.out.push_str("{% endif %}");
        }
        result
    }
}

/// Whether a Tera expression is a name or a literal (`t3`, `p2.1`, `"x"`, `42`, `true`).
fn is_atom(expr: &str) -> bool {
    let name = !expr.is_empty()
        && expr
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    let number = expr
        .strip_prefix('-')
        .unwrap_or(expr)
        .chars()
        .all(|c| c.is_ascii_digit())
        && !expr.is_empty();
    name || number || expr.starts_with(['"', '\'', '`', '(']) || expr == "gt_nil()"
}

/// Whether a command can give an interface holding nil, which Go's pipeline turns into "no
/// value" (an element of `[]interface{}` or a JSON object, through `.`, a variable, a
/// field or `index`).
fn may_be_nil_interface(cmd: &Command) -> bool {
    match &cmd.args[0] {
        Arg::Dot | Arg::Variable(_) | Arg::Field(_) | Arg::Chain(..) => true,
        Arg::Identifier(name) => matches!(name.as_str(), "index" | "and" | "or"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_fit_any_quotes() {
        assert_eq!(string("a\"b"), "'a\"b'");
        assert_eq!(string("\"'`"), "(`\"'` ~ \"`\")");
    }

    #[test]
    fn braces_that_open_tera_tags_are_printed_by_tags() {
        assert_eq!(text("a{b"), "a{b");
        assert_eq!(text("{{"), "{{ \"{\" }}{{ \"{\" }}");
        assert_eq!(text("x{"), "x{{ \"{\" }}");
        assert_eq!(text("{%"), "{{ \"{\" }}%");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Whatever a Go template's actions hold, converting it returns — Tera, or problems naming
        /// the line — and never panics.
        #[test]
        fn any_go_template_converts_or_is_reported(text in go_soup()) {
            let _ = convert("soup.tmpl", &text);
        }
    }

    /// Go template actions holding its tokens in any order.
    fn go_soup() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        // Go's syntax and builtins, literals at the edges, and every function confd defines.
        let syntax = [
            "{{",
            "}}",
            "/*",
            "*/",
            "range",
            "end",
            "if",
            "else",
            "else if",
            "with",
            "define",
            "template",
            "block",
            "break",
            "continue",
            "$",
            "$x",
            "$i",
            ":=",
            "=",
            ".",
            ".Key",
            ".Value",
            "printf",
            "print",
            "len",
            "index",
            "slice",
            "and",
            "or",
            "not",
            "eq",
            "ne",
            "lt",
            "\"/k\"",
            "\"%s\"",
            "`raw`",
            "'c'",
            "'\\''",
            "1",
            "-1",
            "1.5e308",
            "0x1p-2",
            "1e400",
            "9223372036854775808",
            "nil",
            "true",
            "|",
            "(",
            ")",
            ",",
            "\n",
            " ",
            "\"",
        ];
        let tokens: Vec<&str> = syntax.into_iter().chain(functions::converted()).collect();
        let token = prop::sample::select(tokens);
        let code = prop::collection::vec(token, 0..12).prop_map(|tokens| tokens.join(" "));
        let action = (
            prop::sample::select(vec!["{{ ", "{{- "]),
            code,
            "[a-z\\n]{0,3}",
        );
        let action = action.prop_map(|(open, code, text)| format!("{open}{code} }}}}{text}"));
        prop::collection::vec(action, 0..6).prop_map(|actions| actions.concat())
    }
}
