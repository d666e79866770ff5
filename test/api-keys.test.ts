// API keys (shared/API.md "API keys"), through the real app: create/list/revoke, the key shown once,
// every bad key answered the same 401, scopes mapped onto the permission table, revocation and
// expiry within 1 s (through the change feed; test/change-feed.test.ts for the rest of the feed), the suspended tenant, last_used_at, and CSRF/cookies.
import pg from 'pg'
import t from 'tap'
import { API_KEY_PATTERN } from '../src/auth/api-keys.ts'
import { adminQuery } from './helper.ts'
import { assertError, buildApi, RANDOM_UUID, turnsInto, WITHIN_ONE_SECOND_MS, type ApiFixture, type TenantFixture } from './api-helper.ts'
import type { Role } from '../src/auth/permissions.ts'
import type { InjectOptions } from 'fastify'

const ADMIN_TOKEN = 'platform-admin-token-for-api-key-tests-0123456789'
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

interface CreatedKey {
  id: string
  key: string
  prefix: string
  scopes: string[]
  [field: string]: unknown
}

async function createKey (tenant: TenantFixture, as: Role, body: object): Promise<CreatedKey> {
  const res = await tenant.call(as, { method: 'POST', url: '/v1/api-keys', payload: body })
  if (res.statusCode !== 201) throw new Error(`create key: ${res.statusCode} ${res.body}`)
  return res.json()
}

/** A request on `tenant`'s host with `Authorization: Bearer <key>`. */
const withKey = (f: ApiFixture, host: string, key: string, options: InjectOptions) =>
  f.app.inject({ ...options, headers: { host, authorization: `Bearer ${key}`, ...options.headers } })

const sameAnswer = (res: { json(): { error: { code: string; message: string } } }) => {
  const { code, message } = res.json().error
  return { code, message }
}

t.test('create, list, revoke; the key is shown once', async (t) => {
  const f = await buildApi(t)
  const { acme } = f
  const created = await createKey(acme, 'owner', { name: 'CI deploys', scopes: ['projects:read', 'tasks:write'] })
  t.same(Object.keys(created).sort(), ['createdAt', 'createdBy', 'expiresAt', 'id', 'key', 'lastUsedAt', 'name', 'prefix', 'revokedAt', 'scopes'])
  t.match(created.key, API_KEY_PATTERN, 'tk_live_<id>_<secret>')
  t.equal(created.prefix, created.key.slice(0, 20))
  t.equal(created.createdBy, acme.users.owner.user.id)
  t.equal(created.expiresAt, null)
  t.equal(created.lastUsedAt, null)
  t.equal(created.revokedAt, null)
  t.same(created.scopes, ['projects:read', 'tasks:write'])

  const stored = (await adminQuery(f.ownerUrl, 'SELECT * FROM api_keys WHERE id = $1', [created.id])).rows[0]!
  t.match(stored.key_hash, /^[0-9a-f]{64}$/, 'a hash is stored')
  t.notOk(JSON.stringify(stored).includes(created.key.slice(21)), 'the secret part is stored nowhere in the row')
  t.equal(stored.tenant_id, acme.id)

  const list = await acme.call('admin', { url: '/v1/api-keys' })
  t.equal(list.statusCode, 200)
  t.equal(list.json().data.length, 1)
  const { key: _key, ...withoutKey } = created
  t.same(list.json().data[0], withoutKey, 'the list shows everything but the key')
  t.notOk(list.body.includes(created.key.slice(21)), 'the list never shows the key')
  t.notOk(list.body.includes(stored.key_hash), 'nor its hash')

  t.equal((await withKey(f, acme.host, created.key, { url: '/v1/projects' })).statusCode, 200, 'the key works')
  const revoked = await acme.call('admin', { method: 'DELETE', url: `/v1/api-keys/${created.id}` })
  t.equal(revoked.statusCode, 204)
  assertError(t, await withKey(f, acme.host, created.key, { url: '/v1/projects' }), 401, 'UNAUTHORIZED')
  t.ok((await acme.call('owner', { url: '/v1/api-keys' })).json().data[0].revokedAt, 'listed as revoked')
  t.equal((await acme.call('owner', { method: 'DELETE', url: `/v1/api-keys/${created.id}` })).statusCode, 204, 'revoking again is still 204')
  assertError(t, await acme.call('owner', { method: 'DELETE', url: `/v1/api-keys/${RANDOM_UUID}` }), 404, 'NOT_FOUND')

  // Another tenant's key: not listed, not revocable (404 as a missing one), still working.
  const theirs = await createKey(f.globex, 'owner', { name: 'globex', scopes: ['projects:read'] })
  t.notOk((await acme.call('owner', { url: '/v1/api-keys' })).body.includes(theirs.id))
  assertError(t, await acme.call('owner', { method: 'DELETE', url: `/v1/api-keys/${theirs.id}` }), 404, 'NOT_FOUND')
  t.equal((await withKey(f, f.globex.host, theirs.key, { url: '/v1/projects' })).statusCode, 200)
})

t.test("a key outlives its creator's deletion", async (t) => {
  const f = await buildApi(t)
  const { acme } = f
  const created = await createKey(acme, 'admin', { name: 'by admin', scopes: ['projects:read'] })
  t.equal((await acme.call('owner', { method: 'DELETE', url: `/v1/users/${acme.users.admin.user.id}` })).statusCode, 204, 'the creator can be deleted')
  t.equal((await withKey(f, acme.host, created.key, { url: '/v1/projects' })).statusCode, 200, 'the key still works')
  t.equal((await acme.call('owner', { url: '/v1/api-keys' })).json().data[0].createdBy, null, 'createdBy is cleared')
})

t.test('a creator grants only what their role holds (the one permission table decides)', async (t) => {
  const { canGrant, SCOPE_NAMES } = await import('../src/auth/permissions.ts')
  t.same(SCOPE_NAMES.filter((scope) => canGrant('member', scope)), ['projects:read', 'projects:write', 'tasks:read', 'tasks:write', 'tenant:read'], 'a member holds no users:read')
  t.same(SCOPE_NAMES.filter((scope) => canGrant('admin', scope)), SCOPE_NAMES, 'an admin holds every scope')
})

t.test('who may create which key; bodies are validated', async (t) => {
  const f = await buildApi(t)
  const { acme } = f
  assertError(t, await acme.call('member', { method: 'POST', url: '/v1/api-keys', payload: { name: 'm', scopes: ['projects:read'] } }), 403, 'FORBIDDEN')
  assertError(t, await acme.call('member', { url: '/v1/api-keys' }), 403, 'FORBIDDEN')
  assertError(t, await acme.call(null, { url: '/v1/api-keys' }), 401, 'UNAUTHORIZED')
  const admin = await createKey(acme, 'admin', { name: 'all', scopes: ['projects:read', 'projects:write', 'tasks:read', 'tasks:write', 'users:read', 'tenant:read'] })
  t.equal(admin.scopes.length, 6, 'an admin holds every scope')
  for (const payload of [
    { name: 'x', scopes: ['projects:admin'] }, // unknown scope
    { name: 'x', scopes: [] },
    { name: 'x', scopes: ['projects:read', 'projects:read'] },
    { name: '', scopes: ['projects:read'] },
    { scopes: ['projects:read'] },
    { name: 'x', scopes: ['projects:read'], extra: 1 },
    { name: 'x', scopes: ['projects:read'], expiresAt: '2001-01-01T00:00:00Z' }, // in the past
    { name: 'x', scopes: ['projects:read'], expiresAt: 'tomorrow' },
  ]) {
    assertError(t, await acme.call('owner', { method: 'POST', url: '/v1/api-keys', payload }), 400, 'VALIDATION_FAILED')
  }
  t.equal((await adminQuery(f.ownerUrl, 'SELECT count(*)::int AS n FROM api_keys')).rows[0]!.n, 1, 'refused bodies created nothing')
})

t.test('every bad key is the same 401: malformed, near miss, foreign, revoked, expired, suspended tenant', async (t) => {
  // No change feed here (it would drop the tenant's host at once): the key's own check of its tenant is what is shown.
  const f = await buildApi(t, { TENANT_CACHE_TTL_MS: '5000', API_KEY_CACHE_TTL_MS: '1000', CHANGE_FEED_CACHE_TTL_MS: '0', PLATFORM_ADMIN_TOKEN: ADMIN_TOKEN })
  const { acme, globex } = f
  const good = await createKey(acme, 'owner', { name: 'good', scopes: ['projects:read'] })
  const foreign = await createKey(globex, 'owner', { name: 'globex', scopes: ['projects:read'] })
  const toRevoke = await createKey(acme, 'owner', { name: 'revoked', scopes: ['projects:read'] })
  await acme.call('owner', { method: 'DELETE', url: `/v1/api-keys/${toRevoke.id}` })
  const expiring = await createKey(acme, 'owner', { name: 'expired', scopes: ['projects:read'], expiresAt: new Date(Date.now() + 60_000).toISOString() })
  await adminQuery(f.ownerUrl, "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1", [expiring.id])

  const flip = (c: string) => (c === 'a' ? 'b' : 'a')
  const secret = good.key.slice(21)
  const bad: Record<string, string> = {
    'malformed: prefix only': 'tk_live_',
    'malformed: short': good.key.slice(0, -1),
    'malformed: long': `${good.key}a`,
    'malformed: upper case': good.key.toUpperCase(),
    'malformed: other letters': `tk_test_${good.key.slice(8)}`,
    'near miss: last character': good.key.slice(0, -1) + flip(good.key.at(-1)!),
    'near miss: first secret character': good.key.slice(0, 21) + flip(secret[0]!) + secret.slice(1),
    'near miss: id character': good.key.slice(0, 8) + flip(good.key[8]!) + good.key.slice(9),
    "another tenant's prefix with this key's secret": `${foreign.prefix}_${secret}`,
    "another tenant's key": foreign.key,
    revoked: toRevoke.key,
    expired: expiring.key,
  }
  const reference = await withKey(f, acme.host, 'tk_live_', { url: '/v1/projects' })
  for (const [what, key] of Object.entries(bad)) {
    const res = await withKey(f, acme.host, key, { url: '/v1/projects' })
    assertError(t, res, 401, 'UNAUTHORIZED')
    t.same(sameAnswer(res), sameAnswer(reference), `${what}: the same answer`)
    t.notOk(res.body.includes(secret) || (key.length > 21 && res.body.includes(key.slice(21))), `${what}: the key is not echoed`)
    t.notOk(JSON.stringify(res.headers).includes(secret), `${what}: nor in a header`)
  }
  t.same(sameAnswer(await acme.call(null, { url: '/v1/projects', headers: { authorization: 'Bearer not.a.jwt' } })), sameAnswer(reference), 'the same as a bad token')
  t.equal((await withKey(f, acme.host, good.key, { url: '/v1/projects' })).statusCode, 200, 'the good key still works')

  // Suspended behind this instance's back (as another instance would): the tenant cache (5 s here)
  // still serves the host, but the key's cache entry (1 s here) sees the suspension.
  await adminQuery(f.ownerUrl, "UPDATE tenants SET status = 'suspended' WHERE id = $1", [acme.id])
  await sleep(1100)
  const suspended = await withKey(f, acme.host, good.key, { url: '/v1/projects' })
  assertError(t, suspended, 401, 'UNAUTHORIZED')
  t.same(sameAnswer(suspended), sameAnswer(reference), "suspended tenant's key: the same answer")
  await adminQuery(f.ownerUrl, "UPDATE tenants SET status = 'active' WHERE id = $1", [acme.id])
  await sleep(1100)
  t.equal((await withKey(f, acme.host, good.key, { url: '/v1/projects' })).statusCode, 200, 'reactivation restores the key')

  // Suspended through the platform admin API: the host itself is gone at once (contract: 404 TENANT_NOT_FOUND).
  const patched = await f.app.inject({ method: 'PATCH', url: '/v1/admin/tenants/acme', headers: { host: 'localhost', authorization: `Bearer ${ADMIN_TOKEN}` }, payload: { status: 'suspended' } })
  t.equal(patched.statusCode, 200)
  assertError(t, await withKey(f, acme.host, good.key, { url: '/v1/projects' }), 404, 'TENANT_NOT_FOUND')
  assertError(t, await withKey(f, globex.host, good.key, { url: '/v1/projects' }), 401, 'UNAUTHORIZED')
})

t.test('a key on another tenant\'s host is 401', async (t) => {
  const f = await buildApi(t)
  const key = await createKey(f.acme, 'owner', { name: 'acme', scopes: ['projects:read'] })
  assertError(t, await withKey(f, f.globex.host, key.key, { url: '/v1/projects' }), 401, 'UNAUTHORIZED')
  assertError(t, await withKey(f, 'localhost', key.key, { url: '/v1/projects' }), 404, 'NOT_FOUND') // platform host: no such route
})

t.test('scopes: 2xx inside, 403 outside; keys never manage users, keys or the tenant', async (t) => {
  const f = await buildApi(t)
  const { acme } = f
  const project = (await acme.call('owner', { method: 'POST', url: '/v1/projects', payload: { name: 'P' } })).json().id as string
  const member = acme.users.member.user.id
  const routes: Array<[string, InjectOptions]> = [
    ['projects:read', { url: '/v1/projects' }],
    ['projects:read', { url: `/v1/projects/${project}` }],
    ['projects:write', { method: 'POST', url: '/v1/projects', payload: { name: 'by key' } }],
    ['projects:write', { method: 'PATCH', url: `/v1/projects/${project}`, payload: { description: 'by key' } }],
    ['tasks:read', { url: `/v1/projects/${project}/tasks` }],
    ['tasks:write', { method: 'POST', url: `/v1/projects/${project}/tasks`, payload: { title: 'by key' } }],
    ['users:read', { url: '/v1/users' }],
    ['users:read', { url: `/v1/users/${member}` }],
    ['tenant:read', { url: '/v1/tenant' }],
  ]
  const scopes = [...new Set(routes.map(([scope]) => scope))]
  const keys = Object.fromEntries(await Promise.all(scopes.map(async (scope) => [scope, (await createKey(acme, 'owner', { name: scope, scopes: [scope] })).key] as const)))
  for (const [scope, options] of routes) {
    for (const [keyScope, key] of Object.entries(keys)) {
      const res = await withKey(f, acme.host, key, options)
      if (keyScope === scope) t.ok(res.statusCode >= 200 && res.statusCode < 300, `${keyScope} key: ${options.method ?? 'GET'} ${options.url} (${res.statusCode})`)
      else assertError(t, res, 403, 'FORBIDDEN')
    }
  }
  const all = (await createKey(acme, 'owner', { name: 'all', scopes })).key
  const never: InjectOptions[] = [
    { method: 'POST', url: '/v1/users', payload: { email: 'k@acme.example', name: 'K', role: 'admin', password: 'correct horse battery staple' } },
    { method: 'PATCH', url: `/v1/users/${member}`, payload: { role: 'owner' } },
    { method: 'DELETE', url: `/v1/users/${member}` },
    { url: '/v1/api-keys' },
    { method: 'POST', url: '/v1/api-keys', payload: { name: 'more', scopes: ['projects:read'] } },
    { method: 'DELETE', url: `/v1/api-keys/${RANDOM_UUID}` },
    { method: 'PATCH', url: '/v1/tenant', payload: { name: 'Pwned' } },
    { url: '/v1/me' },
    { method: 'POST', url: '/v1/me/password', payload: { currentPassword: 'x', newPassword: 'y' } },
    { method: 'POST', url: '/v1/auth/logout' },
  ]
  for (const options of never) assertError(t, await withKey(f, acme.host, all, options), 403, 'FORBIDDEN')
  t.equal((await adminQuery(f.ownerUrl, "SELECT count(*)::int AS n FROM users WHERE email = 'k@acme.example' OR role = 'owner' AND id = $1", [member])).rows[0]!.n, 0, 'nothing changed')
  t.equal((await adminQuery(f.ownerUrl, 'SELECT name FROM tenants WHERE id = $1', [acme.id])).rows[0]!.name, 'Acme Inc.')
})

t.test('Bearer only: no CSRF needed, and never accepted from a cookie', async (t) => {
  const f = await buildApi(t)
  const { acme } = f
  const key = (await createKey(acme, 'owner', { name: 'w', scopes: ['projects:write'] })).key
  const res = await withKey(f, acme.host, key, { method: 'POST', url: '/v1/projects', payload: { name: 'no csrf' } })
  t.equal(res.statusCode, 201, 'an unsafe method without X-CSRF-Token')
  const accessCookie = Object.keys(acme.users.owner.cookies).find((name) => /access$/.test(name))!
  assertError(t, await f.app.inject({ method: 'GET', url: '/v1/projects', headers: { host: acme.host }, cookies: { [accessCookie]: key } }), 401, 'UNAUTHORIZED')
})

t.test('revocation and expiry: at once here, within 1 s when changed behind its back although rows are kept 30 s while the change feed is read; verification is cached', async (t) => {
  const apiKeyLoads: string[] = []
  const f = await buildApi(t, {}, { onQuery: (e) => { if (/FROM "public"\."api_keys"/.test(e.query)) apiKeyLoads.push(e.query) } })
  t.equal(f.config.API_KEY_CACHE_TTL_MS, 1000, 'key rows are served 1 s by their own TTL')
  t.equal(f.config.CHANGE_FEED_CACHE_TTL_MS, 30_000, 'and 30 s while the change feed is read')
  const { acme } = f
  const created = await createKey(acme, 'owner', { name: 'k', scopes: ['projects:read'] })
  const use = async () => (await withKey(f, acme.host, created.key, { url: '/v1/projects' })).statusCode
  apiKeyLoads.length = 0
  for (let i = 0; i < 25; i++) {
    t.equal(await use(), 200)
    await sleep(100)
  }
  // By the 1 s TTL alone: a lookup about every 0.75–1 s (3 or more); one late read of the feed on a
  // loaded machine may cost one more.
  t.ok(apiKeyLoads.length <= 2, `at most two lookups of the key's row over 2.5 s of use (${apiKeyLoads.length}): served from the cache past its own 1 s TTL while the change feed is read`)

  // Revoked behind this instance's back (no invalidation message: as by another instance while the
  // channel is down, or by an operator): it stops within 1 s through the change feed, not after the TTL
  // (nor at the background reload in the TTL's last quarter: the row was just read).
  const fresh = await createKey(acme, 'owner', { name: 'k2', scopes: ['projects:read'] })
  const useFresh = async () => (await withKey(f, acme.host, fresh.key, { url: '/v1/projects' })).statusCode
  t.equal(await useFresh(), 200)
  await adminQuery(f.ownerUrl, 'UPDATE api_keys SET revoked_at = now() WHERE id = $1', [fresh.id])
  const revoked = await turnsInto(401, useFresh, 3000)
  t.ok(revoked.after >= 0 && revoked.after <= WITHIN_ONE_SECOND_MS, `stopped within 1 s (${revoked.after} ms)`)

  const expiring = await createKey(acme, 'owner', { name: 'soon', scopes: ['projects:read'], expiresAt: new Date(Date.now() + 1500).toISOString() })
  t.equal((await withKey(f, acme.host, expiring.key, { url: '/v1/projects' })).statusCode, 200)
  await sleep(1600)
  assertError(t, await withKey(f, acme.host, expiring.key, { url: '/v1/projects' }), 401, 'UNAUTHORIZED')
})

t.test('a revocation whose transaction commits late still stops the key within 1 s of its commit', async (t) => {
  const f = await buildApi(t)
  const { acme } = f
  const created = await createKey(acme, 'owner', { name: 'k', scopes: ['projects:read'] })
  const use = async () => (await withKey(f, acme.host, created.key, { url: '/v1/projects' })).statusCode
  t.equal(await use(), 200)
  // The change is stamped when made, 0.8 s before it commits: reads of the feed in between do not
  // see it, and the first read after the commit must still look back far enough to find it. (The
  // row was read just before: its background reload, 3 s later, cannot be what stops the key.)
  const owner = new pg.Client({ connectionString: f.ownerUrl })
  await owner.connect()
  t.teardown(() => owner.end())
  await owner.query('BEGIN')
  await owner.query('UPDATE api_keys SET revoked_at = now() WHERE id = $1', [created.id])
  await sleep(800)
  t.equal(await use(), 200, 'not revoked before the commit')
  await owner.query('COMMIT')
  const revoked = await turnsInto(401, use, 3000)
  t.ok(revoked.after >= 0 && revoked.after <= WITHIN_ONE_SECOND_MS, `stopped within 1 s of the commit (${revoked.after} ms)`)
})

t.test('last used: recorded on first use, then at most once a minute', async (t) => {
  const f = await buildApi(t, { API_KEY_CACHE_TTL_MS: '1000', CHANGE_FEED_CACHE_TTL_MS: '0' }) // the row read again after 1 s
  const { acme } = f
  const created = await createKey(acme, 'owner', { name: 'k', scopes: ['projects:read'] })
  const lastUsed = async () => (await adminQuery<{ at: Date | null }>(f.ownerUrl, 'SELECT last_used_at AS at FROM api_keys WHERE id = $1', [created.id])).rows[0]!.at
  t.equal(await lastUsed(), null)
  t.equal((await withKey(f, acme.host, created.key, { url: '/v1/projects' })).statusCode, 200)
  let first: Date | null = null
  for (let i = 0; i < 50 && !first; i++) { await sleep(20); first = await lastUsed() } // written after the answer
  t.ok(first, 'written on first use')
  await sleep(1100) // past the cache entry: the row is read again
  for (let i = 0; i < 5; i++) t.equal((await withKey(f, acme.host, created.key, { url: '/v1/projects' })).statusCode, 200)
  await sleep(200)
  t.same(await lastUsed(), first, 'not rewritten within the minute')
  t.equal((await acme.call('owner', { url: '/v1/api-keys' })).json().data[0].lastUsedAt, first!.toISOString(), 'shown in the list')
})
