//! Erubis-style templates (`<%= expr %>`, `<% stmt %>`, `<%# comment %>`, `<%% literal %>`,
//! any `OPEN CLOSE` pattern) translated to Tera source.
//!
//! Three properties make the translation safe to hand to Tera:
//!
//! - **Literal text stays literal.** Text that Tera would read as markup (`{{`, `{%`, `{#`, or a
//!   `{` right before a tag) is printed through `__lit(i=N)` from a table instead; its leading
//!   and trailing white space stays plain text so Tera's `-` whitespace control still sees it.
//! - **Lines stay aligned.** Every newline of the original is kept, at the same place in the
//!   line structure: those of a trimmed line, a comment or a literal chunk move inside the
//!   emitted tag as white space. So Tera's parse errors (`--> line:col`) name original lines.
//! - **Runtime errors have lines.** Tera 1 reports none, so a second, *marked* source has
//!   `{{ __line(n=L) }}` before every tag (an `elif` records its line in its condition). It
//!   is rendered only after the plain source failed, to find where: marks cost nothing on
//!   the normal path, where a 20,000-iteration loop would pay for one call per iteration.
//!
//! Erubis's trim rule: a statement or comment tag alone on its line (only spaces/tabs around
//! it, then `\n` or `\r\n`) removes that whole line; expression and literal tags never trim.

use super::scope::{LINE_FN, LINE_IF_FN, LITERAL_FN};
use crate::config::Pattern;

/// Tera source translated from an Erubis-style template, with its literal table.
pub struct Translation {
    /// Tera source whose line N holds the tags that start on line N of the original.
    pub source: String,
    /// The same with line marks, rendered to locate a failure of `source`.
    pub marked: String,
    /// The chunks `__lit(i=N)` prints.
    pub literals: Vec<String>,
    /// Whether some tag names the whole context (`reconfig` or `__tera_context`).
    pub names_reconfig: bool,
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

/// Whether only spaces/tabs precede the tag at `start` on its line, given that the text
/// since the previous tag starts at `pos` (a previous tag on the same line is not white).
fn alone_from_line_start(text: &str, pos: usize, start: usize) -> bool {
    let before = &text[pos..start];
    let on_line = match before.rfind('\n') {
        Some(i) => &before[i + 1..],
        None if pos == 0 || text[..pos].ends_with('\n') => before,
        None => return false,
    };
    on_line.bytes().all(|b| b == b' ' || b == b'\t')
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
            .filter(|_| alone_from_line_start(text, pos, tag.start));
        let before = &text[pos..tag.start];
        out.text(match trim {
            Some(_) => before.trim_end_matches([' ', '\t']),
            None => before,
        });
        line += before.matches('\n').count();
        let newline = if trim.is_some() { "\n" } else { "" };
        match tag.kind {
            Kind::Expression(body) => out.expression(body, line),
            Kind::Statement(body)
                if !body.trim_matches(['-', ' ', '\t', '\r', '\n']).is_empty() =>
            {
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

    /// The condition of an `elif` statement.
    fn elif_condition(&self) -> Option<&'a str> {
        let rest = self.inner.trim_start().strip_prefix("elif")?;
        rest.starts_with(char::is_whitespace).then_some(rest)
    }
}

/// Builds both Tera sources: pending literal text, tags, line marks.
#[derive(Default)]
struct Writer {
    source: String,
    marked: String,
    literals: Vec<String>,
    pending: String,
    names_reconfig: bool,
}

impl Writer {
    fn text(&mut self, text: &str) {
        self.pending.push_str(text);
    }

    /// Appends to both sources.
    fn push(&mut self, tera: &str) {
        self.source.push_str(tera);
        self.marked.push_str(tera);
    }

    /// Emits the pending literal text, through the literal table where Tera would parse it.
    fn flush(&mut self) {
        let chunk = std::mem::take(&mut self.pending);
        let markup = ["{{", "{%", "{#"].iter().any(|m| chunk.contains(m)) || chunk.ends_with('{');
        if !markup {
            self.push(&chunk);
            return;
        }
        let core = chunk.trim();
        let lead = &chunk[..chunk.len() - chunk.trim_start().len()];
        let trail = &chunk[lead.len() + core.len()..];
        let call = format!(
            "{lead}{{{{ {LITERAL_FN}(i={}){} }}}}{trail}",
            self.literals.len(),
            "\n".repeat(core.matches('\n').count())
        );
        self.push(&call);
        self.literals.push(core.to_string());
    }

    /// Output nothing but `count` newlines, to keep lines aligned.
    fn newlines(&mut self, count: usize) {
        if count > 0 {
            self.flush();
            self.push(&format!("{{#{}#}}", "\n".repeat(count)));
        }
    }

    /// Records `line` in the marked source; a leading `-` of the tag moves to the mark, so
    /// that it still trims the text before.
    fn mark(&mut self, line: usize, body: &Body<'_>) {
        self.marked
            .push_str(&format!("{{{{{} {LINE_FN}(n={line}) }}}}", body.lead));
    }

    /// Notes what a tag's code refers to.
    fn code(&mut self, body: &str) {
        self.names_reconfig |= names_reconfig(body);
    }

    fn expression(&mut self, body: &str, line: usize) {
        self.code(body);
        self.flush();
        self.mark(line, &Body::split(body));
        self.push(&format!("{{{{{body}}}}}"));
    }

    /// A statement; `newline` is the line end of a trimmed line, kept in a comment right
    /// after the tag (inside the tag, a syntax error at its end would point a line late).
    fn statement(&mut self, body: &str, line: usize, newline: &str) {
        self.code(body);
        self.flush();
        let parts = Body::split(body);
        let Body { lead, inner, trail } = parts;
        match parts.elif_condition() {
            // No parentheses around the condition: Tera 1 drops the `not` of a lone
            // `(not x)`; and `or` binds looser than anything in the condition anyway.
            Some(condition) => {
                self.source
                    .push_str(&format!("{{%{lead} elif{condition}{trail}%}}"));
                self.marked.push_str(&format!(
                    "{{%{lead} elif {LINE_IF_FN}(n={line}) or{condition}{trail}%}}"
                ));
            }
            None => {
                self.mark(line, &parts);
                self.push(&format!("{{%{lead}{inner}{trail}%}}"));
            }
        }
        if !newline.is_empty() {
            // A right-trimming tag's `-` must reach past the comment to the text after it.
            self.push(if trail.contains('-') {
                "{#\n-#}"
            } else {
                "{#\n#}"
            });
        }
    }

    fn finish(mut self) -> Translation {
        self.flush();
        Translation {
            source: self.source,
            marked: self.marked,
            literals: self.literals,
            names_reconfig: self.names_reconfig,
        }
    }
}

/// Whether Tera code may read the `reconfig` object: it names it, or dumps the context.
pub fn names_reconfig(code: &str) -> bool {
    code.contains("reconfig") || code.contains("__tera_context")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tera(text: &str) -> (String, String) {
        let t = translate(text, &Pattern::default());
        (t.source, t.marked)
    }

    #[test]
    fn tags_become_tera_tags_and_marks_go_to_the_marked_source() {
        assert_eq!(
            tera("a<%= x %>b"),
            ("a{{ x }}b".into(), "a{{ __line(n=1) }}{{ x }}b".into())
        );
        assert_eq!(
            tera("<% for x in l %>\n<%= x %>\n<% endfor %>\n"),
            (
                "{% for x in l %}{#\n#}{{ x }}\n{% endfor %}{#\n#}".into(),
                "{{ __line(n=1) }}{% for x in l %}{#\n#}{{ __line(n=2) }}{{ x }}\n\
                 {{ __line(n=3) }}{% endfor %}{#\n#}"
                    .into()
            )
        );
    }

    #[test]
    fn trimmed_lines_keep_their_newline_in_a_comment() {
        assert_eq!(tera("  <% if a -%>  \r\nx\n").0, "{% if a -%}{#\n-#}x\n");
        assert_eq!(tera("<%# one\ntwo %>\nx").0, "{#\n\n#}x");
        assert_eq!(tera("<% %>\n<%- -%>\nx").0, "{#\n#}{#\n#}x");
    }

    #[test]
    fn markup_in_text_goes_through_the_literal_table() {
        let t = translate(" {{ a }}\n{% b %} <%= c %>{", &Pattern::default());
        assert_eq!(t.source, " {{ __lit(i=0)\n }} {{ c }}{{ __lit(i=1) }}");
        assert_eq!(t.literals, ["{{ a }}\n{% b %}", "{"]);
    }

    #[test]
    fn leading_dash_moves_to_the_line_mark() {
        assert_eq!(tera("x\n<%=- y %>").1, "x\n{{- __line(n=2) }}{{- y }}");
    }

    #[test]
    fn elif_records_its_own_line() {
        assert_eq!(
            tera("<% if a %>\n<% elif b %><% endif %>"),
            (
                "{% if a %}{#\n#}{% elif b %}{% endif %}".into(),
                "{{ __line(n=1) }}{% if a %}{#\n#}{% elif __line_if(n=2) or b %}\
                 {{ __line(n=2) }}{% endif %}"
                    .into()
            )
        );
    }

    #[test]
    fn elif_not_keeps_its_negation() {
        use crate::etcd::Snapshot;
        let text = "<% if false %>a<% elif not false %>b<% endif %>";
        let t = crate::template::compile("t", text, &Pattern::default()).unwrap();
        let data = serde_json::json!({});
        let input = crate::template::RenderInput {
            data: data.clone().into(),
            altdata: data,
            watched: "/",
            snapshot: &std::sync::Arc::new(Snapshot::default()),
            prefix: None,
            read: &[],
        };
        assert_eq!(t.render(input, &Default::default(), None).unwrap(), "b");
    }

    #[test]
    fn open_without_close_is_text() {
        assert_eq!(tera("a <% b").0, "a <% b");
        assert_eq!(tera("<%% x %> <%").0, "<% x %> <%");
    }
}
