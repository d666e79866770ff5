// Sessions: refresh rotation and replay, logout, password change, deactivation, expiry, revocation
// across instances, CSRF, and the /v1/me routes.
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { createUser, signIn, type SignedIn } from './auth-helper.ts'
import { adminQuery, build, holdLock, insertTenant } from './helper.ts'

const PASSWORD = 'correct horse battery staple'
const NEW_PASSWORD = 'a brand new passphrase for ann'
const HOST = 'acme.localhost'

async function setUp (t: Parameters<typeof build>[0], env: Record<string, string> = {}) {
  const built = await build(t, { env })
  const tenantId = await insertTenant(built.ownerUrl, 'acme')
  const ann = await createUser(built.ownerUrl, tenantId, { email: 'ann@example.com', password: PASSWORD, role: 'owner', name: 'Ann' })
  return { ...built, tenantId, ann }
}

type App = Awaited<ReturnType<typeof build>>['app']
const me = (app: App, session: SignedIn) => app.inject({ url: '/v1/me', headers: { host: HOST, authorization: `Bearer ${session.accessToken}` } })
const refresh = (app: App, refreshToken: string) => app.inject({ method: 'POST', url: '/v1/auth/refresh', headers: { host: HOST }, payload: { refreshToken } })

t.test('refresh rotates the token; reusing a rotated one revokes the whole family', async (t) => {
  const { app } = await setUp(t)
  const session = await signIn(app, HOST, 'ann@example.com', PASSWORD)
  const first = await refresh(app, session.refreshToken)
  t.equal(first.statusCode, 200)
  const rotated = first.json()
  t.same(Object.keys(rotated).sort(), ['accessToken', 'expiresIn', 'refreshToken', 'tokenType', 'user'])
  t.not(rotated.refreshToken, session.refreshToken)
  t.equal(rotated.refreshToken.split('.')[0], session.refreshToken.split('.')[0], 'same session (family)')
  t.ok(first.cookies.some((c) => c.name === '__Host-access'), 'fresh cookies')
  t.equal((await me(app, { ...session, accessToken: rotated.accessToken })).statusCode, 200)

  const replay = await refresh(app, session.refreshToken)
  t.equal(replay.statusCode, 401, 'the old refresh token stops working')
  t.equal(replay.json().error.code, 'UNAUTHORIZED')
  t.equal((await refresh(app, rotated.refreshToken)).statusCode, 401, 'the replay revoked the newest refresh token too')
  t.equal((await me(app, { ...session, accessToken: rotated.accessToken })).statusCode, 401, 'and its access tokens')
  t.equal((await me(app, session)).statusCode, 401)

  const other = await signIn(app, HOST, 'ann@example.com', PASSWORD)
  t.equal((await me(app, other)).statusCode, 200, 'other sign-ins are not affected')
  for (const garbage of ['nope', `${other.refreshToken.split('.')[0]}`, 'x'.repeat(200)]) t.equal((await refresh(app, garbage)).statusCode, 401, 'garbage refresh token')
})

// The session id is no secret (the access token's `sid`, auth.login events that admins read): a
// refresh secret made up for it, or another session's secret put under it, must not sign anyone out.
t.test('a refresh secret the server never issued is a 401 that revokes nothing', async (t) => {
  const { app, ownerUrl } = await setUp(t)
  const session = await signIn(app, HOST, 'ann@example.com', PASSWORD)
  const other = await signIn(app, HOST, 'ann@example.com', PASSWORD)
  const sessionId = session.refreshToken.split('.')[0]
  const forged = [`${sessionId}.${'A'.repeat(43)}`, `${sessionId}.${other.refreshToken.split('.')[1]}`]
  for (const token of forged) {
    const res = await refresh(app, token)
    t.equal(res.statusCode, 401, 'refused')
    t.equal(res.json().error.code, 'UNAUTHORIZED')
  }
  t.equal((await me(app, session)).statusCode, 200, 'the session still works')
  const { rows } = await adminQuery<{ n: number }>(ownerUrl, "SELECT count(*)::int AS n FROM audit_events WHERE action = 'auth.refresh_reused'")
  t.same(rows, [{ n: 0 }], 'no refresh_reused event names Ann')
  const rotated = await refresh(app, session.refreshToken)
  t.equal(rotated.statusCode, 200, 'and its own refresh token still rotates')
  t.equal((await refresh(app, session.refreshToken)).statusCode, 401, 'after which the rotated secret, one the server issued, is a replay')
  t.equal((await me(app, { ...session, accessToken: rotated.json().accessToken })).statusCode, 401, 'which revokes the session')

  // A session opened before the tags existed holds untagged secrets: a wrong one of its own may be
  // a replay of one it issued, so the contract's rule stands for it until it ends.
  const older = await signIn(app, HOST, 'ann@example.com', PASSWORD)
  const olderId = older.refreshToken.split('.')[0]
  await adminQuery(ownerUrl, 'UPDATE sessions SET refresh_tagged = false WHERE id = $1', [olderId])
  t.equal((await refresh(app, `${olderId}.${'A'.repeat(43)}`)).statusCode, 401)
  t.equal((await me(app, older)).statusCode, 401, 'an untagged wrong secret of an untagged session revokes it, as before')
  t.equal((await me(app, other)).statusCode, 200, 'and nothing else')
})

// Two refreshes with the same token at once: both read the current secret, one swaps it, and the
// loser of the compare-and-set must revoke the session (presenting a rotated token revokes the
// family). Three sessions race, so that the loser meets the swapped row at least once.
t.test('two refreshes racing with the same token: at most one wins, and the session is revoked', async (t) => {
  const { app, ownerUrl } = await setUp(t)
  for (let trial = 1; trial <= 3; trial++) {
    const session = await signIn(app, HOST, 'ann@example.com', PASSWORD)
    const answers = await Promise.all([refresh(app, session.refreshToken), refresh(app, session.refreshToken)])
    const codes = answers.map((res) => res.statusCode).sort()
    t.ok(codes[1] !== 200 || codes[0] === 401, `trial ${trial}: never two winners (${codes})`)
    for (const res of answers.filter((r) => r.statusCode === 200)) {
      const winner = res.json()
      t.equal((await refresh(app, winner.refreshToken)).statusCode, 401, `trial ${trial}: the winner's new refresh token is revoked too`)
      t.equal((await me(app, { ...session, accessToken: winner.accessToken })).statusCode, 401, `trial ${trial}: and its access token`)
    }
    t.equal((await me(app, session)).statusCode, 401, `trial ${trial}: the original access token is refused`)
    const { rows } = await adminQuery<{ revoked: boolean }>(ownerUrl, 'SELECT revoked_at IS NOT NULL AS revoked FROM sessions WHERE id = $1', [session.refreshToken.split('.')[0]])
    t.same(rows, [{ revoked: true }], `trial ${trial}: the session is revoked`)
  }
})

t.test('refresh with the cookie needs the CSRF token; an empty body is fine', async (t) => {
  const { app } = await setUp(t)
  const session = await signIn(app, HOST, 'ann@example.com', PASSWORD)
  const refreshCookies = { '__Secure-refresh': session.cookies['__Secure-refresh']!, '__Host-csrf': session.csrfToken }
  const noCsrf = await app.inject({ method: 'POST', url: '/v1/auth/refresh', headers: { host: HOST }, cookies: refreshCookies })
  t.equal(noCsrf.statusCode, 403)
  t.equal(noCsrf.json().error.code, 'CSRF_FAILED')
  const ok = await app.inject({ method: 'POST', url: '/v1/auth/refresh', headers: { host: HOST, 'x-csrf-token': session.csrfToken }, cookies: refreshCookies })
  t.equal(ok.statusCode, 200)
  t.equal(ok.cookies.find((c) => c.name === '__Secure-refresh')?.value, ok.json().refreshToken)
  const jsonNoBody = await app.inject({ method: 'POST', url: '/v1/auth/refresh', headers: { host: HOST, 'content-type': 'application/json', 'x-csrf-token': session.csrfToken }, cookies: { ...refreshCookies, '__Secure-refresh': ok.json().refreshToken } })
  t.equal(jsonNoBody.statusCode, 200, 'a JSON content type with an empty body is no body')
  t.equal((await app.inject({ method: 'POST', url: '/v1/auth/refresh', headers: { host: HOST } })).statusCode, 401, 'nothing to refresh with')
  const badJson = await app.inject({ method: 'POST', url: '/v1/auth/refresh', headers: { host: HOST, 'content-type': 'application/json' }, payload: '{' })
  t.equal(badJson.statusCode, 400)
  t.equal(badJson.json().error.code, 'VALIDATION_FAILED')
  const extra = await app.inject({ method: 'POST', url: '/v1/auth/refresh', headers: { host: HOST }, payload: { refreshToken: ok.json().refreshToken, more: 1 } })
  t.equal(extra.statusCode, 400, 'unknown properties are rejected')
})

t.test('logout revokes the session: access and refresh tokens stop working', async (t) => {
  const { app } = await setUp(t)
  const session = await signIn(app, HOST, 'ann@example.com', PASSWORD)
  const other = await signIn(app, HOST, 'ann@example.com', PASSWORD)
  const out = await app.inject({ method: 'POST', url: '/v1/auth/logout', headers: { host: HOST, authorization: `Bearer ${session.accessToken}` } })
  t.equal(out.statusCode, 204)
  t.equal(out.body, '')
  t.equal((await me(app, session)).statusCode, 401)
  t.equal((await app.inject({ url: '/v1/me', headers: { host: HOST }, cookies: session.cookies })).statusCode, 401, 'the cookie too')
  const unsafe = await app.inject({ method: 'POST', url: '/v1/projects', headers: { host: HOST }, cookies: session.cookies, payload: { name: 'after logout' } })
  t.same([unsafe.statusCode, unsafe.json().error.code], [401, 'UNAUTHORIZED'], 'an unsafe cookie request without CSRF token: the revoked session first, not 403 CSRF_FAILED')
  t.equal((await refresh(app, session.refreshToken)).statusCode, 401)
  t.equal((await me(app, other)).statusCode, 200, 'another session of the same user stays')
  t.equal((await app.inject({ method: 'POST', url: '/v1/auth/logout', headers: { host: HOST } })).statusCode, 401, 'logout needs a session')
})

// The logout's event insert is held (a SHARE lock on audit_events) after the session was revoked in
// its transaction but before the commit. A request of the session in that gap reloads its state —
// still usable, the revocation is not committed — and must not keep it cached past the 204.
t.test('logout holds at once even for a request made while it waited to commit', async (t) => {
  const { app, ownerUrl } = await setUp(t)
  const session = await signIn(app, HOST, 'ann@example.com', PASSWORD)
  const lock = await holdLock(t, ownerUrl, 'LOCK TABLE audit_events IN SHARE MODE') // inserts wait; reads do not
  const loggingOut = app.inject({ method: 'POST', url: '/v1/auth/logout', headers: { host: HOST, authorization: `Bearer ${session.accessToken}` } })
  t.equal(await lock.untilWaiting(1), 1, "the logout's event waits, its session already revoked in its transaction")
  t.equal((await me(app, session)).statusCode, 200, 'before the commit the session still counts (and its state is reloaded)')
  await lock.release()
  t.equal((await loggingOut).statusCode, 204)
  t.equal((await me(app, session)).statusCode, 401, 'after the 204 it does not')
})

t.test('cookie-authenticated unsafe requests need the CSRF token; Bearer ones do not', async (t) => {
  const { app } = await setUp(t)
  const session = await signIn(app, HOST, 'ann@example.com', PASSWORD)
  const patch = (headers: Record<string, string>, cookies?: Record<string, string>) =>
    app.inject({ method: 'PATCH', url: '/v1/me', headers: { host: HOST, ...headers }, cookies, payload: { name: 'Ann B.' } })
  const missing = await patch({}, session.cookies)
  t.equal(missing.statusCode, 403)
  t.equal(missing.json().error.code, 'CSRF_FAILED')
  t.equal((await patch({ 'x-csrf-token': 'forged' }, session.cookies)).statusCode, 403, 'wrong token')
  // A token that matches a planted cookie but is not signed for this session is refused too.
  t.equal((await patch({ 'x-csrf-token': 'planted' }, { ...session.cookies, '__Host-csrf': 'planted' })).statusCode, 403, 'planted cookie')
  const other = await signIn(app, HOST, 'ann@example.com', PASSWORD)
  t.equal((await patch({ 'x-csrf-token': other.csrfToken }, { ...session.cookies, '__Host-csrf': other.csrfToken })).statusCode, 403, "another session's token")
  const ok = await patch({ 'x-csrf-token': session.csrfToken }, session.cookies)
  t.equal(ok.statusCode, 200)
  t.equal(ok.json().name, 'Ann B.')
  t.equal((await app.inject({ url: '/v1/me', headers: { host: HOST }, cookies: session.cookies })).statusCode, 200, 'safe methods need no token')
  t.equal((await patch({ authorization: `Bearer ${session.accessToken}` })).statusCode, 200, 'Bearer needs no CSRF token')
  const logout = await app.inject({ method: 'POST', url: '/v1/auth/logout', headers: { host: HOST }, cookies: session.cookies })
  t.equal(logout.statusCode, 403, 'logout by cookie needs it too')
})

t.test('password change: the calling session stays, every other one is revoked', async (t) => {
  const { app, ownerUrl, ann } = await setUp(t)
  const caller = await signIn(app, HOST, 'ann@example.com', PASSWORD)
  const other = await signIn(app, HOST, 'ann@example.com', PASSWORD)
  t.equal((await me(app, other)).statusCode, 200, 'cached as valid first')
  const change = (currentPassword: string) => app.inject({
    method: 'POST',
    url: '/v1/me/password',
    headers: { host: HOST, authorization: `Bearer ${caller.accessToken}` },
    payload: { currentPassword, newPassword: NEW_PASSWORD },
  })
  const wrong = await change('not my password at all')
  t.equal(wrong.statusCode, 403)
  t.equal(wrong.json().error.code, 'FORBIDDEN')
  const failed = await adminQuery(ownerUrl, "SELECT actor_type, actor_id, target_id, data FROM audit_events WHERE action = 'auth.login_failed'")
  t.same(failed.rows, [{ actor_type: 'user', actor_id: ann.id, target_id: ann.id, data: { email: 'ann@example.com', route: 'password_change' } }], 'a wrong current password is recorded as a failed password check')
  t.equal((await change(PASSWORD)).statusCode, 204)
  t.equal((await me(app, caller)).statusCode, 200, 'the calling session is still signed in')
  t.equal((await refresh(app, caller.refreshToken)).statusCode, 200, 'and can refresh')
  t.equal((await me(app, other)).statusCode, 401, 'other sessions: access token refused at once')
  t.equal((await refresh(app, other.refreshToken)).statusCode, 401, 'other sessions: refresh refused')
  const old = await app.inject({ method: 'POST', url: '/v1/auth/login', headers: { host: HOST }, payload: { email: 'ann@example.com', password: PASSWORD } })
  t.equal(old.statusCode, 401, 'the old password no longer signs in')
  t.ok(await signIn(app, HOST, 'ann@example.com', NEW_PASSWORD), 'the new one does')
})

t.test('deactivation and deletion take effect at once through userChanged', async (t) => {
  const { app, ownerUrl, tenantId, ann } = await setUp(t) // default cache TTL (2 s)
  const session = await signIn(app, HOST, 'ann@example.com', PASSWORD)
  t.equal((await me(app, session)).statusCode, 200, 'cached as valid')
  await adminQuery(ownerUrl, 'UPDATE users SET active = false, auth_version = auth_version + 1 WHERE id = $1', [ann.id])
  app.auth.userChanged(tenantId, ann.id)
  t.equal((await me(app, session)).statusCode, 401, 'deactivated: refused at once')
  t.equal((await refresh(app, session.refreshToken)).statusCode, 401, 'cannot refresh either')
  await adminQuery(ownerUrl, 'UPDATE users SET active = true WHERE id = $1', [ann.id])
  app.auth.userChanged(tenantId, ann.id)
  t.equal((await me(app, session)).statusCode, 200, 'reactivated')
  await adminQuery(ownerUrl, 'DELETE FROM users WHERE id = $1', [ann.id])
  app.auth.userChanged(tenantId, ann.id)
  t.equal((await me(app, session)).statusCode, 401, 'deleted')
})

t.test('another instance sees revocations within the cache TTL', async (t) => {
  const env = { REVOCATION_CACHE_TTL_MS: '300', CHANGE_FEED_CACHE_TTL_MS: '0' } // the TTL alone (the change feed: test/change-feed.test.ts)
  const { app, ownerUrl, ann } = await setUp(t, env)
  const second = await build(t, { url: ownerUrl, env })
  const session = await signIn(app, HOST, 'ann@example.com', PASSWORD)
  const other = await signIn(app, HOST, 'ann@example.com', PASSWORD)
  t.equal((await me(second.app, session)).statusCode, 200, 'valid on the second instance (now cached there)')
  t.equal((await me(second.app, other)).statusCode, 200)
  await app.inject({ method: 'POST', url: '/v1/auth/logout', headers: { host: HOST, authorization: `Bearer ${session.accessToken}` } })
  await adminQuery(ownerUrl, 'UPDATE users SET active = false WHERE id = $1', [ann.id]) // behind everyone's back
  await sleep(350)
  t.equal((await me(second.app, session)).statusCode, 401, 'logout seen after the TTL')
  t.equal((await me(second.app, other)).statusCode, 401, 'deactivation seen after the TTL')
})

t.test('a session past its absolute lifetime is over', async (t) => {
  const { app, ownerUrl } = await setUp(t, { REVOCATION_CACHE_TTL_MS: '0' })
  const session = await signIn(app, HOST, 'ann@example.com', PASSWORD)
  const expires = await adminQuery<{ seconds: number }>(ownerUrl, 'SELECT extract(epoch FROM expires_at - created_at)::int AS seconds FROM sessions')
  t.equal(expires.rows[0]!.seconds, 30 * 86400, 'SESSION_MAX_AGE_S')
  await adminQuery(ownerUrl, "UPDATE sessions SET expires_at = now() - interval '1 second'")
  t.equal((await me(app, session)).statusCode, 401)
  t.equal((await refresh(app, session.refreshToken)).statusCode, 401)
})

t.test('GET and PATCH /v1/me', async (t) => {
  const { app, ann } = await setUp(t)
  const session = await signIn(app, HOST, 'ann@example.com', PASSWORD)
  const got = await me(app, session)
  t.equal(got.statusCode, 200)
  t.same(Object.keys(got.json()).sort(), ['active', 'createdAt', 'email', 'id', 'name', 'role', 'updatedAt'])
  t.equal(got.json().id, ann.id)
  const patch = (payload: unknown) => app.inject({ method: 'PATCH', url: '/v1/me', headers: { host: HOST, authorization: `Bearer ${session.accessToken}` }, payload: payload as object })
  t.equal((await patch({ name: 'Ann Smith' })).json().name, 'Ann Smith')
  t.equal((await patch({ name: 'Ann', role: 'owner' })).statusCode, 400, 'unknown properties rejected')
  t.equal((await patch({ name: 42 })).statusCode, 400, 'no coercion')
  t.equal((await patch({ name: '' })).statusCode, 400)
  t.equal((await app.inject({ url: '/v1/me', headers: { host: HOST } })).statusCode, 401)
})

// The tenant's chain lock, which every audited write takes first (src/audit/audit-log.ts), holds
// each change below before it changes anything: released, they run one after the other.
const holdChainLock = (t: { teardown(fn: () => unknown): void }, ownerUrl: string, tenantId: string) =>
  holdLock(t, ownerUrl, 'SELECT 1 FROM tenants WHERE id = $1 FOR NO KEY UPDATE', [tenantId])

const eventCount = async (ownerUrl: string, action: string) =>
  (await adminQuery<{ n: number }>(ownerUrl, 'SELECT count(*)::int AS n FROM audit_events WHERE action = $1', [action])).rows[0]!.n

t.test('two password changes at once (two tabs): one wins, the other is refused and changes nothing', async (t) => {
  const { app, ownerUrl, tenantId } = await setUp(t)
  const tabs = [await signIn(app, HOST, 'ann@example.com', PASSWORD), await signIn(app, HOST, 'ann@example.com', PASSWORD)]
  const lock = await holdChainLock(t, ownerUrl, tenantId)
  const newPasswords = ['the first tab new passphrase', 'the second tab new passphrase']
  const changes = tabs.map((tab, i) => app.inject({
    method: 'POST',
    url: '/v1/me/password',
    headers: { host: HOST, authorization: `Bearer ${tab.accessToken}` },
    payload: { currentPassword: PASSWORD, newPassword: newPasswords[i] },
  }))
  t.equal(await lock.untilWaiting(2), 2, 'both wait on the chain')
  await lock.release()
  const statuses = (await Promise.all(changes)).map((res) => res.statusCode)
  t.same([...statuses].sort(), [204, 401], `one 204, one 401 (${statuses.join(', ')})`)
  const winner = statuses.indexOf(204)
  const loser = 1 - winner
  t.equal((await me(app, tabs[winner]!)).statusCode, 200, "the winner's session stays signed in")
  t.equal((await me(app, tabs[loser]!)).statusCode, 401, "the other tab's session was ended by the winner's change")
  const login = (password: string) => app.inject({ method: 'POST', url: '/v1/auth/login', headers: { host: HOST }, payload: { email: 'ann@example.com', password } })
  t.equal((await login(newPasswords[winner]!)).statusCode, 200, "the winner's password is the one set")
  t.equal((await login(newPasswords[loser]!)).statusCode, 401, "the refused change's password is not")
  t.equal(await eventCount(ownerUrl, 'user.password_changed'), 1, 'one user.password_changed event')
})

// One tab submitting twice (a double click): both requests checked the current password against the
// same stored hash before either changed it; queued on the chain, the second finds its session still
// signed in, but the password it checked is no longer the stored one: refused, nothing changed.
t.test('one tab submitting a password change twice at once: the first wins, the second changes nothing', async (t) => {
  const { app, ownerUrl, tenantId } = await setUp(t)
  const tab = await signIn(app, HOST, 'ann@example.com', PASSWORD)
  const lock = await holdChainLock(t, ownerUrl, tenantId)
  const newPasswords = ['the first submit new passphrase', 'the second submit new passphrase']
  const changes = newPasswords.map((newPassword) => app.inject({
    method: 'POST',
    url: '/v1/me/password',
    headers: { host: HOST, authorization: `Bearer ${tab.accessToken}` },
    payload: { currentPassword: PASSWORD, newPassword },
  }))
  t.equal(await lock.untilWaiting(2), 2, 'both wait on the chain, each having checked the old password')
  await lock.release()
  const statuses = (await Promise.all(changes)).map((res) => res.statusCode)
  t.same([...statuses].sort(), [204, 401], `one 204, one 401 (${statuses.join(', ')})`)
  const winner = statuses.indexOf(204)
  const login = (password: string) => app.inject({ method: 'POST', url: '/v1/auth/login', headers: { host: HOST }, payload: { email: 'ann@example.com', password } })
  t.equal((await login(newPasswords[winner]!)).statusCode, 200, "the winner's password is the one set")
  t.equal((await login(newPasswords[1 - winner]!)).statusCode, 401, 'the other one is not')
  t.equal(await eventCount(ownerUrl, 'user.password_changed'), 1, 'one user.password_changed event')
})

t.test('a logout racing another logout and a refresh of its session: one auth.logout event, no false refresh_reused', async (t) => {
  const { app, ownerUrl } = await setUp(t)
  const session = await signIn(app, HOST, 'ann@example.com', PASSWORD)
  // The session's row is held: the first logout (which took the chain) and the refresh wait on it,
  // the second logout on the chain behind the first.
  const lock = await holdLock(t, ownerUrl, "SELECT 1 FROM sessions WHERE user_id = (SELECT id FROM users WHERE email = 'ann@example.com') AND revoked_at IS NULL FOR UPDATE")
  const logout = () => app.inject({ method: 'POST', url: '/v1/auth/logout', headers: { host: HOST, authorization: `Bearer ${session.accessToken}` } })
  const first = logout()
  t.equal(await lock.untilWaiting(1), 1, 'the first logout waits on the session row')
  const second = logout()
  const refreshing = refresh(app, session.refreshToken)
  t.equal(await lock.untilWaiting(3), 3, 'the second logout waits on the chain, the refresh on the session row')
  await lock.release()
  t.same([(await first).statusCode, (await second).statusCode], [204, 204], 'both logouts: the session is signed out')
  const refreshed = await refreshing
  t.same([refreshed.statusCode, refreshed.json().error.code], [401, 'UNAUTHORIZED'], 'the refresh of a session signed out meanwhile')
  t.equal(await eventCount(ownerUrl, 'auth.logout'), 1, 'one auth.logout: one session ended once')
  t.equal(await eventCount(ownerUrl, 'auth.refresh_reused'), 0, 'a refresh that lost to a logout is no token reuse')
})

t.test('a deactivation and the end of the user sessions commit together', async (t) => {
  const { app, ownerUrl, tenantId } = await setUp(t)
  const bob = await createUser(ownerUrl, tenantId, { email: 'bob@example.com', password: PASSWORD, role: 'member', name: 'Bob' })
  const ann = await signIn(app, HOST, 'ann@example.com', PASSWORD)
  const bobSession = await signIn(app, HOST, 'bob@example.com', PASSWORD)
  // Bob's session rows are locked: the deactivation waits when it revokes them.
  const lock = await holdLock(t, ownerUrl, 'SELECT 1 FROM sessions WHERE user_id = $1 FOR UPDATE', [bob.id], tenantId)
  const deactivating = app.inject({ method: 'PATCH', url: `/v1/users/${bob.id}`, headers: { host: HOST, authorization: `Bearer ${ann.accessToken}` }, payload: { active: false } })
  t.equal(await lock.untilWaiting(1, { like: '%sessions%' }), 1, 'the deactivation waits to revoke the sessions')
  const { rows } = await adminQuery<{ active: boolean }>(ownerUrl, 'SELECT active FROM users WHERE id = $1', [bob.id])
  t.same(rows, [{ active: true }], 'meanwhile the user is not deactivated either: no committed deactivation with live sessions')
  await lock.release()
  t.equal((await deactivating).statusCode, 200)
  t.equal((await me(app, bobSession)).statusCode, 401)
  const live = await adminQuery<{ n: number }>(ownerUrl, 'SELECT count(*)::int AS n FROM sessions WHERE user_id = $1 AND revoked_at IS NULL', [bob.id])
  t.same(live.rows, [{ n: 0 }], 'every session revoked')
})
