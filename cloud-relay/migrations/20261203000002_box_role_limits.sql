-- Limits on the kitchen boxes' database roles (issue 13): one leaked box credential must not be
-- able to use up the cluster's max_connections (the relay would answer Otter 503), run
-- statements for ever or sit in an open transaction holding locks. docs/security.md.

-- PostgreSQL >= 14 hardening: nobody but the schema's owner creates objects in `public` (the
-- default from PostgreSQL 15 on; explicit here so an older or upgraded cluster gets it too).
-- Idempotent.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- Applied by `cloud-relay kitchen add` to every box role it provisions, and below to the ones
-- already there. The agent's sync pool holds at most 2 connections; 4 leaves room for a
-- reconnect while the server has not yet noticed the old sessions are gone (the keepalives
-- below find those within about 90 s). The timeouts are session defaults: they bound a box
-- that behaves, and a stolen credential still has only 4 connections. Invoker's rights: the
-- caller must be allowed to alter the role (CREATEROLE), as `kitchen add` is.
CREATE OR REPLACE FUNCTION kitchen.limit_box_role(p_role text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format('ALTER ROLE %I CONNECTION LIMIT 4', p_role);
    EXECUTE format('ALTER ROLE %I SET statement_timeout = %L', p_role, '15s');
    EXECUTE format('ALTER ROLE %I SET idle_in_transaction_session_timeout = %L', p_role, '30s');
    EXECUTE format('ALTER ROLE %I SET tcp_keepalives_idle = 60', p_role);
    EXECUTE format('ALTER ROLE %I SET tcp_keepalives_interval = 10', p_role);
    EXECUTE format('ALTER ROLE %I SET tcp_keepalives_count = 3', p_role);
END
$$;
REVOKE ALL ON FUNCTION kitchen.limit_box_role(text) FROM PUBLIC;

DO $$
DECLARE
    box record;
BEGIN
    FOR box IN
        SELECT r.role_name FROM kitchen.agent_roles r
        JOIN pg_catalog.pg_roles p ON p.rolname = r.role_name
    LOOP
        PERFORM kitchen.limit_box_role(box.role_name);
    END LOOP;
END
$$;
