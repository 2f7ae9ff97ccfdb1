//! The outbox publisher: drains `otter.outbox` to RabbitMQ with publisher confirms, in order per
//! store, surviving broker outages. A row is marked published only after a positive confirm of
//! a routed message; anything else leaves it to be published again.

use std::{
    collections::HashSet,
    sync::Arc,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use chrono::Utc;
use futures_util::future::join_all;
use kitchen_daemon::backoff::{Backoff, Spread, delay_for, jitter};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
    options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions},
    types::FieldTable,
};
use secrecy::{ExposeSecret, SecretString};
use sqlx::{Connection as _, PgConnection, PgPool};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{
    db::outbox::{self, Failure, OutboxRow},
    metrics::Metrics,
};

/// How often the publisher looks at the outbox when nothing woke it (retries, other relays).
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Advisory lock key held by the one relay that publishes a database's outbox.
const PUBLISHER_LOCK: i64 = 0x6f74_7465_725f_6f62; // "otter_ob"
/// How often a standby relay tries to take the lock, and the leader checks it still holds it.
const LOCK_RETRY: Duration = Duration::from_secs(2);
const LOCK_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// Where and how to publish.
#[derive(Clone)]
pub struct PublisherConfig {
    pub amqp_url: SecretString,
    /// The relay's CA bundle, trusted beside the web PKI roots for `amqps`.
    pub ca_pem: Option<String>,
    pub order_exchange: String,
    pub raw_events_exchange: String,
    pub timeout: Duration,
    pub batch_max: i64,
}

/// Why the broker connection is being dropped and made again.
#[derive(Debug, thiserror::Error)]
enum PublishError {
    #[error("lost the publisher lock")]
    LostLock,
    #[error("amqp: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, &'static str),
    #[error("connection lost")]
    Disconnected,
}

pub struct Publisher {
    pool: PgPool,
    config: PublisherConfig,
    stored: Arc<Notify>,
    metrics: Arc<Metrics>,
    token: CancellationToken,
}

/// What happened to one row's publishes.
enum Fate {
    Published,
    Failed(String),
}

impl Publisher {
    pub fn new(
        pool: PgPool,
        config: PublisherConfig,
        stored: Arc<Notify>,
        metrics: Arc<Metrics>,
        token: CancellationToken,
    ) -> Self {
        Self {
            pool,
            config,
            stored,
            metrics,
            token,
        }
    }

    /// Runs until the token is cancelled: take the publisher lock (one publisher per database),
    /// connect, drain, and on any broker trouble reconnect with backoff (1 s → 60 s, jittered).
    /// Finishes the batch in flight before returning.
    pub async fn run(self) {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        'lead: while let Some(mut lock) = self.lead().await {
            while !self.token.is_cancelled() {
                let connected = tokio::select! {
                    connected = self.connect() => connected,
                    () = self.token.cancelled() => break 'lead,
                };
                match connected {
                    Ok((connection, channel)) => {
                        backoff.reset();
                        self.metrics.broker_connects.fetch_add(1, Ordering::Relaxed);
                        self.metrics.broker_connected.store(true, Ordering::Relaxed);
                        tracing::info!("connected to rabbitmq, draining the outbox");
                        let result = self.drain(&connection, &channel, &mut lock).await;
                        self.metrics
                            .broker_connected
                            .store(false, Ordering::Relaxed);
                        let _ = tokio::time::timeout(
                            self.config.timeout,
                            connection.close(200, "relay publisher closing".into()),
                        )
                        .await;
                        match result {
                            Ok(()) => break 'lead,
                            Err(PublishError::LostLock) => {
                                tracing::warn!("lost the publisher lock, taking it again");
                                continue 'lead;
                            }
                            Err(error) => tracing::warn!(%error, "lost rabbitmq, reconnecting"),
                        }
                    }
                    Err(error) => tracing::warn!(%error, "cannot connect to rabbitmq"),
                }
                let delay = backoff.next_delay();
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = self.token.cancelled() => break 'lead,
                }
            }
            break;
        }
        tracing::info!("publisher stopped");
    }

    /// Takes the session-level advisory lock that makes this relay the database's only
    /// publisher, waiting (as a standby) while another instance holds it. The lock lives as
    /// long as the returned connection. `None` when shutting down.
    async fn lead(&self) -> Option<PgConnection> {
        let mut announced = false;
        loop {
            let attempt = async {
                let mut connection = self.pool.acquire().await?.detach();
                let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(PUBLISHER_LOCK)
                    .fetch_one(&mut connection)
                    .await?;
                Ok::<_, sqlx::Error>(locked.then_some(connection))
            };
            match tokio::time::timeout(self.config.timeout, attempt).await {
                Ok(Ok(Some(connection))) => {
                    self.metrics
                        .publisher_standby
                        .store(false, Ordering::Relaxed);
                    return Some(connection);
                }
                Ok(Ok(None)) => {
                    self.metrics
                        .publisher_standby
                        .store(true, Ordering::Relaxed);
                    if !announced {
                        tracing::info!("another relay publishes the outbox; standing by");
                        announced = true;
                    }
                }
                Ok(Err(error)) => tracing::warn!(%error, "cannot take the publisher lock"),
                Err(_) => tracing::warn!("timed out taking the publisher lock"),
            }
            tokio::select! {
                () = tokio::time::sleep(LOCK_RETRY) => {}
                () = self.token.cancelled() => return None,
            }
        }
    }

    async fn connect(&self) -> Result<(Connection, Channel), PublishError> {
        let timeout = self.config.timeout;
        let connection = with_timeout(
            timeout,
            "connect",
            Connection::connect_with_config(
                self.config.amqp_url.expose_secret(),
                ConnectionProperties::default()
                    .with_connection_name("cloud-relay publisher".into()),
                lapin::tcp::OwnedTLSConfig {
                    identity: None,
                    cert_chain: self.config.ca_pem.clone(),
                },
                lapin::runtime::default_runtime()?,
            ),
        )
        .await?;
        let channel = with_timeout(timeout, "channel", connection.create_channel()).await?;
        with_timeout(
            timeout,
            "confirm.select",
            channel.confirm_select(ConfirmSelectOptions::default()),
        )
        .await?;
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        for (name, kind) in [
            (&self.config.order_exchange, ExchangeKind::Direct),
            (&self.config.raw_events_exchange, ExchangeKind::Fanout),
        ] {
            with_timeout(
                timeout,
                "exchange.declare",
                channel.exchange_declare(
                    name.as_str().into(),
                    kind,
                    durable,
                    FieldTable::default(),
                ),
            )
            .await?;
        }
        Ok((connection, channel))
    }

    /// Publishes until cancelled (Ok), the broker fails or the lock is lost (Err).
    async fn drain(
        &self,
        connection: &Connection,
        channel: &Channel,
        lock: &mut PgConnection,
    ) -> Result<(), PublishError> {
        let mut lock_checked = Instant::now();
        loop {
            if self.token.is_cancelled() {
                return Ok(());
            }
            if !connection.status().connected() || !channel.status().connected() {
                return Err(PublishError::Disconnected);
            }
            if lock_checked.elapsed() >= LOCK_CHECK_INTERVAL {
                // The lock is held by this session: if its connection died, so did the lock.
                let alive = tokio::time::timeout(self.config.timeout, lock.ping()).await;
                if !matches!(alive, Ok(Ok(()))) {
                    return Err(PublishError::LostLock);
                }
                lock_checked = Instant::now();
            }
            let pending = outbox::pending(&self.pool, self.config.batch_max);
            let rows = match tokio::time::timeout(self.config.timeout, pending).await {
                Ok(Ok(rows)) => rows,
                Ok(Err(error)) => {
                    tracing::warn!(%error, "cannot read the outbox");
                    self.idle().await;
                    continue;
                }
                Err(_) => {
                    tracing::warn!("timed out reading the outbox");
                    self.idle().await;
                    continue;
                }
            };
            let now = Utc::now();
            let ready = ready_in_store_order(rows, now);
            if ready.is_empty() {
                self.idle().await;
                continue;
            }
            self.publish_batch(channel, ready).await?;
        }
    }

    /// Waits for new rows, the poll interval, or shutdown.
    async fn idle(&self) {
        tokio::select! {
            () = self.stored.notified() => {}
            () = tokio::time::sleep(POLL_INTERVAL) => {}
            () = self.token.cancelled() => {}
        }
    }

    async fn publish_batch(
        &self,
        channel: &Channel,
        rows: Vec<OutboxRow>,
    ) -> Result<(), PublishError> {
        let timeout = self.config.timeout;
        let mut confirms = Vec::with_capacity(rows.len() * 2);
        for row in &rows {
            let mut properties = BasicProperties::default()
                .with_delivery_mode(2)
                .with_message_id(row.event_id.as_str().into())
                .with_type(row.event_type.as_str().into())
                .with_timestamp(row.created_at.timestamp().max(0) as u64);
            let kitchen = match kitchen_payload(row) {
                Some(payload) => {
                    properties = properties
                        .with_content_type(kitchen_proto::ORDER_EVENT_CONTENT_TYPE.into());
                    let confirm = with_timeout(
                        timeout,
                        "basic.publish",
                        channel.basic_publish(
                            self.config.order_exchange.as_str().into(),
                            row.store_id.as_str().into(),
                            BasicPublishOptions {
                                mandatory: true,
                                ..Default::default()
                            },
                            &payload,
                            properties.clone(),
                        ),
                    )
                    .await?;
                    Some(confirm)
                }
                None => None,
            };
            let raw_properties = BasicProperties::default()
                .with_delivery_mode(2)
                .with_message_id(row.event_id.as_str().into())
                .with_type(row.event_type.as_str().into())
                .with_content_type("application/json".into());
            let raw = with_timeout(
                timeout,
                "basic.publish",
                channel.basic_publish(
                    self.config.raw_events_exchange.as_str().into(),
                    row.store_id.as_str().into(),
                    BasicPublishOptions::default(),
                    row.raw.as_bytes(),
                    raw_properties,
                ),
            )
            .await?;
            confirms.push(async move {
                let kitchen = match kitchen {
                    Some(confirm) => Some(confirm.await),
                    None => None,
                };
                (kitchen, raw.await)
            });
        }
        let results = with_timeout(timeout, "publisher confirms", async {
            Ok::<_, lapin::Error>(join_all(confirms).await)
        })
        .await?;

        let now = Utc::now();
        let mut published = Vec::new();
        let mut failures = Vec::new();
        let mut blocked_stores: Vec<&str> = Vec::new();
        for (row, (kitchen, raw)) in rows.iter().zip(results) {
            if blocked_stores.contains(&row.store_id.as_str()) {
                // An earlier event of this store failed: this one goes again after it.
                continue;
            }
            match self.fate(row, kitchen, raw)? {
                Fate::Published => {
                    published.push(row.id);
                    let age = (now - row.created_at).to_std().unwrap_or_default();
                    self.metrics.publish_latency.observe(age);
                }
                Fate::Failed(error) => {
                    let delay = jitter(
                        delay_for(
                            Duration::from_secs(1),
                            Duration::from_secs(60),
                            row.attempts.max(0) as u32,
                        ),
                        Spread::UP_TO_BASE,
                    );
                    tracing::warn!(event_id = %row.event_id, store_id = %row.store_id,
                        attempts = row.attempts + 1, %error, "event not delivered, will retry");
                    failures.push(Failure {
                        id: row.id,
                        error,
                        retry_at: now + delay,
                    });
                    blocked_stores.push(&row.store_id);
                }
            }
        }
        self.metrics
            .published
            .fetch_add(published.len() as u64, Ordering::Relaxed);
        // If PostgreSQL is away now, the rows stay unpublished and go out again later:
        // at-least-once, which consumers absorb by de-duplicating on the event id.
        let marked = tokio::time::timeout(timeout, async {
            outbox::mark_published(&self.pool, &published).await?;
            outbox::mark_failed(&self.pool, &failures).await
        })
        .await;
        match marked {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "cannot record publish results"),
            Err(_) => tracing::warn!("timed out recording publish results"),
        }
        Ok(())
    }

    /// Decides a row's fate from its confirms; a channel error drops the connection.
    fn fate(
        &self,
        row: &OutboxRow,
        kitchen: Option<lapin::Result<Confirmation>>,
        raw: lapin::Result<Confirmation>,
    ) -> Result<Fate, PublishError> {
        if let Some(kitchen) = kitchen {
            match kitchen? {
                Confirmation::Ack(None) => {}
                Confirmation::Ack(Some(_returned)) => {
                    self.metrics.unroutable.fetch_add(1, Ordering::Relaxed);
                    return Ok(Fate::Failed(format!(
                        "unroutable: no kitchen queue is bound for store {:?}",
                        row.store_id
                    )));
                }
                Confirmation::Nack(_) | Confirmation::NotRequested => {
                    self.metrics.nacked.fetch_add(1, Ordering::Relaxed);
                    return Ok(Fate::Failed("kitchen publish nacked by the broker".into()));
                }
            }
        }
        match raw? {
            Confirmation::Ack(_) => Ok(Fate::Published),
            Confirmation::Nack(_) | Confirmation::NotRequested => {
                self.metrics.nacked.fetch_add(1, Ordering::Relaxed);
                Ok(Fate::Failed(
                    "raw event publish nacked by the broker".into(),
                ))
            }
        }
    }
}

/// The kitchen message of a row: its stored `OrderEvent` with the sequence number the row was
/// given in the same transaction (the payload is encoded before that number is known).
fn kitchen_payload(row: &OutboxRow) -> Option<Vec<u8>> {
    use prost::Message;
    let (payload, sequence) = (row.payload.as_ref()?, row.sequence?);
    match kitchen_proto::OrderEvent::decode(payload.as_slice()) {
        Ok(mut order_event) => {
            order_event.sequence = sequence as u64;
            Some(order_event.encode_to_vec())
        }
        Err(error) => {
            // Written by this relay a moment ago; never expected. Send it as stored.
            tracing::error!(event_id = %row.event_id, %error, "stored OrderEvent does not decode");
            Some(payload.clone())
        }
    }
}

/// Keeps, per store, the rows up to (not including) the first one still waiting out a retry
/// delay: a store's events are never published past one that has not gone out yet.
fn ready_in_store_order(rows: Vec<OutboxRow>, now: chrono::DateTime<Utc>) -> Vec<OutboxRow> {
    let mut blocked: HashSet<String> = HashSet::new();
    rows.into_iter()
        .filter(|row| {
            if blocked.contains(&row.store_id) {
                return false;
            }
            if row.next_attempt_at.is_some_and(|at| at > now) {
                blocked.insert(row.store_id.clone());
                return false;
            }
            true
        })
        .collect()
}

async fn with_timeout<T>(
    timeout: Duration,
    what: &'static str,
    future: impl Future<Output = Result<T, lapin::Error>>,
) -> Result<T, PublishError> {
    match tokio::time::timeout(timeout, future).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(PublishError::Timeout(timeout, what)),
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;

    fn row(id: i64, store_id: &str, retry_in_secs: Option<i64>) -> OutboxRow {
        let now = DateTime::from_timestamp(1_000_000, 0).expect("valid");
        OutboxRow {
            id,
            event_id: format!("e{id}"),
            store_id: store_id.into(),
            sequence: Some(id),
            event_type: "orders.new_order".into(),
            payload: Some(vec![]),
            raw: "{}".into(),
            created_at: now,
            attempts: 0,
            next_attempt_at: retry_in_secs.map(|s| now + chrono::Duration::seconds(s)),
        }
    }

    #[test]
    fn a_waiting_row_holds_back_the_rest_of_its_store_only() {
        let now = DateTime::from_timestamp(1_000_000, 0).expect("valid");
        let rows = vec![
            row(1, "a", None),
            row(2, "b", Some(30)),
            row(3, "a", Some(-5)),
            row(4, "b", None),
            row(5, "c", None),
        ];
        let ids: Vec<i64> = ready_in_store_order(rows, now)
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, [1, 3, 5]);
    }
}
