//! What the speed-of-service report reads (docs/floor.md#reports): the orders that arrived in a
//! period with the time each station bumped them, and the batch sessions started in it, as the
//! shared report's facts. One read transaction; the orders are found by `orders_received_idx`
//! (migration 0012), each order's lines and bumps by its key.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use kitchen_proto::{
    reference::Reference,
    report::{SessionFact, TicketFact},
};

use super::{Store, StoreError, tickets::orders_received_between};
use crate::batch;

impl Store {
    /// Tickets per station of the orders received in `[from_ms, to_ms)` (cancelled ones left
    /// out; stations and units as the batch calculation resolves them with `reference`), and
    /// the batch sessions started in it; `local` gives a time's wall-clock time in the kitchen.
    pub fn report_facts(
        &self,
        from_ms: i64,
        to_ms: i64,
        reference: &Reference,
        local: impl Fn(i64) -> NaiveDateTime,
    ) -> Result<(Vec<TicketFact>, Vec<SessionFact>), StoreError> {
        let tx = self.connection.unchecked_transaction()?;
        let orders = orders_received_between(&tx, from_ms, to_ms)?;
        let mut bumps: BTreeMap<(String, String), i64> = BTreeMap::new();
        {
            let mut statement = tx.prepare(
                "SELECT b.order_id, b.station_id, b.bumped_at
                 FROM orders o CROSS JOIN order_bumps b USING (order_id)
                 WHERE o.received_at >= ?1 AND o.received_at < ?2",
            )?;
            let rows = statement.query_map([from_ms, to_ms], |row| {
                Ok(((row.get(0)?, row.get(1)?), row.get(2)?))
            })?;
            for row in rows {
                let (key, at) = row?;
                bumps.insert(key, at);
            }
        }
        let mut tickets = Vec::new();
        for order in &orders {
            let mut units: BTreeMap<String, u32> = BTreeMap::new();
            for contribution in batch::contributions(order, reference) {
                *units.entry(contribution.station_id).or_default() += contribution.units;
            }
            for (station_id, units) in units {
                let bumped_ms = bumps
                    .get(&(order.order_id.clone(), station_id.clone()))
                    .copied();
                tickets.push(TicketFact {
                    station_id,
                    arrived_local: local(order.received_at_ms),
                    arrived_ms: order.received_at_ms,
                    due_ms: order.promised_at_ms(),
                    bumped_ms,
                    units,
                });
            }
        }
        let mut statement = tx.prepare(
            "SELECT station_id, started_at, completed_at IS NOT NULL FROM batch_sessions
             WHERE started_at >= ?1 AND started_at < ?2",
        )?;
        let sessions = statement
            .query_map([from_ms, to_ms], |row| {
                Ok(SessionFact {
                    station_id: row.get(0)?,
                    started_local: local(row.get(1)?),
                    completed: row.get(2)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok((tickets, sessions))
    }
}
