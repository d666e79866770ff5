import pg from 'pg'
import t from 'tap'
import { decodeCursor, encodeCursor } from '../src/api/pagination.ts'
import { adminQuery } from './helper.ts'
import { assertError, buildApi, type TenantFixture } from './api-helper.ts'

/** Walks a list with `limit`, calling `during` after each page; returns every id in order. */
async function walk (tenant: TenantFixture, url: string, limit: number, during: (page: number) => Promise<void> = async () => {}) {
  const ids: string[] = []
  let cursor: string | null = null
  for (let pageNo = 0; pageNo < 1000; pageNo++) {
    const sep = url.includes('?') ? '&' : '?'
    const res = await tenant.call('owner', { url: `${url}${sep}limit=${limit}${cursor ? `&cursor=${cursor}` : ''}` })
    if (res.statusCode !== 200) throw new Error(res.body)
    const body = res.json()
    if (body.data.length > limit) throw new Error('page larger than limit')
    ids.push(...body.data.map((row: { id: string }) => row.id))
    cursor = body.nextCursor
    if (!cursor) break
    await during(pageNo)
  }
  return ids
}

/** `n` rows inserted as the owner, many sharing one created_at (the id breaks the ties). */
async function seedProjects (ownerUrl: string, tenantId: string, n: number) {
  const { rows } = await adminQuery<{ id: string }>(ownerUrl, `
    INSERT INTO projects (tenant_id, name, created_at)
    SELECT $1, 'seed ' || i, timestamptz '2026-01-01' + ((i / 4) * interval '1 millisecond') FROM generate_series(1, $2) AS i
    RETURNING id`, [tenantId, n])
  return rows.map((r) => r.id)
}

t.test('walking projects yields every row exactly once, newest first, while rows are inserted', async (t) => {
  const { acme, globex, ownerUrl } = await buildApi(t)
  const seeded = await seedProjects(ownerUrl, acme.id, 53)
  const foreign = new Set(await seedProjects(ownerUrl, globex.id, 20))
  let inserted = 0
  const ids = await walk(acme, '/v1/projects', 7, async () => {
    await acme.call('member', { method: 'POST', url: '/v1/projects', payload: { name: `during ${inserted++}` } })
    await seedProjects(ownerUrl, acme.id, 2) // also rows with old timestamps, behind the API's back
  })
  t.ok(inserted >= 7)
  t.equal(new Set(ids).size, ids.length, 'no row twice')
  for (const id of seeded) t.ok(ids.includes(id), `seeded ${id} seen`)
  t.notOk(ids.some((id) => foreign.has(id)), "never another tenant's rows")
  const order = await adminQuery<{ id: string }>(ownerUrl, 'SELECT id FROM projects WHERE id = ANY($1) ORDER BY created_at DESC, id DESC', [ids])
  t.same(ids, order.rows.map((r) => r.id), 'ordered by (createdAt, id) descending')
  t.same(await walk(acme, '/v1/projects', 100), await walk(acme, '/v1/projects', 3), 'the same rows whatever the page size')
})

t.test('tasks and users paginate the same way', async (t) => {
  const { acme, ownerUrl } = await buildApi(t)
  const project = (await acme.call('owner', { method: 'POST', url: '/v1/projects', payload: { name: 'P' } })).json()
  const other = (await acme.call('owner', { method: 'POST', url: '/v1/projects', payload: { name: 'Q' } })).json()
  await adminQuery(ownerUrl, 'INSERT INTO tasks (tenant_id, project_id, title, created_at) SELECT $1, $2, \'t\' || i, timestamptz \'2026-01-01\' + (i / 3) * interval \'1 ms\' FROM generate_series(1, 25) i', [acme.id, project.id])
  await adminQuery(ownerUrl, 'INSERT INTO tasks (tenant_id, project_id, title) SELECT $1, $2, \'other\' FROM generate_series(1, 5)', [acme.id, other.id])
  const tasks = await walk(acme, `/v1/projects/${project.id}/tasks`, 4, async () => {
    await acme.call('owner', { method: 'POST', url: `/v1/projects/${project.id}/tasks`, payload: { title: 'during' } })
  })
  t.equal(new Set(tasks).size, tasks.length)
  t.equal(tasks.length, 25, "every task of the project, none of the other project's, none inserted during the walk")
  await adminQuery(ownerUrl, 'INSERT INTO users (tenant_id, email, name, password_hash) SELECT $1, \'u\' || i || \'@acme.example\', \'U\', \'x\' FROM generate_series(1, 12) i', [acme.id])
  const users = await walk(acme, '/v1/users', 5)
  t.equal(users.length, 15)
  t.equal(new Set(users).size, 15)
})

t.test('limit and cursor are checked: 400, never a 500', async (t) => {
  const { acme, globex, ownerUrl } = await buildApi(t)
  await seedProjects(ownerUrl, acme.id, 30)
  t.equal((await acme.call('owner', { url: '/v1/projects' })).json().data.length, 20, 'default limit 20')
  t.equal((await acme.call('owner', { url: '/v1/projects?limit=100' })).json().data.length, 30)
  t.equal((await acme.call('owner', { url: '/v1/projects?limit=1' })).json().data.length, 1)
  for (const q of ['limit=0', 'limit=101', 'limit=-1', 'limit=abc', 'limit=', 'unknown=1']) {
    assertError(t, await acme.call('owner', { url: `/v1/projects?${q}` }), 400, 'VALIDATION_FAILED')
  }
  // A number is read as written, never coerced: TypeBox's conversion alone took the first six as 1,
  // 16, 1, 1, 2, 1. Review 62: one message for every limit that is not decimal digits (`05` was
  // told it was not decimal; `abc` and an empty value had other wordings).
  for (const limit of ['1.5', '0x10', '+1', '%201', '2e0', '01', '05', 'abc', '', '-1', '1&limit=2']) {
    for (const url of ['/v1/projects', '/v1/users', '/v1/audit-events', '/v1/api-keys']) {
      const res = await acme.call('owner', { url: `${url}?limit=${limit}` })
      assertError(t, res, 400, 'VALIDATION_FAILED')
      t.equal(res.json().error.message, 'querystring/limit must be an integer in decimal digits, without sign or leading zero', `${url}?limit=${limit}`)
    }
  }
  for (const limit of ['0', '101']) t.match((await acme.call('owner', { url: `/v1/projects?limit=${limit}` })).json().error.message, /^querystring\/limit must be [<>]= /, `limit=${limit}: out of range, said so`)
  t.equal((await acme.call('owner', { url: '/v1/projects?limit=7' })).json().data.length, 7, 'a decimal limit is read')
  const garbled = ['abc', '%%%', 'x'.repeat(150), Buffer.from('2026-01-01T00:00:00.000Z|not-a-uuid').toString('base64url'),
    Buffer.from('yesterday|3f1c1a7e-9a4b-4c1e-8d2f-0b6a1e2c3d4e').toString('base64url'), Buffer.from("'; DROP TABLE projects; --").toString('base64url'),
    Buffer.from('2026-13-45T00:00:00.000Z|3f1c1a7e-9a4b-4c1e-8d2f-0b6a1e2c3d4e').toString('base64url'), '🙂']
  for (const cursor of garbled) {
    for (const url of ['/v1/projects', '/v1/users']) {
      assertError(t, await acme.call('owner', { url: `${url}?cursor=${encodeURIComponent(cursor)}` }), 400, 'BAD_REQUEST')
    }
  }
  // An over-long cursor is an undecodable one (the contract's BAD_REQUEST), not a schema violation.
  assertError(t, await acme.call('owner', { url: `/v1/projects?cursor=${'x'.repeat(300)}` }), 400, 'BAD_REQUEST')
  // A cursor made on another tenant's list is only a position: on acme's host it shows acme's own
  // rows older than that position, never globex's. (globex has rows, so its cursor is a real one.)
  const globexIds = new Set(await seedProjects(ownerUrl, globex.id, 10))
  const theirs = (await globex.call('owner', { url: '/v1/projects?limit=5' })).json()
  t.equal(theirs.data.length, 5)
  t.ok(theirs.nextCursor, "globex's first page has a next cursor")
  const { createdAt } = decodeCursor(theirs.nextCursor)
  const acmeOlder = await adminQuery<{ id: string }>(ownerUrl, 'SELECT id FROM projects WHERE tenant_id = $1 AND created_at < $2 ORDER BY created_at DESC, id DESC', [acme.id, createdAt])
  t.ok(acmeOlder.rows.length > 0 && acmeOlder.rows.length < 30, `the cursor falls inside acme's rows (${acmeOlder.rows.length} older)`)
  const res = (await acme.call('owner', { url: `/v1/projects?limit=100&cursor=${theirs.nextCursor}` })).json()
  t.notOk(res.data.some((row: { id: string }) => globexIds.has(row.id)), "none of globex's rows")
  t.same(res.data.map((row: { id: string }) => row.id).filter((id: string) => acmeOlder.rows.some((r) => r.id === id)), acmeOlder.rows.map((r) => r.id), "acme's rows older than the position, in order")
})

t.test('the cursor round-trips and is opaque base64url', async (t) => {
  const position = { createdAt: new Date('2026-05-06T07:08:09.123Z'), id: '3f1c1a7e-9a4b-4c1e-8d2f-0b6a1e2c3d4e' }
  const cursor = encodeCursor(position)
  t.match(cursor, /^[A-Za-z0-9_-]+$/)
  t.same(decodeCursor(cursor), position)
})

// The plan of the app's own query, captured from Prisma's query events while the real route serves a
// cursor page, EXPLAINed with its own parameters as saas_app with the tenant set (so the RLS policy is
// part of the plan, as in production).
t.test("a page is one index range scan on (tenant_id, created_at DESC, id DESC): the app's own query", async (t) => {
  const queries: { query: string; params: string }[] = []
  const { acme, globex, ownerUrl } = await buildApi(t, {}, { onQuery: (event) => queries.push(event) })
  for (const id of [acme.id, globex.id]) await adminQuery(ownerUrl, 'INSERT INTO projects (tenant_id, name, created_at) SELECT $1, \'p\', now() - i * interval \'1 second\' FROM generate_series(1, 5000) i', [id])
  await adminQuery(ownerUrl, 'ANALYZE projects')
  const first = (await acme.call('owner', { url: '/v1/projects?limit=20' })).json()
  queries.length = 0
  const second = await acme.call('owner', { url: `/v1/projects?limit=20&cursor=${first.nextCursor}` })
  t.equal(second.statusCode, 200)
  const list = queries.filter((q) => /FROM "public"\."projects"/.test(q.query) && /ORDER BY/.test(q.query))
  t.equal(list.length, 1, `one list query was sent (${queries.length} queries in all)`)
  const { query, params } = list[0]!
  const client = new pg.Client({ connectionString: ownerUrl })
  await client.connect()
  t.teardown(() => client.end())
  await client.query('BEGIN')
  await client.query('SET LOCAL ROLE saas_app')
  await client.query("SELECT set_config('app.tenant_id', $1, true)", [acme.id])
  const plan = await client.query(`EXPLAIN ${query}`, JSON.parse(params))
  await client.query('ROLLBACK')
  const text = plan.rows.map((r) => r['QUERY PLAN']).join('\n')
  t.match(text, /Index Scan using projects_tenant_id_created_at_id_idx/, text)
  t.match(text, /Index Cond: \(\(tenant_id = .*\) AND \(created_at <= /, 'the cursor bounds the scan (an index condition, not a filter)')
  t.notMatch(text, /Sort|Seq Scan/, 'no sort, no sequential scan')
})
