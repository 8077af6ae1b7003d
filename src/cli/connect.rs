//! The connection flags and the environment they read, shared by every `reconfig` mode and
//! by `etcd-util` (which flattens [`ConnectArgs`] too), turned into the plain
//! [`Connection`] the etcd module resolves.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::config::parse_duration;
use crate::etcd::{parse_dns_server, Connection, Secret};

/// The environment variables of the connection, for the manual pages of every program that
/// connects (flags beat them).
pub const CONNECT_ENVIRONMENT: &[(&str, &str)] = &[
    (
        "ETCD_ENDPOINTS",
        "Comma-separated etcd endpoints, used when no --endpoints, --srv, --srv-domain, \
         --host or --port is given.",
    ),
    (
        "ETCD_USERNAME",
        "etcd user, as --username; auth is off when unset or empty.",
    ),
    (
        "ETCD_PASSWORD",
        "etcd password, as --password (which shows up in ps; this does not).",
    ),
    (
        "RECONFIG_DNS_SERVER",
        "DNS server for the SRV look-ups, as --dns-server.",
    ),
];

/// Connection flags, flattened into every program that talks to etcd. `--ssl` has no
/// short flag here because `reconfig dispense` uses `-s` for `--signal`; the programs that
/// want reconfig.rb's `-s` add it with `mut_arg`.
#[derive(Debug, Clone, Default, Args)]
pub struct ConnectArgs {
    /// etcd host (used with --port when no other endpoint source is given) [default: 127.0.0.1]
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// etcd client port (etcd v3 no longer serves 4001) [default: 2379]
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// Comma-separated etcd endpoints, e.g. https://10.0.0.1:2379,https://10.0.0.2:2379
    /// [env: ETCD_ENDPOINTS, used when no endpoint flag is given]
    #[arg(long, value_name = "URL,...", value_delimiter = ',')]
    pub endpoints: Vec<String>,
    /// Find etcd through this DNS SRV record (all targets, by priority and weight),
    /// e.g. _etcd-client._tcp.example.com
    #[arg(long, value_name = "RECORD", conflicts_with_all = ["endpoints", "srv_domain"])]
    pub srv: Option<String>,
    /// Find etcd through etcd's SRV records of DOMAIN: _etcd-client-ssl._tcp.DOMAIN (TLS),
    /// else _etcd-client._tcp.DOMAIN
    #[arg(long, value_name = "DOMAIN", conflicts_with = "endpoints")]
    pub srv_domain: Option<String>,
    /// DNS server for the SRV look-ups [default: the system's resolver]
    #[arg(
        long,
        env = "RECONFIG_DNS_SERVER",
        value_name = "IP:PORT",
        value_parser = parse_dns_server
    )]
    pub dns_server: Option<SocketAddr>,
    /// Give up connecting, and on each request (then the next endpoint is tried), after
    /// this long (seconds or 500ms/5s/1m)
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// Also send HTTP/2 pings this often while a watch is open (--watch-check already
    /// notices a silent server); etcd grpc-proxy closes connections pinged more often than
    /// every 5 minutes, etcd itself allows every 5 s; 0: never
    #[arg(long, value_name = "DURATION", default_value = "6m", value_parser = parse_duration)]
    pub keepalive: Duration,
    /// Check a watch stream that brought nothing for this long with a read on its
    /// connection; no answer within --connect-timeout and the watch moves to the next
    /// endpoint; 0: never
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub watch_check: Duration,
    /// Talk to etcd over TLS (host:port endpoints become https://)
    #[arg(long)]
    pub ssl: bool,
    /// CA certificate(s) (PEM) to verify etcd with, instead of the system's roots; implies --ssl
    #[arg(long = "ssl_cafile", visible_alias = "ssl-cafile", value_name = "FILE")]
    pub ssl_cafile: Option<PathBuf>,
    /// Client certificate (PEM) for etcd's --client-cert-auth; implies --ssl, needs --ssl_key
    #[arg(
        long = "ssl_cert",
        visible_alias = "ssl-cert",
        value_name = "FILE",
        requires = "ssl_key"
    )]
    pub ssl_cert: Option<PathBuf>,
    /// Private key (PEM: PKCS#8, encrypted PKCS#8, RSA or EC) of --ssl_cert
    #[arg(
        long = "ssl_key",
        visible_alias = "ssl-key",
        value_name = "FILE",
        requires = "ssl_cert"
    )]
    pub ssl_key: Option<PathBuf>,
    /// Passphrase of an encrypted PKCS#8 --ssl_key
    #[arg(
        long = "ssl_passphrase",
        visible_alias = "ssl-passphrase",
        value_name = "PASSPHRASE",
        value_parser = Secret::parse
    )]
    pub ssl_passphrase: Option<Secret>,
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
        hide_env_values = true,
        value_parser = Secret::parse
    )]
    pub password: Option<Secret>,
}

impl ConnectArgs {
    /// What the flags say, for the etcd module.
    pub fn connection(&self) -> Connection {
        Connection {
            host: self.host.clone(),
            port: self.port,
            endpoints: self.endpoints.clone(),
            srv: self.srv.clone(),
            srv_domain: self.srv_domain.clone(),
            dns_server: self.dns_server,
            connect_timeout: self.connect_timeout,
            keepalive: self.keepalive,
            watch_check: self.watch_check,
            ssl: self.ssl,
            ssl_cafile: self.ssl_cafile.clone(),
            ssl_cert: self.ssl_cert.clone(),
            ssl_key: self.ssl_key.clone(),
            ssl_passphrase: self.ssl_passphrase.clone(),
            username: self.username.clone(),
            password: self.password.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// A program flattening [`ConnectArgs`] as reconfig and etcd-util do.
    #[derive(Debug, Parser)]
    #[command(mut_arg("ssl", |a| a.short('s')))]
    struct Program {
        #[command(flatten)]
        connect: ConnectArgs,
    }

    /// Every variable clap reads for a flag is in the manual's list.
    #[test]
    fn the_manual_lists_every_variable() {
        let documented: Vec<&str> = CONNECT_ENVIRONMENT.iter().map(|(name, _)| *name).collect();
        let command = <Program as clap::CommandFactory>::command();
        let read: Vec<String> = command
            .get_arguments()
            .filter_map(|arg| arg.get_env())
            .map(|name| name.to_string_lossy().into_owned())
            .collect();
        assert!(!read.is_empty());
        for name in read {
            assert!(documented.contains(&name.as_str()), "{name} is not listed");
        }
    }

    #[test]
    fn flags_keep_reconfig_rb_spellings_with_kebab_aliases() {
        let parsed = Program::try_parse_from([
            "p",
            "-s",
            "--ssl_cafile",
            "ca",
            "--ssl-cert",
            "c",
            "--ssl_key",
            "k",
            "--ssl-passphrase",
            "pw",
        ])
        .unwrap()
        .connect;
        assert!(parsed.ssl);
        assert_eq!(parsed.ssl_cafile, Some("ca".into()));
        assert_eq!(parsed.ssl_passphrase, Some(Secret::new("pw".into())));
        let lone_cert = Program::try_parse_from(["p", "--ssl_cert", "c"]).unwrap_err();
        assert_eq!(lone_cert.exit_code(), 2);
        let both = Program::try_parse_from(["p", "--srv", "r", "--endpoints", "e:1"]).unwrap_err();
        assert_eq!(both.exit_code(), 2);
    }

    #[test]
    fn the_defaults_are_the_connections() {
        let parsed = Program::try_parse_from(["p"]).unwrap().connect.connection();
        let default = Connection::default();
        assert_eq!(
            (parsed.connect_timeout, parsed.keepalive, parsed.watch_check),
            (
                default.connect_timeout,
                default.keepalive,
                default.watch_check
            )
        );
    }
}
