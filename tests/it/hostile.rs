//! Hostile and careless inputs: a template that recurses or loops without end, a value that
//! drives a loop, secrets in values, keys that would forge log lines, and writes that fail
//! for a while. One entry may fail; the process and every other entry go on, nothing from
//! etcd shows unescaped, and a failed write is tried again without a new change.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;

const LIMIT: Duration = Duration::from_secs(30);

/// An entry `NAME` rendering `templates/TEMPLATE` from the tree at `key` into `root/NAME.conf`.
fn entry(root: &Path, name: &str, key: &str, template: &str, extra: &str) -> (String, PathBuf) {
    let target = root.join(format!("{name}.conf"));
    let json = format!(
        r#"{{"id":"{name}","key":"{key}","recursive":true,"source":"{template}","target":"{}"{extra}}}"#,
        target.display()
    );
    (json, target)
}

const TREE: &str = "<% for k, v in data %>\n<%= k %>=<%= v %>\n<% endfor %>\n";

fn daemon_args(cfg: &Path, etcd: &EtcdServer) -> Vec<String> {
    vec![
        "--cfgdir".into(),
        cfg.display().to_string(),
        "--endpoints".into(),
        etcd.endpoint.clone(),
    ]
}

/// `reconfig render` of one template over a snapshot file; extra flags after.
async fn render(dir: &Path, template: &str, data: &str, flags: &[&str]) -> Run {
    render_entry(dir, r#","pattern":"{{ }}""#, template, data, flags).await
}

/// [`render`] of an entry with `extra` fields (its own pattern, limits).
async fn render_entry(dir: &Path, extra: &str, template: &str, data: &str, flags: &[&str]) -> Run {
    let (json, _) = entry(dir, "t", "/d", "t.tmpl", extra);
    let cfg = cfgdir(dir, &[("t", json)], &[("t.tmpl", template)]);
    let snapshot = dir.join("snapshot.json");
    write(&snapshot, data);
    let mut args = vec![
        "render".to_string(),
        "--cfgdir".into(),
        cfg.display().to_string(),
        "--data".into(),
        snapshot.display().to_string(),
    ];
    args.extend(flags.iter().map(|f| f.to_string()));
    run_reconfig(args).await
}

/// A template that includes itself, by the name reconfig gives it (its path).
fn self_including(dir: &Path) -> String {
    let path = dir.join("cfg/templates/t.tmpl");
    format!("x{{% include \"{}\" %}}", path.display())
}

const SELF_CALLING_MACRO: &str =
    "{% macro m(n) %}{{ self::m(n=n+1) }}{% endmacro m %}{{ self::m(n=0) }}";

#[tokio::test]
async fn a_recursive_template_fails_its_render_with_a_reason_instead_of_aborting() {
    for (what, template) in [
        ("include", None),
        ("macro", Some(SELF_CALLING_MACRO.to_string())),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let template = template.unwrap_or_else(|| self_including(dir.path()));
        let run = render(dir.path(), &template, r#"{"/d/a":"1"}"#, &[]).await;
        assert_eq!(run.code, 1, "{what}: {}", run.stderr);
        assert!(
            run.stderr.contains("t.tmpl") && run.stderr.contains("nesting deeper than 64"),
            "{what}: {}",
            run.stderr
        );
        // A lower limit is taken from the command line.
        let run = render(dir.path(), &template, "{}", &["--render-max-depth", "5"]).await;
        assert!(
            run.code == 1 && run.stderr.contains("nesting deeper than 5"),
            "{what}: {}",
            run.stderr
        );
    }
}

#[tokio::test]
async fn legitimate_recursion_within_the_depth_limit_renders() {
    let dir = tempfile::tempdir().unwrap();
    let template = "{% macro count(n) %}{{ n }}{% if n > 0 %},{{ self::count(n=n-1) }}{% endif %}{% endmacro count %}{{ self::count(n=10) }}\n";
    let run = render(dir.path(), template, "{}", &[]).await;
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "10,9,8,7,6,5,4,3,2,1,0\n"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn loops_driven_by_values_stop_at_the_iteration_limit() {
    let dir = tempfile::tempdir().unwrap();
    // What `reconfig migrate` makes of Ruby's `n.times`, and Tera's own range.
    for template in [
        "<% for i in rb_range(end=data[\"/d/n\"] | int) %><%= i %><% endfor %>",
        "{% for i in range(end=data[\"/d/n\"] | int) %}{{ i }}{% endfor %}",
    ] {
        let pattern = if template.starts_with("<%") {
            "<% %>"
        } else {
            "{{ }}"
        };
        let (json, _) = entry(
            dir.path(),
            "t",
            "/d",
            "t.tmpl",
            &format!(r#","pattern":"{pattern}""#),
        );
        let cfg = cfgdir(dir.path(), &[("t", json)], &[("t.tmpl", template)]);
        let snapshot = dir.path().join("snapshot.json");
        write(&snapshot, r#"{"/d/n":"200000000"}"#);
        let run = run_reconfig([
            "render",
            "--cfgdir",
            cfg.to_str().unwrap(),
            "--data",
            snapshot.to_str().unwrap(),
        ])
        .await;
        assert_eq!(run.code, 1, "{template}: {}", run.stderr);
        assert!(
            run.stderr.contains("more than 10000000 loop iterations"),
            "{template}: {}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "nothing printed: {}", run.stdout);
    }
    // Loops nested in loops count together.
    let nested =
        "{% for i in range(end=4000) %}{% for j in range(end=4000) %}{% endfor %}{% endfor %}";
    let run = render(
        dir.path(),
        nested,
        "{}",
        &["--render-max-iterations", "1000000"],
    )
    .await;
    assert!(
        run.code == 1 && run.stderr.contains("more than 1000000 loop iterations"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn output_beyond_the_limit_fails_the_render() {
    let dir = tempfile::tempdir().unwrap();
    let template = "{% for i in range(end=100) %}{{ data[\"/d/big\"] }}{% endfor %}";
    let data = format!(r#"{{"/d/big":"{}"}}"#, "x".repeat(100_000));
    let run = render(
        dir.path(),
        template,
        &data,
        &["--render-max-output", "1MiB"],
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("output larger than 1048576 bytes"),
        "{}",
        run.stderr
    );
    // Ruby's String#* in a migrated template is held to the same limit before it runs.
    let template = "<%= data[\"/d/s\"] | rb_times(other=data[\"/d/n\"] | int) %>";
    let data = r#"{"/d/s":"abc","/d/n":"4000000000"}"#;
    let run = render_entry(dir.path(), "", template, data, &[]).await;
    assert!(
        run.code == 1 && run.stderr.contains("output larger than"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn a_render_over_its_time_limit_fails() {
    let dir = tempfile::tempdir().unwrap();
    let endless =
        "{% for i in range(end=100000) %}{% for j in range(end=100000) %}{% endfor %}{% endfor %}";
    let flags = [
        "--render-timeout",
        "1s",
        "--render-max-iterations",
        "100000000000",
    ];
    let run = render(dir.path(), endless, "{}", &flags).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("took longer than 1s"), "{}", run.stderr);
}

#[tokio::test]
async fn an_entry_sets_its_own_limits() {
    let dir = tempfile::tempdir().unwrap();
    let template = "{% for i in range(end=50) %}{{ i }}{% endfor %}";
    let limits = r#","pattern":"{{ }}","render_max_iterations":10"#;
    let run = render_entry(dir.path(), limits, template, "{}", &[]).await;
    assert!(
        run.code == 1 && run.stderr.contains("more than 10 loop iterations"),
        "{}",
        run.stderr
    );
}

/// A daemon with two entries in plain Tera's pattern: `good` renders the tree at `/good`
/// with [`TREE`], `bad` the tree at `/bad` with `bad_template`; both trees hold `a = 1`.
/// Returns once `good`'s target holds it, with the configuration directory and both targets.
async fn good_and_bad(
    etcd: &EtcdServer,
    dir: &Path,
    bad_template: &str,
) -> (Daemon, PathBuf, PathBuf, PathBuf) {
    let (good, good_target) = entry(dir, "good", "/good", "tree.tmpl", "");
    let (bad, bad_target) = entry(dir, "bad", "/bad", "bad.tmpl", r#","pattern":"{{ }}""#);
    let cfg = cfgdir(
        dir,
        &[("good", good), ("bad", bad)],
        &[("tree.tmpl", TREE), ("bad.tmpl", bad_template)],
    );
    etcd.put_all([("/good/a", "1"), ("/bad/a", "1")]).await;
    let daemon = Daemon::start(daemon_args(&cfg, etcd), &dir.join("log"));
    wait_for_content(&good_target, "/good/a=1\n", LIMIT, || daemon.log()).await;
    (daemon, cfg, good_target, bad_target)
}

/// Waits for `message` in the log of a daemon from [`good_and_bad`], then for `/good/b = 2`
/// to reach the good entry's target: the good entry still follows etcd.
async fn logged_while_good_follows(
    daemon: &Daemon,
    etcd: &EtcdServer,
    good_target: &Path,
    message: &str,
) {
    assert!(
        eventually(LIMIT, || daemon.log().contains(message)).await,
        "{}",
        daemon.log()
    );
    let both = "/good/a=1\n/good/b=2\n";
    put_and_wait(etcd, daemon, ("/good/b", "2"), good_target, both).await;
}

/// Puts `key = value`, then waits for `target` to hold `expected`.
async fn put_and_wait(
    etcd: &EtcdServer,
    daemon: &Daemon,
    (key, value): (&str, &str),
    target: &Path,
    expected: &str,
) {
    etcd.put_all([(key, value)]).await;
    wait_for_content(target, expected, LIMIT, || daemon.log()).await;
}

/// A daemon with a good entry and one whose template turns recursive on disk: the bad
/// entry fails, the process goes on following the good one, and it starts again with the
/// bad template in place.
#[tokio::test]
async fn a_recursive_template_on_disk_fails_only_its_entry() {
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut daemon, cfg, good_target, bad_target) =
        good_and_bad(&etcd, dir.path(), "fine\n").await;
    wait_for_content(&bad_target, "fine\n", LIMIT, || daemon.log()).await;

    // Chef drops a recursive template in: the daemon reloads its configuration.
    let bad_template = cfg.join("templates/bad.tmpl");
    std::fs::write(&bad_template, SELF_CALLING_MACRO).unwrap();
    logged_while_good_follows(&daemon, &etcd, &good_target, "nesting deeper than 64").await;
    assert!(daemon.alive(), "{}", daemon.log());
    assert_eq!(std::fs::read_to_string(&bad_target).unwrap(), "fine\n");

    // A restart with the recursive template in place starts and follows the good entry.
    drop(daemon);
    std::fs::write(
        &bad_template,
        self_including(dir.path()).replace("t.tmpl", "bad.tmpl"),
    )
    .unwrap();
    let daemon = Daemon::start(daemon_args(&cfg, &etcd), &dir.path().join("log2"));
    let all = "/good/a=1\n/good/b=2\n/good/c=3\n";
    put_and_wait(&etcd, &daemon, ("/good/c", "3"), &good_target, all).await;
    assert!(
        eventually(LIMIT, || daemon.log().contains("nesting deeper than 64")).await,
        "{}",
        daemon.log()
    );
}

/// A duration too long for the clock — an entry's field, as text or as seconds, or a flag —
/// is refused with one line naming where it was written, instead of a panic when it is
/// first added to the time.
#[tokio::test]
async fn a_duration_beyond_the_clock_is_refused_where_it_is_written() {
    let huge = "18446744073709551615s";
    for (field, value) in [
        ("render_timeout", format!("{huge:?}")),
        ("debounce", "1e19".into()),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let extra = format!(r#","pattern":"{{{{ }}}}","{field}":{value}"#);
        let run = render_entry(dir.path(), &extra, "x\n", "{}", &[]).await;
        assert_eq!(run.code, 2, "{field}: {}", run.stderr);
        assert!(
            run.stderr.contains(&format!("field \"{field}\"")) && run.stderr.contains("100 years"),
            "{field}: {}",
            run.stderr
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let run = render(dir.path(), "x\n", "{}", &["--render-timeout", huge]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("--render-timeout") && run.stderr.contains("100 years"),
        "{}",
        run.stderr
    );
    // The longest there is still works.
    let run = render(dir.path(), "x\n", "{}", &["--render-timeout", "100y"]).await;
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "x\n"),
        "{}",
        run.stderr
    );
}

/// A template that reaches a panic in Tera's parser: a test given a list as its argument.
const BREAKS_THE_PARSER: &str = "{% if data is defined([1]) %}x{% endif %}\n";

/// A template that reaches a panic in Tera's renderer once a value makes a sum of floats
/// overflow to infinity.
const BREAKS_THE_RENDER: &str = "{% set w = data[\"/bad/a\"] | float %}w={{ w + w }}\n";

#[tokio::test]
async fn a_fault_inside_the_template_engine_is_one_line_naming_the_template() {
    // `render` renders the tree at /d.
    let breaks_the_render = BREAKS_THE_RENDER.replace("/bad/a", "/d/a");
    for (what, template, code) in [
        ("parser", BREAKS_THE_PARSER, 2),
        ("render", &breaks_the_render, 1),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let run = render(dir.path(), template, r#"{"/d/a":"1.5e308"}"#, &[]).await;
        assert_eq!(run.code, code, "{what}: {}", run.stderr);
        let line = run
            .stderr
            .lines()
            .find(|l| l.contains("t.tmpl"))
            .unwrap_or_else(|| panic!("{what}: no line names the template: {}", run.stderr));
        assert!(
            line.contains("the template engine failed"),
            "{what}: {}",
            run.stderr
        );
        assert!(
            !run.stderr.contains("panicked") && !run.stderr.contains("1.5e308"),
            "{what}: {}",
            run.stderr
        );
    }
}

/// A value, then a template, that reach a panic inside Tera fail their entry's render only:
/// the daemon goes on, the entry's target stays as it was, the other entry follows etcd,
/// and the entry itself renders again once the value is fixed.
#[tokio::test]
async fn a_fault_inside_the_template_engine_fails_only_its_entry() {
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut daemon, cfg, good_target, bad_target) =
        good_and_bad(&etcd, dir.path(), BREAKS_THE_RENDER).await;
    wait_for_content(&bad_target, "w=2\n", LIMIT, || daemon.log()).await;

    etcd.put_all([("/bad/a", "1.5e308")]).await;
    logged_while_good_follows(&daemon, &etcd, &good_target, "the template engine failed").await;
    assert_eq!(std::fs::read_to_string(&bad_target).unwrap(), "w=2\n");
    etcd.put_all([("/bad/a", "3")]).await;
    wait_for_content(&bad_target, "w=6\n", LIMIT, || daemon.log()).await;

    // Chef drops a template in that Tera's parser cannot take: the configuration reloads.
    let faults = daemon.log().matches("the template engine failed").count();
    std::fs::write(cfg.join("templates/bad.tmpl"), BREAKS_THE_PARSER).unwrap();
    assert!(
        eventually(LIMIT, || {
            daemon.log().matches("the template engine failed").count() > faults
        })
        .await,
        "{}",
        daemon.log()
    );
    let all = "/good/a=1\n/good/b=2\n/good/c=3\n";
    put_and_wait(&etcd, &daemon, ("/good/c", "3"), &good_target, all).await;
    assert!(daemon.alive(), "{}", daemon.log());
    assert!(!daemon.log().contains("panicked"), "{}", daemon.log());
    assert_eq!(std::fs::read_to_string(&bad_target).unwrap(), "w=6\n");
}

/// A render that runs long (here until its time limit) does not hold up another entry's
/// update, nor `/healthz`: the other target changes while the long render is still going.
#[tokio::test]
async fn a_long_render_does_not_hold_up_other_entries() {
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (good, good_target) = entry(dir.path(), "good", "/good", "tree.tmpl", "");
    // Endless once /slow/n is large: stopped only by its own 15 s time limit.
    let slow_template = "{% for i in range(end=data[\"/slow/n\"] | int) %}{% for j in range(end=data[\"/slow/n\"] | int) %}{% endfor %}{% endfor %}done\n";
    let limits =
        r#","pattern":"{{ }}","render_timeout":"15s","render_max_iterations":100000000000"#;
    let (slow, slow_target) = entry(dir.path(), "slow", "/slow", "slow.tmpl", limits);
    let cfg = cfgdir(
        dir.path(),
        &[("good", good), ("slow", slow)],
        &[("tree.tmpl", TREE), ("slow.tmpl", slow_template)],
    );
    etcd.put_all([("/good/a", "1"), ("/slow/n", "1")]).await;
    let mut args = daemon_args(&cfg, &etcd);
    args.extend(["--metrics-addr".into(), "127.0.0.1:0".into()]);
    let daemon = Daemon::start(&args, &dir.path().join("log"));
    wait_for_content(&good_target, "/good/a=1\n", LIMIT, || daemon.log()).await;
    wait_for_content(&slow_target, "done\n", LIMIT, || daemon.log()).await;
    let addr = metrics_addr(&daemon).await;

    etcd.put_all([("/slow/n", "1000000")]).await;
    // Give the slow render a moment to start, then change the other entry.
    assert!(
        eventually(LIMIT, || daemon.log().contains("[slow] render runs long")).await,
        "{}",
        daemon.log()
    );
    let put = Instant::now();
    etcd.put_all([("/good/b", "2")]).await;
    wait_for_content(&good_target, "/good/a=1\n/good/b=2\n", LIMIT, || {
        daemon.log()
    })
    .await;
    let landed = put.elapsed();
    let health = http_get(&addr, "/healthz").await;
    let log = daemon.log();
    assert!(
        !log.contains("took longer than 15s"),
        "the other entry waited for the slow render ({landed:?}):\n{log}"
    );
    assert!(
        health.is_some(),
        "/healthz did not answer during the render"
    );
    println!("the other entry's update landed {landed:?} after its put, during the slow render");
    // Then the slow render fails on its own limit; its target is untouched.
    assert!(
        eventually(LIMIT, || daemon.log().contains("took longer than 15s")).await,
        "{}",
        daemon.log()
    );
    assert_eq!(std::fs::read_to_string(&slow_target).unwrap(), "done\n");
}

/// Values never reach `/healthz` or the log, even where a template uses one as a key.
#[tokio::test]
async fn values_stay_out_of_healthz_and_the_log() {
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let template = "<%= getv(key=data[\"/d4/bad\"]) %>\n";
    let (json, target) = entry(dir.path(), "d4", "/d4", "t.tmpl", "");
    let cfg = cfgdir(dir.path(), &[("d4", json)], &[("t.tmpl", template)]);
    etcd.put_all([("/d4/bad", "SECRET-in-json")]).await;
    let mut args = daemon_args(&cfg, &etcd);
    args.extend(["--metrics-addr".into(), "127.0.0.1:0".into()]);
    let daemon = Daemon::start(&args, &dir.path().join("log"));
    let addr = metrics_addr(&daemon).await;
    let (_, body) = poll_get(&addr, "/healthz", &daemon, |_, body| body.contains("getv")).await;
    assert!(!body.contains("SECRET"), "/healthz shows a value: {body}");
    // Tera's own filters quote the value they were given in their errors.
    std::fs::write(
        cfg.join("templates/t.tmpl"),
        "<%= data[\"/d4/bad\"] | round %>\n",
    )
    .unwrap();
    let (_, body) = poll_get(&addr, "/healthz", &daemon, |_, body| body.contains("round")).await;
    assert!(!body.contains("SECRET"), "/healthz shows a value: {body}");
    assert!(!target.exists());
    let log = daemon.log();
    assert!(!log.contains("SECRET"), "the log shows a value:\n{log}");
}

/// A key holding a newline and a terminal escape cannot forge a log line or reach the
/// terminal raw.
#[tokio::test]
async fn keys_cannot_forge_log_lines() {
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (json, _) = entry(dir.path(), "inj", "/inj", "tree.tmpl", "");
    let cfg = cfgdir(dir.path(), &[("inj", json)], &[("tree.tmpl", TREE)]);
    let forged = "2026-01-01T00:00:00.000Z  INFO [other] forged";
    let key = format!("/inj/x\n{forged}\x1b[31m");
    let mut client = etcd.client().await;
    // A value that is not UTF-8 makes the render fail naming the key.
    client
        .put(key.as_bytes(), vec![0xff, 0xfe], None)
        .await
        .unwrap();
    let daemon = Daemon::start(daemon_args(&cfg, &etcd), &dir.path().join("log"));
    assert!(
        eventually(LIMIT, || daemon.log().contains("not valid UTF-8")).await,
        "{}",
        daemon.log()
    );
    let log = daemon.log();
    assert!(
        !log.lines().any(|line| line.starts_with(forged)),
        "a forged line:\n{log}"
    );
    assert!(!log.contains('\x1b'), "a raw escape:\n{log:?}");
    assert!(
        log.contains(r"\n2026-01-01"),
        "the key shown escaped:\n{log}"
    );
}

/// A write that fails (the target's directory is missing) is tried again, without a new
/// change in etcd, until it lands.
#[tokio::test]
async fn a_failed_write_is_retried_until_it_lands() {
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let later = dir.path().join("later");
    let target = later.join("a.conf");
    let json = format!(
        r#"{{"id":"a","key":"/a","recursive":true,"source":"tree.tmpl","target":"{}"}}"#,
        target.display()
    );
    let cfg = cfgdir(dir.path(), &[("a", json)], &[("tree.tmpl", TREE)]);
    etcd.put_all([("/a/1", "one")]).await;
    let daemon = Daemon::start(daemon_args(&cfg, &etcd), &dir.path().join("log"));
    assert!(
        eventually(LIMIT, || daemon.log().contains("does not exist")).await,
        "{}",
        daemon.log()
    );
    std::fs::create_dir(&later).unwrap();
    wait_for_content(&target, "/a/1=one\n", LIMIT, || daemon.log()).await;
    assert!(daemon.log().contains("retrying"), "{}", daemon.log());
}
