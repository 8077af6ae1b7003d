//! Staged files: the new content written beside its target, then renamed over it.
//!
//! A staged file is created exclusively with its final mode, so a secret is never readable
//! by anyone it should not be, not even for a moment, and it lives in the target's directory
//! so the rename is atomic. Until it is committed, dropping it removes it: no error path
//! leaves a stray `.NAME.reconfig-RANDOM` behind. Only a killed reconfig can, and
//! [`remove_leftovers`] clears those at the next start.
//!
//! A staged name must fit in a directory entry (255 bytes): for a long target name, NAME is
//! cut short.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use fsx::{parent_dir, Perms, WriteError};

/// Random characters in a staged file's name.
const RANDOM_CHARS: usize = 10;
/// What follows the target's name in a staged file's name, before the random characters.
const MARK: &str = ".reconfig-";
/// Longest name of a directory entry (Linux's `NAME_MAX`, that of every common file system).
const NAME_MAX: usize = 255;

/// A fully written and synced file beside its destination; removed on drop unless committed.
#[derive(Debug)]
pub(super) struct Staged {
    path: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl Staged {
    /// Writes `bytes` into a new hidden file next to `dest` with exactly `perms`, synced.
    pub(super) fn write(dest: &Path, bytes: &[u8], perms: &Perms) -> Result<Staged, WriteError> {
        let prefix = staged_prefix(dest);
        let path = fsx::write_new_named(parent_dir(dest), &prefix, RANDOM_CHARS, bytes, perms)?;
        Ok(Staged {
            path,
            dest: dest.to_path_buf(),
            committed: false,
        })
    }

    /// Where the staged file is, for a check command to read.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the staged file over its destination atomically and syncs the directory.
    pub(super) fn commit(mut self) -> io::Result<()> {
        std::fs::rename(&self.path, &self.dest)?;
        self.committed = true;
        sync_dir_or_warn(parent_dir(&self.dest));
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            // Best effort on an error path; the error being reported matters more.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Removes the staged files of `dest` that a killed run left in its directory: regular files
/// named exactly as [`Staged`] names them for `dest`, nothing else. Returns each one found
/// with the outcome of its removal; a directory that cannot be listed has none.
pub(super) fn remove_leftovers(dest: &Path) -> Vec<(PathBuf, io::Result<()>)> {
    let Ok(entries) = std::fs::read_dir(parent_dir(dest)) else {
        // A missing or unreadable directory is reported when the entry is applied.
        return Vec::new();
    };
    let prefix = staged_prefix(dest);
    entries
        .flatten()
        .filter(|e| is_staged_name(&e.file_name(), &prefix))
        // The entry's own type: a link is not followed, and is not a staged file.
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| {
            let path = e.path();
            let removed = remove(&path);
            (path, removed)
        })
        .collect()
}

/// `.NAME.reconfig-` for the file `dest`, NAME cut short (at a character boundary when it
/// is UTF-8) so that the staged name fits in [`NAME_MAX`] bytes.
fn staged_prefix(dest: &Path) -> OsString {
    let name = dest.file_name().unwrap_or(dest.as_os_str()).as_bytes();
    let room = NAME_MAX - 1 - MARK.len() - RANDOM_CHARS;
    let mut end = name.len().min(room);
    if let Ok(text) = std::str::from_utf8(name) {
        while !text.is_char_boundary(end) {
            end -= 1;
        }
    }
    let mut prefix = Vec::with_capacity(NAME_MAX);
    prefix.push(b'.');
    prefix.extend_from_slice(&name[..end]);
    prefix.extend_from_slice(MARK.as_bytes());
    OsString::from_vec(prefix)
}

/// Whether `name` is `prefix` followed by [`RANDOM_CHARS`] letters and digits.
fn is_staged_name(name: &OsStr, prefix: &OsStr) -> bool {
    name.as_bytes()
        .strip_prefix(prefix.as_bytes())
        .is_some_and(|random| {
            random.len() == RANDOM_CHARS && random.iter().all(u8::is_ascii_alphanumeric)
        })
}

/// Removes `path` and syncs its directory, so the removal survives a crash.
pub(super) fn remove(path: &Path) -> io::Result<()> {
    std::fs::remove_file(path)?;
    sync_dir_or_warn(parent_dir(path));
    Ok(())
}

/// Makes a rename or removal in `dir` durable. It has already happened and is visible, so
/// a failure here only weakens crash safety: worth a warning, not an error.
fn sync_dir_or_warn(dir: &Path) {
    if let Err(e) = fsx::sync_dir(dir) {
        tracing::warn!(dir = %dir.display(), "cannot sync directory: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own(mode: u32) -> Perms {
        Perms {
            mode,
            uid: Some(nix::unistd::geteuid().as_raw()),
            gid: Some(nix::unistd::getegid().as_raw()),
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn hidden_beside_the_target_and_removed_unless_committed() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x.conf");
        let staged = Staged::write(&dest, b"new", &own(0o644)).unwrap();
        let name = staged
            .path()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(name.starts_with(".x.conf.reconfig-"), "{name}");
        assert_eq!(staged.path().parent(), Some(dir.path()));
        drop(staged);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

        Staged::write(&dest, b"new", &own(0o644))
            .unwrap()
            .commit()
            .unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn long_names_are_cut_to_fit_a_directory_entry() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["l".repeat(255), "é".repeat(127), "x".repeat(234)] {
            let dest = dir.path().join(&name);
            let staged = Staged::write(&dest, b"x", &own(0o644)).unwrap();
            let staged_name = staged.path().file_name().unwrap().len();
            assert!(staged_name <= NAME_MAX, "{staged_name} bytes");
            assert!(staged.path().to_str().is_some(), "cut inside a character");
            staged.commit().unwrap();
            assert_eq!(std::fs::read(&dest).unwrap(), b"x");
        }
        // A name that fits is kept whole.
        let prefix = staged_prefix(Path::new("/d/app.conf"));
        assert_eq!(prefix, OsStr::new(".app.conf.reconfig-"));
    }

    #[test]
    fn only_this_targets_staged_files_are_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("app.conf");
        let long_dest = dir.path().join("l".repeat(250));
        let leftovers = [
            ".app.conf.reconfig-AbCdE12345".to_string(),
            format!(".{}.reconfig-0123456789", "l".repeat(234)),
        ];
        let others = [
            "app.conf",
            ".app.conf.reconfig-short",
            ".app.conf.reconfig-AbCdE123456",
            ".app.conf.reconfig-AbCdE1234-",
            ".other.conf.reconfig-AbCdE12345",
            "app.conf.reconfig-AbCdE12345",
        ];
        for name in leftovers.iter().map(String::as_str).chain(others) {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        std::fs::create_dir(dir.path().join(".app.conf.reconfig-DIRECTORY0")).unwrap();
        std::os::unix::fs::symlink("app.conf", dir.path().join(".app.conf.reconfig-SYMLINK000"))
            .unwrap();

        let mut removed: Vec<PathBuf> = [dest.as_path(), long_dest.as_path()]
            .into_iter()
            .flat_map(remove_leftovers)
            .map(|(path, result)| {
                result.unwrap();
                path
            })
            .collect();
        removed.sort();
        let mut expected: Vec<PathBuf> = leftovers.iter().map(|n| dir.path().join(n)).collect();
        expected.sort();
        assert_eq!(removed, expected);
        let mut remaining: Vec<&str> = others.to_vec();
        remaining.extend([
            ".app.conf.reconfig-DIRECTORY0",
            ".app.conf.reconfig-SYMLINK000",
        ]);
        remaining.sort();
        assert_eq!(names(dir.path()), remaining);
        assert!(remove_leftovers(&dir.path().join("missing/x")).is_empty());
    }
}
