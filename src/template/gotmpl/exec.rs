//! What Go's `text/template` does when it executes: arguments checked and converted to
//! the types a function takes (`evalArg`/`validateType`), field access (`.Key`, map keys),
//! `range`, and the builtins (`not`, `len`, `index`, `slice`, `eq`…`ge`, `print`…,
//! `html`, `js`, `urlquery`, `call`), each with Go's errors.

use std::collections::BTreeMap;

use super::fmt;
use super::strconv::is_print;
use super::value::{GoVal, MapVal, Slice, Ty};

/// An execution error, as Go's `error calling X: …` says it.
pub type Result<T> = std::result::Result<T, String>;

/// A parameter type of a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum P {
    Str,
    Int,
    /// `interface {}`.
    Iface,
    /// `reflect.Value` (Go's builtins): any value, nil interfaces included.
    Refl,
    /// `[]string`.
    Strings,
    /// `[]memkv.KVPair`.
    Pairs,
}

impl P {
    fn name(self) -> &'static str {
        match self {
            P::Str => "string",
            P::Int => "int",
            P::Iface => "interface {}",
            P::Refl => "reflect.Value",
            P::Strings => "[]string",
            P::Pairs => "[]memkv.KVPair",
        }
    }
}

/// A function's signature: fixed parameters, then an optional variadic one.
pub struct Sig {
    pub fixed: &'static [P],
    pub variadic: Option<P>,
}

/// `Sig { fixed, variadic }`, short for the function tables.
pub const fn sig(fixed: &'static [P], variadic: Option<P>) -> Sig {
    Sig { fixed, variadic }
}

/// Checks the argument count and converts each argument to its parameter's type.
pub fn bind(name: &str, sig: &Sig, args: Vec<GoVal>) -> Result<Vec<GoVal>> {
    let n = args.len();
    match sig.variadic {
        Some(_) if n < sig.fixed.len() => {
            return Err(format!(
                "wrong number of args for {name}: want at least {} got {n}",
                sig.fixed.len()
            ))
        }
        None if n != sig.fixed.len() => {
            return Err(format!(
                "wrong number of args for {name}: want {} got {n}",
                sig.fixed.len()
            ))
        }
        _ => {}
    }
    args.into_iter()
        .enumerate()
        .map(|(i, a)| {
            let p = sig
                .fixed
                .get(i)
                .copied()
                .or(sig.variadic)
                .expect("count checked");
            convert(a, p)
        })
        .collect()
}

/// One argument converted to `p` as Go does: an untyped number takes the parameter's type,
/// no value becomes the parameter's nil (or an error), a typed value must be assignable.
fn convert(v: GoVal, p: P) -> Result<GoVal> {
    match v {
        GoVal::Untyped(u) => match p {
            P::Int => u
                .int
                .map(GoVal::Int)
                .ok_or_else(|| format!("expected integer; found {}", u.text)),
            P::Iface | P::Refl => Ok(*u.ideal),
            P::Str => Err(format!("expected string; found {}", u.text)),
            other => Err(format!(
                "can't handle {} for arg of type {}",
                u.text,
                other.name()
            )),
        },
        GoVal::Invalid => match p {
            P::Strings => Ok(GoVal::Slice(Slice::nil(Ty::Slice(Box::new(Ty::Str))))),
            P::Pairs => Ok(GoVal::Slice(Slice::nil(Ty::Slice(Box::new(Ty::Kv))))),
            P::Iface => Ok(GoVal::NilIface),
            P::Refl => Ok(GoVal::Invalid),
            other => Err(format!("invalid value; expected {}", other.name())),
        },
        GoVal::NilIface => match p {
            P::Iface | P::Refl => Ok(GoVal::NilIface),
            other => Err(format!(
                "wrong type for value; expected {}; got interface {{}}",
                other.name()
            )),
        },
        v => {
            let ty = v.ty().expect("a typed value");
            let ok = match p {
                P::Iface | P::Refl => true,
                P::Str => ty == Ty::Str,
                P::Int => ty == Ty::Int,
                P::Strings => ty == Ty::Slice(Box::new(Ty::Str)),
                P::Pairs => matches!(ty, Ty::KvPairs) || ty == Ty::Slice(Box::new(Ty::Kv)),
            };
            if ok {
                Ok(v)
            } else {
                Err(format!(
                    "wrong type for value; expected {}; got {}",
                    p.name(),
                    ty.name()
                ))
            }
        }
    }
}

/// `.A.B` on `receiver`; `has_args` when the last name is given arguments.
pub fn field(mut receiver: GoVal, names: &[String], has_args: bool) -> Result<GoVal> {
    for (i, name) in names.iter().enumerate() {
        let args = has_args && i + 1 == names.len();
        receiver = one_field(receiver, name, args)?;
    }
    Ok(receiver)
}

fn one_field(receiver: GoVal, name: &str, has_args: bool) -> Result<GoVal> {
    let ty = match &receiver {
        GoVal::Invalid => return Ok(GoVal::Invalid),
        GoVal::NilIface => {
            return Err(format!("nil pointer evaluating interface {{}}.{name}"));
        }
        other => other.ty().expect("a typed value"),
    };
    match receiver {
        GoVal::Slice(s) if s.ty == Ty::KvPairs => match name {
            "Len" if !has_args => Ok(GoVal::Int(s.len as i64)),
            "Len" => Err("wrong number of args for Len: want 0 got 1".into()),
            "Less" | "Swap" => Err(format!("wrong number of args for {name}: want 2 got 0")),
            _ => Err(format!("can't evaluate field {name} in type {}", ty.name())),
        },
        GoVal::Kv(k, v) if name == "Key" || name == "Value" => {
            if has_args {
                return Err(format!(
                    "{name} has arguments but cannot be invoked as function"
                ));
            }
            Ok(GoVal::Str(if name == "Key" { k } else { v }))
        }
        GoVal::Map(m) => {
            if has_args {
                return Err(format!("{name} is not a method but has arguments"));
            }
            Ok(m.entries
                .as_ref()
                .and_then(|e| e.get(name).cloned())
                .unwrap_or(GoVal::Invalid))
        }
        _ => Err(format!("can't evaluate field {name} in type {}", ty.name())),
    }
}

/// What `range` iterates: (index or key, element) pairs; no value is empty.
pub fn range(v: GoVal) -> Result<Vec<(GoVal, GoVal)>> {
    match v {
        GoVal::Invalid | GoVal::NilIface => Ok(vec![]),
        GoVal::Slice(s) => Ok(s
            .items()
            .into_iter()
            .enumerate()
            .map(|(i, e)| (GoVal::Int(i as i64), e))
            .collect()),
        GoVal::Map(m) => Ok(m
            .entries
            .map(|e| {
                e.iter()
                    .map(|(k, v)| (GoVal::Str(k.clone()), v.clone()))
                    .collect()
            })
            .unwrap_or_default()),
        other => Err(format!("range can't iterate over {}", fmt::action(&other))),
    }
}

/// What a builtin does with its bound arguments.
pub type Builtin = fn(Vec<GoVal>) -> Result<GoVal>;

/// Go's builtins: name, signature, what they do.
pub const BUILTINS: &[(&str, Sig, Builtin)] = {
    use P::{Iface, Refl, Str};
    &[
        ("not", sig(&[Refl], None), |a| {
            Ok(GoVal::Bool(!a[0].truth()))
        }),
        ("len", sig(&[Refl], None), len),
        ("index", sig(&[Refl], Some(Refl)), index),
        ("slice", sig(&[Refl], Some(Refl)), slice),
        ("eq", sig(&[Refl], Some(Refl)), |a| {
            eq(&a[0], &a[1..]).map(GoVal::Bool)
        }),
        ("ne", sig(&[Refl, Refl], None), |a| {
            eq(&a[0], &a[1..]).map(|e| GoVal::Bool(!e))
        }),
        ("lt", sig(&[Refl, Refl], None), |a| {
            lt(&a[0], &a[1]).map(GoVal::Bool)
        }),
        ("le", sig(&[Refl, Refl], None), |a| {
            le(&a[0], &a[1]).map(GoVal::Bool)
        }),
        ("gt", sig(&[Refl, Refl], None), |a| {
            le(&a[0], &a[1]).map(|x| GoVal::Bool(!x))
        }),
        ("ge", sig(&[Refl, Refl], None), |a| {
            lt(&a[0], &a[1]).map(|x| GoVal::Bool(!x))
        }),
        ("print", sig(&[], Some(Iface)), |a| {
            Ok(GoVal::Str(fmt::sprint(&a)))
        }),
        ("println", sig(&[], Some(Iface)), |a| {
            Ok(GoVal::Str(fmt::sprintln(&a)))
        }),
        ("printf", sig(&[Str], Some(Iface)), |a| {
            let GoVal::Str(format) = &a[0] else {
                unreachable!("bound to a string")
            };
            Ok(GoVal::Str(fmt::sprintf(format, &a[1..])))
        }),
        ("html", sig(&[], Some(Iface)), |a| {
            Ok(GoVal::Str(html(&eval_args(&a))))
        }),
        ("js", sig(&[], Some(Iface)), |a| {
            Ok(GoVal::Str(js(&eval_args(&a))))
        }),
        ("urlquery", sig(&[], Some(Iface)), |a| {
            Ok(GoVal::Str(query_escape(&eval_args(&a))))
        }),
        ("call", sig(&[Refl], Some(Refl)), |a| {
            Err(match &a[0] {
                GoVal::Invalid | GoVal::NilIface => "call of nil".into(),
                v => format!(
                    "non-function of type {}",
                    v.ty().map(|t| t.name()).unwrap_or_default()
                ),
            })
        }),
    ]
};

fn len(a: Vec<GoVal>) -> Result<GoVal> {
    match &a[0] {
        GoVal::Invalid => Err("len of untyped nil".into()),
        GoVal::NilIface => Err("len of nil pointer".into()),
        GoVal::Str(s) => Ok(GoVal::Int(s.len() as i64)),
        GoVal::Slice(s) => Ok(GoVal::Int(s.len as i64)),
        GoVal::Map(m) => Ok(GoVal::Int(m.len() as i64)),
        other => Err(format!(
            "len of type {}",
            other.ty().map(|t| t.name()).unwrap_or_default()
        )),
    }
}

/// An index for a slice or string (`indexArg`).
fn index_arg(index: &GoVal, cap: usize) -> Result<usize> {
    let x = match index {
        GoVal::Int(i) => *i,
        GoVal::Uint8(u) => i64::from(*u),
        GoVal::Invalid | GoVal::NilIface => return Err("cannot index slice/array with nil".into()),
        other => {
            return Err(format!(
                "cannot index slice/array with type {}",
                other.ty().map(|t| t.name()).unwrap_or_default()
            ))
        }
    };
    if x < 0 || x as u64 > cap as u64 {
        return Err(format!("index out of range: {x}"));
    }
    Ok(x as usize)
}

fn index(a: Vec<GoVal>) -> Result<GoVal> {
    let mut item = a[0].clone().dig();
    if matches!(item, GoVal::Invalid) {
        return Err("index of untyped nil".into());
    }
    for index in &a[1..] {
        let index = index.clone().dig();
        item = match item {
            GoVal::NilIface | GoVal::Invalid => return Err("index of nil pointer".into()),
            GoVal::Str(s) => {
                let x = index_arg(&index, s.len())?;
                match s.as_bytes().get(x) {
                    Some(b) => GoVal::Uint8(*b),
                    None => return Err("reflect: string index out of range".into()),
                }
            }
            GoVal::Slice(s) => {
                let x = index_arg(&index, s.len)?;
                if x >= s.len {
                    return Err("reflect: slice index out of range".into());
                }
                s.get(x)
            }
            GoVal::Map(m) => {
                let key = match index {
                    GoVal::Str(k) => k,
                    GoVal::Invalid => return Err("value is nil; should be of type string".into()),
                    other => {
                        return Err(format!(
                            "value has type {}; should be string",
                            other.ty().map(|t| t.name()).unwrap_or_default()
                        ))
                    }
                };
                match m.entries.as_ref().and_then(|e| e.get(&key)) {
                    Some(v) => v.clone(),
                    None if m.elem == Ty::Iface => GoVal::NilIface,
                    None => zero(&m.elem),
                }
            }
            other => {
                return Err(format!(
                    "can't index item of type {}",
                    other.ty().map(|t| t.name()).unwrap_or_default()
                ))
            }
        };
    }
    Ok(item)
}

/// The zero value of a type.
fn zero(ty: &Ty) -> GoVal {
    match ty {
        Ty::Str => GoVal::Str(String::new()),
        Ty::Int => GoVal::Int(0),
        Ty::Uint8 => GoVal::Uint8(0),
        Ty::Float => GoVal::Float(0.0),
        Ty::Bool => GoVal::Bool(false),
        Ty::Iface => GoVal::NilIface,
        Ty::Kv => GoVal::Kv(String::new(), String::new()),
        Ty::KvPairs | Ty::Slice(_) => GoVal::Slice(Slice::nil(ty.clone())),
        Ty::Map(e) => GoVal::Map(MapVal {
            elem: (**e).clone(),
            entries: None,
        }),
    }
}

fn slice(a: Vec<GoVal>) -> Result<GoVal> {
    let item = a[0].clone().dig();
    let indexes = &a[1..];
    if matches!(item, GoVal::Invalid) {
        return Err("slice of untyped nil".into());
    }
    if indexes.len() > 3 {
        return Err(format!("too many slice indexes: {}", indexes.len()));
    }
    let (cap, len) = match &item {
        GoVal::Str(s) => {
            if indexes.len() == 3 {
                return Err("cannot 3-index slice a string".into());
            }
            (s.len(), s.len())
        }
        GoVal::Slice(s) => (s.cap(), s.len),
        other => {
            return Err(format!(
                "can't slice item of type {}",
                other.ty().map(|t| t.name()).unwrap_or_default()
            ))
        }
    };
    let mut idx = [0, len, 0];
    for (i, index) in indexes.iter().enumerate() {
        idx[i] = index_arg(&index.clone().dig(), cap)?;
    }
    if idx[0] > idx[1] {
        return Err(format!("invalid slice index: {} > {}", idx[0], idx[1]));
    }
    if indexes.len() == 3 && idx[1] > idx[2] {
        return Err(format!("invalid slice index: {} > {}", idx[1], idx[2]));
    }
    match item {
        GoVal::Str(s) => match s.get(idx[0]..idx[1]) {
            Some(part) => Ok(GoVal::Str(part.to_string())),
            None => Err(
                "slicing a string inside a UTF-8 character gives text reconfig cannot hold".into(),
            ),
        },
        GoVal::Slice(s) => {
            if indexes.len() == 3 {
                return Err("3-index slices are not supported by reconfig".into());
            }
            Ok(GoVal::Slice(Slice {
                ty: s.ty,
                data: s.data,
                off: s.off + idx[0],
                len: idx[1] - idx[0],
            }))
        }
        _ => unreachable!("checked above"),
    }
}

/// The kinds Go's comparisons know.
#[derive(PartialEq, Clone, Copy)]
enum Kind {
    Invalid,
    Bool,
    Int,
    Uint,
    Float,
    Str,
}

fn kind(v: &GoVal) -> Kind {
    match v {
        GoVal::Bool(_) => Kind::Bool,
        GoVal::Int(_) => Kind::Int,
        GoVal::Uint8(_) => Kind::Uint,
        GoVal::Float(_) => Kind::Float,
        GoVal::Str(_) => Kind::Str,
        _ => Kind::Invalid,
    }
}

fn int(v: &GoVal) -> i64 {
    match v {
        GoVal::Int(i) => *i,
        GoVal::Uint8(u) => i64::from(*u),
        _ => 0,
    }
}

/// `eq a b c…`: whether `a` equals any of the others.
fn eq(a: &GoVal, others: &[GoVal]) -> Result<bool> {
    let a = a.clone().dig();
    if others.is_empty() {
        return Err("missing argument for comparison".into());
    }
    let k1 = kind(&a);
    for b in others {
        let b = b.clone().dig();
        let k2 = kind(&b);
        let truth = if k1 != k2 {
            match (k1, k2) {
                (Kind::Int, Kind::Uint) | (Kind::Uint, Kind::Int) => int(&a) == int(&b),
                _ => {
                    if !matches!(a, GoVal::Invalid) && !matches!(b, GoVal::Invalid) {
                        return Err("incompatible types for comparison".into());
                    }
                    false
                }
            }
        } else {
            match (&a, &b) {
                (GoVal::Bool(x), GoVal::Bool(y)) => x == y,
                (GoVal::Float(x), GoVal::Float(y)) => x == y,
                (GoVal::Str(x), GoVal::Str(y)) => x == y,
                _ if k1 == Kind::Int || k1 == Kind::Uint => int(&a) == int(&b),
                _ => compare_other(&a, &b)?,
            }
        };
        if truth {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `eq` of values without a basic kind: nil against nil, structs by value; slices and
/// maps are not comparable.
fn compare_other(a: &GoVal, b: &GoVal) -> Result<bool> {
    let is_nil = |v: &GoVal| match v {
        GoVal::Invalid => true,
        GoVal::Slice(s) => s.data.is_none(),
        GoVal::Map(m) => m.entries.is_none(),
        _ => false,
    };
    let same_kind = std::mem::discriminant(a) == std::mem::discriminant(b)
        || matches!(a, GoVal::Invalid)
        || matches!(b, GoVal::Invalid);
    if !same_kind {
        return Err(format!(
            "non-comparable types {}: {}, {}: {}",
            fmt::action(a),
            a.ty().map(|t| t.name()).unwrap_or_default(),
            b.ty().map(|t| t.name()).unwrap_or_default(),
            fmt::action(b)
        ));
    }
    if is_nil(a) || is_nil(b) {
        return Ok(is_nil(a) == is_nil(b));
    }
    match (a, b) {
        (GoVal::Kv(k1, v1), GoVal::Kv(k2, v2)) => Ok(k1 == k2 && v1 == v2),
        _ => Err(format!(
            "non-comparable type {}: {}",
            fmt::action(b),
            b.ty().map(|t| t.name()).unwrap_or_default()
        )),
    }
}

fn lt(a: &GoVal, b: &GoVal) -> Result<bool> {
    let (a, b) = (a.clone().dig(), b.clone().dig());
    let (k1, k2) = (kind(&a), kind(&b));
    if k1 == Kind::Invalid || k2 == Kind::Invalid {
        return Err("invalid type for comparison".into());
    }
    if k1 != k2 {
        return match (k1, k2) {
            (Kind::Int, Kind::Uint) | (Kind::Uint, Kind::Int) => Ok(int(&a) < int(&b)),
            _ => Err("incompatible types for comparison".into()),
        };
    }
    match (&a, &b) {
        (GoVal::Bool(_), _) => Err("invalid type for comparison".into()),
        (GoVal::Float(x), GoVal::Float(y)) => Ok(x < y),
        (GoVal::Str(x), GoVal::Str(y)) => Ok(x < y),
        _ => Ok(int(&a) < int(&b)),
    }
}

fn le(a: &GoVal, b: &GoVal) -> Result<bool> {
    if lt(a, b)? {
        return Ok(true);
    }
    eq(a, std::slice::from_ref(b))
}

/// The text of the arguments of `html`, `js` and `urlquery` (`fmt.Sprint`, one string
/// argument as it is, nil as "<no value>" — a string, for `Sprint`'s spacing).
fn eval_args(args: &[GoVal]) -> String {
    if let [GoVal::Str(s)] = args {
        return s.clone();
    }
    let printable: Vec<GoVal> = args
        .iter()
        .map(|a| match a {
            GoVal::Invalid | GoVal::NilIface => GoVal::Str("<no value>".into()),
            other => other.clone(),
        })
        .collect();
    fmt::sprint(&printable)
}

/// `html`: Go's `HTMLEscapeString`.
fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\0' => out.push('\u{FFFD}'),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// `js`: Go's `JSEscapeString`.
fn js(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u00{:02X}", c as u32)),
            c if c.is_ascii() || is_print(c) => out.push(c),
            c => out.push_str(&format!("\\u{:04X}", c as u32)),
        }
    }
    out
}

/// `urlquery`: Go's `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A map built from Go values, for `map` and JSON objects.
pub fn map_of(elem: Ty, entries: BTreeMap<String, GoVal>) -> GoVal {
    GoVal::Map(MapVal {
        elem,
        entries: Some(std::rc::Rc::new(entries)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> GoVal {
        GoVal::Str(x.into())
    }

    #[test]
    fn comparisons_follow_go() {
        assert!(eq(&s("a"), &[s("b"), s("a")]).unwrap());
        assert!(eq(&GoVal::Int(97), &[GoVal::Uint8(97)]).unwrap());
        assert!(eq(&s("a"), &[GoVal::Int(1)]).is_err());
        assert!(!eq(&s("a"), &[GoVal::Invalid]).unwrap());
        assert!(lt(&s("a"), &s("b")).unwrap());
        assert!(lt(&GoVal::Bool(true), &GoVal::Bool(false)).is_err());
        assert!(eq(&GoVal::strings(vec![]), &[GoVal::strings(vec![])]).is_err());
    }

    #[test]
    fn arguments_take_the_parameter_type() {
        let sig = Sig {
            fixed: &[P::Str],
            variadic: None,
        };
        assert!(bind("f", &sig, vec![GoVal::Int(1)]).is_err());
        assert!(bind("f", &sig, vec![]).is_err());
        assert!(bind("f", &sig, vec![GoVal::Invalid]).is_err());
        assert!(bind("f", &sig, vec![s("x")]).is_ok());
    }

    #[test]
    fn escapers_follow_go() {
        assert_eq!(html("<a href='x'>&"), "&lt;a href=&#39;x&#39;&gt;&amp;");
        assert_eq!(js("a'b<\n"), "a\\'b\\u003C\\u000A");
        assert_eq!(query_escape("a b&c/é"), "a+b%26c%2F%C3%A9");
    }
}
