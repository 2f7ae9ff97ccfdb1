//! Up: outbox records to PostgreSQL rows, pushed idempotently (`ON CONFLICT` on the edge-made
//! ids) and deleted from the outbox only after the commit; the box's heartbeat.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, atomic::Ordering},
};

use serde_json::Value;
use sqlx::{Postgres, Transaction};

use crate::store::{OutboxRow, Store};

use super::*;

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
    pub(super) async fn insert(
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

impl Sync {
    /// Pushes one batch of the outbox; the number of records pushed.
    pub(super) async fn push(&self, reader: &Arc<Mutex<Store>>) -> Result<usize, SyncError> {
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
    pub(super) async fn heartbeat(&self, reader: &Arc<Mutex<Store>>) -> Result<i64, SyncError> {
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
}
