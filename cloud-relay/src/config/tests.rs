//! The relay configuration's tests: layering, validation, secrets.

use super::*;

#[test]
fn credentials_override_the_environment() {
    use secrecy::ExposeSecret;
    let dir = std::env::temp_dir().join(format!("relay-creds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("otter_webhook_secret"), "from-credential\n").expect("write");
    std::fs::write(dir.join("amqp_url"), "").expect("write");
    let mut config = Config::default();
    config.apply_credentials(&dir).expect("read");
    let secret = config.otter_webhook_secret.as_ref().expect("set");
    assert_eq!(secret.expose_secret(), "from-credential");
    assert_eq!(
        config.amqp_url.expose_secret(),
        Config::default().amqp_url.expose_secret(),
        "an empty credential changes nothing"
    );
    std::fs::remove_dir_all(&dir).expect("clean up");
}

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

#[test]
fn file_then_environment_override_defaults() {
    let mut config: Config =
        toml::from_str("listen = \"127.0.0.1:9000\"\ningest_writers = 2\namqp_timeout = 250")
            .expect("valid toml");
    assert_eq!(config.listen.port(), 9000);
    assert_eq!(config.amqp_timeout, Duration::from_millis(250));
    config
        .apply_env(env(&[
            ("RELAY_LISTEN", "127.0.0.1:9100"),
            ("OTTER_WEBHOOK_SECRET", "s3cret"),
        ]))
        .expect("valid env");
    assert_eq!(config.listen.port(), 9100);
    assert_eq!(config.ingest_writers, 2);
    assert_eq!(config.ingest_batch_max, 64);
    config.validate().expect("valid");
}

#[test]
fn unknown_keys_and_bad_values_are_rejected() {
    let error = toml::from_str::<Config>("listen_addr = \"x\"").expect_err("unknown key");
    assert!(
        error.to_string().contains("unknown field `listen_addr`"),
        "{error}"
    );
    let mut config = Config::default();
    let error = config
        .apply_env(env(&[("RELAY_INGEST_WRITERS", "many")]))
        .expect_err("not a number");
    assert!(
        error.to_string().contains("RELAY_INGEST_WRITERS"),
        "{error}"
    );
}

#[test]
fn secret_is_required_unless_insecure() {
    let mut config = Config::default();
    let error = config.validate().expect_err("no secret");
    assert!(
        error.to_string().contains("OTTER_WEBHOOK_SECRET"),
        "{error}"
    );
    config.insecure_skip_signature = true;
    config.listen = SocketAddr::from(([127, 0, 0, 1], 8001));
    config.validate().expect("insecure mode needs no secret");
}

#[test]
fn the_public_endpoint_keys_come_from_the_environment() {
    use secrecy::ExposeSecret;
    let mut config = Config::default();
    assert_eq!(
        config.admin_listen,
        SocketAddr::from(([127, 0, 0, 1], 8002))
    );
    config
        .apply_env(env(&[
            ("RELAY_ADMIN_LISTEN", "127.0.0.1:9191"),
            ("OTTER_WEBHOOK_SECRET", "new"),
            ("OTTER_WEBHOOK_SECRET_PREVIOUS", "old"),
            ("RELAY_MAX_CONNECTIONS", "64"),
            ("RELAY_HEADER_TIMEOUT_MS", "1500"),
            ("RELAY_REQUEST_TIMEOUT_MS", "20000"),
            ("RELAY_MAX_INFLIGHT_WEBHOOKS", "8"),
            ("RELAY_REJECTED_BURST", "5"),
            ("RELAY_REJECTED_PER_MINUTE", "2"),
            ("RELAY_REJECTED_MAX_CLIENTS", "100"),
        ]))
        .expect("valid env");
    assert_eq!(config.admin_listen.port(), 9191);
    let previous = config.otter_webhook_secret_previous.as_ref().expect("set");
    assert_eq!(previous.expose_secret(), "old");
    assert_eq!(
        (
            config.max_connections,
            config.header_timeout,
            config.request_timeout,
            config.max_inflight_webhooks,
        ),
        (64, Duration::from_millis(1500), Duration::from_secs(20), 8)
    );
    assert_eq!(
        (
            config.rejected_burst,
            config.rejected_per_minute,
            config.rejected_max_clients
        ),
        (5, 2, 100)
    );
    config.validate().expect("valid");
    // An empty previous secret ends the rotation.
    config
        .apply_env(env(&[("OTTER_WEBHOOK_SECRET_PREVIOUS", "")]))
        .expect("valid env");
    assert!(config.otter_webhook_secret_previous.is_none());
}

#[test]
fn the_previous_secret_may_be_a_credential() {
    use secrecy::ExposeSecret;
    let dir = std::env::temp_dir().join(format!("relay-creds-prev-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("otter_webhook_secret_previous"), "old\n").expect("write");
    let mut config = Config::default();
    config.apply_credentials(&dir).expect("read");
    let previous = config.otter_webhook_secret_previous.as_ref().expect("set");
    assert_eq!(previous.expose_secret(), "old");
    assert!(config.otter_webhook_secret.is_none());
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn invalid_combinations_are_refused() {
    let check = |adjust: &dyn Fn(&mut Config), expected: &str| {
        let mut config = Config {
            otter_webhook_secret: Some(SecretString::from("s")),
            ..Config::default()
        };
        adjust(&mut config);
        let error = config.validate().expect_err(expected);
        assert_eq!(error.to_string(), format!("invalid config: {expected}"));
    };
    check(
        &|config| config.insecure_skip_signature = true,
        "--insecure-skip-signature is only allowed on a loopback listen address \
         (RELAY_LISTEN=127.0.0.1:8001), not 0.0.0.0:8001: anyone who can reach it could \
         inject orders",
    );
    check(
        &|config| config.request_timeout = config.ingest_timeout,
        "request_timeout (10000 ms) must be longer than ingest_timeout (10000 ms), so a slow \
         commit is answered 503 rather than cut off",
    );
    check(
        &|config| config.admin_listen = config.listen,
        "listen and admin_listen are both 0.0.0.0:8001; the admin endpoints need their own \
         address",
    );
    check(
        &|config| config.rejected_per_minute = 0,
        "rejected_per_minute must be at least 1 (or rejected_burst 0 to turn the \
         per-address limit off)",
    );
    check(
        &|config| config.max_inflight_webhooks = 0,
        "max_inflight_webhooks must be at least 1",
    );
    check(
        &|config| config.max_connections = 0,
        "max_connections must be at least 1",
    );
    let mut loopback = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 8001)),
        insecure_skip_signature: true,
        ..Config::default()
    };
    loopback.validate().expect("insecure on loopback");
    loopback.listen = "[::1]:8001".parse().expect("addr");
    loopback.validate().expect("insecure on IPv6 loopback");
    loopback.rejected_burst = 0;
    loopback.rejected_per_minute = 0;
    loopback
        .validate()
        .expect("the per-address limit turned off");
}

#[test]
fn secrets_are_not_printed() {
    let config = Config {
        otter_webhook_secret: Some(SecretString::from("hunter2")),
        otter_webhook_secret_previous: Some(SecretString::from("hunter1")),
        otter_api: OtterApiConfig {
            client_secret: Some(SecretString::from("hunter3")),
            ..OtterApiConfig::default()
        },
        ..Config::default()
    };
    let printed = format!("{config:?}");
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(!printed.contains("hunter1"), "{printed}");
    assert!(!printed.contains("hunter3"), "{printed}");
    assert!(!printed.contains("guest:guest"), "{printed}");
}

#[test]
fn links_off_the_machine_need_verified_tls() {
    let with = |database_url: &str, amqp_url: &str| Config {
        otter_webhook_secret: Some(SecretString::from("s")),
        database_url: SecretString::from(database_url),
        amqp_url: SecretString::from(amqp_url),
        ..Config::default()
    };
    let refused = |config: Config| config.validate().expect_err("refused").to_string();
    assert_eq!(
        refused(with(
            "postgres://relay:s3cret@10.1.2.3:5432/kitchen?sslmode=prefer",
            "amqps://relay:pw@broker.example.com/%2f"
        )),
        "invalid config: DATABASE_URL: sslmode=prefer to 10.1.2.3 is refused: a link off the \
         box needs sslmode=verify-full (TLS with the server's certificate and host name \
         verified); other modes are allowed to 127.0.0.0/8, ::1 or localhost only"
    );
    assert_eq!(
        refused(with(
            "postgres://relay:pw@db.example.com/kitchen?sslmode=verify-full",
            "amqp://relay:s3cret@10.1.2.3:5672/%2f"
        )),
        "invalid config: AMQP_URL: plaintext amqp:// to 10.1.2.3 is refused: a link off the box \
         must use amqps:// (TLS with the broker's certificate verified); amqp:// is allowed to \
         127.0.0.0/8, ::1 or localhost only"
    );
    with(
        "postgres://relay:pw@db.example.com/kitchen?sslmode=verify-full",
        "amqps://relay:pw@broker.example.com/%2f",
    )
    .validate()
    .expect("verified TLS off the machine");
    // The defaults: plaintext to loopback.
    with(
        "postgres://postgres@127.0.0.1:5432/kitchen",
        "amqp://guest:guest@localhost:5672/%2f",
    )
    .validate()
    .expect("loopback");
    let config = with(
        "postgres://relay:s3cret@db.example.com/kitchen",
        "amqp://guest:guest@127.0.0.1/%2f",
    );
    assert!(
        config
            .check_database_link()
            .expect_err("the database-only subcommands check too")
            .to_string()
            .contains("sslmode=prefer to db.example.com")
    );
}

#[test]
fn the_ca_file_must_hold_certificates_that_parse() {
    let dir = kitchen_testkit::dir::TempDir::new("relay-ca");
    let mut config = Config::default();
    config
        .apply_env(env(&[("RELAY_CA_FILE", " ")]))
        .expect("empty is none");
    assert_eq!(config.ca_pem().expect("none"), None);
    let missing = dir.path().join("missing.pem");
    config
        .apply_env(env(&[("RELAY_CA_FILE", missing.to_str().expect("path"))]))
        .expect("set");
    let error = config.ca_pem().expect_err("missing").to_string();
    assert!(
        error.starts_with(&format!(
            "invalid config: RELAY_CA_FILE {}: ",
            missing.display()
        )),
        "{error}"
    );
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").expect("write");
    config.ca_file = Some(garbage.clone());
    assert_eq!(
        config.ca_pem().expect_err("garbage").to_string(),
        format!(
            "invalid config: RELAY_CA_FILE {}: no PEM certificate (-----BEGIN CERTIFICATE-----) \
             in it",
            garbage.display()
        )
    );
    let ca = kitchen_testkit::tls::TestCa::new("relay test ca");
    let good = dir.path().join("ca.pem");
    std::fs::write(&good, ca.cert_pem()).expect("write");
    config.ca_file = Some(good);
    assert_eq!(config.ca_pem().expect("parses"), Some(ca.cert_pem()));
}
