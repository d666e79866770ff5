// Tenant lookups by slug or custom domain, cached in memory so the hot path does not query the
// database per request. An entry lives at most TENANT_CACHE_TTL_MS (≤ 5 s, the contract's bound for
// a change made by another instance); a change made through this process invalidates it at once.
// Under row-level security the tenants table is read through the named SECURITY DEFINER lookups of
// tenant-directory.ts (no tenant is current yet when the Host is resolved).
import type { PrismaClient } from '../generated/prisma/client.ts'
import { tenantDirectory, type DirectoryTenant } from './tenant-directory.ts'

export type ActiveTenant = DirectoryTenant

interface Entry {
  tenant: Promise<ActiveTenant | null>
  expiresAt: number
  /** The tenant's id once loaded: a change of slug or domain finds the old names' entries by it. */
  tenantId?: string
}

/** Names of a changed tenant: its id (finds old slug/domain entries) and its current slug/domain. */
export type TenantKeys = { id?: string; slug: string; domain?: string | null }

const MAX_ENTRIES = 50_000

export class TenantRegistry {
  private readonly entries = new Map<string, Entry>()
  /** Called after each invalidate() (plugins/invalidation.ts tells the other instances). */
  onInvalidate: ((tenant: TenantKeys) => void) | null = null
  /** Bumped by every forget: a lookup that was running meanwhile may have read the old row. */
  private generation = 0

  constructor (
    private readonly platformDb: PrismaClient,
    private readonly ttlMs: number
  ) {}

  /** The active tenant with this slug, or null (unknown and suspended look the same). */
  bySlug (slug: string): Promise<ActiveTenant | null> {
    return this.cached(`slug:${slug}`, () => tenantDirectory.activeBySlug(this.platformDb, slug))
  }

  /** The active tenant whose verified custom domain this is, or null. */
  byDomain (domain: string): Promise<ActiveTenant | null> {
    return this.cached(`domain:${domain}`, () => tenantDirectory.activeByDomain(this.platformDb, domain))
  }

  /** Forgets what is cached for a tenant after this process changed it. */
  invalidate (tenant: TenantKeys): void {
    this.forget(tenant)
    this.onInvalidate?.(tenant)
  }

  /** Forgets a tenant changed by another instance (no broadcast): its names and, by id, its old names. */
  forget (tenant: TenantKeys): void {
    this.generation++
    this.entries.delete(`slug:${tenant.slug}`)
    if (tenant.domain) this.entries.delete(`domain:${tenant.domain}`)
    if (tenant.id) for (const [key, entry] of this.entries) if (entry.tenantId === tenant.id) this.entries.delete(key)
  }

  /** Forgets every entry (after the invalidation channel was down). */
  forgetAll (): void {
    this.generation++
    this.entries.clear()
  }

  private cached (key: string, load: () => Promise<ActiveTenant | null>): Promise<ActiveTenant | null> {
    const now = Date.now()
    const hit = this.entries.get(key)
    if (hit && hit.expiresAt > now) return hit.tenant
    if (this.entries.size >= MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value!)
    // The promise itself is cached: concurrent misses share one query. A failed query is not kept.
    const tenant = load()
    const entry: Entry = { tenant, expiresAt: now + this.ttlMs }
    this.entries.set(key, entry)
    const generation = this.generation
    tenant.then((found) => {
      entry.tenantId = found?.id
      // Loaded across a change: answer this caller, but do not keep a possibly stale row.
      if (generation !== this.generation && this.entries.get(key) === entry) this.entries.delete(key)
    }, () => this.entries.delete(key))
    return tenant
  }
}
