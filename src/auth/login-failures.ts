// The failed-login budget of one account, shared by every route that checks its password.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Limiter } from '../../plugins/limits.ts'

/** The count's key: tenant + the email lower-cased (`<tenant id>:<email>`), whoever counts or clears it. */
export const loginFailureKey = (tenantId: string, email: string): string => `${tenantId}:${email.toLowerCase()}`

/**
 * The limiter of failed password checks per tenant + email (OWASP ASVS v4 2.2.1, anti-automation):
 * `LOGIN_FAILURES_MAX` per `LOGIN_FAILURES_WINDOW_S` (s), one budget whichever route counted the
 * failure (the login under the typed email, a password change under the account's). `emailOf` says
 * which email a request concerns; it is compared lower-cased.
 *
 * A successful login does not clear it (a right guess amid an attacker's would hand the attacker a
 * new budget); a new password does — a completed reset by email or a password change — since the
 * failures counted were guesses at the old one, and the budget would otherwise stay spent for
 * whoever just proved the account theirs (routes/password-reset.ts, routes/me.ts).
 */
export const loginFailuresLimit = (app: FastifyInstance, emailOf: (request: FastifyRequest) => string): Limiter =>
  app.limits.create({
    name: 'login-failures',
    max: app.config.LOGIN_FAILURES_MAX,
    windowMs: app.config.LOGIN_FAILURES_WINDOW_S * 1000,
    key: (request) => loginFailureKey(request.tenantId, emailOf(request)),
  })
