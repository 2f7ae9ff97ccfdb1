-- A replacement kitchen box (a new SD card for the same kitchen) rebuilds the kitchen mid-service
-- from what PostgreSQL holds (docs/sync.md, "A new card"): per store, the orders still open and
-- the store's current sequence number. The box's own records (bumps, accepts, batch sessions,
-- ...) it reads from its kitchen's rows, which row-level security already lets it read.

-- The caller check missed_events makes, shared: the caller (the role set with SET ROLE, else
-- the role that logged in) must be the box of the transaction's tenant, and the store one that
-- tenant serves (kitchen.ref_stores); anything else raises insufficient_privilege.
CREATE FUNCTION kitchen.check_store_caller(p_store_id text) RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    caller   text := coalesce(nullif(current_setting('role'), 'none'), session_user);
    tenant   text := current_setting('kitchen.id', true);
BEGIN
    IF NOT EXISTS (
        SELECT
        FROM kitchen.agent_roles r
        JOIN kitchen.ref_stores s ON s.kitchen_id = r.kitchen_id
        WHERE r.role_name = caller
          AND r.kitchen_id = tenant
          AND s.store_id = p_store_id
    ) THEN
        RAISE EXCEPTION 'store % is not served by kitchen %', p_store_id, coalesce(tenant, '(none set)')
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'set the tenant with set_config(''kitchen.id'', <kitchen>, true) as that kitchen''s role';
    END IF;
END
$$;

-- The store's highest kitchen-bound sequence number so far (0: none yet): the baseline a new
-- box sets, so history is not taken for a gap.
CREATE FUNCTION kitchen.store_sequence(p_store_id text) RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM kitchen.check_store_caller(p_store_id);
    RETURN coalesce((SELECT s.last_sequence FROM otter.store_sequences s
                     WHERE s.store_id = p_store_id), 0);
END
$$;

-- The store's orders received in the last p_hours (1..48; otter.orders.created_at) whose status
-- is not final for a kitchen (not CANCELED / REJECTED, not PREPARED / PICKED_UP / FULFILLED:
-- the agent's `state_of`), each as the kitchen-bound events that rebuild it: the event whose
-- snapshot the relay holds (otter.orders.snapshot_event_id) and, when a later event moved the
-- status without a snapshot, that latest event too (it carries the order's status as the
-- relay decided it). Payloads are the published protobuf with `sequence` set, as in
-- missed_events. In sequence order.
CREATE FUNCTION kitchen.open_order_events(p_store_id text, p_hours integer)
RETURNS TABLE (sequence bigint, event_id text, order_id text, payload bytea)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM kitchen.check_store_caller(p_store_id);
    RETURN QUERY
        WITH open_orders AS (
            SELECT o.order_id, o.snapshot_event_id
            FROM otter.orders o
            WHERE o.store_id = p_store_id
              AND o.created_at >= now() - make_interval(hours => least(greatest(p_hours, 1), 48))
              AND o.status NOT IN ('CANCELED', 'REJECTED', 'PREPARED', 'PICKED_UP', 'FULFILLED')
        ), wanted AS (
            SELECT oo.order_id, oo.snapshot_event_id AS event_id
            FROM open_orders oo
            UNION
            SELECT oo.order_id, latest.event_id
            FROM open_orders oo
            CROSS JOIN LATERAL (
                SELECT w.event_id
                FROM otter.webhook_events w
                JOIN otter.outbox x ON x.event_id = w.event_id
                WHERE w.order_id = oo.order_id
                  AND x.store_id = p_store_id
                  AND x.payload IS NOT NULL
                ORDER BY x.sequence DESC
                LIMIT 1
            ) latest
        )
        SELECT x.sequence, x.event_id, wanted.order_id,
               x.payload || kitchen.order_event_sequence_field(x.sequence)
        FROM wanted
        JOIN otter.outbox x ON x.event_id = wanted.event_id
        WHERE x.payload IS NOT NULL
        ORDER BY x.sequence;
END
$$;

REVOKE ALL ON FUNCTION kitchen.check_store_caller(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION kitchen.store_sequence(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION kitchen.open_order_events(text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kitchen.store_sequence(text) TO kitchen_agent;
GRANT EXECUTE ON FUNCTION kitchen.open_order_events(text, integer) TO kitchen_agent;
