//! The running agent: provisioned for a kitchen, it consumes orders from the real RabbitMQ and
//! serves their batch items; unprovisioned, it still serves the LAN.

use std::time::{Duration, Instant};

use edge_agent::{App, Config};
use kitchen_proto::{EventType, LineItem, OrderEvent, OrderStatus};
use lapin::{
    BasicProperties, Connection, ConnectionProperties,
    options::{BasicPublishOptions, ExchangeDeleteOptions, QueueDeleteOptions},
};
use prost::Message;

fn amqp_url() -> String {
    std::env::var("TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .subsec_nanos()
    )
}

const REFERENCE: &str = r#"
[[stations]]
id = "grill"
name = "Grill"
[[stations]]
id = "fry"
name = "Fryer"
[[stores]]
store_id = "kitchen-bk-01"
brand = "Smash Bros"
[[items]]
id = "double-smash"
name = "Double Smash Burger"
station = "grill"
prep_seconds = 420
match = ["sku-smash-double"]
[[items]]
id = "fries"
name = "Fries"
station = "fry"
prep_seconds = 180
match = ["Fries"]
"#;

fn burger_meal(event_id: &str, sequence: u64, order_id: &str, burgers: u32) -> OrderEvent {
    OrderEvent {
        event_id: event_id.into(),
        event_type: EventType::NewOrder as i32,
        otter_event_type: "orders.new_order".into(),
        event_time_ms: 1_741_977_600_000,
        store_id: "kitchen-bk-01".into(),
        sequence,
        order_id: order_id.into(),
        status: OrderStatus::NewOrder as i32,
        items: vec![LineItem {
            sku_id: "sku-smash-double".into(),
            name: "Double Smash Burger".into(),
            quantity: burgers,
            modifiers: vec![LineItem {
                name: "Make it a Meal".into(),
                quantity: 1,
                modifiers: vec![LineItem {
                    name: "Fries".into(),
                    quantity: 1,
                    ..LineItem::default()
                }],
                ..LineItem::default()
            }],
            ..LineItem::default()
        }],
        has_snapshot: true,
        received_at_ms: 1_741_977_600_000,
        ..OrderEvent::default()
    }
}

#[tokio::test]
async fn a_provisioned_agent_serves_the_batch_items_of_what_it_consumed() {
    let kitchen_id = unique("test-kitchen");
    let data_dir = std::env::temp_dir().join(&kitchen_id);
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let reference_file = data_dir.join("reference.toml");
    std::fs::write(&reference_file, REFERENCE).expect("reference written");
    let exchange = format!("{kitchen_id}.structured_order_data");
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: data_dir.clone(),
        amqp_url: amqp_url(),
        kitchen_id: kitchen_id.clone(),
        store_ids: vec!["kitchen-bk-01".into()],
        reference_file: Some(reference_file),
        order_exchange: exchange.clone(),
        ..Config::default()
    };
    let app = App::build(config).await.expect("agent builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let token = app.shutdown_token();
    let agent = tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .expect("answers");
        if ready.status() == 200 {
            let body: serde_json::Value = ready.json().await.expect("json");
            assert_eq!(
                body,
                serde_json::json!({"ready": true, "store": "up", "feed": "connected", "sequence_gaps": []})
            );
            break;
        }
        assert!(Instant::now() < deadline, "agent never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .expect("rabbitmq");
    let channel = connection.create_channel().await.expect("channel");
    for order_event in [
        burger_meal("e1", 1, "o1", 2),
        burger_meal("e2", 2, "o2", 1),
        burger_meal("e1", 1, "o1", 2), // a redelivery
    ] {
        channel
            .basic_publish(
                exchange.as_str().into(),
                "kitchen-bk-01".into(),
                BasicPublishOptions::default(),
                &order_event.encode_to_vec(),
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .expect("publish");
    }

    let expected = serde_json::json!([
        {"station_id": "fry", "station_name": "Fryer", "item_id": "fries", "item_name": "Fries",
         "quantity": 3, "prep_seconds": 180, "due_at": "2025-03-14T18:37:00Z", "order_ids": ["o1", "o2"]},
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let body: serde_json::Value = client
            .get(format!("{base}/api/batches?station=fry"))
            .send()
            .await
            .expect("answers")
            .json()
            .await
            .expect("json");
        if body["items"] == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "batch items never became {expected}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all: serde_json::Value = client
        .get(format!("{base}/api/batches"))
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    let grill: Vec<(String, u64)> = all["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["station_id"] == "grill")
        .map(|i| {
            (
                i["item_id"].as_str().unwrap_or("").to_owned(),
                i["quantity"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(grill, [("double-smash".to_owned(), 3)]);

    token.cancel();
    agent.await.expect("joins").expect("clean stop");
    for queue in [
        format!("edge.{kitchen_id}"),
        format!("edge.{kitchen_id}.dead"),
    ] {
        let _ = channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    for exchange in [exchange, format!("edge.{kitchen_id}.dlx")] {
        let _ = channel
            .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
            .await;
    }
    let _ = connection.close(200, "test done".into()).await;
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[tokio::test]
async fn an_unprovisioned_agent_still_serves_the_lan() {
    let data_dir = std::env::temp_dir().join(unique("test-unprovisioned"));
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: data_dir.clone(),
        ..Config::default()
    };
    let app = App::build(config).await.expect("agent builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let token = app.shutdown_token();
    let agent = tokio::spawn(app.run_until_stopped());
    let health = reqwest::get(format!("{base}/healthz"))
        .await
        .expect("answers");
    assert_eq!(health.text().await.expect("body"), "ok");
    let ready = reqwest::get(format!("{base}/readyz"))
        .await
        .expect("answers");
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(body["feed"], "not provisioned");
    let batches: serde_json::Value = reqwest::get(format!("{base}/api/batches"))
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    assert_eq!(batches, serde_json::json!({"items": []}));
    token.cancel();
    agent.await.expect("joins").expect("clean stop");
    let _ = std::fs::remove_dir_all(&data_dir);
}
