// The developer's loop: `.env.example` lists every configuration variable with its default (so a
// newcomer never has to read src/config.ts to find one), and a `.env` file never overrides what the
// environment already says.
import { readFileSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { envExample } from '../scripts/env-example.ts'
import { ConfigSchema, loadConfig, startupWarnings } from '../src/config.ts'
import { loadEnvFileIfPresent } from '../src/env-file.ts'

t.test('.env.example is up to date with the configuration schema (npm run env:example)', async (t) => {
  const committed = readFileSync('.env.example', 'utf8')
  t.equal(committed, envExample(), 'run `npm run env:example` and commit .env.example')
  for (const name of Object.keys(ConfigSchema.properties)) t.match(committed, new RegExp(`^# ${name}=`, 'm'), name)
})

t.test('.env fills in unset variables and never overrides the environment', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'env-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = path.join(dir, '.env')
  writeFileSync(file, 'DEV_LOOP_TEST_SET=from-file\nDEV_LOOP_TEST_UNSET=from-file\n')
  process.env.DEV_LOOP_TEST_SET = 'from-environment'
  t.equal(loadEnvFileIfPresent(file), true)
  t.equal(process.env.DEV_LOOP_TEST_SET, 'from-environment')
  t.equal(process.env.DEV_LOOP_TEST_UNSET, 'from-file')
  t.equal(loadEnvFileIfPresent(path.join(dir, 'missing')), false)
})

t.test('start-up warnings: development on a public address, production with BASE_DOMAIN=localhost, the benchmark\'s switches (refused in production)', async (t) => {
  t.same(startupWarnings(loadConfig({})), [], 'development on localhost: none')
  const publicDevelopment = startupWarnings(loadConfig({ HOST: '0.0.0.0' }))
  t.match(publicDevelopment, [/NODE_ENV=development on HOST=0\.0\.0\.0: secrets are generated per instance/], 'NODE_ENV forgotten on a public address')
  const production = {
    NODE_ENV: 'production',
    HOST: '0.0.0.0',
    DATABASE_URL: 'postgresql://u@127.0.0.1/db',
    APP_DATABASE_URL: 'postgresql://api@127.0.0.1/db',
    JWT_PRIVATE_KEYS: 'k',
    CSRF_SECRET: 'x'.repeat(32),
    API_KEY_SECRET: 'y'.repeat(32),
    SMTP_URL: 'smtp://mail.example.com:587',
    MAIL_FROM: 'Acme <no-reply@acme.example>',
  }
  t.match(startupWarnings(loadConfig(production)), [/BASE_DOMAIN is localhost: links in invitation and password-reset emails/], 'emailed links to localhost')
  t.same(startupWarnings(loadConfig({ ...production, BASE_DOMAIN: 'api.example.com' })), [], 'a production configuration: none')
  t.same(startupWarnings(loadConfig({ ...production, INVITATIONS_ENABLED: 'false', PASSWORD_RESET_ENABLED: 'false', SMTP_URL: '', MAIL_FROM: '' })), [], 'no email sent: BASE_DOMAIN=localhost is harmless')

  // Review 58: with RLS=off a raw statement that forgets tenant_id crosses tenants, and production took it.
  const deployed = { ...production, BASE_DOMAIN: 'api.example.com' }
  t.throws(() => loadConfig({ ...deployed, RLS: 'off' }), { name: 'ConfigError', message: /^NODE_ENV=production refuses RLS=off: without row-level security the Prisma extension alone keeps tenants apart/ }, 'production refuses RLS=off')
  t.throws(() => loadConfig({ ...deployed, AUDIT: 'off' }), { message: /^NODE_ENV=production refuses AUDIT=off: .*its servers set ALLOW_BENCHMARK_SWITCHES=true/ }, 'and AUDIT=off, saying how a benchmark runs them')
  const benchmark = loadConfig({ ...deployed, RLS: 'off', AUDIT: 'off', ALLOW_BENCHMARK_SWITCHES: 'true' })
  t.equal(benchmark.rlsEnabled, false, 'a benchmark\'s server sets ALLOW_BENCHMARK_SWITCHES=true')
  t.match(startupWarnings(benchmark), [/^RLS=off and AUDIT=off: .*For benchmarks only/], 'and is warned at start')
  t.match(startupWarnings(loadConfig({ RLS: 'off' })), [/^RLS=off: without row-level security the Prisma extension alone/], 'development warns too')
})
