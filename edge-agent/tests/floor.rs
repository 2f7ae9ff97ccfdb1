//! The kitchen floor through the agent's real HTTP path: an order whose notes name an allergen
//! cannot be bumped at a station until its cook acknowledged it there (also not by a station
//! scanner), the acknowledgement is recorded and reaches PostgreSQL; rush orders come first in
//! every station's list, in the order they were marked, and only Expo or a manager marks them.

mod common;

use std::time::Duration;

use common::{
    TestAgent,
    cloud::{Cloud, postgres_addr},
    wait_until,
};
use kitchen_testkit::{
    events::{line, new_order},
    http::{client, get_json},
    names::unique,
};
use serde_json::{Value, json};

const REFERENCE: &str = r#"
[floor]
allergen_words = ["peanut", "gluten", "tree nut"]

[[stores]]
store_id = "kitchen-bk-01"
brand = "Smash"

[[stations]]
id = "grill"
name = "Grill"

[[stations]]
id = "fry"
name = "Fryer"

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

const STORE: &str = "kitchen-bk-01";
const WAIT: Duration = Duration::from_secs(20);
const COOK_TOKEN: &str = "kd1_floor-test-fryer-cook-token-0123456789";

async fn post(url: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let mut request = client().post(url);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn allergic(id: &str, sequence: u64) -> kitchen_proto::OrderEvent {
    let mut order_event = new_order(STORE, id)
        .friendly_id(id.to_uppercase())
        .sequence(sequence)
        .item(line("Double Smash Burger", 1, vec![]))
        .item(line("Fries", 2, vec![]))
        .build();
    order_event.customer_note = "Severe PEANUT allergy, please!".into();
    order_event.items[0].note = "gluten-free bun".into();
    // "Peanut butter" as a modifier's name is not a note: only notes raise the warning.
    order_event.items[0]
        .modifiers
        .push(line("Peanut butter", 1, vec![]));
    order_event
}

fn plain(id: &str, sequence: u64, at_ms: i64) -> kitchen_proto::OrderEvent {
    new_order(STORE, id)
        .friendly_id(id.to_uppercase())
        .sequence(sequence)
        .at(at_ms)
        .item(line("Fries", 1, vec![]))
        .build()
}

async fn open_orders(base: &str, station: Option<&str>) -> Vec<Value> {
    let query = station.map_or(String::new(), |s| format!("&station={s}"));
    get_json(&format!("{base}/api/orders?state=open{query}")).await["orders"]
        .as_array()
        .expect("orders")
        .clone()
}

async fn ticket(base: &str, id: &str) -> Value {
    open_orders(base, None)
        .await
        .into_iter()
        .find(|o| o["order_id"] == id)
        .unwrap_or(Value::Null)
}

async fn wait_open(base: &str, count: usize) {
    wait_until(&format!("{count} open orders"), WAIT, || async move {
        open_orders(base, None).await.len() == count
    })
    .await;
}

/// A kitchen in PostgreSQL with the reference imported, its agent syncing there as the
/// kitchen's role, and a cook's tablet (`COOK_TOKEN`) paired at `station`.
async fn synced_kitchen(prefix: &str, station: &str) -> (Cloud, TestAgent) {
    let cloud = Cloud::create(&unique(prefix)).await;
    cloud.import(REFERENCE).await;
    let url = cloud.agent_url(postgres_addr());
    let kitchen_id = cloud.kitchen_id.clone();
    let kitchen = TestAgent::start_with(Some(REFERENCE), &[STORE], move |config| {
        config.kitchen_id = kitchen_id;
        config.database_url = Some(url);
    })
    .await;
    edge_agent::pairing::pair_with_token(
        &kitchen.data_dir,
        "cook",
        &format!("{station} tablet"),
        Some(station),
        COOK_TOKEN,
    )
    .expect("cook paired");
    (cloud, kitchen)
}

#[tokio::test]
async fn a_station_bumps_an_allergen_order_only_once_acknowledged_and_head_office_hears_of_it() {
    let (cloud, kitchen) = synced_kitchen("floor-kitchen", "grill").await;
    let base = kitchen.base.clone();
    kitchen.publish(&allergic("o-nut", 1)).await;
    kitchen.publish(&plain("o-plain", 2, 1_000)).await;
    wait_open(&base, 2).await;

    // The warnings, exactly: the customer's note and the burger's, with the words found.
    let nut = ticket(&base, "o-nut").await;
    assert_eq!(
        nut["allergens"],
        json!([
            {"words": ["peanut"], "note": "Severe PEANUT allergy, please!", "on": "order"},
            {"words": ["gluten"], "note": "gluten-free bun", "on": "Double Smash Burger"},
        ])
    );
    assert_eq!(nut.get("allergen_acks"), None);
    assert_eq!(ticket(&base, "o-plain").await.get("allergens"), None);

    // Not bumped at the fryer before its cook acknowledged it; nothing changed.
    let bump = format!("{base}/api/orders/o-nut/bump?station=fry");
    assert_eq!(
        post(&bump, None, None).await,
        (
            409,
            json!({"error": "order \"o-nut\" has an allergen warning (peanut, gluten): acknowledge it at this station before bumping"})
        )
    );
    assert_eq!(ticket(&base, "o-nut").await["bumped_at"], json!([]));
    // Nor by the fryer's scanner: the scan is recorded as refused, with the reason.
    let (status, scan) = post(
        &format!("{base}/api/scans"),
        None,
        Some(json!({"code": "ORDER:o-nut", "station": "fry", "device": "fry-1"})),
    )
    .await;
    assert_eq!((status, &scan["accepted"]), (422, &json!(false)));
    assert_eq!(
        scan["reason"],
        "order \"o-nut\" has an allergen warning (peanut, gluten): acknowledge it at this station before bumping"
    );
    assert_eq!(ticket(&base, "o-nut").await["bumped_at"], json!([]));

    // Bad acknowledgements are refused and change nothing.
    let ack = |station: &str| format!("{base}/api/orders/o-nut/allergen-ack?station={station}");
    assert_eq!(
        post(&format!("{base}/api/orders/o-nut/allergen-ack"), None, None).await,
        (
            400,
            json!({"error": "say which station acknowledges: ?station=<id>"})
        )
    );
    assert_eq!(
        post(&ack("wok"), None, None).await,
        (400, json!({"error": "unknown station \"wok\""}))
    );
    let (status, _) = post(&ack("fry"), Some(COOK_TOKEN), None).await;
    assert_eq!(
        status, 403,
        "the grill's cook cannot acknowledge for the fryer"
    );
    assert_eq!(
        post(
            &format!("{base}/api/orders/o-plain/allergen-ack?station=fry"),
            None,
            None
        )
        .await,
        (
            409,
            json!({"error": "order \"o-plain\" has no allergen warning to acknowledge"})
        )
    );
    assert_eq!(
        post(
            &format!("{base}/api/orders/nope/allergen-ack?station=fry"),
            None,
            None
        )
        .await,
        (409, json!({"error": "order \"nope\" is not open"}))
    );
    assert_eq!(ticket(&base, "o-nut").await.get("allergen_acks"), None);

    // Acknowledged at the fryer (twice: the second changes nothing): the fryer may bump it,
    // the grill still may not.
    let acknowledged = json!({"order_id": "o-nut", "station_id": "fry", "words": ["peanut", "gluten"], "device": "test-manager"});
    assert_eq!(
        post(&ack("fry"), None, None).await,
        (200, acknowledged.clone())
    );
    assert_eq!(post(&ack("fry"), None, None).await, (200, acknowledged));
    assert_eq!(
        ticket(&base, "o-nut").await["allergen_acks"],
        json!(["fry"])
    );
    assert_eq!(
        post(&bump, None, None).await,
        (200, json!({"order_id": "o-nut", "bumped_at": ["fry"]}))
    );
    let (status, _) = post(
        &format!("{base}/api/orders/o-nut/bump?station=grill"),
        Some(COOK_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 409, "the grill has not acknowledged");
    let (status, _) = post(&ack("grill"), Some(COOK_TOKEN), None).await;
    assert_eq!(status, 200);
    let (status, _) = post(
        &format!("{base}/api/orders/o-nut/bump?station=grill"),
        Some(COOK_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        ticket(&base, "o-nut").await["bumped_at"],
        json!(["fry", "grill"])
    );
    // A plain order bumps as before.
    let (status, _) = post(
        &format!("{base}/api/orders/o-plain/bump?station=fry"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);

    // A new snapshot of the order (its lines and notes may have changed) asks again.
    let mut updated = allergic("o-nut", 3);
    updated.event_id = "ev-o-nut-2".into();
    updated.event_type = kitchen_proto::EventType::Update as i32;
    updated.otter_event_type = "orders.update".into();
    updated.event_time_ms += 1;
    kitchen.publish(&updated).await;
    wait_until("the acknowledgements reset", WAIT, || async {
        ticket(&base, "o-nut").await.get("allergen_acks").is_none()
    })
    .await;

    // Head office has both acknowledgements, as the box recorded them.
    wait_until("the acknowledgements in PostgreSQL", WAIT, || async {
        cloud
            .count("SELECT count(*) FROM kitchen.order_events WHERE kind = 'order.allergen_acknowledged'")
            .await
            == 2
    })
    .await;
    let rows: Vec<(String, Vec<String>, serde_json::Value)> = sqlx::query_as(
        "SELECT order_id, stations, data FROM kitchen.order_events
         WHERE kind = 'order.allergen_acknowledged' ORDER BY occurred_at, stations",
    )
    .fetch_all(&cloud.db.pool)
    .await
    .expect("rows");
    assert_eq!(
        rows,
        vec![
            (
                "o-nut".to_owned(),
                vec!["fry".to_owned()],
                json!({"order_id": "o-nut", "station_id": "fry", "words": ["peanut", "gluten"], "device": "test-manager"})
            ),
            (
                "o-nut".to_owned(),
                vec!["grill".to_owned()],
                json!({"order_id": "o-nut", "station_id": "grill", "words": ["peanut", "gluten"], "device": "grill tablet"})
            ),
        ]
    );
}

#[tokio::test]
async fn rush_orders_come_first_on_every_station_in_the_order_they_were_marked() {
    let (cloud, kitchen) = synced_kitchen("rush-kitchen", "fry").await;
    let base = kitchen.base.clone();
    for (n, id) in ["o-a", "o-b", "o-c", "o-d"].into_iter().enumerate() {
        kitchen
            .publish(&plain(id, n as u64 + 1, 1_000 + n as i64))
            .await;
    }
    wait_open(&base, 4).await;
    let ids = |orders: Vec<Value>| -> Vec<String> {
        orders
            .iter()
            .map(|o| o["order_id"].as_str().expect("id").to_owned())
            .collect()
    };
    assert_eq!(
        ids(open_orders(&base, Some("fry")).await),
        ["o-a", "o-b", "o-c", "o-d"]
    );

    let rush = |id: &str| format!("{base}/api/orders/{id}/rush");
    // A cook may not; an unknown order, a bad body are refused.
    let (status, _) = post(&rush("o-c"), Some(COOK_TOKEN), None).await;
    assert_eq!(status, 403);
    assert_eq!(
        post(&rush("nope"), None, None).await,
        (409, json!({"error": "order \"nope\" is not open"}))
    );
    let (status, body) = post(&rush("o-c"), None, Some(json!({"rush": "yes"}))).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        ids(open_orders(&base, None).await),
        ["o-a", "o-b", "o-c", "o-d"]
    );

    // o-c, then o-d (an empty body means rush): first, in that order, everywhere.
    let (status, c) = post(&rush("o-c"), None, None).await;
    assert_eq!(
        (status, &c["rush"], &c["device"]),
        (200, &json!(true), &json!("test-manager"))
    );
    let (status, d) = post(&rush("o-d"), None, Some(json!({"rush": true}))).await;
    assert_eq!(status, 200);
    assert!(d["rush_at_ms"].as_i64() >= c["rush_at_ms"].as_i64());
    assert_eq!(
        ids(open_orders(&base, Some("fry")).await),
        ["o-c", "o-d", "o-a", "o-b"]
    );
    assert_eq!(
        ids(open_orders(&base, None).await),
        ["o-c", "o-d", "o-a", "o-b"]
    );
    let c_ticket = ticket(&base, "o-c").await;
    assert_eq!(c_ticket["rush_at_ms"], c["rush_at_ms"]);
    // Marking it again keeps its place.
    let (_, again) = post(&rush("o-c"), None, None).await;
    assert_eq!(again["rush_at_ms"], c["rush_at_ms"]);
    // Taken off: back among the others by age.
    let (status, off) = post(&rush("o-c"), None, Some(json!({"rush": false}))).await;
    assert_eq!(
        (status, off),
        (
            200,
            json!({"order_id": "o-c", "rush": false, "device": "test-manager"})
        )
    );
    assert_eq!(
        ids(open_orders(&base, None).await),
        ["o-d", "o-a", "o-b", "o-c"]
    );
    assert_eq!(ticket(&base, "o-c").await.get("rush_at_ms"), None);

    // Three changes (the repeated mark logged nothing), all at head office.
    wait_until("the rush records in PostgreSQL", WAIT, || async {
        cloud
            .count("SELECT count(*) FROM kitchen.order_events WHERE kind = 'order.rushed'")
            .await
            == 3
    })
    .await;
    let rows: Vec<(String, bool)> = sqlx::query_as(
        "SELECT order_id, (data->>'rush')::boolean FROM kitchen.order_events
         WHERE kind = 'order.rushed' ORDER BY occurred_at, record_id",
    )
    .fetch_all(&cloud.db.pool)
    .await
    .expect("rows");
    assert_eq!(
        rows,
        [
            ("o-c".to_owned(), true),
            ("o-d".to_owned(), true),
            ("o-c".to_owned(), false)
        ]
    );
}

#[tokio::test]
async fn a_line_tapped_off_leaves_the_station_count_and_head_office_hears_of_it() {
    let (cloud, kitchen) = synced_kitchen("tap-kitchen", "grill").await;
    let base = kitchen.base.clone();
    // Lines in the store's numbering: 0 fries ×2; 1 burger with 2 its fries modifier; 3 fries ×3.
    let order_event = new_order(STORE, "o-tap")
        .sequence(1)
        .item(line("Fries", 2, vec![]))
        .item(line(
            "Double Smash Burger",
            1,
            vec![line("Fries", 1, vec![])],
        ))
        .item(line("Fries", 3, vec![]))
        .build();
    kitchen.publish(&order_event).await;
    wait_open(&base, 1).await;
    let count = |station: &'static str| {
        let base = base.clone();
        async move {
            get_json(&format!("{base}/api/batches?station={station}")).await["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|i| i["quantity"].as_i64().expect("quantity"))
                .sum::<i64>()
        }
    };
    assert_eq!((count("fry").await, count("grill").await), (6, 1));
    let tap = |line_no: &str, station: &str| {
        format!("{base}/api/orders/o-tap/lines/{line_no}/done?station={station}")
    };

    // Refused, changing nothing: a modifier, a line that is not there, a line with nothing
    // for the station, no station, another station's cook, a bad body.
    assert_eq!(
        post(&tap("2", "fry"), None, None).await,
        (
            400,
            json!({"error": "line 2 is a modifier: tap off the order's line it belongs to"})
        )
    );
    assert_eq!(
        post(&tap("9", "fry"), None, None).await,
        (404, json!({"error": "order \"o-tap\" has no line 9"}))
    );
    assert_eq!(
        post(&tap("x", "fry"), None, None).await,
        (400, json!({"error": "line \"x\" is not a line number"}))
    );
    assert_eq!(
        post(&tap("0", "grill"), None, None).await,
        (
            409,
            json!({"error": "line 0 of order \"o-tap\" has nothing made at this station"})
        )
    );
    assert_eq!(
        post(&format!("{base}/api/orders/o-tap/lines/0/done"), None, None).await,
        (
            400,
            json!({"error": "say which station taps the line off: ?station=<id>"})
        )
    );
    let (status, _) = post(&tap("0", "fry"), Some(COOK_TOKEN), None).await;
    assert_eq!(status, 403);
    let (status, _) = post(&tap("0", "fry"), None, Some(json!({"done": 1}))).await;
    assert_eq!(status, 400);
    assert_eq!((count("fry").await, count("grill").await), (6, 1));

    // Line 0 off at the fryer: its 2 fries leave the count; again: nothing more.
    let done = json!({"order_id": "o-tap", "line_no": 0, "station_id": "fry", "done": true,
                      "items": [{"item_id": "fries", "units": 2}], "device": "test-manager"});
    assert_eq!(
        post(&tap("0", "fry"), None, None).await,
        (200, done.clone())
    );
    assert_eq!(post(&tap("0", "fry"), None, None).await, (200, done));
    assert_eq!(count("fry").await, 4);
    let tapped = ticket(&base, "o-tap").await;
    assert_eq!(
        tapped["lines_done"],
        json!([{"line_no": 0, "station_id": "fry"}])
    );
    let line_nos: Vec<i64> = tapped["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| l["line_no"].as_i64().expect("line_no"))
        .collect();
    assert_eq!(line_nos, [0, 1, 3]);
    // The burger line: its fries at the fryer, the burger at the grill (by the grill's cook).
    let (status, body) = post(&tap("1", "fry"), None, None).await;
    assert_eq!(
        (status, &body["items"]),
        (200, &json!([{"item_id": "fries", "units": 1}]))
    );
    assert_eq!(count("fry").await, 3);
    let (status, body) = post(&tap("1", "grill"), Some(COOK_TOKEN), None).await;
    assert_eq!(
        (status, &body["items"]),
        (200, &json!([{"item_id": "smash", "units": 1}]))
    );
    assert_eq!(count("grill").await, 0);
    // Line 0 back on: its fries count again.
    let (status, body) = post(&tap("0", "fry"), None, Some(json!({"done": false}))).await;
    assert_eq!((status, &body["done"]), (200, &json!(false)));
    assert_eq!(count("fry").await, 5);
    // Every line done: the order is ready, as if every station had bumped it.
    for line_no in ["0", "3"] {
        let (status, _) = post(&tap(line_no, "fry"), None, None).await;
        assert_eq!(status, 200);
    }
    assert_eq!((count("fry").await, count("grill").await), (0, 0));
    assert_eq!(ticket(&base, "o-tap").await["ready"], true);

    // Six changes (the repeated tap logged nothing), all at head office.
    wait_until("the tap-offs in PostgreSQL", WAIT, || async {
        cloud
            .count("SELECT count(*) FROM kitchen.order_events WHERE kind = 'order.line_done'")
            .await
            == 6
    })
    .await;
    let rows: Vec<(Vec<String>, i64, bool)> = sqlx::query_as(
        "SELECT stations, (data->>'line_no')::bigint, (data->>'done')::boolean
         FROM kitchen.order_events WHERE kind = 'order.line_done' ORDER BY occurred_at, record_id",
    )
    .fetch_all(&cloud.db.pool)
    .await
    .expect("rows");
    let fry = || vec!["fry".to_owned()];
    assert_eq!(
        rows,
        [
            (fry(), 0, true),
            (fry(), 1, true),
            (vec!["grill".to_owned()], 1, true),
            (fry(), 0, false),
            (fry(), 0, true),
            (fry(), 3, true),
        ]
    );
}
