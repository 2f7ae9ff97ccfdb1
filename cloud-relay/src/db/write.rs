//! One PostgreSQL transaction for a batch of webhooks: de-duplicate, decide what each event does
//! to its order, write the normalised rows, hand out per-store sequence numbers and fill the
//! outbox. Every statement covers the whole batch (arrays + `unnest`), so a batch of 64 events
//! costs about a dozen round trips, not hundreds.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use prost::Message;
use sqlx::{Postgres, Transaction};

use super::{
    model::{Incoming, OrderState, Outcome, StatusChange},
    rows::BatchRows,
};
use crate::otter::{self, EventKind, OrderStatus, WebhookEvent};

/// Why a batch must be retried from scratch (another relay stored one of its events meanwhile).
#[derive(Debug)]
pub enum WriteError {
    Database(sqlx::Error),
    Raced,
}

impl From<sqlx::Error> for WriteError {
    fn from(error: sqlx::Error) -> Self {
        Self::Database(error)
    }
}

/// Stores `batch` in one transaction (the caller commits). Returns one outcome per event.
pub async fn write_batch(
    tx: &mut Transaction<'_, Postgres>,
    batch: &[Incoming],
) -> Result<Vec<Outcome>, WriteError> {
    let mut outcomes = vec![Outcome::Duplicate; batch.len()];

    // Duplicates: already stored, or repeated inside this batch (the first one wins).
    let held = load_held(tx, batch).await?;
    let mut seen = HashSet::new();
    let fresh: Vec<usize> = (0..batch.len())
        .filter(|&i| {
            let event_id = batch[i].event.event_id.as_str();
            !held.stored_events.contains(event_id) && seen.insert(event_id)
        })
        .collect();
    if fresh.is_empty() {
        return Ok(outcomes);
    }
    let mut orders = held.orders;
    let mut status_changes = Vec::new();
    for &index in &fresh {
        let event = &batch[index].event;
        outcomes[index] = match &event.kind {
            EventKind::Other => Outcome::Stored,
            EventKind::Snapshot { order, .. } => {
                let state = orders.get_mut(&order.id).expect("loaded above");
                if state
                    .snapshot_time
                    .is_some_and(|held| event.event_time <= held)
                {
                    Outcome::Stale
                } else {
                    state.snapshot_time = Some(event.event_time);
                    state.new_snapshot = Some(index);
                    let status = order.status.unwrap_or(OrderStatus::NewOrder);
                    if apply_status(state, status, event.event_time, None) {
                        status_changes.push(StatusChange {
                            index,
                            order_id: order.id.clone(),
                            status,
                            cancellation_reason: None,
                        });
                    }
                    Outcome::Applied
                }
            }
            EventKind::Status {
                order_id,
                status,
                cancellation_reason,
                ..
            } => {
                let state = orders.get_mut(order_id).expect("loaded above");
                apply_status(
                    state,
                    *status,
                    event.event_time,
                    cancellation_reason.clone(),
                );
                // Every status event is history, even one that arrives late.
                status_changes.push(StatusChange {
                    index,
                    order_id: order_id.clone(),
                    status: *status,
                    cancellation_reason: cancellation_reason.clone(),
                });
                Outcome::Applied
            }
        };
    }

    delete_replaced_lines(tx, &orders).await?;
    let mut rows = BatchRows::default();
    for &index in &fresh {
        let incoming = &batch[index];
        rows.push_event(incoming, outcomes[index]);
        if kitchen_bound(incoming, outcomes[index]) {
            let status = event_status(&incoming.event, &orders);
            let order_event = otter::order_event(&incoming.event, status, incoming.received_at);
            rows.push_outbox(incoming, Some(order_event.encode_to_vec()));
        } else {
            rows.push_outbox(incoming, None);
        }
    }
    let mut sorted: Vec<(&String, &OrderState)> = orders.iter().collect();
    sorted.sort_by_key(|(id, _)| id.as_str());
    for (order_id, state) in sorted {
        match state.new_snapshot {
            Some(index) => {
                let event = &batch[index].event;
                let EventKind::Snapshot { order, .. } = &event.kind else {
                    unreachable!("new_snapshot points at a snapshot event");
                };
                rows.push_order(event, order, state);
            }
            None if state.exists && state.status_changed => rows.push_status_only(order_id, state),
            None => {}
        }
    }
    for change in &status_changes {
        rows.push_status_change(&batch[change.index].event, change);
    }
    let inserted = rows.write(tx).await?;
    if inserted != fresh.len() as i64 {
        // Another relay instance stored one of these between our read and our insert.
        return Err(WriteError::Raced);
    }
    Ok(outcomes)
}

/// Moves an order's status; CANCELED and REJECTED are final, and an older event never
/// overrides a newer one — except a cancellation, which applies whatever its time: final means
/// final in whichever order the events arrive (a cancel delayed by Otter's retries behind a
/// later update would otherwise leave the kitchen cooking a cancelled order). Returns whether
/// the status changed.
fn apply_status(
    state: &mut OrderState,
    status: OrderStatus,
    time: DateTime<Utc>,
    cancellation_reason: Option<String>,
) -> bool {
    let current_final = state.status.is_some_and(OrderStatus::is_cancellation);
    let newer = status.is_cancellation() || state.status_time.is_none_or(|held| time >= held);
    if current_final || !newer {
        return false;
    }
    let changed = state.status != Some(status);
    state.status = Some(status);
    state.status_time = Some(time);
    if status.is_cancellation() && cancellation_reason.is_some() {
        state.cancellation_reason = cancellation_reason;
    }
    state.status_changed |= changed;
    changed
}

/// What the database already holds for a batch: which of its events are stored, and the
/// orders it touches (locked), with the status history of orders not yet held (a status event
/// may arrive before its order). One statement, one round trip.
struct Held {
    stored_events: HashSet<String>,
    orders: HashMap<String, OrderState>,
}

async fn load_held(
    tx: &mut Transaction<'_, Postgres>,
    batch: &[Incoming],
) -> Result<Held, sqlx::Error> {
    let event_ids: Vec<&str> = batch.iter().map(|i| i.event.event_id.as_str()).collect();
    let order_ids: Vec<&str> = batch
        .iter()
        .filter_map(|i| i.event.kind.order_id())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    type Row = (
        i32,
        String,
        Option<DateTime<Utc>>,
        Option<String>,
        Option<DateTime<Utc>>,
        Option<String>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "WITH locked AS (
             SELECT order_id, snapshot_event_time, status, status_event_time, cancellation_reason
             FROM otter.orders WHERE order_id = ANY($2) ORDER BY order_id FOR UPDATE)
         SELECT 0 AS kind, event_id, NULL::timestamptz AS time_a, NULL::text AS status,
                NULL::timestamptz AS time_b, NULL::text AS reason, 0::bigint AS seq
         FROM otter.webhook_events WHERE event_id = ANY($1)
         UNION ALL
         SELECT 1, order_id, snapshot_event_time, status, status_event_time, cancellation_reason, 0
         FROM locked
         UNION ALL
         SELECT 2, order_id, event_time, status, NULL, cancellation_reason, id
         FROM otter.order_status_changes
         WHERE order_id = ANY($2) AND order_id NOT IN (SELECT order_id FROM locked)
         ORDER BY kind, time_a, seq",
    )
    .bind(&event_ids)
    .bind(&order_ids)
    .fetch_all(&mut **tx)
    .await?;
    let mut held = Held {
        stored_events: HashSet::new(),
        orders: order_ids
            .iter()
            .map(|id| ((*id).to_owned(), OrderState::default()))
            .collect(),
    };
    for (kind, id, time_a, status, time_b, reason) in rows {
        match kind {
            0 => {
                held.stored_events.insert(id);
            }
            1 => {
                let state = held.orders.entry(id).or_default();
                state.exists = true;
                state.snapshot_time = time_a;
                state.status = status.as_deref().map(OrderStatus::parse);
                state.status_time = time_b;
                state.cancellation_reason = reason;
            }
            _ => {
                // History of an order not held yet, oldest first.
                if let (Some(state), Some(status), Some(time)) =
                    (held.orders.get_mut(&id), status, time_a)
                {
                    apply_status(state, OrderStatus::parse(&status), time, reason);
                    state.status_changed = false;
                }
            }
        }
    }
    Ok(held)
}

/// Orders that get a new snapshot lose their old lines, modifiers and promotions first (a
/// snapshot replaces, it does not merge).
async fn delete_replaced_lines(
    tx: &mut Transaction<'_, Postgres>,
    orders: &HashMap<String, OrderState>,
) -> Result<(), sqlx::Error> {
    let replaced: Vec<&str> = orders
        .iter()
        .filter(|(_, state)| state.exists && state.new_snapshot.is_some())
        .map(|(id, _)| id.as_str())
        .collect();
    if replaced.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "WITH modifiers AS (DELETE FROM otter.order_item_modifiers WHERE order_id = ANY($1)),
              lines AS (DELETE FROM otter.order_items WHERE order_id = ANY($1))
         DELETE FROM otter.order_promotions WHERE order_id = ANY($1)",
    )
    .bind(&replaced)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Whether an event goes to the kitchens: it changed an order and names a store to route to.
fn kitchen_bound(incoming: &Incoming, outcome: Outcome) -> bool {
    outcome == Outcome::Applied && !incoming.event.store_id.is_empty()
}

/// The status a kitchen is told for an event: the order's status once the relay applied the
/// batch, so a late or out-of-order event never moves a kitchen's order backwards (and a
/// cancellation that arrived first wins).
fn event_status(event: &WebhookEvent, orders: &HashMap<String, OrderState>) -> OrderStatus {
    let held = |order_id: &str| orders.get(order_id).and_then(|state| state.status);
    match &event.kind {
        EventKind::Snapshot { order, .. } => held(&order.id).unwrap_or(OrderStatus::NewOrder),
        EventKind::Status {
            order_id, status, ..
        } => held(order_id).unwrap_or(*status),
        EventKind::Other => OrderStatus::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::{OrderState, OrderStatus, apply_status};

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).expect("valid time")
    }

    /// The final status of an order after `events` (status, time) applied in that order.
    fn check(events: &[(OrderStatus, i64)], expected: OrderStatus) {
        let mut state = OrderState {
            exists: true,
            ..OrderState::default()
        };
        for (status, time) in events {
            apply_status(&mut state, *status, at(*time), None);
        }
        assert_eq!(state.status, Some(expected), "{events:?}");
    }

    #[test]
    fn a_cancellation_is_final_in_whichever_order_the_events_arrive() {
        use OrderStatus::{Canceled, Confirmed, NewOrder};
        // Found by the chaos suite (docs/reliability.md): the cancel's delivery was retried
        // through a PostgreSQL outage and arrived after a later update.
        check(&[(NewOrder, 1), (Canceled, 2), (NewOrder, 3)], Canceled);
        check(&[(NewOrder, 1), (NewOrder, 3), (Canceled, 2)], Canceled);
        check(&[(Canceled, 2), (NewOrder, 1)], Canceled);
        // Other statuses still never move the order backwards.
        check(&[(Confirmed, 3), (NewOrder, 2)], Confirmed);
        check(&[(NewOrder, 2), (Confirmed, 3)], Confirmed);
    }
}
