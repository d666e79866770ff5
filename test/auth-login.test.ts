// Login: tenant-scoped credentials, indistinguishable failures, password limits, rate limits,
// cookies, redaction, and bcrypt off the main thread.
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import { Writable } from 'node:stream'
import { threadId } from 'node:worker_threads'
import t from 'tap'
import { deviceCookies } from '../src/auth/device-cookies.ts'
import { PasswordHasher } from '../src/auth/passwords.ts'
import { createUser, signIn } from './auth-helper.ts'
import { adminQuery, build, holdLock, insertTenant } from './helper.ts'

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

// The contract: the same 401 "with the same timing (a dummy hash is checked for unknown users)".
// Timing is not measured (noisy on a loaded machine); the work is counted instead: every failed
// login, whatever the reason, runs exactly one bcrypt comparison against a hash of BCRYPT_COST.
t.test('wrong password, unknown email and inactive user: the same answer after the same work', async (t) => {
  const { app, ownerUrl } = await build(t, { env: { BCRYPT_COST: '5' } })
  const acme = await insertTenant(ownerUrl, 'acme')
  await createUser(ownerUrl, acme, { email: 'ann@example.com', password: PASSWORD_A, role: 'owner', cost: 5 })
  await createUser(ownerUrl, acme, { email: 'gone@example.com', password: PASSWORD_A, role: 'member', active: false, cost: 5 })
  const cases: [string, string, string][] = [
    ['right password (the reference)', 'ann@example.com', PASSWORD_A],
    ['wrong password', 'ann@example.com', PASSWORD_B],
    ['unknown email', 'nobody@example.com', PASSWORD_A],
    ['inactive user, right password', 'gone@example.com', PASSWORD_A],
  ]
  for (const [what, email, password] of cases) {
    const before = { ...app.passwords.comparisons }
    const res = await login(app, 'acme.localhost', email, password)
    const done = Object.fromEntries(Object.entries(app.passwords.comparisons).map(([cost, n]) => [cost, n - (before[Number(cost)] ?? 0)]).filter(([, n]) => n !== 0))
    t.same(done, { 5: 1 }, `${what}: one bcrypt comparison at cost 5 (BCRYPT_COST)`)
    if (what.startsWith('right')) {
      t.equal(res.statusCode, 200, what)
      continue
    }
    t.equal(res.statusCode, 401, what)
    t.equal(res.json().error.code, 'INVALID_CREDENTIALS', what)
    t.equal(res.json().error.message, 'Invalid email or password', what)
    t.equal(res.headers['set-cookie'], undefined, `${what}: no cookie`)
  }
})

// Review 59 L0: the password was checked against a row read before bcrypt ran; a deletion that
// commits before the session is stored made that insert a foreign-key refusal, answered 404 — which
// told the caller the password had been right. The user is gone: the login's one failure answer.
t.test('a right password whose user is deleted during the login gets the failure answer, not 404', async (t) => {
  const { app, ownerUrl } = await build(t)
  const acme = await insertTenant(ownerUrl, 'acme')
  const ann = await createUser(ownerUrl, acme, { email: 'ann@example.com', password: PASSWORD_A, role: 'owner' })
  const deletion = await holdLock(t, ownerUrl, 'DELETE FROM users WHERE id = $1', [ann.id], acme)
  const signingIn = login(app, 'acme.localhost', 'ann@example.com', PASSWORD_A)
  t.equal(await deletion.untilWaiting(1, { like: '%sessions%' }), 1, 'the login\'s session insert waits on the deletion')
  await deletion.release()
  const res = await signingIn
  t.equal(res.statusCode, 401, 'the same status as a wrong password')
  t.equal(res.json().error.code, 'INVALID_CREDENTIALS')
  t.equal(res.headers['set-cookie'], undefined, 'no cookie')
  const { rows } = await adminQuery(ownerUrl, 'SELECT count(*)::int AS n FROM sessions WHERE tenant_id = $1', [acme])
  t.same(rows, [{ n: 0 }], 'no session')
})

// The contract: "at most 72 bytes of UTF-8 — a longer one is a 400, never silently truncated" —
// for every password input: login, currentPassword and newPassword, a user created by an admin,
// and signup's owner. Each over-long value below starts with a password that is right (72 bytes),
// so a truncating check would accept it.
t.test('passwords over 72 bytes are refused on every input, never truncated', async (t) => {
  const { app, ownerUrl } = await build(t)
  const acme = await insertTenant(ownerUrl, 'acme')
  const base = 'é'.repeat(36) // 72 bytes
  const long = base + 'é' // 37 characters, 74 bytes: bcrypt would have compared only the first 72
  await createUser(ownerUrl, acme, { email: 'ann@example.com', password: base, role: 'owner' })
  const tooLong = (res: Awaited<ReturnType<typeof login>>, field: string) => {
    t.equal(res.statusCode, 400, `${field} over 72 bytes: 400 (${res.body.slice(0, 120)})`)
    t.equal(res.json().error.code, 'VALIDATION_FAILED', field)
    t.match(res.json().error.message, new RegExp(`${field}.*72 bytes`), `the message names ${field}`)
  }
  tooLong(await login(app, 'acme.localhost', 'ann@example.com', long), 'password')
  t.equal((await login(app, 'acme.localhost', 'ann@example.com', base)).statusCode, 200, '72 bytes accepted')

  const session = await signIn(app, 'acme.localhost', 'ann@example.com', base)
  const change = (currentPassword: string, newPassword: string) => app.inject({
    method: 'POST',
    url: '/v1/me/password',
    headers: { host: 'acme.localhost', authorization: `Bearer ${session.accessToken}` },
    payload: { currentPassword, newPassword },
  })
  tooLong(await change(base, 'a' + 'é'.repeat(36)), 'newPassword') // 73 bytes
  tooLong(await change(long, 'a brand new passphrase for ann'), 'currentPassword')
  const tooShort = await change(base, 'short')
  t.equal(tooShort.statusCode, 400)
  t.match(tooShort.json().error.message, /at least 15 characters/)
  t.equal((await login(app, 'acme.localhost', 'ann@example.com', 'a brand new passphrase for ann')).statusCode, 401, 'the password did not change')
  // Below HTTP too: the hasher never matches a password over 72 bytes (bcrypt would read 72).
  const { rows } = await adminQuery<{ password_hash: string }>(ownerUrl, "SELECT password_hash FROM users WHERE email = 'ann@example.com'")
  t.ok(await app.passwords.verify(base, rows[0]!.password_hash), 'the 72-byte password matches its hash')
  t.notOk(await app.passwords.verify(long, rows[0]!.password_hash), 'the same password plus a character does not')

  const created = await app.inject({ method: 'POST', url: '/v1/users', headers: { host: 'acme.localhost', authorization: `Bearer ${session.accessToken}` }, payload: { email: 'bob@example.com', name: 'Bob', role: 'member', password: long } })
  tooLong(created, 'password')
  const signup = await app.inject({ method: 'POST', url: '/v1/tenants', headers: { host: 'localhost' }, payload: { slug: 'initech', name: 'Initech', owner: { email: 'ann@example.com', name: 'Ann', password: long } } })
  tooLong(signup, 'owner/password')
  t.same((await adminQuery(ownerUrl, "SELECT count(*)::int AS n FROM tenants WHERE slug = 'initech'")).rows, [{ n: 0 }], 'no tenant was created')
})

// NIST SP 800-63B-4 §3.1.1.2: Unicode in passwords is compared after normalization (NFKC here), since
// the same text reaches the server as different code points from different keyboards and platforms.
t.test('passwords are compared in Unicode NFKC: the same text typed as other code points signs in; older hashes still match as typed', async (t) => {
  const { app, ownerUrl } = await build(t, { env: { BCRYPT_COST: '5' } })
  const acme = await insertTenant(ownerUrl, 'acme')
  const composed = 'Crème brûlée à la carte, s’il vous plaît'.normalize('NFC')
  const decomposed = composed.normalize('NFD')
  t.not(composed, decomposed, 'the two forms differ in code points')
  const signup = await app.inject({ method: 'POST', url: '/v1/tenants', headers: { host: 'localhost' }, payload: { slug: 'initech', name: 'Initech', owner: { email: 'ann@example.com', name: 'Ann', password: decomposed } } })
  t.equal(signup.statusCode, 201, `signup with the decomposed form (${signup.body.slice(0, 120)})`)
  t.equal((await login(app, 'initech.localhost', 'ann@example.com', composed)).statusCode, 200, 'the composed form signs in')
  t.equal((await login(app, 'initech.localhost', 'ann@example.com', decomposed)).statusCode, 200, 'the decomposed form too')
  t.equal((await login(app, 'initech.localhost', 'ann@example.com', 'Creme brulee a la carte, s’il vous plait')).statusCode, 401, 'without its accents it is another password')
  // NFKC also folds compatibility characters: full-width letters are their ASCII letters.
  const fullWidth = await app.inject({ method: 'POST', url: '/v1/tenants', headers: { host: 'localhost' }, payload: { slug: 'globex', name: 'Globex', owner: { email: 'bob@example.com', name: 'Bob', password: 'ｃｏｒｒｅｃｔ horse battery staple' } } })
  t.equal(fullWidth.statusCode, 201)
  t.equal((await login(app, 'globex.localhost', 'bob@example.com', 'correct horse battery staple')).statusCode, 200, 'full-width letters typed as ASCII sign in')

  // A hash made before passwords were normalized holds the form that was typed (here decomposed).
  await createUser(ownerUrl, acme, { email: 'old@example.com', password: decomposed, role: 'member', cost: 5 })
  t.equal((await login(app, 'acme.localhost', 'old@example.com', decomposed)).statusCode, 200, 'an older hash still matches the form typed')
  // The same work for a wrong password and an unknown email: one comparison per form a hash may
  // hold (normalized, and as typed when it differs), two here.
  for (const [what, email] of [['known user, wrong password', 'old@example.com'], ['unknown email', 'nobody@example.com']] as const) {
    const before = app.passwords.comparisons[5] ?? 0
    const res = await login(app, 'acme.localhost', email, `${decomposed} and more`)
    t.equal(res.statusCode, 401, what)
    t.equal((app.passwords.comparisons[5] ?? 0) - before, 2, `${what}: two bcrypt comparisons at cost 5`)
  }
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

// Review 64: anyone who knows an email can spend its failed logins, and the lockout refused the
// owner's right password too. A browser that signed in before holds a device cookie bound to the
// account (OWASP "Slow Down Online Guessing Attacks with Device Cookies"): its logins are counted
// against that cookie, not the email, so strangers' failures do not lock it out — and its own
// failures are limited all the same.
t.test('a device cookie of the account is not locked out by strangers, and has a budget of its own', async (t) => {
  const { app, ownerUrl } = await build(t, { env: { LOGIN_FAILURES_MAX: '3' } })
  const acme = await insertTenant(ownerUrl, 'acme')
  const globex = await insertTenant(ownerUrl, 'globex')
  for (const email of ['ann@example.com', 'bob@example.com']) await createUser(ownerUrl, acme, { email, password: PASSWORD_A, role: 'member' })
  await createUser(ownerUrl, globex, { email: 'ann@example.com', password: PASSWORD_A, role: 'member' })
  const deviceOf = async (host: string, email: string) => (await signIn(app, host, email, PASSWORD_A)).cookies['__Host-device']!
  const annDevice = await deviceOf('acme.localhost', 'ann@example.com')
  const bobDevice = await deviceOf('acme.localhost', 'bob@example.com')
  const globexAnnDevice = await deviceOf('globex.localhost', 'ann@example.com')
  const from = (device: string | null, email: string, password: string) => app.inject({
    method: 'POST', url: '/v1/auth/login', headers: { host: 'acme.localhost' }, payload: { email, password }, cookies: device ? { '__Host-device': device } : {},
  })
  for (let i = 0; i < 3; i++) t.equal((await from(null, 'ann@example.com', `a stranger's guess ${i}`)).statusCode, 401)
  t.equal((await from(null, 'ann@example.com', PASSWORD_A)).statusCode, 429, 'locked for every client without the cookie')
  t.equal((await from(annDevice, 'ANN@example.com', PASSWORD_A)).statusCode, 200, 'ann\'s browser signs in')
  t.equal((await from(bobDevice, 'ann@example.com', PASSWORD_A)).statusCode, 429, 'another account\'s cookie does not open it')
  t.equal((await from(globexAnnDevice, 'ann@example.com', PASSWORD_A)).statusCode, 429, 'nor the same email\'s cookie of another tenant')
  const [nonce, issued, tag] = annDevice.split('.') as [string, string, string]
  t.equal((await from(`${nonce}.${issued}.${tag.startsWith('A') ? 'B' : 'A'}${tag.slice(1)}`, 'ann@example.com', PASSWORD_A)).statusCode, 429, 'nor a tampered one')
  t.equal((await from(`${nonce}.${Number(issued) + 1}.${tag}`, 'ann@example.com', PASSWORD_A)).statusCode, 429, 'nor one with its issue time moved')
  // Review 65: a cookie outlived a password change, so whoever once knew the password kept a budget
  // of guesses at the next one. The change (from ann's browser: its own budget, though the email
  // is locked) ends every earlier cookie and sets a new one.
  const session = (await from(annDevice, 'ann@example.com', PASSWORD_A)).json()
  const changed = await app.inject({
    method: 'POST', url: '/v1/me/password', headers: { host: 'acme.localhost', authorization: `Bearer ${session.accessToken}` }, cookies: { '__Host-device': annDevice }, payload: { currentPassword: PASSWORD_A, newPassword: PASSWORD_B },
  })
  t.equal(changed.statusCode, 204, 'ann changes her password while strangers keep her email locked')
  for (let i = 0; i < 3; i++) t.equal((await from(null, 'ann@example.com', `a stranger's guess at the new one ${i}`)).statusCode, 401, 'the change cleared the email\'s failures; strangers spend them again')
  t.equal((await from(annDevice, 'ann@example.com', PASSWORD_B)).statusCode, 429, 'the cookie of the old password counts for nothing')
  const annNewDevice = changed.cookies.find((cookie) => cookie.name === '__Host-device')!.value
  const signedInAgain = await from(annNewDevice, 'ann@example.com', PASSWORD_B)
  t.equal(signedInAgain.statusCode, 200, 'the cookie the change set signs ann in')
  const typo = await app.inject({
    method: 'POST', url: '/v1/me/password', headers: { host: 'acme.localhost', authorization: `Bearer ${signedInAgain.json().accessToken}` }, cookies: { '__Host-device': annNewDevice }, payload: { currentPassword: 'not ann\'s password', newPassword: PASSWORD_A },
  })
  t.equal(typo.statusCode, 403, 'a wrong current password, from ann\'s browser')
  for (let i = 0; i < 3; i++) t.equal((await from(bobDevice, 'bob@example.com', `bob's typo ${i}`)).statusCode, 401)
  t.equal((await from(bobDevice, 'bob@example.com', PASSWORD_A)).statusCode, 429, 'the device\'s own failures lock the device')
  t.equal((await from(null, 'bob@example.com', PASSWORD_A)).statusCode, 200, 'and not the email')
  const { rows } = await adminQuery<{ email: string, route: string | null, trusted: boolean }>(ownerUrl, "SELECT data->>'email' AS email, data->>'route' AS route, data ? 'trustedDevice' AS trusted FROM audit_events WHERE action = 'auth.login_failed' ORDER BY seq")
  const failed = (trusted: boolean) => rows.filter((row) => row.trusted === trusted).map((row) => `${row.email}${row.route ? ` (${row.route})` : ''}`)
  t.same(failed(true), ['ann@example.com (password_change)', ...Array(3).fill('bob@example.com')], 'the log tells failures counted against a trusted browser (ann\'s and bob\'s typos)')
  t.same(failed(false), Array(6).fill('ann@example.com'), 'from those counted against the email (the strangers\')')
})

t.test('a device cookie expires on the server, whatever the browser keeps', async (t) => {
  const cookies = deviceCookies({ isDevelopment: false, LOGIN_DEVICE_COOKIE_TTL_S: 3600 }, 'x'.repeat(32))
  const account = { id: 'a1c5d1d0-0000-4000-8000-000000000001', passwordHash: '$2b$12$hash' }
  let value = ''
  cookies.issue({ setCookie: (_name: string, v: string) => { value = v } } as never, 'tenant', account)
  const at = (ms: number) => {
    const now = Date.now
    Date.now = () => now() + ms
    try { return cookies.trusted({ cookies: { '__Host-device': value } } as never, 'tenant', account) } finally { Date.now = now }
  }
  t.type(at(0), 'string', 'trusted when fresh')
  t.type(at(3_590_000), 'string', 'and until just before its lifetime ends')
  t.equal(at(3_600_000), null, 'not once it ended')
  t.equal(cookies.trusted({ cookies: { '__Host-device': value } } as never, 'tenant', { ...account, passwordHash: '$2b$12$other' }), null, 'nor for another password')
})

// Review: with a stolen session, POST /v1/me/password was a password oracle without the login's
// limit. It counts every checked attempt per user, and shares the login's budget of failures.
async function passwordChangeSetup (t: Parameters<typeof build>[0]) {
  const { app, ownerUrl } = await build(t, { env: { LOGIN_FAILURES_MAX: '3' } })
  const acme = await insertTenant(ownerUrl, 'acme')
  await createUser(ownerUrl, acme, { email: 'ann@example.com', password: PASSWORD_A, role: 'owner' })
  await createUser(ownerUrl, acme, { email: 'bob@example.com', password: PASSWORD_A, role: 'member' })
  const ann = await signIn(app, 'acme.localhost', 'ann@example.com', PASSWORD_A)
  const bob = await signIn(app, 'acme.localhost', 'bob@example.com', PASSWORD_A)
  const change = (who: { accessToken: string }, currentPassword: string, newPassword: string) => app.inject({
    method: 'POST', url: '/v1/me/password', headers: { host: 'acme.localhost', authorization: `Bearer ${who.accessToken}` }, payload: { currentPassword, newPassword },
  })
  return { app, ann, bob, change }
}

t.test('password changes per user are limited like logins: 429 with Retry-After', async (t) => {
  const { app, ann, bob, change } = await passwordChangeSetup(t)
  t.equal((await change(ann, PASSWORD_A, 'short')).statusCode, 400, 'a new password the policy refuses is a 400, not counted')
  t.equal((await change(ann, PASSWORD_A, PASSWORD_B)).statusCode, 204, 'change 1')
  t.equal((await change(ann, PASSWORD_B, PASSWORD_A)).statusCode, 204, 'change 2')
  t.equal((await change(ann, PASSWORD_A, PASSWORD_B)).statusCode, 204, 'change 3')
  const limited = await change(ann, PASSWORD_B, PASSWORD_A)
  t.equal(limited.statusCode, 429, 'every checked attempt counts, right ones too: the fourth waits')
  t.equal(limited.json().error.code, 'RATE_LIMITED')
  const retryAfter = Number(limited.headers['retry-after'])
  t.ok(retryAfter > 800 && retryAfter <= 900, `Retry-After ${retryAfter}s`)
  t.equal((await login(app, 'acme.localhost', 'ann@example.com', PASSWORD_B)).statusCode, 200, 'the refused change changed nothing, and right answers spent none of the login\'s failures')
  t.equal((await change(bob, PASSWORD_A, PASSWORD_B)).statusCode, 204, 'another user of the tenant is not limited')
})

t.test('a wrong current password spends the login\'s budget of failures, and the login\'s spends it here', async (t) => {
  const { app, ann, change } = await passwordChangeSetup(t)
  for (let i = 0; i < 2; i++) t.equal((await login(app, 'acme.localhost', 'ann@example.com', 'wrong password here!')).statusCode, 401)
  t.equal((await change(ann, 'wrong password here!', PASSWORD_B)).statusCode, 403, 'a wrong current password: 403')
  t.equal((await login(app, 'acme.localhost', 'ann@example.com', PASSWORD_A)).statusCode, 429, 'it was the third failure of the email: the login waits')
  const limited = await change(ann, PASSWORD_A, PASSWORD_B)
  t.equal(limited.statusCode, 429, 'and so does the check here, with the right password')
  t.ok(Number(limited.headers['retry-after']) > 800, 'Retry-After')
})

t.test('a password change clears the failures counted against the old password', async (t) => {
  const { app, ann, change } = await passwordChangeSetup(t)
  for (let i = 0; i < 2; i++) t.equal((await login(app, 'acme.localhost', 'ann@example.com', 'wrong password here!')).statusCode, 401)
  t.equal((await change(ann, PASSWORD_A, PASSWORD_B)).statusCode, 204, 'changed, two failures into a budget of three')
  t.equal((await login(app, 'acme.localhost', 'ann@example.com', 'wrong password again')).statusCode, 401)
  t.equal((await login(app, 'acme.localhost', 'ann@example.com', PASSWORD_B)).statusCode, 200, 'one failure since the change: not locked')
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

function cookieMap (setCookie: string | string[] | undefined): Map<string, string> {
  const list = Array.isArray(setCookie) ? setCookie : setCookie ? [setCookie] : []
  return new Map(list.map((c) => [c.split('=')[0]!, c]))
}

t.test('cookie attributes outside development: __Host-/__Secure- names, Secure, HttpOnly, SameSite, Path, no Domain', async (t) => {
  const { app, ownerUrl } = await build(t)
  const acme = await insertTenant(ownerUrl, 'acme')
  await createUser(ownerUrl, acme, { email: 'ann@example.com', password: PASSWORD_A, role: 'owner' })
  const res = await login(app, 'acme.localhost', 'ann@example.com', PASSWORD_A)
  const cookies = cookieMap(res.headers['set-cookie'])
  t.same([...cookies.keys()].sort(), ['__Host-access', '__Host-csrf', '__Host-device', '__Secure-refresh'])
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
  const device = cookies.get('__Host-device')!
  t.match(device, /; HttpOnly/)
  t.match(device, /; SameSite=Strict/)
  t.match(device, /; Path=\/(;|$)/)
  t.match(device, /; Secure/)
  t.match(device, /; Max-Age=15552000/, '180 days')
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
  t.same([...cookies.keys()].sort(), ['access', 'csrf', 'device', 'refresh'])
  for (const cookie of cookies.values()) {
    t.notMatch(cookie, /Secure/)
    t.notMatch(cookie, /domain=/i)
  }
  t.match(cookies.get('access'), /HttpOnly.*SameSite=Lax|SameSite=Lax.*HttpOnly/)
})

// Through the real app's logger (src/app.ts: its level, its redaction) at LOG_LEVEL=debug, where
// plugins/request-log.ts logs every request's headers and body and every answer's headers: each
// credential a client sends or receives is sent here, and the whole log is searched for it. The log
// is first shown to hold those records (with the header names), so the search cannot pass on an
// empty log.
t.test('logs never contain passwords, tokens, cookies, API keys or hashes', async (t) => {
  let logged = ''
  const logStream = new Writable({ write (chunk, _encoding, done) { logged += chunk.toString(); done() } })
  const { app, ownerUrl } = await build(t, { env: { LOG_LEVEL: 'debug', PLATFORM_ADMIN_TOKEN: 'platform-admin-token-of-at-least-32-characters' }, logStream })
  const acme = await insertTenant(ownerUrl, 'acme')
  await createUser(ownerUrl, acme, { email: 'ann@example.com', password: PASSWORD_A, role: 'owner' })
  const { rows } = await adminQuery<{ password_hash: string }>(ownerUrl, 'SELECT password_hash FROM users')
  const session = await signIn(app, 'acme.localhost', 'ann@example.com', PASSWORD_A)
  await login(app, 'acme.localhost', 'ann@example.com', PASSWORD_B) // a refused one is logged too
  const refreshed = await app.inject({ method: 'POST', url: '/v1/auth/refresh', headers: { host: 'acme.localhost', 'x-csrf-token': session.csrfToken }, cookies: session.cookies })
  t.equal(refreshed.statusCode, 200)
  const cookies = Object.fromEntries(refreshed.cookies.map((c) => [c.name, c.value]))
  const byBody = await app.inject({ method: 'POST', url: '/v1/auth/refresh', headers: { host: 'acme.localhost' }, payload: { refreshToken: refreshed.json().refreshToken } })
  t.equal(byBody.statusCode, 200)
  const changed = await app.inject({ method: 'POST', url: '/v1/me/password', headers: { host: 'acme.localhost', 'x-csrf-token': cookies['__Host-csrf'] }, cookies, payload: { currentPassword: PASSWORD_A, newPassword: PASSWORD_B } })
  t.equal(changed.statusCode, 204)
  const bearer = await app.inject({ url: '/v1/me', headers: { host: 'acme.localhost', authorization: `Bearer ${byBody.json().accessToken}` } })
  t.equal(bearer.statusCode, 200)
  const apiKey = 'tk_live_4f9c2b7e1d8a6f3c5e0b9a7d2c4e6f8a'
  await app.inject({ url: '/v1/projects', headers: { host: 'acme.localhost', 'x-api-key': apiKey } })
  const bearerKey = 'tk_live_9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d'
  await app.inject({ url: '/v1/projects', headers: { host: 'acme.localhost', authorization: `Bearer ${bearerKey}` } })
  const ownerPassword = 'signup owner password, secret'
  t.equal((await app.inject({ method: 'POST', url: '/v1/tenants', headers: { host: 'localhost' }, payload: { slug: 'initech', name: 'Initech', owner: { email: 'o@initech.example', name: 'O', password: ownerPassword } } })).statusCode, 201)
  t.equal((await app.inject({ url: '/v1/admin/tenants', headers: { host: 'localhost', authorization: 'Bearer platform-admin-token-of-at-least-32-characters' } })).statusCode, 200)

  const records = logged.trim().split('\n').map((line) => JSON.parse(line))
  const details = records.filter((r) => r.msg === 'request details')
  t.ok(details.length >= 10, `request details were logged (${details.length})`)
  t.ok(details.some((r) => r.headers?.authorization === '[redacted]'), 'the Authorization header is shown, redacted')
  t.ok(details.some((r) => r.headers?.cookie === '[redacted]'), 'the Cookie header is shown, redacted')
  t.ok(details.some((r) => r.headers?.['x-api-key'] === '[redacted]'), 'the X-Api-Key header is shown, redacted')
  const bodies = records.filter((r) => r.msg === 'request body')
  t.ok(bodies.some((r) => r.body?.password === '[redacted]' && r.body?.email === 'ann@example.com'), 'the login body is shown, its password redacted')
  t.ok(bodies.some((r) => r.body?.owner?.password === '[redacted]' && r.body?.owner?.email === 'o@initech.example'), "signup's body is shown, the owner's password redacted")
  t.ok(records.some((r) => r.msg === 'response details' && r.responseHeaders?.['set-cookie'] === '[redacted]'), 'Set-Cookie is shown, redacted')
  const secrets = {
    PASSWORD_A,
    PASSWORD_B,
    ownerPassword,
    apiKey,
    bearerKey,
    'platform admin token': 'platform-admin-token-of-at-least-32-characters',
    'access token': session.accessToken,
    'refresh token': session.refreshToken,
    'CSRF token': session.csrfToken,
    'refresh secret': session.refreshToken.split('.')[1]!,
    'rotated access token': refreshed.json().accessToken,
    'rotated refresh token': refreshed.json().refreshToken,
    'access token 3': byBody.json().accessToken,
    'refresh token 3': byBody.json().refreshToken,
    'password hash': rows[0]!.password_hash,
  }
  for (const [what, secret] of Object.entries(secrets)) t.notOk(logged.includes(secret), `not logged: ${what}`)
})

// What matters is that the event loop stays free for other requests while hashes run, not how long
// a hash takes (on a loaded 2-core machine a worker at the lowest OS priority can wait many seconds
// for a core). So the main thread's event-loop utilisation (busy time / elapsed time, Node's
// performance.eventLoopUtilization) is measured while 4 hashes run: waiting for workers leaves it
// near 0 however slow they are, while bcryptjs on the main thread keeps it near 1 (its async API
// computes in slices on this thread). Bounds are generous on purpose: utilisation under 0.5, and no
// timer delayed by more than 2 s (liveness only; a 2 s stall would already be a failure for users).
t.test('bcrypt runs off the main thread: the event loop stays free while hashes run in workers', async (t) => {
  const hasher = new PasswordHasher({ cost: 10, workers: 2, minLength: 15 })
  t.teardown(() => hasher.close())
  t.not(await hasher.workerThreadId(), threadId, 'a worker thread, not the main one')
  const delay = monitorEventLoopDelay({ resolution: 10 })
  delay.enable()
  const before = performance.eventLoopUtilization()
  const hashes = await Promise.all([1, 2, 3, 4].map((i) => hasher.hash(`a long enough password ${i}`)))
  const { utilization } = performance.eventLoopUtilization(before)
  delay.disable()
  for (const hash of hashes) t.match(hash, /^\$2b\$10\$/)
  t.ok(utilization < 0.5, `event-loop utilisation ${utilization.toFixed(3)} while 4 cost-10 hashes ran`)
  t.ok(delay.max / 1e6 < 2000, `longest event-loop delay ${(delay.max / 1e6).toFixed(0)} ms`)
  t.ok(await hasher.verify('a long enough password 1', hashes[0]!))
  t.notOk(await hasher.verify('a long enough password?', hashes[0]!))
  t.notOk(await hasher.verifyDummy('anything'))
})
