-- Issue 18 (a Pi's budget): the sync reads the records head office receives from the event log,
-- past a cursor, instead of from a copy of each in `outbox`. Every record already lands in the
-- event log in the transaction of its change; copying it to `outbox` and deleting it after the
-- push wrote the outbox's pages and its unique `record_id` index twice per record, and the
-- delete was a commit of its own. The event log also loses AUTOINCREMENT: the `sqlite_sequence`
-- row it rewrote in every commit. Both need a table rebuild (neither can be dropped in place).

-- The event log, rebuilt: `seq` is handed out by `append_log` (one past `max(seq)` and the
-- trim mark, so it never goes back after pruning); `record_id` is the stable id a synced
-- record is pushed under (UUIDv7, made on the box), NULL for what only the displays need.
CREATE TABLE event_log_new (
    seq         INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,
    order_id    TEXT,
    data        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    stations    TEXT,
    record_id   TEXT
);
INSERT INTO event_log_new (seq, kind, order_id, data, created_at, stations)
    SELECT seq, kind, order_id, data, created_at, stations FROM event_log;

-- `event_log_trimmed`: the log is whole for the displays only after this seq (pruning keeps
-- older records until they are synced; the displays never see those). Until now pruning left
-- the log whole above its oldest row, and an emptied log kept its high-water mark in
-- sqlite_sequence.
-- `event_log_pushed`: every synced record up to this seq is in PostgreSQL. Those logged so far
-- are, or wait in `outbox`, which the sync drains first.
INSERT INTO sync_cursors (name, value) VALUES
    ('event_log_trimmed',
     coalesce((SELECT min(seq) - 1 FROM event_log),
              (SELECT seq FROM sqlite_sequence WHERE name = 'event_log'), 0)),
    ('event_log_pushed',
     coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'event_log'), 0))
ON CONFLICT (name) DO UPDATE SET value = excluded.value;

DROP TABLE event_log;
ALTER TABLE event_log_new RENAME TO event_log;

-- `outbox` stays only for what an older agent left in it: the sync pushes it first and deletes
-- it after the push, as before; nothing is added to it any more.
