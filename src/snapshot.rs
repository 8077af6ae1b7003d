//! The keys of one etcd revision, and the data model templates see (SPEC section 3).
//!
//! Everything a render needs is read first into a [`Snapshot`] (from etcd at one revision,
//! or from a local file for `reconfig render`), so the data model below is pure logic: the
//! same snapshot always gives the same `data`/`altdata`, whichever source it came from.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

/// Why the data model could not be built from a snapshot.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ModelError {
    /// Nothing at the watched key: reconfig.rb left the target alone, so do we.
    #[error("key {0} not found in etcd (no value and nothing below it)")]
    Missing(String),
    /// Templates produce text; a binary value has no place in one.
    #[error("value of key {0} is not valid UTF-8")]
    NotUtf8(String),
    /// Keys become object keys and file names: one that is not text fails the entries
    /// whose trees hold it (escaped here: `\xff` for a byte that is not UTF-8).
    #[error("etcd key {0} is not valid UTF-8")]
    KeyNotUtf8(String),
}

/// Keys and values read at one revision: the single input of a render.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    revision: i64,
    kvs: BTreeMap<String, Vec<u8>>,
    /// Keys read that are not UTF-8: kept apart so that only the entries whose trees hold
    /// one fail, naming it, whether the key came from a read or from the watch.
    not_utf8: BTreeSet<Vec<u8>>,
}

impl Snapshot {
    /// A snapshot of `kvs` as etcd held them at `revision` (0 when not from etcd).
    pub fn new(revision: i64, kvs: BTreeMap<String, Vec<u8>>) -> Self {
        Snapshot {
            revision,
            kvs,
            not_utf8: BTreeSet::new(),
        }
    }

    /// An empty snapshot of `revision`, to fill with [`Self::insert_raw`].
    pub fn at(revision: i64) -> Self {
        Snapshot::new(revision, BTreeMap::new())
    }

    /// Adds a pair whose key may not be text (as etcd delivers it).
    pub fn insert_raw(&mut self, key: Vec<u8>, value: Vec<u8>) {
        match String::from_utf8(key) {
            Ok(key) => {
                self.kvs.insert(key, value);
            }
            Err(e) => {
                self.not_utf8.insert(e.into_bytes());
            }
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
        self.kvs.get(key).map(Vec::as_slice)
    }

    /// Every key and value, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.kvs.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// The pairs whose key is `key` or lies below `key/`, sorted by key (etcd v2's "tree").
    pub fn tree<'a>(&'a self, key: &str) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        let below = dir_prefix(key);
        // For `/` (or any key ending in `/`) the key itself is the first of its children.
        let own = self.kvs.get_key_value(key).filter(|_| below != key);
        let children = self
            .kvs
            .range(below.clone()..)
            .take_while(move |(k, _)| k.starts_with(&below));
        own.into_iter()
            .chain(children)
            .map(|(k, v)| (k.as_str(), v.as_slice()))
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
                    self.kvs.insert(key.to_string(), v.to_vec());
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
                subset.kvs.insert(k.to_string(), v.to_vec());
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

    /// `data` for a watched key: the tree as an object when `recursive` (`{}` for an
    /// empty tree), else the value as `{key: value}`, else the directory listing of its
    /// children.
    pub fn data_for(&self, key: &str, recursive: bool) -> Result<Value, ModelError> {
        self.check_keys(key)?;
        if recursive {
            return Ok(Value::Object(self.tree_object(key)?));
        }
        if let Some(value) = self.get(key) {
            let mut map = Map::new();
            map.insert(key.to_string(), Value::String(utf8(key, value)?));
            return Ok(Value::Object(map));
        }
        let children = self.children(key);
        if children.is_empty() {
            return Err(ModelError::Missing(key.to_string()));
        }
        Ok(Value::Array(
            children.into_iter().map(Value::String).collect(),
        ))
    }

    /// `altdata`: each name → the object of its key's tree, `{}` when nothing is there.
    pub fn altdata_for(&self, altkeys: &BTreeMap<String, String>) -> Result<Value, ModelError> {
        let mut out = Map::new();
        for (name, key) in altkeys {
            self.check_keys(key)?;
            out.insert(name.clone(), Value::Object(self.tree_object(key)?));
        }
        Ok(Value::Object(out))
    }

    /// Fails when the tree of `key` holds a key that is not UTF-8.
    fn check_keys(&self, key: &str) -> Result<(), ModelError> {
        match self.not_utf8.iter().find(|k| in_tree_bytes(key, k)) {
            Some(bad) => Err(ModelError::KeyNotUtf8(escape_key(bad))),
            None => Ok(()),
        }
    }

    fn tree_object(&self, key: &str) -> Result<Map<String, Value>, ModelError> {
        self.tree(key)
            .map(|(k, v)| Ok((k.to_string(), Value::String(utf8(k, v)?))))
            .collect()
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

/// Whether `candidate` is `key` itself or lies below `key/`.
pub fn in_tree(key: &str, candidate: &str) -> bool {
    candidate == key || candidate.starts_with(&dir_prefix(key))
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

fn utf8(key: &str, value: &[u8]) -> Result<String, ModelError> {
    String::from_utf8(value.to_vec()).map_err(|_| ModelError::NotUtf8(key.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn snap(pairs: &[(&str, &str)]) -> Snapshot {
        Snapshot::new(
            7,
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect(),
        )
    }

    #[test]
    fn recursive_tree_excludes_sibling_prefixes() {
        let s = snap(&[
            ("/a", "0"),
            ("/a-x", "no"),
            ("/a/b", "1"),
            ("/a/c/d", "2"),
            ("/ab", "no"),
        ]);
        assert_eq!(
            s.data_for("/a", true).unwrap(),
            json!({"/a": "0", "/a/b": "1", "/a/c/d": "2"})
        );
    }

    #[test]
    fn leaf_value_is_a_one_key_object() {
        let s = snap(&[("/k", "v"), ("/k/x", "ignored")]);
        assert_eq!(s.data_for("/k", false).unwrap(), json!({"/k": "v"}));
    }

    #[test]
    fn directory_without_value_lists_immediate_children() {
        let s = snap(&[
            ("/d/a", "1"),
            ("/d/b/c", "2"),
            ("/d/b/d", "3"),
            ("/dx", "no"),
        ]);
        assert_eq!(s.data_for("/d", false).unwrap(), json!(["/d/a", "/d/b"]));
    }

    #[test]
    fn nothing_at_a_key_is_missing_but_an_empty_tree_is_empty_data() {
        let s = snap(&[("/other", "1")]);
        assert_eq!(
            s.data_for("/k", false),
            Err(ModelError::Missing("/k".into()))
        );
        assert_eq!(s.data_for("/k", true), Ok(json!({})));
    }

    #[test]
    fn a_key_that_is_not_utf8_fails_only_the_trees_holding_it() {
        let mut s = snap(&[("/small/a", "1"), ("/big/b", "2")]);
        s.insert_raw(b"/small.\xff".to_vec(), b"beside".to_vec());
        s.insert_raw(b"/big/\xfe".to_vec(), b"inside".to_vec());
        assert_eq!(s.data_for("/small", true), Ok(json!({"/small/a": "1"})));
        assert_eq!(
            s.data_for("/big", true),
            Err(ModelError::KeyNotUtf8(r"/big/\xfe".into()))
        );
        let alt = BTreeMap::from([("b".to_string(), "/big".to_string())]);
        assert!(s.altdata_for(&alt).is_err());
        assert_eq!(s.subset(["/small"]).not_utf8_keys().count(), 0);
        assert_eq!(s.subset(["/big"]).not_utf8_keys().count(), 1);
        // The watch agrees with the read: a put adds it, a delete takes it away.
        let mut w = snap(&[("/big/b", "2")]);
        w.apply(8, [(&b"/big/\xfe"[..], Some(&b"x"[..]))]);
        assert!(w.data_for("/big", true).is_err());
        w.apply(9, [(&b"/big/\xfe"[..], None)]);
        assert_eq!(w.data_for("/big", true), Ok(json!({"/big/b": "2"})));
    }

    #[test]
    fn altdata_is_empty_object_when_absent() {
        let s = snap(&[("/alt/x", "1")]);
        let alt = BTreeMap::from([
            ("a".to_string(), "/alt".to_string()),
            ("b".to_string(), "/none".to_string()),
        ]);
        assert_eq!(
            s.altdata_for(&alt).unwrap(),
            json!({"a": {"/alt/x": "1"}, "b": {}})
        );
    }

    #[test]
    fn non_utf8_value_names_the_key() {
        let s = Snapshot::new(1, BTreeMap::from([("/bin".to_string(), vec![0xff, 0xfe])]));
        assert_eq!(
            s.data_for("/bin", false),
            Err(ModelError::NotUtf8("/bin".into()))
        );
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
        assert!(in_tree("/a", "/a/b") && in_tree("/a", "/a") && !in_tree("/a", "/a-b"));
        assert!(in_tree("/", "/x"));
    }

    #[test]
    fn apply_puts_and_deletes_at_a_revision() {
        let mut s = snap(&[("/a/1", "1"), ("/a/2", "2")]);
        s.apply(9, [(&b"/a/1"[..], None), (&b"/a/3"[..], Some(&b"3"[..]))]);
        assert_eq!(s.revision(), 9);
        assert_eq!(
            s.data_for("/a", true).unwrap(),
            json!({"/a/2": "2", "/a/3": "3"})
        );
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
