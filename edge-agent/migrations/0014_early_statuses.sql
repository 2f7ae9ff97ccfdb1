-- A status event (a cancellation, a fulfilment, ...) can reach the box before its order's
-- first snapshot: the broker redelivers a message returned to the queue (a write refused by a
-- full disk, a channel cut) after messages behind it. Until now such a status was logged and
-- forgotten, so the snapshot that came next — stamped with the status the relay held when it
-- was made — left a cancelled or fulfilled order open on the screens (found by the chaos
-- suite, docs/reliability.md). The newest early status of an order waits here; the order's
-- first snapshot takes it if it is newer (a cancellation always), and the row goes; one whose
-- order never comes is pruned with the processed event ids (30 days).
CREATE TABLE early_statuses (
    order_id            TEXT PRIMARY KEY,
    status              TEXT NOT NULL,
    event_time          INTEGER NOT NULL,
    cancellation_reason TEXT NOT NULL DEFAULT '',
    received_at         INTEGER NOT NULL
) WITHOUT ROWID;
