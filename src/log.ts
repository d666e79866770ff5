// What the logs must never contain: credentials in headers, cookies, bodies and replies.
export const logRedactPaths = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-csrf-token"]',
  'res.headers["set-cookie"]',
  '*.password',
  '*.currentPassword',
  '*.newPassword',
  '*.passwordHash',
  '*.accessToken',
  '*.refreshToken',
  '*.token',
  '*.key', // an API key in a body (the create answer); in headers it is the Authorization above
  '*.keyHash',
]
