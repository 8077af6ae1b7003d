//! Go's `text/template/parse` parser (Go 1.19's parse.go): the items of the lexer into the
//! trees of a template set — the file's own tree and each `{{define}}`/`{{block}}` — with
//! Go's parse-time errors (undefined functions and variables, `{{break}}` outside
//! `{{range}}`, malformed pipelines, a name defined twice).

use std::collections::BTreeMap;

use super::ast::{Arg, Command, Control, ControlKind, List, Node, Pipe};
use super::lexer::{lex, Item, ItemType};
use super::strconv;

/// Why Go refuses a template: `template: NAME:LINE: message` in Go's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// The trees of one parsed file, by template name.
pub type Trees = BTreeMap<String, List>;

/// What a body ended with.
enum End {
    End,
    Else,
}

struct Parser<'a> {
    items: Vec<Item>,
    at: usize,
    last_line: usize,
    vars: Vec<String>,
    range_depth: usize,
    action_line: usize,
    has_function: &'a dyn Fn(&str) -> bool,
    trees: Trees,
}

type Result<T> = std::result::Result<T, ParseError>;

/// Parses `text`, the template `name`, with the functions `has_function` knows besides
/// Go's builtins.
pub fn parse(name: &str, text: &str, has_function: &dyn Fn(&str) -> bool) -> Result<Trees> {
    let mut p = Parser {
        items: lex(text),
        at: 0,
        last_line: 1,
        vars: vec!["$".into()],
        range_depth: 0,
        action_line: 0,
        has_function,
        trees: Trees::new(),
    };
    let root = p.parse_top()?;
    p.add(name.to_string(), root)?;
    Ok(p.trees)
}

const BUILTINS: &[&str] = &[
    "and", "call", "html", "index", "slice", "js", "len", "not", "or", "print", "printf",
    "println", "urlquery", "eq", "ge", "gt", "le", "lt", "ne",
];

/// Whether a body holds only space and comments (Go's `IsEmptyTree`).
pub fn is_empty(list: &List) -> bool {
    list.iter().all(|n| match n {
        Node::Text(t) => t.trim().is_empty(),
        _ => false,
    })
}

impl Parser<'_> {
    fn item(&self, at: usize) -> &Item {
        &self.items[at.min(self.items.len() - 1)]
    }

    fn next(&mut self) -> Item {
        let item = self.item(self.at).clone();
        self.at += 1;
        self.last_line = item.line;
        item
    }

    fn backup(&mut self) {
        self.at -= 1;
    }

    fn peek(&self) -> Item {
        self.item(self.at).clone()
    }

    fn next_non_space(&mut self) -> Item {
        loop {
            let item = self.next();
            if item.typ != ItemType::Space {
                return item;
            }
        }
    }

    fn peek_non_space(&mut self) -> Item {
        let save = self.at;
        let item = self.next_non_space();
        self.at = save;
        item
    }

    fn errorf(&self, message: impl Into<String>) -> ParseError {
        ParseError {
            line: self.last_line,
            message: message.into(),
        }
    }

    fn unexpected(&self, token: &Item, context: &str) -> ParseError {
        if token.typ == ItemType::Error {
            let mut extra = String::new();
            if self.action_line != 0 && self.action_line != token.line {
                extra = format!(" in action started at line {}", self.action_line);
                if token.val.ends_with(" action") {
                    extra = extra[" in action".len()..].to_string();
                }
            }
            return ParseError {
                line: token.line,
                message: format!("{token}{extra}"),
            };
        }
        ParseError {
            line: token.line,
            message: format!("unexpected {token} in {context}"),
        }
    }

    fn expect(&mut self, expected: ItemType, context: &str) -> Result<Item> {
        let token = self.next_non_space();
        if token.typ != expected {
            return Err(self.unexpected(&token, context));
        }
        Ok(token)
    }

    /// Go's `Tree.add`: a name may be defined twice only if one body is empty.
    fn add(&mut self, name: String, root: List) -> Result<()> {
        match self.trees.get(&name) {
            Some(old) if !is_empty(old) => {
                if !is_empty(&root) {
                    return Err(self.errorf(format!(
                        "template: multiple definition of template {name:?}"
                    )));
                }
                Ok(())
            }
            _ => {
                self.trees.insert(name, root);
                Ok(())
            }
        }
    }

    fn parse_top(&mut self) -> Result<List> {
        let mut root = vec![];
        while self.peek().typ != ItemType::Eof {
            if self.peek().typ == ItemType::LeftDelim {
                let save = self.at;
                self.next();
                if self.next_non_space().typ == ItemType::Define {
                    self.parse_definition()?;
                    continue;
                }
                self.at = save;
            }
            match self.text_or_action()? {
                Parsed::Node(n) => root.push(n),
                Parsed::End => return Err(self.errorf("unexpected {{end}}")),
                Parsed::Else => return Err(self.errorf("unexpected {{else}}")),
            }
        }
        Ok(root)
    }

    fn parse_definition(&mut self) -> Result<()> {
        let context = "define clause";
        let token = self.next_non_space();
        if !matches!(token.typ, ItemType::String | ItemType::RawString) {
            return Err(self.unexpected(&token, context));
        }
        let name = strconv::unquote(&token.val).map_err(|e| self.errorf(e.0))?;
        self.expect(ItemType::RightDelim, context)?;
        let list = self.own_tree(context)?;
        self.add(name, list)
    }

    /// The body of a `{{define}}` or `{{block}}`: a tree of its own, with only `$` in
    /// scope and outside every `{{range}}`.
    fn own_tree(&mut self, context: &str) -> Result<List> {
        let outer = (
            std::mem::replace(&mut self.vars, vec!["$".into()]),
            std::mem::take(&mut self.range_depth),
        );
        let (list, end) = self.item_list()?;
        if let End::Else = end {
            return Err(self.errorf(format!("unexpected {{{{else}}}} in {context}")));
        }
        (self.vars, self.range_depth) = outer;
        Ok(list)
    }

    fn item_list(&mut self) -> Result<(List, End)> {
        let mut list = vec![];
        while self.peek_non_space().typ != ItemType::Eof {
            match self.text_or_action()? {
                Parsed::Node(n) => list.push(n),
                Parsed::End => return Ok((list, End::End)),
                Parsed::Else => return Ok((list, End::Else)),
            }
        }
        Err(self.errorf("unexpected EOF"))
    }

    fn text_or_action(&mut self) -> Result<Parsed> {
        let token = self.next_non_space();
        match token.typ {
            ItemType::Text => Ok(Parsed::Node(Node::Text(token.val))),
            ItemType::LeftDelim => {
                self.action_line = token.line;
                let result = self.action();
                self.action_line = 0;
                result
            }
            _ => Err(self.unexpected(&token, "input")),
        }
    }

    fn action(&mut self) -> Result<Parsed> {
        let token = self.next_non_space();
        match token.typ {
            ItemType::Block => return self.block_control().map(Parsed::Node),
            ItemType::Break | ItemType::Continue => {
                let what = if token.typ == ItemType::Break {
                    "break"
                } else {
                    "continue"
                };
                let next = self.next_non_space();
                if next.typ != ItemType::RightDelim {
                    return Err(self.unexpected(&next, &format!("{{{{{what}}}}}")));
                }
                if self.range_depth == 0 {
                    return Err(self.errorf(format!("{{{{{what}}}}} outside {{{{range}}}}")));
                }
                let line = token.line;
                return Ok(Parsed::Node(if token.typ == ItemType::Break {
                    Node::Break { line }
                } else {
                    Node::Continue { line }
                }));
            }
            ItemType::Else => {
                let peek = self.peek_non_space();
                if peek.typ == ItemType::If {
                    return Ok(Parsed::Else);
                }
                self.expect(ItemType::RightDelim, "else")?;
                return Ok(Parsed::Else);
            }
            ItemType::End => {
                self.expect(ItemType::RightDelim, "end")?;
                return Ok(Parsed::End);
            }
            ItemType::If => return self.control(ControlKind::If).map(Parsed::Node),
            ItemType::Range => return self.control(ControlKind::Range).map(Parsed::Node),
            ItemType::With => return self.control(ControlKind::With).map(Parsed::Node),
            ItemType::Template => return self.template_control().map(Parsed::Node),
            _ => {}
        }
        self.backup();
        let token = self.peek();
        let pipe = self.pipeline("command", ItemType::RightDelim)?;
        Ok(Parsed::Node(Node::Action {
            line: token.line,
            pipe,
        }))
    }

    fn pipeline(&mut self, context: &str, end: ItemType) -> Result<Pipe> {
        let token = self.peek_non_space();
        let mut pipe = Pipe {
            line: token.line,
            is_assign: false,
            decl: vec![],
            cmds: vec![],
        };
        'decls: loop {
            let v = self.peek_non_space();
            if v.typ != ItemType::Variable {
                break;
            }
            let save = self.at;
            self.next_non_space();
            let next = self.peek_non_space();
            match next.typ {
                ItemType::Assign | ItemType::Declare => {
                    pipe.is_assign = next.typ == ItemType::Assign;
                    self.next_non_space();
                    pipe.decl.push(v.val.clone());
                    self.vars.push(v.val);
                    break;
                }
                ItemType::Char if next.val == "," => {
                    self.next_non_space();
                    pipe.decl.push(v.val.clone());
                    self.vars.push(v.val);
                    if context == "range" && pipe.decl.len() < 2 {
                        match self.peek_non_space().typ {
                            ItemType::Variable | ItemType::RightDelim | ItemType::RightParen => {
                                continue 'decls
                            }
                            _ => return Err(self.errorf("range can only initialize variables")),
                        }
                    }
                    return Err(self.errorf(format!("too many declarations in {context}")));
                }
                _ => {
                    self.at = save;
                    break;
                }
            }
        }
        loop {
            let token = self.next_non_space();
            match token.typ {
                t if t == end => {
                    self.check_pipeline(&pipe, context)?;
                    return Ok(pipe);
                }
                ItemType::Bool
                | ItemType::CharConstant
                | ItemType::Complex
                | ItemType::Dot
                | ItemType::Field
                | ItemType::Identifier
                | ItemType::Number
                | ItemType::Nil
                | ItemType::RawString
                | ItemType::String
                | ItemType::Variable
                | ItemType::LeftParen => {
                    self.backup();
                    let cmd = self.command()?;
                    pipe.cmds.push(cmd);
                }
                _ => return Err(self.unexpected(&token, context)),
            }
        }
    }

    fn check_pipeline(&self, pipe: &Pipe, context: &str) -> Result<()> {
        if pipe.cmds.is_empty() {
            return Err(self.errorf(format!("missing value for {context}")));
        }
        for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
            if matches!(
                c.args[0],
                Arg::Bool(_) | Arg::Dot | Arg::Nil | Arg::Number(_) | Arg::Str(_)
            ) {
                return Err(self.errorf(format!(
                    "non executable command in pipeline stage {}",
                    i + 1
                )));
            }
        }
        Ok(())
    }

    fn control(&mut self, kind: ControlKind) -> Result<Node> {
        let context = match kind {
            ControlKind::If => "if",
            ControlKind::Range => "range",
            ControlKind::With => "with",
        };
        let vars = self.vars.len();
        let pipe = self.pipeline(context, ItemType::RightDelim)?;
        if kind == ControlKind::Range {
            self.range_depth += 1;
        }
        let (list, end) = self.item_list()?;
        if kind == ControlKind::Range {
            self.range_depth -= 1;
        }
        let mut else_list = None;
        if let End::Else = end {
            if kind == ControlKind::If && self.peek_non_space().typ == ItemType::If {
                self.next_non_space();
                else_list = Some(vec![self.control(ControlKind::If)?]);
            } else {
                let (list, end) = self.item_list()?;
                if let End::Else = end {
                    return Err(self.errorf("expected end; found {{else}}"));
                }
                else_list = Some(list);
            }
        }
        self.vars.truncate(vars);
        Ok(Node::Control(Box::new(Control {
            kind,
            line: pipe.line,
            pipe,
            list,
            else_list,
        })))
    }

    fn template_name(&mut self, token: &Item, context: &str) -> Result<String> {
        match token.typ {
            ItemType::String | ItemType::RawString => {
                strconv::unquote(&token.val).map_err(|e| self.errorf(e.0))
            }
            _ => Err(self.unexpected(token, context)),
        }
    }

    fn block_control(&mut self) -> Result<Node> {
        let context = "block clause";
        let token = self.next_non_space();
        let name = self.template_name(&token, context)?;
        let pipe = self.pipeline(context, ItemType::RightDelim)?;
        let list = self.own_tree(context)?;
        self.add(name.clone(), list)?;
        Ok(Node::Template {
            line: token.line,
            name,
            pipe: Some(pipe),
        })
    }

    fn template_control(&mut self) -> Result<Node> {
        let context = "template clause";
        let token = self.next_non_space();
        let name = self.template_name(&token, context)?;
        let pipe = if self.next_non_space().typ != ItemType::RightDelim {
            self.backup();
            Some(self.pipeline(context, ItemType::RightDelim)?)
        } else {
            None
        };
        Ok(Node::Template {
            line: token.line,
            name,
            pipe,
        })
    }

    fn command(&mut self) -> Result<Command> {
        let line = self.peek_non_space().line;
        let mut cmd = Command { line, args: vec![] };
        loop {
            self.peek_non_space();
            if let Some(operand) = self.operand()? {
                cmd.args.push(operand);
            }
            let token = self.next();
            match token.typ {
                ItemType::Space => continue,
                ItemType::RightDelim | ItemType::RightParen => self.backup(),
                ItemType::Pipe => {}
                _ => return Err(self.unexpected(&token, "operand")),
            }
            break;
        }
        if cmd.args.is_empty() {
            return Err(self.errorf("empty command"));
        }
        Ok(cmd)
    }

    fn operand(&mut self) -> Result<Option<Arg>> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        if self.peek().typ != ItemType::Field {
            return Ok(Some(node));
        }
        let mut fields = vec![];
        while self.peek().typ == ItemType::Field {
            let field = self.next().val;
            fields.extend(field[1..].split('.').map(str::to_string));
        }
        Ok(Some(match node {
            Arg::Field(mut parts) => {
                parts.extend(fields);
                Arg::Field(parts)
            }
            Arg::Variable(mut parts) => {
                parts.extend(fields);
                Arg::Variable(parts)
            }
            Arg::Bool(_) | Arg::Str(_) | Arg::Number(_) | Arg::Nil | Arg::Dot => {
                return Err(self.errorf(format!("unexpected . after term {:?}", node.go_string())))
            }
            other => Arg::Chain(Box::new(other), fields),
        }))
    }

    fn term(&mut self) -> Result<Option<Arg>> {
        let token = self.next_non_space();
        Ok(Some(match token.typ {
            ItemType::Identifier => {
                if !BUILTINS.contains(&token.val.as_str()) && !(self.has_function)(&token.val) {
                    return Err(self.errorf(format!("function {:?} not defined", token.val)));
                }
                Arg::Identifier(token.val)
            }
            ItemType::Dot => Arg::Dot,
            ItemType::Nil => Arg::Nil,
            ItemType::Variable => {
                let parts: Vec<String> = token.val.split('.').map(str::to_string).collect();
                if !self.vars.contains(&parts[0]) {
                    return Err(self.errorf(format!("undefined variable {:?}", parts[0])));
                }
                Arg::Variable(parts)
            }
            ItemType::Field => Arg::Field(token.val[1..].split('.').map(str::to_string).collect()),
            ItemType::Bool => Arg::Bool(token.val == "true"),
            ItemType::CharConstant | ItemType::Complex | ItemType::Number => {
                let n = strconv::number(
                    &token.val,
                    token.typ == ItemType::CharConstant,
                    token.typ == ItemType::Complex,
                )
                .map_err(|e| self.errorf(e.0))?;
                Arg::Number(n)
            }
            ItemType::LeftParen => {
                Arg::Pipe(self.pipeline("parenthesized pipeline", ItemType::RightParen)?)
            }
            ItemType::String | ItemType::RawString => {
                Arg::Str(strconv::unquote(&token.val).map_err(|e| self.errorf(e.0))?)
            }
            _ => {
                self.backup();
                return Ok(None);
            }
        }))
    }
}

/// What `text_or_action` read.
enum Parsed {
    Node(Node),
    End,
    Else,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn funcs(name: &str) -> bool {
        ["getv", "getvs"].contains(&name)
    }

    fn root(text: &str) -> List {
        parse("t", text, &funcs).unwrap().remove("t").unwrap()
    }

    fn error(text: &str) -> String {
        parse("t", text, &funcs).unwrap_err().message
    }

    #[test]
    fn else_if_nests_an_if_in_the_else_branch() {
        let list = root("{{if 1}}a{{else if 2}}b{{else}}c{{end}}");
        let Node::Control(c) = &list[0] else { panic!() };
        let inner = c.else_list.as_ref().unwrap();
        assert!(matches!(&inner[0], Node::Control(c) if c.else_list.is_some()));
    }

    #[test]
    fn go_refusals_are_parse_errors() {
        assert!(error("{{nope 1}}").contains("not defined"));
        assert!(error("{{$x}}").contains("undefined variable"));
        assert!(error("{{break}}").contains("outside"));
        assert!(error("{{if 1}}").contains("EOF"));
        assert!(error("{{end}}").contains("unexpected"));
        assert!(error("{{with 1}}{{else if 2}}{{end}}").contains("unexpected"));
        assert!(error("{{1 | 2}}").contains("non executable"));
        assert!(error("{{define \"a\"}}x{{end}}{{define \"a\"}}y{{end}}").contains("multiple"));
    }

    #[test]
    fn variables_are_scoped_to_their_control() {
        assert!(error("{{if $x := 1}}{{end}}{{$x}}").contains("undefined variable"));
        root("{{if $x := 1}}{{$x}}{{else}}{{$x}}{{end}}");
        root("{{range $i, $v := getvs \"/a\"}}{{$i}}{{break}}{{end}}");
    }

    #[test]
    fn defines_and_blocks_become_trees() {
        let trees = parse(
            "t",
            "{{define \"a\"}}A{{end}}{{block \"b\" .}}B{{end}}",
            &funcs,
        )
        .unwrap();
        assert_eq!(trees.len(), 3);
        assert!(matches!(&trees["t"][0], Node::Template { name, .. } if name == "b"));
    }
}
