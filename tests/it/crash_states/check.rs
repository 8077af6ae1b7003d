//! What is checked in every crash state: an [`Invariant`] over the model. The one the
//! scenarios share, [`Whole`], of a [`Target`] (one file) or of a [`Dispense`] target (the
//! version `..data` leads to), compares what a reader finds with the states the scenario
//! declares, in order (e.g. old, new): a crash state must hold the content of one of them,
//! no older than the newest the run had made durable at that point and no newer than the
//! newest it had shown; its modes and owners may grant nobody what neither those states
//! nor the one the run is heading for grants. Two more read an entry's record in the state
//! directory beside its target: [`Unconfirmed`] (a target holding what its post-swap check
//! rejected is marked for a check at the next start, the previous content kept whole to
//! put back) and [`ReloadClaim`] (the record never says the service was reloaded with
//! content the target does not hold).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::model::{Fs, Inode, Kind};

/// Something that must hold in every crash state.
pub trait Invariant {
    /// What is checked, for reports.
    fn name(&self) -> String;
    /// Called at each crash point before its states are checked, with the run's state
    /// there (every operation so far kept) and the durable one (every operation not yet
    /// synced lost).
    fn at_point(&mut self, run: &Fs, durable: &Fs);
    /// Why `crash` breaks the invariant, if it does.
    fn check(&self, crash: &Fs) -> Result<(), String>;
    /// After the last point: why the run was not the one the scenario meant, if it was not.
    fn finish(&self) -> Result<(), String> {
        Ok(())
    }
}

/// What a reader finds at the checked place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Nothing.
    Absent,
    /// Something no state can be: a dangling link, a directory where a file should be.
    Broken(String),
    /// Files, by path below the place (the empty path for a single file).
    Files(BTreeMap<PathBuf, FileSeen>),
}

/// A file as a reader finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSeen {
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Permission bits with set-id bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

impl FileSeen {
    /// `bytes` with `mode`, owned by `uid:gid`.
    pub fn new(bytes: &[u8], mode: u32, uid: u32, gid: u32) -> FileSeen {
        FileSeen {
            bytes: bytes.to_vec(),
            mode,
            uid,
            gid,
        }
    }

    fn of(inode: &Inode) -> FileSeen {
        let Kind::File(bytes) = &inode.kind else {
            unreachable!("only files are seen")
        };
        FileSeen::new(bytes, inode.mode, inode.uid, inode.gid)
    }

    /// Who may do what with the file: each class of the mode with its user or group, and
    /// the ids a set-id program runs with.
    fn grants(&self) -> BTreeSet<String> {
        let mut grants = BTreeSet::new();
        for (shift, who) in [
            (6, format!("user {}", self.uid)),
            (3, format!("group {}", self.gid)),
            (0, "others".to_string()),
        ] {
            for (bit, right) in [(4, "read"), (2, "write"), (1, "execute")] {
                if self.mode >> shift & bit != 0 {
                    grants.insert(format!("{who} may {right}"));
                }
            }
        }
        if self.mode & 0o4000 != 0 {
            grants.insert(format!("runs as user {}", self.uid));
        }
        if self.mode & 0o2000 != 0 {
            grants.insert(format!("runs as group {}", self.gid));
        }
        grants
    }
}

impl Seen {
    /// One file.
    pub fn file(bytes: &[u8], mode: u32, uid: u32, gid: u32) -> Seen {
        Seen::Files(BTreeMap::from([(
            PathBuf::new(),
            FileSeen::new(bytes, mode, uid, gid),
        )]))
    }

    /// Files by relative path, all with `mode` and `uid:gid`.
    pub fn tree(files: &[(&str, &str)], mode: u32, uid: u32, gid: u32) -> Seen {
        Seen::Files(
            files
                .iter()
                .map(|(path, text)| {
                    (
                        PathBuf::from(path),
                        FileSeen::new(text.as_bytes(), mode, uid, gid),
                    )
                })
                .collect(),
        )
    }

    /// The same names with the same bytes (modes and owners aside).
    fn same_content(&self, other: &Seen) -> bool {
        match (self, other) {
            (Seen::Absent, Seen::Absent) => true,
            (Seen::Files(a), Seen::Files(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|((pa, fa), (pb, fb))| pa == pb && fa.bytes == fb.bytes)
            }
            _ => false,
        }
    }

    /// The top-level names of the files.
    fn top_names(&self) -> BTreeSet<PathBuf> {
        match self {
            Seen::Files(files) => files
                .keys()
                .filter_map(|p| p.components().next())
                .map(|c| PathBuf::from(c.as_os_str()))
                .collect(),
            _ => BTreeSet::new(),
        }
    }

    /// A short description for messages.
    fn describe(&self) -> String {
        match self {
            Seen::Absent => "nothing".to_string(),
            Seen::Broken(why) => why.clone(),
            Seen::Files(files) if files.is_empty() => "no files".to_string(),
            Seen::Files(files) => files
                .iter()
                .map(|(path, f)| {
                    let text = String::from_utf8_lossy(&f.bytes);
                    let text: String = text.chars().take(40).collect();
                    let name = if path.as_os_str().is_empty() {
                        String::new()
                    } else {
                        format!("{}=", path.display())
                    };
                    format!("{name}{text:?} {:04o} {}:{}", f.mode, f.uid, f.gid)
                })
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// Following a run through the states a scenario declares, and checking crash states
/// against the window of them possible at each point.
struct Sequence {
    expected: Vec<Seen>,
    /// The newest declared state the run has shown.
    reached: usize,
    /// The newest declared state the run had made durable at the current point.
    floor: usize,
    /// Whether the state before the run is the first declared one.
    started: Option<bool>,
}

impl Sequence {
    fn new(expected: Vec<Seen>) -> Sequence {
        assert!(!expected.is_empty());
        Sequence {
            expected,
            reached: 0,
            floor: 0,
            started: None,
        }
    }

    fn at_point(&mut self, run: Seen, durable: Seen) {
        if self.started.is_none() {
            self.started = Some(run == self.expected[0]);
        }
        if self.expected.get(self.reached + 1) == Some(&run) {
            self.reached += 1;
        }
        let candidates = 0..=self.reached;
        self.floor = candidates
            .clone()
            .rev()
            .find(|&i| self.expected[i] == durable)
            .or_else(|| {
                candidates
                    .rev()
                    .find(|&i| self.expected[i].same_content(&durable))
            })
            .unwrap_or(0);
    }

    fn window(&self) -> &[Seen] {
        &self.expected[self.floor..=self.reached]
    }

    /// The index of the declared state `seen` holds, within the window; or why none.
    fn check(&self, seen: &Seen) -> Result<usize, String> {
        let window = self.window();
        let Some(found) = window.iter().position(|e| e.same_content(seen)) else {
            let wanted: Vec<String> = window.iter().map(Seen::describe).collect();
            return Err(format!(
                "holds {}; a reader may find only {}",
                seen.describe(),
                wanted.join(" or ")
            ));
        };
        // A change of mode or owner in progress may show some of its parts: the modes and
        // owners may mix those of the state being left and the one being reached.
        let next = (self.reached + 1).min(self.expected.len() - 1);
        let mixed = &self.expected[self.floor..=next];
        if let Seen::Files(files) = seen {
            for (path, file) in files {
                let allowed: BTreeSet<String> = mixed
                    .iter()
                    .filter_map(|e| match e {
                        Seen::Files(f) => f.get(path).map(FileSeen::grants),
                        _ => None,
                    })
                    .flatten()
                    .collect();
                let extra: Vec<String> = file.grants().difference(&allowed).cloned().collect();
                if !extra.is_empty() {
                    return Err(format!(
                        "{} {:04o} {}:{} grants what no state around it grants: {}",
                        path.display(),
                        file.mode,
                        file.uid,
                        file.gid,
                        extra.join(", ")
                    ));
                }
            }
        }
        Ok(self.floor + found)
    }

    fn finish(&self) -> Result<(), String> {
        if self.started != Some(true) {
            return Err(format!(
                "the state before the run is not the first one declared ({})",
                self.expected[0].describe()
            ));
        }
        if self.reached + 1 < self.expected.len() {
            return Err(format!(
                "the run never showed {} (declared state {})",
                self.expected[self.reached + 1].describe(),
                self.reached + 1
            ));
        }
        Ok(())
    }
}

/// A place whose crash states [`Whole`] checks against the states a scenario declares.
pub trait Place {
    /// The place, for reports.
    fn name(&self) -> String;
    /// What a reader finds there in `fs`.
    fn seen(&self, fs: &Fs) -> Seen;
    /// What else must hold in `crash`, which holds the declared state `index`.
    fn also(&self, _crash: &Fs, _expected: &[Seen], _index: usize) -> Result<(), String> {
        Ok(())
    }
}

/// At every crash point the place holds one of the declared states possible there, whole,
/// with modes and owners no looser.
pub struct Whole<P> {
    place: P,
    sequence: Sequence,
}

impl<P: Place> Whole<P> {
    /// `place` goes through `states` in the run (e.g. `[old, new]`).
    pub fn new(place: P, states: Vec<Seen>) -> Whole<P> {
        Whole {
            place,
            sequence: Sequence::new(states),
        }
    }
}

impl<P: Place> Invariant for Whole<P> {
    fn name(&self) -> String {
        format!("{} is whole", self.place.name())
    }

    fn at_point(&mut self, run: &Fs, durable: &Fs) {
        let (run, durable) = (self.place.seen(run), self.place.seen(durable));
        self.sequence.at_point(run, durable);
    }

    fn check(&self, crash: &Fs) -> Result<(), String> {
        let index = self.sequence.check(&self.place.seen(crash))?;
        self.place.also(crash, &self.sequence.expected, index)
    }

    fn finish(&self) -> Result<(), String> {
        self.sequence.finish()
    }
}

/// One file, links followed.
pub struct Target(pub PathBuf);

impl Place for Target {
    fn name(&self) -> String {
        self.0.display().to_string()
    }

    fn seen(&self, fs: &Fs) -> Seen {
        match fs.lookup(&self.0, true) {
            None if fs.lookup(&self.0, false).is_some() => {
                Seen::Broken("a dangling link".to_string())
            }
            None => Seen::Absent,
            Some(ino) => match &fs.inode(ino).kind {
                Kind::File(_) => Seen::Files(BTreeMap::from([(
                    PathBuf::new(),
                    FileSeen::of(fs.inode(ino)),
                )])),
                _ => Seen::Broken("not a regular file".to_string()),
            },
        }
    }
}

/// A `reconfig dispense` target: the version `..data` leads to; and every top-level name
/// that version shares with the one declared before it (every name of the first) resolves
/// to the version's file.
pub struct Dispense(pub PathBuf);

impl Dispense {
    fn data(&self) -> PathBuf {
        self.0.join("..data")
    }
}

impl Place for Dispense {
    fn name(&self) -> String {
        format!("the version {} leads to", self.data().display())
    }

    fn seen(&self, fs: &Fs) -> Seen {
        if fs.lookup(&self.data(), false).is_none() {
            return Seen::Absent;
        }
        let Some(version) = fs.lookup(&self.data(), true) else {
            return Seen::Broken("..data leads nowhere".to_string());
        };
        match fs.files_below(version) {
            Some(files) => Seen::Files(
                files
                    .into_iter()
                    .map(|(path, inode)| (path, FileSeen::of(inode)))
                    .collect(),
            ),
            None => Seen::Broken("..data is not a directory".to_string()),
        }
    }

    fn also(&self, crash: &Fs, expected: &[Seen], index: usize) -> Result<(), String> {
        // The links of the names this version shares with the one before it (all of them
        // for the first, which the run found made) were made and synced by an earlier
        // publish; those of its new names may still be missing.
        let mut shared = expected[index].top_names();
        if index > 0 {
            shared.retain(|name| expected[index - 1].top_names().contains(name));
        }
        for name in shared {
            let stable = crash.lookup(&self.0.join(&name), true);
            if stable.is_none() || stable != crash.lookup(&self.data().join(&name), true) {
                return Err(format!("{} does not lead to ..data/{0}", name.display()));
            }
        }
        Ok(())
    }
}

/// The record of an entry, as JSON, in a crash state; None when there is none (or not
/// yet a whole one: a record is renamed into place whole, so a partial one is a failure).
fn record(crash: &Fs, path: &Path) -> Result<Option<serde_json::Value>, String> {
    match crash.file(path).map(|inode| &inode.kind) {
        Some(Kind::File(bytes)) => serde_json::from_slice(bytes)
            .map(Some)
            .map_err(|e| format!("{} is not a whole record: {e}", path.display())),
        _ => Ok(None),
    }
}

/// SHA-256 in hex, as records name contents.
pub(super) fn digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A target holds the content its post-swap check rejected only while the entry's record
/// marks that content unconfirmed (so the next start checks it again and puts the previous
/// file back), with the previous content kept whole beside the record.
pub struct Unconfirmed {
    /// The target.
    pub target: PathBuf,
    /// The content its check rejects.
    pub rejected: Vec<u8>,
    /// The entry's record.
    pub record: PathBuf,
    /// The previous content kept beside it, and what it must hold (None: there was none).
    pub previous: (PathBuf, Option<Vec<u8>>),
}

impl Invariant for Unconfirmed {
    fn name(&self) -> String {
        format!(
            "{} holds the content its check rejected only while {} marks it unconfirmed",
            self.target.display(),
            self.record.display()
        )
    }

    fn at_point(&mut self, _run: &Fs, _durable: &Fs) {}

    fn check(&self, crash: &Fs) -> Result<(), String> {
        match crash.file(&self.target).map(|inode| &inode.kind) {
            Some(Kind::File(bytes)) if *bytes == self.rejected => {}
            _ => return Ok(()),
        }
        let record = record(crash, &self.record)?
            .ok_or("holds the rejected content, and there is no record")?;
        let marked = record["unconfirmed"]["sha256"].as_str();
        if marked != Some(digest(&self.rejected).as_str()) {
            return Err(format!(
                "holds the rejected content, and the record does not mark it: {record}"
            ));
        }
        let (path, old) = &self.previous;
        match (crash.file(path).map(|inode| &inode.kind), old) {
            (_, None) => Ok(()),
            (Some(Kind::File(bytes)), Some(old)) if bytes == old => Ok(()),
            _ => Err(format!(
                "holds the rejected content, and {} does not hold the previous content",
                path.display()
            )),
        }
    }
}

/// The record never says, with no reload due, that the service was reloaded with content
/// the target does not hold.
pub struct ReloadClaim {
    /// The target.
    pub target: PathBuf,
    /// The entry's record.
    pub record: PathBuf,
}

impl Invariant for ReloadClaim {
    fn name(&self) -> String {
        format!(
            "{} claims no reload of content {} does not hold",
            self.record.display(),
            self.target.display()
        )
    }

    fn at_point(&mut self, _run: &Fs, _durable: &Fs) {}

    fn check(&self, crash: &Fs) -> Result<(), String> {
        let Some(record) = record(crash, &self.record)? else {
            return Ok(());
        };
        if record["reload_pending"].as_bool() == Some(true) {
            return Ok(());
        }
        let Some(reloaded) = record["reloaded"].as_str() else {
            return Ok(());
        };
        let holds = match crash.file(&self.target).map(|inode| &inode.kind) {
            Some(Kind::File(bytes)) => digest(bytes),
            _ => String::new(),
        };
        if holds == reloaded {
            Ok(())
        } else {
            Err(format!(
                "the record says the service runs what the target does not hold: {record}"
            ))
        }
    }
}
