-- Retention erased the evidence of a broken chain (review 90): audit_prune_batch deleted the oldest
-- events and stored the last one's own hash as the pruned head without checking them, so an event
-- changed or removed shortly before its cutoff was pruned away and verify answered ok from then
-- on. Each batch is now checked from the pruned head (audit_verify_range: every event's hash, its
-- link and its place in the sequence), and its last event against what comes after it — the next
-- event's link, or the tenant's head when it is the newest (review 91: an event rewritten with its
-- hash recomputed shows only there) — before anything is removed; and an event outside the chain
-- (at or below the pruned head, or beyond the head: written behind the triggers) stops the tenant's
-- pruning, as it is evidence too (review 92: such an event below the pruned head was deleted
-- unchecked). Only events above the pruned head are removed. A broken batch is kept whole and
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
    upto bigint;
    upto_hash text;
    through bigint;
    bad uuid;
    last_seq bigint;
    last_hash text;
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
    -- An event outside (pruned, head] is none the chain holds: evidence, kept with the rest.
    IF EXISTS (SELECT 1 FROM public.audit_events e WHERE e.tenant_id = tenant AND (e.seq <= pruned OR e.seq > head)) THEN
      RETURN -1;
    END IF;
    SELECT max(w.seq) INTO upto FROM (
      SELECT e.seq, e.at FROM public.audit_events e WHERE e.tenant_id = tenant AND e.seq > pruned AND e.seq <= head ORDER BY e.seq LIMIT batch
    ) w WHERE w.at < cutoff;
    IF upto IS NULL THEN
      RETURN 0;
    END IF;
    -- The batch and the event after it (its link to the batch's last, and its own hash), or, when the
    -- batch ends at the newest event, the tenant's head.
    through := CASE WHEN upto = head THEN upto ELSE upto + 1 END;
    SELECT v.first_bad_id, v.last_seq, v.last_hash INTO bad, last_seq, last_hash FROM public.audit_verify_range(tenant, pruned, pruned_hash, through) v;
    IF bad IS NOT NULL OR last_seq IS DISTINCT FROM through OR (upto = head AND last_hash IS DISTINCT FROM head_hash) THEN
      RETURN -1;
    END IF;
    SELECT e.hash INTO upto_hash FROM public.audit_events e WHERE e.tenant_id = tenant AND e.seq = upto;
    PERFORM set_config('app.append_only_pruning', 'audit_events', true);
    DELETE FROM public.audit_events e WHERE e.tenant_id = tenant AND e.seq > pruned AND e.seq <= upto;
    GET DIAGNOSTICS n = ROW_COUNT;
    UPDATE public.tenants SET audit_pruned_seq = upto, audit_pruned_hash = upto_hash WHERE id = tenant;
    PERFORM set_config('app.append_only_pruning', '', true);
    RETURN n;
  END
  $$;
REVOKE ALL ON FUNCTION audit_prune_batch(uuid, timestamptz, integer) FROM PUBLIC;
