//! The watch loop: one gRPC watch stream for the whole process, one watch per distinct
//! key on it, and the revision bookkeeping that makes a lost update impossible.
//!
//! [`WatchLoop`] owns the per-watch state (the range and the revision its history resumes
//! at) and one stream's life: it opens the stream with a fresh auth token, creates the
//! watches one at a time and files each under the id etcd answers with (so it works behind
//! `etcd grpc-proxy`, which numbers watches itself), joins fragments, and hands whole
//! revisions to a [`Sink`]. When the stream breaks (member killed, network gone, cluster
//! down, a token that expired), it is re-opened with capped exponential backoff and every
//! watch resumes at exactly the revision after the last one delivered; progress
//! notifications move a quiet watch's resume point forward, so it does not fall behind
//! compaction. When that revision has been compacted anyway, the sink decides what to do
//! (the daemon re-reads the tree; etcd-util says what was lost) and the watch goes on.
//!
//! A stream whose server stops answering is abandoned like a broken one (`liveness`);
//! the reconnect goes to another endpoint, since the one that failed is left behind.
//!
//! The stream counts as up once every watch was created and it stayed open for
//! [`STABLE`]: a stream that breaks again right after it is re-created is down, and the
//! backoff keeps growing instead of retrying ten times a second.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::time::Duration;

use etcd_client::proto::{PbEvent, PbWatchResponse};
use etcd_client::{WatchOptions, WatchStream};
use futures_util::FutureExt;
use tokio::time::Instant;
use tracing::debug;

use super::liveness::Liveness;
use crate::etcd::client::Etcd;
use crate::etcd::error::EtcdError;
use crate::etcd::retry::Backoff;
use crate::etcd::snapshot::{escape_key, tree_range};

/// How long a re-created stream must stay open before it counts as up again.
pub const STABLE: Duration = Duration::from_secs(1);

/// One watched key range and the revision its history resumes at.
#[derive(Debug, Clone)]
pub struct Range {
    /// First key of the range.
    pub start: Vec<u8>,
    /// End of the range (exclusive); empty for the single key `start`.
    pub end: Vec<u8>,
    /// The revision after the last one delivered (0: from the revision current when the
    /// watch is first created).
    pub next: i64,
}

impl Range {
    /// The range of `key`'s tree, from revision `next`.
    pub fn tree(key: &str, next: i64) -> Range {
        let (start, end) = tree_range(key);
        Range { start, end, next }
    }

    /// Whether `key` lies in the range.
    fn holds(&self, key: &[u8]) -> bool {
        if self.end.is_empty() {
            key == self.start
        } else {
            self.start.as_slice() <= key && key < self.end.as_slice()
        }
    }

    fn options(&self) -> WatchOptions {
        let mut options = WatchOptions::new().with_progress_notify().with_fragment();
        if !self.end.is_empty() {
            options = options.with_range(self.end.clone());
        }
        if self.next > 0 {
            options = options.with_start_revision(self.next);
        }
        options
    }
}

/// Where a [`WatchLoop`] delivers.
pub trait Sink {
    /// Events of watch `index`, whole revisions in order, all inside its range.
    fn events(&mut self, index: usize, events: Vec<PbEvent>);

    /// Every response waiting on the stream has been handed over (or the stream broke):
    /// the moment to act on them together.
    fn flush(&mut self);

    /// etcd no longer holds watch `index`'s history from revision `from` (the oldest it
    /// keeps is `oldest`); returns the revision to resume at.
    fn compacted(
        &mut self,
        index: usize,
        from: i64,
        oldest: i64,
    ) -> impl Future<Output = Result<i64, EtcdError>> + Send;

    /// The stream became established (`None`) or broke (`Some(why)`); called on changes
    /// of state only, never for every failed attempt.
    fn state(&mut self, broken: Option<&SessionError>);
}

/// Why a watch stream ended; the loop reconnects after any of these.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// etcd could not be reached, or refused the stream or the token.
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    /// etcd ended the stream.
    #[error("watch stream closed by etcd")]
    Closed,
    /// The stream brought nothing and its server did not answer a check.
    #[error("silent watch stream: {0}")]
    Silent(EtcdError),
    /// etcd canceled a watch for another reason than compaction (permissions, an invalid
    /// auth token, no leader): a new stream with a fresh token is the remedy.
    #[error("watch on {key} canceled by etcd: {reason}")]
    Canceled {
        /// The watched key, escaped.
        key: String,
        /// etcd's reason.
        reason: String,
    },
    /// A response that fits no request: trusting it could file events under the wrong key.
    #[error("etcd sent {what}; reconnecting")]
    Unexpected {
        /// What arrived.
        what: String,
    },
}

/// A watch loop over `ranges`, delivering into a sink.
pub struct WatchLoop<'a, S> {
    /// The shared connection.
    etcd: &'a Etcd,
    /// Every watched range with its resume revision; survives every reconnect.
    ranges: Vec<Range>,
    /// Where events go.
    sink: S,
    /// Delay before the next attempt; reset once a stream proved stable.
    backoff: Backoff,
    /// Whether the sink was last told the stream is up.
    up: bool,
}

/// One stream's bookkeeping, dropped with the stream.
struct Session {
    stream: WatchStream,
    /// The endpoint serving the stream.
    endpoint: usize,
    /// etcd's watch id → index of the range.
    ids: HashMap<i64, usize>,
    /// The range whose create request awaits its answer (one at a time, so each answer
    /// belongs to the one request in flight, whoever numbers the watches).
    in_flight: Option<usize>,
    /// Ranges still to create on this stream.
    queue: VecDeque<usize>,
    /// Events of responses etcd split into fragments, by watch id.
    partial: HashMap<i64, Vec<PbEvent>>,
    /// When the stream will count as up: every watch created and `STABLE` gone by.
    stable_at: Option<Instant>,
}

impl<'a, S: Sink> WatchLoop<'a, S> {
    /// A loop over `ranges` (non-empty) on the connection `etcd`, which is up.
    pub fn new(etcd: &'a Etcd, ranges: Vec<Range>, sink: S) -> Self {
        WatchLoop {
            etcd,
            ranges,
            sink,
            backoff: Backoff::new(etcd.endpoint_count()),
            up: true,
        }
    }

    /// Watches for as long as it is polled (drop it to stop).
    pub async fn run(mut self) {
        if self.ranges.is_empty() {
            return std::future::pending().await;
        }
        loop {
            let ended = self.session().await;
            self.sink.flush();
            if self.up {
                self.up = false;
                self.sink.state(Some(&ended));
            } else {
                debug!("watch still down: {ended}");
            }
            tokio::time::sleep(self.backoff.next_delay()).await;
        }
    }

    /// One stream's life: a fresh token, the watches created one by one, then responses
    /// until the stream breaks.
    async fn session(&mut self) -> SessionError {
        match self.stream().await {
            Ok(never) => match never {},
            Err(e) => e,
        }
    }

    async fn stream(&mut self) -> Result<std::convert::Infallible, SessionError> {
        self.etcd.refresh_auth().await?;
        let endpoint = self.etcd.current_endpoint();
        let mut client = self.etcd.watch_client();
        let first = &self.ranges[0];
        let stream = self
            .etcd
            .bounded_at(
                endpoint,
                client.watch(first.start.clone(), Some(first.options())),
            )
            .await?;
        let mut liveness = Liveness::of_stream(self.etcd, endpoint, &first.start);
        let mut session = Session {
            stream,
            endpoint,
            ids: HashMap::new(),
            in_flight: Some(0),
            queue: (1..self.ranges.len()).collect(),
            partial: HashMap::new(),
            stable_at: None,
        };
        loop {
            let stable_at = session.stable_at;
            let response = tokio::select! {
                message = session.stream.message() => message,
                () = sleep_until(stable_at), if stable_at.is_some() => {
                    session.stable_at = None;
                    self.stable();
                    continue;
                }
                silent = liveness.dead() => return Err(SessionError::Silent(silent)),
            };
            liveness.heard();
            let mut response = Some(response);
            while let Some(message) = response {
                let message = message
                    .map_err(|e| self.etcd.stream_error(session.endpoint, e))?
                    .ok_or(SessionError::Closed)?;
                self.handle(&mut session, message.0).await?;
                response = session.stream.message().now_or_never();
            }
            self.sink.flush();
        }
    }

    /// The stream stayed open with every watch created: it is up.
    fn stable(&mut self) {
        self.backoff.reset();
        if !self.up {
            self.up = true;
            self.sink.state(None);
        }
    }

    /// Books one response.
    async fn handle(
        &mut self,
        session: &mut Session,
        mut response: PbWatchResponse,
    ) -> Result<(), SessionError> {
        if response.created {
            let index = session
                .in_flight
                .take()
                .ok_or_else(|| unexpected("a watch created that was not asked for"))?;
            if response.canceled {
                return self.canceled(session, index, &response).await;
            }
            session.ids.insert(response.watch_id, index);
            let range = &mut self.ranges[index];
            if range.next == 0 {
                range.next = response.header.map_or(0, |h| h.revision) + 1;
            }
            return self.create_next(session).await;
        }
        let Some(&index) = session.ids.get(&response.watch_id) else {
            debug!("response for watch id {} ignored", response.watch_id);
            return Ok(());
        };
        if response.canceled {
            session.ids.remove(&response.watch_id);
            return self.canceled(session, index, &response).await;
        }
        if response.fragment {
            session
                .partial
                .entry(response.watch_id)
                .or_default()
                .append(&mut response.events);
            return Ok(());
        }
        let mut events = session
            .partial
            .remove(&response.watch_id)
            .unwrap_or_default();
        events.append(&mut response.events);
        let range = &mut self.ranges[index];
        let Some(last) = events.last() else {
            // A progress notification: every event up to its revision was delivered.
            let revision = response.header.map_or(0, |h| h.revision);
            range.next = range.next.max(revision + 1);
            debug!(
                "watch of {} at revision {revision} (progress)",
                escape_key(&range.start)
            );
            return Ok(());
        };
        let last = last.kv.as_ref().map_or(0, |kv| kv.mod_revision);
        let outside = events
            .iter()
            .filter_map(|e| e.kv.as_ref())
            .find(|kv| !range.holds(&kv.key));
        if let Some(kv) = outside {
            return Err(unexpected(format!(
                "key {} on the watch of {}",
                escape_key(&kv.key),
                escape_key(&range.start)
            )));
        }
        range.next = range.next.max(last + 1);
        self.sink.events(index, events);
        Ok(())
    }

    /// A canceled watch: compaction makes the sink catch up and the watch is created
    /// again; anything else ends the stream.
    async fn canceled(
        &mut self,
        session: &mut Session,
        index: usize,
        response: &PbWatchResponse,
    ) -> Result<(), SessionError> {
        let range = &self.ranges[index];
        if response.compact_revision <= 0 {
            return Err(SessionError::Canceled {
                key: escape_key(&range.start),
                reason: response.cancel_reason.clone(),
            });
        }
        let from = range.next;
        let next = self
            .sink
            .compacted(index, from, response.compact_revision)
            .await?;
        self.ranges[index].next = next;
        session.queue.push_back(index);
        self.create_next(session).await
    }

    /// Sends the next create request unless one is in flight; once none is left, the
    /// stream starts proving it is stable.
    async fn create_next(&mut self, session: &mut Session) -> Result<(), SessionError> {
        if session.in_flight.is_some() {
            return Ok(());
        }
        let Some(index) = session.queue.pop_front() else {
            if session.ids.len() == self.ranges.len() {
                session.stable_at = Some(Instant::now() + STABLE);
            }
            return Ok(());
        };
        let range = &self.ranges[index];
        session
            .stream
            .watch(range.start.clone(), Some(range.options()))
            .await
            .map_err(|e| self.etcd.stream_error(session.endpoint, e))?;
        session.in_flight = Some(index);
        Ok(())
    }
}

fn unexpected(what: impl Into<String>) -> SessionError {
    SessionError::Unexpected { what: what.into() }
}

/// Sleeps until `at`; never returns for `None` (the branch is disabled then anyway).
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
