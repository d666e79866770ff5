-- Issue 14: the audit log (shared/API.md "Audit events"). One append-only, tenant-owned table whose
-- rows form one hash chain per tenant.
--
-- Chain: event n of a tenant stores prev_hash = hash of event n-1 (or of the last pruned event, or
-- 64 zeros for the first) and hash = hex(SHA-256(prev_hash || canonical)), where canonical is
-- PostgreSQL's text of jsonb_build_array(seq, id, tenant_id, at in epoch ms, action, actor_type,
-- actor_id, target_type, target_id, request_id, ip, user_agent, data) (audit_event_hash below).
-- The head of each tenant's chain (last seq and hash) and its pruned head live on the tenant row,
-- in columns the API role cannot update (its UPDATE on tenants is granted column by column since
-- 20261130000000_tenancy_invariants: name, settings, updated_at). The insert trigger locks that row
-- (FOR NO KEY UPDATE: foreign-key checks of other tables, FOR KEY SHARE, do not wait for it), so
-- concurrent writers of one tenant queue on it and never fork the chain, writers of other tenants
-- never wait, and the lock lasts only as long as the writer's transaction — one statement when the
-- change and its event are one statement (src/audit/audit-log.ts).

-- AlterTable
ALTER TABLE "tenants" ADD COLUMN     "audit_head_hash" TEXT NOT NULL DEFAULT '0000000000000000000000000000000000000000000000000000000000000000',
ADD COLUMN     "audit_pruned_hash" TEXT NOT NULL DEFAULT '0000000000000000000000000000000000000000000000000000000000000000',
ADD COLUMN     "audit_pruned_seq" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "audit_seq" BIGINT NOT NULL DEFAULT 0;

-- CreateTable
CREATE TABLE "audit_events" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "tenant_id" UUID NOT NULL,
    "seq" BIGINT NOT NULL DEFAULT 0,
    "at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "action" TEXT NOT NULL,
    "actor_type" TEXT NOT NULL,
    "actor_id" UUID,
    "target_type" TEXT,
    "target_id" UUID,
    "request_id" TEXT,
    "ip" TEXT,
    "user_agent" TEXT,
    "data" JSONB NOT NULL DEFAULT '{}',
    "prev_hash" TEXT NOT NULL DEFAULT '',
    "hash" TEXT NOT NULL DEFAULT '',

    CONSTRAINT "audit_events_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "audit_events_tenant_id_at_id_idx" ON "audit_events"("tenant_id", "at" DESC, "id" DESC);

-- CreateIndex
CREATE UNIQUE INDEX "audit_events_tenant_id_id_key" ON "audit_events"("tenant_id", "id");

-- CreateIndex
CREATE UNIQUE INDEX "audit_events_tenant_id_seq_key" ON "audit_events"("tenant_id", "seq");

-- AddForeignKey
ALTER TABLE "audit_events" ADD CONSTRAINT "audit_events_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- The actor type is from a closed list (src/audit/actions.ts ACTOR_TYPES; test/audit-chain.test.ts
-- checks that this constraint admits exactly those). Actions are checked by the writer's types.
ALTER TABLE "audit_events" ADD CONSTRAINT "audit_events_actor_type" CHECK ("actor_type" IN ('user', 'api_key', 'platform', 'system'));

-- Row-level security, grants and the tenant default, as for every tenant-owned table.
SELECT app_make_tenant_owned('audit_events');

-- Append-only, written once for any table that needs it (README "Add a tenant-owned resource"):
-- the API role keeps SELECT and INSERT only, and a trigger refuses UPDATE and DELETE whatever the
-- grants become — even to the tables' owner, except two deletions that only the owner's own code
-- makes: retention (a SECURITY DEFINER function of the owner says so in a transaction-local
-- setting, app.append_only_pruning = the table's name) and the cascade of a deleted tenant
-- (foreign-key actions run as the referencing table's owner). `npm run tenancy:check` knows an
-- append-only table by this trigger, and then requires that saas_app cannot update or delete it.
CREATE FUNCTION app_append_only_guard() RETURNS trigger
  LANGUAGE plpgsql
  AS $$
  DECLARE
    owner name;
  BEGIN
    IF TG_OP = 'DELETE' THEN
      SELECT pg_get_userbyid(c.relowner) INTO owner FROM pg_class c WHERE c.oid = TG_RELID;
      IF current_user = owner AND (
        current_setting('app.append_only_pruning', true) = TG_TABLE_NAME
        OR NOT EXISTS (SELECT 1 FROM public.tenants t WHERE t.id = OLD.tenant_id)) THEN
        RETURN OLD;
      END IF;
    END IF;
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
  END
  $$;

CREATE FUNCTION app_make_append_only(target regclass) RETURNS void
  LANGUAGE plpgsql
  AS $$
BEGIN
  EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON %s FROM saas_app', target);
  EXECUTE format('DROP TRIGGER IF EXISTS app_append_only ON %s', target);
  EXECUTE format('CREATE TRIGGER app_append_only BEFORE UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION app_append_only_guard()', target);
END
$$;
COMMENT ON FUNCTION app_make_append_only(regclass) IS
  'Makes a tenant-owned table append-only for the API role: SELECT and INSERT only, and a trigger refusing UPDATE and DELETE.';
REVOKE EXECUTE ON FUNCTION app_make_append_only(regclass) FROM PUBLIC;

SELECT app_make_append_only('audit_events');

-- The hash of one event (see the header). Epoch milliseconds, not the timestamp's text, so the
-- session's TimeZone cannot change it.
CREATE FUNCTION audit_event_hash(e "audit_events") RETURNS text
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$
    SELECT encode(sha256(convert_to(e.prev_hash || jsonb_build_array(
      e.seq, e.id, e.tenant_id, (extract(epoch FROM e.at) * 1000)::bigint, e.action, e.actor_type, e.actor_id,
      e.target_type, e.target_id, e.request_id, e.ip, e.user_agent, e.data)::text, 'UTF8')), 'hex')
  $$;
GRANT EXECUTE ON FUNCTION audit_event_hash("audit_events") TO saas_app;

-- Links a new event into its tenant's chain. SECURITY DEFINER: it alone updates the head columns
-- (the API role cannot); the row lock it takes on the tenant serializes that tenant's writers
-- until their transaction ends (under SERIALIZABLE a concurrent head change is a serialization
-- failure, which the caller retries), and the RLS check on the inserted row still applies after it.
CREATE FUNCTION audit_events_link() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public
  AS $$
  DECLARE
    head record;
  BEGIN
    SELECT t.audit_seq, t.audit_head_hash INTO head FROM public.tenants t WHERE t.id = NEW.tenant_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'audit event of an unknown tenant' USING ERRCODE = 'foreign_key_violation';
    END IF;
    NEW.seq := head.audit_seq + 1;
    NEW.prev_hash := head.audit_head_hash;
    -- Taken after the lock: time order follows chain order.
    NEW.at := date_trunc('milliseconds', clock_timestamp());
    NEW.hash := public.audit_event_hash(NEW);
    UPDATE public.tenants SET audit_seq = NEW.seq, audit_head_hash = NEW.hash WHERE id = NEW.tenant_id;
    RETURN NEW;
  END
  $$;
REVOKE ALL ON FUNCTION audit_events_link() FROM PUBLIC;
CREATE TRIGGER audit_events_link BEFORE INSERT ON "audit_events" FOR EACH ROW EXECUTE FUNCTION audit_events_link();

-- Retention: removes, for every tenant, the events older than `cutoff` (a prefix of its chain, by
-- seq) and stores the last removed event's seq and hash as the pruned head, from which the
-- remaining chain verifies. Returns the number of events removed. Only the tables' owner may run it
-- (the retention timer connects with DATABASE_URL): the API's role could otherwise erase every
-- tenant's log with a cutoff of its choosing and move the pruned heads so that verify still passes.
CREATE FUNCTION audit_prune(cutoff timestamptz) RETURNS bigint
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public
  AS $$
  DECLARE
    tenant record;
    last record;
    removed bigint := 0;
    n bigint;
  BEGIN
    -- One pruning at a time, across instances.
    PERFORM pg_advisory_xact_lock(872014, 1);
    PERFORM set_config('app.append_only_pruning', 'audit_events', true);
    FOR tenant IN SELECT DISTINCT e.tenant_id FROM public.audit_events e WHERE e.at < cutoff LOOP
      -- The tenant's head row first (the insert trigger's lock order): no event is linked meanwhile.
      PERFORM 1 FROM public.tenants t WHERE t.id = tenant.tenant_id FOR NO KEY UPDATE;
      SELECT e.seq, e.hash INTO last FROM public.audit_events e
        WHERE e.tenant_id = tenant.tenant_id AND e.at < cutoff ORDER BY e.seq DESC LIMIT 1;
      DELETE FROM public.audit_events e WHERE e.tenant_id = tenant.tenant_id AND e.seq <= last.seq;
      GET DIAGNOSTICS n = ROW_COUNT;
      removed := removed + n;
      UPDATE public.tenants SET audit_pruned_seq = last.seq, audit_pruned_hash = last.hash WHERE id = tenant.tenant_id;
    END LOOP;
    PERFORM set_config('app.append_only_pruning', '', true);
    RETURN removed;
  END
  $$;
REVOKE ALL ON FUNCTION audit_prune(timestamptz) FROM PUBLIC;

-- Verification of one tenant's chain, in one pass over its events (by seq): the first event whose
-- own hash, link to its predecessor (or to the pruned head) or sequence number is wrong, and whether
-- the chain still reaches the head recorded on the tenant (a removed last event). Runs as the caller
-- (RLS applies: the API role sees its current tenant's events and tenant row only).
CREATE FUNCTION audit_verify(tenant uuid) RETURNS TABLE (checked bigint, first_bad_id uuid, reaches_head boolean)
  LANGUAGE sql STABLE
  AS $$
    WITH anchor AS (
      SELECT t.audit_pruned_seq, t.audit_pruned_hash, t.audit_seq FROM tenants t WHERE t.id = tenant
    ), walk AS (
      SELECT e.id, e.seq, e.hash, e.prev_hash, audit_event_hash(e) AS computed,
             lag(e.hash) OVER w AS previous_hash, lag(e.seq) OVER w AS previous_seq
      FROM audit_events e WHERE e.tenant_id = tenant WINDOW w AS (ORDER BY e.seq)
    )
    SELECT
      (SELECT count(*) FROM walk),
      (SELECT w.id FROM walk w, anchor a
        WHERE w.computed <> w.hash
           OR w.prev_hash <> coalesce(w.previous_hash, a.audit_pruned_hash)
           OR w.seq <> coalesce(w.previous_seq, a.audit_pruned_seq) + 1
        ORDER BY w.seq LIMIT 1),
      (SELECT coalesce(max(w.seq), a.audit_pruned_seq) = a.audit_seq FROM anchor a LEFT JOIN walk w ON true GROUP BY a.audit_pruned_seq, a.audit_seq)
  $$;
GRANT EXECUTE ON FUNCTION audit_verify(uuid) TO saas_app;
