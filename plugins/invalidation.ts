// Tells every other instance what this one just invalidated (revoked sessions, changed users,
// changed tenants, revoked API keys), and applies what they tell it, so that a revocation,
// suspension or role change holds on every instance within a second (shared/API.md "Operating
// guarantees"). The transport is Redis pub/sub when REDIS_URL is set, else PostgreSQL LISTEN/NOTIFY
// on a dedicated connection to DATABASE_URL (src/cluster/invalidation.ts). A channel can lose a
// message, so the same changes also come through the change feed (src/cluster/change-feed.ts), which
// every instance polls from the database: while it is read, the caches keep entries for
// CHANGE_FEED_CACHE_TTL_MS and any change still holds within 1 s; when it cannot be read, each
// cache's own TTL (≤ 5 s) is the bound again.
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { ChangeFeed, readChanges, type Change } from '../src/cluster/change-feed.ts'
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
      } else if (message.kind === 'api_key') apiKeys.changed(message.keyId)
      else auth.states.apply(message)
    })
    const forgetEverything = () => {
      auth.states.dropAll()
      tenants.forgetAll()
      apiKeys.forgetAll() // a revocation missed while the channel was down must not outlive the reconnect
    }
    channel.onResync(forgetEverything)
    app.decorate('invalidation', channel)

    // The change feed: what the channel carries, from durable state (by id: it knows no slugs).
    const applyChange = (change: Change) => {
      if (change.kind === 'tenant') {
        tenants.forgetId(change.id)
        apiKeys.tenantChanged(change.id)
      } else if (change.kind === 'session') auth.states.forgetSession(change.id)
      else if (change.kind === 'user') auth.states.forgetUser(change.id)
      else apiKeys.changed(change.id)
    }
    const feed = config.CHANGE_FEED_CACHE_TTL_MS > 0
      ? new ChangeFeed({
        read: (cursor) => readChanges(app.database.platformDb, cursor),
        onChange: applyChange,
        onResync: forgetEverything,
        onNewServer: () => app.log.info('change feed: another database server answered (restart, failover or restore): every cached tenant, session and API key dropped'),
        prune: () => app.database.platformDb.$queryRaw`SELECT app_prune_change_feed()`,
        onHealth: (healthy, error) => healthy
          ? app.log.info('change feed read again: cached tenants, sessions and API keys are kept up to CHANGE_FEED_CACHE_TTL_MS')
          : app.log.warn({ err: error instanceof Error ? error.message : undefined }, 'change feed unreadable: cached tenants, sessions and API keys are served only their own TTL meanwhile'),
      })
      : undefined
    if (feed) {
      const covers = () => feed.covers()
      tenants.coverBy(covers)
      auth.states.coverBy(covers)
      apiKeys.coverBy(covers)
      await feed.start()
    }

    await channel.start()
    if (!channel.connected) app.log.warn('invalidation channel not connected at start; retrying (changes reach this instance by cache expiry meanwhile)')
    app.addHook('onClose', async () => {
      auth.states.onDrop = null
      tenants.onInvalidate = null
      apiKeys.onKeyRevoked = null
      await Promise.all([channel.close(), feed?.stop()])
    })
  },
  { name: 'invalidation', dependencies: ['config', 'database', 'redis', 'tenant', 'auth', 'api-keys'] }
)
