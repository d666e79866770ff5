// The one validator compiler of every route (src/app.ts sets it). TypeBox's, because fastify's default
// Ajv would coerce body types and silently drop unknown properties, both of which the contract
// forbids; with one addition for query strings, whose values arrive as text and are converted by
// TypeBox's Value.Convert before the check. That conversion is lenient: `limit=1.5` became 1,
// `limit=0x10` 16, and `+1`, ` 1`, `2e0` and `01` numbers too. The contract parses query-string
// numbers but rejects wrong types rather than coercing them, so a number must be written in decimal
// digits before it is converted. And one for identifiers in the path and the query string: a UUID
// is read in any case (RFC 9562 §4) but used in its canonical lower case, as PostgreSQL returns it,
// so what a handler keys a cache or a message by is the id the database stores (review 89: a user
// deactivated by `/v1/users/<ID IN UPPER CASE>` kept their cached session states).
import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox'
import type { FastifySchemaCompiler, FastifySchemaValidationError } from 'fastify'
import type { TSchema } from 'typebox'

/** An integer as a query string writes it: decimal digits, no sign, no leading zero. */
const DECIMAL_INTEGER = /^(0|[1-9][0-9]*)$/

/**
 * Validates a route part (body, params, querystring, headers) against its TypeBox schema; for the
 * querystring, a number parameter (integer or number: the routes take integers only) must be written
 * in decimal digits before TypeBox converts it, else the route answers 400 VALIDATION_FAILED
 * "querystring/<name> must be an integer in decimal digits, without sign or leading zero" — the one
 * message for `limit=abc`, `limit=`, `limit=1.5`, `limit=0x10`, `limit=+1` and `limit=05` (review
 * 62: three wordings, one of them wrong for `05`); a number in range comes next (`must be >= 1`).
 * A route that wants fractions or signs in a query string needs its own rule here. A valid UUID
 * parameter of the path or the query string reaches the handler in lower case. Returns what
 * fastify expects of a validator: `{ value }` (converted) or `{ error }`.
 */
export const validatorCompiler: FastifySchemaCompiler<TSchema> = (route) => {
  const validate = TypeBoxValidatorCompiler(route)
  if (route.httpPart !== 'querystring' && route.httpPart !== 'params') return validate
  const properties = (route.schema as { properties?: Record<string, { type?: unknown, format?: unknown }> }).properties ?? {}
  const names = Object.keys(properties)
  const numbers = route.httpPart === 'querystring' ? names.filter((name) => properties[name]!.type === 'integer' || properties[name]!.type === 'number') : []
  const uuids = names.filter((name) => properties[name]!.format === 'uuid')
  return (input: Record<string, unknown>) => {
    for (const name of numbers) {
      const text = input[name]
      if (text !== undefined && (typeof text !== 'string' || !DECIMAL_INTEGER.test(text))) return { error: [notDecimal(name)] }
    }
    const result = validate(input) as { value?: Record<string, unknown> }
    for (const name of uuids) {
      const id = result.value?.[name]
      if (typeof id === 'string') result.value![name] = id.toLowerCase()
    }
    return result
  }
}

function notDecimal (name: string): FastifySchemaValidationError {
  return { keyword: 'type', instancePath: `/${name}`, schemaPath: '#/type', params: {}, message: 'must be an integer in decimal digits, without sign or leading zero' }
}
