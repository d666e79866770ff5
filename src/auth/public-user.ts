// The user as the API shows it (login answers, /v1/me): never the hash, never the auth version.
import Type from 'typebox'

export const publicUserSelect = { id: true, email: true, name: true, role: true, active: true, createdAt: true, updatedAt: true } as const

export const PublicUser = Type.Object({
  id: Type.String({ format: 'uuid' }),
  email: Type.String(),
  name: Type.String(),
  role: Type.Union([Type.Literal('owner'), Type.Literal('admin'), Type.Literal('member')]),
  active: Type.Boolean(),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
})

interface UserRow {
  id: string
  email: string
  name: string
  role: 'owner' | 'admin' | 'member'
  active: boolean
  createdAt: Date
  updatedAt: Date
}

export function toPublicUser(user: UserRow) {
  return { ...user, createdAt: user.createdAt.toISOString(), updatedAt: user.updatedAt.toISOString() }
}
