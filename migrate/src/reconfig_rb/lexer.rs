//! Ruby tokens of the code inside one tag: the subset reconfig.rb templates use. Anything
//! else becomes an [`Unsupported`] naming what was found.

use super::ast::Unsupported;

/// One token, with the line (within the template) it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// What it is.
    pub kind: Tok,
    /// The template line it starts on, for reports.
    pub line: usize,
    /// Whether white space separates it from the token before.
    pub spaced: bool,
}

/// The kinds of token.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A name: local variable, method (with a trailing `?` or `!`) or keyword.
    Ident(String),
    /// `@name`.
    IVar(String),
    /// `Name`.
    Const(String),
    /// A decimal Integer literal.
    Int(i64),
    /// A string literal: text and `#{…}` pieces (each lexed on its own).
    Str(Vec<StrPiece>),
    /// `/source/flags` or `%r{source}flags`.
    Regex(String, String),
    /// `:name`.
    Symbol(String),
    /// An operator or punctuation.
    Punct(&'static str),
    /// A line break or `;`: ends a statement.
    Newline,
}

/// A piece of a string literal.
#[derive(Debug, Clone, PartialEq)]
pub enum StrPiece {
    /// Literal text, escapes resolved.
    Text(String),
    /// The tokens of a `#{…}`.
    Code(Vec<Token>),
}

/// Operators, longest first.
const PUNCT: &[&str] = &[
    "**=", "<=>", "===", "...", "&&=", "||=", "==", "!=", "<=", ">=", "&&", "||", "+=", "-=", "*=",
    "/=", "::", "..", "=~", "!~", "<<", ">>", "&.", "=>", "->", "(", ")", "[", "]", "{", "}", "|",
    ",", ".", "!", "<", ">", "+", "-", "*", "/", "%", "?", ":", "=", "&", "^", "~",
];

/// Tokens of `code`, which starts on `line`.
pub fn lex(code: &str, line: usize) -> Result<Vec<Token>, Unsupported> {
    Lexer {
        chars: code.chars().collect(),
        pos: 0,
        line,
        trailing_comment: false,
    }
    .run()
}

/// Tokens of the code of a statement tag alone on its line, where a `#` comment may run to
/// the end of the code: Erubis put the line end right after it.
pub fn lex_line(code: &str, line: usize) -> Result<Vec<Token>, Unsupported> {
    Lexer {
        chars: code.chars().collect(),
        pos: 0,
        line,
        trailing_comment: true,
    }
    .run()
}

struct Lexer {
    /// Whether a comment may end the code (else it must end at a line break in it: Erubis
    /// wrote more code after the tag on the same line, which the comment would swallow).
    trailing_comment: bool,
    chars: Vec<char>,
    pos: usize,
    line: usize,
}

impl Lexer {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    fn unsupported(&self, construct: impl Into<String>, instead: impl Into<String>) -> Unsupported {
        Unsupported::new(self.line, construct, instead)
    }

    fn run(mut self) -> Result<Vec<Token>, Unsupported> {
        let mut out: Vec<Token> = vec![];
        let mut spaced = true;
        while let Some(c) = self.peek(0) {
            let line = self.line;
            let kind = match c {
                ' ' | '\t' | '\r' => {
                    self.pos += 1;
                    spaced = true;
                    continue;
                }
                '\\' if self.peek(1) == Some('\n') => {
                    self.pos += 2;
                    self.line += 1;
                    spaced = true;
                    continue;
                }
                '\n' | ';' => {
                    self.pos += 1;
                    if c == '\n' {
                        self.line += 1;
                    }
                    Tok::Newline
                }
                '#' => {
                    match self.chars[self.pos..].iter().position(|c| *c == '\n') {
                        Some(end) => self.pos += end,
                        None if self.trailing_comment => self.pos = self.chars.len(),
                        None => {
                            return Err(self.unsupported(
                                "a Ruby comment (`#`) ending a tag that shares its line (Erubis \
                                 commented out the code it wrote after the tag)",
                                "move the comment into its own `<%# … %>` tag",
                            ))
                        }
                    }
                    continue;
                }
                '"' | '`' => self.string(c)?,
                '\'' => self.single_quoted()?,
                '@' => {
                    self.pos += 1;
                    if self.peek(0) == Some('@') {
                        return Err(self.unsupported("a class variable (`@@`)", "use @reconfig"));
                    }
                    Tok::IVar(self.word())
                }
                ':' if self
                    .peek(1)
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && spaced_or_open(&out, spaced) =>
                {
                    self.pos += 1;
                    Tok::Symbol(self.word())
                }
                '/' if regex_allowed(&out, spaced, self.peek(1)) => self.regex('/')?,
                '%' if matches!(self.peek(1), Some('r' | 'w' | 'W' | 'q' | 'Q' | 'i' | 'I'))
                    && spaced_or_open(&out, spaced) =>
                {
                    for kind in self.percent_literal()? {
                        out.push(Token { kind, line, spaced });
                        spaced = false;
                    }
                    continue;
                }
                '0'..='9' => self.number()?,
                c if c.is_ascii_alphabetic() || c == '_' => {
                    let word = self.word();
                    if c.is_ascii_uppercase() {
                        Tok::Const(word)
                    } else {
                        let next = self.peek(0);
                        if matches!(next, Some('?' | '!')) && self.peek(1) != Some('=') {
                            self.pos += 1;
                            Tok::Ident(format!("{word}{}", next.unwrap_or(' ')))
                        } else {
                            Tok::Ident(word)
                        }
                    }
                }
                c if !c.is_ascii() => {
                    return Err(self.unsupported(
                        format!("the character {c:?} in Ruby code"),
                        "use ASCII names",
                    ))
                }
                _ => {
                    let rest: String = self.chars[self.pos..].iter().take(3).collect();
                    let Some(p) = PUNCT.iter().find(|p| rest.starts_with(**p)) else {
                        return Err(self.unsupported(
                            format!("the character {c:?} in Ruby code"),
                            "remove it",
                        ));
                    };
                    self.pos += p.chars().count();
                    Tok::Punct(p)
                }
            };
            out.push(Token { kind, line, spaced });
            spaced = false;
        }
        Ok(out)
    }

    fn word(&mut self) -> String {
        let start = self.pos;
        while self
            .peek(0)
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    fn number(&mut self) -> Result<Tok, Unsupported> {
        let start = self.pos;
        while self.peek(0).is_some_and(|c| {
            c.is_ascii_digit() || (c == '_' && self.peek(1).is_some_and(|d| d.is_ascii_digit()))
        }) {
            self.pos += 1;
        }
        if self.peek(0) == Some('.') && self.peek(1).is_some_and(|c| c.is_ascii_digit()) {
            return Err(self.unsupported("a Float literal", "use Integers"));
        }
        if self.peek(0).is_some_and(|c| c.is_ascii_alphabetic()) {
            return Err(self.unsupported(
                "a number literal with a prefix or suffix",
                "write it in decimal",
            ));
        }
        let digits: String = self.chars[start..self.pos]
            .iter()
            .filter(|c| **c != '_')
            .collect();
        let starts_zero = digits.len() > 1 && digits.starts_with('0');
        match digits.parse() {
            Ok(n) if !starts_zero => Ok(Tok::Int(n)),
            _ => Err(self.unsupported(
                format!("the number {digits} (octal or beyond 64 bits)"),
                "write it in decimal, within 64 bits",
            )),
        }
    }

    /// A single-quoted string: only `\\` and `\'` are escapes.
    fn single_quoted(&mut self) -> Result<Tok, Unsupported> {
        self.pos += 1;
        let mut text = String::new();
        loop {
            match self.peek(0) {
                None => return Err(self.unsupported("an unterminated string", "close it")),
                Some('\'') => {
                    self.pos += 1;
                    return Ok(Tok::Str(vec![StrPiece::Text(text)]));
                }
                Some('\\') if matches!(self.peek(1), Some('\\' | '\'')) => {
                    text.push(self.peek(1).unwrap_or('\\'));
                    self.pos += 2;
                }
                Some(c) => {
                    if c == '\n' {
                        self.line += 1;
                    }
                    text.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// A double-quoted string with escapes and `#{…}`.
    fn string(&mut self, quote: char) -> Result<Tok, Unsupported> {
        if quote == '`' {
            return Err(self.unsupported("a shell command (backticks)", "put the value in etcd"));
        }
        self.pos += 1;
        let mut pieces = vec![];
        let mut text = String::new();
        loop {
            match self.peek(0) {
                None => return Err(self.unsupported("an unterminated string", "close it")),
                Some('"') => {
                    self.pos += 1;
                    break;
                }
                Some('\\') => {
                    self.pos += 1;
                    let c = self
                        .peek(0)
                        .ok_or_else(|| self.unsupported("an unterminated string", "close it"))?;
                    self.pos += 1;
                    text.push(match c {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        's' => ' ',
                        'e' => '\x1b',
                        '0' => '\0',
                        'a' => '\x07',
                        'b' => '\x08',
                        'f' => '\x0c',
                        'v' => '\x0b',
                        '"' | '\\' | '#' | '\'' | '/' | ' ' => c,
                        '\n' => {
                            self.line += 1;
                            continue;
                        }
                        other => {
                            return Err(self.unsupported(
                                format!("the string escape \\{other}"),
                                "write the character itself",
                            ))
                        }
                    });
                }
                Some('#') if self.peek(1) == Some('{') => {
                    self.pos += 2;
                    let start = self.pos;
                    let line = self.line;
                    let mut depth = 1;
                    while depth > 0 {
                        match self.peek(0) {
                            None => {
                                return Err(self.unsupported("an unterminated `#{`", "close it"))
                            }
                            Some('{') => depth += 1,
                            Some('}') => depth -= 1,
                            Some(q @ ('"' | '\'')) => {
                                // A string inside the interpolation: skip to its end.
                                self.pos += 1;
                                while let Some(c) = self.peek(0).filter(|c| *c != q) {
                                    self.pos += if c == '\\' { 2 } else { 1 };
                                }
                                if self.peek(0).is_none() {
                                    return Err(
                                        self.unsupported("an unterminated string", "close it")
                                    );
                                }
                            }
                            Some('\n') => self.line += 1,
                            _ => {}
                        }
                        self.pos += 1;
                    }
                    let code: String = self.chars[start..self.pos - 1].iter().collect();
                    if !text.is_empty() {
                        pieces.push(StrPiece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(StrPiece::Code(lex(&code, line)?));
                }
                Some('#') if matches!(self.peek(1), Some('@' | '$')) => {
                    return Err(
                        self.unsupported("`#@var` / `#$var` interpolation", "write `#{@var}`")
                    )
                }
                Some(c) => {
                    if c == '\n' {
                        self.line += 1;
                    }
                    text.push(c);
                    self.pos += 1;
                }
            }
        }
        if !text.is_empty() || pieces.is_empty() {
            pieces.push(StrPiece::Text(text));
        }
        Ok(Tok::Str(pieces))
    }

    /// A regexp literal's source up to `close`, then its flags.
    fn regex(&mut self, close: char) -> Result<Tok, Unsupported> {
        self.pos += 1;
        let mut source = String::new();
        let open = match close {
            '}' => Some('{'),
            ')' => Some('('),
            ']' => Some('['),
            _ => None,
        };
        let mut depth = 0;
        loop {
            match self.peek(0) {
                None => return Err(self.unsupported("an unterminated regexp", "close it")),
                Some('\\') => {
                    source.push('\\');
                    source.extend(self.peek(1));
                    self.pos += 2;
                }
                Some('#') if self.peek(1) == Some('{') => {
                    return Err(self.unsupported(
                        "interpolation (`#{…}`) in a regexp",
                        "use a fixed regexp, or a string pattern",
                    ))
                }
                Some(c) if Some(c) == open => {
                    depth += 1;
                    source.push(c);
                    self.pos += 1;
                }
                Some(c) if c == close && depth == 0 => {
                    self.pos += 1;
                    break;
                }
                Some(c) => {
                    if c == close {
                        depth -= 1;
                    }
                    source.push(c);
                    self.pos += 1;
                }
            }
        }
        let flags = self.word();
        Ok(Tok::Regex(source, flags))
    }

    /// `%r{…}`, and the word-array literal `%w[…]` as the tokens of `["a", "b"]`.
    fn percent_literal(&mut self) -> Result<Vec<Tok>, Unsupported> {
        let kind = self.peek(1).unwrap_or(' ');
        let open = self.peek(2).unwrap_or(' ');
        let close = match open {
            '{' => '}',
            '(' => ')',
            '[' => ']',
            '<' => '>',
            '|' | '!' | '/' => open,
            _ => return Err(self.unsupported(format!("a %{kind} literal"), "use a plain literal")),
        };
        if kind == 'r' {
            self.pos += 2;
            return Ok(vec![self.regex(close)?]);
        }
        if kind != 'w' {
            return Err(self.unsupported(format!("a %{kind} literal"), "use a plain literal"));
        }
        self.pos += 3;
        let start = self.pos;
        while self.peek(0).is_some_and(|c| c != close) {
            if self.peek(0) == Some('\\') {
                return Err(self.unsupported("an escape in %w[…]", "write [\"…\", …]"));
            }
            if self.peek(0) == Some('\n') {
                self.line += 1;
            }
            self.pos += 1;
        }
        if self.peek(0).is_none() {
            return Err(self.unsupported("an unterminated %w literal", "close it"));
        }
        let words: String = self.chars[start..self.pos].iter().collect();
        self.pos += 1;
        let mut tokens = vec![Tok::Punct("[")];
        for (i, w) in words.split_whitespace().enumerate() {
            if i > 0 {
                tokens.push(Tok::Punct(","));
            }
            tokens.push(Tok::Str(vec![StrPiece::Text(w.to_string())]));
        }
        tokens.push(Tok::Punct("]"));
        Ok(tokens)
    }
}

/// Whether a `/` starts a regexp here rather than dividing: after an operator, an opening
/// bracket, a comma or the start; or after a space when no space follows (`split /,/`).
fn regex_allowed(before: &[Token], spaced: bool, next: Option<char>) -> bool {
    match before.last().map(|t| &t.kind) {
        None | Some(Tok::Newline) => true,
        Some(Tok::Punct(p)) => !matches!(*p, ")" | "]" | "}"),
        Some(Tok::Ident(_)) => spaced && next.is_some_and(|c| c != ' ' && c != '='),
        _ => false,
    }
}

/// Whether a `:name` / `%w` here is a literal rather than an operator.
fn spaced_or_open(before: &[Token], spaced: bool) -> bool {
    match before.last().map(|t| &t.kind) {
        None | Some(Tok::Newline) => true,
        Some(Tok::Punct(p)) => !matches!(*p, ")" | "]" | "}"),
        Some(Tok::Ident(_)) => spaced,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(code: &str) -> Vec<Tok> {
        lex(code, 1).unwrap().into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn method_names_keep_their_question_mark() {
        assert_eq!(
            kinds("x.nil? != y"),
            vec![
                Tok::Ident("x".into()),
                Tok::Punct("."),
                Tok::Ident("nil?".into()),
                Tok::Punct("!="),
                Tok::Ident("y".into())
            ]
        );
    }

    #[test]
    fn strings_interpolate_and_escape() {
        let Tok::Str(pieces) = &kinds(r#""a\t#{x}""#)[0] else {
            panic!("not a string")
        };
        assert_eq!(pieces[0], StrPiece::Text("a\t".into()));
        assert!(matches!(&pieces[1], StrPiece::Code(t) if t.len() == 1));
        assert_eq!(
            kinds(r"'a\n\''"),
            vec![Tok::Str(vec![StrPiece::Text("a\\n'".into())])]
        );
    }

    #[test]
    fn slash_is_a_regexp_or_a_division() {
        assert_eq!(
            kinds("x.split(/,\\s*/)")[4],
            Tok::Regex(",\\s*".into(), String::new())
        );
        assert_eq!(kinds("a / 2")[1], Tok::Punct("/"));
    }

    #[test]
    fn comments_end_at_a_line_break_or_a_line_of_their_own() {
        assert!(lex("x # note", 3).is_err());
        assert_eq!(lex("x # note\n", 3).unwrap().len(), 2);
        assert_eq!(lex_line(" x # note ", 3).unwrap().len(), 1);
    }
}
