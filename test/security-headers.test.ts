import { IncomingMessage, ServerResponse } from 'node:http'
import { Socket } from 'node:net'
import helmet from 'helmet'
import t from 'tap'
import { helmetDefaultHeaders } from '../plugins/response-headers.ts'
import { loadConfig } from '../src/config.ts'
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

// Round twelve: helmet's headers are recorded once and set with the reply's own, instead of running
// its middleware on every request. They must be the ones the middleware sets, on every kind of answer,
// and a route's own Cache-Control must still win.
t.test("helmet's headers, recorded once, are what its middleware sets, on answers of every kind", async (t) => {
  const response = new ServerResponse(new IncomingMessage(new Socket()))
  helmet()(response.req, response, () => {})
  const expected = Object.fromEntries(Object.entries(response.getHeaders()).map(([name, value]) => [name, String(value)]))
  t.ok(Object.keys(expected).length >= 10, `helmet sets its headers (${Object.keys(expected).join(', ')})`)
  t.same(helmetDefaultHeaders(), expected, 'the recording is the middleware\'s own output')

  const { acme, app } = await buildApi(t)
  const answers = {
    'a list (200)': [await acme.call('owner', { url: '/v1/projects' }), 200],
    'no credential (401)': [await acme.call(null, { url: '/v1/projects' }), 401],
    'an unknown tenant (404)': [await app.inject({ url: '/v1/projects', headers: { host: 'nobody.localhost' } }), 404],
    'a text/plain body (415)': [await acme.call('owner', { method: 'POST', url: '/v1/projects', payload: 'x', headers: { 'content-type': 'text/plain' } }), 415],
    'the web page (200)': [await app.inject({ url: '/', headers: { host: 'acme.localhost' } }), 200],
    'the JWKS (200)': [await app.inject({ url: '/.well-known/jwks.json', headers: { host: 'localhost' } }), 200],
  } as const
  for (const [kind, [answer, status]] of Object.entries(answers)) {
    t.equal(answer.statusCode, status, `${kind}: status`)
    const missing = Object.entries(expected).filter(([name, value]) => answer.headers[name] !== value).map(([name]) => name)
    t.same(missing, [], `${kind}: every helmet header, with helmet's value`)
    t.match(answer.headers['x-request-id'], /^[0-9a-f-]{36}$/, `${kind}: X-Request-Id`)
  }
  t.equal(answers['a list (200)'][0].headers['cache-control'], 'no-store', 'no-store unless the route says otherwise')
  t.equal(answers['the web page (200)'][0].headers['cache-control'], 'no-cache', 'the page\'s own Cache-Control wins')
  t.equal(answers['the JWKS (200)'][0].headers['cache-control'], 'public, max-age=300', 'the key set\'s own Cache-Control wins')
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

t.test('CORS_ORIGINS must list origins: * (refused by browsers with credentials) or a path stops the start', async (t) => {
  for (const value of ['*', 'https://app.example, *', 'https://app.example/path', 'app.example']) {
    t.throws(() => loadConfig({ CORS_ORIGINS: value }), /CORS_ORIGINS: list the origins themselves/, JSON.stringify(value))
  }
  t.same(loadConfig({ CORS_ORIGINS: 'https://app.example, http://localhost:5173' }).corsOrigins, ['https://app.example', 'http://localhost:5173'])
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
