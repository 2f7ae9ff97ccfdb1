//! Orders: applying an `OrderEvent` (de-duplicated by event id, per-store sequence tracking,
//! newer snapshots only), bumps, readiness, and the sequence gaps and reconcile points.

use kitchen_proto::{OrderEvent, OrderStatus, SchedulingType};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::{Store, StoreError};
use crate::record::Change;

/// The result of applying an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The event id was applied before: nothing changed.
    Duplicate,
    Applied {
        change: Change,
        /// Sequence numbers of this store skipped by this event (inclusive), if any.
        gap: Option<(u64, u64)>,
    },
}

/// A run of sequence numbers not received from a store (as `/readyz` and the heartbeat show it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Gap {
    pub store_id: String,
    pub from: u64,
    pub to: u64,
}

/// Applies one event: de-duplicates by event id, tracks the store's sequence and updates the
/// order. The caller logs what changed, in the same transaction.
pub fn apply_event(
    tx: &Transaction<'_>,
    event: &OrderEvent,
    now_ms: i64,
) -> Result<Applied, StoreError> {
    let fresh = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO processed_events (event_id, store_id, sequence, applied_at)
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            event.event_id,
            event.store_id,
            (event.sequence > 0).then_some(event.sequence as i64),
            now_ms
        ])?;
    if fresh == 0 {
        return Ok(Applied::Duplicate);
    }
    let gap = track_sequence(tx, &event.store_id, event.sequence, now_ms)?;
    let change = apply_to_order(tx, event, now_ms)?;
    Ok(Applied::Applied { change, gap })
}

/// Marks `order_id` bumped (or, `bumped` false, recalled) at `stations`. Returns the stations
/// that changed, or `None` for an order not held. Idempotent.
pub fn set_bumps(
    tx: &Transaction<'_>,
    order_id: &str,
    stations: &[String],
    bumped: bool,
    now_ms: i64,
) -> Result<Option<Vec<String>>, StoreError> {
    let known = tx
        .query_row(
            "SELECT 1 FROM orders WHERE order_id = ?1",
            [order_id],
            |_| Ok(()),
        )
        .optional()?;
    if known.is_none() {
        return Ok(None);
    }
    let mut changed = Vec::new();
    for station in stations {
        let rows = if bumped {
            tx.execute(
                "INSERT OR IGNORE INTO order_bumps (order_id, station_id, bumped_at)
                 VALUES (?1, ?2, ?3)",
                params![order_id, station, now_ms],
            )?
        } else {
            tx.execute(
                "DELETE FROM order_bumps WHERE order_id = ?1 AND station_id = ?2",
                params![order_id, station],
            )?
        };
        if rows > 0 {
            changed.push(station.clone());
        }
    }
    Ok(Some(changed))
}

/// Sets or clears the order's ready time. Returns whether it changed.
pub fn set_ready(
    tx: &Transaction<'_>,
    order_id: &str,
    ready_at_ms: Option<i64>,
) -> Result<bool, StoreError> {
    let changed = match ready_at_ms {
        Some(at) => tx.execute(
            "UPDATE orders SET ready_at = ?2 WHERE order_id = ?1 AND ready_at IS NULL",
            params![order_id, at],
        )?,
        None => tx.execute(
            "UPDATE orders SET ready_at = NULL WHERE order_id = ?1 AND ready_at IS NOT NULL",
            [order_id],
        )?,
    };
    Ok(changed > 0)
}

/// Open orders whose friendly id is `friendly_id`.
pub fn open_orders_by_friendly_id(
    connection: &Connection,
    friendly_id: &str,
) -> Result<Vec<String>, StoreError> {
    let mut statement = connection.prepare_cached(
        "SELECT order_id FROM orders WHERE state = 'open' AND friendly_id = ?1 ORDER BY order_id",
    )?;
    let ids = statement
        .query_map([friendly_id], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(ids)
}

/// Records the store's newest sequence number and any numbers it skipped; a late number fills
/// its gap. Returns the gap this event opened.
fn track_sequence(
    tx: &Transaction<'_>,
    store_id: &str,
    sequence: u64,
    now_ms: i64,
) -> Result<Option<(u64, u64)>, StoreError> {
    if sequence == 0 {
        return Ok(None);
    }
    let sequence = sequence as i64;
    let last: Option<i64> = tx
        .query_row(
            "SELECT last_sequence FROM store_sequences WHERE store_id = ?1",
            [store_id],
            |row| row.get(0),
        )
        .optional()?;
    match last {
        // The first event seen from a store is the baseline, not a gap.
        None => {
            tx.execute(
                "INSERT INTO store_sequences (store_id, last_sequence) VALUES (?1, ?2)",
                params![store_id, sequence],
            )?;
            Ok(None)
        }
        Some(last) if sequence > last => {
            tx.execute(
                "UPDATE store_sequences SET last_sequence = ?2 WHERE store_id = ?1",
                params![store_id, sequence],
            )?;
            if sequence == last + 1 {
                return Ok(None);
            }
            tx.execute(
                "INSERT INTO sequence_gaps (store_id, from_sequence, to_sequence, detected_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![store_id, last + 1, sequence - 1, now_ms],
            )?;
            Ok(Some(((last + 1) as u64, (sequence - 1) as u64)))
        }
        Some(_) => {
            // Late: it fills (part of) a gap.
            let gap: Option<(i64, i64)> = tx
                .query_row(
                    "SELECT from_sequence, to_sequence FROM sequence_gaps
                     WHERE store_id = ?1 AND from_sequence <= ?2 AND to_sequence >= ?2",
                    params![store_id, sequence],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            if let Some((from, to)) = gap {
                tx.execute(
                    "DELETE FROM sequence_gaps WHERE store_id = ?1 AND from_sequence = ?2",
                    params![store_id, from],
                )?;
                for (a, b) in [(from, sequence - 1), (sequence + 1, to)] {
                    if a <= b {
                        tx.execute(
                            "INSERT INTO sequence_gaps
                                 (store_id, from_sequence, to_sequence, detected_at)
                             VALUES (?1, ?2, ?3, ?4)",
                            params![store_id, a, b, now_ms],
                        )?;
                    }
                }
            }
            Ok(None)
        }
    }
}

fn state_of(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::Canceled | OrderStatus::Rejected => "cancelled",
        OrderStatus::Prepared | OrderStatus::PickedUp | OrderStatus::Fulfilled => "closed",
        _ => "open",
    }
}

/// A status that came before its order's first snapshot (`early_statuses`).
struct EarlyStatus {
    status: OrderStatus,
    event_time_ms: i64,
    cancellation_reason: String,
}

/// Keeps a status event for an order not held yet: the newest by event time, a cancellation
/// over anything (final, as the relay has it).
fn keep_early_status(
    tx: &Transaction<'_>,
    event: &OrderEvent,
    now_ms: i64,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO early_statuses (order_id, status, event_time, cancellation_reason, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (order_id) DO UPDATE SET
             status = excluded.status, event_time = excluded.event_time,
             cancellation_reason = excluded.cancellation_reason
         WHERE early_statuses.status NOT IN ('ORDER_STATUS_CANCELED', 'ORDER_STATUS_REJECTED')
           AND (excluded.status IN ('ORDER_STATUS_CANCELED', 'ORDER_STATUS_REJECTED')
                OR excluded.event_time >= early_statuses.event_time)",
        params![
            event.order_id,
            event.status().as_str_name(),
            event.event_time_ms,
            event.cancellation_reason,
            now_ms
        ],
    )?;
    Ok(())
}

/// Removes and returns the early status of `order_id`, if one came.
fn take_early_status(
    tx: &Transaction<'_>,
    order_id: &str,
) -> Result<Option<EarlyStatus>, StoreError> {
    let early = tx
        .query_row(
            "DELETE FROM early_statuses WHERE order_id = ?1
             RETURNING status, event_time, cancellation_reason",
            [order_id],
            |row| {
                Ok(EarlyStatus {
                    status: OrderStatus::from_str_name(&row.get::<_, String>(0)?)
                        .unwrap_or_default(),
                    event_time_ms: row.get(1)?,
                    cancellation_reason: row.get(2)?,
                })
            },
        )
        .optional()?;
    Ok(early)
}

fn apply_to_order(
    tx: &Transaction<'_>,
    event: &OrderEvent,
    now_ms: i64,
) -> Result<Change, StoreError> {
    let held: Option<(Option<i64>, String)> = tx
        .query_row(
            "SELECT snapshot_event_time, state FROM orders WHERE order_id = ?1",
            [&event.order_id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let was_cancelled = held.as_ref().is_some_and(|(_, state)| state == "cancelled");
    let mut status = event.status();
    let mut cancellation_reason = event.cancellation_reason.clone();
    // The order's first snapshot takes a status that came before it, if newer (or final).
    if held.is_none()
        && event.has_snapshot
        && let Some(early) = take_early_status(tx, &event.order_id)?
        && (state_of(early.status) == "cancelled" || early.event_time_ms >= event.event_time_ms)
    {
        status = early.status;
        if !early.cancellation_reason.is_empty() {
            cancellation_reason = early.cancellation_reason;
        }
    }
    let mut state = state_of(status);
    if was_cancelled {
        state = "cancelled";
    }
    let cancelled_now = state == "cancelled" && !was_cancelled;

    if !event.has_snapshot {
        if held.is_none() {
            keep_early_status(tx, event, now_ms)?;
            return Ok(Change::UnknownOrder);
        }
        tx.execute(
            "UPDATE orders SET state = ?2, status = ?3, updated_at = ?4,
                 cancellation_reason = CASE WHEN ?5 = '' THEN cancellation_reason ELSE ?5 END
             WHERE order_id = ?1",
            params![
                event.order_id,
                state,
                event.status().as_str_name(),
                now_ms,
                event.cancellation_reason
            ],
        )?;
        return Ok(if cancelled_now {
            Change::Cancelled
        } else {
            Change::Status
        });
    }

    if let Some((Some(held_time), _)) = &held
        && event.event_time_ms <= *held_time
    {
        return Ok(Change::Stale);
    }
    let fulfillment = event.fulfillment.clone().unwrap_or_default();
    tx.execute(
        "INSERT INTO orders (order_id, store_id, source, friendly_id, state, status,
             snapshot_event_time, received_at, ordered_at, pickup_time, estimated_pickup_time,
             estimated_prep_seconds, scheduled, customer_name, customer_note,
             cancellation_reason, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
         ON CONFLICT (order_id) DO UPDATE SET
             store_id = excluded.store_id, source = excluded.source,
             friendly_id = excluded.friendly_id, state = excluded.state,
             status = excluded.status, snapshot_event_time = excluded.snapshot_event_time,
             ordered_at = excluded.ordered_at, pickup_time = excluded.pickup_time,
             estimated_pickup_time = excluded.estimated_pickup_time,
             estimated_prep_seconds = excluded.estimated_prep_seconds,
             scheduled = excluded.scheduled, customer_name = excluded.customer_name,
             customer_note = excluded.customer_note,
             cancellation_reason = excluded.cancellation_reason,
             updated_at = excluded.updated_at",
        params![
            event.order_id,
            event.store_id,
            event.source,
            event.friendly_id,
            state,
            status.as_str_name(),
            event.event_time_ms,
            if event.received_at_ms > 0 {
                event.received_at_ms
            } else {
                now_ms
            },
            event.ordered_at_ms,
            fulfillment.pickup_time_ms,
            fulfillment.estimated_pickup_time_ms,
            event.estimated_prep_seconds,
            fulfillment.scheduling_type() == SchedulingType::FixedTime,
            event.customer_name,
            event.customer_note,
            cancellation_reason,
            now_ms,
        ],
    )?;
    tx.execute(
        "DELETE FROM order_lines WHERE order_id = ?1",
        [&event.order_id],
    )?;
    let mut insert = tx.prepare(
        "INSERT INTO order_lines (order_id, line_no, parent_no, depth, item_id, sku_id, name,
                                  quantity, note, price)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    let mut next_no = 0i64;
    let mut stack: Vec<(&kitchen_proto::LineItem, Option<i64>, i64)> = event
        .items
        .iter()
        .rev()
        .map(|item| (item, None, 0))
        .collect();
    while let Some((item, parent_no, depth)) = stack.pop() {
        let line_no = next_no;
        next_no += 1;
        insert.execute(params![
            event.order_id,
            line_no,
            parent_no,
            depth,
            item.item_id,
            item.sku_id,
            item.name,
            item.quantity,
            item.note,
            item.price
        ])?;
        for modifier in item.modifiers.iter().rev() {
            stack.push((modifier, Some(line_no), depth + 1));
        }
    }
    Ok(match (held.is_some(), cancelled_now) {
        (_, true) => Change::Cancelled,
        (false, false) => Change::Created,
        (true, false) => Change::Updated,
    })
}

impl Store {
    /// Applies one event in its own transaction (without logging it); see `apply_event`.
    pub fn apply(&mut self, event: &OrderEvent, now_ms: i64) -> Result<Applied, StoreError> {
        let tx = self.transaction()?;
        let applied = apply_event(&tx, event, now_ms)?;
        tx.commit()?;
        Ok(applied)
    }

    /// Sequence numbers still missing, per store.
    pub fn sequence_gaps(&self) -> Result<Vec<Gap>, StoreError> {
        let mut statement = self.connection.prepare_cached(
            "SELECT store_id, from_sequence, to_sequence FROM sequence_gaps
             ORDER BY store_id, from_sequence",
        )?;
        let gaps = statement
            .query_map([], |row| {
                Ok(Gap {
                    store_id: row.get(0)?,
                    from: row.get::<_, i64>(1)? as u64,
                    to: row.get::<_, i64>(2)? as u64,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(gaps)
    }

    /// The order's state and status, if held.
    pub fn order_state(&self, order_id: &str) -> Result<Option<(String, String)>, StoreError> {
        Ok(self
            .connection
            .query_row(
                "SELECT state, status FROM orders WHERE order_id = ?1",
                [order_id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?)
    }

    /// Per store, the sequence after which events may be missing: just before its first open
    /// gap, else the last applied. Stores never heard from are not listed (their first event
    /// sets the baseline).
    pub fn reconcile_points(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let mut statement = self.connection.prepare_cached(
            "SELECT s.store_id,
                    coalesce((SELECT min(g.from_sequence) - 1 FROM sequence_gaps g
                              WHERE g.store_id = s.store_id), s.last_sequence)
             FROM store_sequences s ORDER BY s.store_id",
        )?;
        let points = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?.max(0) as u64,
                ))
            })?
            .collect::<Result<_, _>>()?;
        Ok(points)
    }
}
