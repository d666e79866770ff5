// A deployment of two API server processes on one fresh database (tenant acme with five users),
// and the probes the multi-instance tests share.
import { createUser } from './auth-helper.ts'
import { call, sharedSecrets, startServer, timeUntil, type Server } from './cluster-helper.ts'
import { createTestDatabase, insertTenant } from './helper.ts'

export const PASSWORD = 'correct horse battery staple'
export const ADMIN_TOKEN = 'platform-admin-token-of-the-instances-test-0123456789'
export const HOST = 'acme.localhost'
export const BOUND_MS = 1_000

export const login = (server: Server, email: string, password = PASSWORD) =>
  call(server.port, { method: 'POST', path: '/v1/auth/login', headers: { host: HOST }, body: { email, password } })
export const me = (server: Server, token: string) => call(server.port, { path: '/v1/me', headers: { host: HOST, authorization: `Bearer ${token}` } })
export const usersList = (server: Server, token: string) => call(server.port, { path: '/v1/users', headers: { host: HOST, authorization: `Bearer ${token}` } })

export async function deployment (t: Tap, env: Record<string, string>) {
  const ownerUrl = await createTestDatabase(t)
  const acme = await insertTenant(ownerUrl, 'acme')
  const users: Record<string, string> = {}
  for (const [email, role] of [['owner@acme.test', 'owner'], ['bob@acme.test', 'member'], ['carol@acme.test', 'admin'], ['dave@acme.test', 'member'], ['erin@acme.test', 'member']] as const) {
    users[email] = (await createUser(ownerUrl, acme, { email, password: PASSWORD, role })).id
  }
  const common = {
    NODE_ENV: 'production',
    DATABASE_URL: ownerUrl,
    PLATFORM_ADMIN_TOKEN: ADMIN_TOKEN,
    REVOCATION_CACHE_TTL_MS: '5000',
    TENANT_CACHE_TTL_MS: '5000',
    API_KEY_CACHE_TTL_MS: '5000', // every cache at its maximum: only the invalidation channel can beat 1 s
    CHANGE_FEED_CACHE_TTL_MS: '0', // no change feed (test/change-feed.test.ts): these tests are the channel's
    ...sharedSecrets(),
    ...env,
  }
  const [a, b] = await Promise.all([startServer(t, common), startServer(t, common)])
  return { a: a!, b: b!, users, ownerUrl }
}
export type Tap = Parameters<typeof createTestDatabase>[0] & { comment(...args: unknown[]): void; equal(...args: unknown[]): void; ok(...args: unknown[]): void }

/** Signs in on `server` and returns the access token. */
export async function token (server: Server, email: string): Promise<string> {
  const answer = await login(server, email)
  if (answer.status !== 200) throw new Error(`login ${email}: ${answer.status} ${answer.body}`)
  return answer.json().accessToken as string
}

/** `change` on A, then how long B keeps accepting `probe` (refused = `refused(status)`). */
export async function propagation (t: Tap, what: string, b: Server, probe: () => Promise<{ status: number }>, change: () => Promise<void>, refused: (status: number) => boolean = (status) => status === 401) {
  t.equal((await probe()).status, 200, `${what}: accepted on B before (and now cached there)`)
  await change()
  const ms = await timeUntil(async () => refused((await probe()).status), 10_000)
  t.comment(`${what}: refused on B ${ms} ms after A's answer`)
  t.ok(ms < BOUND_MS, `${what}: refused on B within 1 s (${ms} ms)`)
}

export const logout = (server: Server, accessToken: string) =>
  call(server.port, { method: 'POST', path: '/v1/auth/logout', headers: { host: HOST, authorization: `Bearer ${accessToken}` } })
export const patchUser = (server: Server, actor: string, id: string, body: object) =>
  call(server.port, { method: 'PATCH', path: `/v1/users/${id}`, headers: { host: HOST, authorization: `Bearer ${actor}` }, body })
export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
