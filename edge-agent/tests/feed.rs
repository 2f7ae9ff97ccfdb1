//! The kitchen feed against the real RabbitMQ: events applied once into SQLite, redeliveries
//! absorbed, poison messages dead-lettered while consumption goes on. Queue and exchange names
//! are unique per run and removed afterwards.

use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use edge_agent::{
    feed::{Feed, FeedConfig},
    kitchen::Kitchen,
    status::FeedStats,
    store::Store,
    writer::StoreWriter,
};
use kitchen_proto::{OrderEvent, reference::Reference};
use kitchen_testkit::{
    amqp::{BrokerObjects, amqp_url},
    events::{line, new_order},
    names::unique,
};
use lapin::{
    BasicProperties, Connection, ConnectionProperties,
    options::{BasicGetOptions, BasicPublishOptions},
};
use prost::Message;
use tokio_util::sync::CancellationToken;

fn order_event(store_id: &str, sequence: u64) -> OrderEvent {
    new_order(store_id, &format!("{store_id}-o{sequence}"))
        .event_id(format!("{store_id}-e{sequence}"))
        .sequence(sequence)
        .item(line("Fries", 2, vec![]))
        .build()
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn events_are_applied_once_and_poison_is_dead_lettered() {
    let kitchen_id = unique("test");
    let path = std::env::temp_dir().join(format!("{kitchen_id}.db"));
    let config = FeedConfig {
        amqp_url: amqp_url(),
        kitchen_id: kitchen_id.clone(),
        store_ids: vec!["s1".into(), "s2".into()],
        exchange: format!("{kitchen_id}.structured_order_data"),
        prefetch: 32,
        timeout: Duration::from_secs(5),
        delivery_limit: 5,
        ca_pem: None,
    };
    // Removed when the test ends, passed or failed (after the feed has stopped).
    let broker = BrokerObjects::new();
    for queue in [config.queue(), config.dead_letter_queue()] {
        broker.add_queue(queue);
    }
    for exchange in [config.exchange.clone(), config.dead_letter_exchange()] {
        broker.add_exchange(exchange);
    }
    let (events, _) = tokio::sync::broadcast::channel(64);
    let kitchen = Kitchen::open(
        Store::open(&path).expect("store opens"),
        Arc::new(Reference::default()),
        20 * 60_000,
        0,
    )
    .expect("kitchen");
    let writer = StoreWriter::spawn(kitchen, events).expect("writer");
    let stats = Arc::new(FeedStats::default());
    let token = CancellationToken::new();
    let feed = tokio::spawn(Feed::new(config.clone(), writer, stats.clone(), token.clone()).run());
    wait_for("feed connected", || stats.connected.load(Ordering::Relaxed)).await;

    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .expect("rabbitmq");
    let channel = connection.create_channel().await.expect("channel");
    let publish = |routing_key: &'static str, payload: Vec<u8>| {
        let channel = channel.clone();
        let exchange = config.exchange.clone();
        async move {
            channel
                .basic_publish(
                    exchange.as_str().into(),
                    routing_key.into(),
                    BasicPublishOptions::default(),
                    &payload,
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await
                .expect("publish");
        }
    };
    for sequence in 1..=10 {
        publish("s1", order_event("s1", sequence).encode_to_vec()).await;
        publish("s2", order_event("s2", sequence).encode_to_vec()).await;
    }
    // Redeliveries (a relay republishing after a lost confirm) and one poison message.
    for sequence in [2, 4, 6] {
        publish("s1", order_event("s1", sequence).encode_to_vec()).await;
    }
    publish("s2", b"definitely not protobuf \xff\xff".to_vec()).await;

    wait_for("every message settled", || {
        stats.applied.load(Ordering::Relaxed) == 20
            && stats.duplicates.load(Ordering::Relaxed) == 3
            && stats.rejected.load(Ordering::Relaxed) == 1
    })
    .await;
    assert_eq!(stats.gaps.load(Ordering::Relaxed), 0);

    let reader = Store::open(&path).expect("second connection");
    let mut order_ids: Vec<String> = reader
        .open_orders()
        .expect("reads")
        .into_iter()
        .map(|o| o.order_id)
        .collect();
    order_ids.sort();
    let mut expected: Vec<String> = (1..=10)
        .flat_map(|n| [format!("s1-o{n}"), format!("s2-o{n}")])
        .collect();
    expected.sort();
    assert_eq!(order_ids, expected);

    let dead = channel
        .basic_get(
            config.dead_letter_queue().as_str().into(),
            BasicGetOptions { no_ack: true },
        )
        .await
        .expect("basic.get")
        .expect("the poison message is in the dead-letter queue");
    assert_eq!(dead.delivery.data, b"definitely not protobuf \xff\xff");

    token.cancel();
    feed.await.expect("feed stops");
    drop(broker);
    let _ = connection.close(200, "test done".into()).await;
    drop(reader);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}
