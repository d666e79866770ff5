// The database the Prisma CLI (migrate, db seed, …) works on: DATABASE_URL, or else the embedded
// PostgreSQL of this checkout (start it with `npm start` first).
import path from 'node:path'
import { embeddedUrl } from './embedded-postgres.ts'

export function cliDatabaseUrl (env: Record<string, string | undefined> = process.env): string {
  if (env.DATABASE_URL) return env.DATABASE_URL
  const dir = path.resolve(env.DATA_DIR ?? '.data', 'postgres')
  const port = Number(env.EMBEDDED_PG_PORT ?? 54329)
  // Before the embedded database was ever created there is no password yet: the URL still names
  // where it will be, so the CLI's error says which server it could not reach.
  return embeddedUrl(dir, port, 'app') ?? `postgresql://postgres@127.0.0.1:${port}/app`
}
