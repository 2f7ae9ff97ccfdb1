//! Least privilege on RabbitMQ, against the real broker and its management API: what `kitchen
//! add` makes (queue, dead-lettering, bindings from the kitchen's stores, a box user that may
//! only consume its own queue), refusals answered by RabbitMQ itself (`403 ACCESS_REFUSED`),
//! `kitchen rotate`, `kitchen remove`, and `reference import` rebinding the queue. Every user,
//! queue and exchange a test makes is removed when it ends.

use std::time::Duration;

use cloud_relay::{
    Config,
    db::MIGRATOR,
    kitchens::broker::{Broker, Permissions, box_permissions, box_user, regex_escape},
};
use futures_util::StreamExt;
use kitchen_proto::{OrderEvent, edge_dead_letter_queue, edge_queue};
use kitchen_testkit::{
    amqp::{BrokerObjects, admin_url, publish},
    events::new_order,
};
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind,
    options::{
        BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, BasicRejectOptions,
        ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
        QueueDeclareOptions, QueueDeleteOptions,
    },
    types::FieldTable,
};
use secrecy::{ExposeSecret, SecretString};

use super::harness::*;
use super::kitchens::REFERENCE;

/// A relay config whose `[broker_admin]` is the test broker's administrator, with an order
/// exchange of the test's own.
pub(super) fn config(order_exchange: &str) -> Config {
    let (url, username, password) = admin_url();
    let mut config = Config {
        amqp_url: SecretString::from(amqp_url()),
        order_exchange: order_exchange.to_owned(),
        amqp_timeout: Duration::from_secs(5),
        ..Config::default()
    };
    config.broker_admin.url = Some(url);
    config.broker_admin.username = username;
    config.broker_admin.password = Some(SecretString::from(password));
    config
}

/// Removes the kitchens' users, queues and exchanges (and `exchanges`) when dropped.
pub(super) fn clean_up(kitchens: &[&str], exchanges: &[&str]) -> BrokerObjects {
    let objects = BrokerObjects::new();
    for kitchen in kitchens {
        objects.add_user(box_user(kitchen));
        objects.add_queue(edge_queue(kitchen));
        objects.add_queue(edge_dead_letter_queue(kitchen));
        objects.add_exchange(kitchen_proto::edge_dead_letter_exchange(kitchen));
    }
    for exchange in exchanges {
        objects.add_exchange(*exchange);
    }
    objects
}

fn order(store: &str, n: u32) -> OrderEvent {
    new_order(store, &format!("{store}-order-{n}"))
        .event_id(format!("{store}-event-{n}"))
        .build()
}

/// Asserts RabbitMQ refused the operation with `403 ACCESS_REFUSED`, naming `resource`.
fn assert_refused<T: std::fmt::Debug>(what: &str, resource: &str, result: Result<T, lapin::Error>) {
    let error = match result {
        Ok(value) => panic!("{what}: allowed ({value:?})"),
        Err(error) => error,
    };
    match error.kind() {
        lapin::ErrorKind::ProtocolError(amqp) => {
            let message = amqp.get_message().to_string();
            assert_eq!(amqp.get_id(), 403, "{what}: {error}");
            assert!(
                message.starts_with("ACCESS_REFUSED - ") && message.contains(resource),
                "{what}: {message}"
            );
        }
        other => panic!("{what}: not refused by the broker but {other:?}"),
    }
}

/// Waits until the management API lists a connection of `user`: it does within its
/// statistics interval, and a connection it does not list cannot be closed through it.
pub(super) async fn connection_listed(user: &str) {
    eventually(
        "the box's connection listed",
        Duration::from_secs(15),
        || async {
            let (url, admin, password) = admin_url();
            let listed: serde_json::Value = kitchen_testkit::http::bare()
                .get(format!("{url}api/connections?columns=user"))
                .basic_auth(admin, Some(password))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            listed
                .as_array()?
                .iter()
                .any(|c| c["user"] == user)
                .then_some(())
        },
    )
    .await;
}

pub(super) async fn connect(url: &str) -> Result<Connection, lapin::Error> {
    match tokio::time::timeout(
        Duration::from_secs(10),
        Connection::connect(url, ConnectionProperties::default()),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => panic!("connecting timed out"),
    }
}

/// The next delivery of a consumer on `queue`, within 5 s.
async fn next_order(channel: &Channel, queue: &str) -> OrderEvent {
    use prost::Message;
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("basic.consume of the own queue");
    let delivery = tokio::time::timeout(Duration::from_secs(5), consumer.next())
        .await
        .expect("an order within 5 s")
        .expect("consumer open")
        .expect("delivery");
    let order_event = OrderEvent::decode(delivery.data.as_slice()).expect("protobuf");
    assert!(
        delivery
            .ack(Default::default())
            .await
            .expect("basic.ack allowed")
    );
    channel
        .basic_cancel(consumer.tag(), Default::default())
        .await
        .expect("basic.cancel");
    order_event
}

#[tokio::test]
async fn a_box_may_consume_its_own_queue_and_nothing_else() {
    let exchange = unique("acl.structured_order_data");
    let raw_exchange = unique("acl.otter_events");
    let (a, b) = (unique("acl-a"), unique("acl-b"));
    let _objects = clean_up(&[&a, &b], &[&exchange, &raw_exchange]);
    let broker = Broker::from_config(&config(&exchange))
        .expect("valid config")
        .expect("broker admin on");
    let provisioned_a = broker
        .provision(&a, &["store-a".into()])
        .await
        .expect("kitchen a");
    let provisioned_b = broker
        .provision(&b, &["store-b".into()])
        .await
        .expect("kitchen b");
    assert_eq!(
        provisioned_a.rebound.bound,
        ["store-a"],
        "{}",
        provisioned_a
    );
    let login_a = provisioned_a.login.expect("a new user, with its login");
    assert!(provisioned_b.login.is_some());
    assert_eq!(
        broker
            .admin()
            .permissions(broker.vhost(), &box_user(&a))
            .await
            .expect("read back"),
        Some(box_permissions(&a))
    );

    // The relay's side: its own exchanges, and a test publisher (the relay's user, guest here).
    let relay = connect(&amqp_url()).await.expect("relay connects");
    let publisher = relay.create_channel().await.expect("channel");
    publisher
        .exchange_declare(
            raw_exchange.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("raw exchange");

    let box_a = connect(login_a.amqp_url.expose_secret())
        .await
        .expect("box a logs in with the printed amqp_url");
    let own = box_a.create_channel().await.expect("channel");
    // The agent's passive declare needs no configure permission.
    own.queue_declare(
        edge_queue(&a).as_str().into(),
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("passive declare of the own queue");
    publish(&publisher, &exchange, &order("store-a", 1))
        .await
        .expect("publish");
    assert_eq!(
        next_order(&own, &edge_queue(&a)).await.event_id,
        "store-a-event-1"
    );

    let queue_a = edge_queue(&a);
    let queue_b = edge_queue(&b);
    // Each refusal closes its channel: a fresh one for each.
    let box_a = &box_a;
    let refused = |what: &'static str| async move {
        let channel = box_a.create_channel().await.expect("a fresh channel");
        (what, channel)
    };
    let (what, channel) = refused("binding its queue to another store").await;
    assert_refused(
        what,
        &queue_a,
        channel
            .queue_bind(
                queue_a.as_str().into(),
                exchange.as_str().into(),
                "store-b".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await,
    );
    let (what, channel) = refused("consuming another kitchen's queue").await;
    assert_refused(
        what,
        &queue_b,
        channel
            .basic_consume(
                queue_b.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await,
    );
    let (what, channel) = refused("basic.get from another kitchen's queue").await;
    assert_refused(
        what,
        &queue_b,
        channel
            .basic_get(queue_b.as_str().into(), BasicGetOptions::default())
            .await,
    );
    let (what, channel) = refused("declaring a queue to read the raw events into").await;
    let spy = format!("{a}.spy");
    assert_refused(
        what,
        &spy,
        channel
            .queue_declare(
                spy.as_str().into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await,
    );
    let (what, channel) = refused("binding its queue to the raw events fanout").await;
    assert_refused(
        what,
        &queue_a,
        channel
            .queue_bind(
                queue_a.as_str().into(),
                raw_exchange.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await,
    );
    let (what, channel) = refused("declaring the shared exchange").await;
    assert_refused(
        what,
        &exchange,
        channel
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await,
    );
    let (what, channel) = refused("deleting the shared exchange").await;
    assert_refused(
        what,
        &exchange,
        channel
            .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
            .await,
    );
    let (what, channel) = refused("deleting its own queue").await;
    assert_refused(
        what,
        &queue_a,
        channel
            .queue_delete(queue_a.as_str().into(), QueueDeleteOptions::default())
            .await,
    );
    let (what, channel) = refused("publishing a forged order").await;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    let forged = async {
        channel
            .basic_publish(
                exchange.as_str().into(),
                "store-b".into(),
                BasicPublishOptions::default(),
                b"forged",
                BasicProperties::default(),
            )
            .await?
            .await
    };
    let forged = tokio::time::timeout(Duration::from_secs(5), forged)
        .await
        .expect("the refusal arrives within 5 s");
    assert_refused(what, &exchange, forged);

    // Still working for its own orders, and a reject dead-letters as the agent's does.
    publish(&publisher, &exchange, &order("store-a", 2))
        .await
        .expect("publish");
    publish(&publisher, &exchange, &order("store-b", 1))
        .await
        .expect("publish");
    assert_eq!(next_order(&own, &queue_a).await.event_id, "store-a-event-2");
    publish(&publisher, &exchange, &order("store-a", 3))
        .await
        .expect("publish");
    let poison = eventually("order 3 in a's queue", Duration::from_secs(5), || async {
        own.basic_get(queue_a.as_str().into(), BasicGetOptions::default())
            .await
            .expect("basic.get of the own queue")
    })
    .await;
    assert!(
        poison
            .delivery
            .reject(BasicRejectOptions { requeue: false })
            .await
            .expect("basic.reject allowed")
    );
    let dead = eventually(
        "the rejected order dead-lettered",
        Duration::from_secs(5),
        || {
            let publisher = publisher.clone();
            let dead = edge_dead_letter_queue(&a);
            async move {
                publisher
                    .basic_get(dead.as_str().into(), BasicGetOptions { no_ack: true })
                    .await
                    .expect("basic.get")
            }
        },
    )
    .await;
    use prost::Message;
    let dead = OrderEvent::decode(dead.delivery.data.as_slice()).expect("protobuf");
    assert_eq!(dead.event_id, "store-a-event-3");
    // B's order went to B's queue only.
    let b_queue = publisher
        .basic_get(queue_b.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
        .expect("b's order in b's queue");
    assert_eq!(
        OrderEvent::decode(b_queue.delivery.data.as_slice())
            .expect("protobuf")
            .event_id,
        "store-b-event-1"
    );
    let _ = box_a.close(200, "done".into()).await;
    let _ = relay.close(200, "done".into()).await;
}

#[tokio::test]
async fn rotate_replaces_the_password_and_remove_deletes_the_user() {
    let exchange = unique("rotate.structured_order_data");
    let kitchen = unique("rotate");
    let _objects = clean_up(&[&kitchen], &[&exchange]);
    let broker = Broker::from_config(&config(&exchange))
        .expect("valid config")
        .expect("broker admin on");
    let user = box_user(&kitchen);
    let first = broker
        .provision(&kitchen, &[])
        .await
        .expect("provisioned")
        .login
        .expect("login");
    // Again: the user is kept, its password unchanged.
    let again = broker.provision(&kitchen, &[]).await.expect("again");
    assert!(again.login.is_none());
    assert_eq!(
        again.to_string(),
        format!(
            "broker queue \"edge.{kitchen}\": declared, bound for 0 store(s) []\n\
             broker user \"edge.{kitchen}\": already there, permissions set again; password \
             unchanged (`cloud-relay kitchen rotate` makes a new one)"
        )
    );
    let old = connect(first.amqp_url.expose_secret())
        .await
        .expect("the first password works");
    connection_listed(&user).await;

    let (second, closed) = broker.rotate(&kitchen).await.expect("rotated");
    assert_eq!(closed, 1);
    assert_ne!(
        second.amqp_url.expose_secret(),
        first.amqp_url.expose_secret()
    );
    eventually(
        "the open connection closed",
        Duration::from_secs(5),
        || async { (!old.status().connected()).then_some(()) },
    )
    .await;
    let refused = connect(first.amqp_url.expose_secret()).await;
    assert!(refused.is_err(), "the old password still connects");
    let new = connect(second.amqp_url.expose_secret())
        .await
        .expect("the new password works");
    let _ = new.close(200, "done".into()).await;

    // Remove keeps the queue (orders may wait in it) unless asked.
    let removed = broker.remove(&kitchen, false).await.expect("removed");
    assert_eq!(
        removed.to_string(),
        format!(
            "broker user \"edge.{kitchen}\": deleted (0 connection(s) closed)\n\
             broker queue \"edge.{kitchen}\": kept, still bound, 0 message(s) waiting (delete it \
             with --delete-queue)"
        )
    );
    assert!(!broker.admin().user_exists(&user).await.expect("asked"));
    assert!(connect(second.amqp_url.expose_secret()).await.is_err());
    let removed = broker.remove(&kitchen, true).await.expect("removed");
    assert_eq!(
        removed.to_string(),
        format!(
            "broker user \"edge.{kitchen}\": there was none\n\
             broker queue \"edge.{kitchen}\": deleted with its messages, dead-letter queue and \
             exchange"
        )
    );
    assert_eq!(
        broker
            .admin()
            .queue_messages(broker.vhost(), &edge_queue(&kitchen))
            .await
            .expect("asked"),
        None
    );
    let error = broker.rotate(&kitchen).await.err().expect("no user");
    assert_eq!(
        error.to_string(),
        format!("kitchen {kitchen:?} has no broker user (make one with `cloud-relay kitchen add`)")
    );
}

/// Runs the relay binary with `[broker_admin]` on the test broker.
pub(super) async fn relay_cli(
    db: &TestDb,
    exchange: &str,
    args: &[&str],
) -> (bool, String, String) {
    let (url, username, password) = admin_url();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_cloud-relay"))
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("AMQP_URL", amqp_url())
        .env("RELAY_ORDER_EXCHANGE", exchange)
        .env("RABBITMQ_ADMIN_URL", url)
        .env("RABBITMQ_ADMIN_USERNAME", username)
        .env("RABBITMQ_ADMIN_PASSWORD", password)
        .env("RUST_LOG", "warn")
        .env_remove("RELAY_CONFIG")
        .env_remove("MQTT_URL")
        .output()
        .await
        .expect("cloud-relay runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_cli_provisions_the_broker_and_reference_import_rebinds() {
    let role = TestRole::named("broker_box");
    let db = TestDb::migrated(&MIGRATOR).await;
    let exchange = unique("cli.structured_order_data");
    let kitchen = unique("cli-kitchen");
    let _objects = clean_up(&[&kitchen], &[&exchange]);
    let dir = std::env::temp_dir().join(unique("broker_cli"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (store_1, store_2) = (unique("store-1"), unique("store-2"));
    let reference = |store: &str| {
        let file = dir.join(format!("{store}.toml"));
        std::fs::write(&file, REFERENCE.replace("kitchen-bk-01", store)).expect("write");
        file.display().to_string()
    };

    let (ok, stdout, stderr) = relay_cli(
        &db,
        &exchange,
        &[
            "kitchen",
            "add",
            "--kitchen",
            &kitchen,
            "--role",
            &role.name,
        ],
    )
    .await;
    assert!(ok, "{stderr}");
    let tail: Vec<&str> = stdout.lines().skip(5).collect();
    assert_eq!(
        tail[..3],
        [
            format!("broker queue \"edge.{kitchen}\": declared, bound for 0 store(s) []").as_str(),
            format!("broker user \"edge.{kitchen}\": created; may consume edge.{kitchen} only")
                .as_str(),
            "# the box's kitchen.toml:",
        ],
        "{stdout}"
    );
    let amqp_line = tail[3]
        .strip_prefix("amqp_url = \"")
        .and_then(|rest| rest.strip_suffix('"'))
        .expect("the box's amqp_url line");
    let box_connection = connect(amqp_line).await.expect("the printed url logs in");
    let box_channel = box_connection.create_channel().await.expect("channel");

    let relay = connect(&amqp_url()).await.expect("relay connects");
    let publisher = relay.create_channel().await.expect("channel");
    let import = |store: String| {
        let file = reference(&store);
        let (db, exchange, kitchen) = (&db, &exchange, &kitchen);
        async move {
            relay_cli(
                db,
                exchange,
                &["reference", "import", "--kitchen", kitchen, &file],
            )
            .await
        }
    };
    let (ok, stdout, stderr) = import(store_1.clone()).await;
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout.lines().nth(1),
        Some(
            format!(
                "broker queue \"edge.{kitchen}\": declared, bound for 1 store(s) [{store_1}]; \
                 newly bound [{store_1}]"
            )
            .as_str()
        ),
        "{stdout}"
    );
    publish(&publisher, &exchange, &order(&store_1, 1))
        .await
        .expect("publish");
    assert_eq!(
        next_order(&box_channel, &edge_queue(&kitchen))
            .await
            .event_id,
        format!("{store_1}-event-1")
    );

    // The kitchen now serves store 2 instead: rebound from the cloud.
    let (ok, stdout, stderr) = import(store_2.clone()).await;
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout.lines().nth(1),
        Some(
            format!(
                "broker queue \"edge.{kitchen}\": declared, bound for 1 store(s) [{store_2}]; \
                 newly bound [{store_2}]; unbound [{store_1}]"
            )
            .as_str()
        ),
        "{stdout}"
    );
    publish(&publisher, &exchange, &order(&store_1, 2))
        .await
        .expect("publish");
    publish(&publisher, &exchange, &order(&store_2, 1))
        .await
        .expect("publish");
    assert_eq!(
        next_order(&box_channel, &edge_queue(&kitchen))
            .await
            .event_id,
        format!("{store_2}-event-1")
    );
    // Only store 2's order was routed: nothing else waits.
    let left = box_channel
        .basic_get(
            edge_queue(&kitchen).as_str().into(),
            BasicGetOptions { no_ack: true },
        )
        .await
        .expect("basic.get");
    assert!(left.is_none(), "{left:?}");

    let (ok, stdout, stderr) = relay_cli(
        &db,
        &exchange,
        &["kitchen", "remove", "--kitchen", &kitchen],
    )
    .await;
    assert!(ok, "{stderr}");
    assert!(
        stdout.starts_with(&format!("broker user \"edge.{kitchen}\": deleted (")),
        "{stdout}"
    );
    let _ = box_connection.close(200, "done".into()).await;
    let _ = relay.close(200, "done".into()).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The relay's own user needs only to declare and publish to its two exchanges: run as such a
/// user (as docs/security.md tables it), the relay delivers, and it cannot read a kitchen queue.
#[tokio::test]
async fn the_relay_publishes_with_configure_and_write_on_its_exchanges_only() {
    let relay_user = unique("relay-user");
    let objects = BrokerObjects::new();
    objects.add_user(&relay_user);
    let password = SecretString::from(unique("pw"));
    let broker = Broker::from_config(&config("unused"))
        .expect("valid config")
        .expect("broker admin on");
    broker
        .admin()
        .put_user(&relay_user, &password)
        .await
        .expect("relay user");
    let mut relay_url: lapin::uri::AMQPUri = amqp_url().parse().expect("amqp url");
    relay_url.authority.userinfo.username = relay_user.clone();
    relay_url.authority.userinfo.password = password.expose_secret().to_owned();
    let relay_url = relay_url.to_string();
    let app =
        spawn_app_with(|config| config.amqp_url = SecretString::from(relay_url.clone())).await;
    // Its permissions once its exchanges' names are known: until then it cannot connect and
    // retries with backoff.
    let exchanges = format!(
        "^({}|{})$",
        regex_escape(&app.config.order_exchange),
        regex_escape(&app.config.raw_events_exchange)
    );
    let permissions = Permissions {
        configure: exchanges.clone(),
        write: exchanges,
        read: "^$".into(),
    };
    broker
        .admin()
        .set_permissions(broker.vhost(), &relay_user, &permissions)
        .await
        .expect("relay permissions");
    let kitchen = app.broker.kitchen_queue(&["kitchen-bk-01"]).await;
    assert_eq!(app.post_signed(NEW_ORDER).await.status(), 200);
    app.wait_all_published(1).await;
    assert_eq!(app.broker.delivered(&kitchen).await.len(), 1);

    let relay = connect(&relay_url)
        .await
        .expect("the relay's user connects");
    let channel = relay.create_channel().await.expect("channel");
    assert_refused(
        "the relay reading a kitchen's queue",
        &kitchen,
        channel
            .basic_get(kitchen.as_str().into(), BasicGetOptions::default())
            .await,
    );
    let _ = relay.close(200, "done".into()).await;
    drop(app);
}
