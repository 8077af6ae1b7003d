//! Certificates and keys → the TLS configuration of the etcd clients: the v3 client's
//! (rustls, through tonic's `ClientTlsConfig`, which etcd-client re-exports as
//! [`TlsOptions`]), and a rustls `ClientConfig` from the same files for the v2 HTTP API
//! that `reconfig migrate --data-from-v2` reads.
//!
//! Every file is read and checked here, up front, so a wrong path or a bad key is one
//! clear line naming the file instead of an opaque handshake failure later. Encrypted
//! PKCS#8 keys are decrypted in memory; the decrypted key is handed to tonic and never
//! written anywhere. Server verification is always on: against `--ssl_cafile` when given,
//! else against the system's roots.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use etcd_client::{Certificate, Identity, TlsOptions};
use pkcs8::der::{Document, SecretDocument};
use pkcs8::{EncryptedPrivateKeyInfoRef, LineEnding};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::secret::Secret;

/// How a legacy (OpenSSL "traditional") encrypted PEM key announces itself.
const LEGACY_ENCRYPTED: &str = "Proc-Type: 4,ENCRYPTED";
/// The PEM label of an encrypted PKCS#8 key.
const ENCRYPTED_PKCS8: &str = "ENCRYPTED PRIVATE KEY";

/// Why the TLS files cannot be used; each message names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file is missing or unreadable.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Not found, permission denied, ...
        source: std::io::Error,
    },
    /// The file holds no usable PEM certificate.
    #[error("{}: no PEM certificate found ({reason})", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What the parser found instead.
        reason: String,
    },
    /// The file holds no usable PEM private key.
    #[error("{}: no PEM private key found ({reason})", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// What the parser found instead.
        reason: String,
    },
    /// OpenSSL's traditional encryption, which rustls cannot read.
    #[error(
        "{}: legacy encrypted PEM key (Proc-Type: 4,ENCRYPTED) is not supported; convert it to \
         encrypted PKCS#8: openssl pkcs8 -topk8 -v2 aes-256-cbc -in old.key -out new.key",
        path.display()
    )]
    LegacyEncrypted {
        /// The file.
        path: PathBuf,
    },
    /// An encrypted PKCS#8 key but no passphrase.
    #[error("{}: the key is encrypted; give its passphrase with --ssl_passphrase", path.display())]
    NeedPassphrase {
        /// The file.
        path: PathBuf,
    },
    /// rustls refuses a certificate or key that the files hold.
    #[error("{}: cannot use it for TLS: {source}", path.display())]
    Unusable {
        /// The file.
        path: PathBuf,
        /// rustls's reason.
        source: rustls::Error,
    },
    /// The passphrase does not open the key (or the key is damaged).
    #[error("{}: cannot decrypt the key: wrong passphrase or damaged file ({reason})", path.display())]
    Decrypt {
        /// The file.
        path: PathBuf,
        /// The decoder's reason, which never contains the passphrase.
        reason: String,
    },
}

/// What the TLS flags name: the CA to verify servers against and the client certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// Trusted CA certificates (PEM); None means the system's roots.
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM) and its private key, for etcd's `--client-cert-auth`.
    pub client: Option<(PathBuf, PathBuf)>,
    /// Passphrase of an encrypted PKCS#8 key.
    pub passphrase: Option<Secret>,
}

/// A loaded TLS configuration. `Debug` shows the file names only: tonic's own types would
/// print the private key.
#[derive(Clone)]
pub struct ClientTls {
    options: TlsOptions,
    files: TlsFiles,
    /// The CA certificates' PEM, when given.
    ca: Option<Vec<u8>>,
    /// The client certificate's PEM and its (decrypted) key's PEM, when given.
    identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl ClientTls {
    /// Reads and checks every file, decrypting the key when it is encrypted.
    pub fn load(files: &TlsFiles) -> Result<ClientTls, TlsError> {
        let mut options = TlsOptions::new();
        let ca = files.ca.as_deref().map(certificates).transpose()?;
        options = match &ca {
            Some(pem) => options.ca_certificate(Certificate::from_pem(pem)),
            None => options.with_native_roots(),
        };
        let identity = match &files.client {
            Some((cert, key)) => {
                let key = private_key(key, files.passphrase.as_ref())?;
                Some((certificates(cert)?, key))
            }
            None => None,
        };
        if let Some((cert, key)) = &identity {
            options = options.identity(Identity::from_pem(cert, key));
        }
        Ok(ClientTls {
            options,
            files: files.clone(),
            ca,
            identity,
        })
    }

    /// The same trust and client certificate as a rustls configuration, for a client that
    /// speaks HTTP itself (the v2 API). Verifies servers against the CA file, else the
    /// system's roots, like the v3 client.
    pub fn rustls_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let unusable = |path: &Option<PathBuf>| {
            let path = path.clone().unwrap_or_default();
            move |source| TlsError::Unusable { path, source }
        };
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca {
            Some(pem) => {
                for cert in CertificateDer::pem_slice_iter(pem).flatten() {
                    roots.add(cert).map_err(unusable(&self.files.ca))?;
                }
            }
            None => {
                roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(unusable(&self.files.ca))?
            .with_root_certificates(roots);
        let Some((cert, key)) = &self.identity else {
            return Ok(builder.with_no_client_auth());
        };
        let cert_path = self.files.client.as_ref().map(|(cert, _)| cert.clone());
        let key_path = self.files.client.as_ref().map(|(_, key)| key.clone());
        let chain = CertificateDer::pem_slice_iter(cert).flatten().collect();
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| TlsError::Key {
            path: key_path.unwrap_or_default(),
            reason: e.to_string(),
        })?;
        builder
            .with_client_auth_cert(chain, key)
            .map_err(unusable(&cert_path))
    }

    /// The configuration for etcd-client.
    pub fn options(&self) -> TlsOptions {
        self.options.clone()
    }
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("ca", &self.files.ca)
            .field("client", &self.files.client)
            .finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The file's bytes, once it is known to hold at least one parsable PEM certificate.
fn certificates(path: &Path) -> Result<Vec<u8>, TlsError> {
    let pem = read(path)?;
    let invalid = |reason: String| TlsError::Certificate {
        path: path.to_path_buf(),
        reason,
    };
    let mut found = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        cert.map_err(|e| invalid(e.to_string()))?;
        found += 1;
    }
    if found == 0 {
        return Err(invalid("no BEGIN CERTIFICATE block".into()));
    }
    Ok(pem)
}

/// The key as PEM tonic can read: the file itself, or the decrypted PKCS#8 key.
fn private_key(path: &Path, passphrase: Option<&Secret>) -> Result<Vec<u8>, TlsError> {
    let pem = read(path)?;
    let text = String::from_utf8_lossy(&pem);
    if text.contains(LEGACY_ENCRYPTED) {
        return Err(TlsError::LegacyEncrypted {
            path: path.to_path_buf(),
        });
    }
    let pem = if text.contains(&format!("-----BEGIN {ENCRYPTED_PKCS8}-----")) {
        let passphrase = passphrase.ok_or_else(|| TlsError::NeedPassphrase {
            path: path.to_path_buf(),
        })?;
        decrypt(path, &text, passphrase)?
    } else {
        pem
    };
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::Key {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(pem)
}

/// Decrypts the file's encrypted PKCS#8 block into an unencrypted `PRIVATE KEY` PEM.
fn decrypt(path: &Path, text: &str, passphrase: &Secret) -> Result<Vec<u8>, TlsError> {
    let begin = format!("-----BEGIN {ENCRYPTED_PKCS8}-----");
    let end = format!("-----END {ENCRYPTED_PKCS8}-----");
    let block = text
        .find(&begin)
        .and_then(|start| {
            let stop = text[start..].find(&end)? + start + end.len();
            Some(&text[start..stop])
        })
        .ok_or_else(|| TlsError::Key {
            path: path.to_path_buf(),
            reason: format!("no END {ENCRYPTED_PKCS8} line"),
        })?;
    let malformed = |reason: String| TlsError::Key {
        path: path.to_path_buf(),
        reason,
    };
    let (_, document) = Document::from_pem(block).map_err(|e| malformed(e.to_string()))?;
    let encrypted = EncryptedPrivateKeyInfoRef::try_from(document.as_bytes())
        .map_err(|e| malformed(e.to_string()))?;
    let key: SecretDocument =
        encrypted
            .decrypt(passphrase.expose())
            .map_err(|e| TlsError::Decrypt {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
    let pem = key
        .to_pem("PRIVATE KEY", LineEnding::LF)
        .map_err(|e| malformed(e.to_string()))?;
    Ok(pem.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn key_pair() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["client".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn encrypted(key_pem: &str, passphrase: &str) -> String {
        let (_, der) = Document::from_pem(key_pem).unwrap();
        let params = pkcs8::pkcs5::pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(
            2048, &[7; 16], [9; 16],
        )
        .unwrap();
        let info = pkcs8::PrivateKeyInfoRef::try_from(der.as_bytes()).unwrap();
        info.encrypt_with_params(params, passphrase)
            .unwrap()
            .to_pem(ENCRYPTED_PKCS8, LineEnding::LF)
            .unwrap()
            .to_string()
    }

    fn files(cert: PathBuf, key: PathBuf, passphrase: Option<&str>) -> TlsFiles {
        TlsFiles {
            ca: None,
            client: Some((cert, key)),
            passphrase: passphrase.map(|p| Secret::new(p.to_string())),
        }
    }

    #[test]
    fn plain_and_encrypted_keys_load() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = key_pair();
        let cert = write(dir.path(), "c.pem", &cert);
        let plain = write(dir.path(), "k.pem", &key);
        ClientTls::load(&files(cert.clone(), plain, None)).unwrap();

        let locked = write(dir.path(), "e.pem", &encrypted(&key, "s3cret"));
        let tls = ClientTls::load(&files(cert.clone(), locked.clone(), Some("s3cret"))).unwrap();
        let config = tls.rustls_config().unwrap();
        assert!(
            config.client_auth_cert_resolver.has_certs(),
            "the v2 client has it too"
        );
        assert_eq!(
            private_key(&locked, Some(&Secret::new("s3cret".into()))).unwrap(),
            key.as_bytes(),
            "the decrypted key is the original"
        );

        let wrong = ClientTls::load(&files(cert.clone(), locked.clone(), Some("nope")));
        let message = wrong.unwrap_err().to_string();
        assert!(message.contains("wrong passphrase"), "{message}");
        assert!(
            message.contains("e.pem") && !message.contains("nope"),
            "{message}"
        );

        let missing = ClientTls::load(&files(cert, locked, None)).unwrap_err();
        assert!(
            matches!(missing, TlsError::NeedPassphrase { .. }),
            "{missing}"
        );
    }

    #[test]
    fn legacy_encrypted_pem_gets_the_conversion_hint() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, _) = key_pair();
        let cert = write(dir.path(), "c.pem", &cert);
        let legacy = write(
            dir.path(),
            "old.key",
            "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\
             DEK-Info: AES-256-CBC,00112233445566778899AABBCCDDEEFF\n\nAAAA\n\
             -----END EC PRIVATE KEY-----\n",
        );
        let message = ClientTls::load(&files(cert, legacy, Some("x")))
            .unwrap_err()
            .to_string();
        assert!(message.starts_with(&format!("{}: legacy", dir.path().join("old.key").display())));
        assert!(
            message.contains("openssl pkcs8 -topk8 -v2 aes-256-cbc"),
            "{message}"
        );
    }

    #[test]
    fn missing_or_wrong_files_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = key_pair();
        let cert = write(dir.path(), "c.pem", &cert);
        let key = write(dir.path(), "k.pem", &key);
        let nowhere = dir.path().join("missing.pem");
        let swapped = ClientTls::load(&files(key.clone(), cert.clone(), None)).unwrap_err();
        assert!(
            matches!(&swapped, TlsError::Key { path, .. } if *path == cert),
            "{swapped}"
        );
        let no_cert = ClientTls::load(&files(key.clone(), key.clone(), None)).unwrap_err();
        assert!(
            matches!(&no_cert, TlsError::Certificate { path, .. } if *path == key),
            "{no_cert}"
        );
        let ca = TlsFiles {
            ca: Some(nowhere.clone()),
            ..TlsFiles::default()
        };
        let unreadable = ClientTls::load(&ca).unwrap_err().to_string();
        assert!(unreadable.starts_with(&format!("cannot read {}", nowhere.display())));
    }

    #[test]
    fn debug_shows_no_key_material() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = key_pair();
        let body = key.lines().nth(1).unwrap().to_string();
        let cert = write(dir.path(), "c.pem", &cert);
        let key = write(dir.path(), "k.pem", &key);
        let tls = ClientTls::load(&files(cert, key, None)).unwrap();
        let debug = format!("{tls:?}");
        assert!(debug.contains("k.pem") && !debug.contains(&body), "{debug}");
    }
}
