// The deployment's secrets and the keys derived from them (src/auth/secrets.ts).
import { mkdtemp, rm, stat } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { deploymentSecret, derivedKey } from '../src/auth/secrets.ts'

// Pinned: a changed salt or label would end every device cookie and every link a job has yet to
// mail, which no round-trip test notices (each mints and checks with the same code).
t.test('the derived keys are the ones deployed (HKDF-SHA256, RFC 5869; salt "tenant-api")', async (t) => {
  const secret = 'x'.repeat(40)
  t.equal(derivedKey(secret, 'login device cookies v2').toString('hex'), 'b768ef07acac50db9ac41cbe50d1dfb0e966cd044367e6e013e01d8eefb0a81f', 'device cookies')
  t.equal(derivedKey(secret, 'one-time link tokens v1').toString('hex'), 'feced8822b007ffae9501083d98e08e4c59367959202d80c828ff6e64e10c7a5', 'link tokens')
})

t.test('a deployment secret: the configuration\'s; in production required; else a private file, shared', async (t) => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'secrets-'))
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  const given = 'g'.repeat(32)
  t.equal(await deploymentSecret({ isProduction: true, dataDir, CSRF_SECRET: given }, 'CSRF_SECRET', 'csrf-secret'), given, 'the configuration\'s when set')
  await t.rejects(deploymentSecret({ isProduction: true, dataDir }, 'API_KEY_SECRET', 'api-key-secret'), /^API_KEY_SECRET is required in production$/, 'never generated in production')
  const [first, second] = await Promise.all([0, 1].map(() => deploymentSecret({ isProduction: false, dataDir }, 'CSRF_SECRET', 'csrf-secret')))
  t.match(first, /^[A-Za-z0-9_-]{43}$/, '32 random bytes, base64url')
  t.equal(second, first, 'two callers at once share one secret (the first writer wins)')
  t.equal((await stat(path.join(dataDir, 'keys', 'csrf-secret'))).mode & 0o777, 0o600, 'readable by its owner only')
  t.equal((await stat(path.join(dataDir, 'keys'))).mode & 0o777, 0o700)
})
