// The API's own database login: a LOGIN role that is a member of saas_app and nothing more (no
// table ownership, no BYPASSRLS, not a superuser), so row-level security binds every query it makes
// and the connection needs no startup parameter (which PgBouncer in transaction mode refuses).
// Production operators create it once (README, "Deploying"); the embedded database of `npm start`,
// the test harness and the benchmarks create it here so that they run the same topology.
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { withShortLivedClient } from './short-lived-client.ts'

/** The role the API runs as when row-level security is on (created by the migrations). */
export const APP_ROLE = 'saas_app'
/** The login created for the embedded database, tests and benchmarks. */
export const DEFAULT_API_LOGIN = 'saas_api'

const DUPLICATE_OBJECT = '42710'
const UNIQUE_VIOLATION = '23505' // two CREATE ROLE racing on pg_authid's unique index
const TUPLE_CONCURRENTLY_UPDATED = 'XX000'

/**
 * Creates (or updates the password of) `login` as `LOGIN NOSUPERUSER NOBYPASSRLS IN ROLE saas_app`
 * on the server of `adminUrl` (a role with CREATEROLE, e.g. the embedded superuser). Safe to call
 * concurrently from several processes (roles are cluster-wide).
 * @throws Error when saas_app does not exist yet (migrations not applied) or the role cannot be made.
 */
export async function ensureApiLogin (adminUrl: string, login: string, password: string): Promise<void> {
  await withShortLivedClient(adminUrl, async (client) => {
    const { rowCount } = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [APP_ROLE])
    if (!rowCount) throw new Error(`role ${APP_ROLE} does not exist: apply the migrations first`)
    const role = client.escapeIdentifier(login)
    const secret = client.escapeLiteral(password)
    try {
      await client.query(`CREATE ROLE ${role} LOGIN NOSUPERUSER NOBYPASSRLS INHERIT PASSWORD ${secret} IN ROLE ${APP_ROLE}`)
    } catch (error) {
      const code = (error as { code?: string }).code
      if (code !== DUPLICATE_OBJECT && code !== UNIQUE_VIOLATION) throw error
      await retryingConcurrentUpdate(() => client.query(`ALTER ROLE ${role} LOGIN NOSUPERUSER NOBYPASSRLS INHERIT PASSWORD ${secret}`))
      await retryingConcurrentUpdate(() => client.query(`GRANT ${APP_ROLE} TO ${role}`))
    }
  })
}

async function retryingConcurrentUpdate (run: () => Promise<unknown>): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await run()
      return
    } catch (error) {
      if ((error as { code?: string }).code !== TUPLE_CONCURRENTLY_UPDATED || attempt >= 20) throw error
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
}

/** `url` with another user and password (same server, database and parameters). */
export function withLogin (url: string, login: string, password: string): string {
  const copy = new URL(url)
  copy.username = encodeURIComponent(login)
  copy.password = encodeURIComponent(password)
  return copy.toString()
}

/**
 * The embedded database's API login: `saas_api` with a random password generated once and kept in
 * `<dir>/api-password` (0600, beside the superuser's). Returns the API's URL for `ownerUrl`'s database.
 */
export async function embeddedApiLogin (dir: string, ownerUrl: string): Promise<string> {
  const passwordFile = path.join(dir, 'api-password')
  let password = (await readFile(passwordFile, 'utf8').catch(() => '')).trim()
  if (!password) {
    password = randomBytes(24).toString('base64url')
    await writeFile(passwordFile, password, { mode: 0o600 })
  }
  await ensureApiLogin(ownerUrl, DEFAULT_API_LOGIN, password)
  return withLogin(ownerUrl, DEFAULT_API_LOGIN, password)
}
