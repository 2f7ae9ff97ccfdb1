-- The fleet channel (docs/fleet.md): what the relay learns over MQTT about every kitchen box —
-- presence and the latest telemetry on kitchen.devices, the telemetry history, the commands
-- sent and their replies — and the operators who may see the fleet page. Every change to a
-- kitchen's fleet state is followed by `NOTIFY fleet, '<kitchen_id>'` in the same transaction
-- (a trigger on kitchen.devices, explicit for fleet.commands), which drives every relay's page.

CREATE SCHEMA fleet;

-- Operators of the fleet page: a name and the SHA-256 of their token (the token itself is
-- printed once by `cloud-relay operator add` and never stored).
CREATE TABLE fleet.operators (
    name          text PRIMARY KEY,
    token_sha256  bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- One row per telemetry message (a retained copy replayed is the same (kitchen, at): kept
-- once), pruned after `[mqtt] telemetry_retention_hours` by the subscriber.
CREATE TABLE fleet.telemetry (
    kitchen_id   text NOT NULL REFERENCES kitchen.kitchens,
    at           timestamptz NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    doc          jsonb NOT NULL,
    PRIMARY KEY (kitchen_id, at)
);
CREATE INDEX telemetry_at_idx ON fleet.telemetry (at);

-- Each command sent to a box (recorded before it is published) and the box's reply.
CREATE TABLE fleet.commands (
    id          uuid PRIMARY KEY,
    kitchen_id  text NOT NULL REFERENCES kitchen.kitchens,
    name        text NOT NULL,
    sent_at     timestamptz NOT NULL DEFAULT now(),
    sent_by     text NOT NULL,
    expires_at  timestamptz NOT NULL,
    reply       jsonb,
    replied_at  timestamptz
);
CREATE INDEX commands_kitchen_idx ON fleet.commands (kitchen_id, sent_at);

-- Presence and the latest telemetry, beside the box's own heartbeat columns (written by its
-- sync). The relay also keeps the heartbeat columns current from telemetry, and creates a valid
-- row when a presence arrives before the box ever synced.
ALTER TABLE kitchen.devices
    ADD COLUMN presence         text CHECK (presence IN ('online', 'offline')),
    ADD COLUMN presence_since   timestamptz,
    ADD COLUMN boot_id          text,
    ADD COLUMN presence_reason  text,
    ADD COLUMN telemetry        jsonb,
    ADD COLUMN telemetry_at     timestamptz;

-- The box writes only its heartbeat columns: presence and telemetry are the relay's, from what
-- the broker vouches for (the box's MQTT login), not what a box's database role claims.
REVOKE INSERT, UPDATE ON kitchen.devices FROM kitchen_agent;
GRANT INSERT (kitchen_id, agent_version, last_seen, feed_state, unsynced_backlog,
              oldest_unsynced_at, sequence_gaps, synced_at) ON kitchen.devices TO kitchen_agent;
-- (kitchen_id too: row-level security, not a missing grant, is what keeps a box in its row.)
GRANT UPDATE (kitchen_id, agent_version, last_seen, feed_state, unsynced_backlog,
              oldest_unsynced_at, sequence_gaps, synced_at) ON kitchen.devices TO kitchen_agent;

CREATE FUNCTION fleet.notify_device() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('fleet', NEW.kitchen_id);
    RETURN NULL;
END
$$;

-- Every write to a device row (the relay's from MQTT, the box's heartbeat) wakes the pages.
CREATE TRIGGER devices_notify_fleet
    AFTER INSERT OR UPDATE ON kitchen.devices
    FOR EACH ROW EXECUTE FUNCTION fleet.notify_device();
