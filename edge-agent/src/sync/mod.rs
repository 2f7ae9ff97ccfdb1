//! Offline-first sync with the cloud PostgreSQL (docs/sync.md), as this kitchen's own database
//! role with the tenant set in every transaction:
//!
//! - **up**: the records head office receives, read from the event log (written in the
//!   transaction of each change) after the push cursor, are pushed in batches, idempotently
//!   (`ON CONFLICT` on their edge-made ids); the cursor moves only after the PostgreSQL commit,
//!   and reaches the store every few minutes (a crash pushes again from there); a heartbeat
//!   upserts the box's `devices` row;
//! - **down**: the reference data version is polled and a new version is validated and swapped
//!   in (cache, counts, displays); orders the queue may have missed are asked for and applied
//!   like deliveries (de-duplicated by event id); on a new card, the kitchen's open orders and
//!   what its own records did to them are put back first, once.
//!
//! One task; PostgreSQL unreachable means backoff (1 s → 60 s, jittered) and nothing else: the
//! LAN path never waits on it. A kick (`status::SyncKick`, from the fleet's commands) ends a
//! pause, idle or backoff, at once and makes the next round pull the reference data or
//! reconcile then, not when due; the kick hears when that round finished and how.

use std::{
    sync::{Arc, Mutex, atomic::Ordering},
    time::Duration,
};

use kitchen_daemon::{
    backoff::{Backoff, Spread},
    sync::LockExt,
};
use sqlx::{
    PgPool, Postgres, Transaction,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use tokio_util::sync::CancellationToken;

mod otter;
mod pull;
mod push;
mod reconcile;
mod recover;

pub use push::PushRows;
pub use recover::RECOVERY_HOURS;

use crate::{
    status::{FeedStats, ReferenceCell, SyncKick, SyncStats},
    store::{Store, StoreError},
    writer::StoreWriter,
};

/// Bound on one round (a batch, a heartbeat, a reference check or a reconciliation).
const ROUND_TIMEOUT: Duration = Duration::from_secs(30);
const HEARTBEAT: Duration = Duration::from_secs(30);
/// Pause when there is nothing to push.
const IDLE: Duration = Duration::from_millis(500);
/// How often the state of the relay's Otter calls is read back.
const CALLS_EVERY: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Missed events asked for per call.
const RECONCILE_PAGE: i32 = 500;
/// How often the push cursor is written to the store when it moved: a commit (and its fsync)
/// of its own, so not after every push. A crash loses at most this much of it, and the sync
/// pushes those records again, which changes nothing in PostgreSQL.
const CURSOR_EVERY: Duration = Duration::from_secs(300);

pub struct SyncTask {
    pub kitchen_id: String,
    pub agent_version: String,
    pub pool: PgPool,
    pub store_path: std::path::PathBuf,
    pub writer: StoreWriter,
    pub feed: Arc<FeedStats>,
    pub stats: Arc<SyncStats>,
    pub reference: Arc<ReferenceCell>,
    /// Outbox records pushed per transaction (`sync_batch`).
    pub push_limit: i64,
    pub reference_poll: Duration,
    pub reconcile_every: Duration,
    /// Work asked for now (the fleet's commands).
    pub kick: Arc<SyncKick>,
    pub token: CancellationToken,
}

/// A lazy pool to the cloud database: nothing connects until the sync asks. `options` are the
/// config's checked ones (`Config::links`: `verify-full` off the box, the CA bundle added).
pub fn pool(options: PgConnectOptions) -> PgPool {
    PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options)
}

#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error("postgresql: {0}")]
    Db(#[from] sqlx::Error),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("the store writer stopped")]
    WriterGone,
    #[error("timed out")]
    Timeout,
}

impl From<crate::writer::WriteError> for SyncError {
    fn from(error: crate::writer::WriteError) -> Self {
        match error {
            crate::writer::WriteError::Store(error) => Self::Store(error),
            crate::writer::WriteError::Gone => Self::WriterGone,
        }
    }
}

impl SyncTask {
    pub async fn run(self) {
        self.stats.configured.store(true, Ordering::Relaxed);
        let reader = match Store::open_reader(&self.store_path) {
            Ok(reader) => Arc::new(Mutex::new(reader)),
            Err(error) => {
                tracing::error!(%error, "sync cannot read the store; not syncing");
                // Nothing will recover: the feed must not wait for it.
                self.stats.recovery_pending.store(false, Ordering::Relaxed);
                return;
            }
        };
        let mut backoff =
            Backoff::new(Duration::from_secs(1), MAX_BACKOFF).with_spread(Spread::AROUND_BASE);
        let now = tokio::time::Instant::now();
        let (mut heartbeat_at, mut reference_at, mut reconcile_at) = (now, now, now);
        let mut calls_at = now;
        let mut cursor_at = now;
        let mut saved = self.stats.pushed();
        // What the last heartbeat reported: a drained backlog or a feed that came or went is
        // told at once, not up to 30 s later.
        let mut reported_backlog = 0;
        let mut reported_feed = None;
        let mut gaps_seen = self.feed.gaps.load(Ordering::Relaxed);
        let mut feed_was_connected = self.feed.connected.load(Ordering::Relaxed);
        loop {
            // Reconcile now on a new sequence gap or when the feed has come back.
            let gaps = self.feed.gaps.load(Ordering::Relaxed);
            let feed_connected = self.feed.connected.load(Ordering::Relaxed);
            if gaps != gaps_seen || (feed_connected && !feed_was_connected) {
                reconcile_at = tokio::time::Instant::now();
            }
            gaps_seen = gaps;
            feed_was_connected = feed_connected;
            let asked = self.kick.take();
            if asked.reference {
                reference_at = tokio::time::Instant::now();
            }
            if asked.reconcile {
                reconcile_at = tokio::time::Instant::now();
            }
            let round = async {
                let now = tokio::time::Instant::now();
                if now >= reference_at {
                    self.pull_reference().await?;
                    reference_at = now + self.reference_poll;
                }
                // A new card: the kitchen's open orders back before anything else is asked.
                if self.stats.recovery_pending.load(Ordering::Relaxed) {
                    self.recover().await?;
                }
                if now >= reconcile_at {
                    self.reconcile(&reader).await?;
                    reconcile_at = now + self.reconcile_every;
                }
                let pushed = self.push(&reader).await?;
                if now >= cursor_at {
                    saved = self.save_cursor(saved).await?;
                    cursor_at = now + CURSOR_EVERY;
                }
                if now >= calls_at {
                    self.pull_calls(&reader).await?;
                    calls_at = now + CALLS_EVERY;
                }
                let drained = pushed < self.push_limit as usize && reported_backlog > 0;
                let feed = Some(self.feed.connected.load(Ordering::Relaxed));
                if now >= heartbeat_at || drained || feed != reported_feed {
                    reported_backlog = self.heartbeat(&reader).await?;
                    reported_feed = feed;
                    heartbeat_at = now + HEARTBEAT;
                }
                Ok::<_, SyncError>(pushed)
            };
            let result = tokio::select! {
                result = tokio::time::timeout(ROUND_TIMEOUT, round) => {
                    result.unwrap_or(Err(SyncError::Timeout))
                }
                () = self.token.cancelled() => return self.stop().await,
            };
            self.kick
                .finish(&asked, result.as_ref().err().map(ToString::to_string));
            let pause = match result {
                Ok(pushed) => {
                    if !self.stats.connected.swap(true, Ordering::Relaxed) {
                        tracing::info!("sync connected to postgresql");
                    }
                    backoff.reset();
                    if pushed < self.push_limit as usize {
                        IDLE
                    } else {
                        Duration::ZERO
                    }
                }
                Err(SyncError::WriterGone) => return,
                Err(error) => {
                    let error = error.to_string();
                    if self.stats.fail(&error) {
                        tracing::warn!(%error, "sync cannot reach postgresql; records wait in the outbox");
                    }
                    backoff.next_delay()
                }
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = self.kick.wanted() => {}
                () = self.token.cancelled() => return self.stop().await,
            }
        }
    }

    /// Writes the push cursor to the store if it moved since `saved`; what is saved now.
    async fn save_cursor(&self, saved: i64) -> Result<i64, SyncError> {
        let pushed = self.stats.pushed();
        if pushed > saved {
            self.writer.set_pushed_through(pushed).await?;
        }
        Ok(pushed.max(saved))
    }

    /// On the way out: the cursor written, so a restart does not push those records again (if
    /// the writer is already gone, it will, which changes nothing).
    async fn stop(&self) {
        let pushed = self.stats.pushed();
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            self.writer.set_pushed_through(pushed),
        )
        .await;
    }

    /// A transaction as this kitchen.
    async fn begin(&self) -> Result<Transaction<'static, Postgres>, SyncError> {
        let mut tx = self.pool.begin().await?;
        kitchen_cloud_schema::set_tenant(&mut tx, &self.kitchen_id).await?;
        Ok(tx)
    }
}

/// Runs a read on the sync's own SQLite connection, off the async threads.
async fn read<T: Send + 'static>(
    reader: &Arc<Mutex<Store>>,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, SyncError> {
    let reader = reader.clone();
    tokio::task::spawn_blocking(move || f(&reader.lock_or_recover()))
        .await
        .map_err(|_| SyncError::WriterGone)?
        .map_err(SyncError::Store)
}
