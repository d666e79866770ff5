// What decides, on every authenticated request, whether a genuine access token still counts: its
// session is neither revoked nor expired and its user still exists and is active. Reading that from
// the database on every request would double the work of each request, so it is cached for
// REVOCATION_CACHE_TTL_MS (≤ 5 s). Changes made through this process drop the affected entries at
// once; changes made by another instance are seen here when the entry expires. Worst case: a token
// revoked elsewhere keeps working on this instance for REVOCATION_CACHE_TTL_MS after the change.
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
  state: SessionState | null
  loadedAt: number
}

/** What was dropped: told to the other instances (plugins/invalidation.ts) so they drop it too. */
export type SessionDrop = { kind: 'session'; tenantId: string; sessionId: string } | { kind: 'user'; tenantId: string; userId: string }

export type SessionLoader = (tenantId: string, sessionId: string) => Promise<SessionState | null>

const MAX_ENTRIES = 100_000

export class SessionStateCache {
  private readonly entries = new Map<string, Entry>()
  /** Bumped by every invalidation: a load that started before one is not cached (it may be stale). */
  private generation = 0
  /** Called after each drop made by this process (not by apply()): the cluster broadcast. */
  onDrop: ((drop: SessionDrop) => void) | null = null

  constructor (private readonly ttlMs: number, private readonly load: SessionLoader) {}

  /** The session's state, or null when it does not exist (deleted, or its user was). */
  async get (tenantId: string, sessionId: string, now = Date.now()): Promise<SessionState | null> {
    const key = `${tenantId}:${sessionId}`
    const cached = this.entries.get(key)
    if (cached && now - cached.loadedAt < this.ttlMs) return cached.state
    const generation = this.generation
    const state = await this.load(tenantId, sessionId)
    if (this.ttlMs > 0 && generation === this.generation) this.remember(key, { tenantId, state, loadedAt: now })
    return state
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
    this.generation++
    if (drop.kind === 'session') this.entries.delete(`${drop.tenantId}:${drop.sessionId}`)
    else for (const [key, entry] of this.entries) if (entry.tenantId === drop.tenantId && entry.state?.userId === drop.userId) this.entries.delete(key)
  }

  /** Forgets everything (after the invalidation channel was down: messages may have been missed). */
  dropAll (): void {
    this.generation++
    this.entries.clear()
  }

  dropTenant (tenantId: string): void {
    this.generation++
    for (const [key, entry] of this.entries) if (entry.tenantId === tenantId) this.entries.delete(key)
  }

  private remember (key: string, entry: Entry): void {
    this.entries.delete(key) // re-insert at the end: the Map's order is the eviction order
    if (this.entries.size >= MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value!)
    this.entries.set(key, entry)
  }
}
