//! Serial scanners through real pseudo-terminals: the agent opens each scanner's device through
//! a symlink the test points at a pty, and the test writes what a scanner would send. Orders
//! come in through the real RabbitMQ; every scan is checked in the event log, exactly.

mod common;

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use common::TestAgent;
use edge_agent::scanner::{ScannerConfig, Suffix};
use kitchen_proto::OrderEvent;
use kitchen_testkit::{
    events::{line, new_order, sku_line},
    http::{SseReader, get_json},
    names::unique,
    pty,
};

const REFERENCE: &str = include_str!("fixtures/sample_kitchen.toml");

/// A burger (grill) with fries (fry): an order both stations work on.
fn order(sequence: u64, order_id: &str) -> OrderEvent {
    new_order("kitchen-bk-01", order_id)
        .sequence(sequence)
        .item(sku_line(
            "sku-smash-double",
            "Double Smash Burger",
            1,
            vec![],
        ))
        .item(line("Fries", 1, vec![]))
        .build()
}

/// Publishes an order per id and waits until the agent has them all open.
async fn open_orders(kitchen: &TestAgent, ids: &[String]) {
    for (n, id) in ids.iter().enumerate() {
        kitchen.publish(&order(n as u64 + 1, id)).await;
    }
    let url = format!("{}/api/orders?state=open", kitchen.base);
    let deadline = Instant::now() + Duration::from_secs(60);
    while get_json(&url).await["orders"]
        .as_array()
        .map_or(0, Vec::len)
        < ids.len()
    {
        assert!(Instant::now() < deadline, "orders never arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The stations each order was bumped at, by order id.
async fn bumps(base: &str) -> std::collections::HashMap<String, Vec<String>> {
    let orders = get_json(&format!("{base}/api/orders?state=open")).await;
    orders["orders"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            let stations = o["bumped_at"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect();
            (
                o["order_id"].as_str().unwrap_or_default().to_owned(),
                stations,
            )
        })
        .collect()
}

/// A directory of scanner symlinks for one test, removed when dropped.
struct Devices(PathBuf);

impl Devices {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(unique("test-scanners"));
        std::fs::create_dir_all(&dir).expect("devices dir");
        Self(dir)
    }

    /// The path a scanner is configured with (like `/dev/serial/by-id/...`).
    fn link(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// A new pty with the symlink `name` pointing at it.
    fn plug(&self, name: &str) -> pty::Pty {
        let pty = pty::Pty::open();
        pty::point(&self.link(name), &pty.slave);
        pty
    }
}

impl Drop for Devices {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scanner(devices: &Devices, name: &str, station: &str, suffix: Suffix) -> ScannerConfig {
    ScannerConfig {
        suffix,
        ..ScannerConfig::station(name, devices.link(name), station)
    }
}

/// Scanner `name` as `/api/status` shows it.
async fn status_of(base: &str, name: &str) -> serde_json::Value {
    let status = get_json(&format!("{base}/api/status")).await;
    status["scanners"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == name)
        .cloned()
        .unwrap_or_default()
}

/// Waits until scanner `name` is in `state` (or, with several, any of them); returns its
/// status.
async fn wait_state(base: &str, name: &str, states: &[&str]) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = status_of(base, name).await;
        if states.iter().any(|s| status["state"] == *s) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "scanner {name} never {states:?}: {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One recorded scan as the event log has it: (event, code, reason).
type Logged = (String, String, String);

/// Reads the event log from the start until `expected[device]` scans of each device arrived;
/// the scans per device, in order.
async fn scans_by_device(
    base: &str,
    expected: &[(&str, usize)],
) -> std::collections::HashMap<String, Vec<Logged>> {
    let mut log = SseReader::open(&format!("{base}/orders/events"), Some("0")).await;
    let mut seen: std::collections::HashMap<String, Vec<Logged>> = Default::default();
    let done = |seen: &std::collections::HashMap<String, Vec<Logged>>| {
        expected
            .iter()
            .all(|(device, n)| seen.get(*device).map_or(0, Vec::len) >= *n)
    };
    while !done(&seen) {
        let Some((_, event, data)) = log.next_within(Duration::from_secs(30)).await else {
            panic!("scans missing after 30 s; seen {seen:?}");
        };
        if event.starts_with("scan.") {
            let text = |key: &str| data[key].as_str().unwrap_or_default().to_owned();
            seen.entry(text("device"))
                .or_default()
                .push((event, text("code"), text("reason")));
        }
    }
    seen
}

fn accepted(code: &str) -> Logged {
    ("scan.recorded".into(), code.into(), String::new())
}

fn rejected(code: &str, reason: &str) -> Logged {
    ("scan.rejected".into(), code.into(), reason.into())
}

/// What a scanner ending frames with `end` sends, and what must be logged for it: a ticket
/// split over three writes, two tickets in one write (the second ended the sloppy way,
/// `sloppy_end`), stray line ends, garbage, an over-long line, bytes that are not UTF-8, and a
/// ticket after all that.
fn script(tag: &str, end: &str, sloppy_end: &str) -> (Vec<Vec<u8>>, Vec<Logged>) {
    let ticket = |n: u32| format!("ORDER:{tag}{n}");
    let writes: Vec<Vec<u8>> = vec![
        b"ORD".to_vec(),
        format!("ER:{tag}1").into_bytes(),
        end.into(),
        format!("{}{end}{}{sloppy_end}", ticket(2), ticket(3)).into_bytes(),
        format!("{end}{end}").into_bytes(),
        format!("hello world!{end}").into_bytes(),
        [vec![b'A'; 300], end.as_bytes().to_vec()].concat(),
        [&b"\xff"[..], ticket(4).as_bytes(), end.as_bytes()].concat(),
        format!("{}{end}", ticket(4)).into_bytes(),
    ];
    let expected = vec![
        accepted(&ticket(1)),
        accepted(&ticket(2)),
        accepted(&ticket(3)),
        rejected(
            "hello world!",
            "unrecognised scan: not a ticket, friendly id, product code or GS1 element string",
        ),
        rejected(&"A".repeat(256), "scan too long: 300 bytes, at most 256"),
        rejected(
            &format!("\u{fffd}{}", ticket(4)),
            "scan is not text: invalid UTF-8 at byte 0",
        ),
        accepted(&ticket(4)),
    ];
    (writes, expected)
}

/// Writes `writes` one by one with a short pause, so most land in separate reads.
async fn send(pty: &pty::Pty, writes: Vec<Vec<u8>>, pause: Duration) {
    for bytes in writes {
        pty.write(bytes).await;
        tokio::time::sleep(pause).await;
    }
}

#[tokio::test]
async fn every_suffix_style_gives_each_scan_exactly_once_whatever_the_reads() {
    let devices = Devices::new();
    let kitchen = TestAgent::start_with(Some(REFERENCE), &["kitchen-bk-01"], |config| {
        config.scanners = vec![
            scanner(&devices, "fry-cr", "fry", Suffix::Cr),
            scanner(&devices, "grill-lf", "grill", Suffix::Lf),
            scanner(&devices, "fry-crlf", "fry", Suffix::Crlf),
            ScannerConfig {
                idle_ms: 150,
                ..scanner(&devices, "grill-none", "grill", Suffix::None)
            },
        ];
        config.scanner_retry_ms = 50;
    })
    .await;
    let base = kitchen.base.clone();
    let ids: Vec<String> = ["c", "l", "x", "n"]
        .iter()
        .flat_map(|tag| (1..=4).map(move |n| format!("{tag}{n}")))
        .collect();
    open_orders(&kitchen, &ids).await;
    let ptys: Vec<pty::Pty> = ["fry-cr", "grill-lf", "fry-crlf", "grill-none"]
        .iter()
        .map(|name| devices.plug(name))
        .collect();
    for name in ["fry-cr", "grill-lf", "fry-crlf", "grill-none"] {
        wait_state(&base, name, &["connected"]).await;
    }

    let (cr_writes, cr_expected) = script("c", "\r", "\r\n");
    let (lf_writes, lf_expected) = script("l", "\n", "\r\n");
    let (crlf_writes, crlf_expected) = script("x", "\r\n", "\r\n");
    // Without a suffix a frame is what arrives before 150 ms of quiet: a ticket in two writes
    // 5 ms apart is one frame; CR and LF are data (the parser trims them).
    let none_writes: Vec<Vec<u8>> = vec![
        b"ORD".to_vec(),
        b"ER:n1".to_vec(),
        b"ORDER:n2\r\n".to_vec(),
        vec![b'A'; 300],
        b"\xfeORDER:n3".to_vec(),
        b"ORDER:n4".to_vec(),
    ];
    let none_expected = vec![
        accepted("ORDER:n1"),
        accepted("ORDER:n2\r\n"),
        rejected(&"A".repeat(256), "scan too long: 300 bytes, at most 256"),
        rejected(
            "\u{fffd}ORDER:n3",
            "scan is not text: invalid UTF-8 at byte 0",
        ),
        accepted("ORDER:n4"),
    ];
    let none_script = async {
        let mut writes = none_writes.into_iter();
        for _ in 0..2 {
            ptys[3].write(writes.next().unwrap_or_default()).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(600)).await;
        send(&ptys[3], writes.collect(), Duration::from_millis(600)).await;
    };
    // All four at once.
    tokio::join!(
        send(&ptys[0], cr_writes, Duration::from_millis(20)),
        send(&ptys[1], lf_writes, Duration::from_millis(20)),
        send(&ptys[2], crlf_writes, Duration::from_millis(20)),
        none_script,
    );

    let expected = [
        ("fry-cr", cr_expected),
        ("grill-lf", lf_expected),
        ("fry-crlf", crlf_expected),
        ("grill-none", none_expected),
    ];
    let counts: Vec<(&str, usize)> = expected.iter().map(|(d, e)| (*d, e.len())).collect();
    let seen = scans_by_device(&base, &counts).await;
    for (device, expected) in &expected {
        assert_eq!(seen.get(*device), Some(expected), "{device}");
        // Nothing more was read than that.
        let status = status_of(&base, device).await;
        let accepted = expected.iter().filter(|e| e.0 == "scan.recorded").count();
        let overlong = expected.iter().filter(|e| e.2.contains("too long")).count();
        assert_eq!(
            (
                &status["frames"],
                &status["accepted"],
                &status["rejected"],
                &status["overlong"],
                &status["failed"],
                &status["state"]
            ),
            (
                &serde_json::json!(expected.len()),
                &serde_json::json!(accepted),
                &serde_json::json!(expected.len() - accepted - overlong),
                &serde_json::json!(overlong),
                &serde_json::json!(0),
                &serde_json::json!("connected"),
            ),
            "{device}: {status}"
        );
    }
    // Each ticket bumped its order at the scanner's station, and nowhere else; n3 only came
    // in the frame that was not text.
    let bumped = bumps(&base).await;
    for (tag, station) in [("c", "fry"), ("l", "grill"), ("x", "fry"), ("n", "grill")] {
        for n in 1..=4 {
            let id = format!("{tag}{n}");
            let expected = if id == "n3" {
                vec![]
            } else {
                vec![station.to_owned()]
            };
            assert_eq!(bumped.get(&id), Some(&expected), "{id}");
        }
    }
    let metrics = kitchen_testkit::http::get(format!("{base}/metrics"))
        .await
        .expect("answers")
        .text()
        .await
        .expect("text");
    for line in [
        "edge_agent_scanner_connected{scanner=\"fry-cr\"} 1",
        "edge_agent_scanner_frames_total{scanner=\"fry-cr\",result=\"accepted\"} 4",
        "edge_agent_scanner_frames_total{scanner=\"fry-cr\",result=\"rejected\"} 2",
        "edge_agent_scanner_frames_total{scanner=\"fry-cr\",result=\"overlong\"} 1",
        "edge_agent_scanner_frames_total{scanner=\"grill-none\",result=\"accepted\"} 3",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    drop(ptys);
    kitchen.stop().await;
}

#[tokio::test]
async fn a_burst_of_a_thousand_scans_is_recorded_exactly_once_each_in_order() {
    let devices = Devices::new();
    let kitchen = TestAgent::start_with(Some(REFERENCE), &["kitchen-bk-01"], |config| {
        config.scanners = vec![scanner(&devices, "fry-burst", "fry", Suffix::Cr)];
    })
    .await;
    let base = kitchen.base.clone();
    let ids: Vec<String> = (0..1000).map(|n| format!("b{n:04}")).collect();
    open_orders(&kitchen, &ids).await;
    let pty = devices.plug("fry-burst");
    wait_state(&base, "fry-burst", &["connected"]).await;
    // As fast as the pty takes it: one write of ~13 kB, far more than one read.
    let burst: Vec<u8> = ids
        .iter()
        .flat_map(|id| format!("ORDER:{id}\r").into_bytes())
        .collect();
    pty.write(burst).await;

    let seen = scans_by_device(&base, &[("fry-burst", 1000)]).await;
    let expected: Vec<Logged> = ids
        .iter()
        .map(|id| accepted(&format!("ORDER:{id}")))
        .collect();
    assert_eq!(seen.get("fry-burst"), Some(&expected));
    let status = status_of(&base, "fry-burst").await;
    assert_eq!(
        (&status["frames"], &status["accepted"]),
        (&serde_json::json!(1000), &serde_json::json!(1000)),
        "{status}"
    );
    let bumped = bumps(&base).await;
    assert_eq!(bumped.len(), 1000);
    assert!(
        bumped.values().all(|stations| stations == &["fry"]),
        "every order bumped at the fryer once"
    );
    drop(pty);
    kitchen.stop().await;
}

#[tokio::test]
async fn an_unplugged_scanner_is_shown_and_picked_up_again_when_plugged_back() {
    let devices = Devices::new();
    let kitchen = TestAgent::start_with(Some(REFERENCE), &["kitchen-bk-01"], |config| {
        config.scanners = vec![scanner(&devices, "fry-usb", "fry", Suffix::Cr)];
        config.scanner_retry_ms = 50;
    })
    .await;
    let base = kitchen.base.clone();
    open_orders(&kitchen, &["u1".to_owned(), "u2".to_owned()]).await;
    // Not plugged in yet: missing, and the agent is ready all the same.
    let status = wait_state(&base, "fry-usb", &["missing"]).await;
    assert!(
        status["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("No such file"),
        "{status}"
    );
    let ready = kitchen_testkit::http::get(format!("{base}/readyz"))
        .await
        .expect("answers");
    assert_eq!(ready.status(), 200);

    let first = devices.plug("fry-usb");
    wait_state(&base, "fry-usb", &["connected"]).await;
    first.write("ORDER:u1\r").await;
    scans_by_device(&base, &[("fry-usb", 1)]).await;

    // Unplugged: the pty's master closes. The kernel hangs the slave up, so the agent's read
    // returns end of file (a USB serial device gone says EIO or end of file alike).
    drop(first);
    let status = wait_state(&base, "fry-usb", &["disconnected", "missing"]).await;
    assert!(status["last_error"].is_string(), "{status}");
    let ready = kitchen_testkit::http::get(format!("{base}/readyz"))
        .await
        .expect("answers");
    assert_eq!(
        ready.status(),
        200,
        "a scanner does not make the agent unready"
    );
    let body: serde_json::Value = ready.json().await.expect("json");
    assert_ne!(body["scanners"][0]["state"], "connected", "{body}");
    let metrics = kitchen_testkit::http::get(format!("{base}/metrics"))
        .await
        .expect("answers")
        .text()
        .await
        .expect("text");
    assert!(
        metrics
            .lines()
            .any(|l| l == "edge_agent_scanner_connected{scanner=\"fry-usb\"} 0"),
        "{metrics}"
    );
    // udev removes the by-id link: missing.
    std::fs::remove_file(devices.link("fry-usb")).expect("unlink");
    let status = wait_state(&base, "fry-usb", &["missing"]).await;
    assert!(
        status["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("No such file"),
        "{status}"
    );

    // Plugged back in, on another tty: the link points there, and the same agent reads it.
    let second = devices.plug("fry-usb");
    wait_state(&base, "fry-usb", &["connected"]).await;
    second.write("ORDER:u2\r").await;
    let seen = scans_by_device(&base, &[("fry-usb", 2)]).await;
    assert_eq!(
        seen.get("fry-usb"),
        Some(&vec![accepted("ORDER:u1"), accepted("ORDER:u2")])
    );
    let bumped = bumps(&base).await;
    assert_eq!(bumped.get("u2"), Some(&vec!["fry".to_owned()]));
    let status = status_of(&base, "fry-usb").await;
    assert_eq!(
        (
            &status["frames"],
            &status["accepted"],
            &status["last_error"]
        ),
        (
            &serde_json::json!(2),
            &serde_json::json!(2),
            &serde_json::Value::Null
        ),
        "{status}"
    );
    drop(second);
    kitchen.stop().await;
}

#[tokio::test]
async fn two_scanners_at_once_each_bump_at_their_own_station() {
    let devices = Devices::new();
    let kitchen = TestAgent::start_with(Some(REFERENCE), &["kitchen-bk-01"], |config| {
        config.scanners = vec![
            scanner(&devices, "fry-1", "fry", Suffix::Cr),
            scanner(&devices, "grill-1", "grill", Suffix::Crlf),
            // A station the reference does not have: it runs, and its scans are rejected.
            scanner(&devices, "pizza-1", "pizza", Suffix::Cr),
        ];
    })
    .await;
    let base = kitchen.base.clone();
    let ids: Vec<String> = (1..=20).map(|n| format!("t{n}")).collect();
    open_orders(&kitchen, &ids).await;
    let fry = devices.plug("fry-1");
    let grill = devices.plug("grill-1");
    let pizza = devices.plug("pizza-1");
    for name in ["fry-1", "grill-1", "pizza-1"] {
        wait_state(&base, name, &["connected"]).await;
    }
    let pizza_status = status_of(&base, "pizza-1").await;
    assert_eq!(
        pizza_status["warning"],
        "unknown station \"pizza\": scans are rejected"
    );

    // The fryer scans the odd tickets then the even ones, the grill the other way round, at
    // the same time.
    let odd_then_even: Vec<&String> = ids
        .iter()
        .step_by(2)
        .chain(ids.iter().skip(1).step_by(2))
        .collect();
    let even_then_odd: Vec<&String> = ids
        .iter()
        .skip(1)
        .step_by(2)
        .chain(ids.iter().step_by(2))
        .collect();
    let fry_writes = odd_then_even
        .iter()
        .map(|id| format!("ORDER:{id}\r").into_bytes())
        .collect();
    let grill_writes = even_then_odd
        .iter()
        .map(|id| format!("ORDER:{id}\r\n").into_bytes())
        .collect();
    tokio::join!(
        send(&fry, fry_writes, Duration::from_millis(2)),
        send(&grill, grill_writes, Duration::from_millis(2)),
        pizza.write("ORDER:t1\r"),
    );
    let seen = scans_by_device(&base, &[("fry-1", 20), ("grill-1", 20), ("pizza-1", 1)]).await;
    let tickets = |order: &[&String]| -> Vec<Logged> {
        order
            .iter()
            .map(|id| accepted(&format!("ORDER:{id}")))
            .collect()
    };
    assert_eq!(seen.get("fry-1"), Some(&tickets(&odd_then_even)));
    assert_eq!(seen.get("grill-1"), Some(&tickets(&even_then_odd)));
    assert_eq!(
        seen.get("pizza-1"),
        Some(&vec![rejected("ORDER:t1", "unknown station \"pizza\"")])
    );
    // Done at both stations: every order is ready.
    let orders = get_json(&format!("{base}/api/orders?state=open")).await;
    let orders = orders["orders"].as_array().cloned().unwrap_or_default();
    assert_eq!(orders.len(), 20);
    for order in &orders {
        assert_eq!(
            (&order["bumped_at"], &order["ready"]),
            (
                &serde_json::json!(["fry", "grill"]),
                &serde_json::json!(true)
            ),
            "{order}"
        );
    }
    drop((fry, grill, pizza));
    kitchen.stop().await;
}

/// End to end through a serial scanner: orders arrive through RabbitMQ, the grill's scanner
/// reads one ticket, and the stream says `order.bumped` at the grill and the grill's count
/// drops by exactly that order's burgers (the fryer's stays). A prep scanner on the same box
/// reads a GS1-128 prep label with its raw GS separators (which a keyboard wedge would lose)
/// and the stock is added.
#[tokio::test]
async fn a_ticket_scanned_at_the_grill_takes_exactly_that_orders_units_off_the_grill_count() {
    let devices = Devices::new();
    let kitchen = TestAgent::start_with(Some(REFERENCE), &["kitchen-bk-01"], |config| {
        config.scanners = vec![
            scanner(&devices, "grill-1", "grill", Suffix::Cr),
            ScannerConfig {
                suffix: Suffix::Crlf,
                role: edge_agent::scan::ScanRole::Prep,
                ..ScannerConfig::station("prep-1", devices.link("prep-1"), "unused")
            },
        ];
    })
    .await;
    let base = kitchen.base.clone();
    let with_burgers = |sequence, order_id: &str, burgers| {
        let mut event = order(sequence, order_id);
        event.items[0].quantity = burgers;
        event
    };
    kitchen.publish(&with_burgers(1, "big", 3)).await;
    kitchen.publish(&with_burgers(2, "small", 1)).await;
    let grill_count = || async {
        let batches = get_json(&format!("{base}/api/batches?station=grill")).await;
        batches["items"][0]["quantity"].as_u64().unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while grill_count().await != 4 {
        assert!(Instant::now() < deadline, "orders never counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let grill = devices.plug("grill-1");
    let prep = devices.plug("prep-1");
    wait_state(&base, "grill-1", &["connected"]).await;
    wait_state(&base, "prep-1", &["connected"]).await;
    let mut live = SseReader::open(&format!("{base}/orders/events"), None).await;
    let (_, kind, _) = live.next().await;
    assert_eq!(kind, "snapshot");

    grill.write("]C0ORDER:big\r").await;
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let (_, kind, data) = live.next().await;
        seen.push((kind, data));
    }
    // One commit: the bump, the scan that caused it, the grill's new count.
    assert_eq!(
        (seen[0].0.as_str(), &seen[0].1),
        (
            "order.bumped",
            &serde_json::json!({"order_id": "big", "stations": ["grill"], "device": "grill-1"})
        )
    );
    assert_eq!(seen[1].0, "scan.recorded");
    assert_eq!(
        (
            &seen[1].1["device"],
            &seen[1].1["action"],
            &seen[1].1["code"]
        ),
        (
            &serde_json::json!("grill-1"),
            &serde_json::json!("bump"),
            &serde_json::json!("]C0ORDER:big")
        )
    );
    assert_eq!(seen[2].0, "batch.updated");
    assert_eq!(seen[2].1["station_id"], "grill");
    assert_eq!(seen[2].1["items"][0]["quantity"], 1, "4 burgers − big's 3");
    assert_eq!(grill_count().await, 1);
    let fry = get_json(&format!("{base}/api/batches?station=fry")).await;
    assert_eq!(fry["items"][0]["quantity"], 2, "the fryer still owes both");

    let (today, _) = edge_agent::prep::local_day(kitchen_daemon::clock::now_ms());
    let label = edge_agent::scan::PrepLabel {
        item_id: "fries",
        batch_id: "F1",
        prepared: today,
        use_by: today,
        quantity: 5,
    }
    .element_string()
    .expect("label");
    prep.write(format!("]C1{label}\r\n")).await;
    loop {
        let (_, kind, data) = live.next().await;
        if kind == "stock.changed" {
            assert_eq!(
                (
                    &data["change"],
                    &data["lot"]["item_id"],
                    &data["lot"]["quantity"]
                ),
                (
                    &serde_json::json!("added"),
                    &serde_json::json!("fries"),
                    &serde_json::json!(5)
                )
            );
            break;
        }
        assert_ne!(kind, "scan.rejected", "{data}");
    }
    let view = get_json(&format!("{base}/api/prep")).await;
    assert_eq!(view["items"][0]["on_hand"], 5, "{view}");
    drop((grill, prep));
    kitchen.stop().await;
}
