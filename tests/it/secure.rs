//! Secure, discoverable connections against real etcd servers: TLS with client
//! certificates (plain, encrypted and legacy keys), etcd auth with a role limited to a
//! prefix, and DNS SRV discovery through a DNS server running in the test on loopback.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use crate::pki::{by_name, Pki};
use hickory_server::authority::{Catalog, ZoneType};
use hickory_server::proto::rr::rdata::{SOA, SRV};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::store::in_memory::InMemoryAuthority;
use hickory_server::ServerFuture;
use nix::sys::signal::Signal;

const LIMIT: Duration = Duration::from_secs(20);

const TREE_TMPL: &str = "<% for k, v in data %>\n<%= k %>=<%= v %>\n<% endfor %>\n";

/// A config dir with one entry per `(name, key)`, rendering the key's tree into
/// `root/NAME.conf`.
fn config(root: &Path, entries: &[(&str, &str)]) -> PathBuf {
    let entries: Vec<(&str, String)> = entries
        .iter()
        .map(|(name, key)| {
            let json = format!(
                r#"{{"id":"{name}","key":"{key}","recursive":true,"source":"tree.tmpl","target":"{}"}}"#,
                target(root, name).display()
            );
            (*name, json)
        })
        .collect();
    cfgdir(root, &entries, &[("tree.tmpl", TREE_TMPL)])
}

fn target(root: &Path, name: &str) -> PathBuf {
    root.join(format!("{name}.conf"))
}

/// `reconfig --onetime --cfgdir CFG ARGS...`.
async fn onetime(cfg: &Path, args: &[&str]) -> Run {
    onetime_with(reconfig(), cfg, args).await
}

async fn onetime_with(cmd: tokio::process::Command, cfg: &Path, args: &[&str]) -> Run {
    let mut all = vec!["--onetime", "--cfgdir", cfg.to_str().unwrap()];
    all.extend_from_slice(args);
    run_command(cmd, all).await
}

/// One line of error output that says `expected` (each of them), for a failed run.
fn assert_one_line_error(run: &Run, expected: &[&str]) {
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    for text in expected {
        assert!(
            run.stderr.contains(text),
            "missing {text:?} in {}",
            run.stderr
        );
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The client key as encrypted PKCS#8 (PBES2, PBKDF2-SHA256, AES-256-CBC), as
/// `openssl pkcs8 -topk8 -v2 aes-256-cbc` writes it.
fn encrypt_key(key: &Path, passphrase: &str, out: &Path) {
    use pkcs8::der::Document;
    let (_, der) = Document::from_pem(&std::fs::read_to_string(key).unwrap()).unwrap();
    let params = pkcs8::pkcs5::pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(
        10_000,
        &rand::random::<[u8; 16]>(),
        rand::random(),
    )
    .unwrap();
    let pem = pkcs8::PrivateKeyInfoRef::try_from(der.as_bytes())
        .unwrap()
        .encrypt_with_params(params, passphrase)
        .unwrap()
        .to_pem("ENCRYPTED PRIVATE KEY", pkcs8::LineEnding::LF)
        .unwrap();
    assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    std::fs::write(out, pem.as_bytes()).unwrap();
}

/// An authoritative DNS server for `test.` on loopback (UDP and TCP), serving SRV records
/// `(name, priority, weight, port, target)`; stops when dropped.
struct DnsServer {
    addr: SocketAddr,
    _server: ServerFuture<Catalog>,
}

impl DnsServer {
    async fn start(records: &[(&str, u16, u16, u16, &str)]) -> DnsServer {
        let origin = Name::from_ascii("test.").unwrap();
        let mut zone = InMemoryAuthority::empty(origin.clone(), ZoneType::Primary, false);
        let soa = SOA::new(
            Name::from_ascii("ns.test.").unwrap(),
            Name::from_ascii("admin.test.").unwrap(),
            1,
            3600,
            600,
            86400,
            60,
        );
        zone.upsert_mut(Record::from_rdata(origin.clone(), 60, RData::SOA(soa)), 1);
        for (name, priority, weight, port, host) in records {
            let srv = SRV::new(*priority, *weight, *port, Name::from_ascii(host).unwrap());
            let name = Name::from_ascii(name).unwrap();
            zone.upsert_mut(Record::from_rdata(name, 60, RData::SRV(srv)), 1);
        }
        let mut catalog = Catalog::new();
        catalog.upsert(LowerName::new(&origin), vec![Arc::new(zone)]);
        let mut server = ServerFuture::new(catalog);
        // A free UDP port whose TCP twin is free too (another process may hold it).
        let (udp, tcp) = loop {
            let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            if let Ok(tcp) = tokio::net::TcpListener::bind(udp.local_addr().unwrap()).await {
                break (udp, tcp);
            }
        };
        let addr = udp.local_addr().unwrap();
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5));
        DnsServer {
            addr,
            _server: server,
        }
    }

    fn address(&self) -> String {
        self.addr.to_string()
    }
}

fn port_of(endpoint: &str) -> u16 {
    endpoint.rsplit(':').next().unwrap().parse().unwrap()
}

async fn tls_with_client_certificates_keys_and_srv(version: EtcdVersion) {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(dir.path());
    let etcd = version.start_with(&pki.etcd_args(), "https").await;
    let url = by_name(&etcd.endpoint);
    let mut client = pki.client(&url).await;
    client.put("/app/name", "secure", None).await.unwrap();
    let cfg = config(dir.path(), &[("app", "/app")]);
    let ca = path(&pki.ca);
    let (cert, key) = (path(&pki.client.0), path(&pki.client.1));

    let ok = onetime(
        &cfg,
        &[
            "--endpoints",
            &url,
            "--ssl_cafile",
            ca,
            "--ssl_cert",
            cert,
            "--ssl_key",
            key,
        ],
    )
    .await;
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let written = std::fs::read_to_string(target(dir.path(), "app")).unwrap();
    assert_eq!(written, "/app/name=secure\n");

    // reconfig.rb's spelling: -s with --host/--port, here with the kebab-case aliases.
    let port = port_of(&url).to_string();
    let rb = onetime(
        &cfg,
        &[
            "-s",
            "--host",
            "localhost",
            "--port",
            &port,
            "--ssl-cafile",
            ca,
            "--ssl-cert",
            cert,
            "--ssl-key",
            key,
        ],
    )
    .await;
    assert_eq!(rb.code, 0, "{}", rb.stderr);

    let no_cert = onetime(&cfg, &["--endpoints", &url, "--ssl_cafile", ca]).await;
    assert_one_line_error(
        &no_cert,
        &[&format!("TLS with {url} failed"), "client certificate"],
    );

    let (s_cert, s_key) = (path(&pki.stranger.0), path(&pki.stranger.1));
    let stranger = onetime(
        &cfg,
        &[
            "--endpoints",
            &url,
            "--ssl_cafile",
            ca,
            "--ssl_cert",
            s_cert,
            "--ssl_key",
            s_key,
        ],
    )
    .await;
    assert_one_line_error(
        &stranger,
        &[&format!("TLS with {url} failed"), "client certificate"],
    );

    let by_ip = &etcd.endpoint;
    let wrong_name = onetime(
        &cfg,
        &[
            "--endpoints",
            by_ip,
            "--ssl_cafile",
            ca,
            "--ssl_cert",
            cert,
            "--ssl_key",
            key,
        ],
    )
    .await;
    assert_one_line_error(
        &wrong_name,
        &[&format!("TLS with {by_ip} failed"), "not valid for name"],
    );

    let system_roots = onetime(
        &cfg,
        &["--endpoints", &url, "--ssl_cert", cert, "--ssl_key", key],
    )
    .await;
    assert_one_line_error(&system_roots, &[&url, "UnknownIssuer"]);

    let locked = dir.path().join("locked-key.pem");
    encrypt_key(&pki.client.1, "correct horse", &locked);
    let tls_locked = |passphrase: &'static str| {
        let mut args = vec![
            "--endpoints",
            url.as_str(),
            "--ssl_cafile",
            ca,
            "--ssl_cert",
            cert,
        ];
        args.extend(["--ssl_key", path(&locked), "--ssl_passphrase", passphrase]);
        args
    };
    let unlocked = onetime(&cfg, &tls_locked("correct horse")).await;
    assert_eq!(unlocked.code, 0, "{}", unlocked.stderr);
    let wrong = onetime(&cfg, &tls_locked("battery staple")).await;
    assert_one_line_error(&wrong, &[path(&locked), "wrong passphrase"]);
    assert!(!wrong.stderr.contains("battery"), "{}", wrong.stderr);

    let legacy = dir.path().join("legacy-key.pem");
    let converted = std::process::Command::new("openssl")
        .args(["ec", "-aes256", "-passout", "pass:old", "-in", key, "-out"])
        .arg(&legacy)
        .output();
    match converted {
        Ok(out) if out.status.success() => {
            let mut args = vec![
                "--endpoints",
                url.as_str(),
                "--ssl_cafile",
                ca,
                "--ssl_cert",
                cert,
            ];
            args.extend(["--ssl_key", path(&legacy), "--ssl_passphrase", "old"]);
            let run = onetime(&cfg, &args).await;
            assert_one_line_error(
                &run,
                &[
                    path(&legacy),
                    "openssl pkcs8 -topk8 -v2 aes-256-cbc -in old.key -out new.key",
                ],
            );
        }
        _ => eprintln!("openssl not available: skipping the legacy encrypted PEM case"),
    }

    // A certificate problem is no outage: the daemon reports it and exits at start-up.
    let mut daemon = Daemon::start(
        [
            "--cfgdir",
            path(&cfg),
            "--endpoints",
            &url,
            "--ssl_cafile",
            ca,
        ],
        &dir.path().join("daemon.log"),
    );
    assert_eq!(daemon.wait_exit(LIMIT).await, Some(1), "{}", daemon.log());
    assert!(
        daemon.log().contains("client certificate"),
        "{}",
        daemon.log()
    );

    // etcd's SRV convention finds the TLS member: _etcd-client-ssl means https.
    let dns = DnsServer::start(&[(
        "_etcd-client-ssl._tcp.secure.test.",
        0,
        0,
        port_of(&url),
        "localhost.",
    )])
    .await;
    let found = onetime(
        &cfg,
        &[
            "--srv-domain",
            "secure.test",
            "--dns-server",
            &dns.address(),
            "--ssl_cafile",
            ca,
            "--ssl_cert",
            cert,
            "--ssl_key",
            key,
        ],
    )
    .await;
    assert_eq!(found.code, 0, "{}", found.stderr);
}

on_each_etcd!(
    #[tokio::test]
    tls_with_client_certificates_keys_and_srv
);

#[tokio::test]
async fn srv_records_list_every_target_in_priority_order() {
    let etcd = EtcdServer::start().await;
    etcd.put_all([("/app/name", "found")]).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &[("app", "/app")]);
    // Two names of the one member, so every target answers: etcd-client balances over
    // all endpoints and a dead one would fail some requests.
    let port = port_of(&etcd.endpoint);
    let dns = DnsServer::start(&[
        ("_etcd-client._tcp.plain.test.", 20, 10, port, "127.0.0.1."),
        ("_etcd-client._tcp.plain.test.", 10, 10, port, "localhost."),
        ("_custom._tcp.plain.test.", 0, 0, port, "localhost."),
    ])
    .await;
    let server = dns.address();

    let by_record = onetime(
        &cfg,
        &[
            "--srv",
            "_etcd-client._tcp.plain.test",
            "--dns-server",
            &server,
            "-d",
        ],
    )
    .await;
    assert_eq!(by_record.code, 0, "{}", by_record.stderr);
    let listed = format!(r#"["http://localhost:{port}", "http://127.0.0.1:{port}"]"#);
    assert!(by_record.stderr.contains(&listed), "{}", by_record.stderr);
    let written = std::fs::read_to_string(target(dir.path(), "app")).unwrap();
    assert_eq!(written, "/app/name=found\n");

    let mut cmd = reconfig();
    cmd.env("RECONFIG_DNS_SERVER", &server);
    let by_domain = onetime_with(cmd, &cfg, &["--srv-domain", "plain.test"]).await;
    assert_eq!(by_domain.code, 0, "{}", by_domain.stderr);

    let custom = onetime(
        &cfg,
        &["--srv", "_custom._tcp.plain.test", "--dns-server", &server],
    )
    .await;
    assert_eq!(custom.code, 0, "{}", custom.stderr);

    let unknown = onetime(
        &cfg,
        &["--srv", "_nothing._tcp.plain.test", "--dns-server", &server],
    )
    .await;
    assert_one_line_error(&unknown, &["_nothing._tcp.plain.test", "not found"]);

    let no_domain = onetime(
        &cfg,
        &["--srv-domain", "absent.test", "--dns-server", &server],
    )
    .await;
    assert_one_line_error(
        &no_domain,
        &["_etcd-client-ssl._tcp.absent.test or _etcd-client._tcp.absent.test"],
    );
}

fn as_user(name: &str, password: &str) -> tokio::process::Command {
    let mut cmd = reconfig();
    cmd.env("ETCD_USERNAME", name)
        .env("ETCD_PASSWORD", password);
    cmd
}

async fn auth_credentials_and_role_limits(version: EtcdVersion) {
    let mut etcd = version.start().await;
    etcd.put_all([("/app/name", "authorized"), ("/secret/token", "x")])
        .await;
    etcd.enable_auth().await;
    let dir = tempfile::tempdir().unwrap();
    let endpoint = etcd.endpoint.clone();
    let app = config(&dir.path().join("app"), &[("app", "/app")]);
    let ep = ["--endpoints", endpoint.as_str()];

    let ok = onetime_with(as_user("app", "app-pw"), &app, &ep).await;
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let written = std::fs::read_to_string(target(&dir.path().join("app"), "app")).unwrap();
    assert_eq!(written, "/app/name=authorized\n");

    let wrong = onetime_with(as_user("app", "wrong-hunter2"), &app, &ep).await;
    assert_one_line_error(
        &wrong,
        &[&endpoint, r#"refused user "app""#, "authentication failed"],
    );
    assert!(!wrong.stderr.contains("hunter2"), "{}", wrong.stderr);

    let mut debug = reconfig();
    debug.env("ETCD_USERNAME", "app");
    let flagged = onetime_with(
        debug,
        &app,
        &[
            "--endpoints",
            &endpoint,
            "--password",
            "wrong-hunter2",
            "-d",
        ],
    )
    .await;
    assert_eq!(flagged.code, 1, "{}", flagged.stderr);
    // Refused credentials are final: one attempt, no retrying until the connect timeout.
    let attempts = flagged.stderr.matches("connecting to etcd").count();
    assert_eq!(attempts, 1, "{}", flagged.stderr);
    assert!(flagged.stderr.contains("Secret(***)"), "{}", flagged.stderr);
    assert!(!flagged.stderr.contains("hunter2"), "{}", flagged.stderr);

    let anonymous = onetime(&app, &ep).await;
    assert_one_line_error(&anonymous, &["set ETCD_USERNAME and ETCD_PASSWORD"]);

    // A key outside the role's range fails its entry alone, naming the key.
    let mixed_root = dir.path().join("mixed");
    let mixed = config(&mixed_root, &[("app", "/app"), ("secret", "/secret")]);
    let denied = onetime_with(as_user("app", "app-pw"), &mixed, &ep).await;
    assert_eq!(denied.code, 1, "{}", denied.stderr);
    let refusal: Vec<&str> = denied
        .stderr
        .lines()
        .filter(|l| l.contains("ERROR"))
        .collect();
    assert_eq!(refusal.len(), 1, "{}", denied.stderr);
    for text in [
        "secret",
        "permission denied reading /secret",
        r#"user "app""#,
    ] {
        assert!(
            refusal[0].contains(text),
            "missing {text:?} in {}",
            refusal[0]
        );
    }
    let written = std::fs::read_to_string(target(&mixed_root, "app")).unwrap();
    assert_eq!(written, "/app/name=authorized\n");
    assert!(!target(&mixed_root, "secret").exists());

    // The daemon: a wrong password ends it at start-up ...
    let mut refused = Daemon::spawn(
        as_user("app", "wrong-hunter2"),
        ["--cfgdir", app.to_str().unwrap(), "--endpoints", &endpoint],
        &dir.path().join("refused.log"),
    );
    assert_eq!(refused.wait_exit(LIMIT).await, Some(1), "{}", refused.log());
    assert!(
        refused.log().contains("authentication failed"),
        "{}",
        refused.log()
    );

    let mut nobody = Daemon::start(
        ["--cfgdir", app.to_str().unwrap(), "--endpoints", &endpoint],
        &dir.path().join("anonymous.log"),
    );
    assert_eq!(nobody.wait_exit(LIMIT).await, Some(1), "{}", nobody.log());
    assert!(nobody.log().contains("ETCD_USERNAME"), "{}", nobody.log());

    // ... but an etcd that is down at start-up is waited for.
    etcd.kill(0);
    let later_root = dir.path().join("later");
    let later = config(&later_root, &[("app", "/app")]);
    let mut daemon = Daemon::spawn(
        as_user("app", "app-pw"),
        [
            "--cfgdir",
            later.to_str().unwrap(),
            "--endpoints",
            &endpoint,
        ],
        &dir.path().join("daemon.log"),
    );
    let waiting = eventually(LIMIT, || daemon.log().contains("retrying until it answers")).await;
    assert!(waiting, "{}", daemon.log());
    assert!(daemon.alive(), "{}", daemon.log());
    etcd.restart(0);
    assert!(etcd.wait_ready(LIMIT).await, "{}", etcd.log());
    wait_for_content(
        &target(&later_root, "app"),
        "/app/name=authorized\n",
        LIMIT,
        || daemon.log(),
    )
    .await;
    assert_eq!(
        daemon.log().matches("retrying until it answers").count(),
        1,
        "{}",
        daemon.log()
    );
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(LIMIT).await, Some(0), "{}", daemon.log());
}

on_each_etcd!(
    #[tokio::test]
    auth_credentials_and_role_limits
);
