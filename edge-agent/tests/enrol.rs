//! Enrolment from the card to the first order, over real TLS: a card holding only the kitchen,
//! its stores, the CA bundle, the relay's `https://…/enrol` and a one-time token goes through
//! `edge-agent provision` (the token sealed with the real `systemd-creds`, the card overwritten
//! and removed) and `edge-agent enrol` (the token exchanged at the relay, in-process behind a
//! TLS-terminating proxy with a certificate of the test's CA, for the kitchen's own
//! least-privilege broker login on `amqps`); the agent started with those credentials receives
//! a webhook's order. The token works once: a card with it again is refused and says why.

mod common;

use std::{path::Path, process::Output, time::Duration};

use cloud_relay::otter::WebhookSigner;
use common::wait_until;
use edge_agent::provision::CredStore;
use kitchen_proto::reference::Reference;
use kitchen_testkit::{
    amqp::{BrokerObjects, admin_url, amqp_url},
    db::{TestDb, TestRole},
    dir::TempDir,
    names::unique,
    tls::{TestCa, TlsProxy},
};
use secrecy::SecretString;

const SECRET: &str = "enrol-webhook-secret";
const STORE_ID: &str = "kitchen-bk-01";
const NEW_ORDER: &[u8] = include_bytes!("../../cloud-relay/tests/fixtures/new_order.json");
const ORDER_ID: &str = "4f0c2a7e-1b9d-4e3a-8c61-2d7f5a9b0c13";
const REFERENCE: &str = include_str!("fixtures/sample_kitchen.toml");

/// `systemd-creds` with a host key of the test's own, never the machine's.
fn systemd_creds(dir: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let wrapper = dir.join("systemd-creds");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nSYSTEMD_CREDENTIAL_SECRET={} exec /usr/bin/systemd-creds \"$@\"\n",
            dir.join("credential.secret").display()
        ),
    )
    .expect("wrapper");
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    wrapper
}

/// Runs the agent binary with `args`, `systemd-creds` being the test's wrapper.
async fn agent_cli(dir: &Path, args: Vec<String>) -> Output {
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    tokio::process::Command::new(env!("CARGO_BIN_EXE_edge-agent"))
        .args(args)
        .env("PATH", path)
        .env("RUST_LOG", "warn")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("AGENT_CONFIG")
        .output()
        .await
        .expect("edge-agent runs")
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|arg| (*arg).to_owned()).collect()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn a_card_with_a_token_enrols_over_https_and_the_box_gets_its_orders() {
    let role = TestRole::named("enrol_box");
    let db = TestDb::create().await;
    let id = unique("enrol");
    let kitchen_id = format!("{id}.kitchen");
    let order_exchange = format!("{id}.structured_order_data");
    let raw_exchange = format!("{id}.otter_events");
    let broker = BrokerObjects::edge_kitchen(&kitchen_id, &order_exchange);
    broker.add_exchange(&raw_exchange);
    broker.add_user(format!("edge.{kitchen_id}"));
    let dir = TempDir::new("enrol");
    let root = dir.path();
    let ca = TestCa::new("kitchen enrolment test CA");
    let cert = ca.server_cert();
    // The broker as a box reaches it: amqps with the test CA's certificate.
    let amqps = TlsProxy::start("127.0.0.1:5672".parse().expect("addr"), &cert).await;

    let (admin, admin_user, admin_password) = admin_url();
    let database = db.url.rsplit_once('/').expect("database name").1.to_owned();
    let mut relay_config = cloud_relay::Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        admin_listen: "127.0.0.1:0".parse().expect("addr"),
        database_url: SecretString::from(db.url.clone()),
        amqp_url: SecretString::from(amqp_url()),
        order_exchange: order_exchange.clone(),
        raw_events_exchange: raw_exchange,
        otter_webhook_secret: Some(SecretString::from(SECRET)),
        database_pool_size: 4,
        amqp_timeout: Duration::from_secs(5),
        ..cloud_relay::Config::default()
    };
    relay_config.broker_admin.url = Some(admin);
    relay_config.broker_admin.username = admin_user;
    relay_config.broker_admin.password = Some(SecretString::from(admin_password));
    relay_config.broker_admin.box_url =
        Some(format!("amqps://localhost:{}/%2f", amqps.addr.port()));
    relay_config.enrol.box_database_url = Some(format!("postgres://127.0.0.1:5432/{database}"));
    relay_config.validate().expect("relay config is valid");
    let relay = cloud_relay::App::build(relay_config)
        .await
        .expect("relay builds");
    let relay_addr = std::net::SocketAddr::from(([127, 0, 0, 1], relay.port()));
    let relay_token = relay.shutdown_token();
    let relay_task = tokio::spawn(relay.run_until_stopped());
    // The relay's public side as a box sees it: HTTPS terminated in front of it.
    let https = TlsProxy::start(relay_addr, &cert).await;

    // Head office: the kitchen, its stores, a token for its first card.
    let pool = db.connect_as("postgres").await;
    cloud_relay::kitchens::add_kitchen(&pool, &kitchen_id, &role.name, None)
        .await
        .expect("kitchen added");
    let reference = Reference::parse(REFERENCE).expect("reference");
    cloud_relay::kitchens::import_reference(&pool, &kitchen_id, &reference)
        .await
        .expect("reference imported");
    let token = cloud_relay::kitchens::enrol::make_token(&pool, &kitchen_id, 1)
        .await
        .expect("token");
    let token = secrecy::ExposeSecret::expose_secret(&token.token).to_owned();

    // The card.
    let etc = root.join("etc");
    std::fs::create_dir_all(etc.join("edge-agent")).expect("dirs");
    let config_file = etc.join("edge-agent/agent.toml");
    let reference_file = root.join("reference.toml");
    std::fs::write(&reference_file, REFERENCE).expect("reference");
    let card = root.join("kitchen.toml");
    let card_text = format!(
        "kitchen_id = {kitchen_id:?}\nstore_ids = [{STORE_ID:?}]\n\
         enrol_url = \"https://localhost:{}/enrol\"\nenrol_token = {token:?}\n\
         ca_pem = '''\n{}'''\nca_file = {:?}\nreference_file = {:?}\n\
         order_exchange = {order_exchange:?}\nprovision_error_file = {:?}\n",
        https.addr.port(),
        ca.cert_pem(),
        root.join("ca.pem").display().to_string(),
        reference_file.display().to_string(),
        root.join("provision-error").display().to_string(),
    );
    std::fs::write(&card, &card_text).expect("card");
    let wrapper = systemd_creds(root);
    let store = CredStore::Encrypted {
        dir: root.join("credstore.encrypted"),
        program: wrapper,
    };
    let credstore = store.dir().display().to_string();
    let config = config_file.display().to_string();
    let provision = |card: &Path| {
        let card = card.display().to_string();
        let etc = etc.display().to_string();
        let ca_file = root.join("ca.pem").display().to_string();
        let config = config.clone();
        let credstore = credstore.clone();
        async move {
            agent_cli(
                root,
                args(&[
                    "--config",
                    &config,
                    "provision",
                    "--from",
                    &card,
                    "--credstore",
                    &credstore,
                    "--etc",
                    &etc,
                    "--ca-file",
                    &ca_file,
                    "--zoneinfo",
                    "/usr/share/zoneinfo",
                ]),
            )
            .await
        }
    };
    let output = provision(&card).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(!card.exists(), "the card file is gone");
    let sealed = std::fs::read_to_string(store.path("enrol_token")).expect("sealed token");
    assert!(!sealed.contains(&token), "the token is sealed");
    assert_eq!(
        store.read("enrol_token").expect("decrypts"),
        Some(token.clone())
    );
    let written = std::fs::read_to_string(&config_file).expect("config");
    assert!(!written.contains(&token), "{written}");

    let enrol = || {
        agent_cli(
            root,
            args(&["--config", &config, "enrol", "--credstore", &credstore]),
        )
    };
    let output = enrol().await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout),
        format!("enrolled kitchen {kitchen_id}: broker login, database login stored\n")
    );
    assert_eq!(
        store.read("enrol_token").expect("read"),
        None,
        "the token is spent"
    );
    let amqp_url = store.read("amqp_url").expect("decrypts").expect("stored");
    let login: lapin::uri::AMQPUri = amqp_url.parse().expect("an AMQP URL");
    assert_eq!(
        (
            login.scheme,
            login.authority.userinfo.username.as_str(),
            login.authority.host.as_str(),
            login.authority.port,
        ),
        (
            lapin::uri::AMQPScheme::AMQPS,
            format!("edge.{kitchen_id}").as_str(),
            "localhost",
            amqps.addr.port()
        ),
        "the kitchen's own login on amqps"
    );
    let database_url = store
        .read("database_url")
        .expect("decrypts")
        .expect("stored");
    assert!(database_url.starts_with(&format!("postgres://{}:", role.name)));
    let output = enrol().await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), "no enrolment token: nothing to do\n");

    // The box as systemd starts it: the config file and the decrypted credentials.
    let mut agent_config = edge_agent::Config::load(Some(&config_file)).expect("config loads");
    agent_config.listen = "127.0.0.1:0".parse().expect("addr");
    agent_config.data_dir = root.join("data");
    agent_config.amqp_url = amqp_url;
    let agent = edge_agent::App::build(agent_config)
        .await
        .expect("agent builds");
    edge_agent::pairing::pair_with_token(
        &root.join("data"),
        "manager",
        kitchen_testkit::http::TEST_DEVICE,
        None,
        kitchen_testkit::http::TEST_TOKEN,
    )
    .expect("test manager paired");
    let agent_url = format!("http://127.0.0.1:{}", agent.port());
    let agent_token = agent.shutdown_token();
    let agent_task = tokio::spawn(agent.run_until_stopped());
    wait_until(
        "the feed connects over amqps with the enrolled login",
        Duration::from_secs(20),
        || async {
            kitchen_testkit::http::get(&format!("{agent_url}/readyz"))
                .await
                .is_ok_and(|response| response.status() == 200)
        },
    )
    .await;
    let signer = WebhookSigner::new(SecretString::from(SECRET));
    let response = kitchen_testkit::http::client()
        .post(format!("http://{relay_addr}/webhooks/otter"))
        .header("content-type", "application/json")
        .header("X-HMAC-SHA256", signer.sign(NEW_ORDER))
        .body(NEW_ORDER.to_vec())
        .send()
        .await
        .expect("relay answers");
    assert_eq!(response.status(), 200);
    wait_until(
        "the order reaches the enrolled box",
        Duration::from_secs(20),
        || async {
            let Ok(response) =
                kitchen_testkit::http::get(&format!("{agent_url}/api/orders?state=open")).await
            else {
                return false;
            };
            response
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|orders| orders["orders"].as_array().cloned())
                .is_some_and(|orders| orders.iter().any(|order| order["order_id"] == ORDER_ID))
        },
    )
    .await;

    // The same token on another card: provisioned (the box cannot know), refused at the relay.
    std::fs::write(&card, &card_text).expect("card again");
    let output = provision(&card).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let output = enrol().await;
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let recorded = std::fs::read_to_string(root.join("provision-error")).expect("recorded");
    assert!(
        recorded.starts_with("enrolment: this enrolment token was already used at ")
            && recorded.ends_with(" (a token works once; ask for a new one)\n"),
        "{recorded}"
    );
    assert_eq!(
        store.read("enrol_token").expect("read"),
        None,
        "a refused token is removed"
    );
    assert!(
        store.read("amqp_url").expect("read").is_some(),
        "the enrolled login stays"
    );

    agent_token.cancel();
    agent_task
        .await
        .expect("joins")
        .expect("agent stops cleanly");
    relay_token.cancel();
    relay_task
        .await
        .expect("joins")
        .expect("relay stops cleanly");
    drop(pool);
}
