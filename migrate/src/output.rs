//! What a migration writes, and the writing, never through a link. A front end adds each
//! file to an [`Output`]: a copy under `OUT` with the mode and owner of the file it
//! converts (and each directory on the way with its original's), a file only its owner may
//! read, or an original converted where it is. `--out` writes only into a directory it
//! created, or an existing empty one of the running user's that is not a link; every
//! directory and file in it is created exclusively (`O_EXCL`, `O_NOFOLLOW`) in a directory
//! migrate made. `--in-place` writes a new file beside the original, with its mode and
//! owner before the first byte, links the original to `NAME.orig` and renames the new file
//! over it: no moment without the file, none where it is readable by more people than
//! before.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use fsx::Perms;
use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{openat, renameat, AtFlags, OFlag};
use nix::sys::stat::{fchmod, mkdirat, Mode, SFlag};
use nix::unistd::{fchown, fsync, geteuid, linkat, unlinkat, Gid, Uid, UnlinkatFlags};

use crate::tree::{look, read_error, Found, Meta, Tree, DIR_FLAGS};
use crate::{MigrateError, OutRefusal};

/// Random characters in the name of an in-place file's new version.
const RANDOM_CHARS: usize = 10;

/// The mode of a file only its owner may read, such as one holding a password.
const SECRET_MODE: u32 = 0o600;

/// Where a migration writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Under this directory, which migrate creates, or an existing empty one of the
    /// running user's that is not a link.
    Out(PathBuf),
    /// Over the originals, each kept as `NAME.orig`.
    InPlace,
}

/// Everything a migration writes.
pub(crate) struct Output {
    /// What `OUT` gets when migrate makes it: the configuration directory's mode and owner.
    root: Perms,
    /// The directories below `OUT`, by path in it, with their mode and owner.
    dirs: BTreeMap<PathBuf, Perms>,
    /// The files below `OUT`, by path in it, with their mode and owner.
    files: BTreeMap<PathBuf, (Vec<u8>, Perms)>,
    /// The originals converted where they are.
    in_place: Vec<Replacement>,
}

/// An original file and what replaces it.
struct Replacement {
    /// The directory holding it, open.
    dir: Rc<Dir>,
    /// Its name there.
    name: OsString,
    /// Its mode, owner and identity as read.
    meta: Meta,
    /// Its path, for messages.
    path: PathBuf,
    /// The converted bytes.
    bytes: Vec<u8>,
}

impl Output {
    /// Nothing to write yet into an `OUT` that, made by migrate, gets `root`'s mode and
    /// owner (the configuration directory's).
    pub fn new(root: &Meta) -> Output {
        Output {
            root: perms(root),
            dirs: BTreeMap::new(),
            files: BTreeMap::new(),
            in_place: vec![],
        }
    }

    /// Adds `bytes`, to be written as `top/rel` with the mode and owner of `like`, and each
    /// directory on the way with those of the one at the same place in `tree` (`top`
    /// itself with `tree`'s). Returns the path under `OUT`.
    pub fn copy(
        &mut self,
        top: &str,
        tree: &Tree,
        rel: &Path,
        like: &Meta,
        bytes: Vec<u8>,
    ) -> PathBuf {
        let mut src = PathBuf::new();
        let mut at = PathBuf::from(top);
        self.dirs.insert(at.clone(), perms(tree.meta()));
        for part in rel.parent().unwrap_or(Path::new("")).components() {
            src.push(part);
            at.push(part);
            if let Some(meta) = tree.dirs.get(&src) {
                self.dirs.insert(at.clone(), perms(meta));
            }
        }
        at.push(rel.file_name().unwrap_or_default());
        self.files.insert(at.clone(), (bytes, perms(like)));
        at
    }

    /// Adds `bytes`, to be written as `rel` at the top of `OUT`, readable by its owner
    /// only, who is `like`'s as far as the running user may give it. Returns `rel`.
    pub fn secret(&mut self, rel: &Path, like: &Meta, bytes: Vec<u8>) -> PathBuf {
        let perms = Perms {
            mode: SECRET_MODE,
            ..perms(like)
        };
        self.files.insert(rel.to_path_buf(), (bytes, perms));
        rel.to_path_buf()
    }

    /// Adds `bytes`, to replace `found` (at `path`) where it is, the original kept as
    /// `NAME.orig`.
    pub fn replace(&mut self, found: &Found, path: &Path, bytes: Vec<u8>) {
        self.in_place.push(Replacement {
            dir: Rc::clone(&found.dir),
            name: found.name().to_os_string(),
            meta: found.meta,
            path: path.to_path_buf(),
            bytes,
        });
    }

    /// Writes everything `into` its destination: the files under `OUT`, or the
    /// replacements in place.
    pub fn write(&self, into: &Destination) -> Result<(), MigrateError> {
        match into {
            Destination::Out(path) => {
                let mut out = OutDir::open(path, self.root)?;
                for (rel, (bytes, perms)) in &self.files {
                    out.write(rel, bytes, perms, &self.dirs)?;
                }
                out.finish()
            }
            Destination::InPlace => self.in_place.iter().try_for_each(replace),
        }
    }
}

/// The `--out` directory, open, and the directories migrate made in it.
struct OutDir {
    path: PathBuf,
    root: Dir,
    /// The mode and owner the directory gets at the end, when migrate made it.
    root_perms: Option<Perms>,
    /// Each directory made below it (by its path in it), open, and the mode and owner it
    /// gets at the end.
    made: BTreeMap<PathBuf, (OwnedFd, Option<Perms>)>,
}

impl OutDir {
    /// Opens `path` to write into, creating it if it does not exist (to get `perms` at the
    /// end).
    fn open(path: &Path, perms: Perms) -> Result<OutDir, MigrateError> {
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
            root_perms: created.then_some(perms),
            made: BTreeMap::new(),
        })
    }

    /// Writes `bytes` as `rel` with `perms`, making the directories on the way (each with
    /// its `dirs` entry at the end).
    fn write(
        &mut self,
        rel: &Path,
        bytes: &[u8],
        perms: &Perms,
        dirs: &BTreeMap<PathBuf, Perms>,
    ) -> Result<(), MigrateError> {
        let dir = self.dir(rel.parent().unwrap_or(Path::new("")), dirs)?;
        let name = Path::new(rel.file_name().unwrap_or_default());
        fsx::write_new_at(dir, name, bytes, perms).map_err(|e| MigrateError::Write {
            path: self.path.join(rel),
            source: e.into(),
        })
    }

    /// The directory `rel` of the output, made with every one on the way when it is not
    /// yet.
    fn dir(
        &mut self,
        rel: &Path,
        dirs: &BTreeMap<PathBuf, Perms>,
    ) -> Result<BorrowedFd<'_>, MigrateError> {
        let mut at = PathBuf::new();
        for part in rel.components() {
            at.push(part);
            self.make(&at, dirs.get(&at).copied())?;
        }
        Ok(match self.made.get(&at) {
            Some((fd, _)) => fd.as_fd(),
            None => self.root.as_fd(),
        })
    }

    /// Makes the directory `at` of the output, whose parent is made, unless it is; it gets
    /// `perms` at the end.
    fn make(&mut self, at: &Path, perms: Option<Perms>) -> Result<(), MigrateError> {
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
        self.made.insert(at.to_path_buf(), (fd, perms));
        Ok(())
    }

    /// Gives every directory migrate made its mode and owner and syncs it.
    fn finish(self) -> Result<(), MigrateError> {
        let made = self
            .made
            .iter()
            .rev()
            .filter_map(|(at, (fd, perms))| Some((self.path.join(at), fd.as_fd(), (*perms)?)));
        let root = self
            .root_perms
            .map(|perms| (self.path.clone(), self.root.as_fd(), perms));
        for (path, fd, perms) in made.chain(root) {
            give(fd, &perms).map_err(|e| write_error(&path, e))?;
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

/// Gives the directory `fd` `perms` (owner first: chown may clear set-id bits) and syncs
/// it.
fn give(fd: BorrowedFd<'_>, perms: &Perms) -> nix::Result<()> {
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

/// Whether `NAME.orig` is beside `found` (at `path`) in any form (a link counts).
pub(crate) fn has_orig(found: &Found, path: &Path) -> Result<bool, MigrateError> {
    let orig = orig_name(found.name());
    let there = look(&*found.dir, Path::new(&orig)).map_err(|e| read_error(path, e))?;
    Ok(there.is_some())
}

fn orig_name(name: &OsStr) -> OsString {
    let mut orig = name.to_os_string();
    orig.push(".orig");
    orig
}

/// Replaces an original with its converted bytes, keeping it as `NAME.orig`.
fn replace(r: &Replacement) -> Result<(), MigrateError> {
    let dir = r.dir.as_fd();
    let path = r.path.as_path();
    let name = Path::new(&r.name);
    let orig = orig_name(&r.name);
    let orig = Path::new(&orig);
    let mut prefix = OsString::from(".");
    prefix.push(name);
    prefix.push(".migrate-");
    let new = fsx::write_new_named_at(dir, &prefix, RANDOM_CHARS, &r.bytes, &perms(&r.meta))
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
    if kept.map(|m| m.id) != Some(r.meta.id) {
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
