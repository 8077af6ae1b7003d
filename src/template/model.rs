//! The data model templates see, built from a snapshot: `data` for the watched key
//! (a tree, a value or a directory listing, as reconfig.rb had them from etcd v2) and
//! `altdata` for the altkeys. Pure logic: the same snapshot always gives the same model.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::etcd::Snapshot;

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

/// `data` for a watched key: the tree as an object when `recursive` (`{}` for an empty
/// tree), else the value as `{key: value}`, else the directory listing of its children.
pub fn data(snapshot: &Snapshot, key: &str, recursive: bool) -> Result<Value, ModelError> {
    check_keys(snapshot, key)?;
    if recursive {
        return Ok(Value::Object(tree_object(snapshot, key)?));
    }
    if let Some(value) = snapshot.get(key) {
        let mut map = Map::new();
        map.insert(key.to_string(), Value::String(utf8(key, value)?));
        return Ok(Value::Object(map));
    }
    let children = snapshot.children(key);
    if children.is_empty() {
        return Err(ModelError::Missing(key.to_string()));
    }
    Ok(Value::Array(
        children.into_iter().map(Value::String).collect(),
    ))
}

/// Checks `key`'s tree as building its model does (keys and values UTF-8) without building
/// it, for a render that reads the tree from the snapshot ([`crate::template::Data::Tree`]);
/// how many pairs it holds.
pub fn check_tree(snapshot: &Snapshot, key: &str) -> Result<usize, ModelError> {
    check_keys(snapshot, key)?;
    snapshot.tree(key).try_fold(0, |count, (k, v)| {
        std::str::from_utf8(v)
            .map(|_| count + 1)
            .map_err(|_| ModelError::NotUtf8(k.to_string()))
    })
}

/// The model of a tree [`check_tree`] passed.
pub fn checked_tree(snapshot: &Snapshot, key: &str) -> Value {
    let text = |v: &[u8]| Value::String(String::from_utf8_lossy(v).into_owned());
    Value::Object(
        snapshot
            .tree(key)
            .map(|(k, v)| (k.to_string(), text(v)))
            .collect(),
    )
}

/// Trees at least this large are kept between renders ([`refreshed`]): below it, building
/// the model afresh costs less than the memory of keeping it.
pub const KEEP_AT: usize = 64;

/// `data` as [`data`] builds it, from the model of an earlier render of the same entry when
/// there is one: a recursive tree is brought up to date in place (the keys that changed
/// set, the gone ones removed), so an event costs what it changed, not the tree's size.
pub fn refreshed(
    kept: Option<Value>,
    snapshot: &Snapshot,
    key: &str,
    recursive: bool,
) -> Result<Value, ModelError> {
    match kept {
        Some(Value::Object(mut tree)) if recursive => {
            check_keys(snapshot, key)?;
            refresh(&mut tree, snapshot, key)?;
            Ok(Value::Object(tree))
        }
        _ => data(snapshot, key, recursive),
    }
}

/// The model of a render worth keeping for the next one (a tree of [`KEEP_AT`] keys or
/// more).
pub fn worth_keeping(data: Value) -> Option<Value> {
    data.as_object()
        .is_some_and(|tree| tree.len() >= KEEP_AT)
        .then_some(data)
}

/// Brings `tree` (the object of `key`'s tree, keys in order) in line with `snapshot`: one
/// walk over both in key order, allocating only for what differs.
fn refresh(
    tree: &mut Map<String, Value>,
    snapshot: &Snapshot,
    key: &str,
) -> Result<(), ModelError> {
    let (mut gone, mut set) = (Vec::new(), Vec::new());
    let mut kept = tree.iter().peekable();
    for (k, v) in snapshot.tree(key) {
        while let Some((old, _)) = kept.next_if(|(old, _)| old.as_str() < k) {
            gone.push(old.clone());
        }
        match kept.next_if(|(old, _)| old.as_str() == k) {
            Some((_, Value::String(old))) if old.as_bytes() == v => {}
            _ => set.push((k.to_string(), Value::String(utf8(k, v)?))),
        }
    }
    gone.extend(kept.map(|(old, _)| old.clone()));
    for old in gone {
        tree.remove(&old);
    }
    tree.extend(set);
    Ok(())
}

/// `altdata`: each name → the object of its key's tree, `{}` when nothing is there.
pub fn altdata(
    snapshot: &Snapshot,
    altkeys: &BTreeMap<String, String>,
) -> Result<Value, ModelError> {
    let mut out = Map::new();
    for (name, key) in altkeys {
        check_keys(snapshot, key)?;
        out.insert(name.clone(), Value::Object(tree_object(snapshot, key)?));
    }
    Ok(Value::Object(out))
}

/// Fails when the tree of `key` holds a key that is not UTF-8.
fn check_keys(snapshot: &Snapshot, key: &str) -> Result<(), ModelError> {
    match snapshot.not_utf8_in(key) {
        Some(bad) => Err(ModelError::KeyNotUtf8(bad)),
        None => Ok(()),
    }
}

fn tree_object(snapshot: &Snapshot, key: &str) -> Result<Map<String, Value>, ModelError> {
    snapshot
        .tree(key)
        .map(|(k, v)| Ok((k.to_string(), Value::String(utf8(k, v)?))))
        .collect()
}

fn utf8(key: &str, value: &[u8]) -> Result<String, ModelError> {
    String::from_utf8(value.to_vec()).map_err(|_| ModelError::NotUtf8(key.to_string()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use serde_json::json;

    fn snap(pairs: &[(&str, &str)]) -> Snapshot {
        Snapshot::of(7, pairs)
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
            data(&s, "/a", true).unwrap(),
            json!({"/a": "0", "/a/b": "1", "/a/c/d": "2"})
        );
    }

    #[test]
    fn leaf_value_is_a_one_key_object() {
        let s = snap(&[("/k", "v"), ("/k/x", "ignored")]);
        assert_eq!(data(&s, "/k", false).unwrap(), json!({"/k": "v"}));
    }

    #[test]
    fn directory_without_value_lists_immediate_children() {
        let s = snap(&[
            ("/d/a", "1"),
            ("/d/b/c", "2"),
            ("/d/b/d", "3"),
            ("/dx", "no"),
        ]);
        assert_eq!(data(&s, "/d", false).unwrap(), json!(["/d/a", "/d/b"]));
    }

    #[test]
    fn nothing_at_a_key_is_missing_but_an_empty_tree_is_empty_data() {
        let s = snap(&[("/other", "1")]);
        assert_eq!(data(&s, "/k", false), Err(ModelError::Missing("/k".into())));
        assert_eq!(data(&s, "/k", true), Ok(json!({})));
    }

    #[test]
    fn a_key_that_is_not_utf8_fails_only_the_trees_holding_it() {
        let s = Snapshot::of(
            1,
            &[
                (&b"/big/\xfe"[..], "inside"),
                (b"/big/b", "2"),
                (b"/small.\xff", "beside"),
                (b"/small/a", "1"),
            ],
        );
        assert_eq!(data(&s, "/small", true), Ok(json!({"/small/a": "1"})));
        assert_eq!(
            data(&s, "/big", true),
            Err(ModelError::KeyNotUtf8(r"/big/\xfe".into()))
        );
        let alt = BTreeMap::from([("b".to_string(), "/big".to_string())]);
        assert!(altdata(&s, &alt).is_err());
        assert_eq!(s.subset(["/small"]).not_utf8_keys().count(), 0);
        assert_eq!(s.subset(["/big"]).not_utf8_keys().count(), 1);
        // The watch agrees with the read: a put adds it, a delete takes it away.
        let mut w = snap(&[("/big/b", "2")]);
        w.apply(8, [(&b"/big/\xfe"[..], Some(&b"x"[..]))]);
        assert!(data(&w, "/big", true).is_err());
        w.apply(9, [(&b"/big/\xfe"[..], None)]);
        assert_eq!(data(&w, "/big", true), Ok(json!({"/big/b": "2"})));
    }

    #[test]
    fn checking_a_tree_fails_as_building_its_model_does() {
        let s = Snapshot::of(
            1,
            &[
                (&b"/bad-key/\xfe"[..], &b"1"[..]),
                (b"/bad-value/a", b"\xff"),
                (b"/bad-value/b", b"\xfe"),
                (b"/good/a", b"1"),
                (b"/good/b/c", b"2"),
            ],
        );
        for key in ["/bad-key", "/bad-value", "/good", "/none", "/"] {
            let built = data(&s, key, true).map(|model| model.as_object().unwrap().len());
            assert_eq!(check_tree(&s, key), built, "{key}");
            if let Ok(model) = data(&s, key, true) {
                assert_eq!(checked_tree(&s, key), model, "{key}");
            }
        }
    }

    #[test]
    fn altdata_is_empty_object_when_absent() {
        let s = snap(&[("/alt/x", "1")]);
        let alt = BTreeMap::from([
            ("a".to_string(), "/alt".to_string()),
            ("b".to_string(), "/none".to_string()),
        ]);
        assert_eq!(
            altdata(&s, &alt).unwrap(),
            json!({"a": {"/alt/x": "1"}, "b": {}})
        );
    }

    #[test]
    fn non_utf8_value_names_the_key() {
        let s = Snapshot::new(1, BTreeMap::from([("/bin".to_string(), vec![0xff, 0xfe])]));
        assert_eq!(
            data(&s, "/bin", false),
            Err(ModelError::NotUtf8("/bin".into()))
        );
    }

    proptest::proptest! {
        /// A kept tree brought up to date is the tree built afresh, key order included.
        #[test]
        fn a_refreshed_tree_is_the_tree_built_afresh(
            before in proptest::collection::btree_map("/t(/[a-c]{1,2}){0,2}|/u|/t-x", "[xy]{0,2}", 0..12),
            after in proptest::collection::btree_map("/t(/[a-c]{1,2}){0,2}|/u|/t-x", "[xy]{0,2}", 0..12),
        ) {
            let pairs = |m: &BTreeMap<String, String>| {
                Snapshot::new(1, m.iter().map(|(k, v)| (k.clone(), v.clone().into_bytes())).collect())
            };
            let (old, new) = (pairs(&before), pairs(&after));
            let fresh = data(&new, "/t", true).unwrap();
            let kept = data(&old, "/t", true).unwrap();
            let refreshed = refreshed(Some(kept), &new, "/t", true).unwrap();
            proptest::prop_assert_eq!(refreshed.to_string(), fresh.to_string());
        }
    }

    #[test]
    fn a_kept_model_is_not_used_for_a_single_value() {
        let s = snap(&[("/k", "v")]);
        let kept = json!({"/k": "old", "/k/x": "1"});
        assert_eq!(
            refreshed(Some(kept), &s, "/k", false).unwrap(),
            json!({"/k": "v"})
        );
    }

    #[test]
    fn only_large_trees_are_kept() {
        let small = json!({"/a": "1"});
        assert_eq!(worth_keeping(small), None);
        let large = Value::Object((0..KEEP_AT).map(|i| (i.to_string(), json!("v"))).collect());
        assert!(worth_keeping(large).is_some());
    }

    #[test]
    fn apply_puts_and_deletes_at_a_revision() {
        let mut s = snap(&[("/a/1", "1"), ("/a/2", "2")]);
        s.apply(9, [(&b"/a/1"[..], None), (&b"/a/3"[..], Some(&b"3"[..]))]);
        assert_eq!(s.revision(), 9);
        assert_eq!(
            data(&s, "/a", true).unwrap(),
            json!({"/a/2": "2", "/a/3": "3"})
        );
    }
}
