//! The store's unit tests.

use kitchen_proto::{
    EventType, Fulfillment, LineItem, OrderEvent, OrderStatus, reference::Reference,
};

use kitchen_testkit::events::line;

use super::*;
use crate::{
    batch::{Line, board},
    record::{Change, Ready, Record},
};

const MINUTE: i64 = 60_000;
const NOW: i64 = 1_741_977_600_000;

fn snapshot(
    event_id: &str,
    seq: u64,
    order_id: &str,
    at_min: i64,
    items: Vec<LineItem>,
) -> OrderEvent {
    OrderEvent {
        event_id: event_id.into(),
        event_type: EventType::NewOrder as i32,
        otter_event_type: "orders.new_order".into(),
        event_time_ms: NOW + at_min * MINUTE,
        store_id: "s1".into(),
        sequence: seq,
        order_id: order_id.into(),
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

fn status(event_id: &str, seq: u64, order_id: &str, status: OrderStatus) -> OrderEvent {
    OrderEvent {
        event_id: event_id.into(),
        otter_event_type: "orders.status".into(),
        store_id: "s1".into(),
        sequence: seq,
        order_id: order_id.into(),
        status: status as i32,
        ..OrderEvent::default()
    }
}

fn reference() -> Reference {
    Reference::parse(
        "[[stations]]\nid = \"fry\"\nname = \"Fryer\"\n[[items]]\nid = \"fries\"\nname = \"Fries\"\nstation = \"fry\"\nprep_seconds = 180\nmatch = [\"Fries\"]",
    )
    .expect("valid")
}

/// (item, quantity, orders) of the fry station.
fn fries(store: &Store) -> Vec<(String, u32, Vec<String>)> {
    let orders = store.open_orders().expect("loads");
    board(&orders, &reference(), NOW, 20 * MINUTE)
        .items
        .into_iter()
        .filter(|i| i.station_id == "fry")
        .map(|i| (i.item_id, i.quantity, i.order_ids))
        .collect()
}

fn change(applied: Applied) -> Change {
    match applied {
        Applied::Applied { change, .. } => change,
        Applied::Duplicate => panic!("unexpected duplicate"),
    }
}

#[test]
fn events_apply_once_and_in_time_order() {
    let mut store = Store::open_in_memory().expect("opens");
    let meal = || {
        vec![line(
            "Burger",
            2,
            vec![line("Meal", 1, vec![line("Fries", 1, vec![])])],
        )]
    };
    let first = snapshot("e1", 1, "o1", 0, meal());
    assert_eq!(
        change(store.apply(&first, NOW).expect("applies")),
        Change::Created
    );
    // The broker redelivers: nothing changes.
    assert_eq!(
        store.apply(&first, NOW).expect("applies"),
        Applied::Duplicate
    );
    assert_eq!(fries(&store), [("fries".into(), 2, vec!["o1".to_owned()])]);

    // A newer update replaces the lines; an older one is ignored.
    let newer = snapshot("e2", 2, "o1", 5, vec![line("Fries", 5, vec![])]);
    assert_eq!(
        change(store.apply(&newer, NOW).expect("applies")),
        Change::Updated
    );
    let older = snapshot("e3", 3, "o1", 2, vec![line("Fries", 9, vec![])]);
    assert_eq!(
        change(store.apply(&older, NOW).expect("applies")),
        Change::Stale
    );
    assert_eq!(fries(&store), [("fries".into(), 5, vec!["o1".to_owned()])]);

    // Cancelled (either relay form arrives as status CANCELED) is final.
    let cancel = status("e4", 4, "o1", OrderStatus::Canceled);
    assert_eq!(
        change(store.apply(&cancel, NOW).expect("applies")),
        Change::Cancelled
    );
    let confirm = status("e5", 5, "o1", OrderStatus::Confirmed);
    assert_eq!(
        change(store.apply(&confirm, NOW).expect("applies")),
        Change::Status
    );
    assert_eq!(
        store.order_state("o1").expect("reads"),
        Some(("cancelled".into(), "ORDER_STATUS_CONFIRMED".into()))
    );
    assert!(fries(&store).is_empty());
}

#[test]
fn ready_closes_an_order_and_unknown_orders_are_only_recorded() {
    let mut store = Store::open_in_memory().expect("opens");
    store
        .apply(
            &snapshot("e1", 1, "o1", 0, vec![line("Fries", 1, vec![])]),
            NOW,
        )
        .expect("applies");
    store
        .apply(
            &snapshot("e2", 2, "o2", 0, vec![line("Fries", 2, vec![])]),
            NOW,
        )
        .expect("applies");
    let ready = status("e3", 3, "o1", OrderStatus::Prepared);
    assert_eq!(
        change(store.apply(&ready, NOW).expect("applies")),
        Change::Status
    );
    assert_eq!(fries(&store), [("fries".into(), 2, vec!["o2".to_owned()])]);
    let stray = status("e4", 4, "o9", OrderStatus::Confirmed);
    assert_eq!(
        change(store.apply(&stray, NOW).expect("applies")),
        Change::UnknownOrder
    );
    assert_eq!(store.order_state("o9").expect("reads"), None);
}

/// Found by the chaos suite (docs/reliability.md): a status redelivered ahead of its order's
/// first snapshot was forgotten, and the snapshot — stamped with the status the relay held
/// when it was made — left a fulfilled or cancelled order open at the kitchen.
#[test]
fn a_status_that_comes_before_its_order_applies_when_the_order_comes() {
    let mut store = Store::open_in_memory().expect("opens");
    let at = |mut event: OrderEvent, min: i64| {
        event.event_time_ms = NOW + min * MINUTE;
        event
    };
    let fries = || vec![line("Fries", 1, vec![])];
    // Fulfilled (at 5) before its snapshot (at 0) arrives: closed when it does.
    let early = at(status("e1", 1, "o1", OrderStatus::Fulfilled), 5);
    assert_eq!(
        change(store.apply(&early, NOW).expect("applies")),
        Change::UnknownOrder
    );
    assert_eq!(
        change(
            store
                .apply(&snapshot("e2", 2, "o1", 0, fries()), NOW)
                .expect("applies")
        ),
        Change::Created
    );
    assert_eq!(
        store.order_state("o1").expect("reads"),
        Some(("closed".into(), "ORDER_STATUS_FULFILLED".into()))
    );
    // An early status older than the snapshot loses to it (the snapshot's status is newer).
    let stale = at(status("e3", 3, "o2", OrderStatus::Prepared), 0);
    store.apply(&stale, NOW).expect("applies");
    store
        .apply(&snapshot("e4", 4, "o2", 1, fries()), NOW)
        .expect("applies");
    assert_eq!(state_of_order(&store, "o2").as_deref(), Some("open"));
    // A cancellation is final whatever its time, and over a later early status.
    let cancel = at(status("e5", 5, "o3", OrderStatus::Canceled), -3);
    store.apply(&cancel, NOW).expect("applies");
    let later = at(status("e6", 6, "o3", OrderStatus::Confirmed), 4);
    store.apply(&later, NOW).expect("applies");
    assert_eq!(
        change(
            store
                .apply(&snapshot("e7", 7, "o3", 2, fries()), NOW)
                .expect("applies")
        ),
        Change::Cancelled
    );
    assert_eq!(state_of_order(&store, "o3").as_deref(), Some("cancelled"));
    // Taken once: the order's next snapshot is its own again.
    store
        .apply(&snapshot("e8", 8, "o1", 9, fries()), NOW)
        .expect("applies");
    assert_eq!(state_of_order(&store, "o1").as_deref(), Some("open"));
    assert_eq!(fries_of(&store), ["o1", "o2"]);
    // One whose order does not come is pruned with the processed event ids.
    let orphan = at(status("e9", 9, "o4", OrderStatus::Fulfilled), 5);
    store.apply(&orphan, NOW).expect("applies");
    store.prune(1000, MINUTE, NOW + 2 * MINUTE).expect("prunes");
    let late = snapshot("e10", 10, "o4", 0, fries());
    store.apply(&late, NOW + 2 * MINUTE).expect("applies");
    assert_eq!(state_of_order(&store, "o4").as_deref(), Some("open"));
}

fn state_of_order(store: &Store, order_id: &str) -> Option<String> {
    store
        .order_state(order_id)
        .expect("reads")
        .map(|(state, _)| state)
}

/// The orders counting at the fry station.
fn fries_of(store: &Store) -> Vec<String> {
    fries(store)
        .into_iter()
        .flat_map(|(_, _, orders)| orders)
        .collect()
}

#[test]
fn skipped_sequence_numbers_are_gaps_until_they_arrive() {
    let mut store = Store::open_in_memory().expect("opens");
    let at = |seq: u64| status(&format!("e{seq}"), seq, "o1", OrderStatus::Confirmed);
    let gap = |applied: Applied| match applied {
        Applied::Applied { gap, .. } => gap,
        Applied::Duplicate => panic!("duplicate"),
    };
    assert_eq!(
        gap(store.apply(&at(7), NOW).expect("applies")),
        None,
        "baseline"
    );
    assert_eq!(gap(store.apply(&at(8), NOW).expect("applies")), None);
    assert_eq!(
        gap(store.apply(&at(12), NOW).expect("applies")),
        Some((9, 11))
    );
    store.apply(&at(10), NOW).expect("applies");
    let remaining: Vec<(u64, u64)> = store
        .sequence_gaps()
        .expect("reads")
        .into_iter()
        .map(|g| (g.from, g.to))
        .collect();
    assert_eq!(remaining, [(9, 9), (11, 11)]);
}

#[test]
fn the_modifier_tree_survives_the_store() {
    let mut store = Store::open_in_memory().expect("opens");
    let items = vec![
        line(
            "Burger",
            2,
            vec![
                line("Cheese", 1, vec![]),
                line(
                    "Meal",
                    1,
                    vec![
                        line("Fries", 1, vec![line("Large", 1, vec![])]),
                        line("Cola", 1, vec![]),
                    ],
                ),
            ],
        ),
        line("Fries", 1, vec![]),
    ];
    store
        .apply(&snapshot("e1", 1, "o1", 0, items), NOW)
        .expect("applies");
    let orders = store.open_orders().expect("loads");
    let names = |lines: &[Line]| -> Vec<String> {
        lines
            .iter()
            .map(|l| l.name.clone().unwrap_or_default())
            .collect()
    };
    let lines = &orders[0].lines;
    assert_eq!(names(lines), ["Burger", "Fries"]);
    assert_eq!(names(&lines[0].modifiers), ["Cheese", "Meal"]);
    assert_eq!(names(&lines[0].modifiers[1].modifiers), ["Fries", "Cola"]);
    assert_eq!(
        names(&lines[0].modifiers[1].modifiers[0].modifiers),
        ["Large"]
    );
    assert_eq!(fries(&store), [("fries".into(), 3, vec!["o1".to_owned()])]);
}

#[test]
fn pruning_keeps_the_newest_log_entries_and_the_high_water_mark() {
    let mut store = Store::open_in_memory().expect("opens");
    for n in 1..=5 {
        let tx = store.transaction().expect("tx");
        let ready = Ready {
            order_id: format!("o{n}"),
            friendly_id: String::new(),
        };
        append_log(&tx, &Record::OrderReady(ready), None, NOW).expect("logs");
        tx.commit().expect("commits");
    }
    store
        .apply(
            &status("e1", 1, "old", OrderStatus::Confirmed),
            NOW - 40 * 24 * 60 * MINUTE,
        )
        .expect("applies");
    store
        .apply(&status("e2", 2, "new", OrderStatus::Confirmed), NOW)
        .expect("applies");
    // Head office has them all (pruning keeps what it has not: the next test).
    store.set_pushed_through(5).expect("cursor");
    assert_eq!(
        store.prune(2, 30 * 24 * 60 * MINUTE, NOW).expect("prunes"),
        3
    );
    assert_eq!(store.event_log_bounds().expect("reads"), (4, 5));
    let kept: Vec<i64> = store
        .events_after(0, 10)
        .expect("reads")
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(kept, [4, 5]);
    // The next entry still gets a fresh sequence, and so does the one after a full prune.
    store.prune(0, 30 * 24 * 60 * MINUTE, NOW).expect("prunes");
    assert_eq!(store.event_log_bounds().expect("reads"), (0, 0));
    assert_eq!(store.last_event_seq().expect("reads"), 5);
    // A redelivery of an event older than the de-duplication window is applied again;
    // a recent one is still a duplicate.
    assert_eq!(
        store
            .apply(&status("e2", 2, "new", OrderStatus::Confirmed), NOW)
            .expect("applies"),
        Applied::Duplicate
    );
    assert_ne!(
        store
            .apply(&status("e1", 1, "old", OrderStatus::Confirmed), NOW)
            .expect("applies"),
        Applied::Duplicate
    );
}

fn log_ready(store: &mut Store, order_id: &str) -> i64 {
    let tx = store.transaction().expect("tx");
    let ready = Ready {
        order_id: order_id.into(),
        friendly_id: String::new(),
    };
    let logged = append_log(&tx, &Record::OrderReady(ready), None, NOW).expect("logs");
    tx.commit().expect("commits");
    logged.seq
}

fn synced_ids(store: &Store, pushed: i64) -> Vec<(bool, String)> {
    store
        .sync_batch(pushed, 100)
        .expect("reads")
        .into_iter()
        .map(|row| {
            let order_id =
                serde_json::from_str::<serde_json::Value>(&row.data).expect("json")["order_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
            (row.from_outbox, order_id)
        })
        .collect()
}

/// The sync reads the event log after its cursor; pruning never drops an entry it has not
/// pushed, while the displays see only the newest `keep`.
#[test]
fn pruning_keeps_what_head_office_has_not_received() {
    let mut store = Store::open_in_memory().expect("opens");
    for n in 1..=4 {
        log_ready(&mut store, &format!("o{n}"));
    }
    // A display-only entry is not for the sync.
    let tx = store.transaction().expect("tx");
    let update = crate::record::BatchUpdate {
        station_id: "fry".into(),
        items: Vec::new(),
    };
    append_log(&tx, &Record::BatchUpdated(update), None, NOW).expect("logs");
    tx.commit().expect("commits");
    assert_eq!(store.sync_backlog(0).expect("reads"), (4, Some(NOW)));
    assert_eq!(store.sync_backlog(2).expect("reads").0, 2);
    // Pushed through 2 (and written): 1 and 2 go; 3 and 4 stay for the sync, unseen by the
    // displays; the display-only 5 goes.
    store.set_pushed_through(2).expect("cursor");
    assert_eq!(store.prune(0, MINUTE, NOW).expect("prunes"), 3);
    assert_eq!(store.event_log_bounds().expect("reads"), (0, 0));
    assert!(store.events_after(0, 10).expect("reads").is_empty());
    assert_eq!(
        synced_ids(&store, 2),
        [(false, "o3".to_owned()), (false, "o4".to_owned())]
    );
    // New entries continue the sequence and are the displays' again.
    assert_eq!(log_ready(&mut store, "o6"), 6);
    assert_eq!(store.event_log_bounds().expect("reads"), (6, 6));
    assert_eq!(store.sync_backlog(2).expect("reads").0, 3);
    // Once pushed, a later prune drops them.
    store.set_pushed_through(6).expect("cursor");
    store.set_pushed_through(4).expect("never goes back");
    assert_eq!(store.pushed_through().expect("reads"), 6);
    assert_eq!(store.prune(1, MINUTE, NOW).expect("prunes"), 2);
    assert_eq!(store.sync_backlog(6).expect("reads"), (0, None));
}

/// A store an older agent left with records in `outbox` (migrations 0001–0010): after 0011
/// they are pushed first, under their ids, and the log's own entries after them; nothing
/// already in the log is pushed twice.
#[test]
fn records_an_older_agent_left_in_the_outbox_are_pushed_after_the_migration() {
    let connection = rusqlite::Connection::open_in_memory().expect("opens");
    for (index, migration) in MIGRATIONS[..10].iter().enumerate() {
        connection.execute_batch(migration).expect("migrates");
        connection
            .pragma_update(None, "user_version", index + 1)
            .expect("version");
    }
    for n in 1..=3 {
        let data = format!(r#"{{"order_id":"old{n}","friendly_id":""}}"#);
        connection
            .execute(
                "INSERT INTO event_log (kind, order_id, data, created_at) VALUES ('order.ready', ?1, ?2, ?3)",
                rusqlite::params![format!("old{n}"), data, NOW],
            )
            .expect("logged");
        // Record 1 was pushed and deleted from the outbox; 2 and 3 wait.
        if n > 1 {
            connection
                .execute(
                    "INSERT INTO outbox (record_id, kind, data, created_at) VALUES (?1, 'order.ready', ?2, ?3)",
                    rusqlite::params![format!("id-{n}"), data, NOW],
                )
                .expect("queued");
        }
    }
    let mut store = Store::init(connection).expect("migrates");
    let pushed = store.pushed_through().expect("reads");
    assert_eq!(pushed, 3, "what the log held is synced or in the outbox");
    assert_eq!(store.sync_backlog(pushed).expect("reads"), (2, Some(NOW)));
    assert_eq!(log_ready(&mut store, "new4"), 4, "the sequence goes on");
    let batch = store.sync_batch(pushed, 100).expect("reads");
    assert_eq!(
        batch
            .iter()
            .map(|row| (row.from_outbox, row.record_id.as_str()))
            .take(2)
            .collect::<Vec<_>>(),
        [(true, "id-2"), (true, "id-3")],
        "the outbox's rows under their own ids"
    );
    assert_eq!(
        synced_ids(&store, pushed),
        [
            (true, "old2".to_owned()),
            (true, "old3".to_owned()),
            (false, "new4".to_owned())
        ]
    );
    // Pushed: the outbox's rows deleted, the cursor moved.
    store.delete_synced(batch[1].seq).expect("deletes");
    assert_eq!(store.sync_backlog(4).expect("reads"), (0, None));
    assert_eq!(store.event_log_bounds().expect("reads"), (1, 4));
}

#[test]
fn the_reference_cache_holds_what_was_saved() {
    let mut store = Store::open_in_memory().expect("opens");
    assert!(store.cached_reference().expect("reads").is_none());
    let reference = Reference::parse(
        "[floor]\nallergen_words = [\"nut\", \"gluten\"]\nscan_gap_ms = 25\n\
         [[stations]]\nid = \"fry\"\nname = \"Fryer\"\namber_minutes = 7\nkeys = { bump = [\"b\"] }\n[[stations]]\nid = \"grill\"\nname = \"Grill\"\n\
         [[stores]]\nstore_id = \"s1\"\nbrand = \"Smash\"\naccept = \"manual\"\n\
         [[stores]]\nstore_id = \"s2\"\nbrand = \"Other\"\n\
         [[items]]\nid = \"fries\"\nname = \"Fries\"\nstation = \"fry\"\nprep_seconds = 180\nmatch = [\"Fries\", \"sku-f\"]\n\
         otter_entities = { s1 = [\"fries-1\", \"fries-combo\"], s2 = [\"f2\"] }",
    )
    .expect("valid");
    store
        .save_reference(&reference, "file.toml", NOW)
        .expect("saves");
    let (cached, source, at) = store.cached_reference().expect("reads").expect("cached");
    assert_eq!((source.as_str(), at), ("file.toml", NOW));
    assert_eq!(cached.stations, reference.stations);
    assert_eq!(cached.stores, reference.stores);
    assert_eq!(cached.items, reference.items);
    assert_eq!(cached.floor, reference.floor);
    assert_eq!(cached.stations[0].amber_minutes, Some(7));
    // Saving again replaces the whole copy.
    store
        .save_reference(&Reference::default(), "empty", NOW + 1)
        .expect("saves");
    let (cached, _, _) = store.cached_reference().expect("reads").expect("cached");
    assert!(cached.items.is_empty() && cached.stations.is_empty());
}

#[test]
fn a_store_file_reopens_with_its_data() {
    let path = std::env::temp_dir().join(format!("edge-store-test-{}.db", std::process::id()));
    {
        let mut store = Store::open(&path).expect("opens");
        store
            .apply(
                &snapshot("e1", 1, "o1", 0, vec![line("Fries", 4, vec![])]),
                NOW,
            )
            .expect("applies");
    }
    let store = Store::open(&path).expect("reopens");
    assert_eq!(fries(&store), [("fries".into(), 4, vec!["o1".to_owned()])]);
    drop(store);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}
