// The process entry point: configuration, database, app, listen; and a graceful exit on SIGTERM or
// SIGINT: stop accepting, answer new requests on open connections 503 (plugins/request-guards.ts),
// let in-flight requests finish for up to SHUTDOWN_GRACE_MS, then cut what remains; the pool and
// the embedded PostgreSQL are closed in every case. Background jobs stop fetching as the drain begins
// and running ones finish within JOB_SHUTDOWN_TIMEOUT_MS or are handed back (plugins/jobs.ts).
//
// Exit codes: 0 drained cleanly; 1 could not start, or a fatal error; 2 the grace period expired
// (connections were cut, the database was still closed).
import pino, { type Logger } from 'pino'
import { buildApp, type App } from './app.ts'
import { closeOnSignal } from './close-on-signal.ts'
import { loadConfig, startupWarnings, type Config } from './config.ts'
import { openDatabase, type Database } from './db/database.ts'
import { seedDemoOnce } from '../prisma/seed-data.ts'
import { loadEnvFileIfPresent } from './env-file.ts'
import { fallbackLogConfig, loggerOptions, reportFailedStart } from './log.ts'
import { readTlsFiles } from './net/tls-files.ts'

export const EXIT_GRACE_EXPIRED = 2

/** The log of what happens before the app exists, a failed start included: the app's format (src/log.ts). */
let startLog: Logger | undefined

async function main () {
  const startedAt = Date.now()
  loadEnvFileIfPresent()
  const config = loadConfig()
  startLog = pino(loggerOptions(config))
  await start(config, startLog, startedAt)
}

async function start (config: Config, log: Logger, startedAt: number) {
  const database = await openDatabase(config, { log: (message, level = 'info') => log[level](`[database] ${message}`) })
  let app: App | undefined
  try {
    // Development convenience: the embedded database starts with the demo tenants (acme, globex).
    if (config.embeddedDatabase && !config.isProduction) await seedDemoOnce(database.ownerUrl, config.BCRYPT_COST, config.BASE_DOMAIN, console.log)
    // Native HTTPS when both files are given (src/config.ts refuses one without the other).
    const https = config.TLS_CERT_FILE && config.TLS_KEY_FILE ? await readTlsFiles(config.TLS_CERT_FILE, config.TLS_KEY_FILE) : undefined
    app = await buildApp({ config, database, https })
    logAvailability(app, database)
    await app.listen({ host: config.HOST, port: config.PORT })
  } catch (error) {
    // A start that fails (port in use, bad key…) must not leave the embedded PostgreSQL running.
    await (app ? app.close() : database.close()).catch(() => {})
    await database.close().catch(() => {})
    throw error
  }
  drainOnSignal(app, database, config.SHUTDOWN_GRACE_MS)
  app.log.info({ ms: Date.now() - startedAt }, `ready: ${config.TLS_CERT_FILE ? 'https' : 'http'}://${config.BASE_DOMAIN}:${config.PORT}`)
  for (const warning of startupWarnings(config)) app.log.warn(warning)
}

/** One line when the database goes away, one when it is back (per-request lines stay short). */
function logAvailability (app: App, database: Database) {
  database.availability.onChange(({ available, reason, afterMs }) => {
    if (available) app.log.warn({ downMs: afterMs }, 'database reachable again: serving requests')
    else app.log.error({ reason }, 'database unreachable: requests that need it answer 503 until it returns')
  })
}

function drainOnSignal (app: App, database: Database, graceMs: number) {
  // close-with-grace's own delay is only a backstop (it cannot wait for async clean-up): the grace
  // period is enforced below, where the database can still be closed after it.
  closeOnSignal({ delayMs: graceMs + 10_000, log: app.log }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'closing after a fatal error')
    else app.log.info({ signal, graceMs }, 'shutting down: finishing in-flight requests')
    let timer: NodeJS.Timeout | undefined
    const outcome = await Promise.race([
      app.close().then(() => 'drained' as const),
      new Promise<'late'>((resolve) => { timer = setTimeout(() => resolve('late'), graceMs) }),
    ])
    clearTimeout(timer)
    if (outcome === 'late') {
      app.log.error({ graceMs }, 'grace period expired: cutting the remaining connections')
      app.server.closeAllConnections()
      await database.close()
      app.log.warn('stopped after the grace period: database closed')
      process.exit(EXIT_GRACE_EXPIRED)
    }
    app.log.info('stopped: in-flight requests finished, database closed')
  })
}

main().catch((error: unknown) => {
  // An alert rule on level >= 50 sees a server that could not start, even for want of a configuration.
  reportFailedStart(startLog ?? pino(loggerOptions(fallbackLogConfig())), error)
  process.exit(1)
})
