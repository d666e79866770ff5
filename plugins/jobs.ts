// Background jobs and email (README "People: invitations, password reset, email, jobs"):
// `app.jobs` (src/jobs/runner.ts), `app.mailer`, `app.linkTokens`. pg-boss starts when the app is
// ready — creating or migrating its schema, and running the workers unless JOBS_WORKER=false — and
// stops when the app closes: it stops fetching as soon as the drain begins (preClose), running jobs
// finish (JOB_SHUTDOWN_TIMEOUT_MS) or are handed back, and all that before the database closes.
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { JobRunner } from '../src/jobs/runner.ts'
import { createJobSystem } from '../src/jobs/system.ts'
import type { Mailer } from '../src/mail/mailer.ts'
import type { LinkTokens } from '../src/people/tokens.ts'

declare module 'fastify' {
  interface FastifyInstance {
    /** The job queue: `app.jobs.send(name, tenantId, data)`; in a transaction, src/jobs/tenant-transaction.ts. */
    jobs: JobRunner
    /** Sends email over SMTP_URL (development without it: DATA_DIR/outbox); used by jobs only. */
    mailer: Mailer
    /** Derives invitation and reset tokens (src/people/tokens.ts). */
    linkTokens: LinkTokens
  }
}

export default fp(
  async function jobsPlugin (app: FastifyInstance) {
    const { runner, mailer, tokens } = await createJobSystem(app.config, app.database, app.log.child({ component: 'jobs' }))
    app.decorate('jobs', runner)
    app.decorate('mailer', mailer)
    app.decorate('linkTokens', tokens)
    // A database that is down at boot must not stop the server from starting: after a failed
    // first attempt the runner keeps trying in the background (enqueueing is 503 meanwhile).
    app.addHook('onReady', async () => runner.startInBackground())
    // SIGTERM (src/server.ts's drain calls app.close()): no new job is fetched from here on, while
    // in-flight requests finish; running jobs get their own bound.
    // Not awaited here: the HTTP drain goes on meanwhile (its requests may still enqueue).
    app.addHook('preClose', async () => { void runner.stopWorking() })
    // Fastify runs onClose hooks in reverse order of registration, and this plugin is registered
    // after plugins/database: the jobs are stopped (and pg-boss's pool closed) before the API's
    // pool closes.
    app.addHook('onClose', async () => {
      await runner.stop()
      mailer.close()
    })
  },
  { name: 'jobs', dependencies: ['config', 'database'] }
)
