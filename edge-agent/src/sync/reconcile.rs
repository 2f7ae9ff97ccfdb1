//! Orders the queue may have missed, asked of `kitchen.missed_events` from each store's reconcile
//! point and applied like deliveries (de-duplicated by event id).

use std::sync::{Arc, Mutex, atomic::Ordering};

use kitchen_proto::OrderEvent;
use prost::Message;
use sqlx::Row;

use crate::store::Store;

use super::{RECONCILE_PAGE, SyncError, SyncTask, read};

impl SyncTask {
    /// Asks PostgreSQL for every event after the last one applied from each store (or before
    /// its first gap) and applies them; the store's de-duplication makes this safe to repeat.
    pub(super) async fn reconcile(&self, reader: &Arc<Mutex<Store>>) -> Result<(), SyncError> {
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
