// At LOG_LEVEL=debug (or trace) every request's headers and parsed body, and every answer's headers,
// are logged: what an operator tracing a problem needs and Fastify's request log leaves out. They
// carry credentials (Bearer tokens, cookies, passwords, API keys, CSRF tokens, Set-Cookie), so these
// records go through the logger's redaction (src/log.ts, applied by src/app.ts): raising the log
// level never writes a secret. test/auth-login.test.ts searches the real app's log for them.
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

export default fp(
  async function requestLogPlugin(app: FastifyInstance) {
    // preValidation: the body is parsed, and even a request that fails validation is shown.
    app.addHook('preValidation', async (request) => {
      request.log.debug({ headers: request.headers, body: request.body }, 'request details')
    })
    app.addHook('onResponse', async (request, reply) => {
      request.log.debug({ responseHeaders: reply.getHeaders() }, 'response details')
    })
  },
  { name: 'request-log', dependencies: ['config'] },
)
