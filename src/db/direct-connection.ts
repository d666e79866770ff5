// Migrations must run over a direct connection. The schema engine serialises concurrent runs with
// a SESSION advisory lock (pg_advisory_lock(72707369)) taken and released by separate statements;
// behind a transaction pooler (PgBouncer pool_mode = transaction/statement) each statement may run
// on another server session, so the unlock misses and the lock stays held on a pooled server
// connection: the next migration waits forever. We detect such a pooler before the engine starts.
import type pg from 'pg'
import { withShortLivedClient } from './short-lived-client.ts'

/** The key of the Prisma schema engine's migration lock (pg_advisory_lock(72707369)). */
export const MIGRATION_LOCK_KEY = 72707369

/**
 * True when `connectionString` leads to a transaction (or statement) pooler: two client
 * connections, one after the other, are served by the same PostgreSQL backend (same
 * pg_backend_pid). Directly, two open connections never share a backend. A pooler hands an idle
 * server connection to the next client (PgBouncer reuses the most recently used one first).
 * `connectTimeoutMs` bounds each connection attempt (0: pg's default, no bound).
 * @throws what pg throws when the server cannot be reached.
 */
export async function isTransactionPooler (connectionString: string, connectTimeoutMs = 0): Promise<boolean> {
  const pidOf = async (client: pg.Client) => (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid
  // The first connection stays open while the second one connects.
  return withShortLivedClient(connectionString, async (first) => {
    const firstPid = await pidOf(first)
    return withShortLivedClient(connectionString, async (second) => (await pidOf(second)) === firstPid, connectTimeoutMs)
  }, connectTimeoutMs)
}

/** The migration URL leads to a pooler: refused before any lock is taken. */
export class PooledMigrationUrlError extends Error {
  override name = 'PooledMigrationUrlError'
}

/**
 * Refuses a migration URL that leads to a transaction pooler (see isTransactionPooler).
 * @throws PooledMigrationUrlError naming the host (never the password).
 */
export async function assertDirectConnection (connectionString: string): Promise<void> {
  if (!(await isTransactionPooler(connectionString))) return
  const { host } = new URL(connectionString)
  throw new PooledMigrationUrlError(
    `Refusing to migrate through a connection pooler at ${host}: two connections were served by the same PostgreSQL session ` +
      '(transaction pooling), where the migration advisory lock would stay held on a pooled server connection. ' +
      'Point DATABASE_URL (the tables\' owner, used for migrations) at PostgreSQL directly, not at PgBouncer.'
  )
}
