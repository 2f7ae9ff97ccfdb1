//! Serial scanner benchmark: the real agent binary reads a station scanner that is a
//! pseudo-terminal (as in tests/scanners.rs); orders arrive through the real RabbitMQ first.
//! It prints the scans/s parsed, applied (each ticket bumps its order at the fryer, one
//! transaction each) and seen on an SSE stream when a burst of ticket scans is written to the
//! pty as fast as it takes them, then the latency from writing one frame to its
//! `scan.recorded` arriving on the stream (p50/p99/max), one scan at a time.
//!
//! `cargo bench -p edge-agent --bench scanners`; tune with BENCH_SCANS (burst, default 5000)
//! and BENCH_LATENCY_SCANS (default 300). Uses its own queues, data directory and device link
//! and removes them. Under `cargo test` (no `--bench`) it runs a short smoke pass, so the
//! benchmark cannot rot.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context;
use futures_util::StreamExt;
use kitchen_proto::OrderEvent;
use kitchen_testkit::{
    amqp::{self, BrokerObjects, amqp_url},
    bench::{env_or, ms, percentile},
    events::{line, new_order, sku_line},
    pty,
};
use lapin::{Connection, ConnectionProperties};

const REFERENCE: &str = include_str!("../tests/fixtures/three_stations.toml");
const STORE: &str = "bench-scan";
const SCANNER: &str = "bench-fry";

/// An order of fries (and a burger) for the fryer's scanner to bump.
fn order_event(n: usize) -> OrderEvent {
    let now_ms = chrono::Utc::now().timestamp_millis();
    new_order(STORE, &format!("sb{n}"))
        .event_id(format!("scan-bench-ev-{n}"))
        .at(now_ms)
        .sequence(n as u64 + 1)
        .item(sku_line(
            "sku-smash-double",
            "Double Smash Burger",
            1,
            vec![],
        ))
        .item(line("Fries", 1, vec![]))
        .build()
}

/// A metric's value from `/metrics` text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn metrics(base: &str) -> anyhow::Result<String> {
    Ok(kitchen_testkit::http::get(format!("{base}/metrics"))
        .await?
        .text()
        .await?)
}

/// Follows the fryer's event stream from `after`; sends the code of every `scan.recorded` and
/// `scan.rejected` with the time it arrived.
async fn scan_events(
    base: &str,
    after: i64,
) -> anyhow::Result<tokio::sync::mpsc::UnboundedReceiver<(String, bool, Instant)>> {
    let response = kitchen_testkit::http::client()
        .get(format!("{base}/orders/events?station=fry"))
        .header("Last-Event-ID", after.to_string())
        .send()
        .await
        .context("sse")?;
    anyhow::ensure!(response.status() == 200, "sse status {}", response.status());
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stream = response.bytes_stream();
        let mut buffer = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            let arrived = Instant::now();
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                let accepted = frame.contains("event: scan.recorded");
                if !accepted && !frame.contains("event: scan.rejected") {
                    continue;
                }
                let code = frame
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .and_then(|data| serde_json::from_str::<serde_json::Value>(data).ok())
                    .and_then(|data| data["code"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                if sender.send((code, accepted, arrived)).is_err() {
                    return;
                }
            }
        }
    });
    Ok(receiver)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let smoke = !std::env::args().any(|arg| arg == "--bench");
    let burst = env_or("BENCH_SCANS", if smoke { 200 } else { 5000 });
    let latency_scans = env_or("BENCH_LATENCY_SCANS", if smoke { 20 } else { 300 });
    let amqp_url = amqp_url();

    let kitchen_id = format!("scan-bench-{}", std::process::id());
    let data_dir = std::env::temp_dir().join(&kitchen_id);
    std::fs::create_dir_all(&data_dir)?;
    std::fs::write(data_dir.join("reference.toml"), REFERENCE)?;
    edge_agent::pairing::pair_with_token(
        &data_dir,
        "manager",
        kitchen_testkit::http::TEST_DEVICE,
        None,
        kitchen_testkit::http::TEST_TOKEN,
    )?;
    let link = data_dir.join("scanner");
    let config = data_dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "scanner_retry_ms = 100\n\n[[scanners]]\nname = \"{SCANNER}\"\ndevice = \"{}\"\n\
             role = \"station\"\nstation = \"fry\"\n",
            link.display()
        ),
    )?;
    let exchange = format!("{kitchen_id}.structured_order_data");
    // Deleted at the end, after the agent is gone.
    let broker = BrokerObjects::edge_kitchen(&kitchen_id, &exchange);
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    // The cloud's part (`cloud-relay kitchen add`): the agent only finds its queue.
    cloud_relay::kitchens::broker::declare_kitchen_queue_at(
        &amqp_url,
        &exchange,
        &kitchen_id,
        &[STORE],
    )
    .await
    .expect("kitchen queue declared");
    let mut agent = Command::new(env!("CARGO_BIN_EXE_edge-agent"))
        .arg("--config")
        .arg(&config)
        .env("AGENT_LISTEN", format!("127.0.0.1:{port}"))
        .env("AGENT_DATA_DIR", &data_dir)
        .env("AGENT_WRITE_RATE", "1000000")
        .env("AMQP_URL", &amqp_url)
        .env("KITCHEN_ID", &kitchen_id)
        .env("STORE_IDS", STORE)
        .env("REFERENCE_FILE", data_dir.join("reference.toml"))
        .env("AGENT_ORDER_EXCHANGE", &exchange)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .context("agent starts")?;
    let base = format!("http://127.0.0.1:{port}");

    let result = async {
        let started = Instant::now();
        while kitchen_testkit::http::get(format!("{base}/readyz"))
            .await
            .map(|r| r.status() != 200)
            .unwrap_or(true)
        {
            anyhow::ensure!(started.elapsed() < Duration::from_secs(20), "agent not ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The orders every scan will bump, published as the relay would.
        let orders = burst + latency_scans;
        let connection = Connection::connect(&amqp_url, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        for n in 0..orders {
            amqp::publish(&channel, &exchange, &order_event(n)).await?;
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        while metric(&metrics(&base).await?, "edge_agent_open_orders") < orders as f64 {
            anyhow::ensure!(Instant::now() < deadline, "orders not all open after 120 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = connection.close(200, "bench published".into()).await;

        let pty = pty::Pty::open();
        pty::point(&link, &pty.slave);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let status: serde_json::Value = kitchen_testkit::http::get(format!("{base}/api/status"))
                .await?
                .json()
                .await?;
            if status["scanners"][0]["state"] == "connected" {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "scanner not connected: {status}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!(
            "edge-agent scanner benchmark: {burst} scans in a burst, {latency_scans} one at a time, \
             {orders} open orders, {} cores",
            std::thread::available_parallelism().map_or(0, usize::from)
        );

        // Burst: every ticket at once, as fast as the pty takes them.
        let before = metrics(&base).await?;
        let mut events = scan_events(&base, metric(&before, "edge_agent_event_log_last_seq") as i64).await?;
        let frames: Vec<u8> = (0..burst)
            .flat_map(|n| format!("ORDER:sb{n}\r").into_bytes())
            .collect();
        let bytes = frames.len();
        let started = Instant::now();
        pty.write(frames).await;
        let written = started.elapsed();
        let mut expected = 0;
        while expected < burst {
            let (code, accepted, _) = tokio::time::timeout(Duration::from_secs(60), events.recv())
                .await
                .context("burst not recorded within 60 s")?
                .context("stream ended")?;
            anyhow::ensure!(
                accepted && code == format!("ORDER:sb{expected}"),
                "scan {expected}: got {code:?} (accepted {accepted})"
            );
            expected += 1;
        }
        let elapsed = started.elapsed();
        let after = metrics(&base).await?;
        let jobs = metric(&after, "edge_agent_write_jobs_total")
            - metric(&before, "edge_agent_write_jobs_total");
        let write_s = metric(&after, "edge_agent_write_seconds_total")
            - metric(&before, "edge_agent_write_seconds_total");
        println!(
            "burst: {burst} scans ({bytes} bytes) written in {}, all recorded and on the stream after {} \
             → {:.0} scans/s; agent transactions: {jobs:.0}, mean {:.2} ms",
            ms(written),
            ms(elapsed),
            burst as f64 / elapsed.as_secs_f64(),
            write_s / jobs.max(1.0) * 1e3,
        );

        // Latency: one frame at a time, waiting for its event before the next.
        let mut latencies = Vec::with_capacity(latency_scans);
        for n in burst..orders {
            let code = format!("ORDER:sb{n}");
            let sent = Instant::now();
            pty.write(format!("{code}\r")).await;
            let (got, accepted, arrived) = tokio::time::timeout(Duration::from_secs(10), events.recv())
                .await
                .context("scan not recorded within 10 s")?
                .context("stream ended")?;
            anyhow::ensure!(accepted && got == code, "expected {code}, got {got:?}");
            latencies.push(arrived - sent);
        }
        latencies.sort();
        println!(
            "scan → SSE: {} scans, p50 {}, p99 {}, max {}",
            latencies.len(),
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&latencies, 0.99)),
            ms(latencies.last().copied().unwrap_or_default()),
        );
        let status: serde_json::Value = kitchen_testkit::http::get(format!("{base}/api/status"))
            .await?
            .json()
            .await?;
        let scanner = &status["scanners"][0];
        anyhow::ensure!(
            scanner["accepted"] == orders && scanner["frames"] == orders,
            "the scanner's counts do not add up: {scanner}"
        );
        let max_ms = metric(&after, "edge_agent_write_seconds_max") * 1e3;
        println!("longest agent transaction so far: {max_ms:.2} ms");
        Ok(())
    }
    .await;

    let _ = agent.kill();
    let _ = agent.wait();
    drop(broker);
    let _ = std::fs::remove_dir_all(&data_dir);
    result
}
