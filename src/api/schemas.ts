// TypeBox schemas shared by every route: they validate requests, serialize responses (which is what
// stops a field such as passwordHash from ever leaving) and generate the OpenAPI document (/docs).
import Type, { type TSchema } from 'typebox'
import { Format } from 'typebox/format'
import { ERROR_STATUS } from '../errors.ts'
import { Role, TaskStatus } from '../generated/prisma/enums.ts'

export const Uuid = Type.String({ format: 'uuid' })
/** An email address (stored lower-cased); 254 characters is the longest a mail server accepts (RFC 5321 §4.5.3.1). */
export const Email = Type.String({ format: 'email', maxLength: 254 })
// Names are shown to other people: in lists, in the log and in the text of every email (the tenant's
// name is in each one's subject). A line break in one would start a line of its own there, and a
// bidirectional control would reorder what follows (Unicode TR #36 §2.2, spoofing); a name of blanks
// or of characters that render as nothing (fillers, joiners, U+2800) shows nothing. Joiners
// (U+200C/U+200D) stay inside a name: scripts and emoji sequences need them.
const REFUSED_IN_NAMES = /[\p{Cc}\p{Bidi_Control}\u2028\u2029\u200B\uFEFF]/u
const VISIBLE = /[^\p{White_Space}\p{Default_Ignorable_Code_Point}\u2800\u3164\uFFA0\u115F\u1160]/u
/**
 * Whether `value` is a display name: at least one visible character (not white space, not a
 * default-ignorable code point such as a joiner or filler, not a blank Braille cell), and no
 * control character, line or paragraph separator, bidirectional control (Unicode Bidi_Control:
 * the marks RLM/LRM/ALM, embeddings, overrides, isolates), zero-width space or BOM.
 */
export const isDisplayName = (value: string): boolean => VISIBLE.test(value) && !REFUSED_IN_NAMES.test(value)
Format.Set('display-name', isDisplayName)
/** What a display name must be, as the 400 ("body/name must show…") and the OpenAPI document say it. */
export const DISPLAY_NAME_RULE = 'must show something, with no control characters, line breaks or bidirectional controls'
/**
 * A name people read (a person's, a tenant's, an API key's): 1–200 characters, see isDisplayName.
 * A refused one is a 400 VALIDATION_FAILED "body/name must show something, with no control
 * characters, line breaks or bidirectional controls" (plugins/error-handler.ts).
 */
export const DisplayName = Type.String({ minLength: 1, maxLength: 200, format: 'display-name', description: `1–200 characters; ${DISPLAY_NAME_RULE}` })
// Enumerations come from the Prisma enums (prisma/schema.prisma), their one declaration.
export const RoleSchema = Type.Enum(Object.values(Role))
export const TaskStatusSchema = Type.Enum(Object.values(TaskStatus))
/**
 * A timestamp in an answer: handlers return Prisma's Date and the serializer writes it as ISO-8601
 * UTC (Date#toISOString), so the static type admits both.
 */
export const Timestamp = Type.Unsafe<Date | string>({ type: 'string', format: 'date-time', description: 'ISO-8601, UTC' })
/** A timestamp in a request body. */
export const TimestampInput = Type.String({ format: 'date-time', description: 'ISO-8601 with a time zone' })
/**
 * Whether a parsed timestamp can be stored and shown: a real instant (the date-time format admits
 * leap seconds, which Date cannot hold) in the years 0001–9999 UTC (PostgreSQL has no year 0, and
 * ISO-8601 answers have four-digit years; an offset can push 9999-12-31 into year 10000).
 */
export function isStorableDate (date: Date): boolean {
  const year = date.getUTCFullYear()
  return !Number.isNaN(date.getTime()) && year >= 1 && year <= 9999
}
/** `null` allowed (OpenAPI 3.1 spells it as a union with type null). */
export const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()])

/** `:id` in a path: anything but a UUID is refused (400) before any query runs. */
export const IdParams = Type.Object({ id: Uuid }, { additionalProperties: false })

/** The query string of a route that takes no parameters: any parameter is a 400 (routes/index.ts gives it to every such /v1 route). */
export const NoQuery = Type.Object({}, { additionalProperties: false })

export const ErrorBody = Type.Object({
  error: Type.Object({
    code: Type.Enum(Object.keys(ERROR_STATUS)),
    message: Type.String(),
    requestId: Type.String(),
  }),
}, { description: 'Every error answer has this shape' })

/** Success responses plus the error shape, for serialization and the document alike. */
export function responses<R extends Record<number, TSchema>> (success: R) {
  return { ...success, '4xx': ErrorBody, '5xx': ErrorBody }
}

export const NoContent = Type.Null({ description: 'No content' })

/** Security requirement of the routes that need a signed-in user (either way of presenting the token). */
export const signedIn: Array<Record<string, string[]>> = [{ bearerAuth: [] }, { cookieAuth: [] }]
