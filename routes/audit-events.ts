// The tenant's audit log (tenant hosts): shared/API.md "Audit events". Read by admins and owners;
// exported and verified by owners. Nothing here (nor anywhere) changes or deletes an event.
import { Readable } from 'node:stream'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { decodeCursor, DEFAULT_LIMIT, encodeCursor, MAX_LIMIT, Page } from '../src/api/pagination.ts'
import { isStorableDate, Nullable, Timestamp, TimestampInput, Uuid, responses, signedIn } from '../src/api/schemas.ts'
import { ACTOR_TYPES, AUDIT_ACTION_NAMES } from '../src/audit/actions.ts'
import { RunningSlots } from '../src/limits/running-slots.ts'
import { auditEventFields, eventsOldestFirst, toAuditEventView, toExportLine, verifyChain } from '../src/audit/audit-store.ts'
import { requirePermission } from '../src/auth/permissions.ts'
import { AppError } from '../src/errors.ts'
import type { Prisma } from '../src/generated/prisma/client.ts'

export const AuditEventView = Type.Object({
  id: Uuid,
  action: Type.Enum(AUDIT_ACTION_NAMES),
  actor: Type.Object({ type: Type.Enum([...ACTOR_TYPES]), id: Nullable(Uuid) }),
  target: Nullable(Type.Object({ type: Type.String(), id: Uuid })),
  requestId: Nullable(Type.String()),
  ip: Nullable(Type.String()),
  userAgent: Nullable(Type.String()),
  at: Timestamp,
  data: Type.Record(Type.String(), Type.Unknown(), { description: 'what changed: field names and new values; secrets are "[redacted]"' }),
})

const AuditQuery = Type.Object({
  action: Type.Optional(Type.Enum(AUDIT_ACTION_NAMES)),
  actorId: Type.Optional(Uuid),
  targetId: Type.Optional(Uuid),
  since: Type.Optional(Type.Unsafe<string>({ ...TimestampInput, description: 'events at or after this instant' })),
  until: Type.Optional(Type.Unsafe<string>({ ...TimestampInput, description: 'events before this instant' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_LIMIT, description: `1–${MAX_LIMIT}, default ${DEFAULT_LIMIT}` })),
  cursor: Type.Optional(Type.String({ description: 'nextCursor of the previous page (opaque)' })),
}, { additionalProperties: false })

const Verified = Type.Object({
  ok: Type.Boolean(),
  checked: Type.Integer({ description: 'events walked' }),
  firstBadId: Nullable(Uuid),
})

const tags = ['audit']
const security = signedIn

function instant (text: string | undefined, name: string): Date | undefined {
  if (text === undefined) return undefined
  const date = new Date(text)
  // A format-valid date-time may still be no storable instant (year 0 or 10000, a leap second): a 400, not a 500.
  if (Number.isNaN(date.getTime()) || !isStorableDate(date)) throw new AppError('VALIDATION_FAILED', `querystring/${name} must be an ISO-8601 instant in the years 0001–9999`)
  return date
}

const auditRoutes: FastifyPluginAsyncTypebox = async (app) => {
  // Authenticated by the one signed-in scope of routes/index.ts.
  // A walk holds a pooled connection until it ends: a few at once per instance, one per tenant.
  const verifications = new RunningSlots(app.config.AUDIT_VERIFY_CONCURRENCY, 'A verification of the audit log is already running, retry later')
  app.get('/v1/audit-events', {
    onRequest: requirePermission('audit.read'),
    schema: { tags, security, summary: 'The audit log, newest first', querystring: AuditQuery, response: responses({ 200: Page(AuditEventView) }) },
  }, async (request) => {
    const { action, actorId, targetId, cursor } = request.query
    const limit = request.query.limit ?? DEFAULT_LIMIT
    const since = instant(request.query.since, 'since')
    const until = instant(request.query.until, 'until')
    const where: Prisma.AuditEventWhereInput = { action, actorId, targetId }
    if (since || until) where.at = { ...(since ? { gte: since } : {}), ...(until ? { lt: until } : {}) }
    // Keyset on (tenant_id, at DESC, id DESC), the index's order; the redundant `at <= c` makes the
    // cursor an index condition (as src/api/pagination.ts does for createdAt).
    const and: Prisma.AuditEventWhereInput[] = [where]
    if (cursor) {
      const { createdAt: at, id } = decodeCursor(cursor)
      and.push({ at: { lte: at }, OR: [{ at: { lt: at } }, { at, id: { lt: id } }] })
    }
    const rows = await request.db.auditEvent.findMany({ where: { AND: and }, orderBy: [{ at: 'desc' }, { id: 'desc' }], take: limit + 1, select: auditEventFields })
    const shown = rows.slice(0, limit)
    const last = shown[shown.length - 1]
    return {
      data: shown.map(toAuditEventView),
      nextCursor: rows.length > limit && last ? encodeCursor({ createdAt: last.at, id: last.id }) : null,
    }
  })

  app.get('/v1/audit-events/export', {
    onRequest: requirePermission('audit.export'),
    schema: {
      tags,
      security,
      summary: 'Every event of the tenant as NDJSON, oldest first (streamed)',
      description: 'One JSON object per line: the list\'s fields plus seq, prevHash and hash (the chain).',
      response: responses({ 200: { type: 'string', description: 'application/x-ndjson' } as never }),
    },
  }, async (request, reply) => {
    const db = request.db
    // Batches of keyset reads turned into lines as the client reads them (backpressure): memory
    // does not grow with the log.
    async function * lines () {
      for await (const row of eventsOldestFirst(db)) yield `${JSON.stringify(toExportLine(row))}\n`
    }
    const filename = `audit-${request.tenant?.slug ?? request.tenantId}.ndjson`
    reply.type('application/x-ndjson; charset=utf-8').header('content-disposition', `attachment; filename="${filename}"`)
    // HEAD (fastify's own route, this handler): the headers alone. A stream given to it is drained
    // by fastify apart from the socket, so the whole log was read after the client had gone, as
    // fast as the database answers, with no way to stop it (review 90). An empty stream, not an
    // empty body: like the GET's, the answer states no length (an empty body's says 0; review 91).
    if (request.method === 'HEAD') return reply.send(Readable.from([]))
    return reply.send(Readable.from(lines(), { objectMode: false }))
  })

  app.get('/v1/audit-events/verify', {
    onRequest: requirePermission('audit.verify'),
    schema: { tags, security, summary: 'Check the tenant\'s hash chain', response: responses({ 200: Verified }) },
    // eslint-disable-next-line no-restricted-properties -- the walk is raw SQL, which request.db refuses, in a read-only transaction verifyChain binds to this tenant itself (runAsTenant)
  }, async (request) => verifications.run(request.tenantId, () => verifyChain(app.platformDb, request.tenantId)))
}

export default auditRoutes
