// Access tokens: tenant binding, forged and broken tokens, the published keys, key rotation.
import { createHmac, createPublicKey, generateKeyPairSync, randomUUID, sign, verify, type KeyObject } from 'node:crypto'
import t from 'tap'
import { ConfigError } from '../src/config.ts'
import { generatePrivateKeyPem, parsePrivateKeys } from '../src/auth/keys.ts'
import { createUser, signIn } from './auth-helper.ts'
import { adminQuery, build, insertTenant } from './helper.ts'

const PASSWORD = 'correct horse battery staple'
const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')

async function twoTenants (t: Parameters<typeof build>[0], env: Record<string, string> = {}) {
  const built = await build(t, { env })
  const acme = await insertTenant(built.ownerUrl, 'acme')
  const globex = await insertTenant(built.ownerUrl, 'globex')
  await createUser(built.ownerUrl, acme, { email: 'ann@example.com', password: PASSWORD, role: 'owner' })
  await createUser(built.ownerUrl, globex, { email: 'ann@example.com', password: PASSWORD, role: 'owner' })
  return { ...built, acme, globex }
}

// Every method of every kind of tenant route, with tenant A's credentials on tenant B's host. The
// expected answer is the contract's: a token of another tenant is 401 UNAUTHORIZED — as a cookie
// too, and even with a matching CSRF header, so never 403 CSRF_FAILED (which would mean the token
// got past the tenant check). Each probe is first shown to succeed on A's own host, so a 401 on B
// is the tenant check and not a broken request; and B's data is unchanged afterwards.
t.test("a token or cookie of tenant A is refused on tenant B's host, on every method", async (t) => {
  const { app, ownerUrl, globex } = await twoTenants(t)
  const session = await signIn(app, 'acme.localhost', 'ann@example.com', PASSWORD)
  const theirs = await signIn(app, 'globex.localhost', 'ann@example.com', PASSWORD)
  const project = (host: string, token: string) => app.inject({ method: 'POST', url: '/v1/projects', headers: { host, authorization: `Bearer ${token}` }, payload: { name: 'P' } }).then((r) => r.json().id as string)
  const ownProjects = [await project('acme.localhost', session.accessToken), await project('acme.localhost', session.accessToken)]
  const theirProject = await project('globex.localhost', theirs.accessToken)
  const probes = (own: boolean) => [
    { method: 'GET', url: '/v1/me' },
    { method: 'GET', url: '/v1/tenant' },
    { method: 'GET', url: '/v1/projects' },
    { method: 'HEAD', url: '/v1/projects' },
    { method: 'GET', url: `/v1/projects/${own ? ownProjects[0] : theirProject}/tasks` },
    { method: 'POST', url: '/v1/projects', payload: { name: 'planted' } },
    { method: 'PATCH', url: '/v1/me', payload: { name: 'renamed' } },
    { method: 'PATCH', url: '/v1/tenant', payload: { name: 'renamed' } },
    { method: 'DELETE', url: `/v1/projects/${own ? ownProjects[1] : theirProject}` },
    { method: 'POST', url: '/v1/me/password', payload: { currentPassword: PASSWORD, newPassword: 'a brand new passphrase for ann' } },
    { method: 'POST', url: '/v1/auth/logout' },
  ] as const
  const globexBefore = await adminQuery(ownerUrl, 'SELECT (SELECT name FROM tenants WHERE id = $1) AS tenant, (SELECT count(*)::int FROM projects WHERE tenant_id = $1) AS projects, (SELECT array_agg(name || password_hash) FROM users WHERE tenant_id = $1) AS users', [globex])
  for (const how of ['bearer', 'cookie'] as const) {
    const credentials = how === 'bearer'
      ? { headers: { authorization: `Bearer ${session.accessToken}` } }
      : { headers: { 'x-csrf-token': session.csrfToken }, cookies: session.cookies }
    for (const probe of probes(false)) {
      const res = await app.inject({ ...probe, ...credentials, headers: { host: 'globex.localhost', ...credentials.headers } })
      const what = `${probe.method} ${probe.url.replace(/[0-9a-f-]{36}/, ':id')} with A's ${how} on B`
      t.equal(res.statusCode, 401, what)
      if (probe.method !== 'HEAD') {
        t.equal(res.json().error.code, 'UNAUTHORIZED', `${what}: UNAUTHORIZED, not ${res.json().error?.code}`)
        // Refused by the token's tenant claim, before any session of B is looked up for it.
        t.equal(res.json().error.message, 'Invalid or expired token', `${what}: named an invalid token, not an ended session`)
      }
    }
  }
  t.same((await adminQuery(ownerUrl, 'SELECT (SELECT name FROM tenants WHERE id = $1) AS tenant, (SELECT count(*)::int FROM projects WHERE tenant_id = $1) AS projects, (SELECT array_agg(name || password_hash) FROM users WHERE tenant_id = $1) AS users', [globex])).rows, globexBefore.rows, "B's data is unchanged")
  // The same probes succeed on A's own host (the logout last: it ends the session), by Bearer.
  for (const probe of probes(true)) {
    if (probe.url === '/v1/me/password') continue // would sign the cookie session out of the next probes
    const res = await app.inject({ ...probe, headers: { host: 'acme.localhost', authorization: `Bearer ${session.accessToken}` } })
    t.ok(res.statusCode < 300, `${probe.method} ${probe.url.replace(/[0-9a-f-]{36}/, ':id')} succeeds on A's own host (${res.statusCode})`)
  }
  // Refresh tokens: in the body, and as the cookie with its CSRF header.
  const other = await signIn(app, 'acme.localhost', 'ann@example.com', PASSWORD)
  const refresh = await app.inject({ method: 'POST', url: '/v1/auth/refresh', headers: { host: 'globex.localhost' }, payload: { refreshToken: other.refreshToken } })
  t.equal(refresh.statusCode, 401, "A's refresh token on B")
  t.equal(refresh.json().error.code, 'UNAUTHORIZED')
  const byCookie = await app.inject({ method: 'POST', url: '/v1/auth/refresh', headers: { host: 'globex.localhost', 'x-csrf-token': other.csrfToken }, cookies: other.cookies })
  t.equal(byCookie.statusCode, 401, "A's refresh cookie on B: 401, not 403 CSRF_FAILED")
  t.equal(byCookie.json().error.code, 'UNAUTHORIZED')
  t.equal((await app.inject({ method: 'POST', url: '/v1/auth/refresh', headers: { host: 'acme.localhost', 'x-csrf-token': other.csrfToken }, cookies: other.cookies })).statusCode, 200, "and it still works on A's host")
  t.equal((await app.inject({ url: '/v1/me', headers: { host: 'localhost', authorization: `Bearer ${other.accessToken}` } })).statusCode, 404, 'no /v1/me on the platform host')
})

t.test('forged, broken and expired tokens are 401, never 500', async (t) => {
  const { app, acme } = await twoTenants(t)
  const session = await signIn(app, 'acme.localhost', 'ann@example.com', PASSWORD)
  const [header64, payload64, signature64] = session.accessToken.split('.') as [string, string, string]
  const header = JSON.parse(Buffer.from(header64, 'base64url').toString())
  const claims = JSON.parse(Buffer.from(payload64, 'base64url').toString())
  t.equal(header.alg, 'EdDSA')
  t.ok(header.kid)
  t.same(Object.keys(claims).sort(), ['aud', 'exp', 'iat', 'iss', 'jti', 'role', 'sid', 'sub', 'tid'].sort())
  t.equal(claims.tid, acme)

  const publicPem = createPublicKey(app.auth.keys.signing.privateKey).export({ format: 'pem', type: 'spki' }).toString()
  const privateKey = app.auth.keys.signing.privateKey
  const signed = (h: object, c: object, key: KeyObject = privateKey) => {
    const input = `${b64(h)}.${b64(c)}`
    return `${input}.${sign(null, Buffer.from(input), key).toString('base64url')}`
  }
  const now = Math.floor(Date.now() / 1000)
  const hs256Input = `${b64({ alg: 'HS256', typ: 'JWT', kid: header.kid })}.${payload64}`
  const otherKey = generateKeyPairSync('ed25519').privateKey
  const cases: Record<string, string> = {
    'alg none': `${b64({ alg: 'none', typ: 'JWT', kid: header.kid })}.${payload64}.`,
    'alg none, no signature part': `${b64({ alg: 'none', typ: 'JWT' })}.${payload64}`,
    'HS256 signed with the public key': `${hs256Input}.${createHmac('sha256', publicPem).update(hs256Input).digest('base64url')}`,
    'ES256 header on an Ed25519 key': `${b64({ ...header, alg: 'ES256' })}.${payload64}.${signature64}`,
    'tampered payload (role)': `${header64}.${b64({ ...claims, role: 'admin' })}.${signature64}`,
    'tampered payload (tenant)': `${header64}.${b64({ ...claims, tid: randomUUID() })}.${signature64}`,
    'signature of another key': signed(header, claims, otherKey),
    'unknown kid': signed({ ...header, kid: 'nope' }, claims),
    expired: signed(header, { ...claims, iat: now - 1000, exp: now - 10 }),
    'wrong issuer': signed(header, { ...claims, iss: 'someone-else' }),
    'wrong audience': signed(header, { ...claims, aud: 'another-api' }),
    'no exp': signed(header, { ...claims, exp: undefined }),
    'no session id': signed(header, { ...claims, sid: undefined }),
    'no tenant claim': signed(header, { ...claims, tid: undefined }),
    'no jti': signed(header, { ...claims, jti: undefined }),
    'unknown session': signed(header, { ...claims, sid: randomUUID() }),
    'issued in the future': signed(header, { ...claims, iat: now + 3600, exp: now + 7200 }),
    garbage: 'not-a-token',
    'three garbage parts': 'a.b.c',
    'bad JSON': `${b64('{')}.${payload64}.${signature64}`,
    'JSON array header': `${b64([1])}.${payload64}.${signature64}`,
    'too long': 'a'.repeat(5000),
  }
  for (const [what, token] of Object.entries(cases)) {
    const res = await app.inject({ url: '/v1/me', headers: { host: 'acme.localhost', authorization: `Bearer ${token}` } })
    t.equal(res.statusCode, 401, what)
    t.equal(res.json().error.code, 'UNAUTHORIZED', what)
    const asCookie = await app.inject({ url: '/v1/me', headers: { host: 'acme.localhost' }, cookies: { '__Host-access': token } })
    t.equal(asCookie.statusCode, 401, `${what} (cookie)`)
  }
  for (const authorization of ['Basic abc', 'Bearer', 'Bearer a b', session.accessToken]) {
    const res = await app.inject({ url: '/v1/me', headers: { host: 'acme.localhost', authorization } })
    t.equal(res.statusCode, 401, `Authorization: ${authorization.slice(0, 12)}`)
  }
  t.equal((await app.inject({ url: '/v1/me', headers: { host: 'acme.localhost' } })).statusCode, 401, 'no token')
  // A present Authorization header wins: no fallback to a valid cookie.
  const bad = await app.inject({ url: '/v1/me', headers: { host: 'acme.localhost', authorization: 'Bearer nope' }, cookies: session.cookies })
  t.equal(bad.statusCode, 401, 'a bad Bearer header is not rescued by the cookie')
  t.equal((await app.inject({ url: '/v1/me', headers: { host: 'acme.localhost', authorization: `bearer ${session.accessToken}` } })).statusCode, 200, 'the scheme is case-insensitive')
})

t.test('JWKS is served on every host and verifies our tokens', async (t) => {
  const { app } = await twoTenants(t)
  const session = await signIn(app, 'acme.localhost', 'ann@example.com', PASSWORD)
  for (const host of ['localhost', 'acme.localhost', 'unknown.localhost']) {
    const res = await app.inject({ url: '/.well-known/jwks.json', headers: { host } })
    t.equal(res.statusCode, 200, host)
    t.match(res.headers['cache-control'], /max-age/)
  }
  const { keys } = (await app.inject({ url: '/.well-known/jwks.json', headers: { host: 'localhost' } })).json()
  t.equal(keys.length, 1)
  for (const key of keys) t.notOk('d' in key, 'no private part')
  const [h, p, s] = session.accessToken.split('.') as [string, string, string]
  const kid = JSON.parse(Buffer.from(h, 'base64url').toString()).kid
  const jwk = keys.find((k: { kid: string }) => k.kid === kid)
  t.same({ kty: jwk.kty, crv: jwk.crv, alg: jwk.alg, use: jwk.use }, { kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig' })
  const publicKey = createPublicKey({ key: jwk, format: 'jwk' })
  t.ok(verify(null, Buffer.from(`${h}.${p}`), publicKey, Buffer.from(s, 'base64url')), 'the published key verifies the token')
})

t.test('keys rotate without signing anyone out; only the newest signs', async (t) => {
  const oldKey = generatePrivateKeyPem()
  const newKey = generatePrivateKeyPem()
  const before = await twoTenants(t, { JWT_PRIVATE_KEYS: oldKey })
  const session = await signIn(before.app, 'acme.localhost', 'ann@example.com', PASSWORD)
  // A second instance on the same database, configured with both keys, the new one last; the
  // bundle also arrives with literal \n, as some environments pass it.
  const after = await build(t, { url: before.ownerUrl, env: { JWT_PRIVATE_KEYS: `${oldKey}${newKey}`.replaceAll('\n', '\\n') } })
  const me = await after.app.inject({ url: '/v1/me', headers: { host: 'acme.localhost', authorization: `Bearer ${session.accessToken}` } })
  t.equal(me.statusCode, 200, 'a token signed with the old key still verifies')
  const { keys } = (await after.app.inject({ url: '/.well-known/jwks.json', headers: { host: 'localhost' } })).json()
  t.equal(keys.length, 2, 'both keys are published')
  const fresh = await signIn(after.app, 'acme.localhost', 'ann@example.com', PASSWORD)
  const kid = (token: string) => JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()).kid
  t.not(kid(fresh.accessToken), kid(session.accessToken), 'the new key signs')
  t.equal(kid(fresh.accessToken), keys[1].kid)
  t.equal((await before.app.inject({ url: '/v1/me', headers: { host: 'acme.localhost', authorization: `Bearer ${fresh.accessToken}` } })).statusCode, 401, 'an instance without the new key refuses it')
  // Hence the README's rotation across instances: first the new key *before* the current one.
  const prepared = await build(t, { url: before.ownerUrl, env: { JWT_PRIVATE_KEYS: `${newKey}${oldKey}` } })
  const meOn = (app: typeof before.app, token: string) => app.inject({ url: '/v1/me', headers: { host: 'acme.localhost', authorization: `Bearer ${token}` } }).then((r) => r.statusCode)
  const during = await signIn(prepared.app, 'acme.localhost', 'ann@example.com', PASSWORD)
  t.equal(kid(during.accessToken), kid(session.accessToken), 'placed first, the new key does not sign yet')
  t.equal(await meOn(before.app, during.accessToken), 200, 'so an instance not yet deployed accepts its tokens')
  t.equal(await meOn(prepared.app, fresh.accessToken), 200, 'and it accepts what the new key signs, once an instance moves it last')
})

t.test('ES256 keys work too', async (t) => {
  const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
  const { app } = await twoTenants(t, { JWT_PRIVATE_KEYS: pem })
  const session = await signIn(app, 'acme.localhost', 'ann@example.com', PASSWORD)
  t.equal(JSON.parse(Buffer.from(session.accessToken.split('.')[0]!, 'base64url').toString()).alg, 'ES256')
  t.equal((await app.inject({ url: '/v1/me', headers: { host: 'acme.localhost', authorization: `Bearer ${session.accessToken}` } })).statusCode, 200)
  const { keys } = (await app.inject({ url: '/.well-known/jwks.json', headers: { host: 'localhost' } })).json()
  const [h, p, s] = session.accessToken.split('.') as [string, string, string]
  t.ok(verify('sha256', Buffer.from(`${h}.${p}`), { key: createPublicKey({ key: keys[0], format: 'jwk' }), dsaEncoding: 'ieee-p1363' }, Buffer.from(s, 'base64url')))
})

// Review 56: a damaged key stopped the start with an OpenSSL error that did not name the variable.
t.test('a damaged key in JWT_PRIVATE_KEYS stops the start naming the variable and the key, not its content', async (t) => {
  const good = generatePrivateKeyPem()
  const damaged = '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIXXXSECRETXXX\n-----END PRIVATE KEY-----\n'
  const error = (() => { try { parsePrivateKeys(good + damaged); return null } catch (caught) { return caught as Error } })()
  t.ok(error instanceof ConfigError, 'a configuration error: its message alone is printed, no stack')
  t.match(error?.message, /JWT_PRIVATE_KEYS: key 2 of 2 is not a private key that can be read/)
  t.notMatch(error?.message, /SECRET|BEGIN/, 'the key is not echoed')
  t.equal(parsePrivateKeys(good).length, 1, 'the good key alone is read')
})

t.test('cached verifications still end at exp', async (t) => {
  const { app } = await twoTenants(t)
  const session = await signIn(app, 'acme.localhost', 'ann@example.com', PASSWORD)
  const { sub, tid, sid, role } = JSON.parse(Buffer.from(session.accessToken.split('.')[1]!, 'base64url').toString())
  const token = app.jwt.sign({ sub, tid, sid, role, jti: randomUUID() }, { expiresIn: 3 })
  const { exp } = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString())
  // The key ring is consulted on every cache miss, and only then.
  const keys = app.auth.keys
  const find = keys.find.bind(keys)
  let lookups = 0
  keys.find = (kid) => { lookups++; return find(kid) }
  const me = () => app.inject({ url: '/v1/me', headers: { host: 'acme.localhost', authorization: `Bearer ${token}` } })
  t.equal((await me()).statusCode, 200)
  t.equal((await me()).statusCode, 200)
  t.equal(lookups, 1, 'the second verification came from the cache')
  await new Promise((resolve) => setTimeout(resolve, exp * 1000 + 50 - Date.now()))
  const expired = await me()
  t.equal(expired.statusCode, 401, 'refused once expired, although cached')
  t.equal(expired.json().error.code, 'UNAUTHORIZED')
  t.equal(lookups, 2, 'the cache entry ended at exp')
})
