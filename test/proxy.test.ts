// A real nginx in front of two API processes (round-robin, X-Forwarded-For appended by nginx,
// X-Forwarded-Host set by it), TRUST_PROXY naming nginx's address and nothing else. nginx connects
// from 127.0.0.2 (proxy_bind) so that the test's direct requests (from 127.0.0.1) are untrusted
// clients; the "browser" and the attacker reach nginx from addresses of their own (127.0.0.3/4).
import t from 'tap'
import { WITHIN_ONE_SECOND_MS } from './api-helper.ts'
import { createUser } from './auth-helper.ts'
import { call, sharedSecrets, startNginx, startServer } from './cluster-helper.ts'
import { createTestDatabase, insertTenant, redisEnv } from './helper.ts'

const PASSWORD = 'correct horse battery staple'
const NGINX_ADDRESS = '127.0.0.2'

/** name=value of each Set-Cookie, as a browser would keep them. */
function cookieJar (setCookie: string[] | undefined): Map<string, string> {
  return new Map((setCookie ?? []).map((line) => line.split(';')[0]!.split('=') as [string, string]).map(([k, ...v]) => [k, v.join('=')]))
}
const cookieHeader = (jar: Map<string, string>) => [...jar].map(([k, v]) => `${k}=${v}`).join('; ')

t.test('nginx in front of two instances', async (t) => {
  const ownerUrl = await createTestDatabase(t)
  const acme = await insertTenant(ownerUrl, 'acme')
  await createUser(ownerUrl, acme, { email: 'ann@acme.test', password: PASSWORD, role: 'owner' })
  const env = {
    NODE_ENV: 'production',
    DATABASE_URL: ownerUrl,
    TRUST_PROXY: NGINX_ADDRESS,
    LOGIN_ATTEMPTS_PER_IP_PER_MIN: '3',
    ...redisEnv(),
    ...sharedSecrets(),
  }
  const [a, b] = await Promise.all([startServer(t, env), startServer(t, env)])
  const nginx = await startNginx(t, [a!.port, b!.port], NGINX_ADDRESS)
  const viaNginx = (options: Parameters<typeof call>[1], from = '127.0.0.3') => call(nginx.port, { localAddress: from, ...options })

  t.test('a browser-like cookie flow across both instances', async (t) => {
    const login = await viaNginx({ method: 'POST', path: '/v1/auth/login', headers: { host: 'acme.localhost' }, body: { email: 'ann@acme.test', password: PASSWORD } })
    t.equal(login.status, 200, 'signed in through nginx (tenant from X-Forwarded-Host)')
    const jar = cookieJar(login.headers['set-cookie'])
    t.ok(jar.has('__Host-access') && jar.has('__Host-csrf'), 'session cookies set')
    for (let i = 0; i < 4; i++) {
      t.equal((await viaNginx({ path: '/v1/me', headers: { host: 'acme.localhost', cookie: cookieHeader(jar) } })).status, 200, `cookie read ${i + 1}`)
    }
    const withoutCsrf = await viaNginx({ method: 'POST', path: '/v1/projects', headers: { host: 'acme.localhost', cookie: cookieHeader(jar) }, body: { name: 'No CSRF' } })
    t.equal(withoutCsrf.status, 403, 'a cookie write without X-CSRF-Token is refused')
    t.equal(withoutCsrf.json().error.code, 'CSRF_FAILED')
    for (let i = 0; i < 2; i++) {
      const write = await viaNginx({ method: 'POST', path: '/v1/projects', headers: { host: 'acme.localhost', cookie: cookieHeader(jar), 'x-csrf-token': jar.get('__Host-csrf')! }, body: { name: `Board ${i}` } })
      t.equal(write.status, 201, `cookie write ${i + 1} with the CSRF token`)
    }
  })

  t.test('a Bearer flow across both instances, logout holding on both', async (t) => {
    const login = await viaNginx({ method: 'POST', path: '/v1/auth/login', headers: { host: 'acme.localhost' }, body: { email: 'ann@acme.test', password: PASSWORD } })
    t.equal(login.status, 200)
    const bearer = { host: 'acme.localhost', authorization: `Bearer ${login.json().accessToken}` }
    for (let i = 0; i < 4; i++) {
      const list = await viaNginx({ path: '/v1/projects', headers: bearer })
      t.equal(list.status, 200, `list ${i + 1}`)
      t.equal(list.json().data.length, 2, 'the projects written through the other flow')
    }
    t.equal((await viaNginx({ method: 'POST', path: '/v1/auth/logout', headers: bearer })).status, 204)
    // The other instance learns of the logout by the invalidation message (tens of ms, at most 1 s
    // through the change feed): polled until two answers in a row — one per instance — refuse it.
    const loggedOutAt = Date.now()
    const statuses: number[] = []
    while (statuses.slice(-2).join() !== '401,401' && Date.now() - loggedOutAt < 3000) {
      statuses.push((await viaNginx({ path: '/v1/projects', headers: bearer })).status)
    }
    const heldAfter = Date.now() - loggedOutAt
    t.same(statuses.slice(-2), [401, 401], `revoked on both instances (${statuses.join(',')})`)
    t.ok(heldAfter <= WITHIN_ONE_SECOND_MS, `within 1 s, a loaded machine's 0.5 s allowed (${heldAfter} ms)`)
  })

  t.test('nginx spread the requests over both instances', async (t) => {
    const upstreams = new Set((await nginx.upstreamLog()).filter((line) => line !== '-'))
    t.same([...upstreams].sort(), [`127.0.0.1:${a!.port}`, `127.0.0.1:${b!.port}`].sort(), 'both upstreams served requests')
  })

  t.test('a spoofed X-Forwarded-For prefix does not escape the per-address limit', async (t) => {
    const statuses: number[] = []
    for (let i = 1; i <= 6; i++) {
      const attempt = await viaNginx({
        method: 'POST',
        path: '/v1/auth/login',
        headers: { host: 'acme.localhost', 'x-forwarded-for': `198.51.100.${i}, 203.0.113.20` },
        body: { email: `guess${i}@acme.test`, password: 'not the password' },
      }, '127.0.0.4')
      statuses.push(attempt.status)
      if (attempt.status === 429) t.ok(Number(attempt.headers['retry-after']) >= 1, 'Retry-After')
    }
    t.same(statuses, [401, 401, 401, 429, 429, 429], 'the 4th attempt from one address is refused, whatever it wrote in X-Forwarded-For, on either instance')
    const other = await viaNginx({ method: 'POST', path: '/v1/auth/login', headers: { host: 'acme.localhost' }, body: { email: 'guess@acme.test', password: 'nope' } }, '127.0.0.5')
    t.equal(other.status, 401, 'another client address is not limited')
  })

  t.test('X-Forwarded-Host: nginx\'s value counts, a client\'s does not', async (t) => {
    // Through nginx, a client-sent X-Forwarded-Host is replaced by nginx's ($host).
    const spoofed = await viaNginx({ path: '/v1/me', headers: { host: 'nope.localhost', 'x-forwarded-host': 'acme.localhost' } })
    t.equal(spoofed.json().error.code, 'TENANT_NOT_FOUND', 'the Host the client asked nginx for decides')
    // Directly (not through the trusted proxy), X-Forwarded-Host and X-Forwarded-For are ignored.
    const direct = await call(a!.port, { path: '/v1/me', headers: { host: 'nope.localhost', 'x-forwarded-host': 'acme.localhost' } })
    t.equal(direct.json().error.code, 'TENANT_NOT_FOUND', 'X-Forwarded-Host from an untrusted client is ignored')
    const directAcme = await call(a!.port, { path: '/v1/me', headers: { host: 'acme.localhost', 'x-forwarded-host': 'nope.localhost' } })
    t.equal(directAcme.json().error.code, 'UNAUTHORIZED', 'its Host decides (acme: now only the token is missing)')
  })
})
