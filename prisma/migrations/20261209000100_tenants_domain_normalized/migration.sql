-- Custom domains are stored as the Host header is read (src/tenancy/host.ts parseHost: lower case,
-- no trailing dot, no port), since app_tenant_by_domain compares them exactly. An operator who
-- stored `API.Acme-Corp.test` got a domain that no request could ever reach, silently; now the
-- stored ones are normalised once and a new one in another form is refused by the constraint.
-- (Two stored domains that differ only in case make this migration fail on the unique key: keep one.)
UPDATE "tenants" SET "domain" = lower(rtrim("domain", '.')) WHERE "domain" <> lower(rtrim("domain", '.'));
ALTER TABLE "tenants" ADD CONSTRAINT "tenants_domain_normalized"
  CHECK ("domain" = lower("domain") AND "domain" NOT LIKE '%.' AND position(':' IN "domain") = 0);
