//! The watch: every change in etcd after the first read, on one stream for the whole
//! process (`stream`: the loop, its reconnects and revisions; `liveness`: whether the
//! stream's server still answers). The daemon and dispense
//! drive it into [`Replica`]s — each watched tree as the watch delivered it — and wake the
//! subscribers (`subscriptions`), which follow the changes ([`Follow`]): they render from
//! the replica or read everything afresh at one revision.

mod follow;
mod liveness;
mod replica;
mod stream;
mod subscriptions;

pub use follow::{Follow, Next, Wake};
pub use replica::Replica;
pub use stream::{Range, SessionError, Sink, WatchLoop};
pub use subscriptions::{subscriptions, Watched};
