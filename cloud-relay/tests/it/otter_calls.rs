//! The kitchen's order intents become Otter calls (issue 15): exactly once, with the exact
//! path, headers and body, in order per order, within the rate budget, through Otter outages,
//! 429s and token expiry; a 4xx is parked with Otter's answer and shown to the boxes
//! (`kitchen.otter_calls`) and operators (`/otter/calls`).

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use serde_json::json;

use super::{
    harness::{eventually, new_order},
    otter_rig::*,
};

const STORE: &str = "store-1";

fn order(n: u32) -> String {
    format!("otter-order-{n:04}")
}

fn accepted(n: u32, order_id: &str, minutes: u32) -> Intent {
    let data = json!({"order_id": order_id, "store_id": STORE, "prep_minutes": minutes,
                      "auto": true, "device": null, "future_key": 1});
    (record_id(n), "order.accepted", order_id.to_owned(), data)
}

#[tokio::test]
async fn one_confirm_with_the_estimate_however_often_and_by_whom_it_is_pushed() {
    let rig = Rig::start(&[STORE], &[STORE], |_| {}).await;
    let order_id = order(1);
    rig.ingest(STORE, std::slice::from_ref(&order_id)).await;
    let created = (
        record_id(1),
        "order.created",
        order_id.clone(),
        json!({"lines": 1}),
    );
    let pushed_at = Instant::now();
    assert_eq!(
        push(
            &rig.box_a,
            KITCHEN_A,
            &[created, accepted(2, &order_id, 17)]
        )
        .await,
        2
    );
    let calls = rig.otter.wait_for_calls(1, Duration::from_secs(10)).await;
    let took = calls[0].at.duration_since(pushed_at);
    // Synced twice (nothing inserted), and the same intent from the other kitchen of the store.
    assert_eq!(
        push(&rig.box_a, KITCHEN_A, &[accepted(2, &order_id, 17)]).await,
        0
    );
    assert_eq!(
        push(&rig.box_b, KITCHEN_B, &[accepted(3, &order_id, 25)]).await,
        1
    );
    rig.wait_settled(Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let calls = rig.otter.resource_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let call = &calls[0];
    assert_eq!(
        (
            call.method.as_str(),
            call.path.as_str(),
            call.store_id.as_deref(),
            call.authorization.as_deref(),
            call.body.clone(),
            call.status,
        ),
        (
            "POST",
            order_path(&order_id, "confirm").as_str(),
            Some(STORE),
            Some("Bearer token-1"),
            Some(json!({"estimatedPrepTimeMinutes": 17})),
            202,
        )
    );
    let token = &rig.otter.calls()[0];
    assert_eq!(token.path, "/v1/auth/token");
    assert_eq!(
        token.form,
        [
            ("grant_type", "client_credentials"),
            (
                "scope",
                "manager.orders orders.update manager.menus menus.async_job.read"
            ),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
    assert_eq!(
        rig.call_row(&order_id, "confirm").await,
        Some(("accepted".into(), 1, "accepted on Otter".into(), None))
    );
    assert_eq!(
        rig.app
            .db
            .count("SELECT count(*) FROM otter.callbacks")
            .await,
        1
    );
    eprintln!("intent committed → confirm at the double: {took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    let metrics = rig.app.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "relay_otter_calls_total{kind=\"confirm\",outcome=\"accepted\"} "
        ),
        1.0
    );
    assert_eq!(
        metric(
            &metrics,
            "relay_otter_calls{kind=\"confirm\",state=\"accepted\"} "
        ),
        1.0
    );
    assert_eq!(
        metric(&metrics, "relay_otter_token_fetches_total{outcome=\"ok\"} "),
        1.0
    );
}

#[tokio::test]
async fn ready_fulfill_cancel_and_prep_time_go_out_in_order_with_exact_bodies() {
    let rig = Rig::start(&[STORE], &[], |_| {}).await;
    let order_id = order(7);
    rig.ingest(STORE, std::slice::from_ref(&order_id)).await;
    let o = || order_id.clone();
    let intents = [
        accepted(1, &order_id, 12),
        (
            record_id(2),
            "order.prep_time",
            o(),
            json!({"order_id": o(), "store_id": STORE, "prep_minutes": 20, "device": "expo"}),
        ),
        (
            record_id(3),
            "order.prep_time",
            o(),
            json!({"order_id": o(), "store_id": STORE, "prep_minutes": 25, "device": "expo"}),
        ),
        (
            record_id(4),
            "order.ready",
            o(),
            json!({"order_id": o(), "friendly_id": "F1"}),
        ),
        (
            record_id(5),
            "order.handed_off",
            o(),
            json!({"order_id": o(), "store_id": STORE, "device": "expo"}),
        ),
        (
            record_id(6),
            "order.cancel_requested",
            o(),
            json!({"order_id": o(), "store_id": STORE, "reason": "RESTAURANT_TOO_BUSY",
                   "note": null, "device": "manager"}),
        ),
    ];
    // Otter is slow to answer the first calls: the later ones must still wait their turn.
    rig.otter.fail_next(2, 503);
    assert_eq!(push(&rig.box_a, KITCHEN_A, &intents).await, 6);
    let calls = rig.otter.wait_for_calls(6, Duration::from_secs(15)).await;
    let seen: Vec<(String, Option<serde_json::Value>)> = calls
        .iter()
        .map(|call| (call.path.clone(), call.body.clone()))
        .collect();
    assert_eq!(
        seen,
        [
            (
                order_path(&order_id, "confirm"),
                Some(json!({"estimatedPrepTimeMinutes": 12}))
            ),
            (
                order_path(&order_id, "prep-time"),
                Some(json!({"prepTimeMinutes": 20}))
            ),
            (
                order_path(&order_id, "prep-time"),
                Some(json!({"prepTimeMinutes": 25}))
            ),
            (order_path(&order_id, "ready-to-pickup"), None),
            (order_path(&order_id, "fulfill"), None),
            (
                order_path(&order_id, "cancel"),
                Some(json!({"cancellationReason": "RESTAURANT_TOO_BUSY"}))
            ),
        ]
    );
    // Every request (failed ones included) reached the double in created order.
    let order_of_requests: Vec<String> = rig
        .otter
        .resource_calls()
        .iter()
        .map(|call| call.path.rsplit('/').next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        order_of_requests,
        [
            "confirm",
            "confirm",
            "confirm",
            "prep-time",
            "prep-time",
            "ready-to-pickup",
            "fulfill",
            "cancel"
        ]
    );
    assert!(
        calls
            .iter()
            .all(|call| call.store_id.as_deref() == Some(STORE))
    );
    rig.wait_settled(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_burst_of_200_orders_stays_within_the_budget_and_each_is_confirmed_once() {
    const ORDERS: u32 = 200;
    const LIMIT: u32 = 20;
    let window = Duration::from_millis(1000);
    let rig = Rig::start(&[STORE], &[], |config| {
        config.otter_api.limits.confirm = LIMIT;
        config.otter_api.rate_window = window;
        // Room for a loaded machine between taking a slot and the request arriving.
        config.otter_api.rate_margin = Duration::from_millis(400);
    })
    .await;
    rig.otter.set_rate_limit(LIMIT, window);
    let orders: Vec<String> = (0..ORDERS).map(order).collect();
    rig.ingest(STORE, &orders).await;
    let intents: Vec<Intent> = (0..ORDERS)
        .map(|n| accepted(n + 1, &orders[n as usize], 10 + n % 7))
        .collect();
    let started = Instant::now();
    assert_eq!(
        push(&rig.box_a, KITCHEN_A, &intents).await,
        u64::from(ORDERS)
    );
    let calls = rig
        .otter
        .wait_for_calls(ORDERS as usize, Duration::from_secs(60))
        .await;
    let took = started.elapsed();
    rig.wait_settled(Duration::from_secs(5)).await;
    let all = rig.otter.resource_calls();
    assert_eq!(all.len(), ORDERS as usize, "no 429, no retry, no double");
    let mut per_order: HashMap<String, usize> = HashMap::new();
    for call in &calls {
        *per_order.entry(call.path.clone()).or_default() += 1;
    }
    assert_eq!(per_order.len(), ORDERS as usize);
    assert!(per_order.values().all(|count| *count == 1));
    // Never more than LIMIT within any window, as the double saw them arrive.
    let times: Vec<Instant> = all.iter().map(|call| call.at).collect();
    for (i, start) in times.iter().enumerate() {
        let within = times[i..]
            .iter()
            .take_while(|at| at.duration_since(*start) < window)
            .count();
        assert!(within <= LIMIT as usize, "{within} calls within {window:?}");
    }
    let metrics = rig.app.metrics().await;
    assert!(metric(&metrics, "relay_otter_budget_waits_total ") >= 1.0);
    eprintln!("200 confirms at {LIMIT} per {window:?} (+400 ms margin): {took:?}");
}

#[tokio::test]
async fn an_otter_outage_then_every_call_is_made_once() {
    // Every attempt spends budget (Otter counts requests, not successes): with retries every
    // 100-800 ms through a 3 s outage, 5 orders need more than the default 32.
    let rig = Rig::start(&[STORE], &[], |config| {
        config.otter_api.limits.confirm = 200
    })
    .await;
    let orders: Vec<String> = (1..=5).map(order).collect();
    rig.ingest(STORE, &orders).await;
    rig.otter.fail_for(Duration::from_secs(3));
    let intents: Vec<Intent> = (0..5)
        .map(|n| accepted(n + 1, &orders[n as usize], 15))
        .collect();
    push(&rig.box_a, KITCHEN_A, &intents).await;
    rig.otter.wait_for_calls(5, Duration::from_secs(20)).await;
    rig.wait_settled(Duration::from_secs(5)).await;
    let calls = rig.otter.resource_calls();
    for order_id in &orders {
        let path = order_path(order_id, "confirm");
        assert_eq!(ok_calls_to(&calls, &path), 1, "{order_id}");
        assert!(
            calls
                .iter()
                .any(|call| call.path == path && call.status == 500),
            "{order_id} was tried during the outage"
        );
    }
    assert!(
        calls
            .iter()
            .all(|call| call.status == 500 || call.status == 202)
    );
    let metrics = rig.app.metrics().await;
    assert!(
        metric(
            &metrics,
            "relay_otter_calls_total{kind=\"confirm\",outcome=\"retried\"} "
        ) >= 5.0
    );
}

#[tokio::test]
async fn a_429_waits_for_retry_after() {
    let rig = Rig::start(&[STORE], &[], |_| {}).await;
    let order_id = order(3);
    rig.ingest(STORE, std::slice::from_ref(&order_id)).await;
    rig.otter.set_retry_after(Some(2));
    rig.otter.fail_next(1, 429);
    push(&rig.box_a, KITCHEN_A, &[accepted(1, &order_id, 9)]).await;
    rig.otter.wait_for_calls(1, Duration::from_secs(10)).await;
    let calls = rig.otter.resource_calls();
    assert_eq!(
        calls.iter().map(|call| call.status).collect::<Vec<_>>(),
        [429, 202]
    );
    let waited = calls[1].at.duration_since(calls[0].at);
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    let metrics = rig.app.metrics().await;
    assert_eq!(metric(&metrics, "relay_otter_rate_limited_total "), 1.0);
}

#[tokio::test]
async fn a_4xx_is_parked_with_otters_answer_never_retried_and_shown_to_the_box_only() {
    let rig = Rig::start(&[STORE], &["store-elsewhere"], |_| {}).await;
    let (good, bad) = (order(1), order(2));
    rig.ingest(STORE, &[good.clone(), bad.clone()]).await;
    rig.otter.fail_path(
        &format!("/orders/{bad}/confirm"),
        422,
        json!({"message": "order already cancelled", "details": []}),
    );
    push(
        &rig.box_a,
        KITCHEN_A,
        &[accepted(1, &bad, 10), accepted(2, &good, 11)],
    )
    .await;
    // An order Otter sent without a source: its path cannot be made, so it is parked unsent.
    let sourceless = order(3);
    let mut body: serde_json::Value = serde_json::from_slice(&new_order(
        "evt-sourceless",
        STORE,
        &sourceless,
        "2026-12-02T18:00:00Z",
    ))
    .expect("json");
    body["metadata"]["payload"]["externalIdentifiers"]
        .as_object_mut()
        .expect("identifiers")
        .remove("source");
    let posted = rig
        .app
        .post_signed(&serde_json::to_vec(&body).expect("json"))
        .await;
    assert_eq!(posted.status(), 200);
    push(&rig.box_a, KITCHEN_A, &[accepted(3, &sourceless, 10)]).await;
    rig.wait_settled(Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        rig.call_row(&sourceless, "confirm").await,
        Some((
            "failed".into(),
            0,
            format!(
                "not sent: order {sourceless} has no source (Otter's externalIdentifiers.source), \
                 which the call's path needs"
            ),
            Some(format!(
                "order {sourceless} has no source (Otter's externalIdentifiers.source), which \
                 the call's path needs"
            ))
        ))
    );
    let calls = rig.otter.resource_calls();
    assert!(calls.iter().all(|call| !call.path.contains(&sourceless)));
    assert_eq!(
        calls
            .iter()
            .filter(|call| call.path == order_path(&bad, "confirm"))
            .map(|call| call.status)
            .collect::<Vec<_>>(),
        [422],
        "never retried"
    );
    assert_eq!(ok_calls_to(&calls, &order_path(&good, "confirm")), 1);
    assert_eq!(
        rig.call_row(&bad, "confirm").await,
        Some((
            "failed".into(),
            1,
            "Otter answered 422: order already cancelled".into(),
            Some("Otter answered 422 to the call: order already cancelled".into())
        ))
    );
    // Operators: the failed calls on the admin listener.
    let failed: serde_json::Value = rig
        .app
        .client
        .get(rig.app.admin_url("/otter/calls?state=failed"))
        .send()
        .await
        .expect("admin")
        .json()
        .await
        .expect("json");
    let failed = failed.as_array().expect("list");
    assert_eq!(failed.len(), 2, "the 422 and the order without a source");
    let failed = failed
        .iter()
        .find(|call| call["order_id"] == json!(bad))
        .expect("the 422");
    assert_eq!(
        (
            &failed["order_id"],
            &failed["kind"],
            &failed["status_code"],
            &failed["path"],
            &failed["answer"],
            &failed["kitchen_id"],
        ),
        (
            &json!(bad),
            &json!("confirm"),
            &json!(422),
            &json!(order_path(&bad, "confirm")),
            &json!("{\"details\":[],\"message\":\"order already cancelled\"}"),
            &json!(KITCHEN_A),
        )
    );
    let bad_state = rig
        .app
        .client
        .get(rig.app.admin_url("/otter/calls?state=lost"))
        .send()
        .await
        .expect("admin");
    assert_eq!(bad_state.status(), 400);
    // The box: its calls through kitchen.otter_calls, in change order; the other kitchen
    // (another store) sees none; the relay's admin role is not a box.
    let read = |pool: sqlx::PgPool, kitchen: &'static str, after: i64| async move {
        let mut tx = pool.begin().await.expect("begin");
        sqlx::query("SELECT set_config('kitchen.id', $1, true)")
            .bind(kitchen)
            .execute(&mut *tx)
            .await
            .expect("tenant");
        sqlx::query_as::<_, (i64, Option<String>, String, String, String, String)>(
            "SELECT change_id, order_id, store_id, kind, state, detail
             FROM kitchen.otter_calls($1, 100)",
        )
        .bind(after)
        .fetch_all(&mut *tx)
        .await
    };
    let rows = read(rig.box_a.clone(), KITCHEN_A, 0)
        .await
        .expect("A reads");
    let mut latest: Vec<(String, String, String)> = Vec::new();
    for (_, order_id, store_id, kind, state, detail) in &rows {
        assert_eq!((store_id.as_str(), kind.as_str()), (STORE, "confirm"));
        latest.retain(|(o, _, _)| Some(o) != order_id.as_ref());
        latest.push((
            order_id.clone().unwrap_or_default(),
            state.clone(),
            detail.clone(),
        ));
    }
    latest.sort();
    assert_eq!(
        latest,
        [
            (
                good.clone(),
                "accepted".to_owned(),
                "accepted on Otter".to_owned()
            ),
            (
                bad.clone(),
                "failed".to_owned(),
                "Otter answered 422: order already cancelled".to_owned()
            ),
            (
                sourceless.clone(),
                "failed".to_owned(),
                format!(
                    "not sent: order {sourceless} has no source (Otter's \
                     externalIdentifiers.source), which the call's path needs"
                )
            ),
        ]
    );
    assert!(
        rows.windows(2).all(|pair| pair[0].0 < pair[1].0),
        "change order"
    );
    let last = rows.last().expect("rows").0;
    assert!(
        read(rig.box_a.clone(), KITCHEN_A, last)
            .await
            .expect("A")
            .is_empty()
    );
    assert!(
        read(rig.box_b.clone(), KITCHEN_B, 0)
            .await
            .expect("B")
            .is_empty(),
        "another kitchen, another store: nothing"
    );
    let refused = read(rig.box_b.clone(), KITCHEN_A, 0)
        .await
        .expect_err("B's role naming A");
    assert!(
        refused.to_string().contains("is not the box of kitchen"),
        "{refused}"
    );
}

#[tokio::test]
async fn the_token_is_reused_renewed_before_expiry_and_replaced_after_a_401() {
    let rig = Rig::start(&[STORE], &[], |_| {}).await;
    // Renewed at half its 4 s life (token_refresh_before is longer than that).
    rig.otter.set_expires_in(4);
    let orders: Vec<String> = (1..=4).map(order).collect();
    rig.ingest(STORE, &orders).await;
    push(&rig.box_a, KITCHEN_A, &[accepted(1, &orders[0], 5)]).await;
    push(&rig.box_a, KITCHEN_A, &[accepted(2, &orders[1], 5)]).await;
    rig.otter.wait_for_calls(2, Duration::from_secs(10)).await;
    assert_eq!(rig.otter.token_requests(), 1, "reused");
    // Past the renewal point (2 s): the next call takes a new token.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    push(&rig.box_a, KITCHEN_A, &[accepted(3, &orders[2], 5)]).await;
    let calls = rig.otter.wait_for_calls(3, Duration::from_secs(10)).await;
    assert_eq!(rig.otter.token_requests(), 2, "renewed");
    assert_eq!(calls[2].authorization.as_deref(), Some("Bearer token-2"));
    // Otter refuses the token (a spurious 401): one fresh token, the call made again.
    rig.otter.revoke_tokens();
    push(&rig.box_a, KITCHEN_A, &[accepted(4, &orders[3], 5)]).await;
    let calls = rig.otter.wait_for_calls(4, Duration::from_secs(10)).await;
    assert_eq!(rig.otter.token_requests(), 3);
    let to_fourth: Vec<(u16, Option<String>)> = rig
        .otter
        .resource_calls()
        .iter()
        .filter(|call| call.path == order_path(&orders[3], "confirm"))
        .map(|call| (call.status, call.authorization.clone()))
        .collect();
    assert_eq!(
        to_fourth,
        [
            (401, Some("Bearer token-2".to_owned())),
            (202, Some("Bearer token-3".to_owned()))
        ]
    );
    assert_eq!(calls.len(), 4);
}

#[tokio::test]
async fn intents_refused_on_arrival_are_shown_and_never_take_the_place_of_a_valid_one() {
    // The client is off: calls wait pending, and the boxes still see them.
    let rig = Rig::start(&[STORE], &["store-elsewhere"], |config| {
        config.otter_api.url = None;
    })
    .await;
    let order_id = order(9);
    rig.ingest(STORE, std::slice::from_ref(&order_id)).await;
    let o = || order_id.clone();
    // Kitchen B does not serve the order's store.
    assert_eq!(
        push(&rig.box_b, KITCHEN_B, &[accepted(1, &order_id, 10)]).await,
        1
    );
    let bad_minutes = json!({"order_id": o(), "store_id": STORE, "prep_minutes": "soon"});
    let bad_reason = json!({"order_id": o(), "store_id": STORE, "reason": "BORED",
                            "note": null, "device": "manager"});
    let bumped = json!({"stations": ["grill"]});
    // Nothing a box pushes makes its transaction fail.
    assert_eq!(
        push(
            &rig.box_a,
            KITCHEN_A,
            &[
                (record_id(2), "order.accepted", o(), bad_minutes),
                (record_id(3), "order.cancel_requested", o(), bad_reason),
                (record_id(4), "order.bumped", o(), bumped),
                accepted(5, &order_id, 14),
                (
                    record_id(6),
                    "order.accepted",
                    "no-such-order".into(),
                    json!({})
                ),
            ]
        )
        .await,
        5
    );
    let read = |pool: sqlx::PgPool, kitchen: &'static str| async move {
        let mut tx = pool.begin().await.expect("begin");
        sqlx::query("SELECT set_config('kitchen.id', $1, true)")
            .bind(kitchen)
            .execute(&mut *tx)
            .await
            .expect("tenant");
        sqlx::query_as::<_, (String, String, String, String)>(
            "SELECT record_id::text, kind, state, detail
             FROM kitchen.otter_calls(0, 100) ORDER BY record_id",
        )
        .fetch_all(&mut *tx)
        .await
        .expect("otter_calls")
    };
    let refused_b = (
        record_id(1),
        "confirm".to_owned(),
        "failed".to_owned(),
        "not sent: kitchen kitchen-b does not serve store store-1".to_owned(),
    );
    let expected_a = vec![
        refused_b.clone(),
        (
            record_id(2),
            "confirm".into(),
            "failed".into(),
            "not sent: prep_minutes \"soon\" is not a whole number of minutes (0 to 1440)".into(),
        ),
        (
            record_id(3),
            "cancel".into(),
            "failed".into(),
            "not sent: BORED is not one of Otter's cancellation reasons".into(),
        ),
        (
            record_id(5),
            "confirm".into(),
            "pending".into(),
            "waiting to be sent".into(),
        ),
        (
            record_id(6),
            "confirm".into(),
            "failed".into(),
            "not sent: order no-such-order is unknown to the relay".into(),
        ),
    ];
    eventually("every call readable", Duration::from_secs(5), || async {
        (read(rig.box_a.clone(), KITCHEN_A).await == expected_a).then_some(())
    })
    .await;
    assert_eq!(read(rig.box_b.clone(), KITCHEN_B).await, vec![refused_b]);
    assert_eq!(rig.otter.calls().len(), 0, "the client is off");
    let metrics = rig.app.metrics().await;
    assert_eq!(metric(&metrics, "relay_otter_backlog "), 1.0);
}

#[tokio::test]
async fn two_relays_share_the_backlog_and_the_budget() {
    const ORDERS: u32 = 30;
    const LIMIT: u32 = 6;
    let window = Duration::from_millis(1000);
    let rig = Rig::start(&[STORE], &[], |config| {
        config.otter_api.limits.confirm = LIMIT;
        config.otter_api.rate_window = window;
        // Room for a loaded machine between taking a slot and the request arriving.
        config.otter_api.rate_margin = Duration::from_millis(400);
    })
    .await;
    let other = rig.app.start_another_relay().await;
    rig.otter.set_rate_limit(LIMIT, window);
    let orders: Vec<String> = (0..ORDERS).map(order).collect();
    rig.ingest(STORE, &orders).await;
    let intents: Vec<Intent> = (0..ORDERS)
        .map(|n| accepted(n + 1, &orders[n as usize], 10))
        .collect();
    push(&rig.box_a, KITCHEN_A, &intents).await;
    rig.otter
        .wait_for_calls(ORDERS as usize, Duration::from_secs(30))
        .await;
    rig.wait_settled(Duration::from_secs(5)).await;
    let all = rig.otter.resource_calls();
    assert_eq!(all.len(), ORDERS as usize, "no 429, nothing twice");
    for order_id in &orders {
        assert_eq!(ok_calls_to(&all, &order_path(order_id, "confirm")), 1);
    }
    let accepted_by = |text: String| {
        metric(
            &text,
            "relay_otter_calls_total{kind=\"confirm\",outcome=\"accepted\"} ",
        )
    };
    let other_metrics = rig
        .app
        .client
        .get(format!("http://{}/metrics", other.admin_addr))
        .send()
        .await
        .expect("other relay's admin")
        .text()
        .await
        .expect("text");
    let (first, second) = (
        accepted_by(rig.app.metrics().await),
        accepted_by(other_metrics),
    );
    assert_eq!(first + second, f64::from(ORDERS));
    eprintln!("two relays: {first} and {second} confirms");
    other.token.cancel();
    other.handle.await.expect("joins").expect("clean stop");
}
