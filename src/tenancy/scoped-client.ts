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
  type: string
}
type RuntimeDataModel = { models: Record<string, { fields: RuntimeField[]; dbName: string | null }> }
/** model → relation field → related model */
type RelationMap = Record<string, Record<string, string>>

const dataModelOf = (client: PrismaClient) => (client as unknown as { _runtimeDataModel: RuntimeDataModel })._runtimeDataModel

/** Names of the models with a `tenantId` column, read from the generated client's data model. */
export function tenantOwnedModels (client: PrismaClient): string[] {
  return Object.entries(dataModelOf(client).models)
    .filter(([, model]) => model.fields.some((f) => f.name === TENANT_KEY && f.kind === 'scalar'))
    .map(([name]) => name)
}

/**
 * Models of platform data, without `tenantId`: platform code reaches them through the unscoped
 * client, and a scoped client refuses them (TenantScopeError) but for `Tenant`, the registry itself,
 * of which it reads only its own tenant's row (by `id`). `ChangeFeed` holds ids only
 * (src/cluster/change-feed.ts).
 */
export const PLATFORM_MODELS: ReadonlySet<string> = new Set(['Tenant', 'ChangeFeed'])

/**
 * Models that are neither tenant-owned (no `tenantId`) nor in PLATFORM_MODELS, with their tables:
 * `request.db` refuses them, so a route using one fails (500) however its table is set up.
 * `npm run tenancy:check` reports each (rule `model-without-tenant`).
 */
export function modelsOutsideTenancy (client: PrismaClient): Array<{ model: string, table: string }> {
  const owned = new Set(tenantOwnedModels(client))
  const tables = modelTables(client)
  return Object.keys(tables).filter((model) => !owned.has(model) && !PLATFORM_MODELS.has(model)).map((model) => ({ model, table: tables[model]! }))
}

/** Each model's table name (`@@map`, else the model name), read from the generated client's data model. */
export function modelTables (client: PrismaClient): Record<string, string> {
  return Object.fromEntries(Object.entries(dataModelOf(client).models).map(([name, model]) => [name, model.dbName ?? name]))
}

function relationMap (client: PrismaClient): RelationMap {
  return Object.fromEntries(Object.entries(dataModelOf(client).models).map(([name, model]) =>
    [name, Object.fromEntries(model.fields.filter((f) => f.kind === 'object').map((f) => [f.name, f.type]))]))
}

type Args = Record<string, any>

const WHERE_OPERATIONS = new Set([
  'findUnique', 'findUniqueOrThrow', 'findFirst', 'findFirstOrThrow', 'findMany', 'count', 'aggregate', 'groupBy',
  'update', 'updateMany', 'updateManyAndReturn', 'delete', 'deleteMany', 'upsert',
])
const CREATE_OPERATIONS = new Set(['create', 'createMany', 'createManyAndReturn'])
const UPDATE_OPERATIONS = new Set(['update', 'updateMany', 'updateManyAndReturn'])

interface Scope {
  tenantId: string
  model: string
  /** The column naming the tenant: `tenantId` for tenant-owned models, `id` for Tenant itself. */
  key: string
  relations: RelationMap
  /** model → names of all its fields (scalar and relation), to tell compound-unique selectors apart. */
  fields: Record<string, Set<string>>
}

function fieldMap (client: PrismaClient): Record<string, Set<string>> {
  return Object.fromEntries(Object.entries(dataModelOf(client).models).map(([name, model]) => [name, new Set(model.fields.map((f) => f.name))]))
}

const LOGICAL = new Set(['AND', 'OR', 'NOT'])

/**
 * The compound-unique selectors of a where (`tenantId_email: { tenantId, email }`, or a custom
 * `@@unique(name:)`): keys that are no field of the model and whose value is an object of its fields.
 */
function compoundSelectors (where: Args | undefined, fields: Set<string> | undefined): string[] {
  if (!where || !fields) return []
  return Object.keys(where).filter((key) => !fields.has(key) && !LOGICAL.has(key) && isPlainObject(where[key]) &&
    Object.keys(where[key]).every((field) => fields.has(field)))
}

/**
 * A unique where (findUnique's) as a findFirst where: compound selectors, which findFirst does not
 * know, become plain field conditions ANDed with the rest. `{ tenantId_email: { tenantId, email } }`
 * → `{ AND: [{ tenantId, email }] }`.
 */
export function flattenUniqueWhere (where: Args | undefined, fields: Set<string> | undefined): Args | undefined {
  const compounds = compoundSelectors(where, fields)
  if (!where || compounds.length === 0) return where
  const rest: Args = { ...where }
  for (const key of compounds) delete rest[key]
  const existing = rest.AND === undefined ? [] : Array.isArray(rest.AND) ? rest.AND : [rest.AND]
  return { ...rest, AND: [...existing, ...compounds.map((key) => where[key] as Args)] }
}

/** Rewrites one operation's arguments so that it can only touch the scope's tenant's rows. */
export function scopeArgs (operation: string, args: Args | undefined, scope: Scope): Args {
  const scoped: Args = { ...args }
  if (WHERE_OPERATIONS.has(operation)) {
    // A compound selector naming the tenant (tenantId_id, tenantId_email) must name this one.
    for (const compound of compoundSelectors(scoped.where, scope.fields[scope.model])) {
      const selector = scoped.where[compound] as Args
      if (scope.key in selector && selector[scope.key] !== scope.tenantId) throw new TenantScopeError(`${compound}.${scope.key} must be the current tenant`)
    }
    scoped.where = scopeWhere(scoped.where, scope.tenantId, scope.key)
  }
  if (CREATE_OPERATIONS.has(operation)) scoped.data = mapRows(scoped.data, (row) => assignTenant(scope, row))
  if (UPDATE_OPERATIONS.has(operation)) scoped.data = mapRows(scoped.data, (row) => keepTenant(scope, row))
  if (operation === 'upsert') {
    scoped.create = assignTenant(scope, scoped.create)
    scoped.update = keepTenant(scope, scoped.update)
  }
  return scoped
}

function scopeWhere (where: Args | undefined, tenantId: string, key: string): Args {
  if (where && key in where && where[key] !== tenantId) throw new TenantScopeError(`${key} in a where clause must be the current tenant`)
  return { ...where, [key]: tenantId }
}

function assignTenant (scope: Scope, row: Args | undefined): Args {
  const { tenantId, key } = scope
  if (row && key in row && row[key] !== tenantId) throw new TenantScopeError('cannot create a row of another tenant')
  const { [key]: _named, ...data } = scopeNestedWrites(scope.relations, scope.model, row ?? {}, tenantId)
  // A create that writes a relation (`project: { connect: { id } }`) is Prisma's nested form, which
  // takes the tenant as its relation, not as the tenantId column: that failed with `Unknown
  // argument tenantId` (review 58). The connected row's where already names the tenant.
  const relations = scope.relations[scope.model] ?? {}
  const tenantRelation = Object.keys(data).some((field) => Object.hasOwn(relations, field))
    ? Object.keys(relations).find((field) => relations[field] === 'Tenant')
    : undefined
  return tenantRelation ? { ...data, [tenantRelation]: { connect: { id: tenantId } } } : { ...data, [key]: tenantId }
}

function keepTenant (scope: Scope, row: Args | undefined): Args {
  const { [scope.key]: requested, ...rest } = row ?? {}
  if (requested !== undefined && requested !== scope.tenantId) throw new TenantScopeError('the tenant of a row never changes')
  return scopeNestedWrites(scope.relations, scope.model, rest, scope.tenantId)
}

// Nested writes are invisible to query extensions, and a relation write may move a row between
// tenants: with composite foreign keys, `task.update({ data: { project: { connect: { id } } } })`
// sets tenant_id and project_id together. So every row a nested write links to, changes or
// deletes must be the tenant's own: those nested wheres get the tenant added, and no nested data
// may name another tenant or the tenant relation. Only relation fields are walked (JSON is data).
const WHERE_ONLY = new Set(['connect', 'set', 'disconnect', 'delete', 'deleteMany'])

function scopeNestedWrites (relations: RelationMap, model: string, data: Args, tenantId: string): Args {
  const scoped: Args = { ...data }
  for (const [field, related] of Object.entries(relations[model] ?? {})) {
    if (!(field in data)) continue
    if (related === 'Tenant') throw new TenantScopeError('the tenant relation is set by the scoped client, not by data')
    scoped[field] = scopeRelationWrite(relations, related, data[field], tenantId)
  }
  if (TENANT_KEY in data && data[TENANT_KEY] !== tenantId) throw new TenantScopeError('nested data names another tenant')
  return scoped
}

function scopeRelationWrite (relations: RelationMap, model: string, write: unknown, tenantId: string): unknown {
  if (!isPlainObject(write)) return write
  const ownWhere = (where: unknown): unknown =>
    Array.isArray(where) ? where.map(ownWhere) : isPlainObject(where) ? { ...where, [TENANT_KEY]: tenantId } : where
  const nested = (data: unknown): unknown =>
    Array.isArray(data) ? data.map(nested) : isPlainObject(data) ? scopeNestedWrites(relations, model, data, tenantId) : data
  const scoped: Args = {}
  for (const [operation, value] of Object.entries(write)) {
    if (WHERE_ONLY.has(operation)) scoped[operation] = ownWhere(value)
    else if (operation === 'create') scoped[operation] = nested(value)
    else if (operation === 'createMany') scoped[operation] = { ...value, data: nested(value.data) }
    else if (operation === 'connectOrCreate') scoped[operation] = mapOne(value, (v) => ({ where: ownWhere(v.where), create: nested(v.create) }))
    else if (operation === 'upsert') scoped[operation] = mapOne(value, (v) => ({ ...v, where: ownWhere(v.where), create: nested(v.create), update: nested(v.update) }))
    else if (operation === 'update' || operation === 'updateMany') {
      scoped[operation] = mapOne(value, (v) => ('data' in v ? { ...v, where: ownWhere(v.where ?? {}), data: nested(v.data) } : nested(v)))
    } else scoped[operation] = value
  }
  return scoped
}

const mapOne = (value: unknown, fn: (v: Args) => unknown) => (Array.isArray(value) ? value.map((v) => fn(v)) : fn(value as Args))

const isPlainObject = (value: unknown): value is Args =>
  typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype

function mapRows (data: Args | Args[] | undefined, fn: (row: Args) => Args): Args | Args[] {
  return Array.isArray(data) ? data.map(fn) : fn(data ?? {})
}

const lowerFirst = (s: string) => s[0]!.toLowerCase() + s.slice(1)

/** What every tenant's scope reads from one base client's data model: built once per base client. */
interface ModelFacts {
  owned: Set<string>
  relations: RelationMap
  fields: Record<string, Set<string>>
}
const modelFactsCache = new WeakMap<PrismaClient, ModelFacts>()

/**
 * The data model's facts for `base`, shared by all its scoped clients: an instance keeps a scoped
 * client per active tenant (src/db/database.ts), and building these per tenant cost heap and time.
 */
function modelFacts (base: PrismaClient): ModelFacts {
  let facts = modelFactsCache.get(base)
  if (!facts) {
    facts = { owned: new Set(tenantOwnedModels(base)), relations: relationMap(base), fields: fieldMap(base) }
    modelFactsCache.set(base, facts)
  }
  return facts
}

/**
 * Layer 1 as a function: `(model, operation, args)` → the arguments confined to `tenantId` (or the
 * arguments unchanged when `filter` is false, after the same refusals). Throws TenantScopeError for a
 * model that is not tenant data, for creating or deleting a tenant, and for anything naming another
 * tenant. Used by the extension below and by src/jobs/tenant-transaction.ts (a transaction of the
 * unscoped client that must stay as confined as a scoped one).
 */
export function tenantScoper (base: PrismaClient, tenantId: string) {
  assertTenantId(tenantId)
  const { owned, relations, fields } = modelFacts(base)
  return (model: string, operation: string, args: Args | undefined, filter = true): Args => {
    const key = owned.has(model) ? TENANT_KEY : model === 'Tenant' ? 'id' : undefined
    if (key === undefined) throw new TenantScopeError(`${model} is not tenant data`)
    if (model === 'Tenant' && (CREATE_OPERATIONS.has(operation) || operation.startsWith('delete') || operation === 'upsert')) {
      throw new TenantScopeError('tenants are created and deleted by platform code only')
    }
    return filter ? scopeArgs(operation, args, { tenantId, model, key, relations, fields }) : (args as Args)
  }
}

/**
 * The extension confining a client to one tenant (layer 1), and making it current for the
 * database (layer 2). `layers` lets tests take either layer away to prove the other one alone.
 */
export function tenantScope (base: PrismaClient, tenantId: string, layers: { filter: boolean; rls: boolean } = { filter: true, rls: true }) {
  const scope = tenantScoper(base, tenantId)
  const { fields } = modelFacts(base)
  return Prisma.defineExtension({
    name: 'tenant-scope',
    query: {
      $allModels: {
        $allOperations ({ model, operation, args, query, ...rest }) {
          const scoped = scope(model, operation, args as Args, layers.filter)
          // Prisma batches the findUnique calls of one tick into one query (across requests too),
          // which would run under the first caller's tenant: outside a transaction, they run as a
          // findFirst with the same where, which is never batched. Inside one, the transaction is
          // this tenant's alone, and the call must stay in it. (Prisma passes the transaction in
          // __internalParams; test/tenant-isolation.test.ts fails if that ever changes.)
          const inTransaction = (rest as { __internalParams?: { transaction?: unknown } }).__internalParams?.transaction !== undefined
          const unbatched = (operation === 'findUnique' || operation === 'findUniqueOrThrow') && !inTransaction
          // async: Prisma's promises are lazy and start when awaited, so the await must happen
          // inside the tenant's context.
          const run = async () => {
            if (unbatched) {
              const delegate = (base as unknown as Record<string, Record<string, (a: Args) => Promise<unknown>>>)[lowerFirst(model)]!
              // findFirst knows no compound-unique selector (tenantId_email): flatten them first.
              const where = flattenUniqueWhere(scoped.where, fields[model])
              return await delegate[operation === 'findUnique' ? 'findFirst' : 'findFirstOrThrow']!({ ...scoped, where })
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

function refuseRaw (..._args: unknown[]): never {
  throw new TenantScopeError('raw SQL is not available on a tenant-scoped client: a route writes raw SQL through auditedChange (src/audit/audit-log.ts); platform code uses platformDb inside runAsTenant')
}

/** A client whose every model operation is confined to `tenantId`. */
export function scopedClient (base: PrismaClient, tenantId: string) {
  return base.$extends(tenantScope(base, tenantId))
}
/**
 * The scoped client as routes see it (`request.db`): without the raw-SQL methods, which throw at
 * runtime (refuseRaw), so `request.db.$queryRaw` is a type error rather than a 500 (review 58).
 */
export type ScopedClient = Omit<ReturnType<typeof scopedClient>, '$queryRaw' | '$executeRaw' | '$queryRawUnsafe' | '$executeRawUnsafe'>
