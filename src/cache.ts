// The per-instance caches of database reads on the request path (tenant lookups, session state,
// API-key rows) on lru-cache: at most `max` entries (the least recently used go first) and each
// served at most `ttlMs` after its load began. What lru-cache does not know and these caches all need:
// - dropping entries by what they hold (a tenant's, a user's) when this or another instance changed it,
//   through an index of each entry's tags (a change costs the entries it drops, not a walk of up to
//   20,000: the change feed applies up to 5,000 changes per read, four reads a second);
// - not keeping a value whose load overlapped such a drop, since it may have read the old row: every
//   drop bumps a counter, and a load that saw it change answers its caller but is not kept;
// - one load per key at a time: requests that miss together share it (no stampede of identical
//   queries when a hot entry expires), unless a drop came after it began or it began longer than
//   the TTL ago (a joiner gets what a hit would: a value read at most ttlMs before it asked);
// - two lifetimes: an entry is kept `keepMs` (CHANGE_FEED_CACHE_TTL_MS) but served past `ttlMs` (the
//   cache's own short TTL) only while `coveredBy()` says the change feed has been read within the
//   last second (src/cluster/change-feed.ts), so a change made anywhere still holds within 1 s;
// - refresh ahead: a hit in the last REFRESH_SHARE of the lifetime it is served under starts a reload in the
//   background, so a key read at least that often is never missed on the request path, and the
//   entries loaded together (at start, after a resync) do not all expire together into one burst
//   of queries. The served value is still never older than the TTL: the refresh only replaces it sooner.
// lru-cache's own fetchMethod/allowStale serves values past their TTL while refreshing, which
// would break the "at most ttlMs old" bound the revocation guarantees rest on.
import { LRUCache } from 'lru-cache'

/** Share of the TTL at its end in which a hit starts a background reload. */
const REFRESH_SHARE = 0.25

export interface ExpiringCacheOptions<V> {
  /** Most entries kept; beyond it the least recently used is dropped. */
  max: number
  /** How long an entry is served, from the moment its load began (ms); 0 keeps nothing. */
  ttlMs: number
  /** How long an entry may be served while `coveredBy()` holds (ms; ≥ ttlMs to matter). Default: ttlMs. */
  keepMs?: number
  /** Which entries may use keepMs (e.g. not a negative lookup that no change would drop). Default: all. */
  keepsLong?: (value: V) => boolean
  /** The tags an entry can be dropped by (deleteTagged), e.g. `user:<id>`. Default: none. */
  tags?: (value: V) => readonly string[]
}

/** Where a load began (ExpiringCache.loadStarts()). */
export interface LoadStart {
  /** lru-cache's clock (ms): the entry's TTL counts from here. */
  at: number
  /** Drops counted so far. */
  drops: number
}

export class ExpiringCache<V extends object> {
  /** Absent when ttlMs is 0: every read loads. */
  private readonly lru: LRUCache<string, V> | undefined
  private drops = 0
  /** Loads under way, by key, with where they began (lru-cache's clock and the drop count). */
  private readonly loading = new Map<string, { value: Promise<V>; started: LoadStart }>()
  private readonly ttlMs: number
  private readonly keepMs: number
  private readonly keepsLong: (value: V) => boolean
  private readonly tagsOf: (value: V) => readonly string[]
  /**
   * Keys by tag (one key as a plain string, the common case: a session's own tag, a user with one
   * session), and the tags each key was indexed under; kept in step with lru-cache by its dispose hook.
   */
  private readonly keysByTag = new Map<string, string | Set<string>>()
  private readonly tagsByKey = new Map<string, readonly string[]>()
  /**
   * Whether the change feed has been read within the last second (set where the feed is wired up,
   * plugins/invalidation.ts): only then is an entry served past ttlMs, up to keepMs.
   */
  coveredBy: (() => boolean) | null = null

  constructor ({ max, ttlMs, keepMs = ttlMs, keepsLong = () => true, tags = () => [] }: ExpiringCacheOptions<V>) {
    this.keepMs = ttlMs > 0 ? Math.max(ttlMs, keepMs) : 0
    // dispose runs for every entry that leaves (deleted, evicted, expired on access, overwritten).
    this.lru = ttlMs > 0 ? new LRUCache<string, V>({ max, ttl: this.keepMs, dispose: (_value, key) => this.unindex(key) }) : undefined
    this.ttlMs = ttlMs
    this.keepsLong = keepsLong
    this.tagsOf = tags
  }

  /** How long ago (ms) an entry may have begun loading to be served now; `value` undefined: any entry. */
  private lifetime (value?: V): number {
    return this.keepMs > this.ttlMs && this.coveredBy?.() && (value === undefined || this.keepsLong(value)) ? this.keepMs : this.ttlMs
  }

  /** Age (ms since its load began) of the kept entry of `key`. */
  private age (key: string): number {
    return this.keepMs - this.lru!.getRemainingTTL(key)
  }

  /** The entry of `key` if it may be served now, if any. */
  get (key: string): V | undefined {
    const value = this.lru?.get(key)
    return value !== undefined && this.age(key) < this.lifetime(value) ? value : undefined
  }

  /** Call where a load begins; pass the result to keep() once the value is there. */
  loadStarts (): LoadStart {
    return { at: this.lru?.perf.now() ?? 0, drops: this.drops }
  }

  /** Whether anything was dropped since `started`: a value loaded meanwhile may be stale. */
  droppedSince (started: LoadStart): boolean {
    return started.drops !== this.drops
  }

  /** Keeps `value` under `key` unless a drop happened since `started`. */
  keep (key: string, value: V, started: LoadStart): void {
    if (!this.lru || this.droppedSince(started)) return
    this.lru.set(key, value, { start: started.at })
    this.index(key, value)
  }

  /** Indexes the kept entry of `key` again, if it still holds `value`: call when its tags changed (a lookup resolved). */
  retag (key: string, value: V): void {
    if (this.lru?.peek(key) === value) this.index(key, value)
  }

  private index (key: string, value: V): void {
    this.unindex(key)
    const tags = this.tagsOf(value)
    if (tags.length === 0) return
    this.tagsByKey.set(key, tags)
    for (const tag of tags) {
      const keys = this.keysByTag.get(tag)
      if (keys === undefined) this.keysByTag.set(tag, key)
      else if (typeof keys !== 'string') keys.add(key)
      else if (keys !== key) this.keysByTag.set(tag, new Set([keys, key]))
    }
  }

  private unindex (key: string): void {
    const tags = this.tagsByKey.get(key)
    if (!tags) return
    this.tagsByKey.delete(key)
    for (const tag of tags) {
      const keys = this.keysByTag.get(tag)
      if (keys === key || (typeof keys !== 'string' && keys?.delete(key) && keys.size === 0)) this.keysByTag.delete(tag)
    }
  }

  /**
   * The entry of `key`, or the value of `load` (kept as keep() says). A miss joins the load of `key`
   * already under way when nothing was dropped since it began and it began less than the lifetime
   * ago (what a hit would give: a value read at most that long before it asked); a hit in the last
   * REFRESH_SHARE of its lifetime starts a background reload (its failure is ignored: the entry
   * simply expires). Rejects with `load`'s error.
   */
  async getOrLoad (key: string, load: () => Promise<V>): Promise<V> {
    const hit = this.lru?.get(key)
    if (hit !== undefined) {
      const age = this.age(key)
      const lifetime = this.lifetime(hit)
      if (age < lifetime) {
        if (age >= lifetime * (1 - REFRESH_SHARE) && !this.loading.has(key)) this.startLoad(key, load).catch(() => {})
        return hit
      }
    }
    const under = this.loading.get(key)
    if (under && this.lru && under.started.drops === this.drops && this.lru.perf.now() - under.started.at < this.lifetime()) return under.value
    return this.startLoad(key, load)
  }

  private startLoad (key: string, load: () => Promise<V>): Promise<V> {
    const started = this.loadStarts()
    let value: Promise<V>
    try {
      value = load()
    } catch (error) {
      value = Promise.reject(error)
    }
    const entry = { value, started }
    this.loading.set(key, entry)
    return entry.value.then((loaded) => {
      this.keep(key, loaded, started)
      return loaded
    }).finally(() => {
      if (this.loading.get(key) === entry) this.loading.delete(key)
    })
  }

  /** Forgets `key` only if it still holds `value` (an entry replaced meanwhile stays). Not a drop. */
  discard (key: string, value: V): void {
    if (this.lru?.peek(key) === value) this.lru.delete(key)
  }

  /** Drops the entry of `key`. */
  delete (key: string): void {
    this.drops++
    this.lru?.delete(key)
  }

  /** Drops every entry tagged `tag` (see the `tags` option). */
  deleteTagged (tag: string): void {
    this.drops++
    const keys = this.keysByTag.get(tag)
    if (keys === undefined || !this.lru) return
    for (const key of typeof keys === 'string' ? [keys] : [...keys]) this.lru.delete(key)
  }

  /** Drops every entry. */
  clear (): void {
    this.drops++
    this.lru?.clear()
    this.keysByTag.clear()
    this.tagsByKey.clear()
  }
}
