// The Redis connections of one instance (ioredis). Options chosen so that Redis being slow or down
// never holds a request: no offline queue (a command while disconnected fails at once), one retry,
// a 500 ms command timeout; the client keeps reconnecting in the background.
import { Redis, type RedisOptions } from 'ioredis'

/** ioredis options for the shared-store client: fail fast, reconnect forever (backoff 100 ms → 2 s). */
export const failFastRedisOptions: RedisOptions = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 1,
  commandTimeout: 500,
  connectTimeout: 1_000,
  retryStrategy: (attempt) => Math.min(attempt * 100, 2_000),
  lazyConnect: true,
}

/** A client for `url`; `onStateChange(up)` reports the transitions between reachable and not (once each). */
export function createRedis (url: string, onStateChange: (up: boolean, error?: Error) => void, options: RedisOptions = {}): Redis {
  const redis = new Redis(url, { ...failFastRedisOptions, ...options })
  let up: boolean | undefined
  const report = (next: boolean, error?: Error) => {
    if (up === next) return
    up = next
    onStateChange(next, error)
  }
  redis.on('ready', () => report(true))
  // Without an 'error' listener ioredis prints every failed reconnection; one log line per outage is enough.
  redis.on('error', (error: Error) => report(false, error))
  redis.on('end', () => report(false))
  return redis
}

/** Connects, waiting at most `timeoutMs`; a Redis that is down at start is not fatal (false). */
export async function connectRedis (redis: Redis, timeoutMs = 2_000): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const connected = redis.connect().then(() => true, () => false)
  const timedOut = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), timeoutMs) })
  try {
    return await Promise.race([connected, timedOut])
  } finally {
    clearTimeout(timer)
  }
}
