//! Splits a template into literal text and tags exactly as Erubis 2.7 (`Erubis::Eruby`) did
//! for reconfig.rb: its regexp `OPEN(=+|-|#|%)?(.*?)([-=])?CLOSE([ \t]*\r?\n)?`, and whether
//! a statement or comment tag stood alone on its line (then Erubis printed nothing of the
//! line). The converter keeps everything else of the file as it is.

use crate::Delimiters;

/// What a tag is, by the indicator after the opening delimiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `<%= ruby %>`: prints the value.
    Expression,
    /// `<%== %>` or `<%=== %>`: escaped or debug printing.
    OtherExpression,
    /// `<% ruby %>` (or `<%- ruby %>`): runs the code.
    Statement,
    /// `<%# text %>`: nothing.
    Comment,
    /// `<%% text %>`: prints the tag literally.
    Literal,
}

/// One tag of the template, by byte offsets into it.
#[derive(Debug, Clone)]
pub struct Tag {
    /// The kind of tag.
    pub kind: Kind,
    /// Offset of the opening delimiter.
    pub start: usize,
    /// Offset just past the closing delimiter.
    pub end: usize,
    /// The Ruby code (or comment text), without indicator and trailing `-`/`=`.
    pub code: String,
    /// The `-` or `=` right before the closing delimiter, if any.
    pub tail: Option<char>,
    /// Length of the spaces and line end Erubis matched after the tag (0 if none).
    pub rspace: usize,
    /// Whether Erubis printed nothing of this tag's line (a statement or comment alone on
    /// it): spaces before, and spaces and the line end after, go with the tag.
    pub alone: bool,
    /// The line the tag starts on (1-based).
    pub line: usize,
}

/// Every tag of `text`, in order.
pub fn tags(text: &str, pattern: &Delimiters) -> Vec<Tag> {
    let mut out = vec![];
    let mut pos = 0;
    let mut is_bol = true;
    let (open, close) = (pattern.open.as_str(), pattern.close.as_str());
    while let Some(found) = text[pos..].find(open) {
        let start = pos + found;
        let after_open = start + open.len();
        // The indicator: `=+`, `-`, `#` or `%`.
        let rest = &text[after_open..];
        let indicator_len = if rest.starts_with('=') {
            rest.len() - rest.trim_start_matches('=').len()
        } else if rest.starts_with(['-', '#', '%']) {
            1
        } else {
            0
        };
        let code_start = after_open + indicator_len;
        // `(.*?)([-=])?CLOSE`: the first CLOSE, with a `-`/`=` before it taken as the tail.
        let Some(close_at) = text[code_start..].find(close).map(|i| code_start + i) else {
            break;
        };
        let mut code_end = close_at;
        let mut tail = None;
        if let Some(c @ ('-' | '=')) = text[code_start..close_at].chars().last() {
            tail = Some(c);
            code_end -= 1;
        }
        let end = close_at + close.len();
        let rspace = trailing_line_end(&text[end..]);
        let indicator = &text[after_open..code_start];
        let kind = match indicator.chars().next() {
            Some('=') if indicator.len() == 1 => Kind::Expression,
            Some('=') => Kind::OtherExpression,
            Some('#') => Kind::Comment,
            Some('%') => Kind::Literal,
            _ => Kind::Statement,
        };
        let lspace = kind != Kind::Expression
            && kind != Kind::OtherExpression
            && spaces_at_bol(&text[pos..start], is_bol);
        let alone = matches!(kind, Kind::Statement | Kind::Comment) && lspace && rspace > 0;
        is_bol = rspace > 0;
        out.push(Tag {
            kind,
            start,
            end,
            code: text[code_start..code_end].to_string(),
            tail,
            rspace,
            alone,
            line: 1 + text[..start].matches('\n').count(),
        });
        pos = end + rspace;
    }
    out
}

/// Erubis's `detect_spaces_at_bol`: whether the text before a tag ends with a line start
/// followed by nothing but spaces and tabs.
fn spaces_at_bol(text: &str, is_bol: bool) -> bool {
    if text.is_empty() {
        return is_bol;
    }
    match text.rfind('\n') {
        Some(i) => text[i + 1..].bytes().all(|b| b == b' ' || b == b'\t'),
        None => is_bol && text.bytes().all(|b| b == b' ' || b == b'\t'),
    }
}

/// The length of `[ \t]*\r?\n` at the start of `after`, or 0.
fn trailing_line_end(after: &str) -> usize {
    let spaces = after.len() - after.trim_start_matches([' ', '\t']).len();
    let rest = &after[spaces..];
    if rest.starts_with('\n') {
        spaces + 1
    } else if rest.starts_with("\r\n") {
        spaces + 2
    } else {
        0
    }
}

/// Where the line of a tag alone on its line starts (the spaces before it included).
pub fn line_start(text: &str, tag: &Tag) -> usize {
    text[..tag.start].rfind('\n').map_or(0, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(Kind, String, bool)> {
        tags(text, &Delimiters::default())
            .into_iter()
            .map(|t| (t.kind, t.code, t.alone))
            .collect()
    }

    #[test]
    fn indicators_and_tails() {
        assert_eq!(
            kinds("<%= a -%>\n  <%- b -%>  \n<%# c %>x<%% d %>"),
            vec![
                (Kind::Expression, " a ".into(), false),
                (Kind::Statement, " b ".into(), true),
                (Kind::Comment, " c ".into(), false),
                (Kind::Literal, " d ".into(), false),
            ]
        );
        assert_eq!(kinds("<%== a %>")[0].0, Kind::OtherExpression);
    }

    #[test]
    fn a_statement_after_an_expression_line_is_alone() {
        let t = kinds("<%= a %>\n<% b %>\nx <% c %>\n");
        assert!(t[1].2);
        assert!(!t[2].2);
    }

    #[test]
    fn alternate_pattern_and_unclosed_open() {
        let p = Delimiters {
            open: "#%".into(),
            close: "%#".into(),
        };
        let t = tags("#% x %#\n#%= y %# #% z", &p);
        assert_eq!(t.len(), 2);
        assert!(t[0].alone);
        assert_eq!(t[1].line, 2);
    }
}
