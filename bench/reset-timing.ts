// Is `POST /v1/auth/password-reset` as fast for an unknown email as for a known one? (The contract:
// same answer, same timing.) Interleaves requests for a known, an inactive and an unknown address
// through the real app (in-process, app.inject) and prints each one's latency distribution.
// Run: npx tsx bench/reset-timing.ts  (BENCH_ADMIN_URL: an admin URL of a PostgreSQL server,
// default postgresql://postgres@127.0.0.1:5432/postgres; a scratch database is created and dropped.)
import { randomUUID } from 'node:crypto'
import bcrypt from 'bcryptjs'
import pg from 'pg'
import { buildApp } from '../src/app.ts'
import { loadConfig } from '../src/config.ts'
import { createDatabase } from '../src/db/database.ts'
import { applyMigrations } from '../src/db/migrate.ts'

const adminUrl = process.env.BENCH_ADMIN_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres'
const rounds = Number(process.env.BENCH_ROUNDS ?? 300)
const name = `bench_reset_${randomUUID().replaceAll('-', '')}`
const sql = async (url: string, text: string, values: unknown[] = []) => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try { return await client.query(text, values) } finally { await client.end() }
}
const dbUrl = Object.assign(new URL(adminUrl), { pathname: `/${name}` }).toString()
await sql(adminUrl, `CREATE DATABASE ${name}`)
try {
  await applyMigrations(dbUrl)
  const tenant = (await sql(dbUrl, "INSERT INTO tenants (slug, name) VALUES ('acme', 'Acme') RETURNING id")).rows[0].id
  const hash = bcrypt.hashSync('correct horse battery staple', 4)
  await sql(dbUrl, "INSERT INTO users (tenant_id, email, name, password_hash) VALUES ($1, 'known@example.com', 'K', $2), ($1, 'inactive@example.com', 'I', $2)", [tenant, hash])
  await sql(dbUrl, "UPDATE users SET active = false WHERE email = 'inactive@example.com'")
  // JOBS_WORKER=false: the request's own cost only (the jobs queue up and are not run here).
  const config = loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', DATABASE_URL: dbUrl, DATA_DIR: '.data/bench', JOBS_WORKER: 'false', PASSWORD_RESET_MAX: '1000000', PASSWORD_RESET_PER_IP_PER_MIN: '1000000', SMTP_URL: 'smtp://127.0.0.1:9' })
  const app = await buildApp({ config, database: createDatabase(config, dbUrl) })
  await app.ready()
  const emails = ['known@example.com', 'inactive@example.com', 'nobody@example.com']
  const times: Record<string, number[]> = Object.fromEntries(emails.map((e) => [e, []]))
  for (let i = 0; i < rounds + 30; i++) {
    for (const email of i % 2 ? emails : [...emails].reverse()) {
      const start = process.hrtime.bigint()
      const res = await app.inject({ method: 'POST', url: '/v1/auth/password-reset', headers: { host: 'acme.localhost' }, payload: { email } })
      const ms = Number(process.hrtime.bigint() - start) / 1e6
      if (res.statusCode !== 202) throw new Error(`unexpected ${res.statusCode}`)
      if (i >= 30) times[email]!.push(ms) // the first 30 rounds warm up
    }
  }
  const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
  console.log('email                    n     mean ms  p50 ms  p90 ms  p99 ms')
  for (const email of emails) {
    const sorted = [...times[email]!].sort((a, b) => a - b)
    const mean = sorted.reduce((a, b) => a + b, 0) / sorted.length
    console.log(`${email.padEnd(24)} ${String(sorted.length).padEnd(5)} ${mean.toFixed(2).padStart(7)} ${pct(sorted, 50).toFixed(2).padStart(7)} ${pct(sorted, 90).toFixed(2).padStart(7)} ${pct(sorted, 99).toFixed(2).padStart(7)}`)
  }
  await app.close()
} finally {
  await sql(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
}
