-- The tenant's audit chain lock (the row lock on its tenant row that audit_events_link takes),
-- taken at the START of an audited statement (src/audit/audit-log.ts auditedChange). A statement
-- used to take its rows' locks first and the chain lock when its event was inserted, so two writes
-- of one tenant could wait on each other: a project's DELETE (the project, then the chain, then its
-- tasks by cascade) and a write to one of its tasks (the task, then the chain) deadlocked, each
-- cycle stalled every writer of the tenant for deadlock_timeout (1 s), and writers queued behind it
-- ran into statement_timeout (503). With the chain lock first in every audited statement, all of
-- them take their locks in one order; so do the multi-statement audited transactions, whose first
-- statement calls it (src/db/tenant-aware-pool.ts, withAuditChainLock). Answers true, so that it can
-- stand as a one-time filter: `WHERE (SELECT app_lock_audit_chain(<tenant>))`. Refuses another
-- tenant than the transaction's own (app.tenant_id) when one is set (always, with RLS on).
-- SECURITY DEFINER: the API role may not lock the tenant row itself (no UPDATE on the head columns).
CREATE FUNCTION app_lock_audit_chain(tenant uuid) RETURNS boolean
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public
  AS $$
  BEGIN
    IF public.app_current_tenant() IS DISTINCT FROM tenant AND public.app_current_tenant() IS NOT NULL THEN
      RAISE EXCEPTION 'the audit chain of another tenant' USING ERRCODE = 'insufficient_privilege';
    END IF;
    PERFORM 1 FROM public.tenants t WHERE t.id = tenant FOR NO KEY UPDATE;
    RETURN true;
  END
  $$;
REVOKE ALL ON FUNCTION app_lock_audit_chain(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_lock_audit_chain(uuid) TO saas_app;
