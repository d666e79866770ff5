// The channel through which instances tell each other "drop what you cached about X": a revoked
// session, a changed user, a changed tenant, a revoked API key. Each instance still bounds its caches
// by a TTL (REVOCATION_CACHE_TTL_MS, TENANT_CACHE_TTL_MS, API_KEY_CACHE_TTL_MS), which stays the
// safety net whenever the channel is down; with the channel up, a change holds everywhere within
// milliseconds.
//
// Two transports, one interface: PostgreSQL LISTEN/NOTIFY on a dedicated connection (no extra
// infrastructure), or Redis pub/sub when REDIS_URL is set. Both reconnect by themselves; after a
// reconnection the instance may have missed messages, so `onResync` handlers drop every cached entry.
import { randomUUID } from 'node:crypto'
import type { Redis } from 'ioredis'
import pg from 'pg'

/** What another instance must forget. Ids are UUIDs; slug/domain are the tenant's Host names. */
export type Invalidation =
  | { kind: 'session'; tenantId: string; sessionId: string }
  | { kind: 'user'; tenantId: string; userId: string }
  | { kind: 'tenant'; tenantId?: string; slug: string; domain?: string | null }
  | { kind: 'api_key'; tenantId: string; keyId: string }

interface Envelope {
  /** The sending instance: it already applied the change to its own caches. */
  origin: string
  message: Invalidation
}

export interface InvalidationChannel {
  /** Sends to every other instance; never throws (a lost message is covered by the caches' TTL). */
  publish(message: Invalidation): void
  /** `handler` runs for every message of another instance. */
  onMessage(handler: (message: Invalidation) => void): void
  /** `handler` runs after a reconnection (messages may have been missed meanwhile). */
  onResync(handler: () => void): void
  /** True while messages can be sent and received. */
  readonly connected: boolean
  start(): Promise<void>
  close(): Promise<void>
}

export type ChannelLog = (level: 'info' | 'warn', message: string, error?: unknown) => void

/** NOTIFY payloads are at most 8000 bytes; ours are a few hundred. */
const MAX_PAYLOAD = 7_900

abstract class BaseChannel implements InvalidationChannel {
  protected readonly origin = randomUUID()
  private readonly messageHandlers: Array<(message: Invalidation) => void> = []
  private readonly resyncHandlers: Array<() => void> = []
  abstract readonly connected: boolean

  constructor (protected readonly log: ChannelLog) {}

  abstract publish (message: Invalidation): void
  abstract start (): Promise<void>
  abstract close (): Promise<void>

  onMessage (handler: (message: Invalidation) => void): void {
    this.messageHandlers.push(handler)
  }

  onResync (handler: () => void): void {
    this.resyncHandlers.push(handler)
  }

  protected encode (message: Invalidation): string | null {
    const payload = JSON.stringify({ origin: this.origin, message } satisfies Envelope)
    if (payload.length > MAX_PAYLOAD) {
      this.log('warn', 'invalidation: message too large, not sent (the cache TTL applies)')
      return null
    }
    return payload
  }

  protected receive (payload: string): void {
    let envelope: Envelope
    try {
      envelope = JSON.parse(payload) as Envelope
    } catch {
      return // not ours
    }
    if (envelope.origin === this.origin || typeof envelope.message?.kind !== 'string') return
    for (const handler of this.messageHandlers) handler(envelope.message)
  }

  protected resync (): void {
    for (const handler of this.resyncHandlers) handler()
  }
}

/**
 * LISTEN/NOTIFY on one dedicated connection (never a pooled one: a pooler in transaction mode does
 * not keep LISTEN). Reconnects with a backoff of 100 ms doubling to 2 s.
 */
export class PostgresInvalidationChannel extends BaseChannel {
  private client: pg.Client | null = null
  private closed = false
  private everConnected = false
  private retryTimer: NodeJS.Timeout | undefined
  private attempt = 0

  constructor (private readonly url: string, private readonly channel: string, log: ChannelLog) {
    super(log)
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(channel)) throw new Error(`invalid channel name ${channel}`)
  }

  get connected (): boolean {
    return this.client !== null
  }

  /** Connects once (a failure schedules retries, it does not throw: the API runs without the channel). */
  async start (): Promise<void> {
    await this.connect()
  }

  publish (message: Invalidation): void {
    const payload = this.encode(message)
    if (payload === null) return
    const client = this.client
    if (!client) {
      this.log('warn', 'invalidation: channel down, message not sent (the cache TTL applies)')
      return
    }
    client.query('SELECT pg_notify($1, $2)', [this.channel, payload]).catch((error: unknown) => {
      this.log('warn', 'invalidation: NOTIFY failed (the cache TTL applies)', error)
    })
  }

  async close (): Promise<void> {
    this.closed = true
    clearTimeout(this.retryTimer)
    const client = this.client
    this.client = null
    await client?.end().catch(() => {})
  }

  private async connect (): Promise<void> {
    if (this.closed) return
    const client = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: 5_000, keepAlive: true, application_name: 'tenant-api-invalidation' })
    let failed = false
    const lost = (error?: unknown) => {
      if (failed) return
      failed = true
      if (this.client === client) this.client = null
      client.end().catch(() => {})
      if (this.closed) return
      this.log('warn', 'invalidation: LISTEN connection lost, reconnecting', error)
      this.scheduleReconnect()
    }
    client.on('error', lost) // a dropped socket: without a listener the process would die
    client.on('end', () => lost())
    client.on('notification', (notification) => {
      if (notification.channel === this.channel && notification.payload) this.receive(notification.payload)
    })
    try {
      await client.connect()
      await client.query(`LISTEN ${this.channel}`)
    } catch (error) {
      lost(error)
      return
    }
    if (this.closed) {
      await client.end().catch(() => {})
      return
    }
    this.client = client
    this.attempt = 0
    if (this.everConnected) {
      this.log('info', 'invalidation: LISTEN connection restored; dropping cached state that may have missed messages')
      this.resync()
    }
    this.everConnected = true
  }

  private scheduleReconnect (): void {
    clearTimeout(this.retryTimer)
    const delay = Math.min(100 * 2 ** this.attempt++, 2_000)
    this.retryTimer = setTimeout(() => void this.connect(), delay)
    this.retryTimer.unref()
  }
}

/**
 * Redis pub/sub: a subscriber connection of its own (ioredis re-subscribes after reconnecting), and
 * PUBLISH on the shared client. Used when REDIS_URL is set.
 */
export class RedisInvalidationChannel extends BaseChannel {
  private readonly subscriber: Redis
  private subscribed = false
  private everSubscribed = false

  constructor (private readonly redis: Redis, private readonly channel: string, log: ChannelLog) {
    super(log)
    // Own options: a subscriber must queue its SUBSCRIBE until connected, and keep reconnecting.
    this.subscriber = redis.duplicate({ enableOfflineQueue: true, lazyConnect: true, autoResubscribe: true })
    this.subscriber.on('message', (channel: string, payload: string) => {
      if (channel === this.channel) this.receive(payload)
    })
    this.subscriber.on('error', () => {}) // reported through 'close'/'ready' below; ioredis retries
    this.subscriber.on('close', () => {
      if (this.subscribed) this.log('warn', 'invalidation: redis subscriber disconnected, reconnecting')
      this.subscribed = false
    })
    this.subscriber.on('ready', () => {
      // 'ready' comes after ioredis re-subscribed (autoResubscribe).
      this.subscribed = true
      if (this.everSubscribed) {
        this.log('info', 'invalidation: redis subscriber restored; dropping cached state that may have missed messages')
        this.resync()
      }
      this.everSubscribed = true
    })
  }

  get connected (): boolean {
    return this.subscribed && this.redis.status === 'ready'
  }

  async start (): Promise<void> {
    // The first SUBSCRIBE is queued until connected; a Redis down at start is retried in the background.
    this.subscriber.subscribe(this.channel).catch(() => {})
    this.subscriber.connect().catch(() => {})
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 2_000)
      this.subscriber.once('ready', () => {
        clearTimeout(timer)
        resolve()
      })
    })
  }

  publish (message: Invalidation): void {
    const payload = this.encode(message)
    if (payload === null) return
    this.redis.publish(this.channel, payload).catch((error: unknown) => {
      this.log('warn', 'invalidation: PUBLISH failed (the cache TTL applies)', error)
    })
  }

  async close (): Promise<void> {
    this.subscriber.disconnect()
  }
}
