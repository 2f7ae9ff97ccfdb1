//! `spawn_app()`: the real relay on port 0 with its own database and its own exchanges, and
//! helpers to sign webhooks, read queues and wait for conditions with a deadline.

use std::{
    future::Future,
    net::SocketAddr,
    time::{Duration, Instant},
};

use cloud_relay::{App, Config, otter::WebhookSigner};
use kitchen_testkit::amqp::BrokerObjects;
pub use kitchen_testkit::{
    amqp::amqp_url,
    db::{TestDb, TestRole, admin_database_url},
    names::unique,
    proxy::{socket_addr_of, through},
};
use lapin::{
    Channel, Connection, ConnectionProperties, ExchangeKind,
    message::BasicGetMessage,
    options::{
        BasicAckOptions, BasicGetOptions, ExchangeDeclareOptions, QueueBindOptions,
        QueueDeclareOptions,
    },
    types::FieldTable,
};
use secrecy::SecretString;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const SECRET: &str = "test-webhook-secret";
pub const NEW_ORDER: &[u8] = include_bytes!("../fixtures/new_order.json");
pub const CANCEL_ORDER: &[u8] = include_bytes!("../fixtures/cancel_order.json");

/// Polls `check` until it returns `Some` or `timeout` passes.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Exchanges and queues of its own on the real broker, deleted when the test ends.
pub struct TestBroker {
    pub order_exchange: String,
    pub raw_exchange: String,
    // Deleted when the broker is dropped, while its connection is still open.
    objects: BrokerObjects,
    _connection: Connection,
    channel: Channel,
}

impl TestBroker {
    pub async fn create() -> Self {
        let id = unique("test");
        let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
            .await
            .expect("rabbitmq reachable");
        let channel = connection.create_channel().await.expect("channel");
        let broker = Self {
            order_exchange: format!("{id}.structured_order_data"),
            raw_exchange: format!("{id}.otter_events"),
            objects: BrokerObjects::new(),
            _connection: connection,
            channel,
        };
        broker.objects.add_exchange(&broker.order_exchange);
        broker.objects.add_exchange(&broker.raw_exchange);
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        for (name, kind) in [
            (&broker.order_exchange, ExchangeKind::Direct),
            (&broker.raw_exchange, ExchangeKind::Fanout),
        ] {
            broker
                .channel
                .exchange_declare(name.as_str().into(), kind, durable, FieldTable::default())
                .await
                .expect("declare exchange");
        }
        broker
    }

    /// A durable queue bound to the order exchange for each of `stores` (like a kitchen's).
    pub async fn kitchen_queue(&self, stores: &[&str]) -> String {
        let queue = format!("{}.kitchen.{}", self.order_exchange, unique("q"));
        self.declare_queue(&queue).await;
        for store in stores {
            self.bind(&queue, &self.order_exchange, store).await;
        }
        queue
    }

    /// A queue receiving the raw fanout.
    pub async fn raw_queue(&self) -> String {
        let queue = format!("{}.raw.{}", self.raw_exchange, unique("q"));
        self.declare_queue(&queue).await;
        self.bind(&queue, &self.raw_exchange, "").await;
        queue
    }

    async fn declare_queue(&self, queue: &str) {
        self.channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("declare queue");
        self.objects.add_queue(queue);
    }

    pub async fn bind(&self, queue: &str, exchange: &str, routing_key: &str) {
        self.channel
            .queue_bind(
                queue.into(),
                exchange.into(),
                routing_key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind queue");
    }

    /// Takes everything in a kitchen queue and returns `(event_id, sequence)` of each, in order.
    pub async fn delivered(&self, queue: &str) -> Vec<(String, u64)> {
        use prost::Message;
        self.drain(queue)
            .await
            .iter()
            .map(|m| {
                let event = kitchen_proto::OrderEvent::decode(m.delivery.data.as_slice())
                    .expect("protobuf");
                (event.event_id, event.sequence)
            })
            .collect()
    }

    /// Takes (and acks) everything currently in `queue`.
    pub async fn drain(&self, queue: &str) -> Vec<BasicGetMessage> {
        let mut messages = Vec::new();
        while let Some(message) = self
            .channel
            .basic_get(queue.into(), BasicGetOptions::default())
            .await
            .expect("basic.get")
        {
            self.channel
                .basic_ack(message.delivery.delivery_tag, BasicAckOptions::default())
                .await
                .expect("ack");
            messages.push(message);
        }
        messages
    }
}

/// A running relay with its database and broker objects.
pub struct TestApp {
    /// The public listener (webhooks, `/ping`, `/healthz`).
    pub addr: SocketAddr,
    /// The admin listener (`/readyz`, `/metrics`, `/healthz`).
    pub admin_addr: SocketAddr,
    pub config: Config,
    pub client: reqwest::Client,
    pub signer: WebhookSigner,
    token: CancellationToken,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
    // Dropped after the relay has stopped (fields drop in declaration order).
    pub broker: TestBroker,
    pub db: TestDb,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the relay; `adjust` may point it elsewhere (a proxy) or change limits.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let db = TestDb::create().await;
    let broker = TestBroker::create().await;
    let mut config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        admin_listen: "127.0.0.1:0".parse().expect("addr"),
        database_url: SecretString::from(db.url.clone()),
        amqp_url: SecretString::from(amqp_url()),
        order_exchange: broker.order_exchange.clone(),
        raw_events_exchange: broker.raw_exchange.clone(),
        otter_webhook_secret: Some(SecretString::from(SECRET)),
        // Tests run in parallel against one PostgreSQL (max_connections 100 by default).
        database_pool_size: 8,
        amqp_timeout: Duration::from_secs(3),
        database_timeout: Duration::from_secs(2),
        ..Config::default()
    };
    adjust(&mut config);
    config.validate().expect("test config is valid");
    let app = App::build(config.clone()).await.expect("relay builds");
    let addr = SocketAddr::from(([127, 0, 0, 1], app.port()));
    let admin_addr = app.admin_addr();
    let token = app.shutdown_token();
    let handle = tokio::spawn(app.run_until_stopped());
    TestApp {
        addr,
        admin_addr,
        config,
        client: kitchen_testkit::http::bare(),
        signer: WebhookSigner::new(SecretString::from(SECRET)),
        token,
        handle: Some(handle),
        broker,
        db,
    }
}

/// Another relay on the same database and broker (as a second instance would be deployed).
pub struct OtherRelay {
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub token: CancellationToken,
    pub handle: JoinHandle<anyhow::Result<()>>,
}

impl TestApp {
    pub async fn start_another_relay(&self) -> OtherRelay {
        let app = App::build(self.config.clone()).await.expect("relay builds");
        let addr = SocketAddr::from(([127, 0, 0, 1], app.port()));
        let admin_addr = app.admin_addr();
        let token = app.shutdown_token();
        let handle = tokio::spawn(app.run_until_stopped());
        OtherRelay {
            addr,
            admin_addr,
            token,
            handle,
        }
    }

    /// `path` on the public listener.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `path` on the admin listener.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin_addr)
    }

    /// The admin listener's `/metrics` text.
    pub async fn metrics(&self) -> String {
        let response = self
            .client
            .get(self.admin_url("/metrics"))
            .send()
            .await
            .expect("admin answers");
        assert_eq!(response.status(), 200);
        response.text().await.expect("metrics text")
    }

    /// POSTs `body` to the webhook endpoint, signed with the test secret.
    pub async fn post_signed(&self, body: &[u8]) -> reqwest::Response {
        self.post_signed_to(self.addr, body).await
    }

    /// As `post_signed`, to the relay at `addr` (another instance on the same database).
    pub async fn post_signed_to(&self, addr: SocketAddr, body: &[u8]) -> reqwest::Response {
        self.client
            .post(format!("http://{addr}/webhooks/otter"))
            .header("content-type", "application/json")
            .header("X-HMAC-SHA256", self.signer.sign(body))
            .body(body.to_vec())
            .send()
            .await
            .expect("relay answers")
    }

    /// Stops the relay (as SIGTERM would) but keeps its database and broker objects.
    pub async fn stop_relay(&mut self) {
        self.token.cancel();
        if let Some(handle) = self.handle.take() {
            handle.await.expect("relay task joins").expect("clean stop");
        }
    }

    /// Stops the relay as SIGTERM would and returns how it ended.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.token.cancel();
        let handle = self.handle.take().expect("running");
        handle.await.expect("relay task joins")
    }

    /// Waits until the outbox holds `total` rows and all of them are published.
    pub async fn wait_all_published(&self, total: i64) {
        eventually(
            "all outbox rows published",
            Duration::from_secs(30),
            || async {
                let (rows, pending): (i64, i64) = sqlx::query_as(
                "SELECT count(*), count(*) FILTER (WHERE published_at IS NULL) FROM otter.outbox",
            )
            .fetch_one(&self.db.pool)
            .await
            .ok()?;
                (rows == total && pending == 0).then_some(())
            },
        )
        .await;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.token.cancel();
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }
}

/// An Otter `orders.new_order` body for `order_id` at `store_id`, with one line per
/// `(name, quantity)` and the event time given.
pub fn new_order(event_id: &str, store_id: &str, order_id: &str, event_time: &str) -> Vec<u8> {
    order_event(
        "orders.new_order",
        event_id,
        store_id,
        order_id,
        event_time,
        "NEW_ORDER",
        &[("Double Smash Burger", 2)],
    )
}

pub fn order_event(
    event_type: &str,
    event_id: &str,
    store_id: &str,
    order_id: &str,
    event_time: &str,
    status: &str,
    lines: &[(&str, u32)],
) -> Vec<u8> {
    let items: Vec<serde_json::Value> = lines
        .iter()
        .enumerate()
        .map(|(n, (name, quantity))| {
            serde_json::json!({
                "id": format!("item-{name}"), "lineItemId": format!("{order_id}-line-{n}"),
                "name": name, "quantity": quantity, "price": 11.5,
                "modifiers": [{"id": "mod-cheese", "name": "Cheese", "quantity": 1, "price": 0.5,
                               "modifiers": [{"id": "mod-extra", "name": "Extra", "quantity": 2}]}]
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "eventId": event_id,
        "eventTime": event_time,
        "eventType": event_type,
        "metadata": {
            "storeId": store_id,
            "resourceId": order_id,
            "payload": {
                "externalIdentifiers": {"id": order_id, "friendlyId": "F1", "source": "ubereats"},
                "currencyCode": "USD",
                "status": status,
                "orderedAt": "2025-03-14T18:41:55Z",
                "items": items,
                "unknownFutureField": {"nested": true}
            }
        }
    }))
    .expect("serialises")
}

/// A status event (`orders.confirm`, `orders.cancel_order`, ...) for `order_id`.
pub fn status_event(
    event_type: &str,
    event_id: &str,
    store_id: &str,
    order_id: &str,
    event_time: &str,
) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "eventId": event_id,
        "eventTime": event_time,
        "eventType": event_type,
        "metadata": {"storeId": store_id, "resourceId": order_id, "payload": {"orderId": order_id}}
    }))
    .expect("serialises")
}
