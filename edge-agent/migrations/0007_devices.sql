-- Paired devices (issue 12): each tablet, scanner station or manager device presents an opaque
-- token; only its SHA-256 is kept. Revoked devices stay listed (who did what stays readable).
CREATE TABLE devices (
    id             TEXT PRIMARY KEY,
    token_hash     TEXT NOT NULL UNIQUE,
    name           TEXT NOT NULL,
    role           TEXT NOT NULL,
    station        TEXT,
    paired_at      INTEGER NOT NULL,
    paired_by      TEXT NOT NULL,
    revoked_at     INTEGER
);
-- Names are unique among devices in use, so a record's device names one.
CREATE UNIQUE INDEX devices_active_name ON devices (name) WHERE revoked_at IS NULL;

-- Pairing codes a manager device made: single use, short-lived, kept hashed.
CREATE TABLE pairing_codes (
    code_hash      TEXT PRIMARY KEY,
    role           TEXT NOT NULL,
    station        TEXT,
    created_by     TEXT NOT NULL,
    expires_at     INTEGER NOT NULL
);
