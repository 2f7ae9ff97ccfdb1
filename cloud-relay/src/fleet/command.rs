//! Publishing commands to boxes (any relay can): record the command in `fleet.commands`, then
//! publish it QoS 1 with the MQTT 5 response topic, correlation data (the id's bytes) and
//! message expiry, and wait for the broker's PUBACK. rumqttc's `publish().await` only queues the
//! message locally, so the PUBACK is seen by polling the event loop; one connection per relay,
//! made when first needed and again after any trouble, one command at a time.

use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use chrono::Utc;
use rumqttc::v5::{
    AsyncClient, Event, EventLoop,
    mqttbytes::{
        QoS,
        v5::{Packet, PubAckReason, PublishProperties},
    },
};
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::Mutex;

use super::{FleetMetrics, store, unfit_for_mqtt};
use crate::config::MqttConfig;

/// Why a command was not sent.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("the fleet channel is off (MQTT_URL is not set)")]
    Off,
    #[error("unknown command {0:?} (ping, reference, reconcile, sync, diagnostics)")]
    UnknownCommand(String),
    #[error("unknown kitchen {0:?}")]
    UnknownKitchen(String),
    #[error("kitchen {0:?} cannot be reached over MQTT: {1}")]
    UnfitKitchen(String, &'static str),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the broker did not take the command: {0}")]
    Broker(String),
}

/// One connection to the broker, with the time it was last used.
struct Link {
    client: AsyncClient,
    eventloop: EventLoop,
    used: Instant,
}

/// Sends commands; cheap to clone.
#[derive(Clone)]
pub struct Commander {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    config: MqttConfig,
    metrics: Arc<FleetMetrics>,
    link: Mutex<Option<Link>>,
    /// How long connecting plus the PUBACK may take.
    timeout: Duration,
}

/// A command sent: its id, and when the broker drops it if the box has not taken it.
#[derive(Debug, Clone)]
pub struct Sent {
    pub id: uuid::Uuid,
    pub expires_at: chrono::DateTime<Utc>,
}

impl Commander {
    pub fn new(pool: PgPool, config: MqttConfig, metrics: Arc<FleetMetrics>) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                config,
                metrics,
                link: Mutex::new(None),
                timeout: Duration::from_secs(10),
            }),
        }
    }

    /// Records and publishes command `name` to `kitchen`; returns once the broker has it.
    pub async fn send(
        &self,
        kitchen: &str,
        name: &str,
        sent_by: &str,
    ) -> Result<Sent, CommandError> {
        let inner = &self.inner;
        if !inner.config.enabled() {
            return Err(CommandError::Off);
        }
        if !super::COMMANDS.contains(&name) {
            return Err(CommandError::UnknownCommand(name.to_owned()));
        }
        if let Some(reason) = unfit_for_mqtt(kitchen) {
            return Err(CommandError::UnfitKitchen(kitchen.to_owned(), reason));
        }
        let id = uuid::Uuid::now_v7();
        let now = Utc::now();
        let expiry = inner.config.command_expiry();
        let expires_at = now + chrono::Duration::from_std(expiry).unwrap_or_default();
        let recorded = tokio::time::timeout(
            inner.timeout,
            store::record_command(&inner.pool, id, kitchen, name, sent_by, expires_at),
        )
        .await
        .map_err(|_| CommandError::Database(sqlx::Error::PoolTimedOut))??;
        if !recorded {
            return Err(CommandError::UnknownKitchen(kitchen.to_owned()));
        }
        let payload = serde_json::json!({"id": id.to_string(), "sent_at": now.timestamp_millis()});
        let properties = PublishProperties {
            message_expiry_interval: Some(inner.config.command_expiry_secs),
            response_topic: Some(super::reply_topic(kitchen, &id.to_string())),
            correlation_data: Some(bytes::Bytes::copy_from_slice(id.as_bytes())),
            content_type: Some("application/json".into()),
            payload_format_indicator: Some(1),
            ..Default::default()
        };
        let topic = super::command_topic(kitchen, name);
        match self.publish(topic, payload.to_string(), properties).await {
            Ok(()) => {
                inner
                    .metrics
                    .commands_published
                    .fetch_add(1, Ordering::Relaxed);
                Ok(Sent { id, expires_at })
            }
            Err(error) => {
                inner
                    .metrics
                    .commands_failed
                    .fetch_add(1, Ordering::Relaxed);
                Err(CommandError::Broker(error))
            }
        }
    }

    /// Polls `fleet.commands` until the reply to `id` is there, or `wait` has passed.
    pub async fn wait_reply(
        &self,
        id: uuid::Uuid,
        wait: Duration,
    ) -> Result<Option<Value>, CommandError> {
        let deadline = Instant::now() + wait;
        loop {
            let reply =
                tokio::time::timeout(self.inner.timeout, store::reply_of(&self.inner.pool, id))
                    .await
                    .map_err(|_| CommandError::Database(sqlx::Error::PoolTimedOut))??;
            if reply.is_some() {
                return Ok(reply);
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Publishes on the relay's link (made or made again as needed) and waits for the PUBACK.
    async fn publish(
        &self,
        topic: String,
        payload: String,
        properties: PublishProperties,
    ) -> Result<(), String> {
        let inner = &self.inner;
        let mut guard = inner.link.lock().await;
        // A link idle past the keep-alive may have been dropped by the broker (nobody polled
        // it to ping): make a new one rather than find out by losing the command.
        if guard
            .as_ref()
            .is_some_and(|link| link.used.elapsed() >= inner.config.keep_alive())
        {
            *guard = None;
        }
        let mut link = match guard.take() {
            Some(link) => link,
            None => self.connect()?,
        };
        let result = tokio::time::timeout(
            inner.timeout,
            publish_on(&mut link, topic, payload, properties),
        )
        .await
        .unwrap_or_else(|_| Err("timed out waiting for the broker's PUBACK".into()));
        if result.is_ok() {
            link.used = Instant::now();
            *guard = Some(link);
        }
        result
    }

    fn connect(&self) -> Result<Link, String> {
        let inner = &self.inner;
        let client_id = format!(
            "{}-cmd-{:08x}",
            inner.config.client_id,
            rand::random::<u32>()
        );
        let mut options =
            super::options(&inner.config, client_id).map_err(|error| error.to_string())?;
        options.set_clean_start(true);
        let (client, eventloop) = AsyncClient::new(options, 16);
        Ok(Link {
            client,
            eventloop,
            used: Instant::now(),
        })
    }
}

/// Queues the publish, then polls until the broker acknowledges it (its packet id is the one
/// the event loop reports as sent).
async fn publish_on(
    link: &mut Link,
    topic: String,
    payload: String,
    properties: PublishProperties,
) -> Result<(), String> {
    link.client
        .try_publish_with_properties(topic, QoS::AtLeastOnce, false, payload, properties)
        .map_err(|error| error.to_string())?;
    let mut pkid = None;
    loop {
        let event = link
            .eventloop
            .poll()
            .await
            .map_err(|error| error.to_string())?;
        match event {
            Event::Outgoing(rumqttc::Outgoing::Publish(id)) => pkid = Some(id),
            Event::Incoming(Packet::PubAck(ack)) if Some(ack.pkid) == pkid => {
                return match ack.reason {
                    PubAckReason::Success | PubAckReason::NoMatchingSubscribers => Ok(()),
                    reason => Err(format!("refused: {reason:?}")),
                };
            }
            Event::Incoming(Packet::Disconnect(disconnect)) => {
                return Err(format!("disconnected: {:?}", disconnect.reason_code));
            }
            _ => {}
        }
    }
}
