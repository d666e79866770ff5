-- audit_verify walked a tenant's whole chain in one statement: at about 3 s per 86,000 events, a
-- log of some 140,000 events outran the statement timeout (DB_STATEMENT_TIMEOUT_MS, 5 s), and
-- verify answered 503 for ever. The walk now goes by ranges of `seq` (an index range scan on
-- (tenant_id, seq)), one statement each, from the anchor the caller carries: the seq and hash of
-- the last event checked (or the pruned head); through_seq ends the range. Each range checks every event's own hash, its link
-- to the one before (the carried hash for the first) and the sequence (no gap); src/audit/
-- audit-store.ts verifyChain loops over ranges up to the head read at the start, then compares the
-- last event with that head (seq and its hash: the one-statement walk compared the seq only, so the
-- newest events rewritten with recomputed hashes verified as ok). audit_verify is dropped: nothing
-- calls it any more, and a second copy of the walk would drift from this one.
CREATE FUNCTION audit_verify_range(tenant uuid, after_seq bigint, after_hash text, through_seq bigint)
  RETURNS TABLE (checked bigint, first_bad_id uuid, last_id uuid, last_seq bigint, last_hash text)
  LANGUAGE sql STABLE
  AS $$
    WITH walk AS (
      SELECT e.id, e.seq, e.hash, e.prev_hash, audit_event_hash(e) AS computed,
             lag(e.hash) OVER w AS previous_hash, lag(e.seq) OVER w AS previous_seq
      FROM audit_events e WHERE e.tenant_id = tenant AND e.seq > after_seq AND e.seq <= through_seq
      WINDOW w AS (ORDER BY e.seq)
    ), newest AS (
      SELECT w.id, w.seq, w.hash FROM walk w ORDER BY w.seq DESC LIMIT 1
    )
    SELECT
      (SELECT count(*) FROM walk),
      (SELECT w.id FROM walk w
        WHERE w.computed <> w.hash
           OR w.prev_hash <> coalesce(w.previous_hash, after_hash)
           OR w.seq <> coalesce(w.previous_seq, after_seq) + 1
        ORDER BY w.seq LIMIT 1),
      (SELECT n.id FROM newest n),
      coalesce((SELECT n.seq FROM newest n), after_seq),
      coalesce((SELECT n.hash FROM newest n), after_hash)
  $$;
GRANT EXECUTE ON FUNCTION audit_verify_range(uuid, bigint, text, bigint) TO saas_app;

DROP FUNCTION audit_verify(uuid);
