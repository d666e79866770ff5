// Builds the application: plugins in dependency order, then the routes. It does not listen and
// does not open the database: server.ts and the tests do both, then hand the database in.
import { randomUUID } from 'node:crypto'
import { registerAjvFormats, TypeBoxValidatorCompiler, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { type FastifyServerOptions } from 'fastify'
import authPlugin from '../plugins/auth.ts'
import configPlugin from '../plugins/config.ts'
import databasePlugin from '../plugins/database.ts'
import docsPlugin from '../plugins/docs.ts'
import errorHandler, { frameworkError } from '../plugins/error-handler.ts'
import securityPlugin from '../plugins/security.ts'
import tenantPlugin from '../plugins/tenant.ts'
import requestLogPlugin from '../plugins/request-log.ts'
import routes from '../routes/index.ts'
import type { Config } from './config.ts'
import type { Database } from './db/database.ts'
import { logRedactPaths } from './log.ts'

export interface BuildAppOptions {
  config: Config
  database: Database
  /** Close the database when the app closes (default true). */
  closeDatabase?: boolean
  /** Overrides the logger entirely. */
  logger?: FastifyServerOptions['logger']
  /** Where the app's own logger (its level and redaction) writes; stdout by default (tests search it). */
  logStream?: NonNullable<FastifyServerOptions['logger'] & object>['stream']
}

registerAjvFormats() // email, uuid, date-time… for TypeBox's validator

export async function buildApp({ config, database, closeDatabase = true, logger, logStream }: BuildAppOptions) {
  const app = Fastify({
    logger: logger ?? { level: config.LOG_LEVEL, redact: { paths: logRedactPaths, censor: '[redacted]' }, ...(logStream ? { stream: logStream } : {}) },
    genReqId: () => randomUUID(),
    bodyLimit: config.BODY_LIMIT,
    trustProxy: config.TRUST_PROXY,
    // Node answers a request without Host with a bare 400 unless told not to: we answer it ourselves
    // in the contract's JSON shape (plugins/tenant.ts).
    http: { requireHostHeader: false },
    routerOptions: { ignoreTrailingSlash: false, maxParamLength: 200 },
    // The router's own errors (bad percent-encoding, over-long parameter) in the contract's shape.
    frameworkErrors: frameworkError,
  }).withTypeProvider<TypeBoxTypeProvider>()
  // TypeBox's compiler: fastify's default Ajv would coerce body types and silently drop unknown
  // properties, both of which the contract forbids.
  app.setValidatorCompiler(TypeBoxValidatorCompiler)

  await app.register(configPlugin, { config })
  await app.register(errorHandler)
  await app.register(requestLogPlugin)
  await app.register(securityPlugin)
  await app.register(databasePlugin, { database, closeWithApp: closeDatabase })
  await app.register(tenantPlugin)
  await app.register(authPlugin)
  await app.register(docsPlugin) // before the routes: it collects them as they are added
  await app.register(routes)
  return app
}

export type App = Awaited<ReturnType<typeof buildApp>>
