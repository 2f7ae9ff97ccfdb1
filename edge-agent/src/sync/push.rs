//! Up: the event log's synced records after the push cursor (and what an older agent left in
//! `outbox`) to PostgreSQL rows, pushed idempotently (`ON CONFLICT` on the edge-made ids); the
//! cursor moves only after the commit. The box's heartbeat.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, atomic::Ordering},
};

use serde_json::Value;
use sqlx::{Postgres, Transaction};

use crate::{
    record::{Record, ScanRecord, StockChangeKind},
    store::{OutboxRow, Store},
};

use super::{SyncError, SyncTask, read};

/// One outbox batch as the rows of the cloud's record tables.
#[derive(Debug, Default, PartialEq)]
pub struct PushRows {
    pub order_events: Vec<OrderEventRow>,
    /// By session id: a session started and completed in one batch is one row.
    pub sessions: BTreeMap<String, SessionRow>,
    pub scans: Vec<ScanRow>,
    pub movements: Vec<MovementRow>,
    /// 86 and back (`kitchen.item_availability`).
    pub availability: Vec<AvailabilityRow>,
}

/// `item.suspended` / `item.unsuspended` as `kitchen.item_availability` holds them.
#[derive(Debug, PartialEq)]
pub struct AvailabilityRow {
    pub record_id: String,
    pub item_id: String,
    pub kind: String,
    pub data: String,
    pub at_ms: i64,
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

/// A scan as the cloud stores it: the record with the exact bytes the scanner sent.
#[derive(Debug, PartialEq)]
pub struct ScanRow {
    pub record: ScanRecord,
    pub raw: Vec<u8>,
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

impl PushRows {
    /// Maps outbox records to rows. A record that cannot be read back (it would be a bug: the
    /// agent wrote it) is logged and left out rather than holding up every record after it.
    pub fn from_rows(rows: &[OutboxRow]) -> Self {
        let mut batch = Self::default();
        for row in rows {
            match Record::parse(&row.kind, &row.data) {
                Ok(record) => batch.add(row, record),
                Err(error) => tracing::error!(seq = row.seq, %error, data = %row.data,
                    "outbox record not understood; not synced"),
            }
        }
        batch
    }

    fn add(&mut self, row: &OutboxRow, record: Record) {
        let kind = record.kind();
        match record {
            Record::OrderCreated(change)
            | Record::OrderUpdated(change)
            | Record::OrderCancelled(change)
            | Record::OrderStatus(change) => {
                let stations = change.order.map(|order| order.stations).unwrap_or_default();
                self.order_event(row, kind, change.order_id, &stations, Some(change.state));
            }
            Record::OrderBumped(bumps) | Record::OrderRecalled(bumps) => {
                self.order_event(row, kind, bumps.order_id, &bumps.stations, None);
            }
            Record::OrderReady(ready) => self.order_event(row, kind, ready.order_id, &[], None),
            Record::OrderAccepted(accepted) => {
                self.order_event(row, kind, accepted.order_id, &[], None);
            }
            Record::OrderPrepTime(prep) => self.order_event(row, kind, prep.order_id, &[], None),
            Record::OrderHandedOff(hand_off) => {
                self.order_event(row, kind, hand_off.order_id, &[], Some("closed".into()));
            }
            Record::OrderCancelRequested(cancel) => {
                self.order_event(row, kind, cancel.order_id, &[], Some("cancelled".into()));
            }
            Record::AllergenAcknowledged(ack) => {
                let stations = [ack.station_id];
                self.order_event(row, kind, ack.order_id, &stations, None);
            }
            Record::OrderRushed(rush) => self.order_event(row, kind, rush.order_id, &[], None),
            Record::LineTapped(line) => {
                let stations = [line.station_id];
                self.order_event(row, kind, line.order_id, &stations, None);
            }
            Record::ItemSuspended(change) | Record::ItemUnsuspended(change) => {
                self.availability.push(AvailabilityRow {
                    record_id: row.record_id.clone(),
                    item_id: change.item_id,
                    kind: kind.to_owned(),
                    data: row.data.clone(),
                    at_ms: row.created_at_ms,
                });
            }
            Record::BatchStarted(session) | Record::BatchCompleted(session) => {
                let session_row = SessionRow {
                    station_id: session.station_id,
                    item_id: session.item_id,
                    item_name: session.item_name,
                    quantity: session.quantity as i32,
                    device: session.device,
                    started_at_ms: session.started_at_ms,
                    completed_at_ms: session.completed_at_ms,
                    allocations: serde_json::to_string(&session.allocations)
                        .unwrap_or_else(|_| "[]".into()),
                };
                match self.sessions.entry(session.session_id) {
                    std::collections::btree_map::Entry::Occupied(mut held) => {
                        if session_row.completed_at_ms.is_some() {
                            held.insert(session_row);
                        }
                    }
                    std::collections::btree_map::Entry::Vacant(slot) => {
                        slot.insert(session_row);
                    }
                }
            }
            Record::ScanRecorded(scan) | Record::ScanRejected(scan) => self.scans.push(ScanRow {
                raw: row
                    .raw
                    .clone()
                    .unwrap_or_else(|| scan.code.clone().into_bytes()),
                record: scan,
            }),
            Record::StockChanged(change) => {
                let lot = change.lot;
                let device = match change.change {
                    StockChangeKind::Added => Some(lot.added_by),
                    StockChangeKind::Used | StockChangeKind::Discarded => lot.closed_by,
                };
                self.movements.push(MovementRow {
                    record_id: row.record_id.clone(),
                    stock_id: lot.stock_id,
                    item_id: lot.item_id,
                    change: change.change.as_str().to_owned(),
                    quantity: lot.quantity as i32,
                    source: lot.source,
                    lot: lot.lot,
                    use_by: lot.use_by.map(|day| day.to_string()),
                    device,
                    at_ms: row.created_at_ms,
                });
            }
            Record::BatchUpdated(_) | Record::ReferenceUpdated(_) | Record::OtterCallChanged(_) => {
                tracing::error!(
                    seq = row.seq,
                    kind,
                    "a display-only record in the outbox; not synced"
                );
            }
        }
    }

    fn order_event(
        &mut self,
        row: &OutboxRow,
        kind: &str,
        order_id: String,
        stations: &[String],
        state: Option<String>,
    ) {
        self.order_events.push(OrderEventRow {
            record_id: row.record_id.clone(),
            order_id,
            kind: kind.to_owned(),
            stations: serde_json::to_string(stations).unwrap_or_else(|_| "[]".into()),
            state,
            data: row.data.clone(),
            at_ms: row.created_at_ms,
        });
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
            .bind(
                rows.iter()
                    .map(|r| r.record.scan_id.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|r| r.record.device.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|r| r.raw.clone()).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.record.parsed.as_ref().map(Value::to_string))
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|r| r.record.role.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|r| r.record.action.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|r| r.record.accepted).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.record.reason.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|r| r.record.order_id.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|r| r.record.station_id.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|r| r.record.stock_id.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|r| r.record.scanned_at_ms)
                    .collect::<Vec<_>>(),
            )
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
        super::otter::insert_availability(tx, kitchen_id, &self.availability).await?;
        Ok(())
    }
}

impl SyncTask {
    /// Pushes one batch of records; the number pushed. After the PostgreSQL commit the push
    /// cursor moves in memory only (`save_cursor` writes it every few minutes, so a push costs
    /// the SD card nothing); rows an older agent left in `outbox` are deleted from it.
    pub(super) async fn push(&self, reader: &Arc<Mutex<Store>>) -> Result<usize, SyncError> {
        let limit = self.push_limit;
        let pushed = self.stats.pushed();
        let rows = read(reader, move |store| store.sync_batch(pushed, limit)).await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let push_rows = PushRows::from_rows(&rows);
        let mut tx = self.begin().await?;
        push_rows.insert(&mut tx, &self.kitchen_id).await?;
        tx.commit().await?;
        let last = |from_outbox: bool| {
            rows.iter()
                .filter(|row| row.from_outbox == from_outbox)
                .map(|row| row.seq)
                .max()
        };
        if let Some(last) = last(true) {
            self.writer.delete_synced(last).await?;
        }
        if let Some(last) = last(false) {
            self.stats.pushed_through.fetch_max(last, Ordering::Relaxed);
        }
        self.stats
            .pushed
            .fetch_add(rows.len() as u64, Ordering::Relaxed);
        Ok(rows.len())
    }

    /// Upserts the box's `devices` row; the backlog it reported.
    pub(super) async fn heartbeat(&self, reader: &Arc<Mutex<Store>>) -> Result<i64, SyncError> {
        let pushed = self.stats.pushed();
        let ((backlog, oldest), gaps) = read(reader, move |store| {
            Ok((store.sync_backlog(pushed)?, store.sequence_gaps()?))
        })
        .await?;
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
        .bind(serde_json::json!(gaps).to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(backlog)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{
        Allocation, BatchUpdate, Bumps, Change, Lot, OrderChange, ScanRecord, Session, StockChange,
        Ticket,
    };

    fn row(seq: i64, record: &Record) -> OutboxRow {
        OutboxRow {
            seq,
            record_id: format!("r{seq}"),
            kind: record.kind().into(),
            data: record.data_json(),
            created_at_ms: 1000 + seq,
            raw: None,
            from_outbox: false,
        }
    }

    #[test]
    fn outbox_records_map_to_the_cloud_tables() {
        let session = |completed_at_ms: Option<i64>| Session {
            session_id: "s1".into(),
            station_id: "fry".into(),
            item_id: "fries".into(),
            item_name: "Fries".into(),
            quantity: 4,
            device: "fry-tablet".into(),
            started_at_ms: 5,
            completed_at_ms,
            allocations: vec![Allocation {
                order_id: "o1".into(),
                units: 4,
            }],
        };
        let ticket = Ticket {
            order_id: "o1".into(),
            store_id: "s1".into(),
            source: "ubereats".into(),
            friendly_id: "#1".into(),
            status: "NEW_ORDER".into(),
            customer_name: String::new(),
            customer_note: String::new(),
            received_at_ms: 1,
            lines: Vec::new(),
            bumped_at: Vec::new(),
            ready: false,
            stations: vec!["fry".into(), "grill".into()],
            promised_at_ms: 2,
            prep_minutes: None,
            awaiting_accept: false,
            otter_calls: Vec::new(),
            allergens: Vec::new(),
            allergen_acks: Vec::new(),
            rush_at_ms: None,
            lines_done: Vec::new(),
        };
        let created = OrderChange {
            event_id: "e1".into(),
            otter_event_type: "orders.new_order".into(),
            order_id: "o1".into(),
            store_id: "s1".into(),
            status: "NEW_ORDER".into(),
            state: "open".into(),
            change: Change::Created,
            order: Some(ticket),
        };
        let scan = ScanRecord {
            scan_id: "sc1".into(),
            device: "fry-1".into(),
            code: "X\u{fffd}".into(),
            parsed: None,
            role: "station".into(),
            action: "none".into(),
            accepted: false,
            reason: "no".into(),
            order_id: None,
            station_id: Some("fry".into()),
            stock_id: None,
            scanned_at_ms: 77,
        };
        let lot = Lot {
            stock_id: "st1".into(),
            item_id: "slaw".into(),
            source: "prep".into(),
            label: None,
            quantity: 2,
            lot: Some("B1".into()),
            prepared_on: None,
            use_by: chrono::NaiveDate::from_ymd_opt(2026, 11, 23),
            added_at_ms: 3,
            added_by: "prep-1".into(),
            closed_at_ms: Some(4),
            closed_as: Some("used".into()),
            closed_by: Some("grill-1".into()),
        };
        let used = StockChange {
            change: StockChangeKind::Used,
            item_id: "slaw".into(),
            lot,
            transfer: None,
            scan_id: None,
        };
        let mut scan = row(4, &Record::scan(scan));
        scan.raw = Some(b"X\xff".to_vec());
        let rows = vec![
            row(1, &Record::OrderCreated(created)),
            row(2, &Record::BatchStarted(session(None))),
            row(3, &Record::BatchCompleted(session(Some(9)))),
            scan,
            row(5, &Record::StockChanged(used)),
            row(
                6,
                &Record::OrderBumped(Bumps {
                    order_id: "o1".into(),
                    stations: vec!["fry".into()],
                    device: Some("grill tablet".into()),
                }),
            ),
            row(
                7,
                &Record::BatchUpdated(BatchUpdate {
                    station_id: "fry".into(),
                    items: Vec::new(),
                }),
            ),
        ];
        let batch = PushRows::from_rows(&rows);
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
        assert_eq!(batch.scans[0].record.parsed, None);
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
