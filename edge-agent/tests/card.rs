//! The card dies (issue 17): a kitchen box is SIGKILLed mid-service and its data directory
//! deleted; a new box starts as the same kitchen and holds exactly the orders the old one had
//! open — with their bumps, acceptances and batch counts — from PostgreSQL, once (with
//! PostgreSQL out of reach at its start: ready with what the queue holds, saying so, and
//! recovered when PostgreSQL is back); new orders continue, an old event redelivered is a
//! duplicate, and a restart does not recover again. Real relay (in process), PostgreSQL, RabbitMQ and the
//! agent's binary.

mod common;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use cloud_relay::otter::WebhookSigner;
use common::wait_until;
use kitchen_proto::OrderEvent;
use kitchen_testkit::{
    amqp::{BrokerObjects, amqp_url},
    db::{TestDb, TestRole},
    dir::TempDir,
    http::get_json,
    names::unique,
    proxy::Proxy,
};
use prost::Message;
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "card-webhook-secret";
const STORE_1: &str = "kitchen-bk-01";
const STORE_2: &str = "kitchen-bk-02";
const NEW_ORDER: &[u8] = include_bytes!("../../cloud-relay/tests/fixtures/new_order.json");

fn reference() -> String {
    format!(
        "{}\n[[stores]]\nstore_id = \"{STORE_2}\"\nbrand = \"Late Night\"\n",
        include_str!("fixtures/sample_kitchen.toml")
    )
}

/// The fixture order (burgers in a meal with fries, tenders, a pho) as `order_id` at `store`.
fn order(event_id: &str, store: &str, order_id: &str, burgers: u32) -> Vec<u8> {
    let mut event: Value = serde_json::from_slice(NEW_ORDER).expect("fixture");
    event["eventId"] = json!(event_id);
    event["metadata"]["storeId"] = json!(store);
    event["metadata"]["resourceId"] = json!(order_id);
    let payload = &mut event["metadata"]["payload"];
    payload["externalIdentifiers"]["id"] = json!(order_id);
    payload["externalIdentifiers"]["friendlyId"] = json!(order_id.to_uppercase());
    payload["items"][0]["quantity"] = json!(burgers);
    serde_json::to_vec(&event).expect("json")
}

/// An order of just the fixture's pho (no reference item: it counts at `unassigned` only).
fn pho_order(event_id: &str, store: &str, order_id: &str) -> Vec<u8> {
    let mut event: Value =
        serde_json::from_slice(&order(event_id, store, order_id, 1)).expect("json");
    let items = &mut event["metadata"]["payload"]["items"];
    let pho: Vec<Value> = items
        .as_array()
        .expect("items")
        .iter()
        .filter(|item| item["name"].as_str().is_some_and(|n| n.contains("Pho")))
        .cloned()
        .collect();
    assert_eq!(pho.len(), 1, "the fixture has one pho");
    *items = json!(pho);
    serde_json::to_vec(&event).expect("json")
}

fn status(event_type: &str, event_id: &str, store: &str, order_id: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "eventId": event_id,
        "eventTime": "2025-03-14T18:50:00Z",
        "eventType": event_type,
        "metadata": {"storeId": store, "resourceId": order_id, "payload": {"orderId": order_id}}
    }))
    .expect("json")
}

/// The agent's binary as a kitchen box; SIGKILLed when dropped.
struct BoxProcess(std::process::Child);

impl Drop for BoxProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The relay in process and a kitchen of two stores as `kitchen add` and `reference import`
/// make it, whose boxes are started as the agent's binary.
struct Kitchen {
    kitchen_id: String,
    exchange: String,
    database_url: String,
    base: String,
    port: u16,
    data_dir: PathBuf,
    relay_url: String,
    signer: WebhookSigner,
    client: reqwest::Client,
    relay_token: CancellationToken,
    relay_task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// The boxes' link to PostgreSQL, which a test cuts.
    proxy: Proxy,
    // Dropped after the relay has stopped (fields drop in declaration order).
    _dir: TempDir,
    _role: TestRole,
    _broker: BrokerObjects,
    db: TestDb,
}

impl Kitchen {
    async fn start() -> Self {
        let id = unique("card");
        let db = TestDb::create().await;
        let exchange = format!("{id}.structured_order_data");
        let raw_exchange = format!("{id}.otter_events");
        let kitchen_id = format!("{id}.kitchen");
        let broker = BrokerObjects::edge_kitchen(&kitchen_id, &exchange);
        broker.add_exchange(&raw_exchange);
        let relay_config = cloud_relay::Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            admin_listen: "127.0.0.1:0".parse().expect("addr"),
            database_url: SecretString::from(db.url.clone()),
            amqp_url: SecretString::from(amqp_url()),
            order_exchange: exchange.clone(),
            raw_events_exchange: raw_exchange,
            otter_webhook_secret: Some(SecretString::from(SECRET)),
            database_pool_size: 4,
            amqp_timeout: Duration::from_secs(5),
            ..cloud_relay::Config::default()
        };
        let relay = cloud_relay::App::build(relay_config)
            .await
            .expect("relay builds");
        let relay_url = format!("http://127.0.0.1:{}", relay.port());
        let relay_token = relay.shutdown_token();
        let relay_task = tokio::spawn(relay.run_until_stopped());
        let role = TestRole::named("card_box");
        cloud_relay::kitchens::add_kitchen(&db.pool, &kitchen_id, &role.name, None)
            .await
            .expect("kitchen");
        let parsed = kitchen_proto::reference::Reference::parse(&reference()).expect("reference");
        cloud_relay::kitchens::import_reference(&db.pool, &kitchen_id, &parsed)
            .await
            .expect("imported");
        common::declare_queue(&kitchen_id, &exchange, &[STORE_1, STORE_2]).await;
        let dir = TempDir::new("card");
        let proxy = Proxy::start(common::cloud::postgres_addr()).await;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        Self {
            database_url: format!("postgres://{}@{}/{}", role.name, proxy.addr, db.name),
            kitchen_id,
            exchange,
            base: format!("http://127.0.0.1:{port}"),
            port,
            data_dir: dir.path().join("card"),
            relay_url,
            signer: WebhookSigner::new(SecretString::from(SECRET)),
            client: kitchen_testkit::http::client(),
            relay_token,
            relay_task: Some(relay_task),
            proxy,
            _dir: dir,
            _role: role,
            _broker: broker,
            db,
        }
    }

    async fn stop(mut self) {
        self.relay_token.cancel();
        if let Some(task) = self.relay_task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
        }
    }

    async fn post(&self, body: &[u8]) {
        let response = self
            .client
            .post(format!("{}/webhooks/otter", self.relay_url))
            .header("content-type", "application/json")
            .header("X-HMAC-SHA256", self.signer.sign(body))
            .body(body.to_vec())
            .send()
            .await
            .expect("relay answers");
        assert_eq!(response.status(), 200);
    }

    /// A fresh data directory (the new card): the reference file and the test's device.
    fn flash(&self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
        std::fs::create_dir_all(&self.data_dir).expect("data dir");
        std::fs::write(self.data_dir.join("reference.toml"), reference()).expect("reference");
        common::pair_test_manager(&self.data_dir);
    }

    fn start_box(&self) -> BoxProcess {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_edge-agent"))
            .env("AGENT_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("AGENT_DATA_DIR", &self.data_dir)
            .env("AGENT_WRITE_RATE", "100000")
            .env("AMQP_URL", amqp_url())
            .env("KITCHEN_ID", &self.kitchen_id)
            .env("STORE_IDS", format!("{STORE_1},{STORE_2}"))
            .env("REFERENCE_FILE", self.data_dir.join("reference.toml"))
            .env("AGENT_ORDER_EXCHANGE", &self.exchange)
            .env("AGENT_DATABASE_URL", &self.database_url)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("agent starts");
        BoxProcess(child)
    }

    async fn readyz(&self) -> Option<(u16, Value)> {
        let response = kitchen_testkit::http::get(format!("{}/readyz", self.base))
            .await
            .ok()?;
        let status = response.status().as_u16();
        Some((status, response.json().await.ok()?))
    }

    async fn wait_ready(&self) -> Value {
        let mut last = Value::Null;
        for _ in 0..600 {
            if let Some((status, body)) = self.readyz().await {
                if status == 200 {
                    return body;
                }
                last = body;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the box is not ready: {last}");
    }

    /// Waits until the box's records are all in PostgreSQL (`/readyz`: nothing left to push,
    /// the sync connected).
    async fn wait_synced(&self, timeout: Duration) {
        wait_until("box 1's records synced", timeout, || async {
            let ready = self
                .readyz()
                .await
                .map(|(_, body)| body)
                .unwrap_or_default();
            ready["sync"]["backlog"] == 0 && ready["sync"]["state"] == "connected"
        })
        .await;
    }

    async fn open_orders(&self) -> Value {
        get_json(&format!("{}/api/orders?state=open", self.base)).await["orders"].clone()
    }

    /// The grill's and the fryer's batch items.
    async fn batches(&self) -> Vec<Value> {
        let mut all = Vec::new();
        for station in ["grill", "fry"] {
            let batches = get_json(&format!("{}/api/batches?station={station}", self.base)).await;
            all.push(batches["items"].clone());
        }
        all
    }

    async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .bind(&self.kitchen_id)
            .fetch_one(&self.db.pool)
            .await
            .expect("count")
    }
}

/// A ticket without the state of its calls to Otter: read back from PostgreSQL every two
/// seconds, so box 1's copy may be older than box 2's.
fn without_calls(ticket: &Value) -> Value {
    let mut ticket = ticket.clone();
    ticket["otter_calls"] = Value::Null;
    ticket
}

fn ids(orders: &Value) -> Vec<String> {
    let mut ids: Vec<String> = orders
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["order_id"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    ids
}

fn sqlite(data_dir: &Path, sql: &str) -> i64 {
    let db = rusqlite::Connection::open(data_dir.join(edge_agent::STORE_FILE)).expect("store");
    db.query_row(sql, [], |row| row.get(0)).expect("query")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_card_recovers_the_kitchens_open_orders_once() {
    let kitchen = Kitchen::start().await;
    let (kitchen_id, exchange) = (kitchen.kitchen_id.clone(), kitchen.exchange.clone());
    let proxy = &kitchen.proxy;

    // Box 1 in service: six orders over two stores; one cancelled, one fulfilled.
    kitchen.flash();
    let box_1 = kitchen.start_box();
    let ready = kitchen.wait_ready().await;
    assert_eq!(
        ready["sync"]["recovery"], "done",
        "a first card recovers too: {ready}"
    );
    assert_eq!(ready["sync"]["recovered_orders"], 0);
    for (n, (store, burgers)) in [
        (STORE_1, 2),
        (STORE_1, 1),
        (STORE_1, 3),
        (STORE_1, 1),
        (STORE_2, 2),
        (STORE_2, 4),
    ]
    .into_iter()
    .enumerate()
    {
        let n = n + 1;
        kitchen
            .post(&order(&format!("e{n}"), store, &format!("o{n}"), burgers))
            .await;
    }
    kitchen
        .post(&status("orders.cancel_order", "e7", STORE_1, "o3"))
        .await;
    kitchen
        .post(&status("orders.order_fulfilled", "e8", STORE_1, "o4"))
        .await;
    wait_until(
        "box 1 holds o1, o2, o5, o6 open",
        Duration::from_secs(20),
        || async { ids(&kitchen.open_orders().await) == ["o1", "o2", "o5", "o6"] },
    )
    .await;
    // A cook bumps o1 at the grill and o5 at the fryer; a batch of fries is made.
    let client = kitchen_testkit::http::client();
    for (order_id, station) in [("o1", "grill"), ("o5", "fry")] {
        let response = client
            .post(format!(
                "{}/api/orders/{order_id}/bump?station={station}",
                kitchen.base
            ))
            .send()
            .await
            .expect("bump");
        assert_eq!(response.status(), 200, "bump {order_id}");
    }
    let session: Value = client
        .post(format!("{}/api/batches/fry/fries/start", kitchen.base))
        .json(&json!({"quantity": 3}))
        .send()
        .await
        .expect("start")
        .json()
        .await
        .expect("session");
    let session_id = session["session_id"].as_str().expect("id").to_owned();
    let completed = client
        .post(format!(
            "{}/api/batch-sessions/{session_id}/complete",
            kitchen.base
        ))
        .send()
        .await
        .expect("complete");
    assert_eq!(completed.status(), 200);
    // Its records reach PostgreSQL.
    kitchen.wait_synced(Duration::from_secs(20)).await;
    let orders_before = kitchen.open_orders().await;
    let batches_before = kitchen.batches().await;

    // The card dies mid-service; an order arrives while the kitchen has no box.
    drop(box_1);
    std::fs::remove_dir_all(&kitchen.data_dir).expect("card gone");
    kitchen.post(&pho_order("e9", STORE_2, "o7")).await;

    // Box 2 starts as the same kitchen on a new card, with PostgreSQL out of reach at first:
    // it serves (ready, saying the recovery waits) with what the queue held.
    proxy.cut();
    kitchen.flash();
    let box_2 = kitchen.start_box();
    let ready = kitchen.wait_ready().await;
    assert_eq!(ready["sync"]["recovery"], "pending", "{ready}");
    assert_eq!(
        ready["recovery"],
        "new card: the kitchen's open orders are not recovered yet (postgresql unreachable; retrying)"
    );
    wait_until("o7 from the queue", Duration::from_secs(20), || async {
        ids(&kitchen.open_orders().await) == ["o7"]
    })
    .await;
    // PostgreSQL back: the recovery runs.
    proxy.restore();
    wait_until("the recovery", Duration::from_secs(90), || async {
        let ready = kitchen
            .readyz()
            .await
            .map(|(_, body)| body)
            .unwrap_or_default();
        ready["sync"]["recovery"] == "done"
    })
    .await;
    let ready = kitchen.wait_ready().await;
    assert_eq!(ready["sync"]["recovered_orders"], 4, "{ready}");
    assert_eq!(ready["sequence_gaps"], json!([]), "{ready}");
    // Exactly the open orders, with their bumps, acceptances and batch counts, and the order
    // that waited in the queue (a pho: it counts at no station compared here).
    let before: Vec<Value> = orders_before
        .as_array()
        .expect("orders")
        .iter()
        .map(without_calls)
        .collect();
    for attempt in 0.. {
        let orders = kitchen.open_orders().await;
        let held: Vec<Value> = orders
            .as_array()
            .into_iter()
            .flatten()
            .filter(|o| o["order_id"] != "o7")
            .map(without_calls)
            .collect();
        if held == before && ids(&orders) == ["o1", "o2", "o5", "o6", "o7"] {
            break;
        }
        let last = json!(orders);
        assert!(
            attempt < 400,
            "box 2 does not show what box 1 showed:\n{}\nvs\n{last}",
            json!(before)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(kitchen.batches().await, batches_before);
    let fries_made = &batches_before[1]
        .as_array()
        .expect("fry items")
        .iter()
        .find(|item| item["item_id"] == "fries")
        .expect("fries")["quantity"];
    assert!(
        fries_made.as_u64().is_some_and(|q| q > 0),
        "{batches_before:?}"
    );

    // A redelivery of an old event is a duplicate; a new order comes after it.
    let (payload, sequence): (Vec<u8>, i64) =
        sqlx::query_as("SELECT payload, sequence FROM otter.outbox WHERE event_id = 'e2'")
            .fetch_one(&kitchen.db.pool)
            .await
            .expect("e2");
    let old = OrderEvent {
        sequence: sequence as u64,
        ..OrderEvent::decode(payload.as_slice()).expect("protobuf")
    };
    let connection = lapin::Connection::connect(&amqp_url(), Default::default())
        .await
        .expect("rabbitmq");
    let channel = connection.create_channel().await.expect("channel");
    kitchen_testkit::amqp::publish(&channel, &exchange, &old)
        .await
        .expect("published");
    kitchen.post(&order("e10", STORE_1, "o8", 1)).await;
    wait_until("o8", Duration::from_secs(20), || async {
        ids(&kitchen.open_orders().await).contains(&"o8".to_owned())
    })
    .await;
    let ready = kitchen.readyz().await.expect("ready").1;
    assert_eq!(ready["sequence_gaps"], json!([]), "{ready}");

    // PostgreSQL: one order.created, one acceptance per order; o1's bump once.
    wait_until(
        "box 2's records synced",
        Duration::from_secs(20),
        || async {
            let ready = kitchen
                .readyz()
                .await
                .map(|(_, body)| body)
                .unwrap_or_default();
            ready["sync"]["backlog"] == 0
        },
    )
    .await;
    for kind in ["order.created", "order.accepted"] {
        let per_order: Vec<(String, i64)> = sqlx::query_as(
            "SELECT order_id, count(*) FROM kitchen.order_events
             WHERE kitchen_id = $1 AND kind = $2 GROUP BY 1 ORDER BY 1",
        )
        .bind(&kitchen_id)
        .bind(kind)
        .fetch_all(&kitchen.db.pool)
        .await
        .expect("rows");
        let expected: Vec<(String, i64)> = (1..=8).map(|n| (format!("o{n}"), 1)).collect();
        assert_eq!(per_order, expected, "{kind}");
    }
    assert_eq!(
        kitchen
            .count("SELECT count(*) FROM kitchen.order_events WHERE kitchen_id = $1 AND kind = 'order.bumped'")
            .await,
        2
    );

    // A restart of box 2 does not recover again.
    let recovered_at = sqlite(
        &kitchen.data_dir,
        "SELECT value FROM sync_cursors WHERE name = 'recovery'",
    );
    assert!(recovered_at > 0);
    drop(box_2);
    let created = sqlite(
        &kitchen.data_dir,
        "SELECT count(*) FROM event_log WHERE kind = 'order.created'",
    );
    assert_eq!(
        created, 6,
        "o1, o2, o5, o6 recovered, o7 and o8 delivered; o2 once"
    );
    let box_2 = kitchen.start_box();
    let ready = kitchen.wait_ready().await;
    assert_eq!(ready["sync"]["recovery"], "none", "{ready}");
    assert_eq!(
        ids(&kitchen.open_orders().await),
        ["o1", "o2", "o5", "o6", "o7", "o8"]
    );
    drop(box_2);
    assert_eq!(
        sqlite(
            &kitchen.data_dir,
            "SELECT value FROM sync_cursors WHERE name = 'recovery'"
        ),
        recovered_at
    );
    assert_eq!(
        sqlite(
            &kitchen.data_dir,
            "SELECT count(*) FROM event_log WHERE kind = 'order.created'"
        ),
        created
    );
    let _ = connection.close(200, "done".into()).await;
    kitchen.stop().await;
}

/// How long a new card of a busy kitchen takes from its start to ready — 400 open orders over
/// two stores, 100 of them bumped at the grill — against a restart of the same card, which
/// does not recover. A measurement (docs/sync.md): `cargo test -p edge-agent --test card --
/// --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement"]
async fn measure_a_busy_kitchens_recovery() {
    const ORDERS: usize = 400;
    let kitchen = Kitchen::start().await;
    kitchen.flash();
    let box_1 = kitchen.start_box();
    kitchen.wait_ready().await;
    for n in 1..=ORDERS {
        let store = if n % 2 == 0 { STORE_1 } else { STORE_2 };
        kitchen
            .post(&order(&format!("e{n}"), store, &format!("o{n}"), 1))
            .await;
    }
    wait_until("box 1 holds them", Duration::from_secs(120), || async {
        ids(&kitchen.open_orders().await).len() == ORDERS
    })
    .await;
    let client = kitchen_testkit::http::client();
    for n in 1..=100 {
        let url = format!("{}/api/orders/o{n}/bump?station=grill", kitchen.base);
        let response = client.post(url).send().await.expect("bump");
        assert_eq!(response.status(), 200);
    }
    kitchen.wait_synced(Duration::from_secs(60)).await;
    let before = kitchen.open_orders().await;
    drop(box_1);
    kitchen.flash();
    let started = std::time::Instant::now();
    let box_2 = kitchen.start_box();
    let ready = kitchen.wait_ready().await;
    let new_card = started.elapsed();
    assert_eq!(ready["sync"]["recovered_orders"], ORDERS, "{ready}");
    let after = kitchen.open_orders().await;
    let strip = |orders: &Value| -> Vec<Value> {
        orders
            .as_array()
            .expect("orders")
            .iter()
            .map(without_calls)
            .collect()
    };
    assert_eq!(strip(&after), strip(&before));
    drop(box_2);
    let started = std::time::Instant::now();
    let _box_2 = kitchen.start_box();
    let ready = kitchen.wait_ready().await;
    let restart = started.elapsed();
    assert_eq!(ready["sync"]["recovery"], "none");
    println!(
        "{ORDERS} open orders, 100 bumped: a new card is ready {} ms after its start, a restart \
         of it {} ms",
        new_card.as_millis(),
        restart.as_millis()
    );
    kitchen.stop().await;
}
