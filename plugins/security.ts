// JSON-only request bodies, and CORS, which is off unless CORS_ORIGINS lists the origins allowed to
// call the API from a browser. Every answer's security headers are plugins/response-headers.ts'.
import cors from '@fastify/cors'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

export default fp(
  async function securityPlugin (app: FastifyInstance) {
    // JSON bodies only (415 otherwise). text/plain is one of the content types a cross-site form
    // may send without a CORS preflight: refusing it keeps such requests away from every route.
    app.removeContentTypeParser('text/plain')
    const origins = app.config.corsOrigins
    if (origins.length > 0) {
      await app.register(cors, {
        origin: origins, // exact matches only: never a reflection of whatever Origin was sent
        credentials: true, // the access cookie and the CSRF header are part of a browser session
        methods: ['GET', 'POST', 'PATCH', 'DELETE'],
        allowedHeaders: ['authorization', 'content-type', 'x-csrf-token'],
        exposedHeaders: ['retry-after', 'ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset', 'ratelimit-policy', 'x-request-id'],
        maxAge: 600,
      })
    }
  },
  { name: 'security', dependencies: ['config'] }
)
