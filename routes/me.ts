// The signed-in user's own profile and password (tenant hosts).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { assertAcceptablePassword, MAX_PASSWORD_BYTES } from '../src/auth/passwords.ts'
import { audited } from '../src/audit/audit-log.ts'
import { PublicUser, publicUserSelect, toPublicUser } from '../src/auth/public-user.ts'
import { NoContent, PersonName, responses, signedIn } from '../src/api/schemas.ts'
import { AppError, unauthorized } from '../src/errors.ts'

const PatchMe = Type.Object({ name: PersonName }, { additionalProperties: false })
const ChangePassword = Type.Object({
  currentPassword: Type.String({ minLength: 1, maxLength: 1024 }),
  newPassword: Type.String({ minLength: 1, maxLength: 1024 }),
}, { additionalProperties: false })

const tags = ['me']

const meRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { config } = app
  // Password changes per user, under the login's policy (LOGIN_FAILURES_MAX per
  // LOGIN_FAILURES_WINDOW_S): whoever holds a stolen session must not guess the password here faster
  // than the login lets anyone (OWASP ASVS v4 2.2.1, anti-automation of authentication). Every
  // attempt whose current password is checked counts, right or wrong, so concurrent guesses cannot
  // all pass a check made before any of them failed.
  const passwordChanges = app.limits.create({ name: 'password-change', max: config.LOGIN_FAILURES_MAX, windowMs: config.LOGIN_FAILURES_WINDOW_S * 1000, key: (request) => `${request.tenantId}:${request.principal.id}` })
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
    if (Buffer.byteLength(request.body.currentPassword, 'utf8') > MAX_PASSWORD_BYTES) {
      throw new AppError('VALIDATION_FAILED', `body/currentPassword must be at most ${MAX_PASSWORD_BYTES} bytes of UTF-8`)
    }
    // The new password's policy first (400, not counted), then the limit (429), then bcrypt.
    assertAcceptablePassword(request.body.newPassword, config.PASSWORD_MIN_LENGTH, 'newPassword')
    await passwordChanges.enforce(request)
    const user = await request.db.user.findFirst({ where: { id: userId }, select: { passwordHash: true } })
    if (!user) throw unauthorized('Session expired or revoked')
    if (!(await app.passwords.verify(request.body.currentPassword, user.passwordHash))) throw new AppError('FORBIDDEN', 'The current password is wrong')
    const newHash = await app.passwords.hash(request.body.newPassword, 'newPassword')
    // The new hash, the other sessions' end and the event commit together.
    await audited(request, async (tx) => {
      await tx.user.update({ where: { id: userId }, data: { passwordHash: newHash, authVersion: { increment: 1 } }, select: { id: true } })
      await app.auth.endOtherSessions(tx as never, tenantId, userId, sessionId)
    }, () => ({ action: 'user.password_changed', target: { type: 'user', id: userId } }))
    app.auth.userChanged(tenantId, userId) // again after the commit: no cached state from before it
    return reply.code(204).send(null)
  })
}

export default meRoutes
