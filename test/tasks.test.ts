import t from 'tap'
import pg from 'pg'
import { adminQuery, holdLock } from './helper.ts'
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
  // Review 62: the audit event held dueAt as sent (offset and microseconds), not as stored.
  await acme.call('member', { method: 'PATCH', url: `${base}/${fine.json().id}`, payload: { dueAt: '2031-06-01T12:00:00.000999-03:00' } })
  const events = (await acme.call('owner', { url: `/v1/audit-events?targetId=${fine.json().id}` })).json().data as Array<{ action: string, data: Record<string, unknown> }>
  t.same(events.map((event) => [event.action, event.data.dueAt]).sort(), [['task.created', '2030-01-01T00:00:00.123Z'], ['task.updated', '2031-06-01T15:00:00.000Z']], 'the events hold dueAt as stored')
  const untimed = await acme.call('member', { method: 'POST', url: base, payload: { title: 'No due date' } })
  const [untimedEvent] = (await acme.call('owner', { url: `/v1/audit-events?targetId=${untimed.json().id}` })).json().data
  t.notOk('dueAt' in untimedEvent.data, 'and none when none was sent')
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

// A project's DELETE locks the project and, by its cascade, the tasks; a task's write locks the
// task (or, for a new one, the project's key). Each audited statement takes the tenant's audit
// chain lock before any of those (src/audit/audit-log.ts auditedChange), so they queue on the chain
// holding nothing: no deadlock. (Taking the chain last, as before 2026-12-04, deadlocked them; each
// cycle stalled the tenant's writers for deadlock_timeout.)
t.test('a project DELETE racing a write to one of its tasks: each answers as if they came one after the other', async (t) => {
  const { acme, ownerUrl } = await buildApi(t, { LOG_LEVEL: 'error' })
  for (const write of ['PATCH', 'POST', 'DELETE'] as const) {
    const project = (await acme.call('member', { method: 'POST', url: '/v1/projects', payload: { name: `P ${write}` } })).json()
    const task = (await acme.call('member', { method: 'POST', url: `/v1/projects/${project.id}/tasks`, payload: { title: 'T' } })).json()
    // Another audited write of the tenant in flight: both requests below queue behind it.
    const chain = await holdLock(t, ownerUrl, 'SELECT 1 FROM tenants WHERE id = $1 FOR NO KEY UPDATE', [acme.id])
    const first = write === 'POST' ? 'task' : 'project'
    const projectDelete = () => acme.call('member', { method: 'DELETE', url: `/v1/projects/${project.id}` })
    const taskWrite = () => write === 'POST'
      ? acme.call('member', { method: 'POST', url: `/v1/projects/${project.id}/tasks`, payload: { title: 'T2' } })
      : acme.call('member', { method: write, url: `/v1/projects/${project.id}/tasks/${task.id}`, ...(write === 'PATCH' ? { payload: { title: 'T2' } } : {}) })
    const started = first === 'project' ? [projectDelete()] : [taskWrite()]
    await chain.untilWaiting(1)
    started.push(first === 'project' ? taskWrite() : projectDelete())
    t.equal(await chain.untilWaiting(2), 2, `${write}: both wait on the chain`)
    // Queued on the chain, neither holds the project's or the task's row.
    const probe = new pg.Client({ connectionString: ownerUrl })
    await probe.connect()
    await probe.query('BEGIN')
    const lockable = async (table: string, id: string) =>
      probe.query(`SELECT 1 FROM ${table} WHERE id = $1 FOR UPDATE NOWAIT`, [id]).then(() => true, () => false)
    t.ok(await lockable('projects', project.id), `${write}: the project's row is free while both wait`)
    await probe.query('ROLLBACK; BEGIN')
    t.ok(await lockable('tasks', task.id), `${write}: the task's row is free while both wait`)
    await probe.query('ROLLBACK')
    await probe.end()
    await chain.release()
    const [a, b] = await Promise.all(started)
    const [deleted, written] = first === 'project' ? [a!, b!] : [b!, a!]
    t.equal(deleted.statusCode, 204, `${write}: the project is deleted (${deleted.body})`)
    t.ok([200, 201, 204, 404].includes(written.statusCode), `${write} of the task: ${written.statusCode} ${written.body}`)
    t.equal((await acme.call('member', { url: `/v1/projects/${project.id}/tasks/${task.id}` })).statusCode, 404, `${write}: no task outlives its project`)
    const { rows } = await adminQuery<{ n: number }>(ownerUrl, 'SELECT count(*)::int AS n FROM tasks WHERE project_id = $1', [project.id])
    t.equal(rows[0]!.n, 0)
  }
})

// The chain lock, taken first, makes the race above queue instead of deadlock; auditedChange still
// runs its statement again when PostgreSQL rolls it back for a deadlock (40P01) it did not foresee.
// A real one cannot be summoned on demand: a trigger raises it once (a sequence, which no rollback
// undoes, counts the attempts), through the same driver path as a real one.
t.test('a change rolled back for a deadlock is run again: one project, one event, 201', async (t) => {
  const { acme, ownerUrl } = await buildApi(t, { LOG_LEVEL: 'error' })
  await adminQuery(ownerUrl, `CREATE SEQUENCE deadlock_once; GRANT USAGE ON SEQUENCE deadlock_once TO saas_app;
    CREATE FUNCTION deadlock_once() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN IF nextval('deadlock_once') = 1 THEN RAISE EXCEPTION 'deadlock detected' USING ERRCODE = '40P01'; END IF; RETURN NEW; END $$;
    CREATE TRIGGER deadlock_once BEFORE INSERT ON projects FOR EACH ROW EXECUTE FUNCTION deadlock_once()`)
  const created = await acme.call('member', { method: 'POST', url: '/v1/projects', payload: { name: 'after a deadlock' } })
  t.equal(created.statusCode, 201, `created on the second attempt (${created.body})`)
  const { rows } = await adminQuery<{ n: number }>(ownerUrl, "SELECT (SELECT count(*)::int FROM projects WHERE name = 'after a deadlock') + (SELECT count(*)::int FROM audit_events WHERE action = 'project.created' AND target_id = $1) AS n", [created.json().id])
  t.equal(rows[0]!.n, 2, 'one project and its one event')
  const { rows: [attempts] } = await adminQuery<{ n: string }>(ownerUrl, 'SELECT last_value::text AS n FROM deadlock_once')
  t.equal(attempts!.n, '2', 'two attempts')
})

// One project's DELETE among writes to its tasks and another project's creation, all at once: the
// tenant's writes queue on its audit chain one after the other; none answers 503 (a statement that
// waited out statement_timeout) or 409 (a deadlock that was still one after its retries).
t.test('a project DELETE among concurrent writes to its tasks: every request answers, none 409 or 503', async (t) => {
  const { acme } = await buildApi(t, { LOG_LEVEL: 'error' })
  const answers: Record<string, number> = {}
  for (let round = 0; round < 8; round++) {
    const project = (await acme.call('member', { method: 'POST', url: '/v1/projects', payload: { name: `P ${round}` } })).json()
    const tasks = `/v1/projects/${project.id}/tasks`
    const task = (await acme.call('member', { method: 'POST', url: tasks, payload: { title: 'T' } })).json()
    const taskWrites = (n: number) => [
      ['POST task', acme.call('member', { method: 'POST', url: tasks, payload: { title: `T${n}` } })],
      ['PATCH task', acme.call('member', { method: 'PATCH', url: `${tasks}/${task.id}`, payload: { title: `T${n}` } })],
    ] as const
    const requests = [
      ...taskWrites(1), ...taskWrites(2),
      ['DELETE project', acme.call('owner', { method: 'DELETE', url: `/v1/projects/${project.id}` })],
      ...taskWrites(3), ...taskWrites(4),
      ['POST other project', acme.call('member', { method: 'POST', url: '/v1/projects', payload: { name: `other ${round}` } })],
    ] as const
    for (const [what, answer] of requests) {
      const { statusCode } = await answer
      answers[`${what} ${statusCode}`] = (answers[`${what} ${statusCode}`] ?? 0) + 1
    }
  }
  t.comment(JSON.stringify(answers))
  t.equal(answers['DELETE project 204'], 8, 'every project is deleted')
  t.equal(answers['POST other project 201'], 8, 'the other project is created every time')
  t.same(Object.keys(answers).filter((key) => !/ (200|201|204|404)$/.test(key)), [], 'no other answer than 200, 201, 204 or 404 (the task gone with its project)')
})
