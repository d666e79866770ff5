// The failed-login budget of one account, shared by every route that checks its password.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { LimitState } from '../../plugins/limits.ts'

/** The count's key: tenant + the email lower-cased (`<tenant id>:<email>`), whoever counts or clears it. */
export const loginFailureKey = (tenantId: string, email: string): string => `${tenantId}:${email.toLowerCase()}`

/** Failed password checks of one account (tenant + email, compared lower-cased). */
export interface LoginFailures {
  /** The account's budget in the request's tenant, without counting. */
  peek(request: FastifyRequest, email: string): Promise<LimitState>
  /** Counts one failure of the account in the request's tenant; the state after it. */
  hit(request: FastifyRequest, email: string): Promise<LimitState>
  /** Forgets the account's failures, in every instance when counted in Redis. Never throws. */
  clear(tenantId: string, email: string): Promise<void>
}

/**
 * The failed password checks per tenant + email (OWASP ASVS v4 2.2.1, anti-automation):
 * `LOGIN_FAILURES_MAX` per `LOGIN_FAILURES_WINDOW_S` (s), one budget whichever route counted the
 * failure (the login under the typed email, a password change under the account's). Each route
 * says which email it means, so a route that knows the account only from the database (a password
 * change, a reset) counts and clears the same key as the login.
 *
 * A successful login does not clear it (a right guess amid an attacker's would hand the attacker a
 * new budget); a new password does — a completed reset by email or a password change — since the
 * failures counted were guesses at the old one, and the budget would otherwise stay spent for
 * whoever just proved the account theirs (routes/password-reset.ts, routes/me.ts).
 */
export const loginFailures = (app: FastifyInstance): LoginFailures => {
  const limiter = app.limits.create({
    name: 'login-failures',
    max: app.config.LOGIN_FAILURES_MAX,
    windowMs: app.config.LOGIN_FAILURES_WINDOW_S * 1000,
    key: 'named',
  })
  return {
    peek: (request, email) => limiter.peek(request, loginFailureKey(request.tenantId, email)),
    hit: (request, email) => limiter.hit(request, loginFailureKey(request.tenantId, email)),
    clear: (tenantId, email) => limiter.clear(loginFailureKey(tenantId, email)),
  }
}
