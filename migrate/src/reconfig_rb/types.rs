//! What the converter knows of Ruby values: their class, statically, from what `@reconfig`
//! holds and what each method returns. It decides where plain Tera means the same as the
//! Ruby (a Hash loop, printing a String) and where a Ruby-compatible filter is needed.

/// What the converter knows of a value's Ruby class.
#[derive(Debug, Clone, PartialEq)]
pub enum Ty {
    Str,
    Int,
    Bool,
    Nil,
    /// The type, or `nil`.
    Maybe(Box<Ty>),
    Arr(Box<Ty>),
    /// A Hash with String keys and values of the type.
    Hash(Box<Ty>),
    /// A `[key, value]` pair of a Hash.
    Pair(Box<Ty>, Box<Ty>),
    Any,
}

impl Ty {
    /// An Array of `t`.
    pub fn arr(t: Ty) -> Ty {
        Ty::Arr(Box::new(t))
    }

    /// `t`, or `nil`.
    pub fn maybe(t: Ty) -> Ty {
        match t {
            Ty::Nil | Ty::Maybe(_) | Ty::Any => t,
            other => Ty::Maybe(Box::new(other)),
        }
    }

    /// The type without its `nil` (a method on `nil` fails in both Ruby and Tera).
    pub fn sure(&self) -> &Ty {
        match self {
            Ty::Maybe(t) => t,
            t => t,
        }
    }

    /// Whether Tera prints it as Ruby's `to_s` does (strings, numbers, booleans, nothing
    /// for `nil`).
    pub fn prints_plainly(&self) -> bool {
        match self {
            Ty::Str | Ty::Int | Ty::Bool | Ty::Nil => true,
            Ty::Maybe(t) => t.prints_plainly(),
            _ => false,
        }
    }

    /// Whether it may be a number (Tera's `==` mishandles numbers against other types).
    pub fn may_be_number(&self) -> bool {
        matches!(self.sure(), Ty::Int | Ty::Any)
    }

    /// What iterating it yields, one item at a time (`each` with one parameter).
    pub fn item(&self) -> Ty {
        match self.sure() {
            Ty::Arr(t) => (**t).clone(),
            Ty::Hash(v) => Ty::Pair(Box::new(Ty::Str), v.clone()),
            _ => Ty::Any,
        }
    }

    /// What a value that is either `a` or `b` is known to be.
    pub fn union(a: Ty, b: Ty) -> Ty {
        if a == b {
            a
        } else if a.sure() == b.sure() {
            Ty::maybe(a.sure().clone())
        } else if a == Ty::Nil {
            Ty::maybe(b)
        } else if b == Ty::Nil || Ty::maybe(a.clone()) == b {
            Ty::maybe(a)
        } else {
            Ty::Any
        }
    }
}
