// Every route of the API. Tenant routes exist only on tenant hosts and platform routes only on the
// platform host: asked for on the other kind of host, they are unknown routes (404 NOT_FOUND).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import apiKeyRoutes from './api-keys.ts'
import authRoutes from './auth.ts'
import healthRoutes from './health.ts'
import jwksRoutes from './jwks.ts'
import meRoutes from './me.ts'
import adminRoutes from './platform/admin.ts'
import signupRoutes from './platform/signup.ts'
import projectRoutes from './projects.ts'
import taskRoutes from './tasks.ts'
import tenantRoutes from './tenant.ts'
import userRoutes from './users.ts'

async function onlyOnTenantHosts(request: FastifyRequest, reply: FastifyReply) {
  if (!request.tenant) return reply.callNotFound()
}

async function onlyOnPlatformHost(request: FastifyRequest, reply: FastifyReply) {
  if (request.tenant) return reply.callNotFound()
}

export default async function routes(app: FastifyInstance) {
  await app.register(healthRoutes)
  await app.register(jwksRoutes)

  await app.register(async function tenantHostRoutes(tenantApp) {
    tenantApp.addHook('onRequest', onlyOnTenantHosts)
    // Registered by their own modules: auth, me, tenant, users, projects (with tasks).
    await tenantApp.register(authRoutes)
    await tenantApp.register(meRoutes)
    await tenantApp.register(tenantRoutes)
    await tenantApp.register(userRoutes)
    await tenantApp.register(projectRoutes)
    await tenantApp.register(taskRoutes)
    await tenantApp.register(apiKeyRoutes)
    await tenantApp.register(import('./web.ts')) // the tenant web page: GET /, /app.js, /app.css
  })

  await app.register(async function platformHostRoutes(platformApp) {
    platformApp.addHook('onRequest', onlyOnPlatformHost)
    // Registered by their own modules: signup, admin.
    await platformApp.register(signupRoutes)
    await platformApp.register(adminRoutes)
  })
}
