//! Per-render state that template functions need but Tera 1 cannot pass them: the snapshot
//! the confd-style functions read, the template's literal text (`__lit`, see `erubis`), and
//! the original line the render has reached (recorded by the `__line` calls of a template's
//! marked twin, which is rendered when a render fails).
//!
//! Tera registers functions once per `Tera` instance — one for every template of a
//! configuration — yet a render runs synchronously on one thread; so a render opens a
//! [`Scope`] on a thread-local stack for its duration. Renders on other threads have their
//! own scopes, so nothing is serialized.

use std::cell::RefCell;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;

use serde_json::Value;

use crate::etcd::Snapshot;

/// The internal function recording the line of the tag that follows it.
pub const LINE_FN: &str = "__line";
/// Same, usable in a condition (`elif __line_if(n=4) or (...)`): it returns `false`.
pub const LINE_IF_FN: &str = "__line_if";
/// The internal function printing a chunk of the template's literal table.
pub const LITERAL_FN: &str = "__lit";

struct Frame {
    snapshot: Arc<Snapshot>,
    /// The keys whose trees the snapshot holds.
    read: Vec<String>,
    /// The literal table of the template rendered.
    literals: Arc<[String]>,
    line: Option<usize>,
}

thread_local! {
    static FRAMES: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
}

/// One render in progress on this thread; closed when dropped.
pub struct Scope {
    /// A scope lives on the thread that opened it.
    _not_send: PhantomData<*const ()>,
}

impl Scope {
    /// Opens the scope of a render reading `snapshot`, which holds the trees of `read`, of
    /// a template whose literal text is `literals`.
    pub fn enter(snapshot: Arc<Snapshot>, read: &[&str], literals: Arc<[String]>) -> Scope {
        FRAMES.with(|f| {
            f.borrow_mut().push(Frame {
                snapshot,
                read: read.iter().map(|k| k.to_string()).collect(),
                literals,
                line: None,
            })
        });
        Scope {
            _not_send: PhantomData,
        }
    }

    /// The last line recorded in this render, if any.
    pub fn line(&self) -> Option<usize> {
        FRAMES.with(|f| f.borrow().last().and_then(|frame| frame.line))
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        FRAMES.with(|f| f.borrow_mut().pop());
    }
}

/// Runs `read` on the snapshot of the current render; `None` outside a render.
pub fn with_snapshot<R>(read: impl FnOnce(&Snapshot) -> R) -> Option<R> {
    FRAMES.with(|f| f.borrow().last().map(|frame| read(&frame.snapshot)))
}

/// Why the current render has no value at `key` when `key` lies outside every tree it
/// read: " (outside the entry's keys: /a, /b)"; empty otherwise.
pub fn outside(key: &str) -> String {
    FRAMES.with(|f| {
        let frames = f.borrow();
        let Some(frame) = frames.last() else {
            return String::new();
        };
        outside_of(&frame.read, key)
    })
}

/// ` (outside the entry's keys: …)` when `key` is in none of the trees of `read` (nothing
/// when there are none).
pub fn outside_of<S: AsRef<str>>(read: &[S], key: &str) -> String {
    if read.is_empty() || read.iter().any(|r| in_tree(r.as_ref(), key)) {
        return String::new();
    }
    let read: Vec<&str> = read.iter().map(AsRef::as_ref).collect();
    format!(" (outside the entry's keys: {})", read.join(", "))
}

/// Whether `key` is `root` or below it.
pub fn in_tree(root: &str, key: &str) -> bool {
    crate::etcd::in_tree_bytes(root, key.as_bytes())
}

/// `__line(n=…)` / `__line_if(n=…)`: records line `n` in the current render.
pub struct LineMark {
    /// What the call evaluates to: nothing for output, `false` for conditions.
    pub result: Value,
}

impl tera::Function for LineMark {
    fn call(&self, args: &HashMap<String, Value>) -> tera::Result<Value> {
        let line = args
            .get("n")
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok());
        FRAMES.with(|f| {
            if let Some(frame) = f.borrow_mut().last_mut() {
                frame.line = line;
            }
        });
        Ok(self.result.clone())
    }
}

/// `__lit(i=N)`: chunk N of the literal table of the template rendered.
fn literal(args: &HashMap<String, Value>) -> tera::Result<Value> {
    let index = args
        .get("i")
        .and_then(Value::as_u64)
        .and_then(|i| usize::try_from(i).ok());
    FRAMES.with(|f| {
        let frames = f.borrow();
        index
            .and_then(|i| frames.last()?.literals.get(i))
            .map(|chunk| Value::String(chunk.clone()))
            .ok_or_else(|| tera::Error::msg(format!("{LITERAL_FN}: no such literal")))
    })
}

/// Registers `__line`, `__line_if` and `__lit`.
pub fn register(tera: &mut tera::Tera) {
    tera.register_function(LITERAL_FN, literal);
    tera.register_function(
        LINE_FN,
        LineMark {
            result: Value::Null,
        },
    );
    tera.register_function(
        LINE_IF_FN,
        LineMark {
            result: Value::Bool(false),
        },
    );
}
