// The one narrow, named path to the `tenants` table before a tenant is known. Under row-level
// security the API role (saas_app) sees and changes only the current tenant's row; Host → tenant,
// signup and the platform admin routes run before any tenant is current, so they call the
// SECURITY DEFINER functions of prisma/migrations/20261130000000_tenancy_invariants, each returning
// only the columns its caller needs. Grep for `tenantDirectory` / `app_tenant_` to audit every use.
import type { PrismaClient } from '../generated/prisma/client.ts'

/** An active tenant as the Host lookup needs it. */
export interface DirectoryTenant {
  id: string
  slug: string
  name: string
  domain: string | null
  /** The tenant's own request limit per RATE_LIMIT_WINDOW_S; null: the configured default. */
  rateLimit: number | null
}

/** A tenant as signup answers it (the new tenant's own view). */
export interface SignedUpTenant extends Omit<DirectoryTenant, 'rateLimit'> {
  settings: Record<string, unknown>
  createdAt: Date
  updatedAt: Date
}

/** A tenant as the platform admin sees it (no settings: they are the tenant's private data). */
export interface AdminTenantRow extends DirectoryTenant {
  status: 'active' | 'suspended'
  createdAt: Date
  updatedAt: Date
}

/** Queries a client that can run raw SQL: platformDb, or a transaction of it. */
type RawClient = Pick<PrismaClient, '$queryRaw'>

/**
 * Named lookups of tenants that bypass the tenants policy on purpose, through SECURITY DEFINER
 * functions. Every argument is a bind parameter (Prisma's tagged template), never spliced into SQL.
 */
export const tenantDirectory = {
  /** The active tenant with this slug, or null (unknown and suspended look the same). */
  async activeBySlug (db: RawClient, slug: string): Promise<DirectoryTenant | null> {
    const rows = await db.$queryRaw<DirectoryTenant[]>`SELECT * FROM app_tenant_by_slug(${slug})`
    return rows[0] ?? null
  },

  /** The active tenant whose verified custom domain this is, or null. */
  async activeByDomain (db: RawClient, domain: string): Promise<DirectoryTenant | null> {
    const rows = await db.$queryRaw<DirectoryTenant[]>`SELECT * FROM app_tenant_by_domain(${domain})`
    return rows[0] ?? null
  },

  /**
   * Creates an active tenant (signup). Throws Prisma's raw-query error with the SQLSTATE 23505
   * (unique violation) in its message when the slug is taken: see `isUniqueViolation`.
   */
  async signup (db: RawClient, slug: string, name: string): Promise<SignedUpTenant> {
    const rows = await db.$queryRaw<SignedUpTenant[]>`SELECT * FROM app_tenant_signup(${slug}, ${name})`
    return rows[0]!
  },

  /**
   * One page for the platform admin, newest first: `take` rows (1–101) strictly before the
   * position (createdAt, id), or from the newest when `before` is undefined.
   */
  async adminPage (db: RawClient, take: number, before?: { createdAt: Date; id: string }): Promise<AdminTenantRow[]> {
    return db.$queryRaw<AdminTenantRow[]>`SELECT * FROM app_tenant_admin_page(${take}::integer, ${before?.createdAt ?? null}::timestamptz, ${before?.id ?? null}::uuid)`
  },

  /**
   * Suspends or reactivates the tenant with this slug and/or sets its request limit (`rateLimit`
   * null: back to the default; absent: unchanged); null when there is no such tenant.
   */
  async adminUpdate (db: RawClient, slug: string, change: { status?: 'active' | 'suspended', rateLimit?: number | null }): Promise<AdminTenantRow | null> {
    const setRateLimit = change.rateLimit !== undefined
    const rows = await db.$queryRaw<AdminTenantRow[]>`SELECT * FROM app_tenant_admin_update(${slug}, ${change.status ?? null}::text, ${setRateLimit}, ${change.rateLimit ?? null}::integer)`
    return rows[0] ?? null
  },
}

/** Whether a raw query failed on a unique constraint (SQLSTATE 23505). */
export function isUniqueViolation (error: unknown): boolean {
  const e = error as { code?: string; meta?: { code?: string; driverAdapterError?: { cause?: { originalCode?: string; kind?: string } } }; message?: string }
  if (e?.code === 'P2002') return true
  const cause = e?.meta?.driverAdapterError?.cause
  return e?.meta?.code === '23505' || cause?.originalCode === '23505' || cause?.kind === 'UniqueConstraintViolation'
}
