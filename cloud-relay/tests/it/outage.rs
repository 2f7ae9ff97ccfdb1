//! The relay through outages: RabbitMQ away (events still accepted, published in order when it
//! returns) and PostgreSQL away (503, nothing acknowledged that is not stored).

use std::time::Duration;

use kitchen_testkit::proxy::Proxy;
use secrecy::SecretString;

use super::harness::*;

#[tokio::test]
async fn events_accepted_while_the_broker_is_away_are_published_in_order_when_it_returns() {
    let broker_proxy = Proxy::start(socket_addr_of(&amqp_url())).await;
    let proxied = through(&amqp_url(), broker_proxy.addr);
    let app = spawn_app_with(|config| config.amqp_url = SecretString::from(proxied)).await;
    let queue = app.broker.kitchen_queue(&["s1"]).await;

    // Connected and delivering.
    assert_eq!(
        app.post_signed(&new_order("e00", "s1", "o00", "2025-03-14T18:00:00Z"))
            .await
            .status(),
        200
    );
    app.wait_all_published(1).await;

    broker_proxy.cut();
    for n in 1..=20 {
        let body = new_order(
            &format!("e{n:02}"),
            "s1",
            &format!("o{n:02}"),
            "2025-03-14T18:00:00Z",
        );
        assert_eq!(app.post_signed(&body).await.status(), 200);
    }
    eventually(
        "readyz reports the broker down",
        Duration::from_secs(15),
        || async {
            let response = app.client.get(app.admin_url("/readyz")).send().await.ok()?;
            let body: serde_json::Value = response.json().await.ok()?;
            (body["broker"] == "down").then_some(())
        },
    )
    .await;
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM otter.outbox WHERE published_at IS NULL")
            .await,
        20
    );

    broker_proxy.restore();
    app.wait_all_published(21).await;
    let delivered = app.broker.delivered(&queue).await;
    let expected: Vec<(String, u64)> = (0..=20).map(|n| (format!("e{n:02}"), n + 1)).collect();
    assert_eq!(delivered, expected);
}

#[tokio::test]
async fn database_unreachable_answers_503_and_stores_nothing() {
    let db_proxy = Proxy::start(socket_addr_of(&admin_database_url())).await;
    let mut proxied_url = String::new();
    let app = spawn_app_with(|config| {
        use secrecy::ExposeSecret;
        let direct = config.database_url.expose_secret().to_owned();
        proxied_url = through(&direct, db_proxy.addr);
        config.database_url = SecretString::from(proxied_url.clone());
        config.ingest_timeout = Duration::from_secs(5);
    })
    .await;

    db_proxy.cut();
    let body = new_order("e1", "s1", "o1", "2025-03-14T18:00:00Z");
    let response = app.post_signed(&body).await;
    assert_eq!(response.status(), 503);
    let error: serde_json::Value = response.json().await.expect("json");
    assert_eq!(
        error,
        serde_json::json!({"error": "temporarily unable to store the event; retry later"})
    );
    let ready = app
        .client
        .get(app.admin_url("/readyz"))
        .send()
        .await
        .expect("answers");
    assert_eq!(ready.status(), 503);
    // States only: the database error goes to the log, not to whoever asks.
    let ready: serde_json::Value = ready.json().await.expect("json");
    let broker = ready["broker"].as_str().unwrap_or_default().to_owned();
    assert!(
        ["up", "standby", "down"].contains(&broker.as_str()),
        "{ready}"
    );
    assert_eq!(
        ready,
        serde_json::json!({"status": "not ready", "database": "down", "broker": broker})
    );
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM otter.webhook_events")
            .await,
        0
    );

    // Otter retries once PostgreSQL is back: stored once.
    db_proxy.restore();
    let response = eventually("the retry is stored", Duration::from_secs(20), || async {
        let response = app.post_signed(&body).await;
        (response.status() == 200).then_some(response)
    })
    .await;
    assert_eq!(response.text().await.expect("body"), "");
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM otter.webhook_events")
            .await,
        1
    );
    assert_eq!(app.db.count("SELECT count(*) FROM otter.orders").await, 1);
}

#[tokio::test]
async fn the_relay_starts_and_accepts_webhooks_while_the_broker_is_down() {
    let broker_proxy = Proxy::start(socket_addr_of(&amqp_url())).await;
    broker_proxy.cut();
    let proxied = through(&amqp_url(), broker_proxy.addr);
    let app = spawn_app_with(|config| config.amqp_url = SecretString::from(proxied)).await;
    let queue = app.broker.kitchen_queue(&["s1"]).await;
    for n in 1..=3 {
        let body = new_order(
            &format!("e{n}"),
            "s1",
            &format!("o{n}"),
            "2025-03-14T18:00:00Z",
        );
        assert_eq!(app.post_signed(&body).await.status(), 200);
    }
    let ready = app
        .client
        .get(app.admin_url("/readyz"))
        .send()
        .await
        .expect("answers");
    assert_eq!(ready.status(), 503);
    let ready: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(
        ready,
        serde_json::json!({"status": "not ready", "database": "up", "broker": "down"})
    );

    broker_proxy.restore();
    app.wait_all_published(3).await;
    let delivered = app.broker.delivered(&queue).await;
    let expected: Vec<(String, u64)> = (1..=3).map(|n| (format!("e{n}"), n)).collect();
    assert_eq!(delivered, expected);
}
