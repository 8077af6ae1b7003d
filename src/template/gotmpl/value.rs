//! Go's values as confd templates hold them: strings, `int`, `float64`, `bool`, `uint8`
//! (an index into a string), slices (which share their backing array, as in Go, so that
//! confd's in-place `reverse` and sorts are seen through every copy), maps of string keys,
//! memkv's `KVPair`, an interface holding nil, and the "no value" of a missing map key or
//! of a template's nil data.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// A Go type, as far as confd's values need one (for `%T`, `%#v`, argument checks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ty {
    Str,
    Int,
    Uint8,
    Float,
    Bool,
    /// `interface {}`.
    Iface,
    /// `memkv.KVPair`.
    Kv,
    /// `memkv.KVPairs`, the named slice type `gets` returns.
    KvPairs,
    /// `[]T`.
    Slice(Box<Ty>),
    /// `map[string]T`.
    Map(Box<Ty>),
}

impl Ty {
    /// The type as Go's `reflect.Type.String` prints it.
    pub fn name(&self) -> String {
        match self {
            Ty::Str => "string".into(),
            Ty::Int => "int".into(),
            Ty::Uint8 => "uint8".into(),
            Ty::Float => "float64".into(),
            Ty::Bool => "bool".into(),
            Ty::Iface => "interface {}".into(),
            Ty::Kv => "memkv.KVPair".into(),
            Ty::KvPairs => "memkv.KVPairs".into(),
            Ty::Slice(e) => format!("[]{}", e.name()),
            Ty::Map(e) => format!("map[string]{}", e.name()),
        }
    }
}

/// A slice: a window on a backing array shared with every copy; `None` is a nil slice.
#[derive(Debug, Clone)]
pub struct Slice {
    /// `[]T` or `memkv.KVPairs`.
    pub ty: Ty,
    pub data: Option<Rc<RefCell<Vec<GoVal>>>>,
    pub off: usize,
    pub len: usize,
}

impl Slice {
    /// A new slice owning `items`.
    pub fn new(ty: Ty, items: Vec<GoVal>) -> Slice {
        let len = items.len();
        Slice {
            ty,
            data: Some(Rc::new(RefCell::new(items))),
            off: 0,
            len,
        }
    }

    /// A nil slice of type `ty`.
    pub fn nil(ty: Ty) -> Slice {
        Slice {
            ty,
            data: None,
            off: 0,
            len: 0,
        }
    }

    /// The elements, copied out.
    pub fn items(&self) -> Vec<GoVal> {
        match &self.data {
            None => vec![],
            Some(d) => d.borrow()[self.off..self.off + self.len].to_vec(),
        }
    }

    /// Element `i` (checked by the caller).
    pub fn get(&self, i: usize) -> GoVal {
        match &self.data {
            None => GoVal::Invalid,
            Some(d) => d.borrow()[self.off + i].clone(),
        }
    }

    /// The capacity: from the window's start to the end of the backing array.
    pub fn cap(&self) -> usize {
        self.data
            .as_ref()
            .map_or(0, |d| d.borrow().len() - self.off)
    }

    /// Rewrites the window in place (what Go's in-place sorts do).
    pub fn rewrite(&self, f: impl FnOnce(&mut [GoVal])) {
        if let Some(d) = &self.data {
            f(&mut d.borrow_mut()[self.off..self.off + self.len]);
        }
    }
}

/// A map of string keys; `None` is a nil map.
#[derive(Debug, Clone)]
pub struct MapVal {
    /// The element type.
    pub elem: Ty,
    pub entries: Option<Rc<BTreeMap<String, GoVal>>>,
}

impl MapVal {
    pub fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, |e| e.len())
    }
}

/// A number in a template whose type the function it is passed to decides (Go's untyped
/// constants).
#[derive(Debug, Clone)]
pub struct Untyped {
    /// As written.
    pub text: String,
    /// Its value as an `int`, if it has one.
    pub int: Option<i64>,
    /// Its value where any type will do (`int` or `float64`).
    pub ideal: Box<GoVal>,
}

/// A Go value.
#[derive(Debug, Clone)]
pub enum GoVal {
    /// No value: a missing map key, the template's nil data.
    Invalid,
    /// An `interface {}` holding nil (an element of `[]interface{}` or a JSON object).
    NilIface,
    Bool(bool),
    Int(i64),
    Uint8(u8),
    Float(f64),
    Str(String),
    Kv(String, String),
    Slice(Slice),
    Map(MapVal),
    Untyped(Untyped),
}

impl GoVal {
    /// The value's type; `None` for no value and nil interfaces.
    pub fn ty(&self) -> Option<Ty> {
        Some(match self {
            GoVal::Invalid | GoVal::NilIface | GoVal::Untyped(_) => return None,
            GoVal::Bool(_) => Ty::Bool,
            GoVal::Int(_) => Ty::Int,
            GoVal::Uint8(_) => Ty::Uint8,
            GoVal::Float(_) => Ty::Float,
            GoVal::Str(_) => Ty::Str,
            GoVal::Kv(..) => Ty::Kv,
            GoVal::Slice(s) => s.ty.clone(),
            GoVal::Map(m) => Ty::Map(Box::new(m.elem.clone())),
        })
    }

    /// Go's truth (`if`, `with`, `and`, `or`, `not`): not the zero of its type.
    pub fn truth(&self) -> bool {
        match self {
            GoVal::Invalid | GoVal::NilIface | GoVal::Untyped(_) => false,
            GoVal::Bool(b) => *b,
            GoVal::Int(i) => *i != 0,
            GoVal::Uint8(u) => *u != 0,
            GoVal::Float(f) => *f != 0.0,
            GoVal::Str(s) => !s.is_empty(),
            GoVal::Kv(..) => true,
            GoVal::Slice(s) => s.len > 0,
            GoVal::Map(m) => m.len() > 0,
        }
    }

    /// `[]string` of `items`.
    pub fn strings(items: Vec<String>) -> GoVal {
        GoVal::Slice(Slice::new(
            Ty::Slice(Box::new(Ty::Str)),
            items.into_iter().map(GoVal::Str).collect(),
        ))
    }

    /// The value an interface holding it gives back: nil interfaces are no value.
    pub fn dig(self) -> GoVal {
        match self {
            GoVal::NilIface => GoVal::Invalid,
            other => other,
        }
    }
}
