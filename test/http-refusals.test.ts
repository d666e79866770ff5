// What the HTTP parser refuses before Fastify sees a request, over raw sockets to the real app
// listening on a port: every answer in the contract's error shape, then the socket closed. Also an
// absolute-form request target naming another host than Host, the asterisk-form target with
// another method than OPTIONS, and an over-long cursor.
import { once } from 'node:events'
import net from 'node:net'
import t, { type Test } from 'tap'
import { assertError, buildApi } from './api-helper.ts'

const api = await buildApi(t, { HTTP_HEADERS_TIMEOUT_MS: '1000', HTTP_REQUEST_TIMEOUT_MS: '2000' })
await api.app.listen({ host: '127.0.0.1', port: 0 })
const port = (api.app.server.address() as net.AddressInfo).port

interface RawAnswer {
  status: number
  head: string
  body: string
  /** True when the server closed the connection after answering. */
  closed: boolean
}

/**
 * Writes `raw` (string chunks, `pauseMs` apart), reads until the server closes (or 5 s pass).
 * `halfClose`: the last chunk is sent with FIN (the client's side of the socket ends).
 */
async function rawRequest (chunks: string[], pauseMs = 0, halfClose = false): Promise<RawAnswer> {
  const socket = net.connect(port, '127.0.0.1')
  await once(socket, 'connect')
  let received = ''
  socket.on('data', (chunk: Buffer) => { received += chunk.toString('latin1') })
  socket.on('error', () => {})
  const closed = new Promise<boolean>((resolve) => {
    socket.on('close', () => resolve(true))
    setTimeout(() => resolve(false), 5000)
  })
  for (const [i, chunk] of chunks.entries()) {
    if (halfClose && i === chunks.length - 1) socket.end(chunk)
    else if (socket.writable) socket.write(chunk)
    if (pauseMs) await new Promise((resolve) => setTimeout(resolve, pauseMs))
  }
  const wasClosed = await closed
  socket.destroy()
  const [head = '', body = ''] = received.split('\r\n\r\n')
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), head, body, closed: wasClosed }
}

function assertRefusal (t: Test, answer: RawAnswer, status: number) {
  t.equal(answer.status, status, `status ${status}`)
  t.match(answer.head, /content-type: application\/json; charset=utf-8/i, 'JSON')
  const body = JSON.parse(answer.body) as { error: { code: string; message: string; requestId: string } }
  t.equal(body.error.code, 'BAD_REQUEST', 'code BAD_REQUEST')
  t.type(body.error.message, 'string')
  t.match(body.error.requestId, /^[0-9a-f-]{36}$/, 'a generated request id')
  t.match(answer.head, new RegExp(`\r\nx-request-id: ${body.error.requestId}\r\n`, 'i'), 'and the same id in X-Request-Id, as on every answer')
  t.match(answer.head, /\r\ncache-control: no-store\r\n/i, 'Cache-Control: no-store')
  t.match(answer.head, /\r\nx-content-type-options: nosniff\r\n/i, 'and the security headers of every answer')
  t.same(Object.keys(body), ['error'], 'nothing but the error')
  t.ok(answer.closed, 'the connection is closed')
}

const cases: [string, string[], number][] = [
  ['two different Content-Lengths', ['POST /v1/auth/login HTTP/1.1\r\nHost: acme.localhost\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}'], 400],
  ['Content-Length with Transfer-Encoding', ['POST /v1/auth/login HTTP/1.1\r\nHost: acme.localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'], 400],
  ['an obs-folded header', ['GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Folded: a\r\n b\r\n\r\n'], 400],
  ['bare LF line endings', ['GET /healthz HTTP/1.1\nHost: localhost\n\n'], 400],
  ['a malformed request line', ['HELLO WORLD\r\n\r\n'], 400],
  ['headers too large', [`GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`], 431],
]

for (const [name, chunks, status] of cases) {
  t.test(`the parser refuses ${name}: ${status} in the error shape`, async (t) => {
    assertRefusal(t, await rawRequest(chunks), status)
  })
}

// HTTP/1.0 does not require Host (RFC 9112 §3.2): load balancers' health checks still send such
// requests. The health routes answer them; nothing else can, since no tenant is named.
t.test('HTTP/1.0 without Host: /healthz and /readyz answer, a tenant route is 404; HTTP/1.1 without Host is 400', async (t) => {
  for (const path of ['/healthz', '/readyz']) {
    const answer = await rawRequest([`GET ${path} HTTP/1.0\r\n\r\n`])
    t.match(answer.head, /^HTTP\/1\.1 200 /, `${path}: 200`)
  }
  const tenantRoute = await rawRequest(['GET /v1/projects HTTP/1.0\r\n\r\n'])
  t.match(tenantRoute.head, /^HTTP\/1\.1 404 /, 'a tenant route: 404')
  t.equal(JSON.parse(tenantRoute.body).error.code, 'TENANT_NOT_FOUND')
  const noHost11 = await rawRequest(['GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n'])
  t.equal(noHost11.status, 400, 'HTTP/1.1 without Host: 400')
})

t.test('headers that do not arrive within HTTP_HEADERS_TIMEOUT_MS: 408 in the error shape', async (t) => {
  const startedAt = Date.now()
  const answer = await rawRequest(['GET /healthz HTTP/1.1\r\n', 'Host: localhost\r\n', 'X-Slow: 1\r\n', 'X-Slow: 2\r\n'], 700)
  assertRefusal(t, answer, 408)
  t.ok(Date.now() - startedAt < 4500, 'within the bound (plus the check interval)')
})

t.test('a body that does not arrive within HTTP_REQUEST_TIMEOUT_MS: 408 in the error shape', async (t) => {
  const chunks = ['POST /v1/auth/login HTTP/1.1\r\nHost: acme.localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{', ...Array.from({ length: 8 }, () => ' ')]
  const answer = await rawRequest(chunks, 400)
  assertRefusal(t, answer, 408)
})

t.test('an absolute-form target naming another host than Host is refused', async (t) => {
  const token = api.acme.users.member.accessToken
  const mismatch = await rawRequest([`GET http://globex.localhost/v1/tenant HTTP/1.1\r\nHost: acme.localhost\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`])
  t.equal(mismatch.status, 400, '400')
  t.equal(JSON.parse(mismatch.body).error.code, 'BAD_REQUEST')
  t.notMatch(mismatch.body, /Acme|Globex/, 'no tenant was served')
  const same = await rawRequest([`GET http://acme.localhost/v1/tenant HTTP/1.1\r\nHost: acme.localhost\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`])
  t.equal(same.status, 200, 'the same host in both: served')
  t.equal(JSON.parse(same.body).slug, 'acme')
})

t.test('the asterisk-form target is for OPTIONS only (RFC 9112 §3.2.4)', async (t) => {
  const page = await rawRequest(['GET * HTTP/1.1\r\nHost: acme.localhost\r\nConnection: close\r\n\r\n'])
  t.equal(page.status, 400, 'GET * is refused, not answered with the page of /')
  t.equal(JSON.parse(page.body).error.code, 'BAD_REQUEST')
  const options = await rawRequest(['OPTIONS * HTTP/1.1\r\nHost: acme.localhost\r\nConnection: close\r\n\r\n'])
  t.equal(options.status, 404, 'OPTIONS * is no route here: 404 in the contract\'s shape')
  t.equal(JSON.parse(options.body).error.code, 'NOT_FOUND')
})

t.test('an over-long cursor is an undecodable cursor: 400 BAD_REQUEST', async (t) => {
  const res = await api.acme.call('member', { method: 'GET', url: `/v1/projects?cursor=${'A'.repeat(500)}` })
  assertError(t, res, 400, 'BAD_REQUEST')
  const short = await api.acme.call('member', { method: 'GET', url: '/v1/projects?cursor=AAAA' })
  assertError(t, short, 400, 'BAD_REQUEST')
})

// README "API decisions": a client that half-closes its socket after the request (FIN, as `nc -N`
// does) is treated as gone, Node's default: the server closes the socket, the process goes on, and
// the request, like any abandoned one, either took effect with its audit event or not at all.
t.test('a half-closed socket is closed by the server; no change without its event', async (t) => {
  const name = `half-closed ${Date.now()}`
  const body = JSON.stringify({ name })
  const answer = await rawRequest([`POST /v1/projects HTTP/1.1\r\nHost: acme.localhost\r\nAuthorization: Bearer ${api.acme.users.owner.accessToken}\r\n` +
    `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`], 0, true)
  t.ok(answer.closed, 'the server closed the socket')
  await new Promise((resolve) => setTimeout(resolve, 500)) // a request that runs on would have committed by now
  const projects = (await api.acme.call('owner', { url: '/v1/projects?limit=100' })).json().data.filter((p: { name: string }) => p.name === name)
  const events = (await api.acme.call('owner', { url: '/v1/audit-events?action=project.created&limit=100' })).json().data
  const recorded = projects.filter((p: { id: string }) => events.some((e: { target: { id: string } | null }) => e.target?.id === p.id))
  t.ok(projects.length <= 1, `at most one project (${projects.length})`)
  t.equal(recorded.length, projects.length, 'and a created one has its audit event')
  t.equal((await api.acme.call('owner', { url: '/v1/me' })).statusCode, 200, 'the next request is served')
})
