// The feed of API-key changes (migration 20261205000000_api_key_changes): every instance polls the
// database for keys changed since its last look and drops them from its key cache. It is what lets
// an instance keep key rows longer than the contract's 1 s revocation bound for keys (shared/API.md
// "API keys") without breaking it: a row older than BOUND_MS is served only while `covers()` says
// every change committed more than BOUND_MS ago has been applied here. The invalidation channel
// (plugins/invalidation.ts) is faster but can lose a message; this feed is durable state, so a
// revocation made through another instance, by an operator's SQL, or while the channel was down
// still holds within 1 s. When the database does not answer, `covers()` turns false and the cache
// falls back to BOUND_MS by itself.
//
// Our own code, not a library's: it is the tenancy/auth core (which rows may be served how long),
// and the loop is a timer around one query.
import type { PrismaClient } from '../generated/prisma/client.ts'

/** How often the feed is read (ms): four reads a second leave three polls of slack within BOUND_MS. */
export const POLL_INTERVAL_MS = 250
/** The revocation bound the feed upholds (ms): the contract's "within 1 s" for keys. */
export const BOUND_MS = 1_000
/**
 * How far back each read looks before the previous read's clock (ms). A change is stamped when it
 * is made and seen once committed: a transaction that commits more than this after its change could
 * be missed by the feed (the cache's TTL, ≤ 5 s, still bounds it). Re-reading a change is harmless.
 */
export const OVERLAP_MS = 60_000

/** One read of the feed: the database's clock at the read, and the keys changed after `since` with when (ms since the epoch). */
export interface FeedRead {
  nowMs: number
  changes: Array<{ keyId: string; changedAtMs: number }>
}

/**
 * Reads the feed through the API's own pool (app_api_key_changes_since: one short statement, fine
 * behind a transaction pooler). `sinceMs` null: the clock only. Rejects with the driver's error.
 */
export async function readKeyChanges (db: Pick<PrismaClient, '$queryRaw'>, sinceMs: number | null): Promise<FeedRead> {
  const since = sinceMs === null ? null : new Date(sinceMs)
  const [row] = await db.$queryRaw<Array<{ nowMs: number; keyIds: string[]; changedAtMs: number[] }>>`SELECT * FROM app_api_key_changes_since(${since}::timestamptz)`
  return { nowMs: row!.nowMs, changes: row!.keyIds.map((keyId, i) => ({ keyId, changedAtMs: row!.changedAtMs[i]! })) }
}

export interface KeyChangeFeedOptions {
  /** Reads the keys changed after `sinceMs` (readKeyChanges). Rejects when the database does not answer. */
  read: (sinceMs: number | null) => Promise<FeedRead>
  /** Called once for each change of a key (a change read again in the overlap is not reported twice). */
  onChange: (keyId: string) => void
  /** Called when reads start failing and when they succeed again (not for every failed read). */
  onHealth?: (healthy: boolean, error?: unknown) => void
  /** Monotonic clock (ms); performance.now by default. */
  clock?: () => number
}

export class KeyChangeFeed {
  private readonly clock: () => number
  /** Local clock at the start of the last read that succeeded (-Infinity: none yet). */
  private coveredFrom = -Infinity
  /** The database's clock at the last successful read (ms since the epoch). */
  private lastNowMs: number | null = null
  /** Changes already reported: key id → its change's time (ms since the epoch, the database's clock). */
  private readonly reported = new Map<string, number>()
  private timer: NodeJS.Timeout | undefined
  private running = false
  private failing = false
  private reading: Promise<void> = Promise.resolve()

  constructor (private readonly options: KeyChangeFeedOptions) {
    this.clock = options.clock ?? (() => performance.now())
  }

  /**
   * Whether every key change committed before `now - BOUND_MS` has been applied here: the last
   * successful read began at most BOUND_MS ago. Cached key rows may be served up to their TTL while
   * this holds, and for at most BOUND_MS otherwise.
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

  /** One read; exposed for tests. */
  async poll (): Promise<void> {
    const run = async () => {
      const startedAt = this.clock()
      try {
        const read = await this.options.read(this.lastNowMs === null ? null : this.lastNowMs - OVERLAP_MS)
        this.apply(read)
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
    if (this.running) {
      clearTimeout(this.timer)
      this.timer = setTimeout(() => void this.poll(), POLL_INTERVAL_MS)
      this.timer.unref()
    }
  }

  private apply ({ nowMs, changes }: FeedRead): void {
    for (const { keyId, changedAtMs } of changes) {
      if (this.reported.get(keyId) === changedAtMs) continue
      this.reported.set(keyId, changedAtMs)
      this.options.onChange(keyId)
    }
    // A change older than the overlap is in no later read's window: forget it, so that the map stays
    // as small as the recent changes.
    const oldest = nowMs - 2 * OVERLAP_MS
    for (const [keyId, at] of this.reported) if (at < oldest) this.reported.delete(keyId)
  }
}
