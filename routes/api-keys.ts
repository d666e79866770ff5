// The tenant's API keys (tenant hosts; admins and owners): shared/API.md "API keys". The key itself
// is in the create answer only; lists show its prefix. Keys can never reach these routes: no scope
// grants 'apiKeys.manage' (src/auth/permissions.ts).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { ListQuery, Page, page, pageArgs } from '../src/api/pagination.ts'
import { DisplayName, IdParams, isStorableDate, NoContent, Nullable, Timestamp, TimestampInput, Uuid, responses, signedIn } from '../src/api/schemas.ts'
import { audited, auditedChange } from '../src/audit/audit-log.ts'
import { generateApiKey } from '../src/auth/api-keys.ts'
import { canGrant, requirePermission, SCOPE_NAMES, type Scope } from '../src/auth/permissions.ts'
import { AppError, forbidden, notFound } from '../src/errors.ts'
import { Prisma } from '../src/generated/prisma/client.ts'

const ScopeName = Type.Enum(SCOPE_NAMES, { description: 'what the key may do; see README "API keys"' })

export const ApiKeyView = Type.Object({
  id: Uuid,
  name: Type.String(),
  prefix: Type.String({ description: 'the first 20 characters of the key, to tell keys apart' }),
  scopes: Type.Array(ScopeName),
  createdAt: Timestamp,
  expiresAt: Nullable(Timestamp),
  lastUsedAt: Nullable(Timestamp),
  createdBy: Nullable(Uuid),
  revokedAt: Nullable(Timestamp),
})

const CreatedApiKey = Type.Object({
  ...ApiKeyView.properties,
  key: Type.String({ description: 'the key: shown in this answer only, never again' }),
})

const CreateApiKey = Type.Object({
  name: DisplayName,
  scopes: Type.Array(ScopeName, { minItems: 1, maxItems: SCOPE_NAMES.length, uniqueItems: true }),
  expiresAt: Type.Optional(Nullable(TimestampInput)),
}, { additionalProperties: false })

export const apiKeyFields = {
  id: true, name: true, prefix: true, scopes: true, createdAt: true, expiresAt: true, lastUsedAt: true, createdBy: true, revokedAt: true,
} as const

/** Scopes are stored as text[]; only SCOPE_NAMES are ever written (the body schema). */
const withScopes = <T extends { scopes: string[] }>(row: T) => ({ ...row, scopes: row.scopes as Scope[] })

const tags = ['api keys']
const security = signedIn

// Registered in the authenticated scope of routes/index.ts, whose hook identifies the caller once.
const apiKeyRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const canManage = requirePermission('apiKeys.manage')

  app.get('/v1/api-keys', {
    onRequest: canManage,
    schema: { tags, security, summary: "List the tenant's API keys (without the keys), newest first", querystring: ListQuery, response: responses({ 200: Page(ApiKeyView) }) },
  }, async (request) => {
    const rows = await request.db.apiKey.findMany({ ...pageArgs(request.query), select: apiKeyFields })
    return page(rows.map(withScopes), request.query)
  })

  app.post('/v1/api-keys', {
    onRequest: canManage,
    schema: { tags, security, summary: 'Create an API key (the key is shown in this answer only)', body: CreateApiKey, response: responses({ 201: CreatedApiKey }) },
  }, async (request, reply) => {
    const { name, scopes, expiresAt } = request.body
    // Nobody hands a key more than they may do themselves.
    const role = request.principal.role
    const beyond = scopes.filter((scope) => !canGrant(role, scope as Scope))
    if (beyond.length) throw forbidden(`Your role cannot grant: ${beyond.join(', ')}`)
    let expires: Date | null = null
    if (expiresAt) {
      expires = new Date(expiresAt)
      if (!isStorableDate(expires)) throw new AppError('VALIDATION_FAILED', 'body/expiresAt must be a storable date')
      if (expires.getTime() <= Date.now()) throw new AppError('VALIDATION_FAILED', 'body/expiresAt must be in the future')
    }
    const { key, prefix } = generateApiKey()
    // tenantId comes from the scoped client (and the column's app_current_tenant() default).
    const data: Prisma.ApiKeyUncheckedCreateInput = {
      name, prefix, scopes, expiresAt: expires, createdBy: request.principal.id, keyHash: app.apiKeys.storedHash(key),
    }
    // The event records the key's name, prefix, scopes and expiry: never the key or its hash.
    const created = await audited(request, (tx) => tx.apiKey.create({ data, select: apiKeyFields }),
      (row) => ({ action: 'api_key.created', target: { type: 'api_key', id: row.id }, data: { name, prefix, scopes, expiresAt: expires } }))
    reply.header('cache-control', 'no-store')
    return reply.code(201).send({ ...withScopes(created), key })
  })

  app.delete('/v1/api-keys/:id', {
    onRequest: canManage,
    schema: { tags, security, summary: 'Revoke an API key (at once on this instance, within 1 s on the others)', params: IdParams, response: responses({ 204: NoContent }) },
  }, async (request, reply) => {
    const tenantId = request.tenantId
    const key = await request.db.apiKey.findFirst({ where: { id: request.params.id }, select: { id: true, revokedAt: true } })
    if (!key) throw notFound('API key')
    // Revoking a revoked key changes nothing and is still a 204 (the key is revoked), with no new event.
    if (!key.revokedAt) {
      await auditedChange(request, Prisma.sql`UPDATE api_keys SET revoked_at = CURRENT_TIMESTAMP
        WHERE tenant_id = ${tenantId}::uuid AND id = ${key.id}::uuid AND revoked_at IS NULL RETURNING id, name, prefix`,
      { action: 'api_key.revoked', targetType: 'api_key', rowFields: ['name', 'prefix'] })
    }
    app.apiKeys.keyRevoked(tenantId, key.id)
    return reply.code(204).send(null)
  })
}

export default apiKeyRoutes
