// Found in review: inputs that passed validation but made PostgreSQL, Prisma or the router fail
// (each must be a 4xx in the one error shape, never a 500), and a race past the login limit.
import t from 'tap'
import { createUser } from './auth-helper.ts'
import { build, insertTenant } from './helper.ts'
import { assertError, buildApi, PASSWORD, RANDOM_UUID } from './api-helper.ts'

const json = { 'content-type': 'application/json' }

t.test('text or JSON with a NUL character is a 400, never a 500', async (t) => {
  const { acme } = await buildApi(t)
  const project = (await acme.call('owner', { method: 'POST', url: '/v1/projects', payload: { name: 'P' } })).json()
  const cases: Array<[string, Parameters<typeof acme.call>[1]]> = [
    ['project name', { method: 'POST', url: '/v1/projects', headers: json, payload: '{"name":"a\\u0000b"}' }],
    ['project description', { method: 'PATCH', url: `/v1/projects/${project.id}`, headers: json, payload: '{"description":"\\u0000"}' }],
    ['task title', { method: 'POST', url: `/v1/projects/${project.id}/tasks`, headers: json, payload: '{"title":"\\u0000"}' }],
    ['own name', { method: 'PATCH', url: '/v1/me', headers: json, payload: '{"name":"x\\u0000"}' }],
    ['user name', { method: 'POST', url: '/v1/users', headers: json, payload: `{"email":"nul@acme.example","name":"\\u0000","role":"member","password":"${PASSWORD}"}` }],
    ['settings value', { method: 'PATCH', url: '/v1/tenant', headers: json, payload: '{"settings":{"a":"\\u0000"}}' }],
    ['settings key', { method: 'PATCH', url: '/v1/tenant', headers: json, payload: '{"settings":{"\\u0000":1}}' }],
  ]
  for (const [, options] of cases) assertError(t, await acme.call('owner', options), 400, 'VALIDATION_FAILED')
  t.equal((await acme.call('owner', { url: '/v1/tenant' })).json().settings.a, undefined, 'nothing was stored')
})

// Review, round fifteen: "\ud800" is valid JSON (RFC 8259 §8.2) but no Unicode text. Refused by
// PostgreSQL's jsonb and turned into U+FFFD by the driver in a text column, it was a 400 only where
// the value also went into an audit event; a user created with such a password was a 201.
t.test('a body with an unpaired surrogate is a 400 on every route; escaped pairs are text', async (t) => {
  const { acme } = await buildApi(t)
  const message = 'body holds an unpaired Unicode surrogate (a \\uD800–\\uDFFF escape without its pair)'
  const cases: Array<Parameters<typeof acme.call>[1]> = [
    { method: 'POST', url: '/v1/projects', headers: json, payload: '{"name":"a\\ud800"}' },
    { method: 'POST', url: '/v1/projects', headers: json, payload: '{"name":"a\\udc00\\ud800"}' },
    { method: 'PATCH', url: '/v1/tenant', headers: json, payload: '{"settings":{"a":[1,{"b":"\\uDFFF"}]}}' },
    { method: 'PATCH', url: '/v1/tenant', headers: json, payload: '{"settings":{"\\ud800":1}}' },
    { method: 'POST', url: '/v1/users', headers: json, payload: `{"email":"s@acme.example","name":"S","role":"member","password":"${PASSWORD}\\ud800"}` },
  ]
  for (const options of cases) {
    const res = await acme.call('owner', options)
    assertError(t, res, 400, 'VALIDATION_FAILED')
    t.equal(res.json().error.message, message, `${options.url}: the message names the cause`)
  }
  const deep = await acme.call('owner', { method: 'PATCH', url: '/v1/tenant', headers: json, payload: `{"settings":{"a":${'['.repeat(100_000)}"\\ud800"${']'.repeat(100_000)}}}` })
  assertError(t, deep, 400, 'VALIDATION_FAILED')
  t.equal((await acme.call('owner', { url: '/v1/projects' })).json().data.length, 0, 'no project was created')
  t.equal((await acme.call('owner', { url: '/v1/users' })).json().data.some((user: { email: string }) => user.email === 's@acme.example'), false, 'no user was created')
  t.same((await acme.call('owner', { url: '/v1/tenant' })).json().settings, {}, 'the settings are unchanged')
  const paired = await acme.call('owner', { method: 'POST', url: '/v1/projects', headers: json, payload: '{"name":"launch \\ud83d\\ude80"}' })
  t.equal(paired.statusCode, 201, 'an escaped surrogate pair is an ordinary character')
  t.equal(paired.json().name, 'launch \u{1F680}')
})

t.test('a dueAt the database cannot hold is a 400; so is a cursor naming year 0', async (t) => {
  const { acme } = await buildApi(t)
  const project = (await acme.call('owner', { method: 'POST', url: '/v1/projects', payload: { name: 'P' } })).json()
  const tasks = `/v1/projects/${project.id}/tasks`
  for (const dueAt of ['0000-01-01T00:00:00Z', '9999-12-31T23:59:59-23:59', '2024-06-30T23:59:60Z']) {
    assertError(t, await acme.call('owner', { method: 'POST', url: tasks, payload: { title: 'x', dueAt } }), 400, 'VALIDATION_FAILED')
  }
  const task = (await acme.call('owner', { method: 'POST', url: tasks, payload: { title: 'x', dueAt: '9999-12-31T23:59:59Z' } }))
  t.equal(task.statusCode, 201, 'the last storable second is fine')
  assertError(t, await acme.call('owner', { method: 'PATCH', url: `${tasks}/${task.json().id}`, payload: { dueAt: '0000-12-31T23:00:00Z' } }), 400, 'VALIDATION_FAILED')
  const cursor = Buffer.from(`0000-01-01T00:00:00.000Z|${RANDOM_UUID}`).toString('base64url')
  assertError(t, await acme.call('owner', { url: `/v1/projects?cursor=${cursor}` }), 400, 'BAD_REQUEST')
  assertError(t, await acme.call('owner', { url: `${tasks}?cursor=${cursor}` }), 400, 'BAD_REQUEST')
})

t.test('deeply nested settings are a 400, not a stack overflow', async (t) => {
  const { acme } = await buildApi(t)
  for (const depth of [100, 100_000]) {
    const payload = `{"settings":{"a":${'['.repeat(depth)}${']'.repeat(depth)}}}`
    assertError(t, await acme.call('owner', { method: 'PATCH', url: '/v1/tenant', headers: json, payload }), 400, 'VALIDATION_FAILED')
  }
  const nested = JSON.parse(`{"a":${'{"b":'.repeat(20)}1${'}'.repeat(20)}}`)
  const ok = await acme.call('owner', { method: 'PATCH', url: '/v1/tenant', payload: { settings: nested } })
  t.equal(ok.statusCode, 200, 'ordinary nesting still works')
  t.same(ok.json().settings, nested)
})

// Review, round ten: `1e400` was stored as null and a 30-digit integer rounded, answered 200.
t.test('settings numbers that cannot be stored exactly are a 400, never coerced', async (t) => {
  const { acme } = await buildApi(t)
  t.equal((await acme.call('owner', { method: 'PATCH', url: '/v1/tenant', payload: { settings: { keep: 1 } } })).statusCode, 200)
  for (const [payload, message] of [
    ['{"settings":{"a":1e400}}', 'body/settings/a must be a finite number'],
    ['{"settings":{"a":{"b":[1,-1e999]}}}', 'body/settings/a/b/1 must be a finite number'],
    ['{"settings":{"big":123456789012345678901234567890}}', `body/settings/big must be an integer within ±${Number.MAX_SAFE_INTEGER} (larger ones are not stored exactly)`],
  ]) {
    const res = await acme.call('owner', { method: 'PATCH', url: '/v1/tenant', headers: json, payload })
    assertError(t, res, 400, 'VALIDATION_FAILED')
    t.equal(res.json().error.message, message)
  }
  t.same((await acme.call('owner', { url: '/v1/tenant' })).json().settings, { keep: 1 }, 'nothing was changed')
  const edge = { max: Number.MAX_SAFE_INTEGER, min: -Number.MAX_SAFE_INTEGER, half: 0.5, tiny: 1e-300 }
  const ok = await acme.call('owner', { method: 'PATCH', url: '/v1/tenant', payload: { settings: edge } })
  t.equal(ok.statusCode, 200, 'the largest exact integers and ordinary fractions are accepted')
  t.same(ok.json().settings, edge)
})

t.test('an undecodable URL or an over-long path parameter answers in the error shape', async (t) => {
  const { acme } = await buildApi(t)
  for (const url of ['/v1/projects/%E0%A4%A', `/v1/projects/${'a'.repeat(300)}`]) {
    const res = await acme.call('owner', { url })
    const body = assertError(t, res, 400, 'BAD_REQUEST')
    t.same(Object.keys(body.error).sort(), ['code', 'message', 'requestId'], url.slice(0, 30))
    t.match(res.headers['content-type'], /^application\/json/)
    // No hook runs for these answers (Fastify's router refuses them first): set by the handler.
    t.equal(res.headers['x-request-id'], body.error.requestId, 'X-Request-Id, as on every answer')
    t.equal(res.headers['cache-control'], 'no-store')
    t.equal(res.headers['x-content-type-options'], 'nosniff', 'and the security headers')
  }
})

t.test('concurrent wrong passwords cannot get past the per-email failure limit', async (t) => {
  const { app, ownerUrl } = await build(t, { env: { LOGIN_FAILURES_MAX: '3' } })
  const tenantId = await insertTenant(ownerUrl, 'acme')
  await createUser(ownerUrl, tenantId, { email: 'ann@example.com', password: PASSWORD, role: 'member' })
  const login = (email: string, password: string) =>
    app.inject({ method: 'POST', url: '/v1/auth/login', headers: { host: 'acme.localhost' }, payload: { email, password } })
  const guesses = await Promise.all(Array.from({ length: 12 }, (_, i) => login(i % 2 ? 'ANN@example.com' : 'ann@example.com', `wrong password number ${i}`)))
  const codes = guesses.map((res) => res.statusCode)
  t.ok(codes.filter((code) => code === 401).length <= 3, `at most 3 passwords were checked (${codes.join(',')})`)
  t.equal(codes.filter((code) => code === 429).length + codes.filter((code) => code === 401).length, 12)
  t.equal((await login('ann@example.com', PASSWORD)).statusCode, 429, 'the account is locked for the window')
})

t.test('concurrent correct logins under the limit all succeed', async (t) => {
  const { app, ownerUrl } = await build(t, { env: { LOGIN_FAILURES_MAX: '3' } })
  const tenantId = await insertTenant(ownerUrl, 'acme')
  await createUser(ownerUrl, tenantId, { email: 'ann@example.com', password: PASSWORD, role: 'member' })
  const logins = await Promise.all(Array.from({ length: 3 }, () =>
    app.inject({ method: 'POST', url: '/v1/auth/login', headers: { host: 'acme.localhost' }, payload: { email: 'ann@example.com', password: PASSWORD } })))
  t.same(logins.map((res) => res.statusCode), [200, 200, 200])
  const after = await app.inject({ method: 'POST', url: '/v1/auth/login', headers: { host: 'acme.localhost' }, payload: { email: 'ann@example.com', password: PASSWORD } })
  t.equal(after.statusCode, 200, 'nothing is left reserved once they are done')
})

t.test('a deactivated user stays signed out after reactivation', async (t) => {
  const api = await buildApi(t)
  const member = api.acme.users.member
  const patch = (active: boolean) => api.acme.call('owner', { method: 'PATCH', url: `/v1/users/${member.user.id}`, payload: { active } })
  t.equal((await patch(false)).statusCode, 200)
  t.equal((await patch(true)).statusCode, 200)
  const me = await api.app.inject({ url: '/v1/me', headers: { host: api.acme.host, authorization: `Bearer ${member.accessToken}` } })
  assertError(t, me, 401, 'UNAUTHORIZED')
  const refresh = await api.app.inject({ method: 'POST', url: '/v1/auth/refresh', headers: { host: api.acme.host }, payload: { refreshToken: member.refreshToken } })
  assertError(t, refresh, 401, 'UNAUTHORIZED')
  const again = await api.app.inject({ method: 'POST', url: '/v1/auth/login', headers: { host: api.acme.host }, payload: { email: member.user.email, password: PASSWORD } })
  t.equal(again.statusCode, 200, 'the reactivated account can sign in anew')
})

t.test('behind a trusted proxy, the last X-Forwarded-Host (the proxy\'s own) decides', async (t) => {
  const { app, ownerUrl } = await build(t, { env: { TRUST_PROXY: '127.0.0.1' } })
  await insertTenant(ownerUrl, 'acme')
  const res = await app.inject({ url: '/no-such-route', headers: { host: 'internal:8080', 'x-forwarded-host': 'nope.localhost, acme.localhost' } })
  t.equal(res.json().error.code, 'NOT_FOUND', 'acme (the last entry) was resolved, not the client-supplied first one')
})
