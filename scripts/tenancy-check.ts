// `npm run tenancy:check`: checks the tenancy rules (src/db/tenancy-invariants.ts) on the database
// of DATABASE_URL (or this checkout's embedded PostgreSQL, as the Prisma CLI does), and that the
// generated Prisma client knows every tenant-owned table and has no model outside tenancy (neither
// tenant-owned nor platform data). Exit 0 when every rule holds; exit 1 with one line per
// violation, naming the table and the rule; exit 2 when the database cannot be read.
import { PrismaPg } from '@prisma/adapter-pg'
import pg from 'pg'
import { PrismaClient } from '../src/generated/prisma/client.ts'
import { cliDatabaseUrl } from '../src/db/cli-url.ts'
import { loadEnvFileIfPresent } from '../src/env-file.ts'
import { TENANCY_RULES, checkTenancyInvariants, formatViolations, tablesUnknownToClient, tenantOwnedTables } from '../src/db/tenancy-invariants.ts'
import { modelsOutsideTenancy, modelTables } from '../src/tenancy/scoped-client.ts'

// The same .env as npm start and the Prisma CLI (review 58 M3: it checked the default port's database).
loadEnvFileIfPresent()
const client = new pg.Client({ connectionString: cliDatabaseUrl() })
try {
  await client.connect()
  const violations = await checkTenancyInvariants(client)
  const tables = await tenantOwnedTables(client)
  const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: 'postgresql://unused' }) })
  for (const table of tablesUnknownToClient(tables, Object.values(modelTables(prisma)))) {
    violations.push({ table, rule: 'prisma-client-stale', detail: TENANCY_RULES['prisma-client-stale'] })
  }
  for (const { model, table } of modelsOutsideTenancy(prisma)) {
    violations.push({ table, rule: 'model-without-tenant', detail: `model ${model}: ${TENANCY_RULES['model-without-tenant']}` })
  }
  if (violations.length) {
    console.error(`tenancy check FAILED: ${violations.length} violation(s)\n${formatViolations(violations)}`)
    process.exitCode = 1
  } else {
    console.log(`tenancy check passed: ${tables.length} tenant-owned tables (${tables.map((t) => t.table).join(', ')}) and tenants follow every rule`)
  }
} catch (error) {
  console.error(`tenancy check could not read the database: ${(error as Error).message}`)
  process.exitCode = 2
} finally {
  await client.end().catch(() => {})
}
