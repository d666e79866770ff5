// Reading the audit log: pages for the list route, batches for the export, the chain check, and
// retention. Writing is src/audit/audit-log.ts.
import type { PrismaClient } from '../generated/prisma/client.ts'
import type { ActorType, AuditAction } from './actions.ts'
import type { ScopedClient } from '../tenancy/scoped-client.ts'
import { runAsTenant } from '../tenancy/tenant-context.ts'
import { withShortLivedClient } from '../db/short-lived-client.ts'

/** The columns every reader selects. */
export const auditEventFields = {
  id: true,
  seq: true,
  at: true,
  action: true,
  actorType: true,
  actorId: true,
  targetType: true,
  targetId: true,
  requestId: true,
  ip: true,
  userAgent: true,
  data: true,
  prevHash: true,
  hash: true,
} as const

export interface AuditEventRow {
  id: string
  seq: bigint
  at: Date
  action: string
  actorType: string
  actorId: string | null
  targetType: string | null
  targetId: string | null
  requestId: string | null
  ip: string | null
  userAgent: string | null
  data: unknown
  prevHash: string
  hash: string
}

/** An event as the API shows it (shared/API.md "Audit events"). */
export function toAuditEventView (row: AuditEventRow) {
  return {
    id: row.id,
    // The database holds only these (the writer's types and the actor CHECK constraint).
    action: row.action as AuditAction,
    actor: { type: row.actorType as ActorType, id: row.actorId },
    target: row.targetType && row.targetId ? { type: row.targetType, id: row.targetId } : null,
    requestId: row.requestId,
    ip: row.ip,
    userAgent: row.userAgent,
    at: row.at,
    data: (row.data ?? {}) as Record<string, unknown>,
  }
}

/** An exported line: the view plus the chain fields, so the export can be checked offline. */
export function toExportLine (row: AuditEventRow) {
  return { ...toAuditEventView(row), at: row.at.toISOString(), seq: Number(row.seq), prevHash: row.prevHash, hash: row.hash }
}

export const EXPORT_BATCH = 1_000

/**
 * Every event of the db's tenant, oldest first, read in keyset batches of EXPORT_BATCH by seq:
 * memory stays at one batch however long the log is. Events appended during the walk are included
 * up to the moment the walk reaches them.
 */
export async function * eventsOldestFirst (db: ScopedClient, batch = EXPORT_BATCH): AsyncGenerator<AuditEventRow> {
  let after = -1n
  for (;;) {
    const rows = await db.auditEvent.findMany({ where: { seq: { gt: after } }, orderBy: { seq: 'asc' }, take: batch, select: auditEventFields })
    for (const row of rows) yield row
    if (rows.length < batch) return
    after = rows[rows.length - 1]!.seq
  }
}

export interface VerifyResult {
  /** True when every event's hash, link and sequence number check out and the chain reaches its head. */
  ok: boolean
  /** Events walked. */
  checked: number
  /** The first event (by chain order) that does not check out; null when none, or when only the tail is missing. */
  firstBadId: string | null
}

/** Events one statement of the chain's walk covers (a range of seq): about 0.35 s of the database's time (3 s per 86,000 measured). */
export const VERIFY_RANGE = 10_000

type ChainEnds = { pruned_seq: bigint; pruned_hash: string; head_seq: bigint; head_hash: string }
type RangeResult = { checked: bigint; first_bad_id: string | null; last_id: string | null; last_seq: bigint; last_hash: string }
type Reader = Pick<PrismaClient, '$queryRaw'>

/** Longest a walk may take (ms): a million events are about 35 s of the database's time. */
const VERIFY_TIMEOUT_MS = 10 * 60_000

/**
 * Walks the tenant's hash chain in the database as the API role, under row-level security for
 * `tenantId`, in one read-only REPEATABLE READ transaction (one snapshot: a retention run or a
 * writer meanwhile changes nothing it sees): from the pruned head up to the head, VERIFY_RANGE seq
 * per statement (SQL function audit_verify_range), so no statement of a large log outruns
 * DB_STATEMENT_TIMEOUT_MS; then the last event must be the head (its seq and hash, recorded on the
 * tenant by the insert trigger), and no event may lie outside (pruned seq, head seq].
 * Throws what the queries throw (database unreachable: the route's 503).
 */
export async function verifyChain (platformDb: PrismaClient, tenantId: string): Promise<VerifyResult> {
  return await runAsTenant(tenantId, () => platformDb.$transaction(async (tx) => {
    await tx.$executeRaw`SET TRANSACTION READ ONLY`
    const [ends] = await tx.$queryRaw<ChainEnds[]>`
      SELECT audit_pruned_seq AS pruned_seq, audit_pruned_hash AS pruned_hash, audit_seq AS head_seq, audit_head_hash AS head_hash
      FROM tenants WHERE id = ${tenantId}::uuid`
    if (!ends) return { ok: false, checked: 0, firstBadId: null }
    return await walkChain(tx, tenantId, ends)
  }, { isolationLevel: 'RepeatableRead', timeout: VERIFY_TIMEOUT_MS }))
}

async function walkChain (db: Reader, tenantId: string, ends: ChainEnds): Promise<VerifyResult> {
  let checked = 0
  let firstBadId: string | null = null
  let last = { id: null as string | null, seq: ends.pruned_seq, hash: ends.pruned_hash }
  const range = BigInt(VERIFY_RANGE)
  let from: bigint | null = ends.pruned_seq
  while (from !== null && from < ends.head_seq) {
    const through: bigint = from + range < ends.head_seq ? from + range : ends.head_seq
    const [walked]: RangeResult[] = await db.$queryRaw<RangeResult[]>`
      SELECT * FROM audit_verify_range(${tenantId}::uuid, ${last.seq}::bigint, ${last.hash}, ${through}::bigint)`
    checked += Number(walked!.checked)
    firstBadId ??= walked!.first_bad_id
    if (walked!.last_id) last = { id: walked!.last_id, seq: walked!.last_seq, hash: walked!.last_hash }
    // An empty range skips to the next event there is (a gap of any width costs one probe).
    from = walked!.checked > 0n ? through : await nextSeqBefore(db, tenantId, through, ends.head_seq)
  }
  // An event outside (pruned seq, head seq] is none the chain holds (written behind the trigger).
  const [stray] = await db.$queryRaw<Array<{ id: string }>>`
    SELECT id FROM audit_events WHERE tenant_id = ${tenantId}::uuid AND (seq <= ${ends.pruned_seq}::bigint OR seq > ${ends.head_seq}::bigint)
    ORDER BY seq LIMIT 1`
  firstBadId ??= stray?.id ?? null
  const reachesHead = last.seq === ends.head_seq
  // The newest events rewritten with their hashes recomputed link to each other; only the head tells.
  if (!firstBadId && reachesHead && last.hash !== ends.head_hash) firstBadId = last.id
  return { ok: firstBadId === null && reachesHead, checked, firstBadId }
}

/** The seq just before the tenant's next event after `after` (at most `head`), or null when there is none. */
async function nextSeqBefore (db: Reader, tenantId: string, after: bigint, head: bigint): Promise<bigint | null> {
  const [next] = await db.$queryRaw<Array<{ seq: bigint | null }>>`
    SELECT min(seq) AS seq FROM audit_events WHERE tenant_id = ${tenantId}::uuid AND seq > ${after}::bigint AND seq <= ${head}::bigint`
  return next?.seq == null ? null : next.seq - 1n
}

/** Most events one retention transaction removes: it holds the tenant's chain head meanwhile. */
export const PRUNE_BATCH = 5_000

/** Longest a retention batch waits for a tenant's chain head (a long audited transaction): then the run fails and the next tick retries. */
const PRUNE_LOCK_TIMEOUT = '10s'

/**
 * Retention: removes every tenant's events older than `retentionDays` days, keeping each chain
 * verifiable from its pruned head. Returns the number removed, or null when another run (another
 * instance) holds the retention lock and this one skipped. 0 days means "keep forever": nothing is
 * removed. Each tenant is pruned in transactions of at most `batch` events (SQL function
 * audit_prune_batch), so an audited write of that tenant waits for one batch at most, never for the
 * whole run. One run at a time across instances: a session advisory lock, released at the end or
 * when the connection dies (TCP keepalive on, so a dead network ends the session). Runs as the
 * tables' owner (`ownerUrl`, i.e. DATABASE_URL), on a connection of its own: the API's role may
 * not execute the pruning functions. A tenant whose events to prune do not verify (changed or
 * removed behind the guards) keeps them, evidence for verify, and `onBrokenChain(tenantId)` is
 * called: retention never erases a break (review 90); the other tenants are pruned.
 * @throws what pg throws when the database cannot be reached (connect bounded by `connectTimeoutMs`)
 *   or a batch waited longer than PRUNE_LOCK_TIMEOUT for a tenant's chain head.
 */
export async function pruneAuditEvents (ownerUrl: string, retentionDays: number, now = new Date(), connectTimeoutMs = 5000, batch = PRUNE_BATCH, onBrokenChain: (tenantId: string) => void = () => {}): Promise<number | null> {
  if (retentionDays <= 0) return 0
  const cutoff = new Date(now.getTime() - retentionDays * 86_400_000)
  return withShortLivedClient(ownerUrl, async (client) => {
    const { rows: [lock] } = await client.query<{ taken: boolean }>('SELECT pg_try_advisory_lock(872014, 1) AS taken')
    if (!lock?.taken) return null
    try {
      await client.query(`SET lock_timeout = '${PRUNE_LOCK_TIMEOUT}'`)
      const { rows: tenants } = await client.query<{ id: string }>('SELECT audit_prune_candidates AS id FROM audit_prune_candidates($1::timestamptz)', [cutoff])
      let removed = 0
      for (const { id } of tenants) {
        for (;;) {
          const { rows } = await client.query<{ n: string }>('SELECT audit_prune_batch($1::uuid, $2::timestamptz, $3::int) AS n', [id, cutoff, batch])
          const n = Number(rows[0]?.n ?? 0)
          if (n < 0) onBrokenChain(id) // audit_prune_batch kept a batch that does not verify
          if (n <= 0) break
          removed += n
        }
      }
      return removed
    } finally {
      await client.query('SELECT pg_advisory_unlock(872014, 1)').catch(() => {})
    }
  }, connectTimeoutMs)
}
