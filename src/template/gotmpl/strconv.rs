//! Go's `strconv` formatting as `fmt` uses it: floats in the `e`, `f`, `g`, `b` and `x`
//! formats (shortest or with a precision, rounded as Go rounds: correctly, ties to even),
//! and quoting (`Quote`, `QuoteToASCII`, `QuoteRune`, `CanBackquote`, `IsPrint`).

use unicode_general_category::{get_general_category, GeneralCategory as G};

/// Decimal digits of a float's magnitude: `0.d1d2…dn × 10^dp`, without trailing zeros.
struct Digits {
    d: Vec<u8>,
    dp: i32,
}

/// The shortest digits that read back as `v` (`prec` < 0), or `prec` significant ones.
fn digits(v: f64, significant: Option<usize>) -> Digits {
    let v = v.abs();
    if v == 0.0 {
        return Digits { d: vec![], dp: 0 };
    }
    let s = match significant {
        None => format!("{v:e}"),
        Some(n) => format!("{:.*e}", n.max(1) - 1, v),
    };
    let (mantissa, exp) = s.split_once('e').expect("Rust's {:e} has an exponent");
    let exp: i32 = exp.parse().expect("an integer exponent");
    let mut d: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    while d.last() == Some(&b'0') {
        d.pop();
    }
    Digits { d, dp: exp + 1 }
}

fn digit(d: &Digits, i: i32) -> u8 {
    if i < 0 {
        return b'0';
    }
    d.d.get(i as usize).copied().unwrap_or(b'0')
}

/// `%e`: `d.ddde±dd` with `prec` digits after the point.
fn fmt_e(out: &mut String, d: &Digits, prec: usize, upper: bool) {
    out.push(char::from(if d.d.is_empty() { b'0' } else { d.d[0] }));
    if prec > 0 {
        out.push('.');
        for i in 1..=prec {
            out.push(char::from(digit(d, i as i32)));
        }
    }
    out.push(if upper { 'E' } else { 'e' });
    let exp = if d.d.is_empty() { 0 } else { d.dp - 1 };
    out.push(if exp < 0 { '-' } else { '+' });
    let exp = exp.unsigned_abs();
    if exp < 10 {
        out.push('0');
    }
    out.push_str(&exp.to_string());
}

/// `%f`: the digits with `prec` after the point.
fn fmt_f(out: &mut String, d: &Digits, prec: usize) {
    if d.dp > 0 {
        for i in 0..d.dp {
            out.push(char::from(digit(d, i)));
        }
    } else {
        out.push('0');
    }
    if prec > 0 {
        out.push('.');
        for i in 1..=prec as i32 {
            out.push(char::from(digit(d, d.dp + i - 1)));
        }
    }
}

/// `strconv.FormatFloat(v, fmt, prec, 64)`; `prec` < 0 is the shortest form.
pub fn format_float(v: f64, fmt: char, prec: i64) -> String {
    let mut out = String::new();
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if v.is_sign_negative() {
        out.push('-');
    }
    match fmt {
        'b' => {
            let (mant, exp) = decompose(v);
            out.push_str(&mant.to_string());
            out.push('p');
            let exp = exp - 52;
            if exp >= 0 {
                out.push('+');
            }
            out.push_str(&exp.to_string());
        }
        'x' | 'X' => fmt_x(&mut out, v, prec, fmt),
        'f' => {
            if prec < 0 {
                let d = digits(v, None);
                let p = (d.d.len() as i32 - d.dp).max(0) as usize;
                fmt_f(&mut out, &d, p);
            } else {
                out.push_str(&format!("{:.*}", prec as usize, v.abs()));
            }
        }
        'e' | 'E' => {
            let upper = fmt == 'E';
            if prec < 0 {
                let d = digits(v, None);
                fmt_e(&mut out, &d, d.d.len().saturating_sub(1), upper);
            } else {
                let d = digits(v, Some(prec as usize + 1));
                fmt_e(&mut out, &d, prec as usize, upper);
            }
        }
        _ => {
            // 'g' / 'G'
            let upper = fmt == 'G';
            let shortest = prec < 0;
            let d = if shortest {
                digits(v, None)
            } else {
                digits(v, Some((prec as usize).max(1)))
            };
            let nd = d.d.len() as i64;
            let dp = i64::from(d.dp);
            let mut prec = if shortest { nd } else { prec.max(1) };
            let mut eprec = prec;
            if eprec > nd && nd >= dp {
                eprec = nd;
            }
            if shortest {
                eprec = 6;
            }
            let exp = dp - 1;
            if exp < -4 || exp >= eprec {
                if prec > nd {
                    prec = nd;
                }
                fmt_e(&mut out, &d, (prec - 1).max(0) as usize, upper);
            } else {
                if prec > dp {
                    prec = nd;
                }
                fmt_f(&mut out, &d, (prec - dp).max(0) as usize);
            }
        }
    }
    out
}

/// Mantissa (with the implicit bit) and unbiased exponent, as `strconv` splits a float.
fn decompose(v: f64) -> (u64, i64) {
    let bits = v.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i64;
    let mant = bits & ((1 << 52) - 1);
    if exp == 0 {
        (mant, 1 - 1023)
    } else {
        (mant | 1 << 52, exp - 1023)
    }
}

/// `%x` of a float: `0x1.8p+01` (Go's `fmtX`).
fn fmt_x(out: &mut String, v: f64, prec: i64, fmt: char) {
    let (mut mant, mut exp) = decompose(v);
    if mant == 0 {
        exp = 0;
    }
    mant <<= 60 - 52;
    while mant != 0 && mant & (1 << 60) == 0 {
        mant <<= 1;
        exp -= 1;
    }
    if (0..15).contains(&prec) {
        let shift = (prec * 4) as u32;
        let extra = (mant << shift) & ((1 << 60) - 1);
        mant >>= 60 - shift;
        if extra | (mant & 1) > 1 << 59 {
            mant += 1;
        }
        mant <<= 60 - shift;
        if mant & (1 << 61) != 0 {
            mant >>= 1;
            exp += 1;
        }
    }
    let hex: &[u8] = if fmt == 'X' {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    out.push('0');
    out.push(fmt);
    out.push(char::from(b'0' + ((mant >> 60) & 1) as u8));
    mant <<= 4;
    if prec < 0 && mant != 0 {
        out.push('.');
        while mant != 0 {
            out.push(char::from(hex[((mant >> 60) & 15) as usize]));
            mant <<= 4;
        }
    } else if prec > 0 {
        out.push('.');
        for _ in 0..prec {
            out.push(char::from(hex[((mant >> 60) & 15) as usize]));
            mant <<= 4;
        }
    }
    out.push(if fmt == 'X' { 'P' } else { 'p' });
    out.push(if exp < 0 { '-' } else { '+' });
    let exp = exp.unsigned_abs();
    if exp < 10 {
        out.push('0');
    }
    out.push_str(&exp.to_string());
}

/// Go's `strconv.IsPrint`: letters, marks, numbers, punctuation, symbols and the ASCII
/// space.
pub fn is_print(r: char) -> bool {
    if r == ' ' {
        return true;
    }
    !matches!(
        get_general_category(r),
        G::Control
            | G::Format
            | G::Surrogate
            | G::PrivateUse
            | G::Unassigned
            | G::SpaceSeparator
            | G::LineSeparator
            | G::ParagraphSeparator
    )
}

/// Go's `strconv.Quote` (`ascii`: `QuoteToASCII`), with `quote` as the quote character
/// (`'` for `QuoteRune`).
pub fn quote_with(s: &str, quote: char, ascii: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for r in s.chars() {
        if r == quote || r == '\\' {
            out.push('\\');
            out.push(r);
            continue;
        }
        if ascii {
            if r.is_ascii() && is_print(r) {
                out.push(r);
                continue;
            }
        } else if is_print(r) {
            out.push(r);
            continue;
        }
        match r {
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            r if (r as u32) < 0x20 || r == '\x7f' => {
                out.push_str(&format!("\\x{:02x}", r as u32));
            }
            r if (r as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", r as u32)),
            r => out.push_str(&format!("\\U{:08x}", r as u32)),
        }
    }
    out.push(quote);
    out
}

/// Go's `strconv.CanBackquote`: no control characters but tab, no backquote, no BOM.
pub fn can_backquote(s: &str) -> bool {
    s.chars()
        .all(|c| c != '`' && c != '\u{feff}' && (c == '\t' || !(c < ' ' || c == '\x7f')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_format_as_go() {
        for (v, f, p, want) in [
            (1.0, 'g', -1, "1"),
            (1e6, 'g', -1, "1e+06"),
            (123456.0, 'g', -1, "123456"),
            (0.0001, 'g', -1, "0.0001"),
            (0.00001, 'g', -1, "1e-05"),
            (1e21, 'g', -1, "1e+21"),
            (3.14259, 'g', 3, "3.14"),
            (100.0, 'g', 2, "1e+02"),
            (2.5, 'f', 0, "2"),
            (1.005, 'f', 2, "1.00"),
            (-0.0, 'g', -1, "-0"),
            (1234.5678, 'e', 2, "1.23e+03"),
            (0.0, 'e', 6, "0.000000e+00"),
            (1.0, 'b', -1, "4503599627370496p-52"),
            (3.0, 'x', -1, "0x1.8p+01"),
            (1.0, 'x', 2, "0x1.00p+00"),
            (0.1, 'f', -1, "0.1"),
        ] {
            assert_eq!(format_float(v, f, p), want, "{v} {f} {p}");
        }
    }

    #[test]
    fn quoting_follows_go() {
        assert_eq!(
            quote_with("a\"\n\u{1}é\u{a0}", '"', false),
            "\"a\\\"\\n\\x01é\\u00a0\""
        );
        assert_eq!(quote_with("é", '"', true), "\"\\u00e9\"");
        assert!(can_backquote("a\tb") && !can_backquote("a`b"));
    }
}
