// Device cookies (OWASP "Slow Down Online Guessing Attacks with Device Cookies"): the per-email
// login lockout exists to stop guessing, but anyone who knows an email can trigger it, and it
// refused the owner's right password too (review 64: a stranger re-locked the account seconds
// after its owner completed a reset). A browser that proved the account its own — a successful
// login, or a completed password reset (the mailbox) — holds a cookie bound to the tenant and the
// email; its logins are counted against that cookie's own budget instead of the email's, so a
// lockout by strangers does not reach it.
import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto'
import type { CookieSerializeOptions } from '@fastify/cookie'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Config } from '../config.ts'

/** Issues and reads the device cookie of one account (tenant + email, compared lower-cased). */
export interface DeviceCookies {
  /** The cookie's name: `__Secure-device` (`device` under NODE_ENV=development, plain http). */
  name: string
  /** Sets a new device cookie for the account on `reply` (a fresh nonce, so a fresh budget), valid `LOGIN_DEVICE_COOKIE_TTL_S` s. */
  issue(reply: FastifyReply, tenantId: string, email: string): void
  /**
   * The nonce of the request's device cookie when it was issued by this deployment for this
   * account (tenant + email), else null: no cookie, another account's or tenant's, or tampered.
   * Never throws.
   */
  trusted(request: FastifyRequest, tenantId: string, email: string): string | null
}

/** `secret`: the deployment's CSRF secret; the cookie's key is derived from it (HKDF-SHA256, RFC 5869). */
export function deviceCookies (config: Pick<Config, 'isDevelopment' | 'LOGIN_DEVICE_COOKIE_TTL_S'>, secret: string): DeviceCookies {
  const key = Buffer.from(hkdfSync('sha256', secret, 'tenant-api', 'login device cookies v1', 32))
  const tag = (tenantId: string, email: string, nonce: string) => createHmac('sha256', key).update(`device\0${tenantId}\0${email.toLowerCase()}\0${nonce}`).digest()
  const secure = !config.isDevelopment
  const name = secure ? '__Secure-device' : 'device'
  // Only the sign-in routes need it (login reads it; reset confirm sets it); Strict: never sent cross-site.
  const options: CookieSerializeOptions = { httpOnly: true, secure, sameSite: 'strict', path: '/v1/auth', maxAge: config.LOGIN_DEVICE_COOKIE_TTL_S }
  return {
    name,
    issue (reply, tenantId, email) {
      const nonce = randomBytes(16).toString('base64url')
      reply.setCookie(name, `${nonce}.${tag(tenantId, email, nonce).toString('base64url')}`, options)
    },
    trusted (request, tenantId, email) {
      const [nonce, presented, extra] = (request.cookies[name] ?? '').split('.')
      if (!nonce || !presented || extra !== undefined || nonce.length !== 22) return null
      const expected = tag(tenantId, email, nonce)
      const given = Buffer.from(presented, 'base64url')
      return given.length === expected.length && timingSafeEqual(given, expected) ? nonce : null
    },
  }
}
