//! etcd-util against a real etcd: every operation, its output format and exit codes.

use std::time::{Duration, Instant};

use crate::common::*;
use crate::pki::{by_name, Pki};
use nix::sys::signal::Signal;

const LIMIT: Duration = Duration::from_secs(20);

fn util() -> tokio::process::Command {
    binary(&etcd_util())
}

async fn util_run(etcd: &EtcdServer, args: &[&str]) -> Run {
    let mut all = vec!["--endpoints", &etcd.endpoint];
    all.extend_from_slice(args);
    run_command(util(), all).await
}

async fn set_get_recursive_get_and_delete(version: EtcdVersion) {
    let etcd = version.start().await;
    let set = util_run(&etcd, &["-o", "set", "-k", "/app/a", "-v", "1"]).await;
    assert_eq!(set.code, 0, "{}", set.stderr);
    assert_eq!(set.stderr, "Setting /app/a (1 byte)\n");
    util_run(&etcd, &["-o", "SET", "-k", "/app/dir/b", "-v", "2"]).await;
    util_run(&etcd, &["-o", "Set", "-k", "/appx", "-v", "sibling"]).await;

    let get = util_run(&etcd, &["-k", "/app/a"]).await;
    assert_eq!(
        (get.code, get.stdout.as_str()),
        (0, "{\n  \"/app/a\": \"1\"\n}\n")
    );

    let tree = util_run(&etcd, &["-o", "get", "-k", "/app", "-r"]).await;
    assert_eq!(
        tree.stdout,
        "{\n  \"/app/a\": \"1\",\n  \"/app/dir/b\": \"2\"\n}\n"
    );

    let listing = util_run(&etcd, &["-o", "get", "-k", "/app"]).await;
    assert_eq!(listing.stdout, "[\n  \"/app/a\",\n  \"/app/dir\"\n]\n");

    let missing = util_run(&etcd, &["-k", "/nope"]).await;
    assert_eq!(
        (missing.code, missing.stderr.as_str()),
        (1, "KeyNotFound /nope\n")
    );

    let del = util_run(&etcd, &["-o", "del", "-k", "/app/a"]).await;
    assert_eq!(del.code, 0, "{}", del.stderr);
    assert_eq!(util_run(&etcd, &["-k", "/app/a"]).await.code, 1);

    let del_tree = util_run(&etcd, &["-o", "del", "-k", "/app", "-r"]).await;
    assert_eq!(del_tree.code, 0, "{}", del_tree.stderr);
    assert_eq!(util_run(&etcd, &["-k", "/app", "-r"]).await.code, 1);
    let sibling = util_run(&etcd, &["-k", "/appx"]).await;
    assert_eq!(sibling.code, 0, "a recursive delete must not touch /appx");

    let del_missing = util_run(&etcd, &["-o", "del", "-k", "/nope"]).await;
    assert_eq!(
        (del_missing.code, del_missing.stderr.as_str()),
        (1, "KeyNotFound /nope\n")
    );
}

/// etcd-util with `args`, `input` on its stdin.
async fn util_with_stdin(etcd: &EtcdServer, args: &[&str], input: &[u8]) -> Run {
    use tokio::io::AsyncWriteExt;
    let mut cmd = util();
    cmd.args(["--endpoints", &etcd.endpoint]).args(args);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The value etcd holds at `key`, as bytes.
async fn stored(etcd: &EtcdServer, key: &str) -> Option<Vec<u8>> {
    let mut client = etcd.client().await;
    let response = client.get(key, None).await.unwrap();
    response.kvs().first().map(|kv| kv.value().to_vec())
}

/// Every key etcd holds.
async fn all_keys(etcd: &EtcdServer) -> Vec<String> {
    let mut client = etcd.client().await;
    let everything = etcd_client::GetOptions::new()
        .with_all_keys()
        .with_keys_only();
    let response = client.get("", Some(everything)).await.unwrap();
    response
        .kvs()
        .iter()
        .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
        .collect()
}

#[tokio::test]
async fn set_reads_a_value_verbatim_from_stdin_or_a_file_and_never_echoes_it() {
    let etcd = EtcdServer::start().await;
    let secret = b"hunter2\n\n";
    let piped = util_with_stdin(&etcd, &["-o", "set", "-k", "/eu/pw", "-v", "-"], secret).await;
    assert_eq!(piped.code, 0, "{}", piped.stderr);
    assert_eq!(piped.stderr, "Setting /eu/pw (9 bytes)\n");
    assert_eq!(stored(&etcd, "/eu/pw").await.as_deref(), Some(&secret[..]));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("value");
    let bytes = [0xff, 0x00, b'\n', b'@', b'-', b'\r', b'\n'];
    std::fs::write(&file, bytes).unwrap();
    let from_file = format!("@{}", file.display());
    let run = util_run(
        &etcd,
        &["-o", "set", "-k", "/eu/bin", "-v", &from_file, "-t", "60"],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stderr, "Setting /eu/bin (7 bytes) TTL=60s\n");
    assert_eq!(stored(&etcd, "/eu/bin").await.as_deref(), Some(&bytes[..]));

    let inline = util_run(&etcd, &["-o", "set", "-k", "/eu/pw", "-v", "hunter2"]).await;
    assert_eq!(inline.code, 0, "{}", inline.stderr);
    assert_eq!(
        inline.stderr, "Setting /eu/pw (7 bytes)\n",
        "never the value"
    );

    // A literal "-" or "@..." goes in through stdin.
    let literal = util_with_stdin(&etcd, &["-o", "set", "-k", "/eu/at", "-v", "-"], b"@x").await;
    assert_eq!(literal.code, 0, "{}", literal.stderr);
    assert_eq!(stored(&etcd, "/eu/at").await.as_deref(), Some(&b"@x"[..]));

    let missing = dir.path().join("nope");
    let run = util_run(
        &etcd,
        &[
            "-o",
            "set",
            "-k",
            "/eu/x",
            "-v",
            &format!("@{}", missing.display()),
        ],
    )
    .await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("{}: ", missing.display())),
        "{}",
        run.stderr
    );
    assert_eq!(stored(&etcd, "/eu/x").await, None);
}

#[tokio::test]
async fn deleting_the_whole_keyspace_needs_force() {
    let etcd = EtcdServer::start().await;
    etcd.put_all([("/a", "1"), ("/b/c", "2"), ("/", "root")])
        .await;
    let before = all_keys(&etcd).await;
    for root in ["/", "//", "///"] {
        let run = util_run(&etcd, &["-o", "del", "-r", "-k", root]).await;
        assert_eq!(run.code, 2, "{root}: {}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        assert!(run.stderr.contains("--force"), "{}", run.stderr);
        assert_eq!(all_keys(&etcd).await, before, "{root}: nothing deleted");
    }
    let forced = util_run(&etcd, &["-o", "del", "-r", "-k", "/", "--force"]).await;
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    assert_eq!(forced.stderr, "Deleted / (3 keys)\n");
    assert!(all_keys(&etcd).await.is_empty());
}

on_each_etcd!(
    #[tokio::test]
    set_get_recursive_get_and_delete
);

async fn ttl_key_expires(version: EtcdVersion) {
    let etcd = version.start().await;
    let set = util_run(&etcd, &["-o", "set", "-k", "/ttl", "-v", "x", "-t", "1"]).await;
    assert_eq!(set.code, 0, "{}", set.stderr);
    assert_eq!(set.stderr, "Setting /ttl (1 byte) TTL=1s\n");
    assert_eq!(util_run(&etcd, &["-k", "/ttl"]).await.code, 0);
    let deadline = Instant::now() + LIMIT;
    loop {
        if util_run(&etcd, &["-k", "/ttl"]).await.code == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the leased key never expired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

on_each_etcd!(
    #[tokio::test]
    ttl_key_expires
);

/// The watch starts at the revision current when it is created: puts `/w/ready` until it
/// shows up, then the watch is live.
async fn wait_watching(etcd: &EtcdServer, watcher: &Daemon) {
    let mut client = etcd.client().await;
    let deadline = Instant::now() + LIMIT;
    loop {
        client.put("/w/ready", "", None).await.unwrap();
        let ready = || watcher.log().contains("\"/w/ready\"");
        if eventually(Duration::from_millis(200), ready).await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "watch never started: {}",
            watcher.log()
        );
    }
}

fn watch_w(etcd: &EtcdServer, log: &std::path::Path) -> Daemon {
    Daemon::spawn(
        util(),
        [
            "--endpoints",
            &etcd.endpoint,
            "-o",
            "watch",
            "-k",
            "/w",
            "-r",
        ],
        log,
    )
}

async fn a_watch_whose_history_was_compacted_says_so_and_goes_on(version: EtcdVersion) {
    let mut etcd = version.start().await;
    let dir = tempfile::tempdir().unwrap();
    let watcher = watch_w(&etcd, &dir.path().join("watch.out"));
    wait_watching(&etcd, &watcher).await;
    // Frozen while its stream breaks and the history it needs is compacted away.
    watcher.signal(Signal::SIGSTOP);
    etcd.restart(0);
    assert!(etcd.wait_ready(LIMIT).await);
    let mut client = etcd.client().await;
    client.put("/w/lost", "x", None).await.unwrap();
    let kept = client.put("/w/kept", "x", None).await.unwrap();
    let revision = kept.header().unwrap().revision();
    client.compact(revision, None).await.unwrap();
    watcher.signal(Signal::SIGCONT);
    client.put("/w/after", "y", None).await.unwrap();
    let resumed = eventually(LIMIT, || watcher.log().contains("\"/w/after\"")).await;
    assert!(resumed, "{}", watcher.log());
    let log = watcher.log();
    assert!(
        log.contains(&format!("resuming at revision {revision}")) && log.contains("compacted"),
        "{log}"
    );
    // The event at the compaction revision is kept; the one before it is gone.
    assert!(log.contains("\"/w/kept\""), "{log}");
    assert!(!log.contains("\"/w/lost\""), "{log}");
}

on_each_etcd!(
    #[tokio::test]
    a_watch_whose_history_was_compacted_says_so_and_goes_on
);

async fn watch_prints_puts_and_deletes_as_json_lines(version: EtcdVersion) {
    let etcd = version.start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut watcher = watch_w(&etcd, &dir.path().join("watch.out"));
    wait_watching(&etcd, &watcher).await;
    let mut client = etcd.client().await;
    client.put("/w/a", "1", None).await.unwrap();
    client.put("/wx", "not mine", None).await.unwrap();
    client.delete("/w/a", None).await.unwrap();
    let done = eventually(LIMIT, || watcher.log().contains("\"DELETE\"")).await;
    assert!(done, "{}", watcher.log());
    let lines: Vec<serde_json::Value> = watcher
        .log()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["key"] != "/w/ready")
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["type"], "PUT");
    assert_eq!(lines[0]["key"], "/w/a");
    assert_eq!(lines[0]["value"], "1");
    assert_eq!(lines[1]["type"], "DELETE");
    assert!(lines[1].get("value").is_none());
    assert!(lines[1]["revision"].as_i64() > lines[0]["revision"].as_i64());
    watcher.signal(Signal::SIGINT);
    assert_eq!(watcher.wait_exit(LIMIT).await, Some(0));
}

on_each_etcd!(
    #[tokio::test]
    watch_prints_puts_and_deletes_as_json_lines
);

async fn version_lists_server_and_members(version: EtcdVersion) {
    let etcd = version.start().await;
    let run = util_run(&etcd, &["--version"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    // The release under test, as the server reports it.
    let reported = format!("etcd version: {}.", version.release());
    assert!(run.stdout.starts_with(&reported), "{}", run.stdout);
    assert!(run.stdout.contains("leader: m0"), "{}", run.stdout);
}

on_each_etcd!(
    #[tokio::test]
    version_lists_server_and_members
);

#[tokio::test]
async fn usage_errors_exit_2_and_unreachable_exits_1() {
    let etcd = EtcdServer::start().await;
    // The slowest usage error: what starting the program and failing at once costs here.
    let mut overhead = Duration::ZERO;
    for args in [
        &["-o", "get"][..],
        &["-o", "set", "-k", "/k"],
        &["-o", "frob", "-k", "/k"],
    ] {
        let started = Instant::now();
        let run = util_run(&etcd, args).await;
        overhead = overhead.max(started.elapsed());
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert_eq!(run.stderr.trim().lines().count().min(1), 1);
    }
    let port = free_port();
    let endpoint = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let run = run_command(
        util(),
        [
            "--endpoints",
            &endpoint,
            "--connect-timeout",
            "1s",
            "-k",
            "/k",
        ],
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("unreachable") && run.stderr.contains(&endpoint),
        "{}",
        run.stderr
    );
    // Attempts stop at the connect timeout; the last may run one timeout past it.
    let bound = Duration::from_secs(1) * 2 + overhead * 2;
    assert!(
        started.elapsed() < bound,
        "took {:?}, bound {bound:?}",
        started.elapsed()
    );
}

async fn auth_errors_are_one_line_and_never_show_the_password(version: EtcdVersion) {
    let etcd = version.start().await;
    etcd.put_all([("/app/a", "1")]).await;
    etcd.enable_auth().await;
    let as_user = |password: &str| {
        let mut cmd = util();
        cmd.env("ETCD_USERNAME", "app")
            .env("ETCD_PASSWORD", password);
        cmd
    };
    let endpoint = etcd.endpoint.clone();
    let ok = run_command(
        as_user("app-pw"),
        ["--endpoints", &endpoint, "-k", "/app/a"],
    )
    .await;
    assert_eq!(
        (ok.code, ok.stdout.as_str()),
        (0, "{\n  \"/app/a\": \"1\"\n}\n"),
        "{}",
        ok.stderr
    );

    let denied = run_command(
        as_user("app-pw"),
        [
            "--endpoints",
            &endpoint,
            "-o",
            "set",
            "-k",
            "/other",
            "-v",
            "x",
        ],
    )
    .await;
    assert_eq!(denied.code, 1, "{}", denied.stderr);
    let last = denied.stderr.lines().last().unwrap_or_default();
    assert!(last.contains("permission denied"), "{}", denied.stderr);

    let wrong = run_command(
        as_user("not-the-password"),
        ["--endpoints", &endpoint, "-d", "-k", "/app/a"],
    )
    .await;
    assert_eq!(wrong.code, 1, "{}", wrong.stderr);
    assert!(
        !wrong.stderr.contains("not-the-password"),
        "{}",
        wrong.stderr
    );
    assert_eq!(
        wrong.stderr.lines().filter(|l| l.contains("app")).count(),
        1,
        "{}",
        wrong.stderr
    );
}

on_each_etcd!(
    #[tokio::test]
    auth_errors_are_one_line_and_never_show_the_password
);

/// etcd-util over TLS with a client certificate, through reconfig's shared connection
/// code and reconfig.rb's flag spellings.
async fn set_and_get_over_tls_with_a_client_certificate(version: EtcdVersion) {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(dir.path());
    let etcd = version.start_with(&pki.etcd_args(), "https").await;
    let port = by_name(&etcd.endpoint)
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let connect: Vec<String> = [
        "-s",
        "--host",
        "localhost",
        "--port",
        &port,
        "--ssl_cafile",
        &path(&pki.ca),
    ]
    .map(String::from)
    .to_vec();
    let util = |args: &[&str], (cert, key): &(std::path::PathBuf, std::path::PathBuf)| {
        let mut all = connect.clone();
        all.extend([
            "--ssl_cert".into(),
            path(cert),
            "--ssl_key".into(),
            path(key),
        ]);
        all.extend(args.iter().map(|a| a.to_string()));
        run_command(binary(&etcd_util()), all)
    };

    let set = util(&["-o", "set", "-k", "/tls/k", "-v", "v"], &pki.client).await;
    assert_eq!(set.code, 0, "{}", set.stderr);
    let mut client = pki.client(&by_name(&etcd.endpoint)).await;
    let stored = client.get("/tls/k", None).await.unwrap();
    assert_eq!(stored.kvs()[0].value(), b"v");
    let get = util(&["-k", "/tls/k"], &pki.client).await;
    assert_eq!(
        (get.code, get.stdout.as_str()),
        (0, "{\n  \"/tls/k\": \"v\"\n}\n"),
        "{}",
        get.stderr
    );

    let refused = util(&["-k", "/tls/k"], &pki.stranger).await;
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert_eq!(refused.stderr.lines().count(), 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("client certificate"),
        "{}",
        refused.stderr
    );
}

#[tokio::test]
async fn prints_its_manual_page_and_completions_without_etcd() {
    let run = run_command(util(), ["--man"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains(".TH etcd-util 1 "), "{}", run.stdout);
    for text in [
        r"\-\-key",
        r"\-\-operation",
        r#".SH "EXIT STATUS""#,
        "ETCD_ENDPOINTS",
    ] {
        assert!(run.stdout.contains(text), "{text} missing:\n{}", run.stdout);
    }
    for (shell, marker) in [
        ("bash", "complete -F _etcd__util"),
        ("zsh", "#compdef etcd-util"),
        ("fish", "complete -c etcd-util"),
    ] {
        let run = run_command(util(), ["--completions", shell]).await;
        assert_eq!(run.code, 0, "{shell}: {}", run.stderr);
        assert!(run.stdout.contains(marker), "{shell}:\n{}", run.stdout);
        assert!(run.stdout.contains("operation"), "{shell}:\n{}", run.stdout);
    }
    for args in [&["--man", "-k", "/k"][..], &["--completions", "tcsh"]] {
        let run = run_command(util(), args).await;
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
    }
}

on_each_etcd!(
    #[tokio::test]
    set_and_get_over_tls_with_a_client_certificate
);
