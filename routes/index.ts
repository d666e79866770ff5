// Every route of the API. Tenant routes exist only on tenant hosts and platform routes only on the
// platform host: asked for on the other kind of host, they are unknown routes (404 NOT_FOUND).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import healthRoutes from './health.ts'

async function onlyOnTenantHosts(request: FastifyRequest, reply: FastifyReply) {
  if (!request.tenant) return reply.callNotFound()
}

async function onlyOnPlatformHost(request: FastifyRequest, reply: FastifyReply) {
  if (request.tenant) return reply.callNotFound()
}

export default async function routes(app: FastifyInstance) {
  await app.register(healthRoutes)

  await app.register(async function tenantHostRoutes(tenantApp) {
    tenantApp.addHook('onRequest', onlyOnTenantHosts)
    // Registered by their own modules: auth, me, tenant, users, projects (with tasks).
  })

  await app.register(async function platformHostRoutes(platformApp) {
    platformApp.addHook('onRequest', onlyOnPlatformHost)
    // Registered by their own modules: signup, admin.
  })
}
