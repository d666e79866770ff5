// Two API server processes on one PostgreSQL and one Redis, as production runs them behind a load
// balancer: the limits count across both (concurrent guesses too), and a revocation, suspension, deactivation or role change
// made through one is refused by the other within 1 s (the caches' TTLs are set to 5 s here, so
// only the invalidation channel can explain it). Then Redis is stopped, and started again.
import t from 'tap'
import { call, TestRedis, timeUntil, type Server } from './cluster-helper.ts'
import { redisEnv } from './helper.ts'
import { PASSWORD, ADMIN_TOKEN, BOUND_MS, login, me, usersList, deployment, token, propagation, logout, patchUser, sleep } from './deployment-helper.ts'

t.setTimeout(400_000) // two server processes, a Redis restart and a 5 s cache expiry, on a shared machine

t.test('two instances with Redis: shared limits, instant invalidation, Redis down and back', async (t) => {
  const redis = await TestRedis.start(t)
  const { a, b, users } = await deployment(t, { ...redisEnv(redis.url), SIGNUP_PER_IP_MAX: '3' })

  // 5 failures in total for one tenant + email, alternating instances, then 429 on both.
  for (let i = 0; i < 5; i++) t.equal((await login(i % 2 ? b : a, 'owner@acme.test', `wrong password ${i}`)).status, 401, `failure ${i + 1} on ${i % 2 ? 'B' : 'A'}`)
  for (const [name, server] of [['A', a], ['B', b]] as const) {
    const limited = await login(server, 'owner@acme.test')
    t.equal(limited.status, 429, `next attempt on ${name}: 429, even with the right password`)
    t.equal(limited.json().error.code, 'RATE_LIMITED')
    t.ok(Number(limited.headers['retry-after']) > 800, `Retry-After on ${name}: ${limited.headers['retry-after']} s`)
  }

  // Concurrent guesses spread over both instances share that budget too: each is counted before its
  // password is checked (review 89: a per-process count of the checks in flight let two instances
  // check 10 passwords against a budget of 5). An unknown email has a budget like any other.
  const guesses = await Promise.all(Array.from({ length: 12 }, (_, i) => login(i % 2 ? b : a, 'nobody@acme.test', `guess ${i}`)))
  const statuses = guesses.map((answer) => answer.status)
  t.ok(statuses.filter((status) => status === 401).length <= 5, `at most 5 passwords checked across both instances (${statuses.join(',')})`)
  t.equal(statuses.filter((status) => status === 429).length + statuses.filter((status) => status === 401).length, 12, 'the rest refused with 429')
  for (const server of [a, b]) t.equal((await login(server, 'nobody@acme.test')).status, 429, 'spent on both')

  // Signups per address (3 here) count across both instances too.
  const signup = (server: Server, slug: string) => call(server.port, {
    method: 'POST',
    path: '/v1/tenants',
    headers: { host: 'localhost' },
    body: { slug, name: slug, owner: { email: `owner@${slug}.test`, password: PASSWORD, name: 'Owner' } },
  })
  const signups = [await signup(a, 'initech'), await signup(b, 'hooli'), await signup(a, 'umbrella'), await signup(b, 'soylent')]
  t.same(signups.map((answer) => answer.status), [201, 201, 201, 429], 'the 4th signup from one address, on B, is refused')
  t.ok(Number(signups[3]!.headers['retry-after']) > 3000, `Retry-After ${signups[3]!.headers['retry-after']} s`)

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

  // Redis frozen (connections open, no answer): one command waits out the client's 500 ms timeout,
  // then the limits count in memory for 2 s (src/limits/fallback-store.ts), so requests stop waiting.
  redis.freeze()
  const waits: number[] = []
  for (let i = 0; i < 10; i++) {
    const sent = performance.now()
    t.equal((await me(a, carol)).status, 200, `Redis frozen: request ${i + 1} on A answered`)
    waits.push(Math.round(performance.now() - sent))
  }
  redis.thaw()
  t.comment(`Redis frozen: 10 requests on A took ${waits.join(', ')} ms`)
  t.ok(waits.filter((ms) => ms >= 450).length <= 2, 'at most one or two waited out the Redis timeout, not each')

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
