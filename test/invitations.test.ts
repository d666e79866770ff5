// Invitations through the HTTP API, with the email read back from a real SMTP server.
import t from 'tap'
import { createUser, signIn } from './auth-helper.ts'
import { adminQuery, build, failAtCommit, holdLock, setReadOnly } from './helper.ts'
import { buildWithMail, NEW_PASSWORD, PASSWORD, tokenOf } from './mail-helper.ts'

/**
 * The routes' `UPDATE … invitations` statements (holdLock's untilWaiting filter). The invitation's
 * email job marks the row sent (`email_sent_at`) and may wait on the same lock: it does not count.
 */
const ROUTE_UPDATES = { like: 'UPDATE%invitations%', notLike: '%email_sent_at%' }
/** Every route's statement waiting on a lock: on a row, or on the tenant's audit chain behind it. */
const ROUTE_WAITS = { notLike: '%email_sent_at%' }

async function setup (t: Parameters<typeof build>[0], env: Record<string, string> = {}) {
  const built = await buildWithMail(t, env)
  const { smtp, acmeId, globexId } = built
  await createUser(built.ownerUrl, acmeId, { email: 'owner@acme.example', password: PASSWORD, role: 'owner', name: 'Olive' })
  await createUser(built.ownerUrl, acmeId, { email: 'admin@acme.example', password: PASSWORD, role: 'admin', name: 'Adam' })
  await createUser(built.ownerUrl, acmeId, { email: 'member@acme.example', password: PASSWORD, role: 'member', name: 'Mia' })
  await createUser(built.ownerUrl, globexId, { email: 'owner@globex.example', password: PASSWORD, role: 'owner', name: 'Gus' })
  const owner = await signIn(built.app, 'acme.localhost', 'owner@acme.example', PASSWORD)
  const admin = await signIn(built.app, 'acme.localhost', 'admin@acme.example', PASSWORD)
  const member = await signIn(built.app, 'acme.localhost', 'member@acme.example', PASSWORD)
  const globexOwner = await signIn(built.app, 'globex.localhost', 'owner@globex.example', PASSWORD)
  const as = (who: { accessToken: string } | null, method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object, host = 'acme.localhost') =>
    built.app.inject({ method, url, payload, headers: { host, ...(who ? { authorization: `Bearer ${who.accessToken}` } : {}) } })
  return { ...built, smtp, acmeId, globexId, owner, admin, member, globexOwner, as }
}

t.test('invite → email on the tenant host → accept → signed in', async (t) => {
  const { as, owner, smtp, app } = await setup(t)
  const res = await as(owner, 'POST', '/v1/invitations', { email: 'New.Person@Example.com', role: 'admin' })
  t.equal(res.statusCode, 201, res.body)
  const invitation = res.json()
  t.equal(invitation.email, 'new.person@example.com')
  t.equal(invitation.role, 'admin')
  t.ok(Math.abs(new Date(invitation.expiresAt).getTime() - Date.now() - 7 * 86400_000) < 60_000, 'expires in 7 days')
  t.same(Object.keys(invitation).sort(), ['createdAt', 'email', 'expiresAt', 'id', 'role'])

  const mail = await smtp.waitFor('new.person@example.com')
  t.equal(mail.subject, 'You are invited to join acme.localhost', 'the tenant named by its host, the link\'s')
  t.match(mail.text, /^You have been invited to join acme\.localhost as an admin\./)
  t.match(mail.html, /join acme\.localhost as an admin/)
  t.notMatch(`${mail.subject}${mail.text}${mail.html}`, /Acme Inc\./, 'not by its display name (review 88)')
  const link = new URL(mail.link!)
  t.equal(link.origin, 'https://acme.localhost', 'https, on the tenant\'s own host')
  t.equal(link.pathname, '/accept-invitation')
  const token = tokenOf(mail)
  t.match(token, /^[A-Za-z0-9_-]{43}$/)
  // The only secret in the message is the one-time token: no other long random string, no JWT.
  t.same([...mail.text.matchAll(/[A-Za-z0-9_-]{32,}/g)].map((m) => m[0]), [token])
  t.notMatch(mail.text + mail.html, /eyJ|\$2[aby]\$/)

  const list = await as(owner, 'GET', '/v1/invitations')
  t.equal(list.statusCode, 200)
  t.same(list.json().data.map((i: { id: string }) => i.id), [invitation.id])

  const accepted = await as(null, 'POST', '/v1/invitations/accept', { token, name: 'New Person', password: NEW_PASSWORD })
  t.equal(accepted.statusCode, 201, accepted.body)
  const body = accepted.json()
  t.equal(body.tokenType, 'Bearer')
  t.equal(body.user.email, 'new.person@example.com')
  t.equal(body.user.role, 'admin')
  t.ok(accepted.headers['set-cookie'], 'cookies set as on login')
  t.ok([accepted.headers['set-cookie']].flat().some((cookie) => cookie?.startsWith('__Host-device=')), 'the device cookie too: strangers spending the new email\'s failed logins do not lock this browser out')
  const me = await app.inject({ method: 'GET', url: '/v1/me', headers: { host: 'acme.localhost', authorization: `Bearer ${body.accessToken}` } })
  t.equal(me.json().name, 'New Person')
  // The new password works for login.
  await signIn(app, 'acme.localhost', 'new.person@example.com', NEW_PASSWORD)
  // Used: the same link is a 400, and the invitation is no longer pending.
  const again = await as(null, 'POST', '/v1/invitations/accept', { token, name: 'Again', password: NEW_PASSWORD })
  t.equal(again.statusCode, 400)
  t.equal(again.json().error.code, 'BAD_REQUEST')
  t.same((await as(owner, 'GET', '/v1/invitations')).json().data, [])
})

// Review 88: anyone can sign a tenant up and name it; the name went into the subject and the first
// sentence of mail sent from the service to any address invited, an attacker's words and link first.
t.test("a tenant's name, whatever it says, is not in its invitation emails", async (t) => {
  const { app, as, owner, smtp } = await setup(t)
  const name = 'Your mailbox is full. Sign in at https://evil.example/login to keep it'
  const renamed = await app.inject({ method: 'PATCH', url: '/v1/tenant', headers: { host: 'acme.localhost', authorization: `Bearer ${owner.accessToken}` }, payload: { name } })
  t.equal(renamed.statusCode, 200, renamed.body)
  t.equal((await as(owner, 'POST', '/v1/invitations', { email: 'target@example.com', role: 'member' })).statusCode, 201)
  const mail = await smtp.waitFor('target@example.com')
  for (const [part, text] of [['subject', mail.subject], ['text', mail.text], ['html', mail.html]] as const) {
    t.notMatch(text, /evil\.example|mailbox/, `${part}: none of the name's words`)
    t.match(text, /acme\.localhost/, `${part}: the tenant named by its host`)
  }
  t.equal(new URL(mail.link!).origin, 'https://acme.localhost', 'the one link is ours')
})

t.test('who may invite, and conflicts', async (t) => {
  const { as, owner, admin, member } = await setup(t)
  t.equal((await as(member, 'POST', '/v1/invitations', { email: 'x@example.com', role: 'member' })).statusCode, 403)
  t.equal((await as(member, 'GET', '/v1/invitations')).statusCode, 403)
  t.equal((await as(admin, 'POST', '/v1/invitations', { email: 'x@example.com', role: 'owner' })).statusCode, 403, 'only an owner invites an owner')
  t.equal((await as(owner, 'POST', '/v1/invitations', { email: 'x@example.com', role: 'owner' })).statusCode, 201)
  t.equal((await as(admin, 'POST', '/v1/invitations', { email: 'y@example.com', role: 'member' })).statusCode, 201)
  const taken = await as(admin, 'POST', '/v1/invitations', { email: 'MEMBER@acme.example', role: 'member' })
  t.equal(taken.statusCode, 409)
  t.equal(taken.json().error.code, 'CONFLICT')
  t.equal((await as(null, 'POST', '/v1/invitations', { email: 'z@example.com', role: 'member' })).statusCode, 401)
  const bad = await as(owner, 'POST', '/v1/invitations', { email: 'not-an-email', role: 'member' })
  t.equal(bad.statusCode, 400)
  t.equal((await as(owner, 'POST', '/v1/invitations', { email: 'a@example.com', role: 'root' })).statusCode, 400)
  t.equal((await as(owner, 'POST', '/v1/invitations', { email: 'a@example.com', role: 'member', extra: 1 })).statusCode, 400)
})

// Each invitation is an email to an address of the inviter's choosing: a tenant may send
// INVITATIONS_PER_TENANT_MAX per window. Review 63: a 409 (the address is a user already) spent it too.
t.test('the tenant\'s invitation budget counts invitations sent, not refusals; a 429 changes nothing', async (t) => {
  const { as, owner, admin } = await setup(t, { INVITATIONS_PER_TENANT_MAX: '2' })
  const pending = async () => (await as(owner, 'GET', '/v1/invitations')).json().data.map((i: { email: string, role: string }) => `${i.email} as ${i.role}`).sort()
  for (let i = 0; i < 3; i++) t.equal((await as(admin, 'POST', '/v1/invitations', { email: 'member@acme.example', role: 'member' })).statusCode, 409, 'already a user')
  t.equal((await as(owner, 'POST', '/v1/invitations', { email: 'a@example.com', role: 'owner' })).statusCode, 201, 'the first of two, after three refusals')
  t.equal((await as(admin, 'POST', '/v1/invitations', { email: 'a@example.com', role: 'member' })).statusCode, 403, 'an admin cannot replace an owner\'s invitation')
  t.equal((await as(owner, 'POST', '/v1/invitations', { email: 'b@example.com', role: 'member' })).statusCode, 201, 'the second')
  const over = await as(owner, 'POST', '/v1/invitations', { email: 'a@example.com', role: 'admin' })
  t.equal(over.statusCode, 429, 'the third is over the budget')
  t.equal(over.json().error.code, 'RATE_LIMITED')
  t.ok(Number(over.headers['retry-after']) > 0, 'Retry-After')
  t.same(await pending(), ['a@example.com as owner', 'b@example.com as member'], 'the refused replacement revoked and created nothing')
})

// Review 64 (M1), as for the reset emails: invitations the database refused (an outage, a read-only
// standby: 503) sent nothing, so they spend none of the tenant's budget.
t.test('invitations the database refused spend none of the tenant\'s budget', async (t) => {
  const { as, owner, ownerUrl } = await setup(t, { INVITATIONS_PER_TENANT_MAX: '2', LOG_LEVEL: 'fatal' })
  await setReadOnly(ownerUrl, true)
  t.teardown(() => setReadOnly(ownerUrl, false))
  for (let i = 0; i < 3; i++) t.equal((await as(owner, 'POST', '/v1/invitations', { email: `outage${i}@example.com`, role: 'member' })).statusCode, 503, 'refused while the database takes no writes')
  await setReadOnly(ownerUrl, false)
  // A pooled connection opened while read-only fails once more (25006 replaces it): a 503 too.
  const answers: number[] = []
  for (let i = 0; answers.filter((status) => status === 201).length < 2 && i < 10; i++) answers.push((await as(owner, 'POST', '/v1/invitations', { email: `after${i}@example.com`, role: 'member' })).statusCode)
  t.comment(`invitations once writable again: ${answers.join(', ')}`)
  t.equal(answers.filter((status) => status === 201).length, 2, 'the whole budget of two')
  t.equal((await as(owner, 'POST', '/v1/invitations', { email: 'third@example.com', role: 'member' })).statusCode, 429, 'and no more')
})

// Review 66: an error at COMMIT may hide a commit (its acknowledgement lost): the count stays.
t.test('an invitation that failed at COMMIT keeps its count (it may have committed)', async (t) => {
  const { as, owner, ownerUrl } = await setup(t, { INVITATIONS_PER_TENANT_MAX: '2', LOG_LEVEL: 'fatal' })
  const undo = await failAtCommit(ownerUrl, 'invitation.created')
  for (let i = 0; i < 2; i++) t.equal((await as(owner, 'POST', '/v1/invitations', { email: `commit${i}@example.com`, role: 'member' })).statusCode, 500, 'failed at COMMIT')
  await undo()
  t.equal((await as(owner, 'POST', '/v1/invitations', { email: 'next@example.com', role: 'member' })).statusCode, 429, 'the budget is spent')
})

// A new invitation replaces the pending one for its address (review: an admin re-inviting an
// address the owner had invited as an owner revoked that invitation, which DELETE refuses them,
// and no event said so).
t.test('replacing a pending invitation is a revocation: owners\' only by an owner, with its event', async (t) => {
  const { as, owner, admin, ownerUrl } = await setup(t)
  const events = async (action: string) => (await adminQuery<{ target_id: string; data: { replacedBy?: string } }>(ownerUrl, 'SELECT target_id, data FROM audit_events WHERE action = $1 ORDER BY seq', [action])).rows
  const pendingIds = async () => (await as(owner, 'GET', '/v1/invitations')).json().data.map((i: { id: string }) => i.id).sort()

  const forOwner = await as(owner, 'POST', '/v1/invitations', { email: 'boss@example.com', role: 'owner' })
  t.equal(forOwner.statusCode, 201)
  const refused = await as(admin, 'POST', '/v1/invitations', { email: 'Boss@example.com', role: 'member' })
  t.equal(refused.statusCode, 403, 'an admin cannot replace an owner\'s invitation')
  t.equal(refused.json().error.code, 'FORBIDDEN')
  t.same(await pendingIds(), [forOwner.json().id], 'the owner\'s invitation is still pending, nothing else was created')
  t.same(await events('invitation.revoked'), [], 'and nothing was revoked')

  const byOwner = await as(owner, 'POST', '/v1/invitations', { email: 'boss@example.com', role: 'admin' })
  t.equal(byOwner.statusCode, 201, 'an owner may replace it')
  t.same(await pendingIds(), [byOwner.json().id], 'only the newest invitation is pending')
  t.same(await events('invitation.revoked'), [{ target_id: forOwner.json().id, data: { replacedBy: byOwner.json().id } }], 'the replaced invitation\'s revocation is recorded')

  const byAdmin = await as(admin, 'POST', '/v1/invitations', { email: 'boss@example.com', role: 'member' })
  t.equal(byAdmin.statusCode, 201, 'an admin may replace an admin\'s invitation')
  t.equal((await events('invitation.revoked')).length, 2)
})

// Review, round ten: a user created for an invited address left the invitation listed as pending,
// although accepting it could only answer 409.
t.test('creating a user for an invited address revokes the pending invitation, with its event', async (t) => {
  const { as, owner, admin, ownerUrl, smtp } = await setup(t)
  const invited = await as(owner, 'POST', '/v1/invitations', { email: 'Later@Example.com', role: 'member' })
  t.equal(invited.statusCode, 201)
  const token = tokenOf(await smtp.waitFor('later@example.com'))
  const other = await as(owner, 'POST', '/v1/invitations', { email: 'other@example.com', role: 'member' })
  const created = await as(admin, 'POST', '/v1/users', { email: 'later@example.com', name: 'Later', role: 'member', password: PASSWORD })
  t.equal(created.statusCode, 201, created.body)
  t.same((await as(owner, 'GET', '/v1/invitations')).json().data.map((i: { id: string }) => i.id), [other.json().id], 'no longer listed as pending; the other one is')
  const { rows } = await adminQuery(ownerUrl, "SELECT action, target_id, data FROM audit_events WHERE action IN ('invitation.revoked', 'user.created') ORDER BY seq")
  t.same(rows.map((r) => [r.action, r.target_id]), [['invitation.revoked', invited.json().id], ['user.created', created.json().id]])
  t.same(rows[0]?.data, { reason: 'user_created', userId: created.json().id })
  const accept = await as(null, 'POST', '/v1/invitations/accept', { token, name: 'Later', password: NEW_PASSWORD })
  t.same([accept.statusCode, accept.json().error.code], [400, 'BAD_REQUEST'], 'its link now answers as every unusable link')
})

t.test("an admin cannot create a user for an address an owner invited as owner: it would revoke the owner's invitation", async (t) => {
  const { as, owner, admin, ownerUrl } = await setup(t)
  const invited = await as(owner, 'POST', '/v1/invitations', { email: 'chief@example.com', role: 'owner' })
  t.equal(invited.statusCode, 201)
  const refused = await as(admin, 'POST', '/v1/users', { email: 'Chief@example.com', name: 'Chief', role: 'member', password: PASSWORD })
  t.equal(refused.statusCode, 403, 'refused')
  t.equal(refused.json().error?.code, 'FORBIDDEN')
  t.same((await as(owner, 'GET', '/v1/invitations')).json().data.map((i: { id: string }) => i.id), [invited.json().id], 'the invitation is still pending')
  const { rows } = await adminQuery(ownerUrl, "SELECT count(*)::int AS n FROM users WHERE email = 'chief@example.com'")
  t.equal(rows[0]!.n, 0, 'and no user was created')
  const byOwner = await as(owner, 'POST', '/v1/users', { email: 'chief@example.com', name: 'Chief', role: 'member', password: PASSWORD })
  t.equal(byOwner.statusCode, 201, 'an owner may')
  t.same((await as(owner, 'GET', '/v1/invitations')).json().data, [], 'which revokes it')
  // An expired owner's invitation (listed to nobody, working for nobody) does not stop an admin.
  t.equal((await as(owner, 'POST', '/v1/invitations', { email: 'former@example.com', role: 'owner' })).statusCode, 201)
  await adminQuery(ownerUrl, "UPDATE invitations SET expires_at = now() - interval '1 second' WHERE email = 'former@example.com'")
  const afterExpiry = await as(admin, 'POST', '/v1/users', { email: 'former@example.com', name: 'Former', role: 'member', password: PASSWORD })
  t.equal(afterExpiry.statusCode, 201, `an admin may once it expired (${afterExpiry.body.slice(0, 80)})`)
})

// DELETE checks that the invitation is not accepted, then revokes it; an accept committing in
// between must make the DELETE a 409, not a 204 for a link that was used.
t.test('revoking an invitation whose accept commits meanwhile is a 409', async (t) => {
  const { as, owner, ownerUrl } = await setup(t)
  const invited = await as(owner, 'POST', '/v1/invitations', { email: 'racer@example.com', role: 'member' })
  const id = invited.json().id as string
  const accept = await holdLock(t, ownerUrl, 'UPDATE invitations SET accepted_at = now() WHERE id = $1', [id]) // the accept, not yet committed
  const revoking = as(owner, 'DELETE', `/v1/invitations/${id}`)
  t.equal(await accept.untilWaiting(1, ROUTE_UPDATES), 1, 'the revocation passed its check and waits on the row')
  await accept.release()
  const res = await revoking
  t.equal(res.statusCode, 409, 'a conflict, not a 204')
  t.equal(res.statusCode === 409 && res.json().error.code, 'CONFLICT')
  const { rows } = await adminQuery(ownerUrl, "SELECT count(*)::int AS n FROM audit_events WHERE action = 'invitation.revoked'")
  t.equal(rows[0]!.n, 0, 'and no revocation was recorded')
})

// Review 88: the re-invitation checked for the user before it waited on the row of the invitation
// it replaces; the accept committed meanwhile, and the re-invitation answered 201, listed a pending
// invitation for a user who now exists and mailed it. Both now take the tenant's audit chain lock
// first: the re-invitation waits for the accept's commit, then finds the user.
t.test('re-inviting an address whose invitation is being accepted meanwhile is a 409 that changes nothing', async (t) => {
  const { as, owner, smtp, ownerUrl, acmeId } = await setup(t)
  const first = await as(owner, 'POST', '/v1/invitations', { email: 'x@example.com', role: 'admin' })
  t.equal(first.statusCode, 201)
  const token = tokenOf(await smtp.waitFor('x@example.com'))
  const lock = await holdLock(t, ownerUrl, 'SELECT 1 FROM invitations WHERE id = $1 FOR UPDATE', [first.json().id])
  const accepting = as(null, 'POST', '/v1/invitations/accept', { token, name: 'X', password: NEW_PASSWORD })
  t.equal(await lock.untilWaiting(1, ROUTE_UPDATES), 1, 'the accept waits on the row')
  const reinviting = as(owner, 'POST', '/v1/invitations', { email: 'x@example.com', role: 'member' })
  t.equal(await lock.untilWaiting(2, ROUTE_WAITS), 2, 'the re-invitation waits behind it, on the audit chain')
  await lock.release()
  const [accepted, reinvited] = await Promise.all([accepting, reinviting])
  t.equal(accepted.statusCode, 201, 'the accept, first in line, made the user')
  t.equal(reinvited.statusCode, 409, reinvited.body)
  t.equal(reinvited.json().error.message, 'A user with this email already exists')
  t.same((await adminQuery(ownerUrl, "SELECT role FROM users WHERE tenant_id = $1 AND email = 'x@example.com'", [acmeId])).rows, [{ role: 'admin' }])
  t.same((await as(owner, 'GET', '/v1/invitations')).json().data, [], 'no invitation left pending')
  const { rows } = await adminQuery(ownerUrl, "SELECT count(*)::int AS n FROM audit_events WHERE action IN ('invitation.revoked', 'invitation.created') AND data->>'role' = 'member'")
  t.equal(rows[0]!.n, 0, 'nothing of the re-invitation recorded')
})

// Review 88: the revocation locked the invitation's row before the tenant's audit chain, and
// POST /v1/users (which revokes the address's invitations) the chain first: a deadlock, found after
// 1 s, and a 409 "A concurrent change conflicted" for the loser.
t.test('revoking an invitation while a user is created for its address: both go through, one after the other', async (t) => {
  const { as, owner, ownerUrl, app } = await setup(t)
  const id = (await as(owner, 'POST', '/v1/invitations', { email: 'y@example.com', role: 'member' })).json().id as string
  const lock = await holdLock(t, ownerUrl, 'SELECT 1 FROM invitations WHERE id = $1 FOR UPDATE', [id])
  const revoking = as(owner, 'DELETE', `/v1/invitations/${id}`)
  t.equal(await lock.untilWaiting(1, ROUTE_UPDATES), 1, 'the revocation waits on the row')
  const creating = app.inject({ method: 'POST', url: '/v1/users', headers: { host: 'acme.localhost', authorization: `Bearer ${owner.accessToken}` }, payload: { email: 'y@example.com', name: 'Y', role: 'member', password: PASSWORD } })
  t.equal(await lock.untilWaiting(2, ROUTE_WAITS), 2, 'the user creation waits behind it, on the audit chain')
  await lock.release()
  const [revoked, created] = await Promise.all([revoking, creating])
  t.equal(revoked.statusCode, 204, revoked.body)
  t.equal(created.statusCode, 201, created.body)
})

t.test('unusable tokens: unknown, revoked, expired, other tenant, wrong purpose — one 400', async (t) => {
  const { as, owner, globexOwner, smtp, ownerUrl, app } = await setup(t)
  const invite = async (email: string, who = owner, host = 'acme.localhost') => {
    const after = smtp.messages.length
    const res = await as(who, 'POST', '/v1/invitations', { email, role: 'member' }, host)
    t.equal(res.statusCode, 201, res.body)
    return { id: res.json().id as string, token: tokenOf(await smtp.waitFor(email, { after })) }
  }
  const accept = (token: string, host = 'acme.localhost') => as(null, 'POST', '/v1/invitations/accept', { token, name: 'Someone', password: NEW_PASSWORD }, host)
  const expectUnusable = async (token: string, what: string, host?: string) => {
    const res = await accept(token, host)
    t.equal(res.statusCode, 400, what)
    t.same(res.json().error.message, 'This link is invalid or has expired', what)
    t.equal(res.json().error.code, 'BAD_REQUEST', what)
  }
  await expectUnusable('A'.repeat(43), 'unknown token')
  await expectUnusable('short', 'malformed token')
  await expectUnusable('', 'empty token') // review, round ten: these two were VALIDATION_FAILED
  await expectUnusable('A'.repeat(300), 'over-long token')

  const revoked = await invite('revoked@example.com')
  t.equal((await as(owner, 'DELETE', `/v1/invitations/${revoked.id}`)).statusCode, 204)
  await expectUnusable(revoked.token, 'revoked')
  t.equal((await as(owner, 'DELETE', `/v1/invitations/${revoked.id}`)).statusCode, 204, 'revoking twice is fine')
  t.equal((await as(owner, 'DELETE', '/v1/invitations/00000000-0000-4000-8000-000000000000')).statusCode, 404)

  const expired = await invite('expired@example.com')
  await adminQuery(ownerUrl, "UPDATE invitations SET expires_at = now() - interval '1 second' WHERE id = $1", [expired.id])
  await expectUnusable(expired.token, 'expired')

  const ofGlobex = await invite('someone@globex.example', globexOwner, 'globex.localhost')
  await expectUnusable(ofGlobex.token, 'another tenant\'s token on acme\'s host')
  t.equal((await as(owner, 'DELETE', `/v1/invitations/${ofGlobex.id}`)).statusCode, 404, 'another tenant\'s invitation is not found')
  t.equal((await accept(ofGlobex.token, 'globex.localhost')).statusCode, 201, 'it still works on its own host')

  // A password-reset token is not an invitation token.
  const requested = await as(null, 'POST', '/v1/auth/password-reset', { email: 'member@acme.example' })
  t.equal(requested.statusCode, 202, requested.body)
  const resetToken = tokenOf(await smtp.waitFor('member@acme.example'))
  await expectUnusable(resetToken, 'a reset token at the invitation route')
  // …and the reverse.
  const pendingInvite = await invite('pending@example.com')
  const wrong = await as(null, 'POST', '/v1/auth/password-reset/confirm', { token: pendingInvite.token, password: NEW_PASSWORD })
  t.equal(wrong.statusCode, 400, 'an invitation token at the reset route')
  // A new invitation to the same address replaces the pending one.
  const replaced = await invite('pending@example.com')
  await expectUnusable(pendingInvite.token, 'replaced by a newer invitation')
  t.equal((await accept(replaced.token)).statusCode, 201)
  // Nothing was stored in clear: no token in the tables.
  const { rows } = await adminQuery(ownerUrl, 'SELECT token_hash FROM invitations')
  t.notOk(rows.some((r) => r.token_hash === replaced.token), 'only hashes are stored')
  await app.close()
})

t.test('two concurrent accepts of one invitation: one wins, the other is 400', async (t) => {
  const { as, owner, smtp, ownerUrl } = await setup(t)
  t.equal((await as(owner, 'POST', '/v1/invitations', { email: 'race@example.com', role: 'member' })).statusCode, 201)
  const token = tokenOf(await smtp.waitFor('race@example.com'))
  // A true race: the invitation's row is held locked while six accepts pass their first check
  // (the token is pending) and hash their passwords; they then wait together (one on the row, the
  // others on the tenant's audit chain behind it), and it is released only once all six are waiting
  // — each goes on only if its own consume succeeds.
  const lock = await holdLock(t, ownerUrl, "SELECT 1 FROM invitations WHERE email = 'race@example.com' FOR UPDATE")
  const racing = Promise.all(Array.from({ length: 6 }, (_, i) => as(null, 'POST', '/v1/invitations/accept', { token, name: `Racer ${i}`, password: NEW_PASSWORD })))
  t.equal(await lock.untilWaiting(6, ROUTE_WAITS), 6, 'the six accepts all passed their first check and wait')
  await lock.release()
  const codes = (await racing).map((r) => r.statusCode).sort()
  t.same(codes, [201, 400, 400, 400, 400, 400], codes.join(','))
  const { rows } = await adminQuery(ownerUrl, "SELECT count(*)::int AS n FROM users WHERE email = 'race@example.com'")
  t.equal(rows[0]!.n, 1)
})

t.test('accepting for an email that became a user meanwhile is a 409, and the link stays usable for nobody else', async (t) => {
  const { as, owner, smtp, ownerUrl, acmeId } = await setup(t)
  t.equal((await as(owner, 'POST', '/v1/invitations', { email: 'late@example.com', role: 'member' })).statusCode, 201)
  const token = tokenOf(await smtp.waitFor('late@example.com'))
  await createUser(ownerUrl, acmeId, { email: 'late@example.com', password: PASSWORD, role: 'member' })
  const res = await as(null, 'POST', '/v1/invitations/accept', { token, name: 'Late', password: NEW_PASSWORD })
  t.equal(res.statusCode, 409)
  const weak = await as(null, 'POST', '/v1/invitations/accept', { token, name: 'Late', password: 'short' })
  t.equal(weak.statusCode, 400)
  t.equal(weak.json().error.code, 'VALIDATION_FAILED', 'the signup password rules apply')
})
