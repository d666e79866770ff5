// Tells every other instance what this one just invalidated (revoked sessions, changed users,
// changed tenants, revoked API keys), and applies what they tell it, so that a revocation,
// suspension or role change holds on every instance within a second (shared/API.md "Operating
// guarantees"). The transport is Redis pub/sub when REDIS_URL is set, else PostgreSQL LISTEN/NOTIFY
// on a dedicated connection to DATABASE_URL (src/cluster/invalidation.ts). Whenever the channel is
// down, each cache's TTL (≤ 5 s) remains the bound.
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { PostgresInvalidationChannel, RedisInvalidationChannel, type ChannelLog, type InvalidationChannel } from '../src/cluster/invalidation.ts'

declare module 'fastify' {
  interface FastifyInstance {
    /** The cluster channel of cache invalidations (wired to app.auth, app.tenants and app.apiKeys already). */
    invalidation: InvalidationChannel
  }
}

export default fp(
  async function invalidationPlugin (app: FastifyInstance) {
    const { config, redis, auth, tenants, apiKeys } = app
    const log: ChannelLog = (level, message, error) => app.log[level]({ err: error instanceof Error ? error.message : undefined }, message)
    const channel: InvalidationChannel = redis
      ? new RedisInvalidationChannel(redis, `${config.REDIS_KEY_PREFIX}invalidation`, log)
      : new PostgresInvalidationChannel(app.database.ownerUrl, 'tenant_api_invalidation', log)

    auth.states.onDrop = (drop) => channel.publish(drop)
    tenants.onInvalidate = (tenant) => channel.publish({ kind: 'tenant', tenantId: tenant.id, slug: tenant.slug, domain: tenant.domain ?? null })
    apiKeys.onKeyRevoked = (tenantId, keyId) => channel.publish({ kind: 'api_key', tenantId, keyId })
    channel.onMessage((message) => {
      if (message.kind === 'tenant') {
        tenants.forget({ id: message.tenantId, slug: message.slug, domain: message.domain })
        if (message.tenantId) apiKeys.tenantChanged(message.tenantId) // a suspended tenant's keys stop here too
      } else if (message.kind === 'api_key') apiKeys.revoked(message.tenantId, message.keyId)
      else auth.states.apply(message)
    })
    channel.onResync(() => {
      auth.states.dropAll()
      tenants.forgetAll()
      apiKeys.forgetAll() // a revocation missed while the channel was down must not outlive the reconnect
    })
    app.decorate('invalidation', channel)
    await channel.start()
    if (!channel.connected) app.log.warn('invalidation channel not connected at start; retrying (changes reach this instance by cache expiry meanwhile)')
    app.addHook('onClose', async () => {
      auth.states.onDrop = null
      tenants.onInvalidate = null
      apiKeys.onKeyRevoked = null
      await channel.close()
    })
  },
  { name: 'invalidation', dependencies: ['config', 'database', 'redis', 'tenant', 'auth', 'api-keys'] }
)
