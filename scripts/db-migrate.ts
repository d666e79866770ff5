// `npm run db:migrate -- --name add_comments`: the whole schema loop in one command. Starts the
// embedded PostgreSQL of this checkout when DATABASE_URL is unset and it is not already running (and
// stops it again afterwards), runs `prisma migrate dev` with the given arguments, then
// `prisma generate` (Prisma 7's migrate no longer generates the client, and a stale client makes the
// scoped client blind to a new model).
import { spawnSync } from 'node:child_process'
import { loadConfig } from '../src/config.ts'
import { EMBEDDED_DATABASE_NAME, embeddedDirectory } from '../src/db/database.ts'
import { startEmbeddedPostgres } from '../src/db/embedded-postgres.ts'
import { loadEnvFileIfPresent } from '../src/env-file.ts'

loadEnvFileIfPresent()
const config = loadConfig()
const embedded = config.embeddedDatabase
  ? await startEmbeddedPostgres({ dir: embeddedDirectory(config), port: config.EMBEDDED_PG_PORT, database: EMBEDDED_DATABASE_NAME, log: (m) => console.log(`[database] ${m}`) })
  : undefined
const env = { ...process.env, DATABASE_URL: config.DATABASE_URL ?? embedded!.url }

/** Runs the Prisma CLI; returns its exit code. */
function prisma (...args: string[]): number {
  return spawnSync('npx', ['prisma', ...args], { stdio: 'inherit', env }).status ?? 1
}

let code = 1
try {
  code = prisma('migrate', 'dev', ...process.argv.slice(2))
  if (code === 0) code = prisma('generate')
} finally {
  // Leave a database that `npm start` is using running.
  if (embedded && !embedded.adopted) await embedded.stop()
}
process.exit(code)
