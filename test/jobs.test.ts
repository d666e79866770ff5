// The background job system (src/jobs/*) on a real PostgreSQL: tenant context and isolation,
// transactional enqueue, retries with backoff into the dead letters, platform jobs, idempotent
// email jobs, and a database outage.
import t from 'tap'
import { InvalidJobError, JobRunner, type JobLog } from '../src/jobs/runner.ts'
import { tenantTransaction } from '../src/jobs/tenant-transaction.ts'
import { sqlStateOf } from '../src/db/conflicts.ts'
import { createDatabase } from '../src/db/database.ts'
import { tenantScope, TenantScopeError } from '../src/tenancy/scoped-client.ts'
import { createUser } from './auth-helper.ts'
import { buildApp } from '../src/app.ts'
import { adminQuery, build, createTestDatabase, cuttableProxy, insertTenant, openTestDatabase, testConfig } from './helper.ts'
import { startSmtp } from './mail-helper.ts'

type Tap = Parameters<typeof build>[0]
const quiet: JobLog = { info () {}, warn () {}, error () {} }
const until = async (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000) => {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
const JOB_ENV = { JOB_POLL_INTERVAL_S: '0.5', JOB_RETRY_LIMIT: '1', JOB_RETRY_DELAY_S: '1' }

async function twoTenants (ownerUrl: string) {
  const a = await insertTenant(ownerUrl, 'acme')
  const b = await insertTenant(ownerUrl, 'globex')
  await adminQuery(ownerUrl, "INSERT INTO projects (tenant_id, name) VALUES ($1, 'A1'), ($1, 'A2'), ($2, 'B1')", [a, b])
  return { a, b }
}

function startRunner (t: Tap, runner: JobRunner) {
  t.teardown(() => runner.stop())
  return runner.start()
}

/**
 * A fresh database with two tenants, and a runner (no worker) of the queue 'after-change'.
 * `written(marker)`: what the transactions of `marker` left, as the owner sees it — the tenants of
 * the projects named `marker`, and the data of the 'after-change' jobs that carry it.
 */
async function afterChangeRunner (t: Tap) {
  const { ownerUrl, database } = await openTestDatabase(t, JOB_ENV)
  const { a } = await twoTenants(ownerUrl)
  const runner = new JobRunner(testConfig(ownerUrl, { ...JOB_ENV, JOBS_WORKER: 'false' }), database, quiet)
  runner.defineTenantJob('after-change', async () => {})
  await startRunner(t, runner)
  const written = async (marker: string) => ({
    projects: (await adminQuery(ownerUrl, 'SELECT tenant_id FROM projects WHERE name = $1', [marker])).rows,
    jobs: (await adminQuery(ownerUrl, "SELECT data FROM pgboss.job WHERE name = 'after-change' AND data->>'marker' = $1", [marker])).rows,
  })
  return { database, a, runner, written }
}

t.test('a job runs inside its tenant: with the extension filter off, RLS alone hides the other tenant (both ways)', async (t) => {
  const { ownerUrl, database } = await openTestDatabase(t, JOB_ENV)
  const { a, b } = await twoTenants(ownerUrl)
  const base = database.platformDb
  // The handlers get a client with the Prisma extension's filters taken away: only RLS is left.
  const rlsOnly = (tenantId: string) => base.$extends(tenantScope(base, tenantId, { filter: false, rls: true })) as never
  const runner = new JobRunner(testConfig(ownerUrl, JOB_ENV), database, quiet, rlsOnly)
  const seen: Record<string, { names: string[]; raw: string[]; other: number; writeRefused: boolean }> = {}
  runner.defineTenantJob<{ otherTenantId: string }>('read-projects', async ({ tenant, db }, { otherTenantId }) => {
    const rows = await db.project.findMany({ select: { name: true }, orderBy: { name: 'asc' } })
    // Even raw SQL on the unscoped client runs under the job's tenant.
    const raw = await base.$queryRawUnsafe<{ name: string }[]>('SELECT name FROM projects ORDER BY name')
    const other = await db.project.count({ where: { tenantId: otherTenantId } })
    const writeRefused = await db.project.create({ data: { tenantId: otherTenantId, name: 'planted' } as never }).then(() => false, () => true)
    seen[tenant.slug] = { names: rows.map((r) => r.name), raw: raw.map((r) => r.name), other, writeRefused }
  })
  await startRunner(t, runner)
  await runner.send('read-projects', a, { otherTenantId: b })
  await runner.send('read-projects', b, { otherTenantId: a })
  await until('both jobs', () => Object.keys(seen).length === 2)
  t.same(seen.acme, { names: ['A1', 'A2'], raw: ['A1', 'A2'], other: 0, writeRefused: true }, 'tenant A sees only its rows, cannot write into B')
  t.same(seen.globex, { names: ['B1'], raw: ['B1'], other: 0, writeRefused: true }, 'tenant B sees only its rows, cannot write into A')
  const { rows } = await adminQuery(ownerUrl, "SELECT count(*)::int AS n FROM projects WHERE name = 'planted'")
  t.equal(rows[0]!.n, 0)
})

t.test('a job enqueued in a tenant\'s request runs as that tenant: its client and even raw SQL see only that tenant', async (t) => {
  const url = await createTestDatabase(t)
  const config = testConfig(url, JOB_ENV)
  const database = createDatabase(config, url)
  const app = await buildApp({ config, database })
  t.teardown(() => app.close())
  const { a, b } = await twoTenants(url)
  const seen: Record<string, { names: string[]; rawTenants: string[] }> = {}
  // Defined before the app is ready (as src/jobs/system.ts defines the real ones), and enqueued by
  // a route the way the invitation route does it: in the request's tenant transaction.
  app.jobs.defineTenantJob('probe', async ({ tenant, db }) => {
    const names = (await db.project.findMany({ select: { name: true }, orderBy: { name: 'asc' } })).map((r) => r.name)
    const raw = await database.platformDb.$queryRawUnsafe<{ tenant_id: string }[]>('SELECT DISTINCT tenant_id::text FROM projects')
    seen[tenant.slug] = { names, rawTenants: raw.map((r) => r.tenant_id) }
  })
  app.post('/probe', async (request) => {
    await tenantTransaction(app.database, app.jobs, request.tenant!.id, (_tx, jobs) => jobs.send('probe', {}))
    return { queued: true }
  })
  await app.ready()
  await app.jobs.whenStarted()
  for (const host of ['acme.localhost', 'globex.localhost']) {
    const res = await app.inject({ method: 'POST', url: '/probe', headers: { host }, payload: {} })
    t.equal(res.statusCode, 200, `${host}: enqueued`)
  }
  await until('both jobs', () => Object.keys(seen).length === 2)
  t.same(seen.acme, { names: ['A1', 'A2'], rawTenants: [a] }, 'the job of acme\'s request sees acme\'s rows only')
  t.same(seen.globex, { names: ['B1'], rawTenants: [b] }, 'the job of globex\'s request sees globex\'s rows only')
})

t.test('tenant jobs need a tenant; platform jobs must not name one', async (t) => {
  const { ownerUrl, database } = await openTestDatabase(t, JOB_ENV)
  const { a } = await twoTenants(ownerUrl)
  const runner = new JobRunner(testConfig(ownerUrl, { ...JOB_ENV, JOBS_WORKER: 'false' }), database, quiet)
  let platformRuns = 0
  runner.defineTenantJob('tenant-job', async () => {})
  runner.definePlatformJob('platform-job', async () => { platformRuns++ })
  await startRunner(t, runner)
  await t.rejects(runner.send('tenant-job', undefined, {}), InvalidJobError)
  await t.rejects(runner.send('tenant-job', 'not-a-uuid', {}), InvalidJobError)
  await t.rejects(runner.send('platform-job', a, {}), InvalidJobError)
  await t.rejects(runner.send('unknown-job', a, {}), InvalidJobError)
  await t.rejects(runner.process('tenant-job', { id: '00000000-0000-4000-8000-000000000001', data: {} }), InvalidJobError, 'a job row without a tenant never runs')
  await runner.process('platform-job', { id: '00000000-0000-4000-8000-000000000002', data: {} })
  t.equal(platformRuns, 1)
  // A suspended tenant's jobs do not run (they fail and are retried: reactivation lets them through).
  await adminQuery(ownerUrl, "UPDATE tenants SET status = 'suspended' WHERE id = $1", [a])
  await t.rejects(runner.process('tenant-job', { id: '00000000-0000-4000-8000-000000000003', data: { tenantId: a } }), InvalidJobError)
})

t.test('transactional enqueue: the job exists only if the change commits', async (t) => {
  const { database, a, runner, written } = await afterChangeRunner(t)

  await t.rejects(tenantTransaction(database, runner, a, async (tx, jobs) => {
    await tx.project.create({ data: { name: 'rollback' } as never })
    await jobs.send('after-change', { marker: 'rollback' })
    throw new Error('the change fails after the enqueue')
  }), /the change fails/)
  t.same(await written('rollback'), { projects: [], jobs: [] }, 'no job without its change')

  await tenantTransaction(database, runner, a, async (tx, jobs) => {
    await tx.project.create({ data: { name: 'commit' } as never })
    await jobs.send('after-change', { marker: 'commit' })
  })
  t.same(await written('commit'), {
    projects: [{ tenant_id: a }],
    jobs: [{ data: { marker: 'commit', tenantId: a, queue: 'after-change' } }],
  }, 'the job commits with its change, carrying the tenant')
  // Inside the transaction the scoped rules hold too (the extension's layer).
  await t.rejects(tenantTransaction(database, runner, a, async (tx) => {
    await tx.project.findMany({ where: { tenantId: '00000000-0000-4000-8000-000000000000' } })
  }), TenantScopeError)
})

t.test('the rollback hook runs only when nothing committed; a caught database error cannot commit', async (t) => {
  const { database, a, runner, written } = await afterChangeRunner(t)
  const nothing = { projects: [], jobs: [] }
  let rolledBack = 0
  const hook = { onRollback: async () => { rolledBack++ } }

  // fn's own throw: rolled back, the hook ran once.
  await t.rejects(tenantTransaction(database, runner, a, async (tx, jobs) => {
    await tx.project.create({ data: { name: 'thrown' } as never })
    await jobs.send('after-change', { marker: 'thrown' })
    throw new Error('the change fails')
  }, hook), /the change fails/)
  t.same({ rolledBack, ...(await written('thrown')) }, { rolledBack: 1, ...nothing })

  // fn caught a failed statement (a duplicate key) and returned: PostgreSQL answers its COMMIT with
  // ROLLBACK and no error, so without the pool's check the call would resolve with nothing written.
  const id = '00000000-0000-4000-8000-00000000c0de'
  const error = await tenantTransaction(database, runner, a, async (tx, jobs) => {
    await tx.project.create({ data: { id, name: 'caught' } as never })
    await jobs.send('after-change', { marker: 'caught' })
    await tx.project.create({ data: { id, name: 'caught twice' } as never }).catch(() => {})
    return 'reported as committed'
  }, hook).then((value) => value, (error: unknown) => error)
  t.equal(sqlStateOf(error), '25P02', 'the call fails: the transaction was aborted')
  t.match((error as Error).message, /failed earlier \(SQLSTATE 23505\)/, 'naming the error that was caught')
  t.same({ rolledBack, ...(await written('caught')) }, { rolledBack: 2, ...nothing }, 'nothing written, the hook ran')

  // The same on any interactive transaction of the API's pool, not only tenantTransaction's.
  await t.rejects(database.platformDb.$transaction(async (tx) => {
    await tx.$executeRawUnsafe('SELECT 1 / 0').catch(() => {})
  }), /SQLSTATE 22012/, 'a plain $transaction that swallowed a division by zero rejects too')
  // A savepoint rolled back recovers the transaction: the error named is the one caught after it.
  await t.rejects(database.platformDb.$transaction(async (tx) => {
    await tx.$executeRawUnsafe('SAVEPOINT before_division')
    await tx.$executeRawUnsafe('SELECT 1 / 0').catch(() => {})
    await tx.$executeRawUnsafe('ROLLBACK TO SAVEPOINT before_division')
    await tx.$executeRawUnsafe("SELECT 'x'::int").catch(() => {})
  }), /SQLSTATE 22P02/, 'the error named is the one that aborted the transaction')

  // The hook failing does not replace the transaction's own error, which carries it.
  const original = await tenantTransaction(database, runner, a, async () => {
    throw new Error('the original error')
  }, { onRollback: async () => { throw new Error('the hook failed') } }).then(() => undefined, (error: unknown) => error as Error & { rollbackHookError?: Error })
  t.equal(original?.message, 'the original error')
  t.equal(original?.rollbackHookError?.message, 'the hook failed')

  // Prisma's interactive-transaction timeout (5 s) rolled the transaction back before COMMIT: Prisma
  // refuses to send it (P2028), so nothing committed and the hook runs.
  const expired = await tenantTransaction(database, runner, a, async (tx, jobs) => {
    await tx.project.create({ data: { name: 'expired' } as never })
    await jobs.send('after-change', { marker: 'expired' })
    await new Promise((resolve) => setTimeout(resolve, 5_500))
  }, hook).then(() => undefined, (error: unknown) => error as Error & { code?: string })
  t.equal(expired?.code, 'P2028', 'the commit of an expired transaction is refused')
  t.same({ rolledBack, ...(await written('expired')) }, { rolledBack: 3, ...nothing }, 'nothing written, the hook ran')

  // A commit: no hook.
  await tenantTransaction(database, runner, a, async (tx, jobs) => {
    await tx.project.create({ data: { name: 'committed' } as never })
    await jobs.send('after-change', { marker: 'committed' })
  }, hook)
  t.same({ rolledBack, ...(await written('committed')) }, {
    rolledBack: 3,
    projects: [{ tenant_id: a }],
    jobs: [{ data: { marker: 'committed', tenantId: a, queue: 'after-change' } }],
  })
})

t.test('a failing job is retried with backoff, then lands in the dead letters', async (t) => {
  const { ownerUrl, database } = await openTestDatabase(t, JOB_ENV)
  const { a } = await twoTenants(ownerUrl)
  const runner = new JobRunner(testConfig(ownerUrl, JOB_ENV), database, quiet)
  const attempts: number[] = []
  runner.defineTenantJob('always-fails', async () => {
    attempts.push(Date.now())
    throw new Error('SMTP said no')
  })
  await startRunner(t, runner)
  const id = await runner.send('always-fails', a, { what: 'doomed' })
  await until('the dead letter', async () => (await runner.deadLetters()).some((job) => job.queue === 'always-fails'))
  t.equal(attempts.length, 2, 'the first attempt and JOB_RETRY_LIMIT=1 retry')
  t.ok(attempts[1]! - attempts[0]! >= 1000, 'the retry waited at least JOB_RETRY_DELAY_S')
  const [dead] = await runner.deadLetters()
  t.equal(dead!.tenantId, a)
  t.match(dead!.data, { what: 'doomed', tenantId: a, queue: 'always-fails' })
  const { rows } = await adminQuery(ownerUrl, 'SELECT state, retry_count FROM pgboss.job WHERE id = $1', [id])
  t.same(rows, [{ state: 'failed', retry_count: 1 }])
})

t.test('email jobs are idempotent: the same job delivered twice sends one email', async (t) => {
  const smtp = await startSmtp(t)
  const { app, ownerUrl } = await build(t, { env: { ...JOB_ENV, SMTP_URL: smtp.url } })
  const acme = await insertTenant(ownerUrl, 'acme')
  const owner = await createUser(ownerUrl, acme, { email: 'owner@acme.example', password: 'correct horse battery staple', role: 'owner' })
  const login = await app.inject({ method: 'POST', url: '/v1/auth/login', headers: { host: 'acme.localhost' }, payload: { email: owner.email, password: 'correct horse battery staple' } })
  const bearer = { host: 'acme.localhost', authorization: `Bearer ${login.json().accessToken}` }
  t.equal((await app.inject({ method: 'POST', url: '/v1/invitations', headers: bearer, payload: { email: 'twice@example.com', role: 'member' } })).statusCode, 201)
  t.equal((await app.inject({ method: 'POST', url: '/v1/auth/password-reset', headers: { host: 'acme.localhost' }, payload: { email: owner.email } })).statusCode, 202)
  await smtp.waitFor('twice@example.com')
  await smtp.waitFor(owner.email)
  const { rows: jobs } = await adminQuery<{ id: string; name: string; data: object }>(ownerUrl, "SELECT id, name, data FROM pgboss.job WHERE name LIKE 'email-%'")
  t.equal(jobs.length, 2)
  for (const job of jobs) await app.jobs.process(job.name, job) // redelivered, as after a lost worker
  await new Promise((resolve) => setTimeout(resolve, 500))
  t.same(smtp.messages.map((m) => m.to).sort(), [owner.email, 'twice@example.com'], 'still one email each')
  const { rows } = await adminQuery(ownerUrl, 'SELECT count(*)::int AS n FROM password_reset_tokens')
  t.equal(rows[0]!.n, 1, 'one reset link')
})

t.test('database outage: the runner keeps the process alive and resumes when the database is back', async (t) => {
  const { ownerUrl, database: direct } = await openTestDatabase(t, JOB_ENV)
  const { a } = await twoTenants(ownerUrl)
  const proxy = await cuttableProxy(t, new URL(ownerUrl))
  const config = testConfig(proxy.url, JOB_ENV)
  const database = createDatabase(config, proxy.url)
  t.teardown(() => database.close())
  const warnings: string[] = []
  const runner = new JobRunner(config, database, { info () {}, error () {}, warn: (_f, m) => warnings.push(m) })
  const done: string[] = []
  runner.defineTenantJob<{ n: string }>('count', async ({ db }, { n }) => {
    await db.project.count()
    done.push(n)
  })
  await startRunner(t, runner)
  await runner.send('count', a, { n: 'before' })
  await until('the first job', () => done.includes('before'))

  await proxy.cut()
  // Meanwhile another instance (directly connected) enqueues work.
  const sender = new JobRunner(testConfig(ownerUrl, { ...JOB_ENV, JOBS_WORKER: 'false' }), direct, quiet)
  sender.defineTenantJob('count', async () => {})
  await startRunner(t, sender)
  await sender.send('count', a, { n: 'during' })
  await new Promise((resolve) => setTimeout(resolve, 3000)) // several polls fail
  t.ok(warnings.some((m) => /database error/.test(m)), 'the outage is logged')
  t.notOk(done.includes('during'), 'nothing runs without the database')

  await proxy.restore()
  await until('the job enqueued during the outage', () => done.includes('during'))
  t.pass('the same process ran it after the database came back')
})
