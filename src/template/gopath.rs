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
#[derive(Debug, Clone)]
pub struct Glob {
    tokens: Vec<Token>,
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
        Ok(Glob {
            tokens,
            source: pattern.to_string(),
        })
    }

    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        match_from(&self.tokens, name)
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

fn match_from(tokens: &[Token], name: &str) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return name.is_empty();
    };
    let mut chars = name.chars();
    match first {
        Token::Star => loop {
            if match_from(rest, chars.as_str()) {
                return true;
            }
            match chars.next() {
                Some(c) if c != '/' => {}
                _ => return false,
            }
        },
        single => chars
            .next()
            .is_some_and(|c| single_matches(single, c) && match_from(rest, chars.as_str())),
    }
}

fn single_matches(token: &Token, c: char) -> bool {
    match token {
        Token::Char(want) => *want == c,
        Token::AnyChar => c != '/',
        Token::Class { negated, ranges } => {
            ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
        }
        Token::Star => unreachable!("stars are matched by match_from"),
    }
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
