//! etcd, the data path's source: where it is and how to reach it ([`Connection`] with
//! TLS, auth and DNS SRV), the one connection of a process ([`Etcd`]) to one endpoint at a
//! time (`route`), consistent reads into a [`Snapshot`] of one revision, and the watch that
//! follows every change ([`watch`]). Every retry against etcd goes through one helper
//! (`retry`).

mod client;
mod error;
mod options;
mod read;
mod retry;
mod route;
mod secret;
mod snapshot;
mod srv;
mod tls;
pub mod watch;

pub use client::Etcd;
pub(crate) use error::with_causes;
pub use error::EtcdError;
pub use options::Connection;
pub(crate) use read::MAX_TXN_OPS;
pub(crate) use retry::retry_until;
pub use retry::{retry_within, until, Backoff};
pub use secret::{Secret, SECRET_ENV};
pub use snapshot::{dir_prefix, in_tree_bytes, Snapshot};
pub use srv::parse_dns_server;
pub(crate) use tls::{ClientTls, TlsError};
