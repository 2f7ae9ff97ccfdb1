//! Storing events exactly once: concurrency and duplicates, update ordering, cancellations,
//! the normalised rows.

use std::collections::{BTreeMap, HashSet};

use kitchen_proto::OrderEvent;
use prost::Message;

use super::harness::*;

/// A fixed permutation (no randomness in tests, but not sorted either).
fn shuffle<T>(items: &mut [T]) {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in (1..items.len()).rev() {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        items.swap(i, (state >> 33) as usize % (i + 1));
    }
}

#[tokio::test]
async fn hundred_orders_sent_twice_concurrently_are_stored_and_delivered_once() {
    let app = spawn_app().await;
    let stores = ["store-a", "store-b", "store-c", "store-d"];
    let queue = app.broker.kitchen_queue(&stores).await;
    let mut bodies: Vec<(String, Vec<u8>)> = (0..100)
        .flat_map(|n| {
            let store = stores[n % stores.len()];
            let event_id = format!("evt-{n:03}");
            let body = new_order(
                &event_id,
                store,
                &format!("order-{n:03}"),
                "2025-03-14T18:42:07Z",
            );
            [(event_id.clone(), body.clone()), (event_id, body)]
        })
        .collect();
    shuffle(&mut bodies);
    let requests = bodies.iter().map(|(_, body)| app.post_signed(body));
    let responses = futures_util::future::join_all(requests).await;
    for response in responses {
        assert_eq!(response.status(), 200);
    }

    assert_eq!(app.db.count("SELECT count(*) FROM otter.orders").await, 100);
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM otter.webhook_events")
            .await,
        100
    );
    assert_eq!(
        app.db.count("SELECT count(*) FROM otter.order_items").await,
        100
    );
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM otter.order_item_modifiers")
            .await,
        200
    );
    app.wait_all_published(100).await;

    let messages = app.broker.drain(&queue).await;
    assert_eq!(messages.len(), 100);
    let mut event_ids = HashSet::new();
    let mut sequences: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for message in &messages {
        let order_event = OrderEvent::decode(message.delivery.data.as_slice()).expect("protobuf");
        let properties = &message.delivery.properties;
        assert_eq!(
            properties.message_id().as_ref().map(|id| id.as_str()),
            Some(order_event.event_id.as_str())
        );
        assert_eq!(message.delivery.routing_key.as_str(), order_event.store_id);
        assert!(
            event_ids.insert(order_event.event_id.clone()),
            "delivered twice: {}",
            order_event.event_id
        );
        sequences
            .entry(order_event.store_id.clone())
            .or_default()
            .push(order_event.sequence);
    }
    for (store, seqs) in sequences {
        assert_eq!(
            seqs,
            (1..=25).collect::<Vec<u64>>(),
            "store {store} delivered in sequence order"
        );
    }
}

#[tokio::test]
async fn updates_apply_only_when_newer_and_replace_the_lines() {
    let app = spawn_app().await;
    let app = &app;
    let post = |body: Vec<u8>| async move {
        assert_eq!(app.post_signed(&body).await.status(), 200);
    };
    let lines = || async {
        sqlx::query_as::<_, (String, i32)>(
            "SELECT name, quantity FROM otter.order_items WHERE order_id = 'o1' ORDER BY line_no",
        )
        .fetch_all(&app.db.pool)
        .await
        .expect("query")
        .into_iter()
        .map(|(name, quantity)| format!("{quantity}x {name}"))
        .collect::<Vec<_>>()
    };
    post(order_event(
        "orders.new_order",
        "e1",
        "s1",
        "o1",
        "2025-03-14T18:00:00Z",
        "NEW_ORDER",
        &[("Burger", 1), ("Fries", 1)],
    ))
    .await;
    // Newer: replaces the lines.
    post(order_event(
        "orders.update",
        "e2",
        "s1",
        "o1",
        "2025-03-14T18:05:00Z",
        "CONFIRMED",
        &[("Burger", 3)],
    ))
    .await;
    assert_eq!(lines().await, ["3x Burger"]);
    // Older than what is held: stored, ignored, not sent to the kitchen.
    post(order_event(
        "orders.update",
        "e3",
        "s1",
        "o1",
        "2025-03-14T18:01:00Z",
        "CONFIRMED",
        &[("Salad", 9)],
    ))
    .await;
    assert_eq!(lines().await, ["3x Burger"]);
    let outcomes: Vec<(String, String)> =
        sqlx::query_as("SELECT event_id, outcome FROM otter.webhook_events ORDER BY event_id")
            .fetch_all(&app.db.pool)
            .await
            .expect("query");
    assert_eq!(
        outcomes,
        [("e1", "applied"), ("e2", "applied"), ("e3", "stale")]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    let kitchen_sequences: Vec<(String, Option<i64>)> =
        sqlx::query_as("SELECT event_id, sequence FROM otter.outbox ORDER BY id")
            .fetch_all(&app.db.pool)
            .await
            .expect("query");
    assert_eq!(
        kitchen_sequences,
        [("e1", Some(1)), ("e2", Some(2)), ("e3", None)].map(|(a, b)| (a.to_owned(), b))
    );
    let (status, snapshot): (String, String) =
        sqlx::query_as("SELECT status, snapshot_event_id FROM otter.orders WHERE order_id = 'o1'")
            .fetch_one(&app.db.pool)
            .await
            .expect("query");
    assert_eq!((status.as_str(), snapshot.as_str()), ("CONFIRMED", "e2"));
}

#[tokio::test]
async fn cancellations_in_both_forms_are_recorded() {
    let app = spawn_app().await;
    let app = &app;
    let post = |body: Vec<u8>| async move {
        assert_eq!(app.post_signed(&body).await.status(), 200);
    };
    // Form 1: orders.cancel_order (the reference example) after the reference order.
    post(NEW_ORDER.to_vec()).await;
    post(CANCEL_ORDER.to_vec()).await;
    // Form 2: orders.update whose status is CANCELED.
    post(order_event(
        "orders.new_order",
        "e1",
        "s1",
        "o2",
        "2025-03-14T18:00:00Z",
        "NEW_ORDER",
        &[("Burger", 1)],
    ))
    .await;
    post(order_event(
        "orders.update",
        "e2",
        "s1",
        "o2",
        "2025-03-14T18:03:00Z",
        "CANCELED",
        &[("Burger", 1)],
    ))
    .await;
    // A cancellation that arrives before its order wins over the later-arriving snapshot.
    post(status_event(
        "orders.cancel_order",
        "e3",
        "s1",
        "o3",
        "2025-03-14T18:09:00Z",
    ))
    .await;
    post(order_event(
        "orders.new_order",
        "e4",
        "s1",
        "o3",
        "2025-03-14T18:00:00Z",
        "NEW_ORDER",
        &[("Burger", 1)],
    ))
    .await;
    // And a status after a cancellation does not revive the order.
    post(status_event(
        "orders.confirm",
        "e5",
        "s1",
        "o2",
        "2025-03-14T18:10:00Z",
    ))
    .await;

    let orders: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT order_id, status, cancellation_reason FROM otter.orders ORDER BY order_id",
    )
    .fetch_all(&app.db.pool)
    .await
    .expect("query");
    assert_eq!(
        orders,
        [
            (
                "4f0c2a7e-1b9d-4e3a-8c61-2d7f5a9b0c13",
                "CANCELED",
                Some("CUSTOMER_CALLED_TO_CANCEL")
            ),
            ("o2", "CANCELED", None),
            ("o3", "CANCELED", None),
        ]
        .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.map(str::to_owned)))
    );
    let changes: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT order_id, event_type, status FROM otter.order_status_changes
         WHERE status IN ('CANCELED', 'REJECTED') ORDER BY order_id",
    )
    .fetch_all(&app.db.pool)
    .await
    .expect("query");
    assert_eq!(
        changes,
        [
            (
                "4f0c2a7e-1b9d-4e3a-8c61-2d7f5a9b0c13",
                "orders.cancel_order",
                "CANCELED"
            ),
            ("o2", "orders.update", "CANCELED"),
            ("o3", "orders.cancel_order", "CANCELED"),
        ]
        .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
    );
    // The kitchen is told o3 arrived already canceled.
    let payload: Vec<u8> =
        sqlx::query_scalar("SELECT payload FROM otter.outbox WHERE event_id = 'e4'")
            .fetch_one(&app.db.pool)
            .await
            .expect("query");
    let order_event = OrderEvent::decode(payload.as_slice()).expect("protobuf");
    assert_eq!(order_event.status(), kitchen_proto::OrderStatus::Canceled);
}

#[tokio::test]
async fn nested_modifiers_keep_their_parent_and_depth() {
    let app = spawn_app().await;
    assert_eq!(app.post_signed(NEW_ORDER).await.status(), 200);
    type ModifierRow = (i32, i32, Option<i32>, i32, String, i32, Option<String>);
    let modifiers: Vec<ModifierRow> = sqlx::query_as(
        "SELECT line_no, modifier_no, parent_modifier_no, depth, name, quantity, price::text
         FROM otter.order_item_modifiers ORDER BY line_no, modifier_no",
    )
    .fetch_all(&app.db.pool)
    .await
    .expect("query");
    let expected = [
        (0, 0, None, 1, "American Cheese", 1, Some("0")),
        (0, 1, None, 1, "Make it a Meal", 1, Some("4.0")),
        (0, 2, Some(1), 2, "Fries", 1, Some("0")),
        (0, 3, Some(2), 3, "Large", 1, Some("1.0")),
        (0, 4, Some(1), 2, "Cola", 1, Some("0")),
        (1, 0, None, 1, "Garlic Mayo", 2, Some("0.5")),
        (2, 0, None, 1, "Extra Rice Noodles", 1, Some("2.0")),
        (2, 1, None, 1, "Chili Oil", 1, Some("0")),
        (2, 2, Some(1), 2, "Extra Hot", 1, Some("0")),
    ]
    .map(|(l, m, p, d, n, q, price)| (l, m, p, d, n.to_owned(), q, price.map(str::to_owned)));
    assert_eq!(modifiers, expected);
    let (total, promotions): (String, i64) = sqlx::query_as(
        "SELECT o.total::text, (SELECT count(*) FROM otter.order_promotions p WHERE p.order_id = o.order_id)
         FROM otter.orders o",
    )
    .fetch_one(&app.db.pool)
    .await
    .expect("query");
    assert_eq!((total.as_str(), promotions), ("67.46", 1));
}

#[tokio::test]
async fn a_late_status_event_does_not_move_the_order_backwards() {
    let app = spawn_app().await;
    let app = &app;
    let post = |body: Vec<u8>| async move {
        assert_eq!(app.post_signed(&body).await.status(), 200);
    };
    post(new_order("e1", "s1", "o1", "2025-03-14T18:00:00Z")).await;
    post(status_event(
        "orders.order_ready",
        "e2",
        "s1",
        "o1",
        "2025-03-14T18:20:00Z",
    ))
    .await;
    // Otter delivers out of order: the confirmation from before "ready" arrives last.
    post(status_event(
        "orders.confirm",
        "e3",
        "s1",
        "o1",
        "2025-03-14T18:05:00Z",
    ))
    .await;

    let status: String =
        sqlx::query_scalar("SELECT status FROM otter.orders WHERE order_id = 'o1'")
            .fetch_one(&app.db.pool)
            .await
            .expect("query");
    assert_eq!(status, "PREPARED");
    let history: Vec<(String, String)> = sqlx::query_as(
        "SELECT event_id, status FROM otter.order_status_changes ORDER BY event_time",
    )
    .fetch_all(&app.db.pool)
    .await
    .expect("query");
    assert_eq!(
        history,
        [("e1", "NEW_ORDER"), ("e3", "CONFIRMED"), ("e2", "PREPARED")]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    // The kitchen is told the order's status, which the late event did not change.
    let payload: Vec<u8> =
        sqlx::query_scalar("SELECT payload FROM otter.outbox WHERE event_id = 'e3'")
            .fetch_one(&app.db.pool)
            .await
            .expect("query");
    let order_event = OrderEvent::decode(payload.as_slice()).expect("protobuf");
    assert_eq!(order_event.event_type(), kitchen_proto::EventType::Confirm);
    assert_eq!(order_event.status(), kitchen_proto::OrderStatus::Prepared);
}
