-- Batch sessions, readiness and per-station event routing.

-- When every unit of the order was done at every station (bumps and completed batches);
-- cleared by a recall.
ALTER TABLE orders ADD COLUMN ready_at INTEGER;

-- A batch a cook started on a batch item (drop N) and later completed; completing marks N
-- outstanding units of the item at the station done, most urgent orders first. Ids are
-- UUIDv7 made on the edge, stable for the sync to PostgreSQL.
CREATE TABLE batch_sessions (
    session_id    TEXT PRIMARY KEY,
    station_id    TEXT NOT NULL,
    item_id       TEXT NOT NULL,
    item_name     TEXT NOT NULL,
    quantity      INTEGER NOT NULL CHECK (quantity > 0),
    device        TEXT NOT NULL DEFAULT '',
    started_at    INTEGER NOT NULL,
    completed_at  INTEGER,
    -- JSON [{"order_id": ..., "units": ...}] once completed.
    allocations   TEXT
) WITHOUT ROWID;
CREATE INDEX batch_sessions_open_idx ON batch_sessions (station_id, item_id)
    WHERE completed_at IS NULL;

-- Stations an event concerns, as ",grill,fry," (NULL: every station); the SSE
-- `?station=` filter reads it.
ALTER TABLE event_log ADD COLUMN stations TEXT;
