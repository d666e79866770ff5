// `npm test`: prepares one PostgreSQL server for the whole suite, then runs tap.
// - TEST_DATABASE_URL set: that server (an admin URL, e.g. postgresql://postgres@127.0.0.1:5432/postgres).
// - unset: an embedded PostgreSQL in .data/test-postgres, started here and stopped at the end.
// Migrations are applied once, to a template database; each test file then clones it
// (CREATE DATABASE … TEMPLATE, a file copy: milliseconds) so files never see each other's rows.
import { spawn } from 'node:child_process'
import path from 'node:path'
import pg from 'pg'
import { startEmbeddedPostgres } from '../src/db/embedded-postgres.ts'
import { applyMigrations } from '../src/db/migrate.ts'

const TEMPLATE = `tenant_api_template_${process.pid}`

async function admin(url: string, sql: string) {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    await client.query(sql)
  } finally {
    await client.end()
  }
}

function databaseUrl(adminUrl: string, database: string) {
  const url = new URL(adminUrl)
  url.pathname = `/${database}`
  return url.toString()
}

const embedded = process.env.TEST_DATABASE_URL
  ? undefined
  : await startEmbeddedPostgres({ dir: path.resolve('.data/test-postgres'), port: Number(process.env.TEST_EMBEDDED_PG_PORT ?? 54330), database: 'postgres' })
const adminUrl = process.env.TEST_DATABASE_URL ?? embedded!.adminUrl
let exitCode = 1
try {
  await admin(adminUrl, `DROP DATABASE IF EXISTS ${TEMPLATE}`)
  await admin(adminUrl, `CREATE DATABASE ${TEMPLATE}`)
  await applyMigrations(databaseUrl(adminUrl, TEMPLATE))
  console.log(`# database server: ${embedded ? 'embedded PostgreSQL' : 'TEST_DATABASE_URL'}; template ${TEMPLATE}`)
  exitCode = await new Promise<number>((resolve) => {
    const tap = spawn('npx', ['tap', ...process.argv.slice(2)], {
      stdio: 'inherit',
      env: { ...process.env, TEST_DATABASE_URL: adminUrl, TEST_TEMPLATE_DATABASE: TEMPLATE },
    })
    tap.on('exit', (code) => resolve(code ?? 1))
  })
} finally {
  await admin(adminUrl, `DROP DATABASE IF EXISTS ${TEMPLATE} WITH (FORCE)`).catch(() => {})
  await embedded?.stop()
}
process.exit(exitCode)
