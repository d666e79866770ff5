// `npm run worker`: runs the background jobs without an HTTP server, for deployments that split
// the API and the workers (set JOBS_WORKER=false on the API instances then). Same configuration
// as the server. SIGTERM/SIGINT: stop fetching, let running jobs finish (JOB_SHUTDOWN_TIMEOUT_MS;
// jobs still running are handed back for a retry), close, exit 0.
//
// `npm run worker -- --dead-letters`: prints the jobs that exhausted their retries (JSON lines) and exits.
import { setTimeout as sleep } from 'node:timers/promises'
import closeWithGrace from 'close-with-grace'
import pino, { type Logger } from 'pino'
import { loadConfig, type Config } from './config.ts'
import { openDatabase, type Database } from './db/database.ts'
import { enforceSafeDatabaseRole, refusalToStart } from './db/role-check.ts'
import { briefError } from './jobs/runner.ts'
import { createJobSystem } from './jobs/system.ts'
import { fallbackLogConfig, loggerOptions, reportFailedStart } from './log.ts'

/** How long the worker waits between two attempts to reach a database that is down at its start (ms). */
const START_RETRY_MS = 5_000

/** The worker's log, once the configuration is read. */
let workerLog: Logger | undefined

async function main () {
  const config = loadConfig()
  workerLog = pino(loggerOptions(config)).child({ component: 'jobs' }) // the server's format (src/log.ts)
  await run(config, workerLog)
}

async function run (config: Config, log: Logger) {
  const database = await openDatabase(config, { log: (message) => log.info({}, `[database] ${message}`) })
  const { runner, mailer } = await createJobSystem(config, database, log)
  if (process.argv.includes('--dead-letters')) {
    await roleChecked(config, database, log)
    await runner.boss.start()
    for (const job of await runner.deadLetters(1000)) console.log(JSON.stringify(job))
    await runner.boss.stop({ graceful: false, close: true })
    mailer.close()
    await database.close()
    return
  }
  // Registered first: a SIGTERM while the worker still waits for its database ends the wait.
  const stopped = new AbortController()
  closeWithGrace({ delay: config.JOB_SHUTDOWN_TIMEOUT_MS + 2_000 }, async ({ signal, err }) => {
    if (err) log.error({ err }, 'closing after a fatal error')
    else log.info({ signal }, 'worker shutting down: finishing running jobs')
    stopped.abort()
    await runner.stop()
    mailer.close()
    await database.close()
  })
  // As the server does, a database that is down at the start is waited for, not a reason to exit:
  // a worker restarted during a failover comes up when the database does.
  if (!await roleChecked(config, database, log, stopped.signal)) return
  void runner.startInBackground() // start() retried every 5 s while the database is unreachable
  await runner.whenStarted()
  if (stopped.signal.aborted) return
  await runner.work() // whatever JOBS_WORKER says: this process exists to work
  log.info({ mail: mailer.destination }, 'worker ready')
}

/**
 * RLS must bind the role the jobs' queries run as, as the server checks it
 * (src/db/role-check.ts; refused in production). With `stop`, tried every START_RETRY_MS while the
 * database cannot be read, until `stop` aborts (then false); without it, once (its error thrown).
 * Throws what waiting cannot mend: an unsafe role, and in production a login or database
 * PostgreSQL refuses (ConfigError subclasses). Closes the database before throwing, so that an
 * embedded PostgreSQL it started does not outlive the refusal.
 */
async function roleChecked (config: Config, database: Database, log: Logger, stop?: AbortSignal): Promise<boolean> {
  for (;;) {
    try {
      // eslint-disable-next-line no-restricted-properties -- ROLE_QUERY, a constant statement (src/db/role-check.ts)
      await enforceSafeDatabaseRole(config, (sql) => database.platformDb.$queryRawUnsafe(sql), (message) => log.warn(message))
      return true
    } catch (error) {
      const final = refusalToStart(error, config)
      if (final || !stop) {
        await database.close()
        throw final ?? error
      }
      log.warn({ error: briefError(error), retryInMs: START_RETRY_MS }, 'worker waiting for the database: it could not be read')
      await sleep(START_RETRY_MS, undefined, { signal: stop }).catch(() => {})
      if (stop.aborted) return false // the shutdown closes the database
    }
  }
}

main().catch((error: unknown) => {
  // A JSON fatal line too: one alert rule on level >= 50 sees a worker that cannot start.
  reportFailedStart(workerLog ?? pino(loggerOptions(fallbackLogConfig())), error)
  process.exit(1)
})
