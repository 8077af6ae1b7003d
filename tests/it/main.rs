//! reconfig's integration tests, one crate: real etcd servers on loopback started by the
//! harness ([`common`]), the `reconfig` and `etcd-util` binaries as operators run them,
//! real users, files, links and commands.

/// Runs the test function `NAME(EtcdVersion)` against each etcd release the suite covers,
/// as `NAME::etcd34` and `NAME::etcd35` (`cargo test --test it etcd35` runs the 3.5 ones),
/// each carrying the attributes given before `NAME` (`#[tokio::test]`, `#[ignore]`).
macro_rules! on_each_etcd {
    ($(#[$attr:meta])* $name:ident) => {
        mod $name {
            $(#[$attr])*
            async fn etcd34() {
                super::$name(crate::common::EtcdVersion::V34).await
            }

            $(#[$attr])*
            async fn etcd35() {
                super::$name(crate::common::EtcdVersion::V35).await
            }
        }
    };
}

mod applied;
mod common;

mod crash_states;
mod daemon;
mod dead_stream;
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
mod rollout;
mod safety;
mod secure;
mod template_golden;
mod template_props;
mod v2data;
