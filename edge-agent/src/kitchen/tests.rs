//! The kitchen's unit tests: every change checked against the pure `batch::board`.

use kitchen_proto::{EventType, Fulfillment, LineItem, OrderEvent, OrderStatus, SchedulingType};

use kitchen_testkit::events::line;

use super::*;
use crate::batch;

const MINUTE: i64 = 60_000;
/// 2025-03-14T18:40:00Z
const NOW: i64 = 1_741_977_600_000;

fn reference() -> Arc<Reference> {
    Arc::new(
        Reference::parse(include_str!("../../tests/fixtures/three_stations.toml"))
            .expect("valid reference"),
    )
}

/// `burgers` × burger (a meal: fries, with a size modifier under the fries).
fn meal(burgers: u32) -> Vec<LineItem> {
    vec![LineItem {
        sku_id: "sku-smash-double".into(),
        ..line(
            "Double Smash Burger",
            burgers,
            vec![line(
                "Make it a Meal",
                1,
                vec![line("Fries", 1, vec![line("Large", 1, vec![])])],
            )],
        )
    }]
}

fn snapshot(id: &str, order: &str, at_min: i64, items: Vec<LineItem>) -> OrderEvent {
    OrderEvent {
        event_id: id.into(),
        event_type: EventType::NewOrder as i32,
        otter_event_type: "orders.new_order".into(),
        event_time_ms: NOW + at_min * MINUTE,
        store_id: "s1".into(),
        order_id: order.into(),
        friendly_id: format!("#{order}"),
        status: OrderStatus::NewOrder as i32,
        fulfillment: Some(Fulfillment {
            pickup_time_ms: Some(NOW + 20 * MINUTE),
            ..Fulfillment::default()
        }),
        items,
        has_snapshot: true,
        received_at_ms: NOW,
        ..OrderEvent::default()
    }
}

fn status(id: &str, order: &str, otter_type: &str, status: OrderStatus) -> OrderEvent {
    OrderEvent {
        event_id: id.into(),
        otter_event_type: otter_type.into(),
        store_id: "s1".into(),
        order_id: order.into(),
        status: status as i32,
        ..OrderEvent::default()
    }
}

#[allow(clippy::large_enum_variant)] // a test table
enum Step {
    Event(OrderEvent),
    Bump(&'static str, &'static str),
    Recall(&'static str, &'static str),
    /// Start a batch of N at (station, item) and complete it.
    Batch(&'static str, &'static str, u32),
    /// Minutes later.
    Clock(i64),
}
use Step::*;

struct Case {
    name: &'static str,
    steps: Vec<Step>,
    /// (station, item, quantity, orders) after the steps.
    board: &'static [(&'static str, &'static str, u32, &'static [&'static str])],
    /// Kinds the last step logged (with the station of batch events).
    last_logged: &'static [&'static str],
}

fn run(case: Case) {
    let mut kitchen = Kitchen::open(
        Store::open_in_memory().expect("store"),
        reference(),
        20 * MINUTE,
        NOW,
    )
    .expect("kitchen");
    let mut now = NOW;
    let mut logged = Vec::new();
    for step in case.steps {
        kitchen.take_committed();
        match step {
            Event(event) => {
                kitchen.apply(&event, now).expect("applies");
            }
            Bump(order, station) | Recall(order, station) => {
                let bumped = matches!(step, Bump(..));
                kitchen
                    .bump(order, &[station.to_owned()], bumped, "test", now)
                    .expect("bumps")
                    .expect("known order");
            }
            Batch(station, item, n) => {
                let session = kitchen
                    .start_batch(station, item, Some(n), "test", now)
                    .expect("writes")
                    .expect("starts");
                kitchen.take_committed();
                kitchen
                    .complete_batch(&session.session_id, now)
                    .expect("writes")
                    .expect("known session");
            }
            Clock(minutes) => {
                now += minutes * MINUTE;
                kitchen.tick(now).expect("ticks");
            }
        }
        logged = kitchen.take_committed();
    }
    let board = kitchen.state.board_rows();
    // The incremental totals are what the pure calculation gives from the store.
    let pure: Vec<(String, String, u32, Vec<String>)> = batch::board(
        &kitchen.store.open_orders().expect("reads"),
        &reference(),
        now,
        20 * MINUTE,
    )
    .items
    .into_iter()
    .map(|i| (i.station_id, i.item_id, i.quantity, i.order_ids))
    .collect::<BTreeSet<_>>()
    .into_iter()
    .collect();
    assert_eq!(board, pure, "{}: incremental vs pure", case.name);
    let expected: Vec<(String, String, u32, Vec<String>)> = case
        .board
        .iter()
        .map(|(s, i, q, o)| {
            (
                (*s).to_owned(),
                (*i).to_owned(),
                *q,
                o.iter().map(|o| (*o).to_owned()).collect(),
            )
        })
        .collect();
    assert_eq!(board, expected, "{}: board", case.name);
    let kinds: Vec<String> = logged
        .iter()
        .map(|e| match e.kind.as_str() {
            "batch.updated" | "batch.completed" | "batch.started" => format!(
                "{}:{}",
                e.kind,
                e.stations.as_deref().unwrap_or_default().join(",")
            ),
            kind => kind.to_owned(),
        })
        .collect();
    assert_eq!(kinds, case.last_logged, "{}: logged", case.name);
}

#[test]
fn kitchen_cases() {
    let cases = vec![
        Case {
            name: "nested modifiers: burger at the grill, the meal's fries at the fryer",
            steps: vec![Event(snapshot("e1", "o1", 0, meal(2)))],
            board: &[("fry", "fries", 2, &["o1"]), ("grill", "smash", 2, &["o1"])],
            last_logged: &[
                "order.created",
                "order.accepted",
                "batch.updated:fry",
                "batch.updated:grill",
            ],
        },
        Case {
            name: "unknown item: counted at unassigned, never dropped",
            steps: vec![Event(snapshot(
                "e1",
                "o1",
                0,
                vec![line("Mystery Box", 3, vec![line("No pickles", 1, vec![])])],
            ))],
            board: &[("unassigned", "name:mystery box", 3, &["o1"])],
            last_logged: &[
                "order.created",
                "order.accepted",
                "batch.updated:unassigned",
            ],
        },
        Case {
            name: "a duplicate changes nothing and logs nothing",
            steps: vec![
                Event(snapshot("e1", "o1", 0, meal(1))),
                Event(snapshot("e1", "o1", 0, meal(1))),
            ],
            board: &[("fry", "fries", 1, &["o1"]), ("grill", "smash", 1, &["o1"])],
            last_logged: &[],
        },
        Case {
            name: "a newer update replaces the lines",
            steps: vec![
                Event(snapshot("e1", "o1", 0, meal(1))),
                Event(snapshot("e2", "o1", 5, vec![line("Fries", 4, vec![])])),
            ],
            board: &[("fry", "fries", 4, &["o1"])],
            last_logged: &["order.updated", "batch.updated:fry", "batch.updated:grill"],
        },
        Case {
            name: "an older update is recorded but changes no count",
            steps: vec![
                Event(snapshot("e1", "o1", 5, meal(1))),
                Event(snapshot("e2", "o1", 0, vec![line("Fries", 4, vec![])])),
            ],
            board: &[("fry", "fries", 1, &["o1"]), ("grill", "smash", 1, &["o1"])],
            last_logged: &["order.status"],
        },
        Case {
            name: "cancelled by orders.cancel",
            steps: vec![
                Event(snapshot("e1", "o1", 0, meal(1))),
                Event(status("e2", "o1", "orders.cancel", OrderStatus::Canceled)),
            ],
            board: &[],
            last_logged: &[
                "order.cancelled",
                "batch.updated:fry",
                "batch.updated:grill",
            ],
        },
        Case {
            name: "cancelled by a status update",
            steps: vec![
                Event(snapshot("e1", "o1", 0, meal(1))),
                Event(snapshot("e2", "o2", 0, meal(1))),
                Event(status(
                    "e3",
                    "o1",
                    "orders.status_update",
                    OrderStatus::Canceled,
                )),
            ],
            board: &[("fry", "fries", 1, &["o2"]), ("grill", "smash", 1, &["o2"])],
            last_logged: &[
                "order.cancelled",
                "batch.updated:fry",
                "batch.updated:grill",
            ],
        },
        Case {
            name: "a bump removes the order's units at that station only",
            steps: vec![Event(snapshot("e1", "o1", 0, meal(2))), Bump("o1", "fry")],
            board: &[("grill", "smash", 2, &["o1"])],
            last_logged: &["order.bumped", "batch.updated:fry"],
        },
        Case {
            name: "bumped everywhere: ready; a recall brings it back",
            steps: vec![
                Event(snapshot("e1", "o1", 0, meal(1))),
                Bump("o1", "fry"),
                Bump("o1", "grill"),
            ],
            board: &[],
            last_logged: &["order.bumped", "order.ready", "batch.updated:grill"],
        },
        Case {
            name: "recall after ready",
            steps: vec![
                Event(snapshot("e1", "o1", 0, meal(1))),
                Bump("o1", "fry"),
                Bump("o1", "grill"),
                Recall("o1", "grill"),
            ],
            board: &[("grill", "smash", 1, &["o1"])],
            last_logged: &["order.recalled", "batch.updated:grill"],
        },
        Case {
            name: "a batch completes units across orders, most urgent first",
            steps: vec![
                Event(snapshot("e1", "o1", 0, vec![line("Fries", 2, vec![])])),
                Event(snapshot("e2", "o2", 0, vec![line("Fries", 2, vec![])])),
                Batch("fry", "fries", 3),
            ],
            board: &[("fry", "fries", 1, &["o2"])],
            last_logged: &["batch.completed:fry", "order.ready", "batch.updated:fry"],
        },
        Case {
            name: "a scheduled order waits, then moves into the count",
            steps: vec![
                Event(OrderEvent {
                    fulfillment: Some(Fulfillment {
                        pickup_time_ms: Some(NOW + 90 * MINUTE),
                        scheduling_type: SchedulingType::FixedTime as i32,
                        ..Fulfillment::default()
                    }),
                    ..snapshot("e1", "o1", 0, vec![line("Fries", 1, vec![])])
                }),
                Clock(30),
                Clock(40),
            ],
            board: &[("fry", "fries", 1, &["o1"])],
            last_logged: &["batch.updated:fry"],
        },
    ];
    for case in cases {
        run(case);
    }
}

/// The fixture with a store that accepts automatically (`s1`), one that accepts by hand (`s2`)
/// and fries mapped to Otter menu entities at both.
fn otter_reference() -> Arc<Reference> {
    let text = format!(
        "{}\n[[stores]]\nstore_id = \"s1\"\nbrand = \"Smash\"\n[[stores]]\nstore_id = \"s2\"\nbrand = \"Late\"\naccept = \"manual\"\n",
        include_str!("../../tests/fixtures/three_stations.toml")
    )
    .replace(
        "prep_seconds = 180\nmatch = [\"Fries\"]",
        "prep_seconds = 180\nmatch = [\"Fries\"]\notter_entities = { s1 = [\"fries-1\"], s2 = [\"f-2\", \"f-2-large\"] }",
    );
    Arc::new(Reference::parse(&text).expect("valid reference"))
}

fn logged(kitchen: &mut Kitchen) -> Vec<(String, String)> {
    kitchen
        .take_committed()
        .into_iter()
        .map(|entry| (entry.kind, entry.data))
        .collect()
}

#[test]
fn orders_are_accepted_readied_handed_off_and_cancelled_for_otter() {
    use crate::otter::{OrderAction, OtterRejection};
    let store = Store::open_in_memory().expect("opens");
    let mut kitchen = Kitchen::open(store, otter_reference(), 20 * MINUTE, NOW).expect("opens");
    // A store that accepts automatically: accepted in the order's transaction, with the
    // estimate (the burger's 7 minutes; nothing queued).
    kitchen
        .apply(&snapshot("e1", "o1", 0, meal(1)), NOW)
        .expect("applies");
    let entries = logged(&mut kitchen);
    assert_eq!(
        entries[1],
        (
            "order.accepted".into(),
            r#"{"auto":true,"device":null,"order_id":"o1","prep_minutes":7,"store_id":"s1"}"#
                .into()
        )
    );
    // A manual store's order waits for Expo.
    let manual = OrderEvent {
        store_id: "s2".into(),
        ..snapshot(
            "e2",
            "o2",
            0,
            vec![line("Fries", 2, vec![]), line("Cola", 1, vec![])],
        )
    };
    kitchen.apply(&manual, NOW).expect("applies");
    let kinds: Vec<String> = logged(&mut kitchen).into_iter().map(|(k, _)| k).collect();
    assert!(!kinds.contains(&"order.accepted".to_owned()), "{kinds:?}");
    let ticket = kitchen
        .store
        .open_tickets()
        .expect("reads")
        .into_iter()
        .find(|t| t.order_id == "o2");
    assert_eq!(ticket.map(|t| t.prep_minutes), Some(None));
    let act = |kitchen: &mut Kitchen, order: &str, action: OrderAction| {
        kitchen
            .order_action(order, action, "Expo 1", NOW + MINUTE)
            .expect("writes")
    };
    assert_eq!(
        act(&mut kitchen, "o2", OrderAction::PrepTime { minutes: 20 }),
        Err(OtterRejection::NotAccepted)
    );
    assert_eq!(
        act(&mut kitchen, "o2", OrderAction::Accept { minutes: Some(0) }),
        Err(OtterRejection::BadMinutes)
    );
    assert_eq!(
        act(
            &mut kitchen,
            "o2",
            OrderAction::Accept { minutes: Some(12) }
        ),
        Ok(())
    );
    assert_eq!(
        logged(&mut kitchen),
        [(
            "order.accepted".into(),
            r#"{"auto":false,"device":"Expo 1","order_id":"o2","prep_minutes":12,"store_id":"s2"}"#
                .into()
        )]
    );
    assert_eq!(
        act(&mut kitchen, "o2", OrderAction::Accept { minutes: None }),
        Err(OtterRejection::AlreadyAccepted)
    );
    assert_eq!(
        act(
            &mut kitchen,
            "o2",
            OrderAction::Reject {
                reason: "RESTAURANT_TOO_BUSY".into()
            }
        ),
        Err(OtterRejection::AlreadyAccepted)
    );
    assert_eq!(
        act(&mut kitchen, "o2", OrderAction::PrepTime { minutes: 25 }),
        Ok(())
    );
    assert_eq!(
        logged(&mut kitchen),
        [(
            "order.prep_time".into(),
            r#"{"device":"Expo 1","order_id":"o2","prep_minutes":25,"store_id":"s2"}"#.into()
        )]
    );
    // Ready bumps every station left; the order is ready.
    assert_eq!(act(&mut kitchen, "o2", OrderAction::Ready), Ok(()));
    let kinds: Vec<String> = logged(&mut kitchen).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        kinds,
        [
            "order.bumped",
            "order.ready",
            "batch.updated",
            "batch.updated"
        ]
    );
    assert_eq!(act(&mut kitchen, "o2", OrderAction::HandOff), Ok(()));
    assert_eq!(
        logged(&mut kitchen)[0],
        (
            "order.handed_off".into(),
            r#"{"device":"Expo 1","order_id":"o2","store_id":"s2"}"#.into()
        )
    );
    assert_eq!(
        act(&mut kitchen, "o2", OrderAction::HandOff),
        Err(OtterRejection::NotOpen("closed".into()))
    );
    assert_eq!(
        act(&mut kitchen, "o9", OrderAction::HandOff),
        Err(OtterRejection::NoSuchOrder)
    );
    // Cancel: a reason from Otter's list only.
    assert_eq!(
        act(
            &mut kitchen,
            "o1",
            OrderAction::Cancel {
                reason: "BORED".into(),
                note: None
            }
        ),
        Err(OtterRejection::UnknownReason("BORED".into()))
    );
    let cancel = OrderAction::Cancel {
        reason: "KITCHEN_CLOSED".into(),
        note: Some(" gas leak ".into()),
    };
    assert_eq!(act(&mut kitchen, "o1", cancel), Ok(()));
    assert_eq!(
        logged(&mut kitchen)[0],
        (
            "order.cancel_requested".into(),
            r#"{"device":"Expo 1","note":"gas leak","order_id":"o1","reason":"KITCHEN_CLOSED","store_id":"s1"}"#.into()
        )
    );
    assert!(kitchen.store.open_tickets().expect("reads").is_empty());
    assert!(kitchen.state.items.is_empty(), "nothing left to make");
}

#[test]
fn items_are_86d_and_back_and_call_states_are_logged_once() {
    use crate::{
        otter::{OtterRejection, Until},
        record::OtterCall,
    };
    let store = Store::open_in_memory().expect("opens");
    let mut kitchen = Kitchen::open(store, otter_reference(), 20 * MINUTE, NOW).expect("opens");
    let suspended = kitchen
        .suspend(
            "fries",
            Until::Hours(2),
            "out of oil",
            "Fry 1",
            Some("Ana".into()),
            NOW,
        )
        .expect("writes")
        .expect("86'd");
    assert_eq!(suspended.until_ms, Some(NOW + 120 * MINUTE));
    let (kind, data) = logged(&mut kitchen).remove(0);
    assert_eq!(kind, "item.suspended");
    assert_eq!(
        data,
        format!(
            r#"{{"device":"Fry 1","entities":[{{"entity_ids":["fries-1"],"store_id":"s1"}},{{"entity_ids":["f-2","f-2-large"],"store_id":"s2"}}],"item_id":"fries","item_name":"Fries","note":"out of oil","staff":"Ana","suspension_id":"{}","until_ms":{}}}"#,
            suspended.suspension_id,
            NOW + 120 * MINUTE
        )
    );
    assert_eq!(
        kitchen
            .suspend("fries", Until::Back, "", "Fry 1", None, NOW + 1)
            .expect("writes"),
        Err(OtterRejection::AlreadySuspended("Fries".into()))
    );
    assert_eq!(
        kitchen
            .suspend("nothing", Until::Back, "", "Fry 1", None, NOW)
            .expect("writes"),
        Err(OtterRejection::NoSuchItem)
    );
    // It survives a restart (the store holds it) and ends by itself when its time is up.
    assert_eq!(
        kitchen
            .store
            .suspensions(NOW + 119 * MINUTE)
            .expect("reads")
            .len(),
        1
    );
    assert!(
        kitchen
            .store
            .suspensions(NOW + 120 * MINUTE)
            .expect("reads")
            .is_empty()
    );
    let back = kitchen
        .unsuspend("fries", "Fry 1", None, NOW + 5)
        .expect("writes")
        .expect("back");
    assert_eq!(
        (back.suspension_id.as_str(), back.until_ms),
        (suspended.suspension_id.as_str(), None)
    );
    assert_eq!(logged(&mut kitchen)[0].0, "item.unsuspended");
    assert_eq!(
        kitchen
            .unsuspend("fries", "Fry 1", None, NOW + 6)
            .expect("writes"),
        Err(OtterRejection::NotSuspended("Fries".into()))
    );
    // Call states: logged when they change, not when read again unchanged.
    let call = |state: &str| OtterCall {
        record_id: "r1".into(),
        store_id: "s1".into(),
        kind: "suspend".into(),
        order_id: None,
        item_id: Some("fries".into()),
        state: state.into(),
        detail: String::new(),
    };
    let changed = |state: &str, change_id: i64| crate::store::CallChange {
        call: call(state),
        change_id,
        at_ms: NOW,
    };
    assert_eq!(
        kitchen
            .otter_calls(&[changed("sent", 7)], 7, NOW)
            .expect("writes"),
        1
    );
    assert_eq!(
        kitchen
            .otter_calls(&[changed("sent", 8)], 8, NOW)
            .expect("writes"),
        0
    );
    assert_eq!(
        kitchen
            .otter_calls(&[changed("accepted", 9)], 9, NOW)
            .expect("writes"),
        1
    );
    let kinds: Vec<String> = logged(&mut kitchen).into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, ["otter.call", "otter.call"]);
    assert_eq!(kitchen.store.sync_cursor("otter_calls").expect("reads"), 9);
    assert_eq!(
        kitchen.store.item_calls("fries").expect("reads"),
        [call("accepted")]
    );
    // Trimmed with the de-duplication record: calls and lifted 86s older than it go.
    kitchen
        .prune(1000, MINUTE, NOW + MINUTE / 2)
        .expect("prunes");
    assert_eq!(kitchen.store.item_calls("fries").expect("reads").len(), 1);
    kitchen
        .prune(1000, MINUTE, NOW + 2 * MINUTE)
        .expect("prunes");
    assert_eq!(kitchen.store.item_calls("fries").expect("reads"), []);
}
