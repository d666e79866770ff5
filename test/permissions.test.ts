// The role × action matrix of shared/API.md "Resources", written out here from the contract (never
// read from src/auth/permissions.ts, the code under test), walked through the HTTP API: each request
// answers 403 FORBIDDEN exactly when the contract says the role may not. A new action declared in
// the code without a row here fails the first test.
import t from 'tap'
import { PERMISSIONS, type Action } from '../src/auth/permissions.ts'
import { createUser } from './auth-helper.ts'
import { buildApi, PASSWORD, ROLES, type ApiFixture } from './api-helper.ts'
import type { InjectOptions } from 'fastify'

/** From shared/API.md: tenant read any / write owner; users admin+owner, owners managed by owners only; projects and tasks any user. */
const CONTRACT: Record<Action, { owner: boolean; admin: boolean; member: boolean }> = {
  'tenant.read': { owner: true, admin: true, member: true },
  'tenant.update': { owner: true, admin: false, member: false },
  'users.read': { owner: true, admin: true, member: false },
  'users.create': { owner: true, admin: true, member: false },
  'users.update': { owner: true, admin: true, member: false },
  'users.delete': { owner: true, admin: true, member: false },
  'users.manageOwners': { owner: true, admin: false, member: false },
  'projects.read': { owner: true, admin: true, member: true },
  'projects.write': { owner: true, admin: true, member: true },
  'tasks.read': { owner: true, admin: true, member: true },
  'tasks.write': { owner: true, admin: true, member: true },
  // "API keys": POST/GET/DELETE /v1/api-keys (admin, owner)
  'apiKeys.manage': { owner: true, admin: true, member: false },
  // "Audit events": list (admin, owner), export and verify (owner)
  'audit.read': { owner: true, admin: true, member: false },
  'audit.export': { owner: true, admin: false, member: false },
  'audit.verify': { owner: true, admin: false, member: false },
  // "Invitations and password reset": POST/GET/DELETE /v1/invitations (admin, owner)
  'invitations.manage': { owner: true, admin: true, member: false },
}

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
  'audit.read': async () => ({ url: '/v1/audit-events' }),
  'audit.export': async () => ({ url: '/v1/audit-events/export' }),
  'audit.verify': async () => ({ url: '/v1/audit-events/verify' }),
  'invitations.manage': async () => ({ url: '/v1/invitations' }),
}

const member = (f: ApiFixture) => createUser(f.ownerUrl, f.acme.id, { email: `m${++n}@acme.example`, password: PASSWORD, role: 'member' })
const project = async (f: ApiFixture) => (await f.acme.call('owner', { method: 'POST', url: '/v1/projects', payload: { name: 'P' } })).json().id as string

t.test('every declared action has a request in this test', async (t) => {
  t.same(Object.keys(REQUESTS).sort(), Object.keys(PERMISSIONS).sort())
  t.same(Object.keys(CONTRACT).sort(), Object.keys(PERMISSIONS).sort())
})

t.test('role × action matrix, through the API', async (t) => {
  const f = await buildApi(t)
  for (const action of Object.keys(CONTRACT) as Action[]) {
    for (const role of ROLES) {
      const res = await f.acme.call(role, await REQUESTS[action](f))
      if (CONTRACT[action][role]) t.ok(res.statusCode < 400, `${role} may ${action} (${res.statusCode} ${res.body.slice(0, 120)})`)
      else t.equal(res.statusCode === 403 && res.json().error.code, 'FORBIDDEN', `${role} may not ${action}`)
    }
  }
})
