//! Fleet rollouts: a change of an entry with a `rollout` object reaches the nodes of its
//! group a few at a time, canaries first, and stops at the first node whose check or health
//! fails — coordinated through etcd, which the fleet already trusts.
//!
//! The protocol, for group G under `--rollout-prefix`: each change is a rollout, named by the
//! etcd revision that made it (`keys`: where its keys live). A node with the change to apply
//! puts its queue key, bound to its lease (`lease`), in one transaction that also reads the
//! whole group; it then follows the group with a watch (`view`) and applies the window rule
//! to what it sees (`group`): it goes when its place among the pending nodes — in the order
//! etcd created their keys — is inside the window and nobody failed the change. It asks for
//! the go with a transaction that checks what the decision rested on, swaps, reloads,
//! checks health, bakes, and writes its done marker; a failure writes a held key instead,
//! which every waiting node sees. A newer change starts a newer rollout: waiting nodes move
//! to it, nodes already running finish theirs first and count against the new rollout's
//! window. `member` is one node's part; `show` is `reconfig rollout status`.

mod group;
mod keys;
mod lease;
mod member;
mod show;
mod view;

use std::time::Duration;

pub use group::Change;
pub use member::{Go, Member, Turn, Waiting};
pub use show::{rollout_status, RolloutStatusError, RolloutStatusSettings};

use crate::etcd::EtcdError;

/// Where and as whom a node takes part in rollouts (`--rollout-prefix`, `--rollout-ttl`,
/// `--node-name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The prefix of every group's keys, ending with `/`.
    pub prefix: String,
    /// The TTL of a node's lease: how long a dead node holds its place.
    pub ttl: Duration,
    /// This node's name in its groups (unique in each).
    pub node: String,
}

/// Why a node cannot take part in its group's rollout (what waiting cannot fix: etcd
/// refused a request).
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    /// The node has no usable name (the host name is not one).
    #[error("this node's name {0}; give it one with --node-name")]
    Node(String),
    /// etcd refused a request of the protocol.
    #[error("rollout of group {group}: {source}")]
    Etcd {
        /// The group.
        group: String,
        /// etcd's refusal.
        source: EtcdError,
    },
    /// A one-shot run found the rollout of its change held.
    #[error("rollout of group {group} held at revision {revision}: {node}: {reason}; target left unchanged")]
    Held {
        /// The group.
        group: String,
        /// The rollout's revision.
        revision: i64,
        /// The node that failed.
        node: String,
        /// Why.
        reason: String,
    },
    /// A one-shot run's turn did not come in time.
    #[error("rollout of group {group}: no turn within {waited:?} (--rollout-wait); target left unchanged")]
    NoTurn {
        /// The group.
        group: String,
        /// How long it waited.
        waited: Duration,
    },
}
