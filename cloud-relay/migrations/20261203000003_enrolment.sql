-- Enrolment (issue 13, docs/security.md "Enrolment"): a new box's card carries a one-time token
-- instead of long-lived secrets. `cloud-relay kitchen enrol-token` makes one (only its SHA-256
-- is kept); `POST /enrol` exchanges it, once and before it expires, for the kitchen's own broker
-- and database credentials, new each time, so an enrolment revokes what the previous box had.
CREATE TABLE kitchen.enrolment_tokens (
    token_sha256 bytea PRIMARY KEY CHECK (length(token_sha256) = 32),
    kitchen_id   text NOT NULL REFERENCES kitchen.kitchens ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    -- Set by the one enrolment the token allowed; a used token is kept (the refusal of a second
    -- use says when it was used) until a newer token for the kitchen replaces it.
    used_at      timestamptz,
    used_from    text
);
CREATE INDEX enrolment_tokens_kitchen_idx ON kitchen.enrolment_tokens (kitchen_id);

-- The relay's own role only (it owns the table): no box role reads or writes tokens.
REVOKE ALL ON kitchen.enrolment_tokens FROM PUBLIC;
REVOKE ALL ON kitchen.enrolment_tokens FROM kitchen_agent;
