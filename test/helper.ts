// One way for every test to get the real thing: a fresh PostgreSQL database (cloned from the
// migrated template that test/run.ts prepared) and the real app built on it by src/app.ts.
import { randomUUID } from 'node:crypto'
import net from 'node:net'
import pg from 'pg'
import { buildApp, type App } from '../src/app.ts'
import { DEFAULT_API_LOGIN, ensureApiLogin, withLogin } from '../src/db/api-login.ts'
import { loadConfig, type Config } from '../src/config.ts'
import { createDatabase, usePreparedStatements, type Database, type QueryEvent } from '../src/db/database.ts'

type Tap = { teardown(fn: () => unknown): void }

/** The machine's Redis (`.ci/run` starts it where missing); TEST_REDIS_URL overrides. */
export const machineRedisUrl = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'

/** The environment that points an app (or every instance of one deployment) at the Redis of `url` under a key prefix of its own, so tests sharing a Redis never meet each other's keys. */
export const redisEnv = (url = machineRedisUrl): { REDIS_URL: string, REDIS_KEY_PREFIX: string } =>
  ({ REDIS_URL: url, REDIS_KEY_PREFIX: `test-${randomUUID()}:` })

/** The environment that makes an app count its rate limits in `store`: the machine's Redis (redisEnv), or memory. */
export const limitStoreEnv = (store: 'memory' | 'redis'): Record<string, string> => store === 'redis' ? redisEnv() : {}

export const adminUrl = process.env.TEST_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres'
const template = process.env.TEST_TEMPLATE_DATABASE
/** The API's own login (member of saas_app), maybe through PgBouncer; test/run.ts creates it. */
export const appServerUrl = process.env.TEST_APP_DATABASE_URL

/** The URL of `database` on the server of `server` (an admin URL; the suite's by default). */
export function databaseUrl (database: string, server = adminUrl): string {
  const url = new URL(server)
  url.pathname = `/${database}`
  return url.toString()
}

export async function adminQuery<R extends pg.QueryResultRow = pg.QueryResultRow> (url: string, sql: string, values: unknown[] = []) {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return await client.query<R>(sql, values)
  } finally {
    await client.end()
  }
}

/**
 * Makes the test database refuse every write (`default_transaction_read_only`), as a failover onto a
 * standby does, and ends its open sessions (they read the setting when they start); `false` undoes it.
 */
export async function setReadOnly (ownerUrl: string, on: boolean): Promise<void> {
  const database = decodeURIComponent(new URL(ownerUrl).pathname.slice(1))
  await adminQuery(adminUrl, `ALTER DATABASE "${database}" ${on ? 'SET default_transaction_read_only = on' : 'RESET default_transaction_read_only'}`)
  if (on) await adminQuery(adminUrl, 'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [database])
}

/**
 * Makes every transaction of the test database that records an audit event of `action` fail at
 * COMMIT (a deferred constraint trigger raising), after all its statements succeeded: the client
 * cannot tell such a failure from a commit whose acknowledgement was lost. Resolves to the undo.
 */
export async function failAtCommit (ownerUrl: string, action: string): Promise<() => Promise<void>> {
  const name = `fail_at_commit_${randomUUID().replaceAll('-', '')}`
  await adminQuery(ownerUrl, `CREATE FUNCTION ${name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'failing at commit (test)'; END $$`)
  await adminQuery(ownerUrl, `CREATE CONSTRAINT TRIGGER ${name} AFTER INSERT ON audit_events DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.action = '${action.replaceAll("'", "''")}') EXECUTE FUNCTION ${name}()`)
  return async () => {
    await adminQuery(ownerUrl, `DROP TRIGGER ${name} ON audit_events`)
    await adminQuery(ownerUrl, `DROP FUNCTION ${name}()`)
  }
}

/** Which backends count: those whose statement is LIKE `like` and NOT LIKE `notLike` (SQL LIKE patterns), each when given. */
export interface StatementFilter {
  like?: string
  notLike?: string
}

/** How many backends of `ownerUrl`'s database wait on a lock now, of those `filter` keeps. */
export async function backendsWaitingOnLocks (ownerUrl: string, filter: StatementFilter = {}): Promise<number> {
  const { rows } = await adminQuery<{ n: number }>(ownerUrl, `SELECT count(*)::int AS n FROM pg_stat_activity
    WHERE datname = current_database() AND wait_event_type = 'Lock'
      AND ($1::text IS NULL OR query LIKE $1) AND ($2::text IS NULL OR query NOT LIKE $2)`, [filter.like ?? null, filter.notLike ?? null])
  return rows[0]!.n
}

/** A lock a test holds: see holdLock. */
export interface HeldLock {
  /** Resolves once `n` backends wait on a lock (of those `filter` keeps), after 10 s at most; returns how many wait. */
  untilWaiting(n: number, filter?: StatementFilter): Promise<number>
  /** Commits the holding transaction: the waiters go on. */
  release(): Promise<unknown>
}

/**
 * Runs `statement` (a lock: `SELECT … FOR UPDATE`, `LOCK TABLE …`) with `values` in a transaction
 * of `ownerUrl`'s user, after setting app.tenant_id to `tenantId` when given, and holds it until
 * `release()` or the test's end. The way tests make a request wait inside the database.
 */
export async function holdLock (t: { teardown(fn: () => unknown): void }, ownerUrl: string, statement: string, values: unknown[] = [], tenantId?: string): Promise<HeldLock> {
  const locker = new pg.Client({ connectionString: ownerUrl })
  await locker.connect()
  t.teardown(() => locker.end())
  await locker.query('BEGIN')
  if (tenantId) await locker.query("SELECT set_config('app.tenant_id', $1, true)", [tenantId])
  await locker.query(statement, values)
  return {
    async untilWaiting (n, filter) {
      for (let i = 0; i < 400 && await backendsWaitingOnLocks(ownerUrl, filter) < n; i++) await new Promise((resolve) => setTimeout(resolve, 25))
      return await backendsWaitingOnLocks(ownerUrl, filter)
    },
    release: () => locker.query('COMMIT'),
  }
}

/** A TCP port free on the loopback interface right now. */
export function freePort (): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}

/**
 * A TCP proxy to PostgreSQL that the test can cut and restore: a real outage for the clients behind
 * it (cut: every connection reset, the port refused; restore: the same port listens again). Returns
 * the target URL with the proxy's address in it. `fromServer`, when given, carries the server's
 * bytes to the client in place of a pipe (to reorder or delay them); when the server's side closes,
 * the client's is destroyed.
 */
export async function cuttableProxy (t: Tap, target: URL, fromServer?: (upstream: net.Socket, client: net.Socket) => void) {
  const port = await freePort()
  const sockets = new Set<net.Socket>()
  let server: net.Server | undefined
  const open = () => new Promise<void>((resolve) => {
    server = net.createServer((client) => {
      const upstream = net.connect(Number(target.port), target.hostname)
      for (const s of [client, upstream]) { sockets.add(s); s.on('error', () => {}); s.on('close', () => sockets.delete(s)) }
      client.pipe(upstream)
      if (!fromServer) upstream.pipe(client)
      else {
        fromServer(upstream, client)
        upstream.on('close', () => client.destroy())
      }
    }).listen(port, '127.0.0.1', () => resolve())
  })
  const cut = () => new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy()
    server!.close(() => resolve())
  })
  await open()
  t.teardown(() => cut())
  const url = new URL(target)
  url.host = `127.0.0.1:${port}`
  return { url: url.toString(), cut, restore: open }
}

export { productionNodeFlags } from './node-flags.ts'

/** A new database with every migration applied, dropped when the test ends. Returns its owner URL. */
export async function createTestDatabase (t: Tap): Promise<string> {
  if (!template) throw new Error('run the suite with `npm test` (it prepares the template database)')
  const name = `test_${randomUUID().replaceAll('-', '')}`
  await adminQuery(adminUrl, `CREATE DATABASE ${name} TEMPLATE ${template}`)
  t.teardown(() => adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`))
  return databaseUrl(name)
}

/**
 * The API login's URL for `ownerUrl`'s database (same database, the login of TEST_APP_DATABASE_URL,
 * its host: maybe a pooler), or undefined when `ownerUrl` is not on the suite's server.
 */
export function appDatabaseUrl (ownerUrl: string): string | undefined {
  const owner = new URL(ownerUrl)
  if (!appServerUrl || owner.host !== new URL(adminUrl).host) return undefined
  const app = new URL(appServerUrl)
  app.pathname = owner.pathname
  return app.toString()
}

/**
 * The database variables of a production server process on `ownerUrl`: DATABASE_URL (the owner,
 * direct) and APP_DATABASE_URL (the API's own login, which production requires with RLS on). On the
 * suite's server that is the suite's login (maybe through PgBouncer); on a server a test started
 * itself, `saas_api` is created there first.
 */
export async function productionDatabaseEnv (ownerUrl: string): Promise<{ DATABASE_URL: string, APP_DATABASE_URL: string }> {
  const onSuiteServer = appDatabaseUrl(ownerUrl)
  if (onSuiteServer) return { DATABASE_URL: ownerUrl, APP_DATABASE_URL: onSuiteServer }
  await ensureApiLogin(ownerUrl, DEFAULT_API_LOGIN, 'saas-api-test-password')
  return { DATABASE_URL: ownerUrl, APP_DATABASE_URL: withLogin(ownerUrl, DEFAULT_API_LOGIN, 'saas-api-test-password') }
}

/**
 * What production requires for email (SMTP_URL, MAIL_FROM) in server processes that tests start in
 * production mode. Port 9 (discard) refuses connections: a stray email would be a failed job, never
 * a delivered one. Tests of email start their own SMTP server (test/mail-helper.ts).
 */
export const PRODUCTION_MAIL_ENV = { SMTP_URL: 'smtp://127.0.0.1:9', MAIL_FROM: 'Tenant API <no-reply@tenant-api.test>' } as const

/** `env` of a server process, with APP_DATABASE_URL added where production needs it and it is missing. */
export async function withApiLogin<E extends Record<string, string | undefined>> (env: E): Promise<E> {
  if (env.NODE_ENV !== 'production' || !env.DATABASE_URL || env.APP_DATABASE_URL || env.RLS === 'off') return env
  return { ...env, APP_DATABASE_URL: (await productionDatabaseEnv(env.DATABASE_URL)).APP_DATABASE_URL }
}

/**
 * Test configuration: quiet, fast bcrypt, on the given database; `env` overrides any variable.
 * With RLS on, the API's queries run as its own login (APP_DATABASE_URL), as in production.
 */
export function testConfig (url: string, env: Record<string, string> = {}): Config {
  const appUrl = env.RLS === 'off' ? undefined : appDatabaseUrl(url)
  // Generous database waits: tap runs files in parallel on 2 cores, and a test that measures the
  // bounds themselves (db-bounds, resilience) sets its own.
  const waits = { DB_ACQUIRE_TIMEOUT_MS: '15000', DB_CONNECT_TIMEOUT_MS: '10000', DB_QUERY_TIMEOUT_MS: '30000' }
  return loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', DATABASE_URL: url, ...(appUrl ? { APP_DATABASE_URL: appUrl } : {}), BCRYPT_COST: '4', DATA_DIR: '.data/test', ...waits, ...env })
}

export interface Built {
  app: App
  database: Database
  config: Config
  /** The database owner's URL (bypasses RLS): for arranging and checking rows behind the API's back. */
  ownerUrl: string
}

/**
 * DB_PREPARED_STATEMENTS as the server decides it at start (auto: asks the API login's server).
 * The answer depends on the server and login, not the database: asked once per test process.
 */
const preparedStatementsDecided = new Map<string, Promise<boolean>>()
function preparedStatementsOf (config: Config, ownerUrl: string): Promise<boolean> {
  const url = new URL(config.APP_DATABASE_URL ?? ownerUrl)
  const key = `${config.DB_PREPARED_STATEMENTS} ${url.username}@${url.host}`
  let decided = preparedStatementsDecided.get(key)
  if (!decided) preparedStatementsDecided.set(key, decided = usePreparedStatements(config, url.toString()))
  return decided
}

/** A fresh database and the app's clients over it (no app), closed when the test ends. */
export async function openTestDatabase (t: Tap, env: Record<string, string> = {}): Promise<{ ownerUrl: string; database: Database }> {
  const ownerUrl = await createTestDatabase(t)
  const config = testConfig(ownerUrl, env)
  const database = createDatabase(config, ownerUrl, undefined, { preparedStatements: await preparedStatementsOf(config, ownerUrl) })
  t.teardown(() => database.close())
  return { ownerUrl, database }
}

export interface BuildOptions {
  env?: Record<string, string>
  /** Share this database (another app's ownerUrl) instead of creating one. */
  url?: string
  /** Every statement Prisma sends (the app's own SQL, to EXPLAIN it). */
  onQuery?: (event: QueryEvent) => void
  /** Where the app's own logger writes (its real level and redaction; set LOG_LEVEL in env). */
  logStream?: NodeJS.WritableStream
}

/** The real app on a fresh database (or on `url`, to share one database between two apps). */
export async function build (t: Tap, options: BuildOptions = {}): Promise<Built> {
  const url = options.url ?? (await createTestDatabase(t))
  const config = testConfig(url, options.env)
  const database = createDatabase(config, url, undefined, { onQuery: options.onQuery, preparedStatements: await preparedStatementsOf(config, url) })
  const app = await buildApp({ config, database, logStream: options.logStream })
  t.teardown(() => app.close())
  await app.ready()
  return { app, database, config, ownerUrl: url }
}

/** Inserts a tenant directly (as the owner), returning its id. */
export async function insertTenant (ownerUrl: string, slug: string, fields: { status?: 'active' | 'suspended'; domain?: string } = {}) {
  const { rows } = await adminQuery<{ id: string }>(ownerUrl,
    'INSERT INTO tenants (slug, name, status, domain) VALUES ($1, $2, $3, $4) RETURNING id',
    [slug, `${slug[0]!.toUpperCase()}${slug.slice(1)} Inc.`, fields.status ?? 'active', fields.domain ?? null])
  return rows[0]!.id
}
