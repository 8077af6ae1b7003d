//! How Psych (Ruby's YAML, 4.0 as in Ruby 3.1) asks libyaml to write a string: its choice of
//! scalar style in `YAMLTree#visit_String`, including the `ScalarScanner#tokenize` test of
//! whether a plain string would read back as something else (`'true'`, `'1'`, `''`).
//!
//! Ruby's regexps anchor `^`/`$` at every line; the ports below use `(?m)` for the same, and
//! ASCII classes where Ruby's `\d`/`\s` are ASCII-only.

use std::sync::LazyLock;

use regex::{Regex, RegexSet};

/// The scalar style Psych requests; libyaml may still fall back to a quoted one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `foo`
    Plain,
    /// `'foo'`
    SingleQuoted,
    /// `"foo"`
    DoubleQuoted,
    /// `|` block
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

/// The regexps of Psych that every string is tried against, matched in one pass.
#[derive(Clone, Copy)]
enum Test {
    /// `visit_String`: starts (a line) with a non-word character and has no `"` after it.
    NonWordStart,
    /// `visit_String`: looks octal but is not (`09`).
    OctalLookalike,
    /// `tokenize`: starts like a word, so it is a string unless it is a short boolean/null.
    Wordy,
    /// `tokenize`: a timestamp.
    Time,
    /// `tokenize`: a date.
    Date,
    /// `tokenize`: `.inf`, `-.inf`, `.nan`.
    SpecialFloat,
    /// `tokenize`: a `:symbol`.
    Symbol,
    /// `tokenize`: a base-60 number (`12:30`).
    Sexagesimal,
    /// `tokenize`: a float.
    Float,
    /// `tokenize`: an integer, also with `,`/`_` separators, octal, hex or binary.
    Integer,
}

impl Test {
    /// Every test, in declaration order (a test's index in the set is its discriminant).
    const ALL: [Test; 10] = [
        Test::NonWordStart,
        Test::OctalLookalike,
        Test::Wordy,
        Test::Time,
        Test::Date,
        Test::SpecialFloat,
        Test::Symbol,
        Test::Sexagesimal,
        Test::Float,
        Test::Integer,
    ];

    fn regex(self) -> &'static str {
        match self {
            Test::NonWordStart => r#"(?m)^[^\w][^"]*$"#,
            Test::OctalLookalike => r"\A0[0-7]*[89]",
            Test::Wordy => {
                r"(?m)^[^0-9.:\-]?[\p{Alphabetic}_ \t\r\n\x0B\x0C!@#$%^&*(){}<>|/\\~;=]+"
            }
            Test::Time => TIME,
            Test::Date => DATE,
            Test::SpecialFloat => r"(?mi)^(?:\+?\.inf|-\.inf|\.nan)$",
            Test::Symbol => r"(?m)^:.",
            Test::Sexagesimal => r"(?m)^[-+]?[0-9][0-9_]*(:[0-5]?[0-9]){1,2}(?:\.[0-9_]*)?$",
            Test::Float => r"(?m)^(?:[-+]?([0-9][0-9_,]*)?\.[0-9]*([eE][-+][0-9]+)?)$",
            Test::Integer => {
                r"(?m)^(?:[-+]?0b[0-1_,]+|[-+]?0[0-7_,]+|[-+]?(?:0|[1-9](?:[0-9]|,[0-9]|_[0-9])*)|[-+]?0x[0-9a-fA-F_,]+)$"
            }
        }
    }
}

static TESTS: LazyLock<RegexSet> = LazyLock::new(|| {
    RegexSet::new(Test::ALL.map(Test::regex)).expect("the Psych patterns are valid")
});

const TIME: &str = r"(?m)^-?[0-9]{4}-([0-9]{1,2})-([0-9]{1,2})(?:[Tt]|[ \t\r\n\x0B\x0C]+)([0-9]{1,2}):([0-9][0-9]):([0-9][0-9])(?:\.[0-9]*)?(?:[ \t\r\n\x0B\x0C]*(?:Z|[-+][0-9]{1,2}:?(?:[0-9][0-9])?))?$";
const DATE: &str = r"(?m)^([0-9]{4})-(1[012]|0[0-9]|[0-9])-([12][0-9]|3[01]|0[0-9]|[0-9])$";

static TIME_FIELDS: LazyLock<Regex> = LazyLock::new(|| re(TIME));
static DATE_FIELDS: LazyLock<Regex> = LazyLock::new(|| re(DATE));
static LONE_DOT: LazyLock<Regex> = LazyLock::new(|| re(r"\A[-+]?\.\n?\z"));
static NULL: LazyLock<Regex> = LazyLock::new(|| re(r"(?mi)^null$"));
static TRUE: LazyLock<Regex> = LazyLock::new(|| re(r"(?mi)^(yes|true|on)$"));
static FALSE: LazyLock<Regex> = LazyLock::new(|| re(r"(?mi)^(no|false|off)$"));
static NOT_BOOL_START: LazyLock<Regex> = LazyLock::new(|| re(r"(?mi)^[^ytonf~]"));

/// Which of the [`Test`]s a string passes.
struct Matches(regex::SetMatches);

impl Matches {
    fn of(s: &str) -> Matches {
        Matches(TESTS.matches(s))
    }

    fn has(&self, test: Test) -> bool {
        self.0.matched(test as usize)
    }
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("the Psych patterns are valid")
}

/// Psych's choice for a string (`YAMLTree#visit_String` without `line_width`).
pub fn string_scalar(s: &str) -> StringScalar {
    let matches = Matches::of(s);
    let style = if has_inner_newline(s) {
        Style::Literal
    } else if s == "<<" {
        return StringScalar {
            style: Style::SingleQuoted,
            tagged: true,
        };
    } else if s == "y" || s == "n" || matches.has(Test::NonWordStart) {
        Style::DoubleQuoted
    } else if !tokenizes_as_string(s, &matches) || matches.has(Test::OctalLookalike) {
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
fn tokenizes_as_string(s: &str, matches: &Matches) -> bool {
    if s.is_empty() {
        return false;
    }
    if matches.has(Test::Wordy) || s.contains('\n') {
        if s.chars().count() > 5 || NOT_BOOL_START.is_match(s) {
            return true;
        }
        return !(s == "~" || NULL.is_match(s) || TRUE.is_match(s) || FALSE.is_match(s));
    }
    if matches.has(Test::Time) {
        return TIME_FIELDS.captures(s).is_none_or(|c| !valid_time(&c));
    }
    if matches.has(Test::Date) {
        return DATE_FIELDS.captures(s).is_none_or(|c| !valid_date(&c));
    }
    if [Test::SpecialFloat, Test::Symbol, Test::Sexagesimal]
        .iter()
        .any(|&p| matches.has(p))
    {
        return false;
    }
    if matches.has(Test::Float) {
        return LONE_DOT.is_match(s);
    }
    !matches.has(Test::Integer)
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
            "",
            "true",
            "Yes",
            "off",
            "null",
            "1",
            "1_000",
            "1,000",
            "0x1F",
            "1.5",
            "1.",
            "12:30",
            "2024-01-02",
            "2024-01-02 10:00:00",
            "09",
        ] {
            assert_eq!(style(s), Style::SingleQuoted, "{s:?}");
        }
    }

    #[test]
    fn plain_strings_stay_plain() {
        for s in [
            "foo",
            "a: b",
            "x#y",
            "0o17",
            "2023-02-30",
            "hello world",
            "true story",
            "a\n",
        ] {
            assert_eq!(style(s), Style::Plain, "{s:?}");
        }
    }

    #[test]
    fn tests_are_indexed_by_discriminant() {
        for (i, test) in Test::ALL.into_iter().enumerate() {
            assert_eq!(test as usize, i);
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
