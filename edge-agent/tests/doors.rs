//! The kitchen LAN's doors (docs/security.md), against a real agent on its own queues: who is
//! refused where, pairing and revocation, hostile values, and idle connections.

use kitchen_testkit::browser;
mod common;

use std::time::{Duration, Instant};

use common::TestAgent;
use kitchen_proto::OrderEvent;
use kitchen_testkit::{
    events::{line, new_order, sku_line},
    http::{SseReader, client, get_json},
};
use reqwest::{StatusCode, header};
use serde_json::{Value, json};

const REFERENCE: &str = include_str!("fixtures/sample_kitchen.toml");

fn burger_meal(order_id: &str, sequence: u64) -> OrderEvent {
    new_order("kitchen-bk-01", order_id)
        .event_id(format!("e-{order_id}"))
        .sequence(sequence)
        .item(sku_line(
            "sku-smash-double",
            "Double Smash Burger",
            1,
            vec![line("Make it a Meal", 1, vec![line("Fries", 1, vec![])])],
        ))
        .build()
}

/// A client that presents `token`.
fn device(token: &str) -> reqwest::Client {
    let mut headers = header::HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        header::HeaderValue::from_str(&format!("Bearer {token}")).expect("ascii"),
    );
    kitchen_testkit::http::builder()
        .default_headers(headers)
        .build()
        .expect("client")
}

async fn status_and_json(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The value of an unlabelled metric on the agent's `/metrics`.
async fn metric(base: &str, name: &str) -> u64 {
    let text = kitchen_testkit::http::get(format!("{base}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

async fn wait_open(base: &str, order_id: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !get_json(&format!("{base}/api/orders?state=open"))
        .await
        .to_string()
        .contains(order_id)
    {
        assert!(Instant::now() < deadline, "order {order_id} never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn each_door_refuses_exactly_who_it_should() {
    let kitchen = TestAgent::start(Some(REFERENCE)).await;
    let base = kitchen.base.clone();
    kitchen.publish(&burger_meal("o1", 1)).await;
    kitchen.publish(&burger_meal("o2", 2)).await;
    wait_open(&base, "o2").await;

    // Unpaired: liveness and readiness (from the box itself) only; pages show the pairing page.
    let stranger = kitchen_testkit::http::bare();
    assert_eq!(
        stranger
            .get(format!("{base}/healthz"))
            .send()
            .await
            .expect("answers")
            .text()
            .await
            .expect("text"),
        "ok"
    );
    let orders = stranger
        .get(format!("{base}/api/orders"))
        .send()
        .await
        .expect("answers");
    assert_eq!(orders.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        orders.headers()[header::WWW_AUTHENTICATE],
        "Bearer realm=\"kitchen\""
    );
    assert_eq!(
        orders.json::<Value>().await.expect("json"),
        json!({"error": "this device is not paired: pair it at /pair, or send Authorization: Bearer <token>"})
    );
    for page in ["/", "/prep", "/devices"] {
        let response = stranger
            .get(format!("{base}{page}"))
            .send()
            .await
            .expect("answers");
        assert_eq!(response.status(), StatusCode::OK);
        let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(
            csp.starts_with("default-src 'none'; script-src 'self';"),
            "{csp}"
        );
        let text = response.text().await.expect("text");
        assert!(text.contains("<h1>Pair this device</h1>"), "{page}: {text}");
        assert!(!text.contains("<script>"), "no inline script");
    }
    let (status, body) = status_and_json(stranger.post(format!("{base}/api/orders/o1/bump"))).await;
    assert_eq!((status, body["error"].as_str().is_some()), (401, true));
    assert_eq!(
        status_and_json(stranger.get(format!("{base}/readyz")))
            .await
            .0,
        200,
        "the box itself may read /readyz"
    );
    assert_eq!(
        status_and_json(stranger.get(format!("{base}/api/me"))).await,
        (
            200,
            json!({"paired": false, "revoked": false, "provisioned": true, "provision_error": null})
        )
    );

    // A display paired on the console reads but changes nothing.
    let (display, display_token) =
        edge_agent::pairing::pair(&kitchen.data_dir, "display", "Wall screen", None)
            .expect("paired");
    assert_eq!(
        (display.role.as_str(), display.paired_by.as_str()),
        ("display", "console")
    );
    let wall = device(&display_token);
    assert_eq!(
        status_and_json(wall.get(format!("{base}/api/orders?state=open")))
            .await
            .0,
        200
    );
    assert_eq!(
        status_and_json(wall.post(format!("{base}/api/orders/o1/bump?station=fry"))).await,
        (
            403,
            json!({"error": "Wall screen (display) may not bump here"})
        )
    );

    // A manager makes a code for a fryer cook; the tablet pairs with it once.
    let (status, code) = status_and_json(
        client()
            .post(format!("{base}/api/devices/pairing-codes"))
            .json(&json!({"role": "cook", "station": "fry"})),
    )
    .await;
    assert_eq!(status, 201, "{code}");
    assert_eq!(
        (&code["role"], &code["station"]),
        (&json!("cook"), &json!("fry"))
    );
    let typed = code["code"]
        .as_str()
        .expect("code")
        .to_lowercase()
        .replace('-', " ");
    let paired = stranger
        .post(format!("{base}/api/pair"))
        .json(&json!({"code": typed, "name": "Fry tablet"}))
        .send()
        .await
        .expect("answers");
    assert_eq!(paired.status(), StatusCode::CREATED);
    let cookie = paired.headers()[header::SET_COOKIE]
        .to_str()
        .expect("ascii")
        .to_owned();
    let body: Value = paired.json().await.expect("json");
    let fry_token = body["token"].as_str().expect("token").to_owned();
    assert_eq!(
        cookie,
        format!("kitchen_device={fry_token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=315360000")
    );
    assert!(
        fry_token.starts_with("kd1_") && fry_token.len() == 68,
        "{fry_token}"
    );
    let fry_id = body["device"]["id"].as_str().expect("id").to_owned();
    assert_eq!(
        (
            &body["device"]["name"],
            &body["device"]["role"],
            &body["device"]["station"]
        ),
        (&json!("Fry tablet"), &json!("cook"), &json!("fry"))
    );
    let again = status_and_json(
        stranger
            .post(format!("{base}/api/pair"))
            .json(&json!({"code": typed, "name": "Another tablet"})),
    )
    .await;
    assert_eq!(
        again,
        (403, json!({"error": "wrong or expired pairing code"}))
    );

    // The cook, by cookie as a browser sends it: its own station only.
    let fry = kitchen_testkit::http::bare();
    let as_fry = |request: reqwest::RequestBuilder| {
        request.header(header::COOKIE, format!("kitchen_device={fry_token}"))
    };
    assert_eq!(
        status_and_json(as_fry(
            fry.post(format!("{base}/api/orders/o1/bump?station=fry"))
        ))
        .await,
        (200, json!({"order_id": "o1", "bumped_at": ["fry"]}))
    );
    assert_eq!(
        status_and_json(as_fry(
            fry.post(format!("{base}/api/orders/o1/bump?station=grill"))
        ))
        .await,
        (
            403,
            json!({"error": "Fry tablet (cook at fry) may not bump here"})
        )
    );
    assert_eq!(
        status_and_json(as_fry(fry.post(format!("{base}/api/orders/o1/bump"))))
            .await
            .0,
        403,
        "no station: every station, not a cook's to bump"
    );
    assert_eq!(
        status_and_json(as_fry(fry.post(format!("{base}/api/stock/s1/discard")))).await,
        (
            403,
            json!({"error": "Fry tablet (cook at fry) may not discard stock"})
        )
    );
    assert_eq!(
        status_and_json(as_fry(fry.get(format!("{base}/api/devices"))))
            .await
            .0,
        403
    );

    // Cross-site writes: a foreign Origin, a cross-site fetch, a form's content type.
    let host = base.trim_start_matches("http://").to_owned();
    assert_eq!(
        status_and_json(
            as_fry(fry.post(format!("{base}/api/orders/o2/bump?station=fry")))
                .header(header::ORIGIN, "http://evil.example")
        )
        .await,
        (
            403,
            json!({"error": "cross-origin write refused (http://evil.example)"})
        )
    );
    assert_eq!(
        status_and_json(
            as_fry(fry.post(format!("{base}/api/orders/o2/bump?station=fry")))
                .header("sec-fetch-site", "cross-site")
        )
        .await
        .0,
        403
    );
    assert_eq!(
        status_and_json(
            as_fry(fry.post(format!("{base}/api/scans")))
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body("code=ORDER%3Ao2&station=fry")
        )
        .await,
        (
            415,
            json!({"error": "send application/json, not \"application/x-www-form-urlencoded\""})
        )
    );
    assert_eq!(
        status_and_json(
            as_fry(fry.post(format!("{base}/api/orders/o2/bump?station=fry")))
                .header(header::ORIGIN, format!("http://{host}"))
        )
        .await
        .0,
        200,
        "the box's own page"
    );

    // DNS rebinding: a name the box does not answer to.
    assert_eq!(
        status_and_json(
            as_fry(fry.get(format!("{base}/api/orders"))).header(header::HOST, "attacker.example")
        )
        .await,
        (
            421,
            json!({"error": "this box does not answer to the host name \"attacker.example\" (allowed_hosts in docs/agent.md)"})
        )
    );
    let port = base.rsplit(':').next().expect("port");
    assert_eq!(
        status_and_json(
            as_fry(fry.get(format!("{base}/api/orders")))
                .header(header::HOST, format!("localhost:{port}"))
        )
        .await
        .0,
        200
    );

    // The bumps record which device made them, on their way to head office.
    let mut stream = SseReader::open(&format!("{base}/orders/events?last_event_id=0"), None).await;
    let mut bumps = Vec::new();
    while let Some((_, kind, data)) = stream.next_within(Duration::from_millis(500)).await {
        if kind == "order.bumped" {
            bumps.push(data);
        }
    }
    assert_eq!(
        bumps,
        [
            json!({"order_id": "o1", "stations": ["fry"], "device": "Fry tablet"}),
            json!({"order_id": "o2", "stations": ["fry"], "device": "Fry tablet"}),
        ]
    );

    // Revoked: the token stops at once, the open stream ends, the page asks to pair again.
    let mut fry_stream = as_fry(fry.get(format!("{base}/orders/events")))
        .send()
        .await
        .expect("stream");
    assert_eq!(fry_stream.status(), StatusCode::OK);
    let (status, revoked) =
        status_and_json(client().post(format!("{base}/api/devices/{fry_id}/revoke"))).await;
    assert_eq!((status, &revoked["name"]), (200, &json!("Fry tablet")));
    assert!(revoked["revoked_at_ms"].is_i64(), "{revoked}");
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = fry_stream.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the revoked tablet's stream ends");
    assert_eq!(
        status_and_json(as_fry(fry.get(format!("{base}/api/orders")))).await,
        (
            401,
            json!({"error": "the pairing of \"Fry tablet\" was revoked by a manager: pair it again at /pair"})
        )
    );
    assert_eq!(
        status_and_json(as_fry(fry.get(format!("{base}/api/me")))).await,
        (
            200,
            json!({"paired": false, "revoked": true, "provisioned": true, "provision_error": null})
        )
    );
    let page = as_fry(fry.get(format!("{base}/")))
        .send()
        .await
        .expect("answers");
    assert!(
        page.text()
            .await
            .expect("text")
            .contains("<h1>Pair this device</h1>")
    );

    // The manager's list shows all three, the revoked one marked.
    let listed = get_json(&format!("{base}/api/devices")).await;
    let mut names: Vec<(String, bool)> = listed["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap_or_default().to_owned(),
                d["revoked_at_ms"].is_i64(),
            )
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            ("Fry tablet".to_owned(), true),
            ("Wall screen".to_owned(), false),
            ("test-manager".to_owned(), false)
        ]
    );
    kitchen.stop().await;
}

#[tokio::test]
async fn the_provisioning_code_pairs_one_manager_once() {
    let kitchen = TestAgent::start_with(Some(REFERENCE), &["kitchen-bk-01"], |config| {
        config.pairing_code = Some("BOOT-STRAP-2026".into());
    })
    .await;
    let base = kitchen.base.clone();
    let stranger = kitchen_testkit::http::bare();
    let (status, first) = status_and_json(
        stranger
            .post(format!("{base}/api/pair"))
            .json(&json!({"code": "boot strap 2026", "name": "Manager phone"})),
    )
    .await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(
        (&first["device"]["role"], &first["device"]["paired_by"]),
        (&json!("manager"), &json!("bootstrap"))
    );
    let manager = device(first["token"].as_str().expect("token"));
    assert_eq!(
        status_and_json(manager.get(format!("{base}/api/devices")))
            .await
            .0,
        200
    );
    assert_eq!(
        status_and_json(
            stranger
                .post(format!("{base}/api/pair"))
                .json(&json!({"code": "BOOT-STRAP-2026", "name": "Second phone"}))
        )
        .await,
        (403, json!({"error": "wrong or expired pairing code"}))
    );
    // Ten wrong codes from one address (the used one was the first), then it waits.
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(
            status_and_json(
                stranger
                    .post(format!("{base}/api/pair"))
                    .json(&json!({"code": "WRONG-CODE", "name": "x"})),
            )
            .await
            .0,
        );
    }
    assert_eq!(statuses, [403, 403, 403, 403, 403, 403, 403, 403, 403, 429]);
    kitchen.stop().await;
}

#[tokio::test]
async fn hostile_values_get_4xx_and_the_agent_keeps_running() {
    let kitchen = TestAgent::start(Some(REFERENCE)).await;
    let base = kitchen.base.clone();
    kitchen.publish(&burger_meal("o1", 1)).await;
    wait_open(&base, "o1").await;
    let http = client();
    let long = "x".repeat(10_000);
    let gets: Vec<(String, u16)> = vec![
        (
            "/labels/prep?item=fries&prepared=%2B262142-12-31".into(),
            400,
        ),
        ("/labels/prep?item=fries&prepared=-262143-01-01".into(), 400),
        ("/labels/prep?item=fries&use_by=%2B262142-12-31".into(), 400),
        ("/labels/prep?item=fries&copies=4294967296".into(), 400),
        ("/labels/prep?item=fries&quantity=99999999999".into(), 400),
        ("/labels/prep?item=fries&copies=0".into(), 400),
        ("/labels/prep?item=fries&batch=%00%01".into(), 400),
        ("/labels/prep?item=%00".into(), 404),
        (format!("/labels/prep?item={long}"), 414),
        (format!("/api/batch-sessions/{}", "9".repeat(200)), 414),
        ("/api/orders?station=%00".into(), 404),
        (
            "/orders/events?last_event_id=99999999999999999999".into(),
            400,
        ),
        ("/api/orders?state=closed".into(), 400),
        ("/prep/report.pdf?day=%2B262142-12-31".into(), 400),
        ("/prep/report.pdf?day=-262143-01-01".into(), 400),
        ("/prep/report.pdf?day=1999-12-31".into(), 400),
        ("/prep/transfers.pdf?day=%00".into(), 400),
        ("/prep/transfers.pdf?day=2000-01-01".into(), 200),
        ("/api/transfers?days=99999999999".into(), 400),
        ("/api/transfers?days=-1".into(), 400),
    ];
    for (path, expected) in &gets {
        let status = http
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("answers")
            .status();
        assert_eq!(status.as_u16(), *expected, "GET {path}");
    }
    let posts: Vec<(String, Value, u16)> = vec![
        (
            "/api/batches/fry/fries/start".into(),
            json!({"quantity": 4_294_967_295_u64}),
            400,
        ),
        (
            "/api/batches/fry/fries/start".into(),
            json!({"quantity": -1}),
            400,
        ),
        (
            "/api/scans".into(),
            json!({"code": "9".repeat(257), "station": "fry"}),
            400,
        ),
        (
            "/api/scans".into(),
            json!({"code": "ORDER:o1", "station": "fry", "device": "d".repeat(65)}),
            400,
        ),
        (
            "/api/scans".into(),
            json!({"code": "\u{0}\u{1}ORDER:o1", "station": "fry"}),
            422,
        ),
        (
            "/api/scans".into(),
            json!({"code": "x".repeat(2 * 1024 * 1024), "station": "fry"}),
            413,
        ),
        (
            format!("/api/orders/{}/bump", "o".repeat(129)),
            Value::Null,
            414,
        ),
        (
            "/api/devices/pairing-codes".into(),
            json!({"role": "chef"}),
            400,
        ),
        (
            "/api/devices/pairing-codes".into(),
            json!({"role": "cook"}),
            400,
        ),
        (
            "/api/devices/pairing-codes".into(),
            json!({"role": "cook", "station": "nowhere"}),
            400,
        ),
    ];
    for (path, body, expected) in &posts {
        let mut request = http.post(format!("{base}{path}"));
        if !body.is_null() {
            request = request.json(body);
        }
        let status = request.send().await.expect("answers").status();
        assert_eq!(status.as_u16(), *expected, "POST {path}");
        assert_eq!(
            http.get(format!("{base}/healthz"))
                .send()
                .await
                .expect("alive")
                .status(),
            200
        );
    }
    // Nothing that was refused reached the record: one scan (the 422) was recorded, rejected.
    let mut stream = SseReader::open(&format!("{base}/orders/events?last_event_id=0"), None).await;
    let mut scans = Vec::new();
    while let Some((_, kind, data)) = stream.next_within(Duration::from_millis(500)).await {
        if kind.starts_with("scan.") {
            scans.push((kind, data["code"].clone()));
        }
    }
    assert_eq!(
        scans,
        [("scan.rejected".to_owned(), json!("\u{0}\u{1}ORDER:o1"))]
    );
    kitchen.stop().await;
}

#[tokio::test]
async fn writes_are_rate_limited_per_device() {
    let kitchen = TestAgent::start_with(Some(REFERENCE), &["kitchen-bk-01"], |config| {
        config.write_rate = 2;
    })
    .await;
    let base = kitchen.base.clone();
    let (_, other_token) =
        edge_agent::pairing::pair(&kitchen.data_dir, "expo", "Expo", None).expect("paired");
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let response = client()
            .post(format!("{base}/api/orders/none/bump"))
            .send()
            .await
            .expect("answers");
        statuses.push(response.status().as_u16());
    }
    // A burst of four times the rate, then 429 (the order does not exist: 404 when let in).
    assert_eq!(statuses, [404, 404, 404, 404, 404, 404, 404, 404, 429, 429]);
    let limited = client()
        .post(format!("{base}/api/orders/none/bump"))
        .send()
        .await
        .expect("answers");
    assert_eq!(limited.headers()[header::RETRY_AFTER], "1");
    // Another device is not held back by the first one's flood.
    let other = device(&other_token)
        .post(format!("{base}/api/orders/none/bump"))
        .send()
        .await
        .expect("answers");
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    kitchen.stop().await;
}

#[tokio::test]
async fn idle_connections_do_not_stop_a_paired_tablet_from_getting_its_stream() {
    let kitchen = TestAgent::start(Some(REFERENCE)).await;
    let base = kitchen.base.clone();
    let addr = base.trim_start_matches("http://").to_owned();
    let mut idle = Vec::with_capacity(1500);
    for _ in 0..1500 {
        idle.push(
            tokio::net::TcpStream::connect(&addr)
                .await
                .expect("connects"),
        );
    }
    let started = Instant::now();
    let mut stream = SseReader::open(&format!("{base}/orders/events"), None).await;
    let (_, kind, _) = stream.next().await;
    let took = started.elapsed();
    assert_eq!(kind, "snapshot");
    assert!(took < Duration::from_secs(2), "the tablet waited {took:?}");
    let open = metric(&base, "edge_agent_http_connections_open").await;
    assert!(open >= 1500, "{open} connections open");
    drop(idle);
    kitchen.stop().await;
}

/// A new tablet as a cook would pair it: the station display sends it to the pairing page; a
/// manager's code and a name pair it; it then shows who it is paired as, never sees its token
/// (HttpOnly); revoked, it is back on the pairing page saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tablet_pairs_with_a_managers_code_and_shows_it_was_revoked() {
    let kitchen = TestAgent::start(Some(REFERENCE)).await;
    let base = kitchen.base.clone();
    let wait = Duration::from_secs(20);
    let mut tablet = browser::Browser::launch(1280, 800).await;
    tablet
        .navigate_unpaired(&format!("{base}/?station=fry"))
        .await;
    tablet
        .wait_for_value(
            "the pairing page",
            wait,
            "document.querySelector('h1').textContent",
            &json!("Pair this device"),
        )
        .await;
    let (status, code) = status_and_json(
        client()
            .post(format!("{base}/api/devices/pairing-codes"))
            .json(&json!({"role": "cook", "station": "fry"})),
    )
    .await;
    assert_eq!(status, 201, "{code}");
    tablet.tap("#code").await;
    tablet.type_text(code["code"].as_str().expect("code")).await;
    tablet.tap("#name").await;
    tablet.type_text("Fry tablet").await;
    tablet.tap("#submit").await;
    tablet
        .wait_for_value(
            "the station display, paired",
            wait,
            "(document.querySelector('#paired-as') || {}).textContent || null",
            &json!("Fry tablet · cook at Fryer"),
        )
        .await;
    tablet
        .wait_for(
            "the live stream",
            wait,
            "document.querySelector('#link').className.includes('ok')",
        )
        .await;
    assert_eq!(tablet.eval("document.cookie").await, json!(""), "HttpOnly");
    assert_eq!(
        tablet
            .eval("document.querySelector('#devices-link').hidden")
            .await,
        json!(true),
        "a cook has no device page"
    );

    let devices = get_json(&format!("{base}/api/devices")).await;
    let id = devices["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .find(|d| d["name"] == "Fry tablet")
        .and_then(|d| d["id"].as_str())
        .expect("the tablet is listed")
        .to_owned();
    let (status, _) =
        status_and_json(client().post(format!("{base}/api/devices/{id}/revoke"))).await;
    assert_eq!(status, 200);
    tablet
        .wait_for(
            "the pairing page saying the tablet was revoked",
            wait,
            "!!document.querySelector('#revoked') && !document.querySelector('#revoked').hidden",
        )
        .await;
    tablet.close().await;
    kitchen.stop().await;
}

#[tokio::test]
async fn live_streams_are_capped_per_device_and_a_slow_client_is_cut_off() {
    let kitchen = TestAgent::start_with(Some(REFERENCE), &["kitchen-bk-01"], |config| {
        config.max_streams_per_device = 2;
        config.header_timeout_secs = 1;
    })
    .await;
    let base = kitchen.base.clone();
    let mut first = SseReader::open(&format!("{base}/orders/events"), None).await;
    let mut second = SseReader::open(&format!("{base}/orders/events"), None).await;
    assert_eq!(first.next().await.1, "snapshot");
    assert_eq!(second.next().await.1, "snapshot");
    assert_eq!(
        status_and_json(client().get(format!("{base}/orders/events"))).await,
        (
            429,
            json!({"error": "this device has 2 live streams open already"})
        )
    );
    let (_, expo_token) =
        edge_agent::pairing::pair(&kitchen.data_dir, "expo", "Expo", None).expect("paired");
    let expo = device(&expo_token)
        .get(format!("{base}/orders/events"))
        .send()
        .await
        .expect("answers");
    assert_eq!(
        expo.status(),
        StatusCode::OK,
        "another device has its own streams"
    );
    drop(first);
    // The place comes back when a stream ends.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let response = client()
            .get(format!("{base}/orders/events"))
            .send()
            .await
            .expect("answers");
        if response.status() == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stream's place never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Slowloris: a request head sent a byte at a time is cut off at the header timeout.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connects");
    let started = Instant::now();
    let head = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";
    let mut closed_after = None;
    for byte in head.iter().chain(std::iter::repeat(&b'a')).take(200) {
        if slow.write_all(&[*byte]).await.is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        let mut buffer = [0u8; 256];
        match tokio::time::timeout(Duration::from_millis(100), slow.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed_after = Some(started.elapsed());
                break;
            }
            _ => {}
        }
    }
    let closed_after = closed_after.expect("the server closed the slow connection");
    assert!(
        closed_after >= Duration::from_millis(900) && closed_after < Duration::from_millis(2500),
        "cut off after {closed_after:?}"
    );
    assert_eq!(
        kitchen_testkit::http::get(format!("{base}/healthz"))
            .await
            .expect("answers")
            .status(),
        200
    );
    let cut = metric(&base, "edge_agent_http_header_timeouts_total").await;
    assert!(cut >= 1, "the slow client is counted: {cut}");
    kitchen.stop().await;
}

/// The manager's device page with a fresh pairing code, as a picture for the docs:
/// `SCREENSHOT=$PWD/docs/images/devices.png cargo test -p edge-agent --test doors -- --ignored
/// screenshot` (the test runs in `edge-agent/`: give an absolute path).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "makes docs/images/devices.png"]
async fn screenshot_of_the_device_page() {
    let kitchen = TestAgent::start(Some(REFERENCE)).await;
    let base = kitchen.base.clone();
    edge_agent::pairing::pair(&kitchen.data_dir, "cook", "Grill tablet", Some("grill"))
        .expect("paired");
    let (_, _) = edge_agent::pairing::pair(&kitchen.data_dir, "display", "Pass screen", None)
        .expect("paired");
    let (fry, _) = edge_agent::pairing::pair(&kitchen.data_dir, "cook", "Fry tablet", Some("fry"))
        .expect("paired");
    edge_agent::pairing::revoke(&kitchen.data_dir, &fry.id).expect("revoked");
    let mut tablet = browser::Browser::launch(1000, 700).await;
    tablet.navigate(&format!("{base}/devices")).await;
    let wait = Duration::from_secs(10);
    tablet
        .wait_for(
            "the device list",
            wait,
            "document.querySelectorAll('#devices tr').length === 4",
        )
        .await;
    tablet.tap("#make").await;
    tablet
        .wait_for(
            "the code",
            wait,
            "document.querySelector('#code').textContent.length === 9",
        )
        .await;
    let path = std::env::var("SCREENSHOT").unwrap_or_else(|_| "target/devices.png".into());
    tablet.screenshot(std::path::Path::new(&path)).await;
    tablet.close().await;
    kitchen.stop().await;
}
