//! Safe files and commands in every deployment, against a real etcd: reconfig as a service
//! user, symlinks other users planted, commands that print without end, secrets, leftovers
//! of a killed run, mode and owner drift, long names, special files and glob patterns.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;
use nix::sys::signal::Signal;
use nix::unistd::User;

/// Time for a condition that holds at once on a quiet machine to hold on a loaded one.
const LIMIT: Duration = Duration::from_secs(60);

/// A temporary directory other users may traverse (tempfile makes 0700 ones).
fn shared_tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    chmod(dir.path(), 0o755);
    dir
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn nobody() -> User {
    User::from_name("nobody")
        .unwrap()
        .expect("user nobody exists")
}

/// `CMD ARGS` run as the user `nobody`.
fn as_nobody(program: &str) -> tokio::process::Command {
    let mut cmd = binary("runuser");
    cmd.args(["-u", "nobody", "--", program]);
    cmd
}

/// The reconfig binary run as `nobody`, from a copy in `dir` (a [`shared_tempdir`]):
/// the checkout's own `target/` may sit below a directory only root can enter.
fn reconfig_as_nobody(dir: &Path) -> tokio::process::Command {
    let copy = dir.join("reconfig");
    std::fs::copy(env!("CARGO_BIN_EXE_reconfig"), &copy).unwrap();
    chmod(&copy, 0o755);
    as_nobody(copy.to_str().unwrap())
}

/// A conf.d entry `id` reading `key` through the template `t` into `target`, plus the
/// JSON fields in `extra` (each starting with a comma).
fn entry(id: &str, key: &str, target: &Path, extra: &str) -> (String, String) {
    let json = format!(
        r#"{{"id":"{id}","key":"{key}","source":"t","target":"{}"{extra}}}"#,
        target.display()
    );
    (id.to_string(), json)
}

/// A config dir in `root` with `entries`, all rendering `data[KEY]` and a newline.
fn config(root: &Path, entries: &[(String, String)], key: &str) -> PathBuf {
    let entries: Vec<(&str, String)> = entries
        .iter()
        .map(|(id, json)| (id.as_str(), json.clone()))
        .collect();
    let template = format!("<%= data[\"{key}\"] %>\n");
    cfgdir(root, &entries, &[("t", &template)])
}

fn onetime_args<'a>(cfg: &'a Path, etcd: &'a EtcdServer, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--onetime",
        "--cfgdir",
        cfg.to_str().unwrap(),
        "--endpoints",
        &etcd.endpoint,
    ];
    args.extend_from_slice(extra);
    args
}

/// The lines of `log` at error level that mention `needle`.
fn errors_about<'a>(log: &'a str, needle: &str) -> Vec<&'a str> {
    log.lines()
        .filter(|l| l.contains("ERROR") && l.contains(needle))
        .collect()
}

/// Asserts exactly one error line mentions `needle`, and that it holds every cause.
fn assert_one_error(log: &str, needle: &str, causes: &[&str]) {
    let lines = errors_about(log, needle);
    assert_eq!(
        lines.len(),
        1,
        "one error line about {needle} expected:\n{log}"
    );
    for cause in causes {
        assert!(
            lines[0].contains(cause),
            "{cause:?} missing in {}",
            lines[0]
        );
    }
}

/// Whether `pid` is gone: no such process, or a zombie.
fn is_dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(") ")
            .next()
            .is_some_and(|rest| rest.starts_with('Z')),
    }
}

/// The peak resident memory of `pid` so far, in KiB.
fn peak_rss_kib(pid: nix::unistd::Pid) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/PID/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_service_user_replaces_files_it_cannot_chown() {
    let etcd = EtcdServer::start().await;
    etcd.put_all([("/app", "new")]).await;
    let dir = shared_tempdir();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let user = nobody();
    nix::unistd::chown(&out, Some(user.uid), Some(user.gid)).unwrap();
    // Root's files in the service user's directory: world-writable, and plain 0644.
    let open = out.join("open.conf");
    write(&open, "old\n");
    chmod(&open, 0o666);
    let given = out.join("given.conf");
    write(&given, "old\n");
    let cfg = config(
        dir.path(),
        &[
            entry("open", "/app", &open, ""),
            entry("given", "/app", &given, r#","owner":"root""#),
        ],
        "/app",
    );

    let run = run_command(
        reconfig_as_nobody(dir.path()),
        onetime_args(&cfg, &etcd, &[]),
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let meta = std::fs::metadata(&open).unwrap();
    assert_eq!(
        std::fs::read_to_string(&open).unwrap(),
        "new\n",
        "{}",
        run.stderr
    );
    assert_eq!(meta.mode() & 0o7777, 0o666);
    assert_eq!(
        meta.uid(),
        user.uid.as_raw(),
        "a service user's file is its own"
    );
    assert_one_error(
        &run.stderr,
        "given.conf",
        &[r#"owner "root""#, "Operation not permitted"],
    );
    assert_eq!(std::fs::read_to_string(&given).unwrap(), "old\n");
    assert_eq!(names(&out), ["given.conf", "open.conf"]);
}

#[tokio::test]
async fn links_other_users_could_plant_are_not_followed() {
    let etcd = EtcdServer::start().await;
    etcd.put_all([("/app", "new")]).await;
    let dir = shared_tempdir();
    let secret = dir.path().join("secret");
    write(&secret, "SECRET-CONTENT\n");
    chmod(&secret, 0o600);
    let sticky = dir.path().join("tmp");
    std::fs::create_dir(&sticky).unwrap();
    chmod(&sticky, 0o1777);
    // Another user's link in a sticky world-writable directory, as in /tmp ...
    let planted = sticky.join("app.conf");
    let ln = run_command(
        as_nobody("ln"),
        ["-s", "../secret", planted.to_str().unwrap()],
    )
    .await;
    assert_eq!(ln.code, 0, "{}", ln.stderr);
    // ... and one of root's own there, which is followed.
    let own_file = dir.path().join("own-real.conf");
    write(&own_file, "old\n");
    let own = sticky.join("own.conf");
    std::os::unix::fs::symlink("../own-real.conf", &own).unwrap();
    let marker = dir.path().join("reloaded");
    let reload = format!(r#","reloadcmd":"touch {}""#, marker.display());
    let cfg = config(
        dir.path(),
        &[
            entry("planted", "/app", &planted, &reload),
            entry("own", "/app", &own, ""),
        ],
        "/app",
    );
    let before = tree_state(dir.path());

    let preview = run_reconfig(onetime_args(&cfg, &etcd, &["--notreally"])).await;
    assert_eq!(preview.code, 1, "{}", preview.stderr);
    assert!(!preview.stdout.contains("SECRET"), "{}", preview.stdout);
    assert!(preview.stdout.contains("+new"), "{}", preview.stdout);
    assert_eq!(tree_state(dir.path()), before);

    let run = run_reconfig(onetime_args(&cfg, &etcd, &[])).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let uid = nobody().uid.as_raw().to_string();
    assert_one_error(&run.stderr, "app.conf", &["symlink", &uid, "not followed"]);
    assert!(!run.stderr.contains("SECRET"), "{}", run.stderr);
    assert_eq!(
        std::fs::read_to_string(&secret).unwrap(),
        "SECRET-CONTENT\n"
    );
    assert_eq!(std::fs::metadata(&secret).unwrap().mode() & 0o7777, 0o600);
    assert_eq!(
        std::fs::read_link(&planted).unwrap(),
        Path::new("../secret")
    );
    assert!(!marker.exists(), "the refused entry reloaded");
    assert_eq!(std::fs::read_to_string(&own_file).unwrap(), "new\n");
    assert!(std::fs::symlink_metadata(&own).unwrap().is_symlink());
}

#[tokio::test]
async fn a_command_printing_without_end_keeps_memory_and_log_bounded() {
    let etcd = EtcdServer::start().await;
    etcd.put_all([("/app", "1")]).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let target = dir.path().join("app.conf");
    // Quiet until the flag file exists; then 128 MiB on stdout without a newline and a line
    // on stderr.
    const PRINTED: u64 = 128 << 20;
    let reload = format!(
        r#","reloadcmd":"if test -e {d}/loud; then head -c {PRINTED} /dev/zero | tr '\\000' x; echo done-loud >&2; fi; echo . >> {d}/reloads""#
    );
    let cfg = config(
        dir.path(),
        &[entry("noisy", "/app", &target, &reload)],
        "/app",
    );
    let cfg = cfg.to_str().unwrap();
    let daemon = Daemon::start(
        ["--cfgdir", cfg, "--endpoints", &etcd.endpoint],
        &dir.path().join("daemon.log"),
    );
    let reloads = |n: usize| {
        std::fs::read_to_string(dir.path().join("reloads"))
            .unwrap_or_default()
            .lines()
            .count()
            == n
    };
    assert!(eventually(LIMIT, || reloads(1)).await, "{}", daemon.log());
    let quiet_peak = peak_rss_kib(daemon.pid());

    write(&dir.path().join("loud"), "");
    etcd.put_all([("/app", "2")]).await;
    assert!(eventually(LIMIT, || reloads(2)).await, "{}", daemon.log());
    assert!(
        eventually(LIMIT, || daemon.log().contains("done-loud")).await,
        "{}",
        daemon.log()
    );
    let loud_peak = peak_rss_kib(daemon.pid());
    // Holding the output costs what was printed; a bounded tail costs next to nothing.
    let grown = loud_peak.saturating_sub(quiet_peak) << 10;
    assert!(
        grown < PRINTED / 4,
        "memory grew by {grown} bytes for {PRINTED} printed"
    );
    let log = daemon.log();
    let longest = log.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 128 << 10, "a log line of {longest} bytes");
    assert!(
        (log.len() as u64) < PRINTED / 64,
        "log of {} bytes",
        log.len()
    );
    let dropped = (PRINTED - (64 << 10)).to_string();
    assert!(
        log.lines()
            .any(|l| l.contains("stdout") && l.contains(&dropped)),
        "the log does not say {dropped} bytes were dropped"
    );
}

#[tokio::test]
async fn templates_cannot_read_the_etcd_password() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("leak.conf");
    let json = format!(
        r#"{{"id":"leak","key":"/k","source":"leak.tmpl","target":"{}"}}"#,
        target.display()
    );
    let template = r#"<%= getenv(name="ETCD_PASSWORD", default="unset") %>"#;
    // Tera's own spelling of the function too.
    let tera_spelling = r#"<%= get_env(name="ETCD_PASSWORD", default="unset") %>"#;
    let json2 = json
        .replace("leak.tmpl", "leak2.tmpl")
        .replace(r#""id":"leak""#, r#""id":"leak2""#)
        .replace("leak.conf", "leak2.conf");
    let cfg = cfgdir(
        dir.path(),
        &[("leak", json), ("leak2", json2)],
        &[("leak.tmpl", template), ("leak2.tmpl", tera_spelling)],
    );
    let data = dir.path().join("data.json");
    std::fs::write(&data, r#"{"/k": "v"}"#).unwrap();
    let mut cmd = reconfig();
    cmd.env("ETCD_PASSWORD", "hunter2");
    let run = run_command(
        cmd,
        [
            "render",
            "--data",
            data.to_str().unwrap(),
            "--cfgdir",
            cfg.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(!run.stdout.contains("hunter2"), "{}", run.stdout);
    assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
    let refusals = run
        .stderr
        .lines()
        .filter(|l| l.contains("ETCD_PASSWORD") && l.contains("cannot read it"))
        .count();
    assert_eq!(refusals, 2, "{}", run.stderr);
}

#[tokio::test]
async fn sources_outside_templates_are_refused() {
    let etcd = EtcdServer::start().await;
    etcd.put_all([("/k", "v")]).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("outside.tmpl"), "OUTSIDE <%= data[\"/k\"] %>\n").unwrap();
    let target = |id: &str| root.join(format!("{id}.conf"));
    let entry = |id: &str, source: &str| {
        let json = format!(
            r#"{{"id":"{id}","key":"/k","source":"{source}","target":"{}"}}"#,
            target(id).display()
        );
        (id.to_string(), json)
    };
    let entries = [
        entry("environ", "/proc/self/environ"),
        entry("dotdot", "../../outside.tmpl"),
        entry("linkout", "linkout"),
        entry("good", "t"),
        entry("alias", "alias"),
    ];
    let cfg = config(root, &entries, "/k");
    std::os::unix::fs::symlink("../../outside.tmpl", cfg.join("templates/linkout")).unwrap();
    std::os::unix::fs::symlink("t", cfg.join("templates/alias")).unwrap();
    for (id, _) in &entries {
        std::fs::write(target(id), "original\n").unwrap();
    }
    let mut cmd = reconfig();
    cmd.env("RECONFIG_TEST_SECRET", "hunter2");
    let run = run_command(cmd, onetime_args(&cfg, &etcd, &[])).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(target("good")).unwrap(), "v\n");
    assert_eq!(
        std::fs::read_to_string(target("alias")).unwrap(),
        "v\n",
        "a link to another template inside templates/ is fine"
    );
    let refusals = [
        (
            "environ",
            r#"source "/proc/self/environ" is an absolute path"#,
        ),
        (
            "dotdot",
            r#"source "../../outside.tmpl" leads outside templates/"#,
        ),
        ("linkout", r#"source "linkout" leads outside templates/"#),
    ];
    for (id, reason) in refusals {
        let file = cfg.join(format!("conf.d/{id}.json"));
        let lines: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| l.contains(&format!("{}: ", file.display())))
            .collect();
        assert_eq!(lines.len(), 1, "{id}: {}", run.stderr);
        assert!(lines[0].contains(reason), "{id}: {}", lines[0]);
        assert!(lines[0].contains("entry skipped"), "{id}: {}", lines[0]);
        assert_eq!(
            std::fs::read_to_string(target(id)).unwrap(),
            "original\n",
            "{id}: nothing rendered"
        );
    }
    assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
}

#[tokio::test]
async fn secrets_reach_no_command_and_no_child() {
    let etcd = EtcdServer::start().await;
    etcd.put_all([("/app/x", "v")]).await;
    etcd.enable_auth().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let target = dir.path().join("app.conf");
    let commands = format!(
        r#","checkcmd":"env > {d}/check.env; : {{{{src}}}}","reloadcmd":"env > {d}/reload.env""#
    );
    let cfg = config(
        dir.path(),
        &[entry("app", "/app/x", &target, &commands)],
        "/app/x",
    );
    let with_credentials = || {
        let mut cmd = reconfig();
        cmd.env("ETCD_USERNAME", "app")
            .env("ETCD_PASSWORD", "app-pw");
        cmd
    };
    let child = format!("env > {d}/child.env");
    let mut daemon = Daemon::spawn(
        with_credentials(),
        [
            "--cfgdir",
            cfg.to_str().unwrap(),
            "--endpoints",
            &etcd.endpoint,
            "--",
            "sh",
            "-c",
            &child,
        ],
        &dir.path().join("daemon.log"),
    );
    assert_eq!(daemon.wait_exit(LIMIT).await, Some(0), "{}", daemon.log());

    let dispensed = format!("env > {d}/dispense.env");
    let mirror = dir.path().join("mirror");
    let mut dispense = Daemon::spawn(
        with_credentials(),
        [
            "dispense",
            "--prefix",
            "/app",
            "--target",
            mirror.to_str().unwrap(),
            "--endpoints",
            &etcd.endpoint,
            "--",
            "sh",
            "-c",
            &dispensed,
        ],
        &dir.path().join("dispense.log"),
    );
    assert_eq!(
        dispense.wait_exit(LIMIT).await,
        Some(0),
        "{}",
        dispense.log()
    );
    assert_eq!(std::fs::read_to_string(mirror.join("x")).unwrap(), "v");

    for name in ["check", "reload", "child", "dispense"] {
        let env = std::fs::read_to_string(dir.path().join(format!("{name}.env"))).unwrap();
        assert!(!env.contains("app-pw"), "{name} saw the password:\n{env}");
        assert!(!env.contains("ETCD_PASSWORD"), "{name}:\n{env}");
        assert!(
            env.contains("ETCD_USERNAME=app"),
            "{name} lost its environment"
        );
    }
    for name in ["check", "reload"] {
        let env = std::fs::read_to_string(dir.path().join(format!("{name}.env"))).unwrap();
        assert!(env.contains("RECONFIG_ID=app"), "{name}:\n{env}");
    }
}

#[tokio::test]
async fn a_killed_run_leaves_no_staged_file_and_no_command_behind() {
    let etcd = EtcdServer::start().await;
    etcd.put_all([("/app", "new")]).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let out = dir.path().join("out");
    let target = out.join("app.conf");
    write(&target, "old\n");
    // Files that look like staged files but are not this target's, or not files.
    let decoys = [
        ".app.conf.reconfig-short",
        ".other.conf.reconfig-ABCDEFGHIJ",
        ".app.conf.reconfig-ABCDEFGHIJK",
        "app.conf.reconfig-ABCDEFGHIJ",
    ];
    for decoy in decoys {
        write(&out.join(decoy), "not reconfig's\n");
    }
    std::fs::create_dir(out.join(".app.conf.reconfig-DIRECTORY0")).unwrap();
    write(&dir.path().join("hang"), "");
    let check = format!(
        r#","checkcmd":"test -e {d}/hang && {{ sleep 1000 & echo $! $$ > {d}/check.pid; exec sleep 1000; }}; grep -q new {{{{src}}}}""#
    );
    let cfg = config(dir.path(), &[entry("app", "/app", &target, &check)], "/app");
    let cfg = cfg.to_str().unwrap();
    let mut daemon = Daemon::start(
        ["--cfgdir", cfg, "--endpoints", &etcd.endpoint],
        &dir.path().join("daemon.log"),
    );
    let pid_file = dir.path().join("check.pid");
    let started = eventually(LIMIT, || {
        std::fs::read_to_string(&pid_file).is_ok_and(|p| p.ends_with('\n'))
    })
    .await;
    assert!(started, "{}", daemon.log());
    // The check and a process it started in the background.
    let pids: Vec<i32> = std::fs::read_to_string(&pid_file)
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    let staged = || {
        names(&out)
            .into_iter()
            .filter(|n| n.starts_with(".app.conf.reconfig-") && n.len() == 29)
            .filter(|n| out.join(n).is_file())
            .count()
    };
    assert_eq!(staged(), 1, "{:?}", names(&out));

    daemon.signal(Signal::SIGKILL);
    assert_eq!(daemon.wait_exit(LIMIT).await, Some(-1));
    let check_died = eventually(LIMIT, || pids.iter().all(|&pid| is_dead(pid))).await;
    if !check_died {
        for &pid in &pids {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    assert!(check_died, "the check or its child outlived reconfig");
    assert_eq!(staged(), 1, "the killed run's staged file");

    std::fs::remove_file(dir.path().join("hang")).unwrap();
    let run = run_reconfig(["--onetime", "--cfgdir", cfg, "--endpoints", &etcd.endpoint]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "new\n");
    let mut expected: Vec<&str> = decoys.to_vec();
    expected.extend([".app.conf.reconfig-DIRECTORY0", "app.conf"]);
    expected.sort();
    assert_eq!(names(&out), expected);
    assert!(
        run.stderr
            .lines()
            .any(|l| l.contains("removed") && l.contains(".app.conf.reconfig-")),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn mode_and_owner_drift_is_fixed_without_a_reload() {
    let etcd = EtcdServer::start().await;
    etcd.put_all([("/app", "same")]).await;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("secret.conf");
    write(&target, "same\n");
    chmod(&target, 0o644);
    let marker = dir.path().join("reloaded");
    let extra = format!(
        r#","mode":"0600","owner":"nobody","reloadcmd":"touch {}""#,
        marker.display()
    );
    let cfg = config(
        dir.path(),
        &[entry("secret", "/app", &target, &extra)],
        "/app",
    );
    let inode = std::fs::metadata(&target).unwrap().ino();
    let before = tree_state(dir.path());
    let change = format!(
        "{}: mode 0644 → 0600, owner root → nobody",
        target.display()
    );

    let preview = run_reconfig(onetime_args(&cfg, &etcd, &["--notreally"])).await;
    assert_eq!(preview.code, 0, "{}", preview.stderr);
    assert_eq!(preview.stdout, format!("{change}\n"));
    assert_eq!(tree_state(dir.path()), before);

    let mut daemon = Daemon::start(
        [
            "--notreally",
            "--cfgdir",
            cfg.to_str().unwrap(),
            "--endpoints",
            &etcd.endpoint,
        ],
        &dir.path().join("daemon.log"),
    );
    assert!(
        eventually(LIMIT, || daemon.log().contains(&change)).await,
        "{}",
        daemon.log()
    );
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(LIMIT).await, Some(0), "{}", daemon.log());
    std::fs::remove_file(dir.path().join("daemon.log")).unwrap();
    assert_eq!(tree_state(dir.path()), before);

    let run = run_reconfig(onetime_args(&cfg, &etcd, &[])).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("mode 0644 → 0600"), "{}", run.stderr);
    let meta = std::fs::metadata(&target).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o600);
    assert_eq!(meta.uid(), nobody().uid.as_raw());
    assert_eq!(meta.ino(), inode, "the file was replaced");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "same\n");
    assert!(!marker.exists(), "a permission fix reloaded");

    let again = run_reconfig(onetime_args(&cfg, &etcd, &[])).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(!again.stderr.contains("→"), "{}", again.stderr);
}

#[tokio::test]
async fn long_names_are_staged_and_special_files_refused_without_a_hang() {
    let etcd = EtcdServer::start().await;
    etcd.put_all([("/app", "new")]).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let long = out.join("l".repeat(250));
    write(&long, "old\n");
    let fifo = out.join("fifo.conf");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let socket = out.join("socket.conf");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let device = out.join("device.conf");
    std::os::unix::fs::symlink("/dev/null", &device).unwrap();

    // What a plain run costs on this machine now: the bound below is a multiple of it.
    let plain_cfg = config(
        &dir.path().join("plain"),
        &[entry("long", "/app", &long, "")],
        "/app",
    );
    let started = Instant::now();
    let plain = run_reconfig(onetime_args(&plain_cfg, &etcd, &[])).await;
    let plain_time = started.elapsed();
    assert_eq!(plain.code, 0, "{}", plain.stderr);
    assert_eq!(std::fs::read_to_string(&long).unwrap(), "new\n");

    let cfg = config(
        dir.path(),
        &[
            entry("fifo", "/app", &fifo, ""),
            entry("socket", "/app", &socket, ""),
            entry("device", "/app", &device, ""),
        ],
        "/app",
    );
    let run = tokio::time::timeout(
        plain_time * 100,
        run_reconfig(onetime_args(&cfg, &etcd, &[])),
    )
    .await
    .expect("reconfig hung on a special file");
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_one_error(&run.stderr, "fifo.conf", &["FIFO", "not a regular file"]);
    assert_one_error(
        &run.stderr,
        "socket.conf",
        &["socket", "not a regular file"],
    );
    assert_one_error(
        &run.stderr,
        "device.conf",
        &["device", "not a regular file"],
    );
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
    assert!(std::fs::symlink_metadata(&socket)
        .unwrap()
        .file_type()
        .is_socket());
    assert_eq!(std::fs::read_link(&device).unwrap(), Path::new("/dev/null"));
    assert_eq!(names(&out).len(), 4, "{:?}", names(&out));
}

#[tokio::test]
async fn glob_patterns_match_in_linear_time() {
    let etcd = EtcdServer::start().await;
    let long_key = format!("/k/{}", "a".repeat(60));
    etcd.put_all([(long_key.as_str(), "long"), ("/k/ac", "short")])
        .await;
    let dir = tempfile::tempdir().unwrap();
    let run_pattern = |name: &str, pattern: String| {
        let root = dir.path().join(name);
        let target = root.join("out.conf");
        let template = format!("<% for v in getvs(pattern=\"{pattern}\") %><%= v %>\n<% endfor %>");
        let entry = format!(
            r#"{{"id":"{name}","key":"/k","recursive":true,"source":"t","target":"{}"}}"#,
            target.display()
        );
        let cfg = cfgdir(&root, &[(name, entry)], &[("t", &template)]);
        let endpoint = etcd.endpoint.clone();
        async move {
            let started = Instant::now();
            let run = run_reconfig([
                "--onetime",
                "--cfgdir",
                cfg.to_str().unwrap(),
                "--endpoints",
                &endpoint,
            ])
            .await;
            assert_eq!(run.code, 0, "{}", run.stderr);
            (started.elapsed(), std::fs::read_to_string(target).unwrap())
        }
    };
    let (plain_time, plain) = run_pattern("plain", "/k/*".into()).await;
    assert_eq!(plain, "long\nshort\n");
    // Backtracking tries about C(60, 20) ways to place the stars before giving up on the
    // long key: it never finishes.
    let stars = format!("/k/{}c", "*a".repeat(20));
    let (_, starred) = tokio::time::timeout(plain_time * 100, run_pattern("stars", stars))
        .await
        .expect("glob matching took exponential time");
    assert_eq!(starred, "");
    let (_, found) = run_pattern("found", "/k/*ac".to_string()).await;
    assert_eq!(found, "short\n");
}
