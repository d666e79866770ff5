// A tenant's transaction that may also enqueue jobs: the changes and the job rows commit together
// or not at all ("transactional outbox" without an outbox table: pg-boss's job table is the outbox).
//
// Why not request.db.$transaction: the scoped client refuses raw SQL (tenancy layer 1), and
// pg-boss's insert is raw SQL. So the transaction is opened on the unscoped client inside
// runAsTenant — every statement of it, the job insert included, runs under the tenant's RLS setting
// (layer 2) — and model operations go through `scopedTransaction`, which rewrites their arguments
// with the very function the scoped client uses (tenantScoper, layer 1). Only `jobs.send` reaches
// raw SQL, and only pg-boss's own insert statement.
import type { Database } from '../db/database.ts'
import type { PrismaClient } from '../generated/prisma/client.ts'
import { modelTables, tenantScoper, TenantScopeError, type ScopedClient } from '../tenancy/scoped-client.ts'
import { runAsTenant } from '../tenancy/tenant-context.ts'
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
   * Awaited when the transaction failed before COMMIT was sent (the database's error, `fn`'s own
   * throw, no connection), so it certainly rolled back: e.g. taking back a rate-limit hit counted
   * for the work. Not called when COMMIT itself failed: the commit may have happened with only its
   * acknowledgement lost (review 66). Must not throw.
   */
  onRollback?: () => Promise<void>
}

/**
 * Runs `fn` in one transaction of `tenantId` (both tenancy layers on), with `jobs.send` enqueueing
 * inside it. After the commit, this process's workers of the sent queues are woken. Throws what
 * `fn` throws (and then nothing was written, no job either, and `onRollback` ran); 503 while the job
 * queue is not ready.
 */
export async function tenantTransaction<T> (database: Database, jobs: JobRunner, tenantId: string, fn: (tx: ScopedTransaction, jobs: TransactionJobs) => Promise<T>, { onRollback }: RollbackHook = {}): Promise<T> {
  const sent = new Set<string>()
  let committing = false
  let result: T
  try {
    result = await runAsTenant(tenantId, () => database.platformDb.$transaction(async (tx) => {
      const txJobs: TransactionJobs = {
        send: (name, data) => {
          sent.add(name)
          return jobs.sendInTransaction(tx, name, tenantId, data)
        },
      }
      const done = await fn(scopedTransaction(database.platformDb, tx, tenantId), txJobs)
      committing = true
      return done
    }))
  } catch (error) {
    if (!committing) await onRollback?.()
    throw error
  }
  for (const name of sent) jobs.wake(name)
  return result
}
