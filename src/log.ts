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
]
