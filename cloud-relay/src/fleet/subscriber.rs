//! The fleet subscriber: the one relay holding the election lock subscribes to every box's
//! presence, telemetry and replies (QoS 1, persistent session, manual acks) and writes them into
//! PostgreSQL. A message is acknowledged only after the transaction holding it committed; when
//! PostgreSQL fails, nothing more is acknowledged, the MQTT connection is dropped and made again
//! (with backoff), and the broker sends the unacknowledged messages again.

use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use kitchen_daemon::backoff::Backoff;
use rumqttc::v5::{
    AsyncClient, Event,
    mqttbytes::{
        QoS,
        v5::{Filter, Packet, Publish},
    },
};
use sqlx::{Connection as _, PgConnection, PgPool};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    FleetMetrics, Topic, parse_topic, payload,
    store::{self, Applied, Change},
};
use crate::config::MqttConfig;

/// Advisory lock key held by the one relay that subscribes (per database).
pub const SUBSCRIBER_LOCK: i64 = 0x666c_6565_745f_7375; // "fleet_su"
/// The topics, all QoS 1.
pub const FILTERS: [&str; 3] = [
    "kitchens/+/presence",
    "kitchens/+/telemetry",
    "kitchens/+/replies/+",
];
/// The relay's session outlives a restart or a failover by this much (seconds).
const SESSION_EXPIRY_SECS: u32 = 24 * 3600;
/// Unacknowledged messages the broker may have in flight to the relay (MQTT 5 receive maximum).
const RECEIVE_MAXIMUM: u16 = 512;
/// Messages committed in one transaction at most.
const BATCH_MAX: usize = 256;
const LOCK_RETRY: Duration = Duration::from_secs(2);
const LOCK_CHECK_INTERVAL: Duration = Duration::from_secs(5);
const PRUNE_INTERVAL: Duration = Duration::from_secs(600);
/// One warning per kind per this long; the rest are counted in the metrics.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("lost the subscriber lock")]
    LostLock,
    #[error("postgresql failed under a batch: {0}")]
    Database(String),
    #[error("mqtt: {0}")]
    Mqtt(String),
    #[error("the broker refused the subscription: {0}")]
    Refused(String),
}

pub struct Subscriber {
    pool: PgPool,
    config: MqttConfig,
    /// Each transaction's limit (the pool's acquire timeout and the commit).
    database_timeout: Duration,
    metrics: Arc<FleetMetrics>,
    token: CancellationToken,
}

impl Subscriber {
    pub fn new(
        pool: PgPool,
        config: MqttConfig,
        database_timeout: Duration,
        metrics: Arc<FleetMetrics>,
        token: CancellationToken,
    ) -> Self {
        Self {
            pool,
            config,
            database_timeout,
            metrics,
            token,
        }
    }

    /// Runs until the token is cancelled: take the lock, connect, subscribe, write; reconnect
    /// with backoff (1 s → 30 s, jittered) after any failure.
    pub async fn run(self) {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        'lead: while let Some(mut lock) = self.lead().await {
            while !self.token.is_cancelled() {
                let mut subscribed = false;
                let result = self.session(&mut lock, &mut subscribed).await;
                self.metrics.connected.store(false, Ordering::Relaxed);
                // A session that subscribed resets the backoff, unless PostgreSQL failed under
                // it: then each redelivery would fail again, so the waits grow (to 30 s).
                if subscribed && !matches!(result, Err(SessionError::Database(_))) {
                    backoff.reset();
                }
                match result {
                    Ok(()) => break 'lead,
                    Err(SessionError::LostLock) => {
                        tracing::warn!("lost the fleet subscriber lock, taking it again");
                        continue 'lead;
                    }
                    Err(error @ SessionError::Database(_)) => {
                        self.metrics
                            .database_failures
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%error, "fleet: nothing acknowledged, reconnecting so the broker sends it again");
                    }
                    Err(error) => tracing::warn!(%error, "fleet: lost the broker, reconnecting"),
                }
                let delay = backoff.next_delay();
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = self.token.cancelled() => break 'lead,
                }
            }
            break;
        }
        tracing::info!("fleet subscriber stopped");
    }

    /// The session-level advisory lock making this relay the one subscriber, waited for as a
    /// standby. `None` when shutting down.
    async fn lead(&self) -> Option<PgConnection> {
        let mut announced = false;
        loop {
            let attempt = async {
                let mut connection = self.pool.acquire().await?.detach();
                let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(SUBSCRIBER_LOCK)
                    .fetch_one(&mut connection)
                    .await?;
                Ok::<_, sqlx::Error>(locked.then_some(connection))
            };
            match tokio::time::timeout(self.database_timeout * 2, attempt).await {
                Ok(Ok(Some(connection))) => {
                    self.metrics.standby.store(false, Ordering::Relaxed);
                    return Some(connection);
                }
                Ok(Ok(None)) => {
                    self.metrics.standby.store(true, Ordering::Relaxed);
                    if !announced {
                        tracing::info!("another relay subscribes to the fleet; standing by");
                        announced = true;
                    }
                }
                Ok(Err(error)) => tracing::warn!(%error, "cannot take the fleet subscriber lock"),
                Err(_) => tracing::warn!("timed out taking the fleet subscriber lock"),
            }
            tokio::select! {
                () = tokio::time::sleep(LOCK_RETRY) => {}
                () = self.token.cancelled() => return None,
            }
        }
    }

    /// One MQTT connection: subscribe after every CONNACK, hand each message to the writer,
    /// end on the first error (the caller reconnects). `Ok` only when shutting down.
    async fn session(
        &self,
        lock: &mut PgConnection,
        subscribed: &mut bool,
    ) -> Result<(), SessionError> {
        let mut options = super::options(&self.config, format!("{}-fleet", self.config.client_id))
            .map_err(|error| SessionError::Mqtt(error.to_string()))?;
        options
            .set_clean_start(false)
            .set_session_expiry_interval(Some(SESSION_EXPIRY_SECS))
            .set_manual_acks(true)
            .set_receive_maximum(Some(RECEIVE_MAXIMUM));
        let (client, mut eventloop) = AsyncClient::new(options, usize::from(RECEIVE_MAXIMUM) * 2);
        // Bounded, and larger than what the broker may have in flight: the poll loop never
        // waits on it for long.
        let (sender, receiver) = mpsc::channel(usize::from(RECEIVE_MAXIMUM) * 2);
        let writer = Writer {
            pool: self.pool.clone(),
            client: client.clone(),
            database_timeout: self.database_timeout,
            retention: Duration::from_secs(u64::from(self.config.telemetry_retention_hours) * 3600),
            metrics: self.metrics.clone(),
            logs: LogLimiter::default(),
        };
        let mut writing = tokio::spawn(writer.run(receiver));
        let poll_timeout = self.config.keep_alive() * 2 + super::CONNECT_TIMEOUT;
        let polling = async {
            loop {
                let event = tokio::time::timeout(poll_timeout, eventloop.poll())
                    .await
                    .map_err(|_| SessionError::Mqtt("timed out waiting for the broker".into()))?
                    .map_err(|error| SessionError::Mqtt(error.to_string()))?;
                match event {
                    Event::Incoming(Packet::ConnAck(connack)) => {
                        self.metrics.connects.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(
                            session_present = connack.session_present,
                            "fleet: connected to the broker, subscribing"
                        );
                        // rumqttc does not subscribe again by itself; a persistent session
                        // may keep the subscriptions, but a broker that lost it would not.
                        let filters = FILTERS.map(|path| Filter::new(path, QoS::AtLeastOnce));
                        client
                            .try_subscribe_many(filters)
                            .map_err(|error| SessionError::Mqtt(error.to_string()))?;
                    }
                    Event::Incoming(Packet::SubAck(suback)) => {
                        let refused: Vec<String> = suback
                            .return_codes
                            .iter()
                            .filter(|code| {
                                !matches!(
                                    code,
                                    rumqttc::v5::mqttbytes::v5::SubscribeReasonCode::Success(_)
                                )
                            })
                            .map(|code| format!("{code:?}"))
                            .collect();
                        if !refused.is_empty() {
                            return Err(SessionError::Refused(refused.join(", ")));
                        }
                        *subscribed = true;
                        self.metrics.connected.store(true, Ordering::Relaxed);
                        tracing::info!("fleet: subscribed to presence, telemetry and replies");
                    }
                    Event::Incoming(Packet::Publish(publish)) => {
                        sender
                            .send(publish)
                            .await
                            .map_err(|_| SessionError::Database("the writer stopped".into()))?;
                    }
                    Event::Incoming(Packet::Disconnect(disconnect)) => {
                        return Err(SessionError::Mqtt(format!(
                            "the broker disconnected: {:?}",
                            disconnect.reason_code
                        )));
                    }
                    _ => {}
                }
            }
        };
        let watching = watch_lock(lock, self.database_timeout);
        let result = tokio::select! {
            result = polling => result,
            () = watching => Err(SessionError::LostLock),
            written = &mut writing => Err(SessionError::Database(match written {
                Ok(Err(error)) => error,
                Ok(Ok(())) => "the writer stopped".into(),
                Err(error) => format!("the writer panicked: {error}"),
            })),
            () = self.token.cancelled() => Ok(()),
        };
        // The connection goes with the event loop: what was not acknowledged comes again. The
        // writer (its channel closed now) finishes the transaction in hand rather than being
        // cut off inside it; its acks go nowhere.
        drop(eventloop);
        drop(sender);
        if !writing.is_finished()
            && tokio::time::timeout(self.database_timeout * 2, &mut writing)
                .await
                .is_err()
        {
            writing.abort();
        }
        result
    }
}

/// Returns when the lock's connection no longer answers (so the lock is gone).
async fn watch_lock(lock: &mut PgConnection, timeout: Duration) {
    loop {
        tokio::time::sleep(LOCK_CHECK_INTERVAL).await;
        if !matches!(tokio::time::timeout(timeout, lock.ping()).await, Ok(Ok(()))) {
            return;
        }
    }
}

/// Takes the messages in order, commits them in batches and acknowledges each batch after its
/// commit. Returns an error (acknowledging nothing more) when PostgreSQL fails.
struct Writer {
    pool: PgPool,
    client: AsyncClient,
    database_timeout: Duration,
    retention: Duration,
    metrics: Arc<FleetMetrics>,
    logs: LogLimiter,
}

/// A message taken apart: what to write, or why it is only acknowledged.
enum Parsed {
    Change(&'static str, Change),
    Skip(&'static str, &'static str),
}

impl Writer {
    async fn run(mut self, mut receiver: mpsc::Receiver<Publish>) -> Result<(), String> {
        let mut pruned = Instant::now()
            .checked_sub(PRUNE_INTERVAL)
            .unwrap_or_else(Instant::now);
        loop {
            if pruned.elapsed() >= PRUNE_INTERVAL {
                pruned = Instant::now();
                match tokio::time::timeout(
                    self.database_timeout * 4,
                    store::prune(&self.pool, self.retention),
                )
                .await
                {
                    Ok(Ok(rows)) if rows > 0 => {
                        tracing::info!(rows, "fleet: pruned old telemetry");
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => tracing::warn!(%error, "fleet: cannot prune telemetry"),
                    Err(_) => tracing::warn!("fleet: timed out pruning telemetry"),
                }
            }
            let first = tokio::select! {
                first = receiver.recv() => first,
                () = tokio::time::sleep(PRUNE_INTERVAL) => continue,
            };
            let Some(first) = first else { return Ok(()) };
            let mut batch = vec![first];
            while batch.len() < BATCH_MAX {
                match receiver.try_recv() {
                    Ok(publish) => batch.push(publish),
                    Err(_) => break,
                }
            }
            self.write(&batch).await?;
            for publish in &batch {
                tokio::time::timeout(self.database_timeout, self.client.ack(publish))
                    .await
                    .map_err(|_| "timed out handing an acknowledgement to the client".to_owned())?
                    .map_err(|error| format!("cannot acknowledge: {error}"))?;
            }
        }
    }

    /// Commits what the batch changes; counts every message. `Err` when PostgreSQL failed.
    async fn write(&mut self, batch: &[Publish]) -> Result<(), String> {
        let parsed: Vec<Parsed> = batch.iter().map(|publish| self.parse(publish)).collect();
        let changes: Vec<Change> = parsed
            .iter()
            .filter_map(|parsed| match parsed {
                Parsed::Change(_, change) => Some(change.clone()),
                Parsed::Skip(..) => None,
            })
            .collect();
        let started = Instant::now();
        let applied = match self.commit(&changes).await {
            Ok(applied) => {
                self.metrics.commit_latency.observe(started.elapsed());
                applied
            }
            Err(Failure::Unavailable(error)) => return Err(error),
            Err(Failure::Statement(error)) => {
                // One bad message must not sink the rest: each alone, the bad one refused.
                self.logs.warn("batch", || {
                    tracing::warn!(%error, "fleet: a batch failed, writing its messages one by one");
                });
                let mut applied = Vec::with_capacity(changes.len());
                for change in &changes {
                    match self.commit(std::slice::from_ref(change)).await {
                        Ok(one) => applied.extend(one.into_iter().map(Some)),
                        Err(Failure::Unavailable(error)) => return Err(error),
                        Err(Failure::Statement(error)) => {
                            self.logs.warn("rejected", || {
                                tracing::warn!(%error, "fleet: PostgreSQL refused a message; acknowledged and dropped");
                            });
                            applied.push(None);
                        }
                    }
                }
                return {
                    self.count(&parsed, &applied);
                    Ok(())
                };
            }
        };
        let applied: Vec<Option<Applied>> = applied.into_iter().map(Some).collect();
        self.count(&parsed, &applied);
        Ok(())
    }

    async fn commit(&self, changes: &[Change]) -> Result<Vec<Applied>, Failure> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        match tokio::time::timeout(self.database_timeout * 2, store::apply(&self.pool, changes))
            .await
        {
            Ok(Ok(applied)) => Ok(applied),
            Ok(Err(error)) if crate::db::is_unavailable(&error) => {
                Err(Failure::Unavailable(error.to_string()))
            }
            Ok(Err(error)) => Err(Failure::Statement(error.to_string())),
            Err(_) => Err(Failure::Unavailable("timed out".into())),
        }
    }

    /// Counts each message's outcome (`applied` in the order of the changes).
    fn count(&mut self, parsed: &[Parsed], applied: &[Option<Applied>]) {
        let mut applied = applied.iter();
        for parsed in parsed {
            match parsed {
                Parsed::Skip(topic, outcome) => self.metrics.message(topic, outcome),
                Parsed::Change(topic, change) => {
                    let outcome = match applied.next().copied().flatten() {
                        Some(applied) => applied.label(),
                        None => "rejected",
                    };
                    if outcome == "unknown" {
                        let kitchen = match change {
                            Change::Presence { kitchen, .. }
                            | Change::Telemetry { kitchen, .. }
                            | Change::Reply { kitchen, .. } => kitchen.clone(),
                        };
                        self.logs.warn("unknown", || {
                            tracing::warn!(%kitchen, topic, "fleet: message of an unknown kitchen or command; acknowledged and dropped");
                        });
                    }
                    self.metrics.message(topic, outcome);
                }
            }
        }
    }

    fn parse(&mut self, publish: &Publish) -> Parsed {
        let topic_text = String::from_utf8_lossy(&publish.topic);
        let Some(topic) = parse_topic(&topic_text) else {
            self.logs.warn("topic", || {
                tracing::warn!(topic = %topic_text, "fleet: message on an unexpected topic; acknowledged and dropped");
            });
            return Parsed::Skip("other", "malformed");
        };
        let (label, result) = match topic {
            Topic::Presence { kitchen } => (
                "presence",
                payload::presence(&publish.payload).map(|presence| Change::Presence {
                    kitchen: kitchen.to_owned(),
                    presence,
                }),
            ),
            Topic::Telemetry { kitchen } => (
                "telemetry",
                payload::telemetry(&publish.payload).map(|telemetry| Change::Telemetry {
                    kitchen: kitchen.to_owned(),
                    telemetry,
                }),
            ),
            Topic::Reply { kitchen, id } => match uuid::Uuid::parse_str(id) {
                Ok(id) => (
                    "replies",
                    payload::reply(&publish.payload).map(|reply| Change::Reply {
                        kitchen: kitchen.to_owned(),
                        id,
                        reply,
                    }),
                ),
                Err(_) => return Parsed::Skip("replies", "unknown"),
            },
        };
        match result {
            Ok(change) => Parsed::Change(label, change),
            Err(error) => {
                self.logs.warn("payload", || {
                    tracing::warn!(topic = %topic_text, %error, "fleet: malformed message; acknowledged and dropped");
                });
                Parsed::Skip(label, "malformed")
            }
        }
    }
}

enum Failure {
    /// PostgreSQL is away or too slow: acknowledge nothing, reconnect.
    Unavailable(String),
    /// This statement failed (bad data): the message is refused.
    Statement(String),
}

/// At most one warning per kind per `LOG_EVERY`.
#[derive(Default)]
struct LogLimiter {
    last: Vec<(&'static str, Instant)>,
}

impl LogLimiter {
    fn warn(&mut self, kind: &'static str, log: impl FnOnce()) {
        let now = Instant::now();
        match self.last.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, last)) if now.duration_since(*last) < LOG_EVERY => {}
            Some((_, last)) => {
                *last = now;
                log();
            }
            None => {
                self.last.push((kind, now));
                log();
            }
        }
    }
}
