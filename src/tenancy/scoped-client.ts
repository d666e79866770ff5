// The first tenancy layer: a Prisma client extension that confines every model operation to one
// tenant, so a route handler cannot forget the filter. The second layer (PostgreSQL row-level
// security, see db/tenant-aware-pool.ts) is told the tenant through runAsTenant.
//
// Which models are tenant-owned is read from Prisma's own data model (a `tenantId` field), never
// from a hand-written list: a new model is scoped the day it is added.
import { Prisma, type PrismaClient } from '../generated/prisma/client.ts'
import { assertTenantId, runAsTenant } from './tenant-context.ts'

/** A handler asked for another tenant's data, or for an operation the scoped client forbids. */
export class TenantScopeError extends Error {
  override name = 'TenantScopeError'
}

export const TENANT_KEY = 'tenantId'

interface RuntimeField {
  name: string
  kind: string
}
type RuntimeDataModel = { models: Record<string, { fields: RuntimeField[] }> }

/** Names of the models with a `tenantId` column, read from the generated client's data model. */
export function tenantOwnedModels(client: PrismaClient): string[] {
  const dataModel = (client as unknown as { _runtimeDataModel: RuntimeDataModel })._runtimeDataModel
  return Object.entries(dataModel.models)
    .filter(([, model]) => model.fields.some((f) => f.name === TENANT_KEY && f.kind === 'scalar'))
    .map(([name]) => name)
}

type Args = Record<string, any>

const WHERE_OPERATIONS = new Set([
  'findUnique', 'findUniqueOrThrow', 'findFirst', 'findFirstOrThrow', 'findMany', 'count', 'aggregate', 'groupBy',
  'update', 'updateMany', 'updateManyAndReturn', 'delete', 'deleteMany', 'upsert',
])
const CREATE_OPERATIONS = new Set(['create', 'createMany', 'createManyAndReturn'])
const UPDATE_OPERATIONS = new Set(['update', 'updateMany', 'updateManyAndReturn'])

/**
 * Rewrites one operation's arguments so that it can only touch `tenantId`'s rows.
 * `key` is the column naming the tenant: `tenantId` for tenant-owned models, `id` for Tenant.
 */
export function scopeArgs(operation: string, args: Args | undefined, tenantId: string, key: string): Args {
  const scoped: Args = { ...args }
  if (WHERE_OPERATIONS.has(operation)) scoped.where = scopeWhere(scoped.where, tenantId, key)
  if (CREATE_OPERATIONS.has(operation)) scoped.data = mapRows(scoped.data, (row) => assignTenant(row, tenantId, key))
  if (UPDATE_OPERATIONS.has(operation)) scoped.data = mapRows(scoped.data, (row) => keepTenant(row, tenantId, key))
  if (operation === 'upsert') {
    scoped.create = assignTenant(scoped.create, tenantId, key)
    scoped.update = keepTenant(scoped.update, tenantId, key)
  }
  return scoped
}

function scopeWhere(where: Args | undefined, tenantId: string, key: string): Args {
  if (where && key in where && where[key] !== tenantId) throw new TenantScopeError(`${key} in a where clause must be the current tenant`)
  return { ...where, [key]: tenantId }
}

function assignTenant(row: Args | undefined, tenantId: string, key: string): Args {
  if (row && key in row && row[key] !== tenantId) throw new TenantScopeError(`cannot create a row of another tenant`)
  if (row && 'tenant' in row) throw new TenantScopeError('the tenant relation is set by the scoped client, not by data')
  return { ...row, [key]: tenantId }
}

function keepTenant(row: Args | undefined, tenantId: string, key: string): Args {
  if (row && (key in row || 'tenant' in row)) {
    if (row[key] !== tenantId || 'tenant' in row) throw new TenantScopeError('the tenant of a row never changes')
    const { [key]: _unchanged, ...rest } = row
    return rest
  }
  return { ...row }
}

function mapRows(data: Args | Args[] | undefined, fn: (row: Args) => Args): Args | Args[] {
  return Array.isArray(data) ? data.map(fn) : fn(data ?? {})
}

const lowerFirst = (s: string) => s[0]!.toLowerCase() + s.slice(1)

/**
 * The extension confining a client to one tenant (layer 1), and making it current for the
 * database (layer 2). `layers` lets tests take either layer away to prove the other one alone.
 */
export function tenantScope(base: PrismaClient, tenantId: string, layers: { filter: boolean; rls: boolean } = { filter: true, rls: true }) {
  assertTenantId(tenantId)
  const owned = new Set(tenantOwnedModels(base))
  return Prisma.defineExtension({
    name: 'tenant-scope',
    query: {
      $allModels: {
        $allOperations({ model, operation, args, query }) {
          const key = owned.has(model) ? TENANT_KEY : model === 'Tenant' ? 'id' : undefined
          if (key === undefined) throw new TenantScopeError(`${model} is not tenant data`)
          if (model === 'Tenant' && (CREATE_OPERATIONS.has(operation) || operation.startsWith('delete') || operation === 'upsert')) {
            throw new TenantScopeError('tenants are created and deleted by platform code only')
          }
          const scoped = layers.filter ? scopeArgs(operation, args as Args, tenantId, key) : (args as Args)
          // async: Prisma's promises are lazy and start when awaited, so the await must happen
          // inside the tenant's context.
          const run = async () => {
            // Prisma batches findUnique calls made in the same tick into one query, which would run
            // under the first caller's tenant: a findFirst on the same unique where is never batched.
            if (operation === 'findUnique' || operation === 'findUniqueOrThrow') {
              const delegate = (base as unknown as Record<string, Record<string, (a: Args) => Promise<unknown>>>)[lowerFirst(model)]!
              return await delegate[operation === 'findUnique' ? 'findFirst' : 'findFirstOrThrow']!(scoped)
            }
            return await query(scoped)
          }
          return layers.rls ? runAsTenant(tenantId, run) : run()
        },
      },
    },
    client: {
      // Raw SQL would bypass the first layer: it is not available on a scoped client.
      $queryRaw: refuseRaw, $executeRaw: refuseRaw, $queryRawUnsafe: refuseRaw, $executeRawUnsafe: refuseRaw,
    },
  })
}

function refuseRaw(): never {
  throw new TenantScopeError('raw SQL is not available on a tenant-scoped client; use platformDb with runAsTenant')
}

/** A client whose every model operation is confined to `tenantId`. */
export function scopedClient(base: PrismaClient, tenantId: string) {
  return base.$extends(tenantScope(base, tenantId))
}
export type ScopedClient = ReturnType<typeof scopedClient>
