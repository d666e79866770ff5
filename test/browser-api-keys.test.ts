// The "API keys" panel of the tenant web page (public/), in a real Chromium against the real app:
// an owner creates a key, sees and copies it once, lists and revokes it; a member never sees the
// panel. Fails (never skips) when Chromium cannot start, like test/browser.test.ts.
import type { BrowserContext } from 'playwright-core'
import t from 'tap'
import { API_KEY_PATTERN } from '../src/auth/api-keys.ts'
import { acmeOnLoopback, BROWSER_PASSWORD as PASSWORD, launchChromium } from './browser-helper.ts'
import { build } from './helper.ts'

type Tap = Parameters<typeof build>[0]

const launch = (t: Tap): Promise<BrowserContext> => launchChromium(t, { width: 1200, height: 900 })

t.test('the API keys panel in Chromium: create, copy once, list, revoke', async (t) => {
  const { app, ownerUrl } = await build(t)
  const { acmeUrl } = await acmeOnLoopback(app, ownerUrl)
  const withKey = (key: string) => app.inject({ url: '/v1/projects', headers: { host: 'acme.localhost', authorization: `Bearer ${key}` } })

  const context = await launch(t)
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: acmeUrl.slice(0, -1) })
  const page = context.pages()[0] ?? (await context.newPage())
  const errors: string[] = []
  page.on('pageerror', (error) => errors.push(error.message))
  page.on('console', (message) => { if (/Content Security Policy|Refused to/i.test(message.text())) errors.push(message.text()) })

  const signIn = async (email: string) => {
    await page.getByLabel('Email').fill(email)
    await page.getByLabel('Password').fill(PASSWORD)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.getByRole('heading', { name: 'Acme Inc.' }).waitFor()
  }
  await page.goto(acmeUrl)
  await signIn('alice@acme.example')

  const panel = page.locator('#api-keys')
  await panel.getByRole('heading', { name: 'API keys' }).waitFor()
  // The panel shows before its list has loaded: waited for (false after 10 s if it never says so).
  t.ok(await panel.getByText('No API keys yet.').waitFor({ timeout: 10_000 }).then(() => true, () => false), 'empty at first')
  await panel.getByLabel('Key name').fill('CI deploys')
  await panel.getByLabel('tasks:write').check()
  await panel.getByRole('button', { name: 'Create key' }).click()
  const shown = panel.locator('#new-key-value')
  await shown.waitFor()
  const key = (await shown.textContent())!.trim()
  t.match(key, API_KEY_PATTERN, 'the new key is shown')
  t.ok(await panel.getByText('Copy this key now: it will not be shown again.').isVisible())
  await panel.getByRole('button', { name: 'Copy key' }).click()
  await panel.getByRole('button', { name: 'Copied' }).waitFor()
  t.equal(await page.evaluate('navigator.clipboard.readText()'), key, 'copied to the clipboard')
  t.equal((await withKey(key)).statusCode, 200, 'the key works against the API')

  const row = panel.locator('#api-key-list tr', { hasText: 'CI deploys' })
  await row.waitFor()
  t.ok(await row.getByText(`${key.slice(0, 20)}…`).isVisible(), 'listed by its prefix')
  t.ok(await row.getByText('projects:read, tasks:write').isVisible(), 'with its scopes')
  t.ok(await row.getByText('active').isVisible())

  await panel.getByRole('button', { name: 'Done' }).click()
  t.notOk((await page.content()).includes(key.slice(21)), 'gone from the page after Done')
  await page.reload()
  await panel.locator('#api-key-list tr', { hasText: 'CI deploys' }).waitFor()
  t.notOk((await page.content()).includes(key.slice(21)), 'never shown again after a reload')
  t.equal(await page.evaluate('localStorage.length + sessionStorage.length'), 0, 'never stored in the browser')

  await panel.getByRole('button', { name: 'Revoke CI deploys' }).click()
  await panel.locator('#api-key-list tr', { hasText: 'CI deploys' }).getByText('revoked').waitFor()
  t.equal(await panel.getByRole('button', { name: 'Revoke CI deploys' }).count(), 0, 'no revoke button on a revoked key')
  t.equal((await withKey(key)).statusCode, 401, 'the revoked key stops working at once')

  await page.locator('#sign-out').click()
  await page.getByRole('heading', { name: 'Sign in' }).first().waitFor()
  await signIn('carol@acme.example')
  t.equal(await panel.isVisible(), false, 'a member does not see the panel')
  t.same(errors, [], 'no script error or CSP violation')
})
