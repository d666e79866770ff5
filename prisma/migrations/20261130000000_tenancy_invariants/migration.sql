-- Tenancy invariants, written once (see README "Add a tenant-owned resource").
--
-- 1. app_make_tenant_owned(table): the one definition of what makes a table tenant-owned — its
--    tenant_id defaults to the transaction's tenant, row-level security is enabled and forced, one
--    policy on the transaction's tenant with USING and WITH CHECK, the owner's own policy, and the
--    grants saas_app needs. A new tenant-owned table is one line in its migration:
--      SELECT app_make_tenant_owned('comments');
--    It is idempotent, so the existing tables are passed through it below and the policy text
--    exists in this one place. `npm run tenancy:check` (src/db/tenancy-invariants.ts) verifies the
--    result from the catalog, together with the keys and foreign keys the function cannot add.
-- 2. tenants under row-level security: under a tenant's context saas_app sees and changes only its
--    own row (name and settings only); the lookups that run before a tenant is known go through the
--    SECURITY DEFINER functions app_tenant_* below, which return only the columns they need.

CREATE FUNCTION app_make_tenant_owned(target regclass) RETURNS void
  LANGUAGE plpgsql
  AS $$
BEGIN
  -- A forgotten tenant fails closed: with no tenant set the default is NULL (NOT NULL violation).
  EXECUTE format('ALTER TABLE %s ALTER COLUMN tenant_id SET DEFAULT app_current_tenant()', target);
  EXECUTE format('ALTER TABLE %s ALTER COLUMN tenant_id SET NOT NULL', target);
  EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', target);
  EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', target);
  EXECUTE format('DROP POLICY IF EXISTS tenant_isolation ON %s', target);
  EXECUTE format('CREATE POLICY tenant_isolation ON %s AS PERMISSIVE FOR ALL TO saas_app '
    'USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant())', target);
  -- The migrating role (the tables' owner) keeps full access: migrations, seeds, operators.
  EXECUTE format('DROP POLICY IF EXISTS owner_full_access ON %s', target);
  EXECUTE format('CREATE POLICY owner_full_access ON %s TO %I USING (true) WITH CHECK (true)', target, current_user);
  EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO saas_app', target);
END
$$;
COMMENT ON FUNCTION app_make_tenant_owned(regclass) IS
  'Makes a table with a tenant_id column tenant-owned: default, forced RLS, tenant policy, grants. See README "Add a tenant-owned resource".';
REVOKE EXECUTE ON FUNCTION app_make_tenant_owned(regclass) FROM PUBLIC;

SELECT app_make_tenant_owned('users');
SELECT app_make_tenant_owned('sessions');
SELECT app_make_tenant_owned('projects');
SELECT app_make_tenant_owned('tasks');

-- tenants: a tenant's own row only, and of it only what PATCH /v1/tenant may change.
ALTER TABLE "tenants" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "tenants" FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_self ON "tenants" AS PERMISSIVE FOR ALL TO saas_app
  USING ("id" = app_current_tenant()) WITH CHECK ("id" = app_current_tenant());
CREATE POLICY owner_full_access ON "tenants" TO CURRENT_USER USING (true) WITH CHECK (true);
REVOKE INSERT, UPDATE, DELETE ON "tenants" FROM saas_app;
GRANT UPDATE ("name", "settings", "updated_at") ON "tenants" TO saas_app;

-- The narrow, named path to tenants before a tenant is known. SECURITY DEFINER: they run as the
-- tables' owner (whose policy admits every row); each returns only the columns its caller needs;
-- search_path is pinned so a caller cannot substitute its own objects (PostgreSQL docs, "Writing
-- SECURITY DEFINER Functions Safely"). Callers: src/tenancy/tenant-directory.ts only.

-- Host → tenant (plugins/tenant.ts through TenantRegistry): active tenants only.
CREATE FUNCTION app_tenant_by_slug(p_slug text)
  RETURNS TABLE ("id" uuid, "slug" text, "name" text, "domain" text)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
  AS $$ SELECT t.id, t.slug, t.name, t.domain FROM public.tenants t WHERE t.slug = p_slug AND t.status = 'active' $$;

CREATE FUNCTION app_tenant_by_domain(p_domain text)
  RETURNS TABLE ("id" uuid, "slug" text, "name" text, "domain" text)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
  AS $$ SELECT t.id, t.slug, t.name, t.domain FROM public.tenants t WHERE t.domain = p_domain AND t.status = 'active' $$;

-- Signup (routes/platform/signup.ts): creates an active tenant; slug and name are all it may set.
CREATE FUNCTION app_tenant_signup(p_slug text, p_name text)
  RETURNS TABLE ("id" uuid, "slug" text, "name" text, "domain" text, "settings" jsonb, "createdAt" timestamptz, "updatedAt" timestamptz)
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public
  AS $$ INSERT INTO public.tenants AS t (slug, name) VALUES (p_slug, p_name)
        RETURNING t.id, t.slug, t.name, t.domain, t.settings, t.created_at, t.updated_at $$;

-- Platform admin (routes/platform/admin.ts): one keyset page, newest first, without settings.
CREATE FUNCTION app_tenant_admin_page(p_take integer, p_before_created_at timestamptz, p_before_id uuid)
  RETURNS TABLE ("id" uuid, "slug" text, "name" text, "status" text, "domain" text, "createdAt" timestamptz, "updatedAt" timestamptz)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
  AS $$ SELECT t.id, t.slug, t.name, t.status::text, t.domain, t.created_at, t.updated_at
        FROM public.tenants t
        WHERE p_before_created_at IS NULL
           OR (t.created_at, t.id) < (p_before_created_at, p_before_id)
        ORDER BY t.created_at DESC, t.id DESC
        LIMIT least(greatest(p_take, 1), 101) $$;

-- Platform admin: suspend or reactivate; no row when the slug is unknown.
CREATE FUNCTION app_tenant_admin_set_status(p_slug text, p_status text)
  RETURNS TABLE ("id" uuid, "slug" text, "name" text, "status" text, "domain" text, "createdAt" timestamptz, "updatedAt" timestamptz)
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public
  AS $$ UPDATE public.tenants AS t SET status = p_status::"TenantStatus", updated_at = now() WHERE t.slug = p_slug
        RETURNING t.id, t.slug, t.name, t.status::text, t.domain, t.created_at, t.updated_at $$;

REVOKE EXECUTE ON FUNCTION app_tenant_by_slug(text), app_tenant_by_domain(text), app_tenant_signup(text, text),
  app_tenant_admin_page(integer, timestamptz, uuid), app_tenant_admin_set_status(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_tenant_by_slug(text), app_tenant_by_domain(text), app_tenant_signup(text, text),
  app_tenant_admin_page(integer, timestamptz, uuid), app_tenant_admin_set_status(text, text) TO saas_app;
