// Password policy and hashing. bcryptjs's async API still computes on the main thread (in slices),
// so under a burst of logins every other request would wait: hashing and comparing run in a few
// node:worker_threads instead. The pool is a small hand-written one (about 60 lines) rather than
// piscina: one message type, a fixed number of threads, no extra dependency to audit.
import { randomBytes } from 'node:crypto'
import { Worker } from 'node:worker_threads'
import { AppError } from '../errors.ts'

/** bcrypt reads at most 72 bytes; longer passwords are refused, never silently truncated. */
export const MAX_PASSWORD_BYTES = 72

/** Why `plain` is not acceptable as a new password, or null. Length counts Unicode characters. */
export function passwordProblem(plain: string, minLength: number): string | null {
  if ([...plain].length < minLength) return `must be at least ${minLength} characters`
  if (Buffer.byteLength(plain, 'utf8') > MAX_PASSWORD_BYTES) return `must be at most ${MAX_PASSWORD_BYTES} bytes of UTF-8`
  return null
}

/** Throws 400 VALIDATION_FAILED naming `field` when `plain` breaks the policy. */
export function assertAcceptablePassword(plain: string, minLength: number, field = 'password'): void {
  const problem = passwordProblem(plain, minLength)
  if (problem) throw new AppError('VALIDATION_FAILED', `body/${field} ${problem}`)
}

interface Job {
  id: number
  op: 'hash' | 'compare' | 'threadId'
  args: unknown[]
  resolve(value: unknown): void
  reject(error: Error): void
}

class WorkerPool {
  private readonly idle: Worker[] = []
  private readonly running = new Map<Worker, Job>()
  private readonly queue: Job[] = []
  private started = 0
  private nextId = 0
  private closed = false

  constructor(private readonly size: number) {}

  run<T>(op: Job['op'], args: unknown[]): Promise<T> {
    if (this.closed) return Promise.reject(new Error('the password worker pool is closed'))
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ id: this.nextId++, op, args, resolve: resolve as (value: unknown) => void, reject })
      this.dispatch()
    })
  }

  async close(): Promise<void> {
    this.closed = true
    for (const job of this.queue.splice(0)) job.reject(new Error('the password worker pool is closed'))
    await Promise.all([...this.idle, ...this.running.keys()].map((worker) => worker.terminate()))
  }

  private dispatch(): void {
    while (this.queue.length) {
      const worker = this.idle.pop() ?? (this.started < this.size ? this.spawn() : undefined)
      if (!worker) return
      const job = this.queue.shift()!
      this.running.set(worker, job)
      worker.ref() // a pending answer keeps the process alive (a script awaiting a hash)…
      worker.postMessage({ id: job.id, op: job.op, args: job.args })
    }
  }

  private spawn(): Worker {
    this.started++
    const worker = new Worker(new URL('./bcrypt-worker.mjs', import.meta.url))
    worker.on('message', (message: { result?: unknown; error?: string }) => {
      const job = this.running.get(worker)
      this.running.delete(worker)
      worker.unref() // …an idle pool never does
      this.idle.push(worker)
      if (message.error !== undefined) job?.reject(new Error(message.error))
      else job?.resolve(message.result)
      this.dispatch()
    })
    // A crashed worker fails its job and is replaced on the next dispatch.
    let gone = false
    const lost = (error: Error) => {
      if (gone) return // 'error' is followed by 'exit'
      gone = true
      const job = this.running.get(worker)
      this.running.delete(worker)
      const at = this.idle.indexOf(worker)
      if (at >= 0) this.idle.splice(at, 1)
      this.started--
      job?.reject(error)
      if (!this.closed) this.dispatch()
    }
    worker.on('error', lost)
    worker.on('exit', (code) => lost(new Error(`password worker exited with code ${code}`)))
    return worker
  }
}

export interface PasswordHasherOptions {
  /** bcrypt cost (config.BCRYPT_COST). */
  cost: number
  /** Worker threads (config.BCRYPT_WORKERS). */
  workers: number
  /** Policy for new passwords (config.PASSWORD_MIN_LENGTH). */
  minLength: number
}

export class PasswordHasher {
  private readonly pool: WorkerPool
  private dummy?: Promise<string>

  constructor(readonly options: PasswordHasherOptions) {
    this.pool = new WorkerPool(options.workers)
  }

  /** The bcrypt hash of a new password; 400 VALIDATION_FAILED when the policy refuses it. */
  async hash(plain: string, field = 'password'): Promise<string> {
    assertAcceptablePassword(plain, this.options.minLength, field)
    return this.pool.run<string>('hash', [plain, this.options.cost])
  }

  /** True when `plain` matches `hash`. A password over 72 bytes never matches (bcrypt would truncate it). */
  async verify(plain: string, hash: string): Promise<boolean> {
    const matches = await this.pool.run<boolean>('compare', [plain, hash])
    return matches && Buffer.byteLength(plain, 'utf8') <= MAX_PASSWORD_BYTES
  }

  /**
   * Spends the time of a real comparison against a hash of the same cost and answers false: used
   * for unknown and inactive users, so that they cannot be told from a wrong password by timing.
   */
  async verifyDummy(plain: string): Promise<false> {
    await this.pool.run<boolean>('compare', [plain, await this.dummyHash()])
    return false
  }

  /** Computes the dummy hash ahead of the first login that needs it. */
  warmUp(): void {
    this.dummyHash().catch(() => {})
  }

  /** The id of the thread that computes (tests: proves hashing is off the main thread). */
  workerThreadId(): Promise<number> {
    return this.pool.run<number>('threadId', [])
  }

  close(): Promise<void> {
    return this.pool.close()
  }

  private dummyHash(): Promise<string> {
    this.dummy ??= this.pool.run<string>('hash', [randomBytes(18).toString('base64url'), this.options.cost])
    return this.dummy
  }
}

let shared: PasswordHasher | undefined

/**
 * For scripts without an app (the seed): hashes with a process-wide pool whose threads never keep
 * the process alive. In the app use `app.passwords.hash(plain)`, configured from the environment.
 */
export function hashPassword(plain: string, options: Partial<PasswordHasherOptions> = {}): Promise<string> {
  return sharedHasher(options).hash(plain)
}

/** See hashPassword. */
export function verifyPassword(plain: string, hash: string): Promise<boolean> {
  return sharedHasher({}).verify(plain, hash)
}

function sharedHasher({ cost = 12, workers = 2, minLength = 15 }: Partial<PasswordHasherOptions>): PasswordHasher {
  if (!shared || shared.options.cost !== cost || shared.options.minLength !== minLength) shared = new PasswordHasher({ cost, workers, minLength })
  return shared
}
