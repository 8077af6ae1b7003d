//! Passwords and passphrases, kept out of `Debug` output and logs.

use std::convert::Infallible;
use std::fmt;

/// Environment variables holding reconfig's own secrets: no process reconfig starts gets
/// them, and no template can read them.
pub const SECRET_ENV: [&str; 2] = ["ETCD_PASSWORD", "RECONFIG_SSL_PASSPHRASE"];

/// A password or passphrase that never shows up in `Debug` output or logs.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret read from somewhere else than the command line.
    pub fn new(secret: String) -> Secret {
        Secret(secret)
    }

    /// The secret itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// clap's parser for secret flags.
    pub fn parse(text: &str) -> Result<Secret, Infallible> {
        Ok(Secret(text.to_string()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}
