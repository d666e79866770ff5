// The tenant of the Host, as its users see it: read by anyone, changed by an owner.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { Nullable, Timestamp, Uuid, responses, signedIn } from '../src/api/schemas.ts'
import { audited } from '../src/audit/audit-log.ts'
import { requirePermission } from '../src/auth/permissions.ts'
import { AppError } from '../src/errors.ts'
import type { Prisma } from '../src/generated/prisma/client.ts'

/** Free-form JSON object owned by the tenant's admins (kept small: it is read on many requests). */
const Settings = Type.Record(Type.String(), Type.Unknown(), { description: 'free-form JSON object, replaced as a whole by PATCH' })

export const TenantView = Type.Object({
  id: Uuid,
  slug: Type.String(),
  name: Type.String(),
  domain: Nullable(Type.String()),
  settings: Settings,
  createdAt: Timestamp,
  updatedAt: Timestamp,
})

const UpdateTenant = Type.Object({
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  settings: Type.Optional(Settings),
}, { additionalProperties: false, minProperties: 1 })

/** Nesting allowed in settings: far more than configuration needs, far less than what overflows the stack. */
export const MAX_SETTINGS_DEPTH = 32

/** Whether `value` nests deeper than `limit` (stops descending at the limit, so it cannot overflow itself). */
function nestsDeeperThan (value: unknown, limit: number): boolean {
  if (typeof value !== 'object' || value === null) return false
  if (limit === 0) return true
  return Object.values(value).some((child) => nestsDeeperThan(child, limit - 1))
}

export const tenantFields = { id: true, slug: true, name: true, domain: true, settings: true, createdAt: true, updatedAt: true } as const

/** settings is a JSON object by construction (its default and every write are objects). */
export const toTenantView = <T extends { settings: Prisma.JsonValue }>(tenant: T) => ({ ...tenant, settings: tenant.settings as Record<string, unknown> })
const tags = ['tenant']
const security = signedIn

const tenantRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/v1/tenant', {
    onRequest: requirePermission('tenant.read'),
    schema: { tags, security, summary: 'The tenant of this host', response: responses({ 200: TenantView }) },
  }, async (request) => {
    // request.db confines Tenant queries to the tenant of the Host (where id = it), and the tenants
    // policy shows saas_app no other row (prisma/migrations/*_tenancy_invariants).
    return toTenantView(await request.db.tenant.findFirstOrThrow({ select: tenantFields }))
  })

  app.patch('/v1/tenant', {
    onRequest: requirePermission('tenant.update'),
    schema: { tags, security, summary: 'Rename the tenant or replace its settings (owner)', body: UpdateTenant, response: responses({ 200: TenantView }) },
  }, async (request) => {
    const { name, settings } = request.body
    // Deeply nested JSON overflows the stack of Prisma's serializer (and of PostgreSQL's parser): a 400, not a 500.
    if (nestsDeeperThan(settings, MAX_SETTINGS_DEPTH)) throw new AppError('VALIDATION_FAILED', `body/settings must not nest deeper than ${MAX_SETTINGS_DEPTH} levels`)
    const data: Prisma.TenantUpdateInput = { name, settings: settings as Prisma.InputJsonObject | undefined }
    // Column grants let saas_app change only name, settings and updated_at of its own row.
    const tenant = await audited(request, (tx) => tx.tenant.update({ where: { id: request.tenantId }, data, select: tenantFields }),
      (updated) => ({ action: 'tenant.updated', target: { type: 'tenant', id: updated.id }, data: request.body }))
    app.tenants.invalidate(tenant) // the cached name must not outlive the change on this instance
    return toTenantView(tenant)
  })
}

export default tenantRoutes
