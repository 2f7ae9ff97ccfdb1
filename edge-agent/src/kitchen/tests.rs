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
            last_logged: &["order.created", "batch.updated:fry", "batch.updated:grill"],
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
            last_logged: &["order.created", "batch.updated:unassigned"],
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
