//! Safe files and commands in every deployment, against a real etcd: reconfig as a service
//! user, symlinks other users planted, commands that print without end, secrets, leftovers
//! of a killed run, mode and owner drift, long names, special files and glob patterns.

mod common;

use std::time::Instant;

use common::*;

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
