-- pgbench script: the create route's statement with its audit event, as src/audit/audit-log.ts
-- auditedChange sends it (one statement, a data-modifying CTE). Run as create.sql says; compare the
-- two scripts' tps in alternation (the WHERE is the tenant's chain lock taken first, as since round
-- sixteen of bench/HISTORY.md). Remove the rows afterwards:
--   DELETE FROM projects WHERE name = 'bench-create'   (the events stay: the log is append-only)
\set n random(1, 200)
SELECT set_config('app.tenant_id', id::text, false) FROM app_tenant_by_slug('bench-' || lpad(:n::text, 5, '0'));
WITH changed AS (
  INSERT INTO projects (tenant_id, name, description) VALUES (app_current_tenant(), 'bench-create', NULL)
  RETURNING id, name, description, created_at AS "createdAt", updated_at AS "updatedAt"
), logged AS (
  INSERT INTO audit_events (tenant_id, action, actor_type, actor_id, target_type, target_id, request_id, ip, user_agent, data)
  SELECT app_current_tenant(), 'project.created', 'user', NULL, 'project', changed.id, 'req-1', '127.0.0.1', 'autocannon',
    '{"name":"bench-create"}'::jsonb
  FROM changed RETURNING 1
) SELECT * FROM changed WHERE (SELECT app_lock_audit_chain(app_current_tenant()));
