//! `spawn_app()`: the real relay on port 0 with its own database and its own exchanges, and
//! helpers to sign webhooks, read queues and wait for conditions with a deadline.

use std::{
    future::Future,
    net::SocketAddr,
    str::FromStr,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use cloud_relay::{App, Config, otter::WebhookSigner};
use lapin::{
    Channel, Connection, ConnectionProperties, ExchangeKind,
    message::BasicGetMessage,
    options::{
        BasicAckOptions, BasicGetOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
        QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
    },
    types::FieldTable,
};
use secrecy::SecretString;
use sqlx::{
    Connection as _, PgConnection, PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const SECRET: &str = "test-webhook-secret";
pub const NEW_ORDER: &[u8] = include_bytes!("../fixtures/new_order.json");
pub const CANCEL_ORDER: &[u8] = include_bytes!("../fixtures/cancel_order.json");

pub fn admin_database_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn amqp_url() -> String {
    std::env::var("TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// `host:port` of a URL like `scheme://user@host:port/...`, for pointing a proxy at it.
pub fn socket_addr_of(url: &str) -> SocketAddr {
    let after_scheme = url.split("://").nth(1).expect("url has a scheme");
    let host_port = after_scheme.rsplit('@').next().expect("host");
    let host_port = host_port.split('/').next().expect("host:port");
    host_port.parse().expect("url host is an ip:port")
}

/// `url` with its `host:port` replaced by `proxy`'s address.
pub fn through(url: &str, proxy: SocketAddr) -> String {
    url.replace(&socket_addr_of(url).to_string(), &proxy.to_string())
}

/// A name no other test (or test run) uses.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .subsec_nanos();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

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

/// A database of its own, dropped (with its connections) when the test ends.
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
}

impl TestDb {
    pub async fn create() -> Self {
        let name = unique("relay_test");
        let admin = admin_database_url();
        let mut connection = PgConnection::connect(&admin)
            .await
            .expect("postgres reachable");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut connection)
            .await
            .expect("create test database");
        let base = admin.rsplit_once('/').expect("url has a database").0;
        let url = format!("{base}/{name}");
        let pool = PgPool::connect(&url).await.expect("connect test database");
        Self { name, url, pool }
    }

    /// A database of its own with the relay's migrations applied (without starting a relay).
    pub async fn migrated() -> Self {
        let db = Self::create().await;
        cloud_relay::db::MIGRATOR
            .run(&db.pool)
            .await
            .expect("migrations apply");
        db
    }

    /// A database of its own owned by `owner` (not migrated; `pool` connects as the admin).
    pub async fn owned_by(owner: &TestRole) -> Self {
        let name = unique("relay_test");
        let admin = admin_database_url();
        let mut connection = PgConnection::connect(&admin)
            .await
            .expect("postgres reachable");
        sqlx::query(&format!("CREATE DATABASE {name} OWNER {}", owner.ident()))
            .execute(&mut connection)
            .await
            .expect("create test database");
        let base = admin.rsplit_once('/').expect("url has a database").0;
        let url = format!("{base}/{name}");
        let pool = PgPool::connect(&url).await.expect("connect test database");
        Self { name, url, pool }
    }

    /// A small pool logged in as `role` (the test cluster trusts local connections, so no
    /// password is needed): how a kitchen box, or the relay's own role, sees this database.
    pub async fn connect_as(&self, role: &str) -> PgPool {
        let options = PgConnectOptions::from_str(&self.url)
            .expect("database url")
            .username(role);
        PgPoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .expect("connect as role")
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .expect(sql)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let admin = admin_database_url();
        // The pool belongs to the test's runtime, blocked here: FORCE closes its connections.
        run_blocking(async move {
            if let Ok(mut connection) = PgConnection::connect(&admin).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut connection)
                    .await;
            }
        });
    }
}

/// A role of its own on the test cluster. Roles are cluster-wide and outlive the test
/// databases, so it is dropped when the test ends (its sessions ended first). Declare it before
/// the `TestDb` it is used in: locals drop in reverse order, so the database — with anything
/// the role owns or was granted there — goes first, and `DROP ROLE` finds nothing depending
/// on it. (`kitchen_agent`, the group role the migration creates, is shared by every test
/// database and stays.)
pub struct TestRole {
    pub name: String,
}

impl TestRole {
    /// A unique name, not created (for `kitchens::add_kitchen` to create).
    pub fn named(prefix: &str) -> Self {
        Self {
            name: unique(prefix),
        }
    }

    /// Created with `attributes` (e.g. `LOGIN CREATEROLE`).
    pub async fn create(prefix: &str, attributes: &str) -> Self {
        let role = Self::named(prefix);
        let mut connection = PgConnection::connect(&admin_database_url())
            .await
            .expect("postgres reachable");
        sqlx::query(&format!("CREATE ROLE {} {attributes}", role.ident()))
            .execute(&mut connection)
            .await
            .expect("create role");
        role
    }

    /// The name as a quoted identifier.
    pub fn ident(&self) -> String {
        format!("\"{}\"", self.name.replace('"', "\"\""))
    }
}

impl Drop for TestRole {
    fn drop(&mut self) {
        let (name, ident) = (self.name.clone(), self.ident());
        let admin = admin_database_url();
        run_blocking(async move {
            if let Ok(mut connection) = PgConnection::connect(&admin).await {
                let _ = sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
                )
                .bind(&name)
                .execute(&mut connection)
                .await;
                if let Err(error) = sqlx::query(&format!("DROP ROLE IF EXISTS {ident}"))
                    .execute(&mut connection)
                    .await
                {
                    eprintln!("test role {name:?} left behind: {error}");
                }
            }
        });
    }
}

/// Runs `future` to completion from a `Drop`, on a runtime of its own.
fn run_blocking(future: impl Future<Output = ()> + Send + 'static) {
    let _ = std::thread::spawn(move || {
        if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            runtime.block_on(future);
        }
    })
    .join();
}

/// Exchanges and queues of its own on the real broker, deleted when the test ends.
pub struct TestBroker {
    pub order_exchange: String,
    pub raw_exchange: String,
    queues: std::sync::Mutex<Vec<String>>,
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
            queues: Default::default(),
            _connection: connection,
            channel,
        };
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
        self.queues.lock().expect("lock").push(queue.to_owned());
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

impl Drop for TestBroker {
    fn drop(&mut self) {
        let queues = std::mem::take(&mut *self.queues.lock().expect("lock"));
        let exchanges = [self.order_exchange.clone(), self.raw_exchange.clone()];
        run_blocking(async move {
            let Ok(connection) =
                Connection::connect(&amqp_url(), ConnectionProperties::default()).await
            else {
                return;
            };
            let Ok(channel) = connection.create_channel().await else {
                return;
            };
            for queue in queues {
                let _ = channel
                    .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                    .await;
            }
            for exchange in exchanges {
                let _ = channel
                    .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                    .await;
            }
            let _ = connection.close(200, "test done".into()).await;
        });
    }
}

/// A running relay with its database and broker objects.
pub struct TestApp {
    pub addr: SocketAddr,
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
    let token = app.shutdown_token();
    let handle = tokio::spawn(app.run_until_stopped());
    TestApp {
        addr,
        config,
        client: reqwest::Client::new(),
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
    pub token: CancellationToken,
    pub handle: JoinHandle<anyhow::Result<()>>,
}

impl TestApp {
    pub async fn start_another_relay(&self) -> OtherRelay {
        let app = App::build(self.config.clone()).await.expect("relay builds");
        let addr = SocketAddr::from(([127, 0, 0, 1], app.port()));
        let token = app.shutdown_token();
        let handle = tokio::spawn(app.run_until_stopped());
        OtherRelay {
            addr,
            token,
            handle,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
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
