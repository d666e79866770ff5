-- The change feed (src/cluster/change-feed.ts). Each instance caches, per request path, what decides
-- whether a request is let in: the tenant of a Host, a session's state (its user's role and
-- activity), an API key's row. The contract bounds how long a change may take to hold everywhere
-- (1 s; 5 s at worst for tenants and sessions while instances cannot notify each other). The
-- invalidation channel tells the other instances at once, but can lose a message; this feed is
-- durable state that every instance polls, so it cannot. While an instance has read it within the
-- last second, it may keep those entries far longer (CHANGE_FEED_CACHE_TTL_MS) and still honour the
-- bounds; when it has not, the caches fall back to their own short TTLs by themselves.
--
-- Not tenant-owned: it holds which kind of row changed, that row's id (UUIDs, no tenant data) and
-- when, one row per changed row. saas_app has no grant on it; it reads it only through
-- app_changes_since().
CREATE TABLE "change_feed" (
    "kind" TEXT NOT NULL,
    "subject_id" UUID NOT NULL,
    "changed_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "change_feed_pkey" PRIMARY KEY ("kind", "subject_id")
);
CREATE INDEX "change_feed_changed_at_idx" ON "change_feed"("changed_at");
ALTER TABLE "change_feed" ADD CONSTRAINT "change_feed_kind" CHECK ("kind" IN ('tenant', 'session', 'user', 'api_key'));
REVOKE ALL ON "change_feed" FROM PUBLIC;

-- Records that a row changed what a cached entry decides (the triggers below say which columns), or
-- was deleted. TG_ARGV[0] is the kind. SECURITY DEFINER: it runs in the changing transaction as the
-- API role, which may not touch the table itself. changed_at is the clock at the change
-- (clock_timestamp), not the transaction's start: closer to the commit, which the reader's overlap
-- window has to cover. It touches only the changed subject's own row (an index probe): no pruning
-- here, which would scan the table and lock rows of other tenants' changes in every changing
-- transaction (app_prune_change_feed below does it, from the instances, now and then).
CREATE FUNCTION app_record_change() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public
  AS $$
  BEGIN
    INSERT INTO public.change_feed (kind, subject_id, changed_at) VALUES (TG_ARGV[0], OLD.id, clock_timestamp())
      ON CONFLICT (kind, subject_id) DO UPDATE SET changed_at = excluded.changed_at;
    RETURN NULL;
  END
  $$;
REVOKE ALL ON FUNCTION app_record_change() FROM PUBLIC;

-- Removes changes older than a day (an index range scan: now() is stable, so the index is used),
-- at most 10,000 per call; returns how many. Called by the instances every few minutes.
CREATE FUNCTION app_prune_change_feed() RETURNS bigint
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public
  AS $$
    WITH gone AS (
      DELETE FROM public.change_feed c WHERE (c.kind, c.subject_id) IN (
        SELECT o.kind, o.subject_id FROM public.change_feed o WHERE o.changed_at < now() - interval '1 day' LIMIT 10000)
      RETURNING 1)
    SELECT count(*) FROM gone
  $$;
REVOKE ALL ON FUNCTION app_prune_change_feed() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_prune_change_feed() TO saas_app;

-- Watches `target` for the kind: an UPDATE that changes one of `columns` (what a cached entry of
-- that kind reads), and every DELETE, is recorded. One definition for every watched table.
CREATE FUNCTION app_record_changes_of(target regclass, kind text, columns text[]) RETURNS void
  LANGUAGE plpgsql AS $$
  DECLARE
    tbl text := (SELECT c.relname FROM pg_class c WHERE c.oid = target);
    changed text := (SELECT string_agg(format('OLD.%1$I IS DISTINCT FROM NEW.%1$I', col), ' OR ') FROM unnest(columns) col);
  BEGIN
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %s FOR EACH ROW WHEN (%s) EXECUTE FUNCTION app_record_change(%L)',
      tbl || '_record_change', target, changed, kind);
    EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %s FOR EACH ROW EXECUTE FUNCTION app_record_change(%L)',
      tbl || '_record_delete', target, kind);
  END
  $$;
REVOKE ALL ON FUNCTION app_record_changes_of(regclass, text, text[]) FROM PUBLIC;

-- Tenants: what the Host lookup returns (app_tenant_by_slug/by_domain) and whether it is active.
SELECT app_record_changes_of('tenants', 'tenant', ARRAY['status', 'slug', 'domain', 'name', 'rate_limit']);
-- Sessions: what a session's cached state reads (src/auth/sessions.ts loadSessionState); a refresh
-- rotating the refresh token's hash is no change of it.
SELECT app_record_changes_of('sessions', 'session', ARRAY['revoked_at', 'expires_at', 'user_id', 'tenant_id']);
-- Users: their role and activity, read into every session's state.
SELECT app_record_changes_of('users', 'user', ARRAY['role', 'active', 'tenant_id']);
-- API keys: what a cached key row decides (revocation, expiry, hash, scopes); last_used_at writes
-- (once a minute per key) are no change.
SELECT app_record_changes_of('api_keys', 'api_key', ARRAY['revoked_at', 'expires_at', 'key_hash', 'scopes', 'tenant_id']);

-- What the instances poll: the database's clock (the caller's next `since`, minus its overlap
-- window) and the rows changed after `since`, with when; always one row (an aggregate), and no
-- change when `since` is null (a first read only learns the clock; the instance then drops what it
-- cached before). `since` is clamped to the last two minutes: the API role may learn which ids
-- changed lately, not a day of every tenant's changes.
-- Times as ms since the epoch (float8): plain numbers through every driver.
CREATE FUNCTION app_changes_since(since timestamptz)
  RETURNS TABLE ("nowMs" float8, "kinds" text[], "ids" text[], "changedAtMs" float8[])
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
  AS $$ SELECT extract(epoch FROM statement_timestamp())::float8 * 1000,
               coalesce(array_agg(c.kind), '{}'),
               coalesce(array_agg(c.subject_id::text), '{}'),
               coalesce(array_agg(extract(epoch FROM c.changed_at)::float8 * 1000), '{}')
        FROM public.change_feed c
        WHERE since IS NOT NULL AND c.changed_at > greatest(since, statement_timestamp() - interval '2 minutes') $$;
REVOKE ALL ON FUNCTION app_changes_since(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_changes_since(timestamptz) TO saas_app;
