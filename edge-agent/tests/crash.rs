//! The real agent binary killed with SIGKILL while consuming 1,000 orders, then restarted:
//! every order is present once and the batch counts are exact — acknowledged means stored,
//! and a redelivery of what was stored but not acknowledged changes nothing.

mod common;

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use kitchen_proto::OrderEvent;
use kitchen_testkit::{
    amqp::{self, amqp_url},
    events::{line, new_order},
    http::get_json,
    names::unique,
};
use lapin::{Connection, ConnectionProperties};

const ORDERS: u64 = 1000;
const REFERENCE: &str = r#"
[[stations]]
id = "fry"
name = "Fryer"
[[items]]
id = "fries"
name = "Fries"
station = "fry"
prep_seconds = 180
match = ["Fries"]
"#;

fn order_event(n: u64) -> OrderEvent {
    new_order("s1", &format!("order-{n:04}"))
        .event_id(format!("ev-{n}"))
        .sequence(n + 1)
        .item(line("Fries", (n % 3) as u32 + 1, vec![]))
        .build()
}

/// The agent process; killed when dropped.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Setup {
    kitchen_id: String,
    exchange: String,
    data_dir: std::path::PathBuf,
    port: u16,
}

impl Drop for Setup {
    fn drop(&mut self) {
        common::remove_kitchen(&self.kitchen_id, &self.exchange, &self.data_dir);
    }
}

impl Setup {
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn start(&self) -> Agent {
        let child = Command::new(env!("CARGO_BIN_EXE_edge-agent"))
            .env("AGENT_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("AGENT_DATA_DIR", &self.data_dir)
            .env("AGENT_WRITE_RATE", "100000")
            .env("AMQP_URL", amqp_url())
            .env("KITCHEN_ID", &self.kitchen_id)
            .env("STORE_IDS", "s1")
            .env("REFERENCE_FILE", self.data_dir.join("reference.toml"))
            .env("AGENT_ORDER_EXCHANGE", &self.exchange)
            // Small batches: many commits, so the kill lands mid-way.
            .env("AGENT_PREFETCH", "4")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("agent binary starts");
        let agent = Agent(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = kitchen_testkit::http::get(format!("{}/readyz", self.base())).await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return agent;
            }
            assert!(Instant::now() < deadline, "agent never became ready");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn applied(&self) -> u64 {
        let Ok(response) = kitchen_testkit::http::get(format!("{}/metrics", self.base())).await
        else {
            return 0;
        };
        response
            .text()
            .await
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("edge_agent_events_applied_total "))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

#[tokio::test]
async fn sigkill_mid_consumption_loses_and_doubles_nothing() {
    let kitchen_id = unique("test-crash");
    let data_dir = std::env::temp_dir().join(&kitchen_id);
    std::fs::create_dir_all(&data_dir).expect("data dir");
    std::fs::write(data_dir.join("reference.toml"), REFERENCE).expect("reference");
    common::pair_test_manager(&data_dir);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let setup = Setup {
        exchange: format!("{kitchen_id}.structured_order_data"),
        kitchen_id,
        data_dir,
        port,
    };

    // The cloud declares the queue (as `kitchen add` does); a first start finds it, then,
    // stopped, the orders pile up in it.
    common::declare_queue(&setup.kitchen_id, &setup.exchange, &["s1"]).await;
    drop(setup.start().await);
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .expect("rabbitmq");
    let channel = connection.create_channel().await.expect("channel");
    for n in 0..ORDERS {
        amqp::publish(&channel, &setup.exchange, &order_event(n))
            .await
            .expect("publish");
    }

    let agent = setup.start().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while setup.applied().await < 200 {
        assert!(Instant::now() < deadline, "the agent never got going");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    drop(agent); // SIGKILL
    let applied_before = {
        let store = edge_agent::store::Store::open(&setup.data_dir.join(edge_agent::STORE_FILE))
            .expect("store opens after the kill");
        store.open_orders().expect("reads").len()
    };
    assert!(
        (200..ORDERS as usize).contains(&applied_before),
        "killed mid-way: {applied_before} of {ORDERS} stored"
    );

    let _agent = setup.start().await;
    let expected_fries: u64 = (0..ORDERS).map(|n| n % 3 + 1).sum();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body = get_json(&format!("{}/api/batches?station=fry", setup.base())).await;
        let quantity = body["items"][0]["quantity"].as_u64().unwrap_or(0);
        let orders = body["items"][0]["order_ids"].as_array().map_or(0, Vec::len);
        if quantity == expected_fries && orders == ORDERS as usize {
            break;
        }
        assert!(
            quantity <= expected_fries,
            "counted twice: {quantity} > {expected_fries}"
        );
        assert!(
            Instant::now() < deadline,
            "never complete: {quantity} fries over {orders} orders"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let db = rusqlite::Connection::open(setup.data_dir.join(edge_agent::STORE_FILE))
        .expect("store opens");
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |row| row.get(0)).expect(sql) };
    assert_eq!(count("SELECT count(*) FROM processed_events"), 1000);
    assert_eq!(count("SELECT count(*) FROM orders"), 1000);
    assert_eq!(
        count("SELECT count(DISTINCT order_id) FROM order_lines"),
        1000
    );
    assert_eq!(
        count("SELECT count(*) FROM event_log WHERE kind = 'order.created'"),
        1000,
        "each order announced once"
    );
    assert_eq!(count("SELECT count(*) FROM sequence_gaps"), 0);

    drop(_agent);
    let _ = connection.close(200, "test done".into()).await;
    drop(db);
}
