-- Every scan, accepted or not, recorded in the same transaction as its effect (kept for the
-- sync to head office). Ids are UUIDv7 made on the edge.
CREATE TABLE scans (
    scan_id     TEXT PRIMARY KEY,
    device      TEXT NOT NULL,
    raw         BLOB NOT NULL,
    -- JSON of what the scan was understood as; NULL when it could not be read.
    parsed      TEXT,
    -- What it did: 'bump', or 'none' when rejected.
    action      TEXT NOT NULL,
    result      TEXT NOT NULL CHECK (result IN ('accepted', 'rejected')),
    reason      TEXT NOT NULL DEFAULT '',
    order_id    TEXT,
    station_id  TEXT,
    scanned_at  INTEGER NOT NULL
) WITHOUT ROWID;
