//! The agent's own test harness: a provisioned agent in process on its own queues and data
//! directory (`TestAgent`), and its cloud database (`cloud`). What the relay's tests share
//! (databases, broker clean-up, names, HTTP/SSE, pseudo-terminals, order events) is in
//! `kitchen_testkit`.
#![allow(dead_code)]

pub mod cloud;
pub mod fleet;

use std::time::Duration;

use edge_agent::{App, Config};
use kitchen_proto::OrderEvent;
use kitchen_testkit::{
    amqp::{self, BrokerObjects, amqp_url},
    http::wait_ready,
    names::unique,
};
use lapin::{Connection, ConnectionProperties};

/// A provisioned agent on port 0 with its own kitchen id (so its own queues), exchange and
/// data directory; `stop` removes them.
pub struct TestAgent {
    pub base: String,
    pub kitchen_id: String,
    pub exchange: String,
    pub data_dir: std::path::PathBuf,
    token: tokio_util::sync::CancellationToken,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
    connection: Connection,
    channel: lapin::Channel,
}

impl TestAgent {
    /// Starts the agent and waits until its feed is connected.
    pub async fn start(reference: Option<&str>) -> Self {
        Self::start_for(reference, &["kitchen-bk-01"]).await
    }

    /// Starts an agent serving `stores`.
    pub async fn start_for(reference: Option<&str>, stores: &[&str]) -> Self {
        Self::start_with(reference, stores, |_| {}).await
    }

    /// Starts an agent serving `stores`, its config adjusted by `adjust`.
    pub async fn start_with(
        reference: Option<&str>,
        stores: &[&str],
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        let kitchen_id = unique("test-kitchen");
        let data_dir = std::env::temp_dir().join(&kitchen_id);
        std::fs::create_dir_all(&data_dir).expect("data dir");
        let reference_file = reference.map(|text| {
            let file = data_dir.join("reference.toml");
            std::fs::write(&file, text).expect("reference written");
            file
        });
        let exchange = format!("{kitchen_id}.structured_order_data");
        let config = Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            data_dir: data_dir.clone(),
            amqp_url: amqp_url(),
            kitchen_id: kitchen_id.clone(),
            store_ids: stores.iter().map(|s| (*s).to_owned()).collect(),
            reference_file,
            order_exchange: exchange.clone(),
            ..Config::default()
        };
        let mut config = config;
        // Tests write far faster than a kitchen; the rate limit has its own test.
        config.write_rate = 100_000;
        adjust(&mut config);
        // `adjust` may name the kitchen (its queues are then removed under that name).
        let kitchen_id = config.kitchen_id.clone();
        let data_dir = config.data_dir.clone();
        // The cloud's part: the agent only finds its queue.
        let stores: Vec<&str> = config.store_ids.iter().map(String::as_str).collect();
        declare_queue(&kitchen_id, &config.order_exchange, &stores).await;
        let app = App::build(config).await.expect("agent builds");
        pair_test_manager(&data_dir);
        let base = format!("http://127.0.0.1:{}", app.port());
        let token = app.shutdown_token();
        let handle = tokio::spawn(app.run_until_stopped());
        wait_ready(&base, Duration::from_secs(20)).await;
        let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
            .await
            .expect("rabbitmq");
        let channel = connection.create_channel().await.expect("channel");
        Self {
            base,
            kitchen_id,
            exchange,
            data_dir,
            token,
            handle,
            connection,
            channel,
        }
    }

    /// Publishes as the relay does: routed by the event's store id.
    pub async fn publish(&self, order_event: &OrderEvent) {
        amqp::publish(&self.channel, &self.exchange, order_event)
            .await
            .expect("publish");
    }

    /// Stops the agent (open streams included); dropping it removes what the test created.
    pub async fn stop(mut self) {
        self.token.cancel();
        (&mut self.handle)
            .await
            .expect("joins")
            .expect("clean stop");
    }
}

impl TestAgent {
    /// Stops the agent but keeps its data directory (for a restart on it); returns its path.
    /// The queues go as with `stop`.
    pub async fn stop_keeping_data(mut self) -> std::path::PathBuf {
        let data_dir = std::mem::take(&mut self.data_dir);
        self.token.cancel();
        (&mut self.handle)
            .await
            .expect("joins")
            .expect("clean stop");
        data_dir
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        self.token.cancel();
        remove_kitchen(&self.kitchen_id, &self.exchange, &self.data_dir);
    }
}

/// Pairs the manager device `kitchen_testkit::http` presents (`TEST_TOKEN`) with the agent
/// whose data directory this is (before or while it runs).
pub fn pair_test_manager(data_dir: &std::path::Path) {
    let devices = edge_agent::pairing::devices(data_dir).expect("devices listed");
    if devices
        .iter()
        .any(|d| d.name == kitchen_testkit::http::TEST_DEVICE && d.revoked_at_ms.is_none())
    {
        return;
    }
    edge_agent::pairing::pair_with_token(
        data_dir,
        "manager",
        kitchen_testkit::http::TEST_DEVICE,
        None,
        kitchen_testkit::http::TEST_TOKEN,
    )
    .expect("test manager paired");
}

/// Declares what `cloud-relay kitchen add` declares for a kitchen, with the relay's own code:
/// the order `exchange`, the kitchen's queue with its dead-lettering, and a binding per store.
/// The agent only declares its queue passively, so this comes before it starts.
pub async fn declare_queue(kitchen_id: &str, exchange: &str, stores: &[&str]) {
    cloud_relay::kitchens::broker::declare_kitchen_queue_at(
        &amqp_url(),
        exchange,
        kitchen_id,
        stores,
    )
    .await
    .expect("kitchen queue declared");
}

/// Polls `check` every 50 ms until it holds; fails the test naming `what` after `timeout`.
pub async fn wait_until<F: std::future::Future<Output = bool>>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> F,
) {
    let deadline = std::time::Instant::now() + timeout;
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Removes a test kitchen's queues, exchanges and data directory. Called from `Drop`, so also
/// when a test failed midway.
pub fn remove_kitchen(kitchen_id: &str, exchange: &str, data_dir: &std::path::Path) {
    drop(BrokerObjects::edge_kitchen(kitchen_id, exchange));
    let _ = std::fs::remove_dir_all(data_dir);
}
