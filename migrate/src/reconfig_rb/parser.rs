//! Parses the Ruby of one tag into [`Stmt`]s or an [`Output`], with Ruby's operator
//! precedence. A block that a statement tag opens (`.each do |x|`) is a statement of its
//! own, closed by the `end` of a later tag.

use super::ast::{Block, Expr, Line, Output, Piece, Stmt, Unsupported};
use super::lexer::{StrPiece, Tok, Token};

/// The statements of a statement tag.
pub fn statements(tokens: Vec<Token>, line: usize) -> Result<Vec<Line<Stmt>>, Unsupported> {
    let mut p = Parser::new(tokens, line);
    let mut out = vec![];
    loop {
        while p.eat_newline() {}
        if p.at_end() {
            return Ok(out);
        }
        let line = p.line();
        let stmt = p.statement()?;
        let opens_condition = matches!(stmt, Stmt::If(_) | Stmt::Unless(_) | Stmt::Elsif(_));
        out.push(Line { line, item: stmt });
        if opens_condition && p.eat_keyword("then") {
            continue;
        }
        if !(p.at_end()
            || p.eat_newline()
            || p.at_keyword(&["end", "else", "elsif"])
            || p.at_punct("}"))
        {
            return Err(p.unexpected());
        }
    }
}

/// The expression of an expression tag.
pub fn output(tokens: Vec<Token>, line: usize) -> Result<Output, Unsupported> {
    let mut p = Parser::new(tokens, line);
    while p.eat_newline() {}
    let expr = p.expr()?;
    if p.open_block.is_some() {
        return Err(Unsupported::new(
            line,
            "a block opened in an expression tag (`<%= list.each do |x| %>`)",
            "open loops in statement tags: `<% list.each do |x| %>`",
        ));
    }
    let modifier = p.modifier()?;
    while p.eat_newline() {}
    if !p.at_end() {
        return Err(p.unexpected());
    }
    Ok(Output { expr, modifier })
}

/// Drops the line breaks that do not end a statement: inside brackets, after an operator,
/// before a leading `.`.
fn joined(tokens: Vec<Token>) -> Vec<Token> {
    let mut out: Vec<Token> = vec![];
    let mut depth = 0i32;
    for (i, token) in tokens.iter().enumerate() {
        match &token.kind {
            Tok::Punct("(" | "[" | "{") => depth += 1,
            Tok::Punct(")" | "]" | "}") => depth -= 1,
            Tok::Newline => {
                let continues = depth > 0
                    || matches!(
                        out.last().map(|t| &t.kind),
                        Some(Tok::Punct(p)) if !matches!(*p, ")" | "]" | "}")
                    )
                    || matches!(out.last().map(|t| &t.kind), Some(Tok::Ident(k)) if k == "and" || k == "or" || k == "not")
                    || matches!(
                        tokens.get(i + 1).map(|t| &t.kind),
                        Some(Tok::Punct("." | "&."))
                    );
                if continues {
                    continue;
                }
            }
            _ => {}
        }
        out.push(token.clone());
    }
    out
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    last_line: usize,
    /// Set when the statement's last call opens a block left open for later tags.
    open_block: Option<Vec<String>>,
}

/// Ruby keywords a template expression cannot use as names.
const KEYWORDS: &[&str] = &[
    "if", "unless", "elsif", "else", "end", "do", "then", "and", "or", "not", "while", "until",
    "case", "when", "for", "in", "begin", "rescue", "ensure", "def", "class", "module", "return",
    "yield", "next", "break", "redo", "retry", "self", "super", "defined?", "__FILE__", "__LINE__",
    "alias", "undef", "lambda", "proc",
];

impl Parser {
    fn new(tokens: Vec<Token>, line: usize) -> Parser {
        Parser {
            tokens: joined(tokens),
            pos: 0,
            last_line: line,
            open_block: None,
        }
    }

    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|t| &t.kind)
    }

    fn peek_at(&self, ahead: usize) -> Option<&Tok> {
        self.tokens.get(self.pos + ahead).map(|t| &t.kind)
    }

    fn line(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.last_line, |t| t.line)
    }

    fn spaced(&self) -> bool {
        self.tokens.get(self.pos).is_some_and(|t| t.spaced)
    }

    fn next(&mut self) -> Option<Tok> {
        let token = self.tokens.get(self.pos).cloned()?;
        self.pos += 1;
        self.last_line = token.line;
        Some(token.kind)
    }

    fn at_end(&self) -> bool {
        self.pos >= self.tokens.len()
    }

    fn at_punct(&self, p: &str) -> bool {
        matches!(self.peek(), Some(Tok::Punct(q)) if *q == p)
    }

    fn eat_punct(&mut self, p: &str) -> bool {
        let found = self.at_punct(p);
        if found {
            self.pos += 1;
        }
        found
    }

    fn at_keyword(&self, words: &[&str]) -> bool {
        matches!(self.peek(), Some(Tok::Ident(w)) if words.contains(&w.as_str()))
    }

    fn eat_keyword(&mut self, word: &str) -> bool {
        let found = self.at_keyword(&[word]);
        if found {
            self.pos += 1;
        }
        found
    }

    fn eat_newline(&mut self) -> bool {
        let found = self.peek() == Some(&Tok::Newline);
        if found {
            self.pos += 1;
        }
        found
    }

    fn expect_punct(&mut self, p: &str) -> Result<(), Unsupported> {
        if self.eat_punct(p) {
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn unsupported(&self, construct: impl Into<String>, instead: impl Into<String>) -> Unsupported {
        Unsupported::new(self.line(), construct, instead)
    }

    /// The token here, described for a report.
    fn unexpected(&self) -> Unsupported {
        let found = match self.peek() {
            None | Some(Tok::Newline) => "the end of the tag".to_string(),
            Some(Tok::Ident(w)) => format!("`{w}`"),
            Some(Tok::Punct(p)) => format!("`{p}`"),
            Some(Tok::Const(c)) => format!("`{c}`"),
            Some(Tok::IVar(v)) => format!("`@{v}`"),
            Some(Tok::Int(n)) => format!("`{n}`"),
            Some(Tok::Str(_)) => "a string".to_string(),
            Some(Tok::Regex(..)) => "a regexp".to_string(),
            Some(Tok::Symbol(s)) => format!("the Symbol `:{s}`"),
        };
        self.unsupported(
            format!("Ruby this converter does not follow (at {found})"),
            "rewrite the tag in Tera (see docs/migration.md)",
        )
    }

    fn statement(&mut self) -> Result<Stmt, Unsupported> {
        let stmt = self.bare_statement()?;
        match self.modifier()? {
            None => Ok(stmt),
            Some((cond, unless)) => Ok(Stmt::Modified {
                stmt: Box::new(stmt),
                cond,
                unless,
            }),
        }
    }

    /// `if cond` / `unless cond` after an expression or statement.
    fn modifier(&mut self) -> Result<Option<(Expr, bool)>, Unsupported> {
        for (word, unless) in [("if", false), ("unless", true)] {
            if self.eat_keyword(word) {
                return Ok(Some((self.expr()?, unless)));
            }
        }
        if self.at_keyword(&["while", "until", "rescue"]) {
            return Err(self.unsupported(
                "a `while`/`until`/`rescue` modifier",
                "use a loop over a list (`.each do |x|`) or a condition",
            ));
        }
        Ok(None)
    }

    fn bare_statement(&mut self) -> Result<Stmt, Unsupported> {
        if let Some(Tok::Ident(word)) = self.peek().cloned() {
            match word.as_str() {
                "if" | "unless" | "elsif" => {
                    self.pos += 1;
                    let cond = self.expr()?;
                    return Ok(match word.as_str() {
                        "if" => Stmt::If(cond),
                        "unless" => Stmt::Unless(cond),
                        _ => Stmt::Elsif(cond),
                    });
                }
                "else" => {
                    self.pos += 1;
                    return Ok(Stmt::Else);
                }
                "end" => {
                    self.pos += 1;
                    if self.at_punct(".") || self.at_punct("&.") {
                        return Err(self.unsupported(
                            "a method called on a block's `end`",
                            "assign the block's result to a variable in one tag (`x = list.map { |i| … }`)",
                        ));
                    }
                    return Ok(Stmt::End);
                }
                "next" | "break" => {
                    self.pos += 1;
                    return Ok(if word == "next" {
                        Stmt::Next
                    } else {
                        Stmt::Break
                    });
                }
                "for" => return self.for_loop(),
                "case" | "when" => {
                    return Err(self.unsupported(
                        "`case`/`when`",
                        "write `if x == \"a\"` … `elsif x == \"b\"` … `else` … `end`",
                    ))
                }
                "while" | "until" | "loop" => {
                    return Err(self.unsupported(
                        format!("a `{word}` loop"),
                        "loop over a list (`.each do |x|`, `.each_with_index`, `n.times do |i|`)",
                    ))
                }
                "puts" | "print" | "p" | "printf" => {
                    return Err(self.unsupported(
                        format!("`{word}` (it writes to reconfig.rb's stdout, not the file)"),
                        "print with an expression tag `<%= … %>`, or remove it",
                    ))
                }
                "def" | "class" | "module" | "begin" | "require" | "load" => {
                    return Err(self.unsupported(
                        format!("`{word}`"),
                        "keep templates to expressions, conditions and loops",
                    ))
                }
                _ => {}
            }
        }
        if self.at_punct("}") {
            self.pos += 1;
            return Ok(Stmt::End);
        }
        let line = self.line();
        let target = self.expr()?;
        if let Some(params) = self.open_block.take() {
            return match target {
                Expr::Call {
                    recv: Some(recv),
                    name,
                    args,
                    block: None,
                } if self.at_end_of_statement() => Ok(Stmt::Each {
                    recv: *recv,
                    method: name,
                    args,
                    params,
                }),
                _ => Err(Unsupported::new(
                    line,
                    "a block opened here inside a larger expression",
                    "open the loop on its own: `<% list.each do |x| %>`",
                )),
            };
        }
        let op = match self.peek() {
            Some(Tok::Punct("=")) => None,
            Some(Tok::Punct("+=")) => Some("+"),
            Some(Tok::Punct("-=")) => Some("-"),
            Some(Tok::Punct("*=")) => Some("*"),
            Some(Tok::Punct(p @ ("||=" | "&&=" | "/=" | "**=" | "<<"))) => {
                return Err(self.unsupported(
                    format!("`{p}` on a variable"),
                    "assign the new value with `x = …`",
                ))
            }
            Some(Tok::Punct(",")) => {
                return Err(
                    self.unsupported("multiple assignment", "assign one variable per statement")
                )
            }
            _ => {
                return Err(Unsupported::new(
                    line,
                    "a statement that is not an assignment, condition or loop",
                    "print values with `<%= … %>`; keep `<% %>` for `if`, loops and `x = …`",
                ))
            }
        };
        self.pos += 1;
        let Expr::Name(name) = target else {
            return Err(Unsupported::new(
                line,
                "assignment to something other than a local variable",
                "build the value in a new variable (`x = …`)",
            ));
        };
        let value = self.expr()?;
        if self.open_block.is_some() {
            return Err(self.unsupported(
                "a block left open in an assignment",
                "close the block in the same tag",
            ));
        }
        Ok(Stmt::Assign { name, op, value })
    }

    fn at_end_of_statement(&self) -> bool {
        matches!(self.peek(), None | Some(Tok::Newline))
    }

    /// `for a, b in expr [do]`.
    fn for_loop(&mut self) -> Result<Stmt, Unsupported> {
        self.pos += 1;
        let mut vars = vec![];
        loop {
            match self.next() {
                Some(Tok::Ident(name)) if !KEYWORDS.contains(&name.as_str()) => vars.push(name),
                _ => return Err(self.unexpected()),
            }
            if !self.eat_punct(",") {
                break;
            }
        }
        if !self.eat_keyword("in") {
            return Err(self.unexpected());
        }
        let list = self.expr()?;
        self.eat_keyword("do");
        Ok(Stmt::For(vars, list))
    }

    /// The full expression grammar: `not`, `and`/`or` at the bottom.
    fn expr(&mut self) -> Result<Expr, Unsupported> {
        let mut left = self.not_expr()?;
        loop {
            if self.eat_keyword("and") {
                left = Expr::And(Box::new(left), Box::new(self.not_expr()?));
            } else if self.eat_keyword("or") {
                left = Expr::Or(Box::new(left), Box::new(self.not_expr()?));
            } else {
                return Ok(left);
            }
        }
    }

    fn not_expr(&mut self) -> Result<Expr, Unsupported> {
        if self.eat_keyword("not") {
            return Ok(Expr::Not(Box::new(self.not_expr()?)));
        }
        self.ternary()
    }

    fn ternary(&mut self) -> Result<Expr, Unsupported> {
        let cond = self.or()?;
        if !self.eat_punct("?") {
            return Ok(cond);
        }
        let yes = self.ternary()?;
        self.expect_punct(":")?;
        let no = self.ternary()?;
        Ok(Expr::Ternary(Box::new(cond), Box::new(yes), Box::new(no)))
    }

    fn or(&mut self) -> Result<Expr, Unsupported> {
        let mut left = self.and()?;
        while self.eat_punct("||") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, Unsupported> {
        let mut left = self.equality()?;
        while self.eat_punct("&&") {
            left = Expr::And(Box::new(left), Box::new(self.equality()?));
        }
        Ok(left)
    }

    fn equality(&mut self) -> Result<Expr, Unsupported> {
        let left = self.comparison()?;
        for op in ["==", "!="] {
            if self.eat_punct(op) {
                let right = self.comparison()?;
                return Ok(Expr::Binary(op, Box::new(left), Box::new(right)));
            }
        }
        if let Some(Tok::Punct(op @ ("=~" | "!~" | "===" | "<=>"))) = self.peek() {
            return Err(self.unsupported(
                format!("the `{op}` operator"),
                "compare with `==`, or test with `.include?`/`.start_with?`/`.end_with?`",
            ));
        }
        Ok(left)
    }

    fn comparison(&mut self) -> Result<Expr, Unsupported> {
        let mut left = self.bit_or()?;
        while let Some(Tok::Punct(op @ ("<" | ">" | "<=" | ">="))) = self.peek().cloned() {
            self.pos += 1;
            left = Expr::Binary(op, Box::new(left), Box::new(self.bit_or()?));
        }
        Ok(left)
    }

    fn bit_or(&mut self) -> Result<Expr, Unsupported> {
        let left = self.additive()?;
        if let Some(Tok::Punct(op @ ("|" | "&" | "^" | "<<" | ">>" | ".." | "..."))) = self.peek() {
            return Err(self.unsupported(
                format!("the `{op}` operator"),
                "use `+` to join strings or lists; ranges are not supported",
            ));
        }
        Ok(left)
    }

    fn additive(&mut self) -> Result<Expr, Unsupported> {
        let mut left = self.multiplicative()?;
        while let Some(Tok::Punct(op @ ("+" | "-"))) = self.peek().cloned() {
            self.pos += 1;
            left = Expr::Binary(op, Box::new(left), Box::new(self.multiplicative()?));
        }
        Ok(left)
    }

    fn multiplicative(&mut self) -> Result<Expr, Unsupported> {
        let mut left = self.unary()?;
        while let Some(Tok::Punct(op @ ("*" | "/" | "%"))) = self.peek().cloned() {
            self.pos += 1;
            left = Expr::Binary(op, Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, Unsupported> {
        if self.eat_punct("!") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.at_punct("-") {
            if let Some(Tok::Int(n)) = self.peek_at(1).cloned() {
                self.pos += 2;
                return self.postfix(Expr::Int(-n));
            }
            return Err(self.unsupported("unary minus on an expression", "write `0 - x`"));
        }
        let primary = self.primary()?;
        let expr = self.postfix(primary)?;
        if self.at_punct("**") {
            return Err(self.unsupported("`**`", "multiply with `*`"));
        }
        Ok(expr)
    }

    fn primary(&mut self) -> Result<Expr, Unsupported> {
        let line = self.line();
        match self.next() {
            Some(Tok::Int(n)) => Ok(Expr::Int(n)),
            Some(Tok::Str(pieces)) => self.string(pieces, line),
            Some(Tok::Regex(source, flags)) => Ok(Expr::Regex(source, flags)),
            Some(Tok::Symbol(s)) => Err(Unsupported::new(
                line,
                format!("the Symbol `:{s}`"),
                format!("reconfig.rb's hashes have String keys: write \"{s}\""),
            )),
            Some(Tok::IVar(name)) => Ok(Expr::IVar(name)),
            Some(Tok::Const(name)) => {
                let mut path = name;
                while self.at_punct("::") {
                    self.pos += 1;
                    match self.next() {
                        Some(Tok::Const(next)) => path = format!("{path}::{next}"),
                        _ => return Err(self.unexpected()),
                    }
                }
                Ok(Expr::Const(path))
            }
            Some(Tok::Punct("(")) => {
                while self.eat_newline() {}
                let inner = self.expr()?;
                self.expect_punct(")")?;
                Ok(inner)
            }
            Some(Tok::Punct("[")) => {
                let items = self.list("]")?;
                Ok(Expr::Array(items))
            }
            Some(Tok::Punct("{")) => Err(Unsupported::new(
                line,
                "a Hash literal",
                "build strings or lists instead; a Hash cannot be written in Tera",
            )),
            Some(Tok::Punct("->")) => Err(Unsupported::new(line, "a lambda", "inline its body")),
            Some(Tok::Ident(word)) => match word.as_str() {
                "nil" => Ok(Expr::Nil),
                "true" => Ok(Expr::Bool(true)),
                "false" => Ok(Expr::Bool(false)),
                w if KEYWORDS.contains(&w) => Err(Unsupported::new(
                    line,
                    format!("`{w}` inside an expression"),
                    "use `if`/loops as statements of their own tags",
                )),
                _ => {
                    if self.at_punct("(") && !self.spaced() {
                        self.pos += 1;
                        let args = self.list(")")?;
                        return Ok(Expr::Call {
                            recv: None,
                            name: word,
                            args,
                            block: None,
                        });
                    }
                    if self.command_args_follow() {
                        let args = self.command_args()?;
                        return Ok(Expr::Call {
                            recv: None,
                            name: word,
                            args,
                            block: None,
                        });
                    }
                    Ok(Expr::Name(word))
                }
            },
            _ => {
                self.pos = self.pos.saturating_sub(1);
                Err(self.unexpected())
            }
        }
    }

    fn string(&mut self, pieces: Vec<StrPiece>, line: usize) -> Result<Expr, Unsupported> {
        let mut out = vec![];
        for piece in pieces {
            match piece {
                StrPiece::Text(text) => out.push(Piece::Text(text)),
                StrPiece::Code(tokens) => {
                    let mut inner = Parser::new(tokens, line);
                    let expr = inner.expr()?;
                    if !inner.at_end() {
                        return Err(inner.unexpected());
                    }
                    out.push(Piece::Code(expr));
                }
            }
        }
        let mut expr = Expr::Str(out);
        // Adjacent literals concatenate: "a" "b".
        while let Some(Tok::Str(_)) = self.peek() {
            let Some(Tok::Str(more)) = self.next() else {
                unreachable!()
            };
            let Expr::Str(mut first) = expr else {
                unreachable!()
            };
            let Expr::Str(second) = self.string(more, line)? else {
                unreachable!()
            };
            first.extend(second);
            expr = Expr::Str(first);
        }
        Ok(expr)
    }

    /// Comma-separated expressions up to `close`.
    fn list(&mut self, close: &str) -> Result<Vec<Expr>, Unsupported> {
        let mut items = vec![];
        while self.eat_newline() {}
        if self.eat_punct(close) {
            return Ok(items);
        }
        loop {
            while self.eat_newline() {}
            if self.at_punct("*") || self.at_punct("&") {
                return Err(
                    self.unsupported("a splat (`*`/`&`) argument", "pass the values one by one")
                );
            }
            let item = self.ternary()?;
            if self.at_punct("=>") || matches!(self.peek(), Some(Tok::Punct(":"))) {
                return Err(self.unsupported("a Hash or keyword argument", "pass plain values"));
            }
            items.push(item);
            while self.eat_newline() {}
            if self.eat_punct(close) {
                return Ok(items);
            }
            self.expect_punct(",")?;
            if self.eat_punct(close) {
                return Ok(items);
            }
        }
    }

    /// Whether arguments without parentheses follow a method name (`x.join ", "`).
    fn command_args_follow(&self) -> bool {
        self.spaced()
            && matches!(
                self.peek(),
                Some(Tok::Str(_) | Tok::Int(_) | Tok::Regex(..) | Tok::IVar(_) | Tok::Const(_))
            )
            || self.spaced()
                && matches!(self.peek(), Some(Tok::Ident(w)) if !KEYWORDS.contains(&w.as_str()) && !matches!(w.as_str(), "and" | "or"))
    }

    /// Whether `-1` right after a method name is its argument, as Ruby reads `x.size -1`.
    fn negative_argument_follows(&self) -> bool {
        self.spaced()
            && self.at_punct("-")
            && matches!(self.tokens.get(self.pos + 1), Some(t) if !t.spaced && matches!(t.kind, Tok::Int(_)))
    }

    fn command_args(&mut self) -> Result<Vec<Expr>, Unsupported> {
        let mut args = vec![self.ternary()?];
        while self.eat_punct(",") {
            args.push(self.ternary()?);
        }
        Ok(args)
    }

    /// `.method(args) { block }`, `[index]`, `::Name` after an expression.
    fn postfix(&mut self, mut expr: Expr) -> Result<Expr, Unsupported> {
        loop {
            if self.at_punct("[") && !self.spaced() {
                self.pos += 1;
                let args = self.list("]")?;
                expr = Expr::Index(Box::new(expr), args);
            } else if self.at_punct("&.") {
                return Err(self.unsupported(
                    "safe navigation (`&.`)",
                    "test for nil first: `x.nil? ? \"\" : x.method`",
                ));
            } else if self.at_punct(".")
                || self.at_punct("::") && matches!(self.peek_at(1), Some(Tok::Ident(_)))
            {
                self.pos += 1;
                let name = match self.next() {
                    Some(Tok::Ident(name)) => name,
                    Some(Tok::Const(name)) => name,
                    _ => return Err(self.unexpected()),
                };
                let args = if self.at_punct("(") && !self.spaced() {
                    self.pos += 1;
                    self.list(")")?
                } else if self.command_args_follow() || self.negative_argument_follows() {
                    self.command_args()?
                } else {
                    vec![]
                };
                let block = self.block()?;
                expr = Expr::Call {
                    recv: Some(Box::new(expr)),
                    name,
                    args,
                    block,
                };
                if self.open_block.is_some() {
                    return Ok(expr);
                }
            } else {
                return Ok(expr);
            }
        }
    }

    /// A block after a call: `{ |p| expr }` or `do |p| expr end`; or, when the tag ends
    /// right after the parameters, a block left open ([`Parser::open_block`]).
    fn block(&mut self) -> Result<Option<Block>, Unsupported> {
        let close = if self.at_punct("{") {
            "}"
        } else if self.at_keyword(&["do"]) {
            "end"
        } else {
            return Ok(None);
        };
        self.pos += 1;
        let mut params = vec![];
        if self.eat_punct("|") {
            loop {
                match self.next() {
                    Some(Tok::Ident(name)) if !KEYWORDS.contains(&name.as_str()) => {
                        params.push(name)
                    }
                    Some(Tok::Punct("(" | "*" | "&")) => {
                        return Err(self.unsupported(
                            "destructuring or splat block parameters",
                            "take plain parameters (`|k, v|`) and index the parts",
                        ))
                    }
                    _ => return Err(self.unexpected()),
                }
                if self.eat_punct("|") {
                    break;
                }
                self.expect_punct(",")?;
            }
        }
        while self.eat_newline() {}
        if self.at_end() {
            self.open_block = Some(params);
            return Ok(None);
        }
        let body = self.expr()?;
        while self.eat_newline() {}
        let closed = if close == "}" {
            self.eat_punct("}")
        } else {
            self.eat_keyword("end")
        };
        if !closed {
            return Err(self.unsupported(
                "a block with more than one expression",
                "give the block a single expression, or loop with `.each do |x|` in statement tags",
            ));
        }
        Ok(Some(Block {
            params,
            body: Box::new(body),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::lexer::lex;
    use super::*;

    fn stmts(code: &str) -> Vec<Stmt> {
        statements(lex(code, 1).unwrap(), 1)
            .unwrap()
            .into_iter()
            .map(|l| l.item)
            .collect()
    }

    fn out(code: &str) -> Output {
        output(lex(code, 1).unwrap(), 1).unwrap()
    }

    #[test]
    fn open_blocks_are_loop_statements() {
        let s = stmts(r#" @reconfig["data"].keys.sort.each do |x| "#);
        let [Stmt::Each { method, params, .. }] = s.as_slice() else {
            panic!("{s:?}")
        };
        assert_eq!(
            (method.as_str(), params.as_slice()),
            ("each", &["x".to_string()][..])
        );
        assert_eq!(stmts("end"), vec![Stmt::End]);
        assert!(matches!(
            stmts("x.each { |k, v|").as_slice(),
            [Stmt::Each { .. }]
        ));
    }

    #[test]
    fn precedence_follows_ruby() {
        let o = out("a || b && !c == d");
        let Expr::Or(_, right) = o.expr else { panic!() };
        assert!(matches!(*right, Expr::And(..)));
        let o = out("x.empty? ? \"none\" : x.join(\",\")");
        assert!(matches!(o.expr, Expr::Ternary(..)));
    }

    #[test]
    fn inline_blocks_and_modifiers() {
        let o = out("list.map { |x| x.upcase }.join(\" \") if show");
        assert!(o.modifier.is_some());
        let s = stmts("if a then b = 1 end");
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn a_negative_number_after_a_method_name_is_its_argument() {
        let Expr::Call { name, args, .. } = out("x.size -1").expr else {
            panic!("not a call")
        };
        assert_eq!(
            (name.as_str(), args.as_slice()),
            ("size", &[Expr::Int(-1)][..])
        );
        assert!(matches!(out("x.size - 1").expr, Expr::Binary("-", ..)));
    }

    #[test]
    fn unsupported_constructs_are_reported_with_advice() {
        let e = statements(lex("case x", 4).unwrap(), 4).unwrap_err();
        assert_eq!(e.line, 4);
        assert!(e.instead.contains("elsif"));
        assert!(output(lex("x[:a]", 1).unwrap(), 1).is_err());
    }
}
