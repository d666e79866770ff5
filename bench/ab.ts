// `npm run bench:ab`: the list query of the benchmark (20 newest projects of a tenant), run in this
// one process by several clients side by side, in interleaved blocks (A B C D, B C D A, …), and
// measured by CPU time per query: this process's (process.cpuUsage) and the PostgreSQL backends'
// (/proc). On a machine shared with other work, throughput and latency say more about the others
// than about us; CPU per query and ratios of interleaved blocks move much less.
//
// Clients: plain `pg` (named statement, the tables' owner: bench/baseline-server.ts's query);
// Prisma scoped to the tenant with RLS on, with and without named prepared statements; Prisma with
// RLS off (the owner); Prisma's base client without the scoped client's extension. And, through
// Fastify's inject (no sockets, no HTTP parsing, in both): the API's GET /v1/projects?limit=20 with
// an access token against a bare Fastify route running the same scoped query (bench/prisma-only-
// server.ts's route) — the difference is what tenancy, auth and the API's other hooks cost. Also
// through inject, POST /v1/projects on the API and on the same API with AUDIT=off: the audit event's
// cost, split into this process's CPU and PostgreSQL's (the projects are deleted at the end; their
// events stay, the log is append-only). And every answer's fixed headers, set by helmet's middleware
// on each request against recorded once (plugins/response-headers.ts), on a route that answers at
// once. Uses the database `npm run bench` seeded (.data/bench): run that once first.
//
// Environment: AB_ROUNDS=6 AB_OPS=400 (queries per block) AB_CONCURRENCY=16 AB_ONLY=<name prefixes>
// BENCH_DATA_DIR BENCH_PG_PORT
import { randomBytes } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import Fastify from 'fastify'
import helmet from 'helmet'
import pg from 'pg'
import responseHeaders from '../plugins/response-headers.ts'
import { BENCH_PASSWORD } from '../prisma/seed-data.ts'
import { buildApp } from '../src/app.ts'
import { generatePrivateKeyPem } from '../src/auth/keys.ts'
import { loadConfig } from '../src/config.ts'
import { DEFAULT_API_LOGIN, ensureApiLogin, withLogin } from '../src/db/api-login.ts'
import { createDatabase, EMBEDDED_DATABASE_NAME, type Database } from '../src/db/database.ts'
import { startEmbeddedPostgres } from '../src/db/embedded-postgres.ts'
import { runAsTenant } from '../src/tenancy/tenant-context.ts'
import { LIST_PATH, LIST_SQL, listArgs, listPage } from './list-query.ts'
import { projectFields } from '../routes/projects.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
const num = (name: string, fallback: number) => Number(process.env[name] || fallback)
const rounds = num('AB_ROUNDS', 6)
const ops = num('AB_OPS', 400)
const concurrency = num('AB_CONCURRENCY', 16)
const dataDir = path.resolve(root, process.env.BENCH_DATA_DIR || '.data/bench')
const pgPort = num('BENCH_PG_PORT', 54331)

/** CPU ms (user + system) of a process, from /proc (clock ticks of 10 ms). */
function cpuMs (pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(f[11]) + Number(f[12])) * 10
  } catch {
    return 0
  }
}
const parentOf = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
  } catch {
    return -1
  }
}
function backendsCpu (postmaster: number): Map<number, number> {
  const m = new Map<number, number>()
  for (const e of readdirSync('/proc')) if (/^\d+$/.test(e) && parentOf(Number(e)) === postmaster) m.set(Number(e), cpuMs(Number(e)))
  return m
}

const CREATE_NAME = 'bench-ab-create'
const CREATE_AUDITED = 'API create audited (inject)'
const CREATE_UNAUDITED = 'API create AUDIT=off (inject)'
const listWith = (db: Database) => (tenantId: string) => db.forTenant(tenantId).project.findMany(listArgs(projectFields))

async function main () {
  const embedded = await startEmbeddedPostgres({ dir: path.join(dataDir, 'postgres'), port: pgPort, database: EMBEDDED_DATABASE_NAME })
  const owner = new pg.Pool({ connectionString: embedded.url, max: concurrency })
  owner.on('error', () => {})
  // What this run opens, closed in reverse in `finally` whatever fails: an app left running would
  // keep its listeners retrying against the stopped PostgreSQL, and the process would not exit.
  const opened: Array<{ close (): Promise<unknown> }> = []
  try {
    const { rows: [info] } = await owner.query<{ pid: number; v: string }>('SELECT pg_backend_pid() AS pid, version() AS v')
    const postmaster = parentOf(info!.pid)
    const tenants = (await owner.query<{ id: string }>("SELECT id FROM tenants WHERE slug LIKE 'bench-%' ORDER BY slug LIMIT 200")).rows.map((r) => r.id)
    if (tenants.length === 0) throw new Error('no bench tenants: run `npm run bench` once first')
    const password = randomBytes(18).toString('hex')
    await ensureApiLogin(embedded.adminUrl, DEFAULT_API_LOGIN, password)
    const env = { NODE_ENV: 'test', DATABASE_URL: embedded.url, DB_POOL_MAX: String(concurrency) }
    const rlsOn = loadConfig({ ...env, RLS: 'on', APP_DATABASE_URL: withLogin(embedded.url, DEFAULT_API_LOGIN, password) })
    const rlsOff = loadConfig({ ...env, RLS: 'off' })
    const named = createDatabase(rlsOn, embedded.url, undefined, { preparedStatements: true })
    const unnamed = createDatabase(rlsOn, embedded.url, undefined, { preparedStatements: false })
    const off = createDatabase(rlsOff, embedded.url, undefined, { preparedStatements: true })
    opened.push(named, unnamed, off)
    // The API in this process, as production runs it (RLS on, its own login), over `named`.
    const apiConfig = loadConfig({
      ...env,
      NODE_ENV: 'production',
      LOG_LEVEL: 'warn',
      RLS: 'on',
      APP_DATABASE_URL: withLogin(embedded.url, DEFAULT_API_LOGIN, password),
      DB_PREPARED_STATEMENTS: 'on',
      BCRYPT_COST: '4',
      DATA_DIR: dataDir,
      JWT_PRIVATE_KEYS: generatePrivateKeyPem(),
      ACCESS_TOKEN_TTL_S: '3600',
      CSRF_SECRET: 'bench-csrf-secret-0123456789abcdef0123456789',
      API_KEY_SECRET: 'bench-api-key-secret-0123456789abcdef012345',
      TENANT_RATE_LIMIT: '1000000000',
      API_KEY_RATE_LIMIT: '1000000000',
      LOGIN_ATTEMPTS_PER_IP_PER_MIN: '1000000000',
      LOGIN_FAILURES_MAX: '1000000000',
      // No mail in this process (production requires an SMTP server for these two), and no job
      // worker polling in the background of the samples (two apps run here).
      INVITATIONS_ENABLED: 'false',
      PASSWORD_RESET_ENABLED: 'false',
      JOBS_WORKER: 'false',
    })
    const api = await buildApp({ config: apiConfig, database: named, closeDatabase: false })
    opened.push(api)
    await api.ready()
    // The same API with AUDIT=off (the benchmark's comparison only): the create without its event.
    const apiAuditOff = await buildApp({ config: { ...apiConfig, AUDIT: 'off' }, database: named, closeDatabase: false })
    opened.push(apiAuditOff)
    await apiAuditOff.ready()
    const slugs = (await owner.query<{ id: string; slug: string }>("SELECT id, slug FROM tenants WHERE slug LIKE 'bench-%' ORDER BY slug LIMIT 50")).rows
    const tokens = new Map<string, { host: string; authorization: string }>()
    for (const { id, slug } of slugs) {
      const host = `${slug}.localhost`
      const res = await api.inject({ method: 'POST', url: '/v1/auth/login', headers: { host }, payload: { email: 'owner@example.com', password: BENCH_PASSWORD } })
      if (res.statusCode !== 200) throw new Error(`login on ${host}: ${res.statusCode} ${res.body.slice(0, 200)}`)
      tokens.set(id, { host, authorization: `Bearer ${(res.json() as { accessToken: string }).accessToken}` })
    }
    const loggedIn = [...tokens.keys()]
    const bare = Fastify({ logger: false })
    bare.get('/projects', async (request) => listPage(named, request.headers['x-tenant-id'] as string, projectFields))
    opened.push(bare)
    await bare.ready()
    // Round twelve: every answer's fixed headers as helmet's middleware set them on each request (with
    // an onSend hook for Cache-Control and X-Request-Id: the API until round eleven), against the same
    // headers recorded once (plugins/response-headers.ts), on a route that answers at once.
    const headersPerRequest = Fastify({ logger: false })
    const middleware = helmet()
    headersPerRequest.addHook('onRequest', (request, reply, done) => middleware(request.raw, reply.raw, (error) => done(error as Error | undefined)))
    headersPerRequest.addHook('onSend', async (request, reply) => {
      if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store')
      reply.header('x-request-id', request.id)
    })
    const headersRecorded = Fastify({ logger: false })
    await headersRecorded.register(responseHeaders)
    const headersNone = Fastify({ logger: false })
    for (const app of [headersPerRequest, headersRecorded, headersNone]) {
      app.get('/answer', async () => ({ ok: true }))
      opened.push(app)
      await app.ready()
    }
    const expectStatus = (status: number) => (res: { statusCode: number; body: string }) => {
      if (res.statusCode !== status) throw new Error(`${res.statusCode}: ${res.body.slice(0, 200)}`)
    }
    const expectOk = expectStatus(200)
    let turn = 0
    /** The logged-in tenants in turn, one per request. */
    const nextTenant = () => loggedIn[turn++ % loggedIn.length]!
    const create = (app: typeof api) => () => app.inject({ method: 'POST', url: '/v1/projects', headers: tokens.get(nextTenant())!, payload: { name: CREATE_NAME } }).then(expectStatus(201))
    const variants: Array<[string, (tenantId: string) => Promise<unknown>]> = [
      ['API list, inject (all hooks)', () => api.inject({ method: 'GET', url: LIST_PATH, headers: tokens.get(nextTenant())! }).then(expectOk)],
      ['bare route, inject (same query)', () => bare.inject({ method: 'GET', url: '/projects', headers: { 'x-tenant-id': nextTenant() } }).then(expectOk)],
      ['plain pg', (id) => owner.query({ name: 'list-projects', text: LIST_SQL, values: [id] })],
      ['prisma, RLS on, named', listWith(named)],
      ['prisma, RLS on, unnamed', listWith(unnamed)],
      ['prisma, RLS off, named', listWith(off)],
      // Without the scoped client's extension: the same query on the base client, tenant set by hand.
      ['prisma unscoped, RLS on, named', (id) => runAsTenant(id, () => named.platformDb.project.findMany({ ...listArgs(projectFields), where: { tenantId: id } }))],
      // Issue 14: the create route with its audit event and without.
      [CREATE_AUDITED, create(api)],
      [CREATE_UNAUDITED, create(apiAuditOff)],
      ['headers: helmet per request', () => headersPerRequest.inject({ url: '/answer' }).then(expectOk)],
      ['headers: recorded once', () => headersRecorded.inject({ url: '/answer' }).then(expectOk)],
      ['headers: none', () => headersNone.inject({ url: '/answer' }).then(expectOk)],
    ]
    // AB_ONLY=<prefix>,…: only the clients whose names start so (e.g. to profile one of them).
    const only = process.env.AB_ONLY?.split(',')
    if (only) variants.splice(0, variants.length, ...variants.filter(([name]) => only.some((prefix) => name.startsWith(prefix))))
    const samples = new Map(variants.map(([name]) => [name, { app: [] as number[], db: [] as number[], wall: [] as number[] }]))
    const block = async (run: (id: string) => Promise<unknown>, count: number) => {
      let next = 0
      await Promise.all(Array.from({ length: concurrency }, async () => {
        while (next < count) await run(tenants[next++ % tenants.length]!)
      }))
    }
    for (const [, run] of variants) await block(run, ops) // warm-up: connections, plans, JIT
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < variants.length; i++) {
        const [name, run] = variants[(i + r) % variants.length]!
        const db0 = backendsCpu(postmaster)
        const app0 = process.cpuUsage()
        const t0 = performance.now()
        await block(run, ops)
        const wall = performance.now() - t0
        const app = process.cpuUsage(app0)
        let db = 0
        for (const [pid, ms] of backendsCpu(postmaster)) db += ms - (db0.get(pid) ?? 0)
        const s = samples.get(name)!
        s.app.push((app.user + app.system) / 1000 / ops)
        s.db.push(db / ops)
        s.wall.push(wall / ops)
      }
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
    const base = samples.get('plain pg') ?? samples.values().next().value!
    const [withHooks, withoutHooks] = [samples.get('API list, inject (all hooks)'), samples.get('bare route, inject (same query)')]
    console.log(`${rounds} rounds × ${ops} queries per client, ${concurrency} at a time, interleaved; load average ${os1()}; ${info!.v.split(' ').slice(0, 2).join(' ')}`)
    console.log('client                          app cpu µs/query  db cpu µs/query  wall µs/query  app cpu vs plain pg')
    for (const [name] of variants) {
      const s = samples.get(name)!
      console.log(`${name.padEnd(31)} ${(1000 * median(s.app)).toFixed(0).padStart(16)} ${(1000 * median(s.db)).toFixed(0).padStart(16)} ${(1000 * median(s.wall)).toFixed(0).padStart(14)} ${(median(s.app) / median(base.app)).toFixed(2).padStart(20)}×`)
    }
    const [a, b] = [median(withHooks?.app ?? []), median(withoutHooks?.app ?? [])]
    if (withHooks && withoutHooks) console.log(`tenancy + auth + the API's other hooks: ${(1000 * (a - b)).toFixed(0)} µs of the API list's ${(1000 * a).toFixed(0)} µs CPU per request = ${((100 * (a - b)) / a).toFixed(0)} % (inject, no sockets)`)
    const [perRequest, recorded] = [samples.get('headers: helmet per request'), samples.get('headers: recorded once')]
    const noHeaders = samples.get('headers: none')
    if (perRequest && recorded && noHeaders) {
      const [each, once, none] = [perRequest, recorded, noHeaders].map((s) => 1000 * median(s.app))
      console.log(`every answer's fixed headers: ${(each! - none!).toFixed(1)} µs of CPU per answer with helmet's middleware per request, ${(once! - none!).toFixed(1)} µs recorded once (a route that answers at once: ${none!.toFixed(1)} µs without them; inject)`)
    }
    const [audited, unaudited] = [samples.get(CREATE_AUDITED), samples.get(CREATE_UNAUDITED)]
    if (audited && unaudited) {
      const [appOn, appOff, dbOn, dbOff] = [median(audited.app), median(unaudited.app), median(audited.db), median(unaudited.db)]
      const us = (ms: number) => `${(1000 * ms).toFixed(0)} µs`
      const signed = (text: string) => text.startsWith('-') ? text : `+${text}`
      console.log(`the audit event of a create: ${signed(us(appOn - appOff))} of this process's CPU (${us(appOff)} → ${us(appOn)}), ${signed(us(dbOn - dbOff))} of PostgreSQL's (${us(dbOff)} → ${us(dbOn)}): ` +
        `${signed(((100 * (appOn + dbOn - appOff - dbOff)) / (appOff + dbOff)).toFixed(0))} % of the unaudited create's CPU (inject, no sockets)`)
    }
  } finally {
    for (const thing of opened.reverse()) await thing.close().catch((error: Error) => console.error(`could not close: ${error.message}`))
    await owner.query('DELETE FROM projects WHERE name = $1', [CREATE_NAME])
      .then(() => owner.query('VACUUM (ANALYZE) projects, tenants, audit_events'))
      .catch((error: Error) => console.error(`could not remove the created projects: ${error.message}`))
    await owner.end()
    await embedded.stop()
  }
}

function os1 () {
  return readFileSync('/proc/loadavg', 'utf8').split(' ')[0]
}

main().catch((error: unknown) => {
  console.error(error)
  process.exitCode = 1
})
