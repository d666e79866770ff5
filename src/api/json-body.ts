// The JSON body parser of the whole API (routes/index.ts installs it): what a body must be before a
// route's schema sees it. shared/API.md asks that bad input get a clear error and change nothing;
// these are the refusals no schema can make, because they concern the bytes rather than the value.
import { parse as parseContentType } from 'content-type'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { AppError } from '../errors.ts'

/** A `\uD800`–`\uDFFF` escape in JSON text: the only way a body can carry an unpaired surrogate. */
const SURROGATE_ESCAPE = /\\u[dD][89a-fA-F]/

/** Whether a parsed JSON value holds a string or key with an unpaired UTF-16 surrogate. Iterative: a
 * body may nest deeper than the call stack. */
function holdsUnpairedSurrogate (value: unknown): boolean {
  const pending: unknown[] = [value]
  while (pending.length > 0) {
    const next = pending.pop()
    if (typeof next === 'string') {
      if (!next.isWellFormed()) return true
    } else if (Array.isArray(next)) {
      for (const item of next) pending.push(item)
    } else if (next !== null && typeof next === 'object') {
      for (const [key, field] of Object.entries(next)) {
        if (!key.isWellFormed()) return true
        pending.push(field)
      }
    }
  }
  return false
}

/**
 * The JSON body parser of every route of `app`:
 * - an empty body is no body, even with a JSON content type (what a browser's fetch with default
 *   JSON headers sends to refresh or logout, and what some HTTP clients send with every DELETE); a
 *   route that needs a body then answers its validation error (`400 VALIDATION_FAILED`, "body must
 *   be object");
 * - a body holding an unpaired surrogate (`"\ud800"`: valid JSON, RFC 8259 §8.2, but no Unicode
 *   text) is `400 VALIDATION_FAILED`, whatever the route: PostgreSQL's jsonb refuses it, while in a text column
 *   the driver's UTF-8 encoding would store U+FFFD in its place, so without this one route's answer would
 *   depend on whether its value also went into an audit event (review, round fifteen). The value is
 *   walked only when the text holds such an escape;
 * - JSON is UTF-8 (RFC 8259 §8.1), and a body is refused rather than stored altered: a `charset`
 *   other than UTF-8 is `415 UNSUPPORTED_MEDIA_TYPE`, and so is a `Content-Encoding` other than
 *   `identity` (RFC 9110 §8.4.1: nothing here decodes gzip or the like); bytes that are not UTF-8 are
 *   `400 VALIDATION_FAILED` — decoded leniently, a Latin-1 client's "café" was stored as "caf\uFFFD"
 *   with a 201 (before 2026-12-04). A byte order mark is ignored, as RFC 8259 allows;
 * - anything else parses as Fastify's own parser does (prototype poisoning refused).
 */
export function parseJsonBodies (app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error')
  const utf8 = new TextDecoder('utf-8', { fatal: true })
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    const bytes = body as Buffer
    if (bytes.length === 0) return done(null, undefined)
    const refusal = unreadableBody(request)
    if (refusal) return done(refusal, undefined)
    let text: string
    try {
      text = utf8.decode(bytes)
    } catch {
      return done(new AppError('VALIDATION_FAILED', 'body is not valid UTF-8 (JSON is UTF-8: RFC 8259 §8.1)'), undefined)
    }
    if (!SURROGATE_ESCAPE.test(text)) return parseJson(request, text, done)
    return parseJson(request, text, (error, value) => {
      if (error) return done(error, undefined)
      if (holdsUnpairedSurrogate(value)) return done(new AppError('VALIDATION_FAILED', 'body holds an unpaired Unicode surrogate (a \\uD800–\\uDFFF escape without its pair)'), undefined)
      return done(null, value)
    })
  })
}

/** 415 for a JSON body this API would misread: a charset other than UTF-8, or a content coding. */
function unreadableBody (request: FastifyRequest): AppError | undefined {
  const coding = request.headers['content-encoding']?.trim().toLowerCase()
  if (coding && coding !== 'identity') {
    return new AppError('UNSUPPORTED_MEDIA_TYPE', `Content-Encoding ${coding.slice(0, 40)} is not accepted: send the body without a content coding`)
  }
  // Fastify matched the media type already; content-type's parse is lenient (it never throws).
  const charset = parseContentType(request.headers['content-type'] ?? '').parameters.charset?.toLowerCase()
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
    return new AppError('UNSUPPORTED_MEDIA_TYPE', `charset=${charset.slice(0, 40)} is not accepted: JSON bodies are UTF-8 (RFC 8259 §8.1)`)
  }
}
