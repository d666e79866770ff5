// Arranging users and signing in for tests of authenticated routes. createUser writes the row as the
// table owner (behind the API's back); signIn goes through the real login route.
import bcrypt from 'bcryptjs'
import type { App } from '../src/app.ts'
import { adminQuery } from './helper.ts'

export type Role = 'owner' | 'admin' | 'member'

export interface CreateUserInput {
  email: string
  password: string
  role: Role
  name?: string
  active?: boolean
  /** bcrypt cost of the stored hash (4 by default: fast, and the test config's BCRYPT_COST). */
  cost?: number
}

export interface CreatedUser {
  id: string
  email: string
  name: string
  role: Role
  active: boolean
}

/** Inserts a user of `tenantId` (email stored lower-cased, as the API does). */
export async function createUser (ownerUrl: string, tenantId: string, input: CreateUserInput): Promise<CreatedUser> {
  const email = input.email.toLowerCase()
  const name = input.name ?? email.split('@')[0]!
  const passwordHash = bcrypt.hashSync(input.password, input.cost ?? 4)
  const { rows } = await adminQuery<{ id: string }>(ownerUrl,
    'INSERT INTO users (tenant_id, email, name, role, password_hash, active) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id',
    [tenantId, email, name, input.role, passwordHash, input.active ?? true])
  return { id: rows[0]!.id, email, name, role: input.role, active: input.active ?? true }
}

export interface SignedIn {
  accessToken: string
  refreshToken: string
  /** Cookie name → value, as set by the login answer (pass to app.inject({ cookies })). */
  cookies: Record<string, string>
  /** The CSRF token to send as X-CSRF-Token with cookie-authenticated unsafe requests. */
  csrfToken: string
  user: { id: string; email: string; name: string; role: Role; active: boolean; createdAt: string; updatedAt: string }
}

/** Signs in through POST /v1/auth/login on `host`; throws when the login does not answer 200. */
export async function signIn (app: App, host: string, email: string, password: string): Promise<SignedIn> {
  const res = await app.inject({ method: 'POST', url: '/v1/auth/login', headers: { host }, payload: { email, password } })
  if (res.statusCode !== 200) throw new Error(`signIn(${email}@${host}) answered ${res.statusCode}: ${res.body}`)
  const body = res.json()
  const cookies: Record<string, string> = {}
  for (const cookie of res.cookies) cookies[cookie.name] = cookie.value
  const csrfName = Object.keys(cookies).find((name) => /csrf$/.test(name))
  return { accessToken: body.accessToken, refreshToken: body.refreshToken, cookies, csrfToken: csrfName ? cookies[csrfName]! : '', user: body.user }
}
