//! 86 on Otter (suspend / unsuspend per store with the mapped entity ids, the menu job followed
//! to its end), the unconfirmed-order alarm, and a relay SIGKILLed in the middle of a backlog.

use std::time::Duration;

use serde_json::json;

use super::{harness::*, otter_rig::*};

const S1: &str = "store-north";
const S2: &str = "store-south";
/// 2026-12-02T22:00:00Z
const UNTIL_MS: i64 = 1_796_248_800_000;

fn entities(stores: &[&str]) -> serde_json::Value {
    stores
        .iter()
        .map(|store| json!({"store_id": store, "entity_ids": [format!("{store}-e1"), format!("{store}-e2")]}))
        .collect()
}

#[tokio::test]
async fn an_86_suspends_each_store_its_entities_follows_the_job_and_un_86_unsuspends() {
    let rig = Rig::start(&[S1, S2], &[], |_| {}).await;
    rig.otter.set_job(2, JobEnd::Success);
    let suspended = json!({
        "suspension_id": "s-1", "item_id": ITEM, "item_name": "Double Smash Burger",
        "until_ms": UNTIL_MS, "note": "out of buns", "device": "grill-tablet", "staff": "ana",
        "entities": entities(&[S1, S2]),
    });
    push_availability(
        &rig.box_a,
        KITCHEN_A,
        &record_id(1),
        "item.suspended",
        &suspended,
    )
    .await;
    // Synced twice: nothing more.
    push_availability(
        &rig.box_a,
        KITCHEN_A,
        &record_id(1),
        "item.suspended",
        &suspended,
    )
    .await;
    rig.wait_settled(Duration::from_secs(10)).await;
    let calls = rig.otter.resource_calls();
    let suspends: Vec<(Option<String>, Option<serde_json::Value>)> = calls
        .iter()
        .filter(|call| call.endpoint == "suspend")
        .map(|call| (call.store_id.clone(), call.body.clone()))
        .collect();
    let body = |store: &str| {
        json!({"entityIds": [format!("{store}-e1"), format!("{store}-e2")], "note": "out of buns",
               "status": {"isIndefinite": false, "suspendedUntil": "2026-12-02T22:00:00Z"}})
    };
    assert_eq!(
        suspends,
        [
            (Some(S1.to_owned()), Some(body(S1))),
            (Some(S2.to_owned()), Some(body(S2)))
        ]
    );
    // Each job looked at until SUCCESS: PENDING twice, then SUCCESS.
    let polls = |store: &str| {
        calls
            .iter()
            .filter(|call| call.endpoint == "job_status" && call.store_id.as_deref() == Some(store))
            .count()
    };
    assert_eq!((polls(S1), polls(S2)), (3, 3));
    let rows: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
        "SELECT store_id, state, detail, job_id FROM otter.callbacks WHERE kind = 'suspend'
         ORDER BY store_id",
    )
    .fetch_all(&rig.app.db.pool)
    .await
    .expect("rows");
    assert_eq!(rows.len(), 2);
    for (store, state, detail, job_id) in &rows {
        assert_eq!(
            (state.as_str(), detail.as_str()),
            ("accepted", "86'd on Otter"),
            "{store}"
        );
        assert!(job_id.as_deref().is_some_and(|id| id.starts_with("job-")));
    }

    // Un-86: one unsuspend per store.
    let back = json!({
        "suspension_id": "s-1", "item_id": ITEM, "item_name": "Double Smash Burger",
        "note": "buns delivered", "device": "grill-tablet", "staff": null,
        "entities": entities(&[S1, S2]),
    });
    push_availability(
        &rig.box_a,
        KITCHEN_A,
        &record_id(2),
        "item.unsuspended",
        &back,
    )
    .await;
    rig.wait_settled(Duration::from_secs(10)).await;
    let unsuspends: Vec<(Option<String>, Option<serde_json::Value>)> = rig
        .otter
        .resource_calls()
        .iter()
        .filter(|call| call.endpoint == "unsuspend")
        .map(|call| (call.store_id.clone(), call.body.clone()))
        .collect();
    let body = |store: &str| {
        json!({"entityIds": [format!("{store}-e1"), format!("{store}-e2")],
               "note": "buns delivered"})
    };
    assert_eq!(
        unsuspends,
        [
            (Some(S1.to_owned()), Some(body(S1))),
            (Some(S2.to_owned()), Some(body(S2)))
        ]
    );

    // A job that FAILS: the call is failed with the reason; an empty entity list calls nothing;
    // indefinite: no time.
    rig.otter.set_job(0, JobEnd::Failed);
    let indefinite = json!({
        "suspension_id": "s-2", "item_id": ITEM, "item_name": "Double Smash Burger",
        "until_ms": null, "note": "fryer down", "device": "grill-tablet", "staff": null,
        "entities": [{"store_id": S1, "entity_ids": []},
                     {"store_id": S2, "entity_ids": ["store-south-e1"]}],
    });
    push_availability(
        &rig.box_a,
        KITCHEN_A,
        &record_id(3),
        "item.suspended",
        &indefinite,
    )
    .await;
    rig.wait_settled(Duration::from_secs(10)).await;
    let last = rig
        .otter
        .resource_calls()
        .into_iter()
        .filter(|call| call.endpoint == "suspend")
        .collect::<Vec<_>>();
    assert_eq!(last.len(), 3, "one more suspend, for the south store only");
    assert_eq!(
        last[2].body,
        Some(
            json!({"entityIds": ["store-south-e1"], "note": "fryer down",
                    "status": {"isIndefinite": true, "suspendedUntil": null}})
        )
    );
    let (state, reason, job_id): (String, String, String) = sqlx::query_as(
        "SELECT state, reason, job_id FROM otter.callbacks
         WHERE record_id = $1::uuid",
    )
    .bind(record_id(3))
    .fetch_one(&rig.app.db.pool)
    .await
    .expect("row");
    assert_eq!(
        (state.as_str(), reason),
        ("failed", format!("Otter's menu job {job_id} FAILED"))
    );
}

#[tokio::test]
async fn an_order_no_box_received_is_never_confirmed_and_raises_the_alarm() {
    let rig = Rig::start(&[S1], &[], |config| {
        config.otter_api.confirm_alarm_after = Duration::from_millis(1500);
    })
    .await;
    let (shown, lost) = ("order-shown".to_owned(), "order-lost".to_owned());
    let cancelled = "order-cancelled".to_owned();
    rig.ingest(S1, &[shown.clone(), lost.clone(), cancelled.clone()])
        .await;
    // Cancelled on Otter before any box showed it: no alarm for it.
    let cancel = status_event(
        "orders.cancel_order",
        "evt-cancel",
        S1,
        &cancelled,
        "2026-12-02T18:01:00Z",
    );
    assert_eq!(rig.app.post_signed(&cancel).await.status(), 200);
    let data = json!({"order_id": shown, "store_id": S1, "prep_minutes": 8, "auto": true,
                      "device": null});
    push(
        &rig.box_a,
        KITCHEN_A,
        &[(record_id(1), "order.accepted", shown.clone(), data)],
    )
    .await;
    let listed = eventually("the alarm", Duration::from_secs(10), || async {
        let listed: serde_json::Value = rig
            .app
            .client
            .get(rig.app.admin_url("/otter/unconfirmed"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (listed.as_array()?.len() == 1).then_some(listed)
    })
    .await;
    assert_eq!(listed[0]["order_id"], json!(lost));
    assert_eq!(listed[0]["store_id"], json!(S1));
    assert_eq!(listed[0]["status"], json!("NEW_ORDER"));
    eventually("the gauge", Duration::from_secs(5), || async {
        let metrics = rig.app.metrics().await;
        (metric(&metrics, "relay_otter_unconfirmed_orders ") == 1.0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        rig.app
            .db
            .count("SELECT count(*) FROM otter.unconfirmed_alarms WHERE order_id = 'order-lost'")
            .await,
        1,
        "raised once"
    );
    assert_eq!(
        rig.app
            .db
            .count("SELECT count(*) FROM otter.unconfirmed_alarms")
            .await,
        1
    );
    let calls = rig.otter.resource_calls();
    assert_eq!(ok_calls_to(&calls, &order_path(&shown, "confirm")), 1);
    assert!(
        calls.iter().all(|call| !call.path.contains(&lost)),
        "never confirmed"
    );
}

#[tokio::test]
async fn a_relay_sigkilled_mid_backlog_calls_nothing_twice_after_restart() {
    const ORDERS: u32 = 12;
    const LIMIT: u32 = 4;
    // The in-process relay ingests webhooks but does not call Otter (no URL); the binary does.
    let rig = Rig::start(&[S1], &[], |config| config.otter_api.url = None).await;
    let orders: Vec<String> = (1..=ORDERS).map(|n| format!("order-k{n:02}")).collect();
    rig.ingest(S1, &orders).await;
    let intents: Vec<Intent> = orders
        .iter()
        .enumerate()
        .map(|(n, order_id)| {
            let data = json!({"order_id": order_id, "store_id": S1, "prep_minutes": 10,
                              "auto": true, "device": null});
            (
                record_id(n as u32 + 1),
                "order.accepted",
                order_id.clone(),
                data,
            )
        })
        .collect();
    push(&rig.box_a, KITCHEN_A, &intents).await;
    let dir = kitchen_testkit::dir::TempDir::new("relay-otter");
    let config_file = dir.path().join("relay.toml");
    std::fs::write(
        &config_file,
        format!(
            "[otter_api]\nrate_window = 3000\nrate_margin = 200\nretry_initial = 100\n\
             request_timeout = 2000\nlease = 3000\n[otter_api.limits]\nconfirm = {LIMIT}\n"
        ),
    )
    .expect("config file");
    let start = || {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_cloud-relay"))
            .arg("--config")
            .arg(&config_file)
            .env("RELAY_LISTEN", "127.0.0.1:0")
            .env("RELAY_ADMIN_LISTEN", "127.0.0.1:0")
            .env("DATABASE_URL", &rig.app.db.url)
            .env("AMQP_URL", amqp_url())
            .env("RELAY_ORDER_EXCHANGE", &rig.app.broker.order_exchange)
            .env("RELAY_RAW_EVENTS_EXCHANGE", &rig.app.broker.raw_exchange)
            .env("OTTER_WEBHOOK_SECRET", SECRET)
            .env("OTTER_API_URL", rig.otter.url())
            .env("OTTER_CLIENT_ID", CLIENT_ID)
            .env("OTTER_CLIENT_SECRET", CLIENT_SECRET)
            .env("RELAY_DATABASE_POOL_SIZE", "4")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("relay binary starts")
    };
    let mut relay = start();
    // The first budget's worth goes out, then the relay waits on the budget: kill it there,
    // with nothing in flight.
    rig.otter
        .wait_for_calls(LIMIT as usize, Duration::from_secs(30))
        .await;
    eventually("nothing in flight", Duration::from_secs(5), || async {
        let sent: i64 =
            sqlx::query_scalar("SELECT count(*) FROM otter.callbacks WHERE state = 'sent'")
                .fetch_one(&rig.app.db.pool)
                .await
                .ok()?;
        (sent == 0).then_some(())
    })
    .await;
    relay.start_kill().expect("SIGKILL");
    relay.wait().await.expect("killed");
    let before = rig.otter.resource_calls().len();
    assert!(
        before < ORDERS as usize,
        "killed mid-backlog ({before} made)"
    );
    let mut relay = start();
    let calls = rig
        .otter
        .wait_for_calls(ORDERS as usize, Duration::from_secs(60))
        .await;
    rig.wait_settled(Duration::from_secs(10)).await;
    let all = rig.otter.resource_calls();
    assert_eq!(all.len(), ORDERS as usize, "nothing called twice: {all:?}");
    for order_id in &orders {
        assert_eq!(
            ok_calls_to(&calls, &order_path(order_id, "confirm")),
            1,
            "{order_id}"
        );
    }
    relay.start_kill().expect("stop");
    relay.wait().await.expect("stopped");
}
