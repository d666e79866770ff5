// A store for @fastify/rate-limit that counts in Redis (shared by every instance, with the plugin's
// own atomic Lua script: @fastify/rate-limit's RedisStore) and, whenever Redis cannot answer, in
// this instance's memory (its LocalStore). Why our own wrapper: the plugin offers only "fail open"
// (skipOnError: no limit at all while Redis is down) or "fail" (every limited request errors);
// falling back to per-instance counters keeps every limit in force — N instances admit at most N ×
// the limit during an outage — and keeps the API up.
// A Redis that refuses connections fails each command at once, but a frozen one or a partition that
// drops packets fails it only after the client's command timeout (500 ms: src/cluster/redis.ts),
// which every request would wait out. So the Redis side sits behind a circuit breaker (opossum):
// after one failed command, counting stays in memory for REDIS_RETRY_AFTER_MS, then one command tries
// Redis again (half-open) while the others still count in memory.
import { createRequire } from 'node:module'
import type { Redis } from 'ioredis'
import CircuitBreaker from 'opossum'

const require = createRequire(import.meta.url)

type Result = { current: number; ttl: number }
type Callback = (error: Error | null, result?: Result) => void
interface Store {
  incr(key: string, callback: Callback, timeWindow: number, max: number): void
  read(key: string, callback: Callback, timeWindow: number, max: number): void
  child(routeOptions: object): Store
}
type RedisStoreCtor = new (continueExceeding: boolean, exponentialBackoff: boolean, redis: Redis, prefix: string) => Store
// `lru`: the LocalStore's counters (toad-cache's LruMap). The plugin offers no way to forget a key,
// which clearing a limit (a reset password lifting the login lockout) needs, nor to take one hit
// back (refunding one whose work failed).
interface LocalCounters extends Store {
  lru: { delete(key: string): void, get(key: string): { current: number } | undefined }
  child(routeOptions: object): LocalCounters
}
type LocalStoreCtor = new (continueExceeding: boolean, exponentialBackoff: boolean, cache?: number) => LocalCounters

const RedisStore = require('@fastify/rate-limit/store/RedisStore.js') as RedisStoreCtor
const LocalStore = require('@fastify/rate-limit/store/LocalStore.js') as LocalStoreCtor

/** Counters kept in memory per limiter when Redis is unset or down (an LRU: least recent evicted first). */
export const LOCAL_COUNTERS = 100_000

/** After a failed Redis command, how long (ms) every limit counts in memory before Redis is tried again. */
export const REDIS_RETRY_AFTER_MS = 2_000

type Method = 'incr' | 'read'
type Counter = (local: Store, method: Method, key: string, timeWindow: number, max: number) => Promise<Result>

/** Promise form of a store's callback method. */
const counted = (store: Store, method: Method, key: string, timeWindow: number, max: number) =>
  new Promise<Result>((resolve, reject) => {
    store[method](key, (error, result) => (error ? reject(error) : resolve(result!)), timeWindow, max)
  })

class FallbackStore implements Store {
  constructor (
    /** Redis behind its breaker, whose fallback counts in the `local` store it is given; null: memory only. */
    private readonly shared: CircuitBreaker<Parameters<Counter>, Result> | null,
    private readonly local: LocalCounters,
    /** Told of each child store's memory counters (one set per limiter), so that a key can be cleared in all. */
    private readonly onChild: (local: LocalCounters) => void
  ) {
    onChild(local)
  }

  incr (key: string, callback: Callback, timeWindow: number, max: number): void {
    this.run('incr', key, callback, timeWindow, max)
  }

  read (key: string, callback: Callback, timeWindow: number, max: number): void {
    this.run('read', key, callback, timeWindow, max)
  }

  child (routeOptions: object): Store {
    return new FallbackStore(this.shared, this.local.child({ ...routeOptions, cache: LOCAL_COUNTERS }), this.onChild)
  }

  private run (method: Method, key: string, callback: Callback, timeWindow: number, max: number): void {
    // Shut down when the app closes: requests still draining count in memory.
    if (!this.shared || this.shared.isShutdown) return this.local[method](key, callback, timeWindow, max)
    this.shared.fire(this.local, method, key, timeWindow, max).then((result) => callback(null, result), callback)
  }
}

/**
 * The store class to give @fastify/rate-limit (`store:`): Redis keys are `<prefix><limit name>:<key>`
 * (the limit names keep limiters apart, so the plugin's per-route key suffix is not used).
 * `redis` null: memory only. `onRedisError` is called with each failed Redis command (not for the
 * commands counted in memory while the breaker is open). Call the class's static `close()` when the
 * app closes: it stops the breaker's timers. Its static `clear(key)` forgets one key's count (`<limit
 * name>:<key>`) in memory and in Redis; its static `refund(key)` takes one hit of the key back where
 * hits count now (Redis while its breaker is closed, else memory): never below 0 nor creating a key;
 * in memory the window's start is kept (an ended window is reset by the next hit), in Redis a count
 * back at 0 starts a new window at the next hit, which counts as no hits did. Neither throws: a
 * Redis that cannot answer is reported to `onRedisError` and its count is left to expire with its
 * window.
 */
export function fallbackStoreClass (redis: Redis | null, prefix: string, onRedisError: (error: Error) => void) {
  let shared: CircuitBreaker<Parameters<Counter>, Result> | null = null
  if (redis) {
    const redisStore = new RedisStore(false, false, redis, prefix)
    const inRedis: Counter = (_local, method, key, timeWindow, max) => counted(redisStore, method, key, timeWindow, max)
    shared = new CircuitBreaker(inRedis, {
      timeout: false, // the client's own command timeout bounds each command
      errorThresholdPercentage: 0, // one failure opens it
      resetTimeout: REDIS_RETRY_AFTER_MS,
    })
    shared.fallback((local: Store, method: Method, key: string, timeWindow: number, max: number) => counted(local, method, key, timeWindow, max))
    shared.on('failure', onRedisError)
  }
  const locals = new Set<LocalCounters>()
  const remember = (local: LocalCounters) => locals.add(local)
  return class SharedStore extends FallbackStore {
    constructor () {
      super(shared, new LocalStore(false, false, LOCAL_COUNTERS), remember)
    }

    static close (): void {
      shared?.shutdown()
    }

    static async clear (key: string): Promise<void> {
      // Every limiter's memory (a handful of sets; keys carry the limit's name, so one holds it).
      for (const local of locals) local.lru.delete(key)
      // Tried even while the breaker is open: the count there would outlive the outage otherwise.
      await redis?.del(prefix + key).catch(onRedisError)
    }

    static async refund (key: string): Promise<void> {
      // Where a hit would count now: Redis only while the breaker is closed (half-open, the other
      // hits fall back to memory). A breaker that changed state since the hit refunds the other
      // store: one hit more or less, in a race of a database failure with a Redis one.
      if (redis && shared && shared.closed && !shared.isShutdown) {
        await redis.eval(REFUND_SCRIPT, 1, prefix + key).catch(onRedisError)
        return
      }
      for (const local of locals) {
        const count = local.lru.get(key)
        if (count && count.current > 0) count.current--
      }
    }
  }
}

/** One hit back, never below 0 and never on a missing (expired) key; DECR keeps the key's expiry. */
const REFUND_SCRIPT = `local current = tonumber(redis.call('GET', KEYS[1]))
if current and current > 0 then return redis.call('DECR', KEYS[1]) end
return 0`
