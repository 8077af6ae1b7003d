//! The target directory's layout, Kubernetes' "atomic writer" one, so that a reader sees all
//! of a transaction or none of it:
//!
//! ```text
//! TARGET/..rev42.Xk3u9a/tls.key      the files of one version, written once, never changed
//! TARGET/..rev42.Xk3u9a/sub/ca.pem
//! TARGET/..data -> ..rev42.Xk3u9a    the published version: one symlink, swapped atomically
//! TARGET/tls.key -> ..data/tls.key   stable names, one per top-level name
//! TARGET/sub -> ..data/sub
//! ```
//!
//! A new version is a fresh directory holding every file, synced, and published by renaming
//! a new `..data_tmp` symlink over `..data`: every stable name then resolves into the new
//! version at once. Links for new names are added after the swap, everything else in the
//! target (the previous versions, names that are gone, stray files) is removed.
//!
//! A publish costs what changed: a file whose bytes are those of the version this layout
//! published last is a hard link to that version's file, not a copy. That is safe because
//! no file of a version is ever written again (a version's files are only ever created,
//! then removed with it), and because those files were written by this process with the
//! same mode and owner. A version found on disk at start is not trusted (other perms, edits
//! by hand): the first publish writes every file. Changed and new files are created with
//! their final mode and owner before the first byte is written, so a secret is never
//! readable by anyone else, not even for a moment.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs::{self, DirBuilder, Permissions};
use std::io;
use std::os::unix::fs::{symlink, DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tracing::{debug, info, warn};

use super::payload::Payload;
use crate::fsx::{self, Perms};

/// The symlink naming the published version.
const DATA: &str = "..data";
/// The new `..data` before it is renamed over the old one.
const DATA_TMP: &str = "..data_tmp";
/// A new stable link before it is renamed into place.
const LINK_TMP: &str = "..link_tmp";
/// Mode of the directories: readable and searchable, so the files' own mode decides.
const DIR_MODE: u32 = 0o755;
/// Random characters that make a version directory's name unique.
const RANDOM_CHARS: usize = 6;
/// Why a version could not be published; names the path and what was being done. The
/// previously published version stays in place and the new one is removed.
#[derive(Debug, thiserror::Error)]
#[error("{}: cannot {action}: {source}", .path.display())]
pub struct LayoutError {
    /// The file, directory or link concerned.
    pub path: PathBuf,
    /// What failed, e.g. `create file`.
    pub action: &'static str,
    /// The operating system's reason.
    pub source: io::Error,
}

/// Wraps an `io::Result` with the path and action for the message.
trait Context<T> {
    fn context(self, path: &Path, action: &'static str) -> Result<T, LayoutError>;
}

impl<T> Context<T> for io::Result<T> {
    fn context(self, path: &Path, action: &'static str) -> Result<T, LayoutError> {
        self.map_err(|source| LayoutError {
            path: path.to_path_buf(),
            action,
            source,
        })
    }
}

/// A target directory in the atomic layout.
#[derive(Debug)]
pub struct Layout {
    dir: PathBuf,
    perms: Perms,
    /// The version this layout published last, the only one whose files are linked into
    /// the next.
    live: Option<Live>,
}

/// The published version as this layout wrote it.
#[derive(Debug)]
struct Live {
    /// The version directory's name.
    name: String,
    payload: Payload,
    /// Top-level names whose stable link could not be made; made at the next publish.
    unlinked: BTreeSet<String>,
}

/// A version that went live.
#[derive(Debug)]
pub struct Version {
    /// The version directory's name.
    pub name: String,
    /// How many of its files are the previous version's, linked rather than written.
    pub linked: usize,
}

impl Layout {
    /// The layout of `dir`, whose files get `perms`.
    pub fn new(dir: PathBuf, perms: Perms) -> Layout {
        Layout {
            dir,
            perms,
            live: None,
        }
    }

    /// The files of the version this layout published last.
    pub fn published(&self) -> Option<&Payload> {
        self.live.as_ref().map(|live| &live.payload)
    }

    /// Writes `payload` as a new version named after `revision`, publishes it, and removes
    /// everything that is not part of it. On error nothing was published: the previous
    /// version stays and the new one is removed. Once published, a link or clean-up that
    /// fails is a warning (and retried at the next publish).
    pub fn publish(&mut self, payload: Payload, revision: i64) -> Result<Version, LayoutError> {
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&self.dir)
            .context(&self.dir, "create the target directory")?;
        let name = self.create_version(revision)?;
        let version_dir = self.dir.join(&name);
        let written = self
            .write_version(&version_dir, &payload)
            .and_then(|linked| self.swap_data(&name).map(|()| linked));
        let linked = match written {
            Ok(linked) => linked,
            Err(e) => {
                remove_or_warn(&version_dir);
                return Err(e);
            }
        };
        let unlinked = self.tidy(&name, &payload);
        self.live = Some(Live {
            name: name.clone(),
            payload,
            unlinked,
        });
        Ok(Version { name, linked })
    }

    /// Creates an empty, uniquely named version directory.
    fn create_version(&self, revision: i64) -> Result<String, LayoutError> {
        let prefix = format!("..rev{revision}.");
        let (path, ()) = fsx::unique(&self.dir, OsStr::new(&prefix), RANDOM_CHARS, make_dir)
            .context(&self.dir, "create the version directory")?;
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        Ok(name.into_owned())
    }

    /// Puts every file of `payload` below `version_dir`, linking those the live version
    /// has with the same bytes and writing the others, and syncs the new directory entries
    /// (and the written files) to disk; returns how many files were linked.
    fn write_version(&self, version_dir: &Path, payload: &Payload) -> Result<usize, LayoutError> {
        let live = self
            .live
            .as_ref()
            .map(|live| (self.dir.join(&live.name), &live.payload));
        let mut dirs = BTreeSet::new();
        let mut linked = 0;
        for (path, bytes) in payload.files() {
            let file = version_dir.join(path);
            let mut parent = version_dir.to_path_buf();
            for segment in path.split('/').take(path.split('/').count() - 1) {
                parent.push(segment);
                if dirs.insert(parent.clone()) {
                    make_dir(&parent).context(&parent, "create directory")?;
                }
            }
            let unchanged = live
                .as_ref()
                .filter(|(_, files)| files.get(path) == Some(bytes))
                .map(|(dir, _)| dir.join(path));
            if let Some(old) = unchanged {
                // Its data is on disk since it was written; only the new entry needs syncing.
                match fs::hard_link(&old, &file) {
                    Ok(()) => {
                        linked += 1;
                        continue;
                    }
                    Err(e) => debug!("{}: cannot link ({e}), writing it anew", old.display()),
                }
            }
            fsx::write_new(&file, bytes, &self.perms)
                .map_err(io::Error::from)
                .context(&file, "write file")?;
        }
        for dir in dirs.iter().rev() {
            sync_dir(dir)?;
        }
        sync_dir(version_dir)?;
        Ok(linked)
    }

    /// Points `..data` at `version` in one rename.
    fn swap_data(&self, version: &str) -> Result<(), LayoutError> {
        let tmp = self.dir.join(DATA_TMP);
        remove_if_present(&tmp).context(&tmp, "remove the old temporary link")?;
        symlink(version, &tmp).context(&tmp, "create link")?;
        let data = self.dir.join(DATA);
        fs::rename(&tmp, &data).context(&data, "publish the new version")
    }

    /// Makes `TARGET/name` the link `..data/name`, replacing whatever else is there.
    fn link(&self, name: &str) -> Result<(), LayoutError> {
        let path = self.dir.join(name);
        let wanted = Path::new(DATA).join(name);
        let existing = fs::symlink_metadata(&path).ok();
        if let Some(meta) = &existing {
            if meta.file_type().is_symlink() && fs::read_link(&path).ok() == Some(wanted.clone()) {
                return Ok(());
            }
        }
        let tmp = self.dir.join(LINK_TMP);
        remove_if_present(&tmp).context(&tmp, "remove the old temporary link")?;
        symlink(&wanted, &tmp).context(&tmp, "create link")?;
        if existing.is_some_and(|meta| meta.is_dir()) {
            // A real directory (an older tool's layout) cannot be renamed over; it goes first.
            info!("replacing directory {} by a link", path.display());
            fs::remove_dir_all(&path).context(&path, "remove directory")?;
        }
        fs::rename(&tmp, &path).context(&path, "create link")
    }

    /// Gives every top-level name of `payload` its stable link and removes from the target
    /// everything but `..data`, `version` and those links: previous versions, links of names
    /// that are gone, leftovers of an interrupted run, and files of an older tool. A link
    /// this layout made at the previous publish is left alone while it is there; any other
    /// name is checked (on the first publish, all of them). Failures only leave clutter or
    /// a missing name, so they are warnings; returns the names left without their link.
    fn tidy(&self, version: &str, payload: &Payload) -> BTreeSet<String> {
        let names = payload.top_names();
        let made: BTreeSet<&str> = match &self.live {
            Some(live) => live
                .payload
                .top_names()
                .into_iter()
                .filter(|n| !live.unlinked.contains(*n))
                .collect(),
            None => BTreeSet::new(),
        };
        let mut to_link = names.clone();
        match fs::read_dir(&self.dir) {
            Ok(entries) => {
                for entry in entries.flatten() {
                    let name = entry.file_name();
                    let name = name.to_str();
                    if let Some(n) = name.filter(|n| names.contains(n)) {
                        if made.contains(n) && entry.file_type().is_ok_and(|t| t.is_symlink()) {
                            to_link.remove(n);
                        }
                        continue;
                    }
                    if name.is_some_and(|n| n == DATA || n == version) {
                        continue;
                    }
                    let path = entry.path();
                    if !name.is_some_and(|n| n.starts_with("..")) {
                        match fs::read_link(&path) {
                            Ok(link) if link.starts_with(DATA) => {
                                info!("removing {}: its key is gone", path.display());
                            }
                            _ => warn!("removing {}: not from etcd", path.display()),
                        }
                    }
                    remove_or_warn(&path);
                }
            }
            Err(e) => warn!("{}: cannot list for clean-up: {e}", self.dir.display()),
        }
        let unlinked = to_link
            .into_iter()
            .filter(|name| self.link(name).inspect_err(|e| warn!("{e}")).is_err())
            .map(str::to_string)
            .collect();
        if let Err(e) = sync_dir(&self.dir) {
            warn!("{e}");
        }
        unlinked
    }
}

/// Creates a directory with exactly [`DIR_MODE`], whatever the umask.
fn make_dir(path: &Path) -> io::Result<()> {
    DirBuilder::new().mode(DIR_MODE).create(path)?;
    fs::set_permissions(path, Permissions::from_mode(DIR_MODE))
}

/// Makes the entries of `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), LayoutError> {
    fsx::sync_dir(dir).context(dir, "sync directory")
}

/// Removes a directory tree, file or link at `path` (never following a link); nothing
/// there is fine.
fn remove_if_present(path: &Path) -> io::Result<()> {
    let result = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match result {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// [`remove_if_present`], warning on failure: what is left is clutter, not an error.
fn remove_or_warn(path: &Path) {
    if let Err(e) = remove_if_present(path) {
        warn!("{}: cannot remove: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;
    use crate::etcd::Snapshot;

    fn payload(pairs: &[(&str, &str)]) -> Payload {
        let kvs = pairs
            .iter()
            .map(|(k, v)| (format!("/p/{k}"), v.as_bytes().to_vec()))
            .collect();
        Payload::build("/p", &Snapshot::new(1, kvs)).0
    }

    fn perms(mode: u32) -> Perms {
        Perms {
            mode,
            uid: None,
            gid: None,
        }
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn stable_names_resolve_into_the_published_version() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("t");
        let mut layout = Layout::new(target.clone(), perms(0o640));
        let v1 = layout
            .publish(payload(&[("tls.key", "k1"), ("sub/ca.pem", "ca1")]), 5)
            .unwrap()
            .name;
        assert!(v1.starts_with("..rev5."), "{v1}");
        assert_eq!(entries(&target), ["..data", &v1, "sub", "tls.key"]);
        assert_eq!(fs::read_link(target.join(DATA)).unwrap(), Path::new(&v1));
        assert_eq!(
            fs::read_link(target.join("tls.key")).unwrap(),
            Path::new("..data/tls.key")
        );
        assert_eq!(
            fs::read_to_string(target.join("sub/ca.pem")).unwrap(),
            "ca1"
        );
        let meta = fs::metadata(target.join("tls.key")).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o640);
        let dir_meta = fs::metadata(target.join("sub")).unwrap();
        assert_eq!(dir_meta.mode() & 0o7777, DIR_MODE);

        let v2 = layout
            .publish(payload(&[("tls.key", "k2"), ("new", "n")]), 6)
            .unwrap()
            .name;
        assert_eq!(entries(&target), ["..data", &v2, "new", "tls.key"]);
        assert_eq!(fs::read_to_string(target.join("tls.key")).unwrap(), "k2");
    }

    #[test]
    fn stray_entries_and_old_layouts_are_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().to_path_buf();
        // What etcd-config-dispenser left: plain files and directories, and clutter.
        fs::write(target.join("tls.key"), "old plain file").unwrap();
        fs::create_dir_all(target.join("sub/deeper")).unwrap();
        fs::write(target.join("sub/deeper/x"), "old").unwrap();
        fs::write(target.join("gone.pem"), "no key").unwrap();
        fs::create_dir(target.join("..rev1.crashed")).unwrap();
        symlink("nowhere", target.join(DATA_TMP)).unwrap();
        symlink("..rev1.crashed/tls.crt", target.join("tls.crt")).unwrap();

        let mut layout = Layout::new(target.clone(), perms(0o600));
        let files = [("tls.key", "k"), ("tls.crt", "c"), ("sub/a", "a")];
        let v = layout.publish(payload(&files), 9).unwrap().name;
        assert_eq!(
            entries(&target),
            ["..data", &v, "sub", "tls.crt", "tls.key"]
        );
        assert_eq!(fs::read_to_string(target.join("tls.key")).unwrap(), "k");
        assert_eq!(fs::read_to_string(target.join("tls.crt")).unwrap(), "c");
        assert_eq!(entries(&target.join("sub")), ["a"]);
    }

    #[test]
    fn an_empty_payload_empties_the_target() {
        let tmp = tempfile::tempdir().unwrap();
        let mut layout = Layout::new(tmp.path().to_path_buf(), perms(0o600));
        layout.publish(payload(&[("a", "1")]), 1).unwrap();
        let v = layout.publish(payload(&[]), 2).unwrap().name;
        assert_eq!(entries(tmp.path()), ["..data", &v]);
        assert!(entries(&tmp.path().join(&v)).is_empty());
    }

    #[test]
    fn a_failed_write_keeps_the_published_version() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().to_path_buf();
        let mut layout = Layout::new(target.clone(), perms(0o600));
        let v1 = layout.publish(payload(&[("a", "1")]), 1).unwrap().name;
        // A name no file system takes, which the payload's own checks would have refused.
        let unwritable = Payload::from_files([("a", "2"), ("b\0", "x")]);
        let err = layout.publish(unwritable, 2).unwrap_err();
        assert!(err.to_string().contains("cannot write file"), "{err}");
        assert_eq!(entries(&target), ["..data", &v1, "a"]);
        assert_eq!(fs::read_to_string(target.join("a")).unwrap(), "1");
    }

    #[test]
    fn leftovers_of_an_interrupted_run_do_not_block_publishing() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().to_path_buf();
        fs::create_dir_all(target.join(DATA_TMP).join("x")).unwrap();
        fs::create_dir(target.join(LINK_TMP)).unwrap();
        let mut layout = Layout::new(target.clone(), perms(0o600));
        let v = layout.publish(payload(&[("a", "1")]), 1).unwrap().name;
        assert_eq!(entries(&target), ["..data", &v, "a"]);
    }

    /// Inode of the file `name` in the published version.
    fn inode(target: &Path, name: &str) -> u64 {
        fs::metadata(target.join(DATA).join(name)).unwrap().ino()
    }

    #[test]
    fn unchanged_files_are_the_previous_versions_and_the_others_new() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().to_path_buf();
        let mut layout = Layout::new(target.clone(), perms(0o640));
        let first = [("a", "1"), ("sub/b", "2"), ("sub/deep/c", "3"), ("d", "4")];
        layout.publish(payload(&first), 1).unwrap();
        let before: Vec<u64> = ["a", "sub/b", "sub/deep/c"]
            .iter()
            .map(|f| inode(&target, f))
            .collect();

        let second = [
            ("a", "1"),
            ("sub/b", "two"),
            ("sub/deep/c", "3"),
            ("e", "5"),
        ];
        let v = layout.publish(payload(&second), 2).unwrap();
        assert_eq!(v.linked, 2);
        assert_eq!(inode(&target, "a"), before[0]);
        assert_eq!(inode(&target, "sub/deep/c"), before[2]);
        let written = [inode(&target, "sub/b"), inode(&target, "e")];
        assert!(written.iter().all(|i| !before.contains(i)), "{written:?}");
        assert_eq!(entries(&target), ["..data", &v.name, "a", "e", "sub"]);
        for (file, content) in second {
            assert_eq!(fs::read_to_string(target.join(file)).unwrap(), content);
            let meta = fs::metadata(target.join(file)).unwrap();
            assert_eq!(meta.mode() & 0o7777, 0o640, "{file}");
            // The previous version is gone: each file has the one name, in the live version.
            assert_eq!(meta.nlink(), 1, "{file}");
        }
    }

    #[test]
    fn a_version_found_on_disk_is_never_linked() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().to_path_buf();
        let files = [("a", "1"), ("sub/b", "2")];
        Layout::new(target.clone(), perms(0o640))
            .publish(payload(&files), 1)
            .unwrap();
        let before = [inode(&target, "a"), inode(&target, "sub/b")];

        // Another run, with another mode: the files on disk are not its own.
        let mut layout = Layout::new(target.clone(), perms(0o600));
        let v = layout.publish(payload(&files), 2).unwrap();
        assert_eq!(v.linked, 0);
        for file in ["a", "sub/b"] {
            assert!(!before.contains(&inode(&target, file)), "{file}");
            let meta = fs::metadata(target.join(file)).unwrap();
            assert_eq!(meta.mode() & 0o7777, 0o600, "{file}");
        }
    }

    #[test]
    fn after_a_failed_publish_the_live_version_is_still_linked_from() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().to_path_buf();
        let mut layout = Layout::new(target.clone(), perms(0o600));
        layout.publish(payload(&[("a", "1")]), 1).unwrap();
        let before = inode(&target, "a");
        let unwritable = Payload::from_files([("a", "1"), ("b\0", "x")]);
        layout.publish(unwritable, 2).unwrap_err();
        let v = layout
            .publish(payload(&[("a", "1"), ("b", "2")]), 3)
            .unwrap();
        assert_eq!(v.linked, 1);
        assert_eq!(inode(&target, "a"), before);
        assert_eq!(fs::read_to_string(target.join("b")).unwrap(), "2");
    }

    #[test]
    fn what_was_removed_by_hand_is_written_and_linked_again() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().to_path_buf();
        let mut layout = Layout::new(target.clone(), perms(0o600));
        layout
            .publish(payload(&[("a", "1"), ("b", "2"), ("c", "3")]), 1)
            .unwrap();
        fs::remove_file(target.join(DATA).join("a")).unwrap();
        fs::remove_file(target.join("b")).unwrap();
        fs::remove_file(target.join("c")).unwrap();
        fs::create_dir(target.join("c")).unwrap();
        let v = layout
            .publish(
                payload(&[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")]),
                2,
            )
            .unwrap();
        assert_eq!(v.linked, 2);
        assert_eq!(entries(&target), ["..data", &v.name, "a", "b", "c", "d"]);
        for (file, content) in [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")] {
            assert_eq!(fs::read_to_string(target.join(file)).unwrap(), content);
        }
    }
}
