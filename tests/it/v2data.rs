//! `reconfig migrate --data-from-v2` against a real etcd 3.4 serving both APIs
//! (`--enable-v2`): the v2 and v3 stores of one server, as a fleet switching from
//! reconfig.rb has them. The tests write v2 data as reconfig.rb's etcd gem did — HTTP PUTs
//! with a form body — and read v3 with etcd's own client: nested directories, 5,000 keys,
//! odd bytes, TTLs, a v3 role that refuses some keys, and `--follow` through sets,
//! updates, deletes, directory deletes, expiries, refreshed TTLs, a cut connection and a
//! v2 history that no longer holds the index.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use etcd_client::{Client as V3, GetOptions, Permission};
use futures_util::stream::{self, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use nix::sys::signal::Signal;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::common::*;

/// Generous limit for "eventually" (a loaded 2-core machine).
const LIMIT: Duration = Duration::from_secs(20);

/// What a key's path keeps in a URL.
const PATH: &AsciiSet = &NON_ALPHANUMERIC.remove(b'/');

/// A v2 client for setting up data: plain HTTP/1.1 requests with form bodies.
struct V2 {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

impl V2 {
    fn new(endpoint: &str) -> V2 {
        V2 {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: endpoint.to_string(),
        }
    }

    /// `METHOD /v2/keys/KEY?QUERY` with `form` as the body: status and body.
    async fn request(
        &self,
        method: Method,
        key: &str,
        query: &str,
        form: &[(&str, &str)],
    ) -> (u16, String) {
        let body: Vec<String> = form
            .iter()
            .map(|(name, value)| format!("{name}={}", utf8_percent_encode(value, NON_ALPHANUMERIC)))
            .collect();
        let uri = format!(
            "{}/v2/keys{}?{query}",
            self.base,
            utf8_percent_encode(key, PATH)
        );
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body.join("&"))))
            .unwrap();
        let response = self.client.request(request).await.unwrap();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// Sets `key` (with a TTL in seconds when given), creating its directories.
    async fn set(&self, key: &str, value: &str, ttl: Option<u64>) {
        let ttl = ttl.map(|t| t.to_string()).unwrap_or_default();
        let (status, body) = self
            .request(Method::PUT, key, "", &[("value", value), ("ttl", &ttl)])
            .await;
        assert!(status == 200 || status == 201, "set {key}: {status} {body}");
    }

    /// Runs a v2 write with `query` (a conditional write, a refresh, a directory) that must
    /// succeed.
    async fn write(&self, method: Method, key: &str, query: &str, form: &[(&str, &str)]) {
        let (status, body) = self.request(method, key, query, form).await;
        assert!(status < 300, "{key}?{query}: {status} {body}");
    }

    /// Whether v2 holds `key`.
    async fn holds(&self, key: &str) -> bool {
        self.request(Method::GET, key, "", &[]).await.0 == 200
    }

    /// Sets every pair, many at a time.
    async fn set_all(&self, pairs: &[(String, String, Option<u64>)]) {
        stream::iter(pairs)
            .for_each_concurrent(32, |(k, v, ttl)| self.set(k, v, *ttl))
            .await;
    }
}

/// Every v3 key under `/`: value and lease.
async fn v3_tree(v3: &mut V3) -> BTreeMap<String, (Vec<u8>, i64)> {
    let all = v3
        .get("/", Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    all.kvs()
        .iter()
        .map(|kv| {
            let key = String::from_utf8(kv.key().to_vec()).unwrap();
            (key, (kv.value().to_vec(), kv.lease()))
        })
        .collect()
}

/// The value v3 holds at `key`, if any.
async fn v3_value(v3: &mut V3, key: &str) -> Option<Vec<u8>> {
    let got = v3.get(key, None).await.unwrap();
    got.kvs().first().map(|kv| kv.value().to_vec())
}

/// Polls until v3 holds `want` at `key` (None: nothing); how long it took. Panics with the
/// follower's log after [`LIMIT`].
async fn until_v3(v3: &mut V3, key: &str, want: Option<&str>, follower: &Daemon) -> Duration {
    let started = Instant::now();
    let want = want.map(|w| w.as_bytes().to_vec());
    loop {
        let now = v3_value(v3, key).await;
        if now == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < LIMIT,
            "v3 {key} is {now:?}, never {want:?}\n{}",
            follower.log()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// `reconfig migrate --data-from-v2 URL --endpoints EP ARGS`.
async fn copy(url: &str, endpoint: &str, args: &[&str]) -> Run {
    let mut argv = vec!["migrate", "--data-from-v2", url, "--endpoints", endpoint];
    argv.extend(args);
    run_reconfig(argv).await
}

/// Starts `reconfig migrate --data-from-v2 URL --endpoints EP --follow ARGS` and waits until
/// it follows.
async fn follow(url: &str, endpoint: &str, args: &[&str], log: &std::path::Path) -> Daemon {
    let mut argv = vec![
        "migrate",
        "--data-from-v2",
        url,
        "--endpoints",
        endpoint,
        "--follow",
    ];
    argv.extend(args);
    let follower = Daemon::start(argv, log);
    let following = eventually(LIMIT, || follower.log().contains("following the changes")).await;
    assert!(
        following,
        "the follower never followed:\n{}",
        follower.log()
    );
    follower
}

/// Stops the follower with `signal`: it says so and exits 0.
async fn stop(follower: &mut Daemon, signal: Signal) {
    follower.signal(signal);
    assert_eq!(
        follower.wait_exit(LIMIT).await,
        Some(0),
        "{}",
        follower.log()
    );
    let said = format!("{signal}: stopped following");
    assert!(follower.log().contains(&said), "{}", follower.log());
}

#[tokio::test]
async fn a_5000_key_tree_with_directories_and_ttls_is_copied_exactly() {
    let etcd = EtcdServer::start_v2().await;
    let v2 = V2::new(&etcd.endpoint);
    let mut pairs = Vec::new();
    for service in 0..50 {
        for host in 0..100 {
            let key = format!("/fleet/svc{service}/host{host}");
            let ttl = (host % 10 == 0).then_some(300);
            pairs.push((key, format!("10.0.{service}.{host}:80"), ttl));
        }
    }
    let started = Instant::now();
    v2.set_all(&pairs).await;
    let run = copy(&etcd.endpoint, &etcd.endpoint, &[]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let summary = format!(
        "5000 keys under / copied from etcd v2 at {0} to v3 at {0} (500 with a TTL): 5000 match, \
         0 expired since, 0 do not\n",
        etcd.endpoint
    );
    assert_eq!(run.stdout, summary);

    let mut v3 = etcd.client().await;
    let tree = v3_tree(&mut v3).await;
    let values: BTreeMap<&str, &[u8]> = tree
        .iter()
        .map(|(k, (v, _))| (k.as_str(), v.as_slice()))
        .collect();
    let expected: BTreeMap<&str, &[u8]> = pairs
        .iter()
        .map(|(k, v, _)| (k.as_str(), v.as_bytes()))
        .collect();
    assert_eq!(values, expected, "exactly the v2 keys, no directory keys");
    let mut leases: Vec<i64> = Vec::new();
    for (key, value, ttl) in &pairs {
        let lease = tree[key].1;
        assert_eq!(lease != 0, ttl.is_some(), "{key}={value} on lease {lease}");
        if lease != 0 && !leases.contains(&lease) {
            leases.push(lease);
        }
    }
    for lease in &leases {
        // Time since the TTLs were set, up to this lease's reading.
        let elapsed = started.elapsed();
        let left = v3.lease_time_to_live(*lease, None).await.unwrap().ttl();
        let floor = 300 - i64::try_from(elapsed.as_secs()).unwrap() - 1;
        assert!(
            (floor..=302).contains(&left),
            "lease {lease:x}: {left} s left"
        );
    }
    println!(
        "500 keys with a 300 s TTL went on {} leases (one per second of expiry)",
        leases.len()
    );

    let dir = tempfile::tempdir().unwrap();
    let cfg = cfgdir(
        dir.path(),
        &[(
            "svc7",
            format!(
                r#"{{"key": "/fleet/svc7", "recursive": true, "source": "t", "target": "{}"}}"#,
                dir.path().join("svc7.conf").display()
            ),
        )],
        &[(
            "t",
            "<% for k, v in data %>\n<%= k | base %> <%= v %>\n<% endfor %>",
        )],
    );
    let cfg = cfg.to_str().unwrap();
    let render = run_reconfig(["-c", cfg, "--onetime", "--endpoints", &etcd.endpoint]).await;
    assert_eq!(render.code, 0, "{}", render.stderr);
    let rendered = std::fs::read_to_string(dir.path().join("svc7.conf")).unwrap();
    assert_eq!(rendered.lines().count(), 100, "{rendered}");
    assert!(rendered.contains("host42 10.0.7.42:80\n"), "{rendered}");
}

#[tokio::test]
async fn odd_bytes_in_keys_and_values_round_trip_and_hidden_keys_stay() {
    let etcd = EtcdServer::start_v2().await;
    let v2 = V2::new(&etcd.endpoint);
    let odd: Vec<(&str, &str)> = vec![
        ("/odd/quotes", r#"say "hi" and 'bye'"#),
        ("/odd/newlines", "line 1\nline 2\n\n"),
        ("/odd/crlf", "a\r\nb\r\n"),
        ("/odd/tab and space", "\t indented \t"),
        ("/odd/unicode-ü", "ünïcödé ✓ 日本 🚀"),
        ("/odd/percent%25", "100% %41 %zz"),
        ("/odd/plus+", "a+b c++"),
        ("/odd/amp&eq=", "a&b=c&d"),
        ("/odd/empty", ""),
        ("/odd/backslash", r"C:\path\n not a newline \\"),
        ("/odd/markup", "<a href=\"x\">&amp;</a>"),
        ("/odd/json", r#"{"k": [1, "two", null], "u": "\u00fc"}"#),
        ("/odd/nul", "before\0after"),
        ("/odd/question?hash#", "?#"),
        ("/odd/deep/er/still", "nested"),
    ];
    for (key, value) in &odd {
        v2.set(key, value, None).await;
    }
    v2.set("/odd/_hidden", "reconfig.rb never saw it", None)
        .await;
    let run = copy(&etcd.endpoint, &etcd.endpoint, &["--data-prefix", "/odd/"]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.starts_with("15 keys under /odd copied"),
        "{}",
        run.stdout
    );

    let mut v3 = etcd.client().await;
    let tree = v3_tree(&mut v3).await;
    let copied: BTreeMap<&str, &[u8]> = tree
        .iter()
        .map(|(k, (v, _))| (k.as_str(), v.as_slice()))
        .collect();
    let expected: BTreeMap<&str, &[u8]> = odd.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
    assert_eq!(
        copied, expected,
        "byte for byte; the hidden key is not copied"
    );
}

#[tokio::test]
async fn ttl_keys_and_directories_get_leases_that_end_with_them() {
    let etcd = EtcdServer::start_v2().await;
    let v2 = V2::new(&etcd.endpoint);
    let before = Instant::now();
    v2.set("/ttl/long", "60 s", Some(60)).await;
    v2.set("/ttl/short", "2 s", Some(2)).await;
    v2.set("/ttl/plain", "no TTL", None).await;
    v2.write(Method::PUT, "/ttl/dir", "dir=true&ttl=30", &[])
        .await;
    v2.set("/ttl/dir/child", "expires with its directory", None)
        .await;
    v2.set("/ttl/dir/longer", "its own TTL is longer", Some(90))
        .await;
    let run = copy(&etcd.endpoint, &etcd.endpoint, &["--data-prefix", "/ttl"]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("(4 with a TTL)"), "{}", run.stdout);

    let mut v3 = etcd.client().await;
    let tree = v3_tree(&mut v3).await;
    assert_eq!(tree["/ttl/plain"].1, 0, "no TTL, no lease");
    for (key, ttl) in [
        ("/ttl/long", 60),
        ("/ttl/dir/child", 30),
        ("/ttl/dir/longer", 30),
    ] {
        let lease = tree[key].1;
        let since = i64::try_from(before.elapsed().as_secs()).unwrap();
        let left = v3.lease_time_to_live(lease, None).await.unwrap().ttl();
        assert!(
            (ttl - since - 1..=ttl + 2).contains(&left),
            "{key}: {left} s left of a {ttl} s TTL"
        );
    }
    while v3_value(&mut v3, "/ttl/short").await.is_some() {
        assert!(before.elapsed() < LIMIT, "/ttl/short never expired in v3");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let gone = before.elapsed();
    assert!(
        gone >= Duration::from_secs(2),
        "v3 dropped it after {gone:?}, before v2 did"
    );
    println!("the 2 s key expired in v3 {gone:?} after it was set in v2");
}

#[tokio::test]
async fn keys_the_v3_role_refuses_are_one_line_each_and_exit_1() {
    let etcd = EtcdServer::start_v2().await;
    let v2 = V2::new(&etcd.endpoint);
    for (key, value) in [
        ("/app/a", "1"),
        ("/app/b/c", "2"),
        ("/other/x", "3"),
        ("/zz", "4"),
    ] {
        v2.set(key, value, None).await;
    }
    etcd.enable_auth().await;
    let mut root = etcd.client().await;
    root.role_add("copier").await.unwrap();
    let app = Permission::read_write("/app").with_prefix();
    root.role_grant_permission("copier", app).await.unwrap();
    root.user_add("copier", "copier-pw", None).await.unwrap();
    root.user_grant_role("copier", "copier").await.unwrap();

    let mut cmd = reconfig();
    cmd.env("ETCD_USERNAME", "copier")
        .env("ETCD_PASSWORD", "copier-pw");
    let argv = [
        "migrate",
        "--data-from-v2",
        &etcd.endpoint,
        "--endpoints",
        &etcd.endpoint,
    ];
    let run = run_command(cmd, argv).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    for (line, key) in lines.iter().zip(["/other/x", "/zz"]) {
        assert!(
            line.starts_with(&format!(
                "{key}: not written: etcd at {}: permission denied",
                etcd.endpoint
            )),
            "{line}"
        );
        assert!(line.contains(r#"user "copier""#), "{line}");
    }
    assert!(
        lines[2].ends_with("2 match, 0 expired since, 2 do not"),
        "{}",
        lines[2]
    );
    assert!(!run.stdout.contains("copier-pw") && !run.stderr.contains("copier-pw"));
    let tree = v3_tree(&mut root).await;
    let keys: Vec<&str> = tree.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["/app/a", "/app/b/c"],
        "what the role allows is written"
    );
}

#[tokio::test]
async fn what_cannot_be_copied_is_one_line_and_v3_stays_as_it_was() {
    let etcd = EtcdServer::start_v2().await;
    let v2 = V2::new(&etcd.endpoint);
    v2.set("/app/a", "1", None).await;
    let without_v2 = EtcdServer::start().await;
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let ep = etcd.endpoint.as_str();
    for (url, endpoint, args, code, message) in [
        (
            ep,
            ep,
            &["--data-prefix", "/nope"][..],
            1,
            format!("etcd v2 at {ep} has no key or directory /nope"),
        ),
        (
            without_v2.endpoint.as_str(),
            ep,
            &[],
            1,
            "not the v2 keys API (etcd 3.4 serves it with --enable-v2 only)".into(),
        ),
        (
            nowhere.as_str(),
            ep,
            &[],
            1,
            format!("etcd v2 at {nowhere} unreachable"),
        ),
        (
            ep,
            nowhere.as_str(),
            &[],
            1,
            format!("etcd unreachable at {nowhere}"),
        ),
        (
            "localhost:2379",
            ep,
            &[],
            2,
            "--data-from-v2 localhost:2379: the scheme must be http:// or https://".into(),
        ),
    ] {
        let run = copy(url, endpoint, args).await;
        assert_eq!(
            run.code, code,
            "{url} {args:?}: {}\n{}",
            run.stdout, run.stderr
        );
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        assert!(run.stderr.contains(&message), "{message}: {}", run.stderr);
        assert_eq!(run.stdout, "");
    }
    let mut v3 = etcd.client().await;
    assert!(v3_tree(&mut v3).await.is_empty(), "nothing written");
}

#[tokio::test]
async fn over_tls_with_the_same_ca_and_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = crate::pki::Pki::generate(dir.path());
    let mut args = pki.etcd_args();
    args.push("--enable-v2".into());
    let etcd = EtcdVersion::V34.start_with(&args, "https").await;
    let url = crate::pki::by_name(&etcd.endpoint);
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let (ca, cert, key) = (path(&pki.ca), path(&pki.client.0), path(&pki.client.1));
    let curl = std::process::Command::new("curl")
        .args([
            "-sS", "--fail", "--cacert", &ca, "--cert", &cert, "--key", &key,
        ])
        .args([
            "-X",
            "PUT",
            &format!("{url}/v2/keys/secure/name"),
            "-d",
            "value=over TLS",
        ])
        .output()
        .expect("curl is installed");
    assert!(
        curl.status.success(),
        "{}",
        String::from_utf8_lossy(&curl.stderr)
    );
    let tls = ["--ssl_cafile", &ca, "--ssl_cert", &cert, "--ssl_key", &key];
    let run = copy(&url, &url, &tls).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let mut v3 = pki.client(&url).await;
    assert_eq!(
        v3_value(&mut v3, "/secure/name").await.as_deref(),
        Some(&b"over TLS"[..])
    );

    let untrusted = copy(&url, &url, &["--ssl_cert", &cert, "--ssl_key", &key]).await;
    assert_eq!(untrusted.code, 1, "{}", untrusted.stderr);
    let expected = format!("etcd v2 at {url} unreachable");
    assert!(untrusted.stderr.contains(&expected), "{}", untrusted.stderr);
    assert!(
        untrusted.stderr.contains("invalid peer certificate"),
        "{}",
        untrusted.stderr
    );
}

#[tokio::test]
async fn follow_copies_every_kind_of_change_promptly() {
    let etcd = EtcdServer::start_v2().await;
    let v2 = V2::new(&etcd.endpoint);
    v2.set("/svc/web/a", "10.0.0.1", None).await;
    v2.set("/svc/web/b", "10.0.0.2", None).await;
    v2.set("/svc/db/main", "10.0.1.1", None).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("follow.log");
    let mut follower = follow(&etcd.endpoint, &etcd.endpoint, &[], &log).await;
    let mut v3 = etcd.client().await;
    let mut latencies = Vec::new();

    // Each change, and the key and value v3 must then show.
    let changes = [
        (
            "set",
            Method::PUT,
            "/svc/web/c",
            "",
            Some("10.0.0.3"),
            "/svc/web/c",
        ),
        (
            "update",
            Method::PUT,
            "/svc/web/c",
            "",
            Some("10.0.0.33"),
            "/svc/web/c",
        ),
        (
            "create",
            Method::PUT,
            "/svc/web/d",
            "prevExist=false",
            Some("new"),
            "/svc/web/d",
        ),
        (
            "compareAndSwap",
            Method::PUT,
            "/svc/web/d",
            "prevValue=new",
            Some("swapped"),
            "/svc/web/d",
        ),
        (
            "compareAndDelete",
            Method::DELETE,
            "/svc/web/d",
            "prevValue=swapped",
            None,
            "/svc/web/d",
        ),
        (
            "delete",
            Method::DELETE,
            "/svc/web/a",
            "",
            None,
            "/svc/web/a",
        ),
        (
            "directory delete",
            Method::DELETE,
            "/svc/web",
            "recursive=true",
            None,
            "/svc/web/b",
        ),
    ];
    for (change, method, key, query, value, shown) in changes {
        let form: Vec<(&str, &str)> = value.iter().map(|v| ("value", *v)).collect();
        v2.write(method, key, query, &form).await;
        latencies.push((change, until_v3(&mut v3, shown, value, &follower).await));
    }
    assert_eq!(v3_value(&mut v3, "/svc/web/c").await, None);
    assert_eq!(
        v3_value(&mut v3, "/svc/db/main").await.as_deref(),
        Some(&b"10.0.1.1"[..])
    );

    // Expiries: a key's own TTL, a directory's, and a TTL refreshed without an event.
    v2.set("/svc/ttl", "expires", Some(2)).await;
    v2.write(Method::PUT, "/svc/tdir", "dir=true&ttl=2", &[])
        .await;
    v2.set("/svc/tdir/child", "expires with its directory", None)
        .await;
    // Refreshed every 0.5 s with a 5 s TTL: kept even when a loaded machine stalls a while.
    v2.set("/svc/refreshed", "kept", Some(5)).await;
    until_v3(&mut v3, "/svc/ttl", Some("expires"), &follower).await;
    until_v3(
        &mut v3,
        "/svc/tdir/child",
        Some("expires with its directory"),
        &follower,
    )
    .await;
    until_v3(&mut v3, "/svc/refreshed", Some("kept"), &follower).await;
    let refreshing = Instant::now();
    let mut refreshed = refreshing;
    let (mut v2_gone, mut v3_gone) = (None, None);
    while v3_gone.is_none() || refreshing.elapsed() < Duration::from_secs(6) {
        assert!(
            refreshing.elapsed() < LIMIT,
            "never expired in v3\n{}",
            follower.log()
        );
        if refreshed.elapsed() >= Duration::from_millis(500) {
            let query = "ttl=5&refresh=true&prevExist=true";
            v2.write(Method::PUT, "/svc/refreshed", query, &[]).await;
            refreshed = Instant::now();
        }
        // v3 is looked at first: when the key is gone there, v2 must have dropped it by then.
        let v3_missing = v3_gone.is_none() && v3_value(&mut v3, "/svc/ttl").await.is_none();
        if v2_gone.is_none() && !v2.holds("/svc/ttl").await {
            v2_gone = Some(Instant::now());
        }
        if v3_missing {
            assert!(v2_gone.is_some(), "v3 dropped the key before v2 did");
            v3_gone = Some(Instant::now());
        }
        assert_eq!(
            v3_value(&mut v3, "/svc/refreshed").await.as_deref(),
            Some(&b"kept"[..]),
            "a refreshed TTL keeps the key in v3 ({:?} in)\n{}",
            refreshing.elapsed(),
            follower.log()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let v2_gone = v2_gone.expect("a 2 s TTL ran out in v2 within 6 s");
    let v3_gone = v3_gone.unwrap();
    latencies.push(("expire", v3_gone - v2_gone));
    until_v3(&mut v3, "/svc/tdir/child", None, &follower).await;
    until_v3(&mut v3, "/svc/refreshed", None, &follower).await;

    for (change, took) in &latencies {
        println!("{change}: in v3 {took:?} after v2 answered");
    }
    stop(&mut follower, Signal::SIGTERM).await;
}

#[tokio::test]
async fn follow_resumes_at_its_index_after_the_connection_is_cut() {
    let etcd = EtcdServer::start_v2().await;
    let v2 = V2::new(&etcd.endpoint);
    v2.set("/app/a", "1", None).await;
    v2.set("/app/b", "1", None).await;
    let forwarder = Forwarder::start(&etcd.endpoint).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("follow.log");
    let mut follower = follow(&forwarder.endpoint, &etcd.endpoint, &[], &log).await;
    forwarder.cut_after(Some(Duration::ZERO));
    forwarder.sever();
    let cut = eventually(LIMIT, || follower.log().contains("watching etcd v2:")).await;
    assert!(cut, "the watch was never cut:\n{}", follower.log());
    v2.set("/app/a", "2", None).await;
    v2.write(Method::DELETE, "/app/b", "", &[]).await;
    v2.set("/app/c", "3", None).await;
    v2.set("/app/a", "4", None).await;
    forwarder.cut_after(None);
    let mut v3 = etcd.client().await;
    until_v3(&mut v3, "/app/c", Some("3"), &follower).await;
    until_v3(&mut v3, "/app/a", Some("4"), &follower).await;
    until_v3(&mut v3, "/app/b", None, &follower).await;
    let resumed = eventually(LIMIT, || follower.log().contains("etcd answers again")).await;
    assert!(resumed, "{}", follower.log());
    assert!(
        !follower.log().contains("copying everything"),
        "{}",
        follower.log()
    );
    stop(&mut follower, Signal::SIGINT).await;
}

#[tokio::test]
async fn follow_copies_everything_again_when_v2_no_longer_holds_its_index() {
    let etcd = EtcdServer::start_v2().await;
    let v2 = V2::new(&etcd.endpoint);
    v2.set("/app/x", "deleted while the follower sleeps", None)
        .await;
    v2.set("/app/keep", "1", None).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("follow.log");
    let mut follower = follow(
        &etcd.endpoint,
        &etcd.endpoint,
        &["--data-prefix", "/app"],
        &log,
    )
    .await;
    let mut v3 = etcd.client().await;
    until_v3(
        &mut v3,
        "/app/x",
        Some("deleted while the follower sleeps"),
        &follower,
    )
    .await;

    follower.signal(Signal::SIGSTOP);
    v2.set("/app/y", "1", None).await;
    v2.write(Method::DELETE, "/app/x", "", &[]).await;
    v2.set("/app/keep", "2", None).await;
    let noise: Vec<(String, String, Option<u64>)> = (0..1010)
        .map(|i| (format!("/noise/{i}"), i.to_string(), None))
        .collect();
    v2.set_all(&noise).await;
    follower.signal(Signal::SIGCONT);

    until_v3(&mut v3, "/app/y", Some("1"), &follower).await;
    until_v3(&mut v3, "/app/x", None, &follower).await;
    until_v3(&mut v3, "/app/keep", Some("2"), &follower).await;
    assert!(
        follower
            .log()
            .contains("no longer holds the changes from index"),
        "{}",
        follower.log()
    );
    v2.set("/app/after", "followed on", None).await;
    until_v3(&mut v3, "/app/after", Some("followed on"), &follower).await;
    assert_eq!(
        v3_value(&mut v3, "/noise/1").await,
        None,
        "outside the prefix"
    );
    stop(&mut follower, Signal::SIGTERM).await;
}
