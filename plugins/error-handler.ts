// One error shape for everything, framework errors included. Messages of 5xx answers are generic:
// the stack, SQL and driver messages go to the log (with the request id), never to the client.
import { randomUUID } from 'node:crypto'
import type { Socket } from 'node:net'
import { LogController, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { DISPLAY_NAME_RULE } from '../src/api/schemas.ts'
import { isWriteConflict } from '../src/db/conflicts.ts'
import { DatabaseTimeoutError } from '../src/db/tenant-aware-pool.ts'
import { Prisma } from '../src/generated/prisma/client.ts'
import { scrubUrl, writesAt } from '../src/log.ts'
import { AppError, ERROR_STATUS, type ErrorCode } from '../src/errors.ts'
import { FIXED_HEADER_LINES, setFixedHeaders } from './response-headers.ts'

/**
 * What a log line says about an error: its message's last non-empty line, at most 200 characters
 * (Prisma's messages open with an empty line and `Invalid … invocation:`; the cause comes last),
 * with whatever PostgreSQL quoted in it ("…") left out: it echoes a value a cast refused there
 * (`invalid input syntax for type uuid: "…"`, review 60), which the log has no need of.
 */
const errorReason = (error: unknown): string => (String((error as Error)?.message ?? error).trim().split('\n').at(-1) ?? '').trim().replace(/"[^"]*"/g, '"…"').slice(0, 200)

/** The one log line's fields for a request (method, scrubbed URL, host, client address, status, ms). */
function completionLine (request: FastifyRequest, reply: FastifyReply) {
  return {
    method: request.method,
    url: scrubUrl(request.url), // no API key or link token in a query string reaches the log
    host: request.host,
    ip: request.ip, // the client's address as TRUST_PROXY defines it (the limits count the same one)
    statusCode: reply.statusCode,
    ms: Math.round(reply.elapsedTime * 10) / 10,
  }
}

/**
 * Fastify's log controller with its own per-request lines off (the onResponse hook below writes
 * one), except for a response whose stream ended in an error after its headers were sent — an audit
 * export cut by a database outage, a client that went away mid-download. Fastify destroys the
 * socket then and no onResponse follows, so this is the request's only line: `warn` with the
 * error's code and cause (review 57 found such a cut export logged nothing), `info` when the
 * client closed the connection. The client sees the cut: the body stops before its end.
 */
export class RequestLogController extends LogController {
  constructor () {
    super({ disableRequestLogging: true })
  }

  override streamError (error: Error, request: FastifyRequest, reply: FastifyReply): void {
    const line = { ...completionLine(request, reply), cut: true }
    if ((error as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE') request.log.info(line, 'response cut: the client closed the connection')
    else {
      const { code } = classifyError(error)
      // An unexpected cause (a bug, not an outage) gets its stack, as an unexpected 500 does.
      request.log.warn({ ...line, code, reason: errorReason(error), ...(code === 'INTERNAL' ? { err: error } : {}) }, 'response cut: its stream failed after the headers were sent')
    }
  }
}

/** Seconds a client is asked to wait (Retry-After, RFC 9110 §10.2.3) on a 503: outage or drain. */
export const RETRY_AFTER_SECONDS = '5'

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the error handler: what the one completion log line says about a refused request. */
    failure: { code: ErrorCode; reason: string } | null
  }
}

const FRAMEWORK_ERRORS: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_BODY_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_JSON_BODY: 'VALIDATION_FAILED',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'VALIDATION_FAILED',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'BAD_REQUEST',
  FST_ERR_VALIDATION: 'VALIDATION_FAILED',
  FST_ERR_NOT_FOUND: 'NOT_FOUND',
}

const GENERIC_MESSAGES: Partial<Record<ErrorCode, string>> & Record<'INTERNAL' | 'SERVICE_UNAVAILABLE', string> = {
  INTERNAL: 'Internal server error',
  SERVICE_UNAVAILABLE: 'The service is temporarily unavailable, retry later',
  PAYLOAD_TOO_LARGE: 'Request body is too large',
  UNSUPPORTED_MEDIA_TYPE: 'Unsupported content type',
  NOT_FOUND: 'Not found',
}

interface Classified {
  code: ErrorCode
  message: string
  headers?: Record<string, string>
}

/** Maps any thrown value to the contract's code and a message safe to show. */
export function classifyError (error: unknown): Classified {
  if (error instanceof AppError) return { code: error.code, message: error.message, headers: error.headers }
  if (isDatabaseUnavailable(error)) return { code: 'SERVICE_UNAVAILABLE', message: GENERIC_MESSAGES.SERVICE_UNAVAILABLE, headers: { 'retry-after': RETRY_AFTER_SECONDS } }
  if (isRefusedValue(error)) return { code: 'VALIDATION_FAILED', message: 'A value cannot be stored (out of range, or a NUL character)' }
  // A serialization failure or a deadlock (40001, 40P01) that the route did not retry: all was
  // rolled back, and the client may simply retry.
  if (isWriteConflict(error)) return { code: 'CONFLICT', message: 'A concurrent change conflicted with this one, retry' }
  if (error instanceof Prisma.PrismaClientKnownRequestError) {
    if (error.code === 'P2002') return { code: 'CONFLICT', message: 'A record with these values already exists' }
    if (error.code === 'P2025' || error.code === 'P2003') return { code: 'NOT_FOUND', message: 'Not found' }
    // The same refusals from a raw statement (one-statement audited writes, src/audit/audit-log.ts):
    // Prisma reports them as P2010 with the SQLSTATE in the driver's error.
    const state = driverSqlState(error)
    if (state === '23505') return { code: 'CONFLICT', message: 'A record with these values already exists' }
    if (state === '23503') return { code: 'NOT_FOUND', message: 'Not found' }
  }
  const fastifyError = error as Partial<FastifyError>
  if (fastifyError.validation) return { code: 'VALIDATION_FAILED', message: validationMessage(fastifyError) }
  if (error instanceof SyntaxError && fastifyError.statusCode === 400) return { code: 'VALIDATION_FAILED', message: 'Malformed JSON body' }
  const known = fastifyError.code ? FRAMEWORK_ERRORS[fastifyError.code] : undefined
  if (known) return { code: known, message: known === 'VALIDATION_FAILED' ? 'Malformed JSON body' : GENERIC_MESSAGES[known] ?? 'Bad request' }
  const status = fastifyError.statusCode ?? 500
  if (status === 429) return { code: 'RATE_LIMITED', message: 'Too many requests, retry later' }
  if (status >= 400 && status < 500) return { code: codeForStatus(status), message: GENERIC_MESSAGES[codeForStatus(status)] ?? 'Bad request' }
  return { code: 'INTERNAL', message: GENERIC_MESSAGES.INTERNAL }
}

function codeForStatus (status: number): ErrorCode {
  const byStatus: Record<number, ErrorCode> = { 401: 'UNAUTHORIZED', 403: 'FORBIDDEN', 404: 'NOT_FOUND', 405: 'NOT_FOUND', 409: 'CONFLICT', 413: 'PAYLOAD_TOO_LARGE', 415: 'UNSUPPORTED_MEDIA_TYPE' }
  return byStatus[status] ?? 'BAD_REQUEST'
}

function validationMessage (error: Partial<FastifyError>): string {
  const first = error.validation?.[0]
  if (!first) return 'Invalid request'
  const where = `${error.validationContext ?? 'body'}${first.instancePath ?? ''}`
  // TypeBox words a property that additionalProperties: false refuses as "schema is false".
  const message = first.message === 'schema is false'
    ? 'is not a known field'
    : (first.params as { format?: string } | undefined)?.format === 'display-name' ? DISPLAY_NAME_RULE : first.message ?? 'is invalid'
  return `${where} ${message}`.slice(0, 300)
}

// Connection refused/reset, pool and query timeouts, server shutting down, Prisma's "can't reach" codes.
const UNAVAILABLE_PATTERNS = /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ENOTFOUND|EHOSTUNREACH|Connection terminated|timeout exceeded when trying to connect|Connection timeout|\btimeout expired\b|database query timed out|Query read timeout|terminating connection|the database system is (starting up|shutting down|in recovery mode)|Client has encountered a connection error|canceling statement due to statement timeout/i
// 57014: statement_timeout (DB_STATEMENT_TIMEOUT_MS) fired; 57P0x: shutdown/crash; 53300: too many
// connections; 25006: a read-only transaction (a failover that landed on a standby or a demoted
// primary); class 08: connection exception — PgBouncer answers 08P01 for all of its own refusals
// ("server login has been failing", "pgbouncer cannot connect to server", query_wait_timeout);
// 55P03: lock_timeout fired (an audited transaction waited DB_STATEMENT_TIMEOUT_MS for its tenant's
// audit chain lock, src/db/tenant-aware-pool.ts): the tenant's writes are queued, try again.
const UNAVAILABLE_SQLSTATES = new Set(['57014', '57P01', '57P02', '57P03', '53300', '25006', '55P03'])
const isUnavailableSqlState = (code: string) => UNAVAILABLE_SQLSTATES.has(code) || code.startsWith('08')

function isDatabaseUnavailable (error: unknown): boolean {
  if (error instanceof DatabaseTimeoutError) return true
  if (error instanceof Prisma.PrismaClientInitializationError) return true
  // P2028: an interactive transaction could not start within Prisma's maxWait (no free connection).
  if (error instanceof Prisma.PrismaClientKnownRequestError && ['P1001', 'P1002', 'P1017', 'P2024', 'P2028'].includes(error.code)) return true
  const cause = (error as { meta?: { driverAdapterError?: { cause?: { kind?: string; originalCode?: string } } } })?.meta?.driverAdapterError?.cause
  if (cause?.kind === 'DatabaseNotReachable' || cause?.kind === 'ConnectionClosed' || (cause?.originalCode && isUnavailableSqlState(cause.originalCode))) return true
  const code = (error as { code?: string })?.code
  if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && isUnavailableSqlState(code)) return true
  return UNAVAILABLE_PATTERNS.test(String((error as Error)?.message ?? ''))
}

// SQLSTATE class 22 (data exception): PostgreSQL refused a value the client sent, such as a NUL
// character in text or JSON, or a timestamp outside its range. The request is at fault, not the server.
function isRefusedValue (error: unknown): boolean {
  return driverSqlState(error)?.startsWith('22') ?? false
}

/** The SQLSTATE PostgreSQL answered, as Prisma's driver adapter passes it on (undefined if none). */
function driverSqlState (error: unknown): string | undefined {
  const code = (error as { meta?: { driverAdapterError?: { cause?: { originalCode?: unknown } } } })?.meta?.driverAdapterError?.cause?.originalCode
  return typeof code === 'string' ? code : undefined
}

/** Fastify's router errors (undecodable URL, over-long path parameter), answered in the one shape. */
export function frameworkError (error: FastifyError, _request: FastifyRequest, reply: FastifyReply): FastifyReply {
  setFixedHeaders(reply) // no hook runs for these answers
  if (error.code === 'FST_ERR_BAD_URL' || error.code === 'FST_ERR_MAX_PARAM_LENGTH') return sendError(reply, 'BAD_REQUEST', 'Malformed URL')
  reply.log.error({ err: error }, 'request failed')
  return sendError(reply, 'INTERNAL', GENERIC_MESSAGES.INTERNAL)
}

/**
 * Fastify's `clientErrorHandler`: what the HTTP parser refuses before any request exists (conflicting
 * Content-Length, Content-Length with Transfer-Encoding, obs-fold, bare LF, headers too large,
 * header/request timeouts) is answered in the contract's shape with a generated request id, then the
 * socket is closed (RFC 9112 §11.2: after a framing error the rest of the stream cannot be trusted).
 * Status: 431 for headers too large, 408 for timeouts, 400 otherwise; the code is always BAD_REQUEST.
 */
export function clientErrorHandler (this: FastifyInstance, error: Error & { code?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy()
    return
  }
  // A response already started on this socket (a timeout mid-answer): nothing valid can follow.
  const current = (socket as unknown as { _httpMessage?: { headersSent?: boolean } })._httpMessage
  if (current?.headersSent) {
    socket.destroy()
    return
  }
  const requestId = randomUUID()
  const [status, reason, message] =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large', 'Request headers are too large']
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' || error.code === 'HPE_HEADERS_TIMEOUT'
        ? [408, 'Request Timeout', 'The request did not arrive in time']
        : [400, 'Bad Request', 'Malformed HTTP request']
  const body = JSON.stringify({ error: { code: 'BAD_REQUEST', message, requestId } })
  this.log.info({ reqId: requestId, code: 'BAD_REQUEST', reason: error.code ?? error.message, statusCode: status }, 'request refused by the HTTP parser')
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\n${FIXED_HEADER_LINES}X-Request-Id: ${requestId}\r\nConnection: close\r\n\r\n${body}`
  )
  // A client that never reads its answer must not keep the socket open.
  setTimeout(() => socket.destroy(), 1000).unref()
}

/** The answer for a path no route serves: `404 NOT_FOUND` naming the method and the path. */
function routeNotFound (request: FastifyRequest): Classified {
  return { code: 'NOT_FOUND', message: `Route ${request.method} ${request.url.split('?')[0]} not found` }
}

/**
 * Whether a path parameter's validation failed on an empty value: a trailing slash
 * (`/v1/projects/`) matches `/v1/projects/:id` with `id` empty, and its 400 would say an id was
 * given and malformed where the path names no resource at all (review 59). Runs on errors only.
 */
function emptyPathParameter (error: unknown, request: FastifyRequest): boolean {
  return (error as Partial<FastifyError>).validationContext === 'params' && Object.values(request.params ?? {}).includes('')
}

export function sendError (reply: FastifyReply, code: ErrorCode, message: string, headers: Record<string, string> = {}): FastifyReply {
  return reply
    .code(ERROR_STATUS[code])
    .headers(headers)
    .type('application/json; charset=utf-8')
    .send({ error: { code, message, requestId: reply.request.id } })
}

export default fp(
  async function errorHandler (app: FastifyInstance) {
    app.decorateRequest('failure', null)
    app.setErrorHandler((error: unknown, request: FastifyRequest, reply: FastifyReply) => {
      const { code, message, headers } = emptyPathParameter(error, request) ? routeNotFound(request) : classifyError(error)
      // An unexpected 500 gets its stack; everything else (4xx, and 503s, which come by the
      // thousand during an outage) is described by the one completion line below.
      if (code === 'INTERNAL') request.log.error({ err: error }, 'request failed')
      request.failure = { code, reason: errorReason(error) }
      return sendError(reply, code, message, headers)
    })
    // One line per request (Fastify's own two are off: RequestLogController, above), so an
    // outage under load writes one short line per refused request.
    // Built only when written: at LOG_LEVEL=warn the line of a request answered below 500 cost 3–5 %
    // of the list's CPU, its URL scrubbed for nothing (bench/HISTORY.md, round seventeen).
    app.addHook('onResponse', (request, reply, done) => {
      const level = reply.statusCode >= 500 ? 'warn' : 'info'
      if (writesAt(request.log, level)) request.log[level]({ ...completionLine(request, reply), ...(request.failure ?? {}) }, 'request completed')
      done()
    })
    app.setNotFoundHandler((request, reply) => {
      const { code, message } = routeNotFound(request)
      return sendError(reply, code, message)
    })
  },
  { name: 'error-handler' }
)
