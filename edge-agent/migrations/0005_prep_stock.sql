-- Prep inventory (issue 4): PAR levels in the reference cache, the stock on hand, and the
-- transfer units received.

-- Per-item prep settings and day parts, cached with the rest of the reference data.
ALTER TABLE ref_items ADD COLUMN par INTEGER;
ALTER TABLE ref_items ADD COLUMN unit TEXT;
ALTER TABLE ref_items ADD COLUMN shelf_life_days INTEGER;

CREATE TABLE ref_day_parts (
    id          TEXT PRIMARY KEY,
    start_time  TEXT NOT NULL,
    end_time    TEXT NOT NULL,
    position    INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE ref_pars (
    item_id   TEXT NOT NULL REFERENCES ref_items (id) ON DELETE CASCADE,
    day_part  TEXT NOT NULL,
    quantity  INTEGER NOT NULL,
    PRIMARY KEY (item_id, day_part)
) WITHOUT ROWID;

-- Stock: one row per labelled container, received product unit or transfer unit. Open while
-- `closed_at` is NULL; closed as used (scanned at a station) or discarded. Ids are UUIDv7 made
-- on the edge (kept for the sync to head office).
CREATE TABLE stock (
    stock_id     TEXT PRIMARY KEY,
    item_id      TEXT NOT NULL,
    source       TEXT NOT NULL CHECK (source IN ('prep', 'product', 'transfer')),
    -- What makes a second scan of the same container a repeat (prep label: item + batch;
    -- GS1 with a serial: GTIN + serial; transfer: SSCC). NULL: each scan is new stock.
    label        TEXT UNIQUE,
    quantity     INTEGER NOT NULL CHECK (quantity > 0),
    lot          TEXT,
    prepared_on  TEXT,
    -- YYYY-MM-DD, the last day it may be used; NULL: keeps.
    use_by       TEXT,
    added_at     INTEGER NOT NULL,
    added_by     TEXT NOT NULL,
    scan_id      TEXT,
    closed_at    INTEGER,
    closed_as    TEXT CHECK (closed_as IN ('used', 'discarded')),
    closed_by    TEXT
) WITHOUT ROWID;

CREATE INDEX stock_open ON stock (item_id) WHERE closed_at IS NULL;

-- Transfer units (SSCC) received at the back door.
CREATE TABLE transfers (
    sscc         TEXT PRIMARY KEY,
    scan_id      TEXT NOT NULL,
    device       TEXT NOT NULL,
    received_at  INTEGER NOT NULL,
    gtin         TEXT,
    item_id      TEXT,
    count        INTEGER,
    lot          TEXT,
    use_by       TEXT,
    stock_id     TEXT
) WITHOUT ROWID;

-- What a scan was for, and the stock it moved.
ALTER TABLE scans ADD COLUMN role TEXT NOT NULL DEFAULT 'station';
ALTER TABLE scans ADD COLUMN stock_id TEXT;
