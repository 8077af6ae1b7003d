//! From etcd keys to file paths: which keys under the prefix become which files, and which
//! keys are refused because their path would be unsafe.
//!
//! A key's file is its path relative to the prefix. Only plain relative paths are accepted:
//! no absolute path, no empty, `.` or `..` segment, no NUL byte, no segment longer than a
//! file name may be, and no top-level name starting with `..` (the layout's own names,
//! `..data` and the versions, start so). Anything else could leave the target directory or
//! collide with the layout, so it is refused and never written.

use std::collections::{BTreeMap, BTreeSet};

use crate::etcd::{dir_prefix, Snapshot};

/// Longest file name Linux file systems accept, in bytes.
const NAME_MAX: usize = 255;
/// Longest relative path accepted: the target's own path and the version directory's
/// name must still fit in Linux's 4096-byte `PATH_MAX`.
const PATH_LIMIT: usize = 2048;

/// Why a key's path is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    /// `PREFIX/` itself, or a key ending in `/`.
    #[error("its path below the prefix is empty")]
    Empty,
    /// `PREFIX//x`: the path would be `/x`.
    #[error("its path below the prefix is absolute")]
    Absolute,
    /// `a//b` or `a/`.
    #[error("its path has an empty segment")]
    EmptySegment,
    /// `a/../b`, `./a`: the path would not be what it looks like, or leave the target.
    #[error("its path has a '.' or '..' segment")]
    DotSegment,
    /// `..data`, `..x`: the layout's own names start with `..`.
    #[error("its name starts with '..', which the directory layout reserves")]
    Reserved,
    /// File names cannot hold a NUL byte.
    #[error("its path contains a NUL byte")]
    Nul,
    /// Longer than a file name or path may be.
    #[error("its path is too long (at most {PATH_LIMIT} bytes, {NAME_MAX} per segment)")]
    TooLong,
    /// `a/b` when `a` holds a value: `a` cannot be a file and a directory at once.
    #[error("{0} is a file, so it cannot be a directory too")]
    BelowFile(String),
    /// Paths are text here (logs, the layout's names); a key that is not UTF-8 has none.
    #[error("it is not valid UTF-8")]
    NotUtf8,
}

/// A key that is not written, and why; logged once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key {key} refused: {reason}; not written")]
pub struct Refused {
    /// The full etcd key (escaped when it is not UTF-8).
    pub key: String,
    /// What is wrong with its path.
    pub reason: Reason,
}

/// The files of one revision of the prefix: relative path → bytes, sorted by path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Payload {
    files: BTreeMap<String, Vec<u8>>,
}

impl Payload {
    /// The files for the keys below `prefix/` in `snapshot`, and the keys refused. The key
    /// `prefix` itself is the directory, not a file, and is skipped.
    pub fn build(prefix: &str, snapshot: &Snapshot) -> (Payload, Vec<Refused>) {
        let below = dir_prefix(prefix);
        let mut files = BTreeMap::new();
        let mut refused = Vec::new();
        for (key, value) in snapshot.tree(prefix) {
            let Some(path) = key.strip_prefix(&below) else {
                continue;
            };
            let checked = check_path(path).and_then(|()| match file_ancestor(&files, path) {
                Some(file) => Err(Reason::BelowFile(file.to_string())),
                None => Ok(()),
            });
            match checked {
                Ok(()) => {
                    files.insert(path.to_string(), value.to_vec());
                }
                Err(reason) => refused.push(Refused {
                    key: key.to_string(),
                    reason,
                }),
            }
        }
        let not_utf8 = snapshot.not_utf8_keys().map(|key| Refused {
            key,
            reason: Reason::NotUtf8,
        });
        refused.extend(not_utf8);
        (Payload { files }, refused)
    }

    /// Every file: relative path and bytes, sorted by path.
    pub fn files(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.files.iter().map(|(p, b)| (p.as_str(), b.as_slice()))
    }

    /// The bytes of the file at `path`, if there is one.
    pub fn get(&self, path: &str) -> Option<&[u8]> {
        self.files.get(path).map(Vec::as_slice)
    }

    /// The names directly in the target: files, and the first directory of deeper paths.
    pub fn top_names(&self) -> BTreeSet<&str> {
        self.files
            .keys()
            .map(|p| p.split('/').next().unwrap_or(p))
            .collect()
    }

    /// How many files there are.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there is no file at all.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// A payload of unchecked paths, to test how the layout copes with a failing write.
    #[cfg(test)]
    pub(super) fn from_files<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> Payload {
        let files = files
            .into_iter()
            .map(|(p, b)| (p.to_string(), b.as_bytes().to_vec()))
            .collect();
        Payload { files }
    }
}

/// Accepts only plain relative paths that stay inside the target and off the layout's names.
fn check_path(path: &str) -> Result<(), Reason> {
    if path.is_empty() {
        return Err(Reason::Empty);
    }
    if path.starts_with('/') {
        return Err(Reason::Absolute);
    }
    if path.contains('\0') {
        return Err(Reason::Nul);
    }
    if path.len() > PATH_LIMIT {
        return Err(Reason::TooLong);
    }
    for segment in path.split('/') {
        match segment {
            "" => return Err(Reason::EmptySegment),
            "." | ".." => return Err(Reason::DotSegment),
            s if s.len() > NAME_MAX => return Err(Reason::TooLong),
            _ => {}
        }
    }
    if path.starts_with("..") {
        return Err(Reason::Reserved);
    }
    Ok(())
}

/// The nearest ancestor of `path` that is already a file. Keys sort before the keys below
/// them, so the file always comes first and the deeper key is the one refused.
fn file_ancestor<'a>(files: &'a BTreeMap<String, Vec<u8>>, path: &str) -> Option<&'a str> {
    path.match_indices('/')
        .map(|(i, _)| &path[..i])
        .find_map(|ancestor| files.get_key_value(ancestor).map(|(k, _)| k.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(pairs: &[(&str, &[u8])]) -> Snapshot {
        Snapshot::of(3, pairs)
    }

    #[test]
    fn every_unsafe_path_is_refused_with_its_reason() {
        let cases = [
            ("", Reason::Empty),
            ("/etc/passwd", Reason::Absolute),
            ("../x", Reason::DotSegment),
            ("a/../../x", Reason::DotSegment),
            ("a/..", Reason::DotSegment),
            ("./x", Reason::DotSegment),
            ("a//b", Reason::EmptySegment),
            ("a/", Reason::EmptySegment),
            ("..data", Reason::Reserved),
            ("..2026_01_02", Reason::Reserved),
            ("a\0b", Reason::Nul),
        ];
        for (path, reason) in cases {
            assert_eq!(check_path(path), Err(reason), "{path:?}");
        }
        assert_eq!(check_path(&"x".repeat(256)), Err(Reason::TooLong));
        let deep = vec!["x".repeat(255); 9].join("/");
        assert_eq!(check_path(&deep), Err(Reason::TooLong));
    }

    #[test]
    fn plain_relative_paths_are_accepted() {
        for path in ["tls.key", "a/b/c.pem", ".hidden", "a/..b", "x..y", "é/ü"] {
            assert_eq!(check_path(path), Ok(()), "{path:?}");
        }
        assert_eq!(check_path(&"x".repeat(255)), Ok(()));
    }

    #[test]
    fn files_are_the_keys_below_the_prefix_only() {
        let s = snapshot(&[
            ("/certs", b"the directory itself"),
            ("/certs-x/no", b"sibling"),
            ("/certs/a/b.pem", b"\xff\x00raw"),
            ("/certs/tls.key", b"k"),
            ("/certsX", b"sibling"),
        ]);
        let (payload, refused) = Payload::build("/certs", &s);
        let files: Vec<(&str, &[u8])> = payload.files().collect();
        assert_eq!(
            files,
            [("a/b.pem", &b"\xff\x00raw"[..]), ("tls.key", &b"k"[..])]
        );
        assert!(refused.is_empty(), "{refused:?}");
        assert_eq!(
            payload.top_names().into_iter().collect::<Vec<_>>(),
            ["a", "tls.key"]
        );
    }

    #[test]
    fn refusals_name_the_key_and_a_file_cannot_be_a_directory() {
        let s = snapshot(&[
            ("/p/", b"x"),
            ("/p/../etc/passwd", b"x"),
            ("/p/a", b"file"),
            ("/p/a/b", b"below a file"),
            ("/p/ok", b"fine"),
        ]);
        let (payload, refused) = Payload::build("/p", &s);
        assert_eq!(
            payload.files().map(|(p, _)| p).collect::<Vec<_>>(),
            ["a", "ok"]
        );
        let text: Vec<String> = refused.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "key /p/ refused: its path below the prefix is empty; not written",
                "key /p/../etc/passwd refused: its path has a '.' or '..' segment; not written",
                "key /p/a/b refused: a is a file, so it cannot be a directory too; not written",
            ]
        );
    }

    #[test]
    fn the_root_prefix_mirrors_every_key() {
        let s = snapshot(&[("/a", b"1"), ("/b/c", b"2")]);
        let (payload, refused) = Payload::build("/", &s);
        assert_eq!(payload.len(), 2);
        assert!(refused.is_empty());
    }
}
