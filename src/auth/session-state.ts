// What decides, on every authenticated request, whether a genuine access token still counts: its
// session is neither revoked nor expired and its user still exists and is active. Reading that from
// the database on every request would double the work of each request, so it is cached: for
// CHANGE_FEED_CACHE_TTL_MS while the change feed is read (src/cluster/change-feed.ts: any change
// holds within 1 s), else for REVOCATION_CACHE_TTL_MS (≤ 5 s). Changes made through this process drop
// the affected entries at once; changes made by another instance arrive through the invalidation
// channel (plugins/invalidation.ts) and the change feed. Worst case, while both are down: a token
// revoked elsewhere keeps working on this instance for REVOCATION_CACHE_TTL_MS after the change.
import { ExpiringCache } from '../cache.ts'
import type { Role } from './jwt.ts'

export interface SessionState {
  userId: string
  /** The user's current role (fresher than the token's claim). */
  role: Role
  /** False once revoked, or when the user is deactivated. */
  usable: boolean
  expiresAt: number
}

interface Entry {
  tenantId: string
  sessionId: string
  state: SessionState | null
}

/** What was dropped: told to the other instances (plugins/invalidation.ts) so they drop it too. */
export type SessionDrop = { kind: 'session'; tenantId: string; sessionId: string } | { kind: 'user'; tenantId: string; userId: string }

export type SessionLoader = (tenantId: string, sessionId: string) => Promise<SessionState | null>

/**
 * Sessions kept. An entry is served for at most the TTL (≤ 5 s; CHANGE_FEED_CACHE_TTL_MS while the
 * change feed is read), so the bound has to hold the sessions one instance checks within that time: 20,000 is 4,000 authenticated requests per second each
 * from a different session, twice what one instance serves in all (README "Performance"). Past it,
 * the least recently used is read again: a query, not an error.
 */
const MAX_SESSIONS = 20_000

export class SessionStateCache {
  /** Entries by `<tenantId>:<sessionId>`; a load that overlapped an invalidation is not kept (it may be stale). */
  private readonly entries: ExpiringCache<Entry>
  /** Called after each drop made by this process (not by apply()): the cluster broadcast. */
  onDrop: ((drop: SessionDrop) => void) | null = null

  /** `ttlMs`, `keepMs`: REVOCATION_CACHE_TTL_MS and CHANGE_FEED_CACHE_TTL_MS (ms; keepMs applies while coverBy's feed is read). */
  constructor (ttlMs: number, private readonly load: SessionLoader, keepMs = ttlMs) {
    this.entries = new ExpiringCache({
      max: MAX_SESSIONS,
      ttlMs,
      keepMs,
      tags: (entry) => [`session:${entry.sessionId}`, `tenant:${entry.tenantId}`, ...(entry.state ? [`user:${entry.state.userId}`] : [])],
    })
  }

  /** Entries are served up to keepMs while `covers()` holds (the change feed was read within the last second). */
  coverBy (covers: () => boolean): void {
    this.entries.coveredBy = covers
  }

  /** The session's state, or null when it does not exist (deleted, or its user was). */
  async get (tenantId: string, sessionId: string): Promise<SessionState | null> {
    const entry = await this.entries.getOrLoad(`${tenantId}:${sessionId}`, async () => ({ tenantId, sessionId, state: await this.load(tenantId, sessionId) }))
    return entry.state
  }

  dropSession (tenantId: string, sessionId: string): void {
    this.apply({ kind: 'session', tenantId, sessionId })
    this.onDrop?.({ kind: 'session', tenantId, sessionId })
  }

  dropUser (tenantId: string, userId: string): void {
    this.apply({ kind: 'user', tenantId, userId })
    this.onDrop?.({ kind: 'user', tenantId, userId })
  }

  /** Drops what another instance dropped (no broadcast). */
  apply (drop: SessionDrop): void {
    if (drop.kind === 'session') this.entries.delete(`${drop.tenantId}:${drop.sessionId}`)
    else this.forgetUser(drop.userId)
  }

  /** A session changed somewhere (the change feed, which knows ids only: session ids are UUIDs, unique across tenants). */
  forgetSession (sessionId: string): void {
    this.entries.deleteTagged(`session:${sessionId}`)
  }

  /** A user changed somewhere (the change feed, the channel; user ids are UUIDs): every session state of that user is read again. */
  forgetUser (userId: string): void {
    this.entries.deleteTagged(`user:${userId}`)
  }

  /** Forgets everything (after the invalidation channel was down: messages may have been missed). */
  dropAll (): void {
    this.entries.clear()
  }

  dropTenant (tenantId: string): void {
    this.entries.deleteTagged(`tenant:${tenantId}`)
  }
}
