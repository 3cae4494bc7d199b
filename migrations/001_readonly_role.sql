-- pgward least-privilege read role.
--
-- Apply as a superuser (or the owner of the tables), in the database pgward will serve.
-- Plain SQL only (no psql meta-commands), so it also runs through any driver. Safe to run
-- again: it converges an existing role back to these attributes.
--
-- pgward checks every query against its own allowlist before sending it, and runs it in a
-- READ ONLY transaction. This role is the second wall, the one that still holds if pgward
-- has a bug: PostgreSQL itself refuses anything the allowlist would refuse. Keep the two in
-- step: the GRANT SELECT lists at the end are the demo's allowlist; adapt them to yours.
--
-- The password is deliberately not in this file (it would end up in version control and
-- in the server log). Set it separately, preferably with psql's `\password pgward_reader`,
-- which sends only a SCRAM hash, or with
--     ALTER ROLE pgward_reader PASSWORD '...';
-- (the plain-text form can land in psql history and, with log_statement, in the server log).
-- Until a password is set the role cannot log in with password authentication.

BEGIN;

-- Create the role only if it is missing; the ALTER below sets every attribute either way,
-- so a role that drifted (someone made it a superuser "just to debug") is pulled back.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'pgward_reader') THEN
        CREATE ROLE pgward_reader;
    END IF;
END
$$;

-- LOGIN: pgward connects as this role.
-- NOSUPERUSER: a superuser bypasses every privilege check below, can read any file the
--   server can (pg_read_file, COPY ... FROM PROGRAM) and run programs on the host. pgward
--   refuses to serve as one.
-- NOBYPASSRLS: row-level security policies must apply to the model's queries too; a role
--   that bypasses RLS sees every tenant's rows. pgward refuses to serve as one.
-- NOCREATEDB / NOCREATEROLE: a leaked or hijacked connection must not be able to create
--   databases (disk exhaustion) or roles (a path to more privilege).
-- NOREPLICATION: a replication connection streams the whole cluster, grants or not.
-- NOINHERIT: if someone later grants this role membership in a powerful role, it does not
--   silently inherit that role's privileges.
ALTER ROLE pgward_reader
    LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION NOINHERIT;

-- Threat: a statement that writes slips past pgward. Every transaction this role starts is
-- read-only unless it asks otherwise. This is defence in depth, NOT the boundary: the role
-- can `SET default_transaction_read_only = off` itself. The boundary is the grants below,
-- which give no INSERT, UPDATE, DELETE, TRUNCATE or REFERENCES on anything.
ALTER ROLE pgward_reader SET default_transaction_read_only = on;

-- Threat: a runaway query (a cross join, a recursive CTE) holds a connection and locks
-- forever. pgward sets tighter per-call limits with SET LOCAL; these role defaults are the
-- ceiling that still applies if it ever does not.
ALTER ROLE pgward_reader SET statement_timeout = '30s';
ALTER ROLE pgward_reader SET lock_timeout = '5s';
ALTER ROLE pgward_reader SET idle_in_transaction_session_timeout = '60s';

-- Threat: object planting through search_path. Before PostgreSQL 15 every role could CREATE
-- in schema public, so a reader could create a function or operator named like a built-in
-- (or a table named like an allowlisted one) that another session, or pgward itself, would
-- then resolve and run. PostgreSQL 15+ already revokes this by default; the statement makes
-- older servers and upgraded databases match.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- Threat: a default privilege that some earlier migration handed to everyone. Start this
-- role from nothing on the demo's tables (PUBLIC grants would still apply, so there should
-- be none on data tables; pgward's start-up check reports any table it can write).
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM pgward_reader;

-- Let the role look up names in public; this alone grants no access to any table.
GRANT USAGE ON SCHEMA public TO pgward_reader;

-- No GRANT at all on schema `internal`, on public.staff_passwords, or via ALTER DEFAULT
-- PRIVILEGES: deny by default. A table created tomorrow is invisible to the model until
-- someone grants it here and allowlists it in pgward's config.

-- Column-level grants rather than table-level ones: `GRANT SELECT ON t` would also cover
-- every column added to t later (a new `password_reset_token`, say), without review.
-- With column grants, `SELECT *` fails as soon as the table holds a column not listed here.

-- customers: everything except ssn. Threat: the most sensitive PII leaking through a query
-- that pgward's redaction missed. Postgres answers "permission denied" for any query that
-- mentions ssn, in the select list, in WHERE, in ORDER BY, anywhere, so it cannot even be
-- used as an oracle (`WHERE ssn LIKE '9%'`). email and phone are granted so pgward can show
-- them masked; its policy refuses them anywhere but bare in the select list.
GRANT SELECT (id, full_name, email, phone, country, created_at, lifetime_value)
    ON public.customers TO pgward_reader;

-- products: every column, listed so that new columns are not granted implicitly.
GRANT SELECT (id, sku, name, category, price, in_stock, tags, attributes, thumbnail)
    ON public.products TO pgward_reader;

-- orders: every column.
GRANT SELECT (id, customer_id, product_id, quantity, total, status, ordered_at)
    ON public.orders TO pgward_reader;

-- support_tickets: every column. The bodies are customer-written text (one carries a prompt
-- injection); reading them is allowed, and pgward frames them as untrusted data.
GRANT SELECT (id, customer_id, subject, body, status, opened_at)
    ON public.support_tickets TO pgward_reader;

COMMIT;
