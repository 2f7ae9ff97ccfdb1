//! The agent's sync with a real PostgreSQL (a fresh database migrated by the relay's own
//! migrations, a kitchen provisioned with its own role): records pushed exactly once through an
//! outage, reference data pulled and swapped in, missed orders reconciled.

mod common;

use std::time::{Duration, Instant};

use common::{
    TestAgent,
    cloud::{Cloud, postgres_addr},
    wait_until,
};
use kitchen_proto::OrderEvent;
use kitchen_testkit::{
    amqp::amqp_url,
    events::{line, new_order},
    http::{SseReader, get_json},
    names::unique,
    proxy::Proxy,
};
use prost::Message;

const STORE: &str = "kitchen-bk-01";
const REFERENCE: &str = include_str!("fixtures/sample_kitchen.toml");

fn order(sequence: u64, order_id: &str, line_name: &str) -> OrderEvent {
    new_order(STORE, order_id)
        .sequence(sequence)
        .friendly_id(order_id.to_uppercase())
        .item(line(line_name, 1, vec![]))
        .build()
}

async fn sync_state(base: &str) -> serde_json::Value {
    get_json(&format!("{base}/readyz")).await["sync"].clone()
}

/// The kinds and order ids of every synced record in the agent's event log, sorted.
async fn logged_records(base: &str) -> Vec<(String, String)> {
    let mut log = SseReader::open(&format!("{base}/orders/events"), Some("0")).await;
    let mut records = Vec::new();
    while let Some((_, kind, data)) = log.next_within(Duration::from_millis(500)).await {
        let record = edge_agent::record::Record::parse(&kind, &data.to_string());
        if record.is_ok_and(|record| record.is_synced()) {
            let key = match kind.split('.').next() {
                Some("scan") => "scan_id",
                Some("batch") => "session_id",
                _ => "order_id",
            };
            let id = data[key].as_str().unwrap_or_default().to_owned();
            records.push((kind, id));
        }
    }
    records.sort();
    records
}

/// PostgreSQL unreachable while 200 orders arrive, are bumped and 300 scans happen: the LAN
/// answers throughout; once it is reachable every record is there exactly once.
#[tokio::test]
async fn records_made_offline_all_reach_postgresql_exactly_once() {
    let cloud = Cloud::create(&unique("sync-kitchen")).await;
    cloud.import(REFERENCE).await;
    let proxy = Proxy::start(postgres_addr()).await;
    proxy.cut();
    let url = cloud.agent_url(proxy.addr);
    let kitchen_id = cloud.kitchen_id.clone();
    let kitchen = TestAgent::start_with(Some(REFERENCE), &[STORE], move |config| {
        config.kitchen_id = kitchen_id;
        config.database_url = Some(url);
        config.sync_batch = 64;
    })
    .await;
    let base = kitchen.base.clone();
    for n in 1..=200u64 {
        kitchen
            .publish(&order(n, &format!("o{n}"), "Double Smash Burger"))
            .await;
    }
    wait_until("200 orders", Duration::from_secs(30), || async {
        get_json(&format!("{base}/api/orders?state=open")).await["orders"]
            .as_array()
            .map_or(0, Vec::len)
            == 200
    })
    .await;
    // The LAN side while PostgreSQL is away: every request answered, and quickly.
    let client = kitchen_testkit::http::client();
    let mut slowest = Duration::ZERO;
    for n in 1..=200 {
        let started = Instant::now();
        let response = client
            .post(format!("{base}/api/orders/o{n}/bump?station=grill"))
            .send()
            .await
            .expect("bump answers");
        assert_eq!(response.status(), 200);
        slowest = slowest.max(started.elapsed());
    }
    for n in 1..=300 {
        let started = Instant::now();
        let response = client
            .post(format!("{base}/api/scans"))
            .json(&serde_json::json!({"device": "grill-1", "station": "grill", "code": format!("ORDER:o{n}")}))
            .send()
            .await
            .expect("scan answers");
        assert_eq!(response.status(), if n <= 200 { 200 } else { 422 });
        slowest = slowest.max(started.elapsed());
    }
    assert!(
        slowest < Duration::from_secs(2),
        "the LAN stalled: slowest request {slowest:?}"
    );
    let ready = get_json(&format!("{base}/readyz")).await;
    let sync = ready["sync"].clone();
    assert_eq!(sync["state"], "disconnected", "{sync}");
    assert_eq!(
        ready["reference"],
        "loaded; postgresql unreachable: keeping this copy"
    );
    assert_eq!(
        cloud.count("SELECT count(*) FROM kitchen.scans").await,
        0,
        "nothing can have arrived"
    );
    let expected = logged_records(&base).await;
    assert_eq!(
        sync["backlog"].as_u64(),
        Some(expected.len() as u64),
        "every record waits in the outbox"
    );

    proxy.restore();
    wait_until("the backlog to drain", Duration::from_secs(60), || async {
        let sync = sync_state(&base).await;
        sync["backlog"] == 0 && sync["state"] == "connected"
    })
    .await;
    let mut in_postgres: Vec<(String, String)> = sqlx::query_as(
        "SELECT kind, order_id FROM kitchen.order_events
         UNION ALL SELECT CASE WHEN accepted THEN 'scan.recorded' ELSE 'scan.rejected' END,
                          scan_id::text FROM kitchen.scans",
    )
    .fetch_all(&cloud.db.pool)
    .await
    .expect("records");
    in_postgres.sort();
    assert_eq!(in_postgres, expected, "every record exactly once");
    assert_eq!(
        (
            cloud
                .count("SELECT count(*) FROM kitchen.order_events WHERE kind = 'order.created'")
                .await,
            cloud
                .count("SELECT count(*) FROM kitchen.order_events WHERE kind = 'order.bumped'")
                .await,
            cloud
                .count("SELECT count(*) FROM kitchen.scans WHERE accepted")
                .await,
            cloud
                .count("SELECT count(*) FROM kitchen.scans WHERE NOT accepted")
                .await,
        ),
        (200, 200, 200, 100)
    );
    // Who did it travels with the record: the paired device (and the tablet's scanner).
    assert_eq!(
        (
            cloud
                .count(
                    "SELECT count(*) FROM kitchen.order_events
                     WHERE kind = 'order.bumped' AND data->>'device' = 'test-manager'",
                )
                .await,
            cloud
                .count("SELECT count(*) FROM kitchen.scans WHERE device = 'test-manager / grill-1'")
                .await,
        ),
        (200, 300)
    );
    let raw: Vec<u8> = sqlx::query_scalar(
        "SELECT raw FROM kitchen.scans WHERE NOT accepted ORDER BY scanned_at LIMIT 1",
    )
    .fetch_one(&cloud.db.pool)
    .await
    .expect("raw");
    assert_eq!(raw, b"ORDER:o201");
    // The heartbeat says who the box is.
    wait_until("the heartbeat", Duration::from_secs(10), || async {
        cloud
            .count(
                "SELECT count(*) FROM kitchen.devices
                 WHERE unsynced_backlog = 0 AND feed_state = 'connected'
                   AND agent_version = '0.1.0' AND sequence_gaps = '[]'",
            )
            .await
            == 1
    })
    .await;
    kitchen.stop().await;
}

/// A reference change in PostgreSQL reaches the agent within the poll interval: the displays
/// hear `reference.updated`, the new station is listed and the counts follow.
#[tokio::test]
async fn a_reference_change_in_postgresql_moves_the_counts() {
    let cloud = Cloud::create(&unique("sync-kitchen")).await;
    cloud.import(REFERENCE).await;
    let url = cloud.agent_url(postgres_addr());
    let kitchen_id = cloud.kitchen_id.clone();
    let kitchen = TestAgent::start_with(Some(REFERENCE), &[STORE], move |config| {
        config.kitchen_id = kitchen_id;
        config.database_url = Some(url);
        config.reference_poll_secs = 1;
    })
    .await;
    let base = kitchen.base.clone();
    kitchen.publish(&order(1, "p1", "Beef Pho")).await;
    kitchen.publish(&order(2, "p2", "Beef Pho")).await;
    let count_at = |station: &'static str| {
        let base = base.clone();
        async move {
            let batches = get_json(&format!("{base}/api/batches?station={station}")).await;
            batches["items"][0]["quantity"].as_u64().unwrap_or(0)
        }
    };
    wait_until("the pho at unassigned", Duration::from_secs(20), || async {
        count_at("unassigned").await == 2
    })
    .await;
    assert_eq!(count_at("unassigned").await, 2);
    let mut live = SseReader::open(&format!("{base}/orders/events"), None).await;
    let version = cloud
        .import(&format!(
            "{REFERENCE}\n[[stations]]\nid = \"wok\"\nname = \"Noodles\"\n\n[[items]]\nid = \"pho\"\nname = \"Beef Pho\"\nstation = \"wok\"\nprep_seconds = 300\nmatch = [\"Beef Pho\"]\n"
        ))
        .await;
    assert_eq!(version, 2);
    let started = Instant::now();
    loop {
        let Some((_, kind, data)) = live.next_within(Duration::from_secs(10)).await else {
            panic!("no reference.updated within 10 s");
        };
        if kind == "reference.updated" {
            assert_eq!(data["source"], "postgresql version 2");
            break;
        }
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let stations = get_json(&format!("{base}/api/stations")).await;
    assert!(
        stations["stations"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["id"] == "wok")),
        "{stations}"
    );
    assert_eq!(count_at("wok").await, 2);
    assert_eq!(count_at("unassigned").await, 0);
    let ready = get_json(&format!("{base}/readyz")).await;
    assert!(
        ready["reference"]
            .as_str()
            .is_some_and(|r| r.starts_with("postgresql version 2")),
        "{ready}"
    );
    kitchen.stop().await;
}

/// Events that reached PostgreSQL but never the kitchen's queue are found on the next gap and
/// applied once; when one does arrive later over RabbitMQ it changes nothing.
#[tokio::test]
async fn orders_the_queue_missed_are_reconciled_from_postgresql_exactly_once() {
    let cloud = Cloud::create(&unique("sync-kitchen")).await;
    cloud.import(REFERENCE).await;
    let url = cloud.agent_url(postgres_addr());
    let kitchen_id = cloud.kitchen_id.clone();
    let kitchen = TestAgent::start_with(Some(REFERENCE), &[STORE], move |config| {
        config.kitchen_id = kitchen_id;
        config.database_url = Some(url);
    })
    .await;
    let base = kitchen.base.clone();
    let open = || {
        let base = base.clone();
        async move {
            let orders = get_json(&format!("{base}/api/orders?state=open")).await;
            let mut ids: Vec<String> = orders["orders"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| o["order_id"].as_str().map(str::to_owned))
                .collect();
            ids.sort();
            ids
        }
    };
    kitchen.publish(&order(1, "m1", "Fries")).await;
    wait_until("m1", Duration::from_secs(20), || async {
        open().await.len() == 1
    })
    .await;
    // The relay stored 2–4 (its outbox holds the payload without the sequence, which it adds
    // when publishing) but they never reached the kitchen's queue.
    for n in 2..=4u64 {
        let event = order(n, &format!("m{n}"), "Fries");
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
    // 5 arrives: the gap 2–4 sends the agent to PostgreSQL.
    kitchen.publish(&order(5, "m5", "Fries")).await;
    wait_until("m2–m4 reconciled", Duration::from_secs(20), || async {
        open().await.len() == 5
    })
    .await;
    assert_eq!(open().await, ["m1", "m2", "m3", "m4", "m5"]);
    // A late delivery of 3 over RabbitMQ is a duplicate.
    kitchen.publish(&order(3, "m3", "Fries")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ready = get_json(&format!("{base}/readyz")).await;
    assert_eq!(ready["sequence_gaps"], serde_json::json!([]), "{ready}");
    assert_eq!(ready["sync"]["reconciled"], 3, "{ready}");
    let created = logged_records(&base)
        .await
        .into_iter()
        .filter(|(kind, _)| kind == "order.created")
        .map(|(_, id)| id)
        .collect::<Vec<_>>();
    assert_eq!(created, ["m1", "m2", "m3", "m4", "m5"], "each applied once");
    let fries = get_json(&format!("{base}/api/batches?station=fry")).await;
    assert_eq!(fries["items"][0]["quantity"], 5);
    kitchen.stop().await;
}

/// The real binary killed with SIGKILL while it drains a backlog of 1,500 scans in batches of
/// ten, then restarted: PostgreSQL ends with exactly the 1,500 scans the agent answered.
#[tokio::test]
async fn a_kill_in_the_middle_of_a_sync_batch_loses_and_doubles_nothing() {
    let kitchen_id = unique("sync-kill");
    let cloud = Cloud::create(&kitchen_id).await;
    cloud.import(REFERENCE).await;
    let proxy = Proxy::start(postgres_addr()).await;
    proxy.cut();
    let data_dir = std::env::temp_dir().join(&kitchen_id);
    std::fs::create_dir_all(&data_dir).expect("data dir");
    std::fs::write(data_dir.join("reference.toml"), REFERENCE).expect("reference");
    common::pair_test_manager(&data_dir);
    let exchange = format!("{kitchen_id}.orders");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let base = format!("http://127.0.0.1:{port}");
    common::declare_queue(&kitchen_id, &exchange, &[STORE]).await;
    let start = || {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_edge-agent"))
            .env("AGENT_LISTEN", format!("127.0.0.1:{port}"))
            .env("AGENT_DATA_DIR", &data_dir)
            .env("AGENT_WRITE_RATE", "100000")
            .env("AMQP_URL", amqp_url())
            .env("KITCHEN_ID", &kitchen_id)
            .env("STORE_IDS", STORE)
            .env("REFERENCE_FILE", data_dir.join("reference.toml"))
            .env("AGENT_ORDER_EXCHANGE", &exchange)
            .env("AGENT_DATABASE_URL", cloud.agent_url(proxy.addr))
            .env("AGENT_SYNC_BATCH", "10")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("agent starts");
        KillOnDrop(child)
    };
    let mut agent = start();
    wait_until("the agent", Duration::from_secs(20), || async {
        kitchen_testkit::http::get(format!("{base}/healthz"))
            .await
            .is_ok()
    })
    .await;
    let client = kitchen_testkit::http::client();
    let mut scan_ids = Vec::new();
    for n in 0..1500 {
        let record: serde_json::Value = client
            .post(format!("{base}/api/scans"))
            .json(&serde_json::json!({"device": "fry-1", "station": "fry", "code": format!("ORDER:none-{n}")}))
            .send()
            .await
            .expect("scan")
            .json()
            .await
            .expect("json");
        scan_ids.push(record["scan_id"].as_str().expect("id").to_owned());
    }
    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(30);
    let synced_at_kill = loop {
        let synced = cloud.count("SELECT count(*) FROM kitchen.scans").await;
        if synced >= 100 {
            agent.0.kill().expect("SIGKILL");
            let _ = agent.0.wait();
            break synced;
        }
        assert!(Instant::now() < deadline, "the sync never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(
        synced_at_kill < 1500,
        "the kill should land mid-way (synced {synced_at_kill})"
    );
    let synced_after_kill = cloud.count("SELECT count(*) FROM kitchen.scans").await;
    let _agent = start();
    wait_until("the rest to sync", Duration::from_secs(60), || async {
        let Ok(response) = kitchen_testkit::http::get(format!("{base}/readyz")).await else {
            return false;
        };
        let ready: serde_json::Value = response.json().await.unwrap_or_default();
        ready["sync"]["backlog"] == 0 && ready["sync"]["state"] == "connected"
    })
    .await;
    let mut in_postgres: Vec<String> =
        sqlx::query_scalar("SELECT scan_id::text FROM kitchen.scans")
            .fetch_all(&cloud.db.pool)
            .await
            .expect("scans");
    in_postgres.sort();
    scan_ids.sort();
    assert_eq!(
        in_postgres.len(),
        1500,
        "killed at {synced_after_kill} synced"
    );
    assert_eq!(
        in_postgres, scan_ids,
        "exactly the scans answered, once each"
    );
    drop(_agent);
    common::remove_kitchen(&kitchen_id, &exchange, &data_dir);
}

/// The agent process; SIGKILLed when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A box upgraded with records waiting in the outbox (a store made by migrations 0001–0010;
/// one record already in PostgreSQL, as after a crash between its push and its delete): after
/// migration 0011 they all reach PostgreSQL once, under the ids they were made with, and so do
/// the records made since, which the sync now reads from the event log.
#[tokio::test]
async fn records_left_in_the_outbox_by_an_older_agent_are_pushed_once() {
    const OLD_MIGRATIONS: [&str; 10] = [
        include_str!("../migrations/0001_init.sql"),
        include_str!("../migrations/0002_batches_ready_stations.sql"),
        include_str!("../migrations/0003_reference_cache.sql"),
        include_str!("../migrations/0004_scans.sql"),
        include_str!("../migrations/0005_prep_stock.sql"),
        include_str!("../migrations/0006_sync_outbox.sql"),
        include_str!("../migrations/0007_devices.sql"),
        include_str!("../migrations/0008_otter.sql"),
        include_str!("../migrations/0009_floor.sql"),
        include_str!("../migrations/0010_printers.sql"),
    ];
    let kitchen_id = unique("sync-upgrade");
    let cloud = Cloud::create(&kitchen_id).await;
    cloud.import(REFERENCE).await;
    let data_dir = std::env::temp_dir().join(&kitchen_id);
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let ids: Vec<String> = (0..3).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    {
        let old = rusqlite::Connection::open(data_dir.join(edge_agent::STORE_FILE)).expect("opens");
        old.pragma_update(None, "journal_mode", "WAL").expect("wal");
        for (index, migration) in OLD_MIGRATIONS.iter().enumerate() {
            old.execute_batch(migration).expect("migrates");
            old.pragma_update(None, "user_version", index + 1)
                .expect("version");
        }
        for (n, id) in ids.iter().enumerate() {
            let data = format!(r#"{{"order_id":"old-{n}","friendly_id":"OLD{n}"}}"#);
            for sql in [
                "INSERT INTO event_log (kind, order_id, data, created_at)
                 VALUES ('order.ready', ?1, ?2, ?3)",
                "INSERT INTO outbox (record_id, kind, data, created_at)
                 VALUES (?4, 'order.ready', ?2, ?3)",
            ] {
                let sql = sql.replace("?4", &format!("'{id}'"));
                old.execute(
                    &sql,
                    rusqlite::params![format!("old-{n}"), data, 1_764_000_000_000i64 + n as i64],
                )
                .expect("written");
            }
        }
    }
    sqlx::query(
        "INSERT INTO kitchen.order_events (record_id, kitchen_id, order_id, kind, stations, data,
                                           occurred_at)
         VALUES ($1::uuid, $2, 'old-0', 'order.ready', '{}', '{}', now())",
    )
    .bind(&ids[0])
    .bind(&kitchen_id)
    .execute(&cloud.db.pool)
    .await
    .expect("pushed before the upgrade");
    let url = cloud.agent_url(postgres_addr());
    let dir = data_dir.clone();
    let cloud_kitchen = kitchen_id.clone();
    let kitchen = TestAgent::start_with(Some(REFERENCE), &[STORE], move |config| {
        config.kitchen_id = cloud_kitchen;
        config.data_dir = dir;
        config.database_url = Some(url);
    })
    .await;
    kitchen
        .publish(&order(1, "new-1", "Double Smash Burger"))
        .await;
    let base = kitchen.base.clone();
    wait_until(
        "the old and the new records in postgresql",
        Duration::from_secs(30),
        || async {
            let new = cloud
                .count("SELECT count(*) FROM kitchen.order_events WHERE order_id = 'new-1'")
                .await;
            new > 0 && sync_state(&base).await["backlog"] == 0
        },
    )
    .await;
    for id in &ids {
        assert_eq!(
            cloud
                .count(&format!(
                    "SELECT count(*) FROM kitchen.order_events WHERE record_id = '{id}'"
                ))
                .await,
            1,
            "{id} once"
        );
    }
    assert_eq!(
        cloud
            .count("SELECT count(*) FROM kitchen.order_events WHERE order_id LIKE 'old-%'")
            .await,
        3,
        "the log's old entries are not pushed again"
    );
    let data_dir = kitchen.stop_keeping_data().await;
    let store = rusqlite::Connection::open(data_dir.join(edge_agent::STORE_FILE)).expect("opens");
    let left: i64 = store
        .query_row("SELECT count(*) FROM outbox", [], |row| row.get(0))
        .expect("reads");
    assert_eq!(left, 0, "the outbox is drained");
    let _ = std::fs::remove_dir_all(data_dir);
}
