//! Test certificates made with rcgen: a CA, an etcd server certificate valid for the name
//! `localhost` only (so `127.0.0.1` is a wrong server name), a client certificate of the
//! same CA, and one of another CA. Included by the TLS tests only (`#[path]`), so the other
//! test files need no rcgen.

use std::path::{Path, PathBuf};

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// The PEM files of one test PKI.
pub struct Pki {
    /// The CA that signed the server and the client certificates.
    pub ca: PathBuf,
    /// etcd's certificate (SAN `localhost` only) and key.
    pub server: (PathBuf, PathBuf),
    /// A client certificate of the CA, and its key (unencrypted PKCS#8).
    pub client: (PathBuf, PathBuf),
    /// A client certificate of another CA, and its key.
    pub stranger: (PathBuf, PathBuf),
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// Writes a certificate for `names` signed by `issuer`, and its key, as `dir/NAME.pem` and
/// `dir/NAME-key.pem`.
fn leaf(
    dir: &Path,
    file: &str,
    names: &[&str],
    usages: Vec<ExtendedKeyUsagePurpose>,
    issuer: &CertifiedIssuer<'static, KeyPair>,
) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, file);
    params.extended_key_usages = usages;
    let cert = params.signed_by(&key, issuer).unwrap();
    let paths = (
        dir.join(format!("{file}.pem")),
        dir.join(format!("{file}-key.pem")),
    );
    std::fs::write(&paths.0, cert.pem()).unwrap();
    std::fs::write(&paths.1, key.serialize_pem()).unwrap();
    paths
}

impl Pki {
    /// Generates everything into `dir`.
    pub fn generate(dir: &Path) -> Pki {
        use ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
        let authority = ca("reconfig test CA");
        let other = ca("another CA");
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, authority.pem()).unwrap();
        Pki {
            ca,
            server: leaf(
                dir,
                "server",
                &["localhost"],
                vec![ServerAuth, ClientAuth],
                &authority,
            ),
            client: leaf(dir, "client", &["client"], vec![ClientAuth], &authority),
            stranger: leaf(dir, "stranger", &["client"], vec![ClientAuth], &other),
        }
    }

    /// etcd's flags for serving clients over TLS and requiring client certificates.
    pub fn etcd_args(&self) -> Vec<String> {
        [
            "--cert-file",
            self.server.0.to_str().unwrap(),
            "--key-file",
            self.server.1.to_str().unwrap(),
            "--client-cert-auth",
            "--trusted-ca-file",
            self.ca.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec()
    }

    /// A client of `endpoint` with the client certificate, for setting up data.
    pub async fn client(&self, endpoint: &str) -> Client {
        let read = |p: &Path| std::fs::read(p).unwrap();
        let tls = TlsOptions::new()
            .ca_certificate(Certificate::from_pem(read(&self.ca)))
            .identity(Identity::from_pem(
                read(&self.client.0),
                read(&self.client.1),
            ));
        let options = ConnectOptions::new().with_tls(tls);
        Client::connect([endpoint], Some(options)).await.unwrap()
    }
}

/// `https://127.0.0.1:PORT` → `https://localhost:PORT`: the name in the server certificate.
pub fn by_name(endpoint: &str) -> String {
    endpoint.replace("127.0.0.1", "localhost")
}
