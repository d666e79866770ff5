// `npx prisma db seed`: demo tenants acme and globex (idempotent), and with SEED_BENCH_TENANTS set,
// benchmark tenants too: `SEED_BENCH_TENANTS=1000 SEED_BENCH_PROJECTS=100 npx prisma db seed`.
// Uses DATABASE_URL, or else the embedded PostgreSQL (started for the seed if it is not running).
import { loadConfig } from '../src/config.ts'
import { EMBEDDED_DATABASE_NAME, embeddedDirectory } from '../src/db/database.ts'
import { startEmbeddedPostgres } from '../src/db/embedded-postgres.ts'
import { applyMigrations } from '../src/db/migrate.ts'
import { seedBench, seedDemo } from './seed-data.ts'

const config = loadConfig()
// The demo owners' passwords are printed here and in the README: never in a production database.
if (config.isProduction) {
  console.error('Refusing to seed with NODE_ENV=production: the demo tenants (acme, globex) have published passwords. Create tenants with POST /v1/tenants or the platform API.')
  process.exit(1)
}
const embedded = config.embeddedDatabase
  ? await startEmbeddedPostgres({ dir: embeddedDirectory(config), port: config.EMBEDDED_PG_PORT, database: EMBEDDED_DATABASE_NAME })
  : undefined
try {
  const ownerUrl = config.DATABASE_URL ?? embedded!.url
  if (embedded) await applyMigrations(ownerUrl)
  const logins = await seedDemo(ownerUrl, config.BCRYPT_COST, config.BASE_DOMAIN)
  console.log('Demo tenants ready. Sign in with:')
  console.table(logins)
  const port = config.PORT
  console.log('Try:')
  console.log(`  curl -s -X POST http://acme.${config.BASE_DOMAIN}:${port}/v1/auth/login -H 'content-type: application/json' -d '{"email":"demo@example.com","password":"acme-demo-password"}'`)
  console.log(`  curl -s http://acme.${config.BASE_DOMAIN}:${port}/v1/projects -H "authorization: Bearer <accessToken from the answer above>"`)
  const benchTenants = Number(process.env.SEED_BENCH_TENANTS ?? 0)
  if (benchTenants > 0) {
    const projects = Number(process.env.SEED_BENCH_PROJECTS ?? 100)
    const started = Date.now()
    await seedBench(ownerUrl, benchTenants, projects, config.BCRYPT_COST)
    console.log(`Benchmark tenants: ${benchTenants} × ${projects} projects in ${((Date.now() - started) / 1000).toFixed(1)} s`)
  }
} finally {
  if (embedded && !embedded.adopted) await embedded.stop()
}
