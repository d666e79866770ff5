// Request limits of tenant hosts (shared/API.md "API keys"), each per RATE_LIMIT_WINDOW_S, so one
// noisy tenant or client cannot starve the others:
// - a signed-in request (a user's token or an API key) counts against its tenant (the tenant's own
//   `rate_limit`, else TENANT_RATE_LIMIT), and a key's also against the key (API_KEY_RATE_LIMIT);
// - any other request on a tenant host (no credential, or one that failed) counts against its client
//   address on that host (ANONYMOUS_RATE_LIMIT), never against the tenant: an anonymous flood on a
//   tenant's host — from anywhere on the internet — cannot spend the budget of the tenant's own
//   clients, and one address cannot spend another's.
// Counting is @fastify/rate-limit's (fixed window) in the store plugins/limits.ts registered it with:
// Redis when REDIS_URL is set (one budget across every instance), else this instance's memory.
//
// Answers carry the IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers, the
// RateLimit-Limit/-Remaining/-Reset form @fastify/rate-limit's draft mode also uses, plus
// RateLimit-Policy "<limit>;w=<window s>") of whichever limit is closest to running out;
// a refusal is 429 RATE_LIMITED with Retry-After (RFC 9110 §10.2.3) in seconds.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { clientAddress } from '../../plugins/limits.ts'
import type { Config } from '../config.ts'
import { AppError } from '../errors.ts'

type LimitConfig = Pick<Config, 'RATE_LIMIT_WINDOW_S' | 'TENANT_RATE_LIMIT' | 'API_KEY_RATE_LIMIT' | 'ANONYMOUS_RATE_LIMIT'>

/** One counter's state after counting a request. */
interface Count {
  limit: number
  remaining: number
  /** Seconds until the window resets (≥ 1). */
  resetS: number
  exceeded: boolean
}

type Limiter = (request: FastifyRequest) => Promise<{ max: number; remaining: number; ttlInSeconds: number; isExceeded: boolean }>

const REMAINING = Symbol('rateLimitRemaining')
const COUNTED = Symbol('rateLimitCounted')
type Counted = FastifyRequest & { [REMAINING]?: number; [COUNTED]?: true }

export class RequestLimits {
  private readonly perTenant: Limiter
  private readonly perKey: Limiter
  private readonly perAnonymousAddress: Limiter
  private readonly windowS: number

  constructor (app: FastifyInstance, config: LimitConfig) {
    this.windowS = config.RATE_LIMIT_WINDOW_S
    const create = (options: object) => app.createRateLimit(options as Parameters<typeof app.createRateLimit>[0]) as unknown as Limiter
    // Key prefixes keep these counters apart from the login limits that share the store.
    this.perTenant = create({
      timeWindow: this.windowS * 1000,
      max: (request: FastifyRequest) => request.tenant?.rateLimit ?? config.TENANT_RATE_LIMIT,
      keyGenerator: (request: FastifyRequest) => `tenant-requests:${request.tenantId}`,
      cache: 100_000, // one counter per tenant: the LRU must hold every active tenant
    })
    this.perKey = create({
      timeWindow: this.windowS * 1000,
      max: config.API_KEY_RATE_LIMIT,
      keyGenerator: (request: FastifyRequest) => `api-key-requests:${request.principal.id}`,
      cache: 100_000,
    })
    this.perAnonymousAddress = create({
      timeWindow: this.windowS * 1000,
      max: config.ANONYMOUS_RATE_LIMIT,
      keyGenerator: (request: FastifyRequest) => `anonymous-requests:${request.tenantId}:${clientAddress(request)}`,
      cache: 100_000,
    })
  }

  /**
   * Counts a signed-in request (request.user set, on a tenant host) against its tenant's limit and,
   * for an API key, against the key's; 429 RATE_LIMITED when over either.
   */
  async countSignedIn (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    (request as Counted)[COUNTED] = true
    this.apply(request, reply, await this.count(this.perTenant, request))
    if (request.user?.kind === 'api_key') this.apply(request, reply, await this.count(this.perKey, request))
  }

  /** Counts a tenant-host request without a valid credential against its client address on that host; 429 RATE_LIMITED when over. */
  async countAnonymous (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    if ((request as Counted)[COUNTED]) return
    (request as Counted)[COUNTED] = true
    this.apply(request, reply, await this.count(this.perAnonymousAddress, request))
  }

  /** Whether countSignedIn or countAnonymous already counted this request. */
  counted (request: FastifyRequest): boolean {
    return (request as Counted)[COUNTED] === true
  }

  private async count (limiter: Limiter, request: FastifyRequest): Promise<Count> {
    const result = await limiter(request)
    return { limit: result.max, remaining: result.remaining, resetS: Math.max(1, result.ttlInSeconds), exceeded: result.isExceeded }
  }

  private apply (request: Counted, reply: FastifyReply, count: Count): void {
    const headers = {
      'ratelimit-limit': String(count.limit),
      'ratelimit-remaining': String(count.remaining),
      'ratelimit-reset': String(count.resetS),
      'ratelimit-policy': `${count.limit};w=${this.windowS}`,
    }
    if (count.exceeded) throw new AppError('RATE_LIMITED', 'Too many requests, retry later', { ...headers, 'retry-after': String(count.resetS) })
    // Show the limit closest to running out (the tenant's is counted first, a key's second).
    if (request[REMAINING] === undefined || count.remaining < request[REMAINING]) {
      request[REMAINING] = count.remaining
      reply.headers(headers)
    }
  }
}
