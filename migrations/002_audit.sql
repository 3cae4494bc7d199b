-- pgward audit table: where the PostgreSQL audit sink writes its hash-chained events.
--
-- Apply it to the AUDIT database (which may be another server than the one the model reads),
-- as a superuser (only one may pull a role's SUPERUSER or REPLICATION attribute back), with
--     pgward migrate --audit
-- or with psql. The role that runs it owns the schema, the table and the function; run it
-- again as the same role. Plain SQL only (no psql meta-commands). Safe to run again: every
-- statement either creates what is missing or converges what exists back to what is written
-- here.
--
-- What it creates:
--   schema   pgward_audit
--   table    pgward_audit.events   one row per event, the exact line that was hashed
--   function pgward_audit.head()   the newest event, for a restarted pgward to resume from
--   role     pgward_audit_writer   INSERT only: what pgward's audit connection runs as
--   role     pgward_audit_reader   SELECT only: for `pgward audit verify --postgres`
--
-- Both roles are NOLOGIN groups, and this file holds no password (it would end up in version
-- control and in the server log). Give pgward a login role that is a member, e.g.
--     CREATE ROLE pgward_audit LOGIN IN ROLE pgward_audit_writer;
--     \password pgward_audit            -- psql: sends only a SCRAM hash
-- and the same for the verifier with pgward_audit_reader. (Alternatively
-- `ALTER ROLE pgward_audit_writer LOGIN` and set its password; a re-run of this file leaves
-- LOGIN alone.) Roles are cluster-wide; everything else lives in the database this runs in.
--
-- What protects the log:
--   * pgward's own connection cannot change or remove what it wrote: it holds INSERT and
--     nothing else, so a compromised pgward (or a model that talks it into something) cannot
--     rewrite history.
--   * Against the table's owner or a superuser, privileges are no wall. The hash chain is the
--     control: every line carries the hash of the line before, so `pgward audit verify
--     --postgres` names the first edited, deleted or reordered event. Deleting the newest
--     events leaves a valid shorter chain; only a head recorded elsewhere (the file sink's
--     `<file>.head`) shows that, and a keyed chain (audit.hmac_key) stops the owner from
--     recomputing the hashes after an edit.
--   * No trigger refuses UPDATE or DELETE: the owner could drop or disable it, so it would
--     stop nobody who matters, and it would get in the way of retention (deleting the oldest
--     rows, as the owner, is a legitimate operation; verify then starts from the oldest row).

BEGIN;

-- Create each role only if it is missing. Roles are cluster-wide, so two audit databases on
-- one server share them; a concurrent run that wins the race is not an error.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'pgward_audit_writer') THEN
        CREATE ROLE pgward_audit_writer NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'pgward_audit_reader') THEN
        CREATE ROLE pgward_audit_reader NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

-- Pull both roles back to no special powers, whatever someone did to them since.
-- NOSUPERUSER: a superuser ignores every grant below (it could UPDATE and DELETE events).
-- NOBYPASSRLS: harmless today (no policies), but a row-level policy added later must bind.
-- NOCREATEDB / NOCREATEROLE: a leaked audit credential must not create databases or roles.
-- NOREPLICATION: a replication connection streams the whole cluster, grants or not.
-- LOGIN / NOLOGIN is left as it is: the operator may have made a role log in directly.
ALTER ROLE pgward_audit_writer
    NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION;
ALTER ROLE pgward_audit_reader
    NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION;

CREATE SCHEMA IF NOT EXISTS pgward_audit;

-- Threat: someone who could create schemas in this database created `pgward_audit` (or its
-- table) before this ran, so IF NOT EXISTS would adopt an object they own and can rewrite,
-- and the grants below would be theirs to undo. Refuse to go on unless the role running
-- this migration owns them.
DO $$
DECLARE
    owner_name name;
BEGIN
    SELECT pg_catalog.pg_get_userbyid(nspowner) INTO owner_name
        FROM pg_catalog.pg_namespace WHERE nspname = 'pgward_audit';
    IF owner_name <> current_user THEN
        RAISE EXCEPTION 'schema pgward_audit is owned by %, not by %: run this migration as its owner, or check who created it', owner_name, current_user;
    END IF;
    SELECT pg_catalog.pg_get_userbyid(relowner) INTO owner_name
        FROM pg_catalog.pg_class
        WHERE relname = 'events' AND relnamespace = 'pgward_audit'::regnamespace;
    IF owner_name IS NOT NULL AND owner_name <> current_user THEN
        RAISE EXCEPTION 'table pgward_audit.events is owned by %, not by %: run this migration as its owner, or check who created it', owner_name, current_user;
    END IF;
END
$$;

-- One row per event.
-- seq:  the event's `seq`. The primary key is what makes two pgward processes writing one
--       table fail loudly (a duplicate seq) instead of silently forking the chain.
-- hash: the event's `hash`, a copy for lookups; the line is what verification reads.
-- line: the canonical JSON line exactly as it was hashed, without its newline. `text`, not
--       `jsonb`: jsonb reorders keys and drops duplicates, and the hash would no longer verify.
-- recorded_at: when the audit database received it (the event has its own `ts`).
-- The CHECKs keep rows in the shape the verifier reads (one line each, a real hash).
CREATE TABLE IF NOT EXISTS pgward_audit.events (
    seq         bigint      PRIMARY KEY CHECK (seq > 0),
    hash        text        NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
    line        text        NOT NULL CHECK (pg_catalog.strpos(line, E'\n') = 0),
    recorded_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);

COMMENT ON TABLE pgward_audit.events IS
    'pgward audit events, one hash-chained JSON line each; '
    'check with `pgward audit verify --postgres`';

-- Start from nothing: no privilege on the schema or the table for anyone but the owner,
-- including grants that an earlier hand-made setup or default privileges handed out.
REVOKE ALL ON SCHEMA pgward_audit FROM PUBLIC;
REVOKE ALL ON TABLE pgward_audit.events FROM PUBLIC;
REVOKE ALL ON TABLE pgward_audit.events FROM pgward_audit_writer, pgward_audit_reader;

-- The writer: USAGE to name the schema, INSERT to append. No SELECT (a compromised pgward
-- cannot read back other calls' events), no UPDATE, DELETE or TRUNCATE (it cannot rewrite
-- or remove them), no REFERENCES or TRIGGER.
GRANT USAGE ON SCHEMA pgward_audit TO pgward_audit_writer;
GRANT INSERT ON TABLE pgward_audit.events TO pgward_audit_writer;

-- The reader: SELECT to verify the chain. No write of any kind.
GRANT USAGE ON SCHEMA pgward_audit TO pgward_audit_reader;
GRANT SELECT ON TABLE pgward_audit.events TO pgward_audit_reader;

-- The newest event. The writer cannot SELECT, but a restarted pgward must continue the chain
-- after the last event written, so this one narrow read runs with its owner's rights
-- (SECURITY DEFINER). It takes no argument and returns one row, found through the primary
-- key. search_path is pinned to pg_catalog and pg_temp (listed last, so a temporary object
-- can never shadow anything) and the table is schema-qualified: a caller cannot make the
-- owner's rights run an object of the caller's choosing.
CREATE OR REPLACE FUNCTION pgward_audit.head()
    RETURNS TABLE (seq bigint, line text)
    LANGUAGE sql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT e.seq, e.line FROM pgward_audit.events AS e ORDER BY e.seq DESC LIMIT 1
$$;

-- Functions are executable by PUBLIC by default: only the writer may call this one (the
-- reader can SELECT the table instead).
REVOKE ALL ON FUNCTION pgward_audit.head() FROM PUBLIC;
REVOKE ALL ON FUNCTION pgward_audit.head() FROM pgward_audit_reader;
GRANT EXECUTE ON FUNCTION pgward_audit.head() TO pgward_audit_writer;

COMMIT;
