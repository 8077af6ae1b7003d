//! confd's template functions (its `template_funcs.go` and memkv's store), each with the
//! Go signature confd gives it — which decides the argument checks — and confd's result
//! and errors: `getvs` sorts values, `reverse` reverses `[]string` and `[]memkv.KVPair` in
//! place (but not the `memkv.KVPairs` that `gets` returns), the sorts are Go's unstable
//! `sort.Sort`, `div` by zero fails, `toUpper` maps each character on its own.

use std::collections::BTreeMap;

use base64::Engine as _;

use super::exec::{map_of, sig, Result, Sig, P};
use super::memkv::Store;
use super::sort::sort;
use super::value::{GoVal, Slice, Ty};
use crate::etcd::SECRET_ENV;
use crate::template::confd::gopath;

/// What a confd function may use besides its arguments: the render's store, and the
/// render's limits, checked before a function builds a large value.
pub struct Ctx<'a> {
    pub store: &'a dyn Fn() -> Result<std::rc::Rc<Store>>,
    /// Fails when a list of this many items would run past the iteration limit.
    pub iterations: &'a dyn Fn(u64) -> Result<()>,
    /// Fails when a value of this many bytes would be larger than a render may produce.
    pub size: &'a dyn Fn(u64) -> Result<()>,
}

/// What a function does with its bound arguments.
pub type Call = fn(&Ctx<'_>, Vec<GoVal>) -> Result<GoVal>;

/// confd's functions: name, signature, what they do.
pub const CONFD: &[(&str, Sig, Call)] = {
    use P::{Iface, Int, Pairs, Str, Strings};
    &[
        ("getv", sig(&[Str], Some(Str)), |s, a| {
            (s.store)()?.getv(&text(&a[0]), &a[1..])
        }),
        ("getvs", sig(&[Str], None), |s, a| {
            (s.store)()?.getvs(&text(&a[0]))
        }),
        ("get", sig(&[Str], None), |s, a| {
            (s.store)()?.get(&text(&a[0]))
        }),
        ("gets", sig(&[Str], None), |s, a| {
            (s.store)()?.gets(&text(&a[0]))
        }),
        ("exists", sig(&[Str], None), |s, a| {
            Ok(GoVal::Bool((s.store)()?.exists(&text(&a[0]))))
        }),
        ("ls", sig(&[Str], None), |s, a| {
            Ok((s.store)()?.ls(&text(&a[0])))
        }),
        ("lsdir", sig(&[Str], None), |s, a| {
            Ok((s.store)()?.lsdir(&text(&a[0])))
        }),
        ("base", sig(&[Str], None), |_, a| {
            Ok(GoVal::Str(gopath::base(&text(&a[0]))))
        }),
        ("dir", sig(&[Str], None), |_, a| {
            Ok(GoVal::Str(gopath::dir(&text(&a[0]))))
        }),
        ("split", sig(&[Str, Str], None), |_, a| {
            Ok(split(&text(&a[0]), &text(&a[1])))
        }),
        ("join", sig(&[Strings, Str], None), |_, a| {
            let items: Vec<String> = items(&a[0]).iter().map(text).collect();
            Ok(GoVal::Str(items.join(&text(&a[1]))))
        }),
        ("json", sig(&[Str], None), |_, a| json(&text(&a[0]), false)),
        ("jsonArray", sig(&[Str], None), |_, a| {
            json(&text(&a[0]), true)
        }),
        ("map", sig(&[], Some(Iface)), |_, a| create_map(a)),
        ("getenv", sig(&[Str], Some(Str)), |_, a| getenv(&a)),
        ("toUpper", sig(&[Str], None), |_, a| {
            Ok(GoVal::Str(text(&a[0]).chars().map(upper).collect()))
        }),
        ("toLower", sig(&[Str], None), |_, a| {
            Ok(GoVal::Str(text(&a[0]).chars().map(lower).collect()))
        }),
        ("contains", sig(&[Str, Str], None), |_, a| {
            Ok(GoVal::Bool(text(&a[0]).contains(&text(&a[1]))))
        }),
        ("replace", sig(&[Str, Str, Str, Int], None), |c, a| {
            let (s, old, new) = (text(&a[0]), text(&a[1]), text(&a[2]));
            let GoVal::Int(n) = a[3] else {
                unreachable!("bound to an int")
            };
            let most = s.chars().count() as u64 + 1;
            (c.size)(
                (new.len() as u64)
                    .saturating_mul(most)
                    .saturating_add(s.len() as u64),
            )?;
            Ok(GoVal::Str(match usize::try_from(n) {
                Ok(n) => s.replacen(&old, &new, n),
                Err(_) => s.replace(&old, &new),
            }))
        }),
        ("trimSuffix", sig(&[Str, Str], None), |_, a| {
            let (s, suffix) = (text(&a[0]), text(&a[1]));
            Ok(GoVal::Str(
                s.strip_suffix(suffix.as_str()).unwrap_or(&s).to_string(),
            ))
        }),
        ("base64Encode", sig(&[Str], None), |_, a| {
            Ok(GoVal::Str(
                base64::engine::general_purpose::STANDARD.encode(text(&a[0])),
            ))
        }),
        ("base64Decode", sig(&[Str], None), |_, a| {
            base64_decode(&text(&a[0]))
        }),
        ("parseBool", sig(&[Str], None), |_, a| {
            parse_bool(&text(&a[0]))
        }),
        ("reverse", sig(&[Iface], None), |_, a| {
            Ok(reverse(a.into_iter().next().expect("bound")))
        }),
        ("sortByLength", sig(&[Strings], None), |_, a| {
            Ok(sort_by_length(&a[0], Ty::Slice(Box::new(Ty::Str)), |v| {
                text(v).len()
            }))
        }),
        ("sortKVByLength", sig(&[Pairs], None), |_, a| {
            Ok(sort_by_length(
                &a[0],
                Ty::Slice(Box::new(Ty::Kv)),
                |v| match v {
                    GoVal::Kv(k, _) => k.len(),
                    _ => 0,
                },
            ))
        }),
        ("add", sig(&[Int, Int], None), |_, a| {
            Ok(GoVal::Int(int(&a[0]).wrapping_add(int(&a[1]))))
        }),
        ("sub", sig(&[Int, Int], None), |_, a| {
            Ok(GoVal::Int(int(&a[0]).wrapping_sub(int(&a[1]))))
        }),
        ("mul", sig(&[Int, Int], None), |_, a| {
            Ok(GoVal::Int(int(&a[0]).wrapping_mul(int(&a[1]))))
        }),
        ("div", sig(&[Int, Int], None), |_, a| {
            divide(&a, i64::wrapping_div)
        }),
        ("mod", sig(&[Int, Int], None), |_, a| {
            divide(&a, i64::wrapping_rem)
        }),
        ("seq", sig(&[Int, Int], None), |c, a| {
            let (first, last) = (int(&a[0]), int(&a[1]));
            if last < first {
                return Ok(GoVal::Slice(Slice::nil(Ty::Slice(Box::new(Ty::Int)))));
            }
            (c.iterations)(last.abs_diff(first).saturating_add(1))?;
            Ok(GoVal::Slice(Slice::new(
                Ty::Slice(Box::new(Ty::Int)),
                (first..=last).map(GoVal::Int).collect(),
            )))
        }),
        ("atoi", sig(&[Str], None), |_, a| {
            let s = text(&a[0]);
            s.parse::<i64>()
                .map(GoVal::Int)
                .map_err(|e| format!("strconv.Atoi: parsing {s:?}: {e}"))
        }),
    ]
};

/// A bound string argument.
fn text(v: &GoVal) -> String {
    match v {
        GoVal::Str(s) => s.clone(),
        _ => String::new(),
    }
}

fn int(v: &GoVal) -> i64 {
    match v {
        GoVal::Int(i) => *i,
        _ => 0,
    }
}

fn items(v: &GoVal) -> Vec<GoVal> {
    match v {
        GoVal::Slice(s) => s.items(),
        _ => vec![],
    }
}

fn divide(a: &[GoVal], op: fn(i64, i64) -> i64) -> Result<GoVal> {
    match int(&a[1]) {
        0 => Err("runtime error: integer divide by zero".into()),
        b => Ok(GoVal::Int(op(int(&a[0]), b))),
    }
}

/// Go's `strings.Split`: an empty separator splits into characters.
fn split(s: &str, sep: &str) -> GoVal {
    GoVal::strings(if sep.is_empty() {
        s.chars().map(String::from).collect()
    } else {
        s.split(sep).map(str::to_string).collect()
    })
}

/// `json` (an object into `map[string]interface {}`) and `jsonArray` (an array into
/// `[]interface {}`), as Go's `encoding/json` decodes them.
fn json(s: &str, array: bool) -> Result<GoVal> {
    let v: serde_json::Value = serde_json::from_str(s).map_err(|e| format!("invalid JSON: {e}"))?;
    match (v, array) {
        (serde_json::Value::Null, false) => Ok(GoVal::Map(super::value::MapVal {
            elem: Ty::Iface,
            entries: None,
        })),
        (serde_json::Value::Null, true) => {
            Ok(GoVal::Slice(Slice::nil(Ty::Slice(Box::new(Ty::Iface)))))
        }
        (v @ serde_json::Value::Object(_), false) | (v @ serde_json::Value::Array(_), true) => {
            Ok(from_json(v))
        }
        (v, _) => Err(format!(
            "json: cannot unmarshal {} into Go value of type {}",
            match v {
                serde_json::Value::Bool(_) => "bool",
                serde_json::Value::Number(_) => "number",
                serde_json::Value::String(_) => "string",
                serde_json::Value::Array(_) => "array",
                _ => "object",
            },
            if array {
                "[]interface {}"
            } else {
                "map[string]interface {}"
            }
        )),
    }
}

fn from_json(v: serde_json::Value) -> GoVal {
    match v {
        serde_json::Value::Null => GoVal::NilIface,
        serde_json::Value::Bool(b) => GoVal::Bool(b),
        serde_json::Value::Number(n) => GoVal::Float(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::String(s) => GoVal::Str(s),
        serde_json::Value::Array(items) => GoVal::Slice(Slice::new(
            Ty::Slice(Box::new(Ty::Iface)),
            items.into_iter().map(from_json).collect(),
        )),
        serde_json::Value::Object(map) => map_of(
            Ty::Iface,
            map.into_iter().map(|(k, v)| (k, from_json(v))).collect(),
        ),
    }
}

/// confd's `map k1 v1 k2 v2…`.
fn create_map(a: Vec<GoVal>) -> Result<GoVal> {
    if a.len() % 2 != 0 {
        return Err("invalid map call".into());
    }
    let mut entries = BTreeMap::new();
    let mut it = a.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        let GoVal::Str(k) = k else {
            return Err("map keys must be strings".into());
        };
        entries.insert(k, v);
    }
    Ok(map_of(Ty::Iface, entries))
}

/// confd's `getenv name [default]`: unset or empty gives the default (or nothing).
fn getenv(a: &[GoVal]) -> Result<GoVal> {
    let name = text(&a[0]);
    if SECRET_ENV.contains(&name.as_str()) {
        return Err(format!(
            "{name} is reconfig's secret: templates cannot read it"
        ));
    }
    let value = std::env::var_os(&name).unwrap_or_default();
    if value.is_empty() {
        return Ok(GoVal::Str(a.get(1).map(text).unwrap_or_default()));
    }
    value
        .into_string()
        .map(GoVal::Str)
        .map_err(|_| format!("environment variable {name} is not valid UTF-8"))
}

fn base64_decode(s: &str) -> Result<GoVal> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    // Go's StdEncoding: padding required, stray trailing bits accepted, line ends skipped.
    let engine = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
    );
    let clean: String = s.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    let bytes = engine
        .decode(clean)
        .map_err(|e| format!("illegal base64 data: {e}"))?;
    String::from_utf8(bytes).map(GoVal::Str).map_err(|_| {
        "the decoded value is not valid UTF-8, which reconfig templates cannot hold".into()
    })
}

fn parse_bool(s: &str) -> Result<GoVal> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(GoVal::Bool(true)),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(GoVal::Bool(false)),
        _ => Err(format!("strconv.ParseBool: parsing {s:?}: invalid syntax")),
    }
}

/// confd's `reverse`: `[]string` and `[]memkv.KVPair` reversed in place, anything else
/// (`memkv.KVPairs` from `gets` included) as it is.
fn reverse(v: GoVal) -> GoVal {
    if let GoVal::Slice(s) = &v {
        if s.ty == Ty::Slice(Box::new(Ty::Str)) || s.ty == Ty::Slice(Box::new(Ty::Kv)) {
            s.rewrite(|items| items.reverse());
        }
    }
    v
}

/// `sortByLength` / `sortKVByLength`: Go's `sort.Sort` by length, in place; the result has
/// the parameter's type.
fn sort_by_length(v: &GoVal, ty: Ty, len: fn(&GoVal) -> usize) -> GoVal {
    let GoVal::Slice(s) = v else {
        unreachable!("bound to a slice")
    };
    s.rewrite(|items| sort(items, &|a, b| len(a) < len(b)));
    GoVal::Slice(Slice { ty, ..s.clone() })
}

/// Go's `unicode.ToUpper`: simple (one-character) case mapping, Unicode 13.
fn upper(c: char) -> char {
    let special = match c as u32 {
        0x1F80..=0x1F87 | 0x1F90..=0x1F97 | 0x1FA0..=0x1FA7 => Some(c as u32 + 8),
        0x1FB3 | 0x1FC3 | 0x1FF3 => Some(c as u32 + 9),
        0x19B
        | 0x264
        | 0x1C8A
        | 0x2C5F
        | 0xA7C1
        | 0xA7CD
        | 0xA7CF
        | 0xA7D1
        | 0xA7D3
        | 0xA7D5
        | 0xA7D7
        | 0xA7D9
        | 0xA7DB
        | 0x10597..=0x105BC
        | 0x10D70..=0x10D85
        | 0x16EBB..=0x16ED3 => Some(c as u32),
        _ => None,
    };
    if let Some(u) = special.and_then(char::from_u32) {
        return u;
    }
    single(c.to_uppercase(), c)
}

/// Go's `unicode.ToLower`: simple case mapping, Unicode 13.
fn lower(c: char) -> char {
    match c as u32 {
        0x130 => return 'i',
        0x1C89
        | 0x2C2F
        | 0xA7C0
        | 0xA7CB..=0xA7CC
        | 0xA7CE
        | 0xA7D0
        | 0xA7D2
        | 0xA7D4
        | 0xA7D6
        | 0xA7D8
        | 0xA7DA
        | 0xA7DC
        | 0x10570..=0x10595
        | 0x10D50..=0x10D65
        | 0x16EA0..=0x16EB8 => return c,
        _ => {}
    }
    single(c.to_lowercase(), c)
}

/// The mapping when it is one character; Go keeps the character where Unicode's full
/// mapping has several.
fn single(mut mapped: impl Iterator<Item = char>, c: char) -> char {
    match (mapped.next(), mapped.next()) {
        (Some(m), None) => m,
        _ => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::gotmpl::fmt::sprint;

    fn call(name: &str, args: Vec<GoVal>) -> Result<GoVal> {
        let (_, sig, f) = CONFD.iter().find(|(n, ..)| *n == name).unwrap();
        let args = super::super::exec::bind(name, sig, args)?;
        let ctx = Ctx {
            store: &|| Err("no store".into()),
            iterations: &|_| Ok(()),
            size: &|_| Ok(()),
        };
        f(&ctx, args)
    }

    fn s(x: &str) -> GoVal {
        GoVal::Str(x.into())
    }

    /// The converter and the runtime name the same functions: none a converted template
    /// calls is missing here, none here is one the converter refuses.
    #[test]
    fn every_function_a_conversion_calls_is_defined() {
        use std::collections::BTreeSet;
        let defined: BTreeSet<&str> = CONFD.iter().map(|(name, ..)| *name).collect();
        let converted: BTreeSet<&str> = reconfig_migrate::confd::converted_functions().collect();
        assert_eq!(converted, defined);
    }

    #[test]
    fn string_functions_follow_go() {
        assert_eq!(
            sprint(&[call("split", vec![s("a,b,"), s(",")]).unwrap()]),
            "[a b ]"
        );
        assert_eq!(
            sprint(&[call("toUpper", vec![s("straße ᾳ")]).unwrap()]),
            "STRAßE ᾼ"
        );
        assert_eq!(sprint(&[call("toLower", vec![s("İΣ")]).unwrap()]), "iσ");
        assert_eq!(
            sprint(&[call("replace", vec![s("aaa"), s("a"), s("b"), GoVal::Int(2)]).unwrap()]),
            "bba"
        );
        assert!(call("div", vec![GoVal::Int(1), GoVal::Int(0)]).is_err());
        assert!(call("atoi", vec![s("1_0")]).is_err());
        assert!(call("add", vec![s("1"), GoVal::Int(1)]).is_err());
        assert_eq!(
            sprint(&[call("base64Decode", vec![s("YWI=\n")]).unwrap()]),
            "ab"
        );
        assert!(call("base64Decode", vec![s("YWI")]).is_err());
        assert_eq!(
            sprint(&[call("json", vec![s(r#"{"b":[1,null],"a":"x"}"#)]).unwrap()]),
            "map[a:x b:[1 <nil>]]"
        );
    }

    #[test]
    fn reverse_and_sorts_work_in_place_as_confd_does() {
        let list = GoVal::strings(vec!["ccc".into(), "a".into(), "bb".into()]);
        call("sortByLength", vec![list.clone()]).unwrap();
        assert_eq!(sprint(std::slice::from_ref(&list)), "[a bb ccc]");
        call("reverse", vec![list.clone()]).unwrap();
        assert_eq!(sprint(&[list]), "[ccc bb a]");
        let pairs = GoVal::Slice(Slice::new(
            Ty::KvPairs,
            vec![
                GoVal::Kv("/a".into(), "1".into()),
                GoVal::Kv("/b".into(), "2".into()),
            ],
        ));
        assert_eq!(
            sprint(&[call("reverse", vec![pairs]).unwrap()]),
            "[{/a 1} {/b 2}]"
        );
    }
}
