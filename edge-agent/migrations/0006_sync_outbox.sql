-- Records head office should see (issue 5): every order state change, bump, recall, readiness,
-- batch session, scan and stock movement, written in the transaction of the change itself with
-- a stable id made on the edge (UUIDv7). The sync task pushes them to PostgreSQL in `seq` order
-- and deletes them only after the PostgreSQL commit. Never pruned otherwise: the backlog is
-- bounded by the disk, not silently dropped.
CREATE TABLE outbox (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id   TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL,
    data        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
