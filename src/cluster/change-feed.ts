// The change feed (migration 20261205000000_change_feed): every instance polls the database for the
// tenants, sessions, users and API keys changed since its last look, and drops them from its caches.
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
 * How far back each read looks before the previous read's clock (ms). A change is stamped when it
 * is made and seen once committed: a transaction that commits more than this after its change is
 * missed by the feed, and an entry it should have dropped is served until its keep ends (≤
 * CHANGE_FEED_CACHE_TTL_MS) — a known limit for very long transactions (README "Caches"). Re-reading
 * is harmless; app_changes_since answers at most the last two minutes.
 */
export const OVERLAP_MS = 60_000
/**
 * More changes than this in one read are not applied one by one (each walks a cache): `onResync`
 * drops everything instead (a bulk revocation, a deleted tenant's cascade).
 */
export const MAX_CHANGES_APPLIED = 256
/** How often the feed's old rows are pruned (ms; app_prune_change_feed, from any instance). */
export const PRUNE_INTERVAL_MS = 10 * 60_000

/** What changed: the `kind` column of change_feed. */
export type ChangeKind = 'tenant' | 'session' | 'user' | 'api_key'

/** One changed row: its kind, its id (a UUID) and when it changed (ms since the epoch, the database's clock). */
export interface Change {
  kind: ChangeKind
  id: string
  changedAtMs: number
}

/** One read of the feed: the database's clock at the read, and the rows changed after `since`. */
export interface FeedRead {
  nowMs: number
  changes: Change[]
}

/**
 * Reads the feed through the API's own pool (app_changes_since: one short statement, fine behind a
 * transaction pooler). `sinceMs` null: the clock only. Rejects with the driver's error.
 */
export async function readChanges (db: Pick<PrismaClient, '$queryRaw'>, sinceMs: number | null): Promise<FeedRead> {
  const since = sinceMs === null ? null : new Date(sinceMs)
  const [row] = await db.$queryRaw<Array<{ nowMs: number; kinds: ChangeKind[]; ids: string[]; changedAtMs: number[] }>>`SELECT * FROM app_changes_since(${since}::timestamptz)`
  return { nowMs: row!.nowMs, changes: row!.ids.map((id, i) => ({ kind: row!.kinds[i]!, id, changedAtMs: row!.changedAtMs[i]! })) }
}

export interface ChangeFeedOptions {
  /** Reads the rows changed after `sinceMs` (readChanges). Rejects when the database does not answer. */
  read: (sinceMs: number | null) => Promise<FeedRead>
  /** Called once for each change (a change read again in the overlap is not reported twice). */
  onChange: (change: Change) => void
  /**
   * Called instead of onChange when the changes since the last read may not all be known (the first
   * read, a read after a gap longer than half the overlap) or are too many to apply one by one: drop
   * every cached entry.
   */
  onResync: () => void
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
  /** The database's clock at the last successful read (ms since the epoch). */
  private lastNowMs: number | null = null
  /** Changes already reported: `<kind>:<id>` → its change's time (ms since the epoch, the database's clock). */
  private readonly reported = new Map<string, number>()
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
        // After a gap (or at the first read) the overlap may not reach back to the last applied read:
        // what was cached meanwhile cannot be vouched for.
        const gap = startedAt - this.coveredFrom > OVERLAP_MS / 2
        const read = await this.options.read(this.lastNowMs === null ? null : this.lastNowMs - OVERLAP_MS)
        this.apply(read, gap)
        this.lastNowMs = read.nowMs
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

  private apply ({ nowMs, changes }: FeedRead, gap: boolean): void {
    const fresh = changes.filter((change) => this.reported.get(`${change.kind}:${change.id}`) !== change.changedAtMs)
    for (const change of fresh) this.reported.set(`${change.kind}:${change.id}`, change.changedAtMs)
    if (gap || fresh.length > MAX_CHANGES_APPLIED) this.options.onResync()
    else for (const change of fresh) this.options.onChange(change)
    // A change older than the overlap is in no later read's window: forget it, so that the map stays
    // as small as the recent changes.
    const oldest = nowMs - 2 * OVERLAP_MS
    for (const [key, at] of this.reported) if (at < oldest) this.reported.delete(key)
  }
}
