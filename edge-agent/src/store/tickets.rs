//! Reading orders back: as the batch calculation takes them and as tickets on a display, and
//! the consistent snapshot the displays start from.

use std::collections::BTreeMap;

use rusqlite::Connection;

use super::{Store, StoreError};
use super::{log::last_event_seq, sessions::open_sessions};
use crate::record::{Ticket, TicketLine};
use crate::{
    batch::{self, Line, OrderState},
    record::Session,
};

/// Everything a display needs, read in one read transaction so it matches `seq`.
#[derive(Debug, Clone, Default)]
pub struct StateSnapshot {
    /// The newest event-log sequence the state includes.
    pub seq: i64,
    pub orders: Vec<batch::Order>,
    pub tickets: Vec<Ticket>,
    pub open_sessions: Vec<Session>,
}

/// The condition selecting one order (`?1`) or all: one statement text per case, so a single
/// order is looked up by its key rather than by scanning every open order.
fn only_filter(only: Option<&str>) -> &'static str {
    if only.is_some() {
        "o.order_id = ?1"
    } else {
        "?1 IS NULL"
    }
}

/// Open orders (all, or only `only`) as the batch calculation takes them.
pub fn load_orders(
    connection: &Connection,
    only: Option<&str>,
) -> Result<Vec<batch::Order>, StoreError> {
    let filter = format!("o.state = 'open' AND {}", only_filter(only));
    load_orders_where(connection, &filter, &[&only])
}

/// Orders received in `[from_ms, to_ms)` that were not cancelled, open or not (the reports).
pub(super) fn orders_received_between(
    connection: &Connection,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<batch::Order>, StoreError> {
    load_orders_where(
        connection,
        "o.received_at >= ?1 AND o.received_at < ?2 AND o.state <> 'cancelled'",
        &[&from_ms, &to_ms],
    )
}

/// Orders matching `filter` (a condition on `o`, the orders table, over `params`). Each query
/// starts from `orders` (`CROSS JOIN` fixes SQLite's join order): the planner would otherwise
/// scan every line and bump ever kept to probe `orders` — 0.3 s per query over a month of a busy
/// kitchen's orders when a report asks for a day.
fn load_orders_where(
    connection: &Connection,
    filter: &str,
    params: &[&dyn rusqlite::ToSql],
) -> Result<Vec<batch::Order>, StoreError> {
    let mut orders: BTreeMap<String, batch::Order> = BTreeMap::new();
    let mut statement = connection.prepare_cached(&format!(
        "SELECT order_id, received_at, ordered_at, pickup_time, estimated_pickup_time,
                estimated_prep_seconds, scheduled, state
         FROM orders o WHERE {filter}"
    ))?;
    let rows = statement.query_map(params, |row| {
        Ok(batch::Order {
            order_id: row.get(0)?,
            state: match row.get_ref(7)?.as_str()? {
                "open" => OrderState::Open,
                "cancelled" => OrderState::Cancelled,
                _ => OrderState::Closed,
            },
            received_at_ms: row.get(1)?,
            ordered_at_ms: row.get(2)?,
            pickup_time_ms: row.get(3)?,
            estimated_pickup_time_ms: row.get(4)?,
            estimated_prep_seconds: row.get(5)?,
            scheduled: row.get(6)?,
            ..batch::Order::default()
        })
    })?;
    for order in rows {
        let order = order?;
        orders.insert(order.order_id.clone(), order);
    }

    let mut statement = connection.prepare_cached(&format!(
        "SELECT l.order_id, l.line_no, l.parent_no, l.item_id, l.sku_id, l.name, l.quantity
         FROM orders o CROSS JOIN order_lines l USING (order_id)
         WHERE {filter}
         ORDER BY l.order_id, l.line_no"
    ))?;
    let mut flat: BTreeMap<String, Vec<(i64, Option<i64>, Line)>> = BTreeMap::new();
    let rows = statement.query_map(params, |row| {
        let text = |index: usize| -> rusqlite::Result<Option<String>> {
            let value: String = row.get(index)?;
            Ok((!value.is_empty()).then_some(value))
        };
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, Option<i64>>(2)?,
            Line {
                item_id: text(3)?,
                sku_id: text(4)?,
                name: text(5)?,
                quantity: row.get(6)?,
                modifiers: Vec::new(),
            },
        ))
    })?;
    for row in rows {
        let (order_id, line_no, parent_no, line) = row?;
        flat.entry(order_id)
            .or_default()
            .push((line_no, parent_no, line));
    }
    for (order_id, lines) in flat {
        if let Some(order) = orders.get_mut(&order_id) {
            order.lines = rebuild(lines, |line, modifiers| line.modifiers = modifiers);
        }
    }

    let mut statement = connection.prepare_cached(&format!(
        "SELECT b.order_id, b.station_id FROM orders o CROSS JOIN order_bumps b USING (order_id)
         WHERE {filter}"
    ))?;
    let rows = statement.query_map(params, |row| Ok((row.get::<_, String>(0)?, row.get(1)?)))?;
    for row in rows {
        let (order_id, station_id) = row?;
        if let Some(order) = orders.get_mut(&order_id) {
            order.bumped_at.insert(station_id);
        }
    }
    let mut statement = connection.prepare_cached(&format!(
        "SELECT d.order_id, d.station_id, d.item_id, d.units
         FROM orders o CROSS JOIN order_done d USING (order_id)
         WHERE {filter}"
    ))?;
    let rows = statement.query_map(params, |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get(1)?,
            row.get(2)?,
            row.get(3)?,
        ))
    })?;
    for row in rows {
        let (order_id, station_id, item_id, units) = row?;
        if let Some(order) = orders.get_mut(&order_id) {
            order.done.insert((station_id, item_id), units);
        }
    }
    // Lines tapped off count as done like a batch's units.
    let mut statement = connection.prepare_cached(&format!(
        "SELECT d.order_id, d.station_id, d.item_id, sum(d.units)
         FROM orders o CROSS JOIN line_done d USING (order_id)
         WHERE {filter}
         GROUP BY d.order_id, d.station_id, d.item_id"
    ))?;
    let rows = statement.query_map(params, |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, u32>(3)?,
        ))
    })?;
    for row in rows {
        let (order_id, station_id, item_id, units) = row?;
        if let Some(order) = orders.get_mut(&order_id) {
            let done = order.done.entry((station_id, item_id)).or_default();
            *done = done.saturating_add(units);
        }
    }
    Ok(orders.into_values().collect())
}

/// Open orders (all, or only `only`) with their lines and notes: rush orders first (in the
/// order they were marked), then oldest first.
pub fn load_tickets(
    connection: &Connection,
    only: Option<&str>,
) -> Result<Vec<Ticket>, StoreError> {
    let only_filter = only_filter(only);
    let mut statement = connection.prepare_cached(&format!(
        "SELECT order_id, store_id, source, friendly_id, status, customer_name, customer_note,
                received_at, ready_at IS NOT NULL, prep_minutes, rush_at
         FROM orders o WHERE state = 'open' AND {only_filter}
         ORDER BY rush_at IS NULL, rush_at, received_at, order_id"
    ))?;
    let mut tickets: Vec<Ticket> = statement
        .query_map([only], |row| {
            Ok(Ticket {
                order_id: row.get(0)?,
                store_id: row.get(1)?,
                source: row.get(2)?,
                friendly_id: row.get(3)?,
                status: row.get(4)?,
                customer_name: row.get(5)?,
                customer_note: row.get(6)?,
                received_at_ms: row.get(7)?,
                ready: row.get(8)?,
                lines: Vec::new(),
                bumped_at: Vec::new(),
                stations: Vec::new(),
                promised_at_ms: 0,
                prep_minutes: row.get(9)?,
                awaiting_accept: false,
                otter_calls: Vec::new(),
                allergens: Vec::new(),
                allergen_acks: Vec::new(),
                rush_at_ms: row.get(10)?,
                lines_done: Vec::new(),
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut lines = connection.prepare_cached(
        "SELECT line_no, parent_no, name, quantity, note, item_id, sku_id FROM order_lines
         WHERE order_id = ?1 ORDER BY line_no",
    )?;
    let mut bumps = connection.prepare_cached(
        "SELECT station_id FROM order_bumps WHERE order_id = ?1 ORDER BY station_id",
    )?;
    let mut taps = connection.prepare_cached(
        "SELECT DISTINCT line_no, station_id FROM line_done WHERE order_id = ?1
         ORDER BY line_no, station_id",
    )?;
    let mut acks = connection.prepare_cached(
        "SELECT station_id FROM allergen_acks WHERE order_id = ?1 ORDER BY station_id",
    )?;
    for ticket in &mut tickets {
        let rows: Vec<(i64, Option<i64>, TicketLine)> = lines
            .query_map([&ticket.order_id], |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    TicketLine {
                        line_no: row.get(0)?,
                        name: row.get(2)?,
                        quantity: row.get(3)?,
                        note: row.get(4)?,
                        modifiers: Vec::new(),
                        item_id: None,
                        station_id: None,
                        otter_ids: (row.get(5)?, row.get(6)?),
                    },
                ))
            })?
            .collect::<Result<_, _>>()?;
        ticket.lines = rebuild(rows, |line, modifiers| line.modifiers = modifiers);
        ticket.bumped_at = bumps
            .query_map([&ticket.order_id], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        ticket.lines_done = taps
            .query_map([&ticket.order_id], |row| {
                Ok(crate::record::LineMark {
                    line_no: row.get(0)?,
                    station_id: row.get(1)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        ticket.allergen_acks = acks
            .query_map([&ticket.order_id], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        ticket.otter_calls = super::otter::order_calls(connection, &ticket.order_id)?;
    }
    Ok(tickets)
}

/// Rebuilds a modifier tree from pre-order rows with parent links; `attach` sets a node's
/// children.
fn rebuild<T>(mut rows: Vec<(i64, Option<i64>, T)>, attach: impl Fn(&mut T, Vec<T>)) -> Vec<T> {
    // Children come after their parent in pre-order: attach from the end.
    let mut roots = Vec::new();
    let mut children: BTreeMap<i64, Vec<T>> = BTreeMap::new();
    while let Some((line_no, parent_no, mut node)) = rows.pop() {
        if let Some(mut own) = children.remove(&line_no) {
            own.reverse();
            attach(&mut node, own);
        }
        match parent_no {
            Some(parent) => children.entry(parent).or_default().push(node),
            None => roots.push(node),
        }
    }
    roots.reverse();
    roots
}

impl Store {
    /// Open orders as the batch calculation takes them.
    pub fn open_orders(&self) -> Result<Vec<batch::Order>, StoreError> {
        load_orders(&self.connection, None)
    }

    /// Open orders with their lines and notes, oldest first, for the displays.
    pub fn open_tickets(&self) -> Result<Vec<Ticket>, StoreError> {
        load_tickets(&self.connection, None)
    }

    /// Open orders, and how many of those not ready yet are past their promised time (the
    /// tickets the displays show late), for the fleet telemetry: counts, no order data.
    pub fn order_load(&self, now_ms: i64) -> Result<(i64, i64), StoreError> {
        let mut statement = self.connection.prepare_cached(
            "SELECT received_at, ordered_at, pickup_time, estimated_pickup_time,
                    estimated_prep_seconds, ready_at IS NOT NULL
             FROM orders WHERE state = 'open'",
        )?;
        let (mut open, mut late) = (0, 0);
        let rows = statement.query_map([], |row| {
            let order = batch::Order {
                received_at_ms: row.get(0)?,
                ordered_at_ms: row.get(1)?,
                pickup_time_ms: row.get(2)?,
                estimated_pickup_time_ms: row.get(3)?,
                estimated_prep_seconds: row.get(4)?,
                ..batch::Order::default()
            };
            Ok((order.promised_at_ms(), row.get::<_, bool>(5)?))
        })?;
        for row in rows {
            let (promised_at_ms, ready) = row?;
            open += 1;
            if !ready && promised_at_ms < now_ms {
                late += 1;
            }
        }
        Ok((open, late))
    }

    /// Orders, tickets and open sessions as of one event-log sequence.
    pub fn state_snapshot(&self) -> Result<StateSnapshot, StoreError> {
        let tx = self.connection.unchecked_transaction()?;
        let snapshot = StateSnapshot {
            seq: last_event_seq(&tx)?,
            orders: load_orders(&tx, None)?,
            tickets: load_tickets(&tx, None)?,
            open_sessions: open_sessions(&tx)?,
        };
        tx.finish()?;
        Ok(snapshot)
    }
}
