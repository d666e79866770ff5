-- audit_verify compared the chain's end with the head recorded on the tenant by sequence number only
-- (reaches_head: a removed last event). The newest events, rewritten with their hashes recomputed,
-- linked to each other and to the untouched events before them, and verify answered ok: nothing
-- came after them to break. The insert trigger records the head's hash too (tenants.audit_head_hash,
-- which the API role cannot write); the walk's end must now match it, and when it does not, the
-- newest event is the one reported (which of the rewritten events came first cannot be told from
-- the chain). With no events left, the pruned head stands for the newest event. Unchanged besides.
CREATE OR REPLACE FUNCTION audit_verify(tenant uuid) RETURNS TABLE (checked bigint, first_bad_id uuid, reaches_head boolean)
  LANGUAGE sql STABLE
  AS $$
    WITH anchor AS (
      SELECT t.audit_pruned_seq, t.audit_pruned_hash, t.audit_seq, t.audit_head_hash FROM tenants t WHERE t.id = tenant
    ), walk AS (
      SELECT e.id, e.seq, e.hash, e.prev_hash, audit_event_hash(e) AS computed,
             lag(e.hash) OVER w AS previous_hash, lag(e.seq) OVER w AS previous_seq
      FROM audit_events e WHERE e.tenant_id = tenant WINDOW w AS (ORDER BY e.seq)
    ), newest AS (
      SELECT w.id, w.seq, w.hash FROM walk w ORDER BY w.seq DESC LIMIT 1
    )
    SELECT
      (SELECT count(*) FROM walk),
      coalesce(
        (SELECT w.id FROM walk w, anchor a
          WHERE w.computed <> w.hash
             OR w.prev_hash <> coalesce(w.previous_hash, a.audit_pruned_hash)
             OR w.seq <> coalesce(w.previous_seq, a.audit_pruned_seq) + 1
          ORDER BY w.seq LIMIT 1),
        (SELECT n.id FROM newest n, anchor a WHERE n.seq = a.audit_seq AND n.hash <> a.audit_head_hash)),
      (SELECT coalesce(n.seq, a.audit_pruned_seq) = a.audit_seq AND coalesce(n.hash, a.audit_pruned_hash) = a.audit_head_hash
         FROM anchor a LEFT JOIN newest n ON true)
  $$;
