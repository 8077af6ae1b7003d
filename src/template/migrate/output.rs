//! Where migrate writes, never through a link. `--out` writes only into a directory it
//! created, or an existing empty one of the running user's that is not a link; every
//! directory and file in it is created exclusively (`O_EXCL`, `O_NOFOLLOW`) in a directory
//! migrate made, with the mode and owner of the original. `--in-place` writes a new file
//! beside the original, with its mode and owner before the first byte, links the original
//! to `NAME.orig` and renames the new file over it: no moment without the template, none
//! where it is readable by more people than before.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{openat, renameat, AtFlags, OFlag};
use nix::sys::stat::{fchmod, mkdirat, Mode, SFlag};
use nix::unistd::{fchown, fsync, geteuid, linkat, unlinkat, Gid, Uid, UnlinkatFlags};

use super::tree::{look, read_error, Found, Meta, Tree, DIR_FLAGS};
use super::MigrateError;
use fsx::Perms;

/// Random characters in the name of an in-place template's new file.
const RANDOM_CHARS: usize = 10;

/// Why a directory given as `--out` is not written into.
#[derive(Debug, thiserror::Error)]
pub enum OutRefusal {
    /// A link, wherever it leads.
    #[error("a symbolic link; give a new directory, or an empty one that is not a link")]
    Link,
    /// A file, FIFO or the like.
    #[error("not a directory")]
    NotADirectory,
    /// Something is already in it.
    #[error("not empty; give a new directory, or an empty one")]
    NotEmpty,
    /// Another user's directory.
    #[error(
        "owned by uid {owner}, not by the running user (uid {me}); give a new directory, \
         or an empty one of your own"
    )]
    NotOwn {
        /// The directory's owner.
        owner: u32,
        /// The running user.
        me: u32,
    },
}

/// The `--out` directory, open, and the directories migrate made in it.
pub(super) struct OutDir {
    path: PathBuf,
    root: Dir,
    /// The mode and owner the directory gets at the end, when migrate made it.
    root_meta: Option<Meta>,
    /// Each directory made below it (by its path in it), open, and the mode and owner of
    /// the original it copies, given at the end.
    made: BTreeMap<PathBuf, (OwnedFd, Meta)>,
}

impl OutDir {
    /// Opens `path` to write into, creating it if it does not exist (to get `meta`'s mode
    /// and owner at the end, the configuration directory's).
    pub fn open(path: &Path, meta: Meta) -> Result<OutDir, MigrateError> {
        // Without a trailing slash, which would have the kernel follow a link there.
        let path: PathBuf = path.components().collect();
        let (parent, name) = match path.file_name() {
            Some(name) => (fsx::parent_dir(&path), Path::new(name)),
            None => (path.as_path(), Path::new(".")),
        };
        let write_error = |e: Errno| write_error(&path, e);
        std::fs::create_dir_all(parent).map_err(|source| MigrateError::Write {
            path: parent.to_path_buf(),
            source,
        })?;
        let parent = nix::fcntl::open(parent, DIR_FLAGS - OFlag::O_NOFOLLOW, Mode::empty())
            .map_err(write_error)?;
        let created = match mkdirat(&parent, name, Mode::S_IRWXU) {
            Ok(()) => true,
            Err(Errno::EEXIST) => false,
            Err(e) => return Err(write_error(e)),
        };
        let refuse = |reason| MigrateError::OutRefused {
            path: path.clone(),
            reason,
        };
        match look(&parent, name).map_err(write_error)? {
            Some(Meta {
                kind: SFlag::S_IFDIR,
                ..
            }) => {}
            Some(Meta {
                kind: SFlag::S_IFLNK,
                ..
            }) => return Err(refuse(OutRefusal::Link)),
            _ => return Err(refuse(OutRefusal::NotADirectory)),
        }
        let mut dir = Dir::openat(&parent, name, DIR_FLAGS, Mode::empty()).map_err(write_error)?;
        let me = geteuid().as_raw();
        let owner = nix::sys::stat::fstat(&dir).map_err(write_error)?.st_uid;
        if owner != me {
            return Err(refuse(OutRefusal::NotOwn { owner, me }));
        }
        for entry in dir.iter() {
            let name = entry.map_err(write_error)?.file_name().to_bytes().to_vec();
            if name != b"." && name != b".." {
                return Err(refuse(OutRefusal::NotEmpty));
            }
        }
        Ok(OutDir {
            path,
            root: dir,
            root_meta: created.then_some(meta),
            made: BTreeMap::new(),
        })
    }

    /// Writes `bytes` as `found` of `tree` (`conf.d` or `templates`, the `top` directory of
    /// the output) with its mode and owner, making the directories on the way. Returns the
    /// path written.
    pub fn write(
        &mut self,
        top: &str,
        tree: &Tree,
        found: &Found,
        bytes: &[u8],
    ) -> Result<PathBuf, MigrateError> {
        let rel = Path::new(top).join(&found.rel);
        let path = self.path.join(&rel);
        let dir = self.dir(top, tree, found.rel.parent().unwrap_or(Path::new("")))?;
        fsx::write_new_at(dir, Path::new(found.name()), bytes, &perms(&found.meta)).map_err(
            |e| MigrateError::Write {
                path: path.clone(),
                source: e.into(),
            },
        )?;
        Ok(path)
    }

    /// The directory `top/rel` of the output, made (with every one on the way) as a copy
    /// of `rel` in `tree` when it is not yet.
    fn dir(&mut self, top: &str, tree: &Tree, rel: &Path) -> Result<BorrowedFd<'_>, MigrateError> {
        let mut src = PathBuf::new();
        let mut at = PathBuf::from(top);
        self.make(&at, tree.dirs[&src])?;
        for part in rel.components() {
            src.push(part);
            at.push(part);
            self.make(&at, tree.dirs[&src])?;
        }
        Ok(self.made[&at].0.as_fd())
    }

    /// Makes the directory `at` of the output, whose parent is made, unless it is; it gets
    /// `meta`'s mode and owner at the end.
    fn make(&mut self, at: &Path, meta: Meta) -> Result<(), MigrateError> {
        if self.made.contains_key(at) {
            return Ok(());
        }
        let parent = match at.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(parent) => self.made[parent].0.as_fd(),
            None => self.root.as_fd(),
        };
        let name = at.file_name().unwrap_or_default();
        let error = |e| write_error(&self.path.join(at), e);
        // Only the running user may enter it until it is complete.
        mkdirat(parent, name, Mode::S_IRWXU).map_err(error)?;
        let fd = openat(parent, name, DIR_FLAGS, Mode::empty()).map_err(error)?;
        self.made.insert(at.to_path_buf(), (fd, meta));
        Ok(())
    }

    /// Gives every directory migrate made the mode and owner of its original and syncs it.
    pub fn finish(self) -> Result<(), MigrateError> {
        let made = self
            .made
            .iter()
            .rev()
            .map(|(at, (fd, meta))| (self.path.join(at), fd.as_fd(), meta));
        let root = self
            .root_meta
            .iter()
            .map(|meta| (self.path.clone(), self.root.as_fd(), meta));
        for (path, fd, meta) in made.chain(root) {
            give(fd, meta).map_err(|e| write_error(&path, e))?;
        }
        Ok(())
    }
}

/// The permissions a copy of a file of `meta` gets: its mode, and its owner and group as
/// far as the running user may give them.
fn perms(meta: &Meta) -> Perms {
    let (uid, gid) = fsx::kept_ids(meta.uid, meta.gid);
    Perms {
        mode: meta.mode,
        uid,
        gid,
    }
}

/// Gives the directory `fd` the mode and owner of `meta` (owner first: chown may clear
/// set-id bits) and syncs it.
fn give(fd: BorrowedFd<'_>, meta: &Meta) -> nix::Result<()> {
    let perms = perms(meta);
    if perms.uid.is_some() || perms.gid.is_some() {
        fchown(
            fd,
            perms.uid.map(Uid::from_raw),
            perms.gid.map(Gid::from_raw),
        )?;
    }
    fchmod(fd, Mode::from_bits_truncate(perms.mode))?;
    fsync(fd)
}

/// Whether `NAME.orig` is beside `found` in any form (a link counts).
pub(super) fn has_orig(found: &Found, path: &Path) -> Result<bool, MigrateError> {
    let orig = orig_name(found);
    let there = look(&*found.dir, Path::new(&orig)).map_err(|e| read_error(path, e))?;
    Ok(there.is_some())
}

fn orig_name(found: &Found) -> OsString {
    let mut orig = found.name().to_os_string();
    orig.push(".orig");
    orig
}

/// Replaces the template `found` (at `path`) with `bytes`, keeping the original as
/// `NAME.orig`.
pub(super) fn replace(found: &Found, path: &Path, bytes: &[u8]) -> Result<(), MigrateError> {
    let dir = found.dir.as_fd();
    let name = Path::new(found.name());
    let orig = orig_name(found);
    let orig = Path::new(&orig);
    let mut prefix = OsString::from(".");
    prefix.push(name);
    prefix.push(".migrate-");
    let new = fsx::write_new_named_at(dir, &prefix, RANDOM_CHARS, bytes, &perms(&found.meta))
        .map_err(|e| MigrateError::Write {
            path: path.to_path_buf(),
            source: e.into(),
        })?;
    // Undone on an error path, best effort: the error being reported matters more.
    let remove = |name: &Path| {
        let _ = unlinkat(dir, name, UnlinkatFlags::NoRemoveDir);
    };
    if let Err(e) = linkat(dir, name, dir, orig, AtFlags::empty()) {
        remove(&new);
        return Err(write_error(&fsx::parent_dir(path).join(orig), e));
    }
    // The original could have been swapped for another file since it was read.
    let kept = look(&dir, orig).map_err(|e| write_error(path, e))?;
    if kept.map(|m| m.id) != Some(found.meta.id) {
        remove(orig);
        remove(&new);
        return Err(MigrateError::Changed(path.to_path_buf()));
    }
    if let Err(e) = renameat(dir, &new, dir, name) {
        remove(orig);
        remove(&new);
        return Err(write_error(path, e));
    }
    fsync(dir).map_err(|e| write_error(path, e))
}

/// A write error of `path`.
fn write_error(path: &Path, errno: Errno) -> MigrateError {
    MigrateError::Write {
        path: path.to_path_buf(),
        source: io::Error::from(errno),
    }
}
