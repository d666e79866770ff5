// The tenant web page (public/, routes/web.ts) in a real Chromium (Debian's, driven by
// playwright-core) against the real app listening on loopback. Chromium resolves *.localhost to
// loopback, so each tenant is its own host: http://acme.localhost:<port>/.
// NODE_ENV=test sends the production cookies (__Host-/__Secure- names, Secure): Chromium stores
// Secure cookies over plain http on *.localhost (a potentially trustworthy origin), which is checked
// below. If Chromium cannot be launched, the test fails (it never skips).
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import type { BrowserContext, Page } from 'playwright-core'
import t from 'tap'
import { createUser, signIn } from './auth-helper.ts'
import { launchChromium } from './browser-helper.ts'
import { build, holdLock, insertTenant } from './helper.ts'

const PASSWORD = 'correct horse battery staple'
// The README's picture: refreshed with UPDATE_SCREENSHOT=1 npm test -- test/browser.test.ts; otherwise
// written under .data so that a test run leaves the work tree clean.
const SCREENSHOT = path.resolve(process.env.UPDATE_SCREENSHOT ? 'docs/screenshot.png' : '.data/browser/screenshot.png')

type Tap = Parameters<typeof build>[0]

const listening = (server: Server) => new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)))

const launch = (t: Tap): Promise<BrowserContext> => launchChromium(t)

t.test('the tenant web page in Chromium', async (t) => {
  const { app, ownerUrl } = await build(t, { env: { LOGIN_FAILURES_MAX: '2' } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as AddressInfo).port
  const acmeUrl = `http://acme.localhost:${port}/`
  const globexUrl = `http://globex.localhost:${port}/`

  const acmeId = await insertTenant(ownerUrl, 'acme')
  const globexId = await insertTenant(ownerUrl, 'globex')
  await createUser(ownerUrl, acmeId, { email: 'alice@acme.example', password: PASSWORD, role: 'owner', name: 'Alice' })
  await createUser(ownerUrl, acmeId, { email: 'carol@acme.example', password: PASSWORD, role: 'member', name: 'Carol' })
  await createUser(ownerUrl, globexId, { email: 'bob@globex.example', password: PASSWORD, role: 'owner', name: 'Bob' })
  // Arranged through the API with Bearer tokens (the page itself only ever uses cookies).
  const alice = await signIn(app, 'acme.localhost', 'alice@acme.example', PASSWORD)
  const bob = await signIn(app, 'globex.localhost', 'bob@globex.example', PASSWORD)
  const asAlice = (method: 'GET' | 'POST', url: string, payload?: object) =>
    app.inject({ method, url, payload, headers: { host: 'acme.localhost', authorization: `Bearer ${alice.accessToken}` } })
  t.equal((await asAlice('POST', '/v1/projects', { name: 'Acme Rocket' })).statusCode, 201)
  t.equal((await app.inject({ method: 'POST', url: '/v1/projects', payload: { name: 'Globex Secret Plan' }, headers: { host: 'globex.localhost', authorization: `Bearer ${bob.accessToken}` } })).statusCode, 201)
  const projectNames = async () => ((await asAlice('GET', '/v1/projects?limit=100')).json().data as { name: string }[]).map((p) => p.name)

  const context = await launch(t)

  const cspViolations: string[] = []
  const watch = (page: Page) => {
    page.on('console', (message) => { if (/Content Security Policy|Refused to/i.test(message.text())) cspViolations.push(message.text()) })
    page.on('pageerror', (error) => cspViolations.push(`page error: ${error.message}`))
    return page
  }
  const page = watch(context.pages()[0] ?? (await context.newPage()))
  const cookieNames = async (url: string) => (await context.cookies(url)).map((c) => c.name).sort()
  // An owner's page has loaded when its last request, the pending invitations, is answered. A test
  // that changes the cookies earlier races the page's own requests (CI flakes: a refresh the test's
  // next reload cancelled).
  const pageLoaded = () => page.waitForResponse((r) => r.url().includes('/v1/invitations?') && r.ok())

  await t.test('sign in: errors in words, then this tenant only', async (t) => {
    const res = await page.goto(acmeUrl)
    t.equal(res?.status(), 200)
    t.match(res?.headers()['content-security-policy'], /script-src 'self'/, 'the default CSP is served')
    t.notMatch(res?.headers()['content-security-policy'], /script-src[^;]*unsafe-inline/)
    await page.getByRole('heading', { name: 'Sign in' }).first().waitFor()

    const signInAs = async (email: string, password: string) => {
      await page.getByLabel('Email').fill(email)
      await page.getByLabel('Password').fill(password)
      await page.getByRole('button', { name: 'Sign in' }).click()
    }
    await signInAs('alice@acme.example', 'not the right password')
    await page.getByRole('alert').filter({ hasText: 'Wrong email or password.' }).waitFor()
    // carol: LOGIN_FAILURES_MAX=2 failures, then the page says she is rate limited.
    await signInAs('carol@acme.example', 'wrong password one')
    await page.getByRole('alert').filter({ hasText: 'Wrong email or password.' }).waitFor()
    await signInAs('carol@acme.example', 'wrong password two')
    await signInAs('carol@acme.example', PASSWORD)
    await page.getByRole('alert').filter({ hasText: /Too many attempts\. Please wait \d+ seconds/ }).waitFor()
    t.pass('wrong password and rate limiting are shown in words')

    await signInAs('alice@acme.example', PASSWORD)
    await page.getByRole('heading', { name: 'Acme Inc.' }).waitFor()
    t.ok(await page.getByText('Alice (alice@acme.example, owner)').isVisible(), 'the user is shown')
    t.ok(await page.getByRole('heading', { name: 'Acme Rocket' }).isVisible(), "acme's project is listed")
    t.equal(await page.getByText('Globex Secret Plan').count(), 0, "globex's project is not")
    t.equal(await page.getByRole('alert').isVisible(), false, 'no error left on screen')
    t.same(await cookieNames(acmeUrl), ['__Host-access', '__Host-csrf', '__Host-device'], 'Secure __Host- cookies are stored over http on *.localhost')
    t.same(await cookieNames(`${acmeUrl}v1/auth/refresh`), ['__Host-access', '__Host-csrf', '__Host-device', '__Secure-refresh'])
    const cookies = await context.cookies(acmeUrl)
    t.ok(cookies.find((c) => c.name === '__Host-access')?.httpOnly, 'the access cookie is httpOnly')
    t.notOk(cookies.some((c) => c.domain.startsWith('.')), 'host-only cookies')
    t.equal(await page.evaluate('localStorage.length + sessionStorage.length'), 0, 'no web storage used')
  })

  await t.test('create a project and a task, change its status', async (t) => {
    await page.getByPlaceholder('Project name').fill('Launch website')
    await page.getByRole('button', { name: 'Add project' }).click()
    const project = page.locator('li.project', { has: page.getByRole('heading', { name: 'Launch website' }) })
    await project.waitFor()
    await project.getByPlaceholder('New task').fill('Write the copy')
    await project.getByRole('button', { name: 'Add task' }).click()
    await project.getByText('Write the copy').waitFor()
    await project.getByPlaceholder('New task').fill('Pick a domain name')
    await project.getByRole('button', { name: 'Add task' }).click()
    // Created before the status changes, so that the status change is the newest audit event.
    await project.getByText('Pick a domain name').waitFor()
    const status = project.getByLabel('Status of Write the copy')
    const patched = page.waitForResponse((r) => r.request().method() === 'PATCH')
    await status.selectOption('done')
    t.equal((await patched).status(), 200)

    t.ok((await projectNames()).includes('Launch website'), 'the project exists (checked through the API)')
    const created = ((await asAlice('GET', '/v1/projects?limit=100')).json().data as { id: string; name: string }[]).find((p) => p.name === 'Launch website')!
    const tasks = (await asAlice('GET', `/v1/projects/${created.id}/tasks`)).json().data as { title: string; status: string }[]
    t.same(tasks.map((x) => [x.title, x.status]).sort(), [['Pick a domain name', 'todo'], ['Write the copy', 'done']])

    await page.reload()
    await page.getByLabel('Status of Write the copy').waitFor()
    t.equal(await page.getByLabel('Status of Write the copy').inputValue(), 'done', 'the status survives a reload')
    await page.screenshot({ path: SCREENSHOT })
  })

  await t.test('owners see the latest audit events on the page', async (t) => {
    const activity = page.locator('#activity')
    await activity.getByRole('heading', { name: 'Recent activity' }).waitFor()
    const rows = activity.locator('tbody tr')
    await rows.first().waitFor()
    t.equal(await rows.first().getAttribute('data-action'), 'task.updated', 'newest first: the status change')
    t.ok(await activity.locator('tr[data-action="project.created"]', { hasText: 'Launch website' }).first().isVisible(), 'the project\'s creation, with its name')
    t.ok(await activity.locator('tr[data-action="auth.login_failed"]').first().isVisible(), 'failed sign-ins are listed')
    t.ok(await rows.filter({ hasText: 'Alice' }).first().isVisible(), 'actors by name')
    t.equal(await activity.getByText('Globex Secret Plan').count(), 0, 'nothing of the other tenant')
    t.equal(await activity.getByText(PASSWORD).count(), 0, 'no password shown')
  })

  await t.test('another tenant host in the same browser: signed out there', async (t) => {
    const other = watch(await context.newPage())
    await other.goto(globexUrl)
    await other.getByLabel('Email').waitFor()
    t.ok(await other.getByRole('button', { name: 'Sign in' }).isVisible(), 'the sign-in form')
    t.equal(await other.getByRole('alert').isVisible(), false, 'no "session expired" message: there never was a session')
    t.same(await cookieNames(globexUrl), [], 'no acme cookie reaches globex.localhost')
    await other.close()
  })

  await t.test('a cross-site form POST is refused', async (t) => {
    const evil = createServer((request, response) => {
      const textPlain = request.url?.includes('text')
      response.writeHead(200, { 'content-type': 'text/html' })
      response.end(`<!doctype html><form method="POST" action="${acmeUrl}v1/projects"${textPlain ? ' enctype="text/plain"' : ''}>
        <input name='${textPlain ? '{"name":"Evil text","x":"' : 'name'}' value='${textPlain ? '"}' : 'Evil form'}'></form>
        <script>document.forms[0].submit()</script>`)
    })
    const evilPort = await listening(evil)
    t.teardown(() => new Promise((resolve) => { evil.close(resolve); evil.closeAllConnections() }))
    for (const kind of ['form', 'text']) {
      const attacker = await context.newPage()
      const answer = attacker.waitForResponse((r) => r.url() === `${acmeUrl}v1/projects` && r.request().method() === 'POST')
      // The evil page submits itself at once: its own navigation is cut short by the form's.
      await attacker.goto(`http://evil.localhost:${evilPort}/?${kind}`, { waitUntil: 'commit' }).catch(() => {})
      const status = (await answer).status()
      t.ok(status === 401 || status === 403 || status === 415, `${kind}: refused with ${status}`)
      await attacker.close()
    }
    // Cross-site, SameSite=Lax keeps the cookies away (401). Even with the cookies (a script of
    // this very origin), a POST without X-CSRF-Token is refused.
    const noHeader = await page.evaluate(`fetch('/v1/projects', { method: 'POST', credentials: 'include',
      headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'Evil same-origin' }) })
      .then(async (r) => [r.status, (await r.json()).error.code])`)
    t.same(noHeader, [403, 'CSRF_FAILED'], 'a cookie-authenticated POST without the CSRF header')
    const names = await projectNames()
    t.notOk(names.some((n) => n.startsWith('Evil')), 'no project was created')
  })

  await t.test('a missing or bad access token is refreshed without the user noticing', async (t) => {
    const refreshes: number[] = []
    page.on('response', (r) => { if (r.url().endsWith('/v1/auth/refresh')) refreshes.push(r.status()) })
    await context.clearCookies({ name: '__Host-access' })
    t.same(await cookieNames(acmeUrl), ['__Host-csrf', '__Host-device'])
    const firstRefresh = page.waitForResponse((r) => r.url().endsWith('/v1/auth/refresh'))
    let loaded = pageLoaded()
    await page.reload()
    await firstRefresh
    await page.getByRole('heading', { name: 'Launch website' }).waitFor()
    await loaded
    t.equal(await page.getByRole('alert').isVisible(), false, 'no message')
    t.same(refreshes, [200], 'one refresh, shared by the parallel requests')
    t.same(await cookieNames(acmeUrl), ['__Host-access', '__Host-csrf', '__Host-device'], 'a new access cookie')

    // An expired (here: garbage) token in the cookie: 401 as well, refreshed the same way.
    await context.addCookies([{ name: '__Host-access', value: 'expired.garbage.token', url: `https://acme.localhost:${port}/`, secure: true, httpOnly: true, sameSite: 'Lax' }])
    // Waited for as such: the heading can show before the test's response listener has run (a CI flake).
    const refreshed = page.waitForResponse((r) => r.url().endsWith('/v1/auth/refresh'))
    loaded = pageLoaded()
    await page.reload()
    t.equal((await refreshed).status(), 200, 'refreshed the same way')
    await page.getByRole('heading', { name: 'Acme Rocket' }).waitFor()
    await loaded
    t.equal(refreshes.length, 2, 'once')
    t.not((await context.cookies(acmeUrl)).find((c) => c.name === '__Host-access')?.value, 'expired.garbage.token')
  })

  await t.test('a 401 answered after the refresh finished is retried without a second refresh', async (t) => {
    // The page's three first requests all meet the missing access cookie; /v1/tenant's 401 is held
    // back until another request was retried after the refresh. A second refresh would rotate the
    // token again for nothing, and a reload cutting its answer off signs the user out (a CI flake).
    const refreshes: number[] = []
    const onResponse = (r: { url: () => string, status: () => number }) => { if (r.url().endsWith('/v1/auth/refresh')) refreshes.push(r.status()) }
    page.on('response', onResponse)
    await context.clearCookies({ name: '__Host-access' })
    const retried = page.waitForResponse((r) => r.url().endsWith('/v1/me') && r.status() === 200)
    let heldBack = 0
    await page.route('**/v1/tenant', async (route) => {
      // Fetched by Playwright from Node, which does not resolve *.localhost: loopback, with the Host.
      const request = route.request()
      const url = new URL(request.url())
      const response = await route.fetch({ url: `http://127.0.0.1:${port}${url.pathname}`, headers: { ...(await request.allHeaders()), host: url.host } })
      if (response.status() === 401) {
        heldBack++
        await retried
      }
      await route.fulfill({ response })
    })
    const loaded = pageLoaded()
    try {
      await page.reload()
      await page.getByRole('heading', { name: 'Acme Rocket' }).waitFor()
      await loaded
    } finally {
      await page.unroute('**/v1/tenant')
      page.off('response', onResponse)
    }
    t.equal(heldBack, 1, 'the tenant request met the missing cookie')
    t.same(refreshes, [200], 'one refresh')
    t.equal(await page.getByRole('alert').isVisible(), false, 'no message')
  })

  await t.test('a refresh the server cannot answer now (503) is no sign-out', async (t) => {
    // Alice's session row is held locked, so the refresh's rotation waits out the statement timeout
    // (DB_STATEMENT_TIMEOUT_MS, 5 s) and the API answers 503, as during a database restart. The
    // session is intact: the page says so in words and keeps the board, and once the database
    // answers again a reload carries on with the same session.
    const lock = await holdLock(t, ownerUrl, "SELECT 1 FROM sessions WHERE user_id = (SELECT id FROM users WHERE email = 'alice@acme.example') FOR UPDATE")
    await context.clearCookies({ name: '__Host-access' })
    const refresh = page.waitForResponse((r) => r.url().endsWith('/v1/auth/refresh'))
    await page.reload()
    t.equal((await refresh).status(), 503, 'the refresh could not be answered')
    await page.getByRole('alert').filter({ hasText: 'The service is busy or restarting. Please try again in a moment.' }).waitFor()
    t.equal(await page.getByRole('button', { name: 'Sign in' }).isVisible(), false, 'not sent to the sign-in form')
    await lock.release()

    const loaded = pageLoaded()
    await page.reload()
    await page.getByRole('heading', { name: 'Acme Rocket' }).waitFor()
    await loaded
    t.equal(await page.getByRole('alert').isVisible(), false, 'signed in, no message')
  })

  await t.test('sign out clears the session', async (t) => {
    const second = watch(await context.newPage())
    await second.goto(acmeUrl)
    await second.getByRole('heading', { name: 'Acme Inc.' }).waitFor()
    // The page's panels load after its heading shows: one still loading when the first tab signs out
    // would meet the 401 on its own and show the sign-in form before the user acts (a CI flake under
    // load). The test is about the user's next action, so the tab is first left idle.
    await second.waitForLoadState('networkidle')

    const logout = page.waitForResponse((r) => r.url().endsWith('/v1/auth/logout'))
    await page.getByRole('button', { name: 'Sign out' }).click()
    t.equal((await logout).status(), 204)
    await page.getByRole('button', { name: 'Sign in' }).waitFor()
    t.same(await cookieNames(`${acmeUrl}v1/auth/refresh`), ['__Host-device'], 'the session\'s cookies gone; the device cookie stays (it signs nobody in)')
    await page.reload()
    await page.getByRole('button', { name: 'Sign in' }).waitFor()
    t.equal(await page.getByText('Acme Rocket').count(), 0)

    // The other tab acts after the sign-out: it is told, in words, and gets the sign-in form.
    await second.getByPlaceholder('Project name').fill('Too late')
    await second.getByRole('button', { name: 'Add project' }).click()
    await second.getByRole('alert').filter({ hasText: 'Your session has expired. Please sign in again.' }).waitFor()
    t.ok(await second.getByRole('button', { name: 'Sign in' }).isVisible())
    t.notOk((await projectNames()).includes('Too late'))
  })

  await t.test('platform host: no page', async (t) => {
    t.equal((await app.inject({ url: '/', headers: { host: 'localhost' } })).statusCode, 404)
    t.equal((await app.inject({ url: '/app.js', headers: { host: 'localhost' } })).statusCode, 404)
    const script = await app.inject({ url: '/app.js', headers: { host: 'acme.localhost' } })
    t.match(script.headers['content-type'], /^text\/javascript/)
  })

  t.same(cspViolations, [], 'no CSP violation or script error in any page')
})

t.test('development cookie names (no __Host- prefix, not Secure) work the same', async (t) => {
  const { app, ownerUrl } = await build(t, { env: { NODE_ENV: 'development' } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `http://acme.localhost:${(app.server.address() as AddressInfo).port}/`
  const acmeId = await insertTenant(ownerUrl, 'acme')
  await createUser(ownerUrl, acmeId, { email: 'alice@acme.example', password: PASSWORD, role: 'owner', name: 'Alice' })
  const context = await launch(t)
  const page = context.pages()[0] ?? (await context.newPage())
  await page.goto(url)
  await page.getByLabel('Email').fill('alice@acme.example')
  await page.getByLabel('Password').fill(PASSWORD)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByRole('heading', { name: 'Acme Inc.' }).waitFor()
  t.same((await context.cookies(url)).map((c) => c.name).sort(), ['access', 'csrf', 'device'])
  await context.clearCookies({ name: 'access' })
  await page.getByPlaceholder('Project name').fill('Made in development')
  await page.getByRole('button', { name: 'Add project' }).click() // 401, refresh, retry with the CSRF header
  await page.getByRole('heading', { name: 'Made in development' }).waitFor()
  await page.reload()
  await page.getByRole('heading', { name: 'Made in development' }).waitFor()
  t.equal(await page.getByRole('alert').isVisible(), false)
})
