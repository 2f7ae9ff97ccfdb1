//! The way out, measured: signed webhooks into the real relay, the order through RabbitMQ onto
//! the box, the box's intents through its sync into PostgreSQL, the relay's calls to the
//! testkit's Otter double. Prints, over N orders one at a time: webhook → Otter `confirm` (the
//! box's automatic accept), and Expo's Ready → Otter `ready-to-pickup`; then a backlog of M
//! orders made while the box could not reach PostgreSQL: how long after the link is back every
//! confirm has reached Otter (the relay's budgets raised out of the way: this is the pipeline,
//! not Otter's 32 a minute).
//!
//! `cargo bench -p edge-agent --bench otter` (BENCH_OTTER_ORDERS, default 100;
//! BENCH_OTTER_BACKLOG, default 300). Under `cargo test` a short smoke pass. Uses its own
//! database, role, queues and data directory, and removes them.

use std::time::{Duration, Instant};

use edge_agent::{App, Config};
use kitchen_proto::reference::Reference;
use kitchen_testkit::{
    amqp::{BrokerObjects, amqp_url},
    bench::{env_or, percentile},
    db::{TestDb, TestRole, admin_database_url},
    dir::TempDir,
    http::{client, get_json, wait_ready},
    names::unique,
    otter::OtterDouble,
    proxy::{Proxy, socket_addr_of},
};
use secrecy::SecretString;
use serde_json::{Value, json};

const STORE: &str = "kitchen-bk-01";
const REFERENCE: &str = include_str!("../tests/fixtures/sample_kitchen.toml");
const NEW_ORDER: &[u8] = include_bytes!("../../cloud-relay/tests/fixtures/new_order.json");
const SECRET: &str = "bench-otter-secret";
const WAIT: Duration = Duration::from_secs(120);

struct Run {
    relay_url: String,
    agent_url: String,
    otter: OtterDouble,
    signer: cloud_relay::otter::WebhookSigner,
}

impl Run {
    async fn webhook(&self, order_id: &str) {
        let mut event: Value = serde_json::from_slice(NEW_ORDER).expect("fixture is json");
        event["eventId"] = json!(format!("ev-{order_id}"));
        event["metadata"]["storeId"] = json!(STORE);
        event["metadata"]["resourceId"] = json!(order_id);
        event["metadata"]["payload"]["externalIdentifiers"]["id"] = json!(order_id);
        let body = serde_json::to_vec(&event).expect("serialises");
        let response = client()
            .post(format!("{}/webhooks/otter", self.relay_url))
            .header("content-type", "application/json")
            .header("X-HMAC-SHA256", self.signer.sign(&body))
            .body(body)
            .send()
            .await
            .expect("relay answers");
        assert_eq!(response.status(), 200);
    }

    /// Waits until Otter has answered 2xx to a call whose path ends with `suffix`.
    async fn called(&self, suffix: &str) -> Instant {
        self.otter
            .wait_until(WAIT, |calls| {
                calls
                    .iter()
                    .find(|c| c.path.ends_with(suffix) && (200..300).contains(&c.status))
                    .map(|c| c.at)
            })
            .await
    }

    async fn confirms(&self) -> usize {
        self.otter
            .calls()
            .iter()
            .filter(|c| c.endpoint == "confirm" && (200..300).contains(&c.status))
            .count()
    }
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name}: n={} p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        samples.len(),
        ms(percentile(&samples, 0.50)),
        ms(percentile(&samples, 0.90)),
        ms(percentile(&samples, 0.99)),
        ms(samples.last().copied().unwrap_or_default())
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (orders, backlog) = if bench {
        (
            env_or("BENCH_OTTER_ORDERS", 100),
            env_or("BENCH_OTTER_BACKLOG", 300),
        )
    } else {
        (3, 10)
    };
    let kitchen_id = unique("bench-otter");
    let role = TestRole::named("box");
    let db = TestDb::migrated(&cloud_relay::db::MIGRATOR).await;
    cloud_relay::kitchens::add_kitchen(&db.pool, &kitchen_id, &role.name, None)
        .await
        .expect("kitchen provisioned");
    let reference = Reference::parse(REFERENCE).expect("valid reference");
    cloud_relay::kitchens::import_reference(&db.pool, &kitchen_id, &reference)
        .await
        .expect("imported");
    let proxy = Proxy::start(socket_addr_of(&admin_database_url())).await;
    let otter = OtterDouble::start("bench-client", "bench-secret").await;

    let data_dir = TempDir::new("bench-otter");
    let reference_file = data_dir.path().join("reference.toml");
    std::fs::write(&reference_file, REFERENCE).expect("reference written");
    let exchange = format!("{kitchen_id}.structured_order_data");
    let raw_exchange = format!("{kitchen_id}.otter_events");
    let broker = BrokerObjects::edge_kitchen(&kitchen_id, &exchange);
    broker.add_exchange(&raw_exchange);
    // The cloud's part (`cloud-relay kitchen add`): the agent only finds its queue.
    cloud_relay::kitchens::broker::declare_kitchen_queue_at(
        &amqp_url(),
        &exchange,
        &kitchen_id,
        &[STORE],
    )
    .await
    .expect("kitchen queue declared");
    let agent = App::build(Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        write_rate: 1_000_000,
        data_dir: data_dir.path().to_owned(),
        amqp_url: amqp_url(),
        kitchen_id: kitchen_id.clone(),
        store_ids: vec![STORE.into()],
        reference_file: Some(reference_file),
        order_exchange: exchange.clone(),
        database_url: Some(format!(
            "postgres://{}@{}/{}",
            role.name, proxy.addr, db.name
        )),
        ..Config::default()
    })
    .await
    .expect("agent builds");
    edge_agent::pairing::pair_with_token(
        data_dir.path(),
        "manager",
        kitchen_testkit::http::TEST_DEVICE,
        None,
        kitchen_testkit::http::TEST_TOKEN,
    )
    .expect("test manager paired");
    let agent_url = format!("http://127.0.0.1:{}", agent.port());
    let agent_token = agent.shutdown_token();
    let agent = tokio::spawn(agent.run_until_stopped());
    wait_ready(&agent_url, Duration::from_secs(20)).await;

    let mut config = cloud_relay::Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        admin_listen: "127.0.0.1:0".parse().expect("addr"),
        database_url: SecretString::from(db.url.clone()),
        amqp_url: SecretString::from(amqp_url()),
        order_exchange: exchange,
        raw_events_exchange: raw_exchange,
        otter_webhook_secret: Some(SecretString::from(SECRET)),
        database_pool_size: 4,
        ..cloud_relay::Config::default()
    };
    let api = &mut config.otter_api;
    api.url = Some(otter.url());
    api.client_id = Some("bench-client".to_owned().into());
    api.client_secret = Some("bench-secret".to_owned().into());
    // The pipeline, not Otter's budget: every per-minute limit out of the way.
    let limits = &mut api.limits;
    for limit in [
        &mut limits.confirm,
        &mut limits.ready,
        &mut limits.fulfill,
        &mut limits.cancel,
        &mut limits.prep_time,
    ] {
        *limit = 1_000_000;
    }
    let relay = cloud_relay::App::build(config).await.expect("relay builds");
    let run = Run {
        relay_url: format!("http://127.0.0.1:{}", relay.port()),
        agent_url,
        otter,
        signer: cloud_relay::otter::WebhookSigner::new(SecretString::from(SECRET)),
    };
    let relay_token = relay.shutdown_token();
    let relay = tokio::spawn(relay.run_until_stopped());

    // One at a time: latency, not throughput.
    let (mut to_confirm, mut to_ready) = (Vec::new(), Vec::new());
    for n in 0..orders {
        let order = format!("lat-{n}");
        let sent = Instant::now();
        run.webhook(&order).await;
        to_confirm.push(run.called(&format!("/{order}/confirm")).await - sent);
        let tapped = Instant::now();
        let response = client()
            .post(format!("{}/api/orders/{order}/ready", run.agent_url))
            .send()
            .await
            .expect("box answers");
        assert_eq!(response.status(), 200);
        to_ready.push(run.called(&format!("/{order}/ready-to-pickup")).await - tapped);
    }
    report("webhook → Otter confirm (the box's accept)", to_confirm);
    report("Expo Ready → Otter ready-to-pickup", to_ready);

    // The box cut off from PostgreSQL through a rush, then back.
    proxy.cut();
    let before = run.confirms().await;
    for n in 0..backlog {
        run.webhook(&format!("rush-{n}")).await;
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let body = get_json(&format!("{}/readyz", run.agent_url)).await;
        if body["sync"]["backlog"].as_u64().unwrap_or(0) >= 2 * backlog as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the box never held the rush: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let back = Instant::now();
    proxy.restore();
    while run.confirms().await < before + backlog {
        assert!(
            back.elapsed() < WAIT,
            "the backlog's confirms never all reached Otter"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drained = back.elapsed();
    println!(
        "backlog: {backlog} orders accepted offline; every confirm at Otter {:.1} s after the link came back ({:.0} calls/s); at Otter's 32 a minute per store it would take {:.1} min",
        drained.as_secs_f64(),
        backlog as f64 / drained.as_secs_f64(),
        backlog as f64 / 32.0
    );
    let twice = run.otter.calls().len()
        - run
            .otter
            .calls()
            .iter()
            .map(|c| (&c.path, c.status))
            .collect::<std::collections::HashSet<_>>()
            .len();
    println!("calls made twice: {twice}");
    assert_eq!(twice, 0);

    relay_token.cancel();
    relay.await.expect("relay joins").expect("relay stops");
    agent_token.cancel();
    agent.await.expect("agent joins").expect("agent stops");
    drop(broker);
}
