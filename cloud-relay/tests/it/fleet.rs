//! The fleet channel against a real Mosquitto of the test's own (the shipped ACL) and the real
//! PostgreSQL: simulated boxes are rumqttc v5 clients logged in as their kitchens.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use kitchen_testkit::mqtt::{Mosquitto, RELAY_PASSWORD, RELAY_USER};
use rumqttc::v5::{
    AsyncClient, Event, MqttOptions,
    mqttbytes::{
        QoS,
        v5::{LastWill, Packet, PubAckReason, Publish, SubscribeReasonCode},
    },
};
use secrecy::SecretString;
use tokio::task::JoinHandle;

use super::harness::*;

const WAIT: Duration = Duration::from_secs(15);

/// What a simulated client has seen.
#[derive(Default)]
struct Seen {
    publishes: Vec<Publish>,
    pubacks: Vec<(u16, PubAckReason)>,
    subacks: Vec<Vec<SubscribeReasonCode>>,
    connacks: usize,
}

/// A simulated box (or a relay-user watcher): its client and the task polling its event loop.
struct Sim {
    client: AsyncClient,
    seen: Arc<Mutex<Seen>>,
    task: JoinHandle<()>,
}

impl Sim {
    async fn connect(
        port: u16,
        user: &str,
        password: &str,
        client_id: &str,
        configure: impl FnOnce(&mut MqttOptions),
    ) -> Self {
        let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
        options
            .set_credentials(user, password)
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(Some(1024 * 1024));
        configure(&mut options);
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let sink = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(packet)) => {
                        let mut seen = sink.lock().expect("lock");
                        match packet {
                            Packet::Publish(publish) => seen.publishes.push(publish),
                            Packet::PubAck(ack) => seen.pubacks.push((ack.pkid, ack.reason)),
                            Packet::SubAck(ack) => seen.subacks.push(ack.return_codes),
                            Packet::ConnAck(_) => seen.connacks += 1,
                            _ => {}
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        let sim = Self { client, seen, task };
        eventually("the client connects", WAIT, || async {
            (sim.seen.lock().expect("lock").connacks > 0).then_some(())
        })
        .await;
        sim
    }

    /// A box: its kitchen id as user, a will (retained offline presence, QoS 1).
    async fn a_box(port: u16, kitchen: &str, password: &str) -> Self {
        Self::a_box_with(port, kitchen, password, |_| {}).await
    }

    async fn a_box_with(
        port: u16,
        kitchen: &str,
        password: &str,
        configure: impl FnOnce(&mut MqttOptions),
    ) -> Self {
        let will = LastWill::new(
            format!("kitchens/{kitchen}/presence"),
            serde_json::json!({"state":"offline","reason":"lost","version":"0.1.0","boot_id":"boot-1"})
                .to_string(),
            QoS::AtLeastOnce,
            true,
            None,
        );
        Self::connect(
            port,
            kitchen,
            password,
            &format!("box-{kitchen}"),
            |options| {
                options.set_last_will(will);
                configure(options);
            },
        )
        .await
    }

    /// A relay-user client that sees everything under `kitchens/#`.
    async fn watcher(port: u16) -> Self {
        let sim = Self::connect(port, RELAY_USER, RELAY_PASSWORD, &unique("watch"), |_| {}).await;
        sim.client
            .subscribe("kitchens/#", QoS::AtLeastOnce)
            .await
            .expect("subscribe");
        eventually("the watcher's suback", WAIT, || async {
            (!sim.seen.lock().expect("lock").subacks.is_empty()).then_some(())
        })
        .await;
        sim
    }

    async fn publish(&self, topic: &str, retain: bool, payload: serde_json::Value) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload.to_string())
            .await
            .expect("queued");
    }

    async fn online(&self, kitchen: &str, since: i64) {
        self.publish(
            &format!("kitchens/{kitchen}/presence"),
            true,
            serde_json::json!({"state":"online","since":since,"version":"0.1.0","boot_id":"boot-1"}),
        )
        .await;
    }

    fn received_on(&self, topic: &str) -> Vec<Publish> {
        self.seen
            .lock()
            .expect("lock")
            .publishes
            .iter()
            .filter(|publish| publish.topic == topic.as_bytes())
            .cloned()
            .collect()
    }

    /// Drops the connection without DISCONNECT (the broker publishes the will).
    fn cut(self) {
        self.task.abort();
    }
}

fn telemetry(at: i64, backlog: i64, late: i64) -> serde_json::Value {
    serde_json::json!({
        "at": at, "version": "0.1.0", "boot_id": "boot-1", "uptime_s": 3600,
        "feed": "connected",
        "sync": {"state": "connected", "backlog": backlog, "oldest_unsynced_ms": null},
        "sequence_gaps": 0,
        "reference": {"version": 7, "status": "version 7 from postgresql"},
        "scanners": {"connected": 2, "configured": 2},
        "orders": {"open": 14, "late": late},
        "tablets": 5,
        "disk": {"free_bytes": 21474836480_i64, "total_bytes": 31268536320_i64},
        "memory": {"rss_bytes": 25165824, "available_bytes": 3221225472_i64},
        "cpu_temp_c": 51.5,
        "clock_synced": true
    })
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A relay with the fleet channel on `broker`, and `kitchens` in its database.
async fn fleet_app(
    broker: &Mosquitto,
    kitchens: &[&str],
    adjust: impl FnOnce(&mut cloud_relay::Config),
) -> TestApp {
    let url = broker.url();
    let app = spawn_app_with(|config| {
        config.mqtt.url = Some(url);
        config.mqtt.password = Some(SecretString::from(RELAY_PASSWORD));
        config.mqtt.client_id = unique("relay").replace('.', "-");
        config.mqtt.keep_alive_secs = 5;
        adjust(config);
    })
    .await;
    for kitchen in kitchens {
        sqlx::query("INSERT INTO kitchen.kitchens (kitchen_id) VALUES ($1)")
            .bind(kitchen)
            .execute(&app.db.pool)
            .await
            .expect("kitchen");
    }
    wait_subscribed(&app).await;
    app
}

async fn wait_subscribed(app: &TestApp) {
    eventually("the relay subscribes", WAIT, || async {
        app.metrics()
            .await
            .contains("relay_fleet_connected 1")
            .then_some(())
    })
    .await;
}

async fn presence_of(app: &TestApp, kitchen: &str) -> Option<(String, Option<String>)> {
    sqlx::query_as("SELECT presence, presence_reason FROM kitchen.devices WHERE kitchen_id = $1")
        .bind(kitchen)
        .fetch_optional(&app.db.pool)
        .await
        .ok()
        .flatten()
}

async fn wait_presence(
    app: &TestApp,
    kitchen: &str,
    state: &str,
    within: Duration,
) -> Option<String> {
    eventually(
        &format!("{kitchen} {state} in PostgreSQL"),
        within,
        || async {
            presence_of(app, kitchen)
                .await
                .filter(|(presence, _)| presence == state)
                .map(|(_, reason)| reason)
        },
    )
    .await
}

#[tokio::test]
async fn the_acl_keeps_each_box_to_its_own_topics() {
    let broker = Mosquitto::start(&[("k1", "pw1"), ("k2", "pw2")]);
    let watcher = Sim::watcher(broker.port()).await;
    let k1 = Sim::a_box(broker.port(), "k1", "pw1").await;

    // Mosquitto grants any subscription and filters on delivery: another kitchen's commands
    // and telemetry never reach k1, its own commands do.
    let k2 = Sim::a_box(broker.port(), "k2", "pw2").await;
    for filter in ["kitchens/k2/#", "kitchens/k1/commands/#"] {
        k1.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .expect("queued");
    }
    k2.client
        .subscribe("kitchens/k2/commands/#", QoS::AtLeastOnce)
        .await
        .expect("queued");
    eventually("the subacks", WAIT, || async {
        (k1.seen.lock().expect("lock").subacks.len() == 2
            && k2.seen.lock().expect("lock").subacks.len() == 1)
            .then_some(())
    })
    .await;
    watcher
        .publish(
            "kitchens/k2/commands/ping",
            false,
            serde_json::json!({"id":"c2"}),
        )
        .await;
    k2.publish("kitchens/k2/telemetry", false, telemetry(now_ms(), 0, 0))
        .await;
    watcher
        .publish(
            "kitchens/k1/commands/ping",
            false,
            serde_json::json!({"id":"c1"}),
        )
        .await;
    eventually("k1 gets its own command, k2 its own", WAIT, || async {
        (k1.received_on("kitchens/k1/commands/ping").len() == 1
            && k2.received_on("kitchens/k2/commands/ping").len() == 1
            && watcher.received_on("kitchens/k2/telemetry").len() == 1)
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let k1_got: Vec<String> = k1
        .seen
        .lock()
        .expect("lock")
        .publishes
        .iter()
        .map(|publish| String::from_utf8_lossy(&publish.topic).into_owned())
        .collect();
    assert_eq!(k1_got, vec!["kitchens/k1/commands/ping".to_owned()]);

    // Writing as another kitchen, or a command to itself: refused, never delivered.
    k1.publish(
        "kitchens/k2/presence",
        false,
        serde_json::json!({"state":"online"}),
    )
    .await;
    k1.publish(
        "kitchens/k1/commands/ping",
        false,
        serde_json::json!({"id":"x"}),
    )
    .await;
    k1.publish("kitchens/k1/telemetry", false, telemetry(now_ms(), 0, 0))
        .await;
    let pubacks = eventually("three pubacks", WAIT, || async {
        let seen = k1.seen.lock().expect("lock");
        (seen.pubacks.len() == 3).then(|| seen.pubacks.clone())
    })
    .await;
    let reasons: Vec<PubAckReason> = pubacks.into_iter().map(|(_, reason)| reason).collect();
    assert_eq!(
        reasons,
        vec![
            PubAckReason::NotAuthorized,
            PubAckReason::NotAuthorized,
            PubAckReason::Success
        ]
    );
    eventually("its own telemetry arrives", WAIT, || async {
        (!watcher.received_on("kitchens/k1/telemetry").is_empty()).then_some(())
    })
    .await;
    assert!(watcher.received_on("kitchens/k2/presence").is_empty());
    // Only the watcher's own command is on k1's commands topic, not k1's forgery.
    let on_commands: Vec<serde_json::Value> = watcher
        .received_on("kitchens/k1/commands/ping")
        .iter()
        .map(|publish| serde_json::from_slice(&publish.payload).expect("json"))
        .collect();
    assert_eq!(on_commands, vec![serde_json::json!({"id": "c1"})]);
}

#[tokio::test]
async fn presence_online_then_lost_then_stopped() {
    let broker = Mosquitto::start(&[("k1", "pw1")]);
    let app = fleet_app(&broker, &["k1"], |_| {}).await;

    // A presence before the box ever synced: a valid row is made.
    let k1 = Sim::a_box(broker.port(), "k1", "pw1").await;
    let since = now_ms() - 1000;
    k1.online("k1", since).await;
    wait_presence(&app, "k1", "online", WAIT).await;
    let (version, feed, backlog, since_ms, boot): (String, String, i64, i64, String) =
        sqlx::query_as(
            "SELECT agent_version, feed_state, unsynced_backlog,
                    (extract(epoch FROM presence_since) * 1000)::bigint, boot_id
               FROM kitchen.devices WHERE kitchen_id = 'k1'",
        )
        .fetch_one(&app.db.pool)
        .await
        .expect("row");
    assert_eq!(
        (
            version.as_str(),
            feed.as_str(),
            backlog,
            since_ms,
            boot.as_str()
        ),
        ("0.1.0", "unknown", 0, since, "boot-1")
    );

    // Connection dropped without DISCONNECT: the will, offline within 15 s.
    k1.cut();
    let reason = wait_presence(&app, "k1", "offline", WAIT).await;
    assert_eq!(reason.as_deref(), Some("lost"));

    // Back, then a clean stop: offline at once.
    let k1 = Sim::a_box(broker.port(), "k1", "pw1").await;
    k1.online("k1", now_ms()).await;
    wait_presence(&app, "k1", "online", WAIT).await;
    k1.publish(
        "kitchens/k1/presence",
        true,
        serde_json::json!({"state":"offline","reason":"stopped","since":now_ms(),"version":"0.1.0","boot_id":"boot-1"}),
    )
    .await;
    k1.client.disconnect().await.expect("disconnect");
    let reason = wait_presence(&app, "k1", "offline", Duration::from_secs(3)).await;
    assert_eq!(reason.as_deref(), Some("stopped"));
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("relay_fleet_messages_total{topic=\"presence\",outcome=\"written\"} 4"),
        "{metrics}"
    );
}

#[tokio::test]
async fn telemetry_is_kept_and_stale_telemetry_does_not_replace_it() {
    let broker = Mosquitto::start(&[("k1", "pw1"), ("ghost", "pwg")]);
    let app = fleet_app(&broker, &["k1"], |_| {}).await;
    let k1 = Sim::a_box(broker.port(), "k1", "pw1").await;
    let at = now_ms();
    k1.publish("kitchens/k1/telemetry", true, telemetry(at, 3, 1))
        .await;
    k1.publish("kitchens/k1/telemetry", true, telemetry(at - 60_000, 9, 9))
        .await;
    // Malformed and unknown-kitchen messages are taken, counted and dropped.
    k1.client
        .publish("kitchens/k1/telemetry", QoS::AtLeastOnce, false, "not json")
        .await
        .expect("queued");
    let ghost = Sim::a_box(broker.port(), "ghost", "pwg").await;
    ghost
        .publish("kitchens/ghost/telemetry", false, telemetry(at, 0, 0))
        .await;
    eventually("four telemetry messages counted", WAIT, || async {
        let metrics = app.metrics().await;
        [
            "relay_fleet_messages_total{topic=\"telemetry\",outcome=\"written\"} 1",
            "relay_fleet_messages_total{topic=\"telemetry\",outcome=\"stale\"} 1",
            "relay_fleet_messages_total{topic=\"telemetry\",outcome=\"malformed\"} 1",
            "relay_fleet_messages_total{topic=\"telemetry\",outcome=\"unknown\"} 1",
        ]
        .iter()
        .all(|line| metrics.contains(line))
        .then_some(())
    })
    .await;
    let (held_at, backlog, late, feed): (i64, i64, i64, String) = sqlx::query_as(
        "SELECT (extract(epoch FROM telemetry_at) * 1000)::bigint, unsynced_backlog,
                (telemetry->'orders'->>'late')::bigint, feed_state
           FROM kitchen.devices WHERE kitchen_id = 'k1'",
    )
    .fetch_one(&app.db.pool)
    .await
    .expect("row");
    assert_eq!(
        (held_at, backlog, late, feed.as_str()),
        (at, 3, 1, "connected")
    );
    let history: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT (extract(epoch FROM at) * 1000)::bigint, (doc->'sync'->>'backlog')::bigint
           FROM fleet.telemetry WHERE kitchen_id = 'k1' ORDER BY at",
    )
    .fetch_all(&app.db.pool)
    .await
    .expect("history");
    assert_eq!(history, vec![(at - 60_000, 9), (at, 3)]);
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM kitchen.devices WHERE kitchen_id = 'ghost'")
            .await,
        0
    );
    // The relay restarting gets the retained copy again: kept once, not replacing.
    drop(k1);
    drop(ghost);
}

/// A box that answers every command it is sent (as the agent does), replying to the response
/// topic with the correlation data.
async fn answering_box(port: u16, kitchen: &str, password: &str, clean: bool) -> Sim {
    let sim = Sim::a_box_with(port, kitchen, password, |options| {
        options
            .set_clean_start(clean)
            .set_session_expiry_interval(Some(7 * 24 * 3600));
    })
    .await;
    sim.client
        .subscribe(format!("kitchens/{kitchen}/commands/#"), QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    eventually("the box's suback", WAIT, || async {
        (!sim.seen.lock().expect("lock").subacks.is_empty()).then_some(())
    })
    .await;
    sim
}

/// Answers the commands received so far that have not been answered.
async fn answer(sim: &Sim, answered: &mut usize) {
    let commands: Vec<Publish> = sim.seen.lock().expect("lock").publishes.clone();
    for command in commands.iter().skip(*answered) {
        let properties = command.properties.clone().expect("properties");
        let body: serde_json::Value = serde_json::from_slice(&command.payload).expect("json");
        let name = String::from_utf8_lossy(&command.topic)
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let reply = serde_json::json!({"id": body["id"], "command": name, "ok": true,
                                       "at": now_ms(), "result": {"pong": true, "uptime_s": 5}});
        sim.client
            .publish_with_properties(
                properties.response_topic.expect("response topic"),
                QoS::AtLeastOnce,
                false,
                reply.to_string(),
                rumqttc::v5::mqttbytes::v5::PublishProperties {
                    correlation_data: properties.correlation_data,
                    ..Default::default()
                },
            )
            .await
            .expect("reply queued");
    }
    *answered = commands.len();
}

fn commander(app: &TestApp) -> cloud_relay::fleet::Commander {
    cloud_relay::fleet::Commander::new(
        app.db.pool.clone(),
        app.config.mqtt.clone(),
        Arc::new(cloud_relay::fleet::FleetMetrics::default()),
    )
}

#[tokio::test]
async fn a_command_carries_its_properties_and_its_reply_is_recorded() {
    let broker = Mosquitto::start(&[("k1", "pw1")]);
    let app = fleet_app(&broker, &["k1"], |_| {}).await;
    let k1 = answering_box(broker.port(), "k1", "pw1", true).await;
    let commander = commander(&app);
    let sent = commander.send("k1", "ping", "test").await.expect("sent");

    let received = eventually("the box receives the command", WAIT, || async {
        k1.received_on("kitchens/k1/commands/ping").first().cloned()
    })
    .await;
    let properties = received.properties.clone().expect("properties");
    assert_eq!(
        properties.response_topic.as_deref(),
        Some(format!("kitchens/k1/replies/{}", sent.id).as_str())
    );
    assert_eq!(
        properties.correlation_data,
        Some(Bytes::copy_from_slice(sent.id.as_bytes()))
    );
    let expiry = properties.message_expiry_interval.expect("expiry");
    assert!((595..=600).contains(&expiry), "{expiry}");
    let body: serde_json::Value = serde_json::from_slice(&received.payload).expect("json");
    assert_eq!(body["id"], sent.id.to_string());
    assert!(body["sent_at"].as_i64().is_some());

    let mut answered = 0;
    answer(&k1, &mut answered).await;
    let reply = commander
        .wait_reply(sent.id, WAIT)
        .await
        .expect("db")
        .expect("a reply");
    assert_eq!(
        reply["result"],
        serde_json::json!({"pong": true, "uptime_s": 5})
    );
    let (name, sent_by, replied): (String, String, bool) = sqlx::query_as(
        "SELECT name, sent_by, replied_at IS NOT NULL FROM fleet.commands WHERE id = $1::uuid",
    )
    .bind(sent.id.to_string())
    .fetch_one(&app.db.pool)
    .await
    .expect("row");
    assert_eq!(
        (name.as_str(), sent_by.as_str(), replied),
        ("ping", "test", true)
    );

    // Unknown commands and kitchens are refused before anything is published.
    assert!(commander.send("k1", "reboot", "test").await.is_err());
    assert!(commander.send("nowhere", "ping", "test").await.is_err());
    assert_eq!(app.db.count("SELECT count(*) FROM fleet.commands").await, 1);
}

#[tokio::test]
async fn commands_wait_for_an_offline_box_unless_they_expired() {
    let broker = Mosquitto::start(&[("k1", "pw1"), ("k2", "pw2")]);
    let app = fleet_app(&broker, &["k1", "k2"], |config| {
        config.mqtt.command_expiry_secs = 2;
    })
    .await;
    // Each box has a persistent session, then goes away.
    answering_box(broker.port(), "k1", "pw1", false).await.cut();
    answering_box(broker.port(), "k2", "pw2", false).await.cut();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let commander = commander(&app);
    let live = commander.send("k1", "sync", "test").await.expect("sent");
    let stale = commander.send("k2", "sync", "test").await.expect("sent");

    // k1 is back within the expiry: the command arrives, once.
    let k1 = answering_box(broker.port(), "k1", "pw1", false).await;
    let got = eventually("the queued command", WAIT, || async {
        let got = k1.received_on("kitchens/k1/commands/sync");
        (!got.is_empty()).then_some(got)
    })
    .await;
    let mut answered = 0;
    answer(&k1, &mut answered).await;
    commander
        .wait_reply(live.id, WAIT)
        .await
        .expect("db")
        .expect("reply");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(k1.received_on("kitchens/k1/commands/sync").len(), 1);
    assert_eq!(got.len(), 1);

    // k2 comes back after the expiry: nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let k2 = answering_box(broker.port(), "k2", "pw2", false).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(k2.received_on("kitchens/k2/commands/sync").is_empty());
    assert_eq!(
        commander
            .wait_reply(stale.id, Duration::ZERO)
            .await
            .expect("db"),
        None
    );
}

#[tokio::test]
async fn after_a_broker_restart_the_relay_resubscribes_and_every_box_is_back() {
    let users: Vec<(String, String)> = (0..5)
        .map(|n| (format!("k{n}"), format!("pw{n}")))
        .collect();
    let refs: Vec<(&str, &str)> = users
        .iter()
        .map(|(u, p)| (u.as_str(), p.as_str()))
        .collect();
    let mut broker = Mosquitto::start(&refs);
    let kitchens: Vec<&str> = refs.iter().map(|(u, _)| *u).collect();
    let app = fleet_app(&broker, &kitchens, |_| {}).await;
    let mut boxes = Vec::new();
    for (user, password) in &refs {
        let sim = Sim::a_box(broker.port(), user, password).await;
        sim.online(user, now_ms()).await;
        boxes.push(sim);
    }
    for kitchen in &kitchens {
        wait_presence(&app, kitchen, "online", WAIT).await;
    }
    broker.stop();
    broker.start_again();
    // The boxes reconnect (the test client's loop does) and announce themselves again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (sim, (user, _)) in boxes.iter().zip(&refs) {
        eventually("the box reconnects", WAIT, || async {
            (sim.seen.lock().expect("lock").connacks >= 2).then_some(())
        })
        .await;
        // Mark it offline in PostgreSQL first, so only a message after the restart can fix it.
        sim.online(user, now_ms()).await;
    }
    sqlx::query("UPDATE kitchen.devices SET presence = 'offline'")
        .execute(&app.db.pool)
        .await
        .expect("update");
    for (sim, (user, _)) in boxes.iter().zip(&refs) {
        sim.online(user, now_ms() + 1).await;
    }
    for kitchen in &kitchens {
        wait_presence(&app, kitchen, "online", Duration::from_secs(30)).await;
    }
    let metrics = app.metrics().await;
    let connects = metrics
        .lines()
        .find_map(|line| line.strip_prefix("relay_fleet_connects_total "))
        .and_then(|value| value.trim().parse::<u64>().ok());
    assert!(connects >= Some(2), "{metrics}");
}

#[tokio::test]
async fn nothing_is_acknowledged_before_postgresql_committed_it() {
    use kitchen_testkit::proxy::Proxy;
    let broker = Mosquitto::start(&[("k1", "pw1")]);
    let db_proxy = Proxy::start(socket_addr_of(&admin_database_url())).await;
    let app = fleet_app(&broker, &["k1"], |config| {
        use secrecy::ExposeSecret;
        let direct = config.database_url.expose_secret().to_owned();
        config.database_url = SecretString::from(through(&direct, db_proxy.addr));
        config.database_timeout = Duration::from_secs(1);
    })
    .await;
    let k1 = answering_box(broker.port(), "k1", "pw1", true).await;
    // The commander writes through the test's own pool, which the cut does not reach.
    let commander = commander(&app);
    let sent = commander.send("k1", "ping", "test").await.expect("sent");
    eventually("the box receives the command", WAIT, || async {
        k1.received_on("kitchens/k1/commands/ping").first().cloned()
    })
    .await;

    db_proxy.cut();
    let mut answered = 0;
    answer(&k1, &mut answered).await;
    // The relay takes the reply (QoS 1, not retained: the broker keeps it only until the relay
    // acknowledges it), cannot commit, acknowledges nothing and reconnects.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let replied = || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT replied_at IS NOT NULL FROM fleet.commands WHERE id = $1::uuid",
        )
        .bind(sent.id.to_string())
        .fetch_one(&app.db.pool)
        .await
        .expect("row")
    };
    assert!(!replied().await);
    db_proxy.restore();
    // Had it been acknowledged before the commit, the broker would have nothing to send again.
    let reply = commander
        .wait_reply(sent.id, Duration::from_secs(60))
        .await
        .expect("db")
        .expect("the reply, sent again by the broker");
    assert_eq!(
        reply["result"],
        serde_json::json!({"pong": true, "uptime_s": 5})
    );
    assert!(replied().await);
}

#[tokio::test]
async fn kitchen_add_writes_a_hash_mosquitto_accepts() {
    let broker = Mosquitto::start(&[]);
    let role = TestRole::named("fleet_box");
    let other_role = TestRole::named("fleet_box");
    let db = TestDb::migrated(&cloud_relay::db::MIGRATOR).await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_cloud-relay"))
        .args([
            "kitchen",
            "add",
            "--kitchen",
            "k-hash",
            "--role",
            role.name.as_str(),
        ])
        .arg("--mqtt-password-file")
        .arg(broker.password_file())
        .env("DATABASE_URL", &db.url)
        .env("MQTT_URL", broker.url())
        .env_remove("RELAY_CONFIG")
        .output()
        .await
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!("mqtt_url = \"{}\"", broker.url())),
        "{stdout}"
    );
    let password = stdout
        .lines()
        .find_map(|line| line.strip_prefix("mqtt_password = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .expect("a password line")
        .to_owned();
    assert_eq!(password.len(), 43, "32 bytes base64url");
    let file = std::fs::read_to_string(broker.password_file()).expect("passwd");
    assert!(file.contains("relay:$7$101$"), "{file}");
    assert!(file.contains("k-hash:$7$101$"), "{file}");
    broker.reload();

    let k = Sim::a_box(broker.port(), "k-hash", &password).await;
    k.publish(
        "kitchens/k-hash/telemetry",
        false,
        telemetry(now_ms(), 0, 0),
    )
    .await;
    let first = eventually("the box's publish is acknowledged", WAIT, || async {
        k.seen
            .lock()
            .expect("lock")
            .pubacks
            .first()
            .map(|(_, r)| *r)
    })
    .await;
    // Taken (nobody subscribes in this test: "no matching subscribers", a success code).
    assert!(
        matches!(
            first,
            PubAckReason::Success | PubAckReason::NoMatchingSubscribers
        ),
        "{first:?} {}",
        broker.log()
    );
    // A wrong password is refused.
    let mut options = MqttOptions::new("wrong", "127.0.0.1", broker.port());
    options.set_credentials("k-hash", "not-the-password");
    let (_client, mut eventloop) = AsyncClient::new(options, 4);
    let refused = tokio::time::timeout(WAIT, eventloop.poll())
        .await
        .expect("answers");
    assert!(refused.is_err(), "{refused:?}");

    // An id that cannot be a topic level: the kitchen is added, no MQTT login is made.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_cloud-relay"))
        .args([
            "kitchen",
            "add",
            "--kitchen",
            "north/1",
            "--role",
            other_role.name.as_str(),
        ])
        .arg("--mqtt-password-file")
        .arg(broker.password_file())
        .env("DATABASE_URL", &db.url)
        .output()
        .await
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("no MQTT login made for kitchen \"north/1\": it holds '/', '+' or '#'"),
        "{stderr}"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM kitchen.kitchens WHERE kitchen_id = 'north/1'")
            .await,
        1
    );
    assert!(
        !std::fs::read_to_string(broker.password_file())
            .expect("passwd")
            .contains("north/1")
    );
    drop(k);
}

#[tokio::test]
async fn the_fleet_page_needs_an_operator_token() {
    let app = spawn_app().await;
    let token = cloud_relay::fleet::operators::add(&app.db.pool, "alice")
        .await
        .expect("operator");
    for path in [
        "/fleet/events",
        "/api/fleet",
        "/fleet/static/fleet.js",
        "/api/fleet/k1",
    ] {
        let response = app
            .client
            .get(app.admin_url(path))
            .send()
            .await
            .expect("answers");
        assert_eq!(response.status(), 401, "{path}");
    }
    let form = app
        .client
        .get(app.admin_url("/fleet"))
        .send()
        .await
        .expect("answers");
    assert_eq!(form.status(), 401);
    assert!(
        form.text()
            .await
            .expect("text")
            .contains("action=\"/fleet/login\"")
    );
    let wrong = app
        .client
        .get(app.admin_url("/api/fleet"))
        .bearer_auth("op_wrong")
        .send()
        .await
        .expect("answers");
    assert_eq!(wrong.status(), 401);

    let page = app
        .client
        .get(app.admin_url("/fleet"))
        .header("cookie", format!("fleet_operator={token}"))
        .send()
        .await
        .expect("answers");
    assert_eq!(page.status(), 200);
    let csp = page
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(
        page.text()
            .await
            .expect("text")
            .contains("<table id=\"fleet\">")
    );
    sqlx::query("INSERT INTO kitchen.kitchens (kitchen_id) VALUES ('k1')")
        .execute(&app.db.pool)
        .await
        .expect("kitchen");
    let rows: serde_json::Value = app
        .client
        .get(app.admin_url("/api/fleet"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    assert_eq!(rows[0]["kitchen_id"], "k1");
    assert_eq!(rows[0]["presence"], "unknown");

    // Sign in with the form: an HttpOnly, SameSite=Strict cookie.
    let no_redirects = kitchen_testkit::http::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let login = no_redirects
        .post(app.admin_url("/fleet/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", format!("http://{}", app.admin_addr))
        .body(format!("token={token}"))
        .send()
        .await
        .expect("answers");
    let status = login.status();
    let headers = login.headers().clone();
    assert_eq!(status, 303, "{}", login.text().await.unwrap_or_default());
    let cookie = headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        cookie,
        format!("fleet_operator={token}; Path=/; HttpOnly; SameSite=Strict")
    );
    // A command from another origin is refused.
    let foreign = app
        .client
        .post(app.admin_url("/api/fleet/k1/commands/ping"))
        .bearer_auth(&token)
        .header("origin", "http://evil.example")
        .send()
        .await
        .expect("answers");
    assert_eq!(foreign.status(), 403);
    // Removed operators are out at once.
    cloud_relay::fleet::operators::remove(&app.db.pool, "alice")
        .await
        .expect("removed");
    let gone = app
        .client
        .get(app.admin_url("/api/fleet"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("answers");
    assert_eq!(gone.status(), 401);
}

#[tokio::test]
async fn the_fleet_page_turns_a_lost_box_red_without_a_reload() {
    use kitchen_testkit::browser::Browser;
    let broker = Mosquitto::start(&[("k1", "pw1"), ("k2", "pw2")]);
    let app = fleet_app(&broker, &["k1", "k2"], |_| {}).await;
    let token = cloud_relay::fleet::operators::add(&app.db.pool, "alice")
        .await
        .expect("operator");
    let k1 = Sim::a_box(broker.port(), "k1", "pw1").await;
    k1.online("k1", now_ms()).await;
    let k2 = Sim::a_box(broker.port(), "k2", "pw2").await;
    k2.online("k2", now_ms()).await;
    k2.publish("kitchens/k2/telemetry", true, telemetry(now_ms(), 0, 0))
        .await;
    wait_presence(&app, "k1", "online", WAIT).await;
    wait_presence(&app, "k2", "online", WAIT).await;

    let url = app.admin_url("/fleet");
    let mut browser = Browser::launch(1280, 800).await;
    browser.set_cookie(&url, "fleet_operator", &token).await;
    browser.navigate_unpaired(&url).await;
    browser
        .wait_for(
            "both kitchens online",
            WAIT,
            "document.querySelectorAll('#fleet tbody tr').length === 2 && \
             Array.from(document.querySelectorAll('#fleet tbody tr')).every(tr => tr.className !== 'offline')",
        )
        .await;
    let cells = browser
        .eval(
            "Array.from(document.querySelectorAll('#fleet tbody tr[data-kitchen=\"k2\"] td'))\
             .map(td => td.textContent).slice(2, 9)",
        )
        .await;
    assert_eq!(
        cells,
        serde_json::json!(["connected", "connected", "0", "0", "0.1.0", "7", "synced"])
    );
    browser.eval("window.marker = 'same page'").await;

    k1.cut();
    browser
        .wait_for(
            "k1 red, first",
            WAIT,
            "(() => { const tr = document.querySelector('#fleet tbody tr'); \
               return tr && tr.dataset.kitchen === 'k1' && tr.className === 'offline'; })()",
        )
        .await;
    assert_eq!(
        browser.eval("window.marker").await,
        serde_json::json!("same page")
    );
    let state = browser
        .eval("document.querySelector('#fleet tbody tr[data-kitchen=\"k1\"] td.presence').textContent")
        .await;
    assert!(
        state
            .as_str()
            .is_some_and(|text| text.starts_with("offline for ")),
        "{state}"
    );
    browser.close().await;
    drop(k2);
}

#[tokio::test]
async fn a_box_role_writes_its_heartbeat_but_not_its_presence_and_wakes_the_page() {
    let role = TestRole::named("fleet_box");
    let db = TestDb::migrated(&cloud_relay::db::MIGRATOR).await;
    cloud_relay::kitchens::add_kitchen(&db.pool, "k1", &role.name, None)
        .await
        .expect("kitchen");
    let box_pool = db.connect_as(&role.name).await;
    let mut listener = sqlx::postgres::PgListener::connect_with(&db.pool)
        .await
        .expect("listener");
    listener.listen("fleet").await.expect("listen");
    let as_box = |sql: &'static str| {
        let pool = box_pool.clone();
        async move {
            let mut tx = pool.begin().await.expect("begin");
            sqlx::query("SELECT set_config('kitchen.id', 'k1', true)")
                .execute(&mut *tx)
                .await
                .expect("tenant");
            let result = sqlx::query(sql).execute(&mut *tx).await;
            match result {
                Ok(_) => tx.commit().await.map_err(|e| e.to_string()),
                Err(error) => Err(error.to_string()),
            }
        }
    };
    // The box's own heartbeat upsert, as its sync writes it.
    as_box(
        "INSERT INTO kitchen.devices (kitchen_id, agent_version, last_seen, feed_state,
                                      unsynced_backlog, oldest_unsynced_at, sequence_gaps)
         VALUES ('k1', '0.1.0', now(), 'connected', 0, NULL, '[]')
         ON CONFLICT (kitchen_id) DO UPDATE SET agent_version = EXCLUDED.agent_version,
             last_seen = EXCLUDED.last_seen, feed_state = EXCLUDED.feed_state,
             unsynced_backlog = EXCLUDED.unsynced_backlog,
             oldest_unsynced_at = EXCLUDED.oldest_unsynced_at,
             sequence_gaps = EXCLUDED.sequence_gaps",
    )
    .await
    .expect("the heartbeat is written");
    let notification = tokio::time::timeout(WAIT, listener.recv())
        .await
        .expect("notified in time")
        .expect("notification");
    assert_eq!(notification.payload(), "k1");
    for forged in [
        "UPDATE kitchen.devices SET presence = 'online'",
        "UPDATE kitchen.devices SET telemetry = '{}'",
    ] {
        let refused = as_box(forged).await.expect_err(forged);
        assert!(refused.contains("permission denied"), "{forged}: {refused}");
    }
    box_pool.close().await;
}

#[tokio::test]
async fn the_command_line_adds_operators_and_sends_commands() {
    let broker = Mosquitto::start(&[("k1", "pw1")]);
    let app = fleet_app(&broker, &["k1", "k2"], |_| {}).await;
    let cli = |args: &[&str]| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_cloud-relay"));
        command
            .args(args)
            .env("DATABASE_URL", &app.db.url)
            .env("MQTT_URL", broker.url())
            .env("MQTT_PASSWORD", RELAY_PASSWORD)
            .env_remove("RELAY_CONFIG");
        command
    };
    let added = cli(&["operator", "add", "--name", "bob"])
        .output()
        .await
        .expect("runs");
    assert!(added.status.success());
    let stdout = String::from_utf8_lossy(&added.stdout).into_owned();
    let token = stdout.lines().last().unwrap_or_default().to_owned();
    assert!(token.starts_with("op_") && token.len() == 67, "{stdout}");
    assert_eq!(
        cloud_relay::fleet::operators::authenticate(&app.db.pool, &token)
            .await
            .expect("db")
            .as_deref(),
        Some("bob")
    );
    let listed = cli(&["operator", "list"]).output().await.expect("runs");
    assert!(String::from_utf8_lossy(&listed.stdout).starts_with("bob\t"));

    // A box that answers: the reply is printed.
    let k1 = answering_box(broker.port(), "k1", "pw1", true).await;
    let child = cli(&["fleet", "command", "--kitchen", "k1", "ping"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    eventually("the command reaches the box", WAIT, || async {
        (!k1.received_on("kitchens/k1/commands/ping").is_empty()).then_some(())
    })
    .await;
    let mut answered = 0;
    answer(&k1, &mut answered).await;
    let output = child.wait_with_output().await.expect("exits");
    assert!(output.status.success());
    let reply: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("the reply as JSON");
    assert_eq!(reply["ok"], true);
    assert_eq!(reply["command"], "ping");

    // No box: no reply within --wait, exit 1.
    let silent = cli(&["fleet", "command", "--kitchen", "k2", "--wait", "1", "sync"])
        .output()
        .await
        .expect("runs");
    assert!(!silent.status.success());
    let stderr = String::from_utf8_lossy(&silent.stderr);
    assert!(
        stderr.contains("sent to \"k2\"; no reply within 1 s"),
        "{stderr}"
    );
}

#[tokio::test]
async fn reference_import_tells_the_box_and_only_warns_without_a_broker() {
    let broker = Mosquitto::start(&[("k1", "pw1")]);
    let app = fleet_app(&broker, &["k1"], |_| {}).await;
    let k1 = answering_box(broker.port(), "k1", "pw1", true).await;
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/reference.toml");
    let import = |url: String| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_cloud-relay"));
        command
            .args(["reference", "import", "--kitchen", "k1", file])
            .env("DATABASE_URL", &app.db.url)
            .env("MQTT_URL", url)
            .env("MQTT_PASSWORD", RELAY_PASSWORD)
            .env("RUST_LOG", "warn")
            .env_remove("RELAY_CONFIG");
        command
    };
    let output = import(broker.url()).output().await.expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("sent the `reference` command to the box"),
        "{stdout}"
    );
    eventually("the box is told to pull", WAIT, || async {
        (k1.received_on("kitchens/k1/commands/reference").len() == 1).then_some(())
    })
    .await;

    // The broker unreachable: the import stands, the command line only warns.
    let nowhere = format!("mqtt://127.0.0.1:{}", kitchen_testkit::mqtt::free_port());
    let output = import(nowhere).output().await.expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("reference version 2 imported"), "{stdout}");
    assert!(
        stdout.contains("warning: the box was not told to pull it now"),
        "{stdout}"
    );
}

#[tokio::test]
async fn the_kitchen_page_charts_telemetry_and_shows_a_reply_live() {
    use kitchen_testkit::browser::Browser;
    let broker = Mosquitto::start(&[("k1", "pw1")]);
    let app = fleet_app(&broker, &["k1"], |_| {}).await;
    let token = cloud_relay::fleet::operators::add(&app.db.pool, "alice")
        .await
        .expect("operator");
    let k1 = answering_box(broker.port(), "k1", "pw1", true).await;
    k1.online("k1", now_ms()).await;
    let at = now_ms();
    for (n, late) in [3, 1, 4].iter().enumerate() {
        k1.publish(
            "kitchens/k1/telemetry",
            true,
            telemetry(at - 60_000 * (3 - n as i64), n as i64, *late),
        )
        .await;
    }
    eventually("three telemetry rows", WAIT, || async {
        (app.db.count("SELECT count(*) FROM fleet.telemetry").await == 3).then_some(())
    })
    .await;

    let url = app.admin_url("/fleet/k1");
    let mut browser = Browser::launch(1280, 900).await;
    browser.set_cookie(&url, "fleet_operator", &token).await;
    browser.navigate_unpaired(&url).await;
    browser
        .wait_for(
            "four charts with a line",
            WAIT,
            "document.querySelectorAll('figure.chart svg polyline').length === 4",
        )
        .await;
    let late_points = browser
        .eval("document.querySelector('#chart-late polyline').getAttribute('points').split(' ').length")
        .await;
    assert_eq!(late_points, serde_json::json!(3));
    // The axis starts at the first point, not 24 h back: three minutes fill the chart.
    let first_x = browser
        .eval("document.querySelector('#chart-late polyline').getAttribute('points').split(' ')[0].split(',')[0]")
        .await;
    assert_eq!(first_x, serde_json::json!("0.0"));
    let label = browser
        .eval("document.querySelector('#chart-late text').textContent")
        .await;
    assert_eq!(label, serde_json::json!("max 4, last 4"));
    assert_eq!(
        browser
            .eval("document.getElementById('state').className")
            .await,
        serde_json::json!("state online")
    );

    browser.tap("button.command[data-command=\"ping\"]").await;
    eventually("the box receives ping", WAIT, || async {
        (!k1.received_on("kitchens/k1/commands/ping").is_empty()).then_some(())
    })
    .await;
    browser
        .wait_for(
            "the command listed, waiting",
            WAIT,
            "(() => { const td = document.querySelector('#commands tbody tr td:nth-child(4)'); \
               return td && td.textContent === 'waiting…'; })()",
        )
        .await;
    let mut answered = 0;
    answer(&k1, &mut answered).await;
    browser
        .wait_for(
            "the reply shown without a reload",
            WAIT,
            "(() => { const tr = document.querySelector('#commands tbody tr'); \
               return tr && tr.children[1].textContent === 'ping' && \
                      tr.children[2].textContent === 'alice' && \
                      tr.children[3].textContent === '{\"pong\":true,\"uptime_s\":5}'; })()",
        )
        .await;
    browser.close().await;
}

#[test]
fn the_mqtt_section_refuses_unknown_keys() {
    let error = toml::from_str::<cloud_relay::Config>("[mqtt]\nurl = \"mqtt://b:1883\"\nqos = 2\n")
        .expect_err("unknown key");
    assert!(error.to_string().contains("unknown field `qos`"), "{error}");
    let config: cloud_relay::Config =
        toml::from_str("[mqtt]\nurl = \"mqtt://b:1883\"\ncommand_expiry_secs = 60\n")
            .expect("valid");
    assert_eq!(config.mqtt.command_expiry_secs, 60);
    assert_eq!(config.mqtt.username, "relay");
    assert_eq!(config.mqtt.telemetry_retention_hours, 48);
}

/// Not a check: saves the pictures of the fleet pages the docs show (`docs/images/fleet.png`,
/// `docs/images/fleet-kitchen.png`). Run with
/// `cargo test -p cloud-relay --test it -- --ignored screenshot_of_the_fleet`.
#[tokio::test]
#[ignore = "makes docs/images/fleet.png and fleet-kitchen.png"]
async fn screenshot_of_the_fleet_pages() {
    use kitchen_testkit::browser::Browser;
    let images = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/images");
    let kitchens = ["bk-airport", "bk-downtown", "bk-harbour"];
    let broker = Mosquitto::start(&[
        ("bk-airport", "pw"),
        ("bk-downtown", "pw"),
        ("bk-harbour", "pw"),
    ]);
    let app = fleet_app(&broker, &kitchens, |_| {}).await;
    let token = cloud_relay::fleet::operators::add(&app.db.pool, "alice")
        .await
        .expect("operator");
    let now = now_ms();
    let airport = Sim::a_box(broker.port(), "bk-airport", "pw").await;
    airport.online("bk-airport", now - 3_600_000).await;
    let downtown = answering_box(broker.port(), "bk-downtown", "pw", true).await;
    downtown.online("bk-downtown", now - 7_200_000).await;
    let harbour = Sim::a_box(broker.port(), "bk-harbour", "pw").await;
    harbour.online("bk-harbour", now - 5_400_000).await;
    // An hour of the downtown box's telemetry: a rush builds late tickets and a backlog.
    for minute in (0..=60).rev().step_by(5) {
        let rush = (60 - minute) / 10;
        downtown
            .publish(
                "kitchens/bk-downtown/telemetry",
                true,
                telemetry(now - minute * 60_000, rush * 3 % 7, rush % 4),
            )
            .await;
    }
    harbour
        .publish("kitchens/bk-harbour/telemetry", true, telemetry(now, 41, 3))
        .await;
    airport
        .publish("kitchens/bk-airport/telemetry", true, telemetry(now, 0, 0))
        .await;
    for kitchen in kitchens {
        wait_presence(&app, kitchen, "online", WAIT).await;
    }
    airport.cut();
    wait_presence(&app, "bk-airport", "offline", WAIT).await;

    let url = app.admin_url("/fleet");
    let mut browser = Browser::launch(1280, 900).await;
    browser.set_cookie(&url, "fleet_operator", &token).await;
    browser.navigate_unpaired(&url).await;
    browser
        .wait_for(
            "three kitchens",
            WAIT,
            "document.querySelectorAll('#fleet tbody tr').length === 3",
        )
        .await;
    browser.screenshot(&images.join("fleet.png")).await;

    browser
        .navigate_unpaired(&app.admin_url("/fleet/bk-downtown"))
        .await;
    browser
        .wait_for(
            "four charts",
            WAIT,
            "document.querySelectorAll('figure.chart svg polyline').length === 4",
        )
        .await;
    browser.tap("button.command[data-command=\"ping\"]").await;
    eventually("the box receives ping", WAIT, || async {
        (!downtown
            .received_on("kitchens/bk-downtown/commands/ping")
            .is_empty())
        .then_some(())
    })
    .await;
    answer(&downtown, &mut 0).await;
    browser
        .wait_for(
            "the reply",
            WAIT,
            "(() => { const tr = document.querySelector('#commands tbody tr'); \
               return tr && tr.children[3].textContent.startsWith('{'); })()",
        )
        .await;
    browser.eval("window.scrollTo(0, 0)").await;
    browser.screenshot(&images.join("fleet-kitchen.png")).await;
    browser.close().await;
}
