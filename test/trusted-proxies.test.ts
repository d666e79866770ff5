// TRUST_PROXY names the proxies (or counts them): the client address — for every limit and every
// log line — is the first untrusted hop from the right, so a made-up X-Forwarded-For prefix changes
// nothing. Also: the signup limit per address, and the configuration errors.
import { Writable } from 'node:stream'
import t from 'tap'
import { buildApp } from '../src/app.ts'
import { ConfigError } from '../src/config.ts'
import { createDatabase } from '../src/db/database.ts'
import { build, createTestDatabase, insertTenant, testConfig } from './helper.ts'

const login = (app: Awaited<ReturnType<typeof build>>['app'], remoteAddress: string, headers: Record<string, string>, email: string) =>
  app.inject({ method: 'POST', url: '/v1/auth/login', remoteAddress, headers: { host: 'acme.localhost', ...headers }, payload: { email, password: 'not the password at all' } })

t.test('TRUST_PROXY: true is refused with a clear message; addresses, CIDRs and hop counts are accepted', async (t) => {
  t.throws(() => testConfig('postgresql://x@127.0.0.1/x', { TRUST_PROXY: 'true' }), { name: 'ConfigError', message: /TRUST_PROXY="true": true would trust every hop/ })
  t.throws(() => testConfig('postgresql://x@127.0.0.1/x', { TRUST_PROXY: '10.0.0.300' }), ConfigError)
  t.throws(() => testConfig('postgresql://x@127.0.0.1/x', { TRUST_PROXY: 'my-proxy' }), ConfigError)
  t.same(testConfig('postgresql://x@127.0.0.1/x', { TRUST_PROXY: '10.0.0.5, 192.168.0.0/16, loopback' }).trustProxy, { kind: 'addresses', addresses: ['10.0.0.5', '192.168.0.0/16', 'loopback'] })
  t.same(testConfig('postgresql://x@127.0.0.1/x', { TRUST_PROXY: '2' }).trustProxy, { kind: 'hops', hops: 2 })
  t.same(testConfig('postgresql://x@127.0.0.1/x').trustProxy, { kind: 'off' })
  t.throws(() => testConfig('postgresql://x@127.0.0.1/x', { TLS_CERT_FILE: '/tmp/cert.pem' }), { name: 'ConfigError', message: /TLS_CERT_FILE and TLS_KEY_FILE/ })
})

for (const trust of ['10.0.0.1', '10.0.0.0/8', '1']) {
  t.test(`TRUST_PROXY=${trust}: a spoofed X-Forwarded-For prefix does not escape the per-address limit`, async (t) => {
    const { app, ownerUrl } = await build(t, { env: { TRUST_PROXY: trust, LOGIN_ATTEMPTS_PER_IP_PER_MIN: '3' } })
    await insertTenant(ownerUrl, 'acme')
    const statuses = []
    for (let i = 1; i <= 8; i++) statuses.push((await login(app, '10.0.0.1', { 'x-forwarded-for': `198.51.100.${i}, 203.0.113.20` }, `u${i}@example.com`)).statusCode)
    t.same(statuses, [401, 401, 401, 429, 429, 429, 429, 429], 'counted as 203.0.113.20, the address the proxy saw')
    const neighbour = await login(app, '10.0.0.1', { 'x-forwarded-for': '203.0.113.21' }, 'n@example.com')
    t.equal(neighbour.statusCode, 401, 'another client behind the same proxy is not limited')
  })
}

t.test('an untrusted peer\'s X-Forwarded-For is ignored', async (t) => {
  const { app, ownerUrl } = await build(t, { env: { TRUST_PROXY: '10.0.0.1', LOGIN_ATTEMPTS_PER_IP_PER_MIN: '3' } })
  await insertTenant(ownerUrl, 'acme')
  const statuses = []
  for (let i = 1; i <= 4; i++) statuses.push((await login(app, '192.0.2.7', { 'x-forwarded-for': `198.51.100.${i}` }, `u${i}@example.com`)).statusCode)
  t.same(statuses, [401, 401, 401, 429], 'counted as 192.0.2.7 (the socket), whatever it claims')
})

t.test('logs carry the client address, not the proxy\'s or a spoofed one', async (t) => {
  const url = await createTestDatabase(t)
  const config = testConfig(url, { TRUST_PROXY: '10.0.0.1', LOG_LEVEL: 'info' })
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(String(chunk)); done() } })
  const app = await buildApp({ config, database: createDatabase(config, url), logger: { level: 'info', stream } })
  t.teardown(() => app.close())
  await app.inject({ url: '/healthz', remoteAddress: '10.0.0.1', headers: { host: 'localhost', 'x-forwarded-for': '198.51.100.9, 203.0.113.20' } })
  const completed = lines.map((line) => JSON.parse(line)).find((entry) => entry.msg === 'request completed')
  t.equal(completed?.ip, '203.0.113.20', 'the request line names the first untrusted hop from the right')
})

t.test('signup is limited per client address: 429 with Retry-After', async (t) => {
  const { app } = await build(t, { env: { SIGNUP_PER_IP_MAX: '2', SIGNUP_PER_IP_WINDOW_S: '600' } })
  const signup = (slug: string, remoteAddress = '198.51.100.1') => app.inject({
    method: 'POST',
    url: '/v1/tenants',
    remoteAddress,
    headers: { host: 'localhost' },
    payload: { slug, name: slug, owner: { email: `o@${slug}.test`, password: 'correct horse battery staple', name: 'O' } },
  })
  t.equal((await signup('first')).statusCode, 201)
  t.equal((await signup('second')).statusCode, 201)
  const refused = await signup('third')
  t.equal(refused.statusCode, 429)
  t.equal(refused.json().error.code, 'RATE_LIMITED')
  const retryAfter = Number(refused.headers['retry-after'])
  t.ok(retryAfter > 500 && retryAfter <= 600, `Retry-After ${retryAfter} s`)
  t.equal((await signup('third', '198.51.100.2')).statusCode, 201, 'another address may sign up')
})
