//! The current target, as it is before a change: found through symlinks only where the
//! kernel's `protected_symlinks` rule would follow them, refused when it is not a regular
//! file, read without ever waiting on a FIFO.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use fsx::parent_dir;
use nix::fcntl::OFlag;
use nix::unistd::geteuid;

use super::error::ApplyError;

/// Links followed from a target before giving up, as the kernel does (`ELOOP`).
const MAX_LINKS: usize = 40;
/// The mode bits of a directory where anyone may add links but only remove their own.
const STICKY_WORLD_WRITABLE: u32 = 0o1002;

/// The target before the change: its content, mode and ids, and the open file, through
/// which a permission fix is made.
pub(super) struct Current {
    pub(super) bytes: Vec<u8>,
    pub(super) mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) file: File,
}

/// The file to replace: a symlinked target resolves, link by link, to the file it points
/// to, each link followed only where [`may_follow`] allows. A dangling link cannot be
/// followed and is replaced by the file itself.
pub(super) fn real_path(target: &Path) -> Result<PathBuf, ApplyError> {
    let read_error = |source| ApplyError::Read {
        target: target.to_path_buf(),
        source,
    };
    let mut path = target.to_path_buf();
    for _ in 0..MAX_LINKS {
        let link = match fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound && path != *target => {
                return Ok(target.to_path_buf());
            }
            // Anything else (a missing or unreadable target) is for the steps that follow.
            _ => return Ok(path),
        };
        let dir = parent_dir(&path);
        let dir_meta = fs::metadata(dir).map_err(read_error)?;
        if !may_follow(
            link.uid(),
            dir_meta.mode(),
            dir_meta.uid(),
            geteuid().as_raw(),
        ) {
            return Err(ApplyError::UnsafeLink {
                target: target.to_path_buf(),
                link_owner: link.uid(),
                dir: dir.to_path_buf(),
                dir_owner: dir_meta.uid(),
                link: path,
            });
        }
        path = dir.join(fs::read_link(&path).map_err(read_error)?);
    }
    Err(read_error(io::Error::from_raw_os_error(nix::libc::ELOOP)))
}

/// The kernel's `protected_symlinks` rule, whatever the sysctl says: a link is followed
/// when its directory is not sticky and world-writable, or when it belongs to the user
/// following it or to the directory's owner.
pub(super) fn may_follow(link_owner: u32, dir_mode: u32, dir_owner: u32, euid: u32) -> bool {
    dir_mode & STICKY_WORLD_WRITABLE != STICKY_WORLD_WRITABLE
        || link_owner == euid
        || link_owner == dir_owner
}

/// Refuses a missing or non-directory parent up front, with a message saying exactly that.
pub(super) fn check_dir(target: &Path, dir: &Path) -> Result<(), ApplyError> {
    let problem = match fs::metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => "does not exist",
        Ok(meta) if !meta.is_dir() => "is not a directory",
        // Anything else (permissions, say) surfaces with its own reason at the first access.
        _ => return Ok(()),
    };
    Err(ApplyError::TargetDir {
        target: target.to_path_buf(),
        dir: dir.to_path_buf(),
        problem,
    })
}

/// Reads the regular file at `path`, or `None` when there is none (or only the dangling
/// link [`real_path`] leaves to be replaced). Anything but a regular file is refused before
/// it is opened, and it is opened so that neither a link nor a FIFO put there meanwhile is
/// followed or waited on.
pub(super) fn read_current(target: &Path, path: &Path) -> Result<Option<Current>, ApplyError> {
    let read_error = |source| ApplyError::Read {
        target: target.to_path_buf(),
        source,
    };
    let not_a_file = |meta: &Metadata| {
        special_kind(meta).map(|kind| ApplyError::NotAFile {
            target: target.to_path_buf(),
            path: path.to_path_buf(),
            kind,
        })
    };
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_error(e)),
        Ok(meta) if meta.file_type().is_symlink() => return Ok(None),
        Ok(meta) => not_a_file(&meta).map_or(Ok(()), Err)?,
    }
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
        .open(path)
        .map_err(read_error)?;
    let meta = file.metadata().map_err(read_error)?;
    not_a_file(&meta).map_or(Ok(()), Err)?;
    let mut bytes = Vec::with_capacity(meta.len().try_into().unwrap_or(0));
    file.read_to_end(&mut bytes).map_err(read_error)?;
    Ok(Some(Current {
        bytes,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        file,
    }))
}

/// What a file that is not a regular file is, for the message refusing it.
fn special_kind(meta: &Metadata) -> Option<&'static str> {
    let kind = meta.file_type();
    match () {
        () if kind.is_file() => None,
        () if kind.is_fifo() => Some("FIFO"),
        () if kind.is_socket() => Some("socket"),
        () if kind.is_char_device() => Some("character device"),
        () if kind.is_block_device() => Some("block device"),
        () if kind.is_dir() => Some("directory"),
        () => Some("special file"),
    }
}
