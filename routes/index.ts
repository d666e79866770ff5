// Every route of the API. Tenant routes exist only on tenant hosts and platform routes only on the
// platform host: asked for on the other kind of host, they are unknown routes (404 NOT_FOUND).
import { parse as parseContentType } from 'content-type'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { NoQuery } from '../src/api/schemas.ts'
import { AppError } from '../src/errors.ts'
import apiKeyRoutes from './api-keys.ts'
import auditRoutes from './audit-events.ts'
import authRoutes, { signOutRoutes } from './auth.ts'
import healthRoutes from './health.ts'
import invitationRoutes, { invitationAcceptRoutes } from './invitations.ts'
import jwksRoutes from './jwks.ts'
import meRoutes from './me.ts'
import passwordResetRoutes from './password-reset.ts'
import adminRoutes from './platform/admin.ts'
import signupRoutes from './platform/signup.ts'
import projectRoutes from './projects.ts'
import taskRoutes from './tasks.ts'
import tenantRoutes from './tenant.ts'
import userRoutes from './users.ts'

async function onlyOnTenantHosts (request: FastifyRequest, reply: FastifyReply) {
  if (!request.tenant) return reply.callNotFound()
}

async function onlyOnPlatformHost (request: FastifyRequest, reply: FastifyReply) {
  if (request.tenant) return reply.callNotFound()
}

/** A `\uD800`–`\uDFFF` escape in JSON text: the only way a body can carry an unpaired surrogate. */
const SURROGATE_ESCAPE = /\\u[dD][89a-fA-F]/

/** Whether a parsed JSON value holds a string or key with an unpaired UTF-16 surrogate. Iterative: a
 * body may nest deeper than the call stack. */
function holdsUnpairedSurrogate (value: unknown): boolean {
  const pending: unknown[] = [value]
  while (pending.length > 0) {
    const next = pending.pop()
    if (typeof next === 'string') {
      if (!next.isWellFormed()) return true
    } else if (Array.isArray(next)) {
      for (const item of next) pending.push(item)
    } else if (next !== null && typeof next === 'object') {
      for (const [key, field] of Object.entries(next)) {
        if (!key.isWellFormed()) return true
        pending.push(field)
      }
    }
  }
  return false
}

/**
 * The JSON body parser of every route of `app`:
 * - an empty body is no body, even with a JSON content type (what a browser's fetch with default
 *   JSON headers sends to refresh or logout, and what some HTTP clients send with every DELETE); a
 *   route that needs a body then answers its validation error (`400 VALIDATION_FAILED`, "body must
 *   be object");
 * - a body holding an unpaired surrogate (`"\ud800"`: valid JSON, RFC 8259 §8.2, but no Unicode
 *   text) is `400 VALIDATION_FAILED`, whatever the route: PostgreSQL's jsonb refuses it, while in a text column
 *   the driver's UTF-8 encoding would store U+FFFD in its place, so without this one route's answer would
 *   depend on whether its value also went into an audit event (review, round fifteen). The value is
 *   walked only when the text holds such an escape;
 * - JSON is UTF-8 (RFC 8259 §8.1), and a body is refused rather than stored altered: a `charset`
 *   other than UTF-8 is `415 UNSUPPORTED_MEDIA_TYPE`, and so is a `Content-Encoding` other than
 *   `identity` (RFC 9110 §8.4.1: nothing here decodes gzip or the like); bytes that are not UTF-8 are
 *   `400 VALIDATION_FAILED` — decoded leniently, a Latin-1 client's "café" was stored as "caf\uFFFD"
 *   with a 201 (review, round sixteen). A byte order mark is ignored, as RFC 8259 allows;
 * - anything else parses as Fastify's own parser does (prototype poisoning refused).
 */
function parseJsonBodies (app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error')
  const utf8 = new TextDecoder('utf-8', { fatal: true })
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    const bytes = body as Buffer
    if (bytes.length === 0) return done(null, undefined)
    const refusal = unreadableBody(request)
    if (refusal) return done(refusal, undefined)
    let text: string
    try {
      text = utf8.decode(bytes)
    } catch {
      return done(new AppError('VALIDATION_FAILED', 'body is not valid UTF-8 (JSON is UTF-8: RFC 8259 §8.1)'), undefined)
    }
    if (!SURROGATE_ESCAPE.test(text)) return parseJson(request, text, done)
    return parseJson(request, text, (error, value) => {
      if (error) return done(error, undefined)
      if (holdsUnpairedSurrogate(value)) return done(new AppError('VALIDATION_FAILED', 'body holds an unpaired Unicode surrogate (a \\uD800–\\uDFFF escape without its pair)'), undefined)
      return done(null, value)
    })
  })
}

/** 415 for a JSON body this API would misread: a charset other than UTF-8, or a content coding. */
function unreadableBody (request: FastifyRequest): AppError | undefined {
  const coding = request.headers['content-encoding']?.trim().toLowerCase()
  if (coding && coding !== 'identity') {
    return new AppError('UNSUPPORTED_MEDIA_TYPE', `Content-Encoding ${coding.slice(0, 40)} is not accepted: send the body without a content coding`)
  }
  // Fastify matched the media type already; content-type's parse is lenient (it never throws).
  const charset = parseContentType(request.headers['content-type'] ?? '').parameters.charset?.toLowerCase()
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
    return new AppError('UNSUPPORTED_MEDIA_TYPE', `charset=${charset.slice(0, 40)} is not accepted: JSON bodies are UTF-8 (RFC 8259 §8.1)`)
  }
}

/**
 * preValidation of a route that takes no body (DELETE, logout): no body or an empty JSON object
 * passes; anything else is a 400 naming what is not taken, as a body schema would, so a client's
 * `{"confirm": false}` on DELETE is refused rather than ignored.
 */
async function refuseBody (request: FastifyRequest): Promise<void> {
  const body: unknown = request.body
  if (body === undefined || body === null) return
  if (typeof body !== 'object' || Array.isArray(body)) throw new AppError('VALIDATION_FAILED', 'body is not accepted: this route takes none')
  const [field] = Object.keys(body)
  if (field !== undefined) throw new AppError('VALIDATION_FAILED', `body/${field.slice(0, 100)} is not a known field`)
}

const TAKES_BODY = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

export default async function routes (app: FastifyInstance) {
  parseJsonBodies(app)
  // Query strings are strict everywhere, not only on the lists: a parameter a route does not take is
  // a 400, so `GET /v1/audit-events/export?action=…` cannot answer the whole log as if it filtered.
  // Bodies likewise: a route that takes none refuses one that says something.
  app.addHook('onRoute', (route) => {
    if (!route.url.startsWith('/v1/') || !route.schema) return
    if (!route.schema.querystring) route.schema = { ...route.schema, querystring: NoQuery }
    const methods = Array.isArray(route.method) ? route.method : [route.method]
    if (!route.schema.body && methods.some((method) => TAKES_BODY.has(method))) {
      route.preValidation = [...[route.preValidation ?? []].flat(), refuseBody]
    }
  })
  await app.register(healthRoutes)
  await app.register(jwksRoutes)

  await app.register(async function tenantHostRoutes (tenantApp) {
    tenantApp.addHook('onRequest', onlyOnTenantHosts)
    // Public on tenant hosts: sign-in (login, refresh; logout authenticates itself), the links of
    // emails (accept an invitation, reset a password: each can be turned off) and the web page.
    await tenantApp.register(authRoutes)
    if (tenantApp.config.INVITATIONS_ENABLED) await tenantApp.register(invitationAcceptRoutes)
    if (tenantApp.config.PASSWORD_RESET_ENABLED) await tenantApp.register(passwordResetRoutes)
    await tenantApp.register(import('./web.ts')) // the tenant web page: GET /, /app.js, /app.css

    // Everything else needs a signed-in caller. One scope, one hook, so every route refuses in the
    // same order: 401 (no or bad credential, in onRequest) before 403 (permission, in the route's
    // onRequest) before 400 (validation, after the body is read). test/route-order.test.ts walks the
    // OpenAPI document to prove it for every route.
    await tenantApp.register(async function authenticatedRoutes (signedInApp) {
      signedInApp.addHook('onRequest', app.authenticate)
      await signedInApp.register(signOutRoutes)
      await signedInApp.register(meRoutes)
      await signedInApp.register(tenantRoutes)
      await signedInApp.register(userRoutes)
      await signedInApp.register(projectRoutes)
      await signedInApp.register(taskRoutes)
      await signedInApp.register(apiKeyRoutes)
      await signedInApp.register(auditRoutes)
      if (signedInApp.config.INVITATIONS_ENABLED) await signedInApp.register(invitationRoutes)
    })
  })

  await app.register(async function platformHostRoutes (platformApp) {
    platformApp.addHook('onRequest', onlyOnPlatformHost)
    // Registered by their own modules: signup, admin.
    await platformApp.register(signupRoutes)
    await platformApp.register(adminRoutes)
  })
}
