// `npm run bench:ab`: the list query of the benchmark (20 newest projects of a tenant), run in this
// one process by several clients side by side, in interleaved blocks (A B C D, B C D A, …), and
// measured by CPU time per query: this process's (process.cpuUsage) and the PostgreSQL backends'
// (/proc). On a machine shared with other work, throughput and latency say more about the others
// than about us; CPU per query and ratios of interleaved blocks move much less.
//
// Clients: plain `pg` (named statement, the tables' owner: bench/baseline-server.ts's query);
// Prisma scoped to the tenant with RLS on, with and without named prepared statements; Prisma with
// RLS off (the owner); Prisma's base client without the scoped client's extension. Uses the database `npm run bench` seeded (.data/bench): run that once first.
//
// Environment: AB_ROUNDS=6 AB_OPS=400 (queries per block) AB_CONCURRENCY=16 BENCH_DATA_DIR BENCH_PG_PORT
import { randomBytes } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { loadConfig } from '../src/config.ts'
import { DEFAULT_API_LOGIN, ensureApiLogin, withLogin } from '../src/db/api-login.ts'
import { createDatabase, EMBEDDED_DATABASE_NAME, type Database } from '../src/db/database.ts'
import { startEmbeddedPostgres } from '../src/db/embedded-postgres.ts'
import { runAsTenant } from '../src/tenancy/tenant-context.ts'

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

const SQL = 'SELECT id, name, description, created_at, updated_at FROM projects WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT 20'
const select = { id: true, name: true, description: true, createdAt: true, updatedAt: true } as const
const listWith = (db: Database) => (tenantId: string) => db.forTenant(tenantId).project.findMany({ orderBy: [{ createdAt: 'desc' }, { id: 'desc' }], take: 20, select })

async function main () {
  const embedded = await startEmbeddedPostgres({ dir: path.join(dataDir, 'postgres'), port: pgPort, database: EMBEDDED_DATABASE_NAME })
  const owner = new pg.Pool({ connectionString: embedded.url, max: concurrency })
  owner.on('error', () => {})
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
    const variants: Array<[string, (tenantId: string) => Promise<unknown>]> = [
      ['plain pg', (id) => owner.query({ name: 'list-projects', text: SQL, values: [id] })],
      ['prisma, RLS on, named', listWith(named)],
      ['prisma, RLS on, unnamed', listWith(unnamed)],
      ['prisma, RLS off, named', listWith(off)],
      // Without the scoped client's extension: the same query on the base client, tenant set by hand.
      ['prisma unscoped, RLS on, named', (id) => runAsTenant(id, () => named.platformDb.project.findMany({ where: { tenantId: id }, orderBy: [{ createdAt: 'desc' }, { id: 'desc' }], take: 20, select }))],
    ]
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
    const base = samples.get('plain pg')!
    console.log(`${rounds} rounds × ${ops} queries per client, ${concurrency} at a time, interleaved; load average ${os1()}; ${info!.v.split(' ').slice(0, 2).join(' ')}`)
    console.log('client                          app cpu µs/query  db cpu µs/query  wall µs/query  app cpu vs plain pg')
    for (const [name] of variants) {
      const s = samples.get(name)!
      console.log(`${name.padEnd(31)} ${(1000 * median(s.app)).toFixed(0).padStart(16)} ${(1000 * median(s.db)).toFixed(0).padStart(16)} ${(1000 * median(s.wall)).toFixed(0).padStart(14)} ${(median(s.app) / median(base.app)).toFixed(2).padStart(20)}×`)
    }
    await Promise.all([named.close(), unnamed.close(), off.close()])
  } finally {
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
