//! Writes the seeds that have to be built rather than copied: `order_events` sequences (the
//! relay's own conversion of the Otter fixtures, and kitchen scenarios like the kitchen unit
//! tests': new orders, updates, bumps' statuses, cancellations, scheduled orders, duplicates)
//! and `scan` prep labels as the agent writes them. Not a fuzz target: after
//! `scripts/fuzz --build-only`, `<target dir>/release/seeds DIR` writes `DIR/<target>/<name>`,
//! to be copied into `fuzz/corpus/<target>/` as `seed-<name>` (docs/fuzzing.md).

use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};
use prost::Message;

use cloud_relay::otter::{OrderStatus as OtterStatus, WebhookEvent, order_event};
use edge_agent::scan::PrepLabel;
use kitchen_fuzz::NOW_MS;
use kitchen_proto::{EventType, Fulfillment, LineItem, OrderEvent, OrderStatus, SchedulingType};

const MINUTE_MS: i64 = 60_000;

fn line(sku_id: &str, name: &str, quantity: u32, modifiers: Vec<LineItem>) -> LineItem {
    LineItem {
        sku_id: sku_id.into(),
        name: name.into(),
        quantity,
        modifiers,
        ..LineItem::default()
    }
}

/// A burger meal (fries with a size under them) and a cola: items of all three stations.
fn meal(burgers: u32) -> Vec<LineItem> {
    vec![
        line(
            "sku-smash-double",
            "Double Smash Burger",
            burgers,
            vec![line(
                "",
                "Make it a Meal",
                1,
                vec![line("", "Fries", 1, vec![line("", "Large", 1, vec![])])],
            )],
        ),
        line("", "Cola", 2, vec![]),
        line("", "Unknown Soup", 1, vec![]),
    ]
}

fn snapshot(id: &str, order: &str, at_min: i64, sequence: u64, items: Vec<LineItem>) -> OrderEvent {
    OrderEvent {
        event_id: id.into(),
        event_type: EventType::NewOrder as i32,
        otter_event_type: "orders.new_order".into(),
        event_time_ms: NOW_MS + at_min * MINUTE_MS,
        store_id: "s1".into(),
        sequence,
        order_id: order.into(),
        friendly_id: format!("#{order}"),
        status: OrderStatus::NewOrder as i32,
        fulfillment: Some(Fulfillment {
            pickup_time_ms: Some(NOW_MS + 20 * MINUTE_MS),
            ..Fulfillment::default()
        }),
        items,
        has_snapshot: true,
        received_at_ms: NOW_MS,
        ..OrderEvent::default()
    }
}

fn status(
    id: &str,
    order: &str,
    sequence: u64,
    event_type: EventType,
    status: OrderStatus,
) -> OrderEvent {
    OrderEvent {
        event_id: id.into(),
        event_type: event_type as i32,
        otter_event_type: format!("orders.{}", event_type.as_str_name().to_lowercase()),
        store_id: "s1".into(),
        sequence,
        order_id: order.into(),
        status: status as i32,
        ..OrderEvent::default()
    }
}

/// The control byte, then each event length-delimited (kitchen_fuzz::order_events).
fn sequence(control: u8, events: &[OrderEvent]) -> Vec<u8> {
    let mut bytes = vec![control];
    for order_event in events {
        order_event
            .encode_length_delimited(&mut bytes)
            .expect("a Vec grows");
    }
    bytes
}

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = dir.join(target);
    std::fs::create_dir_all(&dir).expect("create the seed directory");
    std::fs::write(dir.join(name), bytes).expect("write a seed");
}

fn main() {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: seeds DIR");
        std::process::exit(2);
    };
    let dir = Path::new(&dir);

    // The relay's conversion of its own fixtures, as a kitchen receives them.
    let received_at = DateTime::<Utc>::from_timestamp_millis(NOW_MS).expect("fixed instant");
    let fixtures: Vec<OrderEvent> = [
        (
            &include_bytes!("../../../cloud-relay/tests/fixtures/new_order.json")[..],
            "NEW_ORDER",
        ),
        (
            include_bytes!("../../../cloud-relay/tests/fixtures/cancel_order.json"),
            "CANCELED",
        ),
    ]
    .into_iter()
    .enumerate()
    .map(|(index, (body, otter_status))| {
        let event = WebhookEvent::parse(body, received_at).expect("fixture parses");
        OrderEvent {
            sequence: index as u64 + 1,
            ..order_event(&event, OtterStatus::parse(otter_status), received_at)
        }
    })
    .collect();
    write(
        dir,
        "order_events",
        "otter_fixtures",
        &sequence(0, &fixtures),
    );
    write(
        dir,
        "order_events",
        "otter_fixtures_batch",
        &sequence(1, &fixtures),
    );

    let o1 = snapshot("e1", "o1", 0, 1, meal(2));
    let o2 = snapshot("e2", "o2", 1, 2, meal(1));
    let update = snapshot("e3", "o1", 2, 3, meal(3));
    let stale = snapshot("e4", "o1", -5, 4, meal(1));
    let scheduled = OrderEvent {
        fulfillment: Some(Fulfillment {
            scheduling_type: SchedulingType::FixedTime as i32,
            pickup_time_ms: Some(NOW_MS + 90 * MINUTE_MS),
            ..Fulfillment::default()
        }),
        ..snapshot("e5", "o3", 3, 5, meal(1))
    };
    let ready = status("e6", "o2", 6, EventType::OrderReady, OrderStatus::Prepared);
    let cancel = status("e7", "o1", 7, EventType::CancelOrder, OrderStatus::Canceled);
    let early_cancel = status("e8", "o9", 9, EventType::CancelOrder, OrderStatus::Canceled);
    let late_new = snapshot("e9", "o9", 4, 10, meal(1));
    let handed = status(
        "e10",
        "o3",
        11,
        EventType::OrderHandedOff,
        OrderStatus::PickedUp,
    );
    write(
        dir,
        "order_events",
        "new_update_stale",
        &sequence(2, &[o1.clone(), update.clone(), stale]),
    );
    write(
        dir,
        "order_events",
        "ready_cancel",
        &sequence(0, &[o1.clone(), o2.clone(), ready, cancel.clone()]),
    );
    write(
        dir,
        "order_events",
        "scheduled_ticks",
        &sequence(60 << 1, &[scheduled, o2.clone(), handed]),
    );
    write(
        dir,
        "order_events",
        "cancel_before_order",
        &sequence(0, &[early_cancel, late_new]),
    );
    write(
        dir,
        "order_events",
        "duplicates_and_gap",
        &sequence(
            1,
            &[
                o1.clone(),
                o1.clone(),
                snapshot("e11", "o4", 5, 40, meal(4)),
            ],
        ),
    );
    write(
        dir,
        "order_events",
        "batch_of_all",
        &sequence(1, &[o1, o2, update, cancel]),
    );

    // Prep labels as the agent prints them: raw element string and bracketed human form.
    let label = PrepLabel {
        item_id: "patty-smash",
        batch_id: "B250314-1",
        prepared: NaiveDate::from_ymd_opt(2025, 3, 14).expect("valid date"),
        use_by: NaiveDate::from_ymd_opt(2025, 3, 17).expect("valid date"),
        quantity: 24,
    };
    // The scan target's first two bytes are `today` in days since 1970 (big-endian).
    let today = 20_161u16.to_be_bytes(); // 2025-03-14
    for (name, text) in [
        (
            "prep_label_raw",
            label.element_string().expect("valid label"),
        ),
        ("prep_label_human", label.human().expect("valid label")),
    ] {
        write(dir, "scan", name, &[&today[..], text.as_bytes()].concat());
    }
}
