// Access tokens: compact JWS signed with the key ring's newest key, verified against the key its
// `kid` names, with that key's own algorithm only. Written on node:crypto rather than through
// @fastify/jwt so that the algorithm is pinned per key by construction (no `alg: none`, no HS256
// with a public key as the secret, no algorithm the key was not made for) and so that every way a
// token can be wrong ends as one InvalidTokenError, never as a library error that turns into a 500.
import { sign as cryptoSign, verify as cryptoVerify } from 'node:crypto'
import type { KeyRing, SigningKey } from './keys.ts'

export type Role = 'owner' | 'admin' | 'member'

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

export class InvalidTokenError extends Error {
  override name = 'InvalidTokenError'
}

const MAX_TOKEN_LENGTH = 4096
const SEGMENT = /^[A-Za-z0-9_-]+$/
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const ROLES = new Set<string>(['owner', 'admin', 'member'])
/** Tolerated clock difference between instances for `iat` (not for `exp`). */
const CLOCK_SKEW_S = 30

const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')

function signatureOptions(key: SigningKey, which: 'privateKey' | 'publicKey') {
  // ES256 signatures are the raw r||s pair in JWS (RFC 7518 §3.4), not DER.
  return key.alg === 'ES256' ? { key: key[which], dsaEncoding: 'ieee-p1363' as const } : key[which]
}

export function signAccessToken(ring: KeyRing, claims: AccessClaims): string {
  const key = ring.signing
  const input = `${encode({ alg: key.alg, typ: 'JWT', kid: key.kid })}.${encode(claims)}`
  const digest = key.alg === 'ES256' ? 'sha256' : null
  return `${input}.${cryptoSign(digest, Buffer.from(input), signatureOptions(key, 'privateKey')).toString('base64url')}`
}

export interface Expectations {
  issuer: string
  audience: string
  nowS?: number
}

/** The token's claims when it is genuine, current and complete; InvalidTokenError otherwise. */
export function verifyAccessToken(ring: KeyRing, token: string, expected: Expectations): AccessClaims {
  if (token.length > MAX_TOKEN_LENGTH) throw new InvalidTokenError('token too long')
  const parts = token.split('.')
  if (parts.length !== 3 || !parts.every((part) => SEGMENT.test(part))) throw new InvalidTokenError('malformed token')
  const [headerPart, payloadPart, signaturePart] = parts as [string, string, string]
  const header = decodeJson(headerPart)
  if (typeof header.kid !== 'string' || typeof header.alg !== 'string') throw new InvalidTokenError('kid and alg are required')
  if ('crit' in header) throw new InvalidTokenError('unsupported critical header')
  const key = ring.find(header.kid)
  if (!key) throw new InvalidTokenError('unknown key')
  if (header.alg !== key.alg) throw new InvalidTokenError('algorithm not allowed for this key')
  const digest = key.alg === 'ES256' ? 'sha256' : null
  const genuine = cryptoVerify(digest, Buffer.from(`${headerPart}.${payloadPart}`), signatureOptions(key, 'publicKey'), Buffer.from(signaturePart, 'base64url'))
  if (!genuine) throw new InvalidTokenError('bad signature')
  return checkClaims(decodeJson(payloadPart), expected)
}

function decodeJson(part: string): Record<string, unknown> {
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'))
  } catch {
    throw new InvalidTokenError('undecodable token')
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidTokenError('undecodable token')
  return value as Record<string, unknown>
}

function checkClaims(claims: Record<string, unknown>, { issuer, audience, nowS = Math.floor(Date.now() / 1000) }: Expectations): AccessClaims {
  const { iss, aud, sub, tid, sid, role, jti, iat, exp, nbf } = claims
  if (iss !== issuer) throw new InvalidTokenError('wrong issuer')
  if (!(aud === audience || (Array.isArray(aud) && aud.includes(audience)))) throw new InvalidTokenError('wrong audience')
  if (typeof exp !== 'number' || typeof iat !== 'number') throw new InvalidTokenError('exp and iat are required')
  if (exp <= nowS) throw new InvalidTokenError('expired')
  if (iat > nowS + CLOCK_SKEW_S) throw new InvalidTokenError('issued in the future')
  if (nbf !== undefined && (typeof nbf !== 'number' || nbf > nowS + CLOCK_SKEW_S)) throw new InvalidTokenError('not yet valid')
  for (const id of [sub, tid, sid, jti]) if (typeof id !== 'string' || !UUID.test(id)) throw new InvalidTokenError('sub, tid, sid and jti are required')
  if (typeof role !== 'string' || !ROLES.has(role)) throw new InvalidTokenError('role is required')
  return { iss, aud: audience, sub, tid, sid, role, jti, iat, exp } as AccessClaims
}
