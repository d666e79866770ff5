// The failed-login budget of one account, shared by every route that checks its password.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { rateLimited } from '../../plugins/limits.ts'

/** The count's key: tenant + the email lower-cased (`<tenant id>:<email>`), whoever counts or clears it. */
const loginFailureKey = (tenantId: string, email: string): string => `${tenantId}:${email.toLowerCase()}`

/**
 * Failed password checks of one account (tenant + email, compared lower-cased). `device`: the nonce
 * of a device cookie issued for this account (src/auth/device-cookies.ts), or null: with one, the
 * failures are that browser's own, counted apart from the email's (whose lockout strangers can
 * trigger) — OWASP "Slow Down Online Guessing Attacks with Device Cookies".
 */
export interface LoginFailures {
  /**
   * Checks a password within the budget of the request's tenant + `email` (or of `device`): one
   * failure is counted before `check` runs, in one atomic increment of the shared count (Redis when
   * configured, so every instance sees it), and taken back when `check` answers true or throws. So
   * concurrent guesses, on one instance or spread over many, run at most the budget's checks
   * (review 89: a per-process count of the checks in flight let N instances run N × the budget).
   * Returns what `check` answered. Throws 429 RATE_LIMITED (Retry-After: the window's rest, s)
   * without running `check` when the budget is spent; rethrows what `check` throws.
   */
  attempt(request: FastifyRequest, email: string, device: string | null, check: () => Promise<boolean>): Promise<boolean>
  /** Forgets the email's failures (not a device's), in every instance when counted in Redis. Never throws. */
  clear(tenantId: string, email: string): Promise<void>
}

/**
 * The failed password checks per tenant + email (OWASP ASVS v4 2.2.1, anti-automation):
 * `LOGIN_FAILURES_MAX` per `LOGIN_FAILURES_WINDOW_S` (s), one budget whichever route counted the
 * failure (the login under the typed email, a password change under the account's). Each route
 * says which email it means, so a route that knows the account only from the database (a password
 * change, a reset) counts and clears the same key as the login. A login from a trusted device
 * has the same budget, per device cookie.
 *
 * A successful login does not clear it (a right guess amid an attacker's would hand the attacker a
 * new budget); a new password does — a completed reset by email or a password change — since the
 * failures counted were guesses at the old one, and the budget would otherwise stay spent for
 * whoever just proved the account theirs (routes/password-reset.ts, routes/me.ts).
 */
export const loginFailures = (app: FastifyInstance): LoginFailures => {
  const spec = { max: app.config.LOGIN_FAILURES_MAX, windowMs: app.config.LOGIN_FAILURES_WINDOW_S * 1000, key: 'named' as const }
  const perEmail = app.limits.create({ name: 'login-failures', ...spec })
  const perDevice = app.limits.create({ name: 'login-device-failures', ...spec })
  const key = (tenantId: string, email: string, device: string | null) => device ? `${tenantId}:${device}` : loginFailureKey(tenantId, email)
  return {
    async attempt (request, email, device, check) {
      const limiter = device ? perDevice : perEmail
      const counted = key(request.tenantId, email, device)
      const after = await limiter.hit(request, counted)
      if (after.exceeded) {
        await limiter.refund(counted) // refused, not checked: the count stays at the budget
        throw rateLimited(after.retryAfterS)
      }
      let ok: boolean
      try {
        ok = await check()
      } catch (error) {
        await limiter.refund(counted) // no answer is no failure
        throw error
      }
      if (ok) await limiter.refund(counted) // the right password: no failure
      return ok
    },
    clear: (tenantId, email) => perEmail.clear(loginFailureKey(tenantId, email)),
  }
}

/**
 * The data of an `auth.login_failed` event: `{ email }`, plus `trustedDevice: true` when the failure
 * was counted against the browser's device cookie rather than the email (`device` non-null), so an
 * incident review can tell an owner's typos in a trusted browser from strangers spending the email's
 * budget. The cookie's nonce itself is never logged.
 */
export const failedCheckData = (email: string, device: string | null): { email: string, trustedDevice?: true } =>
  device ? { email, trustedDevice: true } : { email }
