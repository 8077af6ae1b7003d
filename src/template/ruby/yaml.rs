//! `to_yaml`: YAML text as Ruby's `obj.to_yaml` prints it (Psych 4 over libyaml 0.2.5).
//!
//! Psych picks a style per string ([`super::psych`]); libyaml then checks that style against
//! the string's characters and its place in the document, falls back to a quoted style where
//! needed, and folds long flow scalars at 80 columns. This module is a port of the part of
//! libyaml's emitter that JSON-shaped data reaches: block mappings and sequences, `{}`/`[]`
//! for empty ones, and the plain, quoted and literal scalar writers.

use serde_json::Value;

use super::float::ruby_float;
use super::psych::{string_scalar, StringScalar, Style};

/// libyaml's default preferred line width.
const BEST_WIDTH: usize = 80;
/// libyaml's default indentation step.
const BEST_INDENT: i32 = 2;
/// Longest scalar (in bytes) libyaml writes as a simple `key: value` key.
const MAX_SIMPLE_KEY: usize = 128;

/// `value.to_yaml` as Ruby prints it: a `---` document, block style, trailing newline.
pub fn to_yaml(value: &Value) -> String {
    let mut e = Emitter {
        out: String::new(),
        column: 0,
        whitespace: true,
        indention: true,
        indent: -1,
        indents: Vec::new(),
        open_ended: false,
    };
    e.write_indent();
    e.write_indicator("---", true, false, false);
    e.node(value, Place::OUTSIDE_MAPPING);
    e.write_indent();
    if e.open_ended {
        e.write_indicator("...", true, false, false);
        e.write_indent();
    }
    e.out
}

/// Where a node is written: libyaml's `mapping_context` and `simple_key_context`.
#[derive(Clone, Copy)]
struct Place {
    mapping: bool,
    simple_key: bool,
}

impl Place {
    /// The document root, or an item of a sequence.
    const OUTSIDE_MAPPING: Place = Place {
        mapping: false,
        simple_key: false,
    };
    /// A `key:` of a mapping.
    const SIMPLE_KEY: Place = Place {
        mapping: true,
        simple_key: true,
    };
    /// A value of a mapping, or a `? key` too long to be simple.
    const IN_MAPPING: Place = Place {
        mapping: true,
        simple_key: false,
    };
}

/// A string with what Psych requests for it and what libyaml finds out about it.
struct Prepared<'a> {
    text: &'a str,
    request: StringScalar,
    analysis: Analysis,
}

impl<'a> Prepared<'a> {
    fn new(text: &'a str) -> Prepared<'a> {
        Prepared {
            text,
            request: string_scalar(text),
            analysis: analyze(text),
        }
    }

    /// libyaml's `yaml_emitter_check_simple_key`: one line, at most 128 bytes with its tag.
    fn is_simple_key(&self) -> bool {
        let tag_len = if self.request.tagged {
            "!!str".len()
        } else {
            0
        };
        !self.analysis.multiline && self.text.len() + tag_len <= MAX_SIMPLE_KEY
    }
}

/// What libyaml's `yaml_emitter_analyze_scalar` finds out about a scalar.
struct Analysis {
    multiline: bool,
    block_plain_allowed: bool,
    single_quoted_allowed: bool,
    block_allowed: bool,
}

/// libyaml's emitter state, for block context only (flow appears only as `{}` and `[]`).
struct Emitter {
    out: String,
    column: usize,
    whitespace: bool,
    indention: bool,
    indent: i32,
    indents: Vec<i32>,
    /// A `|+` scalar ended the document, so it needs an explicit `...` end.
    open_ended: bool,
}

impl Emitter {
    fn node(&mut self, value: &Value, place: Place) {
        match value {
            Value::Object(map) if map.is_empty() => self.empty_collection("{", "}"),
            Value::Array(items) if items.is_empty() => self.empty_collection("[", "]"),
            Value::Object(map) => {
                self.increase_indent(false, false);
                for (key, item) in map {
                    self.write_indent();
                    let key = Prepared::new(key);
                    if key.is_simple_key() {
                        self.string(&key, Place::SIMPLE_KEY);
                        self.write_indicator(":", false, false, false);
                    } else {
                        self.write_indicator("?", true, false, true);
                        self.string(&key, Place::IN_MAPPING);
                        self.write_indent();
                        self.write_indicator(":", true, false, true);
                    }
                    self.node(item, Place::IN_MAPPING);
                }
                self.pop_indent();
            }
            Value::Array(items) => {
                self.increase_indent(false, place.mapping && !self.indention);
                for item in items {
                    self.write_indent();
                    self.write_indicator("-", true, false, true);
                    self.node(item, Place::OUTSIDE_MAPPING);
                }
                self.pop_indent();
            }
            Value::String(s) => self.string(&Prepared::new(s), place),
            // Psych writes these with `to_s`, plain; their text never needs quoting.
            Value::Null => self.scalar("", Style::Plain, false),
            Value::Bool(b) => self.scalar(if *b { "true" } else { "false" }, Style::Plain, false),
            Value::Number(n) if n.is_f64() => {
                let text = ruby_float(n.as_f64().expect("an f64 number has an f64 value"));
                self.scalar(&text, Style::Plain, false);
            }
            Value::Number(n) => self.scalar(&n.to_string(), Style::Plain, false),
        }
    }

    fn empty_collection(&mut self, open: &str, close: &str) {
        self.write_indicator(open, true, true, false);
        self.write_indicator(close, false, false, false);
    }

    /// A string: Psych's requested style, then libyaml's `yaml_emitter_select_scalar_style`.
    fn string(&mut self, prepared: &Prepared<'_>, place: Place) {
        let Prepared {
            text: s,
            request,
            analysis: a,
        } = prepared;
        let mut style = request.style;
        if place.simple_key && a.multiline {
            style = Style::DoubleQuoted;
        }
        if style == Style::Plain && (!a.block_plain_allowed || (s.is_empty() && place.simple_key)) {
            style = Style::SingleQuoted;
        }
        if style == Style::SingleQuoted && !a.single_quoted_allowed {
            style = Style::DoubleQuoted;
        }
        if style == Style::Literal && (!a.block_allowed || place.simple_key) {
            style = Style::DoubleQuoted;
        }
        if request.tagged {
            if !self.whitespace {
                self.put(' ');
            }
            self.write_raw("!!str");
            self.whitespace = false;
            self.indention = false;
        }
        self.scalar(s, style, !place.simple_key);
    }

    /// libyaml's `yaml_emitter_emit_scalar` with the style already chosen.
    fn scalar(&mut self, s: &str, style: Style, allow_breaks: bool) {
        self.increase_indent(true, false);
        match style {
            Style::Plain => self.write_plain(s, allow_breaks),
            Style::SingleQuoted => self.write_single_quoted(s, allow_breaks),
            Style::DoubleQuoted => self.write_double_quoted(s, allow_breaks),
            Style::Literal => self.write_literal(s),
        }
        self.pop_indent();
    }

    fn increase_indent(&mut self, flow: bool, indentless: bool) {
        self.indents.push(self.indent);
        if self.indent < 0 {
            self.indent = if flow { BEST_INDENT } else { 0 };
        } else if !indentless {
            self.indent += BEST_INDENT;
        }
    }

    fn pop_indent(&mut self) {
        self.indent = self
            .indents
            .pop()
            .expect("indents are pushed and popped in pairs");
    }

    fn put(&mut self, c: char) {
        self.out.push(c);
        self.column += 1;
    }

    fn put_break(&mut self) {
        self.out.push('\n');
        self.column = 0;
    }

    fn write_raw(&mut self, s: &str) {
        self.out.push_str(s);
        self.column += s.chars().count();
    }

    /// libyaml's `WRITE_BREAK`: `\n` as a line break, other breaks copied as they are.
    fn write_break(&mut self, c: char) {
        if c == '\n' {
            self.put_break();
        } else {
            self.out.push(c);
            self.column = 0;
        }
    }

    fn write_indent(&mut self) {
        let indent = self.indent.max(0) as usize;
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.put_break();
        }
        while self.column < indent {
            self.put(' ');
        }
        self.whitespace = true;
        self.indention = true;
    }

    fn write_indicator(
        &mut self,
        indicator: &str,
        need_whitespace: bool,
        is_whitespace: bool,
        is_indention: bool,
    ) {
        if need_whitespace && !self.whitespace {
            self.put(' ');
        }
        self.write_raw(indicator);
        self.whitespace = is_whitespace;
        self.indention = self.indention && is_indention;
    }

    fn write_plain(&mut self, s: &str, allow_breaks: bool) {
        if !self.whitespace && !s.is_empty() {
            self.put(' ');
        }
        let (mut spaces, mut breaks) = (false, false);
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            if c == ' ' {
                if allow_breaks && !spaces && self.column > BEST_WIDTH && chars.peek() != Some(&' ')
                {
                    self.write_indent();
                } else {
                    self.put(c);
                }
                spaces = true;
            } else if is_break(c) {
                if !breaks && c == '\n' {
                    self.put_break();
                }
                self.write_break(c);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                self.put(c);
                self.indention = false;
                spaces = false;
                breaks = false;
            }
        }
        self.whitespace = false;
        self.indention = false;
    }

    fn write_single_quoted(&mut self, s: &str, allow_breaks: bool) {
        self.write_indicator("'", true, false, false);
        let (mut spaces, mut breaks) = (false, false);
        let last = s.chars().count().saturating_sub(1);
        let mut chars = s.chars().enumerate().peekable();
        while let Some((i, c)) = chars.next() {
            if c == ' ' {
                let next_is_space = chars.peek().is_some_and(|&(_, n)| n == ' ');
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && i != 0
                    && i != last
                    && !next_is_space
                {
                    self.write_indent();
                } else {
                    self.put(c);
                }
                spaces = true;
            } else if is_break(c) {
                if !breaks && c == '\n' {
                    self.put_break();
                }
                self.write_break(c);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                if c == '\'' {
                    self.put('\'');
                }
                self.put(c);
                self.indention = false;
                spaces = false;
                breaks = false;
            }
        }
        if breaks {
            self.write_indent();
        }
        self.write_indicator("'", false, false, false);
        self.whitespace = false;
        self.indention = false;
    }

    fn write_double_quoted(&mut self, s: &str, allow_breaks: bool) {
        self.write_indicator("\"", true, false, false);
        let mut spaces = false;
        let last = s.chars().count().saturating_sub(1);
        let mut chars = s.chars().enumerate().peekable();
        while let Some((i, c)) = chars.next() {
            if !is_printable(c) || c == '\u{feff}' || is_break(c) || c == '"' || c == '\\' {
                self.put('\\');
                match escape(c) {
                    Some(e) => self.put(e),
                    None => {
                        let code = u32::from(c);
                        let text = match code {
                            0..=0xff => format!("x{code:02X}"),
                            0x100..=0xffff => format!("u{code:04X}"),
                            _ => format!("U{code:08X}"),
                        };
                        self.write_raw(&text);
                    }
                }
                spaces = false;
            } else if c == ' ' {
                if allow_breaks && !spaces && self.column > BEST_WIDTH && i != 0 && i != last {
                    self.write_indent();
                    if chars.peek().is_some_and(|&(_, n)| n == ' ') {
                        self.put('\\');
                    }
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                self.put(c);
                spaces = false;
            }
        }
        self.write_indicator("\"", false, false, false);
        self.whitespace = false;
        self.indention = false;
    }

    fn write_literal(&mut self, s: &str) {
        self.write_indicator("|", true, false, false);
        if s.starts_with(|c: char| c == ' ' || is_break(c)) {
            self.write_indicator(&BEST_INDENT.to_string(), false, false, false);
        }
        let mut tail = s.chars().rev();
        let chomp = match (tail.next(), tail.next()) {
            (Some(c), _) if !is_break(c) => Some("-"),
            (Some(_), None) => Some("+"),
            (Some(_), Some(c)) if is_break(c) => Some("+"),
            (None, _) => Some("-"),
            _ => None,
        };
        self.open_ended = chomp == Some("+");
        if let Some(chomp) = chomp {
            self.write_indicator(chomp, false, false, false);
        }
        self.put_break();
        self.indention = true;
        self.whitespace = true;
        let mut breaks = true;
        for c in s.chars() {
            if is_break(c) {
                self.write_break(c);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                self.put(c);
                self.indention = false;
                breaks = false;
            }
        }
    }
}

/// libyaml's `yaml_emitter_analyze_scalar`, for the block context (flow never holds scalars
/// here) and with Psych's `unicode` output on.
fn analyze(s: &str) -> Analysis {
    if s.is_empty() {
        return Analysis {
            multiline: false,
            block_plain_allowed: true,
            single_quoted_allowed: true,
            block_allowed: false,
        };
    }
    let mut block_indicators = s.starts_with("---") || s.starts_with("...");
    let (mut line_breaks, mut special_characters) = (false, false);
    let (mut leading_space, mut leading_break) = (false, false);
    let (mut trailing_space, mut trailing_break) = (false, false);
    let (mut break_space, mut space_break) = (false, false);
    let (mut previous_space, mut previous_break) = (false, false);
    let mut preceded_by_whitespace = true;
    let mut chars = s.chars().peekable();
    let mut first = true;
    while let Some(c) = chars.next() {
        let next = chars.peek().copied();
        let last = next.is_none();
        let followed_by_whitespace = next.is_none_or(is_blankz);
        if first {
            if "#,[]{}&*!|>'\"%@`".contains(c) || (c == '-' && followed_by_whitespace) {
                block_indicators = true;
            }
            if (c == '?' || c == ':') && followed_by_whitespace {
                block_indicators = true;
            }
        } else if (c == ':' && followed_by_whitespace) || (c == '#' && preceded_by_whitespace) {
            block_indicators = true;
        }
        if !is_printable(c) {
            special_characters = true;
        }
        if is_break(c) {
            line_breaks = true;
        }
        if c == ' ' {
            leading_space |= first;
            trailing_space |= last;
            break_space |= previous_break;
            previous_space = true;
            previous_break = false;
        } else if is_break(c) {
            leading_break |= first;
            trailing_break |= last;
            space_break |= previous_space;
            previous_space = false;
            previous_break = true;
        } else {
            previous_space = false;
            previous_break = false;
        }
        preceded_by_whitespace = is_blankz(c);
        first = false;
    }
    let plain_ok = !(leading_space
        || leading_break
        || trailing_space
        || trailing_break
        || break_space
        || space_break
        || special_characters
        || line_breaks
        || block_indicators);
    Analysis {
        multiline: line_breaks,
        block_plain_allowed: plain_ok,
        single_quoted_allowed: !(break_space || space_break || special_characters),
        block_allowed: !(trailing_space || space_break || special_characters),
    }
}

/// libyaml's `IS_PRINTABLE`: what may appear unescaped in YAML output.
fn is_printable(c: char) -> bool {
    matches!(c, '\n' | '\u{20}'..='\u{7e}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}')
        && c != '\u{feff}'
}

/// libyaml's `IS_BREAK`.
fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// libyaml's `IS_BLANKZ`: a space, tab or line break (the end of the string counts too).
fn is_blankz(c: char) -> bool {
    c == ' ' || c == '\t' || is_break(c) || c == '\0'
}

/// The short escapes of libyaml's double-quoted writer.
fn escape(c: char) -> Option<char> {
    Some(match c {
        '\0' => '0',
        '\u{7}' => 'a',
        '\u{8}' => 'b',
        '\t' => 't',
        '\n' => 'n',
        '\u{b}' => 'v',
        '\u{c}' => 'f',
        '\r' => 'r',
        '\u{1b}' => 'e',
        '"' => '"',
        '\\' => '\\',
        '\u{85}' => 'N',
        '\u{a0}' => '_',
        '\u{2028}' => 'L',
        '\u{2029}' => 'P',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::to_yaml;
    use serde_json::json;

    #[test]
    fn documents_like_psych() {
        // Expected values printed by `ruby -ryaml -e 'p ...to_yaml'` (Psych 4.0.3).
        assert_eq!(to_yaml(&json!(null)), "---\n");
        assert_eq!(to_yaml(&json!("foo")), "--- foo\n");
        assert_eq!(to_yaml(&json!({})), "--- {}\n");
        assert_eq!(to_yaml(&json!("a\nb")), "--- |-\n  a\n  b\n");
        assert_eq!(
            to_yaml(&json!({"a": null, "e": ["x", {"f": "g", "h": ["i"]}], "j": [["k"]]})),
            "---\na:\ne:\n- x\n- f: g\n  h:\n  - i\nj:\n- - k\n"
        );
    }
}
