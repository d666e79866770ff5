// Password policy and hashing. bcryptjs's async API still computes on the main thread (in slices),
// so under a burst of logins every other request would wait: hashing and comparing run in worker
// threads (piscina), at the lowest OS priority (bcrypt-worker.mjs). BCRYPT_WORKERS=0 keeps them on
// the main thread, only to measure the difference (npm run bench).
import { randomBytes } from 'node:crypto'
import { threadId } from 'node:worker_threads'
import bcrypt from 'bcryptjs'
import { Piscina } from 'piscina'
import { AppError } from '../errors.ts'

/** bcrypt reads at most 72 bytes; longer passwords are refused, never silently truncated. */
export const MAX_PASSWORD_BYTES = 72

/** Why `plain` is not acceptable as a new password, or null. Length counts Unicode characters. */
export function passwordProblem (plain: string, minLength: number): string | null {
  if ([...plain].length < minLength) return `must be at least ${minLength} characters`
  if (Buffer.byteLength(plain, 'utf8') > MAX_PASSWORD_BYTES) return `must be at most ${MAX_PASSWORD_BYTES} bytes of UTF-8`
  return null
}

/** Throws 400 VALIDATION_FAILED naming `field` when `plain` breaks the policy. */
export function assertAcceptablePassword (plain: string, minLength: number, field = 'password'): void {
  const problem = passwordProblem(plain, minLength)
  if (problem) throw new AppError('VALIDATION_FAILED', `body/${field} ${problem}`)
}

export interface PasswordHasherOptions {
  /** bcrypt cost (config.BCRYPT_COST). */
  cost: number
  /** Worker threads (config.BCRYPT_WORKERS); 0 = on the main thread (for comparison only). */
  workers: number
  /** Policy for new passwords (config.PASSWORD_MIN_LENGTH). */
  minLength: number
}

type Operation = { op: 'hash'; args: [string, number] } | { op: 'compare'; args: [string, string] } | { op: 'threadId'; args: [] }

/** bcrypt comparisons started so far, by the cost of the hash compared against (e.g. `{ 12: 3 }`). */
export type ComparisonCounts = Record<number, number>

export class PasswordHasher {
  private readonly pool?: Piscina
  private dummy?: Promise<string>
  /**
   * bcrypt comparisons started, by the cost of the hash they compare against. Read by tests to
   * prove equal work: a wrong password, an unknown email and an inactive user each cost one
   * comparison at BCRYPT_COST (the contract's "same timing", counted rather than timed).
   */
  readonly comparisons: ComparisonCounts = {}

  constructor (readonly options: PasswordHasherOptions) {
    if (options.workers > 0) {
      // Idle threads exit after a while, so a quiet process (or a script) holds none.
      this.pool = new Piscina({
        filename: new URL('./bcrypt-worker.mjs', import.meta.url).href,
        minThreads: 0,
        maxThreads: options.workers,
        idleTimeout: 30_000,
        // The worker is plain JavaScript: it needs none of the parent's loaders (tsx, test hooks),
        // and bcrypt needs little memory, so small heaps keep each thread light.
        execArgv: [],
        resourceLimits: { maxOldGenerationSizeMb: 32, maxYoungGenerationSizeMb: 8 },
      })
    }
  }

  private run<T>(operation: Operation): Promise<T> {
    if (operation.op === 'compare') {
      const cost = Number(/^\$2[aby]?\$(\d{2})\$/.exec(operation.args[1])?.[1] ?? 0)
      this.comparisons[cost] = (this.comparisons[cost] ?? 0) + 1
    }
    if (this.pool) return this.pool.run(operation) as Promise<T>
    const { op, args } = operation
    return (op === 'hash' ? bcrypt.hash(...args) : op === 'compare' ? bcrypt.compare(...args) : Promise.resolve(threadId)) as Promise<T>
  }

  /** Throws 400 VALIDATION_FAILED (naming `field`) when the policy refuses `plain` as a new password; hash() checks it too. */
  assertAcceptable (plain: string, field = 'password'): void {
    assertAcceptablePassword(plain, this.options.minLength, field)
  }

  /** The bcrypt hash of a new password; 400 VALIDATION_FAILED when the policy refuses it. */
  async hash (plain: string, field = 'password'): Promise<string> {
    this.assertAcceptable(plain, field)
    return this.run<string>({ op: 'hash', args: [plain, this.options.cost] })
  }

  /** True when `plain` matches `hash`. A password over 72 bytes never matches (bcrypt would truncate it). */
  async verify (plain: string, hash: string): Promise<boolean> {
    const matches = await this.run<boolean>({ op: 'compare', args: [plain, hash] })
    return matches && Buffer.byteLength(plain, 'utf8') <= MAX_PASSWORD_BYTES
  }

  /**
   * Spends the time of a real comparison against a hash of the same cost and answers false: used
   * for unknown and inactive users, so that they cannot be told from a wrong password by timing.
   */
  async verifyDummy (plain: string): Promise<false> {
    await this.run<boolean>({ op: 'compare', args: [plain, await this.dummyHash()] })
    return false
  }

  /** Computes the dummy hash ahead of the first login that needs it. */
  warmUp (): void {
    this.dummyHash().catch(() => {})
  }

  /** The id of the thread that computes (tests: proves hashing is off the main thread). */
  workerThreadId (): Promise<number> {
    return this.run<number>({ op: 'threadId', args: [] })
  }

  async close (): Promise<void> {
    await this.pool?.destroy()
  }

  private dummyHash (): Promise<string> {
    this.dummy ??= this.run<string>({ op: 'hash', args: [randomBytes(18).toString('base64url'), this.options.cost] })
    return this.dummy
  }
}
