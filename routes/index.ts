// Every route of the API. Tenant routes exist only on tenant hosts and platform routes only on the
// platform host: asked for on the other kind of host, they are unknown routes (404 NOT_FOUND).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { parseJsonBodies } from '../src/api/json-body.ts'
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
