//! The testkit's guards against the real services: what a test makes is gone once the guard
//! drops, and the proxy really cuts and restores.

use std::time::Duration;

use kitchen_testkit::{
    amqp::{BrokerObjects, amqp_url},
    db::{TestDb, TestRole, admin_database_url},
    dir::TempDir,
    names::unique,
    proxy::{Proxy, socket_addr_of, through},
};
use lapin::{
    Connection, ConnectionProperties, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueDeclareOptions},
    types::FieldTable,
};
use sqlx::{Connection as _, PgConnection, PgPool};

async fn exists(sql: &str, name: &str) -> bool {
    let mut admin = PgConnection::connect(&admin_database_url())
        .await
        .expect("postgres");
    sqlx::query_scalar(sql)
        .bind(name)
        .fetch_one(&mut admin)
        .await
        .expect(sql)
}

#[tokio::test]
async fn databases_and_roles_are_dropped_with_their_guards() {
    let role = TestRole::create("testkit_role", "LOGIN").await;
    let db = TestDb::owned_by(&role).await;
    let (database, role_name) = (db.name.clone(), role.name.clone());
    assert_eq!(
        db.count("SELECT count(*) FROM pg_class WHERE false").await,
        0
    );
    let as_role = db.connect_as(&role.name).await;
    let user: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&as_role)
        .await
        .expect("query as the role");
    assert_eq!(user, role.name);
    let database_exists = "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)";
    let role_exists = "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)";
    assert!(exists(database_exists, &database).await);
    assert!(exists(role_exists, &role_name).await);

    as_role.close().await;
    drop(db);
    drop(role);
    assert!(!exists(database_exists, &database).await);
    assert!(!exists(role_exists, &role_name).await);
}

#[tokio::test]
async fn broker_objects_are_deleted_when_dropped() {
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .expect("rabbitmq");
    let kitchen_id = unique("testkit-cleanup");
    let (queue, exchange) = (format!("edge.{kitchen_id}"), format!("{kitchen_id}.orders"));
    let objects = BrokerObjects::edge_kitchen(&kitchen_id, &exchange);
    let channel = connection.create_channel().await.expect("channel");
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("declare queue");
    channel
        .exchange_declare(
            exchange.as_str().into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("declare exchange");

    drop(objects);
    // A passive declare fails (and closes its channel) for what no longer exists.
    let passive = |name: String, queue: bool| {
        let connection = &connection;
        async move {
            let channel = connection.create_channel().await.expect("channel");
            if queue {
                let options = QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                };
                channel
                    .queue_declare(name.as_str().into(), options, FieldTable::default())
                    .await
                    .is_ok()
            } else {
                let options = ExchangeDeclareOptions {
                    passive: true,
                    ..ExchangeDeclareOptions::default()
                };
                channel
                    .exchange_declare(
                        name.as_str().into(),
                        ExchangeKind::Direct,
                        options,
                        FieldTable::default(),
                    )
                    .await
                    .is_ok()
            }
        }
    };
    assert!(!passive(queue, true).await);
    assert!(!passive(exchange, false).await);
    let _ = connection.close(200, "test done".into()).await;
}

#[tokio::test]
async fn a_cut_proxy_refuses_until_restored() {
    let proxy = Proxy::start(socket_addr_of(&admin_database_url())).await;
    let url = through(&admin_database_url(), proxy.addr);
    let connect = || async {
        tokio::time::timeout(Duration::from_secs(5), PgPool::connect(&url))
            .await
            .is_ok_and(|pool| pool.is_ok())
    };
    assert!(connect().await);
    proxy.cut();
    assert!(!connect().await);
    proxy.restore();
    assert!(connect().await);
}

#[test]
fn a_temporary_directory_goes_with_its_guard() {
    let dir = TempDir::new("testkit-dir");
    std::fs::write(dir.path().join("file"), "x").expect("write");
    let path = dir.path().to_owned();
    drop(dir);
    assert!(!path.exists());
}
