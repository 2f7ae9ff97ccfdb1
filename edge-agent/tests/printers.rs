//! Ticket printers against stand-ins the test runs: a TCP listener (a network printer on port
//! 9100) and a pseudo-terminal (a USB or serial printer), each recording the bytes it gets and
//! answering `DLE EOT n` with the status the test sets. Orders come in through the real
//! RabbitMQ. The bytes are checked exactly, and decoded back to text by a decoder written here,
//! independently of the agent's encoder.

mod common;

use std::time::Duration;

use common::{TestAgent, wait_until};
use edge_agent::config::{PrinterConfig, PrinterTarget};
use kitchen_proto::OrderEvent;
use kitchen_testkit::{
    events::{line, new_order, sku_line},
    http::{client, get_json},
    names::unique,
    printer::{DevicePrinter, NetworkPrinter, PAPER_OUT, Paper, READY},
};

const REFERENCE: &str = include_str!("fixtures/sample_kitchen.toml");

/// A printer entry for the network stand-in.
fn network_config(
    printer: &NetworkPrinter,
    name: &str,
    stations: &[&str],
    expo: bool,
    fallback: bool,
) -> PrinterConfig {
    PrinterConfig {
        name: name.into(),
        target: PrinterTarget::Network(format!("127.0.0.1:{}", printer.port)),
        paper_mm: 80,
        stations: stations.iter().map(|s| (*s).to_owned()).collect(),
        expo,
        fallback,
        status: true,
    }
}

/// An Expo printer entry for the device stand-in.
fn device_config(printer: &DevicePrinter, name: &str, paper_mm: u32) -> PrinterConfig {
    PrinterConfig {
        name: name.into(),
        target: PrinterTarget::Device {
            path: printer.link.clone(),
            baud: None,
        },
        paper_mm,
        stations: Vec::new(),
        expo: true,
        fallback: false,
        status: true,
    }
}

/// One decoded line: its text and whether any of it was printed white on black.
#[derive(Debug, PartialEq)]
struct Printed {
    text: String,
    reverse: bool,
}

/// Decodes ESC/POS back to printed lines, as a printer would lay them out: the commands this
/// kitchen's tickets use are consumed with their parameters; a barcode becomes the line
/// `<barcode CODE128: data>`. Anything else is refused, so an unexpected command fails the test.
fn decode(bytes: &[u8]) -> Vec<Printed> {
    let mut lines = Vec::new();
    let mut text = String::new();
    let mut reverse = false;
    let mut line_reverse = false;
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            0x0A => {
                lines.push(Printed {
                    text: std::mem::take(&mut text),
                    reverse: line_reverse,
                });
                line_reverse = reverse;
                at += 1;
            }
            0x1B => match bytes.get(at + 1) {
                Some(b'@') => at += 2,
                Some(b't' | b'a' | b'E') => at += 3,
                other => panic!("unexpected ESC {other:?} at {at}"),
            },
            0x1D => match bytes.get(at + 1) {
                Some(b'B') => {
                    reverse = bytes[at + 2] == 1;
                    line_reverse |= reverse;
                    at += 3;
                }
                Some(b'!' | b'h' | b'w' | b'H') => at += 3,
                Some(b'V') => at += 4,
                Some(b'k') => {
                    assert_eq!(bytes[at + 2], 73, "CODE128");
                    let n = usize::from(bytes[at + 3]);
                    let data = &bytes[at + 4..at + 4 + n];
                    assert_eq!(&data[..2], b"{B", "code set B");
                    let data = String::from_utf8_lossy(&data[2..]).replace("{{", "{");
                    text.push_str(&format!("<barcode CODE128: {data}>"));
                    at += 4 + n;
                }
                other => panic!("unexpected GS {other:?} at {at}"),
            },
            byte @ 0x20..=0x7E => {
                text.push(char::from(byte));
                line_reverse |= reverse;
                at += 1;
            }
            other => panic!("unexpected byte 0x{other:02X} at {at}"),
        }
    }
    assert!(text.is_empty(), "unterminated line {text:?}");
    lines
}

fn texts(lines: &[Printed]) -> Vec<&str> {
    lines.iter().map(|l| l.text.as_str()).collect()
}

/// A burger (grill) without pickles, two fries (fry) with a note, a customer note naming an
/// allergen.
fn order(order_id: &str) -> OrderEvent {
    let mut fries = line("Fries", 2, vec![]);
    fries.note = "extra salt".into();
    let mut order_event = new_order("kitchen-bk-01", order_id)
        .sequence(1)
        .friendly_id("F00D1")
        .customer_name("Ana")
        .item(sku_line(
            "sku-smash-double",
            "Double Smash Burger",
            1,
            vec![line("No pickles", 1, vec![])],
        ))
        .item(fries)
        .build();
    order_event.customer_note = "peanut allergy".into();
    order_event.source = "ubereats".into();
    order_event
}

/// `HH:MM` in the box's time zone, as the tickets print times.
fn local(ms: i64) -> String {
    use chrono::TimeZone;
    chrono::Local
        .timestamp_millis_opt(ms)
        .single()
        .expect("a time")
        .format("%H:%M")
        .to_string()
}

async fn open_order(base: &str, order_id: &str) -> serde_json::Value {
    let url = format!("{base}/api/orders?state=open");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let orders = get_json(&url).await;
        if let Some(found) = orders["orders"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|o| o["order_id"] == order_id)
        {
            return found.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "order {order_id} never opened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn printer_status(base: &str, name: &str) -> serde_json::Value {
    let status = get_json(&format!("{base}/api/status")).await;
    status["printers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == name)
        .cloned()
        .unwrap_or_default()
}

async fn wait_tickets(paper: &Paper, count: usize, what: &str) {
    wait_until(what, Duration::from_secs(20), || async {
        paper.tickets().len() >= count
    })
    .await;
}

/// The sample kitchen's agent with `printers` and the quick printer timings.
async fn agent_with(printers: Vec<edge_agent::config::PrinterConfig>) -> TestAgent {
    TestAgent::start_with(Some(REFERENCE), &["kitchen-bk-01"], |config| {
        fast(config);
        config.printers = printers;
    })
    .await
}

fn fast(config: &mut edge_agent::Config) {
    config.printer_retry_ms = 100;
    config.printer_timeout_ms = 2000;
}

#[tokio::test]
async fn station_and_expo_tickets_print_exactly_and_decode_back() {
    let network = NetworkPrinter::start().await;
    let device = DevicePrinter::start();
    let printers = vec![
        network_config(&network, "fry-printer", &["fry"], false, false),
        device_config(&device, "expo-printer", 58),
    ];
    let kitchen = agent_with(printers).await;
    let order_id = unique("order");
    kitchen.publish(&order(&order_id)).await;
    let ticket = open_order(&kitchen.base, &order_id).await;
    wait_tickets(&network.paper, 1, "the fryer's ticket").await;

    // The exact bytes, written out here from the ESC/POS reference.
    let times = format!(
        "In {} - Due {}\n",
        local(ticket["received_at_ms"].as_i64().expect("received")),
        local(ticket["promised_at_ms"].as_i64().expect("promised"))
    );
    let rule = format!("{}\n", "-".repeat(48));
    // CODE128 set B: 11 modules a character plus start, check, stop and quiet zones; 2-dot
    // modules when that fits 576 dots (80 mm), else 1.
    let code = format!("ORDER:{order_id}");
    let module = if (11 * code.len() + 55) * 2 <= 576 {
        2
    } else {
        1
    };
    let expected: Vec<u8> = [
        &[0x1B, b'@', 0x1B, b't', 0][..],
        &[0x1B, b'a', 1, 0x1D, b'!', 0x11],
        b"#F00D1\n",
        &[0x1D, b'!', 0, 0x1B, b'a', 0],
        &[0x1B, b'a', 1, 0x1B, b'E', 1],
        b"FRYER\n",
        &[0x1B, b'E', 0, 0x1B, b'a', 0],
        b"ubereats - Ana\n",
        times.as_bytes(),
        rule.as_bytes(),
        &[0x1B, b'E', 1],
        b"2 x Fries\n",
        &[0x1B, b'E', 0],
        b"   Note: extra salt\n",
        rule.as_bytes(),
        b"+ 1 x Double Smash Burger (grill)\n",
        rule.as_bytes(),
        // The note names an allergen (the reference's default words): white on black, bold.
        &[0x1D, b'B', 1, 0x1B, b'E', 1],
        b"ALLERGY: peanut allergy\n",
        &[0x1B, b'E', 0, 0x1D, b'B', 0],
        &[
            0x1B, b'a', 1, 0x1D, b'h', 48, 0x1D, b'w', module, 0x1D, b'H', 2,
        ],
        &[0x1D, b'k', 73, code.len() as u8 + 2],
        b"{B",
        code.as_bytes(),
        b"\n",
        &[0x1B, b'a', 0],
        b"\n\n\n",
        &[0x1D, b'V', 66, 3],
    ]
    .concat();
    let source = "ubereats";
    assert_eq!(ticket["source"], source);
    assert_eq!(
        network.paper.bytes(),
        expected,
        "{}",
        String::from_utf8_lossy(&network.paper.bytes())
    );
    let lines = decode(&network.paper.bytes());
    assert_eq!(
        texts(&lines)[..6],
        [
            "#F00D1",
            "FRYER",
            &format!("{source} - Ana"),
            times.trim_end(),
            &"-".repeat(48),
            "2 x Fries"
        ]
    );
    // The ticket's barcode, read by the fryer's scanner, bumps the order there: how a station
    // without a screen bumps (once the allergy is acknowledged there, as on a screen).
    let ack = client()
        .post(format!(
            "{}/api/orders/{order_id}/allergen-ack?station=fry",
            kitchen.base
        ))
        .send()
        .await
        .expect("answers");
    assert_eq!(ack.status(), 200, "{:?}", ack.text().await);
    let scanned = lines
        .iter()
        .find_map(|l| l.text.strip_prefix("<barcode CODE128: "))
        .and_then(|t| t.strip_suffix('>'))
        .expect("a barcode on the station ticket")
        .to_owned();
    let scan = client()
        .post(format!("{}/api/scans", kitchen.base))
        .json(&serde_json::json!({"code": scanned, "station": "fry"}))
        .send()
        .await
        .expect("answers");
    assert_eq!(scan.status(), 200);
    let bumped = open_order(&kitchen.base, &order_id).await;
    assert_eq!(bumped["bumped_at"], serde_json::json!(["fry"]));
    let status = printer_status(&kitchen.base, "fry-printer").await;
    assert_eq!(status["state"], "ready", "{status}");
    assert_eq!(
        (status["printed"].as_u64(), status["waiting"].as_i64()),
        (Some(1), Some(0))
    );
    assert!(device.paper.bytes().is_empty(), "nothing for Expo yet");
    let metrics = kitchen_testkit::http::get(format!("{}/metrics", kitchen.base))
        .await
        .expect("answers")
        .text()
        .await
        .expect("text");
    for wanted in [
        "edge_agent_printer_ready{printer=\"fry-printer\"} 1",
        "edge_agent_printer_jobs_waiting{printer=\"fry-printer\"} 0",
        "edge_agent_printer_attempts_total{printer=\"fry-printer\",result=\"printed\"} 1",
        "edge_agent_printer_ready{printer=\"expo-printer\"} 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == wanted),
            "{wanted} in {metrics}"
        );
    }

    // Ready at Expo: the bag ticket on the 58 mm printer behind the pty.
    let ready = client()
        .post(format!("{}/api/orders/{order_id}/ready", kitchen.base))
        .send()
        .await
        .expect("answers");
    assert_eq!(ready.status(), 200);
    wait_tickets(&device.paper, 1, "the bag ticket").await;
    let bag = decode(&device.paper.tickets()[0]);
    let bag_text = texts(&bag);
    assert_eq!(bag_text[..3], ["READY", "#F00D1", &source.to_uppercase()]);
    for wanted in [
        "[ ] 1 x Double Smash Burger",
        "       No pickles",
        "[ ] 2 x Fries",
        "       Note: extra salt",
    ] {
        assert!(bag_text.contains(&wanted), "{wanted:?} in {bag_text:#?}");
    }
    // The barcode is what the Expo scanners read back as this order (a friendly id on 58 mm
    // paper when the order id is too long for it).
    let code = bag_text
        .iter()
        .find_map(|t| t.strip_prefix("<barcode CODE128: "))
        .and_then(|t| t.strip_suffix('>'))
        .expect("a barcode");
    let expected_code = if order_id.len() + 6 <= 29 {
        format!("ORDER:{order_id}")
    } else {
        "F00D1".to_owned()
    };
    assert_eq!(code, expected_code);

    // Reprints: the bag ticket again, and the fryer's ticket on its printer.
    for (body, paper) in [
        (serde_json::json!({}), &device.paper),
        (serde_json::json!({"station": "fry"}), &network.paper),
    ] {
        let response = client()
            .post(format!("{}/api/orders/{order_id}/reprint", kitchen.base))
            .json(&body)
            .send()
            .await
            .expect("answers");
        assert_eq!(response.status(), 202, "{body}");
        wait_tickets(paper, 2, "the reprint").await;
        let again = decode(&paper.tickets()[1]);
        assert_eq!(again[0].text, " REPRINT ");
        assert!(again[0].reverse);
    }
    // No printer for the grill: a clear refusal.
    let response = client()
        .post(format!("{}/api/orders/{order_id}/reprint", kitchen.base))
        .json(&serde_json::json!({"station": "grill"}))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 409);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"], "no printer for station grill");
    kitchen.stop().await;
    assert_eq!(network.paper.tickets().len(), 2);
    assert_eq!(device.paper.tickets().len(), 2);
}

#[tokio::test]
async fn paper_out_shows_in_status_and_the_ticket_prints_once_after() {
    let network = NetworkPrinter::start().await;
    network.paper.set_status(PAPER_OUT);
    let printers = vec![network_config(
        &network,
        "fry-printer",
        &["fry"],
        false,
        false,
    )];
    let kitchen = agent_with(printers).await;
    let order_id = unique("order");
    kitchen.publish(&order(&order_id)).await;
    open_order(&kitchen.base, &order_id).await;
    let base = kitchen.base.clone();
    wait_until("paper out in /api/status", Duration::from_secs(20), || {
        let base = base.clone();
        async move {
            let status = printer_status(&base, "fry-printer").await;
            status["state"] == "paper_out" && status["waiting"] == 1
        }
    })
    .await;
    let status = printer_status(&kitchen.base, "fry-printer").await;
    assert_eq!(status["last_error"], "paper out", "{status}");
    assert!(
        network.paper.bytes().is_empty(),
        "nothing sent while out of paper"
    );

    network.paper.set_status(READY);
    wait_tickets(&network.paper, 1, "the ticket after the paper went in").await;
    wait_until("ready in /api/status", Duration::from_secs(10), || {
        let base = base.clone();
        async move {
            let status = printer_status(&base, "fry-printer").await;
            status["state"] == "ready" && status["printed"] == 1 && status["waiting"] == 0
        }
    })
    .await;
    // Time for a second print, were there to be one.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(network.paper.tickets().len(), 1);
    kitchen.stop().await;
}

#[tokio::test]
async fn jobs_queued_before_a_restart_print_once_after() {
    // A port nobody listens on yet: the printer is switched off.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let config = PrinterConfig {
        name: "fry-printer".into(),
        target: PrinterTarget::Network(format!("127.0.0.1:{port}")),
        paper_mm: 80,
        stations: vec!["fry".into()],
        expo: false,
        fallback: false,
        status: true,
    };
    let first_config = config.clone();
    let kitchen = TestAgent::start_with(Some(REFERENCE), &["kitchen-bk-01"], |c| {
        fast(c);
        c.printers = vec![first_config];
    })
    .await;
    let order_id = unique("order");
    kitchen.publish(&order(&order_id)).await;
    open_order(&kitchen.base, &order_id).await;
    let base = kitchen.base.clone();
    wait_until(
        "unreachable in /api/status",
        Duration::from_secs(20),
        || {
            let base = base.clone();
            async move {
                let status = printer_status(&base, "fry-printer").await;
                status["state"] == "unreachable" && status["waiting"] == 1
            }
        },
    )
    .await;
    let data_dir = kitchen.stop_keeping_data().await;

    let network = NetworkPrinter::start_on(port).await;
    let kitchen = TestAgent::start_with(None, &["kitchen-bk-01"], |c| {
        fast(c);
        c.data_dir = data_dir;
        c.printers = vec![config];
    })
    .await;
    wait_tickets(&network.paper, 1, "the queued ticket after the restart").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(network.paper.tickets().len(), 1);
    let lines = decode(&network.paper.bytes());
    assert_eq!(lines[0].text, "#F00D1");
    kitchen.stop().await;
}

#[tokio::test]
async fn a_station_without_tablets_prints_on_the_fallback_printer_until_one_is_back() {
    let network = NetworkPrinter::start().await;
    let printers = vec![network_config(&network, "expo-printer", &[], false, true)];
    let kitchen = TestAgent::start_with(Some(REFERENCE), &["kitchen-bk-01"], |config| {
        fast(config);
        config.printer_fallback_secs = 1;
        config.printers = printers;
    })
    .await;
    let stream_url = format!("{}/orders/events?station=fry", kitchen.base);
    let tablet = kitchen_testkit::http::SseReader::open(&stream_url, None).await;
    // With the fryer's tablet connected, nothing prints.
    let first = unique("order");
    kitchen.publish(&order(&first)).await;
    open_order(&kitchen.base, &first).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(network.paper.bytes().is_empty());

    drop(tablet);
    let base = kitchen.base.clone();
    wait_until(
        "the fryer on the fallback printer",
        Duration::from_secs(20),
        || {
            let base = base.clone();
            async move {
                let status = get_json(&format!("{base}/api/status")).await;
                status["print_fallback"][0]["station"] == "fry"
                    && status["print_fallback"][0]["active"] == true
            }
        },
    )
    .await;
    let second = unique("order");
    let mut event = order(&second);
    event.sequence = 2;
    event.event_id = format!("ev-{second}");
    kitchen.publish(&event).await;
    wait_tickets(
        &network.paper,
        1,
        "the fryer's ticket on the fallback printer",
    )
    .await;
    let lines = decode(&network.paper.tickets()[0]);
    assert_eq!(lines[0].text, " SCREEN DOWN - FRYER ");
    assert!(lines[0].reverse);
    assert_eq!(texts(&lines)[1..3], ["#F00D1", "FRYER"]);
    // Only the fryer lost its screens: the grill prints nothing.
    assert_eq!(network.paper.tickets().len(), 1);

    // The tablet comes back: the status says what printed meanwhile, for its display.
    let _tablet = kitchen_testkit::http::SseReader::open(&stream_url, None).await;
    wait_until("the fallback to end", Duration::from_secs(10), || {
        let base = base.clone();
        async move {
            let status = get_json(&format!("{base}/api/status")).await;
            let fallback = &status["print_fallback"][0];
            fallback["active"] == false && fallback["tickets"] == 1 && fallback["ended_ms"].is_i64()
        }
    })
    .await;
    let third = unique("order");
    let mut event = order(&third);
    event.sequence = 3;
    event.event_id = format!("ev-{third}");
    kitchen.publish(&event).await;
    open_order(&kitchen.base, &third).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(network.paper.tickets().len(), 1);
    kitchen.stop().await;
}

#[tokio::test]
async fn a_missing_device_or_a_garbled_reply_is_a_clear_state_not_a_crash() {
    let network = NetworkPrinter::start().await;
    // Not an ESC/POS status byte (bit 1 off): a printer speaking something else.
    network.paper.set_status([0x00, 0x00, 0x00, 0x00]);
    let missing = PrinterConfig {
        name: "usb-printer".into(),
        target: PrinterTarget::Device {
            path: std::env::temp_dir().join(unique("no-such-lp")),
            baud: None,
        },
        paper_mm: 58,
        stations: vec!["grill".into()],
        expo: false,
        fallback: false,
        status: true,
    };
    // A serial printer (a pty set raw at 19200 baud) that does not answer status queries.
    let serial = DevicePrinter::start();
    let mut quiet = device_config(&serial, "serial-printer", 80);
    quiet.target = PrinterTarget::Device {
        path: serial.link.clone(),
        baud: Some(19_200),
    };
    (quiet.stations, quiet.expo, quiet.status) = (vec!["grill".into()], false, false);
    serial.paper.set_status([0x00; 4]);
    let printers = vec![
        network_config(&network, "fry-printer", &["fry"], false, false),
        missing,
        quiet,
    ];
    let kitchen = agent_with(printers).await;
    let order_id = unique("order");
    kitchen.publish(&order(&order_id)).await;
    open_order(&kitchen.base, &order_id).await;
    let base = kitchen.base.clone();
    wait_until("both printers' states", Duration::from_secs(20), || {
        let base = base.clone();
        async move {
            let fry = printer_status(&base, "fry-printer").await;
            let usb = printer_status(&base, "usb-printer").await;
            fry["state"] == "bad_reply" && usb["state"] == "unreachable"
        }
    })
    .await;
    let fry = printer_status(&kitchen.base, "fry-printer").await;
    assert_eq!(
        fry["last_error"],
        "not an ESC/POS status reply to DLE EOT 1: 0x00"
    );
    let usb = printer_status(&kitchen.base, "usb-printer").await;
    let error = usb["last_error"].as_str().expect("a reason");
    assert!(error.contains("No such file or directory"), "{error}");
    // The kitchen carries on: a bump still works.
    let bump = client()
        .post(format!("{}/api/orders/{order_id}/bump", kitchen.base))
        .send()
        .await
        .expect("answers");
    assert_eq!(bump.status(), 200);
    assert!(network.paper.bytes().is_empty());
    // Without status queries the serial printer just prints, and is taken as ready.
    wait_tickets(&serial.paper, 1, "the grill's ticket on the serial printer").await;
    assert_eq!(decode(&serial.paper.tickets()[0])[1].text, "GRILL");
    kitchen.stop().await;
}

/// On the tablets: the printer's trouble as a banner, the fallback's tickets on the station's
/// screen when it comes back, and Expo's Reprint on a Ready ticket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_displays_show_printer_trouble_the_fallback_and_reprint() {
    use kitchen_testkit::browser::Browser;
    const WAIT: Duration = Duration::from_secs(30);
    let network = NetworkPrinter::start().await;
    network.paper.set_status(PAPER_OUT);
    let printers = vec![network_config(&network, "pass-printer", &[], true, true)];
    let kitchen = TestAgent::start_with(Some(REFERENCE), &["kitchen-bk-01"], |config| {
        fast(config);
        config.printer_fallback_secs = 1;
        config.printers = printers;
    })
    .await;
    let base = kitchen.base.clone();
    drop(
        kitchen_testkit::http::SseReader::open(&format!("{base}/orders/events?station=fry"), None)
            .await,
    );
    wait_until("the fryer on the fallback printer", WAIT, || {
        let base = base.clone();
        async move {
            let status = get_json(&format!("{base}/api/status")).await;
            status["print_fallback"][0]["active"] == true
        }
    })
    .await;
    let order_id = unique("order");
    kitchen.publish(&order(&order_id)).await;
    wait_until("the ticket waiting for paper", WAIT, || {
        let base = base.clone();
        async move { printer_status(&base, "pass-printer").await["waiting"] == 1 }
    })
    .await;

    let mut tablet = Browser::launch(1280, 900).await;
    tablet.navigate(&format!("{base}/?station=fry")).await;
    tablet
        .wait_for_value(
            "the printer banner",
            WAIT,
            "(b => b.hidden ? null : b.textContent)(document.getElementById('printers'))",
            &serde_json::json!("Printer pass-printer: out of paper — 1 ticket waiting"),
        )
        .await;
    let notice = tablet
        .wait_for(
            "the fallback notice",
            WAIT,
            "(b => b.hidden ? null : b.textContent)(document.getElementById('printed'))",
        )
        .await;
    let notice = notice.as_str().expect("text");
    assert!(
        notice.contains("1 ticket went to printer pass-printer instead"),
        "{notice}"
    );
    tablet.tap("#printed button").await;
    tablet
        .wait_for(
            "the notice dismissed",
            WAIT,
            "document.getElementById('printed').hidden",
        )
        .await;

    network.paper.set_status(READY);
    wait_tickets(&network.paper, 1, "the fallback ticket").await;
    let ready = client()
        .post(format!("{base}/api/orders/{order_id}/ready"))
        .send()
        .await
        .expect("answers");
    assert_eq!(ready.status(), 200);
    wait_tickets(&network.paper, 2, "the bag ticket").await;
    tablet.navigate(&format!("{base}/?station=all")).await;
    let reprint = format!(r#"#ready [data-order-id="{order_id}"] button.reprint"#);
    tablet
        .wait_for(
            "the Reprint button",
            WAIT,
            &format!("!!document.querySelector('{reprint}')"),
        )
        .await;
    tablet.tap(&reprint).await;
    wait_tickets(&network.paper, 3, "the reprinted bag ticket").await;
    let again = decode(&network.paper.tickets()[2]);
    assert_eq!(texts(&again)[..3], [" REPRINT ", "READY", "#F00D1"]);
    tablet.close().await;
    kitchen.stop().await;
}
