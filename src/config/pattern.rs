//! The `pattern` field: the pair of delimiters a template's tags use.

use std::fmt;

/// Why a `pattern` string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid pattern {0:?}: expected two delimiters separated by white space, like \"<% %>\"")]
pub struct PatternError(pub String);

/// Tag delimiters, `<% %>` unless an entry says otherwise (Chef-seeded templates use `#% %#`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pattern {
    /// Opens a tag, e.g. `<%`.
    pub open: String,
    /// Closes a tag, e.g. `%>`.
    pub close: String,
}

impl Pattern {
    /// Parses `"OPEN CLOSE"`.
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        let mut parts = text.split_whitespace();
        match (parts.next(), parts.next(), parts.next()) {
            (Some(open), Some(close), None) => Ok(Pattern {
                open: open.to_string(),
                close: close.to_string(),
            }),
            _ => Err(PatternError(text.to_string())),
        }
    }

    /// `{{ }}` means the template is plain Tera and is used untranslated.
    pub fn is_plain_tera(&self) -> bool {
        self.open == "{{" && self.close == "}}"
    }
}

impl Default for Pattern {
    fn default() -> Self {
        Pattern {
            open: "<%".to_string(),
            close: "%>".to_string(),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.open, self.close)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_two_tokens() {
        let p = Pattern::parse("#%  %#").unwrap();
        assert_eq!((p.open.as_str(), p.close.as_str()), ("#%", "%#"));
        assert!(Pattern::parse("{{ }}").unwrap().is_plain_tera());
    }

    #[test]
    fn refuses_other_shapes() {
        assert!(Pattern::parse("<%").is_err());
        assert!(Pattern::parse("").is_err());
        assert!(Pattern::parse("a b c").is_err());
    }
}
