// Two API server processes on one PostgreSQL and one Redis, as production runs them behind a load
// balancer: the limits count across both, and a revocation, suspension, deactivation or role change
// made through one is refused by the other within 1 s (the caches' TTLs are set to 5 s here, so
// only the invalidation channel can explain it). Then Redis is stopped: the documented behaviour.
import { randomUUID } from 'node:crypto'
import t from 'tap'
import { createUser } from './auth-helper.ts'
import { call, sharedSecrets, startServer, TestRedis, timeUntil, type Server } from './cluster-helper.ts'
import { createTestDatabase, insertTenant } from './helper.ts'

const PASSWORD = 'correct horse battery staple'
const ADMIN_TOKEN = 'platform-admin-token-of-the-instances-test-0123456789'
const HOST = 'acme.localhost'
const BOUND_MS = 1_000

const login = (server: Server, email: string, password = PASSWORD) =>
  call(server.port, { method: 'POST', path: '/v1/auth/login', headers: { host: HOST }, body: { email, password } })
const me = (server: Server, token: string) => call(server.port, { path: '/v1/me', headers: { host: HOST, authorization: `Bearer ${token}` } })
const usersList = (server: Server, token: string) => call(server.port, { path: '/v1/users', headers: { host: HOST, authorization: `Bearer ${token}` } })

async function deployment(t: Tap, env: Record<string, string>) {
  const ownerUrl = await createTestDatabase(t)
  const acme = await insertTenant(ownerUrl, 'acme')
  const users: Record<string, string> = {}
  for (const [email, role] of [['owner@acme.test', 'owner'], ['bob@acme.test', 'member'], ['carol@acme.test', 'admin'], ['dave@acme.test', 'member'], ['erin@acme.test', 'member']] as const) {
    users[email] = (await createUser(ownerUrl, acme, { email, password: PASSWORD, role })).id
  }
  const common = {
    NODE_ENV: 'production', DATABASE_URL: ownerUrl, PLATFORM_ADMIN_TOKEN: ADMIN_TOKEN,
    REVOCATION_CACHE_TTL_MS: '5000', TENANT_CACHE_TTL_MS: '5000', ...sharedSecrets(), ...env,
  }
  const [a, b] = await Promise.all([startServer(t, common), startServer(t, common)])
  return { a: a!, b: b!, users }
}
type Tap = Parameters<typeof createTestDatabase>[0] & { comment(...args: unknown[]): void; equal(...args: unknown[]): void; ok(...args: unknown[]): void }

/** Signs in on `server` and returns the access token. */
async function token(server: Server, email: string): Promise<string> {
  const answer = await login(server, email)
  if (answer.status !== 200) throw new Error(`login ${email}: ${answer.status} ${answer.body}`)
  return answer.json().accessToken as string
}

/** `change` on A, then how long B keeps accepting `probe` (refused = `refused(status)`). */
async function propagation(t: Tap, what: string, b: Server, probe: () => Promise<{ status: number }>, change: () => Promise<void>, refused: (status: number) => boolean = (status) => status === 401) {
  t.equal((await probe()).status, 200, `${what}: accepted on B before (and now cached there)`)
  await change()
  const ms = await timeUntil(async () => refused((await probe()).status), 10_000)
  t.comment(`${what}: refused on B ${ms} ms after A's answer`)
  t.ok(ms < BOUND_MS, `${what}: refused on B within 1 s (${ms} ms)`)
}

const logout = (server: Server, accessToken: string) =>
  call(server.port, { method: 'POST', path: '/v1/auth/logout', headers: { host: HOST, authorization: `Bearer ${accessToken}` } })
const patchUser = (server: Server, actor: string, id: string, body: object) =>
  call(server.port, { method: 'PATCH', path: `/v1/users/${id}`, headers: { host: HOST, authorization: `Bearer ${actor}` }, body })
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

t.test('two instances with Redis: shared limits, instant invalidation, Redis down and back', async (t) => {
  const redis = await TestRedis.start(t)
  const { a, b, users } = await deployment(t, { REDIS_URL: redis.url, REDIS_KEY_PREFIX: `test-${randomUUID()}:` })

  // 5 failures in total for one tenant + email, alternating instances, then 429 on both.
  for (let i = 0; i < 5; i++) t.equal((await login(i % 2 ? b : a, 'owner@acme.test', `wrong password ${i}`)).status, 401, `failure ${i + 1} on ${i % 2 ? 'B' : 'A'}`)
  for (const [name, server] of [['A', a], ['B', b]] as const) {
    const limited = await login(server, 'owner@acme.test')
    t.equal(limited.status, 429, `next attempt on ${name}: 429, even with the right password`)
    t.equal(limited.json().error.code, 'RATE_LIMITED')
    t.ok(Number(limited.headers['retry-after']) > 800, `Retry-After on ${name}: ${limited.headers['retry-after']} s`)
  }

  const carol = await token(a, 'carol@acme.test') // an admin: changes members' roles and deactivates them

  const bob = await token(a, 'bob@acme.test')
  await propagation(t, 'logout', b, () => me(b, bob), async () => {
    t.equal((await logout(a, bob)).status, 204)
  })

  const dave = await token(a, 'dave@acme.test')
  t.equal((await patchUser(a, carol, users['dave@acme.test']!, { role: 'admin' })).status, 200, 'dave promoted to admin on A')
  await timeUntil(async () => (await usersList(b, dave)).status === 200, 2_000)
  await propagation(t, 'role change', b, () => usersList(b, dave), async () => {
    t.equal((await patchUser(a, carol, users['dave@acme.test']!, { role: 'member' })).status, 200)
  }, (status) => status === 403)

  const erin = await token(b, 'erin@acme.test')
  await propagation(t, 'deactivation', b, () => me(b, erin), async () => {
    t.equal((await patchUser(a, carol, users['erin@acme.test']!, { active: false })).status, 200)
  })

  const suspend = (status: 'active' | 'suspended') =>
    call(a.port, { method: 'PATCH', path: '/v1/admin/tenants/acme', headers: { host: 'localhost', authorization: `Bearer ${ADMIN_TOKEN}` }, body: { status } })
  await propagation(t, 'suspension', b, () => me(b, carol), async () => {
    t.equal((await suspend('suspended')).status, 200)
  }, (status) => status === 404)
  t.equal((await suspend('active')).status, 200)
  const back = await timeUntil(async () => (await me(b, carol)).status === 200, 10_000)
  t.comment(`reactivation: accepted on B ${back} ms after A's answer`)
  t.ok(back < BOUND_MS, 'reactivation holds on B within 1 s')

  // Redis stops: every limit counts in each instance's memory; nothing fails for clients.
  await redis.stop()
  t.equal((await call(a.port, { path: '/healthz', headers: { host: 'localhost' } })).status, 200, 'A is up')
  const started = performance.now()
  t.equal((await login(b, 'carol@acme.test')).status, 200, 'login works with Redis down')
  t.comment(`Redis down: a login took ${Math.round(performance.now() - started)} ms`)
  for (let i = 0; i < 5; i++) t.equal((await login(a, 'bob@acme.test', `wrong ${i}`)).status, 401, `Redis down: failure ${i + 1} on A`)
  t.equal((await login(a, 'bob@acme.test')).status, 429, 'Redis down: the next attempt on A is 429 (counted in A\'s memory)')
  t.equal((await login(b, 'bob@acme.test')).status, 200, 'Redis down: B has not seen A\'s failures (per-instance counting, as documented)')

  // Without its channel, the cache TTL (5 s here) still bounds a revocation.
  const dave2 = await token(a, 'dave@acme.test')
  t.equal((await me(b, dave2)).status, 200)
  t.equal((await logout(a, dave2)).status, 204)
  const viaTtl = await timeUntil(async () => (await me(b, dave2)).status === 401, 8_000)
  t.comment(`Redis down: logout on A refused on B after ${viaTtl} ms (cache TTL 5000 ms)`)
  t.ok(viaTtl <= 5_500, 'within the cache TTL')

  // Redis back (empty, as after a restart): counting is shared again and the channel resumes.
  await redis.restart()
  await sleep(3_000) // the clients reconnect with a backoff of at most 2 s
  for (let i = 0; i < 5; i++) t.equal((await login(i % 2 ? b : a, 'dave@acme.test', `wrong again ${i}`)).status, 401)
  t.equal((await login(b, 'dave@acme.test')).status, 429, 'Redis back: failures on both count together again')
  const carol2 = await token(a, 'carol@acme.test')
  await propagation(t, 'logout after Redis came back', b, () => me(b, carol2), async () => {
    t.equal((await logout(a, carol2)).status, 204)
  })
})

t.test('two instances without Redis: LISTEN/NOTIFY carries the invalidations', async (t) => {
  const { a, b } = await deployment(t, {})
  const bob = await token(a, 'bob@acme.test')
  await propagation(t, 'logout (PostgreSQL channel)', b, () => me(b, bob), async () => {
    t.equal((await logout(a, bob)).status, 204)
  })
  const suspend = (status: 'active' | 'suspended') =>
    call(a.port, { method: 'PATCH', path: '/v1/admin/tenants/acme', headers: { host: 'localhost', authorization: `Bearer ${ADMIN_TOKEN}` }, body: { status } })
  const carol = await token(b, 'carol@acme.test')
  await propagation(t, 'suspension (PostgreSQL channel)', b, () => me(b, carol), async () => {
    t.equal((await suspend('suspended')).status, 200)
  }, (status) => status === 404)
  t.equal((await suspend('active')).status, 200)
  const back = await timeUntil(async () => (await me(b, carol)).status === 200, 10_000)
  t.ok(back < BOUND_MS, `reactivation holds on B within 1 s (${back} ms)`)
})
