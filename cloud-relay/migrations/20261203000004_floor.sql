-- The kitchen floor's settings in a kitchen's reference data (docs/floor.md), as the agent's
-- SQLite cache keeps them (edge-agent migration 0009): a station's own display settings and the
-- reference's `[floor]` table, each as the TOML text `kitchen_proto::floor` writes and reads
-- ('' for none). Row-level security and the boxes' SELECT cover the new columns already.
ALTER TABLE kitchen.ref_stations ADD COLUMN display text NOT NULL DEFAULT '';
ALTER TABLE kitchen.reference_versions ADD COLUMN floor text NOT NULL DEFAULT '';
