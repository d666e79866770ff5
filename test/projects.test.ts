import t from 'tap'
import { adminQuery } from './helper.ts'
import { assertError, buildApi, RANDOM_UUID, ROLES } from './api-helper.ts'

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/

t.test('projects: create, read, update, delete as every role', async (t) => {
  const { acme } = await buildApi(t)
  for (const role of ROLES) {
    const created = await acme.call(role, { method: 'POST', url: '/v1/projects', payload: { name: `P ${role}` } })
    t.equal(created.statusCode, 201, role)
    const project = created.json()
    t.same(Object.keys(project).sort(), ['createdAt', 'description', 'id', 'name', 'updatedAt'])
    t.equal(project.description, null)
    t.match(project.createdAt, ISO)

    const read = await acme.call(role, { url: `/v1/projects/${project.id}` })
    t.equal(read.statusCode, 200)
    t.same(read.json(), project)

    const patched = await acme.call(role, { method: 'PATCH', url: `/v1/projects/${project.id}`, payload: { description: 'about', name: 'Renamed' } })
    t.equal(patched.statusCode, 200)
    t.equal(patched.json().description, 'about')
    t.equal(patched.json().name, 'Renamed')
    const cleared = await acme.call(role, { method: 'PATCH', url: `/v1/projects/${project.id}`, payload: { description: null } })
    t.equal(cleared.json().description, null)

    const deleted = await acme.call(role, { method: 'DELETE', url: `/v1/projects/${project.id}` })
    t.equal(deleted.statusCode, 204)
    t.equal(deleted.body, '')
    assertError(t, await acme.call(role, { url: `/v1/projects/${project.id}` }), 404, 'NOT_FOUND')
  }
})

t.test('projects need a token', async (t) => {
  const { acme } = await buildApi(t)
  for (const [method, url] of [['GET', '/v1/projects'], ['POST', '/v1/projects'], ['GET', `/v1/projects/${RANDOM_UUID}`], ['PATCH', `/v1/projects/${RANDOM_UUID}`], ['DELETE', `/v1/projects/${RANDOM_UUID}`]] as const) {
    assertError(t, await acme.call(null, { method, url, payload: method === 'POST' || method === 'PATCH' ? { name: 'x' } : undefined }), 401, 'UNAUTHORIZED')
  }
})

t.test("another tenant's project is a 404 exactly like a missing one, and stays unchanged", async (t) => {
  const { acme, globex, ownerUrl } = await buildApi(t)
  const foreign = (await globex.call('owner', { method: 'POST', url: '/v1/projects', payload: { name: 'Secret', description: 'globex only' } })).json()
  const before = await adminQuery(ownerUrl, 'SELECT * FROM projects WHERE id = $1', [foreign.id])
  for (const role of ROLES) {
    for (const [method, payload] of [['GET', undefined], ['PATCH', { name: 'pwned' }], ['DELETE', undefined]] as const) {
      const theirs = await acme.call(role, { method, url: `/v1/projects/${foreign.id}`, payload })
      const missing = await acme.call(role, { method, url: `/v1/projects/${RANDOM_UUID}`, payload })
      assertError(t, theirs, 404, 'NOT_FOUND')
      t.same({ ...theirs.json().error, requestId: '' }, { ...missing.json().error, requestId: '' }, `${role} ${method}: same answer as a missing id`)
    }
  }
  const list = (await acme.call('owner', { url: '/v1/projects' })).json()
  t.notOk(list.data.some((p: { id: string }) => p.id === foreign.id), 'not listed')
  const after = await adminQuery(ownerUrl, 'SELECT * FROM projects WHERE id = $1', [foreign.id])
  t.same(after.rows, before.rows, 'the foreign row is unchanged')
})

t.test('deleting a project deletes its tasks', async (t) => {
  const { acme, ownerUrl } = await buildApi(t)
  const project = (await acme.call('member', { method: 'POST', url: '/v1/projects', payload: { name: 'P' } })).json()
  for (const title of ['a', 'b']) await acme.call('member', { method: 'POST', url: `/v1/projects/${project.id}/tasks`, payload: { title } })
  t.equal((await adminQuery(ownerUrl, 'SELECT count(*)::int AS n FROM tasks WHERE project_id = $1', [project.id])).rows[0]!.n, 2)
  t.equal((await acme.call('member', { method: 'DELETE', url: `/v1/projects/${project.id}` })).statusCode, 204)
  t.equal((await adminQuery(ownerUrl, 'SELECT count(*)::int AS n FROM tasks WHERE project_id = $1', [project.id])).rows[0]!.n, 0)
})

t.test('project bodies are validated strictly', async (t) => {
  const { acme } = await buildApi(t)
  for (const payload of [{}, { name: '' }, { name: 1 }, { name: 'x', extra: true }, { name: 'x', description: 5 }]) {
    assertError(t, await acme.call('owner', { method: 'POST', url: '/v1/projects', payload }), 400, 'VALIDATION_FAILED')
  }
  assertError(t, await acme.call('owner', { url: '/v1/projects/not-a-uuid' }), 400, 'VALIDATION_FAILED')
})
