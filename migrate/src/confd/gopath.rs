//! Go's `path` package semantics (`Base`, `Dir`, `Clean`, `Match`), which confd's template
//! functions are defined by: ports of confd templates must see the same results.

/// Why a glob pattern was refused (Go's `path.ErrBadPattern`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("syntax error in pattern {0:?}")]
pub struct BadPattern(pub String);

/// The last element of `path` (Go's `path.Base`): `/a/b/` → `b`, `/` → `/`, `` → `.`.
pub fn base(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/".to_string();
    }
    match trimmed.rfind('/') {
        Some(i) => trimmed[i + 1..].to_string(),
        None => trimmed.to_string(),
    }
}

/// All but the last element of `path`, cleaned (Go's `path.Dir`): `/a/b` → `/a`, `a` → `.`.
pub fn dir(path: &str) -> String {
    let cut = path.rfind('/').map_or(0, |i| i + 1);
    clean(&path[..cut])
}

/// The shortest equivalent path (Go's `path.Clean`): `/a//b/../c/.` → `/a/c`.
pub fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            _ => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// A compiled glob (Go's `path.Match` syntax): `*` matches any run of characters other than
/// `/`, `?` one such character, `[a-z]`/`[^a-z]` a class, and `\` escapes the next character.
///
/// Matching runs on the `regex` crate's automata, in time linear in the key's length: a
/// backtracking matcher takes exponential time on patterns with many stars (six stars
/// against a 50-character key took seconds).
#[derive(Debug, Clone)]
pub struct Glob {
    regex: regex::Regex,
    source: String,
}

#[derive(Debug, Clone)]
enum Token {
    Char(char),
    AnyChar,
    Star,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Glob {
    /// Compiles `pattern`, refusing the malformed ones Go's `path.Match` refuses.
    pub fn new(pattern: &str) -> Result<Glob, BadPattern> {
        let regex = regex::Regex::new(&to_regex(&parse(pattern)?))
            .map_err(|_| BadPattern(pattern.to_string()))?;
        Ok(Glob {
            regex,
            source: pattern.to_string(),
        })
    }

    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        self.regex.is_match(name)
    }

    /// A key every match equals or lies below, when the pattern starts with literal segments
    /// (`/services/*/url` → `/services`, `/a/b` → `/a/b`): lets callers scan that subtree
    /// instead of every key.
    pub fn subtree(&self) -> Option<&str> {
        let fixed = match self.source.find(['*', '?', '[', '\\']) {
            None => &self.source,
            Some(meta) => &self.source[..self.source[..meta].rfind('/')?],
        };
        (!fixed.is_empty()).then_some(fixed)
    }
}

/// The tokens of `pattern`, with Go's errors for malformed ones.
fn parse(pattern: &str) -> Result<Vec<Token>, BadPattern> {
    let bad = || BadPattern(pattern.to_string());
    let mut tokens = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '*' => Token::Star,
            '?' => Token::AnyChar,
            '\\' => Token::Char(chars.next().ok_or_else(bad)?),
            '[' => {
                let negated = chars.next_if_eq(&'^').is_some();
                let mut ranges = Vec::new();
                loop {
                    if !ranges.is_empty() && chars.next_if_eq(&']').is_some() {
                        break;
                    }
                    let lo = class_char(&mut chars).ok_or_else(bad)?;
                    let hi = if chars.next_if_eq(&'-').is_some() {
                        class_char(&mut chars).ok_or_else(bad)?
                    } else {
                        lo
                    };
                    ranges.push((lo, hi));
                }
                Token::Class { negated, ranges }
            }
            c => Token::Char(c),
        });
    }
    Ok(tokens)
}

/// One character of a `[...]` class, `\`-escapes resolved; `None` where Go reports a bad
/// pattern (end of pattern, or an unescaped `-` or `]` where a character is expected).
fn class_char(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<char> {
    let c = match chars.next()? {
        '-' | ']' => return None,
        '\\' => chars.next()?,
        c => c,
    };
    chars.peek().is_some().then_some(c)
}

/// The anchored regular expression matching what `tokens` match. Classes may match `/`, as
/// in Go; a reversed range (`[z-a]`) matches nothing, as in Go.
fn to_regex(tokens: &[Token]) -> String {
    let mut out = String::from("^");
    for token in tokens {
        match token {
            Token::Char(c) => out.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
            Token::AnyChar => out.push_str("[^/]"),
            Token::Star => out.push_str("[^/]*"),
            Token::Class { negated, ranges } => {
                // A class with no range left matches nothing, or (negated) any character;
                // spelt as the complement of every character, which the regex crate allows.
                let body: String = ranges
                    .iter()
                    .filter(|(lo, hi)| lo <= hi)
                    .map(|&(lo, hi)| format!("\\x{{{:X}}}-\\x{{{:X}}}", lo as u32, hi as u32))
                    .collect();
                let (body, negated) = if body.is_empty() {
                    ("\\x{0}-\\x{10FFFF}".to_string(), !negated)
                } else {
                    (body, *negated)
                };
                out.push_str(if negated { "[^" } else { "[" });
                out.push_str(&body);
                out.push(']');
            }
        }
    }
    out.push('$');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_and_dir_follow_go() {
        for (path, b, d) in [
            ("/a/b", "b", "/a"),
            ("/a/b/", "b", "/a/b"),
            ("a", "a", "."),
            ("/", "/", "/"),
            ("", ".", "."),
            ("//x", "x", "/"),
            ("/a/./b/../c", "c", "/a"),
        ] {
            assert_eq!(base(path), b, "base({path:?})");
            assert_eq!(dir(path), d, "dir({path:?})");
        }
    }

    #[test]
    fn clean_follows_go() {
        for (path, want) in [
            ("a/../..", ".."),
            ("/../a", "/a"),
            ("a//b/./c/", "a/b/c"),
            ("../../x/..", "../.."),
            (".", "."),
        ] {
            assert_eq!(clean(path), want, "clean({path:?})");
        }
    }

    #[test]
    fn star_stays_within_a_segment() {
        let g = Glob::new("/services/*/url").unwrap();
        assert!(g.matches("/services/web/url"));
        assert!(g.matches("/services//url"));
        assert!(!g.matches("/services/a/b/url"));
        assert!(!g.matches("/services/web/url2"));
        assert!(Glob::new("/a/*").unwrap().matches("/a/"));
        assert!(!Glob::new("/a/*").unwrap().matches("/a/b/c"));
    }

    #[test]
    fn classes_escapes_and_question_mark() {
        let g = Glob::new("/h/[a-c]?[^0-9]\\*").unwrap();
        assert!(g.matches("/h/bxy*"));
        assert!(!g.matches("/h/dxy*"));
        assert!(!g.matches("/h/bx1*"));
        assert!(!g.matches("/h/b/y*"));
        assert!(Glob::new("/[/]").unwrap().matches("//"));
    }

    #[test]
    fn malformed_patterns_are_refused() {
        for bad in ["[", "[]", "[a-", "x\\", "[^]", "[-a]", "[a"] {
            assert!(Glob::new(bad).is_err(), "{bad:?}");
        }
    }

    /// The obvious backtracking definition of a match: slow (exponential in the stars) but
    /// plainly right, the reference the compiled matcher is checked against.
    fn reference(tokens: &[Token], name: &str) -> bool {
        let Some((first, rest)) = tokens.split_first() else {
            return name.is_empty();
        };
        let mut chars = name.chars();
        match first {
            Token::Star => loop {
                if reference(rest, chars.as_str()) {
                    return true;
                }
                match chars.next() {
                    Some(c) if c != '/' => {}
                    _ => return false,
                }
            },
            Token::Char(want) => chars.next() == Some(*want) && reference(rest, chars.as_str()),
            Token::AnyChar => {
                chars.next().is_some_and(|c| c != '/') && reference(rest, chars.as_str())
            }
            Token::Class { negated, ranges } => chars.next().is_some_and(|c| {
                ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
                    && reference(rest, chars.as_str())
            }),
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        #[test]
        fn matches_like_the_backtracking_reference(
            pattern in proptest::collection::vec(
                proptest::sample::select(vec![
                    "a", "b", "/", "*", "**", "?", "[ab]", "[^a]", "[a-b]", "[b-a]", "[^/]",
                    "[/]", "\\*", "é", "[é-ü]",
                ]),
                0..8,
            ),
            name in proptest::collection::vec(
                proptest::sample::select(vec!["a", "b", "/", "*", "é", "ö"]),
                0..12,
            ),
        ) {
            let (pattern, name) = (pattern.concat(), name.concat());
            let glob = Glob::new(&pattern).unwrap();
            let tokens = parse(&pattern).unwrap();
            proptest::prop_assert_eq!(
                glob.matches(&name),
                reference(&tokens, &name),
                "pattern {:?}, name {:?}",
                pattern,
                name
            );
        }
    }

    #[test]
    fn reversed_ranges_match_nothing_as_in_go() {
        assert!(!Glob::new("[z-a]").unwrap().matches("m"));
        assert!(Glob::new("[^z-a]").unwrap().matches("/"));
        assert!(Glob::new("[z-ax]").unwrap().matches("x"));
    }

    #[test]
    fn subtree_is_the_fixed_leading_segments() {
        let sub = |p: &str| Glob::new(p).unwrap().subtree().map(str::to_string);
        assert_eq!(sub("/services/*/url").as_deref(), Some("/services"));
        assert_eq!(sub("/a/b/c?").as_deref(), Some("/a/b"));
        assert_eq!(sub("/a/b").as_deref(), Some("/a/b"));
        assert_eq!(sub("/a/\\*").as_deref(), Some("/a"));
        assert_eq!(sub("/*"), None);
        assert_eq!(sub("*"), None);
    }
}
