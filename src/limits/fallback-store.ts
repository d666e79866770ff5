// A store for @fastify/rate-limit that counts in Redis (shared by every instance, with the plugin's
// own atomic Lua script: @fastify/rate-limit's RedisStore) and, whenever Redis cannot answer, in
// this instance's memory (its LocalStore). Why our own wrapper: the plugin offers only "fail open"
// (skipOnError: no limit at all while Redis is down) or "fail" (every limited request errors);
// falling back to per-instance counters keeps every limit in force — N instances admit at most N ×
// the limit during an outage — and keeps the API up.
import { createRequire } from 'node:module'
import type { Redis } from 'ioredis'

const require = createRequire(import.meta.url)

type Result = { current: number; ttl: number }
type Callback = (error: Error | null, result?: Result) => void
interface Store {
  incr(key: string, callback: Callback, timeWindow: number, max: number): void
  read(key: string, callback: Callback, timeWindow: number, max: number): void
  child(routeOptions: object): Store
}
type RedisStoreCtor = new (continueExceeding: boolean, exponentialBackoff: boolean, redis: Redis, prefix: string) => Store
type LocalStoreCtor = new (continueExceeding: boolean, exponentialBackoff: boolean, cache?: number) => Store

const RedisStore = require('@fastify/rate-limit/store/RedisStore.js') as RedisStoreCtor
const LocalStore = require('@fastify/rate-limit/store/LocalStore.js') as LocalStoreCtor

/** Counters kept in memory per limiter when Redis is unset or down (an LRU: least recent evicted first). */
export const LOCAL_COUNTERS = 100_000

class FallbackStore implements Store {
  constructor (
    private readonly redis: Store | null,
    private readonly local: Store,
    private readonly onRedisError: (error: Error) => void
  ) {}

  incr (key: string, callback: Callback, timeWindow: number, max: number): void {
    this.run('incr', key, callback, timeWindow, max)
  }

  read (key: string, callback: Callback, timeWindow: number, max: number): void {
    this.run('read', key, callback, timeWindow, max)
  }

  child (routeOptions: object): Store {
    return new FallbackStore(this.redis, this.local.child({ ...routeOptions, cache: LOCAL_COUNTERS }), this.onRedisError)
  }

  private run (method: 'incr' | 'read', key: string, callback: Callback, timeWindow: number, max: number): void {
    if (!this.redis) return this.local[method](key, callback, timeWindow, max)
    this.redis[method](key, (error, result) => {
      if (!error) return callback(null, result)
      this.onRedisError(error)
      this.local[method](key, callback, timeWindow, max)
    }, timeWindow, max)
  }
}

/**
 * The store class to give @fastify/rate-limit (`store:`): Redis keys are `<prefix><limit name>:<key>`
 * (the limit names keep limiters apart, so the plugin's per-route key suffix is not used).
 * `redis` null: memory only.
 */
export function fallbackStoreClass (redis: Redis | null, prefix: string, onRedisError: (error: Error) => void) {
  return class SharedStore extends FallbackStore {
    constructor () {
      super(redis ? new RedisStore(false, false, redis, prefix) : null, new LocalStore(false, false, LOCAL_COUNTERS), onRedisError)
    }
  }
}
