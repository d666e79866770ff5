// The audit log's guarantees in the database and through its routes: append-only for the API's role
// (grants) and for everyone (trigger), the hash chain and its verification (tampering, removal,
// concurrent writers), reading with filters and keyset pagination, tenant isolation, retention.
import t from 'tap'
import pg from 'pg'
import { ACTOR_TYPES } from '../src/audit/actions.ts'
import { pruneAuditEvents, VERIFY_RANGE } from '../src/audit/audit-store.ts'
import { loadConfig } from '../src/config.ts'
import { APP_ROLE } from '../src/db/database.ts'
import { arrangeTenant, assertError, buildApi, type ApiFixture } from './api-helper.ts'
import { adminQuery, build, productionDatabaseEnv } from './helper.ts'

// Several apps and databases per file: more than the suite's default 120 s on a busy shared machine.
t.setTimeout(400_000)

const createProjects = (f: ApiFixture, count: number, prefix = 'p') =>
  Promise.all(Array.from({ length: count }, (_, i) => f.acme.call('member', { method: 'POST', url: '/v1/projects', payload: { name: `${prefix}${i}` } })))
/** `before` projects, then a moment (`middle`, returned), then `after` projects: retention's old and new events. */
async function oldThenNew (f: ApiFixture, before: number, after: number, beforeOthers: () => Promise<unknown> = async () => {}): Promise<Date> {
  await createProjects(f, before, 'old')
  await beforeOthers()
  await new Promise((resolve) => setTimeout(resolve, 20))
  const middle = new Date()
  await new Promise((resolve) => setTimeout(resolve, 20))
  await createProjects(f, after, 'new')
  return middle
}
const verify = async (f: ApiFixture) => (await f.acme.call('owner', { url: '/v1/audit-events/verify' })).json()
const acmeEvents = async (f: ApiFixture) =>
  (await adminQuery(f.ownerUrl, 'SELECT id, seq::int AS n, action FROM audit_events WHERE tenant_id = $1 ORDER BY seq', [f.acme.id])).rows
/** Changes rows behind every guard, as the database's owner with the append-only trigger off (what an attacker with the owner's password could do). */
const tamper = (f: ApiFixture, sql: string) =>
  adminQuery(f.ownerUrl, `BEGIN; ALTER TABLE audit_events DISABLE TRIGGER app_append_only; ${sql}; ALTER TABLE audit_events ENABLE TRIGGER app_append_only; COMMIT`)

t.test('the API role can insert and read events, never update or delete them; the trigger refuses even the owner', async (t) => {
  const f = await buildApi(t)
  await createProjects(f, 1)
  const before = await acmeEvents(f)
  const event = before.at(-1)
  // Connected exactly as the app is: its own login (saas_api, a member of saas_app), the tenant set
  // for the transaction.
  const client = new pg.Client({ connectionString: (await productionDatabaseEnv(f.ownerUrl)).APP_DATABASE_URL })
  client.on('error', () => {})
  await client.connect()
  const { rows: [who] } = await client.query('SELECT current_user AS login, pg_has_role(current_user, $1, \'MEMBER\') AS member', [APP_ROLE])
  t.equal(who.member, true, `as the API's login (${who.login}), a member of saas_app`)
  t.not(who.login, new URL(f.ownerUrl).username || 'postgres', 'not the tables\' owner')
  t.teardown(() => client.end())
  const asApi = async (sql: string) => {
    await client.query('BEGIN')
    try {
      await client.query('SELECT set_config(\'app.tenant_id\', $1, true)', [f.acme.id])
      return await client.query(sql, sql.includes('$1') ? [event!.id] : [])
    } finally {
      await client.query('ROLLBACK')
    }
  }
  t.equal((await asApi('SELECT id FROM audit_events WHERE id = $1')).rowCount, 1, 'the API role reads its tenant\'s event')
  await t.rejects(asApi('UPDATE audit_events SET action = \'user.deleted\' WHERE id = $1'), { code: '42501', message: /permission denied for table audit_events/ }, 'UPDATE as the API role: permission denied (no grant, before any trigger)')
  await t.rejects(asApi('DELETE FROM audit_events WHERE id = $1'), { code: '42501', message: /permission denied for table audit_events/ }, 'DELETE as the API role: permission denied (no grant, before any trigger)')
  await t.rejects(asApi('TRUNCATE audit_events'), { code: '42501', message: /permission denied for table audit_events/ }, 'TRUNCATE as the API role: permission denied')
  await t.rejects(asApi('UPDATE tenants SET audit_seq = 0, audit_head_hash = \'x\' WHERE id = $1'), { code: '42501' }, 'the chain head cannot be rewritten by the API role')
  await t.rejects(asApi('SELECT audit_events_link()'), /permission denied|trigger functions can only be called as triggers/, 'the link function is not callable')
  await t.rejects(asApi(`SELECT audit_prune_batch('${f.acme.id}', 'infinity', 1000000)`), { code: '42501', message: /permission denied for function audit_prune_batch/ }, 'retention is not the API role\'s: it cannot prune the log')
  await t.rejects(asApi('SELECT audit_prune_candidates(\'infinity\')'), { code: '42501', message: /permission denied for function audit_prune_candidates/ })
  // Second guard: the trigger refuses even the owner, who has every privilege.
  await t.rejects(adminQuery(f.ownerUrl, 'UPDATE audit_events SET action = \'user.deleted\' WHERE id = $1', [event!.id]), /append-only/)
  await t.rejects(adminQuery(f.ownerUrl, 'DELETE FROM audit_events WHERE id = $1', [event!.id]), /append-only/)
  t.same(await acmeEvents(f), before, 'the events are unchanged')
  // No route changes or deletes an event.
  for (const method of ['PATCH', 'PUT', 'DELETE'] as const) {
    assertError(t, await f.acme.call('owner', { method, url: `/v1/audit-events/${event!.id}`, payload: method === 'DELETE' ? undefined : {} }), 404, 'NOT_FOUND')
  }
})

t.test('actor types: the database admits exactly the list of src/audit/actions.ts', async (t) => {
  const f = await buildApi(t)
  for (const type of [...ACTOR_TYPES, 'robot']) {
    const attempt = adminQuery(f.ownerUrl, 'INSERT INTO audit_events (tenant_id, action, actor_type) VALUES ($1, \'project.created\', $2)', [f.acme.id, type])
    if (type === 'robot') await t.rejects(attempt, { code: '23514' }, 'an unknown actor type is refused')
    else await t.resolves(attempt, type)
  }
})

t.test('the event hash is inlined by the planner, so a write does not plan it again (migration 20261206000000)', async (t) => {
  const f = await buildApi(t)
  await createProjects(f, 2)
  // A SQL function labelled more strictly than its body (IMMUTABLE over STABLE calls) is never
  // inlined: the trigger then runs it through the SQL-function executor in every transaction.
  const { rows } = await adminQuery(f.ownerUrl, 'EXPLAIN (VERBOSE) SELECT audit_event_hash(e) FROM audit_events e')
  const plan = rows.map((row) => row['QUERY PLAN']).join('\n')
  t.notMatch(plan, /audit_event_hash\(/, 'the plan computes the hash in place, with no call of audit_event_hash')
  t.match(plan, /sha256\(/, 'the inlined formula')
  t.same(await verify(f), { ok: true, checked: (await acmeEvents(f)).length, firstBadId: null }, 'hashes written by the trigger verify')
})

t.test('verify: an intact chain is ok; a changed, removed or truncated event is reported', async (t) => {
  const f = await buildApi(t)
  await createProjects(f, 5)
  const events = await acmeEvents(f)
  t.same(await verify(f), { ok: true, checked: events.length, firstBadId: null }, 'intact')
  t.same(events.map((e) => e.n), events.map((_, i) => i + 1), 'seq 1, 2, 3… with no gap')

  const victim = events[3]!
  await tamper(f, `UPDATE audit_events SET data = '{"name":"forged"}' WHERE id = '${victim.id}'`)
  t.same(await verify(f), { ok: false, checked: events.length, firstBadId: victim.id }, 'a changed event is the first bad one')
  // Even with its hash recomputed, the change shows: the next event no longer links to it.
  await tamper(f, `UPDATE audit_events e SET hash = audit_event_hash(e) WHERE id = '${victim.id}'`)
  t.same(await verify(f), { ok: false, checked: events.length, firstBadId: events[4]!.id }, 'a rehashed event breaks the next link')
  t.same(assertError(t, await f.acme.call('admin', { url: '/v1/audit-events/verify' }), 403, 'FORBIDDEN').error.code, 'FORBIDDEN', 'owners only')

  const g = await buildApi(t)
  await createProjects(g, 4)
  const ge = await acmeEvents(g)
  await tamper(g, `DELETE FROM audit_events WHERE id = '${ge[2]!.id}'`)
  t.same(await verify(g), { ok: false, checked: ge.length - 1, firstBadId: ge[3]!.id }, 'a removed event: the one after it is reported')

  const h = await buildApi(t)
  await createProjects(h, 3)
  const he = await acmeEvents(h)
  await tamper(h, `DELETE FROM audit_events WHERE id = '${he.at(-1)!.id}'`)
  t.same(await verify(h), { ok: false, checked: he.length - 1, firstBadId: null }, 'a removed last event: the chain no longer reaches its head')

  // The newest events rewritten, each hash recomputed in chain order: every link holds, and only the
  // head recorded on the tenant (which the API role cannot write) tells.
  const k = await buildApi(t)
  await createProjects(k, 4)
  const ke = await acmeEvents(k)
  await tamper(k, `UPDATE audit_events SET data = '{"name":"forged"}' WHERE id = '${ke.at(-1)!.id}'; UPDATE audit_events e SET hash = audit_event_hash(e) WHERE id = '${ke.at(-1)!.id}'`)
  t.same(await verify(k), { ok: false, checked: ke.length, firstBadId: ke.at(-1)!.id }, 'the newest event changed and rehashed: reported')
  for (const e of ke.slice(-2)) {
    await tamper(k, `UPDATE audit_events SET data = '{"name":"forged"}', prev_hash = (SELECT p.hash FROM audit_events p WHERE p.tenant_id = '${k.acme.id}' AND p.seq = ${e.n - 1}) WHERE id = '${e.id}'; UPDATE audit_events x SET hash = audit_event_hash(x) WHERE id = '${e.id}'`)
  }
  t.same(await verify(k), { ok: false, checked: ke.length, firstBadId: ke.at(-1)!.id }, 'the two newest rewritten as a consistent chain: still reported')
})

// A large log is walked by ranges of VERIFY_RANGE events, one statement each (review: one statement
// over the whole chain outran the statement timeout near 140,000 events, and verify was a 503 for
// ever). The chain must check out across the ranges' boundaries, and a fault at a boundary must show.
t.test('verify walks a log larger than one range, and finds faults at and across range boundaries', async (t) => {
  const f = await buildApi(t)
  const extra = VERIFY_RANGE * 2 + 500
  await adminQuery(f.ownerUrl, `BEGIN; SELECT set_config('app.tenant_id', '${f.acme.id}', true);
    INSERT INTO audit_events (tenant_id, action, actor_type, data) SELECT '${f.acme.id}', 'project.created', 'system', jsonb_build_object('n', i) FROM generate_series(1, ${extra}) i; COMMIT`)
  const total = (await acmeEvents(f)).length
  t.ok(total > extra, `${total} events`)
  t.same(await verify(f), { ok: true, checked: total, firstBadId: null }, 'intact across ranges')
  const at = async (seq: number) => (await adminQuery<{ id: string }>(f.ownerUrl, 'SELECT id FROM audit_events WHERE tenant_id = $1 AND seq = $2', [f.acme.id, seq])).rows[0]!.id
  // The first event of the second range (seq VERIFY_RANGE + 1) changed and rehashed: its link holds,
  // the next one's breaks, across the boundary the other way round.
  const boundary = await at(VERIFY_RANGE)
  await tamper(f, `UPDATE audit_events SET data = '{"n":"forged"}' WHERE id = '${boundary}'; UPDATE audit_events e SET hash = audit_event_hash(e) WHERE id = '${boundary}'`)
  t.same(await verify(f), { ok: false, checked: total, firstBadId: await at(VERIFY_RANGE + 1) }, 'the last event of a range rehashed: the first of the next range is reported')
  const g = await buildApi(t)
  await adminQuery(g.ownerUrl, `BEGIN; SELECT set_config('app.tenant_id', '${g.acme.id}', true);
    INSERT INTO audit_events (tenant_id, action, actor_type) SELECT '${g.acme.id}', 'project.created', 'system' FROM generate_series(1, ${VERIFY_RANGE + 10}) i; COMMIT`)
  const gTotal = (await acmeEvents(g)).length
  const removed = (await adminQuery<{ id: string }>(g.ownerUrl, 'SELECT id FROM audit_events WHERE tenant_id = $1 AND seq = $2', [g.acme.id, VERIFY_RANGE + 1])).rows[0]!.id
  const after = (await adminQuery<{ id: string }>(g.ownerUrl, 'SELECT id FROM audit_events WHERE tenant_id = $1 AND seq = $2', [g.acme.id, VERIFY_RANGE + 2])).rows[0]!.id
  await tamper(g, `DELETE FROM audit_events WHERE id = '${removed}'`)
  t.same(await verify(g), { ok: false, checked: gTotal - 1, firstBadId: after }, 'the first event of a range removed: the one after it is reported')

  // An event written behind the link trigger, beyond the head: served by the list and the export,
  // so verify must not call the chain intact.
  const h = await buildApi(t)
  await createProjects(h, 2)
  const stray = (await adminQuery<{ id: string }>(h.ownerUrl, `BEGIN; ALTER TABLE audit_events DISABLE TRIGGER USER;
    INSERT INTO audit_events (tenant_id, seq, action, actor_type) VALUES ('${h.acme.id}', 1000000000, 'project.created', 'system') RETURNING id;
    ALTER TABLE audit_events ENABLE TRIGGER USER; COMMIT`)) as unknown as Array<{ rows: Array<{ id: string }> }>
  const strayId = stray.find((r) => r.rows?.length)!.rows[0]!.id
  t.same(await verify(h), { ok: false, checked: (await acmeEvents(h)).length - 1, firstBadId: strayId }, 'an event beyond the head is reported, quickly')
})

// A walk holds one pooled connection until it ends (one transaction, up to minutes on a large log):
// an owner sending many at once must not take every connection of the instance.
t.test('verify: one walk per tenant and AUDIT_VERIFY_CONCURRENCY per instance; more are 429 at once, not queued on the pool', async (t) => {
  const f = await buildApi(t, { AUDIT_VERIFY_CONCURRENCY: '2' })
  await createProjects(f, 1)
  const initech = await arrangeTenant(f, 'initech') // signed in before the lock below (a sign-in writes an event)
  const waitingOnLocks = async () => (await adminQuery<{ n: number }>(f.ownerUrl, "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")).rows[0]!.n
  // The table's lock makes every walk wait in the database, as a long one would.
  const locker = new pg.Client({ connectionString: f.ownerUrl })
  await locker.connect()
  t.teardown(() => locker.end())
  await locker.query('BEGIN; LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE')
  const acmeWalk = f.acme.call('owner', { url: '/v1/audit-events/verify' })
  for (let i = 0; i < 200 && await waitingOnLocks() < 1; i++) await new Promise((resolve) => setTimeout(resolve, 25))
  const again = await f.acme.call('owner', { url: '/v1/audit-events/verify' })
  assertError(t, again, 429, 'RATE_LIMITED')
  t.equal(again.headers['retry-after'], '5', 'Retry-After')
  const globexWalk = f.globex.call('owner', { url: '/v1/audit-events/verify' })
  for (let i = 0; i < 200 && await waitingOnLocks() < 2; i++) await new Promise((resolve) => setTimeout(resolve, 25))
  t.equal(await waitingOnLocks(), 2, 'another tenant walks meanwhile')
  assertError(t, await initech.call('owner', { url: '/v1/audit-events/verify' }), 429, 'RATE_LIMITED')
  t.pass('a third tenant\'s walk is refused while two run on this instance')
  await locker.query('COMMIT')
  t.same([(await acmeWalk).json(), (await globexWalk).json()].map((v) => v.ok), [true, true], 'both walks end ok')
  t.equal((await f.acme.call('owner', { url: '/v1/audit-events/verify' })).statusCode, 200, 'and the slot is free again')
})

t.test('50 concurrent creates leave one unbroken chain', async (t) => {
  const f = await buildApi(t)
  const answers = await createProjects(f, 50, 'concurrent')
  t.ok(answers.every((r) => r.statusCode === 201), 'all created')
  const events = await acmeEvents(f)
  t.equal(events.filter((e) => e.action === 'project.created').length, 50, 'one event each')
  t.same(events.map((e) => e.n), events.map((_, i) => i + 1), 'no duplicate or missing seq')
  t.same(await verify(f), { ok: true, checked: events.length, firstBadId: null })
  t.same((await verify(f)), { ok: true, checked: events.length, firstBadId: null }, 'other tenants\' chains are separate')
  const globex = (await f.globex.call('owner', { url: '/v1/audit-events/verify' })).json()
  t.same(globex.ok, true)
})

t.test('list: newest first, filters, keyset pagination, roles, another tenant\'s events invisible', async (t) => {
  const f = await buildApi(t)
  const list = async (query: string, as: 'owner' | 'admin' | 'member' = 'admin') => f.acme.call(as, { url: `/v1/audit-events${query}` })
  const project = (await f.acme.call('member', { method: 'POST', url: '/v1/projects', payload: { name: 'Listed', description: 'x' } })).json()
  await f.acme.call('owner', { method: 'PATCH', url: `/v1/projects/${project.id}`, payload: { description: null } })
  await f.acme.call('owner', { method: 'DELETE', url: `/v1/projects/${project.id}` })
  await f.globex.call('owner', { method: 'POST', url: '/v1/projects', payload: { name: 'Globex secret project' } })

  const all = (await list('?limit=100')).json()
  t.same(all.data.slice(0, 3).map((e: any) => e.action), ['project.deleted', 'project.updated', 'project.created'], 'newest first')
  t.match(all.data[2], { action: 'project.created', actor: { type: 'user', id: f.acme.users.member.user.id }, target: { type: 'project', id: project.id }, data: { name: 'Listed', description: 'x' }, ip: '127.0.0.1' })
  t.same(all.data[1].data, { description: null }, 'data: the changed fields and their new values')
  t.notOk(JSON.stringify(all).includes('Globex'), 'no event of another tenant')
  t.ok(all.data.every((e: any) => !('hash' in e) && !('seq' in e)), 'the contract\'s fields only')

  t.same((await list('?action=project.updated')).json().data.map((e: any) => e.action), ['project.updated'], 'action filter')
  t.same((await list(`?targetId=${project.id}`)).json().data.length, 3, 'targetId filter')
  t.same((await list(`?actorId=${f.acme.users.member.user.id}&action=project.created`)).json().data.length, 1, 'actorId filter')
  const created = all.data[2].at
  t.same((await list(`?since=${encodeURIComponent(all.data[1].at)}&limit=100`)).json().data.map((e: any) => e.action).slice(0, 2), ['project.deleted', 'project.updated'], 'since')
  t.ok((await list(`?until=${encodeURIComponent(created)}&limit=100`)).json().data.every((e: any) => e.at < created), 'until (exclusive)')
  assertError(t, await list('?action=project.exploded'), 400, 'VALIDATION_FAILED')
  assertError(t, await list('?actorId=nope'), 400, 'VALIDATION_FAILED')
  assertError(t, await list('?since=yesterday'), 400, 'VALIDATION_FAILED')
  assertError(t, await list('?until=' + encodeURIComponent('10000-01-01T00:00:00Z')), 400, 'VALIDATION_FAILED')
  assertError(t, await list('?since=' + encodeURIComponent('2016-12-31T23:59:60Z')), 400, 'VALIDATION_FAILED')
  assertError(t, await list('?cursor=!!!'), 400, 'BAD_REQUEST')
  assertError(t, await list(`?cursor=${'a'.repeat(300)}`), 400, 'BAD_REQUEST') // over-long: like every list's cursor
  assertError(t, await list('?unknown=1'), 400, 'VALIDATION_FAILED')
  assertError(t, await list('', 'member'), 403, 'FORBIDDEN')
  assertError(t, await f.acme.call(null, { url: '/v1/audit-events' }), 401, 'UNAUTHORIZED')

  // Walking nextCursor yields every event exactly once (with events being added meanwhile).
  const seen: string[] = []
  let cursor: string | null = ''
  for (let pages = 0; cursor !== null && pages < 100; pages++) {
    const page: { data: { id: string }[]; nextCursor: string | null } = (await list(`?limit=2${cursor ? `&cursor=${cursor}` : ''}`)).json()
    seen.push(...page.data.map((e) => e.id))
    cursor = page.nextCursor
    if (pages === 1) await f.acme.call('owner', { method: 'POST', url: '/v1/projects', payload: { name: 'during the walk' } })
  }
  t.equal(new Set(seen).size, seen.length, 'no event twice')
  t.same([...seen].sort(), all.data.map((e: any) => e.id).sort(), 'every event of the walk\'s start, once')

  // The other tenant's owner sees only their own log, on every route.
  const globexList = (await f.globex.call('owner', { url: '/v1/audit-events?limit=100' })).json()
  t.notOk(globexList.data.some((e: any) => e.target?.id === project.id), 'acme\'s events are invisible to globex')
  const globexExport = (await f.globex.call('owner', { url: '/v1/audit-events/export' })).body
  t.notOk(globexExport.includes(project.id), 'and absent from its export')
  // A token of acme on globex's host is refused before any event is read.
  assertError(t, await f.app.inject({ url: '/v1/audit-events', headers: { host: f.globex.host, authorization: `Bearer ${f.acme.users.owner.accessToken}` } }), 401, 'UNAUTHORIZED')
})

t.test('export: NDJSON, oldest first, with the chain fields; owners only', async (t) => {
  const f = await buildApi(t)
  await createProjects(f, 3)
  const res = await f.acme.call('owner', { url: '/v1/audit-events/export' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^application\/x-ndjson/)
  const lines = res.body.trim().split('\n').map((l) => JSON.parse(l))
  const events = await acmeEvents(f)
  t.same(lines.map((l) => l.id), events.map((e) => e.id), 'every event, oldest first')
  t.ok(lines.every((l, i) => i === 0 || l.prevHash === lines[i - 1].hash), 'each line links to the previous one')
  assertError(t, await f.acme.call('admin', { url: '/v1/audit-events/export' }), 403, 'FORBIDDEN')
})

t.test('deleting a user or a project keeps its events; deleting the tenant removes its log', async (t) => {
  const f = await buildApi(t)
  const project = (await f.acme.call('owner', { method: 'POST', url: '/v1/projects', payload: { name: 'short-lived' } })).json()
  await f.acme.call('owner', { method: 'DELETE', url: `/v1/projects/${project.id}` })
  await f.acme.call('owner', { method: 'DELETE', url: `/v1/users/${f.acme.users.member.user.id}` })
  const about = async (id: string) => (await adminQuery(f.ownerUrl, 'SELECT action FROM audit_events WHERE target_id = $1 OR actor_id = $1 ORDER BY seq', [id])).rows.map((r) => r.action)
  t.same(await about(project.id), ['project.created', 'project.deleted'], 'the deleted project\'s events stay')
  t.same(await about(f.acme.users.member.user.id), ['auth.login', 'user.deleted'], 'the deleted user\'s events stay')
  t.same(await verify(f), { ok: true, checked: (await acmeEvents(f)).length, firstBadId: null })
  await adminQuery(f.ownerUrl, 'DELETE FROM tenants WHERE id = $1', [f.globex.id])
  t.equal((await adminQuery(f.ownerUrl, 'SELECT count(*)::int AS n FROM audit_events WHERE tenant_id = $1', [f.globex.id])).rows[0]!.n, 0, 'a deleted tenant\'s log goes with it')
})

// Review 90: retention deleted the oldest events and stored the last one's hash as the pruned head
// without checking them; a change or a removal shortly before the cutoff then verified as ok.
t.test('retention keeps a broken chain, with its evidence, and says so; other tenants are pruned', async (t) => {
  const f = await buildApi(t)
  const middle = await oldThenNew(f, 4, 2, () => f.globex.call('owner', { method: 'POST', url: '/v1/projects', payload: { name: 'old' } }))
  const events = await acmeEvents(f)
  const old = events.filter((e) => e.n <= 4)
  await tamper(f, `UPDATE audit_events SET data = '{"name":"forged"}' WHERE id = '${old[3]!.id}'`)
  const broken = await verify(f)
  t.same(broken, { ok: false, checked: events.length, firstBadId: old[3]!.id }, 'verify reports the change')
  const globexOld = (await adminQuery(f.ownerUrl, 'SELECT count(*)::int AS n FROM audit_events WHERE tenant_id = $1 AND at < $2', [f.globex.id, middle])).rows[0]!.n
  const kept: string[] = []
  const removed = await pruneAuditEvents(f.ownerUrl, 1, new Date(middle.getTime() + 86_400_000), 5000, 2, (tenantId) => kept.push(tenantId))
  t.same(kept, [f.acme.id], 'the run names the tenant it kept')
  const globexLeft = (await adminQuery(f.ownerUrl, 'SELECT count(*)::int AS n FROM audit_events WHERE tenant_id = $1 AND at < $2', [f.globex.id, middle])).rows[0]!.n
  t.equal(globexLeft, 0, "another tenant's old events are pruned")
  t.equal(removed, 2 + globexOld, "acme's batch before the break and globex's old events, removed")
  t.same((await acmeEvents(f)).map((e) => e.id), events.slice(2).map((e) => e.id), 'the batch before the break (and its successor, checked with it) went; the break and what follows stay')
  t.same(await verify(f), { ok: false, checked: events.length - 2, firstBadId: old[3]!.id }, 'verify still reports it')
  t.equal(await pruneAuditEvents(f.ownerUrl, 1, new Date(middle.getTime() + 86_400_000), 5000, 2, (tenantId) => kept.push(tenantId)), 0, 'the next run removes nothing more')
  t.same(kept, [f.acme.id, f.acme.id], 'and says so again')
  // A removed old event is a break too.
  await tamper(f, `DELETE FROM audit_events WHERE id = '${old[3]!.id}'`)
  t.equal(await pruneAuditEvents(f.ownerUrl, 1, new Date(middle.getTime() + 86_400_000), 5000, 2, (tenantId) => kept.push(tenantId)), 0, 'a gap is kept too')
  t.same((await verify(f)).firstBadId, events[4]!.id, 'verify reports the event after the gap')
})

// Review 91: an event rewritten with its hash recomputed links to the events before it; only its
// successor's link, or the tenant's head when it is the newest, shows the change. Retention checked
// neither, and pruned it away.
t.test('retention keeps a rewritten event whose hash was recomputed: last of a batch, or the newest', async (t) => {
  const f = await buildApi(t)
  const middle = await oldThenNew(f, 3, 1)
  const rewrite = (id: string) => tamper(f, `UPDATE audit_events SET data = '{"name":"forged"}' WHERE id = '${id}'; UPDATE audit_events e SET hash = audit_event_hash(e) WHERE id = '${id}'`)
  const old = (await adminQuery(f.ownerUrl, 'SELECT id FROM audit_events WHERE tenant_id = $1 AND at < $2 ORDER BY seq', [f.acme.id, middle])).rows
  const lastOld = old.at(-1)!.id as string
  await rewrite(lastOld)
  t.equal((await verify(f)).ok, false, 'verify reports it, at its successor')
  const kept: string[] = []
  const later = new Date(middle.getTime() + 86_400_000)
  const acmeBefore = (await acmeEvents(f)).length
  await pruneAuditEvents(f.ownerUrl, 1, later, 5000, 5000, (tenantId) => kept.push(tenantId))
  t.equal((await acmeEvents(f)).length, acmeBefore, 'the batch ending with it is kept')
  t.same(kept, [f.acme.id], 'and the run says so')
  t.equal((await adminQuery(f.ownerUrl, 'SELECT count(*)::int AS n FROM audit_events WHERE id = $1', [lastOld])).rows[0]!.n, 1, 'the rewritten event is still there')

  // The newest event, every event older than the cutoff: only the head tells.
  const g = await buildApi(t)
  await createProjects(g, 2, 'old')
  const newest = (await adminQuery(g.ownerUrl, 'SELECT id FROM audit_events WHERE tenant_id = $1 ORDER BY seq DESC LIMIT 1', [g.acme.id])).rows[0]!.id as string
  await tamper(g, `UPDATE audit_events SET data = '{"name":"forged"}' WHERE id = '${newest}'; UPDATE audit_events e SET hash = audit_event_hash(e) WHERE id = '${newest}'`)
  const before = await verify(g)
  t.same(before.firstBadId, newest, 'verify names the newest event (against the head)')
  const keptToo: string[] = []
  await pruneAuditEvents(g.ownerUrl, 1, new Date(Date.now() + 2 * 86_400_000), 5000, 5000, (tenantId) => keptToo.push(tenantId))
  t.same(keptToo, [g.acme.id], 'kept, and said so')
  t.same(await verify(g), before, 'verify still reports it')
})

// Review 92: an event written behind the triggers at or below the pruned head was deleted by the
// next batch unchecked (verify then answered ok); events beyond the head moved the pruned head past
// it; and a rewrite carried into the next event's link passed, as that event's own hash was not read.
t.test('retention keeps events outside the chain, and a rewrite carried into the next link', async (t) => {
  const f = await buildApi(t)
  const middle = await oldThenNew(f, 4, 2)
  const later = new Date(middle.getTime() + 86_400_000)
  const behindTheTriggers = (sql: string) => tamper(f, `ALTER TABLE audit_events DISABLE TRIGGER audit_events_link; ${sql}; ALTER TABLE audit_events ENABLE TRIGGER audit_events_link`)
  await adminQuery(f.ownerUrl, 'SELECT audit_prune_batch($1, $2, 2)', [f.acme.id, middle])
  t.same((await verify(f)).ok, true, 'one healthy batch pruned: the pruned head is at 2')
  const forged = '00000000-0000-4000-8000-00000000f0f0'
  await behindTheTriggers(`INSERT INTO audit_events (id, tenant_id, seq, action, actor_type, data, prev_hash, hash, at) VALUES ('${forged}', '${f.acme.id}', 1, 'user.deleted', 'system', '{}', 'x', 'y', now() - interval '400 days')`)
  t.equal((await verify(f)).firstBadId, forged, 'verify names the event below the pruned head')
  const kept: string[] = []
  const acmeBefore = (await acmeEvents(f)).length
  await pruneAuditEvents(f.ownerUrl, 1, later, 5000, 5000, (tenantId) => kept.push(tenantId))
  t.same(kept, [f.acme.id], 'the tenant is kept, and the run says so')
  t.equal((await acmeEvents(f)).length, acmeBefore, 'nothing of it removed, the forged event included')
  t.equal((await verify(f)).firstBadId, forged, 'verify still names it')
  await tamper(f, `DELETE FROM audit_events WHERE id = '${forged}'`)

  // Beyond the head: two events chained from it, the tenant's row untouched.
  const head = (await adminQuery(f.ownerUrl, 'SELECT audit_seq::int AS seq, audit_head_hash AS hash FROM tenants WHERE id = $1', [f.acme.id])).rows[0]!
  await behindTheTriggers(`INSERT INTO audit_events (id, tenant_id, seq, action, actor_type, data, prev_hash, at) VALUES ('00000000-0000-4000-8000-0000000000a1', '${f.acme.id}', ${head.seq + 1}, 'user.deleted', 'system', '{}', '${head.hash}', now() - interval '400 days');
    UPDATE audit_events e SET hash = audit_event_hash(e) WHERE id = '00000000-0000-4000-8000-0000000000a1'`)
  await pruneAuditEvents(f.ownerUrl, 1, new Date(Date.now() + 2 * 86_400_000), 5000, 5000, (tenantId) => kept.push(tenantId))
  const ends = (await adminQuery(f.ownerUrl, 'SELECT audit_seq::int AS seq, audit_pruned_seq::int AS pruned FROM tenants WHERE id = $1', [f.acme.id])).rows[0]!
  t.same(ends, { seq: head.seq, pruned: 2 }, 'an event beyond the head: nothing pruned, the pruned head stays below the head')
  t.equal(kept.length, 2, 'and said so')
  await tamper(f, "DELETE FROM audit_events WHERE id = '00000000-0000-4000-8000-0000000000a1'")

  // A rewrite carried into the next event's link (that event's own hash left as it was).
  const events = await acmeEvents(f)
  const [x, next] = [events[0]!, events[1]!]
  await tamper(f, `UPDATE audit_events SET data = '{"name":"forged"}' WHERE id = '${x.id}'; UPDATE audit_events e SET hash = audit_event_hash(e) WHERE id = '${x.id}'; UPDATE audit_events SET prev_hash = (SELECT hash FROM audit_events WHERE id = '${x.id}') WHERE id = '${next.id}'`)
  t.equal((await verify(f)).firstBadId, next.id, 'verify names the next event (its own hash)')
  await adminQuery(f.ownerUrl, 'SELECT audit_prune_batch($1, $2, 1)', [f.acme.id, later])
  t.equal((await acmeEvents(f)).length, events.length, 'a batch of the rewritten event alone is kept: the next event is checked too')
})

t.test('retention prunes old events, keeps the chain verifiable from the pruned head, and runs on a timer', async (t) => {
  const f = await buildApi(t)
  const middle = await oldThenNew(f, 3, 2)
  const before = await acmeEvents(f)
  t.equal(await pruneAuditEvents(f.ownerUrl, 0), 0, 'retention 0 = keep forever')
  // Review 90: 3,000,000 days put the cutoff before year 1, and every run failed.
  t.equal(loadConfig({ NODE_ENV: 'test', AUDIT_RETENTION_DAYS: '36500' }).AUDIT_RETENTION_DAYS, 36_500, 'a century is the longest retention')
  t.throws(() => loadConfig({ NODE_ENV: 'test', AUDIT_RETENTION_DAYS: '3000000' }), { name: 'ConfigError', message: /AUDIT_RETENTION_DAYS/ }, 'beyond it, refused at start')
  // Retention of one day, seen from one day after `middle`: everything before `middle` goes, here
  // in batches of 2 events (one transaction each), and the chain verifies between batches.
  const oldEvents = (await adminQuery<{ n: number }>(f.ownerUrl, 'SELECT count(*)::int AS n FROM audit_events WHERE at < $1', [middle])).rows[0]!.n
  await adminQuery(f.ownerUrl, `SELECT audit_prune_batch('${f.acme.id}', $1, 2)`, [middle])
  t.equal((await acmeEvents(f)).length, before.length - 2, 'one batch removed the 2 oldest events')
  t.same(await verify(f), { ok: true, checked: before.length - 2, firstBadId: null }, 'the chain verifies between batches')
  await t.rejects(adminQuery(f.ownerUrl, 'SELECT audit_prune_batch($1, $2, 0)', [f.acme.id, middle]), /batch must be at least 1/, 'a batch bound below 1 (or none) is refused')
  // Another instance pruning holds the retention lock: this run skips and says so (null).
  const other = new pg.Client({ connectionString: f.ownerUrl })
  await other.connect()
  await other.query('SELECT pg_advisory_lock(872014, 1)')
  t.equal(await pruneAuditEvents(f.ownerUrl, 1, new Date(middle.getTime() + 86_400_000)), null, 'skipped while another run holds the lock')
  await other.end() // its session ends: the lock goes with it
  t.equal((await acmeEvents(f)).length, before.length - 2, 'the skipped run removed nothing')
  const removed = 2 + (await pruneAuditEvents(f.ownerUrl, 1, new Date(middle.getTime() + 86_400_000), 5000, 2) ?? NaN)
  t.equal(removed, oldEvents, 'the batches together removed every event older than the cutoff, of every tenant')
  const after = await acmeEvents(f)
  t.ok(removed >= 3, `${removed} pruned`)
  t.same(after.map((e) => e.action), ['project.created', 'project.created'], 'the newer events stay')
  t.same(await verify(f), { ok: true, checked: 2, firstBadId: null }, 'the rest verifies from the pruned head')
  const { rows } = await adminQuery(f.ownerUrl, 'SELECT audit_pruned_seq::int AS seq FROM tenants WHERE id = $1', [f.acme.id])
  t.equal(rows[0]!.seq, before.length - 2, 'the pruned head is stored')
  await tamper(f, `DELETE FROM audit_events WHERE id = '${after[0]!.id}'`)
  t.same(await verify(f), { ok: false, checked: 1, firstBadId: after[1]!.id }, 'removing the new oldest event is still detected')

  // The server's timer: events older than AUDIT_RETENTION_DAYS disappear without anyone asking.
  const { app, ownerUrl } = await build(t, { env: { AUDIT_RETENTION_DAYS: '1', AUDIT_PRUNE_INTERVAL_S: '1' }, url: f.ownerUrl })
  await adminQuery(ownerUrl, `BEGIN; ALTER TABLE audit_events DISABLE TRIGGER app_append_only; UPDATE audit_events SET at = at - interval '2 days' WHERE tenant_id = '${f.globex.id}'; ALTER TABLE audit_events ENABLE TRIGGER app_append_only; COMMIT`)
  let left = -1
  for (let i = 0; i < 50 && left !== 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 200))
    left = (await adminQuery(ownerUrl, 'SELECT count(*)::int AS n FROM audit_events WHERE tenant_id = $1', [f.globex.id])).rows[0]!.n
  }
  t.equal(left, 0, 'the timer pruned the old events')
  t.ok(app.hasDecorator('pruneAuditLog'))
  t.equal((await f.globex.call('owner', { url: '/v1/audit-events/verify' })).json().ok, true, 'and the emptied chain still verifies')
  await f.globex.call('owner', { method: 'POST', url: '/v1/projects', payload: { name: 'after pruning' } })
  t.same((await f.globex.call('owner', { url: '/v1/audit-events/verify' })).json(), { ok: true, checked: 1, firstBadId: null }, 'and goes on')
})
