// Every kind of bad input answers in the one error shape, with the contract's code and status, and
// no answer carries a stack, SQL or a Prisma message.
import { gzipSync } from 'node:zlib'
import t from 'tap'
import { classifyError } from '../plugins/error-handler.ts'
import { build } from './helper.ts'
import { assertError, buildApi, RANDOM_UUID } from './api-helper.ts'

t.test('bad input of every kind, on a tenant host with a valid token', async (t) => {
  const { acme } = await buildApi(t)
  const project = (await acme.call('owner', { method: 'POST', url: '/v1/projects', payload: { name: 'P' } })).json()
  const json = { 'content-type': 'application/json' }
  const cases: Array<[string, Parameters<typeof acme.call>[1], number, string]> = [
    ['malformed JSON', { method: 'POST', url: '/v1/projects', headers: json, payload: '{"name": "x",' }, 400, 'VALIDATION_FAILED'],
    ['empty JSON body', { method: 'POST', url: '/v1/projects', headers: json, payload: '' }, 400, 'VALIDATION_FAILED'],
    ['JSON that is not an object', { method: 'POST', url: '/v1/projects', headers: json, payload: '"x"' }, 400, 'VALIDATION_FAILED'],
    ['unknown property', { method: 'POST', url: '/v1/projects', payload: { name: 'x', color: 'red' } }, 400, 'VALIDATION_FAILED'],
    ['wrong type', { method: 'POST', url: '/v1/projects', payload: { name: 42 } }, 400, 'VALIDATION_FAILED'],
    ['string where a boolean is expected (never coerced)', { method: 'PATCH', url: `/v1/users/${acme.users.member.user.id}`, payload: { active: 'false' } }, 400, 'VALIDATION_FAILED'],
    ['string where a number is expected', { url: '/v1/projects?limit=ten' }, 400, 'VALIDATION_FAILED'],
    ['null where a string is required', { method: 'PATCH', url: `/v1/projects/${project.id}`, payload: { name: null } }, 400, 'VALIDATION_FAILED'],
    ['unknown route', { url: '/v1/nothing' }, 404, 'NOT_FOUND'],
    ['wrong method', { method: 'PUT', url: `/v1/projects/${project.id}`, payload: { name: 'x' } }, 404, 'NOT_FOUND'],
    ['a platform route on a tenant host', { url: '/v1/admin/tenants' }, 404, 'NOT_FOUND'],
    ['unsupported content type', { method: 'POST', url: '/v1/projects', headers: { 'content-type': 'text/plain' }, payload: 'name=x' }, 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['form encoding', { method: 'POST', url: '/v1/projects', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'name=x' }, 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['body over 1 MiB', { method: 'POST', url: '/v1/projects', headers: json, payload: JSON.stringify({ name: 'x', description: 'a'.repeat(1024 * 1024 + 10) }) }, 413, 'PAYLOAD_TOO_LARGE'],
    ['a trailing slash: no resource named (review 59: a 400 said an id was malformed)', { url: '/v1/projects/' }, 404, 'NOT_FOUND'],
    ['a trailing slash on a delete', { method: 'DELETE', url: `/v1/projects/${project.id}/tasks/` }, 404, 'NOT_FOUND'],
    ['id that is not a UUID', { url: '/v1/projects/123' }, 400, 'VALIDATION_FAILED'],
    ['id that is almost a UUID', { method: 'DELETE', url: `/v1/projects/${RANDOM_UUID}x` }, 400, 'VALIDATION_FAILED'],
    ['SQL in an id', { url: `/v1/projects/${encodeURIComponent("1' OR '1'='1")}` }, 400, 'VALIDATION_FAILED'],
    ['garbled cursor', { url: '/v1/projects?cursor=bm90LWEtY3Vyc29y' }, 400, 'BAD_REQUEST'],
  ]
  for (const [what, options, status, code] of cases) {
    const res = await acme.call('owner', options)
    t.test(what, async (t) => {
      const body = assertError(t, res, status, code)
      t.same(Object.keys(body), ['error'])
      t.same(Object.keys(body.error).sort(), ['code', 'message', 'requestId'])
      t.match(res.headers['content-type'], /^application\/json/)
    })
  }
  // An empty body is no body, even with a JSON content type (some HTTP clients send that header with
  // every request): a DELETE goes through, and a route that needs a body says so.
  const deleted = await acme.call('owner', { method: 'DELETE', url: `/v1/projects/${project.id}`, headers: json, payload: '' })
  t.equal(deleted.statusCode, 204, `DELETE with a JSON content type and no body: 204 (${deleted.body})`)
  t.equal((await acme.call('owner', { url: `/v1/projects/${project.id}` })).statusCode, 404, 'and the project is gone')
  t.equal(assertError(t, await acme.call('owner', { method: 'POST', url: '/v1/projects', headers: json, payload: '' }), 400, 'VALIDATION_FAILED').error.message, 'body must be object')
  const unknown = await acme.call(null, { url: '/v1/nothing' })
  assertError(t, unknown, 404, 'NOT_FOUND')
  const unknownMethod = await acme.call(null, { method: 'PUT', url: '/v1/projects' })
  assertError(t, unknownMethod, 404, 'NOT_FOUND')
})

t.test('JSON bodies are UTF-8: a body this API would misread is refused and changes nothing, never stored altered', async (t) => {
  const { acme } = await buildApi(t)
  const names = async () => (await acme.call('owner', { url: '/v1/projects?limit=100' })).json().data.map((p: { name: string }) => p.name).sort()
  const before = await names()
  const refused: Array<[string, Record<string, string>, string | Buffer, number, string, RegExp]> = [
    // What a Latin-1 client sends for "café": byte 0xE9, no UTF-8. Decoded leniently it was stored as "caf\uFFFD".
    ['bytes that are not UTF-8', { 'content-type': 'application/json' }, Buffer.from('{"name":"caf\u00e9 latin1"}', 'latin1'), 400, 'VALIDATION_FAILED', /not valid UTF-8/],
    ['a charset other than UTF-8', { 'content-type': 'application/json; charset=iso-8859-1' }, '{"name":"latin1 label"}', 415, 'UNSUPPORTED_MEDIA_TYPE', /charset=iso-8859-1 is not accepted/],
    ['a content coding (gzip)', { 'content-type': 'application/json', 'content-encoding': 'gzip' }, gzipSync('{"name":"gzipped"}'), 415, 'UNSUPPORTED_MEDIA_TYPE', /Content-Encoding gzip is not accepted/],
  ]
  for (const [what, headers, payload, status, code, message] of refused) {
    const res = await acme.call('owner', { method: 'POST', url: '/v1/projects', headers, payload })
    t.match(assertError(t, res, status, code).error.message, message, what)
  }
  t.same(await names(), before, 'no project was created by a refused body')
  // What is UTF-8 goes through: the charset named in any case or quoted, `identity` coding, a byte order mark.
  const accepted: Array<[string, Record<string, string>, string | Buffer, string]> = [
    ['charset="UTF-8"', { 'content-type': 'application/json; charset="UTF-8"' }, '{"name":"café ☕"}', 'café ☕'],
    ['Content-Encoding: identity', { 'content-type': 'application/json', 'content-encoding': 'identity' }, '{"name":"identity"}', 'identity'],
    ['a UTF-8 byte order mark', { 'content-type': 'application/json' }, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"name":"with BOM"}')]), 'with BOM'],
  ]
  for (const [what, headers, payload, name] of accepted) {
    const res = await acme.call('owner', { method: 'POST', url: '/v1/projects', headers, payload })
    t.equal(res.statusCode, 201, `${what}: 201 (${res.body})`)
    t.equal(res.json().name, name, `${what}: stored as sent`)
  }
})

t.test('a name given twice in a body: the last one is validated, stored and audited, as JSON.parse reads it', async (t) => {
  const { acme } = await buildApi(t)
  const json = { 'content-type': 'application/json' }
  const refused = await acme.call('owner', { method: 'POST', url: '/v1/projects', headers: json, payload: '{"name":"valid","name":""}' })
  assertError(t, refused, 400, 'VALIDATION_FAILED')
  const created = await acme.call('owner', { method: 'POST', url: '/v1/projects', headers: json, payload: '{"name":"","name":"second"}' })
  t.equal(created.statusCode, 201, created.body)
  const { id, name } = created.json()
  t.equal(name, 'second', 'stored: the last one')
  t.equal((await acme.call('owner', { url: `/v1/projects/${id}` })).json().name, 'second', 'read back: the last one')
  const events = (await acme.call('owner', { url: `/v1/audit-events?targetId=${id}` })).json().data
  t.same(events.map((event: { action: string, data: unknown }) => [event.action, event.data]), [['project.created', { name: 'second' }]], 'audited: the same one')
})

t.test('database down: 503 SERVICE_UNAVAILABLE with Retry-After, no driver message', async (t) => {
  // Nothing listens on port 9: every connection is refused, as when the server is down.
  const { app } = await build(t, { url: 'postgresql://postgres@127.0.0.1:9/gone' })
  for (const [host, method, url, payload] of [
    ['acme.localhost', 'GET', '/v1/projects', undefined],
    ['localhost', 'GET', '/readyz', undefined],
    ['localhost', 'POST', '/v1/tenants', { slug: 'newco', name: 'N', owner: { email: 'a@b.example', password: 'correct horse battery staple', name: 'A' } }],
  ] as const) {
    const res = await app.inject({ method, url, headers: { host }, payload })
    t.equal(res.statusCode, 503, `${method} ${url}: ${res.body}`)
    t.equal(res.json().error.code, 'SERVICE_UNAVAILABLE')
    t.ok(Number(res.headers['retry-after']) > 0, 'Retry-After')
    t.notMatch(res.body, /pool|ECONN|prisma|select/i)
  }
})

// PgBouncer answers its own refusals (PostgreSQL behind it down: "server login has been failing",
// query_wait_timeout) with 08P01; a failover onto a standby or a demoted primary answers writes with
// 25006. Both are the database being unavailable, not a bug: 503 with Retry-After, no stack.
t.test('PgBouncer\'s refusals (08P01) and a read-only database (25006) are 503 SERVICE_UNAVAILABLE', async (t) => {
  const { app } = await build(t)
  for (const sqlstate of ['08P01', '25006']) {
    const raised = await app.platformDb.$executeRawUnsafe(`DO $$ BEGIN RAISE EXCEPTION 'unavailable' USING ERRCODE = '${sqlstate}'; END $$`).catch((error: unknown) => error)
    t.equal(classifyError(raised).code, 'SERVICE_UNAVAILABLE', sqlstate)
  }
})

t.test('an unexpected error is a 500 INTERNAL with a generic message', async (t) => {
  const classified = classifyError(new TypeError("Cannot read properties of undefined (reading 'id') at routes/x.ts:12"))
  t.same(classified, { code: 'INTERNAL', message: 'Internal server error' })
})

t.test('a write conflict (deadlock, serialization failure) that reaches the handler is a retryable 409, from a raw statement too', async (t) => {
  const { app } = await build(t)
  // PostgreSQL's own errors through Prisma's real paths: a raw statement and an interactive transaction.
  const raise = (sqlstate: string) => `DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '${sqlstate}'; END $$`
  for (const sqlstate of ['40P01', '40001']) {
    const raw = await app.platformDb.$executeRawUnsafe(raise(sqlstate)).catch((error: unknown) => error)
    t.same(classifyError(raw), { code: 'CONFLICT', message: 'A concurrent change conflicted with this one, retry' }, `${sqlstate} from a raw statement`)
    const inTransaction = await app.platformDb.$transaction((tx) => tx.$executeRawUnsafe(raise(sqlstate))).catch((error: unknown) => error)
    t.same(classifyError(inTransaction), { code: 'CONFLICT', message: 'A concurrent change conflicted with this one, retry' }, `${sqlstate} in a transaction`)
  }
  t.same(classifyError(await app.platformDb.$executeRawUnsafe(raise('XX000')).catch((error: unknown) => error)).code, 'INTERNAL', 'another database error is still a 500')
})
