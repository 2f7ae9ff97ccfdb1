//! The station display driven without touch, in headless Chromium with real key events
//! (`Input.dispatchKeyEvent`): a bump bar's digits and a keyboard's arrows select, bump, recall,
//! page, hide the all-day panel and run the top batch; a keyboard-wedge scanner's burst is a
//! scan and slow typing is not; the timers take the station's colours from the reference data.

mod common;

use std::time::Duration;

use common::TestAgent;
use kitchen_testkit::{
    browser::Browser,
    events::{line, new_order},
    http::get_json,
};
use serde_json::{Value, json};

const REFERENCE: &str = r#"
[floor]
scan_gap_ms = 80

[[stations]]
id = "grill"
name = "Grill"

[[stations]]
id = "fry"
name = "Fryer"
amber_minutes = 10
red_minutes = 3
keys = { recall = ["Backspace", "r"] }

[[items]]
id = "smash"
name = "Double Smash Burger"
station = "grill"
prep_seconds = 420
match = ["Double Smash Burger"]

[[items]]
id = "fries"
name = "Fries"
station = "fry"
prep_seconds = 180
match = ["Fries"]
"#;

const WAIT: Duration = Duration::from_secs(20);

fn now_ms() -> i64 {
    kitchen_daemon::clock::now_ms()
}

/// An order of a burger and two fries, received `ago_ms` ago, promised in `due_in_minutes`.
fn order(id: &str, sequence: u64, ago_ms: i64, due_in_minutes: i64) -> kitchen_proto::OrderEvent {
    new_order("kitchen-bk-01", id)
        .friendly_id(id.to_uppercase())
        .sequence(sequence)
        .at(now_ms() - ago_ms)
        .pickup_at(now_ms() + due_in_minutes * 60_000)
        .item(line("Double Smash Burger", 1, vec![]))
        .item(line("Fries", 2, vec![]))
        .build()
}

async fn bumped_at(base: &str, id: &str) -> Value {
    let orders = get_json(&format!("{base}/api/orders?state=open")).await;
    orders["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .find(|o| o["order_id"] == id)
        .map(|o| o["bumped_at"].clone())
        .unwrap_or(Value::Null)
}

async fn wait_bumped(base: &str, id: &str, expected: Value) {
    common::wait_until(&format!("{id} bumped at {expected}"), WAIT, || {
        let expected = expected.clone();
        async move { bumped_at(base, id).await == expected }
    })
    .await;
}

const SELECTED: &str =
    "(document.querySelector('.ticket.selected') || {dataset: {}}).dataset.orderId || null";

async fn expect_selected(tablet: &mut Browser, id: &str) {
    tablet
        .wait_for_value(&format!("{id} selected"), WAIT, SELECTED, &json!(id))
        .await;
}

/// Waits until the tablet knows its last bump (the Recall button is live), so a recall key
/// has something to undo.
async fn expect_recallable(tablet: &mut Browser) {
    tablet
        .wait_for(
            "Recall enabled",
            WAIT,
            "!document.querySelector('#recall').disabled",
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bump_bar_and_a_keyboard_drive_the_station_and_a_wedge_scan_is_a_scan() {
    let kitchen = TestAgent::start(Some(REFERENCE)).await;
    let base = kitchen.base.clone();
    // Oldest first on the screen: due in 2, 7 and 30 minutes.
    kitchen.publish(&order("o-1", 1, 3000, 2)).await;
    kitchen.publish(&order("o-2", 2, 2000, 7)).await;
    kitchen.publish(&order("o-3", 3, 1000, 30)).await;
    let mut tablet = Browser::launch(1280, 900).await;
    tablet.navigate(&format!("{base}/?station=fry")).await;
    let tickets = "[...document.querySelectorAll('#tickets .ticket')].map((t) => t.dataset.orderId).join(',')";
    tablet
        .wait_for_value("three tickets", WAIT, tickets, &json!("o-1,o-2,o-3"))
        .await;

    // The fryer's timers: amber within 10 minutes, red within 3 (the reference); Expo keeps
    // the defaults (amber within 5, red once late).
    let colours = "[...document.querySelectorAll('#tickets .ticket')].map((t) => ['fine','soon','late'].find((c) => t.classList.contains(c))).join(',')";
    tablet
        .wait_for_value(
            "the fryer's colours",
            WAIT,
            colours,
            &json!("late,soon,fine"),
        )
        .await;

    // A selection from the start, on the oldest ticket; arrows and the bump bar's 4/6 move it.
    expect_selected(&mut tablet, "o-1").await;
    tablet.press_key("ArrowRight").await;
    expect_selected(&mut tablet, "o-2").await;
    tablet.press_key("6").await;
    expect_selected(&mut tablet, "o-3").await;
    tablet.press_key("6").await;
    expect_selected(&mut tablet, "o-3").await;
    tablet.press_key("4").await;
    expect_selected(&mut tablet, "o-2").await;
    // Page left / right: all three fit on the screen, so a page is three tickets.
    tablet.press_key("PageUp").await;
    expect_selected(&mut tablet, "o-1").await;
    tablet.press_key("9").await;
    expect_selected(&mut tablet, "o-3").await;
    tablet.press_key("ArrowUp").await;
    expect_selected(&mut tablet, "o-2").await;

    // 5 bumps the selected ticket at this station only; the selection stays in its place.
    tablet.press_key("5").await;
    wait_bumped(&base, "o-2", json!(["fry"])).await;
    tablet
        .wait_for_value("o-2 off the fryer", WAIT, tickets, &json!("o-1,o-3"))
        .await;
    expect_selected(&mut tablet, "o-3").await;
    // The fryer's own recall key (the reference adds "r" to Backspace).
    expect_recallable(&mut tablet).await;
    tablet.press_key("r").await;
    wait_bumped(&base, "o-2", json!([])).await;
    tablet
        .wait_for_value("o-2 back", WAIT, tickets, &json!("o-1,o-2,o-3"))
        .await;
    // Enter bumps too, once however long it is held (the keyboard's repeats do nothing);
    // Backspace recalls.
    tablet.press_key("ArrowLeft").await;
    expect_selected(&mut tablet, "o-2").await;
    tablet.hold_key("Enter", 5).await;
    wait_bumped(&base, "o-2", json!(["fry"])).await;
    tablet
        .wait_for_value("only o-2 off the fryer", WAIT, tickets, &json!("o-1,o-3"))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        bumped_at(&base, "o-3").await,
        json!([]),
        "the held Enter bumped o-3 too"
    );
    expect_recallable(&mut tablet).await;
    tablet.press_key("Backspace").await;
    wait_bumped(&base, "o-2", json!([])).await;

    // Tab / 1 hide and show the all-day panel.
    let panel = "document.querySelector('#counts-box').getClientRects().length > 0";
    tablet
        .wait_for_value("the panel shown", WAIT, panel, &json!(true))
        .await;
    tablet.press_key("Tab").await;
    tablet
        .wait_for_value("the panel hidden", WAIT, panel, &json!(false))
        .await;
    tablet.press_key("1").await;
    tablet
        .wait_for_value("the panel shown again", WAIT, panel, &json!(true))
        .await;

    // A wedge scanner's burst ending in Enter is a scan of this station: o-3's ticket bumps
    // it here, and none of its characters ran as keys (its "3" would complete a batch, its
    // "o" nothing, and the selection stays). The selection followed o-2's bump to o-3 and
    // stayed there through the recall.
    expect_selected(&mut tablet, "o-3").await;
    tablet.press_key("ArrowLeft").await;
    expect_selected(&mut tablet, "o-2").await;
    tablet.press_key("ArrowLeft").await;
    expect_selected(&mut tablet, "o-1").await;
    tablet.scan_burst("ORDER:o-3").await;
    wait_bumped(&base, "o-3", json!(["fry"])).await;
    tablet
        .wait_for_value("o-3 off the fryer", WAIT, tickets, &json!("o-1,o-2"))
        .await;
    expect_selected(&mut tablet, "o-1").await;
    let fries = || async {
        get_json(&format!("{base}/api/batches?station=fry")).await["items"]
            .as_array()
            .expect("items")
            .clone()
    };
    assert_eq!(fries().await.len(), 1);
    assert_eq!(fries().await[0]["quantity"], 4, "o-1 and o-2's fries");
    assert_eq!(fries().await[0]["sessions"], json!([]), "no batch started");

    // The same characters typed by a person (100 ms apart) are keys: "x", "y", "z" mean
    // nothing and Enter bumps the selected ticket.
    for key in ["x", "y", "z"] {
        tablet.press_key(key).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tablet.press_key("Enter").await;
    wait_bumped(&base, "o-1", json!(["fry"])).await;
    expect_recallable(&mut tablet).await;
    tablet.press_key("Backspace").await;
    wait_bumped(&base, "o-1", json!([])).await;

    // 2 starts a batch of the top row's count, 3 completes it: the count follows.
    tablet
        .wait_for(
            "a Start button",
            WAIT,
            "!!document.querySelector('#counts .row .start')",
        )
        .await;
    tablet.press_key("2").await;
    common::wait_until("a batch of 4 running", WAIT, || async {
        let items = fries().await;
        items.len() == 1
            && items[0]["sessions"]
                .as_array()
                .is_some_and(|s| s.len() == 1)
    })
    .await;
    assert_eq!(fries().await[0]["sessions"][0]["quantity"], 4);
    tablet
        .wait_for(
            "the Done button",
            WAIT,
            "!!document.querySelector('#counts .row .done')",
        )
        .await;
    tablet.press_key("3").await;
    common::wait_until("the fries done", WAIT, || async {
        fries().await.iter().all(|i| i["quantity"] == 0)
    })
    .await;

    // Expo: the defaults (5 minutes amber, red once late); its bump is Ready, then Hand off
    // in the Ready lane.
    tablet.navigate(&format!("{base}/?station=all")).await;
    tablet
        .wait_for_value("Expo's colours", WAIT, colours, &json!("soon,fine,fine"))
        .await;
    expect_selected(&mut tablet, "o-1").await;
    tablet.press_key("Enter").await;
    tablet
        .wait_for(
            "o-1 in the Ready lane",
            WAIT,
            "!!document.querySelector('#ready [data-order-id=\"o-1\"]')",
        )
        .await;
    let ready = get_json(&format!("{base}/api/orders?state=open")).await;
    let o1 = ready["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .find(|o| o["order_id"] == "o-1")
        .cloned()
        .expect("o-1 open");
    assert_eq!(o1["ready"], true);
    // The Ready lane comes after the tickets: o-2, o-3, then o-1.
    tablet.press_key("PageDown").await;
    expect_selected(&mut tablet, "o-1").await;
    tablet.press_key("5").await;
    common::wait_until("o-1 handed off", WAIT, || async {
        bumped_at(&base, "o-1").await == Value::Null
    })
    .await;
    tablet.close().await;
}

/// An order with an allergen note at the fryer: a red banner, Bump greyed out, the bump key
/// refused until the acknowledge key (8) is pressed; Expo's Rush puts an order first on the
/// fryer's screen, flagged. With `SCREENSHOT=<png>` it also saves the picture docs/floor.md
/// shows (the selection on the banner's ticket).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cook_acknowledges_an_allergen_by_key_before_bumping_and_rush_goes_first() {
    let kitchen = TestAgent::start(Some(REFERENCE)).await;
    let base = kitchen.base.clone();
    kitchen.publish(&order("o-1", 1, 3000, 12)).await;
    let mut nut = order("o-2", 2, 2000, 4);
    nut.customer_note = "Peanut allergy - please be careful".into();
    nut.items[1].note = "fried in fresh oil, no nuts".into();
    kitchen.publish(&nut).await;
    kitchen.publish(&order("o-3", 3, 1000, 30)).await;
    let mut tablet = Browser::launch(1280, 900).await;
    tablet.navigate(&format!("{base}/?station=fry")).await;
    let tickets = "[...document.querySelectorAll('#tickets .ticket')].map((t) => t.dataset.orderId).join(',')";
    tablet
        .wait_for_value("three tickets", WAIT, tickets, &json!("o-1,o-2,o-3"))
        .await;
    let banner = "#tickets [data-order-id=\"o-2\"] .allergen";
    tablet
        .wait_for_value(
            "the allergen banner",
            WAIT,
            &format!("document.querySelector('{banner} b').textContent"),
            &json!("⚠ ALLERGEN: allergy, peanut, nuts"),
        )
        .await;
    assert_eq!(
        tablet
            .eval(&format!(
                "document.querySelector('{banner} .allergen-notes').textContent"
            ))
            .await,
        json!("Order: “Peanut allergy - please be careful” · Fries: “fried in fresh oil, no nuts”")
    );
    assert_eq!(
        tablet
            .eval("document.querySelector('#tickets [data-order-id=\"o-2\"] .bump').disabled")
            .await,
        json!(true)
    );
    tablet.press_key("ArrowRight").await;
    expect_selected(&mut tablet, "o-2").await;
    if let Ok(path) = std::env::var("SCREENSHOT") {
        tablet.scale(1280, 900, 1.0).await;
        tablet.screenshot(std::path::Path::new(&path)).await;
    }
    // The bump key is refused on the screen (and would be by the box): nothing bumped.
    tablet.press_key("5").await;
    tablet
        .wait_for(
            "the refusal",
            WAIT,
            "!document.querySelector('#toast').hidden && document.querySelector('#toast').textContent.includes('acknowledge')",
        )
        .await;
    assert_eq!(bumped_at(&base, "o-2").await, json!([]));
    // 8 acknowledges the selected ticket's warning; then 5 bumps it.
    tablet.press_key("8").await;
    tablet
        .wait_for(
            "the banner acknowledged",
            WAIT,
            &format!("document.querySelector('{banner}').classList.contains('acknowledged')"),
        )
        .await;
    let acks = get_json(&format!("{base}/api/orders?state=open")).await["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .find(|o| o["order_id"] == "o-2")
        .map(|o| o["allergen_acks"].clone());
    assert_eq!(acks, Some(json!(["fry"])));
    tablet.press_key("5").await;
    wait_bumped(&base, "o-2", json!(["fry"])).await;
    tablet
        .wait_for_value("o-2 off the fryer", WAIT, tickets, &json!("o-1,o-3"))
        .await;

    // Expo marks o-3 rush with a tap; the fryer shows it first, flagged.
    let mut expo = Browser::launch(1280, 900).await;
    expo.navigate(&format!("{base}/?station=all")).await;
    expo.wait_for(
        "o-3 at Expo",
        WAIT,
        "!!document.querySelector('#tickets [data-order-id=\"o-3\"] .rush-toggle')",
    )
    .await;
    expo.tap("#tickets [data-order-id=\"o-3\"] .rush-toggle")
        .await;
    expo.wait_for_value(
        "Expo's order",
        WAIT,
        "[...document.querySelectorAll('#tickets .ticket')].map((t) => t.dataset.orderId).join(',')",
        &json!("o-3,o-1,o-2"),
    )
    .await;
    tablet
        .wait_for_value("o-3 first at the fryer", WAIT, tickets, &json!("o-3,o-1"))
        .await;
    assert_eq!(
        tablet
            .eval(
                "document.querySelector('#tickets .ticket').querySelector('.rush-flag').textContent"
            )
            .await,
        json!("RUSH")
    );

    // A tap on o-1's fries at the fryer taps the line off: greyed out, its 2 fries gone from
    // the count (the burger line is the grill's: not tappable here).
    let count = "document.querySelector('#counts .row .qty').textContent";
    tablet
        .wait_for_value("4 fries to make", WAIT, count, &json!("4"))
        .await;
    let fries_line = "#tickets [data-order-id=\"o-1\"] li[data-line=\"1\"]";
    assert_eq!(
        tablet
            .eval(
                "document.querySelectorAll('#tickets [data-order-id=\"o-1\"] li[data-line]').length"
            )
            .await,
        json!(1)
    );
    tablet.tap(fries_line).await;
    tablet
        .wait_for(
            "the fries line greyed",
            WAIT,
            &format!("document.querySelector('{fries_line}').classList.contains('tapped')"),
        )
        .await;
    tablet
        .wait_for_value("2 fries to make", WAIT, count, &json!("2"))
        .await;
    expo.close().await;
    tablet.close().await;
}
