-- The agent's local store. Applied once, in order, tracked by PRAGMA user_version.

-- Every event applied, by Otter event id: the de-duplication record, written in the same
-- transaction as the event's effect (and before the AMQP ack).
CREATE TABLE processed_events (
    event_id    TEXT PRIMARY KEY,
    store_id    TEXT NOT NULL,
    sequence    INTEGER,
    applied_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- Highest relay sequence number applied per store.
CREATE TABLE store_sequences (
    store_id       TEXT PRIMARY KEY,
    last_sequence  INTEGER NOT NULL
) WITHOUT ROWID;

-- Sequence numbers skipped (inclusive ranges), until they arrive or are reconciled.
CREATE TABLE sequence_gaps (
    store_id       TEXT NOT NULL,
    from_sequence  INTEGER NOT NULL,
    to_sequence    INTEGER NOT NULL,
    detected_at    INTEGER NOT NULL,
    PRIMARY KEY (store_id, from_sequence)
) WITHOUT ROWID;

CREATE TABLE orders (
    order_id                TEXT PRIMARY KEY,
    store_id                TEXT NOT NULL,
    source                  TEXT NOT NULL,
    friendly_id             TEXT NOT NULL,
    -- open | closed | cancelled (cancelled is final)
    state                   TEXT NOT NULL CHECK (state IN ('open', 'closed', 'cancelled')),
    status                  TEXT NOT NULL,
    snapshot_event_time     INTEGER,
    received_at             INTEGER NOT NULL,
    ordered_at              INTEGER,
    pickup_time             INTEGER,
    estimated_pickup_time   INTEGER,
    estimated_prep_seconds  INTEGER,
    scheduled               INTEGER NOT NULL DEFAULT 0,
    customer_name           TEXT NOT NULL DEFAULT '',
    customer_note           TEXT NOT NULL DEFAULT '',
    cancellation_reason     TEXT NOT NULL DEFAULT '',
    updated_at              INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX orders_open_idx ON orders (state) WHERE state = 'open';

-- Lines and modifiers of the latest snapshot, flattened in pre-order with parent links.
CREATE TABLE order_lines (
    order_id    TEXT NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
    line_no     INTEGER NOT NULL,
    parent_no   INTEGER,
    depth       INTEGER NOT NULL,
    item_id     TEXT NOT NULL,
    sku_id      TEXT NOT NULL,
    name        TEXT NOT NULL,
    quantity    INTEGER NOT NULL,
    note        TEXT NOT NULL,
    price       TEXT NOT NULL,
    PRIMARY KEY (order_id, line_no)
) WITHOUT ROWID;

-- An order bumped at a station (by tap or scan).
CREATE TABLE order_bumps (
    order_id    TEXT NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
    station_id  TEXT NOT NULL,
    bumped_at   INTEGER NOT NULL,
    PRIMARY KEY (order_id, station_id)
) WITHOUT ROWID;

-- Units of an item completed for an order by batch sessions.
CREATE TABLE order_done (
    order_id    TEXT NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
    station_id  TEXT NOT NULL,
    item_id     TEXT NOT NULL,
    units       INTEGER NOT NULL,
    PRIMARY KEY (order_id, station_id, item_id)
) WITHOUT ROWID;

-- Append-only log of what changed; its seq is the SSE event id.
CREATE TABLE event_log (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL,
    order_id    TEXT,
    data        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
