// The pool's transaction path and its bounds, on the app's real clients: each isolation level works
// with a tenant set (the tenant setting must come after SET TRANSACTION, or PostgreSQL answers
// 25001), statements are bounded server-side and client-side, and a killed connection is never reused.
import t from 'tap'
import { classifyError } from '../plugins/error-handler.ts'
import { DatabaseTimeoutError } from '../src/db/tenant-aware-pool.ts'
import { runAsTenant, withAuditChainLock } from '../src/tenancy/tenant-context.ts'
import { adminQuery, backendsWaitingOnLocks, holdLock, insertTenant, openTestDatabase } from './helper.ts'

const LEVELS = { ReadUncommitted: 'read uncommitted', ReadCommitted: 'read committed', RepeatableRead: 'repeatable read', Serializable: 'serializable' } as const

t.test('every isolation level, through the scoped client and through runAsTenant + platformDb', async (t) => {
  const { ownerUrl, database } = await openTestDatabase(t)
  const alpha = await insertTenant(ownerUrl, 'alpha')
  const beta = await insertTenant(ownerUrl, 'beta')
  await adminQuery(ownerUrl, "INSERT INTO projects (tenant_id, name) VALUES ($1, 'a1'), ($1, 'a2'), ($2, 'b1')", [alpha, beta])
  for (const [level, shown] of Object.entries(LEVELS) as [keyof typeof LEVELS, string][]) {
    const scoped = await database.forTenant(alpha).$transaction(async (tx) => tx.project.findMany({ orderBy: { name: 'asc' } }), { isolationLevel: level })
    t.same(scoped.map((p) => p.name), ['a1', 'a2'], `scoped client, ${level}: its own rows only`)
    const [seen, isolation, timeout] = await runAsTenant(alpha, () => database.platformDb.$transaction(async (tx) => [
      await tx.project.findMany({ orderBy: { name: 'asc' } }),
      await tx.$queryRaw<{ v: string }[]>`SELECT current_setting('transaction_isolation') AS v`,
      await tx.$queryRaw<{ v: string }[]>`SELECT current_setting('statement_timeout') AS v`,
    ] as const, { isolationLevel: level }))
    t.same(seen.map((p) => p.name), ['a1', 'a2'], `runAsTenant + platformDb.$transaction, ${level}: row-level security applies`)
    t.equal(isolation[0]!.v, shown, `the transaction runs at ${shown}`)
    t.equal(timeout[0]!.v, '5s', 'with the statement bound (DB_STATEMENT_TIMEOUT_MS) set for the transaction')
  }
  const outside = await database.platformDb.$queryRaw<{ v: string }[]>`SELECT current_setting('statement_timeout') AS v`
  t.equal(outside[0]!.v, '5s', 'a lone statement carries the bound too')
})

t.test('a statement over DB_STATEMENT_TIMEOUT_MS is cancelled by the server: 503, connection kept', async (t) => {
  const { ownerUrl, database } = await openTestDatabase(t, { DB_STATEMENT_TIMEOUT_MS: '300' })
  const alpha = await insertTenant(ownerUrl, 'alpha')
  const startedAt = Date.now()
  const error = await runAsTenant(alpha, () => database.platformDb.$queryRaw`SELECT pg_sleep(3)::text AS slept`).then(() => undefined, (e: unknown) => e)
  t.ok(error, 'the statement failed')
  t.ok(Date.now() - startedAt < 2500, `after the bound (${Date.now() - startedAt} ms)`)
  t.equal(classifyError(error).code, 'SERVICE_UNAVAILABLE', 'answered as 503')
  t.match(classifyError(error).headers, { 'retry-after': /\d+/ }, 'with Retry-After')
  t.same(await database.platformDb.$queryRaw`SELECT 1 AS one`, [{ one: 1 }], 'the next statement runs')
})

// The chain lock is taken in the prelude that also sets statement_timeout, whose timer arms only
// from the next statement: lock_timeout bounds that wait instead. Without it the wait ran until the
// client's bound (DB_QUERY_TIMEOUT_MS) destroyed the connection, and the backend stayed queued.
t.test('an audited transaction waiting for its tenant\'s chain lock gives up after DB_STATEMENT_TIMEOUT_MS: 503, nothing left waiting', async (t) => {
  const { ownerUrl, database } = await openTestDatabase(t, { DB_STATEMENT_TIMEOUT_MS: '300', DB_QUERY_TIMEOUT_MS: '4000' })
  const alpha = await insertTenant(ownerUrl, 'alpha')
  const chain = await holdLock(t, ownerUrl, 'SELECT 1 FROM tenants WHERE id = $1 FOR NO KEY UPDATE', [alpha])
  const startedAt = Date.now()
  const error = await runAsTenant(alpha, () => withAuditChainLock(alpha, () => database.platformDb.$transaction(async (tx) => tx.project.count())))
    .then(() => undefined, (e: unknown) => e)
  const waited = Date.now() - startedAt
  t.ok(error, 'the transaction failed while the chain was held')
  t.ok(waited < 2500, `after the statement bound, not the client's (${waited} ms)`)
  t.equal(classifyError(error).code, 'SERVICE_UNAVAILABLE', 'answered as 503')
  t.equal(await backendsWaitingOnLocks(ownerUrl), 0, 'no backend is left waiting for the lock')
  await chain.release()
  t.equal(await runAsTenant(alpha, () => withAuditChainLock(alpha, () => database.platformDb.$transaction(async (tx) => tx.project.count()))), 0, 'once the chain is free, the next one runs')
})

t.test('a statement over DB_QUERY_TIMEOUT_MS is abandoned by the client: its connection is destroyed', async (t) => {
  const { database } = await openTestDatabase(t, { DB_STATEMENT_TIMEOUT_MS: '0', DB_QUERY_TIMEOUT_MS: '300' })
  const [before] = await database.platformDb.$queryRaw<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`
  const startedAt = Date.now()
  const error = await database.platformDb.$queryRaw`SELECT pg_sleep(3)::text AS slept`.then(() => undefined, (e: unknown) => e)
  t.ok(Date.now() - startedAt < 2500, `gave up after the bound (${Date.now() - startedAt} ms)`)
  t.match(String((error as Error)?.message), /timed out/, 'with a timeout error')
  t.equal(classifyError(error).code, 'SERVICE_UNAVAILABLE', 'answered as 503')
  t.ok(new DatabaseTimeoutError(300).message.includes('300 ms'))
  const pids = new Set<number>()
  for (let i = 0; i < 5; i++) pids.add((await database.platformDb.$queryRaw<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`)[0]!.pid)
  t.ok(pids.size >= 1, 'later statements run')
  t.comment(`pid before ${before!.pid}; after ${[...pids].join(', ')}`)
})

t.test('connections killed while idle and while busy are discarded, never reused; the process survives', async (t) => {
  const { ownerUrl, database } = await openTestDatabase(t)
  const alpha = await insertTenant(ownerUrl, 'alpha')
  const database_ = new URL(ownerUrl).pathname.slice(1)
  const kill = () => adminQuery(ownerUrl, 'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [database_])
  // Busy: 16 concurrent tenant statements, killed mid-flight, three rounds.
  for (let round = 0; round < 3; round++) {
    const busy = Array.from({ length: 16 }, () => runAsTenant(alpha, () => database.platformDb.$queryRaw`SELECT pg_sleep(0.3)::text AS slept`).then(() => 'ok', (e: unknown) => classifyError(e).code))
    await new Promise((resolve) => setTimeout(resolve, 100))
    await kill()
    const outcomes = await Promise.all(busy)
    t.ok(outcomes.every((o) => o === 'ok' || o === 'SERVICE_UNAVAILABLE'), `round ${round}: each statement succeeded or is a 503 (${[...new Set(outcomes)].join(', ')})`)
  }
  // Idle: every pooled connection killed; the next statements all succeed on fresh connections.
  await kill()
  await new Promise((resolve) => setTimeout(resolve, 100))
  const after = await Promise.all(Array.from({ length: 16 }, () => runAsTenant(alpha, () => database.platformDb.$transaction(async (tx) => tx.project.count()))))
  t.same(new Set(after), new Set([0]), 'every later transaction succeeds')
  const lone = await Promise.all(Array.from({ length: 16 }, () => runAsTenant(alpha, () => database.platformDb.project.count())))
  t.same(new Set(lone), new Set([0]), 'and every later lone statement')
  t.ok(await database.ping(), 'readiness: the database answers')
})
