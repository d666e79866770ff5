// The change feed (migrations 20261205000000_change_feed, 20261207000000_change_feed_cursor): every
// instance polls the database for the tenants, sessions, users and API keys changed by transactions
// that its last look did not see as ended (the cursor is that look's snapshot, so a late commit is
// read once it commits, within the ten minutes app_changes_after answers, and a change is read once),
// and drops them from its caches.
// It is what lets an instance keep those entries far longer than the contract's bounds
// (CHANGE_FEED_CACHE_TTL_MS) without breaking them: an entry older than its cache's own short TTL
// (TENANT_CACHE_TTL_MS, REVOCATION_CACHE_TTL_MS, API_KEY_CACHE_TTL_MS) is served only while
// `covers()` says every change committed more than BOUND_MS ago has been applied here. The
// invalidation channel (plugins/invalidation.ts) is faster but can lose a message; this feed is
// durable state, so a change made through another instance, by an operator's SQL, or while the
// channel was down still holds within 1 s. When the database does not answer, `covers()` turns
// false and each cache falls back to its short TTL by itself.
//
// Our own code, not a library's: it is the tenancy/auth core (which rows may be served how long),
// and the loop is a timer around one query.
import type { PrismaClient } from '../generated/prisma/client.ts'

/** How often the feed is read (ms): four reads a second leave three polls of slack within BOUND_MS. */
export const POLL_INTERVAL_MS = 250
/** The bound the feed upholds (ms): the contract's "within 1 second on every other instance". */
export const BOUND_MS = 1_000
/**
 * A read after no successful read for this long drops everything (ms): app_changes_after answers the
 * last ten minutes of changes only, so after a gap near that the cursor may no longer reach back.
 */
export const RESYNC_AFTER_MS = 5 * 60_000
/**
 * More changes than this in one read are not applied one by one: `onResync` drops everything
 * instead (a deleted tenant's cascade, a mass revocation). Each change costs only the entries it
 * drops (the caches index their entries by tag, src/cache.ts), so a bulk of a few thousand — a
 * revocation of 1,000 sessions — is still applied change by change, and the other cached entries
 * are not all read again at once.
 */
export const MAX_CHANGES_APPLIED = 5_000
/** How often the feed's old rows are pruned (ms; app_prune_change_feed, from any instance). */
export const PRUNE_INTERVAL_MS = 10 * 60_000

/** What changed: the `kind` column of change_feed. */
export type ChangeKind = 'tenant' | 'session' | 'user' | 'api_key'

/** One changed row: its kind, its id (a UUID) and the transaction that changed it (a PostgreSQL xid8, decimal text; for logs and tests). */
export interface Change {
  kind: ChangeKind
  id: string
  writer: string
}

/**
 * One read of the feed: the cursor of the next read (the read's snapshot, PostgreSQL's
 * `xmin:xmax:in-progress,…` text) and the rows written by transactions that the cursor it was given
 * did not see as ended.
 */
export interface FeedRead {
  next: string
  /** Which database server answered (its start time): a cursor is meaningful on that server only. */
  server: string
  changes: Change[]
}

/**
 * Reads the feed through the API's own pool (app_changes_after: one short statement, fine behind a
 * transaction pooler). `cursor` null: the next cursor only. Rejects with the driver's error.
 */
export async function readChanges (db: Pick<PrismaClient, '$queryRaw'>, cursor: string | null): Promise<FeedRead> {
  const [row] = await db.$queryRaw<Array<{ next: string; server: string; kinds: ChangeKind[]; ids: string[]; writers: string[] }>>`SELECT * FROM app_changes_after(${cursor}::pg_snapshot)`
  return { next: row!.next, server: row!.server, changes: row!.ids.map((id, i) => ({ kind: row!.kinds[i]!, id, writer: row!.writers[i]! })) }
}

export interface ChangeFeedOptions {
  /** Reads the rows changed by transactions that `cursor` did not see as ended (readChanges). Rejects when the database does not answer. */
  read: (cursor: string | null) => Promise<FeedRead>
  /** Called for each change read (each is read once). */
  onChange: (change: Change) => void
  /**
   * Called instead of onChange when the changes since the last read may not all be known (the first
   * read, a read after RESYNC_AFTER_MS without one, another database server — restarted, failed
   * over, restored — or a cursor that went back) or are too many to apply one by one: drop every
   * cached entry.
   */
  onResync: () => void
  /** Called (before onResync) when the database server differs from the last read's: a restart, a failover, a restore. */
  onNewServer?: () => void
  /** Removes old changes (app_prune_change_feed); called every PRUNE_INTERVAL_MS, failures ignored. */
  prune?: () => Promise<unknown>
  /** Called when reads start failing and when they succeed again (not for every failed read). */
  onHealth?: (healthy: boolean, error?: unknown) => void
  /** Monotonic clock (ms); performance.now by default. */
  clock?: () => number
}

export class ChangeFeed {
  private readonly clock: () => number
  /** Local clock at the start of the last read that succeeded (-Infinity: none yet). */
  private coveredFrom = -Infinity
  /** Where the next read starts (FeedRead.next of the last successful read), and on which server. */
  private cursor: string | null = null
  private server: string | null = null
  private timer: NodeJS.Timeout | undefined
  private running = false
  private failing = false
  private reading: Promise<void> = Promise.resolve()
  private lastPruneAt = -Infinity

  constructor (private readonly options: ChangeFeedOptions) {
    this.clock = options.clock ?? (() => performance.now())
  }

  /**
   * Whether every change committed before `now - BOUND_MS` has been applied here: the last
   * successful read began at most BOUND_MS ago. The caches keep entries up to CHANGE_FEED_CACHE_TTL_MS
   * while this holds, and their own short TTL otherwise.
   */
  covers (now = this.clock()): boolean {
    return now - this.coveredFrom <= BOUND_MS
  }

  /** Reads once now, then every POLL_INTERVAL_MS until stop(). Never rejects (a failed read is reported through onHealth). */
  async start (): Promise<void> {
    if (this.running) return
    this.running = true
    await this.poll()
  }

  /** Stops polling; waits for a read under way. */
  async stop (): Promise<void> {
    this.running = false
    clearTimeout(this.timer)
    await this.reading
  }

  private async poll (): Promise<void> {
    const run = async () => {
      const startedAt = this.clock()
      try {
        // At the first read, after a long gap (the function answers ten minutes at most), on another
        // server (its transaction ids may be below the cursor) or when the cursor went back, what
        // was cached meanwhile cannot be vouched for.
        const read = await this.options.read(this.cursor)
        const newServer = this.server !== null && read.server !== this.server
        if (newServer) this.options.onNewServer?.()
        const resync = this.cursor === null || newServer || startedAt - this.coveredFrom > RESYNC_AFTER_MS || xminOf(read.next) < xminOf(this.cursor)
        if (resync || read.changes.length > MAX_CHANGES_APPLIED) this.options.onResync()
        else for (const change of read.changes) this.options.onChange(change)
        this.cursor = read.next
        this.server = read.server
        this.coveredFrom = Math.max(this.coveredFrom, startedAt)
        if (this.failing) {
          this.failing = false
          this.options.onHealth?.(true)
        }
      } catch (error) {
        if (!this.failing) {
          this.failing = true
          this.options.onHealth?.(false, error)
        }
      }
    }
    this.reading = run()
    await this.reading
    const now = this.clock()
    if (this.options.prune && now - this.lastPruneAt >= PRUNE_INTERVAL_MS) {
      this.lastPruneAt = now
      this.options.prune().catch(() => {})
    }
    if (this.running) {
      clearTimeout(this.timer)
      this.timer = setTimeout(() => void this.poll(), POLL_INTERVAL_MS)
      this.timer.unref()
    }
  }
}

/** The oldest transaction a snapshot's text (`xmin:xmax:xip`) saw in progress. */
function xminOf (snapshot: string): bigint {
  return BigInt(snapshot.slice(0, snapshot.indexOf(':')))
}
