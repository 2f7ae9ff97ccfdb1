//! The Otter side of the sync: 86 records up to `kitchen.item_availability` (order intents go
//! with the other order events), and the state of the relay's calls to Otter down from
//! `kitchen.otter_calls`, handed to the writer so the displays show them (docs/otter.md).

use std::sync::{Arc, Mutex, atomic::Ordering};

use sqlx::{Postgres, Row, Transaction};

use super::{SyncError, SyncTask, push::AvailabilityRow, read};
use crate::{
    record::OtterCall,
    store::{CallChange, Store},
};

/// Calls read per round.
const CALLS_PER_READ: i32 = 500;

pub(super) async fn insert_availability(
    tx: &mut Transaction<'static, Postgres>,
    kitchen_id: &str,
    rows: &[AvailabilityRow],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO kitchen.item_availability
             (record_id, kitchen_id, item_id, kind, data, occurred_at)
         SELECT r::uuid, $1, i, k, d::jsonb, to_timestamp(t / 1000.0)
         FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[])
              AS u(r, i, k, d, t)
         ON CONFLICT (record_id) DO NOTHING",
    )
    .bind(kitchen_id)
    .bind(rows.iter().map(|r| r.record_id.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.item_id.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.kind.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.data.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.at_ms).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl SyncTask {
    /// Reads the calls that changed since the last read and hands them to the writer; how many.
    /// A database without `kitchen.otter_calls` (a relay older than the box) is not an error:
    /// there is nothing to show.
    pub(super) async fn pull_calls(&self, reader: &Arc<Mutex<Store>>) -> Result<usize, SyncError> {
        let after = read(reader, |store| store.sync_cursor("otter_calls")).await?;
        let mut tx = self.begin().await?;
        let rows = sqlx::query(
            "SELECT change_id, order_id, item_id, store_id, kind, state, detail,
                    record_id::text AS record_id, (extract(epoch FROM updated_at) * 1000)::bigint AS at
             FROM kitchen.otter_calls($1, $2)",
        )
        .bind(after)
        .bind(CALLS_PER_READ)
        .fetch_all(&mut *tx)
        .await;
        let rows = match rows {
            Ok(rows) => rows,
            Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some("42883") => {
                if !self.stats.calls_unavailable.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "postgresql has no kitchen.otter_calls (relay older than this box); Otter call states are not shown"
                    );
                }
                return Ok(0);
            }
            Err(error) => return Err(error.into()),
        };
        tx.commit().await?;
        let Some(last) = rows.last().map(|row| row.get::<i64, _>("change_id")) else {
            return Ok(0);
        };
        let calls: Vec<CallChange> = rows
            .iter()
            .map(|row| CallChange {
                call: OtterCall {
                    record_id: row.get("record_id"),
                    store_id: row.get("store_id"),
                    kind: row.get("kind"),
                    order_id: row.get("order_id"),
                    item_id: row.get("item_id"),
                    state: row.get("state"),
                    detail: row.get("detail"),
                },
                change_id: row.get("change_id"),
                at_ms: row.get("at"),
            })
            .collect();
        let count = calls.len();
        self.writer.otter_calls(calls, last).await?;
        Ok(count)
    }
}
