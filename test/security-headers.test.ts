import t from 'tap'
import { buildApi } from './api-helper.ts'
import { build } from './helper.ts'

t.test('helmet headers and Cache-Control: no-store on API answers', async (t) => {
  const { acme } = await buildApi(t)
  for (const res of [await acme.call('owner', { url: '/v1/projects' }), await acme.call(null, { url: '/v1/projects' }), await acme.call('owner', { url: '/v1/nope' })]) {
    t.equal(res.headers['cache-control'], 'no-store')
    t.equal(res.headers['x-content-type-options'], 'nosniff')
    t.ok(res.headers['strict-transport-security'])
    t.ok(res.headers['content-security-policy'])
    t.equal(res.headers['x-powered-by'], undefined)
    t.equal(res.headers['access-control-allow-origin'], undefined, 'CORS off by default')
  }
})

// Review: only error bodies carried the request id, so a client could not find the audit event of
// its own successful change.
t.test('X-Request-Id on every answer: the requestId of the error body and of the audit event', async (t) => {
  const { acme } = await buildApi(t)
  const created = await acme.call('owner', { method: 'POST', url: '/v1/projects', payload: { name: 'Traced' } })
  t.equal(created.statusCode, 201)
  const id = created.headers['x-request-id']
  t.match(id, /^[0-9a-f-]{36}$/, 'a success carries it')
  const events = (await acme.call('owner', { url: `/v1/audit-events?targetId=${created.json().id}` })).json().data
  t.same(events.map((e: { requestId: string }) => e.requestId), [id], 'the event of the change has the same id')
  const failed = await acme.call('owner', { url: '/v1/projects/not-a-uuid' })
  t.equal(failed.headers['x-request-id'], failed.json().error.requestId, 'an error carries it in both places')
  t.not(failed.headers['x-request-id'], id, 'one id per request')
  const plantedId = '11111111-2222-4333-8444-555555555555'
  const planted = await acme.call('owner', { url: '/v1/projects', headers: { 'x-request-id': plantedId } })
  t.match(planted.headers['x-request-id'], /^[0-9a-f-]{36}$/)
  t.not(planted.headers['x-request-id'], plantedId, 'the server\'s own id, not one the client sent')
})

t.test('CORS: off unless CORS_ORIGINS, then only those origins, with credentials', async (t) => {
  const off = await build(t)
  const preflightOff = await off.app.inject({ method: 'OPTIONS', url: '/v1/tenants', headers: { host: 'localhost', origin: 'https://app.example', 'access-control-request-method': 'POST' } })
  t.equal(preflightOff.headers['access-control-allow-origin'], undefined)

  const { app } = await build(t, { env: { CORS_ORIGINS: 'https://app.example, https://admin.example' } })
  const preflight = await app.inject({ method: 'OPTIONS', url: '/v1/tenants', headers: { host: 'localhost', origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,x-csrf-token' } })
  t.equal(preflight.statusCode, 204)
  t.equal(preflight.headers['access-control-allow-origin'], 'https://app.example')
  t.equal(preflight.headers['access-control-allow-credentials'], 'true')
  t.match(preflight.headers['access-control-allow-headers'], /x-csrf-token/)
  const simple = await app.inject({ url: '/healthz', headers: { host: 'localhost', origin: 'https://admin.example' } })
  t.equal(simple.headers['access-control-allow-origin'], 'https://admin.example')
  t.match(simple.headers['access-control-expose-headers'], /x-request-id/, 'a browser script may read X-Request-Id')
  const evil = await app.inject({ url: '/healthz', headers: { host: 'localhost', origin: 'https://evil.example' } })
  t.equal(evil.headers['access-control-allow-origin'], undefined, 'an unlisted origin is not allowed')
})
