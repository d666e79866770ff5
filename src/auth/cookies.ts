// The three auth cookies. All host-only (never a Domain attribute): one tenant's cookies never reach
// another tenant's host.
//
// Decision: `Secure` and the `__Host-`/`__Secure-` name prefixes apply everywhere except
// NODE_ENV=development (plain http://*.localhost in a browser). NODE_ENV=test behaves like
// production, so the suite checks the attributes production sends; a test that wants the development
// names passes NODE_ENV=development. (app.inject does not care about Secure.)
// The refresh cookie has Path=/v1/auth, so it cannot carry `__Host-` (which demands Path=/):
// it is `__Secure-refresh`.
import type { CookieSerializeOptions } from '@fastify/cookie'
import type { FastifyReply } from 'fastify'
import type { Config } from '../config.ts'
import type { IssuedTokens } from './sessions.ts'

export interface AuthCookies {
  names: { access: string; refresh: string; csrf: string }
  /** Sets the three cookies for freshly issued tokens. */
  set(reply: FastifyReply, tokens: IssuedTokens): void
  /** Expires the three cookies, each with the Path it was set with. */
  clear(reply: FastifyReply): void
}

export function authCookies (config: Pick<Config, 'isDevelopment' | 'ACCESS_TOKEN_TTL_S'>): AuthCookies {
  const secure = !config.isDevelopment
  const names = secure
    ? { access: '__Host-access', refresh: '__Secure-refresh', csrf: '__Host-csrf' }
    : { access: 'access', refresh: 'refresh', csrf: 'csrf' }
  const options: Record<keyof typeof names, CookieSerializeOptions> = {
    access: { httpOnly: true, secure, sameSite: 'lax', path: '/' },
    // Strict: only ever sent by our own pages to the refresh and logout routes.
    refresh: { httpOnly: true, secure, sameSite: 'strict', path: '/v1/auth' },
    // Readable by our scripts, which copy it into X-CSRF-Token.
    csrf: { httpOnly: false, secure, sameSite: 'lax', path: '/' },
  }
  return {
    names,
    set (reply, tokens) {
      const sessionLeft = Math.max(0, Math.floor((tokens.sessionExpiresAt.getTime() - Date.now()) / 1000))
      reply.setCookie(names.access, tokens.accessToken, { ...options.access, maxAge: config.ACCESS_TOKEN_TTL_S })
      reply.setCookie(names.refresh, tokens.refreshToken, { ...options.refresh, maxAge: sessionLeft })
      reply.setCookie(names.csrf, tokens.csrfToken, { ...options.csrf, maxAge: sessionLeft })
    },
    clear (reply) {
      for (const which of ['access', 'refresh', 'csrf'] as const) reply.clearCookie(names[which], options[which])
    },
  }
}
