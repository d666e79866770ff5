// A budget of "no such tenant" answers per client address, so that Host names made up by the
// thousand cannot each cost a database lookup, nor push the tenants that exist out of the
// registry's cache (src/tenancy/tenant-registry.ts). Counted in this instance's memory, not in
// Redis like the API's other limits (plugins/limits.ts): it guards this instance's own lookups
// and cache, and a Redis round trip on every cache miss would slow the tenants that do exist.
import { LRUCache } from 'lru-cache'
import { rateLimited } from '../../plugins/limits.ts'

/** Addresses counted at once; beyond it the least recently counted is forgotten (about 10 MB at most). */
const MAX_ADDRESSES = 50_000

export class UnknownHostLimit {
  /** Unknown-host answers per address in its current window (lru-cache's TTL: the window starts at its first answer). */
  private readonly counts: LRUCache<string, { answers: number }>

  /** `max` answers per `windowMs` (ms) per address (TENANT_MISSES_PER_IP_PER_MIN per 60,000 ms). */
  constructor (private readonly max: number, windowMs = 60_000) {
    this.counts = new LRUCache({ max: MAX_ADDRESSES, ttl: windowMs })
  }

  /**
   * Before a tenant lookup: throws 429 RATE_LIMITED (Retry-After: the window's remaining seconds)
   * when `address` (plugins/limits.ts clientAddress) already got `max` unknown-host answers in its window.
   */
  assertUnder (address: string): void {
    const count = this.counts.get(address)
    if (count && count.answers >= this.max) throw rateLimited(this.counts.getRemainingTTL(address) / 1000)
  }

  /** Counts one "no such tenant" answer to `address`. */
  count (address: string): void {
    const count = this.counts.get(address)
    if (count) count.answers++
    else this.counts.set(address, { answers: 1 })
  }
}
