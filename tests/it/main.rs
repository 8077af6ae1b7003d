//! reconfig's integration tests, one crate: real etcd servers on loopback started by the
//! harness ([`common`]), the `reconfig` and `etcd-util` binaries as operators run them,
//! real users, files, links and commands.

mod applied;
mod common;

mod daemon;
mod dispense;
mod docs;
mod etcd_util;
mod faults;
mod hostile;
mod migrate;
mod migrate_confd;
mod nginx_e2e;
mod onetime;
mod ops;
mod pki;
mod real_deployments;
mod safety;
mod secure;
mod template_golden;
mod template_props;
mod v2data;
