//! The agent's SQLite store: orders and their lines, per-store sequence tracking, processed
//! event ids, batch sessions and the append-only event log, in one file (WAL,
//! `synchronous=FULL`). Writes are functions over one `Transaction`, so the writer (`kitchen`)
//! can apply an event, record its event id, and log what changed — the order event and the
//! batch items it moved — in one commit: an event applied once is never applied twice, whatever
//! the broker redelivers, and the log never disagrees with the data. Readers open their own
//! connections.

mod devices;
mod log;
mod orders;
mod otter;
mod prep_reports;
mod prints;
mod readers;
mod recovery;
mod reference;
mod reports;
mod scans;
mod sessions;
mod stock;
#[cfg(test)]
mod tests;
mod tickets;

use std::path::Path;

use rusqlite::{Connection, Transaction};

pub use devices::{NewDevice, PairingCode};
pub use log::{LoggedEvent, OutboxRow, append_log, append_log_as, new_record_id};
pub use orders::{Applied, Gap, apply_event, open_orders_by_friendly_id, set_bumps, set_ready};
pub use otter::{
    CallChange, OrderForOtter, Suspension, close_order, insert_suspension, lift_suspension,
    order_for_otter, save_calls, set_prep_minutes, suspensions,
};
pub use prints::{NewPrintJob, PrintJob, insert_print_job};
pub use readers::Readers;
pub use recovery::{
    created_record_id, finish_recovery, recovery_pending, remember_created, restore_record,
    restore_session, set_baseline,
};
pub use scans::insert_scan;
pub use sessions::{complete_session, insert_session, open_sessions, session};
pub use stock::{
    close_stock, insert_stock, insert_transfer, open_stock, stock, stock_by_label,
    transfer_received_at,
};
pub use tickets::{StateSnapshot, load_orders, load_tickets};

/// Embedded migrations, applied in order; `PRAGMA user_version` counts those applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_init.sql"),
    include_str!("../../migrations/0002_batches_ready_stations.sql"),
    include_str!("../../migrations/0003_reference_cache.sql"),
    include_str!("../../migrations/0004_scans.sql"),
    include_str!("../../migrations/0005_prep_stock.sql"),
    include_str!("../../migrations/0006_sync_outbox.sql"),
    include_str!("../../migrations/0007_devices.sql"),
    include_str!("../../migrations/0008_otter.sql"),
    include_str!("../../migrations/0009_floor.sql"),
    include_str!("../../migrations/0010_printers.sql"),
    include_str!("../../migrations/0011_log_is_the_outbox.sql"),
    include_str!("../../migrations/0012_orders_by_arrival.sql"),
    include_str!("../../migrations/0013_created_records.sql"),
    include_str!("../../migrations/0014_early_statuses.sql"),
];

/// The page size of a new store: SQLite's smallest, 512 B, rather than its 4 KiB. A commit
/// writes each page it touched whole to the WAL, and most commits touch a handful of pages for
/// a few hundred bytes of change; 512 B pages write 13 % less per order than 1 KiB ones, for a
/// report read within the noise to ~15 % slower (docs/benchmarks.md, "storage writes").
pub const PAGE_SIZE: i64 = 512;

/// WAL bytes after which the writer checkpoints itself (in pages of the store's own size: a
/// store made before keeps its 1 or 4 KiB pages); normally the housekeeping checkpoint comes
/// first.
pub const CHECKPOINT_BACKSTOP_BYTES: i64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database schema version {found} is newer than this agent knows ({known})")]
    TooNew { found: usize, known: usize },
    /// Reference data that cannot be written in its stored form (cannot happen for data that
    /// validated; kept as an error rather than a panic).
    #[error("reference: {0}")]
    Reference(#[from] kitchen_proto::reference::ReferenceError),
    /// A read on a blocking thread panicked or was cancelled.
    #[error("the read stopped: {0}")]
    ReadStopped(String),
}

impl StoreError {
    /// SQLite could not grow the file (`SQLITE_FULL`): the disk is full. The event is not at
    /// fault; it fits once there is room again.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, Self::Sqlite(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::DiskFull)
    }
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
        // 256 KiB of page cache (the default is 2 MiB per connection): what a read goes
        // over again is in the OS's page cache anyway; four readers at 1 MiB were 3 MiB of
        // the agent's heap through a burst (issue 18), and the reports took no longer.
        connection.pragma_update(None, "cache_size", -256)?;
        Ok(Self { connection })
    }

    /// Leaves WAL checkpoints to `checkpoint` (called off the writer's thread, every few
    /// minutes), so a commit does not wait for one — unless the WAL outgrows
    /// `CHECKPOINT_BACKSTOP_BYTES` first (a burst), when the writer checkpoints it itself.
    pub fn set_checkpoint_backstop(&self) -> Result<(), StoreError> {
        let page_size: i64 = self
            .connection
            .pragma_query_value(None, "page_size", |row| row.get(0))?;
        self.connection.pragma_update(
            None,
            "wal_autocheckpoint",
            CHECKPOINT_BACKSTOP_BYTES / page_size.max(512),
        )?;
        Ok(())
    }

    /// Copies committed WAL pages into the database file without blocking the writer or
    /// readers (`PASSIVE`). Returns the WAL pages checkpointed.
    pub fn checkpoint(&self) -> Result<i64, StoreError> {
        Ok(self
            .connection
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(2))?)
    }

    /// A private in-memory store, for tests.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(connection: Connection) -> Result<Self, StoreError> {
        // Only a new, empty file takes it (an existing store keeps its page size). A commit
        // writes each page it touched whole to the WAL: small pages write less per order.
        connection.pragma_update(None, "page_size", PAGE_SIZE)?;
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
            // A store made now (a new card): its recovery is to run (docs/sync.md).
            if applied == 0 && index + 1 == MIGRATIONS.len() {
                recovery::mark_new(&tx)?;
            }
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

    /// Counts for `/metrics`: open orders, open batch sessions.
    pub fn counts(&self) -> Result<(i64, i64), StoreError> {
        Ok(self.connection.query_row(
            "SELECT (SELECT count(*) FROM orders WHERE state = 'open'),
                    (SELECT count(*) FROM batch_sessions WHERE completed_at IS NULL)",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?)
    }
}
