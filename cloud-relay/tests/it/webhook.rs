//! The webhook endpoint's answers: signatures, bad bodies, event families, health endpoints.

use super::harness::*;

#[tokio::test]
async fn only_correctly_signed_webhooks_are_stored() {
    let app = spawn_app().await;
    let send = |signature: Option<String>, body: Vec<u8>| {
        let mut request = app
            .client
            .post(app.url("/webhooks/otter"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(signature) = signature {
            request = request.header("x-hmac-sha256", signature);
        }
        request.send()
    };
    let mut tampered = CANCEL_ORDER.to_vec();
    let at = tampered.iter().position(|b| *b == b'C').expect("has a C");
    tampered[at] = b'D';
    let wrong_secret = cloud_relay::otter::WebhookSigner::new(secrecy::SecretString::from("other"))
        .sign(CANCEL_ORDER);
    for (signature, body) in [
        (Some(app.signer.sign(CANCEL_ORDER)), tampered),
        (Some(wrong_secret), CANCEL_ORDER.to_vec()),
        (None, CANCEL_ORDER.to_vec()),
        (Some("not-base64".into()), CANCEL_ORDER.to_vec()),
    ] {
        let response = send(signature, body).await.expect("answers");
        assert_eq!(response.status(), 401);
        let body: serde_json::Value = response.json().await.expect("json error body");
        assert!(
            body["error"]
                .as_str()
                .expect("message")
                .starts_with("invalid signature")
        );
    }
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM otter.webhook_events")
            .await,
        0
    );

    // The reference check value, sent exactly as Otter would.
    let response = send(
        Some("45KPexrjl74Hxm3/xJpSLHdeS6wtMtspCrD7v/WDv5s=".into()),
        CANCEL_ORDER.to_vec(),
    )
    .await
    .expect("answers");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("body"), "");
    let stored: Vec<(String, String, String)> =
        sqlx::query_as("SELECT event_id, event_type, raw FROM otter.webhook_events")
            .fetch_all(&app.db.pool)
            .await
            .expect("query");
    assert_eq!(
        stored,
        [(
            "5d2e8c4a-90b1-4f3e-a7d6-1c2b3a4f5e60".to_owned(),
            "orders.cancel_order".to_owned(),
            String::from_utf8(CANCEL_ORDER.to_vec()).expect("utf-8"),
        )]
    );
}

#[tokio::test]
async fn bad_requests_get_a_clear_answer_and_the_relay_keeps_serving() {
    let app = spawn_app().await;
    let post = |body: Vec<u8>, content_type: &'static str| {
        app.client
            .post(app.url("/webhooks/otter"))
            .header("content-type", content_type)
            .header("x-hmac-sha256", app.signer.sign(&body))
            .body(body)
            .send()
    };
    let check = |status: u16, error: &'static str| {
        move |response: reqwest::Response| async move {
            assert_eq!(response.status(), status, "{error}");
            let body: serde_json::Value = response.json().await.expect("json error body");
            assert_eq!(body, serde_json::json!({ "error": error }));
        }
    };
    check(
        400,
        "body is not valid JSON: EOF while parsing an object at line 1 column 10",
    )(
        post(b"{\"eventId\"".to_vec(), "application/json")
            .await
            .expect("answers"),
    )
    .await;
    check(400, "missing or empty eventType")(
        post(
            br#"{"eventId":"e-1","metadata":{}}"#.to_vec(),
            "application/json",
        )
        .await
        .expect("answers"),
    )
    .await;
    check(
        415,
        "unsupported content type \"text/plain\"; send application/json",
    )(
        post(NEW_ORDER.to_vec(), "text/plain")
            .await
            .expect("answers"),
    )
    .await;
    let mut oversized = br#"{"eventId":"big","eventType":"ping.ping","pad":""#.to_vec();
    oversized.resize(1024 * 1024 + 1, b'x');
    let response = post(oversized, "application/json").await.expect("answers");
    assert_eq!(response.status(), 413);
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM otter.webhook_events")
            .await,
        0
    );

    // Families the kitchen does not use are stored and acknowledged, not rejected.
    for (event_id, event_type) in [
        ("m-1", "menus.menu_publish"),
        ("p-1", "ping.ping"),
        ("x-1", "brand.new_family"),
    ] {
        let body = format!(
            r#"{{"eventId":"{event_id}","eventType":"{event_type}","metadata":{{"storeId":"s1","payload":{{}}}}}}"#
        );
        let response = post(body.into_bytes(), "application/json; charset=utf-8")
            .await
            .expect("answers");
        assert_eq!(response.status(), 200, "{event_type}");
    }
    let outcomes: Vec<(String, String)> =
        sqlx::query_as("SELECT event_id, outcome FROM otter.webhook_events ORDER BY event_id")
            .fetch_all(&app.db.pool)
            .await
            .expect("query");
    assert_eq!(
        outcomes,
        [("m-1", "stored"), ("p-1", "stored"), ("x-1", "stored")]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    // None of them is for the kitchens: no sequence numbers were used.
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM otter.outbox WHERE sequence IS NOT NULL")
            .await,
        0
    );

    let health = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("answers");
    assert_eq!(
        (health.status().as_u16(), health.text().await.expect("body")),
        (200, "ok".to_owned())
    );
    let ping = app
        .client
        .get(app.url("/ping"))
        .send()
        .await
        .expect("answers");
    assert_eq!(ping.text().await.expect("body"), "pong");
    let metrics = app.metrics().await;
    for line in [
        "relay_webhooks_total{event_type=\"unknown\",outcome=\"invalid\"} 2",
        "relay_webhooks_total{event_type=\"unknown\",outcome=\"unsupported_media_type\"} 1",
        "relay_webhooks_total{event_type=\"unknown\",outcome=\"too_large\"} 1",
        "relay_webhooks_total{event_type=\"ping.ping\",outcome=\"stored\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line} in\n{metrics}"
        );
    }
}

#[tokio::test]
async fn readyz_and_metrics_are_served_on_the_admin_listener_only() {
    let app = spawn_app().await;
    let ready = eventually(
        "relay ready",
        std::time::Duration::from_secs(10),
        || async {
            let response = app.client.get(app.admin_url("/readyz")).send().await.ok()?;
            (response.status() == 200).then_some(response)
        },
    )
    .await;
    let body: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(
        body,
        serde_json::json!({"status": "ready", "database": "up", "broker": "up"})
    );
    let metrics = app
        .client
        .get(app.admin_url("/metrics"))
        .send()
        .await
        .expect("answers");
    assert_eq!(metrics.status(), 200);
    assert_eq!(
        metrics.headers()["content-type"],
        kitchen_daemon::metrics::CONTENT_TYPE
    );
    let metrics = metrics.text().await.expect("body");
    for line in [
        "relay_webhook_signatures_total{secret=\"current\"} 0",
        "relay_webhook_signatures_total{secret=\"previous\"} 0",
        "relay_webhooks_in_flight 0",
        "relay_rate_limited_total 0",
        // Nothing has connected to the public listener yet.
        "relay_http_connections_open{listener=\"public\"} 0",
        "relay_http_connections_total{listener=\"public\"} 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line} in\n{metrics}"
        );
    }
    // This request's own connection at least (the client may hold others open).
    let admin_open: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("relay_http_connections_open{listener=\"admin\"} "))
        .expect("admin connections gauge")
        .parse()
        .expect("a number");
    assert!(admin_open >= 1, "{metrics}");
    let admin_health = app
        .client
        .get(app.admin_url("/healthz"))
        .send()
        .await
        .expect("answers");
    assert_eq!(admin_health.text().await.expect("body"), "ok");

    // The public listener has neither; the admin one takes no webhooks.
    for path in ["/readyz", "/metrics"] {
        let response = app.client.get(app.url(path)).send().await.expect("answers");
        assert_eq!(
            (
                response.status().as_u16(),
                response.text().await.expect("body")
            ),
            (404, String::new()),
            "{path}"
        );
    }
    let response = app
        .client
        .post(app.admin_url("/webhooks/otter"))
        .header("content-type", "application/json")
        .header("x-hmac-sha256", app.signer.sign(NEW_ORDER))
        .body(NEW_ORDER.to_vec())
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 404);
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM otter.webhook_events")
            .await,
        0
    );
}

#[tokio::test]
async fn stops_cleanly_when_told_to() {
    let app = spawn_app().await;
    let response = app.post_signed(NEW_ORDER).await;
    assert_eq!(response.status(), 200);
    let started = std::time::Instant::now();
    app.stop().await.expect("clean exit");
    assert!(started.elapsed() < std::time::Duration::from_secs(6));
}

/// The real binary: SIGTERM while serving → exits 0 within the 5 s grace.
#[tokio::test]
async fn the_binary_exits_cleanly_on_sigterm() {
    let db = TestDb::create().await;
    let broker = TestBroker::create().await;
    let mut relay = tokio::process::Command::new(env!("CARGO_BIN_EXE_cloud-relay"))
        .env("RELAY_LISTEN", "127.0.0.1:0")
        .env("RELAY_ADMIN_LISTEN", "127.0.0.1:0")
        .env("DATABASE_URL", &db.url)
        .env("AMQP_URL", amqp_url())
        .env("RELAY_ORDER_EXCHANGE", &broker.order_exchange)
        .env("RELAY_RAW_EVENTS_EXCHANGE", &broker.raw_exchange)
        .env("OTTER_WEBHOOK_SECRET", SECRET)
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("relay binary starts");
    // It logs its address once listening.
    let stderr = relay.stderr.take().expect("stderr");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stderr));
    let addr = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            let line = lines
                .next_line()
                .await
                .expect("reads stderr")
                .expect("relay exited early");
            if let Some(at) = line.find(" listen=") {
                let rest = &line[at + " listen=".len()..];
                return rest.split_whitespace().next().unwrap_or(rest).to_owned();
            }
        }
    })
    .await
    .expect("relay logs its address");
    let health = kitchen_testkit::http::bare()
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .expect("answers");
    assert_eq!(health.status(), 200);

    let pid = relay.id().expect("running").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = tokio::time::timeout(std::time::Duration::from_secs(6), relay.wait())
        .await
        .expect("exits within the grace period")
        .expect("waits");
    assert_eq!(status.code(), Some(0));
}
