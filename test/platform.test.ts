import t from 'tap'
import { signIn } from './auth-helper.ts'
import { build, insertTenant } from './helper.ts'
import { assertError, PASSWORD } from './api-helper.ts'

const ADMIN_TOKEN = 'a'.repeat(20) + 'platform-admin-token-0123456789'
const signup = (slug: string, email = 'Founder@Example.com') => ({ slug, name: `${slug} Ltd`, owner: { email, password: PASSWORD, name: 'Founder' } })

t.test('signup creates a tenant and its owner, who can then sign in on the new host', async (t) => {
  const { app } = await build(t)
  // A visit before the signup finds no tenant (and that answer is cached)…
  assertError(t, await app.inject({ url: '/v1/tenant', headers: { host: 'initech.localhost' } }), 404, 'TENANT_NOT_FOUND')
  const res = await app.inject({ method: 'POST', url: '/v1/tenants', headers: { host: 'localhost' }, payload: signup('initech') })
  t.equal(res.statusCode, 201, res.body)
  const body = res.json()
  t.match(body.tenant, { slug: 'initech', name: 'initech Ltd', domain: null, settings: {} })
  t.match(body.owner, { email: 'founder@example.com', name: 'Founder', role: 'owner', active: true })
  t.notOk('passwordHash' in body.owner)
  // …yet the owner signs in on the new host at once, not after the cache's TTL.
  const session = await signIn(app, 'initech.localhost', 'founder@example.com', PASSWORD)
  const tenant = await app.inject({ url: '/v1/tenant', headers: { host: 'initech.localhost', authorization: `Bearer ${session.accessToken}` } })
  t.equal(tenant.json().id, body.tenant.id)
  // Also on a reserved label of the platform (api.localhost).
  t.equal((await app.inject({ method: 'POST', url: '/v1/tenants', headers: { host: 'api.localhost' }, payload: signup('hooli') })).statusCode, 201)
})

t.test('signup refuses taken, invalid and reserved slugs, and bad bodies', async (t) => {
  const { app, ownerUrl } = await build(t, { env: { SIGNUP_PER_IP_MAX: '1000' } }) // many attempts from one address
  await insertTenant(ownerUrl, 'taken')
  const post = (payload: object) => app.inject({ method: 'POST', url: '/v1/tenants', headers: { host: 'localhost' }, payload })
  assertError(t, await post(signup('taken')), 409, 'CONFLICT')
  for (const slug of ['ab', '-abc', 'abc-', 'Acme', 'a_b', 'www', 'api', 'admin', 'a'.repeat(64), 'a.b']) {
    assertError(t, await post(signup(slug)), 400, 'VALIDATION_FAILED')
  }
  // Labels DNS reserves (RFC 5891 §4.2.3.1): `xn--pple-43d` is shown by browsers as "аpple" (Cyrillic а).
  for (const slug of ['xn--pple-43d', 'ab--cd', 'xn--80ak6aa92e']) {
    const res = await post(signup(slug))
    assertError(t, res, 400, 'VALIDATION_FAILED')
    t.match(res.json().error.message, /-- in 3rd and 4th place/, slug)
  }
  t.equal((await post(signup('a--b'))).statusCode, 201, 'a double hyphen elsewhere is a slug')
  const ok = signup('fine')
  for (const payload of [{ ...ok, extra: 1 }, { ...ok, owner: { ...ok.owner, role: 'admin' } }, { ...ok, owner: { ...ok.owner, password: 'short' } }, { ...ok, owner: { ...ok.owner, email: 'x' } }, { slug: 'fine', name: 'n' }]) {
    assertError(t, await post(payload), 400, 'VALIDATION_FAILED')
  }
  t.equal((await post(ok)).statusCode, 201, 'nothing half-created by the refused attempts')
})

t.test('signup is a platform route only, and disappears when disabled', async (t) => {
  const { app, ownerUrl } = await build(t)
  await insertTenant(ownerUrl, 'acme')
  assertError(t, await app.inject({ method: 'POST', url: '/v1/tenants', headers: { host: 'acme.localhost' }, payload: signup('x-co') }), 404, 'NOT_FOUND')
  const off = await build(t, { env: { SIGNUP_ENABLED: 'false' } })
  assertError(t, await off.app.inject({ method: 'POST', url: '/v1/tenants', headers: { host: 'localhost' }, payload: signup('x-co') }), 404, 'NOT_FOUND')
})

t.test('platform admin: token required, list tenants, suspend and reactivate at once', async (t) => {
  const { app, ownerUrl } = await build(t, { env: { PLATFORM_ADMIN_TOKEN: ADMIN_TOKEN } })
  const created = (await app.inject({ method: 'POST', url: '/v1/tenants', headers: { host: 'localhost' }, payload: signup('acme') })).json()
  await insertTenant(ownerUrl, 'globex')
  const admin = { host: 'localhost', authorization: `Bearer ${ADMIN_TOKEN}` }

  for (const authorization of [undefined, 'Bearer wrong', `Bearer ${ADMIN_TOKEN}x`, `Basic ${ADMIN_TOKEN}`, ADMIN_TOKEN]) {
    const headers = authorization ? { host: 'localhost', authorization } : { host: 'localhost' }
    assertError(t, await app.inject({ url: '/v1/admin/tenants', headers }), 401, 'UNAUTHORIZED')
    assertError(t, await app.inject({ method: 'PATCH', url: '/v1/admin/tenants/acme', headers, payload: { status: 'suspended' } }), 401, 'UNAUTHORIZED')
  }
  assertError(t, await app.inject({ url: '/v1/admin/tenants', headers: { ...admin, host: 'acme.localhost' } }), 404, 'NOT_FOUND')
  // The scheme name is case-insensitive (RFC 9110 §11.1), as on tenant hosts.
  t.equal((await app.inject({ url: '/v1/admin/tenants', headers: { host: 'localhost', authorization: `bearer ${ADMIN_TOKEN}` } })).statusCode, 200, 'bearer in lower case')

  const list = await app.inject({ url: '/v1/admin/tenants', headers: admin })
  t.equal(list.statusCode, 200)
  t.same(list.json().data.map((x: { slug: string }) => x.slug), ['globex', 'acme'], 'newest first')
  t.same(Object.keys(list.json().data[0]).sort(), ['createdAt', 'domain', 'id', 'name', 'rateLimit', 'slug', 'status', 'updatedAt'])
  t.equal(list.json().data[0].rateLimit, null, 'no own request limit: TENANT_RATE_LIMIT applies')
  t.equal(list.json().nextCursor, null)
  const paged = (await app.inject({ url: '/v1/admin/tenants?limit=1', headers: admin })).json()
  t.equal(paged.data.length, 1)
  t.equal((await app.inject({ url: `/v1/admin/tenants?limit=1&cursor=${paged.nextCursor}`, headers: admin })).json().data[0].slug, 'acme')

  const session = await signIn(app, 'acme.localhost', 'founder@example.com', PASSWORD)
  const asOwner = { host: 'acme.localhost', authorization: `Bearer ${session.accessToken}` }
  t.equal((await app.inject({ url: '/v1/tenant', headers: asOwner })).statusCode, 200)

  const suspended = await app.inject({ method: 'PATCH', url: '/v1/admin/tenants/acme', headers: admin, payload: { status: 'suspended' } })
  t.equal(suspended.statusCode, 200)
  t.match(suspended.json(), { id: created.tenant.id, status: 'suspended' })
  assertError(t, await app.inject({ url: '/v1/tenant', headers: asOwner }), 404, 'TENANT_NOT_FOUND')

  t.equal((await app.inject({ method: 'PATCH', url: '/v1/admin/tenants/acme', headers: admin, payload: { status: 'active' } })).statusCode, 200)
  t.equal((await app.inject({ url: '/v1/tenant', headers: asOwner })).statusCode, 200, 'reactivating restores access with the same token')

  assertError(t, await app.inject({ method: 'PATCH', url: '/v1/admin/tenants/nope', headers: admin, payload: { status: 'suspended' } }), 404, 'NOT_FOUND')
  for (const payload of [{ status: 'deleted' }, { status: 'active', name: 'x' }, {}]) {
    assertError(t, await app.inject({ method: 'PATCH', url: '/v1/admin/tenants/acme', headers: admin, payload }), 400, 'VALIDATION_FAILED')
  }
})

t.test('without PLATFORM_ADMIN_TOKEN the admin API does not exist', async (t) => {
  const { app } = await build(t)
  assertError(t, await app.inject({ url: '/v1/admin/tenants', headers: { host: 'localhost', authorization: 'Bearer anything' } }), 404, 'NOT_FOUND')
})
