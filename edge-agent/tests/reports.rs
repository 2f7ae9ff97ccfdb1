//! The speed-of-service report through the agent's real path: orders over RabbitMQ, bumps and a
//! batch session over HTTP, then `/reports` and `/reports.csv` read back from SQLite — counted
//! per station (cancelled orders left out, late bumps counted), for a manager only.

mod common;

use std::time::Duration;

use common::{TestAgent, wait_until};
use kitchen_proto::OrderStatus;
use kitchen_testkit::{
    events::{line, new_order, status_update},
    http::{client, get_json, post_json},
};

const REFERENCE: &str = r#"
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
const COOK_TOKEN: &str = "kd1_reports-test-grill-cook-token-0123456789";

fn now_ms() -> i64 {
    kitchen_daemon::clock::now_ms()
}

/// The cells of the report table's row for `station`.
fn row(html: &str, station: &str) -> Vec<String> {
    let start = html
        .find(&format!("<tr data-station=\"{station}\">"))
        .unwrap_or_else(|| panic!("a row for {station} in {html}"));
    let row = &html[start..start + html[start..].find("</tr>").expect("row ends")];
    row.split("<td>")
        .skip(1)
        .map(|cell| cell.trim_end_matches("</td>").to_owned())
        .collect()
}

#[tokio::test]
async fn the_report_counts_each_stations_tickets_and_only_a_manager_reads_it() {
    let agent = TestAgent::start(Some(REFERENCE)).await;
    let base = agent.base.clone();
    let (minute, hour) = (60_000, 3_600_000);
    // o1: 2 burgers and fries, in 10 minutes ago, promised in an hour (bumped in time at both
    // stations). o2: a burger, in 20 minutes ago, promised an hour ago (bumped late). o3: a
    // burger never bumped. o4: fries, cancelled (left out).
    let orders = [
        new_order(STORE, "o1")
            .sequence(1)
            .at(now_ms() - 10 * minute)
            .pickup_at(now_ms() + hour)
            .item(line("Double Smash Burger", 2, vec![]))
            .item(line("Fries", 1, vec![]))
            .build(),
        new_order(STORE, "o2")
            .sequence(2)
            .at(now_ms() - 20 * minute)
            .pickup_at(now_ms() - hour)
            .item(line("Double Smash Burger", 1, vec![]))
            .build(),
        new_order(STORE, "o3")
            .sequence(3)
            .at(now_ms() - 10 * minute)
            .pickup_at(now_ms() + hour)
            .item(line("Double Smash Burger", 1, vec![]))
            .build(),
        new_order(STORE, "o4")
            .sequence(4)
            .at(now_ms() - 10 * minute)
            .pickup_at(now_ms() + hour)
            .item(line("Fries", 3, vec![]))
            .build(),
        status_update(STORE, "o4", "orders.cancel", OrderStatus::Canceled)
            .event_id("ev-o4-cancel")
            .sequence(5)
            .build(),
    ];
    for order in &orders {
        agent.publish(order).await;
    }
    wait_until("three open orders", WAIT, || async {
        get_json(&format!("{base}/api/orders?state=open")).await["orders"]
            .as_array()
            .is_some_and(|orders| orders.len() == 3)
    })
    .await;
    for (order, station) in [("o1", "grill"), ("o1", "fry"), ("o2", "grill")] {
        post_json(&format!("{base}/api/orders/{order}/bump?station={station}")).await;
    }
    let started = client()
        .post(format!("{base}/api/batches/grill/smash/start"))
        .json(&serde_json::json!({"quantity": 1}))
        .send()
        .await
        .expect("answers");
    assert_eq!(started.status(), 201);

    // Yesterday and today: the orders came in minutes ago, which may have been yesterday.
    let day = |days_ago: i64| {
        (chrono::Local::now() - chrono::Duration::days(days_ago))
            .format("%Y-%m-%d")
            .to_string()
    };
    let period = format!("from={}&to={}", day(1), day(0));
    let response = client()
        .get(format!("{base}/reports?{period}"))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 200);
    let html = response.text().await.expect("page");
    let grill = row(&html, "grill");
    // Tickets, bumped, p50, p90, late, on time, items, items per hour, batches started and
    // completed. The ticket times are 10 and 20 minutes and the seconds this test took; the
    // items per hour depend on whether the orders arrived in one clock hour or straddled two.
    assert_eq!(grill[0], "Grill");
    assert_eq!(
        (&grill[1..3], &grill[5..8], &grill[9..]),
        (
            &["3".to_owned(), "2".to_owned()][..],
            &["1".to_owned(), "50.0 %".to_owned(), "4".to_owned()][..],
            &["1".to_owned(), "0".to_owned()][..]
        )
    );
    assert!(grill[3].starts_with("10:0"), "{grill:?}");
    assert!(grill[4].starts_with("20:0"), "{grill:?}");
    assert!(["4.0", "2.0"].contains(&grill[8].as_str()), "{grill:?}");
    let fry = row(&html, "fry");
    assert_eq!(
        (&fry[..3], &fry[5..8], &fry[9..]),
        (
            &["Fryer".to_owned(), "1".to_owned(), "1".to_owned()][..],
            &["0".to_owned(), "100.0 %".to_owned(), "1".to_owned()][..],
            &["0".to_owned(), "0".to_owned()][..]
        )
    );
    assert!(fry[3].starts_with("10:0"), "{fry:?}");
    assert!(html.contains("<svg "), "charts drawn");

    let csv = client()
        .get(format!("{base}/reports.csv?{period}"))
        .send()
        .await
        .expect("answers");
    assert_eq!(csv.status(), 200);
    assert_eq!(
        csv.headers()["content-type"].to_str().expect("type"),
        "text/csv; charset=utf-8"
    );
    let csv = csv.text().await.expect("csv");
    let grill_line = csv
        .lines()
        .find(|line| line.contains(",grill,Grill,all,"))
        .expect("grill's line");
    let fields: Vec<&str> = grill_line.split(',').collect();
    assert_eq!(
        (
            &fields[5..7],
            fields[9],
            fields[10],
            fields[11],
            &fields[13..]
        ),
        (&["3", "2"][..], "1", "0.5000", "4", &["1", "0"][..])
    );

    // The day before had nothing; a period the wrong way round is refused with the reason.
    let html = client()
        .get(format!("{base}/reports?from={0}&to={0}", day(2)))
        .send()
        .await
        .expect("answers")
        .text()
        .await
        .expect("page");
    assert_eq!(row(&html, "grill")[1], "0");
    let reversed = client()
        .get(format!("{base}/reports?from=2026-12-02&to=2026-12-01"))
        .send()
        .await
        .expect("answers");
    assert_eq!(reversed.status(), 400);
    assert_eq!(
        reversed.json::<serde_json::Value>().await.expect("json")["error"],
        "from 2026-12-02 is after to 2026-12-01"
    );

    // A cook's tablet may not read them.
    edge_agent::pairing::pair_with_token(
        &agent.data_dir,
        "cook",
        "grill tablet",
        Some("grill"),
        COOK_TOKEN,
    )
    .expect("cook paired");
    let refused = kitchen_testkit::http::bare()
        .get(format!("{base}/reports.csv"))
        .header("authorization", format!("Bearer {COOK_TOKEN}"))
        .send()
        .await
        .expect("answers");
    assert_eq!(refused.status(), 403);
    agent.stop().await;
}

/// The relay counts what the box synced exactly as the box counts its own store: the same
/// orders, bumps, a cancel and a batch session, read back from PostgreSQL, give the same CSV.
#[tokio::test]
async fn head_office_counts_the_synced_records_as_the_box_does() {
    use common::cloud::{Cloud, postgres_addr};
    let cloud = Cloud::create(&kitchen_testkit::names::unique("report-kitchen")).await;
    cloud.import(REFERENCE).await;
    let url = cloud.agent_url(postgres_addr());
    let kitchen_id = cloud.kitchen_id.clone();
    let agent = TestAgent::start_with(Some(REFERENCE), &[STORE], move |config| {
        config.kitchen_id = kitchen_id;
        config.database_url = Some(url);
    })
    .await;
    let base = agent.base.clone();
    let minute = 60_000;
    let orders = [
        new_order(STORE, "o1")
            .sequence(1)
            .at(now_ms() - 12 * minute)
            .pickup_at(now_ms() - 5 * minute)
            .item(line(
                "Double Smash Burger",
                2,
                vec![line("Fries", 1, vec![])],
            ))
            .build(),
        new_order(STORE, "o2")
            .sequence(2)
            .at(now_ms() - 3 * minute)
            .pickup_at(now_ms() + 30 * minute)
            .item(line("Fries", 2, vec![]))
            .build(),
        new_order(STORE, "o3")
            .sequence(3)
            .at(now_ms() - 3 * minute)
            .item(line("Double Smash Burger", 1, vec![]))
            .build(),
        status_update(STORE, "o3", "orders.cancel", OrderStatus::Canceled)
            .event_id("ev-o3-cancel")
            .sequence(4)
            .build(),
    ];
    for order in &orders {
        agent.publish(order).await;
    }
    wait_until("two open orders", WAIT, || async {
        get_json(&format!("{base}/api/orders?state=open")).await["orders"]
            .as_array()
            .is_some_and(|orders| orders.len() == 2)
    })
    .await;
    for (order, station) in [("o1", "grill"), ("o1", "fry"), ("o2", "fry")] {
        post_json(&format!("{base}/api/orders/{order}/bump?station={station}")).await;
    }
    // A recall and a bump again: the last bump counts on both sides.
    post_json(&format!("{base}/api/orders/o2/recall?station=fry")).await;
    post_json(&format!("{base}/api/orders/o2/bump?station=fry")).await;
    let started = client()
        .post(format!("{base}/api/batches/fry/fries/start"))
        .json(&serde_json::json!({"quantity": 1}))
        .send()
        .await
        .expect("answers");
    assert_eq!(started.status(), 201);
    wait_until("the records reach PostgreSQL", WAIT, || async {
        cloud
            .count("SELECT count(*) FROM kitchen.order_events WHERE kind = 'order.bumped'")
            .await
            == 4
            && cloud
                .count("SELECT count(*) FROM kitchen.batch_sessions")
                .await
                == 1
            && cloud
                .count("SELECT count(*) FROM kitchen.order_events WHERE kind = 'order.cancelled'")
                .await
                == 1
    })
    .await;

    let day = |days_ago: i64| {
        (chrono::Local::now() - chrono::Duration::days(days_ago))
            .format("%Y-%m-%d")
            .to_string()
    };
    let box_csv = client()
        .get(format!("{base}/reports.csv?from={}&to={}", day(1), day(0)))
        .send()
        .await
        .expect("answers")
        .text()
        .await
        .expect("csv");
    // The box's zone as PostgreSQL names it (whole hours east of UTC are `Etc/GMT-N`).
    let offset_hours = chrono::Local::now().offset().local_minus_utc() / 3600;
    let tz = match offset_hours {
        0 => "UTC".to_owned(),
        east if east > 0 => format!("Etc/GMT-{east}"),
        west => format!("Etc/GMT+{}", -west),
    };
    let report = cloud_relay::reports::build(
        &cloud.db.pool,
        &cloud.kitchen_id,
        &cloud_relay::reports::ReportQuery {
            kitchen: Some(cloud.kitchen_id.clone()),
            from: Some(day(1)),
            to: Some(day(0)),
            tz: Some(tz),
        },
    )
    .await
    .expect("the relay's report");
    let relay_csv = kitchen_proto::report::render::csv(&report);
    assert_eq!(relay_csv, box_csv);
    // And it is not empty: grill had o1's 2 burgers, late; fry o1's 2 fries and o2's 2.
    let line = |station: &str| {
        box_csv
            .lines()
            .map(|line| line.split(',').collect::<Vec<_>>())
            .find(|fields| fields[2] == station && fields[4] == "all")
            .expect("a line")
    };
    assert_eq!(
        (&line("grill")[5..7], line("grill")[9], line("grill")[11]),
        (&["1", "1"][..], "1", "2")
    );
    assert_eq!(
        (
            &line("fry")[5..7],
            line("fry")[9],
            line("fry")[11],
            line("fry")[13]
        ),
        (&["2", "2"][..], "1", "4", "1")
    );
    agent.stop().await;
}
