//! What the kitchen tells Otter, through the agent's real HTTP path and feed: orders of a store
//! that accepts automatically are accepted with the box's estimate; a manual store's order waits
//! for Expo's Accept; Ready, Hand off, Reject and a manager's Cancel each log their one record;
//! items are 86'd and put back with staff PINs; bad input is refused and changes nothing. And
//! the Expo flows in headless Chromium.

use kitchen_testkit::browser;
mod common;

use std::time::Duration;

use common::TestAgent;
use kitchen_testkit::{
    events::{line, new_order},
    http::{SseReader, client, get_json},
};
use serde_json::{Value, json};

const REFERENCE: &str = r#"
[[stations]]
id = "grill"
name = "Grill"

[[stations]]
id = "fry"
name = "Fryer"

[[stores]]
store_id = "store-auto"
brand = "Smash"

[[stores]]
store_id = "store-manual"
brand = "Late Night"
accept = "manual"

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
otter_entities = { store-auto = ["fries-1"], store-manual = ["lf-fries", "lf-fries-large"] }
"#;

const STORES: &[&str] = &["store-auto", "store-manual"];
const WAIT: Duration = Duration::from_secs(20);

async fn post(url: &str, body: Value) -> (u16, Value) {
    let response = client()
        .post(url)
        .json(&body)
        .send()
        .await
        .expect("answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The next event of `kind` on the stream, skipping others.
async fn next_of(stream: &mut SseReader, kind: &str) -> Value {
    loop {
        let (_, event, data) = stream
            .next_within(WAIT)
            .await
            .unwrap_or_else(|| panic!("no {kind} in time"));
        if event == kind {
            return data;
        }
    }
}

fn order(store: &str, id: &str) -> kitchen_proto::OrderEvent {
    new_order(store, id)
        .friendly_id(id.to_uppercase())
        .with_snapshot()
        .item(line("Double Smash Burger", 1, vec![]))
        .item(line("Fries", 2, vec![]))
        .build()
}

async fn ticket(base: &str, id: &str) -> Option<Value> {
    let orders = get_json(&format!("{base}/api/orders?state=open")).await;
    orders["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .find(|o| o["order_id"] == id)
        .cloned()
}

#[tokio::test]
async fn orders_are_accepted_readied_handed_off_and_cancelled_from_the_box() {
    let kitchen = TestAgent::start_for(Some(REFERENCE), STORES).await;
    let base = kitchen.base.clone();
    let mut stream = SseReader::open(&format!("{base}/orders/events"), None).await;
    // Automatic: accepted in the order's own transaction with the estimate: the burger's 7
    // minutes behind an empty grill.
    kitchen.publish(&order("store-auto", "o-auto")).await;
    assert_eq!(
        next_of(&mut stream, "order.created").await["order_id"],
        "o-auto"
    );
    assert_eq!(
        next_of(&mut stream, "order.accepted").await,
        json!({"order_id": "o-auto", "store_id": "store-auto", "prep_minutes": 7, "auto": true, "device": null})
    );
    // A second order queues behind the first one's fries? Same item: it joins the batch. Its
    // burgers join too: the estimate stays 7.
    kitchen.publish(&order("store-auto", "o-auto-2")).await;
    assert_eq!(
        next_of(&mut stream, "order.accepted").await["prep_minutes"],
        7
    );

    // Manual: waits for Expo.
    kitchen.publish(&order("store-manual", "o-man")).await;
    assert_eq!(
        next_of(&mut stream, "order.created").await["order_id"],
        "o-man"
    );
    let waiting = ticket(&base, "o-man").await.expect("open");
    assert_eq!(
        (&waiting["awaiting_accept"], &waiting["prep_minutes"]),
        (&json!(true), &Value::Null)
    );
    let url = |order: &str, action: &str| format!("{base}/api/orders/{order}/{action}");
    // Bad input is refused and changes nothing.
    assert_eq!(
        post(&url("o-man", "accept"), json!({"prep_minutes": -1}))
            .await
            .0,
        400
    );
    assert_eq!(
        post(&url("o-man", "accept"), json!({"prep_minutes": 999})).await,
        (400, json!({"error": "a prep time is 1 to 240 minutes"}))
    );
    assert_eq!(
        post(&url("o-man", "accept"), json!({"minutes": 5})).await.0,
        400
    );
    assert_eq!(
        post(&url("o-man", "prep-time"), json!({"prep_minutes": 20})).await,
        (
            409,
            json!({"error": "the order is not accepted yet: accept it first"})
        )
    );
    assert_eq!(
        post(&url("nope", "accept"), json!({})).await,
        (404, json!({"error": "no such order"}))
    );
    assert_eq!(
        post(&url("o-man", "accept"), json!({"prep_minutes": 18})).await,
        (200, json!({"order_id": "o-man"}))
    );
    assert_eq!(
        next_of(&mut stream, "order.accepted").await,
        json!({"order_id": "o-man", "store_id": "store-manual", "prep_minutes": 18, "auto": false,
               "device": kitchen_testkit::http::TEST_DEVICE})
    );
    let accepted = ticket(&base, "o-man").await.expect("open");
    assert_eq!(
        (&accepted["awaiting_accept"], &accepted["prep_minutes"]),
        (&Value::Null, &json!(18))
    );
    assert_eq!(
        post(&url("o-man", "prep-time"), json!({"prep_minutes": 25}))
            .await
            .0,
        200
    );
    assert_eq!(
        next_of(&mut stream, "order.prep_time").await["prep_minutes"],
        25
    );
    // Ready: every station bumped, the order ready; hand off: off the screens.
    assert_eq!(post(&url("o-man", "ready"), json!({})).await.0, 200);
    assert_eq!(
        next_of(&mut stream, "order.ready").await["order_id"],
        "o-man"
    );
    assert_eq!(post(&url("o-man", "hand-off"), json!({})).await.0, 200);
    assert_eq!(
        next_of(&mut stream, "order.handed_off").await,
        json!({"order_id": "o-man", "store_id": "store-manual", "device": kitchen_testkit::http::TEST_DEVICE})
    );
    assert!(ticket(&base, "o-man").await.is_none());
    assert_eq!(
        post(&url("o-man", "hand-off"), json!({})).await,
        (409, json!({"error": "the order is closed, not open"}))
    );
    // Cancel: Otter's reasons only; then it is gone.
    assert_eq!(
        post(&url("o-auto", "cancel"), json!({"reason": "BORED"})).await,
        (
            400,
            json!({"error": "unknown cancellation reason \"BORED\""})
        )
    );
    assert_eq!(
        post(
            &url("o-auto", "cancel"),
            json!({"reason": "KITCHEN_CLOSED", "note": "power cut"})
        )
        .await
        .0,
        200
    );
    assert_eq!(
        next_of(&mut stream, "order.cancel_requested").await,
        json!({"order_id": "o-auto", "store_id": "store-auto", "reason": "KITCHEN_CLOSED",
               "note": "power cut", "device": kitchen_testkit::http::TEST_DEVICE})
    );
    assert!(ticket(&base, "o-auto").await.is_none());
    // A cook may not accept or cancel (roles).
    let cook = edge_agent::pairing::pair(&kitchen.data_dir, "cook", "Fry 1", Some("fry"))
        .expect("paired")
        .1;
    let as_cook = |path: String| {
        client()
            .post(path)
            .bearer_auth(&cook)
            .json(&json!({"reason": "KITCHEN_CLOSED"}))
            .send()
    };
    assert_eq!(
        as_cook(url("o-auto-2", "cancel"))
            .await
            .expect("answers")
            .status(),
        403
    );
    assert_eq!(
        as_cook(url("o-auto-2", "ready"))
            .await
            .expect("answers")
            .status(),
        403
    );
    assert!(ticket(&base, "o-auto-2").await.is_some());
    // Expo's scanner reads the bag's ticket: handed off, once.
    let scans = format!("{base}/api/scans");
    let scan = |code: &str| {
        post(
            &scans,
            json!({"code": code, "role": "expo", "device": "bag scanner"}),
        )
    };
    let (status, bag) = scan("ORDER:o-auto-2").await;
    assert_eq!(
        (status, &bag["accepted"], &bag["action"], &bag["order_id"]),
        (200, &json!(true), &json!("hand_off"), &json!("o-auto-2")),
        "{bag}"
    );
    assert_eq!(
        next_of(&mut stream, "order.handed_off").await["order_id"],
        "o-auto-2"
    );
    assert!(ticket(&base, "o-auto-2").await.is_none());
    let (_, again) = scan("ORDER:o-auto-2").await;
    assert_eq!(
        (&again["accepted"], &again["reason"]),
        (&json!(false), &json!("the order is closed, not open"))
    );
    let (_, product) = scan("0109501101530003").await;
    assert_eq!(
        (&product["accepted"], &product["reason"]),
        (
            &json!(false),
            &json!("an Expo scanner takes tickets; this is not one")
        )
    );
    kitchen.stop().await;
}

#[tokio::test]
async fn items_are_86d_and_put_back_with_staff_pins() {
    let kitchen = TestAgent::start_for(Some(REFERENCE), STORES).await;
    let base = kitchen.base.clone();
    let url = |item: &str, action: &str| format!("{base}/api/items/{item}/{action}");
    // No PINs yet: a manager 86es fries for 2 hours.
    let (status, fries) = post(
        &url("fries", "suspend"),
        json!({"until": "hours", "hours": 2, "note": "fryer down"}),
    )
    .await;
    assert_eq!(status, 200, "{fries}");
    assert_eq!(
        fries["entities"],
        json!([{"store_id": "store-auto", "entity_ids": ["fries-1"]},
               {"store_id": "store-manual", "entity_ids": ["lf-fries", "lf-fries-large"]}])
    );
    let until = fries["until_ms"].as_i64().expect("until");
    let left = until - kitchen_daemon::clock::now_ms();
    assert!((7_190_000..=7_200_000).contains(&left), "{left}");
    let available = get_json(&format!("{base}/api/availability")).await;
    assert_eq!(available["pin_required"], false);
    assert_eq!(
        (
            &available["suspended"][0]["item_id"],
            &available["suspended"][0]["until_ms"],
            &available["suspended"][0]["note"],
            &available["suspended"][0]["on_otter"]
        ),
        (
            &json!("fries"),
            &json!(until),
            &json!("fryer down"),
            &json!(true)
        )
    );
    assert_eq!(
        post(&url("fries", "suspend"), json!({})).await,
        (409, json!({"error": "Fries is already 86'd"}))
    );
    assert_eq!(
        post(
            &url("smash", "suspend"),
            json!({"until": "hours", "hours": 99})
        )
        .await,
        (400, json!({"error": "86 for 1 to 24 hours"}))
    );
    assert_eq!(
        post(&url("smash", "suspend"), json!({"until": "tomorrow"}))
            .await
            .0,
        400
    );
    assert_eq!(
        post(&url("ghost", "suspend"), json!({})).await,
        (404, json!({"error": "no such item"}))
    );
    // The kitchen starts using PINs: now 86 needs one, and records whose it was.
    let pin = edge_agent::pairing::add_staff(&kitchen.data_dir, "Ana").expect("added");
    assert_eq!(pin.len(), 6);
    assert_eq!(
        post(&url("fries", "unsuspend"), json!({})).await,
        (403, json!({"error": "a staff PIN is needed"}))
    );
    let wrong = if pin == "000000" { "111111" } else { "000000" };
    assert_eq!(
        post(&url("fries", "unsuspend"), json!({"pin": wrong})).await,
        (403, json!({"error": "wrong PIN"}))
    );
    let (status, back) = post(&url("fries", "unsuspend"), json!({"pin": pin})).await;
    assert_eq!(
        (status, &back["staff"], &back["suspension_id"]),
        (200, &json!("Ana"), &fries["suspension_id"])
    );
    assert_eq!(
        post(&url("fries", "unsuspend"), json!({"pin": pin})).await,
        (409, json!({"error": "Fries is not 86'd"}))
    );
    let available = get_json(&format!("{base}/api/availability")).await;
    assert_eq!(
        (&available["pin_required"], &available["suspended"]),
        (&json!(true), &json!([]))
    );
    kitchen.stop().await;
}

/// Expo on a tablet: a manual store's order is accepted with a typed time, readied and handed
/// off; an item is 86'd with a staff PIN and put back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expo_accepts_readies_hands_off_and_86es_on_the_tablet() {
    let kitchen = TestAgent::start_for(Some(REFERENCE), STORES).await;
    let base = kitchen.base.clone();
    let pin = edge_agent::pairing::add_staff(&kitchen.data_dir, "Ana").expect("added");
    let mut tablet = browser::Browser::launch(1280, 900).await;
    tablet.navigate(&format!("{base}/?station=all")).await;
    tablet
        .wait_for(
            "the live stream",
            WAIT,
            "document.querySelector('#link').className.includes('ok')",
        )
        .await;
    kitchen.publish(&order("store-manual", "o-tab")).await;
    let ticket_sel = r#"#tickets [data-order-id="o-tab"]"#;
    tablet
        .wait_for(
            "the ticket waiting for Accept",
            WAIT,
            &format!("!!document.querySelector('{ticket_sel} button.accept')"),
        )
        .await;
    tablet.tap(&format!("{ticket_sel} .minutes")).await;
    tablet.type_text("22").await;
    tablet.tap(&format!("{ticket_sel} button.accept")).await;
    tablet
        .wait_for_value(
            "the time given",
            WAIT,
            &format!(
                "(document.querySelector('{ticket_sel} .otters') || {{}}).textContent || null"
            ),
            &json!("22 min given"),
        )
        .await;
    tablet.tap(&format!("{ticket_sel} button.ready")).await;
    let ready_sel = r#"#ready [data-order-id="o-tab"] button.handoff"#;
    tablet
        .wait_for(
            "the order in the Ready lane",
            WAIT,
            &format!("!!document.querySelector('{ready_sel}')"),
        )
        .await;
    tablet.tap(ready_sel).await;
    tablet
        .wait_for(
            "the order handed off",
            WAIT,
            "!document.querySelector('[data-order-id=\"o-tab\"]')",
        )
        .await;
    // 86 with a PIN.
    tablet
        .wait_for(
            "the 86 form with a PIN",
            WAIT,
            "!!document.querySelector('#eightysix .pin')",
        )
        .await;
    tablet
        .eval("document.querySelector('#eightysix .item').value = 'fries'")
        .await;
    tablet.tap("#eightysix .pin").await;
    tablet.type_text(&pin).await;
    tablet.tap("#eightysix button.suspend").await;
    tablet
        .wait_for(
            "fries 86'd on the screen",
            WAIT,
            "!!document.querySelector('#eightysix li[data-item=\"fries\"] button.unsuspend')",
        )
        .await;
    let available = get_json(&format!("{base}/api/availability")).await;
    assert_eq!(
        (
            &available["suspended"][0]["item_id"],
            &available["suspended"][0]["staff"]
        ),
        (&json!("fries"), &json!("Ana"))
    );
    tablet.tap("#eightysix .pin").await;
    tablet.type_text(&pin).await;
    tablet
        .tap("#eightysix li[data-item=\"fries\"] button.unsuspend")
        .await;
    tablet
        .wait_for(
            "nothing 86'd",
            WAIT,
            "!!document.querySelector('#eightysix li.none')",
        )
        .await;
    tablet.close().await;
    let orders = get_json(&format!("{base}/api/orders?state=open")).await;
    assert_eq!(orders["orders"], json!([]));
    kitchen.stop().await;
}
