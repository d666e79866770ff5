// Refusals that come before anything else looks at a request, in the contract's error shape:
// - while the server drains (SIGTERM), new requests on open keep-alive connections are 503 with
//   Retry-After (Fastify's own return503OnClosing writes a body of its own: turned off in app.ts),
//   and every answer sent meanwhile closes its connection;
// - an absolute-form request target (`GET http://b.example.com/x`) whose authority is not the Host
//   header. RFC 9112 §3.2.2 says the target's authority wins; we serve tenants by Host, so a
//   mismatch is refused rather than served as one tenant while logged as the other;
// - the asterisk-form target (`*`) with any method but OPTIONS.
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { RETRY_AFTER_SECONDS, sendError } from './error-handler.ts'

declare module 'fastify' {
  interface FastifyInstance {
    /** True once close() began: new requests are answered 503 while in-flight ones finish. */
    draining: boolean
  }
}

/** The authority of an absolute-form target (`http://host:port/path`), lower-cased; undefined for origin-form. */
export function absoluteFormAuthority (rawUrl: string): string | undefined {
  if (rawUrl.startsWith('/') || rawUrl === '*') return undefined
  const authority = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)/i.exec(rawUrl)?.[1] ?? ''
  return authority.replace(/^[^@]*@/, '').toLowerCase()
}

export default fp(
  async function requestGuards (app: FastifyInstance) {
    app.decorate('draining', false)
    app.addHook('preClose', async () => {
      app.draining = true
    })

    // A response sent while draining closes its connection: the client sends its next request on a
    // new one (to another instance, or this one's 503 if it got here first) instead of meeting the
    // 503 below on a connection kept alive.
    app.addHook('onSend', async (_request, reply) => {
      if (app.draining) reply.header('connection', 'close')
    })

    app.addHook('onRequest', async (request, reply) => {
      if (app.draining) {
        reply.header('connection', 'close')
        return sendError(reply, 'SERVICE_UNAVAILABLE', 'The server is restarting, retry later', { 'retry-after': RETRY_AFTER_SECONDS })
      }
      // The asterisk-form target is for OPTIONS alone (RFC 9112 §3.2.4); the router reads it as `/`,
      // and `GET *` got the tenant's page (review 59).
      if (request.raw.url === '*' && request.method !== 'OPTIONS') return sendError(reply, 'BAD_REQUEST', 'The request target * is for OPTIONS only')
      const authority = absoluteFormAuthority(request.raw.url ?? '/')
      if (authority !== undefined && authority !== (request.headers.host ?? '').toLowerCase()) {
        return sendError(reply, 'BAD_REQUEST', 'The request target names another host than the Host header')
      }
    })
  },
  { name: 'request-guards', dependencies: ['error-handler'] }
)
