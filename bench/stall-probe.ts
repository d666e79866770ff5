// `npm run bench:stalls`: does the machine itself stall, whatever runs on it? (Round eleven found
// the open loop's tail in step with the kernel's DAMON thread, on servers of every kind.)
//
// Drives a minimal HTTP server — a child process whose only work is `res.end()`, or with
// STALL_DATABASE_URL the bench's plain `pg` server (bench/baseline-server.ts: the list's query, one
// per request, for the tenant whose slug is STALL_TENANT, default bench-00001) — with the bench's
// open-loop generator (bench/open-loop.ts) at STALL_RATE req/s (default 1000) for STALL_SECONDS
// (default 10), after a 2 s warm-up. Meanwhile it samples, every 5 ms, the CPU time of the kernel
// threads named kdamond* (DAMON, the kernel's memory-access monitor: /proc/<pid>/stat, in 10 ms
// ticks). Prints the share of requests over 10 ms, the stalls (runs of such requests less than
// 20 ms apart) and how many of them began within 30 ms of a sample that saw kdamond's CPU time
// grow, beside how many would by chance (the share of the run those ±30 ms windows cover).
import { fork } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { productionNodeFlags } from '../test/node-flags.ts'
import { openLoop } from './open-loop.ts'

const WINDOW_MS = 30

if (process.argv[2] === 'server') {
  const server = http.createServer((_req, res) => res.end('ok'))
  server.listen(0, '127.0.0.1', () => process.send!((server.address() as AddressInfo).port))
} else {
  const rate = Number(process.env.STALL_RATE ?? 1000)
  const seconds = Number(process.env.STALL_SECONDS ?? 10)
  const databaseUrl = process.env.STALL_DATABASE_URL
  const tenantSlug = process.env.STALL_TENANT ?? 'bench-00001'
  const tenantId = databaseUrl ? await tenantIdOf(databaseUrl, tenantSlug) : undefined
  // Both children tell their port over IPC (PORT=0: the system picks a free one), and run with
  // start:prod's node flags and the bench's pool size, as bench/run.ts starts its servers.
  const execArgv = [...productionNodeFlags(), '--import', 'tsx']
  const server = databaseUrl
    ? fork(fileURLToPath(new URL('./baseline-server.ts', import.meta.url)), [], { execArgv, env: { ...process.env, DATABASE_URL: databaseUrl, PORT: '0', DB_POOL_MAX: process.env.DB_POOL_MAX ?? '20' } })
    : fork(fileURLToPath(import.meta.url), ['server'], { execArgv })
  let sampler: NodeJS.Timeout | undefined
  try {
    const port = await new Promise<number>((resolve, reject) => {
      server.once('message', (message) => resolve(Number(message)))
      server.once('exit', (code) => reject(new Error(`the probe's server exited (code ${code}) before listening`)))
    })
    const headers: Record<string, string> = tenantId ? { 'x-tenant-id': tenantId } : {}
    const drive = (length: number, onSettled?: (at: number, ms: number) => void) =>
      openLoop({ port, method: 'GET', path: tenantId ? '/projects' : '/', headers: () => headers, rate, seconds: length, maxConnections: 64, onSettled })
    await drive(2) // warm-up: sockets, pool connections, optimised code

    const kdamonds = existsSync('/proc') ? readdirSync('/proc').filter((pid) => /^\d+$/.test(pid) && safeRead(`/proc/${pid}/comm`).startsWith('kdamond')) : []
    const ticks = () => kdamonds.reduce((sum, pid) => {
      const stat = safeRead(`/proc/${pid}/stat`)
      const fields = stat.slice(stat.lastIndexOf(') ') + 2).split(' ') // after "pid (comm) ": field 3 onwards
      return sum + Number(fields[11] ?? 0) + Number(fields[12] ?? 0) // utime + stime (fields 14, 15)
    }, 0)
    const kdamondAt: number[] = []
    let last = ticks()
    sampler = setInterval(() => { const now = ticks(); if (now !== last) kdamondAt.push(performance.now()); last = now }, 5)
    const slow: number[] = []
    let requests = 0
    const t0 = performance.now()
    const result = await drive(seconds, (at, ms) => { requests++; if (ms > 10) slow.push(at) })
    clearInterval(sampler)

    slow.sort((a, b) => a - b)
    const stalls = slow.filter((at, i) => i === 0 || at - slow[i - 1]! > 20)
    const nearKdamond = stalls.filter((at) => kdamondAt.some((k) => Math.abs(k - at) <= WINDOW_MS)).length
    // The share of the run within ±WINDOW_MS of a kdamond sample (the union of the windows).
    let covered = 0
    let coveredTo = -Infinity
    for (const k of kdamondAt) {
      const from = Math.max(k - WINDOW_MS, coveredTo)
      if (k + WINDOW_MS > from) covered += k + WINDOW_MS - from
      coveredTo = Math.max(coveredTo, k + WINDOW_MS)
    }
    const chance = Math.min(1, covered / (seconds * 1000)) * stalls.length
    const failures = result.non2xx + result.errors + result.timeouts
    console.log(`${rate} req/s for ${seconds} s to ${tenantId ? `the plain \`pg\` server (bench/baseline-server.ts), the 20 newest projects of ${tenantSlug} per request` : 'a server that only answers'}`)
    if (failures) console.log(`WARN ${failures} requests failed (non-2xx ${result.non2xx}, errors ${result.errors}, timeouts ${result.timeouts}): the figures below are not the server's`)
    console.log(`requests over 10 ms: ${slow.length} of ${requests} (${(100 * slow.length / requests).toFixed(2)} %); p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms, max ${result.latency.max} ms; generator lag p99 ${result.generatorLag?.p99.toFixed(1)} ms`)
    console.log(`stalls: ${stalls.length}, at (s) ${stalls.map((at) => ((at - t0) / 1000).toFixed(2)).join(' ') || '-'}`)
    console.log(kdamonds.length
      ? `kdamond's CPU time grew in ${kdamondAt.length} samples; ${nearKdamond} of ${stalls.length} stalls began within ${WINDOW_MS} ms of one (by chance: ${chance.toFixed(1)})`
      : 'no kdamond thread visible (none on this kernel, or a container that hides the host\'s threads)')
  } finally {
    clearInterval(sampler)
    server.kill()
  }
}

/**
 * The id (UUID) of the tenant with this slug: the baseline server is told its tenant by id.
 * @throws Error when no tenant has the slug, or what pg throws when the database cannot be reached.
 */
async function tenantIdOf (databaseUrl: string, slug: string): Promise<string> {
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  try {
    const { rows } = await client.query<{ id: string }>('SELECT id FROM tenants WHERE slug = $1', [slug])
    if (!rows[0]) throw new Error(`no tenant ${slug} in STALL_DATABASE_URL's database (seed it with npm run bench first)`)
    return rows[0].id
  } finally {
    await client.end()
  }
}

function safeRead (file: string): string {
  try { return readFileSync(file, 'utf8') } catch { return '' }
}
