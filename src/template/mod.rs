//! The render on the data path: a snapshot's data model (`model`) through a template —
//! Erubis-style delimiters over Tera.
//!
//! A template is compiled once ([`TemplateSet::load`]): its `OPEN CLOSE` tags are translated
//! to Tera (`erubis`), unless the pattern is `{{ }}` (plain Tera), and the result is parsed
//! into the Tera instance the templates of a configuration share, with autoescape off, reconfig's filters (`filters`), Ruby's
//! output and methods with Ruby's meaning (`ruby`: `to_json`/`to_yaml` byte for byte as
//! reconfig.rb printed them, the `rb_*` filters of templates converted from reconfig.rb)
//! and confd's functions (`confd`, over Go path semantics), and Go's `text/template` values
//! and confd's functions with their Go meaning for templates converted from confd
//! (`gotmpl`). Each render fills a context with `data`, `altdata` and `watched` and gives
//! the functions its snapshot (`scope`) and a Go value arena (`gotmpl::Session`).

mod args;
mod confd;
mod direct;
mod error;
mod erubis;
mod fault;
mod filters;
mod gotmpl;
mod limits;
pub mod model;
mod ruby;
mod scope;

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
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
    pub data: Data<'a>,
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

/// `data` as a render is given it.
pub enum Data<'a> {
    /// The data model ([`model::data`]).
    Model(Value),
    /// The tree of this key, which [`model::check_tree`] passed, read from the snapshot as
    /// the render goes: no model is built for a template [`Template::walks_trees`] (unless
    /// the walk stops and Tera renders it).
    Tree(&'a str),
}

impl From<Value> for Data<'_> {
    fn from(model: Value) -> Self {
        Data::Model(model)
    }
}

/// The parsed templates of one configuration in one Tera instance, with reconfig's filters
/// and functions registered once: a template costs about its parsed form, not an engine
/// of its own.
pub struct TemplateSet {
    tera: Tera,
    parts: Vec<Parts>,
}

/// What a template needs besides its parsed form in the engine.
struct Parts {
    /// The file name errors use.
    name: String,
    /// The name it has in the engine: its path, unless the same file was compiled with
    /// another pattern first.
    key: String,
    /// The text Tera must not parse, printed by `__lit` (Erubis-style templates).
    literals: Arc<[String]>,
    /// The twin with line marks, compiled only when a render failed (Erubis-style ones).
    marked: Option<String>,
    /// Whether the template can name the `reconfig` object.
    needs_reconfig: bool,
    /// Its form for the walk, when its renders are walked directly ([`direct::compile`]).
    walk: Option<direct::Program>,
    /// The Tera source of a walked template that left the engine, to compile it alone
    /// when a walk stops ([`Template::engine`]).
    source: Option<Box<str>>,
}

/// A template's position in its [`TemplateSet`]: its place in what [`TemplateSet::finish`]
/// returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateIndex(pub usize);

impl Default for TemplateSet {
    fn default() -> TemplateSet {
        TemplateSet {
            tera: engine(),
            parts: Vec::new(),
        }
    }
}

impl TemplateSet {
    /// Reads and compiles a template file; its path is the name errors use.
    pub fn load(&mut self, path: &Path, pattern: &Pattern) -> Result<TemplateIndex, TemplateError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            file: name.clone(),
            source,
        })?;
        self.add(&name, &text, pattern)
    }

    /// Compiles template text; `name` is the file name errors use.
    pub fn add(
        &mut self,
        name: &str,
        text: &str,
        pattern: &Pattern,
    ) -> Result<TemplateIndex, TemplateError> {
        let syntax = |e: &tera::Error| {
            let error = TemplateError::syntax(name, e);
            if looks_like_ruby(text, pattern) {
                error.pointing_to_migrate()
            } else {
                error
            }
        };
        let (source, literals, marked, needs_reconfig) = if pattern.is_plain_tera() {
            (
                text.to_string(),
                Vec::new(),
                None,
                erubis::names_reconfig(text),
            )
        } else {
            let translation = erubis::translate(text, pattern);
            (
                translation.source,
                translation.literals,
                Some(translation.marked),
                translation.names_reconfig,
            )
        };
        // Its path, as an include names it; the same file with another pattern gets a
        // name of its own.
        let key = if self.tera.templates.contains_key(name) {
            format!("{name} [{pattern}]")
        } else {
            name.to_string()
        };
        let engine_failed = |fault| TemplateError::engine(name, None, &fault, std::iter::empty());
        let parsed = fault::contained(|| tera::Template::new(&key, None, &source))
            .map_err(engine_failed)?
            .map_err(|e| syntax(&e))?;
        self.tera.templates.insert(key.clone(), parsed);
        let linked = fault::contained(|| {
            self.tera
                .build_inheritance_chains()
                .and_then(|()| self.tera.check_macro_files())
        });
        let failed = match linked {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(syntax(&e)),
            Err(fault) => Some(engine_failed(fault)),
        };
        if let Some(error) = failed {
            // Left out, so that the others stand as they did.
            self.tera.templates.remove(&key);
            let _ = fault::contained(|| self.tera.build_inheritance_chains());
            return Err(error);
        }
        self.parts.push(Parts {
            name: name.to_string(),
            key,
            literals: literals.into(),
            marked,
            needs_reconfig,
            walk: None,
            source: Some(source.into_boxed_str()),
        });
        Ok(TemplateIndex(self.parts.len() - 1))
    }

    /// The compiled templates, by index, sharing one engine. A template the walk covers
    /// keeps only its walk's form and its source, and leaves the engine, unless another
    /// template names it: its parse by Tera is ten times the size.
    pub fn finish(mut self) -> Vec<Template> {
        limits::instrument(&mut self.tera);
        let named = named_by_templates(&self.tera);
        for parts in &mut self.parts {
            let parsed = self.tera.templates.get(&parts.key);
            parts.walk = parsed.and_then(direct::compile);
            if parts.walk.is_some() && !named.contains(&parts.key) {
                self.tera.templates.remove(&parts.key);
            } else {
                parts.source = None;
            }
        }
        self.tera.templates.shrink_to_fit();
        let tera = Arc::new(self.tera);
        self.parts
            .into_iter()
            .map(|parts| Template {
                tera: Arc::clone(&tera),
                parts,
                alone: OnceLock::new(),
                last_len: AtomicUsize::new(0),
            })
            .collect()
    }
}

/// A compiled template, ready to render many times (from any thread).
pub struct Template {
    /// The engine it shares with the other templates of its configuration.
    tera: Arc<Tera>,
    parts: Parts,
    /// An engine of its own, compiled from [`Parts::source`] the first time a walk of a
    /// template that left the shared engine stops (boxed: most templates never need one).
    alone: OnceLock<Box<Tera>>,
    /// The size of the last output: the next render's buffer starts that large, instead of
    /// growing (and copying) its way up to a large file.
    last_len: AtomicUsize,
}

impl Template {
    /// Reads and compiles a template file on its own (an engine for it alone); its path is
    /// the name errors use.
    pub fn load(path: &Path, pattern: &Pattern) -> Result<Template, TemplateError> {
        let mut set = TemplateSet::default();
        set.load(path, pattern)?;
        Ok(set.finish().pop().expect("one template was added"))
    }

    /// Renders to text, held to `limits` (and stopped after `slice`, if given); the same
    /// input always gives the same bytes.
    pub fn render(
        &self,
        input: RenderInput<'_>,
        limits: &RenderLimits,
        slice: Option<Duration>,
    ) -> Result<String, TemplateError> {
        self.render_keeping(input, limits, slice).0
    }

    /// As [`Template::render`], giving the input's `data` back afterwards, to be kept for
    /// the next render ([`model::refreshed`]).
    pub fn render_keeping(
        &self,
        input: RenderInput<'_>,
        limits: &RenderLimits,
        slice: Option<Duration>,
    ) -> (Result<String, TemplateError>, Value) {
        let snapshot = Arc::clone(input.snapshot);
        let literals = Arc::clone(&self.parts.literals);
        let scope = scope::Scope::enter(Arc::clone(&snapshot), input.read, literals);
        let budget = limits::Budget::open(*limits, slice);
        let _go = gotmpl::Session::enter(input.prefix.unwrap_or("/"), input.read);
        let (data, tree) = match input.data {
            Data::Tree(key) if self.walks_trees() => (None, Some(key)),
            Data::Tree(key) => (Some(model::checked_tree(&snapshot, key)), None),
            Data::Model(model) => (Some(model), None),
        };
        let mut top = self.context(data, input.altdata, input.watched);
        let walked_tree = tree.map(|key| direct::Tree {
            snapshot: &snapshot,
            key,
        });
        let rendered = match self.render_direct(&top, walked_tree, limits) {
            Some(text) => Ok(text),
            None => {
                budget.restart();
                if let Some(key) = tree {
                    top.insert("data".into(), model::checked_tree(&snapshot, key));
                }
                let context =
                    Context::from_value(Value::Object(top)).expect("an object is a valid context");
                let rendered = self.render_context(&context, &snapshot, &scope, &budget, limits);
                top = match context.into_json() {
                    Value::Object(top) => top,
                    _ => Map::new(),
                };
                rendered
            }
        };
        (rendered, top.remove("data").unwrap_or_default())
    }

    /// The render walked directly ([`direct`]), when the template is one it covers and the
    /// walk finishes; otherwise Tera renders it.
    fn render_direct(
        &self,
        top: &Map<String, Value>,
        tree: Option<direct::Tree<'_>>,
        limits: &RenderLimits,
    ) -> Option<String> {
        let program = self.parts.walk.as_ref()?;
        let mut output = self.output(limits);
        let sources = direct::Sources {
            context: top,
            tree,
            literals: &self.parts.literals,
        };
        direct::render(program, sources, &mut output).ok()?;
        Some(self.finished(output))
    }

    /// Whether a recursive entry's tree may be given as [`Data::Tree`]: the template is
    /// walked directly, and does not name `reconfig` (whose `data` is a model).
    pub fn walks_trees(&self) -> bool {
        self.parts.walk.is_some() && !self.parts.needs_reconfig
    }

    /// An empty output as large as the last render's.
    fn output(&self, limits: &RenderLimits) -> limits::Output {
        let hint = self.last_len.load(Ordering::Relaxed);
        limits::Output::new(hint + hint / 16, limits)
    }

    /// The text of a finished render, its size kept for the next one.
    fn finished(&self, output: limits::Output) -> String {
        let output = output.into_bytes();
        self.last_len.store(output.len(), Ordering::Relaxed);
        // Only text is written: what the template holds, values and what filters return.
        String::from_utf8(output).expect("a render is valid UTF-8")
    }

    /// Renders `context`; on failure, finds the line and names what ran over.
    fn render_context(
        &self,
        context: &Context,
        snapshot: &Snapshot,
        scope: &scope::Scope,
        budget: &limits::Budget,
        limits: &RenderLimits,
    ) -> Result<String, TemplateError> {
        let parts = &self.parts;
        let mut output = self.output(limits);
        let engine = self.engine();
        let failed = match failure(|| engine.render_to(&parts.key, context, &mut output)) {
            None => return Ok(self.finished(output)),
            Some(failed) => failed,
        };
        let exceeded = budget.exceeded();
        // Tera gives no line: the marked twin fails at the same place, recording it —
        // unless the render ran out of time, which a second run would too.
        let located = parts
            .marked
            .as_ref()
            .filter(|_| !exceeded.is_some_and(Exceeded::is_time))
            .and_then(|marked| {
                budget.restart();
                let twin = twin(engine, marked)?;
                let mut output = limits::Output::new(0, limits);
                failure(|| twin.render_to(MARKED, context, &mut output))
            });
        let line = located.as_ref().and_then(|_| scope.line());
        if let Some(exceeded) = exceeded {
            return Err(TemplateError::limit(&parts.name, line, exceeded));
        }
        let values = snapshot.iter().map(|(_, value)| value);
        Err(match (&located, &failed) {
            (_, Failed::Fault(fault)) => TemplateError::engine(&parts.name, line, fault, values),
            (Some(Failed::Error(error)), _) => {
                TemplateError::render(&parts.name, MARKED, line, error, values)
            }
            (_, Failed::Error(error)) => {
                TemplateError::render(&parts.name, &parts.key, line, error, values)
            }
        })
    }

    /// The engine that renders this template: the shared one, or, for a walked template
    /// that left it, one of its own compiled now from its source (which parsed before).
    fn engine(&self) -> &Tera {
        let Some(source) = &self.parts.source else {
            return &self.tera;
        };
        self.alone.get_or_init(|| {
            // It parsed when it was added; should it not now, the render says it is missing.
            Box::new(with_template(engine(), &self.parts.key, source).unwrap_or_else(engine))
        })
    }

    /// `data`, `altdata`, `watched`, and the same under `reconfig.` (reconfig.rb's names).
    /// `data` is left out when the walk reads it from the snapshot.
    fn context(&self, data: Option<Value>, altdata: Value, watched: &str) -> Map<String, Value> {
        let mut top = Map::new();
        if self.parts.needs_reconfig {
            let mut reconfig = Map::new();
            reconfig.insert("data".into(), data.clone().unwrap_or_default());
            reconfig.insert("altdata".into(), altdata.clone());
            reconfig.insert("watched".into(), Value::String(watched.to_string()));
            top.insert("reconfig".into(), Value::Object(reconfig));
        }
        if let Some(data) = data {
            top.insert("data".into(), data);
        }
        top.insert("altdata".into(), altdata);
        top.insert("watched".into(), Value::String(watched.to_string()));
        top
    }
}

/// How a render by Tera failed.
enum Failed {
    /// With an error.
    Error(tera::Error),
    /// With a fault inside Tera ([`fault`]).
    Fault(fault::Fault),
}

/// How the render `work` failed, if it did.
fn failure(work: impl FnOnce() -> tera::Result<()>) -> Option<Failed> {
    match fault::contained(work) {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(Failed::Error(error)),
        Err(fault) => Some(Failed::Fault(fault)),
    }
}

/// The name of a marked twin in its engine.
const MARKED: &str = "marked";

/// The configuration's engine with the marked twin `source` added, to find the line of a
/// failure (the twin compiled as its template was, so it parses, and seeing the same
/// templates to include).
fn twin(engine: &Tera, source: &str) -> Option<Tera> {
    with_template(engine.clone(), MARKED, source)
}

/// `tera` with `source` added as `name` and instrumented as every template is.
fn with_template(mut tera: Tera, name: &str, source: &str) -> Option<Tera> {
    fault::contained(|| tera.add_raw_template(name, source))
        .ok()?
        .ok()?;
    limits::instrument_one(tera.templates.get_mut(name)?);
    Some(tera)
}

/// The names templates of `tera` give others: `include`, `extends`, `import`.
fn named_by_templates(tera: &Tera) -> HashSet<String> {
    fn collect(nodes: &[tera::ast::Node], names: &mut HashSet<String>) {
        use tera::ast::Node;
        for node in nodes {
            match node {
                Node::Include(_, files, _) => names.extend(files.iter().cloned()),
                Node::Extends(_, file) | Node::ImportMacro(_, file, _) => {
                    names.insert(file.clone());
                }
                Node::MacroDefinition(_, definition, _) => collect(&definition.body, names),
                Node::FilterSection(_, section, _) => collect(&section.body, names),
                Node::Block(_, block, _) => collect(&block.body, names),
                Node::Forloop(_, forloop, _) => {
                    collect(&forloop.body, names);
                    collect(forloop.empty_body.as_deref().unwrap_or_default(), names);
                }
                Node::If(choice, _) => {
                    for (_, _, body) in &choice.conditions {
                        collect(body, names);
                    }
                    if let Some((_, body)) = &choice.otherwise {
                        collect(body, names);
                    }
                }
                _ => {}
            }
        }
    }
    let mut names = HashSet::new();
    for template in tera.templates.values() {
        collect(&template.ast, &mut names);
        for definition in template.macros.values() {
            collect(&definition.body, &mut names);
        }
        for block in template.blocks.values() {
            collect(&block.body, &mut names);
        }
        names.extend(template.parent.iter().cloned());
        names.extend(
            template
                .imported_macro_files
                .iter()
                .map(|(file, _)| file.clone()),
        );
    }
    names
}

/// A Tera instance with autoescape off and reconfig's filters and functions, Ruby-compatible
/// ones included; the templates of a configuration share one.
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

/// Compiles one template on its own (an engine for it alone); `name` is the file name
/// errors use. A configuration's templates share one engine ([`TemplateSet`]).
pub fn compile(name: &str, text: &str, pattern: &Pattern) -> Result<Template, TemplateError> {
    let mut set = TemplateSet::default();
    set.add(name, text, pattern)?;
    Ok(set.finish().pop().expect("one template was added"))
}
