// The server in embedded mode (it starts its own PostgreSQL): a start that fails stops that
// PostgreSQL, and so does a drain that outlives its grace period (a slow upload holds it).
import { once } from 'node:events'
import net from 'node:net'
import { spawnSync } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { freePort } from './helper.ts'
import { serverEnv, sleep, slowUpload, startServer } from './resilience-harness.ts'

t.test('embedded PostgreSQL: a failed start stops it; so does a drain that outlives its grace period', async (t) => {
  const dataDir = path.resolve('.data', `resilience-embedded-${randomBytes(4).toString('hex')}`)
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  const pgPort = await freePort()
  const blocker = net.createServer().listen(0, '127.0.0.1')
  await once(blocker, 'listening')
  t.teardown(() => blocker.close())
  const busyPort = (blocker.address() as net.AddressInfo).port
  const env = (port: number) => ({ ...serverEnv(port, undefined, { SHUTDOWN_GRACE_MS: '1500' }), NODE_ENV: 'test', DATA_DIR: dataDir, EMBEDDED_PG_PORT: String(pgPort) })
  const pgAnswers = () => new Promise<boolean>((resolve) => {
    const socket = net.connect(pgPort, '127.0.0.1', () => { socket.destroy(); resolve(true) })
    socket.on('error', () => resolve(false))
  })

  const failed = await startServer(env(busyPort), { waitMs: 90_000 })
  t.equal(await failed.exited, 1, 'listening on a port in use: exit code 1')
  t.match(failed.output(), /EADDRINUSE/, 'naming the cause')
  t.equal(await pgAnswers(), false, 'and the embedded PostgreSQL it started is stopped')

  const started = await startServer(env(await freePort()), { waitMs: 90_000 })
  t.equal(started.child.exitCode, null, 'a normal start')
  t.equal(await pgAnswers(), true, 'runs the embedded PostgreSQL')
  const slow = await slowUpload(started.port, '/v1/auth/login', 'acme.localhost')
  await sleep(300)
  const signalledAt = Date.now()
  started.child.kill('SIGTERM')
  const code = await started.exited
  slow.destroy()
  t.equal(code, 2, 'the slow upload outlived the grace period: exit code 2')
  t.ok(Date.now() - signalledAt < 1500 + 8000, 'soon after the grace period')
  t.equal(await pgAnswers(), false, 'the embedded PostgreSQL is stopped all the same')
})

t.test('a DATA_DIR the embedded PostgreSQL\'s OS user cannot enter: a message that says what to do', { skip: process.getuid?.() !== 0 && 'only as root (PostgreSQL then runs as "postgres")' }, async (t) => {
  const locked = await mkdtemp(path.join(os.tmpdir(), 'resilience-')) // mode 0700, like `mktemp -d`
  t.teardown(() => rm(locked, { recursive: true, force: true }))
  const server = spawnSync(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    env: { PATH: process.env.PATH ?? '', NODE_ENV: 'development', DATA_DIR: path.join(locked, 'data'), PORT: '0', EMBEDDED_PG_PORT: String(await freePort()) },
    encoding: 'utf8',
    timeout: 60_000,
  })
  t.equal(server.status, 1, 'exit code 1')
  t.match(server.stderr, `cannot enter ${locked}`, 'names the folder')
  t.match(server.stderr, `chmod o+x ${locked}`, 'and the fix')
  t.notMatch(server.stderr, /\n\s+at /, 'no stack trace')
})
