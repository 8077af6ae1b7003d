//! The Ruby the converter understands, as a tree; and [`Unsupported`], what it reports for
//! the rest.

use std::fmt;

/// A Ruby construct the converter does not convert: where, what, and what to write
/// instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// The line in the template.
    pub line: usize,
    /// The Ruby construct found.
    pub construct: String,
    /// What the person should write instead.
    pub instead: String,
}

impl Unsupported {
    /// A problem at `line`.
    pub fn new(line: usize, construct: impl Into<String>, instead: impl Into<String>) -> Self {
        Unsupported {
            line,
            construct: construct.into(),
            instead: instead.into(),
        }
    }
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.construct, self.instead)
    }
}

/// A Ruby expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Nil,
    Bool(bool),
    Int(i64),
    /// A string literal; interpolated pieces are expressions.
    Str(Vec<Piece>),
    /// A regexp literal: source and flags.
    Regex(String, String),
    Array(Vec<Expr>),
    /// A local variable, or a method called without receiver or arguments.
    Name(String),
    /// `@name`.
    IVar(String),
    /// `Name` or `A::B`.
    Const(String),
    /// `recv.name(args) { |params| body }`, `name(args)`.
    Call {
        recv: Option<Box<Expr>>,
        name: String,
        args: Vec<Expr>,
        block: Option<Block>,
    },
    /// `recv[args]`.
    Index(Box<Expr>, Vec<Expr>),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    /// `a OP b` for `== != < > <= >= + - * / %`.
    Binary(&'static str, Box<Expr>, Box<Expr>),
    /// `c ? a : b`.
    Ternary(Box<Expr>, Box<Expr>, Box<Expr>),
}

/// A piece of a string literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    /// Literal text.
    Text(String),
    /// A `#{…}` expression.
    Code(Expr),
}

/// A block given to a call: `{ |params| body }` with a single expression as body.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// The parameter names.
    pub params: Vec<String>,
    /// The single expression it evaluates.
    pub body: Box<Expr>,
}

/// One statement of a statement tag; blocks open in one tag and end in another.
#[derive(Debug, Clone, PartialEq)]
pub enum Stmt {
    If(Expr),
    Unless(Expr),
    Elsif(Expr),
    Else,
    /// `end` or the `}` of a brace block.
    End,
    /// `recv.method do |params|` (or `{ |params|`), closed by a later `end`.
    Each {
        recv: Expr,
        method: String,
        args: Vec<Expr>,
        params: Vec<String>,
    },
    /// `for a, b in expr`.
    For(Vec<String>, Expr),
    /// `name = value` (`op` is `+` for `+=`, ...).
    Assign {
        name: String,
        op: Option<&'static str>,
        value: Expr,
    },
    Next,
    Break,
    /// `stmt if cond` / `stmt unless cond`.
    Modified {
        stmt: Box<Stmt>,
        cond: Expr,
        unless: bool,
    },
}

/// A statement with the line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Line<T> {
    /// The template line.
    pub line: usize,
    /// The statement.
    pub item: T,
}

/// What an expression tag holds: an expression, possibly with `if`/`unless` after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// What is printed.
    pub expr: Expr,
    /// `if cond` (false) or `unless cond` (true) after it.
    pub modifier: Option<(Expr, bool)>,
}
