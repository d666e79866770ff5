// Native HTTPS (TLS_CERT_FILE/TLS_KEY_FILE) with a self-signed certificate made by openssl here:
// the server answers over TLS only, with HSTS, and the API works over it.
import { execFileSync } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import t from 'tap'
import { createUser } from './auth-helper.ts'
import { ConfigError } from '../src/config.ts'
import { readTlsFiles } from '../src/net/tls-files.ts'
import { call, sharedSecrets, startServer } from './cluster-helper.ts'
import { createTestDatabase, insertTenant } from './helper.ts'

const PASSWORD = 'correct horse battery staple'

t.test('HTTPS served directly, with HSTS', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'tls-test-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const cert = path.join(dir, 'cert.pem')
  const key = path.join(dir, 'key.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
    '-keyout', key, '-out', cert, '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,DNS:acme.localhost'], { stdio: 'ignore' })
  const ca = await readFile(cert)

  const ownerUrl = await createTestDatabase(t)
  const acme = await insertTenant(ownerUrl, 'acme')
  await createUser(ownerUrl, acme, { email: 'ann@acme.test', password: PASSWORD, role: 'owner' })
  const server = await startServer(t, { NODE_ENV: 'production', DATABASE_URL: ownerUrl, TLS_CERT_FILE: cert, TLS_KEY_FILE: key, ...sharedSecrets() }, { ca })

  const health = await call(server.port, { path: '/healthz', headers: { host: 'localhost' }, ca })
  t.equal(health.status, 200, 'answers over TLS (certificate verified against the generated CA)')
  t.match(health.headers['strict-transport-security'], /max-age=\d+/, 'HSTS')
  const login = await call(server.port, { method: 'POST', path: '/v1/auth/login', headers: { host: 'acme.localhost' }, body: { email: 'ann@acme.test', password: PASSWORD }, ca })
  t.equal(login.status, 200, 'sign in on a tenant host over HTTPS')
  const me = await call(server.port, { path: '/v1/me', headers: { host: 'acme.localhost', authorization: `Bearer ${login.json().accessToken}` }, ca })
  t.equal(me.json().email, 'ann@acme.test')
  await t.rejects(call(server.port, { path: '/healthz', headers: { host: 'localhost' } }), 'plain HTTP is not served on the TLS port')
})

// Review 56: swapped files stopped the start with OpenSSL's "no start line", naming no variable.
t.test('a swapped, foreign or missing TLS file stops the start naming its variable', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'tls-files-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const pair = (name: string) => {
    const cert = path.join(dir, `${name}-cert.pem`)
    const key = path.join(dir, `${name}-key.pem`)
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
      '-keyout', key, '-out', cert, '-subj', '/CN=localhost'], { stdio: 'ignore' })
    return { cert, key }
  }
  const mine = pair('mine')
  const other = pair('other')
  const refusal = (cert: string, key: string) => readTlsFiles(cert, key).then(() => null, (error: Error) => error)
  const cases: Array<[string, string, string, RegExp]> = [
    ['swapped', mine.key, mine.cert, /TLS_CERT_FILE: not a PEM certificate \(is it the key file\?/],
    ['a certificate where the key should be', mine.cert, mine.cert, /TLS_KEY_FILE: not a PEM private key/],
    ['another certificate\'s key', mine.cert, other.key, /TLS_KEY_FILE: not the private key of the certificate in TLS_CERT_FILE/],
    ['a missing file', mine.cert, path.join(dir, 'nowhere.pem'), /TLS_KEY_FILE: cannot read the file \(ENOENT\)/],
  ]
  for (const [what, cert, key, message] of cases) {
    const error = await refusal(cert, key)
    t.ok(error instanceof ConfigError, `${what}: a configuration error (its message alone is printed)`)
    t.match(error?.message, message, what)
    t.notMatch(error?.message, /BEGIN|PRIVATE KEY-/, `${what}: no file content echoed`)
  }
  const read = await readTlsFiles(mine.cert, mine.key)
  t.ok(read.cert.length > 0 && read.key.length > 0, 'the right pair is read')
})
