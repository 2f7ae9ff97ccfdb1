-- Sync between the kitchen boxes and PostgreSQL (issue 5): what each box pushes (order events,
-- batch sessions, scans, stock movements, its heartbeat), the reference data each kitchen pulls,
-- and the missed-order read. Every table is scoped by kitchen and guarded by row-level security;
-- see docs/sync.md ("Security model") for the roles and policies.
CREATE SCHEMA kitchen;

-- The group role of every kitchen box. Roles are cluster-wide: several databases on one cluster
-- (tests run in parallel, each in its own) may run this migration at the same time, so an
-- existing role, or one created concurrently, is fine.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'kitchen_agent') THEN
        BEGIN
            CREATE ROLE kitchen_agent NOLOGIN NOBYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL; -- created by a concurrent migration in another database
        END;
    END IF;
    IF EXISTS (SELECT FROM pg_catalog.pg_roles
               WHERE rolname = 'kitchen_agent' AND (rolsuper OR rolbypassrls OR rolcanlogin)) THEN
        RAISE EXCEPTION 'role kitchen_agent exists with SUPERUSER, BYPASSRLS or LOGIN; '
                        'kitchen boxes would not be confined to their kitchen';
    END IF;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Kitchens and which database role is which kitchen's box.

CREATE TABLE kitchen.kitchens (
    kitchen_id  text PRIMARY KEY CHECK (kitchen_id <> ''),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- A box logs in as its own role; this row says which kitchen that role is. One kitchen per role.
CREATE TABLE kitchen.agent_roles (
    role_name   text PRIMARY KEY,
    kitchen_id  text NOT NULL REFERENCES kitchen.kitchens
);
CREATE INDEX agent_roles_kitchen_idx ON kitchen.agent_roles (kitchen_id);

-- The tenant of the current transaction (`SELECT set_config('kitchen.id', $1, true)`), but only
-- when the current role is that kitchen's box; NULL otherwise. Every kitchen_agent policy
-- compares with it. Invoker's rights: it reads agent_roles through that table's own policy
-- (the role's own row), which does not call this function, so there is no recursion. Policies
-- call it as `(SELECT kitchen.current_kitchen())`: evaluated once per statement, and an
-- index can be used on kitchen_id. (The role check here and the one in agent_roles' policy
-- each confine a box on their own; both are kept, deliberately.)
CREATE FUNCTION kitchen.current_kitchen() RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.kitchen_id
    FROM kitchen.agent_roles r
    WHERE r.role_name = current_user
      AND r.kitchen_id = current_setting('kitchen.id', true)
$$;

-- ---------------------------------------------------------------------------------------------
-- What the boxes push. Ids are UUIDv7 made on the box, so a push is idempotent
-- (`INSERT ... ON CONFLICT DO NOTHING`); `synced_at` is when the row reached PostgreSQL.

CREATE TABLE kitchen.order_events (
    record_id    uuid PRIMARY KEY,
    kitchen_id   text NOT NULL REFERENCES kitchen.kitchens,
    order_id     text NOT NULL,
    -- order.created | order.updated | order.cancelled | order.status | order.bumped |
    -- order.recalled | order.ready (not a CHECK: a newer agent may send kinds this schema
    -- does not know yet, and its outbox must not jam on them)
    kind         text NOT NULL,
    stations     text[] NOT NULL DEFAULT '{}',
    state        text,
    data         jsonb NOT NULL,
    occurred_at  timestamptz NOT NULL,
    synced_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_events_kitchen_time_idx ON kitchen.order_events (kitchen_id, occurred_at);

-- Inserted when started, then upserted once completed:
--   ON CONFLICT (session_id) DO UPDATE SET
--     completed_at = COALESCE(EXCLUDED.completed_at, kitchen.batch_sessions.completed_at),
--     allocations = EXCLUDED.allocations
-- (kitchen_agent may update only those two columns).
CREATE TABLE kitchen.batch_sessions (
    session_id    uuid PRIMARY KEY,
    kitchen_id    text NOT NULL REFERENCES kitchen.kitchens,
    station_id    text NOT NULL,
    item_id       text NOT NULL,
    item_name     text NOT NULL,
    quantity      integer NOT NULL,
    device        text NOT NULL,
    started_at    timestamptz NOT NULL,
    completed_at  timestamptz,
    allocations   jsonb NOT NULL DEFAULT '[]',
    synced_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX batch_sessions_kitchen_time_idx ON kitchen.batch_sessions (kitchen_id, started_at);

CREATE TABLE kitchen.scans (
    scan_id     uuid PRIMARY KEY,
    kitchen_id  text NOT NULL REFERENCES kitchen.kitchens,
    device      text NOT NULL,
    raw         bytea NOT NULL,
    parsed      jsonb,
    role        text NOT NULL,
    action      text NOT NULL,
    accepted    boolean NOT NULL,
    reason      text NOT NULL,
    order_id    text,
    station_id  text,
    stock_id    text,
    scanned_at  timestamptz NOT NULL,
    synced_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX scans_kitchen_time_idx ON kitchen.scans (kitchen_id, scanned_at);

CREATE TABLE kitchen.stock_movements (
    record_id    uuid PRIMARY KEY,
    kitchen_id   text NOT NULL REFERENCES kitchen.kitchens,
    stock_id     text NOT NULL,
    item_id      text NOT NULL,
    change       text NOT NULL CHECK (change IN ('added', 'used', 'discarded')),
    quantity     integer NOT NULL,
    source       text NOT NULL,
    lot          text,
    use_by       date,
    device       text,
    occurred_at  timestamptz NOT NULL,
    synced_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stock_movements_kitchen_time_idx ON kitchen.stock_movements (kitchen_id, occurred_at);

-- The box's heartbeat, one row per kitchen, upserted every 30 s.
CREATE TABLE kitchen.devices (
    kitchen_id          text PRIMARY KEY REFERENCES kitchen.kitchens,
    agent_version       text NOT NULL,
    last_seen           timestamptz NOT NULL,
    feed_state          text NOT NULL,
    unsynced_backlog    bigint NOT NULL,
    oldest_unsynced_at  timestamptz,
    sequence_gaps       jsonb NOT NULL DEFAULT '[]',
    synced_at           timestamptz NOT NULL DEFAULT now()
);

-- ---------------------------------------------------------------------------------------------
-- Reference data per kitchen, the same shape as the agent's SQLite cache (edge-agent migrations
-- 0003 and 0005) with the kitchen in every key. Written only by `cloud-relay reference import`,
-- which replaces a kitchen's rows and bumps its version in one transaction and then
-- `NOTIFY kitchen_reference, '<kitchen_id>'`. No row here: the kitchen has no reference yet.

CREATE TABLE kitchen.reference_versions (
    kitchen_id  text PRIMARY KEY REFERENCES kitchen.kitchens,
    version     bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE kitchen.ref_day_parts (
    kitchen_id  text NOT NULL REFERENCES kitchen.kitchens,
    id          text NOT NULL,
    start_time  text NOT NULL,
    end_time    text NOT NULL,
    position    integer NOT NULL,
    PRIMARY KEY (kitchen_id, id)
);

CREATE TABLE kitchen.ref_stations (
    kitchen_id  text NOT NULL REFERENCES kitchen.kitchens,
    id          text NOT NULL,
    name        text NOT NULL,
    position    integer NOT NULL,
    PRIMARY KEY (kitchen_id, id)
);

-- A store may be served by several kitchens (each has its own row); missed_events lets a
-- kitchen read only the stores listed here for it.
CREATE TABLE kitchen.ref_stores (
    kitchen_id  text NOT NULL REFERENCES kitchen.kitchens,
    store_id    text NOT NULL,
    brand       text NOT NULL,
    position    integer NOT NULL,
    PRIMARY KEY (kitchen_id, store_id)
);

CREATE TABLE kitchen.ref_items (
    kitchen_id       text NOT NULL REFERENCES kitchen.kitchens,
    id               text NOT NULL,
    name             text NOT NULL,
    station_id       text NOT NULL,
    prep_seconds     integer NOT NULL CHECK (prep_seconds >= 0),
    par              integer CHECK (par >= 0),
    unit             text,
    shelf_life_days  integer CHECK (shelf_life_days >= 1),
    position         integer NOT NULL,
    PRIMARY KEY (kitchen_id, id),
    FOREIGN KEY (kitchen_id, station_id) REFERENCES kitchen.ref_stations (kitchen_id, id)
);

-- The Otter ids, SKUs, names and GTINs that mean an item, in the file's order.
CREATE TABLE kitchen.ref_matches (
    kitchen_id  text NOT NULL,
    item_id     text NOT NULL,
    position    integer NOT NULL,
    key         text NOT NULL,
    PRIMARY KEY (kitchen_id, item_id, position),
    FOREIGN KEY (kitchen_id, item_id) REFERENCES kitchen.ref_items (kitchen_id, id) ON DELETE CASCADE
);

CREATE TABLE kitchen.ref_pars (
    kitchen_id  text NOT NULL,
    item_id     text NOT NULL,
    day_part    text NOT NULL,
    quantity    integer NOT NULL CHECK (quantity >= 0),
    PRIMARY KEY (kitchen_id, item_id, day_part),
    FOREIGN KEY (kitchen_id, item_id) REFERENCES kitchen.ref_items (kitchen_id, id) ON DELETE CASCADE,
    FOREIGN KEY (kitchen_id, day_part) REFERENCES kitchen.ref_day_parts (kitchen_id, id)
);

-- ---------------------------------------------------------------------------------------------
-- Missed orders: a box that lost events (a sequence gap, or a queue lost while offline) reads
-- them back from the relay's outbox, for the stores its kitchen serves only.

-- The encoded `OrderEvent` holding only `sequence` (field 6, varint). The outbox stores the
-- payload before its sequence number is known (the publisher sets it when publishing); appending
-- this to the stored payload gives the message the kitchen was sent, since a field that occurs
-- again in an encoded message replaces the earlier value (protobuf encoding: "last one wins").
CREATE FUNCTION kitchen.order_event_sequence_field(p_sequence bigint) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    encoded bytea := '\x30'::bytea;  -- tag: field 6, wire type 0 (varint)
    rest    bigint := p_sequence;
BEGIN
    IF rest < 0 THEN
        RAISE EXCEPTION 'sequence % is negative', p_sequence;
    END IF;
    WHILE rest >= 128 LOOP
        encoded := encoded || set_byte('\x00'::bytea, 0, ((rest & 127) | 128)::integer);
        rest := rest >> 7;
    END LOOP;
    RETURN encoded || set_byte('\x00'::bytea, 0, rest::integer);
END
$$;

-- Runs with its owner's rights (kitchen_agent has nothing on otter.*), so inside it
-- current_user is the owner: the caller is the role set with SET ROLE, or else the role that
-- logged in. It must be mapped to the transaction's tenant, and the store must be one that
-- tenant serves (kitchen.ref_stores); anything else raises insufficient_privilege.
CREATE FUNCTION kitchen.missed_events(p_store_id text, p_after bigint, p_limit integer)
RETURNS TABLE (sequence bigint, event_id text, payload bytea)
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
    RETURN QUERY
        SELECT o.sequence, o.event_id, o.payload || kitchen.order_event_sequence_field(o.sequence)
        FROM otter.outbox o
        WHERE o.store_id = p_store_id
          AND o.sequence > p_after
          AND o.payload IS NOT NULL
        ORDER BY o.sequence
        LIMIT least(greatest(p_limit, 0), 1000);
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Security: privileges decide what a kitchen box may do at all, policies which rows.

REVOKE ALL ON FUNCTION kitchen.current_kitchen() FROM PUBLIC;
REVOKE ALL ON FUNCTION kitchen.order_event_sequence_field(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION kitchen.missed_events(text, bigint, integer) FROM PUBLIC;

GRANT USAGE ON SCHEMA kitchen TO kitchen_agent;
GRANT EXECUTE ON FUNCTION kitchen.current_kitchen() TO kitchen_agent;
GRANT EXECUTE ON FUNCTION kitchen.missed_events(text, bigint, integer) TO kitchen_agent;
GRANT SELECT, INSERT ON kitchen.order_events, kitchen.batch_sessions, kitchen.scans,
    kitchen.stock_movements, kitchen.devices TO kitchen_agent;
GRANT UPDATE (completed_at, allocations) ON kitchen.batch_sessions TO kitchen_agent;
GRANT UPDATE ON kitchen.devices TO kitchen_agent;
GRANT SELECT ON kitchen.kitchens, kitchen.agent_roles, kitchen.reference_versions,
    kitchen.ref_day_parts, kitchen.ref_stations, kitchen.ref_stores, kitchen.ref_items,
    kitchen.ref_matches, kitchen.ref_pars TO kitchen_agent;

-- Every table: RLS enabled and forced (the owner is subject to it too). Two permissive
-- policies each:
--   kitchen_box  (TO kitchen_agent): rows of the current tenant, when the role is its box;
--   relay_admin  (TO the role running this migration, the owner: the relay's own role): every
--                row, so the relay manages all kitchens under FORCE. Any other role sees no
--                row (superusers and BYPASSRLS roles skip policies altogether).
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['kitchens', 'order_events', 'batch_sessions', 'scans',
                             'stock_movements', 'devices', 'reference_versions', 'ref_day_parts',
                             'ref_stations', 'ref_stores', 'ref_items', 'ref_matches', 'ref_pars']
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

-- agent_roles: its own row only, and only under its own tenant. Not through current_kitchen(),
-- which reads this table.
ALTER TABLE kitchen.agent_roles ENABLE ROW LEVEL SECURITY;
ALTER TABLE kitchen.agent_roles FORCE ROW LEVEL SECURITY;
CREATE POLICY kitchen_box ON kitchen.agent_roles TO kitchen_agent
    USING (role_name = current_user AND kitchen_id = current_setting('kitchen.id', true))
    WITH CHECK (false);
CREATE POLICY relay_admin ON kitchen.agent_roles TO CURRENT_USER USING (true) WITH CHECK (true);
