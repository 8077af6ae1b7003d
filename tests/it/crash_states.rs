//! Crash states explored, in the manner of ALICE (OSDI 2014) and CrashMonkey: the real
//! `reconfig` binary does real work against a real etcd under `strace` ([`record`]); its
//! file-system calls on the checked directories are replayed on an in-memory model of
//! them ([`translate`], [`model`]); every state a crash could leave on disk under the
//! persistence model of docs/crash-states.md is enumerated ([`explore`]); and the
//! scenario's invariants ([`check`]) are checked in each. Unsafe writers (a file written
//! in place, a rename before the file's sync, a removal before the flip it depends on is
//! synced) show that it finds what it should.
//!
//! A scenario is a function: set up the files and etcd, [`Recorder::new`] over the
//! directories to check, run a program with [`Recorder::command`], [`Recorder::finish`],
//! then [`explore`] with the invariants and `assert` the report.

mod check;
mod explore;
mod model;
mod record;
mod translate;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;
use check::{Dispense, ReloadClaim, Seen, Target, Unconfirmed, Whole};
use explore::{explore, Checked, Report};
use model::{Fs, Recording};
use nix::sys::signal::Signal;
use translate::{translate, Creator};

const LIMIT: Duration = Duration::from_secs(60);

/// The checked directories, captured before a recorded run.
struct Recorder {
    roots: Vec<PathBuf>,
    before: Fs,
    trace: tempfile::TempDir,
}

impl Recorder {
    /// Captures `roots` as they are now.
    fn new(roots: &[&Path]) -> Recorder {
        let strace = std::process::Command::new("strace").arg("-V").output();
        assert!(
            strace.is_ok_and(|out| out.status.success()),
            "strace must be installed (scripts/deps installs it)"
        );
        let roots: Vec<PathBuf> = roots
            .iter()
            .map(|r| std::fs::canonicalize(r).unwrap())
            .collect();
        Recorder {
            before: Fs::snapshot(&roots),
            roots,
            trace: tempfile::tempdir().unwrap(),
        }
    }

    fn log(&self) -> PathBuf {
        self.trace.path().join("trace")
    }

    /// `program` run under strace, with no etcd settings inherited from the environment.
    fn command(&self, program: &str) -> tokio::process::Command {
        let mut cmd = binary("strace");
        cmd.args(record::strace_args(&self.log())).arg(program);
        cmd
    }

    /// The recording of the run, once it ended; panics if the model's replay does not end
    /// where the disk is (a call missed or misread).
    fn finish(self) -> Recording {
        let calls = record::read_trace(&self.log());
        let (recording, after) = translate(self.before, &calls, Creator::this_process());
        let disk = Fs::snapshot(&self.roots).render();
        assert_eq!(
            after.render(),
            disk,
            "the replay of the recorded calls ends elsewhere than the disk"
        );
        recording
    }
}

/// The ids of the user `nobody` and the group `nogroup`.
fn nobody() -> (u32, u32) {
    let user = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let group = nix::unistd::Group::from_name("nogroup").unwrap().unwrap();
    (user.uid.as_raw(), group.gid.as_raw())
}

/// A file with `bytes` and `mode`, the test's own (as the files it makes are, and those a
/// run of reconfig makes without an owner to give them).
fn mine(bytes: &[u8], mode: u32) -> Seen {
    let me = Creator::this_process();
    Seen::file(bytes, mode, me.uid, me.gid)
}

/// One entry rendering the etcd key `/app` and a newline into `out/app.conf`, its state
/// kept in `state/`, recorded over both.
struct OneEntry {
    dir: tempfile::TempDir,
    etcd: EtcdServer,
    target: PathBuf,
    state: PathBuf,
}

impl OneEntry {
    /// etcd with `/app` = `value`, and the target holding `old` (text and mode) if given.
    async fn new(value: &str, old: Option<(&str, u32)>) -> OneEntry {
        let etcd = EtcdServer::start().await;
        etcd.put_all([("/app", value)]).await;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let target = out.join("app.conf");
        if let Some((text, mode)) = old {
            file(&target, text, mode);
        }
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        OneEntry {
            dir,
            etcd,
            target,
            state,
        }
    }

    /// The entry's record in the state directory, and the previous content kept beside it.
    fn record(&self) -> (PathBuf, PathBuf) {
        let hash = check::digest(self.target.as_os_str().as_encoded_bytes());
        let stem = format!("app-{}", &hash[..16]);
        (
            self.state.join(format!("{stem}.json")),
            self.state.join(format!("{stem}.previous")),
        )
    }

    /// `reconfig --onetime` of the entry with the JSON fields `extra` (each starting with
    /// a comma), recorded; it must exit with `code`.
    async fn onetime(&self, extra: &str, code: i32) -> Recording {
        let json = format!(
            r#"{{"id":"app","key":"/app","source":"t","target":"{}"{extra}}}"#,
            self.target.display()
        );
        let template = "<%= data[\"/app\"] %>\n";
        let cfg = cfgdir(self.dir.path(), &[("app", json)], &[("t", template)]);
        let recorder = Recorder::new(&[self.target.parent().unwrap(), &self.state]);
        let args = [
            "--onetime",
            "--cfgdir",
            cfg.to_str().unwrap(),
            "--endpoints",
            &self.etcd.endpoint,
            "--state-dir",
            self.state.to_str().unwrap(),
        ];
        let run = run_command(recorder.command(env!("CARGO_BIN_EXE_reconfig")), args).await;
        assert_eq!(run.code, code, "{}", run.stderr);
        recorder.finish()
    }

    /// The target goes through `states`, whole, in every crash state.
    fn whole(&self, states: Vec<Seen>) -> Checked {
        Checked::new(Whole::new(Target(self.target.clone()), states))
    }
}

/// A file with `text` and `mode`.
fn file(path: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test]
async fn a_replaced_target_is_old_or_new() {
    let entry = OneEntry::new("new", Some(("old\n", 0o640))).await;
    let recording = entry.onetime("", 0).await;
    let states = vec![mine(b"old\n", 0o640), mine(b"new\n", 0o640)];
    let checks = vec![entry.whole(states)];
    explore("a target replaced", &recording, checks).assert();
}

#[tokio::test]
async fn a_reload_is_recorded_only_for_content_the_target_holds() {
    let entry = OneEntry::new("new", Some(("old\n", 0o640))).await;
    let recording = entry.onetime(r#","reloadcmd":"true""#, 0).await;
    let states = vec![mine(b"old\n", 0o640), mine(b"new\n", 0o640)];
    let (record, _) = entry.record();
    let claim = ReloadClaim {
        target: entry.target.clone(),
        record,
    };
    let checks = vec![entry.whole(states), Checked::new(claim)];
    explore("a target replaced, its reload recorded", &recording, checks).assert();
}

#[tokio::test]
async fn a_target_checked_before_the_swap_is_old_or_new() {
    let entry = OneEntry::new("new", Some(("old\n", 0o644))).await;
    let recording = entry
        .onetime(r#","checkcmd":"grep -q new {{src}}""#, 0)
        .await;
    let states = vec![mine(b"old\n", 0o644), mine(b"new\n", 0o644)];
    let checks = vec![entry.whole(states)];
    explore("a target with a staged-file check", &recording, checks).assert();
}

#[tokio::test]
async fn a_target_rolled_back_after_its_check_failed_is_old_or_new() {
    // The previous content put back; and, without one, the new file removed.
    for (old, mode) in [(Some("old good\n"), 0o600), (None, 0o644)] {
        let entry = OneEntry::new("new", old.map(|old| (old, mode))).await;
        let check = format!(r#","checkcmd":"grep -q good {}""#, entry.target.display());
        let recording = entry.onetime(&check, 1).await;
        let old_text = old;
        let old = old.map_or(Seen::Absent, |old| mine(old.as_bytes(), mode));
        let states = vec![old.clone(), mine(b"new\n", mode), old];
        let scenario = match states[0] {
            Seen::Absent => "a failed post-swap check, the new file removed",
            _ => "a failed post-swap check rolled back",
        };
        // A crash can leave the rejected content in place: then the record says so, and
        // the next start checks it again and puts the previous file back.
        let (record, previous) = entry.record();
        let unconfirmed = Unconfirmed {
            target: entry.target.clone(),
            rejected: b"new\n".to_vec(),
            record,
            previous: (previous, old_text.map(|t| t.as_bytes().to_vec())),
        };
        let checks = vec![entry.whole(states), Checked::new(unconfirmed)];
        explore(scenario, &recording, checks).assert();
    }
}

#[tokio::test]
async fn a_first_render_is_nothing_or_new() {
    let entry = OneEntry::new("new", None).await;
    let fields = r#","mode":"0640","owner":"nobody","group":"nogroup""#;
    let recording = entry.onetime(fields, 0).await;
    let (uid, gid) = nobody();
    let states = vec![Seen::Absent, Seen::file(b"new\n", 0o640, uid, gid)];
    explore("a first render", &recording, vec![entry.whole(states)]).assert();
}

#[tokio::test]
async fn drift_fixed_in_place_is_never_looser() {
    let entry = OneEntry::new("same", Some(("same\n", 0o644))).await;
    let recording = entry.onetime(r#","mode":"0600","owner":"nobody""#, 0).await;
    let (uid, _) = nobody();
    let me = Creator::this_process();
    let states = vec![
        mine(b"same\n", 0o644),
        Seen::file(b"same\n", 0o600, uid, me.gid),
    ];
    let checks = vec![entry.whole(states)];
    explore("mode and owner drift fixed in place", &recording, checks).assert();
}

/// Changes to keys under `/certs/` made in one transaction: a value, or `None` to delete.
type Changes<'a> = &'a [(&'a str, Option<&'a str>)];

/// A dispense target: etcd, and an empty directory in a temporary one.
struct Certs {
    etcd: EtcdServer,
    _dir: tempfile::TempDir,
    target: PathBuf,
}

impl Certs {
    async fn new() -> Certs {
        let etcd = EtcdServer::start().await;
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("certs");
        std::fs::create_dir(&target).unwrap();
        Certs {
            etcd,
            _dir: dir,
            target,
        }
    }

    /// `first` made, then `reconfig dispense` of `/certs` into the target, recorded over
    /// it, stopped once it published the first version and one more after each of `then`,
    /// each made once the previous publish was seen.
    async fn dispense(&self, first: Changes<'_>, then: &[Changes<'_>]) -> Recording {
        self.change(first).await;
        let recorder = Recorder::new(&[&self.target]);
        let log = recorder.trace.path().join("dispense.log");
        let args = [
            "dispense",
            "-p",
            "/certs",
            "-t",
            self.target.to_str().unwrap(),
            "--endpoints",
            &self.etcd.endpoint,
        ];
        let program = recorder.command(env!("CARGO_BIN_EXE_reconfig"));
        let mut daemon = Daemon::spawn(program, args, &log);
        let published = |daemon: &Daemon| daemon.log().matches(": published ").count();
        for n in 0..=then.len() {
            if n > 0 {
                self.change(then[n - 1]).await;
            }
            assert!(
                eventually(LIMIT, || published(&daemon) > n).await,
                "publish {} never came:\n{}",
                n + 1,
                daemon.log()
            );
        }
        let strace = daemon.pid().as_raw() as u32;
        let pid = record::tracee(strace).expect("dispense runs under strace");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGTERM).unwrap();
        assert_eq!(daemon.wait_exit(LIMIT).await, Some(0), "{}", daemon.log());
        recorder.finish()
    }

    /// One etcd transaction of `changes`.
    async fn change(&self, changes: Changes<'_>) {
        let ops: Vec<etcd_client::TxnOp> = changes
            .iter()
            .map(|(key, value)| {
                let key = format!("/certs/{key}");
                match value {
                    Some(value) => etcd_client::TxnOp::put(key, *value, None),
                    None => etcd_client::TxnOp::delete(key, None),
                }
            })
            .collect();
        let mut client = self.etcd.client().await;
        let txn = etcd_client::Txn::new().and_then(ops);
        client.txn(txn).await.unwrap();
    }

    /// `..data` leads to a whole version among `versions` in every crash state.
    fn whole(&self, versions: Vec<Seen>) -> Checked {
        Checked::new(Whole::new(Dispense(self.target.clone()), versions))
    }
}

/// The files of a payload as `reconfig dispense` writes them by default (0600, its user's).
fn payload(files: &[(&str, &str)]) -> Seen {
    let me = Creator::this_process();
    Seen::tree(files, 0o600, me.uid, me.gid)
}

#[tokio::test]
async fn a_first_publish_after_a_restart_leaves_a_whole_version() {
    let certs = Certs::new().await;
    let first = [
        ("a", Some("a1")),
        ("b", Some("b1")),
        ("sub/c", Some("c1")),
        ("gone", Some("g1")),
    ];
    // A previous run: a live version and the one before it, kept for reuse.
    certs.dispense(&first, &[&[("a", Some("a2"))]]).await;
    let old = payload(&[("a", "a2"), ("b", "b1"), ("gone", "g1"), ("sub/c", "c1")]);

    let changes = [("a", Some("a3")), ("gone", None), ("new", Some("n1"))];
    let recording = certs.dispense(&changes, &[]).await;
    let new = payload(&[("a", "a3"), ("b", "b1"), ("new", "n1"), ("sub/c", "c1")]);
    let checks = vec![certs.whole(vec![old, new])];
    explore("a first publish after a restart", &recording, checks).assert();
}

#[tokio::test]
async fn incremental_publishes_leave_a_whole_version() {
    let certs = Certs::new().await;
    let first = [("a", Some("a1")), ("b", Some("b1")), ("sub/c", Some("c1"))];
    // The second publish links what did not change; the third recycles the first version,
    // with a new directory below one that is kept.
    let second: Changes = &[("a", Some("a2"))];
    let third: Changes = &[("b", None), ("d", Some("d1")), ("sub/deep/e", Some("e1"))];
    let recording = certs.dispense(&first, &[second, third]).await;
    let versions = vec![
        Seen::Absent,
        payload(&[("a", "a1"), ("b", "b1"), ("sub/c", "c1")]),
        payload(&[("a", "a2"), ("b", "b1"), ("sub/c", "c1")]),
        payload(&[
            ("a", "a2"),
            ("d", "d1"),
            ("sub/c", "c1"),
            ("sub/deep/e", "e1"),
        ]),
    ];
    explore(
        "incremental publishes",
        &recording,
        vec![certs.whole(versions)],
    )
    .assert();
}

/// `sh -c SCRIPT` with `dir` as `$1`, recorded over `dir`.
async fn shell(dir: &Path, script: &str) -> Recording {
    let recorder = Recorder::new(&[dir]);
    let args = ["-c", script, "sh", dir.to_str().unwrap()];
    let run = run_command(recorder.command("/bin/sh"), args).await;
    assert_eq!(run.code, 0, "{script}: {}", run.stderr);
    recorder.finish()
}

/// The crash states of a writer replacing `$1/t` ("old\n", 0644) by "new\n" with `script`.
async fn writer(name: &str, script: &str) -> Report {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t");
    file(&target, "old\n", 0o644);
    let recording = shell(dir.path(), script).await;
    let states = vec![mine(b"old\n", 0o644), mine(b"new\n", 0o644)];
    let target = Checked::new(Whole::new(Target(target), states));
    explore(name, &recording, vec![target])
}

#[tokio::test]
async fn unsafe_writers_are_caught() {
    // Written in place: a crash finds the file emptied or half-written.
    let in_place = writer("an in-place writer", r#"printf 'new\n' > $1/t"#).await;
    eprintln!("{in_place}");
    assert!(in_place.broken("") > 0, "{in_place}");
    assert!(
        in_place
            .examples()
            .iter()
            .any(|e| e.contains(r#"holds "" 0644"#)),
        "{in_place}"
    );

    // Renamed before its data is synced: the rename may be durable, the data not.
    let unsynced = r#"printf 'new\n' > $1/.t.tmp && mv $1/.t.tmp $1/t"#;
    let unsynced = writer("a rename of an unsynced file", unsynced).await;
    eprintln!("{unsynced}");
    assert!(unsynced.broken("") > 0, "{unsynced}");
    assert!(
        unsynced
            .examples()
            .iter()
            .any(|e| e.contains("rename") && e.contains(r#"holds "" 0644"#)),
        "{unsynced}"
    );

    // The same, synced: the model accepts what is safe.
    let synced = r#"printf 'new\n' > $1/.t.tmp && sync $1/.t.tmp && mv $1/.t.tmp $1/t && sync $1"#;
    writer("a synced writer", synced).await.assert();
}

/// The crash states of a flip of `$1/..data` from `v1` (a = "0") to `v2` (a = "1") and
/// the removal of `v1`, by `script`.
async fn flipper(name: &str, script: &str) -> Report {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("v1")).unwrap();
    file(&dir.path().join("v1/a"), "0", 0o644);
    std::os::unix::fs::symlink("v1", dir.path().join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/a", dir.path().join("a")).unwrap();
    let recording = shell(dir.path(), script).await;
    let me = Creator::this_process();
    let versions = vec![
        Seen::tree(&[("a", "0")], 0o644, me.uid, me.gid),
        Seen::tree(&[("a", "1")], 0o644, me.uid, me.gid),
    ];
    let data = Checked::new(Whole::new(Dispense(dir.path().into()), versions));
    explore(name, &recording, vec![data])
}

#[tokio::test]
async fn a_removal_before_the_flip_is_durable_is_caught() {
    let write = "mkdir $1/v2 && printf 1 > $1/v2/a && sync $1/v2/a $1/v2 $1";
    let flip = "ln -s v2 $1/..data_tmp && mv -T $1/..data_tmp $1/..data";
    let early = flipper(
        "a removal before the flip is synced",
        &format!("{write} && {flip} && rm -r $1/v1 && sync $1"),
    )
    .await;
    eprintln!("{early}");
    assert!(early.broken("") > 0, "{early}");
    assert!(
        early
            .examples()
            .iter()
            .any(|e| e.contains("unlink") && e.contains("rename")),
        "{early}"
    );
    flipper(
        "a removal after the flip is synced",
        &format!("{write} && {flip} && sync $1 && rm -r $1/v1 && sync $1"),
    )
    .await
    .assert();
}
