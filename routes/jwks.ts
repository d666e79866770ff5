// The public keys access tokens are verified with (RFC 7517), on every host, for other services.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { responses } from '../src/api/schemas.ts'

/** RFC 7517 §5: a JWK Set; each key's members are passed through as they are. */
const Jwks = Type.Object({ keys: Type.Array(Type.Object({}, { additionalProperties: true })) })

const jwksRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/.well-known/jwks.json', {
    config: { anyHost: true },
    schema: { tags: ['auth'], summary: 'Public keys of the access-token signers (JWKS)', response: responses({ 200: Jwks }) },
  }, async (_request, reply) => {
    // Short caching: a newly added key is announced before it starts signing only if verifiers refetch.
    reply.header('cache-control', 'public, max-age=300')
    return app.auth.keys.jwks()
  })
}

export default jwksRoutes
