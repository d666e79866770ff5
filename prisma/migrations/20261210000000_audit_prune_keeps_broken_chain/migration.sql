-- Retention erased the evidence of a broken chain (review 90): audit_prune_batch deleted the oldest
-- events and stored the last one's own hash as the pruned head without checking them, so an event
-- changed or removed shortly before its cutoff was pruned away and verify answered ok from then
-- on. Each batch is now checked from the pruned head (audit_verify_range: every event's hash, its
-- link and its place in the sequence), and its last event against what comes after it — the next
-- event's link, or the tenant's head when it is the newest (review 91: an event rewritten with its
-- hash recomputed shows only there) — before anything is removed; a broken batch is kept whole and
-- the function answers -1, so the tenant's log keeps what verify reports until an operator looks
-- (src/audit/audit-store.ts logs it at every run). The check runs under the tenant's head lock, as
-- the removal does: one batch (PRUNE_BATCH events) at most.
CREATE OR REPLACE FUNCTION audit_prune_batch(tenant uuid, cutoff timestamptz, batch integer) RETURNS bigint
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public
  AS $$
  DECLARE
    pruned bigint;
    pruned_hash text;
    head bigint;
    head_hash text;
    next_seq bigint;
    next_prev text;
    upto bigint;
    upto_hash text;
    bad uuid;
    n bigint;
  BEGIN
    IF batch IS NULL OR batch < 1 THEN
      RAISE EXCEPTION 'audit_prune_batch: batch must be at least 1 (got %)', batch USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- The tenant's head row first (the insert trigger's lock order): no event is linked meanwhile.
    SELECT t.audit_pruned_seq, t.audit_pruned_hash, t.audit_seq, t.audit_head_hash INTO pruned, pruned_hash, head, head_hash
      FROM public.tenants t WHERE t.id = tenant FOR NO KEY UPDATE;
    IF pruned IS NULL THEN
      RETURN 0;
    END IF;
    SELECT max(w.seq) INTO upto FROM (
      SELECT e.seq, e.at FROM public.audit_events e WHERE e.tenant_id = tenant AND e.seq > pruned ORDER BY e.seq LIMIT batch
    ) w WHERE w.at < cutoff;
    IF upto IS NULL THEN
      RETURN 0;
    END IF;
    SELECT v.first_bad_id, v.last_hash INTO bad, upto_hash FROM public.audit_verify_range(tenant, pruned, pruned_hash, upto) v;
    IF bad IS NOT NULL THEN
      RETURN -1;
    END IF;
    -- The batch's last event must be the one its successor links to (or the head: the newest).
    IF upto = head THEN
      IF upto_hash IS DISTINCT FROM head_hash THEN
        RETURN -1;
      END IF;
    ELSE
      SELECT e.seq, e.prev_hash INTO next_seq, next_prev FROM public.audit_events e
        WHERE e.tenant_id = tenant AND e.seq > upto ORDER BY e.seq LIMIT 1;
      IF next_seq IS DISTINCT FROM upto + 1 OR next_prev IS DISTINCT FROM upto_hash THEN
        RETURN -1;
      END IF;
    END IF;
    PERFORM set_config('app.append_only_pruning', 'audit_events', true);
    DELETE FROM public.audit_events e WHERE e.tenant_id = tenant AND e.seq <= upto;
    GET DIAGNOSTICS n = ROW_COUNT;
    UPDATE public.tenants SET audit_pruned_seq = upto, audit_pruned_hash = upto_hash WHERE id = tenant;
    PERFORM set_config('app.append_only_pruning', '', true);
    RETURN n;
  END
  $$;
REVOKE ALL ON FUNCTION audit_prune_batch(uuid, timestamptz, integer) FROM PUBLIC;
