//! Shared by the agent's integration tests: a provisioned agent on its own queues and data
//! directory, an SSE reader, JSON request helpers, pseudo-terminals as serial scanners (`pty`).
#![allow(dead_code)]

pub mod cloud;
pub mod pty;

use std::time::{Duration, Instant};

use edge_agent::{App, Config};
use kitchen_proto::OrderEvent;
use lapin::{
    BasicProperties, Connection, ConnectionProperties,
    options::{BasicPublishOptions, ExchangeDeleteOptions, QueueDeleteOptions},
};
use prost::Message;

pub fn amqp_url() -> String {
    std::env::var("TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .subsec_nanos()
    )
}

pub async fn get_json(url: &str) -> serde_json::Value {
    let response = reqwest::get(url).await.expect("answers");
    response.json().await.expect("json")
}

pub async fn post_json(url: &str) -> serde_json::Value {
    let response = reqwest::Client::new()
        .post(url)
        .send()
        .await
        .expect("answers");
    response.json().await.expect("json")
}

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
        adjust(&mut config);
        // `adjust` may name the kitchen (its queues are then removed under that name).
        let kitchen_id = config.kitchen_id.clone();
        let app = App::build(config).await.expect("agent builds");
        let base = format!("http://127.0.0.1:{}", app.port());
        let token = app.shutdown_token();
        let handle = tokio::spawn(app.run_until_stopped());
        let deadline = Instant::now() + Duration::from_secs(20);
        while reqwest::get(format!("{base}/readyz"))
            .await
            .expect("answers")
            .status()
            != 200
        {
            assert!(Instant::now() < deadline, "agent never became ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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
        self.channel
            .basic_publish(
                self.exchange.as_str().into(),
                order_event.store_id.as_str().into(),
                BasicPublishOptions::default(),
                &order_event.encode_to_vec(),
                BasicProperties::default().with_delivery_mode(2),
            )
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

impl Drop for TestAgent {
    fn drop(&mut self) {
        self.token.cancel();
        remove_kitchen(&self.kitchen_id, &self.exchange, &self.data_dir);
    }
}

/// Removes a test kitchen's queues, exchanges and data directory. Called from `Drop`, so also
/// when a test failed midway: on its own thread and runtime, as the test's may be gone.
pub fn remove_kitchen(kitchen_id: &str, exchange: &str, data_dir: &std::path::Path) {
    let queues = [
        format!("edge.{kitchen_id}"),
        format!("edge.{kitchen_id}.dead"),
    ];
    let exchanges = [exchange.to_owned(), format!("edge.{kitchen_id}.dlx")];
    let url = amqp_url();
    let _ = std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async move {
            let Ok(connection) = Connection::connect(&url, ConnectionProperties::default()).await
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
    })
    .join();
    let _ = std::fs::remove_dir_all(data_dir);
}

/// Reads SSE frames `(id, event, data)` from a streaming response.
pub struct SseReader {
    stream:
        std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl SseReader {
    pub async fn open(url: &str, last_event_id: Option<&str>) -> Self {
        let mut request = reqwest::Client::new().get(url);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.expect("sse answers");
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str().expect("ascii"),
            "text/event-stream"
        );
        Self {
            stream: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        }
    }

    /// The next event `(id, event, data)` (keep-alive comments skipped), within 10 s.
    pub async fn next(&mut self) -> (String, String, serde_json::Value) {
        self.next_within(Duration::from_secs(10))
            .await
            .expect("an event within 10 s")
    }

    /// The next event within `timeout`, or `None`.
    pub async fn next_within(
        &mut self,
        timeout: Duration,
    ) -> Option<(String, String, serde_json::Value)> {
        use futures_util::StreamExt;
        tokio::time::timeout(timeout, async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let frame: String = self.buffer.drain(..end + 2).collect();
                    let field = |name: &str| {
                        frame
                            .lines()
                            .find_map(|l| l.strip_prefix(&format!("{name}:")))
                            .map(|v| v.trim_start().to_owned())
                    };
                    let Some(data) = field("data") else { continue };
                    return (
                        field("id").unwrap_or_default(),
                        field("event").unwrap_or_default(),
                        serde_json::from_str(&data).expect("json data"),
                    );
                }
                let chunk = self
                    .stream
                    .next()
                    .await
                    .expect("stream open")
                    .expect("bytes");
                self.buffer.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await
        .ok()
    }
}
