// Kept for code written before tenant_id had a database default. Creates on request.db no longer
// need it: `tenant_id DEFAULT app_current_tenant()` makes tenantId optional in Prisma's create
// types, and the scoped client still sets it (and refuses any other value).

/** @deprecated pass `data` directly: tenantId is optional on creates since it has a database default. */
export function tenantData<T extends { tenantId?: string }> (data: Omit<T, 'tenantId'>): T {
  return data as T
}
