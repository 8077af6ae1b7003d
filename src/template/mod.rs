//! Template rendering: Erubis-style delimiters over Tera (SPEC section 4).
//!
//! A template is compiled once ([`Template::load`]): its `OPEN CLOSE` tags are translated to
//! Tera ([`erubis`]), unless the pattern is `{{ }}` (plain Tera), and the result is parsed by
//! a Tera instance of its own, with autoescape off, reconfig's filters ([`filters`]) and the
//! confd-style functions ([`functions`]). Each render then fills a context with `data`,
//! `altdata` and `watched` and gives the functions its snapshot ([`scope`]).

mod args;
mod erubis;
mod error;
mod filters;
mod functions;
mod gopath;
mod json;
mod pattern;
mod psych;
mod ruby_float;
mod scope;
mod yaml;

use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};
use tera::{Context, Tera};

use crate::snapshot::Snapshot;

pub use error::{Location, TemplateError};
pub use pattern::{Pattern, PatternError};

/// What one render sees: the data model of one entry and the snapshot it came from.
pub struct RenderInput<'a> {
    /// `data`: the watched key's value, tree or directory listing.
    pub data: &'a Value,
    /// `altdata`: name → tree object of each altkey.
    pub altdata: &'a Value,
    /// `watched`: the watched key, prefix applied.
    pub watched: &'a str,
    /// The keys the confd-style functions (`getv`, `ls`, ...) look up.
    pub snapshot: &'a Arc<Snapshot>,
}

/// A compiled template, ready to render many times (from any thread).
pub struct Template {
    name: String,
    tera: Tera,
    /// Whether the template can name the `reconfig` object; if not, it is left out of the
    /// context rather than cloning `data` and `altdata` a second time per render.
    needs_reconfig: bool,
}

impl Template {
    /// Reads and compiles a template file; its path is the name errors use.
    pub fn load(path: &Path, pattern: &Pattern) -> Result<Template, TemplateError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            file: name.clone(),
            source,
        })?;
        compile(&name, &text, pattern)
    }

    /// Renders to text; the same input always gives the same bytes.
    pub fn render(&self, input: &RenderInput<'_>) -> Result<String, TemplateError> {
        let context = self.context(input);
        let scope = scope::Scope::enter(Arc::clone(input.snapshot));
        self.tera
            .render(&self.name, &context)
            .map_err(|e| TemplateError::render(&self.name, scope.line(), &e))
    }

    /// `data`, `altdata`, `watched`, and the same under `reconfig.` (reconfig.rb's names).
    fn context(&self, input: &RenderInput<'_>) -> Context {
        let mut top = Map::new();
        if self.needs_reconfig {
            let mut reconfig = Map::new();
            reconfig.insert("data".into(), input.data.clone());
            reconfig.insert("altdata".into(), input.altdata.clone());
            reconfig.insert("watched".into(), Value::String(input.watched.to_string()));
            top.insert("reconfig".into(), Value::Object(reconfig));
        }
        top.insert("data".into(), input.data.clone());
        top.insert("altdata".into(), input.altdata.clone());
        top.insert("watched".into(), Value::String(input.watched.to_string()));
        Context::from_value(Value::Object(top)).expect("an object is a valid context")
    }
}

/// Compiles template text; `name` is the file name errors use.
pub fn compile(name: &str, text: &str, pattern: &Pattern) -> Result<Template, TemplateError> {
    let mut tera = Tera::default();
    tera.autoescape_on(vec![]);
    filters::register(&mut tera);
    functions::register(&mut tera);
    scope::register(&mut tera);
    let source = if pattern.is_plain_tera() {
        text.to_string()
    } else {
        let translation = erubis::translate(text, pattern);
        tera.register_function(erubis::LITERAL_FN, translation.literals);
        translation.source
    };
    tera.add_raw_template(name, &source)
        .map_err(|e| TemplateError::syntax(name, &e))?;
    Ok(Template {
        name: name.to_string(),
        tera,
        needs_reconfig: source.contains("reconfig") || source.contains("__tera_context"),
    })
}
