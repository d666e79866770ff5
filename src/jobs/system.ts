// The job system as both the server (plugins/jobs.ts) and the stand-alone worker (src/worker.ts)
// build it: the mailer, the link tokens, the runner and every job definition.
import type { Config } from '../config.ts'
import type { Database } from '../db/database.ts'
import { Mailer } from '../mail/mailer.ts'
import { definePeopleJobs } from '../people/jobs.ts'
import { LinkTokens } from '../people/tokens.ts'
import { JobRunner, type JobLog } from './runner.ts'

export interface JobSystem {
  runner: JobRunner
  mailer: Mailer
  tokens: LinkTokens
}

/** Builds (does not start) the job system. Throws in production without SMTP_URL. */
export async function createJobSystem (config: Config, database: Database, log: JobLog): Promise<JobSystem> {
  const mailer = new Mailer(config, log)
  const tokens = await LinkTokens.load(config)
  const runner = new JobRunner(config, database, log)
  definePeopleJobs(runner, config, mailer, tokens)
  return { runner, mailer, tokens }
}
