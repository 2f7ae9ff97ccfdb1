//! Outbox queries for the publisher: what is waiting, and recording what happened to it.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// One event waiting to be published.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub event_id: String,
    pub store_id: String,
    /// Set (with `payload`) for events that go to the kitchens of `store_id`.
    pub sequence: Option<i64>,
    pub event_type: String,
    pub payload: Option<Vec<u8>>,
    /// The exact webhook body, for the raw fanout exchange.
    pub raw: String,
    pub created_at: DateTime<Utc>,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// The oldest unpublished rows, in insertion order (which, per store, is sequence order).
pub async fn pending(pool: &PgPool, limit: i64) -> Result<Vec<OutboxRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT o.id, o.event_id, o.store_id, o.sequence, o.event_type, o.payload, e.raw,
                o.created_at, o.attempts, o.next_attempt_at
         FROM otter.outbox o JOIN otter.webhook_events e USING (event_id)
         WHERE o.published_at IS NULL
         ORDER BY o.id
         LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}

pub async fn mark_published(pool: &PgPool, ids: &[i64]) -> Result<(), sqlx::Error> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE otter.outbox SET published_at = now(), last_error = NULL, next_attempt_at = NULL
         WHERE id = ANY($1)",
    )
    .bind(ids)
    .execute(pool)
    .await?;
    Ok(())
}

/// A row that could not be published (unroutable, nacked): retried after `retry_at`.
#[derive(Debug)]
pub struct Failure {
    pub id: i64,
    pub error: String,
    pub retry_at: DateTime<Utc>,
}

pub async fn mark_failed(pool: &PgPool, failures: &[Failure]) -> Result<(), sqlx::Error> {
    if failures.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = failures.iter().map(|f| f.id).collect();
    let errors: Vec<&str> = failures.iter().map(|f| f.error.as_str()).collect();
    let retry_at: Vec<DateTime<Utc>> = failures.iter().map(|f| f.retry_at).collect();
    sqlx::query(
        "UPDATE otter.outbox o
         SET attempts = o.attempts + 1, last_error = f.error, next_attempt_at = f.retry_at
         FROM unnest($1::bigint[], $2::text[], $3::timestamptz[]) AS f(id, error, retry_at)
         WHERE o.id = f.id",
    )
    .bind(&ids)
    .bind(&errors)
    .bind(&retry_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// Unpublished rows and the age of the oldest, for `/metrics`.
pub async fn depth(pool: &PgPool) -> Result<(i64, Option<f64>), sqlx::Error> {
    sqlx::query_as(
        "SELECT count(*), extract(epoch FROM now() - min(created_at))::float8
         FROM otter.outbox WHERE published_at IS NULL",
    )
    .fetch_one(pool)
    .await
}
