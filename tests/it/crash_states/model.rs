//! The in-memory model of the directories a scenario checks: inodes (files, directories,
//! symlinks with their mode and owner) and the names directories give them, captured from
//! the disk before the run ([`Fs::snapshot`]); the operations a run made on them ([`Op`],
//! applied with [`Fs::apply`]); and what a reader finds at a path ([`Fs::lookup`],
//! following links inside the model).
//!
//! An operation touches either one inode (its data, size, mode, owner: made durable by an
//! `fsync` of that file, `fdatasync` for data and size only) or directory entries (a name
//! made, removed or moved: made durable by an `fsync` of that directory; a rename between
//! two directories by an `fsync` of each). An inode a run creates exists in every crash
//! state with what it was created with (an empty file with its creation mode and owner, a
//! symlink with its target, an empty directory); only its name and what was done to it
//! afterwards can be lost.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// An inode's index in [`Fs`].
pub type Ino = usize;

/// Set-user-id: cleared by a change of owner.
const SUID: u32 = 0o4000;
/// Set-group-id: cleared by a change of owner when the group may execute (without that,
/// the bit means mandatory locking and stays); on a directory, new entries take its group.
pub const SGID: u32 = 0o2000;
/// The group's execute bit.
const GROUP_EXEC: u32 = 0o010;

/// Links followed in one lookup before giving up, as the kernel does.
const MAX_LINKS: usize = 40;

/// What an inode is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A regular file and its bytes.
    File(Vec<u8>),
    /// A directory and its names.
    Dir(BTreeMap<OsString, Ino>),
    /// A symlink and its target.
    Symlink(PathBuf),
}

/// One inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inode {
    /// What it is and holds.
    pub kind: Kind,
    /// Permission bits, set-id and sticky bits included.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// The checked directories: every inode below them, and each root's path and inode.
#[derive(Debug, Clone)]
pub struct Fs {
    inodes: Vec<Inode>,
    roots: Vec<(PathBuf, Ino)>,
}

impl Fs {
    /// The directories `roots` (canonical paths) as they are on disk now.
    pub fn snapshot(roots: &[PathBuf]) -> Fs {
        let mut fs = Fs {
            inodes: Vec::new(),
            roots: Vec::new(),
        };
        let mut seen = HashMap::new();
        for root in roots {
            let ino = fs.capture(root, &mut seen);
            fs.roots.push((root.clone(), ino));
        }
        fs
    }

    /// The inode at `path` on disk, and below it; hard links captured once.
    fn capture(&mut self, path: &Path, seen: &mut HashMap<(u64, u64), Ino>) -> Ino {
        let meta = std::fs::symlink_metadata(path)
            .unwrap_or_else(|e| panic!("cannot capture {}: {e}", path.display()));
        if let Some(&ino) = seen.get(&(meta.dev(), meta.ino())) {
            return ino;
        }
        let kind = if meta.is_dir() {
            Kind::Dir(BTreeMap::new())
        } else if meta.file_type().is_symlink() {
            Kind::Symlink(std::fs::read_link(path).unwrap())
        } else if meta.is_file() {
            Kind::File(std::fs::read(path).unwrap())
        } else {
            panic!(
                "{}: the model has only files, directories and links",
                path.display()
            )
        };
        let ino = self.add(Inode {
            kind,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
        });
        seen.insert((meta.dev(), meta.ino()), ino);
        if meta.is_dir() {
            let mut names: Vec<OsString> = std::fs::read_dir(path)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            for name in names {
                let child = self.capture(&path.join(&name), seen);
                if let Kind::Dir(entries) = &mut self.inodes[ino].kind {
                    entries.insert(name, child);
                }
            }
        }
        ino
    }

    /// Adds an inode; returns its index.
    pub fn add(&mut self, inode: Inode) -> Ino {
        self.inodes.push(inode);
        self.inodes.len() - 1
    }

    /// The inode `ino`.
    pub fn inode(&self, ino: Ino) -> &Inode {
        &self.inodes[ino]
    }

    /// Whether `path` lies inside one of the roots (the roots' own names excluded).
    pub fn holds(&self, path: &Path) -> bool {
        self.roots
            .iter()
            .any(|(root, _)| path.starts_with(root) && path != root)
    }

    /// Whether `path` is one of the roots or lies inside one.
    pub fn covers(&self, path: &Path) -> bool {
        self.roots.iter().any(|(root, _)| path.starts_with(root))
    }

    /// The inode at the absolute `path`, following links in every component (and in the
    /// last one when `follow`); None when it is missing, outside the roots, or a link
    /// leads out of them.
    pub fn lookup(&self, path: &Path, follow: bool) -> Option<Ino> {
        let (stack, rest) = self.root_of(path)?;
        self.walk(stack, rest, follow, 0)
    }

    /// The root holding `path`, as a stack of directories, and the components below it.
    fn root_of<'p>(&self, path: &'p Path) -> Option<(Vec<Ino>, Vec<Component<'p>>)> {
        let (root, ino) = self
            .roots
            .iter()
            .filter(|(root, _)| path.starts_with(root))
            .max_by_key(|(root, _)| root.as_os_str().len())?;
        let rest = path.strip_prefix(root).ok()?.components().collect();
        Some((vec![*ino], rest))
    }

    fn walk(
        &self,
        mut stack: Vec<Ino>,
        rest: Vec<Component>,
        follow: bool,
        links: usize,
    ) -> Option<Ino> {
        let count = rest.len();
        for (i, component) in rest.iter().enumerate() {
            let last = i + 1 == count;
            match component {
                Component::CurDir => {}
                Component::ParentDir => {
                    stack.pop();
                    if stack.is_empty() {
                        return None;
                    }
                }
                Component::Normal(name) => {
                    let dir = *stack.last()?;
                    let Kind::Dir(entries) = &self.inodes[dir].kind else {
                        return None;
                    };
                    let ino = *entries.get(*name)?;
                    match &self.inodes[ino].kind {
                        Kind::Symlink(target) if !last || follow => {
                            if links >= MAX_LINKS {
                                return None;
                            }
                            let remaining: Vec<Component> = rest[i + 1..].to_vec();
                            let (base, mut via): (Vec<Ino>, Vec<Component>) =
                                if target.is_absolute() {
                                    self.root_of(target)?
                                } else {
                                    (stack.clone(), target.components().collect())
                                };
                            via.extend(remaining);
                            return self.walk(base, via, follow, links + 1);
                        }
                        _ => stack.push(ino),
                    }
                }
                Component::RootDir | Component::Prefix(_) => return None,
            }
        }
        stack.last().copied()
    }

    /// The directory holding `path` (its links followed) and the last name.
    pub fn parent(&self, path: &Path) -> Option<(Ino, OsString)> {
        let name = path.file_name()?.to_os_string();
        let dir = self.lookup(path.parent()?, true)?;
        matches!(self.inodes[dir].kind, Kind::Dir(_)).then_some((dir, name))
    }

    /// The file at `path`, links followed: its bytes, mode and owner.
    pub fn file(&self, path: &Path) -> Option<&Inode> {
        let ino = self.lookup(path, true)?;
        matches!(self.inodes[ino].kind, Kind::File(_)).then(|| &self.inodes[ino])
    }

    /// Every regular file below the directory `dir`, by path relative to it; None when
    /// `dir` is not a directory.
    pub fn files_below(&self, dir: Ino) -> Option<BTreeMap<PathBuf, &Inode>> {
        let mut files = BTreeMap::new();
        self.collect(dir, PathBuf::new(), &mut files, &mut Vec::new());
        matches!(self.inodes[dir].kind, Kind::Dir(_)).then_some(files)
    }

    fn collect<'a>(
        &'a self,
        dir: Ino,
        prefix: PathBuf,
        files: &mut BTreeMap<PathBuf, &'a Inode>,
        visiting: &mut Vec<Ino>,
    ) {
        let Kind::Dir(entries) = &self.inodes[dir].kind else {
            return;
        };
        if visiting.contains(&dir) {
            return;
        }
        visiting.push(dir);
        for (name, &ino) in entries {
            let path = prefix.join(name);
            match &self.inodes[ino].kind {
                Kind::File(_) => {
                    files.insert(path, &self.inodes[ino]);
                }
                Kind::Dir(_) => self.collect(ino, path, files, visiting),
                Kind::Symlink(_) => {}
            }
        }
        visiting.pop();
    }

    /// A text of everything reachable from the roots (names, kinds, modes, owners, bytes,
    /// link targets, which names share an inode): equal texts, equal states.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut numbered = HashMap::new();
        for (root, ino) in &self.roots {
            let _ = writeln!(out, "{}", root.display());
            self.render_dir(*ino, 1, &mut out, &mut numbered);
        }
        out
    }

    fn render_dir(
        &self,
        dir: Ino,
        depth: usize,
        out: &mut String,
        numbered: &mut HashMap<Ino, usize>,
    ) {
        let Kind::Dir(entries) = &self.inodes[dir].kind else {
            return;
        };
        for (name, &ino) in entries {
            let indent = "  ".repeat(depth);
            let name = name.to_string_lossy();
            if let Some(n) = numbered.get(&ino) {
                let _ = writeln!(out, "{indent}{name} = #{n}");
                continue;
            }
            let n = numbered.len();
            numbered.insert(ino, n);
            let inode = &self.inodes[ino];
            let what = match &inode.kind {
                Kind::File(bytes) => format!("{:?}", String::from_utf8_lossy(bytes)),
                Kind::Dir(_) => "dir".to_string(),
                Kind::Symlink(target) => format!("-> {}", target.display()),
            };
            let _ = writeln!(
                out,
                "{indent}{name} #{n} {:04o} {}:{} {what}",
                inode.mode, inode.uid, inode.gid
            );
            if let Kind::Dir(_) = inode.kind {
                self.render_dir(ino, depth + 1, out, numbered);
            }
        }
    }

    /// A path of `ino` for messages: its name relative to the roots, as the directory
    /// tree holds it now, or `#ino`.
    pub fn name_of(&self, ino: Ino) -> String {
        for (root, root_ino) in &self.roots {
            if let Some(path) = self.find(*root_ino, ino, &mut Vec::new()) {
                return root.join(path).display().to_string();
            }
        }
        format!("#{ino}")
    }

    fn find(&self, dir: Ino, ino: Ino, visiting: &mut Vec<Ino>) -> Option<PathBuf> {
        if dir == ino {
            return Some(PathBuf::new());
        }
        let Kind::Dir(entries) = &self.inodes[dir].kind else {
            return None;
        };
        if visiting.contains(&dir) {
            return None;
        }
        visiting.push(dir);
        let found = entries.iter().find_map(|(name, &child)| {
            self.find(child, ino, visiting)
                .map(|p| Path::new(name).join(p).components().collect())
        });
        visiting.pop();
        found
    }

    /// Applies `op` (`torn`: a write of only the first half of its bytes).
    pub fn apply(&mut self, op: &Op, torn: bool) {
        match op.what {
            What::Write {
                ino,
                offset,
                ref data,
            } => {
                let data = if torn {
                    &data[..data.len() / 2]
                } else {
                    &data[..]
                };
                if let Kind::File(bytes) = &mut self.inodes[ino].kind {
                    let offset = offset as usize;
                    if bytes.len() < offset + data.len() {
                        bytes.resize(offset + data.len(), 0);
                    }
                    bytes[offset..offset + data.len()].copy_from_slice(data);
                }
            }
            What::Truncate { ino, len } => {
                if let Kind::File(bytes) = &mut self.inodes[ino].kind {
                    bytes.resize(len as usize, 0);
                }
            }
            What::Chmod { ino, mode } => self.inodes[ino].mode = mode,
            What::Chown { ino, uid, gid } => {
                let inode = &mut self.inodes[ino];
                if uid.is_some() || gid.is_some() {
                    if let Kind::File(_) = inode.kind {
                        inode.mode &= !SUID;
                        if inode.mode & GROUP_EXEC != 0 {
                            inode.mode &= !SGID;
                        }
                    }
                }
                inode.uid = uid.unwrap_or(inode.uid);
                inode.gid = gid.unwrap_or(inode.gid);
            }
            What::Link { dir, ref name, ino } => {
                self.entries(dir).insert(name.clone(), ino);
            }
            What::Unlink { dir, ref name, ino } => self.unlink(dir, name, ino),
            What::Rename {
                from,
                ref from_name,
                to,
                ref to_name,
                ino,
            } => {
                self.unlink(from, from_name, ino);
                self.entries(to).insert(to_name.clone(), ino);
            }
            What::Sync { .. } | What::SyncAll { .. } => {}
        }
    }

    /// Removes `name` from `dir` if it still names `ino`.
    fn unlink(&mut self, dir: Ino, name: &OsStr, ino: Ino) {
        let entries = self.entries(dir);
        if entries.get(name) == Some(&ino) {
            entries.remove(name);
        }
    }

    fn entries(&mut self, dir: Ino) -> &mut BTreeMap<OsString, Ino> {
        match &mut self.inodes[dir].kind {
            Kind::Dir(entries) => entries,
            other => panic!("#{dir} is not a directory: {other:?}"),
        }
    }
}

/// One operation of the run on the model, with what made it, for reports.
#[derive(Debug, Clone)]
pub struct Op {
    /// What it does.
    pub what: What,
    /// `rename /d/.x.tmp -> /d/x`, as the run named it.
    pub label: String,
}

/// What an operation does.
#[derive(Debug, Clone)]
pub enum What {
    /// Bytes written at an offset (the size grows to hold them).
    Write {
        ino: Ino,
        offset: u64,
        data: Vec<u8>,
    },
    /// The size set.
    Truncate { ino: Ino, len: u64 },
    /// The mode set.
    Chmod { ino: Ino, mode: u32 },
    /// The owner and/or group set.
    Chown {
        ino: Ino,
        uid: Option<u32>,
        gid: Option<u32>,
    },
    /// A name for `ino` in `dir`: a file, directory or link created, or a hard link.
    Link { dir: Ino, name: OsString, ino: Ino },
    /// A name removed from `dir` (a file or an empty directory).
    Unlink { dir: Ino, name: OsString, ino: Ino },
    /// A name moved, replacing what the new name held.
    Rename {
        from: Ino,
        from_name: OsString,
        to: Ino,
        to_name: OsString,
        ino: Ino,
    },
    /// `fsync` (or, `data_only`, `fdatasync`) of `ino`, covering the operations of the
    /// first `covers` that touched it.
    Sync {
        ino: Ino,
        data_only: bool,
        covers: usize,
    },
    /// `sync` or `syncfs`: everything among the first `covers`.
    SyncAll { covers: usize },
}

impl What {
    /// The directories whose sync makes this name change durable.
    pub fn dirs(&self) -> Vec<Ino> {
        match *self {
            What::Link { dir, .. } | What::Unlink { dir, .. } => vec![dir],
            What::Rename { from, to, .. } if from == to => vec![from],
            What::Rename { from, to, .. } => vec![from, to],
            _ => Vec::new(),
        }
    }

    /// The inode whose sync makes this change durable, and whether an `fdatasync` does.
    pub fn inode(&self) -> Option<(Ino, bool)> {
        match *self {
            What::Write { ino, .. } | What::Truncate { ino, .. } => Some((ino, true)),
            What::Chmod { ino, .. } | What::Chown { ino, .. } => Some((ino, false)),
            _ => None,
        }
    }

    /// Whether this is a sync rather than a change.
    pub fn is_sync(&self) -> bool {
        matches!(self, What::Sync { .. } | What::SyncAll { .. })
    }
}

/// A run on the model: the checked directories before it (with every inode the run
/// created, as it was created) and what the run did to them, in order.
#[derive(Debug, Clone)]
pub struct Recording {
    /// The state before the run.
    pub before: Fs,
    /// The operations, in the order they returned; a sync's `covers` counts among them.
    pub ops: Vec<Op>,
}
