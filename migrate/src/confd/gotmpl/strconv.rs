//! Go's `strconv` as the template parser uses it: `Unquote` for string and character
//! constants, and `ParseInt`/`ParseUint`/`ParseFloat` (base 0, Go's literal syntax with
//! `0x`/`0o`/`0b` prefixes and `_` separators) for numbers.

use super::ast::Number;

/// Why a constant was refused; the message is Go's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

/// `strconv.Unquote` of a `"…"` or `` `…` `` literal.
pub fn unquote(literal: &str) -> Result<String, Invalid> {
    let bad = || Invalid("invalid syntax".into());
    if let Some(raw) = literal.strip_prefix('`') {
        let raw = raw.strip_suffix('`').ok_or_else(bad)?;
        return Ok(raw.replace('\r', ""));
    }
    let body = literal
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .ok_or_else(bad)?;
    if body.contains('\n') {
        return Err(bad());
    }
    let mut out: Vec<u8> = Vec::with_capacity(body.len());
    let mut rest = body;
    while !rest.is_empty() {
        if rest.starts_with('"') {
            return Err(bad());
        }
        let (piece, tail) = unquote_char(rest, '"')?;
        out.extend_from_slice(&piece);
        rest = tail;
    }
    String::from_utf8(out).map_err(|_| Invalid("a string constant that is not valid UTF-8".into()))
}

/// `strconv.UnquoteChar`: the bytes of the first character or escape of `s`, and the rest.
pub fn unquote_char(s: &str, quote: char) -> Result<(Vec<u8>, &str), Invalid> {
    let bad = || Invalid("invalid syntax".into());
    let mut chars = s.chars();
    let c = chars.next().ok_or_else(bad)?;
    if c == quote && (quote == '\'' || quote == '"') {
        return Err(bad());
    }
    if c != '\\' {
        let mut buf = [0; 4];
        return Ok((c.encode_utf8(&mut buf).as_bytes().to_vec(), chars.as_str()));
    }
    let e = chars.next().ok_or_else(bad)?;
    let simple = match e {
        'a' => Some(7u8),
        'b' => Some(8),
        'f' => Some(12),
        'n' => Some(b'\n'),
        'r' => Some(b'\r'),
        't' => Some(b'\t'),
        'v' => Some(11),
        '\\' => Some(b'\\'),
        '\'' | '"' if e == quote => Some(e as u8),
        _ => None,
    };
    if let Some(b) = simple {
        return Ok((vec![b], chars.as_str()));
    }
    let rest = chars.as_str();
    let hex = |n: usize| -> Result<(u32, &str), Invalid> {
        let digits = rest.get(..n).ok_or_else(bad)?;
        if !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad());
        }
        Ok((
            u32::from_str_radix(digits, 16).map_err(|_| bad())?,
            &rest[n..],
        ))
    };
    match e {
        'x' => {
            let (v, tail) = hex(2)?;
            Ok((vec![v as u8], tail))
        }
        'u' | 'U' => {
            let (v, tail) = hex(if e == 'u' { 4 } else { 8 })?;
            let c = char::from_u32(v).ok_or_else(bad)?;
            let mut buf = [0; 4];
            Ok((c.encode_utf8(&mut buf).as_bytes().to_vec(), tail))
        }
        '0'..='7' => {
            let digits = s.get(1..4).ok_or_else(bad)?;
            if !digits.chars().all(|c| ('0'..='7').contains(&c)) {
                return Err(bad());
            }
            let v = u32::from_str_radix(digits, 8).map_err(|_| bad())?;
            if v > 255 {
                return Err(bad());
            }
            Ok((vec![v as u8], &s[4..]))
        }
        _ => Err(bad()),
    }
}

/// A numeric constant as Go's parser reads it (`parse.newNumber`); `complex` for the
/// lexer's complex items (`1+2i`).
pub fn number(text: &str, char_constant: bool, complex: bool) -> Result<Number, Invalid> {
    let mut n = Number {
        text: text.to_string(),
        ..Number::default()
    };
    if char_constant {
        let inner = &text[1..];
        let (bytes, tail) = unquote_char(inner, '\'')?;
        if tail != "'" {
            return Err(Invalid(format!("malformed character constant: {text}")));
        }
        let c = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|s| s.chars().next())
            .map_or(u32::from(bytes[0]), |c| c as u32);
        n.int = i64::from(c);
        n.uint = u64::from(c);
        n.float = f64::from(c);
        n.is_int = true;
        n.is_uint = true;
        n.is_float = true;
        return Ok(n);
    }
    if complex || text.ends_with('i') {
        n.is_complex = true;
        return Ok(n);
    }
    let u = parse_uint(text);
    if let Some(u) = u {
        n.is_uint = true;
        n.uint = u;
    }
    if let Some(i) = parse_int(text) {
        n.is_int = true;
        n.int = i;
        if i == 0 {
            n.is_uint = true;
            n.uint = u.unwrap_or(0);
        }
    }
    if n.is_int {
        n.is_float = true;
        n.float = n.int as f64;
    } else if n.is_uint {
        n.is_float = true;
        n.float = n.uint as f64;
    } else if let Some(f) = parse_float(text) {
        if !text.contains(['.', 'e', 'E', 'p', 'P']) {
            return Err(Invalid(format!("integer overflow: {text:?}")));
        }
        n.is_float = true;
        n.float = f;
        const TWO63: f64 = 9_223_372_036_854_775_808.0;
        if (-TWO63..TWO63).contains(&f) && (f as i64) as f64 == f {
            n.is_int = true;
            n.int = f as i64;
        }
        if (0.0..TWO63 * 2.0).contains(&f) && (f as u64) as f64 == f {
            n.is_uint = true;
            n.uint = f as u64;
        }
    }
    if !n.is_int && !n.is_uint && !n.is_float {
        return Err(Invalid(format!("illegal number syntax: {text:?}")));
    }
    Ok(n)
}

/// Go's `underscoreOK`: `_` only between digits, or after a base prefix.
fn underscore_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let mut saw = b'^';
    let b = if matches!(b.first(), Some(b'+' | b'-')) {
        &b[1..]
    } else {
        b
    };
    let mut hex = false;
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1] | 0x20, b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = b[1] | 0x20 == b'x';
    }
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() || hex && (c | 0x20).is_ascii_hexdigit() {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
        i += 1;
    }
    saw != b'_'
}

/// `strconv.ParseUint(s, 0, 64)`.
pub fn parse_uint(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let (base, digits) = match s.as_bytes() {
        [b'0', x, ..] if x | 0x20 == b'x' => (16, &s[2..]),
        [b'0', x, ..] if x | 0x20 == b'o' => (8, &s[2..]),
        [b'0', x, ..] if x | 0x20 == b'b' => (2, &s[2..]),
        [b'0', _, ..] => (8, &s[1..]),
        _ => (10, s),
    };
    if digits.contains('_') && !underscore_ok(s) {
        return None;
    }
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    if clean.is_empty() || !clean.chars().all(|c| c.is_digit(base)) {
        return None;
    }
    u64::from_str_radix(&clean, base).ok()
}

/// `strconv.ParseInt(s, 0, 64)`.
pub fn parse_int(s: &str) -> Option<i64> {
    let (negative, body) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let u = parse_uint(body)?;
    if negative {
        if u > 1 << 63 {
            return None;
        }
        Some((u as i64).wrapping_neg())
    } else {
        i64::try_from(u).ok()
    }
}

/// `strconv.ParseFloat(s, 64)`: `None` for bad syntax and for values out of range.
pub fn parse_float(s: &str) -> Option<f64> {
    if s.contains('_') && !underscore_ok(s) {
        return None;
    }
    let clean: String = s.chars().filter(|&c| c != '_').collect();
    let (negative, body) = match clean.as_bytes().first() {
        Some(b'+') => (false, &clean[1..]),
        Some(b'-') => (true, &clean[1..]),
        _ => (false, clean.as_str()),
    };
    let value = if body.len() > 2 && body[..2].eq_ignore_ascii_case("0x") {
        hex_float(&body[2..])?
    } else {
        if !body
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
        {
            return None;
        }
        body.parse::<f64>().ok()?
    };
    if !value.is_finite() {
        return None;
    }
    Some(if negative { -value } else { value })
}

/// A hexadecimal float's digits after `0x`: mantissa, optional fraction, `p` exponent.
fn hex_float(s: &str) -> Option<f64> {
    let (mantissa, exp) = s.split_once(['p', 'P'])?;
    let exp: i32 = exp.parse().ok()?;
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let digits = format!("{int}{frac}");
    if digits.len() > 30 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let m = u128::from_str_radix(&digits, 16).ok()?;
    let shift = exp.checked_sub(4 * i32::try_from(frac.len()).ok()?)?;
    Some(m as f64 * 2f64.powi(shift))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unquote_follows_go() {
        assert_eq!(unquote(r#""a\tb\u00e9\x41\101""#).unwrap(), "a\tbéAA");
        assert_eq!(unquote("`a\r\\n`").unwrap(), "a\\n");
        assert!(unquote(r#""\'""#).is_err());
        assert!(unquote(r#""\q""#).is_err());
    }

    #[test]
    fn numbers_follow_go() {
        let n = number("1_000", false, false).unwrap();
        assert!(n.is_int && n.int == 1000);
        let n = number("3.0", false, false).unwrap();
        assert!(n.is_int && n.is_float && n.int == 3);
        let n = number("0x1p-2", false, false).unwrap();
        assert!(n.is_float && !n.is_int && n.float == 0.25);
        assert!(number("99999999999999999999", false, false).is_err());
        let n = number("'a'", true, false).unwrap();
        assert_eq!(n.int, 97);
        assert!(number("08", false, false).is_err());
        let n = number("0o17", false, false).unwrap();
        assert_eq!(n.int, 15);
        let n = number("9223372036854775808", false, false).unwrap();
        assert!(n.is_uint && !n.is_int);
    }
}
