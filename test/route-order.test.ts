// Every route refuses in the same order: a missing credential is 401 before a role is checked (403),
// and a role is checked before the request is validated (400). The routes are read from Fastify's
// route table (test/route-table.ts), so a route hidden from the OpenAPI document is walked too and
// must be documented unless it is the web page. The lists below are written from shared/API.md, not
// read from the code: a route in neither list fails the test until someone decides who may call it.
import t from 'tap'
import { assertError, buildApi, RANDOM_UUID } from './api-helper.ts'
import { adminQuery } from './helper.ts'
import { registeredRoutes } from './route-table.ts'
import { DOCS_PREFIX } from '../plugins/docs.ts'

type Operation = { security?: unknown[], responses: Record<string, unknown>, requestBody?: unknown, parameters?: unknown[] }

/**
 * The tenant web page (routes/web.ts): public on tenant hosts, and the only routes left out of the
 * OpenAPI document (they answer HTML, script and CSS, not the API).
 */
const WEB_PAGES = ['GET /', 'GET /accept-invitation', 'GET /reset-password', 'GET /app.js', 'GET /app.css']

/** Tenant-host routes anyone may call (shared/API.md "Authentication"). */
const PUBLIC_ON_TENANT = [
  ...WEB_PAGES,
  'POST /v1/auth/login', 'POST /v1/auth/refresh', 'GET /.well-known/jwks.json', 'GET /healthz', 'GET /readyz',
  // "Invitations and password reset": the emailed link's token is the credential.
  'POST /v1/invitations/accept', 'POST /v1/auth/password-reset', 'POST /v1/auth/password-reset/confirm',
]
/** Routes a signed-in member may call (shared/API.md "Resources"). */
const MEMBER_ALLOWED = [
  'POST /v1/auth/logout', 'GET /v1/me', 'PATCH /v1/me', 'POST /v1/me/password', 'GET /v1/tenant',
  'GET /v1/projects', 'POST /v1/projects', 'GET /v1/projects/{id}', 'PATCH /v1/projects/{id}', 'DELETE /v1/projects/{id}',
  'GET /v1/projects/{projectId}/tasks', 'POST /v1/projects/{projectId}/tasks', 'GET /v1/projects/{projectId}/tasks/{id}',
  'PATCH /v1/projects/{projectId}/tasks/{id}', 'DELETE /v1/projects/{projectId}/tasks/{id}',
]
/** Routes a member may not call: admins and owners only, or owners only. */
const MEMBER_FORBIDDEN = [
  'GET /v1/users', 'POST /v1/users', 'GET /v1/users/{id}', 'PATCH /v1/users/{id}', 'DELETE /v1/users/{id}', 'PATCH /v1/tenant',
  'GET /v1/api-keys', 'POST /v1/api-keys', 'DELETE /v1/api-keys/{id}',
  'GET /v1/audit-events', 'GET /v1/audit-events/export', 'GET /v1/audit-events/verify',
  'GET /v1/invitations', 'POST /v1/invitations', 'DELETE /v1/invitations/{id}',
]
/** Platform-host routes (never on a tenant host). */
const PLATFORM = ['POST /v1/tenants', 'GET /v1/admin/tenants', 'PATCH /v1/admin/tenants/{slug}']

const HAS_BODY = new Set(['POST', 'PATCH', 'PUT'])

/**
 * Every route of the app's route table (test/route-table.ts: hidden ones included) but the docs'
 * own, as `[route ('GET /v1/me'), method, path, operation]`; `operation` is the route's entry in the
 * OpenAPI document, undefined for a route the document leaves out.
 */
async function appRoutes (api: Awaited<ReturnType<typeof buildApi>>): Promise<Array<[string, string, string, Operation | undefined]>> {
  const doc = (await api.app.inject({ url: '/docs/json', headers: { host: 'localhost' } })).json()
  return registeredRoutes(api.app).filter(({ path }) => path !== DOCS_PREFIX && !path.startsWith(`${DOCS_PREFIX}/`))
    .map(({ route, method, path }) => [route, method, path, doc.paths[path]?.[method.toLowerCase()] as Operation | undefined])
}

t.test('every route: 401 before 403 before 400, and its errors are documented', async (t) => {
  const api = await buildApi(t, { PLATFORM_ADMIN_TOKEN: 'x'.repeat(40) })
  const operations = await appRoutes(api)
  const classified = new Set([...PUBLIC_ON_TENANT, ...MEMBER_ALLOWED, ...MEMBER_FORBIDDEN, ...PLATFORM])
  t.ok(operations.length >= 40, `${operations.length} routes in the route table`)
  for (const [route, , , operation] of operations) {
    t.ok(classified.has(route), `${route} is classified in test/route-order.test.ts (who may call it?)`)
    if (!WEB_PAGES.includes(route)) t.ok(operation, `${route} is in the OpenAPI document (not hidden)`)
  }

  for (const [route, method, path, operation] of operations) {
    if (!operation) continue // the web page, or a hidden route: failed above
    t.ok(operation.responses['4XX'] ?? operation.responses['4xx'], `${route} documents its 4xx answers`)
    t.ok(operation.responses['5XX'] ?? operation.responses['5xx'], `${route} documents its 5xx answers`)
    const signedIn = MEMBER_ALLOWED.includes(route) || MEMBER_FORBIDDEN.includes(route)
    if (signedIn) t.ok(operation.security?.length, `${route} declares its security scheme`)
    if (!signedIn) continue

    const validatesInput = Boolean(operation.requestBody ?? operation.parameters?.length)
    // Bad input on purpose: a path id that is not a UUID, an unknown query parameter, an unknown body property.
    const url = `${path.replace(/\{[^}]+\}/g, 'not-a-uuid')}?unexpected=1`
    const payload = HAS_BODY.has(method) ? { unexpected: true } : undefined
    const request = { method: method as 'GET', url, ...(payload ? { payload } : {}) }

    assertError(t, await api.acme.call(null, request), 401, 'UNAUTHORIZED')
    if (!validatesInput) continue // e.g. logout: nothing to validate (and calling it would end the member's session)
    if (MEMBER_FORBIDDEN.includes(route)) assertError(t, await api.acme.call('member', request), 403, 'FORBIDDEN')
    else {
      const res = await api.acme.call('member', request)
      t.equal(res.statusCode, 400, `${route} as a member with bad input: 400 (${res.body.slice(0, 120)})`)
    }
  }
})

// One request, one unit of the tenant's budget, on every signed-in route (review: the API-key
// routes ran the authentication hook twice and spent two). Bad input on purpose: nothing is written,
// and the count happens before validation.
t.test("every signed-in route spends exactly one unit of the tenant's request budget", async (t) => {
  const api = await buildApi(t, { TENANT_RATE_LIMIT: '1000', RATE_LIMIT_WINDOW_S: '600' })
  let remaining: number | undefined
  let probed = 0
  for (const [route, method, path] of await appRoutes(api)) {
    if (!MEMBER_ALLOWED.includes(route) && !MEMBER_FORBIDDEN.includes(route)) continue
    if (route === 'POST /v1/auth/logout') continue // would end the owner's session
    const url = `${path.replace(/\{[^}]+\}/g, 'not-a-uuid')}?unexpected=1`
    const res = await api.acme.call('owner', { method: method as 'GET', url, ...(HAS_BODY.has(method) ? { payload: { unexpected: true } } : {}) })
    const now = Number(res.headers['ratelimit-remaining'])
    if (remaining !== undefined) t.equal(now, remaining - 1, `${route}: one unit (${res.statusCode})`)
    remaining = now
    probed++
  }
  t.ok(probed >= 25, `${probed} routes probed`)
})

// Query strings are strict on every route, not only on the lists (review: `GET
// /v1/audit-events/export?action=…` answered the whole log as if it had filtered), and a PATCH must
// name at least one field (an empty one wrote an event of a change that did not happen). Walked
// from the route table, as the owner (who may call them all), with well-formed path ids, so the 400
// comes from the query string or the body and nothing runs: no row and no audit event changes.
t.test('every signed-in route refuses a parameter it does not take, every PATCH an empty body, and a route without a body one', async (t) => {
  const api = await buildApi(t, { PLATFORM_ADMIN_TOKEN: 'x'.repeat(40) })
  const events = async () => (await adminQuery<{ n: number }>(api.ownerUrl, 'SELECT count(*)::int AS n FROM audit_events')).rows[0]!.n
  const before = await events()
  let queries = 0
  let patches = 0
  let bodiless = 0
  for (const [route, method, path, operation] of await appRoutes(api)) {
    if (!MEMBER_ALLOWED.includes(route) && !MEMBER_FORBIDDEN.includes(route)) continue
    const url = path.replace(/\{[^}]+\}/g, RANDOM_UUID)
    if (!HAS_BODY.has(method)) {
      const res = await api.acme.call('owner', { method: method as 'GET', url: `${url}?unexpected=1` })
      assertError(t, res, 400, 'VALIDATION_FAILED')
      t.equal(res.json().error.message, 'querystring/unexpected is not a known field', `${route}?unexpected=1: the message names the parameter`)
      queries++
    }
    if (method === 'PATCH') {
      assertError(t, await api.acme.call('owner', { method: 'PATCH', url, payload: {} }), 400, 'VALIDATION_FAILED')
      patches++
    }
    if (HAS_BODY.has(method) || method === 'DELETE') {
      if (operation?.requestBody) continue
      // A route that takes no body (DELETE, logout) refuses one that says something (review, round
      // ten: `DELETE … {"confirm": false}` deleted the project).
      const res = await api.acme.call('owner', { method: method as 'DELETE', url, payload: { confirm: false } })
      assertError(t, res, 400, 'VALIDATION_FAILED')
      t.equal(res.json().error.message, 'body/confirm is not a known field', `${route} with a body`)
      bodiless++
    }
  }
  t.ok(bodiless >= 6, `${bodiless} routes without a body probed with one`)
  t.ok(queries >= 15, `${queries} routes without a body probed`)
  t.equal(patches, 5, 'every PATCH route of a tenant host probed')
  const platformAdmin = { host: 'localhost', authorization: `Bearer ${'x'.repeat(40)}` }
  assertError(t, await api.app.inject({ method: 'PATCH', url: '/v1/admin/tenants/acme', headers: platformAdmin, payload: {} }), 400, 'VALIDATION_FAILED')
  // Routes with a body: a valid one, so that only the query string is wrong (the body is validated first).
  const withBody: Array<[string, Promise<{ statusCode: number, body: string, json: () => { error: { message: string } } }>]> = [
    ['POST /v1/projects', api.acme.call('owner', { method: 'POST', url: '/v1/projects?unexpected=1', payload: { name: 'Nope' } })],
    ['PATCH /v1/projects/{id}', api.acme.call('owner', { method: 'PATCH', url: `/v1/projects/${RANDOM_UUID}?unexpected=1`, payload: { name: 'Nope' } })],
    ['POST /v1/auth/login (public)', api.acme.call(null, { method: 'POST', url: '/v1/auth/login?unexpected=1', payload: { email: 'owner@acme.example', password: 'correct horse battery staple' } })],
    ['POST /v1/tenants (platform)', api.app.inject({ method: 'POST', url: '/v1/tenants?unexpected=1', headers: { host: 'localhost' }, payload: { slug: 'nope', name: 'Nope', owner: { email: 'a@nope.example', name: 'A', password: 'correct horse battery staple' } } })],
    ['GET /v1/admin/tenants (platform)', api.app.inject({ url: '/v1/admin/tenants?unexpected=1', headers: platformAdmin })],
  ]
  for (const [route, answer] of withBody) {
    const res = await answer
    t.equal(res.statusCode, 400, `${route}?unexpected=1 with a valid body: 400 (${res.body.slice(0, 120)})`)
    t.equal(res.json().error.message, 'querystring/unexpected is not a known field', route)
  }
  t.same((await adminQuery(api.ownerUrl, "SELECT (SELECT count(*)::int FROM projects WHERE name = 'Nope') AS projects, (SELECT count(*)::int FROM tenants WHERE slug = 'nope') AS tenants")).rows, [{ projects: 0, tenants: 0 }], 'nothing was created')
  t.equal(await events(), before, 'no audit event was written')

  // On a project that exists: a body on DELETE deletes nothing; an empty object is no body.
  const project = await api.acme.call('owner', { method: 'POST', url: '/v1/projects', payload: { name: 'Kept' } })
  const projectUrl = `/v1/projects/${project.json().id}`
  assertError(t, await api.acme.call('owner', { method: 'DELETE', url: projectUrl, payload: '[]', headers: { 'content-type': 'application/json' } }), 400, 'VALIDATION_FAILED')
  t.equal((await api.acme.call('owner', { url: projectUrl })).statusCode, 200, 'the project was not deleted')
  t.equal((await api.acme.call('owner', { method: 'DELETE', url: projectUrl, payload: {} })).statusCode, 204, 'an empty JSON object says nothing: accepted')
})
