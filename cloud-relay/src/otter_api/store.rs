//! The Otter call outbox's queries (`otter.callbacks`, `otter.call_budgets`,
//! `otter.unconfirmed_alarms`; migration `20261202000001_otter_calls.sql`).
//!
//! A call goes `pending` → `sent` (committed, with a lease, before its request) → `accepted` or
//! `failed`, or back to `pending` to be retried. A suspend/unsuspend stays `sent` with its
//! `job_id` while the dispatcher follows Otter's menu job. Every change bumps `change_id` (a
//! trigger), which is what the boxes read after.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use super::metrics::CallGauges;

/// A call the dispatcher may take now.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Candidate {
    pub id: i64,
    pub store_id: String,
    pub kind: String,
    /// Following its menu job (a status poll), not making the call itself.
    pub polling: bool,
}

/// A call taken for sending (its row is `sent`, leased to this relay).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub id: i64,
    pub store_id: String,
    pub order_id: Option<String>,
    pub kind: String,
    pub method: String,
    pub body: Option<serde_json::Value>,
    pub attempts: i32,
    pub job_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// `otter.orders.source` of its order.
    pub source: Option<String>,
    /// What to request now: the call's path, or for a menu job its status path.
    #[sqlx(default)]
    pub path: String,
}

/// What a claim came to.
#[derive(Debug)]
pub enum Claim {
    /// Taken: send it now.
    Taken(Box<Claimed>),
    /// The (store, endpoint) budget is used up for this long.
    NoBudget(Duration),
    /// Taken by another relay, or no longer due.
    Gone,
}

/// A call's new state after an answer (the row must still be the `sent` one claimed).
#[derive(Debug, Clone, PartialEq)]
pub struct Settle {
    pub state: &'static str,
    pub status_code: Option<i32>,
    pub answer: Option<String>,
    pub reason: Option<String>,
    pub detail: String,
    pub job_id: Option<String>,
    /// When to send (or poll) again.
    pub next_attempt_in: Option<Duration>,
}

/// Calls found `sent` past their lease, with no menu job (the relay sending them died before
/// it recorded an answer), go back to `pending`: sent again, so at least once in that window.
///
/// Rows are taken `SKIP LOCKED` here and in [`stamp_new`]: a statement touching several rows
/// never waits on a row lock while holding the change lock (no deadlock with a claim).
pub async fn recover_expired(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE otter.callbacks
         SET state = 'pending', lease_until = NULL, next_attempt_at = now(),
             reason = 'sent again: the relay sending it stopped before Otter answered',
             detail = 'retrying'
         WHERE id IN (SELECT id FROM otter.callbacks
                      WHERE state = 'sent' AND job_id IS NULL AND lease_until < now()
                      ORDER BY id FOR UPDATE SKIP LOCKED)",
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Gives new rows (change 0, inserted in a box's transaction) their change number, so boxes
/// read them (`kitchen.otter_calls`). Returns the rows stamped.
pub async fn stamp_new(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE otter.callbacks SET change_id = 0
         WHERE id IN (SELECT id FROM otter.callbacks WHERE change_id = 0
                      ORDER BY id FOR UPDATE SKIP LOCKED)",
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Calls due now, oldest first: pending ones with no earlier open call in their lane, and
/// menu jobs due for a look; none of a `(store, endpoint)` in `blocked` (its budget is spent),
/// so a store's backlog never holds back the other stores' calls.
pub async fn candidates(
    pool: &PgPool,
    limit: i64,
    blocked: &[(String, String)],
) -> Result<Vec<Candidate>, sqlx::Error> {
    let (stores, endpoints): (Vec<&str>, Vec<&str>) = blocked
        .iter()
        .map(|(store, endpoint)| (store.as_str(), endpoint.as_str()))
        .unzip();
    sqlx::query_as(
        "SELECT c.id, c.store_id, c.kind, c.state = 'sent' AS polling
         FROM otter.callbacks c
         WHERE c.state IN ('pending', 'sent')
           AND c.next_attempt_at <= now()
           AND NOT EXISTS (SELECT FROM unnest($2::text[], $3::text[]) AS b(store_id, endpoint)
                           WHERE b.store_id = c.store_id
                             AND b.endpoint = CASE WHEN c.state = 'sent' THEN 'job_status'
                                                   ELSE c.kind END)
           AND ((c.state = 'pending'
                 AND NOT EXISTS (SELECT FROM otter.callbacks e
                                 WHERE e.lane = c.lane AND e.id < c.id
                                   AND e.state IN ('pending', 'sent')))
                OR (c.state = 'sent' AND c.job_id IS NOT NULL
                    AND (c.lease_until IS NULL OR c.lease_until < now())))
         ORDER BY c.id
         LIMIT $1",
    )
    .bind(limit)
    .bind(&stores)
    .bind(&endpoints)
    .fetch_all(pool)
    .await
}

/// The row lock is waited for, not skipped: the stamper or a recovery holding the row for a
/// moment must not make a later call go ahead of it (calls go out oldest first). Waiting holds
/// nothing else, and those statements skip locked rows, so no deadlock; another relay's claim
/// that got there first leaves a row no longer due, re-checked once the lock is ours (`Gone`).
///
/// Takes call `id` if it is still due and a slot of `(store, endpoint)`'s budget is free
/// (`limit` calls per `window`), in one transaction: the row is then `sent` with a lease and
/// `path` recorded, and committed before any request. `path` renders the call's path from the
/// claimed row; `Err(reason)` parks the call as failed without spending budget.
#[allow(clippy::too_many_arguments)]
pub async fn claim(
    pool: &PgPool,
    id: i64,
    endpoint: &str,
    limit: u32,
    window: Duration,
    lease: Duration,
    path: impl FnOnce(&Claimed) -> Result<String, String>,
) -> Result<Claim, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let call: Option<Claimed> = sqlx::query_as(
        "SELECT c.id, c.store_id, c.order_id, c.kind, c.method, c.body, c.attempts, c.job_id,
                c.created_at, o.source
         FROM otter.callbacks c LEFT JOIN otter.orders o ON o.order_id = c.order_id
         WHERE c.id = $1 AND c.next_attempt_at <= now()
           AND ((c.state = 'pending'
                 AND NOT EXISTS (SELECT FROM otter.callbacks e
                                 WHERE e.lane = c.lane AND e.id < c.id
                                   AND e.state IN ('pending', 'sent')))
                OR (c.state = 'sent' AND c.job_id IS NOT NULL
                    AND (c.lease_until IS NULL OR c.lease_until < now())))
         FOR UPDATE OF c",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(call) = call else {
        return Ok(Claim::Gone);
    };
    let path = match path(&call) {
        Ok(path) => path,
        Err(reason) => {
            sqlx::query(
                "UPDATE otter.callbacks SET state = 'failed', reason = $2, detail = $3
                 WHERE id = $1",
            )
            .bind(id)
            .bind(&reason)
            .bind(format!("not sent: {reason}"))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(Claim::Gone);
        }
    };
    let window_ms = window.as_millis() as f64;
    let slot: Option<bool> = sqlx::query_scalar(
        "INSERT INTO otter.call_budgets AS b (store_id, endpoint, recent)
         VALUES ($1, $2, ARRAY[clock_timestamp()])
         ON CONFLICT (store_id, endpoint) DO UPDATE
         SET recent = array(SELECT t FROM unnest(b.recent) t
                            WHERE t > clock_timestamp() - make_interval(secs => $3 / 1000))
                      || clock_timestamp()
         WHERE (SELECT count(*) FROM unnest(b.recent) t
                WHERE t > clock_timestamp() - make_interval(secs => $3 / 1000)) < $4
         RETURNING true",
    )
    .bind(&call.store_id)
    .bind(endpoint)
    .bind(window_ms)
    .bind(i64::from(limit))
    .fetch_optional(&mut *tx)
    .await?;
    if slot.is_none() {
        let wait_ms: Option<f64> = sqlx::query_scalar(
            "SELECT extract(epoch FROM min(t) + make_interval(secs => $3 / 1000)
                                   - clock_timestamp())::float8 * 1000
             FROM otter.call_budgets b, unnest(b.recent) t
             WHERE b.store_id = $1 AND b.endpoint = $2
               AND t > clock_timestamp() - make_interval(secs => $3 / 1000)",
        )
        .bind(&call.store_id)
        .bind(endpoint)
        .bind(window_ms)
        .fetch_one(&mut *tx)
        .await?;
        tx.rollback().await?;
        let wait = Duration::from_secs_f64(wait_ms.unwrap_or(0.0).max(1.0) / 1000.0);
        return Ok(Claim::NoBudget(wait));
    }
    let attempts: i32 = sqlx::query_scalar(
        "UPDATE otter.callbacks
         SET state = 'sent', attempts = attempts + 1, path = coalesce($2, path),
             lease_until = now() + make_interval(secs => $3 / 1000),
             detail = CASE WHEN job_id IS NULL THEN 'sending to Otter' ELSE detail END
         WHERE id = $1
         RETURNING attempts",
    )
    .bind(id)
    .bind(call.job_id.is_none().then_some(&path))
    .bind(lease.as_millis() as f64)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Claim::Taken(Box::new(Claimed {
        attempts,
        method: if call.job_id.is_some() {
            "GET".into()
        } else {
            call.method.clone()
        },
        path,
        ..call
    })))
}

/// Records an answer for call `id` claimed at `attempts`; `None` when the row moved on (a
/// lease that ran out and another relay took it). Returns when the call was created.
pub async fn settle(
    pool: &PgPool,
    id: i64,
    attempts: i32,
    settle: &Settle,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE otter.callbacks
         SET state = $3, status_code = coalesce($4, status_code), answer = coalesce($5, answer),
             reason = $6, detail = $7, job_id = coalesce($8, job_id), lease_until = NULL,
             next_attempt_at = now() + make_interval(secs => coalesce($9, 0) / 1000)
         WHERE id = $1 AND state = 'sent' AND attempts = $2
         RETURNING created_at",
    )
    .bind(id)
    .bind(attempts)
    .bind(settle.state)
    .bind(settle.status_code)
    .bind(&settle.answer)
    .bind(&settle.reason)
    .bind(&settle.detail)
    .bind(&settle.job_id)
    .bind(settle.next_attempt_in.map(|delay| delay.as_millis() as f64))
    .fetch_optional(pool)
    .await
}

/// One call, as the admin listener shows it.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct CallView {
    pub id: i64,
    pub kitchen_id: String,
    pub store_id: String,
    pub order_id: Option<String>,
    pub item_id: Option<String>,
    pub kind: String,
    pub state: String,
    pub attempts: i32,
    pub method: String,
    pub path: Option<String>,
    pub body: Option<serde_json::Value>,
    pub status_code: Option<i32>,
    pub answer: Option<String>,
    pub reason: Option<String>,
    pub detail: String,
    pub job_id: Option<String>,
    pub record_id: String,
    pub next_attempt_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Calls in `state` (any when `None`), newest first.
pub async fn list_calls(
    pool: &PgPool,
    state: Option<&str>,
    limit: i64,
) -> Result<Vec<CallView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, kitchen_id, store_id, order_id, item_id, kind, state, attempts, method, path,
                body, status_code, answer, reason, detail, job_id, record_id::text AS record_id,
                next_attempt_at, created_at, updated_at
         FROM otter.callbacks
         WHERE $1::text IS NULL OR state = $1
         ORDER BY id DESC
         LIMIT $2",
    )
    .bind(state)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// An Otter order no box has confirmed in time.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Unconfirmed {
    pub order_id: String,
    pub store_id: String,
    pub status: String,
    pub friendly_id: Option<String>,
    pub received_at: DateTime<Utc>,
    pub waiting_seconds: f64,
}

/// Otter orders older than `after` (within `lookback`), not cancelled, rejected or finished,
/// with no confirm call, oldest first.
pub async fn unconfirmed(
    pool: &PgPool,
    after: Duration,
    lookback: Duration,
) -> Result<Vec<Unconfirmed>, sqlx::Error> {
    sqlx::query_as(
        "SELECT o.order_id, o.store_id, o.status, o.friendly_id, o.created_at AS received_at,
                extract(epoch FROM now() - o.created_at)::float8 AS waiting_seconds
         FROM otter.orders o
         WHERE o.created_at < now() - make_interval(secs => $1 / 1000)
           AND o.created_at > now() - make_interval(secs => $2 / 1000)
           AND o.status NOT IN ('CANCELED', 'REJECTED', 'FULFILLED', 'PICKED_UP')
           AND NOT EXISTS (SELECT FROM otter.callbacks c
                           WHERE c.order_id = o.order_id AND c.kind = 'confirm'
                             AND c.dedupe_key LIKE 'order:%')
         ORDER BY o.created_at",
    )
    .bind(after.as_millis() as f64)
    .bind(lookback.as_millis() as f64)
    .fetch_all(pool)
    .await
}

/// Records the alarm for an order; true the first time (across relays and restarts).
pub async fn raise_alarm(pool: &PgPool, order: &Unconfirmed) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO otter.unconfirmed_alarms (order_id, store_id) VALUES ($1, $2)
         ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(&order.order_id)
    .bind(&order.store_id)
    .execute(pool)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Calls by kind and state, and the oldest pending one's age.
pub async fn gauges(pool: &PgPool) -> Result<CallGauges, sqlx::Error> {
    let by_kind_state = sqlx::query_as(
        "SELECT kind, state, count(*) FROM otter.callbacks GROUP BY kind, state ORDER BY 1, 2",
    )
    .fetch_all(pool)
    .await?;
    let oldest_pending = sqlx::query_scalar(
        "SELECT extract(epoch FROM now() - min(created_at))::float8
         FROM otter.callbacks WHERE state = 'pending'",
    )
    .fetch_one(pool)
    .await?;
    Ok(CallGauges {
        by_kind_state,
        oldest_pending,
    })
}
