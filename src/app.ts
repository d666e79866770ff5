// Builds the application: plugins in dependency order, then the routes. It does not listen and
// does not open the database: server.ts and the tests do both, then hand the database in.
import { randomUUID } from 'node:crypto'
import { registerAjvFormats, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { type FastifyServerOptions } from 'fastify'
import apiKeysPlugin from '../plugins/api-keys.ts'
import auditRetention from '../plugins/audit-retention.ts'
import authPlugin from '../plugins/auth.ts'
import configPlugin from '../plugins/config.ts'
import databasePlugin from '../plugins/database.ts'
import docsPlugin from '../plugins/docs.ts'
import jobsPlugin from '../plugins/jobs.ts'
import errorHandler, { clientErrorHandler, frameworkError, RequestLogController } from '../plugins/error-handler.ts'
import requestGuards from '../plugins/request-guards.ts'
import responseHeaders from '../plugins/response-headers.ts'
import securityPlugin from '../plugins/security.ts'
import tenancyInvariantsPlugin from '../plugins/tenancy-invariants.ts'
import tenantPlugin from '../plugins/tenant.ts'
import limitsPlugin from '../plugins/limits.ts'
import redisPlugin from '../plugins/redis.ts'
import invalidationPlugin from '../plugins/invalidation.ts'
import requestLogPlugin from '../plugins/request-log.ts'
import routes from '../routes/index.ts'
import { validatorCompiler } from './api/validator.ts'
import type { Config } from './config.ts'
import type { Database } from './db/database.ts'
import { loggerOptions } from './log.ts'
import { trustFunction } from './net/trusted-proxies.ts'

export interface BuildAppOptions {
  config: Config
  database: Database
  /** Close the database when the app closes (default true). */
  closeDatabase?: boolean
  /** Overrides the logger entirely. */
  logger?: FastifyServerOptions['logger']
  /** Serve HTTPS with this PEM certificate chain and key (TLS_CERT_FILE/TLS_KEY_FILE, read by server.ts). */
  https?: { cert: Buffer; key: Buffer }
  /** Where the app's own logger (its level and redaction) writes; stdout by default (tests search it). */
  logStream?: NonNullable<FastifyServerOptions['logger'] & object>['stream']
}

registerAjvFormats() // email, uuid, date-time… for TypeBox's validator

export async function buildApp ({ config, database, closeDatabase = true, logger, https, logStream }: BuildAppOptions) {
  const app = Fastify({
    // Native HTTPS (optional; TLS usually ends at the proxy). Typed as the HTTP server: the app's
    // code never touches the server object's TLS side, and one App type serves both.
    ...(https ? ({ https } as object) : {}),
    logger: logger ?? { ...loggerOptions(config), ...(logStream ? { stream: logStream } : {}) },
    genReqId: () => randomUUID(),
    bodyLimit: config.BODY_LIMIT,
    // Named proxies or a hop count only (src/net/trusted-proxies.ts): request.ip, which every
    // limiter and log line uses, is then the first untrusted hop from the right.
    trustProxy: trustFunction(config.trustProxy),
    // Node answers a request without Host with a bare 400 unless told not to: we answer it ourselves
    // in the contract's JSON shape (plugins/tenant.ts).
    // headersTimeout, and how often Node checks it and requestTimeout (default every 30 s).
    http: { requireHostHeader: false, headersTimeout: config.HTTP_HEADERS_TIMEOUT_MS, connectionsCheckingInterval: Math.min(1000, config.HTTP_HEADERS_TIMEOUT_MS) },
    requestTimeout: config.HTTP_REQUEST_TIMEOUT_MS,
    connectionTimeout: config.HTTP_CONNECTION_TIMEOUT_MS,
    keepAliveTimeout: config.HTTP_KEEP_ALIVE_TIMEOUT_MS,
    // The parser's refusals, and the drain-time 503 (plugins/request-guards.ts), in the contract's shape.
    clientErrorHandler,
    return503OnClosing: false,
    // One log line per request, written by plugins/error-handler.ts when the answer is sent (or cut).
    logController: new RequestLogController(),
    routerOptions: { ignoreTrailingSlash: false, maxParamLength: 200 },
    // The router's own errors (bad percent-encoding, over-long parameter) in the contract's shape.
    frameworkErrors: frameworkError,
  }).withTypeProvider<TypeBoxTypeProvider>()
  // TypeBox's compiler, query-string numbers held to their text (src/api/validator.ts).
  app.setValidatorCompiler(validatorCompiler)

  await app.register(configPlugin, { config })
  await app.register(errorHandler)
  await app.register(responseHeaders) // before any refusal: every answer carries them
  await app.register(requestGuards)
  await app.register(requestLogPlugin)
  await app.register(securityPlugin)
  await app.register(databasePlugin, { database, closeWithApp: closeDatabase })
  await app.register(tenancyInvariantsPlugin) // production: no service while the schema breaks a tenancy rule
  await app.register(tenantPlugin)
  await app.register(redisPlugin)
  await app.register(limitsPlugin)
  await app.register(authPlugin)
  await app.register(apiKeysPlugin) // API keys and tenant request limits (after auth: it shares its rate-limit store)
  await app.register(invalidationPlugin)
  await app.register(auditRetention)
  await app.register(jobsPlugin) // background jobs and email (after database and limits: jobs need both)
  await app.register(docsPlugin) // before the routes: it collects them as they are added
  await app.register(routes)
  return app
}

export type App = Awaited<ReturnType<typeof buildApp>>
