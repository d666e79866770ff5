// The public keys access tokens are verified with (RFC 7517), on every host, for other services.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { responses } from '../src/api/schemas.ts'

const jwksRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/.well-known/jwks.json', {
    config: { anyHost: true },
    schema: { tags: ['auth'], summary: 'Public keys of the access-token signers (JWKS)', response: responses({}) },
  }, async (_request, reply) => {
    // Short caching: a newly added key is announced before it starts signing only if verifiers refetch.
    reply.header('cache-control', 'public, max-age=300')
    return app.auth.keys.jwks()
  })
}

export default jwksRoutes
