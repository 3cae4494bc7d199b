-- pgward multi-tenant example (applied by `pgward demo` and the tests after 001): two tables
-- whose rows belong to tenants, and the two ways pgward keeps a caller to its own tenant.
--
--   * public.projects / public.tasks carry no policy in the database: pgward's row filter
--     (`[[tables]] row_filter = { column = "tenant", claim = "tenant" }`) wraps every
--     reference to them in `(SELECT ... WHERE tenant = <the caller's claim>)`.
--   * public.tenant_notes has a row-level security policy on the setting `pgward.tenant`,
--     which pgward sets per transaction from the caller's claim (`[session] settings =
--     { "pgward.tenant" = "tenant" }`). The database itself filters every query; a session
--     without the setting sees no rows at all (fail closed).
--
-- Run as the tables' owner (a superuser in the demo). Idempotent.

BEGIN;

CREATE TABLE IF NOT EXISTS public.projects (
    id      integer PRIMARY KEY,
    tenant  text    NOT NULL,
    name    text    NOT NULL
);
CREATE TABLE IF NOT EXISTS public.tasks (
    id          integer PRIMARY KEY,
    project_id  integer NOT NULL REFERENCES public.projects (id),
    tenant      text    NOT NULL,
    title       text    NOT NULL,
    done        boolean NOT NULL DEFAULT false
);
CREATE TABLE IF NOT EXISTS public.tenant_notes (
    id      integer PRIMARY KEY,
    tenant  text    NOT NULL,
    body    text    NOT NULL
);

INSERT INTO public.projects (id, tenant, name) VALUES
    (1, 'acme',   'Rocket skates'),
    (2, 'acme',   'Giant magnet'),
    (3, 'globex', 'Doomsday device')
ON CONFLICT (id) DO NOTHING;
INSERT INTO public.tasks (id, project_id, tenant, title, done) VALUES
    (1, 1, 'acme',   'Order wheels',      true),
    (2, 1, 'acme',   'Test on a cliff',   false),
    (3, 2, 'acme',   'Find a big horseshoe', false),
    (4, 3, 'globex', 'Hire henchmen',     true),
    (5, 3, 'globex', 'Build volcano lair', false)
ON CONFLICT (id) DO NOTHING;
INSERT INTO public.tenant_notes (id, tenant, body) VALUES
    (1, 'acme',   'acme: quarterly plan'),
    (2, 'acme',   'acme: supplier list'),
    (3, 'globex', 'globex: world domination memo')
ON CONFLICT (id) DO NOTHING;

-- The database enforces this one, whatever SQL reaches it. `current_setting(..., true)` is
-- NULL when unset, and `tenant = NULL` matches nothing.
ALTER TABLE public.tenant_notes ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON public.tenant_notes;
CREATE POLICY tenant_isolation ON public.tenant_notes
    FOR SELECT
    USING (tenant = pg_catalog.current_setting('pgward.tenant', true));

GRANT SELECT ON public.projects, public.tasks, public.tenant_notes TO pgward_reader;

COMMIT;
