// Opens the one database the whole app uses: the embedded PostgreSQL when DATABASE_URL is unset,
// applies pending migrations when configured to, and builds the Prisma clients over one pool.
import path from 'node:path'
import { PrismaPg } from '@prisma/adapter-pg'
import { LRUCache } from 'lru-cache'
import pg from 'pg'
import { withShortLivedClient } from './short-lived-client.ts'
import { ConfigError, type Config } from '../config.ts'
import { PrismaClient } from '../generated/prisma/client.ts'
import { scopedClient, type ScopedClient } from '../tenancy/scoped-client.ts'
import { APP_ROLE, embeddedApiLogin } from './api-login.ts'
import { startEmbeddedPostgres, type EmbeddedPostgres } from './embedded-postgres.ts'
import { isTransactionPooler, poolerKeepsPreparedStatements } from './direct-connection.ts'
import { applyMigrations } from './migrate.ts'
import { DatabaseAvailability, ResilientPool, statementName, TenantAwarePool } from './tenant-aware-pool.ts'

export { APP_ROLE } from './api-login.ts'
export const EMBEDDED_DATABASE_NAME = 'app'
/**
 * Scoped clients kept (least recently used dropped first): twice the 1,000 active tenants one
 * instance is sized for. No TTL: a client holds no data, only its tenant's id, so it cannot go
 * stale; one dropped is simply built again (about 60 µs). Each costs about 11 KB of heap, plus about
 * 4 KB per model it has used (Prisma's own delegates): 2,000 stay within ~40 MB of the 128 MB heap
 * that start:prod allows, where 10,000 (this bound until round three) could have filled it.
 */
const MAX_SCOPED_CLIENTS = 2_000

export interface Database {
  /**
   * The unscoped client: platform work only (tenant registry, signup, admin). With RLS on it sees
   * no tenant-owned row unless the code runs inside runAsTenant. Grep for `platformDb` to audit.
   */
  platformDb: PrismaClient
  /** A client confined to one tenant (cached per tenant; building one is not free). */
  forTenant(tenantId: string): ScopedClient
  /** URL of the tables' owner (migrations, seeds); contains credentials: never log it. */
  ownerUrl: string
  /**
   * True when the database answers within READY_TIMEOUT_MS, on a connection of its own (a busy pool
   * never makes a healthy database look down), and takes writes: a read-only one (a standby, a
   * demoted primary) is not ready, and that connection is not reused. Concurrent calls share one probe.
   */
  ping(): Promise<boolean>
  /** The database's availability as the pools see it; `onChange` is called when it goes away or comes back. */
  availability: DatabaseAvailability
  /** Closes the pools (bounded: connections still busy after 2 s are destroyed) and the embedded PostgreSQL. Idempotent. */
  close(): Promise<void>
}

/** Where the database's start-up lines go (the server's and the worker's pino, as `[database] …`); `warn` for what an operator should act on. */
export type DatabaseLog = (message: string, level?: 'info' | 'warn') => void

export interface OpenDatabaseOptions {
  log?: DatabaseLog
}

export function embeddedDirectory (config: Pick<Config, 'dataDir'>): string {
  return path.join(config.dataDir, 'postgres')
}

export async function openDatabase (config: Config, options: OpenDatabaseOptions = {}): Promise<Database> {
  const log = options.log ?? (() => {})
  let embedded: EmbeddedPostgres | undefined
  if (config.embeddedDatabase) {
    embedded = await startEmbeddedPostgres({ dir: embeddedDirectory(config), port: config.EMBEDDED_PG_PORT, database: EMBEDDED_DATABASE_NAME, log })
  }
  const ownerUrl = config.DATABASE_URL ?? embedded!.url
  try {
    if (config.migrateOnStart) {
      const applied = await applyMigrations(ownerUrl, log, { allowOutOfOrder: config.MIGRATE_OUT_OF_ORDER })
      log(applied.length ? `applied migrations: ${applied.join(', ')}` : 'database schema is up to date')
    }
    // The embedded database gets the API's own login (member of saas_app), as production has.
    const appUrl = config.rlsEnabled && !config.APP_DATABASE_URL && embedded ? await embeddedApiLogin(embeddedDirectory(config), ownerUrl) : undefined
    const preparedStatements = await usePreparedStatements(config, appUrl ?? config.APP_DATABASE_URL ?? ownerUrl, log)
    return createDatabase(config, ownerUrl, embedded, { appUrl, preparedStatements })
  } catch (error) {
    await embedded?.stop()
    throw error
  }
}

/** A statement Prisma sent (SQL with $n placeholders, and its parameters as a JSON array). */
export interface QueryEvent {
  query: string
  params: string
}

/**
 * Whether the pool names its statements (DB_PREPARED_STATEMENTS): `on`/`off` as configured; `auto`
 * turns them on only when the API's URL leads straight to PostgreSQL: the server listens on the
 * URL's port (a pooler or proxy usually listens on another: PgBouncer on 6432), and no transaction
 * pooler's sign shows (src/db/direct-connection.ts: also a PgBouncer on the PostgreSQL port number
 * at another address, test/pooler-detection.test.ts). Behind a transaction pooler named statements
 * would be looked for on another session than the one that parsed them (PgBouncer < 1.21). Anything
 * unsure — another port, a database that cannot be asked yet — gets them off: the safe side.
 * `on` behind a transaction pooler is checked (poolerKeepsPreparedStatements): refused when the
 * pooler loses them, kept with a warning through `log` when the probe could not tell.
 * @throws ConfigError naming DB_PREPARED_STATEMENTS when `on` meets a pooler that loses named statements.
 */
export async function usePreparedStatements (config: Pick<Config, 'DB_PREPARED_STATEMENTS'> & Partial<Pick<Config, 'DB_CONNECT_TIMEOUT_MS'>>, url: string, log: DatabaseLog = () => {}): Promise<boolean> {
  if (config.DB_PREPARED_STATEMENTS === 'off') return false
  const connectTimeoutMs = config.DB_CONNECT_TIMEOUT_MS ?? 0
  if (config.DB_PREPARED_STATEMENTS === 'on') {
    // Review 57: `on` behind PgBouncer 1.18 started, then 42 % of the requests were 500s.
    if (!(await isTransactionPooler(url, connectTimeoutMs).catch(() => false))) return true
    const kept = await poolerKeepsPreparedStatements(url, connectTimeoutMs).catch(() => undefined)
    if (kept === false) {
      throw new ConfigError('Invalid configuration:\n  DB_PREPARED_STATEMENTS=on: the API\'s login leads to a transaction pooler that loses named prepared statements between transactions (a statement prepared on one server connection was unknown on the next: PgBouncer < 1.21, or max_prepared_statements = 0), where requests would fail. Set auto or off, or max_prepared_statements > 0 on PgBouncer >= 1.21')
    }
    if (kept === undefined) log('DB_PREPARED_STATEMENTS=on and the API\'s login leads to a transaction pooler: this needs PgBouncer >= 1.21 with max_prepared_statements > 0; behind an older one requests fail ("prepared statement … does not exist"): set auto or off there (the start-up probe could not tell which it is)', 'warn')
    return true
  }
  const direct = await Promise.all([servesItsOwnPort(url, connectTimeoutMs), isTransactionPooler(url, connectTimeoutMs)]).then(([ownPort, pooled]) => ownPort && !pooled, () => undefined)
  if (direct === false) log('named prepared statements off: the API\'s login may lead to a pooler (set DB_PREPARED_STATEMENTS=on for PgBouncer >= 1.21 with max_prepared_statements, or for a proxy that keeps sessions)')
  return direct === true
}

/** True when the PostgreSQL server answering `url` listens on the URL's port itself (no proxy or pooler on another port in between). */
async function servesItsOwnPort (url: string, connectTimeoutMs: number): Promise<boolean> {
  const { rows } = await withShortLivedClient(url, (client) => client.query<{ port: string }>('SELECT current_setting(\'port\') AS port'), connectTimeoutMs)
  return rows[0]!.port === (new URL(url).port || '5432')
}

export interface CreateDatabaseOptions {
  /** The API's login (defaults to APP_DATABASE_URL; see createPool for neither). */
  appUrl?: string
  /** Called with every statement Prisma sends (tests capture the app's own SQL to EXPLAIN it); off by default. */
  onQuery?: (event: QueryEvent) => void
  /** Named prepared statements (see usePreparedStatements); defaults to DB_PREPARED_STATEMENTS === 'on'. */
  preparedStatements?: boolean
}

export function createDatabase (config: Config, ownerUrl: string, embedded?: EmbeddedPostgres, options: CreateDatabaseOptions = {}): Database {
  const availability = new DatabaseAvailability()
  const apiUrl = options.appUrl ?? config.APP_DATABASE_URL
  const preparedStatements = options.preparedStatements ?? config.DB_PREPARED_STATEMENTS === 'on'
  const pool = createPool(config, ownerUrl, apiUrl, availability, preparedStatements)
  const readinessPool = createReadinessPool(config, ownerUrl, apiUrl, availability)
  let probe: Promise<boolean> | undefined
  let closing: Promise<void> | undefined
  // An interactive transaction waits for its connection as long as any query does (Prisma's own
  // default, 2 s, would be a second, unrelated bound).
  const platformDb = new PrismaClient({
    adapter: new PrismaPg(pool, preparedStatements ? { statementNameGenerator: statementName } : {}),
    transactionOptions: { maxWait: config.DB_ACQUIRE_TIMEOUT_MS },
    ...(options.onQuery ? { log: [{ emit: 'event' as const, level: 'query' as const }] } : {}),
  })
  // Prisma's query events exist only when the client was built with them (above).
  if (options.onQuery) (platformDb as unknown as { $on(event: 'query', fn: (e: QueryEvent) => void): void }).$on('query', options.onQuery)
  const scoped = new LRUCache<string, ScopedClient>({ max: MAX_SCOPED_CLIENTS })
  return {
    platformDb,
    ownerUrl,
    availability,
    forTenant (tenantId) {
      let client = scoped.get(tenantId)
      if (!client) {
        client = scopedClient(platformDb, tenantId)
        scoped.set(tenantId, client)
      }
      return client
    },
    ping () {
      if (probe) return probe
      const current: Promise<boolean> = (async () => {
        const client = await readinessPool.connect()
        let writable = false
        try {
          const { rows } = await client.query("SELECT current_setting('transaction_read_only') = 'off' AS writable") as pg.QueryResult<{ writable: boolean }>
          writable = rows[0]!.writable
        } finally {
          client.release(!writable) // a read-only session stays read-only: the next probe opens another
        }
        return writable
      })().catch(() => false).finally(() => { probe = undefined })
      probe = current
      return current
    },
    close () {
      closing ??= (async () => {
        await platformDb.$disconnect().catch(() => {})
        await Promise.all([endPool(pool), endPool(readinessPool)])
        await embedded?.stop()
      })()
      return closing
    },
  }
}

/**
 * pool.end() waits for every borrowed connection to come back, which a frozen server would make
 * forever: after `graceMs` the remaining connections are destroyed.
 */
async function endPool (pool: pg.Pool, graceMs = 2000): Promise<void> {
  const ended = pool.end().catch(() => {})
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<'late'>((resolve) => { timer = setTimeout(() => resolve('late'), graceMs) })
  if ((await Promise.race([ended, late])) === 'late') {
    for (const client of (pool as unknown as { _clients: pg.PoolClient[] })._clients ?? []) {
      (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy()
    }
    await ended
  }
  clearTimeout(timer)
}

function createPool (config: Config, ownerUrl: string, appUrl: string | undefined, availability: DatabaseAvailability, preparedStatements: boolean): pg.Pool {
  // No bound is a startup parameter (PgBouncer in transaction mode refuses those): the statement
  // timeout rides with each transaction's first statement; the others are client-side.
  const poolConfig = {
    connectionString: appUrl ?? ownerUrl,
    max: config.DB_POOL_MAX,
    connectionTimeoutMillis: config.DB_ACQUIRE_TIMEOUT_MS,
    connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS,
    statementTimeoutMs: config.DB_STATEMENT_TIMEOUT_MS,
    queryTimeoutMs: config.DB_QUERY_TIMEOUT_MS,
    keepAlive: true,
    keepAliveInitialDelayMillis: config.DB_KEEPALIVE_DELAY_MS,
    idleTimeoutMillis: 30_000,
    availability,
    preparedStatements,
  }
  // With RLS on, the API's own login (a member of saas_app) sends no startup parameter, so a pooler
  // (PgBouncer refuses `options`) passes it unchanged. Only without one — outside production, on the
  // owner's direct connection — does the startup option switch to saas_app. Either way
  // role-check.ts verifies at start what the connections really run as.
  // (ResilientPool listens for `error` on the pool and on every client.)
  return config.rlsEnabled ? new TenantAwarePool({ ...poolConfig, ...roleSwitch(config, appUrl) }) : new ResilientPool(poolConfig)
}

/** The startup option switching the owner's direct login to saas_app, when there is no API login. */
function roleSwitch (config: Config, appUrl: string | undefined): { options?: string } {
  return config.rlsEnabled && !appUrl ? { options: `-c role=${APP_ROLE}` } : {}
}

/** /readyz's own path: one connection, every step bounded by READY_TIMEOUT_MS. */
function createReadinessPool (config: Config, ownerUrl: string, appUrl: string | undefined, availability: DatabaseAvailability): ResilientPool {
  const timeout = config.READY_TIMEOUT_MS
  return new ResilientPool({
    connectionString: appUrl ?? ownerUrl,
    ...roleSwitch(config, appUrl),
    max: 1,
    connectionTimeoutMillis: timeout,
    statementTimeoutMs: 0, // one setting read: the client-side bound suffices
    queryTimeoutMs: timeout,
    keepAlive: true,
    keepAliveInitialDelayMillis: config.DB_KEEPALIVE_DELAY_MS,
    idleTimeoutMillis: 10_000,
    availability,
  })
}
