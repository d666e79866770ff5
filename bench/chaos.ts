// `npm run chaos`: the outage scenario against the compiled server (`npm run build` first; start:prod's
// node flags), under
// autocannon load for ~30 s, with the default bounds of src/config.ts:
//   0 s load starts · 5 s pg_terminate_backend of the API's connections · 7 s PostgreSQL stopped
//   (pg_ctl stop -m fast) · 17 s started again · 30 s load stops.
// Prints answers by status before/during/after the outage, the longest wait, the time from
// PostgreSQL accepting connections again to the first 2xx, whether the server survived, and the
// bytes it logged. Uses its own embedded PostgreSQL in .data/chaos-*, removed afterwards.
import autocannon from 'autocannon'
import { freePort, productionNodeFlags } from '../test/helper.ts'
import { OwnPostgres, prepareDatabase, serverEnv, signIn, sleep, startServer, TENANT_HOST } from '../test/resilience-harness.ts'

const DURATION_S = Number(process.env.CHAOS_DURATION_S ?? 30)
const CONNECTIONS = Number(process.env.CHAOS_CONNECTIONS ?? 16)
const TERMINATE_AT_MS = 5_000
const STOP_AT_MS = 7_000
const START_AT_MS = 17_000

const db = new OwnPostgres('chaos')
await db.start()
let server: Awaited<ReturnType<typeof startServer>> | undefined
try {
  await prepareDatabase(db.embedded.url)
  server = await startServer(serverEnv(await freePort(), db.embedded.url, { TENANT_RATE_LIMIT: '1000000' }) /* the outage, not the tenant's request limit */, { entry: [...productionNodeFlags(), 'dist/src/server.js'] })
  const token = await signIn(server.port)
  const startLogBytes = Buffer.byteLength(server.output())

  type Phase = 'before' | 'during' | 'after'
  const counts: Record<Phase, Map<string, number>> = { before: new Map(), during: new Map(), after: new Map() }
  const longest: Record<Phase, number> = { before: 0, during: 0, after: 0 }
  let stoppedAt = Infinity
  let backAt = Infinity
  let firstSuccessAfterBack: number | undefined
  let errors = 0
  const startedAt = Date.now()
  const phase = (at: number): Phase => (at < stoppedAt ? 'before' : at < backAt ? 'during' : 'after')

  const load = autocannon({
    url: `http://127.0.0.1:${server.port}/v1/projects`,
    connections: CONNECTIONS,
    duration: DURATION_S,
    timeout: 30,
    headers: { host: TENANT_HOST, authorization: `Bearer ${token}` },
  })
  load.on('response', (_client, statusCode, _bytes, responseTime) => {
    const now = Date.now()
    // The phase of the moment the request was sent (this process is busy too: an answer may be read late).
    const p = phase(now - responseTime)
    counts[p].set(String(statusCode), (counts[p].get(String(statusCode)) ?? 0) + 1)
    longest[p] = Math.max(longest[p], responseTime)
    if (p === 'after' && statusCode < 300 && firstSuccessAfterBack === undefined) firstSuccessAfterBack = now - backAt
  })
  load.on('reqError', () => { errors++ })

  let logBytesAtStop = 0
  let logBytesAtBack = 0
  const chaos = (async () => {
    await sleep(TERMINATE_AT_MS)
    const terminated = await db.terminateConnections()
    console.log(`${((Date.now() - startedAt) / 1000).toFixed(1)} s: pg_terminate_backend ended ${terminated} connections`)
    await sleep(STOP_AT_MS - (Date.now() - startedAt))
    logBytesAtStop = Buffer.byteLength(server!.output())
    await db.stop()
    stoppedAt = Date.now()
    console.log(`${((stoppedAt - startedAt) / 1000).toFixed(1)} s: PostgreSQL stopped`)
    await sleep(START_AT_MS - (Date.now() - startedAt))
    await db.start()
    backAt = Date.now()
    logBytesAtBack = Buffer.byteLength(server!.output())
    console.log(`${((backAt - startedAt) / 1000).toFixed(1)} s: PostgreSQL accepting connections again`)
  })()
  const result = await load
  await chaos
  const alive = server.child.exitCode === null
  const log = server.output()
  const totalLogBytes = Buffer.byteLength(log) - startLogBytes
  const outageLines = log.split('\n').filter((l) => /database (unreachable|reachable again)/.test(l))

  const show = (m: Map<string, number>) => [...m].sort().map(([s, n]) => `${s}×${n}`).join(' ') || '-'
  console.log(`\nchaos: ${CONNECTIONS} connections, ${DURATION_S} s, GET /v1/projects (compiled server, default bounds); outage ${((backAt - stoppedAt) / 1000).toFixed(1)} s`)
  console.log(`${'phase'.padEnd(34)}${'answers by status'.padEnd(28)}longest wait ms`)
  console.log(`${'before (terminate at 5 s)'.padEnd(34)}${show(counts.before).padEnd(28)}${Math.round(longest.before)}`)
  console.log(`${'during (PostgreSQL stopped)'.padEnd(34)}${show(counts.during).padEnd(28)}${Math.round(longest.during)}`)
  console.log(`${'after (PostgreSQL back)'.padEnd(34)}${show(counts.after).padEnd(28)}${Math.round(longest.after)}`)
  console.log(`connection errors/timeouts seen by the load generator: ${errors} / ${result.timeouts}`)
  console.log(`first 2xx after PostgreSQL accepted connections again: ${firstSuccessAfterBack ?? 'never'} ms`)
  console.log(`server process alive at the end: ${alive ? 'yes' : `NO (exit ${server.child.exitCode})`}`)
  console.log(`log written: ${totalLogBytes} bytes in ${DURATION_S} s (${logBytesAtBack - logBytesAtStop} bytes during the outage); outage lines:`)
  for (const line of outageLines) console.log(`  ${line.slice(0, 200)}`)
  if (!alive || firstSuccessAfterBack === undefined) process.exitCode = 1
} finally {
  if (server?.child.exitCode === null) {
    server.child.kill('SIGTERM')
    await server.exited
  }
  await db.destroy()
}
