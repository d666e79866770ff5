// The second tenancy layer as PostgreSQL itself holds it: row-level security enabled and FORCED on
// every tenant-owned table, read from the catalog, and exercised as the roles it is for — the tables'
// owner and saas_app, never a superuser (a superuser bypasses RLS, FORCE or not, so a test
// connected as one proves nothing about it). The database here is migrated by a non-superuser
// owner, as README "Deploying" recommends, so the owner's own access goes through its policy.
import { randomUUID } from 'node:crypto'
import pg from 'pg'
import t from 'tap'
import { applyMigrations } from '../src/db/migrate.ts'
import { adminQuery, adminUrl, databaseUrl } from './helper.ts'

const TENANT_OWNED = ['api_keys', 'audit_events', 'invitations', 'password_reset_tokens', 'projects', 'sessions', 'tasks', 'users'] // every table with a tenant_id (checked below: a new one must be added here)

/** A database created and migrated by a new non-superuser role; returns its URL as that role. */
async function migratedByOwner (t: { teardown(fn: () => unknown): void }) {
  const suffix = randomUUID().replaceAll('-', '').slice(0, 12)
  const role = `rls_owner_${suffix}`
  const database = `rls_${suffix}`
  await adminQuery(adminUrl, `CREATE ROLE ${role} LOGIN PASSWORD 'rls-owner' NOSUPERUSER NOBYPASSRLS`)
  // saas_app exists on this server already (the template's migration created it); granting it here
  // is what the migration does itself when it may (CREATEROLE).
  await adminQuery(adminUrl, `GRANT saas_app TO ${role}`)
  await adminQuery(adminUrl, `CREATE DATABASE ${database} OWNER ${role}`)
  t.teardown(async () => {
    await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`)
    await adminQuery(adminUrl, `DROP ROLE IF EXISTS ${role}`)
  })
  const url = new URL(databaseUrl(database))
  url.username = role
  url.password = 'rls-owner'
  await applyMigrations(url.toString())
  return url.toString()
}

t.test('RLS is enabled and forced on every tenant-owned table, with the tenant policy (catalog)', async (t) => {
  const url = await migratedByOwner(t)
  const owned = await adminQuery<{ table_name: string }>(url, "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' AND column_name = 'tenant_id' ORDER BY 1")
  t.same(owned.rows.map((r) => r.table_name), TENANT_OWNED, 'the tenant-owned tables')
  const flags = await adminQuery(url, 'SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = ANY($1) ORDER BY relname', [TENANT_OWNED])
  t.same(flags.rows, TENANT_OWNED.map((relname) => ({ relname, relrowsecurity: true, relforcerowsecurity: true })), 'ENABLE and FORCE ROW LEVEL SECURITY on each')
  const policies = await adminQuery<{ tablename: string; roles: string; qual: string; with_check: string }>(url,
    "SELECT tablename, roles::text, qual, with_check FROM pg_policies WHERE policyname = 'tenant_isolation' ORDER BY tablename")
  t.same(policies.rows.map((p) => p.tablename), TENANT_OWNED, 'a tenant_isolation policy on each')
  for (const p of policies.rows) {
    t.equal(p.roles, '{saas_app}', `${p.tablename}: for saas_app`)
    t.match(p.qual, /tenant_id = app_current_tenant\(\)/, `${p.tablename}: USING the current tenant`)
    t.match(p.with_check, /tenant_id = app_current_tenant\(\)/, `${p.tablename}: WITH CHECK the current tenant`)
  }
})

t.test('RLS as the roles it is for: the owner is subject to policies (FORCE), saas_app sees only the current tenant', async (t) => {
  const url = await migratedByOwner(t)
  const owner = new pg.Client({ connectionString: url })
  await owner.connect()
  t.teardown(() => owner.end())
  // Two tenants with a row in every tenant-owned table, written by the owner (its own policy).
  const ids: Record<string, string> = {}
  for (const slug of ['acme', 'globex']) {
    const tenant = (await owner.query('INSERT INTO tenants (slug, name) VALUES ($1, $1) RETURNING id', [slug])).rows[0].id
    const user = (await owner.query("INSERT INTO users (tenant_id, email, name, password_hash) VALUES ($1, 'a@x.example', 'A', 'x') RETURNING id", [tenant])).rows[0].id
    await owner.query("INSERT INTO sessions (tenant_id, user_id, refresh_token_hash, expires_at) VALUES ($1, $2, 'h', now() + interval '1 day')", [tenant, user])
    const project = (await owner.query("INSERT INTO projects (tenant_id, name) VALUES ($1, 'P') RETURNING id", [tenant])).rows[0].id
    await owner.query("INSERT INTO tasks (tenant_id, project_id, title) VALUES ($1, $2, 'T')", [tenant, project])
    await owner.query("INSERT INTO api_keys (tenant_id, name, prefix, key_hash, scopes, created_by) VALUES ($1, 'K', 'tk_live_000000000000', repeat('a', 64), '{projects:read}', $2)", [tenant, user])
    await owner.query("INSERT INTO audit_events (tenant_id, action, actor_type) VALUES ($1, 'project.created', 'system')", [tenant])
    await owner.query("INSERT INTO invitations (tenant_id, email, token_hash, expires_at) VALUES ($1, 'b@x.example', 'h', now() + interval '1 day')", [tenant])
    await owner.query("INSERT INTO password_reset_tokens (id, tenant_id, user_id, token_hash, expires_at) VALUES (gen_random_uuid(), $1, $2, 'h', now() + interval '1 day')", [tenant, user])
    ids[slug] = tenant
  }
  const count = async (table: string) => Number((await owner.query(`SELECT count(*) FROM ${table}`)).rows[0].count)

  // The owner: without its own policy, FORCE leaves it no row (NO FORCE would show it every row).
  for (const table of TENANT_OWNED) {
    t.equal(await count(table), 2, `${table}: the owner sees both tenants through its own policy`)
    await owner.query('BEGIN')
    await owner.query(`DROP POLICY owner_full_access ON ${table}`)
    t.equal(await count(table), 0, `${table}: without its policy the owner sees nothing: RLS is forced on the owner`)
    await owner.query('ROLLBACK')
  }

  // saas_app (what the API runs as): nothing without a tenant, only the tenant's rows with one, and
  // no row written for, or moved to, another tenant.
  for (const table of TENANT_OWNED) {
    await owner.query('BEGIN')
    await owner.query('SET LOCAL ROLE saas_app')
    t.equal(await count(table), 0, `${table}: saas_app sees nothing with no tenant set`)
    await owner.query("SELECT set_config('app.tenant_id', $1, true)", [ids.acme])
    t.equal(await count(table), 1, `${table}: saas_app sees only acme's row as acme`)
    t.equal(Number((await owner.query(`SELECT count(*) FROM ${table} WHERE tenant_id = $1`, [ids.globex])).rows[0].count), 0, `${table}: not globex's, even asked by id`)
    const moved = await owner.query(`UPDATE ${table} SET tenant_id = $1`, [ids.globex]).then(() => 'updated', (error) => error.code)
    t.equal(moved, '42501', `${table}: moving acme's row to globex is refused (WITH CHECK)`)
    await owner.query('ROLLBACK')
  }
  await owner.query('BEGIN')
  await owner.query('SET LOCAL ROLE saas_app')
  await owner.query("SELECT set_config('app.tenant_id', $1, true)", [ids.acme])
  const planted = await owner.query("INSERT INTO projects (tenant_id, name) VALUES ($1, 'planted')", [ids.globex]).then(() => 'inserted', (error) => error.code)
  t.equal(planted, '42501', 'inserting a row of globex as acme is refused (WITH CHECK)')
  await owner.query('ROLLBACK')
})
