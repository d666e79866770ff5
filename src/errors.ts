// The error contract (shared/API.md "Errors"): every error answer is
// {"error":{"code","message","requestId"}} with one of these codes and its status.
export const ERROR_STATUS = {
  BAD_REQUEST: 400,
  VALIDATION_FAILED: 400,
  INVALID_CREDENTIALS: 401,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  CSRF_FAILED: 403,
  NOT_FOUND: 404,
  TENANT_NOT_FOUND: 404,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  RATE_LIMITED: 429,
  INTERNAL: 500,
  SERVICE_UNAVAILABLE: 503,
} as const

export type ErrorCode = keyof typeof ERROR_STATUS

/** An error meant for the client: its code and message are sent as they are. */
export class AppError extends Error {
  override name = 'AppError'
  readonly statusCode: number
  constructor (
    readonly code: ErrorCode,
    message: string,
    /** Extra response headers, e.g. Retry-After. */
    readonly headers: Record<string, string> = {}
  ) {
    super(message)
    this.statusCode = ERROR_STATUS[code]
  }
}

export const notFound = (what = 'Resource') => new AppError('NOT_FOUND', `${what} not found`)
export const forbidden = (message = 'Your role does not allow this') => new AppError('FORBIDDEN', message)
export const conflict = (message: string) => new AppError('CONFLICT', message)
export const unauthorized = (message = 'Authentication required') => new AppError('UNAUTHORIZED', message)

/**
 * A programming error, not a client's: code read a request value (`request.principal`,
 * `request.tenantId`, `request.db`) on a route where the hook that provides it did not run. It is
 * not an AppError, so the one error classifier answers the contract's generic 500 INTERNAL (nothing
 * leaks) and the log carries this message, which names the value and the hook it needs.
 */
export class MissingRequestContextError extends Error {
  override name = 'MissingRequestContextError'
  constructor (property: string, providedBy: string) {
    super(`request.${property} is only available ${providedBy}`)
  }
}
