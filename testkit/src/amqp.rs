//! RabbitMQ for tests: where it is (AMQP and the management API), publishing an `OrderEvent` as
//! the relay routes it, and the queues, exchanges and users a test made (or made the relay
//! make), deleted when the test ends.

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

/// The management API with an administrator's credentials, `TEST_RABBITMQ_ADMIN_URL`, else the
/// local guest/guest default (`scripts/services` enables the plugin): `(base url without
/// credentials, user, password)`.
pub fn admin_url() -> (String, String, String) {
    let url = std::env::var("TEST_RABBITMQ_ADMIN_URL")
        .unwrap_or_else(|_| "http://guest:guest@127.0.0.1:15672".into());
    let parsed = reqwest::Url::parse(&url).expect("TEST_RABBITMQ_ADMIN_URL is a URL");
    let user = parsed.username().to_owned();
    let password = parsed.password().unwrap_or_default().to_owned();
    let mut base = parsed;
    let _ = base.set_username("");
    let _ = base.set_password(None);
    (base.to_string(), user, password)
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
    users: Mutex<Vec<String>>,
}

impl BrokerObjects {
    pub fn new() -> Self {
        Self::default()
    }

    /// What the cloud declares for kitchen `kitchen_id` (`cloud-relay kitchen add`, in tests
    /// `declare_kitchen_queue`): its queue `edge.<kitchen_id>`, the dead-letter queue
    /// `edge.<kitchen_id>.dead` and exchange `edge.<kitchen_id>.dlx` (`kitchen_proto::edge_*`),
    /// and the order exchange it is bound to.
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

    /// A broker user, deleted through the management API.
    pub fn add_user(&self, user: impl Into<String>) {
        lock(&self.users).push(user.into());
    }
}

fn lock(names: &Mutex<Vec<String>>) -> std::sync::MutexGuard<'_, Vec<String>> {
    names.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Drop for BrokerObjects {
    fn drop(&mut self) {
        let queues = std::mem::take(&mut *lock(&self.queues));
        let exchanges = std::mem::take(&mut *lock(&self.exchanges));
        let users = std::mem::take(&mut *lock(&self.users));
        if queues.is_empty() && exchanges.is_empty() && users.is_empty() {
            return;
        }
        run_blocking(async move {
            if !users.is_empty() {
                let (base, admin, password) = admin_url();
                let client = crate::http::bare();
                for user in users {
                    let Ok(mut url) = reqwest::Url::parse(&base) else {
                        break;
                    };
                    if let Ok(mut path) = url.path_segments_mut() {
                        path.pop_if_empty().extend(["api", "users", &user]);
                    }
                    let _ = client
                        .delete(url)
                        .basic_auth(&admin, Some(&password))
                        .send()
                        .await;
                }
            }
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
