// The Prisma runtime as this project runs it (patches/@prisma+client+7.10.0.patch, applied by
// patch-package at `npm install`; bench/HISTORY.md, round eleven). Prisma 7.10's PrismaPromise — the
// object every model call returns — is an object literal with a getter (`get spec()`). V8 gives
// each such object a hidden class of its own, allocated in the old generation, which holds the
// getter's closure and through it the call's arguments, the query's parameters and its result
// rows: a scavenge cannot free them, so each query's objects were promoted and freed only by the
// next mark-compact (11–13 KB per list query; at 400 req/s a mark-compact every 2.6 s, 40–70 ms of
// marking each). The patch makes `spec` a plain property holding the same value.
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { adminQuery, createTestDatabase, insertTenant, openTestDatabase, productionNodeFlags } from './helper.ts'

t.test('a PrismaPromise carries its spec as a plain property (the patch is applied)', async (t) => {
  const { database } = await openTestDatabase(t)
  const pending = database.platformDb.tenant.findMany({ take: 1 }) // lazy: sends nothing until awaited
  const spec = Object.getOwnPropertyDescriptor(pending, 'spec')
  t.ok(spec && 'value' in spec && !spec.get, 'spec is a data property, not a getter')
  t.match(spec?.value, { action: 'findMany', model: 'Tenant', args: { take: 1 } }, 'holding what the getter returned')
})

t.test('the list query leaves (almost) nothing for the scavenger to promote', async (t) => {
  const ownerUrl = await createTestDatabase(t)
  const tenantId = await insertTenant(ownerUrl, 'promotion')
  await adminQuery(ownerUrl, 'INSERT INTO projects (tenant_id, name) SELECT $1, \'p\' || n FROM generate_series(1, 25) n', [tenantId])

  // As production starts the server (start:prod's flags), with V8's trace of every collection.
  const child = spawn(process.execPath, [...productionNodeFlags(), '--trace-gc-nvp', '--import', 'tsx', fileURLToPath(new URL('./prisma-promotion-child.ts', import.meta.url))], {
    env: { ...process.env, CHILD_DATABASE_URL: ownerUrl, CHILD_TENANT_ID: tenantId },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  t.teardown(() => { child.kill() }) // a tap timeout must not leave it querying a dropped database
  let out = ''
  child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString() })
  // 'close', not 'exit': only then has all of its stdout been read.
  const code = await new Promise<number | null>((resolve) => {
    child.on('close', resolve)
    child.on('error', () => resolve(null))
  })
  t.equal(code, 0, 'the child ran its queries')

  const lines = out.split('\n')
  const start = lines.indexOf('measure-start')
  const end = lines.findIndex((line) => line.startsWith('measure-end '))
  if (!t.ok(start >= 0 && end > start, 'the measured stretch was printed')) return
  const queries = Number(lines[end]!.split(' ')[1])
  const scavenges = lines.slice(start, end).filter((line) => / gc=s /.test(line))
  const promoted = scavenges.reduce((sum, line) => sum + Number(/ promoted=(\d+)/.exec(line)?.[1] ?? 0), 0)
  // Enough scavenges for the sum to mean something; then a bound between what the patched runtime
  // promotes (1.3–3.2 KB per query here: Node 20, start:prod's flags) and the unpatched one (11 KB).
  // Measured on Node 20's V8: another Node may move both figures (re-measure before moving the bound).
  t.ok(scavenges.length >= 5, `${scavenges.length} scavenges during ${queries} queries`)
  t.ok(promoted / queries < 6_000, `${Math.round(promoted / queries)} bytes promoted per query (unpatched: about 11,000)`)
})
