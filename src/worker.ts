// `npm run worker`: runs the background jobs without an HTTP server, for deployments that split
// the API and the workers (set JOBS_WORKER=false on the API instances then). Same configuration
// as the server. SIGTERM/SIGINT: stop fetching, let running jobs finish (JOB_SHUTDOWN_TIMEOUT_MS;
// jobs still running are handed back for a retry), close, exit 0.
//
// `npm run worker -- --dead-letters`: prints the jobs that exhausted their retries (JSON lines) and exits.
import closeWithGrace from 'close-with-grace'
import pino from 'pino'
import { ConfigError, loadConfig } from './config.ts'
import { openDatabase } from './db/database.ts'
import { enforceSafeDatabaseRole } from './db/role-check.ts'
import { createJobSystem } from './jobs/system.ts'
import { loggerOptions } from './log.ts'

async function main () {
  const config = loadConfig()
  const log = pino(loggerOptions(config)).child({ component: 'jobs' }) // the server's format (src/log.ts)
  const database = await openDatabase(config, { log: (message) => log.info({}, `[database] ${message}`) })
  // As the server does: RLS must bind the role the handlers' queries run as (refused in production).
  // eslint-disable-next-line no-restricted-properties -- ROLE_QUERY, a constant statement (src/db/role-check.ts)
  await enforceSafeDatabaseRole(config, (sql) => database.platformDb.$queryRawUnsafe(sql), console.error).catch(async (error: unknown) => {
    await database.close() // an embedded PostgreSQL it started must not outlive the refusal
    throw error
  })
  const { runner, mailer } = await createJobSystem(config, database, log)
  if (process.argv.includes('--dead-letters')) {
    await runner.boss.start()
    for (const job of await runner.deadLetters(1000)) console.log(JSON.stringify(job))
    await runner.boss.stop({ graceful: false, close: true })
    mailer.close()
    await database.close()
    return
  }
  closeWithGrace({ delay: config.JOB_SHUTDOWN_TIMEOUT_MS + 2_000 }, async ({ signal, err }) => {
    if (err) log.error({ err }, 'closing after a fatal error')
    else log.info({ signal }, 'worker shutting down: finishing running jobs')
    await runner.stop()
    mailer.close()
    await database.close()
  })
  await runner.start()
  await runner.work() // whatever JOBS_WORKER says: this process exists to work
  log.info({ mail: mailer.destination }, 'worker ready')
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) console.error(error.message)
  else console.error('worker could not start:', error)
  process.exit(1)
})
