//! What reaches RabbitMQ: message properties, the raw fanout, unroutable events held and retried.

use std::time::Duration;

use kitchen_proto::OrderEvent;
use prost::Message;

use super::harness::*;

#[tokio::test]
async fn the_reference_order_reaches_its_store_queue_as_protobuf_and_the_fanout_as_json() {
    let app = spawn_app().await;
    let kitchen = app.broker.kitchen_queue(&["kitchen-bk-01"]).await;
    let other_store = app.broker.kitchen_queue(&["kitchen-other"]).await;
    let raw = app.broker.raw_queue().await;
    assert_eq!(app.post_signed(NEW_ORDER).await.status(), 200);
    app.wait_all_published(1).await;

    let messages = app.broker.drain(&kitchen).await;
    assert_eq!(messages.len(), 1);
    let delivery = &messages[0].delivery;
    let properties = &delivery.properties;
    let text =
        |value: &Option<lapin::types::ShortString>| value.as_ref().map(|v| v.as_str().to_owned());
    assert_eq!(
        text(properties.message_id()).as_deref(),
        Some("0b6f3c1e-7d2a-4c55-9a3e-5f1d2b8e9a41")
    );
    assert_eq!(
        text(properties.content_type()).as_deref(),
        Some("application/x-protobuf")
    );
    assert_eq!(text(properties.kind()).as_deref(), Some("orders.new_order"));
    assert_eq!(*properties.delivery_mode(), Some(2));
    assert_eq!(delivery.routing_key.as_str(), "kitchen-bk-01");
    let order_event = OrderEvent::decode(delivery.data.as_slice()).expect("protobuf");
    assert_eq!(order_event.order_id, "4f0c2a7e-1b9d-4e3a-8c61-2d7f5a9b0c13");
    assert_eq!(order_event.sequence, 1);
    assert_eq!(order_event.items.len(), 3);
    assert_eq!(
        order_event.items[0].modifiers[1].modifiers[0].modifiers[0].name,
        "Large"
    );

    assert!(app.broker.drain(&other_store).await.is_empty());
    let raw_messages = app.broker.drain(&raw).await;
    assert_eq!(raw_messages.len(), 1);
    assert_eq!(raw_messages[0].delivery.data, NEW_ORDER);
}

#[tokio::test]
async fn unroutable_events_are_kept_and_delivered_once_a_kitchen_binds() {
    let app = spawn_app().await;
    for n in 1..=3 {
        let body = new_order(
            &format!("e{n}"),
            "store-new",
            &format!("o{n}"),
            "2025-03-14T18:00:00Z",
        );
        assert_eq!(app.post_signed(&body).await.status(), 200);
    }
    // Nothing is bound for the store: the first event is recorded as unroutable and holds back
    // the others, in order.
    let error: String = eventually("unroutable recorded", Duration::from_secs(10), || async {
        sqlx::query_scalar(
            "SELECT last_error FROM otter.outbox WHERE event_id = 'e1' AND last_error IS NOT NULL",
        )
        .fetch_optional(&app.db.pool)
        .await
        .ok()
        .flatten()
    })
    .await;
    assert_eq!(
        error,
        "unroutable: no kitchen queue is bound for store \"store-new\""
    );
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM otter.outbox WHERE published_at IS NULL")
            .await,
        3
    );

    let queue = app.broker.kitchen_queue(&["store-new"]).await;
    app.wait_all_published(3).await;
    let delivered = app.broker.delivered(&queue).await;
    assert_eq!(
        delivered,
        [
            ("e1".to_owned(), 1),
            ("e2".to_owned(), 2),
            ("e3".to_owned(), 3)
        ]
    );
}

#[tokio::test]
async fn a_second_relay_ingests_while_only_one_publishes_and_takes_over_when_it_stops() {
    let mut first = spawn_app().await;
    let queue = first.broker.kitchen_queue(&["s1"]).await;
    let client = first.client.clone();
    // Readiness is on each relay's admin listener.
    let ready = |admin_addr: std::net::SocketAddr| {
        let client = client.clone();
        async move {
            let response = client
                .get(format!("http://{admin_addr}/readyz"))
                .send()
                .await
                .ok()?;
            let status = response.status();
            let body: serde_json::Value = response.json().await.ok()?;
            Some((status.as_u16(), body["broker"].as_str()?.to_owned()))
        }
    };
    eventually("first relay publishes", Duration::from_secs(10), || async {
        (ready(first.admin_addr).await? == (200, "up".to_owned())).then_some(())
    })
    .await;
    let second = first.start_another_relay().await;
    eventually(
        "second relay stands by",
        Duration::from_secs(10),
        || async { (ready(second.admin_addr).await? == (200, "standby".to_owned())).then_some(()) },
    )
    .await;

    // Webhooks to either relay are stored once and published once, in order.
    for n in 1..=4 {
        let body = new_order(
            &format!("e{n}"),
            "s1",
            &format!("o{n}"),
            "2025-03-14T18:00:00Z",
        );
        let relay = if n % 2 == 0 { second.addr } else { first.addr };
        assert_eq!(first.post_signed_to(relay, &body).await.status(), 200);
    }
    first.wait_all_published(4).await;

    // The first relay stops: the second takes the lock and publishes what comes next.
    first.stop_relay().await;
    let (second_addr, second_admin) = (second.addr, second.admin_addr);
    eventually(
        "second relay takes over",
        Duration::from_secs(15),
        || async { (ready(second_admin).await? == (200, "up".to_owned())).then_some(()) },
    )
    .await;
    let body = new_order("e5", "s1", "o5", "2025-03-14T18:00:00Z");
    assert_eq!(first.post_signed_to(second_addr, &body).await.status(), 200);
    first.wait_all_published(5).await;
    let delivered = first.broker.delivered(&queue).await;
    let expected: Vec<(String, u64)> = (1..=5).map(|n| (format!("e{n}"), n)).collect();
    assert_eq!(delivered, expected);
    second.token.cancel();
    second.handle.await.expect("joins").expect("clean stop");
}
