// Background jobs across real server processes (two servers = two processes): a job enqueued
// before SIGTERM is delivered after the next start, SIGTERM lets a running job finish, and the
// stand-alone worker (`npm run worker`) delivers what API instances that do not work enqueued.
import { spawn, type ChildProcess } from 'node:child_process'
import http from 'node:http'
import net from 'node:net'
import t, { type Test } from 'tap'
import { createUser } from './auth-helper.ts'
import { adminQuery, createTestDatabase, cuttableProxy, freePort, insertTenant } from './helper.ts'
import { startSmtp, tokenOf } from './mail-helper.ts'

type Tap = Parameters<typeof createTestDatabase>[0]
const PASSWORD = 'correct horse battery staple'

/** Starts `entry` (the server, or the stand-alone worker) as a process of its own. */
function startServer (t: Tap, env: Record<string, string>, entry = 'src/server.ts') {
  const child = spawn(process.execPath, ['--import', 'tsx', entry], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout!.on('data', (d) => (output += d))
  child.stderr!.on('data', (d) => (output += d))
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  return { child, output: () => output }
}

const exited = (child: ChildProcess) => new Promise<number | null>((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.on('exit', resolve)))

/** node:http, because fetch cannot set Host. */
function request (port: number, method: string, path: string, body?: object, headers: Record<string, string> = {}): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const payload = body ? JSON.stringify(body) : undefined
    const req = http.request({ host: '127.0.0.1', port, method, path, headers: { host: 'acme.localhost', ...(payload ? { 'content-type': 'application/json' } : {}), ...headers } }, (res) => {
      let text = ''
      res.on('data', (d) => (text += d))
      res.on('end', () => resolve({ status: res.statusCode!, json: text ? JSON.parse(text) : null }))
    })
    req.on('error', reject)
    req.end(payload)
  })
}

async function waitReady (port: number, ms = 90_000) {
  const until = Date.now() + ms
  while (Date.now() < until) {
    if (await request(port, 'GET', '/readyz').then((r) => r.status === 200, () => false)) return true
    await new Promise((r) => setTimeout(r, 100))
  }
  return false
}

async function arrange (t: Tap) {
  const url = await createTestDatabase(t)
  const acme = await insertTenant(url, 'acme')
  await createUser(url, acme, { email: 'owner@acme.example', password: PASSWORD, role: 'owner' })
  return { url }
}

const serverEnv = (url: string, port: number, smtpPort: number, extra: Record<string, string> = {}) => ({
  NODE_ENV: 'test',
  DATABASE_URL: url,
  PORT: String(port),
  HOST: '127.0.0.1',
  LOG_LEVEL: 'warn',
  BCRYPT_COST: '4',
  DATA_DIR: '.data/test',
  SMTP_URL: `smtp://127.0.0.1:${smtpPort}`,
  JOB_POLL_INTERVAL_S: '0.5',
  JOB_RETRY_DELAY_S: '1',
  JOB_RETRY_LIMIT: '20',
  ...extra,
})

async function invite (port: number, email: string) {
  const login = await request(port, 'POST', '/v1/auth/login', { email: 'owner@acme.example', password: PASSWORD })
  const res = await request(port, 'POST', '/v1/invitations', { email, role: 'member' }, { authorization: `Bearer ${login.json.accessToken}` })
  return res
}

t.test('a job enqueued before SIGTERM is delivered after the next start', async (t) => {
  const { url } = await arrange(t)
  const [port, smtpPort] = [await freePort(), await freePort()]
  // First server: its SMTP server is not there yet, so the email job fails and waits for a retry.
  const first = startServer(t, serverEnv(url, port, smtpPort))
  t.ok(await waitReady(port), 'first server ready')
  const res = await invite(port, 'later@example.com')
  t.equal(res.status, 201)
  first.child.kill('SIGTERM')
  t.equal(await exited(first.child), 0, `first server exits 0 on SIGTERM\n${first.output()}`)
  const { rows } = await adminQuery(url, "SELECT state FROM pgboss.job WHERE name = 'email-invitation'")
  t.match(rows, [{ state: /created|retry/ }], 'the job is still waiting in the database')

  const smtp = await startSmtp(t, { port: smtpPort })
  const second = startServer(t, serverEnv(url, port, smtpPort))
  t.ok(await waitReady(port), 'second server ready')
  const mail = await smtp.waitFor('later@example.com', { timeoutMs: 30_000 })
  t.equal(new URL(mail.link!).pathname, '/accept-invitation')
  const accepted = await request(port, 'POST', '/v1/invitations/accept', { token: tokenOf(mail), name: 'Later', password: 'a long enough new passphrase' })
  t.equal(accepted.status, 201, 'the delivered link works')
  second.child.kill('SIGTERM')
  t.equal(await exited(second.child), 0)
})

t.test('SIGTERM lets a running job finish: the email is delivered once, nothing is left to redo', async (t) => {
  const { url } = await arrange(t)
  const port = await freePort()
  const smtp = await startSmtp(t, { delayMs: 2_000 }) // each message takes 2 s to be accepted
  const server = startServer(t, serverEnv(url, port, smtp.port))
  t.ok(await waitReady(port))
  t.equal((await invite(port, 'inflight@example.com')).status, 201)
  // Wait until the job is running (active), then stop the server.
  for (let i = 0; i < 100; i++) {
    const { rows } = await adminQuery(url, "SELECT state FROM pgboss.job WHERE name = 'email-invitation'")
    if (rows[0]?.state === 'active') break
    await new Promise((r) => setTimeout(r, 50))
  }
  server.child.kill('SIGTERM')
  t.equal(await exited(server.child), 0, server.output())
  t.same(smtp.messages.map((m) => m.to), ['inflight@example.com'], 'delivered before the process exited')
  const { rows } = await adminQuery(url, "SELECT state FROM pgboss.job WHERE name = 'email-invitation'")
  t.same(rows, [{ state: 'completed' }], 'the job completed: no second email after a restart')
})

/** An SMTP server and an API instance with JOBS_WORKER=false that has enqueued (only) an invitation to `email`. */
async function enqueuedByApi (t: Test, email: string) {
  const { url } = await arrange(t)
  const port = await freePort()
  const smtp = await startSmtp(t)
  const api = startServer(t, serverEnv(url, port, smtp.port, { JOBS_WORKER: 'false' }))
  t.ok(await waitReady(port), 'API instance ready')
  t.equal((await invite(port, email)).status, 201, `invitation to ${email} enqueued`)
  return { url, smtp, api }
}

t.test('the stand-alone worker delivers what an API instance with JOBS_WORKER=false enqueued', async (t) => {
  const { url, smtp, api } = await enqueuedByApi(t, 'worker@example.com')
  const { rows } = await adminQuery(url, "SELECT state FROM pgboss.job WHERE name = 'email-invitation'")
  t.same(rows, [{ state: 'created' }], 'the API instance only enqueued')
  const worker = startServer(t, serverEnv(url, await freePort(), smtp.port, { LOG_LEVEL: 'info' }), 'src/worker.ts')
  const mail = await smtp.waitFor('worker@example.com', { timeoutMs: 30_000 })
  t.equal(new URL(mail.link!).pathname, '/accept-invitation', 'the worker sent the email')
  // The server's log format (pino: numeric levels, pid, hostname), so one alert rule sees both.
  const lines = worker.output().split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Record<string, unknown>)
  t.ok(lines.length > 0, 'the worker logs JSON lines')
  t.ok(lines.every((line) => typeof line.level === 'number' && typeof line.pid === 'number' && typeof line.hostname === 'string'), 'with numeric levels, pid and hostname, as the server\'s')
  worker.child.kill('SIGTERM')
  t.equal(await exited(worker.child), 0, `the worker exits 0 on SIGTERM\n${worker.output()}`)
  api.child.kill('SIGTERM')
  t.equal(await exited(api.child), 0)
})

// Review 56: the stand-alone worker exited 1 (a plain-text stack, no JSON line) when its database was
// down at its start, where the server waits for it: a worker restarted during a failover was gone.
t.test('the stand-alone worker started while its database is down waits for it, then delivers', async (t) => {
  const { url, smtp, api } = await enqueuedByApi(t, 'late-worker@example.com')
  const proxy = await cuttableProxy(t, new URL(url))
  await proxy.cut() // the worker's database: connections refused
  const jsonLines = (output: string) => output.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Record<string, unknown>)
  const waitingLine = async (worker: ReturnType<typeof startServer>) => {
    for (let i = 0; i < 300 && worker.child.exitCode === null; i++) {
      const line = jsonLines(worker.output()).find((entry) => String(entry.msg).startsWith('background jobs waiting for the database'))
      if (line) return line
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    return undefined
  }

  // Stopped while it waits: a clean exit, at once.
  const stoppedEarly = startServer(t, serverEnv(proxy.url, await freePort(), smtp.port, { LOG_LEVEL: 'info' }), 'src/worker.ts')
  t.ok(await waitingLine(stoppedEarly), `it says it waits (JSON)\n${stoppedEarly.output()}`)
  stoppedEarly.child.kill('SIGTERM')
  t.equal(await exited(stoppedEarly.child), 0, 'SIGTERM while waiting: exit 0')

  const worker = startServer(t, serverEnv(proxy.url, await freePort(), smtp.port, { LOG_LEVEL: 'info' }), 'src/worker.ts')
  const waiting = await waitingLine(worker)
  t.match(waiting, { level: 40, retryInMs: 5000 }, 'a warning, with when it tries again')
  await new Promise((resolve) => setTimeout(resolve, 6_000)) // past its first retry
  t.equal(worker.child.exitCode, null, `still running after a retry\n${worker.output()}`)
  t.same(smtp.messages, [], 'nothing sent meanwhile')
  await proxy.restore()
  const mail = await smtp.waitFor('late-worker@example.com', { timeoutMs: 30_000 })
  t.equal(new URL(mail.link!).pathname, '/accept-invitation', 'the email queued during the outage is delivered once the database is back')
  t.ok(jsonLines(worker.output()).some((line) => line.msg === 'worker ready'), 'ready once the database answered')
  worker.child.kill('SIGTERM')
  t.equal(await exited(worker.child), 0, `exits 0 on SIGTERM\n${worker.output()}`)
  api.child.kill('SIGTERM')
  t.equal(await exited(api.child), 0)
})

// Review 60 M1: a SIGTERM that came while a start attempt was under way set up a fresh 5 s wait
// after the attempt failed, which outlived the shutdown bound (JOB_SHUTDOWN_TIMEOUT_MS + 2 s): the
// worker exited 1. A database that accepts connections and never answers makes the attempt last
// its connect bound (1 s here).
t.test('a SIGTERM during a start attempt against a database that never answers: exit 0 within the shutdown bound', async (t) => {
  const sockets: net.Socket[] = []
  const silent = net.createServer((socket) => { sockets.push(socket) }) // accepts, never writes
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const socket of sockets) socket.destroy()
    silent.close()
  })
  const url = `postgresql://saas_api:x@127.0.0.1:${(silent.address() as net.AddressInfo).port}/app`
  const worker = startServer(t, serverEnv(url, await freePort(), 9, { DB_CONNECT_TIMEOUT_MS: '1000', JOB_SHUTDOWN_TIMEOUT_MS: '1000', LOG_LEVEL: 'info' }), 'src/worker.ts')
  const until = async (done: () => boolean) => {
    for (let i = 0; i < 400 && !done() && worker.child.exitCode === null; i++) await new Promise((resolve) => setTimeout(resolve, 50))
    return done()
  }
  t.ok(await until(() => worker.output().includes('background jobs waiting for the database')), `the first attempt gave up after its connect bound\n${worker.output()}`)
  const before = sockets.length
  t.ok(await until(() => sockets.length > before), 'a second attempt is connecting, 5 s later')
  worker.child.kill('SIGTERM')
  t.equal(await exited(worker.child), 0, `exit 0, not the shutdown bound's exit 1\n${worker.output()}`)
})
