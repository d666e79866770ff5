// Shared by test/resilience.test.ts and scripts/chaos.ts: a PostgreSQL of our own that can be
// stopped, frozen and restarted, and the real server as a separate process on it.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import net from 'node:net'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { mkdir, rm } from 'node:fs/promises'
import http from 'node:http'
import path from 'node:path'
import bcrypt from 'bcryptjs'
import pg from 'pg'
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../src/db/embedded-postgres.ts'
import { applyMigrations } from '../src/db/migrate.ts'
import { freePort, PRODUCTION_MAIL_ENV, withApiLogin } from './helper.ts'

export const TENANT_HOST = 'acme.localhost'
export const PASSWORD = 'resilience-password-1'

/** A PostgreSQL in `.data/<name>-<random>`, removed by destroy(). */
export class OwnPostgres {
  embedded!: EmbeddedPostgres
  readonly dir: string
  port = 0
  constructor (name: string) {
    this.dir = path.resolve('.data', `${name}-${randomBytes(4).toString('hex')}`)
  }

  async start (): Promise<void> {
    if (!this.port) this.port = await freePort()
    await mkdir(this.dir, { recursive: true, mode: 0o755 })
    this.embedded = await startEmbeddedPostgres({ dir: this.dir, port: this.port, database: 'app' })
  }

  stop (): Promise<void> {
    return this.embedded.stop()
  }

  /** Every process of the cluster: the postmaster and its children. */
  pids (): number[] {
    const postmaster = Number(readFileSync(path.join(this.dir, 'cluster', 'postmaster.pid'), 'utf8').split('\n')[0])
    const children = execFileSync('ps', ['-o', 'pid=', '--ppid', String(postmaster)], { encoding: 'utf8' }).split('\n').map(Number).filter(Boolean)
    return [postmaster, ...children]
  }

  /** SIGSTOP (freeze) or SIGCONT (thaw) every process of the cluster, by pid. */
  signal (signal: 'SIGSTOP' | 'SIGCONT', pids = this.pids()): number[] {
    for (const pid of pids) {
      try { process.kill(pid, signal) } catch { /* exited meanwhile */ }
    }
    return pids
  }

  /** Terminates every client connection but the caller's (what a failover does to the API). */
  async terminateConnections (): Promise<number> {
    const client = new pg.Client({ connectionString: this.embedded.adminUrl })
    client.on('error', () => {})
    await client.connect()
    try {
      const { rowCount } = await client.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'")
      return rowCount ?? 0
    } finally {
      await client.end()
    }
  }

  async destroy (): Promise<void> {
    try { this.signal('SIGCONT') } catch { /* not running */ }
    await this.embedded?.stop().catch(() => {})
    await rm(this.dir, { recursive: true, force: true })
  }
}

/** Migrates and seeds tenant `acme` with one member; returns nothing the server needs but its URL. */
export async function prepareDatabase (url: string): Promise<void> {
  await applyMigrations(url)
  const client = new pg.Client({ connectionString: url })
  client.on('error', () => {})
  await client.connect()
  try {
    const { rows } = await client.query<{ id: string }>("INSERT INTO tenants (slug, name) VALUES ('acme', 'Acme') RETURNING id")
    const tenantId = rows[0]!.id
    await client.query(
      "INSERT INTO users (tenant_id, email, name, role, password_hash) VALUES ($1, 'member@example.com', 'Member', 'member', $2)",
      [tenantId, bcrypt.hashSync(PASSWORD, 4)])
    await client.query("INSERT INTO projects (tenant_id, name) SELECT $1, 'Project ' || i FROM generate_series(1, 20) i", [tenantId])
  } finally {
    await client.end()
  }
}

export interface ServerProcess {
  child: ChildProcess
  port: number
  /** Everything written to stdout and stderr so far. */
  output(): string
  /** Resolves with the exit code (or the signal's name). */
  exited: Promise<number | string>
}

/** The production environment of a server on `databaseUrl` (or the embedded one when undefined). */
export function serverEnv (port: number, databaseUrl: string | undefined, extra: Record<string, string> = {}): Record<string, string> {
  const key = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  return {
    PATH: process.env.PATH ?? '',
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    PORT: String(port),
    BASE_DOMAIN: 'localhost',
    LOG_LEVEL: 'info',
    JWT_PRIVATE_KEYS: key,
    CSRF_SECRET: randomBytes(32).toString('hex'),
    API_KEY_SECRET: randomBytes(32).toString('hex'),
    ...PRODUCTION_MAIL_ENV,
    BCRYPT_COST: '4',
    BCRYPT_WORKERS: '1',
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
    ...extra,
  }
}

/** Starts `node <entry>` (TypeScript through tsx by default) and waits until it answers /healthz. */
export async function startServer (env: Record<string, string>, options: { entry?: string[]; waitMs?: number } = {}): Promise<ServerProcess> {
  const args = options.entry ?? ['--import', 'tsx', 'src/server.ts']
  const child = spawn(process.execPath, args, { env: await withApiLogin(env), stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout!.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr!.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')))
  const port = Number(env.PORT)
  const deadline = Date.now() + (options.waitMs ?? 60_000)
  for (;;) {
    if (child.exitCode !== null) return { child, port, output: () => output, exited }
    const res = await request(port, { path: '/healthz', host: 'localhost', timeoutMs: 1000 }).catch(() => undefined)
    if (res?.status === 200) break
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`server did not start:\n${output}`)
    }
    await sleep(100)
  }
  return { child, port, output: () => output, exited }
}

export interface Answer {
  status: number
  headers: http.IncomingHttpHeaders
  body: string
  ms: number
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 })

/** One HTTP request to 127.0.0.1:`port` with a Host header (fetch cannot set Host). */
export function request (port: number, options: { path: string; host?: string; method?: string; token?: string; body?: unknown; timeoutMs?: number }): Promise<Answer> {
  const startedAt = performance.now()
  return new Promise((resolve, reject) => {
    const payload = options.body === undefined ? undefined : JSON.stringify(options.body)
    const req = http.request({
      host: '127.0.0.1',
      port,
      path: options.path,
      method: options.method ?? 'GET',
      agent,
      headers: {
        host: options.host ?? TENANT_HOST,
        ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
        ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
      },
    }, (res) => {
      let body = ''
      res.on('data', (chunk: Buffer) => { body += chunk.toString() })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, ms: performance.now() - startedAt }))
      res.on('error', reject)
    })
    req.setTimeout(options.timeoutMs ?? 30_000, () => req.destroy(new Error(`no answer within ${options.timeoutMs ?? 30_000} ms`)))
    req.on('error', reject)
    req.end(payload)
  })
}

export async function signIn (port: number): Promise<string> {
  const res = await request(port, { path: '/v1/auth/login', method: 'POST', body: { email: 'member@example.com', password: PASSWORD } })
  if (res.status !== 200) throw new Error(`login answered ${res.status}: ${res.body}`)
  return (JSON.parse(res.body) as { accessToken: string }).accessToken
}

/** True when `answer` is the contract's 503: error shape, SERVICE_UNAVAILABLE, Retry-After. */
export function isContract503 (answer: Answer): boolean {
  if (answer.status !== 503 || !answer.headers['retry-after']) return false
  try {
    const { error } = JSON.parse(answer.body) as { error?: { code?: string; message?: string; requestId?: string } }
    return error?.code === 'SERVICE_UNAVAILABLE' && typeof error.message === 'string' && typeof error.requestId === 'string'
  } catch {
    return false
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** A raw socket that sends a POST's headers and part of its body, then dribbles the rest. */
export async function slowUpload (port: number, path: string, host: string): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1')
  await once(socket, 'connect')
  socket.on('error', () => {})
  socket.write(`POST ${path} HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"name":"`)
  const timer = setInterval(() => socket.writable && socket.write('a'), 200)
  socket.on('close', () => clearInterval(timer))
  return socket
}
