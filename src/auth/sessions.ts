// Sessions and the tokens they hand out. A session row is one sign-in: a refresh-token family.
// Refresh tokens read `<session id>.<secret>`; only the SHA-256 of the current secret is stored (the
// secret holds 128 random bits, so a fast hash is enough). Each refresh swaps the secret with a
// compare-and-set; presenting another secret this server issued for a live session (an
// already-rotated one, i.e. a replay, or the loser of a race) revokes the whole session. A secret it
// never issued — a guess by someone who knows only the session id, which the access token's `sid`
// and the auth.login event show — is a plain 401 that signs no one out: each secret carries an HMAC
// tag of its random part (newSecret). Sessions end at an absolute expiresAt (SESSION_MAX_AGE_S)
// that rotation never extends.
import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto'
import type { Config } from '../config.ts'
import { Prisma } from '../generated/prisma/client.ts'
import { AppError, unauthorized } from '../errors.ts'
import type { ScopedClient } from '../tenancy/scoped-client.ts'
import { recordAuditEvent, type AuditContext } from '../audit/audit-log.ts'
import type { JWT } from '@fastify/jwt'
import { verifyAccessToken, type AccessClaims, type AccessPayload, type Role } from './jwt.ts'
import type { KeyRing } from './keys.ts'
import { publicUserSelect } from './public-user.ts'
import { SessionStateCache, type SessionState } from './session-state.ts'
import { UUID_SOURCE } from '../ids.ts'

export interface IssuedTokens {
  accessToken: string
  refreshToken: string
  csrfToken: string
  /** Access token lifetime, seconds. */
  expiresIn: number
  sessionExpiresAt: Date
}

interface TokenUser {
  id: string
  role: Role
}

const REFRESH_TOKEN = new RegExp(`^(${UUID_SOURCE})\\.([A-Za-z0-9_-]{43})$`)
const sha256 = (value: string) => createHash('sha256').update(value).digest('hex')

export const invalidCredentials = () => new AppError('INVALID_CREDENTIALS', 'Invalid email or password')
const revoked = () => unauthorized('Session expired or revoked')

type AuthConfig = Pick<Config, 'JWT_AUDIENCE' | 'ACCESS_TOKEN_TTL_S' | 'SESSION_MAX_AGE_S' | 'REVOCATION_CACHE_TTL_MS' | 'CHANGE_FEED_CACHE_TTL_MS'>

export class AuthService {
  readonly states: SessionStateCache

  constructor (
    private readonly config: AuthConfig,
    readonly keys: KeyRing,
    private readonly jwt: JWT,
    private readonly csrfSecret: string,
    forTenant: (tenantId: string) => ScopedClient
  ) {
    this.states = new SessionStateCache(config.REVOCATION_CACHE_TTL_MS, (tenantId, sessionId) => loadSessionState(forTenant(tenantId), sessionId), config.CHANGE_FEED_CACHE_TTL_MS)
  }

  /**
   * Opens a session for a user whose password was just checked, and issues its tokens. The session
   * and its `auth.login` audit event (with `audit`'s context) commit together. Throws
   * INVALID_CREDENTIALS (401), the login's one failure answer, when the user was deactivated,
   * deleted or had its password changed since that check.
   */
  async startSession (db: ScopedClient, tenantId: string, user: TokenUser & { authVersion: number }, audit: AuditContext): Promise<IssuedTokens> {
    const sessionId = randomUUID() // chosen here: the secret's tag names it
    const secret = this.newSecret(sessionId)
    const expiresAt = new Date(Date.now() + this.config.SESSION_MAX_AGE_S * 1000)
    const session = await db.$transaction(async (tx) => {
      const created = await tx.session.create({ data: { id: sessionId, userId: user.id, refreshTokenHash: sha256(secret), refreshTagged: true, expiresAt } as never, select: { id: true } })
      // The password was checked against a row read before bcrypt ran: if the password changed or the
      // user was deactivated meanwhile, this session must not exist (the transaction rolls back).
      const now = await tx.user.findFirst({ where: { id: user.id }, select: { active: true, authVersion: true } })
      if (!now?.active || now.authVersion !== user.authVersion) throw invalidCredentials()
      await recordAuditEvent(tx, { ...audit, actor: { type: 'user', id: user.id }, action: 'auth.login', target: { type: 'user', id: user.id }, data: { sessionId: created.id } })
      return created
    }).catch((error: unknown) => {
      // The user was deleted after that read: the session's foreign key refuses the insert (P2003).
      // The error handler's 404 would tell the caller the password was right (review 59).
      throw error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2003' ? invalidCredentials() : error
    })
    return this.issue(tenantId, user, session.id, secret, expiresAt)
  }

  /**
   * Rotates a refresh token: new tokens for the same session, or 401 (and a revoked session on
   * replay, recorded as `auth.refresh_reused` with `audit`'s context).
   */
  async refresh (db: ScopedClient, tenantId: string, presented: string, audit: AuditContext) {
    const [, sessionId, secret] = REFRESH_TOKEN.exec(presented) ?? []
    if (!sessionId || !secret) throw revoked()
    const session = await db.session.findFirst({
      where: { id: sessionId },
      select: { refreshTokenHash: true, refreshTagged: true, revokedAt: true, expiresAt: true, user: { select: { ...publicUserSelect } } },
    })
    if (!session || session.revokedAt || session.expiresAt.getTime() <= Date.now() || !session.user.active) throw revoked()
    const oldHash = sha256(secret)
    const replayed = async () => {
      await db.$transaction(async (tx) => {
        // Only the request that revokes records the reuse: a session that a logout, a password
        // change or the other half of a double refresh revoked meanwhile is a plain 401.
        if (await this.endSession(tx as never, tenantId, sessionId)) {
          await recordAuditEvent(tx, { ...audit, actor: { type: 'user', id: session.user.id }, action: 'auth.refresh_reused', target: { type: 'session', id: sessionId } })
        }
      })
      this.sessionEnded(tenantId, sessionId)
      return revoked()
    }
    if (!sameText(oldHash, session.refreshTokenHash)) {
      // Never issued (a tagged session's secret without its tag): a guess signs no one out.
      if (session.refreshTagged && !this.issuedHere(sessionId, secret)) throw revoked()
      throw await replayed() // an older secret of the family
    }
    const next = this.newSecret(sessionId)
    const swapped = await db.session.updateMany({ where: { id: sessionId, refreshTokenHash: oldHash, revokedAt: null }, data: { refreshTokenHash: sha256(next) } })
    if (swapped.count !== 1) throw await replayed() // the same secret used twice at once
    return { tokens: this.issue(tenantId, session.user, sessionId, next, session.expiresAt), user: session.user }
  }

  /**
   * Revokes one session: its refresh token and, at once here and within the cache TTL elsewhere, its
   * access tokens. Answers whether this call revoked it (false: it was revoked already).
   */
  async endSession (db: ScopedClient, tenantId: string, sessionId: string): Promise<boolean> {
    const ended = await db.session.updateMany({ where: { id: sessionId, revokedAt: null }, data: { revokedAt: new Date() } })
    this.states.dropSession(tenantId, sessionId)
    return ended.count === 1
  }

  /**
   * Call once the transaction that ended session `sessionId` (endSession) has committed: a request
   * of that session between the revocation and the commit (the audit event's insert waits on the
   * tenant's chain) reloaded its state before the change was visible and cached it as usable. This
   * drops it here at once and tells the other instances, as endSession did.
   */
  sessionEnded (tenantId: string, sessionId: string): void {
    this.states.dropSession(tenantId, sessionId)
  }

  /** Revokes every session of a user but `keepSessionId` (after a password change). */
  async endOtherSessions (db: ScopedClient, tenantId: string, userId: string, keepSessionId: string): Promise<void> {
    await db.session.updateMany({ where: { userId, id: { not: keepSessionId }, revokedAt: null }, data: { revokedAt: new Date() } })
    this.states.dropUser(tenantId, userId)
  }

  /** Revokes every session of a user (e.g. on deactivation, so that reactivating does not revive them). */
  async endAllSessions (db: ScopedClient, tenantId: string, userId: string): Promise<void> {
    await db.session.updateMany({ where: { userId, revokedAt: null }, data: { revokedAt: new Date() } })
    this.states.dropUser(tenantId, userId)
  }

  /**
   * Call after changing a user behind the auth module's back (deactivation, deletion, role
   * change): this instance stops trusting cached state for that user at once.
   */
  userChanged (tenantId: string, userId: string): void {
    this.states.dropUser(tenantId, userId)
  }

  /** The claims of a genuine, current access token of this issuer and audience; InvalidTokenError otherwise. */
  verify (token: string): Promise<AccessClaims> {
    return verifyAccessToken(this.jwt, token, this.config.JWT_AUDIENCE)
  }

  /** The session's state when it still counts; null when revoked, expired, deleted or its user inactive. */
  async usableSession (tenantId: string, sessionId: string): Promise<SessionState | null> {
    const state = await this.states.get(tenantId, sessionId)
    return state?.usable && state.expiresAt > Date.now() ? state : null
  }

  /**
   * CSRF token: a signed double-submit token bound to the tenant and the session. A value planted in
   * the cookie by a sibling subdomain (cookie tossing) is useless without the server's secret.
   */
  csrfToken (tenantId: string, sessionId: string): string {
    return createHmac('sha256', this.csrfSecret).update(`csrf\0${tenantId}\0${sessionId}`).digest('base64url')
  }

  csrfValid (tenantId: string, sessionId: string, header: string | undefined, cookie: string | undefined): boolean {
    if (!header || !cookie) return false
    return sameText(header, cookie) && sameText(header, this.csrfToken(tenantId, sessionId))
  }

  /**
   * A new refresh secret of session `sessionId`: 16 random bytes, then the first 16 bytes of
   * HMAC-SHA-256(CSRF_SECRET, "refresh", session id, those random bytes) — 43 base64url characters.
   */
  private newSecret (sessionId: string): string {
    const nonce = randomBytes(16)
    return Buffer.concat([nonce, this.secretTag(sessionId, nonce)]).toString('base64url')
  }

  /**
   * Whether `secret` is one this server issued for `sessionId` (its tag checks), current or not.
   * Asked only of sessions opened with tagged secrets (refreshTagged): an older session's untagged
   * wrong secret may be a replay and still revokes it. Secrets issued under a CSRF_SECRET since
   * replaced fail it: presented after their rotation they are refused without revoking the session.
   */
  private issuedHere (sessionId: string, secret: string): boolean {
    const bytes = Buffer.from(secret, 'base64url')
    return bytes.length === 32 && timingSafeEqual(bytes.subarray(16), this.secretTag(sessionId, bytes.subarray(0, 16)))
  }

  private secretTag (sessionId: string, nonce: Buffer): Buffer {
    return createHmac('sha256', this.csrfSecret).update(`refresh\0${sessionId}\0`).update(nonce).digest().subarray(0, 16)
  }

  private issue (tenantId: string, user: TokenUser, sessionId: string, secret: string, sessionExpiresAt: Date): IssuedTokens {
    const payload: AccessPayload = { sub: user.id, tid: tenantId, sid: sessionId, role: user.role, jti: randomUUID() }
    return {
      accessToken: this.jwt.sign(payload),
      refreshToken: `${sessionId}.${secret}`,
      csrfToken: this.csrfToken(tenantId, sessionId),
      expiresIn: this.config.ACCESS_TOKEN_TTL_S,
      sessionExpiresAt,
    }
  }
}

async function loadSessionState (db: ScopedClient, sessionId: string): Promise<SessionState | null> {
  const session = await db.session.findFirst({
    where: { id: sessionId },
    select: { userId: true, revokedAt: true, expiresAt: true, user: { select: { active: true, role: true } } },
  })
  if (!session) return null
  return { userId: session.userId, role: session.user.role, usable: !session.revokedAt && session.user.active, expiresAt: session.expiresAt.getTime() }
}

function sameText (a: string, b: string): boolean {
  const left = Buffer.from(a)
  const right = Buffer.from(b)
  return left.length === right.length && timingSafeEqual(left, right)
}
