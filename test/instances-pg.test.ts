// Two API server processes without Redis: the invalidations travel over PostgreSQL LISTEN/NOTIFY
// (a dedicated connection per instance), also after that connection was killed; an API key revoked
// on A is refused on B within 1 s.
import t from 'tap'
import { call, timeUntil } from './cluster-helper.ts'
import { ADMIN_TOKEN, BOUND_MS, HOST, deployment, logout, me, propagation, token } from './deployment-helper.ts'
import { adminQuery } from './helper.ts'

t.setTimeout(300_000) // two server processes on a shared machine

t.test('two instances without Redis: LISTEN/NOTIFY carries the invalidations', async (t) => {
  const { a, b, ownerUrl } = await deployment(t, {})
  t.match(a.output(), /REDIS_URL is not set: rate limits are counted per instance/, 'production warns at start without a shared store')
  const bob = await token(a, 'bob@acme.test')
  await propagation(t, 'logout (PostgreSQL channel)', b, () => me(b, bob), async () => {
    t.equal((await logout(a, bob)).status, 204)
  })
  const owner = await token(a, 'owner@acme.test')
  const created = await call(a.port, { method: 'POST', path: '/v1/api-keys', headers: { host: HOST, authorization: `Bearer ${owner}` }, body: { name: 'pg channel', scopes: ['projects:read'] } })
  t.equal(created.status, 201)
  const { id: keyId, key } = created.json()
  await propagation(t, 'API key revocation (PostgreSQL channel)', b, () => call(b.port, { path: '/v1/projects', headers: { host: HOST, authorization: `Bearer ${key}` } }), async () => {
    t.equal((await call(a.port, { method: 'DELETE', path: `/v1/api-keys/${keyId}`, headers: { host: HOST, authorization: `Bearer ${owner}` } })).status, 204)
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

  // The listening connections die (a failover, an idle-connection killer): each instance reconnects.
  const killed = await adminQuery(ownerUrl, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'tenant-api-invalidation' AND datname = current_database()")
  t.equal(killed.rowCount, 2, 'both instances\' LISTEN connections terminated')
  await timeUntil(async () => {
    const { rows } = await adminQuery(ownerUrl, "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'tenant-api-invalidation' AND datname = current_database()")
    return rows[0]!.n === 2
  }, 10_000)
  t.pass('both reconnected')
  const dave = await token(a, 'dave@acme.test')
  await propagation(t, 'logout after the LISTEN connections were killed', b, () => me(b, dave), async () => {
    t.equal((await logout(a, dave)).status, 204)
  })
})
