//! The quiet period (waiting until everything accepted has arrived everywhere), the batch
//! counts against the oracle, and the table printed at the end.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use sqlx::Row;

use crate::{
    check::{CardDeaths, Findings},
    faults::{Fault, FaultKind},
    load::{Kind, Record, lock, oracle},
    sse::Tablet,
    system::{KITCHENS, STATION, System},
};

/// Waits until the relays' outbox is empty and each kitchen holds every accepted order of its
/// stores with nothing left to sync; an error says what was still missing at `timeout`. A
/// kitchen whose card died holds exactly its open orders (one closed before the new card
/// recovered may not be on it: the check says which may be missing).
pub async fn settle(
    system: &System,
    record: &crate::load::Shared,
    timeout: Duration,
    cards: &CardDeaths,
) -> anyhow::Result<()> {
    let expected = oracle(&lock(record));
    let deadline = Instant::now() + timeout;
    let pg = sqlx::PgPool::connect(&system.pg_url).await?;
    loop {
        let unpublished: i64 =
            sqlx::query("SELECT count(*) AS n FROM otter.outbox WHERE published_at IS NULL")
                .fetch_one(&pg)
                .await
                .map_or(-1, |row| row.get("n"));
        let mut missing = Vec::new();
        for (k, agent) in system.agents.iter().enumerate() {
            let card_died = cards.any(k);
            let want = expected
                .values()
                .filter(|e| KITCHENS[k].1.contains(&e.store_id.as_str()))
                .filter(|e| !(card_died && (e.cancelled || e.fulfilled)))
                .count() as i64;
            let sql = if card_died {
                "SELECT count(*) FROM orders WHERE state NOT IN ('cancelled', 'closed')"
            } else {
                "SELECT count(*) FROM orders"
            };
            let orders = rusqlite::Connection::open_with_flags(
                agent.data_dir.join(edge_agent::STORE_FILE),
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .and_then(|db| db.query_row(sql, [], |row| row.get::<_, i64>(0)));
            // The records not yet in PostgreSQL, as the agent counts them past its push cursor.
            let backlog = kitchen_testkit::http::client()
                .get(format!("{}/api/status", agent.base))
                .send()
                .await
                .ok()
                .map(|response| response.json::<serde_json::Value>());
            let backlog = match backlog {
                Some(body) => body
                    .await
                    .ok()
                    .and_then(|body| body["sync"]["backlog"].as_i64()),
                None => None,
            };
            match (orders, backlog) {
                (Ok(orders), Some(0)) if orders >= want => {}
                (Ok(orders), backlog) => missing.push(format!(
                    "{}: {orders}/{want} orders, {} unsynced",
                    agent.kitchen_id,
                    backlog.map_or_else(|| "? (no status)".to_owned(), |n| n.to_string())
                )),
                (Err(error), _) => missing.push(format!("{}: {error}", agent.kitchen_id)),
            }
        }
        if unpublished == 0 && missing.is_empty() {
            // The tablets read the last events within a moment.
            tokio::time::sleep(Duration::from_secs(2)).await;
            pg.close().await;
            return Ok(());
        }
        if Instant::now() > deadline {
            pg.close().await;
            anyhow::bail!(
                "after {timeout:?}: {unpublished} unpublished in the relay outbox; {}",
                missing.join("; ")
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Each kitchen's grill count (`/api/batches`) against the oracle: the burgers of every order
/// of its stores that is open (neither cancelled nor fulfilled) and not bumped there, less the
/// units batch sessions completed for it (as the completions answered). A bump the agent never
/// answered counts as done if its record reached PostgreSQL; one a dead card answered, or a
/// completion, only if it did.
pub async fn batch_counts(
    system: &System,
    record: &Record,
    cards: &CardDeaths,
) -> anyhow::Result<Vec<String>> {
    let expected = oracle(record);
    let pg = sqlx::PgPool::connect(&system.pg_url).await?;
    let mut wrong = Vec::new();
    for (k, agent) in system.agents.iter().enumerate() {
        let synced_bumps = ids_of(
            &pg,
            "SELECT order_id AS id FROM kitchen.order_events
              WHERE kitchen_id = $1 AND kind = 'order.bumped'",
            &agent.kitchen_id,
        )
        .await?;
        let completed = ids_of(
            &pg,
            "SELECT session_id::text AS id FROM kitchen.batch_sessions
              WHERE kitchen_id = $1 AND completed_at IS NOT NULL",
            &agent.kitchen_id,
        )
        .await?;
        let bumped: BTreeSet<&str> = record
            .bumps
            .iter()
            .filter(|b| b.kitchen == k)
            .filter(|b| {
                let synced = synced_bumps.contains(&b.order_id);
                (b.status == Some(200) && (synced || !cards.before_last(k, b.at)))
                    || (b.status.is_none() && synced)
            })
            .map(|b| b.order_id.as_str())
            .collect();
        let mut batched: BTreeMap<&str, u32> = BTreeMap::new();
        for session in record.sessions.iter().filter(|s| s.kitchen == k) {
            let kept = |id: &String| completed.contains(id);
            if session
                .answered
                .1
                .is_some_and(|at| cards.before_last(k, at))
                && !matches!(&session.started, Some((_, Some(id))) if kept(id))
            {
                continue;
            }
            for (order_id, units) in session.allocations.iter().flatten() {
                *batched.entry(order_id.as_str()).or_default() += units;
            }
        }
        let open: BTreeMap<&str, u32> = expected
            .iter()
            .filter(|(id, e)| {
                KITCHENS[k].1.contains(&e.store_id.as_str())
                    && !e.cancelled
                    && !e.fulfilled
                    && !bumped.contains(id.as_str())
            })
            .map(|(id, e)| {
                let done = batched.get(id.as_str()).copied().unwrap_or(0);
                (id.as_str(), e.quantity.saturating_sub(done))
            })
            .filter(|(_, units)| *units > 0)
            .collect();
        let want: u32 = open.values().sum();
        let body: serde_json::Value = kitchen_testkit::http::client()
            .get(format!("{}/api/batches?station={STATION}", agent.base))
            .send()
            .await?
            .json()
            .await?;
        let item = body["items"]
            .as_array()
            .and_then(|items| items.iter().find(|i| i["item_id"] == "double-smash"));
        let got = item.and_then(|i| i["quantity"].as_u64()).unwrap_or(0);
        let orders = item
            .and_then(|i| i["order_ids"].as_array())
            .map_or(0, Vec::len);
        if got != u64::from(want) || orders != open.len() {
            wrong.push(format!(
                "kitchen {}: grill counts {got} burgers over {orders} orders, the oracle {want} over {}",
                agent.kitchen_id,
                open.len()
            ));
        }
    }
    pg.close().await;
    Ok(wrong)
}

/// The `id` column of `sql` run for `kitchen_id` (`$1`).
async fn ids_of(pg: &sqlx::PgPool, sql: &str, kitchen_id: &str) -> sqlx::Result<BTreeSet<String>> {
    Ok(sqlx::query(sql)
        .bind(kitchen_id)
        .fetch_all(pg)
        .await?
        .iter()
        .map(|row| row.get("id"))
        .collect())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

pub fn print(
    seed: u64,
    load_time: Duration,
    record: &Record,
    faults: &[Fault],
    tablets: &[Tablet],
    findings: &Findings,
) {
    let accepted = record
        .webhooks
        .iter()
        .filter(|w| w.accepted.is_some())
        .count();
    let new_orders = record
        .webhooks
        .iter()
        .filter(|w| w.kind == Kind::New && w.accepted.is_some())
        .count();
    // Webhook → tablet latency of new orders sent outside every fault window (from the fault
    // to a second after recovery).
    let in_fault = |at: Instant| {
        faults.iter().any(|f| {
            let end = f.recovered.unwrap_or(f.repaired + Duration::from_secs(60));
            at + Duration::from_secs(1) >= f.start && at <= end + Duration::from_secs(1)
        })
    };
    let mut latencies = Vec::new();
    for webhook in record.webhooks.iter().filter(|w| w.kind == Kind::New) {
        let Some((_, sent)) = webhook.accepted else {
            continue;
        };
        if in_fault(sent) {
            continue;
        }
        for (k, (_, stores)) in KITCHENS.iter().enumerate() {
            if stores.contains(&webhook.store_id.as_str())
                && let Some(seen) = tablets[k].created.get(&webhook.order_id)
            {
                latencies.push(seen.saturating_duration_since(sent));
            }
        }
    }
    latencies.sort();
    println!();
    println!("| chaos run, seed {seed} | |");
    println!("|---|---|");
    println!(
        "| duration of load and faults | {:.0} s |",
        load_time.as_secs_f64()
    );
    println!(
        "| webhooks accepted (200) | {accepted} of {} ({new_orders} new orders; {} duplicates re-sent) |",
        record.webhooks.len(),
        record.duplicates_sent
    );
    println!(
        "| orders/s held | {:.1} |",
        new_orders as f64 / load_time.as_secs_f64()
    );
    println!(
        "| webhook → tablet outside faults | p99 {}, max {} over {} deliveries |",
        ms(percentile(&latencies, 99.0)),
        ms(latencies.last().copied().unwrap_or_default()),
        latencies.len()
    );
    for kind in FaultKind::ALL {
        let of_kind: Vec<&Fault> = faults.iter().filter(|f| f.kind == kind).collect();
        if of_kind.is_empty() {
            continue;
        }
        let mut recovery: Vec<Duration> = of_kind
            .iter()
            .filter_map(|f| f.recovered.map(|r| r - f.repaired))
            .collect();
        recovery.sort();
        let unrecovered = of_kind.len() - recovery.len();
        println!(
            "| {} | {} injected; recovery p50 {}, max {}{} |",
            kind.name(),
            of_kind.len(),
            ms(percentile(&recovery, 50.0)),
            ms(recovery.last().copied().unwrap_or_default()),
            if unrecovered > 0 {
                format!(", {unrecovered} not within 60 s")
            } else {
                String::new()
            }
        );
    }
    let kills: Vec<String> = crate::faults::NAMES
        .iter()
        .map(|name| {
            let n = faults
                .iter()
                .filter(|f| {
                    matches!(
                        f.kind,
                        FaultKind::KillRelay | FaultKind::KillAgent | FaultKind::CardDies
                    )
                })
                .filter(|f| f.target == *name)
                .count();
            format!("{name} {n}")
        })
        .collect();
    println!("| SIGKILLs per process | {} |", kills.join(", "));
    for (k, tablet) in tablets.iter().enumerate() {
        println!(
            "| tablet at {} | {} events, {} reconnects, {} snapshots, {} gaps/duplicates |",
            KITCHENS[k].0,
            tablet.events,
            tablet.reconnects,
            tablet.snapshots,
            tablet.violations.len()
        );
    }
    println!(
        "| checked | {} orders × their kitchens, {} bumps (tapped or scanned) |",
        findings.orders_checked, findings.bumps_checked,
    );
    println!(
        "| grill scanners | {} tickets read; answered {} accepted, {} rejected |",
        findings.scans_checked, findings.scans_answered.0, findings.scans_answered.1
    );
    println!(
        "| batch sessions | {} started, {} completed, {} units allocated |",
        findings.sessions_checked, findings.sessions_completed.0, findings.sessions_completed.1
    );
    println!(
        "| lost / doubled / wrong | {} / {} / {} |",
        findings.lost.len(),
        findings.doubled.len(),
        findings.wrong.len()
    );
    for (what, list) in [
        ("lost", &findings.lost),
        ("doubled", &findings.doubled),
        ("wrong", &findings.wrong),
        ("leftover", &findings.leftovers),
    ] {
        for line in list.iter().take(10) {
            println!("{what}: {line}");
        }
        if list.len() > 10 {
            println!("{what}: ... and {} more", list.len() - 10);
        }
    }
}
