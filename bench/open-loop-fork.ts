// Runs bench/open-loop.ts in a child process, so that a flood's sending and answering do not share
// an event loop with the generator measuring another client's latency (the fairness run): in
// production the flooding tenant's clients are other machines, and a generator stalled by the
// flood's answers counts its own delay as the server's. (A worker thread would do, but on Node 20 a
// worker does not load TypeScript through tsx's --import hook.)
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { openLoop, type LoadResult, type OpenLoopOptions } from './open-loop.ts'

/** openLoop's options with fixed headers (a function cannot cross to the other process). */
export type ForkedLoadOptions = Omit<OpenLoopOptions, 'headers'> & { headers: Record<string, string> }

/** A generator process, loaded and waiting: `start()` begins its schedule and resolves with its result. */
export interface ForkedLoad {
  start (): Promise<LoadResult>
  /** Ends the process if it is still there (a run that failed before or during start()). */
  stop (): void
}

/**
 * Forks a process running openLoop(options) and resolves once it is loaded (about 0.3 s of tsx),
 * so that its schedule starts when the caller's does. `start()` rejects if the child fails or
 * closes without a result.
 */
export function forkOpenLoop (options: ForkedLoadOptions): Promise<ForkedLoad> {
  const child = fork(fileURLToPath(import.meta.url), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  // 'close' comes after the IPC channel has closed, so after the result's message if there was one.
  const closed = new Promise<LoadResult>((resolve, reject) => {
    let result: LoadResult | undefined
    child.on('message', (message) => { if (message !== 'ready') result = message as LoadResult })
    child.once('error', reject)
    child.once('close', (code) => (result ? resolve(result) : reject(new Error(`open-loop process closed (${code}) without a result`))))
  })
  return new Promise((resolve, reject) => {
    child.once('message', () => resolve({ start: () => { child.send(options); return closed }, stop: () => { child.kill() } }))
    closed.catch(reject)
  })
}

if (process.send && process.argv[1] === fileURLToPath(import.meta.url)) {
  process.once('message', (message) => {
    const { headers, ...options } = message as ForkedLoadOptions
    void openLoop({ ...options, headers: () => headers }).then((result) => process.send!(result, () => process.disconnect()))
  })
  process.send('ready')
}
