//! Offline-first sync with the cloud PostgreSQL (docs/sync.md), as this kitchen's own database
//! role with the tenant set in every transaction:
//!
//! - **up**: the records in the SQLite outbox (written in the transaction of each change) are
//!   pushed in batches, idempotently (`ON CONFLICT` on their edge-made ids), and deleted from
//!   the outbox only after the PostgreSQL commit; a heartbeat upserts the box's `devices` row;
//! - **down**: the reference data version is polled and a new version is validated and swapped
//!   in (cache, counts, displays); orders the queue may have missed are asked for and applied
//!   like deliveries (de-duplicated by event id).
//!
//! One task; PostgreSQL unreachable means backoff (1 s → 60 s, jittered) and nothing else: the
//! LAN path never waits on it.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering},
    },
    time::Duration,
};

use kitchen_proto::{
    OrderEvent,
    reference::{DayPart, Item, Reference, Station, Store as StoreRef},
};
use prost::Message;
use serde_json::Value;
use sqlx::{Executor, PgPool, Postgres, Row, Transaction, postgres::PgPoolOptions};
use tokio_util::sync::CancellationToken;

use crate::{
    feed::FeedStats,
    http::{ReferenceCell, ReferenceStatus},
    store::{OutboxRow, Store, StoreError},
    writer::{StoreWriter, now_ms},
};

/// Bound on one round (a batch, a heartbeat, a reference check or a reconciliation).
const ROUND_TIMEOUT: Duration = Duration::from_secs(30);
const HEARTBEAT: Duration = Duration::from_secs(30);
/// Pause when there is nothing to push.
const IDLE: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Missed events asked for per call.
const RECONCILE_PAGE: i32 = 500;

/// What `/readyz`, `/metrics` and the displays show of the sync.
#[derive(Debug, Default)]
pub struct SyncStats {
    pub configured: AtomicBool,
    pub connected: AtomicBool,
    pub pushed: AtomicU64,
    pub reconciled: AtomicU64,
    /// The reference version in use from PostgreSQL (0: none yet).
    pub reference_version: AtomicI64,
    pub last_error: Mutex<Option<String>>,
}

impl SyncStats {
    fn fail(&self, error: &str) -> bool {
        let was = self.connected.swap(false, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error.to_owned());
        was
    }
}

pub struct Sync {
    pub kitchen_id: String,
    pub agent_version: String,
    pub pool: PgPool,
    pub store_path: std::path::PathBuf,
    pub writer: StoreWriter,
    pub feed: Arc<FeedStats>,
    pub stats: Arc<SyncStats>,
    pub reference: Arc<ReferenceCell>,
    pub batch: i64,
    pub reference_poll: Duration,
    pub reconcile_every: Duration,
    pub token: CancellationToken,
}

/// A lazy pool to the cloud database: nothing connects until the sync asks.
pub fn pool(url: &str) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy(url)
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

impl Sync {
    pub async fn run(self) {
        self.stats.configured.store(true, Ordering::Relaxed);
        let reader = match Store::open_reader(&self.store_path) {
            Ok(reader) => Arc::new(Mutex::new(reader)),
            Err(error) => {
                tracing::error!(%error, "sync cannot read the store; not syncing");
                return;
            }
        };
        let mut backoff = Duration::from_secs(1);
        let now = tokio::time::Instant::now();
        let (mut heartbeat_at, mut reference_at, mut reconcile_at) = (now, now, now);
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
            let round = async {
                let now = tokio::time::Instant::now();
                if now >= reference_at {
                    self.pull_reference().await?;
                    reference_at = now + self.reference_poll;
                }
                if now >= reconcile_at {
                    self.reconcile(&reader).await?;
                    reconcile_at = now + self.reconcile_every;
                }
                let pushed = self.push(&reader).await?;
                let drained = pushed < self.batch as usize && reported_backlog > 0;
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
                () = self.token.cancelled() => return,
            };
            let pause = match result {
                Ok(pushed) => {
                    if !self.stats.connected.swap(true, Ordering::Relaxed) {
                        tracing::info!("sync connected to postgresql");
                    }
                    backoff = Duration::from_secs(1);
                    if pushed < self.batch as usize {
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
                    let pause = jitter(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    pause
                }
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = self.token.cancelled() => return,
            }
        }
    }

    /// A transaction as this kitchen.
    async fn begin(&self) -> Result<Transaction<'static, Postgres>, SyncError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT set_config('kitchen.id', $1, true)")
            .bind(&self.kitchen_id)
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    /// Pushes one batch of the outbox; the number of records pushed.
    async fn push(&self, reader: &Arc<Mutex<Store>>) -> Result<usize, SyncError> {
        let limit = self.batch;
        let rows = read(reader, move |store| store.outbox_batch(limit)).await?;
        let Some(last) = rows.last().map(|row| row.seq) else {
            return Ok(0);
        };
        let batch = PgBatch::from_rows(&rows);
        let mut tx = self.begin().await?;
        batch.insert(&mut tx, &self.kitchen_id).await?;
        tx.commit().await?;
        self.writer.delete_synced(last).await?;
        self.stats
            .pushed
            .fetch_add(rows.len() as u64, Ordering::Relaxed);
        Ok(rows.len())
    }

    /// Upserts the box's `devices` row; the backlog it reported.
    async fn heartbeat(&self, reader: &Arc<Mutex<Store>>) -> Result<i64, SyncError> {
        let ((backlog, oldest), gaps) = read(reader, |store| {
            Ok((store.outbox_backlog()?, store.sequence_gaps()?))
        })
        .await?;
        let gaps: Vec<Value> = gaps
            .iter()
            .map(|g| serde_json::json!({"store_id": g.store_id, "from": g.from, "to": g.to}))
            .collect();
        let feed = if self.feed.connected.load(Ordering::Relaxed) {
            "connected"
        } else {
            "disconnected"
        };
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO kitchen.devices (kitchen_id, agent_version, last_seen, feed_state,
                                          unsynced_backlog, oldest_unsynced_at, sequence_gaps)
             VALUES ($1, $2, now(), $3, $4, to_timestamp($5::bigint / 1000.0), $6::jsonb)
             ON CONFLICT (kitchen_id) DO UPDATE SET
                 agent_version = EXCLUDED.agent_version, last_seen = EXCLUDED.last_seen,
                 feed_state = EXCLUDED.feed_state, unsynced_backlog = EXCLUDED.unsynced_backlog,
                 oldest_unsynced_at = EXCLUDED.oldest_unsynced_at,
                 sequence_gaps = EXCLUDED.sequence_gaps",
        )
        .bind(&self.kitchen_id)
        .bind(&self.agent_version)
        .bind(feed)
        .bind(backlog)
        .bind(oldest)
        .bind(Value::Array(gaps).to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(backlog)
    }

    /// Swaps in the kitchen's reference data when PostgreSQL has a version this box has not
    /// applied. A version that does not validate is refused (and said so) once.
    async fn pull_reference(&self) -> Result<(), SyncError> {
        let current = self.stats.reference_version.load(Ordering::Relaxed);
        // One snapshot for the version and every table: the isolation level must be the
        // transaction's first statement.
        let mut tx = self.pool.begin().await?;
        tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await?;
        sqlx::query("SELECT set_config('kitchen.id', $1, true)")
            .bind(&self.kitchen_id)
            .execute(&mut *tx)
            .await?;
        let version: Option<i64> = sqlx::query_scalar(
            "SELECT version FROM kitchen.reference_versions WHERE kitchen_id = $1",
        )
        .bind(&self.kitchen_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(version) = version.filter(|v| *v != current) else {
            return Ok(());
        };
        let loaded = load_reference(&mut tx, &self.kitchen_id).await?;
        tx.commit().await?;
        self.stats
            .reference_version
            .store(version, Ordering::Relaxed);
        match loaded {
            Ok(reference) => {
                let reference = Arc::new(reference);
                let source = format!("postgresql version {version}");
                self.writer.set_reference(reference.clone(), source).await?;
                self.reference.set(
                    reference,
                    ReferenceStatus::Synced {
                        version,
                        at_ms: now_ms(),
                    },
                );
                tracing::info!(version, "reference data from postgresql in use");
            }
            Err(reason) => {
                tracing::warn!(version, %reason, "reference data in postgresql refused; keeping the current copy");
                self.reference
                    .refuse_update(format!("version {version}: {reason}"));
            }
        }
        Ok(())
    }

    /// Asks PostgreSQL for every event after the last one applied from each store (or before
    /// its first gap) and applies them; the store's de-duplication makes this safe to repeat.
    async fn reconcile(&self, reader: &Arc<Mutex<Store>>) -> Result<(), SyncError> {
        let points = read(reader, Store::reconcile_points).await?;
        for (store_id, mut after) in points {
            loop {
                let mut tx = self.begin().await?;
                let rows = sqlx::query(
                    "SELECT sequence, event_id, payload FROM kitchen.missed_events($1, $2, $3)",
                )
                .bind(&store_id)
                .bind(after as i64)
                .bind(RECONCILE_PAGE)
                .fetch_all(&mut *tx)
                .await?;
                tx.commit().await?;
                let mut events = Vec::with_capacity(rows.len());
                for row in &rows {
                    let sequence: i64 = row.try_get("sequence")?;
                    after = after.max(sequence as u64);
                    let payload: Vec<u8> = row.try_get("payload")?;
                    match OrderEvent::decode(payload.as_slice()) {
                        Ok(event) => events.push(event),
                        Err(error) => {
                            tracing::error!(%store_id, sequence, %error, "missed event is not an OrderEvent; skipped");
                        }
                    }
                }
                if !events.is_empty() {
                    let applied = self.writer.apply_all(events).await?;
                    let new = applied
                        .iter()
                        .filter(|a| !matches!(a, crate::store::Applied::Duplicate))
                        .count();
                    if new > 0 {
                        tracing::info!(%store_id, new, "applied orders the queue had missed");
                        self.stats
                            .reconciled
                            .fetch_add(new as u64, Ordering::Relaxed);
                    }
                }
                if rows.len() < RECONCILE_PAGE as usize {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// Runs a read on the sync's own SQLite connection, off the async threads.
async fn read<T: Send + 'static>(
    reader: &Arc<Mutex<Store>>,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, SyncError> {
    let reader = reader.clone();
    tokio::task::spawn_blocking(move || f(&reader.lock().unwrap_or_else(|e| e.into_inner())))
        .await
        .map_err(|_| SyncError::WriterGone)?
        .map_err(SyncError::Store)
}

fn jitter(base: Duration) -> Duration {
    base.mul_f64(0.5 + crate::feed::jitter_fraction())
}

/// Reads a kitchen's reference data from PostgreSQL; `Err(reason)` when it does not validate.
async fn load_reference(
    tx: &mut Transaction<'static, Postgres>,
    kitchen_id: &str,
) -> Result<Result<Reference, String>, sqlx::Error> {
    let day_parts = sqlx::query_as::<_, (String, String, String)>(
        "SELECT id, start_time, end_time FROM kitchen.ref_day_parts
         WHERE kitchen_id = $1 ORDER BY position",
    )
    .bind(kitchen_id)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(|(id, start, end)| DayPart { id, start, end })
    .collect();
    let stations = sqlx::query_as::<_, (String, String)>(
        "SELECT id, name FROM kitchen.ref_stations WHERE kitchen_id = $1 ORDER BY position",
    )
    .bind(kitchen_id)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(|(id, name)| Station { id, name })
    .collect();
    let stores = sqlx::query_as::<_, (String, String)>(
        "SELECT store_id, brand FROM kitchen.ref_stores WHERE kitchen_id = $1 ORDER BY position",
    )
    .bind(kitchen_id)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(|(store_id, brand)| StoreRef { store_id, brand })
    .collect();
    let mut matches: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (item_id, key) in sqlx::query_as::<_, (String, String)>(
        "SELECT item_id, key FROM kitchen.ref_matches WHERE kitchen_id = $1
         ORDER BY item_id, position",
    )
    .bind(kitchen_id)
    .fetch_all(&mut **tx)
    .await?
    {
        matches.entry(item_id).or_default().push(key);
    }
    let mut pars: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
    for (item_id, day_part, quantity) in sqlx::query_as::<_, (String, String, i32)>(
        "SELECT item_id, day_part, quantity FROM kitchen.ref_pars WHERE kitchen_id = $1",
    )
    .bind(kitchen_id)
    .fetch_all(&mut **tx)
    .await?
    {
        pars.entry(item_id)
            .or_default()
            .insert(day_part, quantity.max(0) as u32);
    }
    type ItemRow = (
        String,
        String,
        String,
        i32,
        Option<i32>,
        Option<String>,
        Option<i32>,
    );
    let items = sqlx::query_as::<_, ItemRow>(
        "SELECT id, name, station_id, prep_seconds, par, unit, shelf_life_days
         FROM kitchen.ref_items WHERE kitchen_id = $1 ORDER BY position",
    )
    .bind(kitchen_id)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(
        |(id, name, station, prep_seconds, par, unit, shelf_life_days)| Item {
            matches: matches.remove(&id).unwrap_or_default(),
            par_by_day_part: pars.remove(&id).unwrap_or_default(),
            id,
            name,
            station,
            prep_seconds: prep_seconds.max(0) as u32,
            par: par.map(|p| p.max(0) as u32),
            unit,
            shelf_life_days: shelf_life_days.map(|d| d.max(0) as u32),
        },
    )
    .collect();
    Ok(Reference::new(stations, stores, items, day_parts).map_err(|e| e.to_string()))
}

/// One outbox batch as the rows of the cloud's record tables.
#[derive(Debug, Default, PartialEq)]
pub struct PgBatch {
    pub order_events: Vec<OrderEventRow>,
    /// By session id: a session started and completed in one batch is one row.
    pub sessions: BTreeMap<String, SessionRow>,
    pub scans: Vec<ScanRow>,
    pub movements: Vec<MovementRow>,
}

#[derive(Debug, PartialEq)]
pub struct OrderEventRow {
    pub record_id: String,
    pub order_id: String,
    pub kind: String,
    /// JSON array.
    pub stations: String,
    pub state: Option<String>,
    pub data: String,
    pub at_ms: i64,
}

#[derive(Debug, PartialEq)]
pub struct SessionRow {
    pub station_id: String,
    pub item_id: String,
    pub item_name: String,
    pub quantity: i32,
    pub device: String,
    pub started_at_ms: i64,
    pub completed_at_ms: Option<i64>,
    pub allocations: String,
}

#[derive(Debug, PartialEq)]
pub struct ScanRow {
    pub scan_id: String,
    pub device: String,
    pub raw: Vec<u8>,
    pub parsed: Option<String>,
    pub role: String,
    pub action: String,
    pub accepted: bool,
    pub reason: String,
    pub order_id: Option<String>,
    pub station_id: Option<String>,
    pub stock_id: Option<String>,
    pub at_ms: i64,
}

#[derive(Debug, PartialEq)]
pub struct MovementRow {
    pub record_id: String,
    pub stock_id: String,
    pub item_id: String,
    pub change: String,
    pub quantity: i32,
    pub source: String,
    pub lot: Option<String>,
    pub use_by: Option<String>,
    pub device: Option<String>,
    pub at_ms: i64,
}

fn text(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(Value::as_str).map(str::to_owned)
}

impl PgBatch {
    /// Maps outbox records to rows. A record that cannot be mapped (it would be a bug: the
    /// agent wrote it) is logged and left out rather than holding up every record after it.
    pub fn from_rows(rows: &[OutboxRow]) -> Self {
        let mut batch = Self::default();
        for row in rows {
            if batch.add(row).is_none() {
                tracing::error!(seq = row.seq, kind = %row.kind, data = %row.data,
                    "outbox record not understood; not synced");
            }
        }
        batch
    }

    fn add(&mut self, row: &OutboxRow) -> Option<()> {
        let data: Value = serde_json::from_str(&row.data).ok()?;
        match row.kind.as_str() {
            kind if kind.starts_with("order.") => {
                let stations = data
                    .get("stations")
                    .or_else(|| data.get("order").and_then(|o| o.get("stations")))
                    .cloned()
                    .unwrap_or(Value::Array(Vec::new()));
                self.order_events.push(OrderEventRow {
                    record_id: row.record_id.clone(),
                    order_id: text(&data, "order_id")?,
                    kind: kind.to_owned(),
                    stations: stations.to_string(),
                    state: text(&data, "state"),
                    data: row.data.clone(),
                    at_ms: row.created_at_ms,
                });
            }
            "batch.started" | "batch.completed" => {
                let session_id = text(&data, "session_id")?;
                let completed = data.get("completed_at_ms").and_then(Value::as_i64);
                let entry = self.sessions.entry(session_id);
                let row = SessionRow {
                    station_id: text(&data, "station_id")?,
                    item_id: text(&data, "item_id")?,
                    item_name: text(&data, "item_name").unwrap_or_default(),
                    quantity: data.get("quantity").and_then(Value::as_i64)? as i32,
                    device: text(&data, "device").unwrap_or_default(),
                    started_at_ms: data.get("started_at_ms").and_then(Value::as_i64)?,
                    completed_at_ms: completed,
                    allocations: data
                        .get("allocations")
                        .cloned()
                        .unwrap_or(Value::Array(Vec::new()))
                        .to_string(),
                };
                match entry {
                    std::collections::btree_map::Entry::Occupied(mut held) => {
                        if row.completed_at_ms.is_some() {
                            held.insert(row);
                        }
                    }
                    std::collections::btree_map::Entry::Vacant(slot) => {
                        slot.insert(row);
                    }
                }
            }
            "scan.recorded" | "scan.rejected" => self.scans.push(ScanRow {
                scan_id: text(&data, "scan_id")?,
                device: text(&data, "device")?,
                raw: row
                    .raw
                    .clone()
                    .unwrap_or_else(|| text(&data, "code").unwrap_or_default().into_bytes()),
                parsed: data
                    .get("parsed")
                    .filter(|p| !p.is_null())
                    .map(Value::to_string),
                role: text(&data, "role").unwrap_or_else(|| "station".into()),
                action: text(&data, "action")?,
                accepted: data.get("accepted").and_then(Value::as_bool)?,
                reason: text(&data, "reason").unwrap_or_default(),
                order_id: text(&data, "order_id"),
                station_id: text(&data, "station_id"),
                stock_id: text(&data, "stock_id"),
                at_ms: data.get("scanned_at_ms").and_then(Value::as_i64)?,
            }),
            "stock.changed" => {
                let lot = data.get("lot")?;
                let change = text(&data, "change")?;
                let device = match change.as_str() {
                    "added" => text(lot, "added_by"),
                    _ => text(lot, "closed_by"),
                };
                self.movements.push(MovementRow {
                    record_id: row.record_id.clone(),
                    stock_id: text(lot, "stock_id")?,
                    item_id: text(lot, "item_id")?,
                    change,
                    quantity: lot.get("quantity").and_then(Value::as_i64)? as i32,
                    source: text(lot, "source")?,
                    lot: text(lot, "lot"),
                    use_by: text(lot, "use_by"),
                    device,
                    at_ms: row.created_at_ms,
                });
            }
            _ => return None,
        }
        Some(())
    }

    /// Inserts the rows; a record already there (pushed before a crash) changes nothing, a
    /// session's completion fills in its row.
    async fn insert(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        kitchen_id: &str,
    ) -> Result<(), sqlx::Error> {
        if !self.order_events.is_empty() {
            let rows = &self.order_events;
            sqlx::query(
                "INSERT INTO kitchen.order_events
                     (record_id, kitchen_id, order_id, kind, stations, state, data, occurred_at)
                 SELECT r::uuid, $1, o, k, ARRAY(SELECT jsonb_array_elements_text(s::jsonb)),
                        st, d::jsonb, to_timestamp(t / 1000.0)
                 FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                             $7::text[], $8::bigint[]) AS u(r, o, k, s, st, d, t)
                 ON CONFLICT (record_id) DO NOTHING",
            )
            .bind(kitchen_id)
            .bind(rows.iter().map(|r| r.record_id.clone()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.order_id.clone()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.kind.clone()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.stations.clone()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.state.clone()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.data.clone()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.at_ms).collect::<Vec<_>>())
            .execute(&mut **tx)
            .await?;
        }
        if !self.sessions.is_empty() {
            let rows: Vec<(&String, &SessionRow)> = self.sessions.iter().collect();
            sqlx::query(
                "INSERT INTO kitchen.batch_sessions
                     (session_id, kitchen_id, station_id, item_id, item_name, quantity, device,
                      started_at, completed_at, allocations)
                 SELECT id::uuid, $1, s, i, n, q, d, to_timestamp(st / 1000.0),
                        to_timestamp(c / 1000.0), a::jsonb
                 FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::int[],
                             $7::text[], $8::bigint[], $9::bigint[], $10::text[])
                      AS u(id, s, i, n, q, d, st, c, a)
                 ON CONFLICT (session_id) DO UPDATE SET
                     completed_at = COALESCE(EXCLUDED.completed_at,
                                             kitchen.batch_sessions.completed_at),
                     allocations = CASE WHEN EXCLUDED.completed_at IS NULL
                                        THEN kitchen.batch_sessions.allocations
                                        ELSE EXCLUDED.allocations END",
            )
            .bind(kitchen_id)
            .bind(rows.iter().map(|(id, _)| (*id).clone()).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|(_, r)| r.station_id.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|(_, r)| r.item_id.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|(_, r)| r.item_name.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|(_, r)| r.quantity).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|(_, r)| r.device.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|(_, r)| r.started_at_ms)
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|(_, r)| r.completed_at_ms)
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|(_, r)| r.allocations.clone())
                    .collect::<Vec<_>>(),
            )
            .execute(&mut **tx)
            .await?;
        }
        if !self.scans.is_empty() {
            let rows = &self.scans;
            sqlx::query(
                "INSERT INTO kitchen.scans
                     (scan_id, kitchen_id, device, raw, parsed, role, action, accepted, reason,
                      order_id, station_id, stock_id, scanned_at)
                 SELECT id::uuid, $1, d, r, p::jsonb, ro, a, ac, re, o, s, k,
                        to_timestamp(t / 1000.0)
                 FROM UNNEST($2::text[], $3::text[], $4::bytea[], $5::text[], $6::text[],
                             $7::text[], $8::bool[], $9::text[], $10::text[], $11::text[],
                             $12::text[], $13::bigint[])
                      AS u(id, d, r, p, ro, a, ac, re, o, s, k, t)
                 ON CONFLICT (scan_id) DO NOTHING",
            )
            .bind(kitchen_id)
            .bind(rows.iter().map(|r| r.scan_id.clone()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.device.clone()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.raw.clone()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.parsed.clone()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.role.clone()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.action.clone()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.accepted).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.reason.clone()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.order_id.clone()).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.station_id.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|r| r.stock_id.clone()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.at_ms).collect::<Vec<_>>())
            .execute(&mut **tx)
            .await?;
        }
        if !self.movements.is_empty() {
            let rows = &self.movements;
            sqlx::query(
                "INSERT INTO kitchen.stock_movements
                     (record_id, kitchen_id, stock_id, item_id, change, quantity, source, lot,
                      use_by, device, occurred_at)
                 SELECT r::uuid, $1, s, i, c, q, so, l, u::date, d, to_timestamp(t / 1000.0)
                 FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::int[],
                             $7::text[], $8::text[], $9::text[], $10::text[], $11::bigint[])
                      AS x(r, s, i, c, q, so, l, u, d, t)
                 ON CONFLICT (record_id) DO NOTHING",
            )
            .bind(kitchen_id)
            .bind(rows.iter().map(|r| r.record_id.clone()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.stock_id.clone()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.item_id.clone()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.change.clone()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.quantity).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.source.clone()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.lot.clone()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.use_by.clone()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.device.clone()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.at_ms).collect::<Vec<_>>())
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64, kind: &str, data: Value) -> OutboxRow {
        OutboxRow {
            seq,
            record_id: format!("r{seq}"),
            kind: kind.into(),
            data: data.to_string(),
            created_at_ms: 1000 + seq,
            raw: None,
        }
    }

    #[test]
    fn outbox_records_map_to_the_cloud_tables() {
        let session = |completed: Option<i64>| {
            serde_json::json!({"session_id": "s1", "station_id": "fry", "item_id": "fries",
                "item_name": "Fries", "quantity": 4, "device": "fry-tablet", "started_at_ms": 5,
                "completed_at_ms": completed, "allocations": [{"order_id": "o1", "units": 4}]})
        };
        let mut scan = row(
            4,
            "scan.rejected",
            serde_json::json!({"scan_id": "sc1", "device": "fry-1", "code": "X\u{fffd}",
                "parsed": null, "role": "station", "action": "none", "accepted": false,
                "reason": "no", "order_id": null, "station_id": "fry", "stock_id": null,
                "scanned_at_ms": 77}),
        );
        scan.raw = Some(b"X\xff".to_vec());
        let rows = vec![
            row(
                1,
                "order.created",
                serde_json::json!({"order_id": "o1", "state": "open",
                    "order": {"stations": ["fry", "grill"]}}),
            ),
            row(2, "batch.started", session(None)),
            row(3, "batch.completed", session(Some(9))),
            scan,
            row(
                5,
                "stock.changed",
                serde_json::json!({"change": "used", "item_id": "slaw", "lot": {
                    "stock_id": "st1", "item_id": "slaw", "source": "prep", "quantity": 2,
                    "lot": "B1", "use_by": "2026-11-23", "added_by": "prep-1",
                    "closed_by": "grill-1"}}),
            ),
            row(
                6,
                "order.bumped",
                serde_json::json!({"order_id": "o1", "stations": ["fry"]}),
            ),
            row(7, "batch.updated", serde_json::json!({})),
        ];
        let batch = PgBatch::from_rows(&rows);
        assert_eq!(
            batch
                .order_events
                .iter()
                .map(|e| (
                    e.kind.as_str(),
                    e.stations.as_str(),
                    e.state.clone(),
                    e.at_ms
                ))
                .collect::<Vec<_>>(),
            [
                (
                    "order.created",
                    r#"["fry","grill"]"#,
                    Some("open".into()),
                    1001
                ),
                ("order.bumped", r#"["fry"]"#, None, 1006),
            ]
        );
        let session = &batch.sessions["s1"];
        assert_eq!(
            (session.completed_at_ms, session.allocations.as_str()),
            (Some(9), r#"[{"order_id":"o1","units":4}]"#),
            "started and completed in one batch: one row, completed"
        );
        assert_eq!(
            batch.scans[0].raw, b"X\xff",
            "the exact bytes, not the lossy text"
        );
        assert_eq!(batch.scans[0].parsed, None);
        let movement = &batch.movements[0];
        assert_eq!(
            (
                movement.change.as_str(),
                movement.device.as_deref(),
                movement.use_by.as_deref(),
                movement.quantity
            ),
            ("used", Some("grill-1"), Some("2026-11-23"), 2)
        );
    }
}
