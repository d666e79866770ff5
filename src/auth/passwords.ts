// Password policy and hashing. bcryptjs's async API still computes on the main thread (in slices),
// so under a burst of logins every other request would wait: hashing and comparing run in worker
// threads (piscina), at the lowest OS priority (bcrypt-worker.cjs). BCRYPT_WORKERS=0 keeps them on
// the main thread, only to measure the difference (npm run bench).
import { randomBytes } from 'node:crypto'
import { threadId } from 'node:worker_threads'
import bcrypt from 'bcryptjs'
import { Piscina } from 'piscina'
import { AppError } from '../errors.ts'

/** bcrypt reads at most 72 bytes; longer passwords are refused, never silently truncated. */
export const MAX_PASSWORD_BYTES = 72

/**
 * A password as it is hashed and compared: Unicode NFKC (NIST SP 800-63B-4 §3.1.1.2, with RFC 8265
 * §4.1's normalization), so that a character typed as one code point or as a letter and a combining
 * mark (keyboards and platforms differ) is the same password.
 */
const normalizePassword = (plain: string): string => plain.normalize('NFKC')

const fitsBcrypt = (text: string): boolean => Buffer.byteLength(text, 'utf8') <= MAX_PASSWORD_BYTES

/**
 * The forms of an offered password that a stored hash may hold, in the order they are compared:
 * the normalized form, then, when it differs, the form as typed (hashes made before 2026-12-04
 * hold that); each only when it fits bcrypt's 72 bytes.
 */
function comparedForms (plain: string): string[] {
  const normalized = normalizePassword(plain)
  return [normalized, ...(normalized === plain ? [] : [plain])].filter(fitsBcrypt)
}

/**
 * Throws 400 VALIDATION_FAILED naming `field` (login's `password`, `currentPassword`) when a
 * password offered for verification is over 72 bytes of UTF-8 in every form a hash may hold
 * (comparedForms): such a password is refused, never compared.
 */
export function assertOfferedPasswordFits (plain: string, field: string): void {
  if (comparedForms(plain).length === 0) throw new AppError('VALIDATION_FAILED', `body/${field} must be at most ${MAX_PASSWORD_BYTES} bytes of UTF-8`)
}

/**
 * A new password as it is hashed (normalized, normalizePassword), after the policy, counted on that
 * form: at least `minLength` Unicode characters and at most 72 bytes of UTF-8. Throws 400
 * VALIDATION_FAILED naming `field` when the policy refuses it.
 */
function acceptablePassword (plain: string, minLength: number, field: string): string {
  const normalized = normalizePassword(plain)
  const problem = [...normalized].length < minLength
    ? `must be at least ${minLength} characters`
    : !fitsBcrypt(normalized) ? `must be at most ${MAX_PASSWORD_BYTES} bytes of UTF-8` : null
  if (problem) throw new AppError('VALIDATION_FAILED', `body/${field} ${problem}`)
  return normalized
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
        filename: new URL('./bcrypt-worker.cjs', import.meta.url).href,
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
    acceptablePassword(plain, this.options.minLength, field)
  }

  /** The bcrypt hash of a new password, normalized (normalizePassword); 400 VALIDATION_FAILED when the policy refuses it. */
  async hash (plain: string, field = 'password'): Promise<string> {
    const normalized = acceptablePassword(plain, this.options.minLength, field)
    return this.run<string>({ op: 'hash', args: [normalized, this.options.cost] })
  }

  /**
   * True when `plain` matches `hash`, normalized or, for a hash made before normalization, as typed
   * (comparedForms: one bcrypt comparison each until one matches). A form over 72 bytes is never
   * compared (bcrypt would truncate it).
   */
  async verify (plain: string, hash: string): Promise<boolean> {
    for (const form of comparedForms(plain)) {
      if (await this.run<boolean>({ op: 'compare', args: [form, hash] })) return true
    }
    return false
  }

  /**
   * Spends the time of the comparisons a wrong password would cost (one per compared form) against a
   * hash of the same cost and answers false: used for unknown and inactive users, so that they cannot
   * be told from a wrong password by timing.
   */
  async verifyDummy (plain: string): Promise<false> {
    const dummy = await this.dummyHash()
    for (const form of comparedForms(plain)) await this.run<boolean>({ op: 'compare', args: [form, dummy] })
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
