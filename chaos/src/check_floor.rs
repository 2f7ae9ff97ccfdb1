//! The check of the kitchen floor's part of the load (`station`): every grill scanner ticket
//! the agent answered on its stream recorded once at the kitchen and once in PostgreSQL (and,
//! accepted, a bump the bump check counts); every batch session the agent answered started
//! once in PostgreSQL, completed there with the allocations it answered.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Instant,
};

use sqlx::Row;

use crate::{
    check::{CardDeaths, Findings},
    load::{Bump, Record},
    sse::Tablet,
    system::{Agent, SCANNER},
};

/// The scans as bumps for the bump and batch checks: accepted on the stream is a bump answered
/// `200`, rejected one answered `422`, never seen one never answered. A ticket answered twice
/// is a doubled scan.
pub fn scans_as_bumps(record: &Record, tablets: &[&BTreeMap<String, Answers>]) -> Vec<Bump> {
    let now = Instant::now();
    record
        .scans
        .iter()
        .map(|scan| {
            let answer = tablets[scan.kitchen]
                .get(&scan.code)
                .and_then(|a| a.first());
            Bump {
                kitchen: scan.kitchen,
                order_id: scan.order_id.clone(),
                status: answer.map(|(accepted, _)| if *accepted { 200 } else { 422 }),
                at: answer.map_or(now, |(_, at)| *at),
            }
        })
        .collect()
}

/// A ticket's answers on the stream: accepted or not, and when.
type Answers = Vec<(bool, Instant)>;

/// Checks kitchen `k`'s scans and batch sessions: its SQLite file (the agent stopped) against
/// PostgreSQL and what the load was answered.
pub async fn check(
    findings: &mut Findings,
    pg: &sqlx::PgPool,
    db: &rusqlite::Connection,
    (k, agent, tablet): (usize, &Agent, &Tablet),
    record: &Record,
    cards: &CardDeaths,
) -> anyhow::Result<()> {
    let kitchen = &agent.kitchen_id;
    // Scans: by code at the kitchen, by id in PostgreSQL. A new card holds no scan of the
    // cards before it: those are in PostgreSQL if they were pushed, or went with their card.
    let mut statement =
        db.prepare("SELECT scan_id, CAST(raw AS TEXT) FROM scans WHERE device = ?1")?;
    let at_kitchen: Vec<(String, String)> = statement
        .query_map([SCANNER], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    // With whether each row was pushed before the kitchen's card last died (PostgreSQL's clock
    // stamps `synced_at`: the machine's, as the harness's).
    let died_ms = cards.last_wall_ms(k);
    let in_pg: BTreeMap<String, (String, bool)> = sqlx::query(
        "SELECT scan_id::text AS id, convert_from(raw, 'UTF8') AS code,
                (extract(epoch FROM synced_at) * 1000)::bigint AS synced_ms
           FROM kitchen.scans WHERE kitchen_id = $1 AND device = $2",
    )
    .bind(kitchen)
    .bind(SCANNER)
    .fetch_all(pg)
    .await?
    .iter()
    .map(|row| {
        let synced_ms: i64 = row.get("synced_ms");
        (
            row.get("id"),
            (
                row.get("code"),
                died_ms.is_some_and(|died| synced_ms < died),
            ),
        )
    })
    .collect();
    let ids: BTreeSet<&String> = at_kitchen.iter().map(|(id, _)| id).collect();
    for (id, code) in &at_kitchen {
        if !in_pg.contains_key(id) {
            findings.lost.push(format!(
                "scan {id} ({code}) at {kitchen}: not in kitchen.scans"
            ));
        }
    }
    // Answered by a card that has died since.
    let of_dead_card = |code: &str| {
        tablet
            .scans
            .get(code)
            .and_then(|a| a.first())
            .is_some_and(|(_, at)| cards.before_last(k, *at))
    };
    let mut rows_by_code: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, code) in &at_kitchen {
        *rows_by_code.entry(code.as_str()).or_default() += 1;
    }
    for (id, (code, of_old_card)) in in_pg.iter().filter(|(id, _)| !ids.contains(id)) {
        if *of_old_card {
            *rows_by_code.entry(code.as_str()).or_default() += 1;
        } else {
            findings.doubled.push(format!(
                "scan {id} ({code}) in kitchen.scans for {kitchen}, not at the kitchen"
            ));
        }
    }
    for scan in record.scans.iter().filter(|s| s.kitchen == k) {
        findings.scans_checked += 1;
        let rows = rows_by_code.get(scan.code.as_str()).copied().unwrap_or(0);
        let answers = tablet.scans.get(&scan.code).map_or(0, Vec::len);
        match tablet.scans.get(&scan.code).and_then(|a| a.first()) {
            Some((true, _)) => findings.scans_answered.0 += 1,
            Some((false, _)) => findings.scans_answered.1 += 1,
            None => {}
        }
        if rows > 1 || answers > 1 {
            findings.doubled.push(format!(
                "scan {} at {kitchen}: {rows} rows, answered {answers} times",
                scan.code
            ));
        } else if answers == 1 && rows == 0 && of_dead_card(&scan.code) {
            findings.leftovers.push(format!(
                "scan {} at {kitchen} went with the card that answered it",
                scan.code
            ));
        } else if answers == 1 && rows == 0 {
            findings.lost.push(format!(
                "scan {} at {kitchen}: answered on the stream, no row",
                scan.code
            ));
        }
    }

    // Batch sessions: each started one answered 201 in PostgreSQL once, as it was answered.
    let sessions: BTreeMap<String, (bool, serde_json::Value)> = sqlx::query(
        "SELECT session_id::text AS id, completed_at IS NOT NULL AS completed, allocations
               FROM kitchen.batch_sessions WHERE kitchen_id = $1",
    )
    .bind(kitchen)
    .fetch_all(pg)
    .await?
    .iter()
    .map(|row| {
        (
            row.get("id"),
            (row.get("completed"), row.get("allocations")),
        )
    })
    .collect();
    let at_kitchen: i64 = db.query_row("SELECT count(*) FROM batch_sessions", [], |r| r.get(0))?;
    if at_kitchen != sessions.len() as i64 {
        findings.lost.push(format!(
            "{kitchen}: {at_kitchen} batch sessions at the kitchen, {} in PostgreSQL",
            sessions.len()
        ));
    }
    for session in record.sessions.iter().filter(|s| s.kitchen == k) {
        let Some((201, Some(id))) = &session.started else {
            continue;
        };
        findings.sessions_checked += 1;
        let Some((completed, allocations)) = sessions.get(id) else {
            if session
                .answered
                .0
                .is_some_and(|at| cards.before_last(k, at))
            {
                findings.leftovers.push(format!(
                    "batch session {id} at {kitchen} went with the card that started it"
                ));
                continue;
            }
            findings.lost.push(format!(
                "batch session {id} at {kitchen}: started (201), not in kitchen.batch_sessions"
            ));
            continue;
        };
        let Some(answered) = &session.allocations else {
            continue;
        };
        if !completed
            && session
                .answered
                .1
                .is_some_and(|at| cards.before_last(k, at))
        {
            findings.leftovers.push(format!(
                "batch session {id} at {kitchen}: its completion went with the card that answered it"
            ));
            continue;
        }
        findings.sessions_completed.0 += 1;
        findings.sessions_completed.1 += answered.iter().map(|(_, u)| u).sum::<u32>();
        let mut stored = crate::station::allocations_of(allocations);
        let mut answered = answered.clone();
        stored.sort();
        answered.sort();
        let units: u32 = answered.iter().map(|(_, u)| u).sum();
        if !completed || stored != answered || units > session.quantity {
            findings.wrong.push(format!(
                "batch session {id} at {kitchen}: completed with {answered:?} ({units} of {}), \
                 in PostgreSQL completed {completed} with {stored:?}",
                session.quantity
            ));
        }
    }
    Ok(())
}
