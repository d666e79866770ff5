// Migrations must run over a direct connection. The schema engine serialises concurrent runs with
// a SESSION advisory lock (pg_advisory_lock(72707369)) taken and released by separate statements;
// behind a transaction pooler (PgBouncer pool_mode = transaction/statement) each statement may run
// on another server session, so the unlock misses and the lock stays held on a pooled server
// connection: the next migration waits forever. We detect such a pooler before the engine starts.
import { randomBytes } from 'node:crypto'
import type pg from 'pg'
import { withShortLivedClient } from './short-lived-client.ts'

/** The key of the Prisma schema engine's migration lock (pg_advisory_lock(72707369)). */
export const MIGRATION_LOCK_KEY = 72707369

/** Rounds of isTransactionPooler: in each, a few statements on one connection, then on the other. */
const PROBE_ROUNDS = 4
const PROBES_PER_ROUND = 3

/**
 * True when `connectionString` leads to a transaction (or statement) pooler. Directly, one client
 * connection is one PostgreSQL backend (pg_backend_pid) for its whole life, and two open ones never
 * share one. Two connections, both open, send a few statements each in turn, a few rounds: it is a
 * pooler when either one's statements ran on more than one backend (a pooler sharing out a busy
 * pool, or going round robin: server_round_robin = 1), or both ran on a common backend (a pooler
 * handing its idle server connection to the next client). Both signs are certain (never seen
 * directly); one round of each alone was seen to miss, under a pool other clients kept busy (5 of
 * 20 checks) or with round robin. `connectTimeoutMs` bounds each connection attempt (0: none).
 * @throws what pg throws when the server cannot be reached.
 */
export async function isTransactionPooler (connectionString: string, connectTimeoutMs = 0): Promise<boolean> {
  const pidOf = async (client: pg.Client) => (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid
  return withClientPair(connectionString, connectTimeoutMs, async (first, second) => {
    const seen = [new Set<number>(), new Set<number>()] as const
    for (let round = 0; round < PROBE_ROUNDS; round++) {
      for (const [index, client] of [first, second].entries()) {
        for (let i = 0; i < PROBES_PER_ROUND; i++) seen[index]!.add(await pidOf(client))
      }
      if (seen[0].size > 1 || seen[1].size > 1 || [...seen[0]].some((pid) => seen[1].has(pid))) return true
    }
    return false
  })
}

/** Two short-lived clients on `connectionString`, both open during `work`, both closed after it. */
function withClientPair<T> (connectionString: string, connectTimeoutMs: number, work: (a: pg.Client, b: pg.Client) => Promise<T>): Promise<T> {
  return withShortLivedClient(connectionString, (a) => withShortLivedClient(connectionString, (b) => work(a, b), connectTimeoutMs), connectTimeoutMs)
}

/**
 * Rounds of poolerKeepsPreparedStatements. An idle pooler shows in the first; in a pool other
 * clients keep busy, the server the holder should take may go to one of them, and all three rounds
 * of an earlier version once ran on the parsing server (a CI run): ten leave that to chance no more.
 */
const PREPARED_PROBE_ROUNDS = 10
/** How long a run may wait for a server connection before the holder lets its own go (ms). */
const PREPARED_PROBE_WAIT_MS = 500

/**
 * Whether the transaction pooler at `connectionString` keeps named prepared statements across its
 * server connections, as PgBouncer >= 1.21 does with max_prepared_statements > 0 (it prepares them on
 * each server itself); PgBouncer < 1.21, or with max_prepared_statements = 0, passes them through, so
 * a statement parsed on one server is unknown on the next. The probe parses a named statement on
 * one client connection, then, while a second client holds a transaction open on the server that
 * connection just released (poolers hand out the most recently used server first), runs it again:
 * the pooler must give the run another server. `true`: it ran there; `false`: that server answered
 * 26000 (invalid_sql_statement_name, "prepared statement … does not exist"); `undefined`: every run
 * had the parsing server (a pool of one server), which shows nothing. Meant for a URL that
 * isTransactionPooler found pooled; an old pooler keeps the statement (a random name, one row of
 * pg_prepared_statements) on its server connection until that closes.
 * `connectTimeoutMs` bounds each connection attempt (0: none).
 * @throws what pg throws when the server cannot be reached or a query fails otherwise.
 */
export async function poolerKeepsPreparedStatements (connectionString: string, connectTimeoutMs = 0): Promise<boolean | undefined> {
  const probe = { name: `saas_prepared_probe_${randomBytes(6).toString('hex')}`, text: 'SELECT pg_backend_pid() AS pid' }
  const pidOf = async (client: pg.Client) => (await client.query<{ pid: number }>(probe)).rows[0]!.pid
  return withClientPair(connectionString, connectTimeoutMs, async (runner, holder) => {
    const parsedOn = await pidOf(runner)
    for (let round = 0; round < PREPARED_PROBE_ROUNDS; round++) {
      await holder.query('BEGIN') // the pooler gives it a server until COMMIT
      const run = pidOf(runner).then((pid) => ({ pid }), (error: unknown) => ({ error }))
      // A pool of one server queues the run behind the holder: let it go after a while.
      const queued = await Promise.race([run.then(() => false), new Promise<boolean>((resolve) => setTimeout(resolve, PREPARED_PROBE_WAIT_MS, true).unref())])
      await holder.query('COMMIT')
      const outcome = await run
      if ('error' in outcome) {
        if ((outcome.error as { code?: unknown } | null)?.code === '26000') return false
        throw outcome.error
      }
      if (outcome.pid !== parsedOn) return true
      if (queued) return undefined // no other server for it: more rounds would only wait again
    }
    return undefined
  })
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
