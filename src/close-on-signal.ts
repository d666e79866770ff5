// close-with-grace, with the one stop that arrives twice counted once. `npm start` (and every npm
// script) forwards the SIGINT or SIGTERM it receives to its child, and a terminal's Ctrl-C, `kill
// -- -<pgid>` or systemd's default KillMode=control-group also send it to that child directly: the
// process gets the same signal twice within milliseconds. close-with-grace takes any second signal
// for "force it" and exits at once, so such a stop cut in-flight requests and left the embedded
// PostgreSQL running. Only the signals a stop is asked with are handled here; the rest (and errors)
// stay close-with-grace's.
import closeWithGrace from 'close-with-grace'
import type { Logger } from 'pino'

/** Within this long after the first (ms), the same signal again is that stop delivered twice, not a second one. */
export const DUPLICATE_SIGNAL_MS = 1000

const STOP_SIGNALS = ['SIGINT', 'SIGTERM'] as const

/** What the close function is given: the stop's signal, or the fatal error (close-with-grace's shape). */
export interface CloseEvent {
  signal?: string
  err?: Error
}

/**
 * Runs `close` once, on the first SIGINT or SIGTERM (or on what else close-with-grace handles: the
 * other signals, an uncaught exception or unhandled rejection), then exits: 0 when `close` resolves,
 * 1 after an error or when `delayMs` (ms) passes first (said on `log` at level error). During the
 * close, the same signal again within DUPLICATE_SIGNAL_MS is ignored as a duplicate; any later
 * SIGINT or SIGTERM, or one during an error's close, forces exit 1 at once (a second Ctrl-C), as
 * close-with-grace does. Installed for the life of the process.
 */
export function closeOnSignal (options: { delayMs: number, log: Pick<Logger, 'error'> }, close: (event: CloseEvent) => Promise<void>): void {
  let first: { signal: string, at: number } | undefined
  let closing = false // by a signal, or by close-with-grace for an error
  const logger = { error: (message: unknown) => options.log.error(message) }
  const closer = closeWithGrace({ delay: options.delayMs, logger, skip: [...STOP_SIGNALS] }, (event: CloseEvent & { manual?: boolean }) => {
    closing = true
    return close(event.manual ? { signal: first?.signal } : event)
  })
  for (const signal of STOP_SIGNALS) {
    process.on(signal, () => {
      if (first && signal === first.signal && Date.now() - first.at <= DUPLICATE_SIGNAL_MS) return // the same stop, twice
      if (closing) process.exit(1) // a second stop, or a stop during an error's close: forced
      first = { signal, at: Date.now() }
      void closer.close()
    })
  }
}
