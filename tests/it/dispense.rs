//! `reconfig dispense` and child supervision against a real etcd and a real child: a shell
//! script that logs, at start and at every signal, the signal and the files it sees.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use etcd_client::{DeleteOptions, Txn, TxnOp};
use nix::sys::signal::Signal;
use notify::event::{ModifyKind, RenameMode};
use notify::{EventKind, RecursiveMode, Watcher};

const LIMIT: Duration = Duration::from_secs(20);

/// The child: `sh child.sh LOG FILE...` appends `EVENT CONTENT...` to LOG at start
/// (`started`) and at each signal, `-` for a missing file; TERM ends it with `$TERM_EXIT`.
const CHILD: &str = r#"log=$1; shift
seen() {
    line=$1; shift
    for f in "$@"; do line="$line $(cat "$f" 2>/dev/null || echo -)"; done
    echo "$line" >> "$log"
}
for s in HUP INT QUIT USR1 USR2 WINCH; do trap "seen $s $*" $s; done
trap "seen TERM $*; kill \$! 2>/dev/null; exit \${TERM_EXIT:-0}" TERM
seen started "$@"
while :; do sleep 1 & wait $!; done
"#;

fn child(dir: &Path, files: &[&Path]) -> Vec<String> {
    let script = dir.join("child.sh");
    std::fs::write(&script, CHILD).unwrap();
    let mut command = vec![
        "--".to_string(),
        "sh".into(),
        script.display().to_string(),
        dir.join("child.log").display().to_string(),
    ];
    command.extend(files.iter().map(|f| f.display().to_string()));
    command
}

fn child_log(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("child.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

async fn wait_child_line(dir: &Path, line: &str, context: impl Fn() -> String) {
    let seen = eventually(LIMIT, || child_log(dir).iter().any(|l| l == line)).await;
    assert!(
        seen,
        "the child never logged {line:?}: {:?}\n{}",
        child_log(dir),
        context()
    );
}

fn dispense(etcd: &EtcdServer, prefix: &str, target: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["dispense", "-p", prefix, "-t"].map(String::from).to_vec();
    args.push(target.display().to_string());
    args.extend(["--endpoints".into(), etcd.endpoint.clone(), "-d".into()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// The stable names of the target: everything but `..data` and the versions.
fn visible(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| !n.starts_with(".."))
        .collect()
}

async fn a_transaction_is_seen_whole_at_the_signal(version: EtcdVersion) {
    let etcd = version.start().await;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("config");
    let (key, crt) = (target.join("tls.key"), target.join("tls.crt"));
    etcd.put_all([("/certs/tls.key", "K0"), ("/certs/tls.crt", "C0")])
        .await;
    let mut args = dispense(&etcd, "/certs", &target, &["-s", "SIGHUP"]);
    args.extend(child(dir.path(), &[&key, &crt]));
    let mut daemon = Daemon::start(args, &dir.path().join("log"));
    // The child starts after the first sync: the files are there when it looks.
    wait_child_line(dir.path(), "started K0 C0", || daemon.log()).await;

    let mut client = etcd.client().await;
    let rounds = 5;
    for n in 1..=rounds {
        let txn = Txn::new().and_then([
            TxnOp::put("/certs/tls.key", format!("K{n}"), None),
            TxnOp::put("/certs/tls.crt", format!("C{n}"), None),
        ]);
        client.txn(txn).await.unwrap();
        wait_child_line(dir.path(), &format!("HUP K{n} C{n}"), || daemon.log()).await;
    }
    let hups: Vec<String> = child_log(dir.path())
        .into_iter()
        .filter(|l| l.starts_with("HUP"))
        .collect();
    let expected: Vec<String> = (1..=rounds).map(|n| format!("HUP K{n} C{n}")).collect();
    assert_eq!(
        hups, expected,
        "one signal per transaction, each seeing all of it"
    );
    // One version is live and the one before it is kept, to be reused; older ones are gone.
    let versions = names(&target)
        .into_iter()
        .filter(|n| n.starts_with("..rev"))
        .count();
    assert_eq!(versions, 2, "{:?}", names(&target));

    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(LIMIT).await, Some(0), "{}", daemon.log());
    assert_eq!(child_log(dir.path()).last().unwrap(), "TERM K5 C5");
}

on_each_etcd!(
    #[tokio::test]
    a_transaction_is_seen_whole_at_the_signal
);

#[tokio::test]
async fn raw_bytes_with_mode_owner_and_group() {
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t");
    let binary: &[u8] = b"\x00\xff\xfe binary \x80";
    etcd.put_all([("/bin/der", binary), ("/bin/sub/dir/pem", b"text")])
        .await;
    let root = nix::unistd::geteuid().is_root();
    // As root, hand the files to someone else; otherwise ids that need no privilege.
    let (uid, gid) = if root {
        (65534, 65534)
    } else {
        (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        )
    };
    let (uid_arg, gid_arg) = (uid.to_string(), gid.to_string());
    let args = dispense(
        &etcd,
        "/bin/",
        &target,
        &["-m", "0640", "-o", &uid_arg, "-g", &gid_arg],
    );
    let daemon = Daemon::start(args, &dir.path().join("log"));
    let pem = target.join("sub/dir/pem");
    wait_for_content(&pem, "text", LIMIT, || daemon.log()).await;
    assert_eq!(std::fs::read(target.join("der")).unwrap(), binary);
    for file in [target.join("der"), pem] {
        let meta = std::fs::metadata(&file).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o640, "{}", file.display());
        assert_eq!((meta.uid(), meta.gid()), (uid, gid), "{}", file.display());
    }
    assert_eq!(visible(&target), ["der", "sub"]);
}

#[tokio::test]
async fn unsafe_keys_are_refused_and_never_written() {
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("a").join("target");
    let refused = [
        "/p/../escaped-parent",
        "/p/x/../../escaped-deep",
        "/p//reconfig-dispense-test-absolute",
        "/p/",
        "/p/a//b",
        "/p/..data",
        "/p/..reserved",
        "/p/./dot",
        "/p/file/below-a-file",
    ];
    let mut pairs: Vec<(&str, &str)> = refused.iter().map(|k| (*k, "evil")).collect();
    pairs.extend([
        ("/p", "the prefix itself"),
        ("/px/sibling", "not below /p/"),
        ("/p-x", "not below /p/"),
        ("/p/file", "fine"),
        ("/p/ok", "fine"),
    ]);
    etcd.put_all(pairs).await;
    let daemon = Daemon::start(dispense(&etcd, "/p", &target, &[]), &dir.path().join("log"));
    wait_for_content(&target.join("ok"), "fine", LIMIT, || daemon.log()).await;
    let logged = eventually(LIMIT, || {
        let log = daemon.log();
        refused
            .iter()
            .all(|k| log.contains(&format!("key {k} refused")))
    })
    .await;
    assert!(
        logged,
        "every refusal is logged with its key:\n{}",
        daemon.log()
    );

    assert_eq!(visible(&target), ["file", "ok"]);
    assert_eq!(names(&target).len(), 4, "{:?}", names(&target));
    assert_eq!(names(&dir.path().join("a")), ["target"]);
    assert_eq!(names(dir.path()), ["a", "log"]);
    assert!(!Path::new("/reconfig-dispense-test-absolute").exists());
    let data = target.join("..data");
    assert_eq!(names(&data), ["file", "ok"]);
}

async fn deleted_keys_remove_their_files(version: EtcdVersion) {
    let etcd = version.start().await;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t");
    etcd.put_all([("/d/a", "1"), ("/d/sub/b", "2"), ("/d/sub/c", "3")])
        .await;
    let daemon = Daemon::start(dispense(&etcd, "/d", &target, &[]), &dir.path().join("log"));
    wait_for_content(&target.join("sub/c"), "3", LIMIT, || daemon.log()).await;
    assert_eq!(visible(&target), ["a", "sub"]);

    let mut client = etcd.client().await;
    client.delete("/d/a", None).await.unwrap();
    let gone = eventually(LIMIT, || visible(&target) == ["sub"]).await;
    assert!(gone, "{:?}\n{}", names(&target), daemon.log());
    assert!(std::fs::symlink_metadata(target.join("a")).is_err());

    client
        .delete("/d/sub/", Some(DeleteOptions::new().with_prefix()))
        .await
        .unwrap();
    let empty = eventually(LIMIT, || visible(&target).is_empty()).await;
    assert!(empty, "{:?}\n{}", names(&target), daemon.log());
}

on_each_etcd!(
    #[tokio::test]
    deleted_keys_remove_their_files
);

async fn restart_removes_files_of_keys_deleted_while_down(version: EtcdVersion) {
    let etcd = version.start().await;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t");
    etcd.put_all([("/r/keep", "k"), ("/r/drop", "d"), ("/r/dir/drop", "d")])
        .await;
    let log = dir.path().join("log");
    let mut first = Daemon::start(dispense(&etcd, "/r", &target, &[]), &log);
    wait_for_content(&target.join("dir/drop"), "d", LIMIT, || first.log()).await;
    first.signal(Signal::SIGTERM);
    assert_eq!(first.wait_exit(LIMIT).await, Some(0), "{}", first.log());

    let mut client = etcd.client().await;
    client.delete("/r/drop", None).await.unwrap();
    client.delete("/r/dir/drop", None).await.unwrap();
    client.put("/r/new", "n", None).await.unwrap();
    // What an older tool or an operator left in the directory.
    std::fs::write(target.join("stray.pem"), "old").unwrap();
    std::fs::create_dir(target.join("olddir")).unwrap();

    let second = Daemon::start(dispense(&etcd, "/r", &target, &[]), &log);
    let synced = eventually(LIMIT, || visible(&target) == ["keep", "new"]).await;
    assert!(synced, "{:?}\n{}", names(&target), second.log());
    assert_eq!(std::fs::read_to_string(target.join("new")).unwrap(), "n");
    assert_eq!(std::fs::read_to_string(target.join("keep")).unwrap(), "k");
}

on_each_etcd!(
    #[tokio::test]
    restart_removes_files_of_keys_deleted_while_down
);

/// The published version's directory, resolved once.
fn live_version(target: &Path) -> PathBuf {
    target.join(std::fs::read_link(target.join("..data")).unwrap())
}

/// Every file below `dir`: path relative to it → inode.
fn inodes(dir: &Path) -> BTreeMap<String, u64> {
    let mut found = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap().to_str().unwrap();
                found.insert(relative.to_string(), meta.ino());
            }
        }
    }
    found
}

#[tokio::test]
async fn a_change_among_many_files_carries_the_others_over() {
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t");
    let mut files: BTreeMap<String, String> = (0..200)
        .map(|i| (format!("f{i:03}"), format!("v{i}")))
        .collect();
    files.insert("sub/deep/x".into(), "x".into());
    files.insert("pair/left".into(), "0".into());
    files.insert("pair/right".into(), "0".into());
    etcd.put_all(files.iter().map(|(f, v)| (format!("/m/{f}"), v.clone())))
        .await;
    let daemon = Daemon::start(dispense(&etcd, "/m", &target, &[]), &dir.path().join("log"));
    wait_for_content(&target.join("f199"), "v199", LIMIT, || daemon.log()).await;
    wait_for_content(&target.join("pair/right"), "0", LIMIT, || daemon.log()).await;

    // Every name the target holds, as inotify sees it created, removed or renamed to.
    let (tx, events) = std::sync::mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |e: notify::Result<notify::Event>| {
        let _ = tx.send(e.unwrap());
    })
    .unwrap();
    watcher.watch(&target, RecursiveMode::NonRecursive).unwrap();
    // A reader resolving `..data` once sees both halves of the pair from one transaction.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, target) = (stop.clone(), target.clone());
        std::thread::spawn(move || {
            let (mut whole, mut torn) = (0, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                let Ok(version) = std::fs::read_link(target.join("..data")) else {
                    continue;
                };
                let version = target.join(version);
                let read = |f: &str| std::fs::read_to_string(version.join(f));
                // A version removed under the reader is gone, not torn.
                if let (Ok(left), Ok(right)) = (read("pair/left"), read("pair/right")) {
                    if left == right {
                        whole += 1;
                    } else {
                        torn.push((left, right));
                    }
                }
            }
            (whole, torn)
        })
    };

    let mut client = etcd.client().await;
    // A version is made from the one published before the live one (brought up to date)
    // or from hard links to the live one: an unchanged file is one of theirs, and only
    // files changed in this round or the one before are written.
    let mut before = inodes(&live_version(&target));
    let mut older = BTreeMap::new();
    let mut changed_before: Vec<String> = Vec::new();
    let rounds = 8;
    for round in 1..=rounds {
        let changed = [
            "pair/left".to_string(),
            "pair/right".to_string(),
            format!("f{:03}", round * 20),
            format!("new{round}"),
        ];
        let mut ops: Vec<TxnOp> = changed
            .iter()
            .map(|f| TxnOp::put(format!("/m/{f}"), format!("r{round}"), None))
            .collect();
        ops.push(TxnOp::delete(format!("/m/new{}", round - 1), None));
        client.txn(Txn::new().and_then(ops)).await.unwrap();
        for f in &changed {
            files.insert(f.clone(), format!("r{round}"));
        }
        files.remove(&format!("new{}", round - 1));
        let new = target.join(&changed[3]);
        wait_for_content(&new, &format!("r{round}"), LIMIT, || daemon.log()).await;

        let after = inodes(&live_version(&target));
        assert!(after.keys().eq(files.keys()), "round {round}: {after:?}");
        let known = |inode: &u64| before.values().chain(older.values()).any(|i| i == inode);
        for (file, inode) in &after {
            if changed.contains(file) {
                // The live version is kept, so its inodes are not free to be given again.
                assert!(
                    !before.values().any(|i| i == inode),
                    "round {round}: {file} changed, so it is a new file"
                );
            } else if !changed_before.contains(file) {
                assert!(
                    known(inode),
                    "round {round}: {file} is unchanged, so it is an earlier version's file"
                );
            }
        }
        changed_before = changed.to_vec();
        older = std::mem::replace(&mut before, after);
    }
    stop.store(true, Ordering::Relaxed);
    let (whole, torn) = reader.join().unwrap();
    assert!(
        torn.is_empty(),
        "a version mixed two transactions: {torn:?}"
    );
    assert!(whole > 0, "the reader never read the pair");
    for (file, content) in &files {
        let read = std::fs::read_to_string(target.join(file)).unwrap();
        assert_eq!(&read, content, "{file}");
    }

    drop(watcher);
    let events: Vec<notify::Event> = events.try_iter().collect();
    let data = target.join("..data");
    let flips = events
        .iter()
        .filter(|e| e.kind == EventKind::Modify(ModifyKind::Name(RenameMode::To)))
        .filter(|e| e.paths == [data.clone()])
        .count();
    assert_eq!(flips, rounds, "one rename over ..data per transaction");
    let touched: Vec<&PathBuf> = events
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::Create(_)
                    | EventKind::Remove(_)
                    | EventKind::Modify(ModifyKind::Name(_))
            )
        })
        .flat_map(|e| &e.paths)
        .collect();
    let stable: BTreeSet<&str> = files
        .keys()
        .filter_map(|f| f.split('/').next())
        .filter(|name| !name.starts_with("new"))
        .collect();
    let rewritten: Vec<&&PathBuf> = touched
        .iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| stable.contains(n))
        })
        .collect();
    assert!(
        rewritten.is_empty(),
        "the links of unchanged names were replaced: {rewritten:?}"
    );
}

#[tokio::test]
async fn a_restart_writes_every_file_anew_in_the_new_mode() {
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t");
    etcd.put_all([("/w/a", "a"), ("/w/sub/b", "b")]).await;
    let log = dir.path().join("log");
    let mut first = Daemon::start(dispense(&etcd, "/w", &target, &["-m", "0640"]), &log);
    wait_for_content(&target.join("sub/b"), "b", LIMIT, || first.log()).await;
    first.signal(Signal::SIGTERM);
    assert_eq!(first.wait_exit(LIMIT).await, Some(0), "{}", first.log());
    let old_version = live_version(&target);
    let old = inodes(&old_version);
    // Changed by hand while dispense was down: the keys did not change, the file did.
    std::fs::write(target.join("a"), "edited").unwrap();

    let second = Daemon::start(dispense(&etcd, "/w", &target, &["-m", "0600"]), &log);
    let republished = eventually(LIMIT, || {
        std::fs::read_link(target.join("..data")).is_ok_and(|v| target.join(v) != old_version)
    })
    .await;
    assert!(republished, "{}", second.log());
    let new = inodes(&live_version(&target));
    assert!(new.keys().eq(old.keys()), "{new:?}");
    for (file, inode) in &new {
        assert!(
            !old.values().any(|i| i == inode),
            "{file} was not written anew"
        );
        let meta = std::fs::metadata(target.join(file)).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o600, "{file}");
    }
    assert_eq!(std::fs::read_to_string(target.join("a")).unwrap(), "a");
}

#[tokio::test]
async fn signals_are_passed_on_to_the_child() {
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t");
    etcd.put_all([("/s/f", "v")]).await;
    let mut args = dispense(&etcd, "/s", &target, &[]);
    args.extend(child(dir.path(), &[&target.join("f")]));
    let mut cmd = reconfig();
    cmd.env("TERM_EXIT", "0");
    let mut daemon = Daemon::spawn(cmd, args, &dir.path().join("log"));
    wait_child_line(dir.path(), "started v", || daemon.log()).await;

    let passed = [
        Signal::SIGHUP,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
        Signal::SIGQUIT,
        Signal::SIGINT,
    ];
    for signal in passed {
        daemon.signal(signal);
        let name = signal.as_str().trim_start_matches("SIG");
        wait_child_line(dir.path(), &format!("{name} v"), || daemon.log()).await;
    }
    assert!(daemon.alive(), "INT went to the child, not to dispense");
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(LIMIT).await, Some(0), "{}", daemon.log());
    let expected = [
        "started", "HUP", "USR1", "USR2", "WINCH", "QUIT", "INT", "TERM",
    ];
    let events: Vec<String> = child_log(dir.path())
        .iter()
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(events, expected);
}

#[tokio::test]
async fn the_childs_exit_status_is_passed_on() {
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t");
    for (script, code) in [("exit 7", 7), ("kill -KILL $$", 128 + 9)] {
        let mut args = dispense(&etcd, "/x", &target, &[]);
        args.extend(["--", "sh", "-c", script].map(String::from));
        let run = run_reconfig(args).await;
        assert_eq!(run.code, code, "{script}: {}", run.stderr);
    }
    let mut args = dispense(&etcd, "/x", &target, &[]);
    args.extend(["--", "/nonexistent/program"].map(String::from));
    let run = run_reconfig(args).await;
    assert_eq!(run.code, 127, "{}", run.stderr);
    assert!(
        run.stderr.contains("cannot start /nonexistent/program"),
        "{}",
        run.stderr
    );
}

/// A daemon entry rendering `/app/conf`'s value into `target`, signalling HUP on change.
fn signalling_entry(root: &Path) -> (PathBuf, PathBuf) {
    let target = root.join("app.conf");
    let json = format!(
        r#"{{"id":"app","key":"/app/conf","source":"app.tmpl","target":"{}","reloadsignal":"HUP"}}"#,
        target.display()
    );
    let tmpl = "<% for k, v in data %><%= v %><% endfor %>";
    let cfg = cfgdir(root, &[("app", json)], &[("app.tmpl", tmpl)]);
    (cfg, target)
}

#[tokio::test]
async fn daemon_starts_its_child_after_the_first_sync_and_signals_it_on_change() {
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (cfg, target) = signalling_entry(dir.path());
    etcd.put_all([("/app/conf", "one")]).await;
    let mut args = vec![
        "--cfgdir".to_string(),
        cfg.display().to_string(),
        "--endpoints".into(),
        etcd.endpoint.clone(),
    ];
    args.extend(child(dir.path(), &[&target]));
    let mut cmd = reconfig();
    cmd.env("TERM_EXIT", "5");
    let mut daemon = Daemon::spawn(cmd, args, &dir.path().join("log"));
    wait_child_line(dir.path(), "started one", || daemon.log()).await;

    etcd.put_all([("/app/conf", "two")]).await;
    wait_child_line(dir.path(), "HUP two", || daemon.log()).await;
    etcd.put_all([("/app/conf", "three")]).await;
    wait_child_line(dir.path(), "HUP three", || daemon.log()).await;

    // TERM goes to the child, whose exit status becomes the daemon's.
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(LIMIT).await, Some(5), "{}", daemon.log());
    assert_eq!(
        child_log(dir.path()),
        ["started one", "HUP two", "HUP three", "TERM three"]
    );
}

#[tokio::test]
async fn daemon_exits_when_its_child_does() {
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (cfg, target) = signalling_entry(dir.path());
    etcd.put_all([("/app/conf", "one")]).await;
    let args = [
        "--cfgdir".to_string(),
        cfg.display().to_string(),
        "--endpoints".into(),
        etcd.endpoint.clone(),
        "--".into(),
        "sh".into(),
        "-c".into(),
        format!("test \"$(cat {})\" = one && exit 3", target.display()),
    ];
    let run = run_reconfig(args).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
}

#[tokio::test]
async fn onetime_with_a_command_is_a_usage_error() {
    let run = run_reconfig(["--onetime", "--", "nginx"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--onetime"), "{}", run.stderr);
}
