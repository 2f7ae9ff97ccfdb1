//! How long the box takes to make its speed-of-service report (docs/benchmarks.md): a store
//! with a month of a busy kitchen's orders (`BENCH_DAYS` days × `BENCH_ORDERS_PER_DAY`, default
//! 30 × 3,000; three lines each, bumped at three stations, 200 batch sessions a day), then the
//! 7-day and the 1-day report as `/reports` makes them — the store read, the counting and the
//! page — `BENCH_RUNS` times each (default 5). Prints the store's size and min / median / max.
//!
//! `cargo bench -p edge-agent --bench reports`

use std::time::{Duration, Instant};

use chrono::Local;
use edge_agent::store::Store;
use kitchen_proto::{
    reference::Reference,
    report::{Period, Report, render},
};

const REFERENCE: &str = r#"
[[stores]]
store_id = "bench-store"
brand = "Bench"

[[stations]]
id = "grill"
name = "Grill"

[[stations]]
id = "fry"
name = "Fryer"

[[stations]]
id = "drinks"
name = "Drinks"

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

[[items]]
id = "cola"
name = "Cola"
station = "drinks"
prep_seconds = 30
match = ["Cola"]
"#;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let days = env("BENCH_DAYS", 30);
    let per_day = env("BENCH_ORDERS_PER_DAY", 3_000);
    let runs = env("BENCH_RUNS", 5).max(1);
    let dir = std::env::temp_dir().join(format!("reports-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("agent.db");
    drop(Store::open(&path).expect("store"));
    let now_ms = chrono::Utc::now().timestamp_millis();
    let filled = Instant::now();
    fill(&path, now_ms, days, per_day);
    let size = std::fs::metadata(&path).map_or(0, |meta| meta.len());
    println!(
        "store: {days} days × {per_day} orders = {} orders, {:.1} MiB, filled in {:.1} s",
        days * per_day,
        size as f64 / 1_048_576.0,
        filled.elapsed().as_secs_f64()
    );
    let reference = Reference::parse(REFERENCE).expect("reference");
    let stations: Vec<(String, String)> = reference
        .stations
        .iter()
        .map(|station| (station.id.clone(), station.name.clone()))
        .collect();
    // As `/reports` reads it: on one of the read pool's connections (their page cache).
    let store = Store::open_reader(&path).expect("store");
    let today = Local::now().date_naive();
    for span in [7, 1] {
        let period = Period::last_days(today, span);
        // As `/reports` reads it: local midnight to local midnight.
        let (from_ms, to_ms) = (
            edge_agent::prep::day_start_ms(period.from, &Local),
            edge_agent::prep::day_start_ms(period.to + chrono::Days::new(1), &Local),
        );
        let (mut times, mut reads) = (Vec::new(), Vec::new());
        let mut tickets_counted = 0;
        for _ in 0..runs {
            let started = Instant::now();
            let (tickets, sessions) = store
                .report_facts(from_ms, to_ms, &reference, |ms| {
                    chrono::DateTime::from_timestamp_millis(ms)
                        .unwrap_or_default()
                        .with_timezone(&Local)
                        .naive_local()
                })
                .expect("facts");
            reads.push(started.elapsed());
            let report = Report::build(period, &stations, &tickets, &sessions);
            let page = render::body(&report);
            times.push(started.elapsed());
            tickets_counted = report.stations.iter().map(|s| s.tickets).sum::<u32>();
            assert!(page.len() > 1_000);
        }
        times.sort();
        reads.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{span}-day report ({tickets_counted} station tickets): min {:.0} ms, median {:.0} ms, max {:.0} ms ({runs} runs); the store read (median) {:.0} ms of it",
            ms(times[0]),
            ms(times[times.len() / 2]),
            ms(times[times.len() - 1]),
            ms(reads[reads.len() / 2])
        );
    }
    drop(store);
    if std::env::var_os("BENCH_KEEP").is_some() {
        println!("kept: {}", path.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// `days` of orders up to `now_ms`, written as the agent's own tables hold them.
fn fill(path: &std::path::Path, now_ms: i64, days: u64, per_day: u64) {
    let mut connection = rusqlite::Connection::open(path).expect("open");
    let tx = connection.transaction().expect("tx");
    {
        let mut order = tx
            .prepare(
                "INSERT INTO orders (order_id, store_id, source, friendly_id, state, status,
                     received_at, pickup_time, updated_at)
                 VALUES (?1, 'bench-store', 'ubereats', ?2, 'closed', 'FULFILLED', ?3, ?4, ?3)",
            )
            .expect("orders");
        let mut line = tx
            .prepare(
                "INSERT INTO order_lines (order_id, line_no, parent_no, depth, item_id, sku_id,
                     name, quantity, note, price)
                 VALUES (?1, ?2, NULL, 0, '', '', ?3, ?4, '', '9.50')",
            )
            .expect("lines");
        let mut bump = tx
            .prepare(
                "INSERT INTO order_bumps (order_id, station_id, bumped_at) VALUES (?1, ?2, ?3)",
            )
            .expect("bumps");
        let mut session = tx
            .prepare(
                "INSERT INTO batch_sessions (session_id, station_id, item_id, item_name, quantity,
                     device, started_at, completed_at, allocations)
                 VALUES (?1, 'fry', 'fries', 'Fries', 4, 'bench', ?2, ?3, '[]')",
            )
            .expect("sessions");
        let day_ms = 86_400_000_i64;
        let total = days * per_day;
        for n in 0..total {
            let n_i = i64::try_from(n).expect("small");
            // Spread evenly over the days, 11:00 to 23:00 of each.
            let day = n_i / i64::try_from(per_day).expect("small");
            let within = n_i % i64::try_from(per_day).expect("small");
            let received = now_ms - (i64::try_from(days).expect("small") - day) * day_ms
                + 11 * 3_600_000
                + within * 12 * 3_600_000 / i64::try_from(per_day).expect("small");
            let id = format!("bench-{n:08}");
            order
                .execute(rusqlite::params![
                    id,
                    format!("B{n}"),
                    received,
                    received + 20 * 60_000
                ])
                .expect("order");
            for (line_no, (name, quantity)) in
                [("Double Smash Burger", 2), ("Fries", 1), ("Cola", 2)]
                    .iter()
                    .enumerate()
            {
                line.execute(rusqlite::params![id, line_no, name, quantity])
                    .expect("line");
            }
            for (station, minutes) in [("grill", 9 + n_i % 14), ("fry", 4 + n_i % 5), ("drinks", 1)]
            {
                bump.execute(rusqlite::params![id, station, received + minutes * 60_000])
                    .expect("bump");
            }
            if n % (per_day / 200).max(1) == 0 {
                session
                    .execute(rusqlite::params![
                        format!("s-{n}"),
                        received,
                        received + 300_000
                    ])
                    .expect("session");
            }
        }
    }
    tx.commit().expect("commit");
}
