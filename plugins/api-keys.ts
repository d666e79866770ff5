// API keys on tenant hosts (shared/API.md "API keys") and the request limits of tenant hosts.
// plugins/auth.ts hands a Bearer credential that looks like a key (`tk_…`) to `app.apiKeys.authenticate`;
// this plugin decides whether it is a live key of the Host's tenant, which routes a key may use, and
// counts every tenant-host request: a signed-in caller's (user or key) against its tenant's limit (and
// a key's also against the key's), any other against its client address's anonymous budget.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { ApiKeyService } from '../src/auth/api-keys.ts'
import { deploymentSecret } from '../src/auth/secrets.ts'
import { allows, PERMISSION, type Action, type Scope } from '../src/auth/permissions.ts'
import type { Config } from '../src/config.ts'
import { forbidden, unauthorized } from '../src/errors.ts'
import { RequestLimits } from '../src/limits/request-limits.ts'

declare module 'fastify' {
  interface FastifyInstance {
    /** API-key verification (cached API_KEY_CACHE_TTL_MS; CHANGE_FEED_CACHE_TTL_MS while the change feed is read) and `app.apiKeys.keyRevoked(tenantId, keyId)` after revoking one. */
    apiKeys: ApiKeyService & {
      /** Sets request.user to the key of `credential`, or throws 401 (any bad key) / 403 (route not in its scopes) / 429. */
      authenticate(request: FastifyRequest, reply: FastifyReply, credential: string): Promise<void>
      /** Call after revoking a key: it stops at once here and, through `onKeyRevoked`, on every other instance. */
      keyRevoked(tenantId: string, keyId: string): void
      /** Set by plugins/invalidation.ts: tells the other instances (their cache TTL bounds it when unset). */
      onKeyRevoked: ((tenantId: string, keyId: string) => void) | null
    }
    requestLimits: RequestLimits
  }
  interface FastifyContextConfig {
    /** The action the route declared with requirePermission: an API key may use the route only when a scope grants it. */
    permission?: Action
  }
}

/** Same answer for every bad key (malformed, unknown, near miss, foreign, revoked, expired, suspended tenant). */
const invalidKey = () => unauthorized('Invalid or expired token')

const apiKeySecret = (config: Config) => deploymentSecret(config, 'API_KEY_SECRET', 'api-key-secret')

/** The action of a route's requirePermission hook, if it has one. */
function declaredPermission (hooks: unknown): Action | undefined {
  const list = Array.isArray(hooks) ? hooks : hooks ? [hooks] : []
  return list.find((hook): hook is { [PERMISSION]: Action } => typeof hook === 'function' && PERMISSION in hook)?.[PERMISSION]
}

export default fp(
  async function apiKeysPlugin (app: FastifyInstance) {
    const { config } = app
    // Rows are kept CHANGE_FEED_CACHE_TTL_MS while the change feed is read (plugins/invalidation.ts).
    const service = new ApiKeyService(await apiKeySecret(config), config.API_KEY_CACHE_TTL_MS, (tenantId) => app.database.forTenant(tenantId),
      (error) => app.log.warn({ err: error }, 'could not record an API key use'), config.CHANGE_FEED_CACHE_TTL_MS)
    const limits = new RequestLimits(app, config)

    // Which action each route declared (before the routes are added: this hook sees every one).
    app.addHook('onRoute', (route) => {
      const permission = declaredPermission(route.onRequest) ?? declaredPermission(route.preHandler)
      if (permission) route.config = { ...route.config, permission }
    })

    // A tenant-host request that was not counted as signed in by the time its body is read (a public
    // route, an unknown one) counts against its address's anonymous budget. Signed-in requests were
    // counted in authentication, failed ones there too (plugins/auth.ts), before any route's work.
    app.addHook('preParsing', async (request, reply) => {
      if (request.tenant && !limits.counted(request)) await limits.countAnonymous(request, reply)
    })

    async function authenticate (request: FastifyRequest, reply: FastifyReply, credential: string): Promise<void> {
      const tenant = request.tenant
      if (!tenant) throw unauthorized()
      const key = await service.verify(tenant.id, credential)
      if (!key) throw invalidKey()
      // A key is not a person: `role` is never consulted for it (permissions.allows reads the scopes).
      request.user = { id: key.id, role: 'member', sessionId: '', scopes: key.scopes as readonly Scope[], kind: 'api_key' }
      request.authMethod = 'bearer'
      await limits.countSignedIn(request, reply) // the tenant's limit, then the key's
      // Routes that declare no action (profile, password, logout) are for people only.
      const action = request.routeOptions.config.permission
      if (!action || !allows(request.user, action)) throw forbidden('This API key has no scope for this route')
    }

    const apiKeys: FastifyInstance['apiKeys'] = Object.assign(service, {
      authenticate,
      keyRevoked (tenantId: string, keyId: string) {
        service.changed(keyId)
        apiKeys.onKeyRevoked?.(tenantId, keyId)
      },
      onKeyRevoked: null,
    })
    app.decorate('apiKeys', apiKeys)
    app.decorate('requestLimits', limits)
  },
  { name: 'api-keys', dependencies: ['config', 'database', 'tenant', 'auth'] }
)
