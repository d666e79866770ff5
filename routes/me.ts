// The signed-in user's own profile and password (tenant hosts).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { failedCheckData, loginFailures } from '../src/auth/login-failures.ts'
import { assertOfferedPasswordFits } from '../src/auth/passwords.ts'
import { audited, auditContext, recordAuditEvent } from '../src/audit/audit-log.ts'
import { PublicUser, publicUserSelect, toPublicUser } from '../src/auth/public-user.ts'
import { DisplayName, NoContent, responses, signedIn } from '../src/api/schemas.ts'
import { AppError, unauthorized } from '../src/errors.ts'
import { resetLinksEnded } from '../src/people/reset-links.ts'

const PatchMe = Type.Object({ name: DisplayName }, { additionalProperties: false })
const ChangePassword = Type.Object({
  currentPassword: Type.String({ minLength: 1, maxLength: 1024 }),
  newPassword: Type.String({ minLength: 1, maxLength: 1024 }),
}, { additionalProperties: false })

const tags = ['me']

const meRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { config } = app
  // The current password is checked here too, so whoever holds a stolen session must not guess it
  // faster than the login lets anyone (OWASP ASVS v4 2.2.1, anti-automation of authentication):
  // - every checked attempt counts per user, right or wrong (LOGIN_FAILURES_MAX per
  //   LOGIN_FAILURES_WINDOW_S), so concurrent guesses cannot all pass a check made before any failed;
  // - a wrong one also counts as a failed login of the user's email, and the login's exhausted
  //   budget stops the check here: one budget of guesses for both routes (src/auth/login-failures.ts,
  //   keyed by the user's email, or by the browser's device cookie when it holds one of the
  //   account); a successful change clears it.
  const windowMs = config.LOGIN_FAILURES_WINDOW_S * 1000
  const passwordChanges = app.limits.create({ name: 'password-change', max: config.LOGIN_FAILURES_MAX, windowMs, key: (request) => `${request.tenantId}:${request.principal.id}` })
  const failures = loginFailures(app)
  app.get('/v1/me', {
    schema: { tags, security: signedIn, summary: 'Your profile', response: responses({ 200: PublicUser }) },
  }, async (request) => {
    const user = await request.db.user.findFirst({ where: { id: request.principal.id }, select: publicUserSelect })
    if (!user) throw unauthorized('Session expired or revoked')
    return toPublicUser(user)
  })

  app.patch('/v1/me', {
    schema: { tags, security: signedIn, summary: 'Change your name', body: PatchMe, response: responses({ 200: PublicUser }) },
  }, async (request) => {
    const user = await audited(request, (tx) => tx.user.update({ where: { id: request.principal.id }, data: { name: request.body.name }, select: publicUserSelect }),
      (updated) => ({ action: 'user.updated', target: { type: 'user', id: updated.id }, data: { name: request.body.name } }))
    return toPublicUser(user)
  })

  app.post('/v1/me/password', {
    schema: { tags, security: signedIn, summary: 'Change your password; signs out every other session', body: ChangePassword, response: responses({ 204: NoContent }) },
  }, async (request, reply) => {
    const { id: userId, sessionId } = request.principal
    const tenantId = request.tenantId
    // Like login: a password over 72 bytes is a 400, never compared (bcrypt would read only 72 bytes).
    assertOfferedPasswordFits(request.body.currentPassword, 'currentPassword')
    // The new password's policy first (400, not counted), then the limits (429), then bcrypt.
    app.passwords.assertAcceptable(request.body.newPassword, 'newPassword')
    await passwordChanges.enforce(request)
    const user = await request.db.user.findFirst({ where: { id: userId }, select: { passwordHash: true, email: true, authVersion: true } })
    if (!user) throw unauthorized('Session expired or revoked')
    // This browser's own budget when it holds the account's device cookie (src/auth/device-cookies.ts):
    // a stranger spending the email's failed logins must not stop its owner changing the password.
    const device = app.deviceCookies.trusted(request, tenantId, { id: userId, passwordHash: user.passwordHash })
    if (!(await failures.attempt(request, user.email, device, () => app.passwords.verify(request.body.currentPassword, user.passwordHash)))) {
      // A wrong password is a failed password check whichever route asked (a stolen session guessing
      // the password to take the account over): the incident responder finds it with the logins'.
      await recordAuditEvent(request.db, { ...auditContext(request), action: 'auth.login_failed', target: { type: 'user', id: userId }, data: { ...failedCheckData(user.email, device), route: 'password_change' } })
      throw new AppError('FORBIDDEN', 'The current password is wrong')
    }
    const newHash = await app.passwords.hash(request.body.newPassword, 'newPassword')
    // The new hash, the other sessions' end, the reset links' end and the event commit together.
    await audited(request, async (tx) => {
      // Only over the password that was checked, from a session still signed in: a reset confirm or
      // another tab's change meanwhile moved authVersion and revoked this session (two changes racing
      // would otherwise both answer 204, each signing the other out, the last hash winning).
      const stillSignedIn = await tx.session.findFirst({ where: { id: sessionId, revokedAt: null }, select: { id: true } })
      const changed = stillSignedIn && await tx.user.updateMany({ where: { id: userId, authVersion: user.authVersion }, data: { passwordHash: newHash, authVersion: { increment: 1 }, passwordChangedAt: new Date(), ...resetLinksEnded() } })
      if (!changed || changed.count !== 1) throw unauthorized('Session expired or revoked')
      await app.auth.endOtherSessions(tx as never, tenantId, userId, sessionId)
    }, () => ({ action: 'user.password_changed', target: { type: 'user', id: userId } }))
    app.auth.userChanged(tenantId, userId) // again after the commit: no cached state from before it
    await failures.clear(tenantId, user.email) // the failures counted were guesses at the old password
    app.deviceCookies.issue(reply, tenantId, { id: userId, passwordHash: newHash }) // the new password ended every earlier device cookie
    return reply.code(204).send(null)
  })
}

export default meRoutes
