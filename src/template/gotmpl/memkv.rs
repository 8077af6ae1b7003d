//! confd's key store (kelseyhightower/memkv) over a render's snapshot: each key read under
//! the entry's prefix is stored as confd stores it (`path.Join("/", TrimPrefix(key,
//! prefix))`), and `get`, `gets`, `getv`, `getvs`, `exists`, `ls`, `lsdir` give memkv's
//! results: `getvs` sorts the values, `gets` the pairs by key, `ls` lists the entry's own
//! base name when asked about a key with a value, a malformed pattern is an error only
//! when there is a key to match it against.

use std::collections::{BTreeMap, BTreeSet};

use super::exec::Result;
use super::value::{GoVal, Slice, Ty};
use crate::etcd::Snapshot;
use crate::template::confd::gopath::{self, Glob};

/// The store of one render: confd's key → value.
pub struct Store {
    kv: BTreeMap<String, Vec<u8>>,
    /// The entry's keys as confd names them (under the prefix).
    roots: Vec<String>,
}

/// A key as confd stores it: `path.Join("/", strings.TrimPrefix(key, prefix))`.
fn relative(key: &str, prefix: &str) -> String {
    let rel = key.strip_prefix(prefix).unwrap_or(key);
    gopath::clean(&format!("/{rel}"))
}

impl Store {
    /// The keys of `snapshot` as confd sees them under `prefix`; `read` are the keys whose
    /// trees the snapshot holds.
    pub fn new(snapshot: &Snapshot, prefix: &str, read: &[String]) -> Store {
        let kv = snapshot
            .iter()
            .map(|(k, v)| (relative(k, prefix), v.to_vec()))
            .collect();
        let roots = read.iter().map(|k| relative(k, prefix)).collect();
        Store { kv, roots }
    }

    /// memkv's error for a key it does not have, saying when the key is outside every
    /// key the entry reads.
    fn missing(&self, key: &str) -> String {
        let outside = crate::template::scope::outside_of(&self.roots, key);
        format!("key does not exist: {key}{outside}")
    }

    fn text(key: &str, raw: &[u8]) -> Result<String> {
        String::from_utf8(raw.to_vec())
            .map_err(|_| format!("value of key {key} is not valid UTF-8"))
    }

    /// memkv's `Get`: the pair, or `key does not exist: KEY`.
    pub fn get(&self, key: &str) -> Result<GoVal> {
        match self.kv.get(key) {
            Some(raw) => Ok(GoVal::Kv(key.to_string(), Self::text(key, raw)?)),
            None => Err(self.missing(key)),
        }
    }

    /// memkv's `GetValue`: the value, the first default, or the `Get` error.
    pub fn getv(&self, key: &str, defaults: &[GoVal]) -> Result<GoVal> {
        match self.kv.get(key) {
            Some(raw) => Ok(GoVal::Str(Self::text(key, raw)?)),
            None => match defaults.first() {
                Some(d) => Ok(d.clone()),
                None => Err(self.missing(key)),
            },
        }
    }

    pub fn exists(&self, key: &str) -> bool {
        self.kv.contains_key(key)
    }

    fn matching(&self, pattern: &str) -> Result<Vec<(String, String)>> {
        if self.kv.is_empty() {
            return Ok(vec![]);
        }
        let glob = Glob::new(pattern).map_err(|_| "syntax error in pattern".to_string())?;
        self.kv
            .iter()
            .filter(|(k, _)| glob.matches(k))
            .map(|(k, v)| Ok((k.clone(), Self::text(k, v)?)))
            .collect()
    }

    /// memkv's `GetAll`: the matching pairs sorted by key (`memkv.KVPairs`).
    pub fn gets(&self, pattern: &str) -> Result<GoVal> {
        let pairs = self
            .matching(pattern)?
            .into_iter()
            .map(|(k, v)| GoVal::Kv(k, v))
            .collect();
        Ok(GoVal::Slice(Slice::new(Ty::KvPairs, pairs)))
    }

    /// memkv's `GetAllValues`: the matching values, sorted.
    pub fn getvs(&self, pattern: &str) -> Result<GoVal> {
        let mut values: Vec<String> = self
            .matching(pattern)?
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        values.sort();
        Ok(GoVal::strings(values))
    }

    /// memkv's `List`.
    pub fn ls(&self, path: &str) -> GoVal {
        let prefix = terms(path);
        let mut names = BTreeSet::new();
        for key in self.kv.keys() {
            if key == path {
                names.insert(gopath::base(key));
                continue;
            }
            if same_prefix(&prefix, &terms(&gopath::dir(key))) {
                let rest = key.strip_prefix(path).unwrap_or(key);
                let rest = rest.strip_prefix('/').unwrap_or(rest);
                names.insert(rest.split('/').next().unwrap_or_default().to_string());
            }
        }
        GoVal::strings(names.into_iter().collect())
    }

    /// memkv's `ListDir`.
    pub fn lsdir(&self, path: &str) -> GoVal {
        let prefix = terms(path);
        let mut names = BTreeSet::new();
        for key in self.kv.keys().filter(|k| k.starts_with(path)) {
            let items = terms(&gopath::dir(key));
            if same_prefix(&prefix, &items) && items.len() > prefix.len() {
                names.insert(items[prefix.len()].clone());
            }
        }
        GoVal::strings(names.into_iter().collect())
    }
}

fn terms(path: &str) -> Vec<String> {
    gopath::clean(path).split('/').map(str::to_string).collect()
}

fn same_prefix(prefix: &[String], test: &[String]) -> bool {
    test.len() >= prefix.len() && prefix.iter().zip(test).all(|(a, b)| a == b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::gotmpl::fmt::sprint;

    fn store(pairs: &[(&str, &str)], prefix: &str) -> Store {
        Store::new(&Snapshot::of(1, pairs), prefix, &["/p/app".to_string()])
    }

    #[test]
    fn keys_are_relative_to_the_prefix() {
        let s = store(&[("/p/app/b", "2"), ("/p/app/a", "9")], "/p");
        assert_eq!(
            sprint(&[s.gets("/app/*").unwrap()]),
            "[{/app/a 9} {/app/b 2}]"
        );
        assert_eq!(sprint(&[s.getvs("/app/*").unwrap()]), "[2 9]");
        let outside = s.getv("/p/app/a", &[]).unwrap_err();
        assert_eq!(
            outside,
            "key does not exist: /p/app/a (outside the entry's keys: /app)"
        );
    }

    #[test]
    fn ls_and_lsdir_follow_memkv() {
        let s = store(
            &[("/a", "0"), ("/a/b", "1"), ("/a/c/d", "2"), ("/ab", "3")],
            "/",
        );
        assert_eq!(sprint(&[s.ls("/a")]), "[a b c]");
        assert_eq!(sprint(&[s.lsdir("/a")]), "[c]");
        assert_eq!(sprint(&[s.ls("/")]), "[a ab]");
    }

    #[test]
    fn bad_patterns_fail_only_against_keys() {
        assert!(store(&[], "/").getvs("[").is_ok());
        assert!(store(&[("/a", "1")], "/").getvs("[").is_err());
    }
}
