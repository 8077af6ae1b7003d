//! Tera expressions as a tree, printed as source that Tera 1's grammar accepts wherever it
//! is placed: a filter's receiver, a side of `==`, a part of a `~` chain, a loop's list.
//! Where Tera's grammar refuses a form, the expression goes through `rb_value(v=…)`.

/// A Tera expression.
#[derive(Debug, Clone, PartialEq)]
pub enum T {
    /// A variable, possibly dotted: `data`, `pair.0`.
    Path(String),
    /// A string literal.
    Str(String),
    Int(i64),
    Bool(bool),
    Array(Vec<T>),
    /// `receiver | name(args)`.
    Filter(Box<T>, &'static str, Vec<(String, T)>),
    /// `name(args)`.
    Call(&'static str, Vec<(String, T)>),
    /// `a ~ b ~ c`.
    Concat(Vec<T>),
    /// `a == b`, `a != b`.
    Cmp(Box<T>, &'static str, Box<T>),
    Not(Box<T>),
    /// `a and b`, `a or b`.
    Logic(Box<T>, &'static str, Box<T>),
}

/// Where a piece of Tera source stands, which decides the forms allowed there.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Place {
    /// Before `| filter`.
    Receiver,
    /// A side of `==`.
    Operand,
    /// A part of `~`.
    Part,
    /// An item of `[…]`.
    Item,
    /// The list of a `for`.
    List,
}

impl T {
    /// A string literal; one holding all three of Tera's quote characters is split into
    /// a `~` chain of pieces that each leave one out.
    pub fn string(s: &str) -> T {
        let mut pieces = vec![];
        let mut piece = String::new();
        for c in s.chars() {
            let mut with = piece.clone();
            with.push(c);
            if quote_for(&with).is_none() {
                pieces.push(T::Str(std::mem::take(&mut piece)));
                piece.push(c);
            } else {
                piece = with;
            }
        }
        pieces.push(T::Str(piece));
        if pieces.len() == 1 {
            pieces.remove(0)
        } else {
            T::Concat(pieces)
        }
    }

    /// `self | name(args)`.
    pub fn filter(self, name: &'static str, args: Vec<(&str, T)>) -> T {
        let receiver = self.fit(Place::Receiver);
        T::Filter(
            Box::new(receiver),
            name,
            args.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        )
    }

    /// `name(args)`.
    pub fn call(name: &'static str, args: Vec<(&str, T)>) -> T {
        T::Call(
            name,
            args.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        )
    }

    /// `a == b` / `a != b`.
    pub fn cmp(a: T, op: &'static str, b: T) -> T {
        T::Cmp(
            Box::new(a.fit(Place::Operand)),
            op,
            Box::new(b.fit(Place::Operand)),
        )
    }

    /// `a ~ b`, flattening chains.
    pub fn concat(parts: Vec<T>) -> T {
        let mut out = vec![];
        for part in parts {
            match part {
                T::Concat(inner) => out.extend(inner),
                other => out.push(other.fit(Place::Part)),
            }
        }
        T::Concat(out)
    }

    /// The negation of a condition, pushed inside `and`/`or` (Tera's `not` applies to a
    /// comparison only).
    pub fn not(self) -> T {
        match self {
            T::Not(inner) => *inner,
            T::Cmp(a, "==", b) => T::Cmp(a, "!=", b),
            T::Cmp(a, "!=", b) => T::Cmp(a, "==", b),
            T::Logic(a, "and", b) => T::logic(a.not(), "or", b.not()),
            T::Logic(a, "or", b) => T::logic(a.not(), "and", b.not()),
            T::Bool(b) => T::Bool(!b),
            other => T::Not(Box::new(other)),
        }
    }

    /// `a and b` / `a or b`.
    pub fn logic(a: T, op: &'static str, b: T) -> T {
        T::Logic(Box::new(a), op, Box::new(b))
    }

    /// Whether this is a plain variable name (no dots).
    pub fn is_name(&self) -> bool {
        matches!(self, T::Path(p) if !p.contains('.'))
    }

    /// This expression, made acceptable at `place`.
    fn fit(self, place: Place) -> T {
        let fits = match (&self, place) {
            (T::Bool(_), Place::Part) => false,
            (T::Path(_) | T::Int(_) | T::Bool(_) | T::Call(..), _) => true,
            (_, Place::List) => matches!(self.root(), T::Path(_) | T::Call(..)),
            (T::Str(_), _) => true,
            (T::Concat(_), Place::Receiver | Place::Operand | Place::Item) => true,
            (T::Array(_), Place::Receiver) => true,
            (T::Filter(base, ..), Place::Receiver | Place::Operand | Place::Item) => {
                !matches!(base.root(), T::Array(_))
            }
            (T::Cmp(..) | T::Not(_) | T::Logic(..), Place::Item) => true,
            _ => false,
        };
        if fits {
            self
        } else {
            T::call("rb_value", vec![("v", self)])
        }
    }

    /// The receiver at the start of a filter chain.
    fn root(&self) -> &T {
        match self {
            T::Filter(base, ..) => base.root(),
            other => other,
        }
    }

    /// Tera source for a place that takes any expression (`{{ }}`, `set`, an argument).
    pub fn source(&self) -> String {
        match self {
            T::Path(p) => p.clone(),
            T::Str(s) => {
                let q = quote_for(s).expect("T::string splits strings that need it");
                format!("{q}{s}{q}")
            }
            T::Int(n) => n.to_string(),
            T::Bool(b) => b.to_string(),
            T::Array(items) => {
                let items: Vec<String> = items
                    .iter()
                    .map(|i| match i {
                        T::Logic(..) => format!("({})", i.source()),
                        _ => i.clone().fit(Place::Item).source(),
                    })
                    .collect();
                format!("[{}]", items.join(", "))
            }
            T::Filter(base, name, args) => {
                if args.is_empty() {
                    format!("{} | {name}", base.source())
                } else {
                    format!("{} | {name}({})", base.source(), kwargs(args))
                }
            }
            T::Call(name, args) => format!("{name}({})", kwargs(args)),
            T::Concat(parts) => parts.iter().map(T::source).collect::<Vec<_>>().join(" ~ "),
            T::Cmp(a, op, b) => format!("{} {op} {}", a.source(), b.source()),
            T::Not(inner) => format!("not {}", inner.source()),
            T::Logic(a, op, b) => {
                let side = |t: &T| match t {
                    T::Logic(_, inner, _) if inner != op => format!("({})", t.source()),
                    _ => t.source(),
                };
                format!("{} {op} {}", side(a), side(b))
            }
        }
    }

    /// Tera source for the list of a `for` loop.
    pub fn list_source(self) -> String {
        self.fit(Place::List).source()
    }
}

fn kwargs(args: &[(String, T)]) -> String {
    args.iter()
        .map(|(k, v)| format!("{k}={}", v.source()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A quote character that `s` does not contain (Tera strings have no escapes).
fn quote_for(s: &str) -> Option<char> {
    ['"', '\'', '`'].into_iter().find(|q| !s.contains(*q))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_pick_a_free_quote() {
        assert_eq!(T::string("a\"b").source(), "'a\"b'");
        assert_eq!(T::string("\"'`x").source(), "`\"'` ~ \"`x\"");
    }

    #[test]
    fn forms_tera_refuses_go_through_rb_value() {
        let eq = T::cmp(T::Path("a".into()), "==", T::Str("b".into()));
        assert_eq!(
            eq.clone().filter("rb_s", vec![]).source(),
            "rb_value(v=a == \"b\") | rb_s"
        );
        let list = T::Array(vec![T::Int(1)]).filter("rb_sort", vec![]);
        assert_eq!(
            T::cmp(list, "==", T::Int(1)).source(),
            "rb_value(v=[1] | rb_sort) == 1"
        );
        assert_eq!(T::string("ab").list_source(), "rb_value(v=\"ab\")");
    }

    #[test]
    fn negation_moves_inside() {
        let a = T::call("rb_truthy", vec![("v", T::Path("a".into()))]);
        let b = T::cmp(T::Path("b".into()), "==", T::Int(1));
        assert_eq!(
            T::logic(a, "or", b).not().source(),
            "not rb_truthy(v=a) and b != 1"
        );
    }
}
