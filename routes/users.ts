// User management (tenant hosts, admins and owners): shared/API.md "Resources". The role rules live
// in src/auth/permissions.ts; the one rule that needs the data — a tenant always keeps an active
// owner — is checked here, inside a transaction that first takes the tenant's audit chain lock
// (auditedTransaction): every change that can remove an owner queues there, so two owners demoting
// each other at the same time cannot both succeed. (A SERIALIZABLE transaction did this before
// 2026-12-04, and failed with 409 whenever any other audited write of the tenant ran meanwhile:
// each moves the chain head on the tenant row.)
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { ListQuery, Page, page, pageArgs } from '../src/api/pagination.ts'
import { DisplayName, Email, IdParams, NoContent, responses, RoleSchema, signedIn } from '../src/api/schemas.ts'
import { audited, auditContext, auditedTransaction, recordAuditEvent } from '../src/audit/audit-log.ts'
import { PublicUser, publicUserSelect, toPublicUser } from '../src/auth/public-user.ts'
import { assertCan, requirePermission, type Role } from '../src/auth/permissions.ts'
import { conflict, notFound } from '../src/errors.ts'
import { revokeInvitation } from '../src/people/invitations.ts'
import { resetLinksEnded } from '../src/people/reset-links.ts'
import { Prisma } from '../src/generated/prisma/client.ts'
import type { ScopedClient } from '../src/tenancy/scoped-client.ts'

/** The user as every answer shows it (shared with login and /v1/me): never passwordHash or authVersion. */
export const User = PublicUser
export const userFields = publicUserSelect

const CreateUser = Type.Object({
  email: Email,
  name: DisplayName,
  role: RoleSchema,
  password: Type.String({ description: 'at least PASSWORD_MIN_LENGTH characters, at most 72 bytes of UTF-8' }),
}, { additionalProperties: false })

const UpdateUser = Type.Object({
  name: Type.Optional(DisplayName),
  role: Type.Optional(RoleSchema),
  active: Type.Optional(Type.Boolean()),
}, { additionalProperties: false, minProperties: 1 })

const tags = ['users']
const security = signedIn

type Tx = Parameters<Parameters<ScopedClient['$transaction']>[0]>[0]
type Target = { id: string; role: Role; active: boolean }

/** The user `id` of this tenant (404 otherwise), read inside the transaction. */
async function findTarget (tx: Tx, id: string): Promise<Target> {
  const user = await tx.user.findFirst({ where: { id }, select: { id: true, role: true, active: true } })
  if (!user) throw notFound('User')
  return user
}

/** 409 when `target` is the last active owner (it is about to stop being one). */
async function assertAnotherActiveOwner (tx: Tx, target: Target): Promise<void> {
  const others = await tx.user.count({ where: { role: 'owner', active: true, id: { not: target.id } } })
  if (others === 0) throw conflict('The last active owner cannot be demoted, deactivated or deleted')
}

const isActiveOwner = (user: Target) => user.role === 'owner' && user.active

function isEmailTaken (error: unknown): boolean {
  return error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002'
}

const userRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/v1/users', {
    onRequest: requirePermission('users.read'),
    schema: { tags, security, summary: 'List users, newest first', querystring: ListQuery, response: responses({ 200: Page(User) }) },
  }, async (request) => {
    const rows = await request.db.user.findMany({ ...pageArgs(request.query), select: userFields })
    const { data, nextCursor } = page(rows, request.query)
    return { data: data.map(toPublicUser), nextCursor }
  })

  app.post('/v1/users', {
    onRequest: requirePermission('users.create'),
    schema: { tags, security, summary: 'Create a user', body: CreateUser, response: responses({ 201: User }) },
  }, async (request, reply) => {
    const { email, name, role, password } = request.body
    if (role === 'owner') assertCan(request.principal.role, 'users.manageOwners')
    const passwordHash = await app.passwords.hash(password)
    try {
      // Stored lower-cased: the unique (tenant_id, email) key is then case-insensitive.
      const data: Prisma.UserUncheckedCreateInput = { email: email.toLowerCase(), name, role, passwordHash }
      const user = await audited(request, async (tx) => {
        const created = await tx.user.create({ data, select: userFields })
        // The address has an account now: its pending invitation could only answer 409 and would stay
        // listed as pending until it expired. It is revoked with the user's creation, with its event.
        const pending = await tx.invitation.findMany({ where: { email: created.email, acceptedAt: null, revokedAt: null }, select: { id: true, role: true, expiresAt: true } })
        // Revoking an owner's working invitation is an owner's act, here as through DELETE (403,
        // nothing created); an expired one works for nobody and is only tidied up.
        const now = Date.now()
        if (pending.some((invitation) => invitation.role === 'owner' && invitation.expiresAt.getTime() > now)) assertCan(request.principal.role, 'users.manageOwners')
        for (const { id } of pending) await revokeInvitation(tx, request, id, { reason: 'user_created', userId: created.id })
        return created
      }, (created) => ({ action: 'user.created', target: { type: 'user', id: created.id }, data: { email: created.email, name, role } }))
      return reply.code(201).send(toPublicUser(user))
    } catch (error) {
      if (isEmailTaken(error)) throw conflict('A user with this email already exists')
      throw error
    }
  })

  app.get('/v1/users/:id', {
    onRequest: requirePermission('users.read'),
    schema: { tags, security, summary: 'Read a user', params: IdParams, response: responses({ 200: User }) },
  }, async (request) => {
    const user = await request.db.user.findFirst({ where: { id: request.params.id }, select: userFields })
    if (!user) throw notFound('User')
    return toPublicUser(user)
  })

  app.patch('/v1/users/:id', {
    onRequest: requirePermission('users.update'),
    schema: { tags, security, summary: 'Rename, change the role of, deactivate or reactivate a user', params: IdParams, body: UpdateUser, response: responses({ 200: User }) },
  }, async (request) => {
    const { id } = request.params
    const change = request.body
    const user = await auditedTransaction(request, async (tx) => {
      const target = await findTarget(tx, id)
      if (target.role === 'owner' || change.role === 'owner') assertCan(request.principal.role, 'users.manageOwners')
      const roleChanged = change.role !== undefined && change.role !== target.role
      const deactivated = change.active === false && target.active
      if (isActiveOwner(target) && ((roleChanged && change.role !== 'owner') || deactivated)) await assertAnotherActiveOwner(tx, target)
      // A deactivation moves authVersion (a login racing with it fails: src/auth/sessions.ts), ends
      // the user's reset links and signs them out for good, in the same commit: reactivating
      // restores the account, not its old sessions nor a link mailed before.
      const data = {
        ...change,
        ...(deactivated ? { authVersion: { increment: 1 } } : {}),
        ...(change.active === false ? resetLinksEnded() : {}),
      }
      const updated = await tx.user.update({ where: { id }, data, select: userFields })
      if (change.active === false) await app.auth.endAllSessions(tx as never, request.tenantId, id)
      await recordAuditEvent(tx, { ...auditContext(request), action: 'user.updated', target: { type: 'user', id }, data: change })
      return updated
    })
    // Role and active state are cached per session: dropped after the commit, so this instance sees
    // either at once (a request meanwhile may have cached what was there before).
    if (change.role !== undefined || change.active !== undefined) app.auth.userChanged(request.tenantId, id)
    return toPublicUser(user)
  })

  app.delete('/v1/users/:id', {
    onRequest: requirePermission('users.delete'),
    schema: { tags, security, summary: 'Delete a user (and their sessions)', params: IdParams, response: responses({ 204: NoContent }) },
  }, async (request, reply) => {
    const { id } = request.params
    await auditedTransaction(request, async (tx) => {
      const target = await findTarget(tx, id)
      if (target.role === 'owner') assertCan(request.principal.role, 'users.manageOwners')
      if (isActiveOwner(target)) await assertAnotherActiveOwner(tx, target)
      const deleted = await tx.user.delete({ where: { id }, select: { id: true, email: true } }) // sessions cascade
      await recordAuditEvent(tx, { ...auditContext(request), action: 'user.deleted', target: { type: 'user', id }, data: { email: deleted.email } })
    })
    app.auth.userChanged(request.tenantId, id)
    return reply.code(204).send(null)
  })
}

export default userRoutes
