import t from 'tap'
import { adminQuery } from './helper.ts'
import { assertError, buildApi, ROLES } from './api-helper.ts'

t.test('GET /v1/tenant: any user sees their own tenant', async (t) => {
  const { acme, globex } = await buildApi(t)
  for (const role of ROLES) {
    const res = await acme.call(role, { url: '/v1/tenant' })
    t.equal(res.statusCode, 200)
    t.match(res.json(), { id: acme.id, slug: 'acme', name: 'Acme Inc.', domain: null, settings: {} })
    t.same(Object.keys(res.json()).sort(), ['createdAt', 'domain', 'id', 'name', 'settings', 'slug', 'updatedAt'])
    t.equal(res.headers['cache-control'], 'no-store')
  }
  t.equal((await globex.call('member', { url: '/v1/tenant' })).json().id, globex.id)
  assertError(t, await acme.call(null, { url: '/v1/tenant' }), 401, 'UNAUTHORIZED')
  // A token of globex on acme's host is refused.
  assertError(t, await acme.call(null, { url: '/v1/tenant', headers: { authorization: `Bearer ${globex.users.owner.accessToken}` } }), 401, 'UNAUTHORIZED')
})

t.test('PATCH /v1/tenant: owner only; name and settings', async (t) => {
  const { app, acme, globex, ownerUrl } = await buildApi(t)
  const before = await adminQuery(ownerUrl, 'SELECT * FROM tenants WHERE id = $1', [globex.id])
  for (const role of ['admin', 'member'] as const) {
    assertError(t, await acme.call(role, { method: 'PATCH', url: '/v1/tenant', payload: { name: 'Hacked' } }), 403, 'FORBIDDEN')
  }
  const res = await acme.call('owner', { method: 'PATCH', url: '/v1/tenant', payload: { name: 'Acme Corp', settings: { theme: 'dark', seats: 5, nested: { a: [1, 2] } } } })
  t.equal(res.statusCode, 200)
  t.match(res.json(), { name: 'Acme Corp', settings: { theme: 'dark', seats: 5, nested: { a: [1, 2] } } })
  t.equal((await acme.call('member', { url: '/v1/tenant' })).json().name, 'Acme Corp')
  const replaced = await acme.call('owner', { method: 'PATCH', url: '/v1/tenant', payload: { settings: { theme: 'light' } } })
  t.same(replaced.json().settings, { theme: 'light' }, 'settings replaced as a whole')
  t.equal(replaced.json().name, 'Acme Corp')
  for (const payload of [{ slug: 'other' }, { status: 'suspended' }, { name: '' }, { settings: 'x' }, { settings: [1] }, { id: globex.id }]) {
    assertError(t, await acme.call('owner', { method: 'PATCH', url: '/v1/tenant', payload }), 400, 'VALIDATION_FAILED')
  }
  t.same((await adminQuery(ownerUrl, 'SELECT * FROM tenants WHERE id = $1', [globex.id])).rows, before.rows, 'the other tenant is unchanged')
  t.equal((await app.inject({ url: '/v1/tenant', headers: { host: 'localhost' } })).statusCode, 404, 'not a platform route')
})
