//! Finding etcd through DNS SRV records, as fleets do: `--srv RECORD`, or etcd's own
//! convention `--srv-domain DOMAIN` (`_etcd-client-ssl._tcp.DOMAIN` for TLS, else
//! `_etcd-client._tcp.DOMAIN`).
//!
//! Every target becomes an endpoint, in RFC 2782 order: by priority, and weighted random
//! within a priority, so a fleet spreads over the members the way the records ask. The
//! look-up goes to the system's resolver or to `--dns-server`; the targets' names are
//! left to the system's resolver when connecting, so TLS verifies them by name.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::{ResolveError, Resolver, TokioResolver};
use rand::Rng;

/// Why SRV discovery failed; each message names the record.
#[derive(Debug, thiserror::Error)]
pub enum SrvError {
    /// The name exists nowhere, or has no SRV records.
    #[error("DNS SRV record {record} not found (no targets)")]
    NoRecords {
        /// The record(s) looked up.
        record: String,
    },
    /// The resolver failed or did not answer (may pass).
    #[error("DNS SRV look-up of {record} failed: {reason}")]
    Lookup {
        /// The record looked up.
        record: String,
        /// Timeout, server failure, ...
        reason: String,
    },
    /// The system's resolver configuration is unusable.
    #[error("cannot set up the DNS resolver: {0}")]
    Resolver(String),
}

impl SrvError {
    /// Whether trying again later may help (the DNS server was away, not the record).
    pub fn is_transient(&self) -> bool {
        matches!(self, SrvError::Lookup { .. })
    }
}

/// One SRV answer: where a member listens and how the record ranks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host name, without the trailing dot.
    pub host: String,
    /// Client port.
    pub port: u16,
    /// Lower is tried first.
    pub priority: u16,
    /// Share of the traffic within a priority.
    pub weight: u16,
}

impl Target {
    /// `host:port`, with IPv6 literals bracketed.
    pub fn address(&self) -> String {
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(ip)) => format!("[{ip}]:{}", self.port),
            _ => format!("{}:{}", self.host, self.port),
        }
    }
}

/// What discovery found: endpoints (`host:port`, in order) and whether they speak TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// `host:port` of every target, in RFC 2782 order.
    pub addresses: Vec<String>,
    /// True for `_etcd-client-ssl` records.
    pub tls: bool,
}

/// Parses `--dns-server`: `IP:PORT`, or an IP alone for port 53. A name would need DNS to
/// find the DNS server, so it is refused.
pub fn parse_dns_server(text: &str) -> Result<SocketAddr, String> {
    text.parse::<SocketAddr>()
        .or_else(|_| text.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| format!("expected IP:PORT (e.g. 10.0.0.2:53), not {text:?}"))
}

/// A resolver for SRV look-ups, bounded by a time limit per look-up.
pub struct Dns {
    resolver: TokioResolver,
    limit: Duration,
}

impl Dns {
    /// The system's resolver, or `server` when given.
    pub fn new(server: Option<SocketAddr>, limit: Duration) -> Result<Dns, SrvError> {
        let provider = TokioConnectionProvider::default();
        let builder = match server {
            Some(addr) => {
                let servers =
                    NameServerConfigGroup::from_ips_clear(&[addr.ip()], addr.port(), true);
                Resolver::builder_with_config(
                    ResolverConfig::from_parts(None, vec![], servers),
                    provider,
                )
            }
            None => Resolver::builder(provider).map_err(|e| SrvError::Resolver(e.to_string()))?,
        };
        Ok(Dns {
            resolver: builder.build(),
            limit,
        })
    }

    /// `--srv RECORD`: every target, ordered. A record whose first label is
    /// `_etcd-client-ssl` means TLS, like `--srv-domain`.
    pub async fn record(&self, record: &str) -> Result<Discovered, SrvError> {
        let targets = self.lookup(record).await?;
        Ok(Discovered {
            addresses: ordered(targets, &mut rand::rng()),
            tls: record.starts_with("_etcd-client-ssl."),
        })
    }

    /// `--srv-domain DOMAIN`: the TLS record's targets, else the plain record's.
    pub async fn domain(&self, domain: &str) -> Result<Discovered, SrvError> {
        let domain = domain.trim_end_matches('.');
        let secure = format!("_etcd-client-ssl._tcp.{domain}");
        let plain = format!("_etcd-client._tcp.{domain}");
        let (targets, tls) = match self.lookup(&secure).await {
            Ok(targets) => (targets, true),
            Err(SrvError::NoRecords { .. }) => match self.lookup(&plain).await {
                Ok(targets) => (targets, false),
                Err(SrvError::NoRecords { .. }) => {
                    return Err(SrvError::NoRecords {
                        record: format!("{secure} or {plain}"),
                    })
                }
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
        };
        Ok(Discovered {
            addresses: ordered(targets, &mut rand::rng()),
            tls,
        })
    }

    async fn lookup(&self, record: &str) -> Result<Vec<Target>, SrvError> {
        let name = format!("{}.", record.trim_end_matches('.'));
        let answer = tokio::time::timeout(self.limit, self.resolver.srv_lookup(name))
            .await
            .map_err(|_| SrvError::Lookup {
                record: record.to_string(),
                reason: format!("no answer within {:?}", self.limit),
            })?
            .map_err(|e| lookup_error(record, &e))?;
        let targets: Vec<Target> = answer
            .iter()
            .map(|srv| Target {
                host: srv.target().to_utf8().trim_end_matches('.').to_string(),
                port: srv.port(),
                priority: srv.priority(),
                weight: srv.weight(),
            })
            .collect();
        // RFC 2782: a lone "." target means the service is decidedly not available here.
        if targets.iter().all(|t| t.host.is_empty()) {
            return Err(SrvError::NoRecords {
                record: record.to_string(),
            });
        }
        Ok(targets.into_iter().filter(|t| !t.host.is_empty()).collect())
    }
}

fn lookup_error(record: &str, error: &ResolveError) -> SrvError {
    if error.is_no_records_found() {
        SrvError::NoRecords {
            record: record.to_string(),
        }
    } else {
        SrvError::Lookup {
            record: record.to_string(),
            reason: error.to_string(),
        }
    }
}

/// RFC 2782 order: ascending priority; within a priority, repeatedly pick a target with
/// probability proportional to its weight (weight-0 targets rarely first), so clients
/// spread over the members as the records intend. Returns `host:port` addresses.
pub fn ordered(mut targets: Vec<Target>, rng: &mut impl Rng) -> Vec<String> {
    targets.sort_by_key(|t| t.priority);
    let mut out = Vec::with_capacity(targets.len());
    for group in targets.chunk_by(|a, b| a.priority == b.priority) {
        let mut left: Vec<&Target> = group.iter().collect();
        // "Arrange in any order, except that weight 0 goes first": shuffle, then a stable
        // partition, so equal weights carry no bias from the answer's order.
        for i in (1..left.len()).rev() {
            left.swap(i, rng.random_range(0..=i));
        }
        left.sort_by_key(|t| t.weight != 0);
        while !left.is_empty() {
            let total: u32 = left.iter().map(|t| u32::from(t.weight)).sum();
            let pick = rng.random_range(0..=total);
            let mut running = 0;
            let chosen = left
                .iter()
                .position(|t| {
                    running += u32::from(t.weight);
                    running >= pick
                })
                .unwrap_or(left.len() - 1);
            out.push(left.remove(chosen).address());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn target(host: &str, priority: u16, weight: u16) -> Target {
        Target {
            host: host.into(),
            port: 2379,
            priority,
            weight,
        }
    }

    #[test]
    fn priorities_come_in_ascending_order_and_nothing_is_lost() {
        let mut rng = StdRng::seed_from_u64(1);
        let targets = vec![
            target("c", 20, 5),
            target("a", 10, 1),
            target("d", 30, 0),
            target("b", 10, 1),
        ];
        for _ in 0..50 {
            let order = ordered(targets.clone(), &mut rng);
            assert_eq!(order.len(), 4);
            let mut first_two = order[..2].to_vec();
            first_two.sort();
            assert_eq!(first_two, ["a:2379", "b:2379"]);
            assert_eq!(order[2..], ["c:2379", "d:2379"]);
        }
    }

    #[test]
    fn weights_share_the_first_place() {
        let mut rng = StdRng::seed_from_u64(7);
        let targets = vec![target("light", 1, 10), target("heavy", 1, 90)];
        let runs = 10_000;
        let heavy_first = (0..runs)
            .filter(|_| ordered(targets.clone(), &mut rng)[0] == "heavy:2379")
            .count();
        // Expected 90/101 (RFC 2782 draws from 0..=total); allow for chance.
        assert!((8_600..=9_200).contains(&heavy_first), "{heavy_first}");
    }

    #[test]
    fn zero_weights_are_rarely_first_but_equal_weights_are_fair() {
        let mut rng = StdRng::seed_from_u64(42);
        let with_zero = vec![target("zero", 1, 0), target("some", 1, 50)];
        let zero_first = (0..5_000)
            .filter(|_| ordered(with_zero.clone(), &mut rng)[0] == "zero:2379")
            .count();
        assert!(zero_first < 300, "{zero_first}");

        let all_zero = vec![target("x", 1, 0), target("y", 1, 0), target("z", 1, 0)];
        let x_first = (0..6_000)
            .filter(|_| ordered(all_zero.clone(), &mut rng)[0] == "x:2379")
            .count();
        assert!((1_700..=2_300).contains(&x_first), "{x_first}");
    }

    #[test]
    fn addresses_bracket_ipv6() {
        assert_eq!(target("::1", 0, 0).address(), "[::1]:2379");
        assert_eq!(
            target("etcd1.example", 0, 0).address(),
            "etcd1.example:2379"
        );
    }

    #[test]
    fn dns_server_flag_takes_ip_and_port() {
        assert_eq!(
            parse_dns_server("127.0.0.1:5353"),
            Ok("127.0.0.1:5353".parse().unwrap())
        );
        assert_eq!(
            parse_dns_server("10.0.0.2"),
            Ok("10.0.0.2:53".parse().unwrap())
        );
        assert!(parse_dns_server("dns.example:53").is_err());
    }
}
