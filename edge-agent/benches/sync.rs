//! Sync benchmark: a backlog of records made while PostgreSQL was unreachable (scans through
//! `POST /api/scans`, one record each), then PostgreSQL comes back: how long the agent takes to
//! drain it (rows/s), and the LAN path's order → SSE latency meanwhile (orders published to the
//! real RabbitMQ every 20 ms during the drain, timed to their `order.created` on a stream).
//!
//! `cargo bench -p edge-agent --bench sync` (BENCH_SYNC_RECORDS, default 10000). Under
//! `cargo test` it runs a short smoke pass, so the benchmark cannot rot. Uses its own database,
//! role, queues and data directory, and removes them.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use edge_agent::{App, Config};
use kitchen_proto::{OrderEvent, reference::Reference};
use kitchen_testkit::{
    amqp::{self, BrokerObjects, amqp_url},
    bench::{env_or, percentile},
    db::{TestDb, TestRole, admin_database_url},
    dir::TempDir,
    events::{line, new_order},
    http::{SseReader, get_json, wait_ready},
    names::unique,
    proxy::{Proxy, socket_addr_of},
};
use lapin::{Connection, ConnectionProperties};

const STORE: &str = "kitchen-bk-01";
const REFERENCE: &str = include_str!("../tests/fixtures/sample_kitchen.toml");

fn order(sequence: u64) -> OrderEvent {
    new_order(STORE, &format!("bench-{sequence}"))
        .event_id(format!("bench-ev-{sequence}"))
        .sequence(sequence)
        .item(line("Fries", 1, vec![]))
        .build()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let records = if bench {
        env_or("BENCH_SYNC_RECORDS", 10_000)
    } else {
        200
    };
    // The cloud: a database migrated by the relay, with the kitchen and its box's role.
    let kitchen_id = unique("bench-sync");
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
    proxy.cut();

    // The agent in process, reaching PostgreSQL through the proxy.
    let data_dir = TempDir::new("bench-sync");
    let reference_file = data_dir.path().join("reference.toml");
    std::fs::write(&reference_file, REFERENCE).expect("reference written");
    let exchange = format!("{kitchen_id}.structured_order_data");
    let broker = BrokerObjects::edge_kitchen(&kitchen_id, &exchange);
    // The cloud's part (`cloud-relay kitchen add`): the agent only finds its queue.
    cloud_relay::kitchens::broker::declare_kitchen_queue_at(
        &amqp_url(),
        &exchange,
        &kitchen_id,
        &[STORE],
    )
    .await
    .expect("kitchen queue declared");
    let app = App::build(Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        // The backlog is made by a burst of HTTP scans from one device.
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
    let base = format!("http://127.0.0.1:{}", app.port());
    let token = app.shutdown_token();
    let agent = tokio::spawn(app.run_until_stopped());
    wait_ready(&base, Duration::from_secs(20)).await;
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .expect("rabbitmq");
    let channel = connection.create_channel().await.expect("channel");

    // The backlog: one scan record each, eight at a time.
    let filled = Instant::now();
    let client = kitchen_testkit::http::client();
    let mut next = 0;
    while next < records {
        let batch: Vec<_> = (next..(next + 8).min(records))
            .map(|n| {
                client
                    .post(format!("{base}/api/scans"))
                    .json(&serde_json::json!({"device": "bench", "station": "fry", "code": format!("ORDER:none-{n}")}))
                    .send()
            })
            .collect();
        for response in futures_util::future::join_all(batch).await {
            assert_eq!(response.expect("scan").status(), 422);
        }
        next += 8;
    }
    let fill = filled.elapsed();
    let backlog = get_json(&format!("{base}/readyz")).await["sync"]["backlog"].clone();
    assert_eq!(backlog, records, "every scan waits in the outbox");

    // PostgreSQL is back: drain while orders keep coming.
    let mut live = SseReader::open(&format!("{base}/orders/events"), None).await;
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        while let Some((_, kind, data)) = live.next_within(Duration::from_secs(30)).await {
            if kind == "order.created" {
                let id = data["order_id"].as_str().unwrap_or_default().to_owned();
                if seen_tx.send((id, Instant::now())).is_err() {
                    return;
                }
            }
        }
    });
    let drain_started = Instant::now();
    proxy.restore();
    let mut published = HashMap::new();
    let mut sequence = 0;
    let drain = loop {
        sequence += 1;
        published.insert(format!("bench-{sequence}"), Instant::now());
        amqp::publish(&channel, &exchange, &order(sequence))
            .await
            .expect("publish");
        tokio::time::sleep(Duration::from_millis(20)).await;
        // Drained when every scan of the backlog is in PostgreSQL (the orders published
        // meanwhile add records of their own, so the outbox is rarely empty).
        if db.count("SELECT count(*) FROM kitchen.scans").await == records as i64 {
            break drain_started.elapsed();
        }
        assert!(
            drain_started.elapsed() < Duration::from_secs(600),
            "the backlog never drained"
        );
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut latencies = Vec::new();
    while let Ok((id, at)) = seen_rx.try_recv() {
        if let Some(sent) = published.get(&id) {
            latencies.push(at.duration_since(*sent));
        }
    }
    reader.abort();
    latencies.sort();
    let in_postgres = db.count("SELECT count(*) FROM kitchen.scans").await;
    assert_eq!(in_postgres, records as i64, "every record in PostgreSQL");
    println!(
        "edge-agent sync benchmark: {records} records (scans) made while PostgreSQL was unreachable, 2 cores"
    );
    println!(
        "backlog built in {:.2} s; drained in {:.2} s → {:.0} rows/s (batches of 500)",
        fill.as_secs_f64(),
        drain.as_secs_f64(),
        records as f64 / drain.as_secs_f64()
    );
    println!(
        "orders during the drain: {} published, {} seen; publish → SSE p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        published.len(),
        latencies.len(),
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
    );
    token.cancel();
    agent.await.expect("joins").expect("clean stop");
    let _ = connection.close(200, "bench done".into()).await;
    drop(broker);
}
