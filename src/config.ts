// Configuration comes from the environment only, validated once at boot: a wrong value stops the
// server with a message naming the variable, instead of surfacing later as a strange failure.
import path from 'node:path'
import Type, { type Static } from 'typebox'
import Value from 'typebox/value'
import { parseTrustProxy, type TrustProxySetting } from './net/trusted-proxies.ts'

export const ConfigSchema = Type.Object({
  NODE_ENV: Type.Union([Type.Literal('development'), Type.Literal('test'), Type.Literal('production')], { default: 'development' }),
  HOST: Type.String({ default: 'localhost', description: 'address to listen on (0.0.0.0 in a container)' }),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3000 }),
  LOG_LEVEL: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)), { default: 'info' }),
  BASE_DOMAIN: Type.String({ minLength: 1, default: 'localhost' }),
  TRUST_PROXY: Type.String({ default: 'false', description: 'false, a hop count, or the proxies\' addresses/CIDRs (comma-separated); true is refused' }),
  BODY_LIMIT: Type.Integer({ minimum: 1024, default: 1024 * 1024 }),
  CORS_ORIGINS: Type.String({ default: '', description: 'comma-separated allowed origins; empty = CORS off' }),

  DATABASE_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://' })),
  APP_DATABASE_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://' })),
  DATA_DIR: Type.String({ default: '.data' }),
  EMBEDDED_PG_PORT: Type.Integer({ minimum: 1, maximum: 65535, default: 54329 }),
  MIGRATE_ON_START: Type.Optional(Type.Boolean()),
  MIGRATE_OUT_OF_ORDER: Type.Boolean({ default: false, description: 'apply a pending migration whose folder sorts before one the database has applied (refused by default)' }),
  RLS: Type.Union([Type.Literal('on'), Type.Literal('off')], { default: 'on', description: 'off: the Prisma extension alone keeps tenants apart (benchmark comparison only)' }),
  DB_POOL_MAX: Type.Integer({ minimum: 1, maximum: 1000, default: 20 }),
  AUDIT_VERIFY_CONCURRENCY: Type.Integer({ minimum: 1, default: 2, description: 'audit chain verifications running at once per instance (one per tenant); each holds a pooled connection while it walks' }),
  DB_PREPARED_STATEMENTS: Type.Union([Type.Literal('auto'), Type.Literal('on'), Type.Literal('off')], {
    default: 'auto',
    description: 'named prepared statements (parsed and planned once per connection): auto = on only when the API\'s login leads straight to PostgreSQL (a transaction pooler such as PgBouncer before 1.21 loses them between transactions); on for PgBouncer >= 1.21 with max_prepared_statements > 0',
  }),
  TENANT_CACHE_TTL_MS: Type.Integer({ minimum: 0, maximum: 5000, default: 4000 }),
  // While the change feed is read (src/cluster/change-feed.ts: a change anywhere holds here within
  // 1 s), tenant, session and API-key entries may be served this long instead of their own TTL
  // (TENANT_CACHE_TTL_MS, REVOCATION_CACHE_TTL_MS, API_KEY_CACHE_TTL_MS), which applies again at once
  // when the feed cannot be read. 0: no feed. README "Caches".
  CHANGE_FEED_CACHE_TTL_MS: Type.Integer({ minimum: 0, maximum: 300_000, default: 30_000 }),

  // Bounded waits on the database (ms). See README "Operate".
  DB_ACQUIRE_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 60_000, default: 5000, description: 'wait for a pooled connection (opening one included)' }),
  DB_CONNECT_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 60_000, default: 5000, description: 'open one connection: TCP, TLS, authentication' }),
  DB_STATEMENT_TIMEOUT_MS: Type.Integer({ minimum: 0, maximum: 600_000, default: 5000, description: 'server-side statement_timeout, set per transaction; 0 = none' }),
  DB_QUERY_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 600_000, default: 6000, description: 'client-side bound of one statement: the connection is destroyed after it' }),
  DB_KEEPALIVE_DELAY_MS: Type.Integer({ minimum: 1000, maximum: 600_000, default: 10_000, description: 'TCP keep-alive idle time on database sockets' }),
  READY_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 30_000, default: 1000, description: '/readyz: connect + SELECT 1 on its own connection' }),

  // HTTP server bounds (ms). See README "Operate".
  HTTP_REQUEST_TIMEOUT_MS: Type.Integer({ minimum: 1000, maximum: 600_000, default: 30_000, description: 'whole request (headers + body) must arrive within this' }),
  HTTP_HEADERS_TIMEOUT_MS: Type.Integer({ minimum: 1000, maximum: 600_000, default: 10_000, description: 'headers must arrive within this (≤ HTTP_REQUEST_TIMEOUT_MS)' }),
  HTTP_CONNECTION_TIMEOUT_MS: Type.Integer({ minimum: 0, maximum: 3_600_000, default: 120_000, description: 'idle socket timeout; 0 = none' }),
  HTTP_KEEP_ALIVE_TIMEOUT_MS: Type.Integer({ minimum: 1000, maximum: 600_000, default: 72_000, description: 'keep-alive socket idle time (above a load balancer\'s own)' }),
  SHUTDOWN_GRACE_MS: Type.Integer({ minimum: 0, maximum: 600_000, default: 10_000, description: 'SIGTERM: time for in-flight requests before connections are cut' }),

  SIGNUP_ENABLED: Type.Boolean({ default: true }),
  PLATFORM_ADMIN_TOKEN: Type.Optional(Type.String({ minLength: 32 })),

  JWT_ISSUER: Type.String({ default: 'tenant-api' }),
  JWT_AUDIENCE: Type.String({ default: 'tenant-api' }),
  JWT_PRIVATE_KEYS: Type.Optional(Type.String({ description: 'PEM private keys (EdDSA or ES256), newest last' })),
  ACCESS_TOKEN_TTL_S: Type.Integer({ minimum: 30, maximum: 86400, default: 900 }),
  SESSION_MAX_AGE_S: Type.Integer({ minimum: 300, default: 30 * 86400 }),
  CSRF_SECRET: Type.Optional(Type.String({ minLength: 32 })),
  REVOCATION_CACHE_TTL_MS: Type.Integer({ minimum: 0, maximum: 5000, default: 4000 }),

  PASSWORD_MIN_LENGTH: Type.Integer({ minimum: 8, maximum: 64, default: 15 }),
  BCRYPT_COST: Type.Integer({ minimum: 4, maximum: 15, default: 12 }),
  BCRYPT_WORKERS: Type.Integer({ minimum: 0, maximum: 64, default: 2, description: '0 = hash on the main thread (benchmark comparison only)' }),
  LOGIN_FAILURES_MAX: Type.Integer({ minimum: 1, default: 5 }),
  LOGIN_FAILURES_WINDOW_S: Type.Integer({ minimum: 1, default: 900 }),
  LOGIN_ATTEMPTS_PER_IP_PER_MIN: Type.Integer({ minimum: 1, default: 100 }),
  LOGIN_DEVICE_COOKIE_TTL_S: Type.Integer({ minimum: 60, default: 180 * 86400, description: 'lifetime (seconds, checked by the server) of the device cookie a login, an accepted invitation, a completed reset or a password change sets: that browser\'s password checks have a failure budget of their own, untouched by the email\'s lockout' }),
  SIGNUP_PER_IP_MAX: Type.Integer({ minimum: 1, default: 10, description: 'signups (POST /v1/tenants) per client address per window' }),
  SIGNUP_PER_IP_WINDOW_S: Type.Integer({ minimum: 1, default: 3600 }),

  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://', description: 'shared store of every limit (and the invalidation channel); unset = per-instance memory' })),
  REDIS_KEY_PREFIX: Type.String({ default: 'tenant-api:', description: 'prefix of every Redis key and channel of this deployment' }),

  TLS_CERT_FILE: Type.Optional(Type.String({ minLength: 1, description: 'PEM certificate chain: serve HTTPS directly' })),
  TLS_KEY_FILE: Type.Optional(Type.String({ minLength: 1, description: 'PEM private key of TLS_CERT_FILE' })),

  API_KEY_SECRET: Type.Optional(Type.String({ minLength: 32, description: 'HMAC key of the stored API-key hashes' })),
  // A revoked key is dropped on every instance at once through the invalidation channel, and within
  // 1 s through the change feed; this TTL is the bound while neither has told an instance (the feed
  // unreadable as well): the default 1 s keeps the contract's "within 1 second" for keys even then.
  API_KEY_CACHE_TTL_MS: Type.Integer({ minimum: 0, maximum: 5000, default: 1000 }),
  RATE_LIMIT_WINDOW_S: Type.Integer({ minimum: 1, maximum: 3600, default: 60 }),
  TENANT_RATE_LIMIT: Type.Integer({ minimum: 1, default: 6000, description: 'requests per tenant host per RATE_LIMIT_WINDOW_S' }),
  API_KEY_RATE_LIMIT: Type.Integer({ minimum: 1, default: 1200, description: 'requests per API key per RATE_LIMIT_WINDOW_S' }),
  ANONYMOUS_RATE_LIMIT: Type.Integer({ minimum: 1, default: 600, description: 'requests without a valid credential per client address per tenant host per RATE_LIMIT_WINDOW_S (never counted against the tenant)' }),

  AUDIT: Type.Union([Type.Literal('on'), Type.Literal('off')], { default: 'on', description: 'off: no audit events (benchmark comparison only)' }),
  ALLOW_BENCHMARK_SWITCHES: Type.Boolean({ default: false, description: 'true lets NODE_ENV=production run with RLS=off or AUDIT=off: the benchmark\'s servers only, never a deployment' }),
  AUDIT_RETENTION_DAYS: Type.Integer({ minimum: 0, maximum: 36_500, default: 0, description: 'audit events older than this are pruned; 0 = kept forever; at most 36500 (100 years: a cutoff before year 1 failed every run)' }),
  AUDIT_PRUNE_INTERVAL_S: Type.Integer({ minimum: 1, maximum: 86400, default: 3600, description: 'how often retention runs, seconds' }),

  // Email, invitations, password reset, background jobs (README "People: invitations, password reset, email, jobs").
  SMTP_URL: Type.Optional(Type.String({ pattern: '^smtps?://', description: 'SMTP server of outgoing email (smtps://user:pass@host:465 or smtp://…:587 with STARTTLS); required in production unless invitations and reset are off; unset in development: emails go to the log and DATA_DIR/outbox' })),
  MAIL_FROM: Type.Optional(Type.String({ minLength: 3, description: 'From address of emails, e.g. "Acme <no-reply@example.com>"; required in production with SMTP_URL; default no-reply@BASE_DOMAIN elsewhere' })),
  INVITATIONS_ENABLED: Type.Boolean({ default: true, description: 'the /v1/invitations routes' }),
  PASSWORD_RESET_ENABLED: Type.Boolean({ default: true, description: 'the /v1/auth/password-reset routes' }),
  INVITATION_TTL_S: Type.Integer({ minimum: 60, default: 7 * 86400, description: 'how long an invitation link works (seconds)' }),
  PASSWORD_RESET_TTL_S: Type.Integer({ minimum: 60, default: 30 * 60, description: 'how long a password-reset link works (seconds)' }),
  PASSWORD_RESET_MAX: Type.Integer({ minimum: 1, default: 3, description: 'reset emails per tenant + email per PASSWORD_RESET_WINDOW_S; requests beyond are answered 202 and send nothing' }),
  PASSWORD_RESET_WINDOW_S: Type.Integer({ minimum: 1, default: 30 * 60, description: 'at most PASSWORD_RESET_TTL_S, so a spent budget always leaves a working link in the inbox' }),
  TENANT_MISSES_PER_IP_PER_MIN: Type.Integer({ minimum: 1, default: 600, description: '"no such tenant" answers per client address per minute (per instance) before its uncached tenant lookups are refused with 429' }),
  PASSWORD_RESET_PER_IP_PER_MIN: Type.Integer({ minimum: 1, default: 20, description: 'reset requests, confirmations and invitation accepts per client address per minute' }),
  INVITATIONS_PER_TENANT_MAX: Type.Integer({ minimum: 1, default: 100, description: 'invitations a tenant may send per INVITATIONS_WINDOW_S' }),
  INVITATIONS_WINDOW_S: Type.Integer({ minimum: 1, default: 3600 }),
  PUBLIC_URL_SCHEME: Type.Optional(Type.Union([Type.Literal('https'), Type.Literal('http')], { description: 'scheme of emailed links; default http in development, https otherwise (http is refused in production)' })),
  PUBLIC_PORT: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'port shown in emailed links (default: none; PORT in development)' })),
  JOBS_WORKER: Type.Boolean({ default: true, description: 'run background jobs in this process (false: the server only enqueues; run `npm run worker`)' }),
  JOB_POLL_INTERVAL_S: Type.Number({ minimum: 0.5, maximum: 60, default: 2, description: 'how often an idle worker looks for jobs (a job enqueued by this process is picked up at once)' }),
  JOB_RETRY_LIMIT: Type.Integer({ minimum: 0, maximum: 100, default: 8, description: 'retries of a failing job (exponential backoff) before it goes to the dead letters' }),
  JOB_RETRY_DELAY_S: Type.Integer({ minimum: 1, default: 5, description: 'first retry delay; doubles with each retry' }),
  JOB_EXPIRE_S: Type.Integer({ minimum: 5, default: 120, description: 'a job running longer is presumed lost and retried' }),
  JOB_SHUTDOWN_TIMEOUT_MS: Type.Integer({ minimum: 1000, default: 8000, description: 'SIGTERM: time for running jobs to finish before they are handed back' }),
})

export type RawConfig = Static<typeof ConfigSchema>
export type Config = RawConfig & {
  isProduction: boolean
  isDevelopment: boolean
  /** True when no DATABASE_URL is given and the server runs its own PostgreSQL. */
  embeddedDatabase: boolean
  migrateOnStart: boolean
  rlsEnabled: boolean
  dataDir: string
  corsOrigins: string[]
  /** TRUST_PROXY parsed: which X-Forwarded-* hops are believed (src/net/trusted-proxies.ts). */
  trustProxy: TrustProxySetting
  /** From address of emails (MAIL_FROM, or no-reply@BASE_DOMAIN). */
  mailFrom: string
  /** Scheme of links in emails: PUBLIC_URL_SCHEME, else http in development and https otherwise. */
  publicUrlScheme: 'http' | 'https'
}

export class ConfigError extends Error {
  override name = 'ConfigError'
}

/** Reads and validates the configuration; throws ConfigError listing every bad variable. */
export function loadConfig (env: Record<string, string | undefined> = process.env): Config {
  const known = Object.keys(ConfigSchema.properties)
  const input: Record<string, unknown> = {}
  for (const key of known) if (env[key] !== undefined && env[key] !== '') input[key] = env[key]
  const value = Value.Convert(ConfigSchema, Value.Default(ConfigSchema, input))
  const badKeys = new Set([...Value.Errors(ConfigSchema, value)].map((e) => e.instancePath.slice(1)))
  // Secrets and URLs (which may embed passwords) are named, never echoed.
  const shown = (key: string) => (/KEY|SECRET|TOKEN|URL/.test(key) ? '' : `=${JSON.stringify(env[key])}`)
  const problems = [...badKeys].map((key) => `${key}${shown(key)}: ${expectation(key)}`)
  for (const key of known.filter((name) => name.endsWith('_URL') && !badKeys.has(name))) {
    const problem = urlProblem(input[key])
    if (problem) problems.push(`${key}: ${problem}`)
  }
  if (problems.length) throw new ConfigError(`Invalid configuration:\n  ${problems.join('\n  ')}`)
  const raw = value as RawConfig
  let trustProxy: TrustProxySetting
  try {
    trustProxy = parseTrustProxy(raw.TRUST_PROXY)
  } catch (error) {
    throw new ConfigError(`Invalid configuration:\n  TRUST_PROXY=${JSON.stringify(raw.TRUST_PROXY)}: ${(error as Error).message}`)
  }
  const corsOrigins = raw.CORS_ORIGINS.split(',').map((o) => o.trim()).filter(Boolean)
  // Credentialed CORS needs the caller's own origin echoed back: browsers refuse `*` with credentials.
  if (corsOrigins.some((origin) => !/^https?:\/\/[^/\s*]+$/i.test(origin))) {
    throw new ConfigError('Invalid configuration:\n  CORS_ORIGINS: list the origins themselves (e.g. https://app.example.com, comma-separated; no *, no path): they are allowed with credentials')
  }
  if ((raw.TLS_CERT_FILE === undefined) !== (raw.TLS_KEY_FILE === undefined)) {
    throw new ConfigError('Invalid configuration:\n  TLS_CERT_FILE and TLS_KEY_FILE: set both (HTTPS) or neither (plain HTTP)')
  }
  const embeddedDatabase = raw.DATABASE_URL === undefined
  const config: Config = {
    ...raw,
    // Read as parseHost reads a Host header (case-insensitive, one trailing dot ignored).
    BASE_DOMAIN: raw.BASE_DOMAIN.toLowerCase().replace(/\.$/, ''),
    isProduction: raw.NODE_ENV === 'production',
    isDevelopment: raw.NODE_ENV === 'development',
    embeddedDatabase,
    migrateOnStart: raw.MIGRATE_ON_START ?? embeddedDatabase,
    rlsEnabled: raw.RLS === 'on',
    dataDir: path.resolve(raw.DATA_DIR),
    corsOrigins,
    trustProxy,
    mailFrom: raw.MAIL_FROM ?? `no-reply@${raw.BASE_DOMAIN}`,
    publicUrlScheme: raw.PUBLIC_URL_SCHEME ?? (raw.NODE_ENV === 'development' ? 'http' : 'https'),
  }
  if (config.isProduction) assertProductionReady(config)
  if (config.HTTP_HEADERS_TIMEOUT_MS > config.HTTP_REQUEST_TIMEOUT_MS) {
    throw new ConfigError('Invalid configuration:\n  HTTP_HEADERS_TIMEOUT_MS must not exceed HTTP_REQUEST_TIMEOUT_MS')
  }
  // A reset request beyond the email's budget sends nothing (routes/password-reset.ts); the last
  // email sent in the window must still work until the window ends, or anyone knowing the address
  // could leave its owner without a way back in (review 63).
  if (config.PASSWORD_RESET_ENABLED && config.PASSWORD_RESET_WINDOW_S > config.PASSWORD_RESET_TTL_S) {
    throw new ConfigError(`Invalid configuration:\n  PASSWORD_RESET_WINDOW_S (${config.PASSWORD_RESET_WINDOW_S}) must not exceed PASSWORD_RESET_TTL_S (${config.PASSWORD_RESET_TTL_S}): once an email's reset budget is spent, its last link must still work until the window ends`)
  }
  return config
}

/**
 * Why a `*_URL` value cannot be what its author meant, or null when it can (unset included). A
 * password with an unencoded `/`, `?` or `#` does not fail the scheme pattern: it either does not
 * parse or parses into another host (`postgresql://u:Super@Secret#Pw@db/app` is host `Secret`),
 * which would look like a database outage forever, a part of the password logged as the host it
 * cannot resolve. A fragment has no meaning in any of these URLs, so a `#` is always such a
 * mistake (WHATWG URL Standard; RFC 3986 §3.2.1 asks for the user information to be
 * percent-encoded). The value itself is never echoed: it may hold a password.
 */
function urlProblem (value: unknown): string | null {
  if (typeof value !== 'string') return null
  const fix = 'percent-encode a /, ?, # or @ in its user name or password (e.g. # as %23)'
  // Parsed as the database (src/db/schema-engine/pg-adapter-factory.ts), Redis and SMTP clients parse it.
  if (!URL.canParse(value)) return `not a valid URL: ${fix}`
  if (value.includes('#')) return `holds a # (a fragment, meaningless here): ${fix}`
  return null
}

function expectation (key: string): string {
  const schema = (ConfigSchema.properties as unknown as Record<string, Record<string, unknown>>)[key] ?? {}
  const choices = (schema.anyOf as { const?: unknown }[] | undefined)?.map((s) => s.const).filter((c) => c !== undefined)
  if (choices?.length) return `expected one of ${choices.join(', ')}`
  const limits = ['minimum', 'maximum', 'minLength', 'pattern'].filter((k) => k in schema).map((k) => `${k} ${String(schema[k])}`)
  return `expected ${String(schema.type ?? 'a value')}${limits.length ? ` (${limits.join(', ')})` : ''}`
}

// Production never runs on generated or default secrets (each must be given explicitly), nor with a
// benchmark's switch left on.
function assertProductionReady (config: Config): void {
  const missing: string[] = []
  if (config.embeddedDatabase) missing.push('DATABASE_URL (the embedded PostgreSQL is for development)')
  if (!config.JWT_PRIVATE_KEYS) missing.push('JWT_PRIVATE_KEYS')
  if (!config.CSRF_SECRET) missing.push('CSRF_SECRET')
  if (config.rlsEnabled && !config.APP_DATABASE_URL) missing.push('APP_DATABASE_URL (the API\'s own login, a member of saas_app: README "Deploying")')
  if (!config.API_KEY_SECRET) missing.push('API_KEY_SECRET')
  // Invitation and reset links must reach people: no silent outbox in production, a From address
  // of the deployment's own domain (SPF/DKIM), and links that carry one-time tokens over https only.
  const emails = config.INVITATIONS_ENABLED || config.PASSWORD_RESET_ENABLED
  if (emails && !config.SMTP_URL) missing.push('SMTP_URL (or INVITATIONS_ENABLED=false and PASSWORD_RESET_ENABLED=false)')
  if (emails && !config.MAIL_FROM) missing.push('MAIL_FROM (the From address of invitation and reset emails)')
  if (config.PUBLIC_URL_SCHEME === 'http') missing.push('PUBLIC_URL_SCHEME=https or unset (emailed links carry one-time tokens: http is refused)')
  if (missing.length) throw new ConfigError(`NODE_ENV=production requires: ${missing.join(', ')}`)
  const switches = benchmarkSwitches(config)
  if (switches.length && !config.ALLOW_BENCHMARK_SWITCHES) {
    throw new ConfigError(`NODE_ENV=production refuses ${switches.join(' and ')}: ${BENCHMARK_SWITCHES_WHY}. They exist for the benchmark's comparisons (its servers set ALLOW_BENCHMARK_SWITCHES=true)`)
  }
}

const BENCHMARK_SWITCHES_WHY = 'without row-level security the Prisma extension alone keeps tenants apart (a raw statement that forgets tenant_id crosses them), and without the audit log no change is recorded'

/** The benchmark's comparison switches this configuration sets: `RLS=off`, `AUDIT=off` (none: `[]`). */
function benchmarkSwitches (config: Config): string[] {
  return [...(config.rlsEnabled ? [] : ['RLS=off']), ...(config.AUDIT === 'off' ? ['AUDIT=off'] : [])]
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '::1'])

/**
 * What a start with this configuration should warn about (one line each; none when all is well):
 * mistakes that leave the server running but not as its operator meant it.
 * - Not production, on a non-loopback HOST: a deployment that forgot NODE_ENV=production gets
 *   secrets generated per instance (DATA_DIR/keys), cookies without Secure, emails in the outbox.
 * - Production with BASE_DOMAIN=localhost while invitations or reset send email: every link in
 *   them points at <slug>.localhost.
 * - RLS=off or AUDIT=off, the benchmark's switches (production refuses them unless
 *   ALLOW_BENCHMARK_SWITCHES=true): one layer of tenant isolation, or the audit log, is off.
 */
export function startupWarnings (config: Config): string[] {
  const warnings: string[] = []
  if (!config.isProduction && !LOOPBACK_HOSTS.has(config.HOST)) {
    warnings.push(`NODE_ENV=${config.NODE_ENV} on HOST=${config.HOST}: secrets are generated per instance in DATA_DIR/keys, cookies are not Secure and emails go to DATA_DIR/outbox. Set NODE_ENV=production for a deployment (README "Deploying").`)
  }
  const switches = benchmarkSwitches(config)
  if (switches.length) warnings.push(`${switches.join(' and ')}: ${BENCHMARK_SWITCHES_WHY}. For benchmarks only (production refuses them without ALLOW_BENCHMARK_SWITCHES=true).`)
  if (config.isProduction && config.BASE_DOMAIN === 'localhost' && (config.INVITATIONS_ENABLED || config.PASSWORD_RESET_ENABLED)) {
    warnings.push('BASE_DOMAIN is localhost: links in invitation and password-reset emails point at https://<tenant>.localhost/. Set BASE_DOMAIN to the API\'s domain.')
  }
  return warnings
}
