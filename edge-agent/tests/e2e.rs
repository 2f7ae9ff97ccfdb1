//! End to end, as in a kitchen: a signed Otter webhook goes into the real relay (PostgreSQL,
//! RabbitMQ), out to the real agent, onto its live event stream and its batch counts, and — in
//! headless Chromium — onto the station display, where a tap on Bump takes it off again.
//!
//! Each test has its own database, exchanges, kitchen id (so queues) and data directory, all
//! removed when the test ends, passed or failed.

mod common;

use kitchen_testkit::browser;

use std::{
    future::Future,
    path::PathBuf,
    time::{Duration, Instant},
};

use browser::Browser;
use cloud_relay::otter::WebhookSigner;
use kitchen_testkit::{
    amqp::{BrokerObjects, amqp_url},
    db::TestDb,
    dir::TempDir,
    http::SseReader,
    names::unique,
};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const SECRET: &str = "e2e-webhook-secret";
/// The store the test kitchen serves (the fixture's own).
const STORE_ID: &str = "kitchen-bk-01";
/// A real-shaped `orders.new_order`: a meal (burger ×2 with fries inside), tenders, a pho.
const NEW_ORDER: &[u8] = include_bytes!("../../cloud-relay/tests/fixtures/new_order.json");
const ORDER_ID: &str = "4f0c2a7e-1b9d-4e3a-8c61-2d7f5a9b0c13";
const FRIENDLY_ID: &str = "7K2QX";
/// The pho matches no reference item, so it counts at `unassigned` under its Otter id.
const PHO_ID: &str = "e5a3f6d4-7f8b-4a9c-9d04-b5c6d7e8f9a0";

const REFERENCE: &str = include_str!("fixtures/sample_kitchen.toml");

/// Polls `check` until it returns `Some`, or panics after `timeout` with the last thing seen.
async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) => assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}; last seen: {last}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn get_json(url: &str) -> Value {
    let response = kitchen_testkit::http::get(url)
        .await
        .expect("agent answers");
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    response.json().await.expect("json")
}

/// The relay and one kitchen's agent, running in-process on port 0 against the real services.
struct Kitchen {
    relay_url: String,
    agent_url: String,
    signer: WebhookSigner,
    client: reqwest::Client,
    relay_token: CancellationToken,
    agent_token: CancellationToken,
    relay: Option<JoinHandle<anyhow::Result<()>>>,
    agent: Option<JoinHandle<anyhow::Result<()>>>,
    // Removed after both have stopped (fields drop in declaration order, after `drop`).
    _data_dir: TempDir,
    _broker: BrokerObjects,
    _db: TestDb,
}

impl Kitchen {
    /// Starts the relay, then the agent, and waits until the agent's feed is connected.
    async fn start() -> Self {
        let id = unique("e2e");
        let db = TestDb::create().await;
        let order_exchange = format!("{id}.structured_order_data");
        let raw_exchange = format!("{id}.otter_events");
        let kitchen_id = format!("{id}.kitchen");
        let broker = BrokerObjects::edge_kitchen(&kitchen_id, &order_exchange);
        broker.add_exchange(&raw_exchange);
        let data_dir = TempDir::new("e2e");
        let reference_file = data_dir.path().join("reference.toml");
        std::fs::write(&reference_file, REFERENCE).expect("reference written");

        let relay_config = cloud_relay::Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            admin_listen: "127.0.0.1:0".parse().expect("addr"),
            database_url: SecretString::from(db.url.clone()),
            amqp_url: SecretString::from(amqp_url()),
            order_exchange: order_exchange.clone(),
            raw_events_exchange: raw_exchange,
            otter_webhook_secret: Some(SecretString::from(SECRET)),
            database_pool_size: 4,
            amqp_timeout: Duration::from_secs(5),
            ..cloud_relay::Config::default()
        };
        relay_config.validate().expect("relay config is valid");
        let relay = cloud_relay::App::build(relay_config)
            .await
            .expect("relay builds");
        let relay_url = format!("http://127.0.0.1:{}", relay.port());
        let relay_token = relay.shutdown_token();
        let relay = tokio::spawn(relay.run_until_stopped());

        let agent_config = edge_agent::Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            data_dir: data_dir.path().to_owned(),
            amqp_url: amqp_url(),
            kitchen_id,
            store_ids: vec![STORE_ID.into()],
            reference_file: Some(reference_file),
            order_exchange,
            ..edge_agent::Config::default()
        };
        common::declare_queue(
            &agent_config.kitchen_id,
            &agent_config.order_exchange,
            &[STORE_ID],
        )
        .await;
        let agent = edge_agent::App::build(agent_config)
            .await
            .expect("agent builds");
        edge_agent::pairing::pair_with_token(
            data_dir.path(),
            "manager",
            kitchen_testkit::http::TEST_DEVICE,
            None,
            kitchen_testkit::http::TEST_TOKEN,
        )
        .expect("test manager paired");
        let agent_url = format!("http://127.0.0.1:{}", agent.port());
        let agent_token = agent.shutdown_token();
        let agent = tokio::spawn(agent.run_until_stopped());

        let kitchen = Self {
            relay_url,
            agent_url,
            signer: WebhookSigner::new(SecretString::from(SECRET)),
            client: kitchen_testkit::http::client(),
            relay_token,
            agent_token,
            relay: Some(relay),
            agent: Some(agent),
            _data_dir: data_dir,
            _broker: broker,
            _db: db,
        };
        let readyz = format!("{}/readyz", kitchen.agent_url);
        eventually(
            "the agent's feed to connect",
            Duration::from_secs(20),
            || {
                let readyz = readyz.clone();
                async move {
                    let response = kitchen_testkit::http::get(&readyz)
                        .await
                        .map_err(|e| e.to_string())?;
                    match response.status().as_u16() {
                        200 => Ok(()),
                        status => Err(format!(
                            "{status}: {}",
                            response.text().await.unwrap_or_default()
                        )),
                    }
                }
            },
        )
        .await;
        kitchen
    }

    /// POSTs `body` to the relay's webhook, signed as Otter signs, and expects `200`.
    async fn post_webhook(&self, body: &[u8]) {
        let response = self
            .client
            .post(format!("{}/webhooks/otter", self.relay_url))
            .header("content-type", "application/json")
            .header("X-HMAC-SHA256", self.signer.sign(body))
            .body(body.to_vec())
            .send()
            .await
            .expect("relay answers");
        assert_eq!(response.status(), 200, "webhook refused: {response:?}");
    }

    fn agent(&self, path: &str) -> String {
        format!("{}{path}", self.agent_url)
    }

    /// Stops the agent, then the relay, as SIGTERM would; both must stop cleanly.
    async fn stop(mut self) {
        self.agent_token.cancel();
        if let Some(agent) = self.agent.take() {
            tokio::time::timeout(Duration::from_secs(15), agent)
                .await
                .expect("agent stops within 15 s")
                .expect("agent task joins")
                .expect("agent stops cleanly");
        }
        self.relay_token.cancel();
        if let Some(relay) = self.relay.take() {
            tokio::time::timeout(Duration::from_secs(15), relay)
                .await
                .expect("relay stops within 15 s")
                .expect("relay task joins")
                .expect("relay stops cleanly");
        }
    }
}

impl Drop for Kitchen {
    fn drop(&mut self) {
        self.agent_token.cancel();
        self.relay_token.cancel();
        for handle in [self.agent.take(), self.relay.take()].into_iter().flatten() {
            handle.abort();
        }
    }
}

/// The fixture order with `storeId` set to the kitchen's store; `change` adjusts the payload.
fn order_body(change: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut event: Value = serde_json::from_slice(NEW_ORDER).expect("fixture is json");
    event["metadata"]["storeId"] = json!(STORE_ID);
    change(&mut event);
    serde_json::to_vec(&event).expect("serialises")
}

/// One more order like the fixture, with its own ids, burger count and pickup time.
fn another_order(event_id: &str, order_id: &str, friendly_id: &str, burgers: u32) -> Vec<u8> {
    order_body(|event| {
        event["eventId"] = json!(event_id);
        event["metadata"]["resourceId"] = json!(order_id);
        let payload = &mut event["metadata"]["payload"];
        payload["externalIdentifiers"]["id"] = json!(order_id);
        payload["externalIdentifiers"]["friendlyId"] = json!(friendly_id);
        payload["items"][0]["quantity"] = json!(burgers);
    })
}

/// `(station, item, quantity, due_at, order_ids)` of each batch item: the fields this test
/// pins, so fields the agent adds later do not break it.
fn batch_rows(body: &Value) -> Vec<(String, String, u64, String, Vec<String>)> {
    body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {body}"))
        .iter()
        .map(|item| {
            let text = |key: &str| item[key].as_str().unwrap_or_default().to_owned();
            let order_ids = item["order_ids"]
                .as_array()
                .map(|ids| {
                    ids.iter()
                        .map(|id| id.as_str().unwrap_or_default().to_owned())
                        .collect()
                })
                .unwrap_or_default();
            (
                text("station_id"),
                text("item_id"),
                item["quantity"].as_u64().unwrap_or(u64::MAX),
                text("due_at"),
                order_ids,
            )
        })
        .collect()
}

fn row(
    station: &str,
    item: &str,
    quantity: u64,
    due_at: &str,
) -> (String, String, u64, String, Vec<String>) {
    (
        station.into(),
        item.into(),
        quantity,
        due_at.into(),
        vec![ORDER_ID.into()],
    )
}

/// The order id an `order.*` event is about: `order_id`, or `order.order_id` in the richer form.
fn event_order_id(data: &Value) -> &str {
    data["order_id"]
        .as_str()
        .or_else(|| data["order"]["order_id"].as_str())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_webhook_reaches_the_tablet_stream_and_the_batch_counts() {
    let kitchen = Kitchen::start().await;
    let mut tablet = SseReader::open(&kitchen.agent("/orders/events"), None).await;
    let (id, event, data) = tablet.next().await;
    assert_eq!(
        (event.as_str(), &data["batches"]),
        ("snapshot", &json!([])),
        "{data}"
    );
    if let Some(orders) = data.get("orders") {
        assert_eq!(orders, &json!([]), "{data}");
    }
    let snapshot_id: i64 = id.parse().expect("numeric event id");

    kitchen.post_webhook(&order_body(|_| {})).await;

    let (id, event, created) = tablet.next().await;
    assert_eq!(
        (
            event.as_str(),
            id.parse::<i64>().ok(),
            event_order_id(&created)
        ),
        ("order.created", Some(snapshot_id + 1), ORDER_ID),
        "{created}"
    );
    if let Some(event_id) = created.get("event_id") {
        assert_eq!(event_id, "0b6f3c1e-7d2a-4c55-9a3e-5f1d2b8e9a41");
    }
    if let Some(store_id) = created.get("store_id") {
        assert_eq!(store_id, STORE_ID);
    }
    // Exactly one order event, then the box accepts it for Otter (the store accepts
    // automatically) with its estimate: the double smash's 7 minutes behind an empty grill.
    // Nothing else about orders follows (batch updates may).
    let (_, event, accepted) = tablet.next().await;
    assert_eq!(
        (event.as_str(), &accepted),
        (
            "order.accepted",
            &json!({"order_id": ORDER_ID, "store_id": STORE_ID, "prep_minutes": 7, "auto": true, "device": null})
        )
    );
    while let Some((_, event, data)) = tablet.next_within(Duration::from_secs(1)).await {
        assert!(!event.starts_with("order."), "unexpected {event} {data}");
    }

    // Promised = pickupTime 18:58:00Z; due = promised − the item's prep time.
    let expected = vec![
        row("fry", "fries", 2, "2025-03-14T18:55:00Z"),
        row("fry", "tenders", 1, "2025-03-14T18:53:00Z"),
        row("grill", "double-smash", 2, "2025-03-14T18:51:00Z"),
        row("unassigned", PHO_ID, 1, "2025-03-14T18:58:00Z"),
    ];
    let mut batches = batch_rows(&get_json(&kitchen.agent("/api/batches")).await);
    batches.sort();
    assert_eq!(batches, expected);
    let fry = batch_rows(&get_json(&kitchen.agent("/api/batches?station=fry")).await);
    assert_eq!(fry.len(), 2, "{fry:?}");
    assert!(fry.iter().all(|row| row.0 == "fry"), "{fry:?}");
    let orders = get_json(&kitchen.agent("/api/orders?state=open")).await;
    let order = &orders["orders"][0];
    assert_eq!(
        (
            orders["orders"].as_array().map(Vec::len),
            order["order_id"].as_str(),
            order["friendly_id"].as_str(),
            &order["stations"],
        ),
        (
            Some(1),
            Some(ORDER_ID),
            Some(FRIENDLY_ID),
            &json!(["fry", "grill", "unassigned"])
        )
    );

    drop(tablet);
    kitchen.stop().await;
}

/// What a cook sees, read through the page's stable hooks: the visible tickets (order id and
/// friendly id) and count rows (station, item, the number).
const DISPLAY_STATE: &str = r##"(() => {
    const visible = (e) => e.offsetParent !== null;
    return {
        tickets: [...document.querySelectorAll("#tickets [data-order-id]")].filter(visible)
            .map((t) => [t.dataset.orderId, t.querySelector(".friendly").textContent.trim()]),
        counts: [...document.querySelectorAll("[data-item-id][data-station-id]")].filter(visible)
            .map((r) => [r.dataset.stationId, r.dataset.itemId, r.querySelector(".qty").textContent.trim()]),
    };
})()"##;

const UI_TIMEOUT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fryer_tablet_shows_a_new_ticket_and_its_counts_and_a_tap_on_bump_clears_them() {
    let kitchen = Kitchen::start().await;
    let mut tablet = Browser::launch(1280, 800).await;
    tablet.navigate(&kitchen.agent("/?station=fry")).await;
    tablet
        .wait_for(
            "the fryer picked and the stream open",
            UI_TIMEOUT,
            r##"document.querySelector("#station").value === "fry"
                && document.querySelector("#link").classList.contains("ok")
                && document.querySelector("#title").textContent === "Fryer""##,
        )
        .await;
    let nothing = json!({"tickets": [], "counts": []});
    tablet
        .wait_for_value("an empty fryer", UI_TIMEOUT, DISPLAY_STATE, &nothing)
        .await;

    kitchen.post_webhook(&order_body(|_| {})).await;
    let shown = json!({
        "tickets": [[ORDER_ID, FRIENDLY_ID]],
        "counts": [["fry", "tenders", "1"], ["fry", "fries", "2"]],
    });
    tablet
        .wait_for_value(
            "the ticket and the fryer's counts",
            UI_TIMEOUT,
            DISPLAY_STATE,
            &shown,
        )
        .await;
    // It arrived after the page had loaded: flagged new (flash, and the chime once tapped).
    let flagged = tablet
        .eval(&format!(
            r#"document.querySelector('[data-order-id="{ORDER_ID}"]').classList.contains("new")"#
        ))
        .await;
    assert_eq!(flagged, json!(true));
    // The ticket shows the nested modifiers and the notes.
    let ticket_text = tablet
        .eval(&format!(
            r#"document.querySelector('[data-order-id="{ORDER_ID}"]').innerText"#
        ))
        .await;
    let ticket_text = ticket_text.as_str().unwrap_or_default();
    for expected in [
        "Double Smash Burger",
        "No pickles please",
        "Make it a Meal",
        "Fries",
        "Garlic Mayo",
        "Ring the bell, baby sleeping - knock softly",
    ] {
        assert!(
            ticket_text.contains(expected),
            "{expected:?} not in {ticket_text:?}"
        );
    }

    tablet
        .tap(&format!(r#"[data-order-id="{ORDER_ID}"] button.bump"#))
        .await;
    tablet
        .wait_for_value(
            "the ticket and counts gone",
            UI_TIMEOUT,
            DISPLAY_STATE,
            &nothing,
        )
        .await;
    // The agent agrees: bumped at the fryer only, so the grill still has its burgers.
    let fry = get_json(&kitchen.agent("/api/batches?station=fry")).await;
    assert_eq!(fry["items"], json!([]), "{fry}");
    let mut batches = batch_rows(&get_json(&kitchen.agent("/api/batches")).await);
    batches.sort();
    assert_eq!(
        batches,
        vec![
            row("grill", "double-smash", 2, "2025-03-14T18:51:00Z"),
            row("unassigned", PHO_ID, 1, "2025-03-14T18:58:00Z"),
        ]
    );
    let orders = get_json(&kitchen.agent("/api/orders?state=open")).await;
    assert_eq!(orders["orders"][0]["bumped_at"], json!(["fry"]), "{orders}");

    // Recall brings it back, on the page and in the counts.
    tablet.tap("#recall").await;
    tablet
        .wait_for_value(
            "the recalled ticket back",
            UI_TIMEOUT,
            DISPLAY_STATE,
            &shown,
        )
        .await;
    let fry = batch_rows(&get_json(&kitchen.agent("/api/batches?station=fry")).await);
    assert_eq!(fry.len(), 2, "{fry:?}");

    // The cook drops the 2 fries (Start 2), the row shows the running batch, and Done 2
    // completes it: the fries leave the count, the tenders stay.
    let fries_row = r#"[data-station-id="fry"][data-item-id="fries"]"#;
    tablet.tap(&format!("{fries_row} button.start")).await;
    tablet
        .wait_for(
            "the running batch on the fries row",
            UI_TIMEOUT,
            &format!(
                r#"(document.querySelector('{fries_row} button.done') || {{}}).textContent === "Done 2""#
            ),
        )
        .await;
    let sessions = get_json(&kitchen.agent("/api/batches?station=fry")).await;
    let running: Vec<&Value> = sessions["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["item_id"] == "fries")
        .collect();
    assert_eq!(
        running[0]["sessions"][0]["quantity"],
        json!(2),
        "{sessions}"
    );
    tablet.tap(&format!("{fries_row} button.done")).await;
    let tenders_only = json!({
        "tickets": [[ORDER_ID, FRIENDLY_ID]],
        "counts": [["fry", "tenders", "1"]],
    });
    tablet
        .wait_for_value(
            "the fries done, the tenders left",
            UI_TIMEOUT,
            DISPLAY_STATE,
            &tenders_only,
        )
        .await;
    let fry = batch_rows(&get_json(&kitchen.agent("/api/batches?station=fry")).await);
    assert_eq!(fry.len(), 1, "{fry:?}");

    tablet.close().await;
    kitchen.stop().await;
}

/// Not a check: saves the picture of the display the docs show (`docs/images/`). Run with
/// `cargo test -p edge-agent --test e2e -- --ignored screenshot`; `SCREENSHOT` names the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "makes docs/images/station-display.png"]
async fn screenshot_of_the_station_display() {
    let path = std::env::var_os("SCREENSHOT").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/images/station-display.png"),
        PathBuf::from,
    );
    let station = std::env::var("SCREENSHOT_STATION").unwrap_or_else(|_| "all".into());
    let kitchen = Kitchen::start().await;
    let now = chrono::Utc::now();
    let at = |minutes: i64| (now + chrono::Duration::minutes(minutes)).to_rfc3339();
    for (event_id, order_id, friendly_id, burgers, pickup_in, name) in [
        ("ev-1", "order-1", "7K2QX", 2, 6, "Alex M."),
        ("ev-2", "order-2", "Q9R4T", 1, 4, "Sam K."),
        ("ev-3", "order-3", "B3M8L", 3, 12, "Jordan P."),
    ] {
        let mut body: Value =
            serde_json::from_slice(&another_order(event_id, order_id, friendly_id, burgers))
                .expect("json");
        let payload = &mut body["metadata"]["payload"];
        payload["fulfillmentInfo"]["pickupTime"] = json!(at(pickup_in));
        payload["orderedAt"] = json!(at(-(20 - pickup_in).max(1)));
        payload["customer"]["name"] = json!(name);
        kitchen
            .post_webhook(&serde_json::to_vec(&body).expect("json"))
            .await;
    }
    // The first order is done everywhere (ready), the second at the grill.
    let client = kitchen_testkit::http::client();
    for path in ["order-1/bump", "order-2/bump?station=grill"] {
        eventually("the order to arrive", UI_TIMEOUT, || {
            let url = kitchen.agent(&format!("/api/orders/{path}"));
            let client = client.clone();
            async move {
                let response = client.post(&url).send().await.map_err(|e| e.to_string())?;
                match response.status().as_u16() {
                    200 => Ok(()),
                    status => Err(status.to_string()),
                }
            }
        })
        .await;
    }
    let mut tablet = Browser::launch(1280, 800).await;
    tablet
        .navigate(&kitchen.agent(&format!("/?station={station}")))
        .await;
    tablet
        .wait_for(
            "the tickets",
            UI_TIMEOUT,
            r##"document.querySelectorAll("[data-order-id]").length > 0
                && document.querySelectorAll("[data-item-id]").length > 0"##,
        )
        .await;
    tokio::time::sleep(Duration::from_secs(4)).await; // let the new-ticket flash end
    tablet.screenshot(&path).await;
    tablet.close().await;
    kitchen.stop().await;
}
