// Liveness and readiness, on every host (tenant or not), for load balancers and orchestrators.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { responses } from '../src/api/schemas.ts'
import { AppError } from '../src/errors.ts'

const Status = Type.Object({ status: Type.String() })

const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/healthz', {
    config: { anyHost: true },
    schema: { tags: ['health'], summary: 'The process is alive', response: responses({ 200: Status }) },
  }, async () => ({ status: 'ok' }))

  app.get('/readyz', {
    config: { anyHost: true },
    schema: { tags: ['health'], summary: 'The database answers (503 while it does not)', response: responses({ 200: Status }) },
  }, async () => {
    if (!(await app.database.ping())) throw new AppError('SERVICE_UNAVAILABLE', 'The database is unreachable', { 'retry-after': '5' })
    return { status: 'ready' }
  })
}

export default healthRoutes
