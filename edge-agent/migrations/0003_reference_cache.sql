-- The reference data in use (from REFERENCE_FILE; later pulled from PostgreSQL), kept so the
-- kitchen starts with it when the source is missing or refused. Replaced as a whole, in one
-- transaction, whenever a valid source is loaded.
CREATE TABLE ref_stations (
    id        TEXT PRIMARY KEY,
    name      TEXT NOT NULL,
    position  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE ref_stores (
    store_id  TEXT PRIMARY KEY,
    brand     TEXT NOT NULL,
    position  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE ref_items (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    station_id    TEXT NOT NULL REFERENCES ref_stations (id),
    prep_seconds  INTEGER NOT NULL,
    position      INTEGER NOT NULL
) WITHOUT ROWID;

-- The Otter ids, SKUs and names that mean an item, in the source's order.
CREATE TABLE ref_matches (
    item_id   TEXT NOT NULL REFERENCES ref_items (id) ON DELETE CASCADE,
    position  INTEGER NOT NULL,
    key       TEXT NOT NULL,
    PRIMARY KEY (item_id, position)
) WITHOUT ROWID;

-- Where the cached copy came from and when.
CREATE TABLE ref_source (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    source     TEXT NOT NULL,
    loaded_at  INTEGER NOT NULL
);
