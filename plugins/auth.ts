// Authentication: access-token verification (Bearer header or cookie), CSRF for cookie-authenticated
// unsafe requests, session revocation, password hashing. Routes that need a signed-in caller are
// registered in the one authenticated scope of routes/index.ts (its onRequest hook is
// app.authenticate) and read `request.principal`. The login/refresh/logout routes are in routes/auth.ts.
import cookie from '@fastify/cookie'
import fastifyJwt from '@fastify/jwt'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { bearerToken } from '../src/auth/bearer.ts'
import { authCookies, type AuthCookies } from '../src/auth/cookies.ts'
import { deviceCookies, type DeviceCookies } from '../src/auth/device-cookies.ts'
import { csrfSecret } from '../src/auth/secrets.ts'
import { InvalidTokenError, jwtOptions, type AccessPayload, type Role } from '../src/auth/jwt.ts'
import { loadKeyRing } from '../src/auth/keys.ts'
import { PasswordHasher } from '../src/auth/passwords.ts'
import { AuthService } from '../src/auth/sessions.ts'
import { looksLikeApiKey } from '../src/auth/api-keys.ts'
import type { Scope } from '../src/auth/permissions.ts'
import { AppError, MissingRequestContextError, unauthorized } from '../src/errors.ts'

export interface AuthUser {
  /** The user's id, or the API key's id when `kind` is 'api_key'. */
  id: string
  role: Role
  /** The session of a user's token; empty for an API key. */
  sessionId: string
  /** null for a user (the role decides); an API key's scopes (they decide: src/auth/permissions.ts). */
  scopes: readonly Scope[] | null
  kind: 'user' | 'api_key'
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Sessions and tokens; `app.auth.userChanged(tenantId, userId)` after changing a user elsewhere. */
    auth: AuthService
    authCookies: AuthCookies
    /** The device cookie (src/auth/device-cookies.ts): set where a browser proves the account (login, invitation accept, reset, password change), read where a password is checked (login, password change). */
    deviceCookies: DeviceCookies
    /** `app.passwords.hash(plain)` (policy-checked, 400 otherwise) and `.verify(plain, hash)`, off the main thread. */
    passwords: PasswordHasher
    /** Hook: 401 unless a valid access token or API key of this tenant; 403 CSRF_FAILED for cookie-authenticated unsafe methods without the token. */
    authenticate(request: FastifyRequest, reply: FastifyReply): Promise<void>
  }
  interface FastifyRequest {
    /** What authenticated the request: CSRF protection applies to 'cookie' only. */
    authMethod: 'bearer' | 'cookie' | null
    /**
     * The authenticated caller (a user, or an API key: see `kind`), for routes behind
     * app.authenticate; throws MissingRequestContextError (500) where that hook did not run or failed.
     */
    principal: AuthUser
  }
}

declare module '@fastify/jwt' {
  interface FastifyJWT {
    payload: AccessPayload
    /** request.user: the authenticated user, set by app.authenticate (null before, or on routes without it). */
    user: AuthUser | null
  }
}

const UNSAFE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])
const invalidToken = () => unauthorized('Invalid or expired token')

export { rateLimited } from './limits.ts'

export default fp(
  async function authPlugin (app: FastifyInstance) {
    const { config } = app
    if (!app.hasDecorator('parseCookie')) await app.register(cookie)
    const keys = await loadKeyRing(config)
    await app.register(fastifyJwt, jwtOptions(keys, config))
    const secret = await csrfSecret(config)
    const auth = new AuthService(config, keys, app.jwt, secret, (tenantId) => app.database.forTenant(tenantId))
    const passwords = new PasswordHasher({ cost: config.BCRYPT_COST, workers: config.BCRYPT_WORKERS, minLength: config.PASSWORD_MIN_LENGTH })
    passwords.warmUp()
    app.addHook('onClose', () => passwords.close())
    const cookies = authCookies(config)

    app.decorate('auth', auth)
    app.decorate('authCookies', cookies)
    app.decorate('deviceCookies', deviceCookies(config, secret))
    app.decorate('passwords', passwords)
    app.decorateRequest('user', null)
    app.decorateRequest('authMethod', null)
    // A throwing getter instead of `request.principal`: a route that forgot app.authenticate fails loudly.
    app.decorateRequest('principal', {
      getter (this: FastifyRequest) {
        if (!this.user) throw new MissingRequestContextError('principal', 'on routes behind app.authenticate')
        return this.user
      },
    })

    /** The token and where it came from. A present Authorization header wins; it never falls back to the cookie. */
    function credentials (request: FastifyRequest): { token: string; method: 'bearer' | 'cookie' } {
      const header = request.headers.authorization
      if (header !== undefined) {
        const token = bearerToken(header)
        if (!token) throw unauthorized('Authorization must be a Bearer token')
        return { token, method: 'bearer' }
      }
      const token = request.cookies[cookies.names.access]
      if (token) return { token, method: 'cookie' }
      throw unauthorized()
    }

    app.decorate('authenticate', async function authenticate (request: FastifyRequest, reply: FastifyReply) {
      request.user = null
      request.authMethod = null
      try {
        await identify(request, reply)
      } catch (error) {
        // A caller refused for its credential counts as anonymous (its address's budget, never its
        // tenant's: src/limits/request-limits.ts); 429 instead of the 401 once that budget is spent.
        // A server-side failure (database down: 503) is not the caller's doing and is not counted.
        if (request.tenant && !request.user && error instanceof AppError && error.statusCode < 500) await app.requestLimits.countAnonymous(request, reply)
        throw error
      }
    })

    /** Sets request.user from the request's credential (counted against its tenant's limit), or throws. */
    async function identify (request: FastifyRequest, reply: FastifyReply): Promise<void> {
      const tenant = request.tenant
      if (!tenant) throw unauthorized()
      const { token, method } = credentials(request)
      // An API key (plugins/api-keys.ts): Bearer only, never a cookie, so CSRF never applies.
      if (method === 'bearer' && looksLikeApiKey(token)) return app.apiKeys.authenticate(request, reply, token)
      let claims
      try {
        claims = await auth.verify(token)
      } catch (error) {
        if (error instanceof InvalidTokenError) throw invalidToken()
        throw error
      }
      if (claims.tid !== tenant.id) throw invalidToken()
      // The session before CSRF: a revoked session is the contract's 401 whatever the method.
      const state = await auth.usableSession(tenant.id, claims.sid)
      if (!state || state.userId !== claims.sub) throw unauthorized('Session expired or revoked')
      if (method === 'cookie' && UNSAFE_METHODS.has(request.method)) {
        const header = request.headers['x-csrf-token']
        if (!auth.csrfValid(tenant.id, claims.sid, typeof header === 'string' ? header : undefined, request.cookies[cookies.names.csrf])) {
          throw new AppError('CSRF_FAILED', 'Missing or invalid X-CSRF-Token header')
        }
      }
      request.user = { id: claims.sub, role: state.role, sessionId: claims.sid, scopes: null, kind: 'user' }
      request.authMethod = method
      await app.requestLimits.countSignedIn(request, reply)
    }
  },
  { name: 'auth', dependencies: ['config', 'database', 'tenant', 'limits'] }
)
