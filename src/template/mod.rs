//! The render on the data path: a snapshot's data model (`model`) through a template —
//! Erubis-style delimiters over Tera.
//!
//! A template is compiled once ([`Template::load`]): its `OPEN CLOSE` tags are translated to
//! Tera (`erubis`), unless the pattern is `{{ }}` (plain Tera), and the result is parsed by
//! a Tera instance of its own, with autoescape off, reconfig's filters (`filters`), Ruby's
//! output and methods with Ruby's meaning (`ruby`: `to_json`/`to_yaml` byte for byte as
//! reconfig.rb printed them, the `rb_*` filters of templates converted from reconfig.rb)
//! and confd's functions (`confd`, over Go path semantics), and Go's `text/template` values
//! and confd's functions with their Go meaning for templates converted from confd
//! (`gotmpl`). Each render fills a context with `data`, `altdata` and `watched` and gives
//! the functions its snapshot (`scope`) and a Go value arena (`gotmpl::Session`).

mod args;
mod confd;
mod error;
mod erubis;
mod filters;
mod gotmpl;
mod limits;
pub mod model;
mod ruby;
mod scope;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tera::{Context, Tera};

use crate::config::Pattern;
use crate::etcd::Snapshot;

pub use error::TemplateError;
pub use limits::{Exceeded, RenderLimits};

/// What one render sees: the data model of one entry and the snapshot it came from. The
/// model is moved into the render, not copied: a large tree is held once.
pub struct RenderInput<'a> {
    /// `data`: the watched key's value, tree or directory listing.
    pub data: Value,
    /// `altdata`: name → tree object of each altkey.
    pub altdata: Value,
    /// `watched`: the watched key, prefix applied.
    pub watched: &'a str,
    /// The keys the confd-style functions (`getv`, `ls`, ...) look up.
    pub snapshot: &'a Arc<Snapshot>,
    /// The entry's `prefix`: confd's functions in converted templates take keys relative
    /// to it (`/` when `None`).
    pub prefix: Option<&'a str>,
    /// The keys whose trees the snapshot holds (the entry's key, altkeys and keys): a
    /// function asked for a key outside them says so.
    pub read: &'a [&'a str],
}

/// A compiled template, ready to render many times (from any thread).
pub struct Template {
    name: String,
    /// Holds the template under `name` and, for Erubis-style ones, its marked twin.
    tera: Tera,
    /// Name of the twin with line marks (not for plain Tera templates).
    marked: Option<String>,
    /// Whether the template can name the `reconfig` object; if not, it is left out of the
    /// context rather than cloning `data` and `altdata` a second time per render.
    needs_reconfig: bool,
    /// The size of the last output: the next render's buffer starts that large, instead of
    /// growing (and copying) its way up to a large file.
    last_len: AtomicUsize,
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

    /// Renders to text, held to `limits` (and stopped after `slice`, if given); the same
    /// input always gives the same bytes.
    pub fn render(
        &self,
        input: RenderInput<'_>,
        limits: &RenderLimits,
        slice: Option<Duration>,
    ) -> Result<String, TemplateError> {
        let snapshot = Arc::clone(input.snapshot);
        let scope = scope::Scope::enter(Arc::clone(&snapshot), input.read);
        let budget = limits::Budget::open(*limits, slice);
        let _go = gotmpl::Session::enter(input.prefix.unwrap_or("/"), input.read);
        let context = self.context(input);
        let hint = self.last_len.load(Ordering::Relaxed);
        let mut output = limits::Output::new(hint + hint / 16, limits);
        match self.tera.render_to(&self.name, &context, &mut output) {
            Ok(()) => {
                let output = output.into_bytes();
                self.last_len.store(output.len(), Ordering::Relaxed);
                // Tera writes only text: what it was given and what its filters return.
                Ok(String::from_utf8(output).expect("Tera renders valid UTF-8"))
            }
            Err(error) => {
                let exceeded = budget.exceeded();
                // Tera gives no line: the marked twin fails at the same place, recording
                // it — unless the render ran out of time, which a second run would too.
                let located = self
                    .marked
                    .as_ref()
                    .filter(|_| !exceeded.is_some_and(Exceeded::is_time))
                    .and_then(|marked| {
                        budget.restart();
                        let mut twin = limits::Output::new(0, limits);
                        let error = self.tera.render_to(marked, &context, &mut twin).err()?;
                        Some((marked, error))
                    });
                let line = located.as_ref().and_then(|_| scope.line());
                if let Some(exceeded) = exceeded {
                    return Err(TemplateError::limit(&self.name, line, exceeded));
                }
                let (rendered, error) = match &located {
                    Some((marked, error)) => (*marked, error),
                    None => (&self.name, &error),
                };
                let values = snapshot.iter().map(|(_, value)| value);
                Err(TemplateError::render(
                    &self.name, rendered, line, error, values,
                ))
            }
        }
    }

    /// `data`, `altdata`, `watched`, and the same under `reconfig.` (reconfig.rb's names).
    fn context(&self, input: RenderInput<'_>) -> Context {
        let mut top = Map::new();
        if self.needs_reconfig {
            let mut reconfig = Map::new();
            reconfig.insert("data".into(), input.data.clone());
            reconfig.insert("altdata".into(), input.altdata.clone());
            reconfig.insert("watched".into(), Value::String(input.watched.to_string()));
            top.insert("reconfig".into(), Value::Object(reconfig));
        }
        top.insert("data".into(), input.data);
        top.insert("altdata".into(), input.altdata);
        top.insert("watched".into(), Value::String(input.watched.to_string()));
        Context::from_value(Value::Object(top)).expect("an object is a valid context")
    }
}

/// A Tera instance with autoescape off and reconfig's filters and functions, Ruby-compatible
/// ones included; each template gets its own.
fn engine() -> Tera {
    let mut tera = Tera::default();
    tera.autoescape_on(vec![]);
    filters::register(&mut tera);
    ruby::register(&mut tera, engine);
    confd::register(&mut tera);
    gotmpl::register(&mut tera);
    scope::register(&mut tera);
    limits::register(&mut tera);
    tera
}

/// Whether a template that Tera refused looks like reconfig.rb's Ruby: it reads
/// `@reconfig[`, opens a block with `do |…|`, or has a tag holding only `end`.
fn looks_like_ruby(text: &str, pattern: &Pattern) -> bool {
    if text.contains("@reconfig[") {
        return true;
    }
    let mut rest = text;
    while let Some(start) = rest.find(&pattern.open) {
        let body = &rest[start + pattern.open.len()..];
        let Some(end) = body.find(&pattern.close) else {
            break;
        };
        let code = body[..end].trim_matches(|c: char| c == '-' || c.is_whitespace());
        if code == "end" || code.contains(" do |") || code.ends_with(" do") {
            return true;
        }
        rest = &body[end + pattern.close.len()..];
    }
    false
}

/// Compiles template text; `name` is the file name errors use.
pub fn compile(name: &str, text: &str, pattern: &Pattern) -> Result<Template, TemplateError> {
    let mut tera = engine();
    let mut sources = vec![];
    let (marked, needs_reconfig) = if pattern.is_plain_tera() {
        sources.push((name.to_string(), text.to_string()));
        (None, erubis::names_reconfig(text))
    } else {
        let translation = erubis::translate(text, pattern);
        tera.register_function(erubis::LITERAL_FN, translation.literals);
        let marked = format!("{name} (marked)");
        sources.push((name.to_string(), translation.source));
        sources.push((marked.clone(), translation.marked));
        (Some(marked), translation.names_reconfig)
    };
    tera.add_raw_templates(sources).map_err(|e| {
        let error = TemplateError::syntax(name, &e);
        if looks_like_ruby(text, pattern) {
            error.pointing_to_migrate()
        } else {
            error
        }
    })?;
    limits::instrument(&mut tera);
    Ok(Template {
        name: name.to_string(),
        tera,
        marked,
        needs_reconfig,
        last_len: AtomicUsize::new(0),
    })
}
