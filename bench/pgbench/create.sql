-- pgbench script: the create route's statement without its audit event (what AUDIT=off sends),
-- for one of 200 bench tenants, as the API's role. See README "Benchmarks", round eight:
--   PGOPTIONS="-c role=saas_app" pgbench -n -h 127.0.0.1 -p 54331 -U postgres -M prepared \
--     -c 16 -j 2 -T 10 -f bench/pgbench/create.sql <database>
-- (the bench's embedded PostgreSQL running, PGPASSWORD from .data/bench/postgres/superuser-password;
-- on a copy of its database, `CREATE DATABASE exp TEMPLATE app`, when the schema is to be changed).
\set n random(1, 200)
SELECT set_config('app.tenant_id', id::text, false) FROM app_tenant_by_slug('bench-' || lpad(:n::text, 5, '0'));
INSERT INTO projects (tenant_id, name, description) VALUES (app_current_tenant(), 'bench-create', NULL)
  RETURNING id, name, description, created_at AS "createdAt", updated_at AS "updatedAt";
