//! Go's `fmt` for the values confd templates hold: `Sprint`, `Sprintln`, `Sprintf` with
//! every verb, flag, width, precision and argument index, and Go's in-band errors
//! (`%!d(string=x)`, `%!v(MISSING)`, `%!(EXTRA int=1)`). An action prints its value as
//! `Sprint` would (`{{.}}` of a slice is `[a b]`, of a map `map[a:1]`, of a `KVPair`
//! `{/k v}`).

use super::strconv::{can_backquote, format_float, is_print, quote_with};
use super::value::{GoVal, Ty};

#[derive(Default, Clone)]
struct Flags {
    plus: bool,
    minus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    plus_v: bool,
    sharp_v: bool,
    wid: Option<usize>,
    prec: Option<usize>,
}

#[derive(Default)]
struct Printer {
    buf: String,
    f: Flags,
}

const TOO_LARGE: usize = 1_000_000;

/// `fmt.Sprint(args...)`: spaces between operands when neither is a string.
pub fn sprint(args: &[GoVal]) -> String {
    let mut p = Printer::default();
    let mut prev_string = false;
    for (i, arg) in args.iter().enumerate() {
        let is_string = matches!(arg, GoVal::Str(_));
        if i > 0 && !is_string && !prev_string {
            p.buf.push(' ');
        }
        p.print_arg(arg, 'v');
        prev_string = is_string;
    }
    p.buf
}

/// `fmt.Sprintln(args...)`.
pub fn sprintln(args: &[GoVal]) -> String {
    let mut p = Printer::default();
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            p.buf.push(' ');
        }
        p.print_arg(arg, 'v');
    }
    p.buf.push('\n');
    p.buf
}

/// How an action prints a value (text/template's `printValue`).
pub fn action(v: &GoVal) -> String {
    match v {
        GoVal::Invalid | GoVal::NilIface => "<no value>".into(),
        GoVal::Str(s) => s.clone(),
        other => sprint(std::slice::from_ref(other)),
    }
}

/// `fmt.Sprintf(format, args...)`.
pub fn sprintf(format: &str, args: &[GoVal]) -> String {
    let mut p = Printer::default();
    let b = format.as_bytes();
    let end = b.len();
    let mut arg_num = 0;
    let mut after_index;
    let mut reordered = false;
    let mut i = 0;
    while i < end {
        let mut good_arg_num = true;
        let last = i;
        while i < end && b[i] != b'%' {
            i += 1;
        }
        if i > last {
            p.buf.push_str(&format[last..i]);
        }
        if i >= end {
            break;
        }
        i += 1;
        p.f = Flags::default();
        let mut simple = false;
        while i < end {
            let c = b[i];
            match c {
                b'#' => p.f.sharp = true,
                b'0' => p.f.zero = !p.f.minus,
                b'+' => p.f.plus = true,
                b'-' => {
                    p.f.minus = true;
                    p.f.zero = false;
                }
                b' ' => p.f.space = true,
                _ => {
                    if c.is_ascii_lowercase() && arg_num < args.len() {
                        if c == b'v' {
                            p.f.sharp_v = p.f.sharp;
                            p.f.sharp = false;
                            p.f.plus_v = p.f.plus;
                            p.f.plus = false;
                        }
                        p.print_arg(&args[arg_num], char::from(c));
                        arg_num += 1;
                        i += 1;
                        simple = true;
                    }
                    break;
                }
            }
            i += 1;
        }
        if simple {
            continue;
        }
        let (n, ni, found) = arg_number(arg_num, format, i, args.len(), &mut good_arg_num);
        reordered |= found || (i < end && b[i] == b'[');
        (arg_num, i, after_index) = (n, ni, found);
        if i < end && b[i] == b'*' {
            i += 1;
            let (w, ok, n) = int_from_arg(args, arg_num);
            arg_num = n;
            p.f.wid = if ok {
                Some(w.unsigned_abs() as usize)
            } else {
                None
            };
            if !ok {
                p.buf.push_str("%!(BADWIDTH)");
            }
            if ok && w < 0 {
                p.f.minus = true;
                p.f.zero = false;
            }
            after_index = false;
        } else {
            let (w, present, ni) = parsenum(b, i, end);
            i = ni;
            p.f.wid = present.then_some(w);
            if after_index && present {
                good_arg_num = false;
            }
        }
        if i + 1 < end && b[i] == b'.' {
            i += 1;
            if after_index {
                good_arg_num = false;
            }
            let (n, ni, found) = arg_number(arg_num, format, i, args.len(), &mut good_arg_num);
            reordered |= found || (i < end && b[i] == b'[');
            (arg_num, i, after_index) = (n, ni, found);
            if i < end && b[i] == b'*' {
                i += 1;
                let (pr, ok, n) = int_from_arg(args, arg_num);
                arg_num = n;
                p.f.prec = (ok && pr >= 0).then_some(pr as usize);
                if !ok || pr < 0 {
                    if pr < 0 {
                        p.f.prec = None;
                    }
                    if p.f.prec.is_none() && !(ok && pr < 0) {
                        p.buf.push_str("%!(BADPREC)");
                    }
                }
                after_index = false;
            } else {
                let (pr, present, ni) = parsenum(b, i, end);
                i = ni;
                p.f.prec = Some(if present { pr } else { 0 });
            }
        }
        if !after_index {
            let (n, ni, found) = arg_number(arg_num, format, i, args.len(), &mut good_arg_num);
            reordered |= found || (i < end && b[i] == b'[');
            (arg_num, i, _) = (n, ni, found);
        }
        if i >= end {
            p.buf.push_str("%!(NOVERB)");
            break;
        }
        let verb = format[i..].chars().next().expect("i < end");
        i += verb.len_utf8();
        if verb == '%' {
            p.buf.push('%');
        } else if !good_arg_num {
            p.buf.push_str(&format!("%!{verb}(BADINDEX)"));
        } else if arg_num >= args.len() {
            p.buf.push_str(&format!("%!{verb}(MISSING)"));
        } else {
            if verb == 'v' {
                p.f.sharp_v = p.f.sharp;
                p.f.sharp = false;
                p.f.plus_v = p.f.plus;
                p.f.plus = false;
            }
            p.print_arg(&args[arg_num], verb);
            arg_num += 1;
        }
    }
    if !reordered && arg_num < args.len() {
        p.f = Flags::default();
        p.buf.push_str("%!(EXTRA ");
        for (k, arg) in args[arg_num..].iter().enumerate() {
            if k > 0 {
                p.buf.push_str(", ");
            }
            match arg.ty() {
                None => p.buf.push_str("<nil>"),
                Some(ty) => {
                    p.buf.push_str(&ty.name());
                    p.buf.push('=');
                    p.print_arg(arg, 'v');
                }
            }
        }
        p.buf.push(')');
    }
    p.buf
}

fn parsenum(b: &[u8], start: usize, end: usize) -> (usize, bool, usize) {
    if start >= end {
        return (0, false, end);
    }
    let mut num = 0usize;
    let mut present = false;
    let mut i = start;
    while i < end && b[i].is_ascii_digit() {
        if num > TOO_LARGE {
            return (0, false, end);
        }
        num = num * 10 + usize::from(b[i] - b'0');
        present = true;
        i += 1;
    }
    (num, present, i)
}

/// An explicit argument index `[n]` at `i`: the new argument number, position, and whether
/// one was read.
fn arg_number(
    arg_num: usize,
    format: &str,
    i: usize,
    num_args: usize,
    good: &mut bool,
) -> (usize, usize, bool) {
    let b = format.as_bytes();
    if b.len() <= i || b[i] != b'[' {
        return (arg_num, i, false);
    }
    let rest = &b[i..];
    let (index, wid, ok) = parse_arg_number(rest);
    if ok && index >= 0 && (index as usize) < num_args {
        return (index as usize, i + wid, true);
    }
    *good = false;
    (arg_num, i + wid, ok)
}

fn parse_arg_number(b: &[u8]) -> (i64, usize, bool) {
    if b.len() < 3 {
        return (0, 1, false);
    }
    for i in 1..b.len() {
        if b[i] == b']' {
            let (w, ok, ni) = parsenum(b, 1, i);
            if !ok || ni != i {
                return (0, i + 1, false);
            }
            return (w as i64 - 1, i + 1, true);
        }
    }
    (0, 1, false)
}

fn int_from_arg(args: &[GoVal], arg_num: usize) -> (i64, bool, usize) {
    if arg_num >= args.len() {
        return (0, false, arg_num);
    }
    let (num, ok) = match &args[arg_num] {
        GoVal::Int(i) => (*i, true),
        GoVal::Uint8(u) => (i64::from(*u), true),
        _ => (0, false),
    };
    if num.unsigned_abs() > TOO_LARGE as u64 {
        return (0, false, arg_num + 1);
    }
    (num, ok, arg_num + 1)
}

impl Printer {
    fn write_padding(&mut self, n: usize) {
        let c = if self.f.zero { '0' } else { ' ' };
        self.buf.extend(std::iter::repeat_n(c, n));
    }

    fn pad(&mut self, s: &str) {
        let Some(wid) = self.f.wid.filter(|w| *w > 0) else {
            self.buf.push_str(s);
            return;
        };
        let width = wid.saturating_sub(s.chars().count());
        if self.f.minus {
            self.buf.push_str(s);
            self.write_padding(width);
        } else {
            self.write_padding(width);
            self.buf.push_str(s);
        }
    }

    /// A top-level argument: an interface value (no value and nil are `nil`).
    fn print_arg(&mut self, arg: &GoVal, verb: char) {
        if matches!(arg, GoVal::Invalid | GoVal::NilIface) {
            match verb {
                'T' | 'v' => self.pad("<nil>"),
                _ => self.bad_verb(verb, None),
            }
            return;
        }
        if verb == 'T' {
            let name = arg.ty().map(|t| t.name()).unwrap_or_default();
            self.fmt_s(&name);
            return;
        }
        if verb == 'p' {
            self.bad_verb(verb, Some(arg));
            return;
        }
        self.print_value(arg, verb);
    }

    fn bad_verb(&mut self, verb: char, v: Option<&GoVal>) {
        self.buf.push_str("%!");
        self.buf.push(verb);
        self.buf.push('(');
        match v.and_then(|v| v.ty().map(|t| (v, t))) {
            Some((v, ty)) => {
                self.buf.push_str(&ty.name());
                self.buf.push('=');
                self.print_value(v, 'v');
            }
            None => self.buf.push_str("<nil>"),
        }
        self.buf.push(')');
    }

    fn print_value(&mut self, v: &GoVal, verb: char) {
        match v {
            GoVal::Invalid | GoVal::NilIface | GoVal::Untyped(_) => {
                if self.f.sharp_v {
                    self.buf.push_str("interface {}(nil)");
                } else {
                    self.buf.push_str("<nil>");
                }
            }
            GoVal::Bool(b) => match verb {
                't' | 'v' => self.pad(if *b { "true" } else { "false" }),
                _ => self.bad_verb(verb, Some(v)),
            },
            GoVal::Int(i) => self.fmt_integer(*i as u64, true, verb, v),
            GoVal::Uint8(u) => self.fmt_integer(u64::from(*u), false, verb, v),
            GoVal::Float(x) => match verb {
                'v' => self.fmt_float(*x, 'g', -1),
                'b' | 'g' | 'G' | 'x' | 'X' => self.fmt_float(*x, verb, -1),
                'f' | 'e' | 'E' => self.fmt_float(*x, verb, 6),
                'F' => self.fmt_float(*x, 'f', 6),
                _ => self.bad_verb(verb, Some(v)),
            },
            GoVal::Str(s) => match verb {
                'v' if self.f.sharp_v => self.fmt_q(s),
                'v' | 's' => self.fmt_s(s),
                'x' => self.fmt_sx(s, false),
                'X' => self.fmt_sx(s, true),
                'q' => self.fmt_q(s),
                _ => self.bad_verb(verb, Some(v)),
            },
            GoVal::Kv(k, val) => {
                if self.f.sharp_v {
                    self.buf.push_str("memkv.KVPair");
                }
                self.buf.push('{');
                for (i, (name, field)) in [("Key", k), ("Value", val)].into_iter().enumerate() {
                    if i > 0 {
                        self.buf.push_str(if self.f.sharp_v { ", " } else { " " });
                    }
                    if self.f.plus_v || self.f.sharp_v {
                        self.buf.push_str(name);
                        self.buf.push(':');
                    }
                    self.print_value(&GoVal::Str(field.clone()), verb);
                }
                self.buf.push('}');
            }
            GoVal::Slice(s) => {
                if self.f.sharp_v {
                    self.buf.push_str(&s.ty.name());
                    if s.data.is_none() {
                        self.buf.push_str("(nil)");
                        return;
                    }
                    self.buf.push('{');
                    for (i, item) in s.items().iter().enumerate() {
                        if i > 0 {
                            self.buf.push_str(", ");
                        }
                        self.print_value(item, verb);
                    }
                    self.buf.push('}');
                } else {
                    self.buf.push('[');
                    for (i, item) in s.items().iter().enumerate() {
                        if i > 0 {
                            self.buf.push(' ');
                        }
                        self.print_value(item, verb);
                    }
                    self.buf.push(']');
                }
            }
            GoVal::Map(m) => {
                if self.f.sharp_v {
                    self.buf.push_str(&Ty::Map(Box::new(m.elem.clone())).name());
                    if m.entries.is_none() {
                        self.buf.push_str("(nil)");
                        return;
                    }
                    self.buf.push('{');
                } else {
                    self.buf.push_str("map[");
                }
                if let Some(entries) = &m.entries {
                    for (i, (k, val)) in entries.iter().enumerate() {
                        if i > 0 {
                            self.buf.push_str(if self.f.sharp_v { ", " } else { " " });
                        }
                        self.print_value(&GoVal::Str(k.clone()), verb);
                        self.buf.push(':');
                        self.print_value(val, verb);
                    }
                }
                self.buf.push(if self.f.sharp_v { '}' } else { ']' });
            }
        }
    }

    fn fmt_integer(&mut self, u: u64, signed: bool, verb: char, v: &GoVal) {
        match verb {
            'v' if self.f.sharp_v && !signed => self.fmt_0x64(u),
            'v' | 'd' => self.integer(u, 10, signed, verb, false),
            'b' => self.integer(u, 2, signed, verb, false),
            'o' | 'O' => self.integer(u, 8, signed, verb, false),
            'x' => self.integer(u, 16, signed, verb, false),
            'X' => self.integer(u, 16, signed, verb, true),
            'c' => self.pad(&rune_of(u).to_string()),
            'q' => {
                let q = quote_with(&rune_of(u).to_string(), '\'', self.f.plus);
                self.pad(&q);
            }
            'U' => self.fmt_unicode(u),
            _ => self.bad_verb(verb, Some(v)),
        }
    }

    fn fmt_0x64(&mut self, u: u64) {
        let sharp = self.f.sharp;
        self.f.sharp = true;
        self.integer(u, 16, false, 'v', false);
        self.f.sharp = sharp;
    }

    fn integer(&mut self, u: u64, base: u64, signed: bool, verb: char, upper: bool) {
        let negative = signed && (u as i64) < 0;
        let mut u = if negative {
            (u as i64).unsigned_abs()
        } else {
            u
        };
        let mut prec = 0;
        if let Some(p) = self.f.prec {
            prec = p;
            if p == 0 && u == 0 {
                let zero = self.f.zero;
                self.f.zero = false;
                self.write_padding(self.f.wid.unwrap_or(0));
                self.f.zero = zero;
                return;
            }
        } else if let (true, Some(w)) = (self.f.zero, self.f.wid) {
            prec = w;
            if negative || self.f.plus || self.f.space {
                prec = prec.saturating_sub(1);
            }
        }
        let digits: &[u8] = if upper {
            b"0123456789ABCDEFX"
        } else {
            b"0123456789abcdefx"
        };
        let mut buf: Vec<u8> = vec![];
        loop {
            buf.push(digits[(u % base) as usize]);
            u /= base;
            if u == 0 {
                break;
            }
        }
        while buf.len() < prec {
            buf.push(b'0');
        }
        if self.f.sharp {
            match base {
                2 => buf.extend_from_slice(b"b0"),
                8 if buf.last() != Some(&b'0') => buf.push(b'0'),
                16 => {
                    buf.push(digits[16]);
                    buf.push(b'0');
                }
                _ => {}
            }
        }
        if verb == 'O' {
            buf.extend_from_slice(b"o0");
        }
        if negative {
            buf.push(b'-');
        } else if self.f.plus {
            buf.push(b'+');
        } else if self.f.space {
            buf.push(b' ');
        }
        buf.reverse();
        let zero = self.f.zero;
        self.f.zero = false;
        self.pad(std::str::from_utf8(&buf).expect("ASCII digits"));
        self.f.zero = zero;
    }

    fn fmt_unicode(&mut self, u: u64) {
        let mut prec = 4;
        if let Some(p) = self.f.prec.filter(|p| *p > 4) {
            prec = p;
        }
        let mut s = format!("U+{u:0prec$X}");
        if self.f.sharp {
            if let Some(c) = char::from_u32(u as u32).filter(|c| u <= 0x10FFFF && is_print(*c)) {
                s.push_str(&format!(" '{c}'"));
            }
        }
        let zero = self.f.zero;
        self.f.zero = false;
        self.pad(&s);
        self.f.zero = zero;
    }

    fn truncate<'s>(&self, s: &'s str) -> &'s str {
        match self.f.prec {
            Some(n) => match s.char_indices().nth(n) {
                Some((i, _)) => &s[..i],
                None => s,
            },
            None => s,
        }
    }

    fn fmt_s(&mut self, s: &str) {
        let s = self.truncate(s).to_string();
        self.pad(&s);
    }

    fn fmt_q(&mut self, s: &str) {
        let s = self.truncate(s).to_string();
        if self.f.sharp && can_backquote(&s) {
            self.pad(&format!("`{s}`"));
            return;
        }
        let q = quote_with(&s, '"', self.f.plus);
        self.pad(&q);
    }

    fn fmt_sx(&mut self, s: &str, upper: bool) {
        let digits: &[u8] = if upper {
            b"0123456789ABCDEFX"
        } else {
            b"0123456789abcdefx"
        };
        let b = s.as_bytes();
        let length = self.f.prec.map_or(b.len(), |p| p.min(b.len()));
        let mut width = 2 * length;
        if width > 0 {
            if self.f.space {
                if self.f.sharp {
                    width *= 2;
                }
                width += length - 1;
            } else if self.f.sharp {
                width += 2;
            }
        } else {
            if let Some(w) = self.f.wid {
                self.write_padding(w);
            }
            return;
        }
        let wid = self.f.wid.unwrap_or(0);
        if wid > width && !self.f.minus {
            self.write_padding(wid - width);
        }
        let mut out = String::new();
        if self.f.sharp {
            out.push('0');
            out.push(char::from(digits[16]));
        }
        for (i, c) in b[..length].iter().enumerate() {
            if self.f.space && i > 0 {
                out.push(' ');
                if self.f.sharp {
                    out.push('0');
                    out.push(char::from(digits[16]));
                }
            }
            out.push(char::from(digits[usize::from(c >> 4)]));
            out.push(char::from(digits[usize::from(c & 0xF)]));
        }
        self.buf.push_str(&out);
        if wid > width && self.f.minus {
            self.write_padding(wid - width);
        }
    }

    fn fmt_float(&mut self, v: f64, verb: char, default_prec: i64) {
        let prec = self.f.prec.map_or(default_prec, |p| p as i64);
        let mut num = format_float(v, verb, prec);
        if !num.starts_with(['-', '+']) {
            num.insert(0, '+');
        }
        if self.f.space && num.starts_with('+') && !self.f.plus {
            num.replace_range(..1, " ");
        }
        if num[1..].starts_with(['I', 'N']) {
            let zero = self.f.zero;
            self.f.zero = false;
            if num[1..].starts_with('N') && !self.f.space && !self.f.plus {
                num.remove(0);
            }
            self.pad(&num);
            self.f.zero = zero;
            return;
        }
        if self.f.sharp && verb != 'b' {
            let mut digits: i64 = match verb {
                'v' | 'g' | 'G' | 'x' => {
                    if prec == -1 {
                        6
                    } else {
                        prec
                    }
                }
                _ => 0,
            };
            let mut tail = String::new();
            let mut has_point = false;
            let mut saw_nonzero = false;
            let bytes: Vec<char> = num.chars().collect();
            let mut cut = bytes.len();
            for (i, &c) in bytes.iter().enumerate().skip(1) {
                match c {
                    '.' => has_point = true,
                    'p' | 'P' => {
                        tail = bytes[i..].iter().collect();
                        cut = i;
                        break;
                    }
                    'e' | 'E' if verb != 'x' && verb != 'X' => {
                        tail = bytes[i..].iter().collect();
                        cut = i;
                        break;
                    }
                    _ => {
                        if c != '0' {
                            saw_nonzero = true;
                        }
                        if saw_nonzero {
                            digits -= 1;
                        }
                    }
                }
            }
            let mut head: String = bytes[..cut].iter().collect();
            if !has_point {
                if head.len() == 2 && head.ends_with('0') {
                    digits -= 1;
                }
                head.push('.');
            }
            while digits > 0 {
                head.push('0');
                digits -= 1;
            }
            head.push_str(&tail);
            num = head;
        }
        if self.f.plus || !num.starts_with('+') {
            if let (true, Some(w)) = (self.f.zero, self.f.wid) {
                if w > num.len() {
                    let (sign, rest) = num.split_at(1);
                    self.buf.push_str(sign);
                    self.write_padding(w - num.len());
                    self.buf.push_str(rest);
                    return;
                }
            }
            self.pad(&num);
            return;
        }
        self.pad(&num[1..]);
    }
}

/// A rune for `%c`/`%q`: out of range is U+FFFD.
fn rune_of(u: u64) -> char {
    u32::try_from(u)
        .ok()
        .and_then(char::from_u32)
        .unwrap_or('\u{FFFD}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::gotmpl::value::{MapVal, Slice};
    use std::collections::BTreeMap;
    use std::rc::Rc;

    fn s(x: &str) -> GoVal {
        GoVal::Str(x.into())
    }

    #[test]
    fn sprintf_verbs_flags_and_errors() {
        for (format, args, want) in [
            (
                "%5.2f|%-6s|%06d",
                vec![GoVal::Float(3.14259), s("ab"), GoVal::Int(-42)],
                " 3.14|ab    |-00042",
            ),
            ("%d", vec![s("x")], "%!d(string=x)"),
            ("%s %s", vec![s("a")], "a %!s(MISSING)"),
            ("%s", vec![s("a"), GoVal::Int(1)], "a%!(EXTRA int=1)"),
            (
                "%q %x %X %o %#x %b",
                vec![
                    s("é\""),
                    s("hi"),
                    GoVal::Int(255),
                    GoVal::Int(8),
                    GoVal::Int(255),
                    GoVal::Int(5),
                ],
                "\"é\\\"\" 6869 FF 10 0xff 101",
            ),
            ("%[2]s %[1]s", vec![s("a"), s("b")], "b a"),
            (
                "%v %+v %#v",
                vec![GoVal::Kv("/k".into(), "v".into()); 3],
                "{/k v} {Key:/k Value:v} memkv.KVPair{Key:\"/k\", Value:\"v\"}",
            ),
            ("%T %v", vec![GoVal::Invalid, GoVal::Invalid], "<nil> <nil>"),
            ("%c%U", vec![GoVal::Int(233), GoVal::Int(233)], "éU+00E9"),
            (
                "%e %g %.3g %8.3f",
                vec![GoVal::Float(1234.5678); 4],
                "1.234568e+03 1234.5678 1.23e+03 1234.568",
            ),
            ("%!", vec![], "%!!(MISSING)"),
            ("a%", vec![], "a%!(NOVERB)"),
            ("%.2s|%5.1s|", vec![s("héllo"), s("xyz")], "hé|    x|"),
        ] {
            assert_eq!(sprintf(format, &args), want, "{format}");
        }
    }

    #[test]
    fn sprint_spaces_and_containers() {
        let list = GoVal::strings(vec!["a".into(), "b".into()]);
        let map = GoVal::Map(MapVal {
            elem: Ty::Iface,
            entries: Some(Rc::new(BTreeMap::from([
                ("b".to_string(), GoVal::Float(1.0)),
                ("a".to_string(), GoVal::NilIface),
            ]))),
        });
        assert_eq!(
            sprint(&[s("a"), GoVal::Int(1), GoVal::Int(2), s("b")]),
            "a1 2b"
        );
        assert_eq!(
            sprint(&[list.clone(), map.clone()]),
            "[a b] map[a:<nil> b:1]"
        );
        assert_eq!(
            sprintf("%#v", &[map]),
            "map[string]interface {}{\"a\":interface {}(nil), \"b\":1}"
        );
        assert_eq!(sprintf("%q", &[list]), "[\"a\" \"b\"]");
        let nil = GoVal::Slice(Slice::nil(Ty::Slice(Box::new(Ty::Str))));
        assert_eq!(sprintf("%v %#v", &[nil.clone(), nil]), "[] []string(nil)");
        assert_eq!(action(&GoVal::Invalid), "<no value>");
        assert_eq!(sprintln(&[s("a"), s("b")]), "a b\n");
    }
}
