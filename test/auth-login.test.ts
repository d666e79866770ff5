// Login: tenant-scoped credentials, indistinguishable failures, password limits, rate limits,
// cookies, redaction, and bcrypt off the main thread.
import { Writable } from 'node:stream'
import { threadId } from 'node:worker_threads'
import t from 'tap'
import { buildApp } from '../src/app.ts'
import { PasswordHasher } from '../src/auth/passwords.ts'
import { createDatabase } from '../src/db/database.ts'
import { logRedactPaths } from '../src/log.ts'
import { createUser, signIn } from './auth-helper.ts'
import { build, createTestDatabase, insertTenant, testConfig } from './helper.ts'

const PASSWORD_A = 'correct horse battery staple A'
const PASSWORD_B = 'correct horse battery staple B'

const login = (app: Awaited<ReturnType<typeof build>>['app'], host: string, email: string, password: string) =>
  app.inject({ method: 'POST', url: '/v1/auth/login', headers: { host }, payload: { email, password } })

t.test('the same email in two tenants, each with its own password', async (t) => {
  const { app, ownerUrl } = await build(t)
  const acme = await insertTenant(ownerUrl, 'acme')
  const globex = await insertTenant(ownerUrl, 'globex')
  await createUser(ownerUrl, acme, { email: 'ann@example.com', password: PASSWORD_A, role: 'owner' })
  await createUser(ownerUrl, globex, { email: 'ann@example.com', password: PASSWORD_B, role: 'member' })

  const a = await login(app, 'acme.localhost', 'Ann@Example.COM', PASSWORD_A)
  t.equal(a.statusCode, 200, 'email matched case-insensitively')
  const body = a.json()
  t.equal(body.tokenType, 'Bearer')
  t.equal(body.expiresIn, 900)
  t.equal(body.user.email, 'ann@example.com')
  t.equal(body.user.role, 'owner')
  t.notOk('passwordHash' in body.user)
  t.equal((await login(app, 'globex.localhost', 'ann@example.com', PASSWORD_B)).json().user.role, 'member')
  t.equal((await login(app, 'acme.localhost', 'ann@example.com', PASSWORD_B)).statusCode, 401, "globex's password on acme")
  t.equal((await login(app, 'globex.localhost', 'ann@example.com', PASSWORD_A)).statusCode, 401, "acme's password on globex")
})

t.test('wrong password, unknown email and inactive user get the same answer', async (t) => {
  const { app, ownerUrl } = await build(t)
  const acme = await insertTenant(ownerUrl, 'acme')
  await createUser(ownerUrl, acme, { email: 'ann@example.com', password: PASSWORD_A, role: 'owner' })
  await createUser(ownerUrl, acme, { email: 'gone@example.com', password: PASSWORD_A, role: 'member', active: false })
  const answers = [
    await login(app, 'acme.localhost', 'ann@example.com', PASSWORD_B),
    await login(app, 'acme.localhost', 'nobody@example.com', PASSWORD_A),
    await login(app, 'acme.localhost', 'gone@example.com', PASSWORD_A),
  ]
  for (const res of answers) {
    t.equal(res.statusCode, 401)
    t.equal(res.json().error.code, 'INVALID_CREDENTIALS')
    t.equal(res.json().error.message, 'Invalid email or password')
    t.equal(res.headers['set-cookie'], undefined, 'no cookie')
  }
})

t.test('passwords over 72 bytes are refused, never truncated', async (t) => {
  const { app, ownerUrl } = await build(t)
  const acme = await insertTenant(ownerUrl, 'acme')
  const base = 'é'.repeat(36) // 72 bytes
  await createUser(ownerUrl, acme, { email: 'ann@example.com', password: base, role: 'owner' })
  const long = base + 'é' // 37 characters, 74 bytes: bcrypt would have compared only the first 72
  const refused = await login(app, 'acme.localhost', 'ann@example.com', long)
  t.equal(refused.statusCode, 400)
  t.equal(refused.json().error.code, 'VALIDATION_FAILED')
  t.equal((await login(app, 'acme.localhost', 'ann@example.com', base)).statusCode, 200, '72 bytes accepted')

  const session = await signIn(app, 'acme.localhost', 'ann@example.com', base)
  const change = (newPassword: string) => app.inject({
    method: 'POST', url: '/v1/me/password', headers: { host: 'acme.localhost', authorization: `Bearer ${session.accessToken}` },
    payload: { currentPassword: base, newPassword },
  })
  const tooLong = await change('a' + 'é'.repeat(36)) // 73 bytes
  t.equal(tooLong.statusCode, 400)
  t.equal(tooLong.json().error.code, 'VALIDATION_FAILED')
  t.match(tooLong.json().error.message, /newPassword.*72 bytes/)
  const tooShort = await change('short')
  t.equal(tooShort.statusCode, 400)
  t.match(tooShort.json().error.message, /at least 15 characters/)
})

t.test('failed logins per tenant+email are limited: 429 with Retry-After', async (t) => {
  const { app, ownerUrl } = await build(t, { env: { LOGIN_FAILURES_MAX: '3' } })
  const acme = await insertTenant(ownerUrl, 'acme')
  const globex = await insertTenant(ownerUrl, 'globex')
  await createUser(ownerUrl, acme, { email: 'ann@example.com', password: PASSWORD_A, role: 'owner' })
  await createUser(ownerUrl, globex, { email: 'ann@example.com', password: PASSWORD_A, role: 'owner' })
  for (let i = 0; i < 3; i++) t.equal((await login(app, 'acme.localhost', 'ANN@example.com', 'wrong password here!')).statusCode, 401)
  const limited = await login(app, 'acme.localhost', 'ann@example.com', PASSWORD_A)
  t.equal(limited.statusCode, 429, 'even the right password waits')
  t.equal(limited.json().error.code, 'RATE_LIMITED')
  const retryAfter = Number(limited.headers['retry-after'])
  t.ok(retryAfter > 800 && retryAfter <= 900, `Retry-After ${retryAfter}s`)
  t.equal((await login(app, 'globex.localhost', 'ann@example.com', PASSWORD_A)).statusCode, 200, 'the same email in another tenant is not locked')
})

t.test('login attempts per client address are limited', async (t) => {
  const { app, ownerUrl } = await build(t, { env: { LOGIN_ATTEMPTS_PER_IP_PER_MIN: '4' } })
  const acme = await insertTenant(ownerUrl, 'acme')
  await createUser(ownerUrl, acme, { email: 'ann@example.com', password: PASSWORD_A, role: 'owner' })
  for (let i = 0; i < 4; i++) t.equal((await login(app, 'acme.localhost', `user${i}@example.com`, PASSWORD_A)).statusCode, 401)
  const limited = await login(app, 'acme.localhost', 'ann@example.com', PASSWORD_A)
  t.equal(limited.statusCode, 429)
  t.equal(limited.json().error.code, 'RATE_LIMITED')
  t.ok(Number(limited.headers['retry-after']) >= 1, 'Retry-After')
  const other = await app.inject({ method: 'POST', url: '/v1/auth/login', remoteAddress: '10.0.0.9', headers: { host: 'acme.localhost' }, payload: { email: 'ann@example.com', password: PASSWORD_A } })
  t.equal(other.statusCode, 200, 'another address is not limited')
})

function cookieMap(setCookie: string | string[] | undefined): Map<string, string> {
  const list = Array.isArray(setCookie) ? setCookie : setCookie ? [setCookie] : []
  return new Map(list.map((c) => [c.split('=')[0]!, c]))
}

t.test('cookie attributes outside development: __Host-/__Secure- names, Secure, HttpOnly, SameSite, Path, no Domain', async (t) => {
  const { app, ownerUrl } = await build(t)
  const acme = await insertTenant(ownerUrl, 'acme')
  await createUser(ownerUrl, acme, { email: 'ann@example.com', password: PASSWORD_A, role: 'owner' })
  const res = await login(app, 'acme.localhost', 'ann@example.com', PASSWORD_A)
  const cookies = cookieMap(res.headers['set-cookie'])
  t.same([...cookies.keys()].sort(), ['__Host-access', '__Host-csrf', '__Secure-refresh'])
  const access = cookies.get('__Host-access')!
  t.match(access, /; HttpOnly/)
  t.match(access, /; SameSite=Lax/)
  t.match(access, /; Path=\/(;|$)/)
  t.match(access, /; Secure/)
  t.match(access, /; Max-Age=900/)
  const refresh = cookies.get('__Secure-refresh')!
  t.match(refresh, /; HttpOnly/)
  t.match(refresh, /; Path=\/v1\/auth(;|$)/)
  t.match(refresh, /; Secure/)
  const csrf = cookies.get('__Host-csrf')!
  t.notMatch(csrf, /HttpOnly/, 'readable by scripts')
  t.match(csrf, /; Path=\/(;|$)/)
  t.match(csrf, /; Secure/)
  for (const cookie of cookies.values()) t.notMatch(cookie, /domain=/i, 'host-only')
  t.equal(access.split(';')[0], `__Host-access=${res.json().accessToken}`)

  // Logout expires each cookie with the Path it was set with.
  const session = await signIn(app, 'acme.localhost', 'ann@example.com', PASSWORD_A)
  const out = await app.inject({ method: 'POST', url: '/v1/auth/logout', headers: { host: 'acme.localhost', 'x-csrf-token': session.csrfToken }, cookies: session.cookies })
  t.equal(out.statusCode, 204)
  const cleared = cookieMap(out.headers['set-cookie'])
  t.match(cleared.get('__Host-access'), /^__Host-access=;.*Path=\/(;|$)/)
  t.match(cleared.get('__Secure-refresh'), /^__Secure-refresh=;.*Path=\/v1\/auth(;|$)/)
  t.match(cleared.get('__Host-csrf'), /^__Host-csrf=;.*Path=\/(;|$)/)
  for (const cookie of cleared.values()) t.match(cookie, /Expires=Thu, 01 Jan 1970|Max-Age=0/)
})

t.test('cookie attributes in development: plain names, no Secure', async (t) => {
  const { app, ownerUrl } = await build(t, { env: { NODE_ENV: 'development' } })
  const acme = await insertTenant(ownerUrl, 'acme')
  await createUser(ownerUrl, acme, { email: 'ann@example.com', password: PASSWORD_A, role: 'owner' })
  const cookies = cookieMap((await login(app, 'acme.localhost', 'ann@example.com', PASSWORD_A)).headers['set-cookie'])
  t.same([...cookies.keys()].sort(), ['access', 'csrf', 'refresh'])
  for (const cookie of cookies.values()) {
    t.notMatch(cookie, /Secure/)
    t.notMatch(cookie, /domain=/i)
  }
  t.match(cookies.get('access'), /HttpOnly.*SameSite=Lax|SameSite=Lax.*HttpOnly/)
})

t.test('logs never contain passwords, tokens, cookies or hashes', async (t) => {
  const url = await createTestDatabase(t)
  const config = testConfig(url, { LOG_LEVEL: 'info' })
  let logged = ''
  const stream = new Writable({ write(chunk, _encoding, done) { logged += chunk.toString(); done() } })
  const app = await buildApp({ config, database: createDatabase(config, url), logger: { level: 'trace', stream, redact: { paths: logRedactPaths, censor: '[redacted]' } } })
  t.teardown(() => app.close())
  const acme = await insertTenant(url, 'acme')
  await createUser(url, acme, { email: 'ann@example.com', password: PASSWORD_A, role: 'owner' })
  const { rows } = await (await import('./helper.ts')).adminQuery<{ password_hash: string }>(url, 'SELECT password_hash FROM users')
  const session = await signIn(app, 'acme.localhost', 'ann@example.com', PASSWORD_A)
  await login(app, 'acme.localhost', 'ann@example.com', PASSWORD_B) // a refused one is logged too
  const headers = { host: 'acme.localhost', 'x-csrf-token': session.csrfToken, authorization: `Bearer ${session.accessToken}` }
  const refreshed = await app.inject({ method: 'POST', url: '/v1/auth/refresh', headers, payload: { refreshToken: session.refreshToken } })
  t.equal(refreshed.statusCode, 200)
  await app.inject({ method: 'POST', url: '/v1/me/password', headers: { host: 'acme.localhost', 'x-csrf-token': session.csrfToken }, cookies: refreshed.cookies.reduce((all, c) => ({ ...all, [c.name]: c.value }), {}), payload: { currentPassword: PASSWORD_A, newPassword: PASSWORD_B } })
  t.ok(logged.includes('"statusCode":200'), 'requests were logged')
  const secrets = [PASSWORD_A, PASSWORD_B, session.accessToken, session.refreshToken, session.csrfToken, refreshed.json().accessToken, refreshed.json().refreshToken, rows[0]!.password_hash, session.refreshToken.split('.')[1]!]
  for (const secret of secrets) t.notOk(logged.includes(secret), `not logged: ${secret.slice(0, 8)}…`)
})

t.test('bcrypt runs off the main thread: the event loop keeps ticking during a cost-12 hash', async (t) => {
  const hasher = new PasswordHasher({ cost: 12, workers: 2, minLength: 15 })
  t.teardown(() => hasher.close())
  t.not(await hasher.workerThreadId(), threadId, 'a worker thread, not the main one')
  let ticks = 0
  const timer = setInterval(() => ticks++, 5)
  const started = Date.now()
  const hash = await hasher.hash('a long enough password!')
  const elapsed = Date.now() - started
  clearInterval(timer)
  t.match(hash, /^\$2b\$12\$/)
  // A main-thread hash would have blocked the timer for the whole duration (0-1 ticks).
  t.ok(ticks >= Math.min(5, Math.floor(elapsed / 20)), `${ticks} ticks during ${elapsed} ms`)
  t.ok(await hasher.verify('a long enough password!', hash))
  t.notOk(await hasher.verify('a long enough password?', hash))
  t.notOk(await hasher.verifyDummy('anything'))
})
