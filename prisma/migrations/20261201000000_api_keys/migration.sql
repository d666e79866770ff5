-- API keys for machine clients (issue 13) and the per-tenant request limit.
-- Self-contained on purpose: the RLS block below is the one of 20261128000100_row_level_security,
-- written out, so that it can become the one-line "make tenant-owned" call once that exists.

-- Requests a tenant's host may serve per RATE_LIMIT_WINDOW_S (NULL: the configured default).
ALTER TABLE "tenants" ADD COLUMN "rate_limit" INTEGER;
ALTER TABLE "tenants" ADD CONSTRAINT "tenants_rate_limit_positive" CHECK ("rate_limit" IS NULL OR "rate_limit" > 0);

CREATE TABLE "api_keys" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "tenant_id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "prefix" TEXT NOT NULL,
    "key_hash" TEXT NOT NULL,
    "scopes" TEXT[],
    "created_by" UUID,
    "expires_at" TIMESTAMPTZ(3),
    "last_used_at" TIMESTAMPTZ(3),
    "revoked_at" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "api_keys_pkey" PRIMARY KEY ("id")
);

CREATE INDEX "api_keys_tenant_id_created_at_id_idx" ON "api_keys"("tenant_id", "created_at" DESC, "id" DESC);
CREATE UNIQUE INDEX "api_keys_tenant_id_id_key" ON "api_keys"("tenant_id", "id");
CREATE UNIQUE INDEX "api_keys_tenant_id_prefix_key" ON "api_keys"("tenant_id", "prefix");

ALTER TABLE "api_keys" ADD CONSTRAINT "api_keys_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;
-- The key outlives its creator: deleting the user clears created_by only, never tenant_id
-- (a column list on SET NULL needs PostgreSQL 15, our oldest supported server).
ALTER TABLE "api_keys" ADD CONSTRAINT "api_keys_tenant_id_created_by_fkey" FOREIGN KEY ("tenant_id", "created_by") REFERENCES "users"("tenant_id", "id") ON DELETE SET NULL ("created_by") ON UPDATE CASCADE;

-- Only the hash is stored: an HMAC-SHA-256 digest, 64 hex characters. Scopes are never empty.
ALTER TABLE "api_keys" ADD CONSTRAINT "api_keys_key_hash_hex" CHECK ("key_hash" ~ '^[0-9a-f]{64}$');
ALTER TABLE "api_keys" ADD CONSTRAINT "api_keys_scopes_present" CHECK ("scopes" IS NOT NULL AND cardinality("scopes") > 0);

-- Row-level security, grants and the tenant default, as for every tenant-owned table.
SELECT app_make_tenant_owned('api_keys');

-- The named lookups of tenants (20261130000000_tenancy_invariants) also return the tenant's own
-- request limit, and the platform admin can set it. Return types change, so the functions are
-- dropped and created again (same names, same grants).
DROP FUNCTION app_tenant_by_slug(text);
DROP FUNCTION app_tenant_by_domain(text);
DROP FUNCTION app_tenant_admin_page(integer, timestamptz, uuid);
DROP FUNCTION app_tenant_admin_set_status(text, text);

CREATE FUNCTION app_tenant_by_slug(p_slug text)
  RETURNS TABLE ("id" uuid, "slug" text, "name" text, "domain" text, "rateLimit" integer)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
  AS $$ SELECT t.id, t.slug, t.name, t.domain, t.rate_limit FROM public.tenants t WHERE t.slug = p_slug AND t.status = 'active' $$;

CREATE FUNCTION app_tenant_by_domain(p_domain text)
  RETURNS TABLE ("id" uuid, "slug" text, "name" text, "domain" text, "rateLimit" integer)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
  AS $$ SELECT t.id, t.slug, t.name, t.domain, t.rate_limit FROM public.tenants t WHERE t.domain = p_domain AND t.status = 'active' $$;

CREATE FUNCTION app_tenant_admin_page(p_take integer, p_before_created_at timestamptz, p_before_id uuid)
  RETURNS TABLE ("id" uuid, "slug" text, "name" text, "status" text, "domain" text, "rateLimit" integer, "createdAt" timestamptz, "updatedAt" timestamptz)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
  AS $$ SELECT t.id, t.slug, t.name, t.status::text, t.domain, t.rate_limit, t.created_at, t.updated_at
        FROM public.tenants t
        WHERE p_before_created_at IS NULL
           OR (t.created_at, t.id) < (p_before_created_at, p_before_id)
        ORDER BY t.created_at DESC, t.id DESC
        LIMIT least(greatest(p_take, 1), 101) $$;

-- Platform admin: status and/or request limit (p_set_rate_limit: whether p_rate_limit, NULL
-- included, is to be stored); no row when the slug is unknown.
CREATE FUNCTION app_tenant_admin_update(p_slug text, p_status text, p_set_rate_limit boolean, p_rate_limit integer)
  RETURNS TABLE ("id" uuid, "slug" text, "name" text, "status" text, "domain" text, "rateLimit" integer, "createdAt" timestamptz, "updatedAt" timestamptz)
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public
  AS $$ UPDATE public.tenants AS t
          SET status = coalesce(p_status::"TenantStatus", t.status),
              rate_limit = CASE WHEN p_set_rate_limit THEN p_rate_limit ELSE t.rate_limit END,
              updated_at = now()
        WHERE t.slug = p_slug
        RETURNING t.id, t.slug, t.name, t.status::text, t.domain, t.rate_limit, t.created_at, t.updated_at $$;

REVOKE EXECUTE ON FUNCTION app_tenant_by_slug(text), app_tenant_by_domain(text),
  app_tenant_admin_page(integer, timestamptz, uuid), app_tenant_admin_update(text, text, boolean, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_tenant_by_slug(text), app_tenant_by_domain(text),
  app_tenant_admin_page(integer, timestamptz, uuid), app_tenant_admin_update(text, text, boolean, integer) TO saas_app;
