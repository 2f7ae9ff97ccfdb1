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

#[tokio::test]
async fn a_station_bumps_an_allergen_order_only_once_acknowledged_and_head_office_hears_of_it() {
    let cloud = Cloud::create(&unique("floor-kitchen")).await;
    cloud.import(REFERENCE).await;
    let url = cloud.agent_url(postgres_addr());
    let kitchen_id = cloud.kitchen_id.clone();
    let kitchen = TestAgent::start_with(Some(REFERENCE), &[STORE], move |config| {
        config.kitchen_id = kitchen_id;
        config.database_url = Some(url);
    })
    .await;
    let base = kitchen.base.clone();
    edge_agent::pairing::pair_with_token(
        &kitchen.data_dir,
        "cook",
        "grill tablet",
        Some("grill"),
        COOK_TOKEN,
    )
    .expect("cook paired");
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
    let cloud = Cloud::create(&unique("rush-kitchen")).await;
    cloud.import(REFERENCE).await;
    let url = cloud.agent_url(postgres_addr());
    let kitchen_id = cloud.kitchen_id.clone();
    let kitchen = TestAgent::start_with(Some(REFERENCE), &[STORE], move |config| {
        config.kitchen_id = kitchen_id;
        config.database_url = Some(url);
    })
    .await;
    let base = kitchen.base.clone();
    edge_agent::pairing::pair_with_token(
        &kitchen.data_dir,
        "cook",
        "fry tablet",
        Some("fry"),
        COOK_TOKEN,
    )
    .expect("cook paired");
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
