//! Webhook ingest benchmark: N concurrent senders POST signed, realistic Otter orders to the
//! real relay (real PostgreSQL, real RabbitMQ) and it prints throughput and latency, both for
//! the answer (after the PostgreSQL commit) and end to end (through the broker confirm).
//!
//! `cargo bench -p cloud-relay --bench ingest`; tune with BENCH_EVENTS (default 20000),
//! BENCH_CONCURRENCY (64), BENCH_STORES (16), BENCH_WARMUP (20000: orders stored before the
//! measured run, then `ANALYZE`, so the database is one in service with statistics, not an
//! empty one whose cached plans scan whole tables; 0 for the empty database).
//! `BENCH_RELAY_PROCESS=1` runs the relay as its own process (the `cloud-relay` binary,
//! configured by its environment), so the load generator's CPU is not the relay's. Uses a
//! database and exchanges of its own and removes them afterwards. Under `cargo test` (no
//! `--bench` flag) it runs a 300-event smoke pass after a 100-event warm-up, so the benchmark
//! cannot rot.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use cloud_relay::{App, Config, otter::WebhookSigner};
use kitchen_testkit::{
    amqp::{BrokerObjects, amqp_url},
    bench::{env_or, ms, percentile},
    db::TestDb,
    names::unique,
};
use lapin::{
    Connection, ConnectionProperties, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::FieldTable,
};
use secrecy::ExposeSecret;
use secrecy::SecretString;
use tokio::sync::Mutex;

const NEW_ORDER: &str = include_str!("../tests/fixtures/new_order.json");

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cloud_relay::telemetry::init(false);
    let smoke = !std::env::args().any(|arg| arg == "--bench");
    let events = env_or("BENCH_EVENTS", if smoke { 300 } else { 20_000 });
    let concurrency = env_or("BENCH_CONCURRENCY", 64);
    let stores = env_or("BENCH_STORES", 16);
    let warmup = env_or("BENCH_WARMUP", if smoke { 100 } else { 20_000 });
    let amqp_url = amqp_url();
    let id = unique("relay_bench");

    // A database and broker objects of its own, removed when the benchmark ends.
    let db = TestDb::create().await;
    let amqp = Connection::connect(&amqp_url, ConnectionProperties::default()).await?;
    let channel = amqp.create_channel().await?;
    let order_exchange = format!("{id}.structured_order_data");
    let raw_exchange = format!("{id}.otter_events");
    let queue = format!("{id}.kitchen");
    let broker = BrokerObjects::new();
    broker.add_queue(&queue);
    broker.add_exchange(&order_exchange);
    broker.add_exchange(&raw_exchange);
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .exchange_declare(
            order_exchange.as_str().into(),
            ExchangeKind::Direct,
            durable,
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    for store in 0..stores {
        channel
            .queue_bind(
                queue.as_str().into(),
                order_exchange.as_str().into(),
                format!("bench-store-{store}").as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }

    println!("cloud-relay ingest benchmark");
    let result = run(
        &db.url,
        &amqp_url,
        &order_exchange,
        &raw_exchange,
        Load {
            warmup,
            events,
            concurrency,
            stores,
        },
    )
    .await;

    let _ = amqp.close(200, "bench done".into()).await;
    drop(broker);
    drop(db);
    result
}

async fn run(
    database_url: &str,
    amqp_url: &str,
    order_exchange: &str,
    raw_exchange: &str,
    load: Load,
) -> anyhow::Result<()> {
    let Load {
        warmup,
        events,
        concurrency,
        stores,
    } = load;
    let secret = "bench-secret";
    let config = Config {
        listen: "127.0.0.1:0".parse()?,
        admin_listen: "127.0.0.1:0".parse()?,
        database_url: SecretString::from(
            std::env::var("BENCH_RELAY_DATABASE_URL")
                .map(|u| {
                    u.replace(
                        "{db}",
                        database_url.rsplit_once('/').map_or("", |(_, db)| db),
                    )
                })
                .unwrap_or_else(|_| database_url.to_owned()),
        ),
        amqp_url: SecretString::from(amqp_url.to_owned()),
        order_exchange: order_exchange.to_owned(),
        raw_events_exchange: raw_exchange.to_owned(),
        otter_webhook_secret: Some(SecretString::from(secret)),
        ..Config::default()
    };
    // Tuning knobs (RELAY_INGEST_WRITERS, RELAY_INGEST_BATCH_MAX, RELAY_PUBLISH_BATCH_MAX) may
    // come from the environment; where to connect never does.
    let mut config = config;
    config.apply_env(|name| {
        let tuning = name.starts_with("RELAY_INGEST_") || name.starts_with("RELAY_PUBLISH_");
        tuning.then(|| std::env::var(name).ok()).flatten()
    })?;
    println!(
        "  relay: {} writers, batches up to {}, publish window {}",
        config.ingest_writers, config.ingest_batch_max, config.publish_batch_max
    );
    let relay = Relay::start(config).await?;
    let url = format!("{}/webhooks/otter", relay.base);

    // The database as a relay in service has it: `warmup` orders already stored and the
    // statistics gathered (autovacuum's ANALYZE), so the plans are the ones production runs.
    let template: serde_json::Value = serde_json::from_str(NEW_ORDER)?;
    let signer = WebhookSigner::new(SecretString::from(secret));
    let client = kitchen_testkit::http::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let pool = sqlx::PgPool::connect(database_url).await?;
    if warmup > 0 {
        let bodies = bodies(&template, &signer, "warmup", warmup, stores);
        let (_, failures, took) = send(&client, &url, bodies, concurrency).await?;
        anyhow::ensure!(failures == 0, "{failures} warm-up webhooks failed");
        wait_published(&pool).await?;
        sqlx::query("ANALYZE").execute(&pool).await?;
        println!(
            "  warm-up: {warmup} orders stored in {:.2} s, then ANALYZE",
            took.as_secs_f64()
        );
    }

    // Realistic bodies: the reference order (3 lines, 9 modifiers, 3 levels) with its own ids.
    let bodies = bodies(&template, &signer, "bench", events, stores);
    let body_bytes: usize = bodies.iter().map(|(b, _)| b.len()).sum();
    let started = Instant::now();
    let (mut latencies, failures, acked_in) = send(&client, &url, bodies, concurrency).await?;

    // End to end: until every row is confirmed by the broker.
    wait_published(&pool).await?;
    let published_in = started.elapsed();
    let (p50, p99): (f64, f64) = sqlx::query_as(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM published_at - created_at)),
                percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM published_at - created_at))
         FROM otter.outbox WHERE event_id LIKE 'bench-%'",
    )
    .fetch_one(&pool)
    .await?;
    let (batches, orders): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(DISTINCT xmin::text) FROM otter.webhook_events
                 WHERE event_id LIKE 'bench-%'),
                (SELECT count(*) FROM otter.orders WHERE order_id LIKE 'bench-%')",
    )
    .fetch_one(&pool)
    .await?;
    pool.close().await;
    relay.stop().await?;

    latencies.sort();
    println!(
        "  events {events} ({} KiB bodies, {} avg), senders {concurrency}, stores {stores}",
        body_bytes / 1024,
        body_bytes / events.max(1)
    );
    println!(
        "  answered 200: {} (failures {failures}), orders stored {orders}, commits {batches} (avg {:.1} events/commit)",
        latencies.len(),
        orders as f64 / batches.max(1) as f64
    );
    println!(
        "  ingest throughput (200 after commit): {:.0} webhooks/s over {:.2} s",
        latencies.len() as f64 / acked_in.as_secs_f64(),
        acked_in.as_secs_f64()
    );
    println!(
        "  answer latency: p50 {}  p90 {}  p99 {}  max {}",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.90)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default())
    );
    println!(
        "  end to end (stored + broker confirm): {:.0} events/s over {:.2} s; commit→confirm p50 {} p99 {}",
        events as f64 / published_in.as_secs_f64(),
        published_in.as_secs_f64(),
        ms(Duration::from_secs_f64(p50.max(0.0))),
        ms(Duration::from_secs_f64(p99.max(0.0)))
    );
    anyhow::ensure!(
        failures == 0 && orders as usize == events,
        "{failures} webhooks failed and {orders} of {events} orders were stored"
    );
    Ok(())
}

/// The relay under load: in this process, or (`BENCH_RELAY_PROCESS=1`) the `cloud-relay` binary
/// as a child process of its own, given `config` through its environment.
struct Relay {
    base: String,
    running: Running,
}

enum Running {
    InProcess(
        tokio_util::sync::CancellationToken,
        tokio::task::JoinHandle<anyhow::Result<()>>,
    ),
    Child(tokio::process::Child),
}

impl Relay {
    async fn start(config: Config) -> anyhow::Result<Self> {
        if std::env::var("BENCH_RELAY_PROCESS").is_ok_and(|v| v == "1") {
            let (port, admin) = (free_port()?, free_port()?);
            let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_cloud-relay"))
                .env("RELAY_LISTEN", format!("127.0.0.1:{port}"))
                .env("RELAY_ADMIN_LISTEN", format!("127.0.0.1:{admin}"))
                .env("DATABASE_URL", config.database_url.expose_secret())
                .env("AMQP_URL", config.amqp_url.expose_secret())
                .env("RELAY_ORDER_EXCHANGE", &config.order_exchange)
                .env("RELAY_RAW_EVENTS_EXCHANGE", &config.raw_events_exchange)
                .env(
                    "OTTER_WEBHOOK_SECRET",
                    config
                        .otter_webhook_secret
                        .as_ref()
                        .map(|s| s.expose_secret().to_owned())
                        .unwrap_or_default(),
                )
                .env("RELAY_INGEST_WRITERS", config.ingest_writers.to_string())
                .env(
                    "RELAY_INGEST_BATCH_MAX",
                    config.ingest_batch_max.to_string(),
                )
                .env(
                    "RELAY_PUBLISH_BATCH_MAX",
                    config.publish_batch_max.to_string(),
                )
                .env("RUST_LOG", "warn")
                .kill_on_drop(true)
                .spawn()
                .context("the cloud-relay binary starts")?;
            // The process is starting: a refused connection is waited out too.
            let ready = format!("http://127.0.0.1:{admin}/readyz");
            let deadline = Instant::now() + Duration::from_secs(60);
            while !kitchen_testkit::http::get(&ready)
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                anyhow::ensure!(Instant::now() < deadline, "the relay is not ready in 60 s");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            println!("  relay: its own process (pid {})", child.id().unwrap_or(0));
            return Ok(Self {
                base: format!("http://127.0.0.1:{port}"),
                running: Running::Child(child),
            });
        }
        let app = App::build(config).await?;
        let base = format!("http://127.0.0.1:{}", app.port());
        let token = app.shutdown_token();
        let task = tokio::spawn(app.run_until_stopped());
        Ok(Self {
            base,
            running: Running::InProcess(token, task),
        })
    }

    async fn stop(self) -> anyhow::Result<()> {
        match self.running {
            Running::InProcess(token, task) => {
                token.cancel();
                task.await?
            }
            Running::Child(mut child) => {
                if let Some(pid) = child.id() {
                    std::process::Command::new("kill")
                        .args(["-TERM", &pid.to_string()])
                        .status()?;
                }
                let status = child.wait().await?;
                anyhow::ensure!(status.success(), "the relay exited with {status}");
                Ok(())
            }
        }
    }
}

/// What the senders send: `warmup` orders first (not measured), then `events`.
struct Load {
    warmup: usize,
    events: usize,
    concurrency: usize,
    stores: usize,
}

/// `count` signed copies of the reference order with their own event, order and store ids.
fn bodies(
    template: &serde_json::Value,
    signer: &WebhookSigner,
    prefix: &str,
    count: usize,
    stores: usize,
) -> Vec<(Vec<u8>, String)> {
    (0..count)
        .map(|n| {
            let mut event = template.clone();
            let order_id = format!("{prefix}-order-{n}");
            event["eventId"] = format!("{prefix}-event-{n}").into();
            event["metadata"]["storeId"] = format!("bench-store-{}", n % stores).into();
            event["metadata"]["resourceId"] = order_id.clone().into();
            event["metadata"]["payload"]["externalIdentifiers"]["id"] = order_id.into();
            let body = serde_json::to_vec(&event).expect("serialises");
            let signature = signer.sign(&body);
            (body, signature)
        })
        .collect()
}

/// Posts `bodies` from `concurrency` senders; returns the latencies of the 200s, the number of
/// failures and how long it took.
async fn send(
    client: &reqwest::Client,
    url: &str,
    bodies: Vec<(Vec<u8>, String)>,
    concurrency: usize,
) -> anyhow::Result<(Vec<Duration>, usize, Duration)> {
    let work = Arc::new(Mutex::new(bodies.into_iter()));
    let started = Instant::now();
    let senders: Vec<_> = (0..concurrency)
        .map(|_| {
            let work = work.clone();
            let client = client.clone();
            let url = url.to_owned();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut failures = 0usize;
                loop {
                    let Some((body, signature)) = work.lock().await.next() else {
                        break;
                    };
                    let sent = Instant::now();
                    let response = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .header("x-hmac-sha256", signature)
                        .body(body)
                        .send()
                        .await;
                    match response {
                        Ok(r) if r.status() == 200 => latencies.push(sent.elapsed()),
                        _ => failures += 1,
                    }
                }
                (latencies, failures)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut failures = 0;
    for sender in senders {
        let (l, f) = sender.await?;
        latencies.extend(l);
        failures += f;
    }
    Ok((latencies, failures, started.elapsed()))
}

/// Until every outbox row is confirmed by the broker.
async fn wait_published(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    loop {
        let pending: i64 =
            sqlx::query_scalar("SELECT count(*) FROM otter.outbox WHERE published_at IS NULL")
                .fetch_one(pool)
                .await?;
        if pending == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
