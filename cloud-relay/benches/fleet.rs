//! The fleet channel under load: N simulated boxes (rumqttc v5 clients in this process, each
//! with a will, the telemetry document of docs/fleet.md) against one testkit Mosquitto and one
//! relay run as its own process (the built `cloud-relay`, so its CPU time can be read from
//! /proc). Prints telemetry rows committed per second, command round trips (publish → reply
//! committed; each publisher's first command, which makes its connection, not counted) and the
//! reconnect storm after a broker restart.
//!
//! Knobs: FLEET_BOXES (1000), FLEET_TELEMETRY_ROUNDS (5), FLEET_COMMANDS (200),
//! FLEET_COMMAND_CONCURRENCY (8). Run: `cargo bench -p cloud-relay --bench fleet`.

use std::{
    process::Stdio,
    sync::Arc,
    time::{Duration, Instant},
};

use cloud_relay::fleet::{self, Commander, FleetMetrics};
use kitchen_testkit::{
    bench::{env_or, ms, percentile},
    db::TestDb,
    mqtt::{Mosquitto, RELAY_PASSWORD, free_port},
    names::unique,
};
use rumqttc::v5::{
    AsyncClient, Event, MqttOptions,
    mqttbytes::{
        QoS,
        v5::{LastWill, Packet, PublishProperties},
    },
};
use secrecy::SecretString;
use sqlx::PgPool;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn telemetry(kitchen: usize, at: i64) -> String {
    serde_json::json!({
        "at": at, "version": "0.1.0", "boot_id": format!("boot-{kitchen}"), "uptime_s": 3600,
        "feed": "connected",
        "sync": {"state": "connected", "backlog": kitchen % 3, "oldest_unsynced_ms": null},
        "sequence_gaps": 0,
        "reference": {"version": 7, "status": "version 7 from postgresql"},
        "scanners": {"connected": 2, "configured": 2},
        "orders": {"open": 14, "late": kitchen % 2},
        "tablets": 5,
        "disk": {"free_bytes": 21474836480_i64, "total_bytes": 31268536320_i64},
        "memory": {"rss_bytes": 25165824, "available_bytes": 3221225472_i64},
        "cpu_temp_c": 51.5,
        "clock_synced": true
    })
    .to_string()
}

fn presence(kitchen: usize) -> String {
    serde_json::json!({"state":"online","since":now_ms(),"version":"0.1.0",
                       "boot_id": format!("boot-{kitchen}")})
    .to_string()
}

/// One simulated box: announces itself on every connect, answers every command.
fn spawn_box(port: u16, n: usize, password: String) -> AsyncClient {
    let kitchen = format!("bench-k{n}");
    let mut options = MqttOptions::new(format!("box-{kitchen}"), "127.0.0.1", port);
    options
        .set_credentials(kitchen.clone(), password)
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_start(false)
        .set_session_expiry_interval(Some(3600))
        .set_max_packet_size(Some(1024 * 1024))
        .set_last_will(LastWill::new(
            format!("kitchens/{kitchen}/presence"),
            serde_json::json!({"state":"offline","reason":"lost","version":"0.1.0"}).to_string(),
            QoS::AtLeastOnce,
            true,
            None,
        ));
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    options.set_network_options(network);
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let handle = client.clone();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = handle
                        .try_subscribe(format!("kitchens/{kitchen}/commands/#"), QoS::AtLeastOnce);
                    let _ = handle.try_publish(
                        format!("kitchens/{kitchen}/presence"),
                        QoS::AtLeastOnce,
                        true,
                        presence(n),
                    );
                }
                Ok(Event::Incoming(Packet::Publish(command))) => {
                    let Some(properties) = command.properties else {
                        continue;
                    };
                    let Some(topic) = properties.response_topic else {
                        continue;
                    };
                    let id: serde_json::Value =
                        serde_json::from_slice(&command.payload).unwrap_or_default();
                    let reply = serde_json::json!({"id": id["id"], "command": "ping", "ok": true,
                                                   "at": now_ms(), "result": {"pong": true}});
                    let _ = handle.try_publish_with_properties(
                        topic,
                        QoS::AtLeastOnce,
                        false,
                        reply.to_string(),
                        PublishProperties {
                            correlation_data: properties.correlation_data,
                            ..Default::default()
                        },
                    );
                }
                Ok(_) => {}
                Err(_) => {
                    let jitter = 500 + rand::random::<u64>() % 1000;
                    tokio::time::sleep(Duration::from_millis(jitter)).await;
                }
            }
        }
    });
    client
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap_or(-1)
}

async fn wait_count(pool: &PgPool, sql: &str, target: i64, limit: Duration) -> (Duration, i64) {
    let started = Instant::now();
    loop {
        let n = count(pool, sql).await;
        if n >= target || started.elapsed() > limit {
            return (started.elapsed(), n);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// utime + stime of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After the command name: state is field 0, utime 11, stime 12.
    (ticks(11) + ticks(12)) / 100.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo test --all-targets` runs this without --bench: a small smoke run then.
    let smoke = !std::env::args().any(|arg| arg == "--bench");
    let boxes = env_or("FLEET_BOXES", if smoke { 20 } else { 1000 });
    let rounds = env_or("FLEET_TELEMETRY_ROUNDS", if smoke { 2 } else { 5 });
    let commands = env_or("FLEET_COMMANDS", if smoke { 10 } else { 200 });
    let concurrency = env_or("FLEET_COMMAND_CONCURRENCY", 8);

    let mut broker = Mosquitto::start(&[]);
    // Every box's login, hashed here (as `kitchen add` does) rather than by 1000 runs of
    // mosquitto_passwd.
    let password = "bench-box-password".to_owned();
    let mut file = std::fs::read_to_string(broker.password_file())?;
    for n in 0..boxes {
        let hashed = fleet::passwd::hash(&SecretString::from(password.clone()));
        file.push_str(&format!("bench-k{n}:{hashed}\n"));
    }
    std::fs::write(broker.password_file(), file)?;
    broker.reload();

    let db = TestDb::create().await;
    let admin_port = free_port();
    let id = unique("fleetbench");
    let mut relay = tokio::process::Command::new(env!("CARGO_BIN_EXE_cloud-relay"))
        .env("DATABASE_URL", &db.url)
        .env("AMQP_URL", kitchen_testkit::amqp::amqp_url())
        .env("RELAY_ORDER_EXCHANGE", format!("{id}.orders"))
        .env("RELAY_RAW_EVENTS_EXCHANGE", format!("{id}.raw"))
        .env("OTTER_WEBHOOK_SECRET", "bench")
        .env("RELAY_LISTEN", "127.0.0.1:0")
        .env("RELAY_ADMIN_LISTEN", format!("127.0.0.1:{admin_port}"))
        .env("RELAY_DATABASE_POOL_SIZE", "8")
        .env("MQTT_URL", broker.url())
        .env("MQTT_PASSWORD", RELAY_PASSWORD)
        .env("RUST_LOG", "warn")
        .env_remove("RELAY_CONFIG")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let relay_pid = relay.id().unwrap_or(0);
    // The relay migrates at start; then the kitchens can be added.
    wait_count(
        &db.pool,
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'fleet'",
        3,
        Duration::from_secs(60),
    )
    .await;
    let ids: Vec<String> = (0..boxes).map(|n| format!("bench-k{n}")).collect();
    sqlx::query("INSERT INTO kitchen.kitchens (kitchen_id) SELECT unnest($1::text[])")
        .bind(&ids)
        .execute(&db.pool)
        .await?;

    println!(
        "fleet benchmark: {boxes} boxes, {rounds} telemetry rounds, {commands} commands \
         ({concurrency} at once); relay pid {relay_pid}"
    );
    let started = Instant::now();
    let clients: Vec<AsyncClient> = (0..boxes)
        .map(|n| spawn_box(broker.port(), n, password.clone()))
        .collect();
    let online = "SELECT count(*) FROM kitchen.devices WHERE presence = 'online'";
    let (took, n) = wait_count(&db.pool, online, boxes as i64, Duration::from_secs(120)).await;
    let _ = took;
    println!(
        "connect: {n}/{boxes} online in PostgreSQL after {:.2} s",
        started.elapsed().as_secs_f64()
    );

    // Telemetry: every box sends `rounds` documents as fast as it can.
    let before = count(&db.pool, "SELECT count(*) FROM fleet.telemetry").await;
    let cpu_before = cpu_seconds(relay_pid);
    let base = now_ms();
    let sent = Instant::now();
    for round in 0..rounds {
        for (n, client) in clients.iter().enumerate() {
            client
                .publish(
                    format!("kitchens/bench-k{n}/telemetry"),
                    QoS::AtMostOnce,
                    true,
                    telemetry(n, base + round as i64 * 1000),
                )
                .await?;
        }
    }
    let target = before + (boxes * rounds) as i64;
    let (took, rows) = wait_count(
        &db.pool,
        "SELECT count(*) FROM fleet.telemetry",
        target,
        Duration::from_secs(120),
    )
    .await;
    let committed = rows - before;
    let elapsed = sent.elapsed().max(took);
    println!(
        "telemetry: {committed}/{} rows committed in {:.2} s = {:.0} rows/s; relay CPU {:.2} s",
        boxes * rounds,
        elapsed.as_secs_f64(),
        committed as f64 / elapsed.as_secs_f64(),
        cpu_seconds(relay_pid) - cpu_before
    );

    // Commands: publish → reply committed in fleet.commands.
    let mut config = cloud_relay::config::MqttConfig {
        url: Some(broker.url()),
        password: Some(SecretString::from(RELAY_PASSWORD)),
        ..Default::default()
    };
    config.client_id = "bench".into();
    let mut latencies = Vec::with_capacity(commands);
    let concurrency = concurrency.clamp(1, commands.max(1));
    let per_worker = commands / concurrency;
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let commander = Commander::new(
            db.pool.clone(),
            config.clone(),
            Arc::new(FleetMetrics::default()),
        );
        let pool = db.pool.clone();
        workers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            // Unmeasured: the first command makes this publisher's MQTT connection.
            let _ = commander.send("bench-k0", "ping", "bench warm-up").await;
            for i in 0..per_worker {
                let kitchen = format!("bench-k{}", (w * per_worker + i) % boxes.max(1));
                let start = Instant::now();
                let Ok(sent) = commander.send(&kitchen, "ping", "bench").await else {
                    continue;
                };
                loop {
                    if fleet::store::reply_of(&pool, sent.id)
                        .await
                        .ok()
                        .flatten()
                        .is_some()
                    {
                        out.push(start.elapsed());
                        break;
                    }
                    if start.elapsed() > Duration::from_secs(10) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            out
        }));
    }
    for worker in workers {
        latencies.extend(worker.await?);
    }
    latencies.sort();
    println!(
        "commands: {} round trips, p50 {}, p99 {}, max {}",
        latencies.len(),
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default())
    );

    // Reconnect storm: the broker restarts; every box reconnects and announces itself.
    broker.stop();
    // The relay is writing the boxes' wills meanwhile, in its own order: a deadlock between
    // the two is possible and only means "again".
    for attempt in 1.. {
        match sqlx::query("UPDATE kitchen.devices SET presence = 'offline'")
            .execute(&db.pool)
            .await
        {
            Ok(_) => break,
            Err(sqlx::Error::Database(error))
                if error.code().as_deref() == Some("40P01") && attempt < 10 =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
    let cpu_before = cpu_seconds(relay_pid);
    let restarted = Instant::now();
    broker.start_again();
    let (took, n) = wait_count(&db.pool, online, boxes as i64, Duration::from_secs(180)).await;
    println!(
        "reconnect storm: {n}/{boxes} online in PostgreSQL {:.2} s after the broker restarted; \
         relay CPU {:.2} s",
        restarted.elapsed().max(took).as_secs_f64(),
        cpu_seconds(relay_pid) - cpu_before
    );
    let _ = relay.start_kill();
    let _ = relay.wait().await;
    drop(clients);
    Ok(())
}
