// `npm test`: prepares one PostgreSQL server for the whole suite, then runs tap.
// - TEST_DATABASE_URL set: that server (an admin URL, e.g. postgresql://postgres@127.0.0.1:5432/postgres).
// - unset: an embedded PostgreSQL of its own (.data/test-postgres/<pid>, a free loopback port),
//   created here (~1 s) and removed at the end, so that two runs never share or stop each other's.
// - TEST_APP_DATABASE_URL set: where the API's own login connects (e.g. through PgBouncer), its
//   database part replaced per test; its user and password are (re)created on the admin server as
//   a member of saas_app. Unset: the admin server, as the login saas_api.
// Migrations are applied once, to a template database; each test file then clones it
// (CREATE DATABASE … TEMPLATE, a file copy: milliseconds) so files never see each other's rows.
import { spawn } from 'node:child_process'
import { rm } from 'node:fs/promises'
import path from 'node:path'
import { DEFAULT_API_LOGIN, ensureApiLogin, withLogin } from '../src/db/api-login.ts'
import { startEmbeddedPostgres } from '../src/db/embedded-postgres.ts'
import { applyMigrations } from '../src/db/migrate.ts'
import { JOB_SCHEMA } from '../src/jobs/runner.ts'
import PgBoss from 'pg-boss'
import { adminQuery, databaseUrl, freePort } from './helper.ts'

const TEMPLATE = `tenant_api_template_${process.pid}`

const embeddedDir = path.resolve('.data/test-postgres', String(process.pid))
const embedded = process.env.TEST_DATABASE_URL
  ? undefined
  : await startEmbeddedPostgres({ dir: embeddedDir, port: await freePort(), database: 'postgres' })
const adminUrl = process.env.TEST_DATABASE_URL ?? embedded!.adminUrl
let exitCode = 1
try {
  await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${TEMPLATE}`)
  await adminQuery(adminUrl, `CREATE DATABASE ${TEMPLATE}`)
  await applyMigrations(databaseUrl(TEMPLATE, adminUrl))
  // The API's own login, as in production (a fixed password: a throwaway login of the test server).
  const appUrl = new URL(process.env.TEST_APP_DATABASE_URL ?? withLogin(adminUrl, DEFAULT_API_LOGIN, 'saas-api-test-password'))
  await ensureApiLogin(adminUrl, decodeURIComponent(appUrl.username), decodeURIComponent(appUrl.password))
  const through = process.env.TEST_APP_DATABASE_URL ? `; the API's login through ${appUrl.host}` : ''
  // pg-boss's schema too: every app a test builds starts the job runner, which then only checks
  // the schema's version instead of creating it in each cloned database.
  const boss = new PgBoss({ connectionString: databaseUrl(TEMPLATE, adminUrl), schema: JOB_SCHEMA, supervise: false, schedule: false })
  await boss.start()
  await boss.stop({ graceful: false, close: true })
  console.log(`# database server: ${embedded ? 'embedded PostgreSQL' : 'TEST_DATABASE_URL'}; template ${TEMPLATE}${through}`)
  exitCode = await new Promise<number>((resolve) => {
    const tap = spawn('npx', ['tap', ...process.argv.slice(2)], {
      stdio: 'inherit',
      env: { ...process.env, TEST_DATABASE_URL: adminUrl, TEST_APP_DATABASE_URL: appUrl.toString(), TEST_TEMPLATE_DATABASE: TEMPLATE },
    })
    tap.on('exit', (code) => resolve(code ?? 1))
  })
} finally {
  await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${TEMPLATE} WITH (FORCE)`).catch(() => {})
  if (embedded) {
    await embedded.stop()
    await rm(embeddedDir, { recursive: true, force: true })
  }
}
process.exit(exitCode)
