//! reconfig keeps local configuration files in step with data in etcd.
//!
//! The modules follow the data's path through the program:
//!
//! - [`cli`]: the command-line flags of `reconfig` (the binary only parses and calls in).
//! - [`connect`]: etcd endpoints and connection options, shared with `etcd-util`.
//! - [`tls`]: certificates and keys (encrypted PKCS#8 too) → the client's TLS configuration.
//! - [`srv`]: finding etcd through DNS SRV records, in RFC 2782 order.
//! - [`config`]: loading and validating `conf.d` entries.
//! - [`etcd`]: reading consistent snapshots of keys from etcd.
//! - [`snapshot`]: the keys of one revision and the data model templates see.
//! - [`template`]: Erubis-style delimiters over Tera, filters and confd-style functions.
//! - [`apply`]: comparing, previewing, staging, swapping and rolling back a target file.
//! - [`command`]: running check and reload commands with a time limit.
//! - [`sync`]: one pass over every entry (start-up and `--onetime`).
//! - [`watch`]: the one watch stream, revision bookkeeping, reconnects and compaction.
//! - [`worker`]: one task per entry: coalesced read → render → apply.
//! - [`daemon`]: the process's life: generations of workers, signals, reloads, shutdown.
//! - [`status`]: the process's health: per-entry outcomes, etcd state, revision, counters.
//! - [`metrics`]: `--metrics-addr`, Prometheus `/metrics` and `/healthz` from [`status`].
//! - [`systemd`]: `Type=notify` readiness, stopping and watchdog pings.
//! - [`render`]: `reconfig render`, templates against a local snapshot file.
//! - [`migrate`]: `reconfig migrate`, reconfig.rb's Ruby templates converted to Tera.
//! - [`dispense`]: `reconfig dispense`, a prefix mirrored into files, atomically per transaction.
//! - [`supervise`]: the child of dispense and the daemon: start, signal, pass its exit on.
//! - [`backoff`], [`duration`], [`logging`]: small shared helpers.

pub mod apply;
pub mod backoff;
pub mod cli;
pub mod command;
pub mod config;
pub mod connect;
pub mod daemon;
pub mod dispense;
pub mod duration;
pub mod etcd;
pub mod logging;
pub mod metrics;
pub mod migrate;
pub mod render;
pub mod snapshot;
pub mod srv;
pub mod status;
pub mod supervise;
pub mod sync;
pub mod systemd;
pub mod template;
pub mod tls;
pub mod watch;
pub mod worker;
