// The database checks its own tenancy rules. Everything here is derived from the PostgreSQL
// catalog — never from a hand-written list of tables (SHARED_READABLE_TABLES lists exceptions only)
// — so a table added by any migration is checked the day it appears. Used by `npm run
// tenancy:check`, by the test suite, and at start by plugins/tenancy-invariants.ts (in production a
// violation keeps the server from becoming ready).
//
// A table is tenant-owned when it has a column `tenant_id`. The rules (README "Add a
// tenant-owned resource" says how to satisfy them; `SELECT app_make_tenant_owned('t')` does the first five):
import pg from 'pg'
import { withShortLivedClient } from './short-lived-client.ts'

/** The role the API runs as (created by the migrations). */
export const APP_ROLE = 'saas_app'

/** Every rule the check knows, with the sentence printed when a table breaks it. */
export const TENANCY_RULES = {
  'rls-enabled': 'row-level security is not enabled (ALTER TABLE … ENABLE ROW LEVEL SECURITY)',
  'rls-forced': 'row-level security is not forced (ALTER TABLE … FORCE ROW LEVEL SECURITY)',
  'tenant-policy': `no permissive policy for ${APP_ROLE} on all commands USING (tenant_id = app_current_tenant())`,
  'policy-with-check': 'the tenant policy has no WITH CHECK (tenant_id = app_current_tenant()): writes of another tenant\'s rows would not be refused',
  'extra-policy': `another permissive policy applies to ${APP_ROLE}: it would widen what the tenant policy allows`,
  grants: `${APP_ROLE} lacks SELECT, INSERT, UPDATE or DELETE on the table (SELECT or INSERT on an append-only table)`,
  truncate: `${APP_ROLE} may TRUNCATE the table (granted to it, to a role it belongs to, or to PUBLIC): TRUNCATE ignores row-level security and empties every tenant's rows at once. REVOKE TRUNCATE ON … FROM PUBLIC, ${APP_ROLE}`,
  'append-only': `an append-only table (trigger app_append_only, see app_make_append_only) is one ${APP_ROLE} may still UPDATE, DELETE or TRUNCATE, or its trigger is disabled`,
  'tenant-id-default': 'tenant_id is nullable or does not default to app_current_tenant()',
  'unique-tenant-id': 'no unique key on exactly (tenant_id, id): other tenant-owned tables cannot reference it with the tenant',
  'index-leading-tenant': 'an index does not lead with tenant_id (only the primary key may)',
  'fk-includes-tenant': 'a foreign key to a tenant-owned table does not include tenant_id = tenant_id: it could point at another tenant\'s row',
  'view-bypasses-rls': `${APP_ROLE} may read a view of a tenant-owned table that runs with its owner's rights (not security_invoker) or a materialized view: row-level security does not apply to it`,
  'definer-function': `${APP_ROLE} may call a SECURITY DEFINER function that is not in REVIEWED_DEFINER_FUNCTIONS (src/db/tenancy-invariants.ts), or a trigger runs one (a trigger runs its function whoever may EXECUTE it): it runs with its owner's rights, which bypass row-level security when the owner is a superuser or has BYPASSRLS, so it can read or change every tenant's rows. Make it SECURITY INVOKER, or, for a function no trigger runs, REVOKE EXECUTE ON FUNCTION … FROM PUBLIC, ${APP_ROLE}, or, once reviewed, list it there with the reason`,
  'table-rule': 'a rule (CREATE RULE) rewrites writes to this table: its actions run with the table owner\'s rights, past row-level security. Use a trigger whose function is SECURITY INVOKER instead',
  'unscoped-table': `${APP_ROLE} may read, change or delete the rows of this table, which has no tenant_id: nothing confines them to a tenant. Make it tenant-owned (app_make_tenant_owned), or, for platform data holding nothing of any tenant, list it in SHARED_READABLE_TABLES (src/db/tenancy-invariants.ts) with the reason`,
  'model-without-tenant': 'the Prisma model of this table has no tenantId, so request.db refuses it (a 500 on every route using it): add tenantId (README "Add a tenant-owned resource"), or, for platform data only platform code touches, add the model to PLATFORM_MODELS (src/tenancy/scoped-client.ts)',
  'app-role': `the role ${APP_ROLE} does not exist`,
  'prisma-client-stale': 'the generated Prisma client has no model for this tenant-owned table: run `npx prisma generate`',
} as const

export type TenancyRule = keyof typeof TENANCY_RULES

/** One broken rule: the table (schema-qualified unless public), the rule and what exactly is wrong. */
export interface Violation {
  table: string
  rule: TenancyRule
  detail: string
}

/** A table with a `tenant_id` column, as the catalog describes it. */
export interface TenantTable {
  /** schema-qualified unless in `public` */
  table: string
  oid: number
}

/**
 * Tables without tenant_id that the API's role may read, with exactly the privileges it may hold
 * (`SELECT` on the whole table, or on named columns: `SELECT (id)`) and why that is safe. The
 * tenants registry is not here: it has its own rules (forced RLS, the policy on `id`). Any other
 * privilege to SELECT, UPDATE, DELETE or TRUNCATE a relation without tenant_id breaks rule
 * `unscoped-table`; INSERT alone reads nothing.
 */
export const SHARED_READABLE_TABLES: Readonly<Record<string, { privileges: readonly string[], why: string }>> = {
  'pgboss.queue': { privileges: ['SELECT'], why: "pg-boss's queue definitions (names and options, no tenant data): a transactional enqueue reads them (src/jobs/runner.ts grantEnqueue)" },
  'pgboss.job': { privileges: ['SELECT (id)'], why: 'the enqueue inserts a job and reads back its id only (INSERT … RETURNING id); job data stays unreadable' },
}

/**
 * SECURITY DEFINER functions the API's role may call, each reviewed: what it lets the role do that
 * row-level security alone would not, and why that is confined. Keyed by schema, name and argument
 * types (`public.f(text, integer)`), qualified whatever the connection's search_path: a function of
 * the same name in another schema is not taken for a reviewed one. Any other definer function
 * callable by the role breaks rule `definer-function`: like a view with its owner's rights, it
 * bypasses row-level security.
 */
export const REVIEWED_DEFINER_FUNCTIONS: Readonly<Record<string, string>> = {
  'public.app_tenant_by_slug(text)': 'resolves a Host to its tenant before any tenant is current: one tenant\'s id and status',
  'public.app_tenant_by_domain(text)': 'the same for a custom domain',
  'public.app_tenant_signup(text, text)': 'creates a tenant (public signup), before any tenant exists',
  'public.app_tenant_admin_page(integer, timestamp with time zone, uuid)': 'the platform admin API\'s tenant list (behind the platform token): tenant registry fields only',
  'public.app_tenant_admin_update(text, text, boolean, integer)': 'the platform admin API\'s suspension and request-limit changes',
  'public.app_lock_audit_chain(uuid)': 'locks the tenant row as the audit chain lock; refuses another tenant than the transaction\'s own',
  'public.app_changes_after(pg_snapshot)': 'the change feed the instances read to drop cached entries: kinds and ids, no row data',
  'public.app_prune_change_feed()': 'removes change-feed entries older than its retention',
  'public.audit_events_link()': 'the audit events\' trigger: links each new event into its own tenant\'s chain (the tenant row\'s head, which the role cannot update)',
  'public.app_record_change()': 'the change feed\'s trigger on tenants, users, sessions and API keys: records the kind and id of the changed row, no row data',
}

const TENANT_EXPR = '(tenant_id = app_current_tenant())'
/** The tenants table itself is keyed by `id`: its policy must admit only the current tenant's row. */
const TENANTS_EXPR = '(id = app_current_tenant())'

type Queryable = Pick<pg.ClientBase, 'query'>

/** SQL: the name of relation `alias` (a pg_class row; `n` its pg_namespace row), schema-qualified unless in public. */
const relationName = (alias: string) => `CASE WHEN n.nspname = 'public' THEN ${alias}.relname ELSE n.nspname || '.' || ${alias}.relname END`
/** SQL: the namespace `n` is not one of PostgreSQL's own. */
const OUTSIDE_SYSTEM_SCHEMAS = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'"
/** SQL: whether the view `alias` (a pg_class row) has security_invoker set (PostgreSQL ≥ 15). */
const securityInvoker = (alias: string) =>
  `coalesce(array_to_string(${alias}.reloptions, ',') ~ '(^|,)security_invoker=(true|on|1|yes)(,|$)', false)`

/** Tables (and partitioned tables) with a `tenant_id` column, outside the system schemas. */
export async function tenantOwnedTables (db: Queryable): Promise<TenantTable[]> {
  const { rows } = await db.query<{ table: string; oid: number }>(`
    SELECT ${relationName('c')} AS table, c.oid::int AS oid
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
    WHERE c.relkind IN ('r', 'p') AND ${OUTSIDE_SYSTEM_SCHEMAS}
    ORDER BY 1`)
  return rows
}

/**
 * Every violation of the tenancy rules in the connected database ([] when all hold).
 * `target` is a connected pg client/pool, or a connection URL (a client is opened and closed,
 * its connect and each query bounded by `bounds`, ms; unbounded when absent).
 * Throws only when the database cannot be queried (or a bound ran out).
 */
export async function checkTenancyInvariants (target: Queryable | string, bounds: { connectTimeoutMs?: number, queryTimeoutMs?: number } = {}): Promise<Violation[]> {
  if (typeof target !== 'string') return collect(target)
  return await withShortLivedClient(target, collect, bounds.connectTimeoutMs, bounds.queryTimeoutMs)
}

async function collect (db: Queryable): Promise<Violation[]> {
  const violations: Violation[] = []
  const add = (table: string, rule: TenancyRule, detail: string = TENANCY_RULES[rule]) => violations.push({ table, rule, detail })

  const role = await db.query<{ oid: number }>('SELECT oid::int AS oid FROM pg_roles WHERE rolname = $1', [APP_ROLE])
  if (role.rowCount === 0) {
    add('*', 'app-role')
    return violations
  }
  const tables = await tenantOwnedTables(db)
  const owned = new Set(tables.map((t) => t.oid))
  // The tenant-owned tables and the tenants registry: what the policies and views are checked against.
  const ruled = [...owned, ...(await tenantsOid(db))]

  // Tables: RLS flags, grants, tenant_id's default and nullability.
  const { rows: facts } = await db.query<{
    oid: number;
    enabled: boolean;
    forced: boolean;
    reads_and_inserts: boolean;
    updates_and_deletes: boolean;
    may_change: boolean
    truncates: boolean;
    append_only: boolean;
    append_only_enabled: boolean;
    not_null: boolean;
    default_expr: string | null
  }>(`
    SELECT c.oid::int AS oid, c.relrowsecurity AS enabled, c.relforcerowsecurity AS forced,
      has_table_privilege($1, c.oid, 'SELECT') AND has_table_privilege($1, c.oid, 'INSERT') AS reads_and_inserts,
      has_table_privilege($1, c.oid, 'UPDATE') AND has_table_privilege($1, c.oid, 'DELETE') AS updates_and_deletes,
      -- Column privileges count: GRANT UPDATE (data) is a way to change rows too (review 58).
      has_any_column_privilege($1, c.oid, 'UPDATE') OR has_table_privilege($1, c.oid, 'DELETE') OR has_table_privilege($1, c.oid, 'TRUNCATE') AS may_change,
      has_table_privilege($1, c.oid, 'TRUNCATE') AS truncates,
      -- Append-only (app_make_append_only): a row trigger before UPDATE and DELETE calling the guard.
      EXISTS (SELECT 1 FROM pg_trigger tg WHERE tg.tgrelid = c.oid AND tg.tgname = 'app_append_only'
        AND tg.tgfoid = to_regproc('public.app_append_only_guard')) AS append_only,
      EXISTS (SELECT 1 FROM pg_trigger tg WHERE tg.tgrelid = c.oid AND tg.tgname = 'app_append_only'
        AND tg.tgfoid = to_regproc('public.app_append_only_guard') AND tg.tgenabled IN ('O', 'A')
        -- tgtype bits (pg_trigger.h): 1 row, 2 before, 8 delete, 16 update
        AND (tg.tgtype & (1 | 2 | 8 | 16)) = (1 | 2 | 8 | 16)) AS append_only_enabled,
      a.attnotnull AS not_null, pg_get_expr(d.adbin, d.adrelid) AS default_expr
    FROM pg_class c
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'
    LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
    WHERE c.oid = ANY($2::oid[])`, [APP_ROLE, [...owned]])
  // Policies that apply to the app role: granted to it, to a role it is a member of, or to PUBLIC.
  const { rows: policies } = await db.query<{ oid: number; name: string; permissive: boolean; cmd: string; using_expr: string | null; check_expr: string | null }>(`
    SELECT p.polrelid::int AS oid, p.polname AS name, p.polpermissive AS permissive, p.polcmd::text AS cmd,
      pg_get_expr(p.polqual, p.polrelid) AS using_expr, pg_get_expr(p.polwithcheck, p.polrelid) AS check_expr
    FROM pg_policy p
    WHERE p.polrelid = ANY($2::oid[])
      AND (0 = ANY(p.polroles) OR EXISTS (SELECT 1 FROM unnest(p.polroles) r WHERE r <> 0 AND pg_has_role($1, r, 'MEMBER')))`,
  [APP_ROLE, ruled])
  // Unique keys and indexes, as column-name arrays.
  const { rows: indexes } = await db.query<{ oid: number; name: string; columns: string[]; is_unique: boolean; is_primary: boolean; partial: boolean }>(`
    SELECT i.indrelid::int AS oid, ic.relname AS name, i.indisunique AS is_unique, i.indisprimary AS is_primary,
      i.indpred IS NOT NULL AS partial,
      ARRAY(SELECT coalesce(a.attname, '(expression)') FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
            LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.ord)::text[] AS columns
    FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
    WHERE i.indrelid = ANY($1::oid[])`, [[...owned]])
  // Every foreign key whose referenced table is tenant-owned, from any table.
  const { rows: foreignKeys } = await db.query<{ name: string; from_table: string; pairs: string[] }>(`
    SELECT con.conname AS name,
      ${relationName('c')} AS from_table,
      ARRAY(SELECT fa.attname || '=' || ta.attname
            FROM unnest(con.conkey, con.confkey) AS k(from_attnum, to_attnum)
            JOIN pg_attribute fa ON fa.attrelid = con.conrelid AND fa.attnum = k.from_attnum
            JOIN pg_attribute ta ON ta.attrelid = con.confrelid AND ta.attnum = k.to_attnum)::text[] AS pairs
    FROM pg_constraint con
    JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE con.contype = 'f' AND con.confrelid = ANY($1::oid[])
    ORDER BY 2, 1`, [[...owned]])

  for (const { table, oid } of tables) {
    const fact = facts.find((f) => f.oid === oid)!
    // Neither enabled nor forced, and no policy: the migration's one line was forgotten, which says
    // more than the five rules it would have met.
    const forgotten = !fact.enabled && !fact.forced && !policies.some((p) => p.oid === oid)
    if (!fact.enabled) add(table, 'rls-enabled', forgotten ? `${TENANCY_RULES['rls-enabled']}; nor anything else app_make_tenant_owned does: end the table's migration with \`SELECT app_make_tenant_owned('${table}');\`` : undefined)
    if (!fact.forced) add(table, 'rls-forced')
    checkPolicies(table, policies.filter((p) => p.oid === oid), TENANT_EXPR, add)
    if (!fact.reads_and_inserts || (!fact.append_only && !fact.updates_and_deletes)) add(table, 'grants')
    if (fact.append_only && (fact.may_change || !fact.append_only_enabled)) add(table, 'append-only')
    else if (fact.truncates) add(table, 'truncate')
    if (!fact.not_null || fact.default_expr !== 'app_current_tenant()') {
      add(table, 'tenant-id-default', `${TENANCY_RULES['tenant-id-default']} (default: ${fact.default_expr ?? 'none'}${fact.not_null ? '' : ', nullable'})`)
    }
    const own = indexes.filter((i) => i.oid === oid)
    const key = own.some((i) => i.is_unique && !i.partial && i.columns.length === 2 && i.columns.includes('tenant_id') && i.columns.includes('id'))
    if (!key) add(table, 'unique-tenant-id')
    for (const index of own) {
      if (!index.is_primary && index.columns[0] !== 'tenant_id') {
        add(table, 'index-leading-tenant', `index ${index.name} on (${index.columns.join(', ')}) does not lead with tenant_id`)
      }
    }
  }
  for (const fk of foreignKeys) {
    if (!fk.pairs.includes('tenant_id=tenant_id')) {
      add(fk.from_table, 'fk-includes-tenant', `foreign key ${fk.name} (${fk.pairs.join(', ')}) does not include tenant_id = tenant_id: it could point at another tenant's row`)
    }
  }
  // Views read their tables with the view owner's rights unless security_invoker is set
  // (PostgreSQL ≥ 15), and materialized views have no row-level security at all: either one,
  // readable by the app role, would show every tenant's rows.
  const { rows: views } = await db.query<{ view: string; kind: string; invoker: boolean }>(`
    SELECT DISTINCT ${relationName('v')} AS view, v.relkind::text AS kind,
      ${securityInvoker('v')} AS invoker
    FROM pg_depend d
    JOIN pg_rewrite r ON r.oid = d.objid AND d.classid = 'pg_rewrite'::regclass
    JOIN pg_class v ON v.oid = r.ev_class JOIN pg_namespace n ON n.oid = v.relnamespace
    WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = ANY($1::oid[]) AND v.oid <> d.refobjid
      AND v.relkind IN ('v', 'm') AND has_table_privilege($2, v.oid, 'SELECT')
    ORDER BY 1`, [ruled, APP_ROLE])
  for (const view of views) {
    if (view.kind === 'm' || !view.invoker) add(view.view, 'view-bypasses-rls', `${view.kind === 'm' ? 'materialized view' : 'view'} ${view.view} over tenant data is readable by ${APP_ROLE}${view.kind === 'm' ? '' : ' and runs with its owner\'s rights (set security_invoker = true)'}`)
  }
  // Relations without tenant_id that the API's role may read or change: nothing confines them to a
  // tenant. Tables, foreign tables, materialized views, and views that run with their owner's
  // rights (a security_invoker view is as confined as what it reads, which is checked itself; one
  // over tenant data is reported above). A privilege on some columns only is named with them:
  // `SELECT (id)`.
  const overTenantData = new Set(views.map((v) => v.view))
  const { rows: unscoped } = await db.query<{ table: string; privileges: string[] }>(`
    SELECT ${relationName('c')} AS table,
      ARRAY(SELECT CASE WHEN has_table_privilege($1, c.oid, p) THEN p
               ELSE p || ' (' || array_to_string(ARRAY(SELECT a.attname FROM pg_attribute a
                 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND has_column_privilege($1, c.oid, a.attnum, p)
                 ORDER BY a.attnum), ', ') || ')' END
            FROM unnest(ARRAY['SELECT', 'UPDATE', 'DELETE', 'TRUNCATE']) p
            WHERE has_table_privilege($1, c.oid, p) OR (p IN ('SELECT', 'UPDATE') AND has_any_column_privilege($1, c.oid, p)))::text[] AS privileges
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'f', 'm', 'v') AND ${OUTSIDE_SYSTEM_SCHEMAS}
      AND NOT (c.oid = ANY($2::oid[]))
      AND NOT (c.relkind = 'v' AND ${securityInvoker('c')})
      -- An extension's own relations (pg_stat_statements' view, granted to PUBLIC) are the extension's.
      AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_class'::regclass AND e.objid = c.oid AND e.deptype = 'e')
    ORDER BY 1`, [APP_ROLE, ruled])
  for (const { table, privileges } of unscoped) {
    const beyond = privileges.filter((p) => !(SHARED_READABLE_TABLES[table]?.privileges ?? []).includes(p))
    if (beyond.length && !overTenantData.has(table)) add(table, 'unscoped-table', `(${beyond.join(', ')} granted) ${TENANCY_RULES['unscoped-table']}`)
  }
  // Functions that run with their owner's rights: as a view with its owner's rights, one the API's
  // role may call reads and writes past row-level security (its owner is the migrations' role). A
  // trigger runs its function whoever may EXECUTE it (PostgreSQL checks that privilege when the
  // trigger is created, not when it fires), so a trigger's definer function counts, REVOKE or not.
  // An extension's own functions are the extension's.
  const { rows: definers } = await db.query<{ signature: string }>(`
    SELECT format('%I.%I(%s)', n.nspname, p.proname, oidvectortypes(p.proargtypes)) AS signature
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE p.prosecdef AND ${OUTSIDE_SYSTEM_SCHEMAS}
      AND (has_function_privilege($1, p.oid, 'EXECUTE') OR EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgfoid = p.oid AND NOT t.tgisinternal))
      AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_proc'::regclass AND e.objid = p.oid AND e.deptype = 'e')
    ORDER BY 1`, [APP_ROLE])
  for (const { signature } of definers) {
    if (REVIEWED_DEFINER_FUNCTIONS[signature] === undefined) add(signature, 'definer-function')
  }
  // Rules on tables (not a view's own SELECT rule): their actions run with the table owner's rights.
  const { rows: rewritten } = await db.query<{ table: string }>(`
    SELECT DISTINCT ${relationName('c')} AS table
    FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND ${OUTSIDE_SYSTEM_SCHEMAS}
    ORDER BY 1`)
  for (const { table } of rewritten) add(table, 'table-rule')
  // The registry of tenants is keyed by id, and under the same kind of policy.
  const [tenants] = await db.query<{ oid: number; enabled: boolean; forced: boolean; truncates: boolean }>(`
    SELECT c.oid::int AS oid, c.relrowsecurity AS enabled, c.relforcerowsecurity AS forced,
      has_table_privilege($1, c.oid, 'TRUNCATE') AS truncates
    FROM pg_class c WHERE c.oid = to_regclass('public.tenants')`, [APP_ROLE]).then((r) => r.rows)
  if (tenants) {
    if (!tenants.enabled) add('tenants', 'rls-enabled')
    if (!tenants.forced) add('tenants', 'rls-forced')
    if (tenants.truncates) add('tenants', 'truncate')
    checkPolicies('tenants', policies.filter((p) => p.oid === tenants.oid), TENANTS_EXPR, add)
  }
  return violations
}

async function tenantsOid (db: Queryable): Promise<number[]> {
  const { rows } = await db.query<{ oid: number | null }>('SELECT to_regclass(\'public.tenants\')::oid::int AS oid')
  return rows[0]?.oid ? [rows[0].oid] : []
}

function checkPolicies (
  table: string,
  policies: Array<{ name: string; permissive: boolean; cmd: string; using_expr: string | null; check_expr: string | null }>,
  expected: string,
  add: (table: string, rule: TenancyRule, detail?: string) => void
) {
  const permissive = policies.filter((p) => p.permissive)
  const tenantPolicy = permissive.find((p) => p.cmd === '*' && p.using_expr === expected)
  if (!tenantPolicy) add(table, 'tenant-policy', `no permissive policy for ${APP_ROLE} FOR ALL USING ${expected}`)
  else if (tenantPolicy.check_expr !== expected) {
    add(table, 'policy-with-check', `policy ${tenantPolicy.name} has ${tenantPolicy.check_expr ? `WITH CHECK ${tenantPolicy.check_expr}` : 'no WITH CHECK'}; it needs WITH CHECK ${expected}`)
  }
  for (const other of permissive) {
    if (other !== tenantPolicy) add(table, 'extra-policy', `policy ${other.name} (${other.cmd}) USING ${other.using_expr ?? '—'} also applies to ${APP_ROLE}`)
  }
}

/** One line per violation: `<table>: <rule> — <detail>`. */
export function formatViolations (violations: Violation[]): string {
  return violations.map((v) => `${v.table}: ${v.rule} — ${v.detail}`).join('\n')
}

/**
 * Tenant-owned tables of the catalog that the generated Prisma client does not know (the client
 * was not regenerated after a migration: `npx prisma generate`). `modelTables` are the database
 * names (`@@map`) of the client's models.
 */
export function tablesUnknownToClient (catalogTables: TenantTable[], modelTables: Iterable<string>): string[] {
  const known = new Set(modelTables)
  return catalogTables.map((t) => t.table).filter((table) => !known.has(table))
}
