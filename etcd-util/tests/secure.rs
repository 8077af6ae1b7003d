//! etcd-util over TLS with a client certificate, through reconfig's shared connection
//! code and reconfig.rb's flag spellings.

#[path = "../../tests/common/mod.rs"]
mod common;
#[path = "../../tests/common/pki.rs"]
mod pki;

use common::*;
use pki::{by_name, Pki};

#[tokio::test]
async fn set_and_get_over_tls_with_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(dir.path());
    let etcd = EtcdServer::start_with(&pki.etcd_args(), "https").await;
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
        run_command(binary(env!("CARGO_BIN_EXE_etcd-util")), all)
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
