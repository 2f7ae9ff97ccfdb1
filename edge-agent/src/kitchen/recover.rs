//! A new card's recovery (docs/sync.md, "A new card"), in one transaction: each store's
//! sequence baseline, the open orders from the relay's events (applied as deliveries are,
//! de-duplicated by event id), then what the kitchen's own records in PostgreSQL did to them
//! (bumps, readiness, acceptance, acknowledgements, rush, lines, batch sessions), and the mark
//! that it ran. Nothing is printed (the old card printed it) and no record PostgreSQL holds is
//! made again as a new one.

use std::collections::BTreeSet;

use kitchen_proto::OrderEvent;

use super::{Kitchen, Touched};
use crate::{
    record::{Change, Record, Session},
    store::{self, Applied, StoreError},
};

/// What PostgreSQL holds for a new card to rebuild the kitchen from.
#[derive(Debug, Clone, Default)]
pub struct Recovery {
    /// Per store the kitchen serves, the relay's newest sequence number.
    pub baselines: Vec<(String, u64)>,
    /// The events that rebuild each open order, in sequence order per store.
    pub events: Vec<OrderEvent>,
    /// The kitchen's own order records in PostgreSQL, oldest first.
    pub records: Vec<RestoredRecord>,
    /// The kitchen's batch sessions, oldest first.
    pub sessions: Vec<Session>,
    /// Per order of the window (open or not), the record id of the kitchen's first
    /// `order.created` of it in PostgreSQL.
    pub created: Vec<(String, String)>,
}

/// One of the kitchen's records as PostgreSQL holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoredRecord {
    pub record_id: String,
    pub record: Record,
    /// When the box made it.
    pub at_ms: i64,
}

/// What a recovery put back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Orders it created.
    pub orders: usize,
    /// Records whose effect it put back.
    pub records: usize,
    /// Batch sessions.
    pub sessions: usize,
}

impl Kitchen {
    /// Rebuilds the kitchen from `recovery` and remembers it did, in one commit.
    pub fn recover(&mut self, recovery: &Recovery, now_ms: i64) -> Result<Recovered, StoreError> {
        self.write(now_ms, |state, tx, pending| {
            for (order_id, record_id) in &recovery.created {
                store::remember_created(tx, order_id, record_id)?;
            }
            for (store_id, sequence) in &recovery.baselines {
                store::set_baseline(tx, store_id, *sequence)?;
            }
            pending.restoring = true;
            let mut recovered = Recovered::default();
            let mut orders = BTreeSet::new();
            let mut created = Vec::new();
            for event in &recovery.events {
                if let Applied::Applied { change, .. } = store::apply_event(tx, event, now_ms)? {
                    state.log_order_event(tx, event, change, now_ms, pending)?;
                    if change == Change::Created {
                        created.push(event.order_id.clone());
                    }
                    orders.insert(event.order_id.clone());
                }
            }
            recovered.orders = created.len();
            for restored in &recovery.records {
                if !store::restore_record(tx, &restored.record, restored.at_ms)? {
                    continue;
                }
                let Some(order_id) = restored.record.order_id() else {
                    continue;
                };
                // Shown to the displays as it was; not pushed again (PostgreSQL has it).
                let tags = state.tags(order_id, None);
                pending.log.push(store::append_log_as(
                    tx,
                    &restored.record,
                    Some(&tags),
                    now_ms,
                    None,
                )?);
                orders.insert(order_id.to_owned());
                recovered.records += 1;
            }
            let mut stations = BTreeSet::new();
            for session in &recovery.sessions {
                store::restore_session(tx, session)?;
                stations.insert(session.station_id.clone());
                recovered.sessions += 1;
            }
            // An order the old card never accepted (or whose acceptance never reached
            // PostgreSQL) is accepted now, as on its arrival; the relay's key absorbs a second
            // call to Otter.
            for order_id in &created {
                state.auto_accept(tx, order_id, now_ms, pending)?;
            }
            store::finish_recovery(tx, now_ms)?;
            // Their bumps and the rest changed after the events took them into memory.
            for order_id in &orders {
                pending.reloaded.remove(order_id);
            }
            let touched = Touched {
                orders: orders.into_iter().collect(),
                force: stations,
            };
            Ok((recovered, touched))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, sync::Arc};

    use kitchen_proto::{EventType, LineItem, OrderStatus, reference::Reference};
    use kitchen_testkit::events::line;

    use super::*;
    use crate::store::Store;

    const MINUTE: i64 = 60_000;
    const NOW: i64 = 1_741_977_600_000;

    fn reference() -> Arc<Reference> {
        Arc::new(
            Reference::parse(include_str!("../../tests/fixtures/three_stations.toml"))
                .expect("valid reference"),
        )
    }

    /// A kitchen with a ticket printer at every station and at the pass (the fallback).
    fn kitchen() -> Kitchen {
        let store = Store::open_in_memory().expect("store");
        let mut kitchen = Kitchen::open(store, reference(), 20 * MINUTE, NOW).expect("kitchen");
        let route = |printer: &str, stations: &[&str], expo: bool| crate::receipt::Route {
            printer: printer.into(),
            columns: 48,
            stations: stations.iter().map(|s| (*s).to_owned()).collect(),
            expo,
            fallback: expo,
        };
        kitchen.set_print_routes(crate::receipt::Routes {
            printers: vec![
                route("p-line", &["grill", "fry", "drinks"], false),
                route("p-pass", &[], true),
            ],
        });
        kitchen
    }

    fn snapshot(id: &str, order: &str, sequence: u64, items: Vec<LineItem>) -> OrderEvent {
        OrderEvent {
            event_id: id.into(),
            event_type: EventType::NewOrder as i32,
            otter_event_type: "orders.new_order".into(),
            event_time_ms: NOW + sequence as i64,
            store_id: "s1".into(),
            order_id: order.into(),
            friendly_id: format!("#{order}"),
            status: OrderStatus::NewOrder as i32,
            items,
            has_snapshot: true,
            received_at_ms: NOW,
            sequence,
            ..OrderEvent::default()
        }
    }

    fn burgers_and_fries(burgers: u32, fries: u32) -> Vec<LineItem> {
        vec![
            line("Double Smash Burger", burgers, vec![]),
            line("Fries", fries, vec![]),
        ]
    }

    /// What PostgreSQL would hold of `old`'s records: its synced log entries, by record id, and
    /// its batch sessions as last pushed.
    fn synced(old: &Kitchen) -> (Vec<RestoredRecord>, Vec<Session>) {
        let rows = old.store.sync_batch(0, 1000).expect("reads");
        let mut records = Vec::new();
        let mut sessions: BTreeMap<String, Session> = BTreeMap::new();
        for row in rows {
            let record = Record::parse(&row.kind, &row.data).expect("parses");
            match &record {
                Record::BatchStarted(session) | Record::BatchCompleted(session) => {
                    sessions.insert(session.session_id.clone(), session.clone());
                }
                _ => records.push(RestoredRecord {
                    record_id: row.record_id,
                    record,
                    at_ms: row.created_at_ms,
                }),
            }
        }
        (records, sessions.into_values().collect())
    }

    /// The old card: four orders; o1 bumped at the grill, six fries made in a batch, o3
    /// cancelled, o4 handed off. The new card, given the open orders' events and the old
    /// card's records, holds what the old one held: the same tickets, the same counts, no gap,
    /// and nothing to push that PostgreSQL does not already have.
    #[test]
    fn a_new_card_holds_what_the_old_one_held() {
        let mut old = kitchen();
        let events = [
            snapshot("e1", "o1", 1, burgers_and_fries(2, 1)),
            snapshot("e2", "o2", 2, burgers_and_fries(1, 3)),
            snapshot("e3", "o3", 3, burgers_and_fries(1, 0)),
            snapshot("e4", "o4", 4, burgers_and_fries(0, 2)),
        ];
        for event in &events {
            old.apply(event, NOW).expect("applies");
        }
        let cancel = OrderEvent {
            event_id: "e5".into(),
            otter_event_type: "orders.cancel".into(),
            store_id: "s1".into(),
            order_id: "o3".into(),
            status: OrderStatus::Canceled as i32,
            sequence: 5,
            ..OrderEvent::default()
        };
        old.apply(&cancel, NOW).expect("applies");
        old.bump("o1", &["grill".into()], true, "grill-1", NOW + MINUTE)
            .expect("writes");
        let session = old
            .start_batch("fry", "fries", Some(6), "fry-1", NOW + MINUTE)
            .expect("writes")
            .expect("starts");
        old.complete_batch(&session.session_id, NOW + 2 * MINUTE)
            .expect("writes")
            .expect("completes");
        old.order_action(
            "o4",
            crate::otter::OrderAction::HandOff,
            "expo",
            NOW + 3 * MINUTE,
        )
        .expect("writes")
        .expect("hands off");
        assert!(old.take_print_jobs() > 0, "the old card printed");
        let (records, sessions) = synced(&old);
        let pushed: BTreeSet<String> = records.iter().map(|r| r.record_id.clone()).collect();

        let mut new = kitchen();
        assert!(new.store.recovery_pending().expect("reads"), "a new store");
        // What `open_order_events` gives: the open orders' events (o4 is open as far as the
        // relay knows: Otter has not said it was picked up).
        let created = records
            .iter()
            .filter_map(|r| match &r.record {
                Record::OrderCreated(change) => {
                    Some((change.order_id.clone(), r.record_id.clone()))
                }
                _ => None,
            })
            .collect();
        let recovery = Recovery {
            baselines: vec![("s1".into(), 5)],
            events: vec![events[0].clone(), events[1].clone(), events[3].clone()],
            records,
            sessions,
            created,
        };
        let recovered = new.recover(&recovery, NOW + 10 * MINUTE).expect("recovers");
        assert_eq!(
            recovered,
            Recovered {
                orders: 3,
                // The three acceptances, o1's bump, o4's readiness (the batch made its fries)
                // and its hand-off; o3's are not held.
                records: 6,
                sessions: 1,
            }
        );
        assert_eq!(new.state.board_rows(), old.state.board_rows());
        assert_eq!(
            new.store.open_tickets().expect("reads"),
            old.store.open_tickets().expect("reads")
        );
        assert_eq!(new.store.sequence_gaps().expect("reads"), []);
        assert_eq!(
            new.store.reconcile_points().expect("reads"),
            [("s1".to_owned(), 5)]
        );
        assert!(!new.store.recovery_pending().expect("reads"), "ran once");
        assert_eq!(new.take_print_jobs(), 0, "nothing printed again");
        // Nothing new for PostgreSQL: the orders' `order.created` under the old card's ids,
        // the rest for the displays only.
        let to_push = new.store.sync_batch(0, 1000).expect("reads");
        assert_eq!(
            to_push.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>(),
            ["order.created", "order.created", "order.created"]
        );
        assert!(
            to_push.iter().all(|r| pushed.contains(&r.record_id)),
            "{to_push:?}"
        );
        // A redelivery of a recovered event changes nothing; a new order counts as usual.
        new.take_committed();
        assert_eq!(
            new.apply(&events[1], NOW + 11 * MINUTE).expect("applies"),
            Applied::Duplicate
        );
        assert!(new.take_committed().is_empty());
        // o3 (cancelled before the card died) comes again from the queue: created under the
        // old card's id, so PostgreSQL still has one `order.created` of it.
        new.apply(&events[2], NOW + 11 * MINUTE).expect("applies");
        let o3 = new
            .store
            .sync_batch(0, 1000)
            .expect("reads")
            .into_iter()
            .find(|r| r.kind == "order.created" && r.data.contains("\"o3\""))
            .expect("o3 logged");
        assert!(pushed.contains(&o3.record_id), "{o3:?}");
        let later = snapshot("e6", "o5", 6, burgers_and_fries(1, 0));
        assert!(matches!(
            new.apply(&later, NOW + 11 * MINUTE).expect("applies"),
            Applied::Applied {
                change: Change::Created,
                gap: None
            }
        ));
    }

    /// An order whose acceptance never reached PostgreSQL is accepted on the new card, as on
    /// arrival: a new record, the one thing the recovery pushes.
    #[test]
    fn an_order_never_accepted_is_accepted_on_the_new_card() {
        let mut new = kitchen();
        let recovery = Recovery {
            baselines: vec![("s1".into(), 1)],
            events: vec![snapshot("e1", "o1", 1, burgers_and_fries(1, 0))],
            records: Vec::new(),
            sessions: Vec::new(),
            created: Vec::new(),
        };
        new.recover(&recovery, NOW).expect("recovers");
        let kinds: Vec<(String, bool)> = new
            .store
            .sync_batch(0, 100)
            .expect("reads")
            .into_iter()
            .map(|r| (r.kind, r.record_id.is_empty()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("order.created".to_owned(), false),
                ("order.accepted".to_owned(), false)
            ]
        );
    }

    /// A store opened again is not new; only a store made now is marked.
    #[test]
    fn only_a_store_made_now_is_to_recover() {
        let dir = kitchen_testkit::dir::TempDir::new("recovery-mark");
        let path = dir.path().join("store.db");
        let mut store = Store::open(&path).expect("opens");
        assert!(store.recovery_pending().expect("reads"));
        let tx = store.transaction().expect("tx");
        crate::store::finish_recovery(&tx, NOW).expect("marks");
        tx.commit().expect("commits");
        drop(store);
        let store = Store::open(&path).expect("opens again");
        assert!(!store.recovery_pending().expect("reads"));
    }
}
