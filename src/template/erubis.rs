//! Erubis-style templates (`<%= expr %>`, `<% stmt %>`, `<%# comment %>`, `<%% literal %>`,
//! any `OPEN CLOSE` pattern) translated to Tera source (SPEC section 4).
//!
//! Three properties make the translation safe to hand to Tera:
//!
//! - **Literal text stays literal.** Text that Tera would read as markup (`{{`, `{%`, `{#`, or a
//!   `{` right before a tag) is printed through `__lit(i=N)` from a table instead; its leading
//!   and trailing white space stays plain text so Tera's `-` whitespace control still sees it.
//! - **Lines stay aligned.** Every newline of the original is kept, at the same place in the
//!   line structure: those of a trimmed line, a comment or a literal chunk move inside the
//!   emitted tag as white space. So Tera's parse errors (`--> line:col`) name original lines.
//! - **Runtime errors have lines.** Tera 1 reports none, so `{{ __line(n=L) }}` is emitted
//!   before each tag that can fail when the line changed or a statement may have changed
//!   the control flow since the last mark; an `elif` records its own line in its condition.
//!
//! Erubis's trim rule: a statement or comment tag alone on its line (only spaces/tabs around
//! it, then `\n` or `\r\n`) removes that whole line; expression and literal tags never trim.

use std::collections::HashMap;

use serde_json::Value;

use super::pattern::Pattern;
use super::scope::{LINE_FN, LINE_IF_FN};

/// The internal function printing a chunk of the literal table.
pub const LITERAL_FN: &str = "__lit";

/// Tera source translated from an Erubis-style template, with its literal table.
pub struct Translation {
    /// Tera source whose line N holds the tags that start on line N of the original.
    pub source: String,
    /// The chunks `__lit(i=N)` prints.
    pub literals: Literals,
}

/// Literal text Tera must not parse, by index.
pub struct Literals(Vec<String>);

impl tera::Function for Literals {
    fn call(&self, args: &HashMap<String, Value>) -> tera::Result<Value> {
        args.get("i")
            .and_then(Value::as_u64)
            .and_then(|i| self.0.get(usize::try_from(i).ok()?))
            .map(|chunk| Value::String(chunk.clone()))
            .ok_or_else(|| tera::Error::msg(format!("{LITERAL_FN}: no such literal")))
    }
}

/// What a tag is, by the character after OPEN.
enum Kind<'a> {
    /// `OPEN= expr CLOSE`: Tera `{{ expr }}`.
    Expression(&'a str),
    /// `OPEN stmt CLOSE`: Tera `{% stmt %}`.
    Statement(&'a str),
    /// `OPEN# text CLOSE`: nothing.
    Comment(&'a str),
    /// `OPEN% text CLOSE`: `OPEN text CLOSE`, literally.
    Literal(&'a str),
}

/// One tag of the original: where it starts and ends (after CLOSE), and its kind.
struct Tag<'a> {
    start: usize,
    end: usize,
    kind: Kind<'a>,
}

/// Finds the next tag at or after `from`; an OPEN with no CLOSE after it is not a tag.
fn next_tag<'a>(text: &'a str, from: usize, pattern: &Pattern) -> Option<Tag<'a>> {
    let start = from + text[from..].find(&pattern.open)?;
    let body_start = start + pattern.open.len();
    let body_end = body_start + text[body_start..].find(&pattern.close)?;
    let body = &text[body_start..body_end];
    let kind = match body.as_bytes().first() {
        Some(b'=') => Kind::Expression(&body[1..]),
        Some(b'#') => Kind::Comment(&body[1..]),
        Some(b'%') => Kind::Literal(&body[1..]),
        _ => Kind::Statement(body),
    };
    Some(Tag {
        start,
        end: body_end + pattern.close.len(),
        kind,
    })
}

/// The length of what follows a tag that lets it trim: spaces/tabs, then `\n` or `\r\n`.
fn trailing_line_end(after: &str) -> Option<usize> {
    let spaces = after.len() - after.trim_start_matches([' ', '\t']).len();
    let rest = &after[spaces..];
    if rest.starts_with('\n') {
        Some(spaces + 1)
    } else if rest.starts_with("\r\n") {
        Some(spaces + 2)
    } else {
        None
    }
}

/// Whether only spaces/tabs precede `start` on its line.
fn alone_from_line_start(text: &str, start: usize) -> bool {
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    text[line_start..start].bytes().all(|b| b == b' ' || b == b'\t')
}

/// Translates `text` written with `pattern` into Tera source.
pub fn translate(text: &str, pattern: &Pattern) -> Translation {
    let mut out = Writer::default();
    let mut pos = 0;
    let mut line = 1;
    while let Some(tag) = next_tag(text, pos, pattern) {
        let trims = matches!(tag.kind, Kind::Statement(_) | Kind::Comment(_));
        let trim = trims
            .then(|| trailing_line_end(&text[tag.end..]))
            .flatten()
            .filter(|_| alone_from_line_start(text, tag.start));
        let before = &text[pos..tag.start];
        out.text(match trim {
            Some(_) => before.trim_end_matches([' ', '\t']),
            None => before,
        });
        line += before.matches('\n').count();
        let newline = if trim.is_some() { "\n" } else { "" };
        match tag.kind {
            Kind::Expression(body) => out.expression(body, line),
            Kind::Statement(body) if !body.trim_matches(['-', ' ', '\t', '\r', '\n']).is_empty() => {
                out.statement(body, line, newline)
            }
            Kind::Statement(body) | Kind::Comment(body) => {
                out.newlines(body.matches('\n').count() + usize::from(trim.is_some()))
            }
            Kind::Literal(body) => {
                out.text(&pattern.open);
                out.text(body);
                out.text(&pattern.close);
            }
        }
        let consumed = &text[tag.start..tag.end + trim.unwrap_or(0)];
        line += consumed.matches('\n').count();
        pos = tag.end + trim.unwrap_or(0);
    }
    out.text(&text[pos..]);
    out.finish()
}

/// Statement keywords that cannot fail at run time, so need no line mark.
const INFALLIBLE: &[&str] = &[
    "else", "endif", "endfor", "endmacro", "endblock", "break", "continue", "raw", "endraw",
];

/// A tag body split around Tera's whitespace-control dashes: `- inner -`.
struct Body<'a> {
    lead: &'a str,
    inner: &'a str,
    trail: &'a str,
}

impl<'a> Body<'a> {
    fn split(body: &'a str) -> Body<'a> {
        let (lead, rest) = match body.strip_prefix('-') {
            Some(rest) => ("-", rest),
            None => ("", body),
        };
        let (inner, trail) = match rest.strip_suffix('-') {
            Some(inner) => (inner, "-"),
            None => (rest, ""),
        };
        Body { lead, inner, trail }
    }

    fn keyword(&self) -> &'a str {
        let inner = self.inner.trim_start();
        let end = inner
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(inner.len());
        &inner[..end]
    }
}

/// Builds the Tera source: pending literal text, tags, line marks.
#[derive(Default)]
struct Writer {
    source: String,
    literals: Vec<String>,
    pending: String,
    /// The line of the last `__line` mark emitted.
    marked: Option<usize>,
    /// A statement (or macro call) since the last mark: control may arrive from elsewhere.
    flow_changed: bool,
}

impl Writer {
    fn text(&mut self, text: &str) {
        self.pending.push_str(text);
    }

    /// Emits the pending literal text, through the literal table where Tera would parse it.
    fn flush(&mut self) {
        let chunk = std::mem::take(&mut self.pending);
        let markup = ["{{", "{%", "{#"].iter().any(|m| chunk.contains(m)) || chunk.ends_with('{');
        if !markup {
            self.source.push_str(&chunk);
            return;
        }
        let core = chunk.trim();
        let lead = &chunk[..chunk.len() - chunk.trim_start().len()];
        let trail = &chunk[lead.len() + core.len()..];
        self.source.push_str(lead);
        self.source.push_str(&format!("{{{{ {LITERAL_FN}(i={})", self.literals.len()));
        self.source.push_str(&"\n".repeat(core.matches('\n').count()));
        self.source.push_str(" }}");
        self.source.push_str(trail);
        self.literals.push(core.to_string());
    }

    /// Output nothing but `count` newlines, to keep lines aligned.
    fn newlines(&mut self, count: usize) {
        if count > 0 {
            self.flush();
            self.source.push_str(&format!("{{#{}#}}", "\n".repeat(count)));
        }
    }

    /// Emits a `__line` mark before a tag on `line` unless the last mark still holds.
    fn mark(&mut self, line: usize, body: &Body<'_>) {
        if self.marked == Some(line) && !self.flow_changed {
            return;
        }
        self.source.push_str(&format!(
            "{{{{{} {LINE_FN}(n={line}) }}}}",
            body.lead
        ));
        self.marked = Some(line);
        self.flow_changed = false;
    }

    fn expression(&mut self, body: &str, line: usize) {
        self.flush();
        self.mark(line, &Body::split(body));
        self.source.push_str("{{");
        self.source.push_str(body);
        self.source.push_str("}}");
        if body.contains("::") {
            self.flow_changed = true;
        }
    }

    /// A statement; `newline` is the line end of a trimmed line, kept inside the tag.
    fn statement(&mut self, body: &str, line: usize, newline: &str) {
        self.flush();
        let parts = Body::split(body);
        let keyword = parts.keyword();
        if keyword != "elif" && !INFALLIBLE.contains(&keyword) {
            self.mark(line, &parts);
        }
        self.source.push_str("{%");
        self.source.push_str(parts.lead);
        if keyword == "elif" {
            let condition = &parts.inner.trim_start()["elif".len()..];
            self.source.push_str(&format!(
                " elif {LINE_IF_FN}(n={line}) or ({condition})"
            ));
        } else {
            self.source.push_str(parts.inner);
        }
        self.source.push_str(newline);
        self.source.push_str(parts.trail);
        self.source.push_str("%}");
        self.flow_changed = true;
    }

    fn finish(mut self) -> Translation {
        self.flush();
        Translation {
            source: self.source,
            literals: Literals(self.literals),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tera(text: &str) -> String {
        translate(text, &Pattern::default()).source
    }

    #[test]
    fn tags_become_tera_tags_with_line_marks() {
        assert_eq!(tera("a<%= x %>b"), "a{{ __line(n=1) }}{{ x }}b");
        assert_eq!(
            tera("<% for x in l %>\n<%= x %>\n<% endfor %>\n"),
            "{{ __line(n=1) }}{% for x in l \n%}{{ __line(n=2) }}{{ x }}\n{% endfor \n%}"
        );
    }

    #[test]
    fn trimmed_lines_keep_their_newline_inside_the_tag() {
        assert_eq!(
            tera("  <% if a -%>  \r\nx\n"),
            "{{ __line(n=1) }}{% if a \n-%}x\n"
        );
        assert_eq!(tera("<%# one\ntwo %>\nx"), "{#\n\n#}x");
    }

    #[test]
    fn markup_in_text_goes_through_the_literal_table() {
        let t = translate(" {{ a }}\n{% b %} <%= c %>", &Pattern::default());
        assert_eq!(
            t.source,
            " {{ __lit(i=0)\n }} {{ __line(n=2) }}{{ c }}"
        );
        assert_eq!(t.literals.0, vec!["{{ a }}\n{% b %}".to_string()]);
    }

    #[test]
    fn leading_dash_moves_to_the_line_mark() {
        assert_eq!(tera("x\n<%=- y %>"), "x\n{{- __line(n=2) }}{{- y }}");
    }

    #[test]
    fn elif_records_its_own_line() {
        assert_eq!(
            tera("<% if a %><% elif b %><% endif %>"),
            "{{ __line(n=1) }}{% if a %}{% elif __line_if(n=1) or ( b )%}{% endif %}"
        );
    }

    #[test]
    fn open_without_close_is_text() {
        assert_eq!(tera("a <% b"), "a <% b");
        assert_eq!(tera("<%% x %> <%"), "<% x %> <%");
    }
}
