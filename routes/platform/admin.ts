// Platform administration (platform host only): list tenants, suspend or reactivate one. Behind a
// static operator token (PLATFORM_ADMIN_TOKEN); without one configured the routes do not exist.
import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import Type from 'typebox'
import { DEFAULT_LIMIT, ListQuery, Page, decodeCursor, page } from '../../src/api/pagination.ts'
import { Nullable, Timestamp, Uuid, responses } from '../../src/api/schemas.ts'
import { bearerToken } from '../../src/auth/bearer.ts'
import { notFound, unauthorized } from '../../src/errors.ts'
import { auditContext, recordAuditEvent } from '../../src/audit/audit-log.ts'
import { tenantDirectory } from '../../src/tenancy/tenant-directory.ts'

const Status = Type.Enum(['active', 'suspended'])

export const AdminTenant = Type.Object({
  id: Uuid,
  slug: Type.String(),
  name: Type.String(),
  status: Status,
  domain: Nullable(Type.String()),
  rateLimit: Nullable(Type.Integer({ description: 'requests per RATE_LIMIT_WINDOW_S on this tenant\'s host; null = TENANT_RATE_LIMIT' })),
  createdAt: Timestamp,
  updatedAt: Timestamp,
})

const SlugParams = Type.Object({ slug: Type.String({ minLength: 1, maxLength: 63 }) }, { additionalProperties: false })
const UpdateTenant = Type.Object({
  status: Type.Optional(Status),
  /** The tenant's own request limit (per RATE_LIMIT_WINDOW_S); null returns it to the default. */
  rateLimit: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: 10_000_000 }))),
}, { additionalProperties: false, minProperties: 1 })

const tags = ['platform admin']
const security: Array<Record<string, string[]>> = [{ platformAdminToken: [] }]

const digest = (value: string) => createHash('sha256').update(value).digest()

/** A hook accepting only `Authorization: Bearer <token>` (any case of `Bearer`); comparing digests takes the same time whatever the input. */
function requireAdminToken (token: string) {
  const expected = digest(token)
  return async function checkAdminToken (request: FastifyRequest) {
    const presented = bearerToken(request.headers.authorization) ?? ''
    if (!timingSafeEqual(digest(presented), expected)) throw unauthorized('A valid platform admin token is required')
  }
}

const adminRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const token = app.config.PLATFORM_ADMIN_TOKEN
  if (!token) return // admin API off: its routes are unknown (404)
  app.addHook('onRequest', requireAdminToken(token))

  app.get('/v1/admin/tenants', {
    schema: { tags, security, summary: 'List tenants, newest first', querystring: ListQuery, response: responses({ 200: Page(AdminTenant) }) },
  }, async (request) => {
    // tenants is under row-level security: the admin reads it through its named function.
    const before = request.query.cursor ? decodeCursor(request.query.cursor) : undefined
    const rows = await tenantDirectory.adminPage(app.platformDb, (request.query.limit ?? DEFAULT_LIMIT) + 1, before)
    return page(rows, request.query)
  })

  app.patch('/v1/admin/tenants/:slug', {
    schema: { tags, security, summary: 'Suspend or reactivate a tenant, or set its request limit', params: SlugParams, body: UpdateTenant, response: responses({ 200: AdminTenant }) },
  }, async (request) => {
    // A change and its audit event (in the tenant's log, actor: the platform) commit together: a
    // status change is `tenant.suspended` / `tenant.reactivated`, a request-limit change
    // `tenant.updated`; setting what is already there records nothing.
    const { status, rateLimit } = request.body
    const tenant = await app.platformDb.$transaction(async (tx) => {
      // The row as it was, locked until the end of the transaction (an update that changes nothing).
      const before = await tenantDirectory.adminUpdate(tx, request.params.slug, {})
      const updated = await tenantDirectory.adminUpdate(tx, request.params.slug, request.body)
      if (!before || !updated) return updated
      const events: { action: 'tenant.suspended' | 'tenant.reactivated' | 'tenant.updated', data: Record<string, unknown> }[] = []
      if (status !== undefined && before.status !== updated.status) {
        events.push({ action: updated.status === 'suspended' ? 'tenant.suspended' : 'tenant.reactivated', data: { status: updated.status } })
      }
      if (rateLimit !== undefined && before.rateLimit !== updated.rateLimit) events.push({ action: 'tenant.updated', data: { rateLimit: updated.rateLimit } })
      // Row-level security admits the events only once the transaction names their tenant.
      if (events.length) await tx.$executeRaw`SELECT set_config('app.tenant_id', ${updated.id}, true)`
      for (const { action, data } of events) {
        await recordAuditEvent(tx, { ...auditContext(request, { type: 'platform', id: null }), tenantId: updated.id, action, target: { type: 'tenant', id: updated.id }, data })
      }
      return updated
    })
    if (!tenant) throw notFound('Tenant')
    // This instance sees the change at once; others within TENANT_CACHE_TTL_MS (≤ 5 s).
    app.tenants.invalidate(tenant)
    app.apiKeys.tenantChanged(tenant.id) // its keys are looked up afresh (a suspended tenant's keys stop)
    return tenant
  })
}

export default adminRoutes
