// Two decisions hang on telling a transaction pooler (PgBouncer, pool_mode = transaction) from
// PostgreSQL itself: migrations are refused through one (their session advisory lock would stay
// held on a pooled server connection), and DB_PREPARED_STATEMENTS=auto names statements only
// directly (behind PgBouncer < 1.21 they are looked for on another session: about half the requests
// failed). A reviewer defeated the old check with a pool that other clients kept busy, with
// server_round_robin = 1, and with PgBouncer on the PostgreSQL port number at another address.
import { execFile } from 'node:child_process'
import net from 'node:net'
import pg from 'pg'
import t from 'tap'
import { usePreparedStatements } from '../src/db/database.ts'
import { isTransactionPooler, poolerKeepsPreparedStatements } from '../src/db/direct-connection.ts'
import { startPgBouncer, startServer } from './cluster-helper.ts'
import { adminUrl, createTestDatabase } from './helper.ts'

const AUTO = { DB_PREPARED_STATEMENTS: 'auto' as const, DB_CONNECT_TIMEOUT_MS: 5000 }

/** `clients` connections running short statements through `url` until the test ends: a busy pool. */
async function keepBusy (t: Tap, url: string, clients = 3): Promise<void> {
  const state = { running: true }
  const loops = Array.from({ length: clients }, async () => {
    const client = new pg.Client({ connectionString: url })
    client.on('error', () => {})
    await client.connect()
    while (state.running) await client.query('SELECT pg_sleep(0.002)').catch(() => {})
    await client.end()
  })
  t.teardown(async () => { state.running = false; await Promise.all(loops) })
  await new Promise((resolve) => setTimeout(resolve, 200))
}
type Tap = { teardown(fn: () => unknown): void }

/** How many of `n` checks, one after the other, answered `answer`. */
async function count (n: number, check: () => Promise<boolean>, answer: boolean): Promise<number> {
  let matched = 0
  for (let i = 0; i < n; i++) if ((await check()) === answer) matched++
  return matched
}

t.test('directly: no pooler, and named statements on', async (t) => {
  t.equal(await count(5, () => isTransactionPooler(adminUrl), false), 5, 'never taken for a pooler')
  t.equal(await usePreparedStatements(AUTO, adminUrl), true)
  const said: string[] = []
  t.equal(await usePreparedStatements({ ...AUTO, DB_PREPARED_STATEMENTS: 'on' }, adminUrl, (line) => said.push(line)), true)
  t.same(said, [], 'on, directly: no warning')
})

t.test('PgBouncer with a pool other clients keep busy: a pooler every time', async (t) => {
  const url = (await startPgBouncer(t)).url('postgres')
  await keepBusy(t, url)
  const n = await count(30, () => isTransactionPooler(url), true); t.equal(n, 30, `${n} of 30 checks`)
  t.equal(await usePreparedStatements(AUTO, url), false, 'named statements off')
  // Review 57: `on` behind PgBouncer 1.18 started (at first silently, later with a warning), then
  // about half the requests failed. The start-up probe shows that this pooler loses them: refused.
  const lost = await count(10, async () => (await poolerKeepsPreparedStatements(url)) === false, true)
  t.equal(lost, 10, `the probe, ${lost} of 10 times: a statement prepared on one server was unknown on the next`)
  await t.rejects(usePreparedStatements({ ...AUTO, DB_PREPARED_STATEMENTS: 'on' }, url), { name: 'ConfigError', message: /DB_PREPARED_STATEMENTS=on: the API's login leads to a transaction pooler that loses named prepared statements .*Set auto or off/s }, 'on: refused')
})

t.test('DB_PREPARED_STATEMENTS=on through PgBouncer 1.18: the server does not start, and says why', async (t) => {
  const ownerUrl = await createTestDatabase(t)
  const database = decodeURIComponent(new URL(ownerUrl).pathname.slice(1))
  const url = (await startPgBouncer(t, { databases: [database] })).url(database)
  await t.rejects(startServer(t, { DATABASE_URL: ownerUrl, APP_DATABASE_URL: url, DB_PREPARED_STATEMENTS: 'on', DATA_DIR: '.data/test' }), /exited \(1\)[\s\S]*DB_PREPARED_STATEMENTS=on: the API's login leads to a transaction pooler that loses named prepared statements/)
})

t.test('PgBouncer with one server connection: the probe cannot tell, so `on` is kept with a warning', async (t) => {
  const url = (await startPgBouncer(t, { poolSize: 1 })).url('postgres')
  t.equal(await poolerKeepsPreparedStatements(url), undefined, 'every run had the one server')
  const said: Array<[string, string | undefined]> = []
  t.equal(await usePreparedStatements({ ...AUTO, DB_PREPARED_STATEMENTS: 'on' }, url, (line, level) => said.push([line, level])), true, 'on: kept as asked')
  t.match(said, [[/^DB_PREPARED_STATEMENTS=on and the API's login leads to a transaction pooler: this needs PgBouncer >= 1\.21/, 'warn']], 'and a warning at start, at level warn')
})

t.test('PgBouncer with server_round_robin = 1: a pooler every time, idle or busy', async (t) => {
  const url = (await startPgBouncer(t, { roundRobin: true })).url('postgres')
  // A warm pool of several server connections, as any deployment has.
  await Promise.all(Array.from({ length: 4 }, async () => {
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    await client.query('SELECT pg_sleep(0.2)')
    await client.end()
  }))
  t.equal(await count(10, () => isTransactionPooler(url), true), 10, 'idle: 10 of 10 checks')
  const lost = await count(10, async () => (await poolerKeepsPreparedStatements(url)) === false, true)
  t.equal(lost, 10, `idle: ${lost} of 10 probes show that prepared statements are lost`)
  await keepBusy(t, url)
  const busy = await count(30, () => isTransactionPooler(url), true); t.equal(busy, 30, `busy: ${busy} of 30 checks`)
})

t.test('PgBouncer on the PostgreSQL port number, at another address: named statements off', async (t) => {
  const server = new URL(adminUrl)
  const port = Number(server.port || 5432)
  // 127.0.0.2 is this host too (127.0.0.0/8); free unless PostgreSQL listens on every address.
  const free = await new Promise<boolean>((resolve) => {
    const probe = net.createServer().once('error', () => resolve(false)).listen(port, '127.0.0.2', () => probe.close(() => resolve(true)))
  })
  if (!free) return t.comment(`not run: 127.0.0.2:${port} is taken (PostgreSQL listens on every address)`)
  const url = (await startPgBouncer(t, { address: '127.0.0.2', port })).url('postgres')
  await keepBusy(t, url)
  for (let i = 0; i < 5; i++) t.equal(await usePreparedStatements(AUTO, url), false, `start ${i + 1}: named statements off`)
})

// As the README's pgbouncer.ini does, PgBouncer serves the application's database only: the CLI
// used to ask the maintenance database `postgres` first and stopped on "Can't reach database
// server: no such database: postgres" (and on a server that closes `postgres` to the owner).
t.test('npx prisma migrate deploy through a PgBouncer that serves only the app\'s database: refused as a pooler', async (t) => {
  const ownerUrl = await createTestDatabase(t)
  const database = decodeURIComponent(new URL(ownerUrl).pathname.slice(1))
  const url = (await startPgBouncer(t, { databases: [database] })).url(database)
  const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: url }
  delete env.PRISMA_SCHEMA_ENGINE_BINARY // prisma.config.ts chooses our engine
  const output = await new Promise<string>((resolve) => {
    execFile('npx', ['prisma', 'migrate', 'deploy'], { env }, (_error, stdout, stderr) => resolve(`${stdout}\n${stderr}`))
  })
  t.match(output, /Refusing to migrate through a connection pooler/, 'the pooler refusal, not a connection failure')
  t.notMatch(output, /Can't reach database server/)
})
