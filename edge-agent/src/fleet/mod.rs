//! The fleet channel (docs/fleet.md): MQTT 5 to head office — presence (retained, with a last
//! will), telemetry (retained, every 30 s and at once on a change that matters) and commands
//! (QoS 1, acknowledged only once run and answered).
//!
//! Three tasks: the **poller** owns the rumqttc event loop and does nothing but poll it (rumqttc
//! reconnects only when polled, with no backoff of its own: the poller waits 1 s → 30 s,
//! jittered, between attempts), tell the others the link came up and hand them the commands;
//! the **reporter** publishes presence, subscribes and sends telemetry; the **runner** runs the
//! commands and answers them. Publishing never happens on the poller (a full request channel
//! would wait on the very task that drains it) — except the last presence at shutdown, which
//! the poller puts straight into the event loop's own queue once the other tasks are done.
//!
//! The kitchen never waits on any of it: the tasks read the shared state, read the store
//! through the read pool and ask the sync for work through its kick.

mod commands;
mod telemetry;

pub use commands::{Command, Memory, REMEMBERED, parse, reply, topic_safe};
pub use telemetry::{Fingerprint, Identity, StoreCounts, System, document};

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use kitchen_daemon::{
    backoff::{Backoff, Spread},
    clock::now_ms,
};
use rumqttc::{
    NetworkOptions, TlsConfiguration, Transport,
    v5::{
        AsyncClient, Event, EventLoop, MqttOptions, Request,
        mqttbytes::{
            QoS,
            v5::{LastWill, Packet, Publish, PublishProperties},
        },
    },
};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::{
    config::MqttTarget,
    status::Live,
    store::{Readers, Store},
};

/// Keep-alive: the broker declares the box lost after 1.5 × this without a packet.
const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// The session (subscription, queued commands) outlives a disconnect by a week.
const SESSION_EXPIRY_SECS: u32 = 7 * 24 * 3600;
/// Largest packet taken from the broker (rumqttc's default is 10 KiB).
const MAX_PACKET: u32 = 1024 * 1024;
/// Commands the broker sends before the box acknowledges one (MQTT 5 receive maximum); the
/// command queue holds more, so the poller never waits on the runner.
const RECEIVE_MAXIMUM: u16 = 16;
const COMMAND_QUEUE: usize = 64;
/// rumqttc's request channel.
const REQUESTS: usize = 64;
/// Bound on queueing a request (a reply, an ack, presence, a subscription).
const QUEUE_TIMEOUT: Duration = Duration::from_secs(5);
const TELEMETRY_EVERY: Duration = Duration::from_secs(30);
/// The offline presence's acknowledgement at shutdown is waited for this long.
const STOP_GRACE: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What the fleet task needs besides the shared state.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    pub target: MqttTarget,
    /// `mqtts://`: the TLS settings (the web PKI roots and the CA bundle).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub kitchen_id: String,
    pub identity: Identity,
    /// The store's directory: its file system is the telemetry's `disk`.
    pub data_dir: PathBuf,
    /// When the agent started (`uptime_s`).
    pub started: Instant,
}

/// The topics of one kitchen.
#[derive(Debug, Clone)]
struct Topics {
    presence: String,
    telemetry: String,
    commands: String,
    command_prefix: String,
    replies: String,
}

impl Topics {
    fn of(kitchen_id: &str) -> Self {
        let base = format!("kitchens/{kitchen_id}");
        Self {
            presence: format!("{base}/presence"),
            telemetry: format!("{base}/telemetry"),
            commands: format!("{base}/commands/+"),
            command_prefix: format!("{base}/commands/"),
            replies: format!("{base}/replies/"),
        }
    }
}

/// The boot id (`/proc/sys/kernel/random/boot_id`): a new one means the box rebooted.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|id| id.trim().to_owned())
        .unwrap_or_default()
}

pub struct Fleet {
    pub config: FleetConfig,
    pub live: Live,
    pub readers: Arc<Readers>,
    pub token: CancellationToken,
}

impl Fleet {
    /// Runs until the token is cancelled, then says the box stopped and disconnects cleanly.
    pub async fn run(self) {
        let Self {
            config,
            live,
            readers,
            token,
        } = self;
        live.mqtt
            .configured
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let topics = Topics::of(&config.kitchen_id);
        let (client, eventloop) = AsyncClient::new(options(&config, &topics), REQUESTS);
        let (connected_tx, connected_rx) = watch::channel(0u64);
        let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE);
        // The reporter and the runner stop first, so nothing is published after the offline
        // presence.
        let workers = token.child_token();
        let reporter = tokio::spawn(report(
            client.clone(),
            topics.clone(),
            config.clone(),
            live.clone(),
            readers.clone(),
            connected_rx,
            workers.clone(),
        ));
        let runner = tokio::spawn(answer(
            client,
            topics.clone(),
            config.started,
            live.clone(),
            readers,
            commands_rx,
            workers.clone(),
        ));
        let poller = Poller {
            eventloop,
            topics,
            live,
            connected: connected_tx,
            commands: commands_tx,
        };
        poller
            .run(&config, token, async move {
                workers.cancel();
                let _ = tokio::time::timeout(QUEUE_TIMEOUT, reporter).await;
                let _ = tokio::time::timeout(QUEUE_TIMEOUT, runner).await;
            })
            .await;
    }
}

fn options(config: &FleetConfig, topics: &Topics) -> MqttOptions {
    let target = &config.target;
    let mut options = MqttOptions::new(
        format!("edge-{}", config.kitchen_id),
        target.host.clone(),
        target.port,
    );
    let will = json!({
        "state": "offline",
        "reason": "lost",
        "version": config.identity.version,
        "boot_id": config.identity.boot_id,
    });
    // rumqttc leaves Nagle on: a reply would wait ~40 ms on the broker's delayed ACK.
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    options.set_network_options(network);
    if let Some(tls) = &config.tls {
        // rumqttc verifies the certificate against the broker's host name as the URL gives it.
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            tls.clone(),
        )));
    }
    options
        .set_keep_alive(KEEP_ALIVE)
        .set_clean_start(false)
        .set_session_expiry_interval(Some(SESSION_EXPIRY_SECS))
        .set_manual_acks(true)
        .set_max_packet_size(Some(MAX_PACKET))
        .set_receive_maximum(Some(RECEIVE_MAXIMUM))
        .set_connection_timeout(5)
        .set_credentials(
            target.username.clone(),
            target.password.clone().unwrap_or_default(),
        )
        .set_last_will(LastWill::new(
            topics.presence.clone(),
            will.to_string(),
            QoS::AtLeastOnce,
            true,
            None,
        ));
    options
}

/// The poller: the event loop, and only that.
struct Poller {
    eventloop: EventLoop,
    topics: Topics,
    live: Live,
    connected: watch::Sender<u64>,
    commands: mpsc::Sender<Publish>,
}

impl Poller {
    async fn run(
        mut self,
        config: &FleetConfig,
        token: CancellationToken,
        stop_workers: impl std::future::Future<Output = ()>,
    ) {
        let mut backoff =
            Backoff::new(Duration::from_secs(1), MAX_BACKOFF).with_spread(Spread::UP_TO_BASE);
        loop {
            let event = tokio::select! {
                event = self.eventloop.poll() => event,
                () = token.cancelled() => break,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    backoff.reset();
                    self.live.mqtt.up(now_ms());
                    tracing::info!(
                        session_present = ack.session_present,
                        "fleet channel connected"
                    );
                    self.connected.send_modify(|generation| *generation += 1);
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => self.hand_over(publish),
                Ok(_) => {}
                Err(error) => {
                    let error = error.to_string();
                    if self.live.mqtt.down(error.clone(), now_ms()) {
                        tracing::warn!(%error, "fleet channel lost; the kitchen carries on");
                    } else {
                        tracing::debug!(%error, "fleet channel still down");
                    }
                    tokio::select! {
                        () = tokio::time::sleep(backoff.next_delay()) => {}
                        () = token.cancelled() => break,
                    }
                }
            }
        }
        stop_workers.await;
        self.say_stopped(config).await;
    }

    /// A command goes to the runner; anything else (nothing else is subscribed) is ignored.
    fn hand_over(&self, publish: Publish) {
        if !publish
            .topic
            .starts_with(self.topics.command_prefix.as_bytes())
        {
            return;
        }
        // Never waits: the broker sends at most RECEIVE_MAXIMUM unacknowledged commands and the
        // queue holds more. One that does not fit is not acknowledged, so it comes again.
        if self.commands.try_send(publish).is_err() {
            self.live
                .mqtt
                .commands_dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!("fleet command queue full: command left for redelivery");
        }
    }

    /// Publishes the offline presence, waits (bounded) for the broker to take it, then
    /// disconnects normally so the will is not published.
    async fn say_stopped(mut self, config: &FleetConfig) {
        if !self
            .live
            .mqtt
            .connected
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            // The broker publishes the will (or did): nothing to add.
            return;
        }
        let payload = json!({
            "state": "offline",
            "reason": "stopped",
            "since": now_ms(),
            "version": config.identity.version,
            "boot_id": config.identity.boot_id,
        });
        let mut offline = Publish::new(
            self.topics.presence.clone(),
            QoS::AtLeastOnce,
            payload.to_string(),
            None,
        );
        offline.retain = true;
        // The event loop's own queue, served before its request channel: no channel to wait on.
        self.eventloop.pending.push_front(Request::Publish(offline));
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        let mut pkid = None;
        let acknowledged = loop {
            match tokio::time::timeout_at(deadline, self.eventloop.poll()).await {
                Ok(Ok(Event::Outgoing(rumqttc::Outgoing::Publish(id)))) if pkid.is_none() => {
                    pkid = Some(id);
                }
                Ok(Ok(Event::Incoming(Packet::PubAck(ack)))) if Some(ack.pkid) == pkid => {
                    break true;
                }
                Ok(Ok(_)) => {}
                Ok(Err(_)) | Err(_) => break false,
            }
        };
        if !acknowledged {
            tracing::warn!("the broker did not take the offline presence in time");
            return;
        }
        self.eventloop.pending.push_front(Request::Disconnect);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while let Ok(Ok(event)) = tokio::time::timeout_at(deadline, self.eventloop.poll()).await {
            if event == Event::Outgoing(rumqttc::Outgoing::Disconnect) {
                break;
            }
        }
        self.live.mqtt.down("stopped".into(), now_ms());
        tracing::info!("fleet channel closed");
    }
}

/// The reporter: on every connect presence and the subscription, then telemetry every 30 s and
/// at once (at most once a second) on a change that matters.
async fn report(
    client: AsyncClient,
    topics: Topics,
    config: FleetConfig,
    live: Live,
    readers: Arc<Readers>,
    mut connected: watch::Receiver<u64>,
    token: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sent: Option<(Fingerprint, tokio::time::Instant)> = None;
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            changed = connected.changed() => {
                if changed.is_err() {
                    return;
                }
                announce(&client, &topics, &config).await;
                sent = None;
            }
            _ = tick.tick() => {}
        }
        if !live
            .mqtt
            .connected
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            continue;
        }
        let fingerprint = Fingerprint::of(&live);
        let due = sent
            .as_ref()
            .is_none_or(|(last, at)| *last != fingerprint || at.elapsed() >= TELEMETRY_EVERY);
        if due {
            match telemetry(&live, &config, &readers).await {
                Ok(document) => {
                    // QoS 0: a copy that does not fit now is replaced by the next one.
                    let _ = client.try_publish(
                        topics.telemetry.clone(),
                        QoS::AtMostOnce,
                        true,
                        document.to_string(),
                    );
                }
                Err(error) => tracing::warn!(%error, "telemetry: cannot read the store"),
            }
            sent = Some((fingerprint, tokio::time::Instant::now()));
        }
    }
}

/// Presence online (retained) and the command subscription, after each connect (a resumed
/// session keeps the subscription, but subscribing again costs nothing and covers a lost one).
async fn announce(client: &AsyncClient, topics: &Topics, config: &FleetConfig) {
    let presence = json!({
        "state": "online",
        "since": now_ms(),
        "version": config.identity.version,
        "boot_id": config.identity.boot_id,
    });
    let publish = client.publish(
        topics.presence.clone(),
        QoS::AtLeastOnce,
        true,
        presence.to_string(),
    );
    if !matches!(
        tokio::time::timeout(QUEUE_TIMEOUT, publish).await,
        Ok(Ok(()))
    ) {
        tracing::warn!("fleet channel: presence not queued");
    }
    let subscribe = client.subscribe(topics.commands.clone(), QoS::AtLeastOnce);
    if !matches!(
        tokio::time::timeout(QUEUE_TIMEOUT, subscribe).await,
        Ok(Ok(()))
    ) {
        tracing::warn!("fleet channel: command subscription not queued");
    }
}

/// The telemetry document now.
async fn telemetry(
    live: &Live,
    config: &FleetConfig,
    readers: &Readers,
) -> Result<serde_json::Value, crate::store::StoreError> {
    let now = now_ms();
    let pushed = live.sync.pushed();
    let counts = readers
        .with(move |store: &Store| {
            let (backlog, oldest_unsynced_ms) = store.sync_backlog(pushed)?;
            let (open_orders, late_orders) = store.order_load(now)?;
            Ok(StoreCounts {
                backlog,
                oldest_unsynced_ms,
                gaps: store.sequence_gaps()?.len(),
                open_orders,
                late_orders,
            })
        })
        .await?;
    let data_dir = config.data_dir.clone();
    let clock = live.clock.synchronised();
    let system = tokio::task::spawn_blocking(move || System::read(&data_dir, clock))
        .await
        .unwrap_or_default();
    Ok(document(
        live,
        &config.identity,
        &counts,
        &system,
        now,
        config.started.elapsed().as_secs(),
    ))
}

/// The runner: each command run once, answered, then acknowledged.
async fn answer(
    client: AsyncClient,
    topics: Topics,
    started: Instant,
    live: Live,
    readers: Arc<Readers>,
    mut commands: mpsc::Receiver<Publish>,
    token: CancellationToken,
) {
    let mut memory = Memory::default();
    let context = commands::Context {
        live: &live,
        readers: &readers,
        started,
    };
    loop {
        let publish = tokio::select! {
            () = token.cancelled() => return,
            publish = commands.recv() => match publish {
                Some(publish) => publish,
                None => return,
            },
        };
        let answered = tokio::select! {
            () = token.cancelled() => return,
            answered = handle(&client, &topics, &mut memory, &context, &publish) => answered,
        };
        if answered {
            let ack = client.ack(&publish);
            if !matches!(tokio::time::timeout(QUEUE_TIMEOUT, ack).await, Ok(Ok(()))) {
                tracing::warn!("fleet command: acknowledgement not queued; it will come again");
            }
        }
    }
}

/// Runs (or recalls) one command and queues its reply; whether it may be acknowledged.
async fn handle(
    client: &AsyncClient,
    topics: &Topics,
    memory: &mut Memory,
    context: &commands::Context<'_>,
    publish: &Publish,
) -> bool {
    use std::sync::atomic::Ordering::Relaxed;
    let mqtt = &context.live.mqtt;
    let name = String::from_utf8_lossy(&publish.topic)
        .strip_prefix(&topics.command_prefix)
        .unwrap_or_default()
        .to_owned();
    let properties = publish.properties.clone().unwrap_or_default();
    let parsed = parse(&name, &publish.payload);
    let response_topic = properties.response_topic.filter(|t| !t.is_empty());
    let Some(command) = parsed.filter(|c| response_topic.is_some() || topic_safe(&c.id)) else {
        mqtt.commands_dropped.fetch_add(1, Relaxed);
        tracing::warn!(command = %name, "fleet command without a usable id: dropped");
        return true;
    };
    let reply_topic = response_topic.unwrap_or_else(|| format!("{}{}", topics.replies, command.id));
    let document = match memory.get(&command.id) {
        Some(reply) => {
            mqtt.commands_repeated.fetch_add(1, Relaxed);
            tracing::info!(id = %command.id, command = %name, "fleet command delivered again: answered from memory");
            reply.clone()
        }
        None => {
            let outcome = match &command.malformed {
                Some(reason) => Err(reason.clone()),
                None => commands::run(&command.name, context).await,
            };
            match &outcome {
                Ok(_) => mqtt.commands_ok.fetch_add(1, Relaxed),
                Err(_) => mqtt.commands_failed.fetch_add(1, Relaxed),
            };
            if let Err(error) = &outcome {
                tracing::info!(id = %command.id, command = %name, %error, "fleet command failed");
            }
            let document = reply(&command, &outcome, now_ms());
            memory.remember(command.id.clone(), document.clone());
            document
        }
    };
    let reply_properties = PublishProperties {
        correlation_data: properties.correlation_data,
        ..PublishProperties::default()
    };
    let queued = client.publish_with_properties(
        reply_topic,
        QoS::AtLeastOnce,
        false,
        document.to_string(),
        reply_properties,
    );
    match tokio::time::timeout(QUEUE_TIMEOUT, queued).await {
        Ok(Ok(())) => true,
        _ => {
            tracing::warn!(id = %command.id, "fleet reply not queued; the command will come again");
            false
        }
    }
}
