// Password-reset links end when the password changes, whichever way it changes.
import type { ScopedTransaction } from '../jobs/tenant-transaction.ts'

/**
 * Ends every outstanding password-reset link of user `userId` (marks it used), in `tx`, the
 * transaction that sets the new password: a link mailed before the change — or read by someone
 * else since — cannot set the password again (OWASP Forgot Password Cheat Sheet: a reset token is
 * single-use and dies with a successful change). Returns how many links ended. Throws what the
 * update throws (the caller's transaction then rolls back).
 */
export async function endResetLinks (tx: Pick<ScopedTransaction, 'passwordResetToken'>, userId: string): Promise<number> {
  const ended = await tx.passwordResetToken.updateMany({ where: { userId, usedAt: null }, data: { usedAt: new Date() } })
  return ended.count
}
