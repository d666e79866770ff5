// The README's start commands are npm scripts, and npm hands a signal only to the shell it runs
// the script in: without `exec` in the script, SIGTERM to `npm start` (a container's `docker stop`,
// a process manager) ended npm and left the server running without its drain, holding the port.
// And npm forwards the signal it gets, so a stop sent to the whole process group (Ctrl-C in a
// terminal, systemd's KillMode=control-group) reaches the server twice (review 62).
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFile, rm } from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { DUPLICATE_SIGNAL_MS } from '../src/close-on-signal.ts'
import { orphanGuard, sharedSecrets, startServer, waitForPort } from './cluster-helper.ts'
import { createTestDatabase, freePort } from './helper.ts'

const portIsFree = (port: number) => new Promise<boolean>((resolve) => {
  const socket = net.connect(port, '127.0.0.1')
  socket.once('connect', () => { socket.destroy(); resolve(false) })
  socket.once('error', () => resolve(true))
})

t.test('SIGTERM to `npm start` reaches the server: it drains, stops and frees its port', async (t) => {
  const ownerUrl = await createTestDatabase(t)
  const server = await startServer(t, { NODE_ENV: 'production', DATABASE_URL: ownerUrl, LOG_LEVEL: 'info', ...sharedSecrets() }, { npmScript: 'start' })
  await server.stop() // SIGTERM to npm, and the wait for npm to exit
  t.match(server.output(), /shutting down: finishing in-flight requests/, 'the server received the signal')
  t.match(server.output(), /stopped: in-flight requests finished, database closed/, 'and drained')
  t.ok(await portIsFree(server.port), 'nothing listens on its port any more')
})

t.test('Ctrl-C on `npm start` (SIGINT to its process group, which npm forwards too): one drain, the in-flight login answered, the embedded PostgreSQL stopped; a second Ctrl-C forces the exit', async (t) => {
  const dataDir = path.resolve('.data', `npm-start-${randomBytes(4).toString('hex')}`)
  const [port, pgPort] = [await freePort(), await freePort()]
  t.teardown(async () => {
    // A forced exit leaves the embedded PostgreSQL running (the next start would adopt it): stop it here.
    const pid = Number((await readFile(path.join(dataDir, 'postgres/cluster/postmaster.pid'), 'utf8').catch(() => '')).split('\n')[0])
    if (pid > 0) {
      try { process.kill(pid, 'SIGINT') } catch {}
      for (let i = 0; i < 100 && !(await portIsFree(pgPort)); i++) await new Promise((resolve) => setTimeout(resolve, 100))
    }
    await rm(dataDir, { recursive: true, force: true })
  })
  // detached: npm leads a process group of its own, as a terminal's foreground job does.
  const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', NODE_ENV: 'development', HOST: '127.0.0.1', PORT: String(port), DATA_DIR: dataDir, EMBEDDED_PG_PORT: String(pgPort), LOG_LEVEL: 'info', BCRYPT_COST: '4', BCRYPT_WORKERS: '1' }
  const npm = spawn('npm', ['run', '-s', 'start'], { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env })
  orphanGuard(npm)
  let output = ''
  npm.stdout!.on('data', (chunk) => (output += chunk))
  npm.stderr!.on('data', (chunk) => (output += chunk))
  const exited = once(npm, 'exit') as Promise<[number | null, string | null]>
  t.teardown(() => { if (npm.exitCode === null) process.kill(-npm.pid!, 'SIGKILL') })
  await waitForPort(port, 120_000)

  // A login whose body is half sent when the stop comes, and finished after it.
  const body = JSON.stringify({ email: 'demo@example.com', password: 'acme-demo-password' })
  const socket = net.connect(port, '127.0.0.1')
  await once(socket, 'connect')
  let answer = ''
  socket.on('data', (chunk) => (answer += chunk))
  socket.write(`POST /v1/auth/login HTTP/1.1\r\nHost: acme.localhost\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body.slice(0, 10)}`)
  await new Promise((resolve) => setTimeout(resolve, 300))
  process.kill(-npm.pid!, 'SIGINT')
  await new Promise((resolve) => setTimeout(resolve, 300))
  socket.write(body.slice(10)) // Connection: close: the server closes after its answer
  await once(socket, 'close')

  t.match(answer, /^HTTP\/1\.1 200 /, `the login in flight was answered (${answer.split('\r\n')[0]})`)
  const [code] = await exited
  t.equal(code, 0, 'npm exits 0: the server drained')
  t.equal(output.match(/shutting down: finishing in-flight requests/g)?.length, 1, 'one drain for the two deliveries of the signal')
  t.match(output, /stopped: in-flight requests finished, database closed/)
  t.ok(await portIsFree(pgPort), 'the embedded PostgreSQL is stopped, not left running on its port')

  // A second Ctrl-C, later than a duplicate could be, still forces the exit (a drain held by a
  // slow upload would otherwise last SHUTDOWN_GRACE_MS).
  const again = spawn('npm', ['run', '-s', 'start'], { detached: true, stdio: 'ignore', env: { ...env, SHUTDOWN_GRACE_MS: '60000' } })
  orphanGuard(again)
  t.teardown(() => { if (again.exitCode === null) process.kill(-again.pid!, 'SIGKILL') })
  const againExited = once(again, 'exit') as Promise<[number | null, string | null]>
  await waitForPort(port, 120_000)
  const slow = net.connect(port, '127.0.0.1')
  slow.on('error', () => {})
  await once(slow, 'connect')
  slow.write('POST /v1/auth/login HTTP/1.1\r\nHost: acme.localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{')
  await new Promise((resolve) => setTimeout(resolve, 300))
  process.kill(-again.pid!, 'SIGINT')
  await new Promise((resolve) => setTimeout(resolve, DUPLICATE_SIGNAL_MS + 500))
  t.equal(again.exitCode, null, 'the first Ctrl-C: still draining')
  const forcedAt = Date.now()
  process.kill(-again.pid!, 'SIGINT')
  const [forcedCode] = await againExited
  slow.destroy()
  t.equal(forcedCode, 1, 'the second: exit 1')
  t.ok(Date.now() - forcedAt < 5000, 'at once, not after the grace period')
})
