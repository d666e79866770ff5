// The background jobs of invitations and password reset: the invitation email and the
// password-reset email. Both are tenant jobs (src/jobs/runner.ts): they run inside their tenant,
// through its scoped client.
//
// Idempotent: a job delivered twice (a retry after a crash, a redelivery after a lost worker) sends
// one email. The row records `emailSentAt` once SMTP accepted the message, and the link's token is
// derived from the row (src/people/tokens.ts), so a run that crashed between sending and recording
// would resend the very same link — never a second, different one. The only window for a duplicate
// is that crash itself (SMTP gives no exactly-once), and then the duplicate is identical
// (same Message-ID).
import type { Config } from '../config.ts'
import type { JobRunner } from '../jobs/runner.ts'
import { invitationMail, passwordResetMail } from '../mail/templates.ts'
import type { Mailer } from '../mail/mailer.ts'
import { tenantHost, tenantLink, type LinkConfig } from './links.ts'
import { liveLinkUser } from './reset-links.ts'
import { LinkTokens } from './tokens.ts'

export const INVITATION_EMAIL_JOB = 'email-invitation'
export const PASSWORD_RESET_JOB = 'email-password-reset'

export type PeopleJobsConfig = LinkConfig & Pick<Config, 'PASSWORD_RESET_TTL_S'>

/** Declares the two jobs on `runner`. */
export function definePeopleJobs (runner: JobRunner, config: PeopleJobsConfig, mailer: Mailer, tokens: LinkTokens): void {
  runner.defineTenantJob<{ invitationId: string }>(INVITATION_EMAIL_JOB, async ({ tenant, db, log }, { invitationId }) => {
    const invitation = await db.invitation.findFirst({ where: { id: invitationId } })
    if (!invitation || invitation.emailSentAt || invitation.acceptedAt || invitation.revokedAt || invitation.expiresAt.getTime() <= Date.now()) {
      log.info({ invitationId }, 'invitation email not needed (sent, accepted, revoked or expired)')
      return
    }
    const link = tenantLink(config, tenant, '/accept-invitation', tokens.token('invitation', tenant.id, invitation.id))
    await mailer.send({
      to: invitation.email,
      ...invitationMail({ role: invitation.role, link, expiresAt: invitation.expiresAt }),
      messageId: `<invitation.${invitation.id}@${tenantHost(config, tenant)}>`,
    })
    await db.invitation.updateMany({ where: { id: invitation.id, emailSentAt: null }, data: { emailSentAt: new Date() } })
  })

  // The reset request answered 202 without looking anything up: this job does the work. Unknown
  // and inactive users get nothing. The row's id is the job's id: a second run finds it.
  // `requestedAt` (epoch ms, the API instance's clock; absent in jobs queued before this field
  // existed, taken as now): a password change or deactivation since the request ended the links
  // of that time (src/people/reset-links.ts), so a job that runs later (a queue that was down, a
  // retry) mails nothing; the link keeps the request's time, which the confirmation checks again.
  runner.defineTenantJob<{ email: string, requestedAt?: number }>(PASSWORD_RESET_JOB, async ({ tenant, db, jobId, log }, { email, requestedAt }) => {
    const requested = new Date(requestedAt ?? Date.now())
    const user = await db.user.findFirst({ where: { email: email.toLowerCase(), ...liveLinkUser(requested) }, select: { id: true, email: true } })
    if (!user) return // unknown, inactive, or its links ended since the request
    const token = tokens.token('password-reset', tenant.id, jobId)
    let reset = await db.passwordResetToken.findFirst({ where: { id: jobId } })
    if (!reset) {
      reset = await db.passwordResetToken.create({
        data: { id: jobId, userId: user.id, tokenHash: LinkTokens.hash(token), requestedAt: requested, expiresAt: new Date(Date.now() + config.PASSWORD_RESET_TTL_S * 1000) },
      })
    }
    if (reset.emailSentAt || reset.usedAt || reset.expiresAt.getTime() <= Date.now()) {
      log.info({ resetId: reset.id }, 'password-reset email not needed (sent, used or expired)')
      return
    }
    const link = tenantLink(config, tenant, '/reset-password', token)
    await mailer.send({
      to: user.email,
      // What is left of the link's life: a retried send (SMTP down a while) states less than the TTL.
      ...passwordResetMail({ link, ttlMinutes: Math.ceil((reset.expiresAt.getTime() - Date.now()) / 60_000) }),
      messageId: `<password-reset.${reset.id}@${tenantHost(config, tenant)}>`,
    })
    await db.passwordResetToken.updateMany({ where: { id: reset.id, emailSentAt: null }, data: { emailSentAt: new Date() } })
  })
}
