//! The confd + etcd tutorial replayed with real parts: nginx as a reverse proxy whose whole
//! `nginx.conf` reconfig renders from the backends registered under `/services/apache`,
//! checked with `nginx -t` before the swap and applied with `nginx -s reload`. Tiny HTTP
//! backends register themselves with `etcd-util -o set -t TTL` and keep re-registering
//! while they live; one that stops re-registering expires, and traffic must follow: reach
//! a backend that registered, stop reaching one whose key expired, and keep the last good
//! configuration when `nginx -t` rejects a broken registration.
//!
//! Needs nginx (`scripts/deps` installs it; the test skips, saying so, when there is none)
//! and the `etcd-util` binary of this workspace (`cargo build -p etcd-util` builds it; `scripts/test` does).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const LIMIT: Duration = Duration::from_secs(30);
/// Lease time of a backend's registration; it re-registers every third of it.
const TTL: Duration = Duration::from_secs(3);

/// The nginx binary: on the PATH, or in the sbin directories a user's PATH may lack.
fn find_nginx() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("nginx"))
        .find(|candidate| candidate.is_file())
}

/// A backend on loopback answering every request with its name.
async fn backend(name: &'static str) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let reply = format!(
                    "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{name}",
                    name.len()
                );
                let _ = conn.write_all(reply.as_bytes()).await;
            });
        }
    });
    (addr, task)
}

/// A backend's registration: `/services/apache/NAME = ADDR` with a TTL lease, renewed by
/// re-registering every TTL/3 until dropped; then the key expires.
struct Registration(JoinHandle<()>);

impl Registration {
    fn start(etcd: &EtcdServer, name: &str, addr: SocketAddr) -> Registration {
        let etcd_util = etcd_util();
        let args = [
            "--endpoints".to_string(),
            etcd.endpoint.clone(),
            "-o".into(),
            "set".into(),
            "-k".into(),
            format!("/services/apache/{name}"),
            "-v".into(),
            addr.to_string(),
            "-t".into(),
            TTL.as_secs().to_string(),
        ];
        Registration(tokio::spawn(async move {
            loop {
                let run = run_command(binary(&etcd_util), &args).await;
                if run.code != 0 {
                    eprintln!("etcd-util {args:?} failed: {}", run.stderr);
                }
                tokio::time::sleep(TTL / 3).await;
            }
        }))
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The nginx started by the test, stopped (by the pid in its pid file) on drop.
struct Nginx {
    pid_file: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let pid = std::fs::read_to_string(&self.pid_file).unwrap_or_default();
        if let Ok(pid) = pid.trim().parse() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }
}

/// The whole nginx.conf; reconfig fills in the upstream from the registered backends.
/// Relative paths are relative to nginx's `-p` prefix, the test's directory.
fn nginx_template(port: u16) -> String {
    r#"<%# Rendered by reconfig from the backends registered under /services/apache %>
daemon on;
worker_processes 1;
pid nginx.pid;
error_log error.log;

events {
    worker_connections 64;
}

http {
    access_log access.log;
    client_body_temp_path body_temp;
    proxy_temp_path proxy_temp;
    fastcgi_temp_path fastcgi_temp;
    uwsgi_temp_path uwsgi_temp;
    scgi_temp_path scgi_temp;

    upstream apache {
<% for backend in gets(pattern=watched ~ "/*") %>
        server <%= backend.value %>;  # <%= backend.key | base %>
<% endfor %>
    }

    server {
        listen 127.0.0.1:PORT;
        location / {
            proxy_pass http://apache;
        }
    }
}
"#
    .replace("PORT", &port.to_string())
}

/// Asks nginx `n` times in a row: each backend's name, or what went wrong instead.
async fn answers(port: u16, n: usize) -> Vec<String> {
    let mut seen = Vec::with_capacity(n);
    for _ in 0..n {
        seen.push(match http_get(&format!("127.0.0.1:{port}"), "/").await {
            Some((200, body)) => body,
            Some((code, _)) => format!("HTTP {code}"),
            None => "no answer".to_string(),
        });
    }
    seen
}

/// Asks nginx rounds of `n` requests until `done` accepts a round; panics after `LIMIT`.
async fn until_answers(
    port: u16,
    n: usize,
    what: &str,
    done: impl Fn(&[String]) -> bool,
    context: impl Fn() -> String,
) {
    let deadline = Instant::now() + LIMIT;
    loop {
        let round = answers(port, n).await;
        if done(&round) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: nginx answered {round:?}\n{}",
            context()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn nginx_follows_backends_registering_and_expiring() {
    let Some(nginx) = find_nginx() else {
        eprintln!("skipping nginx_e2e: no nginx binary found (scripts/deps installs it)");
        return;
    };
    let nginx = nginx.display().to_string();
    let etcd = EtcdServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    let conf = format!("{root}/nginx.conf");
    let pid_file = format!("{root}/nginx.pid");
    let port = free_port();

    let (a, _a) = backend("A").await;
    let (b, _b) = backend("B").await;
    let (c, _c) = backend("C").await;
    let register_a = Registration::start(&etcd, "A", a);

    let nginx_flags = format!("-p {root}/ -e {root}/error.log");
    let entry = serde_json::json!({
        "id": "nginx",
        "key": "/services/apache",
        "recursive": true,
        "source": "nginx.conf.tmpl",
        "target": conf,
        "checkcmd": format!("{nginx} -t -q {nginx_flags} -c {{{{src}}}}"),
        // Reload the running nginx; before the test starts it there is none to reload.
        "reloadcmd": format!("test ! -s {pid_file} || {nginx} {nginx_flags} -c {conf} -s reload"),
    });
    let cfg = cfgdir(
        dir.path(),
        &[("nginx", entry.to_string())],
        &[("nginx.conf.tmpl", &nginx_template(port))],
    );
    let args = [
        "--cfgdir",
        &cfg.display().to_string(),
        "--endpoints",
        &etcd.endpoint,
    ];
    let daemon = Daemon::start(args, &dir.path().join("reconfig.log"));
    let context = || {
        let error_log = std::fs::read_to_string(format!("{root}/error.log")).unwrap_or_default();
        format!(
            "reconfig:\n{}\nnginx.conf:\n{}\nnginx error.log:\n{error_log}",
            daemon.log(),
            std::fs::read_to_string(&conf).unwrap_or_default()
        )
    };
    let rendered = eventually(LIMIT, || {
        std::fs::read_to_string(&conf).is_ok_and(|text| text.contains(&a.to_string()))
    })
    .await;
    assert!(rendered, "nginx.conf never listed A\n{}", context());

    let started = run_command(
        tokio::process::Command::new(&nginx),
        [
            "-p",
            &format!("{root}/"),
            "-e",
            &format!("{root}/error.log"),
            "-c",
            &conf,
        ],
    )
    .await;
    let _nginx = Nginx {
        pid_file: PathBuf::from(&pid_file),
    };
    assert_eq!(
        started.code,
        0,
        "nginx did not start: {}\n{}",
        started.stderr,
        context()
    );
    until_answers(port, 1, "A serves", |r| r == ["A"], context).await;

    // New backends register: traffic reaches them.
    let _register_b = Registration::start(&etcd, "B", b);
    let _register_c = Registration::start(&etcd, "C", c);
    until_answers(
        port,
        6,
        "B and C get traffic",
        |r| r.iter().any(|x| x == "B") && r.iter().any(|x| x == "C"),
        context,
    )
    .await;

    // A stops re-registering: its key expires and it gets no more traffic.
    drop(register_a);
    until_answers(
        port,
        6,
        "only B and C get traffic",
        |r| r.iter().all(|x| x == "B" || x == "C"),
        context,
    )
    .await;
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(!text.contains(&a.to_string()), "{text}");

    // A broken registration: nginx -t rejects it, the last good file stays and nginx keeps
    // serving the live backends.
    let good = std::fs::read_to_string(&conf).unwrap();
    let broken = run_command(
        binary(&etcd_util()),
        [
            "--endpoints",
            &etcd.endpoint,
            "-o",
            "set",
            "-k",
            "/services/apache/D",
            "-v",
            "127.0.0.1:no-port",
        ],
    )
    .await;
    assert_eq!(broken.code, 0, "{}", broken.stderr);
    let rejected = eventually(LIMIT, || {
        let log = daemon.log();
        log.contains("check command") && log.contains("invalid port in upstream")
    })
    .await;
    assert!(
        rejected,
        "the broken upstream was never rejected\n{}",
        context()
    );
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), good);
    until_answers(
        port,
        6,
        "the last good configuration serves",
        |r| r.iter().all(|x| x == "B" || x == "C"),
        context,
    )
    .await;
}
