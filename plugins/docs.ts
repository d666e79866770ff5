// The OpenAPI 3.1 document, generated from the TypeBox schemas the routes validate and serialize
// with (so it cannot drift from the behaviour), and its UI: GET /docs (UI), /docs/json, /docs/yaml.
// Served on every host, platform or tenant: it describes both kinds (tags say which), holds no
// tenant data, and a tenant's developers find it on their own host.
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { authCookies } from '../src/auth/cookies.ts'
import { KEY_PREFIX } from '../src/auth/api-keys.ts'
import { SCOPES, type Action, type Scope } from '../src/auth/permissions.ts'

export const DOCS_PREFIX = '/docs'

export default fp(
  async function docsPlugin (app: FastifyInstance) {
    // Each route that API keys may use names the scopes that grant its action (OpenAPI 3.1 allows
    // scope lists on any security scheme). Read from the route's requirePermission, so it cannot drift.
    app.addHook('onRoute', (route) => {
      const action = route.config?.permission
      const schema = route.schema as { security?: Array<Record<string, string[]>> } | undefined
      if (!action || !schema?.security) return
      const scopes = (Object.keys(SCOPES) as Scope[]).filter((scope) => (SCOPES[scope] as readonly Action[]).includes(action))
      // Idempotent: the HEAD route Fastify adds for a GET shares its schema object.
      if (scopes.length) schema.security = [...schema.security.filter((entry) => !('apiKeyAuth' in entry)), { apiKeyAuth: scopes }]
    })
    // Registered before the routes: it collects each route as it is added.
    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: {
          title: 'Tenant API',
          version: '1',
          description: 'Multi-tenant SaaS API. Tenant routes answer on `<slug>.<BASE_DOMAIN>` (or a verified custom domain); ' +
            'platform routes (signup, platform admin) on `<BASE_DOMAIN>`. Every error has the shape `{"error":{"code","message","requestId"}}`.',
        },
        tags: [
          { name: 'auth', description: 'Tenant hosts' },
          { name: 'me', description: 'Tenant hosts' },
          { name: 'tenant', description: 'Tenant hosts' },
          { name: 'users', description: 'Tenant hosts; admins and owners' },
          { name: 'projects', description: 'Tenant hosts' },
          { name: 'tasks', description: 'Tenant hosts' },
          { name: 'invitations', description: 'Tenant hosts; admins and owners (accept: anyone with the link)' },
          { name: 'api keys', description: 'Tenant hosts; admins and owners' },
          { name: 'audit', description: 'Tenant hosts; admins (list) and owners (export, verify)' },
          { name: 'signup', description: 'Platform host' },
          { name: 'platform admin', description: 'Platform host; PLATFORM_ADMIN_TOKEN' },
          { name: 'health', description: 'Every host' },
        ],
        components: {
          securitySchemes: {
            bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'The accessToken of POST /v1/auth/login' },
            cookieAuth: { type: 'apiKey', in: 'cookie', name: authCookies(app.config).names.access, description: 'Set by login; unsafe methods also need X-CSRF-Token' },
            platformAdminToken: { type: 'http', scheme: 'bearer', description: 'PLATFORM_ADMIN_TOKEN' },
            apiKeyAuth: {
              type: 'http',
              scheme: 'bearer',
              bearerFormat: `${KEY_PREFIX}…`,
              description: 'A tenant API key (POST /v1/api-keys) as `Authorization: Bearer <key>`, on its tenant\'s host only. ' +
                'A route lists the scopes that let a key call it; a route without apiKeyAuth refuses keys (403).',
            },
          },
        },
      },
    })
    await app.register(async function docsRoutes (docs) {
      // The UI's routes skip tenant resolution (plugins/tenant.ts): the docs answer on every host.
      docs.addHook('onRoute', (route) => {
        route.config = { ...route.config, anyHost: true }
      })
      await docs.register(swaggerUi, { routePrefix: DOCS_PREFIX, staticCSP: true })
    })
  },
  { name: 'docs', dependencies: ['config'] }
)
