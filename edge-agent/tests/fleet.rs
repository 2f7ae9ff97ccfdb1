//! The fleet channel from the box's side (docs/fleet.md), against a Mosquitto of the test's own
//! with the shipped ACL, the agent logging in as its kitchen: presence with its will (the real
//! binary SIGKILLed and SIGTERMed), telemetry with exact figures, every command and its reply,
//! the persistent session and message expiry, a broker outage the kitchen does not notice, and
//! the ACL keeping a box inside its own topics. "Head office" is a client logged in as the
//! relay.

mod common;

use std::{
    process::{Child, Command},
    time::{Duration, Instant},
};

use bytes::Bytes;
use common::{
    TestAgent,
    cloud::{Cloud, postgres_addr},
    fleet::{boot_id, spawn_binary},
    wait_until,
};
use kitchen_proto::OrderEvent;
use kitchen_testkit::{
    events::{line, new_order},
    http::{SseReader, get_json},
    mqtt::{Mosquitto, RELAY_PASSWORD, RELAY_USER},
    names::unique,
};
use prost::Message as _;
use rumqttc::v5::{
    AsyncClient, Event, MqttOptions,
    mqttbytes::{
        QoS,
        v5::{Packet, PubAck, PubAckReason, Publish, PublishProperties},
    },
};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const STORE: &str = "kitchen-bk-01";
const REFERENCE: &str = include_str!("fixtures/sample_kitchen.toml");
const PASSWORD: &str = "box-test-password";
const VERSION: &str = env!("CARGO_PKG_VERSION");

fn json_of(publish: &Publish) -> Value {
    serde_json::from_slice(&publish.payload).expect("json payload")
}

/// An MQTT 5 client (head office, or a box's credentials) whose messages and acks arrive on
/// channels; it resubscribes after each reconnect.
struct Client {
    client: AsyncClient,
    messages: mpsc::Receiver<Publish>,
    acks: mpsc::Receiver<PubAck>,
    task: tokio::task::JoinHandle<()>,
}

impl Client {
    async fn connect(broker: &Mosquitto, user: &str, password: &str, filter: Option<&str>) -> Self {
        let mut options = MqttOptions::new(unique("client"), "127.0.0.1", broker.port());
        options
            .set_credentials(user, password)
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(Some(1024 * 1024));
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let (messages_tx, messages) = mpsc::channel(1024);
        let (acks_tx, acks) = mpsc::channel(64);
        let (connected_tx, mut connected) = mpsc::channel(4);
        let subscriber = client.clone();
        let filter = filter.map(str::to_owned);
        let wanted = if filter.is_some() { 2 } else { 1 };
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        if let Some(filter) = &filter {
                            let _ = subscriber.try_subscribe(filter.clone(), QoS::AtLeastOnce);
                        }
                        let _ = connected_tx.try_send(());
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = connected_tx.try_send(());
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        let _ = messages_tx.send(publish).await;
                    }
                    Ok(Event::Incoming(Packet::PubAck(ack))) => {
                        let _ = acks_tx.send(ack).await;
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        // Connected (and subscribed, when asked to).
        for _ in 0..wanted {
            tokio::time::timeout(Duration::from_secs(10), connected.recv())
                .await
                .expect("connected to the broker");
        }
        let _ = connected;
        Self {
            client,
            messages,
            acks,
            task,
        }
    }

    /// Head office: the relay's login, hearing everything of `kitchen`.
    async fn head_office(broker: &Mosquitto, kitchen: &str) -> Self {
        Self::connect(
            broker,
            RELAY_USER,
            RELAY_PASSWORD,
            Some(&format!("kitchens/{kitchen}/#")),
        )
        .await
    }

    /// The next message on `topic` whose JSON satisfies `check`, within `within`.
    async fn wait_for(
        &mut self,
        topic: &str,
        within: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Publish {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let publish = tokio::time::timeout_at(deadline, self.messages.recv())
                .await
                .unwrap_or_else(|_| panic!("nothing on {topic} as wanted within {within:?}"))
                .expect("client running");
            if publish.topic == topic.as_bytes() && check(&json_of(&publish)) {
                return publish;
            }
        }
    }

    /// Anything on `topic` within `within`.
    async fn any_on(&mut self, topic: &str, within: Duration) -> Option<Publish> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let publish = tokio::time::timeout_at(deadline, self.messages.recv())
                .await
                .ok()??;
            if publish.topic == topic.as_bytes() {
                return Some(publish);
            }
        }
    }

    /// Sends `name` to `kitchen` as the relay does: QoS 1, a response topic and correlation
    /// data, an expiry.
    async fn command(&self, kitchen: &str, name: &str, id: &str, expiry_secs: u32) {
        let properties = PublishProperties {
            response_topic: Some(format!("kitchens/{kitchen}/replies/{id}")),
            correlation_data: Some(Bytes::copy_from_slice(id.as_bytes())),
            message_expiry_interval: Some(expiry_secs),
            ..PublishProperties::default()
        };
        let payload = json!({"id": id, "sent_at": kitchen_daemon::clock::now_ms()});
        self.send(kitchen, name, payload.to_string(), properties)
            .await;
    }

    async fn send(&self, kitchen: &str, name: &str, payload: String, props: PublishProperties) {
        self.client
            .publish_with_properties(
                format!("kitchens/{kitchen}/commands/{name}"),
                QoS::AtLeastOnce,
                false,
                payload,
                props,
            )
            .await
            .expect("queued");
    }

    /// The reply to command `id`, within `within`.
    async fn reply(&mut self, kitchen: &str, id: &str, within: Duration) -> (Value, Publish) {
        let publish = self
            .wait_for(&format!("kitchens/{kitchen}/replies/{id}"), within, |_| {
                true
            })
            .await;
        (json_of(&publish), publish)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A test broker knowing `kitchen`'s login.
fn broker_for(kitchen: &str) -> Mosquitto {
    Mosquitto::start(&[(kitchen, PASSWORD)])
}

/// An in-process agent of kitchen `kitchen` on `broker`, with two scanners (one at a station
/// the reference data lacks: a warning at start) whose devices do not exist.
async fn agent_on(
    broker: &Mosquitto,
    kitchen: &str,
    adjust: impl FnOnce(&mut edge_agent::Config),
) -> TestAgent {
    let url = broker.url();
    let kitchen = kitchen.to_owned();
    TestAgent::start_with(Some(REFERENCE), &[STORE], move |config| {
        config.kitchen_id = kitchen;
        config.mqtt_url = Some(url);
        config.mqtt_password = Some(PASSWORD.into());
        config.scanners = vec![
            edge_agent::config::ScannerConfig::station("fry-1", "/dev/null/fry-1", "fry"),
            edge_agent::config::ScannerConfig::station("wok-1", "/dev/null/wok-1", "wok"),
        ];
        adjust(config);
    })
    .await
}

fn order(sequence: u64, order_id: &str, pickup_ms: i64) -> OrderEvent {
    new_order(STORE, order_id)
        .sequence(sequence)
        .friendly_id(order_id.to_uppercase())
        .pickup_at(pickup_ms)
        .item(line("Fries", 1, vec![]))
        .build()
}

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn metrics(base: &str) -> String {
    kitchen_testkit::http::client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// What the telemetry's `memory`, `cpu_temp_c` and `clock_synced` read here, to compare with.
fn host_cpu_temp() -> Value {
    std::fs::read_to_string("/sys/class/thermal/thermal_zone0/temp")
        .ok()
        .and_then(|t| t.trim().parse::<i64>().ok())
        .map_or(Value::Null, |_| json!("some"))
}

fn host_clock_synced() -> Value {
    let dir = std::path::Path::new("/run/systemd/timesync");
    if dir.join("synchronized").exists() {
        json!(true)
    } else if dir.exists() {
        json!(false)
    } else {
        Value::Null
    }
}

/// Presence online (retained, with version and boot id), the first telemetry with every field,
/// each command's reply (ping, unknown, malformed, without an id, a redelivery, diagnostics
/// with the warning the start logged), `/api/status` and `/metrics`, and the ACL keeping the
/// box's own login inside its topics.
#[tokio::test]
async fn presence_telemetry_and_commands() {
    kitchen_daemon::logging::init(false);
    let kitchen = unique("fleet");
    let broker = broker_for(&kitchen);
    let started = kitchen_daemon::clock::now_ms();
    let agent = agent_on(&broker, &kitchen, |_| {}).await;
    let base = agent.base.clone();
    let mut office = Client::head_office(&broker, &kitchen).await;

    let presence = office
        .wait_for(
            &format!("kitchens/{kitchen}/presence"),
            Duration::from_secs(10),
            |p| p["state"] == "online",
        )
        .await;
    assert!(presence.retain, "retained presence on subscribe");
    let presence = json_of(&presence);
    let since = presence["since"].as_i64().expect("since");
    assert!(since >= started && since <= kitchen_daemon::clock::now_ms());
    assert_eq!(
        presence,
        json!({"state": "online", "since": since, "version": VERSION, "boot_id": boot_id()})
    );

    let telemetry = office
        .wait_for(
            &format!("kitchens/{kitchen}/telemetry"),
            Duration::from_secs(10),
            |t| t["feed"] == "connected",
        )
        .await;
    let t = json_of(&telemetry);
    let number = |v: &Value| v.as_u64().unwrap_or_else(|| panic!("a number: {t}"));
    assert!(number(&t["disk"]["total_bytes"]) >= number(&t["disk"]["free_bytes"]));
    assert!(number(&t["memory"]["rss_bytes"]) > 1_000_000);
    assert!(number(&t["memory"]["available_bytes"]) > 0);
    assert!(number(&t["uptime_s"]) < 60);
    let at = t["at"].as_i64().expect("at");
    let temp = if host_cpu_temp().is_null() {
        Value::Null
    } else {
        t["cpu_temp_c"].clone()
    };
    assert!(temp.is_null() || temp.is_f64(), "{t}");
    assert_eq!(
        t,
        json!({
            "at": at,
            "version": VERSION,
            "boot_id": boot_id(),
            "uptime_s": t["uptime_s"],
            "feed": "connected",
            "sync": {"state": "not configured", "backlog": 0, "oldest_unsynced_ms": null},
            "sequence_gaps": 0,
            "reference": {"version": null, "status": "loaded"},
            "scanners": {"connected": 0, "configured": 2},
            "orders": {"open": 0, "late": 0},
            "tablets": 0,
            "disk": t["disk"],
            "memory": t["memory"],
            "cpu_temp_c": temp,
            "clock_synced": host_clock_synced(),
        })
    );

    // ping, with the relay's response topic and correlation data echoed.
    office.command(&kitchen, "ping", "c-ping", 600).await;
    let (ping, publish) = office
        .reply(&kitchen, "c-ping", Duration::from_secs(5))
        .await;
    assert!(!publish.retain);
    assert_eq!(
        publish.properties.and_then(|p| p.correlation_data),
        Some(Bytes::from_static(b"c-ping"))
    );
    let uptime = ping["result"]["uptime_s"].clone();
    assert!(uptime.as_u64().is_some_and(|s| s < 60), "{ping}");
    assert_eq!(
        ping,
        json!({"id": "c-ping", "command": "ping", "ok": true, "at": ping["at"],
               "result": {"pong": true, "uptime_s": uptime}})
    );

    // The same id again (QoS 1 may deliver twice): the same reply, not run again.
    office.command(&kitchen, "ping", "c-ping", 600).await;
    let (again, _) = office
        .reply(&kitchen, "c-ping", Duration::from_secs(5))
        .await;
    assert_eq!(again, ping);

    // Unknown, malformed with an id, without an id, and no response topic (default topic).
    office
        .command(&kitchen, "frobnicate", "c-unknown", 600)
        .await;
    let (unknown, _) = office
        .reply(&kitchen, "c-unknown", Duration::from_secs(5))
        .await;
    assert_eq!(
        unknown,
        json!({"id": "c-unknown", "command": "frobnicate", "ok": false, "at": unknown["at"],
               "error": "unknown command"})
    );
    office
        .send(
            &kitchen,
            "ping",
            r#"{"id":"c-bad","sent_at":"noon"}"#.into(),
            PublishProperties::default(),
        )
        .await;
    let (bad, publish) = office
        .reply(&kitchen, "c-bad", Duration::from_secs(5))
        .await;
    assert_eq!(publish.properties.and_then(|p| p.correlation_data), None);
    assert_eq!(bad["ok"], false);
    assert_eq!(
        bad["error"],
        "malformed command: sent_at must be a number (ms)"
    );
    office
        .send(
            &kitchen,
            "ping",
            "{not json".into(),
            PublishProperties::default(),
        )
        .await;
    office
        .send(
            &kitchen,
            "ping",
            r#"{"sent_at":1}"#.into(),
            PublishProperties::default(),
        )
        .await;

    // diagnostics: the status document and the warning logged at start.
    office.command(&kitchen, "diagnostics", "c-diag", 600).await;
    let (diagnostics, _) = office
        .reply(&kitchen, "c-diag", Duration::from_secs(5))
        .await;
    let result = &diagnostics["result"];
    assert_eq!(diagnostics["ok"], true, "{diagnostics}");
    assert_eq!(result["status"]["kitchen_id"], kitchen.as_str());
    assert_eq!(result["status"]["mqtt"]["state"], "connected");
    assert_eq!(result["status"]["feed"], "connected");
    assert_eq!(
        result["status"]["scanners"].as_array().map(Vec::len),
        Some(2)
    );
    let log = result["log"].as_array().expect("log lines");
    assert!(log.len() <= 50);
    assert!(
        log.iter().any(|l| l.as_str().is_some_and(|l| l.contains(" WARN edge_agent: scanner's station is not in the reference data: its scans will be rejected scanner=wok-1 station=wok"))),
        "{log:?}"
    );

    let status = get_json(&format!("{base}/api/status")).await;
    let mqtt = &status["mqtt"];
    assert_eq!(mqtt["state"], "connected", "{status}");
    assert_eq!(mqtt["last_error"], Value::Null);
    assert!(
        mqtt["since"].as_i64().is_some_and(|s| s >= started),
        "{mqtt}"
    );
    let text = metrics(&base).await;
    assert_eq!(
        metric(&text, "edge_agent_mqtt_connected"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(metric(&text, "edge_agent_mqtt_connects_total"), Some(1.0));
    // ping, diagnostics ok; unknown and malformed failed; the redelivery repeated; 2 dropped.
    wait_until(
        "the dropped commands counted",
        Duration::from_secs(5),
        || {
            let base = base.clone();
            async move {
                metric(
                    &metrics(&base).await,
                    "edge_agent_mqtt_commands_total{result=\"dropped\"}",
                ) == Some(2.0)
            }
        },
    )
    .await;
    let text = metrics(&base).await;
    for (result, count) in [("ok", 2.0), ("failed", 2.0), ("repeated", 1.0)] {
        assert_eq!(
            metric(
                &text,
                &format!("edge_agent_mqtt_commands_total{{result=\"{result}\"}}")
            ),
            Some(count),
            "{result}: {text}"
        );
    }

    // The box's own login cannot speak for another kitchen or command itself.
    let mut own = Client::connect(&broker, &kitchen, PASSWORD, None).await;
    for topic in [
        "kitchens/other-kitchen/presence".to_owned(),
        format!("kitchens/{kitchen}/commands/ping"),
        "fleet/elsewhere".to_owned(),
    ] {
        own.client
            .publish(topic.clone(), QoS::AtLeastOnce, false, "{}")
            .await
            .expect("queued");
        let ack = tokio::time::timeout(Duration::from_secs(5), own.acks.recv())
            .await
            .expect("an ack")
            .expect("running");
        assert_eq!(ack.reason, PubAckReason::NotAuthorized, "{topic}");
    }
    own.client
        .publish(
            format!("kitchens/{kitchen}/telemetry"),
            QoS::AtLeastOnce,
            false,
            "{}",
        )
        .await
        .expect("queued");
    let ack = tokio::time::timeout(Duration::from_secs(5), own.acks.recv())
        .await
        .expect("an ack")
        .expect("running");
    assert!(
        matches!(
            ack.reason,
            PubAckReason::Success | PubAckReason::NoMatchingSubscribers
        ),
        "{ack:?}"
    );
    assert!(
        office
            .any_on(
                &format!("kitchens/{kitchen}/commands/ping"),
                Duration::from_millis(300)
            )
            .await
            .is_none()
    );
    agent.stop().await;
}

/// The broker going away changes nothing for the kitchen: orders arrive and show, `/readyz`
/// stays ready, `/api/status` says the link is down. When it is back the box is online again
/// within seconds, and its first telemetry counts what happened meanwhile: the orders open and
/// late, the tablet that connected.
#[tokio::test]
async fn the_kitchen_carries_on_without_the_broker() {
    let kitchen = unique("fleet");
    let mut broker = broker_for(&kitchen);
    let agent = agent_on(&broker, &kitchen, |_| {}).await;
    let base = agent.base.clone();
    let mut office = Client::head_office(&broker, &kitchen).await;
    let presence_topic = format!("kitchens/{kitchen}/presence");
    office
        .wait_for(&presence_topic, Duration::from_secs(10), |p| {
            p["state"] == "online"
        })
        .await;
    drop(office);

    broker.stop();
    let stopped = kitchen_daemon::clock::now_ms();
    wait_until("mqtt disconnected", Duration::from_secs(15), || {
        let base = base.clone();
        async move { get_json(&format!("{base}/api/status")).await["mqtt"]["state"] == "disconnected" }
    })
    .await;
    let status = get_json(&format!("{base}/api/status")).await;
    assert!(status["mqtt"]["last_error"].is_string(), "{status}");
    assert!(
        status["mqtt"]["since"]
            .as_i64()
            .is_some_and(|s| s >= stopped)
    );
    assert_eq!(
        metric(&metrics(&base).await, "edge_agent_mqtt_connected"),
        Some(0.0)
    );
    let ready = kitchen_testkit::http::client()
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200, "/readyz does not depend on MQTT");

    // Two orders already late, one due in an hour; a tablet watching.
    let now = kitchen_daemon::clock::now_ms();
    agent.publish(&order(1, "f1", now - 600_000)).await;
    agent.publish(&order(2, "f2", now - 60_000)).await;
    agent.publish(&order(3, "f3", now + 3_600_000)).await;
    wait_until("3 orders", Duration::from_secs(20), || {
        let base = base.clone();
        async move {
            get_json(&format!("{base}/api/orders?state=open")).await["orders"]
                .as_array()
                .map_or(0, Vec::len)
                == 3
        }
    })
    .await;
    let _tablet = SseReader::open(&format!("{base}/orders/events"), None).await;

    broker.start_again();
    let back = Instant::now();
    let mut office = Client::head_office(&broker, &kitchen).await;
    office
        .wait_for(&presence_topic, Duration::from_secs(40), |p| {
            p["state"] == "online" && p["since"].as_i64().is_some_and(|s| s > stopped)
        })
        .await;
    let reconnected = back.elapsed();
    let telemetry = office
        .wait_for(
            &format!("kitchens/{kitchen}/telemetry"),
            Duration::from_secs(10),
            |t| t["orders"]["open"] == 3,
        )
        .await;
    let t = json_of(&telemetry);
    assert_eq!(t["orders"], json!({"open": 3, "late": 2}), "{t}");
    assert_eq!(t["tablets"], 1, "{t}");
    assert_eq!(t["feed"], "connected");
    assert_eq!(
        get_json(&format!("{base}/api/status")).await["mqtt"]["state"],
        "connected"
    );
    println!("broker back → box online again in {reconnected:?}");
    assert!(reconnected < Duration::from_secs(35), "{reconnected:?}");
    agent.stop().await;
}

/// Commands sent while the box is stopped wait in its persistent session and arrive exactly
/// once when it is back; one whose message expiry ran out meanwhile never arrives.
#[tokio::test]
async fn commands_wait_for_a_stopped_box_unless_they_expire() {
    let kitchen = unique("fleet");
    let broker = broker_for(&kitchen);
    let mut office = Client::head_office(&broker, &kitchen).await;
    let presence_topic = format!("kitchens/{kitchen}/presence");
    let agent = agent_on(&broker, &kitchen, |_| {}).await;
    office
        .wait_for(&presence_topic, Duration::from_secs(10), |p| {
            p["state"] == "online"
        })
        .await;
    agent.stop().await;
    office
        .wait_for(&presence_topic, Duration::from_secs(5), |p| {
            p["state"] == "offline"
        })
        .await;

    office.command(&kitchen, "ping", "c-waits", 600).await;
    office.command(&kitchen, "ping", "c-expires", 1).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let agent = agent_on(&broker, &kitchen, |_| {}).await;
    let (reply, _) = office
        .reply(&kitchen, "c-waits", Duration::from_secs(15))
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
    // Nothing more: no second reply, none to the expired command.
    let mut others = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    while let Ok(Some(publish)) =
        tokio::time::timeout_at(deadline.into(), office.messages.recv()).await
    {
        if publish
            .topic
            .starts_with(format!("kitchens/{kitchen}/replies/").as_bytes())
        {
            others.push(json_of(&publish));
        }
    }
    assert!(others.is_empty(), "{others:?}");
    let text = metrics(&agent.base).await;
    assert_eq!(
        metric(&text, "edge_agent_mqtt_commands_total{result=\"ok\"}"),
        Some(1.0),
        "{text}"
    );
    agent.stop().await;
}

fn signal(child: &Child, name: &str) {
    let sent = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
}

/// SIGKILL: the broker publishes the box's will — retained presence `offline`, `lost` — at once
/// (the socket closes); SIGSTOP (a hung box, its socket open): within 15 s, by the keep-alive
/// (5 s). SIGTERM: the box says `stopped` itself at once, and no will follows.
#[tokio::test]
async fn a_killed_box_is_lost_and_a_stopped_one_says_so() {
    let kitchen = unique("fleet");
    let broker = broker_for(&kitchen);
    let dir = kitchen_testkit::dir::TempDir::new("fleet-binary");
    let presence_topic = format!("kitchens/{kitchen}/presence");
    let mut office = Client::head_office(&broker, &kitchen).await;

    let mut child = spawn_binary(&broker, &kitchen, PASSWORD, dir.path());
    office
        .wait_for(&presence_topic, Duration::from_secs(20), |p| {
            p["state"] == "online"
        })
        .await;
    child.kill().expect("SIGKILL");
    let killed = Instant::now();
    let _ = child.wait();
    let lost = office
        .wait_for(&presence_topic, Duration::from_secs(15), |p| {
            p["state"] == "offline"
        })
        .await;
    let took = killed.elapsed();
    assert_eq!(
        json_of(&lost),
        json!({"state": "offline", "reason": "lost", "version": VERSION, "boot_id": boot_id()})
    );
    println!("SIGKILL → presence offline (lost) in {took:?}");
    // Retained: a newcomer hears it.
    let mut newcomer = Client::head_office(&broker, &kitchen).await;
    let retained = newcomer
        .wait_for(&presence_topic, Duration::from_secs(5), |_| true)
        .await;
    assert!(retained.retain);
    assert_eq!(json_of(&retained)["reason"], "lost");
    drop(newcomer);

    // A box that hangs (or loses its network) keeps its socket open: the broker finds it lost
    // by the keep-alive, 1.5 × 5 s.
    let mut child = spawn_binary(&broker, &kitchen, PASSWORD, dir.path());
    office
        .wait_for(&presence_topic, Duration::from_secs(20), |p| {
            p["state"] == "online"
        })
        .await;
    signal(&child, "STOP");
    let frozen = Instant::now();
    let lost = office
        .wait_for(&presence_topic, Duration::from_secs(15), |p| {
            p["state"] == "offline"
        })
        .await;
    let took = frozen.elapsed();
    assert_eq!(json_of(&lost)["reason"], "lost");
    println!("SIGSTOP (a hung box) → presence offline (lost) in {took:?}");
    child.kill().expect("SIGKILL");
    let _ = child.wait();

    let mut child = spawn_binary(&broker, &kitchen, PASSWORD, dir.path());
    office
        .wait_for(&presence_topic, Duration::from_secs(20), |p| {
            p["state"] == "online"
        })
        .await;
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(term.success());
    let termed = Instant::now();
    let stopped = office
        .wait_for(&presence_topic, Duration::from_secs(2), |p| {
            p["state"] == "offline"
        })
        .await;
    let took = termed.elapsed();
    let stopped = json_of(&stopped);
    let since = stopped["since"].as_i64().expect("since");
    assert_eq!(
        stopped,
        json!({"state": "offline", "reason": "stopped", "since": since, "version": VERSION,
               "boot_id": boot_id()})
    );
    println!("SIGTERM → presence offline (stopped) in {took:?}");
    let status = child.wait().expect("exits");
    assert!(status.success(), "{status}");
    // A clean disconnect: no will after it.
    assert!(
        office
            .any_on(&presence_topic, Duration::from_secs(9))
            .await
            .is_none(),
        "a will followed the clean stop"
    );
}

/// With PostgreSQL behind the box: `reference` brings a new version to the screens at once (the
/// reference poll is 5 minutes), `reconcile` applies what the queue missed, `sync` pushes the
/// outbox — each answered after the sync round it asked for.
#[tokio::test]
async fn reference_reconcile_and_sync_commands_kick_the_sync() {
    let kitchen = unique("fleet");
    let cloud = Cloud::create(&kitchen).await;
    cloud.import(REFERENCE).await;
    let broker = broker_for(&kitchen);
    let url = cloud.agent_url(postgres_addr());
    let agent = agent_on(&broker, &kitchen, move |config| {
        config.database_url = Some(url);
        config.reference_poll_secs = 300;
    })
    .await;
    let base = agent.base.clone();
    let mut office = Client::head_office(&broker, &kitchen).await;
    office
        .wait_for(
            &format!("kitchens/{kitchen}/presence"),
            Duration::from_secs(10),
            |p| p["state"] == "online",
        )
        .await;
    wait_until("version 1 in use", Duration::from_secs(20), || {
        let base = base.clone();
        async move {
            get_json(&format!("{base}/api/status")).await["reference"]
                .as_str()
                .is_some_and(|r| r.starts_with("postgresql version 1"))
        }
    })
    .await;

    // reference: version 2 imported; the command brings it to the screens.
    let mut live = SseReader::open(&format!("{base}/orders/events"), None).await;
    let version = cloud
        .import(&format!(
            "{REFERENCE}\n[[stations]]\nid = \"wok\"\nname = \"Noodles\"\n"
        ))
        .await;
    assert_eq!(version, 2);
    let sent = Instant::now();
    office.command(&kitchen, "reference", "c-ref", 600).await;
    let (reply, _) = office
        .reply(&kitchen, "c-ref", Duration::from_secs(10))
        .await;
    let replied = sent.elapsed();
    assert_eq!(
        reply,
        json!({"id": "c-ref", "command": "reference", "ok": true, "at": reply["at"],
               "result": {"version": 2}})
    );
    loop {
        let (_, kind, data) = live
            .next_within(Duration::from_secs(2))
            .await
            .expect("reference.updated on the stream within 2 s");
        if kind == "reference.updated" {
            assert_eq!(data["source"], "postgresql version 2");
            break;
        }
    }
    let on_screens = sent.elapsed();
    assert!(on_screens < Duration::from_secs(2), "{on_screens:?}");
    let status = get_json(&format!("{base}/api/status")).await;
    assert!(
        status["reference"]
            .as_str()
            .is_some_and(|r| r.starts_with("postgresql version 2")),
        "{status}"
    );
    println!(
        "reference command → reply in {replied:?}, reference.updated on the stream in {on_screens:?}"
    );

    // reconcile: 2–4 reached PostgreSQL but never the queue, and no gap points at them.
    agent
        .publish(&order(1, "m1", kitchen_daemon::clock::now_ms() + 3_600_000))
        .await;
    wait_until("m1", Duration::from_secs(20), || {
        let base = base.clone();
        async move {
            get_json(&format!("{base}/api/orders?state=open")).await["orders"]
                .as_array()
                .map_or(0, Vec::len)
                == 1
        }
    })
    .await;
    for n in 2..=4u64 {
        let event = order(
            n,
            &format!("m{n}"),
            kitchen_daemon::clock::now_ms() + 3_600_000,
        );
        let payload = OrderEvent {
            sequence: 0,
            ..event.clone()
        }
        .encode_to_vec();
        sqlx::query(
            "INSERT INTO otter.webhook_events (event_id, event_type, event_time, store_id,
                                               order_id, outcome, raw)
             VALUES ($1, 'orders.new_order', now(), $2, $3, 'applied', '{}')",
        )
        .bind(&event.event_id)
        .bind(STORE)
        .bind(&event.order_id)
        .execute(&cloud.db.pool)
        .await
        .expect("webhook event");
        sqlx::query(
            "INSERT INTO otter.outbox (event_id, store_id, sequence, event_type, payload,
                                       published_at)
             VALUES ($1, $2, $3, 'orders.new_order', $4, now())",
        )
        .bind(&event.event_id)
        .bind(STORE)
        .bind(n as i64)
        .bind(payload)
        .execute(&cloud.db.pool)
        .await
        .expect("outbox row");
    }
    office.command(&kitchen, "reconcile", "c-rec", 600).await;
    let (reply, _) = office
        .reply(&kitchen, "c-rec", Duration::from_secs(10))
        .await;
    assert_eq!(reply["result"], json!({"reconciled": 3}), "{reply}");
    let open = get_json(&format!("{base}/api/orders?state=open")).await;
    assert_eq!(open["orders"].as_array().map(Vec::len), Some(4), "{open}");

    // sync: what the kitchen did is in PostgreSQL when the reply comes.
    let bumped = kitchen_testkit::http::client()
        .post(format!("{base}/api/orders/m2/bump?station=fry"))
        .send()
        .await
        .expect("bump");
    assert_eq!(bumped.status(), 200);
    office.command(&kitchen, "sync", "c-sync", 600).await;
    let (reply, _) = office
        .reply(&kitchen, "c-sync", Duration::from_secs(10))
        .await;
    assert_eq!(reply["result"], json!({"backlog": 0}), "{reply}");
    let pushed = cloud
        .count(&format!(
            "SELECT count(*) FROM kitchen.order_events WHERE kitchen_id = '{kitchen}' AND order_id = 'm2' AND kind = 'order.bumped'"
        ))
        .await;
    assert_eq!(pushed, 1);
    agent.stop().await;
}
