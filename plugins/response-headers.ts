// The headers every answer carries, set before anything may refuse a request (src/app.ts registers
// this plugin first after the error handler): helmet's defaults (Content-Security-Policy, Strict-
// Transport-Security, X-Content-Type-Options and the rest: OWASP HTTP Headers Cheat Sheet),
// `Cache-Control: no-store` unless the route sets its own (API answers carry tokens and tenant data:
// no shared or browser cache may keep them), and `X-Request-Id` — the id the log lines and the audit
// event of the request carry (`requestId`), so a client can find the event of its own change.
// The answers Fastify sends without running hooks (a malformed URL, the HTTP parser's refusals:
// plugins/error-handler.ts) carry the same.
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FastifyInstance, FastifyReply } from 'fastify'
import fp from 'fastify-plugin'
import helmet from 'helmet'

/**
 * The headers helmet's middleware sets with its defaults, recorded once on a stand-in response, as
 * `{ lower-case name: value }`. The defaults have no per-request directive (a CSP nonce would be
 * one), so the headers are the same on every answer and are set with the reply's own instead of
 * running the middleware per request (bench/HISTORY.md, round twelve). helmet also removes
 * X-Powered-By, which neither Node nor Fastify sets.
 */
export function helmetDefaultHeaders (): Record<string, string> {
  const headers: Record<string, string> = {}
  const recorder = { setHeader (name: string, value: unknown) { headers[name.toLowerCase()] = String(value) }, removeHeader () {} }
  helmet()({} as IncomingMessage, recorder as unknown as ServerResponse, () => {})
  return headers
}

/** Every answer's fixed headers (`{ lower-case name: value }`); a route may replace cache-control. */
export const FIXED_HEADERS: Readonly<Record<string, string>> = Object.freeze({ ...helmetDefaultHeaders(), 'cache-control': 'no-store' })

/** FIXED_HEADERS as raw HTTP/1.1 header lines (`name: value\r\n` each), for answers written on the socket itself. */
export const FIXED_HEADER_LINES = Object.entries(FIXED_HEADERS).map(([name, value]) => `${name}: ${value}\r\n`).join('')

/** Sets FIXED_HEADERS and `X-Request-Id` (the request's id) on `reply`. */
export function setFixedHeaders (reply: FastifyReply): FastifyReply {
  return reply.headers(FIXED_HEADERS).header('x-request-id', reply.request.id)
}

export default fp(
  async function responseHeaders (app: FastifyInstance) {
    app.addHook('onRequest', (_request, reply, done) => {
      setFixedHeaders(reply)
      done()
    })
  },
  { name: 'response-headers' }
)
