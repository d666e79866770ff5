// At most a few long tasks at once in this process, and one per key: for work that holds a pooled
// database connection for as long as it runs (the audit chain's walk, one transaction of up to
// minutes), so that one tenant's owner cannot take every connection of an instance and starve the
// other tenants. Our own few lines: the queueing limiters of the ecosystem (p-limit, @fastify/
// under-pressure) make callers wait or watch the event loop, where a busy walk should be refused
// at once with a Retry-After.
import { AppError } from '../errors.ts'

export class RunningSlots {
  private readonly running = new Set<string>()

  /** `max`: tasks at once in this process (≥ 1); `busy`: the refusal's message; `retryAfterS`: its Retry-After (s). */
  constructor (private readonly max: number, private readonly busy: string, private readonly retryAfterS = 5) {}

  /**
   * Runs `task` in a slot of `key` (e.g. the tenant's id) and returns what it returns. Throws 429
   * RATE_LIMITED with Retry-After when `key` already runs one, or when `max` are running.
   */
  async run<T> (key: string, task: () => Promise<T>): Promise<T> {
    if (this.running.has(key) || this.running.size >= this.max) {
      throw new AppError('RATE_LIMITED', this.busy, { 'retry-after': String(this.retryAfterS) })
    }
    this.running.add(key)
    try {
      return await task()
    } finally {
      this.running.delete(key)
    }
  }
}
