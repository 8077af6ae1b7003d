//! Consistent reads: the trees of many keys at one etcd revision, in pages of bounded
//! size, so that a render never mixes values from before and after a transaction and a
//! tree of any size can be read.

use etcd_client::{GetOptions, KeyValue, Txn, TxnOp, TxnOpResponse};

use super::client::Etcd;
use super::error::EtcdError;
use super::retry::retry_until;
use super::snapshot::{in_tree_bytes, tree_range, Snapshot};

/// etcd refuses transactions with more operations than this (`--max-txn-ops`, default 128).
const MAX_TXN_OPS: usize = 128;

/// Keys per page of a tree read: a tree of any size is read in requests of bounded size,
/// every page at the revision of the first.
const PAGE_KEYS: i64 = 500;

impl Etcd {
    /// Reads the trees of `keys` (each key and everything below it) at one revision, in
    /// pages. Keys that are not UTF-8 are kept apart in the snapshot: they fail only the
    /// entries whose trees hold them.
    pub async fn snapshot<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a str>,
    ) -> Result<Snapshot, EtcdError> {
        let mut keys: Vec<&str> = keys.into_iter().collect();
        keys.sort_unstable();
        keys.dedup();
        let mut revision = 0;
        let mut pairs = Vec::new();
        for chunk in keys.chunks(MAX_TXN_OPS) {
            let (read_at, pages) = match self.first_pages(chunk, revision).await {
                Err(EtcdError::PermissionDenied { .. }) => {
                    let keys = chunk.iter().map(|k| k.to_string()).collect();
                    return Err(self.refused(keys).await);
                }
                other => other?,
            };
            if revision == 0 {
                revision = read_at;
            }
            for (key, mut page) in chunk.iter().zip(pages) {
                loop {
                    let next = page.next_start();
                    pairs.extend(
                        page.kvs
                            .into_iter()
                            .map(KeyValue::into_key_value)
                            .filter(|(name, _)| in_tree_bytes(key, name)),
                    );
                    let Some(start) = next else { break };
                    page = self.page(start, tree_range(key).1, revision).await?;
                }
            }
        }
        let mut snapshot = Snapshot::at(revision);
        for (key, value) in pairs {
            snapshot.insert_raw(key, value);
        }
        Ok(snapshot)
    }

    /// Finds which of `keys` the user may not read, so the message can name it.
    async fn refused(&self, keys: Vec<String>) -> EtcdError {
        let mut kv = self.kv();
        for key in keys {
            let (start, end) = tree_range(&key);
            let count = GetOptions::new().with_range(end).with_count_only();
            match self.bounded(kv.get(start, Some(count))).await {
                Ok(_) => {}
                Err(EtcdError::PermissionDenied { .. }) => {
                    return self.denied(Some(key));
                }
                Err(other) => return other,
            }
        }
        self.denied(None)
    }

    fn denied(&self, key: Option<String>) -> EtcdError {
        EtcdError::PermissionDenied {
            endpoints: self.endpoints().to_string(),
            user: self.user().map(str::to_string),
            key,
        }
    }

    /// The first page of the tree range of each of `keys` (at `revision`, or the current
    /// one when 0), with the revision read at. One key is one range request; several go
    /// in one transaction. Pairs are moved out of the response, never copied.
    async fn first_pages(
        &self,
        keys: &[&str],
        revision: i64,
    ) -> Result<(i64, Vec<Page>), EtcdError> {
        let mut kv = self.kv();
        if let [key] = keys {
            let (start, end) = tree_range(key);
            let mut response = self
                .bounded(kv.get(start, Some(page_options(end, revision))))
                .await?;
            let read_at = response.header().map_or(0, |h| h.revision());
            let page = Page {
                more: response.more(),
                kvs: response.take_kvs(),
            };
            return Ok((read_at, vec![page]));
        }
        let ops: Vec<TxnOp> = keys
            .iter()
            .map(|key| {
                let (start, end) = tree_range(key);
                TxnOp::get(start, Some(page_options(end, revision)))
            })
            .collect();
        let response = self.bounded(kv.txn(Txn::new().and_then(ops))).await?;
        let read_at = response.header().map_or(0, |h| h.revision());
        let pages = response
            .op_responses()
            .into_iter()
            .map(|op| match op {
                TxnOpResponse::Get(mut get) => Page {
                    more: get.more(),
                    kvs: get.take_kvs(),
                },
                _ => Page::default(),
            })
            .collect();
        Ok((read_at, pages))
    }

    /// The page of `[start, end)` at `revision`.
    async fn page(&self, start: Vec<u8>, end: Vec<u8>, revision: i64) -> Result<Page, EtcdError> {
        let mut response = self
            .bounded(self.kv().get(start, Some(page_options(end, revision))))
            .await?;
        Ok(Page {
            more: response.more(),
            kvs: response.take_kvs(),
        })
    }

    /// [`Self::snapshot`], retried with backoff while it fails, for as long as it is polled
    /// (logging only the change of state, not every attempt): a daemon keeps its files and
    /// waits for etcd.
    pub async fn snapshot_retrying(&self, keys: &[&str]) -> Snapshot {
        let read = || self.snapshot(keys.iter().copied());
        let quick = self.endpoint_count();
        let retried = retry_until("reading etcd", quick, |_| true, read).await;
        let Ok(snapshot) = retried else {
            unreachable!("every failed read is retried")
        };
        snapshot
    }
}

/// One page of a range read.
#[derive(Default)]
struct Page {
    kvs: Vec<KeyValue>,
    /// etcd has more pairs in the range after these.
    more: bool,
}

impl Page {
    /// Where the next page starts (right after the last key), when there is one.
    fn next_start(&self) -> Option<Vec<u8>> {
        let last = self.kvs.last().filter(|_| self.more)?;
        let mut start = last.key().to_vec();
        start.push(0);
        Some(start)
    }
}

/// A page of at most [`PAGE_KEYS`] pairs up to `end`, at `revision` (0: the current one).
fn page_options(end: Vec<u8>, revision: i64) -> GetOptions {
    let options = GetOptions::new().with_range(end).with_limit(PAGE_KEYS);
    if revision > 0 {
        options.with_revision(revision)
    } else {
        options
    }
}
