-- Second, independent tenancy layer: PostgreSQL row-level security.
--
-- The API connects as (or switches to) the role "saas_app": it owns nothing and has no BYPASSRLS,
-- so every tenant-owned row it reads or writes must match the transaction-local setting
-- app.tenant_id (set with set_config(..., true) by the server for each unit of work). With no tenant
-- set, the setting is missing or empty and the policy matches no row at all.
-- The migrating role (the tables' owner) keeps full access through its own policy, for migrations,
-- seeds and operators; FORCE ROW LEVEL SECURITY makes the policies apply to the owner too.

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'saas_app') THEN
    CREATE ROLE saas_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
  END IF;
  -- Lets the owner's login switch to saas_app (the default when APP_DATABASE_URL is not set).
  IF NOT pg_has_role(current_user, 'saas_app', 'MEMBER') THEN
    EXECUTE format('GRANT saas_app TO %I', current_user);
  END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO saas_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON "tenants", "users", "sessions", "projects", "tasks" TO saas_app;

-- Emails are stored lower-cased so that the unique key (tenant_id, email) is case-insensitive.
ALTER TABLE "users" ADD CONSTRAINT "users_email_lower_case" CHECK ("email" = lower("email"));

-- The tenant of the current transaction, or NULL when none is set.
CREATE FUNCTION app_current_tenant() RETURNS uuid
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid $$;
GRANT EXECUTE ON FUNCTION app_current_tenant() TO saas_app;

ALTER TABLE "users" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "users" FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON "users" TO saas_app
  USING ("tenant_id" = app_current_tenant()) WITH CHECK ("tenant_id" = app_current_tenant());
CREATE POLICY owner_full_access ON "users" TO CURRENT_USER USING (true) WITH CHECK (true);

ALTER TABLE "sessions" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "sessions" FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON "sessions" TO saas_app
  USING ("tenant_id" = app_current_tenant()) WITH CHECK ("tenant_id" = app_current_tenant());
CREATE POLICY owner_full_access ON "sessions" TO CURRENT_USER USING (true) WITH CHECK (true);

ALTER TABLE "projects" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "projects" FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON "projects" TO saas_app
  USING ("tenant_id" = app_current_tenant()) WITH CHECK ("tenant_id" = app_current_tenant());
CREATE POLICY owner_full_access ON "projects" TO CURRENT_USER USING (true) WITH CHECK (true);

ALTER TABLE "tasks" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "tasks" FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON "tasks" TO saas_app
  USING ("tenant_id" = app_current_tenant()) WITH CHECK ("tenant_id" = app_current_tenant());
CREATE POLICY owner_full_access ON "tasks" TO CURRENT_USER USING (true) WITH CHECK (true);
