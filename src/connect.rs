//! Where etcd is and how to reach it: the connection flags and environment shared by
//! `reconfig` (every mode) and `etcd-util`, resolved into [`ConnectOptions`].
//!
//! Precedence is flag > environment > default: `--endpoints`, then `--host`/`--port`,
//! then `ETCD_ENDPOINTS`, then `127.0.0.1:2379`.

use std::fmt;
use std::time::Duration;

use clap::Args;

use crate::duration::parse_duration;

/// Connection flags, flattened into every program that talks to etcd.
#[derive(Debug, Clone, Default, Args)]
pub struct ConnectArgs {
    /// etcd host (used with --port when --endpoints is not given) [default: 127.0.0.1]
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// etcd client port (etcd v3 no longer serves 4001) [default: 2379]
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// Comma-separated etcd endpoints, e.g. http://10.0.0.1:2379,http://10.0.0.2:2379
    /// [env: ETCD_ENDPOINTS, used when neither this nor --host/--port is given]
    #[arg(long, value_name = "URL,...", value_delimiter = ',')]
    pub endpoints: Vec<String>,
    /// Give up connecting after this long (seconds or 500ms/5s/1m)
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// etcd user name (auth is off when unset or empty)
    #[arg(
        long,
        env = "ETCD_USERNAME",
        value_name = "NAME",
        hide_env_values = true
    )]
    pub username: Option<String>,
    /// etcd password (prefer the environment: flags show up in `ps`)
    #[arg(
        long,
        env = "ETCD_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<String>,
}

/// A password that never shows up in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The password itself, for the one place that sends it to etcd.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Everything needed to open the one etcd connection of a process.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Endpoint URLs, tried in turn.
    pub endpoints: Vec<String>,
    /// Limit for establishing the connection (and the first request of `--onetime`).
    pub connect_timeout: Duration,
    /// etcd user and password when auth is on.
    pub user: Option<(String, Secret)>,
}

impl ConnectArgs {
    /// Resolves flags and environment into connection options.
    pub fn resolve(&self) -> ConnectOptions {
        self.resolve_with_env(std::env::var("ETCD_ENDPOINTS").ok().as_deref())
    }

    /// [`Self::resolve`] with the value of `ETCD_ENDPOINTS` passed in.
    pub fn resolve_with_env(&self, env_endpoints: Option<&str>) -> ConnectOptions {
        let listed = |list: Vec<&str>| -> Vec<String> {
            list.into_iter()
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(endpoint_url)
                .collect()
        };
        let from_flag = listed(self.endpoints.iter().map(String::as_str).collect());
        let from_env = listed(env_endpoints.unwrap_or("").split(',').collect());
        let endpoints = if !from_flag.is_empty() {
            from_flag
        } else if self.host.is_some() || self.port.is_some() {
            let host = self.host.as_deref().unwrap_or("127.0.0.1");
            vec![endpoint_url(&format!(
                "{host}:{}",
                self.port.unwrap_or(2379)
            ))]
        } else if !from_env.is_empty() {
            from_env
        } else {
            vec![endpoint_url("127.0.0.1:2379")]
        };
        let user = match (&self.username, &self.password) {
            (Some(name), password) if !name.is_empty() => {
                Some((name.clone(), Secret(password.clone().unwrap_or_default())))
            }
            _ => None,
        };
        ConnectOptions {
            endpoints,
            connect_timeout: self.connect_timeout,
            user,
        }
    }
}

/// `host:port` → `http://host:port`; URLs with a scheme stay as they are.
fn endpoint_url(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ConnectArgs {
        ConnectArgs {
            connect_timeout: Duration::from_secs(5),
            ..Default::default()
        }
    }

    #[test]
    fn default_is_local_2379() {
        assert_eq!(
            args().resolve_with_env(None).endpoints,
            ["http://127.0.0.1:2379"]
        );
    }

    #[test]
    fn flags_beat_environment() {
        let mut a = args();
        let env = Some("e1:1, https://e2:2");
        assert_eq!(
            a.resolve_with_env(env).endpoints,
            ["http://e1:1", "https://e2:2"]
        );
        a.port = Some(4000);
        assert_eq!(a.resolve_with_env(env).endpoints, ["http://127.0.0.1:4000"]);
        a.endpoints = vec!["a:1".into()];
        assert_eq!(a.resolve_with_env(env).endpoints, ["http://a:1"]);
    }

    #[test]
    fn empty_username_means_no_auth_and_password_is_hidden() {
        let mut a = args();
        a.username = Some(String::new());
        assert!(a.resolve_with_env(None).user.is_none());
        a.username = Some("root".into());
        a.password = Some("hunter2".into());
        let debug = format!("{:?}", a.resolve_with_env(None));
        assert!(!debug.contains("hunter2"), "{debug}");
    }
}
