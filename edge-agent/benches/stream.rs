//! Order → SSE benchmark: the real agent binary consumes orders published to the real RabbitMQ
//! (as the relay publishes them) while SSE clients listen on `/orders/events`; it prints the
//! latency from publish to each client receiving `order.created` (p50/p99/max) with 1 and with
//! 50 clients at a steady rate, the sustained orders/s when published as fast as possible, the
//! agent's RSS idle and under load, and the size of the binary it ran.
//!
//! `cargo bench -p edge-agent --bench stream`; tune with BENCH_RATE (orders/s, default 100),
//! BENCH_SECONDS (per steady phase, default 10), BENCH_BURST (orders, default 5000),
//! BENCH_CLIENTS (default 50), BENCH_AGENT_ENV (`NAME=value` pairs, space-separated, set for the
//! agent only: e.g. the allocator settings of `systemd/edge-agent.service`,
//! `MALLOC_MMAP_THRESHOLD_=131072 MALLOC_ARENA_MAX=2`), BENCH_PI_BUDGET (`<percent of a core>,<MiB>`,
//! e.g. `10,32`: the agent runs in cgroup v1 groups with that CPU quota and memory cap, and the
//! throttling and memory peak are printed). In the steady phases the kitchen is simulated: every order is
//! bumped 5 s after it is published and picked up (closed) 2 s later, so the open-order count
//! stays what a busy kitchen has (~700 at 100/s); the burst is a backlog nobody works off. Uses its own queues and
//! data directory and removes them. Under `cargo test` (no `--bench`) it runs a short smoke
//! pass, so the benchmark cannot rot.

use std::{
    collections::HashMap,
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context;
use futures_util::StreamExt;
use kitchen_proto::{OrderEvent, OrderStatus};
use kitchen_testkit::{
    amqp::{self, BrokerObjects, amqp_url},
    bench::{PiBudget, env_or, ms, percentile},
    events::{line, new_order, sku_line, status_update},
};
use lapin::{BasicProperties, Connection, ConnectionProperties, options::BasicPublishOptions};
use prost::Message;

const REFERENCE: &str = include_str!("../tests/fixtures/three_stations.toml");

const STORES: [&str; 3] = ["bench-a", "bench-b", "bench-c"];
const BUMP_AFTER: Duration = Duration::from_secs(5);
const PICKUP_AFTER_BUMP: Duration = Duration::from_secs(2);

fn order_event(n: usize, sequence: u64) -> OrderEvent {
    let now_ms = chrono::Utc::now().timestamp_millis();
    new_order(STORES[n % 3], &format!("bench-{n}"))
        .event_id(format!("bench-ev-{n}"))
        .at(now_ms)
        .sequence(sequence)
        .friendly_id(format!("{:04}", n % 10_000))
        .customer_name("Bench Customer")
        .pickup_at(now_ms + 15 * 60_000)
        .item(sku_line(
            "sku-smash-double",
            "Double Smash Burger",
            (n % 3) as u32 + 1,
            vec![
                line("American Cheese", 1, vec![]),
                line(
                    "Make it a Meal",
                    1,
                    vec![
                        line("Fries", 1, vec![line("Large", 1, vec![])]),
                        line("Cola", 1, vec![]),
                    ],
                ),
            ],
        ))
        .item(line("Fries", 1, vec![]))
        .build()
}

/// Resident memory of a process, in KiB: (current, peak, of which anonymous — the rest is the
/// binary and libraries mapped from disk).
fn rss_kib(pid: u32) -> (u64, u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"), field("RssAnon:"))
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// When each order was published, by its number.
type Sent = Arc<Mutex<HashMap<usize, Instant>>>;

/// Opens an SSE client that records, per order, how long after publishing `order.created`
/// arrived. Ends when `expect` orders were seen.
async fn client(
    url: String,
    sent: Sent,
    expect: usize,
) -> anyhow::Result<tokio::task::JoinHandle<Vec<Duration>>> {
    let response = kitchen_testkit::http::get(&url).await.context("sse")?;
    anyhow::ensure!(response.status() == 200, "sse status {}", response.status());
    Ok(tokio::spawn(async move {
        let mut stream = response.bytes_stream();
        let mut buffer = String::new();
        let mut latencies = Vec::with_capacity(expect);
        while latencies.len() < expect {
            let Some(Ok(chunk)) = stream.next().await else {
                break;
            };
            let arrived = Instant::now();
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                if !frame.contains("event: order.created") {
                    continue;
                }
                let number = frame
                    .split("\"order_id\":\"bench-")
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .and_then(|n| n.parse::<usize>().ok());
                if let Some(at) = number.and_then(|n| sent.lock().ok()?.get(&n).copied()) {
                    latencies.push(arrived - at);
                }
            }
        }
        latencies
    }))
}

struct Bench {
    base: String,
    channel: lapin::Channel,
    exchange: String,
    sequences: [u64; 3],
    next: usize,
    http: reqwest::Client,
}

impl Bench {
    /// Publishes `count` orders at `rate` per second (0: as fast as possible); each is bumped
    /// at every station `BUMP_AFTER` later. Returns when the last is published.
    async fn publish(&mut self, sent: &Sent, count: usize, rate: usize) -> anyhow::Result<()> {
        let mut tick = (rate > 0).then(|| {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            tick
        });
        for _ in 0..count {
            if let Some(tick) = &mut tick {
                tick.tick().await;
            }
            let n = self.next;
            self.next += 1;
            self.sequences[n % 3] += 1;
            let payload = order_event(n, self.sequences[n % 3]).encode_to_vec();
            let published = Instant::now();
            sent.lock().expect("lock").insert(n, published);
            self.channel
                .basic_publish(
                    self.exchange.as_str().into(),
                    STORES[n % 3].into(),
                    BasicPublishOptions::default(),
                    &payload,
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await?;
            if rate > 0 {
                // The cooks bump it everywhere, and a little later the courier picks it up
                // (Otter's status; sequence 0: untracked, the relay is not in this picture).
                let http = self.http.clone();
                let url = format!("{}/api/orders/bench-{n}/bump", self.base);
                let channel = self.channel.clone();
                let exchange = self.exchange.clone();
                tokio::spawn(async move {
                    tokio::time::sleep_until((published + BUMP_AFTER).into()).await;
                    let _ = http.post(url).send().await;
                    tokio::time::sleep(PICKUP_AFTER_BUMP).await;
                    let picked_up = status_update(
                        STORES[n % 3],
                        &format!("bench-{n}"),
                        "orders.status_update",
                        OrderStatus::PickedUp,
                    )
                    .event_id(format!("bench-ev-{n}-picked-up"))
                    .build();
                    let _ = amqp::publish(&channel, &exchange, &picked_up).await;
                });
            }
        }
        Ok(())
    }
}

/// `BENCH_AGENT_ENV`: the environment the agent gets on top of the benchmark's settings.
fn agent_env() -> Vec<(String, String)> {
    let pairs: Vec<(String, String)> = std::env::var("BENCH_AGENT_ENV")
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    if !pairs.is_empty() {
        println!("agent environment: {pairs:?}");
    }
    pairs
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let smoke = !std::env::args().any(|arg| arg == "--bench");
    let rate = env_or("BENCH_RATE", 100);
    let seconds = env_or("BENCH_SECONDS", if smoke { 1 } else { 10 });
    let burst = env_or("BENCH_BURST", if smoke { 200 } else { 5000 });
    let clients = env_or("BENCH_CLIENTS", if smoke { 5 } else { 50 });
    let amqp_url = amqp_url();

    let kitchen_id = format!("bench-{}", std::process::id());
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
    let exchange = format!("{kitchen_id}.structured_order_data");
    // Deleted at the end, after the agent is gone.
    let broker = BrokerObjects::edge_kitchen(&kitchen_id, &exchange);
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let binary = env!("CARGO_BIN_EXE_edge-agent");
    // The cloud's part (`cloud-relay kitchen add`): the agent only finds its queue.
    cloud_relay::kitchens::broker::declare_kitchen_queue_at(
        &amqp_url,
        &exchange,
        &kitchen_id,
        &STORES,
    )
    .await
    .expect("kitchen queue declared");
    let budget = PiBudget::from_env();
    let mut command = match &budget {
        Some(budget) => budget.command(binary),
        None => Command::new(binary),
    };
    let mut agent = command
        .env("AGENT_LISTEN", format!("127.0.0.1:{port}"))
        .env("AGENT_DATA_DIR", &data_dir)
        .env("AGENT_WRITE_RATE", "1000000")
        // The 50 tablets present one device's token here: let it hold them all.
        .env("AGENT_MAX_STREAMS_PER_DEVICE", "1000")
        .env("AMQP_URL", &amqp_url)
        .env("KITCHEN_ID", &kitchen_id)
        .env("STORE_IDS", STORES.join(","))
        .env("REFERENCE_FILE", data_dir.join("reference.toml"))
        .env("AGENT_ORDER_EXCHANGE", &exchange)
        .env("RUST_LOG", "warn")
        .envs(agent_env())
        .stdout(Stdio::null())
        .spawn()
        .context("agent starts")?;
    let pid = agent.id();
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
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (idle_rss, _, idle_anon) = rss_kib(pid);
        let connection = Connection::connect(&amqp_url, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        let mut bench = Bench {
            base: base.clone(),
            channel: channel.clone(),
            exchange: exchange.clone(),
            sequences: [0; 3],
            next: 0,
            http: kitchen_testkit::http::client(),
        };
        let size = std::fs::metadata(binary)?.len();
        println!(
            "edge-agent stream benchmark: {rate} orders/s for {seconds} s per phase, burst of {burst}, \
             {clients} clients, {} cores",
            std::thread::available_parallelism().map_or(0, usize::from)
        );
        println!(
            "binary: {} ({:.1} MiB, as built for this bench; see docs/benchmarks.md for release)",
            binary,
            size as f64 / 1048576.0
        );
        println!("RSS idle: {} ({} anonymous)", mib(idle_rss), mib(idle_anon));
        if let Some(budget) = &budget {
            println!(
                "agent in a Pi budget (cgroup v1): {} % of a core, {} MiB",
                budget.cpu_percent, budget.memory_mib
            );
        }

        let url = format!("{base}/orders/events");
        for listeners in [1, clients] {
            let sent: Sent = Arc::default();
            let count = rate * seconds;
            let mut handles = Vec::new();
            for _ in 0..listeners {
                handles.push(client(url.clone(), sent.clone(), count).await?);
            }
            bench.publish(&sent, count, rate).await?;
            let mut latencies = Vec::new();
            for handle in handles {
                let got = tokio::time::timeout(Duration::from_secs(30), handle)
                    .await
                    .context("clients did not receive every order within 30 s")??;
                anyhow::ensure!(got.len() == count, "a client saw {} of {count}", got.len());
                latencies.extend(got);
            }
            let (rss, peak, anon) = rss_kib(pid);
            latencies.sort();
            println!(
                "{listeners:>3} client(s), {rate}/s: {} deliveries, p50 {}, p99 {}, max {}, RSS {} ({} anonymous, peak {})",
                latencies.len(),
                ms(percentile(&latencies, 0.5)),
                ms(percentile(&latencies, 0.99)),
                ms(latencies.last().copied().unwrap_or_default()),
                mib(rss),
                mib(anon),
                mib(peak),
            );
        }
        // Let the simulated cooks and couriers finish.
        tokio::time::sleep(BUMP_AFTER + PICKUP_AFTER_BUMP + Duration::from_secs(1)).await;

        let sent: Sent = Arc::default();
        let mut handles = Vec::new();
        for _ in 0..clients {
            handles.push(client(url.clone(), sent.clone(), burst).await?);
        }
        let started = Instant::now();
        bench.publish(&sent, burst, 0).await?;
        let published = started.elapsed();
        let mut latencies = Vec::new();
        for handle in handles {
            let got = tokio::time::timeout(Duration::from_secs(120), handle)
                .await
                .context("burst not delivered within 120 s")??;
            anyhow::ensure!(got.len() == burst, "a client saw {} of {burst}", got.len());
            latencies.extend(got);
        }
        let elapsed = started.elapsed();
        latencies.sort();
        let (_, peak, _) = rss_kib(pid);
        println!(
            "burst: {burst} orders published in {}, on all {clients} clients after {} → {:.0} orders/s sustained; \
             p50 {}, p99 {}",
            ms(published),
            ms(elapsed),
            burst as f64 / elapsed.as_secs_f64(),
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&latencies, 0.99)),
        );
        println!("RSS peak over the run: {}", mib(peak));
        if let Some(budget) = &budget {
            println!("Pi budget: {}", budget.report());
        }
        // The agent's own side of the latency: how long its write transactions took.
        let metrics = kitchen_testkit::http::get(format!("{base}/metrics")).await?.text().await?;
        let value = |name: &str| {
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let jobs = value("edge_agent_write_jobs_total");
        println!(
            "agent writes: {jobs:.0} transactions, mean {:.2} ms, longest {:.2} ms",
            value("edge_agent_write_seconds_total") / jobs.max(1.0) * 1e3,
            value("edge_agent_write_seconds_max") * 1e3,
        );
        let _ = connection.close(200, "bench done".into()).await;
        Ok::<_, anyhow::Error>(channel)
    }
    .await;

    let _ = agent.kill();
    let _ = agent.wait();
    drop(broker);
    let _ = std::fs::remove_dir_all(&data_dir);
    result.map(|_| ())
}
