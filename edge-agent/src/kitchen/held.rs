//! How an open order is kept in memory: only what the totals, readiness and the schedule need
//! of it — its id, when it is promised, and what it needs per (station, item) — with the
//! (station, item) strings shared by every order that needs them. Its lines stay in the store
//! (tickets and the console read them from there). At a burst's ~5,700 open orders each order's
//! own lines, contributions and station names copied into memory were ~1.9 KB of the agent's
//! heap (issue 18).

use std::{collections::HashSet, sync::Arc};

use crate::batch::{self, Contribution};
use kitchen_proto::reference::Reference;

/// One item at one station as orders need it; one copy, shared by every order that needs it
/// (see `Slots`).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct Slot {
    pub(super) station_id: Box<str>,
    pub(super) item_id: Box<str>,
    pub(super) item_name: Box<str>,
    pub(super) prep_seconds: u32,
}

/// What an order needs of one slot: `units` still to make (0: bumped there, or all done).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Need {
    pub(super) slot: Arc<Slot>,
    pub(super) units: u32,
}

/// An open order and what is left of it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Held {
    pub(super) order_id: Arc<str>,
    pub(super) promised_at_ms: i64,
    /// Otter `FIXED_TIME`: held back until its fire time is near.
    pub(super) scheduled: bool,
    /// Open with at least one line (`batch::is_ready`'s first conditions).
    has_lines: bool,
    /// Everything it needs, sorted by (station, item), done or not.
    needs: Box<[Need]>,
    /// In the count (not a scheduled order still beyond the horizon).
    pub(super) counted: bool,
}

impl Held {
    /// What is still to make, per (station, item).
    pub(super) fn outstanding(&self) -> impl Iterator<Item = &Need> {
        self.needs.iter().filter(|n| n.units > 0)
    }

    /// When `slot` must start for this order: its promised time less the item's prep time.
    pub(super) fn due_at_ms(&self, slot: &Slot) -> i64 {
        self.promised_at_ms - i64::from(slot.prep_seconds) * 1000
    }

    /// What the totals take from it, with each due time: nothing unless counted.
    pub(super) fn counts_for(&self) -> impl Iterator<Item = (&Need, i64)> {
        self.outstanding()
            .filter(|_| self.counted)
            .map(|n| (n, self.due_at_ms(&n.slot)))
    }

    /// Every station the order needs (done or not), sorted, each once.
    pub(super) fn stations(&self) -> Vec<String> {
        let mut stations: Vec<String> = Vec::new();
        for need in &self.needs {
            if stations.last().map(String::as_str) != Some(&*need.slot.station_id) {
                stations.push(need.slot.station_id.to_string());
            }
        }
        stations
    }

    /// Whether it has something to make and every unit of it is done (`batch::is_ready`).
    pub(super) fn is_ready(&self) -> bool {
        self.has_lines && self.outstanding().next().is_none()
    }

    /// Whether it is a scheduled order still held back at `now_ms` (`batch::is_upcoming`).
    pub(super) fn is_upcoming(&self, now_ms: i64, horizon_ms: i64) -> bool {
        let fire_at_ms = self.outstanding().map(|n| self.due_at_ms(&n.slot)).min();
        self.scheduled && fire_at_ms.is_some_and(|fire_at_ms| fire_at_ms > now_ms + horizon_ms)
    }
}

/// The slots the open orders share. A slot no order needs any more is dropped when the set
/// has doubled since it was last swept (free-text lines at `unassigned` make new ones).
#[derive(Default)]
pub(super) struct Slots {
    slots: HashSet<Arc<Slot>>,
    sweep_at: usize,
}

impl Slots {
    pub(super) fn clear(&mut self) {
        self.slots.clear();
        self.sweep_at = 0;
    }

    fn intern(&mut self, c: Contribution) -> Arc<Slot> {
        let slot = Slot {
            station_id: c.station_id.into_boxed_str(),
            item_id: c.item_id.into_boxed_str(),
            item_name: c.item_name.into_boxed_str(),
            prep_seconds: c.prep_seconds,
        };
        if let Some(shared) = self.slots.get(&slot) {
            return shared.clone();
        }
        if self.slots.len() >= self.sweep_at {
            self.slots.retain(|s| Arc::strong_count(s) > 1);
            self.sweep_at = (self.slots.len() * 2).max(256);
        }
        let slot = Arc::new(slot);
        self.slots.insert(slot.clone());
        slot
    }

    /// `order` as it is held: `order_id` is the id to use (the one already held, if any, so
    /// that the totals keep sharing it).
    pub(super) fn held(
        &mut self,
        order: &batch::Order,
        order_id: Option<Arc<str>>,
        reference: &Reference,
    ) -> Held {
        let needs: Vec<Need> = batch::needs(order, reference)
            .into_iter()
            .map(|(c, units)| Need {
                slot: self.intern(c),
                units,
            })
            .collect();
        Held {
            order_id: order_id.unwrap_or_else(|| order.order_id.as_str().into()),
            promised_at_ms: order.promised_at_ms(),
            scheduled: order.scheduled,
            has_lines: order.state == batch::OrderState::Open && !order.lines.is_empty(),
            needs: needs.into_boxed_slice(),
            counted: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference() -> Reference {
        Reference::parse(include_str!("../../tests/fixtures/three_stations.toml"))
            .expect("valid reference")
    }

    fn line(name: &str, quantity: u32) -> batch::Line {
        batch::Line {
            name: Some(name.to_owned()),
            quantity,
            ..batch::Line::default()
        }
    }

    fn order(id: &str, lines: Vec<batch::Line>) -> batch::Order {
        batch::Order {
            order_id: id.to_owned(),
            received_at_ms: 1_000_000,
            pickup_time_ms: Some(2_000_000),
            lines,
            ..batch::Order::default()
        }
    }

    #[test]
    fn orders_share_one_slot_per_item_and_keep_what_is_left() {
        let reference = reference();
        let mut slots = Slots::default();
        let mut first = order("o1", vec![line("Fries", 2), line("Cola", 1)]);
        first.bumped_at.insert("drinks".into());
        let second = order("o2", vec![line("Fries", 1)]);
        let (a, b) = (
            slots.held(&first, None, &reference),
            slots.held(&second, None, &reference),
        );
        assert!(Arc::ptr_eq(&a.needs[1].slot, &b.needs[0].slot));
        assert_eq!(a.stations(), ["drinks", "fry"]);
        let left: Vec<(&str, u32, i64)> = a
            .outstanding()
            .map(|n| (&*n.slot.item_id, n.units, a.due_at_ms(&n.slot)))
            .collect();
        // Fries take 180 s: due 3 minutes before the pickup; the cola was bumped.
        assert_eq!(left, [("fries", 2, 2_000_000 - 180_000)]);
        assert!(!a.is_ready() && !a.is_upcoming(0, 0));
        assert_eq!(slots.slots.len(), 2);
    }

    #[test]
    fn slots_no_order_needs_are_swept_when_the_set_doubles() {
        let reference = reference();
        let mut slots = Slots::default();
        let kept = slots.held(&order("kept", vec![line("Odd 0", 1)]), None, &reference);
        for n in 1..600 {
            let name = format!("Odd {n}");
            slots.held(&order("gone", vec![line(&name, 1)]), None, &reference);
        }
        // Swept when 256 were held, before "Odd 256" and before "Odd 511": each time only
        // `kept` was still needed. Left: it and "Odd 511" to "Odd 599".
        assert_eq!(slots.slots.len(), 90);
        assert!(slots.slots.contains(&*kept.needs[0].slot));
    }
}
