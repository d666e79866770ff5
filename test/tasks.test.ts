import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { adminQuery } from './helper.ts'
import { assertError, buildApi, RANDOM_UUID, ROLES } from './api-helper.ts'

t.test('tasks: create, read, update, delete as every role', async (t) => {
  const { acme } = await buildApi(t)
  const project = (await acme.call('owner', { method: 'POST', url: '/v1/projects', payload: { name: 'P' } })).json()
  const base = `/v1/projects/${project.id}/tasks`
  for (const role of ROLES) {
    const created = await acme.call(role, { method: 'POST', url: base, payload: { title: `T ${role}` } })
    t.equal(created.statusCode, 201, role)
    const task = created.json()
    t.same(Object.keys(task).sort(), ['createdAt', 'description', 'dueAt', 'id', 'projectId', 'status', 'title', 'updatedAt'])
    t.match(task, { projectId: project.id, status: 'todo', description: null, dueAt: null })

    t.same((await acme.call(role, { url: `${base}/${task.id}` })).json(), task)
    const due = '2030-01-02T03:04:05+02:00'
    const patched = await acme.call(role, { method: 'PATCH', url: `${base}/${task.id}`, payload: { status: 'doing', dueAt: due, description: 'd' } })
    t.equal(patched.statusCode, 200)
    t.match(patched.json(), { status: 'doing', dueAt: '2030-01-02T01:04:05.000Z', description: 'd' }, 'dueAt answered in UTC')
    const cleared = await acme.call(role, { method: 'PATCH', url: `${base}/${task.id}`, payload: { dueAt: null } })
    t.equal(cleared.json().dueAt, null)

    t.equal((await acme.call(role, { method: 'DELETE', url: `${base}/${task.id}` })).statusCode, 204)
    assertError(t, await acme.call(role, { url: `${base}/${task.id}` }), 404, 'NOT_FOUND')
  }
  const full = await acme.call('member', { method: 'POST', url: base, payload: { title: 'All', description: 'x', status: 'done', dueAt: '2030-01-01T00:00:00Z' } })
  t.match(full.json(), { status: 'done', dueAt: '2030-01-01T00:00:00.000Z' })
  // Timestamps are kept to the millisecond: the microseconds a Python client's isoformat() sends are
  // cut off (not refused), and the offset becomes UTC; what is answered is what a read gives back.
  const fine = await acme.call('member', { method: 'POST', url: base, payload: { title: 'Fine', dueAt: '2030-01-01T02:00:00.123987+02:00' } })
  t.equal(fine.json().dueAt, '2030-01-01T00:00:00.123Z', 'microseconds cut to the millisecond, in UTC')
  t.equal((await acme.call('member', { url: `${base}/${fine.json().id}` })).json().dueAt, '2030-01-01T00:00:00.123Z', 'and read back so')
})

t.test('task routes 404 when the project is missing or another tenant\'s', async (t) => {
  const { acme, globex, ownerUrl } = await buildApi(t)
  const theirProject = (await globex.call('owner', { method: 'POST', url: '/v1/projects', payload: { name: 'G' } })).json()
  const theirTask = (await globex.call('owner', { method: 'POST', url: `/v1/projects/${theirProject.id}/tasks`, payload: { title: 'secret' } })).json()
  const ourProject = (await acme.call('owner', { method: 'POST', url: '/v1/projects', payload: { name: 'A' } })).json()
  const ourTask = (await acme.call('owner', { method: 'POST', url: `/v1/projects/${ourProject.id}/tasks`, payload: { title: 'ours' } })).json()
  const before = await adminQuery(ownerUrl, 'SELECT * FROM tasks ORDER BY id')

  const cases: Array<[string, string, string, object | undefined]> = []
  for (const projectId of [theirProject.id, RANDOM_UUID]) {
    cases.push(['list', 'GET', `/v1/projects/${projectId}/tasks`, undefined])
    cases.push(['create', 'POST', `/v1/projects/${projectId}/tasks`, { title: 'x' }])
    for (const id of [theirTask.id, ourTask.id, RANDOM_UUID]) {
      cases.push(['read', 'GET', `/v1/projects/${projectId}/tasks/${id}`, undefined])
      cases.push(['update', 'PATCH', `/v1/projects/${projectId}/tasks/${id}`, { title: 'pwned' }])
      cases.push(['delete', 'DELETE', `/v1/projects/${projectId}/tasks/${id}`, undefined])
    }
  }
  // Their task under our project: still a 404.
  for (const [method, payload] of [['GET', undefined], ['PATCH', { title: 'pwned' }], ['DELETE', undefined]] as const) {
    cases.push(['foreign task in our project', method, `/v1/projects/${ourProject.id}/tasks/${theirTask.id}`, payload])
  }
  for (const role of ROLES) {
    for (const [what, method, url, payload] of cases) {
      const res = await acme.call(role, { method: method as 'GET', url, payload })
      t.equal(res.statusCode, 404, `${role} ${what} ${url}`)
      t.equal(res.json().error.code, 'NOT_FOUND')
    }
  }
  t.same((await adminQuery(ownerUrl, 'SELECT * FROM tasks ORDER BY id')).rows, before.rows, 'no task changed')
})

t.test('task bodies are validated strictly', async (t) => {
  const { acme } = await buildApi(t)
  const project = (await acme.call('owner', { method: 'POST', url: '/v1/projects', payload: { name: 'P' } })).json()
  const url = `/v1/projects/${project.id}/tasks`
  for (const payload of [{}, { title: '' }, { title: 'x', status: 'blocked' }, { title: 'x', dueAt: 'tomorrow' }, { title: 'x', projectId: project.id }, { title: 'x', dueAt: 5 }]) {
    assertError(t, await acme.call('owner', { method: 'POST', url, payload }), 400, 'VALIDATION_FAILED')
  }
  assertError(t, await acme.call('owner', { url: '/v1/projects/nope/tasks' }), 400, 'VALIDATION_FAILED')
  assertError(t, await acme.call('owner', { url: `${url}/nope` }), 400, 'VALIDATION_FAILED')
})

// A project's DELETE locks the project, then its event waits for the tenant's audit chain; its
// cascade to the tasks runs at the end of its statement. A task's PATCH locks the task, then waits
// for the chain too. Whichever gets the chain first then waits for the other's row: PostgreSQL
// breaks the deadlock by rolling one statement back, which is run again (src/audit/audit-log.ts).
t.test('a project DELETE racing a write to one of its tasks: each answers as if they came one after the other', async (t) => {
  const { acme, ownerUrl } = await buildApi(t, { LOG_LEVEL: 'error' })
  const waitingOnLocks = async () => (await adminQuery<{ n: number }>(ownerUrl, "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")).rows[0]!.n
  for (const write of ['PATCH', 'POST', 'DELETE'] as const) {
    const project = (await acme.call('member', { method: 'POST', url: '/v1/projects', payload: { name: `P ${write}` } })).json()
    const task = (await acme.call('member', { method: 'POST', url: `/v1/projects/${project.id}/tasks`, payload: { title: 'T' } })).json()
    // Another audited write of the tenant in flight: both requests below queue behind it.
    const locker = new pg.Client({ connectionString: ownerUrl })
    await locker.connect()
    t.teardown(() => locker.end())
    await locker.query('BEGIN')
    await locker.query('SELECT 1 FROM tenants WHERE id = $1 FOR NO KEY UPDATE', [acme.id])
    const first = write === 'POST' ? 'task' : 'project'
    const projectDelete = () => acme.call('member', { method: 'DELETE', url: `/v1/projects/${project.id}` })
    const taskWrite = () => write === 'POST'
      ? acme.call('member', { method: 'POST', url: `/v1/projects/${project.id}/tasks`, payload: { title: 'T2' } })
      : acme.call('member', { method: write, url: `/v1/projects/${project.id}/tasks/${task.id}`, ...(write === 'PATCH' ? { payload: { title: 'T2' } } : {}) })
    const started = first === 'project' ? [projectDelete()] : [taskWrite()]
    for (let i = 0; i < 200 && await waitingOnLocks() < 1; i++) await sleep(25)
    started.push(first === 'project' ? taskWrite() : projectDelete())
    for (let i = 0; i < 200 && await waitingOnLocks() < 2; i++) await sleep(25)
    t.equal(await waitingOnLocks(), 2, `${write}: both wait on the chain`)
    await locker.query('COMMIT')
    const [a, b] = await Promise.all(started)
    const [deleted, written] = first === 'project' ? [a!, b!] : [b!, a!]
    t.equal(deleted.statusCode, 204, `${write}: the project is deleted (${deleted.body})`)
    t.ok([200, 201, 204, 404].includes(written.statusCode), `${write} of the task: ${written.statusCode} ${written.body}`)
    t.equal((await acme.call('member', { url: `/v1/projects/${project.id}/tasks/${task.id}` })).statusCode, 404, `${write}: no task outlives its project`)
    const { rows } = await adminQuery<{ n: number }>(ownerUrl, 'SELECT count(*)::int AS n FROM tasks WHERE project_id = $1', [project.id])
    t.equal(rows[0]!.n, 0)
  }
})
