//! Named arguments of reconfig's filters and functions (Tera 1 passes only named ones), with
//! errors that name the function and the argument.

use std::collections::HashMap;

use serde_json::Value;

/// The arguments of one call of the filter or function `name`.
pub struct Args<'a> {
    name: &'static str,
    map: &'a HashMap<String, Value>,
}

impl<'a> Args<'a> {
    /// Checks that every argument given is one of `known`, so a misspelt `defualt=` is an
    /// error rather than silently ignored.
    pub fn new(
        name: &'static str,
        map: &'a HashMap<String, Value>,
        known: &[&str],
    ) -> tera::Result<Args<'a>> {
        let mut unknown: Vec<&str> = map
            .keys()
            .map(String::as_str)
            .filter(|k| !known.contains(k))
            .collect();
        unknown.sort_unstable();
        match unknown.first() {
            None => Ok(Args { name, map }),
            Some(arg) => Err(tera::Error::msg(format!(
                "{name}: unknown argument `{arg}` (takes: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ))),
        }
    }

    /// An error message prefixed with the function's name.
    pub fn error(&self, message: impl std::fmt::Display) -> tera::Error {
        tera::Error::msg(format!("{}: {message}", self.name))
    }

    /// A required argument of any type.
    pub fn value(&self, key: &str) -> tera::Result<&'a Value> {
        self.map
            .get(key)
            .ok_or_else(|| self.error(format!("missing argument `{key}`")))
    }

    /// A required string argument.
    pub fn string(&self, key: &str) -> tera::Result<&'a str> {
        self.value(key)?
            .as_str()
            .ok_or_else(|| self.error(format!("argument `{key}` must be a string")))
    }

    /// An optional string argument.
    pub fn opt_string(&self, key: &str) -> tera::Result<Option<&'a str>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(_) => self.string(key).map(Some),
        }
    }

    /// An optional boolean argument.
    pub fn opt_bool(&self, key: &str) -> tera::Result<Option<bool>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.error(format!("argument `{key}` must be true or false"))),
        }
    }
}
