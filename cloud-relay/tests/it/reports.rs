//! Head office's report from what the boxes synced: records written as a box's push writes them,
//! then `/reports` and `/reports.csv` on the admin listener — operators only, days and hours in
//! the chosen time zone, cancelled orders left out, a recall taking its bump back.

use serde_json::{Value, json};

use crate::harness::spawn_app;

const KITCHEN: &str = "k-reports";

/// `2026-12-01 hh:mm` in New York (UTC−5 in December), as Unix ms.
fn new_york(hh: i64, mm: i64) -> i64 {
    let midnight_utc = 1_796_083_200_000; // 2026-12-01T00:00:00Z
    midnight_utc + ((hh + 5) * 60 + mm) * 60_000
}

fn ticket(received_ms: i64, promised_ms: i64, lines: Value) -> Value {
    json!({"order": {"received_at_ms": received_ms, "promised_at_ms": promised_ms, "lines": lines}})
}

fn burgers(quantity: u32, fries_each: u32) -> Value {
    let modifiers = if fries_each > 0 {
        json!([{"quantity": fries_each, "station_id": "fry", "modifiers": []}])
    } else {
        json!([])
    };
    json!([{"quantity": quantity, "station_id": "grill", "modifiers": modifiers}])
}

async fn record(pool: &sqlx::PgPool, order: &str, kind: &str, data: Value, at_ms: i64) {
    sqlx::query(
        "INSERT INTO kitchen.order_events (record_id, kitchen_id, order_id, kind, data, occurred_at)
         VALUES (gen_random_uuid(), $1, $2, $3, $4, to_timestamp($5 / 1000.0))",
    )
    .bind(KITCHEN)
    .bind(order)
    .bind(kind)
    .bind(data)
    .bind(at_ms as f64)
    .execute(pool)
    .await
    .expect("record");
}

async fn session(pool: &sqlx::PgPool, station: &str, started_ms: i64, completed: bool) {
    sqlx::query(
        "INSERT INTO kitchen.batch_sessions (session_id, kitchen_id, station_id, item_id,
             item_name, quantity, device, started_at, completed_at)
         VALUES (gen_random_uuid(), $1, $2, 'x', 'X', 1, 'tablet', to_timestamp($3 / 1000.0),
                 CASE WHEN $4 THEN to_timestamp($3 / 1000.0) + interval '5 minutes' END)",
    )
    .bind(KITCHEN)
    .bind(station)
    .bind(started_ms as f64)
    .bind(completed)
    .execute(pool)
    .await
    .expect("session");
}

/// The kitchen with its grill and fryer, as `reference import` leaves them.
async fn kitchen_with_stations(pool: &sqlx::PgPool) {
    sqlx::query("INSERT INTO kitchen.kitchens (kitchen_id) VALUES ($1)")
        .bind(KITCHEN)
        .execute(pool)
        .await
        .expect("kitchen");
    for (position, (id, name)) in [("grill", "Grill"), ("fry", "Fryer")].iter().enumerate() {
        sqlx::query(
            "INSERT INTO kitchen.ref_stations (kitchen_id, id, name, position) VALUES ($1, $2, $3, $4)",
        )
        .bind(KITCHEN)
        .bind(id)
        .bind(name)
        .bind(i32::try_from(position).expect("small"))
        .execute(pool)
        .await
        .expect("station");
    }
}

#[tokio::test]
async fn the_report_counts_the_synced_records_in_the_kitchens_time_zone() {
    let app = spawn_app().await;
    let pool = &app.db.pool;
    kitchen_with_stations(pool).await;
    let minute = 60_000;
    // o1 at 12:00, due 12:20: 2 burgers with fries each; grill bumps at 12:10; fry bumps at
    // 12:05, is recalled, and bumps again at 12:08.
    let o1 = new_york(12, 0);
    record(
        pool,
        "o1",
        "order.created",
        ticket(o1, o1 + 20 * minute, burgers(2, 1)),
        o1,
    )
    .await;
    record(
        pool,
        "o1",
        "order.bumped",
        json!({"stations": ["fry"]}),
        o1 + 5 * minute,
    )
    .await;
    record(
        pool,
        "o1",
        "order.recalled",
        json!({"stations": ["fry"]}),
        o1 + 6 * minute,
    )
    .await;
    record(
        pool,
        "o1",
        "order.bumped",
        json!({"stations": ["fry"]}),
        o1 + 8 * minute,
    )
    .await;
    record(
        pool,
        "o1",
        "order.bumped",
        json!({"stations": ["grill"]}),
        o1 + 10 * minute,
    )
    .await;
    // o2 at 12:30, due 12:40, bumped 12:55: late.
    let o2 = new_york(12, 30);
    record(
        pool,
        "o2",
        "order.created",
        ticket(o2, o2 + 10 * minute, burgers(1, 0)),
        o2,
    )
    .await;
    record(
        pool,
        "o2",
        "order.bumped",
        json!({"stations": ["grill"]}),
        o2 + 25 * minute,
    )
    .await;
    // o3 at 20:30 in New York — already 1 December's 01:30 the next day in UTC.
    let o3 = new_york(20, 30);
    record(
        pool,
        "o3",
        "order.created",
        ticket(o3, o3 + 20 * minute, burgers(1, 0)),
        o3,
    )
    .await;
    record(
        pool,
        "o3",
        "order.bumped",
        json!({"stations": ["grill"]}),
        o3 + 10 * minute,
    )
    .await;
    // o4 at 22:00 the evening before in New York (1 December in UTC): not in the day.
    let o4 = new_york(-2, 0);
    record(
        pool,
        "o4",
        "order.created",
        ticket(o4, o4 + 20 * minute, burgers(5, 0)),
        o4,
    )
    .await;
    // o5: cancelled.
    let o5 = new_york(13, 0);
    record(
        pool,
        "o5",
        "order.created",
        ticket(o5, o5, json!([{"quantity": 3, "station_id": "fry"}])),
        o5,
    )
    .await;
    record(pool, "o5", "order.cancelled", json!({}), o5 + minute).await;
    session(pool, "grill", new_york(12, 0), true).await;
    session(pool, "fry", new_york(23, 30), false).await;
    session(pool, "fry", new_york(-1, 0), true).await;

    let token = cloud_relay::fleet::operators::add(pool, "alice")
        .await
        .expect("operator");
    let query = format!("kitchen={KITCHEN}&from=2026-12-01&to=2026-12-01&tz=America/New_York");
    let get = |path: String, token: Option<&str>| {
        let mut request = app.client.get(app.admin_url(&path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };

    let csv = get(format!("/reports.csv?{query}"), Some(&token))
        .await
        .expect("answers");
    assert_eq!(csv.status(), 200);
    let csv = csv.text().await.expect("csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 2 * 25, "{csv}");
    assert_eq!(
        lines[1],
        "2026-12-01,2026-12-01,grill,Grill,all,3,3,600,1500,1,0.6667,4,2.00,1,1"
    );
    assert_eq!(
        lines[1 + 13],
        "2026-12-01,2026-12-01,grill,Grill,12,2,,600,,,,3,,,"
    );
    assert_eq!(
        lines[1 + 21],
        "2026-12-01,2026-12-01,grill,Grill,20,1,,600,,,,1,,,"
    );
    assert_eq!(
        lines[26],
        "2026-12-01,2026-12-01,fry,Fryer,all,1,1,480,480,0,1.0000,2,2.00,1,0"
    );

    let page = get(format!("/reports?{query}"), Some(&token))
        .await
        .expect("answers");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("page");
    assert!(
        html.contains(
            "<tr data-station=\"grill\"><td>Grill</td><td>3</td><td>3</td><td>10:00</td>\
             <td>25:00</td><td>1</td><td>66.7 %</td><td>4</td><td>2.0</td><td>1</td>\
             <td>1</td></tr>"
        ),
        "{html}"
    );
    assert!(
        html.contains("<option selected>k-reports</option>"),
        "{html}"
    );
    assert!(html.contains("<svg "));

    // The same day in UTC: o4 in, o3 out (it is the 2nd there).
    let utc = get(
        format!("/reports.csv?kitchen={KITCHEN}&from=2026-12-02&to=2026-12-02&tz=UTC"),
        Some(&token),
    )
    .await
    .expect("answers")
    .text()
    .await
    .expect("csv");
    assert!(
        utc.contains("2026-12-02,2026-12-02,grill,Grill,all,1,1,600,600,0,1.0000,1,1.00,0,0"),
        "{utc}"
    );

    // Refusals: each with its reason.
    for (path, status, error) in [
        (
            format!("/reports.csv?kitchen={KITCHEN}&tz=Mars/Olympus"),
            400,
            "unknown time zone \"Mars/Olympus\"",
        ),
        (
            "/reports.csv?kitchen=nowhere".to_owned(),
            404,
            "unknown kitchen \"nowhere\"",
        ),
        (
            format!("/reports.csv?kitchen={KITCHEN}&from=2026-01-01&to=2026-03-01"),
            400,
            "a report covers at most 31 days (2026-01-01 to 2026-03-01 is 60)",
        ),
    ] {
        let response = get(path.clone(), Some(&token)).await.expect("answers");
        assert_eq!(response.status(), status, "{path}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"], error, "{path}");
    }
    let anonymous = get(format!("/reports.csv?{query}"), None)
        .await
        .expect("answers");
    assert_eq!(anonymous.status(), 401);
    let sign_in = get(format!("/reports?{query}"), None)
        .await
        .expect("answers");
    assert_eq!(sign_in.status(), 401);
    assert!(
        sign_in
            .text()
            .await
            .expect("page")
            .contains("id=\"signin\"")
    );
}

/// docs/images/report.png: a day of a burger kitchen — a lunch and a dinner rush, ticket times
/// growing with them — as head office's report shows it.
/// `cargo test -p cloud-relay --test it -- --ignored screenshot_of_the_report`.
#[tokio::test]
#[ignore = "makes docs/images/report.png"]
async fn screenshot_of_the_report() {
    use kitchen_testkit::browser::Browser;
    let app = spawn_app().await;
    let pool = &app.db.pool;
    kitchen_with_stations(pool).await;
    let minute = 60_000;
    let mut seed: u64 = 7;
    let mut random = |below: u64| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (seed >> 33) % below
    };
    let mut n = 0;
    for hour in 11..23_i64 {
        let per_hour = match hour {
            12 | 13 => 34,
            18 | 19 => 40,
            17 | 20 => 22,
            _ => 9,
        };
        for _ in 0..per_hour {
            n += 1;
            let order = format!("o{n}");
            let at = new_york(hour, i64::try_from(random(60)).expect("small"));
            let rush = i64::from(per_hour > 30);
            let grill_minutes = 6 + i64::try_from(random(6)).expect("small") + rush * 6;
            let fry_minutes = 3 + i64::try_from(random(3)).expect("small") + rush * 3;
            let burgers_each = u32::try_from(1 + random(3)).expect("small");
            record(
                pool,
                &order,
                "order.created",
                ticket(at, at + 15 * minute, burgers(burgers_each, 1)),
                at,
            )
            .await;
            record(
                pool,
                &order,
                "order.bumped",
                json!({"stations": ["fry"]}),
                at + fry_minutes * minute,
            )
            .await;
            record(
                pool,
                &order,
                "order.bumped",
                json!({"stations": ["grill"]}),
                at + grill_minutes * minute,
            )
            .await;
        }
        for _ in 0..(2 + random(3)) {
            session(pool, "fry", new_york(hour, 10), random(5) > 0).await;
        }
    }
    let token = cloud_relay::fleet::operators::add(pool, "alice")
        .await
        .expect("operator");
    let url = app.admin_url(&format!(
        "/reports?kitchen={KITCHEN}&from=2026-12-01&to=2026-12-01&tz=America/New_York"
    ));
    let mut browser = Browser::launch(1100, 700).await;
    browser.set_cookie(&url, "fleet_operator", &token).await;
    browser.navigate_unpaired(&url).await;
    browser
        .wait_for(
            "the charts",
            std::time::Duration::from_secs(20),
            "document.querySelectorAll('svg').length === 4",
        )
        .await;
    let images = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/images");
    browser.screenshot(&images.join("report.png")).await;
    browser.close().await;
}
