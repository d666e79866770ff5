// The optional Redis of a deployment with several instances (REDIS_URL): `app.redis`, or null when
// unset. Redis being down at start or later never stops the API (see plugins/limits.ts and
// plugins/invalidation.ts for what each user of it does meanwhile); each outage is logged once.
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Redis } from 'ioredis'
import { connectRedis, createRedis } from '../src/cluster/redis.ts'

declare module 'fastify' {
  interface FastifyInstance {
    /** The shared store's client (fail-fast options: src/cluster/redis.ts), or null without REDIS_URL. */
    redis: Redis | null
  }
}

export default fp(
  async function redisPlugin (app: FastifyInstance) {
    const url = app.config.REDIS_URL
    if (!url) {
      app.decorate('redis', null)
      return
    }
    const redis = createRedis(url, (up, error) => {
      if (up) app.log.info('redis: connected')
      else app.log.warn({ err: error?.message }, 'redis: unreachable; limits count in this instance\'s memory until it is back')
    })
    app.decorate('redis', redis)
    app.addHook('onClose', async () => {
      redis.disconnect()
    })
    if (!(await connectRedis(redis))) app.log.warn('redis: not reachable at start; starting anyway (it keeps reconnecting)')
  },
  { name: 'redis', dependencies: ['config'] }
)
