// Writing audit events: one helper, recordAuditEvent(tx, event), called inside the transaction of
// the change it records, so that neither exists without the other (shared/API.md "Audit events").
// The chain fields (seq, at, prev_hash, hash) are set by the database's insert trigger under a
// per-tenant row lock (prisma/migrations/20261201000100_audit_log), so no caller can fork the chain.
import type { FastifyRequest } from 'fastify'
import type { Prisma } from '../generated/prisma/client.ts'
import type { ScopedClient } from '../tenancy/scoped-client.ts'
import type { ActorType, AuditAction, TargetType } from './actions.ts'

export interface AuditActor {
  type: ActorType
  /** The user's or API key's id; null for the platform and the system. */
  id: string | null
}

/** Where a request came from: filled from the request by auditContext. */
export interface AuditContext {
  actor: AuditActor
  requestId: string | null
  /** The client address as Fastify derives it (trusted-proxy-aware: TRUST_PROXY). */
  ip: string | null
  userAgent: string | null
  /** False only with AUDIT=off (benchmark comparison): nothing is written. */
  enabled: boolean
}

export interface AuditEventInput extends AuditContext {
  action: AuditAction
  target?: { type: TargetType; id: string } | null
  /** What changed (field names and new values); passed through auditData, so secrets never land. */
  data?: Record<string, unknown>
  /** Only for an unscoped client (platform routes): the tenant the event belongs to. */
  tenantId?: string
}

/** Any client or transaction that can insert an audit event (scoped or, with tenantId, platform). */
export interface AuditWriter {
  auditEvent: { create(args: { data: Prisma.AuditEventUncheckedCreateInput; select: { id: true } }): PromiseLike<{ id: string }> }
}

const MAX_USER_AGENT = 512

/** Who did this request and from where (the event's context). */
export function auditContext(request: FastifyRequest, actor: AuditActor = actorOf(request)): AuditContext {
  const userAgent = request.headers['user-agent']
  return {
    actor,
    requestId: request.id ?? null,
    ip: request.ip ?? null,
    userAgent: typeof userAgent === 'string' ? userAgent.slice(0, MAX_USER_AGENT) : null,
    enabled: request.server.config.AUDIT !== 'off',
  }
}

/**
 * The actor of a request: the signed-in user, else the system. (An API key's request is
 * `{type: 'api_key', id}` once API keys exist: issue 13 sets it here.)
 */
export function actorOf(request: FastifyRequest): AuditActor {
  return request.user ? { type: 'user', id: request.user.id } : { type: 'system', id: null }
}

/**
 * Records one audit event through `tx` — the transaction that makes the change, so the event
 * commits or rolls back with it. Throws what the insert throws (the caller's transaction then
 * rolls back: no change without its event).
 */
export async function recordAuditEvent(tx: AuditWriter, event: AuditEventInput): Promise<void> {
  if (!event.enabled) return
  const data: Prisma.AuditEventUncheckedCreateInput = {
    ...(event.tenantId !== undefined ? { tenantId: event.tenantId } : {}),
    action: event.action,
    actorType: event.actor.type,
    actorId: event.actor.id,
    targetType: event.target?.type ?? null,
    targetId: event.target?.id ?? null,
    requestId: event.requestId,
    ip: event.ip,
    userAgent: event.userAgent,
    data: auditData(event.data ?? {}) as Prisma.InputJsonObject,
  } as Prisma.AuditEventUncheckedCreateInput
  await tx.auditEvent.create({ data, select: { id: true } })
}

type Tx = Parameters<Parameters<ScopedClient['$transaction']>[0]>[0]

/**
 * Runs `change` and records the event `eventOf(result)` in one transaction of the request's tenant:
 * the usual way for a route to make an audited change. With AUDIT=off (benchmark comparison only)
 * the change runs alone, without a transaction, as it would without auditing.
 */
export async function audited<T>(request: FastifyRequest, change: (tx: Tx) => Promise<T>, eventOf: (result: T) => Omit<AuditEventInput, keyof AuditContext>): Promise<T> {
  const context = auditContext(request)
  if (!context.enabled) return change(request.db as unknown as Tx)
  return request.db.$transaction(async (tx) => {
    const result = await change(tx)
    await recordAuditEvent(tx, { ...context, ...eventOf(result) })
    return result
  })
}

// Field names whose values are secrets (OWASP Logging Cheat Sheet: never record passwords, session
// ids, access tokens, keys): the name stays, so the event still says the field changed.
const SECRET_NAME = /pass(word|phrase)?|secret|token|hash|api_?key|^key$|private|credential|authorization|cookie|otp/i
// Values that are our credentials whatever their field is called: JWTs and `<session>.<secret>` refresh tokens.
const SECRET_VALUE = /^eyJ[\w-]*\.[\w-]*\.[\w-]*$|^[0-9a-f-]{36}\.[\w-]{43}$/i
export const REDACTED = '[redacted]'
const MAX_DEPTH = 8
const MAX_STRING = 2_000

/**
 * The `data` of an event: a JSON copy of `value` with every secret replaced by "[redacted]"
 * (fields named like a secret, and strings shaped like our tokens), dates as ISO-8601, long strings
 * cut to 2,000 characters and nesting cut at 8 levels (an audit log records what changed, it is not
 * a copy store).
 */
export function auditData(value: Record<string, unknown>): Record<string, unknown> {
  return sanitize(value, 0) as Record<string, unknown>
}

function sanitize(value: unknown, depth: number): unknown {
  if (value === null || typeof value === 'number' || typeof value === 'boolean') return value
  if (typeof value === 'string') return SECRET_VALUE.test(value) ? REDACTED : value.length > MAX_STRING ? `${value.slice(0, MAX_STRING)}…` : value
  if (value instanceof Date) return value.toISOString()
  if (typeof value !== 'object') return null
  if (depth >= MAX_DEPTH) return '[truncated]'
  if (Array.isArray(value)) return value.map((item) => sanitize(item, depth + 1))
  const out: Record<string, unknown> = {}
  for (const [key, item] of Object.entries(value)) {
    if (item === undefined) continue
    out[key] = SECRET_NAME.test(key) ? REDACTED : sanitize(item, depth + 1)
  }
  return out
}
