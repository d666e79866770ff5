// Opens the one database the whole app uses: the embedded PostgreSQL when DATABASE_URL is unset,
// applies pending migrations when configured to, and builds the Prisma clients over one pool.
import path from 'node:path'
import { PrismaPg } from '@prisma/adapter-pg'
import pg from 'pg'
import type { Config } from '../config.ts'
import { PrismaClient } from '../generated/prisma/client.ts'
import { scopedClient, type ScopedClient } from '../tenancy/scoped-client.ts'
import { APP_ROLE, embeddedApiLogin } from './api-login.ts'
import { startEmbeddedPostgres, type EmbeddedPostgres } from './embedded-postgres.ts'
import { applyMigrations } from './migrate.ts'
import { TenantAwarePool } from './tenant-aware-pool.ts'

export { APP_ROLE } from './api-login.ts'
export const EMBEDDED_DATABASE_NAME = 'app'

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
  /** True when the database answers a trivial query. */
  ping(): Promise<boolean>
  close(): Promise<void>
}

export interface OpenDatabaseOptions {
  log?: (message: string) => void
}

export function embeddedDirectory(config: Pick<Config, 'dataDir'>): string {
  return path.join(config.dataDir, 'postgres')
}

export async function openDatabase(config: Config, options: OpenDatabaseOptions = {}): Promise<Database> {
  const log = options.log ?? (() => {})
  let embedded: EmbeddedPostgres | undefined
  if (config.embeddedDatabase) {
    embedded = await startEmbeddedPostgres({ dir: embeddedDirectory(config), port: config.EMBEDDED_PG_PORT, database: EMBEDDED_DATABASE_NAME, log })
  }
  const ownerUrl = config.DATABASE_URL ?? embedded!.url
  try {
    if (config.migrateOnStart) {
      const applied = await applyMigrations(ownerUrl, log)
      log(applied.length ? `applied migrations: ${applied.join(', ')}` : 'database schema is up to date')
    }
    // The embedded database gets the API's own login (member of saas_app), as production has.
    const appUrl = config.rlsEnabled && !config.APP_DATABASE_URL && embedded ? await embeddedApiLogin(embeddedDirectory(config), ownerUrl) : undefined
    return createDatabase(config, ownerUrl, embedded, appUrl)
  } catch (error) {
    await embedded?.stop()
    throw error
  }
}

/** `appUrl`: the API's login (defaults to APP_DATABASE_URL; see createPool for neither). */
export function createDatabase(config: Config, ownerUrl: string, embedded?: EmbeddedPostgres, appUrl?: string): Database {
  const pool = createPool(config, ownerUrl, appUrl ?? config.APP_DATABASE_URL)
  const platformDb = new PrismaClient({ adapter: new PrismaPg(pool) })
  const scoped = new Map<string, ScopedClient>()
  return {
    platformDb,
    ownerUrl,
    forTenant(tenantId) {
      let client = scoped.get(tenantId)
      if (!client) {
        if (scoped.size >= 10_000) scoped.delete(scoped.keys().next().value!) // oldest first
        client = scopedClient(platformDb, tenantId)
        scoped.set(tenantId, client)
      }
      return client
    },
    async ping() {
      try {
        await pool.query('SELECT 1')
        return true
      } catch {
        return false
      }
    },
    async close() {
      await platformDb.$disconnect()
      await pool.end().catch(() => {})
      await embedded?.stop()
    },
  }
}

function createPool(config: Config, ownerUrl: string, appUrl: string | undefined): pg.Pool {
  const poolConfig: pg.PoolConfig = {
    connectionString: appUrl ?? ownerUrl,
    max: config.DB_POOL_MAX,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
  }
  // With RLS on, the API's own login (a member of saas_app) sends no startup parameter, so a pooler
  // (PgBouncer refuses `options`) passes it unchanged. Only without one — outside production, on the
  // owner's direct connection — does the startup option switch to saas_app. Either way
  // role-check.ts verifies at start what the connections really run as.
  const switchRole = config.rlsEnabled && !appUrl ? { options: `-c role=${APP_ROLE}` } : {}
  const pool = config.rlsEnabled ? new TenantAwarePool({ ...poolConfig, ...switchRole }) : new pg.Pool(poolConfig)
  pool.on('error', () => {}) // an idle connection dropped by the server: the pool replaces it
  return pool
}
