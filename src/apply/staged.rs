//! Staged files: the new content written beside its target, then renamed over it (SPEC
//! section 5, steps 4 and 6).
//!
//! A staged file is created exclusively with its final mode, so a secret is never readable
//! by anyone it should not be, not even for a moment, and it lives in the target's directory
//! so the rename is atomic. Until it is committed, dropping it removes it: no error path
//! leaves a stray `.NAME.reconfig-RANDOM` behind.

use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{fchown, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::distr::{Alphanumeric, SampleString};

/// Random characters in a staged file's name.
const RANDOM_CHARS: usize = 10;
/// Names tried before giving up when another file already has the random name.
const NAME_ATTEMPTS: usize = 8;

/// Mode bits and numeric owner and group a file is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Perms {
    pub(super) mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
}

/// A fully written and synced file beside its destination; removed on drop unless committed.
#[derive(Debug)]
pub(super) struct Staged {
    path: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl Staged {
    /// Writes `bytes` into a new hidden file next to `dest` with exactly `perms`, synced.
    pub(super) fn write(dest: &Path, bytes: &[u8], perms: &Perms) -> io::Result<Staged> {
        let (staged, mut file) = Self::create(dest, perms.mode)?;
        // Owner first: chown may clear set-id bits, the chmod after it puts back exactly
        // `mode`, which the umask may also have narrowed at creation. Both happen before
        // the first byte is written.
        fchown(&file, Some(perms.uid), Some(perms.gid))?;
        file.set_permissions(Permissions::from_mode(perms.mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        Ok(staged)
    }

    /// Creates the file exclusively under a fresh random name, with `mode` from the start.
    fn create(dest: &Path, mode: u32) -> io::Result<(Staged, File)> {
        let name = dest
            .file_name()
            .unwrap_or(dest.as_os_str())
            .to_string_lossy();
        let dir = parent_dir(dest);
        let mut attempt = 0;
        loop {
            let random = Alphanumeric.sample_string(&mut rand::rng(), RANDOM_CHARS);
            let path = dir.join(format!(".{name}.reconfig-{random}"));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&path)
            {
                Ok(file) => {
                    let dest = dest.to_path_buf();
                    let staged = Staged {
                        path,
                        dest,
                        committed: false,
                    };
                    return Ok((staged, file));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < NAME_ATTEMPTS => {
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
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

/// Removes `path` and syncs its directory, so the removal survives a crash.
pub(super) fn remove(path: &Path) -> io::Result<()> {
    std::fs::remove_file(path)?;
    sync_dir_or_warn(parent_dir(path));
    Ok(())
}

/// The directory holding `path` (`.` for a bare file name).
pub(super) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Makes a rename or removal in `dir` durable. It has already happened and is visible, so
/// a failure here only weakens crash safety: worth a warning, not an error.
fn sync_dir_or_warn(dir: &Path) {
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!(dir = %dir.display(), "cannot sync directory: {e}");
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    fn own(mode: u32) -> Perms {
        Perms {
            mode,
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
        }
    }

    #[test]
    fn mode_is_exact_whatever_the_umask_and_set_id_bits() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x.conf");
        for mode in [0o666, 0o4750, 0o600] {
            let staged = Staged::write(&dest, b"x", &own(mode)).unwrap();
            let meta = std::fs::metadata(staged.path()).unwrap();
            assert_eq!(meta.mode() & 0o7777, mode, "{mode:o}");
        }
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
}
