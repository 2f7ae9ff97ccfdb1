//! Sync benchmark: a backlog of records made while PostgreSQL was unreachable (scans through
//! `POST /api/scans`, one record each), then PostgreSQL comes back: how long the agent takes to
//! drain it (rows/s), and the LAN path's order → SSE latency meanwhile (orders published to the
//! real RabbitMQ every 20 ms during the drain, timed to their `order.created` on a stream).
//!
//! `cargo bench -p edge-agent --bench sync` (BENCH_SYNC_RECORDS, default 10000). Under
//! `cargo test` it runs a short smoke pass, so the benchmark cannot rot. Uses its own database,
//! role, queues and data directory, and removes them.

#[path = "../tests/common/mod.rs"]
mod common;

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use common::{
    SseReader, TestAgent,
    cloud::{Cloud, postgres_addr},
    get_json, unique,
};
use kitchen_proto::{EventType, LineItem, OrderEvent, OrderStatus};
use kitchen_testkit::proxy;

const STORE: &str = "kitchen-bk-01";
const REFERENCE: &str = include_str!("../tests/fixtures/sample_kitchen.toml");

fn order(sequence: u64) -> OrderEvent {
    OrderEvent {
        event_id: format!("bench-ev-{sequence}"),
        event_type: EventType::NewOrder as i32,
        otter_event_type: "orders.new_order".into(),
        event_time_ms: 1_741_977_600_000,
        store_id: STORE.into(),
        sequence,
        order_id: format!("bench-{sequence}"),
        status: OrderStatus::NewOrder as i32,
        items: vec![LineItem {
            name: "Fries".into(),
            quantity: 1,
            ..LineItem::default()
        }],
        has_snapshot: true,
        received_at_ms: 1_741_977_600_000,
        ..OrderEvent::default()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let records: usize = if bench {
        std::env::var("BENCH_SYNC_RECORDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10_000)
    } else {
        200
    };
    let cloud = Cloud::create(&unique("bench-sync")).await;
    cloud.import(REFERENCE).await;
    let proxy = proxy::Proxy::start(postgres_addr()).await;
    proxy.cut();
    let url = cloud.agent_url(proxy.addr);
    let kitchen_id = cloud.kitchen_id.clone();
    let kitchen = TestAgent::start_with(Some(REFERENCE), &[STORE], move |config| {
        config.kitchen_id = kitchen_id;
        config.database_url = Some(url);
    })
    .await;
    let base = kitchen.base.clone();

    // The backlog: one scan record each, eight at a time.
    let filled = Instant::now();
    let client = reqwest::Client::new();
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
        kitchen.publish(&order(sequence)).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        // Drained when every scan of the backlog is in PostgreSQL (the orders published
        // meanwhile add records of their own, so the outbox is rarely empty).
        if cloud.count("SELECT count(*) FROM kitchen.scans").await == records as i64 {
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
    let in_postgres = cloud.count("SELECT count(*) FROM kitchen.scans").await;
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
    kitchen.stop().await;
}
