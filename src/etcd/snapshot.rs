//! The keys of one etcd revision: what every render, mirror and `etcd-util GET` works
//! from. A snapshot comes from a consistent read, from the watch's own events (kept up to
//! date at revision boundaries), or from a local file for `reconfig render`; the data model
//! the templates see is built from it (`crate::template::model`), so the same snapshot
//! always gives the same `data`, whichever source it came from.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

/// Keys and values read at one revision: the single input of a render.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    revision: i64,
    /// Boxed keys and values, not `String` and `Vec`: no spare capacity to carry, and a
    /// third less room in every map node — the trees of 500 entries are as many maps.
    kvs: BTreeMap<Box<str>, Box<[u8]>>,
    /// Keys read that are not UTF-8: kept apart so that only the entries whose trees hold
    /// one fail, naming it, whether the key came from a read or from the watch.
    not_utf8: BTreeSet<Vec<u8>>,
}

impl Snapshot {
    /// A snapshot of `kvs` as etcd held them at `revision` (0 when not from etcd).
    pub fn new(revision: i64, kvs: BTreeMap<String, Vec<u8>>) -> Self {
        Snapshot {
            revision,
            kvs: kvs
                .into_iter()
                .map(|(k, v)| (k.into_boxed_str(), v.into_boxed_slice()))
                .collect(),
            not_utf8: BTreeSet::new(),
        }
    }

    /// A snapshot of `pairs` at `revision` (keys as etcd may deliver them), for tests.
    #[cfg(test)]
    pub fn of<K: AsRef<[u8]>, V: AsRef<[u8]>>(revision: i64, pairs: &[(K, V)]) -> Self {
        let raw = pairs
            .iter()
            .map(|(k, v)| (k.as_ref().to_vec(), v.as_ref().to_vec()))
            .collect();
        Snapshot::from_raw(revision, raw)
    }

    /// A snapshot of pairs as etcd delivers them, keys that are not text kept apart. Built
    /// in one go rather than key by key: the pairs arrive sorted, and 20,000 keys then cost
    /// no search each.
    pub fn from_raw(revision: i64, pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Self {
        let mut not_utf8 = BTreeSet::new();
        let kvs = pairs
            .into_iter()
            .filter_map(|(key, value)| match String::from_utf8(key) {
                Ok(key) => Some((key.into_boxed_str(), value.into_boxed_slice())),
                Err(e) => {
                    not_utf8.insert(e.into_bytes());
                    None
                }
            })
            .collect();
        Snapshot {
            revision,
            kvs,
            not_utf8,
        }
    }

    /// Keys that are not UTF-8, escaped for messages.
    pub fn not_utf8_keys(&self) -> impl Iterator<Item = String> + '_ {
        self.not_utf8.iter().map(|k| escape_key(k))
    }

    /// The etcd revision every value was read at.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// The raw value of one key.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.kvs.get(key).map(|v| &**v)
    }

    /// Every key and value, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.kvs.iter().map(|(k, v)| (&**k, &**v))
    }

    /// The pairs whose key is `key` or lies below `key/`, sorted by key (etcd v2's "tree").
    pub fn tree<'a>(&'a self, key: &str) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        let below = dir_prefix(key);
        // For `/` (or any key ending in `/`) the key itself is the first of its children.
        let own = self.kvs.get_key_value(key).filter(|_| below != key);
        let children = self
            .kvs
            .range::<str, _>((Bound::Included(below.as_str()), Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(&below));
        own.into_iter().chain(children).map(|(k, v)| (&**k, &**v))
    }

    /// Applies one watch response: `value` None deletes the key. Then the snapshot
    /// stands for `revision`.
    pub fn apply<'a>(
        &mut self,
        revision: i64,
        changes: impl IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    ) {
        for (key, value) in changes {
            match (std::str::from_utf8(key), value) {
                (Ok(key), Some(v)) => {
                    self.kvs.insert(key.into(), v.into());
                }
                (Ok(key), None) => {
                    self.kvs.remove(key);
                }
                (Err(_), Some(_)) => {
                    self.not_utf8.insert(key.to_vec());
                }
                (Err(_), None) => {
                    self.not_utf8.remove(key);
                }
            }
        }
        self.revision = revision;
    }

    /// Only the trees of `keys`: what one entry's render may see of a larger read.
    pub fn subset<'a>(&self, keys: impl IntoIterator<Item = &'a str>) -> Snapshot {
        let mut subset = Snapshot::new(self.revision, BTreeMap::new());
        for key in keys {
            for (k, v) in self.tree(key) {
                subset.kvs.insert(k.into(), v.into());
            }
            let bad = self.not_utf8.iter().filter(|k| in_tree_bytes(key, k));
            subset.not_utf8.extend(bad.cloned());
        }
        subset
    }

    /// Full keys of the immediate children of `key` (etcd v2's directory listing), sorted.
    pub fn children(&self, key: &str) -> Vec<String> {
        let below = dir_prefix(key);
        let names: std::collections::BTreeSet<&str> = self
            .tree(key)
            .filter_map(|(k, _)| k.strip_prefix(&below))
            .map(|rest| rest.split('/').next().unwrap_or(rest))
            .collect();
        names
            .into_iter()
            .map(|name| format!("{below}{name}"))
            .collect()
    }

    /// The first key below `key` (itself included) that is not UTF-8, escaped.
    pub fn not_utf8_in(&self, key: &str) -> Option<String> {
        let bad = self.not_utf8.iter().find(|k| in_tree_bytes(key, k))?;
        Some(escape_key(bad))
    }
}

/// A key that may not be UTF-8, printable: bytes that are not text as `\xNN`.
pub fn escape_key(key: &[u8]) -> String {
    key.escape_ascii().to_string()
}

/// [`in_tree`] for a key that may not be UTF-8.
pub fn in_tree_bytes(key: &str, candidate: &[u8]) -> bool {
    candidate == key.as_bytes() || candidate.starts_with(dir_prefix(key).as_bytes())
}

/// The etcd key range `[start, end)` holding `key` and everything below `key/`.
///
/// One range per key keeps start-up to one read and one watch per key. The range also
/// holds siblings that sort between `key` and `key/` (`key-x`, `key.x`); callers drop them
/// with [`in_tree`].
pub fn tree_range(key: &str) -> (Vec<u8>, Vec<u8>) {
    let stem = key.strip_suffix('/').unwrap_or(key);
    let mut end = stem.as_bytes().to_vec();
    end.push(b'/' + 1);
    (key.as_bytes().to_vec(), end)
}

/// `key/`, or `/` for the root, so that `/certs` never matches `/certsX`.
pub fn dir_prefix(key: &str) -> String {
    if key.ends_with('/') {
        key.to_string()
    } else {
        format!("{key}/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(pairs: &[(&str, &str)]) -> Snapshot {
        Snapshot::of(7, pairs)
    }

    #[test]
    fn tree_range_covers_the_tree() {
        let (start, end) = tree_range("/a");
        assert_eq!(
            (start.as_slice(), end.as_slice()),
            (&b"/a"[..], &b"/a0"[..])
        );
        let (start, end) = tree_range("/");
        assert_eq!((start.as_slice(), end.as_slice()), (&b"/"[..], &b"0"[..]));
        assert!(in_tree_bytes("/a", b"/a/b") && in_tree_bytes("/a", b"/a"));
        assert!(!in_tree_bytes("/a", b"/a-b"));
        assert!(in_tree_bytes("/", b"/x"));
    }

    #[test]
    fn pairs_read_twice_or_out_of_order_give_one_key_each() {
        // Nested trees (`/a` and `/a/b`) read in one snapshot deliver their shared keys twice.
        let s = Snapshot::of(
            3,
            &[
                (&b"/a/b/1"[..], "x"),
                (b"/a/0", "y"),
                (b"/a/b/1", "x"),
                (b"/a/\xff", "z"),
            ],
        );
        let pairs: Vec<(&str, &[u8])> = s.iter().collect();
        assert_eq!(pairs, [("/a/0", &b"y"[..]), ("/a/b/1", &b"x"[..])]);
        assert_eq!(s.not_utf8_keys().collect::<Vec<_>>(), [r"/a/\xff"]);
        assert_eq!(s.revision(), 3);
    }

    #[test]
    fn subset_keeps_only_named_trees() {
        let s = snap(&[("/a/1", "1"), ("/b/1", "2"), ("/c", "3")]);
        let sub = s.subset(["/a", "/c"]);
        assert_eq!(sub.iter().count(), 2);
        assert_eq!(sub.revision(), 7);
    }

    #[test]
    fn root_tree_is_everything_once() {
        let s = snap(&[("/", "root"), ("/a", "1"), ("/b/c", "2")]);
        assert_eq!(s.tree("/").count(), 3);
    }
}
