//! Order events and bumps: applying what the feed delivers, bumping and recalling orders at
//! stations, and logging each with the stations it concerns.

use std::collections::{BTreeSet, HashMap};

use kitchen_proto::OrderEvent;
use rusqlite::Transaction;

use crate::{
    batch,
    record::{Bumps, Change, OrderChange, Record},
    store::{self, Applied, StoreError},
};

use super::{Kitchen, Pending, Touched, held::Held, totals::State};

impl Kitchen {
    /// Applies an order event (see `store::apply_event`) and logs it with what it moved.
    pub fn apply(&mut self, event: &OrderEvent, now_ms: i64) -> Result<Applied, StoreError> {
        let mut applied = self.apply_all(std::slice::from_ref(event), now_ms)?;
        Ok(applied.pop().unwrap_or(Applied::Duplicate))
    }

    /// Applies events in order in one transaction (one commit, one recalculation of the
    /// batch items): what the feed does with the deliveries it has in hand.
    pub fn apply_all(
        &mut self,
        events: &[OrderEvent],
        now_ms: i64,
    ) -> Result<Vec<Applied>, StoreError> {
        // Each order as it is once all are applied (its lines are not kept in memory), for the
        // console block of those created here; `None`: no longer open.
        let mut latest: HashMap<&str, Option<batch::Order>> = HashMap::new();
        let applied = self.write(now_ms, |state, tx, pending| {
            let mut results = Vec::with_capacity(events.len());
            let mut touched = Vec::new();
            for event in events {
                let applied = store::apply_event(tx, event, now_ms)?;
                if let Applied::Applied { change, .. } = applied {
                    let order = state.log_order_event(tx, event, change, now_ms, pending)?;
                    latest.insert(event.order_id.as_str(), order);
                    if change == Change::Created {
                        state.auto_accept(tx, &event.order_id, now_ms, pending)?;
                    }
                    touched.push(event.order_id.clone());
                }
                results.push(applied);
            }
            Ok((results, Touched::orders(touched)))
        })?;
        for (event, applied) in events.iter().zip(&applied) {
            if let Applied::Applied {
                change: Change::Created,
                ..
            } = applied
                && let Some(Some(order)) = latest.get(event.order_id.as_str())
            {
                self.announce(event, order);
            }
        }
        Ok(applied)
    }

    /// Bumps (or recalls) an order at stations. `None`: no such order.
    pub fn bump(
        &mut self,
        order_id: &str,
        stations: &[String],
        bumped: bool,
        device: &str,
        now_ms: i64,
    ) -> Result<Option<Vec<String>>, StoreError> {
        self.write(now_ms, |state, tx, pending| {
            let request = BumpRequest {
                order_id,
                stations,
                bumped,
                device,
            };
            let changed = state.set_bumps(tx, request, now_ms, pending)?;
            let touched = match &changed {
                Some(changed) if !changed.is_empty() => Touched::orders([order_id.to_owned()]),
                _ => Touched::default(),
            };
            Ok((changed, touched))
        })
    }
}
/// A bump (or recall) asked for: of an order, at stations, by a device (or scanner).
pub(super) struct BumpRequest<'a> {
    pub order_id: &'a str,
    pub stations: &'a [String],
    pub bumped: bool,
    pub device: &'a str,
}

impl State {
    /// Bumps (or recalls) an order at stations and logs `order.bumped` / `order.recalled` when
    /// anything changed. `None`: no such order.
    pub(super) fn set_bumps(
        &self,
        tx: &Transaction<'_>,
        request: BumpRequest<'_>,
        now_ms: i64,
        pending: &mut Pending,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let BumpRequest {
            order_id,
            stations,
            bumped,
            device,
        } = request;
        let Some(changed) = store::set_bumps(tx, order_id, stations, bumped, now_ms)? else {
            return Ok(None);
        };
        if changed.is_empty() {
            return Ok(Some(changed));
        }
        let bumps = Bumps {
            order_id: order_id.to_owned(),
            stations: changed.clone(),
            device: Some(device.to_owned()),
        };
        let record = if bumped {
            Record::OrderBumped(bumps)
        } else {
            Record::OrderRecalled(bumps)
        };
        let mut tags: BTreeSet<String> = changed.iter().cloned().collect();
        if let Some(held) = self.orders.get(order_id) {
            tags.extend(held.stations());
        }
        let tags: Vec<String> = tags.into_iter().collect();
        pending
            .log
            .push(store::append_log(tx, &record, Some(&tags), now_ms)?);
        Ok(Some(changed))
    }

    /// Logs an applied order event, tagged with the stations the order needs before and after,
    /// and takes the order's new state in. The order as it is now, if open.
    pub(super) fn log_order_event(
        &mut self,
        tx: &Transaction<'_>,
        event: &OrderEvent,
        change: Change,
        now_ms: i64,
        pending: &mut Pending,
    ) -> Result<Option<batch::Order>, StoreError> {
        let order_id = event.order_id.as_str();
        if change == Change::Updated {
            // New lines, perhaps new notes: the allergen warning is read again.
            tx.execute("DELETE FROM allergen_acks WHERE order_id = ?1", [order_id])?;
            // The lines were replaced: their tap-offs go with them.
            tx.execute("DELETE FROM line_done WHERE order_id = ?1", [order_id])?;
        }
        let before = self.orders.get(order_id).map(|h| h.stations());
        let loaded = store::load_orders(tx, Some(order_id))?.pop();
        let after = loaded.as_ref().map(|order| self.held(order, now_ms));
        let mut stations: BTreeSet<String> = before.into_iter().flatten().collect();
        stations.extend(after.iter().flat_map(Held::stations));
        let stations: Vec<String> = stations.into_iter().collect();
        let state = self
            .store_state(tx, order_id)?
            .unwrap_or_else(|| "unknown".into());
        let order = match change {
            Change::Created | Change::Updated => self.ticket(tx, order_id, after.as_ref())?,
            _ => None,
        };
        if pending.restoring {
            // Recovered on a new card: printed on the old one.
        } else if let Some(ticket) = &order {
            self.print_order(tx, ticket, change == Change::Updated, now_ms, pending)?;
        } else if change == Change::Cancelled {
            let before = self.orders.get(order_id).map(|h| h.stations());
            self.print_void(tx, order_id, &before.unwrap_or_default(), now_ms, pending)?;
        }
        let record = change.record(OrderChange {
            event_id: event.event_id.clone(),
            otter_event_type: event.otter_event_type.clone(),
            order_id: order_id.to_owned(),
            store_id: event.store_id.clone(),
            status: event.status().as_str_name().to_owned(),
            state,
            change,
            order,
        });
        // A new card creates an order under the id of an earlier card's `order.created` of
        // it in PostgreSQL (read by the recovery), so pushing it again changes nothing; the
        // rest of a recovery is for the displays only.
        let earlier = match &record {
            Record::OrderCreated(_) => store::created_record_id(tx, order_id)?,
            _ => None,
        };
        let entry = match (earlier, pending.restoring) {
            (Some(record_id), _) => {
                store::append_log_as(tx, &record, Some(&stations), now_ms, Some(record_id))?
            }
            (None, true) => {
                let record_id =
                    matches!(record, Record::OrderCreated(_)).then(store::new_record_id);
                store::append_log_as(tx, &record, Some(&stations), now_ms, record_id)?
            }
            (None, false) => store::append_log(tx, &record, Some(&stations), now_ms)?,
        };
        pending.log.push(entry);
        let moved = self.put(order_id, after);
        pending.reloaded.insert(order_id.to_owned());
        pending.moved.extend(moved);
        Ok(loaded)
    }

    pub(super) fn store_state(
        &self,
        tx: &Transaction<'_>,
        order_id: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(rusqlite::OptionalExtension::optional(tx.query_row(
            "SELECT state FROM orders WHERE order_id = ?1",
            [order_id],
            |row| row.get(0),
        ))?)
    }

    /// The order's ticket with the stations it needs and when it is promised.
    pub(super) fn ticket(
        &self,
        tx: &Transaction<'_>,
        order_id: &str,
        held: Option<&Held>,
    ) -> Result<Option<crate::record::Ticket>, StoreError> {
        Ok(store::load_tickets(tx, Some(order_id))?
            .pop()
            .map(|mut ticket| {
                if let Some(held) = held {
                    ticket.annotate_with(held.stations(), held.promised_at_ms, &self.reference);
                }
                ticket
            }))
    }
}
