// At LOG_LEVEL=debug (or trace) every request's headers and parsed body, and every answer's headers,
// are logged: what an operator tracing a problem needs and Fastify's request log leaves out. They
// carry credentials (Bearer tokens, cookies, passwords, API keys, CSRF tokens, Set-Cookie), so these
// records go through the logger's redaction (src/log.ts, applied by src/app.ts): raising the log
// level never writes a secret. test/auth-login.test.ts searches the real app's log for them.
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { writesAt } from '../src/log.ts'

export default fp(
  async function requestLogPlugin (app: FastifyInstance) {
    // Below debug these hooks would only cost time on every request: add them only when they write.
    if (!writesAt(app.log, 'debug')) return
    // Headers first, before anything can refuse the request (an unknown tenant, a missing token).
    app.addHook('onRequest', async (request) => {
      request.log.debug({ headers: request.headers }, 'request details')
    })
    // The body once parsed, so that even a body that fails validation is shown.
    app.addHook('preValidation', async (request) => {
      if (request.body !== undefined) request.log.debug({ body: request.body }, 'request body')
    })
    app.addHook('onResponse', async (request, reply) => {
      request.log.debug({ responseHeaders: reply.getHeaders() }, 'response details')
    })
  },
  { name: 'request-log', dependencies: ['config'] }
)
