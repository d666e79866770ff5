// Sign in, refresh, sign out (tenant hosts). The contract: shared/API.md "Authentication".
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply } from 'fastify'
import Type from 'typebox'
import { failedCheckData, loginFailures } from '../src/auth/login-failures.ts'
import { assertOfferedPasswordFits } from '../src/auth/passwords.ts'
import { signedInAnswer, Tokens } from '../src/auth/login-answer.ts'
import { publicUserSelect } from '../src/auth/public-user.ts'
import { invalidCredentials, type IssuedTokens } from '../src/auth/sessions.ts'
import { Email, NoContent, responses, signedIn } from '../src/api/schemas.ts'
import { audited, auditContext, recordAuditEvent } from '../src/audit/audit-log.ts'
import { AppError, unauthorized } from '../src/errors.ts'
import { UUID } from '../src/ids.ts'

const LoginBody = Type.Object({
  email: Email,
  password: Type.String({ minLength: 1, maxLength: 1024 }),
}, { additionalProperties: false })

// A browser refreshes with the refresh cookie and no body (see parseJsonBodies in routes/index.ts and the hook below).
const RefreshBody = Type.Object({ refreshToken: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })) }, { additionalProperties: false })

/** Sign-in: login and refresh, public on tenant hosts. */
const authRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { config, auth, authCookies: cookies } = app
  // Failed logins per tenant + email: each attempt is counted before its password is checked (a
  // locked account is not tried at all) and taken back when it was right. A successful login does
  // not clear it; a new password does (src/auth/login-failures.ts).
  const failures = loginFailures(app)
  // Attempts per client address (request.ip: the first untrusted hop, see TRUST_PROXY).
  const attemptsPerAddress = app.limits.create({ name: 'login-address', max: config.LOGIN_ATTEMPTS_PER_IP_PER_MIN, windowMs: 60_000 })

  const answer = (reply: FastifyReply, tokens: IssuedTokens, user: Parameters<typeof signedInAnswer>[3]) => signedInAnswer(cookies, reply, tokens, user)

  app.post('/v1/auth/login', {
    onRequest: attemptsPerAddress.enforce,
    schema: { tags: ['auth'], summary: 'Sign in with email and password', body: LoginBody, response: responses({ 200: Tokens }) },
  }, async (request, reply) => {
    const { password } = request.body
    const email = request.body.email.toLowerCase()
    assertOfferedPasswordFits(password, 'password')
    const user = await request.db.user.findFirst({ where: { email }, select: { ...publicUserSelect, passwordHash: true, authVersion: true } })
    // A browser that proved this account its own has a budget of its own (src/auth/device-cookies.ts).
    const device = app.deviceCookies.trusted(request, request.tenantId, user)
    // Unknown, inactive and wrong password: one answer, one bcrypt comparison of the same cost each.
    const ok = await failures.attempt(request, email, device, () =>
      user?.active ? app.passwords.verify(password, user.passwordHash) : app.passwords.verifyDummy(password))
    if (!ok || !user) {
      // One statement of its own (nothing else changes): the actor is the user when the email is known.
      const known = user ? { type: 'user' as const, id: user.id } : null
      await recordAuditEvent(request.db, { ...auditContext(request, known ?? { type: 'system', id: null }), action: 'auth.login_failed', target: known, data: failedCheckData(email, device) })
      throw invalidCredentials()
    }
    const { passwordHash: _hash, authVersion, ...shown } = user
    const tokens = await auth.startSession(request.db, request.tenantId, { id: user.id, role: user.role, authVersion }, auditContext(request))
    app.deviceCookies.issue(reply, request.tenantId, user)
    return answer(reply, tokens, shown)
  })

  app.post('/v1/auth/refresh', {
    preValidation: async (request) => {
      request.body ??= {}
    },
    schema: { tags: ['auth'], summary: 'Exchange a refresh token (body or cookie) for new tokens', body: RefreshBody, response: responses({ 200: Tokens }) },
  }, async (request, reply) => {
    const tenantId = request.tenantId
    let presented = request.body.refreshToken
    if (presented === undefined) {
      // From the cookie: a cookie-authenticated unsafe request, so it needs the CSRF token too.
      const fromCookie = request.cookies[cookies.names.refresh]
      if (!fromCookie) throw unauthorized('Refresh token required')
      presented = fromCookie
      const sessionId = fromCookie.split('.')[0] ?? ''
      // A refresh cookie of no live session of this tenant (another tenant's, a revoked one) is a
      // 401 like any foreign or revoked credential, before CSRF could make it a 403.
      if (!UUID.test(sessionId) || !(await auth.usableSession(tenantId, sessionId))) throw unauthorized('Session expired or revoked')
      const header = request.headers['x-csrf-token']
      if (!auth.csrfValid(tenantId, sessionId, typeof header === 'string' ? header : undefined, request.cookies[cookies.names.csrf])) {
        throw new AppError('CSRF_FAILED', 'Missing or invalid X-CSRF-Token header')
      }
    }
    const { tokens, user } = await auth.refresh(request.db, tenantId, presented, auditContext(request))
    return answer(reply, tokens, user)
  })
}

/** Sign-out, registered in the authenticated scope of routes/index.ts. */
export const signOutRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { auth, authCookies: cookies } = app

  app.post('/v1/auth/logout', {
    schema: { tags: ['auth'], security: signedIn, summary: 'Sign out: revoke this session and expire the cookies', response: responses({ 204: NoContent }) },
  }, async (request, reply) => {
    const { sessionId } = request.principal
    // Two logouts of one session at once: both 204 (it is signed out), one event.
    await audited(request, (tx) => auth.endSession(tx as never, request.tenantId, sessionId),
      (ended) => ended ? { action: 'auth.logout', target: { type: 'session', id: sessionId } } : null)
    auth.sessionEnded(request.tenantId, sessionId) // again after the commit: no cached state from before it
    cookies.clear(reply)
    return reply.code(204).send(null)
  })
}

export default authRoutes
