//! The whole way out, with every part real but Otter: a signed webhook into the relay, the order
//! through RabbitMQ onto the box, the box's actions through its sync into PostgreSQL, the relay's
//! calls to a test double of Otter's API (`kitchen_testkit::otter`), and the calls' state back on
//! the box. Each call is checked exactly: path, store, body, and that it was made once.

use kitchen_testkit::browser;
mod common;

use std::time::{Duration, Instant};

use common::{
    TestAgent,
    cloud::{Cloud, postgres_addr},
};
use kitchen_testkit::{
    amqp::{BrokerObjects, amqp_url},
    http::{client, get_json},
    names::unique,
    otter::{OtterDouble, RecordedCall},
    proxy::Proxy,
};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const NEW_ORDER: &[u8] = include_bytes!("../../cloud-relay/tests/fixtures/new_order.json");
const SECRET: &str = "otter-e2e-webhook-secret";
const STORE: &str = "kitchen-bk-01";
const WAIT: Duration = Duration::from_secs(30);

/// The sample kitchen with its fries on the store's Otter menu.
fn reference() -> String {
    include_str!("fixtures/sample_kitchen.toml").replace(
        "prep_seconds = 180\nmatch = [\"Fries\"]",
        "prep_seconds = 180\nmatch = [\"Fries\"]\notter_entities = { kitchen-bk-01 = [\"fries-1\", \"fries-1-large\"] }",
    )
}

/// Relay, box (syncing through a proxy it can be cut off by), PostgreSQL, RabbitMQ and the
/// Otter double.
struct Stack {
    otter: OtterDouble,
    relay_url: String,
    relay_token: CancellationToken,
    relay: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    proxy: Proxy,
    kitchen: TestAgent,
    _broker: BrokerObjects,
    _cloud: Cloud,
}

impl Stack {
    async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    async fn start_with(adjust: impl FnOnce(&mut cloud_relay::Config)) -> Self {
        let cloud = Cloud::create(&unique("otter-e2e")).await;
        cloud.import(&reference()).await;
        let otter = OtterDouble::start("e2e-client", "e2e-client-secret").await;
        let proxy = Proxy::start(postgres_addr()).await;
        let database_url = cloud.agent_url(proxy.addr);
        let kitchen_id = cloud.kitchen_id.clone();
        let kitchen = TestAgent::start_with(Some(&reference()), &[STORE], move |config| {
            config.kitchen_id = kitchen_id;
            config.database_url = Some(database_url);
        })
        .await;
        let raw_exchange = format!("{}.otter_events", kitchen.kitchen_id);
        let broker = BrokerObjects::new();
        broker.add_exchange(&raw_exchange);
        let mut config = cloud_relay::Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            admin_listen: "127.0.0.1:0".parse().expect("addr"),
            database_url: SecretString::from(cloud.db.url.clone()),
            amqp_url: SecretString::from(amqp_url()),
            order_exchange: kitchen.exchange.clone(),
            raw_events_exchange: raw_exchange,
            otter_webhook_secret: Some(SecretString::from(SECRET)),
            database_pool_size: 4,
            ..cloud_relay::Config::default()
        };
        let api = &mut config.otter_api;
        api.url = Some(otter.url());
        api.client_id = Some("e2e-client".to_owned().into());
        api.client_secret = Some("e2e-client-secret".to_owned().into());
        api.retry_initial = Duration::from_millis(100);
        api.retry_max = Duration::from_millis(800);
        api.job_poll_interval = Duration::from_millis(100);
        adjust(&mut config);
        config.validate().expect("relay config is valid");
        let relay = cloud_relay::App::build(config).await.expect("relay builds");
        let relay_url = format!("http://127.0.0.1:{}", relay.port());
        let relay_token = relay.shutdown_token();
        let relay = Some(tokio::spawn(relay.run_until_stopped()));
        Self {
            otter,
            relay_url,
            relay_token,
            relay,
            proxy,
            kitchen,
            _broker: broker,
            _cloud: cloud,
        }
    }

    /// A new order for the store, signed as Otter signs it; `200` expected.
    async fn webhook(&self, order_id: &str) {
        self.webhook_with(order_id, |_| {}).await;
    }

    /// A new order adjusted by `change`.
    async fn webhook_with(&self, order_id: &str, change: impl FnOnce(&mut Value)) {
        let mut event: Value = serde_json::from_slice(NEW_ORDER).expect("fixture is json");
        change(&mut event);
        event["eventId"] = json!(format!("ev-{order_id}"));
        event["metadata"]["storeId"] = json!(STORE);
        event["metadata"]["resourceId"] = json!(order_id);
        event["metadata"]["payload"]["externalIdentifiers"]["id"] = json!(order_id);
        event["metadata"]["payload"]["externalIdentifiers"]["friendlyId"] =
            json!(order_id.to_uppercase());
        let body = serde_json::to_vec(&event).expect("serialises");
        let signer = cloud_relay::otter::WebhookSigner::new(SecretString::from(SECRET));
        let response = client()
            .post(format!("{}/webhooks/otter", self.relay_url))
            .header("content-type", "application/json")
            .header("X-HMAC-SHA256", signer.sign(&body))
            .body(body)
            .send()
            .await
            .expect("relay answers");
        assert_eq!(response.status(), 200);
    }

    async fn box_post(&self, path: &str, body: Value) -> Value {
        let response = client()
            .post(format!("{}{path}", self.kitchen.base))
            .json(&body)
            .send()
            .await
            .expect("box answers");
        assert_eq!(response.status(), 200, "{path}");
        response.json().await.expect("json")
    }

    async fn ticket(&self, order_id: &str) -> Option<Value> {
        let orders = get_json(&format!("{}/api/orders?state=open", self.kitchen.base)).await;
        orders["orders"]
            .as_array()
            .expect("orders")
            .iter()
            .find(|o| o["order_id"] == order_id)
            .cloned()
    }

    async fn wait_for_ticket(&self, order_id: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(ticket) = self.ticket(order_id).await {
                return ticket;
            }
            assert!(
                Instant::now() < deadline,
                "{order_id} never reached the box"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The calls Otter answered 2xx, job polls left out: (endpoint, path, store, body).
    fn made(&self) -> Vec<(String, String, String, Value)> {
        successful(&self.otter.calls())
    }

    async fn stop(mut self) {
        self.relay_token.cancel();
        if let Some(relay) = self.relay.take() {
            relay
                .await
                .expect("relay joins")
                .expect("relay stops cleanly");
        }
        self.kitchen.stop().await;
    }
}

fn successful(calls: &[RecordedCall]) -> Vec<(String, String, String, Value)> {
    calls
        .iter()
        .filter(|c| {
            c.endpoint != "token" && c.endpoint != "job_status" && (200..300).contains(&c.status)
        })
        .map(|c| {
            (
                c.endpoint.clone(),
                c.path.clone(),
                c.store_id.clone().unwrap_or_default(),
                c.body.clone().unwrap_or(Value::Null),
            )
        })
        .collect()
}

fn call(endpoint: &str, path: &str, body: Value) -> (String, String, String, Value) {
    (endpoint.to_owned(), path.to_owned(), STORE.to_owned(), body)
}

/// Waits until Otter has answered `count` calls (job polls left out).
async fn wait_for_made(stack: &Stack, count: usize) -> Vec<(String, String, String, Value)> {
    stack
        .otter
        .wait_until(WAIT, |calls| {
            let made = successful(calls);
            (made.len() >= count).then_some(made)
        })
        .await
}

const ORDERS: &str = "/manager/order/v1/sources/ubereats/orders";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_kitchen_does_reaches_otter_once_each() {
    let stack = Stack::start().await;
    stack.webhook("o-1").await;
    let ticket = stack.wait_for_ticket("o-1").await;
    // Accepted by the box with its estimate, and confirmed on Otter with exactly that.
    let minutes = ticket["prep_minutes"]
        .as_u64()
        .expect("accepted by the box");
    assert_eq!(minutes, 7, "the burger's 7 minutes behind an empty grill");
    let made = wait_for_made(&stack, 1).await;
    assert_eq!(
        made,
        [call(
            "confirm",
            &format!("{ORDERS}/o-1/confirm"),
            json!({"estimatedPrepTimeMinutes": 7})
        )]
    );
    let confirm = stack
        .otter
        .calls()
        .into_iter()
        .find(|c| c.endpoint == "confirm")
        .expect("confirm");
    assert!(
        confirm
            .authorization
            .as_deref()
            .is_some_and(|a| a.starts_with("Bearer "))
    );
    // Every station bumped (Expo's Ready): one ready-to-pickup, within 3 s of the tap.
    let tapped = Instant::now();
    stack.box_post("/api/orders/o-1/ready", json!({})).await;
    let made = wait_for_made(&stack, 2).await;
    let took = tapped.elapsed();
    println!(
        "kitchen Ready → Otter ready-to-pickup: {} ms",
        took.as_millis()
    );
    assert!(
        took < Duration::from_secs(3),
        "ready-to-pickup took {took:?}"
    );
    assert_eq!(
        made[1],
        call(
            "ready",
            &format!("{ORDERS}/o-1/ready-to-pickup"),
            Value::Null
        )
    );
    // Hand off: one fulfill.
    stack.box_post("/api/orders/o-1/hand-off", json!({})).await;
    let made = wait_for_made(&stack, 3).await;
    assert_eq!(
        made[2],
        call("fulfill", &format!("{ORDERS}/o-1/fulfill"), Value::Null)
    );
    // A second order, cancelled by the manager with a reason.
    stack.webhook("o-2").await;
    stack.wait_for_ticket("o-2").await;
    let made = wait_for_made(&stack, 4).await;
    assert_eq!(
        made[3],
        call(
            "confirm",
            &format!("{ORDERS}/o-2/confirm"),
            json!({"estimatedPrepTimeMinutes": 7})
        )
    );
    // The box shows what Otter was told (read back from PostgreSQL).
    let deadline = Instant::now() + WAIT;
    loop {
        let ticket = stack.ticket("o-2").await.expect("open");
        let calls = &ticket["otter_calls"];
        if calls.as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["kind"] == "confirm" && c["state"] == "accepted")
        }) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the confirm's state never reached the box: {ticket}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stack
        .box_post(
            "/api/orders/o-2/cancel",
            json!({"reason": "KITCHEN_CLOSED", "note": "gas leak"}),
        )
        .await;
    let made = wait_for_made(&stack, 5).await;
    assert_eq!(made[4].0, "cancel");
    assert_eq!(made[4].1, format!("{ORDERS}/o-2/cancel"));
    assert_eq!(made[4].3["cancellationReason"], "KITCHEN_CLOSED");
    // 86 fries: one suspend with the mapped entity ids; back on: one unsuspend.
    stack
        .box_post(
            "/api/items/fries/suspend",
            json!({"until": "back", "note": "fryer down"}),
        )
        .await;
    let made = wait_for_made(&stack, 6).await;
    assert_eq!(made[5].0, "suspend");
    assert_eq!(made[5].2, STORE);
    assert_eq!(
        (
            &made[5].3["entityIds"],
            &made[5].3["status"]["isIndefinite"],
            &made[5].3["note"]
        ),
        (
            &json!(["fries-1", "fries-1-large"]),
            &json!(true),
            &json!("fryer down")
        )
    );
    stack
        .box_post("/api/items/fries/unsuspend", json!({}))
        .await;
    let made = wait_for_made(&stack, 7).await;
    assert_eq!(made[6].0, "unsuspend");
    assert_eq!(made[6].3["entityIds"], json!(["fries-1", "fries-1-large"]));
    // Nothing more, nothing twice.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(stack.made().len(), 7, "{:#?}", stack.made());
    stack.stop().await;
}

/// The box cut off from PostgreSQL for the whole rush: it keeps accepting and handing off;
/// Otter hears nothing (an order no box has confirmed to the cloud is never confirmed); when the
/// link is back every call goes out once, oldest first, each order's confirm before its fulfill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_box_offline_through_the_rush_is_heard_once_it_is_back_oldest_first() {
    // One call in flight at a time, so the order calls are taken in is the order Otter sees
    // (with more, calls are taken oldest first but several travel at once).
    let stack = Stack::start_with(|config| config.otter_api.max_in_flight = 1).await;
    stack.proxy.cut();
    let orders: Vec<String> = (1..=5).map(|n| format!("rush-{n}")).collect();
    for order in &orders {
        stack.webhook(order).await;
        stack.wait_for_ticket(order).await;
    }
    for order in &orders[..2] {
        stack
            .box_post(&format!("/api/orders/{order}/hand-off"), json!({}))
            .await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        stack.made(),
        [],
        "nothing reaches Otter while the box is offline"
    );
    stack.proxy.restore();
    let made = wait_for_made(&stack, 7).await;
    let confirms: Vec<&str> = made
        .iter()
        .filter(|c| c.0 == "confirm")
        .map(|c| c.1.as_str())
        .collect();
    let expected: Vec<String> = orders
        .iter()
        .map(|o| format!("{ORDERS}/{o}/confirm"))
        .collect();
    assert_eq!(
        confirms,
        expected,
        "oldest first: {:#?}",
        stack
            .otter
            .calls()
            .iter()
            .map(|c| (c.endpoint.clone(), c.path.clone(), c.status))
            .collect::<Vec<_>>()
    );
    for order in &orders[..2] {
        let position = |suffix: &str| {
            made.iter()
                .position(|c| c.1 == format!("{ORDERS}/{order}/{suffix}"))
        };
        assert!(
            position("confirm") < position("fulfill"),
            "{order}: {made:#?}"
        );
        assert!(position("fulfill").is_some());
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(stack.made().len(), 7, "each once: {:#?}", stack.made());
    stack.stop().await;
}

/// `SCREENSHOT=docs/images/expo-otter.png cargo test -p edge-agent --test otter_e2e -- --ignored
/// screenshot`: Expo with what Otter was told — accepted orders, one ready and announced, fries
/// 86'd on Otter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes docs/images/expo-otter.png; run by hand"]
async fn screenshot_of_expo_with_otter() {
    let path = std::env::var_os("SCREENSHOT").map_or_else(
        || {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../docs/images/expo-otter.png")
        },
        std::path::PathBuf::from,
    );
    let stack = Stack::start().await;
    let now = chrono::Utc::now();
    let at = |minutes: i64| (now + chrono::Duration::minutes(minutes)).to_rfc3339();
    for (order, pickup_in, name) in [
        ("a7k2q", 6, "Alex M."),
        ("b9r4t", 14, "Sam K."),
        ("c3m8l", 18, "Jordan P."),
    ] {
        stack
            .webhook_with(order, |event| {
                let payload = &mut event["metadata"]["payload"];
                payload["fulfillmentInfo"]["pickupTime"] = json!(at(pickup_in));
                payload["orderedAt"] = json!(at(-2));
                payload["customer"]["name"] = json!(name);
            })
            .await;
        stack.wait_for_ticket(order).await;
    }
    stack.box_post("/api/orders/a7k2q/ready", json!({})).await;
    stack
        .box_post(
            "/api/items/fries/suspend",
            json!({"until": "hours", "hours": 2, "note": "fryer being cleaned"}),
        )
        .await;
    wait_for_made(&stack, 5).await;
    let mut tablet = browser::Browser::launch(1280, 900).await;
    tablet
        .navigate(&format!("{}/?station=all", stack.kitchen.base))
        .await;
    tablet
        .wait_for(
            "the calls' states on the tickets",
            WAIT,
            "document.querySelectorAll('.otter.accepted').length >= 4",
        )
        .await;
    tokio::time::sleep(Duration::from_secs(4)).await; // let the new-ticket flash end
    tablet.screenshot(&path).await;
    // And the 86 panel, further down the left column.
    tablet
        .eval("document.querySelector('#eightysix').scrollIntoView()")
        .await;
    tablet.screenshot(&path.with_file_name("expo-86.png")).await;
    tablet.close().await;
    stack.stop().await;
}
