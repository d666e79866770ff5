// Tenant lookups by slug or custom domain, cached in memory so the hot path does not query the
// database per request. An entry lives at most TENANT_CACHE_TTL_MS (≤ 5 s, the contract's bound for
// a change made by another instance); a change made through this process invalidates it at once.
import type { PrismaClient, Tenant } from '../generated/prisma/client.ts'

export type ActiveTenant = Pick<Tenant, 'id' | 'slug' | 'name' | 'domain' | 'rateLimit'>

interface Entry {
  tenant: Promise<ActiveTenant | null>
  expiresAt: number
}

const MAX_ENTRIES = 50_000
const select = { id: true, slug: true, name: true, domain: true, rateLimit: true } as const

export class TenantRegistry {
  private readonly entries = new Map<string, Entry>()

  constructor(
    private readonly platformDb: PrismaClient,
    private readonly ttlMs: number,
  ) {}

  /** The active tenant with this slug, or null (unknown and suspended look the same). */
  bySlug(slug: string): Promise<ActiveTenant | null> {
    return this.cached(`slug:${slug}`, () => this.platformDb.tenant.findFirst({ where: { slug, status: 'active' }, select }))
  }

  /** The active tenant whose verified custom domain this is, or null. */
  byDomain(domain: string): Promise<ActiveTenant | null> {
    return this.cached(`domain:${domain}`, () => this.platformDb.tenant.findFirst({ where: { domain, status: 'active' }, select }))
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
