//! A new card (docs/sync.md, "A new card"): the kitchen's open orders and the state its screens
//! showed, read from PostgreSQL in one snapshot — per store the relay's newest sequence
//! (`kitchen.store_sequence`) and the events of its open orders (`kitchen.open_order_events`),
//! then the kitchen's own order records and batch sessions — and applied through the writer
//! in one transaction that also remembers it ran.

use std::sync::atomic::Ordering;

use kitchen_daemon::clock::now_ms;
use kitchen_proto::OrderEvent;
use prost::Message;
use sqlx::{Executor, Row};

use super::{SyncError, SyncTask};
use crate::{
    record::{Allocation, Record, Session},
    writer::{Recovery, RestoredRecord},
};

/// SQLSTATE of a function PostgreSQL does not have.
const UNDEFINED_FUNCTION: &str = "42883";

/// How far back a new card looks: orders received (and records made) in the last 12 hours.
pub const RECOVERY_HOURS: i32 = 12;

impl SyncTask {
    /// Reads what the kitchen had open and puts it back; an error leaves the recovery pending
    /// for the next round.
    pub(super) async fn recover(&self) -> Result<(), SyncError> {
        let started = std::time::Instant::now();
        let recovery = match self.read_recovery().await {
            Ok(recovery) => recovery,
            // A relay older than the functions: nothing to recover from. Not marked done, so a
            // start after the relay's upgrade recovers; the sync goes on meanwhile.
            Err(SyncError::Db(sqlx::Error::Database(error)))
                if error.code().as_deref() == Some(UNDEFINED_FUNCTION) =>
            {
                tracing::error!(%error, "new card: postgresql cannot give the kitchen's open orders (upgrade the relay); not recovered");
                self.stats.recovery_pending.store(false, Ordering::Relaxed);
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        let recovered = self.writer.recover(recovery).await?;
        self.stats
            .recovered_orders
            .store(recovered.orders as u64, Ordering::Relaxed);
        self.stats
            .recovered_at_ms
            .store(now_ms(), Ordering::Relaxed);
        self.stats.recovery_pending.store(false, Ordering::Relaxed);
        tracing::info!(
            orders = recovered.orders,
            records = recovered.records,
            sessions = recovered.sessions,
            ms = started.elapsed().as_millis() as u64,
            "new card: the kitchen's open orders recovered from postgresql"
        );
        Ok(())
    }

    async fn read_recovery(&self) -> Result<Recovery, SyncError> {
        let mut tx = self.pool.begin().await?;
        // One snapshot: a store's sequence and its open orders agree.
        tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await?;
        kitchen_cloud_schema::set_tenant(&mut tx, &self.kitchen_id).await?;
        let stores: Vec<String> = sqlx::query_scalar(
            "SELECT store_id FROM kitchen.ref_stores WHERE kitchen_id = $1 ORDER BY position",
        )
        .bind(&self.kitchen_id)
        .fetch_all(&mut *tx)
        .await?;
        let mut recovery = Recovery::default();
        let mut order_ids = Vec::new();
        for store_id in stores {
            let last: i64 = sqlx::query_scalar("SELECT kitchen.store_sequence($1)")
                .bind(&store_id)
                .fetch_one(&mut *tx)
                .await?;
            let rows = sqlx::query(
                "SELECT sequence, order_id, payload FROM kitchen.open_order_events($1, $2)",
            )
            .bind(&store_id)
            .bind(RECOVERY_HOURS)
            .fetch_all(&mut *tx)
            .await?;
            for row in &rows {
                let payload: Vec<u8> = row.try_get("payload")?;
                match OrderEvent::decode(payload.as_slice()) {
                    Ok(event) => {
                        order_ids.push(row.try_get::<String, _>("order_id")?);
                        recovery.events.push(event);
                    }
                    Err(error) => {
                        let sequence: i64 = row.try_get("sequence")?;
                        tracing::error!(%store_id, sequence, %error, "open order's event is not an OrderEvent; skipped");
                    }
                }
            }
            recovery.baselines.push((store_id, last.max(0) as u64));
        }
        order_ids.sort();
        order_ids.dedup();
        let rows = sqlx::query(
            "SELECT record_id::text AS record_id, kind, data::text AS data,
                    (extract(epoch FROM occurred_at) * 1000)::bigint AS at_ms
             FROM kitchen.order_events
             WHERE kitchen_id = $1 AND order_id = ANY($2)
               AND occurred_at >= now() - make_interval(hours => $3)
             ORDER BY record_id",
        )
        .bind(&self.kitchen_id)
        .bind(&order_ids)
        .bind(RECOVERY_HOURS)
        .fetch_all(&mut *tx)
        .await?;
        for row in &rows {
            let kind: String = row.try_get("kind")?;
            let data: String = row.try_get("data")?;
            match Record::parse(&kind, &data) {
                Ok(record) => recovery.records.push(RestoredRecord {
                    record_id: row.try_get("record_id")?,
                    record,
                    at_ms: row.try_get("at_ms")?,
                }),
                // A kind a newer agent made: nothing this one can put back.
                Err(error) => tracing::warn!(%kind, %error, "record not understood; not recovered"),
            }
        }
        // Every order's first `order.created` from this kitchen, open or not: an event of a
        // closed one may still come from the queue.
        recovery.created = sqlx::query_as(
            "SELECT DISTINCT ON (order_id) order_id, record_id::text
             FROM kitchen.order_events
             WHERE kitchen_id = $1 AND kind = 'order.created'
               AND occurred_at >= now() - make_interval(hours => $2)
             ORDER BY order_id, record_id",
        )
        .bind(&self.kitchen_id)
        .bind(RECOVERY_HOURS)
        .fetch_all(&mut *tx)
        .await?;
        let rows = sqlx::query(
            "SELECT session_id::text AS session_id, station_id, item_id, item_name, quantity,
                    device, (extract(epoch FROM started_at) * 1000)::bigint AS started_at_ms,
                    (extract(epoch FROM completed_at) * 1000)::bigint AS completed_at_ms,
                    allocations::text AS allocations
             FROM kitchen.batch_sessions
             WHERE kitchen_id = $1 AND started_at >= now() - make_interval(hours => $2)
             ORDER BY started_at, session_id",
        )
        .bind(&self.kitchen_id)
        .bind(RECOVERY_HOURS)
        .fetch_all(&mut *tx)
        .await?;
        for row in &rows {
            let allocations: String = row.try_get("allocations")?;
            let allocations: Vec<Allocation> =
                serde_json::from_str(&allocations).unwrap_or_default();
            recovery.sessions.push(Session {
                session_id: row.try_get("session_id")?,
                station_id: row.try_get("station_id")?,
                item_id: row.try_get("item_id")?,
                item_name: row.try_get("item_name")?,
                quantity: row.try_get::<i32, _>("quantity")?.max(1) as u32,
                device: row.try_get("device")?,
                started_at_ms: row.try_get("started_at_ms")?,
                completed_at_ms: row.try_get("completed_at_ms")?,
                allocations,
            });
        }
        tx.commit().await?;
        Ok(recovery)
    }
}
