// Keyset pagination for every list: newest first, ordered by (createdAt desc, id desc) — the order of
// the (tenant_id, created_at DESC, id DESC) indexes. The cursor is the position of the last row sent,
// so rows inserted while a client walks the list never shift a page (an offset would repeat or skip
// rows), and a deep page costs the same as the first one.
import Type, { type TSchema } from 'typebox'
import { AppError } from '../errors.ts'
import { isStorableDate } from './schemas.ts'
import { UUID } from '../ids.ts'

export const DEFAULT_LIMIT = 20
export const MAX_LIMIT = 100
/** Longest cursor we ever make (base64url of a 24-character date, `|` and a 36-character UUID) is 84. */
const MAX_CURSOR_LENGTH = 200

export const ListQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_LIMIT, description: `1–${MAX_LIMIT}, default ${DEFAULT_LIMIT}` })),
  // No maxLength here: an over-long cursor is an undecodable one (400 BAD_REQUEST, as the contract
  // says), not a schema violation (VALIDATION_FAILED); decodeCursor bounds it.
  cursor: Type.Optional(Type.String({ description: 'nextCursor of the previous page (opaque)' })),
}, { additionalProperties: false })

export const Page = <T extends TSchema>(item: T) => Type.Object({
  data: Type.Array(item),
  nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'null on the last page' }),
})

interface Position {
  createdAt: Date
  id: string
}

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/

/** The cursor: base64url of `<createdAt ISO>|<id>`. Opaque to clients, so its format may change. */
export function encodeCursor (row: Position): string {
  return Buffer.from(`${row.createdAt.toISOString()}|${row.id}`).toString('base64url')
}

/** The position a cursor names; anything that is not a cursor we made is a 400 BAD_REQUEST. */
export function decodeCursor (cursor: string): Position {
  if (cursor.length > MAX_CURSOR_LENGTH) throw new AppError('BAD_REQUEST', 'Invalid cursor')
  const [at = '', id = '', ...rest] = Buffer.from(cursor, 'base64url').toString('utf8').split('|')
  const createdAt = new Date(at)
  if (rest.length || !ISO_UTC.test(at) || !isStorableDate(createdAt) || !UUID.test(id)) {
    throw new AppError('BAD_REQUEST', 'Invalid cursor')
  }
  return { createdAt, id }
}

/**
 * Prisma arguments for one page: `take` is one more than the limit, to learn whether a next page
 * exists without a count. The redundant `createdAt <= c` lets PostgreSQL start the index scan at the
 * cursor (an index condition) instead of filtering every newer row.
 */
export function pageArgs (query: { limit?: number; cursor?: string }) {
  const take = (query.limit ?? DEFAULT_LIMIT) + 1
  const orderBy = [{ createdAt: 'desc' as const }, { id: 'desc' as const }]
  if (!query.cursor) return { take, orderBy, where: {} }
  const { createdAt, id } = decodeCursor(query.cursor)
  const where = { createdAt: { lte: createdAt }, OR: [{ createdAt: { lt: createdAt } }, { createdAt, id: { lt: id } }] }
  return { take, orderBy, where }
}

/** The answer for rows fetched with pageArgs. */
export function page<T extends Position> (rows: T[], query: { limit?: number }): { data: T[]; nextCursor: string | null } {
  const limit = query.limit ?? DEFAULT_LIMIT
  if (rows.length <= limit) return { data: rows, nextCursor: null }
  const data = rows.slice(0, limit)
  return { data, nextCursor: encodeCursor(data[data.length - 1]!) }
}
