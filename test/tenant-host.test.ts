// Every row of the contract's Host table (shared/API.md "Hosts and tenants"). A resolved tenant
// host answers an unknown route with NOT_FOUND; an unresolved one with TENANT_NOT_FOUND first.
import net from 'node:net'
import t from 'tap'
import { adminQuery, build, insertTenant } from './helper.ts'

const probe = async (app: Awaited<ReturnType<typeof build>>['app'], host: string, headers: Record<string, string> = {}) => {
  const res = await app.inject({ url: '/no-such-route', headers: { host, ...headers } })
  return { status: res.statusCode, code: res.json().error?.code as string, body: res.json() }
}

t.test('the Host header decides the tenant', async (t) => {
  const { app, ownerUrl } = await build(t)
  await insertTenant(ownerUrl, 'acme', { domain: 'api.acme-corp.test' })
  await insertTenant(ownerUrl, 'initech', { status: 'suspended' })

  const cases: [string, string][] = [
    ['acme.localhost', 'NOT_FOUND'],
    ['acme.localhost:3000', 'NOT_FOUND'],
    ['ACME.LocalHost', 'NOT_FOUND'],
    ['acme.localhost.', 'NOT_FOUND'],
    ['api.acme-corp.test', 'NOT_FOUND'],
    ['API.ACME-CORP.TEST:8443', 'NOT_FOUND'],
    ['localhost', 'NOT_FOUND'],
    ['localhost:3000', 'NOT_FOUND'],
    ['www.localhost', 'NOT_FOUND'],
    ['api.localhost', 'NOT_FOUND'],
    ['admin.localhost', 'NOT_FOUND'],
    ['nope.localhost', 'TENANT_NOT_FOUND'],
    ['initech.localhost', 'TENANT_NOT_FOUND'],
    ['a.acme.localhost', 'TENANT_NOT_FOUND'],
    ['acme.localhost..', 'BAD_REQUEST'],
    ['evil.example', 'TENANT_NOT_FOUND'],
    ['ab.localhost', 'TENANT_NOT_FOUND'],
    ['-acme.localhost', 'BAD_REQUEST'],
    ['acme .localhost', 'BAD_REQUEST'],
    ['acme.localhost:99999999', 'BAD_REQUEST'],
    ['acme.localhost:65535', 'NOT_FOUND'],
    ['acme.localhost:65536', 'BAD_REQUEST'],
    ['acme.localhost:99999', 'BAD_REQUEST'],
    ['[::1]:99999', 'BAD_REQUEST'],
    ['[::1]:3000', 'TENANT_NOT_FOUND'],
    ['127.0.0.1:3000', 'TENANT_NOT_FOUND'],
  ]
  for (const [host, code] of cases) {
    const res = await probe(app, host)
    t.equal(res.code, code, `${host} → ${code}`)
    t.equal(res.status, code === 'BAD_REQUEST' ? 400 : 404)
  }

  const unknown = await probe(app, 'nope.localhost')
  const suspended = await probe(app, 'initech.localhost')
  t.same({ ...unknown.body.error, requestId: 0 }, { ...suspended.body.error, requestId: 0 }, 'suspended and unknown answer identically')
})

t.test('made-up hosts: past TENANT_MISSES_PER_IP_PER_MIN an address is refused before any lookup, cached hosts still answer', async (t) => {
  const { app, ownerUrl } = await build(t, { env: { TENANT_MISSES_PER_IP_PER_MIN: '3' } })
  await insertTenant(ownerUrl, 'acme')
  t.equal((await probe(app, 'acme.localhost')).code, 'NOT_FOUND', 'acme is resolved (and cached)')
  const answers = []
  for (const slug of ['made-up-1', 'made-up-2', 'made-up-3', 'made-up-4']) answers.push((await probe(app, `${slug}.localhost`)).code)
  t.same(answers, ['TENANT_NOT_FOUND', 'TENANT_NOT_FOUND', 'TENANT_NOT_FOUND', 'RATE_LIMITED'], 'the fourth unknown name is not looked up')
  const refused = await app.inject({ url: '/no-such-route', headers: { host: 'made-up-5.localhost' } })
  t.equal(refused.statusCode, 429)
  t.ok(Number(refused.headers['retry-after']) >= 1 && Number(refused.headers['retry-after']) <= 60, `Retry-After ${refused.headers['retry-after']}`)
  // A tenant created meanwhile is not in the cache: the flooding address waits like for any other name.
  await insertTenant(ownerUrl, 'globex')
  t.equal((await probe(app, 'globex.localhost')).code, 'RATE_LIMITED', 'an uncached real tenant too: the budget is counted before the name is known')
  t.equal((await probe(app, 'acme.localhost')).code, 'NOT_FOUND', 'a cached tenant still answers the same address')
  const elsewhere = await app.inject({ url: '/no-such-route', headers: { host: 'globex.localhost' }, remoteAddress: '203.0.113.9' })
  t.equal(elsewhere.json().error.code, 'NOT_FOUND', 'another address is not limited (and finds globex)')
  const other = await app.inject({ url: '/no-such-route', headers: { host: 'made-up-6.localhost' }, remoteAddress: '203.0.113.9' })
  t.equal(other.json().error.code, 'TENANT_NOT_FOUND')
})

t.test('X-Forwarded-Host counts only behind a trusted proxy', async (t) => {
  const untrusted = await build(t)
  await insertTenant(untrusted.ownerUrl, 'acme')
  t.equal((await probe(untrusted.app, 'nope.localhost', { 'x-forwarded-host': 'acme.localhost' })).code, 'TENANT_NOT_FOUND')

  const trusted = await build(t, { env: { TRUST_PROXY: '127.0.0.1' } })
  await insertTenant(trusted.ownerUrl, 'acme')
  t.equal((await probe(trusted.app, 'internal:8080', { 'x-forwarded-host': 'acme.localhost' })).code, 'NOT_FOUND')
  t.equal((await probe(trusted.app, 'acme.localhost', { 'x-forwarded-host': 'nope.localhost' })).code, 'TENANT_NOT_FOUND')
})

/** Sends a raw HTTP/1.1 request and returns the status line and body. */
function rawRequest (port: number, head: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(`${head}\r\n\r\n`))
    let data = ''
    socket.on('data', (chunk) => (data += chunk))
    socket.on('end', () => resolve({ status: Number(data.split(' ')[1]), body: data.split('\r\n\r\n')[1] ?? '' }))
    socket.on('error', reject)
  })
}

t.test('a missing or repeated Host is a 400 in the JSON shape, over a real socket', async (t) => {
  const { app, ownerUrl } = await build(t)
  await insertTenant(ownerUrl, 'acme')
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as net.AddressInfo).port
  const missing = await rawRequest(port, 'GET /healthz HTTP/1.1\r\nConnection: close')
  t.equal(missing.status, 400)
  t.equal(JSON.parse(missing.body).error.code, 'BAD_REQUEST')
  const twice = await rawRequest(port, 'GET /no-such-route HTTP/1.1\r\nHost: acme.localhost\r\nHost: evil.localhost\r\nConnection: close')
  t.equal(twice.status, 400)
  t.equal(JSON.parse(twice.body).error.code, 'BAD_REQUEST')
  const fine = await rawRequest(port, 'GET /no-such-route HTTP/1.1\r\nHost: acme.localhost\r\nConnection: close')
  t.equal(JSON.parse(fine.body).error.code, 'NOT_FOUND')
})

t.test('suspension: at once through this process, within 5 s from another', async (t) => {
  const { app, ownerUrl } = await build(t)
  await insertTenant(ownerUrl, 'acme')
  t.equal((await probe(app, 'acme.localhost')).code, 'NOT_FOUND', 'active and now cached')

  // Another process (here: SQL behind the app's back) suspends the tenant.
  await adminQuery(ownerUrl, 'UPDATE tenants SET status = \'suspended\' WHERE slug = \'acme\'')
  const started = Date.now()
  let code = ''
  while (Date.now() - started < 6000) {
    code = (await probe(app, 'acme.localhost')).code
    if (code === 'TENANT_NOT_FOUND') break
    await new Promise((r) => setTimeout(r, 100))
  }
  t.equal(code, 'TENANT_NOT_FOUND', 'refused once the cache expired')
  t.ok(Date.now() - started < 5000, `within 5 s (took ${Date.now() - started} ms)`)

  // Reactivation through this process takes effect at once.
  await adminQuery(ownerUrl, 'UPDATE tenants SET status = \'active\' WHERE slug = \'acme\'')
  app.tenants.invalidate({ slug: 'acme' })
  t.equal((await probe(app, 'acme.localhost')).code, 'NOT_FOUND', 'reactivated: access restored')
})

// A custom domain is a tenant host like its slug: suspended is TENANT_NOT_FOUND there too, at once
// when the platform admin suspends it through this process, and access returns on reactivation.
t.test('a suspended tenant is not served on its custom domain either', async (t) => {
  const admin = 'platform-admin-token-of-at-least-32-characters'
  const { app, ownerUrl } = await build(t, { env: { PLATFORM_ADMIN_TOKEN: admin } })
  await insertTenant(ownerUrl, 'initech', { status: 'suspended', domain: 'api.initech.test' })
  await insertTenant(ownerUrl, 'acme', { domain: 'api.acme-corp.test' })
  t.equal((await probe(app, 'api.initech.test')).code, 'TENANT_NOT_FOUND', 'suspended from the start')
  t.equal((await probe(app, 'api.acme-corp.test')).code, 'NOT_FOUND', 'active, and now cached')
  const suspend = (status: string) => app.inject({ method: 'PATCH', url: '/v1/admin/tenants/acme', headers: { host: 'localhost', authorization: `Bearer ${admin}` }, payload: { status } })
  t.equal((await suspend('suspended')).statusCode, 200)
  t.equal((await probe(app, 'api.acme-corp.test')).code, 'TENANT_NOT_FOUND', 'suspended through this process: refused on the custom domain at once')
  t.equal((await probe(app, 'acme.localhost')).code, 'TENANT_NOT_FOUND', 'and on its slug')
  t.equal((await suspend('active')).statusCode, 200)
  t.equal((await probe(app, 'api.acme-corp.test')).code, 'NOT_FOUND', 'reactivated: served again at once')
})

// BASE_DOMAIN configured to something else than the default: tenants live under it, and the
// default's names mean nothing any more.
t.test('a non-default BASE_DOMAIN decides the platform and the tenant hosts', async (t) => {
  const { app, ownerUrl } = await build(t, { env: { BASE_DOMAIN: 'saas.example.net' } })
  await insertTenant(ownerUrl, 'acme')
  const cases: [string, string][] = [
    ['acme.saas.example.net', 'NOT_FOUND'],
    ['ACME.Saas.Example.NET:8443', 'NOT_FOUND'],
    ['saas.example.net', 'NOT_FOUND'],
    ['www.saas.example.net', 'NOT_FOUND'],
    ['nope.saas.example.net', 'TENANT_NOT_FOUND'],
    ['acme.localhost', 'TENANT_NOT_FOUND'],
    ['localhost', 'TENANT_NOT_FOUND'],
    ['acme.saas.example.net.evil.test', 'TENANT_NOT_FOUND'],
  ]
  for (const [host, code] of cases) t.equal((await probe(app, host)).code, code, `${host} → ${code}`)
  // The platform API answers on the bare base domain, a tenant's on its subdomain.
  const signup = await app.inject({ method: 'POST', url: '/v1/tenants', headers: { host: 'saas.example.net' }, payload: { slug: 'globex', name: 'Globex', owner: { email: 'o@globex.example', name: 'O', password: 'globex owner password' } } })
  t.equal(signup.statusCode, 201, 'signup on the platform host')
  const login = await app.inject({ method: 'POST', url: '/v1/auth/login', headers: { host: 'globex.saas.example.net' }, payload: { email: 'o@globex.example', password: 'globex owner password' } })
  t.equal(login.statusCode, 200, 'the new tenant signs in on <slug>.<BASE_DOMAIN>')
  t.equal((await app.inject({ method: 'POST', url: '/v1/auth/login', headers: { host: 'globex.localhost' }, payload: { email: 'o@globex.example', password: 'globex owner password' } })).json().error.code, 'TENANT_NOT_FOUND', 'not under the default domain')
})

// parseHost reads Hosts in lower case without a trailing dot; a domain or BASE_DOMAIN written
// otherwise could never match one, and nothing said so.
t.test('custom domains are stored as Hosts are read, and BASE_DOMAIN is read like a Host', async (t) => {
  const { app, ownerUrl } = await build(t, { env: { BASE_DOMAIN: 'Saas.Example.NET.' } })
  for (const domain of ['API.Acme-Corp.test', 'api.acme-corp.test.', 'api.acme-corp.test:443']) {
    await t.rejects(insertTenant(ownerUrl, `acme-${domain.length}`, { domain }), /tenants_domain_normalized/, `${domain} is refused`)
  }
  await insertTenant(ownerUrl, 'acme', { domain: 'api.acme-corp.test' })
  t.equal((await probe(app, 'API.Acme-Corp.test.')).code, 'NOT_FOUND', 'the stored form is served, whatever the Host\'s case')
  t.equal((await probe(app, 'acme.saas.example.net')).code, 'NOT_FOUND', 'a tenant under the BASE_DOMAIN as configured')
  t.equal((await probe(app, 'saas.example.net')).code, 'NOT_FOUND', 'the platform host')
})
