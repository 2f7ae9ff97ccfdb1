-- What the kitchen tells Otter (docs/otter.md): how each store accepts orders and the Otter menu
-- entities of each item (reference cache), each order's accepted prep time and hand-off, the
-- state of the calls the relay made for this kitchen (read back from PostgreSQL), items 86'd,
-- and the staff PINs that may 86.

ALTER TABLE ref_stores ADD COLUMN accept TEXT NOT NULL DEFAULT 'auto';

CREATE TABLE ref_otter_entities (
    item_id    TEXT NOT NULL REFERENCES ref_items (id) ON DELETE CASCADE,
    store_id   TEXT NOT NULL,
    position   INTEGER NOT NULL,
    entity_id  TEXT NOT NULL,
    PRIMARY KEY (item_id, store_id, position)
) WITHOUT ROWID;

-- The prep time the kitchen gave Otter (minutes) and when; NULL: not accepted (yet).
ALTER TABLE orders ADD COLUMN prep_minutes INTEGER;
ALTER TABLE orders ADD COLUMN accepted_at INTEGER;

-- The relay's calls to Otter for this kitchen's orders and items, as last read from PostgreSQL
-- (`kitchen.otter_calls`): one row per call.
CREATE TABLE otter_calls (
    record_id   TEXT NOT NULL,
    store_id    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    order_id    TEXT,
    item_id     TEXT,
    state       TEXT NOT NULL,
    detail      TEXT NOT NULL,
    change_id   INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (record_id, store_id, kind)
) WITHOUT ROWID;
CREATE INDEX otter_calls_order_idx ON otter_calls (order_id) WHERE order_id IS NOT NULL;

-- Items 86'd: until `until_ms` (NULL: until someone says they are back), or until lifted.
CREATE TABLE suspensions (
    suspension_id  TEXT PRIMARY KEY,
    item_id        TEXT NOT NULL,
    until_ms       INTEGER,
    note           TEXT NOT NULL,
    device         TEXT NOT NULL,
    staff          TEXT,
    created_at     INTEGER NOT NULL,
    lifted_at      INTEGER,
    lifted_by      TEXT
) WITHOUT ROWID;
CREATE INDEX suspensions_active_idx ON suspensions (item_id) WHERE lifted_at IS NULL;

-- Staff who may 86 with a PIN (stored as its SHA-256). No row: the kitchen uses no PINs.
CREATE TABLE staff (
    name        TEXT PRIMARY KEY,
    pin_hash    TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- Positions the sync keeps in PostgreSQL's streams (`otter_calls`: the last change_id read).
CREATE TABLE sync_cursors (
    name   TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
) WITHOUT ROWID;
