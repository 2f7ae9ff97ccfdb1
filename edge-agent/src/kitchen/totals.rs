//! What the kitchen holds in memory, in step with the store: the open orders, what is left of
//! each, and the per-(station, item) totals, updated incrementally so a change costs what it
//! touches; and `settle`, which ends every write: readiness, the moved stations'
//! `batch.updated`.

use std::{
    collections::{BTreeMap, BTreeSet, HashSet, btree_map::Entry},
    sync::Arc,
};

use rusqlite::Transaction;

use crate::{
    batch::{self, BatchItem},
    record::{BatchItemView, BatchUpdate, Ready, Record, Session},
    store::{self, Store, StoreError},
};
use kitchen_proto::reference::Reference;

use super::{
    Pending, Touched,
    held::{Held, Slot, Slots},
};

/// The total of one item at one station over the counted open orders.
#[derive(Debug, Clone)]
pub(super) struct Total {
    /// The item's name and prep time, as the first order counted in it named it.
    pub(super) slot: Arc<Slot>,
    pub(super) quantity: u32,
    /// Units and due time per contributing order.
    pub(super) orders: BTreeMap<Arc<str>, (u32, i64)>,
    /// How many contributing orders are due at each time, to find the earliest at once.
    pub(super) dues: BTreeMap<i64, u32>,
}

impl Total {
    pub(super) fn due_at_ms(&self) -> i64 {
        self.dues.first_key_value().map_or(0, |(due, _)| *due)
    }
}

/// What the kitchen holds in memory, in step with the store.
pub(super) struct State {
    pub(super) reference: Arc<Reference>,
    pub(super) horizon_ms: i64,
    pub(super) orders: BTreeMap<Arc<str>, Held>,
    /// The (station, item) slots the open orders share.
    pub(super) slots: Slots,
    /// Per (station, item).
    pub(super) items: BTreeMap<(String, String), Total>,
    /// Unknown items already warned about (logged once each).
    pub(super) unassigned_seen: HashSet<String>,
    /// What the kitchen tells Otter: the estimate's bounds, when the day ends.
    pub(super) otter: crate::otter::Settings,
    /// Whether the clock can be trusted (use-by checks need it).
    pub(super) clock_trusted: bool,
    /// Where tickets print (`prints.rs`).
    pub(super) print: super::Printing,
}

impl State {
    /// Rebuilds everything from the store.
    pub(super) fn reload(&mut self, store: &Store, now_ms: i64) -> Result<(), StoreError> {
        self.orders.clear();
        self.items.clear();
        self.slots.clear();
        for order in store.open_orders()? {
            let held = self.held(&order, now_ms);
            self.put(&order.order_id, Some(held));
        }
        Ok(())
    }

    /// Whether `held` is in the count at `now_ms`.
    pub(super) fn counts(&self, held: &Held, now_ms: i64) -> bool {
        !held.is_upcoming(now_ms, self.horizon_ms)
    }

    /// `order` as it is held in memory.
    pub(super) fn held(&mut self, order: &batch::Order, now_ms: i64) -> Held {
        let shared = self.orders.get_key_value(order.order_id.as_str());
        let order_id = shared.map(|(id, _)| id.clone());
        let mut held = self.slots.held(order, order_id, &self.reference);
        held.counted = self.counts(&held, now_ms);
        held
    }

    /// Replaces an order (`None`: no longer open) and updates the totals; returns the stations
    /// whose items moved.
    pub(super) fn put(&mut self, order_id: &str, held: Option<Held>) -> BTreeSet<String> {
        let old = self.orders.remove(order_id);
        // What the order adds to each station's totals, before and after.
        fn per_station(held: Option<&Held>) -> BTreeMap<&str, Vec<(&str, u32, i64)>> {
            let mut stations: BTreeMap<&str, Vec<(&str, u32, i64)>> = BTreeMap::new();
            for (n, due) in held.into_iter().flat_map(Held::counts_for) {
                stations.entry(&n.slot.station_id).or_default().push((
                    &n.slot.item_id,
                    n.units,
                    due,
                ));
            }
            stations
        }
        let (before, after) = (per_station(old.as_ref()), per_station(held.as_ref()));
        let moved: BTreeSet<String> = before
            .keys()
            .chain(after.keys())
            .filter(|s| before.get(*s) != after.get(*s))
            .map(|s| (*s).to_owned())
            .collect();
        if !moved.is_empty() {
            if let Some(old) = &old {
                for (n, _) in old.counts_for() {
                    let key = (n.slot.station_id.to_string(), n.slot.item_id.to_string());
                    if let Some(total) = self.items.get_mut(&key) {
                        if let Some((units, due)) = total.orders.remove(order_id) {
                            total.quantity = total.quantity.saturating_sub(units);
                            if let Entry::Occupied(mut count) = total.dues.entry(due) {
                                *count.get_mut() -= 1;
                                if *count.get() == 0 {
                                    count.remove();
                                }
                            }
                        }
                        if total.orders.is_empty() {
                            self.items.remove(&key);
                        }
                    }
                }
            }
            if let Some(new) = &held {
                for (n, due) in new.counts_for() {
                    let total = self
                        .items
                        .entry((n.slot.station_id.to_string(), n.slot.item_id.to_string()))
                        .or_insert_with(|| Total {
                            slot: n.slot.clone(),
                            quantity: 0,
                            orders: BTreeMap::new(),
                            dues: BTreeMap::new(),
                        });
                    total.quantity = total.quantity.saturating_add(n.units);
                    total.orders.insert(new.order_id.clone(), (n.units, due));
                    *total.dues.entry(due).or_default() += 1;
                }
            }
        }
        if let Some(held) = held {
            self.orders.insert(held.order_id.clone(), held);
        }
        moved
    }

    /// The batch items of `station` as `batch.updated` carries them (`order_count`, no ids),
    /// most urgent first.
    pub(super) fn station_items(&self, station: &str, sessions: &[Session]) -> Vec<BatchItemView> {
        let mut totals: Vec<(&String, &Total)> = self
            .items
            .range((station.to_owned(), String::new())..)
            .take_while(|((s, _), _)| s == station)
            .map(|((_, item), total)| (item, total))
            .collect();
        totals.sort_by_key(|(item, total)| (total.due_at_ms(), (*item).clone()));
        totals
            .into_iter()
            .map(|(item_id, total)| {
                BatchItemView::new(
                    &self.reference,
                    &BatchItem {
                        station_id: station.to_owned(),
                        item_id: item_id.clone(),
                        item_name: total.slot.item_name.to_string(),
                        quantity: total.quantity,
                        prep_seconds: total.slot.prep_seconds,
                        due_at_ms: total.due_at_ms(),
                        order_ids: Vec::new(),
                    },
                    total.orders.len(),
                    false,
                    sessions,
                )
            })
            .collect()
    }

    /// Every batch item with its orders, as `batch::board` gives them (for the tests).
    #[cfg(test)]
    pub(super) fn board_rows(&self) -> Vec<(String, String, u32, Vec<String>)> {
        self.items
            .iter()
            .map(|((station, item), total)| {
                (
                    station.clone(),
                    item.clone(),
                    total.quantity,
                    total.orders.keys().map(|id| id.to_string()).collect(),
                )
            })
            .collect()
    }

    pub(super) fn settle(
        &mut self,
        tx: &Transaction<'_>,
        touched: &Touched,
        now_ms: i64,
        pending: &mut Pending,
    ) -> Result<(), StoreError> {
        for order_id in &touched.orders {
            let held = if pending.reloaded.contains(order_id) {
                self.orders.get(order_id.as_str()).cloned()
            } else {
                store::load_orders(tx, Some(order_id))?
                    .pop()
                    .map(|order| self.held(&order, now_ms))
            };
            if let Some(held) = &held {
                let ready = held.is_ready();
                if store::set_ready(tx, order_id, ready.then_some(now_ms))? && ready {
                    let friendly_id = store::load_tickets(tx, Some(order_id))?
                        .pop()
                        .map(|t| t.friendly_id)
                        .unwrap_or_default();
                    let ready = Ready {
                        order_id: order_id.clone(),
                        friendly_id,
                    };
                    pending.log.push(store::append_log(
                        tx,
                        &Record::OrderReady(ready),
                        Some(&held.stations()),
                        now_ms,
                    )?);
                    if !pending.restoring {
                        self.print_ready(tx, order_id, now_ms, pending)?;
                    }
                }
            }
            let moved = self.put(order_id, held);
            pending.moved.extend(moved);
        }
        pending.moved.extend(touched.force.iter().cloned());
        if !pending.moved.is_empty() {
            let sessions = store::open_sessions(tx)?;
            for station in std::mem::take(&mut pending.moved) {
                let tags = [station.clone()];
                let update = BatchUpdate {
                    items: self.station_items(&station, &sessions),
                    station_id: station,
                };
                pending.log.push(store::append_log(
                    tx,
                    &Record::BatchUpdated(update),
                    Some(&tags),
                    now_ms,
                )?);
            }
        }
        Ok(())
    }
}
