//! Go's `text/template` meaning for templates converted from confd (`reconfig migrate
//! --from confd`). Tera runs their control flow; these functions keep Go's values and
//! rules:
//!
//! - `go_NAME(a=[…])` for each of Go's builtins and confd's functions (`go_getv`,
//!   `go_printf`, `go_index`…), arguments checked and converted as Go does;
//! - `gt_print`, `gt_truth`, `gt_range`, `gt_field`, `gt_dig` for what an action prints,
//!   what `if` takes as true, what `range` iterates, `.Field`, and a pipeline's result;
//! - `gt_nil`, `gt_float`, `gt_num` for Go's constants, and `gt_fail` for Go's execution
//!   errors.
//!
//! confd's key functions read the render's snapshot under the entry's `prefix`, keys
//! relative to it as in confd.
//!
//! Values that Tera cannot hold as Go has them (slices sharing a backing array, maps,
//! `KVPair`s, typed nils) stay in the render's arena and pass through Tera as handles;
//! strings, numbers and booleans pass as themselves. The arena lives as long as the
//! render ([`Session`]).

mod exec;
mod fmt;
mod funcs;
mod memkv;
mod sort;
mod strconv;
mod value;

use std::cell::RefCell;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::rc::Rc;

use serde_json::{json, Map, Value};
use tera::Tera;

use super::args::Args;
use super::{limits, scope};
use memkv::Store;
use value::{GoVal, Untyped};

/// The key of a handle: an object `{HANDLE: index}` is arena entry `index`.
const HANDLE: &str = "\u{0}go";

/// How a handle begins as JSON, as Tera's messages quote a value: `{"\u0000go":`.
pub fn handle_as_json() -> String {
    format!("{{{}:", Value::String(HANDLE.into()))
}

struct State {
    arena: Vec<GoVal>,
    prefix: String,
    /// The keys whose trees the render read, for errors about a key outside them.
    read: Vec<String>,
    store: Option<Rc<Store>>,
}

thread_local! {
    static STATES: RefCell<Vec<State>> = const { RefCell::new(Vec::new()) };
}

/// One render's Go values; dropped with the render.
pub struct Session {
    _not_send: PhantomData<*const ()>,
}

impl Session {
    /// Opens the arena of a render on this thread, whose keys confd's functions read
    /// under `prefix` from the trees of `read`.
    pub fn enter(prefix: &str, read: &[&str]) -> Session {
        STATES.with(|s| {
            s.borrow_mut().push(State {
                arena: vec![],
                prefix: prefix.to_string(),
                read: read.iter().map(|k| k.to_string()).collect(),
                store: None,
            })
        });
        Session {
            _not_send: PhantomData,
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        STATES.with(|s| s.borrow_mut().pop());
    }
}

fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> Result<R, String> {
    STATES.with(|s| {
        s.borrow_mut()
            .last_mut()
            .map(f)
            .ok_or_else(|| "called outside a render".to_string())
    })
}

/// A Go value as Tera holds it.
fn encode(v: GoVal) -> Result<Value, String> {
    Ok(match v {
        GoVal::Invalid => Value::Null,
        GoVal::Bool(b) => Value::Bool(b),
        GoVal::Int(i) => json!(i),
        GoVal::Float(f) => serde_json::Number::from_f64(f)
            .map(Value::Number)
            .ok_or("a float that is not finite")?,
        GoVal::Str(s) => Value::String(s),
        other => {
            let index = with_state(|s| {
                s.arena.push(other);
                s.arena.len() - 1
            })?;
            let mut m = Map::new();
            m.insert(HANDLE.into(), json!(index));
            Value::Object(m)
        }
    })
}

/// The Go value Tera holds.
fn decode(v: &Value) -> Result<GoVal, String> {
    Ok(match v {
        Value::Null => GoVal::Invalid,
        Value::Bool(b) => GoVal::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => GoVal::Int(i),
            None => GoVal::Float(n.as_f64().ok_or("a number out of range")?),
        },
        Value::String(s) => GoVal::Str(s.clone()),
        Value::Object(m) => {
            let index = m
                .get(HANDLE)
                .and_then(Value::as_u64)
                .ok_or("not a value of a converted Go template")?;
            with_state(|s| s.arena.get(index as usize).cloned())?
                .ok_or("a value of another render")?
        }
        Value::Array(_) => return Err("not a value of a converted Go template".into()),
    })
}

/// The render's store, built on first use from its snapshot and prefix.
fn store() -> Result<Rc<Store>, String> {
    if let Some(store) = with_state(|s| s.store.clone())? {
        return Ok(store);
    }
    let (prefix, read) = with_state(|s| (s.prefix.clone(), s.read.clone()))?;
    let store = scope::with_snapshot(|snap| Rc::new(Store::new(snap, &prefix, &read)))
        .ok_or("called outside a render")?;
    with_state(|s| s.store = Some(store.clone()))?;
    Ok(store)
}

type Named = HashMap<String, Value>;

fn arg<'a>(args: &'a Named, name: &str) -> Result<&'a Value, String> {
    args.get(name)
        .ok_or_else(|| format!("missing argument `{name}`"))
}

/// What a Go function does: a builtin, or one of confd's (which may read the store).
#[derive(Clone, Copy)]
enum Body {
    Builtin(exec::Builtin),
    Confd(funcs::Call),
}

/// A Go function (`go_NAME`), called with `a=[…]`.
struct GoFn {
    name: &'static str,
    sig: &'static exec::Sig,
    body: Body,
}

impl tera::Function for GoFn {
    fn call(&self, args: &Named) -> tera::Result<Value> {
        let run = || -> Result<Value, String> {
            let list = arg(args, "a")?
                .as_array()
                .ok_or("argument `a` must be a list")?;
            let values = list.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
            let bound = exec::bind(self.name, self.sig, values)?;
            let limited = Args::new(self.name, args, &["a"]).map_err(|e| e.to_string())?;
            let ctx = funcs::Ctx {
                store: &store,
                iterations: &|n| limits::check_iterations(&limited, n).map_err(|e| e.to_string()),
                size: &|n| limits::check_size(&limited, n).map_err(|e| e.to_string()),
            };
            encode(match self.body {
                Body::Builtin(f) => f(bound)?,
                Body::Confd(f) => f(&ctx, bound)?,
            })
        };
        run().map_err(|e| tera::Error::msg(format!("{}: {e}", self.name)))
    }
}

type Machinery = fn(&Named) -> Result<Value, String>;

/// The `gt_*` functions: Go's execution around the calls.
const MACHINERY: &[(&str, Machinery)] = &[
    ("gt_print", |a| {
        Ok(Value::String(fmt::action(&decode(arg(a, "v")?)?)))
    }),
    ("gt_truth", |a| {
        Ok(Value::Bool(decode(arg(a, "v")?)?.truth()))
    }),
    ("gt_dig", |a| encode(decode(arg(a, "v")?)?.dig())),
    ("gt_range", |a| {
        let pairs = exec::range(decode(arg(a, "v")?)?.dig())?;
        pairs
            .into_iter()
            .map(|(k, v)| Ok(Value::Array(vec![encode(k)?, encode(v)?])))
            .collect::<Result<Vec<_>, String>>()
            .map(Value::Array)
    }),
    ("gt_field", |a| {
        let receiver = decode(arg(a, "v")?)?;
        let names: Vec<String> = arg(a, "n")?
            .as_array()
            .ok_or("argument `n` must be a list")?
            .iter()
            .map(|n| {
                n.as_str()
                    .map(str::to_string)
                    .ok_or("field names are strings")
            })
            .collect::<Result<_, _>>()?;
        let has_args = a.get("x").and_then(Value::as_bool).unwrap_or(false);
        encode(exec::field(receiver, &names, has_args)?)
    }),
    ("gt_nil", |_| Ok(Value::Null)),
    ("gt_float", |a| {
        let text = arg(a, "s")?
            .as_str()
            .ok_or("argument `s` must be a string")?;
        let f: f64 = text.parse().map_err(|_| format!("not a float: {text}"))?;
        encode(GoVal::Float(f))
    }),
    ("gt_num", |a| {
        let text = arg(a, "t")?
            .as_str()
            .ok_or("argument `t` must be a string")?;
        let int = a.get("i").and_then(Value::as_i64);
        let ideal = decode(arg(a, "v")?)?;
        encode(GoVal::Untyped(Untyped {
            text: text.to_string(),
            int,
            ideal: Box::new(ideal),
        }))
    }),
    ("gt_fail", |a| {
        Err(arg(a, "m")?.as_str().unwrap_or("failed").to_string())
    }),
];

struct Gt(&'static str, Machinery);

impl tera::Function for Gt {
    fn call(&self, args: &Named) -> tera::Result<Value> {
        (self.1)(args).map_err(|e| {
            if self.0 == "gt_fail" {
                tera::Error::msg(e)
            } else {
                tera::Error::msg(format!("{}: {e}", self.0))
            }
        })
    }
}

/// Registers the `go_*` and `gt_*` functions on a template's Tera instance.
pub fn register(tera: &mut Tera) {
    let builtins = exec::BUILTINS
        .iter()
        .map(|(name, sig, f)| (*name, sig, Body::Builtin(*f)));
    let confd = funcs::CONFD
        .iter()
        .map(|(name, sig, f)| (*name, sig, Body::Confd(*f)));
    for (name, sig, body) in builtins.chain(confd) {
        tera.register_function(&format!("go_{name}"), GoFn { name, sig, body });
    }
    for &(name, f) in MACHINERY {
        tera.register_function(name, Gt(name, f));
    }
}
