// An open-loop load generator: requests leave on a fixed schedule (one every 1000 / rate ms), whether
// or not earlier answers have come back, and each latency is counted from the request's scheduled
// time, so a slow server cannot slow the client down and hide its own slowness (Gil Tene's
// "coordinated omission"; wrk2 and HdrHistogram work this way).
//
// Why our own and not autocannon's `overallRate`: autocannon 8 gives each connection a per-second
// budget and sends it back to back at the start of every second (lib/httpClient.js,
// `reqsMadeThisSecond`), so "500 req/s" arrives as a burst of 500 then silence. That measures a
// saturated server for part of each second, not a server at 50 % load, and lines up the bursts of
// two generators (the fairness run). wrk2, which schedules properly, is not in Debian's archive.
import http from 'node:http'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import * as hdr from 'hdr-histogram-js'

/** What a run produced: the fields of autocannon's Result the bench reads, in the same units. */
export interface LoadResult {
  /** Seconds the run lasted (schedule length). */
  duration: number
  '1xx': number
  '2xx': number
  '3xx': number
  '4xx': number
  '5xx': number
  non2xx: number
  /** Requests that failed without an answer (connection errors). */
  errors: number
  /** Requests without an answer after the timeout. */
  timeouts: number
  statusCodeStats?: Record<string, { count: number }>
  /** Milliseconds from each request's scheduled time to its last byte. */
  latency: { p50: number; p99: number; p99_9?: number; mean: number; max: number }
  /** The generator's own event-loop delay (ms): a stall here delays sends and counts as latency. */
  generatorLag?: { p99: number; max: number }
}

export interface OpenLoopOptions {
  port: number
  method: string
  path: string
  /** Called once per request. */
  headers: () => Record<string, string>
  body?: string
  /** Requests per second over the whole run. */
  rate: number
  /** Length of the schedule, s. */
  seconds: number
  /** Most sockets kept open; more requests in flight wait for one (and that wait counts). */
  maxConnections: number
  /** Per-request timeout, ms. */
  timeoutMs?: number
  /** Called as each request settles, with its scheduled time (performance.now(), ms) and latency (ms). */
  onSettled?: (scheduledAt: number, latencyMs: number) => void
}

/**
 * Sends `rate` × `seconds` requests, one every 1000 / rate ms, and resolves once every request has
 * been answered, failed or timed out. Failures are counted in the result (and their time in the
 * latency); throws only for a rate or duration that is not positive.
 */
export async function openLoop (options: OpenLoopOptions): Promise<LoadResult> {
  if (!(options.rate > 0) || !(options.seconds > 0)) throw new Error(`openLoop: rate and seconds must be positive (got ${options.rate}, ${options.seconds})`)
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.maxConnections })
  const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 }) // µs
  const statusCodeStats: Record<string, { count: number }> = {}
  const result: LoadResult & { statusCodeStats: typeof statusCodeStats } = {
    duration: options.seconds,
    '1xx': 0,
    '2xx': 0,
    '3xx': 0,
    '4xx': 0,
    '5xx': 0,
    non2xx: 0,
    errors: 0,
    timeouts: 0,
    statusCodeStats,
    latency: { p50: NaN, p99: NaN, p99_9: NaN, mean: NaN, max: NaN },
  }
  const total = Math.max(1, Math.round(options.rate * options.seconds))
  const intervalMs = 1000 / options.rate
  const timeoutMs = options.timeoutMs ?? 10_000
  let sent = 0
  let settled = 0
  let done: () => void = () => {}
  const finished = new Promise<void>((resolve) => { done = resolve })

  const send = (scheduledAt: number) => {
    const headers: Record<string, string> = { ...options.headers() }
    if (options.body !== undefined) {
      headers['content-type'] = 'application/json'
      headers['content-length'] = String(Buffer.byteLength(options.body))
    }
    const settle = (status?: number) => {
      // Every request's time counts, failed ones too (a timeout as its full wait): leaving them out
      // would flatter the tail exactly when the server is overloaded.
      const latencyMs = performance.now() - scheduledAt
      histogram.recordValue(Math.max(1, Math.round(latencyMs * 1000)))
      options.onSettled?.(scheduledAt, latencyMs)
      if (status !== undefined) {
        const klass = `${Math.floor(status / 100)}xx` as '1xx'
        result[klass] = (result[klass] ?? 0) + 1
        if (status < 200 || status >= 300) result.non2xx++
        const stat = (result.statusCodeStats[String(status)] ??= { count: 0 })
        stat.count++
      }
      if (++settled === total) done()
    }
    const req = http.request({ host: '127.0.0.1', port: options.port, method: options.method, path: options.path, headers, agent })
    let answered = false
    req.setTimeout(timeoutMs, () => {
      if (answered) return
      answered = true
      result.timeouts++
      req.destroy()
      settle()
    })
    req.on('response', (res) => {
      res.resume()
      res.on('end', () => {
        if (answered) return
        answered = true
        settle(res.statusCode ?? 0)
      })
      // A connection cut mid-answer: an error, not a crash of the generator or a request never settled.
      const cut = () => {
        if (answered) return
        answered = true
        result.errors++
        settle()
      }
      res.on('error', cut)
      res.on('close', () => { if (!res.complete) cut() })
    })
    req.on('error', () => {
      if (answered) return
      answered = true
      result.errors++
      settle()
    })
    req.end(options.body)
  }

  const lag = monitorEventLoopDelay({ resolution: 5 })
  lag.enable()
  const start = performance.now()
  // A 1 ms tick sends every request whose time has come; between ticks the schedule is kept by
  // each request's own scheduled time (its latency starts then, not when the tick ran).
  const tick = () => {
    const now = performance.now()
    while (sent < total && start + sent * intervalMs <= now) send(start + sent++ * intervalMs)
    if (sent < total) setTimeout(tick, Math.max(0, Math.min(1, start + sent * intervalMs - performance.now())))
  }
  tick()
  await finished
  lag.disable()
  agent.destroy()
  result.generatorLag = { p99: lag.percentile(99) / 1e6, max: lag.max / 1e6 }
  const ms = (us: number) => Math.round(us / 10) / 100 // µs → ms with 2 decimals
  if (histogram.totalCount > 0) {
    result.latency = {
      p50: ms(histogram.getValueAtPercentile(50)),
      p99: ms(histogram.getValueAtPercentile(99)),
      p99_9: ms(histogram.getValueAtPercentile(99.9)),
      mean: ms(histogram.mean),
      max: ms(histogram.maxValue),
    }
  }
  histogram.destroy()
  return result
}
