// Minimal typings for the parts of autocannon's programmatic API the benchmark uses (no @types).
declare module 'autocannon' {
  export interface RequestParams {
    method?: string
    path?: string
    headers?: Record<string, string>
    body?: string | Buffer
    setupRequest?: (req: RequestParams, context: Record<string, unknown>) => RequestParams | undefined
  }
  export interface Options {
    url: string
    connections?: number
    /** Requests per second over all connections (autocannon option). */
    overallRate?: number
    duration?: number
    amount?: number
    pipelining?: number
    timeout?: number
    method?: string
    headers?: Record<string, string>
    body?: string
    requests?: RequestParams[]
  }
  export interface Histogram {
    average: number
    mean: number
    stddev: number
    min: number
    max: number
    p50: number
    p90: number
    p97_5: number
    p99: number
    /** 99.9th percentile (autocannon reports it for latency). */
    p99_9?: number
    total?: number
  }
  export interface Result {
    latency: Histogram
    requests: Histogram
    throughput: Histogram
    errors: number
    timeouts: number
    non2xx: number
    duration: number
    start: Date
    finish: Date
    '1xx': number
    '2xx': number
    '3xx': number
    '4xx': number
    '5xx': number
    statusCodeStats?: Record<string, { count: number }>
  }
  interface Instance extends PromiseLike<Result> {
    stop(): void
    /** Every answer: status, bytes, latency (ms). */
    on(event: 'response', listener: (client: unknown, statusCode: number, resBytes: number, responseTime: number) => void): this
    on(event: 'reqError', listener: (error: Error) => void): this
  }
  function autocannon (options: Options): Instance & Promise<Result>
  export default autocannon
}
