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

/** An API key (`tk_…`) anywhere in a string: shown as its 3-character marker only. */
const API_KEY_IN_TEXT = /tk_[A-Za-z0-9_-]+/g
export const scrubApiKeys = (text: string) => text.replace(API_KEY_IN_TEXT, 'tk_[redacted]')

interface LoggedRequest {
  method: string
  url: string
  host?: string
  ip?: string
  headers?: Record<string, unknown>
  socket?: { remotePort?: number }
}

/**
 * Fastify's default request serializer, except that an API key a client put in the URL (where it
 * does not belong and is refused) is not written to the log: redaction by path cannot reach inside
 * the URL string.
 */
export const logSerializers = {
  req (request: LoggedRequest) {
    return {
      method: request.method,
      url: scrubApiKeys(request.url),
      version: request.headers?.['accept-version'] as string | undefined,
      host: request.host,
      remoteAddress: request.ip,
      remotePort: request.socket?.remotePort,
    }
  },
}
