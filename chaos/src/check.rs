//! The check after the quiet period, record by record, against the oracle computed from what
//! the relays and agents answered: PostgreSQL's orders, every kitchen's SQLite store, the
//! records the boxes synced back, the tablets' streams, and what is left in outboxes and
//! dead-letter queues.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Instant,
};

use sqlx::Row;

use crate::{
    faults::{Fault, FaultKind},
    load::{Expected, Kind, Record, oracle},
    sse::Tablet,
    system::{KITCHENS, System},
};

/// What the check found: discrepancies (lost, doubled, wrong) and leftovers (listed, with
/// their reason; not failures by themselves unless they stand for a lost record).
#[derive(Debug, Default)]
pub struct Findings {
    pub lost: Vec<String>,
    pub doubled: Vec<String>,
    pub wrong: Vec<String>,
    pub leftovers: Vec<String>,
    pub orders_checked: usize,
    pub bumps_checked: usize,
    pub scans_checked: usize,
    /// Scans the agent answered on its stream: accepted, rejected.
    pub scans_answered: (usize, usize),
    pub sessions_checked: usize,
    /// Sessions completed (answered `200`), and the units they gave to orders.
    pub sessions_completed: (usize, u32),
}

impl Findings {
    pub fn clean(&self) -> bool {
        self.lost.is_empty() && self.doubled.is_empty() && self.wrong.is_empty()
    }
}

fn served_by(kitchen: usize, store_id: &str) -> bool {
    KITCHENS[kitchen].1.contains(&store_id)
}

/// When each kitchen's card last died (`FaultKind::CardDies`). What its box answered before
/// then and had not pushed to PostgreSQL — a bump, a scan, a batch session started or
/// completed — went with the card: listed as a leftover, not a loss. What it had pushed must
/// be there as always.
#[derive(Debug, Default)]
pub struct CardDeaths {
    last: [Option<Instant>; KITCHENS.len()],
}

impl CardDeaths {
    pub fn of(faults: &[Fault]) -> Self {
        let mut deaths = Self::default();
        for fault in faults.iter().filter(|f| f.kind == FaultKind::CardDies) {
            if let Some(k) = KITCHENS
                .iter()
                .position(|(name, _)| fault.target == format!("agent-{name}"))
            {
                deaths.last[k] = Some(deaths.last[k].map_or(fault.start, |l| l.max(fault.start)));
            }
        }
        deaths
    }

    /// Whether something answered at `at` came from a card of kitchen `k` that has died since.
    pub fn before_last(&self, k: usize, at: Instant) -> bool {
        self.last[k].is_some_and(|died| at < died)
    }

    pub fn any(&self, k: usize) -> bool {
        self.last[k].is_some()
    }

    /// When kitchen `k`'s card last died, in wall-clock ms.
    pub fn last_wall_ms(&self, k: usize) -> Option<i64> {
        self.last[k].map(wall_ms)
    }
}

/// `at` on the wall clock, in ms since the epoch (the agents' clock: same machine, and no clock
/// jump overlaps a card death — the random schedule injects one fault at a time).
fn wall_ms(at: Instant) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    now - at.elapsed().as_millis() as i64
}

/// Checks PostgreSQL (the cluster must be up) and each agent's SQLite file (the agents must be
/// stopped).
pub async fn check(
    system: &System,
    record: &Record,
    tablets: &[Tablet],
    cards: &CardDeaths,
) -> anyhow::Result<Findings> {
    let mut findings = Findings::default();
    let expected = oracle(record);
    findings.orders_checked = expected.len();
    let pg = sqlx::PgPool::connect(&system.pg_url).await?;

    // The relays' side: every accepted webhook stored once, every order once, as the oracle says.
    let stored: BTreeSet<String> = sqlx::query("SELECT event_id FROM otter.webhook_events")
        .fetch_all(&pg)
        .await?
        .iter()
        .map(|row| row.get("event_id"))
        .collect();
    for webhook in record.webhooks.iter().filter(|w| w.accepted.is_some()) {
        if !stored.contains(&webhook.event_id) {
            findings.lost.push(format!(
                "webhook {} ({:?} of {}) answered 200 but not in otter.webhook_events",
                webhook.event_id, webhook.kind, webhook.order_id
            ));
        }
    }
    let rows = sqlx::query(
        "SELECT o.order_id, o.store_id, o.status,
                (SELECT coalesce(sum(quantity), 0)::bigint FROM otter.order_items i
                  WHERE i.order_id = o.order_id) AS quantity
           FROM otter.orders o",
    )
    .fetch_all(&pg)
    .await?;
    let in_pg: BTreeMap<String, (String, String, i64)> = rows
        .iter()
        .map(|row| {
            (
                row.get("order_id"),
                (row.get("store_id"), row.get("status"), row.get("quantity")),
            )
        })
        .collect();
    for (order_id, want) in &expected {
        match in_pg.get(order_id) {
            None => findings
                .lost
                .push(format!("order {order_id}: accepted, not in otter.orders")),
            Some((store_id, status, quantity)) => {
                let cancelled = status == "CANCELED";
                let fulfilled = status == "FULFILLED";
                if store_id != &want.store_id
                    || cancelled != want.cancelled
                    || fulfilled != want.fulfilled
                {
                    findings.wrong.push(format!(
                        "order {order_id} in PostgreSQL: store {store_id}, status {status}; \
                         expected {want:?}"
                    ));
                } else if !want.cancelled && *quantity != i64::from(want.quantity) {
                    findings.wrong.push(format!(
                        "order {order_id} in PostgreSQL: {quantity} burgers, expected {}",
                        want.quantity
                    ));
                }
            }
        }
    }
    for order_id in in_pg.keys().filter(|id| !expected.contains_key(*id)) {
        findings.doubled.push(format!(
            "order {order_id} in otter.orders but no accepted webhook made it"
        ));
    }
    for row in sqlx::query(
        "SELECT event_id, store_id, attempts, last_error FROM otter.outbox
          WHERE published_at IS NULL ORDER BY id",
    )
    .fetch_all(&pg)
    .await?
    {
        let event_id: String = row.get("event_id");
        let error: Option<String> = row.get("last_error");
        findings.lost.push(format!(
            "relay outbox: {event_id} ({}) unpublished after {} attempts: {}",
            row.get::<String, _>("store_id"),
            row.get::<i32, _>("attempts"),
            error.unwrap_or_default()
        ));
    }

    for (k, agent) in system.agents.iter().enumerate() {
        check_kitchen(&mut findings, &pg, (k, agent), &expected, record, cards).await?;
        let db = rusqlite::Connection::open(agent.data_dir.join(edge_agent::STORE_FILE))?;
        let at = (k, agent, &tablets[k]);
        crate::check_floor::check(&mut findings, &pg, &db, at, record, cards).await?;
        let dead = dead_letters(&system.broker.url(), &agent.kitchen_id).await?;
        if dead > 0 {
            findings.leftovers.push(format!(
                "{}: {dead} message(s) in edge.{}.dead (refused by the agent)",
                agent.kitchen_id, agent.kitchen_id
            ));
        }
        for violation in &tablets[k].violations {
            findings
                .doubled
                .push(format!("tablet at {}: {violation}", agent.kitchen_id));
        }
    }
    pg.close().await;
    Ok(findings)
}

async fn check_kitchen(
    findings: &mut Findings,
    pg: &sqlx::PgPool,
    (k, agent): (usize, &crate::system::Agent),
    expected: &BTreeMap<String, Expected>,
    record: &Record,
    cards: &CardDeaths,
) -> anyhow::Result<()> {
    let kitchen = &agent.kitchen_id;
    let db = rusqlite::Connection::open(agent.data_dir.join(edge_agent::STORE_FILE))?;
    // When this card recovered the kitchen from PostgreSQL (ms; a card that never died has no
    // use for it). An order cancelled or fulfilled before then was closed when the new card read
    // the kitchen's open orders: the card holds it closed (its events were still in the queue)
    // or not at all.
    let recovered_ms: i64 = db
        .query_row(
            "SELECT value FROM sync_cursors WHERE name = 'recovery'",
            [],
            |row| row.get(0),
        )
        .unwrap_or(0);
    let closed_before_recovery = |order_id: &str| {
        cards.any(k)
            && record.webhooks.iter().any(|w| {
                matches!(w.kind, Kind::Cancel | Kind::Fulfil)
                    && w.order_id == order_id
                    && w.accepted.is_some()
                    && w.first_sent
                        .is_some_and(|sent| wall_ms(sent) < recovered_ms)
            })
    };
    let mut statement = db.prepare(
        // The announcements counted in one pass over the log (the log has no index by order:
        // a count per order was quadratic, minutes over a 30-minute run's log).
        "SELECT o.order_id, o.store_id, o.state,
                (SELECT coalesce(sum(quantity), 0) FROM order_lines l
                  WHERE l.order_id = o.order_id AND l.depth = 0),
                coalesce(c.n, 0)
           FROM orders o
           LEFT JOIN (SELECT order_id, count(*) AS n FROM event_log
                       WHERE kind = 'order.created' GROUP BY order_id) c
             ON c.order_id = o.order_id",
    )?;
    let at_kitchen: BTreeMap<String, (String, String, i64, i64)> = statement
        .query_map([], |row| {
            Ok((
                row.get(0)?,
                (row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?),
            ))
        })?
        .collect::<Result<_, _>>()?;
    for (order_id, want) in expected.iter().filter(|(_, e)| served_by(k, &e.store_id)) {
        let Some((_, state, quantity, created)) = at_kitchen.get(order_id) else {
            if closed_before_recovery(order_id) {
                continue;
            }
            // On a kitchen whose card died, its story, for the replay: each webhook's kind and
            // when it was sent (wall ms) against when the new card recovered.
            let story = if cards.any(k) {
                let sent: Vec<String> = record
                    .webhooks
                    .iter()
                    .filter(|w| w.order_id == *order_id)
                    .map(|w| match (w.accepted, w.first_sent) {
                        (Some(_), Some(sent)) => format!(
                            "{:?} {:+} ms ({} attempts)",
                            w.kind,
                            wall_ms(sent) - recovered_ms,
                            w.attempts
                        ),
                        _ => format!("{:?} never accepted", w.kind),
                    })
                    .collect();
                format!(
                    " (webhooks against the new card's recovery: {})",
                    sent.join(", ")
                )
            } else {
                String::new()
            };
            findings.lost.push(format!(
                "order {order_id}: accepted, not at kitchen {kitchen}{story}"
            ));
            continue;
        };
        if *created > 1 {
            findings.doubled.push(format!(
                "order {order_id} announced {created} times at kitchen {kitchen}"
            ));
        }
        if (state == "cancelled") != want.cancelled || (state == "closed") != want.fulfilled {
            findings.wrong.push(format!(
                "order {order_id} at kitchen {kitchen}: {state}, expected cancelled={} fulfilled={}",
                want.cancelled, want.fulfilled
            ));
        } else if !want.cancelled && *quantity != i64::from(want.quantity) {
            findings.wrong.push(format!(
                "order {order_id} at kitchen {kitchen}: {quantity} burgers, expected {}",
                want.quantity
            ));
        }
    }
    for (order_id, (store_id, ..)) in &at_kitchen {
        if !expected.contains_key(order_id) || !served_by(k, store_id) {
            findings.doubled.push(format!(
                "order {order_id} ({store_id}) at kitchen {kitchen} without an accepted webhook"
            ));
        }
    }
    let gaps: i64 = db.query_row("SELECT count(*) FROM sequence_gaps", [], |r| r.get(0))?;
    if gaps > 0 {
        findings
            .lost
            .push(format!("kitchen {kitchen}: {gaps} sequence gap(s) open"));
    }
    // Every order record still in the box's log (the sync reads it from there, past its
    // cursor) must be in PostgreSQL by now, once.
    let mut logged = db.prepare(
        "SELECT kind, record_id FROM event_log
          WHERE record_id IS NOT NULL AND kind LIKE 'order.%' ORDER BY seq",
    )?;
    let logged: Vec<(String, String)> = logged
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let in_postgres: BTreeMap<String, i64> = sqlx::query(
        "SELECT record_id::text AS id, count(*) AS n FROM kitchen.order_events
          WHERE kitchen_id = $1 AND record_id = ANY($2::uuid[]) GROUP BY record_id",
    )
    .bind(kitchen)
    .bind(logged.iter().map(|(_, id)| id.clone()).collect::<Vec<_>>())
    .fetch_all(pg)
    .await?
    .iter()
    .map(|row| (row.get("id"), row.get("n")))
    .collect();
    for (kind, record_id) in &logged {
        if !in_postgres.contains_key(record_id) {
            findings.lost.push(format!(
                "kitchen {kitchen}: logged record {kind} {record_id} never synced"
            ));
        }
    }

    // What the box synced: one `order.created` per order it holds, one `order.bumped` per
    // bump it answered.
    let synced: BTreeMap<(String, String), i64> = sqlx::query(
        "SELECT order_id, kind, count(*) AS n FROM kitchen.order_events
          WHERE kitchen_id = $1 AND kind IN ('order.created', 'order.cancelled', 'order.bumped')
          GROUP BY order_id, kind",
    )
    .bind(kitchen)
    .fetch_all(pg)
    .await?
    .iter()
    .map(|row| ((row.get("order_id"), row.get("kind")), row.get("n")))
    .collect();
    for (order_id, (_, state, ..)) in &at_kitchen {
        let count = |kind: &str| {
            synced
                .get(&(order_id.clone(), kind.to_owned()))
                .copied()
                .unwrap_or(0)
        };
        let n = count("order.created");
        // An order whose cancellation reached the kitchen before it is announced cancelled.
        let born_cancelled = n == 0 && state == "cancelled" && count("order.cancelled") == 1;
        if n != 1 && !born_cancelled {
            let list = if n == 0 {
                &mut findings.lost
            } else {
                &mut findings.doubled
            };
            list.push(format!(
                "order {order_id}: {n} order.created rows for {kitchen} in kitchen.order_events"
            ));
        }
    }
    for bump in record.bumps.iter().filter(|b| b.kitchen == k) {
        findings.bumps_checked += 1;
        let n = synced
            .get(&(bump.order_id.clone(), "order.bumped".to_owned()))
            .copied()
            .unwrap_or(0);
        let fine = match bump.status {
            // Answered by a card that died before pushing it: gone with the card.
            Some(200) if n == 0 && cards.before_last(k, bump.at) => {
                findings.leftovers.push(format!(
                    "bump of {} at {kitchen} went with the card that answered it",
                    bump.order_id
                ));
                true
            }
            Some(200) => n == 1,
            // Refused (404: not there yet) or unanswered (the agent died): at most one.
            _ => n <= 1,
        };
        if !fine {
            let list = if n == 0 {
                &mut findings.lost
            } else {
                &mut findings.doubled
            };
            list.push(format!(
                "bump of {} at {kitchen} answered {:?}: {n} order.bumped rows",
                bump.order_id, bump.status
            ));
        }
    }
    Ok(())
}

/// Messages in a kitchen's dead-letter queue (a passive declare).
async fn dead_letters(amqp_url: &str, kitchen_id: &str) -> anyhow::Result<u32> {
    let connection =
        lapin::Connection::connect(amqp_url, lapin::ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    let queue = channel
        .queue_declare(
            format!("edge.{kitchen_id}.dead").as_str().into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await?;
    let _ = connection.close(200, "chaos check done".into()).await;
    Ok(queue.message_count())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::CardDeaths;
    use crate::faults::{Fault, FaultKind};

    fn fault(kind: FaultKind, target: &str, start: Instant) -> Fault {
        Fault {
            kind,
            target: target.to_owned(),
            start,
            repaired: start,
            recovered: None,
        }
    }

    #[test]
    fn what_a_card_answered_counts_as_gone_only_before_its_kitchen_s_last_card_death() {
        // A minute ago: the harness reads its faults after they happened.
        let t0 = Instant::now() - Duration::from_secs(60);
        let at = |s: u64| t0 + Duration::from_secs(s);
        let cards = CardDeaths::of(&[
            fault(FaultKind::CardDies, "agent-k2", at(10)),
            fault(FaultKind::KillAgent, "agent-k1", at(20)),
            fault(FaultKind::CardDies, "agent-k2", at(30)),
            fault(FaultKind::CardDies, "relay1", at(40)),
        ]);
        assert!(!cards.any(0), "a plain kill of k1 is not a card death");
        assert!(!cards.before_last(0, at(1)));
        assert!(cards.any(1));
        assert!(cards.before_last(1, at(29)), "before k2's last card death");
        assert!(!cards.before_last(1, at(30)));
        assert!(!cards.before_last(1, at(35)));
        let died = cards.last_wall_ms(1).expect("k2's card died");
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis() as i64;
        // 30 s after t0: 30 s ago.
        assert!((now_ms - died - 30_000).abs() < 1_000, "{died} vs {now_ms}");
    }
}
