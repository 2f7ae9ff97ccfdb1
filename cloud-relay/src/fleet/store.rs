//! The fleet's SQL: applying presence, telemetry and replies (one transaction per batch, the
//! `NOTIFY fleet` riding on it), recording commands, and the fleet page's reads.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};

use super::payload::{Presence, Reply, Telemetry};

/// One message to apply, already parsed.
#[derive(Debug, Clone)]
pub enum Change {
    Presence {
        kitchen: String,
        presence: Presence,
    },
    Telemetry {
        kitchen: String,
        telemetry: Telemetry,
    },
    Reply {
        kitchen: String,
        id: uuid::Uuid,
        reply: Reply,
    },
}

/// What applying one message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Written,
    /// Telemetry older than (or as old as) the one held: history only.
    Stale,
    /// No such kitchen (or, for a reply, no such command of that kitchen).
    Unknown,
}

impl Applied {
    pub fn label(self) -> &'static str {
        match self {
            Self::Written => "written",
            Self::Stale => "stale",
            Self::Unknown => "unknown",
        }
    }
}

const PRESENCE: &str = "
    WITH k AS (SELECT kitchen_id FROM kitchen.kitchens WHERE kitchen_id = $1)
    INSERT INTO kitchen.devices AS d
        (kitchen_id, agent_version, last_seen, feed_state, unsynced_backlog,
         presence, presence_since, boot_id, presence_reason)
    SELECT kitchen_id, coalesce($3, 'unknown'), now(), 'unknown', 0,
           $2, coalesce($4::timestamptz, now()), $5, $6
      FROM k
    ON CONFLICT (kitchen_id) DO UPDATE SET
        presence = EXCLUDED.presence,
        presence_since = CASE
            WHEN $4::timestamptz IS NOT NULL THEN $4::timestamptz
            WHEN d.presence IS NOT DISTINCT FROM EXCLUDED.presence
                 AND d.boot_id IS NOT DISTINCT FROM EXCLUDED.boot_id THEN d.presence_since
            ELSE now() END,
        boot_id = coalesce(EXCLUDED.boot_id, d.boot_id),
        presence_reason = EXCLUDED.presence_reason,
        agent_version = coalesce($3, d.agent_version),
        last_seen = CASE WHEN EXCLUDED.presence = 'online' THEN now() ELSE d.last_seen END
    RETURNING 1";

const TELEMETRY: &str = "
    WITH k AS (SELECT kitchen_id FROM kitchen.kitchens WHERE kitchen_id = $1),
    history AS (
        INSERT INTO fleet.telemetry (kitchen_id, at, doc)
        SELECT kitchen_id, $2, $3 FROM k
        ON CONFLICT (kitchen_id, at) DO NOTHING
        RETURNING 1),
    device AS (
        INSERT INTO kitchen.devices AS d
            (kitchen_id, agent_version, last_seen, feed_state, unsynced_backlog,
             oldest_unsynced_at, telemetry, telemetry_at, boot_id)
        SELECT kitchen_id, coalesce($4, 'unknown'), now(), coalesce($5, 'unknown'),
               coalesce($6, 0), $7, $3, $2, $8
          FROM k
        ON CONFLICT (kitchen_id) DO UPDATE SET
            telemetry = EXCLUDED.telemetry,
            telemetry_at = EXCLUDED.telemetry_at,
            agent_version = coalesce($4, d.agent_version),
            feed_state = coalesce($5, d.feed_state),
            unsynced_backlog = coalesce($6, d.unsynced_backlog),
            oldest_unsynced_at = CASE WHEN $6 IS NULL THEN d.oldest_unsynced_at
                                      ELSE EXCLUDED.oldest_unsynced_at END,
            last_seen = greatest(d.last_seen, now()),
            boot_id = coalesce(EXCLUDED.boot_id, d.boot_id)
        WHERE d.telemetry_at IS NULL OR d.telemetry_at < EXCLUDED.telemetry_at
        RETURNING 1)
    SELECT (SELECT count(*) FROM k), (SELECT count(*) FROM device)";

const REPLY: &str = "
    WITH r AS (
        UPDATE fleet.commands SET reply = $3, replied_at = now()
         WHERE id = $2::uuid AND kitchen_id = $1 AND reply IS NULL
        RETURNING kitchen_id)
    SELECT pg_notify('fleet', kitchen_id) FROM r";

/// Applies one change on `connection` (inside the caller's transaction).
pub async fn apply_one(
    connection: &mut PgConnection,
    change: &Change,
) -> Result<Applied, sqlx::Error> {
    match change {
        Change::Presence { kitchen, presence } => {
            let state = if presence.online { "online" } else { "offline" };
            let row = sqlx::query(PRESENCE)
                .bind(kitchen)
                .bind(state)
                .bind(&presence.version)
                .bind(presence.since)
                .bind(&presence.boot_id)
                .bind(&presence.reason)
                .fetch_optional(&mut *connection)
                .await?;
            Ok(if row.is_some() {
                Applied::Written
            } else {
                Applied::Unknown
            })
        }
        Change::Telemetry { kitchen, telemetry } => {
            let (known, written): (i64, i64) = sqlx::query_as(TELEMETRY)
                .bind(kitchen)
                .bind(telemetry.at)
                .bind(&telemetry.doc)
                .bind(&telemetry.version)
                .bind(&telemetry.feed)
                .bind(telemetry.backlog)
                .bind(telemetry.oldest_unsynced)
                .bind(&telemetry.boot_id)
                .fetch_one(&mut *connection)
                .await?;
            Ok(match (known, written) {
                (0, _) => Applied::Unknown,
                (_, 0) => Applied::Stale,
                _ => Applied::Written,
            })
        }
        Change::Reply { kitchen, id, reply } => {
            let row = sqlx::query(REPLY)
                .bind(kitchen)
                .bind(id.to_string())
                .bind(&reply.doc)
                .fetch_optional(&mut *connection)
                .await?;
            Ok(if row.is_some() {
                Applied::Written
            } else {
                Applied::Unknown
            })
        }
    }
}

/// Applies `changes` in one transaction; the outcome of each, in order, once committed.
pub async fn apply(pool: &PgPool, changes: &[Change]) -> Result<Vec<Applied>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut outcomes = Vec::with_capacity(changes.len());
    for change in changes {
        outcomes.push(apply_one(&mut tx, change).await?);
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// Deletes telemetry history older than `keep`; returns the rows deleted.
pub async fn prune(pool: &PgPool, keep: Duration) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM fleet.telemetry WHERE at < now() - $1::interval")
        .bind(format!("{} seconds", keep.as_secs()))
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

/// Records a command about to be published; `false` when the kitchen does not exist.
pub async fn record_command(
    pool: &PgPool,
    id: uuid::Uuid,
    kitchen: &str,
    name: &str,
    sent_by: &str,
    expires_at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let row = sqlx::query(
        "WITH c AS (
             INSERT INTO fleet.commands (id, kitchen_id, name, sent_by, expires_at)
             SELECT $1::uuid, kitchen_id, $3, $4, $5 FROM kitchen.kitchens WHERE kitchen_id = $2
             RETURNING kitchen_id)
         SELECT pg_notify('fleet', kitchen_id) FROM c",
    )
    .bind(id.to_string())
    .bind(kitchen)
    .bind(name)
    .bind(sent_by)
    .bind(expires_at)
    .fetch_optional(pool)
    .await?;
    Ok(row.is_some())
}

/// The reply to command `id`, once recorded.
pub async fn reply_of(pool: &PgPool, id: uuid::Uuid) -> Result<Option<Value>, sqlx::Error> {
    let reply: Option<Option<Value>> =
        sqlx::query_scalar("SELECT reply FROM fleet.commands WHERE id = $1::uuid")
            .bind(id.to_string())
            .fetch_optional(pool)
            .await?;
    Ok(reply.flatten())
}

/// One kitchen's row of the fleet page, as JSON (times in UNIX milliseconds).
const ROW: &str = "
    SELECT jsonb_build_object(
        'kitchen_id', k.kitchen_id,
        'presence', coalesce(d.presence, 'unknown'),
        'presence_since', (extract(epoch FROM d.presence_since) * 1000)::bigint,
        'presence_reason', d.presence_reason,
        'boot_id', d.boot_id,
        'version', coalesce(d.telemetry->>'version', d.agent_version),
        'feed', coalesce(d.telemetry->>'feed', d.feed_state),
        'sync', d.telemetry->'sync'->>'state',
        'backlog', d.unsynced_backlog,
        'late', (d.telemetry->'orders'->'late'),
        'open', (d.telemetry->'orders'->'open'),
        'reference_version', coalesce(d.telemetry->'reference'->'version',
                                      to_jsonb(r.version)),
        'clock_synced', d.telemetry->'clock_synced',
        'telemetry_at', (extract(epoch FROM d.telemetry_at) * 1000)::bigint,
        'last_seen', (extract(epoch FROM d.last_seen) * 1000)::bigint)
    FROM kitchen.kitchens k
    LEFT JOIN kitchen.devices d USING (kitchen_id)
    LEFT JOIN kitchen.reference_versions r USING (kitchen_id)";

/// Every kitchen's row.
pub async fn rows(pool: &PgPool) -> Result<Vec<Value>, sqlx::Error> {
    sqlx::query_scalar(&format!("{ROW} ORDER BY k.kitchen_id"))
        .fetch_all(pool)
        .await
}

/// One kitchen's row; `None` when there is no such kitchen.
pub async fn row(pool: &PgPool, kitchen: &str) -> Result<Option<Value>, sqlx::Error> {
    sqlx::query_scalar(&format!("{ROW} WHERE k.kitchen_id = $1"))
        .bind(kitchen)
        .fetch_optional(pool)
        .await
}

/// One kitchen's detail: its row, the last 24 h of telemetry as chart points, the latest
/// telemetry document, its last diagnostics reply and its recent commands.
pub async fn detail(pool: &PgPool, kitchen: &str) -> Result<Option<Value>, sqlx::Error> {
    let Some(row) = row(pool, kitchen).await? else {
        return Ok(None);
    };
    let points: Value = sqlx::query_scalar(
        "SELECT coalesce(jsonb_agg(jsonb_build_array(
                    (extract(epoch FROM at) * 1000)::bigint,
                    doc->'memory'->'rss_bytes',
                    doc->'sync'->'backlog',
                    doc->'orders'->'late',
                    doc->'disk'->'free_bytes') ORDER BY at), '[]')
           FROM fleet.telemetry
          WHERE kitchen_id = $1 AND at > now() - interval '24 hours'",
    )
    .bind(kitchen)
    .fetch_one(pool)
    .await?;
    let telemetry: Option<Value> =
        sqlx::query_scalar("SELECT telemetry FROM kitchen.devices WHERE kitchen_id = $1")
            .bind(kitchen)
            .fetch_optional(pool)
            .await?
            .flatten();
    let commands: Value = sqlx::query_scalar(
        "SELECT coalesce(jsonb_agg(c ORDER BY c.sent_at DESC), '[]') FROM (
             SELECT id::text AS id, name, sent_by,
                    (extract(epoch FROM sent_at) * 1000)::bigint AS sent_at,
                    (extract(epoch FROM replied_at) * 1000)::bigint AS replied_at,
                    (expires_at < now() AND reply IS NULL) AS expired,
                    reply
               FROM fleet.commands WHERE kitchen_id = $1
              ORDER BY sent_at DESC LIMIT 20) c",
    )
    .bind(kitchen)
    .fetch_one(pool)
    .await?;
    let diagnostics: Option<Value> = sqlx::query_scalar(
        "SELECT jsonb_build_object('at', (extract(epoch FROM replied_at) * 1000)::bigint,
                                   'reply', reply)
           FROM fleet.commands
          WHERE kitchen_id = $1 AND name = 'diagnostics' AND reply IS NOT NULL
          ORDER BY replied_at DESC LIMIT 1",
    )
    .bind(kitchen)
    .fetch_optional(pool)
    .await?;
    Ok(Some(serde_json::json!({
        "row": row,
        "points": points,
        "telemetry": telemetry,
        "commands": commands,
        "diagnostics": diagnostics,
    })))
}
