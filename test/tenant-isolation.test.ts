// Each tenancy layer alone must stop every cross-tenant read, write, count and aggregate:
// the Prisma extension with row-level security off, and row-level security with the extension's
// filters taken away. The models come from Prisma's data model, so a new tenant-owned model without
// a fixture here fails this test instead of going unchecked.
import t from 'tap'
import { TenantScopeError, tenantOwnedModels, tenantScope } from '../src/tenancy/scoped-client.ts'
import { runAsTenant } from '../src/tenancy/tenant-context.ts'
import { adminQuery, insertTenant, openTestDatabase } from './helper.ts'

interface Parents {
  userId: string
  projectId: string
}
interface Fixture {
  table: string
  /** Data for a new row of this tenant (tenantId added by the test). */
  create(parents: Parents, n: number): Record<string, unknown>
  /** A harmless change, to try on another tenant's row. */
  update: Record<string, unknown>
}

const FIXTURES: Record<string, Fixture> = {
  User: { table: 'users', create: (_p, n) => ({ email: `user${n}@example.com`, name: `User ${n}`, passwordHash: 'x', role: 'member' }), update: { name: 'changed' } },
  Session: { table: 'sessions', create: (p, n) => ({ userId: p.userId, refreshTokenHash: `hash-${n}`, expiresAt: new Date(Date.now() + 3600_000) }), update: { refreshTokenHash: 'changed' } },
  Project: { table: 'projects', create: (_p, n) => ({ name: `Project ${n}` }), update: { name: 'changed' } },
  Task: { table: 'tasks', create: (p, n) => ({ projectId: p.projectId, title: `Task ${n}` }), update: { title: 'changed' } },
  ApiKey: { table: 'api_keys', create: (p, n) => ({ name: `Key ${n}`, prefix: `tk_live_${String(n).padStart(12, '0')}`, keyHash: 'a'.repeat(64), scopes: ['projects:read'], createdBy: p.userId }), update: { name: 'changed' } },
}

const lowerFirst = (s: string) => s[0]!.toLowerCase() + s.slice(1)
let counter = 0

async function arrange(ownerUrl: string, slug: string) {
  const tenantId = await insertTenant(ownerUrl, slug)
  const user = await adminQuery<{ id: string }>(ownerUrl, `INSERT INTO users (tenant_id, email, name, password_hash) VALUES ($1, 'parent@example.com', 'Parent', 'x') RETURNING id`, [tenantId])
  const project = await adminQuery<{ id: string }>(ownerUrl, `INSERT INTO projects (tenant_id, name) VALUES ($1, 'Parent project') RETURNING id`, [tenantId])
  return { tenantId, parents: { userId: user.rows[0]!.id, projectId: project.rows[0]!.id } }
}

/** Rows of `table` as the owner sees them (RLS does not apply to the owner). */
const snapshot = async (ownerUrl: string, table: string) =>
  (await adminQuery(ownerUrl, `SELECT * FROM ${table} ORDER BY id`)).rows

for (const layer of ['extension only (RLS off)', 'row-level security only (extension filters off)'] as const) {
  t.test(layer, async (t) => {
    const rlsOn = layer.startsWith('row-level')
    const { ownerUrl, database } = await openTestDatabase(t, { RLS: rlsOn ? 'on' : 'off' })
    const base = database.platformDb
    const a = await arrange(ownerUrl, 'alpha')
    const b = await arrange(ownerUrl, 'bravo')
    const clientA = base.$extends(tenantScope(base, a.tenantId, { filter: !rlsOn, rls: rlsOn })) as unknown as Record<string, Record<string, (args?: unknown) => Promise<any>>>

    const models = tenantOwnedModels(base)
    t.same(models.sort(), ['ApiKey', 'Project', 'Session', 'Task', 'User'], 'tenant-owned models are read from the data model')

    for (const model of models) {
      t.test(model, async (t) => {
        const fixture = FIXTURES[model]
        if (!fixture) return t.fail(`no isolation fixture for the tenant-owned model ${model}: add one`)
        const owner = (tenantId: string, parents: Parents) => ({ ...fixture.create(parents, ++counter), tenantId })
        // Rows of both tenants, written as the owner: the client under test must only ever see A's.
        const insert = (data: Record<string, unknown>) => runAsTenant(data.tenantId as string, () => (base as any)[lowerFirst(model)].create({ data })) as Promise<any>
        const rowA = await insert(owner(a.tenantId, a.parents))
        const rowB = await insert(owner(b.tenantId, b.parents))
        const delegate = clientA[lowerFirst(model)]!
        const before = await snapshot(ownerUrl, fixture.table)
        const foreign = { id: rowB.id }
        const refused = async (what: string, attempt: Promise<unknown>, check?: (value: any) => boolean) => {
          const outcome = await attempt.then((value) => ({ value }), (error: unknown) => ({ error }))
          if ('error' in outcome) t.pass(`${what}: refused (${(outcome.error as Error).name})`)
          else t.ok(check?.(outcome.value) ?? false, `${what}: ${JSON.stringify(outcome.value)?.slice(0, 120)}`)
        }

        // Reads, counts and aggregates
        await refused('findUnique', delegate.findUnique!({ where: foreign }), (v) => v === null)
        await refused('findUniqueOrThrow', delegate.findUniqueOrThrow!({ where: foreign }))
        await refused('findFirst', delegate.findFirst!({ where: foreign }), (v) => v === null)
        await refused('findFirstOrThrow', delegate.findFirstOrThrow!({ where: foreign }))
        await refused('findMany', delegate.findMany!(), (rows: any[]) => rows.length > 0 && rows.every((r) => r.tenantId === a.tenantId))
        await refused('findMany of the other tenant by tenantId', delegate.findMany!({ where: { tenantId: b.tenantId } }), (rows: any[]) => rows.length === 0)
        await refused('count', delegate.count!({ where: foreign }), (n) => n === 0)
        await refused('count all', delegate.count!(), (n) => n === (model === 'User' ? 2 : model === 'Project' ? 2 : 1))
        await refused('aggregate', delegate.aggregate!({ where: foreign, _count: { _all: true } }), (v) => v._count._all === 0)
        await refused('groupBy', delegate.groupBy!({ by: ['tenantId'], _count: { _all: true } }), (groups: any[]) => groups.length === 1 && groups[0].tenantId === a.tenantId)

        // Writes aimed at the other tenant's row
        await refused('update', delegate.update!({ where: foreign, data: fixture.update }))
        await refused('updateMany', delegate.updateMany!({ where: foreign, data: fixture.update }), (v) => v.count === 0)
        await refused('updateManyAndReturn', delegate.updateManyAndReturn!({ where: foreign, data: fixture.update }), (rows: any[]) => rows.length === 0)
        await refused('delete', delegate.delete!({ where: foreign }))
        await refused('deleteMany', delegate.deleteMany!({ where: foreign }), (v) => v.count === 0)
        await refused('upsert on the foreign row', delegate.upsert!({ where: foreign, create: owner(a.tenantId, a.parents), update: fixture.update }),
          (v) => v.tenantId === a.tenantId && v.id !== rowB.id)
        // Moving a row of ours to the other tenant
        await refused('update tenantId', delegate.update!({ where: { id: rowA.id }, data: { tenantId: b.tenantId } }))
        await refused('upsert moving tenantId', delegate.upsert!({ where: { id: rowA.id }, create: owner(a.tenantId, a.parents), update: { tenantId: b.tenantId } }))
        // Creating rows in the other tenant
        await refused('create', delegate.create!({ data: owner(b.tenantId, b.parents) }))
        await refused('createMany', delegate.createMany!({ data: [owner(b.tenantId, b.parents)] }))
        await refused('createManyAndReturn', delegate.createManyAndReturn!({ data: [owner(b.tenantId, b.parents)] }))

        const after = await snapshot(ownerUrl, fixture.table)
        const ofB = (rows: any[]) => JSON.stringify(rows.filter((r) => r.tenant_id === b.tenantId))
        t.equal(ofB(after), ofB(before), `tenant B's ${fixture.table} are exactly as they were`)
        const mine = await adminQuery(ownerUrl, `SELECT tenant_id FROM ${fixture.table} WHERE id = $1`, [rowA.id])
        t.equal(mine.rows[0]?.tenant_id, a.tenantId, 'our row still belongs to us')
      })
    }
  })
}

t.test('the database refuses nested writes and connects across tenants', async (t) => {
  const { ownerUrl, database } = await openTestDatabase(t, { RLS: 'off' })
  const a = await arrange(ownerUrl, 'alpha')
  const b = await arrange(ownerUrl, 'bravo')
  const taskB = await adminQuery<{ id: string }>(ownerUrl, `INSERT INTO tasks (tenant_id, project_id, title) VALUES ($1, $2, 'B task') RETURNING id`, [b.tenantId, b.parents.projectId])
  const scoped = database.forTenant(a.tenantId)

  await t.rejects(scoped.project.update({ where: { id: a.parents.projectId }, data: { tasks: { connect: { id: taskB.rows[0]!.id } } } }),
    'connecting B\'s task to A\'s project fails')
  await t.rejects(scoped.task.create({ data: { projectId: b.parents.projectId, title: 'sneaky' } as any }), 'a task of A under B\'s project fails')
  const taskA = await scoped.task.create({ data: { projectId: a.parents.projectId, title: 'ours' } as any })
  await t.rejects(scoped.task.update({ where: { id: taskA.id }, data: { project: { connect: { id: b.parents.projectId } } } as any }),
    'moving our task under B\'s project (which would move it to B) fails')
  await t.rejects(scoped.tenant.update({ where: { id: a.tenantId }, data: { projects: { connect: { id: b.parents.projectId } } } }),
    'pulling B\'s project into our tenant through the tenant relation fails')
  await t.rejects(scoped.project.update({ where: { id: a.parents.projectId }, data: { tasks: { update: { where: { id: taskB.rows[0]!.id }, data: { title: 'x' } } } } }),
    'a nested update of B\'s task fails')
  t.equal((await adminQuery(ownerUrl, 'SELECT tenant_id FROM tasks WHERE id = $1', [taskA.id])).rows[0]!.tenant_id, a.tenantId, 'our task stays ours')
  t.equal((await adminQuery(ownerUrl, 'SELECT tenant_id FROM projects WHERE id = $1', [b.parents.projectId])).rows[0]!.tenant_id, b.tenantId, 'B\'s project stays B\'s')
  const created = await scoped.project.create({ data: { name: 'nested', tasks: { create: [{ title: 'inner' }] } } as any, include: { tasks: true } })
  t.equal((created as any).tasks[0].tenantId, a.tenantId, 'a nested create inherits the tenant')
  const still = await adminQuery(ownerUrl, 'SELECT tenant_id, project_id FROM tasks WHERE id = $1', [taskB.rows[0]!.id])
  t.same(still.rows[0], { tenant_id: b.tenantId, project_id: b.parents.projectId }, 'B\'s task is untouched')
})

t.test('a scoped client has no raw SQL; the unscoped client sees no tenant rows under RLS', async (t) => {
  const { ownerUrl, database } = await openTestDatabase(t)
  const a = await arrange(ownerUrl, 'alpha')
  const scoped = database.forTenant(a.tenantId)
  t.throws(() => scoped.$queryRaw`SELECT * FROM projects`, TenantScopeError)
  t.throws(() => scoped.$executeRawUnsafe('DELETE FROM projects'), TenantScopeError)
  t.equal(await database.platformDb.project.count(), 0, 'with no tenant set, row-level security shows nothing')
  t.equal(await scoped.project.count(), 1, 'the scoped client sees its own row')
  t.throws(() => database.forTenant('not-a-uuid'), /UUID/, 'a tenant id must be a UUID')
})

t.test('findUnique inside a transaction reads the transaction\'s own uncommitted rows', async (t) => {
  const { ownerUrl, database } = await openTestDatabase(t)
  const a = await arrange(ownerUrl, 'alpha')
  const scoped = database.forTenant(a.tenantId)
  const seen = await scoped.$transaction(async (tx) => {
    const project = await tx.project.create({ data: { name: 'uncommitted' } as any })
    return [await tx.project.findUnique({ where: { id: project.id } }), await tx.project.findUniqueOrThrow({ where: { id: project.id } })]
  })
  t.equal(seen[0]?.name, 'uncommitted', 'findUnique ran inside the transaction')
  t.equal(seen[1]?.name, 'uncommitted', 'findUniqueOrThrow too')
  await t.rejects(scoped.$transaction(async (tx) => {
    await tx.project.create({ data: { name: 'rolled back' } as any })
    throw new Error('abort')
  }))
  t.equal(await scoped.project.count({ where: { name: 'rolled back' } }), 0, 'and a failed transaction leaves nothing')
})

t.test('the tenant never leaks between concurrent callers', async (t) => {
  const { ownerUrl, database } = await openTestDatabase(t)
  const a = await arrange(ownerUrl, 'alpha')
  const b = await arrange(ownerUrl, 'bravo')
  const ids = { [a.tenantId]: a.parents.projectId, [b.tenantId]: b.parents.projectId }
  const calls = Array.from({ length: 400 }, (_, i) => {
    const tenantId = i % 2 ? a.tenantId : b.tenantId
    const db = database.forTenant(tenantId)
    // Mix operations, including findUnique (which Prisma batches within a tick) and transactions.
    const op = i % 4
    if (op === 0) return db.project.findMany().then((rows) => rows.map((r) => r.tenantId))
    if (op === 1) return db.project.findUnique({ where: { id: ids[tenantId]! } }).then((r) => [r?.tenantId])
    if (op === 2) return db.$transaction(async (tx) => (await tx.project.findMany()).map((r) => r.tenantId))
    return db.project.findFirst({ where: { id: ids[tenantId === a.tenantId ? b.tenantId : a.tenantId]! } }).then((r) => (r ? [r.tenantId] : [tenantId]))
  })
  const results = await Promise.all(calls)
  const wrong = results.filter((tenants, i) => tenants.some((id) => id !== (i % 2 ? a.tenantId : b.tenantId)))
  t.equal(wrong.length, 0, '400 interleaved calls each saw only their own tenant')
  t.ok(results.every((r) => r.length > 0), 'and every call found its own row')
})
