-- The print queue: one row per ticket to print, written in the transaction of the change that
-- causes it (a new order, an order ready, a reprint), with the exact ESC/POS bytes to send. A
-- printer task sends its printer's rows oldest first and marks one printed only once the bytes
-- were written and the printer's status read back fine; a failure sets when to try again.
CREATE TABLE IF NOT EXISTS print_jobs (
    job_id INTEGER PRIMARY KEY AUTOINCREMENT,
    printer TEXT NOT NULL,
    -- station | fallback | expo | reprint
    kind TEXT NOT NULL,
    order_id TEXT,
    station_id TEXT,
    bytes BLOB NOT NULL,
    created_at_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try_ms INTEGER NOT NULL,
    last_error TEXT,
    printed_at_ms INTEGER
);

-- The printer tasks' question: this printer's oldest job not yet printed.
CREATE INDEX IF NOT EXISTS print_jobs_waiting ON print_jobs (printer, job_id)
    WHERE printed_at_ms IS NULL;
