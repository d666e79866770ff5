-- Retention in short transactions. audit_prune(cutoff) pruned every tenant in one transaction and held
-- each pruned tenant's chain head (its tenants row, which every audited write of that tenant locks)
-- until the end: the first run after retention was switched on, over months of events, would have
-- stopped every audited write of those tenants for the whole run. Now the caller
-- (src/audit/audit-store.ts) asks which tenants have old events, then prunes each in batches of at
-- most `batch` events, one transaction per batch; the pruned head moves with every batch, so the
-- chain verifies between batches as after a whole run.
DROP FUNCTION audit_prune(timestamptz);

-- Tenants with at least one event older than cutoff (one index probe per tenant).
CREATE FUNCTION audit_prune_candidates(cutoff timestamptz) RETURNS SETOF uuid
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
  AS $$
    SELECT t.id FROM public.tenants t
    WHERE EXISTS (SELECT 1 FROM public.audit_events e WHERE e.tenant_id = t.id AND e.at < cutoff)
  $$;
REVOKE ALL ON FUNCTION audit_prune_candidates(timestamptz) FROM PUBLIC;

-- Removes the tenant's oldest events, at most `batch` of them, up to its last event older than cutoff
-- (by seq: the chain stays contiguous), and stores the last removed one as the pruned head. Returns
-- how many it removed (0: nothing older than cutoff is left).
CREATE FUNCTION audit_prune_batch(tenant uuid, cutoff timestamptz, batch integer) RETURNS bigint
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public
  AS $$
  DECLARE
    pruned bigint;
    upto bigint;
    upto_hash text;
    n bigint;
  BEGIN
    IF batch IS NULL OR batch < 1 THEN
      RAISE EXCEPTION 'audit_prune_batch: batch must be at least 1 (got %)', batch USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- The tenant's head row first (the insert trigger's lock order): no event is linked meanwhile.
    SELECT t.audit_pruned_seq INTO pruned FROM public.tenants t WHERE t.id = tenant FOR NO KEY UPDATE;
    IF pruned IS NULL THEN
      RETURN 0;
    END IF;
    SELECT max(w.seq) INTO upto FROM (
      SELECT e.seq, e.at FROM public.audit_events e WHERE e.tenant_id = tenant AND e.seq > pruned ORDER BY e.seq LIMIT batch
    ) w WHERE w.at < cutoff;
    IF upto IS NULL THEN
      RETURN 0;
    END IF;
    SELECT e.hash INTO upto_hash FROM public.audit_events e WHERE e.tenant_id = tenant AND e.seq = upto;
    PERFORM set_config('app.append_only_pruning', 'audit_events', true);
    DELETE FROM public.audit_events e WHERE e.tenant_id = tenant AND e.seq <= upto;
    GET DIAGNOSTICS n = ROW_COUNT;
    UPDATE public.tenants SET audit_pruned_seq = upto, audit_pruned_hash = upto_hash WHERE id = tenant;
    PERFORM set_config('app.append_only_pruning', '', true);
    RETURN n;
  END
  $$;
REVOKE ALL ON FUNCTION audit_prune_batch(uuid, timestamptz, integer) FROM PUBLIC;
