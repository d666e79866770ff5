// Carries the current tenant from the Prisma extension (which knows it) down to the database
// driver (which must tell PostgreSQL), through Prisma's own async code. AsyncLocalStorage keeps one
// value per async call chain: two concurrent requests of two tenants never see each other's value,
// and nothing global is ever assigned.
import { AsyncLocalStorage } from 'node:async_hooks'
import { UUID } from '../ids.ts'

const storage = new AsyncLocalStorage<string>()

export function assertTenantId (tenantId: string): string {
  if (!UUID.test(tenantId)) throw new Error('tenant id must be a UUID')
  return tenantId
}

/**
 * Runs `fn` with `tenantId` as the tenant of every query it makes. The result is awaited inside:
 * Prisma's promises are lazy and only start when awaited, which must happen in the context.
 */
export function runAsTenant<T> (tenantId: string, fn: () => T | PromiseLike<T>): Promise<T> {
  return storage.run(assertTenantId(tenantId), async () => await fn())
}

/** The tenant of the calling async context, if any. */
export function currentTenantId (): string | undefined {
  return storage.getStore()
}

const chainLock = new AsyncLocalStorage<string>()

/**
 * Runs `fn` so that each transaction it begins takes `tenantId`'s audit chain lock with its first
 * statement (src/db/tenant-aware-pool.ts sends `app_lock_audit_chain` in that statement's prelude),
 * before any row lock of the transaction's own: the order every audited write takes its locks in,
 * so none of them deadlock (migration 20261209000200_audit_chain_lock_first). The lock is held
 * until the transaction ends; writers of the same tenant queue on it.
 */
export function withAuditChainLock<T> (tenantId: string, fn: () => T | PromiseLike<T>): Promise<T> {
  return chainLock.run(assertTenantId(tenantId), async () => await fn())
}

/** The tenant whose audit chain the calling context's transactions lock first, if any. */
export function auditChainLockTenant (): string | undefined {
  return chainLock.getStore()
}
