//! The parse tree of a Go template, as Go's `text/template/parse` builds it (the node kinds
//! of node.go that execution distinguishes), each node with the line it starts on.

/// A list of nodes: a template's body or a branch.
pub type List = Vec<Node>;

/// One node of a body.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// Text printed as it is (trimming already applied).
    Text(String),
    /// `{{pipeline}}`: printed unless it declares or assigns variables.
    Action {
        line: usize,
        pipe: Pipe,
    },
    /// `{{if}}`, `{{range}}`, `{{with}}`.
    Control(Box<Control>),
    /// `{{template "name" pipeline}}` (and the call half of `{{block}}`).
    Template {
        line: usize,
        name: String,
        pipe: Option<Pipe>,
    },
    Break {
        line: usize,
    },
    Continue {
        line: usize,
    },
}

/// Which control structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlKind {
    If,
    Range,
    With,
}

/// `{{if|range|with pipeline}} list {{else}} else_list {{end}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Control {
    pub kind: ControlKind,
    pub line: usize,
    pub pipe: Pipe,
    pub list: List,
    pub else_list: Option<List>,
}

/// `$x := cmd | cmd | ...`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipe {
    pub line: usize,
    /// `=` rather than `:=`.
    pub is_assign: bool,
    /// The variables declared or assigned, as written (`$x`).
    pub decl: Vec<String>,
    pub cmds: Vec<Command>,
}

/// One command of a pipeline: an operand and its arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub line: usize,
    pub args: Vec<Arg>,
}

/// An operand.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// A function name.
    Identifier(String),
    Dot,
    Nil,
    /// `$x.A.B`: the variable then fields.
    Variable(Vec<String>),
    /// `.A.B`.
    Field(Vec<String>),
    /// `(pipeline).A.B` or `func.A` — a term then fields.
    Chain(Box<Arg>, Vec<String>),
    Bool(bool),
    Number(Number),
    /// The unquoted value.
    Str(String),
    /// `(pipeline)`.
    Pipe(Pipe),
}

/// A numeric constant, stored under every type that can represent it (Go's `NumberNode`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Number {
    pub text: String,
    pub is_int: bool,
    pub is_uint: bool,
    pub is_float: bool,
    pub is_complex: bool,
    pub int: i64,
    pub uint: u64,
    pub float: f64,
}

impl Arg {
    /// The argument as Go's parse tree prints it (in error messages).
    pub fn go_string(&self) -> String {
        match self {
            Arg::Identifier(name) => name.clone(),
            Arg::Dot => ".".into(),
            Arg::Nil => "nil".into(),
            Arg::Variable(parts) => parts.join("."),
            Arg::Field(parts) => parts.iter().map(|p| format!(".{p}")).collect(),
            Arg::Chain(node, fields) => {
                let mut s = match node.as_ref() {
                    Arg::Pipe(p) => format!("({})", p.go_string()),
                    other => other.go_string(),
                };
                for f in fields {
                    s.push('.');
                    s.push_str(f);
                }
                s
            }
            Arg::Bool(b) => b.to_string(),
            Arg::Number(n) => n.text.clone(),
            Arg::Str(s) => format!("{s:?}"),
            Arg::Pipe(p) => format!("({})", p.go_string()),
        }
    }
}

impl Pipe {
    /// The pipeline as Go's parse tree prints it.
    pub fn go_string(&self) -> String {
        let mut s = String::new();
        if !self.decl.is_empty() {
            s.push_str(&self.decl.join(", "));
            s.push_str(if self.is_assign { " = " } else { " := " });
        }
        let cmds: Vec<String> = self
            .cmds
            .iter()
            .map(|c| {
                c.args
                    .iter()
                    .map(Arg::go_string)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        s.push_str(&cmds.join(" | "));
        s
    }
}
