//! The running agent: provisioned for a kitchen, it consumes orders from the real RabbitMQ and
//! serves their batch items; unprovisioned, it still serves the LAN.

mod common;

use std::time::{Duration, Instant};

use common::TestAgent;
use edge_agent::{App, Config};
use kitchen_proto::{OrderEvent, OrderStatus};
use kitchen_testkit::{
    amqp::amqp_url,
    events::{line, new_order, sku_line},
    http::{SseReader, get_json, post_json},
    names::unique,
    proxy::{Proxy, socket_addr_of, through},
};

const REFERENCE: &str = include_str!("fixtures/sample_kitchen.toml");

fn burger_meal(event_id: &str, sequence: u64, order_id: &str, burgers: u32) -> OrderEvent {
    new_order("kitchen-bk-01", order_id)
        .event_id(event_id)
        .sequence(sequence)
        .item(sku_line(
            "sku-smash-double",
            "Double Smash Burger",
            burgers,
            vec![line("Make it a Meal", 1, vec![line("Fries", 1, vec![])])],
        ))
        .build()
}

#[tokio::test]
async fn a_provisioned_agent_serves_the_batch_items_of_what_it_consumed() {
    let kitchen = TestAgent::start(Some(REFERENCE)).await;
    let base = kitchen.base.clone();
    let client = kitchen_testkit::http::client();
    let ready: serde_json::Value = get_json(&format!("{base}/readyz")).await;
    assert_eq!(
        ready,
        serde_json::json!({"ready": true, "store": "up", "feed": "connected",
            "reference": "loaded", "sequence_gaps": [], "scanners": [],
            "sync": {"state": "not configured", "backlog": 0, "oldest_unsynced_ms": null,
                "alarm": false, "last_error": null, "pushed": 0, "reconciled": 0,
                "reference_version": 0, "recovery": "none", "recovered_orders": 0}})
    );
    for order_event in [
        burger_meal("e1", 1, "o1", 2),
        burger_meal("e2", 2, "o2", 1),
        burger_meal("e1", 1, "o1", 2), // a redelivery
    ] {
        kitchen.publish(&order_event).await;
    }

    let expected = serde_json::json!([
        {"station_id": "fry", "station_name": "Fryer", "item_id": "fries", "item_name": "Fries",
         "quantity": 3, "prep_seconds": 180, "due_at": "2025-03-14T18:37:00Z",
         "due_at_ms": 1_741_977_420_000_i64, "order_ids": ["o1", "o2"], "order_count": 2, "sessions": []},
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let body: serde_json::Value = get_json(&format!("{base}/api/batches?station=fry")).await;
        if body["items"] == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "batch items never became {expected}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all: serde_json::Value = get_json(&format!("{base}/api/batches")).await;
    let grill: Vec<(String, u64)> = all["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["station_id"] == "grill")
        .map(|i| {
            (
                i["item_id"].as_str().unwrap_or("").to_owned(),
                i["quantity"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(grill, [("double-smash".to_owned(), 3)]);

    // A cook bumps o1 at the fryer (twice: a double tap changes nothing more).
    for _ in 0..2 {
        let bumped = client
            .post(format!("{base}/api/orders/o1/bump?station=fry"))
            .send()
            .await
            .expect("answers");
        assert_eq!(bumped.status(), 200);
        let body: serde_json::Value = bumped.json().await.expect("json");
        assert_eq!(
            body,
            serde_json::json!({"order_id": "o1", "bumped_at": ["fry"]})
        );
    }
    let quantities = |body: serde_json::Value| -> Vec<(String, u64)> {
        body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| {
                (
                    i["item_id"].as_str().unwrap_or("").to_owned(),
                    i["quantity"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    };
    let after: serde_json::Value = get_json(&format!("{base}/api/batches")).await;
    assert_eq!(
        quantities(after),
        [("fries".to_owned(), 1), ("double-smash".to_owned(), 3)]
    );
    let orders: serde_json::Value = get_json(&format!("{base}/api/orders?state=open")).await;
    let tickets: Vec<(String, serde_json::Value, serde_json::Value)> = orders["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .map(|o| {
            (
                o["order_id"].as_str().unwrap_or("").to_owned(),
                o["stations"].clone(),
                o["bumped_at"].clone(),
            )
        })
        .collect();
    assert_eq!(
        tickets,
        [
            (
                "o1".to_owned(),
                serde_json::json!(["fry", "grill"]),
                serde_json::json!(["fry"])
            ),
            (
                "o2".to_owned(),
                serde_json::json!(["fry", "grill"]),
                serde_json::json!([])
            ),
        ]
    );
    assert_eq!(
        orders["orders"][0]["lines"],
        serde_json::json!([{"line_no": 0, "name": "Double Smash Burger", "quantity": 2, "note": "",
            "item_id": "double-smash", "station_id": "grill", "modifiers": [
            {"line_no": 1, "name": "Make it a Meal", "quantity": 1, "note": "", "item_id": null,
             "station_id": null, "modifiers": [
                {"line_no": 2, "name": "Fries", "quantity": 1, "note": "", "item_id": "fries",
                 "station_id": "fry", "modifiers": []}]}]}])
    );
    // Recall undoes the bump.
    let recalled: serde_json::Value =
        post_json(&format!("{base}/api/orders/o1/recall?station=fry")).await;
    assert_eq!(
        recalled,
        serde_json::json!({"order_id": "o1", "recalled_at": ["fry"]})
    );
    let after_recall: serde_json::Value =
        get_json(&format!("{base}/api/batches?station=fry")).await;
    assert_eq!(quantities(after_recall), [("fries".to_owned(), 3)]);

    // A cook drops 2 fries and completes the batch: they go to the most urgent order (both
    // are due together, so the first by id), o1, whose fries are then done.
    let started = client
        .post(format!("{base}/api/batches/fry/fries/start"))
        .json(&serde_json::json!({"quantity": 2}))
        .send()
        .await
        .expect("answers");
    assert_eq!(started.status(), 201);
    let session: serde_json::Value = started.json().await.expect("json");
    let session_id = session["session_id"].as_str().expect("id").to_owned();
    assert_eq!(
        (
            &session["quantity"],
            &session["device"],
            &session["completed_at_ms"]
        ),
        (
            &serde_json::json!(2),
            &serde_json::json!(kitchen_testkit::http::TEST_DEVICE),
            &serde_json::Value::Null
        )
    );
    let running: serde_json::Value = get_json(&format!("{base}/api/batches?station=fry")).await;
    assert_eq!(
        running["items"][0]["sessions"][0]["session_id"],
        session_id.as_str()
    );
    for _ in 0..2 {
        // Completing twice (a retry from a flaky tablet) changes nothing more.
        let completed: serde_json::Value =
            post_json(&format!("{base}/api/batch-sessions/{session_id}/complete")).await;
        assert_eq!(
            completed["allocations"],
            serde_json::json!([{"order_id": "o1", "units": 2}])
        );
    }
    let after_batch: serde_json::Value = get_json(&format!("{base}/api/batches?station=fry")).await;
    assert_eq!(quantities(after_batch.clone()), [("fries".to_owned(), 1)]);
    assert_eq!(
        after_batch["items"][0]["order_ids"],
        serde_json::json!(["o2"])
    );
    assert_eq!(after_batch["items"][0]["sessions"], serde_json::json!([]));
    // With the grill bumped too, o1 is ready.
    post_json(&format!("{base}/api/orders/o1/bump?station=grill")).await;
    let orders: serde_json::Value = get_json(&format!("{base}/api/orders?state=open")).await;
    let ready: Vec<(String, bool)> = orders["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .map(|o| {
            (
                o["order_id"].as_str().unwrap_or("").to_owned(),
                o["ready"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    assert_eq!(ready, [("o1".to_owned(), true), ("o2".to_owned(), false)]);
    let refused = client
        .post(format!("{base}/api/batches/fry/double-smash/start"))
        .send()
        .await
        .expect("answers");
    assert_eq!(refused.status(), 404, "the burger is not a fryer item");
    let too_many = client
        .post(format!("{base}/api/batches/fry/fries/start"))
        .json(&serde_json::json!({"quantity": 0}))
        .send()
        .await
        .expect("answers");
    assert_eq!(too_many.status(), 422);
    let page = client
        .get(format!("{base}/"))
        .send()
        .await
        .expect("answers");
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert!(
        page.text()
            .await
            .expect("body")
            .contains("<script src=\"/static/display.js\"></script>")
    );
    let script = client
        .get(format!("{base}/static/display.js"))
        .send()
        .await
        .expect("answers");
    assert_eq!(
        script.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert!(
        script
            .text()
            .await
            .expect("body")
            .contains("new EventSource(\"/orders/events\")")
    );
    let stations: serde_json::Value = get_json(&format!("{base}/api/stations")).await;
    let names: Vec<(String, String)> = stations["stations"]
        .as_array()
        .expect("stations")
        .iter()
        .map(|s| (s["id"].to_string(), s["name"].to_string()))
        .collect();
    assert_eq!(
        names,
        [
            ("\"grill\"".to_owned(), "\"Grill\"".to_owned()),
            ("\"fry\"".to_owned(), "\"Fryer\"".to_owned()),
            ("\"unassigned\"".to_owned(), "\"Unassigned\"".to_owned())
        ]
    );
    // No floor settings in this reference: every display has the defaults (docs/floor.md).
    assert_eq!(stations["expo"]["amber_minutes"], 5);
    assert_eq!(stations["expo"]["red_minutes"], 0);
    assert_eq!(
        stations["expo"]["keys"]["bump"],
        serde_json::json!(["Enter", "5"])
    );
    assert_eq!(stations["stations"][1]["display"], stations["expo"]);
    assert_eq!(
        stations["scan"],
        serde_json::json!({"gap_ms": 30, "min_chars": 3})
    );
    let unknown = client
        .post(format!("{base}/api/orders/nope/bump"))
        .send()
        .await
        .expect("answers");
    assert_eq!(unknown.status(), 404);
    let bad_station = client
        .post(format!("{base}/api/orders/o1/bump?station=pastry"))
        .send()
        .await
        .expect("answers");
    assert_eq!(bad_station.status(), 400);

    kitchen.stop().await;
}

#[tokio::test]
async fn an_unprovisioned_agent_still_serves_the_lan() {
    // Nor does a broken reference file stop it: it says what is wrong instead.
    let data_dir = std::env::temp_dir().join(unique("test-unprovisioned"));
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let reference_file = data_dir.join("reference.toml");
    std::fs::write(
        &reference_file,
        "[[items]]\nid = \"fries\"\nname = \"Fries\"\nstation = \"nowhere\"\nprep_seconds = 60\nmatch = []\n",
    )
    .expect("written");
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: data_dir.clone(),
        reference_file: Some(reference_file),
        ..Config::default()
    };
    let app = App::build(config).await.expect("agent builds");
    common::pair_test_manager(&data_dir);
    let base = format!("http://127.0.0.1:{}", app.port());
    let token = app.shutdown_token();
    let agent = tokio::spawn(app.run_until_stopped());
    let health = kitchen_testkit::http::get(format!("{base}/healthz"))
        .await
        .expect("answers");
    assert_eq!(health.text().await.expect("body"), "ok");
    let ready = kitchen_testkit::http::get(format!("{base}/readyz"))
        .await
        .expect("answers");
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(body["feed"], "not provisioned");
    let status = get_json(&format!("{base}/api/status")).await;
    assert_eq!(status["provisioned"], false);
    let reference = status["reference"].as_str().unwrap_or_default();
    assert!(
        reference.starts_with("invalid: ") && reference.contains("nowhere"),
        "{status}"
    );
    let batches: serde_json::Value = get_json(&format!("{base}/api/batches")).await;
    assert_eq!(batches, serde_json::json!({"items": [], "upcoming": []}));
    token.cancel();
    agent.await.expect("joins").expect("clean stop");
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[tokio::test]
async fn a_tablet_that_reconnects_with_last_event_id_misses_nothing_and_sees_nothing_twice() {
    let kitchen = TestAgent::start(None).await;
    let base = kitchen.base.clone();
    let publish = |order_event: OrderEvent| {
        let kitchen = &kitchen;
        async move { kitchen.publish(&order_event).await }
    };
    let url = format!("{base}/orders/events");

    // (id, event, the order or station it is about)
    let key = |(id, event, data): (String, String, serde_json::Value)| {
        let about = data["order_id"]
            .as_str()
            .or(data["station_id"].as_str())
            .unwrap_or("")
            .to_owned();
        (id, event, about)
    };
    let expect = |rows: &[(&str, &str, &str)]| -> Vec<(String, String, String)> {
        rows.iter()
            .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
            .collect()
    };

    let mut tablet = SseReader::open(&url, None).await;
    let (id, event, data) = tablet.next().await;
    assert_eq!((id.as_str(), event.as_str()), ("0", "snapshot"));
    assert_eq!(
        data,
        serde_json::json!({"batches": [], "orders": [], "upcoming": []})
    );

    // One at a time: deliveries the agent has in hand together share a transaction (and so
    // one batch.updated), which would make the sequence depend on timing.
    publish(burger_meal("e1", 1, "o1", 1)).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(key(tablet.next().await));
    }
    publish(burger_meal("e2", 2, "o2", 1)).await;
    publish(burger_meal("e1", 1, "o1", 1)).await; // redelivered: no event
    for _ in 0..3 {
        seen.push(key(tablet.next().await));
    }
    // Without reference data everything is counted at `unassigned`; a store not listed
    // accepts automatically (docs/otter.md).
    assert_eq!(
        seen,
        expect(&[
            ("1", "order.created", "o1"),
            ("2", "order.accepted", "o1"),
            ("3", "batch.updated", "unassigned"),
            ("4", "order.created", "o2"),
            ("5", "order.accepted", "o2"),
            ("6", "batch.updated", "unassigned"),
        ])
    );
    drop(tablet); // the tablet drops off the Wi-Fi

    publish(burger_meal("e3", 3, "o3", 1)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let body: serde_json::Value = get_json(&format!("{base}/api/batches")).await;
        if body["items"][0]["order_ids"] == serde_json::json!(["o1", "o2", "o3"]) {
            break;
        }
        assert!(Instant::now() < deadline, "o3 not applied: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut cancel = burger_meal("e4", 4, "o1", 1);
    cancel.has_snapshot = false;
    cancel.items.clear();
    cancel.status = OrderStatus::Canceled as i32;
    publish(cancel).await;
    // Wait until the agent has applied both (visible in the batch counts: o2 and o3 remain).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let body: serde_json::Value = get_json(&format!("{base}/api/batches")).await;
        if body["items"][0]["order_ids"] == serde_json::json!(["o2", "o3"]) {
            break;
        }
        assert!(Instant::now() < deadline, "events not applied: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut tablet = SseReader::open(&url, Some("6")).await;
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(key(tablet.next().await));
    }
    assert_eq!(
        seen,
        expect(&[
            ("7", "order.created", "o3"),
            ("8", "order.accepted", "o3"),
            ("9", "batch.updated", "unassigned"),
            ("10", "order.cancelled", "o1"),
            ("11", "batch.updated", "unassigned"),
        ])
    );
    // Live again after the replay.
    publish(burger_meal("e5", 5, "o5", 1)).await;
    assert_eq!(
        key(tablet.next().await),
        ("12".to_owned(), "order.created".to_owned(), "o5".to_owned())
    );
    assert_eq!(
        key(tablet.next().await),
        (
            "13".to_owned(),
            "order.accepted".to_owned(),
            "o5".to_owned()
        )
    );
    // An id this box never gave out (its store was replaced) gets a snapshot first.
    let mut stranger = SseReader::open(&url, Some("999")).await;
    let (id, event, data) = stranger.next().await;
    assert_eq!((id.as_str(), event.as_str()), ("14", "snapshot"));
    assert_eq!(
        data["batches"][0]["order_ids"],
        serde_json::json!(["o2", "o3", "o5"])
    );

    kitchen.stop().await;
}

/// Polls `url` until `done` holds for its JSON body, within 30 s.
async fn wait_json(what: &str, url: &str, done: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = match kitchen_testkit::http::get(url).await {
            Ok(response) => response.json().await.unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        };
        if done(&body) {
            return;
        }
        assert!(Instant::now() < deadline, "never {what}: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_kitchen_keeps_working_through_a_broker_outage_and_catches_up() {
    // The agent reaches RabbitMQ through a proxy the test cuts: the internet drops.
    let proxy = Proxy::start(socket_addr_of(&amqp_url())).await;
    let proxied = through(&amqp_url(), proxy.addr);
    let kitchen = TestAgent::start_with(Some(REFERENCE), &["kitchen-bk-01"], |config| {
        config.amqp_url = proxied;
        config.amqp_timeout_ms = 2_000;
    })
    .await;
    let base = kitchen.base.clone();
    kitchen.publish(&burger_meal("e0", 1, "o0", 1)).await;
    let orders_url = format!("{base}/api/orders?state=open");
    wait_json("o0 applied", &orders_url, |b| {
        b["orders"][0]["order_id"] == "o0"
    })
    .await;

    proxy.cut();
    wait_json("the feed seen down", &format!("{base}/readyz"), |b| {
        b["feed"] == "disconnected" && b["ready"] == false
    })
    .await;
    // Orders keep coming in to the broker meanwhile.
    for n in 1..=20 {
        kitchen
            .publish(&burger_meal(&format!("e{n}"), n + 1, &format!("o{n}"), 1))
            .await;
    }
    // The line does not notice: the LAN answers from SQLite, bumps work.
    let bumped = post_json(&format!("{base}/api/orders/o0/bump?station=fry")).await;
    assert_eq!(bumped["bumped_at"], serde_json::json!(["fry"]));
    let fry = get_json(&format!("{base}/api/batches?station=fry")).await;
    assert_eq!(fry["items"], serde_json::json!([]));

    proxy.restore();
    wait_json("all 21 orders after the outage", &orders_url, |b| {
        b["orders"].as_array().map_or(0, Vec::len) == 21
    })
    .await;
    wait_json("the feed back", &format!("{base}/readyz"), |b| {
        b["ready"] == true
    })
    .await;
    let fry = get_json(&format!("{base}/api/batches?station=fry")).await;
    assert_eq!(fry["items"][0]["quantity"], 20, "{fry}");
    kitchen.stop().await;
}

#[tokio::test]
async fn a_refused_reference_file_falls_back_to_the_cached_copy() {
    let data_dir = std::env::temp_dir().join(unique("test-reference"));
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let file = data_dir.join("reference.toml");
    // Runs an (unprovisioned) agent on `data_dir` and returns its status and stations.
    let run = |reference_file: Option<std::path::PathBuf>| {
        let data_dir = data_dir.clone();
        async move {
            let config = Config {
                listen: "127.0.0.1:0".parse().expect("addr"),
                data_dir: data_dir.clone(),
                reference_file,
                ..Config::default()
            };
            let app = App::build(config).await.expect("agent builds");
            common::pair_test_manager(&data_dir);
            let base = format!("http://127.0.0.1:{}", app.port());
            let token = app.shutdown_token();
            let agent = tokio::spawn(app.run_until_stopped());
            let status = get_json(&format!("{base}/api/status")).await;
            let stations = get_json(&format!("{base}/api/stations")).await;
            token.cancel();
            agent.await.expect("joins").expect("clean stop");
            (
                status["reference"].as_str().unwrap_or_default().to_owned(),
                stations["stations"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| s["id"].as_str().unwrap_or_default().to_owned())
                    .collect::<Vec<_>>(),
            )
        }
    };
    std::fs::write(&file, REFERENCE).expect("written");
    let (reference, stations) = run(Some(file.clone())).await;
    assert_eq!(reference, "loaded");
    assert_eq!(stations, ["grill", "fry", "unassigned"]);

    // Someone breaks the file: the kitchen keeps the menu it had, and says so.
    std::fs::write(&file, "[[stations]]\nid = \"grill\"\n").expect("written");
    let (reference, stations) = run(Some(file.clone())).await;
    assert!(
        reference.starts_with("refused: ") && reference.contains("using the copy cached"),
        "{reference}"
    );
    assert_eq!(stations, ["grill", "fry", "unassigned"]);

    // No file at all: the cached copy.
    let (reference, stations) = run(None).await;
    assert!(reference.starts_with("cached "), "{reference}");
    assert_eq!(stations, ["grill", "fry", "unassigned"]);
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[tokio::test]
async fn a_station_scanner_bumps_tickets_and_every_scan_is_recorded() {
    let kitchen = TestAgent::start(Some(REFERENCE)).await;
    let base = kitchen.base.clone();
    let with_friendly = |event: OrderEvent, friendly: &str| OrderEvent {
        friendly_id: friendly.into(),
        ..event
    };
    kitchen
        .publish(&with_friendly(burger_meal("e1", 1, "o1", 1), "KQ1"))
        .await;
    kitchen
        .publish(&with_friendly(burger_meal("e2", 2, "o2", 2), "KQ2"))
        .await;
    kitchen
        .publish(&with_friendly(burger_meal("e3", 3, "o3", 1), "KQ2"))
        .await;
    let orders_url = format!("{base}/api/orders?state=open");
    let deadline = Instant::now() + Duration::from_secs(20);
    while get_json(&orders_url).await["orders"]
        .as_array()
        .map_or(0, Vec::len)
        < 3
    {
        assert!(Instant::now() < deadline, "orders never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let client = kitchen_testkit::http::client();
    let scan = |code: &str, station: Option<&str>| {
        let request = client
            .post(format!("{base}/api/scans"))
            .json(&serde_json::json!({"device": "fry-scanner", "code": code, "station": station}));
        async move {
            let response = request.send().await.expect("answers");
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.expect("json");
            (status, body)
        }
    };
    // A ticket barcode (with the scanner's AIM prefix and CR) bumps o1 at the fryer.
    let (status, body) = scan("]C0ORDER:o1\r", Some("fry")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["action"], &body["order_id"], &body["station_id"]),
        (
            &serde_json::json!("bump"),
            &serde_json::json!("o1"),
            &serde_json::json!("fry")
        )
    );
    // A friendly id only one open order has does the same.
    let (status, body) = scan("KQ1", Some("grill")).await;
    assert_eq!((status, &body["order_id"]), (200, &serde_json::json!("o1")));
    // Two open orders are #KQ2: refused, with the candidates.
    let (status, body) = scan("KQ2", Some("fry")).await;
    assert_eq!(status, 422);
    assert_eq!(
        body["reason"],
        "2 open orders are #KQ2: o2, o3; scan the ticket barcode"
    );
    // Garbage, and a product code at a station scanner: refused with the reason.
    let (status, body) = scan("(01)09506000134353", Some("fry")).await;
    assert_eq!(status, 422);
    assert!(
        body["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("check digit"),
        "{body}"
    );
    let (status, body) = scan("4006381333931", Some("fry")).await;
    assert_eq!(
        (status, &body["reason"]),
        (
            422,
            &serde_json::json!("a station scanner takes tickets and prep labels; this is not one")
        )
    );

    // o1 is done at both stations: ready, and out of the counts.
    let orders = get_json(&orders_url).await;
    let o1 = orders["orders"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["order_id"] == "o1")
        .cloned()
        .unwrap_or_default();
    assert_eq!(o1["bumped_at"], serde_json::json!(["fry", "grill"]));
    assert_eq!(o1["ready"], true);
    let fry = get_json(&format!("{base}/api/batches?station=fry")).await;
    assert_eq!(
        fry["items"][0]["order_ids"],
        serde_json::json!(["o2", "o3"])
    );

    // Every scan is in the log, in order, accepted or not.
    let mut log = SseReader::open(&format!("{base}/orders/events"), Some("0")).await;
    let mut scans = Vec::new();
    while scans.len() < 5 {
        let (_, event, data) = log.next().await;
        if event.starts_with("scan.") {
            scans.push((event, data["code"].as_str().unwrap_or_default().to_owned()));
        }
    }
    let expected: Vec<(String, String)> = [
        ("scan.recorded", "]C0ORDER:o1\r"),
        ("scan.recorded", "KQ1"),
        ("scan.rejected", "KQ2"),
        ("scan.rejected", "(01)09506000134353"),
        ("scan.rejected", "4006381333931"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect();
    assert_eq!(scans, expected);
    kitchen.stop().await;
}
