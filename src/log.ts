import type { Level, Logger } from 'pino'
import { ConfigError } from './config.ts'

// What the logs must never contain: credentials in headers, cookies, bodies and replies.
// `headers`, `body` and `responseHeaders` are the debug records of plugins/request-log.ts.
export const logRedactPaths = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-csrf-token"]',
  'req.headers["x-api-key"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  'headers["x-csrf-token"]',
  'headers["x-api-key"]',
  'responseHeaders["set-cookie"]',
  '*.password',
  '*.*.password',
  '*.currentPassword',
  '*.newPassword',
  '*.passwordHash',
  '*.accessToken',
  '*.refreshToken',
  '*.token',
  '*.key', // an API key in a body (the create answer); in headers it is the Authorization above
  '*.keyHash',
]

/**
 * Whether `log` writes lines at `level` — pino's own `isLevelEnabled`, which Fastify's logger type
 * leaves out — so that a line it would drop is not built. A logger without it (Fastify's when
 * logging is off) writes nothing. Throws nothing.
 */
export const writesAt = (log: object, level: Level): boolean => (log as Partial<Pick<Logger, 'isLevelEnabled'>>).isLevelEnabled?.(level) ?? false

/** An API key (`tk_…`) anywhere in a string: shown as its 3-character marker only. */
const API_KEY_IN_TEXT = /tk_[A-Za-z0-9_-]+/g
// Query parameters whose values are credentials: the emailed links' single-use tokens
// (/accept-invitation?token=…, /reset-password?token=…) and what clients name tokens and passwords.
const SECRET_PARAMETER = /^(?:token|access_token|refresh_token|password|secret)$/i
// Linear whatever the URL: a name holds no separator (a `?` allowed in names made `??…?` quadratic),
// and a value runs to the next `&` as Fastify's query parser reads it (`;` is part of it).
const QUERY_PARAMETER = /([?&])([^=&#?]*)=([^&#]*)/g

/**
 * A request URL as the logs may hold it: an API key (`tk_…`) anywhere is `tk_[redacted]`, and the
 * value of a query parameter named like a credential (`token`, `access_token`, `refresh_token`,
 * `password`, `secret`; any case, percent-encoded or not: `%74oken` is what a browser reads as
 * `token`) is `[redacted]`. The invitation and password-reset links carry their single-use token in
 * the URL, and whoever reads a log must not be able to use one (OWASP Logging Cheat Sheet: never
 * record access tokens, session ids or passwords).
 */
export const scrubUrl = (url: string) => url.replace(API_KEY_IN_TEXT, 'tk_[redacted]').replace(QUERY_PARAMETER, redactSecretParameter)

function redactSecretParameter (parameter: string, separator: string, name: string): string {
  return SECRET_PARAMETER.test(decodedName(name)) ? `${separator}${name}=[redacted]` : parameter
}

function decodedName (name: string): string {
  try {
    return decodeURIComponent(name.replaceAll('+', ' '))
  } catch {
    return name // not valid percent-encoding: the name as written
  }
}

interface LoggedRequest {
  method: string
  url: string
  host?: string
  ip?: string
  headers?: Record<string, unknown>
  socket?: { remotePort?: number }
}

/**
 * Fastify's default request serializer, except that the URL is scrubbed (scrubUrl): an API key a
 * client put in it (where it does not belong and is refused) and a link's token are not written to
 * the log — redaction by path cannot reach inside the URL string.
 */
export const logSerializers = {
  req (request: LoggedRequest) {
    return {
      method: request.method,
      url: scrubUrl(request.url),
      version: request.headers?.['accept-version'] as string | undefined,
      host: request.host,
      remoteAddress: request.ip,
      remotePort: request.socket?.remotePort,
    }
  },
}

/**
 * The pino options the server (Fastify's logger) and the standalone worker share: LOG_LEVEL, the
 * redactions and serializers above, JSON lines (numeric levels, pid, hostname) everywhere but at a
 * terminal in development, where pino-pretty writes readable ones. One format for both, so an alert
 * on `level >= 50` sees the worker's errors too.
 */
export function loggerOptions (config: { LOG_LEVEL: string, isDevelopment: boolean }) {
  return {
    level: config.LOG_LEVEL,
    redact: { paths: logRedactPaths, censor: '[redacted]' },
    serializers: logSerializers,
    ...(config.isDevelopment && process.stdout.isTTY ? { transport: { target: 'pino-pretty', options: { translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' } } } : {}),
  }
}

/** Errors whose message says what to fix (and holds no secret): printed as written, without a stack. */
const OPERATOR_ERRORS = new Set(['StartupError', 'PooledMigrationUrlError', 'OutOfOrderMigrationError'])

/**
 * Reports a start that failed, just before the process exits 1 (the server, the worker): an
 * operator's mistake — a ConfigError (a bad variable, an unsafe role, a refused login) or one of
 * OPERATOR_ERRORS — as its message on stderr, for whoever deploys it; and every failure as one
 * `fatal` line (level 60) in `log`, the JSON format of every other line, for an alert on
 * `level >= 50`. Never throws.
 */
export function reportFailedStart (log: Logger, error: unknown): void {
  if (error instanceof ConfigError || (error instanceof Error && OPERATOR_ERRORS.has(error.name))) {
    console.error(error.message)
    log.fatal(`could not start: ${error.message}`)
  } else {
    log.fatal({ err: error }, 'could not start')
  }
}

/** loggerOptions' input when the configuration could not be read: level info, pino-pretty only at a development terminal. */
export const fallbackLogConfig = (env: Record<string, string | undefined> = process.env) => ({
  LOG_LEVEL: 'info',
  isDevelopment: (env.NODE_ENV ?? 'development') === 'development',
})
