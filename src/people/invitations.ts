// Invitations' changes shared by routes: a re-invitation (routes/invitations.ts), a DELETE, and a
// user created for an invited address (routes/users.ts) all revoke a pending invitation the same way.
import type { FastifyRequest } from 'fastify'
import { auditContext, recordAuditEvent } from '../audit/audit-log.ts'
import type { ScopedTransaction } from '../jobs/tenant-transaction.ts'

/**
 * Revokes invitation `id` of the request's tenant unless it was accepted or revoked already, with
 * its invitation.revoked event (`data` added), in `tx`. Returns false when there was nothing to
 * revoke (no second event). Who may revoke it is the caller's check (an owner's: users.manageOwners).
 * Throws what the update or the event's insert throws (the caller's transaction then rolls back).
 */
export async function revokeInvitation (tx: ScopedTransaction, request: FastifyRequest, id: string, data?: Record<string, unknown>): Promise<boolean> {
  const revoked = await tx.invitation.updateMany({ where: { id, acceptedAt: null, revokedAt: null }, data: { revokedAt: new Date() } })
  if (revoked.count !== 1) return false
  await recordAuditEvent(tx, { ...auditContext(request), action: 'invitation.revoked', target: { type: 'invitation', id }, ...(data ? { data } : {}) })
  return true
}
