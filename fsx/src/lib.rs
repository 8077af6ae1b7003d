//! Careful file writes, the last step of the data path, for reconfig's targets (`apply`)
//! and mirrored files (`dispense`) and for what its migrator (`reconfig-migrate`) writes
//! alike: a new file is created exclusively with its final mode and owner before its first
//! byte (a secret is never readable by anyone it should not be, not even for a moment),
//! written, synced; a fresh random name is found without ever opening an existing file;
//! renames and removals are made durable by syncing the directory. This is the one place
//! reconfig and its migrator create files; a crate of its own so that both can use it
//! (the migrator cannot depend on reconfig, which depends on it).

use std::ffi::OsStr;
use std::fs::{File, Permissions};
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{fchown, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{openat, OFlag, AT_FDCWD};
use nix::sys::stat::Mode;
use nix::unistd::{getegid, geteuid, getgroups, unlinkat, Gid, Group, UnlinkatFlags, User};
use rand::distr::{Alphanumeric, SampleString};

/// Names tried before giving up when another file already has the random name.
const NAME_ATTEMPTS: usize = 8;

/// Mode bits a file is given, and the numeric owner and group it is given to (`None`: as
/// the file was created, the running user's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Perms {
    /// Mode bits, set-id bits included.
    pub mode: u32,
    /// Owner's user id.
    pub uid: Option<u32>,
    /// Group id.
    pub gid: Option<u32>,
}

/// Why a new file could not be written: giving it away is told apart, so the error can
/// name the owner.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Creating, writing or syncing failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The system refused the owner or group.
    #[error("cannot set owner or group: {0}")]
    Chown(#[source] io::Error),
}

impl From<WriteError> for io::Error {
    fn from(e: WriteError) -> io::Error {
        match e {
            WriteError::Io(e) | WriteError::Chown(e) => e,
        }
    }
}

/// Creates `path`, which must not exist, with `perms` from the start, writes `bytes` and
/// syncs them.
pub fn write_new(path: &Path, bytes: &[u8], perms: &Perms) -> Result<(), WriteError> {
    write_new_at(AT_FDCWD, path, bytes, perms)
}

/// [`write_new`] of `name` in the directory open as `dir`, wherever that directory has
/// been moved or whatever links now lead to it.
pub fn write_new_at(
    dir: impl AsFd,
    name: &Path,
    bytes: &[u8],
    perms: &Perms,
) -> Result<(), WriteError> {
    let file = create_exclusive(dir.as_fd(), name, perms.mode)?;
    fill(file, bytes, perms)
}

/// [`write_new`] under a fresh name in `dir`: `prefix` and `random` random letters and
/// digits. Returns the path.
pub fn write_new_named(
    dir: &Path,
    prefix: &OsStr,
    random: usize,
    bytes: &[u8],
    perms: &Perms,
) -> Result<PathBuf, WriteError> {
    write_named_in(AT_FDCWD, dir, prefix, random, bytes, perms)
}

/// [`write_new_named`] in the directory open as `dir`. Returns the name.
pub fn write_new_named_at(
    dir: impl AsFd,
    prefix: &OsStr,
    random: usize,
    bytes: &[u8],
    perms: &Perms,
) -> Result<PathBuf, WriteError> {
    write_named_in(dir.as_fd(), Path::new(""), prefix, random, bytes, perms)
}

/// A new file under a fresh name in `dir`, a path taken from `at`.
fn write_named_in(
    at: BorrowedFd<'_>,
    dir: &Path,
    prefix: &OsStr,
    random: usize,
    bytes: &[u8],
    perms: &Perms,
) -> Result<PathBuf, WriteError> {
    let (path, file) = unique(dir, prefix, random, |path| {
        create_exclusive(at, path, perms.mode)
    })?;
    if let Err(e) = fill(file, bytes, perms) {
        // Best effort on an error path; the error being reported matters more.
        let _ = unlinkat(at, &path, UnlinkatFlags::NoRemoveDir);
        return Err(e);
    }
    Ok(path)
}

/// Creates something under a fresh name in `dir` (`prefix` and `random` random letters and
/// digits) with `create`, which must fail with `AlreadyExists` when the name is taken.
pub fn unique<T>(
    dir: &Path,
    prefix: &OsStr,
    random: usize,
    mut create: impl FnMut(&Path) -> io::Result<T>,
) -> io::Result<(PathBuf, T)> {
    let mut attempt = 0;
    loop {
        let mut name = prefix.to_os_string();
        name.push(Alphanumeric.sample_string(&mut rand::rng(), random));
        let path = dir.join(name);
        match create(&path) {
            Ok(made) => return Ok((path, made)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < NAME_ATTEMPTS => {
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Opens a new file at `path` (from `at`) for writing, failing if anything is there, a
/// link included, with `mode`.
fn create_exclusive(at: BorrowedFd<'_>, path: &Path, mode: u32) -> io::Result<File> {
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = openat(at, path, flags, Mode::from_bits_truncate(mode))?;
    Ok(File::from(fd))
}

/// Gives the new `file` its owner and exact mode before the first byte, then writes and
/// syncs it.
fn fill(mut file: File, bytes: &[u8], perms: &Perms) -> Result<(), WriteError> {
    // Owner first: chown may clear set-id bits, the chmod after it puts back exactly
    // `mode`, which the umask may also have narrowed at creation.
    if perms.uid.is_some() || perms.gid.is_some() {
        fchown(&file, perms.uid, perms.gid).map_err(WriteError::Chown)?;
    }
    file.set_permissions(Permissions::from_mode(perms.mode))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

/// Replaces `dir/name` with `bytes` at once: a new file under a fresh name (`prefix` and
/// `random` letters) written and synced, then renamed over it (never opened through a link
/// at `name`); the new file is removed when the rename fails. The caller syncs `dir`.
pub fn replace(
    dir: &Path,
    name: &Path,
    prefix: &OsStr,
    random: usize,
    bytes: &[u8],
    perms: &Perms,
) -> Result<(), WriteError> {
    let staged = write_new_named(dir, prefix, random, bytes, perms)?;
    if let Err(e) = std::fs::rename(&staged, dir.join(name)) {
        // Best effort on an error path; the error being reported matters more.
        let _ = std::fs::remove_file(&staged);
        return Err(e.into());
    }
    Ok(())
}

/// Makes the entries of `dir` durable (after a rename, a removal, a new file).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir).and_then(|d| d.sync_all())
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// The owner and group a new file takes over from the file of `uid` and `gid` it replaces
/// or copies: as root, both; as any other user, only the group, when it belongs to it (the
/// file is the running user's whatever it asks).
pub fn kept_ids(uid: u32, gid: u32) -> (Option<u32>, Option<u32>) {
    if geteuid().is_root() {
        (Some(uid), Some(gid))
    } else {
        (None, Some(gid).filter(|&gid| in_my_groups(gid)))
    }
}

/// Whether the running process may give a file it owns to group `gid`.
fn in_my_groups(gid: u32) -> bool {
    getegid().as_raw() == gid
        || getgroups().is_ok_and(|groups| groups.contains(&Gid::from_raw(gid)))
}

/// Why an owner or group name gives no id.
#[derive(Debug, thiserror::Error)]
pub enum IdError {
    /// No such user or group, and not a number either.
    #[error("unknown {kind} {name:?}")]
    Unknown {
        /// `owner` or `group`.
        kind: &'static str,
        /// The name given.
        name: String,
    },
    /// The user or group database could not be consulted.
    #[error("cannot look up {kind} {name:?}: {source}")]
    Lookup {
        /// `owner` or `group`.
        kind: &'static str,
        /// The name given.
        name: String,
        /// The look-up's error.
        source: nix::Error,
    },
}

/// The user id of `name`; a name the database does not know that is a number is taken as
/// the id itself, as `chown` does.
pub fn user_id(name: &str) -> Result<u32, IdError> {
    id_of(
        "owner",
        name,
        User::from_name(name).map(|u| u.map(|u| u.uid.as_raw())),
    )
}

/// The group id of `name`, as [`user_id`] does it.
pub fn group_id(name: &str) -> Result<u32, IdError> {
    id_of(
        "group",
        name,
        Group::from_name(name).map(|g| g.map(|g| g.gid.as_raw())),
    )
}

fn id_of(kind: &'static str, name: &str, found: nix::Result<Option<u32>>) -> Result<u32, IdError> {
    match found {
        Ok(Some(id)) => Ok(id),
        Ok(None) => name.parse().map_err(|_| IdError::Unknown {
            kind,
            name: name.to_string(),
        }),
        Err(source) => Err(IdError::Lookup {
            kind,
            name: name.to_string(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    fn own(mode: u32) -> Perms {
        Perms {
            mode,
            uid: None,
            gid: None,
        }
    }

    #[test]
    fn mode_is_exact_whatever_the_umask_and_set_id_bits() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o666, 0o4750, 0o600] {
            let path = write_new_named(dir.path(), OsStr::new("x"), 6, b"x", &own(mode)).unwrap();
            let meta = std::fs::metadata(&path).unwrap();
            assert_eq!(meta.mode() & 0o7777, mode, "{mode:o}");
        }
    }

    #[test]
    fn an_existing_file_is_never_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("taken");
        std::fs::write(&path, "theirs").unwrap();
        let err = write_new(&path, b"mine", &own(0o644)).unwrap_err();
        assert!(matches!(err, WriteError::Io(e) if e.kind() == io::ErrorKind::AlreadyExists));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "theirs");
    }

    #[test]
    fn numbers_are_ids_and_unknown_names_are_named() {
        assert_eq!(user_id("4242").unwrap(), 4242);
        assert_eq!(user_id("root").unwrap(), 0);
        let err = group_id("no-such-group-here").unwrap_err();
        assert_eq!(err.to_string(), r#"unknown group "no-such-group-here""#);
    }
}
