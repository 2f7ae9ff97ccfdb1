-- The kitchen answers Otter (issue 15): a store's accept mode and each item's Otter menu entity
-- ids in the reference data; the box's 86 records; the Otter call outbox `otter.callbacks`, filled
-- by triggers on what the boxes push (same transaction) and drained by the relay's dispatcher;
-- the per-(store, endpoint) rate budgets every relay shares; the unconfirmed-order alarms; and
-- `kitchen.otter_calls`, the calls' state read back by the boxes. See docs/otter.md.

-- ---------------------------------------------------------------------------------------------
-- Reference data: accept mode per store, Otter menu entity ids per item and store.

ALTER TABLE kitchen.ref_stores
    ADD COLUMN accept text NOT NULL DEFAULT 'auto' CHECK (accept IN ('auto', 'manual'));

CREATE TABLE kitchen.ref_otter_entities (
    kitchen_id  text NOT NULL,
    item_id     text NOT NULL,
    store_id    text NOT NULL,
    entity_id   text NOT NULL,
    position    integer NOT NULL,
    PRIMARY KEY (kitchen_id, item_id, store_id, position),
    FOREIGN KEY (kitchen_id, item_id) REFERENCES kitchen.ref_items (kitchen_id, id) ON DELETE CASCADE
);

-- ---------------------------------------------------------------------------------------------
-- 86: what the boxes push when a cook suspends or un-suspends an item (`item.suspended`,
-- `item.unsuspended`; not a CHECK, as for order_events). Inserted ON CONFLICT (record_id) DO
-- NOTHING.

CREATE TABLE kitchen.item_availability (
    record_id    uuid PRIMARY KEY,
    kitchen_id   text NOT NULL REFERENCES kitchen.kitchens,
    item_id      text NOT NULL,
    kind         text NOT NULL,
    data         jsonb NOT NULL,
    occurred_at  timestamptz NOT NULL,
    synced_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX item_availability_kitchen_time_idx ON kitchen.item_availability (kitchen_id, occurred_at);

-- ---------------------------------------------------------------------------------------------
-- The Otter call outbox: one row per intended call.

-- Every change of a call takes the next number: what a box reads after (`kitchen.otter_calls`).
CREATE SEQUENCE otter.callback_changes;

CREATE TABLE otter.callbacks (
    id               bigserial PRIMARY KEY,
    kitchen_id       text NOT NULL,
    -- '' only on a refused intent whose order the relay does not know
    store_id         text NOT NULL,
    order_id         text,
    item_id          text,
    kind             text NOT NULL CHECK (kind IN ('confirm', 'ready', 'fulfill', 'cancel',
                                                    'prep_time', 'suspend', 'unsuspend')),
    -- the box's record this call comes from
    record_id        uuid NOT NULL,
    -- one row (and so one call) per key: order:<id>:<kind> for confirm/ready/fulfill/cancel,
    -- record:<uuid> for prep_time, record:<uuid>:<store> for 86, refused:<uuid>:<kind> for an
    -- intent refused on arrival
    dedupe_key       text NOT NULL UNIQUE,
    -- calls of one lane go out in id order (order:<id>, item:<store>:<item>)
    lane             text NOT NULL,
    method           text NOT NULL DEFAULT 'POST',
    -- the path actually called (templates are the relay's config; set when first sent)
    path             text,
    body             jsonb,
    state            text NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'sent', 'accepted', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    -- while a relay holds the call (its HTTP request in flight); past it, the call is recovered
    lease_until      timestamptz,
    status_code      integer,
    -- Otter's answer body, truncated
    answer           text,
    -- why it failed or is being retried (for operators)
    reason           text,
    -- a short text for a cook
    detail           text NOT NULL DEFAULT 'waiting to be sent',
    -- suspend/unsuspend: Otter's asynchronous menu job, followed until SUCCESS or FAILED
    job_id           text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    change_id        bigint NOT NULL
);
CREATE INDEX callbacks_open_idx ON otter.callbacks (id) WHERE state IN ('pending', 'sent');
CREATE INDEX callbacks_lane_idx ON otter.callbacks (lane, id);
CREATE INDEX callbacks_order_idx ON otter.callbacks (order_id, kind) WHERE order_id IS NOT NULL;
CREATE INDEX callbacks_change_idx ON otter.callbacks (change_id);
CREATE INDEX callbacks_unstamped_idx ON otter.callbacks (id) WHERE change_id = 0;
CREATE INDEX callbacks_store_change_idx ON otter.callbacks (store_id, change_id);

-- Every update takes the next change number under one transaction-level advisory lock, held to
-- commit: change numbers are handed out in commit order, so a box reading "after N" never skips
-- a change committed later with a smaller number. A new row gets 0 (not yet readable): it is
-- inserted in a box's sync transaction, which must not hold that lock (a box stalled mid-push
-- would stall every call); the relay stamps it (`UPDATE ... WHERE change_id = 0`) in a short
-- transaction of its own right after (dispatch.rs), or the dispatcher's claim does.
CREATE FUNCTION otter.callback_changed() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    NEW.updated_at := now();
    IF TG_OP = 'INSERT' THEN
        NEW.change_id := 0;
        RETURN NEW;
    END IF;
    PERFORM pg_advisory_xact_lock(7310295632145268033);
    NEW.change_id := nextval('otter.callback_changes');
    RETURN NEW;
END
$$;
CREATE TRIGGER callbacks_change BEFORE INSERT OR UPDATE ON otter.callbacks
    FOR EACH ROW EXECUTE FUNCTION otter.callback_changed();

-- An intent refused on arrival: a failed row the box and operators see, keyed by its record so
-- it never takes the place of a valid intent's row.
CREATE FUNCTION otter.refuse_intent(p_kitchen_id text, p_store_id text, p_order_id text,
                                    p_item_id text, p_kind text, p_record_id uuid, p_reason text)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO otter.callbacks (kitchen_id, store_id, order_id, item_id, kind, record_id,
                                 dedupe_key, lane, state, reason, detail)
    VALUES (p_kitchen_id, coalesce(p_store_id, ''), p_order_id, p_item_id, p_kind, p_record_id,
            'refused:' || p_record_id || ':' || p_kind || ':' || coalesce(p_store_id, ''),
            'refused:' || p_record_id, 'failed', p_reason, 'not sent: ' || p_reason)
    ON CONFLICT (dedupe_key) DO NOTHING
$$;

-- Otter's cancellationReason values (otter-api.md §2a).
CREATE FUNCTION otter.is_cancellation_reason(p_reason text) RETURNS boolean
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p_reason = ANY (ARRAY['REASON_UNKNOWN', 'DUPLICATE_ORDER', 'UNAVAILABLE_ITEM',
        'FRAUDULENT_EATER', 'RESTAURANT_INTERNAL_ISSUE', 'KITCHEN_CLOSED',
        'CUSTOMER_CALLED_TO_CANCEL', 'RESTAURANT_TOO_BUSY', 'CANNOT_COMPLETE_CUSTOMER_REQUEST',
        'UNACCEPTED_ORDER', 'RESTAURANT_CANCELED', 'AUTOMATICALLY_CANCELED', 'LATE_DELIVERY',
        'COURIER_NOT_FOUND', 'CUSTOMER_NOT_FOUND', 'UNABLE_TO_DELIVER', 'ALL_ITEMS_OUT_OF_STOCK',
        'ALL_ITEMS_EXPIRED', 'ALL_ITEMS_DAMAGED', 'LABOR_UNAVAILABLE', 'REASON_OTHER'])
$$;

-- A whole number of minutes in 0..1440 from a record's data, or NULL.
CREATE FUNCTION otter.minutes(p_value jsonb) RETURNS integer
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN jsonb_typeof(p_value) = 'number' AND p_value::text ~ '^[0-9]{1,4}$'
                     AND p_value::text::integer <= 1440
                THEN p_value::text::integer END
$$;

-- An order intent pushed by a box → its Otter call. Runs in the box's sync transaction, as the
-- owner (the box's role has no right on otter.*). Never raises: whatever is wrong with a record
-- becomes a refused (failed) row, so a box's outbox can never jam on it. The order's store is
-- the relay's own (otter.orders), never the box's word, and must be one the kitchen serves.
CREATE FUNCTION otter.order_intent() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    call_kind  text := CASE NEW.kind
                           WHEN 'order.accepted' THEN 'confirm'
                           WHEN 'order.ready' THEN 'ready'
                           WHEN 'order.handed_off' THEN 'fulfill'
                           WHEN 'order.cancel_requested' THEN 'cancel'
                           WHEN 'order.prep_time' THEN 'prep_time'
                       END;
    store      text;
    body       jsonb;
    minutes    integer;
    refusal    text;
BEGIN
    IF call_kind IS NULL THEN
        RETURN NULL;
    END IF;
    BEGIN
        SELECT o.store_id INTO store FROM otter.orders o WHERE o.order_id = NEW.order_id;
        IF NOT FOUND THEN
            refusal := format('order %s is unknown to the relay', NEW.order_id);
        ELSIF NOT EXISTS (SELECT FROM kitchen.ref_stores s
                          WHERE s.kitchen_id = NEW.kitchen_id AND s.store_id = store) THEN
            refusal := format('kitchen %s does not serve store %s', NEW.kitchen_id, store);
        ELSIF call_kind IN ('confirm', 'prep_time') THEN
            minutes := otter.minutes(NEW.data -> 'prep_minutes');
            IF minutes IS NULL THEN
                refusal := format('prep_minutes %s is not a whole number of minutes (0 to 1440)',
                                  coalesce((NEW.data -> 'prep_minutes')::text, 'missing'));
            ELSIF call_kind = 'confirm' THEN
                body := jsonb_build_object('estimatedPrepTimeMinutes', minutes);
            ELSE
                body := jsonb_build_object('prepTimeMinutes', minutes);
            END IF;
        ELSIF call_kind = 'cancel' THEN
            IF NOT coalesce(otter.is_cancellation_reason(NEW.data ->> 'reason'), false) THEN
                refusal := format('%s is not one of Otter''s cancellation reasons',
                                  coalesce(NEW.data ->> 'reason', 'no reason'));
            ELSE
                body := jsonb_build_object('cancellationReason', NEW.data ->> 'reason');
            END IF;
        END IF;
        IF refusal IS NOT NULL THEN
            PERFORM otter.refuse_intent(NEW.kitchen_id, store, NEW.order_id, NULL, call_kind,
                                        NEW.record_id, refusal);
        ELSE
            INSERT INTO otter.callbacks (kitchen_id, store_id, order_id, kind, record_id,
                                         dedupe_key, lane, body)
            VALUES (NEW.kitchen_id, store, NEW.order_id, call_kind, NEW.record_id,
                    CASE WHEN call_kind = 'prep_time' THEN 'record:' || NEW.record_id
                         ELSE 'order:' || NEW.order_id || ':' || call_kind END,
                    'order:' || NEW.order_id, body)
            ON CONFLICT (dedupe_key) DO NOTHING;
        END IF;
        PERFORM pg_notify('otter_calls', '');
    EXCEPTION WHEN OTHERS THEN
        PERFORM otter.refuse_intent(NEW.kitchen_id, store, NEW.order_id, NULL, call_kind,
                                    NEW.record_id, 'unreadable record: ' || SQLERRM);
    END;
    RETURN NULL;
END
$$;
CREATE TRIGGER order_events_otter_calls AFTER INSERT ON kitchen.order_events
    FOR EACH ROW EXECUTE FUNCTION otter.order_intent();

-- An 86 record → one suspend/unsuspend call per store entry with entity ids (an empty list
-- makes no call). Same rules as order intents: never raises; the store must be the kitchen's.
CREATE FUNCTION otter.availability_intent() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    call_kind  text := CASE NEW.kind
                           WHEN 'item.suspended' THEN 'suspend'
                           WHEN 'item.unsuspended' THEN 'unsuspend'
                       END;
    entry      jsonb;
    store      text;
    ids        jsonb;
    until_ms   jsonb;
    note       text;
    body       jsonb;
BEGIN
    IF call_kind IS NULL THEN
        RETURN NULL;
    END IF;
    BEGIN
        note := coalesce(NEW.data ->> 'note', '');
        until_ms := NEW.data -> 'until_ms';
        FOR entry IN SELECT e FROM jsonb_array_elements(coalesce(NEW.data -> 'entities', '[]')) e
        LOOP
            store := entry ->> 'store_id';
            ids := coalesce(entry -> 'entity_ids', '[]');
            CONTINUE WHEN jsonb_typeof(ids) = 'array' AND jsonb_array_length(ids) = 0;
            IF store IS NULL OR NOT EXISTS (SELECT FROM kitchen.ref_stores s
                                            WHERE s.kitchen_id = NEW.kitchen_id
                                              AND s.store_id = store) THEN
                PERFORM otter.refuse_intent(NEW.kitchen_id, store, NULL, NEW.item_id, call_kind,
                    NEW.record_id, format('kitchen %s does not serve store %s', NEW.kitchen_id,
                                          coalesce(store, '(none)')));
                CONTINUE;
            END IF;
            IF jsonb_typeof(ids) <> 'array' THEN
                RAISE EXCEPTION 'entity_ids of store % is not a list', store;
            END IF;
            IF call_kind = 'suspend' THEN
                body := jsonb_build_object(
                    'entityIds', ids,
                    'note', note,
                    'status', jsonb_build_object(
                        'isIndefinite', until_ms IS NULL OR jsonb_typeof(until_ms) = 'null',
                        'suspendedUntil',
                        CASE WHEN until_ms IS NULL OR jsonb_typeof(until_ms) = 'null' THEN NULL
                             ELSE to_jsonb(to_char(to_timestamp(floor((until_ms::text)::numeric
                                                                      / 1000)::double precision)
                                                       AT TIME ZONE 'UTC',
                                                   'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
                        END));
            ELSE
                body := jsonb_build_object('entityIds', ids, 'note', note);
            END IF;
            INSERT INTO otter.callbacks (kitchen_id, store_id, item_id, kind, record_id,
                                         dedupe_key, lane, body)
            VALUES (NEW.kitchen_id, store, NEW.item_id, call_kind, NEW.record_id,
                    'record:' || NEW.record_id || ':' || store,
                    'item:' || store || ':' || NEW.item_id, body)
            ON CONFLICT (dedupe_key) DO NOTHING;
        END LOOP;
        PERFORM pg_notify('otter_calls', '');
    EXCEPTION WHEN OTHERS THEN
        PERFORM otter.refuse_intent(NEW.kitchen_id, NULL, NULL, NEW.item_id, call_kind,
                                    NEW.record_id, 'unreadable record: ' || SQLERRM);
    END;
    RETURN NULL;
END
$$;
CREATE TRIGGER item_availability_otter_calls AFTER INSERT ON kitchen.item_availability
    FOR EACH ROW EXECUTE FUNCTION otter.availability_intent();

-- ---------------------------------------------------------------------------------------------
-- Rate budgets per (store, endpoint), shared by every relay: the times of the calls made in the
-- current window. A relay takes a slot (one statement, row-locked) before each request.
CREATE TABLE otter.call_budgets (
    store_id  text NOT NULL,
    endpoint  text NOT NULL,
    recent    timestamptz[] NOT NULL,
    PRIMARY KEY (store_id, endpoint)
);

-- Orders no box confirmed in time: the ERROR is logged once per order, by whichever relay
-- inserts its row first.
CREATE TABLE otter.unconfirmed_alarms (
    order_id   text PRIMARY KEY,
    store_id   text NOT NULL,
    raised_at  timestamptz NOT NULL DEFAULT now()
);

-- ---------------------------------------------------------------------------------------------
-- The calls' state, read back by a box: calls of the stores its kitchen serves, or its own.
-- Same caller check as kitchen.missed_events.
CREATE FUNCTION kitchen.otter_calls(p_after bigint, p_limit integer)
RETURNS TABLE (change_id bigint, order_id text, item_id text, store_id text, kind text,
               state text, detail text, record_id uuid, updated_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    caller   text := coalesce(nullif(current_setting('role'), 'none'), session_user);
    tenant   text := current_setting('kitchen.id', true);
BEGIN
    IF NOT EXISTS (
        SELECT FROM kitchen.agent_roles r WHERE r.role_name = caller AND r.kitchen_id = tenant
    ) THEN
        RAISE EXCEPTION 'role % is not the box of kitchen %', caller, coalesce(tenant, '(none set)')
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'set the tenant with set_config(''kitchen.id'', <kitchen>, true) as that kitchen''s role';
    END IF;
    RETURN QUERY
        SELECT c.change_id, c.order_id, c.item_id, c.store_id, c.kind, c.state, c.detail,
               c.record_id, c.updated_at
        FROM otter.callbacks c
        WHERE c.change_id > p_after
          AND (c.kitchen_id = tenant
               OR c.store_id IN (SELECT s.store_id FROM kitchen.ref_stores s
                                 WHERE s.kitchen_id = tenant))
        ORDER BY c.change_id
        LIMIT least(greatest(p_limit, 0), 1000);
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Security, as in 20261122000002_kitchen_sync.sql.

REVOKE ALL ON FUNCTION kitchen.otter_calls(bigint, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION otter.order_intent() FROM PUBLIC;
REVOKE ALL ON FUNCTION otter.availability_intent() FROM PUBLIC;
REVOKE ALL ON FUNCTION otter.refuse_intent(text, text, text, text, text, uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kitchen.otter_calls(bigint, integer) TO kitchen_agent;
GRANT SELECT, INSERT ON kitchen.item_availability TO kitchen_agent;
GRANT SELECT ON kitchen.ref_otter_entities TO kitchen_agent;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['ref_otter_entities', 'item_availability']
    LOOP
        EXECUTE format('ALTER TABLE kitchen.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE kitchen.%I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY kitchen_box ON kitchen.%I TO kitchen_agent
                 USING (kitchen_id = (SELECT kitchen.current_kitchen()))
                 WITH CHECK (kitchen_id = (SELECT kitchen.current_kitchen()))', t);
        EXECUTE format(
            'CREATE POLICY relay_admin ON kitchen.%I TO CURRENT_USER USING (true) WITH CHECK (true)',
            t);
    END LOOP;
END
$$;
