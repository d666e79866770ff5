// Prisma's create types still ask for tenantId, but on a tenant-scoped client (request.db) the
// extension sets it (scoped-client.ts) and refuses any other value. This one helper says so to the
// type checker, so routes neither cast nor pass a tenant id by hand.

/** `data` for a create on request.db: everything but the tenant. */
export function tenantData<T extends { tenantId: string }>(data: Omit<T, 'tenantId'>): T {
  return data as T
}
