// Who may do what: the one declaration of the role matrix (shared/API.md "Resources"). Routes name an
// action, never a role; test/permissions.test.ts walks this whole table through the HTTP API.
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
} as const satisfies Record<string, readonly Role[]>

export type Action = keyof typeof PERMISSIONS

export function can(role: Role, action: Action): boolean {
  return (PERMISSIONS[action] as readonly Role[]).includes(role)
}

/** Throws 403 FORBIDDEN unless `role` may do `action`. */
export function assertCan(role: Role, action: Action): void {
  if (!can(role, action)) throw forbidden()
}

/** A route hook (after authentication) refusing users whose role may not do `action`. */
export function requirePermission(action: Action) {
  return async function checkPermission(request: FastifyRequest) {
    if (!request.user) throw unauthorized() // registered without app.authenticate before it: refuse
    assertCan(request.user.role, action)
  }
}
