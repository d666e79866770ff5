// Invitations (tenant hosts): shared/API.md "Invitations and password reset".
// Admins and owners invite (only an owner invites an owner), list pending invitations and revoke
// them (`invitationRoutes`, in the authenticated scope); the invited person accepts with the link's
// token, without signing in, and is signed in (`invitationAcceptRoutes`, public).
// The invitation row and its email job commit together (src/jobs/tenant-transaction.ts).
import { randomUUID } from 'node:crypto'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import type { Limiter, Limits } from '../plugins/limits.ts'
import { ListQuery, Page, page, pageArgs } from '../src/api/pagination.ts'
import { IdParams, NoContent, responses, RoleSchema, signedIn, Timestamp, Uuid } from '../src/api/schemas.ts'
import { signedInAnswer, Tokens } from '../src/auth/login-answer.ts'
import { assertCan, requirePermission } from '../src/auth/permissions.ts'
import { publicUserSelect } from '../src/auth/public-user.ts'
import type { Config } from '../src/config.ts'
import { AppError, conflict, notFound } from '../src/errors.ts'
import { tenantTransaction } from '../src/jobs/tenant-transaction.ts'
import { INVITATION_EMAIL_JOB } from '../src/people/jobs.ts'
import { revokeInvitation } from '../src/people/invitations.ts'
import { LINK_TOKEN_PATTERN, LinkTokens } from '../src/people/tokens.ts'
import { isUniqueViolation } from '../src/tenancy/tenant-directory.ts'
import { DisplayName, Email } from '../src/api/schemas.ts'
import { auditContext, auditedTransaction, recordAuditEvent } from '../src/audit/audit-log.ts'

const tags = ['invitations']

const Invitation = Type.Object({
  id: Uuid,
  email: Type.String(),
  role: RoleSchema,
  createdAt: Timestamp,
  expiresAt: Timestamp,
})
const invitationFields = { id: true, email: true, role: true, createdAt: true, expiresAt: true } as const

const CreateInvitation = Type.Object({ email: Email, role: RoleSchema }, { additionalProperties: false })
/**
 * A link token as it appears in invitation and reset links. Any string validates: a token of the
 * wrong shape (empty, too long, …) gets the one answer of every unusable token from
 * presentedTokenHash, before any lookup (the request body's size is bounded by BODY_LIMIT).
 */
export const LinkToken = Type.String({ description: 'the token of the emailed link' })
const AcceptInvitation = Type.Object({
  token: LinkToken,
  name: DisplayName,
  password: Type.String({ description: 'at least PASSWORD_MIN_LENGTH characters, at most 72 bytes of UTF-8' }),
}, { additionalProperties: false })

/** One answer for every token that cannot be used: unknown, used, revoked, expired, another tenant's or purpose's. */
export const unusableToken = () => new AppError('BAD_REQUEST', 'This link is invalid or has expired')
const TOKEN = new RegExp(LINK_TOKEN_PATTERN)
/** The stored hash of a presented token; 400 for anything that is not a token's shape. */
export function presentedTokenHash (token: string): string {
  if (!TOKEN.test(token)) throw unusableToken()
  return LinkTokens.hash(token)
}

const pending = () => ({ acceptedAt: null, revokedAt: null, expiresAt: { gt: new Date() } })

/** POST/GET /v1/invitations, DELETE /v1/invitations/:id: registered in the authenticated scope. */
const invitationRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { config } = app
  // Each invitation sends an email to an address the inviter chose: bounded per tenant so that a
  // tenant (or a stolen admin session) cannot use the service as a mail cannon.
  const invitationsPerTenant = app.limits.create({ name: 'invitations-tenant', max: config.INVITATIONS_PER_TENANT_MAX, windowMs: config.INVITATIONS_WINDOW_S * 1000, key: (request) => request.tenantId })

  app.post('/v1/invitations', {
    onRequest: requirePermission('invitations.manage'),
    schema: { tags, security: signedIn, summary: 'Invite someone by email (only an owner invites an owner)', body: CreateInvitation, response: responses({ 201: Invitation }) },
  }, async (request, reply) => {
    const { role } = request.body
    const email = request.body.email.toLowerCase()
    if (role === 'owner') assertCan(request.principal.role, 'users.manageOwners')
    const tenantId = request.tenantId
    const id = randomUUID()
    let counted = false
    const invitation = await tenantTransaction(app.database, app.jobs, tenantId, async (tx, jobs) => {
      if (await tx.user.findFirst({ where: { email }, select: { id: true } })) throw conflict('A user with this email already exists')
      // A new invitation replaces the pending ones for the same address (only the newest link
      // works): each is revoked as DELETE would revoke it — an owner's only by whoever may manage
      // owners (403 otherwise, nothing changed), and with its invitation.revoked event.
      const replaced = await tx.invitation.findMany({ where: { email, ...pending() }, select: { id: true, role: true } })
      if (replaced.some((invitation) => invitation.role === 'owner')) assertCan(request.principal.role, 'users.manageOwners')
      // Counted once every refusal (409, 403) is behind: only invitations that send an email spend
      // the tenant's budget (review 63); a 429 here comes before any revocation.
      await invitationsPerTenant.enforce(request)
      counted = true
      for (const { id: replacedId } of replaced) await revokeInvitation(tx, request, replacedId, { replacedBy: id })
      const tokenHash = LinkTokens.hash(app.linkTokens.token('invitation', tenantId, id))
      const expiresAt = new Date(Date.now() + config.INVITATION_TTL_S * 1000)
      const created = await tx.invitation.create({ data: { id, email, role, tokenHash, expiresAt }, select: invitationFields })
      await jobs.send(INVITATION_EMAIL_JOB, { invitationId: id })
      await recordAuditEvent(tx, { ...auditContext(request), action: 'invitation.created', target: { type: 'invitation', id }, data: { email, role } })
      return created
    }, {
      // Any failure after counting and before COMMIT (the database's, a 409 of a racing insert) rolled
      // everything back: no email, so no budget spent. An error at COMMIT keeps the count (review 66).
      onRollback: async () => { if (counted) await invitationsPerTenant.refund(request) },
    })
    return reply.code(201).send(invitation)
  })

  app.get('/v1/invitations', {
    onRequest: requirePermission('invitations.manage'),
    schema: { tags, security: signedIn, summary: 'List pending invitations, newest first', querystring: ListQuery, response: responses({ 200: Page(Invitation) }) },
  }, async (request) => {
    const args = pageArgs(request.query)
    const rows = await request.db.invitation.findMany({ ...args, where: { ...args.where, ...pending() }, select: invitationFields })
    return page(rows, request.query)
  })

  app.delete('/v1/invitations/:id', {
    onRequest: requirePermission('invitations.manage'),
    schema: { tags, security: signedIn, summary: 'Revoke an invitation: its link stops working', params: IdParams, response: responses({ 204: NoContent }) },
  }, async (request, reply) => {
    const { id } = request.params
    const invitation = await request.db.invitation.findFirst({ where: { id }, select: { role: true, acceptedAt: true } })
    if (!invitation) throw notFound('Invitation')
    if (invitation.role === 'owner') assertCan(request.principal.role, 'users.manageOwners')
    if (invitation.acceptedAt) throw conflict('The invitation was already accepted')
    await auditedTransaction(request, async (tx) => {
      if (await revokeInvitation(tx, request, id)) return
      // Nothing to revoke: revoked already (still a 204, with no new event) or accepted since the
      // check above (its accept committed while this waited on the row): 409, not a 204 for a link
      // that was used.
      const now = await tx.invitation.findFirst({ where: { id }, select: { acceptedAt: true } })
      if (now?.acceptedAt) throw conflict('The invitation was already accepted')
    })
    return reply.code(204).send(null)
  })
}

/** POST /v1/invitations/accept: public (the token is the credential). */
export const invitationAcceptRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const perAddress = linkAttemptsPerAddress(app, 'accept-address')

  app.post('/v1/invitations/accept', {
    onRequest: perAddress.enforce,
    schema: { tags, summary: 'Accept an invitation: create the account and sign in', body: AcceptInvitation, response: responses({ 201: Tokens }) },
  }, async (request, reply) => {
    const { token, name, password } = request.body
    const tokenHash = presentedTokenHash(token)
    // Under this tenant's scope: another tenant's token is simply not found.
    const found = await request.db.invitation.findFirst({ where: { tokenHash, ...pending() }, select: { id: true } })
    if (!found) throw unusableToken()
    const passwordHash = await app.passwords.hash(password)
    const tenantId = request.tenantId
    let user
    try {
      user = await auditedTransaction(request, async (tx) => {
        // The atomic consume: of two concurrent accepts, one updates the row, the other finds it used.
        const consumed = await tx.invitation.updateMany({ where: { id: found.id, tokenHash, ...pending() }, data: { acceptedAt: new Date() } })
        if (consumed.count !== 1) throw unusableToken()
        const invitation = await tx.invitation.findFirstOrThrow({ where: { id: found.id }, select: { email: true, role: true } })
        const created = await tx.user.create({ data: { email: invitation.email, name, role: invitation.role, passwordHash }, select: { ...publicUserSelect, authVersion: true } })
        // Two events, as the new user made two things happen: a user exists (found with the tenant's
        // other user.created events, whichever way users arrive) and the invitation is spent.
        const newUser = auditContext(request, { type: 'user', id: created.id })
        await recordAuditEvent(tx, { ...newUser, action: 'user.created', target: { type: 'user', id: created.id }, data: { email: created.email, name: created.name, role: created.role, invitationId: found.id } })
        await recordAuditEvent(tx, { ...newUser, action: 'invitation.accepted', target: { type: 'invitation', id: found.id }, data: { userId: created.id, email: invitation.email, role: invitation.role } })
        return created
      })
    } catch (error) {
      if (isUniqueViolation(error)) throw conflict('A user with this email already exists')
      throw error
    }
    const { authVersion, ...shown } = user
    const tokens = await app.auth.startSession(request.db, tenantId, { id: user.id, role: user.role, authVersion }, auditContext(request, { type: 'user', id: user.id }))
    app.deviceCookies.issue(reply, tenantId, { id: user.id, passwordHash }) // signed in: this browser proved the account
    return reply.code(201).send(signedInAnswer(app.authCookies, reply, tokens, shown))
  })
}

/**
 * The per-address limit of a route that takes a link token or asks for one (accept, reset request,
 * reset confirm): PASSWORD_RESET_PER_IP_PER_MIN per client address per minute, counted per `name`.
 */
export function linkAttemptsPerAddress (app: { limits: Limits, config: Config }, name: string): Limiter {
  return app.limits.create({ name, max: app.config.PASSWORD_RESET_PER_IP_PER_MIN, windowMs: 60_000 })
}

export default invitationRoutes
