// Taking a hit back (src/limits/fallback-store.ts refund), in the machine's Redis and in memory: a
// refund never takes a count below 0 nor creates a key, so refunds beyond the hits (an expired
// window, a race) never hand out extra attempts.
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import t from 'tap'
import { fallbackStoreClass } from '../src/limits/fallback-store.ts'
import { machineRedisUrl } from './helper.ts'

const WINDOW_MS = 60_000

for (const where of ['redis', 'memory'] as const) {
  t.test(`a refund never goes below 0 nor creates a key (counted in ${where})`, async (t) => {
    const redis = where === 'redis' ? new Redis(machineRedisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 }) : null
    t.teardown(() => redis?.quit())
    const prefix = `test-${randomUUID()}:`
    const Store = fallbackStoreClass(redis, prefix, (error) => t.fail(`redis failed: ${error.message}`))
    t.teardown(() => Store.close())
    const store = new Store()
    const count = (method: 'incr' | 'read', key: string) => new Promise<number>((resolve, reject) =>
      store[method](key, (error, result) => (error ? reject(error) : resolve(result!.current)), WINDOW_MS, 3))

    await Store.refund('never-hit')
    if (redis) t.equal(await redis.exists(`${prefix}never-hit`), 0, 'no key created')
    t.equal(await count('incr', 'never-hit'), 1, 'the first hit counts 1')

    t.equal(await count('incr', 'k'), 1)
    t.equal(await count('incr', 'k'), 2)
    await Store.refund('k')
    t.equal(await count('read', 'k'), 1, 'one hit taken back')
    await Store.refund('k')
    await Store.refund('k')
    t.equal(await count('read', 'k'), 0, 'not below 0')
    t.equal(await count('incr', 'k'), 1, 'the next hit counts 1: no extra attempt')
    if (redis) t.ok(await redis.pttl(`${prefix}k`) > 0, 'the key still expires')
  })
}
