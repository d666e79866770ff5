// Migrations through the WebAssembly schema engine: in-process apply, the real CLI's drift check,
// failure atomicity and concurrent appliers. Needs a PostgreSQL server (TEST_DATABASE_URL, admin).
import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import t from 'tap'
import { applyMigrations } from '../src/db/migrate.ts'
import { OutOfOrderMigrationError, outOfOrderAllowed } from '../src/db/migration-order.ts'

const repoRoot = fileURLToPath(new URL('..', import.meta.url))
const serverUrl = process.env.TEST_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres'

async function query<R extends pg.QueryResultRow> (databaseUrl: string, sql: string, values: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  try {
    return (await client.query<R>(sql, values)).rows
  } finally {
    await client.end()
  }
}

/** A fresh, empty database on the test server, dropped when the test ends. */
async function freshDatabase (test: { teardown(fn: () => unknown): void }): Promise<string> {
  const name = `migrations_test_${randomUUID().replaceAll('-', '')}`
  await query(serverUrl, `CREATE DATABASE "${name}"`)
  test.teardown(() => query(serverUrl, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`))
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  return url.toString()
}

async function tableNames (databaseUrl: string): Promise<string[]> {
  const rows = await query<{ table_name: string }>(
    databaseUrl,
    'SELECT table_name FROM information_schema.tables WHERE table_schema = \'public\' ORDER BY table_name'
  )
  return rows.map((row) => row.table_name)
}

const repoMigrationNames = async () =>
  (await readdir(path.join(repoRoot, 'prisma/migrations'), { withFileTypes: true }))
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort()

t.test('every migration applies to an empty database', async (t) => {
  const databaseUrl = await freshDatabase(t)
  const applied = await applyMigrations(databaseUrl)
  t.same(applied, await repoMigrationNames())
  const tables = await tableNames(databaseUrl)
  for (const table of ['_prisma_migrations', 'tenants', 'users', 'sessions', 'projects', 'tasks']) {
    t.ok(tables.includes(table), `table ${table} exists`)
  }
  const rows = await query<{ migration_name: string; finished_at: Date | null }>(
    databaseUrl,
    'SELECT migration_name, finished_at FROM _prisma_migrations ORDER BY migration_name'
  )
  t.same(rows.map((row) => row.migration_name), applied)
  t.ok(rows.every((row) => row.finished_at !== null), 'every migration finished')
  t.same(await applyMigrations(databaseUrl), [], 'a second run applies nothing')
})

t.test('prisma migrate diff: migrations match the schema (real CLI, WebAssembly engine)', async (t) => {
  const databaseUrl = await freshDatabase(t) // the shadow database is created on this server
  const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: databaseUrl }
  delete env.PRISMA_SCHEMA_ENGINE_BINARY // let prisma.config.ts choose our engine
  const args = ['prisma', 'migrate', 'diff', '--from-migrations', 'prisma/migrations', '--to-schema', 'prisma/schema.prisma', '--exit-code']
  const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = execFile('npx', args, { cwd: repoRoot, env }, (_error, stdout, stderr) => resolve({ code: child.exitCode, stdout, stderr }))
  })
  t.equal(code, 0, `exit code 0 (no drift)\n${stdout}\n${stderr}`)
  t.match(stdout, /No difference detected/)
})

t.test('a failing migration is named and leaves nothing of its script applied', async (t) => {
  const databaseUrl = await freshDatabase(t)
  const migrationsDir = await mkdtemp(path.join(tmpdir(), 'migrations-'))
  t.teardown(() => rm(migrationsDir, { recursive: true, force: true }))
  const migrations: Record<string, string> = {
    '20260101000000_good': 'CREATE TABLE "good_table" ("id" INTEGER PRIMARY KEY);',
    '20260101000100_bad': [
      // A dollar-quoted block with semicolons inside: must reach PostgreSQL as one statement.
      'DO $$ BEGIN CREATE TABLE "bad_table_in_block" ("id" INTEGER); END $$;',
      'CREATE TABLE "bad_table" ("id" INTEGER);',
      'INSERT INTO "bad_table" VALUES (1 / 0);',
    ].join('\n'),
  }
  for (const [name, sql] of Object.entries(migrations)) {
    await mkdir(path.join(migrationsDir, name))
    await writeFile(path.join(migrationsDir, name, 'migration.sql'), sql)
  }
  await writeFile(path.join(migrationsDir, 'migration_lock.toml'), 'provider = "postgresql"\n')

  const error = await applyMigrations(databaseUrl, undefined, { migrationsDir }).then(
    () => undefined,
    (error: unknown) => error
  )
  t.ok(error instanceof Error, 'rejects with an Error')
  t.match((error as Error).message, /20260101000100_bad/, 'names the failing migration')
  t.match((error as Error).message, /division by zero/, 'includes the database error')
  const tables = await tableNames(databaseUrl)
  t.ok(tables.includes('good_table'), 'the good migration is applied')
  t.notOk(tables.includes('bad_table_in_block'), 'nothing of the failing script remains (DO block)')
  t.notOk(tables.includes('bad_table'), 'nothing of the failing script remains')
})

t.test('two concurrent applyMigrations apply each migration exactly once', async (t) => {
  const databaseUrl = await freshDatabase(t)
  const [first, second] = await Promise.all([applyMigrations(databaseUrl), applyMigrations(databaseUrl)])
  t.same([...first, ...second].sort(), await repoMigrationNames(), 'together they applied every migration once')
  const rows = await query<{ migration_name: string; count: string }>(
    databaseUrl,
    'SELECT migration_name, count(*) AS count FROM _prisma_migrations GROUP BY migration_name ORDER BY migration_name'
  )
  t.same(rows, (await repoMigrationNames()).map((name) => ({ migration_name: name, count: '1' })), 'one row per migration')
})

/** A migrations folder in a temporary directory, holding `migrations` (folder name → SQL). */
async function migrationsFolder (t: { teardown(fn: () => unknown): void }, migrations: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'migrations-order-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await writeFile(path.join(dir, 'migration_lock.toml'), 'provider = "postgresql"\n')
  for (const [name, sql] of Object.entries(migrations)) {
    await mkdir(path.join(dir, name))
    await writeFile(path.join(dir, name, 'migration.sql'), sql)
  }
  return dir
}

const appliedNames = async (databaseUrl: string) =>
  (await query<{ migration_name: string }>(databaseUrl, 'SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NOT NULL ORDER BY migration_name'))
    .map((row) => row.migration_name)

// A team's migration created before a newer one landed (or, here, before this repository's
// future-dated ones): it would run last on existing databases but in the middle on a fresh one.
t.test('a pending migration that sorts before an applied one is refused, unless MIGRATE_OUT_OF_ORDER', async (t) => {
  const databaseUrl = await freshDatabase(t)
  const migrationsDir = await migrationsFolder(t, {
    '20260101000000_first': 'CREATE TABLE "first_table" ("id" INTEGER);',
    '20260101000200_third': 'CREATE TABLE "third_table" ("id" INTEGER);',
  })
  t.same(await applyMigrations(databaseUrl, undefined, { migrationsDir }), ['20260101000000_first', '20260101000200_third'])
  await mkdir(path.join(migrationsDir, '20260101000100_second'))
  await writeFile(path.join(migrationsDir, '20260101000100_second', 'migration.sql'), 'CREATE TABLE "second_table" ("id" INTEGER);')

  const error = await applyMigrations(databaseUrl, undefined, { migrationsDir }).then(() => undefined, (e: Error) => e)
  t.ok(error instanceof OutOfOrderMigrationError, 'refused')
  t.match(error?.message, /Refusing to apply migration 20260101000100_second: it sorts before 20260101000200_third/)
  t.match(error?.message, /rename its folder to sort last \(e\.g\. 20260101000201_second\)/, 'names a folder that sorts last')
  t.match(error?.message, /MIGRATE_OUT_OF_ORDER=true/, 'and the way to apply it anyway')
  t.notOk((await tableNames(databaseUrl)).includes('second_table'), 'nothing of it applied')
  t.same(await appliedNames(databaseUrl), ['20260101000000_first', '20260101000200_third'], 'nor recorded')

  t.same(await applyMigrations(databaseUrl, undefined, { migrationsDir, allowOutOfOrder: true }), ['20260101000100_second'], 'applied when allowed')
  t.ok((await tableNames(databaseUrl)).includes('second_table'))
  t.same(await applyMigrations(databaseUrl, undefined, { migrationsDir }), [], 'once applied, the history is in order again')

  // The CLI's engine reads MIGRATE_OUT_OF_ORDER as the server's configuration reads a boolean.
  t.same(['true', 'TRUE', '1', 'false', '0', '', undefined].map(outOfOrderAllowed), [true, true, true, false, false, false, false], 'MIGRATE_OUT_OF_ORDER: true, TRUE and 1 allow')

  // On a fresh database every migration is pending: nothing is out of order.
  const fresh = await freshDatabase(t)
  t.same(await applyMigrations(fresh, undefined, { migrationsDir }), ['20260101000000_first', '20260101000100_second', '20260101000200_third'])
})

t.test('prisma migrate deploy refuses an out-of-order migration the same way (real CLI, WebAssembly engine)', async (t) => {
  const databaseUrl = await freshDatabase(t)
  const migrationsDir = await migrationsFolder(t, {
    '20260101000000_first': 'CREATE TABLE "first_table" ("id" INTEGER);',
    '20260101000200_third': 'CREATE TABLE "third_table" ("id" INTEGER);',
  })
  await applyMigrations(databaseUrl, undefined, { migrationsDir })
  await mkdir(path.join(migrationsDir, '20260101000100_second'))
  await writeFile(path.join(migrationsDir, '20260101000100_second', 'migration.sql'), 'CREATE TABLE "second_table" ("id" INTEGER);')
  // A config of the test's own (the repository's names prisma/migrations); the engine is ours.
  const configFile = path.join(migrationsDir, 'prisma.config.ts')
  await writeFile(configFile, `export default ${JSON.stringify({ schema: path.join(repoRoot, 'prisma/schema.prisma'), migrations: { path: migrationsDir }, datasource: { url: databaseUrl } })}\n`)
  const deploy = (extraEnv: NodeJS.ProcessEnv) => new Promise<{ code: number | null; output: string }>((resolve) => {
    const env: NodeJS.ProcessEnv = { ...process.env, PRISMA_SCHEMA_ENGINE_BINARY: path.join(repoRoot, 'src/db/schema-engine/cli-shim.mjs') }
    delete env.MIGRATE_OUT_OF_ORDER
    Object.assign(env, extraEnv)
    const child = execFile('npx', ['prisma', 'migrate', 'deploy', '--config', configFile], { cwd: repoRoot, env }, (_error, stdout, stderr) =>
      resolve({ code: child.exitCode, output: `${stdout}\n${stderr}` }))
  })

  const refused = await deploy({})
  t.not(refused.code, 0, 'exits non-zero')
  t.match(refused.output, /Refusing to apply migration 20260101000100_second: it sorts before 20260101000200_third/, 'names the migration and the applied one it sorts before')
  t.notOk((await tableNames(databaseUrl)).includes('second_table'), 'nothing of it applied')

  // `1`, as the server's configuration reads a boolean (src/config.ts); before 2026-12-04 the CLI took only `true`.
  const allowed = await deploy({ MIGRATE_OUT_OF_ORDER: '1' })
  t.equal(allowed.code, 0, `applied with MIGRATE_OUT_OF_ORDER=1\n${allowed.output}`)
  t.same(await appliedNames(databaseUrl), ['20260101000000_first', '20260101000100_second', '20260101000200_third'])
})
