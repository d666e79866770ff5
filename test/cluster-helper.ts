// Real processes for the multi-instance tests: API servers (`node --import tsx src/server.ts`), a
// Redis of the test's own on a free port (stopped and restarted at will), nginx in front; and an
// HTTP client that can set Host and X-Forwarded-* (fetch cannot).
import { spawn, type ChildProcess } from 'node:child_process'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import { adminUrl, freePort, PRODUCTION_MAIL_ENV, withApiLogin } from './helper.ts'

type Tap = { teardown(fn: () => unknown): void; comment(...args: unknown[]): void }

export interface Answer {
  status: number
  headers: http.IncomingHttpHeaders
  body: string
  json(): any
}

/** One HTTP/1.1 request to 127.0.0.1:`port` with any headers (Host included). */
export function call (port: number, options: { method?: string; path: string; headers?: Record<string, string>; body?: unknown; localAddress?: string; ca?: Buffer }): Promise<Answer> {
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body)
  const headers: Record<string, string> = { ...(payload ? { 'content-type': 'application/json' } : {}), ...options.headers }
  return new Promise((resolve, reject) => {
    const target = { host: '127.0.0.1', port, localAddress: options.localAddress, method: options.method ?? 'GET', path: options.path, headers, agent: false }
    // HTTPS when a CA is given: the certificate is checked for the Host's name (SNI too).
    const hostName = (headers.host ?? 'localhost').split(':')[0]!
    const request = (options.ca ? https.request({ ...target, ca: options.ca, servername: hostName }, onResponse) : http.request(target, onResponse))
    function onResponse (response: http.IncomingMessage) {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => (body += chunk))
      response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, body, json: () => JSON.parse(body) }))
    }
    request.on('error', reject)
    request.end(payload)
  })
}

/** Resolves once `port` (on `address`, default 127.0.0.1) accepts TCP connections (rejects after `timeoutMs`). */
export async function waitForPort (port: number, timeoutMs = 20_000, address = '127.0.0.1'): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, address, () => { socket.destroy(); resolve(true) })
      socket.on('error', () => resolve(false))
    })
    if (open) return
    if (Date.now() > deadline) throw new Error(`port ${port} did not open in ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** Secrets shared by every instance of one deployment (as an operator would give them). */
export function sharedSecrets (): Record<string, string> {
  const { privateKey } = generateKeyPairSync('ed25519')
  return {
    JWT_PRIVATE_KEYS: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    CSRF_SECRET: randomBytes(32).toString('base64url'),
    API_KEY_SECRET: randomBytes(32).toString('base64url'),
    ...PRODUCTION_MAIL_ENV,
  }
}

export interface Server {
  port: number
  /** Everything the process wrote (for diagnostics). */
  output(): string
  stop(): Promise<void>
}

/**
 * Starts `node --import tsx src/server.ts` (or, with `npmScript`, `npm run <npmScript>` as an
 * operator would) with `env` on a free port; resolves once /healthz answers.
 */
export async function startServer (t: Tap, env: Record<string, string>, options: { ca?: Buffer, npmScript?: string } = {}): Promise<Server> {
  const port = await freePort()
  const [command, args] = options.npmScript ? ['npm', ['run', '-s', options.npmScript]] : [process.execPath, ['--import', 'tsx', 'src/server.ts']]
  const child = spawn(command, args, {
    env: await withApiLogin({ PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn', BCRYPT_COST: '4', BCRYPT_WORKERS: '1', DB_POOL_MAX: '5', ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout!.on('data', (chunk) => (output += chunk))
  child.stderr!.on('data', (chunk) => (output += chunk))
  orphanGuard(child)
  const server: Server = { port, output: () => output, stop: () => stop(child) }
  t.teardown(() => server.stop())
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`server exited (${code}) before it was ready:\n${output}`))))
  try {
    await Promise.race([waitForHealth(port, options.ca), exited])
  } catch (error) {
    throw new Error(`${(error as Error).message}\nserver output:\n${output}`)
  }
  return server
}

async function waitForHealth (port: number, ca?: Buffer): Promise<void> {
  await waitForPort(port, 90_000) // slow on a loaded 2-core machine
  for (let i = 0; i < 200; i++) {
    const answer = await call(port, { path: '/healthz', headers: { host: 'localhost' }, ca }).catch(() => null)
    if (answer?.status === 200) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error('/healthz never answered 200')
}

/** Kills `child` if this test process ends first (a timed-out test must not leave servers behind). */
export function orphanGuard (child: ChildProcess): void {
  const kill = () => child.kill('SIGKILL')
  process.once('exit', kill)
  child.once('exit', () => process.off('exit', kill))
}

/** SIGTERM, then SIGKILL after 5 s; resolves when the process is gone. */
export function stop (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000)
    child.once('exit', () => {
      clearTimeout(timer)
      resolve()
    })
    child.kill('SIGTERM')
  })
}

/** A redis-server of this test only (no persistence), on a free loopback port. */
export class TestRedis {
  private child: ChildProcess | null = null
  private constructor (readonly port: number) {}

  static async start (t: Tap): Promise<TestRedis> {
    const redis = new TestRedis(await freePort())
    t.teardown(() => redis.stop())
    await redis.restart()
    return redis
  }

  get url (): string {
    return `redis://127.0.0.1:${this.port}`
  }

  async restart (): Promise<void> {
    this.child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
    orphanGuard(this.child)
    await waitForPort(this.port)
  }

  /** SIGSTOP: the server keeps its connections open but answers nothing (a stalled host, a partition dropping packets). */
  freeze (): void {
    this.child?.kill('SIGSTOP')
  }

  /** SIGCONT after freeze(). */
  thaw (): void {
    this.child?.kill('SIGCONT')
  }

  async stop (): Promise<void> {
    this.thaw() // a stopped process would not act on SIGTERM
    if (this.child) await stop(this.child)
    this.child = null
  }
}

/** Polls `check` every 10 ms until it is true; returns the milliseconds it took (or throws after `limitMs`). */
export async function timeUntil (check: () => Promise<boolean>, limitMs = 10_000): Promise<number> {
  const started = performance.now()
  for (;;) {
    if (await check()) return Math.round(performance.now() - started)
    if (performance.now() - started > limitMs) throw new Error(`not within ${limitMs} ms`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

/**
 * nginx (Debian's) as our own process: `daemon off`, config, pid, logs and temp files in a
 * temporary directory, listening on a free loopback port; round-robin over `upstreams`; it
 * connects to them from `sourceAddress` (proxy_bind), so the API can tell it from direct clients.
 */
export async function startNginx (t: Tap, upstreams: number[], sourceAddress: string): Promise<{ port: number; upstreamLog(): Promise<string[]> }> {
  const { mkdtemp, writeFile, readFile, rm } = await import('node:fs/promises')
  const { tmpdir } = await import('node:os')
  const path = await import('node:path')
  const dir = await mkdtemp(path.join(tmpdir(), 'nginx-test-'))
  const port = await freePort()
  const config = `
daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 128; }
http {
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  log_format upstream '$upstream_addr';
  access_log ${dir}/access.log upstream;
  upstream api {
${upstreams.map((p) => `    server 127.0.0.1:${p};`).join('\n')}
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://api;
      proxy_bind ${sourceAddress};
      proxy_http_version 1.1;
      # The API is reached under an internal name; the client's Host travels in X-Forwarded-Host
      # (replacing any the client sent), the client's address is appended to X-Forwarded-For.
      proxy_set_header Host api.internal;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
    }
  }
}
`
  await writeFile(path.join(dir, 'nginx.conf'), config)
  const child = spawn('nginx', ['-e', path.join(dir, 'error.log'), '-p', dir, '-c', path.join(dir, 'nginx.conf')], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stderr!.on('data', (chunk) => (output += chunk))
  orphanGuard(child)
  t.teardown(async () => {
    await stop(child)
    await rm(dir, { recursive: true, force: true })
  })
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`nginx exited (${code}): ${output}`))))
  await Promise.race([waitForPort(port), exited])
  return { port, upstreamLog: async () => (await readFile(path.join(dir, 'access.log'), 'utf8')).split('\n').filter(Boolean) }
}

/**
 * PgBouncer (Debian's) as our own process in transaction mode, in front of the test server
 * (TEST_DATABASE_URL's host, port and login, used for every client: auth_type = any), config, pid
 * and log in a temporary directory; listening on `address` (127.0.0.1) and `port` (a free one);
 * serving every database, or only `databases`.
 * `roundRobin`: server_round_robin = 1 (load balancing over the pool); `poolSize`: default_pool_size
 * (server connections per database and user; PgBouncer's default 20). Run as `postgres` when we
 * are root (PgBouncer refuses root). Resolves once it accepts connections; stopped at teardown.
 */
export async function startPgBouncer (t: Tap, options: { address?: string, port?: number, roundRobin?: boolean, poolSize?: number, databases?: string[] } = {}): Promise<{ url(database: string): string }> {
  const { chmod, mkdtemp, rm, writeFile } = await import('node:fs/promises')
  const { existsSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const path = await import('node:path')
  const server = new URL(adminUrl)
  const dir = await mkdtemp(path.join(tmpdir(), 'pgbouncer-test-'))
  await chmod(dir, 0o777) // written by the postgres user
  const address = options.address ?? '127.0.0.1'
  const port = options.port ?? await freePort()
  const login = [`host=${server.hostname}`, `port=${server.port || 5432}`, `user=${decodeURIComponent(server.username)}`, server.password ? `password=${decodeURIComponent(server.password)}` : ''].join(' ')
  // `databases`: only these are served (as a production pgbouncer.ini lists the application's); else any.
  const databases = options.databases?.map((name) => `${name} = ${login} dbname=${name}`).join('\n') ?? `* = ${login}`
  await writeFile(path.join(dir, 'pgbouncer.ini'), `[databases]
${databases}

[pgbouncer]
listen_addr = ${address}
listen_port = ${port}
unix_socket_dir =
auth_type = any
pool_mode = transaction
server_round_robin = ${options.roundRobin ? 1 : 0}
default_pool_size = ${options.poolSize ?? 20}
logfile = ${dir}/pgbouncer.log
pidfile = ${dir}/pgbouncer.pid
`)
  await chmod(path.join(dir, 'pgbouncer.ini'), 0o644)
  const binary = existsSync('/usr/sbin/pgbouncer') ? '/usr/sbin/pgbouncer' : 'pgbouncer'
  const [command, args] = process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', binary, `${dir}/pgbouncer.ini`]] : [binary, [`${dir}/pgbouncer.ini`]]
  const child = spawn(command, args, { stdio: 'ignore' })
  orphanGuard(child)
  t.teardown(async () => {
    await stop(child)
    await rm(dir, { recursive: true, force: true })
  })
  await waitForPort(port, 10_000, address)
  return {
    url (database: string) {
      return `postgresql://pooled@${address}:${port}/${encodeURIComponent(database)}`
    },
  }
}
