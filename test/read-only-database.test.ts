// A failover that lands on a standby or a demoted primary: the database answers, but refuses every
// write (default_transaction_read_only here). Writes answer 503 with Retry-After (not 500), /readyz
// says not ready, and once the database takes writes again each read-only connection has been
// replaced: it fails once at most (25006 destroys it), never again.
import t from 'tap'
import { adminQuery, setReadOnly } from './helper.ts'
import { assertError, buildApi } from './api-helper.ts'

t.test('a read-only database: writes 503, /readyz 503, and all well again once it takes writes', async (t) => {
  const { app, acme, ownerUrl } = await buildApi(t, { DB_POOL_MAX: '3', LOG_LEVEL: 'fatal' })
  const readOnly = (on: boolean) => setReadOnly(ownerUrl, on)
  const create = (name: string) => acme.call('member', { method: 'POST', url: '/v1/projects', payload: { name } })
  const ready = async () => (await app.inject({ url: '/readyz', headers: { host: 'localhost' } })).statusCode
  t.equal((await create('before')).statusCode, 201)
  t.equal(await ready(), 200)

  await readOnly(true)
  t.teardown(() => readOnly(false))
  for (let i = 0; i < 5; i++) {
    const refused = await create(`read-only ${i}`)
    assertError(t, refused, 503, 'SERVICE_UNAVAILABLE')
    t.ok(Number(refused.headers['retry-after']) > 0, 'with Retry-After')
  }
  t.equal(await ready(), 503, '/readyz: not ready while the database refuses writes')
  t.equal((await acme.call('member', { url: '/v1/projects' })).statusCode, 200, 'reads still answer')

  await readOnly(false)
  t.equal(await ready(), 200, '/readyz: ready again at once (its read-only connection was not kept)')
  const after: number[] = []
  for (let i = 0; i < 8; i++) after.push((await create(`after ${i}`)).statusCode)
  t.comment(`creates once writable again: ${after.join(', ')}`)
  t.ok(after.slice(3).every((status) => status === 201), 'at most one 503 per pooled connection (3), then every create succeeds')
  const { rows } = await adminQuery<{ n: number }>(ownerUrl, "SELECT count(*)::int AS n FROM projects WHERE name LIKE 'read-only%'")
  t.equal(rows[0]!.n, 0, 'nothing was written while read-only')
})
