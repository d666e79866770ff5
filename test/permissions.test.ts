// Walks the whole role matrix declared in src/auth/permissions.ts through the HTTP API: for every
// action and role, a request doing that action answers 403 FORBIDDEN exactly when the declaration
// says the role may not. A new action without a request here fails the first test.
import t from 'tap'
import { PERMISSIONS, can, type Action } from '../src/auth/permissions.ts'
import { createUser } from './auth-helper.ts'
import { buildApi, PASSWORD, ROLES, type ApiFixture } from './api-helper.ts'
import type { InjectOptions } from 'fastify'

let n = 0
/** One request per action, on fresh targets so that each call can succeed when allowed. */
const REQUESTS: Record<Action, (f: ApiFixture) => Promise<InjectOptions>> = {
  'tenant.read': async () => ({ url: '/v1/tenant' }),
  'tenant.update': async () => ({ method: 'PATCH', url: '/v1/tenant', payload: { name: 'Acme' } }),
  'users.read': async () => ({ url: '/v1/users' }),
  'users.create': async () => ({ method: 'POST', url: '/v1/users', payload: { email: `c${++n}@acme.example`, name: 'C', role: 'member', password: PASSWORD } }),
  'users.update': async (f) => ({ method: 'PATCH', url: `/v1/users/${(await member(f)).id}`, payload: { name: 'Renamed' } }),
  'users.delete': async (f) => ({ method: 'DELETE', url: `/v1/users/${(await member(f)).id}` }),
  'users.manageOwners': async (f) => ({ method: 'PATCH', url: `/v1/users/${(await createUser(f.ownerUrl, f.acme.id, { email: `o${++n}@acme.example`, password: PASSWORD, role: 'owner' })).id}`, payload: { role: 'admin' } }),
  'projects.read': async () => ({ url: '/v1/projects' }),
  'projects.write': async () => ({ method: 'POST', url: '/v1/projects', payload: { name: 'P' } }),
  'tasks.read': async (f) => ({ url: `/v1/projects/${await project(f)}/tasks` }),
  'tasks.write': async (f) => ({ method: 'POST', url: `/v1/projects/${await project(f)}/tasks`, payload: { title: 'T' } }),
  'apiKeys.manage': async () => ({ method: 'POST', url: '/v1/api-keys', payload: { name: `k${++n}`, scopes: ['projects:read'] } }),
}

const member = (f: ApiFixture) => createUser(f.ownerUrl, f.acme.id, { email: `m${++n}@acme.example`, password: PASSWORD, role: 'member' })
const project = async (f: ApiFixture) => (await f.acme.call('owner', { method: 'POST', url: '/v1/projects', payload: { name: 'P' } })).json().id as string

t.test('every declared action has a request in this test', async (t) => {
  t.same(Object.keys(REQUESTS).sort(), Object.keys(PERMISSIONS).sort())
})

t.test('role × action matrix, through the API', async (t) => {
  const f = await buildApi(t)
  for (const action of Object.keys(PERMISSIONS) as Action[]) {
    for (const role of ROLES) {
      const res = await f.acme.call(role, await REQUESTS[action](f))
      if (can(role, action)) t.ok(res.statusCode < 400, `${role} may ${action} (${res.statusCode} ${res.body.slice(0, 120)})`)
      else t.equal(res.statusCode === 403 && res.json().error.code, 'FORBIDDEN', `${role} may not ${action}`)
    }
  }
})
