// Request limits of tenant hosts (shared/API.md "API keys"): every tenant host has a per-tenant
// limit (the tenant's own `rate_limit`, else TENANT_RATE_LIMIT) and every API key its own
// (API_KEY_RATE_LIMIT), both per RATE_LIMIT_WINDOW_S, so one noisy tenant or client cannot starve
// the others. Counting is @fastify/rate-limit's (fixed window), in the store the rate-limit plugin
// was registered with in plugins/auth.ts: in memory per instance today; giving that registration a
// shared (Redis) store makes these limits count across instances with no change here.
//
// Answers carry the IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers, the
// RateLimit-Limit/-Remaining/-Reset form @fastify/rate-limit's draft mode also uses, plus
// RateLimit-Policy "<limit>;w=<window s>") of whichever limit is closest to running out;
// a refusal is 429 RATE_LIMITED with Retry-After (RFC 9110 §10.2.3) in seconds.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Config } from '../config.ts'
import { AppError } from '../errors.ts'

type LimitConfig = Pick<Config, 'RATE_LIMIT_WINDOW_S' | 'TENANT_RATE_LIMIT' | 'API_KEY_RATE_LIMIT'>

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
type Counted = FastifyRequest & { [REMAINING]?: number }

export class RequestLimits {
  private readonly perTenant: Limiter
  private readonly perKey: Limiter
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
  }

  /** Counts a request against its tenant's limit; 429 RATE_LIMITED when over it. */
  async countTenant (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    this.apply(request, reply, await this.count(this.perTenant, request))
  }

  /** Counts a request against its API key's limit (request.user is the key); 429 RATE_LIMITED when over it. */
  async countKey (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    this.apply(request, reply, await this.count(this.perKey, request))
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
