// Benchmark control for target 7: the authenticated list's Prisma query (scoped client, RLS per the
// RLS env, the route's own page arguments and select: routes/projects.ts) on a minimal Fastify
// route WITHOUT the tenant and auth plugins (no Host resolution, no JWT verification). The tenant is
// named by the X-Tenant-Id header. Started by bench/run.ts with the same environment as the API
// (DATABASE_URL, RLS, DB_POOL_MAX…).
import Fastify from 'fastify'
import { loadConfig } from '../src/config.ts'
import { createDatabase, usePreparedStatements } from '../src/db/database.ts'
import { projectFields } from '../routes/projects.ts'
import { listPage } from './list-query.ts'

const config = loadConfig()
if (!config.DATABASE_URL) throw new Error('DATABASE_URL is required')
// Named prepared statements as the API decides them (DB_PREPARED_STATEMENTS).
const preparedStatements = await usePreparedStatements(config, config.APP_DATABASE_URL ?? config.DATABASE_URL)
const database = createDatabase(config, config.DATABASE_URL, undefined, { preparedStatements })

const app = Fastify({ logger: false })
app.get('/healthz', async () => ({ status: 'ok' }))
app.get('/projects', async (request, reply) => {
  const tenantId = request.headers['x-tenant-id']
  if (typeof tenantId !== 'string') return reply.code(400).send({ error: 'X-Tenant-Id is required' })
  return listPage(database, tenantId, projectFields) // the route's answer: LIST_LIMIT rows and the next cursor
})

const close = async () => {
  await app.close()
  await database.close()
  process.exit(0)
}
process.once('SIGTERM', close)
process.once('SIGINT', close)
await app.listen({ host: '127.0.0.1', port: config.PORT })
