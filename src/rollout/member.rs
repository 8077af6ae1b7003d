//! One node's part in its group's rollouts, for one entry: a place in the rollout its change
//! belongs to ([`Member::turn`]), the go, and the end of its part — done, held, or left.
//!
//! Every write is one transaction that checks what the decision rested on, so a decision
//! taken on a view a little behind etcd is never acted on when it no longer holds:
//!
//! - queueing checks that no newer rollout started and the node is neither queued nor done
//!   in this one, starts the rollout when it has no marker yet (deleting the older markers,
//!   done and held keys of the group), puts the queue key with the node's lease, and reads
//!   the whole group back — one request;
//! - the go checks that no newer rollout started, that the node's queue key is the one it
//!   created, and that nobody failed the rollout, and marks the key `running`;
//! - done and held put their key and delete the queue key together.
//!
//! A request etcd does not answer is retried with backoff (logged once until etcd answers
//! again), and a node waiting for etcd keeps its previous file: no change is applied
//! without the go.

use std::time::Duration;

use etcd_client::{
    Compare, CompareOp, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse,
    TxnResponse,
};
use tracing::{debug, info, warn};

use super::group::{decide, place, Change, Decision, Limits, Note, Place};
use super::keys::Keys;
use super::lease::{self, Lease};
use super::view::View;
use super::{RolloutError, Settings};
use crate::config::{check_name, RolloutSpec};
use crate::etcd::{retry_until, Etcd, EtcdError};

/// What a node's turn came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Turn {
    /// The node may swap its change in now; it ends its part with [`Member::done`] or
    /// [`Member::held`].
    Go(Go),
    /// A node failed the rollout of this change: keep the previous file until the data
    /// changes again.
    Held {
        /// The rollout's revision.
        revision: i64,
        /// The node that failed.
        node: String,
        /// Why.
        reason: String,
    },
    /// The group's current rollout is newer than the data the node rendered: read the
    /// data again at this revision or later, render, and ask again.
    Refresh(i64),
}

/// The go for one rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Go {
    /// The rollout's revision.
    pub revision: i64,
}

/// Where a waiting node stands, as it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waiting {
    /// Queued in rollout `revision` behind `ahead` pending nodes.
    Queued {
        /// The rollout's revision.
        revision: i64,
        /// Pending nodes before it.
        ahead: usize,
    },
    /// The node's name is queued by another lease.
    Taken {
        /// The rollout's revision.
        revision: i64,
    },
}

/// One entry's member of its rollout group.
pub struct Member {
    etcd: Etcd,
    keys: Keys,
    group: String,
    node: String,
    ttl: Duration,
    limits: Limits,
    lease: Option<Lease>,
    view: Option<View>,
}

impl Member {
    /// The member of `spec`'s group for this node, on the process's connection.
    pub fn new(etcd: Etcd, settings: &Settings, spec: &RolloutSpec) -> Member {
        let as_usize = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
        Member {
            etcd,
            keys: Keys::new(&settings.prefix, &spec.group),
            group: spec.group.clone(),
            node: settings.node.clone(),
            ttl: settings.ttl,
            limits: Limits {
                max_parallel: as_usize(spec.max_parallel),
                canary: as_usize(spec.canary),
            },
            lease: None,
            view: None,
        }
    }

    /// The group's name.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Takes (or keeps) the node's place in the rollout `change` belongs to and waits until
    /// the node may go, the rollout is held, or the data must be read again; `waiting` is
    /// told where the node stands whenever that changes. Dropping the future leaves the node
    /// queued; a later call picks its place up again.
    pub async fn turn(
        &mut self,
        change: Change,
        waiting: &(dyn Fn(&Waiting) + Send + Sync),
    ) -> Result<Turn, RolloutError> {
        check_name(&self.node).map_err(RolloutError::Node)?;
        let mut told = None;
        loop {
            if self.lease.as_ref().is_some_and(Lease::is_expired) {
                warn!(
                    "rollout of group {}: this node's lease expired (etcd unreachable for \
                     longer than --rollout-ttl?): queueing again",
                    self.group
                );
                self.lease = None;
            }
            let placed = match &self.view {
                Some(view) => view.with(|group| place(group, &self.node, change)),
                // The watch's revision is the change's: queue at once, the transaction
                // checks that no newer rollout started.
                None if change.trigger > 0 => Place::Start(change.trigger),
                None => {
                    self.read().await?;
                    continue;
                }
            };
            let revision = match placed {
                Place::Refresh(revision) => {
                    self.leave_others(None).await?;
                    return Ok(Turn::Refresh(revision));
                }
                Place::Join(revision) | Place::Start(revision) => revision,
            };
            self.leave_others(Some(revision)).await?;
            let lease = match &self.lease {
                Some(lease) => lease.id(),
                None => {
                    let granted = self
                        .request("granting a lease", |etcd| Lease::grant(etcd, self.ttl))
                        .await
                        .map_err(|e| self.error(e))?;
                    let id = granted.id();
                    self.lease = Some(granted);
                    id
                }
            };
            let decision = self.view.as_ref().map_or(Decision::NotQueued, |view| {
                view.with(|group| decide(group, revision, &self.node, lease, self.limits))
            });
            let now = match decision {
                Decision::Go => match self.go(revision, lease).await {
                    Ok(true) => {
                        self.view = None;
                        return Ok(Turn::Go(Go { revision }));
                    }
                    Ok(false) => None,
                    Err(e) => {
                        self.lease_gone(e)?;
                        continue;
                    }
                },
                Decision::Held { node, reason } => {
                    self.leave().await;
                    return Ok(Turn::Held {
                        revision,
                        node,
                        reason,
                    });
                }
                Decision::NotQueued => {
                    if let Err(e) = self.enqueue(revision, lease).await {
                        self.lease_gone(e)?;
                    }
                    continue;
                }
                // Decided on the same view as the place: only a view that moved between
                // the two gets here; look again at the next change.
                Decision::Behind => None,
                Decision::Taken => Some(Waiting::Taken { revision }),
                Decision::Wait { ahead } => Some(Waiting::Queued { revision, ahead }),
            };
            if let Some(now) = now.filter(|now| told.as_ref() != Some(now)) {
                self.say(&now, told.is_none());
                waiting(&now);
                told = Some(now);
            }
            let Some(view) = &mut self.view else {
                continue;
            };
            view.watch(&self.etcd);
            let expired = async {
                match &self.lease {
                    Some(lease) => lease.expired().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = view.changed() => {}
                () = expired => {}
            }
        }
    }

    /// The node is swapped, reloaded, healthy and baked: its done marker goes in, its queue
    /// key out, and the next node may go.
    pub async fn done(&mut self, go: Go) -> Result<(), RolloutError> {
        let note = Note::now(&self.node, "", "");
        let key = self.keys.done(go.revision, &self.node);
        self.finish(go, key, note, "writing that this node is done")
            .await
    }

    /// The node's check or health failed (its previous file is back): the group holds the
    /// rollout, with `reason`.
    pub async fn held(&mut self, go: Go, reason: &str) -> Result<(), RolloutError> {
        let note = Note::now(&self.node, "", reason);
        let key = self.keys.held(go.revision, &self.node);
        self.finish(go, key, note, "holding the rollout").await
    }

    /// The node has no change for the group any more (or stops): its places go with its
    /// lease. Best effort: an etcd away only means the lease expires on its own.
    pub async fn leave(&mut self) {
        self.view = None;
        if let Some(lease) = self.lease.take() {
            lease.revoke(&self.etcd).await;
        }
    }

    async fn finish(
        &mut self,
        go: Go,
        key: String,
        note: Note,
        what: &str,
    ) -> Result<(), RolloutError> {
        let queue = self.keys.queue(go.revision, &self.node);
        let txn = Txn::new().and_then([
            TxnOp::put(key, note.bytes(), None),
            TxnOp::delete(queue, None),
        ]);
        self.txn(what, txn).await.map_err(|e| self.error(e))?;
        self.view = None;
        self.lease = None;
        Ok(())
    }

    /// Reads every key of the group into a fresh view.
    async fn read(&mut self) -> Result<(), RolloutError> {
        let keys = self.keys.clone();
        let read = self
            .request("reading the group", |etcd| {
                let keys = keys.clone();
                async move { keys.read(etcd).await }
            })
            .await
            .map_err(|e| self.error(e))?;
        let revision = read.header().map_or(0, |h| h.revision());
        self.view = Some(View::new(self.keys.clone(), read.kvs(), revision));
        Ok(())
    }

    /// Queues the node in rollout `revision` (starting it when it has no marker), unless
    /// a newer rollout started or the node is already queued or done there; the view then
    /// holds the group as the transaction left it.
    async fn enqueue(&mut self, revision: i64, lease: i64) -> Result<(), EtcdError> {
        let k = &self.keys;
        let (newer, newer_end) = k.markers_from(revision + 1);
        let mine = k.queue(revision, &self.node);
        let older = |kind: &str| {
            let (start, end) = k.older(kind, revision);
            TxnOp::delete(start, Some(DeleteOptions::new().with_range(end)))
        };
        let start = Txn::new()
            .when([Compare::version(k.marker(revision), CompareOp::Equal, 0)])
            .and_then([
                TxnOp::put(
                    k.marker(revision),
                    Note::now(&self.node, "", "").bytes(),
                    None,
                ),
                older("rollouts"),
                older("done"),
                older("held"),
            ]);
        let read = TxnOp::get(k.root(), Some(GetOptions::new().with_range(k.root_end())));
        let waiting = Note::now(&self.node, "waiting", "").bytes();
        let txn = Txn::new()
            .when([
                Compare::version(newer, CompareOp::Equal, 0).with_range(newer_end),
                Compare::create_revision(mine.as_str(), CompareOp::Equal, 0),
                Compare::version(k.done(revision, &self.node), CompareOp::Equal, 0),
            ])
            .and_then([
                TxnOp::txn(start),
                TxnOp::put(mine, waiting, Some(PutOptions::new().with_lease(lease))),
                read.clone(),
            ])
            .or_else([read]);
        let answer = self.txn("queueing", txn).await?;
        if answer.succeeded() {
            debug!(
                "rollout of group {}: queued for revision {revision}",
                self.group
            );
        }
        let at = answer.header().map_or(0, |h| h.revision());
        if let Some(TxnOpResponse::Get(read)) = answer.op_responses().pop() {
            match &self.view {
                Some(view) => view.replace(read.kvs(), at),
                None => self.view = Some(View::new(self.keys.clone(), read.kvs(), at)),
            }
        }
        Ok(())
    }

    /// Asks for the go in rollout `revision`; false when what the decision rested on no
    /// longer holds (the view catches up, and the node decides again).
    async fn go(&mut self, revision: i64, lease: i64) -> Result<bool, EtcdError> {
        let Some(created) = self.view.as_ref().and_then(|view| {
            view.with(|group| {
                group
                    .queued(revision, &self.node, lease)
                    .map(|q| q.create_revision)
            })
        }) else {
            return Ok(false);
        };
        let k = &self.keys;
        let (newer, newer_end) = k.markers_from(revision + 1);
        let (held, held_end) = k.held_in(revision);
        let mine = k.queue(revision, &self.node);
        let running = Note::now(&self.node, "running", "").bytes();
        let txn = Txn::new()
            .when([
                Compare::version(newer, CompareOp::Equal, 0).with_range(newer_end),
                Compare::create_revision(mine.as_str(), CompareOp::Equal, created),
                Compare::version(held, CompareOp::Equal, 0).with_range(held_end),
            ])
            .and_then([TxnOp::put(
                mine,
                running,
                Some(PutOptions::new().with_lease(lease)),
            )]);
        Ok(self.txn("asking for the go", txn).await?.succeeded())
    }

    /// Deletes the node's queue keys in every rollout but `keep` (a change superseded, or
    /// data to read again).
    async fn leave_others(&mut self, keep: Option<i64>) -> Result<(), RolloutError> {
        let (Some(view), Some(lease)) = (&self.view, &self.lease) else {
            return Ok(());
        };
        let stale: Vec<i64> = view.with(|group| group.places_of(&self.node, lease.id()));
        for revision in stale.into_iter().filter(|r| Some(*r) != keep) {
            info!(
                "rollout of group {}: leaving the rollout of revision {revision} (superseded)",
                self.group
            );
            let key = self.keys.queue(revision, &self.node);
            let txn = Txn::new().and_then([TxnOp::delete(key.as_str(), None)]);
            self.txn("leaving a superseded rollout", txn)
                .await
                .map_err(|e| self.error(e))?;
            // The watch brings the delete later; the view must not count the place now.
            if let Some(view) = &self.view {
                view.forget(&key);
            }
        }
        Ok(())
    }

    /// A request failed for good: a lease etcd no longer has is dropped (the caller queues
    /// again with a new one); anything else is the caller's error.
    fn lease_gone(&mut self, error: EtcdError) -> Result<(), RolloutError> {
        if lease::is_gone(&error) {
            self.lease = None;
            return Ok(());
        }
        Err(self.error(error))
    }

    async fn txn(&self, what: &str, txn: Txn) -> Result<TxnResponse, EtcdError> {
        self.request(what, |etcd| {
            let mut kv = etcd.kv();
            let txn = txn.clone();
            async move { etcd.bounded(kv.txn(txn)).await }
        })
        .await
    }

    /// Runs `attempt` until etcd answers, logging once while it does not.
    async fn request<'a, T, F, Fut>(&'a self, what: &str, attempt: F) -> Result<T, EtcdError>
    where
        F: Fn(&'a Etcd) -> Fut,
        Fut: std::future::Future<Output = Result<T, EtcdError>>,
    {
        let what = format!(
            "rollout of group {}: {what} (the previous file stays until etcd answers)",
            self.group
        );
        let quick = self.etcd.endpoint_count();
        retry_until(&what, quick, EtcdError::is_transient, || {
            attempt(&self.etcd)
        })
        .await
    }

    fn error(&self, source: EtcdError) -> RolloutError {
        RolloutError::Etcd {
            group: self.group.clone(),
            source,
        }
    }

    /// Logs where the node stands: the first time at info, later moves at debug.
    fn say(&self, now: &Waiting, first: bool) {
        match now {
            Waiting::Queued { revision, ahead } if first => info!(
                "rollout of group {}: the change of revision {revision} waits for its turn \
                 ({ahead} node(s) ahead); the previous file stays until then",
                self.group
            ),
            Waiting::Queued { revision, ahead } => debug!(
                "rollout of group {}: revision {revision}: {ahead} node(s) ahead",
                self.group
            ),
            Waiting::Taken { revision } => warn!(
                "rollout of group {}: node name {:?} is already queued for revision \
                 {revision} by another lease (another node with the same --node-name, or \
                 this node's previous run until its lease expires); waiting",
                self.group, self.node
            ),
        }
    }
}
