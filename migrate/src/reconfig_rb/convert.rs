//! One template: each tag's Ruby converted to Tera inside the same delimiters, the text
//! around the tags left as it is. A tag that becomes several Tera tags keeps Erubis's
//! layout: when Erubis printed nothing of its line, each new tag gets a line of its own
//! (which reconfig's trim rule removes in the same way); otherwise they stay side by side.
//! A tag that cannot be converted keeps its Ruby and is reported.

use super::ast::{Stmt, Unsupported};
use super::emit::{Emitter, Item};
use super::erubis::{self, Kind, Tag};
use super::types::Ty;
use super::{lexer, parser};
use crate::Delimiters;

/// A converted template, and what could not be converted (by original line).
pub struct Converted {
    /// The new template text.
    pub text: String,
    /// The tags left in Ruby (and blocks left open), with what to write instead.
    pub problems: Vec<Unsupported>,
    /// What renders differently although every tag converted (`\r\n` in the text).
    pub notes: Vec<Unsupported>,
}

/// Converts `text`, whose tags use `pattern`; `recursive` is whether every entry using the
/// template reads a whole tree (then `data` is known to be a Hash).
pub fn convert(text: &str, pattern: &Delimiters, recursive: bool) -> Converted {
    let data = if recursive {
        Ty::Hash(Box::new(Ty::Str))
    } else {
        Ty::Any
    };
    let tags = erubis::tags(text, pattern);
    let names = tags
        .iter()
        .flat_map(|t| {
            t.code
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| !w.is_empty())
                .map(str::to_string)
        })
        .collect();
    let mut emitter = Emitter::new(data, names);
    let mut problems = vec![];
    let mut out = String::new();
    let mut copied = 0;
    for (i, tag) in tags.iter().enumerate() {
        let converted = convert_tag(&mut emitter, tag);
        let items = match converted {
            Ok(Some(items)) if items.iter().any(|i| i.text().contains(&pattern.close)) => {
                problems.push(Unsupported::new(
                    tag.line,
                    format!(
                        "code whose Tera form holds the delimiter `{}`",
                        pattern.close
                    ),
                    "rewrite the tag by hand",
                ));
                continue;
            }
            Ok(Some(items)) => items,
            Ok(None) => continue,
            Err(problem) => {
                problems.push(problem);
                continue;
            }
        };
        // After `-%>`, Erubis joins the next line; when that line holds only a tag it
        // prints nothing of, the two lines print as one.
        let joins_alone_tag = tag.kind == Kind::Expression
            && tag.tail.is_some()
            && tag.rspace > 0
            && tags.get(i + 1).is_some_and(|next| {
                next.alone && !text[tag.end + tag.rspace..next.start].contains('\n')
            });
        let (from, to, lines) = if tag.alone {
            let start = erubis::line_start(text, tag);
            let line_end = &text[tag.end..tag.end + tag.rspace];
            let lspace = &text[start..tag.start];
            (start, tag.end + tag.rspace, Some((lspace, line_end)))
        } else if tag.kind == Kind::Expression && tag.tail.is_some() && !joins_alone_tag {
            // Erubis drops the line end after `-%>` / `=%>` of an expression.
            (tag.start, tag.end + tag.rspace, None)
        } else {
            (tag.start, tag.end, None)
        };
        out.push_str(&text[copied..from]);
        for (n, item) in items.iter().enumerate() {
            // Tera's `-` removes the line end and the spaces that the trim rule leaves.
            let close = if joins_alone_tag && n + 1 == items.len() {
                " -"
            } else {
                " "
            };
            let tera = match item {
                Item::Stmt(s) => format!("{} {s}{close}{}", pattern.open, pattern.close),
                Item::Print(p) => format!("{}= {p}{close}{}", pattern.open, pattern.close),
            };
            match lines {
                Some((lspace, line_end)) => {
                    out.push_str(lspace);
                    out.push_str(&tera);
                    out.push_str(line_end);
                }
                None => out.push_str(&tera),
            }
        }
        copied = to;
    }
    out.push_str(&text[copied..]);
    let mut notes = vec![];
    if let Some(line) = crlf_in_text(text, &tags) {
        notes.push(Unsupported::new(
            line,
            "`\\r\\n` line ends in the text: reconfig.rb printed `\\n` (Ruby's parser dropped \
             the `\\r`), reconfig prints them as written",
            "give the template `\\n` line ends to keep reconfig.rb's output, or accept `\\r\\n`",
        ));
    }
    if let Some(what) = emitter.unclosed() {
        problems.push(Unsupported::new(
            1 + text.matches('\n').count(),
            what,
            "close every `if`/`unless`/`do` with `<% end %>`",
        ));
    }
    Converted {
        text: out,
        problems,
        notes,
    }
}

/// The line of the first `\r\n` that Erubis printed as literal text, if any (those of
/// lines it printed nothing of went into the Ruby code instead).
fn crlf_in_text(text: &str, tags: &[Tag]) -> Option<usize> {
    let mut pos = 0;
    let mut gaps = vec![];
    for tag in tags {
        let start = if tag.alone {
            erubis::line_start(text, tag)
        } else {
            tag.start
        };
        gaps.push((pos, start.max(pos)));
        let dropped = tag.alone || (tag.kind == Kind::Expression && tag.tail.is_some());
        pos = if dropped {
            tag.end + tag.rspace
        } else {
            tag.end
        };
    }
    gaps.push((pos, text.len()));
    gaps.into_iter()
        .find_map(|(from, to)| text[from..to].find("\r\n").map(|i| from + i))
        .map(|at| 1 + text[..at].matches('\n').count())
}

/// The Tera items of one tag; `None` for a tag kept as written (comments, literals).
fn convert_tag(emitter: &mut Emitter, tag: &Tag) -> Result<Option<Vec<Item>>, Unsupported> {
    match tag.kind {
        Kind::Comment | Kind::Literal => Ok(None),
        Kind::OtherExpression => Err(Unsupported::new(
            tag.line,
            "`<%==` (HTML-escaped) or `<%===` output",
            "print with `<%= … %>` (reconfig does not escape)",
        )),
        Kind::Expression => {
            let tokens = lexer::lex(&tag.code, tag.line)?;
            let output = parser::output(tokens, tag.line)?;
            let mut attempt = emitter.clone();
            let items = attempt.output(&output, tag.line)?;
            *emitter = attempt;
            Ok(Some(items))
        }
        Kind::Statement => {
            if tag.code.trim().is_empty() {
                return Ok(None);
            }
            let tokens = if tag.alone {
                lexer::lex_line(&tag.code, tag.line)
            } else {
                lexer::lex(&tag.code, tag.line)
            };
            let parsed = tokens.and_then(|tokens| parser::statements(tokens, tag.line));
            let stmts = match parsed {
                Ok(stmts) => stmts,
                Err(problem) => {
                    if opens_block(&tag.code) {
                        emitter.open_unconverted();
                    }
                    return Err(problem);
                }
            };
            if emitter.in_unconverted() {
                match stmts.as_slice() {
                    [s] if s.item == Stmt::End => {
                        emitter.close_unconverted();
                        return Ok(None);
                    }
                    [s] if matches!(s.item, Stmt::Else | Stmt::Elsif(_)) => return Ok(None),
                    _ => {}
                }
            }
            let mut attempt = emitter.clone();
            match attempt.statements(&stmts) {
                Ok(items) => {
                    *emitter = attempt;
                    Ok(Some(items))
                }
                Err(problem) => {
                    if opens_block(&tag.code) {
                        emitter.open_unconverted();
                    }
                    Err(problem)
                }
            }
        }
    }
}

/// Whether Ruby code opens a block that a later `end` closes.
fn opens_block(code: &str) -> bool {
    let code = code.trim();
    let first = code.split_whitespace().next().unwrap_or("");
    matches!(
        first,
        "if" | "unless" | "case" | "while" | "until" | "for" | "begin"
    ) && !code.ends_with("end")
        || code.ends_with('|') && (code.contains(" do") || code.contains('{'))
        || code.ends_with(" do")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(text: &str) -> (String, usize) {
        let c = convert(text, &Delimiters::default(), true);
        (c.text, c.problems.len())
    }

    #[test]
    fn the_reconfig_rb_sample_converts() {
        let (text, problems) = conv(
            "<% @reconfig[\"data\"].keys.sort.each do |x| %>\nKEY <%= x %> has VALUE <%= @reconfig[\"data\"][x] %>\n<% end %>\n",
        );
        assert_eq!(problems, 0);
        assert_eq!(
            text,
            "<% for x in data | rb_keys | rb_sort %>\nKEY <%= x %> has VALUE <%= data | rb_at(k=x) %>\n<% endfor %>\n"
        );
    }

    #[test]
    fn several_tera_tags_for_a_trimmed_line_get_a_line_each() {
        let (text, _) = conv("  <% list = @reconfig[\"data\"].keys %>\n  <% list.each_with_index do |x, i| -%>  \n<%= i %>\n<% end %>\n");
        assert_eq!(
            text,
            "  <% set list = data | rb_keys %>\n  <% for x in list %>  \n  <% set i = loop.index0 %>  \n<%= i %>\n<% endfor %>\n"
        );
    }

    #[test]
    fn unconverted_tags_keep_their_ruby_and_their_end() {
        let c = convert(
            "<% x.each_slice(2) do |a| %>\n<%= a %>\n<% end %>\n<%= @reconfig[\"watched\"] %>\n",
            &Delimiters::default(),
            true,
        );
        assert_eq!(c.problems.len(), 1);
        assert_eq!(c.problems[0].line, 1);
        assert_eq!(
            c.text,
            "<% x.each_slice(2) do |a| %>\n<%= a | rb_s %>\n<% end %>\n<%= watched %>\n"
        );
    }

    #[test]
    fn crlf_printed_as_text_is_reported() {
        let c = convert(
            "<% if true %>\r\nx\r\n<% end %>\r\n",
            &Delimiters::default(),
            true,
        );
        assert_eq!((c.problems.len(), c.notes.len()), (0, 1));
        assert_eq!(c.notes[0].line, 2);
        let c = convert(
            "<% if true %>\r\n<% end %>\r\n",
            &Delimiters::default(),
            true,
        );
        assert!(c.notes.is_empty(), "trimmed lines print nothing");
    }

    #[test]
    fn expression_dash_drops_the_line_end() {
        let (text, problems) = conv("<%= @reconfig[\"watched\"] -%>\nnext\n");
        assert_eq!(problems, 0);
        assert_eq!(text, "<%= watched %>next\n");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Whatever Ruby a template's tags hold, converting it returns — Tera, or problems
        /// naming the line — and never panics.
        #[test]
        fn any_ruby_converts_or_is_reported(text in ruby_soup()) {
            let _ = convert(&text, &Delimiters::default(), true);
        }
    }

    /// Erubis tags holding Ruby's tokens in any order.
    fn ruby_soup() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let token = prop::sample::select(vec![
            "<%",
            "%>",
            "-%>",
            "@reconfig",
            "[\"data\"]",
            "['altdata']",
            ".each",
            ".each_with_index",
            ".map",
            ".select",
            ".sort_by",
            ".keys",
            ".values",
            ".times",
            ".join(',')",
            ".split('/')",
            ".to_json",
            ".to_yaml",
            ".size",
            ".first",
            ".last",
            ".nil?",
            ".include?",
            ".sub",
            ".gsub(/a/, 'b')",
            "do",
            "|x|",
            "|k, v|",
            "|",
            "end",
            "if",
            "unless",
            "else",
            "elsif",
            "then",
            "while",
            "case",
            "when",
            "x",
            "k",
            "v",
            "=",
            "==",
            "+",
            "-",
            "*",
            "/",
            "%",
            "<<",
            "&&",
            "||",
            "!",
            "?",
            ":",
            "::",
            "=>",
            "(",
            ")",
            "[",
            "]",
            "{",
            "}",
            ",",
            ".",
            ";",
            "'s'",
            "\"s#{x}\"",
            "\"#{",
            "'",
            "\"",
            "\\",
            "1",
            "-1",
            "1.5e308",
            "0x1f",
            ":sym",
            "nil",
            "true",
            "%w(a b)",
            "/re/",
            "puts",
            "def",
            "return",
            "\n",
        ]);
        let code = prop::collection::vec(token, 0..12).prop_map(|tokens| tokens.join(" "));
        let tag = (
            prop::sample::select(vec!["<%= ", "<% ", "<%- "]),
            code,
            "[a-z\\n]{0,3}",
        );
        let tag = tag.prop_map(|(open, code, text)| format!("{open}{code} %>{text}"));
        prop::collection::vec(tag, 0..6).prop_map(|tags| tags.concat())
    }
}
