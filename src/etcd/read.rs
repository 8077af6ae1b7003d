//! Consistent reads: the trees of many keys at one etcd revision, in pages of bounded
//! size, so that a render never mixes values from before and after a transaction and a
//! tree of any size can be read.

use etcd_client::{GetOptions, KeyValue, Txn, TxnOp, TxnOpResponse};

use super::client::Etcd;
use super::error::EtcdError;
use super::retry::retry_until;
use super::snapshot::{in_tree_bytes, tree_range, Snapshot};

/// etcd refuses transactions with more operations than this (`--max-txn-ops`, default 128).
pub(crate) const MAX_TXN_OPS: usize = 128;

/// Keys in the first page of a tree: few enough that the page fits in one gRPC message
/// (2 GiB) even if every value is as large as etcd allows (1.5 MiB by default).
const FIRST_PAGE_KEYS: i64 = 500;

/// Bytes aimed at by each later page, sized from the pairs read so far. Few, large pages
/// matter: etcd 3.4 counts the whole rest of the range at every page, so a 20,000-key
/// tree read 500 keys at a time takes twice as long as in one request.
const PAGE_BYTES: usize = 64 << 20;

/// The most keys in one page, whatever their size.
const MAX_PAGE_KEYS: i64 = 100_000;

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
                let mut size = PageSize::default();
                loop {
                    let next = page.next_start();
                    size.saw(page.kvs.iter().map(|kv| kv.key().len() + kv.value().len()));
                    pairs.extend(
                        page.kvs
                            .into_iter()
                            .map(KeyValue::into_key_value)
                            .filter(|(name, _)| in_tree_bytes(key, name)),
                    );
                    let Some(start) = next else { break };
                    let end = tree_range(key).1;
                    page = self.page(start, end, revision, size.next()).await?;
                }
            }
        }
        Ok(Snapshot::from_raw(revision, pairs))
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
                .bounded(kv.get(start, Some(page_options(end, revision, FIRST_PAGE_KEYS))))
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
                TxnOp::get(start, Some(page_options(end, revision, FIRST_PAGE_KEYS)))
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

    /// The page of `[start, end)` at `revision`, of at most `limit` keys; of
    /// [`FIRST_PAGE_KEYS`] when the larger one is too large for one message.
    async fn page(
        &self,
        start: Vec<u8>,
        end: Vec<u8>,
        revision: i64,
        limit: i64,
    ) -> Result<Page, EtcdError> {
        let read = |limit| {
            let (mut kv, start) = (self.kv(), start.clone());
            let options = page_options(end.clone(), revision, limit);
            async move { self.bounded(kv.get(start, Some(options))).await }
        };
        let mut response = match read(limit).await {
            Err(e) if e.is_too_large() && limit > FIRST_PAGE_KEYS => read(FIRST_PAGE_KEYS).await?,
            read => read?,
        };
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

/// The size of a tree's next page, from the pairs of its pages so far.
#[derive(Default)]
struct PageSize {
    keys: usize,
    bytes: usize,
}

impl PageSize {
    /// Counts the pairs of a page, by their sizes (key and value).
    fn saw(&mut self, sizes: impl Iterator<Item = usize>) {
        for size in sizes {
            self.keys += 1;
            self.bytes += size;
        }
    }

    /// Keys for about [`PAGE_BYTES`] at the average size so far.
    fn next(&self) -> i64 {
        let average = (self.bytes / self.keys.max(1)).max(1);
        let keys = i64::try_from(PAGE_BYTES / average).unwrap_or(MAX_PAGE_KEYS);
        keys.clamp(FIRST_PAGE_KEYS, MAX_PAGE_KEYS)
    }
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

/// A page of at most `limit` pairs up to `end`, at `revision` (0: the current one).
fn page_options(end: Vec<u8>, revision: i64, limit: i64) -> GetOptions {
    let options = GetOptions::new().with_range(end).with_limit(limit);
    if revision > 0 {
        options.with_revision(revision)
    } else {
        options
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(n: usize, bytes: usize) -> impl Iterator<Item = usize> {
        std::iter::repeat_n(bytes, n)
    }

    #[test]
    fn later_pages_hold_about_page_bytes_within_bounds() {
        let mut small = PageSize::default();
        small.saw(pairs(500, 50));
        assert_eq!(small.next(), MAX_PAGE_KEYS);

        let mut medium = PageSize::default();
        medium.saw(pairs(500, 64 * 1024));
        assert_eq!(medium.next(), 1024);

        let mut large = PageSize::default();
        large.saw(pairs(10, 1536 * 1024));
        assert_eq!(large.next(), FIRST_PAGE_KEYS);

        assert_eq!(PageSize::default().next(), MAX_PAGE_KEYS);
    }
}
