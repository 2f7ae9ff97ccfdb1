//! The event log (what the displays replay, by sequence) and the sync outbox (what head office
//! must receive), written in the transaction of each change.

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

/// A record waiting in the sync outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub seq: i64,
    pub record_id: String,
    pub kind: String,
    /// The event's one-line JSON, as logged.
    pub data: String,
    pub created_at_ms: i64,
    /// A scan's exact bytes.
    pub raw: Option<Vec<u8>>,
}

pub(super) fn last_event_seq(connection: &Connection) -> Result<i64, StoreError> {
    // AUTOINCREMENT keeps the high-water mark in sqlite_sequence, even after pruning.
    Ok(connection
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'event_log'",
            [],
            |row| row.get(0),
        )
        .optional()?
        .unwrap_or(0))
}

/// Appends `record` to the event log; `stations` `None` means it concerns every station. A
/// record head office receives (`Record::is_synced`) also goes to the sync outbox, in the same
/// transaction.
pub fn append_log(
    tx: &Transaction<'_>,
    record: &Record,
    stations: Option<&[String]>,
    now_ms: i64,
) -> Result<LoggedEvent, StoreError> {
    let kind = record.kind();
    let data = record.data_json();
    let tags = stations.map(|s| format!(",{},", s.join(",")));
    tx.prepare_cached(
        "INSERT INTO event_log (kind, order_id, data, created_at, stations)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![kind, record.order_id(), data, now_ms, tags])?;
    let seq = tx.last_insert_rowid();
    if record.is_synced() {
        tx.prepare_cached(
            "INSERT INTO outbox (record_id, kind, data, created_at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            uuid::Uuid::now_v7().to_string(),
            kind,
            data,
            now_ms
        ])?;
    }
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
            "SELECT seq, kind, data, stations FROM event_log WHERE seq > ?1 ORDER BY seq LIMIT ?2",
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

    /// The oldest and newest event-log sequences held (0 when empty).
    pub fn event_log_bounds(&self) -> Result<(i64, i64), StoreError> {
        Ok(self.connection.query_row(
            "SELECT coalesce(min(seq), 0), coalesce(max(seq), 0) FROM event_log",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?)
    }

    /// The newest event-log sequence ever written (0 when none): survives pruning.
    pub fn last_event_seq(&self) -> Result<i64, StoreError> {
        last_event_seq(&self.connection)
    }

    /// The oldest `limit` records not yet synced, in order; a scan's record carries its bytes.
    pub fn outbox_batch(&self, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
        let mut statement = self.connection.prepare_cached(
            "SELECT o.seq, o.record_id, o.kind, o.data, o.created_at, s.raw
             FROM outbox o
             LEFT JOIN scans s ON o.kind IN ('scan.recorded', 'scan.rejected')
                              AND s.scan_id = json_extract(o.data, '$.scan_id')
             ORDER BY o.seq LIMIT ?1",
        )?;
        let rows = statement
            .query_map([limit], |row| {
                Ok(OutboxRow {
                    seq: row.get(0)?,
                    record_id: row.get(1)?,
                    kind: row.get(2)?,
                    data: row.get(3)?,
                    created_at_ms: row.get(4)?,
                    raw: row.get(5)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// The sync backlog: records not yet synced and when the oldest was made.
    pub fn outbox_backlog(&self) -> Result<(i64, Option<i64>), StoreError> {
        Ok(self.connection.query_row(
            "SELECT count(*), min(created_at) FROM outbox",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?)
    }

    /// Deletes records PostgreSQL has committed (`seq` up to and including `last`).
    pub fn delete_synced(&mut self, last: i64) -> Result<usize, StoreError> {
        Ok(self
            .connection
            .execute("DELETE FROM outbox WHERE seq <= ?1", [last])?)
    }

    /// Keeps the newest `keep` event-log entries and `keep_ms` of processed event ids.
    /// Returns the log entries removed.
    pub fn prune(&mut self, keep: i64, keep_ms: i64, now_ms: i64) -> Result<usize, StoreError> {
        let tx = self.transaction()?;
        let removed = tx.execute(
            "DELETE FROM event_log WHERE seq <= (SELECT max(seq) FROM event_log) - ?1",
            [keep],
        )?;
        tx.execute(
            "DELETE FROM processed_events WHERE applied_at < ?1",
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
