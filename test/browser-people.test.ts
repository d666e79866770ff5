// The people screens in a real Chromium (Debian's, driven by playwright-core) against the real app
// on loopback, with links read from a real SMTP server: the admin's invite panel, "Accept
// invitation", "Forgot password?" and "Reset password"; and two tabs of one session whose access
// tokens expire together. Fails (never skips) when Chromium cannot start.
import type { BrowserContext, Page } from 'playwright-core'
import t from 'tap'
import { acmeOnLoopback, BROWSER_PASSWORD as PASSWORD, launchChromium } from './browser-helper.ts'
import { adminQuery, build } from './helper.ts'
import { startSmtp, type ReceivedMail } from './mail-helper.ts'

type Tap = Parameters<typeof build>[0]
const launch = (t: Tap): Promise<BrowserContext> => launchChromium(t)

t.test('invitations, password reset and two tabs in Chromium', async (t) => {
  const smtp = await startSmtp(t)
  const { app, ownerUrl } = await build(t, { env: { SMTP_URL: smtp.url, JOB_POLL_INTERVAL_S: '0.5' } })
  const { port, acmeUrl } = await acmeOnLoopback(app, ownerUrl)
  // The emailed link is https on the tenant's host; the test server is plain http on a free port.
  const local = (mail: ReceivedMail) => {
    const link = new URL(mail.link!)
    t.equal(link.hostname, 'acme.localhost', 'the link is on the tenant host')
    return `http://acme.localhost:${port}${link.pathname}${link.search}`
  }
  const context = await launch(t)
  const page = await context.newPage()

  const signIn = async (p: Page, email: string, password: string) => {
    await p.getByLabel('Email').fill(email)
    await p.getByLabel('Password').fill(password)
    await p.getByRole('button', { name: 'Sign in' }).click()
  }

  await t.test('an owner invites from the panel, the invited person accepts in another browser', async (t) => {
    await page.goto(acmeUrl)
    await signIn(page, 'alice@acme.example', PASSWORD)
    await page.getByRole('heading', { name: 'Invite people' }).waitFor()
    await page.getByLabel('Address to invite').fill('newbie@example.com')
    await page.getByLabel('Role of the invited person').selectOption('admin')
    await page.getByRole('button', { name: 'Invite', exact: true }).click()
    await page.getByRole('alert').filter({ hasText: 'Invitation sent to newbie@example.com.' }).waitFor()
    await page.getByText('newbie@example.com (admin, pending)').waitFor()
    const mail = await smtp.waitFor('newbie@example.com')

    const invitee = await (await launch(t)).newPage() // a fresh browser: nobody signed in
    await invitee.goto(local(mail))
    await invitee.getByRole('heading', { name: 'Accept invitation', level: 2 }).waitFor()
    t.equal(new URL(invitee.url()).search, '', 'the token is taken out of the address bar')
    await invitee.getByLabel('Your name').fill('Newbie')
    await invitee.getByLabel('Choose a password').fill('my very own passphrase')
    await invitee.getByRole('button', { name: 'Join' }).click()
    await invitee.getByRole('heading', { name: 'Acme Inc.' }).waitFor()
    t.ok(await invitee.getByText('Newbie (newbie@example.com, admin)').isVisible(), 'signed in as the new admin')
    // Opening the used link again explains it.
    await invitee.goto(local(mail))
    await invitee.getByLabel('Your name').fill('Again')
    await invitee.getByLabel('Choose a password').fill('my very own passphrase')
    await invitee.getByRole('button', { name: 'Join' }).click()
    await invitee.getByRole('alert').filter({ hasText: 'This link is invalid, already used or expired.' }).waitFor()
  })

  await t.test('revoking from the panel kills the link', async (t) => {
    await page.getByLabel('Address to invite').fill('revoked@example.com')
    await page.getByRole('button', { name: 'Invite', exact: true }).click()
    await page.getByText('revoked@example.com (member, pending)').waitFor()
    const mail = await smtp.waitFor('revoked@example.com')
    await page.getByRole('button', { name: 'Revoke the invitation of revoked@example.com' }).click()
    await page.getByRole('alert').filter({ hasText: 'Invitation of revoked@example.com revoked.' }).waitFor()
    t.equal(await page.getByText('revoked@example.com (member, pending)').count(), 0)
    const other = await context.newPage()
    await other.goto(local(mail))
    await other.getByLabel('Your name').fill('Nope')
    await other.getByLabel('Choose a password').fill('my very own passphrase')
    await other.getByRole('button', { name: 'Join' }).click()
    await other.getByRole('alert').filter({ hasText: 'This link is invalid, already used or expired.' }).waitFor()
    await other.close()
  })

  await t.test('a member sees no invite panel', async (t) => {
    const memberPage = await (await launch(t)).newPage()
    await memberPage.goto(acmeUrl)
    await signIn(memberPage, 'carol@acme.example', PASSWORD)
    await memberPage.getByRole('heading', { name: 'Acme Inc.' }).waitFor()
    t.equal(await memberPage.getByRole('heading', { name: 'Invite people' }).count(), 0)
  })

  await t.test('forgot password → email → reset password → sign in with the new one', async (t) => {
    const browser = await launch(t)
    const p = await browser.newPage()
    await p.goto(acmeUrl)
    await p.getByLabel('Email').fill('carol@acme.example')
    await p.getByRole('button', { name: 'Forgot password?' }).click()
    await p.getByRole('heading', { name: 'Forgot password?', level: 2 }).waitFor()
    t.equal(await p.locator('#people-screen').getByLabel('Email').inputValue(), 'carol@acme.example', 'the address carries over')
    await p.getByRole('button', { name: 'Email me a reset link' }).click()
    await p.getByRole('alert').filter({ hasText: 'If an account exists for carol@acme.example' }).waitFor()
    const mail = await smtp.waitFor('carol@acme.example')
    t.equal(mail.subject, 'Reset your password on acme.localhost')
    await p.goto(local(mail))
    await p.getByRole('heading', { name: 'Reset password', level: 2 }).waitFor()
    await p.getByLabel('New password').fill('short')
    await p.getByRole('button', { name: 'Set the new password' }).click()
    await p.getByRole('alert').filter({ hasText: 'Please check what you entered' }).waitFor()
    await p.getByLabel('New password').fill('carol picked a new passphrase')
    await p.getByRole('button', { name: 'Set the new password' }).click()
    await p.getByRole('alert').filter({ hasText: 'Your password has been changed.' }).waitFor()
    await signIn(p, 'carol@acme.example', 'carol picked a new passphrase')
    await p.getByRole('heading', { name: 'Acme Inc.' }).waitFor()
    t.pass('signed in with the new password')
  })

  await t.test('two tabs, one session: access tokens expiring together do not sign the user out', async (t) => {
    const tabA = page // Alice, signed in above
    const tabB = await context.newPage()
    // The page's last request: the invitations panel loads after the heading shows. Each round
    // starts once both tabs got it, so no request of a previous load is still in flight when the
    // cookie goes (a reload aborting a refresh in flight is another case: README "Authentication").
    const loaded = (tab: Page) => tab.waitForResponse((r) => r.url().includes('/v1/invitations'))
    const tabBLoaded = loaded(tabB)
    await tabB.goto(acmeUrl)
    await tabB.getByRole('heading', { name: 'Acme Inc.' }).waitFor()
    await tabBLoaded
    const sessions = async () => (await adminQuery(ownerUrl, "SELECT count(*)::int AS n FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.email = 'alice@acme.example' AND s.revoked_at IS NULL")).rows[0]!.n
    t.equal(await sessions(), 1)
    for (let round = 0; round < 3; round++) {
      // Both tabs' access tokens "expire" at once: the cookie is gone for both.
      const access = (await context.cookies(acmeUrl)).find((c) => c.name.endsWith('access'))!
      await context.clearCookies({ name: access.name })
      const refreshes: number[] = []
      const onResponse = (r: { url(): string; status(): number }) => { if (r.url().endsWith('/v1/auth/refresh')) refreshes.push(r.status()) }
      tabA.on('response', onResponse)
      tabB.on('response', onResponse)
      const bothLoaded = Promise.all([loaded(tabA), loaded(tabB)])
      await Promise.all([tabA.reload(), tabB.reload()])
      await Promise.all([tabA.getByRole('heading', { name: 'Acme Inc.' }).waitFor(), tabB.getByRole('heading', { name: 'Acme Inc.' }).waitFor()])
      await bothLoaded
      tabA.off('response', onResponse)
      tabB.off('response', onResponse)
      // Usually both tabs refresh, one after the other (the Web Lock); a tab that loads after the other
      // tab's refresh already has the new cookie and needs none. Either way no refresh is refused (a
      // reused refresh token would be a 401 and revoke the session).
      t.ok(refreshes.length >= 1 && refreshes.every((s) => s === 200), `round ${round}: every refresh succeeded, one after the other (${refreshes.join(',')})`)
      t.equal(await sessions(), 1, `round ${round}: the session is still alive`)
    }
    await tabA.getByPlaceholder('Project name').fill('Still signed in')
    await tabA.getByRole('button', { name: 'Add project' }).click()
    await tabA.getByRole('heading', { name: 'Still signed in' }).waitFor()
    await tabB.reload()
    await tabB.getByRole('heading', { name: 'Still signed in' }).waitFor()
    t.pass('both tabs keep working')
  })
})
