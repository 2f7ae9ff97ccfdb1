//! A new card's recovery (docs/sync.md, "A new card"): whether it is still to run, remembered in
//! `sync_cursors` from the store's creation until the transaction that recovered, and the
//! writes that put back what the kitchen's own records in PostgreSQL say (bumps, readiness,
//! acceptance, allergen acknowledgements, rush, lines tapped off, batch sessions) and each
//! store's sequence baseline.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::{Store, StoreError};
use crate::record::{Record, Session};

/// `sync_cursors` row made with a new store: 0 until the recovery ran, then when it did (ms).
/// A store made before this row existed has none, and never recovers.
pub(super) const RECOVERY: &str = "recovery";

/// Marks a store just created (no migration had run): its recovery is to run.
pub(super) fn mark_new(connection: &Connection) -> Result<(), StoreError> {
    connection.execute(
        "INSERT OR IGNORE INTO sync_cursors (name, value) VALUES (?1, 0)",
        [RECOVERY],
    )?;
    Ok(())
}

/// Whether the store was made on this card and has not recovered yet.
pub fn recovery_pending(connection: &Connection) -> Result<bool, StoreError> {
    let value: Option<i64> = connection
        .prepare_cached("SELECT value FROM sync_cursors WHERE name = ?1")?
        .query_row([RECOVERY], |row| row.get(0))
        .optional()?;
    Ok(value == Some(0))
}

/// Remembers that the recovery ran (in its own transaction: it runs once).
pub fn finish_recovery(tx: &Transaction<'_>, now_ms: i64) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE sync_cursors SET value = ?2 WHERE name = ?1 AND value = 0",
        params![RECOVERY, now_ms.max(1)],
    )?;
    Ok(())
}

/// Remembers the record id of an order's `order.created` PostgreSQL holds (the first kept).
pub fn remember_created(
    tx: &Transaction<'_>,
    order_id: &str,
    record_id: &str,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO created_records (order_id, record_id) VALUES (?1, ?2)",
    )?
    .execute([order_id, record_id])?;
    Ok(())
}

/// The record id PostgreSQL holds the order's `order.created` under, if a recovery read one.
pub fn created_record_id(
    connection: &Connection,
    order_id: &str,
) -> Result<Option<String>, StoreError> {
    Ok(connection
        .prepare_cached("SELECT record_id FROM created_records WHERE order_id = ?1")?
        .query_row([order_id], |row| row.get(0))
        .optional()?)
}

/// The store's sequence baseline: `sequence` (the relay's newest) unless a delivery already set
/// a later one. Earlier numbers are history, not a gap.
pub fn set_baseline(tx: &Transaction<'_>, store_id: &str, sequence: u64) -> Result<(), StoreError> {
    if sequence == 0 {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO store_sequences (store_id, last_sequence) VALUES (?1, ?2)
         ON CONFLICT (store_id) DO UPDATE SET
             last_sequence = max(last_sequence, excluded.last_sequence)",
        params![store_id, sequence as i64],
    )?;
    Ok(())
}

/// Puts back what one of the box's own records did to an order this store holds, as the old
/// card had it; `at_ms` is when the record was made. Whether the displays are to be shown the
/// record (the order is held and the kind is kitchen state the record itself tells).
pub fn restore_record(
    tx: &Transaction<'_>,
    record: &Record,
    at_ms: i64,
) -> Result<bool, StoreError> {
    let Some(order_id) = record.order_id() else {
        return Ok(false);
    };
    let held = tx
        .query_row(
            "SELECT 1 FROM orders WHERE order_id = ?1",
            [order_id],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if !held {
        return Ok(false);
    }
    match record {
        Record::OrderBumped(bumps) | Record::OrderRecalled(bumps) => {
            let bumped = matches!(record, Record::OrderBumped(_));
            super::set_bumps(tx, order_id, &bumps.stations, bumped, at_ms)?;
        }
        Record::OrderReady(_) => {
            super::set_ready(tx, order_id, Some(at_ms))?;
        }
        Record::OrderAccepted(accepted) => {
            super::set_prep_minutes(tx, order_id, accepted.prep_minutes, at_ms)?;
        }
        Record::OrderPrepTime(prep) => {
            super::set_prep_minutes(tx, order_id, prep.prep_minutes, at_ms)?;
        }
        Record::OrderHandedOff(_) => super::close_order(tx, order_id, "closed", at_ms)?,
        Record::OrderCancelRequested(_) => super::close_order(tx, order_id, "cancelled", at_ms)?,
        // New lines: what was acknowledged and tapped off went with the old ones (as when the
        // update was applied on the old card).
        Record::OrderUpdated(_) => {
            tx.execute("DELETE FROM allergen_acks WHERE order_id = ?1", [order_id])?;
            tx.execute("DELETE FROM line_done WHERE order_id = ?1", [order_id])?;
            return Ok(false);
        }
        Record::AllergenAcknowledged(ack) => {
            tx.execute(
                "INSERT OR IGNORE INTO allergen_acks (order_id, station_id, acknowledged_at, device)
                 VALUES (?1, ?2, ?3, ?4)",
                params![order_id, ack.station_id, at_ms, ack.device],
            )?;
        }
        Record::OrderRushed(rush) => {
            let rush_at = if rush.rush {
                rush.rush_at_ms.or(Some(at_ms))
            } else {
                None
            };
            tx.execute(
                "UPDATE orders SET rush_at = ?2, rush_by = ?3 WHERE order_id = ?1",
                params![order_id, rush_at, rush.rush.then_some(&rush.device)],
            )?;
        }
        Record::LineTapped(line) if line.done => {
            for item in &line.items {
                tx.execute(
                    "INSERT OR IGNORE INTO line_done
                         (order_id, line_no, station_id, item_id, units, done_at, device)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        order_id,
                        line.line_no,
                        line.station_id,
                        item.item_id,
                        item.units,
                        at_ms,
                        line.device
                    ],
                )?;
            }
        }
        Record::LineTapped(line) => {
            tx.execute(
                "DELETE FROM line_done WHERE order_id = ?1 AND line_no = ?2 AND station_id = ?3",
                params![order_id, line.line_no, line.station_id],
            )?;
        }
        // The order itself comes from the relay's events; the rest is not order state.
        _ => return Ok(false),
    }
    Ok(true)
}

/// Puts back a batch session as PostgreSQL has it: started, and if completed, its units given
/// to the orders this store holds (an allocation to an order not recovered — finished,
/// cancelled — has nothing left to count). The session keeps its whole allocation list.
pub fn restore_session(tx: &Transaction<'_>, session: &Session) -> Result<(), StoreError> {
    let inserted = tx.execute(
        "INSERT OR IGNORE INTO batch_sessions (session_id, station_id, item_id, item_name,
                                               quantity, device, started_at, completed_at,
                                               allocations)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            session.session_id,
            session.station_id,
            session.item_id,
            session.item_name,
            session.quantity,
            session.device,
            session.started_at_ms,
            session.completed_at_ms,
            session
                .completed_at_ms
                .map(|_| serde_json::to_string(&session.allocations).unwrap_or_default()),
        ],
    )?;
    if inserted == 0 || session.completed_at_ms.is_none() {
        return Ok(());
    }
    for allocation in &session.allocations {
        tx.execute(
            "INSERT INTO order_done (order_id, station_id, item_id, units)
             SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM orders WHERE order_id = ?1)
             ON CONFLICT (order_id, station_id, item_id) DO UPDATE SET units = units + excluded.units",
            params![
                allocation.order_id,
                session.station_id,
                session.item_id,
                allocation.units
            ],
        )?;
    }
    Ok(())
}

impl Store {
    /// Whether this store's recovery is still to run (`recovery_pending`).
    pub fn recovery_pending(&self) -> Result<bool, StoreError> {
        recovery_pending(&self.connection)
    }
}
