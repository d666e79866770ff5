// API keys and request limits on two API server processes sharing one PostgreSQL and one Redis:
// the tenant's, the key's and an address's anonymous budget are each one budget across both
// instances (not one per instance), and a key revoked through one instance is refused by the other
// within 1 s. The key cache's TTL is 5 s here and the change feed is off (test/deployment-helper.ts),
// so only the invalidation channel explains it.
import { randomUUID } from 'node:crypto'
import t from 'tap'
import { createUser } from './auth-helper.ts'
import { call, TestRedis, type Answer, type Server } from './cluster-helper.ts'
import { ADMIN_TOKEN, HOST, PASSWORD, deployment, login, propagation, type Tap } from './deployment-helper.ts'
import { insertTenant, redisEnv } from './helper.ts'

t.setTimeout(300_000) // two server processes on a shared machine

const TENANT_LIMIT = 16
const KEY_LIMIT = 4
const ANONYMOUS_LIMIT = 4

const projects = (server: Server, host: string, credential: string) =>
  call(server.port, { path: '/v1/projects', headers: { host, authorization: `Bearer ${credential}` } })

async function signIn (server: Server, host: string, email: string): Promise<string> {
  const answer = await call(server.port, { method: 'POST', path: '/v1/auth/login', headers: { host }, body: { email, password: PASSWORD } })
  if (answer.status !== 200) throw new Error(`login ${email}: ${answer.status} ${answer.body}`)
  return answer.json().accessToken
}

async function createKey (server: Server, host: string, token: string): Promise<{ id: string; key: string }> {
  const answer = await call(server.port, { method: 'POST', path: '/v1/api-keys', headers: { host, authorization: `Bearer ${token}` }, body: { name: `key ${randomUUID()}`, scopes: ['projects:read'] } })
  if (answer.status !== 201) throw new Error(`create key: ${answer.status} ${answer.body}`)
  return answer.json()
}

/**
 * Sends `send` to A, B, A, B… until one is refused: every served answer must show one fewer left
 * (RateLimit-Remaining) than the one before, whichever instance gave it, down to 0; then both
 * instances refuse with 429 RATE_LIMITED and Retry-After.
 */
async function oneBudget (t: Tap & { same(...args: unknown[]): void }, what: string, a: Server, b: Server, send: (server: Server) => Promise<Answer>, okStatus = 200) {
  const left: string[] = []
  for (let i = 0; i < 2 * TENANT_LIMIT + 2; i++) {
    const server = i % 2 ? b : a
    const answer = await send(server)
    if (answer.status === 429) break
    t.equal(answer.status, okStatus, `${what}: served (${answer.body.slice(0, 120)})`)
    left.push(`${server === a ? 'A' : 'B'}:${answer.headers['ratelimit-remaining']}`)
  }
  const counts = left.map((entry) => Number(entry.slice(2)))
  t.ok(left.length >= 2, `${what}: both instances served (${left.join(', ')})`)
  t.same(counts, counts.map((_, j) => counts[0]! - j), `${what}: each answer spent one of the same budget, on A or B`)
  t.equal(counts.at(-1), 0, `${what}: served until none was left`)
  for (const [name, server] of [['A', a], ['B', b]] as const) {
    const refused = await send(server)
    t.equal(refused.status, 429, `${what}: then ${name} refuses`)
    t.equal(refused.json().error?.code, 'RATE_LIMITED')
    t.ok(Number(refused.headers['retry-after']) >= 1, `${what}: Retry-After ${refused.headers['retry-after']} s on ${name}`)
  }
}

t.test('two instances with Redis: one budget per tenant, key and address; revocation reaches the other instance', async (t) => {
  const redis = await TestRedis.start(t)
  const { a, b, ownerUrl } = await deployment(t, {
    ...redisEnv(redis.url),
    RATE_LIMIT_WINDOW_S: '600',
    TENANT_RATE_LIMIT: String(TENANT_LIMIT),
    API_KEY_RATE_LIMIT: String(KEY_LIMIT),
    ANONYMOUS_RATE_LIMIT: String(ANONYMOUS_LIMIT),
  })

  // acme: the limits. The sign-in is anonymous (1 of this address's 4 on acme's host).
  const owner = await signIn(a, HOST, 'owner@acme.test')
  const { key } = await createKey(a, HOST, owner)
  await oneBudget(t, 'the key\'s limit', a, b, (server) => projects(server, HOST, key))
  await oneBudget(t, 'the tenant\'s limit', a, b, (server) => projects(server, HOST, owner))
  await oneBudget(t, 'the anonymous limit of one address', a, b, (server) => call(server.port, { path: '/', headers: { host: HOST } }))
  const tooMany = await login(b, 'owner@acme.test')
  t.equal(tooMany.status, 429, 'a sign-in from that address is refused too')

  // globex (its own, high limit): a key revoked on A is refused on B within 1 s.
  const globexHost = 'globex.localhost'
  const globex = await insertTenant(ownerUrl, 'globex')
  await createUser(ownerUrl, globex, { email: 'owner@globex.test', password: PASSWORD, role: 'owner' })
  const raised = await call(a.port, { method: 'PATCH', path: '/v1/admin/tenants/globex', headers: { host: 'localhost', authorization: `Bearer ${ADMIN_TOKEN}` }, body: { rateLimit: 100_000 } })
  t.equal(raised.status, 200, 'globex gets its own limit')
  const globexOwner = await signIn(a, globexHost, 'owner@globex.test')
  const revoked = await createKey(a, globexHost, globexOwner)
  // B answers 200 until it knows (or 429 once the key's own 4 are spent), then 401.
  await propagation(t, 'API key revocation', b, () => projects(b, globexHost, revoked.key), async () => {
    const answer = await call(a.port, { method: 'DELETE', path: `/v1/api-keys/${revoked.id}`, headers: { host: globexHost, authorization: `Bearer ${globexOwner}` } })
    t.equal(answer.status, 204, 'revoked on A')
  })
  t.equal((await projects(a, globexHost, revoked.key)).status, 401, 'and refused on A')
})
