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
//! A new version is written in full into a fresh directory, synced, and published by
//! renaming a new `..data_tmp` symlink over `..data`: every stable name then resolves into
//! the new version at once. Links for new names are added after the swap, everything else
//! in the target (the previous versions, names that are gone, stray files) is removed.
//! Files are created with their final mode and owner before the first byte is written, so a
//! secret is never readable by anyone else, not even for a moment.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs::{self, DirBuilder, Permissions};
use std::io;
use std::os::unix::fs::{symlink, DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tracing::{info, warn};

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
}

impl Layout {
    /// The layout of `dir`, whose files get `perms`.
    pub fn new(dir: PathBuf, perms: Perms) -> Layout {
        Layout { dir, perms }
    }

    /// Writes `payload` as a new version named after `revision`, publishes it, and removes
    /// everything that is not part of it; returns the version's name. On error nothing was
    /// published: the previous version stays and the new one is removed. Once published,
    /// a link or clean-up that fails is a warning (and retried at the next publish).
    pub fn publish(&self, payload: &Payload, revision: i64) -> Result<String, LayoutError> {
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&self.dir)
            .context(&self.dir, "create the target directory")?;
        let version = self.create_version(revision)?;
        let version_dir = self.dir.join(&version);
        let published = self
            .write_version(&version_dir, payload)
            .and_then(|()| self.swap_data(&version));
        if let Err(e) = published {
            remove_or_warn(&version_dir);
            return Err(e);
        }
        let names = payload.top_names();
        for name in &names {
            if let Err(e) = self.link(name) {
                warn!("{e}");
            }
        }
        self.remove_others(&version, &names);
        Ok(version)
    }

    /// Creates an empty, uniquely named version directory.
    fn create_version(&self, revision: i64) -> Result<String, LayoutError> {
        let prefix = format!("..rev{revision}.");
        let (path, ()) = fsx::unique(&self.dir, OsStr::new(&prefix), RANDOM_CHARS, make_dir)
            .context(&self.dir, "create the version directory")?;
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        Ok(name.into_owned())
    }

    /// Writes every file of `payload` below `version_dir` and syncs it all to disk.
    fn write_version(&self, version_dir: &Path, payload: &Payload) -> Result<(), LayoutError> {
        let mut dirs = BTreeSet::new();
        for (path, bytes) in payload.files() {
            let file = version_dir.join(path);
            let mut parent = version_dir.to_path_buf();
            for segment in path.split('/').take(path.split('/').count() - 1) {
                parent.push(segment);
                if dirs.insert(parent.clone()) {
                    make_dir(&parent).context(&parent, "create directory")?;
                }
            }
            fsx::write_new(&file, bytes, &self.perms)
                .map_err(io::Error::from)
                .context(&file, "write file")?;
        }
        for dir in dirs.iter().rev() {
            sync_dir(dir)?;
        }
        sync_dir(version_dir)
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

    /// Removes from the target everything but `..data`, `version` and the links `names`:
    /// previous versions, links of names that are gone, leftovers of an interrupted run,
    /// and files of an older tool. Failures only leave clutter, so they are warnings.
    fn remove_others(&self, version: &str, names: &BTreeSet<&str>) {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) => {
                warn!("{}: cannot list for clean-up: {e}", self.dir.display());
                return;
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_str();
            if name.is_some_and(|n| n == DATA || n == version || names.contains(n)) {
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
        if let Err(e) = sync_dir(&self.dir) {
            warn!("{e}");
        }
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
        let layout = Layout::new(target.clone(), perms(0o640));
        let v1 = layout
            .publish(&payload(&[("tls.key", "k1"), ("sub/ca.pem", "ca1")]), 5)
            .unwrap();
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
            .publish(&payload(&[("tls.key", "k2"), ("new", "n")]), 6)
            .unwrap();
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

        let layout = Layout::new(target.clone(), perms(0o600));
        let v = layout
            .publish(&payload(&[("tls.key", "k"), ("sub/a", "a")]), 9)
            .unwrap();
        assert_eq!(entries(&target), ["..data", &v, "sub", "tls.key"]);
        assert_eq!(fs::read_to_string(target.join("tls.key")).unwrap(), "k");
        assert_eq!(entries(&target.join("sub")), ["a"]);
    }

    #[test]
    fn an_empty_payload_empties_the_target() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path().to_path_buf(), perms(0o600));
        layout.publish(&payload(&[("a", "1")]), 1).unwrap();
        let v = layout.publish(&payload(&[]), 2).unwrap();
        assert_eq!(entries(tmp.path()), ["..data", &v]);
        assert!(entries(&tmp.path().join(&v)).is_empty());
    }

    #[test]
    fn a_failed_write_keeps_the_published_version() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().to_path_buf();
        let layout = Layout::new(target.clone(), perms(0o600));
        let v1 = layout.publish(&payload(&[("a", "1")]), 1).unwrap();
        // A name no file system takes, which the payload's own checks would have refused.
        let unwritable = Payload::from_files([("a", "2"), ("b\0", "x")]);
        let err = layout.publish(&unwritable, 2).unwrap_err();
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
        let layout = Layout::new(target.clone(), perms(0o600));
        let v = layout.publish(&payload(&[("a", "1")]), 1).unwrap();
        assert_eq!(entries(&target), ["..data", &v, "a"]);
    }
}
