// The expiring cache under the tenant, session-state and API-key caches (src/cache.ts, on lru-cache):
// bounded, least recently used dropped first, a TTL counted from the load's start, and a load that
// overlapped an invalidation is not kept. The caches' behaviour through the API (revocation,
// suspension, other instances) is tested in auth-sessions, tenant-host, api-keys and instances.
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { ExpiringCache } from '../src/cache.ts'

interface Value { tenantId: string; n: number }

/** A cache and a loader that counts its loads per key. */
function counted (max: number, ttlMs: number) {
  const cache = new ExpiringCache<Value>({ max, ttlMs, tags: (value) => [`tenant:${value.tenantId}`] })
  const loads: Record<string, number> = {}
  const read = (key: string, tenantId = 't1') => cache.getOrLoad(key, async () => ({ tenantId, n: (loads[key] = (loads[key] ?? 0) + 1) }))
  return { cache, loads, read }
}

t.test('dropping by tag follows entries as they are evicted, replaced and retagged', async (t) => {
  const { cache, loads, read } = counted(2, 60_000)
  await read('a', 't1')
  await read('b', 't1')
  await read('c', 't2') // over the bound: a goes
  await read('a', 't2') // a again, now another tenant's; b goes
  cache.deleteTagged('tenant:t1')
  await read('a')
  await read('c')
  t.same(loads, { a: 2, b: 1, c: 1 }, 'evicted entries left the index: the key now holding another tenant\'s value is kept')
  cache.deleteTagged('tenant:t2')
  await read('a', 't1')
  await read('c', 't1')
  t.same(loads, { a: 3, b: 1, c: 2 }, 'and is dropped by its own tag')
  // What leaves the cache leaves the index, or it would grow with every key ever cached (a leak the
  // API shows only as memory: its size is read here).
  for (let i = 0; i < 1_000; i++) await read(`k${i}`, `t${i}`)
  const index = cache as unknown as { keysByTag: Map<string, unknown>, tagsByKey: Map<string, unknown> }
  t.ok(index.tagsByKey.size <= 2 && index.keysByTag.size <= 2, `after 1,000 keys through a cache of 2, the index holds ${index.tagsByKey.size} keys and ${index.keysByTag.size} tags`)

  // Replaced under the same key, and retagged after its tags changed (a lookup that resolved).
  const replaced = cache.loadStarts()
  cache.keep('a', { tenantId: 't5', n: 0 }, replaced)
  cache.deleteTagged('tenant:t1')
  t.equal(cache.get('a')?.tenantId, 't5', 'a replaced entry is no longer under the old value\'s tag')
  const value: Value = { tenantId: 'pending', n: 0 }
  cache.keep('d', value, cache.loadStarts())
  value.tenantId = 't4'
  cache.retag('d', value)
  cache.deleteTagged('tenant:pending')
  t.equal(cache.get('d'), value, 'a retagged entry is no longer under its old tag')
  cache.deleteTagged('tenant:t4')
  t.equal(cache.get('d'), undefined, 'and is dropped by its new one')
})

t.test('holds at most max entries, dropping the least recently used', async (t) => {
  const { loads, read } = counted(3, 60_000)
  for (const key of ['a', 'b', 'c']) await read(key)
  await read('a') // a is now more recent than b
  await read('d') // over the bound: b goes
  await read('a')
  await read('c')
  await read('b')
  t.same(loads, { a: 1, b: 2, c: 1, d: 1 }, 'only the least recently used (b) was loaded again')
})

t.test('an entry is served until invalidated, by key or by what it holds', async (t) => {
  const { cache, loads, read } = counted(100, 60_000)
  await read('x', 't1')
  await read('y', 't1')
  await read('z', 't2')
  t.equal((await read('x')).n, 1, 'a hit does not load')
  cache.deleteTagged('tenant:t1')
  await read('x')
  await read('y')
  await read('z')
  t.same(loads, { x: 2, y: 2, z: 1 }, "the tenant's entries were dropped, the other tenant's kept")
  cache.delete('z')
  cache.clear()
  await read('x')
  await read('z')
  t.same(loads, { x: 3, y: 2, z: 2 })
})

t.test('a load that overlapped an invalidation answers its caller but is not kept', async (t) => {
  const cache = new ExpiringCache<Value>({ max: 100, ttlMs: 60_000 })
  let release: (value: Value) => void = () => {}
  const pending = cache.getOrLoad('k', () => new Promise<Value>((resolve) => { release = resolve }))
  cache.delete('another key') // any drop: the row being read may be the one that changed
  release({ tenantId: 't1', n: 1 })
  t.same(await pending, { tenantId: 't1', n: 1 })
  t.equal(cache.get('k'), undefined, 'possibly stale: read again next time')
  const fresh = await cache.getOrLoad('k', async () => ({ tenantId: 't1', n: 2 }))
  t.equal(fresh.n, 2)
  t.equal(cache.get('k'), fresh, 'a load with no drop meanwhile is kept')
})

t.test('the TTL counts from the start of the load; 0 keeps nothing', async (t) => {
  const cache = new ExpiringCache<Value>({ max: 100, ttlMs: 20 })
  // A load slower than the TTL is already expired when it ends: the bound on staleness stays the TTL.
  await cache.getOrLoad('slow', async () => { await sleep(60); return { tenantId: 't1', n: 1 } })
  t.equal(cache.get('slow'), undefined)
  await cache.getOrLoad('quick', async () => ({ tenantId: 't1', n: 1 }))
  await sleep(60)
  t.equal(cache.get('quick'), undefined, 'expired after the TTL')

  const { loads, read } = counted(100, 0)
  await read('k')
  await read('k')
  t.same(loads, { k: 2 }, 'TTL 0: every read loads')
})

/** A cache and a loader whose loads end only when released (numbered in the order they began). */
function held (ttlMs: number) {
  const cache = new ExpiringCache<Value>({ max: 100, ttlMs })
  const releases: Array<() => void> = []
  const load = () => new Promise<Value>((resolve) => { const n = releases.length + 1; releases.push(() => resolve({ tenantId: 't1', n })) })
  return { cache, load, loads: () => releases.length, releaseAll: () => { for (const release of releases) release() } }
}

t.test('misses of one key at the same time share one load, unless a drop came after it began', async (t) => {
  const { cache, load, loads, releaseAll } = held(60_000)
  const first = cache.getOrLoad('k', load)
  const second = cache.getOrLoad('k', load)
  await sleep(1)
  t.equal(loads(), 1, 'the second miss joined the load under way')
  cache.delete('k') // e.g. the session was revoked while the first load read it
  const third = cache.getOrLoad('k', load)
  await sleep(1)
  t.equal(loads(), 2, 'a miss after the drop does not take the value read before it')
  releaseAll()
  t.same([(await first).n, (await second).n, (await third).n], [1, 1, 2])
  t.equal(cache.get('k')?.n, 2, 'only the load that began after the drop is kept')
})

t.test('a miss does not join a load that began longer than the TTL ago (a stalled query)', async (t) => {
  const { cache, load, loads, releaseAll } = held(100)
  const stalled = cache.getOrLoad('k', load)
  await sleep(150) // the first load's snapshot is now older than the TTL
  const later = cache.getOrLoad('k', load)
  await sleep(1)
  t.equal(loads(), 2, 'the later miss reads again instead of waiting for a value older than a hit could be')
  releaseAll()
  t.same([(await stalled).n, (await later).n], [1, 2])
})

t.test('a hit near the end of the TTL reloads in the background; an entry not read expires at its TTL', async (t) => {
  // Windows of several hundred ms each way: a timer on a loaded 2-core machine can fire 100 ms late.
  const { cache, loads, read } = counted(100, 2000)
  await read('k')
  await sleep(800)
  await read('k')
  t.same(loads, { k: 1 }, 'early in the TTL: a plain hit')
  await sleep(850) // now in the last quarter of the TTL (1,500–2,000 ms)
  t.equal((await read('k')).n, 1, 'the hit answers at once with the value it has')
  await sleep(20)
  t.same(loads, { k: 2 }, 'and a reload ran in the background')
  t.equal(cache.get('k')?.n, 2, 'its value replaced the old one before the old one expired')
  await sleep(2200)
  t.equal(cache.get('k'), undefined, 'an entry not read again still expires at its TTL')

  const failing = new ExpiringCache<Value>({ max: 100, ttlMs: 2000 })
  await failing.getOrLoad('k', async () => ({ tenantId: 't1', n: 1 }))
  await sleep(1550)
  t.equal((await failing.getOrLoad('k', async () => { throw new Error('database down') })).n, 1, 'a failed background reload is not the caller\'s failure')
  await sleep(550)
  await t.rejects(failing.getOrLoad('k', async () => { throw new Error('database down') }), /database down/, 'once expired, the load\'s error is the caller\'s')
  t.equal((await failing.getOrLoad('k', async () => ({ tenantId: 't1', n: 3 }))).n, 3, 'and the next load, once the database is back, is not stuck behind the failed ones')
})

t.test('kept longer only while covered: an entry past the TTL is served up to keepMs while coveredBy holds, else loaded again', async (t) => {
  let covered = true
  const cache = new ExpiringCache<Value>({ max: 100, ttlMs: 200, keepMs: 60_000, keepsLong: (value) => value.tenantId !== 'negative' })
  cache.coveredBy = () => covered
  let n = 0
  const load = async () => ({ tenantId: 't1', n: ++n })
  await cache.getOrLoad('k', load)
  await sleep(300)
  t.equal((await cache.getOrLoad('k', load)).n, 1, 'past the TTL, covered: the entry')
  t.equal(cache.get('k')?.n, 1, 'get() too')
  covered = false
  t.equal(cache.get('k'), undefined, 'not covered: get() no longer serves it')
  t.equal((await cache.getOrLoad('k', load)).n, 2, 'and getOrLoad() loads again, as if it had expired')
  covered = true
  await cache.getOrLoad('neg', async () => ({ tenantId: 'negative', n: 0 }))
  await sleep(300)
  t.equal(cache.get('neg'), undefined, 'an entry keepsLong refuses keeps the TTL even when covered')

  const { cache: stalledCache, load: heldLoad, loads, releaseAll } = held(100)
  const stalled = stalledCache.getOrLoad('k', heldLoad)
  await sleep(150)
  const past = stalledCache.getOrLoad('k', heldLoad)
  await sleep(1)
  t.equal(loads(), 2, 'not covered (no feed): a miss does not join a load that began longer than the TTL ago')
  releaseAll()
  t.same([(await stalled).n, (await past).n], [1, 2])
})
