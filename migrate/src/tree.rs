//! The configuration directory as migrate reads it: every regular file below `conf.d/`
//! and `templates/` (and the few files a front end names at the top, such as confd's
//! `confd.toml`), with its bytes, mode and owner, walked with directory descriptors and
//! opened without following a link (`O_NOFOLLOW`, `O_DIRECTORY`). A link is never
//! followed — it can neither lead out of the directory nor round in a loop — and neither a
//! link nor a FIFO, socket or device is opened: each is listed as skipped, with the reason.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, FileStat, Mode, SFlag};

use crate::MigrateError;

/// How a directory is opened: never through a link.
pub(crate) const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// What kind of thing a file is, its mode bits, owner and group, and which file it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    /// The file type bits (`S_IFMT`).
    pub kind: SFlag,
    /// Mode bits, set-id bits included.
    pub mode: u32,
    /// Owner's user id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Device and inode: the file itself, whatever its name now.
    pub id: (u64, u64),
}

impl From<FileStat> for Meta {
    fn from(stat: FileStat) -> Meta {
        Meta {
            kind: SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits()),
            mode: stat.st_mode & 0o7777,
            uid: stat.st_uid,
            gid: stat.st_gid,
            id: (stat.st_dev, stat.st_ino),
        }
    }
}

/// `name` in the directory open as `dir`, as it is: a link is described, not followed.
/// `None` when nothing is there.
pub(crate) fn look(dir: &impl std::os::fd::AsFd, name: &Path) -> nix::Result<Option<Meta>> {
    match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(stat) => Ok(Some(stat.into())),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// One regular file found.
pub(crate) struct Found {
    /// Its path below the walked directory.
    pub rel: PathBuf,
    /// The directory holding it, open.
    pub dir: Rc<Dir>,
    /// Its bytes as read.
    pub bytes: Vec<u8>,
    /// Its mode and owner as read.
    pub meta: Meta,
}

impl Found {
    /// Its name in [`Found::dir`].
    pub fn name(&self) -> &OsStr {
        self.rel.file_name().unwrap_or_default()
    }
}

/// Something below the walked directory left alone, and why.
pub(crate) struct Skipped {
    /// Its path below the walked directory.
    pub rel: PathBuf,
    /// Why it was not read.
    pub reason: String,
}

/// A directory's contents, walked.
pub(crate) struct Tree {
    /// Where it is.
    pub path: PathBuf,
    /// Every directory in it (`""` for itself) with its mode and owner.
    pub dirs: BTreeMap<PathBuf, Meta>,
    /// Every regular file, in path order.
    pub files: Vec<Found>,
    /// Every link and special file, in path order.
    pub skipped: Vec<Skipped>,
}

impl Tree {
    /// The regular file at `rel` (`.` parts aside), when one was read there.
    pub fn find(&self, rel: &Path) -> Option<&Found> {
        let rel: PathBuf = rel
            .components()
            .filter(|c| *c != Component::CurDir)
            .collect();
        self.files.iter().find(|f| f.rel == rel)
    }

    /// The mode and owner of the walked directory itself.
    pub fn meta(&self) -> &Meta {
        &self.dirs[Path::new("")]
    }
}

/// The configuration directory, read.
pub(crate) struct Config {
    /// The directory itself: its mode and owner, and the files named at the top.
    pub top: Tree,
    /// `conf.d/`.
    pub confd: Tree,
    /// `templates/`.
    pub templates: Tree,
}

/// Reads `conf.d/` and `templates/` of `cfgdir` (itself found as the kernel finds it: it
/// is the operator's choice), neither of which may be a link, and the files `top_files`
/// at its top, when there. `tool` names whose layout it should have.
pub(crate) fn read_config(
    cfgdir: &Path,
    tool: &'static str,
    top_files: &[&str],
) -> Result<Config, MigrateError> {
    let not_config = || MigrateError::NotAConfigDir {
        path: cfgdir.to_path_buf(),
        tool,
    };
    let root = match Dir::open(cfgdir, DIR_FLAGS - OFlag::O_NOFOLLOW, Mode::empty()) {
        Ok(dir) => Rc::new(dir),
        Err(Errno::ENOENT | Errno::ENOTDIR) => return Err(not_config()),
        Err(e) => return Err(read_error(cfgdir, e)),
    };
    let meta = fstat(&*root).map_err(|e| read_error(cfgdir, e))?.into();
    let mut top = Tree {
        path: cfgdir.to_path_buf(),
        dirs: BTreeMap::from([(PathBuf::new(), meta)]),
        files: vec![],
        skipped: vec![],
    };
    for name in top_files {
        let name = OsStr::new(name);
        let full = cfgdir.join(name);
        if let Some(meta) = look(&*root, Path::new(name)).map_err(|e| read_error(&full, e))? {
            add(&mut top, &root, name.into(), name, meta)?;
        }
    }
    let top_dir = |name: &str| -> Result<Tree, MigrateError> {
        let path = cfgdir.join(name);
        match look(&*root, Path::new(name)).map_err(|e| read_error(&path, e))? {
            Some(Meta {
                kind: SFlag::S_IFLNK,
                ..
            }) => Err(MigrateError::Linked(path)),
            Some(Meta {
                kind: SFlag::S_IFDIR,
                ..
            }) => {
                let dir = Dir::openat(&*root, name, DIR_FLAGS, Mode::empty())
                    .map_err(|e| read_error(&path, e))?;
                walk(path, dir)
            }
            _ => Err(not_config()),
        }
    };
    Ok(Config {
        confd: top_dir("conf.d")?,
        templates: top_dir("templates")?,
        top,
    })
}

/// Every regular file below `root` (found at `path`), read.
fn walk(path: PathBuf, root: Dir) -> Result<Tree, MigrateError> {
    let meta = fstat(&root).map_err(|e| read_error(&path, e))?.into();
    let mut tree = Tree {
        path,
        dirs: BTreeMap::from([(PathBuf::new(), meta)]),
        files: vec![],
        skipped: vec![],
    };
    let mut pending = vec![(PathBuf::new(), root)];
    while let Some((rel, mut dir)) = pending.pop() {
        let names = list(&mut dir).map_err(|e| read_error(&tree.path.join(&rel), e))?;
        let dir = Rc::new(dir);
        for name in names {
            let rel = rel.join(&name);
            let full = tree.path.join(&rel);
            let error = |e| read_error(&full, e);
            let Some(meta) = look(&*dir, Path::new(&name)).map_err(error)? else {
                continue;
            };
            if meta.kind == SFlag::S_IFDIR {
                let sub = Dir::openat(&*dir, name.as_os_str(), DIR_FLAGS, Mode::empty())
                    .map_err(error)?;
                let opened = Meta::from(fstat(&sub).map_err(error)?);
                same(&full, &meta, &opened)?;
                tree.dirs.insert(rel.clone(), opened);
                pending.push((rel, sub));
            } else {
                add(&mut tree, &dir, rel, &name, meta)?;
            }
        }
    }
    tree.files.sort_by(|a, b| a.rel.cmp(&b.rel));
    tree.skipped.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(tree)
}

/// Adds `name` in `dir` (at `rel` in `tree`), found to be `meta`: a regular file is read,
/// anything else listed as skipped (a directory is walked instead, where walking).
fn add(
    tree: &mut Tree,
    dir: &Rc<Dir>,
    rel: PathBuf,
    name: &OsStr,
    meta: Meta,
) -> Result<(), MigrateError> {
    let full = tree.path.join(&rel);
    match meta.kind {
        SFlag::S_IFREG => {
            let (bytes, opened) = read_file(dir, name, &full)?;
            same(&full, &meta, &opened)?;
            tree.files.push(Found {
                rel,
                dir: Rc::clone(dir),
                bytes,
                meta: opened,
            });
        }
        SFlag::S_IFLNK => {
            let to = readlinkat(&**dir, name).map_err(|e| read_error(&full, e))?;
            tree.skipped.push(Skipped {
                rel,
                reason: format!(
                    "a symbolic link to {to:?}: not followed, neither converted nor copied \
                     (migrate reads only the regular files inside the configuration directory)"
                ),
            });
        }
        kind => tree.skipped.push(Skipped {
            rel,
            reason: format!(
                "{}, not a regular file: neither converted nor copied",
                kind_name(kind)
            ),
        }),
    }
    Ok(())
}

/// The names in `dir`, without `.` and `..`.
fn list(dir: &mut Dir) -> nix::Result<Vec<OsString>> {
    let mut names = vec![];
    for entry in dir.iter() {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(&name).to_os_string());
        }
    }
    Ok(names)
}

/// The bytes of the regular file `name` in `dir`, opened without following a link and
/// without waiting (should a FIFO have been put there since it was looked at), and its
/// mode and owner.
fn read_file(dir: &Dir, name: &OsStr, full: &Path) -> Result<(Vec<u8>, Meta), MigrateError> {
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let fd = openat(dir, name, flags, Mode::empty()).map_err(|e| read_error(full, e))?;
    let meta = Meta::from(fstat(&fd).map_err(|e| read_error(full, e))?);
    let mut bytes = vec![];
    File::from(fd)
        .read_to_end(&mut bytes)
        .map_err(|source| MigrateError::Read {
            path: full.to_path_buf(),
            source,
        })?;
    Ok((bytes, meta))
}

/// Refuses a file replaced by another between being looked at and opened.
fn same(full: &Path, looked: &Meta, opened: &Meta) -> Result<(), MigrateError> {
    if looked.kind == opened.kind && looked.id == opened.id {
        Ok(())
    } else {
        Err(MigrateError::Changed(full.to_path_buf()))
    }
}

/// What a file that is neither a regular file nor a link is.
fn kind_name(kind: SFlag) -> &'static str {
    match kind {
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFIFO => "a FIFO",
        SFlag::S_IFSOCK => "a socket",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        _ => "of an unknown type",
    }
}

/// A read error of `path`.
pub(crate) fn read_error(path: &Path, errno: Errno) -> MigrateError {
    MigrateError::Read {
        path: path.to_path_buf(),
        source: io::Error::from(errno),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_fifos_are_listed_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let templates = dir.path().join("templates");
        std::fs::create_dir_all(templates.join("sub")).unwrap();
        std::fs::write(templates.join("sub/a"), "a").unwrap();
        std::os::unix::fs::symlink("..", templates.join("sub/up")).unwrap();
        nix::unistd::mkfifo(&templates.join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        let root = Dir::open(&templates, DIR_FLAGS, Mode::empty()).unwrap();
        let tree = walk(templates.clone(), root).unwrap();
        let files: Vec<_> = tree
            .files
            .iter()
            .map(|f| (f.rel.clone(), &f.bytes))
            .collect();
        assert_eq!(files, [(PathBuf::from("sub/a"), &b"a".to_vec())]);
        let skipped: Vec<_> = tree
            .skipped
            .iter()
            .map(|s| (s.rel.to_str().unwrap(), s.reason.split(':').next().unwrap()))
            .collect();
        assert_eq!(
            skipped,
            [
                ("fifo", "a FIFO, not a regular file"),
                ("sub/up", "a symbolic link to \"..\""),
            ]
        );
        assert_eq!(tree.dirs.keys().collect::<Vec<_>>(), ["", "sub"]);
    }
}
