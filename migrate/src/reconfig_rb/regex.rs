//! Ruby regexps (Onigmo) in Rust's regex syntax, for the simple ones: literals, `.`,
//! classes, `\d \w \s \h` (ASCII in Ruby), anchors, groups, alternation and quantifiers.
//! Ruby's `^`/`$` match at every line, so they become `(?m:^)`/`(?m:$)`. Anything whose
//! meaning differs between the engines (back-references, look-around, possessive
//! quantifiers, POSIX classes, `\b`, `\Z`) is refused.

/// The Rust pattern for Ruby's `/source/flags`, and its number of capture groups; or why
/// it cannot be translated.
pub fn translate(source: &str, flags: &str) -> Result<(String, usize), String> {
    let mut out = String::new();
    for flag in flags.chars() {
        match flag {
            'i' => out.push_str("(?i)"),
            'x' => out.push_str("(?x)"),
            'm' => out.push_str("(?s)"),
            other => return Err(format!("the regexp flag `{other}`")),
        }
    }
    let chars: Vec<char> = source.chars().collect();
    let mut groups = 0;
    let mut i = 0;
    let mut can_quantify = false;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        let atom = match c {
            '\\' => {
                let e = *chars.get(i).ok_or("a trailing backslash")?;
                i += 1;
                escape(e, false)?
            }
            '^' => "(?m:^)".to_string(),
            '$' => "(?m:$)".to_string(),
            '[' => {
                let (class, next) = class(&chars, i)?;
                i = next;
                class
            }
            '(' => {
                if chars.get(i) == Some(&'?') {
                    match chars.get(i + 1) {
                        Some(':') => {
                            i += 2;
                            "(?:".to_string()
                        }
                        _ => return Err("a `(?…)` group other than `(?:…)`".into()),
                    }
                } else {
                    groups += 1;
                    "(".to_string()
                }
            }
            ')' | '|' | '.' => c.to_string(),
            '*' | '+' | '?' => {
                if !can_quantify {
                    return Err(format!("a `{c}` with nothing before it"));
                }
                let mut q = c.to_string();
                match chars.get(i) {
                    Some('?') => {
                        q.push('?');
                        i += 1;
                    }
                    Some('+') => return Err("a possessive quantifier".into()),
                    _ => {}
                }
                out.push_str(&q);
                can_quantify = false;
                continue;
            }
            '{' => match repetition(&chars, i) {
                Some((q, next)) if can_quantify => {
                    out.push_str(&q);
                    i = next;
                    if chars.get(i) == Some(&'?') {
                        out.push('?');
                        i += 1;
                    }
                    can_quantify = false;
                    continue;
                }
                _ => "\\{".to_string(),
            },
            '}' => "\\}".to_string(),
            c => literal(c),
        };
        can_quantify = !matches!(c, '(' | '|' | '^' | '$');
        out.push_str(&atom);
    }
    regex::Regex::new(&out).map_err(|e| format!("a regexp Rust reads differently ({e})"))?;
    Ok((out, groups))
}

/// A literal character, escaped where Rust would read it as syntax.
fn literal(c: char) -> String {
    if "\\.+*?()|[]{}^$&-~".contains(c) {
        format!("\\{c}")
    } else {
        c.to_string()
    }
}

/// `\e` outside (or, with `in_class`, inside) a character class.
fn escape(e: char, in_class: bool) -> Result<String, String> {
    let set = |s: &str, negated: &str| {
        if in_class {
            Ok(s.to_string())
        } else {
            Ok(format!("[{negated}{s}]"))
        }
    };
    match e {
        'd' => set("0-9", ""),
        'w' => set("A-Za-z0-9_", ""),
        's' => set("\\t\\n\\x0B\\x0C\\r ", ""),
        'h' => set("0-9a-fA-F", ""),
        'D' | 'W' | 'S' | 'H' if in_class => Err(format!("`\\{e}` inside a class")),
        'D' => set("0-9", "^"),
        'W' => set("A-Za-z0-9_", "^"),
        'S' => set("\\t\\n\\x0B\\x0C\\r ", "^"),
        'H' => set("0-9a-fA-F", "^"),
        'A' | 'z' if !in_class => Ok(format!("\\{e}")),
        'n' => Ok("\\n".into()),
        't' => Ok("\\t".into()),
        'r' => Ok("\\r".into()),
        'f' => Ok("\\x0C".into()),
        'v' => Ok("\\x0B".into()),
        'e' => Ok("\\x1B".into()),
        'a' => Ok("\\x07".into()),
        c if c.is_ascii_alphanumeric() => Err(format!("the regexp escape `\\{c}`")),
        c => Ok(literal(c)),
    }
}

/// A bracket class from just after its `[`: the Rust class and the index after its `]`.
fn class(chars: &[char], mut i: usize) -> Result<(String, usize), String> {
    let mut out = String::from("[");
    if chars.get(i) == Some(&'^') {
        out.push('^');
        i += 1;
    }
    let mut first = true;
    loop {
        let c = *chars.get(i).ok_or("an unterminated `[`")?;
        i += 1;
        match c {
            ']' if !first => return Ok((out + "]", i)),
            '[' => return Err("a nested or POSIX class (`[[:alpha:]]`)".into()),
            '\\' => {
                let e = *chars.get(i).ok_or("a trailing backslash")?;
                i += 1;
                out.push_str(&escape(e, true)?);
            }
            '&' if chars.get(i) == Some(&'&') => return Err("class intersection (`&&`)".into()),
            '-' if chars.get(i) == Some(&'-') => return Err("`--` in a class".into()),
            '-' if !first && chars.get(i) != Some(&']') => out.push('-'),
            c => out.push_str(&literal(c)),
        }
        first = false;
    }
}

/// `{n}`, `{n,}`, `{n,m}` from just after the `{`; Ruby reads anything else as text.
fn repetition(chars: &[char], i: usize) -> Option<(String, usize)> {
    let end = i + chars[i..].iter().position(|c| *c == '}')?;
    let body: String = chars[i..end].iter().collect();
    let (lo, hi) = match body.split_once(',') {
        Some((lo, hi)) => (lo, Some(hi)),
        None => (body.as_str(), None),
    };
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    let valid = digits(lo) && hi.is_none_or(|h| h.is_empty() || digits(h));
    valid.then(|| (format!("{{{body}}}"), end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_classes_and_line_anchors() {
        assert_eq!(
            translate(r"^\d+\s*$", "").unwrap().0,
            r"(?m:^)[0-9]+[\t\n\x0B\x0C\r ]*(?m:$)"
        );
        assert_eq!(
            translate(r"[\w.-]+", "i").unwrap().0,
            r"(?i)[A-Za-z0-9_\.\-]+"
        );
        assert_eq!(translate(r"(a)(?:b)", "").unwrap().1, 1);
    }

    #[test]
    fn engine_specific_syntax_is_refused() {
        for bad in [r"(?=a)", r"\1", r"\b", r"a++", r"[[:alpha:]]", r"\Z"] {
            assert!(translate(bad, "").is_err(), "{bad}");
        }
    }

    #[test]
    fn braces_that_are_not_repetitions_are_text() {
        assert_eq!(translate(r"a{x}", "").unwrap().0, r"a\{x\}");
        assert_eq!(translate(r"a{2,3}?", "").unwrap().0, r"a{2,3}?");
    }
}
