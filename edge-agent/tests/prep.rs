//! Prep inventory through the agent's real HTTP path: prep, station and receiving scans move
//! stock, `/api/prep` says PAR − on hand after each, labels printed by the agent scan back in,
//! and every scan is on the event stream in order.

use kitchen_testkit::browser;
mod common;

use chrono::{Days, NaiveDate};
use common::TestAgent;
use edge_agent::scan::{GS, PrepLabel};
use kitchen_testkit::http::{SseReader, get_json};
use serde_json::{Value, json};

const REFERENCE: &str = r#"
[[stations]]
id = "grill"
name = "Grill"

[[stations]]
id = "prep"
name = "Prep"

[[items]]
id = "smash"
name = "Double Smash Burger"
station = "grill"
prep_seconds = 420
match = ["sku-smash-double"]

[[items]]
id = "slaw"
name = "Slaw"
station = "prep"
prep_seconds = 0
par = 6
unit = "1/6 pan"
shelf_life_days = 2

[[items]]
id = "buns"
name = "Brioche buns"
station = "prep"
prep_seconds = 0
match = ["4006381333931"]
par = 20

[[items]]
id = "pickles"
name = "Pickles"
station = "prep"
prep_seconds = 0
match = ["012345678905"]
par = 3
"#;

/// A scripted scan: code, role, station, accepted, action, reason, and the on-hand counts of
/// slaw, buns and pickles after it.
type Step<'a> = (
    String,
    &'a str,
    Option<&'a str>,
    bool,
    &'a str,
    String,
    [u64; 3],
);

/// The GS1 check digit of `digits` (weights 3, 1, … from the right).
fn check_digit(digits: &str) -> char {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    char::from(b'0' + ((10 - sum % 10) % 10) as u8)
}

fn yymmdd(day: NaiveDate) -> String {
    day.format("%y%m%d").to_string()
}

async fn scan(base: &str, role: &str, station: Option<&str>, code: &str) -> (u16, Value) {
    let response = kitchen_testkit::http::client()
        .post(format!("{base}/api/scans"))
        .json(&json!({"device": format!("{role}-scanner"), "role": role, "station": station, "code": code}))
        .send()
        .await
        .expect("answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

/// (item, PAR, on hand, to make, expired) for every item in `/api/prep`, and its prep list.
async fn prep(base: &str) -> (Vec<(String, u64, u64, u64, u64)>, Vec<(String, u64)>) {
    let view = get_json(&format!("{base}/api/prep")).await;
    let items = view["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["item_id"].as_str().unwrap_or_default().to_owned(),
                i["par"].as_u64().unwrap_or(0),
                i["on_hand"].as_u64().unwrap_or(0),
                i["to_make"].as_u64().unwrap_or(0),
                i["expired"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let list = view["prep_list"]
        .as_array()
        .expect("prep list")
        .iter()
        .map(|e| {
            (
                e["item_id"].as_str().unwrap_or_default().to_owned(),
                e["to_make"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    (items, list)
}

/// Checks `/api/prep` against the on-hand counts of slaw, buns and pickles (PAR 6, 20, 3).
async fn expect_on_hand(base: &str, slaw: u64, buns: u64, pickles: u64, step: &str) {
    let (items, list) = prep(base).await;
    let expected: Vec<(String, u64, u64, u64, u64)> = [
        ("slaw", 6_u64, slaw),
        ("buns", 20, buns),
        ("pickles", 3, pickles),
    ]
    .into_iter()
    .map(|(id, par, on_hand)| (id.to_owned(), par, on_hand, par.saturating_sub(on_hand), 0))
    .collect();
    assert_eq!(items, expected, "{step}");
    let expected_list: Vec<(String, u64)> = expected
        .iter()
        .filter(|(_, _, _, to_make, _)| *to_make > 0)
        .map(|(id, _, _, to_make, _)| (id.clone(), *to_make))
        .collect();
    assert_eq!(list, expected_list, "{step}: prep list = PAR − on hand");
}

#[tokio::test]
async fn prep_list_follows_par_minus_on_hand_through_a_scripted_sequence_of_scans() {
    let kitchen = TestAgent::start(Some(REFERENCE)).await;
    let base = kitchen.base.clone();
    let mut events = SseReader::open(&format!("{base}/orders/events"), None).await;
    let (today, _) = edge_agent::prep::local_day(kitchen_daemon::clock::now_ms());
    let tomorrow = today + Days::new(1);
    let label = |item: &str, batch: &str, prepared: NaiveDate, use_by: NaiveDate, quantity| {
        PrepLabel {
            item_id: item,
            batch_id: batch,
            prepared,
            use_by,
            quantity,
        }
        .element_string()
        .expect("label")
    };
    expect_on_hand(&base, 0, 0, 0, "nothing yet").await;

    // (code, role, station, accepted, action, reason)
    let sscc_body = "03761234500000001";
    let sscc = format!("{sscc_body}{}", check_digit(sscc_body));
    let transfer = format!(
        "]C100{sscc}0200012345678905{GS}3704{GS}10L77{GS}17{}",
        yymmdd(tomorrow)
    );
    let steps: Vec<Step> = vec![
        (
            label("slaw", "A", today, tomorrow, 2),
            "prep",
            None,
            true,
            "stock",
            "".into(),
            [2, 0, 0],
        ),
        (
            label("slaw", "A", today, tomorrow, 2),
            "prep",
            None,
            false,
            "none",
            "this label is already on hand".into(),
            [2, 0, 0],
        ),
        (
            label("slaw", "B", today, tomorrow, 3),
            "prep",
            None,
            true,
            "stock",
            "".into(),
            [5, 0, 0],
        ),
        // A retail product code: one unit each scan.
        (
            "4006381333931".into(),
            "prep",
            None,
            true,
            "stock",
            "".into(),
            [5, 1, 0],
        ),
        (
            "]E04006381333931\r".into(),
            "prep",
            None,
            true,
            "stock",
            "".into(),
            [5, 2, 0],
        ),
        // A GS1 case label: its count (37), lot and use-by.
        (
            format!("(01)04006381333931(37)12(10)LOT9(17){}", yymmdd(tomorrow)),
            "prep",
            None,
            true,
            "stock",
            "".into(),
            [5, 14, 0],
        ),
        (
            label("slaw", "OLD", today - Days::new(3), today - Days::new(1), 1),
            "prep",
            None,
            false,
            "none",
            format!("expired: use by {}; discard it", today - Days::new(1)),
            [5, 14, 0],
        ),
        (
            label("mayo", "M1", today, tomorrow, 1),
            "prep",
            None,
            false,
            "none",
            "unknown item \"mayo\"".into(),
            [5, 14, 0],
        ),
        (
            "96385074".into(),
            "prep",
            None,
            false,
            "none",
            "no item has GTIN 00000096385074 in its match list".into(),
            [5, 14, 0],
        ),
        (
            "ORDER:o1".into(),
            "prep",
            None,
            false,
            "none",
            "a prep scanner takes prep labels and product codes; this is not one".into(),
            [5, 14, 0],
        ),
        // The grill takes slaw batch A out of stock; a second scan of it is refused.
        (
            label("slaw", "A", today, tomorrow, 2),
            "station",
            Some("grill"),
            true,
            "use",
            "".into(),
            [3, 14, 0],
        ),
        (
            label("slaw", "A", today, tomorrow, 2),
            "station",
            Some("grill"),
            false,
            "none",
            "this label was already used".into(),
            [3, 14, 0],
        ),
        (
            label("slaw", "C", today, tomorrow, 1),
            "station",
            Some("grill"),
            false,
            "none",
            "this label was never scanned in at prep".into(),
            [3, 14, 0],
        ),
        // A transfer unit from the commissary: four pickles (the GTIN in (02)).
        (
            transfer.clone(),
            "receiving",
            None,
            true,
            "receive",
            "".into(),
            [3, 14, 4],
        ),
        (
            transfer.clone(),
            "receiving",
            None,
            false,
            "none",
            format!("transfer unit {sscc} was already received"),
            [3, 14, 4],
        ),
        (
            label("slaw", "D", today, tomorrow, 1),
            "receiving",
            None,
            false,
            "none",
            "a receiving scanner takes transfer-unit (SSCC) labels; this is not one".into(),
            [3, 14, 4],
        ),
    ];
    let mut expected_events = Vec::new();
    for (code, role, station, accepted, action, reason, [slaw, buns, pickles]) in &steps {
        let (status, body) = scan(&base, role, *station, code).await;
        assert_eq!(
            (
                status,
                &body["accepted"],
                body["action"].as_str(),
                body["reason"].as_str()
            ),
            (
                if *accepted { 200 } else { 422 },
                &json!(accepted),
                Some(*action),
                Some(reason.as_str())
            ),
            "{code:?} at {role}: {body}"
        );
        expect_on_hand(&base, *slaw, *buns, *pickles, code).await;
        let kind = if *accepted {
            "scan.recorded"
        } else {
            "scan.rejected"
        };
        expected_events.push((kind.to_owned(), code.clone()));
        if *accepted {
            expected_events.push(("stock.changed".to_owned(), code.clone()));
        }
    }
    // The stream has every scan in order, each stock move right after its scan.
    let mut seen = Vec::new();
    let mut last_code = String::new();
    while seen.len() < expected_events.len() {
        let (_, kind, data) = events.next().await;
        if kind.starts_with("scan.") {
            last_code = data["code"].as_str().unwrap_or_default().to_owned();
            seen.push((kind, last_code.clone()));
        } else if kind == "stock.changed" {
            seen.push((kind, last_code.clone()));
        }
    }
    assert_eq!(seen, expected_events);

    // Stock detail: the transfer's lot and use-by, soonest use-by first within an item.
    let view = get_json(&format!("{base}/api/prep")).await;
    let pickles = &view["items"][2]["lots"][0];
    assert_eq!(
        (
            &pickles["source"],
            &pickles["lot"],
            &pickles["use_by"],
            &pickles["quantity"]
        ),
        (
            &json!("transfer"),
            &json!("L77"),
            &json!(tomorrow.to_string()),
            &json!(4)
        )
    );

    // Discarding slaw batch B: gone from on hand; twice is a conflict; unknown is not found.
    let batch_b = view["items"][0]["lots"]
        .as_array()
        .expect("lots")
        .iter()
        .find(|l| l["lot"] == "B")
        .and_then(|l| l["stock_id"].as_str())
        .expect("batch B on hand")
        .to_owned();
    let client = kitchen_testkit::http::client();
    let discard = |id: String| {
        let request = client.post(format!("{base}/api/stock/{id}/discard"));
        async move { request.send().await.expect("answers").status().as_u16() }
    };
    assert_eq!(discard(batch_b.clone()).await, 200);
    expect_on_hand(&base, 0, 14, 4, "slaw B discarded").await;
    assert_eq!(discard(batch_b).await, 409);
    assert_eq!(discard("nope".into()).await, 404);
    kitchen.stop().await;
}

#[tokio::test]
async fn printed_prep_labels_scan_back_in_and_zpl_names_the_same_data() {
    let kitchen = TestAgent::start(Some(REFERENCE)).await;
    let base = kitchen.base.clone();
    let page = kitchen_testkit::http::get(format!(
        "{base}/labels/prep?item=slaw&quantity=2&copies=3&batch=T1"
    ))
    .await
    .expect("answers");
    assert_eq!(page.status(), 200);
    let page = page.text().await.expect("html");
    let codes: Vec<String> = page
        .split("data-code=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(|code| code.replace("\\x1d", &GS.to_string()))
        .collect();
    let (today, _) = edge_agent::prep::local_day(kitchen_daemon::clock::now_ms());
    let use_by = today + Days::new(2);
    let expected: Vec<String> = (1..=3)
        .map(|n| {
            PrepLabel {
                item_id: "slaw",
                batch_id: &format!("T1-{n}"),
                prepared: today,
                use_by,
                quantity: 2,
            }
            .element_string()
            .expect("label")
        })
        .collect();
    assert_eq!(codes, expected, "three labels, shelf life two days");
    assert_eq!(page.matches("<svg").count(), 3);
    for code in &codes {
        let (status, body) = scan(&base, "prep", None, code).await;
        assert_eq!(status, 200, "{body}");
    }
    expect_on_hand(&base, 6, 0, 0, "three labels of two").await;

    let zpl =
        kitchen_testkit::http::get(format!("{base}/labels/prep?item=slaw&batch=Z9&format=zpl"))
            .await
            .expect("answers")
            .text()
            .await
            .expect("zpl");
    assert!(zpl.starts_with("^XA\n") && zpl.ends_with("^XZ\n"), "{zpl}");
    let field = format!(
        "^FD>;>811{}17{}91>6slaw>810Z9>8371^FS",
        yymmdd(today),
        yymmdd(use_by)
    );
    assert!(zpl.contains(&field), "{zpl}\nmissing {field}");

    for (query, status) in [
        ("item=mayo", 404),
        ("item=slaw&copies=0", 400),
        ("item=slaw&copies=51", 400),
        ("item=slaw&batch=a%20b", 400),
        ("item=slaw&format=gif", 400),
        ("item=slaw&use_by=2001-01-01", 400),
        // Used to panic on the date addition (and, in release, abort the agent).
        ("item=slaw&prepared=%2B262142-12-31", 400),
    ] {
        let response = kitchen_testkit::http::get(format!("{base}/labels/prep?{query}"))
            .await
            .expect("answers");
        assert_eq!(response.status().as_u16(), status, "{query}");
    }
    let healthz = kitchen_testkit::http::get(format!("{base}/healthz"))
        .await
        .expect("still answers");
    assert_eq!(healthz.status().as_u16(), 200);
    kitchen.stop().await;
}

/// The agent's printed label, rendered by Chromium and read by an independent decoder (zbar,
/// `scripts/services` installs `zbar-tools`), is exactly the element string the agent meant,
/// and scanning it in adds the stock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_printed_prep_label_reads_back_with_an_independent_decoder() {
    let kitchen = TestAgent::start(Some(REFERENCE)).await;
    let mut tablet = browser::Browser::launch(500, 420).await;
    tablet.scale(500, 420, 3.0).await;
    tablet
        .navigate(&format!(
            "{}/labels/prep?item=slaw&quantity=3&batch=P-7",
            kitchen.base
        ))
        .await;
    let png = kitchen.data_dir.join("label.png");
    tablet.screenshot(&png).await;
    tablet.close().await;
    let decoded = std::process::Command::new("zbarimg")
        .args(["--raw", "-q", "-Sdisable", "-Scode128.enable"])
        .arg(&png)
        .output()
        .expect("zbarimg runs (scripts/services installs zbar-tools)");
    let decoded = String::from_utf8(decoded.stdout).expect("text");
    let (today, _) = edge_agent::prep::local_day(kitchen_daemon::clock::now_ms());
    let expected = PrepLabel {
        item_id: "slaw",
        batch_id: "P-7",
        prepared: today,
        use_by: today + Days::new(2),
        quantity: 3,
    }
    .element_string()
    .expect("label");
    assert_eq!(decoded.trim_end_matches('\n'), expected);
    let (status, body) = scan(&kitchen.base, "prep", None, decoded.trim_end_matches('\n')).await;
    assert_eq!((status, &body["action"]), (200, &json!("stock")), "{body}");
    expect_on_hand(&kitchen.base, 3, 0, 0, "the printed label scanned in").await;
    kitchen.stop().await;
}

/// The same labels as PDF (`format=pdf`: one 4 × 2 inch page each), rendered by poppler and
/// read by zbar: each barcode is exactly its element string, the text is the label's, and
/// scanning them in adds the stock.
#[tokio::test]
async fn prep_labels_as_pdf_read_back_with_an_independent_decoder() {
    let kitchen = TestAgent::start(Some(REFERENCE)).await;
    let base = kitchen.base.clone();
    let response = kitchen_testkit::http::get(format!(
        "{base}/labels/prep?item=slaw&quantity=2&copies=2&batch=Q7&format=pdf"
    ))
    .await
    .expect("answers");
    assert_eq!(response.status(), 200);
    let header = |name: &str| response.headers()[name].to_str().expect("ascii").to_owned();
    assert_eq!(
        (header("content-type"), header("content-disposition")),
        (
            "application/pdf".to_owned(),
            "inline; filename=\"labels-slaw.pdf\"".to_owned()
        )
    );
    let file = kitchen.data_dir.join("labels.pdf");
    std::fs::write(&file, response.bytes().await.expect("pdf")).expect("written");
    let (today, _) = edge_agent::prep::local_day(kitchen_daemon::clock::now_ms());
    let use_by = today + Days::new(2);
    let label = |batch: &'static str| PrepLabel {
        item_id: "slaw",
        batch_id: batch,
        prepared: today,
        use_by,
        quantity: 2,
    };
    let text = std::process::Command::new("pdftotext")
        .args(["-layout", "-enc", "UTF-8"])
        .arg(&file)
        .arg("-")
        .output()
        .expect("pdftotext runs (scripts/services installs poppler-utils)");
    let lines: Vec<String> = String::from_utf8(text.stdout)
        .expect("utf-8")
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|line| !line.is_empty())
        .collect();
    let expected: Vec<String> = ["Q7-1", "Q7-2"]
        .iter()
        .flat_map(|batch| {
            [
                "Slaw".to_owned(),
                format!("Prepared {today} USE BY {use_by}"),
                format!("Qty 2 × 1/6 pan · Batch {batch}"),
                label(batch).human().expect("human"),
            ]
        })
        .collect();
    assert_eq!(lines, expected);
    // 4 × 2 inches at 300 dpi, bars without anti-aliasing, one PNG a page.
    let rendered = std::process::Command::new("pdftoppm")
        .args(["-png", "-r", "300", "-aaVector", "no"])
        .arg(&file)
        .arg(kitchen.data_dir.join("label"))
        .status()
        .expect("pdftoppm runs");
    assert!(rendered.success());
    let mut decoded = Vec::new();
    for page in 1..=2 {
        let png = kitchen.data_dir.join(format!("label-{page}.png"));
        let bytes = std::fs::read(&png).expect("a PNG a page");
        assert_eq!(
            &bytes[16..24],
            [0, 0, 4, 176, 0, 0, 2, 88],
            "1200 × 600 pixels"
        );
        let output = std::process::Command::new("zbarimg")
            .args(["--raw", "-q", "-Sdisable", "-Scode128.enable"])
            .arg(&png)
            .output()
            .expect("zbarimg runs (scripts/services installs zbar-tools)");
        decoded.push(
            String::from_utf8(output.stdout)
                .expect("text")
                .trim_end_matches('\n')
                .to_owned(),
        );
    }
    let codes: Vec<String> = ["Q7-1", "Q7-2"]
        .iter()
        .map(|batch| label(batch).element_string().expect("label"))
        .collect();
    assert_eq!(decoded, codes);
    for code in &codes {
        let (status, body) = scan(&base, "prep", None, code).await;
        assert_eq!(status, 200, "{body}");
    }
    expect_on_hand(&base, 4, 0, 0, "two PDF labels of two").await;
    kitchen.stop().await;
}

/// The prep display follows stock live over SSE, alerts on a refused prep scan, and its
/// Discard button throws expired stock away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prep_display_follows_scans_live_and_alerts_on_a_refused_one() {
    let kitchen = TestAgent::start(Some(REFERENCE)).await;
    let base = kitchen.base.clone();
    let mut tablet = browser::Browser::launch(1280, 800).await;
    tablet.navigate(&format!("{base}/prep")).await;
    let wait = std::time::Duration::from_secs(10);
    let list = "[...document.querySelectorAll('#list .row')].map(r => \
                r.querySelector('.qty').textContent + ' ' + r.querySelector('.name').textContent)";
    tablet
        .wait_for_value(
            "the prep list",
            wait,
            list,
            &json!(["6 Slaw", "20 Brioche buns", "3 Pickles"]),
        )
        .await;
    tablet
        .wait_for_value(
            "the paired-as line",
            wait,
            "document.querySelector('#paired-as').textContent",
            &json!("test-manager · manager"),
        )
        .await;
    tablet
        .wait_for(
            "the live stream",
            wait,
            "document.querySelector('#link').className.includes('ok')",
        )
        .await;
    let (today, _) = edge_agent::prep::local_day(kitchen_daemon::clock::now_ms());
    let slaw = PrepLabel {
        item_id: "slaw",
        batch_id: "S1",
        prepared: today,
        use_by: today + Days::new(1),
        quantity: 4,
    }
    .element_string()
    .expect("label");
    assert_eq!(scan(&base, "prep", None, &slaw).await.0, 200);
    tablet
        .wait_for_value(
            "slaw to drop to 2",
            wait,
            list,
            &json!(["2 Slaw", "20 Brioche buns", "3 Pickles"]),
        )
        .await;
    let expired = PrepLabel {
        item_id: "slaw",
        batch_id: "S0",
        prepared: today - Days::new(2),
        use_by: today - Days::new(1),
        quantity: 1,
    }
    .element_string()
    .expect("label");
    assert_eq!(scan(&base, "prep", None, &expired).await.0, 422);
    let alert = tablet
        .wait_for(
            "the alert",
            wait,
            "document.querySelector('#alerts .alert span')?.textContent",
        )
        .await;
    assert_eq!(
        alert,
        json!(format!(
            "Scan refused (test-manager / prep-scanner): expired: use by {}; discard it",
            today - Days::new(1)
        ))
    );
    tablet.tap("#alerts .alert button").await;
    // Stock that went past its use-by while on hand (put in the store directly: the clock
    // cannot be moved) shows under Expired, and Discard throws it away.
    let mut store = edge_agent::store::Store::open(&kitchen.data_dir.join(edge_agent::STORE_FILE))
        .expect("store");
    let tx = store.transaction().expect("tx");
    let lot = edge_agent::record::Lot {
        stock_id: "old-slaw".into(),
        item_id: "slaw".into(),
        source: "prep".into(),
        label: Some("prep:slaw/OLD".into()),
        quantity: 2,
        lot: Some("OLD".into()),
        prepared_on: Some(today - Days::new(3)),
        use_by: Some(today - Days::new(1)),
        added_at_ms: 0,
        added_by: "test-manager / prep-scanner".into(),
        closed_at_ms: None,
        closed_as: None,
        closed_by: None,
    };
    edge_agent::store::insert_stock(&tx, &lot, None).expect("inserted");
    tx.commit().expect("committed");
    drop(store);
    tablet.navigate(&format!("{base}/prep")).await;
    let expired_rows =
        "[...document.querySelectorAll('#expired .row .name')].map(n => n.textContent)";
    tablet
        .wait_for_value("the expired slaw", wait, expired_rows, &json!(["Slaw"]))
        .await;
    tablet.tap("[data-discard='old-slaw']").await;
    tablet
        .wait_for_value("the expired slaw to go", wait, expired_rows, &json!([]))
        .await;
    let view = get_json(&format!("{base}/api/prep")).await;
    assert_eq!(view["expired"], json!([]));
    tablet
        .wait_for_value(
            "the alert to go",
            wait,
            "document.querySelectorAll('#alerts .alert').length",
            &json!(0),
        )
        .await;
    tablet.close().await;
    kitchen.stop().await;
}

/// `cargo test -p edge-agent --test prep -- --ignored screenshot` regenerates
/// docs/images/prep-display.png from the example reference data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "makes docs/images/prep-display.png"]
async fn screenshot_of_the_prep_display() {
    let kitchen = TestAgent::start(Some(include_str!("../reference.example.toml"))).await;
    let base = kitchen.base.clone();
    let (today, _) = edge_agent::prep::local_day(kitchen_daemon::clock::now_ms());
    for code in [
        PrepLabel {
            item_id: "smash-patty",
            batch_id: "A1",
            prepared: today,
            use_by: today + Days::new(1),
            quantity: 1,
        }
        .element_string()
        .expect("label"),
        PrepLabel {
            item_id: "pho-broth",
            batch_id: "B1",
            prepared: today,
            use_by: today + Days::new(3),
            quantity: 1,
        }
        .element_string()
        .expect("label"),
        "4006381333931".to_owned(),
        "4006381333931".to_owned(),
        PrepLabel {
            item_id: "pho-broth",
            batch_id: "B0",
            prepared: today - Days::new(4),
            use_by: today - Days::new(1),
            quantity: 1,
        }
        .element_string()
        .expect("label"),
    ] {
        scan(&base, "prep", None, &code).await;
    }
    // A case of buns from the commissary, for the transfer-unit view.
    let sscc_body = "03761234500000042";
    let sscc = format!("{sscc_body}{}", check_digit(sscc_body));
    let transfer = format!(
        "]C100{sscc}0204006381333931{GS}3706{GS}10C42{GS}17{}",
        yymmdd(today + Days::new(2))
    );
    scan(&base, "receiving", None, &transfer).await;
    let mut tablet = browser::Browser::launch(1280, 720).await;
    tablet.navigate(&format!("{base}/prep")).await;
    let wait = std::time::Duration::from_secs(10);
    tablet
        .wait_for(
            "the prep list",
            wait,
            "document.querySelectorAll('#list .row').length",
        )
        .await;
    let expired = PrepLabel {
        item_id: "smash-patty",
        batch_id: "Z0",
        prepared: today - Days::new(2),
        use_by: today - Days::new(1),
        quantity: 1,
    }
    .element_string()
    .expect("label");
    scan(&base, "prep", None, &expired).await;
    tablet
        .wait_for(
            "the alert",
            wait,
            "document.querySelector('#alerts .alert')",
        )
        .await;
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/images/prep-display.png");
    tablet.screenshot(&path).await;
    tablet.close().await;
    kitchen.stop().await;
}

/// A box whose clock systemd-timesyncd has not synchronised yet (no battery-backed clock: it
/// booted with the last time it saved): `/api/status` says so, new stock with a use-by date is
/// refused with the reason, stock without one is taken, a use at a station is recorded with its
/// use-by unchecked; once synchronised (the next housekeeping tick) the same label goes in.
#[tokio::test]
async fn an_unsynchronised_clock_refuses_new_stock_with_a_use_by() {
    let timesync = kitchen_testkit::dir::TempDir::new("timesync");
    let dir = timesync.path().to_owned();
    let kitchen = TestAgent::start_with(Some(REFERENCE), &["kitchen-bk-01"], move |config| {
        config.timesync_dir = dir;
    })
    .await;
    let base = kitchen.base.clone();
    let clock = || async { get_json(&format!("{base}/api/status")).await["clock"].clone() };
    assert_eq!(clock().await, json!({"synchronised": false}));
    assert_eq!(
        get_json(&format!("{base}/api/prep")).await["clock_synchronised"],
        json!(false)
    );
    // Both displays say so.
    let mut tablet = browser::Browser::launch(1280, 800).await;
    let wait = std::time::Duration::from_secs(10);
    for page in ["/", "/prep"] {
        tablet.navigate(&format!("{base}{page}")).await;
        tablet
            .wait_for(
                &format!("the clock warning on {page}"),
                wait,
                "!document.getElementById('clock').hidden && document.getElementById('clock')\
                 .textContent.startsWith(\"The kitchen box's clock is not synchronised\")",
            )
            .await;
    }
    let (today, _) = edge_agent::prep::local_day(kitchen_daemon::clock::now_ms());
    let tomorrow = today + Days::new(1);
    let label = |batch: &str| {
        PrepLabel {
            item_id: "slaw",
            batch_id: batch,
            prepared: today,
            use_by: tomorrow,
            quantity: 2,
        }
        .element_string()
        .expect("label")
    };
    let outcome = |body: &Value| {
        (
            body["accepted"].clone(),
            body["action"].clone(),
            body["reason"].clone(),
        )
    };

    let (status, body) = scan(&base, "prep", None, &label("A")).await;
    assert_eq!(status, 422);
    assert_eq!(
        outcome(&body),
        (
            json!(false),
            json!("none"),
            json!(format!(
                "the kitchen box's clock is not synchronised, so use by {tomorrow} cannot be \
                 checked; scan it again once the clock is set"
            ))
        )
    );
    let (status, body) = scan(&base, "prep", None, "4006381333931").await;
    assert_eq!(
        (status, outcome(&body)),
        (200, (json!(true), json!("stock"), json!("")))
    );

    std::fs::write(timesync.path().join("synchronized"), "").expect("timesyncd's flag");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while clock().await != json!({"synchronised": true}) {
        assert!(
            std::time::Instant::now() < deadline,
            "the clock never synchronised"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (status, body) = scan(&base, "prep", None, &label("A")).await;
    assert_eq!(
        (status, outcome(&body)),
        (200, (json!(true), json!("stock"), json!("")))
    );
    tablet
        .wait_for(
            "the clock warning gone from /prep",
            wait,
            "document.getElementById('clock').hidden",
        )
        .await;
    tablet.close().await;
    expect_on_hand(&base, 2, 1, 0, "slaw in once the clock is good").await;

    // The clock lost again (timesyncd restarted): a cook using the slaw is not stopped.
    std::fs::remove_file(timesync.path().join("synchronized")).expect("flag removed");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while clock().await != json!({"synchronised": false}) {
        assert!(
            std::time::Instant::now() < deadline,
            "the clock never went back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (status, body) = scan(&base, "station", Some("prep"), &label("A")).await;
    assert_eq!(
        (status, outcome(&body)),
        (
            200,
            (
                json!(true),
                json!("use"),
                json!("use-by not checked: the kitchen box's clock is not synchronised")
            )
        )
    );
    kitchen.stop().await;
}
