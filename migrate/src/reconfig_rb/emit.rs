//! Ruby statements and expressions → Tera with Ruby's meaning: Ruby's truth in conditions
//! (`rb_truthy`), Ruby's methods as `rb_*` filters, `nil` kept as `null` and printed as
//! nothing, Ruby's block scoping of variables. Static types (what `@reconfig` holds, what
//! each method returns) pick the plain Tera form where it means the same (`for k, v in data`,
//! `{{ v }}`); the rest goes through the filters, which check at render time what Ruby would.

use std::collections::{HashMap, HashSet};

use super::ast::{Block, Expr, Line, Output, Piece, Stmt, Unsupported};
use super::regex;
use super::tera::T;
use super::types::Ty;

/// A piece of Tera that a tag becomes, to be wrapped in the template's delimiters.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A statement tag: `if …`, `for …`, `set …`.
    Stmt(String),
    /// An expression tag.
    Print(String),
}

impl Item {
    /// The Tera code inside the tag.
    pub fn text(&self) -> &str {
        match self {
            Item::Stmt(s) | Item::Print(s) => s,
        }
    }
}

#[derive(Debug, Clone)]
struct Var {
    t: T,
    ty: Ty,
    /// A loop's or block's parameter, which Tera cannot assign.
    param: bool,
    /// The branch of an `if` it was assigned in, which must still be open to read it.
    branch: Option<usize>,
}

#[derive(Debug, Clone, Default)]
struct Scope {
    vars: HashMap<String, Var>,
    /// For a block given to a filter (`rb_map`, …): the outer values it reads, by the name
    /// it reads them under.
    captures: Option<Vec<(String, T)>>,
    /// A loop whose opening tag was not converted: its names are unknown, not errors.
    lenient: bool,
}

#[derive(Debug, Clone)]
enum Open {
    If {
        branch: usize,
        unless: bool,
        /// `if`s opened by `elsif`s whose condition needed a prelude (`else`, prelude,
        /// `if`), closed together with this one.
        nested: usize,
    },
    Loop,
    /// A block whose opening tag needs a person; its `end` stays as written.
    Unconverted,
}

/// Converts the tags of one template in order, keeping the open blocks and variables.
#[derive(Debug, Clone)]
pub struct Emitter {
    scopes: Vec<Scope>,
    open: Vec<Open>,
    next_id: usize,
    used: HashSet<String>,
    line: usize,
    /// Statements the expression being converted needs first: `c ? a : b`, `a || b` and
    /// `a && b` whose branches could fail, computed into a variable with `if`/`else`.
    prelude: Vec<Item>,
}

type R<T> = Result<T, Unsupported>;

/// Names a Ruby variable cannot keep in Tera (the context's, Tera's keywords).
const RESERVED: &[&str] = &[
    "data",
    "altdata",
    "watched",
    "reconfig",
    "loop",
    "true",
    "false",
    "True",
    "False",
    "and",
    "or",
    "not",
    "in",
    "is",
    "if",
    "elif",
    "else",
    "endif",
    "for",
    "endfor",
    "set",
    "set_global",
    "macro",
    "block",
    "filter",
    "raw",
    "break",
    "continue",
    "self",
    "super",
];

impl Emitter {
    /// An emitter for a template whose `data` has type `data`; `taken` holds every name
    /// the template's code uses, which the converter's own names avoid.
    pub fn new(data: Ty, taken: HashSet<String>) -> Emitter {
        let mut top = Scope::default();
        for (name, ty) in [
            ("data", data),
            ("altdata", Ty::Hash(Box::new(Ty::Hash(Box::new(Ty::Str))))),
            ("watched", Ty::Str),
            ("reconfig", Ty::Hash(Box::new(Ty::Any))),
        ] {
            top.vars.insert(
                format!("@{name}"),
                Var {
                    t: T::Path(name.to_string()),
                    ty,
                    branch: None,
                    param: false,
                },
            );
        }
        Emitter {
            scopes: vec![top],
            open: vec![],
            next_id: 0,
            used: taken,
            line: 0,
            prelude: vec![],
        }
    }

    fn unsupported(&self, construct: impl Into<String>, instead: impl Into<String>) -> Unsupported {
        Unsupported::new(self.line, construct, instead)
    }

    /// The Tera items of a statement tag.
    pub fn statements(&mut self, stmts: &[Line<Stmt>]) -> R<Vec<Item>> {
        let mut items = vec![];
        for stmt in stmts {
            self.line = stmt.line;
            items.extend(self.statement(&stmt.item)?);
        }
        Ok(items)
    }

    /// The Tera items of an expression tag.
    pub fn output(&mut self, out: &Output, line: usize) -> R<Vec<Item>> {
        self.line = line;
        let (prelude, items) = self.with_prelude(|e| e.bare_output(out));
        let mut all = prelude;
        all.extend(items?);
        Ok(all)
    }

    fn bare_output(&mut self, out: &Output) -> R<Vec<Item>> {
        match &out.modifier {
            None => self.print(&out.expr),
            Some((cond, unless)) => {
                let mut c = self.cond(cond)?;
                if *unless {
                    c = c.not();
                }
                let mut items = vec![Item::Stmt(format!("if {}", c.source()))];
                items.extend(self.print(&out.expr)?);
                items.push(Item::Stmt("endif".into()));
                Ok(items)
            }
        }
    }

    /// Whether the innermost open block is one whose opening tag was not converted.
    pub fn in_unconverted(&self) -> bool {
        matches!(self.open.last(), Some(Open::Unconverted))
    }

    /// Opens a block for a tag that was not converted but opens one, so its `end` matches.
    pub fn open_unconverted(&mut self) {
        self.open.push(Open::Unconverted);
        self.scopes.push(Scope {
            lenient: true,
            ..Scope::default()
        });
    }

    /// Closes the block opened by [`Emitter::open_unconverted`].
    pub fn close_unconverted(&mut self) {
        self.open.pop();
        self.scopes.pop();
    }

    /// What is still open at the end of the template.
    pub fn unclosed(&self) -> Option<&'static str> {
        self.open.last().map(|o| match o {
            Open::If { .. } => "an `if`/`unless` without its `end`",
            Open::Loop => "a loop (`do |…|`) without its `end`",
            Open::Unconverted => "a block without its `end`",
        })
    }

    fn fresh_branch(&mut self) -> usize {
        self.next_id += 1;
        self.next_id
    }

    fn branch(&self) -> Option<usize> {
        self.open.iter().rev().find_map(|o| match o {
            Open::If { branch, .. } => Some(*branch),
            _ => None,
        })
    }

    fn open_branches(&self) -> Vec<usize> {
        self.open
            .iter()
            .filter_map(|o| match o {
                Open::If { branch, .. } => Some(*branch),
                _ => None,
            })
            .collect()
    }

    /// The Tera name of the Ruby variable `ruby`: the same, unless Tera or the context
    /// reserve it. (Tera's loops and blocks shadow names as Ruby's blocks do.)
    fn tera_name(&self, ruby: &str) -> String {
        let mut name = ruby.to_string();
        while RESERVED.contains(&name.as_str()) || name.starts_with("__") {
            name.push('_');
        }
        name
    }

    /// A new name for a value the converter introduces, unlike any name in the template.
    fn fresh(&mut self, base: &str) -> String {
        let mut name = self.tera_name(base);
        while self.used.contains(&name) {
            name.push('_');
        }
        self.used.insert(name.clone());
        name
    }

    /// A statement's items, after the prelude its expressions need.
    fn statement(&mut self, stmt: &Stmt) -> R<Vec<Item>> {
        let (prelude, items) = self.with_prelude(|e| e.bare_statement(stmt));
        let mut all = prelude;
        all.extend(items?);
        Ok(all)
    }

    /// Runs `convert` with a prelude of its own, returned beside its result.
    fn with_prelude<X>(&mut self, convert: impl FnOnce(&mut Self) -> X) -> (Vec<Item>, X) {
        let saved = std::mem::take(&mut self.prelude);
        let result = convert(self);
        (std::mem::replace(&mut self.prelude, saved), result)
    }

    fn bare_statement(&mut self, stmt: &Stmt) -> R<Vec<Item>> {
        match stmt {
            Stmt::If(c) | Stmt::Unless(c) => {
                let unless = matches!(stmt, Stmt::Unless(_));
                let mut cond = self.cond(c)?;
                if unless {
                    cond = cond.not();
                }
                let branch = self.fresh_branch();
                self.open.push(Open::If {
                    branch,
                    unless,
                    nested: 0,
                });
                Ok(vec![Item::Stmt(format!("if {}", cond.source()))])
            }
            Stmt::Elsif(c) => {
                let Some(Open::If {
                    unless: false,
                    nested,
                    ..
                }) = self.open.last().cloned()
                else {
                    return Err(
                        self.unsupported("`elsif` without its `if`", "check the block structure")
                    );
                };
                self.open.pop();
                let cond = self.cond(c);
                let prelude = std::mem::take(&mut self.prelude);
                let branch = self.fresh_branch();
                let cond = cond?.source();
                if prelude.is_empty() {
                    self.open.push(Open::If {
                        branch,
                        unless: false,
                        nested,
                    });
                    return Ok(vec![Item::Stmt(format!("elif {cond}"))]);
                }
                // Tera has no place for statements between branches: `else`, then the
                // prelude, then an `if` that the `end` closes too.
                self.open.push(Open::If {
                    branch,
                    unless: false,
                    nested: nested + 1,
                });
                let mut items = vec![Item::Stmt("else".into())];
                items.extend(prelude);
                items.push(Item::Stmt(format!("if {cond}")));
                Ok(items)
            }
            Stmt::Else => {
                let Some(Open::If { unless, nested, .. }) = self.open.last().cloned() else {
                    return Err(
                        self.unsupported("`else` outside an `if`", "check the block structure")
                    );
                };
                self.open.pop();
                let branch = self.fresh_branch();
                self.open.push(Open::If {
                    branch,
                    unless,
                    nested,
                });
                Ok(vec![Item::Stmt("else".into())])
            }
            Stmt::End => match self.open.pop() {
                Some(Open::If { nested, .. }) => Ok(vec![Item::Stmt("endif".into()); nested + 1]),
                Some(Open::Loop) => {
                    self.scopes.pop();
                    Ok(vec![Item::Stmt("endfor".into())])
                }
                Some(Open::Unconverted) | None => {
                    Err(self
                        .unsupported("`end` without an open block", "check the block structure"))
                }
            },
            Stmt::Each {
                recv,
                method,
                args,
                params,
            } => self.open_loop(recv, method, args, params),
            Stmt::For(vars, list) => self.open_loop(list, "each", &[], vars),
            Stmt::Assign { name, op, value } => self.assign(name, *op, value),
            Stmt::Next | Stmt::Break => {
                if !self.open.iter().any(|o| matches!(o, Open::Loop)) {
                    return Err(self.unsupported("`next`/`break` outside a loop", "remove it"));
                }
                Ok(vec![Item::Stmt(
                    if *stmt == Stmt::Next {
                        "continue"
                    } else {
                        "break"
                    }
                    .into(),
                )])
            }
            Stmt::Modified { stmt, cond, unless } => {
                if !matches!(**stmt, Stmt::Assign { .. } | Stmt::Next | Stmt::Break) {
                    return Err(self.unsupported(
                        "an `if`/`unless` modifier on a block statement",
                        "write the condition as its own `<% if … %>` tag",
                    ));
                }
                let mut c = self.cond(cond)?;
                if *unless {
                    c = c.not();
                }
                let branch = self.fresh_branch();
                self.open.push(Open::If {
                    branch,
                    unless: false,
                    nested: 0,
                });
                let inner = self.statement(stmt);
                self.open.pop();
                let mut items = vec![Item::Stmt(format!("if {}", c.source()))];
                items.extend(inner?);
                items.push(Item::Stmt("endif".into()));
                Ok(items)
            }
        }
    }

    /// Opens a `for` loop for `recv.method do |params|`.
    fn open_loop(
        &mut self,
        recv: &Expr,
        method: &str,
        args: &[Expr],
        params: &[String],
    ) -> R<Vec<Item>> {
        let (list, ty) = self.expr(recv)?;
        if !args.is_empty() {
            return Err(self.unsupported(
                format!("`.{method}` with arguments"),
                "loop with `.each`/`.each_with_index` over the list you need",
            ));
        }
        let hash = matches!(ty.sure(), Ty::Hash(_));
        let arr = matches!(ty.sure(), Ty::Arr(_));
        let maybe_list = hash || arr || *ty.sure() == Ty::Any;
        let mut head_items = vec![];
        let mut binds: Vec<(String, T, Ty)> = vec![];
        let each_list = |list: T| {
            if arr {
                list
            } else {
                list.filter("rb_each", vec![])
            }
        };
        match (method, params.len()) {
            ("each" | "each_pair", 2) if hash => {
                let Ty::Hash(v) = ty.sure().clone() else { unreachable!() };
                let (k, vn) = (self.tera_name(&params[0]), self.tera_name(&params[1]));
                head_items.push(format!("for {k}, {vn} in {}", list.list_source()));
                binds.push((params[0].clone(), T::Path(k), Ty::Str));
                binds.push((params[1].clone(), T::Path(vn), *v));
            }
            ("each_pair", 2) if *ty.sure() == Ty::Any => {
                // Only a Hash has `each_pair`; Tera's key-value loop fails on anything
                // else, as Ruby did.
                let (k, vn) = (self.tera_name(&params[0]), self.tera_name(&params[1]));
                head_items.push(format!("for {k}, {vn} in {}", list.list_source()));
                binds.push((params[0].clone(), T::Path(k), Ty::Str));
                binds.push((params[1].clone(), T::Path(vn), Ty::Any));
            }
            ("each_pair", _) if !hash => {
                return Err(self.unsupported(
                    "`.each_pair` on a value not known to be a Hash, or with other than two parameters",
                    "use `.each do |k, v|`",
                ))
            }
            ("each" | "each_pair", n) if maybe_list => {
                if n <= 1 {
                    let name = match params.first() {
                        Some(p) => self.tera_name(p),
                        None => self.fresh("item"),
                    };
                    let item = ty.item();
                    head_items.push(format!("for {name} in {}", each_list(list).list_source()));
                    if let Some(p) = params.first() {
                        binds.push((p.clone(), T::Path(name), item));
                    }
                } else {
                    let item = ty.item();
                    let name = self.fresh(&params.join("_"));
                    head_items.push(format!("for {name} in {}", each_list(list).list_source()));
                    for (i, p) in params.iter().enumerate() {
                        let (t, pty) = match (&item, i) {
                            (Ty::Pair(k, _), 0) => (T::Path(format!("{name}.0")), (**k).clone()),
                            (Ty::Pair(_, v), 1) => (T::Path(format!("{name}.1")), (**v).clone()),
                            _ => (
                                T::Path(name.clone()).filter("rb_param", vec![("i", T::Int(i as i64))]),
                                Ty::Any,
                            ),
                        };
                        binds.push((p.clone(), t, pty));
                    }
                }
            }
            ("each_with_index", 1 | 2) if maybe_list => {
                let name = self.tera_name(&params[0]);
                head_items.push(format!("for {name} in {}", each_list(list).list_source()));
                binds.push((params[0].clone(), T::Path(name), ty.item()));
                if let Some(i) = params.get(1) {
                    let index = self.tera_name(i);
                    head_items.push(format!("set {index} = loop.index0"));
                    binds.push((i.clone(), T::Path(index), Ty::Int));
                }
            }
            ("each_key" | "each_value", 0 | 1) if hash => {
                let name = match params.first() {
                    Some(p) => self.tera_name(p),
                    None => self.fresh("item"),
                };
                let (filter, item) = if method == "each_key" {
                    ("rb_keys", Ty::Str)
                } else {
                    let Ty::Hash(v) = ty.sure().clone() else { unreachable!() };
                    ("rb_values", *v)
                };
                head_items.push(format!("for {name} in {}", list.filter(filter, vec![]).list_source()));
                if let Some(p) = params.first() {
                    binds.push((p.clone(), T::Path(name), item));
                }
            }
            ("times", 0 | 1) if matches!(ty.sure(), Ty::Int | Ty::Any) => {
                let name = match params.first() {
                    Some(p) => self.tera_name(p),
                    None => self.fresh("i"),
                };
                head_items.push(format!("for {name} in rb_range(end={})", list.source()));
                if let Some(p) = params.first() {
                    binds.push((p.clone(), T::Path(name), Ty::Int));
                }
            }
            _ => {
                return Err(self.unsupported(
                    format!("`.{method}` with {} block parameter(s) spanning tags", params.len()),
                    "loop with `.each do |x|`, `.each do |k, v|` (Hash) or `.each_with_index do |x, i|`",
                ))
            }
        }
        self.open.push(Open::Loop);
        let mut scope = Scope::default();
        for (ruby, t, ty) in binds {
            scope.vars.insert(
                ruby,
                Var {
                    t,
                    ty,
                    branch: None,
                    param: true,
                },
            );
        }
        self.scopes.push(scope);
        Ok(head_items.into_iter().map(Item::Stmt).collect())
    }

    /// `name = value`, `name += value`.
    fn assign(&mut self, name: &str, op: Option<&'static str>, value: &Expr) -> R<Vec<Item>> {
        let here = self.scopes.len() - 1;
        let found = self.find_var(name);
        let value = match op {
            None => value.clone(),
            Some(op) => Expr::Binary(
                op,
                Box::new(Expr::Name(name.to_string())),
                Box::new(value.clone()),
            ),
        };
        let (keyword, tera) = match &found {
            Some((depth, var)) if *depth == here || *depth == 0 => {
                let (T::Path(tera), false) = (&var.t, var.param) else {
                    return Err(self.unsupported(
                        format!("assignment to the block parameter `{name}`"),
                        "assign to a new variable",
                    ));
                };
                let keyword = if *depth == here { "set" } else { "set_global" };
                (keyword, tera.clone())
            }
            Some(_) => {
                return Err(self.unsupported(
                    format!("assignment inside a nested loop to `{name}` of an outer loop"),
                    "compute the value where it is used",
                ))
            }
            None => ("set", self.tera_name(name)),
        };
        let (items, ty) = self.lazy(&value, &|t: T, _: &Ty| {
            Item::Stmt(format!("{keyword} {tera} = {}", t.source()))
        })?;
        let open = self.open_branches();
        let branch = match &found {
            Some((_, var)) if var.branch.is_none_or(|b| open.contains(&b)) => var.branch,
            _ => self.branch(),
        };
        let scope = if keyword == "set_global" { 0 } else { here };
        self.scopes[scope].vars.insert(
            name.to_string(),
            Var {
                t: T::Path(tera),
                ty,
                branch,
                param: false,
            },
        );
        Ok(items)
    }

    /// Items giving `e` to `make` (print or assign), with `c ? a : b`, `a || b` and `a && b`
    /// as `if`/`else` when a branch could fail where Ruby would not evaluate it.
    fn lazy(&mut self, e: &Expr, make: &dyn Fn(T, &Ty) -> Item) -> R<(Vec<Item>, Ty)> {
        let split = match e {
            Expr::Ternary(c, a, b) if !(self.safe(a) && self.safe(b)) => {
                Some((self.cond(c)?, &**a, &**b))
            }
            Expr::Or(a, b) if !self.safe(b) => Some((self.cond(a)?, &**a, &**b)),
            Expr::And(a, b) if !self.safe(b) => Some((self.cond(a)?, &**b, &**a)),
            _ => None,
        };
        let Some((cond, yes, no)) = split else {
            let (mut items, converted) = self.with_prelude(|s| s.expr(e));
            let (t, ty) = converted?;
            items.push(make(t, &ty));
            return Ok((items, ty));
        };
        let mut items = vec![Item::Stmt(format!("if {}", cond.source()))];
        let (yes_items, yes_ty) = self.lazy(yes, make)?;
        items.extend(yes_items);
        items.push(Item::Stmt("else".into()));
        let (no_items, no_ty) = self.lazy(no, make)?;
        items.extend(no_items);
        items.push(Item::Stmt("endif".into()));
        Ok((items, Ty::union(yes_ty, no_ty)))
    }

    /// `<%= e %>`: Ruby prints `e.to_s`; values Tera prints otherwise go through `rb_s`.
    fn print(&mut self, e: &Expr) -> R<Vec<Item>> {
        if *e == Expr::Nil {
            return Ok(vec![]);
        }
        let (items, _) = self.lazy(e, &|t: T, ty: &Ty| {
            let t = if ty.prints_plainly() {
                t
            } else {
                t.filter("rb_s", vec![])
            };
            Item::Print(t.source())
        })?;
        Ok(items)
    }

    /// Whether evaluating `e` cannot fail, so it may be evaluated where Ruby would not.
    fn safe(&self, e: &Expr) -> bool {
        match e {
            Expr::Nil | Expr::Bool(_) | Expr::Int(_) => true,
            Expr::Str(pieces) => pieces.iter().all(|p| match p {
                Piece::Text(_) => true,
                Piece::Code(e) => self.safe(e),
            }),
            Expr::Array(items) => items.iter().all(|i| self.safe(i)),
            Expr::Name(n) => self.peek_var(n).is_some(),
            Expr::IVar(n) => n == "reconfig",
            Expr::Index(recv, args) => {
                args.len() == 1
                    && self.safe(recv)
                    && self.safe(&args[0])
                    && matches!(self.static_ty(recv), Some(Ty::Hash(_)))
            }
            Expr::Call {
                recv: Some(r),
                name,
                args,
                block: None,
            } => {
                args.is_empty()
                    && matches!(name.as_str(), "to_s" | "nil?" | "to_json")
                    && self.safe(r)
            }
            Expr::Not(x) => self.safe(x),
            Expr::And(a, b) | Expr::Or(a, b) => self.safe(a) && self.safe(b),
            Expr::Binary("==" | "!=", a, b) => self.safe(a) && self.safe(b),
            Expr::Ternary(c, a, b) => self.safe(c) && self.safe(a) && self.safe(b),
            _ => false,
        }
    }

    /// The type of simple expressions, without converting them.
    fn static_ty(&self, e: &Expr) -> Option<Ty> {
        match e {
            Expr::Name(n) => self.peek_var(n).map(|v| v.ty.clone()),
            Expr::IVar(n) if n == "reconfig" => Some(Ty::Hash(Box::new(Ty::Any))),
            Expr::Index(recv, args) => {
                if let (Expr::IVar(r), [Expr::Str(key)]) = (&**recv, args.as_slice()) {
                    if let (true, [Piece::Text(k)]) = (r == "reconfig", key.as_slice()) {
                        return self.peek_var(&format!("@{k}")).map(|v| v.ty.clone());
                    }
                }
                match self.static_ty(recv)?.sure() {
                    Ty::Hash(v) => Some(Ty::maybe((**v).clone())),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    fn peek_var(&self, name: &str) -> Option<&Var> {
        self.scopes.iter().rev().find_map(|s| s.vars.get(name))
    }

    /// The scope index and variable named `name`, without capturing it.
    fn find_var(&self, name: &str) -> Option<(usize, Var)> {
        self.scopes
            .iter()
            .enumerate()
            .rev()
            .find_map(|(i, s)| s.vars.get(name).map(|v| (i, v.clone())))
    }

    /// Reads a variable: its Tera expression as seen here (captured into the blocks it is
    /// read from).
    fn read_var(&mut self, name: &str, shown: &str) -> R<(T, Ty)> {
        let Some((depth, var)) = self.find_var(name) else {
            if self.scopes.iter().any(|s| s.lenient) {
                return Ok((T::Path(name.to_string()), Ty::Any));
            }
            return Err(self.unsupported(
                format!("`{shown}`, an unknown variable or method"),
                "templates see only @reconfig and their own variables: compute the value from @reconfig",
            ));
        };
        if let Some(branch) = var.branch {
            if !self.open_branches().contains(&branch) {
                return Err(self.unsupported(
                    format!("`{shown}`, assigned inside an `if` and read outside it (nil when the branch did not run)"),
                    format!("assign `{shown}` before the `if` too"),
                ));
            }
        }
        let mut t = var.t.clone();
        for i in depth + 1..self.scopes.len() {
            let Some(captures) = &self.scopes[i].captures else {
                continue;
            };
            let existing = captures
                .iter()
                .find(|(_, outer)| *outer == t)
                .map(|(n, _)| n.clone());
            let inner = match existing {
                Some(n) => n,
                None => {
                    let n = if t.is_name() {
                        match &t {
                            T::Path(p) => p.clone(),
                            _ => unreachable!(),
                        }
                    } else {
                        self.fresh("captured")
                    };
                    if let Some(c) = self.scopes[i].captures.as_mut() {
                        c.push((n.clone(), t.clone()));
                    }
                    n
                }
            };
            t = T::Path(inner);
        }
        Ok((t, var.ty))
    }

    /// A condition with Ruby's truth.
    fn cond(&mut self, e: &Expr) -> R<T> {
        match e {
            Expr::And(a, b) => Ok(T::logic(self.cond(a)?, "and", self.cond(b)?)),
            Expr::Or(a, b) => Ok(T::logic(self.cond(a)?, "or", self.cond(b)?)),
            Expr::Not(a) => Ok(self.cond(a)?.not()),
            Expr::Bool(b) => Ok(T::Bool(*b)),
            Expr::Nil => Ok(T::Bool(false)),
            _ => {
                let (t, _) = self.expr(e)?;
                Ok(truth(t))
            }
        }
    }

    /// Ruby's `==` / `!=`.
    fn eq(&mut self, op: &'static str, a: &Expr, b: &Expr) -> R<(T, Ty)> {
        let nil_test = match (a, b) {
            (Expr::Nil, other) | (other, Expr::Nil) => Some(other),
            _ => None,
        };
        let t = if let Some(other) = nil_test {
            let (t, _) = self.expr(other)?;
            t.filter("rb_nil", vec![])
        } else {
            let (ta, tya) = self.expr(a)?;
            let (tb, tyb) = self.expr(b)?;
            let numbers_meet_others =
                (tya.may_be_number() || tyb.may_be_number()) && !(tya == Ty::Int && tyb == Ty::Int);
            if numbers_meet_others {
                ta.filter("rb_eq", vec![("other", tb)])
            } else {
                return Ok((T::cmp(ta, op, tb), Ty::Bool));
            }
        };
        // A negated filter goes through `rb_truthy`: Tera's `not` before a failing filter
        // would read it as false and turn it true.
        Ok((if op == "!=" { truth(t).not() } else { t }, Ty::Bool))
    }

    /// An expression's Tera form and type.
    fn expr(&mut self, e: &Expr) -> R<(T, Ty)> {
        match e {
            Expr::Nil => Err(self.unsupported(
                "`nil` as a value",
                "test with `x.nil?`; print \"\" for nothing",
            )),
            Expr::Bool(b) => Ok((T::Bool(*b), Ty::Bool)),
            Expr::Int(n) => Ok((T::Int(*n), Ty::Int)),
            Expr::Str(pieces) => self.string(pieces),
            Expr::Regex(..) => Err(self.unsupported(
                "a regexp outside `.gsub`/`.sub`/`.split`",
                "use `.include?`, `.start_with?` or `.end_with?`",
            )),
            Expr::Array(items) => {
                let mut ts = vec![];
                let mut ty: Option<Ty> = None;
                for item in items {
                    let (t, item_ty) = self.expr(item)?;
                    ts.push(t);
                    ty = Some(match ty {
                        None => item_ty,
                        Some(prev) => Ty::union(prev, item_ty),
                    });
                }
                Ok((T::Array(ts), Ty::arr(ty.unwrap_or(Ty::Any))))
            }
            Expr::Name(n) => self.read_var(n, n),
            Expr::IVar(n) if n == "reconfig" => self.read_var("@reconfig", "@reconfig"),
            Expr::IVar(n) => Err(self.unsupported(
                format!("the instance variable `@{n}` (nil in reconfig.rb)"),
                "use @reconfig[\"data\"], [\"altdata\"] or [\"watched\"]",
            )),
            Expr::Const(c) => Err(self.unsupported(
                format!("the constant `{c}`"),
                "templates see only @reconfig; JSON and File are supported as JSON.pretty_generate, File.basename, File.dirname",
            )),
            Expr::Index(recv, args) => self.index(recv, args),
            Expr::Call { recv, name, args, block } => self.call(recv.as_deref(), name, args, block.as_ref()),
            Expr::Not(x) => Ok((self.cond(x)?.not(), Ty::Bool)),
            Expr::And(a, b) | Expr::Or(a, b) => {
                let or = matches!(e, Expr::Or(..));
                if self.both_bool(a, b) {
                    let c = T::logic(self.cond(a)?, if or { "or" } else { "and" }, self.cond(b)?);
                    return Ok((c, Ty::Bool));
                }
                // Ruby always evaluates `a`; `b` only sometimes, so only `b` must be safe.
                if !self.safe(b) {
                    return self.hoist(e);
                }
                let (ta, tya) = self.expr(a)?;
                let (tb, tyb) = self.expr(b)?;
                let f = if or { "rb_or" } else { "rb_and" };
                Ok((T::call(f, vec![("a", ta), ("b", tb)]), Ty::union(tya, tyb)))
            }
            Expr::Ternary(c, a, b) => {
                if !(self.safe(a) && self.safe(b)) {
                    return self.hoist(e);
                }
                let tc = self.expr(c)?.0;
                let (ta, tya) = self.expr(a)?;
                let (tb, tyb) = self.expr(b)?;
                Ok((
                    T::call("rb_if", vec![("cond", tc), ("then", ta), ("else", tb)]),
                    Ty::union(tya, tyb),
                ))
            }
            Expr::Binary(op @ ("==" | "!="), a, b) => self.eq(op, a, b),
            Expr::Binary(op, a, b) => self.binary(op, a, b),
        }
    }

    /// A conditional value whose branches could fail, computed first into a variable by
    /// `if`/`else` statements in the prelude.
    fn hoist(&mut self, e: &Expr) -> R<(T, Ty)> {
        if self.scopes.iter().any(|s| s.captures.is_some()) {
            return Err(self.unsupported(
                "a conditional value (`c ? a : b`, `a || b`) that could fail, inside a block",
                "compute it before the block, or make both branches plain values",
            ));
        }
        let name = self.fresh("value");
        let (items, ty) = self.lazy(e, &|t: T, _: &Ty| {
            Item::Stmt(format!("set {name} = {}", t.source()))
        })?;
        self.prelude.extend(items);
        Ok((T::Path(name), ty))
    }

    fn both_bool(&self, a: &Expr, b: &Expr) -> bool {
        fn boolean(e: &Expr) -> bool {
            match e {
                Expr::Bool(_) | Expr::Not(_) => true,
                Expr::Binary(op, ..) => matches!(*op, "==" | "!=" | "<" | ">" | "<=" | ">="),
                Expr::And(a, b) | Expr::Or(a, b) => boolean(a) && boolean(b),
                Expr::Call { name, .. } => name.ends_with('?'),
                _ => false,
            }
        }
        boolean(a) && boolean(b)
    }

    fn binary(&mut self, op: &'static str, a: &Expr, b: &Expr) -> R<(T, Ty)> {
        let (ta, tya) = self.expr(a)?;
        let (tb, tyb) = self.expr(b)?;
        let (filter, ty) = match op {
            "<" => ("rb_lt", Ty::Bool),
            ">" => ("rb_gt", Ty::Bool),
            "<=" => ("rb_le", Ty::Bool),
            ">=" => ("rb_ge", Ty::Bool),
            "+" => {
                if tya == Ty::Str && tyb == Ty::Str {
                    return Ok((T::concat(vec![ta, tb]), Ty::Str));
                }
                let ty = match (tya.sure(), tyb.sure()) {
                    (Ty::Int, Ty::Int) => Ty::Int,
                    (Ty::Str, _) => Ty::Str,
                    (Ty::Arr(x), _) => Ty::Arr(x.clone()),
                    _ => Ty::Any,
                };
                ("rb_plus", ty)
            }
            "-" => ("rb_minus", Ty::Int),
            "*" => (
                "rb_times",
                if *tya.sure() == Ty::Str {
                    Ty::Str
                } else {
                    Ty::Int
                },
            ),
            "/" => ("rb_div", Ty::Int),
            "%" if *tya.sure() == Ty::Str => {
                return Err(self.unsupported("`format % args`", "build the string with \"#{…}\""))
            }
            "%" => ("rb_mod", Ty::Int),
            _ => return Err(self.unsupported(format!("the `{op}` operator"), "rewrite it by hand")),
        };
        Ok((ta.filter(filter, vec![("other", tb)]), ty))
    }

    /// A string literal, with `#{…}` pieces printed as Ruby's `to_s`.
    fn string(&mut self, pieces: &[Piece]) -> R<(T, Ty)> {
        let mut parts = vec![];
        let mut plain = true;
        for piece in pieces {
            match piece {
                Piece::Text(s) => parts.push(T::string(s)),
                Piece::Code(e) => {
                    let (t, ty) = self.expr(e)?;
                    let concatenable = matches!(ty, Ty::Str | Ty::Int)
                        && matches!(t, T::Path(_) | T::Call(..) | T::Str(_) | T::Int(_));
                    plain &= concatenable;
                    parts.push(match ty {
                        Ty::Str | Ty::Int | Ty::Nil => t,
                        Ty::Maybe(ref inner) if matches!(**inner, Ty::Str | Ty::Int) => t,
                        _ => t.filter("rb_s", vec![]),
                    });
                }
            }
        }
        match parts.len() {
            0 => Ok((T::Str(String::new()), Ty::Str)),
            1 if matches!(pieces[0], Piece::Text(_)) => Ok((parts.remove(0), Ty::Str)),
            _ if plain => Ok((T::concat(parts), Ty::Str)),
            _ => Ok((T::Array(parts).filter("rb_join", vec![]), Ty::Str)),
        }
    }

    /// `recv[key]`.
    fn index(&mut self, recv: &Expr, args: &[Expr]) -> R<(T, Ty)> {
        if let (Expr::IVar(r), [Expr::Str(key)]) = (recv, args) {
            if let (true, [Piece::Text(k)]) = (r == "reconfig", key.as_slice()) {
                if matches!(k.as_str(), "data" | "altdata" | "watched") {
                    return self.read_var(&format!("@{k}"), &format!("@reconfig[\"{k}\"]"));
                }
            }
        }
        let [key] = args else {
            return Err(self.unsupported(
                "`[]` with several arguments",
                "index with one key or position",
            ));
        };
        let (t, ty) = self.expr(recv)?;
        let (k, _) = self.expr(key)?;
        let item = match (ty.sure(), key) {
            (Ty::Hash(v), _) => Ty::maybe((**v).clone()),
            (Ty::Arr(e), _) => Ty::maybe((**e).clone()),
            (Ty::Str, _) => Ty::maybe(Ty::Str),
            (Ty::Pair(k, _), Expr::Int(0)) => (**k).clone(),
            (Ty::Pair(_, v), Expr::Int(1)) => (**v).clone(),
            _ => Ty::Any,
        };
        Ok((t.filter("rb_at", vec![("k", k)]), item))
    }

    /// A method call.
    fn call(
        &mut self,
        recv: Option<&Expr>,
        name: &str,
        args: &[Expr],
        block: Option<&Block>,
    ) -> R<(T, Ty)> {
        let Some(recv) = recv else {
            return Err(self.unsupported(
                format!("the method call `{name}(…)`"),
                "templates see only @reconfig: compute the value from @reconfig",
            ));
        };
        if let Expr::Const(c) = recv {
            return self.module_function(c, name, args);
        }
        if let Some(block) = block {
            return self.block_call(recv, name, args, block);
        }
        let (t, ty) = self.expr(recv)?;
        let sure = ty.sure().clone();
        let arity = |n: usize| args.len() == n;
        let simple = |f: &'static str, result: Ty| -> R<(T, Ty)> {
            Ok((t.clone().filter(f, vec![]), result))
        };
        match (name, args.len()) {
            ("keys", 0) => simple("rb_keys", Ty::arr(Ty::Str)),
            ("values", 0) => {
                let item = match &sure {
                    Ty::Hash(v) => (**v).clone(),
                    _ => Ty::Any,
                };
                simple("rb_values", Ty::arr(item))
            }
            ("length" | "size" | "count", 0) => simple("length", Ty::Int),
            ("nil?", 0) => simple("rb_nil", Ty::Bool),
            ("empty?", 0) => simple("rb_empty", Ty::Bool),
            ("to_s", 0) => {
                if ty == Ty::Str {
                    Ok((t, Ty::Str))
                } else {
                    simple("rb_s", Ty::Str)
                }
            }
            ("to_i", 0) => simple("rb_to_i", Ty::Int),
            ("to_json", 0) => simple("to_json", Ty::Str),
            ("to_yaml", 0) => simple("to_yaml", Ty::Str),
            ("strip" | "lstrip" | "rstrip" | "chomp" | "upcase" | "downcase" | "capitalize", 0) => {
                let f = match name {
                    "strip" => "rb_strip",
                    "lstrip" => "rb_lstrip",
                    "rstrip" => "rb_rstrip",
                    "chomp" => "rb_chomp",
                    "upcase" => "rb_upcase",
                    "downcase" => "rb_downcase",
                    _ => "rb_capitalize",
                };
                simple(f, Ty::Str)
            }
            ("sort", 0) => simple("rb_sort", Ty::arr(ty.item())),
            ("reverse", 0) => simple("rb_reverse", ty.clone()),
            ("uniq", 0) => simple("rb_uniq", ty.clone()),
            ("first" | "last", 0 | 1) => {
                if name == "last" && matches!(sure, Ty::Hash(_)) {
                    return Err(self.unsupported("`.last` on a Hash (Ruby has none)", "use `.to_a.last`… or `.keys.last`"));
                }
                let f = if name == "first" { "rb_first" } else { "rb_last" };
                let item = ty.item();
                match args.first() {
                    None => Ok((t.filter(f, vec![]), Ty::maybe(item))),
                    Some(n) => {
                        let (n, _) = self.expr(n)?;
                        Ok((t.filter(f, vec![("n", n)]), Ty::arr(item)))
                    }
                }
            }
            ("join", 0 | 1) => {
                let sep = args.first().map(|a| self.expr(a)).transpose()?;
                let args = sep.map(|(s, _)| vec![("sep", s)]).unwrap_or_default();
                Ok((t.filter("rb_join", args), Ty::Str))
            }
            ("split", 0 | 1) => {
                let args = match args.first() {
                    None => vec![],
                    Some(Expr::Regex(source, flags)) => {
                        let (re, groups) = regex::translate(source, flags)
                            .map_err(|why| self.unsupported(format!("the regexp /{source}/{flags}: {why}"), "split on a string, or a simpler regexp"))?;
                        if groups > 0 {
                            return Err(self.unsupported(
                                "`.split` on a regexp with groups (Ruby adds the groups to the result)",
                                "use `(?:…)` groups",
                            ));
                        }
                        vec![("regex", T::string(&re))]
                    }
                    Some(sep) => vec![("sep", self.expr(sep)?.0)],
                };
                Ok((t.filter("rb_split", args), Ty::arr(Ty::Str)))
            }
            ("include?", 1) => {
                let (x, _) = self.expr(&args[0])?;
                Ok((t.filter("rb_include", vec![("x", x)]), Ty::Bool))
            }
            ("key?" | "has_key?", 1) => {
                let (k, _) = self.expr(&args[0])?;
                Ok((t.filter("rb_key", vec![("k", k)]), Ty::Bool))
            }
            ("start_with?" | "end_with?", 1) => {
                let (s, _) = self.expr(&args[0])?;
                let f = if name == "start_with?" { "rb_start_with" } else { "rb_end_with" };
                Ok((t.filter(f, vec![("s", s)]), Ty::Bool))
            }
            ("gsub" | "sub", 2) => {
                let pattern = match &args[0] {
                    Expr::Regex(source, flags) => {
                        let (re, _) = regex::translate(source, flags).map_err(|why| {
                            self.unsupported(format!("the regexp /{source}/{flags}: {why}"), "replace a string, or use a simpler regexp")
                        })?;
                        ("regex", T::string(&re))
                    }
                    other => ("pattern", self.expr(other)?.0),
                };
                if let Expr::Str(pieces) = &args[1] {
                    let text: String = pieces
                        .iter()
                        .map(|p| match p {
                            Piece::Text(s) => s.as_str(),
                            Piece::Code(_) => "",
                        })
                        .collect();
                    if unsupported_escape(&text) {
                        return Err(self.unsupported(
                            "a replacement with `\\k<…>`, `\\``, or `\\'`",
                            "use `\\0`…`\\9` in the replacement",
                        ));
                    }
                }
                let (with, _) = self.expr(&args[1])?;
                let f = if name == "gsub" { "rb_gsub" } else { "rb_sub" };
                Ok((t.filter(f, vec![pattern, ("with", with)]), Ty::Str))
            }
            _ if arity(0) && matches!(name, "each" | "each_pair" | "each_with_index" | "map" | "select" | "reject" | "sort_by") => {
                Err(self.unsupported(
                    format!("`.{name}` without a block"),
                    "give the block in the same tag: `.map { |x| … }`",
                ))
            }
            _ => Err(self.unsupported(
                format!("the method `.{name}`"),
                "see docs/migration.md for the methods converted, and the rb_* filters to write by hand",
            )),
        }
    }

    /// `JSON.pretty_generate(x)`, `File.basename(x)`, ….
    fn module_function(&mut self, module: &str, name: &str, args: &[Expr]) -> R<(T, Ty)> {
        let (filter, extra): (&'static str, Vec<(&str, T)>) = match (module, name, args.len()) {
            ("JSON", "pretty_generate", 1) => ("to_json", vec![("pretty", T::Bool(true))]),
            ("JSON", "generate" | "dump", 1) => ("to_json", vec![]),
            ("YAML", "dump", 1) => ("to_yaml", vec![]),
            ("File", "basename", 1) => ("rb_basename", vec![]),
            ("File", "basename", 2) => ("rb_basename", vec![("suffix", self.expr(&args[1])?.0)]),
            ("File", "dirname", 1) => ("rb_dirname", vec![]),
            ("JSON", "parse", _) => {
                return Err(self.unsupported(
                    "`JSON.parse` (Tera's objects keep keys sorted, Ruby's keep the document's order)",
                    "parse with `value | from_json` by hand where key order does not matter",
                ))
            }
            _ => {
                return Err(self.unsupported(
                    format!("`{module}.{name}`"),
                    "only JSON.pretty_generate/generate, YAML.dump, File.basename and File.dirname are converted",
                ))
            }
        };
        let (t, _) = self.expr(&args[0])?;
        Ok((t.filter(filter, extra), Ty::Str))
    }

    /// `recv.map { |x| … }` and friends: the block becomes a Tera expression the filter
    /// evaluates per item, with the outer variables it reads passed along.
    fn block_call(&mut self, recv: &Expr, name: &str, args: &[Expr], block: &Block) -> R<(T, Ty)> {
        let (list, ty) = self.expr(recv)?;
        let filter =
            match name {
                "map" | "collect" => "rb_map",
                "select" | "filter" => "rb_select",
                "reject" => "rb_reject",
                "sort_by" => "rb_sort_by",
                _ => return Err(self.unsupported(
                    format!("`.{name}` with a block"),
                    "use `.map`, `.select`, `.reject` or `.sort_by`, or loop with `.each do |x|`",
                )),
            };
        if !args.is_empty() {
            return Err(self.unsupported(format!("`.{name}` with arguments"), "remove them"));
        }
        let hash = match ty.sure() {
            Ty::Hash(v) => Some((**v).clone()),
            _ => None,
        };
        // What the block's parameters get: Hash#select/reject yield key and value,
        // everything else yields one item (a Hash's pairs), spread over several parameters.
        let param_tys: Vec<Ty> = match (&hash, filter, block.params.len()) {
            (Some(v), "rb_select" | "rb_reject", n) => (0..n)
                .map(|i| match i {
                    0 => Ty::Str,
                    1 => v.clone(),
                    _ => Ty::Nil,
                })
                .collect(),
            (_, _, 1) => vec![ty.item()],
            (_, _, n) => (0..n)
                .map(|i| match (ty.item(), i) {
                    (Ty::Pair(k, _), 0) => *k,
                    (Ty::Pair(_, v), 1) => *v,
                    _ => Ty::Any,
                })
                .collect(),
        };
        let mut scope = Scope {
            captures: Some(vec![]),
            ..Scope::default()
        };
        let mut names = vec![];
        for (param, pty) in block.params.iter().zip(param_tys) {
            let name = self.tera_name(param);
            names.push(name.clone());
            scope.vars.insert(
                param.clone(),
                Var {
                    t: T::Path(name),
                    ty: pty,
                    branch: None,
                    param: true,
                },
            );
        }
        self.scopes.push(scope);
        let body = self.expr(&block.body);
        let scope = self.scopes.pop().expect("pushed above");
        let (body, body_ty) = body?;
        let result = match filter {
            "rb_map" => Ty::arr(body_ty),
            "rb_sort_by" => Ty::arr(ty.item()),
            _ => match (hash, ty.sure()) {
                (Some(v), _) => Ty::Hash(Box::new(v)),
                (None, Ty::Arr(_)) => Ty::arr(ty.item()),
                _ => Ty::Any,
            },
        };
        if names.is_empty() {
            return Err(self.unsupported(
                format!("`.{name}` with a block without parameters"),
                "name the block's parameter",
            ));
        }
        let params = names.join(", ");
        let mut fargs = vec![
            ("params", T::string(&params)),
            ("expr", T::string(&body.source())),
        ];
        let captures = scope.captures.unwrap_or_default();
        for (inner, outer) in &captures {
            fargs.push((inner.as_str(), outer.clone()));
        }
        Ok((list.filter(filter, fargs), result))
    }
}

/// Whether a replacement uses `\\k<…>`, ``\\` `` or `\\'`, which `rb_gsub` does not expand.
fn unsupported_escape(replacement: &str) -> bool {
    let mut chars = replacement.chars();
    while let Some(c) = chars.next() {
        if c == '\\' && matches!(chars.next(), Some('k' | '`' | '\'')) {
            return true;
        }
    }
    false
}

/// A value as a condition with Ruby's truth; comparisons and other conditions stay.
fn truth(t: T) -> T {
    match t {
        T::Cmp(..) | T::Not(_) | T::Logic(..) | T::Bool(_) => t,
        T::Call("rb_truthy", _) => t,
        other => T::call("rb_truthy", vec![("v", other)]),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{lexer, parser};
    use super::*;

    fn run(tags: &[(&str, bool)]) -> Vec<String> {
        let mut e = Emitter::new(Ty::Hash(Box::new(Ty::Str)), HashSet::new());
        let mut out = vec![];
        for (code, is_output) in tags {
            let tokens = lexer::lex(code, 1).unwrap();
            let items = if *is_output {
                e.output(&parser::output(tokens, 1).unwrap(), 1).unwrap()
            } else {
                e.statements(&parser::statements(tokens, 1).unwrap())
                    .unwrap()
            };
            out.extend(items.into_iter().map(|i| match i {
                Item::Stmt(s) => format!("{{% {s} %}}"),
                Item::Print(p) => format!("{{{{ {p} }}}}"),
            }));
        }
        out
    }

    #[test]
    fn hash_loops_use_key_value_for() {
        assert_eq!(
            run(&[
                (r#"@reconfig["data"].each do |k, v|"#, false),
                ("k", true),
                (r#"v.upcase"#, true),
                ("end", false)
            ]),
            [
                "{% for k, v in data %}",
                "{{ k }}",
                "{{ v | rb_upcase }}",
                "{% endfor %}"
            ]
        );
    }

    #[test]
    fn conditions_use_ruby_truth() {
        assert_eq!(
            run(&[
                ("x = 1", false),
                (r#"if @reconfig["data"]["/a"] && !x.nil?"#, false)
            ]),
            [
                "{% set x = 1 %}",
                "{% if rb_truthy(v=data | rb_at(k=\"/a\")) and not rb_truthy(v=x | rb_nil) %}"
            ]
        );
    }

    #[test]
    fn ternary_becomes_if_else_when_a_branch_can_fail() {
        let out = run(&[
            ("v = @reconfig[\"data\"][\"/a\"]", false),
            ("v.nil? ? \"none\" : v.upcase", true),
        ]);
        assert_eq!(
            out,
            [
                "{% set v = data | rb_at(k=\"/a\") %}",
                "{% if rb_truthy(v=v | rb_nil) %}",
                "{{ \"none\" }}",
                "{% else %}",
                "{{ v | rb_upcase }}",
                "{% endif %}"
            ]
        );
    }

    #[test]
    fn blocks_capture_outer_variables() {
        let out = run(&[
            ("prefix = \"/a\"", false),
            (
                r##"@reconfig["data"].select { |k, v| k.start_with?(prefix) }.map { |k, v| "#{k}=#{v}" }.join(",")"##,
                true,
            ),
        ]);
        assert_eq!(
            out[1],
            "{{ data | rb_select(params=\"k, v\", expr=\"k | rb_start_with(s=prefix)\", prefix=prefix) \
             | rb_map(params=\"k, v\", expr='k ~ \"=\" ~ v') | rb_join(sep=\",\") }}"
        );
    }
}
