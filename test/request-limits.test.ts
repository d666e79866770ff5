// Request limits of tenant hosts: per API key and per tenant (with the tenant's own limit set by the
// platform admin), 429 RATE_LIMITED with Retry-After and the IETF RateLimit header fields.
import t from 'tap'
import { assertError, buildApi, PASSWORD, type TenantFixture } from './api-helper.ts'
import type { InjectOptions, LightMyRequestResponse } from 'fastify'

const ADMIN_TOKEN = 'platform-admin-token-for-limit-tests-0123456789'

async function createKey (tenant: TenantFixture, name: string): Promise<string> {
  const res = await tenant.call('owner', { method: 'POST', url: '/v1/api-keys', payload: { name, scopes: ['projects:read'] } })
  if (res.statusCode !== 201) throw new Error(res.body)
  return res.json().key
}

const rateHeaders = (res: LightMyRequestResponse) => ({
  limit: Number(res.headers['ratelimit-limit']),
  remaining: Number(res.headers['ratelimit-remaining']),
  reset: Number(res.headers['ratelimit-reset']),
  policy: res.headers['ratelimit-policy'],
})

t.test('each API key has its own limit: 429 RATE_LIMITED with Retry-After and RateLimit headers', async (t) => {
  const f = await buildApi(t, { API_KEY_RATE_LIMIT: '3', RATE_LIMIT_WINDOW_S: '60' })
  const { acme } = f
  const [first, second] = [await createKey(acme, 'first'), await createKey(acme, 'second')]
  const get = (key: string) => f.app.inject({ url: '/v1/projects', headers: { host: acme.host, authorization: `Bearer ${key}` } })
  for (let i = 0; i < 3; i++) {
    const res = await get(first)
    t.equal(res.statusCode, 200)
    t.same(rateHeaders(res), { limit: 3, remaining: 2 - i, reset: rateHeaders(res).reset, policy: '3;w=60' }, `request ${i + 1}: the key's limit is the closest`)
    t.ok(rateHeaders(res).reset >= 1 && rateHeaders(res).reset <= 60)
  }
  const refused = await get(first)
  assertError(t, refused, 429, 'RATE_LIMITED')
  const retryAfter = Number(refused.headers['retry-after'])
  t.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter} s`)
  t.equal(rateHeaders(refused).remaining, 0)
  t.equal((await get(second)).statusCode, 200, 'another key of the tenant is not affected')
  t.equal((await acme.call('owner', { url: '/v1/projects' })).statusCode, 200, 'nor are its users')
})

t.test('each tenant host has its own limit; the platform admin sets a tenant\'s own', async (t) => {
  const f = await buildApi(t, { TENANT_RATE_LIMIT: '20', RATE_LIMIT_WINDOW_S: '60', PLATFORM_ADMIN_TOKEN: ADMIN_TOKEN })
  const { acme, globex } = f
  // The fixture's sign-ins were anonymous requests: they did not count against the tenant.
  let last: LightMyRequestResponse | undefined
  let served = 0
  for (let i = 0; i < 30; i++) {
    last = await acme.call(i % 2 ? 'member' : 'admin', { url: '/v1/projects' })
    if (last.statusCode !== 200) break
    t.equal(rateHeaders(last).remaining, 19 - i, 'users of the tenant share one budget')
    served++
  }
  t.equal(served, 20, 'acme\'s signed-in users were served its limit, then refused')
  assertError(t, last!, 429, 'RATE_LIMITED')
  t.ok(Number(last!.headers['retry-after']) >= 1)
  t.equal(rateHeaders(last!).policy, '20;w=60')
  // Every signed-in route of the host counts and is refused alike; a sign-in (anonymous) is not the tenant's budget.
  assertError(t, await acme.call('owner', { url: '/v1/me' }), 429, 'RATE_LIMITED')
  const login = await acme.call(null, { method: 'POST', url: '/v1/auth/login', payload: { email: 'member@acme.example', password: PASSWORD } })
  t.equal(login.statusCode, 200, 'signing in still works')
  const other = await globex.call('member', { url: '/v1/projects' })
  t.equal(other.statusCode, 200, 'another tenant is not affected')
  t.equal(rateHeaders(other).limit, 20)

  const admin = { host: 'localhost', authorization: `Bearer ${ADMIN_TOKEN}` }
  for (const payload of [{ rateLimit: 0 }, { rateLimit: 'many' }, { rateLimit: 1.5 }, {}]) {
    assertError(t, await f.app.inject({ method: 'PATCH', url: '/v1/admin/tenants/acme', headers: admin, payload }), 400, 'VALIDATION_FAILED')
  }
  const raised = await f.app.inject({ method: 'PATCH', url: '/v1/admin/tenants/acme', headers: admin, payload: { rateLimit: 1000 } })
  t.equal(raised.statusCode, 200)
  t.equal(raised.json().rateLimit, 1000)
  t.equal(raised.json().status, 'active', 'status unchanged')
  const again = await acme.call('member', { url: '/v1/projects' })
  t.equal(again.statusCode, 200, 'served again at once on this instance')
  t.equal(rateHeaders(again).limit, 1000)
  const listed = await f.app.inject({ url: '/v1/admin/tenants', headers: admin })
  t.equal(listed.json().data.find((tenant: { slug: string }) => tenant.slug === 'acme').rateLimit, 1000)
  const reset = await f.app.inject({ method: 'PATCH', url: '/v1/admin/tenants/acme', headers: admin, payload: { rateLimit: null } })
  t.equal(reset.json().rateLimit, null)
  assertError(t, await acme.call('member', { url: '/v1/projects' }), 429, 'RATE_LIMITED')
})

t.test('requests without a valid credential count per client address, never against the tenant', async (t) => {
  const f = await buildApi(t, { ANONYMOUS_RATE_LIMIT: '6', TENANT_RATE_LIMIT: '1000', RATE_LIMIT_WINDOW_S: '60' })
  const { acme, globex } = f
  const key = await createKey(acme, 'integration')
  const from = (address: string, options: InjectOptions, host = acme.host) =>
    f.app.inject({ ...options, remoteAddress: address, headers: { host, ...options.headers } })
  const flooder = '203.0.113.7'
  const before = await acme.call('member', { url: '/v1/projects' })
  t.equal(before.statusCode, 200)
  const tenantRemaining = rateHeaders(before).remaining

  // Each kind of anonymous request: no credential, a bad one, a public route, an unknown route.
  const anonymous: Array<[string, InjectOptions, number]> = [
    ['the web page', { url: '/' }, 200],
    ['a failed sign-in', { method: 'POST', url: '/v1/auth/login', payload: { email: 'member@acme.example', password: 'wrong password' } }, 401],
    ['no credential', { url: '/v1/projects' }, 401],
    ['a forged token', { url: '/v1/projects', headers: { authorization: 'Bearer eyJhbGciOiJFZERTQSJ9.e30.c2ln' } }, 401],
    ['a key one character off', { url: '/v1/projects', headers: { authorization: `Bearer ${key.slice(0, -1)}${key.endsWith('a') ? 'b' : 'a'}` } }, 401],
    ['an unknown route', { url: '/v1/nothing-here' }, 404],
  ]
  for (const [i, [what, options, status]] of anonymous.entries()) {
    const res = await from(flooder, options)
    t.equal(res.statusCode, status, `${what}: ${status}`)
    t.same([rateHeaders(res).limit, rateHeaders(res).remaining], [6, 5 - i], `${what}: counted against the address (${5 - i} left)`)
  }
  for (const [, options] of anonymous) assertError(t, await from(flooder, options), 429, 'RATE_LIMITED')
  const refusedLogin = await from(flooder, { method: 'POST', url: '/v1/auth/login', payload: { email: 'member@acme.example', password: PASSWORD } })
  assertError(t, refusedLogin, 429, 'RATE_LIMITED')
  t.ok(Number(refusedLogin.headers['retry-after']) >= 1, 'with Retry-After')

  // The tenant's own clients, from anywhere (the same address included), still have their budget.
  const after = await acme.call('member', { url: '/v1/projects' })
  t.equal(after.statusCode, 200, 'a signed-in user is served')
  t.equal(rateHeaders(after).remaining, tenantRemaining - 1, 'the flood spent none of the tenant\'s budget')
  t.equal((await from(flooder, { url: '/v1/projects', headers: { authorization: `Bearer ${acme.users.owner.accessToken}` } })).statusCode, 200,
    'a signed-in user behind the flooding address is served')
  t.equal((await from(flooder, { url: '/v1/projects', headers: { authorization: `Bearer ${key}` } })).statusCode, 200, 'so is an API key')
  t.equal((await from('203.0.113.8', { url: '/' })).statusCode, 200, 'another address has its own budget')
  t.equal((await from(flooder, { url: '/' }, globex.host)).statusCode, 200, 'and so has the address on another tenant\'s host')
})

t.test('platform host and health checks are not tenant-limited', async (t) => {
  const f = await buildApi(t, { TENANT_RATE_LIMIT: '7' })
  for (let i = 0; i < 10; i++) t.equal((await f.app.inject({ url: '/healthz', headers: { host: f.acme.host } })).statusCode, 200)
  t.equal((await f.app.inject({ url: '/healthz', headers: { host: 'localhost' } })).headers['ratelimit-limit'], undefined)
})
