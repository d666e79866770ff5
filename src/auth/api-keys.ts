// API keys for machine clients (shared/API.md "API keys").
//
// A key reads `tk_live_<id: 12 base-36 chars>_<secret: 50 base-36 chars>` (62 + 258 random bits):
// the fixed `tk_live_` prefix lets secret scanners and people recognise one; the id part makes the
// first 20 characters (`prefix`) a lookup id that is unique within the tenant and safe to show.
// Only HMAC-SHA-256(API_KEY_SECRET, key) is stored: for a random 258-bit secret a fast keyed hash
// is as strong as any password hash (nothing to brute-force), and a leaked table without the server
// secret cannot even be checked against a candidate key (OWASP Secrets Management; NIST SP 800-107
// on HMAC). The comparison is constant-time (crypto.timingSafeEqual).
//
// Verification on the hot path is one HMAC and one comparison against a per-instance cache of the
// key's row, looked up by (tenant, prefix). `changed()` drops an entry at once: on this instance
// after a revocation, on the others when the invalidation channel tells them (plugins/invalidation.ts)
// or, failing that, when the change feed does (src/cluster/change-feed.ts). An entry is kept
// CHANGE_FEED_CACHE_TTL_MS (30 s by default) but served past API_KEY_CACHE_TTL_MS (1 s) only while
// that feed is read, so a revocation holds everywhere within 1 s whatever the channel does.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { ExpiringCache } from '../cache.ts'
import type { Scope } from './permissions.ts'
import type { ScopedClient } from '../tenancy/scoped-client.ts'

export const KEY_PREFIX = 'tk_live_'
const ID_LENGTH = 12
const SECRET_LENGTH = 50
/** A well-formed key; anything else is refused before any lookup. */
export const API_KEY_PATTERN = new RegExp(`^${KEY_PREFIX}([0-9a-z]{${ID_LENGTH}})_([0-9a-z]{${SECRET_LENGTH}})$`)
/** How often, at most, last_used_at is written for one key (ms). */
export const LAST_USED_RESOLUTION_MS = 60_000
/**
 * Keys kept per instance. An entry is served for at most API_KEY_CACHE_TTL_MS (≤ 5 s) unless the change
 * feed is read (then up to CHANGE_FEED_CACHE_TTL_MS, with changes applied within 1 s), so the bound
 * only has to hold the keys one instance checks within 5 s: 20,000 is 4,000 requests per second each
 * with another key, twice what one instance serves in all (README "Performance"). Past it, the least
 * recently used is read again.
 */
const MAX_KEYS = 20_000

/** What a verified key may do; `id` is the key's id. */
export interface VerifiedKey {
  id: string
  tenantId: string
  scopes: Scope[]
}

interface KeyRow {
  id: string
  hash: Buffer
  scopes: Scope[]
  /** ms since the epoch, or null for a key that does not expire. */
  expiresAt: number | null
  revoked: boolean
  tenantActive: boolean
  /** ms since the epoch, or 0 when never used. */
  lastUsedAt: number
}

interface Entry {
  tenantId: string
  row: KeyRow | null
}

const BASE36 = '0123456789abcdefghijklmnopqrstuvwxyz'

/** `length` uniform base-36 characters from the CSPRNG (bytes ≥ 252 = 7 × 36 are rejected: no modulo bias). */
function randomBase36 (length: number): string {
  let out = ''
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 252 && out.length < length) out += BASE36[byte % 36]
    }
  }
  return out
}

/** A new key and its shown prefix (`tk_live_` + id, 20 characters). */
export function generateApiKey (): { key: string; prefix: string } {
  const prefix = `${KEY_PREFIX}${randomBase36(ID_LENGTH)}`
  return { key: `${prefix}_${randomBase36(SECRET_LENGTH)}`, prefix }
}

/** Whether a Bearer credential is meant as an API key (then it never falls back to the JWT path). */
export const looksLikeApiKey = (credential: string) => credential.startsWith('tk_')

export type KeyLoader = (tenantId: string, prefix: string) => Promise<KeyRow | null>

export class ApiKeyService {
  /** Rows by `<tenantId>:<prefix>`; a load that overlapped an invalidation is not kept (it may be stale). */
  private readonly entries: ExpiringCache<Entry>
  private readonly dummyHash: Buffer

  /**
   * @param ttlMs how long a key's row is served (API_KEY_CACHE_TTL_MS, ms)
   * @param keepMs how long it is served while the change feed is read (CHANGE_FEED_CACHE_TTL_MS, ms; see coverBy)
   */
  constructor (
    private readonly secret: string,
    ttlMs: number,
    private readonly forTenant: (tenantId: string) => ScopedClient,
    private readonly onWriteError: (error: unknown) => void = () => {},
    keepMs = ttlMs
  ) {
    this.entries = new ExpiringCache({ max: MAX_KEYS, ttlMs, keepMs, tags: (entry) => [`tenant:${entry.tenantId}`, ...(entry.row ? [`key:${entry.row.id}`] : [])] })
    this.dummyHash = this.hash('tk_live_dummy')
  }

  /** HMAC-SHA-256 of the whole key under API_KEY_SECRET (32 bytes). */
  hash (key: string): Buffer {
    return createHmac('sha256', this.secret).update(key).digest()
  }

  /** The hex digest stored in api_keys.key_hash. */
  storedHash (key: string): string {
    return this.hash(key).toString('hex')
  }

  /**
   * The key's grants when `presented` is a live key of `tenantId`; null for every other case
   * (malformed, unknown, another tenant's, one character off, revoked, expired, tenant suspended),
   * which callers answer identically. Costs one HMAC and, on a cache miss, one indexed query.
   */
  async verify (tenantId: string, presented: string, now = Date.now()): Promise<VerifiedKey | null> {
    const digest = this.hash(presented) // computed for every input, so malformed keys cost the same
    const match = API_KEY_PATTERN.exec(presented)
    if (!match) return null
    const prefix = `${KEY_PREFIX}${match[1]}`
    const { row } = await this.entries.getOrLoad(`${tenantId}:${prefix}`, async () => ({ tenantId, row: await this.load(tenantId, prefix) }))
    const same = timingSafeEqual(digest, row?.hash ?? this.dummyHash)
    if (!row || !same || row.revoked || !row.tenantActive || (row.expiresAt !== null && row.expiresAt <= now)) return null
    this.touch(tenantId, row, now)
    return { id: row.id, tenantId, scopes: row.scopes }
  }

  /** Rows are served up to keepMs while `covers()` holds (the change feed was read within the last second). */
  coverBy (covers: () => boolean): void {
    this.entries.coveredBy = covers
  }

  /**
   * A key was revoked or changed — here (it stops working at once), on another instance (the
   * invalidation channel) or anywhere (the change feed): its row is looked up afresh. Key ids are
   * UUIDs, unique across tenants.
   */
  changed (keyId: string): void {
    this.entries.deleteTagged(`key:${keyId}`)
  }

  /** Forgets every cached key (the invalidation channel reconnected: messages may have been missed). */
  forgetAll (): void {
    this.entries.clear()
  }

  /** Call after suspending or reactivating a tenant: its keys are looked up afresh. */
  tenantChanged (tenantId: string): void {
    this.entries.deleteTagged(`tenant:${tenantId}`)
  }

  private async load (tenantId: string, prefix: string): Promise<KeyRow | null> {
    const key = await this.forTenant(tenantId).apiKey.findFirst({
      where: { prefix },
      select: { id: true, keyHash: true, scopes: true, expiresAt: true, revokedAt: true, lastUsedAt: true, tenant: { select: { status: true } } },
    })
    if (!key) return null
    return {
      id: key.id,
      hash: Buffer.from(key.keyHash, 'hex'),
      scopes: key.scopes as Scope[],
      expiresAt: key.expiresAt?.getTime() ?? null,
      revoked: key.revokedAt !== null,
      tenantActive: key.tenant.status === 'active',
      lastUsedAt: key.lastUsedAt?.getTime() ?? 0,
    }
  }

  /**
   * Records the use at most once a minute per key: never a write per request. The condition in the
   * UPDATE makes it at most once a minute across instances too. Not awaited: a failed write costs
   * only the timestamp's freshness, never the request.
   */
  private touch (tenantId: string, row: KeyRow, now: number): void {
    if (now - row.lastUsedAt < LAST_USED_RESOLUTION_MS) return
    row.lastUsedAt = now // the cached row: later requests of this minute skip the write
    const at = new Date(now)
    this.forTenant(tenantId).apiKey.updateMany({
      where: { id: row.id, OR: [{ lastUsedAt: null }, { lastUsedAt: { lt: new Date(now - LAST_USED_RESOLUTION_MS) } }] },
      data: { lastUsedAt: at },
    }).catch(this.onWriteError)
  }
}
