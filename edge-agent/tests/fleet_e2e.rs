//! The fleet channel end to end, every part real: the relay (its fleet subscriber writing
//! PostgreSQL, `reference import`'s command, `fleet command`), the agent (in process, then the
//! binary for a SIGKILL), a Mosquitto of the test's own with the shipped ACL, PostgreSQL.
//! What head office reads is checked where it reads it: `kitchen.devices` and `fleet.commands`.

mod common;

use std::time::{Duration, Instant};

use common::{
    TestAgent,
    cloud::{Cloud, postgres_addr},
    fleet::{boot_id, spawn_binary},
};
use kitchen_proto::reference::Reference;
use kitchen_testkit::{
    amqp::{BrokerObjects, amqp_url},
    dir::TempDir,
    http::SseReader,
    mqtt::{Mosquitto, RELAY_PASSWORD},
    names::unique,
};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

const STORE: &str = "kitchen-bk-01";
const REFERENCE: &str = include_str!("fixtures/sample_kitchen.toml");
const PASSWORD: &str = "box-e2e-password";
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The relay with the fleet channel on `broker`, in process.
struct Relay {
    config: cloud_relay::Config,
    token: CancellationToken,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
    _broker: BrokerObjects,
}

impl Relay {
    async fn start(cloud: &Cloud, broker: &Mosquitto) -> Self {
        let objects = BrokerObjects::new();
        let order_exchange = unique("fleet-e2e.orders");
        let raw_exchange = unique("fleet-e2e.raw");
        objects.add_exchange(&order_exchange);
        objects.add_exchange(&raw_exchange);
        let mut config = cloud_relay::Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            admin_listen: "127.0.0.1:0".parse().expect("addr"),
            database_url: SecretString::from(cloud.db.url.clone()),
            amqp_url: SecretString::from(amqp_url()),
            order_exchange,
            raw_events_exchange: raw_exchange,
            otter_webhook_secret: Some(SecretString::from("fleet-e2e-secret")),
            database_pool_size: 4,
            ..cloud_relay::Config::default()
        };
        config.mqtt.url = Some(broker.url());
        config.mqtt.password = Some(SecretString::from(RELAY_PASSWORD));
        config.mqtt.client_id = unique("relay").replace('.', "-");
        config.validate().expect("relay config is valid");
        let app = cloud_relay::App::build(config.clone())
            .await
            .expect("relay builds");
        let token = app.shutdown_token();
        Self {
            config,
            token,
            handle: tokio::spawn(app.run_until_stopped()),
            _broker: objects,
        }
    }

    async fn stop(self) {
        self.token.cancel();
        self.handle
            .await
            .expect("joins")
            .expect("the relay stops cleanly");
    }
}

/// The kitchen's row as head office reads it (presence is null while only the sync's
/// heartbeat has written it).
async fn device(cloud: &Cloud) -> Option<(Option<String>, Option<String>, Option<String>, String)> {
    sqlx::query_as(
        "SELECT presence, presence_reason, boot_id, agent_version
           FROM kitchen.devices WHERE kitchen_id = $1",
    )
    .bind(&cloud.kitchen_id)
    .fetch_optional(&cloud.db.pool)
    .await
    .expect("devices readable")
}

/// Waits until the kitchen's presence in PostgreSQL is `state` (`reason`).
async fn wait_presence(cloud: &Cloud, state: &str, reason: Option<&str>, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let row = device(cloud).await;
        if let Some((presence, presence_reason, _, _)) = &row
            && presence.as_deref() == Some(state)
            && presence_reason.as_deref() == reason
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "presence {state} ({reason:?}) not in PostgreSQL within {within:?}: {row:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A box comes online in PostgreSQL with its telemetry; `reference import` (the import, then
/// the relay's `reference` command) puts the new version on the tablets' stream within 2 s and
/// the box's reply in `fleet.commands`; `fleet command ping` is answered; a clean stop shows
/// `offline (stopped)` at once, a SIGKILLed box `offline (lost)` within 15 s.
#[tokio::test]
async fn head_office_sees_a_real_box_and_reaches_its_screens() {
    let cloud = Cloud::create(&unique("fleet-e2e")).await;
    cloud.import(REFERENCE).await;
    let kitchen = cloud.kitchen_id.clone();
    let broker = Mosquitto::start(&[(&kitchen, PASSWORD)]);
    let relay = Relay::start(&cloud, &broker).await;
    let database_url = cloud.agent_url(postgres_addr());
    let (mqtt_url, id) = (broker.url(), kitchen.clone());
    let agent = TestAgent::start_with(Some(REFERENCE), &[STORE], move |config| {
        config.kitchen_id = id;
        config.database_url = Some(database_url);
        // The poll would find version 2 only after 5 minutes: the command must bring it.
        config.reference_poll_secs = 300;
        config.mqtt_url = Some(mqtt_url);
        config.mqtt_password = Some(PASSWORD.into());
    })
    .await;

    wait_presence(&cloud, "online", None, Duration::from_secs(20)).await;
    let (_, _, boot, version) = device(&cloud).await.expect("the kitchen's row");
    assert_eq!((boot, version), (Some(boot_id()), VERSION.to_owned()));
    let deadline = Instant::now() + Duration::from_secs(20);
    let telemetry: serde_json::Value = loop {
        let doc: Option<serde_json::Value> =
            sqlx::query_scalar("SELECT telemetry FROM kitchen.devices WHERE kitchen_id = $1")
                .bind(&kitchen)
                .fetch_one(&cloud.db.pool)
                .await
                .expect("telemetry column");
        if let Some(doc) = doc.filter(|doc| doc["reference"]["version"] == 1) {
            break doc;
        }
        assert!(Instant::now() < deadline, "no telemetry in PostgreSQL");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(telemetry["version"], VERSION);
    assert_eq!(telemetry["boot_id"], boot_id());
    assert_eq!(telemetry["sync"]["state"], "connected");
    assert_eq!(
        telemetry["scanners"],
        serde_json::json!({"connected": 0, "configured": 0})
    );

    // `cloud-relay reference import`: the import, then the command, as main.rs runs them.
    let mut live = SseReader::open(&format!("{}/orders/events", agent.base), None).await;
    let imported = Instant::now();
    let reference = Reference::parse(&format!(
        "{REFERENCE}\n[[stations]]\nid = \"wok\"\nname = \"Noodles\"\n"
    ))
    .expect("valid reference");
    let version = cloud_relay::kitchens::import_reference(&cloud.db.pool, &kitchen, &reference)
        .await
        .expect("imported");
    assert_eq!(version, 2);
    let note =
        cloud_relay::fleet::cli::announce_reference(&cloud.db.pool, &relay.config.mqtt, &kitchen)
            .await
            .expect("the fleet channel is on");
    assert!(note.starts_with("sent the `reference` command"), "{note}");
    loop {
        let (_, kind, data) = live
            .next_within(Duration::from_secs(2))
            .await
            .expect("reference.updated on the stream within 2 s of the import");
        if kind == "reference.updated" {
            assert_eq!(data["source"], "postgresql version 2");
            break;
        }
    }
    let on_screens = imported.elapsed();
    assert!(on_screens < Duration::from_secs(2), "{on_screens:?}");
    println!("reference import → reference.updated on the tablets' stream in {on_screens:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply: Option<serde_json::Value> = sqlx::query_scalar(
            "SELECT reply FROM fleet.commands WHERE kitchen_id = $1 AND name = 'reference'",
        )
        .bind(&kitchen)
        .fetch_one(&cloud.db.pool)
        .await
        .expect("the command's row");
        if let Some(reply) = reply {
            assert_eq!(reply["ok"], true);
            assert_eq!(reply["result"], serde_json::json!({"version": 2}));
            break;
        }
        assert!(Instant::now() < deadline, "the box's reply never recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // `cloud-relay fleet command ping`.
    let (id, reply) = cloud_relay::fleet::cli::command(
        &cloud.db.pool,
        &relay.config.mqtt,
        &kitchen,
        "ping",
        Duration::from_secs(10),
    )
    .await
    .expect("sent");
    let reply = reply.expect("answered within 10 s");
    assert_eq!(reply["id"], id.to_string());
    assert_eq!(
        (&reply["command"], &reply["ok"]),
        (&"ping".into(), &true.into())
    );
    assert_eq!(reply["result"]["pong"], true);

    // A clean stop: the box says so itself.
    let stopping = Instant::now();
    agent.stop().await;
    wait_presence(&cloud, "offline", Some("stopped"), Duration::from_secs(5)).await;
    println!(
        "clean stop → offline (stopped) in PostgreSQL in {:?}",
        stopping.elapsed()
    );

    // A killed box: the broker publishes its will, the relay records it.
    let dir = TempDir::new("fleet-e2e-binary");
    let mut child = spawn_binary(&broker, &kitchen, PASSWORD, dir.path());
    wait_presence(&cloud, "online", None, Duration::from_secs(20)).await;
    child.kill().expect("SIGKILL");
    let killed = Instant::now();
    let _ = child.wait();
    wait_presence(&cloud, "offline", Some("lost"), Duration::from_secs(15)).await;
    println!(
        "SIGKILL → offline (lost) in PostgreSQL in {:?}",
        killed.elapsed()
    );

    relay.stop().await;
}
