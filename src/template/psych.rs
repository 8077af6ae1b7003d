//! How Psych (Ruby's YAML, 4.0 as in Ruby 3.1) asks libyaml to write a string: its choice of
//! scalar style in `YAMLTree#visit_String`, including the `ScalarScanner#tokenize` test of
//! whether a plain string would read back as something else (`'true'`, `'1'`, `''`).
//!
//! Ruby's regexps anchor `^`/`$` at every line; the ports below use `(?m)` for the same, and
//! ASCII classes where Ruby's `\d`/`\s` are ASCII-only.

use std::sync::LazyLock;

use regex::Regex;

/// The scalar style Psych requests; libyaml may still fall back to a quoted one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Literal,
}

/// What Psych emits for one string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StringScalar {
    /// The style requested from the emitter.
    pub style: Style,
    /// `<<` is written with an explicit `!!str` tag, so it cannot read back as a merge key.
    pub tagged: bool,
}

static NON_WORD_START: LazyLock<Regex> = LazyLock::new(|| re(r#"(?m)^[^\w][^"]*$"#));
static OCTAL_LOOKALIKE: LazyLock<Regex> = LazyLock::new(|| re(r"\A0[0-7]*[89]"));
static WORDY: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?m)^[^0-9.:\-]?[\p{Alphabetic}_ \t\r\n\x0B\x0C!@#$%^&*(){}<>|/\\~;=]+")
});
static TIME: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?m)^-?[0-9]{4}-([0-9]{1,2})-([0-9]{1,2})(?:[Tt]|[ \t\r\n\x0B\x0C]+)([0-9]{1,2}):([0-9][0-9]):([0-9][0-9])(?:\.[0-9]*)?(?:[ \t\r\n\x0B\x0C]*(?:Z|[-+][0-9]{1,2}:?(?:[0-9][0-9])?))?$")
});
static DATE: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?m)^([0-9]{4})-(1[012]|0[0-9]|[0-9])-([12][0-9]|3[01]|0[0-9]|[0-9])$")
});
static SPECIAL_FLOAT: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?mi)^(?:\+?\.inf|-\.inf|\.nan)$"));
static SYMBOL: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^:."));
static SEXAGESIMAL: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?m)^[-+]?[0-9][0-9_]*(:[0-5]?[0-9]){1,2}(?:\.[0-9_]*)?$")
});
static FLOAT: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?m)^(?:[-+]?([0-9][0-9_,]*)?\.[0-9]*([eE][-+][0-9]+)?)$"));
static LONE_DOT: LazyLock<Regex> = LazyLock::new(|| re(r"\A[-+]?\.\n?\z"));
static INTEGER: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?m)^(?:[-+]?0b[0-1_,]+|[-+]?0[0-7_,]+|[-+]?(?:0|[1-9](?:[0-9]|,[0-9]|_[0-9])*)|[-+]?0x[0-9a-fA-F_,]+)$")
});
static NULL: LazyLock<Regex> = LazyLock::new(|| re(r"(?mi)^null$"));
static TRUE: LazyLock<Regex> = LazyLock::new(|| re(r"(?mi)^(yes|true|on)$"));
static FALSE: LazyLock<Regex> = LazyLock::new(|| re(r"(?mi)^(no|false|off)$"));
static NOT_BOOL_START: LazyLock<Regex> = LazyLock::new(|| re(r"(?mi)^[^ytonf~]"));

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("the Psych patterns are valid")
}

/// Psych's choice for a string (`YAMLTree#visit_String` without `line_width`).
pub fn string_scalar(s: &str) -> StringScalar {
    let style = if has_inner_newline(s) {
        Style::Literal
    } else if s == "<<" {
        return StringScalar {
            style: Style::SingleQuoted,
            tagged: true,
        };
    } else if s == "y" || s == "n" || NON_WORD_START.is_match(s) {
        Style::DoubleQuoted
    } else if !tokenizes_as_string(s) || OCTAL_LOOKALIKE.is_match(s) {
        Style::SingleQuoted
    } else {
        Style::Plain
    };
    StringScalar {
        style,
        tagged: false,
    }
}

/// Ruby's `s =~ /\n(?!\Z)/`: a line break other than one ending the string.
fn has_inner_newline(s: &str) -> bool {
    let len = s.len();
    s.match_indices('\n').any(|(i, _)| {
        let after = i + 1;
        !(after == len || (after == len - 1 && s.ends_with('\n')))
    })
}

/// Whether `ScalarScanner#tokenize` returns the string itself, i.e. a plain scalar would read
/// back as the same string (not nil, a boolean, a number, a time, a date or a symbol).
fn tokenizes_as_string(s: &str) -> bool {
    if s.is_empty() {
        return false;
    }
    if WORDY.is_match(s) || s.contains('\n') {
        if s.chars().count() > 5 || NOT_BOOL_START.is_match(s) {
            return true;
        }
        return !(s == "~" || NULL.is_match(s) || TRUE.is_match(s) || FALSE.is_match(s));
    }
    if let Some(c) = TIME.captures(s) {
        return !valid_time(&c);
    }
    if let Some(c) = DATE.captures(s) {
        return !valid_date(&c);
    }
    if SPECIAL_FLOAT.is_match(s) || SYMBOL.is_match(s) || SEXAGESIMAL.is_match(s) {
        return false;
    }
    if FLOAT.is_match(s) {
        return LONE_DOT.is_match(s);
    }
    !INTEGER.is_match(s)
}

fn field(c: &regex::Captures<'_>, i: usize) -> u32 {
    c[i].parse().expect("the pattern captures digits only")
}

/// `Time.utc` raises (and Psych keeps the string) for fields out of range.
fn valid_time(c: &regex::Captures<'_>) -> bool {
    (1..=12).contains(&field(c, 1))
        && (1..=31).contains(&field(c, 2))
        && field(c, 3) <= 24
        && field(c, 4) <= 59
        && field(c, 5) <= 60
}

/// `Date.strptime(s, '%Y-%m-%d')` raises (and Psych keeps the string) for impossible dates.
fn valid_date(c: &regex::Captures<'_>) -> bool {
    let (year, month, day) = (field(c, 1), field(c, 2), field(c, 3));
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn style(s: &str) -> Style {
        string_scalar(s).style
    }

    #[test]
    fn strings_that_read_back_as_other_types_are_single_quoted() {
        for s in [
            "", "true", "Yes", "off", "null", "1", "1_000", "1,000", "0x1F", "1.5", "1.", "12:30",
            "2024-01-02", "2024-01-02 10:00:00", "09",
        ] {
            assert_eq!(style(s), Style::SingleQuoted, "{s:?}");
        }
    }

    #[test]
    fn plain_strings_stay_plain() {
        for s in [
            "foo", "a: b", "x#y", "0o17", "2023-02-30", "hello world", "true story", "a\n",
        ] {
            assert_eq!(style(s), Style::Plain, "{s:?}");
        }
    }

    #[test]
    fn other_choices() {
        for s in ["/a/b", "~", ".", ".inf", ":sym", "-1", " lead"] {
            assert_eq!(style(s), Style::DoubleQuoted, "{s:?}");
        }
        assert_eq!(style("y"), Style::DoubleQuoted);
        assert_eq!(style("a\n\n"), Style::DoubleQuoted);
        assert_eq!(style("a\nb"), Style::Literal);
        assert!(string_scalar("<<").tagged);
    }
}
