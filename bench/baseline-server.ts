// Benchmark baseline: "the 20 newest projects of one tenant" with plain `pg` and a minimal Fastify
// route (the route's query, bench/list-query.ts: one row more fetched than answered) — no Prisma,
// no tenancy plugin, no auth, no RLS (connects as the tables' owner). The tenant is named by the
// X-Tenant-Id header so the runner can rotate tenants. Started by bench/run.ts and, forked with
// PORT=0, by bench/stall-probe.ts (it is then sent the port the system chose).
//   DATABASE_URL=postgres://… PORT=3312 tsx bench/baseline-server.ts
import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import pg from 'pg'
import { LIST_LIMIT, LIST_SQL } from './list-query.ts'

const url = process.env.DATABASE_URL
if (!url) throw new Error('DATABASE_URL is required')
const port = Number(process.env.PORT ?? 3312)
const pool = new pg.Pool({ connectionString: url, max: Number(process.env.DB_POOL_MAX ?? 20) })
pool.on('error', () => {})

const app = Fastify({ logger: false })
app.get('/healthz', async () => ({ status: 'ok' }))
// The fairness run's floor: what answering a request 429 at once costs, with nothing else to do.
app.get('/refused', async (_request, reply) => reply.code(429).header('retry-after', '1').send({ error: { code: 'RATE_LIMITED', message: 'Too many requests, retry later' } }))
app.get('/projects', async (request, reply) => {
  const tenantId = request.headers['x-tenant-id']
  if (typeof tenantId !== 'string') return reply.code(400).send({ error: 'X-Tenant-Id is required' })
  const { rows } = await pool.query({ name: 'list-projects', text: LIST_SQL, values: [tenantId] })
  return { data: rows.slice(0, LIST_LIMIT) } // as the route answers (without its cursor)
})

const close = async () => {
  await app.close()
  await pool.end()
  process.exit(0)
}
process.once('SIGTERM', close)
process.once('SIGINT', close)
await app.listen({ host: '127.0.0.1', port })
process.send?.((app.server.address() as AddressInfo).port)
