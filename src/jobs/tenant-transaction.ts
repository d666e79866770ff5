// A tenant's transaction that may also enqueue jobs: the changes and the job rows commit together
// or not at all ("transactional outbox" without an outbox table: pg-boss's job table is the outbox).
//
// Why not request.db.$transaction: the scoped client refuses raw SQL (tenancy layer 1), and
// pg-boss's insert is raw SQL. So the transaction is opened on the unscoped client inside
// runAsTenant — every statement of it, the job insert included, runs under the tenant's RLS setting
// (layer 2) — and model operations go through `scopedTransaction`, which rewrites their arguments
// with the very function the scoped client uses (tenantScoper, layer 1). Only `jobs.send` reaches
// raw SQL, and only pg-boss's own insert statement.
import { sqlStateOf } from '../db/conflicts.ts'
import type { Database } from '../db/database.ts'
import { Prisma, type PrismaClient } from '../generated/prisma/client.ts'
import { modelTables, tenantScoper, TenantScopeError, type ScopedClient } from '../tenancy/scoped-client.ts'
import { runAsTenant, withAuditChainLock } from '../tenancy/tenant-context.ts'
import type { JobRunner } from './runner.ts'

/** A scoped client's transaction: model delegates only (no raw SQL, no nested $transaction). */
export type ScopedTransaction = Omit<Parameters<Parameters<ScopedClient['$transaction']>[0]>[0], `$${string}`>

/** Enqueues jobs of the transaction's tenant, committed with it. */
export interface TransactionJobs {
  /** Enqueues job `name` with `data` (the tenant is added); resolves to the job's id. */
  send(name: string, data: Record<string, unknown>): Promise<string>
}

type Delegate = Record<string, (args?: Record<string, unknown>) => Promise<unknown>>

/** Wraps a transaction client of the unscoped client so that every model operation is confined to `tenantId`. */
export function scopedTransaction (base: PrismaClient, tx: unknown, tenantId: string): ScopedTransaction {
  const scope = tenantScoper(base, tenantId)
  const models = new Map(Object.keys(modelTables(base)).map((model) => [model[0]!.toLowerCase() + model.slice(1), model]))
  return new Proxy({}, {
    get (_target, property) {
      if (typeof property !== 'string') return undefined
      const model = models.get(property)
      if (!model) throw new TenantScopeError(`${property} is not available in a tenant transaction`)
      const delegate = (tx as Record<string, Delegate>)[property]!
      return new Proxy({}, {
        get (_t, operation) {
          if (typeof operation !== 'string') return undefined
          return (args?: Record<string, unknown>) => delegate[operation]!(scope(model, operation, args))
        },
      })
    },
  }) as ScopedTransaction
}

/** What a tenantTransaction's caller undoes outside the database when the transaction rolled back. */
export interface RollbackHook {
  /**
   * Awaited when the transaction certainly rolled back: it failed before COMMIT was sent (the
   * database's error, `fn`'s own throw, no connection), or its COMMIT was refused unsent or answered
   * ROLLBACK (see rolledBackAtCommit); e.g. taking back a rate-limit hit counted for the work. Not
   * called when COMMIT failed otherwise: a COMMIT the server refused (a deferred constraint, a
   * serialization failure) is not told apart from one whose connection was cut after it committed
   * (review 66), so the hook is skipped for both: it runs only when nothing committed, not every
   * time. Should not throw: if it does, the transaction's error is still what the caller gets,
   * carrying the hook's as `rollbackHookError` (logged only where that error is).
   */
  onRollback?: () => Promise<void>
}

/**
 * Whether `error`, thrown after `fn` returned, still means that nothing was committed: Prisma did
 * not send COMMIT because its interactive-transaction timeout (5 s) had rolled the transaction back
 * (P2028, "A commit cannot be executed on an expired transaction" or "… on a transaction that was
 * rolled back"), or PostgreSQL answered COMMIT with ROLLBACK because a statement had failed and `fn`
 * caught its error (SQLSTATE 25P02: src/db/tenant-aware-pool.ts, committedOrThrow). An unknown
 * error at COMMIT is not a certain rollback.
 */
function rolledBackAtCommit (error: unknown): boolean {
  if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2028') {
    return /A commit cannot be executed on (an expired transaction|a transaction that was rolled back)/.test(error.message)
  }
  return sqlStateOf(error) === '25P02'
}

async function runRollbackHook (onRollback: () => Promise<void>, error: unknown): Promise<void> {
  try {
    await onRollback()
  } catch (hookError) {
    // The transaction's error stays the answer (a 409 must not become the hook's 500).
    if (error !== null && typeof error === 'object') Object.assign(error, { rollbackHookError: hookError })
  }
}

/**
 * Runs `fn` in one transaction of `tenantId` (both tenancy layers on), with `jobs.send` enqueueing
 * inside it. Its first statement takes the tenant's audit chain lock, as every audited write's does
 * (auditedTransaction): its callers record an event, and a row lock taken before the chain lock
 * deadlocked with the users routes, which take it first (review 88). After the commit, this
 * process's workers of the sent queues are woken. Throws what `fn` throws (and then nothing was
 * written, no job either, and `onRollback` ran); 503 while the job
 * queue is not ready. A database error that `fn` caught still fails the call at COMMIT (25P02): a
 * transaction with a failed statement cannot commit anything.
 */
export async function tenantTransaction<T> (database: Database, jobs: JobRunner, tenantId: string, fn: (tx: ScopedTransaction, jobs: TransactionJobs) => Promise<T>, { onRollback }: RollbackHook = {}): Promise<T> {
  const sent = new Set<string>()
  let committing = false
  let result: T
  try {
    result = await runAsTenant(tenantId, () => withAuditChainLock(tenantId, () => database.platformDb.$transaction(async (tx) => {
      const txJobs: TransactionJobs = {
        send: (name, data) => {
          sent.add(name)
          return jobs.sendInTransaction(tx, name, tenantId, data)
        },
      }
      const done = await fn(scopedTransaction(database.platformDb, tx, tenantId), txJobs)
      committing = true
      return done
    })))
  } catch (error) {
    if (onRollback && (!committing || rolledBackAtCommit(error))) await runRollbackHook(onRollback, error)
    throw error
  }
  for (const name of sent) jobs.wake(name)
  return result
}
