// `npm run worker`: runs the background jobs without an HTTP server, for deployments that split
// the API and the workers (set JOBS_WORKER=false on the API instances then). Same configuration
// as the server. SIGTERM/SIGINT: stop fetching, let running jobs finish (JOB_SHUTDOWN_TIMEOUT_MS;
// jobs still running are handed back for a retry), close, exit 0.
//
// `npm run worker -- --dead-letters`: prints the jobs that exhausted their retries (JSON lines) and exits.
import pino, { type Logger } from 'pino'
import { closeOnSignal } from './close-on-signal.ts'
import { loadConfig, type Config } from './config.ts'
import { openDatabase, type Database } from './db/database.ts'
import { enforceSafeDatabaseRole, refusalToStart } from './db/role-check.ts'
import { createJobSystem } from './jobs/system.ts'
import { fallbackLogConfig, loggerOptions, reportFailedStart } from './log.ts'

/** The worker's log, once the configuration is read. */
let workerLog: Logger | undefined

async function main () {
  const config = loadConfig()
  workerLog = pino(loggerOptions(config)).child({ component: 'jobs' }) // the server's format (src/log.ts)
  await run(config, workerLog)
}

async function run (config: Config, log: Logger) {
  const database = await openDatabase(config, { log: (message, level = 'info') => log[level]({}, `[database] ${message}`) })
  const { runner, mailer } = await createJobSystem(config, database, log)
  if (process.argv.includes('--dead-letters')) {
    await checkRole(config, database, log).catch(async (error: unknown) => {
      await database.close()
      throw refusalToStart(error, config) ?? error
    })
    await runner.boss.start()
    for (const job of await runner.deadLetters(1000)) console.log(JSON.stringify(job))
    await runner.boss.stop({ graceful: false, close: true })
    mailer.close()
    await database.close()
    return
  }
  // Registered first: a SIGTERM while the worker still waits for its database ends the wait.
  let stopping = false
  closeOnSignal({ delayMs: config.JOB_SHUTDOWN_TIMEOUT_MS + 2_000, log }, async ({ signal, err }) => {
    if (err) log.error({ err }, 'closing after a fatal error')
    else log.info({ signal }, 'worker shutting down: finishing running jobs')
    stopping = true
    await runner.stop()
    mailer.close()
    await database.close()
  })
  // As the server does, a database that is down at the start is waited for, not a reason to exit:
  // a worker restarted during a failover comes up when the database does. What waiting cannot
  // mend (an unsafe role; in production a refused login or database) still stops it.
  let roleSafe = false // checked until it passes once: its development warning is said once
  const checkRoleOnce = async () => { if (!roleSafe) { await checkRole(config, database, log); roleSafe = true } }
  void runner.startInBackground({ before: checkRoleOnce, refusal: (error) => refusalToStart(error, config) })
  await runner.whenStarted().catch(async (error: unknown) => {
    await database.close() // an embedded PostgreSQL it started must not outlive the refusal
    throw error
  })
  if (stopping) return // SIGTERM while waiting: the runner's stop ended the wait
  await runner.work() // whatever JOBS_WORKER says: this process exists to work
  log.info({ mail: mailer.destination }, 'worker ready')
}

/**
 * RLS must bind the role the jobs' queries run as, as the server checks it (src/db/role-check.ts:
 * a warning in development, refused in production). Throws the check's error, or the database's
 * when it cannot be read.
 */
async function checkRole (config: Config, database: Database, log: Logger): Promise<void> {
  // eslint-disable-next-line no-restricted-properties -- ROLE_QUERY, a constant statement (src/db/role-check.ts)
  await enforceSafeDatabaseRole(config, (sql) => database.platformDb.$queryRawUnsafe(sql), (message) => log.warn(message))
}

main().catch((error: unknown) => {
  // A JSON fatal line too: one alert rule on level >= 50 sees a worker that cannot start.
  reportFailedStart(workerLog ?? pino(loggerOptions(fallbackLogConfig())), error)
  process.exit(1)
})
