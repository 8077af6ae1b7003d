//! The v2 tree as the copy sees it: every key with a value at its full path (directories
//! are only the paths of their children, as v3 prefixes are), each with the moment it
//! expires when it or a directory above it has a TTL; and what it takes to bring a copy of
//! one tree in step with a newer one.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::api::{Node, Read};

/// Two expiries closer than this are the same: v2 gives TTLs in whole seconds.
const SAME_EXPIRY: Duration = Duration::from_secs(1);

/// A key's value and expiry, as v2 has it, and the v3 lease it was written with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    /// The value, byte for byte (v2 values are strings).
    pub value: String,
    /// When v2 expires it, if ever.
    pub expires: Option<Instant>,
    /// The v3 lease it was written with (0: none, or not written yet).
    pub lease: i64,
}

/// The keys of a v2 tree, and its directories that expire.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    /// Full key → value and expiry.
    pub keys: BTreeMap<String, Copied>,
    /// Directories with a TTL → when they expire (with everything below them).
    pub dirs: BTreeMap<String, Instant>,
}

/// What brings one tree in step with a newer one.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Keys to write (new, with another value, or another expiry).
    pub puts: Vec<(String, Copied)>,
    /// Keys to delete.
    pub deletes: Vec<String>,
}

impl Tree {
    /// The keys of a tree as read: each key's expiry is the earliest of its own and its
    /// directories'.
    pub fn of(read: &Read) -> Tree {
        let mut tree = Tree::default();
        tree.add(&read.root, None, read.at);
        tree
    }

    fn add(&mut self, node: &Node, above: Option<Instant>, at: Instant) {
        let own = node.ttl.map(|ttl| at + seconds(ttl));
        let expires = earliest(above, own);
        let key = node.key.clone().unwrap_or_else(|| "/".into());
        if node.dir {
            if let Some(own) = own {
                self.dirs.insert(key, own);
            }
            for child in &node.nodes {
                self.add(child, expires, at);
            }
        } else {
            let value = node.value.clone().unwrap_or_default();
            let lease = 0;
            self.keys.insert(
                key,
                Copied {
                    value,
                    expires,
                    lease,
                },
            );
        }
    }

    /// The changes that bring the part of this tree at and below `root` in step with
    /// `newer` (a fresh read of that part).
    pub fn changes_to(&self, root: &str, newer: &Tree) -> Changes {
        let mut changes = Changes::default();
        for (key, _) in self.within(root) {
            if !newer.keys.contains_key(key) {
                changes.deletes.push(key.clone());
            }
        }
        for (key, fresh) in &newer.keys {
            let same = self
                .keys
                .get(key)
                .is_some_and(|old| old.value == fresh.value && same_expiry(old, fresh));
            if !same {
                changes.puts.push((key.clone(), fresh.clone()));
            }
        }
        changes
    }

    /// Records written changes (keys deleted, keys put with their leases).
    pub fn take(&mut self, changes: Changes) {
        for key in changes.deletes {
            self.keys.remove(&key);
        }
        self.keys.extend(changes.puts);
    }

    /// Takes `dirs` as the directories that expire at and below `root`.
    pub fn take_dirs(&mut self, root: &str, dirs: BTreeMap<String, Instant>) {
        self.dirs.retain(|dir, _| !in_tree(root, dir));
        self.dirs.extend(dirs);
    }

    /// A key set to `value` by a change read at `at`, with its own TTL: its expiry also
    /// counts the directories above it that expire.
    pub fn set(&self, key: &str, value: String, ttl: Option<i64>, at: Instant) -> Copied {
        let own = ttl.map(|ttl| at + seconds(ttl));
        let above = self
            .dirs
            .iter()
            .filter(|(dir, _)| in_tree(dir, key) && dir.as_str() != key)
            .map(|(_, expires)| *expires)
            .min();
        Copied {
            value,
            expires: earliest(above, own),
            lease: 0,
        }
    }

    /// The keys at and below `root` (a key, or a directory of them).
    pub fn within<'a>(&'a self, root: &'a str) -> impl Iterator<Item = (&'a String, &'a Copied)> {
        self.keys.iter().filter(move |(key, _)| in_tree(root, key))
    }
}

/// Whether `key` is `root` or below it (`/` holds every key).
pub fn in_tree(root: &str, key: &str) -> bool {
    let root = root.trim_end_matches('/');
    key == root
        || key
            .strip_prefix(root)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn same_expiry(a: &Copied, b: &Copied) -> bool {
    match (a.expires, b.expires) {
        (None, None) => true,
        (Some(a), Some(b)) => a.max(b) - a.min(b) < SAME_EXPIRY,
        _ => false,
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A v2 TTL as a duration; v2 reports a key past its expiry but not yet swept as 0 or less.
fn seconds(ttl: i64) -> Duration {
    Duration::from_secs(u64::try_from(ttl).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(key: &str, value: &str, ttl: Option<i64>) -> Node {
        Node {
            key: Some(key.into()),
            value: Some(value.into()),
            ttl,
            ..Node::default()
        }
    }

    fn dir(key: Option<&str>, ttl: Option<i64>, nodes: Vec<Node>) -> Node {
        Node {
            key: key.map(str::to_string),
            dir: true,
            nodes,
            ttl,
            ..Node::default()
        }
    }

    fn read(root: Node) -> Read {
        Read {
            root,
            index: 7,
            at: Instant::now(),
        }
    }

    #[test]
    fn directories_become_the_paths_of_their_keys() {
        let root = dir(
            None,
            None,
            vec![
                dir(
                    Some("/a"),
                    None,
                    vec![dir(Some("/a/b"), None, vec![value("/a/b/c", "1", None)])],
                ),
                dir(Some("/empty"), None, vec![]),
                value("/top", "", None),
            ],
        );
        let tree = Tree::of(&read(root));
        let keys: Vec<(&str, &str)> = tree
            .keys
            .iter()
            .map(|(k, c)| (k.as_str(), c.value.as_str()))
            .collect();
        assert_eq!(keys, [("/a/b/c", "1"), ("/top", "")]);
        assert!(tree.dirs.is_empty());
    }

    #[test]
    fn a_key_expires_with_the_earliest_of_its_own_ttl_and_its_directories() {
        let read = read(dir(
            None,
            None,
            vec![
                dir(
                    Some("/d"),
                    Some(20),
                    vec![
                        value("/d/long", "x", Some(60)),
                        value("/d/short", "x", Some(5)),
                        value("/d/none", "x", None),
                    ],
                ),
                value("/free", "x", None),
            ],
        ));
        let tree = Tree::of(&read);
        let expires = |k: &str| tree.keys[k].expires.map(|e| (e - read.at).as_secs());
        assert_eq!(expires("/d/long"), Some(20));
        assert_eq!(expires("/d/short"), Some(5));
        assert_eq!(expires("/d/none"), Some(20));
        assert_eq!(expires("/free"), None);
        assert_eq!(tree.dirs.keys().collect::<Vec<_>>(), ["/d"]);
        let later = tree.set("/d/new", "y".into(), None, read.at);
        assert_eq!(later.expires, Some(read.at + Duration::from_secs(20)));
        let outside = tree.set("/dx", "y".into(), Some(3), read.at);
        assert_eq!(outside.expires, Some(read.at + Duration::from_secs(3)));
    }

    #[test]
    fn changes_cover_new_changed_and_gone_keys_within_the_root_only() {
        let at = Instant::now();
        let old = Tree::of(&Read {
            root: dir(
                None,
                None,
                vec![
                    value("/a/same", "1", None),
                    value("/a/changed", "1", None),
                    value("/a/gone", "1", None),
                    value("/a/ttl", "1", Some(30)),
                    value("/b/outside", "1", None),
                ],
            ),
            index: 1,
            at,
        });
        let newer = Tree::of(&Read {
            root: dir(
                Some("/a"),
                None,
                vec![
                    value("/a/same", "1", None),
                    value("/a/changed", "2", None),
                    value("/a/new", "", None),
                    value("/a/ttl", "1", Some(90)),
                ],
            ),
            index: 2,
            at,
        });
        let changes = old.changes_to("/a", &newer);
        let puts: Vec<&str> = changes.puts.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(puts, ["/a/changed", "/a/new", "/a/ttl"]);
        assert_eq!(changes.deletes, ["/a/gone"]);
        let mut copy = old.clone();
        copy.take(changes);
        assert_eq!(copy.changes_to("/a", &newer), Changes::default());
        assert!(copy.keys.contains_key("/b/outside") && !copy.keys.contains_key("/a/gone"));
    }

    #[test]
    fn a_tree_is_its_root_and_what_lies_below() {
        assert!(in_tree("/", "/x") && in_tree("/a", "/a") && in_tree("/a/", "/a/b"));
        assert!(!in_tree("/a", "/ab") && !in_tree("/a/b", "/a"));
        let mut tree = Tree::of(&read(dir(
            None,
            None,
            vec![
                value("/a", "1", None),
                value("/ab", "1", None),
                dir(Some("/d"), Some(9), vec![value("/d/x", "1", None)]),
            ],
        )));
        let within = |tree: &Tree, root| {
            tree.within(root)
                .map(|(k, _)| k.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(within(&tree, "/d"), ["/d/x"]);
        assert_eq!(within(&tree, "/a"), ["/a"]);
        assert_eq!(within(&tree, "/").len(), 3);
        tree.take_dirs("/d", BTreeMap::new());
        assert!(tree.dirs.is_empty());
    }
}
