// Configuration comes from the environment only, validated once at boot: a wrong value stops the
// server with a message naming the variable, instead of surfacing later as a strange failure.
import path from 'node:path'
import Type, { type Static } from 'typebox'
import Value from 'typebox/value'


export const ConfigSchema = Type.Object({
  NODE_ENV: Type.Union([Type.Literal('development'), Type.Literal('test'), Type.Literal('production')], { default: 'development' }),
  HOST: Type.String({ default: 'localhost', description: 'address to listen on (0.0.0.0 in a container)' }),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3000 }),
  LOG_LEVEL: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)), { default: 'info' }),
  BASE_DOMAIN: Type.String({ minLength: 1, default: 'localhost' }),
  TRUST_PROXY: Type.Boolean({ default: false }),
  BODY_LIMIT: Type.Integer({ minimum: 1024, default: 1024 * 1024 }),
  CORS_ORIGINS: Type.String({ default: '', description: 'comma-separated allowed origins; empty = CORS off' }),

  DATABASE_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://' })),
  APP_DATABASE_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://' })),
  DATA_DIR: Type.String({ default: '.data' }),
  EMBEDDED_PG_PORT: Type.Integer({ minimum: 1, maximum: 65535, default: 54329 }),
  MIGRATE_ON_START: Type.Optional(Type.Boolean()),
  RLS: Type.Union([Type.Literal('on'), Type.Literal('off')], { default: 'on' }),
  DB_POOL_MAX: Type.Integer({ minimum: 1, maximum: 1000, default: 20 }),
  TENANT_CACHE_TTL_MS: Type.Integer({ minimum: 0, maximum: 5000, default: 2000 }),

  SIGNUP_ENABLED: Type.Boolean({ default: true }),
  PLATFORM_ADMIN_TOKEN: Type.Optional(Type.String({ minLength: 32 })),

  JWT_ISSUER: Type.String({ default: 'tenant-api' }),
  JWT_AUDIENCE: Type.String({ default: 'tenant-api' }),
  JWT_PRIVATE_KEYS: Type.Optional(Type.String({ description: 'PEM private keys (EdDSA or ES256), newest last' })),
  ACCESS_TOKEN_TTL_S: Type.Integer({ minimum: 30, maximum: 86400, default: 900 }),
  SESSION_MAX_AGE_S: Type.Integer({ minimum: 300, default: 30 * 86400 }),
  CSRF_SECRET: Type.Optional(Type.String({ minLength: 32 })),
  REVOCATION_CACHE_TTL_MS: Type.Integer({ minimum: 0, maximum: 5000, default: 2000 }),

  PASSWORD_MIN_LENGTH: Type.Integer({ minimum: 8, maximum: 64, default: 15 }),
  BCRYPT_COST: Type.Integer({ minimum: 4, maximum: 15, default: 12 }),
  BCRYPT_WORKERS: Type.Integer({ minimum: 0, maximum: 64, default: 2, description: '0 = hash on the main thread (benchmark comparison only)' }),
  LOGIN_FAILURES_MAX: Type.Integer({ minimum: 1, default: 5 }),
  LOGIN_FAILURES_WINDOW_S: Type.Integer({ minimum: 1, default: 900 }),
  LOGIN_ATTEMPTS_PER_IP_PER_MIN: Type.Integer({ minimum: 1, default: 100 }),

  API_KEY_SECRET: Type.Optional(Type.String({ minLength: 32, description: 'HMAC key of the stored API-key hashes' })),
  // ≤ 1 s: the contract's bound for a revocation made on another instance (until instances notify each other).
  API_KEY_CACHE_TTL_MS: Type.Integer({ minimum: 0, maximum: 1000, default: 1000 }),
  RATE_LIMIT_WINDOW_S: Type.Integer({ minimum: 1, maximum: 3600, default: 60 }),
  TENANT_RATE_LIMIT: Type.Integer({ minimum: 1, default: 6000, description: 'requests per tenant host per RATE_LIMIT_WINDOW_S' }),
  API_KEY_RATE_LIMIT: Type.Integer({ minimum: 1, default: 1200, description: 'requests per API key per RATE_LIMIT_WINDOW_S' }),
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
}

export class ConfigError extends Error {
  override name = 'ConfigError'
}

/** Reads and validates the configuration; throws ConfigError listing every bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const known = Object.keys(ConfigSchema.properties)
  const input: Record<string, unknown> = {}
  for (const key of known) if (env[key] !== undefined && env[key] !== '') input[key] = env[key]
  const value = Value.Convert(ConfigSchema, Value.Default(ConfigSchema, input))
  const badKeys = new Set([...Value.Errors(ConfigSchema, value)].map((e) => e.instancePath.slice(1)))
  // Secrets and URLs (which may embed passwords) are named, never echoed.
  const shown = (key: string) => (/KEY|SECRET|TOKEN|URL/.test(key) ? '' : `=${JSON.stringify(env[key])}`)
  const problems = [...badKeys].map((key) => `${key}${shown(key)}: ${expectation(key)}`)
  if (problems.length) throw new ConfigError(`Invalid configuration:\n  ${problems.join('\n  ')}`)
  const raw = value as RawConfig
  const embeddedDatabase = raw.DATABASE_URL === undefined
  const config: Config = {
    ...raw,
    isProduction: raw.NODE_ENV === 'production',
    isDevelopment: raw.NODE_ENV === 'development',
    embeddedDatabase,
    migrateOnStart: raw.MIGRATE_ON_START ?? embeddedDatabase,
    rlsEnabled: raw.RLS === 'on',
    dataDir: path.resolve(raw.DATA_DIR),
    corsOrigins: raw.CORS_ORIGINS.split(',').map((o) => o.trim()).filter(Boolean),
  }
  if (config.isProduction) assertProductionReady(config)
  return config
}

function expectation(key: string): string {
  const schema = (ConfigSchema.properties as unknown as Record<string, Record<string, unknown>>)[key] ?? {}
  const choices = (schema.anyOf as { const?: unknown }[] | undefined)?.map((s) => s.const).filter((c) => c !== undefined)
  if (choices?.length) return `expected one of ${choices.join(', ')}`
  const limits = ['minimum', 'maximum', 'minLength', 'pattern'].filter((k) => k in schema).map((k) => `${k} ${String(schema[k])}`)
  return `expected ${String(schema.type ?? 'a value')}${limits.length ? ` (${limits.join(', ')})` : ''}`
}

// Production never runs on generated or default secrets: each must be given explicitly.
function assertProductionReady(config: Config): void {
  const missing: string[] = []
  if (config.embeddedDatabase) missing.push('DATABASE_URL (the embedded PostgreSQL is for development)')
  if (!config.JWT_PRIVATE_KEYS) missing.push('JWT_PRIVATE_KEYS')
  if (!config.CSRF_SECRET) missing.push('CSRF_SECRET')
  if (!config.API_KEY_SECRET) missing.push('API_KEY_SECRET')
  if (missing.length) throw new ConfigError(`NODE_ENV=production requires: ${missing.join(', ')}`)
}
