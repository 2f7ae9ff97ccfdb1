//! RabbitMQ for tests: where it is, publishing an `OrderEvent` as the relay routes it, and the
//! queues and exchanges a test made (or made an agent declare), deleted when the test ends.

use std::sync::{Mutex, PoisonError};

use kitchen_proto::OrderEvent;
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties,
    options::{BasicPublishOptions, ExchangeDeleteOptions, QueueDeleteOptions},
};
use prost::Message;

use crate::run_blocking;

/// The broker's URL: `TEST_AMQP_URL`, else the local guest/guest default.
pub fn amqp_url() -> String {
    std::env::var("TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// Publishes `order_event` to `exchange` as the relay routes it (routing key: its store id),
/// persistent. Does not wait for a confirm.
pub async fn publish(
    channel: &Channel,
    exchange: &str,
    order_event: &OrderEvent,
) -> Result<(), lapin::Error> {
    channel
        .basic_publish(
            exchange.into(),
            order_event.store_id.as_str().into(),
            BasicPublishOptions::default(),
            &order_event.encode_to_vec(),
            BasicProperties::default().with_delivery_mode(2),
        )
        .await?;
    Ok(())
}

/// Queues and exchanges deleted when this is dropped — also when the test failed midway: on a
/// thread and runtime of its own, as the test's may be gone. Deleting what does not exist (any
/// more) is not an error.
#[derive(Debug, Default)]
pub struct BrokerObjects {
    queues: Mutex<Vec<String>>,
    exchanges: Mutex<Vec<String>>,
}

impl BrokerObjects {
    pub fn new() -> Self {
        Self::default()
    }

    /// What an edge agent serving `kitchen_id` declares: its queue `edge.<kitchen_id>`, the
    /// dead-letter queue `edge.<kitchen_id>.dead` and exchange `edge.<kitchen_id>.dlx` (the
    /// names of `edge_agent::feed::FeedConfig`), and the order exchange it consumes from.
    pub fn edge_kitchen(kitchen_id: &str, order_exchange: &str) -> Self {
        let objects = Self::new();
        objects.add_queue(format!("edge.{kitchen_id}"));
        objects.add_queue(format!("edge.{kitchen_id}.dead"));
        objects.add_exchange(order_exchange);
        objects.add_exchange(format!("edge.{kitchen_id}.dlx"));
        objects
    }

    pub fn add_queue(&self, queue: impl Into<String>) {
        lock(&self.queues).push(queue.into());
    }

    pub fn add_exchange(&self, exchange: impl Into<String>) {
        lock(&self.exchanges).push(exchange.into());
    }
}

fn lock(names: &Mutex<Vec<String>>) -> std::sync::MutexGuard<'_, Vec<String>> {
    names.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Drop for BrokerObjects {
    fn drop(&mut self) {
        let queues = std::mem::take(&mut *lock(&self.queues));
        let exchanges = std::mem::take(&mut *lock(&self.exchanges));
        if queues.is_empty() && exchanges.is_empty() {
            return;
        }
        run_blocking(async move {
            let Ok(connection) =
                Connection::connect(&amqp_url(), ConnectionProperties::default()).await
            else {
                return;
            };
            // A channel per deletion: an error on one closes only that channel.
            for queue in queues {
                if let Ok(channel) = connection.create_channel().await {
                    let _ = channel
                        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                        .await;
                }
            }
            for exchange in exchanges {
                if let Ok(channel) = connection.create_channel().await {
                    let _ = channel
                        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                        .await;
                }
            }
            let _ = connection.close(200, "test done".into()).await;
        });
    }
}
