// Every rate limit of the API, in one place and one store: `app.limits.create({ name, max, windowMs,
// key })` gives a limiter whose counters live in Redis when REDIS_URL is set (shared by every
// instance) and in this instance's memory otherwise, or while Redis is down
// (src/limits/fallback-store.ts). Counting is @fastify/rate-limit's (fixed window per key).
//
// Adding a limit is one line, e.g. a per-API-key limit:
//   const perKey = app.limits.create({ name: 'api-key', max: 600, windowMs: 60_000, key: (r) => r.apiKeyId })
//   … onRequest: perKey.enforce   (or `await perKey.enforce(request)` inside a hook)
import rateLimit, { normalizeIP } from '@fastify/rate-limit'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { AppError } from '../src/errors.ts'
import { fallbackStoreClass } from '../src/limits/fallback-store.ts'

/** What a limit counts and how much it allows. */
export interface LimitSpec {
  /**
   * Part of every key: limits of different names never share counters; two limits of one name share
   * them (their `max` and `windowMs` must agree), each counting under its own `key` (routes/me.ts
   * counts a wrong current password into the login's failures so).
   */
  name: string
  /** Requests (or events) allowed per window per key. */
  max: number
  /** Window length in milliseconds (a fixed window starting at the key's first hit). */
  windowMs: number
  /**
   * What is counted: a function of the request (default: the client address, clientAddress), or
   * `'named'` when every caller names the key itself (`hit(request, key)`: src/auth/login-failures.ts
   * counts under the email its route means); `create` then answers a NamedKeyLimiter.
   */
  key?: ((request: FastifyRequest) => string) | 'named'
}

/** A limiter's state for one key. */
export interface LimitState {
  /** Hits left in the window (0 once exhausted). */
  remaining: number
  /** Seconds until the window ends (≥ 1 when exhausted: the Retry-After to send). */
  retryAfterS: number
  /** More hits than `max` in this window. */
  exceeded: boolean
}

/** A limit counted under the request's own key (the spec's `key` function, or the client address). */
export interface Limiter {
  /** Counts the request; throws 429 RATE_LIMITED with Retry-After beyond `max`. Usable as an onRequest/preHandler hook. */
  enforce(request: FastifyRequest): Promise<void>
  /** Takes back the hit `enforce` counted for `request`, as NamedKeyLimiter.refund. */
  refund(request: FastifyRequest): Promise<void>
}

/** A limit whose callers name each key (spec `key: 'named'`): it has no `enforce`, since a request alone does not say what to count. */
export interface NamedKeyLimiter {
  /** Counts one event (e.g. a failed login) under `key` and returns the state after it. */
  hit(request: FastifyRequest, key: string): Promise<LimitState>
  /**
   * Forgets one key's count (every instance's, when counted in Redis): the next hit starts a new
   * window. Never throws (a Redis that cannot answer keeps its count until the window ends).
   */
  clear(key: string): Promise<void>
  /**
   * Takes back one hit of `key` counted for work that then failed for certain (a transaction rolled
   * back before COMMIT), so that failed work spends no budget. Never below 0 nor creating a key;
   * never throws (a Redis that cannot answer keeps the hit until the window ends).
   */
  refund(key: string): Promise<void>
}

export interface Limits {
  /** A limit counted under keys its callers name; throws (at start) when two limits of one name disagree on `max` or `windowMs`. */
  create(spec: LimitSpec & { key: 'named' }): NamedKeyLimiter
  /** A limit counted under the request's key; throws as above. */
  create(spec: LimitSpec & { key?: (request: FastifyRequest) => string }): Limiter
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Rate limits shared across instances when REDIS_URL is set: `app.limits.create({ name, max, windowMs, key })`. */
    limits: Limits
  }
}

/** 429 RATE_LIMITED with `Retry-After: <seconds>` (at least 1). */
export const rateLimited = (seconds: number) =>
  new AppError('RATE_LIMITED', 'Too many attempts, retry later', { 'retry-after': String(Math.max(1, Math.ceil(seconds))) })

/**
 * The client address as the limits count it: request.ip (the first untrusted hop: TRUST_PROXY),
 * IPv4-mapped IPv6 as IPv4, and an IPv6 address as its /64 (one subscriber usually holds a whole /64).
 */
export const clientAddress = (request: FastifyRequest): string => normalizeIP(request.ip)

export default fp(
  async function limitsPlugin (app: FastifyInstance) {
    const { config, redis } = app
    if (!redis && config.isProduction) {
      app.log.warn('REDIS_URL is not set: rate limits are counted per instance (with N instances, N × each limit); set REDIS_URL when running more than one')
    }
    let lastWarning = 0
    const onRedisError = (error: Error) => {
      // One line per 10 s at most: during an outage every limited request lands here.
      if (Date.now() - lastWarning < 10_000) return
      lastWarning = Date.now()
      app.log.warn({ err: error.message }, 'rate limits: redis failed, counting in this instance\'s memory')
    }
    // The decorators below are this plugin's only interface; global: false keeps routes unlimited
    // unless they use a limiter.
    const store = fallbackStoreClass(redis, `${config.REDIS_KEY_PREFIX}limit:`, onRedisError)
    app.addHook('onClose', async () => store.close())
    await app.register(rateLimit, { global: false, store })

    // One counting function per limit name (its counters: the in-memory store keeps one set per
    // function, Redis one per key); each limiter of that name says which key it counts under.
    const checks = new Map<string, { spec: LimitSpec, keyOf: WeakMap<FastifyRequest, string>, check: ReturnType<typeof app.createRateLimit> }>()
    function create (spec: LimitSpec & { key: 'named' }): NamedKeyLimiter
    function create (spec: LimitSpec & { key?: (request: FastifyRequest) => string }): Limiter
    function create (spec: LimitSpec): Limiter | NamedKeyLimiter {
      let shared = checks.get(spec.name)
      if (shared && (shared.spec.max !== spec.max || shared.spec.windowMs !== spec.windowMs)) throw new Error(`two limits named ${spec.name} disagree on max or windowMs`)
      if (!shared) {
        const keyOf = new WeakMap<FastifyRequest, string>()
        shared = { spec, keyOf, check: app.createRateLimit({ max: spec.max, timeWindow: spec.windowMs, keyGenerator: (request) => `${spec.name}:${keyOf.get(request)}` }) }
        checks.set(spec.name, shared)
      }
      const { keyOf, check } = shared
      // Every caller counts first (a check that only reads raced the checks in flight: review 89).
      const hit = async (request: FastifyRequest, counted: string): Promise<LimitState> => {
        keyOf.set(request, counted)
        const result = await check(request, { increment: true })
        if (result.isAllowed) return { remaining: Number.POSITIVE_INFINITY, retryAfterS: 0, exceeded: false } // allow-listed (unused)
        return { remaining: result.remaining, retryAfterS: Math.max(1, result.ttlInSeconds), exceeded: result.isExceeded }
      }
      if (spec.key === 'named') {
        return {
          hit,
          clear: (counted) => store.clear(`${spec.name}:${counted}`),
          refund: (counted: string) => store.refund(`${spec.name}:${counted}`),
        }
      }
      const key = spec.key ?? clientAddress
      return {
        async enforce (request) {
          const after = await hit(request, key(request))
          if (after.exceeded) throw rateLimited(after.retryAfterS)
        },
        refund: (request: FastifyRequest) => store.refund(`${spec.name}:${key(request)}`),
      }
    }
    app.decorate('limits', { create })
  },
  { name: 'limits', dependencies: ['config', 'redis'] }
)
