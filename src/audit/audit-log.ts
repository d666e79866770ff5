// Writing audit events (shared/API.md "Audit events"): an event is written in the same transaction
// as the change it records, so that neither exists without the other. Two ways, one event shape:
//
//   auditedChange(request, changeSql, event)  the change (one INSERT/UPDATE/DELETE … RETURNING) and
//       its event in ONE SQL statement: a data-modifying CTE whose event row selects from the
//       change's RETURNING, so 0 rows changed = no event, a failed change = nothing at all. It is
//       one round trip (the tenant setting rides in the same exchange: src/db/tenant-aware-pool.ts)
//       and one implicit transaction — the cheap path, used by the hot routes (projects, tasks).
//   recordAuditEvent(tx, event)  inside a transaction the route already has (users, signup, …).
//   audited(request, change, eventOf)  opens that transaction for a route that needs several
//       statements (Prisma's interactive transaction: 4+ round trips, so only for rare writes);
//       auditedTransaction(request, fn) opens it for one that records its events itself.
//   Both take the tenant's chain lock first, as auditedChange's statement does, so no two audited
//   writes of a tenant deadlock (migration 20261209000200_audit_chain_lock_first).
//
// The chain fields (seq, at, prev_hash, hash) are set by the database's insert trigger under a
// per-tenant row lock (prisma/migrations/20261202000000_audit_events), so no caller can fork the chain.
import type { FastifyRequest } from 'fastify'
import { Prisma } from '../generated/prisma/client.ts'
import type { ScopedClient } from '../tenancy/scoped-client.ts'
import { isWriteConflict } from '../db/conflicts.ts'
import { runAsTenant, withAuditChainLock } from '../tenancy/tenant-context.ts'
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
  /** The client address as Fastify derives it (trusted-proxy-aware: TRUST_PROXY, src/net/trusted-proxies.ts). */
  ip: string | null
  userAgent: string | null
  /** False only with AUDIT=off (benchmark comparison): nothing is written. */
  enabled: boolean
}

/** What a route says about its change: the action, its target and what changed. */
export interface AuditEventFields {
  action: AuditAction
  target?: { type: TargetType, id: string } | null
  /** What changed (field names and new values); passed through auditData, so secrets never land. */
  data?: Record<string, unknown>
  /** Only for an unscoped client (platform routes): the tenant the event belongs to. */
  tenantId?: string
}

export interface AuditEventInput extends AuditContext, AuditEventFields {}

/** Any client or transaction that can insert an audit event (scoped or, with tenantId, platform). */
export interface AuditWriter {
  auditEvent: { create(args: { data: Prisma.AuditEventUncheckedCreateInput, select: { id: true } }): PromiseLike<{ id: string }> }
}

const MAX_USER_AGENT = 512

/** Who did this request and from where (the event's context). */
export function auditContext (request: FastifyRequest, actor: AuditActor = actorOf(request)): AuditContext {
  const userAgent = request.headers['user-agent']
  return {
    actor,
    requestId: request.id ?? null,
    ip: request.ip ?? null,
    userAgent: typeof userAgent === 'string' ? userAgent.slice(0, MAX_USER_AGENT) : null,
    enabled: request.server.config.AUDIT !== 'off',
  }
}

/** The actor of a request: the API key or the signed-in user that authenticated it, else the system. */
export function actorOf (request: FastifyRequest): AuditActor {
  const user = request.user
  if (!user) return { type: 'system', id: null }
  return { type: user.kind === 'api_key' ? 'api_key' : 'user', id: user.id }
}

/**
 * Records one audit event through `tx` — the transaction that makes the change, so the event
 * commits or rolls back with it. Throws what the insert throws (the caller's transaction then
 * rolls back: no change without its event).
 */
export async function recordAuditEvent (tx: AuditWriter, event: AuditEventInput): Promise<void> {
  if (!event.enabled) return
  const data = {
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
 * Runs `change` and records the event `eventOf(result)` in one (interactive) transaction of the
 * request's tenant, for changes that need several statements. With AUDIT=off (benchmark comparison
 * only) the change still runs in its transaction, without the event: its statements stay all or
 * nothing (a check that throws after the first one, as POST /v1/users's, leaves nothing behind).
 * `eventOf` answers null when the change found nothing to change (a second logout of a session
 * racing the first): no event then, as no change.
 */
export async function audited<T> (request: FastifyRequest, change: (tx: Tx) => Promise<T>, eventOf: (result: T) => AuditEventFields | null): Promise<T> {
  const context = auditContext(request)
  return await auditedTransaction(request, async (tx) => {
    const result = await change(tx)
    const event = eventOf(result)
    if (event) await recordAuditEvent(tx, { ...context, ...event })
    return result
  })
}

/**
 * Runs `fn` in one interactive transaction (READ COMMITTED) of the request's tenant whose first
 * statement takes the tenant's audit chain lock, before any row lock of the transaction's own
 * (withAuditChainLock). Every audited write of a tenant takes its locks in that order, so no two
 * deadlock; they queue on the chain one after the other, and each statement after the lock sees
 * every audited change committed before it (the users routes' last-owner check relies on this).
 * For writes that record their events with recordAuditEvent themselves.
 */
export async function auditedTransaction<T> (request: FastifyRequest, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return await withAuditChainLock(request.tenantId, () => request.db.$transaction(fn))
}

/** The event of an auditedChange: its target is each changed row (its `id` column). */
export interface ChangeEvent {
  action: AuditAction
  targetType: TargetType
  /** What changed (sanitised by auditData), the same for every changed row. */
  data?: Record<string, unknown>
  /** Columns of the changed row added to data under their own names (e.g. a deleted project's name). */
  rowFields?: readonly string[]
}

const COLUMN = /^[a-z_][a-z0-9_]*$/

/**
 * The one-statement audited write: runs `change` — ONE `INSERT`, `UPDATE` or `DELETE` of the
 * request's tenant with `RETURNING id, …` (raw SQL bypasses the scoped client, so it must name the
 * tenant itself: `WHERE tenant_id = ${tenantId}`, `INSERT … (tenant_id, …) VALUES (${tenantId}, …)`;
 * row-level security checks it again)
 * — and inserts one audit event per returned row, in the same statement:
 *
 *   WITH changed AS (<change>), logged AS (INSERT INTO audit_events … SELECT … FROM changed)
 *   SELECT * FROM changed
 *
 * so the event exists exactly when the change does, in one round trip. Returns the changed rows
 * (columns as `change` names them; [] when nothing matched: the caller answers 404). Throws what
 * PostgreSQL throws (through Prisma: P2010 with the SQLSTATE in meta.code) — nothing is written then.
 * Callable from any tenant route; the actor, request id, address and user agent come from `request`.
 */
export async function auditedChange<Row extends { id: string }> (request: FastifyRequest, change: Prisma.Sql, event: ChangeEvent): Promise<Row[]> {
  const context = auditContext(request)
  const db = request.server.platformDb
  const tenantId = request.tenantId
  if (!context.enabled) return await retryingConflicts(() => runAsTenant(tenantId, () => db.$queryRaw<Row[]>(change)))
  const fields = (event.rowFields ?? []).map((name) => {
    if (!COLUMN.test(name)) throw new Error(`not a column name: ${name}`)
    return Prisma.sql`${name}::text, ${sanitizedColumn(name)}`
  })
  const data = boundedAuditData(event.data ?? {}).json
  const rowData = fields.length ? Prisma.sql` || jsonb_build_object(${Prisma.join(fields)})` : Prisma.empty
  // The WHERE is a one-time filter, evaluated before the main query reads `changed` (which runs
  // the change): the tenant's chain lock comes before the change's row locks, in every audited
  // statement, so no two of them can deadlock (migration 20261209000200_audit_chain_lock_first).
  const statement = Prisma.sql`WITH changed AS (${change}), logged AS (
    INSERT INTO audit_events (tenant_id, action, actor_type, actor_id, target_type, target_id, request_id, ip, user_agent, data)
    SELECT ${tenantId}::uuid, ${event.action}, ${context.actor.type}, ${context.actor.id}::uuid, ${event.targetType}, changed.id,
      ${context.requestId}, ${context.ip}, ${context.userAgent}, ${data}::jsonb${rowData}
    FROM changed RETURNING 1
  ) SELECT * FROM changed WHERE (SELECT app_lock_audit_chain(${tenantId}::uuid))`
  return await retryingConflicts(() => runAsTenant(tenantId, () => db.$queryRaw<Row[]>(statement)))
}

/** Attempts of one auditedChange statement that meets a concurrent writer (40P01, 40001). */
const CHANGE_ATTEMPTS = 3

/**
 * Runs a one-statement change, again when PostgreSQL rolled it back for a concurrent writer
 * (40P01, 40001). The statement takes the tenant's chain lock before any row lock, so the race
 * this was written for (a project's DELETE, whose cascade reaches the tasks, against a write to
 * one of its tasks) now queues instead of deadlocking (test/tasks.test.ts); this stays for an
 * ordering not foreseen. The statement is its own transaction, so nothing of the failed attempt
 * remains; a third failure is thrown (409 CONFLICT, plugins/error-handler.ts).
 */
async function retryingConflicts<T> (statement: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await statement()
    } catch (error) {
      if (attempt >= CHANGE_ATTEMPTS || !isWriteConflict(error)) throw error
    }
  }
}

// Field names whose values are secrets (OWASP Logging Cheat Sheet: never record passwords, session
// ids, access tokens, keys): the name stays, so the event still says the field changed. The name is
// read as words, split at punctuation, digits and lower-to-upper case changes. Long
// secret words count anywhere in the name (`clientSecret`, `smtppassword`); short ones at either end
// of a word (`passcode`, `smtppass`, `totp`, `pwdhash`, `salted`), `key` at its end (`accesskey`,
// `stripeKey`) and `dsn` or `pat` at its end (`sentrydsn`, `githubPat`), and a few only as a word of
// their own (`pin`, `jwt`). A boolean is never hidden: it holds no secret, and a security setting
// turned off (`requireTotp: false`) must stay readable (review 92). Review 90:
// `stripeKey`, `accessKey` and `pwd` were recorded in clear; review 91: reading the short words only
// as whole words then let `passcode`, `smtppass` and `totp` through. Erring on the safe side hides
// some harmless names (`passengers`, `hashtags`, `sortKey`); `footprint`, `keyboard` and `pinned`
// stay readable.
const SECRET_WORDS = /passw(or)?d|passphrase|secret|token|credential|private|authorization|cookie|api_?key|webhook|connection_?string|(recovery|backup)_?codes?/i
const SECRET_AT_WORD_ENDS = /^(pass|pwd|otp|hash|salt)|(pass|pwd|pw|otp|hash|salt|keys?|dsn|pat)$/
const SECRET_WHOLE_WORDS = new Set(['pin', 'jwt', 'signature'])
const NAME_WORDS = /[^A-Za-z]+|(?<=[a-z])(?=[A-Z])/

/** True when a field or column called `name` holds a secret (see SECRET_WORDS): its value is never recorded. */
export function isSecretName (name: string): boolean {
  if (SECRET_WORDS.test(name)) return true
  return name.split(NAME_WORDS).some((word) => {
    const lower = word.toLowerCase()
    return SECRET_AT_WORD_ENDS.test(lower) || SECRET_WHOLE_WORDS.has(lower)
  })
}

// Values that are credentials whatever their field is called. Ours, in any case: JWTs,
// `<session>.<secret>` refresh tokens and API keys (`tk_live_<id>_<secret>`; the prefix alone, shown
// in lists, is no secret). Third parties' by their documented prefixes, in their case (review 91:
// read in any case, `AsiaExpansionProject` was taken for an AWS key id): Stripe secret and restricted
// keys, AWS access key ids, GitHub tokens, Stripe webhook secrets, Slack tokens, GitLab tokens. Both
// run in PostgreSQL too (sanitizedColumn, `~*` and `~`), so they keep to what both engines read alike.
const OUR_TOKEN = /^eyJ[\w-]*\.[\w-]*\.[\w-]*$|^[0-9a-f-]{36}\.[\w-]{43}$|^tk_[a-z]+_[a-z0-9]+_[a-z0-9]+$/i
const THIRD_PARTY_KEY = /^[sr]k_(live|test)_[A-Za-z0-9]+$|^(AKIA|ASIA)[0-9A-Z]{16}$|^(gh[pousr]_|github_pat_)\w+$|^whsec_[\w+/=]+$|^xox[abprs]-[\w-]+$|^glpat-[\w-]+$/
// Credentials inside a longer value, in any case (review 92): a password in a URL
// (`redis://:pw@cache`, `postgres://u:pw@db/app`), a PEM private key (a service account's JSON), a
// `Password=` of a connection string.
const CREDENTIAL_INSIDE = /^[a-z][a-z0-9+.-]*:\/\/[^/?#@\s]*:[^/?#@\s]*@|-----BEGIN [A-Z ]*PRIVATE KEY-----|(^|;)\s*password\s*=/i
const isSecretValue = (value: string): boolean => OUR_TOKEN.test(value) || THIRD_PARTY_KEY.test(value) || CREDENTIAL_INSIDE.test(value)
export const REDACTED = '[redacted]'
const MAX_DEPTH = 8
const MAX_STRING = 2_000

/**
 * A changed row's column as auditData would record it, in SQL (the row exists only inside the
 * statement): "[redacted]" for a column named like a secret or a value shaped like a key or holding
 * a credential (OUR_TOKEN's, THIRD_PARTY_KEY's and CREDENTIAL_INSIDE's own patterns: PostgreSQL's
 * `\w` also takes non-ASCII letters, so it redacts at least what the JS test does). Meant for short columns (names, titles: their
 * schemas cap them below MAX_STRING, so nothing needs cutting).
 */
function sanitizedColumn (name: string): Prisma.Sql {
  if (isSecretName(name)) return Prisma.sql`${REDACTED}::text`
  // eslint-disable-next-line no-restricted-properties -- a column name, checked against COLUMN by auditedChange
  const value = Prisma.sql`changed.${Prisma.raw(name)}::text`
  return Prisma.sql`CASE WHEN ${value} ~* ${OUR_TOKEN.source} OR ${value} ~ ${THIRD_PARTY_KEY.source} OR ${value} ~* ${CREDENTIAL_INSIDE.source} THEN ${REDACTED}::text ELSE ${value} END`
}

/**
 * The `data` of an event: a JSON copy of `value` with every secret replaced by "[redacted]"
 * (fields named like a secret, and strings shaped like our tokens), dates as ISO-8601, long strings
 * cut to 2,000 characters and nesting cut at 8 levels (an audit log records what changed, it is not
 * a copy store). A copy over MAX_DATA_CHARS (16,384 characters of JSON; e.g. a 1 MB settings object)
 * has its largest top-level fields replaced by "[truncated]" until it fits (their names stay).
 */
export function auditData (value: Record<string, unknown>): Record<string, unknown> {
  return boundedAuditData(value).data
}

/** auditData's copy and its JSON text (what auditedChange sends): serialised once on the common path. */
function boundedAuditData (value: Record<string, unknown>): { data: Record<string, unknown>, json: string } {
  const data = sanitize(value, 0) as Record<string, unknown>
  const json = JSON.stringify(data)
  let size = json.length
  if (size <= MAX_DATA_CHARS) return { data, json }
  // Largest fields first, until the copy fits: the event still names every field that changed.
  const sizes = Object.entries(data).map(([key, item]) => [key, JSON.stringify(item).length] as const).sort((a, b) => b[1] - a[1])
  for (const [key, itemSize] of sizes) {
    if (size <= MAX_DATA_CHARS) break
    data[key] = TRUNCATED
    size -= itemSize - TRUNCATED.length - 2
  }
  return { data, json: JSON.stringify(data) }
}

const MAX_DATA_CHARS = 16_384
const TRUNCATED = '[truncated]'

function sanitize (value: unknown, depth: number): unknown {
  if (value === null || typeof value === 'number' || typeof value === 'boolean') return value
  if (typeof value === 'string') return isSecretValue(value) ? REDACTED : value.length > MAX_STRING ? `${value.slice(0, MAX_STRING)}…` : value
  if (value instanceof Date) return value.toISOString()
  if (typeof value !== 'object') return null
  if (depth >= MAX_DEPTH) return TRUNCATED
  if (Array.isArray(value)) return value.map((item) => sanitize(item, depth + 1))
  const out: Record<string, unknown> = {}
  for (const [key, item] of Object.entries(value)) {
    if (item === undefined) continue
    out[key] = isSecretName(key) && typeof item !== 'boolean' ? REDACTED : sanitize(item, depth + 1)
  }
  return out
}
