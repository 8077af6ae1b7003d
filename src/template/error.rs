//! Template errors: one line naming the template file, the line in the original template
//! (when known) and the reason, distilled from Tera's multi-line, chained errors. A reason
//! never shows a value from etcd: Tera's messages and some functions' quote what they were
//! given, which may be a secret, so every value the render could see is masked in them.

use std::borrow::Cow;
use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

use super::fault::Fault;
use super::limits::Exceeded;

/// Where in a template something went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The template's path, as given to [`super::Template::load`].
    pub file: String,
    /// The line in the original template, when known.
    pub line: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}", self.file),
            None => write!(f, "{}", self.file),
        }
    }
}

/// Why a template could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The template file could not be read (missing, unreadable, not UTF-8).
    #[error("{file}: cannot read template: {source}")]
    Read {
        /// The template's path.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The template does not compile.
    #[error("{at}: syntax error: {reason}")]
    Syntax {
        /// Where, the line as Tera's parser reports it.
        at: Location,
        /// The parser's expectation, on one line.
        reason: String,
    },
    /// Rendering failed: an undefined variable, a missing key, a failing filter...
    #[error("{at}: {reason}")]
    Render {
        /// Where, the line of the last tag reached.
        at: Location,
        /// The innermost Tera error, on one line, values masked.
        reason: String,
    },
    /// Tera itself failed (a panic inside it, contained): the template or a value reaches
    /// a fault of the engine's.
    #[error("{at}: the template engine failed ({reason}); change the template or the value")]
    Engine {
        /// Where: the line the render had reached, when known.
        at: Location,
        /// The engine's own message, values masked.
        reason: String,
    },
    /// The render went beyond one of its limits.
    #[error("{at}: {exceeded}")]
    Limit {
        /// Where, when it could be located.
        at: Location,
        /// Which limit.
        exceeded: Exceeded,
    },
}

/// What a masked value reads as in an error.
const MASK: &str = "<value>";

/// Values this short are masked only where a message quotes them whole: anywhere else they
/// would mask ordinary words.
const SHORT: usize = 3;

impl TemplateError {
    /// The line in the original template, when known.
    pub fn line(&self) -> Option<usize> {
        match self {
            TemplateError::Read { .. } => None,
            TemplateError::Syntax { at, .. }
            | TemplateError::Render { at, .. }
            | TemplateError::Engine { at, .. }
            | TemplateError::Limit { at, .. } => at.line,
        }
    }

    /// A compile error from Tera: pest's `--> line:col` and `= expected ...` when present.
    pub(super) fn syntax(file: &str, error: &tera::Error) -> TemplateError {
        let message = innermost(error);
        let line = message.lines().find_map(|l| {
            let (line, _col) = l.trim_start().strip_prefix("--> ")?.split_once(':')?;
            line.parse().ok()
        });
        let reason = message
            .lines()
            .find_map(|l| l.trim_start().strip_prefix("= "))
            .map_or_else(|| one_line(&message), one_line);
        TemplateError::Syntax {
            at: Location {
                file: file.to_string(),
                line,
            },
            reason,
        }
    }

    /// The same syntax error, saying that the template looks like reconfig.rb's Ruby and
    /// that `reconfig migrate` converts it.
    pub(super) fn pointing_to_migrate(self) -> TemplateError {
        match self {
            TemplateError::Syntax { at, reason } => TemplateError::Syntax {
                at,
                reason: format!(
                    "{reason} (this looks like reconfig.rb's Ruby: convert the configuration \
                     with `reconfig migrate`)"
                ),
            },
            other => other,
        }
    }

    /// Whether the render stopped at the end of its time slice (to be finished elsewhere).
    pub fn is_slice(&self) -> bool {
        matches!(
            self,
            TemplateError::Limit {
                exceeded: Exceeded::Slice,
                ..
            }
        )
    }

    /// A render error from Tera, at the line the render had reached; `rendered` is the
    /// name Tera knew the template by, which its messages repeat; `values` are every value
    /// the render could see, masked in the reason.
    pub(super) fn render<'v>(
        file: &str,
        rendered: &str,
        line: Option<usize>,
        error: &tera::Error,
        values: impl Iterator<Item = &'v [u8]>,
    ) -> TemplateError {
        let message = innermost(error);
        let suffix = format!(" while rendering '{rendered}'");
        TemplateError::Render {
            at: Location {
                file: file.to_string(),
                line,
            },
            reason: go_values_named(mask(one_line(&message.replacen(&suffix, "", 1)), values)),
        }
    }

    /// A fault inside the engine while it parsed or rendered `file`; `values` as for
    /// [`TemplateError::render`].
    pub(super) fn engine<'v>(
        file: &str,
        line: Option<usize>,
        fault: &Fault,
        values: impl Iterator<Item = &'v [u8]>,
    ) -> TemplateError {
        TemplateError::Engine {
            at: Location {
                file: file.to_string(),
                line,
            },
            reason: mask(one_line(&fault.0), values),
        }
    }

    /// A render stopped by one of its limits.
    pub(super) fn limit(file: &str, line: Option<usize>, exceeded: Exceeded) -> TemplateError {
        TemplateError::Limit {
            at: Location {
                file: file.to_string(),
                line,
            },
            exceeded,
        }
    }
}

/// `message` with every one of `values` in it, as it is or as JSON escapes it (Tera quotes
/// values as JSON), replaced by [`MASK`]; longest first, so a value containing another is
/// masked whole.
fn mask<'v>(mut message: String, values: impl Iterator<Item = &'v [u8]>) -> String {
    let mut texts: Vec<Cow<'_, str>> = Vec::new();
    for value in values.filter_map(|v| std::str::from_utf8(v).ok()) {
        let json = serde_json::to_string(value).expect("a string is valid JSON");
        let escaped = &json[1..json.len() - 1];
        if escaped != value {
            texts.push(Cow::Owned(escaped.to_string()));
        }
        if !value.is_empty() {
            texts.push(Cow::Borrowed(value));
        }
    }
    texts.sort_unstable_by_key(|v| std::cmp::Reverse(v.len()));
    texts.dedup();
    for value in texts.iter().map(|v| v.as_ref()) {
        if value.len() >= SHORT {
            if message.contains(value) {
                message = message.replace(value, MASK);
            }
            continue;
        }
        for quote in ['"', '\'', '`'] {
            let quoted = format!("{quote}{value}{quote}");
            if message.contains(&quoted) {
                message = message.replace(&quoted, &format!("{quote}{MASK}{quote}"));
            }
        }
    }
    message
}

/// `message` with each Go value Tera quotes (an arena handle, `{"\u0000go":1}`, in
/// backticks or not) called what it is: "a Go value".
fn go_values_named(message: String) -> String {
    static HANDLE: LazyLock<Regex> = LazyLock::new(|| {
        let handle = regex::escape(&super::gotmpl::handle_as_json());
        Regex::new(&format!(r"`{handle}\d+\}}`|{handle}\d+\}}"))
            .expect("the handle pattern is valid")
    });
    match HANDLE.replace_all(&message, "a Go value") {
        Cow::Borrowed(_) => message,
        Cow::Owned(named) => named,
    }
}

/// The message of the innermost error in Tera's chain: the actual cause.
fn innermost(error: &tera::Error) -> String {
    let mut current: &dyn std::error::Error = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// Collapses white space, line breaks included, to single spaces.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_values_are_named_wherever_tera_quotes_them() {
        let quoted = |i: u32| format!("{}{i}}}", super::super::gotmpl::handle_as_json());
        let message = format!("got `{}` and {} then {{x}}", quoted(1), quoted(22));
        assert_eq!(
            go_values_named(message),
            "got a Go value and a Go value then {x}"
        );
        let broken = format!("{}x}}", super::super::gotmpl::handle_as_json());
        assert_eq!(go_values_named(broken.clone()), broken);
    }

    #[test]
    fn values_are_masked_in_reasons() {
        let values: [&[u8]; 5] = [b"SECRET-in-json", b"SECRET", b"7", b"\xff", b"a\"b\nc"];
        let masked = mask(
            "getv: key \"SECRET-in-json\" not found; got `7` for 7 at line 7".into(),
            values.into_iter(),
        );
        assert_eq!(
            masked,
            "getv: key \"<value>\" not found; got `<value>` for 7 at line 7"
        );
        let masked = mask(r#"got `"a\"b\nc"`"#.into(), values.into_iter());
        assert_eq!(masked, r#"got `"<value>"`"#);
    }
}
