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

-- Row-level security, as for every tenant-owned table.
GRANT SELECT, INSERT, UPDATE, DELETE ON "api_keys" TO saas_app;
ALTER TABLE "api_keys" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "api_keys" FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON "api_keys" TO saas_app
  USING ("tenant_id" = app_current_tenant()) WITH CHECK ("tenant_id" = app_current_tenant());
CREATE POLICY owner_full_access ON "api_keys" TO CURRENT_USER USING (true) WITH CHECK (true);
