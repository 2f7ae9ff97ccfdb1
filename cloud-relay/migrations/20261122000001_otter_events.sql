-- The relay's schema: every Otter webhook once, the normalised orders, and the outbox that
-- carries events to the kitchens. See docs/relay.md for what each table means.
CREATE SCHEMA IF NOT EXISTS otter;

-- Every webhook, keyed by Otter's eventId: the de-duplication record. `raw` holds the exact
-- body bytes that were signed (as text; JSON bodies are UTF-8), lz4-compressed: pglz costs
-- several times the CPU on the ingest path (needs PostgreSQL 14 or newer).
CREATE TABLE otter.webhook_events (
    event_id     text PRIMARY KEY,
    event_type   text NOT NULL,
    event_time   timestamptz NOT NULL,
    store_id     text NOT NULL,
    order_id     text,
    -- applied: changed an order; stale: an order snapshot older than the one held;
    -- stored: nothing for kitchens (ping, menus, ...)
    outcome      text NOT NULL CHECK (outcome IN ('applied', 'stale', 'stored')),
    raw          text COMPRESSION lz4 NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_events_order_idx ON otter.webhook_events (order_id) WHERE order_id IS NOT NULL;

-- The latest snapshot of each order, plus the status it has reached.
CREATE TABLE otter.orders (
    order_id               text PRIMARY KEY,
    store_id               text NOT NULL,
    source                 text,
    source_type            text,
    friendly_id            text,
    currency_code          text,
    status                 text NOT NULL,
    -- time of the event that set `status`; CANCELED and REJECTED are final
    status_event_time      timestamptz NOT NULL,
    ordered_at             timestamptz,
    customer_name          text,
    customer_note          text,
    fulfillment_mode       text,
    scheduling_type        text,
    pickup_time            timestamptz,
    estimated_pickup_time  timestamptz,
    delivery_time          timestamptz,
    table_identifier       text,
    estimated_prep_seconds integer,
    subtotal               numeric,
    discount               numeric,
    tax                    numeric,
    tip                    numeric,
    delivery_fee           numeric,
    total                  numeric,
    cancellation_reason    text,
    -- the event whose snapshot the lines below come from; an update applies only if newer
    snapshot_event_id      text NOT NULL,
    snapshot_event_time    timestamptz NOT NULL,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_store_idx ON otter.orders (store_id, created_at);

CREATE TABLE otter.order_items (
    order_id      text NOT NULL REFERENCES otter.orders (order_id) ON DELETE CASCADE,
    line_no       integer NOT NULL,
    line_item_id  text,
    item_id       text,
    sku_id        text,
    name          text,
    quantity      integer NOT NULL,
    note          text,
    price         numeric,
    category      text,
    station_hint  text,
    PRIMARY KEY (order_id, line_no)
);

-- Modifiers of every depth, flattened in pre-order: `modifier_no` numbers them within their
-- line, `parent_modifier_no` is NULL for a modifier applied directly to the line. No foreign
-- key to order_items: the relay writes both in one statement batch and deletes them together,
-- and a per-row FK check on the most numerous rows was a measurable share of ingest CPU.
CREATE TABLE otter.order_item_modifiers (
    order_id            text NOT NULL,
    line_no             integer NOT NULL,
    modifier_no         integer NOT NULL,
    parent_modifier_no  integer,
    depth               integer NOT NULL CHECK (depth >= 1),
    line_item_id        text,
    modifier_id         text,
    sku_id              text,
    name                text,
    quantity            integer NOT NULL,
    price               numeric,
    group_id            text,
    group_name          text,
    station_hint        text,
    PRIMARY KEY (order_id, line_no, modifier_no)
);

CREATE TABLE otter.order_promotions (
    order_id     text NOT NULL REFERENCES otter.orders (order_id) ON DELETE CASCADE,
    promo_no     integer NOT NULL,
    external_id  text,
    name         text,
    value        numeric,
    PRIMARY KEY (order_id, promo_no)
);

-- Every status an order was moved to, cancellations in both forms included. Not tied to
-- otter.orders: a status event may arrive before the order it belongs to.
CREATE TABLE otter.order_status_changes (
    id                   bigserial PRIMARY KEY,
    order_id             text NOT NULL,
    store_id             text NOT NULL,
    event_id             text NOT NULL REFERENCES otter.webhook_events (event_id),
    event_type           text NOT NULL,
    status               text NOT NULL,
    event_time           timestamptz NOT NULL,
    cancellation_reason  text,
    recorded_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_status_changes_order_idx ON otter.order_status_changes (order_id, event_time);

-- The last per-store sequence number handed out. Locking a store's row serialises the
-- transactions of that store, so sequence order is commit order.
CREATE TABLE otter.store_sequences (
    store_id       text PRIMARY KEY,
    last_sequence  bigint NOT NULL
);

-- Events waiting to be published. Kitchen-bound rows have a per-store `sequence` and a protobuf
-- `payload`; every row also goes to the raw fanout exchange. A row is published once both
-- publishes were confirmed (and the kitchen one routed).
CREATE TABLE otter.outbox (
    id               bigserial PRIMARY KEY,
    event_id         text NOT NULL UNIQUE REFERENCES otter.webhook_events (event_id),
    store_id         text NOT NULL,
    sequence         bigint,
    event_type       text NOT NULL,
    payload          bytea,
    created_at       timestamptz NOT NULL DEFAULT now(),
    published_at     timestamptz,
    attempts         integer NOT NULL DEFAULT 0,
    last_error       text,
    next_attempt_at  timestamptz,
    UNIQUE (store_id, sequence),
    CHECK ((sequence IS NULL) = (payload IS NULL))
);
CREATE INDEX outbox_unpublished_idx ON otter.outbox (id) WHERE published_at IS NULL;
