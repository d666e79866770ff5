// Device cookies (OWASP "Slow Down Online Guessing Attacks with Device Cookies"): the per-email
// login lockout exists to stop guessing, but anyone who knows an email can trigger it, and it
// refused the owner's right password too (review 64: a stranger re-locked the account seconds
// after its owner completed a reset). A browser that proved the account its own — a successful
// login, an accepted invitation, a completed reset (the mailbox), a password change — holds a
// cookie bound to the user and the password it proved; its password checks are counted against
// that cookie's own budget instead of the email's, so a lockout by strangers does not reach it.
// Bound to the password hash (review 65): a new password ends every earlier cookie, so whoever
// knew an old password keeps no budget of guesses at the new one; and to its issue time, which the
// server checks (the browser's Max-Age alone would not bind a copied cookie).
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Config } from '../config.ts'
import { derivedKey } from './secrets.ts'

/** The account a device cookie is bound to: the user's id and current password hash. */
export interface DeviceAccount {
  id: string
  passwordHash: string
}

/** Issues and reads the device cookie of one account. */
export interface DeviceCookies {
  /** The cookie's name: `__Host-device` (`device` under NODE_ENV=development, plain http). */
  name: string
  /** Sets a new device cookie for the account on `reply` (a fresh nonce, so a fresh budget), valid `LOGIN_DEVICE_COOKIE_TTL_S` s. */
  issue(reply: FastifyReply, tenantId: string, account: DeviceAccount): void
  /**
   * The nonce of the request's device cookie when this deployment issued it for this account (its
   * tenant, user and current password) less than `LOGIN_DEVICE_COOKIE_TTL_S` s ago; else null: no
   * account, no cookie, another account's or tenant's, an earlier password's, expired, tampered.
   * Never throws.
   */
  trusted(request: FastifyRequest, tenantId: string, account: DeviceAccount | null): string | null
}

const NONCE = /^[A-Za-z0-9_-]{22}$/
const SECONDS = /^[0-9]{1,12}$/

/** `secret`: the deployment's CSRF secret; the cookie's key is derived from it (HKDF-SHA256, RFC 5869). */
export function deviceCookies (config: Pick<Config, 'isDevelopment' | 'LOGIN_DEVICE_COOKIE_TTL_S'>, secret: string): DeviceCookies {
  const key = derivedKey(secret, 'login device cookies v2')
  const tag = (tenantId: string, account: DeviceAccount, nonce: string, issuedS: string) =>
    createHmac('sha256', key).update(`device\0${tenantId}\0${account.id}\0${account.passwordHash}\0${nonce}\0${issuedS}`).digest()
  const ttlS = config.LOGIN_DEVICE_COOKIE_TTL_S
  const secure = !config.isDevelopment
  const name = secure ? '__Host-device' : 'device'
  // Path=/ (the login and the password change read it; `__Host-` demands it); Strict: never sent cross-site.
  const options = { httpOnly: true, secure, sameSite: 'strict' as const, path: '/', maxAge: ttlS }
  return {
    name,
    issue (reply, tenantId, account) {
      const nonce = randomBytes(16).toString('base64url')
      const issuedS = String(Math.floor(Date.now() / 1000))
      reply.setCookie(name, `${nonce}.${issuedS}.${tag(tenantId, account, nonce, issuedS).toString('base64url')}`, options)
    },
    trusted (request, tenantId, account) {
      const [nonce, issuedS, presented, extra] = (request.cookies[name] ?? '').split('.')
      if (!account || !nonce || !issuedS || !presented || extra !== undefined || !NONCE.test(nonce) || !SECONDS.test(issuedS)) return null
      const ageS = Date.now() / 1000 - Number(issuedS)
      if (ageS >= ttlS || ageS < -300) return null // expired, or issued in the future beyond clock skew
      const expected = tag(tenantId, account, nonce, issuedS)
      const given = Buffer.from(presented, 'base64url')
      return given.length === expected.length && timingSafeEqual(given, expected) ? nonce : null
    },
  }
}
