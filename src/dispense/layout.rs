//! The target directory's layout, Kubernetes' "atomic writer" one, so that a reader sees all
//! of a transaction or none of it:
//!
//! ```text
//! TARGET/..rev42.Xk3u9a/tls.key      the files of one version, never changed under its name
//! TARGET/..rev42.Xk3u9a/sub/ca.pem
//! TARGET/..data -> ..rev42.Xk3u9a    the published version: one symlink, swapped atomically
//! TARGET/tls.key -> ..data/tls.key   stable names, one per top-level name
//! TARGET/sub -> ..data/sub
//! ```
//!
//! A new version is a directory holding every file, synced, under a name never used before,
//! and published by renaming a new `..data_tmp` symlink over `..data`: every stable name
//! then resolves into the new version at once. Links for new names are added after the
//! swap; everything else in the target (older versions, names that are gone, stray files)
//! is removed, except the version published before, which is kept for the next publish.
//!
//! A crash at any moment leaves `..data` leading to a whole version, the one before or the
//! new one: the new version's files, its directories and its name in the target are
//! synced before the swap, and the swap is synced before anything is removed (without
//! that, a crash could keep a removal and lose the swap). docs/crash-states.md describes
//! the model under which this is checked, and tests/it/crash_states.rs checks it.
//!
//! A publish costs what changed, not the size of the prefix. The version kept from two
//! publishes ago is renamed to the new version's name (a name nothing resolves to yet)
//! and brought up to date: only files whose bytes changed are removed or written; the rest
//! stay as they are. Without such a version (the first publishes, or after it was changed
//! on disk), the new version is a fresh directory where a file whose bytes are those of
//! the live version is a hard link to that version's file, not a copy. Both are safe
//! because no file of a version is ever written in place (a changed file is removed and
//! created anew), and because those files were written by this process with the same
//! mode and owner; a kept version whose directories were changed since (by hand) is not
//! reused, and a version found on disk at start is not trusted: the first publish writes
//! every file. Changed and new files are created with their final mode and owner before
//! the first byte is written, so a secret is never readable by anyone else, not even for
//! a moment.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs::{self, DirBuilder, Permissions};
use std::io;
use std::os::unix::fs::{symlink, DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use fsx::Perms;
use tracing::{debug, info, warn};

use super::payload::Payload;

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
    /// a fresh version.
    live: Option<Live>,
    /// The version published before the live one, kept to be recycled into the next.
    kept: Option<Written>,
}

/// The published version as this layout wrote it.
#[derive(Debug)]
struct Live {
    version: Written,
    /// Top-level names whose stable link could not be made; made at the next publish.
    unlinked: BTreeSet<String>,
}

/// A version directory this layout wrote, with what it holds.
#[derive(Debug)]
struct Written {
    /// The version directory's name.
    name: String,
    payload: Payload,
    /// Each of its directories as it was once written: a change to its entries (a file
    /// removed or added by hand) changes the stamp, and the version is then not reused.
    stamps: Vec<(PathBuf, Stamp)>,
}

/// A directory's identity and the time its entries last changed.
type Stamp = (u64, i64, i64);

/// A version that went live.
#[derive(Debug)]
pub struct Version {
    /// The version directory's name.
    pub name: String,
    /// How many of its files were not written: linked from the live version, or kept in
    /// the recycled one.
    pub reused: usize,
}

impl Layout {
    /// The layout of `dir`, whose files get `perms`.
    pub fn new(dir: PathBuf, perms: Perms) -> Layout {
        Layout {
            dir,
            perms,
            live: None,
            kept: None,
        }
    }

    /// The files of the version this layout published last.
    pub fn published(&self) -> Option<&Payload> {
        self.live.as_ref().map(|live| &live.version.payload)
    }

    /// Writes `payload` as a new version named after `revision`, publishes it, and removes
    /// everything that is not part of it (but the version it replaces). On error nothing
    /// was published: the previous version stays and the new one is removed. Once
    /// published, a link or clean-up that fails is a warning (and retried at the next
    /// publish).
    pub fn publish(&mut self, payload: Payload, revision: i64) -> Result<Version, LayoutError> {
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&self.dir)
            .context(&self.dir, "create the target directory")?;
        let name = self.create_version(revision)?;
        let version_dir = self.dir.join(&name);
        let kept = self.kept.take().filter(|kept| {
            let untouched = kept.untouched(&self.dir);
            if !untouched {
                info!("{}: changed on disk, not reused", kept.name);
            }
            untouched
        });
        let written = match kept {
            Some(kept) => self.recycle(kept, &version_dir, &payload),
            None => self.write_version(&version_dir, &payload),
        }
        .and_then(|reused| {
            let stamps = stamp_dirs(&version_dir, &payload)?;
            // The version's name is durable before anything leads to it.
            sync_dir(&self.dir)?;
            self.swap_data(&name)?;
            Ok((reused, stamps))
        });
        let (reused, stamps) = match written {
            Ok(written) => written,
            Err(e) => {
                remove_or_warn(&version_dir);
                return Err(e);
            }
        };
        // The flip is durable before anything it replaced is removed: a crash never keeps a
        // removal and loses the flip.
        let flipped = sync_dir(&self.dir)
            .inspect_err(|e| warn!("{e}; nothing removed until the next publish"))
            .is_ok();
        let previous = self.live.as_ref().map(|live| live.version.name.as_str());
        let unlinked = self.tidy(&name, previous, &payload, flipped);
        self.kept = self.live.take().map(|live| live.version);
        self.live = Some(Live {
            version: Written {
                name: name.clone(),
                payload,
                stamps,
            },
            unlinked,
        });
        Ok(Version { name, reused })
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
            .map(|live| (self.dir.join(&live.version.name), &live.version.payload));
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

    /// Turns the kept version into `version_dir` (an empty directory, replaced by the
    /// rename) and brings it from its files to those of `payload`: a file whose bytes
    /// changed or that is gone is removed, with the directories it leaves empty; a changed
    /// or new file is written anew. Syncs what changed; returns how many files were kept.
    fn recycle(
        &self,
        kept: Written,
        version_dir: &Path,
        payload: &Payload,
    ) -> Result<usize, LayoutError> {
        let old_dir = self.dir.join(&kept.name);
        fs::rename(&old_dir, version_dir).context(&old_dir, "reuse the version directory")?;
        let mut touched = BTreeSet::from([version_dir.to_path_buf()]);
        let stale = kept
            .payload
            .files()
            .filter(|(path, bytes)| payload.get(path) != Some(*bytes));
        for (path, _) in stale {
            let file = version_dir.join(path);
            fs::remove_file(&file).context(&file, "remove file")?;
            let mut dir = fsx::parent_dir(&file);
            while dir != version_dir {
                match fs::remove_dir(dir) {
                    Ok(()) => {
                        touched.remove(dir);
                    }
                    Err(e) if e.raw_os_error() == Some(nix::libc::ENOTEMPTY) => break,
                    Err(e) => return Err(e).context(dir, "remove directory"),
                }
                dir = fsx::parent_dir(dir);
            }
            touched.insert(dir.to_path_buf());
        }
        let mut reused = 0;
        for (path, bytes) in payload.files() {
            if kept.payload.get(path) == Some(bytes) {
                reused += 1;
                continue;
            }
            let file = version_dir.join(path);
            let mut parent = version_dir.to_path_buf();
            for segment in path.split('/').take(path.split('/').count() - 1) {
                parent.push(segment);
                match make_dir(&parent) {
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    made => {
                        made.context(&parent, "create directory")?;
                        // Its name in the directory above is new too.
                        touched.insert(fsx::parent_dir(&parent).to_path_buf());
                    }
                }
            }
            fsx::write_new(&file, bytes, &self.perms)
                .map_err(io::Error::from)
                .context(&file, "write file")?;
            touched.insert(fsx::parent_dir(&file).to_path_buf());
        }
        for dir in touched.iter().rev() {
            sync_dir(dir)?;
        }
        Ok(reused)
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

    /// Gives every top-level name of `payload` its stable link and, when `remove`, removes
    /// from the target everything but `..data`, `version`, the `previous` one and those
    /// links: older versions, links of names that are gone, leftovers of an interrupted
    /// run, and files of an older tool. A link this layout made at the previous publish is
    /// left alone while it is there; any other name is checked (on the first publish, all
    /// of them). Failures only leave clutter or a missing name, so they are warnings;
    /// returns the names left without their link.
    fn tidy(
        &self,
        version: &str,
        previous: Option<&str>,
        payload: &Payload,
        remove: bool,
    ) -> BTreeSet<String> {
        let names = payload.top_names();
        let made: BTreeSet<&str> = match &self.live {
            Some(live) => live
                .version
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
                    let live =
                        name.is_some_and(|n| n == DATA || n == version || Some(n) == previous);
                    if live || !remove {
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

impl Written {
    /// Whether every directory of this version, in `target`, is as it was written.
    fn untouched(&self, target: &Path) -> bool {
        let root = target.join(&self.name);
        self.stamps.iter().all(|(dir, stamp)| {
            let path = if dir.as_os_str().is_empty() {
                root.clone()
            } else {
                root.join(dir)
            };
            stamp_of(&path).ok().as_ref() == Some(stamp)
        })
    }
}

/// The stamps of `version_dir` and of every directory below it that holds `payload`'s
/// files, by path relative to `version_dir`.
fn stamp_dirs(version_dir: &Path, payload: &Payload) -> Result<Vec<(PathBuf, Stamp)>, LayoutError> {
    let mut dirs = BTreeSet::from([PathBuf::new()]);
    for (path, _) in payload.files() {
        let mut dir = Path::new(path).parent();
        while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
            if !dirs.insert(d.to_path_buf()) {
                break;
            }
            dir = d.parent();
        }
    }
    dirs.into_iter()
        .map(|dir| {
            let path = version_dir.join(&dir);
            let stamp = stamp_of(&path).context(&path, "read directory")?;
            Ok((dir, stamp))
        })
        .collect()
}

/// The inode and change time of the directory at `path` (not followed if a link).
fn stamp_of(path: &Path) -> io::Result<Stamp> {
    let meta = fs::symlink_metadata(path)?;
    if !meta.is_dir() {
        return Err(io::Error::other("not a directory"));
    }
    Ok((meta.ino(), meta.ctime(), meta.ctime_nsec()))
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
        // The version it replaced is kept, to be reused by the next publish.
        assert_eq!(entries(&target), ["..data", &v1, &v2, "new", "tls.key"]);
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
        let v1 = layout.publish(payload(&[("a", "1")]), 1).unwrap().name;
        let v = layout.publish(payload(&[]), 2).unwrap().name;
        assert_eq!(entries(tmp.path()), ["..data", &v1, &v]);
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
        let v1 = layout.publish(payload(&first), 1).unwrap().name;
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
        assert_eq!(v.reused, 2);
        assert_eq!(inode(&target, "a"), before[0]);
        assert_eq!(inode(&target, "sub/deep/c"), before[2]);
        let written = [inode(&target, "sub/b"), inode(&target, "e")];
        assert!(written.iter().all(|i| !before.contains(i)), "{written:?}");
        assert_eq!(entries(&target), ["..data", &v1, &v.name, "a", "e", "sub"]);
        for (file, content) in second {
            assert_eq!(fs::read_to_string(target.join(file)).unwrap(), content);
            let meta = fs::metadata(target.join(file)).unwrap();
            assert_eq!(meta.mode() & 0o7777, 0o640, "{file}");
            // An unchanged file has a name in each version, a written one only its own.
            let shared = matches!(file, "a" | "sub/deep/c");
            assert_eq!(meta.nlink(), if shared { 2 } else { 1 }, "{file}");
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
        assert_eq!(v.reused, 0);
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
        assert_eq!(v.reused, 1);
        assert_eq!(inode(&target, "a"), before);
        assert_eq!(fs::read_to_string(target.join("b")).unwrap(), "2");
    }

    #[test]
    fn what_was_removed_by_hand_is_written_and_linked_again() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().to_path_buf();
        let mut layout = Layout::new(target.clone(), perms(0o600));
        let v1 = layout
            .publish(payload(&[("a", "1"), ("b", "2"), ("c", "3")]), 1)
            .unwrap()
            .name;
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
        assert_eq!(v.reused, 2);
        assert_eq!(
            entries(&target),
            ["..data", &v1, &v.name, "a", "b", "c", "d"]
        );
        for (file, content) in [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")] {
            assert_eq!(fs::read_to_string(target.join(file)).unwrap(), content);
        }
    }

    /// Inode of the directory `name` in `target`.
    fn dir_inode(target: &Path, name: &str) -> u64 {
        fs::symlink_metadata(target.join(name)).unwrap().ino()
    }

    #[test]
    fn the_version_before_the_live_one_is_renamed_and_brought_up_to_date() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().to_path_buf();
        let mut layout = Layout::new(target.clone(), perms(0o640));
        let first = [
            ("a", "1"),
            ("b/x", "2"),
            ("c", "3"),
            ("d/e/f", "4"),
            ("g", "5"),
            ("h/1", "6"),
            ("h/2", "7"),
        ];
        let v1 = layout.publish(payload(&first), 1).unwrap().name;
        let v1_dir = dir_inode(&target, &v1);
        let unchanged = fs::metadata(target.join(&v1).join("g")).unwrap().ino();
        let v2 = layout.publish(payload(&[("a", "one")]), 2).unwrap().name;

        // From the first version: "a" changed, "b/x" is gone, "b" becomes a file, "c"
        // becomes a directory, "d/e/f" moves deeper, "g" stays, "h" and its files go.
        let third = [
            ("a", "uno"),
            ("b", "file"),
            ("c/y", "dir"),
            ("d/e/f/z", "deeper"),
            ("g", "5"),
        ];
        let v3 = layout.publish(payload(&third), 3).unwrap();
        assert_eq!(v3.reused, 1);
        assert!(v3.name.starts_with("..rev3."), "{}", v3.name);
        assert_eq!(
            dir_inode(&target, &v3.name),
            v1_dir,
            "not the first version's"
        );
        assert_eq!(
            entries(&target),
            ["..data", &v2, &v3.name, "a", "b", "c", "d", "g"]
        );
        assert_eq!(inode(&target, "g"), unchanged);
        for (file, content) in third {
            assert_eq!(fs::read_to_string(target.join(file)).unwrap(), content);
            let meta = fs::metadata(target.join(file)).unwrap();
            assert_eq!(meta.mode() & 0o7777, 0o640, "{file}");
        }
        assert_eq!(entries(&target.join(DATA)), ["a", "b", "c", "d", "g"]);
        assert_eq!(entries(&target.join("d/e/f")), ["z"]);
        // The second version, kept in turn, is untouched.
        assert_eq!(entries(&target.join(&v2)), ["a"]);
        assert_eq!(
            fs::read_to_string(target.join(&v2).join("a")).unwrap(),
            "one"
        );
    }

    #[test]
    fn a_kept_version_changed_by_hand_is_not_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().to_path_buf();
        let mut layout = Layout::new(target.clone(), perms(0o600));
        let files = [("a", "1"), ("sub/b", "2")];
        let v1 = layout.publish(payload(&files), 1).unwrap().name;
        layout.publish(payload(&[("a", "2")]), 2).unwrap();
        fs::remove_file(target.join(&v1).join("sub/b")).unwrap();
        let v1_dir = dir_inode(&target, &v1);

        let third = [("a", "2"), ("sub/b", "2")];
        let v3 = layout.publish(payload(&third), 3).unwrap();
        assert_eq!(v3.reused, 1, "only the live version's \"a\" is linked");
        assert_ne!(dir_inode(&target, &v3.name), v1_dir);
        assert!(!target.join(&v1).exists());
        for (file, content) in third {
            assert_eq!(fs::read_to_string(target.join(file)).unwrap(), content);
        }
    }

    #[test]
    fn a_failed_recycle_keeps_the_published_version() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().to_path_buf();
        let mut layout = Layout::new(target.clone(), perms(0o600));
        layout.publish(payload(&[("a", "1")]), 1).unwrap();
        let v2 = layout.publish(payload(&[("a", "2")]), 2).unwrap().name;
        let unwritable = Payload::from_files([("a", "3"), ("b\0", "x")]);
        let err = layout.publish(unwritable, 3).unwrap_err();
        assert!(err.to_string().contains("cannot write file"), "{err}");
        assert_eq!(entries(&target), ["..data", &v2, "a"]);
        assert_eq!(fs::read_to_string(target.join("a")).unwrap(), "2");

        let v4 = layout.publish(payload(&[("a", "4")]), 4).unwrap().name;
        assert_eq!(entries(&target), ["..data", &v2, &v4, "a"]);
        assert_eq!(fs::read_to_string(target.join("a")).unwrap(), "4");
    }
}
