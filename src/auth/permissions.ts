// Who may do what: the one declaration of the role matrix (shared/API.md "Resources") and of what
// each API-key scope grants ("API keys"). Routes name an action, never a role or a scope;
// test/permissions.test.ts walks the role table and test/api-keys.test.ts the scopes through HTTP.
import type { FastifyRequest } from 'fastify'
import { forbidden, unauthorized } from '../errors.ts'

import { Role } from '../generated/prisma/enums.ts'

export { Role }
/** Every role, from the one declaration of it (the Prisma enum in prisma/schema.prisma). */
export const ROLES: readonly Role[] = Object.values(Role)

const everyone = ROLES
const managers = ['owner', 'admin'] as const
const owners = ['owner'] as const

export const PERMISSIONS = {
  'tenant.read': everyone,
  'tenant.update': owners,
  'users.read': managers,
  'users.create': managers,
  'users.update': managers,
  'users.delete': managers,
  /** Grant `owner`, or change, deactivate or delete a user who is an owner. */
  'users.manageOwners': owners,
  'projects.read': everyone,
  'projects.write': everyone,
  'tasks.read': everyone,
  'tasks.write': everyone,
  /** Create, list and revoke the tenant's API keys (never granted to a key). */
  'apiKeys.manage': managers,
  'audit.read': managers,
  'audit.export': owners,
  'audit.verify': owners,
  /** Invite people, list pending invitations, revoke them (inviting an owner also needs users.manageOwners; never granted to a key). */
  'invitations.manage': managers,
} as const satisfies Record<string, readonly Role[]>

export type Action = keyof typeof PERMISSIONS

/**
 * What each API-key scope allows. A key can do an action only when one of its scopes lists it; no
 * scope lists user management, key management or tenant changes, so a key can never do those.
 */
export const SCOPES = {
  'projects:read': ['projects.read'],
  'projects:write': ['projects.write'],
  'tasks:read': ['tasks.read'],
  'tasks:write': ['tasks.write'],
  'users:read': ['users.read'],
  'tenant:read': ['tenant.read'],
} as const satisfies Record<string, readonly Action[]>

export type Scope = keyof typeof SCOPES
export const SCOPE_NAMES = Object.keys(SCOPES) as Scope[]

/**
 * Who is asking: a signed-in user (scopes null: the role decides) or an API key (scopes decide; its
 * `role` is never consulted for a permission).
 */
export interface Subject {
  role: Role
  scopes: readonly Scope[] | null
}

export function can (role: Role, action: Action): boolean {
  return (PERMISSIONS[action] as readonly Role[]).includes(role)
}

/** The one decision for users and keys alike: may `subject` do `action`? */
export function allows (subject: Subject, action: Action): boolean {
  if (subject.scopes === null) return can(subject.role, action)
  return subject.scopes.some((scope) => (SCOPES[scope] as readonly Action[]).includes(action))
}

/** Whether a user of `role` may put `scope` on a key: only what the role itself may do. */
export function canGrant (role: Role, scope: Scope): boolean {
  return SCOPES[scope].every((action) => can(role, action))
}

/** Throws 403 FORBIDDEN unless `role` may do `action`. */
export function assertCan (role: Role, action: Action): void {
  if (!can(role, action)) throw forbidden()
}

/** The action a route declared with requirePermission (read by plugins/api-keys.ts for keys and docs). */
export const PERMISSION = Symbol('permission')
export type PermissionHook = ((request: FastifyRequest) => Promise<void>) & { [PERMISSION]: Action }

/** A route hook (after authentication) refusing users whose role, or keys whose scopes, may not do `action`. */
export function requirePermission (action: Action): PermissionHook {
  const checkPermission = async function checkPermission (request: FastifyRequest) {
    if (!request.user) throw unauthorized() // registered without app.authenticate before it: refuse
    if (!allows(request.user, action)) throw forbidden(request.user.scopes ? 'This API key has no scope for this route' : undefined)
  }
  return Object.assign(checkPermission, { [PERMISSION]: action })
}
