// The developer's loop: `.env.example` lists every configuration variable with its default (so a
// newcomer never has to read src/config.ts to find one), and a `.env` file never overrides what the
// environment already says.
import { readFileSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { envExample } from '../scripts/env-example.ts'
import { ConfigSchema } from '../src/config.ts'
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
