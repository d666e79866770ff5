// Password reset (tenant hosts): shared/API.md "Invitations and password reset".
// The request answers 202 after enqueueing one job, whatever the email: no lookup, no branch, so
// the answer and its timing say nothing about whether the account exists (OWASP Forgot Password
// Cheat Sheet); the job (src/people/jobs.ts) does the work. Beyond the email's budget it still
// answers 202 but enqueues nothing: a 429 there let anyone who knows an address shut its owner out
// of the reset while failed logins lock the password (review 63); the link of the budget's last
// email works until the window ends (PASSWORD_RESET_WINDOW_S ≤ PASSWORD_RESET_TTL_S, src/config.ts).
// Confirming consumes the token atomically, sets the password and revokes every session of the user.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { NoContent, responses } from '../src/api/schemas.ts'
import { PASSWORD_RESET_JOB } from '../src/people/jobs.ts'
import { linkAttemptsPerAddress, LinkToken, presentedTokenHash, unusableToken } from './invitations.ts'
import { Email } from '../src/api/schemas.ts'
import { auditContext, auditedTransaction, recordAuditEvent } from '../src/audit/audit-log.ts'
import { tenantTransaction } from '../src/jobs/tenant-transaction.ts'
import { liveLinkUser, resetLinksEnded } from '../src/people/reset-links.ts'
import { loginFailures } from '../src/auth/login-failures.ts'

const tags = ['auth']

const RequestReset = Type.Object({ email: Email }, { additionalProperties: false })
const ConfirmReset = Type.Object({
  token: LinkToken,
  password: Type.String({ description: 'at least PASSWORD_MIN_LENGTH characters, at most 72 bytes of UTF-8' }),
}, { additionalProperties: false })

const passwordResetRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { config } = app
  // Emails per tenant + email (every request counts, known email or not: the count says nothing)
  // and requests per client address; both through the shared limiter (Redis when configured, so
  // across instances).
  const resetEmails = app.limits.create({ name: 'reset-email', max: config.PASSWORD_RESET_MAX, windowMs: config.PASSWORD_RESET_WINDOW_S * 1000, key: 'named' })
  const requestsPerAddress = linkAttemptsPerAddress(app, 'reset-address')
  const confirmsPerAddress = linkAttemptsPerAddress(app, 'reset-confirm-address')
  const failures = loginFailures(app)

  app.post('/v1/auth/password-reset', {
    onRequest: requestsPerAddress.enforce,
    schema: { tags, summary: 'Ask for a password-reset email (202 whether or not the account exists, and beyond the email\'s budget)', body: RequestReset, response: responses({ 202: Type.Null({ description: 'Accepted (empty body): an email is on its way if the account exists and the email\'s budget is not spent' }) }) },
  }, async (request, reply) => {
    const tenantId = request.tenantId
    const email = request.body.email.toLowerCase()
    const budgetKey = `${tenantId}:${email}`
    const throttled = (await resetEmails.hit(request, budgetKey)).exceeded
    // The job and its event commit together. The event is written for every request, known email or
    // not (the route must not branch on it: same work, same timing); actor system, no target, so the
    // log does not reveal whether the account exists either. A throttled request's event says so:
    // who spends an address's budget is what an incident review asks.
    await tenantTransaction(app.database, app.jobs, tenantId, async (tx, jobs) => {
      if (!throttled) await jobs.send(PASSWORD_RESET_JOB, { email, requestedAt: Date.now() })
      await recordAuditEvent(tx, { ...auditContext(request, { type: 'system', id: null }), action: 'password_reset.requested', target: null, data: throttled ? { email, throttled } : { email } })
    }, {
      // Rolled back, so nothing was enqueued (a database outage, a failover's read-only standby:
      // 503): the owner retrying through it must not find the budget spent without an email
      // (review 64). An error at COMMIT keeps the count (review 66: see RollbackHook).
      onRollback: async () => { if (!throttled) await resetEmails.refund(budgetKey) },
    })
    return reply.code(202).send(undefined as never) // no body at all (null would serialize as "null")
  })

  app.post('/v1/auth/password-reset/confirm', {
    onRequest: confirmsPerAddress.enforce,
    schema: { tags, summary: 'Set a new password with the emailed token; signs out every session', body: ConfirmReset, response: responses({ 204: NoContent }) },
  }, async (request, reply) => {
    const { token, password } = request.body
    const tokenHash = presentedTokenHash(token)
    const usable = () => ({ tokenHash, usedAt: null, expiresAt: { gt: new Date() } })
    const found = await request.db.passwordResetToken.findFirst({ where: usable(), select: { id: true, userId: true, requestedAt: true, user: { select: { email: true } } } })
    if (!found) throw unusableToken()
    const passwordHash = await app.passwords.hash(password)
    const tenantId = request.tenantId
    await auditedTransaction(request, async (tx) => {
      const consumed = await tx.passwordResetToken.updateMany({ where: { id: found.id, ...usable() }, data: { usedAt: new Date() } })
      if (consumed.count !== 1) throw unusableToken()
      // An inactive (or deleted) user cannot come back through a reset, nor can a link asked for
      // before the user's links ended (a password change, a deactivation) set the password; every
      // other link of the user asked for until now stops working too.
      const changed = await tx.user.updateMany({ where: { id: found.userId, ...liveLinkUser(found.requestedAt) }, data: { passwordHash, authVersion: { increment: 1 }, passwordChangedAt: new Date(), ...resetLinksEnded() } })
      if (changed.count !== 1) throw unusableToken()
      await tx.session.updateMany({ where: { userId: found.userId, revokedAt: null }, data: { revokedAt: new Date() } })
      const user = { type: 'user' as const, id: found.userId }
      await recordAuditEvent(tx, { ...auditContext(request, user), action: 'password_reset.completed', target: user })
    })
    // Sessions revoked in the transaction; this instance forgets cached state at once and every
    // other instance is told (plugins/invalidation.ts), and authVersion moved, so a racing login fails too.
    app.auth.userChanged(tenantId, found.userId)
    // The login lockout ends with the old password: someone spending the email's failures must not
    // keep its owner out after the reset (src/auth/login-failures.ts).
    await failures.clear(tenantId, found.user.email)
    // The mailbox proved the account this browser's: its logins get a budget of their own, so a
    // stranger re-locking the email right after the reset does not keep its owner out (review 64).
    app.deviceCookies.issue(reply, tenantId, { id: found.userId, passwordHash })
    return reply.code(204).send(null)
  })
}

export default passwordResetRoutes
