-- The kitchen floor (docs/floor.md): the reference data's display settings in the cache, the
-- cooks' allergen acknowledgements and rush orders.

-- A station's own display settings (TOML: amber_minutes, red_minutes, keys), '' for none.
ALTER TABLE ref_stations ADD COLUMN display TEXT NOT NULL DEFAULT '';
-- The reference's `[floor]` table (TOML), '' for none.
ALTER TABLE ref_source ADD COLUMN floor TEXT NOT NULL DEFAULT '';

-- A cook acknowledged an order's allergen warning at a station: only then may it be bumped
-- there. Kept while the order is; a new snapshot of the order asks again (the lines changed).
CREATE TABLE allergen_acks (
    order_id         TEXT NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
    station_id       TEXT NOT NULL,
    acknowledged_at  INTEGER NOT NULL,
    device           TEXT NOT NULL,
    PRIMARY KEY (order_id, station_id)
) WITHOUT ROWID;

-- Expo or a manager marked the order rush: it goes to the front on every screen.
ALTER TABLE orders ADD COLUMN rush_at INTEGER;
ALTER TABLE orders ADD COLUMN rush_by TEXT;

-- A cook tapped an order's line off at a station: the units of each item that line makes there
-- are done (they leave the station's counts as a batch's would). Replaced lines (a new snapshot)
-- take their taps with them.
CREATE TABLE line_done (
    order_id    TEXT NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
    line_no     INTEGER NOT NULL,
    station_id  TEXT NOT NULL,
    item_id     TEXT NOT NULL,
    units       INTEGER NOT NULL,
    done_at     INTEGER NOT NULL,
    device      TEXT NOT NULL,
    PRIMARY KEY (order_id, line_no, station_id, item_id)
) WITHOUT ROWID;
