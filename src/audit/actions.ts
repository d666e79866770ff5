// The one list of audit actions (shared/API.md "Audit events"): the code's types, the TypeBox
// schemas of /v1/audit-events (and so the OpenAPI document) and the README table all come from
// here; test/audit-*.test.ts checks the routes and the README against it.

/** Every action an audit event may record, with what it means (the README table shows these). */
export const AUDIT_ACTIONS = {
  'auth.login': 'a user signed in (actor and target: the user)',
  'auth.login_failed': 'a sign-in was refused (actor: the user when the email is known, else system; data: email, `trustedDevice: true` when counted against the browser\'s device cookie instead of the email)',
  'auth.logout': 'a user signed out (target: the session)',
  'auth.refresh_reused': 'an already-used refresh token was presented: its session was revoked (target: the session)',
  'user.created': 'a user was created (data: email, name, role; `invitationId` when they accepted an invitation, written beside `invitation.accepted`)',
  'user.updated': 'a user was renamed, changed role, deactivated or reactivated (data: the changed fields)',
  'user.deleted': 'a user was deleted (their events stay)',
  'user.password_changed': 'a user changed their password (no password in data)',
  'tenant.updated': 'the tenant was renamed or its settings replaced (data: the changed fields)',
  'project.created': 'a project was created',
  'project.updated': 'a project was changed',
  'project.deleted': 'a project (and its tasks) was deleted',
  'task.created': 'a task was created',
  'task.updated': 'a task was changed',
  'task.deleted': 'a task was deleted',
  'api_key.created': 'an API key was created (never the key itself)',
  'api_key.revoked': 'an API key was revoked',
  'invitation.created': 'an invitation was sent',
  'invitation.accepted': 'an invitation was accepted (the new user signed up: actor the new user, target the invitation)',
  'invitation.revoked': 'an invitation was revoked',
  'password_reset.requested': 'a password reset was requested, for a known email or not (actor system, no target; data.throttled: beyond the email\'s budget, nothing sent)',
  'password_reset.completed': 'a password was reset with an emailed token',
  'tenant.suspended': 'the platform suspended the tenant (actor: platform)',
  'tenant.reactivated': 'the platform reactivated the tenant (actor: platform)',
} as const

export type AuditAction = keyof typeof AUDIT_ACTIONS
export const AUDIT_ACTION_NAMES = Object.keys(AUDIT_ACTIONS) as AuditAction[]

/** Who acted: a signed-in user, an API key (issue 13), the platform operator, or the system itself. */
export const ACTOR_TYPES = ['user', 'api_key', 'platform', 'system'] as const
export type ActorType = (typeof ACTOR_TYPES)[number]

/** What an event may be about. */
export const TARGET_TYPES = ['user', 'session', 'tenant', 'project', 'task', 'api_key', 'invitation'] as const
export type TargetType = (typeof TARGET_TYPES)[number]
