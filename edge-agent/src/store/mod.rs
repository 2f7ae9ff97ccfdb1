//! The agent's SQLite store: orders and their lines, per-store sequence tracking, processed
//! event ids, batch sessions and the append-only event log, in one file (WAL,
//! `synchronous=FULL`). Writes are functions over one `Transaction`, so the writer (`kitchen`)
//! can apply an event, record its event id, and log what changed — the order event and the
//! batch items it moved — in one commit: an event applied once is never applied twice, whatever
//! the broker redelivers, and the log never disagrees with the data. Readers open their own
//! connections.

use std::{collections::BTreeMap, path::Path};

use kitchen_proto::{OrderEvent, OrderStatus, SchedulingType};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::{
    batch::{self, Line, OrderState},
    reference::Reference,
};

/// Embedded migrations, applied in order; `PRAGMA user_version` counts those applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_init.sql"),
    include_str!("../migrations/0002_batches_ready_stations.sql"),
    include_str!("../migrations/0003_reference_cache.sql"),
    include_str!("../migrations/0004_scans.sql"),
    include_str!("../migrations/0005_prep_stock.sql"),
    include_str!("../migrations/0006_sync_outbox.sql"),
];

/// Event kinds that are records for head office: each is also written to the sync outbox.
pub const SYNCED_KINDS: &[&str] = &[
    "order.created",
    "order.updated",
    "order.cancelled",
    "order.status",
    "order.bumped",
    "order.recalled",
    "order.ready",
    "batch.started",
    "batch.completed",
    "scan.recorded",
    "scan.rejected",
    "stock.changed",
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database schema version {found} is newer than this agent knows ({known})")]
    TooNew { found: usize, known: usize },
}

/// What applying an event did to its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Created,
    Updated,
    Cancelled,
    /// Status moved (confirmed, ready, handed off, ...) without new lines.
    Status,
    /// A snapshot not newer than the one held: recorded, lines untouched.
    Stale,
    /// A status for an order this kitchen never received: recorded only.
    UnknownOrder,
}

impl Change {
    /// The event-log kind (the SSE event name).
    pub fn kind(self) -> &'static str {
        match self {
            Change::Created => "order.created",
            Change::Updated => "order.updated",
            Change::Cancelled => "order.cancelled",
            Change::Status | Change::Stale | Change::UnknownOrder => "order.status",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Change::Created => "created",
            Change::Updated => "updated",
            Change::Cancelled => "cancelled",
            Change::Status => "status",
            Change::Stale => "stale",
            Change::UnknownOrder => "unknown_order",
        }
    }
}

/// The result of applying an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The event id was applied before: nothing changed.
    Duplicate,
    Applied {
        change: Change,
        /// Sequence numbers of this store skipped by this event (inclusive), if any.
        gap: Option<(u64, u64)>,
    },
}

/// An open order as a ticket on a display.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Ticket {
    pub order_id: String,
    pub store_id: String,
    pub source: String,
    pub friendly_id: String,
    pub status: String,
    pub customer_name: String,
    pub customer_note: String,
    pub received_at_ms: i64,
    pub lines: Vec<TicketLine>,
    /// Stations where it was bumped.
    pub bumped_at: Vec<String>,
    /// Every unit done at every station (bumps and completed batches).
    pub ready: bool,
    /// Stations it needs (filled by the caller, which knows the reference data).
    pub stations: Vec<String>,
    /// When it is promised (filled by the caller).
    pub promised_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TicketLine {
    pub name: String,
    pub quantity: u32,
    pub note: String,
    pub modifiers: Vec<TicketLine>,
    /// The reference item and its station this line or modifier resolves to (a top-level line
    /// that resolves to nothing: station `unassigned`); filled by `Ticket::annotate`.
    pub item_id: Option<String>,
    pub station_id: Option<String>,
    /// Otter's item id and SKU, to resolve it.
    #[serde(skip)]
    pub otter_ids: (String, String),
}

impl Ticket {
    /// Fills what needs the reference data: the stations the order needs, when it is
    /// promised, and the item and station of each line and modifier.
    pub fn annotate(&mut self, order: &batch::Order, reference: &crate::reference::Reference) {
        fn walk(lines: &mut [TicketLine], reference: &crate::reference::Reference, top: bool) {
            for line in lines {
                let (otter_id, sku) = &line.otter_ids;
                let resolved = reference.resolve(
                    Some(otter_id.as_str()),
                    Some(sku.as_str()),
                    Some(&line.name),
                );
                match resolved {
                    Some(item) => {
                        line.item_id = Some(item.id.clone());
                        line.station_id = Some(item.station.clone());
                    }
                    None if top => {
                        line.station_id = Some(crate::reference::UNASSIGNED_STATION.to_owned());
                    }
                    None => {}
                }
                walk(&mut line.modifiers, reference, false);
            }
        }
        let stations: std::collections::BTreeSet<String> = batch::contributions(order, reference)
            .into_iter()
            .map(|c| c.station_id)
            .collect();
        self.stations = stations.into_iter().collect();
        self.promised_at_ms = order.promised_at_ms();
        walk(&mut self.lines, reference, true);
    }
}

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

/// A run of sequence numbers not received from a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    pub store_id: String,
    pub from: u64,
    pub to: u64,
}

/// A batch a cook started (and maybe completed) on a batch item.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Session {
    pub session_id: String,
    pub station_id: String,
    pub item_id: String,
    pub item_name: String,
    pub quantity: u32,
    pub device: String,
    pub started_at_ms: i64,
    pub completed_at_ms: Option<i64>,
    /// Units given to each order on completion, most urgent first.
    pub allocations: Vec<Allocation>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Allocation {
    pub order_id: String,
    pub units: u32,
}

/// Everything a display needs, read in one read transaction so it matches `seq`.
#[derive(Debug, Clone, Default)]
pub struct StateSnapshot {
    /// The newest event-log sequence the state includes.
    pub seq: i64,
    pub orders: Vec<batch::Order>,
    pub tickets: Vec<Ticket>,
    pub open_sessions: Vec<Session>,
}

pub struct Store {
    connection: Connection,
}

impl Store {
    /// Opens (creating if needed) the store file and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::init(Connection::open(path)?)
    }

    /// A read connection to a store file the writer has opened (and migrated): no
    /// migrations, a modest page cache.
    pub fn open_reader(path: &Path) -> Result<Self, StoreError> {
        let connection = Connection::open(path)?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        connection.pragma_update(None, "query_only", true)?;
        // 1 MiB of page cache (the default is 2 MiB per connection).
        connection.pragma_update(None, "cache_size", -1024)?;
        Ok(Self { connection })
    }

    /// Leaves WAL checkpoints to `checkpoint` (called off the writer's thread), so a commit
    /// never waits for one.
    pub fn disable_auto_checkpoint(&self) -> Result<(), StoreError> {
        self.connection
            .pragma_update(None, "wal_autocheckpoint", 0)?;
        Ok(())
    }

    /// Copies committed WAL pages into the database file without blocking the writer or
    /// readers (`PASSIVE`). Returns the WAL pages checkpointed.
    pub fn checkpoint(&self) -> Result<i64, StoreError> {
        Ok(self
            .connection
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(2))?)
    }

    /// Replaces the cached reference data with `reference` (from `source`), in one transaction.
    pub fn save_reference(
        &mut self,
        reference: &Reference,
        source: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let tx = self.transaction()?;
        tx.execute_batch(
            "DELETE FROM ref_pars; DELETE FROM ref_matches; DELETE FROM ref_items;
             DELETE FROM ref_stations; DELETE FROM ref_stores; DELETE FROM ref_day_parts;
             DELETE FROM ref_source;",
        )?;
        for (position, part) in reference.day_parts.iter().enumerate() {
            tx.execute(
                "INSERT INTO ref_day_parts (id, start_time, end_time, position)
                 VALUES (?1, ?2, ?3, ?4)",
                params![part.id, part.start, part.end, position],
            )?;
        }
        for (position, station) in reference.stations.iter().enumerate() {
            tx.execute(
                "INSERT INTO ref_stations (id, name, position) VALUES (?1, ?2, ?3)",
                params![station.id, station.name, position],
            )?;
        }
        for (position, store) in reference.stores.iter().enumerate() {
            tx.execute(
                "INSERT INTO ref_stores (store_id, brand, position) VALUES (?1, ?2, ?3)",
                params![store.store_id, store.brand, position],
            )?;
        }
        for (position, item) in reference.items.iter().enumerate() {
            tx.execute(
                "INSERT INTO ref_items (id, name, station_id, prep_seconds, position, par, unit,
                                        shelf_life_days)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    item.id,
                    item.name,
                    item.station,
                    item.prep_seconds,
                    position,
                    item.par,
                    item.unit,
                    item.shelf_life_days
                ],
            )?;
            for (day_part, quantity) in &item.par_by_day_part {
                tx.execute(
                    "INSERT INTO ref_pars (item_id, day_part, quantity) VALUES (?1, ?2, ?3)",
                    params![item.id, day_part, quantity],
                )?;
            }
            for (position, key) in item.matches.iter().enumerate() {
                tx.execute(
                    "INSERT INTO ref_matches (item_id, position, key) VALUES (?1, ?2, ?3)",
                    params![item.id, position, key],
                )?;
            }
        }
        tx.execute(
            "INSERT INTO ref_source (id, source, loaded_at) VALUES (1, ?1, ?2)",
            params![source, now_ms],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The cached reference data with its source and when it was loaded, if any (a cached copy
    /// that no longer validates counts as none).
    pub fn cached_reference(&self) -> Result<Option<(Reference, String, i64)>, StoreError> {
        let Some((source, loaded_at)) = self
            .connection
            .query_row(
                "SELECT source, loaded_at FROM ref_source WHERE id = 1",
                [],
                |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)),
            )
            .optional()?
        else {
            return Ok(None);
        };
        let stations = self
            .connection
            .prepare("SELECT id, name FROM ref_stations ORDER BY position")?
            .query_map([], |row| {
                Ok(crate::reference::Station {
                    id: row.get(0)?,
                    name: row.get(1)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let stores = self
            .connection
            .prepare("SELECT store_id, brand FROM ref_stores ORDER BY position")?
            .query_map([], |row| {
                Ok(crate::reference::Store {
                    store_id: row.get(0)?,
                    brand: row.get(1)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let day_parts = self
            .connection
            .prepare("SELECT id, start_time, end_time FROM ref_day_parts ORDER BY position")?
            .query_map([], |row| {
                Ok(crate::reference::DayPart {
                    id: row.get(0)?,
                    start: row.get(1)?,
                    end: row.get(2)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut matches = self
            .connection
            .prepare("SELECT key FROM ref_matches WHERE item_id = ?1 ORDER BY position")?;
        let mut pars = self
            .connection
            .prepare("SELECT day_part, quantity FROM ref_pars WHERE item_id = ?1")?;
        let mut items: Vec<crate::reference::Item> = self
            .connection
            .prepare(
                "SELECT id, name, station_id, prep_seconds, par, unit, shelf_life_days
                 FROM ref_items ORDER BY position",
            )?
            .query_map([], |row| {
                Ok(crate::reference::Item {
                    id: row.get(0)?,
                    name: row.get(1)?,
                    station: row.get(2)?,
                    prep_seconds: row.get(3)?,
                    par: row.get(4)?,
                    unit: row.get(5)?,
                    shelf_life_days: row.get(6)?,
                    ..Default::default()
                })
            })?
            .collect::<Result<_, _>>()?;
        for item in &mut items {
            item.matches = matches
                .query_map([&item.id], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            item.par_by_day_part = pars
                .query_map([&item.id], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<Result<_, _>>()?;
        }
        Ok(Reference::new(stations, stores, items, day_parts)
            .ok()
            .map(|reference| (reference, source, loaded_at)))
    }

    /// Stock not yet used or discarded.
    pub fn open_stock(&self) -> Result<Vec<Lot>, StoreError> {
        open_stock(&self.connection)
    }

    pub fn stock(&self, stock_id: &str) -> Result<Option<Lot>, StoreError> {
        stock(&self.connection, stock_id)
    }

    /// A private in-memory store, for tests.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(connection: Connection) -> Result<Self, StoreError> {
        // WAL lets readers work while the writer commits; FULL makes a commit survive power
        // loss, which an ack to the broker relies on.
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "FULL")?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        let mut store = Self { connection };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let applied: usize = self
            .connection
            .pragma_query_value(None, "user_version", |row| row.get(0))?;
        if applied > MIGRATIONS.len() {
            return Err(StoreError::TooNew {
                found: applied,
                known: MIGRATIONS.len(),
            });
        }
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
            let tx = self.connection.transaction()?;
            tx.execute_batch(migration)?;
            tx.pragma_update(None, "user_version", index + 1)?;
            tx.commit()?;
        }
        Ok(())
    }

    /// Starts a write transaction (IMMEDIATE: it takes the write lock at once).
    pub fn transaction(&mut self) -> Result<Transaction<'_>, StoreError> {
        Ok(self
            .connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?)
    }

    /// Applies one event in its own transaction (without logging it); see `apply_event`.
    pub fn apply(&mut self, event: &OrderEvent, now_ms: i64) -> Result<Applied, StoreError> {
        let tx = self.transaction()?;
        let applied = apply_event(&tx, event, now_ms)?;
        tx.commit()?;
        Ok(applied)
    }

    /// Open orders as the batch calculation takes them.
    pub fn open_orders(&self) -> Result<Vec<batch::Order>, StoreError> {
        load_orders(&self.connection, None)
    }

    /// Open orders with their lines and notes, oldest first, for the displays.
    pub fn open_tickets(&self) -> Result<Vec<Ticket>, StoreError> {
        load_tickets(&self.connection, None)
    }

    /// Orders, tickets and open sessions as of one event-log sequence.
    pub fn state_snapshot(&self) -> Result<StateSnapshot, StoreError> {
        let tx = self.connection.unchecked_transaction()?;
        let snapshot = StateSnapshot {
            seq: last_event_seq(&tx)?,
            orders: load_orders(&tx, None)?,
            tickets: load_tickets(&tx, None)?,
            open_sessions: open_sessions(&tx)?,
        };
        tx.finish()?;
        Ok(snapshot)
    }

    /// Sequence numbers still missing, per store.
    pub fn sequence_gaps(&self) -> Result<Vec<Gap>, StoreError> {
        let mut statement = self.connection.prepare_cached(
            "SELECT store_id, from_sequence, to_sequence FROM sequence_gaps
             ORDER BY store_id, from_sequence",
        )?;
        let gaps = statement
            .query_map([], |row| {
                Ok(Gap {
                    store_id: row.get(0)?,
                    from: row.get::<_, i64>(1)? as u64,
                    to: row.get::<_, i64>(2)? as u64,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(gaps)
    }

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

    /// The order's state and status, if held.
    pub fn order_state(&self, order_id: &str) -> Result<Option<(String, String)>, StoreError> {
        Ok(self
            .connection
            .query_row(
                "SELECT state, status FROM orders WHERE order_id = ?1",
                [order_id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?)
    }

    /// A batch session by id.
    pub fn session(&self, session_id: &str) -> Result<Option<Session>, StoreError> {
        session(&self.connection, session_id)
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

    /// Per store, the sequence after which events may be missing: just before its first open
    /// gap, else the last applied. Stores never heard from are not listed (their first event
    /// sets the baseline).
    pub fn reconcile_points(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let mut statement = self.connection.prepare_cached(
            "SELECT s.store_id,
                    coalesce((SELECT min(g.from_sequence) - 1 FROM sequence_gaps g
                              WHERE g.store_id = s.store_id), s.last_sequence)
             FROM store_sequences s ORDER BY s.store_id",
        )?;
        let points = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?.max(0) as u64,
                ))
            })?
            .collect::<Result<_, _>>()?;
        Ok(points)
    }

    /// Deletes records PostgreSQL has committed (`seq` up to and including `last`).
    pub fn delete_synced(&mut self, last: i64) -> Result<usize, StoreError> {
        Ok(self
            .connection
            .execute("DELETE FROM outbox WHERE seq <= ?1", [last])?)
    }

    /// Counts for `/metrics`: open orders, open batch sessions.
    pub fn counts(&self) -> Result<(i64, i64), StoreError> {
        Ok(self.connection.query_row(
            "SELECT (SELECT count(*) FROM orders WHERE state = 'open'),
                    (SELECT count(*) FROM batch_sessions WHERE completed_at IS NULL)",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?)
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
        tx.commit()?;
        Ok(removed)
    }
}

fn last_event_seq(connection: &Connection) -> Result<i64, StoreError> {
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

/// Appends to the event log; `stations` `None` means it concerns every station. A record head
/// office should see (`SYNCED_KINDS`) also goes to the sync outbox, in the same transaction.
pub fn append_log(
    tx: &Transaction<'_>,
    kind: &str,
    order_id: Option<&str>,
    stations: Option<&[String]>,
    data: &serde_json::Value,
    now_ms: i64,
) -> Result<LoggedEvent, StoreError> {
    let data = data.to_string();
    let tags = stations.map(|s| format!(",{},", s.join(",")));
    tx.prepare_cached(
        "INSERT INTO event_log (kind, order_id, data, created_at, stations)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![kind, order_id, data, now_ms, tags])?;
    let seq = tx.last_insert_rowid();
    if SYNCED_KINDS.contains(&kind) {
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

/// Applies one event: de-duplicates by event id, tracks the store's sequence and updates the
/// order. The caller logs what changed, in the same transaction.
pub fn apply_event(
    tx: &Transaction<'_>,
    event: &OrderEvent,
    now_ms: i64,
) -> Result<Applied, StoreError> {
    let fresh = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO processed_events (event_id, store_id, sequence, applied_at)
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            event.event_id,
            event.store_id,
            (event.sequence > 0).then_some(event.sequence as i64),
            now_ms
        ])?;
    if fresh == 0 {
        return Ok(Applied::Duplicate);
    }
    let gap = track_sequence(tx, &event.store_id, event.sequence, now_ms)?;
    let change = apply_to_order(tx, event, now_ms)?;
    Ok(Applied::Applied { change, gap })
}

/// Marks `order_id` bumped (or, `bumped` false, recalled) at `stations`. Returns the stations
/// that changed, or `None` for an order not held. Idempotent.
pub fn set_bumps(
    tx: &Transaction<'_>,
    order_id: &str,
    stations: &[String],
    bumped: bool,
    now_ms: i64,
) -> Result<Option<Vec<String>>, StoreError> {
    let known = tx
        .query_row(
            "SELECT 1 FROM orders WHERE order_id = ?1",
            [order_id],
            |_| Ok(()),
        )
        .optional()?;
    if known.is_none() {
        return Ok(None);
    }
    let mut changed = Vec::new();
    for station in stations {
        let rows = if bumped {
            tx.execute(
                "INSERT OR IGNORE INTO order_bumps (order_id, station_id, bumped_at)
                 VALUES (?1, ?2, ?3)",
                params![order_id, station, now_ms],
            )?
        } else {
            tx.execute(
                "DELETE FROM order_bumps WHERE order_id = ?1 AND station_id = ?2",
                params![order_id, station],
            )?
        };
        if rows > 0 {
            changed.push(station.clone());
        }
    }
    Ok(Some(changed))
}

/// Sets or clears the order's ready time. Returns whether it changed.
pub fn set_ready(
    tx: &Transaction<'_>,
    order_id: &str,
    ready_at_ms: Option<i64>,
) -> Result<bool, StoreError> {
    let changed = match ready_at_ms {
        Some(at) => tx.execute(
            "UPDATE orders SET ready_at = ?2 WHERE order_id = ?1 AND ready_at IS NULL",
            params![order_id, at],
        )?,
        None => tx.execute(
            "UPDATE orders SET ready_at = NULL WHERE order_id = ?1 AND ready_at IS NOT NULL",
            [order_id],
        )?,
    };
    Ok(changed > 0)
}

/// A scan as recorded.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ScanRecord {
    pub scan_id: String,
    pub device: String,
    /// The bytes as sent, decoded lossily for display.
    pub code: String,
    pub parsed: Option<serde_json::Value>,
    /// The scanner's role: `station`, `prep` or `receiving`.
    pub role: String,
    /// `bump`, `stock` (added), `use`, `receive`, or `none` when rejected.
    pub action: String,
    pub accepted: bool,
    pub reason: String,
    pub order_id: Option<String>,
    pub station_id: Option<String>,
    /// The stock the scan added or used.
    pub stock_id: Option<String>,
    pub scanned_at_ms: i64,
}

/// Records a scan (in the transaction of its effect).
pub fn insert_scan(tx: &Transaction<'_>, scan: &ScanRecord, raw: &[u8]) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO scans (scan_id, device, raw, parsed, action, result, reason, order_id,
                            station_id, scanned_at, role, stock_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            scan.scan_id,
            scan.device,
            raw,
            scan.parsed.as_ref().map(|p| p.to_string()),
            scan.action,
            if scan.accepted {
                "accepted"
            } else {
                "rejected"
            },
            scan.reason,
            scan.order_id,
            scan.station_id,
            scan.scanned_at_ms,
            scan.role,
            scan.stock_id
        ],
    )?;
    Ok(())
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

/// A unit of stock: a labelled container, a received product unit or a transfer unit.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Lot {
    pub stock_id: String,
    pub item_id: String,
    /// `prep`, `product` or `transfer`.
    pub source: String,
    /// What makes a second scan of it a repeat; `None`: each scan is new stock.
    pub label: Option<String>,
    pub quantity: u32,
    pub lot: Option<String>,
    pub prepared_on: Option<chrono::NaiveDate>,
    /// The last day it may be used; `None`: keeps.
    pub use_by: Option<chrono::NaiveDate>,
    pub added_at_ms: i64,
    pub added_by: String,
    pub closed_at_ms: Option<i64>,
    /// `used` or `discarded` once closed.
    pub closed_as: Option<String>,
    pub closed_by: Option<String>,
}

fn day_text(date: Option<chrono::NaiveDate>) -> Option<String> {
    date.map(|d| d.format("%Y-%m-%d").to_string())
}

fn day_from_text(text: Option<String>) -> Option<chrono::NaiveDate> {
    text.and_then(|t| chrono::NaiveDate::parse_from_str(&t, "%Y-%m-%d").ok())
}

const LOT_COLUMNS: &str = "stock_id, item_id, source, label, quantity, lot, prepared_on, use_by,
    added_at, added_by, closed_at, closed_as, closed_by";

fn lot_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Lot> {
    Ok(Lot {
        stock_id: row.get(0)?,
        item_id: row.get(1)?,
        source: row.get(2)?,
        label: row.get(3)?,
        quantity: row.get(4)?,
        lot: row.get(5)?,
        prepared_on: day_from_text(row.get(6)?),
        use_by: day_from_text(row.get(7)?),
        added_at_ms: row.get(8)?,
        added_by: row.get(9)?,
        closed_at_ms: row.get(10)?,
        closed_as: row.get(11)?,
        closed_by: row.get(12)?,
    })
}

/// Records new stock (added by the scan `scan_id`).
pub fn insert_stock(
    tx: &Transaction<'_>,
    lot: &Lot,
    scan_id: Option<&str>,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO stock (stock_id, item_id, source, label, quantity, lot, prepared_on, use_by,
                            added_at, added_by, scan_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        lot.stock_id,
        lot.item_id,
        lot.source,
        lot.label,
        lot.quantity,
        lot.lot,
        day_text(lot.prepared_on),
        day_text(lot.use_by),
        lot.added_at_ms,
        lot.added_by,
        scan_id
    ])?;
    Ok(())
}

/// The stock with this label, open or closed.
pub fn stock_by_label(connection: &Connection, label: &str) -> Result<Option<Lot>, StoreError> {
    Ok(connection
        .prepare_cached(&format!("SELECT {LOT_COLUMNS} FROM stock WHERE label = ?1"))?
        .query_row([label], lot_from_row)
        .optional()?)
}

pub fn stock(connection: &Connection, stock_id: &str) -> Result<Option<Lot>, StoreError> {
    Ok(connection
        .prepare_cached(&format!(
            "SELECT {LOT_COLUMNS} FROM stock WHERE stock_id = ?1"
        ))?
        .query_row([stock_id], lot_from_row)
        .optional()?)
}

/// Stock not yet used or discarded (expired included), oldest first.
pub fn open_stock(connection: &Connection) -> Result<Vec<Lot>, StoreError> {
    let lots = connection
        .prepare_cached(&format!(
            "SELECT {LOT_COLUMNS} FROM stock WHERE closed_at IS NULL
             ORDER BY use_by IS NULL, use_by, added_at, stock_id"
        ))?
        .query_map([], lot_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(lots)
}

/// Closes open stock as `used` or `discarded`; false when it was not open.
pub fn close_stock(
    tx: &Transaction<'_>,
    stock_id: &str,
    closed_as: &str,
    device: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let changed = tx
        .prepare_cached(
            "UPDATE stock SET closed_at = ?2, closed_as = ?3, closed_by = ?4
             WHERE stock_id = ?1 AND closed_at IS NULL",
        )?
        .execute(params![stock_id, now_ms, closed_as, device])?;
    Ok(changed > 0)
}

/// A transfer unit received at the back door.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Transfer {
    pub sscc: String,
    pub scan_id: String,
    pub device: String,
    pub received_at_ms: i64,
    pub gtin: Option<String>,
    pub item_id: Option<String>,
    pub count: Option<u32>,
    pub lot: Option<String>,
    pub use_by: Option<chrono::NaiveDate>,
    pub stock_id: Option<String>,
}

pub fn insert_transfer(tx: &Transaction<'_>, transfer: &Transfer) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO transfers (sscc, scan_id, device, received_at, gtin, item_id, count, lot,
                                use_by, stock_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        transfer.sscc,
        transfer.scan_id,
        transfer.device,
        transfer.received_at_ms,
        transfer.gtin,
        transfer.item_id,
        transfer.count,
        transfer.lot,
        day_text(transfer.use_by),
        transfer.stock_id
    ])?;
    Ok(())
}

/// When a transfer unit was received, if it was.
pub fn transfer_received_at(
    connection: &Connection,
    sscc: &str,
) -> Result<Option<i64>, StoreError> {
    Ok(connection
        .prepare_cached("SELECT received_at FROM transfers WHERE sscc = ?1")?
        .query_row([sscc], |row| row.get(0))
        .optional()?)
}

/// Open orders whose friendly id is `friendly_id`.
pub fn open_orders_by_friendly_id(
    connection: &Connection,
    friendly_id: &str,
) -> Result<Vec<String>, StoreError> {
    let mut statement = connection.prepare_cached(
        "SELECT order_id FROM orders WHERE state = 'open' AND friendly_id = ?1 ORDER BY order_id",
    )?;
    let ids = statement
        .query_map([friendly_id], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(ids)
}

/// Records a started batch session.
pub fn insert_session(tx: &Transaction<'_>, session: &Session) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO batch_sessions (session_id, station_id, item_id, item_name, quantity,
                                     device, started_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            session.session_id,
            session.station_id,
            session.item_id,
            session.item_name,
            session.quantity,
            session.device,
            session.started_at_ms
        ],
    )?;
    Ok(())
}

/// Completes a session: its units go to `allocations`' orders.
pub fn complete_session(
    tx: &Transaction<'_>,
    session: &Session,
    completed_at_ms: i64,
    allocations: &[Allocation],
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE batch_sessions SET completed_at = ?2, allocations = ?3 WHERE session_id = ?1",
        params![
            session.session_id,
            completed_at_ms,
            serde_json::to_string(allocations).unwrap_or_default()
        ],
    )?;
    for allocation in allocations {
        tx.execute(
            "INSERT INTO order_done (order_id, station_id, item_id, units) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (order_id, station_id, item_id) DO UPDATE SET units = units + excluded.units",
            params![
                allocation.order_id,
                session.station_id,
                session.item_id,
                allocation.units
            ],
        )?;
    }
    Ok(())
}

const SESSION_COLUMNS: &str = "session_id, station_id, item_id, item_name, quantity, device,
                               started_at, completed_at, allocations";

fn session_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Session> {
    let allocations: Option<String> = row.get(8)?;
    Ok(Session {
        session_id: row.get(0)?,
        station_id: row.get(1)?,
        item_id: row.get(2)?,
        item_name: row.get(3)?,
        quantity: row.get(4)?,
        device: row.get(5)?,
        started_at_ms: row.get(6)?,
        completed_at_ms: row.get(7)?,
        allocations: allocations
            .and_then(|a| serde_json::from_str(&a).ok())
            .unwrap_or_default(),
    })
}

pub fn session(connection: &Connection, session_id: &str) -> Result<Option<Session>, StoreError> {
    Ok(connection
        .query_row(
            &format!("SELECT {SESSION_COLUMNS} FROM batch_sessions WHERE session_id = ?1"),
            [session_id],
            session_from_row,
        )
        .optional()?)
}

/// Sessions started and not completed, oldest first.
pub fn open_sessions(connection: &Connection) -> Result<Vec<Session>, StoreError> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {SESSION_COLUMNS} FROM batch_sessions WHERE completed_at IS NULL
         ORDER BY started_at, session_id"
    ))?;
    let sessions = statement
        .query_map([], session_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(sessions)
}

/// The condition selecting one order (`?1`) or all: one statement text per case, so a single
/// order is looked up by its key rather than by scanning every open order.
fn only_filter(only: Option<&str>) -> &'static str {
    if only.is_some() {
        "o.order_id = ?1"
    } else {
        "?1 IS NULL"
    }
}

/// Open orders (all, or only `only`) as the batch calculation takes them.
pub fn load_orders(
    connection: &Connection,
    only: Option<&str>,
) -> Result<Vec<batch::Order>, StoreError> {
    let only_filter = only_filter(only);
    let mut orders: BTreeMap<String, batch::Order> = BTreeMap::new();
    let mut statement = connection.prepare_cached(&format!(
        "SELECT order_id, received_at, ordered_at, pickup_time, estimated_pickup_time,
                estimated_prep_seconds, scheduled
         FROM orders o WHERE state = 'open' AND {only_filter}"
    ))?;
    let rows = statement.query_map([only], |row| {
        Ok(batch::Order {
            order_id: row.get(0)?,
            state: OrderState::Open,
            received_at_ms: row.get(1)?,
            ordered_at_ms: row.get(2)?,
            pickup_time_ms: row.get(3)?,
            estimated_pickup_time_ms: row.get(4)?,
            estimated_prep_seconds: row.get(5)?,
            scheduled: row.get(6)?,
            ..batch::Order::default()
        })
    })?;
    for order in rows {
        let order = order?;
        orders.insert(order.order_id.clone(), order);
    }

    let mut statement = connection.prepare_cached(&format!(
        "SELECT l.order_id, l.line_no, l.parent_no, l.item_id, l.sku_id, l.name, l.quantity
         FROM order_lines l JOIN orders o USING (order_id)
         WHERE o.state = 'open' AND {only_filter}
         ORDER BY l.order_id, l.line_no"
    ))?;
    let mut flat: BTreeMap<String, Vec<(i64, Option<i64>, Line)>> = BTreeMap::new();
    let rows = statement.query_map([only], |row| {
        let text = |index: usize| -> rusqlite::Result<Option<String>> {
            let value: String = row.get(index)?;
            Ok((!value.is_empty()).then_some(value))
        };
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, Option<i64>>(2)?,
            Line {
                item_id: text(3)?,
                sku_id: text(4)?,
                name: text(5)?,
                quantity: row.get(6)?,
                modifiers: Vec::new(),
            },
        ))
    })?;
    for row in rows {
        let (order_id, line_no, parent_no, line) = row?;
        flat.entry(order_id)
            .or_default()
            .push((line_no, parent_no, line));
    }
    for (order_id, lines) in flat {
        if let Some(order) = orders.get_mut(&order_id) {
            order.lines = rebuild(lines, |line, modifiers| line.modifiers = modifiers);
        }
    }

    let mut statement = connection.prepare_cached(&format!(
        "SELECT b.order_id, b.station_id FROM order_bumps b JOIN orders o USING (order_id)
         WHERE o.state = 'open' AND {only_filter}"
    ))?;
    let rows = statement.query_map([only], |row| Ok((row.get::<_, String>(0)?, row.get(1)?)))?;
    for row in rows {
        let (order_id, station_id) = row?;
        if let Some(order) = orders.get_mut(&order_id) {
            order.bumped_at.insert(station_id);
        }
    }
    let mut statement = connection.prepare_cached(&format!(
        "SELECT d.order_id, d.station_id, d.item_id, d.units
         FROM order_done d JOIN orders o USING (order_id)
         WHERE o.state = 'open' AND {only_filter}"
    ))?;
    let rows = statement.query_map([only], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get(1)?,
            row.get(2)?,
            row.get(3)?,
        ))
    })?;
    for row in rows {
        let (order_id, station_id, item_id, units) = row?;
        if let Some(order) = orders.get_mut(&order_id) {
            order.done.insert((station_id, item_id), units);
        }
    }
    Ok(orders.into_values().collect())
}

/// Open orders (all, or only `only`) with their lines and notes, oldest first.
pub fn load_tickets(
    connection: &Connection,
    only: Option<&str>,
) -> Result<Vec<Ticket>, StoreError> {
    let only_filter = only_filter(only);
    let mut statement = connection.prepare_cached(&format!(
        "SELECT order_id, store_id, source, friendly_id, status, customer_name, customer_note,
                received_at, ready_at IS NOT NULL
         FROM orders o WHERE state = 'open' AND {only_filter}
         ORDER BY received_at, order_id"
    ))?;
    let mut tickets: Vec<Ticket> = statement
        .query_map([only], |row| {
            Ok(Ticket {
                order_id: row.get(0)?,
                store_id: row.get(1)?,
                source: row.get(2)?,
                friendly_id: row.get(3)?,
                status: row.get(4)?,
                customer_name: row.get(5)?,
                customer_note: row.get(6)?,
                received_at_ms: row.get(7)?,
                ready: row.get(8)?,
                lines: Vec::new(),
                bumped_at: Vec::new(),
                stations: Vec::new(),
                promised_at_ms: 0,
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut lines = connection.prepare_cached(
        "SELECT line_no, parent_no, name, quantity, note, item_id, sku_id FROM order_lines
         WHERE order_id = ?1 ORDER BY line_no",
    )?;
    let mut bumps = connection.prepare_cached(
        "SELECT station_id FROM order_bumps WHERE order_id = ?1 ORDER BY station_id",
    )?;
    for ticket in &mut tickets {
        let rows: Vec<(i64, Option<i64>, TicketLine)> = lines
            .query_map([&ticket.order_id], |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    TicketLine {
                        name: row.get(2)?,
                        quantity: row.get(3)?,
                        note: row.get(4)?,
                        modifiers: Vec::new(),
                        item_id: None,
                        station_id: None,
                        otter_ids: (row.get(5)?, row.get(6)?),
                    },
                ))
            })?
            .collect::<Result<_, _>>()?;
        ticket.lines = rebuild(rows, |line, modifiers| line.modifiers = modifiers);
        ticket.bumped_at = bumps
            .query_map([&ticket.order_id], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
    }
    Ok(tickets)
}

/// Rebuilds a modifier tree from pre-order rows with parent links; `attach` sets a node's
/// children.
fn rebuild<T>(mut rows: Vec<(i64, Option<i64>, T)>, attach: impl Fn(&mut T, Vec<T>)) -> Vec<T> {
    // Children come after their parent in pre-order: attach from the end.
    let mut roots = Vec::new();
    let mut children: BTreeMap<i64, Vec<T>> = BTreeMap::new();
    while let Some((line_no, parent_no, mut node)) = rows.pop() {
        if let Some(mut own) = children.remove(&line_no) {
            own.reverse();
            attach(&mut node, own);
        }
        match parent_no {
            Some(parent) => children.entry(parent).or_default().push(node),
            None => roots.push(node),
        }
    }
    roots.reverse();
    roots
}

/// Records the store's newest sequence number and any numbers it skipped; a late number fills
/// its gap. Returns the gap this event opened.
fn track_sequence(
    tx: &Transaction<'_>,
    store_id: &str,
    sequence: u64,
    now_ms: i64,
) -> Result<Option<(u64, u64)>, StoreError> {
    if sequence == 0 {
        return Ok(None);
    }
    let sequence = sequence as i64;
    let last: Option<i64> = tx
        .query_row(
            "SELECT last_sequence FROM store_sequences WHERE store_id = ?1",
            [store_id],
            |row| row.get(0),
        )
        .optional()?;
    match last {
        // The first event seen from a store is the baseline, not a gap.
        None => {
            tx.execute(
                "INSERT INTO store_sequences (store_id, last_sequence) VALUES (?1, ?2)",
                params![store_id, sequence],
            )?;
            Ok(None)
        }
        Some(last) if sequence > last => {
            tx.execute(
                "UPDATE store_sequences SET last_sequence = ?2 WHERE store_id = ?1",
                params![store_id, sequence],
            )?;
            if sequence == last + 1 {
                return Ok(None);
            }
            tx.execute(
                "INSERT INTO sequence_gaps (store_id, from_sequence, to_sequence, detected_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![store_id, last + 1, sequence - 1, now_ms],
            )?;
            Ok(Some(((last + 1) as u64, (sequence - 1) as u64)))
        }
        Some(_) => {
            // Late: it fills (part of) a gap.
            let gap: Option<(i64, i64)> = tx
                .query_row(
                    "SELECT from_sequence, to_sequence FROM sequence_gaps
                     WHERE store_id = ?1 AND from_sequence <= ?2 AND to_sequence >= ?2",
                    params![store_id, sequence],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            if let Some((from, to)) = gap {
                tx.execute(
                    "DELETE FROM sequence_gaps WHERE store_id = ?1 AND from_sequence = ?2",
                    params![store_id, from],
                )?;
                for (a, b) in [(from, sequence - 1), (sequence + 1, to)] {
                    if a <= b {
                        tx.execute(
                            "INSERT INTO sequence_gaps
                                 (store_id, from_sequence, to_sequence, detected_at)
                             VALUES (?1, ?2, ?3, ?4)",
                            params![store_id, a, b, now_ms],
                        )?;
                    }
                }
            }
            Ok(None)
        }
    }
}

fn state_of(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::Canceled | OrderStatus::Rejected => "cancelled",
        OrderStatus::Prepared | OrderStatus::PickedUp | OrderStatus::Fulfilled => "closed",
        _ => "open",
    }
}

fn apply_to_order(
    tx: &Transaction<'_>,
    event: &OrderEvent,
    now_ms: i64,
) -> Result<Change, StoreError> {
    let held: Option<(Option<i64>, String)> = tx
        .query_row(
            "SELECT snapshot_event_time, state FROM orders WHERE order_id = ?1",
            [&event.order_id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let was_cancelled = held.as_ref().is_some_and(|(_, state)| state == "cancelled");
    let mut state = state_of(event.status());
    if was_cancelled {
        state = "cancelled";
    }
    let cancelled_now = state == "cancelled" && !was_cancelled;

    if !event.has_snapshot {
        if held.is_none() {
            return Ok(Change::UnknownOrder);
        }
        tx.execute(
            "UPDATE orders SET state = ?2, status = ?3, updated_at = ?4,
                 cancellation_reason = CASE WHEN ?5 = '' THEN cancellation_reason ELSE ?5 END
             WHERE order_id = ?1",
            params![
                event.order_id,
                state,
                event.status().as_str_name(),
                now_ms,
                event.cancellation_reason
            ],
        )?;
        return Ok(if cancelled_now {
            Change::Cancelled
        } else {
            Change::Status
        });
    }

    if let Some((Some(held_time), _)) = &held
        && event.event_time_ms <= *held_time
    {
        return Ok(Change::Stale);
    }
    let fulfillment = event.fulfillment.clone().unwrap_or_default();
    tx.execute(
        "INSERT INTO orders (order_id, store_id, source, friendly_id, state, status,
             snapshot_event_time, received_at, ordered_at, pickup_time, estimated_pickup_time,
             estimated_prep_seconds, scheduled, customer_name, customer_note,
             cancellation_reason, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
         ON CONFLICT (order_id) DO UPDATE SET
             store_id = excluded.store_id, source = excluded.source,
             friendly_id = excluded.friendly_id, state = excluded.state,
             status = excluded.status, snapshot_event_time = excluded.snapshot_event_time,
             ordered_at = excluded.ordered_at, pickup_time = excluded.pickup_time,
             estimated_pickup_time = excluded.estimated_pickup_time,
             estimated_prep_seconds = excluded.estimated_prep_seconds,
             scheduled = excluded.scheduled, customer_name = excluded.customer_name,
             customer_note = excluded.customer_note,
             cancellation_reason = excluded.cancellation_reason,
             updated_at = excluded.updated_at",
        params![
            event.order_id,
            event.store_id,
            event.source,
            event.friendly_id,
            state,
            event.status().as_str_name(),
            event.event_time_ms,
            if event.received_at_ms > 0 {
                event.received_at_ms
            } else {
                now_ms
            },
            event.ordered_at_ms,
            fulfillment.pickup_time_ms,
            fulfillment.estimated_pickup_time_ms,
            event.estimated_prep_seconds,
            fulfillment.scheduling_type() == SchedulingType::FixedTime,
            event.customer_name,
            event.customer_note,
            event.cancellation_reason,
            now_ms,
        ],
    )?;
    tx.execute(
        "DELETE FROM order_lines WHERE order_id = ?1",
        [&event.order_id],
    )?;
    let mut insert = tx.prepare(
        "INSERT INTO order_lines (order_id, line_no, parent_no, depth, item_id, sku_id, name,
                                  quantity, note, price)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    let mut next_no = 0i64;
    let mut stack: Vec<(&kitchen_proto::LineItem, Option<i64>, i64)> = event
        .items
        .iter()
        .rev()
        .map(|item| (item, None, 0))
        .collect();
    while let Some((item, parent_no, depth)) = stack.pop() {
        let line_no = next_no;
        next_no += 1;
        insert.execute(params![
            event.order_id,
            line_no,
            parent_no,
            depth,
            item.item_id,
            item.sku_id,
            item.name,
            item.quantity,
            item.note,
            item.price
        ])?;
        for modifier in item.modifiers.iter().rev() {
            stack.push((modifier, Some(line_no), depth + 1));
        }
    }
    Ok(match (held.is_some(), cancelled_now) {
        (_, true) => Change::Cancelled,
        (false, false) => Change::Created,
        (true, false) => Change::Updated,
    })
}

#[cfg(test)]
mod tests {
    use kitchen_proto::{EventType, Fulfillment, LineItem};

    use super::*;
    use crate::batch::board;
    use serde_json::json;

    const MINUTE: i64 = 60_000;
    const NOW: i64 = 1_741_977_600_000;

    fn item(name: &str, quantity: u32, modifiers: Vec<LineItem>) -> LineItem {
        LineItem {
            name: name.into(),
            quantity,
            modifiers,
            ..LineItem::default()
        }
    }

    fn snapshot(
        event_id: &str,
        seq: u64,
        order_id: &str,
        at_min: i64,
        items: Vec<LineItem>,
    ) -> OrderEvent {
        OrderEvent {
            event_id: event_id.into(),
            event_type: EventType::NewOrder as i32,
            otter_event_type: "orders.new_order".into(),
            event_time_ms: NOW + at_min * MINUTE,
            store_id: "s1".into(),
            sequence: seq,
            order_id: order_id.into(),
            status: OrderStatus::NewOrder as i32,
            fulfillment: Some(Fulfillment {
                pickup_time_ms: Some(NOW + 20 * MINUTE),
                ..Fulfillment::default()
            }),
            items,
            has_snapshot: true,
            received_at_ms: NOW,
            ..OrderEvent::default()
        }
    }

    fn status(event_id: &str, seq: u64, order_id: &str, status: OrderStatus) -> OrderEvent {
        OrderEvent {
            event_id: event_id.into(),
            otter_event_type: "orders.status".into(),
            store_id: "s1".into(),
            sequence: seq,
            order_id: order_id.into(),
            status: status as i32,
            ..OrderEvent::default()
        }
    }

    fn reference() -> Reference {
        Reference::parse(
            "[[stations]]\nid = \"fry\"\nname = \"Fryer\"\n[[items]]\nid = \"fries\"\nname = \"Fries\"\nstation = \"fry\"\nprep_seconds = 180\nmatch = [\"Fries\"]",
        )
        .expect("valid")
    }

    /// (item, quantity, orders) of the fry station.
    fn fries(store: &Store) -> Vec<(String, u32, Vec<String>)> {
        let orders = store.open_orders().expect("loads");
        board(&orders, &reference(), NOW, 20 * MINUTE)
            .items
            .into_iter()
            .filter(|i| i.station_id == "fry")
            .map(|i| (i.item_id, i.quantity, i.order_ids))
            .collect()
    }

    fn change(applied: Applied) -> Change {
        match applied {
            Applied::Applied { change, .. } => change,
            Applied::Duplicate => panic!("unexpected duplicate"),
        }
    }

    #[test]
    fn events_apply_once_and_in_time_order() {
        let mut store = Store::open_in_memory().expect("opens");
        let meal = || {
            vec![item(
                "Burger",
                2,
                vec![item("Meal", 1, vec![item("Fries", 1, vec![])])],
            )]
        };
        let first = snapshot("e1", 1, "o1", 0, meal());
        assert_eq!(
            change(store.apply(&first, NOW).expect("applies")),
            Change::Created
        );
        // The broker redelivers: nothing changes.
        assert_eq!(
            store.apply(&first, NOW).expect("applies"),
            Applied::Duplicate
        );
        assert_eq!(fries(&store), [("fries".into(), 2, vec!["o1".to_owned()])]);

        // A newer update replaces the lines; an older one is ignored.
        let newer = snapshot("e2", 2, "o1", 5, vec![item("Fries", 5, vec![])]);
        assert_eq!(
            change(store.apply(&newer, NOW).expect("applies")),
            Change::Updated
        );
        let older = snapshot("e3", 3, "o1", 2, vec![item("Fries", 9, vec![])]);
        assert_eq!(
            change(store.apply(&older, NOW).expect("applies")),
            Change::Stale
        );
        assert_eq!(fries(&store), [("fries".into(), 5, vec!["o1".to_owned()])]);

        // Cancelled (either relay form arrives as status CANCELED) is final.
        let cancel = status("e4", 4, "o1", OrderStatus::Canceled);
        assert_eq!(
            change(store.apply(&cancel, NOW).expect("applies")),
            Change::Cancelled
        );
        let confirm = status("e5", 5, "o1", OrderStatus::Confirmed);
        assert_eq!(
            change(store.apply(&confirm, NOW).expect("applies")),
            Change::Status
        );
        assert_eq!(
            store.order_state("o1").expect("reads"),
            Some(("cancelled".into(), "ORDER_STATUS_CONFIRMED".into()))
        );
        assert!(fries(&store).is_empty());
    }

    #[test]
    fn ready_closes_an_order_and_unknown_orders_are_only_recorded() {
        let mut store = Store::open_in_memory().expect("opens");
        store
            .apply(
                &snapshot("e1", 1, "o1", 0, vec![item("Fries", 1, vec![])]),
                NOW,
            )
            .expect("applies");
        store
            .apply(
                &snapshot("e2", 2, "o2", 0, vec![item("Fries", 2, vec![])]),
                NOW,
            )
            .expect("applies");
        let ready = status("e3", 3, "o1", OrderStatus::Prepared);
        assert_eq!(
            change(store.apply(&ready, NOW).expect("applies")),
            Change::Status
        );
        assert_eq!(fries(&store), [("fries".into(), 2, vec!["o2".to_owned()])]);
        let stray = status("e4", 4, "o9", OrderStatus::Confirmed);
        assert_eq!(
            change(store.apply(&stray, NOW).expect("applies")),
            Change::UnknownOrder
        );
        assert_eq!(store.order_state("o9").expect("reads"), None);
    }

    #[test]
    fn skipped_sequence_numbers_are_gaps_until_they_arrive() {
        let mut store = Store::open_in_memory().expect("opens");
        let at = |seq: u64| status(&format!("e{seq}"), seq, "o1", OrderStatus::Confirmed);
        let gap = |applied: Applied| match applied {
            Applied::Applied { gap, .. } => gap,
            Applied::Duplicate => panic!("duplicate"),
        };
        assert_eq!(
            gap(store.apply(&at(7), NOW).expect("applies")),
            None,
            "baseline"
        );
        assert_eq!(gap(store.apply(&at(8), NOW).expect("applies")), None);
        assert_eq!(
            gap(store.apply(&at(12), NOW).expect("applies")),
            Some((9, 11))
        );
        store.apply(&at(10), NOW).expect("applies");
        let remaining: Vec<(u64, u64)> = store
            .sequence_gaps()
            .expect("reads")
            .into_iter()
            .map(|g| (g.from, g.to))
            .collect();
        assert_eq!(remaining, [(9, 9), (11, 11)]);
    }

    #[test]
    fn the_modifier_tree_survives_the_store() {
        let mut store = Store::open_in_memory().expect("opens");
        let items = vec![
            item(
                "Burger",
                2,
                vec![
                    item("Cheese", 1, vec![]),
                    item(
                        "Meal",
                        1,
                        vec![
                            item("Fries", 1, vec![item("Large", 1, vec![])]),
                            item("Cola", 1, vec![]),
                        ],
                    ),
                ],
            ),
            item("Fries", 1, vec![]),
        ];
        store
            .apply(&snapshot("e1", 1, "o1", 0, items), NOW)
            .expect("applies");
        let orders = store.open_orders().expect("loads");
        let names = |lines: &[Line]| -> Vec<String> {
            lines
                .iter()
                .map(|l| l.name.clone().unwrap_or_default())
                .collect()
        };
        let lines = &orders[0].lines;
        assert_eq!(names(lines), ["Burger", "Fries"]);
        assert_eq!(names(&lines[0].modifiers), ["Cheese", "Meal"]);
        assert_eq!(names(&lines[0].modifiers[1].modifiers), ["Fries", "Cola"]);
        assert_eq!(
            names(&lines[0].modifiers[1].modifiers[0].modifiers),
            ["Large"]
        );
        assert_eq!(fries(&store), [("fries".into(), 3, vec!["o1".to_owned()])]);
    }

    #[test]
    fn pruning_keeps_the_newest_log_entries_and_the_high_water_mark() {
        let mut store = Store::open_in_memory().expect("opens");
        for n in 1..=5 {
            let tx = store.transaction().expect("tx");
            append_log(&tx, "order.status", None, None, &json!({ "n": n }), NOW).expect("logs");
            tx.commit().expect("commits");
        }
        store
            .apply(
                &status("e1", 1, "old", OrderStatus::Confirmed),
                NOW - 40 * 24 * 60 * MINUTE,
            )
            .expect("applies");
        store
            .apply(&status("e2", 2, "new", OrderStatus::Confirmed), NOW)
            .expect("applies");
        assert_eq!(
            store.prune(2, 30 * 24 * 60 * MINUTE, NOW).expect("prunes"),
            3
        );
        assert_eq!(store.event_log_bounds().expect("reads"), (4, 5));
        let kept: Vec<i64> = store
            .events_after(0, 10)
            .expect("reads")
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(kept, [4, 5]);
        // The next entry still gets a fresh sequence, and so does the one after a full prune.
        store.prune(0, 30 * 24 * 60 * MINUTE, NOW).expect("prunes");
        assert_eq!(store.event_log_bounds().expect("reads"), (0, 0));
        assert_eq!(store.last_event_seq().expect("reads"), 5);
        // A redelivery of an event older than the de-duplication window is applied again;
        // a recent one is still a duplicate.
        assert_eq!(
            store
                .apply(&status("e2", 2, "new", OrderStatus::Confirmed), NOW)
                .expect("applies"),
            Applied::Duplicate
        );
        assert_ne!(
            store
                .apply(&status("e1", 1, "old", OrderStatus::Confirmed), NOW)
                .expect("applies"),
            Applied::Duplicate
        );
    }

    #[test]
    fn the_reference_cache_holds_what_was_saved() {
        let mut store = Store::open_in_memory().expect("opens");
        assert!(store.cached_reference().expect("reads").is_none());
        let reference = Reference::parse(
            "[[stations]]\nid = \"fry\"\nname = \"Fryer\"\n[[stations]]\nid = \"grill\"\nname = \"Grill\"\n\
             [[stores]]\nstore_id = \"s1\"\nbrand = \"Smash\"\n\
             [[items]]\nid = \"fries\"\nname = \"Fries\"\nstation = \"fry\"\nprep_seconds = 180\nmatch = [\"Fries\", \"sku-f\"]",
        )
        .expect("valid");
        store
            .save_reference(&reference, "file.toml", NOW)
            .expect("saves");
        let (cached, source, at) = store.cached_reference().expect("reads").expect("cached");
        assert_eq!((source.as_str(), at), ("file.toml", NOW));
        assert_eq!(cached.stations, reference.stations);
        assert_eq!(cached.stores, reference.stores);
        assert_eq!(cached.items, reference.items);
        // Saving again replaces the whole copy.
        store
            .save_reference(&Reference::default(), "empty", NOW + 1)
            .expect("saves");
        let (cached, _, _) = store.cached_reference().expect("reads").expect("cached");
        assert!(cached.items.is_empty() && cached.stations.is_empty());
    }

    #[test]
    fn a_store_file_reopens_with_its_data() {
        let path = std::env::temp_dir().join(format!("edge-store-test-{}.db", std::process::id()));
        {
            let mut store = Store::open(&path).expect("opens");
            store
                .apply(
                    &snapshot("e1", 1, "o1", 0, vec![item("Fries", 4, vec![])]),
                    NOW,
                )
                .expect("applies");
        }
        let store = Store::open(&path).expect("reopens");
        assert_eq!(fries(&store), [("fries".into(), 4, vec!["o1".to_owned()])]);
        drop(store);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}
