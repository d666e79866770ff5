// Access tokens on @fastify/jwt (fast-jwt): signed by the key ring's newest key, verified against
// the key their `kid` names, with that key's own algorithm only. Every way a token can be wrong
// ends as one InvalidTokenError (a 401), never as a library error that would turn into a 500.
import type { KeyObject } from 'node:crypto'
import type { FastifyJWTOptions, JWT } from '@fastify/jwt'
import type { Config } from '../config.ts'
import type { JwtAlgorithm, KeyRing } from './keys.ts'
import { UUID } from '../ids.ts'

import { ROLES, type Role } from './permissions.ts'

export type { Role }

export interface AccessClaims {
  iss: string
  aud: string
  sub: string
  /** The tenant the token was issued by: it is only valid on that tenant's hosts. */
  tid: string
  /** The session (refresh-token family) it belongs to: revoking the session revokes the token. */
  sid: string
  role: Role
  jti: string
  iat: number
  exp: number
}

/** What a token is signed from; the signer adds iss, aud, iat and exp. */
export type AccessPayload = Pick<AccessClaims, 'sub' | 'tid' | 'sid' | 'role' | 'jti'>

export class InvalidTokenError extends Error {
  override name = 'InvalidTokenError'
}

const MAX_TOKEN_LENGTH = 4096
/** Tolerated clock difference between instances for `iat` and `nbf` (not for `exp`). */
const CLOCK_SKEW_S = 30
const ALGORITHMS: JwtAlgorithm[] = ['EdDSA', 'ES256']

type JwtConfig = Pick<Config, 'JWT_ISSUER' | 'JWT_AUDIENCE' | 'ACCESS_TOKEN_TTL_S'>

// fast-jwt asks for the key on every cache miss: export each public key once.
const pems = new WeakMap<object, string>()
function publicPem (key: { publicKey: KeyObject }): string {
  let pem = pems.get(key)
  if (!pem) pems.set(key, (pem = key.publicKey.export({ format: 'pem', type: 'spki' }).toString()))
  return pem
}

export function jwtOptions (ring: KeyRing, config: JwtConfig): FastifyJWTOptions {
  const signing = ring.signing
  return {
    secret: {
      private: signing.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
      // fast-jwt's key fetcher (app.jwt.verify). `algorithms` only says which algorithms exist;
      // this pins each key to its own.
      public: async ({ header }: { header: Record<string, unknown> }) => {
        const key = typeof header.kid === 'string' ? ring.find(header.kid) : undefined
        if (!key || header.alg !== key.alg) throw new Error('unknown key, or an algorithm not of this key')
        return publicPem(key)
      },
    },
    // request.user is ours (plugins/auth.ts); request.jwtVerify is not used.
    decoratorName: 'jwtPayload',
    sign: { algorithm: signing.alg, kid: signing.kid, iss: config.JWT_ISSUER, aud: config.JWT_AUDIENCE, expiresIn: config.ACCESS_TOKEN_TTL_S },
    verify: {
      algorithms: ALGORITHMS,
      allowedIss: config.JWT_ISSUER,
      allowedAud: config.JWT_AUDIENCE,
      requiredClaims: ['iss', 'aud', 'exp', 'iat', 'sub', 'tid', 'sid', 'jti', 'role'],
      // fast-jwt applies one clockTolerance to nbf and exp; nbf (and iat) get the skew in accessClaims.
      ignoreNotBefore: true,
      // Every authenticated request verifies: cache by token hash, each entry bounded by its exp.
      cache: 10_000,
      cacheTTL: 600_000,
    },
  }
}

/** The token's claims when it is genuine, current and complete; InvalidTokenError otherwise. */
export async function verifyAccessToken (jwt: JWT, token: string, audience: string): Promise<AccessClaims> {
  if (token.length > MAX_TOKEN_LENGTH) throw new InvalidTokenError('token too long')
  let payload: Record<string, unknown>
  try {
    // A key fetcher makes fast-jwt's verifier asynchronous, which @fastify/jwt's types do not show.
    payload = await (jwt.verify(token) as unknown as Promise<Record<string, unknown>>)
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code
    if (typeof code === 'string' && code.startsWith('FAST_JWT_')) throw new InvalidTokenError((error as Error).message)
    throw error
  }
  return accessClaims(payload, audience)
}

/** What fast-jwt does not check: iat/nbf in the future, and the shape of our own claims. */
function accessClaims (claims: Record<string, unknown>, audience: string, nowS = Math.floor(Date.now() / 1000)): AccessClaims {
  const { iss, sub, tid, sid, role, jti, iat, exp, nbf } = claims
  if (typeof iat !== 'number' || iat > nowS + CLOCK_SKEW_S) throw new InvalidTokenError('issued in the future')
  if (nbf !== undefined && (typeof nbf !== 'number' || nbf > nowS + CLOCK_SKEW_S)) throw new InvalidTokenError('not yet valid')
  for (const id of [sub, tid, sid, jti]) if (typeof id !== 'string' || !UUID.test(id)) throw new InvalidTokenError('sub, tid, sid and jti are required')
  if (typeof role !== 'string' || !(ROLES as readonly string[]).includes(role)) throw new InvalidTokenError('role is required')
  return { iss, aud: audience, sub, tid, sid, role, jti, iat, exp } as AccessClaims
}
