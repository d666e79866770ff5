// The foundation as an operator meets it: the embedded PostgreSQL across kills and restarts,
// readiness following the database, the seed, production refusing default secrets, and the
// database itself refusing a cross-tenant reference.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import path from 'node:path'
import t from 'tap'
import { buildApp } from '../src/app.ts'
import { ConfigError, loadConfig } from '../src/config.ts'
import { createDatabase } from '../src/db/database.ts'
import { startEmbeddedPostgres } from '../src/db/embedded-postgres.ts'
import { applyMigrations } from '../src/db/migrate.ts'
import { seedDemo } from '../prisma/seed-data.ts'
import { adminQuery, createTestDatabase, freePort, insertTenant, testConfig } from './helper.ts'
import { sharedSecrets } from './cluster-helper.ts'

/** A scratch folder the postgres OS user can traverse (mkdtemp's 0700 folders are not). */
async function scratchDir (t: Tap.Test) {
  const dir = path.resolve('.data/pg-scratch', randomUUID())
  await mkdir(dir, { recursive: true, mode: 0o755 })
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}
declare namespace Tap { type Test = { teardown(fn: () => unknown): void } }

const tenantCount = async (url: string) => Number((await adminQuery(url, 'SELECT count(*) FROM tenants')).rows[0]!.count)

t.test('/readyz follows the database: 503 while it is gone, 200 when it is back', async (t) => {
  const dir = await scratchDir(t)
  const port = await freePort()
  const pg = await startEmbeddedPostgres({ dir, port, database: 'app' })
  t.teardown(() => pg.stop())
  await applyMigrations(pg.url)
  const config = testConfig(pg.url)
  const app = await buildApp({ config, database: createDatabase(config, pg.url) })
  t.teardown(() => app.close())
  const ready = () => app.inject({ url: '/readyz', headers: { host: 'localhost' } })

  t.equal((await ready()).statusCode, 200)
  await pg.stop()
  const down = await ready()
  t.equal(down.statusCode, 503)
  t.equal(down.json().error.code, 'SERVICE_UNAVAILABLE')
  t.ok(down.headers['retry-after'], 'with Retry-After')
  t.equal((await app.inject({ url: '/healthz', headers: { host: 'localhost' } })).statusCode, 200, 'the process is still alive')

  await startEmbeddedPostgres({ dir, port, database: 'app' })
  let status = 0
  for (let i = 0; i < 50 && status !== 200; i++) status = (await ready()).statusCode
  t.equal(status, 200, 'ready again, without a restart')
})

function startServer (env: Record<string, string>): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout!.on('data', (d) => (output += d))
  child.stderr!.on('data', (d) => (output += d))
  return { child, output: () => output }
}

async function waitReady (port: number, ms = 90_000): Promise<boolean> {
  const until = Date.now() + ms
  while (Date.now() < until) {
    const ok = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.status === 200, () => false)
    if (ok) return true
    await new Promise((r) => setTimeout(r, 100))
  }
  return false
}

const exited = (child: ChildProcess) => new Promise<number | null>((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.on('exit', resolve)))

t.test('the embedded database survives SIGKILL of the server and keeps its data across restarts', async (t) => {
  const dataDir = await scratchDir(t)
  const [port, pgPort] = [await freePort(), await freePort()]
  const env = { DATA_DIR: dataDir, PORT: String(port), EMBEDDED_PG_PORT: String(pgPort), HOST: '127.0.0.1', LOG_LEVEL: 'warn', BCRYPT_COST: '4', NODE_ENV: 'development' }
  delete process.env.DATABASE_URL

  const first = startServer(env)
  t.ok(await waitReady(port), 'first start: embedded database created, migrated, seeded')
  const url = (await import('../src/db/cli-url.ts')).cliDatabaseUrl({ DATA_DIR: dataDir, EMBEDDED_PG_PORT: String(pgPort) })
  t.equal(await tenantCount(url), 2, 'demo tenants seeded')
  t.notMatch(first.output(), /WARNING: tenant isolation/, 'the API runs as its own login (saas_api), which RLS binds: no role warning')
  await insertTenant(url, 'survivor')

  first.child.kill('SIGKILL')
  await exited(first.child)
  const second = startServer(env)
  t.ok(await waitReady(port), 'restarts after SIGKILL (adopting the running cluster)')
  t.equal(await tenantCount(url), 3, 'data intact')

  second.child.kill('SIGTERM')
  t.equal(await exited(second.child), 0, 'graceful exit on SIGTERM')
  const stopped = await adminQuery(url, 'SELECT 1').then(() => false, () => true)
  t.ok(stopped, 'the embedded PostgreSQL stopped with the server')

  // A crash can leave a postmaster.pid naming a dead process: the next start must cope.
  await writeFile(path.join(dataDir, 'postgres/cluster/postmaster.pid'), '999999\n/nowhere\n0\n0\n\n\n\n')
  const third = startServer(env)
  t.teardown(() => third.child.kill('SIGTERM'))
  t.ok(await waitReady(port), `starts over a stale postmaster.pid${third.output() ? '' : ''}`)
  t.equal(await tenantCount(url), 3, 'and the data is still there')
  third.child.kill('SIGTERM')
  await exited(third.child)
})

t.test('production refuses to start on missing secrets', async (t) => {
  const server = startServer({ NODE_ENV: 'production', DATABASE_URL: 'postgresql://nobody@127.0.0.1:1/none', JWT_PRIVATE_KEYS: '', CSRF_SECRET: '' })
  t.equal(await exited(server.child), 1)
  t.match(server.output(), /NODE_ENV=production requires: JWT_PRIVATE_KEYS, CSRF_SECRET/)
  t.notMatch(server.output(), /nobody@/, 'the database URL is not echoed')
  // Review 56: a failed start was plain text only, which an alert on level >= 50 never sees.
  const fatal = server.output().split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { level: number, msg: string })
  t.match(fatal, [{ level: 60, msg: /^could not start: NODE_ENV=production requires: JWT_PRIVATE_KEYS/ }], 'and one fatal JSON line says it')
})

// Review 56: a password with an unencoded /, ? or # passed the scheme check, and the server started
// "ready" and answered 503 forever, once logging a part of the password as the host it could not find.
t.test('a URL whose password is not percent-encoded stops the start, naming the variable and not the password', async (t) => {
  const server = startServer({ NODE_ENV: 'production', DATABASE_URL: 'postgresql://owner:Super@Secret#Pw@127.0.0.1:1/app' })
  t.equal(await exited(server.child), 1, 'refused at once (exit 1)')
  t.match(server.output(), /DATABASE_URL: holds a # \(a fragment, meaningless here\): percent-encode/)
  t.notMatch(server.output(), /Super|Secret|Pw@/, 'no part of the password is echoed')
  const cases: Array<[string, string, RegExp]> = [
    ['DATABASE_URL', 'postgresql://owner:Xy7/SECRETPART@127.0.0.1:5432/app', /DATABASE_URL: not a valid URL/],
    ['APP_DATABASE_URL', 'postgresql://api:ab?SECRETPART@127.0.0.1:5432/app', /APP_DATABASE_URL: not a valid URL/],
    ['REDIS_URL', 'redis://:pa@SECRETPART#x@127.0.0.1:6379', /REDIS_URL: holds a #/],
    ['SMTP_URL', 'smtp://user:pa/SECRETPART@mail.example:587', /SMTP_URL: not a valid URL/],
  ]
  for (const [key, value, message] of cases) {
    const error = (() => { try { loadConfig({ [key]: value }); return null } catch (caught) { return caught as Error } })()
    t.ok(error instanceof ConfigError, `${key}: refused`)
    t.match(error?.message, message, `${key}: named, with what to do`)
    t.notMatch(error?.message, /SECRETPART/, `${key}: the value is not echoed`)
  }
  // Encoded, the same passwords are accepted; an @ in a password parses as the last @ wins.
  for (const value of ['postgresql://owner:Super%40Secret%23Pw@127.0.0.1:5432/app', 'postgresql://owner:Xy7%2FS@127.0.0.1:5432/app', 'postgresql://owner:Sup@r@127.0.0.1:5432/app']) {
    t.equal(loadConfig({ DATABASE_URL: value }).DATABASE_URL, value, `${value.replace(/:[^:@]*@/, ':…@')} accepted`)
  }
})

t.test('the seed is idempotent, through the real `prisma db seed`, and refused in production', async (t) => {
  const url = await createTestDatabase(t)
  const seed = (env: Record<string, string> = {}) =>
    new Promise<string>((resolve, reject) => {
      const child = spawn('npx', ['prisma', 'db', 'seed'], { env: { ...process.env, DATABASE_URL: url, BCRYPT_COST: '4', ...env } })
      let out = ''
      child.stdout.on('data', (d) => (out += d))
      child.stderr.on('data', (d) => (out += d))
      child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(out))))
    })
  const counts = async () => (await adminQuery(url, 'SELECT (SELECT count(*) FROM tenants) t, (SELECT count(*) FROM users) u, (SELECT count(*) FROM projects) p, (SELECT count(*) FROM tasks) k')).rows[0]
  // A production configuration (every required secret set): refused, nothing created.
  const refused = await seed({ NODE_ENV: 'production', ...sharedSecrets(), APP_DATABASE_URL: url }).then(() => '', (error: Error) => error.message)
  t.match(refused, /Refusing to seed with NODE_ENV=production/, 'refused in production')
  t.same(await counts(), { t: '0', u: '0', p: '0', k: '0' }, 'and nothing created')
  const out = await seed()
  t.match(out, /demo@example\.com/, 'prints the demo logins')
  t.match(out, /curl .*acme\.localhost/, 'and curl lines to try')
  const once = await counts()
  t.same(once, { t: '2', u: '6', p: '5', k: '15' })
  await seed()
  t.same(await counts(), once, 'a second run changes nothing')
  const emails = await adminQuery(url, 'SELECT t.slug, u.password_hash FROM users u JOIN tenants t ON t.id = u.tenant_id WHERE u.email = \'demo@example.com\' ORDER BY t.slug')
  t.equal(emails.rows.length, 2, 'the same email exists in both tenants')
  t.not(emails.rows[0]!.password_hash, emails.rows[1]!.password_hash, 'with different passwords')
})

t.test('the database refuses a task whose project belongs to another tenant', async (t) => {
  const url = await createTestDatabase(t)
  await seedDemo(url, 4)
  const { rows } = await adminQuery(url, 'SELECT (SELECT id FROM tenants WHERE slug = \'acme\') acme, (SELECT p.id FROM projects p JOIN tenants t ON t.id = p.tenant_id WHERE t.slug = \'globex\' LIMIT 1) globex_project')
  const error = await adminQuery(url, 'INSERT INTO tasks (tenant_id, project_id, title) VALUES ($1, $2, \'cross\')', [rows[0]!.acme, rows[0]!.globex_project]).then(() => null, (e) => e)
  t.equal(error?.code, '23503', 'foreign key violation')
  t.match(error?.constraint, /tasks_tenant_id_project_id_fkey/)
})
