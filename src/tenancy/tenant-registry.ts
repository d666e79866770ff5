// Tenant lookups by slug or custom domain, cached in memory so the hot path does not query the
// database per request. An entry lives at most TENANT_CACHE_TTL_MS (≤ 5 s, the contract's bound for
// a change made by another instance), or CHANGE_FEED_CACHE_TTL_MS for a found tenant while the change
// feed is read (src/cluster/change-feed.ts: a change then holds within 1 s); a change made through this
// process invalidates it at once. A name that found no tenant keeps the short TTL: the feed reports
// tenants by id, and a signup or a reactivation under that name must not wait for the long one.
// Under row-level security the tenants table is read through the named SECURITY DEFINER lookups of
// tenant-directory.ts (no tenant is current yet when the Host is resolved).
import { ExpiringCache } from '../cache.ts'
import type { PrismaClient } from '../generated/prisma/client.ts'
import { tenantDirectory, type DirectoryTenant } from './tenant-directory.ts'

export type ActiveTenant = DirectoryTenant

interface Entry {
  tenant: Promise<ActiveTenant | null>
  /** The tenant's id once loaded: a change of slug or domain finds the old names' entries by it. */
  tenantId?: string
}

/** Names of a changed tenant: its id (finds old slug/domain entries) and its current slug/domain. */
export type TenantKeys = { id?: string; slug: string; domain?: string | null }

/**
 * Names (slug, custom domain) kept. An entry is served for at most the TTL (≤ 5 s; a found tenant
 * CHANGE_FEED_CACHE_TTL_MS while the change feed is read), so the bound has to hold the names one
 * instance resolves within that time: 10,000 is 2,000 tenant requests per
 * second each on a different name, about what one instance serves in all (README "Performance"),
 * and five times the 2,000 names of 1,000 active tenants. Past it, the least recently used is
 * looked up again: a query, not an error.
 */
const MAX_NAMES = 10_000

export class TenantRegistry {
  /** Entries by `slug:<slug>` / `domain:<domain>`; a drop (forget) also keeps a lookup that overlapped it from being kept. */
  private readonly entries: ExpiringCache<Entry>
  /** Called after each invalidate() (plugins/invalidation.ts tells the other instances). */
  onInvalidate: ((tenant: TenantKeys) => void) | null = null

  /** `ttlMs`, `keepMs`: TENANT_CACHE_TTL_MS and CHANGE_FEED_CACHE_TTL_MS (ms; keepMs applies to found tenants while coverBy's feed is read). */
  constructor (
    private readonly platformDb: PrismaClient,
    ttlMs: number,
    keepMs = ttlMs
  ) {
    this.entries = new ExpiringCache({
      max: MAX_NAMES,
      ttlMs,
      keepMs,
      keepsLong: (entry) => entry.tenantId !== undefined,
      // A lookup under way and one that found no tenant are both `unknown`: either may be of any tenant.
      tags: (entry) => [entry.tenantId === undefined ? 'unknown' : `id:${entry.tenantId}`],
    })
  }

  /** Found tenants are served up to keepMs while `covers()` holds (the change feed was read within the last second). */
  coverBy (covers: () => boolean): void {
    this.entries.coveredBy = covers
  }

  /**
   * A tenant changed somewhere (the change feed, which knows its id only): every name that found it
   * is looked up again, and so is every lookup still under way (its tenant is not known yet).
   */
  forgetId (tenantId: string): void {
    this.entries.deleteTagged(`id:${tenantId}`)
    this.entries.deleteTagged('unknown')
  }

  /**
   * The active tenant with this slug, or null (unknown and suspended look the same). `beforeLookup`
   * runs when the name is not cached, before the database is asked; what it throws rejects the call.
   */
  bySlug (slug: string, beforeLookup?: () => void): Promise<ActiveTenant | null> {
    return this.cached(`slug:${slug}`, () => tenantDirectory.activeBySlug(this.platformDb, slug), beforeLookup)
  }

  /** The active tenant whose verified custom domain this is, or null; `beforeLookup` as for bySlug. */
  byDomain (domain: string, beforeLookup?: () => void): Promise<ActiveTenant | null> {
    return this.cached(`domain:${domain}`, () => tenantDirectory.activeByDomain(this.platformDb, domain), beforeLookup)
  }

  /** Forgets what is cached for a tenant after this process changed it. */
  invalidate (tenant: TenantKeys): void {
    this.forget(tenant)
    this.onInvalidate?.(tenant)
  }

  /** Forgets a tenant changed by another instance (no broadcast): its names and, by id, its old names. */
  forget (tenant: TenantKeys): void {
    this.entries.delete(`slug:${tenant.slug}`)
    if (tenant.domain) this.entries.delete(`domain:${tenant.domain}`)
    if (tenant.id) this.entries.deleteTagged(`id:${tenant.id}`)
  }

  /** Forgets every entry (after the invalidation channel was down). */
  forgetAll (): void {
    this.entries.clear()
  }

  private cached (key: string, load: () => Promise<ActiveTenant | null>, beforeLookup?: () => void): Promise<ActiveTenant | null> {
    const hit = this.entries.get(key)
    if (hit) return hit.tenant
    try {
      beforeLookup?.()
    } catch (error) {
      return Promise.reject(error)
    }
    // The promise itself is cached: concurrent misses share one query. A failed query is not kept.
    const started = this.entries.loadStarts()
    const tenant = load()
    const entry: Entry = { tenant }
    this.entries.keep(key, entry, started)
    tenant.then((found) => {
      entry.tenantId = found?.id
      this.entries.retag(key, entry)
      // Loaded across a change: answer this caller, but do not keep a possibly stale row.
      if (this.entries.droppedSince(started)) this.entries.discard(key, entry)
    }, () => this.entries.discard(key, entry))
    return tenant
  }
}
