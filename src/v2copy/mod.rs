//! `reconfig migrate --data-from-v2`: the etcd v2 keyspace that reconfig.rb read, copied
//! into v3 at the same paths, so that reconfig renders from the data reconfig.rb rendered
//! from. A v2 directory has no value and becomes no v3 key: its keys keep their full
//! paths, which is what reconfig's recursive entries read as a tree. Values are copied byte
//! for byte, keys with a TTL go on a v3 lease that ends with them. The copy is read back
//! and compared; `--follow` then keeps copying every v2 change until SIGINT or SIGTERM.
//!
//! The parts, each with one job: `api` speaks the v2 HTTP API (read a tree, watch it),
//! `tree` turns a v2 tree into keys and tells what brings a copy in step with a newer tree,
//! `batch` sends v3 requests as transactions, `write` puts and deletes keys with their
//! leases, `verify` reads the copy back and compares, `follow` copies the changes; `error`
//! says why a copy could not run.
//!
//! v2 hidden keys (a name starting with `_`) are not copied: the v2 API leaves them out of
//! every recursive read and watch, so reconfig.rb's templates never saw them either.

mod api;
mod batch;
mod error;
mod follow;
mod tree;
mod verify;
mod write;

use std::collections::{BTreeMap, BTreeSet};

use tokio::time::Instant;

use crate::etcd::{Connection, Etcd};
use crate::exit::Exit;
use api::V2;
pub use error::CopyError;
use tree::{Copied, Tree};
use write::{Patience, Writer};

/// What to copy: the v2 server, the tree in it, and whether to follow its changes.
#[derive(Debug, Clone)]
pub struct Source {
    /// The v2 server's URL (`http://host:port` or `https://...`).
    pub url: String,
    /// The v2 key or directory to copy, with everything below it.
    pub prefix: String,
    /// After the copy, keep copying every change until SIGINT or SIGTERM.
    pub follow: bool,
}

/// Copies the tree, reads it back, prints one line per key that does not match and a
/// summary, and then follows the changes when asked to (only after a copy that matches).
pub async fn copy(source: &Source, connect: &Connection) -> Result<Exit, CopyError> {
    let prefix = match source.prefix.trim_end_matches('/') {
        "" => "/",
        trimmed => trimmed,
    };
    let v2 = V2::new(&source.url, connect.connect_timeout, || {
        connect.client_tls()
    })?;
    let read = v2.read(prefix).await?;
    let writer = Writer::new(Etcd::connect(connect).await?);
    let mut copied = Tree::default();
    let refused = writer
        .sync(&mut copied, prefix, Tree::of(&read), Patience::Within)
        .await?;
    let refused_keys: BTreeSet<&String> = refused.iter().map(|r| &r.key).collect();
    let written: BTreeMap<String, Copied> = copied
        .keys
        .iter()
        .filter(|(key, _)| !refused_keys.contains(key))
        .map(|(key, copy)| (key.clone(), copy.clone()))
        .collect();
    let (found, unreadable) = verify::read_back(writer.etcd(), written.keys()).await?;
    let verdict = verify::compare(&written, &found, Instant::now());
    for refusal in &refused {
        println!("{}: not written: {}", refusal.key, refusal.error);
    }
    for mismatch in unreadable.iter().chain(&verdict.mismatches) {
        println!("{mismatch}");
    }
    let differ = refused.len() + unreadable.len() + verdict.mismatches.len();
    let with_ttl = copied.keys.values().filter(|c| c.expires.is_some()).count();
    println!(
        "{} keys under {prefix} copied from etcd v2 at {} to v3 at {} ({with_ttl} with a TTL): \
         {} match, {} expired since, {differ} do not",
        copied.keys.len(),
        v2.url(),
        writer.etcd().endpoints(),
        verdict.matching,
        verdict.expired,
    );
    if differ > 0 {
        return Ok(Exit::Failed);
    }
    if !source.follow {
        return Ok(Exit::Ok);
    }
    follow::follow(&v2, &writer, copied, prefix, read.index + 1).await
}
