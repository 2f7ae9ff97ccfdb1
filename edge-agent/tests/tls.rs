//! The links off the box over real TLS endpoints started by the test, with a CA and server
//! certificates made in the test (`kitchen_testkit::tls`): the sync to a PostgreSQL cluster of
//! the test's own with `ssl = on` (`kitchen_testkit::pg_cluster`) with `sslmode=verify-full`,
//! trusting the CA through `ca_file` — and refusing a server its CA did not sign, without
//! falling back to plaintext; the feed over `amqps` through a TLS-terminating proxy in front of
//! the machine's RabbitMQ; and an agent whose links break the TLS rule still serving the LAN,
//! saying why on `/api/status` and in the station display's banner (headless Chromium); and
//! the fleet channel over `mqtts` to a Mosquitto of the test's own with a TLS listener.

mod common;

use std::time::Duration;

use common::{TestAgent, pair_test_manager, wait_until};
use edge_agent::{App, Config};
use kitchen_testkit::{
    amqp::amqp_url,
    dir::TempDir,
    events::{line, new_order},
    http::get_json,
    mqtt::{Mosquitto, RELAY_PASSWORD, RELAY_USER},
    names::unique,
    pg_cluster::PgCluster,
    proxy::socket_addr_of,
    tls::{TestCa, TlsProxy},
};
use sqlx::PgPool;

const STORE: &str = "kitchen-bk-01";

/// The cluster migrated by the relay's migrations, with `kitchens` provisioned, each box as
/// its own role (named after the kitchen).
async fn cloud(cluster: &PgCluster, kitchens: &[&str]) -> PgPool {
    // The test's own admin connection: plaintext to loopback is allowed.
    let pool = PgPool::connect(&cluster.url("?sslmode=disable"))
        .await
        .expect("the cluster answers");
    cloud_relay::db::MIGRATOR
        .run(&pool)
        .await
        .expect("migrations apply");
    for kitchen in kitchens {
        cloud_relay::kitchens::add_kitchen(&pool, kitchen, &role(kitchen), None)
            .await
            .expect("kitchen provisioned");
    }
    pool
}

fn role(kitchen: &str) -> String {
    format!("box_{}", kitchen.replace('-', "_"))
}

/// The `(kitchen_id, order_id, kind)` of every `order.created` row.
async fn created_rows(pool: &PgPool) -> Vec<(String, String, String)> {
    sqlx::query_as(
        "SELECT kitchen_id, order_id, kind FROM kitchen.order_events
         WHERE kind = 'order.created' ORDER BY kitchen_id, order_id",
    )
    .fetch_all(pool)
    .await
    .expect("rows")
}

/// Whether `role` has sessions, and whether each is over TLS.
async fn sessions_over_tls(pool: &PgPool, role: &str) -> Vec<bool> {
    sqlx::query_scalar(
        "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
         WHERE a.usename = $1",
    )
    .bind(role)
    .fetch_all(pool)
    .await
    .expect("sessions")
}

#[tokio::test]
async fn the_sync_verifies_the_server_against_the_ca_bundle_and_never_falls_back() {
    let ca = TestCa::new("kitchen test ca");
    let cluster = PgCluster::start(&ca.server_cert());
    let pool = cloud(&cluster, &["tls-a", "tls-b"]).await;
    let files = TempDir::new("tls-ca");
    let trusted = files.path().join("ca.pem");
    std::fs::write(&trusted, ca.cert_pem()).expect("ca written");
    let stranger = files.path().join("other-ca.pem");
    std::fs::write(&stranger, TestCa::new("another ca").cert_pem()).expect("ca written");
    let database_url = |kitchen: &str| {
        format!(
            "postgres://{}@localhost:{}/postgres?sslmode=verify-full",
            role(kitchen),
            cluster.port
        )
    };

    // Trusting the test's CA: connects with verify-full and pushes the order's record.
    let (url, ca_file) = (database_url("tls-a"), trusted.clone());
    let kitchen = TestAgent::start_with(None, &[STORE], move |config| {
        config.kitchen_id = "tls-a".into();
        config.database_url = Some(url);
        config.ca_file = Some(ca_file);
    })
    .await;
    kitchen
        .publish(
            &new_order(STORE, "o-tls-1")
                .item(line("Fries", 1, vec![]))
                .build(),
        )
        .await;
    wait_until(
        "the record in postgresql",
        Duration::from_secs(20),
        || async { !created_rows(&pool).await.is_empty() },
    )
    .await;
    assert_eq!(
        created_rows(&pool).await,
        [("tls-a".into(), "o-tls-1".into(), "order.created".into())]
    );
    let sessions = sessions_over_tls(&pool, &role("tls-a")).await;
    assert!(
        !sessions.is_empty() && sessions.iter().all(|ssl| *ssl),
        "{sessions:?}"
    );
    let status = get_json(&format!("{}/api/status", kitchen.base)).await;
    assert_eq!(status["links_refused"], serde_json::json!([]));
    assert_eq!(status["sync"]["state"], "connected");

    // A CA that did not sign the server's certificate: refused, naming the certificate check,
    // and nothing reaches PostgreSQL — no plaintext fallback, although the cluster takes one.
    let (url, ca_file) = (database_url("tls-b"), stranger.clone());
    let wrong = TestAgent::start_with(None, &[STORE], move |config| {
        config.kitchen_id = "tls-b".into();
        config.database_url = Some(url);
        config.ca_file = Some(ca_file);
    })
    .await;
    wrong
        .publish(
            &new_order(STORE, "o-tls-2")
                .item(line("Fries", 1, vec![]))
                .build(),
        )
        .await;
    let base = wrong.base.clone();
    wait_until(
        "the sync's error with the record waiting",
        Duration::from_secs(20),
        || async {
            let sync = get_json(&format!("{base}/api/status")).await["sync"].clone();
            sync["last_error"].is_string() && sync["backlog"].as_i64() > Some(0)
        },
    )
    .await;
    let sync = get_json(&format!("{base}/api/status")).await["sync"].clone();
    let error = sync["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("invalid peer certificate: UnknownIssuer"),
        "{error}"
    );
    assert_eq!(sync["state"], "disconnected");
    // Still nothing of kitchen B's after more rounds, and B never had a session.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        created_rows(&pool).await,
        [("tls-a".into(), "o-tls-1".into(), "order.created".into())]
    );
    assert_eq!(
        sessions_over_tls(&pool, &role("tls-b")).await,
        Vec::<bool>::new()
    );
    wrong.stop().await;
    kitchen.stop().await;
    pool.close().await;
}

#[tokio::test]
async fn the_feed_consumes_over_amqps_with_the_ca_bundle() {
    let ca = TestCa::new("broker test ca");
    let proxy = TlsProxy::start(socket_addr_of(&amqp_url()), &ca.server_cert()).await;
    let files = TempDir::new("tls-amqp");
    let ca_file = files.path().join("ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).expect("ca written");
    let url = format!("amqps://guest:guest@localhost:{}/%2f", proxy.addr.port());
    // Without the bundle the proxy's certificate chains to nothing the agent trusts (the web
    // PKI roots only): the feed stays down.
    let untrusting = TempDir::new("tls-amqp-untrusting");
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: untrusting.path().to_path_buf(),
        kitchen_id: unique("tls-untrusting"),
        store_ids: vec![STORE.into()],
        amqp_url: url.clone(),
        ca_file: None,
        ..Config::default()
    };
    let app = App::build(config).await.expect("builds");
    pair_test_manager(untrusting.path());
    let untrusting_base = format!("http://127.0.0.1:{}", app.port());
    let token = app.shutdown_token();
    let handle = tokio::spawn(app.run_until_stopped());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = get_json(&format!("{untrusting_base}/api/status")).await;
    assert_eq!(
        (status["feed"].clone(), status["links_refused"].clone()),
        ("disconnected".into(), serde_json::json!([]))
    );
    token.cancel();
    handle.await.expect("joins").expect("clean stop");
    // Ready means the feed is connected: through the proxy, over TLS.
    let kitchen = TestAgent::start_with(None, &[STORE], move |config| {
        config.amqp_url = url;
        config.ca_file = Some(ca_file);
    })
    .await;
    kitchen
        .publish(
            &new_order(STORE, "o-amqps")
                .item(line("Fries", 2, vec![]))
                .build(),
        )
        .await;
    let base = kitchen.base.clone();
    wait_until("the order", Duration::from_secs(20), || async {
        get_json(&format!("{base}/api/orders?state=open")).await["orders"]
            .as_array()
            .is_some_and(|orders| !orders.is_empty())
    })
    .await;
    let orders = get_json(&format!("{base}/api/orders?state=open")).await;
    let ids: Vec<&str> = orders["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .filter_map(|order| order["order_id"].as_str())
        .collect();
    assert_eq!(ids, ["o-amqps"]);
    assert_eq!(
        get_json(&format!("{base}/api/status")).await["feed"],
        "connected"
    );
    kitchen.stop().await;
}

#[tokio::test]
async fn refused_links_leave_the_lan_running_and_say_why() {
    let data = TempDir::new("tls-refused");
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: data.path().to_path_buf(),
        kitchen_id: unique("tls-refused"),
        store_ids: vec![STORE.into()],
        amqp_url: "amqp://bk:s3cret@10.1.2.3:5672/%2f".into(),
        database_url: Some("postgres://bk:s3cret@10.1.2.3/kitchen?sslmode=prefer".into()),
        mqtt_url: Some("mqtt://fleet.example.com".into()),
        mqtt_password: Some("s3cret".into()),
        ..Config::default()
    };
    let app = App::build(config)
        .await
        .expect("builds: a refused link is not fatal");
    pair_test_manager(data.path());
    let base = format!("http://127.0.0.1:{}", app.port());
    let token = app.shutdown_token();
    let handle = tokio::spawn(app.run_until_stopped());
    let status = get_json(&format!("{base}/api/status")).await;
    assert_eq!(
        status["links_refused"],
        serde_json::json!([
            "amqp_url: plaintext amqp:// to 10.1.2.3 is refused: a link off the box must use \
             amqps:// (TLS with the broker's certificate verified); amqp:// is allowed to \
             127.0.0.0/8, ::1 or localhost only",
            "database_url: sslmode=prefer to 10.1.2.3 is refused: a link off the box needs \
             sslmode=verify-full (TLS with the server's certificate and host name verified); \
             other modes are allowed to 127.0.0.0/8, ::1 or localhost only",
            "mqtt_url: plaintext mqtt:// to fleet.example.com is refused: a link off the box \
             must use mqtts:// (TLS with the broker's certificate verified); mqtt:// is allowed \
             to 127.0.0.0/8, ::1 or localhost only"
        ])
    );
    assert_eq!(status["feed"], "refused");
    assert_eq!(status["sync"]["state"], "refused");
    assert_eq!(
        status["mqtt"],
        serde_json::json!({"state": "refused", "last_error": status["links_refused"][2], "since": null})
    );
    assert!(!status.to_string().contains("s3cret"));
    // The LAN is served: the tickets answer, /readyz says why it is not ready.
    let orders = get_json(&format!("{base}/api/orders?state=open")).await;
    assert_eq!(orders["orders"], serde_json::json!([]));
    // The station display says it in its red banner.
    let mut tablet = kitchen_testkit::browser::Browser::launch(1280, 900).await;
    tablet.navigate(&format!("{base}/?station=all")).await;
    tablet
        .wait_for_value(
            "the refused links' banner",
            Duration::from_secs(20),
            "(b => b && !b.hidden ? b.textContent : null)(document.querySelector('#links'))",
            &serde_json::json!(format!(
                "Not connecting to head office — the connection settings are not secure, fix \
                 them on the box: {}; {}; {}",
                status["links_refused"][0].as_str().expect("text"),
                status["links_refused"][1].as_str().expect("text"),
                status["links_refused"][2].as_str().expect("text")
            )),
        )
        .await;
    tablet.close().await;
    let ready = get_json(&format!("{base}/readyz")).await;
    assert_eq!(
        (ready["ready"].clone(), ready["feed"].clone()),
        (false.into(), "refused".into())
    );
    token.cancel();
    handle.await.expect("joins").expect("clean stop");
}

/// Starts an agent of kitchen `kitchen` with only the fleet channel, on `mqtt_url`, trusting
/// `ca_file`; returns its base URL, its stop token and its task.
async fn fleet_only_agent(
    data: &TempDir,
    kitchen: &str,
    mqtt_url: String,
    ca_file: Option<std::path::PathBuf>,
) -> (
    String,
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: data.path().to_path_buf(),
        kitchen_id: kitchen.into(),
        mqtt_url: Some(mqtt_url),
        mqtt_password: Some("box-password".into()),
        ca_file,
        ..Config::default()
    };
    let app = App::build(config).await.expect("builds");
    pair_test_manager(data.path());
    let base = format!("http://127.0.0.1:{}", app.port());
    let token = app.shutdown_token();
    (base, token, tokio::spawn(app.run_until_stopped()))
}

#[tokio::test]
async fn the_fleet_channel_speaks_mqtts_with_the_ca_bundle_and_nothing_else() {
    let ca = TestCa::new("fleet test ca");
    let kitchen = unique("tls-fleet");
    let broker = Mosquitto::start_with_tls(&[(&kitchen, "box-password")], &ca.server_cert());
    let files = TempDir::new("tls-fleet");
    let ca_file = files.path().join("ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).expect("ca written");

    // A CA that did not sign the broker's certificate: no connection, and the reason.
    let other = files.path().join("other-ca.pem");
    std::fs::write(&other, TestCa::new("another ca").cert_pem()).expect("ca written");
    let data = TempDir::new("tls-fleet-untrusting");
    let (base, token, handle) =
        fleet_only_agent(&data, &kitchen, broker.tls_url(), Some(other)).await;
    wait_until(
        "a failed TLS handshake",
        Duration::from_secs(20),
        || async {
            get_json(&format!("{base}/api/status")).await["mqtt"]["last_error"].is_string()
        },
    )
    .await;
    let mqtt = get_json(&format!("{base}/api/status")).await["mqtt"].clone();
    assert_eq!(mqtt["state"], "disconnected");
    let error = mqtt["last_error"].as_str().expect("text");
    assert!(error.contains("UnknownIssuer"), "{error}");
    token.cancel();
    handle.await.expect("joins").expect("clean stop");
    assert_eq!(retained_presence(&broker, &kitchen), None);

    // Trusting the test's CA: connected over TLS, and the broker holds its presence.
    let data = TempDir::new("tls-fleet-trusting");
    let (base, token, handle) =
        fleet_only_agent(&data, &kitchen, broker.tls_url(), Some(ca_file)).await;
    wait_until(
        "the fleet channel over TLS",
        Duration::from_secs(20),
        || async { get_json(&format!("{base}/api/status")).await["mqtt"]["state"] == "connected" },
    )
    .await;
    let presence = retained_presence(&broker, &kitchen).expect("a retained presence");
    assert_eq!(presence["state"], "online");
    token.cancel();
    handle.await.expect("joins").expect("clean stop");
}

/// The presence the broker keeps for `kitchen`, read as the relay over the plain listener with
/// the real `mosquitto_sub`; `None` when there is none.
fn retained_presence(broker: &Mosquitto, kitchen: &str) -> Option<serde_json::Value> {
    let output = std::process::Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &broker.port().to_string()])
        .args(["-u", RELAY_USER, "-P", RELAY_PASSWORD, "-V", "mqttv5"])
        .args(["-t", &format!("kitchens/{kitchen}/presence")])
        .args(["--retained-only", "-C", "1", "-W", "2"])
        .output()
        .expect("mosquitto_sub runs (scripts/services installs mosquitto-clients)");
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().next()?;
    Some(serde_json::from_str(line).expect("presence is JSON"))
}
