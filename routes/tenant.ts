// The tenant of the Host, as its users see it: read by anyone, changed by an owner.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { DisplayName, Nullable, Timestamp, Uuid, responses, signedIn } from '../src/api/schemas.ts'
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
  name: Type.Optional(DisplayName),
  settings: Type.Optional(Settings),
}, { additionalProperties: false, minProperties: 1 })

/** Nesting allowed in settings: far more than configuration needs, far less than what overflows the stack. */
export const MAX_SETTINGS_DEPTH = 32

/**
 * What settings cannot store as sent, as a validation message (null when nothing): nesting deeper
 * than MAX_SETTINGS_DEPTH (deep JSON overflows the stack of Prisma's serializer and of PostgreSQL's
 * parser: a 400, not a 500); a number JSON.parse turned into Infinity (`1e400`, stored as null); an
 * integer beyond ±(2^53 − 1), which a double cannot hold exactly (RFC 8259 §6: interoperable only in
 * that range). Never silently coerced. Stops descending at the limit, so it cannot overflow itself.
 */
function settingsProblem (value: unknown, path: string, depthLeft: number): string | null {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return `${path} must be a finite number`
    if (Number.isInteger(value) && !Number.isSafeInteger(value)) return `${path} must be an integer within ±${Number.MAX_SAFE_INTEGER} (larger ones are not stored exactly)`
    return null
  }
  if (typeof value !== 'object' || value === null) return null
  if (depthLeft === 0) return `body/settings must not nest deeper than ${MAX_SETTINGS_DEPTH} levels`
  for (const [key, child] of Object.entries(value)) {
    const problem = settingsProblem(child, `${path}/${key}`, depthLeft - 1)
    if (problem) return problem
  }
  return null
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
    const problem = settings === undefined ? null : settingsProblem(settings, 'body/settings', MAX_SETTINGS_DEPTH)
    if (problem) throw new AppError('VALIDATION_FAILED', problem.slice(0, 300))
    const data: Prisma.TenantUpdateInput = { name, settings: settings as Prisma.InputJsonObject | undefined }
    // Column grants let saas_app change only name, settings and updated_at of its own row.
    const tenant = await audited(request, (tx) => tx.tenant.update({ where: { id: request.tenantId }, data, select: tenantFields }),
      (updated) => ({ action: 'tenant.updated', target: { type: 'tenant', id: updated.id }, data: request.body }))
    app.tenants.invalidate(tenant) // the cached name must not outlive the change on this instance
    return toTenantView(tenant)
  })
}

export default tenantRoutes
