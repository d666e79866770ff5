// The user as the API shows it (login answers, /v1/me): never the hash, never the auth version.
import Type from 'typebox'
import { RoleSchema, Timestamp, Uuid } from '../api/schemas.ts'
import type { Role } from './permissions.ts'

export const publicUserSelect = { id: true, email: true, name: true, role: true, active: true, createdAt: true, updatedAt: true } as const

export const PublicUser = Type.Object({
  id: Uuid,
  email: Type.String(),
  name: Type.String(),
  role: RoleSchema,
  active: Type.Boolean(),
  createdAt: Timestamp,
  updatedAt: Timestamp,
})

interface UserRow {
  id: string
  email: string
  name: string
  role: Role
  active: boolean
  createdAt: Date
  updatedAt: Date
}

export function toPublicUser (user: UserRow) {
  return { ...user, createdAt: user.createdAt.toISOString(), updatedAt: user.updatedAt.toISOString() }
}
