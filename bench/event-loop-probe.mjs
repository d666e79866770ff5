// An event-loop and GC probe for a benchmark's server (bench/HISTORY.md, round fifteen): is a slow
// answer a pause of the server's own, or time spent waiting outside it? Loaded before the server's
// code, e.g. into every server a run starts:
//   BENCH_NODE_ARGS="--import=./bench/event-loop-probe.mjs" BENCH_ONLY=list-rls-on,list-open-loop npm run bench
// and writes to stderr, which the run keeps in bench/results/logs/<server>.log:
//   event-loop-probe late <ms> at <epoch ms>       a 10 ms timer fired more than 15 ms late
//   event-loop-probe gc <kind> <ms> at <epoch ms>  a garbage collection over 4 ms (kind: Node's
//                                                  perf_hooks constants, 1 scavenge, 4 incremental marking, 8 weak callbacks, 2 mark-compact)
//   event-loop-probe tick at <epoch ms>            once a second, to tell a run's scenarios apart
// Plain JavaScript: the API runs compiled (`node dist/src/server.js`), without a TypeScript loader.
// Its timers are unref'd: they never keep a server from exiting.
import { PerformanceObserver, performance } from 'node:perf_hooks'

const TIMER_MS = 10
const LATE_MS = 15
const GC_MS = 4

let expected = performance.now() + TIMER_MS
setInterval(() => {
  const now = performance.now()
  const late = now - expected
  if (late > LATE_MS) process.stderr.write(`event-loop-probe late ${late.toFixed(1)} at ${Date.now()}\n`)
  expected = now + TIMER_MS
}, TIMER_MS).unref()

setInterval(() => process.stderr.write(`event-loop-probe tick at ${Date.now()}\n`), 1000).unref()

new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    if (entry.duration > GC_MS) process.stderr.write(`event-loop-probe gc ${entry.detail?.kind} ${entry.duration.toFixed(1)} at ${Date.now()}\n`)
  }
}).observe({ entryTypes: ['gc'] })
