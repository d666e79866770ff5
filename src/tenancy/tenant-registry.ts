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
}

const MAX_ENTRIES = 50_000

export class TenantRegistry {
  private readonly entries = new Map<string, Entry>()

  constructor(
    private readonly platformDb: PrismaClient,
    private readonly ttlMs: number,
  ) {}

  /** The active tenant with this slug, or null (unknown and suspended look the same). */
  bySlug(slug: string): Promise<ActiveTenant | null> {
    return this.cached(`slug:${slug}`, () => tenantDirectory.activeBySlug(this.platformDb, slug))
  }

  /** The active tenant whose verified custom domain this is, or null. */
  byDomain(domain: string): Promise<ActiveTenant | null> {
    return this.cached(`domain:${domain}`, () => tenantDirectory.activeByDomain(this.platformDb, domain))
  }

  /** Forgets what is cached for a tenant after this process changed it. */
  invalidate(tenant: { slug: string; domain?: string | null }): void {
    this.entries.delete(`slug:${tenant.slug}`)
    if (tenant.domain) this.entries.delete(`domain:${tenant.domain}`)
  }

  private cached(key: string, load: () => Promise<ActiveTenant | null>): Promise<ActiveTenant | null> {
    const now = Date.now()
    const hit = this.entries.get(key)
    if (hit && hit.expiresAt > now) return hit.tenant
    if (this.entries.size >= MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value!)
    // The promise itself is cached: concurrent misses share one query. A failed query is not kept.
    const tenant = load()
    this.entries.set(key, { tenant, expiresAt: now + this.ttlMs })
    tenant.catch(() => this.entries.delete(key))
    return tenant
  }
}
