// Opens the one database the whole app uses: the embedded PostgreSQL when DATABASE_URL is unset,
// applies pending migrations when configured to, and builds the Prisma clients over one pool.
import path from 'node:path'
import { PrismaPg } from '@prisma/adapter-pg'
import pg from 'pg'
import type { Config } from '../config.ts'
import { PrismaClient } from '../generated/prisma/client.ts'
import { scopedClient, type ScopedClient } from '../tenancy/scoped-client.ts'
import { startEmbeddedPostgres, type EmbeddedPostgres } from './embedded-postgres.ts'
import { applyMigrations } from './migrate.ts'
import { TenantAwarePool } from './tenant-aware-pool.ts'

/** The role the API runs as when row-level security is on (created by the migrations). */
export const APP_ROLE = 'saas_app'
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
    return createDatabase(config, ownerUrl, embedded)
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

export interface CreateDatabaseOptions {
  /** Called with every statement Prisma sends (tests capture the app's own SQL to EXPLAIN it); off by default. */
  onQuery?: (event: QueryEvent) => void
}

export function createDatabase(config: Config, ownerUrl: string, embedded?: EmbeddedPostgres, options: CreateDatabaseOptions = {}): Database {
  const pool = createPool(config, ownerUrl)
  const platformDb = new PrismaClient({ adapter: new PrismaPg(pool), ...(options.onQuery ? { log: [{ emit: 'event' as const, level: 'query' as const }] } : {}) })
  // Prisma's query events exist only when the client was built with them (above).
  if (options.onQuery) (platformDb as unknown as { $on(event: 'query', fn: (e: QueryEvent) => void): void }).$on('query', options.onQuery)
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

function createPool(config: Config, ownerUrl: string): pg.Pool {
  const poolConfig: pg.PoolConfig = {
    connectionString: config.APP_DATABASE_URL ?? ownerUrl,
    max: config.DB_POOL_MAX,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
  }
  // With RLS on, every connection runs as saas_app: no table owner, no BYPASSRLS, so the policies
  // always apply.
  const pool = config.rlsEnabled ? new TenantAwarePool({ ...poolConfig, options: `-c role=${APP_ROLE}` }) : new pg.Pool(poolConfig)
  pool.on('error', () => {}) // an idle connection dropped by the server: the pool replaces it
  return pool
}
