//! The relay's fleet channel over `mqtts` to a Mosquitto of the test's own with a TLS listener
//! (a certificate from a CA made in the test): trusting the CA through `ca_file` it subscribes
//! and records a box's presence; trusting only the web PKI roots it never connects.

use std::{process::Command, time::Duration};

use kitchen_testkit::{
    dir::TempDir,
    mqtt::{Mosquitto, RELAY_PASSWORD},
    names::unique,
    tls::TestCa,
};
use secrecy::SecretString;

use super::harness::*;

/// A relay whose fleet channel is `broker`'s TLS listener, trusting `ca_file`.
async fn tls_fleet_app(broker: &Mosquitto, ca_file: Option<std::path::PathBuf>) -> TestApp {
    let url = broker.tls_url();
    spawn_app_with(|config| {
        config.mqtt.url = Some(url);
        config.mqtt.password = Some(SecretString::from(RELAY_PASSWORD));
        config.mqtt.client_id = unique("relay").replace('.', "-");
        config.ca_file = ca_file;
    })
    .await
}

#[tokio::test]
async fn the_relay_subscribes_over_mqtts_trusting_its_ca_file_only() {
    let ca = TestCa::new("relay fleet test ca");
    let broker = Mosquitto::start_with_tls(&[("k1", "pw1")], &ca.server_cert());
    let files = TempDir::new("relay-fleet-tls");

    // Only the web PKI roots: the broker's certificate chains to nothing trusted.
    let untrusting = tls_fleet_app(&broker, None).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let metrics = untrusting.metrics().await;
    assert!(metrics.contains("relay_fleet_connected 0"), "{metrics}");
    drop(untrusting);

    let ca_file = files.path().join("ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).expect("ca written");
    let app = tls_fleet_app(&broker, Some(ca_file)).await;
    sqlx::query("INSERT INTO kitchen.kitchens (kitchen_id) VALUES ('k1')")
        .execute(&app.db.pool)
        .await
        .expect("kitchen");
    eventually(
        "the relay subscribes over TLS",
        Duration::from_secs(20),
        || async {
            app.metrics()
                .await
                .contains("relay_fleet_connected 1")
                .then_some(())
        },
    )
    .await;
    // The box publishes its presence (over the plain listener: the same broker, ACL and users).
    let status = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &broker.port().to_string()])
        .args(["-u", "k1", "-P", "pw1", "-V", "mqttv5", "-q", "1", "-r"])
        .args(["-t", "kitchens/k1/presence"])
        .args([
            "-m",
            r#"{"state":"online","since":1764800000000,"version":"0.1.0","boot_id":"b-1"}"#,
        ])
        .status()
        .expect("mosquitto_pub runs (scripts/services installs mosquitto-clients)");
    assert!(status.success());
    let presence: (String, String) = eventually(
        "the presence in PostgreSQL",
        Duration::from_secs(20),
        || async {
            sqlx::query_as("SELECT presence, boot_id FROM kitchen.devices WHERE kitchen_id = 'k1'")
                .fetch_optional(&app.db.pool)
                .await
                .ok()
                .flatten()
        },
    )
    .await;
    assert_eq!(presence, ("online".to_owned(), "b-1".to_owned()));
}
