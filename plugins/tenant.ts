// Decides, from the Host header alone, whether a request is for the platform or for a tenant, and
// which one, before any route or auth code runs. Unknown and suspended tenants get the same 404.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { AppError, MissingRequestContextError } from '../src/errors.ts'
import { clientAddress } from './limits.ts'
import { trustFunction, type TrustFunction } from '../src/net/trusted-proxies.ts'
import { parseHost } from '../src/tenancy/host.ts'
import type { ScopedClient } from '../src/tenancy/scoped-client.ts'
import { TenantRegistry, type ActiveTenant } from '../src/tenancy/tenant-registry.ts'
import { UnknownHostLimit } from '../src/tenancy/unknown-host-limit.ts'

declare module 'fastify' {
  interface FastifyInstance {
    tenants: TenantRegistry
  }
  interface FastifyContextConfig {
    /** The route answers on every host, known tenant or not (health checks, JWKS). */
    anyHost?: boolean
  }
  interface FastifyRequest {
    /** The tenant of the Host, or null on the platform host. */
    tenant: ActiveTenant | null
    /** request.tenant's id, for code that runs on tenant hosts only; throws MissingRequestContextError (500) elsewhere. */
    tenantId: string
    /** The database confined to request.tenant; throws MissingRequestContextError (500) on the platform host. */
    db: ScopedClient
  }
}

const tenantNotFound = () => new AppError('TENANT_NOT_FOUND', 'No such tenant')
const badHost = (why: string) => new AppError('BAD_REQUEST', why)

/**
 * The Host the client asked for: X-Forwarded-Host only when the socket's peer is a trusted proxy
 * (the same rule as request.ip: src/net/trusted-proxies.ts).
 */
function requestedHost (request: FastifyRequest, trust: TrustFunction | false): string | undefined {
  const peer = request.raw.socket?.remoteAddress
  const forwarded = trust && peer !== undefined && trust(peer, 0) ? request.headers['x-forwarded-host'] : undefined
  // The last entry is the one our proxy added (a client can send its own X-Forwarded-Host, which
  // a proxy that appends keeps in front), as Fastify reads it.
  if (typeof forwarded === 'string' && forwarded) return forwarded.slice(forwarded.lastIndexOf(',') + 1).trim()
  // Node keeps only the first of several Host headers; the raw list shows them all (RFC 9112 §3.2).
  let hosts = 0
  const raw = request.raw.rawHeaders
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]
    if (name?.length === 4 && name.toLowerCase() === 'host') hosts++
  }
  if (hosts > 1) throw badHost('Several Host headers')
  return request.headers.host
}

export default fp(
  async function tenantPlugin (app: FastifyInstance) {
    const { BASE_DOMAIN, TENANT_CACHE_TTL_MS } = app.config
    const trust = trustFunction(app.config.trustProxy)
    const tenants = new TenantRegistry(app.platformDb, TENANT_CACHE_TTL_MS, app.config.CHANGE_FEED_CACHE_TTL_MS)
    app.decorate('tenants', tenants)
    const unknownHosts = new UnknownHostLimit(app.config.TENANT_MISSES_PER_IP_PER_MIN)
    app.decorateRequest('tenant', null)
    // Throwing getters instead of `request.tenant!`: used where no tenant was resolved (a route
    // outside the tenant-host scope), they fail loudly with a 500 instead of reading `undefined`.
    app.decorateRequest('tenantId', {
      getter (this: FastifyRequest) {
        if (!this.tenant) throw new MissingRequestContextError('tenantId', 'on tenant hosts')
        return this.tenant.id
      },
    })
    app.decorateRequest('db', {
      getter (this: FastifyRequest) {
        if (!this.tenant) throw new MissingRequestContextError('db', 'on tenant hosts')
        return app.database.forTenant(this.tenant.id)
      },
    })

    app.addHook('onRequest', async (request) => {
      const host = requestedHost(request, trust)
      if (host === undefined) {
        // HTTP/1.0 has no Host requirement (RFC 9112 §3.2 asks it of HTTP/1.1 clients): such a
        // request names no tenant, but the health routes answer it (load balancers' checks send it).
        if (request.raw.httpVersion !== '1.0') throw badHost('Missing Host header')
        if (request.routeOptions.config.anyHost) return
        throw tenantNotFound()
      }
      const target = parseHost(host, BASE_DOMAIN)
      if (target.kind === 'invalid') throw badHost('Invalid Host header')
      // Health and key-publication routes answer on every host, tenant or not.
      if (target.kind === 'platform' || request.routeOptions.config.anyHost) return
      if (target.kind === 'unknown') throw tenantNotFound()
      // An address that got too many "no such tenant" answers lately is refused before a lookup.
      const beforeLookup = () => unknownHosts.assertUnder(clientAddress(request))
      const tenant = target.kind === 'slug' ? await tenants.bySlug(target.slug, beforeLookup) : await tenants.byDomain(target.domain, beforeLookup)
      if (!tenant) {
        unknownHosts.count(clientAddress(request))
        throw tenantNotFound()
      }
      request.tenant = tenant
    })
  },
  { name: 'tenant', dependencies: ['config', 'database'] }
)
