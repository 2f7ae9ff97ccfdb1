-- A new card (docs/sync.md, "A new card"): the record id under which PostgreSQL already holds
-- each order's `order.created` from this kitchen's earlier card, as the recovery read them.
-- An order this card creates (recovered, or from an event the queue still held) is logged under
-- that id, so its push changes nothing: one `order.created` per order and kitchen, whichever
-- card made it. Empty on a box that never recovered.
CREATE TABLE created_records (
    order_id   TEXT PRIMARY KEY,
    record_id  TEXT NOT NULL
) WITHOUT ROWID;
