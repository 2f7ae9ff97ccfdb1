//! The prep and transfer-unit reports through the agent's real HTTP path: a day of stock made
//! with real scans (prep labels, a station using one, product codes, transfer units at the back
//! door) and discards, both PDFs read back with poppler (`pdftotext -layout`, and `pdftoppm`
//! rendering a page; `scripts/services` installs poppler-utils), `/api/transfers`, and the prep
//! display's transfer-unit view following it live in Chromium.

mod common;

use std::{path::Path, process::Command, time::Duration};

use chrono::{Days, NaiveDate};
use common::TestAgent;
use edge_agent::{prep::local_time, scan::GS, scan::PrepLabel};
use kitchen_testkit::{
    browser,
    http::{client, get_json},
};
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

/// The SSCC with serial `n`.
fn sscc(n: u32) -> String {
    let body = format!("0376123450000000{n}");
    format!("{body}{}", check_digit(&body))
}

/// A transfer unit's label: `count` of the product `gtin`, lot, use-by.
fn transfer_label(sscc: &str, gtin: &str, count: u32, lot: &str, use_by: NaiveDate) -> String {
    format!(
        "]C100{sscc}02{gtin}{GS}37{count:02}{GS}10{lot}{GS}17{}",
        use_by.format("%y%m%d")
    )
}

async fn scan(base: &str, device: &str, role: &str, station: Option<&str>, code: &str) -> Value {
    let response = client()
        .post(format!("{base}/api/scans"))
        .json(&json!({"device": device, "role": role, "station": station, "code": code}))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 200, "{code:?} at {role}");
    response.json().await.expect("json")
}

async fn discard(base: &str, stock_id: &str) -> Value {
    let response = client()
        .post(format!("{base}/api/stock/{stock_id}/discard"))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 200, "discard {stock_id}");
    response.json().await.expect("lot")
}

/// `GET` a PDF: its bytes, after checking the headers.
async fn pdf(client: &reqwest::Client, url: &str, filename: &str) -> Vec<u8> {
    let response = client.get(url).send().await.expect("answers");
    assert_eq!(response.status(), 200, "{url}");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(header("content-type").as_deref(), Some("application/pdf"));
    assert_eq!(
        header("content-disposition"),
        Some(format!("inline; filename=\"{filename}\""))
    );
    response.bytes().await.expect("body").to_vec()
}

/// The PDF's text as `pdftotext -layout` reads it: its non-blank lines, each with its runs of
/// spaces (which depend on poppler's column guesses) made one.
fn text_of(pdf: &[u8], dir: &Path, name: &str) -> Vec<String> {
    let file = dir.join(format!("{name}.pdf"));
    std::fs::write(&file, pdf).expect("written");
    let output = Command::new("pdftotext")
        .args(["-layout", "-enc", "UTF-8"])
        .arg(&file)
        .arg("-")
        .output()
        .expect("pdftotext runs (scripts/services installs poppler-utils)");
    assert!(output.status.success(), "pdftotext: {output:?}");
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|line| !line.is_empty())
        .collect()
}

fn bad_request(status: u16, body: &Value) -> (u16, String) {
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

async fn status_and_json(url: &str) -> (u16, Value) {
    let response = client().get(url).send().await.expect("answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_of_stock_reads_back_exactly_from_both_pdfs_and_the_transfer_view() {
    let kitchen = TestAgent::start(Some(REFERENCE)).await;
    let base = kitchen.base.clone();
    let kid = kitchen.kitchen_id.clone();
    let (today, _) = edge_agent::prep::local_day(kitchen_daemon::clock::now_ms());
    let tomorrow = today + Days::new(1);
    let yesterday = today - Days::new(1);
    let label = |batch: &str, quantity| {
        PrepLabel {
            item_id: "slaw",
            batch_id: batch,
            prepared: today,
            use_by: tomorrow,
            quantity,
        }
        .element_string()
        .expect("label")
    };

    // The day: slaw A (2) and B (3) prepped, A used at the grill, B thrown away; two cases of
    // buns; four transfer units — pickles 4 (stays open), pickles 2 (thrown away), a product
    // that is no item's (no stock), pickles 5 (used up).
    scan(&base, "prep", "prep", None, &label("A", 2)).await;
    scan(&base, "prep", "prep", None, &label("B", 3)).await;
    scan(&base, "grill", "station", Some("grill"), &label("A", 2)).await;
    scan(&base, "prep", "prep", None, "4006381333931").await;
    scan(&base, "prep", "prep", None, "4006381333931").await;
    let pickles = "00012345678905";
    for (n, gtin, count, lot) in [
        (1, pickles, 4, "L77"),
        (2, pickles, 2, "L78"),
        (3, "09506000134352", 6, "X1"),
        (4, pickles, 5, "L79"),
    ] {
        let code = transfer_label(&sscc(n), gtin, count, lot, tomorrow);
        let body = scan(&base, "door", "receiving", None, &code).await;
        assert_eq!(body["action"], "receive", "{body}");
    }
    let transfers = get_json(&format!("{base}/api/transfers")).await;
    let stock_of = |sscc: String| {
        transfers["transfers"]
            .as_array()
            .expect("transfers")
            .iter()
            .find(|t| t["sscc"] == sscc.as_str())
            .and_then(|t| t["stock_id"].as_str())
            .map(str::to_owned)
    };
    let slaw_b = get_json(&format!("{base}/api/prep")).await["items"][0]["lots"]
        .as_array()
        .expect("slaw lots")
        .iter()
        .find(|l| l["lot"] == "B")
        .and_then(|l| l["stock_id"].as_str())
        .expect("slaw B on hand")
        .to_owned();
    let discarded_b = discard(&base, &slaw_b).await;
    let discarded_l78 = discard(&base, &stock_of(sscc(2)).expect("pickles L78's stock")).await;
    assert_eq!(stock_of(sscc(3)), None, "no item has GTIN 09506000134352");
    // No scan uses a whole transfer unit at a station yet: close it in the store, as the
    // writer would.
    {
        let mut store =
            edge_agent::store::Store::open(&kitchen.data_dir.join(edge_agent::STORE_FILE))
                .expect("store");
        let tx = store.transaction().expect("tx");
        let used = edge_agent::store::close_stock(
            &tx,
            &stock_of(sscc(4)).expect("pickles L79's stock"),
            "used",
            "test-manager / grill",
            kitchen_daemon::clock::now_ms(),
        )
        .expect("closed");
        assert!(used);
        tx.commit().expect("committed");
    }
    let time = |lot: &Value| local_time(lot["closed_at_ms"].as_i64().expect("closed"));

    // `/api/transfers`: newest first, each with where its stock is.
    let transfers = get_json(&format!("{base}/api/transfers")).await;
    assert_eq!(
        (&transfers["today"], &transfers["days"]),
        (&json!(today), &json!(7))
    );
    let units: Vec<Value> = transfers["transfers"]
        .as_array()
        .expect("transfers")
        .iter()
        .map(|t| {
            json!([
                t["sscc"],
                t["state"],
                t["item_id"],
                t["item_name"],
                t["gtin"],
                t["count"],
                t["lot"],
                t["use_by"],
                t["device"],
                t["received_on"]
            ])
        })
        .collect();
    let device = "test-manager / door";
    let d = json!(tomorrow);
    assert_eq!(
        units,
        [
            json!([
                sscc(4),
                "used",
                "pickles",
                "Pickles",
                pickles,
                5,
                "L79",
                d,
                device,
                today
            ]),
            json!([
                sscc(3),
                "unlinked",
                null,
                null,
                "09506000134352",
                6,
                "X1",
                d,
                device,
                today
            ]),
            json!([
                sscc(2),
                "discarded",
                "pickles",
                "Pickles",
                pickles,
                2,
                "L78",
                d,
                device,
                today
            ]),
            json!([
                sscc(1),
                "open",
                "pickles",
                "Pickles",
                pickles,
                4,
                "L77",
                d,
                device,
                today
            ]),
        ]
    );
    let received: Vec<String> = transfers["transfers"]
        .as_array()
        .expect("transfers")
        .iter()
        .rev()
        .map(|t| t["received_time"].as_str().expect("time").to_owned())
        .collect();

    // The prep report, fetched as a display (any paired device reads it).
    let (_, token) = edge_agent::pairing::pair(&kitchen.data_dir, "display", "Wall screen", None)
        .expect("paired");
    let wall = kitchen_testkit::http::builder()
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {token}").parse().expect("header"),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .expect("client");
    let dir = kitchen.data_dir.clone();
    let before = local_time(kitchen_daemon::clock::now_ms());
    let report = pdf(
        &wall,
        &format!("{base}/prep/report.pdf"),
        &format!("prep-{kid}-{today}.pdf"),
    )
    .await;
    let after = local_time(kitchen_daemon::clock::now_ms());
    let lines = text_of(&report, &dir, "report");
    let subtitle = |at: &str| format!("Kitchen {kid} - on hand and PAR at {at}");
    assert!(
        lines[1] == subtitle(&before) || lines[1] == subtitle(&after),
        "{lines:#?}"
    );
    assert_eq!(
        [&lines[..1], &lines[2..]].concat(),
        [
            format!("Prep report {today}"),
            "Stock by item".to_owned(),
            "Item Prepped Received Used Discarded On hand Expired PAR Below PAR".to_owned(),
            "Slaw (1/6 pan) 5 0 2 3 0 0 6 make 6".to_owned(),
            "Brioche buns 0 2 0 0 2 0 20 make 18".to_owned(),
            "Pickles 0 11 5 2 4 0 3".to_owned(),
            "Below PAR".to_owned(),
            "Item PAR On hand To make".to_owned(),
            "Slaw 6 0 6".to_owned(),
            "Brioche buns 20 2 18".to_owned(),
            "Discarded".to_owned(),
            "Time Item Qty Lot Use by By".to_owned(),
            format!("{} Slaw 3 B {tomorrow} test-manager", time(&discarded_b)),
            format!(
                "{} Pickles 2 L78 {tomorrow} test-manager",
                time(&discarded_l78)
            ),
            "Transfer units received: 4 (listed in the transfer-unit report).".to_owned(),
            format!("Kitchen {kid} - prep report {today} Page 1 of 1"),
        ]
    );

    // Rendered: a PNG of the page at 50 dpi, and the same page in grey levels has ink on it.
    let file = dir.join("report.pdf");
    let rendered = Command::new("pdftoppm")
        .args(["-png", "-r", "50", "-f", "1", "-l", "1"])
        .arg(&file)
        .arg(dir.join("page"))
        .status()
        .expect("pdftoppm runs");
    assert!(rendered.success());
    let png = std::fs::read(dir.join("page-1.png")).expect("a PNG came out");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let dimension = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().expect("4 bytes"));
    // A4 at 50 dpi: 595 × 842 pt → 413.2 × 584.7, which pdftoppm makes 414 × 585 pixels
    // (IHDR's width and height).
    assert_eq!(&png[12..16], b"IHDR");
    assert_eq!((dimension(16), dimension(20)), (414, 585));
    let rendered = Command::new("pdftoppm")
        .args(["-gray", "-r", "50", "-f", "1", "-l", "1"])
        .arg(&file)
        .arg(dir.join("grey"))
        .status()
        .expect("pdftoppm runs");
    assert!(rendered.success());
    let pgm = std::fs::read(dir.join("grey-1.pgm")).expect("a PGM came out");
    let header = b"P5\n414 585\n255\n";
    assert_eq!(&pgm[..header.len()], header);
    let pixels = &pgm[header.len()..];
    assert_eq!(pixels.len(), 414 * 585);
    let ink = pixels.iter().filter(|p| **p < 160).count();
    assert!(
        (1_000..pixels.len() / 10).contains(&ink),
        "{ink} dark pixels of {}",
        pixels.len()
    );

    // The transfer-unit report.
    let report = pdf(
        &wall,
        &format!("{base}/prep/transfers.pdf?day={today}"),
        &format!("transfers-{kid}-{today}.pdf"),
    )
    .await;
    assert_eq!(
        text_of(&report, &dir, "transfers"),
        [
            format!("Transfer units received {today}"),
            format!("Kitchen {kid} - 4 received: 1 open, 1 used up, 1 discarded, 1 without stock"),
            "Transfer units".to_owned(),
            "Received SSCC Item Count Lot Use by Device State".to_owned(),
            format!(
                "{} {} Pickles 4 L77 {tomorrow} {device} open",
                received[0],
                sscc(1)
            ),
            format!(
                "{} {} Pickles 2 L78 {tomorrow} {device} discarded",
                received[1],
                sscc(2)
            ),
            format!(
                "{} {} GTIN 09506000134352 6 X1 {tomorrow} {device} no stock",
                received[2],
                sscc(3)
            ),
            format!(
                "{} {} Pickles 5 L79 {tomorrow} {device} used up",
                received[3],
                sscc(4)
            ),
            format!("Kitchen {kid} - transfer units {today} Page 1 of 1"),
        ]
    );

    // Yesterday: nothing moved, nothing open at its end, so everything was below PAR.
    let report = pdf(
        &client(),
        &format!("{base}/prep/report.pdf?day={yesterday}"),
        &format!("prep-{kid}-{yesterday}.pdf"),
    )
    .await;
    assert_eq!(
        text_of(&report, &dir, "yesterday"),
        [
            format!("Prep report {yesterday}"),
            format!("Kitchen {kid} - on hand and PAR at the end of the day"),
            "Stock by item".to_owned(),
            "Item Prepped Received Used Discarded On hand Expired PAR Below PAR".to_owned(),
            "Slaw (1/6 pan) 0 0 0 0 0 0 6 make 6".to_owned(),
            "Brioche buns 0 0 0 0 0 0 20 make 20".to_owned(),
            "Pickles 0 0 0 0 0 0 3 make 3".to_owned(),
            "Below PAR".to_owned(),
            "Item PAR On hand To make".to_owned(),
            "Slaw 6 0 6".to_owned(),
            "Brioche buns 20 0 20".to_owned(),
            "Pickles 3 0 3".to_owned(),
            "Discarded".to_owned(),
            "Nothing was discarded.".to_owned(),
            "Transfer units received: 0 (listed in the transfer-unit report).".to_owned(),
            format!("Kitchen {kid} - prep report {yesterday} Page 1 of 1"),
        ]
    );
    let report = pdf(
        &client(),
        &format!("{base}/prep/transfers.pdf?day={yesterday}"),
        &format!("transfers-{kid}-{yesterday}.pdf"),
    )
    .await;
    assert_eq!(
        text_of(&report, &dir, "transfers-yesterday"),
        [
            format!("Transfer units received {yesterday}"),
            format!("Kitchen {kid} - 0 received: 0 open, 0 used up, 0 discarded, 0 without stock"),
            "Transfer units".to_owned(),
            "No transfer units were received.".to_owned(),
            format!("Kitchen {kid} - transfer units {yesterday} Page 1 of 1"),
        ]
    );

    // Refused, with the reason.
    for (path, expected) in [
        (
            "/prep/report.pdf?day=2026-13-01".to_owned(),
            "day \"2026-13-01\" is not a date (YYYY-MM-DD)".to_owned(),
        ),
        (
            format!("/prep/transfers.pdf?day={tomorrow}"),
            format!("day {tomorrow} is in the future (today is {today})"),
        ),
        (
            "/api/transfers?days=0".to_owned(),
            "days must be a whole number from 1 to 31, not \"0\"".to_owned(),
        ),
        (
            "/api/transfers?days=32".to_owned(),
            "days must be a whole number from 1 to 31, not \"32\"".to_owned(),
        ),
    ] {
        let (status, body) = status_and_json(&format!("{base}{path}")).await;
        assert_eq!(bad_request(status, &body), (400, expected), "{path}");
    }
    let (status, body) = status_and_json(&format!("{base}/prep/report.pdf?date={today}")).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("unknown field `date`")),
        "{body}"
    );
    let one_day = get_json(&format!("{base}/api/transfers?days=1")).await;
    assert_eq!(one_day["transfers"].as_array().map(Vec::len), Some(4));

    // The prep display's transfer-unit view, live.
    let mut tablet = browser::Browser::launch(1280, 900).await;
    tablet.navigate(&format!("{base}/prep")).await;
    let wait = Duration::from_secs(10);
    let group = |id: &str| {
        format!("[...document.querySelectorAll('#{id} tr[data-sscc]')].map(r => r.dataset.sscc)")
    };
    tablet
        .wait_for_value(
            "today's transfer units",
            wait,
            &group("tu-today"),
            &json!([sscc(4), sscc(3), sscc(2), sscc(1)]),
        )
        .await;
    tablet
        .wait_for_value("the open ones", wait, &group("tu-open"), &json!([sscc(1)]))
        .await;
    tablet
        .wait_for_value(
            "the used-up ones",
            wait,
            &group("tu-used"),
            &json!([sscc(4), sscc(2)]),
        )
        .await;
    let row = tablet
        .eval(&format!(
            "[...document.querySelectorAll('#tu-today tr[data-sscc=\"{}\"] td')].map(c => c.textContent)",
            sscc(3)
        ))
        .await;
    assert_eq!(
        row,
        json!([
            sscc(3),
            "GTIN 09506000134352 (no stock)",
            "6",
            "X1",
            tomorrow,
            received[2]
        ])
    );
    assert_eq!(
        tablet
            .eval("[...document.querySelectorAll('header a[href$=\".pdf\"]')].map(a => a.textContent + ' ' + a.getAttribute('href'))")
            .await,
        json!([
            "Prep report (PDF) /prep/report.pdf",
            "Transfer units (PDF) /prep/transfers.pdf"
        ])
    );
    tablet
        .wait_for(
            "the live stream",
            wait,
            "document.querySelector('#link').className.includes('ok')",
        )
        .await;
    // A fifth unit comes in, then the first is thrown away: the view follows the stream.
    scan(
        &base,
        "door",
        "receiving",
        None,
        &transfer_label(&sscc(5), pickles, 3, "L80", tomorrow),
    )
    .await;
    tablet
        .wait_for_value(
            "the new unit open",
            wait,
            &group("tu-open"),
            &json!([sscc(5), sscc(1)]),
        )
        .await;
    discard(&base, &stock_of(sscc(1)).expect("pickles L77's stock")).await;
    tablet
        .wait_for_value(
            "L77 gone from open",
            wait,
            &group("tu-open"),
            &json!([sscc(5)]),
        )
        .await;
    tablet
        .wait_for_value(
            "L77 used up",
            wait,
            &group("tu-used"),
            &json!([sscc(4), sscc(2), sscc(1)]),
        )
        .await;
    tablet.close().await;
    kitchen.stop().await;
}
