// The one validator compiler of every route (src/app.ts sets it). TypeBox's, because fastify's default
// Ajv would coerce body types and silently drop unknown properties, both of which the contract
// forbids; with one addition for query strings, whose values arrive as text and are converted by
// TypeBox's Value.Convert before the check. That conversion is lenient: `limit=1.5` became 1,
// `limit=0x10` 16, and `+1`, ` 1`, `2e0` and `01` numbers too. The contract parses query-string
// numbers but rejects wrong types rather than coercing them, so a number must be written in decimal
// digits before it is converted.
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
 * A route that wants fractions or signs in a query string needs its own rule here. Returns what
 * fastify expects of a validator: `{ value }` (converted) or `{ error }`.
 */
export const validatorCompiler: FastifySchemaCompiler<TSchema> = (route) => {
  const validate = TypeBoxValidatorCompiler(route)
  if (route.httpPart !== 'querystring') return validate
  const properties = (route.schema as { properties?: Record<string, { type?: unknown }> }).properties ?? {}
  const numbers = Object.keys(properties).filter((name) => properties[name]!.type === 'integer' || properties[name]!.type === 'number')
  return (input: Record<string, unknown>) => {
    for (const name of numbers) {
      const text = input[name]
      if (text !== undefined && (typeof text !== 'string' || !DECIMAL_INTEGER.test(text))) return { error: [notDecimal(name)] }
    }
    return validate(input)
  }
}

function notDecimal (name: string): FastifySchemaValidationError {
  return { keyword: 'type', instancePath: `/${name}`, schemaPath: '#/type', params: {}, message: 'must be an integer in decimal digits, without sign or leading zero' }
}
