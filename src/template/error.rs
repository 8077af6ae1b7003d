//! Template errors: one line naming the template file, the line in the original template
//! (when known) and the reason, distilled from Tera's multi-line, chained errors.

use std::fmt;

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
        /// The innermost Tera error, on one line.
        reason: String,
    },
}

impl TemplateError {
    /// The line in the original template, when known.
    pub fn line(&self) -> Option<usize> {
        match self {
            TemplateError::Read { .. } => None,
            TemplateError::Syntax { at, .. } | TemplateError::Render { at, .. } => at.line,
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

    /// A render error from Tera, at the line the render had reached; `rendered` is the
    /// name Tera knew the template by, which its messages repeat.
    pub(super) fn render(
        file: &str,
        rendered: &str,
        line: Option<usize>,
        error: &tera::Error,
    ) -> TemplateError {
        let message = innermost(error);
        let suffix = format!(" while rendering '{rendered}'");
        TemplateError::Render {
            at: Location {
                file: file.to_string(),
                line,
            },
            reason: one_line(&message.replacen(&suffix, "", 1)),
        }
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
