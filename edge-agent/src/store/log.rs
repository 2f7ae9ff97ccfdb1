//! The event log, written in the transaction of each change: what the displays replay, by
//! sequence, and what the sync pushes to head office (the entries with a `record_id`, after
//! the push cursor). Pruning never drops an entry the sync has not pushed.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::{Store, StoreError};
use crate::record::Record;

/// One entry of the event log: its sequence is the SSE event id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEvent {
    pub seq: i64,
    pub kind: String,
    /// One-line JSON.
    pub data: String,
    /// The stations it concerns; `None`: every station.
    pub stations: Option<Vec<String>>,
}

impl LoggedEvent {
    /// Whether a display of `station` (`None`: all stations) should see it.
    pub fn concerns(&self, station: Option<&str>) -> bool {
        match (station, &self.stations) {
            (None, _) | (_, None) => true,
            (Some(station), Some(stations)) => stations.iter().any(|s| s == station),
        }
    }
}

/// A record waiting to be synced: an event-log entry past the push cursor, or a row an older
/// agent left in the `outbox` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Its event-log sequence, or its `outbox` seq when `from_outbox`.
    pub seq: i64,
    pub record_id: String,
    pub kind: String,
    /// The event's one-line JSON, as logged.
    pub data: String,
    pub created_at_ms: i64,
    /// A scan's exact bytes.
    pub raw: Option<Vec<u8>>,
    /// Left in `outbox` by an agent before migration 0011: deleted from there once pushed.
    pub from_outbox: bool,
}

/// `sync_cursors` row: the event log is whole for the displays only after this sequence
/// (pruning keeps older entries head office has not received yet; the displays never see
/// them). Also the high-water mark of an emptied log.
const TRIMMED: &str = "event_log_trimmed";
/// `sync_cursors` row: every synced record up to this event-log sequence is in PostgreSQL.
/// Written every few minutes, not after each push: after a crash the sync pushes again from
/// here, which changes nothing in PostgreSQL (every insert is idempotent on the record's id).
const PUSHED: &str = "event_log_pushed";

fn cursor(connection: &Connection, name: &str) -> Result<i64, StoreError> {
    Ok(connection
        .prepare_cached("SELECT value FROM sync_cursors WHERE name = ?1")?
        .query_row([name], |row| row.get(0))
        .optional()?
        .unwrap_or(0))
}

/// Moves a cursor forward (never back).
fn advance(connection: &Connection, name: &str, value: i64) -> Result<(), StoreError> {
    connection.execute(
        "INSERT INTO sync_cursors (name, value) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)",
        params![name, value],
    )?;
    Ok(())
}

pub(super) fn last_event_seq(connection: &Connection) -> Result<i64, StoreError> {
    // The trim mark keeps the high-water mark when pruning empties the log.
    Ok(connection
        .prepare_cached(
            "SELECT max(coalesce((SELECT max(seq) FROM event_log), 0),
                        coalesce((SELECT value FROM sync_cursors
                                  WHERE name = 'event_log_trimmed'), 0))",
        )?
        .query_row([], |row| row.get(0))?)
}

/// Appends `record` to the event log; `stations` `None` means it concerns every station. A
/// record head office receives (`Record::is_synced`) gets the id it is pushed under; the sync
/// reads it from the log (`Store::sync_batch`).
pub fn append_log(
    tx: &Transaction<'_>,
    record: &Record,
    stations: Option<&[String]>,
    now_ms: i64,
) -> Result<LoggedEvent, StoreError> {
    let record_id = record.is_synced().then(new_record_id);
    append_log_as(tx, record, stations, now_ms, record_id)
}

/// A new record id: a UUIDv7, so ids sort in the order they were made.
pub fn new_record_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Appends `record` under `record_id` as it is: `None` logs it for the displays only (the sync
/// skips it). What a new card's recovery logs: a record PostgreSQL already holds is not pushed
/// again as a new one (docs/sync.md, "A new card").
pub fn append_log_as(
    tx: &Transaction<'_>,
    record: &Record,
    stations: Option<&[String]>,
    now_ms: i64,
    record_id: Option<String>,
) -> Result<LoggedEvent, StoreError> {
    let kind = record.kind();
    let data = record.data_json();
    let tags = stations.map(|s| format!(",{},", s.join(",")));
    // One past the newest sequence ever handed out, even if pruning emptied the log.
    let seq: i64 = tx
        .prepare_cached(
            "INSERT INTO event_log (seq, kind, order_id, data, created_at, stations, record_id)
             VALUES (max(coalesce((SELECT max(seq) FROM event_log), 0),
                         coalesce((SELECT value FROM sync_cursors
                                   WHERE name = 'event_log_trimmed'), 0)) + 1,
                     ?1, ?2, ?3, ?4, ?5, ?6)
             RETURNING seq",
        )?
        .query_row(
            params![kind, record.order_id(), data, now_ms, tags, record_id],
            |row| row.get(0),
        )?;
    Ok(LoggedEvent {
        seq,
        kind: kind.to_owned(),
        data,
        stations: stations.map(<[String]>::to_vec),
    })
}

impl Store {
    /// Event-log entries after `seq`, oldest first, at most `limit`.
    pub fn events_after(&self, seq: i64, limit: i64) -> Result<Vec<LoggedEvent>, StoreError> {
        let mut statement = self.connection.prepare_cached(
            "SELECT seq, kind, data, stations FROM event_log
             WHERE seq > max(?1, coalesce((SELECT value FROM sync_cursors
                                           WHERE name = 'event_log_trimmed'), 0))
             ORDER BY seq LIMIT ?2",
        )?;
        let events = statement
            .query_map(params![seq, limit], |row| {
                let stations: Option<String> = row.get(3)?;
                Ok(LoggedEvent {
                    seq: row.get(0)?,
                    kind: row.get(1)?,
                    data: row.get(2)?,
                    stations: stations.map(|s| {
                        s.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect()
                    }),
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(events)
    }

    /// The oldest and newest event-log sequences the displays can replay (0 when none).
    pub fn event_log_bounds(&self) -> Result<(i64, i64), StoreError> {
        Ok(self.connection.query_row(
            "SELECT coalesce(min(seq), 0), coalesce(max(seq), 0) FROM event_log
             WHERE seq > coalesce((SELECT value FROM sync_cursors
                                   WHERE name = 'event_log_trimmed'), 0)",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?)
    }

    /// The newest event-log sequence ever written (0 when none): survives pruning.
    pub fn last_event_seq(&self) -> Result<i64, StoreError> {
        last_event_seq(&self.connection)
    }

    /// The event-log sequence up to which every synced record is known to be in PostgreSQL,
    /// as last written (`set_pushed_through`).
    pub fn pushed_through(&self) -> Result<i64, StoreError> {
        cursor(&self.connection, PUSHED)
    }

    /// Records that `pushed` (an event-log sequence) and every synced record before it are in
    /// PostgreSQL.
    pub fn set_pushed_through(&mut self, pushed: i64) -> Result<(), StoreError> {
        advance(&self.connection, PUSHED, pushed)
    }

    /// The oldest `limit` records not yet synced, in order: what an older agent left in
    /// `outbox` first, then the event log's synced records after `pushed`. A scan's record
    /// carries its bytes.
    pub fn sync_batch(&self, pushed: i64, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
        let read = |row: &rusqlite::Row<'_>| {
            Ok(OutboxRow {
                seq: row.get(0)?,
                record_id: row.get(1)?,
                kind: row.get(2)?,
                data: row.get(3)?,
                created_at_ms: row.get(4)?,
                raw: row.get(5)?,
                from_outbox: row.get(6)?,
            })
        };
        let mut rows: Vec<OutboxRow> = self
            .connection
            .prepare_cached(
                "SELECT o.seq, o.record_id, o.kind, o.data, o.created_at, s.raw, 1
                 FROM outbox o
                 LEFT JOIN scans s ON o.kind IN ('scan.recorded', 'scan.rejected')
                                  AND s.scan_id = json_extract(o.data, '$.scan_id')
                 ORDER BY o.seq LIMIT ?1",
            )?
            .query_map([limit], read)?
            .collect::<Result<_, _>>()?;
        let left = limit - rows.len() as i64;
        if left > 0 {
            let mut statement = self.connection.prepare_cached(
                "SELECT e.seq, e.record_id, e.kind, e.data, e.created_at, s.raw, 0
                 FROM event_log e
                 LEFT JOIN scans s ON e.kind IN ('scan.recorded', 'scan.rejected')
                                  AND s.scan_id = json_extract(e.data, '$.scan_id')
                 WHERE e.seq > ?1 AND e.record_id IS NOT NULL
                 ORDER BY e.seq LIMIT ?2",
            )?;
            for row in statement.query_map(params![pushed, left], read)? {
                rows.push(row?);
            }
        }
        Ok(rows)
    }

    /// The sync backlog with everything up to event-log sequence `pushed` in PostgreSQL:
    /// records not yet synced and when the oldest was made.
    pub fn sync_backlog(&self, pushed: i64) -> Result<(i64, Option<i64>), StoreError> {
        Ok(self
            .connection
            .prepare_cached(
                "SELECT (SELECT count(*) FROM outbox)
                    + (SELECT count(*) FROM event_log WHERE seq > ?1 AND record_id IS NOT NULL),
                    coalesce((SELECT min(created_at) FROM outbox),
                             (SELECT created_at FROM event_log
                              WHERE seq > ?1 AND record_id IS NOT NULL ORDER BY seq LIMIT 1))",
            )?
            .query_row([pushed], |row| Ok((row.get(0)?, row.get(1)?)))?)
    }

    /// Deletes rows an older agent left in `outbox` once PostgreSQL has committed them (`seq`
    /// up to and including `last`).
    pub fn delete_synced(&mut self, last: i64) -> Result<usize, StoreError> {
        Ok(self
            .connection
            .execute("DELETE FROM outbox WHERE seq <= ?1", [last])?)
    }

    /// Keeps the newest `keep` event-log entries for the displays and `keep_ms` of processed
    /// event ids. An older entry head office has not received yet (after `pushed_through`) is
    /// kept for the sync, out of the displays' sight, until a later prune. Returns the log
    /// entries removed.
    pub fn prune(&mut self, keep: i64, keep_ms: i64, now_ms: i64) -> Result<usize, StoreError> {
        let tx = self.transaction()?;
        let trim = (last_event_seq(&tx)? - keep).max(0);
        advance(&tx, TRIMMED, trim)?;
        let trim = cursor(&tx, TRIMMED)?;
        let pushed = cursor(&tx, PUSHED)?;
        let removed = tx.execute(
            "DELETE FROM event_log WHERE seq <= ?1 AND (record_id IS NULL OR seq <= ?2)",
            [trim, pushed],
        )?;
        tx.execute(
            "DELETE FROM processed_events WHERE applied_at < ?1",
            [now_ms - keep_ms],
        )?;
        // A status whose order never came (its order older than the kitchen, say): as long.
        tx.execute(
            "DELETE FROM early_statuses WHERE received_at < ?1",
            [now_ms - keep_ms],
        )?;
        // What Otter was told about orders long gone, and 86s long over: kept as long as the
        // de-duplication record (head office has them in PostgreSQL).
        tx.execute(
            "DELETE FROM otter_calls WHERE updated_at < ?1
               AND (order_id IS NULL
                    OR NOT EXISTS (SELECT 1 FROM orders o
                                   WHERE o.order_id = otter_calls.order_id AND o.state = 'open'))",
            [now_ms - keep_ms],
        )?;
        tx.execute(
            "DELETE FROM suspensions WHERE coalesce(lifted_at, until_ms) < ?1",
            [now_ms - keep_ms],
        )?;
        tx.commit()?;
        Ok(removed)
    }
}
