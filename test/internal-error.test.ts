// An unexpected failure inside a handler: the client gets a generic 500 in the contract's shape,
// the log gets the error with the request id, and the process keeps serving.
import { Writable } from 'node:stream'
import t from 'tap'
import { buildApp } from '../src/app.ts'
import { createDatabase } from '../src/db/database.ts'
import { assertError } from './api-helper.ts'
import { createTestDatabase, insertTenant, testConfig } from './helper.ts'

type Tap = Parameters<typeof createTestDatabase>[0]

/** The real app on a fresh database, its error log collected in `lines`; routes may still be added. */
async function appWithErrorLog (t: Tap, level = 'error') {
  const url = await createTestDatabase(t)
  const config = testConfig(url)
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _enc, done) { lines.push(String(chunk)); done() } })
  const app = await buildApp({ config, database: createDatabase(config, url), logger: { level, stream } })
  t.teardown(() => app.close())
  return { app, url, lines }
}

t.test('a handler that throws answers 500 INTERNAL without leaking anything', async (t) => {
  const { app, lines } = await appWithErrorLog(t)
  app.get('/boom', { config: { anyHost: true } }, async () => {
    throw new Error('relation "users" does not exist: SELECT password_hash FROM users')
  })

  const res = await app.inject({ url: '/boom', headers: { host: 'localhost' } })
  t.equal(res.statusCode, 500)
  const body = res.json()
  t.same(Object.keys(body.error).sort(), ['code', 'message', 'requestId'])
  t.equal(body.error.code, 'INTERNAL')
  t.notMatch(res.body, /SELECT|password_hash|users|at .*\.ts/, 'no SQL, no stack')
  const logged = lines.join('')
  t.match(logged, body.error.requestId, 'the log names the request id')
  t.match(logged, /SELECT password_hash/, 'and carries the real error for operators')
  t.equal((await app.inject({ url: '/healthz', headers: { host: 'localhost' } })).statusCode, 200, 'the process keeps serving')
})

t.test('at LOG_LEVEL=warn a failed request still gets its completion line, a served one none', async (t) => {
  const { app, lines } = await appWithErrorLog(t, 'warn')
  app.get('/boom', { config: { anyHost: true } }, async () => { throw new Error('boom') })
  t.equal((await app.inject({ url: '/healthz', headers: { host: 'localhost' } })).statusCode, 200)
  const failed = await app.inject({ url: '/boom?token=secret-link-token', headers: { host: 'localhost' } })
  t.equal(failed.statusCode, 500)
  const completed = lines.map((line) => JSON.parse(line)).filter((entry) => entry.msg === 'request completed')
  t.equal(completed.length, 1, 'one line: the 500\'s (the 200 is below the level, so not even built)')
  t.match(completed[0], { level: 40, statusCode: 500, code: 'INTERNAL', url: '/boom?token=[redacted]' }, 'at warn, with its code and the URL scrubbed')
})

t.test('a request getter read where its hook did not run answers 500 INTERNAL, not a crash or undefined', async (t) => {
  const { app, url, lines } = await appWithErrorLog(t)
  // Routes registered outside the scopes of routes/index.ts: one reads the caller without
  // app.authenticate, one reads the tenant, which the platform host does not have.
  app.get('/probe/principal', async (request) => ({ id: request.principal.id }))
  app.get('/probe/tenant', async (request) => ({ tenantId: request.tenantId }))
  const tenantId = await insertTenant(url, 'acme')

  const tenantHost = { host: 'acme.localhost' }
  const principal = await app.inject({ url: '/probe/principal', headers: tenantHost })
  const body = assertError(t, principal, 500, 'INTERNAL')
  t.equal(body.error.message, 'Internal server error', 'the generic message: nothing about the code leaks')
  t.notMatch(principal.body, /principal|authenticate/, 'the getter is not named to the client')
  t.match(lines.join(''), 'request.principal is only available on routes behind app.authenticate', 'the log tells the developer what is missing')
  const signedIn = await app.inject({ url: '/probe/principal', headers: { ...tenantHost, authorization: 'Bearer not-a-token' } })
  assertError(t, signedIn, 500, 'INTERNAL') // a credential changes nothing: the hook still did not run

  const platform = await app.inject({ url: '/probe/tenant', headers: { host: 'localhost' } })
  assertError(t, platform, 500, 'INTERNAL')
  t.match(lines.join(''), 'request.tenantId is only available on tenant hosts')
  const onTenantHost = await app.inject({ url: '/probe/tenant', headers: tenantHost })
  t.same(onTenantHost.json(), { tenantId }, 'on a tenant host the getter gives the tenant of the Host')
  t.equal((await app.inject({ url: '/healthz', headers: { host: 'localhost' } })).statusCode, 200, 'the process keeps serving')
})
