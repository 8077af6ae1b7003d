//! Ruby-compatible filters and functions: Ruby's methods with Ruby's meaning, for templates
//! converted from reconfig.rb (`reconfig migrate` writes them) and for hand-written ones.
//!
//! Each `rb_NAME` filter behaves as Ruby's method `NAME` on the same value: `nil` (`null`)
//! is a value like any other (`rb_at` of a missing key is `null`, `rb_s` prints it as
//! nothing), only `null` and `false` are false ([`truthy`]), and a call Ruby would refuse
//! (`nil.upcase`, `"a" + 1`) is an error rather than a guess. Hashes are JSON objects, which
//! iterate in key order, as reconfig.rb built its hashes. The filters taking a block
//! (`rb_map`, …) are in `ruby_blocks`.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::rc::Rc;

use regex::Regex;
use serde_json::{Number, Value};
use tera::Tera;

use super::float::ruby_float;
use crate::template::args::Args;
use crate::template::limits;

type Filter = fn(&Value, &HashMap<String, Value>) -> tera::Result<Value>;

/// Every plain filter, by the name templates use.
const FILTERS: &[(&str, Filter)] = &[
    ("rb_s", rb_s),
    ("rb_inspect", rb_inspect),
    ("rb_to_i", rb_to_i),
    ("rb_nil", rb_nil),
    ("rb_at", rb_at),
    ("rb_param", rb_param),
    ("rb_keys", rb_keys),
    ("rb_values", rb_values),
    ("rb_each", rb_each),
    ("rb_empty", rb_empty),
    ("rb_include", rb_include),
    ("rb_key", rb_key),
    ("rb_start_with", rb_start_with),
    ("rb_end_with", rb_end_with),
    ("rb_eq", rb_eq),
    ("rb_lt", rb_lt),
    ("rb_le", rb_le),
    ("rb_gt", rb_gt),
    ("rb_ge", rb_ge),
    ("rb_plus", rb_plus),
    ("rb_minus", rb_minus),
    ("rb_times", rb_times),
    ("rb_div", rb_div),
    ("rb_mod", rb_mod),
    ("rb_upcase", rb_upcase),
    ("rb_downcase", rb_downcase),
    ("rb_capitalize", rb_capitalize),
    ("rb_strip", rb_strip),
    ("rb_lstrip", rb_lstrip),
    ("rb_rstrip", rb_rstrip),
    ("rb_chomp", rb_chomp),
    ("rb_split", rb_split),
    ("rb_join", rb_join),
    ("rb_first", rb_first),
    ("rb_last", rb_last),
    ("rb_sort", rb_sort),
    ("rb_reverse", rb_reverse),
    ("rb_uniq", rb_uniq),
    ("rb_sub", rb_sub),
    ("rb_gsub", rb_gsub),
    ("rb_basename", rb_basename),
    ("rb_dirname", rb_dirname),
];

/// Registers the filters and functions (the ones taking a block are in `ruby_blocks`).
pub fn register(tera: &mut Tera) {
    for &(name, filter) in FILTERS {
        tera.register_filter(name, filter);
    }
    tera.register_function("rb_truthy", rb_truthy_fn);
    tera.register_function("rb_value", rb_value_fn);
    tera.register_function("rb_or", rb_or_fn);
    tera.register_function("rb_and", rb_and_fn);
    tera.register_function("rb_if", rb_if_fn);
    tera.register_function("rb_range", rb_range_fn);
}

/// Ruby's truth: everything but `nil` and `false` is true (`""`, `0` and `[]` too).
pub fn truthy(value: &Value) -> bool {
    !matches!(value, Value::Null | Value::Bool(false))
}

/// `rb_truthy(v=x)`: Ruby's truth of `x`. A function, not a filter, because Tera's `if`
/// reads a failing filter chain as false where Ruby raised.
fn rb_truthy_fn(args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("rb_truthy", args, &["v"])?;
    Ok(Value::Bool(truthy(a.value("v")?)))
}

/// `rb_value(v=x)`: `x` itself; lets any expression stand where Tera's grammar wants a name
/// or a call (before a filter, beside `==`, in a `~` chain).
fn rb_value_fn(args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("rb_value", args, &["v"])?;
    a.value("v").cloned()
}

/// `rb_or(a=x, b=y)`: Ruby's `x || y`: `x` if it is true, else `y` (both are evaluated).
fn rb_or_fn(args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("rb_or", args, &["a", "b"])?;
    let x = a.value("a")?;
    Ok(if truthy(x) { x } else { a.value("b")? }.clone())
}

/// `rb_and(a=x, b=y)`: Ruby's `x && y`: `y` if `x` is true, else `x` (both are evaluated).
fn rb_and_fn(args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("rb_and", args, &["a", "b"])?;
    let x = a.value("a")?;
    Ok(if truthy(x) { a.value("b")? } else { x }.clone())
}

/// `rb_if(cond=c, then=x, else=y)`: Ruby's `c ? x : y` (both are evaluated).
fn rb_if_fn(args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("rb_if", args, &["cond", "then", "else"])?;
    let branch = if truthy(a.value("cond")?) {
        "then"
    } else {
        "else"
    };
    a.value(branch).cloned()
}

/// `rb_range(end=n)`: what Ruby's `n.times` yields: 0 … n-1, nothing when n ≤ 0.
fn rb_range_fn(args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("rb_range", args, &["end"])?;
    let n = a.value("end")?;
    let end = integer(&a, "end", n)?.max(0);
    limits::check_iterations(&a, end.unsigned_abs())?;
    Ok(Value::Array((0..end).map(int).collect()))
}

/// Ruby's class name of a value, for error messages that read like Ruby's.
fn class(value: &Value) -> &'static str {
    match value {
        Value::Null => "nil",
        Value::Bool(true) => "true",
        Value::Bool(false) => "false",
        Value::Number(n) if n.is_f64() => "Float",
        Value::Number(_) => "Integer",
        Value::String(_) => "String",
        Value::Array(_) => "Array",
        Value::Object(_) => "Hash",
    }
}

/// Ruby's NoMethodError, as a filter error.
fn no_method(a: &Args<'_>, method: &str, value: &Value) -> tera::Error {
    a.error(format!("undefined method `{method}' for {}", class(value)))
}

fn string<'v>(a: &Args<'_>, method: &str, value: &'v Value) -> tera::Result<&'v str> {
    value.as_str().ok_or_else(|| no_method(a, method, value))
}

fn integer(a: &Args<'_>, what: &str, value: &Value) -> tera::Result<i64> {
    value
        .as_i64()
        .filter(|_| !value.as_number().is_some_and(Number::is_f64))
        .ok_or_else(|| a.error(format!("{what} must be an Integer, not {}", class(value))))
}

fn int(n: i64) -> Value {
    Value::Number(n.into())
}

/// The items `each` yields: an Array's elements, a Hash's `[key, value]` pairs.
pub(super) fn each_items(a: &Args<'_>, value: &Value) -> tera::Result<Vec<Value>> {
    match value {
        Value::Array(items) => Ok(items.clone()),
        Value::Object(map) => Ok(map.iter().map(|(k, v)| pair(k, v)).collect()),
        other => Err(no_method(a, "each", other)),
    }
}

fn pair(key: &str, value: &Value) -> Value {
    Value::Array(vec![Value::String(key.to_string()), value.clone()])
}

/// `rb_s`: Ruby's `to_s`: `nil` prints nothing, Arrays and Hashes print as `inspect`.
fn rb_s(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    Args::new("rb_s", args, &[])?;
    Ok(Value::String(to_s(value)))
}

/// `rb_inspect`: Ruby's `inspect` (`"a"` with quotes, `nil`, `["a", 1]`, `{"k"=>"v"}`).
fn rb_inspect(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    Args::new("rb_inspect", args, &[])?;
    Ok(Value::String(inspect(value)))
}

/// Ruby's `to_s` of a value.
pub fn to_s(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(_) | Value::Object(_) => inspect(value),
        scalar => inspect(scalar),
    }
}

/// Ruby's `inspect` of a value.
fn inspect(value: &Value) -> String {
    match value {
        Value::Null => "nil".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => ruby_float(f),
            _ => n.to_string(),
        },
        Value::String(s) => inspect_string(s),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(inspect).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) => {
            let items: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}=>{}", inspect_string(k), inspect(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}

/// `String#inspect` of a UTF-8 string: escapes for quotes, backslashes, `#{`/`#$`/`#@`
/// and control characters; other characters print as they are.
fn inspect_string(s: &str) -> String {
    let mut out = String::from("\"");
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\x0c' => out.push_str("\\f"),
            '\x0b' => out.push_str("\\v"),
            '\x08' => out.push_str("\\b"),
            '\x07' => out.push_str("\\a"),
            '\x1b' => out.push_str("\\e"),
            '#' if matches!(chars.peek(), Some('{' | '$' | '@')) => out.push_str("\\#"),
            c if c < ' '
                || matches!(c, '\x7f'..='\u{84}' | '\u{86}'..='\u{9f}' | '\u{2028}' | '\u{2029}') =>
            {
                out.push_str(&format!("\\u{:04X}", u32::from(c)))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `rb_to_i`: Ruby's `to_i`: a String's leading integer (`" 12ab"` → 12, `"x"` → 0),
/// `nil` → 0.
fn rb_to_i(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("rb_to_i", args, &[])?;
    match value {
        Value::Null => Ok(int(0)),
        Value::Number(n) if !n.is_f64() => Ok(value.clone()),
        Value::Number(n) => Ok(int(n.as_f64().unwrap_or(0.0).trunc() as i64)),
        Value::String(s) => string_to_i(s)
            .map(int)
            .ok_or_else(|| a.error(format!("{s:?}: integer beyond 64 bits"))),
        other => Err(no_method(&a, "to_i", other)),
    }
}

/// `String#to_i`: white space, a sign, digits with single underscores between them.
fn string_to_i(s: &str) -> Option<i64> {
    let s = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut n: i64 = 0;
    let mut previous_digit = false;
    let bytes = rest.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'0'..=b'9' => {
                n = n.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
                previous_digit = true;
            }
            b'_' if previous_digit && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                previous_digit = false;
            }
            _ => break,
        }
    }
    Some(if negative { -n } else { n })
}

/// `rb_nil`: Ruby's `nil?`.
fn rb_nil(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    Args::new("rb_nil", args, &[])?;
    Ok(Value::Bool(value.is_null()))
}

/// `rb_at(k=key)`: Ruby's `[]`: a Hash's value (`nil` when missing), an Array's item by
/// index (negative from the end), a String's character; `nil` when out of range.
fn rb_at(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("rb_at", args, &["k"])?;
    at(&a, value, a.value("k")?)
}

fn at(a: &Args<'_>, value: &Value, key: &Value) -> tera::Result<Value> {
    let index = |len: usize| -> tera::Result<Option<usize>> {
        let i = integer(a, "the index", key)?;
        let len = i64::try_from(len).unwrap_or(i64::MAX);
        let i = if i < 0 { i + len } else { i };
        Ok((0..len).contains(&i).then_some(i as usize))
    };
    match value {
        Value::Object(map) => Ok(key
            .as_str()
            .and_then(|k| map.get(k))
            .cloned()
            .unwrap_or(Value::Null)),
        Value::Array(items) => Ok(index(items.len())?
            .map(|i| items[i].clone())
            .unwrap_or(Value::Null)),
        Value::String(s) => {
            let chars: Vec<char> = s.chars().collect();
            Ok(index(chars.len())?
                .map(|i| Value::String(chars[i].to_string()))
                .unwrap_or(Value::Null))
        }
        other => Err(no_method(a, "[]", other)),
    }
}

/// `rb_param(i=N)`: block parameter N of a block with several, given the yielded item:
/// an Array is spread over the parameters, anything else is the first (the rest `nil`).
fn rb_param(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("rb_param", args, &["i"])?;
    let i = integer(&a, "i", a.value("i")?)?;
    Ok(param(value, usize::try_from(i).unwrap_or(usize::MAX)))
}

pub(super) fn param(item: &Value, i: usize) -> Value {
    match item {
        Value::Array(items) => items.get(i).cloned().unwrap_or(Value::Null),
        other if i == 0 => other.clone(),
        _ => Value::Null,
    }
}

/// `rb_keys`: a Hash's keys, in its order.
fn rb_keys(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("rb_keys", args, &[])?;
    match value {
        Value::Object(map) => Ok(map.keys().cloned().map(Value::String).collect()),
        other => Err(no_method(&a, "keys", other)),
    }
}

/// `rb_values`: a Hash's values, in its order.
fn rb_values(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("rb_values", args, &[])?;
    match value {
        Value::Object(map) => Ok(map.values().cloned().collect()),
        other => Err(no_method(&a, "values", other)),
    }
}

/// `rb_each`: what `each` yields, as a list: an Array itself, a Hash's `[key, value]`s.
fn rb_each(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("rb_each", args, &[])?;
    each_items(&a, value).map(Value::Array)
}

/// `rb_empty`: Ruby's `empty?` of a String, Array or Hash.
fn rb_empty(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("rb_empty", args, &[])?;
    match value {
        Value::String(s) => Ok(Value::Bool(s.is_empty())),
        Value::Array(items) => Ok(Value::Bool(items.is_empty())),
        Value::Object(map) => Ok(Value::Bool(map.is_empty())),
        other => Err(no_method(&a, "empty?", other)),
    }
}

/// `rb_include(x=v)`: Ruby's `include?`: a substring, an Array item, a Hash key.
fn rb_include(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("rb_include", args, &["x"])?;
    let x = a.value("x")?;
    match value {
        Value::String(s) => {
            let x = x.as_str().ok_or_else(|| {
                a.error(format!(
                    "no implicit conversion of {} into String",
                    class(x)
                ))
            })?;
            Ok(Value::Bool(s.contains(x)))
        }
        Value::Array(items) => Ok(Value::Bool(items.iter().any(|item| ruby_eq(item, x)))),
        Value::Object(map) => Ok(Value::Bool(x.as_str().is_some_and(|k| map.contains_key(k)))),
        other => Err(no_method(&a, "include?", other)),
    }
}

/// `rb_key(k=key)`: Ruby's Hash `key?` (an error on anything but a Hash, as in Ruby).
fn rb_key(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("rb_key", args, &["k"])?;
    let k = a.value("k")?;
    match value {
        Value::Object(map) => Ok(Value::Bool(k.as_str().is_some_and(|k| map.contains_key(k)))),
        other => Err(no_method(&a, "key?", other)),
    }
}

fn affix_test(
    name: &'static str,
    method: &str,
    value: &Value,
    args: &HashMap<String, Value>,
    test: fn(&str, &str) -> bool,
) -> tera::Result<Value> {
    let a = Args::new(name, args, &["s"])?;
    let s = string(&a, method, value)?;
    let x = a.value("s")?;
    let x = x.as_str().ok_or_else(|| {
        a.error(format!(
            "no implicit conversion of {} into String",
            class(x)
        ))
    })?;
    Ok(Value::Bool(test(s, x)))
}

/// `rb_start_with(s=prefix)`: Ruby's `start_with?`.
fn rb_start_with(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    affix_test("rb_start_with", "start_with?", value, args, |s, x| {
        s.starts_with(x)
    })
}

/// `rb_end_with(s=suffix)`: Ruby's `end_with?`.
fn rb_end_with(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    affix_test("rb_end_with", "end_with?", value, args, |s, x| {
        s.ends_with(x)
    })
}

/// Ruby's `==` on the values templates hold (Tera's `==` says `"1" != 1` is false).
fn ruby_eq(x: &Value, y: &Value) -> bool {
    match (x.as_number(), y.as_number()) {
        (Some(m), Some(n)) => match (m.as_i64(), n.as_i64()) {
            (Some(m), Some(n)) => m == n,
            _ => m.as_f64() == n.as_f64(),
        },
        _ => x == y,
    }
}

/// `rb_eq(other=y)`: Ruby's `==`.
fn rb_eq(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("rb_eq", args, &["other"])?;
    Ok(Value::Bool(ruby_eq(value, a.value("other")?)))
}

/// Ruby's `<=>`: equal values (`nil` and `nil` too) are equal, Integers and Strings (byte
/// order) are ordered, Arrays item by item; `None` when Ruby cannot compare them.
fn ruby_cmp(x: &Value, y: &Value) -> Option<Ordering> {
    if ruby_eq(x, y) {
        return Some(Ordering::Equal);
    }
    match (x, y) {
        (Value::String(s), Value::String(t)) => Some(s.as_bytes().cmp(t.as_bytes())),
        (Value::Number(m), Value::Number(n)) => match (m.as_i64(), n.as_i64()) {
            (Some(m), Some(n)) => Some(m.cmp(&n)),
            _ => m.as_f64()?.partial_cmp(&n.as_f64()?),
        },
        (Value::Array(xs), Value::Array(ys)) => {
            for (x, y) in xs.iter().zip(ys) {
                match ruby_cmp(x, y)? {
                    Ordering::Equal => continue,
                    other => return Some(other),
                }
            }
            Some(xs.len().cmp(&ys.len()))
        }
        _ => None,
    }
}

fn compare(
    name: &'static str,
    value: &Value,
    args: &HashMap<String, Value>,
    accept: fn(Ordering) -> bool,
) -> tera::Result<Value> {
    let a = Args::new(name, args, &["other"])?;
    let other = a.value("other")?;
    if matches!(value, Value::Array(_)) {
        return Err(no_method(&a, "<", value));
    }
    ruby_cmp(value, other)
        .map(|o| Value::Bool(accept(o)))
        .ok_or_else(|| {
            a.error(format!(
                "comparison of {} with {} failed",
                class(value),
                inspect(other)
            ))
        })
}

/// `rb_lt(other=y)`: Ruby's `<` (numbers, or strings in byte order).
fn rb_lt(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    compare("rb_lt", value, args, Ordering::is_lt)
}

/// `rb_le(other=y)`: Ruby's `<=`.
fn rb_le(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    compare("rb_le", value, args, Ordering::is_le)
}

/// `rb_gt(other=y)`: Ruby's `>`.
fn rb_gt(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    compare("rb_gt", value, args, Ordering::is_gt)
}

/// `rb_ge(other=y)`: Ruby's `>=`.
fn rb_ge(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    compare("rb_ge", value, args, Ordering::is_ge)
}

fn arithmetic(
    name: &'static str,
    op: &str,
    value: &Value,
    args: &HashMap<String, Value>,
    apply: fn(i64, i64) -> Option<i64>,
) -> tera::Result<Value> {
    let a = Args::new(name, args, &["other"])?;
    let other = a.value("other")?;
    let x = value
        .as_i64()
        .filter(|_| value.as_number().is_some_and(|n| !n.is_f64()))
        .ok_or_else(|| no_method(&a, op, value))?;
    let y = integer(&a, "the operand", other)?;
    apply(x, y)
        .map(int)
        .ok_or_else(|| a.error(format!("{x} {op} {y}: divided by 0 or beyond 64 bits")))
}

/// `rb_plus(other=y)`: Ruby's `+`: Integers add, Strings and Arrays concatenate.
fn rb_plus(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("rb_plus", args, &["other"])?;
    let other = a.value("other")?;
    match (value, other) {
        (Value::String(s), Value::String(t)) => Ok(Value::String(format!("{s}{t}"))),
        (Value::String(_), _) => Err(a.error(format!(
            "no implicit conversion of {} into String",
            class(other)
        ))),
        (Value::Array(xs), Value::Array(ys)) => {
            Ok(Value::Array(xs.iter().chain(ys).cloned().collect()))
        }
        _ => arithmetic("rb_plus", "+", value, args, i64::checked_add),
    }
}

/// `rb_minus(other=y)`: Ruby's `-` on Integers.
fn rb_minus(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    arithmetic("rb_minus", "-", value, args, i64::checked_sub)
}

/// `rb_times(other=n)`: Ruby's `*`: Integers multiply, a String repeats.
fn rb_times(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    if let Value::String(s) = value {
        let a = Args::new("rb_times", args, &["other"])?;
        let n = integer(&a, "the count", a.value("other")?)?;
        let n = usize::try_from(n).map_err(|_| a.error("negative argument"))?;
        limits::check_size(&a, (s.len() as u64).saturating_mul(n as u64))?;
        return Ok(Value::String(s.repeat(n)));
    }
    arithmetic("rb_times", "*", value, args, i64::checked_mul)
}

/// `rb_div(other=y)`: Ruby's Integer `/`, rounding toward negative infinity.
fn rb_div(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    arithmetic("rb_div", "/", value, args, |x, y| {
        let q = x.checked_div(y)?;
        Some(if (x % y != 0) && ((x < 0) != (y < 0)) {
            q - 1
        } else {
            q
        })
    })
}

/// `rb_mod(other=y)`: Ruby's Integer `%`, with the sign of the divisor.
fn rb_mod(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    arithmetic("rb_mod", "%", value, args, |x, y| {
        let r = x.checked_rem(y)?;
        Some(if r != 0 && ((r < 0) != (y < 0)) {
            r + y
        } else {
            r
        })
    })
}

fn string_map(
    name: &'static str,
    method: &str,
    value: &Value,
    args: &HashMap<String, Value>,
    map: fn(&str) -> String,
) -> tera::Result<Value> {
    let a = Args::new(name, args, &[])?;
    Ok(Value::String(map(string(&a, method, value)?)))
}

/// `rb_upcase`: Ruby's `upcase` (full Unicode case mapping).
fn rb_upcase(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    string_map("rb_upcase", "upcase", value, args, |s| {
        s.chars().flat_map(upper).collect()
    })
}

/// A character's upper case as Ruby 3.1 (Unicode 13) has it: Unicode 16 gave `ƛ` and `ɤ`
/// capitals that Ruby's tables do not know.
fn upper(c: char) -> Box<dyn Iterator<Item = char>> {
    match c {
        'ƛ' | 'ɤ' => Box::new(std::iter::once(c)),
        _ => Box::new(c.to_uppercase()),
    }
}

/// `rb_downcase`: Ruby's `downcase`: each character on its own (no final-sigma rule).
fn rb_downcase(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    string_map("rb_downcase", "downcase", value, args, |s| {
        s.chars().flat_map(char::to_lowercase).collect()
    })
}

/// `rb_capitalize`: Ruby's `capitalize`: the first character title-cased, the rest down.
fn rb_capitalize(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    string_map("rb_capitalize", "capitalize", value, args, |s| {
        let mut chars = s.chars();
        match chars.next() {
            None => String::new(),
            Some(first) => titlecase(first)
                .chain(chars.flat_map(char::to_lowercase))
                .collect(),
        }
    })
}

/// A character's title case: its upper case, except for the characters whose title case
/// differs (Unicode's SpecialCasing and UnicodeData): `ß` → `Ss`, ligatures, the Latin
/// digraphs `ǅ ǈ ǋ ǲ`, Greek letters with a subscript iota.
fn titlecase(c: char) -> Box<dyn Iterator<Item = char>> {
    let special = match c {
        'ß' => "Ss",
        'ﬀ' => "Ff",
        'ﬁ' => "Fi",
        'ﬂ' => "Fl",
        'ﬃ' => "Ffi",
        'ﬄ' => "Ffl",
        'ﬅ' | 'ﬆ' => "St",
        'և' => "Եւ",
        'ﬓ' => "Մն",
        'ﬔ' => "Մե",
        'ﬕ' => "Մի",
        'ﬖ' => "Վն",
        'ﬗ' => "Մխ",
        'Ǆ'..='ǆ' => "ǅ",
        'Ǉ'..='ǉ' => "ǈ",
        'Ǌ'..='ǌ' => "ǋ",
        'Ǳ'..='ǳ' => "ǲ",
        '\u{1FB2}' => "\u{1FBA}\u{345}",
        '\u{1FB4}' => "\u{386}\u{345}",
        '\u{1FB7}' => "\u{391}\u{342}\u{345}",
        '\u{1FC2}' => "\u{1FCA}\u{345}",
        '\u{1FC4}' => "\u{389}\u{345}",
        '\u{1FC7}' => "\u{397}\u{342}\u{345}",
        '\u{1FF2}' => "\u{1FFA}\u{345}",
        '\u{1FF4}' => "\u{38F}\u{345}",
        '\u{1FF7}' => "\u{3A9}\u{342}\u{345}",
        '\u{1FB3}' | '\u{1FBC}' => "\u{1FBC}",
        '\u{1FC3}' | '\u{1FCC}' => "\u{1FCC}",
        '\u{1FF3}' | '\u{1FFC}' => "\u{1FFC}",
        '\u{1F80}'..='\u{1F87}' | '\u{1F90}'..='\u{1F97}' | '\u{1FA0}'..='\u{1FA7}' => {
            let title = char::from_u32(u32::from(c) + 8).unwrap_or(c);
            return Box::new(std::iter::once(title));
        }
        '\u{1F88}'..='\u{1F8F}'
        | '\u{1F98}'..='\u{1F9F}'
        | '\u{1FA8}'..='\u{1FAF}'
        | '\u{10D0}'..='\u{10FA}'
        | '\u{10FD}'..='\u{10FF}' => return Box::new(std::iter::once(c)),
        // Georgian Mtavruli title-cases to Mkhedruli.
        '\u{1C90}'..='\u{1CBA}' | '\u{1CBD}'..='\u{1CBF}' => {
            let title = char::from_u32(u32::from(c) - 0xBC0).unwrap_or(c);
            return Box::new(std::iter::once(title));
        }
        _ => return Box::new(upper(c)),
    };
    Box::new(special.chars())
}

/// What Ruby's `strip` removes: ASCII white space and NUL.
const STRIP: [char; 7] = ['\0', '\t', '\n', '\x0b', '\x0c', '\r', ' '];

/// `rb_strip`: Ruby's `strip` (ASCII white space and NUL at both ends; not Unicode spaces).
fn rb_strip(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    string_map("rb_strip", "strip", value, args, |s| {
        s.trim_matches(STRIP).to_string()
    })
}

/// `rb_lstrip`: Ruby's `lstrip`.
fn rb_lstrip(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    string_map("rb_lstrip", "lstrip", value, args, |s| {
        s.trim_start_matches(STRIP).to_string()
    })
}

/// `rb_rstrip`: Ruby's `rstrip`.
fn rb_rstrip(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    string_map("rb_rstrip", "rstrip", value, args, |s| {
        s.trim_end_matches(STRIP).to_string()
    })
}

/// `rb_chomp`: Ruby's `chomp`: one trailing `\r\n`, `\n` or `\r` removed.
fn rb_chomp(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    string_map("rb_chomp", "chomp", value, args, |s| {
        s.strip_suffix("\r\n")
            .or_else(|| s.strip_suffix('\n'))
            .or_else(|| s.strip_suffix('\r'))
            .unwrap_or(s)
            .to_string()
    })
}

/// A regex argument (Rust syntax), compiled once per pattern and thread.
fn regex(a: &Args<'_>, pattern: &str) -> tera::Result<Rc<Regex>> {
    thread_local! {
        static CACHE: RefCell<HashMap<String, Rc<Regex>>> = RefCell::new(HashMap::new());
    }
    if let Some(re) = CACHE.with(|c| c.borrow().get(pattern).cloned()) {
        return Ok(re);
    }
    let re = Rc::new(Regex::new(pattern).map_err(|e| a.error(format!("invalid regex: {e}")))?);
    CACHE.with(|c| c.borrow_mut().insert(pattern.to_string(), Rc::clone(&re)));
    Ok(re)
}

/// `rb_split(sep=",")` / `rb_split(regex="...")` / `rb_split`: Ruby's `split`: without a
/// separator or with `" "` on runs of ASCII white space (leading ones ignored), `""` into
/// characters; trailing empty fields are dropped.
fn rb_split(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("rb_split", args, &["sep", "regex"])?;
    let s = string(&a, "split", value)?;
    let mut fields: Vec<String> = match (a.opt_string("sep")?, a.opt_string("regex")?) {
        (Some(_), Some(_)) => return Err(a.error("give `sep` or `regex`, not both")),
        (None | Some(" "), None) => s
            .split(|c: char| STRIP[1..].contains(&c))
            .filter(|f| !f.is_empty())
            .map(str::to_string)
            .collect(),
        (Some(""), None) => s.chars().map(String::from).collect(),
        (Some(sep), None) => s.split(sep).map(str::to_string).collect(),
        (None, Some(pattern)) => {
            let re = regex(&a, pattern)?;
            let mut fields = vec![];
            let mut start = 0;
            for m in re.find_iter(s) {
                if m.is_empty() {
                    return Err(a.error("a regex matching the empty string is not supported"));
                }
                fields.push(s[start..m.start()].to_string());
                start = m.end();
            }
            fields.push(s[start..].to_string());
            fields
        }
    };
    while fields.last().is_some_and(String::is_empty) {
        fields.pop();
    }
    Ok(fields.into_iter().map(Value::String).collect())
}

/// `rb_join(sep=",")`: Ruby's `join`: items as `to_s` (`nil` as nothing), nested Arrays
/// joined too.
fn rb_join(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("rb_join", args, &["sep"])?;
    let sep = a.opt_string("sep")?.unwrap_or("");
    let Value::Array(items) = value else {
        return Err(no_method(&a, "join", value));
    };
    fn flatten(items: &[Value], out: &mut Vec<String>) {
        for item in items {
            match item {
                Value::Array(inner) => flatten(inner, out),
                other => out.push(to_s(other)),
            }
        }
    }
    let mut parts = vec![];
    flatten(items, &mut parts);
    Ok(Value::String(parts.join(sep)))
}

fn ends(
    name: &'static str,
    method: &str,
    value: &Value,
    args: &HashMap<String, Value>,
    last: bool,
) -> tera::Result<Value> {
    let a = Args::new(name, args, &["n"])?;
    let items = match value {
        Value::Array(items) => items.clone(),
        Value::Object(_) if !last => each_items(&a, value)?,
        other => return Err(no_method(&a, method, other)),
    };
    match a.value("n").ok() {
        None => Ok(if last { items.last() } else { items.first() }
            .cloned()
            .unwrap_or(Value::Null)),
        Some(n) => {
            let n = usize::try_from(integer(&a, "n", n)?)
                .map_err(|_| a.error("negative array size"))?
                .min(items.len());
            let range = if last {
                items.len() - n..items.len()
            } else {
                0..n
            };
            Ok(Value::Array(items[range].to_vec()))
        }
    }
}

/// `rb_first` / `rb_first(n=2)`: Ruby's `first` (a Hash's first `[key, value]`).
fn rb_first(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    ends("rb_first", "first", value, args, false)
}

/// `rb_last` / `rb_last(n=2)`: Ruby's Array `last`.
fn rb_last(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    ends("rb_last", "last", value, args, true)
}

pub(super) fn sorted(a: &Args<'_>, mut keyed: Vec<(Value, Value)>) -> tera::Result<Vec<Value>> {
    let mut failed = None;
    keyed.sort_by(|(x, _), (y, _)| {
        ruby_cmp(x, y).unwrap_or_else(|| {
            failed.get_or_insert_with(|| {
                format!("comparison of {} with {} failed", class(x), class(y))
            });
            Ordering::Equal
        })
    });
    match failed {
        Some(message) => Err(a.error(message)),
        None => Ok(keyed.into_iter().map(|(_, item)| item).collect()),
    }
}

/// `rb_sort`: Ruby's `sort` (a Hash sorts as its `[key, value]` pairs).
fn rb_sort(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("rb_sort", args, &[])?;
    let items = each_items(&a, value)?;
    sorted(&a, items.into_iter().map(|v| (v.clone(), v)).collect()).map(Value::Array)
}

/// `rb_reverse`: Ruby's Array `reverse`.
fn rb_reverse(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("rb_reverse", args, &[])?;
    match value {
        Value::Array(items) => Ok(Value::Array(items.iter().rev().cloned().collect())),
        other => Err(no_method(&a, "reverse", other)),
    }
}

/// `rb_uniq`: Ruby's Array `uniq` (first occurrences, in order).
fn rb_uniq(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("rb_uniq", args, &[])?;
    let Value::Array(items) = value else {
        return Err(no_method(&a, "uniq", value));
    };
    let mut out: Vec<Value> = vec![];
    for item in items {
        if !out.contains(item) {
            out.push(item.clone());
        }
    }
    Ok(Value::Array(out))
}

/// Expands Ruby's replacement escapes: `\0`/`\&` the match, `\1`…`\9` a group, `\\` a
/// backslash.
fn expand(a: &Args<'_>, with: &str, caps: &regex::Captures<'_>) -> tera::Result<String> {
    let mut out = String::new();
    let mut chars = with.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('&') => out.push_str(&caps[0]),
            Some(d @ '0'..='9') => {
                let i = d as usize - '0' as usize;
                out.push_str(caps.get(i).map_or("", |m| m.as_str()));
            }
            Some('\\') => out.push('\\'),
            Some(other @ ('`' | '\'' | 'k')) => {
                return Err(a.error(format!("replacement escape \\{other} is not supported")))
            }
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    Ok(out)
}

fn substitute(
    name: &'static str,
    value: &Value,
    args: &HashMap<String, Value>,
    all: bool,
) -> tera::Result<Value> {
    let a = Args::new(name, args, &["pattern", "regex", "with"])?;
    let s = string(&a, if all { "gsub" } else { "sub" }, value)?;
    let with = a.string("with")?;
    let (re, literal) = match (a.opt_string("pattern")?, a.opt_string("regex")?) {
        (Some(p), None) => (regex(&a, &regex::escape(p))?, true),
        (None, Some(r)) => (regex(&a, r)?, false),
        _ => return Err(a.error("give one of `pattern` (a string) or `regex`")),
    };
    let mut out = String::new();
    let mut last = 0;
    for caps in re.captures_iter(s) {
        let m = caps.get(0).expect("group 0 always matches");
        // An empty pattern string matches between characters, as in Ruby; a regex that
        // matches empty strings next to others may advance differently, so it is refused.
        if m.is_empty() && !literal {
            return Err(a.error("a regex matching the empty string is not supported"));
        }
        out.push_str(&s[last..m.start()]);
        out.push_str(&expand(&a, with, &caps)?);
        last = m.end();
        if !all {
            break;
        }
    }
    out.push_str(&s[last..]);
    Ok(Value::String(out))
}

/// `rb_sub(pattern="a", with="b")` / `rb_sub(regex="[0-9]+", with="#")`: Ruby's `sub`:
/// the first match replaced; `with` understands `\0`, `\&`, `\1`…`\9` and `\\`. `regex`
/// is Rust regex syntax.
fn rb_sub(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    substitute("rb_sub", value, args, false)
}

/// `rb_gsub(...)`: Ruby's `gsub`: like `rb_sub`, every match.
fn rb_gsub(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    substitute("rb_gsub", value, args, true)
}

/// `rb_basename` / `rb_basename(suffix=".conf")`: Ruby's `File.basename` (`".*"` removes
/// any extension).
fn rb_basename(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("rb_basename", args, &["suffix"])?;
    let path = value.as_str().ok_or_else(|| {
        a.error(format!(
            "no implicit conversion of {} into String",
            class(value)
        ))
    })?;
    let trimmed = path.trim_end_matches('/');
    let base = if trimmed.is_empty() {
        if path.is_empty() {
            ""
        } else {
            "/"
        }
    } else {
        trimmed.rsplit('/').next().unwrap_or(trimmed)
    };
    let base = match a.opt_string("suffix")? {
        Some(".*") => match base.rfind('.') {
            Some(i) if i > 0 => &base[..i],
            _ => base,
        },
        Some(suffix) if !suffix.is_empty() && base != suffix => {
            base.strip_suffix(suffix).unwrap_or(base)
        }
        _ => base,
    };
    Ok(Value::String(base.to_string()))
}

/// `rb_dirname`: Ruby's `File.dirname` (`"a"` → `"."`, `"/a"` → `"/"`, `"a/b/"` → `"a"`).
fn rb_dirname(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("rb_dirname", args, &[])?;
    let path = value.as_str().ok_or_else(|| {
        a.error(format!(
            "no implicit conversion of {} into String",
            class(value)
        ))
    })?;
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(Value::String(
            if path.is_empty() { "." } else { "/" }.to_string(),
        ));
    }
    let dir = match trimmed.rfind('/') {
        None => ".",
        Some(i) => {
            let dir = trimmed[..i].trim_end_matches('/');
            if dir.is_empty() {
                "/"
            } else {
                dir
            }
        }
    };
    Ok(Value::String(dir.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(filter: Filter, value: Value, args: Value) -> tera::Result<Value> {
        let args: HashMap<String, Value> = serde_json::from_value(args).unwrap();
        filter(&value, &args)
    }

    #[test]
    fn to_s_and_inspect_print_like_ruby() {
        assert_eq!(to_s(&Value::Null), "");
        assert_eq!(
            to_s(&json!({"a": ["b", null, 1, true]})),
            r#"{"a"=>["b", nil, 1, true]}"#
        );
        assert_eq!(
            inspect_string("a\"\\\n\u{1}\u{7f}#{x}#y"),
            r#""a\"\\\n\u0001\u007F\#{x}#y""#
        );
    }

    #[test]
    fn to_i_reads_a_leading_integer() {
        for (s, n) in [
            (" 12ab", 12),
            ("1_000", 1000),
            ("1__0", 1),
            ("_1", 0),
            ("-3", -3),
            ("x", 0),
        ] {
            assert_eq!(string_to_i(s), Some(n), "{s}");
        }
    }

    #[test]
    fn lookups_are_nil_safe_and_index_from_the_end() {
        let h = json!({"/a": "1"});
        assert_eq!(
            call(rb_at, h.clone(), json!({"k": "/b"})).unwrap(),
            Value::Null
        );
        assert_eq!(
            call(rb_at, json!(["x", "y"]), json!({"k": -1})).unwrap(),
            json!("y")
        );
        assert!(call(rb_at, Value::Null, json!({"k": "/a"})).is_err());
    }

    #[test]
    fn split_drops_trailing_empty_fields() {
        assert_eq!(
            call(rb_split, json!("a,b,,"), json!({"sep": ","})).unwrap(),
            json!(["a", "b"])
        );
        assert_eq!(
            call(rb_split, json!("  a  b "), json!({})).unwrap(),
            json!(["a", "b"])
        );
        assert_eq!(
            call(rb_split, json!(",a"), json!({"sep": ","})).unwrap(),
            json!(["", "a"])
        );
        assert_eq!(
            call(rb_split, json!(""), json!({"sep": ","})).unwrap(),
            json!([])
        );
        assert_eq!(
            call(rb_split, json!("a1b22c"), json!({"regex": "[0-9]+"})).unwrap(),
            json!(["a", "b", "c"])
        );
    }

    #[test]
    fn arithmetic_floors_like_ruby() {
        assert_eq!(
            call(rb_div, json!(-7), json!({"other": 2})).unwrap(),
            json!(-4)
        );
        assert_eq!(
            call(rb_mod, json!(-7), json!({"other": 2})).unwrap(),
            json!(1)
        );
        assert!(call(rb_plus, json!("a"), json!({"other": 1})).is_err());
    }

    #[test]
    fn paths_follow_ruby() {
        for (p, base, dir) in [
            ("/a/b/", "b", "/a"),
            ("/", "/", "/"),
            ("", "", "."),
            ("a", "a", "."),
            ("//a", "a", "/"),
        ] {
            assert_eq!(
                call(rb_basename, json!(p), json!({})).unwrap(),
                json!(base),
                "{p}"
            );
            assert_eq!(
                call(rb_dirname, json!(p), json!({})).unwrap(),
                json!(dir),
                "{p}"
            );
        }
        assert_eq!(
            call(rb_basename, json!("a.conf"), json!({"suffix": ".*"})).unwrap(),
            json!("a")
        );
    }

    #[test]
    fn capitalize_title_cases_digraphs() {
        assert_eq!(
            call(rb_capitalize, json!("ǆUNGLA"), json!({})).unwrap(),
            json!("ǅungla")
        );
        assert_eq!(
            call(rb_capitalize, json!("ßA"), json!({})).unwrap(),
            json!("Ssa")
        );
    }

    #[test]
    fn an_empty_pattern_matches_between_characters() {
        let args = json!({"pattern": "", "with": "-"});
        assert_eq!(
            call(rb_gsub, json!("aé"), args.clone()).unwrap(),
            json!("-a-é-")
        );
        assert_eq!(call(rb_sub, json!("aé"), args).unwrap(), json!("-aé"));
    }

    #[test]
    fn gsub_expands_ruby_escapes() {
        let args = json!({"pattern": "-", "with": "<\\0>"});
        assert_eq!(
            call(rb_gsub, json!("a-b-c"), args).unwrap(),
            json!("a<->b<->c")
        );
        let args = json!({"regex": "([a-z])", "with": "\\1\\1"});
        assert_eq!(call(rb_sub, json!("ab"), args).unwrap(), json!("aab"));
    }
}
