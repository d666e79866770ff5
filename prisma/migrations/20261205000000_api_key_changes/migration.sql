-- The feed of API-key changes (src/auth/key-change-feed.ts). Each instance caches key rows for up to
-- API_KEY_CACHE_TTL_MS, longer than the contract's 1 s revocation bound for keys; it may serve a row
-- older than 1 s only while it has read this feed within the last second, so a revocation made
-- anywhere (any instance, an operator's SQL, while the invalidation channel is down) stops the key
-- everywhere within 1 s. The feed is durable state, read by polling: nothing is lost when a message is.
--
-- Not tenant-owned: it holds key ids (UUIDs, no tenant data) and when they changed, one row per key.
-- saas_app has no grant on it; it reads it only through api_key_changes_since().
CREATE TABLE "api_key_changes" (
    "key_id" UUID NOT NULL,
    "changed_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "api_key_changes_pkey" PRIMARY KEY ("key_id")
);
CREATE INDEX "api_key_changes_changed_at_idx" ON "api_key_changes"("changed_at");
REVOKE ALL ON "api_key_changes" FROM PUBLIC;

-- Records a change of what a cached key row decides (revoked_at, expires_at, key_hash, scopes,
-- tenant_id) or the row's deletion; last_used_at writes (once a minute per key) are not changes.
-- SECURITY DEFINER: it runs in the changing transaction as the API role, which may not touch the
-- table itself. changed_at is the clock at the change (clock_timestamp), not the transaction's start:
-- closer to the commit, which the reader's overlap window has to cover. Rows older than a day go.
CREATE FUNCTION app_record_api_key_change() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public
  AS $$
  BEGIN
    INSERT INTO public.api_key_changes (key_id, changed_at) VALUES (OLD.id, clock_timestamp())
      ON CONFLICT (key_id) DO UPDATE SET changed_at = excluded.changed_at;
    DELETE FROM public.api_key_changes WHERE changed_at < clock_timestamp() - interval '1 day';
    RETURN NULL;
  END
  $$;
REVOKE ALL ON FUNCTION app_record_api_key_change() FROM PUBLIC;

CREATE TRIGGER api_keys_record_change
  AFTER UPDATE ON "api_keys" FOR EACH ROW
  WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at OR OLD.expires_at IS DISTINCT FROM NEW.expires_at
     OR OLD.key_hash IS DISTINCT FROM NEW.key_hash OR OLD.scopes IS DISTINCT FROM NEW.scopes
     OR OLD.tenant_id IS DISTINCT FROM NEW.tenant_id)
  EXECUTE FUNCTION app_record_api_key_change();
CREATE TRIGGER api_keys_record_delete
  AFTER DELETE ON "api_keys" FOR EACH ROW
  EXECUTE FUNCTION app_record_api_key_change();

-- What the instances poll: the database's clock (the caller's next `since`, minus its overlap
-- window) and the keys changed after `since` with when; always one row (an aggregate), and no key
-- when `since` is null (a first read only learns the clock: nothing was cached before it).
-- Times as ms since the epoch (float8): plain numbers through every driver.
CREATE FUNCTION app_api_key_changes_since(since timestamptz)
  RETURNS TABLE ("nowMs" float8, "keyIds" text[], "changedAtMs" float8[])
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
  AS $$ SELECT extract(epoch FROM statement_timestamp())::float8 * 1000,
               coalesce(array_agg(c.key_id::text), '{}'),
               coalesce(array_agg(extract(epoch FROM c.changed_at)::float8 * 1000), '{}')
        FROM public.api_key_changes c WHERE since IS NOT NULL AND c.changed_at > since $$;
REVOKE ALL ON FUNCTION app_api_key_changes_since(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_api_key_changes_since(timestamptz) TO saas_app;
