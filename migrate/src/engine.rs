//! What only reconfig can say about a migration, asked of the caller: this crate cannot
//! depend on reconfig (reconfig depends on it), so reconfig hands its template engine in
//! as an [`Engine`] — how it reads an entry's `pattern`, and whether a converted template
//! compiles.

use std::fmt;

/// A template's tag delimiters, such as reconfig.rb's `<% %>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delimiters {
    /// Opens a tag.
    pub open: String,
    /// Closes a tag.
    pub close: String,
}

impl Delimiters {
    /// Plain Tera's `{{ }}`, which converted confd templates are written in.
    pub fn plain() -> Delimiters {
        Delimiters {
            open: "{{".into(),
            close: "}}".into(),
        }
    }
}

/// reconfig.rb's delimiters for an entry without a `pattern`.
impl Default for Delimiters {
    fn default() -> Self {
        Delimiters {
            open: "<%".into(),
            close: "%>".into(),
        }
    }
}

impl fmt::Display for Delimiters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.open, self.close)
    }
}

/// Why reconfig does not compile a converted template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The line the compiler points at, when it does.
    pub line: Option<usize>,
    /// The compiler's message.
    pub message: String,
}

/// reconfig's template engine, as the migrators ask it.
pub trait Engine {
    /// The delimiters of an entry's `pattern` as reconfig reads it, or why reconfig refuses
    /// it (one line).
    fn delimiters(&self, pattern: &str) -> Result<Delimiters, String>;

    /// Whether reconfig compiles `text`, a converted template (named `name` in messages),
    /// with `delimiters`.
    fn compiles(&self, name: &str, text: &str, delimiters: &Delimiters) -> Result<(), Refused>;
}
