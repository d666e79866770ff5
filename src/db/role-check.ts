// Fail closed on the database role: row-level security only protects anything if the role the API's
// queries really run as is subject to it. A superuser, a role with BYPASSRLS, the tables' owner (or
// a member inheriting the owner's rights) or a role granted a policy that ignores the tenant sees
// every tenant's rows — and nothing would show it: queries keep working. This module asks the
// database, over the API's own pool (so exactly as the pool connects: through PgBouncer, with the
// login of APP_DATABASE_URL), who it is and what it can do, at start-up.
import type { Config } from '../config.ts'
import { ConfigError } from '../config.ts'

/** What the database says about the role the API's queries run as. */
export interface DatabaseRoleReport {
  /** `current_user` of the API's pool connections. */
  role: string
  /** `session_user`: the login (differs from `role` when a startup option switched roles). */
  login: string
  /** Each reason this role is not confined by row-level security; empty when it is. */
  problems: string[]
}

/** Runs one SQL statement (no parameters) over the API's pool and returns its rows. */
export type RoleCheckQuery = (sql: string) => Promise<Record<string, unknown>[]>

// One statement, so that through a transaction pooler every answer comes from one server session.
// "Tenant-owned" tables are those of the current schema with a tenant_id column or RLS enabled.
// pg_has_role(…, 'USAGE') is membership with inheritance (the rights a role really uses).
const ROLE_QUERY = `
WITH me AS (SELECT current_user::text AS role, session_user::text AS login),
tenant_tables AS (
  SELECT c.oid, c.relname::text AS name, c.relowner, c.relrowsecurity, c.relforcerowsecurity
  FROM pg_class c
  WHERE c.relkind IN ('r', 'p') AND c.relnamespace = current_schema()::regnamespace
    AND (c.relrowsecurity OR EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped))
)
SELECT
  me.role, me.login,
  r.rolsuper AS superuser,
  r.rolbypassrls AS bypassrls,
  (SELECT count(*) FROM tenant_tables)::int AS tenant_tables,
  ARRAY(SELECT t.name || ' (owner ' || pg_get_userbyid(t.relowner) || ')' FROM tenant_tables t
        WHERE pg_has_role(current_user, t.relowner, 'USAGE') ORDER BY 1) AS owned,
  ARRAY(SELECT t.name || '.' || p.polname FROM tenant_tables t JOIN pg_policy p ON p.polrelid = t.oid
        WHERE p.polpermissive
          AND (p.polroles = '{0}' OR EXISTS (SELECT 1 FROM unnest(p.polroles) pr WHERE pr <> 0 AND pg_has_role(current_user, pr, 'USAGE')))
          AND coalesce(pg_get_expr(p.polqual, p.polrelid), '') NOT LIKE '%app_current_tenant()%'
        ORDER BY 1) AS unconfined_policies
FROM me JOIN pg_roles r ON r.rolname = me.role`

/**
 * Asks the database who the API's queries run as and whether row-level security binds that role.
 * @param query runs SQL over the API's own pool (not a separate connection: the pool's login,
 *   startup parameters and pooler are what matter).
 * @throws whatever `query` throws (database unreachable, …).
 */
export async function inspectDatabaseRole (query: RoleCheckQuery): Promise<DatabaseRoleReport> {
  const [row] = await query(ROLE_QUERY)
  if (!row) throw new Error('role check: current_user has no pg_roles row')
  const list = (value: unknown) => (Array.isArray(value) ? (value as string[]) : [])
  const problems: string[] = []
  if (row.superuser) problems.push('it is a superuser (superusers bypass row-level security)')
  if (row.bypassrls) problems.push('it has BYPASSRLS')
  const owned = list(row.owned)
  if (owned.length) problems.push(`it owns, or inherits the rights of the owner of, tenant-owned tables: ${owned.join(', ')}`)
  const unconfined = list(row.unconfined_policies)
  if (unconfined.length) problems.push(`policies that ignore the tenant apply to it: ${unconfined.join(', ')}`)
  if (row.tenant_tables === 0) problems.push('no tenant-owned table found in its schema (migrations not applied, or the wrong database/search_path)')
  // Table rules (RLS enabled and forced, policies, keys) are the tenancy check's
  // (src/db/tenancy-invariants.ts: readiness 503 in production); this check is about the role.
  return { role: String(row.role), login: String(row.login), problems }
}

/** The server refuses to start: the API's database role is not confined by row-level security. */
export class UnsafeDatabaseRoleError extends ConfigError {
  override name = 'UnsafeDatabaseRoleError'
}

/**
 * The server refuses to start: PostgreSQL turned the API's login away for good — SQLSTATE class 28
 * (no such role, a wrong password, not allowed to log in) or 3D000 (no such database) — a mistake
 * in APP_DATABASE_URL that waiting does not mend, unlike an outage.
 */
export class DatabaseLoginRefusedError extends ConfigError {
  override name = 'DatabaseLoginRefusedError'
}

/**
 * DatabaseLoginRefusedError when `error` (pg's, or Prisma's wrapping of it) is PostgreSQL refusing
 * the login for good (see there); undefined for anything else. The message is PostgreSQL's (it
 * names the role or database, never a password).
 */
export function loginRefusal (error: unknown): DatabaseLoginRefusedError | undefined {
  const cause = (error as { meta?: { driverAdapterError?: { cause?: { originalCode?: unknown, originalMessage?: unknown } } } })?.meta?.driverAdapterError?.cause
  const code = String(cause?.originalCode ?? (error as { code?: unknown })?.code ?? '')
  if (!/^(28|3D000$)/.test(code)) return undefined
  const reason = String(cause?.originalMessage ?? (error as Error)?.message ?? '')
  return new DatabaseLoginRefusedError(`Refusing to start (NODE_ENV=production): PostgreSQL refused the API's login (APP_DATABASE_URL): ${reason} (SQLSTATE ${code}). Check the login, its password and the database name.`)
}

/**
 * The refusal a failed role check means for a process starting with `config`, or undefined when
 * the database could not be read yet (an outage: wait for it). What waiting cannot mend: an unsafe
 * role (UnsafeDatabaseRoleError, thrown in production only) and, in production, a login or
 * database PostgreSQL refuses (DatabaseLoginRefusedError). Shared by the server
 * (plugins/tenancy-invariants.ts) and the worker (src/worker.ts).
 */
export function refusalToStart (error: unknown, config: Pick<Config, 'isProduction'>): ConfigError | undefined {
  if (error instanceof UnsafeDatabaseRoleError) return error
  return config.isProduction ? loginRefusal(error) : undefined
}

/** A readable account of an unsafe role: what is wrong and how to fix it (no URL, no password). */
export function describeUnsafeRole (report: DatabaseRoleReport): string {
  const who = report.role === report.login ? `"${report.role}"` : `"${report.role}" (login "${report.login}")`
  return [
    `Row-level security does NOT apply to the role the API's queries run as, ${who}:`,
    ...report.problems.map((p) => `  - ${p}`),
    'Set APP_DATABASE_URL to a login of its own that is a member of saas_app and nothing more, e.g.',
    "  CREATE ROLE saas_api LOGIN PASSWORD '…' IN ROLE saas_app;",
    '(not the tables\' owner, not a superuser, no BYPASSRLS). See README, "Deploying".',
  ].join('\n')
}

/**
 * Start-up guard (RLS on only): inspects the API pool's role; when RLS would not bind it, throws
 * UnsafeDatabaseRoleError in production and writes a loud warning through `warn` elsewhere.
 * @returns the report (undefined with RLS off, where the API is meant to run unconfined).
 * @throws UnsafeDatabaseRoleError (production, unsafe role); any database error of `query`.
 */
export async function enforceSafeDatabaseRole (
  config: Pick<Config, 'rlsEnabled' | 'isProduction'>,
  query: RoleCheckQuery,
  warn: (message: string) => void
): Promise<DatabaseRoleReport | undefined> {
  if (!config.rlsEnabled) return undefined
  const report = await inspectDatabaseRole(query)
  if (report.problems.length === 0) return report
  const message = describeUnsafeRole(report)
  if (config.isProduction) throw new UnsafeDatabaseRoleError(`Refusing to start (NODE_ENV=production). ${message}`)
  const banner = '!'.repeat(100)
  warn(`${banner}\nWARNING: tenant isolation is down to the Prisma extension alone. ${message}\n${banner}`)
  return report
}
