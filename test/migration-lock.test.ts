// Migrations only over a direct connection, and the migration advisory lock never left behind:
// after a successful and a failed run over a direct URL no lock remains; through PgBouncer in
// transaction mode (CI's PgBouncer stage: TEST_APP_DATABASE_URL leads there) both the server's
// in-process migration and `prisma migrate deploy` are refused before any lock is taken.
import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import t from 'tap'
import { isTransactionPooler, MIGRATION_LOCK_KEY, PooledMigrationUrlError } from '../src/db/direct-connection.ts'
import { applyMigrations } from '../src/db/migrate.ts'
import { adminQuery, adminUrl, appDatabaseUrl, appServerUrl } from './helper.ts'

type Tap = { teardown(fn: () => unknown): void }

/** True when the API's login goes through another server than the admin one (PgBouncer in CI). */
const throughPooler = appServerUrl !== undefined && new URL(appServerUrl).host !== new URL(adminUrl).host

const migrationLocks = async (url: string) =>
  (await adminQuery<{ n: number }>(url, `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_database d ON d.oid = l.database
    WHERE l.locktype = 'advisory' AND l.objid = $1 AND d.datname = current_database()`, [MIGRATION_LOCK_KEY])).rows[0]!.n

t.test('migrations leave no advisory lock behind, and are refused through a transaction pooler', async (t) => {
  const direct = await emptyDatabase(t)
  t.notOk(await isTransactionPooler(direct), 'a direct connection is not taken for a pooler')
  t.ok((await applyMigrations(direct)).length > 0, 'migrations applied over the direct URL')
  t.equal(await migrationLocks(direct), 0, 'no migration lock held afterwards')

  const migrationsDir = await mkdtemp(path.join(tmpdir(), 'migrations-'))
  t.teardown(() => rm(migrationsDir, { recursive: true, force: true }))
  await mkdir(path.join(migrationsDir, '20260101000000_bad'))
  await writeFile(path.join(migrationsDir, '20260101000000_bad', 'migration.sql'), 'SELECT 1 / 0;')
  await writeFile(path.join(migrationsDir, 'migration_lock.toml'), 'provider = "postgresql"\n')
  const failing = await emptyDatabase(t)
  await t.rejects(applyMigrations(failing, undefined, { migrationsDir }), /division by zero/)
  t.equal(await migrationLocks(failing), 0, 'no migration lock held after a failed migration either')

  if (!throughPooler) return t.comment('no pooler configured (TEST_APP_DATABASE_URL): the pooled case runs in the CI PgBouncer stage')
  const pooledDatabase = await emptyDatabase(t)
  const pooled = appDatabaseUrl(pooledDatabase)!
  t.ok(await isTransactionPooler(pooled), 'PgBouncer in transaction mode is detected')
  const error = await applyMigrations(pooled).then(() => undefined, (e: Error) => e)
  t.ok(error instanceof PooledMigrationUrlError, 'migrating through it is refused')
  t.match(error?.message, /Point DATABASE_URL .* at PostgreSQL directly, not at PgBouncer/)
  t.notMatch(error?.message, new URL(pooled).password, 'without echoing the password')
  t.equal(await migrationLocks(pooledDatabase), 0, 'and no migration lock is left on any server session')

  // The Prisma CLI (through src/db/schema-engine/cli-shim.mjs) refuses it the same way.
  const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: pooled }
  delete env.PRISMA_SCHEMA_ENGINE_BINARY // let prisma.config.ts choose our engine
  const cli = await new Promise<{ code: number | null; output: string }>((resolve) => {
    const child = execFile('npx', ['prisma', 'migrate', 'deploy'], { env }, (_error, stdout, stderr) => resolve({ code: child.exitCode, output: stdout + stderr }))
  })
  t.not(cli.code, 0, '`prisma migrate deploy` through PgBouncer fails')
  t.match(cli.output, /Refusing to migrate through a connection pooler/, 'with the reason')
  t.equal((await adminQuery(pooledDatabase, 'SELECT count(*)::int AS n FROM information_schema.tables WHERE table_name = \'_prisma_migrations\'')).rows[0]!.n, 0, 'and touched nothing')
})

/** A new, empty database (no migrations) on the suite's server; returns its admin URL. */
async function emptyDatabase (t: Tap): Promise<string> {
  const name = `empty_${randomUUID().replaceAll('-', '')}`
  await adminQuery(adminUrl, `CREATE DATABASE ${name}`)
  t.teardown(() => adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`))
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  return url.toString()
}
