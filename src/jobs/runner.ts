// Background jobs on the PostgreSQL we already run, with pg-boss 10 (pinned: 11+ needs Node 22).
//
// - Every job is declared here before use, either as a *tenant* job — its data carries `tenantId`,
//   and its handler runs inside that tenant exactly like a request: the scoped client
//   (`database.forTenant`) and the RLS setting (`runAsTenant`) — or explicitly as a *platform* job.
//   A tenant job without a valid tenant is refused when enqueued and when run.
// - Enqueue inside a transaction (`sendInTransaction`, used by src/jobs/tenant-transaction.ts):
//   the job row is inserted by pg-boss's own SQL through that transaction (pg-boss's `db` option),
//   so it exists if and only if the change that caused it commits.
// - Retries with exponential backoff (JOB_RETRY_LIMIT, JOB_RETRY_DELAY_S); a job still failing is
//   copied to the queue `dead-letters`, where an operator sees it (`npm run worker -- --dead-letters`,
//   or SQL on pgboss.job). A job running longer than JOB_EXPIRE_S (a worker killed mid-job) is
//   retried: jobs are at least once, so handlers are idempotent (src/people/*).
// - pg-boss runs as the tables' owner (DATABASE_URL): it creates and migrates its schema `pgboss`
//   (platform-owned, no tenant rows, no RLS) and must be able to ALTER it on upgrades; the API's role
//   `saas_app` gets only what a transactional enqueue needs (see grantEnqueue).
// - stop(): stop fetching, let running jobs finish (JOB_SHUTDOWN_TIMEOUT_MS); a job still running
//   then stays `active` in the database and is handed to the next worker when it expires.
// - Database outages: pg-boss reports errors as events (logged, rate-limited); the process keeps
//   running and the workers resume polling when the database is back.
import { withShortLivedClient } from '../db/short-lived-client.ts'
import PgBoss from 'pg-boss'
import type { Config } from '../config.ts'
import type { Database } from '../db/database.ts'
import { APP_ROLE } from '../db/database.ts'
import { AppError } from '../errors.ts'
import { UUID } from '../ids.ts'
import type { ScopedClient } from '../tenancy/scoped-client.ts'
import { runAsTenant } from '../tenancy/tenant-context.ts'

export const JOB_SCHEMA = 'pgboss'
export const DEAD_LETTER_QUEUE = 'dead-letters'

/** How long a start that met an unreachable database waits before the next attempt (ms). */
const START_RETRY_MS = 5_000

/** What startInBackground runs before each attempt, and which errors end its retries. */
export interface StartOptions {
  /** Runs before each attempt; its errors are retried as the database's are (unless refused). */
  before?: () => Promise<void>
  /** The Error to end the retries with, for an error waiting cannot mend; undefined to retry it. */
  refusal?: (error: unknown) => Error | undefined
}

export interface JobLog {
  info(fields: object, message: string): void
  warn(fields: object, message: string): void
  error(fields: object, message: string): void
}

/** The tenant a tenant job runs for (active tenants only: a suspended tenant's jobs wait in retries). */
export interface JobTenant {
  id: string
  slug: string
  name: string
  domain: string | null
}

/** What a tenant job's handler gets: the same confinement as a request (request.db, request.tenant). */
export interface TenantJobContext {
  tenant: JobTenant
  /** Scoped client of the job's tenant (Prisma extension + RLS setting). */
  db: ScopedClient
  /** pg-boss's job id: stable across retries, the idempotency key of a job's side effects. */
  jobId: string
  log: JobLog
}

export interface PlatformJobContext {
  jobId: string
  log: JobLog
}

export type TenantJobData = { tenantId: string } & Record<string, unknown>
type Definition =
  | { kind: 'tenant'; handler: (context: TenantJobContext, data: TenantJobData) => Promise<void> }
  | { kind: 'platform'; handler: (context: PlatformJobContext, data: Record<string, unknown>) => Promise<void> }

/** The minimal job shape `process` needs (a pg-boss job, or a test's). */
export interface RunnableJob {
  id: string
  data: unknown
}

/** A transaction able to run pg-boss's SQL: a Prisma transaction client (`$queryRawUnsafe`). */
export interface SqlTransaction {
  $queryRawUnsafe<T = unknown>(query: string, ...values: unknown[]): Promise<T>
}

/** Raised for a job that can never succeed (no tenant, unknown job): failed, retried to the dead letters. */
export class InvalidJobError extends Error {
  override name = 'InvalidJobError'
}

type RunnerConfig = Pick<Config, 'JOB_POLL_INTERVAL_S' | 'JOB_RETRY_LIMIT' | 'JOB_RETRY_DELAY_S' | 'JOB_EXPIRE_S' | 'JOB_SHUTDOWN_TIMEOUT_MS' | 'JOBS_WORKER' | 'rlsEnabled'>

/**
 * An error as the job log shows it: type, message and SQLSTATE/errno code, no stack (an outage or
 * a refusing SMTP server is expected, not a bug: one short line, as the request log does for 503s).
 * Logged under `error`, not `err`: pino's `err` serializer would add a `stack` field again.
 */
export function briefError (error: unknown): { type: string, message: string, code?: string } {
  if (!(error instanceof Error)) return { type: typeof error, message: String(error) }
  const code = (error as { code?: unknown }).code
  return { type: error.name, message: error.message, ...(typeof code === 'string' ? { code } : {}) }
}

export class JobRunner {
  readonly boss: PgBoss
  private readonly definitions = new Map<string, Definition>()
  private readonly loops = new Map<string, { wake: () => void; running: Promise<void> | null; current: string | null; done: Promise<void> }>()
  private started = false
  /** Schema, grants and queues in place: jobs can be enqueued. */
  private ready = false
  private stopping = false
  private halting: Promise<boolean> | undefined
  private closing: Promise<void> | undefined
  private retryTimer: NodeJS.Timeout | undefined
  private cancelRetry: (() => void) | undefined
  private starting: Promise<void> | undefined
  private lastErrorLog = 0

  constructor (
    private readonly config: RunnerConfig,
    private readonly database: Database,
    private readonly log: JobLog,
    /** The tenant client handlers get (default `database.forTenant`; tests take a tenancy layer away). */
    private readonly clientFor: (tenantId: string) => ScopedClient = (tenantId) => database.forTenant(tenantId)
  ) {
    this.boss = new PgBoss({
      connectionString: database.ownerUrl,
      schema: JOB_SCHEMA,
      max: 4,
      application_name: 'tenant-api-jobs',
      schedule: false, // no cron jobs yet: no clock monitor
      supervise: true, // expires lost jobs, archives and deletes old ones
      // Passed through to pg's Pool: during an outage an enqueue fails within 5 s (503), as the
      // API's own pool does, instead of waiting for the operating system's TCP timeout.
      connectionTimeoutMillis: 5_000,
    } as PgBoss.ConstructorOptions)
    // Without a listener an 'error' event would throw and end the process (database outages).
    this.boss.on('error', (error) => this.reportDatabaseError(error))
  }

  /** Declares a job that runs inside the tenant named by its data's `tenantId`. Before start(). */
  defineTenantJob<D extends Record<string, unknown>>(name: string, handler: (context: TenantJobContext, data: D & { tenantId: string }) => Promise<void>): void {
    this.define(name, { kind: 'tenant', handler: handler as Definition['handler'] } as Definition)
  }

  /** Declares a job that belongs to no tenant (it gets no tenant client). Before start(). */
  definePlatformJob<D extends Record<string, unknown>>(name: string, handler: (context: PlatformJobContext, data: D) => Promise<void>): void {
    this.define(name, { kind: 'platform', handler: handler as Definition['handler'] } as Definition)
  }

  private define (name: string, definition: Definition) {
    if (this.started) throw new Error('define jobs before start()')
    if (this.definitions.has(name)) throw new Error(`job ${name} is defined twice`)
    this.definitions.set(name, definition)
  }

  /** Creates or migrates pg-boss's schema, the queues and the grants; starts the workers when JOBS_WORKER. */
  async start (): Promise<void> {
    await this.boss.start()
    this.started = true
    if (this.config.rlsEnabled) await this.grantEnqueue()
    await this.ensureQueue(DEAD_LETTER_QUEUE, { retryLimit: 0, retentionMinutes: 60 * 24 * 30 })
    for (const name of this.definitions.keys()) {
      await this.ensureQueue(name, {
        retryLimit: this.config.JOB_RETRY_LIMIT,
        retryDelay: this.config.JOB_RETRY_DELAY_S,
        retryBackoff: true,
        expireInSeconds: this.config.JOB_EXPIRE_S,
        deadLetter: DEAD_LETTER_QUEUE,
      })
    }
    this.ready = true
    if (this.config.JOBS_WORKER) await this.work()
  }

  /**
   * start(), retried every 5 s while the database is unreachable: the server starts during an
   * outage like it lives through one (requests that need the database are 503 meanwhile), and so
   * does the stand-alone worker. Each attempt runs `options.before` first (the worker's role check);
   * an error `options.refusal` turns into an Error is one waiting cannot mend: the retries end and
   * whenStarted() rejects with it. stop() ends the retries too (whenStarted() then resolves).
   * Resolves after the first attempt, whether it succeeded or not.
   */
  startInBackground (options: StartOptions = {}): Promise<void> {
    let firstAttemptDone!: () => void
    const firstAttempt = new Promise<void>((resolve) => { firstAttemptDone = resolve })
    this.starting ??= (async () => {
      while (!this.stopping) {
        try {
          await options.before?.()
          await this.start()
          return
        } catch (error) {
          const refused = options.refusal?.(error)
          if (refused) throw refused
          if (this.stopping) return // stop() came during the attempt: no wait to cancel (review 60)
          this.reportDatabaseError(error, 'background jobs waiting for the database', { retryInMs: START_RETRY_MS })
          firstAttemptDone()
          await new Promise<void>((resolve) => {
            this.retryTimer = setTimeout(resolve, START_RETRY_MS)
            this.cancelRetry = resolve
          })
        }
      }
    })().finally(() => firstAttemptDone())
    return firstAttempt
  }

  /** Resolves when started (tests, the worker). */
  whenStarted (): Promise<void> {
    return this.starting ?? this.start()
  }

  private assertReady (): void {
    if (!this.ready) throw new AppError('SERVICE_UNAVAILABLE', 'The service is temporarily unavailable, retry later', { 'retry-after': '5' })
  }

  /** Starts fetching every defined queue in this process (`npm run worker` does only this). */
  async work (): Promise<void> {
    for (const name of this.definitions.keys()) {
      if (this.loops.has(name)) continue
      const loop = { wake: () => {}, running: null as Promise<void> | null, current: null as string | null, done: Promise.resolve() }
      this.loops.set(name, loop)
      loop.done = this.loop(name, loop)
    }
  }

  // Our own fetch loop instead of pg-boss's work(): in pg-boss 10 the worker calls complete()/fail()
  // without awaiting them, so a database that goes away at the end of a job becomes an unhandled
  // rejection, which ends a Node process. Here every database call is awaited and caught; a
  // failure waits for the next poll. One job at a time per queue and process.
  private async loop (name: string, state: { wake: () => void; running: Promise<void> | null; current: string | null }): Promise<void> {
    while (!this.stopping) {
      let fetched = 0
      try {
        const jobs = await this.boss.fetch<Record<string, unknown>>(name, { batchSize: 1 })
        fetched = jobs.length
        for (const job of jobs) {
          state.current = job.id
          state.running = this.runOne(name, job)
          await state.running
          state.running = null
          state.current = null
        }
      } catch (error) {
        this.reportDatabaseError(error)
      }
      if (fetched === 0 && !this.stopping) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, this.config.JOB_POLL_INTERVAL_S * 1000)
          state.wake = () => {
            clearTimeout(timer)
            resolve()
          }
        })
      }
    }
  }

  /** Runs a fetched job and records its outcome; a job whose outcome cannot be recorded expires and is retried. */
  private async runOne (name: string, job: PgBoss.Job<Record<string, unknown>>): Promise<void> {
    let failure: unknown
    try {
      await this.process(name, job)
    } catch (error) {
      failure = error
      this.log.warn({ job: name, jobId: job.id, error: briefError(error) }, 'job failed (retried unless out of retries, then dead-lettered)')
    }
    try {
      if (failure === undefined) await this.boss.complete(name, job.id)
      else await this.boss.fail(name, job.id, { message: failure instanceof Error ? failure.message : String(failure) })
    } catch (error) {
      this.reportDatabaseError(error)
    }
  }

  private reportDatabaseError (error: unknown, message = 'background jobs: database error (will retry)', fields: object = {}): void {
    const now = Date.now()
    if (now - this.lastErrorLog < 5_000) return
    this.lastErrorLog = now
    this.log.warn({ error: briefError(error), ...fields }, message)
  }

  /**
   * The API's role inserts job rows in its own transactions: it needs the queue table (read by the
   * insert) and INSERT on the job table, plus SELECT of `id` for the insert's RETURNING. It gets no
   * other access to pg-boss's tables (job data of every tenant is there).
   */
  private async grantEnqueue (): Promise<void> {
    // One statement list = one implicit transaction; the advisory lock serializes instances that
    // start together (concurrent GRANTs on one table can fail with "tuple concurrently updated").
    await withShortLivedClient(this.database.ownerUrl, (client) => client.query(`SELECT pg_advisory_xact_lock(hashtext('tenant-api: job queue grants'));
      GRANT USAGE ON SCHEMA ${JOB_SCHEMA} TO ${APP_ROLE};
      GRANT SELECT ON ${JOB_SCHEMA}.queue TO ${APP_ROLE};
      GRANT INSERT, SELECT (id) ON ${JOB_SCHEMA}.job TO ${APP_ROLE};`))
  }

  private async ensureQueue (name: string, options: Omit<PgBoss.Queue, 'name'> & { retentionMinutes?: number }) {
    const existing = await this.boss.getQueue(name)
    // Another instance (or an earlier version) may have created it: bring its options up to date.
    if (existing) await this.boss.updateQueue(name, { ...options, name } as PgBoss.Queue)
    else await this.boss.createQueue(name, { ...options, name } as PgBoss.Queue)
  }

  private checkData (name: string, tenantId: string | undefined, data: Record<string, unknown>): object {
    const definition = this.definitions.get(name)
    if (!definition) throw new InvalidJobError(`unknown job ${name}`)
    if (definition.kind === 'tenant') {
      if (tenantId === undefined || !UUID.test(tenantId)) throw new InvalidJobError(`job ${name} needs a tenant`)
      return { ...data, tenantId, queue: name }
    }
    if (tenantId !== undefined) throw new InvalidJobError(`job ${name} is a platform job`)
    // `queue` names the job's origin once it sits in the dead letters.
    return { ...data, queue: name }
  }

  /**
   * Enqueues a job of `tenantId` inside `tx`: the row commits or rolls back with the transaction.
   * Call `wake(name)` after the commit for an immediate pick-up here (otherwise: next poll).
   */
  async sendInTransaction (tx: SqlTransaction, name: string, tenantId: string | undefined, data: Record<string, unknown>): Promise<string> {
    this.assertReady()
    const db: PgBoss.Db = {
      // pg-boss passes undefined for options not given and plain objects for JSON: Prisma's raw
      // query binds neither, so they become NULL and JSON text (the SQL casts them).
      executeSql: async (text, values) => ({
        // eslint-disable-next-line no-restricted-properties -- pg-boss's own SQL, its values bound as parameters
        rows: await tx.$queryRawUnsafe<unknown[]>(text, ...values.map((v) => (v === undefined ? null : typeof v === 'object' && v !== null && !(v instanceof Date) ? JSON.stringify(v) : v))),
      }),
    }
    const id = await this.boss.send(name, this.checkData(name, tenantId, data), { db })
    if (!id) throw new Error(`job ${name} was not enqueued`)
    return id
  }

  /** Enqueues a job on its own (no surrounding change to commit with it). */
  async send (name: string, tenantId: string | undefined, data: Record<string, unknown>): Promise<string> {
    this.assertReady()
    const id = await this.boss.send(name, this.checkData(name, tenantId, data))
    if (!id) throw new Error(`job ${name} was not enqueued`)
    this.wake(name)
    return id
  }

  /** Tells this process's worker of `name` to fetch now instead of at its next poll. */
  wake (name: string): void {
    if (!this.stopping) this.loops.get(name)?.wake()
  }

  /**
   * Runs one job as a worker does: a tenant job inside its tenant, a platform job without one.
   * Throws (the job fails and is retried) when the handler throws. Public for tests, which use it
   * to deliver the same job twice.
   */
  async process (name: string, job: RunnableJob): Promise<void> {
    const definition = this.definitions.get(name)
    if (!definition) throw new InvalidJobError(`unknown job ${name}`)
    const log = { info: (f: object, m: string) => this.log.info({ job: name, jobId: job.id, ...f }, m), warn: (f: object, m: string) => this.log.warn({ job: name, jobId: job.id, ...f }, m), error: (f: object, m: string) => this.log.error({ job: name, jobId: job.id, ...f }, m) }
    const data = (job.data ?? {}) as Record<string, unknown>
    if (definition.kind === 'platform') return definition.handler({ jobId: job.id, log }, data)
    const tenantId = data.tenantId
    if (typeof tenantId !== 'string' || !UUID.test(tenantId)) throw new InvalidJobError(`job ${name} ${job.id} has no tenant`)
    const db = this.clientFor(tenantId)
    // runAsTenant around the whole handler: anything it runs through platformDb is under RLS too.
    await runAsTenant(tenantId, async () => {
      // The tenant's own row, as a request of that tenant sees it (tenants is under RLS as well).
      const tenant = await db.tenant.findFirst({ where: { id: tenantId, status: 'active' }, select: { id: true, slug: true, name: true, domain: true } })
      if (!tenant) throw new InvalidJobError(`tenant of job ${name} ${job.id} is unknown or suspended`)
      await definition.handler({ tenant, db, jobId: job.id, log }, data as TenantJobData)
    })
  }

  /** Jobs that exhausted their retries (newest first), for operators. */
  async deadLetters (limit = 100): Promise<Array<{ id: string; queue: string; tenantId: string | null; createdOn: Date; data: unknown }>> {
    const db = (this.boss as unknown as { getDb(): PgBoss.Db }).getDb()
    const { rows } = await db.executeSql(
      `SELECT id, data, created_on FROM ${JOB_SCHEMA}.job WHERE name = $1
       UNION ALL SELECT id, data, created_on FROM ${JOB_SCHEMA}.archive WHERE name = $1
       ORDER BY created_on DESC LIMIT $2`, [DEAD_LETTER_QUEUE, limit])
    return rows.map((row: { id: string; data: { queue?: string; tenantId?: string } & Record<string, unknown>; created_on: Date }) => ({
      id: row.id, queue: String(row.data?.queue ?? ''), tenantId: typeof row.data?.tenantId === 'string' ? row.data.tenantId : null, createdOn: row.created_on, data: row.data,
    }))
  }

  /**
   * Stops fetching and waits (≤ JOB_SHUTDOWN_TIMEOUT_MS) for running jobs; jobs still running then
   * are failed, i.e. handed back for a retry by this or another worker. Enqueueing still works
   * (requests draining at the same time may enqueue). Idempotent: every call shares one stop.
   */
  stopWorking (): Promise<void> {
    this.halting ??= this.haltWorkers()
    return this.halting.then(() => {})
  }

  /** stopWorking(), then closes pg-boss's pool: enqueueing is 503 from here on. Idempotent. */
  stop (): Promise<void> {
    this.closing ??= (async () => {
      this.halting ??= this.haltWorkers()
      const timedOut = await this.halting
      this.ready = false
      if (!this.started) return
      // pg-boss fails what its own workers still hold (none: we fetch ourselves) and closes its pool.
      await this.boss.stop({ graceful: !timedOut, wait: true, close: true, timeout: 1000 }).catch((error: unknown) => {
        this.log.warn({ error: briefError(error) }, 'background jobs: stop failed')
      })
    })()
    return this.closing
  }

  /** Resolves to whether running jobs had to be handed back (they outlived JOB_SHUTDOWN_TIMEOUT_MS). */
  private async haltWorkers (): Promise<boolean> {
    this.stopping = true
    clearTimeout(this.retryTimer)
    this.cancelRetry?.()
    await this.starting?.catch(() => {})
    if (!this.started) return false
    for (const loop of this.loops.values()) loop.wake()
    const running = [...this.loops.values()].map((loop) => loop.done)
    let timer: NodeJS.Timeout | undefined
    const timedOut = await Promise.race([
      Promise.all(running).then(() => false),
      new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(true), this.config.JOB_SHUTDOWN_TIMEOUT_MS) }),
    ])
    clearTimeout(timer)
    if (timedOut) {
      this.log.warn({}, 'background jobs: running jobs did not finish in time; they are handed back (failed, to be retried)')
      for (const [name, loop] of this.loops) {
        if (loop.current) await this.boss.fail(name, loop.current, { message: 'worker shut down while the job ran' }).catch((error: unknown) => this.reportDatabaseError(error))
      }
    }
    return timedOut
  }
}
