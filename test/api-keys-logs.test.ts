// API keys and the emailed links' tokens never reach the logs: the real server process (src/server.ts, its own logger
// configuration, at trace level) is driven over HTTP while its stdout is captured.
import { spawn } from 'node:child_process'
import http from 'node:http'
import t from 'tap'
import { createUser } from './auth-helper.ts'
import { createTestDatabase, freePort, insertTenant } from './helper.ts'

const PASSWORD = 'correct horse battery staple'

interface Answer { status: number; body: string }

function request (port: number, host: string, method: string, path: string, headers: Record<string, string> = {}, body?: object): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body)
    const req = http.request({ host: '127.0.0.1', port, method, path, headers: { host, ...(payload ? { 'content-type': 'application/json' } : {}), ...headers } }, (res) => {
      let text = ''
      res.on('data', (chunk) => (text += chunk))
      res.on('end', () => resolve({ status: res.statusCode!, body: text }))
    })
    req.on('error', reject)
    req.end(payload)
  })
}

t.test('the server logs every request at trace level without any API key or link token in them', async (t) => {
  const url = await createTestDatabase(t)
  const tenantId = await insertTenant(url, 'acme')
  await createUser(url, tenantId, { email: 'owner@acme.example', password: PASSWORD, role: 'owner' })
  const port = await freePort()
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    env: { ...process.env, NODE_ENV: 'test', DATABASE_URL: url, LOG_LEVEL: 'trace', PORT: String(port), HOST: '127.0.0.1', DATA_DIR: '.data/test', BCRYPT_COST: '4', MIGRATE_ON_START: 'false' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let logged = ''
  child.stdout!.on('data', (chunk) => (logged += chunk))
  child.stderr!.on('data', (chunk) => (logged += chunk))
  t.teardown(() => { child.kill('SIGTERM') })
  const until = Date.now() + 90_000
  while (!/"ready/.test(logged) && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 100))
  t.match(logged, /ready/, 'the server started')

  const host = 'acme.localhost'
  const login = await request(port, host, 'POST', '/v1/auth/login', {}, { email: 'owner@acme.example', password: PASSWORD })
  t.equal(login.status, 200)
  const bearer = { authorization: `Bearer ${JSON.parse(login.body).accessToken}` }
  const created = await request(port, host, 'POST', '/v1/api-keys', bearer, { name: 'logged?', scopes: ['projects:read'] })
  t.equal(created.status, 201)
  const { key, id } = JSON.parse(created.body) as { key: string; id: string }
  const secret = key.slice(21)
  t.equal((await request(port, host, 'GET', '/v1/projects', { authorization: `Bearer ${key}` })).status, 200)
  const nearMiss = key.slice(0, -1) + (key.endsWith('a') ? 'b' : 'a')
  t.equal((await request(port, host, 'GET', '/v1/projects', { authorization: `Bearer ${nearMiss}` })).status, 401)
  t.equal((await request(port, host, 'GET', '/v1/me', { authorization: `Bearer ${key}` })).status, 403)
  t.equal((await request(port, 'globex.localhost', 'GET', '/v1/projects', { authorization: `Bearer ${key}` })).status, 404)
  // Put where it does not belong: in the URL and in a body. Still refused, still not logged.
  t.equal((await request(port, host, 'GET', `/v1/projects?api_key=${key}`, {})).status, 401)
  t.equal((await request(port, host, 'POST', '/v1/projects', { authorization: `Bearer ${key}` }, { name: key })).status, 403)
  t.equal((await request(port, host, 'DELETE', `/v1/api-keys/${id}`, bearer)).status, 204)
  // The invitation and reset emails' links carry a single-use token in the URL of the page they open.
  const linkTokens = ['Ab3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dF3hJ5kM7nP9q', 'Zy8xW6vU4tS2rQ0pO8nM6lK4jI2hG0fE8dC6bA4zY2x', 'Qw3eR5tY7uI9oP1aS3dF5gH7jK9lZ1xC3vB5nM7qW9']
  t.equal((await request(port, host, 'GET', `/accept-invitation?token=${linkTokens[0]}`)).status, 200)
  t.equal((await request(port, host, 'GET', `/reset-password?lang=en&Token=${linkTokens[1]}`)).status, 200)
  // Percent-encoded, the name is still `token` to the page's URLSearchParams.
  t.equal((await request(port, host, 'GET', `/accept-invitation?%74oken=${linkTokens[2]}`)).status, 200)
  await new Promise((resolve) => setTimeout(resolve, 300)) // let the last lines reach the pipe

  t.ok((logged.match(/"statusCode":/g) ?? []).length >= 8, 'the requests were logged')
  t.match(logged, /api_key=tk_\[redacted\]/, 'the key in the URL was redacted')
  t.notOk(logged.includes(secret), 'the key is not in the logs')
  t.notOk(logged.includes(nearMiss.slice(21)), 'nor a near miss of it')
  t.notOk(logged.includes(key.slice(0, 30)), 'nor any part of it beyond its prefix')
  t.match(logged, /"url":"\/accept-invitation\?token=\[redacted\]"/, "the invitation link's token was redacted")
  t.match(logged, /"url":"\/reset-password\?lang=en&Token=\[redacted\]/, "the reset link's token was redacted, the rest of the URL kept")
  t.match(logged, /"url":"\/accept-invitation\?%74oken=\[redacted\]"/, 'a percent-encoded name too')
  for (const token of linkTokens) t.notOk(logged.includes(token.slice(0, 12)), 'no link token in the logs')
})
