//! The kitchen feed: consumes this kitchen's durable quorum queue `edge.<KITCHEN_ID>`, applies
//! each `OrderEvent` through the store writer and acks only after its SQLite transaction
//! committed. Undecodable or invalid messages are rejected to the dead-letter queue. The queue,
//! its dead-lettering and its bindings (one per store) are the cloud's: `cloud-relay kitchen
//! add` declares them, and the box's broker user may only read that queue, so the feed declares
//! it passively and binds nothing. Reconnects with backoff 1 s → 60 s, jittered (also while the
//! queue does not exist yet); every network await has a timeout.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use futures_util::{FutureExt, StreamExt};
use kitchen_daemon::backoff::Backoff;
use kitchen_proto::OrderEvent;
use lapin::{
    Channel, Connection, ConnectionProperties,
    message::Delivery,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
        BasicRejectOptions, QueueDeclareOptions,
    },
    protocol::{AMQPErrorKind, AMQPSoftError},
    types::FieldTable,
};
use prost::Message;
use tokio_util::sync::CancellationToken;

use crate::{
    status::{FeedStats, SyncStats},
    store::Applied,
    writer::{StoreWriter, WriteError},
};

/// Where and how to consume.
#[derive(Debug, Clone)]
pub struct FeedConfig {
    pub amqp_url: String,
    pub kitchen_id: String,
    /// Unacknowledged deliveries in flight.
    pub prefetch: u16,
    /// Bound on each connect, declare and ack.
    pub timeout: Duration,
    /// PEM of the CA bundle an `amqps` broker's certificate may chain to, besides the web PKI
    /// roots (`ca_file`).
    pub ca_pem: Option<String>,
}

impl FeedConfig {
    pub fn queue(&self) -> String {
        kitchen_proto::edge_queue(&self.kitchen_id)
    }

    pub fn dead_letter_exchange(&self) -> String {
        kitchen_proto::edge_dead_letter_exchange(&self.kitchen_id)
    }

    pub fn dead_letter_queue(&self) -> String {
        kitchen_proto::edge_dead_letter_queue(&self.kitchen_id)
    }
}

#[derive(Debug, thiserror::Error)]
enum FeedError {
    #[error("amqp: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("queue {queue} does not exist: provision the kitchen with `cloud-relay kitchen add`")]
    QueueMissing { queue: String },
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    #[error("the consumer ended")]
    ConsumerEnded,
    #[error("ack refused: the channel is gone")]
    AckRefused,
    #[error("the store writer stopped")]
    StoreGone,
}

pub struct Feed {
    config: FeedConfig,
    writer: StoreWriter,
    stats: Arc<FeedStats>,
    token: CancellationToken,
    /// The sync, whose recovery on a new card comes before the queue (`hold_for`).
    hold: Option<Arc<SyncStats>>,
}

impl Feed {
    pub fn new(
        config: FeedConfig,
        writer: StoreWriter,
        stats: Arc<FeedStats>,
        token: CancellationToken,
    ) -> Self {
        Self {
            config,
            writer,
            stats,
            token,
            hold: None,
        }
    }

    /// On a new card, consumes only once the sync has recovered the kitchen's open orders (or
    /// found PostgreSQL out of reach): what the queue still holds then applies on top of them,
    /// never before (docs/sync.md, "A new card").
    pub fn hold_for(mut self, sync: Arc<SyncStats>) -> Self {
        self.hold = Some(sync);
        self
    }

    /// Consumes until cancelled; on any broker trouble reconnects with backoff. The kitchen
    /// keeps working from SQLite meanwhile.
    pub async fn run(self) {
        if let Some(sync) = &self.hold {
            while sync.recovery_blocks_ready() {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(50)) => {}
                    () = self.token.cancelled() => return,
                }
            }
        }
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        while !self.token.is_cancelled() {
            let connected = tokio::select! {
                connected = self.connect() => connected,
                () = self.token.cancelled() => break,
            };
            match connected {
                Ok((connection, channel)) => {
                    backoff.reset();
                    self.stats.connected.store(true, Ordering::Relaxed);
                    tracing::info!(queue = %self.config.queue(), "kitchen feed connected");
                    let result = self.consume(&channel).await;
                    self.stats.connected.store(false, Ordering::Relaxed);
                    let _ = tokio::time::timeout(
                        self.config.timeout,
                        connection.close(200, "edge agent closing".into()),
                    )
                    .await;
                    match result {
                        Ok(()) => break,
                        Err(error) => tracing::warn!(%error, "kitchen feed lost, reconnecting"),
                    }
                }
                Err(error @ FeedError::QueueMissing { .. }) => {
                    tracing::error!(%error, "the kitchen feed cannot start");
                }
                Err(error) => tracing::warn!(%error, "cannot reach the kitchen feed"),
            }
            let delay = backoff.next_delay();
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.token.cancelled() => break,
            }
        }
        tracing::info!("kitchen feed stopped");
    }

    async fn connect(&self) -> Result<(Connection, Channel), FeedError> {
        let timeout = self.config.timeout;
        let connection = with_timeout(
            timeout,
            "connect",
            connect(
                &self.config.amqp_url,
                self.config.ca_pem.clone(),
                ConnectionProperties::default()
                    .with_connection_name(format!("edge-agent {}", self.config.kitchen_id).into()),
            ),
        )
        .await?;
        let channel = with_timeout(timeout, "channel", connection.create_channel()).await?;
        if let Err(error) = declare(&channel, &self.config).await {
            // Not left to a drop: a box retrying every minute must not pile up connections.
            let _ = tokio::time::timeout(timeout, connection.close(200, "no queue".into())).await;
            return Err(error);
        }
        with_timeout(
            timeout,
            "basic.qos",
            channel.basic_qos(self.config.prefetch, BasicQosOptions::default()),
        )
        .await?;
        Ok((connection, channel))
    }

    async fn consume(&self, channel: &Channel) -> Result<(), FeedError> {
        let mut consumer = with_timeout(
            self.config.timeout,
            "basic.consume",
            channel.basic_consume(
                self.config.queue().as_str().into(),
                format!("edge-agent-{}", self.config.kitchen_id)
                    .as_str()
                    .into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await?;
        loop {
            let delivery = tokio::select! {
                delivery = consumer.next() => delivery,
                () = self.token.cancelled() => return Ok(()),
            };
            // Everything the broker has already handed over goes into the same transaction:
            // one commit (one fsync) for the lot under a rush, none of it acked before.
            let mut deliveries = vec![delivery.ok_or(FeedError::ConsumerEnded)??];
            while deliveries.len() < usize::from(self.config.prefetch.max(1)) {
                match consumer.next().now_or_never() {
                    Some(Some(delivery)) => deliveries.push(delivery?),
                    Some(None) => return Err(FeedError::ConsumerEnded),
                    None => break,
                }
            }
            self.handle(deliveries).await?;
        }
    }

    /// Applies deliveries and settles them: invalid ones rejected to the dead-letter queue, the
    /// rest applied in one transaction and acked after its commit.
    async fn handle(&self, deliveries: Vec<Delivery>) -> Result<(), FeedError> {
        let timeout = self.config.timeout;
        let mut valid = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            match decode(&delivery.data) {
                Ok(order_event) => valid.push((delivery, order_event)),
                Err(reason) => {
                    self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%reason, routing_key = %delivery.routing_key,
                        "invalid message, dead-lettering it");
                    let settled = with_timeout(
                        timeout,
                        "basic.reject",
                        delivery.reject(BasicRejectOptions { requeue: false }),
                    )
                    .await?;
                    if !settled {
                        return Err(FeedError::AckRefused);
                    }
                }
            }
        }
        self.apply(valid).await
    }

    /// Applies decoded deliveries in one transaction, acks them after the commit; if that
    /// fails for several, each is tried alone so one bad event cannot hold back the others.
    /// On a full disk the deliveries are held, unacknowledged and in order, and the write is
    /// tried again every second until there is room: returned to the queue they would come
    /// back behind later ones and spend the queue's delivery limit, which is for messages that
    /// can never be stored — a full disk is no fault of theirs.
    async fn apply(&self, valid: Vec<(Delivery, OrderEvent)>) -> Result<(), FeedError> {
        let timeout = self.config.timeout;
        if valid.is_empty() {
            return Ok(());
        }
        let events: Vec<OrderEvent> = valid.iter().map(|(_, event)| event.clone()).collect();
        let mut full_since: Option<std::time::Instant> = None;
        let written = loop {
            match self.writer.apply_all(events.clone()).await {
                Err(WriteError::Store(error)) if error.is_disk_full() => {
                    let since = *full_since.get_or_insert_with(std::time::Instant::now);
                    if since.elapsed() < Duration::from_millis(1500)
                        || since.elapsed().as_secs().is_multiple_of(60)
                    {
                        tracing::error!(%error, events = valid.len(),
                            held_for_s = since.elapsed().as_secs(),
                            "the disk is full: holding the events unacknowledged until there is room");
                    }
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        // Unacknowledged: the broker hands them out again after the close.
                        () = self.token.cancelled() => return Ok(()),
                    }
                }
                other => break other,
            }
        };
        if let Some(since) = full_since {
            tracing::warn!(
                held_for_s = since.elapsed().as_secs(),
                "the disk has room again"
            );
        }
        match written {
            Ok(applied) => {
                for ((delivery, order_event), applied) in valid.into_iter().zip(applied) {
                    match &applied {
                        Applied::Duplicate => {
                            self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                        }
                        Applied::Applied { gap, .. } => {
                            self.stats.applied.fetch_add(1, Ordering::Relaxed);
                            if let Some((from, to)) = gap {
                                self.stats.gaps.fetch_add(1, Ordering::Relaxed);
                                tracing::warn!(store_id = %order_event.store_id, from, to,
                                    "sequence gap: events missed from this store");
                            }
                        }
                    }
                    // Committed: now, and only now, the broker may forget it.
                    let acked = with_timeout(
                        timeout,
                        "basic.ack",
                        delivery.ack(BasicAckOptions::default()),
                    )
                    .await?;
                    if !acked {
                        // Stored already; the redelivery will be a duplicate.
                        return Err(FeedError::AckRefused);
                    }
                }
                Ok(())
            }
            Err(WriteError::Store(error)) if valid.len() > 1 => {
                tracing::warn!(%error, events = valid.len(),
                    "cannot store the events together, trying each alone");
                for one in valid {
                    Box::pin(self.apply(vec![one])).await?;
                }
                Ok(())
            }
            Err(WriteError::Store(error)) => {
                tracing::error!(%error, events = valid.len(),
                    "cannot store events, returning them to the queue");
                for (delivery, _) in valid {
                    let _ = with_timeout(
                        timeout,
                        "basic.nack",
                        delivery.nack(BasicNackOptions {
                            requeue: true,
                            ..Default::default()
                        }),
                    )
                    .await;
                }
                // Give a failing disk a moment instead of spinning on redeliveries; the
                // quorum queue's delivery limit dead-letters a message that never fits.
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = self.token.cancelled() => {}
                }
                Ok(())
            }
            Err(WriteError::Gone) => Err(FeedError::StoreGone),
        }
    }
}

/// Checks that the kitchen's queue exists: a passive declare, which needs no configure
/// permission (the box has none) and leaves the queue's arguments and bindings to the cloud.
async fn declare(channel: &Channel, config: &FeedConfig) -> Result<(), FeedError> {
    let queue = config.queue();
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let declared = with_timeout(
        config.timeout,
        "queue.declare",
        channel.queue_declare(queue.as_str().into(), passive, FieldTable::default()),
    )
    .await;
    match declared {
        Err(FeedError::Amqp(error)) if is_not_found(&error) => {
            Err(FeedError::QueueMissing { queue })
        }
        other => other.map(drop),
    }
}

/// Whether the broker answered `404 NOT_FOUND`.
fn is_not_found(error: &lapin::Error) -> bool {
    matches!(error.kind(), lapin::ErrorKind::ProtocolError(amqp)
        if matches!(amqp.kind(), AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND)))
}

/// Connects to `url`; over `amqps` the broker's certificate must chain to the web PKI roots
/// or to a certificate of `ca_pem`, and name the URL's host (lapin's rustls on ring: the
/// bundle is added to the roots). The TLS rule (`amqps` off the box) was checked with the
/// config: this never falls back to plaintext.
async fn connect(
    url: &str,
    ca_pem: Option<String>,
    properties: ConnectionProperties,
) -> Result<Connection, lapin::Error> {
    let tls = lapin::tcp::OwnedTLSConfig {
        identity: None,
        cert_chain: ca_pem,
    };
    let runtime = lapin::runtime::default_runtime()?;
    match small_frames(url) {
        Some(uri) => Connection::connect_uri_with_config(uri, properties, tls, runtime).await,
        // Not a URL lapin reads: its own connect says why.
        None => Connection::connect_with_config(url, properties, tls, runtime).await,
    }
}

/// The largest AMQP frame the agent asks for when `amqp_url` names none (`?frame_max=`).
/// lapin keeps a send and a receive buffer of 32 frames each, zero-filled: at RabbitMQ's
/// default 128 KiB frames that is 8 MiB of the box's memory for one connection; at 16 KiB,
/// 1 MiB. An order is a few KiB; a larger message travels in several frames.
pub const FRAME_MAX: u32 = 16_384;

/// `url` with `frame_max` set to [`FRAME_MAX`] unless it sets one; `None` if it does not parse.
fn small_frames(url: &str) -> Option<lapin::uri::AMQPUri> {
    let mut uri: lapin::uri::AMQPUri = url.parse().ok()?;
    uri.query.frame_max.get_or_insert(FRAME_MAX);
    Some(uri)
}

/// A message the agent can apply, or why not.
fn decode(data: &[u8]) -> Result<OrderEvent, String> {
    let order_event = OrderEvent::decode(data)
        .map_err(|error| format!("not a kitchen.v1.OrderEvent: {error}"))?;
    if order_event.event_id.is_empty() {
        return Err("OrderEvent without event_id".into());
    }
    if order_event.order_id.is_empty() {
        return Err(format!(
            "OrderEvent {} without order_id",
            order_event.event_id
        ));
    }
    Ok(order_event)
}

async fn with_timeout<T>(
    timeout: Duration,
    what: &'static str,
    future: impl Future<Output = Result<T, lapin::Error>>,
) -> Result<T, FeedError> {
    match tokio::time::timeout(timeout, future).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(FeedError::Timeout(what)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_asks_for_small_frames_unless_the_url_names_a_size() {
        let uri = small_frames("amqps://box:pw@broker.example:5671/%2f").expect("parses");
        assert_eq!(uri.query.frame_max, Some(FRAME_MAX));
        assert_eq!(uri.authority.host, "broker.example");
        assert_eq!(uri.authority.userinfo.username, "box");
        let uri =
            small_frames("amqp://127.0.0.1/%2f?frame_max=65536&heartbeat=10").expect("parses");
        assert_eq!(uri.query.frame_max, Some(65_536));
        assert_eq!(uri.query.heartbeat, Some(10));
        assert!(small_frames("not a url").is_none());
    }

    #[test]
    fn a_missing_queue_says_how_to_make_it() {
        let error = FeedError::QueueMissing {
            queue: "edge.bk-01".into(),
        };
        assert_eq!(
            error.to_string(),
            "queue edge.bk-01 does not exist: provision the kitchen with `cloud-relay kitchen add`"
        );
    }

    #[test]
    fn only_complete_order_events_are_accepted() {
        let valid = OrderEvent {
            event_id: "e1".into(),
            order_id: "o1".into(),
            ..OrderEvent::default()
        };
        assert_eq!(decode(&valid.encode_to_vec()), Ok(valid));
        assert!(
            decode(b"\xff\xff\xff")
                .expect_err("garbage")
                .starts_with("not a kitchen.v1.OrderEvent")
        );
        let no_id = OrderEvent {
            order_id: "o1".into(),
            ..OrderEvent::default()
        };
        assert_eq!(
            decode(&no_id.encode_to_vec()),
            Err("OrderEvent without event_id".into())
        );
    }
}
