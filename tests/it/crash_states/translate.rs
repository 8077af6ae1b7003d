//! From recorded calls to operations on the model: each call that returned is replayed on
//! the checked directories as they were before the run, and those that touched them
//! become [`Op`]s, with the inodes they name found in the model as it stands at that
//! call. A call the model cannot represent on a checked path stops the test.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::model::{Fs, Ino, Inode, Kind, Op, Recording, What, SGID};
use super::record::Call;

/// Who creates files in the run, and with which umask.
#[derive(Debug, Clone, Copy)]
pub struct Creator {
    /// The creating user.
    pub uid: u32,
    /// The creating user's group.
    pub gid: u32,
    /// The umask the program was started with.
    pub umask: u32,
}

impl Creator {
    /// The test process's own user, group and umask (inherited by what it starts).
    pub fn this_process() -> Creator {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let umask = status
            .lines()
            .find_map(|l| l.strip_prefix("Umask:"))
            .map(|m| u32::from_str_radix(m.trim(), 8).unwrap())
            .expect("Umask in /proc/self/status");
        Creator {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            umask,
        }
    }
}

/// Replays `calls` on `before` (the checked directories as they were), turning those
/// that touched them into operations. Returns the recording and the state the run left.
/// Panics on a call the model cannot represent on a checked path.
pub fn translate(before: Fs, calls: &[Call], creator: Creator) -> (Recording, Fs) {
    let mut t = Translator {
        before: before.clone(),
        now: before,
        ops: Vec::new(),
        offsets: HashMap::new(),
        ops_at_call: Vec::with_capacity(calls.len() + 1),
        creator,
    };
    for call in calls {
        t.ops_at_call.push(t.ops.len());
        if call.ret >= 0 {
            t.call(call);
        }
    }
    let recording = Recording {
        before: t.before,
        ops: t.ops,
    };
    (recording, t.now)
}

struct Translator {
    before: Fs,
    now: Fs,
    ops: Vec<Op>,
    /// The file offset of a descriptor (by number) on an inode: None when it appends.
    offsets: HashMap<(i32, Ino), Option<u64>>,
    /// How many operations the calls before each call made.
    ops_at_call: Vec<usize>,
    creator: Creator,
}

impl Translator {
    fn push(&mut self, what: What, label: String) {
        let op = Op { what, label };
        self.now.apply(&op, false);
        self.ops.push(op);
    }

    /// A new inode, in the model before the run and now.
    fn create(&mut self, kind: Kind, mode: u32, dir: Ino) -> Ino {
        let parent = self.now.inode(dir);
        let inherit = parent.mode & SGID != 0;
        let gid = if inherit {
            parent.gid
        } else {
            self.creator.gid
        };
        let setgid = if inherit && matches!(kind, Kind::Dir(_)) {
            SGID
        } else {
            0
        };
        let inode = Inode {
            kind,
            mode: mode | setgid,
            uid: self.creator.uid,
            gid,
        };
        let ino = self.now.add(inode.clone());
        assert_eq!(self.before.add(inode), ino);
        ino
    }

    /// The parent directory and name of a checked path, which must exist.
    fn parent(&self, call: &Call, path: &Path) -> (Ino, OsString) {
        self.now.parent(path).unwrap_or_else(|| {
            panic!(
                "{}: no directory for {} in the model",
                call.name,
                path.display()
            )
        })
    }

    fn inode_at(&self, call: &Call, path: &Path, follow: bool) -> Ino {
        self.now
            .lookup(path, follow)
            .unwrap_or_else(|| panic!("{}: {} is not in the model", call.name, path.display()))
    }

    /// The inode of descriptor argument `i`, if it is a checked file.
    fn fd_inode(&self, call: &Call, i: usize) -> Option<Ino> {
        let path = call.fd_path(i)?;
        if !self.now.covers(&path) {
            return None;
        }
        assert!(
            !path.as_os_str().as_bytes().ends_with(b" (deleted)"),
            "{}: a file removed while open ({}): the model cannot follow it",
            call.name,
            path.display()
        );
        Some(self.inode_at(call, &path, false))
    }

    fn call(&mut self, call: &Call) {
        let name = call.name.as_str();
        match name {
            "open" => self.open(call, call.path(0), 1, 2),
            "openat" => self.open(call, call.at_path(0, 1), 2, 3),
            "write" | "pwrite64" => self.write(call),
            "lseek" => {
                if let (Some(ino), Some(fd)) = (self.fd_inode(call, 0), call.fd(0)) {
                    self.offsets.insert((fd, ino), Some(call.ret as u64));
                }
            }
            "truncate" | "ftruncate" => {
                let ino = if name == "truncate" {
                    let path = call.path(0);
                    self.now
                        .holds(&path)
                        .then(|| self.inode_at(call, &path, true))
                } else {
                    self.fd_inode(call, 0)
                };
                if let Some(ino) = ino {
                    let len = call.int(1) as u64;
                    let label = format!("truncate {} to {len}", self.now.name_of(ino));
                    self.push(What::Truncate { ino, len }, label);
                }
            }
            "chmod" | "fchmod" | "fchmodat" => {
                let (ino, mode) = match name {
                    "chmod" => (self.path_inode(call, call.path(0), true), call.int(1)),
                    "fchmod" => (self.fd_inode(call, 0), call.int(1)),
                    _ => {
                        let follow = !call.has_flag(3, "AT_SYMLINK_NOFOLLOW");
                        (
                            self.path_inode(call, call.at_path(0, 1), follow),
                            call.int(2),
                        )
                    }
                };
                if let Some(ino) = ino {
                    let mode = mode as u32 & 0o7777;
                    let label = format!("chmod {} {mode:04o}", self.now.name_of(ino));
                    self.push(What::Chmod { ino, mode }, label);
                }
            }
            "chown" | "lchown" | "fchown" | "fchownat" => {
                let (ino, first) = match name {
                    "chown" => (self.path_inode(call, call.path(0), true), 1),
                    "lchown" => (self.path_inode(call, call.path(0), false), 1),
                    "fchown" => (self.fd_inode(call, 0), 1),
                    _ => {
                        let follow = !call.has_flag(4, "AT_SYMLINK_NOFOLLOW");
                        (self.path_inode(call, call.at_path(0, 1), follow), 2)
                    }
                };
                if let Some(ino) = ino {
                    let id = |i: usize| u32::try_from(call.int(i)).ok();
                    let (uid, gid) = (id(first), id(first + 1));
                    let label = format!("chown {} {uid:?}:{gid:?}", self.now.name_of(ino));
                    self.push(What::Chown { ino, uid, gid }, label);
                }
            }
            "rename" => self.rename(call, call.path(0), call.path(1)),
            "renameat" | "renameat2" => {
                assert!(
                    !call.has_flag(4, "RENAME_EXCHANGE"),
                    "renameat2: RENAME_EXCHANGE is not modelled"
                );
                self.rename(call, call.at_path(0, 1), call.at_path(2, 3));
            }
            "unlink" | "rmdir" => self.unlink(call, call.path(0)),
            "unlinkat" => self.unlink(call, call.at_path(0, 1)),
            "link" => self.link(call, call.path(0), call.path(1), false),
            "linkat" => {
                let follow = call.has_flag(4, "AT_SYMLINK_FOLLOW");
                self.link(call, call.at_path(0, 1), call.at_path(2, 3), follow);
            }
            "symlink" => self.symlink(call, call.path(0), call.path(1)),
            "symlinkat" => self.symlink(call, call.path(0), call.at_path(1, 2)),
            "mkdir" => self.mkdir(call, call.path(0), call.int(1)),
            "mkdirat" => self.mkdir(call, call.at_path(0, 1), call.int(2)),
            "fsync" | "fdatasync" => {
                if let Some(ino) = self.fd_inode(call, 0) {
                    let covers = self.ops_at_call[call.entered];
                    let data_only = name == "fdatasync";
                    let label = format!("{name} {}", self.now.name_of(ino));
                    self.push(
                        What::Sync {
                            ino,
                            data_only,
                            covers,
                        },
                        label,
                    );
                }
            }
            "sync" | "syncfs" => {
                let covers = self.ops_at_call[call.entered];
                self.push(What::SyncAll { covers }, name.to_string());
            }
            // It makes no metadata durable, nor the data of a file whose size changed.
            "sync_file_range" => {}
            _ => self.unsupported(call),
        }
    }

    /// The inode at a path, if it is a checked path.
    fn path_inode(&self, call: &Call, path: PathBuf, follow: bool) -> Option<Ino> {
        self.now
            .holds(&path)
            .then(|| self.inode_at(call, &path, follow))
    }

    /// A call the model does not handle: fine unless it names a checked file.
    fn unsupported(&self, call: &Call) {
        let touches = (0..call.args.len()).any(|i| {
            call.fd_path(i).is_some_and(|p| self.now.holds(&p))
                || (call.arg(i).starts_with('"')
                    && !call.arg(i).ends_with("...")
                    && self.now.holds(&call.path(i)))
        });
        assert!(
            !touches,
            "{}({}) touches a checked file and is not modelled",
            call.name,
            call.args.join(", ")
        );
    }

    fn open(&mut self, call: &Call, path: PathBuf, flags: usize, mode: usize) {
        if !self.now.holds(&path) {
            return;
        }
        let follow = !call.has_flag(flags, "O_NOFOLLOW");
        let ino = match self.now.lookup(&path, follow) {
            Some(ino) => {
                if call.has_flag(flags, "O_TRUNC") {
                    let label = format!("open {} O_TRUNC", self.now.name_of(ino));
                    self.push(What::Truncate { ino, len: 0 }, label);
                }
                ino
            }
            None => {
                assert!(
                    call.has_flag(flags, "O_CREAT"),
                    "open: {} is not in the model",
                    path.display()
                );
                let (dir, name) = self.parent(call, &path);
                let mode = call.int(mode) as u32 & 0o7777 & !self.creator.umask;
                let ino = self.create(Kind::File(Vec::new()), mode, dir);
                let label = format!("create {} {mode:04o}", path.display());
                self.push(What::Link { dir, name, ino }, label);
                ino
            }
        };
        let fd = call.ret as i32;
        let start = (!call.has_flag(flags, "O_APPEND")).then_some(0);
        self.offsets.insert((fd, ino), start);
    }

    fn write(&mut self, call: &Call) {
        let (Some(ino), Some(fd)) = (self.fd_inode(call, 0), call.fd(0)) else {
            return;
        };
        let mut data = call.bytes(1);
        data.truncate(call.ret as usize);
        let size = match &self.now.inode(ino).kind {
            Kind::File(bytes) => bytes.len() as u64,
            _ => panic!("{}: write to a non-file", call.name),
        };
        let offset = if call.name == "pwrite64" {
            call.int(3) as u64
        } else {
            let at = self.offsets.entry((fd, ino)).or_insert(Some(0));
            let offset = at.unwrap_or(size);
            if let Some(at) = at {
                *at = offset + data.len() as u64;
            }
            offset
        };
        let label = format!(
            "write {} bytes at {offset} to {}",
            data.len(),
            self.now.name_of(ino)
        );
        self.push(What::Write { ino, offset, data }, label);
    }

    fn rename(&mut self, call: &Call, old: PathBuf, new: PathBuf) {
        match (self.now.holds(&old), self.now.holds(&new)) {
            (false, false) => {}
            (true, false) => self.unlink(call, old),
            (false, true) => panic!(
                "rename: {} comes from outside the checked directories",
                new.display()
            ),
            (true, true) => {
                let ino = self.inode_at(call, &old, false);
                let (from, from_name) = self.parent(call, &old);
                let (to, to_name) = self.parent(call, &new);
                let label = format!("rename {} -> {}", old.display(), new.display());
                self.push(
                    What::Rename {
                        from,
                        from_name,
                        to,
                        to_name,
                        ino,
                    },
                    label,
                );
            }
        }
    }

    fn unlink(&mut self, call: &Call, path: PathBuf) {
        if !self.now.holds(&path) {
            return;
        }
        let ino = self.inode_at(call, &path, false);
        let (dir, name) = self.parent(call, &path);
        let label = format!("unlink {}", path.display());
        self.push(What::Unlink { dir, name, ino }, label);
    }

    fn link(&mut self, call: &Call, old: PathBuf, new: PathBuf, follow: bool) {
        if !self.now.holds(&new) {
            return;
        }
        assert!(
            self.now.holds(&old),
            "link: {} comes from outside the checked directories",
            new.display()
        );
        let ino = self.inode_at(call, &old, follow);
        let (dir, name) = self.parent(call, &new);
        let label = format!("link {} -> {}", new.display(), old.display());
        self.push(What::Link { dir, name, ino }, label);
    }

    fn symlink(&mut self, call: &Call, target: PathBuf, path: PathBuf) {
        if !self.now.holds(&path) {
            return;
        }
        let (dir, name) = self.parent(call, &path);
        let label = format!("symlink {} -> {}", path.display(), target.display());
        let ino = self.create(Kind::Symlink(target), 0o777, dir);
        self.push(What::Link { dir, name, ino }, label);
    }

    fn mkdir(&mut self, call: &Call, path: PathBuf, mode: i64) {
        if !self.now.holds(&path) {
            return;
        }
        let (dir, name) = self.parent(call, &path);
        let mode = mode as u32 & 0o1777 & !self.creator.umask;
        let ino = self.create(Kind::Dir(BTreeMap::new()), mode, dir);
        let label = format!("mkdir {} {mode:04o}", path.display());
        self.push(What::Link { dir, name, ino }, label);
    }
}
