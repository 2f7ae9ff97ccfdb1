//! The print queue (`print_jobs`): jobs enqueued in the caller's transaction, the printer
//! tasks' reads, and the outcome of each attempt.

use rusqlite::{OptionalExtension, Transaction, params};

use super::{Store, StoreError};

/// Printed jobs are kept this long (for `/api/status` counts and reprints' history), then
/// trimmed with the event log.
pub const PRINTED_KEEP_MS: i64 = 7 * 24 * 3600 * 1000;
/// A job still unprinted after this long (its printer gone from the config, or dead all day)
/// is dropped: a kitchen ticket a day late helps nobody.
pub const UNPRINTED_KEEP_MS: i64 = 24 * 3600 * 1000;

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPrintJob<'a> {
    pub printer: &'a str,
    pub kind: &'a str,
    pub order_id: Option<&'a str>,
    pub station_id: Option<&'a str>,
    pub bytes: Vec<u8>,
}

/// A job waiting for its printer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrintJob {
    pub job_id: i64,
    pub kind: String,
    pub order_id: Option<String>,
    pub bytes: Vec<u8>,
    pub attempts: u32,
    pub next_try_ms: i64,
}

/// Adds a job in the caller's transaction; it is due at once.
pub fn insert_print_job(
    tx: &Transaction<'_>,
    job: &NewPrintJob<'_>,
    now_ms: i64,
) -> Result<i64, StoreError> {
    tx.execute(
        "INSERT INTO print_jobs (printer, kind, order_id, station_id, bytes, created_at_ms, next_try_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        params![
            job.printer,
            job.kind,
            job.order_id,
            job.station_id,
            job.bytes,
            now_ms
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

impl Store {
    /// `printer`'s oldest job not yet printed (due or not: jobs print in order), and how many
    /// wait.
    pub fn next_print_job(&self, printer: &str) -> Result<(Option<PrintJob>, i64), StoreError> {
        let job = self
            .connection
            .prepare_cached(
                "SELECT job_id, kind, order_id, bytes, attempts, next_try_ms FROM print_jobs
                 WHERE printer = ?1 AND printed_at_ms IS NULL ORDER BY job_id LIMIT 1",
            )?
            .query_row([printer], |row| {
                Ok(PrintJob {
                    job_id: row.get(0)?,
                    kind: row.get(1)?,
                    order_id: row.get(2)?,
                    bytes: row.get(3)?,
                    attempts: row.get(4)?,
                    next_try_ms: row.get(5)?,
                })
            })
            .optional()?;
        let waiting = self.connection.query_row(
            "SELECT count(*) FROM print_jobs WHERE printer = ?1 AND printed_at_ms IS NULL",
            [printer],
            |row| row.get(0),
        )?;
        Ok((job, waiting))
    }

    /// Fallback tickets printed for `station` since `since_ms`.
    pub fn fallback_jobs_since(&self, station: &str, since_ms: i64) -> Result<i64, StoreError> {
        Ok(self.connection.query_row(
            "SELECT count(*) FROM print_jobs
             WHERE kind = 'fallback' AND station_id = ?1 AND created_at_ms >= ?2",
            params![station, since_ms],
            |row| row.get(0),
        )?)
    }

    /// Marks a job printed; false when it was already (or does not exist).
    pub fn mark_printed(&mut self, job_id: i64, now_ms: i64) -> Result<bool, StoreError> {
        Ok(self.connection.execute(
            "UPDATE print_jobs SET printed_at_ms = ?2, attempts = attempts + 1, last_error = NULL
             WHERE job_id = ?1 AND printed_at_ms IS NULL",
            params![job_id, now_ms],
        )? == 1)
    }

    /// Records a failed attempt and when to try again.
    pub fn mark_print_failed(
        &mut self,
        job_id: i64,
        error: &str,
        next_try_ms: i64,
    ) -> Result<(), StoreError> {
        self.connection.execute(
            "UPDATE print_jobs SET attempts = attempts + 1, last_error = ?2, next_try_ms = ?3
             WHERE job_id = ?1 AND printed_at_ms IS NULL",
            params![job_id, error, next_try_ms],
        )?;
        Ok(())
    }

    /// Deletes jobs printed more than `PRINTED_KEEP_MS` ago and jobs left unprinted for
    /// `UNPRINTED_KEEP_MS`.
    pub fn prune_printed(&mut self, now_ms: i64) -> Result<usize, StoreError> {
        Ok(self.connection.execute(
            "DELETE FROM print_jobs
             WHERE (printed_at_ms IS NOT NULL AND printed_at_ms < ?1)
                OR (printed_at_ms IS NULL AND created_at_ms < ?2)",
            params![now_ms - PRINTED_KEEP_MS, now_ms - UNPRINTED_KEEP_MS],
        )?)
    }
}
