// The login answer (shared/API.md "Authentication"): what POST /v1/auth/login, refresh and
// POST /v1/invitations/accept answer when someone is signed in — tokens in the body and as cookies.
import type { FastifyReply } from 'fastify'
import Type from 'typebox'
import type { AuthCookies } from './cookies.ts'
import { PublicUser, toPublicUser } from './public-user.ts'
import type { IssuedTokens } from './sessions.ts'

/** The answer's schema (serialization and the OpenAPI document). */
export const Tokens = Type.Object({
  accessToken: Type.String(),
  refreshToken: Type.String(),
  tokenType: Type.Literal('Bearer'),
  expiresIn: Type.Integer({ description: 'access token lifetime, seconds' }),
  user: PublicUser,
})

/** Sets the session cookies and `Cache-Control: no-store` on `reply`, and returns the body. */
export function signedInAnswer (cookies: AuthCookies, reply: FastifyReply, tokens: IssuedTokens, user: Parameters<typeof toPublicUser>[0]) {
  cookies.set(reply, tokens)
  reply.header('cache-control', 'no-store')
  return { accessToken: tokens.accessToken, refreshToken: tokens.refreshToken, tokenType: 'Bearer' as const, expiresIn: tokens.expiresIn, user: toPublicUser(user) }
}
